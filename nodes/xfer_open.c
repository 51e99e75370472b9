/* Chunks coming in, checked and opened on a thread of their own
 * (docs/attachments.md): a 1 MiB chunk costs its node about 3 ms of
 * hashing, decrypting and writing, and an ordinary message that arrives
 * while the loop does that waits for it at each of its passes through this
 * node. So the loop only takes a chunk off the bulk lane and queues it;
 * this thread, at a lower priority than the loop, checks it against its
 * seal and proof, opens it, feeds its plaintext to the attachment's running
 * hash and writes it at its place in spool/in, then hands it back through
 * an eventfd for the loop to count (node_xin_opened, xfer_in.c).
 *
 * One thread, jobs in arrival order: a transfer's chunks are hashed in
 * order. After a job of a transfer fails, its later jobs are skipped (the
 * running hash would no longer be the attachment's): the loop rewinds the
 * transfer once none of its jobs is out.
 *
 * The thread touches only the job and what it points to: never the store,
 * the batch, the log or the sockets. It and its queue are libtern's workq
 * (workq.h).
 *
 * Touches: spool/in (writes), n->xopen. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>

#include "node_int.h"
#include "pbuf.h"
#include "util.h"
#include "workq.h"

/* The niceness of the thread: below the loops, like the sealing threads
 * (xfer_seal.c), and for the same reason. */
#define XOPEN_NICE 10

struct xopen {
	tern_workq *q;
	uint8_t *buf; /* the thread's: one chunk's plaintext */
	char dir[PATH_MAX];
};

/* j's result and its reason; 1, so that a check can end with it. */
static int why(struct node_xopen_job *j, enum node_xopen_result r, const char *text)
{
	j->result = r;
	snprintf(j->why, sizeof(j->why), "%s", text);
	return 1;
}

/* 0: checked, opened, hashed and written; 1: j->result says why not. */
static int open_job(struct xopen *xo, struct node_xopen_job *j)
{
	const Tern__V1__Chunk *c = j->frame->chunk;
	Tern__V1__AttachmentSeal seal = TERN__V1__ATTACHMENT_SEAL__INIT;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	size_t plen = 0, put = 0;
	off_t at = (off_t)tern_attach_slot(j->chunk_size, c->index);

	j->result = NODE_XOPEN_OK;
	j->why[0] = '\0';
	if (c->n_proof > TERN_MERKLE_MAX_PROOF)
		return why(j, NODE_XOPEN_MISMATCH, "its proof is too long");
	for (size_t i = 0; i < c->n_proof; i++) {
		if (c->proof[i].len != TERN_HASH_LEN)
			return why(j, NODE_XOPEN_MISMATCH, "a proof hash is not 32 bytes");
		memcpy(proof[i], c->proof[i].data, TERN_HASH_LEN);
	}
	seal.size = j->size;
	seal.chunk_size = j->chunk_size;
	seal.root.data = (uint8_t *)j->root; /* read only */
	seal.root.len = 32;
	if (tern_attach_chunk_verify(&seal, c->index, c->data.data, c->data.len, proof,
	                             c->n_proof) != TERN_OK)
		return why(j, NODE_XOPEN_MISMATCH, tern_errdetail());
	if (tern_attach_chunk_open(j->key, j->msgid, j->att, c->index, c->data.data, c->data.len,
	                           xo->buf, &plen) != TERN_OK)
		return why(j, NODE_XOPEN_UNOPENED, tern_errdetail());
	if (tern_disk_room(xo->dir, c->data.len) != TERN_OK)
		return why(j, NODE_XOPEN_UNWRITTEN, tern_errdetail());
	/* The spool keeps the chunk sealed, as it came. */
	while (put < c->data.len) {
		ssize_t w = pwrite(j->fd, c->data.data + put, c->data.len - put, at + (off_t)put);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return why(j, NODE_XOPEN_UNWRITTEN, strerror(errno)); /* ENOSPC: full */
		put += (size_t)w;
	}
	if (tern_sha256_update(j->hs, xo->buf, plen) != TERN_OK)
		return why(j, NODE_XOPEN_UNWRITTEN, "the SHA-256 of the attachment failed");
	return 0;
}

static void run(struct tern_workq_item *it, void *arg)
{
	struct node_xopen_job *j = (struct node_xopen_job *)it;

	/* *j->failed is the owner's; only this thread sets it while any job
	 * of the owner is out (node_int.h). */
	if (*j->failed)
		j->result = NODE_XOPEN_SKIPPED;
	else if (open_job(arg, j))
		*j->failed = 1;
}

/* --- on the loop -------------------------------------------------------------- */

static void job_free(struct node_xopen_job **jp)
{
	if (*jp == NULL)
		return;
	tern_pb_free((ProtobufCMessage **)&(*jp)->frame);
	free(*jp);
	*jp = NULL;
}

static void jobs_free(struct tern_workq_item *list)
{
	while (list) {
		struct node_xopen_job *j = (struct node_xopen_job *)list;
		list = list->next;
		job_free(&j);
	}
}

static int xopen_open(node *n)
{
	struct xopen *xo;
	int rc;

	if (n->xopen)
		return TERN_OK;
	if ((xo = calloc(1, sizeof(*xo))) == NULL ||
	    (xo->buf = malloc(TERN_ATTACH_CHUNK_MAX + TERN_ATTACH_TAG_LEN)) == NULL) {
		free(xo);
		return tern_fail(TERN_ENOMEM, "out of memory");
	}
	snprintf(xo->dir, sizeof(xo->dir), "%s/spool/in", n->data_dir);
	if ((rc = tern_workq_new("tern-open", XOPEN_NICE, run, xo, &xo->q)) != TERN_OK) {
		free(xo->buf);
		free(xo);
		return rc;
	}
	n->xopen = xo;
	return TERN_OK;
}

int node_xopen_queue(node *n, struct node_xopen_job *j)
{
	int rc;

	if ((rc = xopen_open(n)) != TERN_OK)
		return rc;
	tern_workq_push(n->xopen->q, &j->item);
	return TERN_OK;
}

int node_xopen_fd(const node *n)
{
	return n->xopen ? tern_workq_fd(n->xopen->q) : -1;
}

void node_xopen_done(node *n)
{
	struct tern_workq_item *list;

	if (n->xopen == NULL)
		return;
	list = tern_workq_take(n->xopen->q);
	while (list) {
		struct node_xopen_job *j = (struct node_xopen_job *)list;
		list = list->next;
		node_xin_opened(n, j);
		job_free(&j);
	}
}

void node_xopen_stop(node *n)
{
	struct tern_workq_item *left;

	if (n->xopen == NULL)
		return;
	/* What was written and not counted is fetched again at the next start
	 * (the transfer's record counts only what was synced). */
	tern_workq_free(&n->xopen->q, &left);
	jobs_free(left);
	free(n->xopen->buf);
	free(n->xopen);
	n->xopen = NULL;
}

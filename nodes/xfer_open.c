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
 * the batch, the log or the sockets.
 *
 * Touches: spool/in (writes), n->xopen. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>

#include "node_int.h"
#include "pbuf.h"
#include "util.h"

/* The niceness of the thread: below the loops, like the sealing threads
 * (xfer_seal.c), and for the same reason. */
#define XOPEN_NICE 10

struct xopen {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct node_xopen_job *todo, **todo_tail, *done, **done_tail; /* FIFO lists */
	uint8_t *buf; /* the thread's: one chunk's plaintext */
	char dir[PATH_MAX];
	int efd, stop;
};

/* --- on the thread ------------------------------------------------------------ */

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

static void *worker(void *arg)
{
	struct xopen *xo = arg;
	uint64_t one = 1;

	/* Named, so that top -H and the benchmarks tell its CPU from the loop's. */
	(void)pthread_setname_np(pthread_self(), "tern-open");
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), XOPEN_NICE) != 0) {
		/* it runs at the loop's priority, as before this thread */
	}
	pthread_mutex_lock(&xo->mu);
	for (;;) {
		struct node_xopen_job *j;
		while (xo->todo == NULL && !xo->stop)
			pthread_cond_wait(&xo->cv, &xo->mu);
		if (xo->stop)
			break;
		j = xo->todo;
		if ((xo->todo = j->next) == NULL)
			xo->todo_tail = &xo->todo;
		pthread_mutex_unlock(&xo->mu);
		/* *j->failed is the owner's; only this thread sets it while any
		 * job of the owner is out (node_int.h). */
		if (*j->failed) {
			j->result = NODE_XOPEN_SKIPPED;
		} else {
			if (open_job(xo, j))
				*j->failed = 1;
		}
		pthread_mutex_lock(&xo->mu);
		j->next = NULL;
		*xo->done_tail = j;
		xo->done_tail = &j->next;
		if (write(xo->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow at one write per job */
		}
	}
	pthread_mutex_unlock(&xo->mu);
	return NULL;
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

static int xopen_open(node *n)
{
	struct xopen *xo;

	if (n->xopen)
		return TERN_OK;
	if ((xo = calloc(1, sizeof(*xo))) == NULL ||
	    (xo->buf = malloc(TERN_ATTACH_CHUNK_MAX + TERN_ATTACH_TAG_LEN)) == NULL) {
		if (xo)
			free(xo);
		return tern_fail(TERN_ENOMEM, "out of memory");
	}
	snprintf(xo->dir, sizeof(xo->dir), "%s/spool/in", n->data_dir);
	xo->todo_tail = &xo->todo;
	xo->done_tail = &xo->done;
	if ((xo->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(xo->buf);
		free(xo);
		return tern_fail(TERN_EIO, "eventfd: %s", strerror(errno));
	}
	pthread_mutex_init(&xo->mu, NULL);
	pthread_cond_init(&xo->cv, NULL);
	if (pthread_create(&xo->thread, NULL, worker, xo) != 0) {
		close(xo->efd);
		pthread_mutex_destroy(&xo->mu);
		pthread_cond_destroy(&xo->cv);
		free(xo->buf);
		free(xo);
		return tern_fail(TERN_EIO, "cannot start the chunk-opening thread");
	}
	n->xopen = xo;
	return TERN_OK;
}

int node_xopen_queue(node *n, struct node_xopen_job *j)
{
	struct xopen *xo;
	int rc;

	if ((rc = xopen_open(n)) != TERN_OK)
		return rc;
	xo = n->xopen;
	pthread_mutex_lock(&xo->mu);
	j->next = NULL;
	*xo->todo_tail = j;
	xo->todo_tail = &j->next;
	pthread_cond_signal(&xo->cv);
	pthread_mutex_unlock(&xo->mu);
	return TERN_OK;
}

int node_xopen_fd(const node *n)
{
	return n->xopen ? n->xopen->efd : -1;
}

void node_xopen_done(node *n)
{
	struct xopen *xo = n->xopen;
	struct node_xopen_job *list;
	uint64_t v;

	if (xo == NULL)
		return;
	pthread_mutex_lock(&xo->mu);
	/* Under the lock, as the thread writes it: no wake-up is left for
	 * jobs already taken. */
	if (read(xo->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new since the last turn */
	}
	list = xo->done;
	xo->done = NULL;
	xo->done_tail = &xo->done;
	pthread_mutex_unlock(&xo->mu);
	while (list) {
		struct node_xopen_job *j = list;
		list = j->next;
		node_xin_opened(n, j);
		job_free(&j);
	}
}

void node_xopen_stop(node *n)
{
	struct xopen *xo = n->xopen;

	if (xo == NULL)
		return;
	pthread_mutex_lock(&xo->mu);
	xo->stop = 1;
	pthread_cond_signal(&xo->cv);
	pthread_mutex_unlock(&xo->mu);
	pthread_join(xo->thread, NULL);
	/* What was written and not counted is fetched again at the next start
	 * (the transfer's record counts only what was synced). */
	for (struct node_xopen_job *j = xo->todo, *next; j; j = next) {
		next = j->next;
		job_free(&j);
	}
	for (struct node_xopen_job *j = xo->done, *next; j; j = next) {
		next = j->next;
		job_free(&j);
	}
	close(xo->efd);
	pthread_mutex_destroy(&xo->mu);
	pthread_cond_destroy(&xo->cv);
	free(xo->buf);
	free(xo);
	n->xopen = NULL;
}

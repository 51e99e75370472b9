/* Chunks put, checked and written on a thread of their own (chunk.c,
 * docs/attachments.md): a 1 MiB chunk's hash against its proof and its
 * write into the spool cost the loop about a millisecond each, and every
 * ordinary message read after them waited for them. The loop now checks
 * what it can at once (the transfer, the sender, the order, the proof's
 * shape), stages the chunk as written-to-be and queues a copy; this thread,
 * at a lower priority than the loop, checks it against the seal, makes
 * sure of the room and writes it, then hands it back through an eventfd
 * (chunk_xput_done). chunk_flush syncs and counts only chunks that are
 * back.
 *
 * A broker made without the thread (a unit test's) does the same work on
 * the loop, at once (xput_work is one function either way).
 *
 * The thread touches only its jobs and the spool files they name: never
 * the store, the peers or the log.
 *
 * The thread and its queue are libtern's workq (workq.h).
 *
 * Touches: b->xput, b->chunk_dir (writes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <tern/attach.h>
#include <tern/error.h>

#include "broker_int.h"
#include "util.h"

/* Below the loop, like the nodes' sealing and opening threads: a transfer
 * yields the cores to ordinary messages. */
#define XPUT_NICE 10

static int why(struct chunk_xjob *j, enum chunk_xresult r, int err, const char *text)
{
	j->result = r;
	j->err = err;
	snprintf(j->why, sizeof(j->why), "%s", text);
	return 1;
}

int xput_work(struct chunk_xjob *j)
{
	Tern__V1__AttachmentSeal seal = TERN__V1__ATTACHMENT_SEAL__INIT;
	int err = 0;

	j->result = CHUNK_XPUT_OK;
	j->err = 0;
	j->why[0] = '\0';
	seal.size = j->size;
	seal.chunk_size = j->chunk_size;
	seal.root.data = j->root;
	seal.root.len = sizeof(j->root);
	if (tern_attach_chunk_verify(&seal, j->index, j->data, j->len, j->proof, j->nproof) !=
	    TERN_OK)
		return why(j, CHUNK_XPUT_MISMATCH, 0, tern_errdetail());
	/* Chunks leave room for the store (ordinary messages go on when a
	 * transfer has filled the disk); refused like a full disk. */
	if (tern_disk_room(j->dir, j->len) != TERN_OK)
		return why(j, CHUNK_XPUT_UNWRITTEN, ENOSPC, tern_errdetail());
	if (xfer_spool_put(j->dir, j->msgid, j->att, tern_attach_slot(j->chunk_size, j->index),
	                   j->data, j->len, &err) != TERN_OK)
		return why(j, CHUNK_XPUT_UNWRITTEN, err, tern_errdetail());
	return 0;
}

static void run(struct tern_workq_item *it, void *arg)
{
	(void)arg;
	(void)xput_work((struct chunk_xjob *)it);
}

void chunk_xjob_free(struct chunk_xjob **jp)
{
	if (*jp == NULL)
		return;
	free((*jp)->data);
	free((*jp)->proof);
	free(*jp);
	*jp = NULL;
}

int xput_start(broker *b)
{
	return tern_workq_new("tern-put", XPUT_NICE, run, NULL, &b->xput);
}

void xput_stop(broker *b)
{
	struct tern_workq_item *left;

	tern_workq_free(&b->xput, &left);
	/* Never counted: the senders put them again. */
	while (left) {
		struct chunk_xjob *j = (struct chunk_xjob *)left;
		left = left->next;
		chunk_xjob_free(&j);
	}
}

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
 * Touches: b->xput, b->chunk_dir (writes). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tern/attach.h>
#include <tern/error.h>

#include "broker_int.h"
#include "util.h"

/* Below the loop, like the nodes' sealing and opening threads: a transfer
 * yields the cores to ordinary messages. */
#define XPUT_NICE 10

struct xput {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk_xjob *todo, **todo_tail, *done, **done_tail; /* FIFO lists */
	size_t out; /* jobs queued and not yet taken back by the loop */
	int efd, stop;
};

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

/* --- on the thread ------------------------------------------------------------ */

static void *worker(void *arg)
{
	struct xput *x = arg;
	uint64_t one = 1;

	/* Named, so that top -H and the benchmarks tell its CPU from the loop's. */
	(void)pthread_setname_np(pthread_self(), "tern-put");
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), XPUT_NICE) != 0) {
		/* it runs at the loop's priority, as the loop did this work */
	}
	pthread_mutex_lock(&x->mu);
	for (;;) {
		struct chunk_xjob *j;
		while (x->todo == NULL && !x->stop)
			pthread_cond_wait(&x->cv, &x->mu);
		if (x->stop)
			break;
		j = x->todo;
		if ((x->todo = j->next) == NULL)
			x->todo_tail = &x->todo;
		pthread_mutex_unlock(&x->mu);
		(void)xput_work(j);
		pthread_mutex_lock(&x->mu);
		j->next = NULL;
		*x->done_tail = j;
		x->done_tail = &j->next;
		if (write(x->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow at one write per job */
		}
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

/* --- on the loop -------------------------------------------------------------- */

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
	struct xput *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory");
	x->todo_tail = &x->todo;
	x->done_tail = &x->done;
	if ((x->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(x);
		return tern_fail(TERN_EIO, "eventfd: %s", strerror(errno));
	}
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	if (pthread_create(&x->thread, NULL, worker, x) != 0) {
		close(x->efd);
		pthread_mutex_destroy(&x->mu);
		pthread_cond_destroy(&x->cv);
		free(x);
		return tern_fail(TERN_EIO, "cannot start the chunk-writing thread");
	}
	b->xput = x;
	return TERN_OK;
}

size_t xput_out(const broker *b)
{
	return b->xput ? b->xput->out : 0;
}

int xput_queue(broker *b, struct chunk_xjob *j)
{
	struct xput *x = b->xput;

	pthread_mutex_lock(&x->mu);
	j->next = NULL;
	*x->todo_tail = j;
	x->todo_tail = &j->next;
	x->out++;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return TERN_OK;
}

int xput_fd(const broker *b)
{
	return b->xput ? b->xput->efd : -1;
}

struct chunk_xjob *xput_take(broker *b)
{
	struct xput *x = b->xput;
	struct chunk_xjob *list;
	uint64_t v;

	if (x == NULL)
		return NULL;
	pthread_mutex_lock(&x->mu);
	/* Under the lock, as the thread writes it: a count read here is for
	 * exactly the jobs taken here, and no wake-up is left for none. */
	if (read(x->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new since the last turn */
	}
	list = x->done;
	x->done = NULL;
	x->done_tail = &x->done;
	for (const struct chunk_xjob *j = list; j; j = j->next)
		x->out--;
	pthread_mutex_unlock(&x->mu);
	return list;
}

void xput_stop(broker *b)
{
	struct xput *x = b->xput;

	if (x == NULL)
		return;
	pthread_mutex_lock(&x->mu);
	x->stop = 1;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thread, NULL);
	/* Never counted: the senders put them again. */
	for (struct chunk_xjob *j = x->todo, *next; j; j = next) {
		next = j->next;
		chunk_xjob_free(&j);
	}
	for (struct chunk_xjob *j = x->done, *next; j; j = next) {
		next = j->next;
		chunk_xjob_free(&j);
	}
	close(x->efd);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
	b->xput = NULL;
}

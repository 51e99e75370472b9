/* The bulk-work thread (workq.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tern/error.h>

#include "util.h"
#include "workq.h"

struct tern_workq {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* FIFO lists: pushed and not started; done and not taken back */
	struct tern_workq_item *todo, **todo_tail, *done, **done_tail;
	size_t out;
	tern_workq_fn *fn;
	void *arg;
	char name[16];
	int nice, efd, stop;
};

static void *worker(void *p)
{
	tern_workq *q = p;
	uint64_t one = 1;

	(void)pthread_setname_np(pthread_self(), q->name);
	/* Per thread on Linux, and only ever lower (a daemon started nicer
	 * stays so). Failing it, the work runs at the loop's priority, as it
	 * did on the loop. */
	if (getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)) < q->nice)
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), q->nice);
	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct tern_workq_item *j;
		while (q->todo == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		j = q->todo;
		if ((q->todo = j->next) == NULL)
			q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->mu);
		q->fn(j, q->arg);
		pthread_mutex_lock(&q->mu);
		j->next = NULL;
		*q->done_tail = j;
		q->done_tail = &j->next;
		if (write(q->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow at one write per job */
		}
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int tern_workq_new(const char *name, int nice, tern_workq_fn *fn, void *arg, tern_workq **out)
{
	tern_workq *q;

	*out = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory");
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->nice = nice;
	q->fn = fn;
	q->arg = arg;
	q->todo_tail = &q->todo;
	q->done_tail = &q->done;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(q);
		return tern_fail(TERN_EIO, "eventfd: %s", strerror(errno));
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (pthread_create(&q->thread, NULL, worker, q) != 0) {
		close(q->efd);
		pthread_mutex_destroy(&q->mu);
		pthread_cond_destroy(&q->cv);
		free(q);
		return tern_fail(TERN_EIO, "cannot start the %s thread", name);
	}
	*out = q;
	return TERN_OK;
}

void tern_workq_push(tern_workq *q, struct tern_workq_item *job)
{
	pthread_mutex_lock(&q->mu);
	job->next = NULL;
	*q->todo_tail = job;
	q->todo_tail = &job->next;
	q->out++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

int tern_workq_fd(const tern_workq *q)
{
	return q ? q->efd : -1;
}

size_t tern_workq_out(const tern_workq *q)
{
	return q ? q->out : 0;
}

struct tern_workq_item *tern_workq_take(tern_workq *q)
{
	struct tern_workq_item *list;
	uint64_t v;

	if (q == NULL)
		return NULL;
	pthread_mutex_lock(&q->mu);
	/* Under the lock the thread writes it under: the count read is for
	 * exactly the jobs taken here, and no wake-up is left for none. */
	if (read(q->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	list = q->done;
	q->done = NULL;
	q->done_tail = &q->done;
	for (const struct tern_workq_item *j = list; j; j = j->next)
		q->out--;
	pthread_mutex_unlock(&q->mu);
	return list;
}

void tern_workq_free(tern_workq **qp, struct tern_workq_item **left)
{
	tern_workq *q;

	if (left)
		*left = NULL;
	if (qp == NULL || (q = *qp) == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	/* Done first, then those never started: the order they were pushed. */
	*q->done_tail = q->todo;
	if (left)
		*left = q->done;
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
	*qp = NULL;
}

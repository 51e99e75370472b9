/* The bulk-work thread (libtern/src/workq.h): jobs run on a thread of their
 * own, named and at the niceness asked, in the order pushed, and come back
 * in that order through the polled descriptor; a stop hands back what was
 * not taken. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/error.h>

#include "workq.h"

#define NJOBS 50

struct job {
	struct tern_workq_item item;
	int seq;
	pid_t tid;     /* the thread that ran it */
	int nice;      /* its niceness then */
	char name[16]; /* its name then */
};

/* Holds the thread in its first job until released; entered says it is
 * in one. */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static int entered;

static void run(struct tern_workq_item *it, void *arg)
{
	struct job *j = (struct job *)it;
	int *ran = arg;

	__atomic_store_n(&entered, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&gate);
	pthread_mutex_unlock(&gate);
	j->tid = (pid_t)syscall(SYS_gettid);
	errno = 0;
	j->nice = getpriority(PRIO_PROCESS, (id_t)j->tid);
	pthread_getname_np(pthread_self(), j->name, sizeof(j->name));
	__atomic_add_fetch(ran, 1, __ATOMIC_SEQ_CST);
}

static struct job *take_all(tern_workq *q, int want, int *next)
{
	struct job *last = NULL;
	int got = 0;

	while (got < want) {
		struct pollfd p = {tern_workq_fd(q), POLLIN, 0};
		struct tern_workq_item *list;
		assert_int_equal(poll(&p, 1, 5000), 1);
		list = tern_workq_take(q);
		while (list) {
			struct job *j = (struct job *)list;
			list = list->next;
			assert_int_equal(j->seq, (*next)++); /* in the order pushed */
			free(last);
			last = j;
			got++;
		}
	}
	return last;
}

static void test_jobs_in_order_on_the_thread(void **state)
{
	tern_workq *q = NULL;
	struct job *last;
	int ran = 0, next = 0;

	(void)state;
	assert_int_equal(tern_workq_new("tern-test", 10, run, &ran, &q), TERN_OK);
	assert_int_equal(tern_workq_out(q), 0);
	for (int i = 0; i < NJOBS; i++) {
		struct job *j = calloc(1, sizeof(*j));
		assert_non_null(j);
		j->seq = i;
		tern_workq_push(q, &j->item);
	}
	last = take_all(q, NJOBS, &next);
	assert_int_equal(ran, NJOBS);
	assert_int_equal(tern_workq_out(q), 0);
	assert_int_not_equal(last->tid, (pid_t)syscall(SYS_gettid)); /* not this thread */
	assert_string_equal(last->name, "tern-test");
	assert_true(last->nice >= 10); /* 10, or more if this test was started nicer */
	free(last);
	{
		/* Nothing done: the descriptor stays quiet, no stale wake-up. */
		struct pollfd p = {tern_workq_fd(q), POLLIN, 0};
		assert_int_equal(poll(&p, 1, 50), 0);
		assert_null(tern_workq_take(q));
	}
	tern_workq_free(&q, NULL);
	assert_null(q);
}

/* A stop while jobs wait: the one under way finishes, and every job not
 * taken back (done or never started) is handed back, in order. */
static void test_free_hands_back(void **state)
{
	tern_workq *q = NULL;
	struct tern_workq_item *left;
	int ran = 0, n = 0, prev = -1;

	(void)state;
	__atomic_store_n(&entered, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&gate); /* the thread waits in the first job */
	assert_int_equal(tern_workq_new("tern-test", 10, run, &ran, &q), TERN_OK);
	for (int i = 0; i < 5; i++) {
		struct job *j = calloc(1, sizeof(*j));
		assert_non_null(j);
		j->seq = i;
		tern_workq_push(q, &j->item);
	}
	assert_int_equal(tern_workq_out(q), 5);
	for (int i = 0; i < 5000 && !__atomic_load_n(&entered, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	assert_true(__atomic_load_n(&entered, __ATOMIC_SEQ_CST)); /* in the first job */
	pthread_mutex_unlock(&gate);
	tern_workq_free(&q, &left);
	assert_null(q);
	while (left) {
		struct job *j = (struct job *)left;
		left = left->next;
		assert_true(j->seq > prev);
		prev = j->seq;
		n++;
		free(j);
	}
	assert_int_equal(n, 5);            /* none was taken back */
	assert_true(ran >= 1 && ran <= 5); /* the one under way finished */
	tern_workq_free(&q, &left);        /* NULL is fine */
	assert_null(left);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jobs_in_order_on_the_thread),
	    cmocka_unit_test(test_free_hands_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

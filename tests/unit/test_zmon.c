/* The socket monitor's teardown (zmon.h): a daemon's stop must end even when
 * libzmq's I/O thread has piled up more events than a monitor queue holds by
 * default while nobody read them. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include <tern/error.h>

#include "zmon.h"

struct stopper {
	void *sock, *reader;
	volatile int done;
};

static void *stop_thread(void *arg)
{
	struct stopper *s = arg;

	tern_zmon_detach(s->sock, &s->reader);
	zmq_close(s->sock);
	s->done = 1;
	return NULL;
}

/* A socket retrying a refused connection every millisecond emits some three
 * events a millisecond; two seconds unread is several times the 2,000 a
 * default monitor pipe holds (where libzmq's I/O thread would block with the
 * monitor lock held). The teardown must still finish, well within 5 s. */
static void test_detach_after_unread_events(void **state)
{
	void *ctx = zmq_ctx_new();
	void *sock = zmq_socket(ctx, ZMQ_DEALER);
	int ivl = 1, zero = 0;
	struct stopper s = {sock, NULL, 0};
	pthread_t th;
	zmq_msg_t m;
	int got = 0;

	(void)state;
	assert_non_null(sock);
	assert_int_equal(zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)), 0);
	assert_int_equal(zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)), 0);
	assert_int_equal(
	    tern_zmon_attach(ctx, sock, "inproc://test-zmon", ZMQ_EVENT_ALL, &s.reader), TERN_OK);
	assert_non_null(s.reader);
	/* Port 1 on loopback: refused at once, retried at once. */
	assert_int_equal(zmq_connect(sock, "tcp://127.0.0.1:1"), 0);
	sleep(2);
	/* Events arrived (the monitor works) ... */
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, s.reader, ZMQ_DONTWAIT) >= 0)
		got = 1;
	zmq_msg_close(&m);
	assert_true(got);
	/* ... and the teardown ends while thousands more wait unread. */
	assert_int_equal(pthread_create(&th, NULL, stop_thread, &s), 0);
	for (int i = 0; i < 500 && !s.done; i++)
		usleep(10000);
	assert_true(s.done);
	pthread_join(th, NULL);
	assert_null(s.reader);
	zmq_ctx_term(ctx);
}

/* NULL-safe, as every destructor here. */
static void test_detach_null(void **state)
{
	void *reader = NULL;

	(void)state;
	tern_zmon_detach(NULL, NULL);
	tern_zmon_detach(NULL, &reader);
	assert_null(reader);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_detach_after_unread_events),
	    cmocka_unit_test(test_detach_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

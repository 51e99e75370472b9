/* The loopback HTTP server: the token checked with the headers, before any
 * body (401 and 413 come back to a client that has sent none of its body);
 * snapshots without a token; bodies handed to the handler on a worker; 503
 * when every worker is taken, while the server thread still answers; the
 * refusal count taken and reset. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/error.h>

#include "http.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

/* The handler: echoes the body; blocks while `hold` is set. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hold, inside, calls;
} hs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void echo(void *arg, const tern_http_request *req, tern_http_response *res)
{
	(void)arg;
	pthread_mutex_lock(&hs.mu);
	hs.calls++;
	hs.inside++;
	pthread_cond_broadcast(&hs.cv);
	while (hs.hold)
		pthread_cond_wait(&hs.cv, &hs.mu);
	hs.inside--;
	pthread_mutex_unlock(&hs.mu);
	res->status = 200;
	res->ctype = "text/plain";
	res->out = malloc(req->blen + 1);
	memcpy(res->out, req->body, req->blen);
	res->outlen = req->blen;
}

static tern_http *start(unsigned workers, uint16_t *port)
{
	tern_http_api api = {"/v1/", TOKEN, 1024, workers, echo, NULL, NULL, NULL};
	tern_http *h = NULL;

	hs.calls = hs.inside = hs.hold = 0;
	assert_int_equal(tern_http_start(0, &api, &h), TERN_OK);
	assert_int_equal(tern_http_port(h, port), TERN_OK);
	return h;
}

static int dial(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {5, 0}; /* a test that waits longer has failed */
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads until the server closes; returns the status code, the whole answer
 * in buf. */
static int answer(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	int status = 0;

	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	close(fd);
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

static int ask(uint16_t port, const char *req, char *buf, size_t cap)
{
	int fd = dial(port);

	put(fd, req);
	return answer(fd, buf, cap);
}

static void test_401_before_the_body(void **state)
{
	uint16_t port;
	tern_http *h = start(0, &port);
	char buf[4096];
	uint64_t n;

	(void)state;
	/* 8 MiB announced, not a byte sent: the answer must not wait for it. */
	assert_int_equal(ask(port,
	                     "POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
	                     "Content-Length: 8388608\r\n\r\n",
	                     buf, sizeof(buf)),
	                 401);
	assert_non_null(strstr(buf, "WWW-Authenticate: Bearer"));
	assert_non_null(strstr(buf, "\"error\": \"unauthorized\""));
	assert_int_equal(ask(port,
	                     "GET /v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                     "Authorization: Bearer " TOKEN "x\r\n\r\n",
	                     buf, sizeof(buf)),
	                 401);
	assert_int_equal(ask(port,
	                     "GET /v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                     "Authorization: Basic " TOKEN "\r\n\r\n",
	                     buf, sizeof(buf)),
	                 401);
	assert_int_equal(hs.calls, 0);
	assert_int_equal(tern_http_take_refusals(h, &n), TERN_OK);
	assert_int_equal(n, 3);
	assert_int_equal(tern_http_take_refusals(h, &n), TERN_OK);
	assert_int_equal(n, 0);
	tern_http_stop(&h);
	assert_null(h);
}

static void test_413_before_the_body(void **state)
{
	uint16_t port;
	tern_http *h = start(0, &port);
	char buf[4096];

	(void)state;
	assert_int_equal(ask(port,
	                     "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
	                     "\r\nContent-Length: 1025\r\n\r\n",
	                     buf, sizeof(buf)),
	                 413);
	assert_int_equal(hs.calls, 0);
	tern_http_stop(&h);
}

static void test_body_to_the_handler(void **state)
{
	uint16_t port;
	tern_http *h = start(0, &port);
	char buf[4096];
	uint64_t n;

	(void)state;
	assert_int_equal(ask(port,
	                     "POST /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                     "Authorization: Bearer " TOKEN "\r\nContent-Length: 5\r\n\r\nhello",
	                     buf, sizeof(buf)),
	                 200);
	assert_non_null(strstr(buf, "\r\n\r\nhello"));
	assert_int_equal(hs.calls, 1);
	/* Outside the prefix: 404 at once, with or without the token. */
	assert_int_equal(ask(port,
	                     "POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n",
	                     buf, sizeof(buf)),
	                 404);
	tern_http_take_refusals(h, &n);
	assert_int_equal(n, 0);
	tern_http_stop(&h);
}

static void test_snapshots_need_no_token(void **state)
{
	uint16_t port;
	tern_http *h = NULL;
	char buf[4096];

	(void)state;
	/* The metrics servers: snapshots only, nothing else, no body read. */
	assert_int_equal(tern_http_start(0, NULL, &h), TERN_OK);
	assert_int_equal(tern_http_port(h, &port), TERN_OK);
	assert_int_equal(tern_http_publish(h, "/metrics", 200, "text/plain", "m 1\n", 0), TERN_OK);
	assert_int_equal(ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	                     buf, sizeof(buf)),
	                 200);
	assert_non_null(strstr(buf, "\r\n\r\nm 1\n"));
	assert_int_equal(
	    ask(port, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n",
	        buf, sizeof(buf)),
	    404);
	tern_http_stop(&h);
}

static void wait_inside(int n)
{
	pthread_mutex_lock(&hs.mu);
	while (hs.inside < n)
		pthread_cond_wait(&hs.cv, &hs.mu);
	pthread_mutex_unlock(&hs.mu);
}

static void test_503_when_every_worker_is_taken(void **state)
{
	static const char req[] = "GET /v1/wait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                          "Authorization: Bearer " TOKEN "\r\n\r\n";
	uint16_t port;
	tern_http *h = start(2, &port);
	char buf[4096];
	int a, b;

	(void)state;
	hs.hold = 1;
	a = dial(port);
	put(a, req);
	b = dial(port);
	put(b, req);
	wait_inside(2);
	/* Both workers wait; the server thread still answers, at once. */
	assert_int_equal(ask(port, req, buf, sizeof(buf)), 503);
	assert_non_null(strstr(buf, "Retry-After: 1"));
	assert_non_null(strstr(buf, "retry"));
	tern_http_publish(h, "/healthz", 200, "text/plain", "ok\n", 0);
	assert_int_equal(ask(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	                     buf, sizeof(buf)),
	                 200);
	pthread_mutex_lock(&hs.mu);
	hs.hold = 0;
	pthread_cond_broadcast(&hs.cv);
	pthread_mutex_unlock(&hs.mu);
	assert_int_equal(answer(a, buf, sizeof(buf)), 200);
	assert_int_equal(answer(b, buf, sizeof(buf)), 200);
	assert_int_equal(ask(port, req, buf, sizeof(buf)), 200);
	tern_http_stop(&h);
}

static void test_api_needs_a_token(void **state)
{
	tern_http_api api = {"/v1/", "", 1024, 0, echo, NULL, NULL, NULL};
	tern_http *h = NULL;

	(void)state;
	assert_int_equal(tern_http_start(0, &api, &h), TERN_EINVAL);
	assert_null(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_401_before_the_body),
	    cmocka_unit_test(test_413_before_the_body),
	    cmocka_unit_test(test_body_to_the_handler),
	    cmocka_unit_test(test_snapshots_need_no_token),
	    cmocka_unit_test(test_503_when_every_worker_is_taken),
	    cmocka_unit_test(test_api_needs_a_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

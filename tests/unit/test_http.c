/* The loopback HTTP server: the token checked with the headers, before any
 * body (401 and 413 come back to a client that has sent none of its body);
 * snapshots without a token; bodies handed to the handler on a worker; 503
 * when every worker is taken, while the server thread still answers; the
 * refusal count taken and reset; the early hook's refusal before any body;
 * request headers named by the API, response headers (never split by a
 * value); streamed bodies made piece by piece on the workers, and one that
 * fails cut short; the Authorization header's white space and control
 * characters. */
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

/* A stream of `size` bytes, byte i = i % 251, in pieces of 100,000 (MHD
 * asks in blocks of 64 KiB: pieces and blocks do not line up); fail_at > 0
 * fails the piece that would pass it. */
struct pat {
	uint64_t size, pos, fail_at;
	uint8_t piece[100000];
	int *freed;
};

static int pat_next(void *arg, const uint8_t **data, size_t *len)
{
	struct pat *p = arg;
	size_t n = sizeof(p->piece);

	if (n > p->size - p->pos)
		n = (size_t)(p->size - p->pos);
	if (p->fail_at && p->pos + n > p->fail_at)
		return TERN_EIO;
	for (size_t i = 0; i < n; i++)
		p->piece[i] = (uint8_t)((p->pos + i) % 251);
	p->pos += n;
	*data = p->piece;
	*len = n;
	return TERN_OK;
}

static int freed_streams;

static void pat_free(void *arg)
{
	free(arg);
	__atomic_add_fetch(&freed_streams, 1, __ATOMIC_SEQ_CST);
}

#define STREAM_SIZE 1000003u

/* /v1/stream and /v1/streamfail stream; /v1/headers answers with the
 * request's X-One header and headers of its own; others echo. */
static void handler(void *arg, const tern_http_request *req, tern_http_response *res)
{
	if (strncmp(req->url, "/v1/stream", 10) == 0) {
		struct pat *p = calloc(1, sizeof(*p));
		assert_non_null(p);
		p->size = STREAM_SIZE;
		p->fail_at = strcmp(req->url, "/v1/streamfail") == 0 ? 250000 : 0;
		res->status = 200;
		res->ctype = "application/octet-stream";
		res->streamed = 1;
		res->stream = (tern_http_stream){p->size, pat_next, pat_free, p};
		return;
	}
	if (strcmp(req->url, "/v1/headers") == 0) {
		res->status = 204;
		res->ctype = NULL;
		assert_int_equal(
		    tern_http_response_header(res, "X-Got", "[%s]",
		                              req->headers[0] ? req->headers[0] : "none"),
		    TERN_OK);
		/* a value that would split the header is refused */
		assert_int_equal(tern_http_response_header(res, "X-Evil", "a\r\nX-Injected: 1"),
		                 TERN_EINVAL);
		return;
	}
	echo(arg, req, res);
}

/* Refuses /v1/early before its body, with a header of its own. */
static void early(void *arg, const tern_http_request *req, tern_http_response *res)
{
	(void)arg;
	assert_null(req->body);
	if (strcmp(req->url, "/v1/early") == 0) {
		res->status = 415;
		res->ctype = "text/plain";
		res->out = strdup("no\n");
		res->outlen = 3;
		tern_http_response_header(res, "X-Early", "yes");
	}
}

static tern_http *start(unsigned workers, uint16_t *port)
{
	static const char *const headers[] = {"X-One", NULL};
	tern_http_api api = {"/v1/", TOKEN, 1024, workers, handler, NULL, early, headers};
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
	/* RFC 9457 problem details, with the code the docs list */
	assert_non_null(strstr(buf, "Content-Type: application/problem+json"));
	assert_non_null(strstr(buf, "\"code\": \"unauthorized\""));
	assert_non_null(strstr(buf, "\"status\": 401"));
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
	assert_non_null(strstr(buf, "Content-Type: application/problem+json"));
	assert_non_null(strstr(buf, "\"code\": \"not-found\""));
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

static void test_early_refusal_before_the_body(void **state)
{
	uint16_t port;
	tern_http *h = start(0, &port);
	char buf[4096];

	(void)state;
	/* A body announced, not a byte of it sent: the early hook answers at
	 * once (a wait for the body would time the test out), and the handler
	 * never runs. */
	assert_int_equal(ask(port,
	                     "PATCH /v1/early HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
	                     "\r\nContent-Length: 500\r\n\r\n",
	                     buf, sizeof(buf)),
	                 415);
	assert_non_null(strstr(buf, "X-Early: yes"));
	assert_int_equal(hs.calls, 0);
	/* Without the token the early hook is not asked: 401 first. */
	assert_int_equal(ask(port,
	                     "PATCH /v1/early HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",
	                     buf, sizeof(buf)),
	                 401);
	tern_http_stop(&h);
}

static void test_headers_both_ways(void **state)
{
	uint16_t port;
	tern_http *h = start(0, &port);
	char buf[4096];

	(void)state;
	assert_int_equal(ask(port,
	                     "DELETE /v1/headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                     "X-One: 1.0.0\r\nAuthorization: Bearer " TOKEN "\r\n\r\n",
	                     buf, sizeof(buf)),
	                 204);
	assert_non_null(strstr(buf, "X-Got: [1.0.0]"));
	assert_null(strstr(buf, "X-Injected"));
	assert_null(strstr(buf, "Content-Type"));
	assert_int_equal(ask(port,
	                     "OPTIONS /v1/headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                     "Authorization: Bearer " TOKEN "\r\n\r\n",
	                     buf, sizeof(buf)),
	                 204);
	assert_non_null(strstr(buf, "X-Got: [none]"));
	tern_http_stop(&h);
}

static void test_streamed_body(void **state)
{
	uint16_t port;
	tern_http *h = start(2, &port);
	size_t cap = 2u << 20;
	char *buf = malloc(cap), *body;
	int fd;
	size_t len = 0;
	ssize_t n;

	(void)state;
	assert_non_null(buf);
	freed_streams = 0;
	/* Twice over: the workers and the connection come back after each. */
	for (int round = 0; round < 2; round++) {
		fd = dial(port);
		put(fd, "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		        "Authorization: Bearer " TOKEN "\r\n\r\n");
		len = 0;
		while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		close(fd);
		buf[len] = 0;
		assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
		assert_non_null(strstr(buf, "Content-Length: 1000003"));
		body = strstr(buf, "\r\n\r\n");
		assert_non_null(body);
		body += 4;
		assert_int_equal(len - (size_t)(body - buf), STREAM_SIZE);
		for (size_t i = 0; i < STREAM_SIZE; i++)
			if ((uint8_t)body[i] != (uint8_t)(i % 251))
				fail_msg("byte %zu is %u", i, (uint8_t)body[i]);
	}
	/* A stream that fails: the connection closes short of its length. */
	fd = dial(port);
	put(fd, "GET /v1/streamfail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	        "Authorization: Bearer " TOKEN "\r\n\r\n");
	len = 0;
	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
	body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	assert_true(len - (size_t)(body + 4 - buf) < 250000);
	tern_http_stop(&h);
	assert_int_equal(freed_streams, 3);
	free(buf);
}

/* The header's value is "Bearer TOKEN": the scheme in any case, spaces and
 * tabs around the token HTTP's optional white space; a CR or another control
 * character in it (a client that sent a token file's line end) is refused
 * with a 401 that says so. A bare LF ends the header line in HTTP/1.1: what
 * comes before it is the value. */
static void test_authorization_header(void **state)
{
	static const char *const good[] =
	    {
	        "Bearer " TOKEN,      "bearer " TOKEN,       "BEARER  " TOKEN,
	        "Bearer " TOKEN "  ", "Bearer\t" TOKEN "\t", "   Bearer " TOKEN,
	        "Bearer " TOKEN "\n", /* the line ends there: the next one is empty */
	    };
	static const char *const control[] = {"Bearer " TOKEN "\r", "Bearer " TOKEN "\x01",
	                                      "Bearer \x7f" TOKEN};
	static const char *const bad[] = {"Bearer" TOKEN, "Bearer " TOKEN " x", "Bearer x" TOKEN,
	                                  "Bearer", "Token " TOKEN};
	uint16_t port;
	tern_http *h = start(0, &port);
	char req[512], buf[4096];
	uint64_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(req, sizeof(req),
		         "GET /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		         "Authorization: %s\r\n\r\n",
		         good[i]);
		assert_int_equal(ask(port, req, buf, sizeof(buf)), 200);
	}
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++) {
		snprintf(req, sizeof(req),
		         "GET /v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		         "Authorization: %s\r\n\r\n",
		         control[i]);
		assert_int_equal(ask(port, req, buf, sizeof(buf)), 401);
		assert_non_null(strstr(buf, "\"code\": \"unauthorized\""));
		assert_non_null(strstr(buf, "holds a line break or another control character"));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(req, sizeof(req),
		         "GET /v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		         "Authorization: %s\r\n\r\n",
		         bad[i]);
		assert_int_equal(ask(port, req, buf, sizeof(buf)), 401);
		assert_non_null(strstr(buf, "give the token: Authorization: Bearer TOKEN"));
	}
	assert_int_equal(hs.calls, (int)(sizeof(good) / sizeof(good[0])));
	assert_int_equal(tern_http_take_refusals(h, &n), TERN_OK);
	assert_int_equal(n, sizeof(control) / sizeof(control[0]) + sizeof(bad) / sizeof(bad[0]));
	tern_http_stop(&h);
}

static void test_api_needs_a_token(void **state)
{
	tern_http_api api = {"/v1/", "", 1024, 0, handler, NULL, NULL, NULL};
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
	    cmocka_unit_test(test_early_refusal_before_the_body),
	    cmocka_unit_test(test_headers_both_ways),
	    cmocka_unit_test(test_streamed_body),
	    cmocka_unit_test(test_authorization_header),
	    cmocka_unit_test(test_api_needs_a_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

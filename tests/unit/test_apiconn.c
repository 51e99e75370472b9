/* The local API's non-blocking framing (apiconn.h) and the server built on it
 * (apisrv.h): requests are taken as their bytes arrive, however they are cut
 * or joined; a length over the limit is refused on its 4 bytes; a peer that
 * hangs up mid-frame is an ordinary error; a reply larger than the socket
 * buffer goes out over several rounds; a stalled client is closed at its
 * deadline while others are served, and one over the connection cap is
 * answered at once.
 *
 * Over 800 lines on purpose: the framing and the server built on it are one
 * module here, tested by one executable, and the server cases reuse the framing
 * cases' helpers. */
#include <dirent.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/json.h>

#include "apiconn.h"
#include "apisrv.h"
#include "testutil.h"
#include "util.h"

/* A connection on one end of a socket pair; *peer is the client's end. */
static tern_apiconn *pair(size_t max, int *peer)
{
	int sv[2];
	tern_apiconn *c = NULL;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(tern_apiconn_new(sv[0], max, &c), TERN_OK);
	*peer = sv[1];
	return c;
}

/* The frame of a JSON text: 4-byte big-endian length, then the text. */
static size_t frame(const char *text, uint8_t *out)
{
	size_t len = strlen(text);

	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	memcpy(out + 4, text, len);
	return 4 + len;
}

static void test_byte_by_byte(void **state)
{
	uint8_t buf[128];
	size_t n = frame("{\"v\":1,\"op\":\"node.info\"}", buf);
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK); /* nothing yet */
	assert_null(req);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(write(peer, buf + i, 1), 1);
		assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
		if (i + 1 < n) {
			assert_null(req);
			assert_int_equal(tern_apiconn_buffered(c), i + 1);
		}
	}
	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "node.info");
	assert_int_equal(tern_apiconn_buffered(c), 0);
	json_decref(req);
	close(peer);
	tern_apiconn_free(&c);
	assert_null(c);
	tern_apiconn_free(&c); /* NULL-safe */
}

static void test_two_in_one_read(void **state)
{
	uint8_t buf[256];
	size_t n = frame("{\"op\":\"a\"}", buf);
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	n += frame("{\"op\":\"b\"}", buf + n);
	/* and a third but for its last 4 bytes */
	n += frame("{\"op\":\"c\"}", buf + n) - 4;
	assert_int_equal(write(peer, buf, n), (ssize_t)n);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "a");
	json_decref(req);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "b");
	json_decref(req);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_null(req);
	assert_int_equal(tern_apiconn_buffered(c), 4 + 6);
	assert_int_equal(write(peer, "\"c\"}", 4), 4);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "c");
	json_decref(req);
	close(peer);
	tern_apiconn_free(&c);
}

static void test_oversized_prefix(void **state)
{
	uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff}, big[4] = {0, 0, 0x10, 0x01};
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(4096, &peer);

	(void)state;
	/* Refused on its 4 bytes, before any body arrives. */
	assert_int_equal(write(peer, huge, 4), 4);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_ETOOBIG);
	assert_null(req);
	assert_non_null(strstr(tern_errdetail(), "over the limit of 4096"));
	close(peer);
	tern_apiconn_free(&c);

	c = pair(4096, &peer);
	assert_int_equal(write(peer, big, 4), 4); /* 4097: one over */
	assert_int_equal(tern_apiconn_read(c, &req), TERN_ETOOBIG);
	close(peer);
	tern_apiconn_free(&c);
}

/* A client that declares the largest frame and sends little of it holds
 * memory for what it sent, not for what it declared. */
static void test_declared_is_not_held(void **state)
{
	uint8_t hdr[4] = {0x00, 0xff, 0xff, 0xff}, junk[1000];
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	memset(junk, ' ', sizeof(junk));
	assert_int_equal(write(peer, hdr, 4), 4);
	assert_int_equal(write(peer, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_null(req);
	assert_int_equal(tern_apiconn_buffered(c), 4 + sizeof(junk));
	close(peer);
	tern_apiconn_free(&c);
}

static void test_eof(void **state)
{
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	/* mid-frame: the prefix, then half the body */
	assert_int_equal(write(peer, "\0\0\0\x10{\"op\":", 10), 10);
	close(peer);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EIO);
	assert_null(req);
	assert_non_null(strstr(tern_errdetail(), "in the middle of a request"));
	tern_apiconn_free(&c);

	/* before a byte */
	c = pair(TERN_API_MAX_FRAME, &peer);
	close(peer);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EIO);
	assert_non_null(strstr(tern_errdetail(), "closed the connection"));
	tern_apiconn_free(&c);

	/* mid-prefix */
	c = pair(TERN_API_MAX_FRAME, &peer);
	assert_int_equal(write(peer, "\0\0", 2), 2);
	close(peer);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EIO);
	tern_apiconn_free(&c);
}

/* Not JSON, or JSON but not an object: refused, and the stream stays in
 * step (the bad frame is consumed whole). */
static void test_not_json(void **state)
{
	uint8_t buf[128];
	size_t n = frame("not json", buf);
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	n += frame("[1,2]", buf + n);
	n += frame("{\"op\":\"ok\"}", buf + n);
	assert_int_equal(write(peer, buf, n), (ssize_t)n);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EMALFORMED);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EMALFORMED);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "ok");
	json_decref(req);
	close(peer);
	tern_apiconn_free(&c);
}

/* Binary frames (top bit of the length): taken as bytes where the daemon
 * accepts them, between JSON requests; refused as malformed where it does not,
 * and the stream stays in step either way. */
static void test_binary_frames(void **state)
{
	uint8_t buf[128], *bin = NULL;
	size_t n = frame("{\"op\":\"a\"}", buf), binlen = 0;
	json_t *req = NULL;
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	n += frame("\x08\x01\x12\x01x", buf + n); /* 5 bytes of protobuf */
	buf[n - 9] |= 0x80;
	n += frame("{\"op\":\"b\"}", buf + n);
	assert_int_equal(write(peer, buf, n), (ssize_t)n);
	assert_int_equal(tern_apiconn_read_any(c, &req, &bin, &binlen), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "a");
	assert_null(bin);
	json_decref(req);
	assert_int_equal(tern_apiconn_read_any(c, &req, &bin, &binlen), TERN_OK);
	assert_null(req);
	assert_non_null(bin);
	assert_int_equal(binlen, 5);
	assert_memory_equal(bin, "\x08\x01\x12\x01x", 5);
	free(bin);
	assert_int_equal(tern_apiconn_read_any(c, &req, &bin, &binlen), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "b");
	json_decref(req);
	/* Where binary is not taken: malformed, consumed, the next one read. */
	assert_int_equal(write(peer, buf, n), (ssize_t)n);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	json_decref(req);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EMALFORMED);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "b");
	json_decref(req);
	close(peer);
	tern_apiconn_free(&c);
}

/* An error message cut by its buffer inside a UTF-8 character, or quoting
 * bytes that are not UTF-8, is still an answer (json_pack refused it and the
 * client was left waiting for good). */
static void test_error_utf8(void **state)
{
	char longid[1024] = "a";
	json_t *e;
	const char *m;

	(void)state;
	for (int i = 0; i < 300; i++)
		strcat(longid, "\xe2\x82\xac"); /* EURO SIGN */
	e = tern_api_error(TERN_ENOENT, "no message %s in this inbox", longid);
	assert_non_null(e);
	m = json_string_value(json_object_get(e, "message"));
	assert_non_null(m);
	assert_true(tern_utf8_valid(m, strlen(m)));
	json_decref(e);
	e = tern_api_error(TERN_EINVAL, "bad %s", "\xff\xfe\xc0\xaf");
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "message")), "bad ????");
	json_decref(e);
}

/* A request larger than one read's budget completes over several calls. */
static void test_large_request(void **state)
{
	size_t blen = 3 * 1024 * 1024, got = 0;
	char *text = malloc(blen + 32);
	uint8_t *buf = malloc(blen + 64);
	size_t n, off = 0;
	json_t *req = NULL;
	int peer, calls = 0;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	assert_non_null(text);
	assert_non_null(buf);
	strcpy(text, "{\"s\":\"");
	memset(text + 6, 'x', blen);
	strcpy(text + 6 + blen, "\"}");
	n = frame(text, buf);
	while (req == NULL) {
		ssize_t w = off < n ? send(peer, buf + off, n - off, MSG_DONTWAIT) : 0;
		if (w > 0)
			off += (size_t)w;
		assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
		calls++;
		assert_true(calls < 100000);
	}
	got = strlen(json_string_value(json_object_get(req, "s")));
	assert_int_equal(got, blen);
	assert_true(calls > 1);
	json_decref(req);
	free(text);
	free(buf);
	close(peer);
	tern_apiconn_free(&c);
}

/* A reply larger than the socket buffer: flush writes what fits and says what
 * is left; after the client reads, POLLOUT and flush again, until all of it
 * arrived, byte for byte. */
static void test_large_reply(void **state)
{
	size_t slen = 1024 * 1024, have = 0, cap = slen + 64, left = 0;
	char *s = malloc(slen + 1);
	uint8_t *rx = malloc(cap);
	json_t *obj, *back;
	int peer, rounds = 0, small = 4096;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	assert_non_null(s);
	assert_non_null(rx);
	memset(s, 'y', slen);
	s[slen] = 0;
	obj = json_pack("{s:b, s:s}", "ok", 1, "blob", s);
	setsockopt(tern_apiconn_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	assert_int_equal(tern_apiconn_queue_reply(c, obj), TERN_OK);
	assert_int_equal(tern_apiconn_unsent(c), 4 + strlen("{\"ok\":true,\"blob\":\"\"}") + slen);
	assert_int_equal(tern_apiconn_flush(c, &left), TERN_OK);
	assert_true(left > 0); /* did not fit: no wait, the rest is kept */
	while (left > 0) {
		struct pollfd p = {tern_apiconn_fd(c), POLLOUT, 0};
		ssize_t r;
		while ((r = recv(peer, rx + have, cap - have, MSG_DONTWAIT)) > 0)
			have += (size_t)r;
		assert_int_equal(poll(&p, 1, 1000), 1);
		assert_int_equal(tern_apiconn_flush(c, &left), TERN_OK);
		assert_int_equal(tern_apiconn_unsent(c), left);
		rounds++;
		assert_true(rounds < 100000);
	}
	for (ssize_t r; (r = recv(peer, rx + have, cap - have, MSG_DONTWAIT)) > 0;)
		have += (size_t)r;
	assert_true(rounds > 1);
	assert_true(have >= 4);
	assert_int_equal((size_t)rx[0] << 24 | (size_t)rx[1] << 16 | (size_t)rx[2] << 8 | rx[3],
	                 have - 4);
	back = json_loadb((const char *)rx + 4, have - 4, 0, NULL);
	assert_non_null(back);
	assert_true(json_equal(back, obj));
	json_decref(back);
	json_decref(obj);
	free(s);
	free(rx);
	close(peer);
	tern_apiconn_free(&c);
}

static void test_flush_to_gone_peer(void **state)
{
	json_t *obj = json_pack("{s:b}", "ok", 1);
	int peer;
	tern_apiconn *c = pair(TERN_API_MAX_FRAME, &peer);

	(void)state;
	close(peer);
	assert_int_equal(tern_apiconn_queue_reply(c, obj), TERN_OK);
	assert_int_equal(tern_apiconn_flush(c, NULL), TERN_EIO); /* no SIGPIPE either */
	json_decref(obj);
	tern_apiconn_free(&c);
}


/* --- descriptors passed with requests (docs/api.md, "Files by descriptor") ------- */

/* Descriptors this process has open. */
static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static int scratch_file(void)
{
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = dup(fileno(f));
	fclose(f);
	return fd;
}

static int same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* Closes of passed descriptors happen on the closer thread (fdclose.h):
 * until this process has want open, or a second passes. */
static int open_fds_reach(int want)
{
	for (int i = 0; i < 100 && open_fds() != want; i++)
		usleep(10000);
	return open_fds();
}

/* Two pipelined requests with one and two descriptors: each takes exactly
 * its own (the first read stops at the first request's end, so none of
 * the second's is held meanwhile); asking for another number takes
 * nothing; what a request leaves is released once it is handled. */
static void test_fds_in_order(void **state)
{
	int peer, f1 = scratch_file(), f23[2] = {scratch_file(), scratch_file()}, got[3], base;
	tern_apiconn *c = pair(1024, &peer);
	json_t *a = json_pack("{s:s}", "op", "a"), *b = json_pack("{s:s}", "op", "b"), *req;

	(void)state;
	tern_apiconn_set_max_fds(c, 4);
	base = open_fds();
	assert_int_equal(tern_api_write_fds(peer, a, &f1, 1), TERN_OK);
	assert_int_equal(tern_api_write_fds(peer, b, f23, 2), TERN_OK);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "a");
	json_decref(req);
	assert_int_equal(tern_apiconn_fds_held(c), 1); /* not b's yet */
	assert_int_equal(tern_apiconn_take_fds(c, got, 2), TERN_EINVAL); /* a brought one */
	assert_int_equal(tern_apiconn_take_fds(c, got, 1), TERN_OK);
	assert_true(same_file(got[0], f1));
	close(got[0]);
	assert_int_equal(tern_apiconn_release_fds(c, 0), 0);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "op")), "b");
	json_decref(req);
	assert_int_equal(tern_apiconn_fds_held(c), 2);
	assert_int_equal(tern_apiconn_take_fds(c, got, 3), TERN_EINVAL);
	assert_int_equal(tern_apiconn_take_fds(c, got, 2), TERN_OK);
	assert_true(same_file(got[0], f23[0]) && same_file(got[1], f23[1]));
	close(got[0]);
	close(got[1]);
	assert_int_equal(open_fds(), base);
	/* b2 brings one and takes none: released when handled */
	assert_int_equal(tern_api_write_fds(peer, b, &f1, 1), TERN_OK);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	json_decref(req);
	assert_int_equal(open_fds(), base + 1);
	assert_int_equal(tern_apiconn_release_fds(c, 0), 1);
	assert_int_equal(tern_apiconn_fds_held(c), 0);
	assert_int_equal(open_fds_reach(base), base);
	json_decref(a);
	json_decref(b);
	close(f1);
	close(f23[0]);
	close(f23[1]);
	close(peer);
	tern_apiconn_free(&c);
}

/* A connection that takes no descriptors (the broker's control socket), or
 * more than it holds: the read fails and nothing stays open in this
 * process; descriptors never taken are closed with the connection. */
static void test_fds_refused_and_closed(void **state)
{
	int peer, f = scratch_file(), two[2] = {f, f}, base;
	tern_apiconn *c = pair(1024, &peer);
	json_t *a = json_pack("{s:s}", "op", "a"), *req = NULL;

	(void)state;
	base = open_fds();
	assert_int_equal(tern_api_write_fds(peer, a, &f, 1), TERN_OK);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EMALFORMED);
	assert_null(req);
	assert_int_equal(open_fds(), base); /* the kernel dropped it */
	tern_apiconn_free(&c);
	close(peer);

	c = pair(1024, &peer);
	tern_apiconn_set_max_fds(c, 1);
	base = open_fds();
	assert_int_equal(tern_api_write_fds(peer, a, two, 2), TERN_OK);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_EMALFORMED);
	tern_apiconn_free(&c);
	close(peer);
	assert_int_equal(open_fds_reach(base - 2), base - 2);

	c = pair(1024, &peer);
	tern_apiconn_set_max_fds(c, 1);
	base = open_fds();
	assert_int_equal(tern_api_write_fds(peer, a, &f, 1), TERN_OK);
	assert_int_equal(tern_apiconn_read(c, &req), TERN_OK);
	json_decref(req);
	assert_int_equal(open_fds(), base + 1); /* held */
	tern_apiconn_free(&c);
	close(peer);
	assert_int_equal(open_fds_reach(base - 2), base - 2);
	json_decref(a);
	close(f);
}

/* --- the server ------------------------------------------------------------------ */

struct srv_fixture {
	char dir[256], path[300];
	tern_apisrv *srv;
	int parked; /* the connection the handler parked, or -1 */
	int calls;
	int gone; /* the connection o.gone was told of, or -1 */
};

static int on_gone(void *arg, int conn)
{
	struct srv_fixture *f = arg;

	f->gone = conn;
	return 1;
}

/* Answers "echo" at once; parks "wait". */
static json_t *handler(void *arg, int conn, json_t *req, uid_t uid)
{
	struct srv_fixture *f = arg;
	const char *op = json_string_value(json_object_get(req, "op"));

	(void)uid;
	f->calls++;
	if (op && strcmp(op, "wait") == 0) {
		f->parked = conn;
		return NULL;
	}
	if (op && strcmp(op, "take") == 0) {
		int fds[4];
		size_t n = (size_t)json_integer_value(json_object_get(req, "n"));
		int rc = tern_apisrv_take_fds(f->srv, conn, fds, n);
		for (size_t i = 0; rc == TERN_OK && i < n; i++)
			close(fds[i]);
		return json_pack("{s:b}", "ok", rc == TERN_OK);
	}
	return json_pack("{s:b, s:s, s:O?}", "ok", 1, "op", op ? op : "", "n",
	                 json_object_get(req, "n"));
}

static int srv_setup(void **state)
{
	struct srv_fixture *f = calloc(1, sizeof(*f));
	tern_apisrv_opts o = {.name = "test",
	                      .max_frame = 65536,
	                      .max_conns = 4,
	                      .request_ms = 300,
	                      .reply_ms = 300,
	                      .max_fds = 2,
	                      .max_fds_total = 3,
	                      .gone = on_gone};
	int fd;

	if (f == NULL || tt_mkdtemp(f->dir, sizeof(f->dir), "apisrv") != 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/api.sock", f->dir);
	if (tern_api_listen(f->path, &fd) != TERN_OK ||
	    tern_apisrv_new(fd, &o, handler, f, &f->srv) != TERN_OK)
		return -1;
	f->parked = -1;
	f->gone = -1;
	*state = f;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv_fixture *f = *state;

	tern_apisrv_free(&f->srv);
	tt_rmtree(f->dir);
	free(f);
	return 0;
}

/* One round of a daemon's loop. */
static void srv_round(struct srv_fixture *f, int timeout_ms)
{
	zmq_pollitem_t items[TERN_APISRV_POLL_MAX(4)];
	size_t n = tern_apisrv_pollitems(f->srv, items, TERN_APISRV_POLL_MAX(4));
	int rc = zmq_poll(items, (int)n, timeout_ms);

	tern_apisrv_serve(f->srv, items, n, rc > 0, tern_now_ms());
}

/* Rounds until fd has a whole reply, or ms pass; the reply or NULL. */
static json_t *reply_within(struct srv_fixture *f, int fd, int ms)
{
	int64_t end = tern_now_ms() + ms;
	uint8_t buf[4096];
	size_t have = 0;

	while (tern_now_ms() < end) {
		ssize_t r;
		srv_round(f, 10);
		while ((r = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT)) > 0)
			have += (size_t)r;
		if (have >= 4) {
			size_t len = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 |
			             (size_t)buf[2] << 8 | buf[3];
			if (have >= 4 + len)
				return json_loadb((const char *)buf + 4, len, 0, NULL);
		}
	}
	return NULL;
}

static int client(struct srv_fixture *f)
{
	int fd;

	assert_int_equal(tern_api_connect(f->path, &fd), TERN_OK);
	return fd;
}

static void send_frame(int fd, const char *text)
{
	uint8_t buf[512];
	size_t n = frame(text, buf);

	assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

/* A client stalled mid-prefix does not hold up the next; it is closed at its
 * deadline, with an error it may read. */
static void test_srv_stalled_client(void **state)
{
	struct srv_fixture *f = *state;
	int stalled = client(f), good = client(f);
	json_t *r;
	char c;

	assert_int_equal(write(stalled, "\0\0", 2), 2);
	srv_round(f, 10);
	send_frame(good, "{\"op\":\"echo\"}");
	r = reply_within(f, good, 200);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "op")), "echo");
	json_decref(r);
	/* The good one stays open for its next request; closed, it is gone. */
	assert_int_equal(tern_apisrv_count(f->srv), 2);
	close(good);
	for (int i = 0; i < 5 && tern_apisrv_count(f->srv) > 1; i++)
		srv_round(f, 10);
	assert_int_equal(tern_apisrv_count(f->srv), 1);
	r = reply_within(f, stalled, 1000);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "io");
	json_decref(r);
	assert_int_equal(read(stalled, &c, 1), 0); /* closed */
	assert_int_equal(tern_apisrv_count(f->srv), 0);
	close(stalled);
}

/* Rounds until fd has n whole replies, or ms pass; the "n" of each in turn
 * into got; how many came. */
static int replies_within(struct srv_fixture *f, int fd, int ms, int n, json_int_t *got)
{
	int64_t end = tern_now_ms() + ms;
	uint8_t buf[8192];
	size_t have = 0, at = 0;
	int k = 0;

	while (k < n && tern_now_ms() < end) {
		ssize_t r;
		srv_round(f, 10);
		while ((r = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT)) > 0)
			have += (size_t)r;
		while (k < n && have - at >= 4) {
			size_t len = (size_t)buf[at] << 24 | (size_t)buf[at + 1] << 16 |
			             (size_t)buf[at + 2] << 8 | buf[at + 3];
			json_t *j;
			if (have - at < 4 + len)
				break;
			j = json_loadb((const char *)buf + at + 4, len, 0, NULL);
			assert_non_null(j);
			got[k++] = json_integer_value(json_object_get(j, "n"));
			json_decref(j);
			at += 4 + len;
		}
	}
	return k;
}

/* One connection carries many requests, sent ahead of their answers: each is
 * answered, in order, and a request parked in the middle holds back the ones
 * behind it (never answered out of turn). */
static void test_srv_pipelined(void **state)
{
	struct srv_fixture *f = *state;
	int fd = client(f);
	json_int_t got[8] = {0};
	char text[64];

	for (int i = 1; i <= 3; i++) {
		snprintf(text, sizeof(text), "{\"op\":\"echo\",\"n\":%d}", i);
		send_frame(fd, text);
	}
	send_frame(fd, "{\"op\":\"wait\",\"n\":4}");
	send_frame(fd, "{\"op\":\"echo\",\"n\":5}");
	assert_int_equal(replies_within(f, fd, 500, 3, got), 3);
	assert_int_equal(got[0], 1);
	assert_int_equal(got[1], 2);
	assert_int_equal(got[2], 3);
	/* Parked: nothing more comes, however long the loop runs. */
	assert_int_equal(replies_within(f, fd, 100, 1, got), 0);
	assert_true(f->parked >= 0);
	assert_int_equal(f->calls, 4);
	assert_int_equal(
	    tern_apisrv_reply(f->srv, f->parked, json_pack("{s:b,s:i}", "ok", 1, "n", 4)), TERN_OK);
	assert_int_equal(replies_within(f, fd, 500, 2, got), 2);
	assert_int_equal(got[0], 4);
	assert_int_equal(got[1], 5);
	assert_int_equal(tern_apisrv_count(f->srv), 1); /* still open */
	close(fd);
}

/* A connection idle past the request deadline after an answer is closed
 * without an error reply: nothing was cut short. */
static void test_srv_idle_keepalive(void **state)
{
	struct srv_fixture *f = *state;
	int fd = client(f);
	json_t *r;
	char c;

	send_frame(fd, "{\"op\":\"echo\"}");
	r = reply_within(f, fd, 200);
	assert_non_null(r);
	json_decref(r);
	for (int i = 0; i < 50 && tern_apisrv_count(f->srv) > 0; i++) /* request_ms is 300 */
		srv_round(f, 10);
	assert_int_equal(tern_apisrv_count(f->srv), 0);
	assert_int_equal(read(fd, &c, 1), 0); /* closed, no error sent */
	close(fd);
}

struct client_run {
	struct srv_fixture *f;
	tern_api_client c;
	int ncalls;
	int rc[4];
	json_int_t n[4];
	int fd[4];
	volatile int done;
};

static void *client_thread(void *arg)
{
	struct client_run *r = arg;

	for (int i = 0; i < r->ncalls; i++) {
		json_t *req = json_pack("{s:s, s:i}", "op", "echo", "n", i + 1), *resp = NULL;
		r->rc[i] = tern_api_client_call(&r->c, r->f->path, req, 2000, &resp);
		r->n[i] = json_integer_value(json_object_get(resp, "n"));
		r->fd[i] = r->c.fd;
		json_decref(req);
		json_decref(resp);
	}
	r->done = 1;
	return NULL;
}

static void run_client(struct client_run *r)
{
	pthread_t th;

	r->done = 0;
	assert_int_equal(pthread_create(&th, NULL, client_thread, r), 0);
	for (int i = 0; i < 300 && !r->done; i++)
		srv_round(r->f, 10);
	pthread_join(th, NULL);
}

/* A kept client connection carries call after call; once the daemon has
 * closed it for idleness, the next call connects again and succeeds. */
static void test_srv_kept_client(void **state)
{
	struct client_run r = {.f = *state, .c = TERN_API_CLIENT_INIT, .ncalls = 3};

	run_client(&r);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r.rc[i], TERN_OK);
		assert_int_equal(r.n[i], i + 1);
		assert_int_equal(r.fd[i], r.fd[0]); /* one connection */
	}
	assert_int_equal(tern_apisrv_count(r.f->srv), 1);
	for (int i = 0; i < 50 && tern_apisrv_count(r.f->srv) > 0; i++) /* request_ms 300 */
		srv_round(r.f, 10);
	assert_int_equal(tern_apisrv_count(r.f->srv), 0); /* closed by the server */
	r.ncalls = 1;
	run_client(&r);
	assert_int_equal(r.rc[0], TERN_OK);
	assert_int_equal(r.n[0], 1);
	tern_api_client_close(&r.c);
	assert_int_equal(r.c.fd, -1);
}

/* Beyond max_conns, a connection is answered at once and closed; a length
 * over the limit gets "too-large" at once. */
static void test_srv_cap_and_too_large(void **state)
{
	struct srv_fixture *f = *state;
	int fds[4], extra, big;
	uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
	json_t *r;

	for (int i = 0; i < 4; i++)
		fds[i] = client(f);
	srv_round(f, 10);
	assert_int_equal(tern_apisrv_count(f->srv), 4);
	extra = client(f);
	r = reply_within(f, extra, 200);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "no-memory");
	json_decref(r);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(extra);
	for (int i = 0; i < 5 && tern_apisrv_count(f->srv) > 0; i++)
		srv_round(f, 10);
	assert_int_equal(tern_apisrv_count(f->srv), 0);

	big = client(f);
	assert_int_equal(write(big, huge, 4), 4);
	r = reply_within(f, big, 200);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "too-large");
	json_decref(r);
	close(big);
}

/* A parked client is neither read nor timed out; the daemon answers it later. */
static void test_srv_parked(void **state)
{
	struct srv_fixture *f = *state;
	int fd = client(f);
	json_t *r;

	send_frame(fd, "{\"op\":\"wait\"}");
	for (int i = 0; i < 50; i++) /* well past request_ms and reply_ms */
		srv_round(f, 10);
	assert_true(f->parked >= 0);
	assert_int_equal(tern_apisrv_count(f->srv), 1);
	assert_int_equal(tern_apisrv_reply(f->srv, f->parked, json_pack("{s:b}", "ok", 1)),
	                 TERN_OK);
	r = reply_within(f, fd, 200);
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(tern_apisrv_reply(f->srv, f->parked, json_pack("{s:b}", "ok", 1)),
	                 TERN_EINVAL); /* answered already */
	close(fd);
}

/* A parked client that hangs up is let go (the daemon is asked) within about
 * a second; one that only half-closes, still waiting for its answer, is not,
 * and gets it. */
static void test_srv_parked_gone(void **state)
{
	struct srv_fixture *f = *state;
	int quit = client(f), half = client(f), first;
	json_t *r;

	send_frame(quit, "{\"op\":\"wait\"}");
	for (int i = 0; i < 5; i++)
		srv_round(f, 10);
	first = f->parked;
	assert_true(first >= 0);
	send_frame(half, "{\"op\":\"wait\"}");
	for (int i = 0; i < 5; i++)
		srv_round(f, 10);
	assert_true(f->parked >= 0 && f->parked != first);
	assert_int_equal(shutdown(half, SHUT_WR), 0);
	close(quit);
	for (int i = 0; i < 150 && f->gone < 0; i++)
		srv_round(f, 10);
	assert_int_equal(f->gone, first);
	assert_int_equal(tern_apisrv_count(f->srv), 1);
	assert_int_equal(tern_apisrv_reply(f->srv, f->parked, json_pack("{s:b}", "ok", 1)),
	                 TERN_OK);
	r = reply_within(f, half, 200);
	assert_non_null(r);
	json_decref(r);
	close(half);
}


/* The 4 bytes of a frame of len bytes, with descriptors, and no more. */
static void send_hdr_fds(int fd, size_t len, const int *fds, size_t n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                  (uint8_t)len};
	struct iovec iov = {hdr, 4};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
	                   .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *h;

	memset(&ctl, 0, sizeof(ctl));
	h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(h), fds, sizeof(int) * n);
	assert_int_equal(sendmsg(fd, &m, 0), 4);
}

/* The server hands a request's descriptors to its handler and closes
 * those it does not take once it is handled; descriptors held for requests
 * still arriving are bounded in all connections together: past the bound,
 * the connection that brought one more is answered and closed. */
static void test_srv_fds(void **state)
{
	struct srv_fixture *f = *state;
	int a = client(f), b = client(f), c = client(f), file = scratch_file(),
	    two[2] = {file, file};
	json_t *take = json_pack("{s:s, s:i}", "op", "take", "n", 1);
	json_t *wait = json_pack("{s:s}", "op", "wait"), *echo = json_pack("{s:s}", "op", "echo");
	json_t *r;
	int base = open_fds();

	assert_int_equal(tern_api_write_fds(a, take, &file, 1), TERN_OK);
	r = reply_within(f, a, 500);
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* an echo that brings two and takes none: closed once answered */
	assert_int_equal(tern_api_write_fds(a, echo, two, 2), TERN_OK);
	r = reply_within(f, a, 500);
	assert_non_null(r);
	json_decref(r);
	assert_int_equal(open_fds_reach(base + 3), base + 3); /* the server's ends of a, b, c */
	/* c parks with an echo and its descriptors right behind: none of them
	 * is taken while it waits */
	assert_int_equal(tern_api_write_fds(c, wait, NULL, 0), TERN_OK);
	assert_int_equal(tern_api_write_fds(c, echo, two, 2), TERN_OK);
	for (int i = 0; i < 5; i++)
		srv_round(f, 10);
	assert_true(f->parked >= 0);
	assert_int_equal(open_fds(), base + 3);
	/* a's next request is cut after its first bytes, with two
	 * descriptors; b brings two more: one over the bound of three */
	send_hdr_fds(a, 100, two, 2);
	for (int i = 0; i < 5; i++)
		srv_round(f, 10);
	assert_int_equal(tern_api_write_fds(b, echo, two, 2), TERN_OK);
	r = reply_within(f, b, 500);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "error")), "no-memory");
	json_decref(r);
	close(c);
	close(b);
	close(a);
	for (int i = 0; i < 150 && tern_apisrv_count(f->srv) > 0; i++)
		srv_round(f, 10);
	assert_int_equal(open_fds_reach(base - 3), base - 3);
	json_decref(take);
	json_decref(wait);
	json_decref(echo);
	close(file);
}

static tern_apisrv *srv_with(const char *path, size_t max_conns)
{
	tern_apisrv_opts o = {.name = "test", .max_frame = 1024, .max_conns = max_conns};
	tern_apisrv *srv = NULL;
	int fd;

	assert_int_equal(tern_api_listen(path, &fd), TERN_OK);
	assert_int_equal(tern_apisrv_new(fd, &o, handler, NULL, &srv), TERN_OK);
	return srv;
}

/* The clients get at most half the process's descriptors: the soft limit is
 * raised to make room, and when the hard limit does not allow it, fewer are
 * served. Last: it lowers this process's hard limit for good. */
static void test_srv_fd_limit(void **state)
{
	struct srv_fixture *f = *state;
	struct rlimit rl, low;
	tern_apisrv *srv;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048) {
		skip();
		return;
	}
	low = rl;
	low.rlim_cur = 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	srv = srv_with(f->path, 1024);
	assert_int_equal(tern_apisrv_max_conns(srv), 1024);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(low.rlim_cur, 2048);
	tern_apisrv_free(&srv);

	low.rlim_cur = low.rlim_max = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	srv = srv_with(f->path, 1024);
	assert_int_equal(tern_apisrv_max_conns(srv), 50);
	tern_apisrv_free(&srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_two_in_one_read),
	    cmocka_unit_test(test_oversized_prefix),
	    cmocka_unit_test(test_declared_is_not_held),
	    cmocka_unit_test(test_eof),
	    cmocka_unit_test(test_not_json),
	    cmocka_unit_test(test_binary_frames),
	    cmocka_unit_test(test_error_utf8),
	    cmocka_unit_test(test_large_request),
	    cmocka_unit_test(test_large_reply),
	    cmocka_unit_test(test_flush_to_gone_peer),
	    cmocka_unit_test(test_fds_in_order),
	    cmocka_unit_test(test_fds_refused_and_closed),
	    cmocka_unit_test_setup_teardown(test_srv_stalled_client, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_pipelined, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_idle_keepalive, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_kept_client, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_cap_and_too_large, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_parked, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_parked_gone, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_fds, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_srv_fd_limit, srv_setup, srv_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

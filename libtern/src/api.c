#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <tern/api.h>
#include <tern/error.h>

#include "util.h"

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tern_fail(TERN_EIO, "cannot write to the API socket: %s",
			                 strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return TERN_OK;
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tern_fail(TERN_EIO, "cannot read from the API socket: %s",
			                 errno == EAGAIN ? "timed out" : strerror(errno));
		if (n == 0)
			return tern_fail(TERN_EIO, "the API connection closed");
		p += n;
		len -= (size_t)n;
	}
	return TERN_OK;
}

/* Sends the 4 bytes of hdr and then body, with descriptors fds attached
 * (SCM_RIGHTS) to the first sendmsg: the daemon finds them with the
 * request they start. Header and body go in one call, so that a daemon that
 * refuses the request on its first bytes (and closes) finds the body sent
 * already and the client reads the refusal, not a broken pipe. */
static int write_frame_fds(int fd, const uint8_t hdr[4], const void *body, size_t len,
                           const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * TERN_API_MAX_FDS)];
	} ctl;
	struct iovec iov[2] = {{(void *)hdr, 4}, {(void *)body, len}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	struct cmsghdr *h;
	ssize_t n;

	if (nfds > TERN_API_MAX_FDS)
		return tern_fail(TERN_EINVAL, "at most %d file descriptors go with a request",
		                 TERN_API_MAX_FDS);
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return tern_fail(TERN_EIO, "cannot write to the API socket: %s", strerror(errno));
	/* The descriptors went with the first bytes; the rest is plain. */
	if ((size_t)n < 4)
		return write_all(fd, hdr + n, 4 - (size_t)n) == TERN_OK
		           ? write_all(fd, body, len)
		           : TERN_EIO;
	return write_all(fd, (const uint8_t *)body + (n - 4), len - (size_t)(n - 4));
}

int tern_api_write(int fd, const json_t *obj)
{
	return tern_api_write_fds(fd, obj, NULL, 0);
}

int tern_api_write_fds(int fd, const json_t *obj, const int *fds, size_t nfds)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	uint8_t hdr[4];
	size_t len;
	int rc;

	if (text == NULL)
		return tern_fail(TERN_EINVAL, "cannot encode the API message (invalid UTF-8?)");
	len = strlen(text);
	if (len > TERN_API_MAX_FRAME) {
		free(text);
		return tern_fail(TERN_ETOOBIG, "API message of %zu bytes is too large", len);
	}
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	rc = write_frame_fds(fd, hdr, text, len, fds, nfds);
	free(text);
	return rc;
}

int tern_api_write_binary(int fd, const void *buf, size_t len)
{
	uint8_t hdr[4];

	if (len > TERN_API_MAX_FRAME)
		return tern_fail(TERN_ETOOBIG, "API request of %zu bytes is over the limit", len);
	hdr[0] = (uint8_t)(0x80 | (len >> 24));
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	if (write_all(fd, hdr, 4) != TERN_OK)
		return TERN_EIO;
	return write_all(fd, buf, len);
}

int tern_api_read(int fd, size_t max, json_t **out)
{
	uint8_t hdr[4];
	char *buf;
	size_t len;
	json_error_t jerr;
	json_t *obj;
	int rc;

	if ((rc = read_all(fd, hdr, 4)) != TERN_OK)
		return rc;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > max)
		return tern_fail(TERN_ETOOBIG, "API message of %zu bytes is over the limit of %zu",
		                 len, max);
	if ((buf = malloc(len + 1)) == NULL)
		return TERN_ENOMEM;
	if ((rc = read_all(fd, buf, len)) != TERN_OK) {
		free(buf);
		return rc;
	}
	obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (obj == NULL || !json_is_object(obj)) {
		json_decref(obj);
		return tern_fail(TERN_EMALFORMED, "API message is not a JSON object");
	}
	*out = obj;
	return TERN_OK;
}

static int sun_fill(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return tern_fail(TERN_EINVAL, "socket path %s is too long", path);
	strcpy(sun->sun_path, path);
	return TERN_OK;
}

int tern_api_connect(const char *path, int *fd)
{
	struct sockaddr_un sun;
	int s, rc;

	if ((rc = sun_fill(&sun, path)) != TERN_OK)
		return rc;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return tern_fail(TERN_EIO, "socket: %s", strerror(errno));
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;
		close(s);
		if (e == ENOENT || e == ECONNREFUSED)
			return tern_fail(TERN_ENOENT,
			                 "no daemon is listening on %s (is it running?)", path);
		return tern_fail(TERN_EIO, "cannot connect to %s: %s", path, strerror(e));
	}
	*fd = s;
	return TERN_OK;
}

int tern_api_call(const char *path, const json_t *req, int timeout_ms, json_t **resp)
{
	return tern_api_call_fds(path, req, NULL, 0, timeout_ms, resp);
}

int tern_api_call_fds(const char *path, const json_t *req, const int *fds, size_t nfds,
                      int timeout_ms, json_t **resp)
{
	struct timeval tv;
	int fd, rc;

	if ((rc = tern_api_connect(path, &fd)) != TERN_OK)
		return rc;
	if (timeout_ms <= 0)
		timeout_ms = 30000;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = tern_api_write_fds(fd, req, fds, nfds);
	if (rc == TERN_OK)
		rc = tern_api_read(fd, TERN_API_MAX_FRAME, resp);
	close(fd);
	return rc;
}

/* Idle longer than this, a kept connection is not used again: the daemon
 * closes connections idle for TERN_API_REQUEST_MS (10 s). */
#define CLIENT_IDLE_MS 5000

void tern_api_client_close(tern_api_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* 1 if the daemon has closed or reset the connection (EOF or an error
 * waiting): nothing of ours is in flight on it, so it can be dropped. */
static int peer_gone(int fd)
{
	struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};

	return poll(&p, 1, 0) != 0;
}

/* One request on c's connection: JSON (req) or a binary frame (bin). */
static int client_call(tern_api_client *c, const char *path, const json_t *req, const void *bin,
                       size_t blen, int timeout_ms, json_t **resp)
{
	struct timeval tv;
	int rc;

	*resp = NULL;
	if (c->fd >= 0 && (tern_now_ms() - c->last_ms > CLIENT_IDLE_MS || peer_gone(c->fd)))
		tern_api_client_close(c);
	if (c->fd < 0 && (rc = tern_api_connect(path, &c->fd)) != TERN_OK) {
		c->fd = -1;
		return rc;
	}
	if (timeout_ms <= 0)
		timeout_ms = 30000;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = req ? tern_api_write(c->fd, req) : tern_api_write_binary(c->fd, bin, blen);
	if (rc == TERN_OK)
		rc = tern_api_read(c->fd, TERN_API_MAX_FRAME, resp);
	if (rc != TERN_OK)
		tern_api_client_close(c); /* the stream may be out of step */
	else
		c->last_ms = tern_now_ms();
	return rc;
}

int tern_api_client_call(tern_api_client *c, const char *path, const json_t *req, int timeout_ms,
                         json_t **resp)
{
	return client_call(c, path, req, NULL, 0, timeout_ms, resp);
}

int tern_api_client_call_binary(tern_api_client *c, const char *path, const void *buf, size_t len,
                                int timeout_ms, json_t **resp)
{
	return client_call(c, path, NULL, buf, len, timeout_ms, resp);
}

int tern_api_listen(const char *path, int *fd)
{
	struct sockaddr_un sun;
	mode_t old;
	int s, rc;

	if ((rc = sun_fill(&sun, path)) != TERN_OK)
		return rc;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return tern_fail(TERN_EIO, "socket: %s", strerror(errno));
	/* A stale socket file from a crashed daemon would make bind fail. */
	unlink(path);
	old = umask(0177);
	rc = bind(s, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc != 0 || listen(s, 64) != 0) {
		rc = tern_fail(TERN_EIO, "cannot listen on %s: %s", path, strerror(errno));
		close(s);
		return rc;
	}
	*fd = s;
	return TERN_OK;
}

int tern_api_check_peer(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return tern_fail(TERN_EIO, "SO_PEERCRED: %s", strerror(errno));
	if (cred.uid != geteuid() && cred.uid != 0)
		return tern_fail(TERN_EPERM, "API peer uid %u is not this daemon's user",
		                 (unsigned)cred.uid);
	return TERN_OK;
}

/* Replaces each byte of s that is not part of a well-formed UTF-8 sequence
 * with '?': a message may quote what a client sent, or be cut in the middle
 * of a character by the buffer's end, and JSON strings must be UTF-8. */
static void utf8_repair(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80             ? 1
		           : (*p & 0xe0) == 0xc0 ? 2
		           : (*p & 0xf0) == 0xe0 ? 3
		           : (*p & 0xf8) == 0xf0 ? 4
		                                 : 0;
		size_t k = 1;
		if (n == 2 && *p < 0xc2)
			n = 0; /* overlong */
		while (n > 1 && k < n && (p[k] & 0xc0) == 0x80)
			k++;
		if (n == 0 || k < n) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

static json_t *answer(const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static json_t *answer(const char *code, const char *fmt, va_list ap)
{
	char msg[512];
	json_t *e;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	utf8_repair(msg);
	e = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", msg);
	if (e == NULL) /* what jansson still refuses (a surrogate, a code point past U+10FFFF) */
		e = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message",
		              "(the message could not be encoded)");
	return e;
}

json_t *tern_api_error(int code, const char *fmt, ...)
{
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	e = answer(tern_errcode_name(code), fmt, ap);
	va_end(ap);
	return e;
}

json_t *tern_api_refusal(tern_reason reason, const char *fmt, ...)
{
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	e = answer(tern_reason_code(reason), fmt, ap);
	va_end(ap);
	return e;
}

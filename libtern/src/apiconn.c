#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tern/api.h>
#include <tern/error.h>

#include "apiconn.h"
#include "fdclose.h"
#include "util.h"

/* Bytes one read asks for at most, and one tern_apiconn_read takes at most:
 * a 16 MiB request completes over several calls, and the loop serves the
 * others in between. */
#define CHUNK (64u * 1024)
#define READ_BUDGET (1024u * 1024)
/* The first buffer: a small request, prefix and body, in one read. */
#define FIRST_BUF 4096u

/* Descriptors a connection holds at most: what one request may carry
 * (TERN_API_MAX_FDS); more are closed and the connection fails. */
#define FDS_PER_READ TERN_API_MAX_FDS

struct tern_apiconn {
	int fd;
	size_t max;
	/* Descriptors passed with requests (tern_apiconn_set_max_fds), oldest
	 * first, each with the stream offset of the last byte of the read it
	 * came with: a descriptor belongs to the request that byte is in (a
	 * client sends them with a request's first bytes, and a read ends with
	 * the bytes that carried them). */
	int fds[FDS_PER_READ];
	uint64_t fd_at[FDS_PER_READ];
	size_t nfds, max_fds;
	uint64_t base;    /* stream offset of in[0] */
	uint64_t req_end; /* stream offset just past the last request taken */
	uint8_t *in; /* bytes read, starting with the prefix of the request in progress */
	size_t inlen, incap;
	uint8_t *out; /* framed replies; out[outoff..outlen) is unsent */
	size_t outoff, outlen;
};

int tern_apiconn_new(int fd, size_t max_frame, tern_apiconn **out)
{
	tern_apiconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return tern_fail(TERN_ENOMEM, "out of memory for an API connection");
	}
	c->fd = fd;
	c->max = max_frame;
	*out = c;
	return TERN_OK;
}

void tern_apiconn_free(tern_apiconn **cp)
{
	tern_apiconn *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	for (size_t i = 0; i < c->nfds; i++)
		tern_fdclose(c->fds[i]); /* never on the loop: fdclose.h */
	free(c->in);
	free(c->out);
	free(c);
	*cp = NULL;
}

int tern_apiconn_fd(const tern_apiconn *c)
{
	return c->fd;
}

void tern_apiconn_set_max_fds(tern_apiconn *c, size_t max)
{
	c->max_fds = max < FDS_PER_READ ? max : FDS_PER_READ;
}

size_t tern_apiconn_fds_held(const tern_apiconn *c)
{
	return c->nfds;
}

/* How many of the held descriptors came with the last request taken, or
 * before it. */
static size_t fds_of_request(const tern_apiconn *c)
{
	size_t k = 0;

	while (k < c->nfds && c->fd_at[k] < c->req_end)
		k++;
	return k;
}

static void fds_drop_front(tern_apiconn *c, size_t k)
{
	memmove(c->fds, c->fds + k, (c->nfds - k) * sizeof(*c->fds));
	memmove(c->fd_at, c->fd_at + k, (c->nfds - k) * sizeof(*c->fd_at));
	c->nfds -= k;
}

int tern_apiconn_take_fds(tern_apiconn *c, int *fds, size_t n)
{
	size_t k = fds_of_request(c);

	if (n != k)
		return tern_fail(TERN_EINVAL,
		                 "the request names %zu file descriptor(s) and %zu came with it", n,
		                 k);
	memcpy(fds, c->fds, n * sizeof(*fds));
	fds_drop_front(c, n);
	return TERN_OK;
}

size_t tern_apiconn_release_fds(tern_apiconn *c, int all)
{
	size_t k = all ? c->nfds : fds_of_request(c);

	for (size_t i = 0; i < k; i++)
		tern_fdclose(c->fds[i]);
	fds_drop_front(c, k);
	return k;
}

/* recv(2), keeping the descriptors that come with the bytes (SCM_RIGHTS):
 * up to max_fds held; any past that are closed (off the loop: fdclose.h)
 * and the read fails, so that a client cannot fill this process's
 * descriptor table. A connection that takes none, or a closer that is
 * behind, gives the kernel no room for them: it drops them itself, without
 * the flush a close(2) of ours could wait for, and says so (MSG_CTRUNC). */
static ssize_t recv_fds(tern_apiconn *c, void *buf, size_t len, int *toomany)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * FDS_PER_READ)];
	} ctl;
	struct iovec iov = {buf, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (c->max_fds > 0 && !tern_fdclose_busy()) {
		m.msg_control = ctl.buf;
		m.msg_controllen = sizeof(ctl.buf);
	}
	n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	*toomany = 0;
	if (n < 0)
		return n;
	/* What did not fit (none fits without a buffer, or past this
	 * process's table: EMFILE) the kernel dropped. */
	if (m.msg_flags & MSG_CTRUNC)
		*toomany = 1;
	for (struct cmsghdr *h = m.msg_controllen ? CMSG_FIRSTHDR(&m) : NULL; h;
	     h = CMSG_NXTHDR(&m, h)) {
		size_t k;
		int fd;
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (c->nfds < c->max_fds) {
				c->fd_at[c->nfds] = c->base + c->inlen + (uint64_t)n - 1;
				c->fds[c->nfds++] = fd;
			} else {
				tern_fdclose(fd);
				*toomany = 1;
			}
		}
	}
	return n;
}

size_t tern_apiconn_buffered(const tern_apiconn *c)
{
	return c->inlen;
}

size_t tern_apiconn_unsent(const tern_apiconn *c)
{
	return c->outlen - c->outoff;
}

/* The length a prefix declares; its top bit marks a binary frame. */
static size_t frame_len(const uint8_t *p)
{
	return (size_t)(p[0] & 0x7f) << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

static int frame_is_binary(const uint8_t *p)
{
	return (p[0] & 0x80) != 0;
}

/* Room for the next read: up to `want` bytes, but never more at once than
 * what arrived so far (at least 4 KiB, at most 64 KiB), and never past the
 * frame's own end. So memory follows the bytes received (about twice them),
 * never the length a client declares. */
static int make_room(tern_apiconn *c, size_t want, size_t frame_end)
{
	size_t step = c->inlen < FIRST_BUF ? FIRST_BUF : c->inlen, need, cap;
	uint8_t *p;

	if (step > CHUNK)
		step = CHUNK;
	need = c->inlen + (want < step ? want : step);
	if (c->incap >= need)
		return TERN_OK;
	cap = c->incap ? c->incap * 2 : FIRST_BUF;
	if (frame_end && cap > frame_end)
		cap = frame_end > FIRST_BUF ? frame_end : FIRST_BUF;
	if (cap < need)
		cap = need;
	if ((p = realloc(c->in, cap)) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory for an API request");
	c->in = p;
	c->incap = cap;
	return TERN_OK;
}

/* Takes the complete frame at the start of the buffer: JSON into *req, or
 * (binary frames, when bin is given) a copy of its bytes into *bin. */
static int take_frame(tern_apiconn *c, size_t flen, json_t **req, uint8_t **bin, size_t *binlen)
{
	json_error_t jerr;
	json_t *obj = NULL;
	size_t rest = c->inlen - 4 - flen;
	int binary = frame_is_binary(c->in);

	if (binary && bin != NULL) {
		if ((*bin = malloc(flen ? flen : 1)) == NULL)
			return tern_fail(TERN_ENOMEM, "out of memory for an API request");
		memcpy(*bin, c->in + 4, flen);
		*binlen = flen;
	} else if (!binary) {
		obj = json_loadb((const char *)c->in + 4, flen, JSON_REJECT_DUPLICATES, &jerr);
	}
	memmove(c->in, c->in + 4 + flen, rest);
	c->inlen = rest;
	c->base += 4 + flen;
	c->req_end = c->base;
	if (rest == 0 && c->incap > CHUNK) {
		/* A large request went through: do not keep its buffer. */
		free(c->in);
		c->in = NULL;
		c->incap = 0;
	}
	if (binary && bin != NULL)
		return TERN_OK;
	if (binary)
		return tern_fail(TERN_EMALFORMED, "binary API frames are not taken on this socket");
	if (obj == NULL || !json_is_object(obj)) {
		json_decref(obj);
		return tern_fail(TERN_EMALFORMED, "API message is not a JSON object");
	}
	*req = obj;
	return TERN_OK;
}

int tern_apiconn_read(tern_apiconn *c, json_t **req)
{
	return tern_apiconn_read_any(c, req, NULL, NULL);
}

int tern_apiconn_read_any(tern_apiconn *c, json_t **req, uint8_t **bin, size_t *binlen)
{
	size_t taken = 0;
	int rc;

	*req = NULL;
	if (bin != NULL) {
		*bin = NULL;
		*binlen = 0;
	}
	for (;;) {
		size_t flen = 0, want, frame_end = 0;
		ssize_t n;
		int toomany = 0;

		if (c->inlen >= 4) {
			flen = frame_len(c->in);
			/* Refused on its 4 bytes: nothing of it is ever held. */
			if (flen > c->max)
				return tern_fail(
				    TERN_ETOOBIG,
				    "API message of %zu bytes is over the limit of %zu", flen,
				    c->max);
			if (c->inlen - 4 >= flen)
				return take_frame(c, flen, req, bin, binlen);
			frame_end = 4 + flen;
			want = frame_end - c->inlen;
		} else {
			want = 4 - c->inlen;
		}
		if (taken >= READ_BUDGET)
			return TERN_OK; /* the rest on the next round */
		if ((rc = make_room(c, want, frame_end)) != TERN_OK)
			return rc;
		/* On a socket that takes descriptors, never past this request's
		 * bytes: a later request's descriptors would otherwise be held
		 * while this one is handled, or parked for an hour. */
		n = recv_fds(c, c->in + c->inlen,
		             c->max_fds && want < c->incap - c->inlen ? want : c->incap - c->inlen,
		             &toomany);
		if (toomany && c->max_fds == 0)
			return tern_fail(TERN_EMALFORMED,
			                 "file descriptors are not taken on this socket");
		if (toomany)
			return tern_fail(TERN_EMALFORMED,
			                 "file descriptors were dropped: more came than requests take "
			                 "(at most %zu wait at once), or this daemon takes none now",
			                 c->max_fds);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TERN_OK;
		if (n < 0)
			return tern_fail(TERN_EIO, "cannot read from the API socket: %s",
			                 strerror(errno));
		if (n == 0) {
			if (c->inlen == 0)
				return tern_fail(TERN_EIO, "the API client closed the connection");
			return tern_fail(TERN_EIO,
			                 "the API client closed the connection in the middle of "
			                 "a request (%zu bytes of it sent)",
			                 c->inlen);
		}
		c->inlen += (size_t)n;
		taken += (size_t)n;
	}
}

int tern_apiconn_queue_reply(tern_apiconn *c, const json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	size_t len, unsent;
	uint8_t *p;

	if (text == NULL)
		return tern_fail(TERN_EINVAL, "cannot encode the API message (invalid UTF-8?)");
	len = strlen(text);
	if (len > TERN_API_MAX_FRAME) {
		free(text);
		return tern_fail(TERN_ETOOBIG, "API message of %zu bytes is too large", len);
	}
	/* What was written already makes room at the front. */
	unsent = c->outlen - c->outoff;
	if (c->outoff > 0)
		memmove(c->out, c->out + c->outoff, unsent);
	c->outoff = 0;
	c->outlen = unsent;
	if ((p = realloc(c->out, unsent + 4 + len)) == NULL) {
		free(text);
		return tern_fail(TERN_ENOMEM, "out of memory for an API reply");
	}
	c->out = p;
	p += unsent;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, text, len);
	c->outlen += 4 + len;
	free(text);
	return TERN_OK;
}

int tern_apiconn_flush(tern_apiconn *c, size_t *left)
{
	int rc = TERN_OK;

	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			rc = tern_fail(TERN_EIO, "cannot write to the API socket: %s",
			               strerror(errno));
			break;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->outlen) {
		free(c->out);
		c->out = NULL;
		c->outoff = c->outlen = 0;
	}
	if (left)
		*left = c->outlen - c->outoff;
	return rc;
}

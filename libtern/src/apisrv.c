#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/log.h>

#include "apiconn.h"
#include "apisrv.h"
#include "util.h"

/* Accepts per round: a burst of connections waits a round, not the loop. */
#define ACCEPTS_PER_ROUND 64
/* Out of fds (EMFILE): the listening socket stays readable; stop polling it
 * for a while rather than spin. */
#define ACCEPT_PAUSE_MS 100
/* Drops and refusals are logged as counts, at most this often. */
#define LOG_EVERY_MS 10000

enum conn_state { FREE, READING, PARKED, WRITING };

struct conn {
	tern_apiconn *c;
	enum conn_state state;
	int64_t deadline; /* READING: for the request; WRITING: for the reply */
	uid_t uid;
	unsigned served; /* requests answered on this connection */
	int close_after; /* WRITING: close once the reply is out (an error reply) */
	int pending;     /* READING: bytes of a next request are buffered already */
};

struct tern_apisrv {
	int lfd;
	tern_apisrv_opts o;
	tern_apisrv_fn fn;
	void *arg;
	struct conn *conns; /* o.max_conns */
	size_t nopen, hwm;  /* slots in use; none at or past hwm */
	size_t held;        /* bytes buffered in all connections (for max_buffered) */
	size_t fds_held;    /* descriptors passed and not yet taken, in all */
	int *polled;        /* per item of the last pollitems: its connection, -1: listening */
	size_t npolled;
	int64_t accept_paused_until;
	int64_t next_gone_check; /* parked clients that hung up: o.gone */
	/* what was dropped or refused since the last log line */
	struct {
		unsigned request, reply, full, peer, accept;
		unsigned uid;
		int err;
	} drop;
	int64_t last_log;
};

/* The clients may use at most half the process's file descriptors: the rest
 * is for LMDB, ZeroMQ's connections and mailboxes, the HTTP servers. The soft
 * limit is raised (up to the hard one) to make room for max_conns; below
 * that, fewer connections are served. */
static size_t fit_fds(const char *name, size_t want)
{
	struct rlimit rl, up;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= 2 * want)
		return want;
	up = rl;
	up.rlim_cur =
	    rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 2 * want ? 2 * want : rl.rlim_max;
	if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
		rl = up;
	if (rl.rlim_cur >= 2 * want)
		return want;
	log_warnx("%s: the file descriptor limit (%llu) leaves room for %llu connections at once, "
	          "not %zu: raise LimitNOFILE",
	          name, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_cur / 2, want);
	return rl.rlim_cur / 2 > 0 ? (size_t)rl.rlim_cur / 2 : 1;
}

int tern_apisrv_new(int listen_fd, const tern_apisrv_opts *opts, tern_apisrv_fn fn, void *arg,
                    tern_apisrv **out)
{
	tern_apisrv *s;

	if (opts->max_conns == 0 || fn == NULL) {
		close(listen_fd);
		return tern_fail(TERN_EINVAL, "an API server needs max_conns and a handler");
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->conns = calloc(opts->max_conns, sizeof(*s->conns))) == NULL ||
	    (s->polled = calloc(TERN_APISRV_POLL_MAX(opts->max_conns), sizeof(int))) == NULL) {
		if (s)
			free(s->conns);
		free(s);
		close(listen_fd);
		return tern_fail(TERN_ENOMEM, "out of memory for the API server");
	}
	s->lfd = listen_fd;
	s->o = *opts;
	s->o.max_conns = fit_fds(opts->name, opts->max_conns);
	s->fn = fn;
	s->arg = arg;
	s->last_log = INT64_MIN / 2;
	*out = s;
	return TERN_OK;
}

static void conn_close(tern_apisrv *s, int i)
{
	struct conn *k = &s->conns[i];

	s->held -= tern_apiconn_buffered(k->c);
	s->fds_held -= tern_apiconn_fds_held(k->c);
	tern_apiconn_free(&k->c);
	k->state = FREE;
	s->nopen--;
	while (s->hwm > 0 && s->conns[s->hwm - 1].state == FREE)
		s->hwm--;
}

void tern_apisrv_free(tern_apisrv **sp)
{
	tern_apisrv *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	for (size_t i = 0; i < s->hwm; i++)
		tern_apiconn_free(&s->conns[i].c);
	if (s->lfd >= 0)
		close(s->lfd);
	free(s->conns);
	free(s->polled);
	free(s);
	*sp = NULL;
}

int tern_apisrv_take_fds(tern_apisrv *s, int conn, int *fds, size_t n)
{
	struct conn *k;
	int rc;

	if (conn < 0 || (size_t)conn >= s->hwm || (k = &s->conns[conn])->state == FREE)
		return tern_fail(TERN_EINVAL, "no such API connection");
	if ((rc = tern_apiconn_take_fds(k->c, fds, n)) == TERN_OK)
		s->fds_held -= n;
	return rc;
}

size_t tern_apisrv_count(const tern_apisrv *s)
{
	return s->nopen;
}

size_t tern_apisrv_max_conns(const tern_apisrv *s)
{
	return s->o.max_conns;
}

/* Answers on a connection not in the table (refused at the accept) and
 * closes it: a short reply into an empty socket buffer, never a wait. */
static void refuse_now(int fd, json_t *reply)
{
	tern_apiconn *c = NULL;

	if (tern_apiconn_new(fd, 0, &c) == TERN_OK && reply != NULL &&
	    tern_apiconn_queue_reply(c, reply) == TERN_OK)
		tern_apiconn_flush(c, NULL);
	tern_apiconn_free(&c);
	json_decref(reply);
}

/* After a reply: the connection waits for the client's next request (a
 * client may keep one connection for many), with the request deadline again
 * as the most it may stay idle. */
static void next_request(tern_apisrv *s, int i, int64_t now)
{
	struct conn *k = &s->conns[i];

	k->state = READING;
	k->deadline = now + s->o.request_ms;
	k->served++;
	k->pending = tern_apiconn_buffered(k->c) > 0; /* pipelined: no poll will say so */
}

/* Queues reply (taken) on connection i and writes what the socket takes;
 * once all is written, the connection waits for the next request (keep) or
 * closes (after an error that may have left the stream out of step). */
static void send_reply(tern_apisrv *s, int i, json_t *reply, int64_t now, int keep)
{
	struct conn *k = &s->conns[i];
	size_t left = 0;
	int rc = reply ? tern_apiconn_queue_reply(k->c, reply) : TERN_EINVAL;

	json_decref(reply);
	if (rc != TERN_OK && rc != TERN_EINVAL) {
		/* Too large or out of memory: say so rather than close in silence. */
		json_t *e = tern_api_error(rc, "the answer cannot be sent: %s", tern_errdetail());
		rc = e ? tern_apiconn_queue_reply(k->c, e) : TERN_ENOMEM;
		json_decref(e);
	}
	if (rc != TERN_OK || tern_apiconn_flush(k->c, &left) != TERN_OK) {
		conn_close(s, i);
		return;
	}
	if (left == 0) {
		if (keep)
			next_request(s, i, now);
		else
			conn_close(s, i);
		return;
	}
	k->state = WRITING;
	k->deadline = now + s->o.reply_ms;
	k->close_after = !keep;
}

/* Reads connection i; a complete request goes to the handler. */
static void conn_read(tern_apisrv *s, int i, int64_t now)
{
	struct conn *k = &s->conns[i];
	json_t *req = NULL, *reply;
	uint8_t *bin = NULL;
	size_t before = tern_apiconn_buffered(k->c), binlen = 0;
	size_t fds_before = tern_apiconn_fds_held(k->c);
	int rc = s->o.fn_bin ? tern_apiconn_read_any(k->c, &req, &bin, &binlen)
	                     : tern_apiconn_read(k->c, &req);

	s->held = s->held - before + tern_apiconn_buffered(k->c);
	s->fds_held = s->fds_held - fds_before + tern_apiconn_fds_held(k->c);
	if (rc == TERN_OK && s->fds_held > s->o.max_fds_total) {
		/* Descriptors held for requests still to come: bounded in all, so
		 * that clients together cannot fill the daemon's table. */
		json_decref(req);
		free(bin);
		req = NULL;
		bin = NULL;
		rc = tern_fail(TERN_ENOMEM,
		               "%zu file descriptors are held for clients' requests, the most "
		               "this daemon keeps at once; try again",
		               s->o.max_fds_total);
	}
	if (rc == TERN_OK && req == NULL && bin == NULL)
		return;
	if (rc == TERN_EIO) {
		/* Gone: nobody to answer. */
		log_debug("%s: %s", s->o.name, tern_errdetail());
		conn_close(s, i);
		return;
	}
	if (rc != TERN_OK) {
		/* Closing: its descriptors go now, not with the connection. */
		json_t *e = tern_api_error(rc, "%s", tern_errdetail());
		s->fds_held -= tern_apiconn_release_fds(k->c, 1);
		send_reply(s, i, e, now, 0);
		return;
	}
	/* One request at a time per connection: the next is read once this
	 * one is answered, so answers go out in the order of the requests. */
	k->state = PARKED;
	if (bin != NULL)
		reply = s->o.fn_bin(s->arg, i, bin, binlen, k->uid);
	else
		reply = s->fn(s->arg, i, req, k->uid);
	json_decref(req);
	free(bin);
	/* What the handler did not take is not kept for a later request. */
	s->fds_held -= tern_apiconn_release_fds(k->c, 0);
	if (reply != NULL)
		send_reply(s, i, reply, now, 1);
}

static void conn_write(tern_apisrv *s, int i, int64_t now)
{
	size_t left = 0;

	if (tern_apiconn_flush(s->conns[i].c, &left) != TERN_OK ||
	    (left == 0 && s->conns[i].close_after))
		conn_close(s, i);
	else if (left == 0)
		next_request(s, i, now);
}

static int peer_uid(int fd, unsigned *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return tern_fail(TERN_EIO, "SO_PEERCRED: %s", strerror(errno));
	*uid = (unsigned)cred.uid;
	if (cred.uid != geteuid() && cred.uid != 0)
		return tern_fail(TERN_EPERM, "API peer uid %u is not this daemon's user",
		                 (unsigned)cred.uid);
	return TERN_OK;
}

/* Over the budget, requests wait (and their deadlines run) until some
 * connections are done: memory stays bounded whatever clients declare. */
static int under_budget(const tern_apisrv *s)
{
	return s->o.max_buffered == 0 || s->held < s->o.max_buffered;
}

static void accept_some(tern_apisrv *s, int64_t now)
{
	for (int n = 0; n < ACCEPTS_PER_ROUND; n++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		tern_apiconn *c = NULL;
		unsigned uid = (unsigned)-1;
		size_t i;
		int rc;

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (fd < 0) {
			/* EMFILE, ENFILE, ENOBUFS: the connection waits in the
			 * backlog; try again shortly. */
			s->drop.accept++;
			s->drop.err = errno;
			s->accept_paused_until = now + ACCEPT_PAUSE_MS;
			return;
		}
		if ((rc = peer_uid(fd, &uid)) != TERN_OK) {
			s->drop.peer++;
			s->drop.uid = uid;
			refuse_now(fd, tern_api_error(TERN_EPERM, "%s", tern_errdetail()));
			continue;
		}
		if (s->nopen >= s->o.max_conns) {
			s->drop.full++;
			refuse_now(fd, tern_api_error(TERN_ENOMEM,
			                              "%zu connections are open, the most this "
			                              "daemon serves at once; try again",
			                              s->o.max_conns));
			continue;
		}
		for (i = 0; s->conns[i].state != FREE; i++)
			;
		if (tern_apiconn_new(fd, s->o.max_frame, &c) != TERN_OK)
			continue; /* fd closed */
		tern_apiconn_set_max_fds(c, s->o.max_fds);
		s->conns[i] = (struct conn){c, READING, now + s->o.request_ms, (uid_t)uid, 0, 0, 0};
		s->nopen++;
		if (i >= s->hwm)
			s->hwm = i + 1;
		/* The request is usually there already: serve it now. */
		if (under_budget(s))
			conn_read(s, (int)i, now);
	}
}

static void drop_stalled(tern_apisrv *s, int64_t now)
{
	for (size_t i = 0; i < s->hwm; i++) {
		struct conn *k = &s->conns[i];
		if ((k->state != READING && k->state != WRITING) || now < k->deadline)
			continue;
		if (k->state == READING && k->served > 0 && tern_apiconn_buffered(k->c) == 0) {
			/* Idle between requests: closed quietly, nothing was cut short. */
			conn_close(s, (int)i);
			continue;
		}
		if (k->state == READING) {
			/* Best effort: a slow client learns why; never waited for. */
			json_t *e =
			    tern_api_error(TERN_EIO, "no complete request within %lld ms; closing",
			                   (long long)s->o.request_ms);
			if (e && tern_apiconn_queue_reply(k->c, e) == TERN_OK)
				tern_apiconn_flush(k->c, NULL);
			json_decref(e);
			s->drop.request++;
		} else {
			s->drop.reply++;
		}
		conn_close(s, (int)i);
	}
}

/* Appends "; " and a clause to buf (truncated if need be). */
static void clause(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void clause(char *buf, size_t cap, const char *fmt, ...)
{
	size_t off = strlen(buf);
	va_list ap;

	if (off > 0 && off + 2 < cap) {
		memcpy(buf + off, "; ", 3);
		off += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + off, cap - off, fmt, ap);
	va_end(ap);
}

static void log_drops(tern_apisrv *s, int64_t now)
{
	char buf[512] = "";

	if ((s->drop.request | s->drop.reply | s->drop.full | s->drop.peer | s->drop.accept) == 0 ||
	    now - s->last_log < LOG_EVERY_MS)
		return;
	if (s->drop.request)
		clause(buf, sizeof(buf),
		       "closed %u connection(s) with no complete request within %lld ms",
		       s->drop.request, (long long)s->o.request_ms);
	if (s->drop.reply)
		clause(buf, sizeof(buf),
		       "closed %u connection(s) that did not read their reply within %lld ms",
		       s->drop.reply, (long long)s->o.reply_ms);
	if (s->drop.full)
		clause(buf, sizeof(buf), "refused %u connection(s) over the limit of %zu open",
		       s->drop.full, s->o.max_conns);
	if (s->drop.peer)
		clause(buf, sizeof(buf), "refused %u connection(s) from another user (uid %u)",
		       s->drop.peer, s->drop.uid);
	if (s->drop.accept)
		clause(buf, sizeof(buf), "accept failed %u time(s): %s", s->drop.accept,
		       strerror(s->drop.err));
	log_warnx("%s: %s", s->o.name, buf);
	memset(&s->drop, 0, sizeof(s->drop));
	s->last_log = now;
}

size_t tern_apisrv_pollitems(tern_apisrv *s, zmq_pollitem_t *items, size_t cap)
{
	size_t k = 0;
	int reading = under_budget(s);

	if (s->accept_paused_until == 0 && k < cap) {
		items[k] = (zmq_pollitem_t){NULL, s->lfd, ZMQ_POLLIN, 0};
		s->polled[k++] = -1;
	}
	for (size_t i = 0; i < s->hwm && k < cap; i++) {
		short ev = s->conns[i].state == WRITING              ? ZMQ_POLLOUT
		           : s->conns[i].state == READING && reading ? ZMQ_POLLIN
		                                                     : 0;
		if (ev == 0)
			continue;
		items[k] = (zmq_pollitem_t){NULL, tern_apiconn_fd(s->conns[i].c), ev, 0};
		s->polled[k++] = (int)i;
	}
	s->npolled = k;
	return k;
}

/* Parked clients are not polled (their next request waits its turn), so a
 * hang-up is looked for here: POLLHUP, the peer closed its end for good (a
 * half-close, shutdown(SHUT_WR) by a client still waiting for its answer,
 * is POLLRDHUP alone and keeps the connection). */
static void gone_check(tern_apisrv *s, int64_t now)
{
	struct pollfd p[64];
	int idx[64];

	if (s->o.gone == NULL || now < s->next_gone_check)
		return;
	s->next_gone_check = now + 1000;
	for (size_t i = 0; i < s->hwm;) {
		nfds_t np = 0;
		for (; i < s->hwm && np < 64; i++)
			if (s->conns[i].state == PARKED) {
				p[np] = (struct pollfd){tern_apiconn_fd(s->conns[i].c), 0, 0};
				idx[np++] = (int)i;
			}
		if (np == 0 || poll(p, np, 0) <= 0)
			continue;
		for (nfds_t k = 0; k < np; k++)
			if ((p[k].revents & (POLLHUP | POLLERR | POLLNVAL)) &&
			    s->o.gone(s->arg, idx[k]))
				conn_close(s, idx[k]);
	}
}

void tern_apisrv_serve(tern_apisrv *s, const zmq_pollitem_t *items, size_t n, int polled,
                       int64_t now)
{
	int accept = 0;

	if (n > s->npolled)
		n = s->npolled;
	for (size_t k = 0; polled && k < n; k++) {
		int i = s->polled[k];
		struct conn *c;
		if (items[k].revents == 0)
			continue;
		if (i < 0) {
			accept = 1;
			continue;
		}
		c = &s->conns[i];
		/* Each item is about its own connection: none is closed and its
		 * slot reused before the accepts, which come last. */
		if (c->state == READING && tern_apiconn_fd(c->c) == items[k].fd)
			conn_read(s, i, now);
		else if (c->state == WRITING && tern_apiconn_fd(c->c) == items[k].fd)
			conn_write(s, i, now);
	}
	s->npolled = 0;
	/* Requests a client sent ahead of their turn: buffered already, so no
	 * poll wakes for them. A bounded number of rounds per call. */
	for (int round = 0, more = 1; more && round < 64; round++) {
		more = 0;
		for (size_t i = 0; i < s->hwm; i++) {
			struct conn *c = &s->conns[i];
			if (c->state != READING || !c->pending || !under_budget(s))
				continue;
			c->pending = 0;
			conn_read(s, (int)i, now);
			more = 1;
		}
	}
	gone_check(s, now);
	if (s->accept_paused_until && now >= s->accept_paused_until)
		s->accept_paused_until = 0;
	if (accept)
		accept_some(s, now);
	drop_stalled(s, now);
	log_drops(s, now);
}

int tern_apisrv_reply(tern_apisrv *s, int conn, json_t *reply)
{
	if (conn < 0 || (size_t)conn >= s->o.max_conns || s->conns[conn].state != PARKED) {
		json_decref(reply);
		return tern_fail(TERN_EINVAL, "API connection %d is not waiting for a reply", conn);
	}
	send_reply(s, conn, reply, tern_now_ms(), 1);
	return TERN_OK;
}

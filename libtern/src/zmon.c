#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <zmq.h>

#include <tern/error.h>

#include "util.h"
#include "zmon.h"

#define BATCH 256
#define MAX_CONNS 8192 /* beyond, new connections' peers are unknown */

struct conn {
	int fd;
	char peer[72];
};

struct tern_zmon {
	void *monitor;
	struct conn *conns; /* accepted, not yet disconnected */
	size_t nconns, capconns;
	tern_zmon_event next[BATCH]; /* read ahead, to check the addresses of the last batch */
	size_t nnext;
	tern_zmon_event pending; /* a failure waiting for its DISCONNECTED */
	int has_pending;
};

int tern_zmon_new(void *monitor, tern_zmon **out)
{
	tern_zmon *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return TERN_ENOMEM;
	m->monitor = monitor;
	*out = m;
	return TERN_OK;
}

int tern_zmon_attach(void *ctx, void *sock, const char *endpoint, int events, void **reader)
{
	int unlimited = 0, zero = 0;
	void *r;

	*reader = NULL;
	/* The pipe's limits are fixed when the reader connects, from its
	 * receive limit (none) and the monitor socket's: so the options first,
	 * then the monitor, then the connect. An event emitted in between waits
	 * for the connect, a moment later. */
	if ((r = zmq_socket(ctx, ZMQ_PAIR)) == NULL)
		return tern_fail(TERN_EIO, "socket monitor: %s", zmq_strerror(errno));
	if (zmq_setsockopt(r, ZMQ_RCVHWM, &unlimited, sizeof(unlimited)) != 0 ||
	    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_socket_monitor(sock, endpoint, events) != 0) {
		int e = errno;
		zmq_close(r);
		return tern_fail(TERN_EIO, "socket monitor: %s", zmq_strerror(e));
	}
	if (zmq_connect(r, endpoint) != 0) {
		int e = errno;
		zmq_socket_monitor(sock, NULL, 0);
		zmq_close(r);
		return tern_fail(TERN_EIO, "socket monitor: %s", zmq_strerror(e));
	}
	*reader = r;
	return TERN_OK;
}

void tern_zmon_detach(void *sock, void **reader)
{
	if (sock != NULL)
		zmq_socket_monitor(sock, NULL, 0);
	if (reader != NULL && *reader != NULL) {
		zmq_close(*reader);
		*reader = NULL;
	}
}

void tern_zmon_free(tern_zmon **mp)
{
	if (mp == NULL || *mp == NULL)
		return;
	free((*mp)->conns);
	free(*mp);
	*mp = NULL;
}

/* Appends what the monitor holds now to ev (at most BATCH in all). */
static size_t read_events(void *monitor, tern_zmon_event *ev, size_t n)
{
	while (n < BATCH) {
		zmq_msg_t head, addr;
		tern_zmon_event *e = &ev[n];

		zmq_msg_init(&head);
		if (zmq_msg_recv(&head, monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&head);
			break;
		}
		memset(e, 0, sizeof(*e));
		if (zmq_msg_size(&head) >= 6) {
			memcpy(&e->event, zmq_msg_data(&head), 2);
			memcpy(&e->value, (const char *)zmq_msg_data(&head) + 2, 4);
		}
		zmq_msg_close(&head);
		/* The second frame names the listening endpoint: nothing to learn. */
		zmq_msg_init(&addr);
		zmq_msg_recv(&addr, monitor, 0);
		zmq_msg_close(&addr);
		n++;
	}
	return n;
}

static void peer_of(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	buf[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&ss;
		if (inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip)))
			snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(s->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&ss;
		if (inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip)))
			snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(s->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(buf, len, "local pid %ld uid %u", (long)cr.pid, (unsigned)cr.uid);
	}
}

static int disconnects(const tern_zmon_event *ev, size_t from, size_t n, uint32_t fd)
{
	for (size_t i = from; i < n; i++)
		if (ev[i].event == ZMQ_EVENT_DISCONNECTED && ev[i].value == fd)
			return 1;
	return 0;
}

static struct conn *conn_find(tern_zmon *m, int fd)
{
	for (size_t i = 0; i < m->nconns; i++)
		if (m->conns[i].fd == fd)
			return &m->conns[i];
	return NULL;
}

static void conn_add(tern_zmon *m, int fd, const char *peer)
{
	struct conn *c = conn_find(m, fd);

	if (c == NULL) {
		if (m->nconns == MAX_CONNS)
			return;
		if (m->nconns == m->capconns) {
			size_t cap = m->capconns ? m->capconns * 2 : 64;
			struct conn *p = realloc(m->conns, cap * sizeof(*p));
			if (p == NULL)
				return; /* its peer will be unknown */
			m->conns = p;
			m->capconns = cap;
		}
		c = &m->conns[m->nconns++];
	}
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
}

static void conn_del(tern_zmon *m, int fd, char *peer, size_t len)
{
	struct conn *c = conn_find(m, fd);

	peer[0] = '\0';
	if (c == NULL)
		return;
	snprintf(peer, len, "%s", c->peer);
	*c = m->conns[--m->nconns];
}

static int is_unauthenticated_failure(uint16_t ev)
{
	return ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
	       ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
}

void tern_zmon_drain(tern_zmon *m, tern_zmon_cb *cb, void *arg)
{
	tern_zmon_event ev[BATCH];
	size_t n;

	m->nnext = read_events(m->monitor, m->next, m->nnext);
	while ((n = m->nnext) > 0) {
		memcpy(ev, m->next, n * sizeof(ev[0]));
		/* Addresses first, while the connections are (most likely) open... */
		for (size_t i = 0; i < n; i++)
			if (ev[i].event == ZMQ_EVENT_ACCEPTED &&
			    !disconnects(ev, i + 1, n, ev[i].value))
				peer_of((int)ev[i].value, ev[i].peer, sizeof(ev[i].peer));
		/* ...then what arrived meanwhile: a DISCONNECTED there may have been
		 * emitted, and its descriptor closed and reused, before getpeername. */
		m->nnext = read_events(m->monitor, m->next, 0);
		for (size_t i = 0; i < n; i++)
			if (ev[i].event == ZMQ_EVENT_ACCEPTED &&
			    disconnects(m->next, 0, m->nnext, ev[i].value))
				ev[i].peer[0] = '\0';
		for (size_t i = 0; i < n; i++) {
			tern_zmon_event *e = &ev[i];

			if (m->has_pending && e->event != ZMQ_EVENT_DISCONNECTED) {
				/* Not followed by its DISCONNECTED: the peer cannot be told. */
				m->has_pending = 0;
				cb(arg, &m->pending);
			}
			if (e->event == ZMQ_EVENT_ACCEPTED) {
				conn_add(m, (int)e->value, e->peer);
			} else if (e->event == ZMQ_EVENT_DISCONNECTED) {
				conn_del(m, (int)e->value, e->peer, sizeof(e->peer));
				if (m->has_pending) {
					snprintf(m->pending.peer, sizeof(m->pending.peer), "%s",
					         e->peer);
					m->has_pending = 0;
					cb(arg, &m->pending);
				}
			} else if (is_unauthenticated_failure(e->event)) {
				m->pending = *e;
				m->has_pending = 1;
				continue;
			}
			cb(arg, e);
		}
	}
}

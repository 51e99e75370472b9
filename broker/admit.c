/* Admission: who may connect (the ZAP handler, at each CurveZMQ handshake)
 * and who may still speak or be delivered to under the directory in force
 * (every frame, and a sweep at start and after each reload). A member no
 * longer admitted has its session closed, its connection shut, and what is
 * queued for it dead-lettered when the bar is final.
 *
 * Touches: b->zap, b->closing, the peers' session state (session_close),
 * the store (audit entries, dead letters), b->m.revoked_dead and
 * b->m.removed_dead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>

#include "broker_int.h"
#include "hop.h"
#include "util.h"

/* --- who may speak, now --------------------------------------------------- */

/* Why id may no longer speak or be delivered to under the directory in force
 * (a code: "revoked", "removed", "expired", "broker"), or NULL when it may.
 * The ZAP handler judges a connection once, at its handshake; this judges
 * every frame, so that a reload or a lapse takes effect at once. */
const char *peer_barred(const broker *b, const char *id, int64_t now_ms)
{
	const tern_member *m;

	if (tern_directory_find(b->id.dir, id, &m) != TERN_OK)
		return "removed";
	if (m->revoked)
		return "revoked";
	if (m->roles & TERN_ROLE_BROKER)
		return "broker";
	if (tern_member_expired(m, now_ms / 1000))
		return "expired";
	return NULL;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

/* libzmq 4.3 has no call that closes one peer of a ROUTER. The broker shuts
 * down the connection's socket itself (its fd, as ZMQ_SRCFD gave it at the
 * Hello), but only while both ends are still the ones recorded then: the fd
 * may since have been closed and reused for another connection. libzmq then
 * sees the connection end and cleans up as for any lost peer; the node's
 * reconnection meets the ZAP handler, which refuses it. */
int conn_ends(int fd, struct sockaddr_storage *local, struct sockaddr_storage *remote)
{
	socklen_t ll = sizeof(*local), rl = sizeof(*remote);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)local, &ll) != 0 ||
	    getpeername(fd, (struct sockaddr *)remote, &rl) != 0)
		return -1;
	return fd;
}

static void peer_disconnect(struct peer *p)
{
	struct sockaddr_storage local, remote;

	if (conn_ends(p->fd, &local, &remote) >= 0 && same_addr(&local, &p->local) &&
	    same_addr(&remote, &p->remote))
		shutdown(p->fd, SHUT_RDWR);
	p->fd = -1;
}

/* The connection goes a moment after the refusal that explains why: the
 * refusal is only queued for libzmq's I/O thread, which a shutdown now would
 * overtake. The session itself ends at once (session_close). */
#define DISCONNECT_DELAY_MS 200

void peer_disconnect_later(broker *b, const struct peer *conn)
{
	if (conn->fd < 0)
		return;
	for (size_t i = 0; i < b->nclosing; i++)
		if (b->closing[i].conn.fd == conn->fd)
			return; /* already due */
	if (b->nclosing == MAX_PEERS) {
		struct peer now = *conn;
		peer_disconnect(&now);
		return;
	}
	b->closing[b->nclosing].conn = *conn;
	b->closing[b->nclosing++].at = tern_now_ms() + DISCONNECT_DELAY_MS;
}

void disconnect_due(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->nclosing;) {
		if (now < b->closing[i].at) {
			i++;
			continue;
		}
		peer_disconnect(&b->closing[i].conn);
		b->closing[i] = b->closing[--b->nclosing];
	}
}

/* Ends p's session at once: nothing more is delivered to it, what it was
 * sent and did not acknowledge is taken back (it stays queued, or is
 * dead-lettered by the caller), its deferred submissions are dropped, and
 * its connection is closed. */
void session_close(broker *b, struct peer *p, const char *why)
{
	if (p->live)
		log_warnx("closed the session of %s (%s): %llu deliveries in flight taken back",
		          p->id, why, (unsigned long long)(p->sent - p->acked));
	p->live = 0;
	p->broken = 1;
	p->sent = p->sent_hi = p->acked;
	p->lost_hi = 0; /* the broker's decision, not a failed delivery */
	p->dirty = 0;
	rate_free(p);
	chunk_gets_drop(p);
	peer_disconnect_later(b, p);
	p->fd = -1;
	if (p->bulk_fd >= 0) {
		/* Its bulk lane goes with it. */
		struct peer lane = {.fd = p->bulk_fd};
		lane.local = p->bulk_local;
		lane.remote = p->bulk_remote;
		snprintf(lane.id, sizeof(lane.id), "%s", p->id);
		peer_disconnect_later(b, &lane);
	}
	p->bulk_fd = -1;
	p->bulk_rid_len = 0;
}

/* --- ZAP: who may connect --------------------------------------------------- */

/* RFC 27: a CURVE client is admitted only if its key belongs to a directory
 * member that is neither revoked nor expired, and is not a broker; the reply
 * names the member (User-Id), which the broker then reads on every message. */
void zap_handle(broker *b)
{
	zmq_msg_t part[7];
	int n = 0, more = 1;
	const char *status = "400", *text = "not a federation member";
	char user[64] = "", addr[260];
	const tern_member *m = NULL;

	while (more && n < 7) {
		zmq_msg_init(&part[n]);
		if (zmq_msg_recv(&part[n], b->zap, 0) < 0) {
			zmq_msg_close(&part[n]);
			break;
		}
		more = zmq_msg_more(&part[n]);
		n++;
	}
	while (more) { /* a malformed request: drain it */
		zmq_msg_t junk;
		zmq_msg_init(&junk);
		zmq_msg_recv(&junk, b->zap, 0);
		more = zmq_msg_more(&junk);
		zmq_msg_close(&junk);
	}
	if (n < 6)
		goto out_close;
	/* RFC 27's address frame: the peer's IP address, as libzmq saw it. */
	tern_escape(zmq_msg_data(&part[3]), zmq_msg_size(&part[3]), 64, addr, sizeof(addr));
	if (addr[0] == '\0')
		snprintf(addr, sizeof(addr), "an unknown address");
	if (zmq_msg_size(&part[2]) != strlen(TERN_HOP_ZAP_DOMAIN) ||
	    memcmp(zmq_msg_data(&part[2]), TERN_HOP_ZAP_DOMAIN, strlen(TERN_HOP_ZAP_DOMAIN)) != 0) {
		text = "wrong ZAP domain";
	} else if (zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) != 0 ||
	           n < 7 || zmq_msg_size(&part[6]) != 32) {
		text = "CURVE required";
	} else if (tern_directory_find_curve(b->id.dir, zmq_msg_data(&part[6]), &m) != TERN_OK) {
		char z85[41];
		tern_curve_z85_encode(zmq_msg_data(&part[6]), z85);
		log_warnx("refused a connection: CURVE key %s is not in the directory (peer %s)",
		          z85, addr);
		audit_refusal(b, z85, "unknown-key");
	} else if (m->revoked || tern_member_expired(m, tern_now_ms() / 1000) ||
	           (m->roles & TERN_ROLE_BROKER)) {
		/* Expiry is judged now, not when the directory was loaded: a
		 * certificate may lapse while the broker runs. */
		const char *why = m->revoked                      ? "revoked"
		                  : (m->roles & TERN_ROLE_BROKER) ? "a broker"
		                                                  : "certificate expired";
		log_warnx("refused a connection from %s: %s (peer %s)", m->node_id, why, addr);
		audit_refusal(b, m->node_id,
		              m->revoked                      ? "revoked"
		              : (m->roles & TERN_ROLE_BROKER) ? "broker-key"
		                                              : "certificate-expired");
		text = "member not admitted";
	} else {
		status = "200";
		text = "OK";
		snprintf(user, sizeof(user), "%s", m->node_id);
	}
	zmq_send(b->zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(b->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
	zmq_send(b->zap, status, 3, ZMQ_SNDMORE);
	zmq_send(b->zap, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(b->zap, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(b->zap, "", 0, 0);
out_close:
	for (int i = 0; i < n; i++)
		zmq_msg_close(&part[i]);
}

/* --- refusals in the audit log ---------------------------------------------- */

struct refusal {
	broker *b;
	const char *peer, *code;
};

static int refusal_apply(MDB_txn *txn, void *arg)
{
	struct refusal *r = arg;

	return bq_audit(txn, r->b->store, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, NULL, r->peer,
	                NULL, "frame", NULL, 0, r->code, NULL, 0, tern_now_ms());
}

/* A member's connection-level refusal goes into the audit log too, at most
 * ten a second: a flood of garbage must not become a flood of writes. */
void audit_refusal(broker *b, const char *peer, const char *code)
{
	static int64_t second;
	static int n;
	int64_t now = tern_now_ms() / 1000;
	struct refusal r = {b, peer, code};

	if (now != second) {
		second = now;
		n = 0;
	}
	if (n++ >= 10)
		return;
	if (tern_store_write(b->store, refusal_apply, &r) != TERN_OK)
		log_warnx("refusal not audited: %s", tern_errdetail());
	b->last_audit = tern_now_ms();
}

/* --- revocation ------------------------------------------------------------- */

struct barred_list {
	broker *b;
	int64_t now;
	char ids[MAX_PEERS][64];
	const char *why[MAX_PEERS];
	size_t n;
};

static void collect_barred(const char *rcpt, void *arg)
{
	struct barred_list *l = arg;
	const char *why = peer_barred(l->b, rcpt, l->now);

	/* A lapsed certificate may be renewed with the same keys: what waits for
	 * it keeps waiting (its TTL still runs). Revocation and removal are final. */
	if (why && (strcmp(why, "revoked") == 0 || strcmp(why, "removed") == 0) &&
	    l->n < MAX_PEERS) {
		snprintf(l->ids[l->n], sizeof(l->ids[0]), "%s", rcpt);
		l->why[l->n++] = why;
	}
}

struct dl_job {
	broker *b;
	const char *rcpt, *reason;
	int64_t now;
	size_t max, n;
};

static int dl_apply(MDB_txn *txn, void *arg)
{
	struct dl_job *j = arg;

	return bq_dead_letter_queue(txn, j->b->store, j->rcpt,
	                            TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED, j->reason, j->now,
	                            j->max, &j->n);
}

/* What the directory in force no longer admits, at start and after each
 * reload: the sessions of members revoked, removed or lapsed are closed at
 * once, and what is queued for a revoked or removed member is dead-lettered
 * (reason recipient-revoked or recipient-removed) with a notice to each
 * sender, whose node then shows the message rejected with that reason. */
void revocation_sweep(broker *b)
{
	struct barred_list *l = calloc(1, sizeof(*l));
	MDB_txn *txn;

	if (l == NULL) {
		log_warnx("out of memory: the queues of revoked members are not swept");
		return;
	}
	l->b = b;
	l->now = tern_now_ms();
	/* Acknowledgements not committed yet (kept by failed commits) first:
	 * what a revoked member took is not dead-lettered as never taken. */
	if (b->batch.nacks)
		batch_commit(b);
	for (size_t i = 0; i < b->npeers; i++) {
		const char *why = peer_barred(b, b->peers[i].id, l->now);
		if (why)
			session_close(b, &b->peers[i], why);
	}
	/* Still kept (that commit failed): the queues wait for a commit that
	 * succeeds (broker_run sweeps again then); sessions are closed now. */
	b->sweep_deferred = b->batch.nacks != 0;
	if (b->sweep_deferred) {
		log_warnx("what waits for revoked or removed members is dead-lettered once "
		          "a commit succeeds");
		free(l);
		return;
	}
	if (tern_store_read_begin(b->store, &txn) == TERN_OK) {
		if (bq_destinations(txn, b->store, collect_barred, l) != TERN_OK)
			log_warnx("cannot list the queues: %s", tern_errdetail());
		mdb_txn_abort(txn);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct dl_job j = {b,
		                   l->ids[i],
		                   tern_reason_code(strcmp(l->why[i], "revoked") == 0
		                                        ? TERN_REASON_RECIPIENT_REVOKED
		                                        : TERN_REASON_RECIPIENT_REMOVED),
		                   l->now,
		                   10000,
		                   0};
		size_t total = 0;
		int rc;
		/* Bounded transactions: a long queue must not make one huge write. */
		do {
			j.n = 0;
			rc = tern_store_write(b->store, dl_apply, &j);
			total += rc == TERN_OK ? j.n : 0;
		} while (rc == TERN_OK && j.n == j.max);
		if (rc != TERN_OK)
			log_warnx("dead-lettering what waits for %s (%s) failed: %s; it is tried "
			          "again at the next reload",
			          l->ids[i], l->why[i], tern_errdetail());
		if (total)
			log_warnx(
			    "%zu item(s) queued for %s dead-lettered: %s; each sender is told",
			    total, l->ids[i], j.reason);
		if (strcmp(l->why[i], "revoked") == 0)
			b->m.revoked_dead += total;
		else
			b->m.removed_dead += total;
		b->last_audit = l->now;
	}
	if (l->n)
		for (size_t i = 0; i < b->npeers; i++)
			b->peers[i].dirty = 1; /* notices were queued for the senders */
	free(l);
}

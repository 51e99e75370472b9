#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tern/api.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>
#include <tern/uuid.h>

#include "apisrv.h"
#include "broker.h"
#include "daemon.h"
#include "hop.h"
#include "http.h"
#include "prom.h"
#include "ident.h"
#include "pbuf.h"
#include "queue.h"
#include "util.h"
#include "zmon.h"

#define MAX_PEERS 256
#define MAX_RID 256
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* A control request is an op and a message id or a destination. */
#define CONTROL_MAX_FRAME 65536
#define CONTROL_POLL_MAX TERN_APISRV_POLL_MAX(TERN_API_MAX_CONNS)

struct peer {
	char id[64];
	uint8_t rid[MAX_RID];
	size_t rid_len;
	int live; /* said Hello on its current connection */
	/* The connection's socket and its two ends as at Hello: lets the broker
	 * close the connection of a member it no longer admits (see
	 * peer_disconnect). fd -1 when unknown. */
	int fd;
	struct sockaddr_storage local, remote;
	/* Submissions are taken only in sequence within the latest Hello's
	 * session (wire.proto, Submit); after a gap the rest of the session is
	 * refused until the node says Hello again. */
	uint64_t session, next_index;
	int broken;
	uint32_t credit;
	uint64_t acked;   /* every seq <= acked is committed at the node */
	uint64_t sent;    /* highest seq sent on this connection */
	int64_t progress; /* last ack that advanced, or first send after idle */
	int64_t wait;     /* current redelivery wait, ms */
	int attempts;     /* redeliveries of the head without progress */
	int64_t last_rx;
	int64_t last_tx;
	int64_t last_restore; /* when its store was last found put back */
	int dirty;            /* queue changed: try to deliver */
	char software[64];    /* as its Hello said */
	/* Rate limit: a token bucket; submissions over it wait here, in order. */
	double tokens;
	int64_t refilled;
	struct deferred *dq_head, *dq_tail;
	size_t dq_n, dq_bytes;
	int64_t last_limit_log;
};

struct deferred {
	struct deferred *next;
	Tern__V1__Frame *frame;
	size_t bytes;
};

struct sub {
	Tern__V1__Frame *frame; /* owns the envelope bytes */
	tern_envelope *env;     /* NULL when refused before verification */
	char peer[64];
	uint8_t rid[MAX_RID];
	size_t rid_len;
	char msgid[37];
	int64_t expires;
	char code[32]; /* refusal found before the write, or "" */
	char text[256];
	/* outputs of the apply */
	int accepted;
	uint64_t n; /* accepted: its number among its sender's acceptances */
	char out_code[64], out_text[512];
};

struct ack {
	char node[64];
	uint64_t upto;
};

struct dead {
	char node[64];
	uint64_t seq;
};

/* Delivery latency buckets (seconds): broker commit to the node's commit. */
static const double lat_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600};
#define LAT_BUCKETS (sizeof(lat_le) / sizeof(lat_le[0]))

struct batch {
	struct sub *subs;
	size_t nsubs, capsubs;
	struct ack acks[MAX_PEERS * 2];
	size_t nacks;
	struct dead dead[MAX_PEERS];
	int dead_done[MAX_PEERS]; /* output: 1 when the entry was there to dead-letter */
	size_t ndead;
	int sweep;
	int purge;      /* delete acknowledged items past retention */
	size_t purged;  /* output: how many */
	int checkpoint; /* 1: sign if the log grew; 2: even if not */
	int64_t now;
	uint64_t lat[LAT_BUCKETS + 1]; /* delivery latencies acknowledged in this batch */
	double lat_sum;
};

struct broker {
	tern_ident id;
	tern_sigcache *sigs; /* verified batch roots */
	void *ctx, *router, *zap, *monitor;
	tern_zmon *zmon; /* the monitor's events, with the peer's address */
	int64_t last_handshake_log, last_barred_log;
	unsigned handshakes_failed;
	tern_store *store;
	/* The store's identity (fixed when it was created; a copy put back has
	 * the same) and this start's epoch (delivery sequences are trusted by
	 * nodes only within one epoch: a store put back numbers again what it
	 * numbered after the copy was taken). */
	uint8_t store_id[BQ_EPOCH_LEN], epoch[BQ_EPOCH_LEN];
	struct peer peers[MAX_PEERS];
	size_t npeers;
	/* connections of members no longer admitted, closed when due */
	struct closing {
		struct peer conn;
		int64_t at;
	} closing[MAX_PEERS];
	size_t nclosing;
	struct batch batch;
	int64_t max_msg, batch_size, default_ttl_ms, max_attempts, ack_timeout_ms, max_backoff_ms;
	int64_t retain_ms, retain_ids_ms, next_purge;
	int64_t hb_ivl_ms, hb_timeout_ms, skew_ms;
	int64_t next_sweep;
	tern_audit_dbs audit;
	char origin[160];
	int64_t last_checkpoint, last_audit;
	int64_t cp_ivl_ms, idle_ivl_ms;
	double peer_rate, peer_burst;
	int64_t peer_backlog;
	tern_apisrv *ctl; /* the control socket (docs/operations.md) and its clients */
	tern_http *http;  /* /metrics, /healthz, /readyz; NULL when [metrics] port = 0 */
	int64_t next_metrics, next_expiry_check;
	/* The queue gauges read every queued item: with a large backlog they are
	 * refreshed less often than the snapshot, for at most 1% of the loop. */
	bq_dest *qstats;
	size_t nqstats;
	int64_t next_qscan;
	struct {
		uint64_t subs[8][2]; /* by message type, [accepted, refused] */
		uint64_t acked, dead;
		uint64_t revoked_dead; /* dead-lettered: recipient revoked or removed */
		uint64_t restores;     /* nodes found restored from an older copy */
		uint64_t lost;         /* deliveries such nodes lost beyond retention */
		uint64_t purged;       /* acknowledged items purged after retention */
		uint64_t barred;       /* frames from members no longer admitted */
		uint64_t batch[11];    /* commit sizes: <=1, 2, 4, ..., 512, more */
		uint64_t batch_sum;
		uint64_t lat[LAT_BUCKETS + 1];
		double lat_sum;
		uint64_t accepted, handshakes_ok, handshakes_failed;
		uint64_t out_of_sequence;
		uint64_t rollbacks[2]; /* older trust material refused: [CRL, directory] */
	} m;
};

static struct peer *peer_find(broker *b, const char *id, int create)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (strcmp(b->peers[i].id, id) == 0)
			return &b->peers[i];
	if (!create || b->npeers == MAX_PEERS)
		return NULL;
	memset(&b->peers[b->npeers], 0, sizeof(b->peers[0]));
	snprintf(b->peers[b->npeers].id, sizeof(b->peers[0].id), "%s", id);
	b->peers[b->npeers].fd = -1;
	return &b->peers[b->npeers++];
}

static void touch_peer(const char *rcpt, void *arg)
{
	struct peer *p = peer_find(arg, rcpt, 0);

	if (p)
		p->dirty = 1;
}

/* --- admission: who may speak, now ---------------------------------------- */

/* Why id may no longer speak or be delivered to under the directory in force
 * (a code: "revoked", "removed", "expired", "broker"), or NULL when it may.
 * The ZAP handler judges a connection once, at its handshake; this judges
 * every frame, so that a reload or a lapse takes effect at once. */
static const char *peer_barred(const broker *b, const char *id, int64_t now_ms)
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
static void peer_disconnect(struct peer *p)
{
	struct sockaddr_storage local, remote;
	socklen_t ll = sizeof(local), rl = sizeof(remote);

	if (p->fd >= 0 && getsockname(p->fd, (struct sockaddr *)&local, &ll) == 0 &&
	    getpeername(p->fd, (struct sockaddr *)&remote, &rl) == 0 &&
	    same_addr(&local, &p->local) && same_addr(&remote, &p->remote))
		shutdown(p->fd, SHUT_RDWR);
	p->fd = -1;
}

/* The connection goes a moment after the refusal that explains why: the
 * refusal is only queued for libzmq's I/O thread, which a shutdown now would
 * overtake. The session itself ends at once (session_close). */
#define DISCONNECT_DELAY_MS 200

static void peer_disconnect_later(broker *b, const struct peer *conn)
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

static void disconnect_due(broker *b, int64_t now)
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

static void rate_free(struct peer *p);

/* Ends p's session at once: nothing more is delivered to it, what it was
 * sent and did not acknowledge is taken back (it stays queued, or is
 * dead-lettered by the caller), its deferred submissions are dropped, and
 * its connection is closed. */
static void session_close(broker *b, struct peer *p, const char *why)
{
	if (p->live)
		log_warnx("closed the session of %s (%s): %llu deliveries in flight taken back",
		          p->id, why, (unsigned long long)(p->sent - p->acked));
	p->live = 0;
	p->broken = 1;
	p->sent = p->acked;
	p->dirty = 0;
	rate_free(p);
	peer_disconnect_later(b, p);
	p->fd = -1;
}

/* --- ZAP: who may connect --------------------------------------------------- */

static void audit_refusal(broker *b, const char *peer, const char *code);

/* RFC 27: a CURVE client is admitted only if its key belongs to a directory
 * member that is neither revoked nor expired, and is not a broker; the reply
 * names the member (User-Id), which the broker then reads on every message. */
static void zap_handle(broker *b)
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

/* --- sending ---------------------------------------------------------------- */

static int send_to(broker *b, struct peer *p, Tern__V1__Frame *f)
{
	int rc = tern_hop_send(b->router, p->rid, p->rid_len, f, ZMQ_DONTWAIT);

	if (rc == TERN_OK)
		p->last_tx = tern_now_ms();
	return rc;
}

/* session: the refused Submit's, so the node can tell it from an older one's; 0 otherwise. */
static void send_refused(broker *b, const void *rid, size_t rid_len, uint64_t session,
                         const char *code, const char *text)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Refused r = TERN__V1__REFUSED__INIT;

	r.reason_code = (char *)code;
	r.reason_text = (char *)text;
	r.session = session;
	f.body_case = TERN__V1__FRAME__BODY_REFUSED;
	f.refused = &r;
	tern_hop_send(b->router, rid, rid_len, &f, ZMQ_DONTWAIT);
}

struct pump {
	broker *b;
	struct peer *p;
	uint32_t inflight;
	int blocked;
};

static int pump_visit(uint64_t seq, const bq_item *it, void *arg)
{
	struct pump *pp = arg;
	struct peer *p = pp->p;
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Deliver d = TERN__V1__DELIVER__INIT;
	ProtobufCMessage *notice = NULL;

	if (it->kind == BQ_STUB)
		return 0; /* nothing to send: what a restored node lost (bq_rewind) */
	if (seq <= p->sent) {
		pp->inflight++;
		return 0;
	}
	if (pp->inflight >= p->credit)
		return 1;
	d.broker_epoch.data = pp->b->epoch;
	d.broker_epoch.len = BQ_EPOCH_LEN;
	d.seq = seq;
	if (it->kind == BQ_NOTICE) {
		if (tern_pb_unpack(&tern__v1__notice__descriptor, it->payload, it->len, it->len,
		                   &notice) != TERN_OK)
			return 0; /* damaged notice: skip it, the node will ack past it */
		d.item_case = TERN__V1__DELIVER__ITEM_NOTICE;
		d.notice = (Tern__V1__Notice *)notice;
	} else {
		d.item_case = TERN__V1__DELIVER__ITEM_ENVELOPE;
		d.envelope.data = (uint8_t *)it->payload;
		d.envelope.len = it->len;
	}
	f.body_case = TERN__V1__FRAME__BODY_DELIVER;
	f.deliver = &d;
	if (send_to(pp->b, p, &f) != TERN_OK) {
		tern_pb_free(&notice);
		pp->blocked = 1; /* EAGAIN or gone: keep order, try later */
		return 1;
	}
	tern_pb_free(&notice);
	if (pp->inflight == 0)
		p->progress = tern_now_ms();
	p->sent = seq;
	pp->inflight++;
	return 0;
}

/* Sends the next deliveries to p while its credit allows, in seq order. */
static void pump(broker *b, struct peer *p)
{
	struct pump pp = {b, p, 0, 0};
	MDB_txn *txn;

	if (!p->live || p->credit == 0)
		return;
	if (tern_store_read_begin(b->store, &txn) != TERN_OK)
		return;
	bq_scan(txn, b->store, p->id, p->acked + 1, pump_visit, &pp);
	mdb_txn_abort(txn);
	if (pp.inflight == 0)
		p->attempts = 0;
	p->dirty = pp.blocked;
}

/* --- submissions -------------------------------------------------------------- */

static void sub_refuse(struct sub *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sub_refuse(struct sub *s, int code, const char *fmt, ...)
{
	va_list ap;

	snprintf(s->code, sizeof(s->code), "%s", tern_errcode_name(code));
	va_start(ap, fmt);
	vsnprintf(s->text, sizeof(s->text), fmt, ap);
	va_end(ap);
}

static void sub_refuse_named(struct sub *s, const char *code, const char *text)
{
	snprintf(s->code, sizeof(s->code), "%s", code);
	snprintf(s->text, sizeof(s->text), "%s", text);
}

/* Everything that can be decided before the write: signature, identity,
 * role, recipients, expiry. De-duplication is decided inside the write. */
static void sub_check(broker *b, struct sub *s)
{
	/* Only the future is bounded: an envelope is sealed when its node
	 * accepts the message, and may wait in that node's outbox for as long
	 * as the node is cut off from the broker or behind a backlog. Refusing
	 * it as too old would lose a message the node had accepted; replays are
	 * refused by message id, which the broker never forgets. */
	tern_verify_opts o = {.max_size = (size_t)b->max_msg,
	                      .max_skew_ms = b->skew_ms,
	                      .future_skew_only = 1,
	                      .sigcache = b->sigs};
	const Tern__V1__Submit *sm = s->frame->submit;
	const Tern__V1__Header *h;
	int64_t now = b->batch.now;
	int rc;

	rc = tern_envelope_verify(sm->envelope.data, sm->envelope.len, b->id.dir, &o, &s->env);
	if (rc != TERN_OK) {
		/* The id, if the header decodes at all, lets the node match the answer.
		 * Only a well-formed id: it goes into logs and the audit log. */
		tern_envelope_claim c;
		char why[256];
		snprintf(why, sizeof(why), "%s", tern_errdetail());
		if (tern_envelope_claims(sm->envelope.data, sm->envelope.len, &c) == TERN_OK &&
		    c.sender[0] && c.message_id[0])
			snprintf(s->msgid, sizeof(s->msgid), "%s", c.message_id);
		sub_refuse(s, rc, "%s", why);
		return;
	}
	h = tern_envelope_header(s->env);
	snprintf(s->msgid, sizeof(s->msgid), "%s", h->message_id);
	if (strcmp(h->sender, s->peer) != 0) {
		sub_refuse_named(s, "forged-sender", "");
		snprintf(s->text, sizeof(s->text),
		         "header sender %s is not the authenticated peer %s", h->sender, s->peer);
		return;
	}
	if ((rc = tern_envelope_authorize(s->env)) != TERN_OK) {
		sub_refuse(s, rc, "%s", tern_errdetail());
		return;
	}
	for (size_t i = 0; i < h->n_recipients; i++) {
		const tern_member *m;
		if (tern_directory_find(b->id.dir, h->recipients[i], &m) != TERN_OK ||
		    (m->roles & TERN_ROLE_BROKER)) {
			sub_refuse_named(s, "unknown-recipient", "");
			snprintf(s->text, sizeof(s->text), "recipient %s is not a member node",
			         h->recipients[i]);
			return;
		}
		if (m->revoked || tern_member_expired(m, now / 1000)) {
			sub_refuse_named(s, m->revoked ? "recipient-revoked" : "recipient-expired",
			                 "");
			snprintf(s->text, sizeof(s->text), "recipient %s is %s", h->recipients[i],
			         m->revoked ? "revoked" : "expired");
			return;
		}
	}
	s->expires = h->expires_at ? h->expires_at : now + b->default_ttl_ms;
	if (s->expires <= now)
		sub_refuse_named(s, "expired", "the message expired before it reached the broker");
}

/* --- the write ------------------------------------------------------------------ */

static void latency(const bq_item *it, void *arg)
{
	struct batch *bt = arg;
	double s = (double)(bt->now - it->enqueued_at) / 1000;
	size_t i = 0;

	if (it->kind != BQ_ENVELOPE)
		return;
	while (i < LAT_BUCKETS && s > lat_le[i])
		i++;
	bt->lat[i]++;
	bt->lat_sum += s > 0 ? s : 0;
}

static int batch_apply(MDB_txn *txn, void *arg)
{
	broker *b = arg;
	struct batch *bt = &b->batch;
	int rc;

	/* A transaction may run again (map growth): count this attempt only. */
	memset(bt->lat, 0, sizeof(bt->lat));
	bt->lat_sum = 0;
	for (size_t i = 0; i < bt->nacks; i++)
		if (bt->acks[i].upto &&
		    (rc = bq_ack(txn, b->store, bt->acks[i].node, bt->acks[i].upto,
		                 b->retain_ms > 0, bt->now, latency, bt, NULL)) != TERN_OK)
			return rc;
	for (size_t i = 0; i < bt->ndead; i++) {
		bt->dead_done[i] = 0;
		if (bt->dead[i].seq == 0)
			continue;
		rc = bq_dead_letter(txn, b->store, bt->dead[i].node, bt->dead[i].seq,
		                    TERN__V1__NOTICE__KIND__DEAD_LETTERED, "max-attempts", bt->now);
		if (rc != TERN_OK && rc != TERN_ENOENT)
			return rc;
		bt->dead_done[i] = rc == TERN_OK;
	}
	for (size_t i = 0; i < bt->nsubs; i++) {
		struct sub *s = &bt->subs[i];
		const Tern__V1__Header *h;
		bq_dedup seen;
		bq_item it;

		s->accepted = 0;
		s->n = 0;
		s->out_code[0] = s->out_text[0] = '\0';
		if (s->msgid[0] == '\0') { /* nothing to remember it by */
			snprintf(s->out_code, sizeof(s->out_code), "%s", s->code);
			snprintf(s->out_text, sizeof(s->out_text), "%s", s->text);
			continue;
		}
		/* A refusal is decided before the de-duplication table is read and
		 * never written to it: an id is only its sender's to claim, and only
		 * once the envelope was accepted from that sender. Otherwise a member
		 * holding another's envelope could submit it first and poison its id,
		 * or replay one already accepted and be told "accepted". */
		if (s->code[0] == '\0') {
			rc = bq_dedup_get(txn, b->store, s->msgid, &seen);
			if (rc == TERN_OK &&
			    (seen.sender[0] == '\0' || strcmp(seen.sender, s->peer) == 0)) {
				s->accepted = 1; /* a resubmission: the same answer, no copy */
				s->n = seen.n;
				continue;
			}
			if (rc == TERN_OK) {
				sub_refuse_named(s, "duplicate-id", "");
				snprintf(s->text, sizeof(s->text),
				         "message id %s was already used by another sender",
				         s->msgid);
			} else if (rc != TERN_ENOENT) {
				return rc;
			}
		}
		if (s->code[0] != '\0') {
			snprintf(s->out_code, sizeof(s->out_code), "%s", s->code);
			snprintf(s->out_text, sizeof(s->out_text), "%s", s->text);
			rc =
			    bq_audit(txn, b->store, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, s->msgid,
			             s->peer, NULL, NULL, s->frame->submit->envelope.data,
			             s->frame->submit->envelope.len, s->code, NULL, 0, bt->now);
			if (rc != TERN_OK)
				return rc;
			continue;
		}
		h = tern_envelope_header(s->env);
		memset(&it, 0, sizeof(it));
		it.kind = BQ_ENVELOPE;
		it.expires_at = s->expires;
		it.enqueued_at = bt->now;
		snprintf(it.sender, sizeof(it.sender), "%s", h->sender);
		memcpy(it.msgid, s->msgid, 37);
		it.payload = s->frame->submit->envelope.data;
		it.len = s->frame->submit->envelope.len;
		for (size_t r = 0; r < h->n_recipients; r++) {
			uint64_t seq;
			if ((rc = bq_append(txn, b->store, h->recipients[r], &it, &seq)) != TERN_OK)
				return rc;
		}
		if ((rc = bq_accept_next(txn, b->store, s->peer, s->msgid, &s->n)) != TERN_OK ||
		    (rc = bq_dedup_put(txn, b->store, s->msgid, s->peer, s->n, bt->now)) != TERN_OK)
			return rc;
		rc = bq_audit(txn, b->store, TERN__V1__AUDIT_ENTRY__KIND__RELAYED, s->msgid,
		              h->sender, h->case_id, tern_msgtype_by_type(h->type)->name,
		              it.payload, it.len, NULL, h->recipients, h->n_recipients, bt->now);
		if (rc != TERN_OK)
			return rc;
		s->accepted = 1;
	}
	if (bt->sweep) {
		size_t n = 0;
		if ((rc = bq_expire(txn, b->store, bt->now, &n, NULL, NULL)) != TERN_OK)
			return rc;
	}
	/* Bounded: a long retention's worth of deletions goes in slices. */
	if (bt->purge &&
	    (rc = bq_purge(txn, b->store, bt->now - b->retain_ms, bt->now - b->retain_ids_ms,
	                   bt->now, 2000, &bt->purged)) != TERN_OK)
		return rc;
	if (bt->checkpoint) {
		uint64_t size;
		if ((rc = tern_audit_checkpoint(txn, &b->audit, b->origin, b->id.sign,
		                                bt->checkpoint == 2, &size)) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static void batch_reset(broker *b)
{
	struct batch *bt = &b->batch;

	for (size_t i = 0; i < bt->nsubs; i++) {
		tern_envelope_free(&bt->subs[i].env);
		tern_pb_free((ProtobufCMessage **)&bt->subs[i].frame);
	}
	bt->nsubs = bt->nacks = bt->ndead = 0;
	bt->sweep = 0;
	bt->purge = 0;
	bt->checkpoint = 0;
}

static void batch_commit(broker *b)
{
	struct batch *bt = &b->batch;
	int rc;

	if (bt->nsubs == 0 && bt->nacks == 0 && bt->ndead == 0 && !bt->sweep && !bt->checkpoint &&
	    !bt->purge)
		return;
	bt->purged = 0;
	if (bt->nsubs || bt->ndead || bt->sweep)
		b->last_audit = bt->now;
	rc = tern_store_write(b->store, batch_apply, b);
	if (rc != TERN_OK) {
		/* Nothing of this batch is acknowledged: nodes resubmit and re-ack. */
		log_warnx("commit failed, %zu submissions not acknowledged: %s (%s)", bt->nsubs,
		          tern_strerror(rc), tern_errdetail());
		batch_reset(b);
		return;
	}
	if (bt->nsubs) {
		int k = 0;
		while (k < 10 && ((size_t)1 << k) < bt->nsubs)
			k++;
		b->m.batch[((size_t)1 << k) >= bt->nsubs ? k : 10]++;
		b->m.batch_sum += bt->nsubs;
	}
	for (size_t i = 0; i < bt->ndead; i++)
		b->m.dead += (uint64_t)bt->dead_done[i];
	b->m.purged += bt->purged;
	if (bt->purge && bt->purged == 2000)
		b->next_purge = 0; /* more past retention: go on next round */
	for (size_t i = 0; i <= LAT_BUCKETS; i++)
		b->m.lat[i] += bt->lat[i];
	b->m.lat_sum += bt->lat_sum;
	for (size_t i = 0; i < bt->nacks; i++) {
		struct peer *p = peer_find(b, bt->acks[i].node, 0);
		if (p && bt->acks[i].upto > p->acked) {
			b->m.acked += bt->acks[i].upto - p->acked;
			p->acked = bt->acks[i].upto;
			if (p->sent < p->acked)
				p->sent = p->acked;
			p->progress = bt->now;
			p->attempts = 0;
			p->wait = b->ack_timeout_ms;
			p->dirty = 1;
		}
	}
	for (size_t i = 0; i < bt->ndead; i++) {
		struct peer *p = peer_find(b, bt->dead[i].node, 0);
		if (bt->dead_done[i])
			log_warnx("dead-lettered seq %llu for %s after %lld attempts",
			          (unsigned long long)bt->dead[i].seq, bt->dead[i].node,
			          (long long)b->max_attempts);
		if (p) {
			p->attempts = 0;
			p->dirty = 1;
		}
	}
	for (size_t i = 0; i < bt->nsubs; i++) {
		struct sub *s = &bt->subs[i];
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__SubmitResult r = TERN__V1__SUBMIT_RESULT__INIT;

		r.message_id = s->msgid;
		r.accepted = s->accepted;
		r.reason_code = s->out_code;
		r.reason_text = s->out_text;
		r.session = s->frame && s->frame->submit ? s->frame->submit->session : 0;
		r.accepted_n = s->accepted ? s->n : 0;
		f.body_case = TERN__V1__FRAME__BODY_RESULT;
		f.result = &r;
		{
			unsigned t = s->env ? (unsigned)tern_envelope_header(s->env)->type : 0;
			b->m.subs[t < 8 ? t : 0][s->accepted ? 0 : 1]++;
		}
		if (s->accepted) {
			const Tern__V1__Header *h = tern_envelope_header(s->env);
			log_info("accepted %s %s from %s for %zu recipient(s), case %s", s->msgid,
			         tern_msgtype_by_type(h->type)->name, s->peer, h->n_recipients,
			         h->case_id);
			for (size_t r2 = 0; r2 < h->n_recipients; r2++)
				touch_peer(h->recipients[r2], b);
		} else {
			log_warnx("refused %s from %s: %s: %s", s->msgid[0] ? s->msgid : "(no id)",
			          s->peer, s->out_code, s->out_text);
		}
		tern_hop_send(b->router, s->rid, s->rid_len, &f, ZMQ_DONTWAIT);
	}
	if (bt->sweep)
		for (size_t i = 0; i < b->npeers; i++)
			b->peers[i].dirty = 1;
	batch_reset(b);
}

/* --- receiving ------------------------------------------------------------------ */

struct rewind_job {
	broker *b;
	const char *node;
	uint64_t to, acked, first;
	int exact; /* to counts in this start: else everything retained goes again */
	char why[256];
	/* outputs: what the node lost that only stubs remember */
	MDB_txn *txn;
	int rc;
	size_t nlost;
	char first_lost[37];
};

/* A message the restored node had, past retention: named in the audit log,
 * one entry each, with its sender. */
static void lost_one(uint64_t seq, const bq_item *stub, void *arg)
{
	struct rewind_job *j = arg;
	char why[160];

	(void)seq;
	if (j->rc != TERN_OK)
		return;
	if (j->nlost++ == 0)
		snprintf(j->first_lost, sizeof(j->first_lost), "%s", stub->msgid);
	snprintf(why, sizeof(why),
	         j->exact ? "lost by a store restored from a copy older than retention; from %s"
	                  : "perhaps lost by a store restored from a copy older than retention "
	                    "(its position could not be compared); from %s",
	         stub->sender);
	j->rc = bq_audit(j->txn, j->b->store, TERN__V1__AUDIT_ENTRY__KIND__RESTORED, stub->msgid,
	                 j->node, NULL, "lost", NULL, 0, why, NULL, 0, tern_now_ms());
}

static int rewind_apply(MDB_txn *txn, void *arg)
{
	struct rewind_job *j = arg;
	int rc;

	j->txn = txn;
	j->rc = TERN_OK;
	j->nlost = 0;
	j->first_lost[0] = 0;
	if ((rc = bq_rewind(txn, j->b->store, j->node, j->to, &j->first, lost_one, j)) != TERN_OK)
		return rc;
	if (j->rc != TERN_OK)
		return j->rc;
	if (!j->exact)
		snprintf(j->why, sizeof(j->why),
		         "store restored: holds less than the %llu it acknowledged, counted in an "
		         "earlier start of the broker; everything retained (from seq %llu) is "
		         "delivered again, and what it lost before that was purged",
		         (unsigned long long)j->acked, (unsigned long long)j->first);
	else if (j->first > j->to + 1)
		snprintf(j->why, sizeof(j->why),
		         "store restored: holds deliveries up to %llu of %llu acknowledged; "
		         "%llu-%llu no longer retained, the rest delivered again",
		         (unsigned long long)j->to, (unsigned long long)j->acked,
		         (unsigned long long)j->to + 1, (unsigned long long)j->first - 1);
	else
		snprintf(j->why, sizeof(j->why),
		         "store restored: holds deliveries up to %llu of %llu acknowledged; all "
		         "delivered again",
		         (unsigned long long)j->to, (unsigned long long)j->acked);
	return bq_audit(txn, j->b->store, TERN__V1__AUDIT_ENTRY__KIND__RESTORED, NULL, j->node,
	                NULL, "store", NULL, 0, j->why, NULL, 0, tern_now_ms());
}

/* p's node acknowledged up to p->acked but now holds only up to to: its store
 * was put back from an older copy. What the broker still retains above to is
 * delivered again, in order (the node's de-duplication is as old as its
 * store, so it takes each once); what retention already purged is reported
 * by sequence range, never silently skipped. */
static void node_restored(broker *b, struct peer *p, uint64_t to, int exact)
{
	struct rewind_job j = {.b = b, .node = p->id, .to = to, .acked = p->acked, .exact = exact};

	if (tern_store_write(b->store, rewind_apply, &j) != TERN_OK) {
		log_warnx("%s's store went back from %llu to %llu, but the queue could not be "
		          "rewound: %s",
		          p->id, (unsigned long long)p->acked, (unsigned long long)to,
		          tern_errdetail());
		return;
	}
	log_warnx("%s: %s", p->id, j.why);
	if (j.nlost)
		log_warnx("%s %s %zu message(s) past retention that cannot be delivered again; "
		          "each is named in the audit log (RESTORED, lost), the first %s",
		          p->id,
		          exact ? "lost"
		                : "may have lost (its position counts in an earlier start)",
		          j.nlost, j.first_lost);
	b->m.restores++;
	b->m.lost += (exact && j.first > to + 1 ? j.first - to - 1 : 0) + j.nlost;
	b->last_audit = tern_now_ms();
	p->last_restore = b->last_audit;
	p->acked = p->sent = to;
	/* Acknowledgements and dead letters of its old connection, still in
	 * this batch, must not undo the rewind. */
	for (size_t i = 0; i < b->batch.nacks; i++)
		if (strcmp(b->batch.acks[i].node, p->id) == 0)
			b->batch.acks[i].upto = 0;
	for (size_t i = 0; i < b->batch.ndead; i++)
		if (strcmp(b->batch.dead[i].node, p->id) == 0)
			b->batch.dead[i].seq = 0;
}

static void on_hello(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                     size_t rid_len, const Tern__V1__Hello *h)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Welcome w = TERN__V1__WELCOME__INIT;
	uint64_t accepted = 0, last = 0;
	char last_accepted[37] = "";
	int64_t now = tern_now_ms();
	struct peer *p;

	if (strcmp(h->node_id, user) != 0) {
		log_warnx("refused Hello: peer %s claims to be %s", user, h->node_id);
		send_refused(b, rid, rid_len, 0, "identity-mismatch",
		             "Hello node_id differs from the authenticated identity");
		return;
	}
	if (h->session == 0) {
		/* Without a session its submissions could not be kept in order. */
		log_warnx("refused Hello from %s (%s): no session; it needs upgrading", user,
		          h->software);
		send_refused(b, rid, rid_len, 0, "unsupported-version",
		             "Hello without a session: upgrade this node");
		return;
	}
	if ((p = peer_find(b, user, 1)) == NULL) {
		send_refused(b, rid, rid_len, 0, "busy", "too many nodes connected");
		return;
	}
	if (p->live && (p->rid_len != rid_len || memcmp(p->rid, rid, rid_len) != 0))
		log_info("handover: %s reconnected, %llu deliveries in flight are sent again", user,
		         (unsigned long long)(p->sent - p->acked));
	/* Handover by authenticated identity: the new connection takes the route. */
	memcpy(p->rid, rid, rid_len);
	p->rid_len = rid_len;
	p->fd = conn->fd;
	p->local = conn->local;
	p->remote = conn->remote;
	p->live = 1;
	p->session = h->session;
	p->next_index = 1;
	p->broken = 0;
	snprintf(p->software, sizeof(p->software), "%s", h->software);
	p->credit = h->credit ? h->credit : 1;
	{
		/* What the store knows of this node: after a start, the memory
		 * knows nothing yet. */
		MDB_txn *txn;
		uint64_t acked = 0;
		if (tern_store_read_begin(b->store, &txn) == TERN_OK) {
			bq_acked(txn, b->store, user, &acked);
			bq_last_seq(txn, b->store, user, &last);
			bq_accepted_count(txn, b->store, user, &accepted, last_accepted);
			mdb_txn_abort(txn);
		}
		if (acked > p->acked)
			p->acked = acked;
	}
	p->sent = p->acked;
	p->attempts = 0;
	p->wait = b->ack_timeout_ms;
	p->last_rx = tern_now_ms();
	p->dirty = 1;
	int same_epoch = h->broker_epoch.len == BQ_EPOCH_LEN &&
	                 memcmp(h->broker_epoch.data, b->epoch, BQ_EPOCH_LEN) == 0;
	if (h->broker_store.len == BQ_EPOCH_LEN &&
	    memcmp(h->broker_store.data, b->store_id, BQ_EPOCH_LEN) == 0 &&
	    h->delivered_upto < p->acked) {
		/* The node acknowledged more than its store now holds: its store
		 * was put back from an older copy. Its number can be trusted only
		 * if it counts in this start (a store put back numbers again what
		 * it numbered after its copy); otherwise everything retained goes
		 * again, and the node's de-duplication sorts it out. At most once a
		 * minute: a member lying in its Hello must not keep the broker busy. */
		if (now - p->last_restore < 60000)
			log_warnx("%s says again it holds less than it acknowledged; ignored "
			          "within a minute of the last time",
			          user);
		else
			node_restored(b, p, same_epoch ? h->delivered_upto : 0, same_epoch);
	} else if (same_epoch && h->delivered_upto > p->acked && h->delivered_upto <= last &&
	           b->batch.nacks < MAX_PEERS * 2) {
		/* Resync: what the node already holds is dropped, not sent again. */
		snprintf(b->batch.acks[b->batch.nacks].node, 64, "%s", user);
		b->batch.acks[b->batch.nacks++].upto = h->delivered_upto;
		p->sent = h->delivered_upto;
	}
	w.broker_id = (char *)b->id.id;
	w.broker_epoch.data = b->epoch;
	w.broker_epoch.len = BQ_EPOCH_LEN;
	w.broker_store.data = b->store_id;
	w.broker_store.len = BQ_EPOCH_LEN;
	w.accepted_count = accepted;
	w.last_accepted = last_accepted;
	w.directory_version = tern_directory_version(b->id.dir);
	w.max_message_size = (uint32_t)b->max_msg;
	w.session = h->session;
	f.body_case = TERN__V1__FRAME__BODY_WELCOME;
	f.welcome = &w;
	send_to(b, p, &f);
	log_info("%s connected (credit %u)", user, p->credit);
}

/* Witnessing traffic goes from node to node unchanged but for peer, which
 * becomes the authenticated sender: no node can speak for another. Nothing is
 * stored; a witness that is away is asked again at the owner's next round. */
static void relay_witness(broker *b, const char *user, Tern__V1__Frame *f)
{
	char **peer = f->body_case == TERN__V1__FRAME__BODY_WITNESS_REQUEST
	                  ? &f->witness_request->peer
	                  : &f->witness_response->peer;
	struct peer *to = peer_find(b, *peer, 0);
	char *to_id = *peer;

	if (to == NULL || !to->live || strcmp(*peer, user) == 0)
		return;
	*peer = (char *)user;
	if (send_to(b, to, f) != TERN_OK)
		log_debug("witness traffic from %s to %s dropped: %s busy", user, to_id, to_id);
	*peer = to_id;
}

/* Puts a submission into the batch. TERN_ENOMEM leaves f with the caller
 * (not acknowledged: the node resubmits after its next Hello). */
static int submit_now(broker *b, const char *user, const uint8_t *rid, size_t rid_len,
                      Tern__V1__Frame *f)
{
	struct batch *bt = &b->batch;
	struct sub *s;

	if (bt->nsubs == bt->capsubs) {
		size_t nc = bt->capsubs ? bt->capsubs * 2 : 64;
		struct sub *ns = realloc(bt->subs, nc * sizeof(*ns));
		if (ns == NULL)
			return TERN_ENOMEM;
		bt->subs = ns;
		bt->capsubs = nc;
	}
	s = &bt->subs[bt->nsubs++];
	memset(s, 0, sizeof(*s));
	s->frame = f;
	snprintf(s->peer, sizeof(s->peer), "%s", user);
	memcpy(s->rid, rid, rid_len);
	s->rid_len = rid_len;
	sub_check(b, s);
	return TERN_OK;
}

static void refill(broker *b, struct peer *p, int64_t now)
{
	if (p->refilled == 0)
		p->tokens = b->peer_burst;
	else if (now > p->refilled)
		p->tokens += (double)(now - p->refilled) * b->peer_rate / 1000;
	if (p->tokens > b->peer_burst)
		p->tokens = b->peer_burst;
	p->refilled = now;
}

/* Per-peer rate limit ([limits] peer_rate, peer_burst): one node's flood
 * must not starve the others. A submission over the rate waits, in order,
 * with its answer delayed, so a node keeping to its submit window simply
 * slows down. Returns 1 when f was deferred (or dropped: then the node is
 * told to say Hello again, which makes it resubmit what is unanswered). */
static int rate_admit(broker *b, struct peer *p, Tern__V1__Frame *f)
{
	int64_t now = tern_now_ms();
	struct deferred *d;
	size_t bytes = f->submit ? f->submit->envelope.len : 0;
	uint64_t f_session = f->submit ? f->submit->session : 0;

	refill(b, p, now);
	if (p->dq_n == 0 && p->tokens >= 1) {
		p->tokens -= 1;
		return 0;
	}
	if ((int64_t)(p->dq_bytes + bytes) > b->peer_backlog || (d = malloc(sizeof(*d))) == NULL) {
		if (now - p->last_limit_log > 1000) {
			log_warnx("%s is over its rate and backlog: submissions dropped; it will "
			          "resubmit them",
			          p->id);
			p->last_limit_log = now;
		}
		tern_pb_free((ProtobufCMessage **)&f);
		/* What follows in this session would overtake the dropped one. */
		p->broken = 1;
		send_refused(b, p->rid, p->rid_len, f_session, "hello-required",
		             "over the rate limit: say Hello again and resubmit");
		return 1;
	}
	d->next = NULL;
	d->frame = f;
	d->bytes = bytes;
	if (p->dq_tail)
		p->dq_tail->next = d;
	else
		p->dq_head = d;
	p->dq_tail = d;
	p->dq_n++;
	p->dq_bytes += bytes;
	if (p->dq_n == 1 && now - p->last_limit_log > 10000) {
		log_info("%s is over its rate (%.0f/s): its submissions wait", p->id, b->peer_rate);
		p->last_limit_log = now;
	}
	return 1;
}

/* Deferred submissions whose turn has come join the batch. */
static void rate_release(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];
		if (p->dq_n == 0)
			continue;
		refill(b, p, now);
		while (p->dq_head && p->tokens >= 1 && b->batch.nsubs < (size_t)b->batch_size) {
			struct deferred *d = p->dq_head;
			if (submit_now(b, p->id, p->rid, p->rid_len, d->frame) != TERN_OK)
				break;
			p->tokens -= 1;
			p->dq_head = d->next;
			if (p->dq_head == NULL)
				p->dq_tail = NULL;
			p->dq_n--;
			p->dq_bytes -= d->bytes;
			free(d);
		}
	}
}

static void rate_free(struct peer *p)
{
	while (p->dq_head) {
		struct deferred *d = p->dq_head;
		p->dq_head = d->next;
		tern_pb_free((ProtobufCMessage **)&d->frame);
		free(d);
	}
	p->dq_tail = NULL;
	p->dq_n = p->dq_bytes = 0;
}

/* Takes ownership of f. */
static void on_frame(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                     size_t rid_len, Tern__V1__Frame *f)
{
	struct peer *p;

	if (f->body_case == TERN__V1__FRAME__BODY_HELLO) {
		on_hello(b, user, conn, rid, rid_len, f->hello);
		goto done;
	}
	p = peer_find(b, user, 0);
	if (p == NULL || !p->live || p->rid_len != rid_len || memcmp(p->rid, rid, rid_len) != 0) {
		send_refused(b, rid, rid_len,
		             f->body_case == TERN__V1__FRAME__BODY_SUBMIT ? f->submit->session : 0,
		             "hello-required", "send Hello first");
		goto done;
	}
	p->last_rx = tern_now_ms();
	switch (f->body_case) {
	case TERN__V1__FRAME__BODY_SUBMIT:
		if (f->submit->session != p->session) {
			/* Queued on an older connection and carried over by the
			 * transport: its session was replaced by a later Hello, and the
			 * node resubmits it in its current session. */
			b->m.out_of_sequence++;
			goto done;
		}
		if (p->broken || f->submit->index != p->next_index) {
			/* A gap in the session: taking this one would break the order. */
			b->m.out_of_sequence++;
			if (!p->broken) {
				log_info("%s: submission %llu of its session came when %llu was "
				         "due; it will say Hello and resubmit",
				         user, (unsigned long long)f->submit->index,
				         (unsigned long long)p->next_index);
				send_refused(b, rid, rid_len, p->session, "out-of-sequence",
				             "submission out of sequence: say Hello and resubmit");
				p->broken = 1;
			}
			goto done;
		}
		p->next_index++;
		if (rate_admit(b, p, f))
			return; /* deferred: the queue owns f now */
		if (submit_now(b, user, rid, rid_len, f) == TERN_OK)
			return; /* the batch owns f now */
		p->broken = 1;  /* dropped: the rest of the session would overtake it */
		send_refused(b, rid, rid_len, p->session, "hello-required",
		             "broker out of memory: say Hello again and resubmit");
		goto done;
	case TERN__V1__FRAME__BODY_DELIVER_ACK: {
		const Tern__V1__DeliverAck *a = f->deliver_ack;
		if (a->broker_epoch.len != BQ_EPOCH_LEN ||
		    memcmp(a->broker_epoch.data, b->epoch, BQ_EPOCH_LEN) != 0) {
			send_refused(b, rid, rid_len, 0, "wrong-epoch",
			             "acknowledgement for another store");
			break;
		}
		if (a->credit)
			p->credit = a->credit;
		if (a->upto > p->sent) {
			log_warnx("%s acknowledged seq %llu, never sent; ignored", user,
			          (unsigned long long)a->upto);
			break;
		}
		if (a->upto > p->acked && b->batch.nacks < MAX_PEERS * 2) {
			snprintf(b->batch.acks[b->batch.nacks].node, 64, "%s", user);
			b->batch.acks[b->batch.nacks++].upto = a->upto;
		}
		break;
	}
	case TERN__V1__FRAME__BODY_PING: {
		Tern__V1__Frame r = TERN__V1__FRAME__INIT;
		Tern__V1__Pong pong = TERN__V1__PONG__INIT;
		pong.at = f->ping->at;
		r.body_case = TERN__V1__FRAME__BODY_PONG;
		r.pong = &pong;
		send_to(b, p, &r);
		break;
	}
	case TERN__V1__FRAME__BODY_PONG:
		break;
	case TERN__V1__FRAME__BODY_WITNESS_REQUEST:
	case TERN__V1__FRAME__BODY_WITNESS_RESPONSE:
		relay_witness(b, user, f);
		break;
	default:
		send_refused(b, rid, rid_len, 0, "unexpected-frame", "frame not valid from a node");
		log_warnx("%s sent an unexpected frame (%d)", user, (int)f->body_case);
		break;
	}
done:
	tern_pb_free((ProtobufCMessage **)&f);
}

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
static void audit_refusal(broker *b, const char *peer, const char *code)
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

/* Reads one ROUTER message: routing id, then exactly one frame. */
static void on_router(broker *b)
{
	zmq_msg_t rid, body;
	Tern__V1__Frame *f = NULL;
	struct peer conn = {.fd = -1};
	const char *user, *why;
	int rc;

	zmq_msg_init(&rid);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&rid, b->router, ZMQ_DONTWAIT) < 0)
		goto out;
	if (!zmq_msg_more(&rid) || zmq_msg_recv(&body, b->router, 0) < 0)
		goto out;
	if (zmq_msg_more(&body)) {
		int more = 1;
		while (more) {
			zmq_msg_t junk;
			zmq_msg_init(&junk);
			zmq_msg_recv(&junk, b->router, 0);
			more = zmq_msg_more(&junk);
			zmq_msg_close(&junk);
		}
		user = zmq_msg_gets(&body, "User-Id");
		log_warnx("refused a message of more than one frame from %s",
		          user && tern_node_id_valid(user) ? user : "(unknown)");
		send_refused(b, zmq_msg_data(&rid), zmq_msg_size(&rid), 0, "too-many-frames",
		             "one frame per message");
		if (user && tern_node_id_valid(user))
			audit_refusal(b, user, "too-many-frames");
		goto out;
	}
	user = zmq_msg_gets(&body, "User-Id");
	if (user == NULL || !tern_node_id_valid(user) || zmq_msg_size(&rid) > MAX_RID) {
		log_warnx("message without an authenticated identity dropped");
		goto out;
	}
	conn.fd = zmq_msg_get(&body, ZMQ_SRCFD);
	if (conn.fd >= 0) {
		socklen_t ll = sizeof(conn.local), rl = sizeof(conn.remote);
		if (getsockname(conn.fd, (struct sockaddr *)&conn.local, &ll) != 0 ||
		    getpeername(conn.fd, (struct sockaddr *)&conn.remote, &rl) != 0)
			conn.fd = -1;
	}
	if ((why = peer_barred(b, user, tern_now_ms())) != NULL) {
		/* Admitted at its handshake, no longer now (revoked, removed or
		 * lapsed since): nothing it sends is taken, and its connection goes. */
		struct peer *p = peer_find(b, user, 0);
		int64_t now = tern_now_ms();
		b->m.barred++;
		if (p)
			session_close(b, p, why);
		snprintf(conn.id, sizeof(conn.id), "%s", user);
		peer_disconnect_later(b, &conn);
		if (now - b->last_barred_log >= 1000) {
			log_warnx("refused a frame from %s: %s; its connection is closed", user,
			          why);
			b->last_barred_log = now;
		}
		{
			char text[128];
			snprintf(text, sizeof(text),
			         "%s is no longer admitted by the federation directory (%s)", user,
			         strcmp(why, "expired") == 0 ? "its certificate has expired" : why);
			send_refused(b, zmq_msg_data(&rid), zmq_msg_size(&rid), 0, "not-admitted",
			             text);
		}
		audit_refusal(b, user, strcmp(why, "broker") == 0 ? "broker-key" : why);
		goto out;
	}
	rc = tern_hop_decode(zmq_msg_data(&body), zmq_msg_size(&body), (size_t)b->max_msg + 4096,
	                     &f);
	if (rc != TERN_OK) {
		log_warnx("undecodable frame from %s: %s", user, tern_errdetail());
		send_refused(b, zmq_msg_data(&rid), zmq_msg_size(&rid), 0, tern_errcode_name(rc),
		             "frame does not decode");
		audit_refusal(b, user, tern_errcode_name(rc));
		goto out;
	}
	on_frame(b, user, &conn, zmq_msg_data(&rid), zmq_msg_size(&rid), f);
out:
	zmq_msg_close(&body);
	zmq_msg_close(&rid);
}

/* --- timers ----------------------------------------------------------------------- */

static void timers(broker *b, int64_t now)
{
	disconnect_due(b, now);
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];
		if (!p->live)
			continue;
		if (now - p->last_rx > b->hb_timeout_ms) {
			log_info("%s silent for %lld ms: route dropped", p->id,
			         (long long)(now - p->last_rx));
			p->live = 0;
			p->sent = p->acked;
			continue;
		}
		if (now - p->last_tx > b->hb_ivl_ms) {
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__Ping ping = TERN__V1__PING__INIT;
			ping.at = now;
			f.body_case = TERN__V1__FRAME__BODY_PING;
			f.ping = &ping;
			send_to(b, p, &f);
		}
		if (p->sent > p->acked && now - p->progress > p->wait) {
			p->attempts++;
			if (p->attempts >= b->max_attempts && b->batch.ndead < MAX_PEERS) {
				snprintf(b->batch.dead[b->batch.ndead].node, 64, "%s", p->id);
				b->batch.dead[b->batch.ndead++].seq = p->acked + 1;
			}
			/* seq acked+1 may be gone (expired); dead-lettering finds none
			 * and the next attempt starts at the real head. */
			log_info(
			    "no acknowledgement from %s for %lld ms: redelivering from seq %llu "
			    "(attempt %d)",
			    p->id, (long long)p->wait, (unsigned long long)p->acked + 1,
			    p->attempts);
			p->sent = p->acked;
			p->progress = now;
			p->wait = p->wait * 2 > b->max_backoff_ms ? b->max_backoff_ms : p->wait * 2;
			p->dirty = 1;
		}
	}
	/* Checkpoints every checkpoint_interval while the log grows, every
	 * idle_checkpoint_interval when it does not. */
	if (now - b->last_checkpoint >= b->idle_ivl_ms)
		b->batch.checkpoint = 2;
	else if (now - b->last_checkpoint >= b->cp_ivl_ms && b->last_audit > b->last_checkpoint)
		b->batch.checkpoint = 1;
	if (b->batch.checkpoint)
		b->last_checkpoint = now;
	if (now >= b->next_purge) {
		/* Even with retain = 0: what an earlier setting kept must go. */
		b->next_purge = now + 10000;
		b->batch.purge = 1;
	}
	if (now >= b->next_sweep) {
		MDB_txn *txn;
		b->next_sweep = now + 1000;
		if (tern_store_read_begin(b->store, &txn) == TERN_OK) {
			b->batch.sweep = bq_next_expiry(txn, b->store) <= now;
			mdb_txn_abort(txn);
		}
	}
}

/* --- life cycle ------------------------------------------------------------------ */

static int control_open(broker *b);

int broker_open(const char *conf, broker **out)
{
	broker *b;
	int rc, one = 1;
	const char *dom = TERN_HOP_ZAP_DOMAIN;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return TERN_ENOMEM;
	if ((rc = tern_ident_load_start(conf, TERN_CONFIG_BROKER, stderr, &b->id)) != TERN_OK) {
		free(b);
		return rc;
	}
	log_init("tern-broker", (int)tern_config_get_int(b->id.cfg, "broker", "log_level"));
	if ((rc = tern_sigcache_new(0, &b->sigs)) != TERN_OK)
		goto fail;
	b->max_msg = tern_config_get_int(b->id.cfg, "limits", "max_message_size");
	b->batch_size = tern_config_get_int(b->id.cfg, "delivery", "batch_size");
	b->default_ttl_ms = tern_config_get_int(b->id.cfg, "delivery", "default_ttl") * 1000;
	b->max_attempts = tern_config_get_int(b->id.cfg, "delivery", "max_attempts");
	b->ack_timeout_ms = tern_config_get_int(b->id.cfg, "delivery", "ack_timeout") * 1000;
	b->max_backoff_ms = tern_config_get_int(b->id.cfg, "delivery", "max_backoff") * 1000;
	b->retain_ms = tern_config_get_int(b->id.cfg, "delivery", "retain") * 1000;
	b->retain_ids_ms = tern_config_get_int(b->id.cfg, "delivery", "retain_ids") * 1000;
	if (b->retain_ids_ms < b->retain_ms)
		b->retain_ids_ms = b->retain_ms; /* ids are kept at least as long as items */
	b->hb_ivl_ms = tern_config_get_int(b->id.cfg, "delivery", "heartbeat_interval") * 1000;
	b->hb_timeout_ms = tern_config_get_int(b->id.cfg, "delivery", "heartbeat_timeout") * 1000;
	b->skew_ms = tern_config_get_int(b->id.cfg, "federation", "max_clock_skew") * 1000;
	b->cp_ivl_ms = tern_config_get_int(b->id.cfg, "audit", "checkpoint_interval") * 1000;
	b->peer_rate = (double)tern_config_get_int(b->id.cfg, "limits", "peer_rate");
	b->peer_burst = (double)tern_config_get_int(b->id.cfg, "limits", "peer_burst");
	b->peer_backlog = tern_config_get_int(b->id.cfg, "limits", "peer_backlog");
	b->idle_ivl_ms = tern_config_get_int(b->id.cfg, "audit", "idle_checkpoint_interval") * 1000;

	randombytes_buf(b->epoch, BQ_EPOCH_LEN);
	if ((rc = bq_open(tern_config_get(b->id.cfg, "broker", "data_dir"), &b->store,
	                  b->store_id)) != TERN_OK) {
		fprintf(stderr, "tern-broker: cannot open the store in %s: %s (%s)\n",
		        tern_config_get(b->id.cfg, "broker", "data_dir"), tern_strerror(rc),
		        tern_errdetail());
		goto fail;
	}
	bq_audit_dbs(b->store, &b->audit);
	if ((rc = tern_daemon_trustmark_start(b->store, tern_store_dbi(b->store, BQ_META),
	                                      &b->audit, &b->id, "tern-broker")) != TERN_OK)
		goto fail;
	snprintf(b->origin, sizeof(b->origin), "tern/%s/%s", tern_directory_federation(b->id.dir),
	         b->id.id);
	b->ctx = zmq_ctx_new();
	/* The ZAP handler must be bound before the server socket binds. */
	b->zap = zmq_socket(b->ctx, ZMQ_REP);
	if (zmq_bind(b->zap, ZAP_ENDPOINT) != 0) {
		fprintf(stderr, "tern-broker: cannot bind the ZAP handler: %s\n",
		        zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
	if ((rc = tern_hop_sockopts(b->router, (int)(b->hb_ivl_ms / 1000),
	                            (int)(b->hb_timeout_ms / 1000), b->max_msg + 4096)) !=
	        TERN_OK ||
	    zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(b->id.curve), 32) !=
	        0 ||
	    zmq_setsockopt(b->router, ZMQ_ZAP_DOMAIN, dom, strlen(dom)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0) {
		fprintf(stderr, "tern-broker: socket options: %s\n", zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = tern_zmon_attach(b->ctx, b->router, "inproc://tern-broker-monitor",
	                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED,
	                           &b->monitor)) != TERN_OK ||
	    (rc = tern_zmon_new(b->monitor, &b->zmon)) != TERN_OK) {
		fprintf(stderr, "tern-broker: %s\n", tern_errdetail());
		goto fail;
	}
	if (zmq_bind(b->router, tern_config_get(b->id.cfg, "broker", "listen")) != 0) {
		fprintf(stderr, "tern-broker: cannot listen on %s: %s\n",
		        tern_config_get(b->id.cfg, "broker", "listen"), zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = control_open(b)) != TERN_OK) {
		fprintf(stderr, "tern-broker: cannot open the control socket: %s\n",
		        tern_errdetail());
		goto fail;
	}
	if (tern_config_get_int(b->id.cfg, "metrics", "port") > 0 &&
	    (rc = tern_http_start((uint16_t)tern_config_get_int(b->id.cfg, "metrics", "port"), NULL,
	                          &b->http)) != TERN_OK) {
		fprintf(stderr, "tern-broker: metrics: %s\n", tern_errdetail());
		goto fail;
	}
	*out = b;
	return TERN_OK;
fail:
	broker_close(&b);
	return rc ? rc : TERN_EIO;
}

void broker_close(broker **bp)
{
	broker *b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	batch_reset(b);
	free(b->batch.subs);
	free(b->qstats);
	for (size_t i = 0; i < b->npeers; i++)
		rate_free(&b->peers[i]);
	tern_http_stop(&b->http);
	if (b->ctl) {
		tern_apisrv_free(&b->ctl);
		unlink(tern_config_get(b->id.cfg, "broker", "control_socket"));
	}
	tern_zmon_free(&b->zmon);
	/* The monitor stops before its reader closes (zmon.h: a stop that
	 * never ended). */
	tern_zmon_detach(b->router, &b->monitor);
	if (b->router)
		zmq_close(b->router);
	if (b->zap)
		zmq_close(b->zap);
	if (b->ctx)
		zmq_ctx_term(b->ctx);
	tern_store_close(&b->store);
	tern_sigcache_free(&b->sigs);
	tern_ident_free(&b->id);
	free(b);
	*bp = NULL;
}

/* --- SIGHUP ------------------------------------------------------------------------ */

/* --- revocation ------------------------------------------------------------------- */

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
static void revocation_sweep(broker *b)
{
	struct barred_list *l = calloc(1, sizeof(*l));
	MDB_txn *txn;

	if (l == NULL) {
		log_warnx("out of memory: the queues of revoked members are not swept");
		return;
	}
	l->b = b;
	l->now = tern_now_ms();
	for (size_t i = 0; i < b->npeers; i++) {
		const char *why = peer_barred(b, b->peers[i].id, l->now);
		if (why)
			session_close(b, &b->peers[i], why);
	}
	if (tern_store_read_begin(b->store, &txn) == TERN_OK) {
		if (bq_destinations(txn, b->store, collect_barred, l) != TERN_OK)
			log_warnx("cannot list the queues: %s", tern_errdetail());
		mdb_txn_abort(txn);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct dl_job j = {
		    b,
		    l->ids[i],
		    strcmp(l->why[i], "revoked") == 0 ? "recipient-revoked" : "recipient-removed",
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
		b->m.revoked_dead += total;
		b->last_audit = l->now;
	}
	if (l->n)
		for (size_t i = 0; i < b->npeers; i++)
			b->peers[i].dirty = 1; /* notices were queued for the senders */
	free(l);
}

/* Between batches, so no envelope of the old directory is still in hand. */
static void reload(broker *b)
{
	uint64_t before = tern_directory_version(b->id.dir);

	if (tern_daemon_reload_ident(&b->id, TERN_CONFIG_BROKER, NULL, b->store,
	                             tern_store_dbi(b->store, BQ_META), &b->audit,
	                             b->m.rollbacks) != TERN_OK)
		return;
	log_info("reloaded: directory version %llu (was %llu), CRL number %lld",
	         (unsigned long long)tern_directory_version(b->id.dir), (unsigned long long)before,
	         (long long)tern_trust_crl_number(b->id.trust));
	b->last_audit = tern_now_ms();
	revocation_sweep(b);
}

/* --- metrics ----------------------------------------------------------------------- */

static void publish_metrics(broker *b, int64_t now)
{
	static const double le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
	tern_prom p = {0};
	MDB_txn *txn = NULL;
	bq_dest *d, *fresh = NULL;
	size_t nd = 0;
	char labels[128];

	tern_prom_family(&p, "tern_broker_submissions_total", "counter",
	                 "envelopes submitted by nodes, by message type and outcome");
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		for (int o = 0; o < 2; o++) {
			snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", t->name,
			         o ? "refused" : "accepted");
			tern_prom_sample(&p, "tern_broker_submissions_total", labels,
			                 (double)b->m.subs[(unsigned)t->type < 8 ? t->type : 0][o]);
		}
	tern_prom_one(&p, "tern_broker_deliveries_acked_total", "counter",
	              "queue items nodes acknowledged as committed", (double)b->m.acked);
	tern_prom_family(&p, "tern_broker_dead_letters_total", "counter",
	                 "items dead-lettered, by reason: too many delivery attempts, or the "
	                 "recipient revoked or removed from the directory");
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"max-attempts\"",
	                 (double)b->m.dead);
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"recipient-revoked\"",
	                 (double)b->m.revoked_dead);
	tern_prom_one(&p, "tern_broker_node_restores_total", "counter",
	              "nodes found holding less than they acknowledged (a store put back from an "
	              "older copy): what is retained is delivered again",
	              (double)b->m.restores);
	tern_prom_one(&p, "tern_broker_restore_lost_total", "counter",
	              "deliveries such nodes lost that retention had already purged "
	              "([delivery] retain too short for the backup's age)",
	              (double)b->m.lost);
	tern_prom_one(&p, "tern_broker_retained_purged_total", "counter",
	              "acknowledged items deleted once past [delivery] retain",
	              (double)b->m.purged);
	tern_prom_one(&p, "tern_broker_frames_not_admitted_total", "counter",
	              "frames refused because their member is no longer admitted (revoked, "
	              "removed or lapsed since its handshake)",
	              (double)b->m.barred);
	tern_prom_histogram(&p, "tern_broker_delivery_latency_seconds",
	                    "from the broker's commit of a message to the recipient node's", lat_le,
	                    b->m.lat, LAT_BUCKETS, b->m.lat_sum);
	tern_prom_histogram(&p, "tern_broker_commit_batch_size",
	                    "submissions written per LMDB commit (group commit)", le, b->m.batch,
	                    10, (double)b->m.batch_sum);
	if (now >= b->next_qscan && tern_store_read_begin(b->store, &txn) == TERN_OK) {
		if (bq_stats(txn, b->store, &fresh, &nd) == TERN_OK) {
			int64_t spent = tern_now_ms() - now;
			free(b->qstats);
			b->qstats = fresh;
			b->nqstats = nd;
			b->next_qscan = now + (spent * 100 > 1000 ? spent * 100 : 1000);
		}
		mdb_txn_abort(txn);
	}
	d = b->qstats;
	nd = b->nqstats;
	{
		tern_prom_family(&p, "tern_broker_queue_depth", "gauge",
		                 "items queued per destination, in flight included");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_depth", labels, (double)d[i].depth);
		}
		tern_prom_family(&p, "tern_broker_queue_bytes", "gauge",
		                 "bytes queued per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_bytes", labels, (double)d[i].bytes);
		}
		tern_prom_family(&p, "tern_broker_queue_oldest_seconds", "gauge",
		                 "age of the oldest item per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_oldest_seconds", labels,
			                 d[i].depth ? (double)(now - d[i].oldest) / 1000 : 0);
		}
		tern_prom_family(&p, "tern_broker_dead_letter_depth", "gauge",
		                 "items in the dead-letter queue per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_dead_letter_depth", labels,
			                 (double)d[i].dead);
		}
	}
	tern_prom_one(&p, "tern_broker_connections_accepted_total", "counter",
	              "TCP connections accepted on the listening endpoint", (double)b->m.accepted);
	tern_prom_family(&p, "tern_broker_handshakes_total", "counter",
	                 "CurveZMQ handshakes by result (accepted minus these: connections that "
	                 "never completed one)");
	tern_prom_sample(&p, "tern_broker_handshakes_total", "result=\"ok\"",
	                 (double)b->m.handshakes_ok);
	tern_prom_sample(&p, "tern_broker_handshakes_total", "result=\"failed\"",
	                 (double)b->m.handshakes_failed);
	tern_prom_one(&p, "tern_broker_submits_out_of_sequence_total", "counter",
	              "Submissions not taken because they came out of their session's order "
	              "(the node resubmits them)",
	              (double)b->m.out_of_sequence);
	{
		uint64_t hits, misses;
		tern_sigcache_stats(b->sigs, &hits, &misses);
		tern_prom_family(
		    &p, "tern_broker_batch_roots_total", "counter",
		    "batch-signed envelopes by how their root's signature was checked: "
		    "verified, or remembered from an envelope of the same batch");
		tern_prom_sample(&p, "tern_broker_batch_roots_total", "result=\"verified\"",
		                 (double)misses);
		tern_prom_sample(&p, "tern_broker_batch_roots_total", "result=\"remembered\"",
		                 (double)hits);
	}
	tern_prom_family(&p, "tern_broker_node_connected", "gauge", "1 when the node is connected");
	for (size_t i = 0; i < b->npeers; i++) {
		snprintf(labels, sizeof(labels), "node=\"%s\"", b->peers[i].id);
		tern_prom_sample(&p, "tern_broker_node_connected", labels, b->peers[i].live);
	}
	tern_prom_directory(&p, b->id.dir, tern_trust_crl_number(b->id.trust), b->m.rollbacks);
	if (p.buf) {
		tern_http_publish(b->http, "/metrics", 200, TERN_PROM_CTYPE, p.buf, 0);
		tern_http_publish(b->http, "/healthz", 200, "text/plain; charset=utf-8", "ok\n",
		                  10000);
		tern_http_publish(b->http, "/readyz", 200, "text/plain; charset=utf-8", "ready\n",
		                  10000);
	}
	tern_prom_free(&p);
}

/* Connections that never complete the CurveZMQ handshake (garbage on the
 * port, a scanner, a client without the broker's key) never reach the ZAP
 * handler or any frame handler: libzmq drops them. The socket monitor counts
 * them for /metrics (accepted minus completed handshakes) and logs the
 * failures before authentication, at most once a second, with the peer's
 * address when it can be known (zmon.h says when); refusals by the ZAP
 * handler are logged there, with the address its request carries. */
static void on_monitor_event(void *arg, const tern_zmon_event *e)
{
	broker *b = arg;
	int64_t now;

	if (e->event == ZMQ_EVENT_ACCEPTED)
		b->m.accepted++;
	else if (e->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
		b->m.handshakes_ok++;
	if (e->event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	    e->event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
	    e->event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return;
	b->m.handshakes_failed++;
	if (e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return;
	b->handshakes_failed++;
	if ((now = tern_now_ms()) - b->last_handshake_log < 1000)
		return;
	log_warnx("%u connection(s) failed the CurveZMQ handshake before authentication (a client "
	          "without this broker's current key, or not a Tern node), the last from %s",
	          b->handshakes_failed,
	          e->peer[0] ? e->peer : "a peer whose address is unknown (closed too soon)");
	b->handshakes_failed = 0;
	b->last_handshake_log = now;
}

static void on_monitor(broker *b)
{
	tern_zmon_drain(b->zmon, on_monitor_event, b);
}

/* --- control socket ---------------------------------------------------------------- */

/* The live view: what the store holds, with what only the running broker
 * knows (connections, deliveries in flight, attempts). */
static json_t *queues_json(broker *b)
{
	MDB_txn *txn = NULL;
	bq_dest *d = NULL;
	size_t nd = 0;
	int64_t now = tern_now_ms();
	json_t *arr, *it;
	size_t i;

	if (tern_store_read_begin(b->store, &txn) != TERN_OK ||
	    bq_stats(txn, b->store, &d, &nd) != TERN_OK) {
		if (txn)
			mdb_txn_abort(txn);
		return tern_api_error(TERN_EIO, "cannot read the queues: %s", tern_errdetail());
	}
	mdb_txn_abort(txn);
	arr = bq_stats_json(d, nd, now);
	free(d);
	/* Connected nodes with nothing queued are destinations too. */
	for (size_t p = 0; p < b->npeers; p++) {
		int found = 0;
		json_array_foreach(arr, i, it) found |=
		    strcmp(json_string_value(json_object_get(it, "id")), b->peers[p].id) == 0;
		if (!found)
			json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "id",
			                                     b->peers[p].id, "depth", 0, "bytes", 0,
			                                     "notices", 0, "dead_letters", 0,
			                                     "oldest_age_ms", 0));
	}
	json_array_foreach(arr, i, it)
	{
		struct peer *p = peer_find(b, json_string_value(json_object_get(it, "id")), 0);
		json_object_set_new(it, "connected", json_boolean(p && p->live));
		json_object_set_new(it, "in_flight",
		                    json_integer(p ? (json_int_t)(p->sent - p->acked) : 0));
		json_object_set_new(it, "attempts", json_integer(p ? p->attempts : 0));
		json_object_set_new(it, "last_seen_ms_ago",
		                    p && p->last_rx ? json_integer(now - p->last_rx) : json_null());
	}
	return json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "source", "daemon", "broker", b->id.id,
	                 "destinations", arr);
}

struct dlq_find {
	const char *msgid;
	char rcpts[MAX_PEERS][64];
	size_t n;
	json_t *list;
};

static void dlq_visit(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                      void *arg)
{
	struct dlq_find *f = arg;

	if (f->list)
		json_array_append_new(f->list,
		                      json_pack("{s:s, s:s, s:s, s:I}", "destination", rcpt,
		                                "message_id", msgid, "reason", reason,
		                                "dead_lettered_at", (json_int_t)at));
	else if (strcmp(msgid, f->msgid) == 0 && f->n < MAX_PEERS)
		snprintf(f->rcpts[f->n++], 64, "%s", rcpt);
}

struct dlq_act {
	broker *b;
	struct dlq_find *f;
	int retry;
	char who[32];
};

static int dlq_apply(MDB_txn *txn, void *arg)
{
	struct dlq_act *a = arg;
	int64_t now = tern_now_ms();
	int rc;

	for (size_t i = 0; i < a->f->n; i++) {
		if ((rc = bq_dlq_take(txn, a->b->store, a->f->rcpts[i], a->f->msgid, a->retry,
		                      now + a->b->default_ttl_ms, now)) != TERN_OK)
			return rc;
		/* Who did what to which message, in the same transaction. */
		if ((rc = bq_audit(txn, a->b->store, TERN__V1__AUDIT_ENTRY__KIND__OPERATOR,
		                   a->f->msgid, a->f->rcpts[i], NULL,
		                   a->retry ? "dlq-retry" : "dlq-drop", NULL, 0, a->who, NULL, 0,
		                   now)) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static json_t *dlq_op(broker *b, const char *op, const json_t *req, uid_t uid)
{
	struct dlq_find f = {0};
	struct dlq_act a = {b, &f, strcmp(op, "dlq.retry") == 0, ""};
	MDB_txn *txn = NULL;
	int rc;

	if (strcmp(op, "dlq.list") == 0)
		f.list = json_array();
	else if ((f.msgid = json_string_value(json_object_get(req, "message_id"))) == NULL)
		return tern_api_error(TERN_EINVAL, "give message_id");
	if ((rc = tern_store_read_begin(b->store, &txn)) == TERN_OK)
		rc = bq_dlq_scan(txn, b->store, dlq_visit, &f);
	if (txn)
		mdb_txn_abort(txn);
	if (rc != TERN_OK) {
		json_decref(f.list);
		return tern_api_error(rc, "cannot read the dead letters: %s", tern_errdetail());
	}
	if (f.list)
		return json_pack("{s:b, s:o}", "ok", 1, "dead_letters", f.list);
	if (f.n == 0)
		return tern_api_error(TERN_ENOENT, "%s is not in the dead-letter queue", f.msgid);
	snprintf(a.who, sizeof(a.who), "uid %u", (unsigned)uid);
	if ((rc = tern_store_write(b->store, dlq_apply, &a)) != TERN_OK)
		return tern_api_error(rc, "%s", tern_errdetail());
	b->last_audit = tern_now_ms();
	for (size_t i = 0; i < f.n; i++) {
		struct peer *p = peer_find(b, f.rcpts[i], 0);
		if (p)
			p->dirty = 1;
		log_info("operator (%s) %s %s for %s", a.who, a.retry ? "requeued" : "dropped",
		         f.msgid, f.rcpts[i]);
	}
	return json_pack("{s:b, s:i}", "ok", 1, "destinations", (int)f.n);
}

static json_t *queue_show(broker *b, const json_t *req)
{
	const char *dest = json_string_value(json_object_get(req, "destination"));
	json_int_t max = json_integer_value(json_object_get(req, "max"));
	MDB_txn *txn = NULL;
	json_t *items = NULL;
	int rc;

	if (dest == NULL)
		return tern_api_error(TERN_EINVAL, "give destination");
	if ((rc = tern_store_read_begin(b->store, &txn)) == TERN_OK)
		rc = bq_show(txn, b->store, dest, max > 0 ? (size_t)max : 1000, &items);
	if (txn)
		mdb_txn_abort(txn);
	if (rc != TERN_OK)
		return tern_api_error(rc, "cannot read the queue: %s", tern_errdetail());
	return json_pack("{s:b, s:s, s:o}", "ok", 1, "destination", dest, "items", items);
}

static json_t *peers_json(broker *b)
{
	json_t *arr = json_array();
	int64_t now = tern_now_ms();

	for (size_t i = 0; i < tern_directory_count(b->id.dir); i++) {
		const tern_member *m = tern_directory_at(b->id.dir, i);
		struct peer *p;
		if (m->roles & TERN_ROLE_BROKER)
			continue;
		p = peer_find(b, m->node_id, 0);
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:b, s:o, s:s, s:I, s:b}", "id", m->node_id,
		                   "agency", m->agency ? m->agency : "", "connected", p && p->live,
		                   "last_seen_ms_ago",
		                   p && p->last_rx ? json_integer(now - p->last_rx) : json_null(),
		                   "software", p ? p->software : "", "certificate_expires_at",
		                   (json_int_t)m->cert_not_after, "revoked", m->revoked));
	}
	return json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "source", "daemon", "broker", b->id.id,
	                 "peers", arr);
}

/* One complete control request; the answer goes back without blocking
 * (apisrv.h). */
static json_t *on_control(void *arg, int conn, json_t *req, uid_t uid)
{
	broker *b = arg;
	const char *op;

	(void)conn;
	if (json_integer_value(json_object_get(req, "v")) != TERN_API_VERSION ||
	    (op = json_string_value(json_object_get(req, "op"))) == NULL)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "this broker speaks control version 1; give \"v\":1 and \"op\"");
	if (strcmp(op, "queues") == 0)
		return queues_json(b);
	if (strcmp(op, "queue.show") == 0)
		return queue_show(b, req);
	if (strcmp(op, "peers") == 0)
		return peers_json(b);
	if (strcmp(op, "dlq.list") == 0 || strcmp(op, "dlq.retry") == 0 ||
	    strcmp(op, "dlq.drop") == 0)
		return dlq_op(b, op, req, uid);
	return tern_api_error(TERN_EINVAL,
	                      "unknown operation '%s' (queues, queue.show, peers, dlq.list, "
	                      "dlq.retry, dlq.drop)",
	                      op);
}

static int control_open(broker *b)
{
	tern_apisrv_opts o = {.name = "control",
	                      .max_frame = CONTROL_MAX_FRAME,
	                      .max_conns = TERN_API_MAX_CONNS,
	                      .max_buffered = 0, /* at most max_conns x 64 KiB */
	                      .request_ms = TERN_API_REQUEST_MS,
	                      .reply_ms = TERN_API_REPLY_MS};
	int fd, rc;

	if ((rc = tern_api_listen(tern_config_get(b->id.cfg, "broker", "control_socket"), &fd)) !=
	    TERN_OK)
		return rc;
	return tern_apisrv_new(fd, &o, on_control, b, &b->ctl);
}

int broker_run(broker *b, volatile sig_atomic_t *stop)
{
	log_info("broker %s listening on %s (directory version %llu)", b->id.id,
	         tern_config_get(b->id.cfg, "broker", "listen"),
	         (unsigned long long)tern_directory_version(b->id.dir));
	revocation_sweep(b); /* members revoked while the broker was down */
	while (!*stop) {
		/* Control clients are polled with the nodes: none can hold the loop. */
		zmq_pollitem_t items[3 + CONTROL_POLL_MAX] = {{b->router, 0, ZMQ_POLLIN, 0},
		                                              {b->zap, 0, ZMQ_POLLIN, 0},
		                                              {b->monitor, 0, ZMQ_POLLIN, 0}};
		size_t nctl = tern_apisrv_pollitems(b->ctl, items + 3, CONTROL_POLL_MAX);
		int64_t now;
		int n = zmq_poll(items, 3 + (int)nctl, 100);

		if (n < 0 && errno != EINTR) {
			log_warn("zmq_poll");
			break;
		}
		if (n > 0 && (items[1].revents & ZMQ_POLLIN))
			zap_handle(b);
		if (n > 0 && (items[2].revents & ZMQ_POLLIN))
			on_monitor(b);
		tern_apisrv_serve(b->ctl, items + 3, nctl, n > 0, tern_now_ms());
		b->batch.now = tern_now_ms();
		if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
			/* Group commit: take what is waiting, up to a batch, then write once. */
			for (int64_t i = 0; i < b->batch_size; i++) {
				int ev = 0;
				size_t sz = sizeof(ev);
				zmq_getsockopt(b->router, ZMQ_EVENTS, &ev, &sz);
				if (!(ev & ZMQ_POLLIN))
					break;
				on_router(b);
				if (b->batch.nsubs >= (size_t)b->batch_size)
					break;
			}
		}
		now = tern_now_ms();
		timers(b, now);
		if (now >= b->next_expiry_check) {
			/* At start and hourly: an expiry must not surprise anyone. */
			tern_expiry_warn(b->id.dir, b->id.id, now / 1000);
			b->next_expiry_check = now + 3600 * 1000;
		}
		if (tern_daemon_reload && b->batch.nsubs == 0) {
			tern_daemon_reload = 0;
			reload(b);
		}
		if (b->http && now >= b->next_metrics) {
			/* A snapshot a second: scrapes never touch the loop's state. */
			publish_metrics(b, now);
			b->next_metrics = now + 1000;
		}
		b->batch.now = now;
		rate_release(b, now);
		batch_commit(b);
		for (size_t i = 0; i < b->npeers; i++)
			if (b->peers[i].dirty && b->peers[i].live)
				pump(b, &b->peers[i]);
	}
	b->batch.checkpoint = 1; /* sign the head before leaving */
	batch_commit(b);
	log_info("broker %s stopped", b->id.id);
	return TERN_OK;
}

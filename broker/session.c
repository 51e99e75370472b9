/* Peers and their sessions: a node's Hello and the Welcome, every frame it
 * sends afterwards (submissions are handed to route.c, acknowledgements to
 * the batch, over the rate to ratelimit.c), and heartbeats.
 *
 * Touches: b->peers, b->batch (appends submissions and acknowledgements),
 * b->m counters, and sends on b->router. Who may speak at all is admit.c's
 * to say; what a submission is worth is route.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/merkle.h>

#include "broker_int.h"
#include "hop.h"
#include "pbuf.h"
#include "util.h"

/* --- peers and sending ------------------------------------------------------- */

struct peer *peer_find(broker *b, const char *id, int create)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (strcmp(b->peers[i].id, id) == 0)
			return &b->peers[i];
	if (!create || b->npeers == MAX_PEERS)
		return NULL;
	memset(&b->peers[b->npeers], 0, sizeof(b->peers[0]));
	snprintf(b->peers[b->npeers].id, sizeof(b->peers[0].id), "%s", id);
	b->peers[b->npeers].fd = -1;
	b->peers[b->npeers].bulk_fd = -1;
	return &b->peers[b->npeers++];
}

void touch_peer(const char *rcpt, void *arg)
{
	struct peer *p = peer_find(arg, rcpt, 0);

	if (p)
		p->dirty = 1;
}

int peer_send(broker *b, struct peer *p, Tern__V1__Frame *f)
{
	int rc = tern_hop_send(b->router, p->rid, p->rid_len, f, ZMQ_DONTWAIT);

	if (rc == TERN_OK)
		p->last_tx = tern_now_ms();
	return rc;
}

int peer_send_bulk(broker *b, struct peer *p, Tern__V1__Frame *f)
{
	int rc;

	if (p->bulk_rid_len == 0)
		return peer_send(b, p, f);
	rc = tern_hop_send(b->router, p->bulk_rid, p->bulk_rid_len, f, ZMQ_DONTWAIT);
	if (rc != TERN_OK && errno == EHOSTUNREACH) {
		/* The lane's connection went (the ROUTER is mandatory): the node
		 * opens another after its next Welcome; meanwhile, the main one. */
		log_info("%s's bulk lane is gone; its chunks go on its main connection", p->id);
		p->bulk_rid_len = 0;
		return peer_send(b, p, f);
	}
	return rc;
}

/* session: the refused Submit's, so the node can tell it from an older one's; 0 otherwise. */
static void send_refused_code(broker *b, const void *rid, size_t rid_len, uint64_t session,
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

static void send_refused(broker *b, const void *rid, size_t rid_len, uint64_t session,
                         tern_reason reason, const char *text)
{
	send_refused_code(b, rid, rid_len, session, tern_reason_code(reason), text);
}

void session_refuse(broker *b, const void *rid, size_t rid_len, uint64_t session,
                    tern_reason reason, const char *text)
{
	send_refused(b, rid, rid_len, session, reason, text);
}

/* --- Hello ------------------------------------------------------------------- */

static void on_hello(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                     size_t rid_len, const Tern__V1__Hello *h)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Welcome w = TERN__V1__WELCOME__INIT;
	uint64_t accepted = 0, last = 0, acked = 0;
	char last_accepted[37] = "";
	int64_t now = tern_now_ms();
	struct peer *p;
	uint64_t out, head = 0;
	int new_process, count_restart, same_epoch, restored = 0, went_back, holds_none;

	if (strcmp(h->node_id, user) != 0) {
		log_warnx("refused Hello: peer %s claims to be %s", user, h->node_id);
		send_refused(b, rid, rid_len, 0, TERN_REASON_IDENTITY_MISMATCH,
		             "Hello node_id differs from the authenticated identity");
		return;
	}
	if (h->session == 0) {
		/* Without a session its submissions could not be kept in order. */
		log_warnx("refused Hello from %s (%s): no session; it needs upgrading", user,
		          h->software);
		send_refused(b, rid, rid_len, 0, TERN_REASON_UNSUPPORTED_VERSION,
		             "Hello without a session: upgrade this node");
		return;
	}
	if ((p = peer_find(b, user, 1)) == NULL) {
		send_refused(b, rid, rid_len, 0, TERN_REASON_BUSY, "too many nodes connected");
		return;
	}
	/* Whether this Hello comes from another process of the node (it was
	 * restarted: perhaps it died on what it was sent), and if so whether
	 * it counts as a failed delivery of the head: at most one an
	 * ack_timeout, so that a member saying Hello with a new instance each
	 * time cannot turn its messages into dead letters (and notices to
	 * their senders) at the rate of its round trips. */
	new_process = h->instance != 0 && p->instance != 0 && h->instance != p->instance &&
	              h->instance != p->prev_instance;
	count_restart = new_process &&
	                (now - p->restart_counted >= b->ack_timeout_ms || now < p->restart_counted);
	same_epoch = h->broker_epoch.len == BQ_EPOCH_LEN &&
	             memcmp(h->broker_epoch.data, b->epoch, BQ_EPOCH_LEN) == 0;
	/* What the last connection had out, not yet counted as an attempt. */
	out = p->sent > p->lost_hi ? p->sent : p->lost_hi;
	{
		/* What the store knows of this node (after a start, the memory
		 * knows nothing yet), read before anything changes. Unread (no
		 * memory for the read), it must not be answered as empty: a
		 * Welcome saying none of the node's messages were accepted is a
		 * broker store put back, to the node, which would say so in its
		 * audit log and submit again all it holds. Nor may a restart go
		 * uncounted for want of its head: the next Hello is no longer
		 * from a new process. The node says Hello again instead. */
		MDB_txn *txn;
		int rc = tern_store_read_begin(b->store, &txn);
		if (rc == TERN_OK) {
			/* Each read on its own: a damaged one leaves the others. */
			int r[4] = {
			    bq_acked(txn, b->store, user, &acked),
			    bq_last_seq(txn, b->store, user, &last),
			    bq_accepted_count(txn, b->store, user, &accepted, last_accepted),
			    TERN_OK};
			if (count_restart) {
				/* The first seq the node is sent after this Hello, as
				 * below: past what it acknowledged, or past what it
				 * says it holds (a resync). A counter unread reads 0,
				 * as the code below takes it. Read only when the old
				 * connection had something out past it: otherwise
				 * nothing is counted, and a Hello flood must not buy a
				 * scan of the queue each. */
				uint64_t from = acked > p->acked ? acked : p->acked;
				if (same_epoch && h->delivered_upto > from &&
				    h->delivered_upto <= last)
					from = h->delivered_upto;
				if (out > from)
					r[3] = bq_head(txn, b->store, user, from + 1, &head);
			}
			mdb_txn_abort(txn);
			for (int i = 0; i < 4; i++) /* a shortage outranks damage */
				if (r[i] != TERN_OK && (rc == TERN_OK || rc == TERN_EMALFORMED))
					rc = r[i];
		}
		if (rc == TERN_EMALFORMED) {
			/* Damaged, not short: no later Hello would read it better.
			 * Answered with what could be read, as before. */
			log_warnx("%s's counters in the store are damaged (%s); answering its "
			          "Hello with what could be read",
			          user, tern_errdetail());
		} else if (rc != TERN_OK) {
			log_warnx("cannot answer %s's Hello: its queue and acceptances cannot be "
			          "read: %s (%s)",
			          user, tern_strerror(rc), tern_errdetail());
			send_refused(b, rid, rid_len, h->session, TERN_REASON_BUSY,
			             "the broker cannot read its store for this node now; say "
			             "Hello again");
			return;
		}
	}
	/* The node holds less than it acknowledged: its store was put back from
	 * an older copy. Its Hello names this broker's store, or none at all
	 * (16 zero bytes: it has taken no delivery yet, so it holds nothing of
	 * any store; a copy taken before its first delivery). */
	{
		static const uint8_t none[BQ_EPOCH_LEN];
		uint64_t had = acked > p->acked ? acked : p->acked;
		int ours = h->broker_store.len == BQ_EPOCH_LEN &&
		           memcmp(h->broker_store.data, b->store_id, BQ_EPOCH_LEN) == 0;
		holds_none = h->broker_store.len == BQ_EPOCH_LEN &&
		             memcmp(h->broker_store.data, none, BQ_EPOCH_LEN) == 0 &&
		             h->delivered_upto == 0;
		went_back = (ours || holds_none) && h->delivered_upto < had;
	}
	if (went_back && now - p->last_restore < 60000) {
		/* At most one rewind a minute: a member lying in its Hello must not
		 * keep the broker busy. But such a Hello must not be welcomed
		 * either: the node would take what comes next, its position would
		 * pass the mark, and what it lost would never go again (a store put
		 * back twice in a row). It says Hello again, and after the minute
		 * the restore is honoured. */
		log_warnx(
		    "%s says again it holds less than it acknowledged, within a minute of the "
		    "last time; refused until the minute is over",
		    user);
		send_refused(b, rid, rid_len, h->session, TERN_REASON_BUSY,
		             "this node's store went back again within a minute; say Hello again");
		return;
	}
	if (p->live && (p->rid_len != rid_len || memcmp(p->rid, rid, rid_len) != 0))
		log_info("handover: %s reconnected, %llu deliveries in flight are sent again", user,
		         (unsigned long long)(p->sent - p->acked));
	/* Handover by authenticated identity: the new connection takes the route. */
	memcpy(p->rid, rid, rid_len);
	p->rid_len = rid_len;
	p->fd = conn_ends(conn->fd, &p->local, &p->remote);
	p->live = 1;
	chunk_gets_drop(p);  /* gets are per session: the node asks again */
	p->bulk_rid_len = 0; /* so is the bulk lane: the node opens it again */
	p->session = h->session;
	p->next_index = 1;
	p->broken = 0;
	snprintf(p->software, sizeof(p->software), "%s", h->software);
	p->credit = h->credit ? h->credit : 1;
	p->deliver_batch = h->deliver_batch < BROKER_DELIVER_BATCH_MAX ? h->deliver_batch
	                                                               : BROKER_DELIVER_BATCH_MAX;
	p->result_batch = h->result_batch;
	if (h->instance != p->instance) {
		p->prev_instance = p->instance;
		p->instance = h->instance;
	}
	p->lost_hi = 0;
	if (acked > p->acked)
		p->acked = acked;
	p->sent = p->sent_hi = p->acked;
	if (!new_process) {
		/* The same process says Hello again for a reason of its own (a
		 * commit it could not make, a gap, a broker that seemed silent):
		 * not the head's fault. The count starts afresh, and a dead letter
		 * decided on the old connection's attempts goes with them. */
		p->attempts = 0;
		for (size_t i = 0; i < b->batch.ndead; i++)
			if (strcmp(b->batch.dead[i].node, user) == 0)
				b->batch.dead[i].seq = 0;
	}
	p->wait = b->ack_timeout_ms;
	p->progress = now; /* the old connection's wait is not this one's */
	p->last_rx = tern_now_ms();
	p->dirty = 1;
	/* An acknowledgement of the old connection not committed yet (within
	 * its 20 ms, or kept by commits that failed) says what the node's store
	 * held then; this Hello says what it holds now. If that is less (its
	 * store was put back in between), the acknowledgement stops there:
	 * committed, it would take from the queue what the node no longer has. */
	for (size_t i = 0; i < b->batch.nacks; i++)
		if (strcmp(b->batch.acks[i].node, user) == 0) {
			uint64_t holds = same_epoch ? h->delivered_upto : 0;
			if (b->batch.acks[i].upto > holds)
				b->batch.acks[i].upto = holds;
		}
	if (went_back) {
		/* The node acknowledged more than its store now holds: its store
		 * was put back from an older copy. Its number can be trusted only
		 * if it counts in this start (a store put back numbers again what
		 * it numbered after its copy), or if it holds nothing; otherwise
		 * everything retained goes again, and the node's de-duplication
		 * sorts it out. */
		node_restored(b, p, same_epoch ? h->delivered_upto : 0, same_epoch || holds_none);
		restored = 1;
	} else if (same_epoch && h->delivered_upto > p->acked && h->delivered_upto <= last) {
		/* Resync: what the node already holds is dropped, not sent again. */
		batch_ack_add(b, user, h->delivered_upto);
		p->sent = p->sent_hi = h->delivered_upto;
	}
	if (count_restart && !restored && out > p->sent) {
		/* The head (read above) went out to the old process and is not
		 * held by the new one: that delivery failed. */
		if (head != 0 && head <= out) {
			p->restart_counted = now;
			deliver_count(b, p, head);
			log_info("%s restarted with seq %llu delivered and not acknowledged "
			         "(attempt %d)",
			         user, (unsigned long long)head, p->attempts);
		}
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
	peer_send(b, p, &f);
	log_info("%s connected (credit %u)", user, p->credit);
}

/* --- the bulk lane ------------------------------------------------------------ */

/* A node's second connection, for its chunk frames (wire.proto, BulkHello):
 * bound to the session of its main connection, from the same authenticated
 * identity, so nobody can open a lane for another node or outlive a Hello. */
static void on_bulk_hello(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                          size_t rid_len, const Tern__V1__BulkHello *h)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__BulkWelcome w = TERN__V1__BULK_WELCOME__INIT;
	struct peer *p = peer_find(b, user, 0);

	if (strcmp(h->node_id, user) != 0) {
		log_warnx("refused BulkHello: peer %s claims to be %s", user, h->node_id);
		send_refused(b, rid, rid_len, h->session, TERN_REASON_IDENTITY_MISMATCH,
		             "BulkHello node_id differs from the authenticated identity");
		audit_refusal(b, user, tern_reason_code(TERN_REASON_IDENTITY_MISMATCH));
		return;
	}
	if (p == NULL || !p->live || h->session == 0 || h->session != p->session ||
	    (p->rid_len == rid_len && memcmp(p->rid, rid, rid_len) == 0)) {
		/* A lane of an older session, or one asked for on the main
		 * connection itself: the node says Hello (again) first. */
		send_refused(b, rid, rid_len, h->session, TERN_REASON_HELLO_REQUIRED,
		             "a bulk lane needs the session of this node's latest Hello, on a "
		             "connection of its own");
		return;
	}
	if (p->bulk_rid_len != rid_len || memcmp(p->bulk_rid, rid, rid_len) != 0)
		log_info("%s opened its bulk lane", user);
	memcpy(p->bulk_rid, rid, rid_len);
	p->bulk_rid_len = rid_len;
	p->bulk_fd = conn_ends(conn->fd, &p->bulk_local, &p->bulk_remote);
	w.session = h->session;
	f.body_case = TERN__V1__FRAME__BODY_BULK_WELCOME;
	f.bulk_welcome = &w;
	(void)peer_send_bulk(b, p, &f);
	/* Gets asked on the main connection are served on the lane from now. */
	if (p->ngets)
		p->chunk_dirty = 1;
}

/* Frames a bulk lane carries: chunk frames, and liveness. */
static int bulk_frame(Tern__V1__Frame__BodyCase c)
{
	return c == TERN__V1__FRAME__BODY_CHUNK_PUT || c == TERN__V1__FRAME__BODY_CHUNK_GET ||
	       c == TERN__V1__FRAME__BODY_CHUNK_DONE || c == TERN__V1__FRAME__BODY_PING ||
	       c == TERN__V1__FRAME__BODY_PONG;
}

/* --- witnessing relay --------------------------------------------------------- */

/* A round asks each other member once, and a conflict once more; the
 * member asked answers each ask. So between two members a few frames a
 * round, and rounds follow checkpoints ([audit] checkpoint_interval, 1 s at
 * the least). More is a flood, whose frames would queue ahead of its
 * target's deliveries. Counted per pair (sender, target): a member flooding
 * another spends only its own allowance towards that one. */
#define WITNESS_BURST 16.0
#define WITNESS_RATE 4.0
/* A checkpoint note is an origin, a size, a root and a signature line. */
#define WITNESS_NOTE_MAX 4096
#define WITNESS_LINE_MAX 1024

/* Whether a witness frame keeps to the bounds real witnessing needs. */
static int witness_bounded(const Tern__V1__Frame *f)
{
	if (f->body_case == TERN__V1__FRAME__BODY_WITNESS_REQUEST) {
		const Tern__V1__WitnessRequest *r = f->witness_request;
		if (strlen(r->checkpoint) > WITNESS_NOTE_MAX ||
		    strlen(r->reanchor) > WITNESS_NOTE_MAX || r->n_proof > TERN_MERKLE_MAX_PROOF)
			return 0;
		for (size_t i = 0; i < r->n_proof; i++)
			if (r->proof[i].len != sizeof(tern_hash))
				return 0;
		return 1;
	}
	return strlen(f->witness_response->cosignature) <= WITNESS_LINE_MAX &&
	       strlen(f->witness_response->reason_code) <= 64;
}

/* Witnessing traffic goes from node to node unchanged but for peer, which
 * becomes the authenticated sender: no node can speak for another. Nothing is
 * stored; a witness that is away is asked again at the owner's next round.
 * Frames over the bounds are refused; over the rate, dropped. */
static void relay_witness(broker *b, struct peer *from, const uint8_t *rid, size_t rid_len,
                          Tern__V1__Frame *f)
{
	const char *user = from->id;
	int answer = f->body_case == TERN__V1__FRAME__BODY_WITNESS_RESPONSE;
	char **peer = answer ? &f->witness_response->peer : &f->witness_request->peer;
	struct peer *to = peer_find(b, *peer, 0);
	struct witness_bucket *wb;
	char *to_id = *peer;
	int64_t now = tern_now_ms();

	if (!witness_bounded(f)) {
		send_refused(b, rid, rid_len, 0, TERN_REASON_MALFORMED,
		             "witness frame over its bounds (a checkpoint note and a re-anchor "
		             "request of at most 4096 bytes each, at most 64 proof hashes of 32 "
		             "bytes)");
		log_warnx("%s sent a witness frame over its bounds; not relayed", user);
		audit_refusal(b, user, tern_reason_code(TERN_REASON_MALFORMED));
		return;
	}
	if (to == NULL || !to->live || strcmp(*peer, user) == 0)
		return;
	wb = &b->wb[from - b->peers][to - b->peers];
	if (wb->refilled == 0)
		wb->tokens = WITNESS_BURST;
	else if (now > wb->refilled)
		wb->tokens += (double)(now - wb->refilled) * WITNESS_RATE / 1000;
	if (wb->tokens > WITNESS_BURST)
		wb->tokens = WITNESS_BURST;
	wb->refilled = now;
	if (wb->tokens < 1) {
		if (now - from->last_limit_log > 1000) {
			log_warnx("%s sends witness frames to %s faster than witnessing needs; "
			          "dropped",
			          user, to_id);
			from->last_limit_log = now;
		}
		return;
	}
	wb->tokens -= 1;
	*peer = (char *)user;
	if (peer_send(b, to, f) != TERN_OK)
		log_debug("witness traffic from %s to %s dropped: %s busy", user, to_id, to_id);
	*peer = to_id;
}

void session_break(broker *b, struct peer *p, const uint8_t *rid, size_t rid_len, const char *why)
{
	if (p->broken)
		return; /* told already */
	p->broken = 1;
	send_refused(b, rid, rid_len, p->session, TERN_REASON_HELLO_REQUIRED, why);
}

/* --- frames ------------------------------------------------------------------ */

static void peer_drop(struct peer *p);

enum submit_order submit_order(struct peer *p, const Tern__V1__Submit *sm)
{
	if (sm->session != p->session)
		/* Queued on an older connection and carried over by the
		 * transport: its session was replaced by a later Hello, and the
		 * node resubmits it in its current session. */
		return SUBMIT_STALE;
	if (p->broken)
		return SUBMIT_BROKEN;
	if (sm->index != p->next_index) {
		/* A gap in the session: taking this one would break the order. */
		p->broken = 1;
		return SUBMIT_GAP;
	}
	p->next_index++;
	return SUBMIT_TAKE;
}

void session_on_frame(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                      size_t rid_len, Tern__V1__Frame *f)
{
	struct peer *p;

	if (f->body_case == TERN__V1__FRAME__BODY_HELLO) {
		on_hello(b, user, conn, rid, rid_len, f->hello);
		goto done;
	}
	if (f->body_case == TERN__V1__FRAME__BODY_BULK_HELLO) {
		on_bulk_hello(b, user, conn, rid, rid_len, f->bulk_hello);
		goto done;
	}
	p = peer_find(b, user, 0);
	if (p && p->live && p->bulk_rid_len == rid_len && memcmp(p->bulk_rid, rid, rid_len) == 0) {
		if (!bulk_frame(f->body_case)) {
			/* A lane carries chunks only: anything else would skip the
			 * main connection's order (submissions) or its checks. */
			send_refused(b, rid, rid_len, 0, TERN_REASON_UNEXPECTED_FRAME,
			             "only chunk frames travel on a bulk lane");
			log_warnx("%s sent an unexpected frame (%d) on its bulk lane", user,
			          (int)f->body_case);
			audit_refusal(b, user, tern_reason_code(TERN_REASON_UNEXPECTED_FRAME));
			goto done;
		}
	} else if (p == NULL || !p->live || p->rid_len != rid_len ||
	           memcmp(p->rid, rid, rid_len) != 0) {
		send_refused(b, rid, rid_len,
		             f->body_case == TERN__V1__FRAME__BODY_SUBMIT ? f->submit->session : 0,
		             TERN_REASON_HELLO_REQUIRED, "send Hello first");
		goto done;
	}
	/* Liveness is the main connection's: a busy lane must not hide a
	 * silent one. */
	if (p->rid_len == rid_len && memcmp(p->rid, rid, rid_len) == 0)
		p->last_rx = tern_now_ms();
	switch (f->body_case) {
	case TERN__V1__FRAME__BODY_SUBMIT:
		switch (submit_order(p, f->submit)) {
		case SUBMIT_TAKE:
			break;
		case SUBMIT_GAP:
			log_info("%s: submission %llu of its session came when %llu was "
			         "due; it will say Hello and resubmit",
			         user, (unsigned long long)f->submit->index,
			         (unsigned long long)p->next_index);
			send_refused(b, rid, rid_len, p->session, TERN_REASON_OUT_OF_SEQUENCE,
			             "submission out of sequence: say Hello and resubmit");
			/* fall through */
		case SUBMIT_STALE:
		case SUBMIT_BROKEN:
			b->m.out_of_sequence++;
			goto done;
		}
		if (rate_admit(b, p, f))
			return; /* deferred: the queue owns f now */
		if (submit_now(b, user, rid, rid_len, f) == TERN_OK)
			return; /* the batch owns f now */
		session_break(b, p, rid, rid_len,
		              "broker out of memory: say Hello again and resubmit");
		goto done;
	case TERN__V1__FRAME__BODY_DELIVER_ACK: {
		const Tern__V1__DeliverAck *a = f->deliver_ack;
		if (a->broker_epoch.len != BQ_EPOCH_LEN ||
		    memcmp(a->broker_epoch.data, b->epoch, BQ_EPOCH_LEN) != 0) {
			send_refused(b, rid, rid_len, 0, TERN_REASON_WRONG_EPOCH,
			             "acknowledgement for another store");
			break;
		}
		if (a->credit)
			p->credit = a->credit;
		/* Against what this connection was ever sent: after a timeout
		 * sent is back at acked, and the node's acknowledgement of what
		 * it did take may come while the redelivery waits. */
		if (a->upto > p->sent_hi) {
			log_warnx("%s acknowledged seq %llu, never sent; ignored", user,
			          (unsigned long long)a->upto);
			break;
		}
		if (a->upto > p->acked)
			batch_ack_add(b, user, a->upto);
		break;
	}
	case TERN__V1__FRAME__BODY_PING: {
		Tern__V1__Frame r = TERN__V1__FRAME__INIT;
		Tern__V1__Pong pong = TERN__V1__PONG__INIT;
		pong.at = f->ping->at;
		r.body_case = TERN__V1__FRAME__BODY_PONG;
		r.pong = &pong;
		peer_send(b, p, &r);
		break;
	}
	case TERN__V1__FRAME__BODY_PONG:
		break;
	case TERN__V1__FRAME__BODY_BYE:
		/* From the route's own connection (checked above): an older
		 * connection's Bye cannot drop a newer one. */
		log_info("%s stopped: route dropped", user);
		peer_drop(p);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_PUT:
		chunk_on_put(b, p, f->chunk_put);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_GET:
		chunk_on_get(b, p, f->chunk_get);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_DONE:
		chunk_on_done(b, p, f->chunk_done);
		break;
	case TERN__V1__FRAME__BODY_WITNESS_REQUEST:
	case TERN__V1__FRAME__BODY_WITNESS_RESPONSE:
		relay_witness(b, p, rid, rid_len, f);
		break;
	default:
		send_refused(b, rid, rid_len, 0, TERN_REASON_UNEXPECTED_FRAME,
		             "frame not valid from a node");
		log_warnx("%s sent an unexpected frame (%d)", user, (int)f->body_case);
		break;
	}
done:
	tern_pb_free((ProtobufCMessage **)&f);
}

void frame_undecodable(broker *b, const char *user, const uint8_t *rid, size_t rid_len, int rc)
{
	struct peer *p;

	if (rc == TERN_ENOMEM) {
		/* The broker's shortage, not the node's fault: the frame may have
		 * been a submission, which would wait unanswered (answered with a
		 * refusal of no session, the node only logs it). Its session is
		 * broken instead, on its main connection: the node says Hello and
		 * sends again all it has unanswered, in order. */
		log_warnx("out of memory decoding a frame from %s; it is asked to say Hello again",
		          user);
		if ((p = peer_find(b, user, 0)) != NULL && p->live)
			session_break(b, p, p->rid, p->rid_len,
			              "broker out of memory: say Hello again and resubmit");
		return;
	}
	log_warnx("undecodable frame from %s: %s", user, tern_errdetail());
	send_refused_code(b, rid, rid_len, 0, tern_errcode_name(rc), "frame does not decode");
	audit_refusal(b, user, tern_errcode_name(rc));
}

int on_router(broker *b)
{
	zmq_msg_t rid, body;
	Tern__V1__Frame *f = NULL;
	struct peer conn = {.fd = -1};
	const char *user, *why;
	int rc, got = 0;

	zmq_msg_init(&rid);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&rid, b->router, ZMQ_DONTWAIT) < 0)
		goto out;
	got = 1;
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
		send_refused(b, zmq_msg_data(&rid), zmq_msg_size(&rid), 0,
		             TERN_REASON_TOO_MANY_FRAMES, "one frame per message");
		if (user && tern_node_id_valid(user))
			audit_refusal(b, user, tern_reason_code(TERN_REASON_TOO_MANY_FRAMES));
		goto out;
	}
	user = zmq_msg_gets(&body, "User-Id");
	if (user == NULL || !tern_node_id_valid(user) || zmq_msg_size(&rid) > MAX_RID) {
		log_warnx("message without an authenticated identity dropped");
		goto out;
	}
	/* Not a system call; the connection's ends (two) are looked up only where
	 * they are recorded, not for every frame. */
	conn.fd = zmq_msg_get(&body, ZMQ_SRCFD);
	if ((why = peer_barred(b, user, tern_now_ms())) != NULL) {
		/* Admitted at its handshake, no longer now (revoked, removed or
		 * lapsed since): nothing it sends is taken, and its connection goes. */
		struct peer *p = peer_find(b, user, 0);
		int64_t now = tern_now_ms();
		b->m.barred++;
		if (p)
			session_close(b, p, why);
		snprintf(conn.id, sizeof(conn.id), "%s", user);
		conn.fd = conn_ends(conn.fd, &conn.local, &conn.remote);
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
			send_refused(b, zmq_msg_data(&rid), zmq_msg_size(&rid), 0,
			             TERN_REASON_NOT_ADMITTED, text);
		}
		audit_refusal(b, user, strcmp(why, "broker") == 0 ? "broker-key" : why);
		goto out;
	}
	rc = tern_hop_decode(zmq_msg_data(&body), zmq_msg_size(&body), (size_t)b->frame_max, &f);
	if (rc != TERN_OK) {
		frame_undecodable(b, user, zmq_msg_data(&rid), zmq_msg_size(&rid), rc);
		goto out;
	}
	session_on_frame(b, user, &conn, zmq_msg_data(&rid), zmq_msg_size(&rid), f);
out:
	zmq_msg_close(&body);
	zmq_msg_close(&rid);
	return got;
}

/* --- heartbeats -------------------------------------------------------------- */

/* p's route goes: what it was sent and did not acknowledge is sent again
 * to its next connection. */
static void peer_drop(struct peer *p)
{
	p->live = 0;
	/* Not counted yet: a node hung on what it was sent is seen as such
	 * when a new process of it says Hello. */
	if (p->sent > p->acked)
		p->lost_hi = p->sent;
	p->sent = p->sent_hi = p->acked;
	p->bulk_rid_len = 0;
	chunk_gets_drop(p);
}

/* A silent peer loses its route; a quiet link gets a Ping. */
void session_heartbeats(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];
		if (!p->live)
			continue;
		if (now - p->last_rx > b->hb_timeout_ms) {
			log_info("%s silent for %lld ms: route dropped", p->id,
			         (long long)(now - p->last_rx));
			peer_drop(p);
			continue;
		}
		if (now - p->last_tx > b->hb_ivl_ms) {
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__Ping ping = TERN__V1__PING__INIT;
			ping.at = now;
			f.body_case = TERN__V1__FRAME__BODY_PING;
			f.ping = &ping;
			peer_send(b, p, &f);
		}
	}
}

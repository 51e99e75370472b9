/* Deliveries: what is queued for a peer goes out in sequence order while its
 * credit allows; what is not acknowledged in time goes again with back-off,
 * and is dead-lettered after [delivery] max_attempts; a node found holding
 * less than it acknowledged (a store put back) gets the retained items again.
 * Acknowledgements themselves are written by the batch (batch.c).
 *
 * Touches: the peers' delivery state (credit, sent, acked, attempts, wait),
 * b->batch (dead letters, latency figures), the store (reads; rewinds). */
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include <tern/error.h>
#include <tern/log.h>

#include "broker_int.h"
#include "pbuf.h"
#include "util.h"

struct pump {
	broker *b;
	struct peer *p;
	uint32_t inflight;
	int blocked;
	/* The entry whose failed deliveries are counted (p->attempts_seq) was
	 * reached: it goes alone, so that each count is its own. Unless the
	 * node's acknowledgement, not committed yet, passed it. */
	int solo;
	uint32_t open; /* of inflight: those above that acknowledgement */
	/* Delivers gathered for one DeliverBatch frame (a node that takes
	 * them), not yet sent: their payloads point into the pump's read txn. */
	Tern__V1__Deliver ds[BROKER_DELIVER_BATCH_MAX];
	Tern__V1__Deliver *dp[BROKER_DELIVER_BATCH_MAX];
	ProtobufCMessage *notices[BROKER_DELIVER_BATCH_MAX];
	size_t n, bytes;
};

/* Sends what was gathered: one Deliver frame, or one DeliverBatch. p->sent
 * moves only once the frame is taken, so a refused send (a full socket, a
 * peer gone) sends the same items again later, in order. */
static int pump_flush(struct pump *pp)
{
	struct peer *p = pp->p;
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__DeliverBatch db = TERN__V1__DELIVER_BATCH__INIT;
	int rc = TERN_OK;

	if (pp->n == 0)
		return TERN_OK;
	if (p->deliver_batch > 1) {
		db.n_items = pp->n;
		db.items = pp->dp;
		f.body_case = TERN__V1__FRAME__BODY_DELIVER_BATCH;
		f.deliver_batch = &db;
	} else {
		f.body_case = TERN__V1__FRAME__BODY_DELIVER;
		f.deliver = pp->dp[0];
	}
	if (peer_send(pp->b, p, &f) != TERN_OK) {
		pp->blocked = 1; /* EAGAIN or gone: keep order, try later */
		rc = TERN_EIO;
	} else {
		if (pp->inflight == 0)
			p->progress = tern_now_ms();
		p->sent = pp->ds[pp->n - 1].seq;
		if (p->sent > p->sent_hi)
			p->sent_hi = p->sent;
		pp->inflight += (uint32_t)pp->n;
	}
	for (size_t i = 0; i < pp->n; i++)
		tern_pb_free(&pp->notices[i]);
	pp->n = pp->bytes = 0;
	return rc;
}

static int pump_visit(uint64_t seq, const bq_item *it, void *arg)
{
	struct pump *pp = arg;
	struct peer *p = pp->p;
	size_t most = p->deliver_batch > 1 ? p->deliver_batch : 1;
	Tern__V1__Deliver *d;

	if (it->kind == BQ_STUB)
		return 0; /* nothing to send: what a restored node lost (bq_rewind) */
	/* An entry with a failed delivery counted goes alone (once everything
	 * before it is acknowledged, and nothing after it) until it is taken or
	 * dead-lettered, or a Hello of the same process starts its count
	 * afresh. The node commits a turn's
	 * deliveries together: sent with the ones behind it, a message the node
	 * dies on would have the head counted, and the messages before it
	 * dead-lettered one by one. Keyed to the entry, not to the first one
	 * scanned: after a Hello's resync, acknowledged ones may still come
	 * first. Gone (expired), it no longer holds anything back. */
	if (pp->solo)
		return 1;
	if (p->attempts > 0 && seq == p->attempts_seq && batch_ack_pending(pp->b, p->id) < seq) {
		/* Alone in the node's commit too: only once what comes before
		 * it is acknowledged. */
		if (seq > p->sent && (pp->n > 0 || pp->open > 0))
			return 1;
		pp->solo = 1;
	}
	if (seq <= p->sent) {
		pp->inflight++;
		/* Only a counted entry needs it: no look-up on the common path. */
		if (p->attempts > 0 && seq > batch_ack_pending(pp->b, p->id))
			pp->open++;
		return 0;
	}
	if (pp->inflight + pp->n >= p->credit)
		return 1;
	if (pp->n > 0 && pp->bytes + it->len > BROKER_DELIVER_BATCH_BYTES &&
	    pump_flush(pp) != TERN_OK)
		return 1;
	d = &pp->ds[pp->n];
	tern__v1__deliver__init(d);
	pp->notices[pp->n] = NULL;
	d->broker_epoch.data = pp->b->epoch;
	d->broker_epoch.len = BQ_EPOCH_LEN;
	d->seq = seq;
	if (it->kind == BQ_NOTICE) {
		int rc = tern_pb_unpack(&tern__v1__notice__descriptor, it->payload, it->len,
		                        it->len, &pp->notices[pp->n]);
		/* Out of memory is not damage: stop here (what is gathered goes) and
		 * try this one again next turn. Skipped, it would be lost: the
		 * node acknowledges past it with the next item's seq. */
		if (rc == TERN_ENOMEM) {
			pp->blocked = 1;
			return 1;
		}
		if (rc != TERN_OK) {
			/* Damaged notice: skipped, the node will ack past it (so
			 * what comes next must go, counted or not). */
			pp->solo = 0;
			return 0;
		}
		d->item_case = TERN__V1__DELIVER__ITEM_NOTICE;
		d->notice = (Tern__V1__Notice *)pp->notices[pp->n];
	} else {
		d->item_case = TERN__V1__DELIVER__ITEM_ENVELOPE;
		d->envelope.data = (uint8_t *)it->payload;
		d->envelope.len = it->len;
	}
	pp->dp[pp->n++] = d;
	pp->bytes += it->len;
	return pp->n >= most && pump_flush(pp) != TERN_OK;
}

void deliver_pump(broker *b, struct peer *p)
{
	/* On the stack (some 5 KB; only the loop's thread pumps): a pump runs
	 * for every peer with news, every turn, and need not cost an allocation.
	 * Only the counters are set: pump_visit fills an entry of the arrays
	 * before pp.n counts it, so zeroing them all would buy nothing. */
	struct pump pp;
	MDB_txn *txn;
	int rc;

	if (!p->live || p->credit == 0)
		return;
	pp.b = b;
	pp.p = p;
	pp.inflight = 0;
	pp.blocked = 0;
	pp.solo = 0;
	pp.open = 0;
	pp.n = pp.bytes = 0;
	if (tern_store_read_begin(b->store, &txn) != TERN_OK)
		return;
	if ((rc = bq_scan(txn, b->store, p->id, p->acked + 1, pump_visit, &pp)) != TERN_OK) {
		/* Cut short (no memory for its cursor, a failed read): what it
		 * gathered goes, the rest on a later turn. Not dirty, the queue
		 * would wait for news that may never come: nothing in flight, no
		 * acknowledgement due. A turn is at least a poll apart, so a
		 * lasting fault costs a scan a turn, said once a minute. */
		pp.blocked = 1;
		if (pp.b->batch.now - p->scan_warned >= 60000) {
			p->scan_warned = pp.b->batch.now;
			log_warnx("cannot read %s's queue: %s (%s); trying again", p->id,
			          tern_strerror(rc), tern_errdetail());
		}
	}
	(void)pump_flush(&pp); /* before the txn its payloads point into ends */
	mdb_txn_abort(txn);
	p->dirty = pp.blocked;
}

void deliver_latency(const bq_item *it, void *arg)
{
	struct batch *bt = arg;
	double s = (double)(bt->now - it->enqueued_at) / 1000;
	size_t i = 0;

	if (it->kind != BQ_ENVELOPE)
		return;
	while (i < LAT_BUCKETS && s > broker_lat_le[i])
		i++;
	bt->lat[i]++;
	bt->lat_sum += s > 0 ? s : 0;
}

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
void node_restored(broker *b, struct peer *p, uint64_t to, int exact)
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
	p->acked = p->sent = p->sent_hi = to;
	/* What it lost is sent again: each head a new count. */
	p->lost_hi = 0;
	p->attempts = 0;
	p->attempts_seq = 0;
	/* Acknowledgements and dead letters of its old connection, still in
	 * this batch, must not undo the rewind. */
	for (size_t i = 0; i < b->batch.nacks; i++)
		if (strcmp(b->batch.acks[i].node, p->id) == 0)
			b->batch.acks[i].upto = 0;
	for (size_t i = 0; i < b->batch.ndead; i++)
		if (strcmp(b->batch.dead[i].node, p->id) == 0)
			b->batch.dead[i].seq = 0;
}

/* One delivery of head, p's first entry, ended without its acknowledgement.
 * The count is the entry's: a new head (the old one acknowledged, expired or
 * dead-lettered, or a rewind) starts its own. At max_attempts the batch
 * dead-letters head, if it is still the head then (dead_target). */
void deliver_count(broker *b, struct peer *p, uint64_t head)
{
	size_t i;

	p->lost_hi = 0;
	if (head != p->attempts_seq) {
		p->attempts_seq = head;
		p->attempts = 0;
	}
	if (++p->attempts < b->max_attempts)
		return;
	/* One dead letter per node and batch: a second count in the same turn
	 * (a timeout, then a Hello) names the same head or a later one. */
	for (i = 0; i < b->batch.ndead; i++)
		if (strcmp(b->batch.dead[i].node, p->id) == 0)
			break;
	if (i == MAX_PEERS)
		return;
	snprintf(b->batch.dead[i].node, sizeof(b->batch.dead[i].node), "%s", p->id);
	b->batch.dead[i].seq = head;
	if (i == b->batch.ndead)
		b->batch.ndead++;
}

/* What was sent and not acknowledged within the peer's wait goes again,
 * from the first unacknowledged item; the wait doubles up to max_backoff. */
void deliver_redeliveries(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];
		MDB_txn *txn;
		uint64_t head = 0, base;

		if (!p->live)
			continue;
		if (p->sent <= p->acked || now - p->progress <= p->wait)
			continue;
		/* An acknowledgement not committed yet (kept while commits fail)
		 * says what the node holds as well as a committed one. */
		base = batch_ack_pending(b, p->id);
		if (base < p->acked)
			base = p->acked;
		if (p->sent > base) {
			/* The head is counted only if it went out since the last
			 * count: entries before it may have expired since they were
			 * sent, and one never sent has had no attempt. */
			if (tern_store_read_begin(b->store, &txn) == TERN_OK) {
				(void)bq_head(txn, b->store, p->id, base + 1, &head);
				mdb_txn_abort(txn);
			}
			if (head != 0 && head <= p->sent)
				deliver_count(b, p, head);
			log_info(
			    "no acknowledgement from %s for %lld ms: redelivering from seq %llu "
			    "(attempt %d of seq %llu)",
			    p->id, (long long)p->wait, (unsigned long long)p->acked + 1,
			    p->attempts, (unsigned long long)p->attempts_seq);
			p->sent = p->acked;
			p->progress = now;
			p->wait = p->wait * 2 > b->max_backoff_ms ? b->max_backoff_ms : p->wait * 2;
			p->dirty = 1;
		}
	}
}

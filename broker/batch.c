/* The batch: everything one round of the loop writes, in one transaction
 * (group commit): acknowledgements, dead letters, submissions (route.c
 * decides each), the expiry sweep, the purge past retention and the audit
 * checkpoint. Nothing is answered or counted until the commit returns.
 *
 * Touches: b->batch, the store, the peers' delivery marks after a commit,
 * b->m counters; sends the SubmitResults on b->router. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>

#include "broker_int.h"
#include "hop.h"
#include "pbuf.h"
#include "util.h"

static int batch_subs_write(MDB_txn *txn, broker *b)
{
	struct batch *bt = &b->batch;
	int rc;

	for (size_t i = 0; i < bt->nsubs; i++)
		if ((rc = route_write(txn, b->store, &bt->subs[i], bt->now)) != TERN_OK)
			return rc;
	return TERN_OK;
}

/* The entry a max_attempts dead letter d is for, in *seq; 0: none. */
static int dead_target(MDB_txn *txn, tern_store *st, const struct dead *d, uint64_t *seq)
{
	uint64_t acked, head;
	int rc;

	*seq = 0;
	if (d->seq == 0)
		return TERN_OK;
	/* The node got past it since (an acknowledgement in this batch,
	 * applied before): it is not stuck, nothing is dead-lettered. */
	if ((rc = bq_acked(txn, st, d->node, &acked)) != TERN_OK || acked >= d->seq)
		return rc;
	/* The attempts were counted for d->seq as the head of the queue. If it
	 * is no longer the head (it expired, or a rewind put older entries
	 * before it), they say nothing of what blocks the queue now: the head
	 * there has its own count. */
	if ((rc = bq_head(txn, st, d->node, acked + 1, &head)) != TERN_OK)
		return rc;
	if (head == d->seq)
		*seq = head;
	return TERN_OK;
}

static int batch_apply(MDB_txn *txn, void *arg)
{
	broker *b = arg;
	struct batch *bt = &b->batch;
	int rc, dead = 0;

	/* A transaction may run again (map growth): count this attempt only. */
	memset(bt->lat, 0, sizeof(bt->lat));
	bt->lat_sum = 0;
	for (size_t i = 0; i < bt->ndead; i++)
		dead |= bt->dead[i].seq != 0;
	/* Without dead letters, the submissions go before the acknowledgements:
	 * an acknowledgement that empties the expiry index (one message in
	 * flight) would make LMDB free its root and a submission make a new
	 * one, two pages written where one does. The order changes nothing
	 * else: an acknowledged seq was delivered, so committed, and is below
	 * every seq this write appends; the two touch different keys (queue,
	 * expiry, meta) and only submissions write the audit log. With dead
	 * letters the order stays acknowledgements, dead letters, submissions:
	 * a dead letter skips what was just acknowledged, and its notice and
	 * audit entry come before the submissions' queue places and entries. */
	if (!dead && (rc = batch_subs_write(txn, b)) != TERN_OK)
		return rc;
	bt->acked_items = 0;
	for (size_t i = 0; i < bt->nacks; i++) {
		size_t n = 0;
		if (bt->acks[i].upto &&
		    (rc = bq_ack(txn, b->store, bt->acks[i].node, bt->acks[i].upto,
		                 b->retain_ms > 0, bt->now, deliver_latency, bt, &n)) != TERN_OK)
			return rc;
		bt->acked_items += n;
	}
	for (size_t i = 0; i < bt->ndead; i++) {
		uint64_t seq;
		bt->dead_done[i] = 0;
		if ((rc = dead_target(txn, b->store, &bt->dead[i], &seq)) != TERN_OK)
			return rc;
		if (seq == 0)
			continue;
		bt->dead[i].seq = seq; /* the same again if the write runs twice */
		rc = bq_dead_letter(txn, b->store, bt->dead[i].node, seq,
		                    TERN__V1__NOTICE__KIND__DEAD_LETTERED,
		                    tern_reason_code(TERN_REASON_MAX_ATTEMPTS), bt->now);
		if (rc != TERN_OK && rc != TERN_ENOENT)
			return rc;
		bt->dead_done[i] = rc == TERN_OK;
	}
	if (dead && (rc = batch_subs_write(txn, b)) != TERN_OK)
		return rc;
	bt->expired = bt->expire_damaged = 0;
	if (bt->sweep && (rc = bq_expire(txn, b->store, bt->now, &bt->expired, &bt->expire_damaged,
	                                 NULL, NULL)) != TERN_OK)
		return rc;
	/* Transfers end after the queue items they follow: an envelope expired
	 * or dead-lettered in this write counts already. Every purge tick too,
	 * since an acknowledged envelope leaves no expiry to wake the sweep. */
	bt->nxgone = 0;
	if (bt->sweep || bt->purge) {
		size_t n = 0;
		if ((rc = xfer_sweep(txn, b->store, bt->now, b->retain_ms, XFER_SWEEP_MAX,
		                     chunk_gone, bt, &n)) != TERN_OK)
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

void batch_reset(broker *b)
{
	struct batch *bt = &b->batch;

	for (size_t i = 0; i < bt->nsubs; i++)
		route_sub_free(&bt->subs[i]);
	bt->nsubs = bt->nacks = bt->ndead = 0;
	bt->sweep = 0;
	bt->purge = 0;
	bt->nxgone = 0; /* not committed, or removed already: no files to touch */
	bt->checkpoint = 0;
}

void batch_ack_add(broker *b, const char *node, uint64_t upto)
{
	struct batch *bt = &b->batch;
	size_t i = 0;

	/* One entry a node: acknowledgements are cumulative, and a node sending
	 * thousands must not take the room of the others'. */
	while (i < bt->nacks && strcmp(bt->acks[i].node, node) != 0)
		i++;
	if (i == bt->nacks) {
		if (bt->nacks == sizeof(bt->acks) / sizeof(bt->acks[0]))
			return; /* cannot be: a node has one entry, and there are fewer */
		if (bt->nacks == 0)
			bt->acks_since = tern_now_ms();
		snprintf(bt->acks[i].node, sizeof(bt->acks[i].node), "%s", node);
		bt->acks[i].upto = 0;
		bt->nacks++;
	}
	if (upto > bt->acks[i].upto)
		bt->acks[i].upto = upto;
}

uint64_t batch_ack_pending(const broker *b, const char *node)
{
	for (size_t i = 0; i < b->batch.nacks; i++)
		if (strcmp(b->batch.acks[i].node, node) == 0)
			return b->batch.acks[i].upto;
	return 0;
}

int batch_due(const broker *b, int64_t now, int *wait_ms)
{
	const struct batch *bt = &b->batch;
	int64_t left;

	if (bt->nsubs || bt->ndead || bt->sweep || bt->checkpoint || bt->purge)
		return 1;
	if (bt->nacks == 0)
		return 0;
	/* Half full: commit rather than risk refusing acknowledgements (there
	 * is room for every node's when commits fail: one entry a node). A wait
	 * longer than the longest back-off is a clock set back. */
	left = bt->acks_since + BATCH_ACK_DEFER_MS - now;
	if (left <= 0 || left > (1000 << 5) + BATCH_ACK_DEFER_MS ||
	    (bt->nacks >= MAX_PEERS && bt->failures == 0))
		return 1;
	if (*wait_ms > left)
		*wait_ms = (int)left;
	return 0;
}

/* The commit's answers, in submission order: to a connection whose node
 * takes SubmitResults frames, one frame for all of its answers (up to what it
 * takes), in their order; else one SubmitResult frame each. Without memory
 * to group them, each goes in a frame of its own, which every node takes. */
static void send_results(broker *b)
{
	struct batch *bt = &b->batch;
	Tern__V1__SubmitResult *results, **group;
	uint8_t *done;
	int grouping;

	if (bt->nsubs == 0)
		return;
	results = calloc(bt->nsubs, sizeof(*results));
	group = calloc(bt->nsubs, sizeof(*group));
	done = calloc(bt->nsubs, 1);
	grouping = results != NULL && group != NULL && done != NULL;
	for (size_t i = 0; grouping && i < bt->nsubs; i++) {
		tern__v1__submit_result__init(&results[i]);
		route_result(&bt->subs[i], &results[i]);
	}
	for (size_t i = 0; i < bt->nsubs; i++) {
		struct sub *s = &bt->subs[i];
		const struct peer *p = peer_find(b, s->peer, 0);
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__SubmitResults rs = TERN__V1__SUBMIT_RESULTS__INIT;
		Tern__V1__SubmitResult one = TERN__V1__SUBMIT_RESULT__INIT;
		size_t n = 0;

		if (grouping && done[i])
			continue;
		/* Only to the connection that said Hello with result_batch: an
		 * older one of the node's is gone, and gets what it always got. */
		if (!grouping || p == NULL || p->result_batch < 2 || p->rid_len != s->rid_len ||
		    memcmp(p->rid, s->rid, s->rid_len) != 0) {
			route_result(s, &one);
			f.body_case = TERN__V1__FRAME__BODY_RESULT;
			f.result = &one;
			tern_hop_send(b->router, s->rid, s->rid_len, &f, ZMQ_DONTWAIT);
			continue;
		}
		for (size_t j = i; j < bt->nsubs && n < p->result_batch; j++) {
			if (done[j] || bt->subs[j].rid_len != s->rid_len ||
			    memcmp(bt->subs[j].rid, s->rid, s->rid_len) != 0)
				continue;
			group[n++] = &results[j];
			done[j] = 1;
		}
		rs.n_items = n;
		rs.items = group;
		f.body_case = TERN__V1__FRAME__BODY_RESULTS;
		f.results = &rs;
		tern_hop_send(b->router, s->rid, s->rid_len, &f, ZMQ_DONTWAIT);
	}
	free(results);
	free(group);
	free(done);
}

void batch_commit(broker *b)
{
	struct batch *bt = &b->batch;
	size_t nacks;
	int rc, notices = 0;

	if (bt->nsubs == 0 && bt->nacks == 0 && bt->ndead == 0 && !bt->sweep && !bt->checkpoint &&
	    !bt->purge)
		return;
	bt->purged = 0;
	if (bt->nsubs || bt->ndead || bt->sweep)
		b->last_audit = bt->now;
	rc = tern_store_write(b->store, batch_apply, b);
	if (rc != TERN_OK) {
		/* Nothing of this batch is acknowledged: nodes resubmit and re-ack.
		 * A sender's later submissions must not overtake the ones dropped
		 * here, so its session is broken: it says Hello and resubmits. */
		log_warnx("commit failed, %zu submissions not acknowledged: %s (%s)", bt->nsubs,
		          tern_strerror(rc), tern_errdetail());
		for (size_t i = 0; i < bt->nsubs; i++) {
			struct sub *s = &bt->subs[i];
			struct peer *p = peer_find(b, s->peer, 0);
			if (p && p->live && p->rid_len == s->rid_len &&
			    memcmp(p->rid, s->rid, s->rid_len) == 0)
				session_break(
				    b, p, s->rid, s->rid_len,
				    "broker could not commit: say Hello again and resubmit");
		}
		/* The acknowledgements stay for the next commit: they say what the
		 * nodes hold, and dropped, the heads they passed would be counted
		 * as undelivered, then dead-lettered though delivered. */
		nacks = bt->nacks;
		batch_reset(b);
		bt->nacks = nacks;
		if (bt->failures < 5)
			bt->failures++;
		bt->acks_since = tern_now_ms() + (1000 << bt->failures) - BATCH_ACK_DEFER_MS;
		return;
	}
	bt->failures = 0;
	if (bt->nsubs) {
		int k = 0;
		while (k < 10 && ((size_t)1 << k) < bt->nsubs)
			k++;
		b->m.batch[((size_t)1 << k) >= bt->nsubs ? k : 10]++;
		b->m.batch_sum += bt->nsubs;
	}
	for (size_t i = 0; i < bt->ndead; i++)
		b->m.dead += (uint64_t)bt->dead_done[i];
	b->m.expired_dead += bt->expired;
	if (bt->expire_damaged)
		log_warnx("%zu queue item(s) past their time-to-live do not decode (the store is "
		          "damaged): left where they are, passed over by delivery; see docs/"
		          "operations.md, \"A damaged store\"",
		          bt->expire_damaged);
	b->m.purged += bt->purged;
	chunk_gone_apply(b);
	if (bt->purge && bt->purged == 2000)
		b->next_purge = 0; /* more past retention: go on next round */
	for (size_t i = 0; i <= LAT_BUCKETS; i++)
		b->m.lat[i] += bt->lat[i];
	b->m.lat_sum += bt->lat_sum;
	/* Items, not the seqs the marks moved by: seqs may skip (a sequence
	 * counter recovered past a gap, stubs). */
	b->m.acked += bt->acked_items;
	for (size_t i = 0; i < bt->nacks; i++) {
		struct peer *p = peer_find(b, bt->acks[i].node, 0);
		if (p && bt->acks[i].upto > p->acked) {
			p->acked = bt->acks[i].upto;
			if (p->sent < p->acked)
				p->sent = p->acked;
			if (p->sent_hi < p->acked)
				p->sent_hi = p->acked;
			p->progress = bt->now;
			/* Only once the head they were counted for is passed: the
			 * acknowledgement a restarted node's Hello implies (what its
			 * store holds) stops short of the head it died on. */
			if (p->acked >= p->attempts_seq)
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
		if (p && bt->dead_done[i]) {
			p->attempts = 0;
			p->dirty = 1;
		}
		notices |= bt->dead_done[i];
	}
	for (size_t i = 0; i < bt->nsubs; i++) {
		struct sub *s = &bt->subs[i];
		int t = s->env ? (int)tern_envelope_header(s->env)->type : 0;

		b->m.subs[tern_msgtype_index(t)][s->accepted ? 0 : 1]++;
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
	}
	send_results(b);
	/* A dead letter queued a notice for its sender: without this the
	 * notice waited until something else woke that sender's queue. */
	if (bt->sweep || notices)
		for (size_t i = 0; i < b->npeers; i++)
			b->peers[i].dirty = 1;
	batch_reset(b);
}

/* Checkpoint, purge and sweep are decided here and done in the next write. */
void batch_timers(broker *b, int64_t now)
{
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

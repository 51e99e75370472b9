/* The broker's queues: order per recipient, sequences never reused,
 * acknowledgement deletes, de-duplication answers, dead letters with their
 * reason and a notice for the sender, expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/v1/wire.pb-c.h>

#include "queue.h"
#include "testutil.h"

static char dir[128];
static tern_store *st;
static uint8_t epoch[BQ_EPOCH_LEN];

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "bq") != 0)
		return -1;
	return bq_open(dir, &st, epoch) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

struct appends {
	const char *rcpt;
	int n;
	int64_t expires;
	uint64_t last;
};

static int do_append(MDB_txn *txn, void *arg)
{
	struct appends *a = arg;
	char id[40], payload[16];

	for (int i = 0; i < a->n; i++) {
		bq_item it = {.kind = BQ_ENVELOPE, .expires_at = a->expires, .enqueued_at = 1};
		snprintf(id, sizeof(id), "01a20598-0000-7000-8000-%012d", i);
		snprintf(payload, sizeof(payload), "env-%d", i);
		snprintf(it.sender, sizeof(it.sender), "unhcr");
		memcpy(it.msgid, id, 37);
		it.payload = (const uint8_t *)payload;
		it.len = strlen(payload);
		int rc = bq_append(txn, st, a->rcpt, &it, &a->last);
		if (rc != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static void append(const char *rcpt, int n, int64_t expires, uint64_t *last)
{
	struct appends a = {rcpt, n, expires, 0};
	assert_int_equal(tern_store_write(st, do_append, &a), TERN_OK);
	if (last)
		*last = a.last;
}

struct upto {
	const char *rcpt;
	uint64_t upto;
};

static int do_delete(MDB_txn *txn, void *arg)
{
	struct upto *u = arg;
	return bq_ack(txn, st, u->rcpt, u->upto, 0, 1000, NULL, NULL, NULL);
}

/* Acknowledged, kept for retention; the ack log says it happened at u->at. */
struct keep {
	const char *rcpt;
	uint64_t upto;
	int64_t at;
	size_t n;
};

static int do_ack_keep(MDB_txn *txn, void *arg)
{
	struct keep *k = arg;
	return bq_ack(txn, st, k->rcpt, k->upto, 1, k->at, NULL, NULL, &k->n);
}

struct rewind {
	const char *rcpt;
	uint64_t to, first;
	uint64_t lost[8];
	int nlost;
};

static void lost_seq(uint64_t seq, const bq_item *stub, void *arg)
{
	struct rewind *r = arg;
	assert_int_equal(stub->kind, BQ_STUB);
	assert_int_equal(strlen(stub->msgid), 36);
	if (r->nlost < 8)
		r->lost[r->nlost++] = seq;
}

static int do_rewind(MDB_txn *txn, void *arg)
{
	struct rewind *r = arg;
	r->nlost = 0;
	return bq_rewind(txn, st, r->rcpt, r->to, &r->first, lost_seq, r);
}

struct purge {
	int64_t before, ids_before, now;
	size_t max, n;
};

static int do_purge(MDB_txn *txn, void *arg)
{
	struct purge *p = arg;
	return bq_purge(txn, st, p->before, p->ids_before ? p->ids_before : p->before, p->now,
	                p->max, &p->n);
}

static int do_accept(MDB_txn *txn, void *arg)
{
	return bq_accept_next(txn, st, "unhcr", "01a20598-0000-7000-8000-0000000000ff", arg);
}

struct dl {
	const char *rcpt;
	uint64_t seq;
};

static int do_dead_letter(MDB_txn *txn, void *arg)
{
	struct dl *d = arg;
	return bq_dead_letter(txn, st, d->rcpt, d->seq, TERN__V1__NOTICE__KIND__DEAD_LETTERED,
	                      "max-attempts", 9000);
}

struct seen {
	uint64_t seqs[64];
	char payloads[64][16];
	int n;
};

static int visit(uint64_t seq, const bq_item *it, void *arg)
{
	struct seen *s = arg;
	s->seqs[s->n] = seq;
	snprintf(s->payloads[s->n], 16, "%.*s", (int)it->len, (const char *)it->payload);
	s->n++;
	return 0;
}

static struct seen scan(const char *rcpt)
{
	struct seen s = {0};
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_scan(txn, st, rcpt, 1, visit, &s), TERN_OK);
	mdb_txn_abort(txn);
	return s;
}

static void test_order_and_sequences(void **state)
{
	struct seen s;
	struct upto u = {"sweden", 3};
	uint64_t last;
	uint8_t again[BQ_EPOCH_LEN];

	(void)state;
	append("sweden", 5, INT64_MAX - 1, &last);
	append("iom", 2, INT64_MAX - 1, NULL);
	assert_true(last == 5);
	s = scan("sweden");
	assert_int_equal(s.n, 5);
	for (int i = 0; i < 5; i++) {
		char want[16];
		snprintf(want, sizeof(want), "env-%d", i);
		assert_true(s.seqs[i] == (uint64_t)i + 1);
		assert_string_equal(s.payloads[i], want);
	}
	assert_int_equal(scan("iom").n, 2); /* queues do not mix */

	assert_int_equal(tern_store_write(st, do_delete, &u), TERN_OK);
	s = scan("sweden");
	assert_int_equal(s.n, 2);
	assert_true(s.seqs[0] == 4);
	u.upto = 5;
	assert_int_equal(tern_store_write(st, do_delete, &u), TERN_OK);
	assert_int_equal(scan("sweden").n, 0);

	/* An emptied queue, even across a reopen, never reuses a sequence: a
	 * node's "delivered up to 5" must not swallow a new message. */
	tern_store_close(&st);
	assert_int_equal(bq_open(dir, &st, again), TERN_OK);
	assert_memory_equal(again, epoch, BQ_EPOCH_LEN);
	append("sweden", 1, INT64_MAX - 1, &last);
	assert_true(last == 6);
}

struct dd {
	const char *id;
	const char *sender;
	uint64_t n;
	const uint8_t *raw; /* a record as an older store wrote it, instead */
	size_t rawlen;
};

static int do_dedup_put(MDB_txn *txn, void *arg)
{
	struct dd *d = arg;
	MDB_val k = {strlen(d->id), (void *)d->id}, v = {d->rawlen, (void *)d->raw};

	if (d->raw)
		return mdb_put(txn, tern_store_dbi(st, BQ_DEDUP), &k, &v, 0) ? TERN_EIO : TERN_OK;
	return bq_dedup_put(txn, st, d->id, d->sender, d->n, 5);
}

static size_t depth_of(const char *rcpt, uint64_t *acked)
{
	MDB_txn *txn;
	size_t n = 0;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_depth(txn, st, rcpt, &n, NULL), TERN_OK);
	if (acked)
		assert_int_equal(bq_acked(txn, st, rcpt, acked), TERN_OK);
	mdb_txn_abort(txn);
	return n;
}

/* Acknowledged items are kept for retention, out of every count of what is
 * queued; a rewind queues them again; the purge removes them only once their
 * mark is older than the retention, and never what a rewind queued again. */
static void test_retention_and_rewind(void **state)
{
	struct keep k1 = {"portugal", 3, 1000, 0}, k2 = {"portugal", 5, 5000, 0};
	struct rewind r = {.rcpt = "portugal", .to = 1};
	struct purge p = {.before = 2000, .now = 2000, .max = 100};
	uint64_t acked, last;

	(void)state;
	append("portugal", 6, INT64_MAX - 1, &last);
	assert_true(last == 6);
	assert_int_equal(tern_store_write(st, do_ack_keep, &k1), TERN_OK);
	assert_int_equal(k1.n, 3);
	assert_int_equal(depth_of("portugal", &acked), 3);
	assert_true(acked == 3);
	assert_int_equal(scan("portugal").n, 6); /* still held, for a restored node */
	{
		MDB_txn *txn;
		bq_dest *d = NULL;
		size_t nd = 0, i;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		assert_int_equal(bq_stats(txn, st, &d, &nd), TERN_OK);
		mdb_txn_abort(txn);
		for (i = 0; i < nd && strcmp(d[i].id, "portugal") != 0; i++)
			;
		assert_true(i < nd);
		assert_int_equal(d[i].depth, 3);
		assert_int_equal(d[i].retained, 3); /* not counted as queued */
		free(d);
	}
	assert_int_equal(tern_store_write(st, do_ack_keep, &k2), TERN_OK);
	assert_int_equal(depth_of("portugal", &acked), 1);
	assert_true(acked == 5);
	/* What its node acknowledged is delivered, not dead: a redelivery
	 * timer that fired before the acknowledgement was applied finds nothing. */
	{
		struct dl d = {"portugal", 2};
		assert_int_equal(tern_store_write(st, do_dead_letter, &d), TERN_ENOENT);
		assert_int_equal(scan("portugal").n, 6);
	}
	/* An acknowledgement that goes back is no acknowledgement. */
	k1.n = 9;
	assert_int_equal(tern_store_write(st, do_ack_keep, &k1), TERN_OK);
	assert_int_equal(k1.n, 0);
	assert_int_equal(depth_of("portugal", &acked), 1);

	/* The node comes back holding only up to 1: 2..6 are queued again. */
	assert_int_equal(tern_store_write(st, do_rewind, &r), TERN_OK);
	assert_true(r.first == 2);
	assert_int_equal(depth_of("portugal", &acked), 5);
	assert_true(acked == 1);

	/* The mark reached at 1000 (upto 3) is past a retention ending at 2000,
	 * but the rewind put 2 and 3 back: only 1 goes. */
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);
	assert_int_equal(p.n, 1);
	assert_int_equal(scan("portugal").n, 5);
	assert_true(scan("portugal").seqs[0] == 2);

	/* Acknowledged again and past retention: purged; a rewind below what is
	 * left says where the gap ends. */
	k2.upto = 6;
	k2.at = 6000;
	assert_int_equal(tern_store_write(st, do_ack_keep, &k2), TERN_OK);
	p.before = 7000;
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);
	assert_int_equal(p.n, 5);
	assert_int_equal(scan("portugal").n, 0);
	r.to = 2;
	assert_int_equal(tern_store_write(st, do_rewind, &r), TERN_OK);
	assert_true(r.first == 7); /* 3..6 were purged: nothing held above 2 */
	assert_int_equal(depth_of("portugal", &acked), 0);
	assert_true(acked == 2);
}

/* Past retention an item leaves a stub (its id and sender) for longer: a node
 * restored from an older copy is told by id what it lost, and the stub is
 * never counted as queued; stubs go in their turn. */
static void test_stubs_name_what_is_lost(void **state)
{
	struct keep k = {"iom", 4, 1000, 0};
	struct purge p = {.before = 5000, .ids_before = 500, .now = 5000, .max = 100};
	struct rewind r = {.rcpt = "iom", .to = 0};
	uint64_t acked;

	(void)state;
	append("iom", 5, INT64_MAX - 1, NULL);
	assert_int_equal(tern_store_write(st, do_ack_keep, &k), TERN_OK);
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);
	assert_int_equal(p.n, 4);           /* four became stubs */
	assert_int_equal(scan("iom").n, 5); /* still there, as stubs */
	assert_int_equal(depth_of("iom", NULL), 1);
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);
	assert_int_equal(p.n, 0); /* nothing new: stubs are not made twice */

	/* The node comes back with nothing: four are named lost, one goes again. */
	assert_int_equal(tern_store_write(st, do_rewind, &r), TERN_OK);
	assert_int_equal(r.nlost, 4);
	assert_true(r.lost[0] == 1 && r.lost[3] == 4);
	assert_true(r.first == 1);
	assert_int_equal(depth_of("iom", &acked), 1); /* a stub is never queued */
	assert_true(acked == 0);

	/* Their ids are kept until ids_before passes the time they became stubs. */
	k.upto = 5;
	k.at = 6000;
	assert_int_equal(tern_store_write(st, do_ack_keep, &k), TERN_OK);
	p = (struct purge){.before = 7000, .ids_before = 5001, .now = 7000, .max = 100};
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);
	assert_int_equal(scan("iom").n, 1); /* the stubs of 5000 gone; 5's new stub stays */
	assert_true(scan("iom").seqs[0] == 5);
}

static void test_accept_numbers(void **state)
{
	uint64_t a = 0, b = 0, n = 0;
	char last[37];
	MDB_txn *txn;

	(void)state;
	assert_int_equal(tern_store_write(st, do_accept, &a), TERN_OK);
	assert_int_equal(tern_store_write(st, do_accept, &b), TERN_OK);
	assert_true(b == a + 1);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_accepted_count(txn, st, "unhcr", &n, last), TERN_OK);
	assert_true(n == b);
	assert_string_equal(last, "01a20598-0000-7000-8000-0000000000ff");
	assert_int_equal(bq_accepted_count(txn, st, "nobody", &n, last), TERN_OK);
	assert_true(n == 0);
	assert_string_equal(last, "");
	mdb_txn_abort(txn);
}

static void test_dedup(void **state)
{
	struct dd d = {"01a20598-0000-7000-8000-00000000aaaa", "unhcr", 42, NULL, 0};
	/* As stores before sender binding wrote them: accepted(1)|at(8)|code\0|text\0. */
	static const uint8_t old_ok[11] = {1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0};
	static const uint8_t old_refused[] = {0, 0, 0, 0, 0, 0, 0, 0, 9, 'w', 0, 't', 0};
	struct dd legacy_ok = {"01a20598-0000-7000-8000-00000000cccc", NULL, 0, old_ok,
	                       sizeof(old_ok)};
	struct dd legacy_refused = {"01a20598-0000-7000-8000-00000000dddd", NULL, 0, old_refused,
	                            sizeof(old_refused)};
	bq_dedup got;
	MDB_txn *txn;

	(void)state;
	assert_int_equal(tern_store_write(st, do_dedup_put, &d), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dedup_put, &legacy_ok), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dedup_put, &legacy_refused), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_dedup_get(txn, st, d.id, &got), TERN_OK);
	assert_string_equal(got.sender, "unhcr");
	assert_true(got.n == 42);
	assert_true(got.at == 5);
	assert_int_equal(bq_dedup_get(txn, st, "01a20598-0000-7000-8000-00000000bbbb", &got),
	                 TERN_ENOENT);
	/* An old acceptance still counts, its sender unknown; an old refusal does not. */
	assert_int_equal(bq_dedup_get(txn, st, legacy_ok.id, &got), TERN_OK);
	assert_string_equal(got.sender, "");
	assert_int_equal(bq_dedup_get(txn, st, legacy_refused.id, &got), TERN_ENOENT);
	mdb_txn_abort(txn);
}

static int do_expire(MDB_txn *txn, void *arg)
{
	size_t n;
	int rc = bq_expire(txn, st, 1000, &n, NULL, NULL, NULL);
	*(size_t *)arg = n;
	return rc;
}

struct dlq {
	char rcpt[64], msgid[40], reason[64];
	int n;
};

static void dlq_visit(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                      void *arg)
{
	struct dlq *d = arg;
	(void)at;
	snprintf(d->rcpt, sizeof(d->rcpt), "%s", rcpt);
	snprintf(d->msgid, sizeof(d->msgid), "%s", msgid);
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	d->n++;
}

struct dl_reason {
	const char *rcpt, *reason;
	uint64_t seq;
};

static int do_dead_letter_reason(MDB_txn *txn, void *arg)
{
	struct dl_reason *d = arg;
	return bq_dead_letter(txn, st, d->rcpt, d->seq, TERN__V1__NOTICE__KIND__DEAD_LETTERED,
	                      d->reason, 9000);
}

/* The same id dead-lettered twice for one destination (an envelope and the
 * notice about it, say): the later letter replaces the earlier, and counts
 * once. */
static void test_dead_letter_same_id_replaces(void **state)
{
	struct dl_reason one = {"ngo", "reason-one", 1}, two = {"ngo", "reason-two", 2};
	struct dlq d = {0};
	MDB_txn *txn;
	bq_dest *q = NULL;
	size_t nq = 0;

	(void)state;
	append("ngo", 1, INT64_MAX - 1, NULL);
	append("ngo", 1, INT64_MAX - 1, NULL); /* do_append numbers ids from 0: the same id */
	assert_int_equal(tern_store_write(st, do_dead_letter_reason, &one), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dead_letter_reason, &two), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_dlq_scan(txn, st, dlq_visit, &d), TERN_OK);
	assert_int_equal(bq_stats(txn, st, &q, &nq), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.reason, "reason-two");
	assert_int_equal(nq, 2); /* ngo, and unhcr with its two notices */
	assert_string_equal(q[0].id, "ngo");
	assert_int_equal(q[0].dead, 1);
	assert_int_equal(q[0].depth, 0);
	free(q);
}

/* An expired entry leaves its queue for the dead-letter queue with its
 * reason, and its sender is told through its own queue. */
static void test_expiry_dead_letters_and_notice(void **state)
{
	struct dlq d = {0};
	size_t moved = 0;
	MDB_txn *txn;
	bq_item it;
	ProtobufCMessage *m;

	(void)state;
	append("portugal", 1, 500, NULL); /* expires at 500 ms */
	append("portugal", 1, INT64_MAX - 1, NULL);
	assert_int_equal(tern_store_write(st, do_expire, &moved), TERN_OK);
	assert_int_equal(moved, 1);
	assert_int_equal(scan("portugal").n, 1);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_dlq_scan(txn, st, dlq_visit, &d), TERN_OK);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.rcpt, "portugal");
	assert_string_equal(d.reason, "expired");
	/* The sender's queue now holds a notice naming the message. */
	assert_int_equal(bq_get(txn, st, "unhcr", 1, &it), TERN_OK);
	assert_int_equal(it.kind, BQ_NOTICE);
	m = (ProtobufCMessage *)tern__v1__notice__unpack(NULL, it.len, it.payload);
	assert_non_null(m);
	assert_int_equal(((Tern__V1__Notice *)m)->kind, TERN__V1__NOTICE__KIND__EXPIRED);
	assert_string_equal(((Tern__V1__Notice *)m)->message_id, d.msgid);
	assert_string_equal(((Tern__V1__Notice *)m)->recipient, "portugal");
	protobuf_c_message_free_unpacked(m, NULL);
	mdb_txn_abort(txn);
	/* Nothing more to expire. */
	assert_int_equal(tern_store_write(st, do_expire, &moved), TERN_OK);
	assert_int_equal(moved, 0);
}

/* The per-destination counters bq_stats reads are held to a full scan after
 * every step of a long random mix of appends, acknowledgements (kept and
 * not), rewinds, dead letters, retries, drops, expiry and purges; a store
 * from before the counters gets them at its next open, and a read-only look
 * at such a store scans. */
static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(uint64_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state % n;
}

struct mix {
	int op;
	const char *rcpt;
	int64_t now;
	unsigned ids;
	char dead[64][2][40]; /* rcpt, msgid of what is in the dead letters */
	int ndead;
};

static int mix_step(MDB_txn *txn, void *arg)
{
	struct mix *m = arg;
	uint64_t acked, last, seq;
	int rc = TERN_OK;

	if ((rc = bq_acked(txn, st, m->rcpt, &acked)) != TERN_OK ||
	    (rc = bq_last_seq(txn, st, m->rcpt, &last)) != TERN_OK)
		return rc;
	switch (m->op) {
	case 0: { /* append one to three */
		for (int i = 0, n = 1 + (int)rnd(3); i < n && rc == TERN_OK; i++) {
			char payload[40];
			bq_item it = {.kind = rnd(5) ? BQ_ENVELOPE : BQ_NOTICE,
			              .expires_at = rnd(4) ? INT64_MAX - 1 : m->now + 5,
			              .enqueued_at = m->now};
			snprintf(it.sender, sizeof(it.sender), "unhcr");
			snprintf(it.msgid, sizeof(it.msgid), "01a20598-0000-7000-8000-%012u",
			         ++m->ids);
			snprintf(payload, sizeof(payload), "%.*s", (int)(1 + rnd(30)),
			         "abcdefghijklmnopqrstuvwxyz0123456789");
			it.payload = (const uint8_t *)payload;
			it.len = strlen(payload);
			rc = bq_append(txn, st, m->rcpt, &it, &seq);
		}
		return rc;
	}
	case 1: /* acknowledge, kept for retention or not */
		return bq_ack(txn, st, m->rcpt, acked + rnd(last - acked + 1), (int)rnd(2), m->now,
		              NULL, NULL, NULL);
	case 2: /* a restored node: rewind */
		if (acked == 0)
			return TERN_OK;
		return bq_rewind(txn, st, m->rcpt, rnd(acked + 1), &seq, NULL, NULL);
	case 3: { /* dead-letter one above the mark */
		bq_item it;
		if (last <= acked)
			return TERN_OK;
		seq = acked + 1 + rnd(last - acked);
		if (bq_get(txn, st, m->rcpt, seq, &it) != TERN_OK)
			return TERN_OK; /* gone already */
		if (m->ndead < 64 && it.kind == BQ_ENVELOPE) {
			snprintf(m->dead[m->ndead][0], 40, "%s", m->rcpt);
			snprintf(m->dead[m->ndead][1], 40, "%s", it.msgid);
			m->ndead++;
		}
		rc = bq_dead_letter(txn, st, m->rcpt, seq, TERN__V1__NOTICE__KIND__DEAD_LETTERED,
		                    "max-attempts", m->now);
		return rc == TERN_ENOENT ? TERN_OK : rc;
	}
	case 4: { /* tern dlq retry or drop */
		int i;
		if (m->ndead == 0)
			return TERN_OK;
		i = (int)rnd((uint64_t)m->ndead);
		rc = bq_dlq_take(txn, st, m->dead[i][0], m->dead[i][1], (int)rnd(2), INT64_MAX - 1,
		                 m->now);
		memmove(m->dead[i], m->dead[i + 1],
		        sizeof(m->dead[0]) * (size_t)(m->ndead - i - 1));
		m->ndead--;
		return rc == TERN_ENOENT ? TERN_OK : rc;
	}
	case 5: { /* expiry */
		size_t n;
		return bq_expire(txn, st, m->now, &n, NULL, NULL, NULL);
	}
	default: { /* purge: stubs, then deletes */
		size_t n;
		return bq_purge(txn, st, m->now, m->now - (int64_t)rnd(20), m->now, 1000, &n);
	}
	}
}

static void stats_both(bq_dest **a, size_t *na, bq_dest **b, size_t *nb)
{
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_stats(txn, st, a, na), TERN_OK);
	assert_int_equal(bq_stats_scan(txn, st, b, nb), TERN_OK);
	mdb_txn_abort(txn);
}

static void assert_counts_match(int step)
{
	bq_dest *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;

	stats_both(&a, &na, &b, &nb);
	if (na != nb)
		fail_msg("step %d: %zu destinations counted, %zu scanned", step, na, nb);
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i].id, b[i].id) != 0 || a[i].depth != b[i].depth ||
		    a[i].bytes != b[i].bytes || a[i].notices != b[i].notices ||
		    a[i].dead != b[i].dead || a[i].retained != b[i].retained ||
		    a[i].acked != b[i].acked || a[i].oldest != b[i].oldest)
			fail_msg("step %d, %s: counted depth %zu bytes %zu notices %zu dead %zu "
			         "retained %zu oldest %lld; scanned %s %zu %zu %zu %zu %zu %lld",
			         step, a[i].id, a[i].depth, a[i].bytes, a[i].notices, a[i].dead,
			         a[i].retained, (long long)a[i].oldest, b[i].id, b[i].depth,
			         b[i].bytes, b[i].notices, b[i].dead, b[i].retained,
			         (long long)b[i].oldest);
	}
	free(a);
	free(b);
}

static int forget_counts(MDB_txn *txn, void *arg)
{
	MDB_cursor *c;
	MDB_val k = {7, "qcount/"}, v;
	int rc;

	(void)arg;
	if (mdb_cursor_open(txn, tern_store_dbi(st, BQ_META), &c) != 0)
		return TERN_EIO;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) {
		if (k.mv_size < 7 || memcmp(k.mv_data, "qcount/", 7) != 0)
			break;
		if (mdb_cursor_del(c, 0) != 0)
			break;
		k = (MDB_val){7, "qcount/"};
	}
	mdb_cursor_close(c);
	k = (MDB_val){11, "qcount.kept"};
	return mdb_del(txn, tern_store_dbi(st, BQ_META), &k, NULL) == 0 ? TERN_OK : TERN_EIO;
}

static void test_counts_match_scan(void **state)
{
	static const char *const rcpts[] = {"portugal", "sweden", "unhcr"};
	struct mix m = {0};
	bq_dest *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, queued = 0;

	(void)state;
	for (int step = 0; step < 1500; step++) {
		int r = (int)rnd(100);
		m.op = r < 40   ? 0
		       : r < 60 ? 1
		       : r < 66 ? 2
		       : r < 76 ? 3
		       : r < 84 ? 4
		       : r < 92 ? 5
		                : 6;
		m.rcpt = rcpts[rnd(3)];
		m.now = 1000 + step;
		assert_int_equal(tern_store_write(st, mix_step, &m), TERN_OK);
		assert_counts_match(step);
	}
	stats_both(&a, &na, &b, &nb);
	for (size_t i = 0; i < na; i++)
		queued += a[i].depth + a[i].dead;
	assert_true(queued > 0); /* the mix left something to count */
	free(a);
	free(b);

	/* A store from before the counters: counted at its next open. */
	assert_int_equal(tern_store_write(st, forget_counts, NULL), TERN_OK);
	assert_counts_match(-1); /* no mark: bq_stats scans */
	tern_store_close(&st);
	{
		tern_store *ro = NULL;
		MDB_txn *txn;
		assert_int_equal(bq_open_rdonly(dir, &ro), TERN_OK);
		assert_int_equal(tern_store_read_begin(ro, &txn), TERN_OK);
		assert_int_equal(bq_stats(txn, ro, &a, &na), TERN_OK); /* read-only: the scan */
		mdb_txn_abort(txn);
		free(a);
		tern_store_close(&ro);
	}
	assert_int_equal(bq_open(dir, &st, epoch), TERN_OK);
	{
		MDB_txn *txn;
		MDB_val k = {11, "qcount.kept"}, v;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		assert_int_equal(mdb_get(txn, tern_store_dbi(st, BQ_META), &k, &v), 0);
		mdb_txn_abort(txn);
	}
	assert_counts_match(-2);
	for (int step = 0; step < 200; step++) { /* and kept from there */
		m.op = (int)rnd(7);
		m.rcpt = rcpts[rnd(3)];
		m.now = 3000 + step;
		assert_int_equal(tern_store_write(st, mix_step, &m), TERN_OK);
		assert_counts_match(10000 + step);
	}
}

static int damage_counts(MDB_txn *txn, void *arg)
{
	MDB_val k = {strlen("qcount/sweden"), "qcount/sweden"}, v = {3, "bad"};

	(void)arg;
	return mdb_put(txn, tern_store_dbi(st, BQ_META), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

/* A destination's counter damaged (a store written by hand, a bad disk
 * block): before, every commit that moved one of its items failed with it
 * (an append, an acknowledgement, a dead letter), so the broker accepted
 * nothing more in batches that touched it. Now the commits go on; the
 * counters are given up, reads scan meanwhile, and the next open counts
 * them again. */
static void test_damaged_counts_no_wedge(void **state)
{
	struct upto u = {"sweden", 2};
	MDB_txn *txn;
	MDB_val k = {11, "qcount.kept"}, v;

	(void)state;
	append("sweden", 3, INT64_MAX, NULL);
	append("iom", 1, INT64_MAX, NULL);
	assert_int_equal(tern_store_write(st, damage_counts, NULL), TERN_OK);
	append("sweden", 2, INT64_MAX, NULL); /* an append moves its counts */
	assert_int_equal(tern_store_write(st, do_delete, &u), TERN_OK); /* so does an ack */
	assert_counts_match(1); /* no mark now: bq_stats scans, and says the truth */
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, BQ_META), &k, &v), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	tern_store_close(&st);
	assert_int_equal(bq_open(dir, &st, epoch), TERN_OK); /* counted again */
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, BQ_META), &k, &v), 0);
	mdb_txn_abort(txn);
	assert_counts_match(2);
}

static int set_seq_counter(MDB_txn *txn, void *arg)
{
	MDB_val k = {strlen("seq/sweden"), "seq/sweden"}, v = {3, "bad"};

	if (arg == NULL) /* deleted */
		return mdb_del(txn, tern_store_dbi(st, BQ_META), &k, NULL) == 0 ? TERN_OK
		                                                                : TERN_EIO;
	return mdb_put(txn, tern_store_dbi(st, BQ_META), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

/* sweden's sequence counter damaged, then lost, with items queued, one
 * acknowledged and kept for retention, and two dead-lettered at the end
 * (their numbers, 4 and 5, gone with them; the node may have been sent
 * them): the next item is numbered past all of them by the recovery gap,
 * overwrites nothing, and is delivered. Before, a damaged counter numbered
 * it 1: over the retained item, and below the node's mark (never sent). A
 * destination that never had a queue still starts at 1. */
static void test_damaged_seq_counter_recovered(void **state)
{
	struct keep kp = {"sweden", 1, 1000, 0};
	struct dl d4 = {"sweden", 4}, d5 = {"sweden", 5};
	uint64_t last = 0;
	struct seen q;

	(void)state;
	append("sweden", 5, INT64_MAX, &last);
	assert_int_equal(last, 5);
	assert_int_equal(tern_store_write(st, do_ack_keep, &kp), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dead_letter, &d4), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dead_letter, &d5), TERN_OK);
	assert_int_equal(tern_store_write(st, set_seq_counter, "damaged"), TERN_OK);
	append("sweden", 1, INT64_MAX, &last);
	assert_int_equal(last, 3 + 1 + (1ull << 32)); /* past seq 3, the last it holds */
	q = scan("sweden");
	assert_int_equal(q.n, 4); /* 1 (retained), 2, 3, and the new one */
	assert_int_equal(q.seqs[0], 1);
	assert_string_equal(q.payloads[0], "env-0"); /* not overwritten */
	assert_int_equal(q.seqs[3], last);
	append("sweden", 1, INT64_MAX, &last); /* the counter is whole again */
	assert_int_equal(last, 3 + 2 + (1ull << 32));
	assert_int_equal(tern_store_write(st, set_seq_counter, NULL), TERN_OK); /* lost */
	append("sweden", 1, INT64_MAX, &last);
	assert_int_equal(last, 3 + 2 + 1 + 2 * (1ull << 32));
	append("norway", 1, INT64_MAX, &last); /* a first queue: from 1 */
	assert_int_equal(last, 1);
}

static int damage_sweden_2(MDB_txn *txn, void *arg)
{
	uint8_t k[16] = "sweden";
	MDB_val key = {7 + 8, k}, v = {2, "xx"};

	(void)arg;
	memset(k + 7, 0, 8);
	k[14] = 2;
	return mdb_put(txn, tern_store_dbi(st, BQ_QUEUE), &key, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static size_t expire_damaged;

static int expire_at(MDB_txn *txn, void *arg)
{
	size_t n;
	int rc = bq_expire(txn, st, *(int64_t *)arg, &n, &expire_damaged, NULL, NULL);

	*(int64_t *)arg = (int64_t)n;
	return rc;
}

static int put_short_expiry(MDB_txn *txn, void *arg)
{
	MDB_val k = {3, "\0\0\0"}, v = {0, ""};

	(void)arg;
	return mdb_put(txn, tern_store_dbi(st, BQ_EXPIRY), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

/* An expired entry that does not decode, and an expiry key no release
 * writes, first in the index: the sweep passes both and dead-letters the
 * rest. Before, the entry failed the sweep's write (and the commit carrying
 * it, every second), and the key stopped every sweep (read before its size
 * was checked). */
static void test_damaged_expiry_passed(void **state)
{
	int64_t now = 5000;
	struct seen q;

	(void)state;
	append("sweden", 3, 2000, NULL);
	assert_int_equal(tern_store_write(st, damage_sweden_2, NULL), TERN_OK);
	assert_int_equal(tern_store_write(st, put_short_expiry, NULL), TERN_OK);
	assert_int_equal(tern_store_write(st, expire_at, &now), TERN_OK);
	assert_int_equal(now, 2);            /* seqs 1 and 3 */
	assert_int_equal(expire_damaged, 1); /* seq 2, said */
	q = scan("sweden");
	assert_int_equal(q.n, 0); /* the damaged one is passed over by delivery */
	now = 6000;
	assert_int_equal(tern_store_write(st, expire_at, &now), TERN_OK);
	assert_int_equal(now, 0); /* nothing left indexed */
}

struct sweep_job {
	const char *rcpt;
	size_t n;
};

static int do_dead_letter_queue(MDB_txn *txn, void *arg)
{
	struct sweep_job *j = arg;
	return bq_dead_letter_queue(txn, st, j->rcpt, TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED,
	                            "recipient-revoked", 9000, 100, &j->n);
}

/* A member revoked after its store was put back from a copy older than
 * retention: its queue holds stubs (what it lost, past retention) above the
 * mark its Hello moved back, then what is still to deliver. The revocation
 * sweep dead-letters the latter and passes the stubs over. Before, the first
 * stub failed the sweep's write, at every reload, and what was queued for
 * the revoked member never reached a final state at its sender. */
static void test_revocation_sweep_passes_stubs(void **state)
{
	struct keep k = {"iom", 4, 1000, 0};
	struct purge p = {.before = 5000, .ids_before = 500, .now = 5000, .max = 100};
	struct rewind r = {.rcpt = "iom", .to = 0};
	struct sweep_job j = {"iom", 0};

	(void)state;
	append("iom", 5, INT64_MAX - 1, NULL);
	assert_int_equal(tern_store_write(st, do_ack_keep, &k), TERN_OK);
	assert_int_equal(tern_store_write(st, do_purge, &p), TERN_OK);  /* 1..4: stubs */
	assert_int_equal(tern_store_write(st, do_rewind, &r), TERN_OK); /* the mark back to 0 */
	assert_int_equal(depth_of("iom", NULL), 1);
	assert_int_equal(tern_store_write(st, do_dead_letter_queue, &j), TERN_OK);
	assert_int_equal(j.n, 1);
	assert_int_equal(depth_of("iom", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order_and_sequences, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention_and_rewind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_counts_match_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_counts_no_wedge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_expiry_passed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_seq_counter_recovered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dead_letter_same_id_replaces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stubs_name_what_is_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_accept_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry_dead_letters_and_notice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revocation_sweep_passes_stubs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

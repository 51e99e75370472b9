/* The broker's store layer: the LMDB layout queue.h describes. Longer than
 * the ~800 lines the other files keep to, on purpose: it is one thing, and
 * nearly every function shares its private key encodings (qkey, xkey, ackkey,
 * dlq_key), the item encoding and the rules of the acknowledged mark; split,
 * those would have to become a header of their own for no reader's gain. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/v1/envelope.pb-c.h>
#include <tern/v1/wire.pb-c.h>

#include "pbuf.h"
#include "queue.h"
#include "util.h"
#include "xfer.h"

/* acklog came later: a read-only view of an older store has none (dbi 0). */
static const char *const dbnames[] = {
    "meta",    "queue",    "expiry", "dedup",   "dlq", TERN_AUDIT_DBNAMES,
    "?acklog", "?stublog", "?xfer",  "?xproof", NULL};

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))

void bq_audit_dbs(tern_store *s, tern_audit_dbs *d)
{
	tern_audit_dbs_at(s, BQ_AUDIT, d);
}

int bq_audit(MDB_txn *txn, tern_store *s, Tern__V1__AuditEntry__Kind kind, const char *msgid,
             const char *peer, const char *case_id, const char *type, const uint8_t *env,
             size_t len, const char *reason, char *const *recipients, size_t nrcpts, int64_t now)
{
	return bq_audit_seals(txn, s, kind, msgid, peer, case_id, type, env, len, reason,
	                      recipients, nrcpts, NULL, 0, now);
}

int bq_audit_seals(MDB_txn *txn, tern_store *s, Tern__V1__AuditEntry__Kind kind, const char *msgid,
                   const char *peer, const char *case_id, const char *type, const uint8_t *env,
                   size_t len, const char *reason, char *const *recipients, size_t nrcpts,
                   const Tern__V1__AttachmentSeal *const *seals, size_t nseals, int64_t now)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	Tern__V1__AuditAttachment att[TERN_ATTACH_MAX_COUNT], *atts[TERN_ATTACH_MAX_COUNT];
	tern_audit_dbs d;
	uint8_t digest[32];

	if (nseals > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EINVAL, "audit: too many attachments");
	bq_audit_dbs(s, &d);
	e.kind = kind;
	e.at = now;
	e.message_id = (char *)(msgid ? msgid : "");
	e.peer = (char *)(peer ? peer : "");
	e.case_id = (char *)(case_id ? case_id : "");
	e.type = (char *)(type ? type : "");
	e.reason = (char *)(reason ? reason : "");
	e.recipients = (char **)recipients;
	e.n_recipients = nrcpts;
	if (env) {
		int rc = tern_sha256(env, len, digest);
		if (rc != TERN_OK)
			return rc;
		e.digest.data = digest;
		e.digest.len = 32;
	}
	/* What the broker can see: index, size, root; never the plaintext's
	 * hash, which it does not have and must not learn. */
	for (size_t i = 0; i < nseals; i++) {
		tern__v1__audit_attachment__init(&att[i]);
		att[i].index = (uint32_t)i;
		att[i].size = seals[i]->size;
		att[i].root = seals[i]->root;
		atts[i] = &att[i];
	}
	e.attachments = nseals ? atts : NULL;
	e.n_attachments = nseals;
	return tern_audit_append(txn, &d, &e);
}

/* rcpt || 0x00 || be64(seq): a queue's entries are adjacent and in order. */
static size_t qkey(uint8_t *k, const char *rcpt, uint64_t seq)
{
	size_t n = strlen(rcpt);

	memcpy(k, rcpt, n);
	k[n] = 0;
	tern_be64_put(k + n + 1, seq);
	return n + 9;
}

/* be64(expires) || queue key: a cursor from the start finds what expired. */
static size_t xkey(uint8_t *k, int64_t expires, const char *rcpt, uint64_t seq)
{
	tern_be64_put(k, (uint64_t)expires);
	return 8 + qkey(k + 8, rcpt, seq);
}

static int item_encode(const bq_item *it, uint8_t **out, size_t *len)
{
	size_t sl = strlen(it->sender), n = 1 + 8 + 8 + 1 + sl + 36 + it->len;
	uint8_t *p, *buf;

	if (sl > 63 || strlen(it->msgid) != 36)
		return tern_fail(TERN_EINVAL, "queue item: bad sender or message id");
	if ((buf = malloc(n)) == NULL)
		return TERN_ENOMEM;
	p = buf;
	*p++ = (uint8_t)it->kind;
	tern_be64_put(p, (uint64_t)it->expires_at);
	tern_be64_put(p + 8, (uint64_t)it->enqueued_at);
	p += 16;
	*p++ = (uint8_t)sl;
	memcpy(p, it->sender, sl);
	p += sl;
	memcpy(p, it->msgid, 36);
	p += 36;
	memcpy(p, it->payload, it->len);
	*out = buf;
	*len = n;
	return TERN_OK;
}

static int item_decode(const MDB_val *v, bq_item *it)
{
	const uint8_t *p = v->mv_data;
	size_t sl;

	if (v->mv_size < 1 + 16 + 1 + 36)
		return tern_fail(TERN_EMALFORMED, "damaged queue entry");
	it->kind = p[0];
	it->expires_at = (int64_t)tern_be64_get(p + 1);
	it->enqueued_at = (int64_t)tern_be64_get(p + 9);
	sl = p[17];
	if (sl > 63 || v->mv_size < 18 + sl + 36)
		return tern_fail(TERN_EMALFORMED, "damaged queue entry");
	memcpy(it->sender, p + 18, sl);
	it->sender[sl] = 0;
	memcpy(it->msgid, p + 18 + sl, 36);
	it->msgid[36] = 0;
	it->payload = p + 18 + sl + 36;
	it->len = v->mv_size - (18 + sl + 36);
	return TERN_OK;
}

struct open_arg {
	tern_store *s;
	uint8_t *epoch;
};

struct qcount;
static int qcount_move(MDB_txn *txn, tern_store *s, const char *rcpt, const bq_item *it, int sign,
                       int dead);
static int qcount_backfill(MDB_txn *txn, void *arg);
static int stats_finish(MDB_txn *txn, tern_store *s, bq_dest *d, size_t nd, bq_dest **out,
                        size_t *n);

static int epoch_apply(MDB_txn *txn, void *arg)
{
	struct open_arg *a = arg;
	MDB_val k = {5, "epoch"}, v;
	int rc = mdb_get(txn, DBI(a->s, BQ_META), &k, &v);

	if (rc == 0 && v.mv_size == BQ_EPOCH_LEN) {
		memcpy(a->epoch, v.mv_data, BQ_EPOCH_LEN);
		return TERN_OK;
	}
	randombytes_buf(a->epoch, BQ_EPOCH_LEN);
	v.mv_data = a->epoch;
	v.mv_size = BQ_EPOCH_LEN;
	return MDB(mdb_put(txn, DBI(a->s, BQ_META), &k, &v, 0), "store epoch");
}

int bq_open(const char *dir, tern_store **out, uint8_t store_id[BQ_EPOCH_LEN])
{
	struct open_arg a;
	tern_audit_dbs audit;
	int rc;

	if ((rc = tern_store_open(dir, dbnames, 0, 0, out)) != TERN_OK)
		return rc;
	a.s = *out;
	a.epoch = store_id;
	bq_audit_dbs(*out, &audit);
	if ((rc = tern_store_write(*out, epoch_apply, &a)) != TERN_OK ||
	    (rc = tern_store_write(*out, qcount_backfill, *out)) != TERN_OK ||
	    (rc = tern_audit_backfill(*out, &audit)) != TERN_OK)
		tern_store_close(out);
	return rc;
}

static int seek(MDB_cursor *c, const char *rcpt, uint64_t from, MDB_val *key, MDB_val *v,
                uint8_t *kbuf);

/* How far past anything it can see a lost sequence counter starts again.
 * What rcpt's node may have been sent is above its acknowledged mark and at
 * most the lost counter: the queue still holds some of it, and entries
 * dead-lettered above the last one it holds are gone with their numbers.
 * A number given again to another item would be taken by that node for one
 * it has (it takes any seq above the last it holds, so a gap costs
 * nothing), so the counter restarts far past what could have been given. */
#define SEQ_RECOVERY_GAP (1ull << 32)

/* rcpt's sequence counter is damaged, or missing though rcpt has had a
 * queue (an acknowledged mark, or items): the next number, past both. */
static int seq_recover(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t *next)
{
	uint8_t k[96];
	MDB_cursor *c;
	MDB_val key, v;
	uint64_t acked = 0, last = 0;
	int rc, arc = bq_acked(txn, s, rcpt, &acked);

	if (arc == TERN_EMALFORMED)
		acked = 0; /* damaged too: the queue and the gap decide */
	else if (arc != TERN_OK)
		return arc;
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
		return MDB(rc, "cursor");
	/* The last item rcpt has: the one before the first past its keys. */
	rc = seek(c, rcpt, UINT64_MAX, &key, &v, k);
	if (rc == 0)
		last = UINT64_MAX;
	else {
		key = (MDB_val){qkey(k, rcpt, UINT64_MAX), k};
		rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
		rc = mdb_cursor_get(c, &key, &v, rc == 0 ? MDB_PREV : MDB_LAST);
		if (rc == 0 && key.mv_size == strlen(rcpt) + 9 &&
		    memcmp(key.mv_data, rcpt, strlen(rcpt) + 1) == 0)
			last = tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8);
		else if (rc != 0 && rc != MDB_NOTFOUND) {
			mdb_cursor_close(c);
			return MDB(rc, "find the queue's last item");
		}
	}
	mdb_cursor_close(c);
	int had_queue = arc != TERN_OK || acked > 0 || last > 0;
	if (last < acked)
		last = acked;
	if (last > UINT64_MAX - SEQ_RECOVERY_GAP - 1)
		return tern_fail(TERN_EMALFORMED, "the queue sequence of %s cannot be recovered",
		                 rcpt);
	*next = had_queue ? last + 1 + SEQ_RECOVERY_GAP : 1;
	return TERN_OK;
}

int bq_append(MDB_txn *txn, tern_store *s, const char *rcpt, const bq_item *item, uint64_t *seq)
{
	uint8_t mk[80], k[96], xk[104], sb[8], *val = NULL;
	MDB_val key, v;
	size_t ml, vl = 0;
	uint64_t next = 1;
	int rc;

	/* The next sequence is stored, never derived from the queue: an emptied
	 * queue must not reuse numbers a node already acknowledged (nor one
	 * whose items were dead-lettered: see seq_recover). */
	ml = (size_t)snprintf((char *)mk, sizeof(mk), "seq/%s", rcpt);
	key = (MDB_val){ml, mk};
	rc = mdb_get(txn, DBI(s, BQ_META), &key, &v);
	if (rc == 0 && v.mv_size == 8)
		next = tern_be64_get(v.mv_data) + 1;
	else if (rc == 0 || rc == MDB_NOTFOUND) {
		/* Missing (a destination's first item) or damaged: numbered
		 * from 1 only for a destination that never had a queue. Before,
		 * a damaged counter numbered from 1: over retained items, and
		 * below the node's acknowledged mark, so never delivered. */
		if ((rc = seq_recover(txn, s, rcpt, &next)) != TERN_OK)
			return rc;
	} else
		return MDB(rc, "read queue sequence");
	tern_be64_put(sb, next);
	v = (MDB_val){8, sb};
	if ((rc = mdb_put(txn, DBI(s, BQ_META), &key, &v, 0)) != 0)
		return MDB(rc, "write queue sequence");

	if ((rc = item_encode(item, &val, &vl)) != TERN_OK)
		return rc;
	key = (MDB_val){qkey(k, rcpt, next), k};
	v = (MDB_val){vl, val};
	rc = mdb_put(txn, DBI(s, BQ_QUEUE), &key, &v, 0);
	free(val);
	if (rc != 0)
		return MDB(rc, "append to queue");
	key = (MDB_val){xkey(xk, item->expires_at, rcpt, next), xk};
	v = (MDB_val){0, ""};
	if ((rc = mdb_put(txn, DBI(s, BQ_EXPIRY), &key, &v, 0)) != 0)
		return MDB(rc, "index expiry");
	if ((rc = qcount_move(txn, s, rcpt, item, +1, 0)) != TERN_OK)
		return rc;
	*seq = next;
	return TERN_OK;
}

/* A be64 counter in meta under prefix/name. */
static int meta_get(MDB_txn *txn, tern_store *s, const char *prefix, const char *name,
                    uint64_t *out)
{
	uint8_t mk[80];
	MDB_val key, v;
	int rc;

	key.mv_size = (size_t)snprintf((char *)mk, sizeof(mk), "%s/%s", prefix, name);
	key.mv_data = mk;
	*out = 0;
	rc = mdb_get(txn, DBI(s, BQ_META), &key, &v);
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read counter");
	if (v.mv_size != 8)
		return tern_fail(TERN_EMALFORMED, "damaged counter %s/%s", prefix, name);
	*out = tern_be64_get(v.mv_data);
	return TERN_OK;
}

static int meta_put(MDB_txn *txn, tern_store *s, const char *prefix, const char *name, uint64_t n)
{
	uint8_t mk[80], b[8];
	MDB_val key, v = {8, b};

	key.mv_size = (size_t)snprintf((char *)mk, sizeof(mk), "%s/%s", prefix, name);
	key.mv_data = mk;
	tern_be64_put(b, n);
	return MDB(mdb_put(txn, DBI(s, BQ_META), &key, &v, 0), "write counter");
}

int bq_last_seq(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t *seq)
{
	return meta_get(txn, s, "seq", rcpt, seq);
}

int bq_acked(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t *acked)
{
	return meta_get(txn, s, "acked", rcpt, acked);
}

int bq_accept_next(MDB_txn *txn, tern_store *s, const char *sender, const char *msgid, uint64_t *n)
{
	uint8_t mk[80];
	MDB_val key, v = {36, (void *)msgid};
	int rc = meta_get(txn, s, "accepted", sender, n);

	if (rc != TERN_OK)
		return rc;
	(*n)++;
	if ((rc = meta_put(txn, s, "accepted", sender, *n)) != TERN_OK)
		return rc;
	key.mv_size = (size_t)snprintf((char *)mk, sizeof(mk), "lastacc/%s", sender);
	key.mv_data = mk;
	return MDB(mdb_put(txn, DBI(s, BQ_META), &key, &v, 0), "write last acceptance");
}

int bq_accepted_count(MDB_txn *txn, tern_store *s, const char *sender, uint64_t *n, char *last)
{
	uint8_t mk[80];
	MDB_val key, v;
	int rc = meta_get(txn, s, "accepted", sender, n);

	last[0] = 0;
	if (rc != TERN_OK)
		return rc;
	key.mv_size = (size_t)snprintf((char *)mk, sizeof(mk), "lastacc/%s", sender);
	key.mv_data = mk;
	if (mdb_get(txn, DBI(s, BQ_META), &key, &v) == 0 && v.mv_size == 36) {
		memcpy(last, v.mv_data, 36);
		last[36] = 0;
	}
	return TERN_OK;
}

/* Positions c at rcpt's first entry with seq >= from; 0 or MDB_NOTFOUND. */
static int seek(MDB_cursor *c, const char *rcpt, uint64_t from, MDB_val *key, MDB_val *v,
                uint8_t *kbuf)
{
	size_t n = strlen(rcpt);
	int rc;

	key->mv_size = qkey(kbuf, rcpt, from);
	key->mv_data = kbuf;
	rc = mdb_cursor_get(c, key, v, MDB_SET_RANGE);
	if (rc == 0 && (key->mv_size != n + 9 || memcmp(key->mv_data, rcpt, n + 1) != 0))
		return MDB_NOTFOUND;
	return rc;
}

static int next_in(MDB_cursor *c, const char *rcpt, MDB_val *key, MDB_val *v)
{
	size_t n = strlen(rcpt);
	int rc = mdb_cursor_get(c, key, v, MDB_NEXT);

	if (rc == 0 && (key->mv_size != n + 9 || memcmp(key->mv_data, rcpt, n + 1) != 0))
		return MDB_NOTFOUND;
	return rc;
}

/* What each destination has queued above its acknowledged mark (items that
 * are not stubs: count, payload bytes, notices) and dead-lettered, kept in
 * meta under "qcount/<rcpt>" and moved in the transaction that moves an item,
 * so `tern queues` and the metrics cost the same with ten items queued or ten
 * million: counting them by a scan held the broker's loop a quarter of a second per
 * million. A store from before the counters gets them once, by that scan,
 * when it is opened for writing (QCOUNT_MARK); a read-only look at such a
 * store still scans. */
#define QCOUNT_MARK "qcount.kept"
#define QCOUNT_PREFIX "qcount/"

struct qcount {
	uint64_t n, bytes, notices, dead;
};

static int qcount_get(MDB_txn *txn, tern_store *s, const char *rcpt, struct qcount *q)
{
	uint8_t mk[80];
	MDB_val key = {(size_t)snprintf((char *)mk, sizeof(mk), QCOUNT_PREFIX "%s", rcpt), mk}, v;
	int rc = mdb_get(txn, DBI(s, BQ_META), &key, &v);

	memset(q, 0, sizeof(*q));
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read queue counts");
	if (v.mv_size != 32)
		return tern_fail(TERN_EMALFORMED, "damaged queue counts for %s", rcpt);
	q->n = tern_be64_get(v.mv_data);
	q->bytes = tern_be64_get((uint8_t *)v.mv_data + 8);
	q->notices = tern_be64_get((uint8_t *)v.mv_data + 16);
	q->dead = tern_be64_get((uint8_t *)v.mv_data + 24);
	return TERN_OK;
}

static int qcount_put(MDB_txn *txn, tern_store *s, const char *rcpt, const struct qcount *q)
{
	uint8_t mk[80], b[32];
	MDB_val key = {(size_t)snprintf((char *)mk, sizeof(mk), QCOUNT_PREFIX "%s", rcpt), mk},
	        v = {sizeof(b), b};

	if (q->n == 0 && q->bytes == 0 && q->notices == 0 && q->dead == 0) {
		int rc = mdb_del(txn, DBI(s, BQ_META), &key, NULL);
		return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "clear queue counts");
	}
	tern_be64_put(b, q->n);
	tern_be64_put(b + 8, q->bytes);
	tern_be64_put(b + 16, q->notices);
	tern_be64_put(b + 24, q->dead);
	return MDB(mdb_put(txn, DBI(s, BQ_META), &key, &v, 0), "write queue counts");
}

static uint64_t add_clamped(uint64_t a, int64_t d)
{
	return d < 0 && (uint64_t)-d > a ? 0 : a + (uint64_t)d;
}

/* sign +1: it joins what rcpt has queued; -1: it leaves (acknowledged or
 * dead-lettered); dead: the dead-letter count moves by that much. Stubs are
 * never counted. */
static int qcount_move(MDB_txn *txn, tern_store *s, const char *rcpt, const bq_item *it, int sign,
                       int dead)
{
	struct qcount q;
	int rc;

	if (it && it->kind == BQ_STUB && dead == 0)
		return TERN_OK;
	if ((rc = qcount_get(txn, s, rcpt, &q)) == TERN_EMALFORMED) {
		/* A damaged counter (derived data) must not fail the commit that
		 * moves an item, nor every later one for this destination: the
		 * counters are given up until the broker's next open counts them
		 * again (qcount_backfill), and reads scan the queues meanwhile,
		 * as for a store from before them. */
		MDB_val mark = {strlen(QCOUNT_MARK), QCOUNT_MARK};
		int r = mdb_del(txn, DBI(s, BQ_META), &mark, NULL);
		if (r != 0 && r != MDB_NOTFOUND)
			return MDB(r, "drop the queue counts' mark");
		memset(&q, 0, sizeof(q));
	} else if (rc != TERN_OK) {
		return rc;
	}
	if (it && it->kind != BQ_STUB) {
		q.n = add_clamped(q.n, sign);
		q.bytes = add_clamped(q.bytes, sign * (int64_t)it->len);
		if (it->kind == BQ_NOTICE)
			q.notices = add_clamped(q.notices, sign);
	}
	q.dead = add_clamped(q.dead, dead);
	return qcount_put(txn, s, rcpt, &q);
}

static int unindex(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq, int64_t expires)
{
	uint8_t xk[104];
	MDB_val key = {xkey(xk, expires, rcpt, seq), xk};
	int rc = mdb_del(txn, DBI(s, BQ_EXPIRY), &key, NULL);

	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "unindex expiry");
}

/* acklog key: be64(at) rcpt. */
static size_t ackkey(uint8_t *k, int64_t at, const char *rcpt)
{
	size_t n = strlen(rcpt);

	tern_be64_put(k, (uint64_t)at);
	memcpy(k + 8, rcpt, n);
	return 8 + n;
}

int bq_ack(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t upto, int keep, int64_t now,
           void (*fn)(const bq_item *it, void *arg), void *arg, size_t *n)
{
	MDB_cursor *c;
	MDB_val key, v;
	uint8_t k[96];
	uint64_t acked;
	size_t done = 0;
	int rc;

	if (n)
		*n = 0;
	if ((rc = bq_acked(txn, s, rcpt, &acked)) != TERN_OK)
		return rc;
	if (upto <= acked)
		return TERN_OK;
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
		return MDB(rc, "cursor");
	for (rc = seek(c, rcpt, acked + 1, &key, &v, k); rc == 0;) {
		uint64_t seq = tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8);
		bq_item it;
		if (seq > upto)
			break;
		if (item_decode(&v, &it) == TERN_OK) {
			if ((rc = unindex(txn, s, rcpt, seq, it.expires_at)) != TERN_OK ||
			    (rc = qcount_move(txn, s, rcpt, &it, -1, 0)) != TERN_OK)
				goto out;
			if (fn)
				fn(&it, arg);
		}
		done++;
		/* Seek afresh after each write: the expiry index changed, and a
		 * cursor is not trusted across writes. */
		if (keep) {
			rc = seek(c, rcpt, seq + 1, &key, &v, k);
			continue;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0) {
			rc = MDB(rc, "delete acknowledged");
			goto out;
		}
		rc = seek(c, rcpt, seq + 1, &key, &v, k);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rc = MDB(rc, "scan queue");
		goto out;
	}
	if ((rc = meta_put(txn, s, "acked", rcpt, upto)) != TERN_OK)
		goto out;
	if (keep && DBI(s, BQ_ACKLOG)) {
		uint8_t ak[8 + 64], ub[8];
		MDB_val akey = {ackkey(ak, now, rcpt), ak}, av = {8, ub};
		tern_be64_put(ub, upto);
		rc = MDB(mdb_put(txn, DBI(s, BQ_ACKLOG), &akey, &av, 0), "write ack log");
	}
out:
	mdb_cursor_close(c);
	if (n)
		*n = done;
	return rc;
}

int bq_rewind(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t to, uint64_t *first,
              void (*lost)(uint64_t seq, const bq_item *stub, void *arg), void *arg)
{
	MDB_cursor *c;
	MDB_val key, v;
	uint8_t k[96];
	uint64_t acked, last;
	int rc;

	if ((rc = bq_acked(txn, s, rcpt, &acked)) != TERN_OK ||
	    (rc = bq_last_seq(txn, s, rcpt, &last)) != TERN_OK)
		return rc;
	*first = last + 1;
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
		return MDB(rc, "cursor");
	rc = seek(c, rcpt, to + 1, &key, &v, k);
	if (rc == 0)
		*first = tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8);
	/* Stubs are at the head of what is retained: name each one lost. */
	for (; rc == 0 && lost; rc = next_in(c, rcpt, &key, &v)) {
		uint64_t seq = tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8);
		bq_item it;
		if (seq > acked || item_decode(&v, &it) != TERN_OK || it.kind != BQ_STUB)
			break;
		lost(seq, &it, arg);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_cursor_close(c);
		return MDB(rc, "scan queue");
	}
	/* What is above the mark again is queued again: counted again. Seek
	 * afresh after each counter write, as bq_ack does. */
	for (uint64_t next = to + 1; to < acked && (rc = seek(c, rcpt, next, &key, &v, k)) == 0;) {
		uint64_t seq = tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8);
		bq_item it;
		int crc;
		if (seq > acked)
			break;
		if (item_decode(&v, &it) == TERN_OK &&
		    (crc = qcount_move(txn, s, rcpt, &it, +1, 0)) != TERN_OK) {
			mdb_cursor_close(c);
			return crc;
		}
		next = seq + 1;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "scan queue");
	return to < acked ? meta_put(txn, s, "acked", rcpt, to) : TERN_OK;
}

/* Deletes rcpt's items up to upto (stub: turns them into stubs instead, from
 * the first not yet a stub), at most max - *done of them; *more = 1 when it
 * stopped at max with such items left. */
static int purge_one(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t upto, int stub,
                     size_t max, size_t *done, int *more)
{
	MDB_cursor *q;
	MDB_val k, v;
	uint8_t kb[96];
	uint64_t from = 1;
	int rc;

	*more = 0;
	/* Stubs are made in order: the mark says where the next one goes, so a
	 * long tail of stubs is never read again. */
	if (stub && (rc = meta_get(txn, s, "stubbed", rcpt, &from)) != TERN_OK)
		return rc;
	if (stub)
		from++;
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &q)) != 0)
		return MDB(rc, "cursor");
	for (rc = seek(q, rcpt, from, &k, &v, kb); rc == 0; rc = seek(q, rcpt, from, &k, &v, kb)) {
		uint64_t seq = tern_be64_get((uint8_t *)k.mv_data + k.mv_size - 8);
		bq_item it;
		if (seq > upto)
			break;
		if (*done >= max) {
			*more = 1;
			break;
		}
		if (!stub) {
			if ((rc = mdb_cursor_del(q, 0)) != 0)
				break;
		} else if (item_decode(&v, &it) == TERN_OK && it.kind != BQ_STUB) {
			uint8_t *val = NULL;
			size_t vl = 0;
			MDB_val sk = {qkey(kb, rcpt, seq), kb}, sv;
			it.kind = BQ_STUB;
			it.payload = (const uint8_t *)"";
			it.len = 0;
			if ((rc = item_encode(&it, &val, &vl)) != TERN_OK) {
				mdb_cursor_close(q);
				return rc;
			}
			sv = (MDB_val){vl, val};
			rc = mdb_put(txn, DBI(s, BQ_QUEUE), &sk, &sv, 0);
			free(val);
			if (rc != 0)
				break;
		}
		(*done)++;
		from = seq + 1;
	}
	mdb_cursor_close(q);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "purge acknowledged items");
	return stub && from > 1 ? meta_put(txn, s, "stubbed", rcpt, from - 1) : TERN_OK;
}

/* One pass over a log (acklog or stublog): entries reached before before go,
 * their items purged (stub) or deleted; an acklog entry whose items became
 * stubs moves to the stublog, dated now. */
static int purge_log(MDB_txn *txn, tern_store *s, int log, int64_t before, int stub, int64_t now,
                     size_t max, size_t *n)
{
	MDB_cursor *c;
	MDB_val key, v;
	int rc = TERN_OK, mrc;

	if (DBI(s, log) == 0 || (stub && DBI(s, BQ_STUBLOG) == 0))
		return TERN_OK; /* an older store, read-only: nothing retained */
	if ((mrc = mdb_cursor_open(txn, DBI(s, log), &c)) != 0)
		return MDB(mrc, "cursor");
	while (*n < max && (mrc = mdb_cursor_get(c, &key, &v, MDB_FIRST)) == 0) {
		char rcpt[64];
		uint64_t upto, acked;
		int more;
		if (key.mv_size >= 9 && key.mv_size <= 8 + 63 && v.mv_size == 8) {
			if ((int64_t)tern_be64_get(key.mv_data) >= before)
				break;
			memcpy(rcpt, (uint8_t *)key.mv_data + 8, key.mv_size - 8);
			rcpt[key.mv_size - 8] = 0;
			upto = tern_be64_get(v.mv_data);
			/* A rewind may have moved the mark back below upto since:
			 * never purge what is queued again. */
			if ((rc = bq_acked(txn, s, rcpt, &acked)) != TERN_OK)
				break;
			if (upto > acked)
				upto = acked;
			if ((rc = purge_one(txn, s, rcpt, upto, stub, max, n, &more)) != TERN_OK)
				break;
			if (more)
				break; /* the rest of this entry next time */
			if (stub) {
				uint8_t sk[8 + 64], ub[8];
				MDB_val skey = {ackkey(sk, now, rcpt), sk}, sv = {8, ub};
				tern_be64_put(ub, upto);
				if ((mrc = mdb_put(txn, DBI(s, BQ_STUBLOG), &skey, &sv, 0)) != 0)
					break;
			}
			if ((mrc = mdb_cursor_get(c, &key, &v, MDB_FIRST)) != 0)
				break;
		}
		if ((mrc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != TERN_OK)
		return rc;
	return mrc == 0 || mrc == MDB_NOTFOUND ? TERN_OK : MDB(mrc, "purge log");
}

int bq_purge(MDB_txn *txn, tern_store *s, int64_t before, int64_t ids_before, int64_t now,
             size_t max, size_t *n)
{
	int stub = ids_before < before, rc;

	*n = 0;
	if ((rc = purge_log(txn, s, BQ_ACKLOG, before, stub, now, max, n)) != TERN_OK)
		return rc;
	return purge_log(txn, s, BQ_STUBLOG, ids_before, 0, now, max, n);
}

int bq_get(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq, bq_item *item)
{
	uint8_t k[96];
	MDB_val key = {qkey(k, rcpt, seq), k}, v;
	int rc = mdb_get(txn, DBI(s, BQ_QUEUE), &key, &v);

	if (rc != 0)
		return MDB(rc, "read queue entry");
	return item_decode(&v, item);
}

int bq_scan(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t from, bq_visit_fn *fn,
            void *arg)
{
	MDB_cursor *c;
	MDB_val key, v;
	uint8_t k[96];
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
		return MDB(rc, "cursor");
	for (rc = seek(c, rcpt, from, &key, &v, k); rc == 0; rc = next_in(c, rcpt, &key, &v)) {
		bq_item it;
		if (item_decode(&v, &it) != TERN_OK)
			continue;
		if (fn(tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8), &it, arg))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan queue");
}

static int head_visit(uint64_t seq, const bq_item *it, void *arg)
{
	if (it->kind == BQ_STUB)
		return 0;
	*(uint64_t *)arg = seq;
	return 1;
}

int bq_head(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t from, uint64_t *seq)
{
	*seq = 0;
	return bq_scan(txn, s, rcpt, from, head_visit, seq);
}

struct depth {
	size_t n, bytes;
};

static int depth_visit(uint64_t seq, const bq_item *it, void *arg)
{
	struct depth *d = arg;

	(void)seq;
	if (it->kind == BQ_STUB)
		return 0;
	d->n++;
	d->bytes += it->len;
	return 0;
}

int bq_depth(MDB_txn *txn, tern_store *s, const char *rcpt, size_t *n, size_t *bytes)
{
	MDB_val mark = {strlen(QCOUNT_MARK), QCOUNT_MARK}, v;
	struct depth d = {0, 0};
	struct qcount q;
	uint64_t acked;
	int rc;

	if (mdb_get(txn, DBI(s, BQ_META), &mark, &v) == 0) {
		rc = qcount_get(txn, s, rcpt, &q); /* zero on failure */
		d.n = q.n;
		d.bytes = q.bytes;
	} else if ((rc = bq_acked(txn, s, rcpt, &acked)) == TERN_OK) {
		rc = bq_scan(txn, s, rcpt, acked + 1, depth_visit, &d); /* an older store */
	}
	*n = d.n;
	if (bytes)
		*bytes = d.bytes;
	return rc;
}

int bq_dead_letter(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq, int notice_kind,
                   const char *reason, int64_t now)
{
	uint8_t k[96], dk[128], *dv = NULL, *nb = NULL;
	MDB_val key = {qkey(k, rcpt, seq), k}, v, dkey;
	Tern__V1__Notice nt = TERN__V1__NOTICE__INIT;
	size_t rl = strlen(reason), nl;
	bq_item it, notice;
	uint64_t nseq;
	int rc, fresh = 0;

	{
		uint64_t acked;
		if ((rc = bq_acked(txn, s, rcpt, &acked)) != TERN_OK)
			return rc;
		if (seq <= acked) /* delivered, and kept for retention: not dead */
			return tern_fail(TERN_ENOENT, "seq %llu for %s is acknowledged",
			                 (unsigned long long)seq, rcpt);
	}
	if ((rc = mdb_get(txn, DBI(s, BQ_QUEUE), &key, &v)) != 0)
		return MDB(rc, "read entry to dead-letter");
	if ((rc = item_decode(&v, &it)) != TERN_OK)
		return rc;
	if (it.kind == BQ_STUB) /* delivered once, lost by a restored node: nothing to send */
		return tern_fail(TERN_ENOENT, "seq %llu for %s is a stub", (unsigned long long)seq,
		                 rcpt);
	if (rl > 255)
		rl = 255;
	/* dlq value: at | reason length | reason | the queue entry as it was */
	if ((dv = malloc(8 + 1 + rl + v.mv_size)) == NULL)
		return TERN_ENOMEM;
	tern_be64_put(dv, (uint64_t)now);
	dv[8] = (uint8_t)rl;
	memcpy(dv + 9, reason, rl);
	memcpy(dv + 9 + rl, v.mv_data, v.mv_size);
	dkey.mv_size = (size_t)snprintf((char *)dk, sizeof(dk), "%s", rcpt) + 1;
	memcpy(dk + dkey.mv_size, it.msgid, 36);
	dkey.mv_size += 36;
	dkey.mv_data = dk;
	{
		MDB_val dval = {9 + rl + v.mv_size, dv};
		/* The same id dead-lettered again replaces its letter: one more
		 * dead letter only when there was none. */
		rc = mdb_put(txn, DBI(s, BQ_DLQ), &dkey, &dval, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST) {
			/* LMDB pointed dval at the letter there: point it back. */
			dval = (MDB_val){9 + rl + v.mv_size, dv};
			rc = mdb_put(txn, DBI(s, BQ_DLQ), &dkey, &dval, 0);
		} else if (rc == 0) {
			fresh = 1;
		}
	}
	free(dv);
	if (rc != 0)
		return MDB(rc, "write dead letter");
	if ((rc = unindex(txn, s, rcpt, seq, it.expires_at)) != TERN_OK ||
	    (rc = qcount_move(txn, s, rcpt, &it, -1, fresh)) != TERN_OK)
		return rc;
	if (it.kind == BQ_ENVELOPE &&
	    (rc = bq_audit(
	         txn, s,
	         strcmp(reason, "expired") == 0 ? TERN__V1__AUDIT_ENTRY__KIND__EXPIRED
	                                        : TERN__V1__AUDIT_ENTRY__KIND__DEAD_LETTERED,
	         it.msgid, rcpt, NULL, NULL, it.payload, it.len, reason, NULL, 0, now)) != TERN_OK)
		return rc;
	/* Copy what the notice needs before the entry (and it's memory) goes. */
	memset(&notice, 0, sizeof(notice));
	notice.kind = BQ_NOTICE;
	notice.enqueued_at = now;
	notice.expires_at = INT64_MAX;
	snprintf(notice.sender, sizeof(notice.sender), "%s", it.sender);
	memcpy(notice.msgid, it.msgid, 37);
	if ((rc = mdb_del(txn, DBI(s, BQ_QUEUE), &key, NULL)) != 0)
		return MDB(rc, "delete dead-lettered entry");
	if (it.kind != BQ_ENVELOPE)
		return TERN_OK; /* a notice nobody could take is not noticed again */
	nt.kind = notice_kind;
	nt.message_id = notice.msgid;
	nt.recipient = (char *)rcpt;
	nt.reason = (char *)reason;
	nt.at = now;
	nl = tern__v1__notice__get_packed_size(&nt);
	if ((nb = malloc(nl)) == NULL)
		return TERN_ENOMEM;
	tern__v1__notice__pack(&nt, nb);
	notice.payload = nb;
	notice.len = nl;
	rc = bq_append(txn, s, notice.sender, &notice, &nseq);
	free(nb);
	return rc;
}

int bq_dead_letter_queue(MDB_txn *txn, tern_store *s, const char *rcpt, int notice_kind,
                         const char *reason, int64_t now, size_t max, size_t *n)
{
	MDB_cursor *c;
	MDB_val key, v;
	uint8_t k[96];
	size_t done = 0;
	int rc = TERN_OK;

	uint64_t acked;

	*n = 0;
	if ((rc = bq_acked(txn, s, rcpt, &acked)) != TERN_OK)
		return rc;
	uint64_t from = acked + 1;
	while (done < max) {
		uint64_t seq;
		if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
			return MDB(rc, "cursor");
		/* Seek afresh each time: dead-lettering writes to the queue
		 * database. What its node acknowledged is not its to lose. */
		rc = seek(c, rcpt, from, &key, &v, k);
		seq = rc == 0 ? tern_be64_get((uint8_t *)key.mv_data + key.mv_size - 8) : 0;
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc != 0)
			return MDB(rc, "scan queue");
		from = seq + 1;
		rc = bq_dead_letter(txn, s, rcpt, seq, notice_kind, reason, now);
		/* A stub (what a restored node lost, kept by retention: nothing
		 * to send) is passed over; before, it failed the whole sweep,
		 * at every reload. */
		if (rc == TERN_ENOENT)
			continue;
		if (rc != TERN_OK)
			return rc;
		done++;
	}
	*n = done;
	return TERN_OK;
}

int bq_destinations(MDB_txn *txn, tern_store *s, void (*fn)(const char *rcpt, void *arg), void *arg)
{
	MDB_cursor *c;
	MDB_val key, v;
	char id[66] = "";
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &c)) != 0)
		return MDB(rc, "cursor");
	for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;) {
		size_t il = strnlen(key.mv_data, key.mv_size);
		if (il == 0 || il > 63 || key.mv_size != il + 9) {
			rc = mdb_cursor_get(c, &key, &v, MDB_NEXT); /* not a queue key */
			continue;
		}
		memcpy(id, key.mv_data, il);
		id[il] = 0;
		fn(id, arg);
		/* Keys are id NUL be64(seq): the next destination sorts at or
		 * after id followed by 0x01. */
		id[il] = 1;
		key.mv_data = id;
		key.mv_size = il + 1;
		rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "list destinations");
}

/* 1 if rcpt's queue holds seq and it does not decode. */
static int entry_damaged(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq)
{
	uint8_t k[96];
	MDB_val key = {qkey(k, rcpt, seq), k}, v;
	bq_item it;

	return mdb_get(txn, DBI(s, BQ_QUEUE), &key, &v) == 0 && item_decode(&v, &it) != TERN_OK;
}

int bq_expire(MDB_txn *txn, tern_store *s, int64_t now, size_t *n, size_t *damaged,
              void (*touched)(const char *rcpt, void *arg), void *arg)
{
	MDB_cursor *c;
	MDB_val key, v;
	size_t done = 0, bad = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_EXPIRY), &c)) != 0)
		return MDB(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &key, &v, MDB_FIRST)) == 0) {
		char rcpt[64];
		uint8_t *k = key.mv_data;
		uint64_t seq;

		if (key.mv_size < 8 + 9 || key.mv_size - 8 - 9 > 63) {
			/* Not a key this code writes (a damaged store): left first
			 * in the index, it would stop every sweep here. */
			if ((rc = MDB(mdb_cursor_del(c, 0), "drop a damaged expiry")) != TERN_OK)
				goto out;
			continue;
		}
		if ((int64_t)tern_be64_get(k) > now)
			break;
		memcpy(rcpt, k + 8, key.mv_size - 8 - 9);
		rcpt[key.mv_size - 8 - 9] = 0;
		seq = tern_be64_get(k + key.mv_size - 8);
		rc = bq_dead_letter(txn, s, rcpt, seq, TERN__V1__NOTICE__KIND__EXPIRED, "expired",
		                    now);
		if (rc == TERN_ENOENT) /* index without entry: drop the index */
			rc = MDB(mdb_cursor_del(c, 0), "drop stale expiry");
		else if (rc == TERN_EMALFORMED && entry_damaged(txn, s, rcpt, seq)) {
			/* The entry does not decode (bq_dead_letter said so before
			 * writing anything): it cannot be dead-lettered, and left
			 * in the index it would fail every sweep, and each with the
			 * commit it rides in (submissions and acknowledgements of
			 * every node). Its expiry goes; the entry stays where it is,
			 * passed over by delivery and taken by the next
			 * acknowledgement past it. */
			rc = MDB(mdb_cursor_del(c, 0), "drop a damaged entry's expiry");
			if (rc == TERN_OK) {
				bad++;
				continue;
			}
		}
		if (rc != TERN_OK)
			goto out;
		if (touched)
			touched(rcpt, arg);
		done++;
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan expiry");
out:
	mdb_cursor_close(c);
	*n = done;
	if (damaged)
		*damaged = bad;
	return rc;
}

int64_t bq_next_expiry(MDB_txn *txn, tern_store *s)
{
	MDB_cursor *c;
	MDB_val key, v;
	int64_t at = INT64_MAX;

	if (mdb_cursor_open(txn, DBI(s, BQ_EXPIRY), &c) != 0)
		return at;
	if (mdb_cursor_get(c, &key, &v, MDB_FIRST) == 0 && key.mv_size >= 8)
		at = (int64_t)tern_be64_get(key.mv_data);
	mdb_cursor_close(c);
	return at;
}

/* A dedup value: 0x02 | at(8) | n(8) | sender. Stores written before
 * senders were kept hold 0x01 (accepted) or 0x00 (refused) | at(8) | code NUL
 * | text NUL: an old acceptance is still an acceptance (sender unknown), an
 * old refusal no longer counts. */
#define DEDUP_V2 2

int bq_dedup_get(MDB_txn *txn, tern_store *s, const char *msgid, bq_dedup *out)
{
	MDB_val key = {strlen(msgid), (void *)msgid}, v;
	const uint8_t *p;
	int rc = mdb_get(txn, DBI(s, BQ_DEDUP), &key, &v);

	if (rc != 0)
		return MDB(rc, "read dedup");
	p = v.mv_data;
	memset(out, 0, sizeof(*out));
	if (v.mv_size >= 17 && p[0] == DEDUP_V2) {
		size_t sl = v.mv_size - 17;
		if (sl >= sizeof(out->sender))
			return tern_fail(TERN_EMALFORMED, "damaged dedup entry for %s", msgid);
		out->at = (int64_t)tern_be64_get(p + 1);
		out->n = tern_be64_get(p + 9);
		memcpy(out->sender, p + 17, sl);
		out->sender[sl] = 0;
		return TERN_OK;
	}
	if (v.mv_size >= 11 && p[0] == 1) {
		out->at = (int64_t)tern_be64_get(p + 1);
		return TERN_OK;
	}
	if (v.mv_size >= 11 && p[0] == 0)
		return tern_fail(TERN_ENOENT, "%s was refused before, not accepted", msgid);
	return tern_fail(TERN_EMALFORMED, "damaged dedup entry for %s", msgid);
}

int bq_dedup_put(MDB_txn *txn, tern_store *s, const char *msgid, const char *sender, uint64_t n,
                 int64_t now)
{
	size_t sl = strlen(sender);
	uint8_t buf[17 + 64];
	MDB_val key = {strlen(msgid), (void *)msgid}, v;

	if (sl > 63)
		return tern_fail(TERN_EINVAL, "dedup: sender id too long");
	buf[0] = DEDUP_V2;
	tern_be64_put(buf + 1, (uint64_t)now);
	tern_be64_put(buf + 9, n);
	memcpy(buf + 17, sender, sl);
	v = (MDB_val){17 + sl, buf};
	return MDB(mdb_put(txn, DBI(s, BQ_DEDUP), &key, &v, 0), "write dedup");
}

int bq_dlq_scan(MDB_txn *txn, tern_store *s,
                void (*fn)(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                           void *arg),
                void *arg)
{
	MDB_cursor *c;
	MDB_val key, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_DLQ), &c)) != 0)
		return MDB(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) == 0) {
		char rcpt[64], msgid[37], reason[256];
		const uint8_t *d = v.mv_data;
		size_t rl;
		const char *k = key.mv_data;
		size_t il = strnlen(k, key.mv_size);

		if (il > 63 || key.mv_size != il + 1 + 36 || v.mv_size < 9 ||
		    (size_t)9 + d[8] > v.mv_size)
			continue;
		memcpy(rcpt, k, il);
		rcpt[il] = 0;
		memcpy(msgid, k + il + 1, 36);
		msgid[36] = 0;
		rl = d[8];
		memcpy(reason, d + 9, rl);
		reason[rl] = 0;
		fn(rcpt, msgid, reason, (int64_t)tern_be64_get(d), arg);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan dead letters");
}

static int dest_cmp(const void *a, const void *b)
{
	return strcmp(((const bq_dest *)a)->id, ((const bq_dest *)b)->id);
}

/* One pass over the queues and one over the dead letters: keys sort by
 * recipient, so each destination's entries are adjacent. What the counters
 * replaced; kept for a read-only look at a store from before them, for the
 * counters' first fill and for the tests that check them. */
int bq_stats_scan(MDB_txn *txn, tern_store *s, bq_dest **out, size_t *n)
{
	bq_dest *d = NULL;
	size_t nd = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*out = NULL;
	*n = 0;
	for (int db = 0; db < 2; db++) {
		if ((rc = mdb_cursor_open(txn, DBI(s, db == 0 ? BQ_QUEUE : BQ_DLQ), &c)) != 0) {
			free(d);
			return MDB(rc, "cursor");
		}
		MDB_cursor_op op = MDB_NEXT;
		uint8_t jump[96]; /* the key a jump seeks, alive until the next get */
		while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
			const char *rcpt = k.mv_data;
			size_t rl = strnlen(rcpt, k.mv_size), i;
			uint64_t seq;
			bq_item it;
			op = MDB_NEXT;
			if (rl == k.mv_size || rl >= sizeof(d->id))
				continue; /* not a recipient key */
			for (i = 0; i < nd && strcmp(d[i].id, rcpt) != 0; i++)
				;
			if (i == nd) {
				bq_dest *nd2 = realloc(d, (nd + 1) * sizeof(*d));
				if (nd2 == NULL) {
					mdb_cursor_close(c);
					free(d);
					return TERN_ENOMEM;
				}
				d = nd2;
				memset(&d[nd], 0, sizeof(*d));
				memcpy(d[nd].id, rcpt, rl);
				d[nd].oldest = INT64_MAX;
				if (bq_acked(txn, s, d[nd].id, &d[nd].acked) != TERN_OK)
					d[nd].acked = 0;
				nd++;
			}
			if (db == 1) {
				d[i].dead++;
				continue;
			}
			seq = tern_be64_get((uint8_t *)k.mv_data + k.mv_size - 8);
			if (seq <= d[i].acked) {
				/* Delivered, kept for a restored node: purged from the
				 * head only, so first..acked are all there. Jump past
				 * them rather than read a retention's worth of items. */
				d[i].retained = d[i].acked - seq + 1;
				k.mv_size = qkey(jump, d[i].id, d[i].acked + 1);
				k.mv_data = jump;
				op = MDB_SET_RANGE;
				continue;
			}
			if (item_decode(&v, &it) != TERN_OK || it.kind == BQ_STUB)
				continue;
			d[i].depth++;
			d[i].bytes += it.len;
			if (it.kind == BQ_NOTICE)
				d[i].notices++;
			if (it.enqueued_at < d[i].oldest)
				d[i].oldest = it.enqueued_at;
		}
		mdb_cursor_close(c);
		if (rc != MDB_NOTFOUND) {
			free(d);
			return MDB(rc, "read queues");
		}
	}
	return stats_finish(txn, s, d, nd, out, n);
}

/* Adds the attachment bytes held, drops destinations with nothing to show
 * and sorts by id. Takes d. */
static int stats_finish(MDB_txn *txn, tern_store *s, bq_dest *d, size_t nd, bq_dest **out,
                        size_t *n)
{
	int rc;

	if ((rc = xfer_stats_add(txn, s, &d, &nd)) != TERN_OK) {
		free(d);
		return rc;
	}
	/* A queue holding only what its node acknowledged (kept for retention)
	 * has nothing queued: it is not a destination to show. */
	{
		size_t keep = 0;
		for (size_t i = 0; i < nd; i++)
			if (d[i].depth || d[i].dead || d[i].transfer_bytes)
				d[keep++] = d[i];
		nd = keep;
	}
	if (nd > 1)
		qsort(d, nd, sizeof(*d), dest_cmp);
	*out = d;
	*n = nd;
	return TERN_OK;
}

/* From the counters: one meta entry per destination with anything queued or
 * dead-lettered, and two seeks each for the retained count and the oldest
 * item's age. */
int bq_stats(MDB_txn *txn, tern_store *s, bq_dest **out, size_t *n)
{
	const size_t pl = strlen(QCOUNT_PREFIX);
	MDB_val mark = {strlen(QCOUNT_MARK), QCOUNT_MARK}, k, v;
	MDB_cursor *c = NULL, *q = NULL;
	bq_dest *d = NULL;
	size_t nd = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = mdb_get(txn, DBI(s, BQ_META), &mark, &v)) == MDB_NOTFOUND)
		return bq_stats_scan(txn, s, out, n);
	if (rc != 0)
		return MDB(rc, "read the queue counts' mark");
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_META), &c)) != 0 ||
	    (rc = mdb_cursor_open(txn, DBI(s, BQ_QUEUE), &q)) != 0) {
		rc = MDB(rc, "cursor");
		goto fail;
	}
	k = (MDB_val){pl, QCOUNT_PREFIX};
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint8_t kb[96];
		MDB_val qk, qv;
		bq_dest *e;
		bq_item it;
		uint64_t seq;
		if (k.mv_size < pl || memcmp(k.mv_data, QCOUNT_PREFIX, pl) != 0)
			break;
		if (k.mv_size - pl == 0 || k.mv_size - pl > 63 || v.mv_size != 32)
			continue; /* not a counter this version writes */
		if ((e = realloc(d, (nd + 1) * sizeof(*d))) == NULL) {
			rc = TERN_ENOMEM;
			goto fail;
		}
		d = e;
		e = &d[nd++];
		memset(e, 0, sizeof(*e));
		memcpy(e->id, (uint8_t *)k.mv_data + pl, k.mv_size - pl);
		e->depth = tern_be64_get(v.mv_data);
		e->bytes = tern_be64_get((uint8_t *)v.mv_data + 8);
		e->notices = tern_be64_get((uint8_t *)v.mv_data + 16);
		e->dead = tern_be64_get((uint8_t *)v.mv_data + 24);
		e->oldest = INT64_MAX;
		if ((rc = bq_acked(txn, s, e->id, &e->acked)) != TERN_OK)
			goto fail;
		/* Retained items are the head of the queue, up to the mark. */
		if (seek(q, e->id, 1, &qk, &qv, kb) == 0 &&
		    (seq = tern_be64_get((uint8_t *)qk.mv_data + qk.mv_size - 8)) <= e->acked)
			e->retained = e->acked - seq + 1;
		/* Items queue in time order: the first above the mark that is not
		 * a stub is the oldest. */
		for (int r = seek(q, e->id, e->acked + 1, &qk, &qv, kb); r == 0;
		     r = next_in(q, e->id, &qk, &qv)) {
			if (item_decode(&qv, &it) == TERN_OK && it.kind != BQ_STUB) {
				e->oldest = it.enqueued_at;
				break;
			}
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND) { /* 0: past the counters */
		rc = MDB(rc, "read queue counts");
		goto fail;
	}
	mdb_cursor_close(q);
	mdb_cursor_close(c);
	return stats_finish(txn, s, d, nd, out, n);
fail:
	if (q)
		mdb_cursor_close(q);
	if (c)
		mdb_cursor_close(c);
	free(d);
	return rc;
}

/* Deletes every counter: a fill starts from none, so that counters left by
 * an earlier fill (the mark removed to count again) cannot outlive it. */
static int qcount_clear(MDB_txn *txn, tern_store *s)
{
	const size_t pl = strlen(QCOUNT_PREFIX);
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_META), &c)) != 0)
		return MDB(rc, "cursor");
	for (;;) {
		k = (MDB_val){pl, QCOUNT_PREFIX};
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) != 0 || k.mv_size < pl ||
		    memcmp(k.mv_data, QCOUNT_PREFIX, pl) != 0)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "clear queue counts");
}

/* The counters' first fill, for a store from before them: one scan, once. */
static int qcount_backfill(MDB_txn *txn, void *arg)
{
	tern_store *s = arg;
	MDB_val mark = {strlen(QCOUNT_MARK), QCOUNT_MARK}, v = {0, ""};
	bq_dest *d = NULL;
	size_t nd = 0;
	int rc = mdb_get(txn, DBI(s, BQ_META), &mark, &v);

	if (rc == 0)
		return TERN_OK;
	if (rc != MDB_NOTFOUND)
		return MDB(rc, "read the queue counts' mark");
	if ((rc = qcount_clear(txn, s)) != TERN_OK ||
	    (rc = bq_stats_scan(txn, s, &d, &nd)) != TERN_OK)
		return rc;
	for (size_t i = 0; i < nd && rc == TERN_OK; i++) {
		struct qcount q = {d[i].depth, d[i].bytes, d[i].notices, d[i].dead};
		rc = qcount_put(txn, s, d[i].id, &q);
	}
	free(d);
	v = (MDB_val){0, ""};
	return rc != TERN_OK ? rc : MDB(mdb_put(txn, DBI(s, BQ_META), &mark, &v, 0), "mark counts");
}

json_t *bq_stats_json(const bq_dest *d, size_t n, int64_t now)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(
		    arr,
		    json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", d[i].id, "depth",
		              (json_int_t)d[i].depth, "bytes", (json_int_t)d[i].bytes, "notices",
		              (json_int_t)d[i].notices, "dead_letters", (json_int_t)d[i].dead,
		              "retained", (json_int_t)d[i].retained, "oldest_age_ms",
		              (json_int_t)(d[i].depth && now > d[i].oldest ? now - d[i].oldest : 0),
		              "transfer_bytes", (json_int_t)d[i].transfer_bytes));
	return arr;
}

int bq_open_rdonly(const char *dir, tern_store **out)
{
	return tern_store_open(dir, dbnames, TERN_STORE_RDONLY, 0, out);
}

/* The plaintext header of a stored envelope: ids, type, case, times. */
static json_t *header_json(const bq_item *it)
{
	ProtobufCMessage *em = NULL, *hm = NULL;
	json_t *o = NULL;

	if (it->kind != BQ_ENVELOPE)
		return json_pack("{s:s, s:s}", "kind", "notice", "message_id", it->msgid);
	if (tern_pb_unpack(&tern__v1__envelope__descriptor, it->payload, it->len, it->len, &em) ==
	        TERN_OK &&
	    tern_pb_unpack(&tern__v1__header__descriptor, ((Tern__V1__Envelope *)em)->header.data,
	                   ((Tern__V1__Envelope *)em)->header.len, 65536, &hm) == TERN_OK) {
		const Tern__V1__Header *h = (const Tern__V1__Header *)hm;
		const tern_msgtype *t = tern_msgtype_by_type(h->type);
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "kind", "envelope", "message_id",
		              h->message_id, "sender", h->sender, "type", t ? t->name : "unknown",
		              "case_id", h->case_id, "created_at", (json_int_t)h->created_at);
	}
	tern_pb_free(&hm);
	tern_pb_free(&em);
	return o ? o
	         : json_pack("{s:s, s:s, s:s}", "kind", "envelope", "message_id", it->msgid,
	                     "sender", it->sender);
}

struct show {
	json_t *arr;
	size_t max;
};

static int show_visit(uint64_t seq, const bq_item *it, void *arg)
{
	struct show *sh = arg;
	json_t *o;

	if (it->kind == BQ_STUB)
		return 0;
	o = header_json(it);

	json_object_set_new(o, "seq", json_integer((json_int_t)seq));
	json_object_set_new(o, "bytes", json_integer((json_int_t)it->len));
	json_object_set_new(o, "enqueued_at", json_integer(it->enqueued_at));
	json_object_set_new(o, "expires_at",
	                    it->expires_at == INT64_MAX ? json_null()
	                                                : json_integer(it->expires_at));
	json_array_append_new(sh->arr, o);
	return json_array_size(sh->arr) >= sh->max;
}

int bq_show(MDB_txn *txn, tern_store *s, const char *rcpt, size_t max, json_t **out)
{
	struct show sh = {json_array(), max};
	uint64_t acked;
	int rc = bq_acked(txn, s, rcpt, &acked);

	if (rc == TERN_OK)
		rc = bq_scan(txn, s, rcpt, acked + 1, show_visit, &sh);

	if (rc != TERN_OK) {
		json_decref(sh.arr);
		return rc;
	}
	*out = sh.arr;
	return TERN_OK;
}

/* dlq key: rcpt || 0x00 || msgid; value: at | reason length | reason | entry. */
static size_t dlq_key(uint8_t *k, const char *rcpt, const char *msgid)
{
	size_t n = strlen(rcpt);

	memcpy(k, rcpt, n + 1);
	memcpy(k + n + 1, msgid, 36);
	return n + 1 + 36;
}

int bq_dlq_has(MDB_txn *txn, tern_store *s, const char *rcpt, const char *msgid)
{
	uint8_t k[64 + 1 + 36];
	MDB_val key, v;
	int rc;

	if (strlen(rcpt) > 63 || strlen(msgid) != 36)
		return TERN_ENOENT;
	key = (MDB_val){dlq_key(k, rcpt, msgid), k};
	rc = mdb_get(txn, DBI(s, BQ_DLQ), &key, &v);
	if (rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	return rc ? MDB(rc, "read dead letters") : TERN_OK;
}

int bq_dlq_take(MDB_txn *txn, tern_store *s, const char *rcpt, const char *msgid, int retry,
                int64_t expires_at, int64_t now)
{
	uint8_t k[128];
	MDB_val key, v;
	bq_item it;
	uint64_t seq;
	int rc;

	if (strlen(rcpt) > 63 || strlen(msgid) != 36)
		return tern_fail(TERN_EINVAL, "not a destination and message id");
	key = (MDB_val){dlq_key(k, rcpt, msgid), k};
	if ((rc = mdb_get(txn, DBI(s, BQ_DLQ), &key, &v)) == MDB_NOTFOUND)
		return tern_fail(TERN_ENOENT, "%s is not dead-lettered for %s", msgid, rcpt);
	if (rc != 0)
		return MDB(rc, "read dead letter");
	if (retry) {
		const uint8_t *d = v.mv_data;
		MDB_val ev;
		if (v.mv_size < 9 || (size_t)9 + d[8] > v.mv_size)
			return tern_fail(TERN_EMALFORMED, "damaged dead letter %s", msgid);
		ev = (MDB_val){v.mv_size - 9 - d[8], (uint8_t *)d + 9 + d[8]};
		if ((rc = item_decode(&ev, &it)) != TERN_OK)
			return rc;
		/* A fresh stay in the queue: an expired message would expire again at once. */
		it.enqueued_at = now;
		it.expires_at = expires_at;
		if ((rc = bq_append(txn, s, rcpt, &it, &seq)) != TERN_OK)
			return rc;
	}
	if ((rc = mdb_del(txn, DBI(s, BQ_DLQ), &key, NULL)) != 0)
		return MDB(rc, "delete dead letter");
	return qcount_move(txn, s, rcpt, NULL, 0, -1);
}

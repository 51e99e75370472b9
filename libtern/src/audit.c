#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/note.h>

#include "audit.h"
#include "pbuf.h"
#include "util.h"

#define MDB(rc, what) tern_store_mdb_err((rc), (what))

/* Appends store the subtree hashes when they are this many entries behind;
 * one further behind than SUBTREE_CATCHUP_MAX is left to the backfill. */
#define SUBTREE_BATCH 256
#define SUBTREE_CATCHUP_MAX 4096

/* The frontier: the roots of the complete subtrees that make up the log, left
 * to right, one per set bit of its size. Enough to append and to compute the
 * root without reading a single entry. */
struct frontier {
	uint64_t size;
	int n;
	tern_hash h[64];
};

static int frontier_get(MDB_txn *txn, const tern_audit_dbs *d, struct frontier *f)
{
	MDB_val k = {8, "frontier"}, v;
	int rc = mdb_get(txn, d->meta, &k, &v);

	memset(f, 0, sizeof(*f));
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read audit frontier");
	if (v.mv_size < 8 || (v.mv_size - 8) % TERN_HASH_LEN != 0 ||
	    (v.mv_size - 8) / TERN_HASH_LEN > 64)
		return tern_fail(TERN_EMALFORMED, "damaged audit frontier");
	f->size = tern_be64_get(v.mv_data);
	f->n = (int)((v.mv_size - 8) / TERN_HASH_LEN);
	if (f->n != __builtin_popcountll(f->size))
		return tern_fail(TERN_EMALFORMED, "audit frontier does not match its size");
	memcpy(f->h, (uint8_t *)v.mv_data + 8, (size_t)f->n * TERN_HASH_LEN);
	return TERN_OK;
}

static int frontier_put(MDB_txn *txn, const tern_audit_dbs *d, const struct frontier *f)
{
	uint8_t buf[8 + 64 * TERN_HASH_LEN];
	MDB_val k = {8, "frontier"}, v = {8 + (size_t)f->n * TERN_HASH_LEN, buf};

	tern_be64_put(buf, f->size);
	memcpy(buf + 8, f->h, (size_t)f->n * TERN_HASH_LEN);
	return MDB(mdb_put(txn, d->meta, &k, &v, 0), "write audit frontier");
}

static void frontier_root(const struct frontier *f, tern_hash root)
{
	if (f->n == 0) {
		crypto_hash_sha256(root, (const uint8_t *)"", 0);
		return;
	}
	memcpy(root, f->h[f->n - 1], TERN_HASH_LEN);
	for (int i = f->n - 2; i >= 0; i--)
		tern_merkle_node_hash(f->h[i], root, root);
}

void tern_audit_dbs_at(const tern_store *s, int first, tern_audit_dbs *d)
{
	d->entries = tern_store_dbi(s, first);
	d->meta = tern_store_dbi(s, first + 1);
	d->checkpoints = tern_store_dbi(s, first + 2);
	d->subtrees = tern_store_dbi(s, first + 3);
}

/* --- the complete subtrees ------------------------------------------------------------ */

/* How many complete subtrees n leaves make: each leaf is one, and each
 * carry of the count up to n closes one more. */
static uint64_t tree_nodes(uint64_t n)
{
	return 2 * n - (uint64_t)__builtin_popcountll(n);
}

/* The position of the complete subtree of leaves [start, end): leaf end - 1
 * closes it, after the smaller ones on its way up. */
static uint64_t tree_pos(uint64_t start, uint64_t end)
{
	int level = __builtin_ctzll(end - start);

	return tree_nodes(end) - 1 - (uint64_t)(__builtin_ctzll(end) - level);
}

/* The number of leaves whose subtrees are all stored. Each append stores its
 * leaf's in one transaction, so the count stored is tree_nodes() of it. */
static int tree_covered(MDB_txn *txn, const tern_audit_dbs *d, uint64_t *n)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t count, lo = 0, hi;
	int rc;

	*n = 0;
	if (d->subtrees == 0)
		return TERN_OK;
	if ((rc = mdb_cursor_open(txn, d->subtrees, &c)) != 0)
		return MDB(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read audit subtrees");
	if (k.mv_size != 8 || (count = tern_be64_get(k.mv_data) + 1) > (uint64_t)1 << 62)
		return tern_fail(TERN_EMALFORMED, "damaged audit subtrees");
	/* tree_nodes() grows with n and tree_nodes(count) >= count. */
	for (hi = count; lo < hi;) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (tree_nodes(mid) < count)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (tree_nodes(lo) != count)
		return tern_fail(TERN_EMALFORMED, "damaged audit subtrees: %llu stored",
		                 (unsigned long long)count);
	*n = lo;
	return TERN_OK;
}

static int tree_get(MDB_txn *txn, const tern_audit_dbs *d, uint64_t start, uint64_t end,
                    tern_hash out)
{
	uint8_t kb[8];
	MDB_val k = {8, kb}, v;
	int rc;

	tern_be64_put(kb, tree_pos(start, end));
	rc = mdb_get(txn, d->subtrees, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != TERN_HASH_LEN))
		return tern_fail(TERN_EMALFORMED, "the audit subtree of entries %llu to %llu is %s",
		                 (unsigned long long)start, (unsigned long long)end,
		                 rc ? "missing" : "damaged");
	if (rc != 0)
		return MDB(rc, "read audit subtree");
	memcpy(out, v.mv_data, TERN_HASH_LEN);
	return TERN_OK;
}

static int tree_put(MDB_txn *txn, const tern_audit_dbs *d, uint64_t pos, const tern_hash h)
{
	uint8_t kb[8];
	MDB_val k = {8, kb}, v = {TERN_HASH_LEN, (void *)h};

	tern_be64_put(kb, pos);
	return MDB(mdb_put(txn, d->subtrees, &k, &v, MDB_APPEND), "store audit subtree");
}

/* Adds leaf to f, merging the subtrees it completes; with store, also stores
 * the leaf and each of those subtrees, which come next in position order. */
static int frontier_add(MDB_txn *txn, const tern_audit_dbs *d, int store, struct frontier *f,
                        const tern_hash leaf)
{
	uint64_t pos = tree_nodes(f->size);
	tern_hash h;
	int rc;

	memcpy(h, leaf, TERN_HASH_LEN);
	if (store && (rc = tree_put(txn, d, pos++, h)) != TERN_OK)
		return rc;
	/* Each trailing 1 bit of the old size is a subtree the new leaf completes. */
	for (uint64_t s = f->size; s & 1; s >>= 1) {
		tern_merkle_node_hash(f->h[--f->n], h, h);
		if (store && (rc = tree_put(txn, d, pos++, h)) != TERN_OK)
			return rc;
	}
	memcpy(f->h[f->n++], h, TERN_HASH_LEN);
	f->size++;
	return TERN_OK;
}

/* Reads entries g->size to end - 1 into g, the frontier of the first
 * g->size entries, which becomes that of the first end; with store, stores
 * each one's leaf and the subtrees it closes (g->size entries' subtrees must
 * be stored already). */
static int subtrees_add(MDB_txn *txn, const tern_audit_dbs *d, int store, struct frontier *g,
                        uint64_t end)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t kb[8];
	tern_hash h;
	int rc;

	if (g->size >= end)
		return TERN_OK;
	if ((rc = mdb_cursor_open(txn, d->entries, &c)) != 0)
		return MDB(rc, "cursor");
	tern_be64_put(kb, g->size);
	k = (MDB_val){8, kb};
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
	while (g->size < end) {
		if (rc != 0 || k.mv_size != 8 || tern_be64_get(k.mv_data) != g->size) {
			rc = rc != 0 && rc != MDB_NOTFOUND
			         ? MDB(rc, "read audit entry")
			         : tern_fail(TERN_EMALFORMED, "audit entry %llu is missing",
			                     (unsigned long long)g->size);
			goto out;
		}
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, h);
		if ((rc = frontier_add(txn, d, store, g, h)) != TERN_OK)
			goto out;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	rc = TERN_OK;
out:
	mdb_cursor_close(c);
	return rc;
}

/* The entries read back into got must hash to the frontier the checkpoints
 * were signed from, or subtrees made from them would give proofs that do
 * not match those checkpoints. */
static int frontier_check(const struct frontier *got, const struct frontier *head)
{
	if (got->size == head->size && got->n == head->n &&
	    memcmp(got->h, head->h, (size_t)got->n * TERN_HASH_LEN) == 0)
		return TERN_OK;
	return tern_fail(TERN_EMALFORMED,
	                 "the audit log's entries do not hash to its frontier: the log is damaged");
}

/* The frontier of the first n leaves, from the stored subtrees. */
static int tree_frontier(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, struct frontier *f)
{
	uint64_t off = 0;
	int rc;

	memset(f, 0, sizeof(*f));
	for (int k = 63; k >= 0; k--) {
		uint64_t span = (uint64_t)1 << k;
		if (!(n & span))
			continue;
		if ((rc = tree_get(txn, d, off, off + span, f->h[f->n++])) != TERN_OK)
			return rc;
		off += span;
	}
	f->size = n;
	return TERN_OK;
}

int tern_audit_append(MDB_txn *txn, const tern_audit_dbs *d, const Tern__V1__AuditEntry *e)
{
	struct frontier f;
	uint8_t kb[8], *buf = NULL;
	uint64_t covered;
	size_t len;
	tern_hash h;
	MDB_val k, v;
	int rc, store = 0;

	if ((rc = frontier_get(txn, d, &f)) != TERN_OK ||
	    (rc = tree_covered(txn, d, &covered)) != TERN_OK)
		return rc;
	if (covered > f.size)
		return tern_fail(TERN_EMALFORMED,
		                 "the audit subtrees cover %llu entries, the log holds %llu",
		                 (unsigned long long)covered, (unsigned long long)f.size);
	if ((rc = tern_pb_pack(&e->base, &buf, &len)) != TERN_OK)
		return rc;
	tern_be64_put(kb, f.size);
	k = (MDB_val){8, kb};
	v = (MDB_val){len, buf};
	if ((rc = mdb_put(txn, d->entries, &k, &v, MDB_APPEND)) != 0) {
		rc = MDB(rc, "append audit entry");
		goto out;
	}
	tern_merkle_leaf_hash(buf, len, h);
	/* The subtree hashes are stored SUBTREE_BATCH entries at a time, not
	 * with each entry: every commit that writes the subtrees' B-tree writes
	 * its path to the root (3 pages from some 10,000 entries), about a sixth
	 * of what one message's commit wrote. Proofs hash the entries of the
	 * uncovered tail (fewer than SUBTREE_BATCH). A log far behind (written by
	 * an older binary or a tool while its daemon was stopped) is left to
	 * tern_audit_backfill, in bounded transactions, at the next start. */
	if (d->subtrees != 0 && f.size + 1 - covered >= SUBTREE_BATCH &&
	    f.size - covered <= SUBTREE_CATCHUP_MAX) {
		struct frontier g;
		if ((rc = tree_frontier(txn, d, covered, &g)) != TERN_OK ||
		    (rc = subtrees_add(txn, d, 1, &g, f.size)) != TERN_OK ||
		    (rc = frontier_check(&g, &f)) != TERN_OK)
			goto out;
		store = 1; /* and this entry's: none is left behind */
	}
	if ((rc = frontier_add(txn, d, store, &f, h)) != TERN_OK)
		goto out;
	rc = frontier_put(txn, d, &f);
out:
	free(buf);
	return rc;
}

#define BACKFILL_BATCH 65536 /* entries per transaction: a few MiB of dirty pages */

struct backfill {
	const tern_audit_dbs *d;
	uint64_t done, size;
};

static int backfill_apply(MDB_txn *txn, void *arg)
{
	struct backfill *b = arg;
	struct frontier head, f;
	uint64_t end;
	int rc;

	if ((rc = frontier_get(txn, b->d, &head)) != TERN_OK ||
	    (rc = tree_covered(txn, b->d, &b->done)) != TERN_OK)
		return rc;
	b->size = head.size;
	if (b->done > head.size)
		return tern_fail(TERN_EMALFORMED,
		                 "the audit subtrees cover %llu entries, the log holds %llu",
		                 (unsigned long long)b->done, (unsigned long long)head.size);
	if (b->done == head.size)
		return TERN_OK;
	if ((rc = tree_frontier(txn, b->d, b->done, &f)) != TERN_OK)
		return rc;
	end = head.size - b->done > BACKFILL_BATCH ? b->done + BACKFILL_BATCH : head.size;
	if ((rc = subtrees_add(txn, b->d, 1, &f, end)) != TERN_OK)
		return rc;
	if (end == head.size && (rc = frontier_check(&f, &head)) != TERN_OK)
		return rc;
	b->done = end;
	return TERN_OK;
}

int tern_audit_backfill(tern_store *s, const tern_audit_dbs *d)
{
	struct backfill b = {d, 0, 0};
	struct frontier head;
	MDB_txn *txn;
	int rc;

	/* Looked at first in a read transaction: a store that is up to date
	 * (every start but one) costs no write. */
	if ((rc = tern_store_read_begin(s, &txn)) != TERN_OK)
		return rc;
	if ((rc = frontier_get(txn, d, &head)) == TERN_OK)
		rc = tree_covered(txn, d, &b.done);
	/* Behind by less than a batch is how appends leave it: that tail is
	 * checked here, read only, so that a damaged one stops the start as
	 * the backfill's check does, not the append that would store it. */
	if (rc == TERN_OK && b.done < head.size && head.size - b.done < SUBTREE_BATCH) {
		struct frontier g;
		if ((rc = tree_frontier(txn, d, b.done, &g)) == TERN_OK &&
		    (rc = subtrees_add(txn, d, 0, &g, head.size)) == TERN_OK)
			rc = frontier_check(&g, &head);
		mdb_txn_abort(txn);
		return rc;
	}
	mdb_txn_abort(txn);
	if (rc != TERN_OK || b.done == head.size)
		return rc;
	log_info("audit log: storing the subtree hashes of entries %llu to %llu (a store from "
	         "before they were kept; this is done once)",
	         (unsigned long long)b.done, (unsigned long long)head.size);
	do {
		if ((rc = tern_store_write(s, backfill_apply, &b)) != TERN_OK)
			return rc;
		log_info("audit log: subtree hashes stored for %llu of %llu entries",
		         (unsigned long long)b.done, (unsigned long long)b.size);
	} while (b.done < b.size);
	return TERN_OK;
}

int tern_audit_head(MDB_txn *txn, const tern_audit_dbs *d, uint64_t *size, tern_hash root)
{
	struct frontier f;
	int rc = frontier_get(txn, d, &f);

	if (rc != TERN_OK)
		return rc;
	*size = f.size;
	frontier_root(&f, root);
	return TERN_OK;
}

int tern_audit_latest_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, char **note, uint64_t *size)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, d->checkpoints, &c)) != 0)
		return MDB(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8) {
		*size = tern_be64_get(k.mv_data);
		*note = strndup(v.mv_data, v.mv_size);
		rc = *note ? TERN_OK : TERN_ENOMEM;
	} else {
		rc = rc == MDB_NOTFOUND ? TERN_ENOENT : MDB(rc, "read checkpoint");
	}
	mdb_cursor_close(c);
	return rc;
}

int tern_audit_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, const char *origin,
                          const tern_signkey *key, int force, uint64_t *size)
{
	char *body = NULL, *note = NULL, *last = NULL;
	uint64_t lsize = 0;
	uint8_t kb[8];
	tern_hash root;
	MDB_val k, v;
	int rc;

	if ((rc = tern_audit_head(txn, d, size, root)) != TERN_OK)
		return rc;
	if (tern_audit_latest_checkpoint(txn, d, &last, &lsize) == TERN_OK) {
		free(last);
		/* An idle log is still re-signed (force) so a quiet period cannot
		 * hide a truncation; a checkpoint of the same size replaces the old. */
		if (lsize == *size && !force)
			return TERN_OK;
	}
	if ((rc = tern_checkpoint_format(origin, *size, root, &body)) != TERN_OK)
		return rc;
	rc = tern_note_sign(body, origin, key, &note);
	free(body);
	if (rc != TERN_OK)
		return rc;
	tern_be64_put(kb, *size);
	k = (MDB_val){8, kb};
	v = (MDB_val){strlen(note), note};
	/* Keyed by the log's size, which only grows; a checkpoint of the same
	 * size replaces the last one, by the plain put. */
	rc = MDB(tern_store_put_tail(txn, d->checkpoints, &k, &v, 0), "store checkpoint");
	free(note);
	return rc;
}

/* --- proofs ------------------------------------------------------------------------- */

struct tree_src {
	MDB_txn *txn;
	const tern_audit_dbs *d;
	uint64_t covered; /* leaves whose subtrees are stored */
};

static int tree_src_init(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, struct tree_src *t)
{
	struct frontier f;
	int rc;

	if ((rc = frontier_get(txn, d, &f)) != TERN_OK)
		return rc;
	if (n > f.size)
		return tern_fail(TERN_ENOENT, "the audit log holds %llu entries, not %llu",
		                 (unsigned long long)f.size, (unsigned long long)n);
	t->txn = txn;
	t->d = d;
	return tree_covered(txn, d, &t->covered);
}

/* The root of the complete subtree of entries [start, end), hashed from the
 * entries as a cursor reads them. */
static int entries_root(const struct tree_src *t, uint64_t start, uint64_t end, tern_hash out)
{
	struct frontier f;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t kb[8];
	tern_hash h;
	int rc;

	memset(&f, 0, sizeof(f));
	if ((rc = mdb_cursor_open(t->txn, t->d->entries, &c)) != 0)
		return MDB(rc, "cursor");
	tern_be64_put(kb, start);
	k = (MDB_val){8, kb};
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
	for (uint64_t i = start; i < end; i++) {
		if (rc != 0 || k.mv_size != 8 || tern_be64_get(k.mv_data) != i) {
			rc = rc != 0 && rc != MDB_NOTFOUND
			         ? MDB(rc, "read audit entry")
			         : tern_fail(TERN_EMALFORMED, "audit entry %llu is missing",
			                     (unsigned long long)i);
			goto out;
		}
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, h);
		frontier_add(t->txn, t->d, 0, &f, h); /* cannot fail without store */
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	/* end - start is a power of two: one subtree is left. */
	memcpy(out, f.h[0], TERN_HASH_LEN);
	rc = TERN_OK;
out:
	mdb_cursor_close(c);
	return rc;
}

static int tree_subtree(void *ctx, uint64_t start, uint64_t end, tern_hash out)
{
	const struct tree_src *t = ctx;
	tern_hash l, r;
	uint64_t mid;
	int rc;

	if (end <= t->covered)
		return tree_get(t->txn, t->d, start, end, out);
	if (start >= t->covered)
		return entries_root(t, start, end, out);
	/* Partly stored: its halves are complete subtrees too. */
	mid = start + (end - start) / 2;
	if ((rc = tree_subtree(ctx, start, mid, l)) != TERN_OK ||
	    (rc = tree_subtree(ctx, mid, end, r)) != TERN_OK)
		return rc;
	tern_merkle_node_hash(l, r, out);
	return TERN_OK;
}

int tern_audit_inclusion_proof(MDB_txn *txn, const tern_audit_dbs *d, uint64_t index, uint64_t n,
                               tern_hash *proof, size_t *len)
{
	struct tree_src t;
	int rc;

	*len = 0;
	if ((rc = tree_src_init(txn, d, n, &t)) != TERN_OK)
		return rc;
	return tern_merkle_inclusion_proof_cb(tree_subtree, &t, n, index, proof, len);
}

int tern_audit_consistency_proof(MDB_txn *txn, const tern_audit_dbs *d, uint64_t m, uint64_t n,
                                 tern_hash *proof, size_t *len)
{
	struct tree_src t;
	int rc;

	*len = 0;
	if ((rc = tree_src_init(txn, d, n, &t)) != TERN_OK)
		return rc;
	return tern_merkle_consistency_proof_cb(tree_subtree, &t, n, m, proof, len);
}

int tern_audit_root_at(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash root)
{
	struct tree_src t;
	int rc;

	if ((rc = tree_src_init(txn, d, n, &t)) != TERN_OK)
		return rc;
	return tern_merkle_root_cb(tree_subtree, &t, n, root);
}

int tern_audit_frontier_at(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash out[64],
                           int *count)
{
	struct tree_src t;
	uint64_t off = 0;
	int rc;

	*count = 0;
	if ((rc = tree_src_init(txn, d, n, &t)) != TERN_OK)
		return rc;
	for (int k = 63; k >= 0; k--) {
		uint64_t span = (uint64_t)1 << k;
		if (!(n & span))
			continue;
		if ((rc = tree_subtree(&t, off, off + span, out[(*count)++])) != TERN_OK)
			return rc;
		off += span;
	}
	return TERN_OK;
}

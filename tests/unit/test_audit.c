/* The audit log: the incremental root always equals the RFC 6962 root of
 * every entry so far, and checkpoints sign that head; every complete subtree
 * is stored as it forms, proofs made from them equal the RFC's, and a store
 * from before they were kept gets them filled in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/note.h>

#include "audit.h"
#include "testutil.h"

static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};

struct fx {
	char dir[128];
	tern_store *s;
	tern_audit_dbs d;
	int i;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (tt_mkdtemp(f->dir, sizeof(f->dir), "audit") != 0 ||
	    tern_store_open(f->dir, dbnames, 0, 0, &f->s) != TERN_OK)
		return -1;
	tern_audit_dbs_at(f->s, 0, &f->d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tern_store_close(&f->s);
	tt_rmtree(f->dir);
	free(f);
	return 0;
}

static int append_one(MDB_txn *txn, void *arg)
{
	struct fx *f = arg;
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	char id[40];

	snprintf(id, sizeof(id), "01a20598-0000-7000-8000-%012d", f->i);
	e.kind = TERN__V1__AUDIT_ENTRY__KIND__SENT;
	e.at = 1000 + f->i;
	e.message_id = id;
	e.peer = "sweden";
	e.case_id = "C-1";
	return tern_audit_append(txn, &f->d, &e);
}

/* Appends entries from f->i up to f->i + n in one transaction, with handles d
 * (an older binary's have no subtrees). */
struct adder {
	struct fx *f;
	tern_audit_dbs d;
	int n;
};

static int append_many(MDB_txn *txn, void *arg)
{
	struct adder *a = arg;
	struct fx g = *a->f;
	int rc;

	g.d = a->d;
	for (int k = 0; k < a->n; k++, g.i++)
		if ((rc = append_one(txn, &g)) != TERN_OK)
			return rc;
	return TERN_OK;
}

static void add(struct fx *f, const tern_audit_dbs *d, int n)
{
	struct adder a = {f, *d, n};

	assert_int_equal(tern_store_write(f->s, append_many, &a), TERN_OK);
	f->i += n;
}

/* The leaf hashes of the first n entries, read back. */
static tern_hash *leaves_of(struct fx *f, uint64_t n)
{
	tern_hash *leaves = malloc((n + 1) * sizeof(*leaves));
	MDB_txn *txn;
	MDB_val k, v;
	uint8_t kb[8];

	assert_non_null(leaves);
	assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
	for (uint64_t i = 0; i < n; i++) {
		tern_be64_put(kb, i);
		k = (MDB_val){8, kb};
		assert_int_equal(mdb_get(txn, f->d.entries, &k, &v), 0);
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, leaves[i]);
	}
	mdb_txn_abort(txn);
	return leaves;
}

/* Every complete subtree of the first n leaves is stored, in the order the
 * log closes them: leaf j closes the subtrees of 2^L leaves ending at j for
 * every L up to the number of trailing 1 bits of j. */
static void check_subtrees(struct fx *f, const tern_hash *leaves, uint64_t n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t pos = 0;
	tern_hash want;

	assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, f->d.subtrees, &c), 0);
	for (uint64_t j = 0; j < n; j++) {
		for (int l = 0; l == 0 || ((j + 1) & (((uint64_t)1 << l) - 1)) == 0; l++) {
			uint64_t span = (uint64_t)1 << l;
			assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_NEXT), 0);
			assert_int_equal(k.mv_size, 8);
			assert_true(tern_be64_get(k.mv_data) == pos);
			assert_int_equal(v.mv_size, TERN_HASH_LEN);
			tern_merkle_root(leaves + j + 1 - span, span, want);
			assert_memory_equal(v.mv_data, want, TERN_HASH_LEN);
			pos++;
		}
	}
	/* Two per leaf, less one per set bit of n: nothing else. */
	assert_true(pos == 2 * n - (uint64_t)__builtin_popcountll(n));
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_NEXT), MDB_NOTFOUND);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
}

/* How many entries the stored subtrees cover (every subtree of the first n
 * entries is 2n - popcount(n) hashes). */
static uint64_t covered_of(struct fx *f)
{
	MDB_txn *txn;
	MDB_stat st;
	uint64_t n = 0;

	assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
	assert_int_equal(mdb_stat(txn, f->d.subtrees, &st), 0);
	mdb_txn_abort(txn);
	while (2 * n - (uint64_t)__builtin_popcountll(n) < st.ms_entries)
		n++;
	assert_true(2 * n - (uint64_t)__builtin_popcountll(n) == st.ms_entries);
	return n;
}

static int around(uint64_t x, uint64_t n)
{
	if (x < 3 || x + 2 > n || x == n / 2 || x == n / 3)
		return 1;
	for (int k = 2; k < 63; k++)
		if (x + 1 >= (uint64_t)1 << k && x <= ((uint64_t)1 << k) + 1)
			return 1;
	return 0;
}

/* Proofs and roots read from d equal those made from the leaf hashes, for
 * sizes around the powers of two and others, and verify. */
static void check_proofs(struct fx *f, const tern_audit_dbs *d, const tern_hash *leaves,
                         uint64_t size)
{
	tern_hash got[TERN_MERKLE_MAX_PROOF], want[TERN_MERKLE_MAX_PROOF], rn, rm, r;
	tern_hash front[64];
	size_t glen, wlen;
	int count;
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
	for (uint64_t n = 1; n <= size; n++) {
		if (!around(n, size))
			continue;
		tern_merkle_root(leaves, n, rn);
		assert_int_equal(tern_audit_root_at(txn, d, n, r), TERN_OK);
		assert_memory_equal(r, rn, TERN_HASH_LEN);
		assert_int_equal(tern_audit_frontier_at(txn, d, n, front, &count), TERN_OK);
		assert_int_equal(count, __builtin_popcountll(n));
		for (uint64_t m = 1; m <= n; m++) {
			if (!around(m, n))
				continue;
			assert_int_equal(tern_audit_consistency_proof(txn, d, m, n, got, &glen),
			                 TERN_OK);
			assert_int_equal(tern_merkle_consistency_proof(leaves, n, m, want, &wlen),
			                 TERN_OK);
			assert_int_equal(glen, wlen);
			assert_memory_equal(got, want, wlen * TERN_HASH_LEN);
			tern_merkle_root(leaves, m, rm);
			assert_int_equal(tern_merkle_verify_consistency(
			                     m, n, rm, rn, (const tern_hash *)got, glen),
			                 TERN_OK);
		}
		for (uint64_t i = 0; i < n; i++) {
			if (!around(i, n))
				continue;
			assert_int_equal(tern_audit_inclusion_proof(txn, d, i, n, got, &glen),
			                 TERN_OK);
			assert_int_equal(tern_merkle_inclusion_proof(leaves, n, i, want, &wlen),
			                 TERN_OK);
			assert_int_equal(glen, wlen);
			assert_memory_equal(got, want, wlen * TERN_HASH_LEN);
			assert_int_equal(tern_merkle_verify_inclusion(
			                     i, n, leaves[i], (const tern_hash *)got, glen, rn),
			                 TERN_OK);
		}
	}
	/* Nothing past the log; the usual limits on m and the index. */
	assert_int_equal(tern_audit_consistency_proof(txn, d, 1, size + 1, got, &glen),
	                 TERN_ENOENT);
	assert_int_equal(tern_audit_inclusion_proof(txn, d, 0, size + 1, got, &glen), TERN_ENOENT);
	assert_int_equal(tern_audit_consistency_proof(txn, d, size + 1, size, got, &glen),
	                 TERN_EINVAL);
	assert_int_equal(tern_audit_consistency_proof(txn, d, 0, size, got, &glen), TERN_EINVAL);
	assert_int_equal(tern_audit_inclusion_proof(txn, d, size, size, got, &glen), TERN_EINVAL);
	mdb_txn_abort(txn);
}

static void test_subtrees_and_proofs(void **state)
{
	struct fx *f = *state;
	tern_hash *leaves;

	/* Transactions of various sizes, as a daemon's batches are. */
	for (int n = 1; f->i < 1000; n = n * 3 % 97 + 1)
		add(f, &f->d, f->i + n > 1000 ? 1000 - f->i : n);
	leaves = leaves_of(f, 1000);
	check_subtrees(f, leaves, 768); /* stored 256 entries at a time */
	assert_true(covered_of(f) == 768);
	check_proofs(f, &f->d, leaves, 1000); /* the tail from its entries */
	free(leaves);
}

/* One entry per transaction, as with one message in flight: the subtrees
 * are stored a batch at a time, never more than 255 entries behind, so most
 * commits leave their B-tree alone; proofs across the boundary are right. */
static void test_subtrees_stored_in_batches(void **state)
{
	struct fx *f = *state;
	tern_hash *leaves;
	int writes = 0;
	uint64_t before = 0;

	for (int i = 0; i < 1100; i++) {
		uint64_t c;
		add(f, &f->d, 1);
		c = covered_of(f);
		assert_true(c <= (uint64_t)f->i && (uint64_t)f->i - c < 256);
		writes += c != before;
		before = c;
	}
	assert_int_equal(writes, 4); /* at 256, 512, 768 and 1024 entries */
	leaves = leaves_of(f, 1100);
	check_subtrees(f, leaves, 1024);
	check_proofs(f, &f->d, leaves, 1100);
	/* A start does not store a tail shorter than a batch: appends will. */
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK);
	assert_true(covered_of(f) == 1024);
	free(leaves);
}

static int drop_subtrees(MDB_txn *txn, void *arg)
{
	struct fx *f = arg;
	return tern_store_mdb_err(mdb_drop(txn, f->d.subtrees, 0), "drop");
}

/* A log whose subtrees were lost (or never kept) still proves, from its
 * entries, and the backfill puts them all back. */
static void test_backfill(void **state)
{
	struct fx *f = *state;
	tern_hash *leaves;

	add(f, &f->d, 700);
	assert_int_equal(tern_store_write(f->s, drop_subtrees, f), TERN_OK);
	tern_store_close(&f->s);
	assert_int_equal(tern_store_open(f->dir, dbnames, 0, 0, &f->s), TERN_OK);
	tern_audit_dbs_at(f->s, 0, &f->d);
	leaves = leaves_of(f, 700);
	check_proofs(f, &f->d, leaves, 700);
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK);
	check_subtrees(f, leaves, 700);
	check_proofs(f, &f->d, leaves, 700);
	/* Up to date: nothing to do. */
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK);
	check_subtrees(f, leaves, 700);
	free(leaves);
}

/* A store written before the subtrees were kept: read-only views prove from
 * the entries; the daemon's open creates and fills the database; entries an
 * older binary appends after that are caught up at the next open, and proofs
 * that straddle the stored and the missing part still come out right. */
static void test_store_from_before(void **state)
{
	static const char *const old_names[] = {"audit", "audit_meta", "audit_checkpoints", NULL};
	struct fx *f = *state;
	tern_audit_dbs old;
	tern_hash *leaves;

	tern_store_close(&f->s);
	tt_rmtree(f->dir);
	assert_int_equal(tern_store_open(f->dir, old_names, 0, 0, &f->s), TERN_OK);
	old = (tern_audit_dbs){tern_store_dbi(f->s, 0), tern_store_dbi(f->s, 1),
	                       tern_store_dbi(f->s, 2), 0};
	f->d = old;
	add(f, &old, 600);
	tern_store_close(&f->s);

	assert_int_equal(tern_store_open(f->dir, dbnames, TERN_STORE_RDONLY, 0, &f->s), TERN_OK);
	tern_audit_dbs_at(f->s, 0, &f->d);
	assert_true(f->d.subtrees == 0);
	leaves = leaves_of(f, 600);
	check_proofs(f, &f->d, leaves, 600);
	free(leaves);
	tern_store_close(&f->s);

	assert_int_equal(tern_store_open(f->dir, dbnames, 0, 0, &f->s), TERN_OK);
	tern_audit_dbs_at(f->s, 0, &f->d);
	assert_true(f->d.subtrees != 0);
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK);
	old.entries = f->d.entries;
	old.meta = f->d.meta;
	old.checkpoints = f->d.checkpoints;
	add(f, &old, 400); /* an older binary: no subtrees */
	leaves = leaves_of(f, 1000);
	check_subtrees(f, leaves, 600);
	check_proofs(f, &f->d, leaves, 1000);
	free(leaves);
	add(f, &f->d, 1); /* behind by a few batches: this append catches up */
	leaves = leaves_of(f, 1001);
	check_subtrees(f, leaves, 1001);
	check_proofs(f, &f->d, leaves, 1001);
	free(leaves);
	/* Far behind (an older binary ran long): appends leave it to the
	 * backfill at the next start, which works in bounded transactions. */
	add(f, &old, 5000);
	add(f, &f->d, 1);
	assert_true(covered_of(f) == 1001);
	leaves = leaves_of(f, 6002);
	check_proofs(f, &f->d, leaves, 6002);
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK);
	check_subtrees(f, leaves, 6002);
	check_proofs(f, &f->d, leaves, 6002);
	free(leaves);
}

static int damage_entry(MDB_txn *txn, void *arg)
{
	struct fx *f = arg;
	uint8_t kb[8];
	MDB_val k = {8, kb}, v = {5, "other"};

	tern_be64_put(kb, 5);
	return tern_store_mdb_err(mdb_put(txn, f->d.entries, &k, &v, 0), "put");
}

/* Entries that do not hash to the frontier the checkpoints were signed
 * from are not made into subtrees. */
static void test_backfill_refuses_damaged_log(void **state)
{
	struct fx *f = *state;

	add(f, &f->d, 300); /* a backfill of less than a batch is left to appends */
	assert_int_equal(tern_store_write(f->s, drop_subtrees, f), TERN_OK);
	assert_int_equal(tern_store_write(f->s, damage_entry, f), TERN_OK);
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_EMALFORMED);
}

/* The same check when an append stores a batch, and at a start for a tail
 * shorter than a batch: entries that no longer hash to the frontier stop
 * the start and fail the append, rather than being made into subtrees that
 * proofs would then contradict the checkpoints with. */
static void test_append_refuses_damaged_tail(void **state)
{
	struct fx *f = *state;
	struct adder a = {f, f->d, 200};

	add(f, &f->d, 100);
	assert_true(covered_of(f) == 0);
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_OK); /* a sound tail */
	assert_int_equal(tern_store_write(f->s, damage_entry, f), TERN_OK);
	/* A start finds it (read only) rather than the 256th append. */
	assert_int_equal(tern_audit_backfill(f->s, &f->d), TERN_EMALFORMED);
	assert_int_equal(tern_store_write(f->s, append_many, &a), TERN_EMALFORMED);
	assert_true(covered_of(f) == 0);
}

static void test_root_matches_recomputation(void **state)
{
	struct fx *f = *state;
	tern_hash leaves[100], head, want;
	uint64_t size;
	MDB_txn *txn;

	for (f->i = 0; f->i < 100; f->i++) {
		MDB_val k, v;
		uint8_t kb[8];

		assert_int_equal(tern_store_write(f->s, append_one, f), TERN_OK);
		assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
		tern_be64_put(kb, (uint64_t)f->i);
		k = (MDB_val){8, kb};
		assert_int_equal(mdb_get(txn, f->d.entries, &k, &v), 0);
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, leaves[f->i]);
		assert_int_equal(tern_audit_head(txn, &f->d, &size, head), TERN_OK);
		mdb_txn_abort(txn);
		assert_true(size == (uint64_t)f->i + 1);
		tern_merkle_root(leaves, size, want);
		assert_memory_equal(head, want, TERN_HASH_LEN);
	}
}

struct cp {
	struct fx *f;
	tern_signkey *key;
	int force;
	uint64_t size;
};

static int checkpoint(MDB_txn *txn, void *arg)
{
	struct cp *c = arg;
	return tern_audit_checkpoint(txn, &c->f->d, "tern/test/unhcr", c->key, c->force, &c->size);
}

static void test_checkpoints(void **state)
{
	struct fx *f = *state;
	struct cp c = {f, NULL, 0, 0};
	char *note = NULL, *text = NULL, origin[128];
	uint64_t size, csize;
	tern_hash root, head;
	MDB_txn *txn;

	assert_int_equal(tern_signkey_generate(&c.key), TERN_OK);
	for (f->i = 0; f->i < 5; f->i++)
		assert_int_equal(tern_store_write(f->s, append_one, f), TERN_OK);
	assert_int_equal(tern_store_write(f->s, checkpoint, &c), TERN_OK);
	assert_true(c.size == 5);
	assert_int_equal(tern_store_read_begin(f->s, &txn), TERN_OK);
	assert_int_equal(tern_audit_latest_checkpoint(txn, &f->d, &note, &size), TERN_OK);
	assert_int_equal(tern_audit_head(txn, &f->d, &csize, head), TERN_OK);
	mdb_txn_abort(txn);
	assert_true(size == 5);
	assert_int_equal(tern_note_verify(note, strlen(note), "tern/test/unhcr",
	                                  tern_signkey_public(c.key), &text),
	                 TERN_OK);
	assert_int_equal(tern_checkpoint_parse(text, origin, &size, root), TERN_OK);
	assert_true(size == 5);
	assert_memory_equal(root, head, TERN_HASH_LEN);
	free(text);
	free(note);
	tern_signkey_free(&c.key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_root_matches_recomputation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_subtrees_and_proofs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_subtrees_stored_in_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backfill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_from_before, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backfill_refuses_damaged_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_append_refuses_damaged_tail, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

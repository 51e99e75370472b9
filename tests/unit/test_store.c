/* LMDB store: open, group commit, map growth on MDB_MAP_FULL, read-only view,
 * databases added later, puts at a tree's tail (tern_store_put_tail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>

#include "store.h"
#include "testutil.h"

static char dir[128];
static const char *const dbnames[] = {"queue", "meta", NULL};

static int setup(void **state)
{
	(void)state;
	return tt_mkdtemp(dir, sizeof(dir), "store");
}

static int teardown(void **state)
{
	(void)state;
	return tt_rmtree(dir);
}

struct batch {
	tern_store *store;
	uint64_t first, count;
	size_t value_len;
	int calls;
};

/* Appends count values under big-endian keys first..first+count-1. */
static int apply_batch(MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	uint8_t k[8], *v = calloc(1, b->value_len);
	int rc = 0;

	b->calls++;
	for (uint64_t i = 0; i < b->count && rc == 0; i++) {
		MDB_val key = {8, k}, val = {b->value_len, v};
		tern_be64_put(k, b->first + i);
		memset(v, (int)(b->first + i), b->value_len);
		rc = mdb_put(txn, tern_store_dbi(b->store, 0), &key, &val, MDB_APPEND);
	}
	free(v);
	return tern_store_mdb_err(rc, "mdb_put");
}

static int apply_fail(MDB_txn *txn, void *arg)
{
	uint8_t k[8];
	MDB_val key = {8, k}, val = {1, "x"};

	tern_be64_put(k, 999999);
	mdb_put(txn, tern_store_dbi(arg, 0), &key, &val, 0);
	return TERN_EINVALID;
}

static size_t count_entries(tern_store *s)
{
	MDB_txn *txn;
	MDB_stat st;

	assert_int_equal(tern_store_read_begin(s, &txn), TERN_OK);
	mdb_stat(txn, tern_store_dbi(s, 0), &st);
	mdb_txn_abort(txn);
	return st.ms_entries;
}

static void test_commit_and_reopen(void **state)
{
	tern_store *s = NULL;
	struct batch b = {0};
	MDB_txn *txn;
	MDB_val key, val;
	uint8_t k[8];

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	b = (struct batch){s, 1, 100, 64, 0};
	assert_int_equal(tern_store_write(s, apply_batch, &b), TERN_OK);
	tern_store_close(&s);
	assert_null(s);

	assert_int_equal(tern_store_open(dir, dbnames, TERN_STORE_RDONLY, 0, &s), TERN_OK);
	assert_int_equal(count_entries(s), 100);
	assert_int_equal(tern_store_read_begin(s, &txn), TERN_OK);
	tern_be64_put(k, 42);
	key = (MDB_val){8, k};
	assert_int_equal(mdb_get(txn, tern_store_dbi(s, 0), &key, &val), 0);
	assert_int_equal(((uint8_t *)val.mv_data)[0], 42);
	mdb_txn_abort(txn);
	/* A read-only view cannot write. */
	assert_int_equal(tern_store_write(s, apply_batch, &b), TERN_EINVAL);
	tern_store_close(&s);
}

static void test_failed_apply_writes_nothing(void **state)
{
	tern_store *s = NULL;

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	assert_int_equal(tern_store_write(s, apply_fail, s), TERN_EINVALID);
	assert_int_equal(count_entries(s), 0);
	tern_store_close(&s);
}

/* A batch larger than the map: the first attempt hits MDB_MAP_FULL, the
 * map grows, the batch is applied again from the start, and every entry is
 * there exactly once. */
static void test_map_grows_and_batch_is_redone(void **state)
{
	tern_store *s = NULL;
	struct batch b;
	size_t before;

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 1u << 20, &s), TERN_OK);
	before = tern_store_mapsize(s);
	b = (struct batch){s, 1, 3000, 1024, 0};
	assert_int_equal(tern_store_write(s, apply_batch, &b), TERN_OK);
	assert_true(b.calls >= 2);
	assert_true(tern_store_mapsize(s) > before);
	assert_int_equal(count_entries(s), 3000);
	tern_store_close(&s);

	/* The grown size is kept by the file: reopening with a small initial map works. */
	assert_int_equal(tern_store_open(dir, dbnames, 0, 1u << 20, &s), TERN_OK);
	assert_int_equal(count_entries(s), 3000);
	tern_store_close(&s);
}

static void test_rdonly_missing_store(void **state)
{
	tern_store *s = NULL;
	char path[200];

	(void)state;
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_not_equal(tern_store_open(path, dbnames, TERN_STORE_RDONLY, 0, &s), TERN_OK);
	assert_null(s);
}

/* A '?' database a store does not have yet: a read-only view opens without
 * it (dbi 0); a read-write open creates it; others stay required. */
static void test_database_added_later(void **state)
{
	static const char *const later[] = {"queue", "meta", "?added", NULL};
	static const char *const required[] = {"queue", "meta", "added2", NULL};
	tern_store *s = NULL;

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	tern_store_close(&s);
	assert_int_equal(tern_store_open(dir, later, TERN_STORE_RDONLY, 0, &s), TERN_OK);
	assert_true(tern_store_dbi(s, 2) == 0);
	assert_true(tern_store_dbi(s, 0) != 0);
	tern_store_close(&s);
	assert_int_equal(tern_store_open(dir, required, TERN_STORE_RDONLY, 0, &s), TERN_ENOENT);
	assert_null(s);
	assert_int_equal(tern_store_open(dir, later, 0, 0, &s), TERN_OK);
	assert_true(tern_store_dbi(s, 2) != 0);
	tern_store_close(&s);
	assert_int_equal(tern_store_open(dir, later, TERN_STORE_RDONLY, 0, &s), TERN_OK);
	assert_true(tern_store_dbi(s, 2) != 0 && tern_store_dbi(s, 2) != tern_store_dbi(s, 1));
	tern_store_close(&s);
}

static void test_be64_order(void **state)
{
	uint8_t a[8], b[8];

	(void)state;
	tern_be64_put(a, 255);
	tern_be64_put(b, 256);
	assert_true(memcmp(a, b, 8) < 0);
	assert_int_equal(tern_be64_get(b), 256);
	tern_be64_put(a, UINT64_MAX);
	assert_true(tern_be64_get(a) == UINT64_MAX);
}

/* tern_store_put_tail: keys given in order, into db 0 by put_tail or db 1 by
 * plain mdb_put, for comparing the trees' shapes. */
struct tail {
	tern_store *store;
	const uint64_t *keys;
	size_t n, value_len;
	int plain;
	unsigned int flags;
	uint8_t fill; /* the value's bytes; 0: the key's low byte */
	int rc;       /* the LMDB code of the last put */
};

static int apply_tail(MDB_txn *txn, void *arg)
{
	struct tail *t = arg;
	uint8_t k[8], *v = malloc(t->value_len);

	if (v == NULL)
		return TERN_ENOMEM;
	t->rc = 0;
	for (size_t i = 0; i < t->n && t->rc == 0; i++) {
		MDB_val key = {8, k}, val = {t->value_len, v};
		tern_be64_put(k, t->keys[i]);
		memset(v, t->fill ? t->fill : (int)(t->keys[i] & 0xff), t->value_len);
		t->rc = t->plain ? mdb_put(txn, tern_store_dbi(t->store, 1), &key, &val, t->flags)
		                 : tern_store_put_tail(txn, tern_store_dbi(t->store, 0), &key, &val,
		                                       t->flags);
	}
	free(v);
	/* MDB_KEYEXIST is an answer for the test to check, not a failure. */
	return t->rc == 0 || t->rc == MDB_KEYEXIST ? TERN_OK : tern_store_mdb_err(t->rc, "put");
}

static void tail_put(tern_store *s, const uint64_t *keys, size_t n, size_t value_len, int plain,
                     unsigned int flags, uint8_t fill, int expect_rc)
{
	struct tail t = {s, keys, n, value_len, plain, flags, fill, 0};

	assert_int_equal(tern_store_write(s, apply_tail, &t), TERN_OK);
	assert_int_equal(t.rc, expect_rc);
}

/* The keys of db index, in order, into out (at most max); their count. */
static size_t tail_keys(tern_store *s, int index, uint64_t *out, size_t max, uint8_t *first_byte)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	size_t n = 0;
	int rc;

	assert_int_equal(tern_store_read_begin(s, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, tern_store_dbi(s, index), &c), 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < max;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		assert_int_equal(k.mv_size, 8);
		first_byte[n] = v.mv_size ? *(uint8_t *)v.mv_data : 0;
		out[n++] = tern_be64_get(k.mv_data);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return n;
}

static MDB_stat tail_stat(tern_store *s, int index)
{
	MDB_txn *txn;
	MDB_stat st;

	assert_int_equal(tern_store_read_begin(s, &txn), TERN_OK);
	assert_int_equal(mdb_stat(txn, tern_store_dbi(s, index), &st), 0);
	mdb_txn_abort(txn);
	return st;
}

static void test_put_tail_in_order(void **state)
{
	tern_store *s;
	uint64_t keys[40], got[40];
	uint8_t first[40];

	(void)state;
	for (size_t i = 0; i < 40; i++)
		keys[i] = 100 + i * 3;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	/* Into an empty database, then one put per write, then many in one. */
	tail_put(s, keys, 1, 16, 0, 0, 0, 0);
	for (size_t i = 1; i < 10; i++)
		tail_put(s, keys + i, 1, 16, 0, 0, 0, 0);
	tail_put(s, keys + 10, 30, 16, 0, 0, 0, 0);
	assert_int_equal(tail_keys(s, 0, got, 40, first), 40);
	for (size_t i = 0; i < 40; i++) {
		assert_int_equal(got[i], keys[i]);
		assert_int_equal(first[i], keys[i] & 0xff);
	}
	tern_store_close(&s);
}

static void test_put_tail_out_of_order(void **state)
{
	tern_store *s;
	/* After 30: keys between others and below all take the plain put;
	 * 31, above the last again, appends. */
	const uint64_t keys[] = {10, 20, 30, 15, 5, 25, 31, 1};
	const uint64_t sorted[] = {1, 5, 10, 15, 20, 25, 30, 31};
	uint64_t got[8];
	uint8_t first[8];

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	tail_put(s, keys, 3, 16, 0, 0, 0, 0);
	for (size_t i = 3; i < 8; i++)
		tail_put(s, keys + i, 1, 16, 0, 0, 0, 0);
	assert_int_equal(tail_keys(s, 0, got, 8, first), 8);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(got[i], sorted[i]);
		assert_int_equal(first[i], sorted[i]);
	}
	tern_store_close(&s);
}

static void test_put_tail_overwrites(void **state)
{
	tern_store *s;
	const uint64_t keys[] = {1, 2, 3}, last[] = {3}, mid[] = {2}, next[] = {4};
	uint64_t got[4];
	uint8_t first[4];

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	tail_put(s, keys, 3, 16, 0, 0, 0xaa, 0);
	/* The last key itself (equal, not greater) and one before it. */
	tail_put(s, last, 1, 32, 0, 0, 0xbb, 0);
	tail_put(s, mid, 1, 8, 0, 0, 0xcc, 0);
	assert_int_equal(tail_keys(s, 0, got, 4, first), 3);
	assert_int_equal(first[0], 0xaa);
	assert_int_equal(first[1], 0xcc);
	assert_int_equal(first[2], 0xbb);
	/* The caller's flags still hold, as with mdb_put. */
	tail_put(s, last, 1, 16, 0, MDB_NOOVERWRITE, 0xdd, MDB_KEYEXIST);
	tail_put(s, next, 1, 16, 0, MDB_NOOVERWRITE, 0xdd, 0);
	assert_int_equal(tail_keys(s, 0, got, 4, first), 4);
	assert_int_equal(first[2], 0xbb);
	assert_int_equal(first[3], 0xdd);
	assert_int_equal(tail_stat(s, 0).ms_entries, 4);
	tern_store_close(&s);
}

/* The inenv case: ~1.3 KiB values under keys that only grow. Split in the
 * middle, each 4 KiB leaf is left with one value; appended, with two. */
static void test_put_tail_fills_leaves(void **state)
{
	enum { N = 400, VALUE = 1360 };
	tern_store *s;
	uint64_t keys[N];
	MDB_stat tail, plain;

	(void)state;
	for (size_t i = 0; i < N; i++)
		keys[i] = 1000 + i;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 0, &s), TERN_OK);
	for (size_t i = 0; i < N; i++) {
		tail_put(s, keys + i, 1, VALUE, 0, 0, 0, 0);
		tail_put(s, keys + i, 1, VALUE, 1, 0, 0, 0);
	}
	tail = tail_stat(s, 0);
	plain = tail_stat(s, 1);
	assert_int_equal(tail.ms_entries, N);
	assert_int_equal(plain.ms_entries, N);
	print_message("%d entries: %zu leaves appended, %zu split in the middle\n", N,
	              tail.ms_leaf_pages, plain.ms_leaf_pages);
	assert_true(tail.ms_leaf_pages * 10 <= (size_t)N * 6);
	assert_true(tail.ms_leaf_pages < plain.ms_leaf_pages);
	tern_store_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_apply_writes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_grows_and_batch_is_redone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rdonly_missing_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_database_added_later, setup, teardown),
	    cmocka_unit_test(test_be64_order),
	    cmocka_unit_test_setup_teardown(test_put_tail_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_tail_out_of_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_tail_overwrites, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_tail_fills_leaves, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

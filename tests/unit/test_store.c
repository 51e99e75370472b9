/* LMDB store: open, group commit, map growth on MDB_MAP_FULL, read-only view,
 * databases added later. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_apply_writes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_grows_and_batch_is_redone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rdonly_missing_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_database_added_later, setup, teardown),
	    cmocka_unit_test(test_be64_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* A store read from another thread while the map grows: the webhook pusher
 * (nodes/webhook.c) reads the node's store on its own thread, and the loop's
 * tern_store_write grows the map on MDB_MAP_FULL with mdb_env_set_mapsize,
 * which LMDB allows only while no transaction of the process is live (it
 * unmaps and maps the file again). A reader that holds a read transaction
 * then reads unmapped or remapped memory: a crash, or wrong bytes; one
 * opened with tern_store_thread_read_begin holds the map still. */
#include <pthread.h>
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
static const char *const dbnames[] = {"queue", NULL};

static int setup(void **state)
{
	(void)state;
	return tt_mkdtemp(dir, sizeof(dir), "storethr");
}

static int teardown(void **state)
{
	(void)state;
	return tt_rmtree(dir);
}

#define VALUE_LEN (64 * 1024)

struct shared {
	tern_store *store;
	int stop;
	long reads, bad;
};

struct batch {
	tern_store *store;
	uint64_t first, count;
};

static int apply_batch(MDB_txn *txn, void *arg)
{
	struct batch *b = arg;
	uint8_t k[8], *v = malloc(VALUE_LEN);
	int rc = 0;

	for (uint64_t i = 0; i < b->count && rc == 0; i++) {
		MDB_val key = {8, k}, val = {VALUE_LEN, v};
		tern_be64_put(k, b->first + i);
		memset(v, (int)((b->first + i) & 0xff), VALUE_LEN);
		rc = mdb_put(txn, tern_store_dbi(b->store, 0), &key, &val, MDB_APPEND);
	}
	free(v);
	return tern_store_mdb_err(rc, "mdb_put");
}

/* As the pusher does: a read transaction on this thread, every value read
 * and checked, aborted. */
static void *reader(void *arg)
{
	struct shared *sh = arg;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;

		if (tern_store_thread_read_begin(sh->store, &txn) != TERN_OK)
			continue;
		if (mdb_cursor_open(txn, tern_store_dbi(sh->store, 0), &c) == 0) {
			int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
			for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
				uint8_t want = (uint8_t)(tern_be64_get(k.mv_data) & 0xff);
				const uint8_t *p = v.mv_data;
				for (size_t i = 0; i < v.mv_size; i += 4096)
					if (p[i] != want)
						sh->bad++;
			}
			mdb_cursor_close(c);
		}
		tern_store_thread_read_end(sh->store, txn);
		sh->reads++;
	}
	return NULL;
}

static void test_grow_while_another_thread_reads(void **state)
{
	struct shared sh = {0};
	pthread_t t;
	size_t first_map;

	(void)state;
	assert_int_equal(tern_store_open(dir, dbnames, 0, 1u << 20, &sh.store), TERN_OK);
	first_map = tern_store_mapsize(sh.store);
	assert_int_equal(pthread_create(&t, NULL, reader, &sh), 0);
	for (uint64_t i = 0; i < 48; i++) {
		struct batch b = {sh.store, 1 + i * 16, 16};
		assert_int_equal(tern_store_write(sh.store, apply_batch, &b), TERN_OK);
	}
	__atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	assert_true(tern_store_mapsize(sh.store) >= 32 * first_map); /* it grew, several times */
	assert_true(sh.reads > 0);
	assert_int_equal(sh.bad, 0);
	tern_store_close(&sh.store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_grow_while_another_thread_reads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The audit log: the incremental root always equals the RFC 6962 root of
 * every entry so far, and checkpoints sign that head. */
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
	f->d = (tern_audit_dbs){tern_store_dbi(f->s, 0), tern_store_dbi(f->s, 1),
	                        tern_store_dbi(f->s, 2)};
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The trust mark: the newest directory version and CRL number a daemon put
 * in force, kept in its store so that neither goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>

#include "store.h"
#include "testutil.h"
#include "trustmark.h"

static char dir[128];
static const char *const dbnames[] = {"meta", NULL};
static tern_store *st;

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "trustmark") != 0)
		return -1;
	return tern_store_open(dir, dbnames, 0, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

static int raise_apply(MDB_txn *txn, void *arg)
{
	return tern_trustmark_raise(txn, tern_store_dbi(st, 0), arg);
}

static tern_trustmark stored(void)
{
	tern_trustmark m;
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(tern_trustmark_get(txn, tern_store_dbi(st, 0), &m), TERN_OK);
	mdb_txn_abort(txn);
	return m;
}

static void test_raise_never_lowers(void **state)
{
	tern_trustmark m = stored(), a = {3, 5}, lower = {2, 4}, mixed = {7, 1};

	(void)state;
	/* A new store has no mark: anything goes. */
	assert_true(m.directory_version == 0 && m.crl_number == -1);
	assert_int_equal(tern_store_write(st, raise_apply, &a), TERN_OK);
	m = stored();
	assert_true(m.directory_version == 3 && m.crl_number == 5);
	assert_int_equal(tern_store_write(st, raise_apply, &lower), TERN_OK);
	m = stored();
	assert_true(m.directory_version == 3 && m.crl_number == 5);
	/* Each number rises on its own. */
	assert_int_equal(tern_store_write(st, raise_apply, &mixed), TERN_OK);
	m = stored();
	assert_true(m.directory_version == 7 && m.crl_number == 5);
}

static void test_check_names_both_numbers(void **state)
{
	tern_trustmark floor = {4, 9}, same = {4, 9}, newer = {5, 10}, old_crl = {5, 8},
	               old_dir = {3, 9};
	const char *what = "x";

	(void)state;
	assert_int_equal(tern_trustmark_check(&same, &floor, &what), TERN_OK);
	assert_null(what);
	assert_int_equal(tern_trustmark_check(&newer, &floor, NULL), TERN_OK);
	assert_int_equal(tern_trustmark_check(&old_crl, NULL, NULL), TERN_OK);
	assert_int_equal(tern_trustmark_check(&old_crl, &floor, &what), TERN_EOLDER);
	assert_string_equal(what, "crl");
	assert_non_null(strstr(tern_errdetail(), "number 8, older than number 9"));
	assert_int_equal(tern_trustmark_check(&old_dir, &floor, &what), TERN_EOLDER);
	assert_string_equal(what, "directory");
	assert_non_null(strstr(tern_errdetail(), "version 3, older than version 4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raise_never_lowers),
	    cmocka_unit_test(test_check_names_both_numbers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

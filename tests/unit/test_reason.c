/* The reasons table: every reason has one code, used once; the library
 * errors a reason stands for share its code; the HTTP statuses come from the
 * table; docs/protocol.md carries the table as tern_reason_describe() writes
 * it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/reason.h>

#include "testutil.h"

static void test_every_reason_has_one_code(void **state)
{
	(void)state;
	assert_string_equal(tern_reason_code(TERN_REASON_NONE), "");
	for (int r = 1; r < TERN_REASON_COUNT; r++) {
		const tern_reason_info *i = tern_reason_info_of((tern_reason)r);
		tern_reason back;
		assert_int_equal(i->reason, r);
		assert_true(strlen(i->code) > 0);
		assert_true(strlen(i->description) > 10);
		assert_true(i->http_status >= 400 && i->http_status < 600);
		assert_int_equal(tern_reason_from_code(i->code, &back), TERN_OK);
		assert_int_equal(back, r); /* codes are unique: the first found is this one */
	}
	assert_int_equal(tern_reason_from_code("no-such-reason", &(tern_reason){0}), TERN_ENOENT);
	assert_int_equal(tern_reason_from_code("", &(tern_reason){0}), TERN_ENOENT);
	/* Out of range gives the NONE entry, not a crash. */
	assert_string_equal(tern_reason_code((tern_reason)9999), "");
}

static void test_errors_share_their_codes(void **state)
{
	static const int errs[] = {TERN_EMALFORMED, TERN_ETOOBIG,  TERN_EVERSION, TERN_EBADSIG,
	                           TERN_EUNKNOWN,   TERN_EREVOKED, TERN_ENOTRCPT, TERN_EDIGEST,
	                           TERN_ESKEW,      TERN_EDECRYPT, TERN_EEXPIRED, TERN_EINVALID,
	                           TERN_EROLE};

	(void)state;
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		tern_reason r = tern_reason_from_error(errs[i]);
		assert_int_not_equal(r, TERN_REASON_NONE);
		assert_string_equal(tern_reason_code(r), tern_errcode_name(errs[i]));
	}
	assert_int_equal(tern_reason_from_error(TERN_EIO), TERN_REASON_NONE);
}

static void test_http_statuses(void **state)
{
	(void)state;
	assert_int_equal(tern_reason_http_status("recipient-revoked"), 403);
	assert_int_equal(tern_reason_http_status("invalid-body"), 400);
	assert_int_equal(tern_reason_http_status(tern_errcode_name(TERN_ENOENT)), 404);
	assert_int_equal(tern_reason_http_status(tern_errcode_name(TERN_EIO)), 503);
	assert_int_equal(tern_reason_http_status(tern_errcode_name(TERN_ENOMEM)), 503);
	assert_int_equal(tern_reason_http_status("something-else"), 400);
}

static void test_docs_carry_the_table(void **state)
{
	char why[512];
	int rc = tt_docs_section("docs/protocol.md", "reasons", tern_reason_describe,
	                         "reasons-table.md", why, sizeof(why));

	(void)state;
	if (rc == 1)
		skip();
	if (rc != 0)
		fail_msg("%s", why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_reason_has_one_code),
	    cmocka_unit_test(test_errors_share_their_codes),
	    cmocka_unit_test(test_http_statuses),
	    cmocka_unit_test(test_docs_carry_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

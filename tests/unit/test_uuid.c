/* UUIDv7 message ids: RFC 9562 layout, canonical text, ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/uuid.h>

#include "util.h"

static void test_format(void **state)
{
	char id[37];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(tern_uuid_v7(id), TERN_OK);
		assert_int_equal(strlen(id), 36);
		assert_true(tern_uuid_valid(id));
		for (int j = 0; j < 36; j++) {
			char c = id[j];
			if (j == 8 || j == 13 || j == 18 || j == 23)
				assert_int_equal(c, '-');
			else
				assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
		}
		/* Version 7 in the 13th hex digit; variant 10 in the 17th (8, 9, a, b). */
		assert_int_equal(id[14], '7');
		assert_non_null(strchr("89ab", id[19]));
	}
}

static void test_timestamp(void **state)
{
	char id[37];
	int64_t before, after, t;

	(void)state;
	before = tern_now_ms();
	assert_int_equal(tern_uuid_v7(id), TERN_OK);
	after = tern_now_ms();
	assert_int_equal(tern_uuid_v7_time(id, &t), TERN_OK);
	/* The counter may carry into the next millisecond, never further. */
	assert_true(t >= before && t <= after + 1);
	assert_int_equal(tern_uuid_v7_time("00000000-0000-4000-8000-000000000000", &t),
	                 TERN_EINVAL);
	assert_int_equal(tern_uuid_v7_time("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", &t), TERN_OK);
	assert_int_equal(t, 0x017f22e279b0LL); /* RFC 9562 appendix A.6 example */
}

static void test_ordering(void **state)
{
	enum { N = 20000 };
	char(*ids)[37] = calloc(N, sizeof(*ids));
	int64_t t0, t1;

	(void)state;
	assert_non_null(ids);
	/* Many per millisecond: still strictly increasing, hence unique. */
	for (int i = 0; i < N; i++)
		assert_int_equal(tern_uuid_v7(ids[i]), TERN_OK);
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %d does not sort after id %d", i, i - 1);
	/* Across a real pause the timestamp moves on. */
	assert_int_equal(tern_uuid_v7_time(ids[N - 1], &t0), TERN_OK);
	{
		struct timespec ts = {0, 5 * 1000 * 1000};
		char later[37];
		nanosleep(&ts, NULL);
		assert_int_equal(tern_uuid_v7(later), TERN_OK);
		assert_int_equal(tern_uuid_v7_time(later, &t1), TERN_OK);
		assert_true(t1 > t0);
		assert_true(strcmp(later, ids[N - 1]) > 0);
	}
	free(ids);
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(tern_uuid_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"));
	assert_true(tern_uuid_valid("00000000-0000-0000-0000-000000000000"));
	assert_false(tern_uuid_valid(NULL));
	assert_false(tern_uuid_valid(""));
	assert_false(tern_uuid_valid("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")); /* upper case */
	assert_false(tern_uuid_valid("017f22e279b07cc398c4dc0c0c07398f"));     /* no hyphens */
	assert_false(tern_uuid_valid("{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}"));
	assert_false(tern_uuid_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398"));   /* short */
	assert_false(tern_uuid_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f0")); /* long */
	assert_false(tern_uuid_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398g"));
	assert_false(tern_uuid_valid("017f22e2_79b0-7cc3-98c4-dc0c0c07398f"));
	assert_false(tern_uuid_valid("017f22e2-79b0-7cc3-98c4-dc0c0c0739\n8"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_timestamp),
	    cmocka_unit_test(test_ordering),
	    cmocka_unit_test(test_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The node's HTTP query strings (nodes/http_json.c): RFC 3339 times, and a
 * query turned into a local API request or refused naming the argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>

#include "http_int.h"

static void test_time(void **state)
{
	static const char *const bad[] = {"yesterday",
	                                  "2026-12-06",
	                                  "2026-12-06T12:00:00",
	                                  "2026-12-06T12:00:00.Z",
	                                  "2026-13-01T00:00:00Z",
	                                  "2026-02-30T00:00:00Z",
	                                  "1969-12-31T23:59:59Z",
	                                  "2026-12-06T12:00:00+0100",
	                                  "2026-12-06T12:00:00Zjunk",
	                                  "2026-12-06 12:00:00Z",
	                                  "+026-12-06T12:00:00Z"};
	int64_t ms;

	(void)state;
	assert_int_equal(node_http_time_parse("1970-01-01T00:00:00Z", &ms), TERN_OK);
	assert_int_equal(ms, 0);
	assert_int_equal(node_http_time_parse("2026-12-06T12:21:09.818Z", &ms), TERN_OK);
	assert_int_equal(ms, 1796559669818);
	assert_int_equal(node_http_time_parse("2026-12-06T13:21:09.8184+01:00", &ms), TERN_OK);
	assert_int_equal(ms, 1796559669818);
	/* a '+' the client left unencoded, decoded as a space */
	assert_int_equal(node_http_time_parse("2026-12-06T14:21:09.818 02:00", &ms), TERN_OK);
	assert_int_equal(ms, 1796559669818);
	assert_int_equal(node_http_time_parse("2026-12-06t07:21:09.818-05:00", &ms), TERN_OK);
	assert_int_equal(ms, 1796559669818);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(node_http_time_parse(bad[i], &ms), TERN_EINVAL);
}

static const node_http_field fields[] = {
    {"caseId", "case_id", NHF_STRING, 0, 0, 0},
    {"since", "since", NHF_TIME, 0, 0, 0},
    {"limit", "limit", NHF_INT, 1, 1000, 0},
};

/* The field a query is refused for (a static copy), or NULL when taken. */
static const char *refused(const char *const *args, size_t n, json_t **req)
{
	static char field[64];
	tern_http_request in = {0};
	tern_http_response res = {0};
	json_t *p;

	for (size_t i = 0; i < n; i++) {
		in.arg_name[i] = args[2 * i];
		in.arg_value[i] = args[2 * i + 1];
	}
	in.nargs = n;
	*req = node_http_query(&res, &in, fields, sizeof(fields) / sizeof(fields[0]));
	if (*req) {
		assert_null(res.out);
		return NULL;
	}
	assert_int_equal(res.status, 400);
	p = json_loadb(res.out, res.outlen, 0, NULL);
	snprintf(field, sizeof(field), "%s", json_string_value(json_object_get(p, "field")) ?: "");
	json_decref(p);
	free(res.out);
	return field;
}

static void test_query(void **state)
{
	static const char *const ok[] = {"caseId", "A/1", "since", "2026-12-06T12:21:09.818Z",
	                                 "limit",  "7"};
	static const struct {
		const char *args[4];
		size_t n;
		const char *field;
	} bad[] = {
	    {{"case_id", "A"}, 1, "case_id"}, {{"caseId", ""}, 1, "caseId"},
	    {{"limit", "0"}, 1, "limit"},     {{"limit", "7x"}, 1, "limit"},
	    {{"limit", "-1"}, 1, "limit"},    {{"limit", "99999999999999999999"}, 1, "limit"},
	    {{"since", "today"}, 1, "since"}, {{"limit", "1", "limit", "2"}, 2, "limit"},
	};
	json_t *req;

	(void)state;
	assert_null(refused(ok, 3, &req));
	assert_string_equal(json_string_value(json_object_get(req, "case_id")), "A/1");
	assert_int_equal(json_integer_value(json_object_get(req, "since")), 1796559669818);
	assert_int_equal(json_integer_value(json_object_get(req, "limit")), 7);
	json_decref(req);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_string_equal(refused(bad[i].args, bad[i].n, &req), bad[i].field);
	{
		/* a name that is not UTF-8 is refused, not echoed */
		static const char *const latin1[] = {"caf\xe9", "1"};
		assert_string_equal(refused(latin1, 1, &req), "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The node's transfer and upload records read back (nodes/xfer_rec.c): what
 * the writers write passes with every field; a record the node did not write
 * (no sender, a chunk size of 0 or over TERN_ATTACH_CHUNK_MAX, a bad root,
 * an attachment index past the end, no size) is TERN_EMALFORMED. The same
 * readers fuzz_xfer drives; its regression inputs are these cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include <tern/attach.h>
#include <tern/error.h>

#include "xfer_rec.h"

#define ROOT "abababababababababababababababababababababababababababababababab"
#define SHA "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"

static json_t *att(json_int_t size, json_int_t chunk, const char *root, const char *sha)
{
	json_t *a = json_pack("{s:I, s:I, s:s}", "size", size, "chunk_size", chunk, "root", root);
	if (sha)
		json_object_set_new(a, "sha256", json_string(sha));
	return a;
}

/* As xin_record writes one: two attachments, fetching the second. */
static json_t *xin(json_t *a0)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:[o, o]}", "sender", "unhcr", "case_id",
	                 "C-1", "type", "case-referral", "until", (json_int_t)1795390000000, "att",
	                 (json_int_t)1, "have", (json_int_t)3, "atts", a0,
	                 att(5000000, 1 << 20, ROOT, SHA));
}

static int xin_rc(json_t *rec)
{
	struct node_xin_rec *r = malloc(sizeof(*r));
	int rc = node_xin_record_parse(rec, r);
	free(r);
	json_decref(rec);
	return rc;
}

static void test_xin(void **state)
{
	struct node_xin_rec *r = malloc(sizeof(*r));
	json_t *rec = xin(att(40000, 16384, ROOT, SHA));

	(void)state;
	assert_int_equal(node_xin_record_parse(rec, r), TERN_OK);
	assert_string_equal(r->sender, "unhcr");
	assert_int_equal(r->natt, 2);
	assert_int_equal(r->att, 1);
	assert_int_equal(r->have, 3);
	assert_int_equal(r->until, 1795390000000);
	assert_int_equal(r->atts[0].size, 40000);
	assert_int_equal(r->atts[1].chunk_size, 1 << 20);
	assert_int_equal(r->atts[0].root[0], 0xab);
	assert_int_equal(r->atts[1].sha256[31], 0xcd);
	json_decref(rec);
	free(r);

	assert_int_equal(xin_rc(xin(att(40000, 0, ROOT, SHA))), TERN_EMALFORMED);
	assert_int_equal(xin_rc(xin(att(40000, (json_int_t)TERN_ATTACH_CHUNK_MAX + 1, ROOT, SHA))),
	                 TERN_EMALFORMED);
	assert_int_equal(xin_rc(xin(att(0, 16384, ROOT, SHA))), TERN_EMALFORMED);
	assert_int_equal(xin_rc(xin(att(40000, 16384, "ab", SHA))), TERN_EMALFORMED);
	assert_int_equal(xin_rc(xin(att(40000, 16384, ROOT, NULL))), TERN_EMALFORMED);
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_del(rec, "sender");
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "att", json_integer(2));
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "atts", json_array());
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
}

static void test_xout(void **state)
{
	struct node_att atts[TERN_ATTACH_MAX_COUNT];
	size_t n = 0;
	int done = 0;
	json_t *rec =
	    json_pack("{s:[o], s:b}", "atts", att(1, TERN_ATTACH_CHUNK_MAX, ROOT, NULL), "done", 1);

	(void)state;
	assert_int_equal(node_xout_record_parse(rec, atts, &n, &done), TERN_OK);
	assert_int_equal(n, 1);
	assert_int_equal(done, 1);
	assert_int_equal(atts[0].chunk_size, TERN_ATTACH_CHUNK_MAX);
	json_decref(rec);
	rec = json_pack("{s:[o], s:b}", "atts", att(5, 0, ROOT, NULL), "done", 0);
	assert_int_equal(node_xout_record_parse(rec, atts, &n, &done), TERN_EMALFORMED);
	json_decref(rec);
	rec = json_pack("{s:[o], s:b}", "atts", att(5, 16384, "zz", NULL), "done", 0);
	assert_int_equal(node_xout_record_parse(rec, atts, &n, &done), TERN_EMALFORMED);
	json_decref(rec);
}

static void test_upload(void **state)
{
	uint64_t size = 0;
	int64_t expires = 0;
	json_t *rec = json_pack("{s:I, s:I}", "size", (json_int_t)40000, "expires",
	                        (json_int_t)1795390000000);

	(void)state;
	assert_int_equal(node_upload_record_parse(rec, &size, &expires), TERN_OK);
	assert_int_equal(size, 40000);
	assert_int_equal(expires, 1795390000000);
	json_decref(rec);
	rec = json_pack("{s:I}", "expires", (json_int_t)1);
	assert_int_equal(node_upload_record_parse(rec, &size, &expires), TERN_EMALFORMED);
	json_decref(rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xin),
	    cmocka_unit_test(test_xout),
	    cmocka_unit_test(test_upload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

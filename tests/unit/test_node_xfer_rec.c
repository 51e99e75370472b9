/* The node's transfer and upload records read back (nodes/xfer_rec.c), in
 * both forms: protobuf, as the node writes them now, and the JSON an earlier
 * release wrote. What the writers write passes with every field; a record
 * the node did not write (no sender, a chunk size of 0 or over
 * TERN_ATTACH_CHUNK_MAX, a bad root, an attachment index past the end, more
 * chunks than the attachment has, no size) is TERN_EMALFORMED; a shortage
 * is TERN_ENOMEM, never damage. The same readers fuzz_xfer drives; its
 * regression inputs are these cases. */
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

#include "failmalloc.h"
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

/* rec's bytes as the earlier release stored them (JSON_COMPACT). */
static char *dump(const json_t *rec)
{
	char *text = json_dumps(rec, JSON_COMPACT);

	assert_non_null(text);
	return text;
}

static int xin_parse(json_t *rec, struct node_xin_rec *r)
{
	char *text = dump(rec);
	int rc = node_xin_record_read(text, strlen(text), r);

	free(text);
	return rc;
}

static int xout_parse(json_t *rec, struct node_att *atts, size_t *n, int *done)
{
	char *text = dump(rec);
	int rc = node_xout_record_read(text, strlen(text), atts, n, done);

	free(text);
	return rc;
}

static int upload_parse(json_t *rec, uint64_t *size, int64_t *expires)
{
	char *text = dump(rec);
	int rc = node_upload_record_read(text, strlen(text), size, expires);

	free(text);
	return rc;
}

static int xin_rc(json_t *rec)
{
	struct node_xin_rec *r = malloc(sizeof(*r));
	int rc = xin_parse(rec, r);
	free(r);
	json_decref(rec);
	return rc;
}

static void test_xin(void **state)
{
	struct node_xin_rec *r = malloc(sizeof(*r));
	json_t *rec = xin(att(40000, 16384, ROOT, SHA));

	(void)state;
	assert_int_equal(xin_parse(rec, r), TERN_OK);
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
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "att", json_integer(-1));
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "have", json_string("3"));
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
	/* The second attachment has 5 chunks of 1 MiB. */
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "have", json_integer(6));
	assert_int_equal(xin_rc(rec), TERN_EMALFORMED);
	rec = xin(att(40000, 16384, ROOT, SHA));
	json_object_set_new(rec, "have", json_integer(5));
	assert_int_equal(xin_rc(rec), TERN_OK);
}

/* The protobuf form: the writers' attachments (node_xfer_atts_pb), packed. */
static uint8_t *xin_pb(const struct node_att *atts, size_t natt, uint32_t at, uint64_t have,
                       size_t *len)
{
	Tern__V1__TransferInRecord r = TERN__V1__TRANSFER_IN_RECORD__INIT;
	Tern__V1__TransferAttachment pb[TERN_ATTACH_MAX_COUNT], *ptrs[TERN_ATTACH_MAX_COUNT];
	uint8_t *buf;

	node_xfer_atts_pb(atts, natt, 1, pb, ptrs);
	r.sender = "unhcr";
	r.case_id = "C-1";
	r.type = "case-referral";
	r.until = 1795390000000;
	r.att = at;
	r.have = have;
	r.n_atts = natt;
	r.atts = ptrs;
	*len = protobuf_c_message_get_packed_size(&r.base);
	assert_non_null(buf = malloc(*len));
	assert_int_equal(protobuf_c_message_pack(&r.base, buf), *len);
	return buf;
}

static void test_xin_protobuf(void **state)
{
	struct node_att atts[2] = {{.size = 40000, .chunk_size = 16384},
	                           {.size = 5000000, .chunk_size = 1 << 20}};
	struct node_xin_rec *r = malloc(sizeof(*r));
	node_xin_pb *raw = NULL;
	size_t len;
	uint8_t *buf;

	(void)state;
	memset(atts[0].root, 0xab, 32);
	memset(atts[1].root, 0xab, 32);
	memset(atts[0].sha256, 0xcd, 32);
	memset(atts[1].sha256, 0xcd, 32);
	buf = xin_pb(atts, 2, 1, 3, &len);
	assert_int_not_equal(buf[0], '{');
	assert_int_equal(node_xin_record_read(buf, len, r), TERN_OK);
	assert_string_equal(r->sender, "unhcr");
	assert_int_equal(r->natt, 2);
	assert_int_equal(r->att, 1);
	assert_int_equal(r->have, 3);
	assert_int_equal(r->until, 1795390000000);
	assert_memory_equal(&r->atts[0], &atts[0], sizeof(atts[0]));
	assert_memory_equal(&r->atts[1], &atts[1], sizeof(atts[1]));
	/* Rewritten as chunks commit: the fields it does not check kept. */
	assert_int_equal(node_xin_record_decode(buf, len, &raw), TERN_OK);
	assert_string_equal(raw->case_id, "C-1");
	assert_string_equal(raw->type, "case-referral");
	protobuf_c_message_free_unpacked(&raw->base, NULL);
	free(buf);

	buf = xin_pb(atts, 2, 2, 0, &len); /* past the last */
	assert_int_equal(node_xin_record_read(buf, len, r), TERN_EMALFORMED);
	free(buf);
	buf = xin_pb(atts, 2, 1, 6, &len); /* 6 chunks of 5 */
	assert_int_equal(node_xin_record_read(buf, len, r), TERN_EMALFORMED);
	free(buf);
	buf = xin_pb(atts, 0, 0, 0, &len);
	assert_int_equal(node_xin_record_read(buf, len, r), TERN_EMALFORMED);
	free(buf);
	atts[0].chunk_size = TERN_ATTACH_CHUNK_MAX + 1;
	buf = xin_pb(atts, 2, 1, 0, &len);
	assert_int_equal(node_xin_record_read(buf, len, r), TERN_EMALFORMED);
	free(buf);
	/* Bytes that are neither form. */
	assert_int_equal(node_xin_record_read("\xff\xff\xff", 3, r), TERN_EMALFORMED);
	assert_int_equal(node_xin_record_read("{\"sender\":", 11, r), TERN_EMALFORMED);
	free(r);
}

/* A root of 31 bytes in the protobuf form. */
static void test_xout_protobuf(void **state)
{
	struct node_att in = {.size = 70000, .chunk_size = 65536}, atts[TERN_ATTACH_MAX_COUNT];
	Tern__V1__TransferOutRecord r = TERN__V1__TRANSFER_OUT_RECORD__INIT;
	Tern__V1__TransferAttachment pb[1], *ptrs[1];
	uint8_t buf[256];
	size_t len, n = 0;
	int done = 0;

	(void)state;
	memset(in.root, 0x11, 32);
	node_xfer_atts_pb(&in, 1, 0, pb, ptrs);
	r.n_atts = 1;
	r.atts = ptrs;
	r.done = 1;
	len = protobuf_c_message_pack(&r.base, buf);
	assert_int_equal(node_xout_record_read(buf, len, atts, &n, &done), TERN_OK);
	assert_int_equal(n, 1);
	assert_int_equal(done, 1);
	assert_int_equal(atts[0].size, 70000);
	assert_int_equal(atts[0].chunk_size, 65536);
	assert_memory_equal(atts[0].root, in.root, 32);
	pb[0].root.len = 31;
	len = protobuf_c_message_pack(&r.base, buf);
	assert_int_equal(node_xout_record_read(buf, len, atts, &n, &done), TERN_EMALFORMED);
}

static void test_upload_protobuf(void **state)
{
	Tern__V1__UploadRecord r = TERN__V1__UPLOAD_RECORD__INIT;
	uint8_t buf[64];
	uint64_t size = 0;
	int64_t expires = 0;
	size_t len;

	(void)state;
	r.size = 40000;
	r.expires = 1795390000000;
	len = protobuf_c_message_pack(&r.base, buf);
	assert_int_equal(node_upload_record_read(buf, len, &size, &expires), TERN_OK);
	assert_int_equal(size, 40000);
	assert_int_equal(expires, 1795390000000);
	r.size = 0;
	len = protobuf_c_message_pack(&r.base, buf);
	assert_int_equal(node_upload_record_read(buf, len, &size, &expires), TERN_EMALFORMED);
}

/* Each allocation of a read made to fail in turn, in both forms: the record
 * is read whole, or the answer is TERN_ENOMEM, never damage. Before, the
 * loaders read these records with plain json_loadb, and a shortage was
 * taken for a damaged record (an upload answered as gone, its file swept). */
static void test_every_read_shortage_not_damage(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	struct node_att atts[2] = {{.size = 40000, .chunk_size = 16384},
	                           {.size = 5000000, .chunk_size = 1 << 20}};
	json_t *old = xin(att(40000, 16384, ROOT, SHA));
	char *text = dump(old);
	size_t pblen;
	uint8_t *pb;
	long swept = 0;

	memset(atts[0].root, 0xab, 32);
	memset(atts[1].root, 0xab, 32);
	memset(atts[0].sha256, 0xcd, 32);
	memset(atts[1].sha256, 0xcd, 32);
	pb = xin_pb(atts, 2, 1, 3, &pblen);
	for (int form = 0; form < 2; form++) {
		long k;
		for (k = 1;; k++) {
			struct node_xin_rec *r = calloc(1, sizeof(*r));
			int rc, failed;
			assert_non_null(r);
			malloc_failed = 0;
			malloc_fail_at = k;
			rc = form ? node_xin_record_read(pb, pblen, r)
			          : node_xin_record_read(text, strlen(text), r);
			malloc_fail_at = 0;
			failed = malloc_failed;
			if (rc == TERN_OK && (r->natt != 2 || r->have != 3 || r->att != 1 ||
			                      r->atts[1].sha256[31] != 0xcd))
				fail_msg("form %d, allocation %ld failing: read as another", form,
				         k);
			if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
				fail_msg("form %d, allocation %ld failing: %s", form, k,
				         tern_strerror(rc));
			free(r);
			if (!failed)
				break;
		}
		swept += k - 1;
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 10);
	free(pb);
	free(text);
	json_decref(old);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static void test_xout(void **state)
{
	struct node_att atts[TERN_ATTACH_MAX_COUNT];
	size_t n = 0;
	int done = 0;
	json_t *rec =
	    json_pack("{s:[o], s:b}", "atts", att(1, TERN_ATTACH_CHUNK_MAX, ROOT, NULL), "done", 1);

	(void)state;
	assert_int_equal(xout_parse(rec, atts, &n, &done), TERN_OK);
	assert_int_equal(n, 1);
	assert_int_equal(done, 1);
	assert_int_equal(atts[0].chunk_size, TERN_ATTACH_CHUNK_MAX);
	json_decref(rec);
	rec = json_pack("{s:[o], s:b}", "atts", att(5, 0, ROOT, NULL), "done", 0);
	assert_int_equal(xout_parse(rec, atts, &n, &done), TERN_EMALFORMED);
	json_decref(rec);
	rec = json_pack("{s:[o], s:b}", "atts", att(5, 16384, "zz", NULL), "done", 0);
	assert_int_equal(xout_parse(rec, atts, &n, &done), TERN_EMALFORMED);
	json_decref(rec);
}

static void test_upload(void **state)
{
	uint64_t size = 0;
	int64_t expires = 0;
	json_t *rec = json_pack("{s:I, s:I}", "size", (json_int_t)40000, "expires",
	                        (json_int_t)1795390000000);

	(void)state;
	assert_int_equal(upload_parse(rec, &size, &expires), TERN_OK);
	assert_int_equal(size, 40000);
	assert_int_equal(expires, 1795390000000);
	json_decref(rec);
	rec = json_pack("{s:I}", "expires", (json_int_t)1);
	assert_int_equal(upload_parse(rec, &size, &expires), TERN_EMALFORMED);
	json_decref(rec);
}

/* A record the node's readers accept must be one the transfer code computes
 * with safely (xfer_rec.h: "checked as a peer's input is"). The JSON form
 * could not hold a size over INT64_MAX (json_int_t); the protobuf form holds
 * any uint64, and node_xin_record_read / node_xout_record_read take a size of
 * 2^64 - 1: its chunk count times the slot width (tern_attach_slot) wraps
 * past 2^64, so the last chunk's place in the spool comes before the middle
 * one's, and rehash's have * chunk_size wraps to 0. The seals the node ever
 * records passed tern_attach_seals_check (at most [limits]
 * max_attachment_size): a size over TERN_ATTACH_MAX_SIZE_LIMIT is a damaged
 * record's, refused. */
static void test_size_over_limit_refused(void **state)
{
	struct node_att atts[1] = {{.size = UINT64_MAX, .chunk_size = TERN_ATTACH_CHUNK_MIN}};
	struct node_xin_rec *r = malloc(sizeof(*r));
	uint64_t n;
	size_t len;
	uint8_t *buf;
	int rc;

	(void)state;
	memset(atts[0].root, 0xab, 32);
	memset(atts[0].sha256, 0xcd, 32);
	n = tern_attach_chunks(atts[0].size, atts[0].chunk_size);
	buf = xin_pb(atts, 1, 0, n, &len);
	rc = node_xin_record_read(buf, len, r);
	free(buf);
	free(r);
	/* What accepting it means: the slot of the last chunk wraps below
	 * the middle one's, and have * chunk_size (rehash) wraps to 0. */
	print_message("accepted=%d chunks=%llu slot(n/2)=%llu slot(n-1)=%llu have*cs=%llu\n",
	              rc == TERN_OK, (unsigned long long)n,
	              (unsigned long long)tern_attach_slot(atts[0].chunk_size, n / 2),
	              (unsigned long long)tern_attach_slot(atts[0].chunk_size, n - 1),
	              (unsigned long long)(n * atts[0].chunk_size));
	assert_int_equal(rc, TERN_EMALFORMED);
}

/* A JSON record's converter out of memory: TERN_ENOMEM with a detail that
 * says so. Before, node_rec_decode answered without tern_fail, and
 * tern_errdetail() still said what the last failure before it was:
 * node_xin_load logs "transfer %s: %s" with it, so a shortage was reported
 * as some earlier, unrelated damage. */
static void test_json_shortage_says_memory(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	json_t *old = xin(att(40000, 16384, ROOT, SHA));
	char *text = dump(old);
	long k, stale = 0, nomem = 0;

	for (k = 1;; k++) {
		struct node_xin_rec *r = calloc(1, sizeof(*r));
		int rc, failed;
		assert_non_null(r);
		(void)tern_fail(TERN_EMALFORMED, "SENTINEL: an earlier, unrelated failure");
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_xin_record_read(text, strlen(text), r);
		malloc_fail_at = 0;
		failed = malloc_failed;
		free(r);
		if (rc == TERN_ENOMEM) {
			nomem++;
			if (strstr(tern_errdetail(), "SENTINEL") != NULL) {
				if (stale == 0)
					print_message("allocation %ld failing: TERN_ENOMEM, detail "
					              "\"%s\"\n",
					              k, tern_errdetail());
				stale++;
			}
		}
		if (!failed)
			break;
	}
	print_message("%ld of %ld shortages answered with a stale detail\n", stale, nomem);
	free(text);
	json_decref(old);
	assert_int_equal(stale, 0);
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xin),
	    cmocka_unit_test(test_xout),
	    cmocka_unit_test(test_upload),
	    cmocka_unit_test(test_xin_protobuf),
	    cmocka_unit_test(test_xout_protobuf),
	    cmocka_unit_test(test_upload_protobuf),
	    cmocka_unit_test(test_every_read_shortage_not_damage),
	    cmocka_unit_test(test_size_over_limit_refused),
	    cmocka_unit_test(test_json_shortage_says_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

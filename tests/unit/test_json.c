/* proto3 JSON mapping: names, scalar forms, round trips and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/msgtype.h>
#include <tern/v1/envelope.pb-c.h>
#include <tern/v1/messages.pb-c.h>

#include "failmalloc.h"
#include "pbuf.h"

static const char *const types[] = {"case-referral", "acceptance-decision", "travel-confirmation",
                                    "receipt"};

/* Decodes text as desc, failing the test with the codec's message if it does not. */
static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *desc, const char *text)
{
	ProtobufCMessage *m = NULL;
	char err[256] = "";
	int rc = tern_json_parse_text(desc, text, strlen(text), &m, err, sizeof(err));

	if (rc != TERN_OK)
		fail_msg("decode failed: %s", err);
	assert_non_null(m);
	return m;
}

/* Decoding text must fail with exactly the error want. */
static void parse_err(const ProtobufCMessageDescriptor *desc, const char *text, const char *want)
{
	ProtobufCMessage *m = NULL;
	char err[256] = "";
	int rc = tern_json_parse_text(desc, text, strlen(text), &m, err, sizeof(err));

	assert_int_equal(rc, TERN_EMALFORMED);
	assert_null(m);
	assert_string_equal(err, want);
}

static char *dump_ok(const ProtobufCMessage *m)
{
	char *text = NULL;

	assert_int_equal(tern_json_dump_text(m, &text), TERN_OK);
	assert_non_null(text);
	return text;
}

static void roundtrip_one(const char *type)
{
	const tern_msgtype *t = tern_msgtype_by_name(type);
	char *text1 = NULL, *text2;
	ProtobufCMessage *m1, *m2, *m3 = NULL;
	uint8_t *b1, *b2;
	size_t l1, l2;

	assert_non_null(t);
	assert_int_equal(tern_example_json(type, &text1), TERN_OK);
	m1 = parse_ok(t->desc, text1);
	text2 = dump_ok(m1);
	/* encode -> decode -> encode gives the same text ... */
	assert_string_equal(text1, text2);
	m2 = parse_ok(t->desc, text2);
	/* ... and the same message, compared as wire bytes. */
	assert_int_equal(tern_pb_pack(m1, &b1, &l1), TERN_OK);
	assert_int_equal(tern_pb_pack(m2, &b2, &l2), TERN_OK);
	assert_true(l1 > 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	/* The wire form decodes back to the same JSON. */
	assert_int_equal(tern_pb_unpack(t->desc, b1, l1, l1, &m3), TERN_OK);
	free(text2);
	text2 = dump_ok(m3);
	assert_string_equal(text1, text2);
	tern_pb_free(&m3);
	free(b1);
	free(b2);
	free(text1);
	free(text2);
	tern_json_message_free(&m1);
	tern_json_message_free(&m2);
	assert_null(m1);
}

static void test_roundtrip_examples(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		roundtrip_one(types[i]);
}

static void test_camel_case_names(void **state)
{
	char *text = NULL;

	(void)state;
	assert_int_equal(tern_example_json("case-referral", &text), TERN_OK);
	assert_non_null(strstr(text, "\"dateOfBirth\": "));
	assert_non_null(strstr(text, "\"countryOfAsylum\": "));
	assert_non_null(strstr(text, "\"caseId\": "));
	assert_null(strstr(text, "date_of_birth"));
	assert_null(strstr(text, "case_id"));
	/* Stable key order (the descriptor's) and 2-space indentation. */
	assert_true(strncmp(text, "{\n  \"caseId\": ", 14) == 0);
	assert_true(strstr(text, "\"caseId\"") < strstr(text, "\"programme\""));
	assert_true(strstr(text, "\"members\"") < strstr(text, "\"countryOfAsylum\""));
	free(text);

	char buf[64];
	tern_json_name("date_of_birth", buf, sizeof(buf));
	assert_string_equal(buf, "dateOfBirth");
	tern_json_name("from", buf, sizeof(buf));
	assert_string_equal(buf, "from");
	tern_json_name("sha256", buf, sizeof(buf));
	assert_string_equal(buf, "sha256");
}

static void test_snake_case_accepted(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = (Tern__V1__CaseReferral *)parse_ok(
	    &tern__v1__case_referral__descriptor,
	    "{\"case_id\": \"AB-1\", \"case_size\": 2, \"country_of_asylum\": \"JOR\","
	    " \"members\": [{\"date_of_birth\": \"2001-01-01\", \"givenName\": \"A\"}]}");
	assert_string_equal(r->case_id, "AB-1");
	assert_int_equal(r->case_size, 2);
	assert_string_equal(r->country_of_asylum, "JOR");
	assert_int_equal(r->n_members, 1);
	assert_string_equal(r->members[0]->date_of_birth, "2001-01-01");
	assert_string_equal(r->members[0]->given_name, "A");
	tern_json_message_free((ProtobufCMessage **)&r);

	parse_err(&tern__v1__case_referral__descriptor, "{\"caseId\": \"A\", \"case_id\": \"B\"}",
	          "caseId: given twice (as camelCase and snake_case)");
}

static void test_enum_strings(void **state)
{
	const ProtobufCMessageDescriptor *d = &tern__v1__acceptance_decision__descriptor;
	Tern__V1__AcceptanceDecision *a;
	char *text;

	(void)state;
	a = (Tern__V1__AcceptanceDecision *)parse_ok(d, "{\"outcome\": \"REJECTED\"}");
	assert_int_equal(a->outcome, TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED);
	text = dump_ok(&a->base);
	assert_string_equal(text, "{\n  \"outcome\": \"REJECTED\"\n}\n");
	free(text);
	tern_json_message_free((ProtobufCMessage **)&a);

	/* A defined integer value is accepted on input, written back as its name. */
	a = (Tern__V1__AcceptanceDecision *)parse_ok(
	    d, "{\"outcome\": 4, \"interview\": {\"mode\": \"DOSSIER\"}}");
	assert_int_equal(a->outcome,
	                 TERN__V1__ACCEPTANCE_DECISION__OUTCOME__MORE_INFORMATION_REQUESTED);
	assert_int_equal(a->interview->mode,
	                 TERN__V1__ACCEPTANCE_DECISION__INTERVIEW__MODE__DOSSIER);
	text = dump_ok(&a->base);
	assert_non_null(strstr(text, "\"outcome\": \"MORE_INFORMATION_REQUESTED\""));
	assert_non_null(strstr(text, "\"mode\": \"DOSSIER\""));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&a);

	parse_err(d, "{\"outcome\": 9}", "outcome: not a value of Outcome");
	parse_err(d, "{\"outcome\": \"accepted\"}", "outcome: not a value of Outcome");
	parse_err(d, "{\"interview\": {\"mode\": \"BY_PIGEON\"}}",
	          "interview.mode: not a value of Mode");
	parse_err(d, "{\"outcome\": true}", "outcome: expected a value name of Outcome");

	/* An enum value the schema does not name (from the wire) stays a number. */
	a = (Tern__V1__AcceptanceDecision *)parse_ok(d, "{}");
	a->outcome = 42;
	text = dump_ok(&a->base);
	assert_string_equal(text, "{\n  \"outcome\": 42\n}\n");
	free(text);
	tern_json_message_free((ProtobufCMessage **)&a);
}

static void test_int64_as_string(void **state)
{
	const ProtobufCMessageDescriptor *hd = &tern__v1__header__descriptor;
	const ProtobufCMessageDescriptor *bd = &tern__v1__batch_signature__descriptor;
	Tern__V1__Header *h;
	Tern__V1__BatchSignature *b;
	char *text;

	(void)state;
	h = (Tern__V1__Header *)parse_ok(
	    hd, "{\"createdAt\": \"1700000000123\", \"schemaVersion\": 1}");
	assert_true(h->created_at == INT64_C(1700000000123));
	assert_int_equal(h->schema_version, 1);
	text = dump_ok(&h->base);
	/* 64-bit integers are strings, 32-bit ones numbers. */
	assert_non_null(strstr(text, "\"createdAt\": \"1700000000123\""));
	assert_non_null(strstr(text, "\"schemaVersion\": 1"));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&h);

	/* Numbers and numeric strings are both accepted, with range checks. */
	h = (Tern__V1__Header *)parse_ok(
	    hd, "{\"createdAt\": -9223372036854775808, \"schemaVersion\": \"4294967295\"}");
	assert_true(h->created_at == INT64_MIN);
	assert_true(h->schema_version == UINT32_MAX);
	tern_json_message_free((ProtobufCMessage **)&h);
	h = (Tern__V1__Header *)parse_ok(hd, "{\"createdAt\": \"9223372036854775807\"}");
	assert_true(h->created_at == INT64_MAX);
	tern_json_message_free((ProtobufCMessage **)&h);

	b = (Tern__V1__BatchSignature *)parse_ok(bd, "{\"treeSize\": \"18446744073709551615\"}");
	assert_true(b->tree_size == UINT64_MAX);
	text = dump_ok(&b->base);
	assert_non_null(strstr(text, "\"treeSize\": \"18446744073709551615\""));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&b);

	parse_err(hd, "{\"createdAt\": \"9223372036854775808\"}",
	          "createdAt: integer out of range");
	parse_err(bd, "{\"treeSize\": \"18446744073709551616\"}", "treeSize: integer out of range");
	parse_err(bd, "{\"treeSize\": -1}", "treeSize: integer out of range");
	parse_err(bd, "{\"treeSize\": \"-1\"}", "treeSize: expected a decimal integer");
	parse_err(hd, "{\"schemaVersion\": 4294967296}", "schemaVersion: integer out of range");
	parse_err(hd, "{\"schemaVersion\": 1.5}", "schemaVersion: expected an integer");
	parse_err(hd, "{\"createdAt\": \"12abc\"}", "createdAt: expected a decimal integer");
	parse_err(hd, "{\"createdAt\": \" 12\"}", "createdAt: expected a decimal integer");
}

static void test_bytes_base64(void **state)
{
	const ProtobufCMessageDescriptor *d = &tern__v1__receipt__descriptor;
	Tern__V1__Receipt *r;
	char *text;

	(void)state;
	/* 0xfb 0xff 0xbf encodes with both characters that differ in URL-safe base64. */
	r = (Tern__V1__Receipt *)parse_ok(d, "{\"envelopeDigest\": \"+/+/\"}");
	assert_int_equal(r->envelope_digest.len, 3);
	assert_memory_equal(r->envelope_digest.data, "\xfb\xff\xbf", 3);
	text = dump_ok(&r->base);
	assert_non_null(strstr(text, "\"envelopeDigest\": \"+/+/\""));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&r);

	r = (Tern__V1__Receipt *)parse_ok(d, "{\"envelopeDigest\": \"-_-_\"}");
	assert_memory_equal(r->envelope_digest.data, "\xfb\xff\xbf", 3);
	tern_json_message_free((ProtobufCMessage **)&r);

	/* Padded and unpadded forms. */
	r = (Tern__V1__Receipt *)parse_ok(d, "{\"envelopeDigest\": \"YQ==\"}");
	assert_int_equal(r->envelope_digest.len, 1);
	assert_int_equal(r->envelope_digest.data[0], 'a');
	text = dump_ok(&r->base);
	assert_non_null(strstr(text, "\"envelopeDigest\": \"YQ==\""));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&r);
	r = (Tern__V1__Receipt *)parse_ok(d, "{\"envelopeDigest\": \"YQ\"}");
	assert_int_equal(r->envelope_digest.len, 1);
	tern_json_message_free((ProtobufCMessage **)&r);

	parse_err(d, "{\"envelopeDigest\": \"not base64!\"}",
	          "envelopeDigest: expected a base64 string");
	parse_err(d, "{\"envelopeDigest\": \"+/-_\"}", "envelopeDigest: expected a base64 string");
	parse_err(d, "{\"envelopeDigest\": 12}", "envelopeDigest: expected a base64 string");
}

static void test_unknown_field_rejected(void **state)
{
	(void)state;
	parse_err(&tern__v1__case_referral__descriptor,
	          "{\"caseId\": \"A\", \"members\": [{\"personId\": \"1\"},"
	          " {\"personId\": \"2\", \"favouriteColour\": \"blue\"}]}",
	          "members[1].favouriteColour: unknown field");
	parse_err(&tern__v1__case_referral__descriptor, "{\"CaseId\": \"A\"}",
	          "CaseId: unknown field");
	parse_err(&tern__v1__travel_confirmation__descriptor,
	          "{\"legs\": [{\"carrier\": \"RJ\", \"gate\": \"B12\"}]}",
	          "legs[0].gate: unknown field");
}

static void test_wrong_types_rejected(void **state)
{
	const ProtobufCMessageDescriptor *d = &tern__v1__case_referral__descriptor;

	(void)state;
	parse_err(d, "{\"members\": [{}, {\"sex\": 5}]}", "members[1].sex: expected a string");
	parse_err(d, "{\"members\": {\"sex\": \"F\"}}", "members: expected an array");
	parse_err(d, "{\"members\": [\"F\"]}", "members[0]: expected an object");
	parse_err(d, "{\"members\": [null]}", "members[0]: null is not allowed in a list");
	parse_err(d, "{\"caseSize\": \"four\"}", "caseSize: expected a decimal integer");
	parse_err(d, "{\"caseSize\": [4]}", "caseSize: expected an integer");
	parse_err(d, "{\"linkedCases\": [\"A\", 7]}", "linkedCases[1]: expected a string");
	parse_err(d, "[]", "(top level): expected an object");
	parse_err(&tern__v1__travel_confirmation__descriptor, "{\"escort\": \"yes\"}",
	          "escort: expected true or false");
	parse_err(&tern__v1__signature__descriptor, "{\"batch\": \"x\"}",
	          "batch: expected an object");
}

static void test_null_is_default(void **state)
{
	Tern__V1__CaseReferral *r;
	char *text;

	(void)state;
	r = (Tern__V1__CaseReferral *)parse_ok(
	    &tern__v1__case_referral__descriptor,
	    "{\"caseId\": null, \"members\": null, \"caseSize\": null, \"priority\": null}");
	assert_string_equal(r->case_id, "");
	assert_int_equal(r->n_members, 0);
	text = dump_ok(&r->base);
	/* proto3 defaults are omitted on output. */
	assert_string_equal(text, "{}\n");
	free(text);
	tern_json_message_free((ProtobufCMessage **)&r);
}

static void test_invalid_utf8_refused_on_encode(void **state)
{
	static const char *const bad[] = {"Sam\xffira", "\xc0\xaf", "\xed\xa0\x80", "abc\xe2\x82",
	                                  "\xf4\x90\x80\x80"};
	Tern__V1__Member mem = TERN__V1__MEMBER__INIT;
	Tern__V1__Member *mems[] = {&mem};
	Tern__V1__CaseReferral r = TERN__V1__CASE_REFERRAL__INIT;
	json_t *j = NULL;
	char *text = NULL;

	(void)state;
	r.n_members = 1;
	r.members = mems;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mem.given_name = (char *)bad[i];
		assert_int_equal(tern_json_encode(&r.base, &j), TERN_EMALFORMED);
		assert_null(j);
		assert_non_null(strstr(tern_errdetail(), "members[0].givenName"));
		assert_int_equal(tern_json_dump_text(&r.base, &text), TERN_EMALFORMED);
		assert_null(text);
	}
	mem.given_name = "Sam\xc3\xadra \xe2\x80\x94 \xf0\x9f\x98\x80";
	assert_int_equal(tern_json_encode(&r.base, &j), TERN_OK);
	json_decref(j);

	assert_true(tern_utf8_valid("", 0));
	assert_false(tern_utf8_valid("\x80", 1));
}

static void test_oneof(void **state)
{
	const ProtobufCMessageDescriptor *d = &tern__v1__signature__descriptor;
	Tern__V1__Signature *s;
	char *text;

	(void)state;
	s = (Tern__V1__Signature *)parse_ok(d, "{\"ed25519\": \"AAEC\"}");
	assert_int_equal(s->kind_case, TERN__V1__SIGNATURE__KIND_ED25519);
	assert_int_equal(s->ed25519.len, 3);
	tern_json_message_free((ProtobufCMessage **)&s);

	s = (Tern__V1__Signature *)parse_ok(
	    d, "{\"batch\": {\"treeSize\": \"3\", \"inclusionProof\": [\"AA==\", \"AQ==\"]}}");
	assert_int_equal(s->kind_case, TERN__V1__SIGNATURE__KIND_BATCH);
	assert_int_equal(s->batch->n_inclusion_proof, 2);
	assert_int_equal(s->batch->inclusion_proof[1].data[0], 1);
	text = dump_ok(&s->base);
	assert_non_null(strstr(text, "\"inclusionProof\": [\n      \"AA==\",\n      \"AQ==\"\n"));
	free(text);
	tern_json_message_free((ProtobufCMessage **)&s);

	/* A set oneof member is written even when it holds its default value. */
	s = (Tern__V1__Signature *)parse_ok(d, "{\"ed25519\": \"\"}");
	assert_int_equal(s->kind_case, TERN__V1__SIGNATURE__KIND_ED25519);
	text = dump_ok(&s->base);
	assert_string_equal(text, "{\n  \"ed25519\": \"\"\n}\n");
	free(text);
	tern_json_message_free((ProtobufCMessage **)&s);

	parse_err(d, "{\"ed25519\": \"AA==\", \"batch\": {}}",
	          "batch: another member of the same oneof is set");
}

static void test_syntax_errors(void **state)
{
	const ProtobufCMessageDescriptor *d = &tern__v1__case_referral__descriptor;
	ProtobufCMessage *m = NULL;
	char err[256];
	const char *t1 = "{\n  \"caseId\": Amina\n}";
	const char *t2 = "{\"caseId\": \"A\", \"caseId\": \"B\"}";
	char *big;

	(void)state;
	assert_int_equal(tern_json_parse_text(d, t1, strlen(t1), &m, err, sizeof(err)),
	                 TERN_EMALFORMED);
	assert_null(m);
	/* line:column, and no fragment of the input (it may be personal data). */
	assert_true(strncmp(err, "2:", 2) == 0);
	assert_null(strstr(err, "Amina"));
	assert_null(strstr(tern_errdetail(), "Amina"));

	assert_int_equal(tern_json_parse_text(d, t2, strlen(t2), &m, err, sizeof(err)),
	                 TERN_EMALFORMED);
	assert_non_null(strstr(err, "duplicate"));

	assert_int_equal(tern_json_parse_text(d, "{}", 1, &m, err, sizeof(err)), TERN_EMALFORMED);

	/* Embedded NUL: protobuf-c strings would be cut short. */
	json_t *j = json_pack("{s:s%}", "caseId", "A\0B", (size_t)3);
	assert_non_null(j);
	assert_int_equal(tern_json_decode(d, j, &m, err, sizeof(err)), TERN_EMALFORMED);
	assert_string_equal(err, "caseId: string contains a NUL character");
	json_decref(j);

	big = malloc(TERN_JSON_MAX_TEXT + 1);
	assert_non_null(big);
	memset(big, ' ', TERN_JSON_MAX_TEXT + 1);
	big[0] = '{';
	big[TERN_JSON_MAX_TEXT] = '}';
	assert_int_equal(tern_json_parse_text(d, big, TERN_JSON_MAX_TEXT + 1, &m, err, sizeof(err)),
	                 TERN_ETOOBIG);
	assert_null(m);
	free(big);
}

/* JSON a store keeps, with each allocation of writing it made to fail in
 * turn: either no text (TERN_ENOMEM) or a text that says the same. jansson's
 * own json_dumps does not hold to that: short of memory it dropped bytes
 * and answered (a transfer's record, a key cut in two). */
/* Stored JSON read back under each shortage: the record whole, or
 * no-memory; never "damaged", and never a record with a byte dropped, which
 * jansson 2.14 gives back as a success. Bytes that are not JSON are
 * damaged. */
static void test_loadb_stored_under_shortage(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	/* No escapes: with one, jansson 2.14 can abort (an assert in its
	 * lexer) when an allocation fails in the string. */
	static const char text[] = "{\"id\":\"01a20598-0000-7000-8000-000000000001.received\","
	                           "\"body\":\"a body of some length, as a push has\","
	                           "\"n\":[1,2,3,{\"k\":\"v\"}]}";
	json_t *want = json_loads(text, 0, NULL), *got = NULL;
	long k;

	assert_non_null(want);
	for (k = 1;; k++) {
		int rc, failed;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = tern_json_loadb_stored(text, sizeof(text) - 1, &got);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK && !json_equal(got, want))
			fail_msg("allocation %ld failing: read back as another record", k);
		if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed || got != NULL))
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		json_decref(got);
		got = NULL;
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 5);
	assert_int_equal(tern_json_loadb_stored("{\"id\":\"", 7, &got), TERN_EMALFORMED);
	assert_null(got);
	json_decref(want);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static void test_dumps_exact_under_shortage(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	json_t *rec = json_pack(
	    "{s:s, s:s, s:s, s:I, s:I, s:I, s:[{s:I, s:I, s:s, s:s}, {s:I, s:I, s:s, s:s}]}",
	    "sender", "unhcr", "case_id", "UNHCR-KEN-2024-000123", "type", "case-referral", "until",
	    (json_int_t)1797246682056, "att", (json_int_t)0, "have", (json_int_t)3, "atts", "size",
	    (json_int_t)5000, "chunk_size", (json_int_t)1048576, "root",
	    "0707070707070707070707070707070707070707070707070707070707070707", "sha256",
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size",
	    (json_int_t)7, "chunk_size", (json_int_t)65536, "root",
	    "0808080808080808080808080808080808080808080808080808080808080808", "sha256",
	    "0909090909090909090909090909090909090909090909090909090909090909");
	long k;

	assert_non_null(rec);
	for (k = 1;; k++) {
		char *text = NULL;
		int rc, failed;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = tern_json_dumps_exact(rec, JSON_COMPACT, &text);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK) {
			json_t *back = json_loads(text, 0, NULL);
			if (back == NULL || !json_equal(back, rec))
				fail_msg("allocation %ld failing: a text that does not say the "
				         "record: %s",
				         k, text);
			json_decref(back);
		} else {
			assert_int_equal(rc, TERN_ENOMEM);
			assert_true(failed);
			assert_null(text);
		}
		free(text);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 3);
	json_decref(rec);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dumps_exact_under_shortage),
	    cmocka_unit_test(test_loadb_stored_under_shortage),
	    cmocka_unit_test(test_roundtrip_examples),
	    cmocka_unit_test(test_camel_case_names),
	    cmocka_unit_test(test_snake_case_accepted),
	    cmocka_unit_test(test_enum_strings),
	    cmocka_unit_test(test_int64_as_string),
	    cmocka_unit_test(test_bytes_base64),
	    cmocka_unit_test(test_unknown_field_rejected),
	    cmocka_unit_test(test_wrong_types_rejected),
	    cmocka_unit_test(test_null_is_default),
	    cmocka_unit_test(test_invalid_utf8_refused_on_encode),
	    cmocka_unit_test(test_oneof),
	    cmocka_unit_test(test_syntax_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Business-message rules: each rule is broken once, on a valid example.
 *
 * Over 800 lines on purpose: the rules are one module, tested by one executable:
 * each rule is broken once, on the same examples. */
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
#include <tern/validate.h>
#include <tern/v1/envelope.pb-c.h>
#include <tern/v1/messages.pb-c.h>

#include "failmalloc.h"

static int64_t now_ms; /* 2026-11-22T12:00:00Z */

static ProtobufCMessage *load(const char *type)
{
	const tern_msgtype *t = tern_msgtype_by_name(type);
	ProtobufCMessage *m = NULL;
	char *text = NULL, err[256];

	assert_non_null(t);
	assert_int_equal(tern_example_json(type, &text), TERN_OK);
	if (tern_json_parse_text(t->desc, text, strlen(text), &m, err, sizeof(err)) != TERN_OK)
		fail_msg("example %s: %s", type, err);
	free(text);
	return m;
}

/* The example referral with one declared attachment, whose rules the tests
 * below break one by one (the example itself carries none: a declared
 * attachment travels with its bytes, docs/attachments.md). */
static Tern__V1__CaseReferral *referral(void)
{
	Tern__V1__CaseReferral *r = (Tern__V1__CaseReferral *)load("case-referral");
	Tern__V1__Attachment *a = malloc(sizeof(*a));

	tern__v1__attachment__init(a);
	a->name = strdup("medical-assessment.pdf");
	a->media_type = strdup("application/pdf");
	a->sha256 = strdup("9f2b5c0e1d4a7b3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5");
	a->size = 48213;
	r->attachments = realloc(r->attachments, (r->n_attachments + 1) * sizeof(*r->attachments));
	r->attachments[r->n_attachments++] = a;
	return r;
}

static Tern__V1__AcceptanceDecision *decision(void)
{
	return (Tern__V1__AcceptanceDecision *)load("acceptance-decision");
}

static Tern__V1__TravelConfirmation *travel(void)
{
	return (Tern__V1__TravelConfirmation *)load("travel-confirmation");
}

static Tern__V1__Receipt *receipt(void)
{
	return (Tern__V1__Receipt *)load("receipt");
}

/* Replaces a decoded string field (malloc'd, or protobuf-c's shared empty string). */
static void set(char **field, const char *value)
{
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = strdup(value);
	assert_non_null(*field);
}

static void dump(const tern_violations *v)
{
	for (size_t i = 0; i < v->count; i++)
		print_message("  %s: %s\n", v->v[i].path, v->v[i].rule);
}

/* msg must break a rule at exactly path whose text contains needle. Frees msg. */
static void expect(void *msg, const char *path, const char *needle)
{
	ProtobufCMessage *m = msg;
	tern_violations v;

	assert_int_equal(tern_validate(m, now_ms, &v), TERN_EINVALID);
	for (size_t i = 0; i < v.count; i++) {
		if (strcmp(v.v[i].path, path) == 0 && strstr(v.v[i].rule, needle) != NULL) {
			tern_json_message_free(&m);
			return;
		}
	}
	dump(&v);
	fail_msg("no violation at %s mentioning '%s'", path, needle);
}

/* msg must be valid. Frees msg. */
static void expect_valid(void *msg)
{
	ProtobufCMessage *m = msg;
	tern_violations v;
	int rc = tern_validate(m, now_ms, &v);

	if (rc != TERN_OK || v.count != 0) {
		dump(&v);
		fail_msg("expected no violation");
	}
	tern_json_message_free(&m);
}

static int setup(void **state)
{
	(void)state;
	return tern_datetime_parse("2026-11-22T12:00:00Z", &now_ms) ? 0 : -1;
}

/* ------------------------------------------------------------------ examples */

static void test_examples_valid(void **state)
{
	int64_t later;
	tern_violations v;
	size_t n = 0;

	(void)state;
	/* The documented promise: examples stay valid until 2032-12-31. Every
	 * type of the table has one. */
	assert_true(tern_datetime_parse("2032-12-31T23:59:59Z", &later));
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++, n++) {
		ProtobufCMessage *m = load(t->name);

		assert_true(t->type > 0 && t->type < TERN_MSGTYPE_MAX);
		expect_valid(load(t->name));
		assert_int_equal(tern_validate(m, later, &v), TERN_OK);
		tern_json_message_free(&m);
	}
	assert_int_equal(n, 10);
}

static void test_not_a_business_message(void **state)
{
	Tern__V1__Header h = TERN__V1__HEADER__INIT;
	tern_violations v;

	(void)state;
	assert_int_equal(tern_validate(&h.base, now_ms, &v), TERN_EINVAL);
	assert_int_equal(tern_validate(NULL, now_ms, &v), TERN_EINVAL);
}

/* ------------------------------------------------------------------ CaseReferral */

static void test_referral_case_id(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->case_id, "");
	expect(r, "caseId", "is required");
	r = referral();
	set(&r->case_id, "AMM 26C00417");
	expect(r, "caseId", "1-64 characters");
	r = referral();
	set(&r->case_id, "-AMM");
	expect(r, "caseId", "starting with a letter or digit");
	r = referral();
	set(&r->case_id, "A1234567890123456789012345678901234567890123456789012345678901234");
	expect(r, "caseId", "1-64 characters");
	r = referral();
	set(&r->case_id, "AMM/2026_C.0417-x");
	/* The linked case stays different: the id only changes format. */
	expect_valid(r);
}

static void test_referral_required_enums(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	r->programme = 0;
	expect(r, "programme", "PROGRAMME_UNSPECIFIED");
	r = referral();
	r->priority = 0;
	expect(r, "priority", "PRIORITY_UNSPECIFIED");
	r = referral();
	r->submission_category = 0;
	expect(r, "submissionCategory", "SUBMISSION_CATEGORY_UNSPECIFIED");
	r = referral();
	r->programme = 99; /* e.g. from a newer schema on the wire */
	expect(r, "programme", "must be one of the values of Programme");
}

static void test_referral_secondary_category(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	r->secondary_category = r->submission_category;
	expect(r, "secondaryCategory", "must differ from submissionCategory");
	r = referral();
	r->secondary_category = 0; /* absent is fine */
	expect_valid(r);
}

static void test_referral_case_size(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	r->case_size = 5;
	expect(r, "caseSize", "must equal the number of members");
	r = referral();
	r->case_size = 0;
	expect(r, "caseSize", "number of members");
}

static void test_referral_at_least_one_member(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	for (size_t i = 0; i < r->n_members; i++)
		protobuf_c_message_free_unpacked(&r->members[i]->base, NULL);
	r->n_members = 0;
	r->case_size = 0;
	expect(r, "members", "at least one member");
}

static void test_referral_one_principal(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	r->members[2]->relationship = TERN__V1__MEMBER__RELATIONSHIP__PRINCIPAL_APPLICANT;
	expect(r, "members[2].relationship", "PRINCIPAL_APPLICANT");
	r = referral();
	r->members[0]->relationship = TERN__V1__MEMBER__RELATIONSHIP__OTHER_RELATIVE;
	expect(r, "members", "exactly one PRINCIPAL_APPLICANT");
	/* Two spouses is not a violation: polygamous families are resettled too. */
	r = referral();
	r->members[2]->relationship = TERN__V1__MEMBER__RELATIONSHIP__SPOUSE;
	expect_valid(r);
}

static void test_referral_unique_person_ids(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->members[3]->person_id, r->members[1]->person_id);
	expect(r, "members[3].personId", "must be unique");
}

#if MALLOC_CAN_FAIL
/* tern_validate with no memory to be had. */
static int validate_short(const ProtobufCMessage *m, tern_violations *v)
{
	int rc;

	malloc_fails = 1;
	rc = tern_validate(m, now_ms, v);
	malloc_fails = 0;
	return rc;
}
#endif

/* A list whose repeats could not be checked for want of memory does not
 * pass: before, the members' check (and the decisions', assessments' and
 * attendance records') was skipped when its malloc failed, and a referral
 * naming a person twice was valid. Nor is it a verdict on the body (a node
 * would refuse another agency's message, signed, for its own shortage): the
 * answer is TERN_ENOMEM, and the caller checks again later. A real
 * violation found beside it is still one. */
static void test_unique_unchecked_not_a_verdict(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	Tern__V1__CaseReferral *r = referral();
	ProtobufCMessage *m = &r->base;
	tern_violations v;
	int rc, found = 0;

	set(&r->members[3]->person_id, r->members[1]->person_id);
	rc = validate_short(m, &v);
	assert_int_equal(rc, TERN_ENOMEM);
	for (size_t i = 0; i < v.count; i++)
		found |= strcmp(v.v[i].path, "members") == 0 &&
		         strstr(v.v[i].rule, "could not be checked") != NULL;
	if (!found)
		dump(&v);
	assert_true(found);
	/* With memory, the repeat is found. */
	assert_int_equal(tern_validate(m, now_ms, &v), TERN_EINVALID);
	/* A real violation beside the unchecked list: invalid, shortage or not,
	 * and named first (a refusal names the first entry). */
	set(&r->members[3]->given_name, "");
	rc = validate_short(m, &v);
	assert_int_equal(rc, TERN_EINVALID);
	assert_string_equal(v.v[0].path, "members[3].givenName");
	assert_string_equal(v.v[v.count - 1].path, "members");
	tern_json_message_free(&m);
	/* Where the unchecked list comes first in the rules (a decision's
	 * member decisions before its validUntil), the real one is named all
	 * the same. */
	{
		Tern__V1__AcceptanceDecision *d = decision();
		ProtobufCMessage *dm = &d->base;
		assert_true(d->n_member_decisions > 1);
		set(&d->valid_until, "2026-11-21");
		rc = validate_short(dm, &v);
		assert_int_equal(rc, TERN_EINVALID);
		assert_string_equal(v.v[0].path, "validUntil");
		assert_string_equal(v.v[v.count - 1].path, "memberDecisions");
		tern_json_message_free(&dm);
	}
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static void test_referral_member_required(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->members[1]->person_id, "");
	expect(r, "members[1].personId", "is required");
	r = referral();
	set(&r->members[1]->person_id, "12 34");
	expect(r, "members[1].personId", "1-64 characters");
	r = referral();
	set(&r->members[0]->given_name, "");
	expect(r, "members[0].givenName", "is required");
	r = referral();
	set(&r->members[2]->family_name, "");
	expect(r, "members[2].familyName", "is required");
	r = referral();
	r->members[2]->relationship = 0;
	expect(r, "members[2].relationship", "RELATIONSHIP_UNSPECIFIED");
}

static void test_referral_names_text(void **state)
{
	Tern__V1__CaseReferral *r;
	char longname[202];

	(void)state;
	r = referral();
	set(&r->members[0]->given_name, "Sam\nira");
	expect(r, "members[0].givenName", "control characters");
	r = referral();
	set(&r->members[1]->family_name, "Ex\xffmple");
	expect(r, "members[1].familyName", "valid UTF-8");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	r = referral();
	set(&r->members[1]->family_name, longname);
	expect(r, "members[1].familyName", "at most 100 characters");
	/* 100 characters of two bytes each is fine. */
	for (size_t i = 0; i < 100; i++)
		memcpy(longname + 2 * i, "\xc3\xa9", 2);
	longname[200] = '\0';
	r = referral();
	set(&r->members[1]->family_name, longname);
	expect_valid(r);
}

/* Text made only of white space: ASCII, line breaks, and Unicode spaces
 * (NO-BREAK SPACE, EM SPACE, IDEOGRAPHIC SPACE, ZERO WIDTH NO-BREAK SPACE). */
static const char *const blanks[] = {
    " ",
    "   ",
    "\t",
    "\n",
    "\t\n \r\n",
    "\xc2\xa0",
    "\xc2\xa0\xc2\xa0 ",
    "\xe2\x80\x83",
    "\xe3\x80\x80",
    "\xef\xbb\xbf",
    "\xe2\x80\x8b\xe2\x80\xaf",
};
#define N_BLANKS (sizeof(blanks) / sizeof(blanks[0]))
#define BLANK_RULE "must not be blank (only white space)"

static void test_referral_blank_text(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	for (size_t i = 0; i < N_BLANKS; i++) {
		r = referral();
		set(&r->members[0]->given_name, blanks[i]);
		expect(r, "members[0].givenName", "is required; " BLANK_RULE);
		r = referral();
		set(&r->members[2]->family_name, blanks[i]);
		expect(r, "members[2].familyName", "is required; " BLANK_RULE);
		r = referral();
		set(&r->referring_office, blanks[i]);
		expect(r, "referringOffice", "is required; " BLANK_RULE);
		r = referral();
		set(&r->attachments[0]->name, blanks[i]);
		expect(r, "attachments[0].name", "is required; " BLANK_RULE);
	}
	/* White space inside or around real text is fine (a no-break space between
	 * names, for instance). */
	r = referral();
	set(&r->members[0]->given_name, "Ana\xc2\xa0Maria");
	set(&r->members[2]->family_name, " Example ");
	set(&r->referring_office, "\xe3\x80\x80UNHCR Amman");
	expect_valid(r);
	/* Optional text may be blank. */
	r = referral();
	set(&r->needs_summary, " \n\t");
	expect_valid(r);
}

static void test_referral_date_of_birth(void **state)
{
	static const char *const not_dates[] = {"2023-02-29",           "1900-02-29", "2001-13-01",
	                                        "2001-04-31",           "2001-4-1",   "01/04/2001",
	                                        "2001-04-01T00:00:00Z", "2001-00-10"};
	Tern__V1__CaseReferral *r;

	(void)state;
	for (size_t i = 0; i < sizeof(not_dates) / sizeof(not_dates[0]); i++) {
		r = referral();
		set(&r->members[1]->date_of_birth, not_dates[i]);
		expect(r, "members[1].dateOfBirth", "must be a real date YYYY-MM-DD");
	}
	r = referral();
	set(&r->members[1]->date_of_birth, "");
	expect(r, "members[1].dateOfBirth", "is required");
	r = referral();
	set(&r->members[1]->date_of_birth, "2026-11-23");
	expect(r, "members[1].dateOfBirth", "must not be in the future");
	r = referral();
	set(&r->members[1]->date_of_birth, "1899-12-31");
	expect(r, "members[1].dateOfBirth", "must not be before 1900-01-01");
	/* Leap days, the 400-year rule, today and the earliest allowed day. */
	r = referral();
	set(&r->members[1]->date_of_birth, "2000-02-29");
	set(&r->members[2]->date_of_birth, "2024-02-29");
	set(&r->members[3]->date_of_birth, "2026-11-22");
	set(&r->members[0]->date_of_birth, "1900-01-01");
	expect_valid(r);
}

static void test_referral_sex(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->members[0]->sex, "f");
	expect(r, "members[0].sex", "must be F, M or X");
	r = referral();
	set(&r->members[0]->sex, "Female");
	expect(r, "members[0].sex", "F, M or X");
	r = referral();
	set(&r->members[0]->sex, "");
	expect(r, "members[0].sex", "is required");
	r = referral();
	set(&r->members[0]->sex, "X");
	expect_valid(r);
}

static void test_referral_nationality(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->members[1]->nationality, "syr");
	expect(r, "members[1].nationality", "three upper-case letters");
	r = referral();
	set(&r->members[1]->nationality, "SY");
	expect(r, "members[1].nationality", "three upper-case letters");
	r = referral();
	set(&r->members[1]->nationality, "ZZZ");
	expect(r, "members[1].nationality", "officially assigned");
	r = referral();
	set(&r->members[1]->nationality, "ANT"); /* Netherlands Antilles, withdrawn in 2010 */
	expect(r, "members[1].nationality", "officially assigned");
	r = referral();
	set(&r->members[1]->nationality, "");
	expect(r, "members[1].nationality", "is required");
	r = referral();
	set(&r->members[0]->nationality, "XXB");
	set(&r->members[1]->nationality, "XXX");
	set(&r->members[2]->nationality, "SSD");
	set(&r->members[3]->nationality, "ZWE");
	expect_valid(r);
}

static void test_referral_country_of_asylum(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->country_of_asylum, "Jordan");
	expect(r, "countryOfAsylum", "three upper-case letters");
	r = referral();
	set(&r->country_of_asylum, "XXA"); /* a nationality code, not a country */
	expect(r, "countryOfAsylum", "officially assigned");
	r = referral();
	set(&r->country_of_asylum, "");
	expect(r, "countryOfAsylum", "is required");
}

static void test_referral_linked_cases(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->linked_cases[0], r->case_id);
	expect(r, "linkedCases[0]", "must not be the case itself");
	r = referral();
	set(&r->linked_cases[0], "not a case id");
	expect(r, "linkedCases[0]", "1-64 characters");
	r = referral();
	r->linked_cases = realloc(r->linked_cases, 2 * sizeof(char *));
	r->linked_cases[1] = strdup(r->linked_cases[0]);
	r->n_linked_cases = 2;
	expect(r, "linkedCases[1]", "must not repeat");
}

static void test_referral_referring_office(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->referring_office, "");
	expect(r, "referringOffice", "is required");
}

static void test_referral_needs_summary(void **state)
{
	Tern__V1__CaseReferral *r;
	char *big = malloc(4002);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', 4001);
	big[4001] = '\0';
	r = referral();
	set(&r->needs_summary, big);
	expect(r, "needsSummary", "at most 4000 characters");
	free(big);
	r = referral();
	set(&r->needs_summary, "Line one.\n\tLine two.");
	expect_valid(r);
	r = referral();
	set(&r->needs_summary, "bell\a");
	expect(r, "needsSummary", "control characters");
}

static void test_referral_attachments(void **state)
{
	Tern__V1__CaseReferral *r;

	(void)state;
	r = referral();
	set(&r->attachments[0]->name, "");
	expect(r, "attachments[0].name", "is required");
	r = referral();
	set(&r->attachments[0]->name, "../../etc/passwd");
	expect(r, "attachments[0].name", "without directories");
	r = referral();
	set(&r->attachments[0]->media_type, "");
	expect(r, "attachments[0].mediaType", "is required");
	r = referral();
	set(&r->attachments[0]->media_type, "pdf");
	expect(r, "attachments[0].mediaType", "type/subtype");
	r = referral();
	set(&r->attachments[0]->media_type, "application/");
	expect(r, "attachments[0].mediaType", "type/subtype");
	r = referral();
	set(&r->attachments[0]->sha256,
	    "9F2B5C0E1D4A7B3C6E8F0A1B2C3D4E5F60718293A4B5C6D7E8F9A0B1C2D3E4F5");
	expect(r, "attachments[0].sha256", "64 lower-case hex digits");
	r = referral();
	set(&r->attachments[0]->sha256, "9f2b5c0e");
	expect(r, "attachments[0].sha256", "64 lower-case hex digits");
	r = referral();
	set(&r->attachments[0]->sha256, "");
	expect(r, "attachments[0].sha256", "is required");
	r = referral();
	r->attachments[0]->size = 0;
	expect(r, "attachments[0].size", "greater than 0");
	r = referral();
	set(&r->attachments[0]->media_type, "application/vnd.oasis.opendocument.text");
	expect_valid(r);
}

static void test_violations_truncated(void **state)
{
	Tern__V1__CaseReferral *r;
	tern_violations v;

	(void)state;
	r = referral();
	for (size_t i = 0; i < r->n_linked_cases; i++)
		free(r->linked_cases[i]);
	free(r->linked_cases);
	r->n_linked_cases = 100;
	r->linked_cases = calloc(100, sizeof(char *));
	for (size_t i = 0; i < 100; i++)
		r->linked_cases[i] = strdup("bad id");
	assert_int_equal(tern_validate(&r->base, now_ms, &v), TERN_EINVALID);
	assert_int_equal(v.count, TERN_VIOLATIONS_MAX);
	assert_true(v.truncated);
	assert_string_equal(v.v[63].path, "linkedCases[63]");
	tern_json_message_free((ProtobufCMessage **)&r);
}

/* ------------------------------------------------------------------ AcceptanceDecision */

static void test_decision_ids(void **state)
{
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	d = decision();
	set(&d->case_id, "");
	expect(d, "caseId", "is required");
	d = decision();
	set(&d->referral_id, "");
	expect(d, "referralId", "is required");
	d = decision();
	set(&d->referral_id, "019A3C5E-8F10-7B2A-9C4D-5E6F7A8B9C0D");
	expect(d, "referralId", "UUID in canonical lower-case form");
	d = decision();
	set(&d->referral_id, "019a3c5e8f107b2a9c4d5e6f7a8b9c0d");
	expect(d, "referralId", "UUID");
}

static void test_decision_outcome_required(void **state)
{
	Tern__V1__AcceptanceDecision *d = decision();

	(void)state;
	d->outcome = 0;
	expect(d, "outcome", "OUTCOME_UNSPECIFIED");
}

static void test_decision_reasons(void **state)
{
	static const int outcomes[] = {
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED,
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__DEFERRED,
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__MORE_INFORMATION_REQUESTED};
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		d = decision();
		d->outcome = outcomes[i];
		for (size_t k = 0; k < d->n_member_decisions; k++)
			d->member_decisions[k]->outcome = outcomes[i];
		expect(d, "reasons", "is required when outcome is");
		d = decision();
		d->outcome = outcomes[i];
		for (size_t k = 0; k < d->n_member_decisions; k++)
			d->member_decisions[k]->outcome = outcomes[i];
		set(&d->reasons, "Fictional reasons.");
		/* validUntil is only required for ACCEPTED. */
		set(&d->valid_until, "");
		expect_valid(d);
	}
}

static void test_decision_reasons_blank(void **state)
{
	static const int outcomes[] = {
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED,
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__DEFERRED,
	    TERN__V1__ACCEPTANCE_DECISION__OUTCOME__MORE_INFORMATION_REQUESTED};
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		for (size_t b = 0; b < N_BLANKS; b++) {
			d = decision();
			d->outcome = outcomes[i];
			for (size_t k = 0; k < d->n_member_decisions; k++)
				d->member_decisions[k]->outcome = outcomes[i];
			set(&d->reasons, blanks[b]);
			expect(d, "reasons", "is required when outcome is");
			d = decision();
			d->outcome = outcomes[i];
			for (size_t k = 0; k < d->n_member_decisions; k++)
				d->member_decisions[k]->outcome = outcomes[i];
			set(&d->reasons, blanks[b]);
			expect(d, "reasons", BLANK_RULE);
		}
	}
	/* Reasons are optional for ACCEPTED, so blank reasons are not a violation. */
	d = decision();
	set(&d->reasons, "  ");
	expect_valid(d);
}

static void test_decision_member_decisions(void **state)
{
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	d = decision();
	set(&d->member_decisions[2]->person_id, d->member_decisions[0]->person_id);
	expect(d, "memberDecisions[2].personId", "must be unique");
	d = decision();
	set(&d->member_decisions[1]->person_id, "");
	expect(d, "memberDecisions[1].personId", "is required");
	d = decision();
	d->member_decisions[3]->outcome = 0;
	expect(d, "memberDecisions[3].outcome", "OUTCOME_UNSPECIFIED");
	d = decision();
	for (size_t k = 0; k < d->n_member_decisions; k++)
		d->member_decisions[k]->outcome = TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED;
	expect(d, "memberDecisions", "must accept at least one member");
	d = decision();
	d->outcome = TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED;
	set(&d->reasons, "Fictional reasons.");
	expect(d, "memberDecisions[0].outcome",
	       "must not be ACCEPTED when the case outcome is REJECTED");
	/* A partial acceptance is a valid decision. */
	d = decision();
	d->member_decisions[1]->outcome = TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED;
	expect_valid(d);
}

static void test_decision_valid_until(void **state)
{
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	d = decision();
	set(&d->valid_until, "");
	expect(d, "validUntil", "is required");
	d = decision();
	set(&d->valid_until, "2027-02-30");
	expect(d, "validUntil", "must be a real date YYYY-MM-DD");
	d = decision();
	set(&d->valid_until, "2026-11-21");
	expect(d, "validUntil", "must not be in the past");
	d = decision();
	set(&d->valid_until, "2026-11-22"); /* valid through today */
	expect_valid(d);
}

static void test_decision_interview(void **state)
{
	Tern__V1__AcceptanceDecision *d;

	(void)state;
	d = decision();
	d->interview->mode = 0;
	expect(d, "interview.mode", "MODE_UNSPECIFIED");
	d = decision();
	set(&d->interview->date, "2026-9-8");
	expect(d, "interview.date", "must be a real date YYYY-MM-DD");
	d = decision();
	d->interview->mode = TERN__V1__ACCEPTANCE_DECISION__INTERVIEW__MODE__DOSSIER;
	expect(d, "interview.date", "DOSSIER");
	d = decision();
	d->interview->mode = TERN__V1__ACCEPTANCE_DECISION__INTERVIEW__MODE__DOSSIER;
	set(&d->interview->date, "");
	expect_valid(d);
}

/* ------------------------------------------------------------------ TravelConfirmation */

static void test_travel_ids_status(void **state)
{
	Tern__V1__TravelConfirmation *t;

	(void)state;
	t = travel();
	set(&t->case_id, "");
	expect(t, "caseId", "is required");
	t = travel();
	set(&t->decision_id, "decision-1");
	expect(t, "decisionId", "UUID");
	t = travel();
	t->status = 0;
	expect(t, "status", "STATUS_UNSPECIFIED");
}

static void test_travel_travellers(void **state)
{
	Tern__V1__TravelConfirmation *t;

	(void)state;
	t = travel();
	for (size_t i = 0; i < t->n_travellers; i++)
		free(t->travellers[i]);
	t->n_travellers = 0;
	expect(t, "travellers", "at least one traveller");
	t = travel();
	set(&t->travellers[3], t->travellers[1]);
	expect(t, "travellers[3]", "must not list a traveller twice");
	t = travel();
	set(&t->travellers[0], "");
	expect(t, "travellers[0]", "1-64 characters");
}

static void test_travel_leg_codes(void **state)
{
	static const char *const bad_carriers[] = {"R", "RJA", "rj", "12", "R-"};
	static const char *const bad_flights[] = {"12345", "A12", "12ab", "", "1 2"};
	Tern__V1__TravelConfirmation *t;

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		t = travel();
		set(&t->legs[0]->carrier, bad_carriers[i]);
		expect(t, "legs[0].carrier", "2-character IATA airline designator");
	}
	t = travel();
	set(&t->legs[0]->carrier, "");
	expect(t, "legs[0].carrier", "is required");
	for (size_t i = 0; i < 5; i++) {
		t = travel();
		set(&t->legs[1]->flight_number, bad_flights[i]);
		expect(t, "legs[1].flightNumber", bad_flights[i][0] ? "1-4 digits" : "is required");
	}
	t = travel();
	set(&t->legs[0]->carrier, "U2");
	set(&t->legs[1]->carrier, "9W");
	set(&t->legs[0]->flight_number, "1234");
	set(&t->legs[1]->flight_number, "7A");
	expect_valid(t);

	t = travel();
	set(&t->legs[0]->from, "amm");
	expect(t, "legs[0].from", "three upper-case letters");
	t = travel();
	set(&t->legs[1]->to, "YYZZ");
	expect(t, "legs[1].to", "three upper-case letters");
	t = travel();
	set(&t->legs[0]->to, "AMM");
	expect(t, "legs[0].to", "must differ from from");
}

static void test_travel_leg_times(void **state)
{
	Tern__V1__TravelConfirmation *t;

	(void)state;
	t = travel();
	set(&t->legs[0]->departs_at, "2027-02-16T03:10:00");
	expect(t, "legs[0].departsAt", "RFC 3339");
	t = travel();
	set(&t->legs[0]->departs_at, "2027-02-16 03:10:00Z");
	expect(t, "legs[0].departsAt", "RFC 3339");
	t = travel();
	set(&t->legs[0]->arrives_at, "2027-02-30T06:40:00+01:00");
	expect(t, "legs[0].arrivesAt", "RFC 3339");
	t = travel();
	set(&t->legs[0]->arrives_at, "2027-02-16T06:40:00+24:00");
	expect(t, "legs[0].arrivesAt", "RFC 3339");
	t = travel();
	set(&t->legs[0]->arrives_at, "");
	expect(t, "legs[0].arrivesAt", "is required");
	/* Offsets count: departure 03:10+03:00 is 00:10Z, arrival 01:00+02:00 is 23:00Z
	 * the day before. */
	t = travel();
	set(&t->legs[0]->arrives_at, "2027-02-16T01:00:00+02:00");
	expect(t, "legs[0].arrivesAt", "must be after departsAt");
	t = travel();
	set(&t->legs[0]->arrives_at, t->legs[0]->departs_at);
	expect(t, "legs[0].arrivesAt", "must be after departsAt");
	/* Fractions and lower-case separators are RFC 3339. */
	t = travel();
	set(&t->legs[0]->departs_at, "2027-02-16t03:10:00.250z");
	set(&t->legs[0]->arrives_at, "2027-02-16T06:40:59.5+01:00");
	expect_valid(t);
}

static void test_travel_leg_impossible_times(void **state)
{
	/* Second 60 is refused too: no leap second is scheduled (docs/messages.md). */
	static const char *const bad[] = {
	    "2027-02-16T03:10:60+03:00",  "2027-02-16T03:10:60.5+03:00",
	    "2027-02-16T23:59:60Z",       "2027-02-16T24:00:00+03:00",
	    "2027-02-16T23:60:00+03:00",  "2027-02-16T03:10:00+24:00",
	    "2027-02-16T03:10:00+03:60",  "2027-02-16T03:10:00-24:00",
	    "2027-02-16T03:10:00.+03:00", "2027-02-16T03:10:00,5+03:00",
	};
	Tern__V1__TravelConfirmation *t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = travel();
		set(&t->legs[0]->departs_at, bad[i]);
		expect(t, "legs[0].departsAt", "RFC 3339");
		t = travel();
		set(&t->legs[1]->arrives_at, bad[i]);
		expect(t, "legs[1].arrivesAt", "RFC 3339");
	}
	/* The last second of a minute, hour and day, and the widest offsets. */
	t = travel();
	set(&t->legs[0]->departs_at, "2027-02-15T23:59:59.999+23:59");
	set(&t->legs[0]->arrives_at, "2027-02-16T06:40:00-23:59");
	set(&t->legs[1]->departs_at, "2027-02-17T10:05:00+01:00");
	set(&t->legs[1]->arrives_at, "2027-02-17T12:30:00+01:00");
	expect_valid(t);
}

static void test_travel_reception_contact_blank(void **state)
{
	static const int statuses[] = {TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED,
	                               TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED};
	Tern__V1__TravelConfirmation *t;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		for (size_t b = 0; b < N_BLANKS; b++) {
			t = travel();
			t->status = statuses[i];
			set(&t->reception_contact, blanks[b]);
			expect(t, "receptionContact",
			       "is required when status is DEPARTED or ARRIVED; " BLANK_RULE);
		}
	}
}

static void test_travel_legs_chain(void **state)
{
	Tern__V1__TravelConfirmation *t;

	(void)state;
	t = travel();
	set(&t->legs[1]->from, "MUC");
	expect(t, "legs[1].from", "where the previous leg arrives");
	t = travel();
	set(&t->legs[1]->departs_at, "2027-02-16T06:30:00+01:00");
	expect(t, "legs[1].departsAt", "after the previous leg arrives");
}

static void test_travel_status_rules(void **state)
{
	Tern__V1__TravelConfirmation *t;

	(void)state;
	t = travel();
	for (size_t i = 0; i < t->n_legs; i++)
		protobuf_c_message_free_unpacked(&t->legs[i]->base, NULL);
	t->n_legs = 0;
	expect(t, "legs", "at least one leg when status is BOOKED");
	t = travel();
	t->fit_to_travel = 0;
	expect(t, "fitToTravel", "must be true when status is BOOKED");

	t = travel();
	t->status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED;
	for (size_t i = 0; i < t->n_legs; i++)
		protobuf_c_message_free_unpacked(&t->legs[i]->base, NULL);
	t->n_legs = 0;
	expect(t, "legs", "DEPARTED or ARRIVED");
	t = travel();
	t->status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED;
	set(&t->reception_contact, "");
	expect(t, "receptionContact", "is required when status is DEPARTED or ARRIVED");
	/* A booking may still wait for its reception contact; a cancellation needs no legs. */
	t = travel();
	set(&t->reception_contact, "");
	expect_valid(t);
	t = travel();
	t->status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED;
	t->fit_to_travel = 0;
	for (size_t i = 0; i < t->n_legs; i++)
		protobuf_c_message_free_unpacked(&t->legs[i]->base, NULL);
	t->n_legs = 0;
	expect_valid(t);
}

/* ------------------------------------------------------------------ Receipt */

static void test_receipt_rules(void **state)
{
	Tern__V1__Receipt *r;

	(void)state;
	r = receipt();
	set(&r->message_id, "");
	expect(r, "messageId", "is required");
	r = receipt();
	set(&r->message_id, "019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7");
	expect(r, "messageId", "UUID");
	r = receipt();
	r->status = 0;
	expect(r, "status", "STATUS_UNSPECIFIED");
	r = receipt();
	r->envelope_digest.len = 31;
	expect(r, "envelopeDigest", "32 bytes");
	r = receipt();
	r->status = TERN__V1__RECEIPT__STATUS__REJECTED;
	expect(r, "reasonCode", "is required when status is REJECTED");
	r = receipt();
	set(&r->reason_code, "wrong-role");
	expect(r, "reasonCode", "must be empty when status is ACCEPTED");
	r = receipt();
	r->status = TERN__V1__RECEIPT__STATUS__REJECTED;
	set(&r->reason_code, "Wrong Role");
	expect(r, "reasonCode", "a-z 0-9");
	r = receipt();
	r->status = TERN__V1__RECEIPT__STATUS__REJECTED;
	set(&r->reason_code, "wrong-role");
	set(&r->reason_text, "The sender may not send this message type.");
	expect_valid(r);
}

/* ------------------------------------------------------------------ helpers */

/* A body of type from JSON text (the tests of the later types write each
 * case whole: shorter than editing a decoded example). */
static void *parse(const char *type, const char *json)
{
	const tern_msgtype *t = tern_msgtype_by_name(type);
	ProtobufCMessage *m = NULL;
	char err[256];

	assert_non_null(t);
	if (tern_json_parse_text(t->desc, json, strlen(json), &m, err, sizeof(err)) != TERN_OK)
		fail_msg("%s: %s", type, err);
	return m;
}

#define CASE_ID "\"caseId\": \"AMM-26C00417\""
#define REFERRAL_ID "\"referralId\": \"019a3c5e-8f10-7b2a-9c4d-5e6f7a8b9c0d\""
#define DECISION_ID "\"decisionId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\""

/* ------------------------------------------------------------------ information-request */

static void test_info_request_rules(void **state)
{
	(void)state;
	expect_valid(parse("information-request", "{" CASE_ID ", " REFERRAL_ID
	                                          ", \"questions\": \"Which school year?\"}"));
	expect(parse("information-request", "{" CASE_ID ", " REFERRAL_ID "}"), "questions",
	       "is required");
	expect(parse("information-request",
	             "{" CASE_ID ", " REFERRAL_ID ", \"questions\": \" \\u00a0\\n\"}"),
	       "questions", "blank");
	expect(parse("information-request", "{" CASE_ID ", \"questions\": \"Why?\"}"), "referralId",
	       "is required");
	expect(parse("information-request",
	             "{" CASE_ID ", " REFERRAL_ID ", \"questions\": \"Why?\","
	             " \"respondBy\": \"2026-02-30\"}"),
	       "respondBy", "real date");
}

static void test_info_response_rules(void **state)
{
	(void)state;
	expect(parse("information-response",
	             "{" CASE_ID ", \"requestId\": \"019a5d10-2c3e-7f40-8a5b-6c7d8e9f0a1b\"}"),
	       "answers", "is required");
	expect(parse("information-response",
	             "{" CASE_ID ", \"requestId\": \"019a5d10-2c3e-7f40-8a5b-6c7d8e9f0a1b\","
	             " \"answers\": \"\\t \"}"),
	       "answers", "blank");
	expect(parse("information-response",
	             "{" CASE_ID ", \"requestId\": \"Q1\", \"answers\": \"a\"}"),
	       "requestId", "UUID");
	expect(parse("information-response",
	             "{" CASE_ID ", \"requestId\": \"019a5d10-2c3e-7f40-8a5b-6c7d8e9f0a1b\","
	             " \"answers\": \"a\", \"attachments\": [{\"name\": \"../x\","
	             " \"mediaType\": \"application/pdf\", \"sha256\": \"00\", \"size\": 1}]}"),
	       "attachments[0].sha256", "SHA-256");
}

/* ------------------------------------------------------------------ case-update */

#define NEW_MEMBER                                                                                 \
	"{\"personId\": \"AMM-26C00417-05\", \"givenName\": \"Nour\", \"familyName\": "            \
	"\"Example\","                                                                             \
	" \"dateOfBirth\": \"2026-08-01\", \"sex\": \"F\", \"nationality\": \"XXA\","              \
	" \"relationship\": \"CHILD\"}"

static void test_case_update_rules(void **state)
{
	(void)state;
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID "}"), "kind", "is required");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_ADDED\"}"),
	       "addedMembers", "at least one member");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_ADDED\","
	                            " \"addedMembers\": [" NEW_MEMBER ", " NEW_MEMBER "]}"),
	       "addedMembers[1].personId", "unique");
	expect(
	    parse("case-update",
	          "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_ADDED\", \"addedMembers\": "
	          "[{\"personId\": \"AMM-26C00417-05\", \"givenName\": \"Nour\","
	          " \"familyName\": \"Example\", \"dateOfBirth\": \"2027-01-01\", \"sex\": \"F\","
	          " \"nationality\": \"XXA\", \"relationship\": \"CHILD\"}]}"),
	    "addedMembers[0].dateOfBirth", "future");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"WITHDRAWN\","
	                            " \"addedMembers\": [" NEW_MEMBER "], \"reason\": \"r\"}"),
	       "addedMembers", "unless kind is MEMBER_ADDED");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_REMOVED\"}"),
	       "removedPersonIds", "at least one person");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_REMOVED\","
	                            " \"removedPersonIds\": [\"P1\", \"P1\"]}"),
	       "removedPersonIds[1]", "twice");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"MEMBER_REMOVED\","
	                            " \"removedPersonIds\": [\"-x\"]}"),
	       "removedPersonIds[0]", "1-64 characters");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"PRIORITY_CHANGED\","
	                            " \"removedPersonIds\": [\"P1\"], \"priority\": \"URGENT\"}"),
	       "removedPersonIds", "unless kind is MEMBER_REMOVED");
	expect(
	    parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"PRIORITY_CHANGED\"}"),
	    "priority", "is required");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"WITHDRAWN\","
	                            " \"priority\": \"URGENT\", \"reason\": \"r\"}"),
	       "priority", "unless kind is PRIORITY_CHANGED");
	expect(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"WITHDRAWN\"}"),
	       "reason", "is required when kind is WITHDRAWN");
	expect(parse("case-update",
	             "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"WITHDRAWN\", \"reason\": \"  \"}"),
	       "reason", "blank");
	expect_valid(parse("case-update", "{" CASE_ID ", " REFERRAL_ID ", \"kind\": \"WITHDRAWN\","
	                                  " \"reason\": \"Found another durable solution.\"}"));
	expect_valid(parse("case-update", "{" CASE_ID ", " REFERRAL_ID
	                                  ", \"kind\": \"PRIORITY_CHANGED\", \"priority\": "
	                                  "\"EMERGENCY\"}"));
	expect_valid(parse("case-update", "{" CASE_ID ", " REFERRAL_ID
	                                  ", \"kind\": \"MEMBER_REMOVED\", \"removedPersonIds\": "
	                                  "[\"AMM-26C00417-02\"]}"));
}

/* ------------------------------------------------------------------ health-assessment */

static void test_health_rules(void **state)
{
#define HA(a) "{" CASE_ID ", " DECISION_ID ", \"assessments\": [" a "]}"
	(void)state;
	expect(parse("health-assessment", "{" CASE_ID ", " DECISION_ID "}"), "assessments",
	       "at least one member");
	expect(parse("health-assessment",
	             HA("{\"personId\": \"P1\", \"examinedOn\": \"2026-10-01\"}")),
	       "assessments[0].fitness", "is required");
	expect(parse("health-assessment",
	             HA("{\"personId\": \"P1\", \"fitness\": \"FIT_WITH_CONDITIONS\","
	                " \"examinedOn\": \"2026-10-01\"}")),
	       "assessments[0].conditions", "at least one condition");
	expect(parse("health-assessment",
	             HA("{\"personId\": \"P1\", \"fitness\": \"FIT\", \"conditions\": [\"OXYGEN\"],"
	                " \"examinedOn\": \"2026-10-01\"}")),
	       "assessments[0].conditions", "unless fitness is FIT_WITH_CONDITIONS");
	expect(
	    parse("health-assessment",
	          HA("{\"personId\": \"P1\", \"fitness\": \"FIT_WITH_CONDITIONS\", \"conditions\":"
	             " [\"WHEELCHAIR\", \"WHEELCHAIR\"], \"examinedOn\": \"2026-10-01\"}")),
	    "assessments[0].conditions[1]", "twice");
	expect(
	    parse("health-assessment",
	          HA("{\"personId\": \"P1\", \"fitness\": \"FIT_WITH_CONDITIONS\", \"conditions\":"
	             " [\"CONDITION_UNSPECIFIED\"], \"examinedOn\": \"2026-10-01\"}")),
	    "assessments[0].conditions[0]", "is required");
	expect(parse("health-assessment", HA("{\"personId\": \"P1\", \"fitness\": \"NOT_YET_FIT\","
	                                     " \"examinedOn\": \"2026-10-01\"}")),
	       "assessments[0].deferral", "is required");
	expect(parse("health-assessment",
	             HA("{\"personId\": \"P1\", \"fitness\": \"FIT\", \"deferral\": \"PREGNANCY\","
	                " \"examinedOn\": \"2026-10-01\"}")),
	       "assessments[0].deferral", "unless fitness is NOT_YET_FIT");
	expect(parse("health-assessment", HA("{\"personId\": \"P1\", \"fitness\": \"FIT\"}")),
	       "assessments[0].examinedOn", "is required");
	expect(
	    parse(
	        "health-assessment",
	        HA("{\"personId\": \"P1\", \"fitness\": \"FIT\", \"examinedOn\": \"2026-12-01\"}")),
	    "assessments[0].examinedOn", "future");
	expect(
	    parse("health-assessment",
	          HA("{\"personId\": \"P1\", \"fitness\": \"FIT\", \"examinedOn\": \"2026-10-01\"},"
	             " {\"personId\": \"P1\", \"fitness\": \"FIT\", \"examinedOn\": "
	             "\"2026-10-01\"}")),
	    "assessments[1].personId", "one assessment per person");
	expect_valid(parse("health-assessment",
	                   HA("{\"personId\": \"P1\", \"fitness\": \"NOT_YET_FIT\", \"deferral\":"
	                      " \"UNDER_TREATMENT\", \"examinedOn\": \"2026-10-01\"}")));
#undef HA
}

/* ------------------------------------------------------------------ pre-departure-orientation */

static void test_orientation_rules(void **state)
{
#define PDO(a) "{" CASE_ID ", " DECISION_ID ", \"attendance\": [" a "]}"
	(void)state;
	expect(parse("pre-departure-orientation", "{" CASE_ID ", " DECISION_ID "}"), "attendance",
	       "at least one");
	expect(parse("pre-departure-orientation",
	             PDO("{\"personId\": \"P1\", \"lastSessionOn\": \"2026-11-01\"}")),
	       "attendance[0].sessions", "at least 1");
	expect(parse("pre-departure-orientation", PDO("{\"personId\": \"P1\", \"sessions\": 2}")),
	       "attendance[0].lastSessionOn", "is required");
	expect(
	    parse(
	        "pre-departure-orientation",
	        PDO("{\"personId\": \"P1\", \"sessions\": 2, \"lastSessionOn\": \"2026-11-30\"}")),
	    "attendance[0].lastSessionOn", "future");
	expect(
	    parse("pre-departure-orientation",
	          PDO("{\"personId\": \"P1\", \"sessions\": 2, \"lastSessionOn\": \"2026-11-01\","
	              " \"topics\": [\"HOUSING\", \"HOUSING\"]}")),
	    "attendance[0].topics[1]", "twice");
	expect(
	    parse("pre-departure-orientation",
	          PDO("{\"personId\": \"P1\", \"sessions\": 1, \"lastSessionOn\": \"2026-11-01\"},"
	              " {\"personId\": \"P1\", \"sessions\": 1, \"lastSessionOn\": "
	              "\"2026-11-01\"}")),
	    "attendance[1].personId", "one attendance record per person");
#undef PDO
}

/* ------------------------------------------------------------------ arrival-handover */

static void test_handover_rules(void **state)
{
#define AH(x)                                                                                      \
	"{" CASE_ID ", " DECISION_ID ", \"arrivedPersonIds\": [\"P1\"], \"receptionLocation\":"    \
	" \"Welcome centre\", \"handedOverAt\": \"2027-02-16T14:20:00-05:00\"" x "}"
	(void)state;
	expect_valid(parse("arrival-handover", AH("")));
	expect(parse("arrival-handover", "{" CASE_ID ", " DECISION_ID ", \"receptionLocation\":"
	                                 " \"W\", \"handedOverAt\": \"2027-02-16T14:20:00Z\"}"),
	       "arrivedPersonIds", "at least one person");
	expect(parse("arrival-handover",
	             "{" CASE_ID ", " DECISION_ID
	             ", \"arrivedPersonIds\": [\"P1\"], \"receptionLocation\":"
	             " \"\\u3000\", \"handedOverAt\": \"2027-02-16T14:20:00Z\"}"),
	       "receptionLocation", "blank");
	expect(parse("arrival-handover", "{" CASE_ID ", " DECISION_ID
	                                 ", \"arrivedPersonIds\": [\"P1\"], \"receptionLocation\":"
	                                 " \"W\", \"handedOverAt\": \"2027-02-16T24:00:00Z\"}"),
	       "handedOverAt", "RFC 3339");
	expect(parse("arrival-handover", "{" CASE_ID ", " DECISION_ID
	                                 ", \"arrivedPersonIds\": [\"P1\"], \"receptionLocation\":"
	                                 " \"W\"}"),
	       "handedOverAt", "is required");
	expect(parse("arrival-handover", AH(", \"followUpNeeds\": [\"SCHOOLING\", \"SCHOOLING\"]")),
	       "followUpNeeds[1]", "twice");
	expect(
	    parse("arrival-handover", AH(", \"followUpNeeds\": [\"FOLLOW_UP_NEED_UNSPECIFIED\"]")),
	    "followUpNeeds[0]", "is required");
	expect_valid(parse("arrival-handover", AH(", \"followUpNeeds\": [\"PSYCHOSOCIAL\"],"
	                                          " \"followUpNote\": \"Line one.\\nLine two.\"")));
#undef AH
}

static void test_parsers(void **state)
{
	int64_t ms, days;

	(void)state;
	assert_true(tern_datetime_parse("1970-01-01T00:00:00Z", &ms));
	assert_true(ms == 0);
	assert_true(tern_datetime_parse("1970-01-01T01:00:00.5+01:00", &ms));
	assert_true(ms == 500);
	assert_true(tern_datetime_parse("2026-11-22T12:00:00Z", &ms));
	assert_true(ms == INT64_C(1795348800000));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00.Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00Z ", &ms));
	assert_false(tern_datetime_parse("2026-11-22T24:00:00Z", &ms));
	/* Impossible times: no leap second, hour, minute or offset out of range. */
	assert_false(tern_datetime_parse("2026-11-22T12:00:60Z", &ms));
	assert_false(tern_datetime_parse("2016-12-31T23:59:60Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:61Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:99Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T23:60:00Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00+24:00", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00+03:60", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00+0300", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00+3:00", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00.5.5Z", &ms));
	assert_false(tern_datetime_parse("2026-11-22T12:00:00.-5Z", &ms));
	assert_false(tern_datetime_parse("2026-02-29T12:00:00Z", &ms));
	assert_true(tern_datetime_parse("2026-11-22T23:59:59Z", &ms));
	assert_true(tern_datetime_parse("1970-01-01T00:00:00.123456789Z", &ms));
	assert_true(ms == 123);
	assert_true(tern_datetime_parse("1970-01-01t00:00:00z", &ms));
	assert_true(ms == 0);
	assert_true(tern_datetime_parse("1970-01-02T00:00:00+23:59", &ms));
	assert_true(ms == 60000);
	assert_true(tern_date_parse("2000-02-29", &days));
	assert_true(days == 11016);
	assert_false(tern_date_parse("2100-02-29", NULL));
	assert_false(tern_date_parse("2000-02-29 ", NULL));
	assert_false(tern_date_parse("0000-01-01", NULL));
	assert_false(tern_date_parse("2026-00-10", NULL));
	assert_false(tern_date_parse("2026-01-32", NULL));
	assert_false(tern_date_parse("2026-04-31", NULL));
	assert_false(tern_date_parse("2026-1-01", NULL));
	assert_false(tern_date_parse("2026-11-22T00:00:00Z", NULL));

	assert_true(tern_country_valid("DEU", 0));
	assert_true(tern_country_valid("ABW", 0));
	assert_true(tern_country_valid("ZWE", 0));
	assert_false(tern_country_valid("XXA", 0));
	assert_true(tern_country_valid("XXA", 1));
	assert_true(tern_country_valid("XXC", 1));
	assert_false(tern_country_valid("XXD", 1));
	assert_false(tern_country_valid("D", 1));
	assert_false(tern_country_valid("deu", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_examples_valid),
	    cmocka_unit_test(test_info_request_rules),
	    cmocka_unit_test(test_info_response_rules),
	    cmocka_unit_test(test_case_update_rules),
	    cmocka_unit_test(test_health_rules),
	    cmocka_unit_test(test_orientation_rules),
	    cmocka_unit_test(test_handover_rules),
	    cmocka_unit_test(test_not_a_business_message),
	    cmocka_unit_test(test_referral_case_id),
	    cmocka_unit_test(test_referral_required_enums),
	    cmocka_unit_test(test_referral_secondary_category),
	    cmocka_unit_test(test_referral_case_size),
	    cmocka_unit_test(test_referral_at_least_one_member),
	    cmocka_unit_test(test_referral_one_principal),
	    cmocka_unit_test(test_referral_unique_person_ids),
	    cmocka_unit_test(test_unique_unchecked_not_a_verdict),
	    cmocka_unit_test(test_referral_member_required),
	    cmocka_unit_test(test_referral_names_text),
	    cmocka_unit_test(test_referral_blank_text),
	    cmocka_unit_test(test_referral_date_of_birth),
	    cmocka_unit_test(test_referral_sex),
	    cmocka_unit_test(test_referral_nationality),
	    cmocka_unit_test(test_referral_country_of_asylum),
	    cmocka_unit_test(test_referral_linked_cases),
	    cmocka_unit_test(test_referral_referring_office),
	    cmocka_unit_test(test_referral_needs_summary),
	    cmocka_unit_test(test_referral_attachments),
	    cmocka_unit_test(test_violations_truncated),
	    cmocka_unit_test(test_decision_ids),
	    cmocka_unit_test(test_decision_outcome_required),
	    cmocka_unit_test(test_decision_reasons),
	    cmocka_unit_test(test_decision_reasons_blank),
	    cmocka_unit_test(test_decision_member_decisions),
	    cmocka_unit_test(test_decision_valid_until),
	    cmocka_unit_test(test_decision_interview),
	    cmocka_unit_test(test_travel_ids_status),
	    cmocka_unit_test(test_travel_travellers),
	    cmocka_unit_test(test_travel_leg_codes),
	    cmocka_unit_test(test_travel_leg_times),
	    cmocka_unit_test(test_travel_leg_impossible_times),
	    cmocka_unit_test(test_travel_reception_contact_blank),
	    cmocka_unit_test(test_travel_legs_chain),
	    cmocka_unit_test(test_travel_status_rules),
	    cmocka_unit_test(test_receipt_rules),
	    cmocka_unit_test(test_parsers),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}

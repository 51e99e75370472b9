/* The case workflow (tern/workflow.h) judged without processes: what a party
 * holds is a set of records (tern_wf_records), as the node's batch keeps them.
 * Each case of the review in issue 15 is here: a State deciding on a case
 * referred to another, a decision naming a person outside the referral, a
 * travel citing a decision that does not exist or that a later rejection
 * replaced, a referral to IOM or to its own sender; and the moves a thread
 * may and may not make. docs/messages.md carries the table as
 * tern_workflow_describe() writes it.
 *
 * Over 800 lines on purpose: the workflow is one module, tested by one
 * executable, and every case reads the same holdings built by the same helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/v1/messages.pb-c.h>
#include <tern/workflow.h>

#include "testutil.h"

#define CASE "SWE-2027-0001"
#define R1 "01900000-0000-7000-8000-000000000001" /* unhcr's referral to sweden */
#define R2 "01900000-0000-7000-8000-000000000002" /* unhcr's referral to portugal */
#define D1 "01900000-0000-7000-8000-000000000011"
#define D2 "01900000-0000-7000-8000-000000000012"
#define T1 "01900000-0000-7000-8000-000000000021"
#define NEW "01900000-0000-7000-8000-0000000000ff"

/* What a party holds: a record set, as a node's batch is (the store's
 * table is read the same way, tests/unit/test_node_store.c). */
#define lookup tern_wf_records_lookup

/* Keeps what v says, as a node does after the commit. */
static void keep(tern_wf_records *held, const char *msgid, tern_wf_verdict *v)
{
	assert_int_equal(tern_wf_records_put(held, msgid, &v->record), TERN_OK);
	if (v->root_record)
		assert_int_equal(tern_wf_records_put(held, v->root, &v->root_record), TERN_OK);
	tern_wf_verdict_clear(v);
}

static tern_wf_records *holds_nothing(void)
{
	tern_wf_records *h = tern_wf_records_new();

	assert_non_null(h);
	return h;
}

/* unhcr's view once it referred the case: R1 to sweden (members P1, P2), R2
 * to portugal. */
static tern_wf_records *unhcr_holds(void)
{
	tern_wf_records *h = holds_nothing();
	Tern__V1__CaseReferral r = TERN__V1__CASE_REFERRAL__INIT;
	Tern__V1__Member m1 = TERN__V1__MEMBER__INIT, m2 = TERN__V1__MEMBER__INIT;
	Tern__V1__Member *ms[2] = {&m1, &m2};
	static const char *const to_sweden[] = {"sweden"}, *const to_portugal[] = {"portugal"};
	tern_wf_msg m = {.type = tern_msgtype_by_name("case-referral"),
	                 .sender = "unhcr",
	                 .case_id = CASE,
	                 .body = &r.base,
	                 .nto = 1};
	tern_wf_verdict v;

	r.case_id = CASE;
	m1.person_id = "P1";
	m2.person_id = "P2";
	r.members = ms;
	r.n_members = 2;
	m.msgid = R1;
	m.to = to_sweden;
	assert_int_equal(tern_workflow_judge(&m, "unhcr", TERN_ROLE_REFERRER, 1, lookup, h, &v),
	                 TERN_OK);
	assert_int_equal(v.reason, TERN_REASON_NONE);
	assert_string_equal(tern_case_state_name((tern_case_state)v.record->state), "referred");
	keep(h, R1, &v);
	m.msgid = R2;
	m.to = to_portugal;
	assert_int_equal(tern_workflow_judge(&m, "unhcr", TERN_ROLE_REFERRER, 1, lookup, h, &v),
	                 TERN_OK);
	keep(h, R2, &v);
	return h;
}

struct dec {
	const char *id, *sender, *referral;
	Tern__V1__AcceptanceDecision__Outcome outcome;
	const char *person; /* a member decision for this person, or NULL */
};

/* Judges a decision at holder (self, roles), keeping it if allowed. */
static tern_reason decide(tern_wf_records *h, const char *self, unsigned roles, int as_sender,
                          struct dec d, char *text)
{
	Tern__V1__AcceptanceDecision b = TERN__V1__ACCEPTANCE_DECISION__INIT;
	Tern__V1__AcceptanceDecision__MemberDecision md =
	    TERN__V1__ACCEPTANCE_DECISION__MEMBER_DECISION__INIT;
	Tern__V1__AcceptanceDecision__MemberDecision *mds[1] = {&md};
	static const char *const to[] = {"unhcr", "iom"};
	tern_wf_msg m = {.msgid = d.id,
	                 .type = tern_msgtype_by_name("acceptance-decision"),
	                 .sender = d.sender,
	                 .to = to,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;
	tern_reason r;

	b.case_id = CASE;
	b.referral_id = (char *)d.referral;
	b.outcome = d.outcome;
	if (d.person) {
		md.person_id = (char *)d.person;
		md.outcome = d.outcome;
		b.member_decisions = mds;
		b.n_member_decisions = 1;
	}
	assert_int_equal(tern_workflow_judge(&m, self, roles, as_sender, lookup, h, &v), TERN_OK);
	r = v.reason;
	if (text)
		snprintf(text, 256, "%s", v.text);
	if (r == TERN_REASON_NONE)
		keep(h, d.id, &v);
	else
		tern_wf_verdict_clear(&v);
	return r;
}

/* A travel confirmation from IOM (id, citing decision, for traveller),
 * judged at self (as its sender if as_sender), kept if allowed. */
static tern_reason travel_as(tern_wf_records *h, const char *self, unsigned roles, int as_sender,
                             const char *id, const char *decision,
                             Tern__V1__TravelConfirmation__Status status, const char *traveller,
                             int *unknown_ref)
{
	Tern__V1__TravelConfirmation b = TERN__V1__TRAVEL_CONFIRMATION__INIT;
	char *travellers[1] = {(char *)traveller};
	static const char *const to[] = {"sweden", "unhcr"};
	tern_wf_msg m = {.msgid = id,
	                 .type = tern_msgtype_by_name("travel-confirmation"),
	                 .sender = "iom",
	                 .to = to,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;
	tern_reason r;

	b.case_id = CASE;
	b.decision_id = (char *)decision;
	b.status = status;
	b.travellers = travellers;
	b.n_travellers = 1;
	assert_int_equal(tern_workflow_judge(&m, self, roles, as_sender, lookup, h, &v), TERN_OK);
	r = v.reason;
	if (unknown_ref)
		*unknown_ref = v.unknown_ref;
	if (r == TERN_REASON_NONE)
		keep(h, id, &v);
	else
		tern_wf_verdict_clear(&v);
	return r;
}

static tern_reason travel(tern_wf_records *h, const char *self, unsigned roles, const char *id,
                          const char *decision, Tern__V1__TravelConfirmation__Status status,
                          const char *traveller, int *unknown_ref)
{
	return travel_as(h, self, roles, 0, id, decision, status, traveller, unknown_ref);
}

#define ACC TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED
#define REJ TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED
#define REF TERN_ROLE_REFERRER

static const char *state_of(tern_wf_records *h, const char *root)
{
	const tern_wf_record *r = tern_wf_records_get(h, root);

	return r ? tern_case_state_name((tern_case_state)r->state) : NULL;
}

/* sweden decides on R2, which unhcr referred to portugal: refused at unhcr,
 * naming the rule; on R1, referred to it, accepted. */
static void test_decision_on_a_case_referred_to_another(void **state)
{
	tern_wf_records *h = unhcr_holds();
	char text[256];

	(void)state;
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R2, ACC, NULL}, text),
	    TERN_REASON_REFERENCE_NOT_SHARED);
	assert_non_null(strstr(text, R2));
	assert_non_null(strstr(text, "sweden"));
	assert_string_equal(state_of(h, R2), "referred");
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	tern_wf_records_free(&h);
}

/* A member decision for a person the referral does not name. The text gives
 * the field's path, never the person id (personal data stays out of logs). */
static void test_decision_names_a_stranger(void **state)
{
	tern_wf_records *h = unhcr_holds();
	char text[256];

	(void)state;
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, "ZZZ-99"}, text),
	    TERN_REASON_UNKNOWN_MEMBER);
	assert_non_null(strstr(text, "memberDecisions[0].personId"));
	assert_null(strstr(text, "ZZZ-99"));
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, "P2"}, NULL),
	    TERN_REASON_NONE);
	tern_wf_records_free(&h);
}

/* A travel confirmation citing a decision no one made: unhcr and the State
 * must hold it, so they refuse (and say the reference is missing, which is
 * what a hold would wait on); a party that holds no such thing is not one
 * to judge it. */
static void test_travel_citing_no_decision(void **state)
{
	tern_wf_records *h = unhcr_holds();
	int unknown = 0;

	(void)state;
	assert_int_equal(travel(h, "unhcr", REF, T1, NEW,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", &unknown),
	                 TERN_REASON_UNKNOWN_DECISION);
	assert_true(unknown);
	assert_int_equal(travel(h, "sweden", TERN_ROLE_STATE, T1, NEW,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", &unknown),
	                 TERN_REASON_UNKNOWN_DECISION);
	tern_wf_records_free(&h);
	h = holds_nothing();
	assert_int_equal(travel(h, "observer", TERN_ROLE_MOVEMENT, T1, NEW,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", &unknown),
	                 TERN_REASON_NONE);
	assert_false(unknown);
	tern_wf_records_free(&h);
}

/* D1 accepted, D2 rejected the same referral: a travel citing D1 is refused
 * as superseded, and one citing D2 as not accepting. */
static void test_travel_after_a_later_rejection(void **state)
{
	tern_wf_records *h = unhcr_holds();

	(void)state;
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D2, "sweden", R1, REJ, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "rejected");
	assert_int_equal(travel(h, "unhcr", REF, T1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_SUPERSEDED);
	assert_int_equal(travel(h, "unhcr", REF, T1, D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_DECISION_NOT_ACCEPTED);
	/* A rejection ends the thread: no decision after it. */
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){NEW, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);
}

/* The travel moves: booked, departed, arrived in order; a departure before a
 * booking, or anything after arrival but nothing, is refused; travellers
 * are members. */
static void test_travel_moves(void **state)
{
	tern_wf_records *h = unhcr_holds();
	static const char *const ids[] = {
	    "01900000-0000-7000-8000-000000000031", "01900000-0000-7000-8000-000000000032",
	    "01900000-0000-7000-8000-000000000033", "01900000-0000-7000-8000-000000000034"};

	(void)state;
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(travel(h, "unhcr", REF, ids[0], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_int_equal(travel(h, "unhcr", REF, ids[0], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "ZZZ-99", NULL),
	                 TERN_REASON_UNKNOWN_MEMBER);
	assert_int_equal(travel(h, "unhcr", REF, ids[0], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "booked");
	assert_int_equal(travel(h, "unhcr", REF, ids[1], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(travel(h, "unhcr", REF, ids[2], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "arrived");
	assert_int_equal(travel(h, "unhcr", REF, ids[3], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	/* After travel, a State's decision comes too late. */
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){NEW, "sweden", R1, REJ, NULL}, NULL),
	    TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);
}

/* The sender judges what it holds, and lets through what it does not: IOM
 * may book on a decision it learnt of some other way; a record from before
 * the workflow (no parties, no state) turns the rules that need them off. */
static void test_sender_and_old_records(void **state)
{
	tern_wf_records *h = holds_nothing();

	(void)state;
	assert_int_equal(decide(h, "sweden", TERN_ROLE_STATE, 1,
	                        (struct dec){D1, "sweden", R1, ACC, "P9"}, NULL),
	                 TERN_REASON_NONE);
	{
		tern_wf_record r = TERN__V1__WORKFLOW_RECORD__INIT, *rp;
		r.type = "case-referral";
		r.case_id = CASE;
		r.outcome = "";
		assert_non_null(rp = tern_wf_record_copy(&r));
		assert_int_equal(tern_wf_records_put(h, R2, &rp), TERN_OK);
	}
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D2, "sweden", R2, ACC, "P9"}, NULL),
	    TERN_REASON_NONE);
	tern_wf_records_free(&h);
}

/* IOM holds no referral, only the decisions sent to it: it traces the
 * thread from them, and so refuses to send travel on a decision a later
 * rejection replaced. */
static void test_a_party_without_the_referral(void **state)
{
	tern_wf_records *h = holds_nothing();
	Tern__V1__TravelConfirmation b = TERN__V1__TRAVEL_CONFIRMATION__INIT;
	static const char *const to[] = {"sweden", "unhcr"};
	tern_wf_msg m = {.msgid = T1,
	                 .type = tern_msgtype_by_name("travel-confirmation"),
	                 .sender = "iom",
	                 .to = to,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;

	(void)state;
	assert_int_equal(decide(h, "iom", TERN_ROLE_MOVEMENT, 0,
	                        (struct dec){D1, "sweden", R1, ACC, "P1"}, NULL),
	                 TERN_REASON_NONE);
	assert_true(tern_wf_records_get(h, R1)->stub);
	assert_string_equal(state_of(h, R1), "accepted");
	assert_int_equal(decide(h, "iom", TERN_ROLE_MOVEMENT, 0,
	                        (struct dec){D2, "sweden", R1, REJ, NULL}, NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "rejected");
	b.case_id = CASE;
	b.decision_id = D1;
	b.status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED;
	assert_int_equal(tern_workflow_judge(&m, "iom", TERN_ROLE_MOVEMENT, 1, lookup, h, &v),
	                 TERN_OK);
	assert_int_equal(v.reason, TERN_REASON_SUPERSEDED);
	tern_wf_verdict_clear(&v);
	/* The stub is a trace, not a referral: a later decision citing R1 is not
	 * refused as citing something that is not a referral; after a rejection,
	 * final for the referral, it is refused as unhcr refuses it. */
	assert_int_equal(decide(h, "iom", TERN_ROLE_MOVEMENT, 0,
	                        (struct dec){NEW, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);
}

/* Attack (issue 15 review): IOM traces a thread it never saw start (a stub
 * under the referral's id). Before, any State could move that trace: portugal,
 * to which R1 was never referred, "rejects" R1 at IOM, after which IOM's own
 * node refuses to book travel on sweden's acceptance (superseded by
 * portugal's decision). The trace now remembers the parties of the message
 * that started it; a sender outside them is refused reference-not-shared. */
static void test_a_stranger_moves_the_stub(void **state)
{
	tern_wf_records *h = holds_nothing();
	Tern__V1__TravelConfirmation b = TERN__V1__TRAVEL_CONFIRMATION__INIT;
	static const char *const to[] = {"sweden", "unhcr"};
	tern_wf_msg m = {.msgid = T1,
	                 .type = tern_msgtype_by_name("travel-confirmation"),
	                 .sender = "iom",
	                 .to = to,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;

	(void)state;
	assert_int_equal(decide(h, "iom", TERN_ROLE_MOVEMENT, 0,
	                        (struct dec){D1, "sweden", R1, ACC, "P1"}, NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(decide(h, "iom", TERN_ROLE_MOVEMENT, 0,
	                        (struct dec){D2, "portugal", R1, REJ, NULL}, NULL),
	                 TERN_REASON_REFERENCE_NOT_SHARED);
	assert_string_equal(state_of(h, R1), "accepted");
	b.case_id = CASE;
	b.decision_id = D1;
	b.status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED;
	assert_int_equal(tern_workflow_judge(&m, "iom", TERN_ROLE_MOVEMENT, 1, lookup, h, &v),
	                 TERN_OK);
	assert_int_equal(v.reason, TERN_REASON_NONE);
	tern_wf_verdict_clear(&v);
	tern_wf_records_free(&h);
}

static void test_recipient_roles(void **state)
{
	(void)state;
	assert_false(
	    tern_workflow_recipient_ok(tern_msgtype_by_name("case-referral"), TERN_ROLE_MOVEMENT));
	assert_false(
	    tern_workflow_recipient_ok(tern_msgtype_by_name("case-referral"), TERN_ROLE_REFERRER));
	assert_true(tern_workflow_recipient_ok(tern_msgtype_by_name("case-referral"),
	                                       TERN_ROLE_REFERRER | TERN_ROLE_STATE));
	assert_true(tern_workflow_recipient_ok(tern_msgtype_by_name("acceptance-decision"),
	                                       TERN_ROLE_MOVEMENT));
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("travel-confirmation"),
	                                        TERN_ROLE_MOVEMENT));
	assert_true(
	    tern_workflow_recipient_ok(tern_msgtype_by_name("receipt"), TERN_ROLE_MOVEMENT));
	for (int s = 1; s < TERN_CASE_STATE_COUNT; s++) {
		tern_case_state back;
		assert_int_equal(tern_case_state_parse(tern_case_state_name(s), &back), TERN_OK);
		assert_int_equal(back, s);
	}
}

/* --- the rest of the lifecycle ------------------------------------------------ */

#define Q1 "01900000-0000-7000-8000-000000000041"
#define Q2 "01900000-0000-7000-8000-000000000042"
#define A1 "01900000-0000-7000-8000-000000000051"
#define A2 "01900000-0000-7000-8000-000000000052"
#define U1 "01900000-0000-7000-8000-000000000061"
#define U2 "01900000-0000-7000-8000-000000000062"
#define U3 "01900000-0000-7000-8000-000000000063"
#define H1 "01900000-0000-7000-8000-000000000071"
#define O1 "01900000-0000-7000-8000-000000000081"
#define X1 "01900000-0000-7000-8000-000000000091"
#define X2 "01900000-0000-7000-8000-000000000092"
#define STATE TERN_ROLE_STATE
#define MOVE TERN_ROLE_MOVEMENT

/* Judges a message of type at self (a sender when self is its sender),
 * keeping it if allowed. text (256 bytes) gets the verdict's text. */
static tern_reason judge_as(tern_wf_records *h, const char *self, unsigned roles, const char *type,
                            const char *id, const char *sender, const ProtobufCMessage *body,
                            char *text, int *unknown_ref)
{
	static const char *const to[] = {"unhcr", "sweden", "iom"};
	tern_wf_msg m = {.msgid = id,
	                 .type = tern_msgtype_by_name(type),
	                 .sender = sender,
	                 .to = to,
	                 .nto = 3,
	                 .case_id = CASE,
	                 .body = body};
	tern_wf_verdict v;
	tern_reason r;

	assert_non_null(m.type);
	assert_int_equal(
	    tern_workflow_judge(&m, self, roles, strcmp(self, sender) == 0, lookup, h, &v),
	    TERN_OK);
	r = v.reason;
	if (text)
		snprintf(text, 256, "%s", v.text);
	if (unknown_ref)
		*unknown_ref = v.unknown_ref;
	if (r == TERN_REASON_NONE)
		keep(h, id, &v);
	else
		tern_wf_verdict_clear(&v);
	return r;
}

/* sweden asks unhcr (received at unhcr). */
static tern_reason ask(tern_wf_records *h, const char *id, const char *referral)
{
	Tern__V1__InformationRequest b = TERN__V1__INFORMATION_REQUEST__INIT;

	b.case_id = CASE;
	b.referral_id = (char *)referral;
	b.questions = "Which school year?";
	return judge_as(h, "unhcr", REF, "information-request", id, "sweden", &b.base, NULL, NULL);
}

/* unhcr answers (received at sweden). */
static tern_reason answer(tern_wf_records *h, const char *id, const char *request, int *unknown_ref)
{
	Tern__V1__InformationResponse b = TERN__V1__INFORMATION_RESPONSE__INIT;

	b.case_id = CASE;
	b.request_id = (char *)request;
	b.answers = "Year 3.";
	return judge_as(h, "sweden", STATE, "information-response", id, "unhcr", &b.base, NULL,
	                unknown_ref);
}

/* The State asks, the referrer answers, the case waits for a decision
 * again; an answer cites the request still standing, in its state. */
static void test_information_request_and_response(void **state)
{
	tern_wf_records *h = unhcr_holds();
	int unknown = 0;

	(void)state;
	assert_int_equal(ask(h, Q1, R2), TERN_REASON_REFERENCE_NOT_SHARED);
	assert_int_equal(answer(h, A1, Q1, &unknown), TERN_REASON_UNKNOWN_REFERENCE);
	assert_true(unknown);
	assert_int_equal(ask(h, Q1, R1), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "info-requested");
	assert_int_equal(answer(h, A1, R1, NULL),
	                 TERN_REASON_UNKNOWN_REFERENCE); /* not a request */
	assert_int_equal(answer(h, A1, Q1, NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "referred");
	/* One answer per request: a second finds the case no longer waiting. */
	assert_int_equal(answer(h, A2, Q1, NULL), TERN_REASON_WRONG_STATE);
	assert_int_equal(ask(h, Q2, R1), TERN_REASON_NONE);
	assert_int_equal(answer(h, A2, Q1, NULL), TERN_REASON_SUPERSEDED);
	assert_int_equal(answer(h, A2, Q2, NULL), TERN_REASON_NONE);
	/* Once decided, the State asks no more on this referral. */
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(ask(h, X1, R1), TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);
}

/* unhcr updates R1, received at sweden (or at a party of roles). */
static tern_reason update_at(tern_wf_records *h, const char *self, unsigned roles, const char *id,
                             Tern__V1__CaseUpdate__Kind kind, const char *person, char *text)
{
	Tern__V1__CaseUpdate b = TERN__V1__CASE_UPDATE__INIT;
	Tern__V1__Member mem = TERN__V1__MEMBER__INIT;
	Tern__V1__Member *mems[1] = {&mem};
	char *ids[1] = {(char *)person};

	b.case_id = CASE;
	b.referral_id = R1;
	b.kind = kind;
	if (kind == TERN__V1__CASE_UPDATE__KIND__MEMBER_ADDED) {
		mem.person_id = (char *)person;
		b.added_members = mems;
		b.n_added_members = 1;
	} else if (kind == TERN__V1__CASE_UPDATE__KIND__MEMBER_REMOVED) {
		b.removed_person_ids = ids;
		b.n_removed_person_ids = 1;
	} else if (kind == TERN__V1__CASE_UPDATE__KIND__PRIORITY_CHANGED) {
		b.priority = TERN__V1__CASE_REFERRAL__PRIORITY__URGENT;
	} else {
		b.reason = "Another durable solution.";
	}
	return judge_as(h, self, roles, "case-update", id, "unhcr", &b.base, text, NULL);
}

#define ADDED TERN__V1__CASE_UPDATE__KIND__MEMBER_ADDED
#define REMOVED TERN__V1__CASE_UPDATE__KIND__MEMBER_REMOVED
#define PRIORITY TERN__V1__CASE_UPDATE__KIND__PRIORITY_CHANGED
#define WITHDRAWN TERN__V1__CASE_UPDATE__KIND__WITHDRAWN

static size_t persons_of(tern_wf_records *h, const char *root)
{
	const tern_wf_record *r = tern_wf_records_get(h, root);

	return r ? r->n_persons : 0;
}

/* A member removed is named no more (a decision on them is refused); a
 * member added may be decided on; only a member may be removed. */
static void test_case_update_members(void **state)
{
	tern_wf_records *h = unhcr_holds();
	char text[256];

	(void)state;
	assert_int_equal(update_at(h, "sweden", STATE, U1, REMOVED, "ZZZ-99", text),
	                 TERN_REASON_UNKNOWN_MEMBER);
	assert_non_null(strstr(text, "removedPersonIds[0]"));
	assert_null(strstr(text, "ZZZ-99"));
	assert_int_equal(update_at(h, "sweden", STATE, U1, REMOVED, "P2", NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "referred");
	assert_int_equal(persons_of(h, R1), 1);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, "P2"}, text),
	    TERN_REASON_UNKNOWN_MEMBER);
	assert_int_equal(update_at(h, "sweden", STATE, U2, REMOVED, "P2", NULL),
	                 TERN_REASON_UNKNOWN_MEMBER);
	assert_int_equal(update_at(h, "sweden", STATE, U2, ADDED, "P3", NULL), TERN_REASON_NONE);
	assert_int_equal(persons_of(h, R1), 2);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, "P3"}, NULL),
	    TERN_REASON_NONE);
	/* Adding a member twice leaves one. */
	assert_int_equal(update_at(h, "sweden", STATE, U3, ADDED, "P3", NULL), TERN_REASON_NONE);
	assert_int_equal(persons_of(h, R1), 2);
	/* A priority change moves nothing. */
	assert_int_equal(update_at(h, "sweden", STATE, X1, PRIORITY, NULL, NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	assert_int_equal(travel(h, "sweden", STATE, T1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P2", NULL),
	                 TERN_REASON_UNKNOWN_MEMBER);
	assert_int_equal(travel(h, "sweden", STATE, T1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P3", NULL),
	                 TERN_REASON_NONE);
	tern_wf_records_free(&h);
}

/* A withdrawn case takes no decision, travel or update after it; a case
 * whose family has departed is not withdrawn. IOM, holding no referral,
 * traces the withdrawal. */
static void test_withdrawal(void **state)
{
	tern_wf_records *h = unhcr_holds();

	(void)state;
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(update_at(h, "sweden", STATE, U1, WITHDRAWN, NULL, NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "withdrawn");
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D2, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_WRONG_STATE);
	assert_int_equal(travel(h, "sweden", STATE, T1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_int_equal(update_at(h, "sweden", STATE, U2, PRIORITY, NULL, NULL),
	                 TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);

	h = unhcr_holds();
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(travel(h, "sweden", STATE, T1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(travel(h, "sweden", STATE, X1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(update_at(h, "sweden", STATE, U1, WITHDRAWN, NULL, NULL),
	                 TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);

	h = holds_nothing();
	assert_int_equal(update_at(h, "iom", MOVE, U1, WITHDRAWN, NULL, NULL), TERN_REASON_NONE);
	assert_true(tern_wf_records_get(h, R1)->stub);
	assert_string_equal(state_of(h, R1), "withdrawn");
	tern_wf_records_free(&h);
}

/* Attack (issue 15 review): IOM traces a withdrawal (the table sends case
 * updates to IOM so that it "learns of a withdrawal before it books"), yet
 * its own node let it book travel on the withdrawn case: a trace followed
 * moves without judging any, its party's own sends included. The
 * recipients refused the booking (wrong-state); IOM's caseworker heard
 * nothing at send time. IOM's own moves are now judged against its trace. */
static void test_iom_books_a_withdrawn_case(void **state)
{
	tern_wf_records *h = holds_nothing();
	Tern__V1__TravelConfirmation b = TERN__V1__TRAVEL_CONFIRMATION__INIT;
	static const char *const to[] = {"sweden", "unhcr"};
	tern_wf_msg m = {.msgid = T1,
	                 .type = tern_msgtype_by_name("travel-confirmation"),
	                 .sender = "iom",
	                 .to = to,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;

	(void)state;
	b.case_id = CASE;
	b.decision_id = D1;
	b.status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED;
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_NONE);
	/* accepted: IOM may book */
	assert_int_equal(tern_workflow_judge(&m, "iom", MOVE, 1, lookup, h, &v), TERN_OK);
	assert_int_equal(v.reason, TERN_REASON_NONE);
	tern_wf_verdict_clear(&v);
	assert_int_equal(update_at(h, "iom", MOVE, U1, WITHDRAWN, NULL, NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "withdrawn");
	assert_int_equal(tern_workflow_judge(&m, "iom", MOVE, 1, lookup, h, &v), TERN_OK);
	assert_int_equal(v.reason, TERN_REASON_WRONG_STATE);
	tern_wf_verdict_clear(&v);
	tern_wf_records_free(&h);
}

static tern_reason assess(tern_wf_records *h, const char *id, const char *decision,
                          const char *person, char *text)
{
	Tern__V1__HealthAssessment b = TERN__V1__HEALTH_ASSESSMENT__INIT;
	Tern__V1__HealthAssessment__MemberAssessment a =
	    TERN__V1__HEALTH_ASSESSMENT__MEMBER_ASSESSMENT__INIT;
	Tern__V1__HealthAssessment__MemberAssessment *as[1] = {&a};

	b.case_id = CASE;
	b.decision_id = (char *)decision;
	a.person_id = (char *)person;
	a.fitness = TERN__V1__HEALTH_ASSESSMENT__FITNESS__FIT;
	b.assessments = as;
	b.n_assessments = 1;
	return judge_as(h, "sweden", STATE, "health-assessment", id, "iom", &b.base, text, NULL);
}

static tern_reason orient(tern_wf_records *h, const char *self, unsigned roles, const char *id,
                          const char *decision, const char *person)
{
	Tern__V1__PreDepartureOrientation b = TERN__V1__PRE_DEPARTURE_ORIENTATION__INIT;
	Tern__V1__PreDepartureOrientation__Attendance a =
	    TERN__V1__PRE_DEPARTURE_ORIENTATION__ATTENDANCE__INIT;
	Tern__V1__PreDepartureOrientation__Attendance *as[1] = {&a};

	b.case_id = CASE;
	b.decision_id = (char *)decision;
	a.person_id = (char *)person;
	a.sessions = 1;
	b.attendance = as;
	b.n_attendance = 1;
	return judge_as(h, self, roles, "pre-departure-orientation", id, "iom", &b.base, NULL,
	                NULL);
}

static tern_reason hand_over(tern_wf_records *h, const char *id, const char *decision,
                             const char *person, char *text)
{
	Tern__V1__ArrivalHandover b = TERN__V1__ARRIVAL_HANDOVER__INIT;
	char *ids[1] = {(char *)person};

	b.case_id = CASE;
	b.decision_id = (char *)decision;
	b.arrived_person_ids = ids;
	b.n_arrived_person_ids = 1;
	return judge_as(h, "sweden", STATE, "arrival-handover", id, "iom", &b.base, text, NULL);
}

/* Health assessment and orientation follow an acceptance and move nothing;
 * the handover follows the arrival and ends the thread. */
static void test_health_orientation_handover(void **state)
{
	tern_wf_records *h = unhcr_holds();
	char text[256];

	(void)state;
	assert_int_equal(assess(h, H1, NEW, "P1", NULL), TERN_REASON_UNKNOWN_DECISION);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0,
	           (struct dec){D1, "sweden", R1, TERN__V1__ACCEPTANCE_DECISION__OUTCOME__DEFERRED,
	                        NULL},
	           NULL),
	    TERN_REASON_NONE);
	assert_int_equal(assess(h, H1, D1, "P1", NULL), TERN_REASON_DECISION_NOT_ACCEPTED);
	assert_int_equal(orient(h, "unhcr", REF, O1, D1, "P1"), TERN_REASON_DECISION_NOT_ACCEPTED);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D2, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	/* D1 deferred (and D2 replaced it): still not an acceptance. */
	assert_int_equal(assess(h, H1, D1, "P1", NULL), TERN_REASON_DECISION_NOT_ACCEPTED);
	assert_int_equal(assess(h, H1, D2, "ZZZ-99", text), TERN_REASON_UNKNOWN_MEMBER);
	assert_non_null(strstr(text, "assessments[0].personId"));
	assert_null(strstr(text, "ZZZ-99"));
	assert_int_equal(hand_over(h, X1, D2, "P1", NULL), TERN_REASON_WRONG_STATE);
	assert_int_equal(assess(h, H1, D2, "P1", NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	assert_int_equal(orient(h, "unhcr", REF, O1, D2, "P2"), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	assert_int_equal(travel(h, "sweden", STATE, T1, D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(orient(h, "sweden", STATE, X2, D2, "P1"), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "booked");
	assert_int_equal(travel(h, "sweden", STATE, "01900000-0000-7000-8000-0000000000a1", D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED, "P1", NULL),
	                 TERN_REASON_NONE);
	/* After the arrival, the health assessment comes too late. */
	assert_int_equal(assess(h, "01900000-0000-7000-8000-0000000000a2", D2, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_int_equal(hand_over(h, X1, D2, "ZZZ-99", text), TERN_REASON_UNKNOWN_MEMBER);
	assert_non_null(strstr(text, "arrivedPersonIds[0]"));
	assert_int_equal(hand_over(h, X1, D2, "P1", NULL), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "handed-over");
	assert_int_equal(hand_over(h, "01900000-0000-7000-8000-0000000000a3", D2, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_int_equal(update_at(h, "sweden", STATE, U1, WITHDRAWN, NULL, NULL),
	                 TERN_REASON_WRONG_STATE);
	tern_wf_records_free(&h);
}

/* Medical data goes to the State only; orientation to the referrer too. */
static void test_new_types_recipient_roles(void **state)
{
	(void)state;
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("health-assessment"),
	                                        TERN_ROLE_REFERRER));
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("health-assessment"),
	                                        TERN_ROLE_MOVEMENT));
	assert_true(
	    tern_workflow_recipient_ok(tern_msgtype_by_name("health-assessment"), TERN_ROLE_STATE));
	assert_true(tern_workflow_recipient_ok(tern_msgtype_by_name("pre-departure-orientation"),
	                                       TERN_ROLE_REFERRER));
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("arrival-handover"),
	                                        TERN_ROLE_REFERRER));
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("information-request"),
	                                        TERN_ROLE_STATE));
	assert_false(tern_workflow_recipient_ok(tern_msgtype_by_name("information-response"),
	                                        TERN_ROLE_REFERRER));
	assert_true(
	    tern_workflow_recipient_ok(tern_msgtype_by_name("case-update"), TERN_ROLE_MOVEMENT));
	/* Every row's type fits the per-type counters, and has a sender role. */
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		assert_true(t->type > 0 && t->type < TERN_MSGTYPE_MAX);
}

static void test_docs_carry_the_types(void **state)
{
	char why[512];
	int rc = tt_docs_section("docs/messages.md", "types", tern_workflow_describe_types,
	                         "types-table.md", why, sizeof(why));

	(void)state;
	if (rc == 1)
		skip();
	if (rc != 0)
		fail_msg("%s", why);
}

static void test_docs_carry_the_table(void **state)
{
	char why[512];
	int rc = tt_docs_section("docs/messages.md", "workflow", tern_workflow_describe,
	                         "workflow-table.md", why, sizeof(why));

	(void)state;
	if (rc == 1)
		skip();
	if (rc != 0)
		fail_msg("%s", why);
}

/* --- attack: several States, out of order (workflow review) ------------------ */

/* A case update from unhcr on R1 to the recipients given, judged at IOM. */
static tern_reason update_to(tern_wf_records *h, const char *id, Tern__V1__CaseUpdate__Kind kind,
                             const char *const *to, size_t nto)
{
	Tern__V1__CaseUpdate b = TERN__V1__CASE_UPDATE__INIT;
	tern_wf_msg m = {.msgid = id,
	                 .type = tern_msgtype_by_name("case-update"),
	                 .sender = "unhcr",
	                 .to = to,
	                 .nto = nto,
	                 .case_id = CASE,
	                 .body = &b.base};
	tern_wf_verdict v;
	tern_reason r;

	b.case_id = CASE;
	b.referral_id = R1;
	b.kind = kind;
	if (kind == PRIORITY)
		b.priority = TERN__V1__CASE_REFERRAL__PRIORITY__URGENT;
	else
		b.reason = "Another durable solution.";
	assert_int_equal(tern_workflow_judge(&m, "iom", MOVE, 0, lookup, h, &v), TERN_OK);
	r = v.reason;
	if (r == TERN_REASON_NONE)
		keep(h, id, &v);
	else
		tern_wf_verdict_clear(&v);
	return r;
}

/* IOM's own booking on decision, judged at IOM as its sender. */
static tern_reason iom_books(tern_wf_records *h, const char *decision)
{
	return travel_as(h, "iom", MOVE, 1, T1, decision,
	                 TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL);
}

/* Attack (workflow review): unhcr withdraws R1 (to sweden and IOM) while
 * sweden, not yet told, accepts it (to unhcr and IOM). The two come to IOM on
 * two streams, in either order. unhcr refuses the acceptance (wrong-state:
 * withdrawn is final) and so does sweden's node once it has the withdrawal;
 * IOM, withdrawal first, follows the acceptance out of the final state: its
 * trace says "accepted" and its own node lets it book travel for a family
 * whose submission was withdrawn. The other order ends "withdrawn". A trace
 * that knows its state should not leave a final one. */
static void test_iom_trace_leaves_withdrawn(void **state)
{
	static const char *const to_sweden_iom[] = {"sweden", "iom"};
	tern_wf_records *h = holds_nothing();

	(void)state;
	assert_int_equal(update_to(h, U1, WITHDRAWN, to_sweden_iom, 2), TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "withdrawn");
	/* unhcr refuses this one, and so does IOM: its trace stays withdrawn */
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_string_equal(state_of(h, R1), "withdrawn");
	assert_null(tern_wf_records_get(h, D1));
	tern_wf_records_free(&h);
}

/* Attack (workflow review): a rejection is final for its referral
 * (docs/messages.md); at IOM an acceptance after it (sweden's node refuses to
 * send one, a forged or old one comes all the same) moves the trace back to
 * "accepted", and IOM may book on it while unhcr refuses it (wrong-state). */
static void test_iom_trace_leaves_rejected(void **state)
{
	tern_wf_records *h = holds_nothing();

	(void)state;
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, REJ, NULL}, NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "rejected");
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D2, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_string_equal(state_of(h, R1), "rejected");
	/* IOM's own booking on the rejection it holds: refused */
	assert_int_not_equal(iom_books(h, D1), TERN_REASON_NONE);
	tern_wf_records_free(&h);
}

/* The first message IOM sees of a thread fixes its parties. A case update
 * that unhcr sends to IOM alone (a priority change IOM should plan by; the
 * table lets a case update go to the movement role only) names no State:
 * the parties are {unhcr, iom}, left open, and the State that decides first
 * takes the open place. Before (a review's attack), sweden, the State R1 was
 * referred to, was refused reference-not-shared at IOM when it accepted, and
 * IOM could never book the case. No hostile member needed. */
static void test_update_to_iom_alone_locks_out_the_state(void **state)
{
	static const char *const to_iom[] = {"iom"};
	tern_wf_records *h = holds_nothing();

	(void)state;
	assert_int_equal(update_to(h, U1, PRIORITY, to_iom, 1), TERN_REASON_NONE);
	assert_true(tern_wf_records_get(h, R1)->stub);
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	/* sweden claimed the open place: another State is refused as before */
	assert_int_equal(
	    decide(h, "iom", MOVE, 0, (struct dec){D2, "portugal", R1, ACC, NULL}, NULL),
	    TERN_REASON_REFERENCE_NOT_SHARED);
	assert_int_equal(iom_books(h, D1), TERN_REASON_NONE);
	tern_wf_records_free(&h);

	/* An update to sweden and IOM names the State: nothing is left open. */
	{
		static const char *const to_sweden_iom[] = {"sweden", "iom"};
		h = holds_nothing();
		assert_int_equal(update_to(h, U1, PRIORITY, to_sweden_iom, 2), TERN_REASON_NONE);
		assert_false(tern_wf_records_get(h, R1)->parties_open);
		assert_int_equal(
		    decide(h, "iom", MOVE, 0, (struct dec){D2, "portugal", R1, ACC, NULL}, NULL),
		    TERN_REASON_REFERENCE_NOT_SHARED);
		tern_wf_records_free(&h);
	}
}

/* The open place is a State's to take: a case update from another referrer
 * member ("ngo") citing R1 takes nothing, and sweden's decision is then
 * taken (a review found the update took the place). */
static void test_open_place_taken_by_a_case_update(void **state)
{
	static const char *const to_iom[] = {"iom"};
	tern_wf_records *h = holds_nothing();
	Tern__V1__CaseUpdate b = TERN__V1__CASE_UPDATE__INIT;

	(void)state;
	assert_int_equal(update_to(h, U1, PRIORITY, to_iom, 1), TERN_REASON_NONE);
	b.case_id = CASE;
	b.referral_id = R1;
	b.kind = PRIORITY;
	b.priority = TERN__V1__CASE_REFERRAL__PRIORITY__URGENT;
	(void)judge_as(h, "iom", MOVE, "case-update", U2, "ngo", &b.base, NULL, NULL);
	assert_int_equal(decide(h, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	                 TERN_REASON_NONE);
	tern_wf_records_free(&h);
}

/* At unhcr (h): sweden accepts R1 (D1), IOM books travel on it (booking). */
static void accepted_and_booked(tern_wf_records *h, const char *booking)
{
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(travel(h, "unhcr", REF, booking, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
}

/* What docs/messages.md ("What the workflow leaves to the agencies") says of
 * decisions after a booking: a new acceptance replaces the one the booking
 * cited (accepted again; the old decision superseded), so IOM books again
 * before a departure; after a rejection no travel follows, a cancellation
 * neither. */
static void test_decisions_after_a_booking(void **state)
{
	static const char *const t[] = {
	    "01900000-0000-7000-8000-000000000041", "01900000-0000-7000-8000-000000000042",
	    "01900000-0000-7000-8000-000000000043", "01900000-0000-7000-8000-000000000044"};
	const char *d3 = "01900000-0000-7000-8000-000000000013";
	tern_wf_records *h = unhcr_holds();

	(void)state;
	accepted_and_booked(h, t[0]);
	assert_string_equal(state_of(h, R1), "booked");
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D2, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "accepted");
	assert_int_equal(travel(h, "unhcr", REF, t[1], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, "P1", NULL),
	                 TERN_REASON_SUPERSEDED);
	assert_int_equal(travel(h, "unhcr", REF, t[1], D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_int_equal(travel(h, "unhcr", REF, t[1], D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "booked");
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){d3, "sweden", R1, REJ, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_string_equal(state_of(h, R1), "rejected");
	assert_int_equal(travel(h, "unhcr", REF, t[2], D2,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_SUPERSEDED);
	assert_int_equal(travel(h, "unhcr", REF, t[3], d3,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_DECISION_NOT_ACCEPTED);
	assert_string_equal(state_of(h, R1), "rejected");
	tern_wf_records_free(&h);

	/* Booked, then withdrawn by the referrer: no cancellation either. */
	h = unhcr_holds();
	accepted_and_booked(h, t[0]);
	assert_int_equal(update_at(h, "sweden", STATE, U1, WITHDRAWN, NULL, NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(travel(h, "sweden", STATE, t[1], D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_WRONG_STATE);
	assert_string_equal(state_of(h, R1), "withdrawn");
	tern_wf_records_free(&h);
}

/* docs/messages.md ("What the workflow leaves to the agencies"): a
 * rejection tells IOM the booking is void only if it goes to IOM. One sent
 * to the referrer alone leaves IOM's trace "booked", and its node lets it
 * send a cancellation that the referrer refuses superseded. */
static void test_rejection_iom_was_not_told(void **state)
{
	static const char *const t1 = "01900000-0000-7000-8000-000000000045",
	                         *const t2 = "01900000-0000-7000-8000-000000000046";
	const char *d3 = "01900000-0000-7000-8000-000000000013";
	tern_wf_records *iom = holds_nothing(), *h = unhcr_holds();

	(void)state;
	assert_int_equal(
	    decide(iom, "iom", MOVE, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(travel_as(iom, "iom", MOVE, 1, t1, D1,
	                           TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_int_equal(travel(h, "unhcr", REF, t1, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, "P1", NULL),
	                 TERN_REASON_NONE);
	/* The rejection goes to unhcr alone. */
	assert_int_equal(
	    decide(h, "unhcr", REF, 0, (struct dec){d3, "sweden", R1, REJ, NULL}, NULL),
	    TERN_REASON_NONE);
	assert_string_equal(state_of(iom, R1), "booked");
	assert_int_equal(travel_as(iom, "iom", MOVE, 1, t2, D1,
	                           TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_NONE);
	assert_int_equal(travel(h, "unhcr", REF, t2, D1,
	                        TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, "P1", NULL),
	                 TERN_REASON_SUPERSEDED);
	tern_wf_records_free(&iom);
	tern_wf_records_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decision_on_a_case_referred_to_another),
	    cmocka_unit_test(test_decision_names_a_stranger),
	    cmocka_unit_test(test_travel_citing_no_decision),
	    cmocka_unit_test(test_travel_after_a_later_rejection),
	    cmocka_unit_test(test_travel_moves),
	    cmocka_unit_test(test_sender_and_old_records),
	    cmocka_unit_test(test_a_party_without_the_referral),
	    cmocka_unit_test(test_a_stranger_moves_the_stub),
	    cmocka_unit_test(test_recipient_roles),
	    cmocka_unit_test(test_information_request_and_response),
	    cmocka_unit_test(test_case_update_members),
	    cmocka_unit_test(test_withdrawal),
	    cmocka_unit_test(test_iom_books_a_withdrawn_case),
	    cmocka_unit_test(test_health_orientation_handover),
	    cmocka_unit_test(test_new_types_recipient_roles),
	    cmocka_unit_test(test_iom_trace_leaves_withdrawn),
	    cmocka_unit_test(test_iom_trace_leaves_rejected),
	    cmocka_unit_test(test_update_to_iom_alone_locks_out_the_state),
	    cmocka_unit_test(test_open_place_taken_by_a_case_update),
	    cmocka_unit_test(test_decisions_after_a_booking),
	    cmocka_unit_test(test_rejection_iom_was_not_told),
	    cmocka_unit_test(test_docs_carry_the_types),
	    cmocka_unit_test(test_docs_carry_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Attack (issue 15 review), not in the suite: paste into
 * tests/unit/test_workflow.c (before main, and add
 * cmocka_unit_test(test_two_states_one_referral) to main's list), then
 * `cmake --build build --target test_workflow && build/bin/test_workflow`.
 *
 * Nothing keeps a referral to one State: unhcr may refer R to sweden and
 * portugal in one message (the broker and the recipients accept it), but the
 * thread has one state at unhcr. portugal's rejection then makes sweden's
 * acceptance of the same referral "wrong-state" at unhcr (a rejection is
 * final), though sweden did nothing wrong; the other order (sweden accepts,
 * then portugal rejects) leaves unhcr saying "rejected", and IOM's travel on
 * sweden's acceptance is refused "superseded" there while sweden takes it.
 * Expected here: either the referral to two States is refused, or each
 * State's decision stands for itself. Fails on 1760928. */
static void test_two_states_one_referral(void **state)
{
	json_t *h = json_object();
	Tern__V1__CaseReferral r = TERN__V1__CASE_REFERRAL__INIT;
	Tern__V1__Member m1 = TERN__V1__MEMBER__INIT;
	Tern__V1__Member *ms[1] = {&m1};
	static const char *const both[] = {"sweden", "portugal"};
	tern_wf_msg m = {.msgid = R1,
	                 .type = tern_msgtype_by_name("case-referral"),
	                 .sender = "unhcr",
	                 .to = both,
	                 .nto = 2,
	                 .case_id = CASE,
	                 .body = &r.base};
	tern_wf_verdict v;
	int refused_referral;

	(void)state;
	r.case_id = CASE;
	m1.person_id = "P1";
	r.members = ms;
	r.n_members = 1;
	assert_int_equal(tern_workflow_judge(&m, "unhcr", TERN_ROLE_REFERRER, 1, lookup, h, &v),
	                 TERN_OK);
	refused_referral = v.reason != TERN_REASON_NONE;
	if (refused_referral) {
		tern_wf_verdict_clear(&v);
		json_decref(h);
		return; /* one fix: a referral goes to one State */
	}
	keep(h, R1, &v);
	assert_int_equal(decide(h, "unhcr", REF, 0, (struct dec){D2, "portugal", R1, REJ, NULL},
	                        NULL),
	                 TERN_REASON_NONE);
	/* sweden's acceptance of the referral sent to it */
	assert_int_equal(decide(h, "unhcr", REF, 0, (struct dec){D1, "sweden", R1, ACC, "P1"},
	                        NULL),
	                 TERN_REASON_NONE);
	json_decref(h);
}

/* The rules of the lifecycle's later messages (information request and
 * response, case update, health assessment, pre-departure orientation,
 * arrival handover); validate.c has the field checks they share and the
 * first three types'. docs/messages.md lists the rules. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/uuid.h>
#include <tern/validate.h>
#include <tern/v1/messages.pb-c.h>

#include "validate_int.h"

void tv_check_info_request(tern_violations *o, const Tern__V1__InformationRequest *r)
{
	int64_t day;

	tv_check_id(o, "caseId", r->case_id);
	tv_check_uuid(o, "referralId", r->referral_id);
	tv_check_text(o, "questions", r->questions, REQUIRED, SUMMARY_MAX_CHARS, 1);
	tv_check_date(o, "respondBy", r->respond_by, 0, &day);
}

/* ------------------------------------------------------------ InformationResponse */

void tv_check_info_response(tern_violations *o, const Tern__V1__InformationResponse *r)
{
	tv_check_id(o, "caseId", r->case_id);
	tv_check_uuid(o, "requestId", r->request_id);
	tv_check_text(o, "answers", r->answers, REQUIRED, SUMMARY_MAX_CHARS, 1);
	for (size_t i = 0; i < r->n_attachments; i++)
		tv_check_attachment(o, i, r->attachments[i]);
}

/* ------------------------------------------------------------ CaseUpdate */

void tv_check_case_update(tern_violations *o, const Tern__V1__CaseUpdate *u, int64_t now_ms)
{
	int added = u->kind == TERN__V1__CASE_UPDATE__KIND__MEMBER_ADDED,
	    removed = u->kind == TERN__V1__CASE_UPDATE__KIND__MEMBER_REMOVED,
	    priority = u->kind == TERN__V1__CASE_UPDATE__KIND__PRIORITY_CHANGED,
	    withdrawn = u->kind == TERN__V1__CASE_UPDATE__KIND__WITHDRAWN;

	tv_check_id(o, "caseId", u->case_id);
	tv_check_uuid(o, "referralId", u->referral_id);
	tv_check_enum(o, "kind", &tern__v1__case_update__kind__descriptor, u->kind, 1);

	if (added && u->n_added_members == 0)
		tv_add(o, "must list at least one member when kind is MEMBER_ADDED",
		       "addedMembers");
	if (!added && u->n_added_members > 0)
		tv_add(o, "must be empty unless kind is MEMBER_ADDED", "addedMembers");
	for (size_t i = 0; added && i < u->n_added_members; i++)
		tv_check_member(o, "addedMembers", i, u->added_members[i], tv_today(now_ms));
	tv_check_member_ids(o, (const Tern__V1__Member *const *)u->added_members,
	                    u->n_added_members, "addedMembers");

	if (removed)
		tv_check_person_ids(o, "removedPersonIds", u->removed_person_ids,
		                    u->n_removed_person_ids,
		                    "must list at least one person when kind is MEMBER_REMOVED");
	else if (u->n_removed_person_ids > 0)
		tv_add(o, "must be empty unless kind is MEMBER_REMOVED", "removedPersonIds");

	if (priority)
		tv_check_enum(o, "priority", &tern__v1__case_referral__priority__descriptor,
		              u->priority, 1);
	else if (u->priority != 0)
		tv_add(o, "must be left out unless kind is PRIORITY_CHANGED", "priority");

	tv_check_text(o, "reason", u->reason,
	              withdrawn ? "is required when kind is WITHDRAWN" : NULL, SUMMARY_MAX_CHARS,
	              1);
}

/* ------------------------------------------------------------ HealthAssessment */

void tv_check_health(tern_violations *o, const Tern__V1__HealthAssessment *h, int64_t now_ms)
{
	const char **keys;

	tv_check_id(o, "caseId", h->case_id);
	tv_check_uuid(o, "decisionId", h->decision_id);
	if (h->n_assessments == 0)
		tv_add(o, "must assess at least one member", "assessments");
	for (size_t i = 0; i < h->n_assessments; i++) {
		const Tern__V1__HealthAssessment__MemberAssessment *a = h->assessments[i];
		int conditional =
		    a->fitness == TERN__V1__HEALTH_ASSESSMENT__FITNESS__FIT_WITH_CONDITIONS;
		int not_yet = a->fitness == TERN__V1__HEALTH_ASSESSMENT__FITNESS__NOT_YET_FIT;
		char path[64];

		snprintf(path, sizeof(path), "assessments[%zu].personId", i);
		tv_check_id(o, path, a->person_id);
		snprintf(path, sizeof(path), "assessments[%zu].fitness", i);
		tv_check_enum(o, path, &tern__v1__health_assessment__fitness__descriptor,
		              a->fitness, 1);
		snprintf(path, sizeof(path), "assessments[%zu].conditions", i);
		if (conditional && a->n_conditions == 0)
			tv_add(
			    o,
			    "must list at least one condition when fitness is FIT_WITH_CONDITIONS",
			    "%s", path);
		else if (!conditional && a->n_conditions > 0)
			tv_add(o, "must be empty unless fitness is FIT_WITH_CONDITIONS", "%s",
			       path);
		else
			tv_check_enum_list(o, path,
			                   &tern__v1__health_assessment__condition__descriptor,
			                   (const int *)a->conditions, a->n_conditions);
		snprintf(path, sizeof(path), "assessments[%zu].deferral", i);
		if (not_yet)
			tv_check_enum(o, path, &tern__v1__health_assessment__deferral__descriptor,
			              a->deferral, 1);
		else if (a->deferral != 0)
			tv_add(o, "must be left out unless fitness is NOT_YET_FIT", "%s", path);
		snprintf(path, sizeof(path), "assessments[%zu].examinedOn", i);
		tv_check_past_date(o, path, a->examined_on, now_ms);
	}
	if (h->n_assessments > 1 && (keys = tv_keys(o, h->n_assessments, "assessments")) != NULL) {
		for (size_t i = 0; i < h->n_assessments; i++)
			keys[i] = h->assessments[i]->person_id;
		tv_check_unique(o, keys, h->n_assessments, "assessments", ".personId",
		                "must be unique: one assessment per person");
		free(keys);
	}
}

/* ------------------------------------------------------------ PreDepartureOrientation */

void tv_check_orientation(tern_violations *o, const Tern__V1__PreDepartureOrientation *p,
                          int64_t now_ms)
{
	const char **keys;

	tv_check_id(o, "caseId", p->case_id);
	tv_check_uuid(o, "decisionId", p->decision_id);
	if (p->n_attendance == 0)
		tv_add(o, "must list at least one member's attendance", "attendance");
	for (size_t i = 0; i < p->n_attendance; i++) {
		const Tern__V1__PreDepartureOrientation__Attendance *a = p->attendance[i];
		char path[64];

		snprintf(path, sizeof(path), "attendance[%zu].personId", i);
		tv_check_id(o, path, a->person_id);
		snprintf(path, sizeof(path), "attendance[%zu].lastSessionOn", i);
		tv_check_past_date(o, path, a->last_session_on, now_ms);
		if (a->sessions == 0)
			tv_add(o, "must be at least 1", "attendance[%zu].sessions", i);
		snprintf(path, sizeof(path), "attendance[%zu].topics", i);
		tv_check_enum_list(o, path, &tern__v1__pre_departure_orientation__topic__descriptor,
		                   (const int *)a->topics, a->n_topics);
	}
	if (p->n_attendance > 1 && (keys = tv_keys(o, p->n_attendance, "attendance")) != NULL) {
		for (size_t i = 0; i < p->n_attendance; i++)
			keys[i] = p->attendance[i]->person_id;
		tv_check_unique(o, keys, p->n_attendance, "attendance", ".personId",
		                "must be unique: one attendance record per person");
		free(keys);
	}
}

/* ------------------------------------------------------------ ArrivalHandover */

void tv_check_handover(tern_violations *o, const Tern__V1__ArrivalHandover *h)
{
	tv_check_id(o, "caseId", h->case_id);
	tv_check_uuid(o, "decisionId", h->decision_id);
	tv_check_person_ids(o, "arrivedPersonIds", h->arrived_person_ids, h->n_arrived_person_ids,
	                    "must list at least one person who arrived");
	tv_check_text(o, "receptionLocation", h->reception_location, REQUIRED, CONTACT_MAX_CHARS,
	              0);
	if (tv_empty(h->handed_over_at))
		tv_add(o, "is required", "handedOverAt");
	else if (!tern_datetime_parse(h->handed_over_at, NULL))
		tv_add(o,
		       "must be an RFC 3339 date-time with an offset, such as 2026-03-01T09:30:00Z",
		       "handedOverAt");
	tv_check_enum_list(o, "followUpNeeds",
	                   &tern__v1__arrival_handover__follow_up_need__descriptor,
	                   (const int *)h->follow_up_needs, h->n_follow_up_needs);
	tv_check_text(o, "followUpNote", h->follow_up_note, NULL, SUMMARY_MAX_CHARS, 1);
}

/* ------------------------------------------------------------ Receipt */

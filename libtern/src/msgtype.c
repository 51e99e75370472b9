#include <stdio.h>
#include <string.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/workflow.h>
#include <tern/v1/messages.pb-c.h>

#define B(s) TERN_CASE_BIT(TERN_CASE_##s)
/* Decisions may come while no one has travelled yet: a State may accept
 * after deferring or asking for more, or withdraw an acceptance before the
 * flight (security screening). A rejection is final for its referral: a new
 * referral starts a new thread. */
#define BEFORE_TRAVEL                                                                              \
	(B(REFERRED) | B(INFO_REQUESTED) | B(DEFERRED) | B(ACCEPTED) | B(BOOKED) | B(CANCELLED))
static const tern_wf_transition referral_moves[] = {
    {-1, B(NONE), TERN_CASE_REFERRED},
    {0, 0, 0},
};
static const tern_wf_transition decision_moves[] = {
    {TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED, BEFORE_TRAVEL, TERN_CASE_ACCEPTED},
    {TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED, BEFORE_TRAVEL, TERN_CASE_REJECTED},
    {TERN__V1__ACCEPTANCE_DECISION__OUTCOME__DEFERRED, BEFORE_TRAVEL, TERN_CASE_DEFERRED},
    {TERN__V1__ACCEPTANCE_DECISION__OUTCOME__MORE_INFORMATION_REQUESTED, BEFORE_TRAVEL,
     TERN_CASE_INFO_REQUESTED},
    {0, 0, 0},
};
/* BOOKED may be sent again (a new itinerary) and after a cancellation;
 * ARRIVED may follow BOOKED directly (no DEPARTED sent). */
static const tern_wf_transition travel_moves[] = {
    {TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED, B(ACCEPTED) | B(BOOKED) | B(CANCELLED),
     TERN_CASE_BOOKED},
    {TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED, B(BOOKED), TERN_CASE_DEPARTED},
    {TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED, B(BOOKED) | B(DEPARTED), TERN_CASE_ARRIVED},
    {TERN__V1__TRAVEL_CONFIRMATION__STATUS__CANCELLED, B(ACCEPTED) | B(BOOKED),
     TERN_CASE_CANCELLED},
    {0, 0, 0},
};

/* A State asks for more information while it has not decided, or put its
 * decision off; the referrer's response puts the case back before it. */
static const tern_wf_transition info_request_moves[] = {
    {-1, B(REFERRED) | B(DEFERRED) | B(INFO_REQUESTED), TERN_CASE_INFO_REQUESTED},
    {0, 0, 0},
};
static const tern_wf_transition info_response_moves[] = {
    {-1, B(INFO_REQUESTED), TERN_CASE_REFERRED},
    {0, 0, 0},
};
/* The referrer updates or withdraws a case until the family departs; a
 * withdrawn case takes no decision or travel after it. */
static const tern_wf_transition update_moves[] = {
    {TERN__V1__CASE_UPDATE__KIND__MEMBER_ADDED, BEFORE_TRAVEL, TERN_WF_KEEP},
    {TERN__V1__CASE_UPDATE__KIND__MEMBER_REMOVED, BEFORE_TRAVEL, TERN_WF_KEEP},
    {TERN__V1__CASE_UPDATE__KIND__PRIORITY_CHANGED, BEFORE_TRAVEL, TERN_WF_KEEP},
    {TERN__V1__CASE_UPDATE__KIND__WITHDRAWN, BEFORE_TRAVEL, TERN_CASE_WITHDRAWN},
    {0, 0, 0},
};
/* Health assessment and orientation come between acceptance and departure,
 * and move nothing. */
static const tern_wf_transition pre_departure_moves[] = {
    {-1, B(ACCEPTED) | B(BOOKED), TERN_WF_KEEP},
    {0, 0, 0},
};
static const tern_wf_transition handover_moves[] = {
    {-1, B(ARRIVED), TERN_CASE_HANDED_OVER},
    {0, 0, 0},
};

/* The workflow table (tern/workflow.h), in the order of a case. */
static const tern_msgtype types[] = {
    {.type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
     .name = "case-referral",
     .desc = &tern__v1__case_referral__descriptor,
     .sender_roles = TERN_ROLE_REFERRER,
     .recipient_roles = TERN_ROLE_STATE,
     /* A case is considered by one State at a time: each State's decision
      * answers its own referral, and a thread has one state. Referring it to
      * another State is a new referral, a new thread. */
     .max_recipients = 1,
     .purpose = "refers a case (a family) to a State for resettlement or relocation",
     .members_field = "members.person_id",
     .transitions = referral_moves},
    /* The State that holds the referral asks; only the referrer judges the
     * reference (it holds its referrals). */
    {.type = TERN__V1__MESSAGE_TYPE__INFORMATION_REQUEST,
     .name = "information-request",
     .desc = &tern__v1__information_request__descriptor,
     .sender_roles = TERN_ROLE_STATE,
     .recipient_roles = TERN_ROLE_REFERRER,
     .purpose = "asks the referrer for additional information on a referral before deciding",
     .ref_field = "referral_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
     .ref_holders = TERN_ROLE_REFERRER,
     .transitions = info_request_moves},
    {.type = TERN__V1__MESSAGE_TYPE__INFORMATION_RESPONSE,
     .name = "information-response",
     .desc = &tern__v1__information_response__descriptor,
     .sender_roles = TERN_ROLE_REFERRER,
     .recipient_roles = TERN_ROLE_STATE,
     .purpose = "answers an information request; the State decides again",
     .ref_field = "request_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__INFORMATION_REQUEST,
     .ref_holders = TERN_ROLE_STATE,
     .transitions = info_response_moves},
    /* To the State, and to IOM (movement), which traces the thread from it
     * (it holds no referral) and learns of a withdrawal before it books. */
    {.type = TERN__V1__MESSAGE_TYPE__CASE_UPDATE,
     .name = "case-update",
     .desc = &tern__v1__case_update__descriptor,
     .sender_roles = TERN_ROLE_REFERRER,
     .recipient_roles = TERN_ROLE_STATE | TERN_ROLE_MOVEMENT,
     .purpose = "adds or removes a member, changes the priority, or withdraws the submission",
     .ref_field = "referral_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
     .ref_holders = TERN_ROLE_STATE,
     .members_field = "removed_person_ids",
     .members_added = "added_members.person_id",
     .members_removed = "removed_person_ids",
     .state_field = "kind",
     .transitions = update_moves},
    /* To the referrer, and to IOM (movement) once accepted: IOM holds no
     * referral, so only the referrer judges the reference. */
    {.type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION,
     .name = "acceptance-decision",
     .desc = &tern__v1__acceptance_decision__descriptor,
     .sender_roles = TERN_ROLE_STATE,
     .recipient_roles = TERN_ROLE_REFERRER | TERN_ROLE_MOVEMENT,
     .purpose = "accepts, rejects or defers a referral, or asks for more information",
     .ref_field = "referral_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
     .ref_holders = TERN_ROLE_REFERRER,
     .members_field = "member_decisions.person_id",
     .state_field = "outcome",
     .transitions = decision_moves},
    /* Medical data: to the State only, never to the referrer. */
    {.type = TERN__V1__MESSAGE_TYPE__HEALTH_ASSESSMENT,
     .name = "health-assessment",
     .desc = &tern__v1__health_assessment__descriptor,
     .sender_roles = TERN_ROLE_MOVEMENT,
     .recipient_roles = TERN_ROLE_STATE,
     .purpose = "reports each member's fitness to travel after the pre-departure health "
                "assessment (medical data: to the State only)",
     .ref_field = "decision_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION,
     .ref_holders = TERN_ROLE_STATE,
     .ref_value = "ACCEPTED",
     .members_field = "assessments.person_id",
     .transitions = pre_departure_moves},
    {.type = TERN__V1__MESSAGE_TYPE__PRE_DEPARTURE_ORIENTATION,
     .name = "pre-departure-orientation",
     .desc = &tern__v1__pre_departure_orientation__descriptor,
     .sender_roles = TERN_ROLE_MOVEMENT,
     .recipient_roles = TERN_ROLE_STATE | TERN_ROLE_REFERRER,
     .purpose = "reports the pre-departure orientation sessions each member attended",
     .ref_field = "decision_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION,
     .ref_holders = TERN_ROLE_STATE | TERN_ROLE_REFERRER,
     .ref_value = "ACCEPTED",
     .members_field = "attendance.person_id",
     .transitions = pre_departure_moves},
    {.type = TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION,
     .name = "travel-confirmation",
     .desc = &tern__v1__travel_confirmation__descriptor,
     .sender_roles = TERN_ROLE_MOVEMENT,
     .recipient_roles = TERN_ROLE_STATE | TERN_ROLE_REFERRER,
     .purpose = "books travel, reports departure or arrival, or cancels",
     .ref_field = "decision_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION,
     .ref_holders = TERN_ROLE_STATE | TERN_ROLE_REFERRER,
     .ref_value = "ACCEPTED",
     .members_field = "travellers",
     .state_field = "status",
     .transitions = travel_moves},
    {.type = TERN__V1__MESSAGE_TYPE__ARRIVAL_HANDOVER,
     .name = "arrival-handover",
     .desc = &tern__v1__arrival_handover__descriptor,
     .sender_roles = TERN_ROLE_MOVEMENT,
     .recipient_roles = TERN_ROLE_STATE,
     .purpose = "hands the arrived family over to the State's reception, with the follow-up "
                "it needs",
     .ref_field = "decision_id",
     .ref_type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION,
     .ref_holders = TERN_ROLE_STATE,
     .ref_value = "ACCEPTED",
     .members_field = "arrived_person_ids",
     .transitions = handover_moves},
    /* Any member acknowledges what it received. */
    {.type = TERN__V1__MESSAGE_TYPE__RECEIPT,
     .name = "receipt",
     .desc = &tern__v1__receipt__descriptor,
     .purpose = "acknowledges an envelope it received, or refuses it with a reason"},
    {.type = TERN__V1__MESSAGE_TYPE__MESSAGE_TYPE_UNSPECIFIED},
};
#undef B

const tern_msgtype *tern_msgtype_all(void)
{
	return types;
}

const tern_msgtype *tern_msgtype_by_name(const char *name)
{
	for (const tern_msgtype *t = types; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

const tern_msgtype *tern_msgtype_by_type(Tern__V1__MessageType type)
{
	for (const tern_msgtype *t = types; t->name; t++)
		if (t->type == type)
			return t;
	return NULL;
}

void tern_msgtype_names(char *buf, size_t len, const char *sep, int business_only)
{
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (const tern_msgtype *t = types; t->name; t++) {
		if (business_only && t->type == TERN__V1__MESSAGE_TYPE__RECEIPT)
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? sep : "", t->name);
		if (n < 0 || (size_t)n >= len - off) {
			buf[off] = '\0';
			break;
		}
		off += (size_t)n;
	}
}

static const char *const role_names[] = {
    [TERN__V1__ROLE__REFERRER] = "referrer",
    [TERN__V1__ROLE__STATE] = "state",
    [TERN__V1__ROLE__MOVEMENT] = "movement",
    [TERN__V1__ROLE__BROKER] = "broker",
};
#define NROLES (sizeof(role_names) / sizeof(role_names[0]))

int tern_role_parse(const char *name, unsigned *bit)
{
	for (size_t i = 1; i < NROLES; i++) {
		if (strcmp(role_names[i], name) == 0) {
			*bit = 1u << i;
			return TERN_OK;
		}
	}
	return TERN_EINVAL;
}

int tern_roles_parse(const char *list, unsigned *bits)
{
	char buf[128], *save = NULL;
	unsigned acc = 0, b;

	if (strlen(list) >= sizeof(buf))
		return TERN_EINVAL;
	strcpy(buf, list);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (tern_role_parse(tok, &b) != TERN_OK)
			return TERN_EINVAL;
		acc |= b;
	}
	if (acc == 0)
		return TERN_EINVAL;
	*bits = acc;
	return TERN_OK;
}

void tern_roles_format(unsigned bits, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 1; i < NROLES; i++) {
		if (!(bits & (1u << i)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", role_names[i]);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

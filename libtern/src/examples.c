/* Example bodies (see tern/examples.h). Written as JSON and passed through the
 * codec, so an example can never drift from the schema unnoticed. */
#include <stdio.h>
#include <string.h>

#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/msgtype.h>

#include "util.h"

static const char referral[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"programme\": \"RESETTLEMENT\","
    " \"referringOffice\": \"UNHCR Amman (example)\","
    " \"priority\": \"NORMAL\","
    " \"submissionCategory\": \"LEGAL_PHYSICAL_PROTECTION\","
    " \"secondaryCategory\": \"MEDICAL_NEEDS\","
    " \"caseSize\": 4,"
    " \"members\": ["
    "  {\"personId\": \"AMM-26C00417-01\", \"givenName\": \"Samira\", \"familyName\": \"Example\","
    "   \"dateOfBirth\": \"1988-04-12\", \"sex\": \"F\", \"nationality\": \"SYR\","
    "   \"relationship\": \"PRINCIPAL_APPLICANT\"},"
    "  {\"personId\": \"AMM-26C00417-02\", \"givenName\": \"Karim\", \"familyName\": \"Example\","
    "   \"dateOfBirth\": \"1985-11-30\", \"sex\": \"M\", \"nationality\": \"SYR\","
    "   \"relationship\": \"SPOUSE\"},"
    "  {\"personId\": \"AMM-26C00417-03\", \"givenName\": \"Lina\", \"familyName\": \"Example\","
    "   \"dateOfBirth\": \"2016-02-29\", \"sex\": \"F\", \"nationality\": \"SYR\","
    "   \"relationship\": \"CHILD\"},"
    "  {\"personId\": \"AMM-26C00417-04\", \"givenName\": \"Omar\", \"familyName\": \"Example\","
    "   \"dateOfBirth\": \"2020-07-03\", \"sex\": \"M\", \"nationality\": \"XXA\","
    "   \"relationship\": \"CHILD\"}],"
    " \"countryOfAsylum\": \"JOR\","
    " \"linkedCases\": [\"AMM-26C00388\"],"
    " \"needsSummary\": \"Fictional example. The principal applicant faces a documented risk of"
    " refoulement; the younger child needs follow-up for a heart condition.\"}";

static const char decision[] = "{\"caseId\": \"AMM-26C00417\","
                               " \"referralId\": \"019a3c5e-8f10-7b2a-9c4d-5e6f7a8b9c0d\","
                               " \"outcome\": \"ACCEPTED\","
                               " \"memberDecisions\": ["
                               "  {\"personId\": \"AMM-26C00417-01\", \"outcome\": \"ACCEPTED\"},"
                               "  {\"personId\": \"AMM-26C00417-02\", \"outcome\": \"ACCEPTED\"},"
                               "  {\"personId\": \"AMM-26C00417-03\", \"outcome\": \"ACCEPTED\"},"
                               "  {\"personId\": \"AMM-26C00417-04\", \"outcome\": \"ACCEPTED\"}],"
                               " \"validUntil\": \"2032-12-31\","
                               " \"interview\": {\"mode\": \"REMOTE\", \"date\": \"2026-09-08\"}}";

static const char travel[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"decisionId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\","
    " \"status\": \"BOOKED\","
    " \"travellers\": [\"AMM-26C00417-01\", \"AMM-26C00417-02\", \"AMM-26C00417-03\","
    "  \"AMM-26C00417-04\"],"
    " \"legs\": ["
    "  {\"carrier\": \"RJ\", \"flightNumber\": \"125\", \"from\": \"AMM\", \"to\": \"FRA\","
    "   \"departsAt\": \"2027-02-16T03:10:00+03:00\", \"arrivesAt\": "
    "\"2027-02-16T06:40:00+01:00\"},"
    "  {\"carrier\": \"LH\", \"flightNumber\": \"470\", \"from\": \"FRA\", \"to\": \"YYZ\","
    "   \"departsAt\": \"2027-02-16T10:05:00+01:00\", \"arrivesAt\": "
    "\"2027-02-16T12:55:00-05:00\"}],"
    " \"escort\": true,"
    " \"fitToTravel\": true,"
    " \"receptionContact\": \"Reception duty officer, Example City welcome centre,"
    " +1 555 0100\"}";

static const char info_request[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"referralId\": \"019a3c5e-8f10-7b2a-9c4d-5e6f7a8b9c0d\","
    " \"questions\": \"Please confirm whether the younger child's heart condition needs surgery"
    " before travel, and attach the latest specialist report if there is one.\","
    " \"respondBy\": \"2026-10-15\"}";

static const char info_response[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"requestId\": \"019a5d10-2c3e-7f40-8a5b-6c7d8e9f0a1b\","
    " \"answers\": \"Fictional example. The specialist advises follow-up after arrival; no"
    " surgery is needed before travel; the report goes with this answer\"}";

static const char case_update[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"referralId\": \"019a3c5e-8f10-7b2a-9c4d-5e6f7a8b9c0d\","
    " \"kind\": \"MEMBER_ADDED\","
    " \"addedMembers\": ["
    "  {\"personId\": \"AMM-26C00417-05\", \"givenName\": \"Nour\", \"familyName\": \"Example\","
    "   \"dateOfBirth\": \"2026-08-01\", \"sex\": \"F\", \"nationality\": \"XXA\","
    "   \"relationship\": \"CHILD\"}],"
    " \"reason\": \"Fictional example. A child was born to the principal applicant.\"}";

static const char health[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"decisionId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\","
    " \"assessments\": ["
    "  {\"personId\": \"AMM-26C00417-01\", \"fitness\": \"FIT\", \"examinedOn\": \"2026-10-20\"},"
    "  {\"personId\": \"AMM-26C00417-02\", \"fitness\": \"FIT\", \"examinedOn\": \"2026-10-20\"},"
    "  {\"personId\": \"AMM-26C00417-03\", \"fitness\": \"FIT\", \"examinedOn\": \"2026-10-20\"},"
    "  {\"personId\": \"AMM-26C00417-04\", \"fitness\": \"FIT_WITH_CONDITIONS\","
    "   \"conditions\": [\"MEDICAL_ESCORT\", \"OXYGEN\"], \"examinedOn\": \"2026-10-21\"}]}";

static const char orientation[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"decisionId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\","
    " \"attendance\": ["
    "  {\"personId\": \"AMM-26C00417-01\", \"lastSessionOn\": \"2026-11-05\", \"sessions\": 3,"
    "   \"topics\": [\"TRAVEL\", \"ARRIVAL_AND_RECEPTION\", \"HOUSING\", \"EMPLOYMENT\","
    "    \"RIGHTS_AND_RESPONSIBILITIES\"]},"
    "  {\"personId\": \"AMM-26C00417-02\", \"lastSessionOn\": \"2026-11-05\", \"sessions\": 3,"
    "   \"topics\": [\"TRAVEL\", \"ARRIVAL_AND_RECEPTION\", \"HOUSING\", \"EMPLOYMENT\","
    "    \"RIGHTS_AND_RESPONSIBILITIES\"]},"
    "  {\"personId\": \"AMM-26C00417-03\", \"lastSessionOn\": \"2026-11-04\", \"sessions\": 1,"
    "   \"topics\": [\"TRAVEL\", \"EDUCATION\"]}]}";

static const char handover[] =
    "{\"caseId\": \"AMM-26C00417\","
    " \"decisionId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\","
    " \"arrivedPersonIds\": [\"AMM-26C00417-01\", \"AMM-26C00417-02\", \"AMM-26C00417-03\","
    "  \"AMM-26C00417-04\"],"
    " \"receptionLocation\": \"Example City welcome centre, arrivals hall\","
    " \"handedOverAt\": \"2027-02-16T14:20:00-05:00\","
    " \"followUpNeeds\": [\"MEDICAL_FOLLOW_UP\", \"SCHOOLING\"],"
    " \"followUpNote\": \"Fictional example. Cardiology follow-up for the younger child within"
    " four weeks; the older child starts school this term.\"}";

static const char receipt[] =
    "{\"messageId\": \"019a8e21-4b7c-7d90-8e1f-2a3b4c5d6e7f\","
    " \"envelopeDigest\": \"n7TGm5hPgt4LJ6rMGb2Y3bnTbm9qe1yGbBq9X0hBmGQ=\","
    " \"status\": \"ACCEPTED\"}";

static const struct {
	const char *name;
	const char *json;
} examples[] = {
    {"case-referral", referral},
    {"acceptance-decision", decision},
    {"travel-confirmation", travel},
    {"information-request", info_request},
    {"information-response", info_response},
    {"case-update", case_update},
    {"health-assessment", health},
    {"pre-departure-orientation", orientation},
    {"arrival-handover", handover},
    {"receipt", receipt},
};

int tern_example_json(const char *type_name, char **out)
{
	const tern_msgtype *t;
	ProtobufCMessage *msg = NULL;
	char err[256];
	int rc;

	if (type_name == NULL || out == NULL)
		return tern_fail(TERN_EINVAL, "tern_example_json: missing argument");
	if ((t = tern_msgtype_by_name(type_name)) == NULL)
		return tern_fail(TERN_ENOENT, "no message type named %s", type_name);
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		if (strcmp(examples[i].name, type_name) != 0)
			continue;
		rc = tern_json_parse_text(t->desc, examples[i].json, strlen(examples[i].json), &msg,
		                          err, sizeof(err));
		if (rc != TERN_OK)
			return tern_fail(rc, "example %s does not decode: %s", type_name, err);
		rc = tern_json_dump_text(msg, out);
		tern_json_message_free(&msg);
		return rc;
	}
	return tern_fail(TERN_ENOENT, "no example for %s", type_name);
}

/* Business-message validation: the rules a caseworker expects a body to meet
 * before it is sent, and that a recipient checks again on arrival.
 *
 * Every violation is reported as a field path in JSON names
 * ("members[1].dateOfBirth") and a short English rule ("must be a real date
 * YYYY-MM-DD"). Violations never contain field values: bodies hold personal
 * data. The rules are listed in docs/messages.md. UUID fields are checked
 * with tern_uuid_valid() (tern/uuid.h).
 */
#ifndef TERN_VALIDATE_H
#define TERN_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_VIOLATIONS_MAX 64

typedef struct tern_violation {
	char path[96];  /* JSON field path; "" for the message as a whole */
	char rule[160]; /* what the field must satisfy */
} tern_violation;

typedef struct tern_violations {
	size_t count;  /* entries used in v */
	int truncated; /* 1 if more than TERN_VIOLATIONS_MAX were found */
	tern_violation v[TERN_VIOLATIONS_MAX];
} tern_violations;

/* Checks msg (a CaseReferral, AcceptanceDecision, TravelConfirmation or
 * Receipt) against the rules; now_ms (milliseconds since the Unix epoch, UTC)
 * is "now" for rules such as "not in the future". out is filled either way.
 * Returns TERN_OK when there is no violation, TERN_EINVALID when there is at
 * least one, TERN_EINVAL for a NULL argument or another message type.
 * TERN_ENOMEM when the only entries are rules that could not be checked for
 * lack of memory: no verdict on msg (it neither passes unchecked nor is
 * refused for a shortage); the caller checks again later. */
int tern_validate(const ProtobufCMessage *msg, int64_t now_ms, tern_violations *out);

/* 1 if s is an officially assigned ISO 3166-1 alpha-3 code; with icao also
 * the ICAO Doc 9303 codes XXA (stateless), XXB and XXC (refugees) and XXX
 * (nationality unspecified). */
int tern_country_valid(const char *s, int icao);

/* 1 if s is a real calendar date "YYYY-MM-DD" (proleptic Gregorian, leap
 * years); *days (may be NULL) receives days since 1970-01-01. */
int tern_date_parse(const char *s, int64_t *days);

/* 1 if s is an RFC 3339 date-time with a time offset ("Z" or "+hh:mm") and a
 * possible time: hour 00-23, minute 00-59, second 00-59 (no leap second, see
 * docs/messages.md), offset at most 23:59;
 * *ms (may be NULL) receives the instant in milliseconds since the epoch. */
int tern_datetime_parse(const char *s, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif

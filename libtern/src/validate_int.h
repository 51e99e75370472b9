/* What validate.c and validate_lifecycle.c share: the limits and the field
 * checks, internal to libtern (hidden). Each check adds its violations to o
 * (see tern/validate.h: paths and rules, never values). */
#ifndef TERN_VALIDATE_INT_H
#define TERN_VALIDATE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <tern/validate.h>
#include <tern/v1/messages.pb-c.h>

#define TV_HIDDEN __attribute__((visibility("hidden")))

#define MS_PER_DAY 86400000LL

/* Free-text limits, in characters (code points). */
#define NAME_MAX_CHARS 100
#define OFFICE_MAX_CHARS 128
#define CONTACT_MAX_CHARS 200
#define SUMMARY_MAX_CHARS 4000
#define REASON_TEXT_MAX_CHARS 500
#define FILE_NAME_MAX_BYTES 255

/* The rule of a missing required field (tv_check_text's `required`). */
#define REQUIRED "is required"

TV_HIDDEN void tv_add(tern_violations *o, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
TV_HIDDEN int tv_empty(const char *s);
TV_HIDDEN int tv_is_digit(char c);
/* validate_codes.c: three upper-case letters; days since 1970-01-01 (proleptic
 * Gregorian) of a date. */
TV_HIDDEN int tv_alpha3_shape(const char *s);
TV_HIDDEN int64_t tv_days_from_civil(int64_t y, int64_t m, int64_t d);
/* Today's day number (days since 1970-01-01, UTC) for now_ms. */
TV_HIDDEN int64_t tv_today(int64_t now_ms);
/* required: the rule when s is empty or blank, NULL when s is optional. */
TV_HIDDEN void tv_check_text(tern_violations *o, const char *path, const char *s,
                             const char *required, size_t max, int multiline);
TV_HIDDEN void tv_check_id(tern_violations *o, const char *path, const char *s);
TV_HIDDEN void tv_check_uuid(tern_violations *o, const char *path, const char *s);
TV_HIDDEN void tv_check_enum(tern_violations *o, const char *path,
                             const ProtobufCEnumDescriptor *ed, int value, int required);
TV_HIDDEN void tv_check_enum_list(tern_violations *o, const char *path,
                                  const ProtobufCEnumDescriptor *ed, const int *values, size_t n);
/* *days (may be NULL): the date's day number when it is one. */
TV_HIDDEN void tv_check_date(tern_violations *o, const char *path, const char *s, int required,
                             int64_t *days);
TV_HIDDEN void tv_check_past_date(tern_violations *o, const char *path, const char *s,
                                  int64_t now_ms);
TV_HIDDEN void tv_check_unique(tern_violations *o, const char *const *keys, size_t n,
                               const char *prefix, const char *suffix, const char *rule);
/* The rule of a list that could not be checked for repeats: it does not pass
 * unchecked. */
#define UNCHECKED_RULE "could not be checked for repeats (out of memory)"
/* Room for n keys for tv_check_unique (free it); NULL when out of memory,
 * after adding UNCHECKED_RULE at prefix. */
TV_HIDDEN const char **tv_keys(tern_violations *o, size_t n, const char *prefix);
TV_HIDDEN void tv_check_attachment(tern_violations *o, size_t i, const Tern__V1__Attachment *a);
TV_HIDDEN void tv_check_member(tern_violations *o, const char *list, size_t i,
                               const Tern__V1__Member *m, int64_t now_day);
TV_HIDDEN void tv_check_member_ids(tern_violations *o, const Tern__V1__Member *const *ms, size_t n,
                                   const char *list);
TV_HIDDEN void tv_check_person_ids(tern_violations *o, const char *path, char *const *ids, size_t n,
                                   const char *none_rule);

/* validate_lifecycle.c: the later lifecycle types. */
TV_HIDDEN void tv_check_info_request(tern_violations *o, const Tern__V1__InformationRequest *r);
TV_HIDDEN void tv_check_info_response(tern_violations *o, const Tern__V1__InformationResponse *r);
TV_HIDDEN void tv_check_case_update(tern_violations *o, const Tern__V1__CaseUpdate *u,
                                    int64_t now_ms);
TV_HIDDEN void tv_check_health(tern_violations *o, const Tern__V1__HealthAssessment *h,
                               int64_t now_ms);
TV_HIDDEN void tv_check_orientation(tern_violations *o, const Tern__V1__PreDepartureOrientation *p,
                                    int64_t now_ms);
TV_HIDDEN void tv_check_handover(tern_violations *o, const Tern__V1__ArrivalHandover *h);

#endif

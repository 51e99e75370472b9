/* Business-message rules (see tern/validate.h and docs/messages.md): the field
 * checks the types share and the rules of referrals, decisions, travel and
 * receipts. Codes, dates and times are in validate_codes.c, the later
 * lifecycle types in validate_lifecycle.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/uuid.h>
#include <tern/validate.h>
#include <tern/v1/messages.pb-c.h>

#include "util.h"
#include "validate_int.h"

static int is_hex_lower(char c)
{
	return tv_is_digit(c) || (c >= 'a' && c <= 'f');
}

static int is_alnum(char c)
{
	return tv_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

void tv_add(tern_violations *o, const char *rule, const char *fmt, ...)
{
	va_list ap;
	tern_violation *v;

	if (o->count >= TERN_VIOLATIONS_MAX) {
		o->truncated = 1;
		return;
	}
	v = &o->v[o->count++];
	va_start(ap, fmt);
	vsnprintf(v->path, sizeof(v->path), fmt, ap);
	va_end(ap);
	snprintf(v->rule, sizeof(v->rule), "%s", rule);
}

int tv_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* 1 if code point c shows nothing on its own: Unicode White_Space (U+0009-U+000D,
 * U+0020, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000) or an invisible format character typed or pasted as one (U+180E
 * MONGOLIAN VOWEL SEPARATOR, U+200B-U+200D zero-width space and joiners, U+2060
 * WORD JOINER, U+FEFF ZERO WIDTH NO-BREAK SPACE). */
static int blank_code_point(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       c == 0x180e || (c >= 0x2000 && c <= 0x200d) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x2060 || c == 0x3000 || c == 0xfeff;
}

/* 1 if s (valid UTF-8) is made only of blank code points. */
static int blank(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t c;
		int n;

		if (*p < 0x80) {
			c = *p;
			n = 1;
		} else if ((*p & 0xe0) == 0xc0) {
			c = *p & 0x1f;
			n = 2;
		} else if ((*p & 0xf0) == 0xe0) {
			c = *p & 0x0f;
			n = 3;
		} else {
			c = *p & 0x07;
			n = 4;
		}
		for (int i = 1; i < n; i++)
			c = (c << 6) | (p[i] & 0x3f);
		if (!blank_code_point(c))
			return 0;
		p += n;
	}
	return 1;
}

/* Free text: valid UTF-8, no control characters (newline and tab allowed in
 * multi-line fields), at most max characters. required is NULL for optional
 * text, else the rule reported when the text is missing; required text made only
 * of white space (see blank_code_point) counts as missing. */
void tv_check_text(tern_violations *o, const char *path, const char *s, const char *required,
                   size_t max, int multiline)
{
	char rule[sizeof(o->v[0].rule)];

	if (tv_empty(s)) {
		if (required)
			tv_add(o, required, "%s", path);
		return;
	}
	if (!tern_utf8_valid(s, strlen(s))) {
		tv_add(o, "must be valid UTF-8", "%s", path);
		return;
	}
	if (required && blank(s)) {
		snprintf(rule, sizeof(rule), "%s; must not be blank (only white space)", required);
		tv_add(o, rule, "%s", path);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 || *p == 0x7f) && !(multiline && (*p == '\n' || *p == '\t'))) {
			tv_add(
			    o,
			    multiline
			        ? "must not contain control characters other than newline and tab"
			        : "must not contain control characters or line breaks",
			    "%s", path);
			break;
		}
	}
	if (utf8_chars(s) > max) {
		snprintf(rule, sizeof(rule), "must be at most %zu characters", max);
		tv_add(o, rule, "%s", path);
	}
}

/* Case and person ids: 1-64 of [A-Za-z0-9-_/.], starting with a letter or digit. */
static int id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || !is_alnum(s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("-_/.", s[i]))
			return 0;
	return 1;
}

#define ID_RULE "must be 1-64 characters of A-Z a-z 0-9 - _ / . starting with a letter or digit"

void tv_check_id(tern_violations *o, const char *path, const char *s)
{
	if (tv_empty(s))
		tv_add(o, "is required", "%s", path);
	else if (!id_valid(s))
		tv_add(o, ID_RULE, "%s", path);
}

void tv_check_uuid(tern_violations *o, const char *path, const char *s)
{
	if (tv_empty(s))
		tv_add(o, "is required", "%s", path);
	else if (!tern_uuid_valid(s))
		tv_add(o, "must be a UUID in canonical lower-case form (8-4-4-4-12 hex digits)",
		       "%s", path);
}

void tv_check_enum(tern_violations *o, const char *path, const ProtobufCEnumDescriptor *ed,
                   int value, int required)
{
	char rule[128];

	if (protobuf_c_enum_descriptor_get_value(ed, value) == NULL) {
		snprintf(rule, sizeof(rule), "must be one of the values of %s", ed->short_name);
		tv_add(o, rule, "%s", path);
	} else if (required && value == 0) {
		const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(ed, 0);
		snprintf(rule, sizeof(rule), "is required (must not be %s)",
		         zero ? zero->name : "unspecified");
		tv_add(o, rule, "%s", path);
	}
}

/* A real date; *days is INT64_MIN when absent or not a date, so callers can skip bounds. */
void tv_check_date(tern_violations *o, const char *path, const char *s, int required, int64_t *days)
{
	*days = INT64_MIN;
	if (tv_empty(s)) {
		if (required)
			tv_add(o, "is required", "%s", path);
		return;
	}
	if (!tern_date_parse(s, days)) {
		*days = INT64_MIN;
		tv_add(o, "must be a real date YYYY-MM-DD", "%s", path);
	}
}

static void check_country(tern_violations *o, const char *path, const char *s, int icao)
{
	if (tv_empty(s))
		tv_add(o, "is required", "%s", path);
	else if (!tv_alpha3_shape(s))
		tv_add(o, "must be an ISO 3166-1 alpha-3 code (three upper-case letters)", "%s",
		       path);
	else if (!tern_country_valid(s, icao))
		tv_add(o,
		       icao
		           ? "must be an officially assigned ISO 3166-1 alpha-3 code or one of the "
		             "ICAO "
		             "codes XXA, XXB, XXC, XXX"
		           : "must be an officially assigned ISO 3166-1 alpha-3 code",
		       "%s", path);
}

struct keyed {
	const char *key;
	size_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reports every repeat of a non-empty key (not its first occurrence) as
 * prefix[i]suffix. Sorting keeps this O(n log n) on hostile input. */
void tv_check_unique(tern_violations *o, const char *const *keys, size_t n, const char *prefix,
                     const char *suffix, const char *rule)
{
	struct keyed *k;
	size_t m = 0;

	if (n < 2)
		return;
	if ((k = malloc(n * sizeof(*k))) == NULL) {
		tv_add(o, UNCHECKED_RULE, "%s", prefix);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!tv_empty(keys[i]))
			k[m++] = (struct keyed){keys[i], i};
	qsort(k, m, sizeof(*k), cmp_keyed);
	for (size_t i = 1; i < m; i++)
		if (strcmp(k[i].key, k[i - 1].key) == 0)
			tv_add(o, rule, "%s[%zu]%s", prefix, k[i].idx, suffix);
	free(k);
}

const char **tv_keys(tern_violations *o, size_t n, const char *prefix)
{
	const char **k = malloc(n * sizeof(*k));

	if (k == NULL)
		tv_add(o, UNCHECKED_RULE, "%s", prefix);
	return k;
}

int64_t tv_today(int64_t now_ms)
{
	return now_ms >= 0 ? now_ms / MS_PER_DAY : -((-now_ms + MS_PER_DAY - 1) / MS_PER_DAY);
}

/* ------------------------------------------------------------ CaseReferral */

void tv_check_attachment(tern_violations *o, size_t i, const Tern__V1__Attachment *a)
{
	char path[64];
	const char *mt = a->media_type, *slash;
	int ok = 0;

	snprintf(path, sizeof(path), "attachments[%zu].name", i);
	tv_check_text(o, path, a->name, REQUIRED, NAME_MAX_CHARS * 2, 0);
	if (!tv_empty(a->name) && (strchr(a->name, '/') || strchr(a->name, '\\') ||
	                           strcmp(a->name, ".") == 0 || strcmp(a->name, "..") == 0))
		tv_add(o, "must be a file name without directories", "attachments[%zu].name", i);
	if (!tv_empty(a->name) && strlen(a->name) > FILE_NAME_MAX_BYTES)
		tv_add(o, "must be at most 255 bytes long", "attachments[%zu].name", i);

	if (tv_empty(mt)) {
		tv_add(o, "is required", "attachments[%zu].mediaType", i);
	} else {
		/* RFC 6838 restricted names: type "/" subtype, no parameters. */
		if ((slash = strchr(mt, '/')) != NULL && slash > mt && slash[1] != '\0' &&
		    is_alnum(mt[0]) && is_alnum(slash[1]) && strlen(mt) <= 255) {
			ok = 1;
			for (const char *p = mt; *p; p++)
				if (p != slash && !is_alnum(*p) && !strchr("!#$&^_.+-", *p))
					ok = 0;
		}
		if (!ok)
			tv_add(o, "must be a media type type/subtype, such as application/pdf",
			       "attachments[%zu].mediaType", i);
	}

	if (tv_empty(a->sha256)) {
		tv_add(o, "is required", "attachments[%zu].sha256", i);
	} else {
		ok = strlen(a->sha256) == 64;
		for (const char *p = a->sha256; ok && *p; p++)
			ok = is_hex_lower(*p);
		if (!ok)
			tv_add(o, "must be a SHA-256 digest: 64 lower-case hex digits",
			       "attachments[%zu].sha256", i);
	}
	if (a->size == 0)
		tv_add(o, "must be greater than 0", "attachments[%zu].size", i);
}

/* The member's field path: its list's prefix, formatted once, and the field
 * copied after it. Six snprintf calls a member were a few per cent of a
 * node's CPU per referral, for paths only a violation reads. */
static const char *member_path(char *path, size_t size, size_t pre, const char *field)
{
	size_t n = strlen(field);

	if (pre + n >= size)
		n = size - pre - 1;
	memcpy(path + pre, field, n);
	path[pre + n] = 0;
	return path;
}

void tv_check_member(tern_violations *o, const char *list, size_t i, const Tern__V1__Member *m,
                     int64_t now_day)
{
	char path[64];
	int pn = snprintf(path, sizeof(path), "%s[%zu].", list, i);
	size_t pre = pn < 0 ? 0 : (size_t)pn < sizeof(path) ? (size_t)pn : sizeof(path) - 1;
	int64_t dob;

	tv_check_id(o, member_path(path, sizeof(path), pre, "personId"), m->person_id);
	tv_check_text(o, member_path(path, sizeof(path), pre, "givenName"), m->given_name, REQUIRED,
	              NAME_MAX_CHARS, 0);
	tv_check_text(o, member_path(path, sizeof(path), pre, "familyName"), m->family_name,
	              REQUIRED, NAME_MAX_CHARS, 0);

	tv_check_date(o, member_path(path, sizeof(path), pre, "dateOfBirth"), m->date_of_birth, 1,
	              &dob);
	if (dob != INT64_MIN && dob < tv_days_from_civil(1900, 1, 1))
		tv_add(o, "must not be before 1900-01-01", "%s", path);
	if (dob != INT64_MIN && dob > now_day)
		tv_add(o, "must not be in the future", "%s", path);

	member_path(path, sizeof(path), pre, "sex");
	if (tv_empty(m->sex))
		tv_add(o, "is required", "%s", path);
	else if (strcmp(m->sex, "F") != 0 && strcmp(m->sex, "M") != 0 && strcmp(m->sex, "X") != 0)
		tv_add(o, "must be F, M or X (ICAO Doc 9303)", "%s", path);

	check_country(o, member_path(path, sizeof(path), pre, "nationality"), m->nationality, 1);
	tv_check_enum(o, member_path(path, sizeof(path), pre, "relationship"),
	              &tern__v1__member__relationship__descriptor, m->relationship, 1);
}

/* Person ids in a list of messages: each valid, none twice. */
void tv_check_member_ids(tern_violations *o, const Tern__V1__Member *const *ms, size_t n,
                         const char *list)
{
	const char **keys;

	if (n < 2 || (keys = tv_keys(o, n, list)) == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		keys[i] = ms[i]->person_id;
	tv_check_unique(o, keys, n, list, ".personId", "must be unique within the case");
	free(keys);
}

/* A list of person ids: at least one when required, each an id, none twice. */
void tv_check_person_ids(tern_violations *o, const char *path, char *const *ids, size_t n,
                         const char *none_rule)
{
	if (n == 0 && none_rule)
		tv_add(o, none_rule, "%s", path);
	for (size_t i = 0; i < n; i++)
		if (tv_empty(ids[i]) || !id_valid(ids[i]))
			tv_add(o, ID_RULE, "%s[%zu]", path, i);
	tv_check_unique(o, (const char *const *)ids, n, path, "", "must not list a person twice");
}

/* A date that happened: real, and not after today. */
void tv_check_past_date(tern_violations *o, const char *path, const char *s, int64_t now_ms)
{
	int64_t day;

	tv_check_date(o, path, s, 1, &day);
	if (day != INT64_MIN && day > tv_today(now_ms))
		tv_add(o, "must not be in the future", "%s", path);
}

/* A repeated enum: each a defined value other than the unspecified one,
 * none twice. */
void tv_check_enum_list(tern_violations *o, const char *path, const ProtobufCEnumDescriptor *ed,
                        const int *values, size_t n)
{
	char p[64];

	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		tv_check_enum(o, p, ed, values[i], 1);
		for (size_t j = 0; j < i; j++)
			if (values[j] == values[i]) {
				tv_add(o, "must not be listed twice", "%s", p);
				break;
			}
	}
}

static void check_referral(tern_violations *o, const Tern__V1__CaseReferral *r, int64_t now_ms)
{
	int64_t now_day = tv_today(now_ms);
	size_t principals = 0;

	tv_check_id(o, "caseId", r->case_id);
	tv_check_enum(o, "programme", &tern__v1__case_referral__programme__descriptor, r->programme,
	              1);
	tv_check_text(o, "referringOffice", r->referring_office, REQUIRED, OFFICE_MAX_CHARS, 0);
	tv_check_enum(o, "priority", &tern__v1__case_referral__priority__descriptor, r->priority,
	              1);
	tv_check_enum(o, "submissionCategory", &tern__v1__submission_category__descriptor,
	              r->submission_category, 1);
	tv_check_enum(o, "secondaryCategory", &tern__v1__submission_category__descriptor,
	              r->secondary_category, 0);
	if (r->secondary_category != 0 && r->secondary_category == r->submission_category)
		tv_add(o, "must differ from submissionCategory", "secondaryCategory");

	if (r->n_members == 0)
		tv_add(o, "must list at least one member", "members");
	if (r->case_size != r->n_members)
		tv_add(o, "must equal the number of members", "caseSize");
	for (size_t i = 0; i < r->n_members; i++) {
		tv_check_member(o, "members", i, r->members[i], now_day);
		if (r->members[i]->relationship ==
		    TERN__V1__MEMBER__RELATIONSHIP__PRINCIPAL_APPLICANT) {
			if (++principals > 1)
				tv_add(o,
				       "must not be PRINCIPAL_APPLICANT: the case already has one",
				       "members[%zu].relationship", i);
		}
	}
	if (r->n_members > 0 && principals == 0)
		tv_add(o, "must include exactly one PRINCIPAL_APPLICANT (none found)", "members");
	tv_check_member_ids(o, (const Tern__V1__Member *const *)r->members, r->n_members,
	                    "members");

	check_country(o, "countryOfAsylum", r->country_of_asylum, 0);

	for (size_t i = 0; i < r->n_linked_cases; i++) {
		const char *l = r->linked_cases[i];

		if (tv_empty(l) || !id_valid(l))
			tv_add(o, ID_RULE, "linkedCases[%zu]", i);
		else if (!tv_empty(r->case_id) && strcmp(l, r->case_id) == 0)
			tv_add(o, "must not be the case itself", "linkedCases[%zu]", i);
	}
	tv_check_unique(o, (const char *const *)r->linked_cases, r->n_linked_cases, "linkedCases",
	                "", "must not repeat a linked case");

	tv_check_text(o, "needsSummary", r->needs_summary, NULL, SUMMARY_MAX_CHARS, 1);
	for (size_t i = 0; i < r->n_attachments; i++)
		tv_check_attachment(o, i, r->attachments[i]);
}

/* ------------------------------------------------------------ AcceptanceDecision */

static void check_decision(tern_violations *o, const Tern__V1__AcceptanceDecision *d,
                           int64_t now_ms)
{
	const ProtobufCEnumDescriptor *oed = &tern__v1__acceptance_decision__outcome__descriptor;
	const char *reasons_required = NULL;
	int64_t valid_until, iday;
	size_t accepted = 0;
	const char **keys;

	tv_check_id(o, "caseId", d->case_id);
	tv_check_uuid(o, "referralId", d->referral_id);
	tv_check_enum(o, "outcome", oed, d->outcome, 1);

	if (d->outcome != TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED &&
	    d->outcome != TERN__V1__ACCEPTANCE_DECISION__OUTCOME__OUTCOME_UNSPECIFIED)
		reasons_required =
		    "is required when outcome is REJECTED, DEFERRED or MORE_INFORMATION_REQUESTED";
	tv_check_text(o, "reasons", d->reasons, reasons_required, SUMMARY_MAX_CHARS, 1);

	for (size_t i = 0; i < d->n_member_decisions; i++) {
		const Tern__V1__AcceptanceDecision__MemberDecision *md = d->member_decisions[i];
		char path[64];

		snprintf(path, sizeof(path), "memberDecisions[%zu].personId", i);
		tv_check_id(o, path, md->person_id);
		snprintf(path, sizeof(path), "memberDecisions[%zu].outcome", i);
		tv_check_enum(o, path, oed, md->outcome, 1);
		if (md->outcome == TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED) {
			accepted++;
			if (d->outcome == TERN__V1__ACCEPTANCE_DECISION__OUTCOME__REJECTED)
				tv_add(o, "must not be ACCEPTED when the case outcome is REJECTED",
				       "%s", path);
		}
	}
	if (d->n_member_decisions > 0 && accepted == 0 &&
	    d->outcome == TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED)
		tv_add(o, "must accept at least one member when outcome is ACCEPTED",
		       "memberDecisions");
	if (d->n_member_decisions > 1 &&
	    (keys = tv_keys(o, d->n_member_decisions, "memberDecisions")) != NULL) {
		for (size_t i = 0; i < d->n_member_decisions; i++)
			keys[i] = d->member_decisions[i]->person_id;
		tv_check_unique(o, keys, d->n_member_decisions, "memberDecisions", ".personId",
		                "must be unique: one decision per person");
		free(keys);
	}

	tv_check_date(o, "validUntil", d->valid_until,
	              d->outcome == TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED, &valid_until);
	if (valid_until != INT64_MIN && valid_until < tv_today(now_ms) &&
	    d->outcome == TERN__V1__ACCEPTANCE_DECISION__OUTCOME__ACCEPTED)
		tv_add(o, "must not be in the past when outcome is ACCEPTED", "validUntil");

	if (d->interview != NULL) {
		tv_check_enum(o, "interview.mode",
		              &tern__v1__acceptance_decision__interview__mode__descriptor,
		              d->interview->mode, 1);
		tv_check_date(o, "interview.date", d->interview->date, 0, &iday);
		if (d->interview->mode == TERN__V1__ACCEPTANCE_DECISION__INTERVIEW__MODE__DOSSIER &&
		    !tv_empty(d->interview->date))
			tv_add(o, "must be empty when mode is DOSSIER (no interview took place)",
			       "interview.date");
	}
}

/* ------------------------------------------------------------ TravelConfirmation */

static void check_leg(tern_violations *o, size_t i, const Tern__V1__TravelConfirmation__Leg *l,
                      int64_t *dep, int64_t *arr)
{
	const char *c = l->carrier, *f = l->flight_number;
	size_t n;
	int ok;

	*dep = *arr = INT64_MIN;
	if (tv_empty(c))
		tv_add(o, "is required", "legs[%zu].carrier", i);
	else if (strlen(c) != 2 || !(tv_is_digit(c[0]) || (c[0] >= 'A' && c[0] <= 'Z')) ||
	         !(tv_is_digit(c[1]) || (c[1] >= 'A' && c[1] <= 'Z')) ||
	         (tv_is_digit(c[0]) && tv_is_digit(c[1])))
		tv_add(
		    o,
		    "must be a 2-character IATA airline designator (upper-case letters and digits, "
		    "not two digits)",
		    "legs[%zu].carrier", i);

	if (tv_empty(f)) {
		tv_add(o, "is required", "legs[%zu].flightNumber", i);
	} else {
		n = strspn(f, "0123456789");
		ok = n >= 1 && n <= 4 &&
		     (f[n] == '\0' || (f[n] >= 'A' && f[n] <= 'Z' && f[n + 1] == '\0'));
		if (!ok)
			tv_add(o,
			       "must be 1-4 digits, optionally followed by one upper-case letter",
			       "legs[%zu].flightNumber", i);
	}

	if (tv_empty(l->from))
		tv_add(o, "is required", "legs[%zu].from", i);
	else if (!tv_alpha3_shape(l->from))
		tv_add(o, "must be an IATA airport code (three upper-case letters)",
		       "legs[%zu].from", i);
	if (tv_empty(l->to))
		tv_add(o, "is required", "legs[%zu].to", i);
	else if (!tv_alpha3_shape(l->to))
		tv_add(o, "must be an IATA airport code (three upper-case letters)", "legs[%zu].to",
		       i);
	else if (!tv_empty(l->from) && strcmp(l->from, l->to) == 0)
		tv_add(o, "must differ from from", "legs[%zu].to", i);

	if (tv_empty(l->departs_at))
		tv_add(o, "is required", "legs[%zu].departsAt", i);
	else if (!tern_datetime_parse(l->departs_at, dep))
		tv_add(o,
		       "must be an RFC 3339 date-time with an offset, such as 2026-03-01T09:30:00Z",
		       "legs[%zu].departsAt", i);
	if (tv_empty(l->arrives_at))
		tv_add(o, "is required", "legs[%zu].arrivesAt", i);
	else if (!tern_datetime_parse(l->arrives_at, arr))
		tv_add(o,
		       "must be an RFC 3339 date-time with an offset, such as 2026-03-01T09:30:00Z",
		       "legs[%zu].arrivesAt", i);
	if (*dep != INT64_MIN && *arr != INT64_MIN && *arr <= *dep)
		tv_add(o, "must be after departsAt", "legs[%zu].arrivesAt", i);
}

static void check_travel(tern_violations *o, const Tern__V1__TravelConfirmation *t)
{
	const char *contact_required = NULL;
	int64_t prev_arr = INT64_MIN;

	tv_check_id(o, "caseId", t->case_id);
	tv_check_uuid(o, "decisionId", t->decision_id);
	tv_check_enum(o, "status", &tern__v1__travel_confirmation__status__descriptor, t->status,
	              1);

	if (t->n_travellers == 0)
		tv_add(o, "must list at least one traveller", "travellers");
	for (size_t i = 0; i < t->n_travellers; i++)
		if (tv_empty(t->travellers[i]) || !id_valid(t->travellers[i]))
			tv_add(o, ID_RULE, "travellers[%zu]", i);
	tv_check_unique(o, (const char *const *)t->travellers, t->n_travellers, "travellers", "",
	                "must not list a traveller twice");

	for (size_t i = 0; i < t->n_legs; i++) {
		const Tern__V1__TravelConfirmation__Leg *l = t->legs[i];
		int64_t dep, arr;

		check_leg(o, i, l, &dep, &arr);
		if (i > 0) {
			const Tern__V1__TravelConfirmation__Leg *p = t->legs[i - 1];

			if (!tv_empty(p->to) && !tv_empty(l->from) && strcmp(p->to, l->from) != 0)
				tv_add(o, "must be the airport where the previous leg arrives",
				       "legs[%zu].from", i);
			if (dep != INT64_MIN && prev_arr != INT64_MIN && dep <= prev_arr)
				tv_add(o, "must be after the previous leg arrives",
				       "legs[%zu].departsAt", i);
		}
		prev_arr = arr;
	}

	switch (t->status) {
	case TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED:
		if (t->n_legs == 0)
			tv_add(o, "must list at least one leg when status is BOOKED", "legs");
		if (!t->fit_to_travel)
			tv_add(
			    o,
			    "must be true when status is BOOKED (medical clearance before booking)",
			    "fitToTravel");
		break;
	case TERN__V1__TRAVEL_CONFIRMATION__STATUS__DEPARTED:
	case TERN__V1__TRAVEL_CONFIRMATION__STATUS__ARRIVED:
		if (t->n_legs == 0)
			tv_add(o, "must list at least one leg when status is DEPARTED or ARRIVED",
			       "legs");
		contact_required = "is required when status is DEPARTED or ARRIVED";
		break;
	default:
		break;
	}
	tv_check_text(o, "receptionContact", t->reception_contact, contact_required,
	              CONTACT_MAX_CHARS, 0);
}

/* ------------------------------------------------------------ InformationRequest */

static void check_receipt(tern_violations *o, const Tern__V1__Receipt *r)
{
	const char *c = r->reason_code;

	tv_check_uuid(o, "messageId", r->message_id);
	if (r->envelope_digest.len != 32)
		tv_add(o, "must be 32 bytes (SHA-256 of the envelope)", "envelopeDigest");
	tv_check_enum(o, "status", &tern__v1__receipt__status__descriptor, r->status, 1);
	if (tv_empty(c)) {
		if (r->status == TERN__V1__RECEIPT__STATUS__REJECTED)
			tv_add(o, "is required when status is REJECTED", "reasonCode");
	} else {
		int ok = strlen(c) <= 64 && c[0] >= 'a' && c[0] <= 'z';

		for (const char *p = c; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || tv_is_digit(*p) || *p == '-';
		if (!ok)
			tv_add(o, "must be 1-64 characters of a-z 0-9 -, starting with a letter",
			       "reasonCode");
		if (r->status == TERN__V1__RECEIPT__STATUS__ACCEPTED)
			tv_add(o, "must be empty when status is ACCEPTED", "reasonCode");
	}
	tv_check_text(o, "reasonText", r->reason_text, NULL, REASON_TEXT_MAX_CHARS, 0);
}

/* 1 if every entry of o is a list left unchecked for lack of memory: a
 * shortage, not a verdict. A real violation beside them is one. */
static int only_unchecked(const tern_violations *o)
{
	if (o->truncated)
		return 0;
	for (size_t i = 0; i < o->count; i++)
		if (strcmp(o->v[i].rule, UNCHECKED_RULE) != 0)
			return 0;
	return 1;
}

/* Real violations before the lists left unchecked, each kind in its order:
 * the first entry is what a refusal names (a node's negative receipt), and
 * it must be a rule the message breaks, not this node's shortage. */
static void real_first(tern_violations *o)
{
	tern_violation tmp[TERN_VIOLATIONS_MAX];
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < o->count; i++)
			if ((strcmp(o->v[i].rule, UNCHECKED_RULE) == 0) == pass)
				tmp[n++] = o->v[i];
	memcpy(o->v, tmp, n * sizeof(tmp[0]));
}

int tern_validate(const ProtobufCMessage *msg, int64_t now_ms, tern_violations *out)
{
	const ProtobufCMessageDescriptor *d;

	if (out == NULL)
		return tern_fail(TERN_EINVAL, "tern_validate: no result buffer");
	out->count = 0;
	out->truncated = 0;
	if (msg == NULL)
		return tern_fail(TERN_EINVAL, "tern_validate: no message");
	d = msg->descriptor;
	if (d == &tern__v1__case_referral__descriptor)
		check_referral(out, (const Tern__V1__CaseReferral *)msg, now_ms);
	else if (d == &tern__v1__acceptance_decision__descriptor)
		check_decision(out, (const Tern__V1__AcceptanceDecision *)msg, now_ms);
	else if (d == &tern__v1__travel_confirmation__descriptor)
		check_travel(out, (const Tern__V1__TravelConfirmation *)msg);
	else if (d == &tern__v1__receipt__descriptor)
		check_receipt(out, (const Tern__V1__Receipt *)msg);
	else if (d == &tern__v1__information_request__descriptor)
		tv_check_info_request(out, (const Tern__V1__InformationRequest *)msg);
	else if (d == &tern__v1__information_response__descriptor)
		tv_check_info_response(out, (const Tern__V1__InformationResponse *)msg);
	else if (d == &tern__v1__case_update__descriptor)
		tv_check_case_update(out, (const Tern__V1__CaseUpdate *)msg, now_ms);
	else if (d == &tern__v1__health_assessment__descriptor)
		tv_check_health(out, (const Tern__V1__HealthAssessment *)msg, now_ms);
	else if (d == &tern__v1__pre_departure_orientation__descriptor)
		tv_check_orientation(out, (const Tern__V1__PreDepartureOrientation *)msg, now_ms);
	else if (d == &tern__v1__arrival_handover__descriptor)
		tv_check_handover(out, (const Tern__V1__ArrivalHandover *)msg);
	else
		return tern_fail(TERN_EINVAL, "tern_validate: %s is not a business message",
		                 d ? d->name : "(no descriptor)");
	if (out->count == 0)
		return TERN_OK;
	if (only_unchecked(out))
		return tern_fail(TERN_ENOMEM, "out of memory checking %s (%s)", d->name,
		                 out->v[0].path);
	real_first(out);
	return tern_fail(TERN_EINVALID, "%s breaks %zu%s validation rule(s)", d->name, out->count,
	                 out->truncated ? "+" : "");
}

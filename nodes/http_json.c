/* The HTTP API's one convention (docs/api.md, "Conventions"): proto3 JSON
 * names (lowerCamelCase), RFC 3339 times, a message type spelled as
 * `case-referral` everywhere, errors as RFC 9457 problem details, and
 * strict request bodies. The local API keeps its own names (snake_case,
 * epoch milliseconds): this file is the one place that translates, both
 * ways, so the node's operations are written once. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/reason.h>

#include "http_int.h"
#include "util.h"

/* "reason_code" and "at-broker" to "reasonCode" and "atBroker". */
static void camel(const char *in, char *out, size_t cap)
{
	size_t j = 0;
	int up = 0;

	for (size_t i = 0; in[i] && j + 1 < cap; i++) {
		if (in[i] == '_' || in[i] == '-') {
			up = j > 0;
			continue;
		}
		out[j++] = up ? (char)toupper((unsigned char)in[i]) : in[i];
		up = 0;
	}
	out[j] = 0;
}

/* Whether key names a time the local API gives in epoch milliseconds. */
static int is_time_key(const char *key)
{
	size_t n = strlen(key);

	return strcmp(key, "at") == 0 || strcmp(key, "until") == 0 ||
	       (n > 3 && strcmp(key + n - 3, "_at") == 0);
}

/* Epoch milliseconds as RFC 3339 UTC with milliseconds; NULL if out of range. */
static json_t *rfc3339(int64_t ms)
{
	char buf[TERN_RFC3339_LEN];

	return tern_time_rfc3339(ms, buf) == TERN_OK ? json_string(buf) : NULL;
}

/* "CASE_REFERRAL" (a header's enum name) to "case-referral". */
static json_t *type_name(const char *e)
{
	char buf[64];
	size_t i;

	for (i = 0; e[i] && i + 1 < sizeof(buf); i++)
		buf[i] = e[i] == '_' ? '-' : (char)tolower((unsigned char)e[i]);
	buf[i] = 0;
	return json_string(buf);
}

/* A header (already proto3 JSON): its type and createdAt in the API's terms. */
static json_t *view_header(const json_t *h)
{
	json_t *o = json_deep_copy(h), *t, *c;

	if (o == NULL)
		return NULL;
	if ((t = json_object_get(o, "type")) && json_is_string(t))
		json_object_set_new(o, "type", type_name(json_string_value(t)));
	/* an int64 in proto3 JSON is a string of digits */
	if ((c = json_object_get(o, "createdAt")) && json_is_string(c)) {
		json_t *r = rfc3339(strtoll(json_string_value(c), NULL, 10));
		if (r)
			json_object_set_new(o, "createdAt", r);
	}
	return o;
}

json_t *node_http_view(const json_t *v)
{
	const char *k;
	json_t *x, *o;
	size_t i;

	if (json_is_array(v)) {
		o = json_array();
		json_array_foreach(v, i, x) json_array_append_new(o, node_http_view(x));
		return o;
	}
	if (!json_is_object(v))
		return json_deep_copy(v);
	o = json_object();
	json_object_foreach((json_t *)v, k, x)
	{
		char name[128];
		json_t *y;

		if (strcmp(k, "ok") == 0 || strcmp(k, "v") == 0)
			continue; /* the status says it */
		camel(k, name, sizeof(name));
		if (strcmp(k, "body") == 0)
			y = json_deep_copy(x); /* a business body is proto3 JSON already */
		else if (strcmp(k, "header") == 0 && json_is_object(x))
			y = view_header(x);
		else if (is_time_key(k) && json_is_integer(x))
			y = json_integer_value(x) > 0 ? rfc3339(json_integer_value(x))
			                              : json_null();
		else
			y = node_http_view(x);
		json_object_set_new(o, name, y ? y : json_null());
	}
	return o;
}

int node_http_fail_ext(tern_http_response *res, int status, const char *code, const char *msg,
                       const json_t *ext)
{
	char *out;
	size_t len;

	res->status = status;
	res->ctype = TERN_HTTP_PROBLEM_CTYPE;
	if (tern_http_problem(status, code, msg, ext, &out, &len) != TERN_OK) {
		res->status = 503;
		return TERN_ENOMEM;
	}
	free(res->out);
	res->out = out;
	res->outlen = len;
	return TERN_OK;
}

int node_http_fail(tern_http_response *res, int status, const char *code, const char *msg)
{
	return node_http_fail_ext(res, status, code, msg, NULL);
}

int node_http_json(tern_http_response *res, int status, const json_t *resp)
{
	json_t *view;
	char *out;
	size_t len;
	int rc;

	if (json_is_false(json_object_get(resp, "ok"))) {
		/* a refusal: its extra members (violations, the offset of a
		 * conflict, the first message of a client_ref) travel with it */
		const char *code = json_string_value(json_object_get(resp, "error"));
		json_t *ext = node_http_view(resp);
		const char *field = json_string_value(json_object_get(ext, "field"));
		json_object_del(ext, "error");
		json_object_del(ext, "message");
		if (field) {
			/* the local API names its argument; the client sent the
			 * camelCase one */
			char c[128];
			camel(field, c, sizeof(c));
			json_object_set_new(ext, "field", json_string(c));
		}
		rc = node_http_fail_ext(res, status < 400 ? 500 : status, code ? code : "internal",
		                        json_string_value(json_object_get(resp, "message")), ext);
		json_decref(ext);
		return rc;
	}
	view = node_http_view(resp);
	out = view ? json_dumps(view, JSON_INDENT(2)) : NULL;
	json_decref(view);
	res->status = status;
	res->ctype = "application/json";
	if (out == NULL) {
		res->status = 503; /* never a 200 without its body */
		return TERN_ENOMEM;
	}
	len = strlen(out);
	{
		char *nl = realloc(out, len + 2);
		if (nl) {
			out = nl;
			memcpy(out + len, "\n", 2);
			len++;
		}
	}
	free(res->out);
	res->out = out;
	res->outlen = len;
	return TERN_OK;
}

static const char *kind_name(node_http_kind k)
{
	switch (k) {
	case NHF_STRING:
		return "a string";
	case NHF_STRINGS:
		return "an array of strings";
	case NHF_OBJECT:
		return "an object";
	case NHF_INT:
		return "an integer";
	case NHF_TIME:
		return "an RFC 3339 time";
	}
	return "?";
}

static int kind_ok(node_http_kind k, const json_t *v)
{
	size_t i;
	json_t *x;

	switch (k) {
	case NHF_STRING:
		return json_is_string(v);
	case NHF_OBJECT:
		return json_is_object(v);
	case NHF_INT:
		return json_is_integer(v);
	case NHF_TIME:
		return 0; /* a query kind only */
	case NHF_STRINGS:
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, i, x) if (!json_is_string(x)) return 0;
		return 1;
	}
	return 0;
}

json_t *node_http_request(tern_http_response *res, const char *body, size_t blen,
                          const node_http_field *fields, size_t n, int optional)
{
	json_error_t je;
	json_t *in, *out, *v;
	const char *k;
	char why[320];
	json_t *ext;

	if (blen == 0 && optional)
		return json_object();
	in = json_loadb(body ? body : "", blen, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(in)) {
		snprintf(why, sizeof(why), "the request body must be a JSON object%s%s",
		         in ? "" : ": ", in ? "" : je.text);
		json_decref(in);
		node_http_fail(res, 400, "invalid-argument", why);
		return NULL;
	}
	out = json_object();
	json_object_foreach(in, k, v)
	{
		const node_http_field *f = NULL;
		for (size_t i = 0; i < n && f == NULL; i++)
			if (strcmp(fields[i].name, k) == 0)
				f = &fields[i];
		if (f == NULL) {
			/* a field of the local API, or one misspelt: name it, and
			 * the right spelling when there is one */
			const char *hint = NULL;
			char c[64];
			camel(k, c, sizeof(c));
			for (size_t i = 0; i < n && hint == NULL; i++)
				if (strcmp(fields[i].name, c) == 0 ||
				    strcasecmp(fields[i].name, k) == 0)
					hint = fields[i].name;
			/* at most 64 bytes of it, not cutting a character in two
			 * (the detail must stay UTF-8) */
			size_t cut = strlen(k);
			if (cut > 64)
				for (cut = 64; cut > 0 && ((unsigned char)k[cut] & 0xC0) == 0x80;
				     cut--)
					;
			snprintf(why, sizeof(why), "unknown field '%.*s'%s%s%s", (int)cut, k,
			         hint ? ": did you mean '" : " (docs/api.md lists the fields)",
			         hint ? hint : "", hint ? "'?" : "");
			ext = json_pack("{s:s}", "field", k);
			node_http_fail_ext(res, 400, "invalid-argument", why, ext);
			goto bad;
		}
		if (!kind_ok(f->kind, v)) {
			snprintf(why, sizeof(why), "field '%s' must be %s", f->name,
			         kind_name(f->kind));
			ext = json_pack("{s:s}", "field", f->name);
			node_http_fail_ext(res, 400, "invalid-argument", why, ext);
			goto bad;
		}
		if (f->kind == NHF_INT &&
		    (json_integer_value(v) < f->min || json_integer_value(v) > f->max)) {
			snprintf(why, sizeof(why), "field '%s' must be %" PRId64 " to %" PRId64,
			         f->name, f->min, f->max);
			ext = json_pack("{s:s}", "field", f->name);
			node_http_fail_ext(res, 400, "invalid-argument", why, ext);
			goto bad;
		}
		json_object_set(out, f->local, v);
	}
	for (size_t i = 0; i < n; i++)
		if (fields[i].required && json_object_get(in, fields[i].name) == NULL) {
			snprintf(why, sizeof(why), "field '%s' is required", fields[i].name);
			ext = json_pack("{s:s}", "field", fields[i].name);
			node_http_fail_ext(res, 400, "invalid-argument", why, ext);
			goto bad;
		}
	json_decref(in);
	return out;
bad:
	json_decref(ext);
	json_decref(in);
	json_decref(out);
	return NULL;
}

int node_http_time_parse(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, n = 0, frac = 0, digits = 0;
	int64_t off = 0, t;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10 ||
	    (s[10] != 'T' && s[10] != 't') ||
	    sscanf(s + 11, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
		return TERN_EINVAL;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return TERN_EINVAL;
	p = s + 19;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		if (digits == 0)
			return TERN_EINVAL;
		for (int i = digits; i < 3; i++)
			frac *= 10;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == 0) {
		off = 0;
	} else if ((*p == '+' || *p == '-' || *p == ' ') && strlen(p) == 6 && p[3] == ':' &&
	           p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[4] >= '0' &&
	           p[4] <= '5' && p[5] >= '0' && p[5] <= '9') {
		/* ' ': a '+' the client did not percent-encode, which a query
		 * string decodes as a space */
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[4] - '0') * 10 + (p[5] - '0');
		off *= *p == '-' ? -60000 : 60000;
	} else {
		return TERN_EINVAL;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return TERN_EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	if (t < 0 || tm.tm_mday != d) /* 31 February and the like */
		return TERN_EINVAL;
	t = t * 1000 + frac - off;
	if (t < 0)
		return TERN_EINVAL;
	*ms = t;
	return TERN_OK;
}

json_t *node_http_query(tern_http_response *res, const tern_http_request *in,
                        const node_http_field *fields, size_t n)
{
	json_t *out = json_object(), *ext = NULL;
	char why[320];

	if (out == NULL)
		return NULL;
	if (in->args_over) {
		snprintf(why, sizeof(why), "more than %d query arguments", TERN_HTTP_MAX_ARGS);
		node_http_fail(res, 400, "invalid-argument", why);
		goto bad;
	}
	for (size_t a = 0; a < in->nargs; a++) {
		const char *k = in->arg_name[a], *v = in->arg_value[a];
		const node_http_field *f = NULL;
		json_t *val = NULL;
		for (size_t i = 0; i < n && f == NULL; i++)
			if (strcmp(fields[i].name, k) == 0)
				f = &fields[i];
		if (f == NULL) {
			const char *hint = NULL;
			char c[64];
			json_t *name = json_string(k);
			if (name == NULL) { /* not UTF-8: not to be echoed in the detail */
				node_http_fail(res, 400, "invalid-argument",
				               "a query argument's name is not UTF-8");
				goto bad;
			}
			json_decref(name);
			camel(k, c, sizeof(c));
			for (size_t i = 0; i < n && hint == NULL; i++)
				if (strcmp(fields[i].name, c) == 0 ||
				    strcasecmp(fields[i].name, k) == 0)
					hint = fields[i].name;
			snprintf(why, sizeof(why), "unknown query argument '%.64s'%s%s%s", k,
			         hint ? ": did you mean '" : " (docs/api.md lists the arguments)",
			         hint ? hint : "", hint ? "'?" : "");
			ext = json_pack("{s:s}", "field", k);
			node_http_fail_ext(res, 400, "invalid-argument", why, ext);
			goto bad;
		}
		if (json_object_get(out, f->local) != NULL) {
			snprintf(why, sizeof(why), "query argument '%s' given twice", f->name);
			goto refuse;
		}
		if (v[0] == 0) {
			snprintf(why, sizeof(why), "query argument '%s' is empty", f->name);
			goto refuse;
		}
		if (f->kind == NHF_INT) {
			char *end;
			long long x = strtoll(v, &end, 10);
			if (*end || !(v[0] >= '0' && v[0] <= '9') || x < f->min || x > f->max) {
				snprintf(why, sizeof(why),
				         "query argument '%s' must be an integer from %" PRId64
				         " to %" PRId64,
				         f->name, f->min, f->max);
				goto refuse;
			}
			val = json_integer(x);
		} else if (f->kind == NHF_TIME) {
			int64_t ms;
			if (node_http_time_parse(v, &ms) != TERN_OK) {
				snprintf(why, sizeof(why),
				         "query argument '%s' must be an RFC 3339 time, such as "
				         "2026-12-06T12:00:00Z",
				         f->name);
				goto refuse;
			}
			val = json_integer(ms);
		} else {
			val = json_string(v); /* NULL for a value that is not UTF-8 */
			if (val == NULL) {
				snprintf(why, sizeof(why), "query argument '%s' is not UTF-8",
				         f->name);
				goto refuse;
			}
		}
		json_object_set_new(out, f->local, val);
		continue;
	refuse:
		ext = json_pack("{s:s}", "field", f->name);
		node_http_fail_ext(res, 400, "invalid-argument", why, ext);
		goto bad;
	}
	return out;
bad:
	json_decref(ext);
	json_decref(out);
	return NULL;
}

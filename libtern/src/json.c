/* proto3 JSON mapping, generic over protobuf-c descriptors (see tern/json.h).
 * Over 800 lines: decoding and encoding walk the same descriptors with the
 * same per-type rules (names, enums, 64-bit integers as strings, bytes as
 * base64, timestamps), which stay side by side. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/json.h>

#include "util.h"

struct jctx {
	char path[256];
	size_t plen;
	char err[448];
};

/* Path helpers: each push returns the previous length, which pop restores. */
static size_t path_push_name(struct jctx *c, const char *name)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", name);

	if (n > 0)
		c->plen = old + (size_t)n < sizeof(c->path) ? old + (size_t)n : sizeof(c->path) - 1;
	return old;
}

static size_t path_push_index(struct jctx *c, size_t i)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);

	if (n > 0)
		c->plen = old + (size_t)n < sizeof(c->path) ? old + (size_t)n : sizeof(c->path) - 1;
	return old;
}

static void path_pop(struct jctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static int jfail(struct jctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jfail(struct jctx *c, int code, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, sizeof(c->err), "%s: %s", c->plen ? c->path : "(top level)", msg);
	return tern_fail(code, "%s", c->err);
}

int tern_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char b = s[i];
		size_t n;
		uint32_t cp;

		if (b < 0x80) {
			i++;
			continue;
		} else if (b >= 0xc2 && b <= 0xdf) {
			n = 1;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			n = 2;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			n = 3;
			cp = b & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and values past Unicode. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

void tern_json_name(const char *proto_name, char *buf, size_t len)
{
	size_t o = 0;
	int upper = 0;

	if (len == 0)
		return;
	for (const char *p = proto_name; *p && o + 1 < len; p++) {
		if (*p == '_') {
			upper = 1;
			continue;
		}
		buf[o++] = (upper && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
		upper = 0;
	}
	buf[o] = '\0';
}

/* Size of one element of a field's C representation (for repeated arrays). */
static size_t type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

#define MEMBER(type, base, off) (*(type *)((char *)(base) + (off)))
#define CMEMBER(type, base, off) (*(const type *)((const char *)(base) + (off)))

/* ---------------------------------------------------------------- encoding */

static int enc_message(struct jctx *c, const ProtobufCMessage *m, int depth, json_t **out);

static json_t *enc_double(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static int enc_value(struct jctx *c, const ProtobufCFieldDescriptor *f, const void *p, int depth,
                     json_t **out)
{
	char num[24];
	json_t *v = NULL;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		v = json_integer(*(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		v = json_integer(*(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(num, sizeof(num), "%" PRId64, *(const int64_t *)p);
		v = json_string(num);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(num, sizeof(num), "%" PRIu64, *(const uint64_t *)p);
		v = json_string(num);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		v = enc_double(*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		v = enc_double(*(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		v = json_boolean(*(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int e = *(const int *)p;
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(f->descriptor, e);

		/* proto3 enums are open: a value this schema does not name stays a number. */
		v = ev ? json_string(ev->name) : json_integer(e);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		size_t n = s ? strlen(s) : 0;

		if (!tern_utf8_valid(s ? s : "", n))
			return jfail(c, TERN_EMALFORMED, "string is not valid UTF-8");
		v = json_stringn(s ? s : "", n);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		size_t enc_len = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
		char *buf = malloc(enc_len);

		if (buf == NULL)
			return TERN_ENOMEM;
		sodium_bin2base64(buf, enc_len, b->data, b->len, sodium_base64_VARIANT_ORIGINAL);
		v = json_string(buf);
		free(buf);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;

		if (sub == NULL)
			return jfail(c, TERN_EINVAL, "list holds a missing message");
		return enc_message(c, sub, depth + 1, out);
	}
	}
	if (v == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory encoding JSON");
	*out = v;
	return TERN_OK;
}

/* Whether a singular field is present and so written out. */
static int field_present(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
	const void *p = (const char *)m + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return CMEMBER(uint32_t, m, f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return 1;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const ProtobufCMessage *const *)p != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_STRING)
			return *(const char *const *)p != NULL;
		return f->quantifier_offset ? CMEMBER(protobuf_c_boolean, m, f->quantifier_offset)
		                            : 1;
	}
	/* proto3 singular field: omitted when it holds the default value. */
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		return s != NULL && s[0] != '\0';
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len != 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)p != 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)p != 0;
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *)p != 0;
	default:
		break;
	}
	if (type_size(f->type) == 8)
		return *(const uint64_t *)p != 0;
	return *(const uint32_t *)p != 0;
}

static int enc_message(struct jctx *c, const ProtobufCMessage *m, int depth, json_t **out)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *obj;
	int rc = TERN_OK;

	if (depth > TERN_JSON_MAX_DEPTH)
		return jfail(c, TERN_EMALFORMED, "messages nest deeper than %d levels",
		             TERN_JSON_MAX_DEPTH);
	if ((obj = json_object()) == NULL)
		return TERN_ENOMEM;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char name[128];
		json_t *v = NULL;
		size_t saved;

		tern_json_name(f->name, name, sizeof(name));
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = CMEMBER(size_t, m, f->quantifier_offset);
			const char *arr = CMEMBER(char *, m, f->offset);
			size_t sz = type_size(f->type);

			if (n == 0)
				continue;
			if ((v = json_array()) == NULL) {
				rc = TERN_ENOMEM;
				goto fail;
			}
			saved = path_push_name(c, name);
			for (size_t k = 0; k < n; k++) {
				size_t saved_k = path_push_index(c, k);
				json_t *e = NULL;

				rc = enc_value(c, f, arr + k * sz, depth, &e);
				path_pop(c, saved_k);
				if (rc != TERN_OK || json_array_append_new(v, e) != 0) {
					rc = rc != TERN_OK ? rc : TERN_ENOMEM;
					path_pop(c, saved);
					json_decref(v);
					goto fail;
				}
			}
			path_pop(c, saved);
		} else {
			if (!field_present(f, m))
				continue;
			saved = path_push_name(c, name);
			rc = enc_value(c, f, (const char *)m + f->offset, depth, &v);
			path_pop(c, saved);
			if (rc != TERN_OK)
				goto fail;
		}
		if (json_object_set_new(obj, name, v) != 0) {
			rc = TERN_ENOMEM;
			goto fail;
		}
	}
	*out = obj;
	return TERN_OK;
fail:
	json_decref(obj);
	return rc;
}

int tern_json_encode(const ProtobufCMessage *msg, json_t **out)
{
	struct jctx c = {{0}, 0, {0}};

	if (msg == NULL || out == NULL || msg->descriptor == NULL)
		return tern_fail(TERN_EINVAL, "tern_json_encode: no message");
	return enc_message(&c, msg, 0, out);
}

int tern_json_dump_text(const ProtobufCMessage *msg, char **out)
{
	json_t *obj = NULL;
	char *text, *buf;
	size_t n;
	int rc;

	if ((rc = tern_json_encode(msg, &obj)) != TERN_OK)
		return rc;
	text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (text == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory writing JSON");
	n = strlen(text);
	if ((buf = malloc(n + 2)) == NULL) {
		free(text);
		return TERN_ENOMEM;
	}
	memcpy(buf, text, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	free(text);
	*out = buf;
	return TERN_OK;
}

/* ---------------------------------------------------------------- decoding */

static int dec_message(struct jctx *c, const ProtobufCMessageDescriptor *d, const json_t *in,
                       int depth, ProtobufCMessage **out);

/* Digits only, with a leading '-' when allow_minus; nothing else. */
static int decimal_text(const char *s, int allow_minus)
{
	if (allow_minus && *s == '-')
		s++;
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int get_i64(struct jctx *c, const json_t *v, int64_t min, int64_t max, int64_t *out)
{
	long long x;

	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != trunc(d))
			return jfail(c, TERN_EMALFORMED, "expected an integer");
		if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
			return jfail(c, TERN_EMALFORMED, "integer out of range");
		x = (long long)d;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		if (!decimal_text(s, 1))
			return jfail(c, TERN_EMALFORMED, "expected a decimal integer");
		errno = 0;
		x = strtoll(s, &end, 10);
		if (errno == ERANGE)
			return jfail(c, TERN_EMALFORMED, "integer out of range");
	} else {
		return jfail(c, TERN_EMALFORMED, "expected an integer");
	}
	if (x < min || x > max)
		return jfail(c, TERN_EMALFORMED, "integer out of range");
	*out = x;
	return TERN_OK;
}

static int get_u64(struct jctx *c, const json_t *v, uint64_t max, uint64_t *out)
{
	uint64_t x;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return jfail(c, TERN_EMALFORMED, "integer out of range");
		x = (uint64_t)json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != trunc(d))
			return jfail(c, TERN_EMALFORMED, "expected an integer");
		if (d < 0 || d >= 18446744073709551616.0)
			return jfail(c, TERN_EMALFORMED, "integer out of range");
		x = (uint64_t)d;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		unsigned long long u;
		char *end;

		if (!decimal_text(s, 0))
			return jfail(c, TERN_EMALFORMED, "expected a decimal integer");
		errno = 0;
		u = strtoull(s, &end, 10);
		if (errno == ERANGE)
			return jfail(c, TERN_EMALFORMED, "integer out of range");
		x = u;
	} else {
		return jfail(c, TERN_EMALFORMED, "expected an integer");
	}
	if (x > max)
		return jfail(c, TERN_EMALFORMED, "integer out of range");
	*out = x;
	return TERN_OK;
}

static int get_double(struct jctx *c, const json_t *v, int is_float, double *out)
{
	double d;

	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		if (strcmp(s, "NaN") == 0) {
			d = NAN;
		} else if (strcmp(s, "Infinity") == 0) {
			d = INFINITY;
		} else if (strcmp(s, "-Infinity") == 0) {
			d = -INFINITY;
		} else {
			/* strtod alone would also take hex floats, "inf" and spaces. */
			if (*s == '\0' || strspn(s, "0123456789+-.eE") != strlen(s))
				return jfail(c, TERN_EMALFORMED, "expected a number");
			errno = 0;
			d = strtod(s, &end);
			if (*end != '\0')
				return jfail(c, TERN_EMALFORMED, "expected a number");
			if (errno == ERANGE && isinf(d))
				return jfail(c, TERN_EMALFORMED, "number out of range");
		}
	} else {
		return jfail(c, TERN_EMALFORMED, "expected a number");
	}
	if (is_float && isfinite(d) && fabs(d) > FLT_MAX)
		return jfail(c, TERN_EMALFORMED, "number out of range for a float");
	*out = d;
	return TERN_OK;
}

static int b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
	static const int variants[] = {
	    sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
	    sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	size_t max = len / 4 * 3 + 3, n;
	uint8_t *buf = malloc(max);

	if (buf == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const char *end = NULL;

		if (sodium_base642bin(buf, max, s, len, NULL, &n, &end, variants[i]) == 0 &&
		    end == s + len) {
			*out = buf;
			*out_len = n;
			return TERN_OK;
		}
	}
	free(buf);
	return TERN_EMALFORMED;
}

static int dec_value(struct jctx *c, const ProtobufCFieldDescriptor *f, const json_t *v, int depth,
                     void *p)
{
	int64_t i;
	uint64_t u;
	double d;
	int rc;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if ((rc = get_i64(c, v, INT32_MIN, INT32_MAX, &i)) != TERN_OK)
			return rc;
		*(int32_t *)p = (int32_t)i;
		return TERN_OK;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if ((rc = get_u64(c, v, UINT32_MAX, &u)) != TERN_OK)
			return rc;
		*(uint32_t *)p = (uint32_t)u;
		return TERN_OK;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if ((rc = get_i64(c, v, INT64_MIN, INT64_MAX, &i)) != TERN_OK)
			return rc;
		*(int64_t *)p = i;
		return TERN_OK;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if ((rc = get_u64(c, v, UINT64_MAX, &u)) != TERN_OK)
			return rc;
		*(uint64_t *)p = u;
		return TERN_OK;
	case PROTOBUF_C_TYPE_FLOAT:
		if ((rc = get_double(c, v, 1, &d)) != TERN_OK)
			return rc;
		*(float *)p = (float)d;
		return TERN_OK;
	case PROTOBUF_C_TYPE_DOUBLE:
		if ((rc = get_double(c, v, 0, &d)) != TERN_OK)
			return rc;
		*(double *)p = d;
		return TERN_OK;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return jfail(c, TERN_EMALFORMED, "expected true or false");
		*(protobuf_c_boolean *)p = json_is_true(v);
		return TERN_OK;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev = NULL;

		if (json_is_string(v))
			ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
		else if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
		         json_integer_value(v) <= INT32_MAX)
			ev = protobuf_c_enum_descriptor_get_value(ed, (int)json_integer_value(v));
		else
			return jfail(c, TERN_EMALFORMED, "expected a value name of %s",
			             ed->short_name);
		if (ev == NULL)
			return jfail(c, TERN_EMALFORMED, "not a value of %s", ed->short_name);
		*(int *)p = ev->value;
		return TERN_OK;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s;
		size_t n;
		char *copy;

		if (!json_is_string(v))
			return jfail(c, TERN_EMALFORMED, "expected a string");
		s = json_string_value(v);
		n = json_string_length(v);
		/* protobuf-c strings are C strings: an embedded NUL would cut them short. */
		if (memchr(s, '\0', n) != NULL)
			return jfail(c, TERN_EMALFORMED, "string contains a NUL character");
		if (!tern_utf8_valid(s, n))
			return jfail(c, TERN_EMALFORMED, "string is not valid UTF-8");
		/* A oneof member needs its own pointer: the union may hold anything. */
		if (n == 0 && f->label != PROTOBUF_C_LABEL_REPEATED &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			return TERN_OK; /* keep the default (shared empty string) */
		if ((copy = malloc(n + 1)) == NULL)
			return TERN_ENOMEM;
		memcpy(copy, s, n + 1);
		*(char **)p = copy;
		return TERN_OK;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;
		uint8_t *data;
		size_t n;

		if (!json_is_string(v))
			return jfail(c, TERN_EMALFORMED, "expected a base64 string");
		if (json_string_length(v) == 0) {
			b->data = NULL;
			b->len = 0;
			return TERN_OK;
		}
		rc = b64_decode(json_string_value(v), json_string_length(v), &data, &n);
		if (rc == TERN_EMALFORMED)
			return jfail(c, rc, "expected a base64 string");
		if (rc != TERN_OK)
			return rc;
		b->data = data;
		b->len = n;
		return TERN_OK;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *sub = NULL;

		if ((rc = dec_message(c, f->descriptor, v, depth + 1, &sub)) != TERN_OK)
			return rc;
		*(ProtobufCMessage **)p = sub;
		return TERN_OK;
	}
	}
	return jfail(c, TERN_EINVAL, "unsupported field type");
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key)
{
	char name[128];

	for (unsigned i = 0; i < d->n_fields; i++) {
		if (strcmp(d->fields[i].name, key) == 0)
			return &d->fields[i];
		tern_json_name(d->fields[i].name, name, sizeof(name));
		if (strcmp(name, key) == 0)
			return &d->fields[i];
	}
	return NULL;
}

/* An unknown key goes into an error path: keep it printable and short. */
static void key_for_path(const char *key, char *buf, size_t len)
{
	size_t o = 0;

	for (const char *p = key; *p && o + 1 < len && o < 48; p++)
		buf[o++] = (*p > 0x20 && *p < 0x7f) ? *p : '?';
	buf[o] = '\0';
}

static int dec_field(struct jctx *c, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
                     const json_t *val, int depth)
{
	int rc;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n, sz = type_size(f->type);
		char *arr;

		if (!json_is_array(val))
			return jfail(c, TERN_EMALFORMED, "expected an array");
		if ((n = json_array_size(val)) == 0)
			return TERN_OK;
		if ((arr = calloc(n, sz)) == NULL)
			return TERN_ENOMEM;
		/* Zeroed elements are safe to free if a later one fails. */
		MEMBER(char *, m, f->offset) = arr;
		MEMBER(size_t, m, f->quantifier_offset) = n;
		for (size_t k = 0; k < n; k++) {
			const json_t *e = json_array_get(val, k);
			size_t saved = path_push_index(c, k);

			if (json_is_null(e))
				rc = jfail(c, TERN_EMALFORMED, "null is not allowed in a list");
			else
				rc = dec_value(c, f, e, depth, arr + k * sz);
			path_pop(c, saved);
			if (rc != TERN_OK)
				return rc;
		}
		return TERN_OK;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		if (MEMBER(uint32_t, m, f->quantifier_offset) != 0)
			return jfail(c, TERN_EMALFORMED, "another member of the same oneof is set");
	}
	if ((rc = dec_value(c, f, val, depth, (char *)m + f->offset)) != TERN_OK)
		return rc;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
	else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	         f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
		MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
	return TERN_OK;
}

static int dec_message(struct jctx *c, const ProtobufCMessageDescriptor *d, const json_t *in,
                       int depth, ProtobufCMessage **out)
{
	ProtobufCMessage *m;
	unsigned char *seen;
	const char *key;
	const json_t *val;
	int rc = TERN_OK;

	if (depth > TERN_JSON_MAX_DEPTH)
		return jfail(c, TERN_EMALFORMED, "messages nest deeper than %d levels",
		             TERN_JSON_MAX_DEPTH);
	if (!json_is_object(in))
		return jfail(c, TERN_EMALFORMED, "expected an object");
	if ((m = malloc(d->sizeof_message)) == NULL)
		return TERN_ENOMEM;
	protobuf_c_message_init(d, m);
	if ((seen = calloc(d->n_fields ? d->n_fields : 1, 1)) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	/* json_object_foreach takes a non-const object but does not modify it. */
	json_object_foreach((json_t *)in, key, val)
	{
		const ProtobufCFieldDescriptor *f = find_field(d, key);
		char name[128];
		size_t saved;

		if (f == NULL) {
			key_for_path(key, name, sizeof(name));
			saved = path_push_name(c, name);
			rc = jfail(c, TERN_EMALFORMED, "unknown field");
			path_pop(c, saved);
			goto fail;
		}
		tern_json_name(f->name, name, sizeof(name));
		saved = path_push_name(c, name);
		if (seen[f - d->fields]) {
			rc = jfail(c, TERN_EMALFORMED, "given twice (as camelCase and snake_case)");
		} else {
			seen[f - d->fields] = 1;
			rc = json_is_null(val) ? TERN_OK : dec_field(c, f, m, val, depth);
		}
		path_pop(c, saved);
		if (rc != TERN_OK)
			goto fail;
	}
	free(seen);
	*out = m;
	return TERN_OK;
fail:
	free(seen);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int tern_json_decode(const ProtobufCMessageDescriptor *desc, const json_t *in,
                     ProtobufCMessage **out, char *err, size_t errlen)
{
	struct jctx c = {{0}, 0, {0}};
	int rc;

	if (desc == NULL || in == NULL || out == NULL)
		return tern_fail(TERN_EINVAL, "tern_json_decode: missing argument");
	rc = dec_message(&c, desc, in, 0, out);
	if (rc != TERN_OK && err != NULL && errlen > 0) {
		if (c.err[0] == '\0')
			snprintf(c.err, sizeof(c.err), "%s", tern_strerror(rc));
		snprintf(err, errlen, "%s", c.err);
	}
	return rc;
}

int tern_json_parse_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                         ProtobufCMessage **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	char *near;
	int rc;

	if (len > TERN_JSON_MAX_TEXT) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			         "JSON text of %zu bytes is over the limit of %u bytes", len,
			         TERN_JSON_MAX_TEXT);
		return tern_fail(TERN_ETOOBIG,
		                 "JSON text of %zu bytes is over the limit of %u bytes", len,
		                 TERN_JSON_MAX_TEXT);
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jansson quotes the offending token ("near 'Amina'"): it may be personal data. */
		if ((near = strstr(jerr.text, " near '")) != NULL)
			*near = '\0';
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
		return tern_fail(TERN_EMALFORMED, "JSON syntax error at %d:%d: %s", jerr.line,
		                 jerr.column, jerr.text);
	}
	rc = tern_json_decode(desc, root, out, err, errlen);
	json_decref(root);
	return rc;
}

void tern_json_message_free(ProtobufCMessage **msg)
{
	if (msg == NULL || *msg == NULL)
		return;
	protobuf_c_message_free_unpacked(*msg, NULL);
	*msg = NULL;
}

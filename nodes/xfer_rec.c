/* The node's transfer and upload records, written and read back
 * (xfer_rec.h). The writers are xin_record (xfer_in.c), xout_record
 * (xfer_out.c) and upload.c; what they write always passes, anything else is
 * TERN_EMALFORMED. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include <tern/error.h>
#include <tern/json.h>

#include "record.h"
#include "xfer_rec.h"

/* --- the JSON an earlier release wrote ------------------------------------------ */

/* Each converter returns NULL only when out of memory. A field of the wrong
 * type, or out of its range, becomes a value the checks refuse (0, or an
 * empty root), so that damage is told as damage by the one set of checks. */

static uint64_t jpos(const json_t *o, const char *k, uint64_t max)
{
	const json_t *v = json_object_get(o, k);

	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return 0;
	return (uint64_t)json_integer_value(v);
}

/* A hex digest of 64 digits as 32 bytes in *b; anything else leaves it
 * empty. */
static int jhex32(const json_t *o, const char *k, ProtobufCBinaryData *b)
{
	const char *hex = json_string_value(json_object_get(o, k));
	size_t len = 0;

	b->len = 0;
	b->data = NULL;
	if (hex == NULL || strlen(hex) != 64)
		return TERN_OK;
	if ((b->data = malloc(32)) == NULL)
		return TERN_ENOMEM;
	if (sodium_hex2bin(b->data, 32, hex, 64, NULL, &len, NULL) == 0 && len == 32)
		b->len = 32;
	return TERN_OK;
}

/* The "atts" array of o into *n and *atts. More than TERN_ATTACH_MAX_COUNT
 * are cut to one over it: enough for the checks to refuse. */
static int jatts(const json_t *o, int with_sha, size_t *n, Tern__V1__TransferAttachment ***atts)
{
	const json_t *arr = json_object_get(o, "atts");
	size_t count = json_array_size(arr);

	if (count > TERN_ATTACH_MAX_COUNT + 1)
		count = TERN_ATTACH_MAX_COUNT + 1;
	*n = 0;
	*atts = NULL;
	if (count == 0)
		return TERN_OK;
	if ((*atts = calloc(count, sizeof(**atts))) == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		const json_t *a = json_array_get(arr, i);
		Tern__V1__TransferAttachment *t = malloc(sizeof(*t));
		if (t == NULL)
			return TERN_ENOMEM;
		tern__v1__transfer_attachment__init(t);
		(*atts)[(*n)++] = t;
		t->size = jpos(a, "size", UINT64_MAX);
		t->chunk_size = (uint32_t)jpos(a, "chunk_size", UINT32_MAX);
		if (jhex32(a, "root", &t->root) != TERN_OK ||
		    (with_sha && jhex32(a, "sha256", &t->sha256) != TERN_OK))
			return TERN_ENOMEM;
	}
	return TERN_OK;
}

static ProtobufCMessage *xin_from_json(const json_t *o)
{
	node_xin_pb *r = malloc(sizeof(*r));
	const char *sender = json_string_value(json_object_get(o, "sender"));
	const char *case_id = json_string_value(json_object_get(o, "case_id"));
	const char *type = json_string_value(json_object_get(o, "type"));
	const json_t *att = json_object_get(o, "att"), *have = json_object_get(o, "have");

	if (r == NULL)
		return NULL;
	tern__v1__transfer_in_record__init(r);
	r->until = json_integer_value(json_object_get(o, "until"));
	/* An att that is no count is past any last attachment; a have that is
	 * none, more chunks than any attachment has. */
	r->att = json_is_integer(att) && json_integer_value(att) >= 0 &&
	                 json_integer_value(att) < (json_int_t)UINT32_MAX
	             ? (uint32_t)json_integer_value(att)
	             : UINT32_MAX;
	r->have = json_is_integer(have) && json_integer_value(have) >= 0
	              ? (uint64_t)json_integer_value(have)
	              : UINT64_MAX;
	if ((r->sender = strdup(sender ? sender : "")) == NULL ||
	    (r->case_id = strdup(case_id ? case_id : "")) == NULL ||
	    (r->type = strdup(type ? type : "")) == NULL ||
	    jatts(o, 1, &r->n_atts, &r->atts) != TERN_OK) {
		/* free_unpacked frees what is not the descriptor's default. */
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return &r->base;
}

static ProtobufCMessage *xout_from_json(const json_t *o)
{
	node_xout_pb *r = malloc(sizeof(*r));

	if (r == NULL)
		return NULL;
	tern__v1__transfer_out_record__init(r);
	r->done = json_is_true(json_object_get(o, "done"));
	if (jatts(o, 0, &r->n_atts, &r->atts) != TERN_OK) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return &r->base;
}

static ProtobufCMessage *upload_from_json(const json_t *o)
{
	node_upload_pb *r = malloc(sizeof(*r));

	if (r == NULL)
		return NULL;
	tern__v1__upload_record__init(r);
	r->size = jpos(o, "size", UINT64_MAX);
	r->expires = json_integer_value(json_object_get(o, "expires"));
	return &r->base;
}

int node_xin_record_decode(const void *data, size_t len, node_xin_pb **out)
{
	return node_rec_decode(data, len, &tern__v1__transfer_in_record__descriptor, xin_from_json,
	                       "the record of a transfer in", (ProtobufCMessage **)out);
}

int node_xout_record_decode(const void *data, size_t len, node_xout_pb **out)
{
	return node_rec_decode(data, len, &tern__v1__transfer_out_record__descriptor,
	                       xout_from_json, "the record of a transfer out",
	                       (ProtobufCMessage **)out);
}

int node_upload_record_decode(const void *data, size_t len, node_upload_pb **out)
{
	return node_rec_decode(data, len, &tern__v1__upload_record__descriptor, upload_from_json,
	                       "the record of an upload", (ProtobufCMessage **)out);
}

/* --- the checks ------------------------------------------------------------------ */

/* One attachment of a record: size, chunk_size, root, and sha256 if want_sha. */
static int att_parse(const Tern__V1__TransferAttachment *a, int want_sha, struct node_att *out)
{
	memset(out, 0, sizeof(*out));
	/* Only a seal tern_attach_seals_check passed was recorded: chunk
	 * counts of 0, sizes over the most max_attachment_size allows (the
	 * chunk arithmetic would wrap) and chunks over the node's
	 * TERN_ATTACH_CHUNK_MAX buffer are a damaged record's. */
	if (a == NULL || a->size == 0 || a->size > TERN_ATTACH_MAX_SIZE_LIMIT ||
	    a->chunk_size < TERN_ATTACH_CHUNK_MIN || a->chunk_size > TERN_ATTACH_CHUNK_MAX ||
	    a->root.len != 32 || (want_sha && a->sha256.len != 32))
		return TERN_EMALFORMED;
	out->size = a->size;
	out->chunk_size = a->chunk_size;
	memcpy(out->root, a->root.data, 32);
	if (want_sha)
		memcpy(out->sha256, a->sha256.data, 32);
	return TERN_OK;
}

static int atts_parse(Tern__V1__TransferAttachment *const *arr, size_t count, int want_sha,
                      struct node_att *atts, size_t *natt)
{
	*natt = count;
	if (count == 0 || count > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EMALFORMED, "a transfer record with %zu attachments", count);
	for (size_t i = 0; i < count; i++)
		if (att_parse(arr[i], want_sha, &atts[i]) != TERN_OK)
			return tern_fail(TERN_EMALFORMED,
			                 "a transfer record with a damaged attachment %zu", i);
	return TERN_OK;
}

int node_xin_record_parse(const node_xin_pb *rec, struct node_xin_rec *out)
{
	size_t slen = rec->sender ? strlen(rec->sender) : 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (slen == 0 || slen >= sizeof(out->sender) || !tern_utf8_valid(rec->sender, slen))
		return tern_fail(TERN_EMALFORMED, "a damaged transfer record");
	if ((rc = atts_parse(rec->atts, rec->n_atts, 1, out->atts, &out->natt)) != TERN_OK)
		return rc;
	if (rec->att >= out->natt)
		return tern_fail(TERN_EMALFORMED, "a transfer record past its last attachment");
	if (rec->have >
	    tern_attach_chunks(out->atts[rec->att].size, out->atts[rec->att].chunk_size))
		return tern_fail(TERN_EMALFORMED,
		                 "a transfer record with more chunks than its attachment has");
	memcpy(out->sender, rec->sender, slen + 1);
	out->until = rec->until;
	out->att = rec->att;
	out->have = rec->have;
	return TERN_OK;
}

int node_xout_record_parse(const node_xout_pb *rec, struct node_att *atts, size_t *natt, int *done)
{
	int rc;

	if ((rc = atts_parse(rec->atts, rec->n_atts, 0, atts, natt)) != TERN_OK)
		return rc;
	*done = rec->done;
	return TERN_OK;
}

int node_upload_record_parse(const node_upload_pb *rec, uint64_t *size, int64_t *expires)
{
	/* The offset is the file's length (upload.c): the size bounds it. */
	if (rec->size == 0)
		return tern_fail(TERN_EMALFORMED, "a damaged upload record");
	*size = rec->size;
	*expires = rec->expires;
	return TERN_OK;
}

/* --- decode and check ------------------------------------------------------------ */

int node_xin_record_read(const void *data, size_t len, struct node_xin_rec *out)
{
	node_xin_pb *r = NULL;
	int rc = node_xin_record_decode(data, len, &r);

	if (rc == TERN_OK)
		rc = node_xin_record_parse(r, out);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

int node_xout_record_read(const void *data, size_t len, struct node_att *atts, size_t *natt,
                          int *done)
{
	node_xout_pb *r = NULL;
	int rc = node_xout_record_decode(data, len, &r);

	if (rc == TERN_OK)
		rc = node_xout_record_parse(r, atts, natt, done);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

int node_upload_record_read(const void *data, size_t len, uint64_t *size, int64_t *expires)
{
	node_upload_pb *r = NULL;
	int rc = node_upload_record_decode(data, len, &r);

	if (rc == TERN_OK)
		rc = node_upload_record_parse(r, size, expires);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* --- the stored form ------------------------------------------------------------- */

void node_xfer_atts_pb(const struct node_att *atts, size_t n, int with_sha,
                       Tern__V1__TransferAttachment *pb, Tern__V1__TransferAttachment **ptrs)
{
	for (size_t i = 0; i < n; i++) {
		tern__v1__transfer_attachment__init(&pb[i]);
		pb[i].size = atts[i].size;
		pb[i].chunk_size = atts[i].chunk_size;
		pb[i].root = (ProtobufCBinaryData){32, (uint8_t *)atts[i].root};
		if (with_sha)
			pb[i].sha256 = (ProtobufCBinaryData){32, (uint8_t *)atts[i].sha256};
		ptrs[i] = &pb[i];
	}
}

/* The node's transfer and upload records, read back (xfer_rec.h). The
 * writers are xin_record (xfer_in.c), xout_record (xfer_out.c) and upload.c;
 * what they write always passes, anything else is TERN_EMALFORMED. */
#include <string.h>

#include <sodium.h>

#include <tern/error.h>

#include "xfer_rec.h"

static int hex32(const json_t *v, uint8_t out[32])
{
	const char *hex = json_string_value(v);
	size_t len = 0;

	if (hex == NULL || strlen(hex) != 64 ||
	    sodium_hex2bin(out, 32, hex, 64, NULL, &len, NULL) != 0 || len != 32)
		return TERN_EMALFORMED;
	return TERN_OK;
}

/* One attachment of a record: size, chunk_size, root, and sha256 if want_sha. */
static int att_parse(const json_t *a, int want_sha, struct node_att *out)
{
	const json_t *size = json_object_get(a, "size"), *cs = json_object_get(a, "chunk_size");

	memset(out, 0, sizeof(*out));
	/* Only a seal tern_attach_seals_check passed was recorded: chunk
	 * counts of 0 and chunks over the node's TERN_ATTACH_CHUNK_MAX buffer
	 * are a damaged record's. */
	if (!json_is_integer(size) || json_integer_value(size) <= 0 || !json_is_integer(cs) ||
	    json_integer_value(cs) < TERN_ATTACH_CHUNK_MIN ||
	    json_integer_value(cs) > TERN_ATTACH_CHUNK_MAX)
		return TERN_EMALFORMED;
	out->size = (uint64_t)json_integer_value(size);
	out->chunk_size = (uint32_t)json_integer_value(cs);
	if (hex32(json_object_get(a, "root"), out->root) != TERN_OK ||
	    (want_sha && hex32(json_object_get(a, "sha256"), out->sha256) != TERN_OK))
		return TERN_EMALFORMED;
	return TERN_OK;
}

static int atts_parse(const json_t *arr, int want_sha, struct node_att *atts, size_t *natt)
{
	const json_t *a;
	size_t i;

	*natt = json_array_size(arr);
	if (*natt == 0 || *natt > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EMALFORMED, "a transfer record with %zu attachments", *natt);
	json_array_foreach(arr, i, a)
	{
		if (att_parse(a, want_sha, &atts[i]) != TERN_OK)
			return tern_fail(TERN_EMALFORMED,
			                 "a transfer record with a damaged attachment %zu", i);
	}
	return TERN_OK;
}

int node_xin_record_parse(const json_t *rec, struct node_xin_rec *out)
{
	const char *sender = json_string_value(json_object_get(rec, "sender"));
	const json_t *att = json_object_get(rec, "att"), *have = json_object_get(rec, "have");
	int rc;

	memset(out, 0, sizeof(*out));
	if (sender == NULL || sender[0] == '\0' || strlen(sender) >= sizeof(out->sender) ||
	    !json_is_integer(att) || json_integer_value(att) < 0 || !json_is_integer(have) ||
	    json_integer_value(have) < 0)
		return tern_fail(TERN_EMALFORMED, "a damaged transfer record");
	if ((rc = atts_parse(json_object_get(rec, "atts"), 1, out->atts, &out->natt)) != TERN_OK)
		return rc;
	if ((uint64_t)json_integer_value(att) >= out->natt)
		return tern_fail(TERN_EMALFORMED, "a transfer record past its last attachment");
	memcpy(out->sender, sender, strlen(sender) + 1);
	out->until = json_integer_value(json_object_get(rec, "until"));
	out->att = (uint32_t)json_integer_value(att);
	out->have = (uint64_t)json_integer_value(have);
	return TERN_OK;
}

int node_xout_record_parse(const json_t *rec, struct node_att *atts, size_t *natt, int *done)
{
	int rc;

	if ((rc = atts_parse(json_object_get(rec, "atts"), 0, atts, natt)) != TERN_OK)
		return rc;
	*done = json_is_true(json_object_get(rec, "done"));
	return TERN_OK;
}

int node_upload_record_parse(const json_t *rec, uint64_t *size, int64_t *expires)
{
	const json_t *s = json_object_get(rec, "size");

	/* The offset is the file's length (upload.c): the size bounds it. */
	if (!json_is_integer(s) || json_integer_value(s) <= 0)
		return tern_fail(TERN_EMALFORMED, "a damaged upload record");
	*size = (uint64_t)json_integer_value(s);
	*expires = json_integer_value(json_object_get(rec, "expires"));
	return TERN_OK;
}

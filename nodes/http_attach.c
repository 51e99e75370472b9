/* Attachments over the node's HTTP API (docs/api.md "Attachments over
 * HTTP"): uploads with the tus 1.0 core protocol and its creation and
 * termination extensions, and downloads with single byte ranges.
 *
 * Each tus request is one local API call (upload.create, upload.info, a
 * binary upload_append frame, upload.delete), so the node's own checks
 * decide (offset, size, limits, disk). A download is a streamed response:
 * one attachment.get call for its size and type, then one per piece of at
 * most DL_PIECE bytes as the client reads, so a 2 GiB file never sits in
 * memory. Never logs bodies or attachment bytes. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/uuid.h>
#include <tern/v1/api.pb-c.h>

#include "http_int.h"
#include "pbuf.h"

#define TUS_VERSION "1.0.0"
#define TUS_CTYPE "application/offset+octet-stream"
/* Bytes one attachment.get call brings (the node gives at most 4 MiB): the
 * node answers it on its own loop, which waits meanwhile (about 65 ms a
 * MiB measured here), so a piece is one chunk (the sender's 1 MiB) and
 * other requests wait at most one piece per download behind them. And
 * downloads at once: the node makes one piece at a time whatever their
 * number, so more would only make everyone else wait longer. What they
 * hold is DL_MAX pieces, plus a piece's base64 and JSON on the workers
 * making one. Beyond DL_MAX: 503, retry. */
#define DL_PIECE (1u << 20)
#define DL_MAX 4u
/* A file name in Content-Disposition: longer ones are cut (a header must fit
 * the connection's 8 KiB). */
#define DL_NAME_MAX 200

/* A whole decimal number without sign or spaces, as tus's headers carry. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == 0)
		return TERN_EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return TERN_EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return TERN_OK;
}

static int tus_header(tern_http_response *res)
{
	return tern_http_response_header(res, "Tus-Resumable", TUS_VERSION);
}

/* The upload id in /v1/uploads/ID, or NULL for /v1/uploads itself; *ok 0
 * for another path under /v1/uploads. */
static const char *upload_id(const char *url, int *ok)
{
	*ok = 1;
	if (strcmp(url, "/v1/uploads") == 0 || strcmp(url, "/v1/uploads/") == 0)
		return NULL;
	if (strncmp(url, "/v1/uploads/", 12) == 0 && tern_uuid_valid(url + 12))
		return url + 12;
	*ok = 0;
	return NULL;
}

static int is_uploads(const char *url)
{
	return strcmp(url, "/v1/uploads") == 0 || strncmp(url, "/v1/uploads/", 12) == 0;
}

/* The media type without parameters is tus's, whatever its case. */
static int is_tus_ctype(const char *ct)
{
	size_t n = strlen(TUS_CTYPE);

	if (ct == NULL || strncasecmp(ct, TUS_CTYPE, n) != 0)
		return 0;
	return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

/* On the server's thread, before the body: everything tus decides from the
 * headers. A PATCH refused here is never read (up to 8 MiB). */
void node_http_early(void *arg, const tern_http_request *req, tern_http_response *res)
{
	node_http *h = arg;
	const char *tus = req->headers[NH_TUS_RESUMABLE];
	uint64_t v;
	int ok;

	if (!is_uploads(req->url))
		return;
	if (strcmp(req->method, "OPTIONS") == 0) {
		/* tus: OPTIONS needs no Tus-Resumable; it says what we speak. */
		res->status = 204;
		tus_header(res);
		tern_http_response_header(res, "Tus-Version", TUS_VERSION);
		tern_http_response_header(res, "Tus-Extension", "creation,termination");
		tern_http_response_header(res, "Tus-Max-Size", "%" PRId64, h->max_upload);
		return;
	}
	(void)upload_id(req->url, &ok);
	if (!ok) {
		node_http_fail(res, 404, "not-found", "no such upload path; see docs/api.md#http");
		return;
	}
	if (tus == NULL || strcmp(tus, TUS_VERSION) != 0) {
		node_http_fail(res, 412, "unsupported-version",
		               "give Tus-Resumable: 1.0.0 (tus 1.0, the only version served)");
		tern_http_response_header(res, "Tus-Version", TUS_VERSION);
		tus_header(res);
		return;
	}
	if (strcmp(req->method, "POST") == 0 && req->headers[NH_UPLOAD_DEFER]) {
		node_http_fail(res, 400, "invalid-argument",
		               "Upload-Defer-Length is not supported: give Upload-Length");
	} else if (strcmp(req->method, "POST") == 0 &&
	           parse_u64(req->headers[NH_UPLOAD_LENGTH], &v) != TERN_OK) {
		node_http_fail(res, 400, "invalid-argument",
		               "give Upload-Length: the file's size in bytes");
	} else if (strcmp(req->method, "PATCH") == 0 &&
	           !is_tus_ctype(req->headers[NH_CONTENT_TYPE])) {
		node_http_fail(res, 415, "invalid-argument",
		               "a PATCH carries Content-Type: application/offset+octet-stream");
	} else if (strcmp(req->method, "PATCH") == 0 &&
	           parse_u64(req->headers[NH_UPLOAD_OFFSET], &v) != TERN_OK) {
		node_http_fail(res, 400, "invalid-argument",
		               "give Upload-Offset: where this PATCH's bytes go (HEAD tells)");
	}
	if (res->status)
		tus_header(res);
}

/* Upload-Offset and Upload-Length from an upload's state. */
static int offset_headers(tern_http_response *res, const json_t *resp, int with_length)
{
	int rc = tern_http_response_header(res, "Upload-Offset", "%" JSON_INTEGER_FORMAT,
	                                   json_integer_value(json_object_get(resp, "offset")));

	if (rc == TERN_OK && with_length)
		rc = tern_http_response_header(res, "Upload-Length", "%" JSON_INTEGER_FORMAT,
		                               json_integer_value(json_object_get(resp, "size")));
	return rc;
}

/* One PATCH: its bytes to the node in a binary frame (no base64). An empty
 * one only checks the offset. */
static int tus_patch(node_http *h, const char *id, const tern_http_request *req, uint64_t off,
                     json_t **resp)
{
	Tern__V1__ApiRequest r = TERN__V1__API_REQUEST__INIT;
	Tern__V1__ApiUploadAppend a = TERN__V1__API_UPLOAD_APPEND__INIT;
	uint8_t *packed = NULL;
	size_t plen;
	json_t *info;
	int rc;

	if (req->blen == 0) {
		if ((info = json_pack("{s:s, s:s}", "op", "upload.info", "upload_id", id)) == NULL)
			return TERN_ENOMEM;
		rc = node_http_call(h, info, NULL, 0, 0, resp);
		json_decref(info);
		if (rc == TERN_OK && json_is_true(json_object_get(*resp, "ok")) &&
		    (uint64_t)json_integer_value(json_object_get(*resp, "offset")) != off) {
			json_t *cur = json_object_get(*resp, "offset"),
			       *sz = json_object_get(*resp, "size");
			json_t *c = json_pack(
			    "{s:b, s:s, s:s, s:O, s:O}", "ok", 0, "error", "conflict", "message",
			    "the upload's offset is not the one given: go on from "
			    "\"offset\"",
			    "offset", cur, "size", sz);
			json_decref(*resp);
			*resp = c;
			rc = c ? TERN_OK : TERN_ENOMEM;
		}
		return rc;
	}
	a.upload_id = (char *)id;
	a.offset = off;
	a.data.data = (uint8_t *)req->body;
	a.data.len = req->blen;
	r.v = TERN_API_VERSION;
	r.op_case = TERN__V1__API_REQUEST__OP_UPLOAD_APPEND;
	r.upload_append = &a;
	if ((rc = tern_pb_pack(&r.base, &packed, &plen)) != TERN_OK)
		return rc;
	rc = node_http_call(h, NULL, packed, plen, 0, resp);
	free(packed);
	return rc;
}

/* The tus requests, once their headers passed node_http_early. */
static int tus(node_http *h, const tern_http_request *req, tern_http_response *res)
{
	int ok, rc = TERN_OK, status;
	const char *id = upload_id(req->url, &ok);
	const char *m = req->method;
	json_t *call = NULL, *resp = NULL;
	uint64_t n = 0;

	if (strcmp(m, "POST") == 0 && id == NULL) {
		parse_u64(req->headers[NH_UPLOAD_LENGTH], &n);
		if (n > INT64_MAX) /* the node says how far over its limit */
			n = INT64_MAX;
		call = json_pack("{s:s, s:I}", "op", "upload.create", "size", (json_int_t)n);
	} else if (strcmp(m, "HEAD") == 0 && id) {
		call = json_pack("{s:s, s:s}", "op", "upload.info", "upload_id", id);
	} else if (strcmp(m, "DELETE") == 0 && id) {
		call = json_pack("{s:s, s:s}", "op", "upload.delete", "upload_id", id);
	} else if (strcmp(m, "PATCH") != 0 || id == NULL) {
		rc = node_http_fail(res, 405, "method-not-allowed",
		                    "tus: POST /v1/uploads; HEAD, PATCH or DELETE /v1/uploads/ID");
		tern_http_response_header(res, "Allow", "%s",
		                          id ? "HEAD, PATCH, DELETE" : "POST, OPTIONS");
		goto out;
	}
	if (call) {
		rc = node_http_call(h, call, NULL, 0, 0, &resp);
	} else {
		parse_u64(req->headers[NH_UPLOAD_OFFSET], &n);
		rc = tus_patch(h, id, req, n, &resp);
	}
	if (rc != TERN_OK) {
		rc = node_http_fail(res, 503, tern_errcode_name(rc), tern_errdetail());
		goto out;
	}
	status = node_http_status(resp);
	if (status != 200) {
		/* A conflict says where to go on from; a HEAD's body is dropped. */
		rc = node_http_json(res, status, resp);
		if (rc == TERN_OK && status == 409 && json_object_get(resp, "offset"))
			rc = offset_headers(res, resp, 0);
		goto out;
	}
	if (strcmp(m, "POST") == 0) {
		const char *uid = json_string_value(json_object_get(resp, "upload_id"));
		rc = node_http_json(res, 201, resp);
		if (rc == TERN_OK)
			rc = tern_http_response_header(res, "Location", "/v1/uploads/%s",
			                               uid ? uid : "");
		if (rc == TERN_OK)
			rc = offset_headers(res, resp, 0);
	} else if (strcmp(m, "HEAD") == 0) {
		res->status = 200;
		res->ctype = NULL; /* no body */
		rc = offset_headers(res, resp, 1);
	} else {
		res->status = 204;
		res->ctype = NULL;
		if (strcmp(m, "PATCH") == 0)
			rc = offset_headers(res, resp, 0);
	}
out:
	if (rc == TERN_OK)
		rc = tus_header(res);
	json_decref(call);
	json_decref(resp);
	return rc;
}

/* One download under way: the attachment's place and what is left of the
 * range. Freed by the server when the response is done with. */
struct dl {
	node_http *h;
	char msgid[40];
	json_int_t index;
	uint64_t size, pos, end; /* next byte to fetch; one past the last to send */
	char sha256[72];
	uint8_t *buf;
};

static void dl_free(void *arg)
{
	struct dl *d = arg;

	if (d == NULL)
		return;
	atomic_fetch_sub(&d->h->downloads, 1);
	if (d->buf) {
		sodium_memzero(d->buf, DL_PIECE);
		free(d->buf);
	}
	free(d);
}

/* The next piece, on a worker: an attachment.get from pos, ending at a
 * multiple of DL_PIECE (the node opens whole chunks: aligned pieces open
 * each chunk once). */
static int dl_next(void *arg, const uint8_t **data, size_t *len)
{
	struct dl *d = arg;
	uint64_t want = DL_PIECE - d->pos % DL_PIECE;
	json_t *req, *resp = NULL;
	const char *b64, *sha;
	size_t got = 0;
	int rc;

	if (want > d->end - d->pos)
		want = d->end - d->pos;
	req =
	    json_pack("{s:s, s:s, s:I, s:I, s:I}", "op", "attachment.get", "message_id", d->msgid,
	              "index", d->index, "offset", (json_int_t)d->pos, "length", (json_int_t)want);
	if (req == NULL)
		return TERN_ENOMEM;
	/* Once more on a new connection if the node closed this worker's kept
	 * one under the call (seen once, on a loaded machine): a read is safe
	 * to repeat, and a download cut short costs the client all of it. */
	for (int tries = 0; tries < 2; tries++)
		if ((rc = node_http_call(d->h, req, NULL, 0, 0, &resp)) == TERN_OK)
			break;
	json_decref(req);
	if (rc != TERN_OK)
		goto fail;
	b64 = json_string_value(json_object_get(resp, "data"));
	sha = json_string_value(json_object_get(resp, "sha256"));
	/* The same attachment as the headers described, at the place asked. */
	if (!json_is_true(json_object_get(resp, "ok")) || b64 == NULL || sha == NULL ||
	    strcmp(sha, d->sha256) != 0 ||
	    (uint64_t)json_integer_value(json_object_get(resp, "offset")) != d->pos ||
	    (uint64_t)json_integer_value(json_object_get(resp, "size")) != d->size ||
	    sodium_base642bin(d->buf, DL_PIECE, b64, strlen(b64), NULL, &got, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got == 0) {
		rc = TERN_EIO;
		goto fail;
	}
	if (got > d->end - d->pos)
		got = (size_t)(d->end - d->pos);
	d->pos += got;
	*data = d->buf;
	*len = got;
	json_decref(resp);
	return TERN_OK;
fail:
	log_warnx("HTTP download of attachment %lld of %s stopped at byte %llu: %s",
	          (long long)d->index, d->msgid, (unsigned long long)d->pos,
	          resp ? json_string_value(json_object_get(resp, "message")) : tern_errdetail());
	json_decref(resp);
	return rc;
}

/* A single range of Range against size: *first and *last (inclusive).
 * TERN_OK: serve it (206); TERN_ENOENT: serve the whole (no range, one we
 * do not parse, several ranges); TERN_EINVAL: unsatisfiable (416). */
static int parse_range(const char *r, uint64_t size, uint64_t *first, uint64_t *last)
{
	uint64_t a, b;
	char *end;

	if (r == NULL || strncmp(r, "bytes=", 6) != 0 || strchr(r, ',') != NULL)
		return TERN_ENOENT; /* RFC 9110: a range we do not serve is ignored */
	r += 6;
	if (*r == '-') {
		if (r[1] < '0' || r[1] > '9')
			return TERN_ENOENT;
		errno = 0;
		b = strtoull(r + 1, &end, 10);
		if (*end != 0 || errno)
			return TERN_ENOENT;
		if (b == 0)
			return TERN_EINVAL;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return TERN_OK;
	}
	if (*r < '0' || *r > '9')
		return TERN_ENOENT;
	errno = 0;
	a = strtoull(r, &end, 10);
	if (*end != '-' || errno)
		return TERN_ENOENT;
	r = end + 1;
	if (*r == 0) {
		b = size - 1;
	} else {
		if (*r < '0' || *r > '9')
			return TERN_ENOENT;
		b = strtoull(r, &end, 10);
		if (*end != 0 || errno || b < a)
			return TERN_ENOENT;
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return TERN_EINVAL;
	*first = a;
	*last = b;
	return TERN_OK;
}

/* A media type we may repeat in Content-Type: type/subtype of token
 * characters, no parameters; else application/octet-stream (the sender
 * chose it, and a header must carry nothing else). */
static const char *safe_media_type(const char *t)
{
	static const char tok[] = "!#$&^_.+-";
	int slash = 0;

	if (t == NULL || *t == 0 || strlen(t) > 127)
		return "application/octet-stream";
	for (const char *p = t; *p; p++) {
		if (*p == '/' && p != t && p[1] && !slash)
			slash = 1;
		else if (!isalnum((unsigned char)*p) && strchr(tok, *p) == NULL)
			return "application/octet-stream";
	}
	return slash ? t : "application/octet-stream";
}

/* Content-Disposition for name: an ASCII filename with anything unsafe
 * replaced, and filename* (RFC 8187) with the name's UTF-8 bytes. */
static int disposition(tern_http_response *res, const char *name)
{
	static const char attr[] = "!#$&+-.^_`|~";
	char plain[DL_NAME_MAX + 1], ext[DL_NAME_MAX * 3 + 1];
	size_t n = strlen(name), pi = 0, ei = 0;

	if (n > DL_NAME_MAX)
		n = DL_NAME_MAX;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		plain[pi++] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '/'
		                  ? '_'
		                  : (char)ch;
		if (isalnum(ch) || (ch && strchr(attr, ch)))
			ext[ei++] = (char)ch;
		else
			ei += (size_t)snprintf(ext + ei, sizeof(ext) - ei, "%%%02X", ch);
	}
	plain[pi] = ext[ei] = 0;
	return tern_http_response_header(res, "Content-Disposition",
	                                 "attachment; filename=\"%s\"; filename*=UTF-8''%s", plain,
	                                 ext);
}

/* GET (or HEAD) /v1/messages/ID/attachments/NAME. */
static int download(node_http *h, const char *msgid, const char *name, const tern_http_request *req,
                    tern_http_response *res)
{
	json_t *call, *resp = NULL;
	struct dl *d = NULL;
	const char *mt, *sha, *rname;
	uint64_t first = 0, last = 0;
	int rc, ranged, status;

	if (atomic_fetch_add(&h->downloads, 1) >= DL_MAX) {
		atomic_fetch_sub(&h->downloads, 1);
		return node_http_fail(res, 503, "busy",
		                      "too many attachment downloads at once; retry in a moment");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		atomic_fetch_sub(&h->downloads, 1);
		return TERN_ENOMEM;
	}
	d->h = h; /* from here dl_free gives the slot back */
	call = json_pack("{s:s, s:s, s:s, s:i, s:i}", "op", "attachment.get", "message_id", msgid,
	                 "name", name, "offset", 0, "length", 1);
	rc = call ? node_http_call(h, call, NULL, 0, 0, &resp) : TERN_ENOMEM;
	json_decref(call);
	if (rc != TERN_OK) {
		rc = node_http_fail(res, 503, tern_errcode_name(rc), tern_errdetail());
		goto out;
	}
	if ((status = node_http_status(resp)) != 200) {
		rc = node_http_json(res, status, resp);
		goto out;
	}
	mt = json_string_value(json_object_get(resp, "media_type"));
	sha = json_string_value(json_object_get(resp, "sha256"));
	rname = json_string_value(json_object_get(resp, "name"));
	d->index = json_integer_value(json_object_get(resp, "index"));
	d->size = (uint64_t)json_integer_value(json_object_get(resp, "size"));
	if (sha == NULL || strlen(sha) >= sizeof(d->sha256) || rname == NULL || d->size == 0) {
		rc =
		    node_http_fail(res, 502, "malformed", "the node's answer lacks the attachment");
		goto out;
	}
	snprintf(d->msgid, sizeof(d->msgid), "%s", msgid);
	snprintf(d->sha256, sizeof(d->sha256), "%s", sha);
	rc = parse_range(req->headers[NH_RANGE], d->size, &first, &last);
	/* If-Range: the range holds only for the same bytes (our ETag). */
	if (rc == TERN_OK && req->headers[NH_IF_RANGE]) {
		size_t sl = strlen(sha), il = strlen(req->headers[NH_IF_RANGE]);
		const char *ir = req->headers[NH_IF_RANGE];
		if (il != sl + 2 || ir[0] != '"' || strncmp(ir + 1, sha, sl) != 0 ||
		    ir[il - 1] != '"')
			rc = TERN_ENOENT;
	}
	if (rc == TERN_EINVAL) {
		rc = node_http_fail(res, 416, "invalid-argument",
		                    "the range is outside the attachment");
		if (rc == TERN_OK)
			rc = tern_http_response_header(res, "Content-Range", "bytes */%" PRIu64,
			                               d->size);
		goto out;
	}
	ranged = rc == TERN_OK;
	if (!ranged) {
		first = 0;
		last = d->size - 1;
	}
	if ((d->buf = malloc(DL_PIECE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	d->pos = first;
	d->end = last + 1;
	res->status = ranged ? 206 : 200;
	res->ctype = NULL; /* the attachment's own, below */
	if ((rc = tern_http_response_header(res, "Content-Type", "%s", safe_media_type(mt))) !=
	        TERN_OK ||
	    (rc = tern_http_response_header(res, "X-Content-Type-Options", "nosniff")) != TERN_OK ||
	    (rc = tern_http_response_header(res, "Accept-Ranges", "bytes")) != TERN_OK ||
	    (rc = tern_http_response_header(res, "ETag", "\"%s\"", sha)) != TERN_OK ||
	    (rc = disposition(res, rname)) != TERN_OK)
		goto out;
	if (ranged && (rc = tern_http_response_header(res, "Content-Range",
	                                              "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
	                                              first, last, d->size)) != TERN_OK)
		goto out;
	res->streamed = 1;
	res->stream = (tern_http_stream){d->end - d->pos, dl_next, dl_free, d};
	d = NULL; /* the server's now */
out:
	dl_free(d);
	json_decref(resp);
	return rc;
}

int node_http_attach(node_http *h, const tern_http_request *req, tern_http_response *res,
                     int *handled)
{
	char id[40];
	int n = 0;

	*handled = 0;
	if (is_uploads(req->url)) {
		*handled = 1;
		return tus(h, req, res);
	}
	if (sscanf(req->url, "/v1/messages/%39[0-9a-f-]%n", id, &n) == 1 &&
	    strncmp(req->url + n, "/attachments/", 13) == 0 && req->url[n + 13] &&
	    strlen(req->url + n + 13) <= 1024) {
		*handled = 1;
		if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
			return download(h, id, req->url + n + 13, req, res);
		node_http_fail(res, 405, "method-not-allowed", "an attachment takes GET or HEAD");
		return tern_http_response_header(res, "Allow", "GET, HEAD");
	}
	return TERN_OK;
}

/* Shared by the node's HTTP API files: http_api.c (the server, the JSON
 * routes and the local API calls) and http_attach.c (tus uploads and
 * attachment downloads). Everything here runs on the server's workers
 * unless it says otherwise. */
#ifndef TERN_NODE_HTTP_INT_H
#define TERN_NODE_HTTP_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "http.h"
#include "http_api.h"

/* The request headers the API reads (tern_http_api.headers), by index into
 * tern_http_request.headers. */
enum {
	NH_TUS_RESUMABLE,
	NH_UPLOAD_LENGTH,
	NH_UPLOAD_OFFSET,
	NH_UPLOAD_DEFER,
	NH_CONTENT_TYPE,
	NH_RANGE,
	NH_IF_RANGE,
};
#define NODE_HTTP_HEADER_NAMES                                                                     \
	{                                                                                          \
		"Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Defer-Length",          \
		    "Content-Type", "Range", "If-Range", NULL                                      \
	}

struct node_http {
	tern_http *srv;
	char *api_socket;
	int64_t max_upload;    /* [limits] max_attachment_size, for Tus-Max-Size */
	atomic_uint downloads; /* attachment downloads under way */
};

/* One local API call on this worker's kept connection: JSON (req, which
 * gets its "v") or a binary frame (bin, blen). *resp is a new reference;
 * an error code when the node did not answer. */
int node_http_call(node_http *h, json_t *req, const void *bin, size_t blen, int wait_ms,
                   json_t **resp);
/* The HTTP status of a local API answer: 200 for "ok", else the reasons
 * table's for its "error". */
int node_http_status(const json_t *resp);

/* The convention (http_json.c). node_http_view: a local API answer in the
 * HTTP API's terms (camelCase names, RFC 3339 times, no "ok"), a new
 * reference. node_http_json: sets res to resp (borrowed) with status: the
 * view, or for an "ok": false answer its problem details. node_http_fail:
 * problem details (RFC 9457) with code and msg; _ext adds ext's members
 * (borrowed, may be NULL). */
json_t *node_http_view(const json_t *resp);
int node_http_json(tern_http_response *res, int status, const json_t *resp);
int node_http_fail(tern_http_response *res, int status, const char *code, const char *msg);
int node_http_fail_ext(tern_http_response *res, int status, const char *code, const char *msg,
                       const json_t *ext);

/* A strict request body: each field the API takes, with its kind, its name
 * in the local API and, for an integer, its bounds. */
typedef enum { NHF_STRING, NHF_STRINGS, NHF_OBJECT, NHF_INT, NHF_TIME } node_http_kind;
typedef struct node_http_field {
	const char *name;  /* camelCase, as the client sends it */
	const char *local; /* the local API's name */
	node_http_kind kind;
	int64_t min, max; /* NHF_INT */
	int required;
} node_http_field;
/* The local API request a body makes (a new reference), or NULL with res
 * set to a 400 naming the field: not a JSON object, a duplicate, unknown or
 * misspelt field, a wrong type, a value out of bounds, a required one
 * missing. An empty body is {} when optional. */
json_t *node_http_request(tern_http_response *res, const char *body, size_t blen,
                          const node_http_field *fields, size_t n, int optional);

/* The local API request a query string makes (a new reference), or NULL
 * with res set to a 400 naming the argument in `field`: one the operation
 * does not take, one given twice, an empty value, an integer that is not
 * one or out of bounds (NHF_INT), a time that is not RFC 3339 (NHF_TIME:
 * epoch milliseconds in the local API). NHF_STRINGS and NHF_OBJECT are not
 * query kinds. */
json_t *node_http_query(tern_http_response *res, const tern_http_request *in,
                        const node_http_field *fields, size_t n);
/* An RFC 3339 time ("2026-12-06T12:21:09.818Z", an offset or none of the
 * fraction) in epoch milliseconds; TERN_EINVAL. */
int node_http_time_parse(const char *s, int64_t *ms);

/* The tus uploads and downloads (http_attach.c). node_http_attach answers
 * a request under /v1/uploads or /v1/messages/ID/attachments/ and sets
 * *handled, or leaves it 0 for the other routes. node_http_early is the
 * server's early hook (its own thread, no blocking): the tus checks that
 * need only the headers. */
int node_http_attach(node_http *h, const tern_http_request *req, tern_http_response *res,
                     int *handled);
void node_http_early(void *arg, const tern_http_request *req, tern_http_response *res);

#endif

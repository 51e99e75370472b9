/* Errors of the HTTP servers as RFC 9457 problem details: one shape for the
 * node's API, its uploads and the metrics server (docs/api.md, "Errors"). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/reason.h>

#include "http.h"

/* The title of a code: the reason table's sentence, a library error's
 * text, else the status's phrase. */
static const char *title_of(int status, const char *code)
{
	tern_reason r;

	if (tern_reason_from_code(code, &r) == TERN_OK)
		return tern_reason_info_of(r)->description;
	for (int e = 1; e < TERN_ERR_COUNT; e++)
		if (strcmp(tern_errcode_name(e), code) == 0)
			return tern_strerror(e);
	switch (status) {
	case 401:
		return "the request lacks the API's bearer token";
	case 404:
		return "not found";
	case 405:
		return "the method is not allowed on this path";
	case 413:
		return "the request body is over the limit";
	case 503:
		return "the node cannot answer now: retry";
	default:
		return status >= 500 ? "the node failed to answer" : "the request is not valid";
	}
}

int tern_http_problem(int status, const char *code, const char *detail, const json_t *ext,
                      char **out, size_t *len)
{
	json_t *o;
	char type[128];
	const char *k;
	json_t *v;
	int rc = TERN_ENOMEM;

	*out = NULL;
	*len = 0;
	snprintf(type, sizeof(type), "urn:tern:problem:%s", code);
	o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", title_of(status, code),
	              "status", status, "detail", detail ? detail : "", "code", code);
	if (o == NULL)
		return TERN_ENOMEM;
	if (ext)
		json_object_foreach((json_t *)ext, k, v)
		{
			/* the standard members are this function's */
			if (strcmp(k, "type") && strcmp(k, "title") && strcmp(k, "status") &&
			    strcmp(k, "detail") && strcmp(k, "code"))
				json_object_set(o, k, v);
		}
	if ((*out = json_dumps(o, JSON_INDENT(2))) != NULL) {
		size_t n = strlen(*out);
		char *grown = realloc(*out, n + 2);
		if (grown) {
			memcpy(grown + n, "\n", 2);
			*out = grown;
			n++;
		}
		*len = n;
		rc = TERN_OK;
	}
	json_decref(o);
	return rc;
}

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/reason.h>

#include "http_api.h"
#include "http_int.h"
#include "util.h"

/* A body's limit: a JSON request, or a tus PATCH (the node's append limit). */
#define MAX_BODY (8u * 1024 * 1024)

/* The status an answer's error code has in the reasons table (tern/reason.h). */
int node_http_status(const json_t *resp)
{
	const char *e = json_string_value(json_object_get(resp, "error"));

	if (json_is_true(json_object_get(resp, "ok")))
		return 200;
	return e ? tern_reason_http_status(e) : 500;
}

/* The fields each body takes (docs/api.md, "HTTP"): their camelCase names,
 * the local API's, kinds and bounds. */
static const node_http_field send_fields[] = {
    {"type", "type", NHF_STRING, 0, 0, 1},
    {"to", "to", NHF_STRINGS, 0, 0, 1},
    {"body", "body", NHF_OBJECT, 0, 0, 1},
    {"inReplyTo", "in_reply_to", NHF_STRING, 0, 0, 0},
    {"ttlSeconds", "ttl_seconds", NHF_INT, 0, 315360000, 0},
    {"clientRef", "client_ref", NHF_STRING, 0, 0, 0},
    /* a send that waits for its final state holds a worker: at most a
     * minute, as inbox/next */
    {"waitMs", "wait_ms", NHF_INT, 0, 60000, 0},
    {"uploads", "uploads", NHF_STRINGS, 0, 0, 0},
};
/* GET /v1/messages's query: the local API's messages.list arguments, times
 * in RFC 3339 (the node checks the values; these, their form). */
static const node_http_field list_args[] = {
    {"direction", "direction", NHF_STRING, 0, 0, 0}, {"caseId", "case_id", NHF_STRING, 0, 0, 0},
    {"type", "type", NHF_STRING, 0, 0, 0},           {"state", "state", NHF_STRING, 0, 0, 0},
    {"peer", "peer", NHF_STRING, 0, 0, 0},           {"since", "since", NHF_TIME, 0, 0, 0},
    {"until", "until", NHF_TIME, 0, 0, 0},           {"limit", "limit", NHF_INT, 1, 1000, 0},
    {"cursor", "cursor", NHF_STRING, 0, 0, 0},
};
static const node_http_field next_fields[] = {
    {"waitMs", "wait_ms", NHF_INT, 0, 60000, 0},
};

/* What a path is, and the methods it takes, as a 405's Allow names them
 * (/v1/messages lists with GET and sends with POST). */
enum path {
	P_NONE,
	P_MESSAGES,
	P_MESSAGE,
	P_INBOX,
	P_INBOX_NEXT,
	P_INBOX_MSG,
	P_INBOX_ACK,
	P_NODE,
	P_CASE
};
static const char *const path_method[] = {
    [P_MESSAGES] = "GET, POST", [P_MESSAGE] = "GET",    [P_INBOX] = "GET", [P_INBOX_NEXT] = "POST",
    [P_INBOX_MSG] = "GET",      [P_INBOX_ACK] = "POST", [P_NODE] = "GET",  [P_CASE] = "GET",
};

/* The path's kind, with its id (a message id, or a case id) in id. */
static enum path path_of(const char *url, char *id, size_t cap)
{
	int n = 0;

	if (strcmp(url, "/v1/messages") == 0)
		return P_MESSAGES;
	if (sscanf(url, "/v1/messages/%63[0-9a-f-]%n", id, &n) == 1 && url[n] == 0)
		return P_MESSAGE;
	if (strcmp(url, "/v1/inbox") == 0)
		return P_INBOX;
	if (strcmp(url, "/v1/inbox/next") == 0)
		return P_INBOX_NEXT;
	if (sscanf(url, "/v1/inbox/%63[0-9a-f-]%n", id, &n) == 1 && url[n] == 0)
		return P_INBOX_MSG;
	if (sscanf(url, "/v1/inbox/%63[0-9a-f-]%n", id, &n) == 1 && strcmp(url + n, "/ack") == 0)
		return P_INBOX_ACK;
	if (strcmp(url, "/v1/node") == 0)
		return P_NODE;
	/* A case id may hold '/' (sent as %2F, which the server decodes): the
	 * rest of the path is the id, checked by the node. */
	if (strncmp(url, "/v1/cases/", 10) == 0 && url[10] && strlen(url + 10) < cap) {
		snprintf(id, cap, "%s", url + 10);
		return P_CASE;
	}
	return P_NONE;
}

/* Whether method is one of allowed ("GET" or "GET, POST"). */
static int method_ok(const char *allowed, const char *method)
{
	size_t n = strlen(method);

	for (const char *p = allowed; (p = strstr(p, method)) != NULL; p += n)
		if ((p == allowed || p[-1] == ' ') && (p[n] == 0 || p[n] == ','))
			return 1;
	return 0;
}

/* Method and path to a local API request (a new reference), or NULL with
 * res set to the refusal: 404, 405 with Allow, 400 naming a field. */
static json_t *route(const tern_http_request *in, tern_http_response *res, int *wait_ms,
                     enum path *p)
{
	char id[160];
	json_t *req = NULL;

	*wait_ms = 0;
	if ((*p = path_of(in->url, id, sizeof(id))) == P_NONE) {
		node_http_fail(res, 404, "not-found", "no such path; see docs/api.md#http");
		return NULL;
	}
	if (!method_ok(path_method[*p], in->method)) {
		char why[96];
		snprintf(why, sizeof(why), "this path takes %s only", path_method[*p]);
		node_http_fail(res, 405, "method-not-allowed", why);
		tern_http_response_header(res, "Allow", "%s", path_method[*p]);
		return NULL;
	}
	if ((in->nargs || in->args_over) && !(*p == P_MESSAGES && strcmp(in->method, "GET") == 0)) {
		/* strict, as bodies are: a query no path here reads is refused,
		 * not dropped */
		json_t *ext = json_pack("{s:s}", "field", in->nargs ? in->arg_name[0] : "");
		node_http_fail_ext(res, 400, "invalid-argument",
		                   "this path takes no query arguments (docs/api.md#http)", ext);
		json_decref(ext);
		return NULL;
	}
	switch (*p) {
	case P_MESSAGES:
		if (strcmp(in->method, "GET") == 0) {
			req = node_http_query(res, in, list_args,
			                      sizeof(list_args) / sizeof(list_args[0]));
			if (req)
				json_object_set_new(req, "op", json_string("messages.list"));
			return req;
		}
		req = node_http_request(res, in->body, in->blen, send_fields,
		                        sizeof(send_fields) / sizeof(send_fields[0]), 0);
		if (req) {
			*wait_ms = (int)json_integer_value(json_object_get(req, "wait_ms"));
			json_object_set_new(req, "op", json_string("send"));
		}
		return req;
	case P_MESSAGE:
		return json_pack("{s:s, s:s}", "op", "status", "message_id", id);
	case P_INBOX:
		return json_pack("{s:s}", "op", "inbox.list");
	case P_INBOX_NEXT:
		req = node_http_request(res, in->body, in->blen, next_fields,
		                        sizeof(next_fields) / sizeof(next_fields[0]), 1);
		if (req) {
			*wait_ms = (int)json_integer_value(json_object_get(req, "wait_ms"));
			json_object_set_new(req, "op", json_string("inbox.next"));
			json_object_set_new(req, "wait_ms", json_integer(*wait_ms));
		}
		return req;
	case P_INBOX_MSG:
		return json_pack("{s:s, s:s}", "op", "inbox.show", "message_id", id);
	case P_INBOX_ACK:
		/* nothing to say but the path: a body, if any, must be {} */
		req = node_http_request(res, in->body, in->blen, NULL, 0, 1);
		if (req) {
			json_decref(req);
			req = json_pack("{s:s, s:s}", "op", "inbox.ack", "message_id", id);
		}
		return req;
	case P_NODE:
		return json_pack("{s:s}", "op", "node.info");
	case P_CASE:
		return json_pack("{s:s, s:s}", "op", "case.show", "case_id", id);
	case P_NONE:
		break;
	}
	return NULL;
}

/* Each worker keeps its connection to the local API from request to
 * request; closed when the worker ends. */
static pthread_key_t client_key;
static pthread_once_t client_once = PTHREAD_ONCE_INIT;

static void client_end(void *p)
{
	tern_api_client_close(p);
	free(p);
}

static void client_key_make(void)
{
	(void)pthread_key_create(&client_key, client_end);
}

/* This worker's connection, or NULL (then a connection per call). */
static tern_api_client *worker_client(void)
{
	tern_api_client *c;

	if (pthread_once(&client_once, client_key_make) != 0)
		return NULL;
	if ((c = pthread_getspecific(client_key)) != NULL)
		return c;
	if ((c = malloc(sizeof(*c))) == NULL)
		return NULL;
	*c = (tern_api_client)TERN_API_CLIENT_INIT;
	if (pthread_setspecific(client_key, c) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

int node_http_call(node_http *h, json_t *req, const void *bin, size_t blen, int wait_ms,
                   json_t **resp)
{
	tern_api_client *c = worker_client();
	json_t *full = req; /* "v" added in place: a send's body is not copied */
	int rc;

	*resp = NULL;
	if (req)
		json_object_set_new(req, "v", json_integer(TERN_API_VERSION));
	if (c == NULL && full == NULL) {
		/* no kept connection: a binary frame over a new one */
		tern_api_client one = TERN_API_CLIENT_INIT;
		rc = tern_api_client_call_binary(&one, h->api_socket, bin, blen, wait_ms + 30000,
		                                 resp);
		tern_api_client_close(&one);
	} else if (c == NULL) {
		rc = tern_api_call(h->api_socket, full, wait_ms + 30000, resp);
	} else {
		rc = full ? tern_api_client_call(c, h->api_socket, full, wait_ms + 30000, resp)
		          : tern_api_client_call_binary(c, h->api_socket, bin, blen,
		                                        wait_ms + 30000, resp);
	}
	if (rc != TERN_OK) {
		json_decref(*resp);
		*resp = NULL;
	}
	return rc;
}

/* Called on one of the server's workers, for a request whose token the
 * server has already checked: the local API call may block (inbox/next waits
 * up to a minute) without holding up other clients. */
static void on_request(void *arg, const tern_http_request *in, tern_http_response *res)
{
	node_http *h = arg;
	json_t *req, *resp = NULL;
	enum path p;
	int wait_ms, rc, status, handled = 0;

	if (node_http_attach(h, in, res, &handled) == TERN_OK && handled)
		return;
	if (handled) {
		/* out of memory on the way: say so rather than nothing */
		node_http_fail(res, 503, "no-memory", "the server could not answer");
		return;
	}
	if ((req = route(in, res, &wait_ms, &p)) == NULL) {
		if (res->out == NULL) /* out of memory on the way */
			node_http_fail(res, 503, "no-memory", "the server could not answer");
		return;
	}
	rc = node_http_call(h, req, NULL, 0, wait_ms, &resp);
	json_decref(req);
	if (rc != TERN_OK) {
		node_http_fail(res, 503, tern_errcode_name(rc), tern_errdetail());
		return;
	}
	status = node_http_status(resp);
	/* a new message is created at its own path; a client_ref's repeat
	 * names the message it already made */
	if (p == P_MESSAGES && status == 200 && !json_is_true(json_object_get(resp, "duplicate")) &&
	    json_string_value(json_object_get(resp, "message_id"))) {
		status = 201;
		tern_http_response_header(res, "Location", "/v1/messages/%s",
		                          json_string_value(json_object_get(resp, "message_id")));
	}
	node_http_json(res, status, resp);
	json_decref(resp);
}

int node_http_start(uint16_t port, const char *api_socket, const char *token, int64_t max_upload,
                    node_http **out)
{
	static const char *const headers[] = NODE_HTTP_HEADER_NAMES;
	node_http *h = calloc(1, sizeof(*h));
	tern_http_api api = {"/v1/",     token, MAX_BODY,        0,
	                     on_request, NULL,  node_http_early, headers};
	int rc;

	*out = NULL;
	if (h == NULL || (h->api_socket = strdup(api_socket)) == NULL) {
		node_http_stop(&h);
		return TERN_ENOMEM;
	}
	h->max_upload = max_upload;
	atomic_init(&h->downloads, 0);
	api.arg = h;
	if ((rc = tern_http_start(port, token ? &api : NULL, &h->srv)) != TERN_OK) {
		node_http_stop(&h);
		return rc;
	}
	*out = h;
	return TERN_OK;
}

tern_http *node_http_server(node_http *h)
{
	return h ? h->srv : NULL;
}

void node_http_stop(node_http **hp)
{
	node_http *h;

	if (hp == NULL || (h = *hp) == NULL)
		return;
	tern_http_stop(&h->srv);
	free(h->api_socket);
	free(h);
	*hp = NULL;
}

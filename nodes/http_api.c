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

#define JSON_CTYPE "application/json"
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

/* Method and path to a local API request (a new reference), or NULL. */
static json_t *route(const char *method, const char *url, const char *body, size_t blen,
                     int *wait_ms, int *status, const char **why)
{
	char id[64];
	json_error_t je;
	json_t *req;
	int n = 0;

	*status = 404;
	*why = "no such endpoint; see docs/api.md#http";
	*wait_ms = 0;
	if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/messages") == 0) {
		req = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(req)) {
			json_decref(req);
			*status = 400;
			*why = "the request body must be a JSON object: the send request of "
			       "docs/api.md";
			return NULL;
		}
		/* A send that waits for its final state holds a worker: at most a
		 * minute, as inbox/next, and the local call's timeout runs past it
		 * (a timeout before the node's answer would say 503 for a message
		 * already stored, and a retry would send it twice). */
		if (json_is_integer(json_object_get(req, "wait_ms"))) {
			json_int_t w = json_integer_value(json_object_get(req, "wait_ms"));
			*wait_ms = w <= 0 ? 0 : w > 60000 ? 60000 : (int)w;
			json_object_set_new(req, "wait_ms", json_integer(*wait_ms));
		}
		json_object_set_new(req, "op", json_string("send"));
		return req;
	}
	if (strcmp(method, "GET") == 0 && sscanf(url, "/v1/messages/%63[0-9a-f-]%n", id, &n) == 1 &&
	    url[n] == 0)
		return json_pack("{s:s, s:s}", "op", "status", "message_id", id);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/inbox") == 0)
		return json_pack("{s:s}", "op", "inbox.list");
	if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/inbox/next") == 0) {
		json_t *o = blen ? json_loadb(body, blen, 0, &je) : NULL;
		json_int_t w = json_integer_value(json_object_get(o, "wait_ms"));
		json_decref(o);
		*wait_ms = w > 0 && w <= 60000 ? (int)w : 0;
		return json_pack("{s:s, s:i}", "op", "inbox.next", "wait_ms", *wait_ms);
	}
	if (strcmp(method, "GET") == 0 && sscanf(url, "/v1/inbox/%63[0-9a-f-]%n", id, &n) == 1 &&
	    url[n] == 0)
		return json_pack("{s:s, s:s}", "op", "inbox.show", "message_id", id);
	if (strcmp(method, "POST") == 0 && sscanf(url, "/v1/inbox/%63[0-9a-f-]%n", id, &n) == 1 &&
	    strcmp(url + n, "/ack") == 0)
		return json_pack("{s:s, s:s}", "op", "inbox.ack", "message_id", id);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/node") == 0)
		return json_pack("{s:s}", "op", "node.info");
	/* A case id may hold '/' (sent as %2F, which the server decodes): the
	 * rest of the path is the id, checked by the node. */
	if (strcmp(method, "GET") == 0 && strncmp(url, "/v1/cases/", 10) == 0 && url[10] &&
	    strlen(url + 10) <= 128)
		return json_pack("{s:s, s:s}", "op", "case.show", "case_id", url + 10);
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

int node_http_json(tern_http_response *res, int status, const json_t *resp)
{
	char *out = json_dumps(resp, JSON_INDENT(2));
	size_t len;

	res->status = status;
	res->ctype = JSON_CTYPE;
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

int node_http_fail(tern_http_response *res, int status, const char *code, const char *msg)
{
	json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", msg);
	int rc;

	if (o == NULL) {
		res->status = 503;
		return TERN_ENOMEM;
	}
	rc = node_http_json(res, status, o);
	json_decref(o);
	return rc;
}

/* Called on one of the server's workers, for a request whose token the
 * server has already checked: the local API call may block (inbox/next waits
 * up to a minute) without holding up other clients. */
static void on_request(void *arg, const tern_http_request *in, tern_http_response *res)
{
	node_http *h = arg;
	json_t *req, *resp = NULL;
	const char *why;
	int wait_ms, rc, status, handled = 0;

	if (node_http_attach(h, in, res, &handled) == TERN_OK && handled)
		return;
	if (handled) {
		/* out of memory on the way: say so rather than nothing */
		node_http_fail(res, 503, "no-memory", "the server could not answer");
		return;
	}
	if ((req = route(in->method, in->url, in->body, in->blen, &wait_ms, &status, &why)) ==
	    NULL) {
		node_http_fail(res, status, status == 404 ? "not-found" : "invalid-argument", why);
		return;
	}
	rc = node_http_call(h, req, NULL, 0, wait_ms, &resp);
	json_decref(req);
	if (rc != TERN_OK) {
		node_http_fail(res, 503, tern_errcode_name(rc), tern_errdetail());
		return;
	}
	node_http_json(res, node_http_status(resp), resp);
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

/* A small HTTP server on 127.0.0.1 (libmicrohttpd, one epoll thread and a
 * few workers) for the daemons' metrics and health endpoints and the node's
 * HTTP API (docs/operations.md). It never binds anything but loopback.
 *
 * Two ways to answer: published snapshots (the daemon's loop renders
 * /metrics, /healthz, /readyz and publishes them; GET serves the latest,
 * with no token), and an API: the requests under a prefix, which need a
 * bearer token and go to a handler on a worker thread.
 *
 * Any local process can connect, so the server is built to outlast hostile
 * ones (docs/SECURITY.md, "HTTP API"): one thread holds every connection
 * (thousands, each with a small memory pool and a short inactivity timeout);
 * the token is checked as soon as the headers are in, and a request without
 * it gets 401 before any byte of its body is read; a handler's blocking call
 * runs on one of a bounded set of workers while its connection is
 * suspended, and a request beyond the bound gets 503 at once.
 *
 * A streamed response (tern_http_stream) is produced on the workers too: the
 * server's thread only copies out what a worker has made, and suspends the
 * connection while the next piece is made. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct tern_http tern_http;

#define TERN_HTTP_MAX_HEADERS 8 /* request headers an API reads; response headers it adds */
#define TERN_HTTP_MAX_ARGS 16   /* query arguments a request may carry */

/* One authenticated request, as a handler sees it. Every pointer is the
 * server's and stays valid until the handler returns (the connection is
 * suspended meanwhile, so MHD leaves its strings alone). */
typedef struct tern_http_request {
	const char *method, *url; /* the path, percent-decoded */
	const char *body;         /* blen bytes of any kind (JSON, a binary PATCH), NUL-terminated;
	                             NULL in the early call */
	size_t blen;
	/* The values of the headers tern_http_api.headers names, in its order;
	 * NULL for one the request lacks. */
	const char *headers[TERN_HTTP_MAX_HEADERS];
	/* The query string's arguments, percent-decoded, in their order (a name
	 * given twice is there twice; a name without '=' has the value "").
	 * More than TERN_HTTP_MAX_ARGS: args_over is set and the rest are
	 * dropped, for the handler to refuse. */
	size_t nargs;
	int args_over;
	const char *arg_name[TERN_HTTP_MAX_ARGS], *arg_value[TERN_HTTP_MAX_ARGS];
} tern_http_request;

/* A body produced piece by piece (a download of gigabytes must never sit in
 * memory): next is called on a worker thread, one call at a time, while the
 * connection waits suspended, and may block (a local API call); it sets
 * *data and *len (1 or more bytes, owned by the stream and valid until the
 * next call or free) and returns TERN_OK, or an error code: the connection
 * is then closed short of `size` bytes, which the client sees as a failed
 * transfer. free is called once, never while next runs: on the server's
 * thread when the response is done with (sent, failed or the client gone),
 * or in tern_http_stop. */
typedef struct tern_http_stream {
	uint64_t size; /* Content-Length: exactly the bytes next will give */
	int (*next)(void *arg, const uint8_t **data, size_t *len);
	void (*free)(void *arg);
	void *arg;
} tern_http_stream;

/* A handler's answer. The server starts it as status 500 with ctype
 * application/json (the early hook's: status 0, no ctype), no headers and
 * no body; what the handler sets is the server's from then on (it frees
 * out, the headers and, through stream.free, the stream), and is sent on
 * the server's thread once the handler has returned. */
typedef struct tern_http_response {
	int status;
	const char *ctype; /* static; NULL: no Content-Type (a 204) */
	char *out;         /* malloc'd body, outlen bytes; NULL with outlen 0: empty */
	size_t outlen;
	int streamed; /* set: the body is `stream`, and out is ignored */
	tern_http_stream stream;
	/* added with tern_http_response_header */
	size_t nheaders;
	char *header_name[TERN_HTTP_MAX_HEADERS], *header_value[TERN_HTTP_MAX_HEADERS];
} tern_http_response;

/* Adds a response header (name and value copied). TERN_EINVAL for a value
 * with a control character (no header may be split by what a peer chose,
 * such as a file name) or beyond TERN_HTTP_MAX_HEADERS; TERN_ENOMEM. */
int tern_http_response_header(tern_http_response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers one authenticated request, with its whole body. Runs on a worker
 * thread, several at once: it may block (a long poll), but must not touch
 * the daemon's state except through its own thread-safe means. */
typedef void tern_http_handler(void *arg, const tern_http_request *req, tern_http_response *resp);

/* Optional. Called on the server's own thread once the token is checked,
 * with the headers and before any byte of the body (req->body NULL), so
 * that a request refused for its headers alone (a wrong Content-Type) never
 * makes the server read its body. Must not block. Leaves resp->status 0 to
 * go on (the handler gets the request once its body is in), or sets an
 * answer, sent at once. */
typedef void tern_http_early(void *arg, const tern_http_request *req, tern_http_response *resp);

typedef struct tern_http_api {
	const char *prefix; /* the API's paths, e.g. "/v1/" */
	const char *token;  /* "Authorization: Bearer TOKEN"; copied */
	size_t max_body;    /* a larger body gets 413 */
	unsigned workers;   /* handler calls at once (0: TERN_HTTP_WORKERS); beyond: 503 */
	tern_http_handler *handler;
	void *arg;
	tern_http_early *early; /* may be NULL */
	/* request headers the handlers read (static strings, NULL-terminated,
	 * at most TERN_HTTP_MAX_HEADERS); may be NULL */
	const char *const *headers;
} tern_http_api;

#define TERN_HTTP_WORKERS 16
#define TERN_HTTP_CONNECTIONS 4096 /* per server, fewer if RLIMIT_NOFILE is low */
#define TERN_HTTP_TIMEOUT_S 10     /* an idle connection is closed after this */
/* Descriptors a daemon wants for its two servers (metrics and API) at their
 * limit, plus TERN_HTTP_FD_RESERVE for the rest (store, broker link, local
 * API clients): tern_daemon_main raises RLIMIT_NOFILE's soft limit to this
 * (up to the hard limit), and a server holds fewer connections if it is
 * lower. */
#define TERN_HTTP_FD_RESERVE 256
#define TERN_HTTP_NOFILE (2 * TERN_HTTP_CONNECTIONS + TERN_HTTP_FD_RESERVE)

#define TERN_HTTP_PROBLEM_CTYPE "application/problem+json"
/* An error as RFC 9457 problem details: {"type": "urn:tern:problem:CODE",
 * "title" (the reason table's sentence for CODE, or the status's), "status",
 * "detail", "code": CODE}, then ext's members (borrowed; may be NULL; it
 * cannot override the five). *out is malloc'd JSON of *len bytes ending in a
 * newline; TERN_ENOMEM. */
int tern_http_problem(int status, const char *code, const char *detail, const json_t *ext,
                      char **out, size_t *len);

/* Listens on 127.0.0.1:port (0: the kernel picks; see tern_http_port).
 * api may be NULL: snapshots only. */
int tern_http_start(uint16_t port, const tern_http_api *api, tern_http **out);
int tern_http_port(const tern_http *h, uint16_t *port);
/* Replaces what GET path answers: status and text (copied). After
 * max_age_ms (0: never) without a new publish, the path answers 503: a
 * health check then notices a daemon whose loop is stuck. */
int tern_http_publish(tern_http *h, const char *path, int status, const char *ctype,
                      const char *text, int64_t max_age_ms);
/* How many API requests were refused for want of the token since the last
 * call (thread-safe): the daemon's loop logs and audits them, since the
 * server's threads must not write its store. */
int tern_http_take_refusals(tern_http *h, uint64_t *n);
/* Waits for the handler calls in progress, then closes every connection. */
void tern_http_stop(tern_http **h);

#endif

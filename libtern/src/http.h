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
 * suspended, and a request beyond the bound gets 503 at once. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tern_http tern_http;

/* Answers one authenticated request. body is NUL-terminated (blen bytes).
 * Sets *status, *ctype (static) and *out (malloc'd, freed by the server).
 * Runs on a worker thread, several at once: it may block (a long poll), but
 * must not touch the daemon's state except through its own thread-safe
 * means. */
typedef void tern_http_handler(void *arg, const char *method, const char *url, const char *body,
                               size_t blen, int *status, const char **ctype, char **out,
                               size_t *outlen);

typedef struct tern_http_api {
	const char *prefix; /* the API's paths, e.g. "/v1/" */
	const char *token;  /* "Authorization: Bearer TOKEN"; copied */
	size_t max_body;    /* a larger body gets 413 */
	unsigned workers;   /* handler calls at once (0: TERN_HTTP_WORKERS); beyond: 503 */
	tern_http_handler *handler;
	void *arg;
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

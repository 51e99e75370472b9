/* A small HTTP server on 127.0.0.1 (libmicrohttpd, its own thread) for the
 * daemons' metrics and health endpoints and the node's HTTP API
 * (docs/operations.md). It never binds anything but loopback.
 *
 * Two ways to answer: published snapshots (the daemon's loop renders
 * /metrics, /healthz, /readyz and publishes them; GET serves the latest), and
 * a handler for everything else, called on the server's thread. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tern_http tern_http;

/* Answers one request. body is NUL-terminated (blen bytes); auth is the
 * Authorization header or NULL. Sets *status, *ctype (static) and *out
 * (malloc'd, freed by the server). Runs on the server's thread: it must not
 * touch the daemon's state except through its own thread-safe means. */
typedef void tern_http_handler(void *arg, const char *method, const char *url, const char *auth,
                               const char *body, size_t blen, int *status, const char **ctype,
                               char **out, size_t *outlen);

/* Listens on 127.0.0.1:port. handler may be NULL (snapshots only). */
int tern_http_start(uint16_t port, size_t max_body, tern_http_handler *handler, void *arg,
                    tern_http **out);
/* Replaces what GET path answers: status and text (copied). After
 * max_age_ms (0: never) without a new publish, the path answers 503: a
 * health check then notices a daemon whose loop is stuck. */
int tern_http_publish(tern_http *h, const char *path, int status, const char *ctype,
                      const char *text, int64_t max_age_ms);
void tern_http_stop(tern_http **h);

#endif

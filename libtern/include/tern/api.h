/* The node's local API: a Unix stream socket, owner-only, carrying
 * length-prefixed JSON (4-byte big-endian length, then a UTF-8 JSON object).
 *
 * Request:  {"v": 1, "op": "send" | "status" | "inbox.list" | "inbox.next" |
 *            "inbox.show" | "inbox.ack", ...arguments}
 * Response: {"ok": true, ...results} or
 *           {"ok": false, "error": "<code token>", "message": "<sentence>"}
 *
 * The server checks the peer's credentials (SO_PEERCRED): only the daemon's own
 * user, or root, may talk to it. See docs/api.md for every operation.
 */
#ifndef TERN_API_H
#define TERN_API_H

#include <stddef.h>

#include <stdint.h>

#include <jansson.h>

#include <tern/reason.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_API_VERSION 1
#define TERN_API_MAX_FRAME (16u * 1024 * 1024)
/* What the daemons allow each client (docs/api.md, "Limits"): a request must
 * be complete within TERN_API_REQUEST_MS of connecting, and its reply read
 * within TERN_API_REPLY_MS of being ready, or the connection is closed; at
 * most TERN_API_MAX_CONNS connections are open at once. */
#define TERN_API_REQUEST_MS 10000
#define TERN_API_REPLY_MS 10000
#define TERN_API_MAX_CONNS 1024

/* Most file descriptors one request may carry (docs/api.md, "Files by
 * descriptor"). */
#define TERN_API_MAX_FDS 32

/* Writes one framed JSON object to a blocking fd. */
int tern_api_write(int fd, const json_t *obj);
/* The same, passing nfds descriptors (SCM_RIGHTS) with the request's first
 * bytes; the daemon gets its own copies, the caller still owns fds. */
int tern_api_write_fds(int fd, const json_t *obj, const int *fds, size_t nfds);
/* Writes one binary frame (a serialized tern.v1.ApiRequest, docs/api.md
 * "Binary frames"): the length prefix with its top bit set, then buf. */
int tern_api_write_binary(int fd, const void *buf, size_t len);

/* Reads one framed JSON object; TERN_ETOOBIG over max, TERN_EMALFORMED for
 * bytes that are not a JSON object, TERN_EIO on EOF or error. *out is a new
 * reference. */
int tern_api_read(int fd, size_t max, json_t **out);

/* Client: connects to the socket at path. TERN_ENOENT when nothing listens
 * there (the daemon is down), with a detail that says so. */
int tern_api_connect(const char *path, int *fd);
/* One request and its response over a new connection. timeout_ms bounds the
 * wait for the response (0 = 30 s). *resp is a new reference. */
int tern_api_call(const char *path, const json_t *req, int timeout_ms, json_t **resp);

/* tern_api_call, passing nfds descriptors with the request (as
 * tern_api_write_fds). */
int tern_api_call_fds(const char *path, const json_t *req, const int *fds, size_t nfds,
                      int timeout_ms, json_t **resp);

/* A client connection kept from call to call (the API takes many requests
 * per connection): saves the daemon an accept, a credential check and a close
 * per request. Start from TERN_API_CLIENT_INIT. Not thread-safe: one per
 * thread. */
typedef struct tern_api_client {
	int fd;          /* -1: not connected */
	int64_t last_ms; /* when the last answer came */
} tern_api_client;
#define TERN_API_CLIENT_INIT                                                                       \
	{                                                                                          \
		-1, 0                                                                              \
	}

/* tern_api_call over c's connection, connecting when there is none, when the
 * daemon has closed it, or when it has been idle for over 5 s (the daemon
 * closes idle connections after 10 s: a request never races that close, so
 * it is never sent twice). After a failure the connection is closed. */
int tern_api_client_call(tern_api_client *c, const char *path, const json_t *req, int timeout_ms,
                         json_t **resp);
/* The same with a binary frame (a serialized tern.v1.ApiRequest, as for
 * tern_api_write_binary); the answer is JSON. */
int tern_api_client_call_binary(tern_api_client *c, const char *path, const void *buf, size_t len,
                                int timeout_ms, json_t **resp);
/* Closes c's connection, if any. */
void tern_api_client_close(tern_api_client *c);

/* Server: a listening socket at path (an old socket file is replaced), mode 0600. */
int tern_api_listen(const char *path, int *fd);
/* 0 if the peer on a connected fd runs as this process's user or as root,
 * else TERN_EPERM. */
int tern_api_check_peer(int fd);

/* Builds {"ok": false, "error": tern_errcode_name(code), "message": ...}. */
json_t *tern_api_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a refusal with a reason of tern/reason.h: "error" is the
 * reason's code. Never NULL unless out of memory. */
json_t *tern_api_refusal(tern_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif

/* The node's local API server (docs/api.md): the Unix socket, its clients,
 * and the clients parked until a commit or a message answers them.
 *
 * It never blocks the node's loop: connections are served by a tern_apisrv
 * (libtern/src/apisrv.h: non-blocking reads and writes, deadlines, a cap on
 * connections) whose sockets the loop polls with its own. It routes each
 * request ("v", "op") to the node's operations, given as api_handlers, and
 * keeps what a parked client waits for:
 *   - "send" and "inbox.ack" until the commit that stores them (the node
 *     answers with api_server_reply; a send with "wait_ms" then waits on for
 *     its message's final state: api_server_await_final);
 *   - "inbox.next" with "wait_ms" until a message arrives or the wait ends.
 * At most API_SERVER_MAX_PARKED clients wait at once; one more is told
 * "too many API clients waiting; try again".
 *
 * Single-threaded: every call from the node's loop.
 */
#ifndef TERN_NODE_API_SERVER_H
#define TERN_NODE_API_SERVER_H

#include <stdint.h>

#include <jansson.h>
#include <zmq.h>

#include <tern/api.h>

#include "store.h"
#include "tern/v1/api.pb-c.h"

#define API_SERVER_MAX_PARKED 256
/* Room api_server_pollitems may use in a poll set. */
#define API_SERVER_POLL_MAX (TERN_API_MAX_CONNS + 1)

typedef struct api_server api_server;

/* The node's operations. Each gets the request (borrowed) and returns the
 * answer as a new reference. `client` names the parked slot the request holds
 * while its handler runs: a handler that returns NULL keeps the client parked
 * there, to be answered with api_server_reply(client). */
typedef struct api_handlers {
	void *arg; /* the node */
	/* "send": NULL when the message waits in the batch for the commit */
	json_t *(*send)(void *arg, json_t *req, int client);
	/* "send" in a binary frame (docs/api.md "Binary frames"): the same */
	json_t *(*send_bin)(void *arg, const Tern__V1__ApiSend *req, int client);
	/* "inbox.ack": NULL when the acknowledgement waits for the commit */
	json_t *(*ack)(void *arg, json_t *req, int client);
	/* "status", "inbox.list", "inbox.show", "node.info"; never NULL */
	json_t *(*read)(void *arg, const char *op, json_t *req);
	/* The oldest unacknowledged message, as "inbox.next" gives it; NULL with
	 * *rc TERN_OK when there is none, with *rc the reason when the node could
	 * not look (no memory): not "none" */
	json_t *(*inbox_next)(void *arg, int *rc);
	/* "upload.create", "upload.append", "upload.info", "upload.delete",
	 * "attachment.get": answered at once; never NULL */
	json_t *(*attach)(void *arg, const char *op, json_t *req);
	/* "upload.append" in a binary frame: the same */
	json_t *(*upload_bin)(void *arg, const Tern__V1__ApiUploadAppend *req);
	/* "audit.reanchor": answered at once; never NULL */
	json_t *(*reanchor)(void *arg);
} api_handlers;

/* Listens on path (mode 0600; an old socket file is replaced). handlers is
 * copied; store (the node's, for final-state waiters) must outlive the
 * server. */
int api_server_open(const char *path, const api_handlers *handlers, tern_store *store,
                    api_server **out);

/* Closes every connection (parked clients get no answer), removes the socket
 * file; sets *s to NULL. NULL-safe. */
void api_server_close(api_server **s);

/* The loop's part: fill its poll set (room for API_SERVER_POLL_MAX), then,
 * after zmq_poll, serve it (polled: zmq_poll returned > 0). */
size_t api_server_pollitems(api_server *s, zmq_pollitem_t *items, size_t cap);
void api_server_serve(api_server *s, const zmq_pollitem_t *items, size_t n, int polled,
                      int64_t now);

/* From a handler: moves the first n file descriptors the client parked at
 * `client` passed with its requests into fds (the caller owns them).
 * TERN_EINVAL, nothing taken, when fewer than n came. */
int api_server_take_fds(api_server *s, int client, int *fds, size_t n);

/* Answers the client parked at `client` and frees its slot; takes reply. */
void api_server_reply(api_server *s, int client, json_t *reply);

/* The send parked at `client` is committed: it waits on for msgid to reach a
 * final state (delivered, rejected, expired) or for deadline, then gets the
 * state. */
void api_server_await_final(api_server *s, int client, const char *msgid, int64_t deadline);

/* A commit changed msgid's state (a receipt, a notice, a refusal): its
 * final-state waiters look again at the next api_server_serve_waiters.
 * NULL-safe: unit tests commit batches without an API server. */
void api_server_state_changed(api_server *s, const char *msgid);

/* After each commit: answers inbox.next waiters when a message is there or
 * their wait is over, and final-state waiters whose message changed or whose
 * wait is over. */
void api_server_serve_waiters(api_server *s, int64_t now);

#endif

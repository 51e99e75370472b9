/* A local-API server inside a daemon's event loop (docs/api.md, "Limits").
 *
 * The node's API socket and the broker's control socket are served by the
 * daemon's one loop, which also carries its broker or node traffic: a client
 * must never be able to hold it. This server keeps a table of connections,
 * each a tern_apiconn (non-blocking framing), whose sockets the daemon polls
 * in its own zmq_poll set (zmq_poll takes plain file descriptors):
 *
 *   - a connection from another user than the daemon's (SO_PEERCRED; root is
 *     allowed) is answered "key-permissions" and closed;
 *   - at most max_conns are open; one more is accepted, answered with a short
 *     error and closed at once, so that one client cannot use up the fds;
 *   - a request is read as its bytes arrive; one whose 4-byte length is over
 *     max_frame, or that is not a JSON object, is answered with the error and
 *     closed; one not complete within request_ms of the accept (or of the
 *     previous answer) is closed with a best-effort error; a connection idle
 *     that long between requests is closed quietly;
 *   - a complete request goes to the daemon's handler, which answers at once
 *     or parks the client to answer later (tern_apisrv_reply);
 *   - a reply is written as the socket takes it; a client that has not taken
 *     all of it within reply_ms is closed;
 *   - bytes of incomplete requests held in all connections together stay under
 *     max_buffered: past it, no connection is read until some are done.
 * Many requests per connection, one at a time: the next is read (from what
 * the client sent ahead, or from the socket) once this one is answered, so
 * answers go out in the order of the requests. A reply to an error that may
 * have put the stream out of step closes the connection.
 * Drops and refusals are logged at most once per 10 s, as counts (never a
 * request's content).
 *
 * Single-threaded: every call from the daemon's loop thread.
 */
#ifndef TERN_APISRV_H
#define TERN_APISRV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <zmq.h>

typedef struct tern_apisrv tern_apisrv;

/* Slots in the poll set this server ever needs: the listening socket and one
 * per connection. */
#define TERN_APISRV_POLL_MAX(max_conns) ((max_conns) + 1)

typedef struct tern_apisrv_opts {
	const char *name;    /* in log lines: "API", "control" */
	size_t max_frame;    /* largest request (body bytes) */
	size_t max_conns;    /* open at once (TERN_API_MAX_CONNS for both daemons) */
	size_t max_buffered; /* bytes of incomplete requests in all (0: no limit) */
	int64_t request_ms;  /* from the accept to a complete request */
	int64_t reply_ms;    /* from a reply queued to its last byte taken */
	/* Binary frames (docs/api.md): their bytes (borrowed for the call) go
	 * here, with the same answer rules as fn. NULL: refused as malformed. */
	json_t *(*fn_bin)(void *arg, int conn, const uint8_t *buf, size_t len, uid_t uid);
	/* Descriptors a client may pass with its requests (SCM_RIGHTS): at most
	 * max_fds held per connection until a request takes them
	 * (tern_apisrv_take_fds), at most max_fds_total in all connections;
	 * past either, the connection is answered with the error and closed.
	 * 0: none taken (every one that comes is closed, and so is the
	 * connection). */
	size_t max_fds, max_fds_total;
	/* A parked client hung up (checked about once a second). Return 1 when
	 * the daemon lets go of it (conn is then closed and must not be answered),
	 * 0 to answer it all the same (the answer is then dropped). NULL: parked
	 * clients are kept until answered. */
	int (*gone)(void *arg, int conn);
} tern_apisrv_opts;

/* A complete request on connection conn, from a peer running as uid. Returns
 * the reply (a new reference; the server sends it, then reads the next request), or NULL to
 * park the client: it is then neither read nor timed out until the daemon
 * calls tern_apisrv_reply(conn). req is borrowed for the call. */
typedef json_t *(*tern_apisrv_fn)(void *arg, int conn, json_t *req, uid_t uid);

/* Serves the listening socket listen_fd (non-blocking; the server owns it from
 * then on, even on failure, and closes it). opts is copied; name must outlive
 * the server. The clients get at most half of the process's file descriptors,
 * so that they cannot starve the rest of the daemon: when the soft
 * RLIMIT_NOFILE is under twice max_conns, it is raised (up to the hard limit,
 * for the whole process); if that is not enough, fewer connections are served,
 * with a warning in the log. */
int tern_apisrv_new(int listen_fd, const tern_apisrv_opts *opts, tern_apisrv_fn fn, void *arg,
                    tern_apisrv **out);

/* Closes every connection (parked ones get no answer) and the listening
 * socket; sets *s to NULL. NULL-safe. */
void tern_apisrv_free(tern_apisrv **s);

/* Fills items (room for cap, at least TERN_APISRV_POLL_MAX(max_conns)) with
 * what to poll for now; returns how many. Pass the same items, after
 * zmq_poll, to tern_apisrv_serve before the next call. */
size_t tern_apisrv_pollitems(tern_apisrv *s, zmq_pollitem_t *items, size_t cap);

/* Accepts, reads, dispatches, writes and enforces the deadlines; never
 * blocks. Call it every round of the loop, also when nothing was ready
 * (polled = 0: items' revents are then ignored), so that deadlines pass. */
void tern_apisrv_serve(tern_apisrv *s, const zmq_pollitem_t *items, size_t n, int polled,
                       int64_t now);

/* Answers a parked client; takes reply (a new reference, NULL-safe). The
 * write starts at once; what the socket does not take goes on in later
 * rounds. TERN_EINVAL when conn is not parked (reply freed all the same). */
int tern_apisrv_reply(tern_apisrv *s, int conn, json_t *reply);

/* From the handler of a request on conn: moves the first n descriptors the
 * client passed into fds (the caller owns them then). TERN_EINVAL, nothing
 * taken, when fewer than n came. */
int tern_apisrv_take_fds(tern_apisrv *s, int conn, int *fds, size_t n);

/* Open connections, parked ones included. */
size_t tern_apisrv_count(const tern_apisrv *s);

/* How many it serves at once: opts' max_conns, or fewer when the process may
 * not open twice as many file descriptors (see tern_apisrv_new). */
size_t tern_apisrv_max_conns(const tern_apisrv *s);

#endif

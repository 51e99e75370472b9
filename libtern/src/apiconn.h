/* One local-API connection, served without blocking (docs/api.md, "Limits").
 *
 * The daemons' local sockets (the node's API, the broker's control socket)
 * carry length-prefixed JSON: a 4-byte big-endian length, then that many bytes
 * of one JSON object. A daemon serves them from its single event loop, so it
 * must never wait for a client: a tern_apiconn reads whatever bytes the
 * socket has into its own buffer and says whether a whole request is there
 * yet, and keeps the bytes of a reply the socket would not take until the
 * socket can take more. Every socket call is made with MSG_DONTWAIT.
 *
 * Memory follows what the peer actually sent, never what its length prefix
 * declares: a client that declares 16 MiB and sends 2 bytes costs a few KiB.
 *
 * Not thread-safe: one thread uses a connection at a time. Internal to the
 * daemons (not installed).
 */
#ifndef TERN_APICONN_H
#define TERN_APICONN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct tern_apiconn tern_apiconn;

/* Wraps a connected stream socket; the connection owns fd from then on (even
 * on failure, when fd is closed) and closes it in tern_apiconn_free.
 * max_frame: the largest request body accepted (a larger declared length is
 * refused as soon as its 4 bytes arrive). */
int tern_apiconn_new(int fd, size_t max_frame, tern_apiconn **out);

/* Closes the socket and frees the buffers; sets *c to NULL. NULL-safe. */
void tern_apiconn_free(tern_apiconn **c);

int tern_apiconn_fd(const tern_apiconn *c);

/* Reads what the socket has, without blocking, until a request is complete.
 *   TERN_OK, *req set (a new reference): a complete JSON object. Bytes after
 *     it stay buffered: the next call returns the next request from them.
 *   TERN_OK, *req NULL: more bytes are needed; poll for input and call again.
 *   TERN_ETOOBIG: the declared length is over max_frame.
 *   TERN_EMALFORMED: the frame is not a JSON object (the frame is consumed).
 *   TERN_EIO: the peer closed (before or in the middle of a request), or the
 *     socket failed; tern_errdetail() says which.
 * A call reads at most about 1 MiB, so that one busy client cannot hold the
 * loop: a longer request completes over several calls. After an error the
 * connection is good only for an answer (tern_apiconn_queue_reply) and closing. */
int tern_apiconn_read(tern_apiconn *c, json_t **req);

/* tern_apiconn_read, also taking binary frames (a length prefix with its top
 * bit set: docs/api.md, "Binary frames"): for one, *bin is set to a copy of
 * its bytes (free() it) and *binlen to their number, and *req stays NULL.
 * tern_apiconn_read refuses a binary frame as TERN_EMALFORMED (consumed). */
int tern_apiconn_read_any(tern_apiconn *c, json_t **req, uint8_t **bin, size_t *binlen);

/* Descriptors passed with requests (SCM_RIGHTS, docs/api.md "Files by
 * descriptor"): at most max (capped at 32) are held, each for the request
 * it came with; one more makes the next read fail (TERN_EMALFORMED, the
 * extra ones closed). 0, the default: the kernel drops every descriptor
 * that comes and the read fails. Descriptors this module closes are closed
 * off the caller's thread (fdclose.h): a close may wait for a file
 * system's server. */
void tern_apiconn_set_max_fds(tern_apiconn *c, size_t max);
size_t tern_apiconn_fds_held(const tern_apiconn *c);
/* Moves the descriptors that came with the request last returned into fds
 * (the caller owns them then): exactly n, or TERN_EINVAL and nothing
 * taken. */
int tern_apiconn_take_fds(tern_apiconn *c, int *fds, size_t n);
/* Closes the descriptors that came with the request last returned (or
 * before it) and were not taken, or (all) every one held; returns how
 * many. Call it once the request is handled: a descriptor never outlives
 * its request. A connection that takes descriptors never reads past the
 * request in hand, so none is held for a later one. */
size_t tern_apiconn_release_fds(tern_apiconn *c, int all);

/* Bytes read and held for requests not yet returned. */
size_t tern_apiconn_buffered(const tern_apiconn *c);

/* Encodes obj as one frame after any reply still unsent. Nothing is written
 * here: call tern_apiconn_flush. TERN_EINVAL when obj cannot be encoded,
 * TERN_ETOOBIG when it is over TERN_API_MAX_FRAME (then nothing is queued). */
int tern_apiconn_queue_reply(tern_apiconn *c, const json_t *obj);

/* Writes what the socket takes now. *left (optional): bytes still unsent;
 * when not 0, poll for output and call again. TERN_EIO when the peer is gone. */
int tern_apiconn_flush(tern_apiconn *c, size_t *left);

/* Bytes of queued replies not yet written. */
size_t tern_apiconn_unsent(const tern_apiconn *c);

#endif

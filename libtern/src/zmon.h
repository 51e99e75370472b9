/* Reading a listening ZeroMQ socket's monitor (zmq_socket_monitor) with the
 * peer's address attached to the events that concern one connection.
 *
 * libzmq 4.3.4 names only the listening endpoint in a monitor event (its
 * version-2 events, with the remote address, are draft API, not in Debian's
 * build). What it does give: ZMQ_EVENT_ACCEPTED carries the new connection's
 * descriptor, and ZMQ_EVENT_DISCONNECTED the same descriptor when the
 * connection ends -- emitted before the descriptor is closed. So the address
 * is read with getpeername() when ACCEPTED is read, and kept only if the
 * monitor then holds no DISCONNECTED for that descriptor: had the descriptor
 * been closed (and perhaps reused by another connection) before the read,
 * its DISCONNECTED would already be waiting. Otherwise the peer is unknown,
 * and said to be.
 *
 * A handshake failure that is not an authentication failure
 * (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, _NO_DETAIL) is emitted by libzmq's
 * I/O thread in the same call that then emits the connection's DISCONNECTED,
 * so with one I/O thread (the default) the next event names its descriptor;
 * such a failure is passed on with that connection's peer. An authentication
 * failure (_AUTH) is passed on without one: its connection ends later, and
 * the ZAP request that led to it carries the address. */
#ifndef TERN_ZMON_H
#define TERN_ZMON_H

#include <stdint.h>

typedef struct tern_zmon tern_zmon;

typedef struct tern_zmon_event {
	uint16_t event; /* ZMQ_EVENT_* */
	uint32_t value; /* the event's value: descriptor, errno, protocol error, ZAP status */
	char peer[72];  /* "192.0.2.7:51234", "[2001:db8::1]:51234", "local pid 7 uid 0"; "" unknown
	                 */
} tern_zmon_event;

typedef void tern_zmon_cb(void *arg, const tern_zmon_event *e);

/* Starts monitoring sock (events: ZMQ_EVENT_* bits) through libzmq's PAIR at
 * endpoint ("inproc://..."), and returns in *reader the PAIR socket to poll
 * and read (the caller's, closed with tern_zmon_detach).
 *
 * Why not zmq_socket_monitor alone: libzmq's I/O thread sends each event
 * with a blocking send while it holds the socket's monitor lock. Were the
 * reader's queue full, or the reader closed, that send would wait forever
 * and so would the daemon's thread at its next zmq_socket_monitor or
 * zmq_close of the socket: a stop that never ends. The reader here takes
 * events without limit (ZMQ_RCVHWM 0), so the I/O thread never waits on it;
 * the daemon reads it every loop turn, so it does not grow. */
int tern_zmon_attach(void *ctx, void *sock, const char *endpoint, int events, void **reader);

/* Stops sock's monitor first, while *reader still lives to take the last
 * events, then closes *reader and sets it to NULL. NULL-safe; never blocks
 * on libzmq's I/O thread when the reader came from tern_zmon_attach. */
void tern_zmon_detach(void *sock, void **reader);

/* monitor: the PAIR socket connected to the monitor endpoint. */
int tern_zmon_new(void *monitor, tern_zmon **out);
/* Reads every event waiting and calls cb for each, in order. A failure whose
 * DISCONNECTED has not arrived yet is held for the next call. */
void tern_zmon_drain(tern_zmon *m, tern_zmon_cb *cb, void *arg);
void tern_zmon_free(tern_zmon **m);

#endif

/* Hop frames over ZeroMQ: one serialized tern.v1.Frame per message, shared by
 * tern-broker and tern-node. See docs/protocol.md. */
#ifndef TERN_HOP_H
#define TERN_HOP_H

#include <stddef.h>
#include <stdint.h>

#include <tern/v1/wire.pb-c.h>

#define TERN_HOP_VERSION 1
#define TERN_HOP_ZAP_DOMAIN "tern"
/* Not in Debian's libzmq 4.3.4 header without the draft API; the option works. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

/* Sends frame f on sock, preceded by a routing-id frame when rid != NULL
 * (ROUTER side). flags: ZMQ_DONTWAIT or 0. 0, TERN_ENOMEM (nothing sent),
 * TERN_EIO (errno kept: EAGAIN or EHOSTUNREACH when the peer cannot take it
 * now). Never half a message: both frames go, or neither. */
int tern_hop_send(void *sock, const void *rid, size_t rid_len, Tern__V1__Frame *f, int flags);

/* Decodes one frame's bytes (bounded); TERN_EMALFORMED or TERN_EVERSION.
 * Free with tern_pb_free((ProtobufCMessage **)&f). */
int tern_hop_decode(const void *buf, size_t len, size_t max, Tern__V1__Frame **out);

/* The largest frame a daemon takes: an envelope of max_msg bytes, or an
 * attachment chunk of the largest size (tern/attach.h) with its proof,
 * whichever is larger, and room for the frame around it. */
int64_t tern_hop_frame_max(int64_t max_msg);

/* Sets the common socket options: linger 0, heartbeats, max message size. */
int tern_hop_sockopts(void *sock, int heartbeat_ivl_s, int heartbeat_timeout_s, int64_t maxmsg);

#endif

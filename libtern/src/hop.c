#include <errno.h>
#include <stdlib.h>

#include <zmq.h>

#include <tern/attach.h>
#include <tern/error.h>

#include "hop.h"
#include "pbuf.h"
#include "util.h"

int tern_hop_send(void *sock, const void *rid, size_t rid_len, Tern__V1__Frame *f, int flags)
{
	zmq_msg_t m;
	size_t n;
	int err;

	f->version = TERN_HOP_VERSION; /* before sizing: it changes the size */
	n = protobuf_c_message_get_packed_size(&f->base);
	/* The body is made, packed in place, before anything is sent. Made
	 * after the routing id had gone (SNDMORE), a body the allocation failed
	 * for left the ROUTER in the middle of a message: the next frame to
	 * the same peer went out as its parts, [routing id][frame], which the
	 * node read as a malformed frame. */
	if (zmq_msg_init_size(&m, n) != 0)
		return tern_fail(TERN_ENOMEM, "out of memory for a hop frame of %zu bytes", n);
	protobuf_c_message_pack(&f->base, zmq_msg_data(&m));
	if (rid != NULL && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | flags) < 0)
		goto fail;
	/* Past the routing id, a ROUTER takes the part or drops the whole
	 * message; it never leaves one half sent. */
	if (zmq_msg_send(&m, sock, flags) < 0)
		goto fail;
	return TERN_OK;
fail:
	err = errno;
	zmq_msg_close(&m);
	errno = err; /* the caller tells a full pipe from a route gone */
	return TERN_EIO;
}

int tern_hop_decode(const void *buf, size_t len, size_t max, Tern__V1__Frame **out)
{
	ProtobufCMessage *m = NULL;
	Tern__V1__Frame *f;
	int rc;

	if ((rc = tern_pb_unpack(&tern__v1__frame__descriptor, buf, len, max, &m)) != TERN_OK)
		return rc;
	f = (Tern__V1__Frame *)m;
	if (f->version != TERN_HOP_VERSION) {
		uint32_t v = f->version; /* the frame is freed before the message is made */
		tern_pb_free(&m);
		return tern_fail(TERN_EVERSION, "hop frame version %u (this build speaks %d)", v,
		                 TERN_HOP_VERSION);
	}
	if (f->body_case == TERN__V1__FRAME__BODY__NOT_SET) {
		tern_pb_free(&m);
		return tern_fail(TERN_EMALFORMED, "empty hop frame");
	}
	*out = f;
	return TERN_OK;
}

int tern_hop_sockopts(void *sock, int heartbeat_ivl_s, int heartbeat_timeout_s, int64_t maxmsg)
{
	int zero = 0, ivl = heartbeat_ivl_s * 1000, to = heartbeat_timeout_s * 1000;

	if (zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &to, sizeof(to)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &to, sizeof(to)) != 0 ||
	    (maxmsg > 0 && zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0))
		return tern_fail(TERN_EIO, "zmq_setsockopt: %s", zmq_strerror(errno));
	return TERN_OK;
}

int64_t tern_hop_frame_max(int64_t max_msg)
{
	/* a full-depth proof: 64 hashes, each with its tag and length */
	int64_t chunk = TERN_ATTACH_CHUNK_MAX + TERN_ATTACH_TAG_LEN + 64 * 34 + 256;

	return (max_msg > chunk ? max_msg : chunk) + 4096;
}

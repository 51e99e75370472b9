/* A local-API client's bytes (apiconn.h): the non-blocking framing, with the
 * input cut into chunks of the size its first byte gives, each read as it
 * arrives, then the peer's hang-up. Every request taken is answered (the
 * write path), whatever it holds; a binary frame is decoded as the node
 * decodes one (a tern.v1.ApiRequest, bounded). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/error.h>

#include "apiconn.h"
#include "pbuf.h"
#include "tern/v1/api.pb-c.h"
#include "fuzz.h"

/* Takes what has arrived; 0 while the connection is usable. */
static int drain(tern_apiconn *c)
{
	for (;;) {
		json_t *req = NULL;
		uint8_t *bin = NULL;
		size_t binlen = 0;
		int rc = tern_apiconn_read_any(c, &req, &bin, &binlen);
		if (rc != TERN_OK)
			return -1;
		if (bin != NULL) {
			ProtobufCMessage *m = NULL;
			tern_pb_unpack(&tern__v1__api_request__descriptor, bin, binlen, binlen, &m);
			tern_pb_free(&m);
			free(bin);
			req = json_object();
		}
		if (req == NULL)
			return 0;
		tern_apiconn_queue_reply(c, req);
		tern_apiconn_flush(c, NULL);
		json_decref(req);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tern_apiconn *c = NULL;
	size_t chunk, off = 1;
	int sv[2];

	/* The socket pair holds about 200 KB: more would block the writer. */
	if (size < 1 || size > 64 * 1024 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	chunk = (size_t)data[0] + 1;
	if (tern_apiconn_new(sv[0], 32768, &c) != TERN_OK) {
		close(sv[1]);
		return 0;
	}
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (write(sv[1], data + off, n) != (ssize_t)n || drain(c) != 0)
			break;
		off += n;
	}
	close(sv[1]);
	drain(c);
	tern_apiconn_free(&c);
	return 0;
}

/* tern-apibin SOCKET MODE [TO [TYPE]]: one binary local-API request (docs/api.md,
 * "Binary frames"), its JSON answer printed on stdout. The body is the JSON of
 * the type's message on stdin (as `tern example` prints it), encoded here.
 * MODE says what is sent:
 *   send      the request as a client should make it (waits up to 30 s for the
 *             final state)
 *   unknown   the body with a field its type does not have (field 99)
 *   v2        API version 2
 *   garbage   bytes that are no ApiRequest
 *   twice     two sends on one connection, the second after the first answer
 *   nobody    no body field at all
 *   nulto     a recipient "sweden\0evil" (a string cut at a NUL)
 *   badref    a client_ref that is not UTF-8
 * Exit 0 when an answer came, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/msgtype.h>

#include "pbuf.h"
#include "tern/v1/api.pb-c.h"

static int answer(int fd)
{
	json_t *r = NULL;
	char *text;

	if (tern_api_read(fd, TERN_API_MAX_FRAME, &r) != TERN_OK) {
		fprintf(stderr, "tern-apibin: no answer: %s\n", tern_errdetail());
		return 1;
	}
	text = json_dumps(r, JSON_COMPACT);
	puts(text ? text : "?");
	free(text);
	json_decref(r);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	const tern_msgtype *t = tern_msgtype_by_name(argc > 4 ? argv[4] : "case-referral");
	Tern__V1__ApiRequest ar = TERN__V1__API_REQUEST__INIT;
	Tern__V1__ApiSend as = TERN__V1__API_SEND__INIT;
	ProtobufCMessage *m = NULL;
	json_t *body;
	uint8_t *bb = NULL, *req = NULL;
	size_t blen = 0, rlen = 0;
	char *to[1];
	int fd, rc = 1;

	if (argc < 3 || t == NULL) {
		fprintf(stderr, "usage: tern-apibin SOCKET "
		                "send|unknown|v2|garbage|twice|nobody|nulto|badref [TO [TYPE]]\n");
		return 2;
	}
	if (tern_api_connect(argv[1], &fd) != TERN_OK) {
		fprintf(stderr, "tern-apibin: %s\n", tern_errdetail());
		return 1;
	}
	if (strcmp(mode, "garbage") == 0) {
		static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
		if (tern_api_write_binary(fd, junk, sizeof(junk)) == TERN_OK)
			rc = answer(fd);
		close(fd);
		return rc;
	}
	body = json_loadf(stdin, 0, NULL);
	if (body == NULL || tern_json_decode(t->desc, body, &m, NULL, 0) != TERN_OK ||
	    tern_pb_pack(m, &bb, &blen) != TERN_OK) {
		fprintf(stderr, "tern-apibin: the body on stdin is not a %s\n", t->name);
		return 2;
	}
	if (strcmp(mode, "unknown") == 0) {
		/* Field 99, varint 1: a field no message type has. */
		uint8_t *nb = realloc(bb, blen + 3);
		if (nb == NULL)
			return 1;
		bb = nb;
		bb[blen++] = 0x98;
		bb[blen++] = 0x06;
		bb[blen++] = 0x01;
	}
	to[0] = argc > 3 ? argv[3] : "sweden";
	as.n_to = 1;
	as.to = to;
	as.type = t->type;
	as.body.data = bb;
	as.body.len = blen;
	as.wait_ms = 30000;
	if (strcmp(mode, "nobody") == 0)
		as.body.len = 0;
	if (strcmp(mode, "badref") == 0)
		as.client_ref = "ref-\xff\xfe";
	ar.v = strcmp(mode, "v2") == 0 ? 2 : TERN_API_VERSION;
	ar.op_case = TERN__V1__API_REQUEST__OP_SEND;
	ar.send = &as;
	if (tern_pb_pack(&ar.base, &req, &rlen) != TERN_OK)
		return 1;
	if (strcmp(mode, "nulto") == 0) {
		/* protobuf-c packs C strings: the ApiSend is packed, "\0evil" spliced
		 * after its first recipient (field 1, a one-byte length), and the
		 * ApiRequest written by hand around it: v = 1, then field 2. */
		static const uint8_t tail[] = {0x00, 'e', 'v', 'i', 'l'};
		size_t tl = strlen(to[0]), alen = tern__v1__api_send__get_packed_size(&as), at,
		       k = 0;
		uint8_t *ab = malloc(alen + sizeof(tail)), *nr;
		if (ab == NULL || tern__v1__api_send__pack(&as, ab) != alen || ab[0] != 0x0a ||
		    ab[1] != tl || (nr = malloc(alen + sizeof(tail) + 16)) == NULL)
			return 1;
		at = 2 + tl;
		memmove(ab + at + sizeof(tail), ab + at, alen - at);
		memcpy(ab + at, tail, sizeof(tail));
		ab[1] = (uint8_t)(tl + sizeof(tail));
		alen += sizeof(tail);
		nr[k++] = 0x08;
		nr[k++] = TERN_API_VERSION;
		nr[k++] = 0x12;
		for (size_t v = alen;; v >>= 7) {
			nr[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		memcpy(nr + k, ab, alen);
		free(ab);
		free(req);
		req = nr;
		rlen = k + alen;
	}
	for (int i = 0; i < (strcmp(mode, "twice") == 0 ? 2 : 1); i++)
		if (tern_api_write_binary(fd, req, rlen) != TERN_OK || (rc = answer(fd)) != 0)
			break;
	close(fd);
	free(req);
	free(bb);
	tern_json_message_free(&m);
	json_decref(body);
	return rc;
}

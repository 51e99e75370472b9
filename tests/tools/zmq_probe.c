/* zmq-probe ENDPOINT BROKER_CURVE_KEY_FILE [CLIENT_CURVE_KEY_FILE]: connects to a
 * broker over CURVE (with a fresh random key unless a key file is given), sends
 * a Hello for node "unhcr", and waits 2 s. Exit 0 if the broker answered, 1 if
 * it did not (the handshake was refused), 2 on usage errors. */
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include <tern/curve.h>
#include <tern/error.h>

#include "hop.h"

int main(int argc, char **argv)
{
	tern_curvekey *broker = NULL, *me = NULL;
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Hello h = TERN__V1__HELLO__INIT;
	void *ctx, *s;
	zmq_pollitem_t it;
	int rc, zero = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: zmq-probe ENDPOINT BROKER_CURVE_KEY [CLIENT_CURVE_KEY]\n");
		return 2;
	}
	/* The broker's key file holds its secret too; the probe uses only the public half. */
	if (tern_curvekey_load(argv[2], &broker) != TERN_OK ||
	    (argc > 3 ? tern_curvekey_load(argv[3], &me) : tern_curvekey_generate(&me)) !=
	        TERN_OK) {
		fprintf(stderr, "zmq-probe: %s\n", tern_errdetail());
		return 2;
	}
	ctx = zmq_ctx_new();
	s = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, tern_curvekey_public(broker), 32);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, tern_curvekey_public(me), 32);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(me), 32);
	zmq_connect(s, argv[1]);
	h.node_id = "unhcr";
	h.credit = 1;
	h.session = 1;
	f.body_case = TERN__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	tern_hop_send(s, NULL, 0, &f, 0);
	it = (zmq_pollitem_t){s, 0, ZMQ_POLLIN, 0};
	rc = zmq_poll(&it, 1, 2000);
	printf("%s\n", rc > 0 ? "answered" : "no answer");
	zmq_close(s);
	zmq_ctx_term(ctx);
	tern_curvekey_free(&broker);
	tern_curvekey_free(&me);
	return rc > 0 ? 0 : 1;
}

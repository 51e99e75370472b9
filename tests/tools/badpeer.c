/* tern-badpeer BROKERCONF NODE_DIR CASE: connects to the broker as the node in
 * NODE_DIR (its CURVE key, so the broker knows who it is), says Hello, and
 * sends one bad thing; prints the broker's answer as "CODE: TEXT", or "no
 * answer" (the connection was dropped). Exit 0 when an answer came.
 *   garbage    bytes that are not a frame
 *   frames     a message of three frames
 *   oversized  one frame over the largest the broker takes (an envelope's or a chunk's)
 *   truncated  a Submit whose envelope is cut in half
 *   badsig     a Submit whose signature has one bit flipped
 *   garbled    a Submit whose header has one bit flipped
 *   future     a Submit created a day from now
 *   replay     the same valid Submit twice (prints both answers)
 *   badbody    a valid envelope whose sealed body is not a valid referral
 *   unknown    a validly signed envelope for a recipient not in the directory
 *   skip       a valid Submit numbered 2 of its session (1 never sent), then 1,
 *              then Hello again and 1 (prints the three answers)
 *   stale      a valid Submit of an older session, then as 1 of the current
 *              (prints both answers)
 *   late T     an envelope sealed now, submitted at T (seconds since the epoch;
 *              the connection is kept alive until then): for a certificate
 *              that lapses in between
 *   envelope F a valid envelope from this node to sweden, written to file F
 *              (its message id printed); nothing is sent (another member can
 *              then submit it)
 *   submit F   the envelope in file F, submitted as this node
 *   reuse F    the message id of the envelope in file F, in an envelope this
 *              node signs (as a travel confirmation, which iom may send)
 *   reanchor ARCHIVE WITNESS
 *              asks WITNESS to re-anchor this node's log at the newest
 *              checkpoint of ARCHIVE (an export of this node's log, rewritten
 *              at will and signed with its key), from the size WITNESS says
 *              it cosigned: what a node whose owner rewrote its history would
 *              send, without `tern audit reanchor` (no request in its log).
 *              Prints the witness's answer as "cosigned SIZE" or its reason
 * Envelopes go from the node to sweden. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <tern/attach.h>
#include <tern/config.h>
#include <tern/curve.h>
#include <tern/directory.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/note.h>
#include <tern/trust.h>
#include <tern/v1/audit.pb-c.h>
#include <tern/v1/messages.pb-c.h>

#include "hop.h"
#include "pbuf.h"
#include "util.h"
#include "witness.h"

static void *sock;
static uint64_t session = 0x5e55;
static uint64_t next_index = 1;

/* Waits for a SubmitResult or Refused; prints it. */
static int answer(void)
{
	zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
	int64_t until = tern_now_ms() + 3000;

	while (tern_now_ms() < until) {
		zmq_msg_t m;
		Tern__V1__Frame *f = NULL;
		if (zmq_poll(&it, 1, 200) <= 0)
			continue;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, 0) < 0 ||
		    tern_hop_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1u << 24, &f) != TERN_OK) {
			zmq_msg_close(&m);
			continue;
		}
		zmq_msg_close(&m);
		if (f->body_case == TERN__V1__FRAME__BODY_REFUSED) {
			printf("%s: %s\n", f->refused->reason_code, f->refused->reason_text);
		} else if (f->body_case == TERN__V1__FRAME__BODY_RESULT) {
			printf("%s: %s\n",
			       f->result->accepted ? "accepted" : f->result->reason_code,
			       f->result->reason_text);
		} else {
			tern_pb_free((ProtobufCMessage **)&f);
			continue;
		}
		tern_pb_free((ProtobufCMessage **)&f);
		return 0;
	}
	printf("no answer\n");
	return 1;
}

static void send_raw(const void *p, size_t n, int flags)
{
	zmq_send(sock, p, n, flags);
}

static void submit_as(const uint8_t *env, size_t len, uint64_t in_session, uint64_t index)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Submit s = TERN__V1__SUBMIT__INIT;

	s.envelope.data = (uint8_t *)env;
	s.envelope.len = len;
	s.session = in_session;
	s.index = index;
	f.version = TERN_HOP_VERSION;
	f.body_case = TERN__V1__FRAME__BODY_SUBMIT;
	f.submit = &s;
	tern_hop_send(sock, NULL, 0, &f, 0);
}

static void submit(const uint8_t *env, size_t len)
{
	submit_as(env, len, session, next_index++);
}

/* Says Hello opening a new session; 0 once its Welcome came. */
static int hello(const char *node)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Hello h = TERN__V1__HELLO__INIT;
	zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
	zmq_msg_t w;

	session++;
	next_index = 1;
	h.node_id = (char *)node;
	h.software = "tern-badpeer";
	h.credit = 1;
	h.session = session;
	f.version = TERN_HOP_VERSION;
	f.body_case = TERN__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	tern_hop_send(sock, NULL, 0, &f, 0);
	if (zmq_poll(&it, 1, 3000) <= 0)
		return 1;
	zmq_msg_init(&w);
	zmq_msg_recv(&w, sock, 0);
	zmq_msg_close(&w);
	return 0;
}

/* Asks witness to cosign note from old_size (re-anchoring it); waits for its
 * answer: 0 with *resp (freed by the caller), 1 when none came. */
static int witness_ask(const char *witness, const char *note, uint64_t old_size,
                       const char *reanchor, Tern__V1__Frame **resp)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__WitnessRequest r = TERN__V1__WITNESS_REQUEST__INIT;
	zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
	int64_t until = tern_now_ms() + 5000;

	r.peer = (char *)witness;
	r.checkpoint = (char *)note;
	r.old_size = old_size;
	r.reanchor = (char *)reanchor;
	f.version = TERN_HOP_VERSION;
	f.body_case = TERN__V1__FRAME__BODY_WITNESS_REQUEST;
	f.witness_request = &r;
	tern_hop_send(sock, NULL, 0, &f, 0);
	while (tern_now_ms() < until) {
		zmq_msg_t m;
		Tern__V1__Frame *a = NULL;
		if (zmq_poll(&it, 1, 200) <= 0)
			continue;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, 0) < 0 ||
		    tern_hop_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1u << 24, &a) != TERN_OK) {
			zmq_msg_close(&m);
			continue;
		}
		zmq_msg_close(&m);
		if (a->body_case == TERN__V1__FRAME__BODY_WITNESS_RESPONSE &&
		    strcmp(a->witness_response->peer, witness) == 0) {
			*resp = a;
			return 0;
		}
		tern_pb_free((ProtobufCMessage **)&a);
	}
	return 1;
}

/* The newest checkpoint note of the audit archive in file (malloc'd). */
static char *archive_note(const char *file)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ProtobufCMessage *m = NULL;
	Tern__V1__AuditArchive *a;
	char *note = NULL;

	if (tern_file_read(file, 1u << 30, &buf, &len) != TERN_OK ||
	    tern_pb_unpack(&tern__v1__audit_archive__descriptor, buf, len, len, &m) != TERN_OK) {
		free(buf);
		return NULL;
	}
	a = (Tern__V1__AuditArchive *)m;
	if (a->n_checkpoints > 0)
		note = strdup(a->checkpoints[a->n_checkpoints - 1]);
	tern_pb_free(&m);
	free(buf);
	return note;
}

/* Waits until the time comes (ms since the epoch) without a word: libzmq
 * keeps the connection alive, and the broker's judgement of the late
 * submission must not depend on a frame sent meanwhile. */
static void wait_until(int64_t at)
{
	while (tern_now_ms() < at)
		zmq_poll(NULL, 0, 100);
}

int main(int argc, char **argv)
{
	tern_config *cfg = NULL;
	tern_trust *trust = NULL;
	tern_directory *dir = NULL;
	tern_signkey *key = NULL;
	tern_curvekey *me = NULL;
	const tern_member *broker;
	char path[1024], node[64], *text = NULL, err[256];
	const char *cs, *slash, *to[] = {"sweden"};
	uint8_t *body = NULL, *env = NULL;
	size_t blen = 0, elen = 0;
	ProtobufCMessage *m = NULL;
	void *ctx = NULL;
	int zero = 0, rc = 0;

	if (argc != 4 &&
	    !(argc == 5 && (strcmp(argv[3], "late") == 0 || strcmp(argv[3], "envelope") == 0 ||
	                    strcmp(argv[3], "submit") == 0 || strcmp(argv[3], "reuse") == 0)) &&
	    !(argc == 6 && strcmp(argv[3], "reanchor") == 0)) {
		fprintf(stderr, "usage: tern-badpeer BROKERCONF NODE_DIR CASE | late EPOCH | "
		                "envelope FILE | submit FILE | reuse FILE | "
		                "reanchor ARCHIVE WITNESS\n");
		return 2;
	}
	cs = argv[3];
	slash = strrchr(argv[2], '/');
	snprintf(node, sizeof(node), "%s", slash ? slash + 1 : argv[2]);
	snprintf(path, sizeof(path), "%s/node.key", argv[2]);
	if (tern_config_load(argv[1], TERN_CONFIG_BROKER, &cfg) != TERN_OK ||
	    tern_trust_load(tern_config_get(cfg, "federation", "ca"),
	                    tern_config_get(cfg, "federation", "crl"), &trust) != TERN_OK ||
	    tern_directory_load(tern_config_get(cfg, "federation", "directory"), trust, 0, &dir) !=
	        TERN_OK ||
	    tern_signkey_load(path, &key) != TERN_OK ||
	    tern_directory_find(dir, tern_config_get(cfg, "broker", "id"), &broker) != TERN_OK) {
		fprintf(stderr, "tern-badpeer: %s\n", tern_errdetail());
		return 2;
	}
	snprintf(path, sizeof(path), "%s/curve.key", argv[2]);
	if (tern_curvekey_load(path, &me) != TERN_OK) {
		fprintf(stderr, "tern-badpeer: %s\n", tern_errdetail());
		return 2;
	}
	/* A valid referral envelope from this node to sweden, to spoil. */
	if (tern_example_json("case-referral", &text) != TERN_OK ||
	    tern_json_parse_text(tern_msgtype_by_name("case-referral")->desc, text, strlen(text),
	                         &m, err, sizeof(err)) != TERN_OK)
		return 2;
	if (strcmp(cs, "badbody") == 0) { /* a referral without its members */
		size_t members = ((Tern__V1__CaseReferral *)m)->n_members;
		((Tern__V1__CaseReferral *)m)->n_members = 0;
		tern_pb_pack(m, &body, &blen);
		((Tern__V1__CaseReferral *)m)->n_members = members; /* so they are freed */
	} else {
		tern_pb_pack(m, &body, &blen);
	}
	{
		tern_seal_params p = {.sender = node,
		                      .sign_key = key,
		                      .recipients = to,
		                      .n_recipients = 1,
		                      .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
		                      .case_id = ((Tern__V1__CaseReferral *)m)->case_id,
		                      .body = body,
		                      .body_len = blen};
		if (strcmp(cs, "future") == 0)
			p.created_at = tern_now_ms() + 86400000;
		if (tern_envelope_seal(&p, dir, &env, &elen, NULL) != TERN_OK) {
			fprintf(stderr, "tern-badpeer: seal: %s\n", tern_errdetail());
			return 2;
		}
	}
	if (strcmp(cs, "envelope") == 0) {
		FILE *f = fopen(argv[4], "wb");
		if (f == NULL || fwrite(env, 1, elen, f) != elen || fclose(f) != 0) {
			fprintf(stderr, "tern-badpeer: cannot write %s\n", argv[4]);
			return 2;
		}
		{
			tern_envelope *ev = NULL;
			tern_verify_opts o = {.max_size = elen, .max_skew_ms = 60000};
			if (tern_envelope_verify(env, elen, dir, &o, &ev) == TERN_OK)
				printf("%s\n", tern_envelope_header(ev)->message_id);
			tern_envelope_free(&ev);
		}
		goto out;
	}
	if (strcmp(cs, "submit") == 0 || strcmp(cs, "reuse") == 0) { /* as it was written */
		FILE *f = fopen(argv[4], "rb");
		size_t n;
		free(env);
		if (f == NULL || (env = malloc(1u << 20)) == NULL ||
		    (n = fread(env, 1, 1u << 20, f)) == 0) {
			fprintf(stderr, "tern-badpeer: cannot read %s\n", argv[4]);
			return 2;
		}
		fclose(f);
		elen = n;
	}
	ctx = zmq_ctx_new();
	sock = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	{
		int ms = 3000; /* a send to a broker that dropped us must not hang */
		zmq_setsockopt(sock, ZMQ_SNDTIMEO, &ms, sizeof(ms));
	}
	zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, broker->curve_public, 32);
	zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, tern_curvekey_public(me), 32);
	zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(me), 32);
	zmq_connect(sock, tern_config_get(cfg, "broker", "listen"));
	if (hello(node) != 0) {
		printf("no welcome\n");
		return 1;
	}
	if (strcmp(cs, "reanchor") == 0) {
		char *note = archive_note(argv[4]);
		Tern__V1__Frame *a = NULL;
		if (note == NULL) {
			fprintf(stderr, "tern-badpeer: no checkpoint in %s\n", argv[4]);
			return 2;
		}
		/* First from 0: the witness answers where it stands (conflict). */
		rc = witness_ask(argv[5], note, 0, "", &a);
		if (rc == 0 && strcmp(a->witness_response->reason_code, "conflict") == 0) {
			uint64_t at = a->witness_response->witnessed_size, size;
			char origin[TERN_NOTE_NAME_MAX + 1], *req = NULL;
			tern_hash root;
			tern_pb_free((ProtobufCMessage **)&a);
			/* The request signed with this node's key, as its node
			 * would sign it after `tern audit reanchor`. */
			if (tern_checkpoint_parse(note, origin, &size, root) != TERN_OK ||
			    tern_witness_reanchor_request(origin, key, at, size, root,
			                                  tern_now_ms(), &req) != TERN_OK) {
				fprintf(stderr, "tern-badpeer: %s\n", tern_errdetail());
				return 2;
			}
			rc = witness_ask(argv[5], note, at, req, &a);
			free(req);
		}
		if (rc != 0)
			printf("no answer\n");
		else if (a->witness_response->reason_code[0])
			printf("%s\n", a->witness_response->reason_code);
		else
			printf("cosigned %llu\n", (unsigned long long)a->witness_response->size);
		tern_pb_free((ProtobufCMessage **)&a);
		free(note);
		zmq_close(sock);
		zmq_ctx_term(ctx);
		goto out;
	}
	if (strcmp(cs, "garbage") == 0) {
		send_raw("this is not a frame", 19, 0);
	} else if (strcmp(cs, "frames") == 0) {
		send_raw("a", 1, ZMQ_SNDMORE);
		send_raw("b", 1, ZMQ_SNDMORE);
		send_raw("c", 1, 0);
	} else if (strcmp(cs, "oversized") == 0) {
		/* Over the largest frame the broker takes: an envelope's, or an
		 * attachment chunk's, whichever is larger (broker/xfer.h). */
		size_t n = (size_t)tern_config_get_int(cfg, "limits", "max_message_size");
		if (n < TERN_ATTACH_CHUNK_MAX + (64u << 10))
			n = TERN_ATTACH_CHUNK_MAX + (64u << 10);
		n += 8192;
		uint8_t *big = calloc(1, n);
		send_raw(big, n, 0);
		free(big);
	} else if (strcmp(cs, "truncated") == 0) {
		submit(env, elen / 2);
	} else if (strcmp(cs, "badsig") == 0) {
		env[elen - 1] ^= 1;
		submit(env, elen);
	} else if (strcmp(cs, "garbled") == 0) {
		env[12] ^= 0x10;
		submit(env, elen);
	} else if (strcmp(cs, "replay") == 0) {
		submit(env, elen);
		rc = answer();
		submit(env, elen);
	} else if (strcmp(cs, "unknown") == 0) {
		/* Re-address and re-sign it, as a node with another directory might. */
		ProtobufCMessage *em = NULL, *hm = NULL;
		Tern__V1__Envelope *e;
		Tern__V1__Header *h;
		uint8_t *hb = NULL, *nb = NULL, sig[64];
		size_t hl = 0, nl = 0;
		char *nowhere = "nowhere";
		if (tern_pb_unpack(&tern__v1__envelope__descriptor, env, elen, elen, &em) !=
		    TERN_OK)
			return 2;
		e = (Tern__V1__Envelope *)em;
		if (tern_pb_unpack(&tern__v1__header__descriptor, e->header.data, e->header.len,
		                   e->header.len, &hm) != TERN_OK)
			return 2;
		h = (Tern__V1__Header *)hm;
		/* The decoded messages own their fields: swap ours in, then back. */
		char *orig_rcpt = h->recipients[0];
		ProtobufCBinaryData orig_hdr = e->header;
		h->recipients[0] = nowhere;
		tern_pb_pack(hm, &hb, &hl);
		tern_sign(key, TERN_ENVELOPE_SIGN_LABEL, hb, hl, sig);
		e->header.data = hb;
		e->header.len = hl;
		memcpy(e->signature->ed25519.data, sig, 64);
		tern_pb_pack(em, &nb, &nl);
		submit(nb, nl);
		free(nb);
		free(hb);
		e->header = orig_hdr;
		h->recipients[0] = orig_rcpt;
		tern_pb_free(&hm);
		tern_pb_free(&em);
	} else if (strcmp(cs, "reuse") == 0) {
		/* Another sender's id in a header this node signs as its own. */
		ProtobufCMessage *em = NULL, *hm = NULL;
		Tern__V1__Envelope *e;
		Tern__V1__Header *h;
		uint8_t *hb = NULL, *nb = NULL, sig[64];
		size_t hl = 0, nl = 0;
		if (tern_pb_unpack(&tern__v1__envelope__descriptor, env, elen, elen, &em) !=
		    TERN_OK)
			return 2;
		e = (Tern__V1__Envelope *)em;
		if (e->signature == NULL || e->signature->ed25519.len != 64 ||
		    tern_pb_unpack(&tern__v1__header__descriptor, e->header.data, e->header.len,
		                   e->header.len, &hm) != TERN_OK)
			return 2;
		h = (Tern__V1__Header *)hm;
		char *orig_sender = h->sender;
		ProtobufCBinaryData orig_hdr = e->header;
		h->sender = node;
		h->type = TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION;
		tern_pb_pack(hm, &hb, &hl);
		tern_sign(key, TERN_ENVELOPE_SIGN_LABEL, hb, hl, sig);
		e->header.data = hb;
		e->header.len = hl;
		memcpy(e->signature->ed25519.data, sig, 64);
		tern_pb_pack(em, &nb, &nl);
		submit(nb, nl);
		free(nb);
		free(hb);
		e->header = orig_hdr;
		h->sender = orig_sender;
		tern_pb_free(&hm);
		tern_pb_free(&em);
	} else if (strcmp(cs, "skip") == 0) {
		submit_as(env, elen, session, 2);
		rc = answer();
		submit_as(env, elen, session, 1);
		answer(); /* none: the session stays broken */
		if (hello(node) != 0) {
			printf("no welcome\n");
			return 1;
		}
		submit(env, elen);
	} else if (strcmp(cs, "stale") == 0) {
		submit_as(env, elen, session - 1, 1);
		answer(); /* none: dropped silently */
		submit(env, elen);
	} else if (strcmp(cs, "late") == 0) {
		wait_until(strtoll(argv[4], NULL, 10) * 1000);
		submit(env, elen);
	} else if (strcmp(cs, "future") == 0 || strcmp(cs, "badbody") == 0 ||
	           strcmp(cs, "submit") == 0) {
		submit(env, elen);
	} else {
		fprintf(stderr, "tern-badpeer: unknown case %s\n", cs);
		return 2;
	}
	rc |= answer();
	zmq_close(sock);
	zmq_ctx_term(ctx);
out:
	free(env);
	free(body);
	free(text);
	tern_json_message_free(&m);
	tern_curvekey_free(&me);
	tern_signkey_free(&key);
	tern_directory_free(&dir);
	tern_trust_free(&trust);
	tern_config_free(&cfg);
	return rc;
}

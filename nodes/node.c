#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include <tern/api.h>
#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>
#include <tern/msgtype.h>
#include <tern/v1/messages.pb-c.h>
#include <tern/uuid.h>
#include <tern/validate.h>

#include "api_server.h"
#include "backoff.h"
#include "hop.h"
#include "ident.h"
#include "node.h"
#include "daemon.h"
#include "http_api.h"
#include "node_store.h"
#include "prom.h"
#include "witness.h"
#include "pbuf.h"
#include "util.h"
#include "zmon.h"

#define MONITOR_ENDPOINT "inproc://tern-node-monitor"
/* The acknowledgements one commit holds: each is a parked API client. */
#define MAX_CLIENTS API_SERVER_MAX_PARKED

/* A message to put in the outbox: an API send, or a receipt we owe. */
struct out {
	char msgid[37];
	tern_sealed *sealed; /* until batch_sign turns it into env */
	uint8_t *env;
	size_t len;
	char type[32];
	char case_id[129];
	int64_t created_at;
	char **rcpts;
	size_t nrcpts;
	char outcome[40];
	char ref[37];
	char client_ref[129];
	int client;      /* the API client parked for the commit (api_server.h), or -1 */
	int64_t wait_ms; /* the client waits for the final state too (send "wait_ms") */
};

enum din_kind { DIN_ACCEPT, DIN_REFUSE, DIN_RECEIPT, DIN_NOTICE, DIN_DUPLICATE, DIN_NOTHING };

/* What a delivery does to the store, decided before the write. */
struct din {
	int kind;
	uint64_t seq;
	char msgid[37];
	uint8_t *env;
	size_t len;
	char sender[64], type[32], case_id[129], outcome[40];
	char ref[37]; /* the referral a decision answers, the decision a travel follows */
	char code[40], text[256];
	/* DIN_RECEIPT / DIN_NOTICE: which of our messages, for whom, what state */
	char target[37], node[64], state[16];
	int notice; /* DIN_NOTICE: its tern.v1.Notice.Kind */
};

struct result {
	char msgid[37];
	int accepted;
	uint64_t n;  /* accepted: the broker store's number for it */
	int current; /* answers a submission of the current session */
	char code[64], text[256];
};

struct inack {
	char msgid[37];
	int client;
};

struct batch {
	struct out *outs;
	size_t nouts, capouts;
	struct din *dins;
	size_t ndins, capdins;
	struct result *results;
	size_t nresults, capresults;
	struct inack acks[MAX_CLIENTS];
	size_t nacks;
	uint64_t delivered; /* highest delivery seq handled this round */
	int checkpoint;     /* 1: sign a checkpoint if the log grew; 2: even if not */
	int64_t now;
};

#define MAX_WITNESSES 64

struct node {
	tern_ident id;
	tern_sealcache *seals; /* X25519 reuse for sealing and opening */
	tern_sigcache *sigs;   /* verified batch roots */
	tern_store *store;
	void *ctx, *dealer, *monitor;
	const tern_member *broker;
	api_server *api; /* the local API socket and its clients */
	struct batch batch;
	/* broker session */
	int connected;
	uint8_t epoch[16];  /* the broker start we hold deliveries of */
	uint8_t dstore[16]; /* the broker store those deliveries' numbers count in */
	/* The same as last committed: what Hello says. A Hello sent between a
	 * new epoch's first delivery and its commit must not claim 0, or the
	 * broker would take this store for one put back from an old copy. */
	uint8_t h_epoch[16], h_store[16];
	uint64_t h_upto;
	uint8_t bstore[16]; /* the broker store of the current connection (Welcome) */
	/* The broker store our acceptance numbers count in, and the highest we
	 * were told: a store put back from an older copy tells a lower count. */
	uint8_t astore[16];
	uint64_t amax;
	uint64_t delivered; /* committed up to */
	uint64_t submit_next;
	uint32_t inflight;
	/* Each Hello opens a session; submissions are numbered within it and
	 * only sent once its Welcome came (wire.proto, Submit). */
	uint64_t session, sub_index;
	int64_t hello_at;
	int64_t last_rx, last_tx;
	/* A refused CurveZMQ handshake: libzmq 4.3.4 would retry every 100-200 ms
	 * whatever ZMQ_RECONNECT_IVL_MAX says (that applies to failed TCP
	 * connects only), so the node disconnects and reconnects itself. */
	tern_backoff hs_backoff;
	tern_lograte hs_log;
	int64_t reconnect_at; /* 0: connected, or libzmq is reconnecting */
	tern_audit_dbs audit;
	char origin[160];
	int64_t last_checkpoint, last_audit;
	/* witnessing: what each peer last cosigned of this log, as far as we know */
	struct witness {
		char id[TERN_NODE_ID_MAX + 1];
		uint64_t size;
	} witnesses[MAX_WITNESSES];
	size_t nwitnesses;
	int64_t last_event, last_round; /* last entry other than COSIGNED; last round */
	/* operations: /metrics and the HTTP API (NULL when off) */
	tern_http *metrics;
	node_http *http;
	int64_t next_metrics, next_expiry_check, next_http_refusals;
	struct {
		uint64_t sent[8];        /* by message type */
		uint64_t received[8][2]; /* by message type, [accepted, refused] */
		uint64_t receipts[2];    /* receipts received: [delivered, rejected] */
		uint64_t rollbacks[2];   /* older trust material refused: [CRL, directory] */
		uint64_t restores[2];    /* stores found older: [the broker's, this node's] */
		uint64_t http_unauthorized;
	} m;
	/* settings */
	int64_t cp_ivl_ms, idle_ivl_ms;
	int64_t max_msg, batch_size, credit, window, hb_ivl_ms, hb_timeout_ms, skew_ms;
};

/* --- small helpers ------------------------------------------------------------- */

static void hop_send(node *n, Tern__V1__Frame *f)
{
	if (tern_hop_send(n->dealer, NULL, 0, f, ZMQ_DONTWAIT) == TERN_OK)
		n->last_tx = tern_now_ms();
}

static void send_hello(node *n)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Hello h = TERN__V1__HELLO__INIT;

	h.node_id = (char *)n->id.id;
	h.software = "tern-node 0.1.0";
	h.credit = (uint32_t)n->credit;
	h.broker_epoch.data = n->h_epoch;
	h.broker_epoch.len = 16;
	h.broker_store.data = n->h_store;
	h.broker_store.len = 16;
	h.delivered_upto = n->h_upto;
	do
		randombytes_buf(&n->session, sizeof(n->session));
	while (n->session == 0);
	h.session = n->session;
	/* Nothing is submitted until this Hello's Welcome: submissions sent in
	 * between could reach the broker ahead of older ones still unanswered. */
	n->connected = 0;
	n->hello_at = tern_now_ms();
	f.body_case = TERN__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	hop_send(n, &f);
}

/* The broker could not take a submission of the current session in order:
 * start a new session, which resubmits everything unanswered, oldest first. */
static void session_restart(node *n, const char *why)
{
	if (!n->connected)
		return; /* a Hello is already out; its Welcome starts the new session */
	log_info("saying Hello again: %s", why);
	send_hello(n);
}

static const char *field_string(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *fd =
	    protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);

	if (fd == NULL || fd->type != PROTOBUF_C_TYPE_STRING ||
	    fd->label == PROTOBUF_C_LABEL_REPEATED)
		return "";
	return *(const char *const *)((const char *)m + fd->offset);
}

static void out_free(struct out *o);

/* Seals body for rcpts and fills o (everything the outbox write needs). On
 * failure o holds nothing to free. */
static int make_out(node *n, const tern_msgtype *t, const char *const *rcpts, size_t nr,
                    const char *case_id, const char *in_reply_to, int64_t expires_at,
                    const uint8_t *body, size_t blen, struct out *o)
{
	tern_seal_params p = {.sender = n->id.id,
	                      .sign_key = n->id.sign,
	                      .recipients = rcpts,
	                      .n_recipients = nr,
	                      .type = t->type,
	                      .case_id = case_id,
	                      .in_reply_to = in_reply_to,
	                      .body = body,
	                      .body_len = blen,
	                      .expires_at = expires_at,
	                      .cache = n->seals};
	int rc;

	memset(o, 0, sizeof(*o));
	o->client = -1;
	p.created_at = tern_now_ms();
	/* Signed at the commit, with everything else the commit sends. */
	if ((rc = tern_envelope_seal_unsigned(&p, n->id.dir, &o->sealed, o->msgid)) != TERN_OK)
		return rc;
	snprintf(o->type, sizeof(o->type), "%s", t->name);
	snprintf(o->case_id, sizeof(o->case_id), "%s", case_id ? case_id : "");
	o->created_at = p.created_at;
	if ((o->rcpts = calloc(nr, sizeof(char *))) == NULL)
		goto nomem;
	for (; o->nrcpts < nr; o->nrcpts++)
		if ((o->rcpts[o->nrcpts] = strdup(rcpts[o->nrcpts])) == NULL)
			goto nomem;
	return TERN_OK;
nomem:
	out_free(o);
	return tern_fail(TERN_ENOMEM, "out of memory sealing %s", o->msgid);
}

/* Frees what o holds and leaves it empty (freeing it again is harmless). */
static void out_free(struct out *o)
{
	tern_sealed_free(&o->sealed);
	free(o->env);
	o->env = NULL;
	for (size_t i = 0; i < o->nrcpts; i++)
		free(o->rcpts[i]);
	free(o->rcpts);
	o->rcpts = NULL;
	o->nrcpts = 0;
}

static struct out *batch_out(node *n)
{
	struct batch *b = &n->batch;

	if (TERN_GROW(b->outs, b->nouts, b->capouts))
		return NULL;
	return &b->outs[b->nouts++];
}

/* --- receiving deliveries ---------------------------------------------------------- */

static int held_ref(node *n, MDB_txn *txn, const char *msgid, json_t **ref)
{
	struct batch *b = &n->batch;

	/* A reference may point at a message accepted earlier in this very batch. */
	for (size_t i = 0; i < b->ndins; i++)
		if (b->dins[i].kind == DIN_ACCEPT && strcmp(b->dins[i].msgid, msgid) == 0) {
			*ref = json_pack("{s:s, s:s, s:s}", "type", b->dins[i].type, "case_id",
			                 b->dins[i].case_id, "outcome", b->dins[i].outcome);
			return TERN_OK;
		}
	for (size_t i = 0; i < b->nouts; i++)
		if (strcmp(b->outs[i].msgid, msgid) == 0) {
			*ref = json_pack("{s:s, s:s, s:s}", "type", b->outs[i].type, "case_id",
			                 b->outs[i].case_id, "outcome", b->outs[i].outcome);
			return TERN_OK;
		}
	return node_store_ref(txn, n->store, msgid, ref);
}

/* 0: msgid is new; 1: it came before (this batch or the store); 2: it came
 * before from another sender than the one given (NULL: any sender will do). */
static int seen_before(node *n, MDB_txn *txn, const char *msgid, const char *sender)
{
	json_t *rec = NULL;
	const char *was;
	int seen;

	for (size_t i = 0; i < n->batch.ndins; i++)
		if (n->batch.dins[i].msgid[0] && strcmp(n->batch.dins[i].msgid, msgid) == 0 &&
		    (n->batch.dins[i].kind == DIN_ACCEPT || n->batch.dins[i].kind == DIN_REFUSE))
			return sender && strcmp(n->batch.dins[i].sender, sender) != 0 ? 2 : 1;
	if (node_store_received(txn, n->store, msgid, &rec) != TERN_OK)
		return 0;
	was = json_string_value(json_object_get(rec, "sender"));
	seen = sender && was && strcmp(was, sender) != 0 ? 2 : 1;
	json_decref(rec);
	return seen;
}

static void refuse(struct din *d, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct din *d, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->kind = DIN_REFUSE;
	snprintf(d->code, sizeof(d->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
	va_end(ap);
}

/* The recipient's checks (docs/protocol.md) on an opened business message. */
static void check_body(node *n, MDB_txn *txn, const Tern__V1__Header *h, const tern_msgtype *t,
                       const ProtobufCMessage *body, struct din *d)
{
	tern_violations v;
	json_t *ref = NULL;
	const char *refid;

	if (tern_validate(body, tern_now_ms(), &v) != TERN_OK) {
		refuse(d, "invalid-body", "%s: %s", v.count ? v.v[0].path : "",
		       v.count ? v.v[0].rule : "does not validate");
		return;
	}
	if (strcmp(field_string(body, "case_id"), h->case_id) != 0) {
		refuse(d, "case-mismatch", "header case id differs from the body's caseId");
		return;
	}
	if (t->type == TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION) {
		refid = field_string(body, "referral_id");
		snprintf(d->ref, sizeof(d->ref), "%s", refid);
		snprintf(d->outcome, sizeof(d->outcome), "%s",
		         protobuf_c_enum_descriptor_get_value(
		             &tern__v1__acceptance_decision__outcome__descriptor,
		             ((const Tern__V1__AcceptanceDecision *)body)->outcome)
		             ->name);
		if (held_ref(n, txn, refid, &ref) == TERN_OK) {
			if (strcmp(json_string_value(json_object_get(ref, "type")),
			           "case-referral") != 0)
				refuse(d, "unknown-referral",
				       "referralId %s is not a case referral", refid);
			else if (strcmp(json_string_value(json_object_get(ref, "case_id")),
			                h->case_id) != 0)
				refuse(d, "case-mismatch", "referral %s is for another case",
				       refid);
		} else if (n->id.self->roles & TERN_ROLE_REFERRER) {
			refuse(d, "unknown-referral", "no referral %s was sent or received here",
			       refid);
		}
	} else if (t->type == TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION) {
		refid = field_string(body, "decision_id");
		snprintf(d->ref, sizeof(d->ref), "%s", refid);
		if (held_ref(n, txn, refid, &ref) == TERN_OK) {
			if (strcmp(json_string_value(json_object_get(ref, "type")),
			           "acceptance-decision") != 0)
				refuse(d, "unknown-decision", "decisionId %s is not a decision",
				       refid);
			else if (strcmp(json_string_value(json_object_get(ref, "case_id")),
			                h->case_id) != 0)
				refuse(d, "case-mismatch", "decision %s is for another case",
				       refid);
			else if (strcmp(json_string_value(json_object_get(ref, "outcome")),
			                "ACCEPTED") != 0)
				refuse(d, "decision-not-accepted",
				       "decision %s did not accept the case", refid);
		} else if (n->id.self->roles & TERN_ROLE_STATE) {
			refuse(d, "unknown-decision", "no decision %s was sent or received here",
			       refid);
		}
	}
	json_decref(ref);
}

/* Decides what an envelope delivery does; fills d. Never fails: every
 * outcome is a verdict the sender hears about. */
static void judge_envelope(node *n, MDB_txn *txn, const uint8_t *buf, size_t len, struct din *d)
{
	tern_verify_opts o = {.max_size = (size_t)n->max_msg,
	                      .max_skew_ms = n->skew_ms,
	                      .future_skew_only = 1,
	                      .sigcache = n->sigs};
	tern_envelope *env = NULL;
	const Tern__V1__Header *h;
	const tern_msgtype *t;
	ProtobufCMessage *body = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0;
	int rc, mine = 0;

	d->kind = DIN_ACCEPT;
	rc = tern_envelope_verify(buf, len, n->id.dir, &o, &env);
	if (rc != TERN_OK) {
		/* Unverified: still answer the claimed sender, if it is a member.
		 * Decoded within the same bounds as the broker's (envelope.h). */
		tern_envelope_claim c;
		const tern_member *m;
		if (tern_envelope_claims(buf, len, &c) == TERN_OK && c.message_id[0] &&
		    c.sender[0] && tern_directory_find(n->id.dir, c.sender, &m) == TERN_OK) {
			snprintf(d->msgid, sizeof(d->msgid), "%s", c.message_id);
			snprintf(d->sender, sizeof(d->sender), "%s", c.sender);
			snprintf(d->case_id, sizeof(d->case_id), "%s", c.case_id);
		}
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		if (d->msgid[0] && seen_before(n, txn, d->msgid, NULL))
			d->kind = DIN_NOTHING;
		return;
	}
	h = tern_envelope_header(env);
	t = tern_msgtype_by_type(h->type);
	snprintf(d->msgid, sizeof(d->msgid), "%s", h->message_id);
	snprintf(d->sender, sizeof(d->sender), "%s", h->sender);
	snprintf(d->type, sizeof(d->type), "%s", t->name);
	snprintf(d->case_id, sizeof(d->case_id), "%s", h->case_id);
	switch (seen_before(n, txn, h->message_id, h->sender)) {
	case 1:
		d->kind = DIN_NOTHING; /* a redelivery: already answered */
		goto out;
	case 2:
		/* Validly signed by its sender, but the id is another sender's: the
		 * broker should have refused it. Nothing is stored under the id
		 * (that would overwrite the first message's record) and nothing is
		 * answered; it is logged and audited. */
		d->kind = DIN_DUPLICATE;
		snprintf(d->code, sizeof(d->code), "duplicate-id");
		snprintf(d->text, sizeof(d->text), "message id already used by another sender");
		goto out;
	}
	for (size_t i = 0; i < h->n_recipients; i++)
		mine |= strcmp(h->recipients[i], n->id.id) == 0;
	if (!mine) {
		refuse(d, "not-a-recipient", "this node is not among the recipients");
		goto out;
	}
	if ((rc = tern_envelope_authorize(env)) != TERN_OK) {
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		goto out;
	}
	if ((rc = tern_envelope_open_cached(env, n->id.id, n->id.seal, n->seals, &plain, &plen)) !=
	    TERN_OK) {
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		goto out;
	}
	if ((rc = tern_pb_unpack(t->desc, plain, plen, plen, &body)) != TERN_OK) {
		refuse(d, "invalid-body", "the body does not decode as %s", t->name);
		goto out;
	}
	if (t->type == TERN__V1__MESSAGE_TYPE__RECEIPT) {
		const Tern__V1__Receipt *r = (const Tern__V1__Receipt *)body;
		json_t *rec = NULL;
		d->kind = DIN_RECEIPT;
		snprintf(d->target, sizeof(d->target), "%s", r->message_id);
		snprintf(d->node, sizeof(d->node), "%s", h->sender);
		snprintf(d->state, sizeof(d->state), "%s",
		         r->status == TERN__V1__RECEIPT__STATUS__ACCEPTED ? "delivered"
		                                                          : "rejected");
		snprintf(d->code, sizeof(d->code), "%s", r->reason_code);
		snprintf(d->text, sizeof(d->text), "%s", r->reason_text);
		if (node_store_sent_get(txn, n->store, r->message_id, &rec) != TERN_OK ||
		    json_object_get(json_object_get(rec, "recipients"), h->sender) == NULL) {
			/* Refused like any bad message: logged and audited; never answered,
			 * as no receipt is ever sent for a receipt. */
			refuse(d, "unknown-message",
			       "a receipt for %s, which this node never sent to %s", r->message_id,
			       h->sender);
		}
		json_decref(rec);
		goto out;
	}
	check_body(n, txn, h, t, body, d);
out:
	tern_pb_free(&body);
	if (plain)
		tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&env);
}

/* A signed receipt for d's message, to its sender, queued with this batch. */
static void owe_receipt(node *n, const struct din *d, const uint8_t *env, size_t len)
{
	Tern__V1__Receipt r = TERN__V1__RECEIPT__INIT;
	const char *to[1] = {d->sender};
	uint8_t digest[32], *body;
	size_t blen;
	struct out o, *slot;

	r.message_id = (char *)d->msgid;
	tern_sha256(env, len, digest);
	r.envelope_digest.data = digest;
	r.envelope_digest.len = 32;
	r.status = d->kind == DIN_ACCEPT ? TERN__V1__RECEIPT__STATUS__ACCEPTED
	                                 : TERN__V1__RECEIPT__STATUS__REJECTED;
	r.reason_code = d->kind == DIN_ACCEPT ? "" : (char *)d->code;
	r.reason_text = d->kind == DIN_ACCEPT ? "" : (char *)d->text;
	if (tern_pb_pack(&r.base, &body, &blen) != TERN_OK)
		return;
	if (make_out(n, tern_msgtype_by_type(TERN__V1__MESSAGE_TYPE__RECEIPT), to, 1, d->case_id,
	             d->msgid, 0, body, blen, &o) != TERN_OK) {
		log_warnx("cannot seal the receipt for %s: %s", d->msgid, tern_errdetail());
		free(body);
		return;
	}
	free(body);
	snprintf(o.ref, sizeof(o.ref), "%s", d->msgid);
	snprintf(o.outcome, sizeof(o.outcome), "%s",
	         d->kind == DIN_ACCEPT ? "ACCEPTED" : "REJECTED");
	if ((slot = batch_out(n)) == NULL) {
		out_free(&o);
		return;
	}
	*slot = o;
}

static void batch_commit(node *n);

static void on_deliver(node *n, const Tern__V1__Deliver *dv)
{
	struct batch *b = &n->batch;
	struct din *d;
	MDB_txn *txn;

	if (dv->broker_epoch.len != 16)
		return;
	if (memcmp(dv->broker_epoch.data, n->epoch, 16) != 0) {
		/* A new start of the broker: its numbers are trusted only within
		 * it. What this batch holds of the old one is committed first, so
		 * that one batch never mixes the two. */
		batch_commit(n);
		memcpy(n->epoch, dv->broker_epoch.data, 16);
		memcpy(n->dstore, n->bstore, 16);
		n->delivered = 0;
		b->delivered = 0;
	}
	if (dv->seq <= n->delivered || dv->seq <= b->delivered) {
		if (b->delivered < n->delivered)
			b->delivered = n->delivered;
		return; /* already held: acknowledged again below */
	}
	if (TERN_GROW(b->dins, b->ndins, b->capdins))
		return;
	d = &b->dins[b->ndins];
	memset(d, 0, sizeof(*d));
	d->seq = dv->seq;
	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	if (dv->item_case == TERN__V1__DELIVER__ITEM_NOTICE) {
		const Tern__V1__Notice *nt = dv->notice;
		d->kind = DIN_NOTICE;
		d->notice = nt->kind;
		snprintf(d->target, sizeof(d->target), "%s", nt->message_id);
		snprintf(d->node, sizeof(d->node), "%s", nt->recipient);
		snprintf(d->code, sizeof(d->code), "%s", nt->reason);
		if (nt->kind == TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED) {
			/* Final: the recipient will never take it. */
			snprintf(d->state, sizeof(d->state), "rejected");
			snprintf(
			    d->text, sizeof(d->text),
			    "dead-lettered by the broker: %s was %s from the federation before "
			    "it took the message",
			    nt->recipient,
			    strcmp(nt->reason, "recipient-removed") == 0 ? "removed" : "revoked");
		} else {
			snprintf(d->state, sizeof(d->state), "expired");
			snprintf(d->text, sizeof(d->text), "dead-lettered by the broker: %s",
			         nt->reason);
		}
	} else if (dv->item_case == TERN__V1__DELIVER__ITEM_ENVELOPE) {
		judge_envelope(n, txn, dv->envelope.data, dv->envelope.len, d);
		if (d->kind == DIN_ACCEPT || d->kind == DIN_REFUSE || d->kind == DIN_DUPLICATE) {
			if ((d->env = malloc(dv->envelope.len)) != NULL) {
				memcpy(d->env, dv->envelope.data, dv->envelope.len);
				d->len = dv->envelope.len;
			}
		}
		if (d->kind == DIN_ACCEPT || d->kind == DIN_REFUSE) {
			if (d->kind == DIN_REFUSE)
				log_warnx("refused %s from %s: %s: %s",
				          d->msgid[0] ? d->msgid : "(no id)",
				          d->sender[0] ? d->sender : "?", d->code, d->text);
			/* No receipt for a receipt, nor to a sender we cannot name. */
			if (d->msgid[0] && d->sender[0] && strcmp(d->type, "receipt") != 0)
				owe_receipt(n, d, dv->envelope.data, dv->envelope.len);
		}
	} else {
		d->kind = DIN_NOTHING;
	}
	mdb_txn_abort(txn);
	b->ndins++;
	b->delivered = dv->seq;
}

/* --- the write --------------------------------------------------------------------- */

static int audit(node *n, MDB_txn *txn, Tern__V1__AuditEntry__Kind kind, const char *msgid,
                 const char *peer, const char *case_id, const char *type, const uint8_t *env,
                 size_t len, const char *reason, const char *outcome, const char *ref)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	uint8_t digest[32];

	e.kind = kind;
	e.at = n->batch.now;
	e.message_id = (char *)(msgid ? msgid : "");
	e.peer = (char *)(peer ? peer : "");
	e.case_id = (char *)(case_id ? case_id : "");
	e.type = (char *)(type ? type : "");
	e.reason = (char *)(reason ? reason : "");
	e.outcome = (char *)(outcome ? outcome : "");
	e.ref = (char *)(ref ? ref : "");
	if (env) {
		tern_sha256(env, len, digest);
		e.digest.data = digest;
		e.digest.len = 32;
	}
	n->last_audit = n->last_event = n->batch.now;
	return tern_audit_append(txn, &n->audit, &e);
}

static int batch_apply(MDB_txn *txn, void *arg)
{
	node *n = arg;
	struct batch *b = &n->batch;
	int rc;

	for (size_t i = 0; i < b->nouts; i++) {
		struct out *o = &b->outs[i];
		node_out m = {o->msgid,
		              o->env,
		              o->len,
		              o->type,
		              o->case_id,
		              o->created_at,
		              (const char *const *)o->rcpts,
		              o->nrcpts,
		              o->outcome,
		              o->ref,
		              o->client_ref};
		if ((rc = node_store_enqueue(txn, n->store, &m, b->now)) != TERN_OK)
			return rc;
		for (size_t r = 0; r < o->nrcpts; r++) {
			rc = audit(n, txn,
			           strcmp(o->type, "receipt") == 0
			               ? TERN__V1__AUDIT_ENTRY__KIND__RECEIPT_SENT
			               : TERN__V1__AUDIT_ENTRY__KIND__SENT,
			           o->msgid, o->rcpts[r], o->case_id, o->type, o->env, o->len, NULL,
			           o->outcome, o->ref);
			if (rc != TERN_OK)
				return rc;
		}
	}
	for (size_t i = 0; i < b->nresults; i++) {
		struct result *r = &b->results[i];
		if ((rc = node_store_submitted(txn, n->store, r->msgid, r->accepted, r->n, r->code,
		                               r->text, b->now)) != TERN_OK)
			return rc;
	}
	for (size_t i = 0; i < b->ndins; i++) {
		struct din *d = &b->dins[i];
		if (d->kind == DIN_ACCEPT || (d->kind == DIN_REFUSE && d->msgid[0])) {
			node_in m = {d->msgid, d->env,     d->len,     d->sender,
			             d->type,  d->case_id, d->outcome, d->kind == DIN_ACCEPT,
			             d->code,  d->text};
			if ((rc = node_store_receive(txn, n->store, &m, b->now)) != TERN_OK)
				return rc;
			rc = audit(n, txn,
			           d->kind == DIN_ACCEPT ? TERN__V1__AUDIT_ENTRY__KIND__RECEIVED
			                                 : TERN__V1__AUDIT_ENTRY__KIND__REJECTED,
			           d->msgid, d->sender, d->case_id, d->type, d->env, d->len,
			           d->kind == DIN_ACCEPT ? NULL : d->code, d->outcome, d->ref);
			if (rc != TERN_OK)
				return rc;
		} else if (d->kind == DIN_DUPLICATE) {
			rc = audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, d->msgid,
			           d->sender, d->case_id, d->type, d->env, d->len, d->code, NULL,
			           NULL);
			if (rc != TERN_OK)
				return rc;
		} else if (d->kind == DIN_RECEIPT || d->kind == DIN_NOTICE) {
			rc = node_store_recipient_state(txn, n->store, d->target, d->node, d->state,
			                                d->code, d->text, d->kind == DIN_NOTICE,
			                                b->now);
			if (rc == TERN_EEXIST)
				continue; /* the same verdict delivered again: no new event */
			if (rc != TERN_OK && rc != TERN_ENOENT)
				return rc;
			rc = audit(
			    n, txn,
			    d->kind == DIN_RECEIPT ? TERN__V1__AUDIT_ENTRY__KIND__RECEIPT_RECEIVED
			    : d->notice == TERN__V1__NOTICE__KIND__EXPIRED
			        ? TERN__V1__AUDIT_ENTRY__KIND__EXPIRED
			        : TERN__V1__AUDIT_ENTRY__KIND__DEAD_LETTERED,
			    d->target, d->node, d->case_id, NULL, NULL, 0,
			    d->kind == DIN_NOTICE || strcmp(d->state, "rejected") == 0 ? d->code
			                                                               : NULL,
			    d->state, NULL);
			if (rc != TERN_OK)
				return rc;
		}
	}
	for (size_t i = 0; i < b->nacks; i++) {
		rc = node_store_inbox_ack(txn, n->store, b->acks[i].msgid);
		if (rc != TERN_OK && rc != TERN_ENOENT)
			return rc;
		if ((rc = audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__OPERATOR, b->acks[i].msgid,
		                n->id.id, NULL, "inbox-ack", NULL, 0, NULL, NULL, NULL)) != TERN_OK)
			return rc;
	}
	if (b->checkpoint) {
		uint64_t size;
		if ((rc = tern_audit_checkpoint(txn, &n->audit, n->origin, n->id.sign,
		                                b->checkpoint == 2, &size)) != TERN_OK)
			return rc;
	}
	if (b->delivered > n->delivered &&
	    (rc = node_store_delivered_put(txn, n->store, n->dstore, n->epoch, b->delivered)) !=
	        TERN_OK)
		return rc;
	return TERN_OK;
}

static void client_reply(node *n, int ci, json_t *reply)
{
	api_server_reply(n->api, ci, reply);
}

static void batch_reset(node *n)
{
	struct batch *b = &n->batch;

	for (size_t i = 0; i < b->nouts; i++)
		out_free(&b->outs[i]);
	for (size_t i = 0; i < b->ndins; i++)
		free(b->dins[i].env);
	b->nouts = b->ndins = b->nresults = b->nacks = 0;
	b->delivered = 0;
	b->checkpoint = 0;
}

/* One signature for every envelope this commit sends: a Merkle root over
 * their headers, each envelope with its inclusion proof (envelope.h). */
static int batch_sign(node *n)
{
	struct batch *b = &n->batch;
	tern_sealed **items;
	uint8_t **envs;
	size_t *lens, k = 0;
	int rc;

	if (b->nouts == 0)
		return TERN_OK;
	items = calloc(b->nouts, sizeof(*items));
	envs = calloc(b->nouts, sizeof(*envs));
	lens = calloc(b->nouts, sizeof(*lens));
	if (items == NULL || envs == NULL || lens == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->nouts; i++) {
		if (b->outs[i].sealed != NULL)
			items[k++] = b->outs[i].sealed;
		else if (b->outs[i].env == NULL) {
			/* Would be written to the outbox with no envelope at all. */
			rc = tern_fail(TERN_EINVAL, "message %s has no envelope", b->outs[i].msgid);
			goto out;
		}
	}
	if (k == 0 || (rc = tern_envelope_sign(items, k, n->id.sign, envs, lens)) != TERN_OK) {
		rc = k == 0 ? TERN_OK : rc;
		goto out;
	}
	k = 0;
	for (size_t i = 0; i < b->nouts; i++)
		if (b->outs[i].sealed != NULL) {
			b->outs[i].env = envs[k];
			b->outs[i].len = lens[k++];
			tern_sealed_free(&b->outs[i].sealed);
		}
out:
	free(lens);
	free(envs);
	free(items);
	return rc;
}

static void batch_commit(node *n)
{
	struct batch *b = &n->batch;
	int rc;

	if (b->nouts == 0 && b->ndins == 0 && b->nresults == 0 && b->nacks == 0 &&
	    b->delivered <= n->delivered && !b->checkpoint) {
		if (b->delivered && b->delivered == n->delivered)
			goto ack; /* only redeliveries: acknowledge again */
		return;
	}
	/* A signing failure fails the whole commit, as a failed write does:
	 * nothing of it is acknowledged, so API clients retry and the broker
	 * redelivers what this batch received. */
	if ((rc = batch_sign(n)) != TERN_OK)
		log_warnx("cannot sign this batch's envelopes: %s (%s)", tern_strerror(rc),
		          tern_errdetail());
	else
		rc = tern_store_write(n->store, batch_apply, n);
	if (rc != TERN_OK) {
		log_warnx("commit failed: %s (%s); nothing of this batch is acknowledged",
		          tern_strerror(rc), tern_errdetail());
		for (size_t i = 0; i < b->nouts; i++)
			if (b->outs[i].client >= 0)
				client_reply(
				    n, b->outs[i].client,
				    tern_api_error(rc, "not stored: %s", tern_errdetail()));
		for (size_t i = 0; i < b->nacks; i++)
			if (b->acks[i].client >= 0)
				client_reply(n, b->acks[i].client,
				             tern_api_error(rc, "not stored"));
		b->delivered = 0;
		batch_reset(n);
		return;
	}
	for (size_t i = 0; i < b->nouts; i++) {
		const tern_msgtype *t = tern_msgtype_by_name(b->outs[i].type);
		n->m.sent[t && (unsigned)t->type < 8 ? t->type : 0]++;
	}
	for (size_t i = 0; i < b->ndins; i++) {
		const struct din *d = &b->dins[i];
		const tern_msgtype *t = tern_msgtype_by_name(d->type);
		unsigned ti = t && (unsigned)t->type < 8 ? t->type : 0;
		if (d->kind == DIN_ACCEPT || (d->kind == DIN_REFUSE && d->msgid[0]))
			n->m.received[ti][d->kind == DIN_ACCEPT ? 0 : 1]++;
		else if (d->kind == DIN_RECEIPT)
			n->m.receipts[strcmp(d->state, "rejected") == 0]++;
	}
	for (size_t i = 0; i < b->nouts; i++) {
		struct out *o = &b->outs[i];
		if (strcmp(o->type, "receipt") != 0)
			log_info("queued %s %s for %zu recipient(s), case %s", o->msgid, o->type,
			         o->nrcpts, o->case_id);
		if (o->client >= 0 && o->wait_ms > 0) {
			api_server_await_final(n->api, o->client, o->msgid,
			                       tern_now_ms() + o->wait_ms);
		} else if (o->client >= 0) {
			client_reply(n, o->client,
			             json_pack("{s:b, s:s}", "ok", 1, "message_id", o->msgid));
		}
	}
	/* Waiters whose message this batch answered look at its state again;
	 * the others wait on (one store read each would cost more than the rest). */
	for (size_t k = 0; k < b->ndins; k++)
		if (b->dins[k].kind == DIN_RECEIPT || b->dins[k].kind == DIN_NOTICE)
			api_server_state_changed(n->api, b->dins[k].target);
	for (size_t k = 0; k < b->nresults; k++)
		if (!b->results[k].accepted)
			api_server_state_changed(n->api, b->results[k].msgid);
	for (size_t i = 0; i < b->ndins; i++) {
		struct din *d = &b->dins[i];
		if (d->kind == DIN_ACCEPT)
			log_info("received %s %s from %s, case %s", d->msgid, d->type, d->sender,
			         d->case_id);
		else if (d->kind == DIN_RECEIPT)
			log_info("receipt from %s: %s %s%s%s", d->node, d->target, d->state,
			         d->code[0] ? " " : "", d->code);
		else if (d->kind == DIN_NOTICE)
			log_warnx("%s to %s dead-lettered by the broker: %s", d->target, d->node,
			          d->code);
		else if (d->kind == DIN_DUPLICATE)
			log_warnx("refused %s from %s: duplicate-id: the id came before from "
			          "another sender",
			          d->msgid, d->sender);
	}
	for (size_t i = 0; i < b->nresults; i++) {
		if (n->inflight && b->results[i].current)
			n->inflight--;
		if (b->results[i].accepted && b->results[i].n > n->amax)
			n->amax = b->results[i].n;
		if (!b->results[i].accepted)
			log_warnx("broker refused %s: %s: %s", b->results[i].msgid,
			          b->results[i].code, b->results[i].text);
	}
	for (size_t i = 0; i < b->nacks; i++)
		if (b->acks[i].client >= 0)
			client_reply(n, b->acks[i].client, json_pack("{s:b}", "ok", 1));
	if (b->delivered > n->delivered) {
		n->delivered = b->delivered;
		memcpy(n->h_epoch, n->epoch, 16);
		memcpy(n->h_store, n->dstore, 16);
		n->h_upto = n->delivered;
	}
ack:
	if (b->delivered) {
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__DeliverAck a = TERN__V1__DELIVER_ACK__INIT;
		a.broker_epoch.data = n->epoch;
		a.broker_epoch.len = 16;
		a.upto = n->delivered;
		f.body_case = TERN__V1__FRAME__BODY_DELIVER_ACK;
		f.deliver_ack = &a;
		hop_send(n, &f);
	}
	batch_reset(n);
}

/* --- submitting --------------------------------------------------------------------- */

static int submit_visit(uint64_t seq, const char *msgid, const uint8_t *env, size_t len, void *arg)
{
	node *n = arg;
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Submit s = TERN__V1__SUBMIT__INIT;

	(void)msgid;
	if (n->inflight >= (uint32_t)n->window)
		return 1;
	s.envelope.data = (uint8_t *)env;
	s.envelope.len = len;
	s.session = n->session;
	s.index = n->sub_index + 1;
	f.body_case = TERN__V1__FRAME__BODY_SUBMIT;
	f.submit = &s;
	if (tern_hop_send(n->dealer, NULL, 0, &f, ZMQ_DONTWAIT) != TERN_OK)
		return 1;
	n->last_tx = tern_now_ms();
	n->inflight++;
	n->sub_index++;
	n->submit_next = seq + 1;
	return 0;
}

static void submit_pump(node *n)
{
	MDB_txn *txn;

	if (!n->connected || n->inflight >= (uint32_t)n->window)
		return;
	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	node_store_outbox_scan(txn, n->store, n->submit_next, submit_visit, n);
	mdb_txn_abort(txn);
}

/* --- the broker connection ----------------------------------------------------------- */

/* --- witnessing (docs/audit.md) ----------------------------------------------------- */

static struct witness *witness_find(node *n, const char *id)
{
	for (size_t i = 0; i < n->nwitnesses; i++)
		if (strcmp(n->witnesses[i].id, id) == 0)
			return &n->witnesses[i];
	return NULL;
}

static void send_witness_request(node *n, MDB_txn *txn, struct witness *w, const char *note,
                                 uint64_t size)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__WitnessRequest r = TERN__V1__WITNESS_REQUEST__INIT;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	ProtobufCBinaryData pb[TERN_MERKLE_MAX_PROOF];
	size_t plen = 0;

	if (w->size > size)
		w->size = 0; /* we cannot prove from there; the witness will say where it is */
	/* O(log n) lookups of stored subtrees, whatever the log's size. */
	if (w->size > 0 && w->size < size &&
	    tern_audit_consistency_proof(txn, &n->audit, w->size, size, proof, &plen) != TERN_OK)
		plen = 0;
	for (size_t i = 0; i < plen; i++)
		pb[i] = (ProtobufCBinaryData){TERN_HASH_LEN, proof[i]};
	r.peer = w->id;
	r.checkpoint = (char *)note;
	r.old_size = w->size;
	r.n_proof = plen;
	r.proof = pb;
	f.body_case = TERN__V1__FRAME__BODY_WITNESS_REQUEST;
	f.witness_request = &r;
	hop_send(n, &f);
}

/* Asks every other member node to cosign the newest checkpoint. */
static void witness_round(node *n, const char *only)
{
	MDB_txn *txn = NULL;
	char *note = NULL;
	uint64_t size = 0;

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	if (tern_audit_latest_checkpoint(txn, &n->audit, &note, &size) != TERN_OK || size == 0)
		goto out;
	for (size_t i = 0; i < tern_directory_count(n->id.dir); i++) {
		const tern_member *m = tern_directory_at(n->id.dir, i);
		struct witness *w;
		if ((m->roles & TERN_ROLE_BROKER) || m->revoked || m->expired ||
		    strcmp(m->node_id, n->id.id) == 0 || (only && strcmp(m->node_id, only) != 0))
			continue;
		if ((w = witness_find(n, m->node_id)) == NULL) {
			if (n->nwitnesses == MAX_WITNESSES)
				continue;
			w = &n->witnesses[n->nwitnesses++];
			snprintf(w->id, sizeof(w->id), "%s", m->node_id);
			w->size = 0;
		}
		send_witness_request(n, txn, w, note, size);
	}
out:
	free(note);
	mdb_txn_abort(txn);
}

struct witness_job {
	node *n;
	const Tern__V1__WitnessRequest *r;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	size_t nproof;
	char *line;
	uint64_t size, witnessed;
	const char *reason;
	int refused; /* the refusal's code; 0 when cosigned */
};

static int witness_apply(MDB_txn *txn, void *arg)
{
	struct witness_job *j = arg;
	tern_witness_req req = {j->r->peer, j->r->checkpoint, j->r->old_size,
	                        (const tern_hash *)j->proof, j->nproof};
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	int rc;

	free(j->line); /* a retried transaction starts over */
	j->line = NULL;
	rc = tern_witness_cosign(txn, &j->n->audit, j->n->id.dir, &req, j->n->origin, j->n->id.sign,
	                         j->n->batch.now, &j->line, &j->size, &j->witnessed, &j->reason);
	j->refused = rc;
	if (rc == TERN_OK || rc == TERN_EEXIST)
		return TERN_OK; /* cosigned, or a routine "prove from here instead" */
	if (rc == TERN_ENOMEM || rc == TERN_EIO)
		return rc;
	/* A checkpoint that contradicts what we cosigned is evidence: keep it. */
	e.kind = TERN__V1__AUDIT_ENTRY__KIND__REJECTED;
	e.at = j->n->batch.now;
	e.peer = j->r->peer;
	e.type = "checkpoint";
	e.reason = (char *)j->reason;
	e.checkpoint = j->r->checkpoint;
	return tern_audit_append(txn, &j->n->audit, &e);
}

static void on_witness_request(node *n, const Tern__V1__WitnessRequest *r)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__WitnessResponse a = TERN__V1__WITNESS_RESPONSE__INIT;
	struct witness_job j = {.n = n, .r = r, .reason = "bad-proof"};
	int rc = TERN_OK;

	if (r->n_proof > TERN_MERKLE_MAX_PROOF) {
		j.refused = TERN_EINVAL;
	} else {
		for (size_t i = 0; i < r->n_proof; i++) {
			if (r->proof[i].len != TERN_HASH_LEN) {
				j.refused = TERN_EINVAL;
				break;
			}
			memcpy(j.proof[i], r->proof[i].data, TERN_HASH_LEN);
		}
		j.nproof = r->n_proof;
	}
	if (j.refused == TERN_OK)
		rc = tern_store_write(n->store, witness_apply, &j);
	if (rc != TERN_OK) {
		log_warnx("witnessing %s's log: %s (%s)", r->peer, tern_strerror(rc),
		          tern_errdetail());
		free(j.line);
		return; /* the owner asks again next round */
	}
	if (j.refused == TERN_OK) {
		n->last_audit = n->batch.now;
		log_debug("cosigned %s's checkpoint of %llu entries", r->peer,
		          (unsigned long long)j.size);
	} else if (j.refused != TERN_EEXIST) {
		log_warnx("refused to cosign %s's checkpoint: %s: %s", r->peer, j.reason,
		          tern_errdetail());
		n->last_audit = n->batch.now;
	}
	a.peer = r->peer;
	a.size = j.size;
	a.cosignature = j.line ? j.line : "";
	a.witnessed_size = j.witnessed;
	a.reason_code = j.refused == TERN_OK ? "" : (char *)j.reason;
	f.body_case = TERN__V1__FRAME__BODY_WITNESS_RESPONSE;
	f.witness_response = &a;
	hop_send(n, &f);
	free(j.line);
}

struct cosig_job {
	node *n;
	const Tern__V1__WitnessResponse *r;
};

static int cosig_apply(MDB_txn *txn, void *arg)
{
	struct cosig_job *j = arg;

	return tern_audit_add_cosignature(txn, &j->n->audit, j->n->id.dir, j->r->peer, j->r->size,
	                                  j->r->cosignature);
}

static void on_witness_response(node *n, const Tern__V1__WitnessResponse *r)
{
	struct witness *w = witness_find(n, r->peer);
	struct cosig_job j = {n, r};
	int rc;

	if (w == NULL)
		return; /* we never asked */
	if (strcmp(r->reason_code, "conflict") == 0) {
		/* It cosigned another size (we restarted, or an answer was lost):
		 * prove from there, once; a second conflict waits for the next round. */
		if (w->size != r->witnessed_size) {
			w->size = r->witnessed_size;
			witness_round(n, r->peer);
		}
		return;
	}
	if (r->reason_code[0]) {
		log_warnx("%s refused to cosign our checkpoint of %llu entries: %s", r->peer,
		          (unsigned long long)r->size, r->reason_code);
		return;
	}
	if ((rc = tern_store_write(n->store, cosig_apply, &j)) != TERN_OK) {
		log_warnx("cosignature from %s not kept: %s (%s)", r->peer, tern_strerror(rc),
		          tern_errdetail());
		return;
	}
	w->size = r->size;
}

/* --- SIGHUP ------------------------------------------------------------------------ */

static void reload(node *n)
{
	uint64_t before = tern_directory_version(n->id.dir);
	char broker_id[TERN_NODE_ID_MAX + 1];

	snprintf(broker_id, sizeof(broker_id), "%s", n->broker->node_id);
	if (tern_daemon_reload_ident(&n->id, TERN_CONFIG_NODE, broker_id, n->store,
	                             tern_store_dbi(n->store, NS_META), &n->audit,
	                             n->m.rollbacks) != TERN_OK)
		return;
	tern_directory_find(n->id.dir, broker_id, &n->broker);
	log_info("reloaded: directory version %llu (was %llu), CRL number %lld",
	         (unsigned long long)tern_directory_version(n->id.dir), (unsigned long long)before,
	         (long long)tern_trust_crl_number(n->id.trust));
	n->last_audit = n->last_event = tern_now_ms();
}

/* --- metrics ----------------------------------------------------------------------- */

static void publish_metrics(node *n)
{
	tern_prom p = {0};
	MDB_txn *txn = NULL;
	json_t *counts = NULL, *v;
	const char *k;
	char labels[96];

	tern_prom_family(&p, "tern_node_sent_total", "counter",
	                 "messages this node signed and queued, by type (receipts included)");
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++) {
		snprintf(labels, sizeof(labels), "type=\"%s\"", t->name);
		tern_prom_sample(&p, "tern_node_sent_total", labels,
		                 (double)n->m.sent[(unsigned)t->type < 8 ? t->type : 0]);
	}
	tern_prom_family(&p, "tern_node_received_total", "counter",
	                 "messages delivered to this node, by type and outcome");
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		for (int o = 0; o < 2; o++) {
			snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", t->name,
			         o ? "refused" : "accepted");
			tern_prom_sample(
			    &p, "tern_node_received_total", labels,
			    (double)n->m.received[(unsigned)t->type < 8 ? t->type : 0][o]);
		}
	tern_prom_family(&p, "tern_node_receipts_total", "counter",
	                 "receipts received for messages this node sent, by outcome");
	tern_prom_sample(&p, "tern_node_receipts_total", "outcome=\"delivered\"",
	                 (double)n->m.receipts[0]);
	tern_prom_sample(&p, "tern_node_receipts_total", "outcome=\"rejected\"",
	                 (double)n->m.receipts[1]);
	{
		uint64_t hits, misses;
		tern_sigcache_stats(n->sigs, &hits, &misses);
		tern_prom_family(
		    &p, "tern_node_batch_roots_total", "counter",
		    "batch-signed envelopes received by how their root's signature was "
		    "checked: verified, or remembered from an envelope of the same batch");
		tern_prom_sample(&p, "tern_node_batch_roots_total", "result=\"verified\"",
		                 (double)misses);
		tern_prom_sample(&p, "tern_node_batch_roots_total", "result=\"remembered\"",
		                 (double)hits);
		tern_sealcache_stats(n->seals, &hits, &misses);
		tern_prom_family(
		    &p, "tern_node_x25519_total", "counter",
		    "X25519 shared secrets for sealing and opening: computed, or reused "
		    "from the seal cache");
		tern_prom_sample(&p, "tern_node_x25519_total", "result=\"computed\"",
		                 (double)misses);
		tern_prom_sample(&p, "tern_node_x25519_total", "result=\"reused\"", (double)hits);
	}
	tern_prom_one(&p, "tern_node_http_unauthorized_total", "counter",
	              "HTTP API requests refused for want of the token (counted every 10 s)",
	              (double)n->m.http_unauthorized);
	tern_prom_family(&p, "tern_node_store_restores_total", "counter",
	                 "stores found older than what they had told (a copy put back): the "
	                 "broker's (its messages are submitted again) or this node's");
	tern_prom_sample(&p, "tern_node_store_restores_total", "store=\"broker\"",
	                 (double)n->m.restores[0]);
	tern_prom_sample(&p, "tern_node_store_restores_total", "store=\"node\"",
	                 (double)n->m.restores[1]);
	tern_prom_one(&p, "tern_node_connected", "gauge", "1 when connected to the broker",
	              n->connected);
	if (tern_store_read_begin(n->store, &txn) == TERN_OK &&
	    node_store_counts(txn, n->store, &counts) == TERN_OK) {
		tern_prom_family(&p, "tern_node_outbox_messages", "gauge",
		                 "messages this node sent, by state");
		json_object_foreach(json_object_get(counts, "outbox"), k, v)
		{
			snprintf(labels, sizeof(labels), "state=\"%s\"", k);
			tern_prom_sample(&p, "tern_node_outbox_messages", labels,
			                 (double)json_integer_value(v));
		}
		tern_prom_one(&p, "tern_node_inbox_messages", "gauge",
		              "accepted messages not yet acknowledged by the agency",
		              (double)json_integer_value(json_object_get(counts, "inbox")));
	}
	json_decref(counts);
	if (txn)
		mdb_txn_abort(txn);
	tern_prom_directory(&p, n->id.dir, tern_trust_crl_number(n->id.trust), n->m.rollbacks);
	if (p.buf) {
		tern_http_publish(n->metrics, "/metrics", 200, TERN_PROM_CTYPE, p.buf, 0);
		tern_http_publish(n->metrics, "/healthz", 200, "text/plain; charset=utf-8", "ok\n",
		                  10000);
		tern_http_publish(
		    n->metrics, "/readyz", n->connected ? 200 : 503, "text/plain; charset=utf-8",
		    n->connected ? "ready\n" : "not connected to the broker\n", 10000);
	}
	tern_prom_free(&p);
}

/* --- HTTP API refusals ---------------------------------------------------------------- */

/* The HTTP server's threads must not write the store: they count requests
 * refused for want of the token, and the loop takes the count every period
 * and writes at most one audit entry and one log line for it, so that a
 * flood of bad requests cannot become a flood of writes. */
#define HTTP_REFUSALS_PERIOD_MS 10000

struct http_refusals {
	node *n;
	uint64_t count;
};

static int http_refusals_apply(MDB_txn *txn, void *arg)
{
	struct http_refusals *r = arg;
	char why[64];

	snprintf(why, sizeof(why), "unauthorized: %llu requests", (unsigned long long)r->count);
	return audit(r->n, txn, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, NULL, "http", NULL,
	             "http-request", NULL, 0, why, NULL, NULL);
}

static void http_refusals(node *n)
{
	struct http_refusals r = {n, 0};

	if (tern_http_take_refusals(node_http_server(n->http), &r.count) != TERN_OK || !r.count)
		return;
	n->m.http_unauthorized += r.count;
	log_warnx("HTTP API: refused %llu requests without the token in the last %d s",
	          (unsigned long long)r.count, HTTP_REFUSALS_PERIOD_MS / 1000);
	if (tern_store_write(n->store, http_refusals_apply, &r) != TERN_OK)
		log_warnx("the HTTP refusals are not in the audit log: %s", tern_errdetail());
}

struct restore_job {
	node *n;
	int kind; /* 0 new broker store, 1 broker store older, 2 this store older */
	const uint8_t *store;
	uint64_t count, had;
	size_t again;
	char why[256];
};

static int restore_apply(MDB_txn *txn, void *arg)
{
	struct restore_job *j = arg;
	int rc;

	if (j->kind == 0)
		return node_store_accepted_reset(txn, j->n->store, j->store);
	if (j->kind == 1) {
		if ((rc = node_store_resubmit_after(txn, j->n->store, j->count, j->n->batch.now,
		                                    &j->again)) != TERN_OK)
			return rc;
		snprintf(
		    j->why, sizeof(j->why),
		    "broker store restored: it holds %llu of this node's acceptances, %llu were "
		    "told; %zu message(s) it no longer holds submitted again",
		    (unsigned long long)j->count, (unsigned long long)j->had, j->again);
	} else {
		if ((rc = node_store_accepted_raise(txn, j->n->store, j->count)) != TERN_OK)
			return rc;
		snprintf(
		    j->why, sizeof(j->why),
		    "this node's store is older than the broker's: the broker accepted %llu of "
		    "its messages, this store knows of %llu; the records of the rest were lost "
		    "with the restore (receipts for them are refused as unknown, by id)",
		    (unsigned long long)j->count, (unsigned long long)j->had);
	}
	return audit(j->n, txn, TERN__V1__AUDIT_ENTRY__KIND__RESTORED, NULL, j->n->broker->node_id,
	             NULL, "store", NULL, 0, j->why, NULL, NULL);
}

/* Compares the broker's store with what this node was told by it. A store
 * put back from an older copy (same identity, fewer of our acceptances) no
 * longer holds what it accepted since: those messages go again, in order,
 * before anything new (the broker and the recipients de-duplicate). */
static void welcome_store(node *n, const Tern__V1__Welcome *w)
{
	struct restore_job j = {n, 0, NULL, w->accepted_count, n->amax, 0, ""};
	static const uint8_t none[16];

	if (w->broker_store.len != 16)
		return; /* a broker from before store identities */
	memcpy(n->bstore, w->broker_store.data, 16);
	j.store = n->bstore;
	if (memcmp(n->astore, n->bstore, 16) != 0) {
		if (memcmp(n->astore, none, 16) != 0)
			log_warnx("broker %s has another store than the one this node knew (not a "
			          "copy of it): its acceptance numbers start afresh",
			          n->broker->node_id);
		if (tern_store_write(n->store, restore_apply, &j) == TERN_OK) {
			memcpy(n->astore, n->bstore, 16);
			n->amax = 0;
		}
		return;
	}
	if (w->accepted_count == n->amax)
		return;
	if (w->accepted_count > n->amax) {
		/* Answers lost with a connection look the same as a store put
		 * back: the last acceptance tells them apart. Known here: only
		 * answers were missed (they come again as it resubmits). */
		MDB_txn *txn;
		json_t *rec = NULL;
		int known = 0;
		if (w->last_accepted == NULL || !tern_uuid_valid(w->last_accepted))
			return; /* a broker that does not say: nothing to conclude */
		if (tern_store_read_begin(n->store, &txn) == TERN_OK) {
			known =
			    node_store_sent_get(txn, n->store, w->last_accepted, &rec) == TERN_OK;
			mdb_txn_abort(txn);
		}
		json_decref(rec);
		if (known)
			return;
	}
	j.kind = w->accepted_count < n->amax ? 1 : 2;
	n->batch.now = tern_now_ms();
	if (tern_store_write(n->store, restore_apply, &j) != TERN_OK) {
		log_warnx(
		    "broker %s's store and this node's disagree (%llu acceptances there, %llu "
		    "here), and the store could not be updated: %s",
		    n->broker->node_id, (unsigned long long)w->accepted_count,
		    (unsigned long long)n->amax, tern_errdetail());
		return;
	}
	log_warnx("%s", j.why);
	n->m.restores[j.kind - 1]++;
	n->amax = w->accepted_count;
}

static void on_dealer(node *n)
{
	for (int64_t i = 0; i < n->batch_size; i++) {
		zmq_msg_t msg;
		Tern__V1__Frame *f = NULL;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, n->dealer, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			return;
		}
		n->last_rx = tern_now_ms();
		if (tern_hop_decode(zmq_msg_data(&msg), zmq_msg_size(&msg),
		                    (size_t)n->max_msg + 4096, &f) != TERN_OK) {
			log_warnx("undecodable frame from the broker: %s", tern_errdetail());
			zmq_msg_close(&msg);
			continue;
		}
		zmq_msg_close(&msg);
		switch (f->body_case) {
		case TERN__V1__FRAME__BODY_WELCOME:
			if (f->welcome->session != n->session)
				break; /* answers an earlier Hello */
			if (!n->connected)
				log_info("connected to broker %s", f->welcome->broker_id);
			/* The old session's answers go in before the store is compared. */
			batch_commit(n);
			welcome_store(n, f->welcome);
			n->connected = 1;
			/* Every outbox entry without an answer goes again, in order. */
			n->submit_next = 0;
			n->inflight = 0;
			n->sub_index = 0;
			break;
		case TERN__V1__FRAME__BODY_RESULT: {
			struct batch *b = &n->batch;
			if (TERN_GROW(b->results, b->nresults, b->capresults))
				break;
			struct result *r = &b->results[b->nresults++];
			snprintf(r->msgid, sizeof(r->msgid), "%s", f->result->message_id);
			r->accepted = f->result->accepted;
			r->n = f->result->accepted_n;
			r->current = f->result->session == n->session;
			snprintf(r->code, sizeof(r->code), "%s", f->result->reason_code);
			snprintf(r->text, sizeof(r->text), "%s", f->result->reason_text);
			break;
		}
		case TERN__V1__FRAME__BODY_DELIVER:
			on_deliver(n, f->deliver);
			break;
		case TERN__V1__FRAME__BODY_REFUSED:
			if (f->refused->session != 0 && f->refused->session != n->session) {
				break; /* about a submission of an earlier session */
			} else if (strcmp(f->refused->reason_code, "hello-required") == 0 ||
			           strcmp(f->refused->reason_code, "out-of-sequence") == 0) {
				session_restart(n, f->refused->reason_text);
			} else {
				log_warnx("broker refused a frame: %s: %s", f->refused->reason_code,
				          f->refused->reason_text);
			}
			break;
		case TERN__V1__FRAME__BODY_PING: {
			Tern__V1__Frame r = TERN__V1__FRAME__INIT;
			Tern__V1__Pong pong = TERN__V1__PONG__INIT;
			pong.at = f->ping->at;
			r.body_case = TERN__V1__FRAME__BODY_PONG;
			r.pong = &pong;
			hop_send(n, &r);
			break;
		}
		case TERN__V1__FRAME__BODY_WITNESS_REQUEST:
			on_witness_request(n, f->witness_request);
			break;
		case TERN__V1__FRAME__BODY_WITNESS_RESPONSE:
			on_witness_response(n, f->witness_response);
			break;
		default:
			break;
		}
		tern_pb_free((ProtobufCMessage **)&f);
	}
}

/* A failed CurveZMQ handshake: stop libzmq's own quick retries (it would
 * also give up for good after a ZAP refusal), come back after the backoff,
 * and say so at once, then at most once a minute. */
static void handshake_failed(node *n, uint16_t event, uint32_t value)
{
	const char *ep = tern_config_get(n->id.cfg, "broker", "endpoint");
	int64_t now = tern_now_ms(), wait;
	int first = !n->hs_log.written;
	uint64_t held;
	char why[160];

	if (n->reconnect_at)
		return; /* a late event of the connection already dropped */
	zmq_disconnect(n->dealer, ep);
	wait = tern_backoff_next(&n->hs_backoff);
	n->reconnect_at = now + wait;
	if (!tern_lograte_due(&n->hs_log, now, &held))
		return;
	if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		snprintf(why, sizeof(why),
		         "ZAP status %u: is this node in the broker's directory, and not revoked "
		         "or expired?",
		         (unsigned)value);
	else
		snprintf(why, sizeof(why),
		         "does the broker at %s hold the CURVE key this node's directory lists "
		         "for it?",
		         ep);
	if (first)
		log_warnx("the broker refused this node's CURVE handshake (%s); next attempt in "
		          "%.1f s, each wait doubling up to %lld s; reported once a minute while "
		          "it lasts",
		          why, (double)wait / 1000, (long long)(n->hs_backoff.max_ms / 1000));
	else
		log_warnx("the broker refused this node's CURVE handshake again, %llu time(s) "
		          "since the last report (%s); next attempt in %.1f s",
		          (unsigned long long)held + 1, why, (double)wait / 1000);
}

static void on_monitor(node *n)
{
	for (;;) {
		zmq_msg_t ev, addr;
		uint16_t event;
		uint32_t value = 0;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, n->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		memcpy(&event, zmq_msg_data(&ev), sizeof(event));
		if (zmq_msg_size(&ev) >= sizeof(event) + sizeof(value))
			memcpy(&value, (const char *)zmq_msg_data(&ev) + sizeof(event),
			       sizeof(value));
		zmq_msg_close(&ev);
		zmq_msg_init(&addr);
		zmq_msg_recv(&addr, n->monitor, 0);
		zmq_msg_close(&addr);
		if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			uint64_t held;
			tern_backoff_reset(&n->hs_backoff);
			tern_lograte_reset(&n->hs_log, &held);
			if (held)
				log_info("connected to the broker; %llu refused handshake(s) since "
				         "the last report",
				         (unsigned long long)held);
			send_hello(n);
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			if (n->connected)
				log_warnx("lost the broker connection; reconnecting");
			n->connected = 0;
		} else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
		           event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
		           event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
			handshake_failed(n, event, value);
		}
	}
}

/* --- the local API ------------------------------------------------------------------ */

static json_t *message_json(node *n, MDB_txn *txn, const char *msgid)
{
	json_t *rec = NULL, *hdr = NULL, *bodyj = NULL, *out = NULL;
	tern_verify_opts o = {
	    .max_size = (size_t)n->max_msg, .future_skew_only = 1, .max_skew_ms = INT64_MAX / 4};
	tern_envelope *env = NULL;
	ProtobufCMessage *body = NULL;
	uint8_t *buf = NULL, *plain = NULL;
	size_t len, plen = 0;
	const tern_msgtype *t;
	int rc;

	if (node_store_received(txn, n->store, msgid, &rec) != TERN_OK ||
	    !json_is_true(json_object_get(rec, "accepted")))
		goto out;
	if (node_store_received_envelope(txn, n->store, msgid, &buf, &len) != TERN_OK)
		goto out;
	/* Re-verified on the way out: the store is not trusted more than the wire. */
	if ((rc = tern_envelope_verify(buf, len, n->id.dir, &o, &env)) != TERN_OK ||
	    tern_envelope_open_cached(env, n->id.id, n->id.seal, n->seals, &plain, &plen) !=
	        TERN_OK)
		goto out;
	t = tern_msgtype_by_type(tern_envelope_header(env)->type);
	if (tern_pb_unpack(t->desc, plain, plen, plen, &body) != TERN_OK ||
	    tern_json_encode(&tern_envelope_header(env)->base, &hdr) != TERN_OK ||
	    tern_json_encode(body, &bodyj) != TERN_OK)
		goto out;
	out = json_pack("{s:o, s:o, s:O, s:s}", "header", hdr, "body", bodyj, "received_at",
	                json_object_get(rec, "received_at"), "type", t->name);
	hdr = bodyj = NULL;
out:
	json_decref(hdr);
	json_decref(bodyj);
	tern_pb_free(&body);
	if (plain)
		tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&env);
	free(buf);
	json_decref(rec);
	return out;
}

static int first_visit(const char *msgid, void *arg)
{
	snprintf(arg, 37, "%s", msgid);
	return 1;
}

static json_t *inbox_next(node *n)
{
	MDB_txn *txn;
	char id[37] = "";
	json_t *m = NULL;

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return NULL;
	node_store_inbox_scan(txn, n->store, first_visit, id);
	if (id[0])
		m = message_json(n, txn, id);
	mdb_txn_abort(txn);
	return m;
}

static int list_visit(const char *msgid, void *arg)
{
	json_t **ctx = arg; /* [0] array, [1] unused */
	json_array_append_new(ctx[0], json_string(msgid));
	return 0;
}

static json_t *api_read_op(node *n, const char *op, json_t *req)
{
	MDB_txn *txn;
	json_t *res = NULL, *rec = NULL;
	const char *id = json_string_value(json_object_get(req, "message_id"));

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return tern_api_error(TERN_EIO, "cannot read the store: %s", tern_errdetail());
	if (strcmp(op, "status") == 0) {
		json_t *rc2, *arr = json_array();
		const char *k;
		if (id == NULL || node_store_sent_get(txn, n->store, id, &rec) != TERN_OK) {
			json_decref(arr);
			res = tern_api_error(TERN_ENOENT, "no message %s was sent from this node",
			                     id ? id : "(none given)");
			goto out;
		}
		json_object_foreach(json_object_get(rec, "recipients"), k, rc2)
		{
			json_t *r = json_deep_copy(rc2);
			json_object_set_new(r, "node_id", json_string(k));
			json_array_append_new(arr, r);
		}
		res = json_pack("{s:b, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:o}", "ok", 1,
		                "message_id", id, "type", json_object_get(rec, "type"), "case_id",
		                json_object_get(rec, "case_id"), "created_at",
		                json_object_get(rec, "created_at"), "state",
		                json_object_get(rec, "state"), "reason_code",
		                json_object_get(rec, "reason_code"), "reason_text",
		                json_object_get(rec, "reason_text"), "recipients", arr);
	} else if (strcmp(op, "inbox.list") == 0) {
		json_t *ids = json_array(), *ctx[2] = {ids, NULL}, *msgs = json_array(), *v;
		size_t i;
		node_store_inbox_scan(txn, n->store, list_visit, ctx);
		json_array_foreach(ids, i, v)
		{
			json_t *r = NULL;
			if (node_store_received(txn, n->store, json_string_value(v), &r) != TERN_OK)
				continue;
			json_array_append_new(
			    msgs, json_pack("{s:O, s:O, s:O, s:O, s:O}", "message_id", v, "sender",
			                    json_object_get(r, "sender"), "type",
			                    json_object_get(r, "type"), "case_id",
			                    json_object_get(r, "case_id"), "received_at",
			                    json_object_get(r, "received_at")));
			json_decref(r);
		}
		json_decref(ids);
		res = json_pack("{s:b, s:o}", "ok", 1, "messages", msgs);
	} else if (strcmp(op, "inbox.show") == 0) {
		json_t *m = id ? message_json(n, txn, id) : NULL;
		res = m ? json_pack("{s:b, s:o}", "ok", 1, "message", m)
		        : tern_api_error(TERN_ENOENT, "no message %s in this node's inbox",
		                         id ? id : "(none given)");
	} else if (strcmp(op, "node.info") == 0) {
		json_t *counts = NULL;
		node_store_counts(txn, n->store, &counts);
		res = json_pack("{s:b, s:s, s:s, s:b, s:O?, s:O?}", "ok", 1, "node_id", n->id.id,
		                "broker_id", n->broker->node_id, "connected", n->connected,
		                "outbox", json_object_get(counts, "outbox"), "inbox",
		                json_object_get(counts, "inbox"));
		json_decref(counts);
	}
out:
	json_decref(rec);
	mdb_txn_abort(txn);
	return res;
}

/* Handles "send": everything but the outbox write, which the batch does. */
static json_t *api_send(node *n, json_t *req, int ci)
{
	const tern_msgtype *t =
	    tern_msgtype_by_name(json_string_value(json_object_get(req, "type"))
	                             ? json_string_value(json_object_get(req, "type"))
	                             : "");
	json_t *to = json_object_get(req, "to"), *v;
	json_int_t wait_ms = json_integer_value(json_object_get(req, "wait_ms"));
	const char *rcpts[64], *reply_to = json_string_value(json_object_get(req, "in_reply_to"));
	const char *client_ref = json_string_value(json_object_get(req, "client_ref"));
	json_int_t ttl = json_integer_value(json_object_get(req, "ttl_seconds"));
	ProtobufCMessage *body = NULL;
	tern_violations viol;
	char err[256];
	uint8_t *packed = NULL;
	size_t np = 0, plen, i;
	struct out o, *slot;
	json_t *res = NULL;
	int rc;

	if (t == NULL || t->type == TERN__V1__MESSAGE_TYPE__RECEIPT)
		return tern_api_error(TERN_EINVAL,
		                      "type must be case-referral, acceptance-decision "
		                      "or travel-confirmation");
	if (!json_is_array(to) || json_array_size(to) == 0 || json_array_size(to) > 64)
		return tern_api_error(TERN_EINVAL, "'to' must list 1 to 64 node ids");
	json_array_foreach(to, i, v)
	{
		const tern_member *m;
		const char *r = json_string_value(v);
		if (r == NULL || tern_directory_find(n->id.dir, r, &m) != TERN_OK ||
		    (m->roles & TERN_ROLE_BROKER)) {
			res = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unknown-recipient",
			                "message",
			                "a recipient is not a member node of the federation");
			return res;
		}
		if (m->revoked) /* its sealing key may be in other hands */
			return json_pack("{s:b, s:s, s:s+}", "ok", 0, "error", "recipient-revoked",
			                 "message", r,
			                 " is revoked by the federation CRL: nothing is "
			                 "sealed to it");
		rcpts[np++] = r;
	}
	if (client_ref) {
		MDB_txn *txn;
		char existing[37];
		if (strlen(client_ref) > 128)
			return tern_api_error(TERN_EINVAL,
			                      "client_ref is longer than 128 characters");
		if (tern_store_read_begin(n->store, &txn) == TERN_OK) {
			rc = node_store_client_ref(txn, n->store, client_ref, existing);
			mdb_txn_abort(txn);
			if (rc == TERN_OK)
				return json_pack("{s:b, s:s, s:b}", "ok", 1, "message_id", existing,
				                 "duplicate", 1);
		}
		for (size_t k = 0; k < n->batch.nouts; k++)
			if (strcmp(n->batch.outs[k].client_ref, client_ref) == 0)
				return tern_api_error(TERN_EEXIST,
				                      "a send with this client_ref is in progress");
	}
	rc = tern_json_decode(t->desc, json_object_get(req, "body"), &body, err, sizeof(err));
	if (rc != TERN_OK)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "invalid-body", "message",
		                 err);
	if (tern_validate(body, tern_now_ms(), &viol) != TERN_OK) {
		json_t *arr = json_array();
		for (size_t k = 0; k < viol.count; k++)
			json_array_append_new(arr, json_pack("{s:s, s:s}", "path", viol.v[k].path,
			                                     "rule", viol.v[k].rule));
		res = json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "error", "invalid-body", "message",
		                "the body breaks validation rules", "violations", arr);
		goto out;
	}
	if ((rc = tern_pb_pack(body, &packed, &plen)) != TERN_OK) {
		res = tern_api_error(rc, "cannot encode the body");
		goto out;
	}
	rc = make_out(n, t, rcpts, np, field_string(body, "case_id"), reply_to,
	              ttl > 0 ? tern_now_ms() + (int64_t)ttl * 1000 : 0, packed, plen, &o);
	if (rc != TERN_OK) {
		res = tern_api_error(rc, "cannot seal: %s", tern_errdetail());
		goto out;
	}
	if (t->type == TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION) {
		snprintf(o.outcome, sizeof(o.outcome), "%s",
		         protobuf_c_enum_descriptor_get_value(
		             &tern__v1__acceptance_decision__outcome__descriptor,
		             ((Tern__V1__AcceptanceDecision *)body)->outcome)
		             ->name);
		snprintf(o.ref, sizeof(o.ref), "%s", field_string(body, "referral_id"));
	} else if (t->type == TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION) {
		snprintf(o.ref, sizeof(o.ref), "%s", field_string(body, "decision_id"));
	}
	if (client_ref)
		snprintf(o.client_ref, sizeof(o.client_ref), "%s", client_ref);
	o.client = ci;
	o.wait_ms = wait_ms <= 0 ? 0 : wait_ms > 3600000 ? 3600000 : wait_ms;
	if ((slot = batch_out(n)) == NULL) {
		out_free(&o);
		res = tern_api_error(TERN_ENOMEM, "out of memory");
		goto out;
	}
	*slot = o;
out:
	free(packed);
	if (body)
		protobuf_c_message_free_unpacked(body, NULL);
	return res; /* NULL: parked until the commit */
}

/* Handles "inbox.ack": checks the message is in the inbox; the removal is
 * part of the next commit. */
static json_t *api_ack(node *n, json_t *req, int ci)
{
	const char *id = json_string_value(json_object_get(req, "message_id"));
	MDB_txn *txn;
	json_t *rec = NULL;
	int known = 0;

	if (id == NULL || !tern_uuid_valid(id) || n->batch.nacks == MAX_CLIENTS)
		return tern_api_error(TERN_EINVAL, "give the message_id to acknowledge");
	if (tern_store_read_begin(n->store, &txn) == TERN_OK) {
		known = node_store_received(txn, n->store, id, &rec) == TERN_OK &&
		        json_is_true(json_object_get(rec, "accepted"));
		mdb_txn_abort(txn);
		json_decref(rec);
	}
	if (!known)
		return tern_api_error(TERN_ENOENT, "no message %s in this inbox", id);
	snprintf(n->batch.acks[n->batch.nacks].msgid, 37, "%s", id);
	n->batch.acks[n->batch.nacks++].client = ci;
	return NULL; /* parked until the commit */
}

/* The operations, as the API server (api_server.h) calls them. */
static json_t *h_send(void *arg, json_t *req, int client)
{
	return api_send(arg, req, client);
}

static json_t *h_ack(void *arg, json_t *req, int client)
{
	return api_ack(arg, req, client);
}

static json_t *h_read(void *arg, const char *op, json_t *req)
{
	return api_read_op(arg, op, req);
}

static json_t *h_inbox_next(void *arg)
{
	return inbox_next(arg);
}

/* --- life cycle -------------------------------------------------------------------- */

static int start_http(node *n);

int node_open(const char *conf, node **out)
{
	node *n;
	MDB_txn *txn;
	int rc, v;
	int64_t ivl;
	const char *dom = TERN_HOP_ZAP_DOMAIN;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return TERN_ENOMEM;
	if ((rc = tern_ident_load_start(conf, TERN_CONFIG_NODE, stderr, &n->id)) != TERN_OK) {
		free(n);
		return rc;
	}
	log_init("tern-node", (int)tern_config_get_int(n->id.cfg, "node", "log_level"));
	if ((rc = tern_sealcache_new(0, 0, &n->seals)) != TERN_OK ||
	    (rc = tern_sigcache_new(0, &n->sigs)) != TERN_OK)
		goto fail;
	tern_directory_find(n->id.dir, tern_config_get(n->id.cfg, "broker", "id"), &n->broker);
	n->max_msg = tern_config_get_int(n->id.cfg, "limits", "max_message_size");
	n->batch_size = tern_config_get_int(n->id.cfg, "delivery", "batch_size");
	n->credit = tern_config_get_int(n->id.cfg, "delivery", "credit");
	n->window = tern_config_get_int(n->id.cfg, "delivery", "submit_window");
	n->hb_ivl_ms = tern_config_get_int(n->id.cfg, "delivery", "heartbeat_interval") * 1000;
	n->hb_timeout_ms = tern_config_get_int(n->id.cfg, "delivery", "heartbeat_timeout") * 1000;
	n->skew_ms = tern_config_get_int(n->id.cfg, "federation", "max_clock_skew") * 1000;
	n->cp_ivl_ms = tern_config_get_int(n->id.cfg, "audit", "checkpoint_interval") * 1000;
	n->idle_ivl_ms = tern_config_get_int(n->id.cfg, "audit", "idle_checkpoint_interval") * 1000;
	tern_backoff_init(&n->hs_backoff, 100,
	                  tern_config_get_int(n->id.cfg, "delivery", "reconnect_max") * 1000);
	tern_lograte_init(&n->hs_log, 60 * 1000);

	if ((rc = node_store_open(tern_config_get(n->id.cfg, "node", "data_dir"), 0, &n->store)) !=
	    TERN_OK) {
		fprintf(stderr, "tern-node: cannot open the store in %s: %s (%s)\n",
		        tern_config_get(n->id.cfg, "node", "data_dir"), tern_strerror(rc),
		        tern_errdetail());
		goto fail;
	}
	node_store_audit_dbs(n->store, &n->audit);
	snprintf(n->origin, sizeof(n->origin), "tern/%s/%s", tern_directory_federation(n->id.dir),
	         n->id.id);
	if ((rc = tern_daemon_trustmark_start(n->store, tern_store_dbi(n->store, NS_META),
	                                      &n->audit, &n->id, "tern-node")) != TERN_OK)
		goto fail;
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		goto fail;
	node_store_delivered_get(txn, n->store, n->dstore, n->epoch, &n->delivered);
	memcpy(n->h_store, n->dstore, 16);
	memcpy(n->h_epoch, n->epoch, 16);
	n->h_upto = n->delivered;
	node_store_accepted_get(txn, n->store, n->astore, &n->amax);
	mdb_txn_abort(txn);

	{
		api_handlers h = {n, h_send, h_ack, h_read, h_inbox_next};
		if ((rc = api_server_open(tern_config_get(n->id.cfg, "node", "api_socket"), &h,
		                          n->store, &n->api)) != TERN_OK) {
			fprintf(stderr, "tern-node: %s\n", tern_errdetail());
			goto fail;
		}
	}
	n->ctx = zmq_ctx_new();
	n->dealer = zmq_socket(n->ctx, ZMQ_DEALER);
	ivl = 100;
	v = (int)ivl;
	if ((rc = tern_hop_sockopts(n->dealer, (int)(n->hb_ivl_ms / 1000),
	                            (int)(n->hb_timeout_ms / 1000), n->max_msg + 4096)) !=
	        TERN_OK ||
	    zmq_setsockopt(n->dealer, ZMQ_RECONNECT_IVL, &v, sizeof(v)) != 0 ||
	    (v = (int)tern_config_get_int(n->id.cfg, "delivery", "reconnect_max") * 1000,
	     zmq_setsockopt(n->dealer, ZMQ_RECONNECT_IVL_MAX, &v, sizeof(v))) != 0 ||
	    zmq_setsockopt(n->dealer, ZMQ_CURVE_SERVERKEY, n->broker->curve_public, 32) != 0 ||
	    zmq_setsockopt(n->dealer, ZMQ_CURVE_PUBLICKEY, tern_curvekey_public(n->id.curve), 32) !=
	        0 ||
	    zmq_setsockopt(n->dealer, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(n->id.curve), 32) !=
	        0 ||
	    zmq_setsockopt(n->dealer, ZMQ_ZAP_DOMAIN, dom, strlen(dom)) != 0) {
		fprintf(stderr, "tern-node: socket options: %s\n", zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = tern_zmon_attach(n->ctx, n->dealer, MONITOR_ENDPOINT,
	                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
	                           &n->monitor)) != TERN_OK) {
		fprintf(stderr, "tern-node: %s\n", tern_errdetail());
		goto fail;
	}
	if (zmq_connect(n->dealer, tern_config_get(n->id.cfg, "broker", "endpoint")) != 0) {
		fprintf(stderr, "tern-node: cannot connect to %s: %s\n",
		        tern_config_get(n->id.cfg, "broker", "endpoint"), zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = start_http(n)) != TERN_OK)
		goto fail;
	*out = n;
	return TERN_OK;
fail:
	node_close(&n);
	return rc ? rc : TERN_EIO;
}

/* The loopback HTTP servers: metrics, and the API (with its token). The
 * ports and the token were checked at the start (tern_ident_load_start). */
static int start_http(node *n)
{
	int64_t mport = tern_config_get_int(n->id.cfg, "metrics", "port");
	int64_t hport = tern_config_get_int(n->id.cfg, "http", "port");
	char *token = NULL;
	size_t tl = 0;
	int rc;

	if (mport > 0 && (rc = tern_http_start((uint16_t)mport, NULL, &n->metrics)) != TERN_OK) {
		fprintf(stderr, "tern-node: metrics: %s\n", tern_errdetail());
		return rc;
	}
	if (hport <= 0)
		return TERN_OK;
	if ((rc = tern_token_load(tern_config_get(n->id.cfg, "http", "token_file"), &token, &tl)) !=
	    TERN_OK) {
		fprintf(stderr, "tern-node: the HTTP API needs its token: %s\n", tern_errdetail());
		return rc;
	}
	rc = node_http_start((uint16_t)hport, tern_config_get(n->id.cfg, "node", "api_socket"),
	                     token, &n->http);
	sodium_memzero(token, tl);
	free(token);
	if (rc != TERN_OK)
		fprintf(stderr, "tern-node: HTTP API: %s\n", tern_errdetail());
	return rc;
}

void node_close(node **np)
{
	node *n;

	if (np == NULL || (n = *np) == NULL)
		return;
	batch_reset(n);
	free(n->batch.outs);
	free(n->batch.dins);
	free(n->batch.results);
	api_server_close(&n->api);
	/* The HTTP workers wait on the API socket (a long poll, up to a
	 * minute): closed above, it answers them at once, and the server can
	 * stop without waiting for them. */
	node_http_stop(&n->http);
	tern_http_stop(&n->metrics);
	/* The monitor stops before its reader closes (zmon.h: a stop that
	 * never ended). */
	tern_zmon_detach(n->dealer, &n->monitor);
	if (n->dealer)
		zmq_close(n->dealer);
	if (n->ctx)
		zmq_ctx_term(n->ctx);
	tern_store_close(&n->store);
	tern_sealcache_free(&n->seals);
	tern_sigcache_free(&n->sigs);
	tern_ident_free(&n->id);
	free(n);
	*np = NULL;
}

int node_run(node *n, volatile sig_atomic_t *stop)
{
	log_info("node %s started; broker %s at %s", n->id.id, n->broker->node_id,
	         tern_config_get(n->id.cfg, "broker", "endpoint"));
	n->last_rx = tern_now_ms();
	while (!*stop) {
		/* The API's sockets are polled with the broker's: no client can hold
		 * the loop (api_server.h). */
		zmq_pollitem_t items[2 + API_SERVER_POLL_MAX] = {{n->dealer, 0, ZMQ_POLLIN, 0},
		                                                 {n->monitor, 0, ZMQ_POLLIN, 0}};
		size_t napi = api_server_pollitems(n->api, items + 2, API_SERVER_POLL_MAX);
		int64_t now;
		int round;
		int rc = zmq_poll(items, 2 + (int)napi, 50);

		if (rc < 0 && errno != EINTR) {
			log_warn("zmq_poll");
			break;
		}
		n->batch.now = tern_now_ms();
		if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
			on_monitor(n);
		if (n->reconnect_at && n->batch.now >= n->reconnect_at) {
			/* With the broker's key as the directory now says (a SIGHUP may
			 * have brought its new one): it applies to new connections. */
			n->reconnect_at = 0;
			if (zmq_setsockopt(n->dealer, ZMQ_CURVE_SERVERKEY, n->broker->curve_public,
			                   32) != 0 ||
			    zmq_connect(n->dealer,
			                tern_config_get(n->id.cfg, "broker", "endpoint")) != 0)
				log_warnx("cannot connect to the broker again: %s",
				          zmq_strerror(errno));
		}
		if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
			on_dealer(n);
		api_server_serve(n->api, items + 2, napi, rc > 0, tern_now_ms());
		now = tern_now_ms();
		n->batch.now = now;
		/* Before the checkpoint below, which is to sign its entry. */
		if (n->http && now >= n->next_http_refusals) {
			http_refusals(n);
			n->next_http_refusals = now + HTTP_REFUSALS_PERIOD_MS;
		}
		/* Checkpoints every checkpoint_interval while the log grows, and every
		 * idle_checkpoint_interval when it does not: an idle log must still
		 * show, by fresh cosignatures, that it was not truncated. */
		if (now - n->last_checkpoint >= n->idle_ivl_ms)
			n->batch.checkpoint = 2;
		else if (now - n->last_checkpoint >= n->cp_ivl_ms &&
		         n->last_audit > n->last_checkpoint)
			n->batch.checkpoint = 1;
		if (n->batch.checkpoint)
			n->last_checkpoint = now;
		round = n->batch.checkpoint == 2 ||
		        (n->batch.checkpoint && n->last_event > n->last_round);
		batch_commit(n);
		/* An idle node must not keep its ephemeral sealing key past its
		 * lifetime waiting for the next message. */
		tern_sealcache_expire(n->seals, now);
		/* Witnessing follows checkpoints of real events, and the idle ones;
		 * not the ones that only cover cosignatures, or peers would keep
		 * cosigning each other's cosignatures forever. */
		if (round && n->connected) {
			n->last_round = now;
			witness_round(n, NULL);
		}
		api_server_serve_waiters(n->api, now);
		submit_pump(n);
		if (now >= n->next_expiry_check) {
			/* At start and hourly: an expiry must not surprise anyone. */
			tern_expiry_warn(n->id.dir, n->id.id, now / 1000);
			n->next_expiry_check = now + 3600 * 1000;
		}
		if (tern_daemon_reload) {
			tern_daemon_reload = 0;
			reload(n);
		}
		if (n->metrics && now >= n->next_metrics) {
			publish_metrics(n);
			n->next_metrics = now + 2000;
		}
		if (n->connected && now - n->last_tx > n->hb_ivl_ms) {
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__Ping ping = TERN__V1__PING__INIT;
			ping.at = now;
			f.body_case = TERN__V1__FRAME__BODY_PING;
			f.ping = &ping;
			hop_send(n, &f);
		}
		if (n->connected && now - n->last_rx > n->hb_timeout_ms) {
			log_warnx("broker silent for %lld ms; saying Hello again",
			          (long long)(now - n->last_rx));
			n->last_rx = now;
			send_hello(n);
		} else if (!n->connected && now - n->hello_at > n->hb_timeout_ms) {
			/* The Hello or its Welcome was lost with a connection. */
			send_hello(n);
		}
	}
	/* Sign what the log holds now, so an export after a clean stop covers it. */
	n->batch.checkpoint = 1;
	batch_commit(n);
	log_info("node %s stopped", n->id.id);
	return TERN_OK;
}

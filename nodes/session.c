/* The node's session with its broker (docs/protocol.md): Hello and
 * Welcome, the frames the broker sends (dispatched to submit.c, deliver.c
 * and witnessing.c), heartbeats, the socket monitor, refused CurveZMQ
 * handshakes, and comparing the broker's store with what this node was told
 * (a store put back from an older copy).
 *
 * It may touch the session fields of struct node (connected, epoch, session,
 * hs_backoff, ...) and the dealer and monitor sockets; it adds submission
 * results to the batch through submit.c and writes the store itself only
 * for a restored store (restore_apply).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include <tern/config.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "pbuf.h"
#include "util.h"

/* Chunk frames taken from the bulk lane per turn of the loop: each costs a
 * megabyte's checking and writing, and the main connection's frames must
 * not wait behind many. */
#define BULK_FRAMES_PER_TURN 2
/* How long transfers wait for the bulk lane after a Welcome before they go
 * on over the main connection (a broker without lanes never answers). */
#define BULK_WAIT_MS 2000

int node_hop_send(node *n, Tern__V1__Frame *f)
{
	int rc = tern_hop_send(n->dealer, NULL, 0, f, ZMQ_DONTWAIT);

	if (rc == TERN_OK)
		n->last_tx = tern_now_ms();
	return rc;
}

void node_session_bye(node *n)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Bye bye = TERN__V1__BYE__INIT;

	if (!n->connected)
		return;
	f.body_case = TERN__V1__FRAME__BODY_BYE;
	f.bye = &bye;
	/* Best effort: a broker that does not hear it drops the route at
	 * its heartbeat timeout, as for a crash. */
	(void)node_hop_send(n, &f);
}

int node_bulk_send(node *n, Tern__V1__Frame *f)
{
	/* A lane that cannot take it now: the main connection does. */
	if (n->bulk_ready && tern_hop_send(n->bulk, NULL, 0, f, ZMQ_DONTWAIT) == TERN_OK)
		return TERN_OK;
	return node_hop_send(n, f);
}

/* Asks the broker to take the bulk connection into this session. */
static void send_bulk_hello(node *n)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__BulkHello h = TERN__V1__BULK_HELLO__INIT;

	h.node_id = (char *)n->id.id;
	h.session = n->session;
	n->bulk_ready = 0;
	n->bulk_hello_at = tern_now_ms();
	f.body_case = TERN__V1__FRAME__BODY_BULK_HELLO;
	f.bulk_hello = &h;
	(void)tern_hop_send(n->bulk, NULL, 0, &f, ZMQ_DONTWAIT);
}

/* Transfers go on from where the broker stands (each asks it). */
static void xfer_start(node *n)
{
	n->xfer_started = 1;
	node_xout_session(n);
	node_xin_session(n);
}

void node_send_hello(node *n)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Hello h = TERN__V1__HELLO__INIT;

	h.node_id = (char *)n->id.id;
	h.software = "tern-node 0.1.0";
	h.credit = (uint32_t)n->credit;
	h.deliver_batch = NODE_DELIVER_BATCH;
	h.result_batch = NODE_RESULT_BATCH;
	h.broker_epoch.data = n->h_epoch;
	h.broker_epoch.len = 16;
	h.broker_store.data = n->h_store;
	h.broker_store.len = 16;
	h.delivered_upto = n->h_upto;
	do
		randombytes_buf(&n->session, sizeof(n->session));
	while (n->session == 0);
	h.session = n->session;
	h.instance = n->instance;
	/* Nothing is submitted until this Hello's Welcome: submissions sent in
	 * between could reach the broker ahead of older ones still unanswered. */
	n->connected = 0;
	n->hello_at = tern_now_ms();
	f.body_case = TERN__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	node_hop_send(n, &f);
}

/* The broker could not take a submission of the current session in order:
 * start a new session, which resubmits everything unanswered, oldest first. */
static void session_restart(node *n, const char *why)
{
	if (!n->connected)
		return; /* a Hello is already out; its Welcome starts the new session */
	log_info("saying Hello again: %s", why);
	node_send_hello(n);
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
	return node_audit(j->n, txn, TERN__V1__AUDIT_ENTRY__KIND__RESTORED, NULL,
	                  j->n->broker->node_id, NULL, "store", NULL, 0, j->why, NULL, NULL);
}

/* Compares the broker's store with what this node was told by it. A store
 * put back from an older copy (same identity, fewer of our acceptances) no
 * longer holds what it accepted since: those messages go again, in order,
 * before anything new (the broker and the recipients de-duplicate). Fails
 * when that could not be written: the node must not go on submitting, or
 * the broker's new acceptance numbers would overwrite, in its index, those
 * of the messages it has to send again, which would then never go. */
static int welcome_store(node *n, const Tern__V1__Welcome *w)
{
	struct restore_job j = {n, 0, NULL, w->accepted_count, n->amax, 0, ""};
	static const uint8_t none[16];
	int rc;

	if (w->broker_store.len != 16)
		return TERN_OK; /* a broker from before store identities */
	memcpy(n->bstore, w->broker_store.data, 16);
	j.store = n->bstore;
	if (memcmp(n->astore, n->bstore, 16) != 0) {
		if (memcmp(n->astore, none, 16) != 0)
			log_warnx("broker %s has another store than the one this node knew (not a "
			          "copy of it): its acceptance numbers start afresh",
			          n->broker->node_id);
		if ((rc = tern_store_write(n->store, restore_apply, &j)) != TERN_OK) {
			log_warnx("broker %s's store is new to this node, and the store could not "
			          "be updated: %s",
			          n->broker->node_id, tern_errdetail());
			return rc;
		}
		memcpy(n->astore, n->bstore, 16);
		n->amax = 0;
		return TERN_OK;
	}
	if (w->accepted_count == n->amax)
		return TERN_OK;
	if (w->accepted_count > n->amax) {
		/* Answers lost with a connection look the same as a store put
		 * back: the last acceptance tells them apart. Known here: only
		 * answers were missed (they come again as it resubmits). */
		MDB_txn *txn;
		json_t *rec = NULL;
		if (w->last_accepted == NULL || !tern_uuid_valid(w->last_accepted))
			return TERN_OK; /* a broker that does not say: nothing to conclude */
		if ((rc = tern_store_read_begin(n->store, &txn)) == TERN_OK) {
			rc = node_store_sent_get(txn, n->store, w->last_accepted, &rec);
			mdb_txn_abort(txn);
		}
		json_decref(rec);
		/* Known (a damaged record is there too): only answers were missed.
		 * Not read (no memory, every reader busy) says nothing: taken as
		 * unknown, it would record this store as older than the broker's.
		 * The next Welcome compares again. */
		if (rc == TERN_OK || rc == TERN_EMALFORMED)
			return TERN_OK;
		if (rc != TERN_ENOENT) {
			log_warnx(
			    "broker %s has more of this node's acceptances than it knows (%llu, "
			    "%llu here), and the record of the last could not be read: %s",
			    n->broker->node_id, (unsigned long long)w->accepted_count,
			    (unsigned long long)n->amax, tern_errdetail());
			return rc;
		}
	}
	j.kind = w->accepted_count < n->amax ? 1 : 2;
	n->batch.now = tern_now_ms();
	if ((rc = tern_store_write(n->store, restore_apply, &j)) != TERN_OK) {
		log_warnx(
		    "broker %s's store and this node's disagree (%llu acceptances there, %llu "
		    "here), and the store could not be updated: %s",
		    n->broker->node_id, (unsigned long long)w->accepted_count,
		    (unsigned long long)n->amax, tern_errdetail());
		return rc;
	}
	log_warnx("%s", j.why);
	n->m.restores[j.kind - 1]++;
	n->amax = w->accepted_count;
	return TERN_OK;
}

/* The next frame on sock, decoded: TERN_ENOENT when none waits; a frame
 * that does not decode is logged (where: "" or " on the bulk lane") and
 * dropped, TERN_EMALFORMED, or TERN_ENOMEM when memory ran out decoding it
 * (deliveries then stop until the broker sends again: node_deliver_lost). */
static int recv_frame(node *n, void *sock, const char *where, Tern__V1__Frame **f)
{
	zmq_msg_t msg;
	int rc;

	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&msg);
		return TERN_ENOENT;
	}
	rc = tern_hop_decode(zmq_msg_data(&msg), zmq_msg_size(&msg),
	                     (size_t)tern_hop_frame_max(n->max_msg), f);
	zmq_msg_close(&msg);
	if (rc == TERN_ENOMEM) {
		node_deliver_lost(n, "out of memory decoding a frame from the broker");
		return TERN_ENOMEM;
	}
	if (rc != TERN_OK) {
		log_warnx("undecodable frame from the broker%s: %s", where, tern_errdetail());
		return TERN_EMALFORMED;
	}
	return TERN_OK;
}

void node_on_dealer(node *n)
{
	for (int64_t i = 0; i < n->batch_size; i++) {
		Tern__V1__Frame *f = NULL;
		int rc = recv_frame(n, n->dealer, "", &f);

		if (rc == TERN_ENOENT)
			return;
		n->last_rx = tern_now_ms();
		if (rc == TERN_ENOMEM) /* a chunk, perhaps: chunks come here without a lane */
			node_xin_short(n, n->last_rx);
		if (rc != TERN_OK)
			continue;
		switch (f->body_case) {
		case TERN__V1__FRAME__BODY_WELCOME:
			if (f->welcome->session != n->session)
				break; /* answers an earlier Hello */
			if (!n->connected)
				log_info("connected to broker %s", f->welcome->broker_id);
			/* The old session's answers go in before the store is compared. */
			node_batch_commit(n);
			/* From here the broker delivers again from what is committed and
			 * the outbox goes again: what a failed commit lost, too. */
			node_deliver_resume(n);
			n->hello_due = 0;
			if (welcome_store(n, f->welcome) != TERN_OK) {
				/* Not connected: the Hello goes again after the
				 * heartbeat timeout, and this is tried again. */
				log_warnx("not submitting until the comparison with the broker's "
				          "store is written");
				break;
			}
			n->connected = 1;
			/* Every outbox entry without an answer goes again, in order. */
			n->submit_next = 0;
			n->inflight = 0;
			n->sub_index = 0;
			/* Transfers go on once the bulk lane is open (or after
			 * BULK_WAIT_MS without it: node_session_tick). */
			n->xfer_started = 0;
			send_bulk_hello(n);
			break;
		case TERN__V1__FRAME__BODY_CHUNK_ACK:
			node_xout_on_ack(n, f->chunk_ack);
			break;
		case TERN__V1__FRAME__BODY_CHUNK:
			node_xin_on_chunk(n, &f);
			break;
		case TERN__V1__FRAME__BODY_RESULT:
			node_submit_result(n, f->result);
			break;
		case TERN__V1__FRAME__BODY_RESULTS:
			for (size_t k = 0; k < f->results->n_items; k++)
				node_submit_result(n, f->results->items[k]);
			break;
		case TERN__V1__FRAME__BODY_DELIVER:
			node_on_deliver(n, f->deliver);
			break;
		case TERN__V1__FRAME__BODY_DELIVER_BATCH:
			for (size_t k = 0; k < f->deliver_batch->n_items; k++)
				node_on_deliver(n, f->deliver_batch->items[k]);
			/* A turn takes batch_size deliveries, not frames. */
			if (f->deliver_batch->n_items > 1)
				i += (int64_t)f->deliver_batch->n_items - 1;
			break;
		case TERN__V1__FRAME__BODY_REFUSED:
			if (f->refused->session != 0 && f->refused->session != n->session) {
				break; /* about a submission of an earlier session */
			} else if (strcmp(f->refused->reason_code,
			                  tern_reason_code(TERN_REASON_HELLO_REQUIRED)) == 0 ||
			           strcmp(f->refused->reason_code,
			                  tern_reason_code(TERN_REASON_OUT_OF_SEQUENCE)) == 0) {
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
			node_hop_send(n, &r);
			break;
		}
		case TERN__V1__FRAME__BODY_WITNESS_REQUEST:
			node_on_witness_request(n, f->witness_request);
			break;
		case TERN__V1__FRAME__BODY_WITNESS_RESPONSE:
			node_on_witness_response(n, f->witness_response);
			break;
		default:
			break;
		}
		tern_pb_free((ProtobufCMessage **)&f);
	}
}

void node_on_bulk(node *n)
{
	for (int i = 0; i < BULK_FRAMES_PER_TURN; i++) {
		Tern__V1__Frame *f = NULL;
		/* Not last_rx: liveness is the main connection's. */
		int rc = recv_frame(n, n->bulk, " on the bulk lane", &f);

		if (rc == TERN_ENOENT)
			return;
		if (rc == TERN_ENOMEM) {
			/* A chunk, perhaps, of a transfer that cannot tell: each
			 * fetching counts the shortage (the chunk is asked again). */
			node_xin_short(n, tern_now_ms());
			continue;
		}
		if (rc != TERN_OK)
			continue;
		switch (f->body_case) {
		case TERN__V1__FRAME__BODY_BULK_WELCOME:
			if (!n->connected || f->bulk_welcome->session != n->session)
				break; /* answers a BulkHello of an earlier session */
			if (!n->bulk_ready)
				log_info(
				    "bulk lane open: attachment chunks travel on a connection of "
				    "their own");
			n->bulk_ready = 1;
			/* Whatever went on the main connection before, the transfers
			 * ask again where the broker stands, on the lane. */
			xfer_start(n);
			break;
		case TERN__V1__FRAME__BODY_CHUNK_ACK:
			node_xout_on_ack(n, f->chunk_ack);
			break;
		case TERN__V1__FRAME__BODY_CHUNK:
			node_xin_on_chunk(n, &f);
			break;
		case TERN__V1__FRAME__BODY_REFUSED:
			/* The lane's connection is not (or no longer) the session's:
			 * chunks go on the main connection until a new BulkHello is
			 * answered (node_session_tick asks again). A refusal of
			 * an earlier session's BulkHello changes nothing. */
			if (f->refused->session != 0 && f->refused->session != n->session)
				break;
			if (n->bulk_ready)
				log_info("the broker closed the bulk lane (%s); asking again",
				         f->refused->reason_code);
			n->bulk_ready = 0;
			break;
		default:
			break; /* the broker sends nothing else on a lane */
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
	if (n->bulk_connected) {
		/* The same keys: it would fail alike. It connects again after the
		 * main connection's next handshake. */
		zmq_disconnect(n->bulk, ep);
		n->bulk_connected = 0;
	}
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

void node_on_monitor(node *n)
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
			if (!n->bulk_connected) {
				/* The lane, with the key that just worked. */
				const char *ep = tern_config_get(n->id.cfg, "broker", "endpoint");
				if (zmq_setsockopt(n->bulk, ZMQ_CURVE_SERVERKEY,
				                   n->broker->curve_public, 32) != 0 ||
				    zmq_connect(n->bulk, ep) != 0)
					log_warnx(
					    "cannot open the bulk lane's connection: %s; chunks "
					    "travel on the main one",
					    zmq_strerror(errno));
				else
					n->bulk_connected = 1;
			}
			node_send_hello(n);
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

void node_session_reconnect(node *n)
{
	if (n->reconnect_at && n->batch.now >= n->reconnect_at) {
		/* With the broker's key as the directory now says (a SIGHUP may
		 * have brought its new one): it applies to new connections. */
		n->reconnect_at = 0;
		const char *ep = tern_config_get(n->id.cfg, "broker", "endpoint");
		if (zmq_setsockopt(n->dealer, ZMQ_CURVE_SERVERKEY, n->broker->curve_public, 32) !=
		        0 ||
		    zmq_connect(n->dealer, ep) != 0)
			log_warnx("cannot connect to the broker again: %s", zmq_strerror(errno));
	}
}

void node_session_tick(node *n, int64_t now)
{
	if (n->connected && !n->bulk_ready && now - n->bulk_hello_at > BULK_WAIT_MS) {
		if (!n->xfer_started) {
			log_info(
			    "no bulk lane yet: attachment chunks travel on the main connection");
			xfer_start(n);
		}
		send_bulk_hello(n);
	}
	if (n->connected && now - n->last_tx > n->hb_ivl_ms) {
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__Ping ping = TERN__V1__PING__INIT;
		ping.at = now;
		f.body_case = TERN__V1__FRAME__BODY_PING;
		f.ping = &ping;
		node_hop_send(n, &f);
	}
	if (n->hello_due && now >= n->hello_due) {
		n->hello_due = 0;
		if (n->connected) {
			log_info("saying Hello again: a commit failed, or a delivery could not "
			         "be taken");
			node_send_hello(n);
		}
	}
	if (n->connected && now - n->last_rx > n->hb_timeout_ms) {
		log_warnx("broker silent for %lld ms; saying Hello again",
		          (long long)(now - n->last_rx));
		n->last_rx = now;
		node_send_hello(n);
	} else if (!n->connected && now - n->hello_at > n->hb_timeout_ms) {
		/* The Hello or its Welcome was lost with a connection. */
		node_send_hello(n);
	}
}

/* The local API's reads (docs/api.md): status, inbox.list, inbox.show,
 * inbox.next, node.info, messages.list. Each uses its own read transaction
 * and answers at once; none changes the store. api_ops.c hands them to the
 * API server.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/json.h>
#include <tern/reason.h>
#include <tern/workflow.h>
#include <tern/uuid.h>
#include <tern/validate.h>

#include "fdclose.h"
#include "node_int.h"
#include "pbuf.h"
#include "util.h"

/* msgid from the inbox as the API shows it: *out its header, body, type
 * and when it came, and "sender_standing" when the sender's standing or key
 * changed since (inbox.c). TERN_ENOENT when no such message was accepted;
 * TERN_ENOMEM (no verdict) or the code of what failed otherwise. */
static int message_json(node *n, MDB_txn *txn, const char *msgid, json_t **out)
{
	json_t *hdr = NULL, *bodyj = NULL;
	tern_envelope *env = NULL;
	ProtobufCMessage *body = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0;
	const tern_msgtype *t;
	const char *standing = NULL;
	int64_t received_at = 0;
	int rc;

	*out = NULL;
	if ((rc = node_inbox_envelope(n, txn, msgid, &env, &standing, &received_at)) != TERN_OK ||
	    (rc = tern_envelope_open_cached(env, n->id.id, n->id.seal, n->seals, &plain, &plen)) !=
	        TERN_OK)
		goto out;
	t = tern_msgtype_by_type(tern_envelope_header(env)->type);
	if ((rc = tern_pb_unpack(t->desc, plain, plen, plen, &body)) != TERN_OK ||
	    (rc = tern_json_encode(&tern_envelope_header(env)->base, &hdr)) != TERN_OK ||
	    (rc = tern_json_encode(body, &bodyj)) != TERN_OK)
		goto out;
	*out = json_pack("{s:o, s:o, s:I, s:s}", "header", hdr, "body", bodyj, "received_at",
	                 (json_int_t)received_at, "type", t->name);
	/* Only when it changed: absent, the sender stands as it did. */
	if (*out && standing &&
	    json_object_set_new(*out, "sender_standing", json_string(standing)) != 0) {
		json_decref(*out);
		*out = NULL;
	}
	hdr = bodyj = NULL;
	rc = *out ? TERN_OK : TERN_ENOMEM;
out:
	json_decref(hdr);
	json_decref(bodyj);
	tern_pb_free(&body);
	if (plain)
		tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&env);
	return rc;
}

struct next_look {
	node *n;
	MDB_txn *txn;
	json_t *m;
	int rc;
};

static int next_visit(const char *msgid, void *arg)
{
	struct next_look *l = arg;
	int rc;

	/* Each is tried once: a look after that is one search a message. */
	if (node_unshown_has(l->n, msgid))
		return 0;
	if ((rc = message_json(l->n, l->txn, msgid, &l->m)) == TERN_OK)
		return 1;
	if (rc == TERN_ENOMEM) {
		l->rc = rc;
		return 1;
	}
	/* Said once (until the directory is reloaded), and passed over. */
	if (node_unshown_add(l->n, msgid))
		log_warnx("inbox.next passes over %s, which cannot be shown: %s (%s); inbox.show "
		          "says why, inbox.ack removes it",
		          msgid, tern_strerror(rc), tern_errdetail());
	return 0;
}

/* The oldest message of the inbox the API can show; NULL when none, with
 * *rc TERN_OK, or when memory ran out, with *rc TERN_ENOMEM (not "none": the
 * client is told, or its wait goes on). One that cannot be shown for another
 * reason (a record of an older release whose sender changed since, bytes
 * changed at rest) is passed over, so that it does not hide the ones behind
 * it; it stays in the inbox, listed, until acknowledged. */
json_t *node_api_inbox_next(node *n, int *rc)
{
	struct next_look l = {n, NULL, NULL, TERN_OK};

	*rc = TERN_OK;
	if (n->none_seen && n->none_at_gen == n->inbox_gen)
		return NULL; /* nothing new since the last look found none */
	if ((*rc = tern_store_read_begin(n->store, &l.txn)) != TERN_OK)
		return NULL;
	*rc = node_store_inbox_scan(l.txn, n->store, next_visit, &l);
	if (*rc == TERN_OK)
		*rc = l.rc;
	mdb_txn_abort(l.txn);
	if (*rc != TERN_OK) {
		json_decref(l.m);
		return NULL;
	}
	n->none_seen = l.m == NULL;
	n->none_at_gen = n->inbox_gen;
	return l.m;
}

/* Collects the inbox's ids; stops, ctx[1] set, when one cannot be kept. */
static int list_visit(const char *msgid, void *arg)
{
	json_t **ctx = arg; /* [0] the ids, [1] non-NULL once one was not kept */

	if (json_array_append_new(ctx[0], json_string(msgid)) != 0) {
		ctx[1] = ctx[0];
		return 1;
	}
	return 0;
}

/* The entry of arr (taken: node_xin_status or node_xout_status, NULL when
 * memory ran out) for msgid into *found, a new reference, NULL if none.
 * TERN_ENOMEM when arr is NULL: no answer, not "none". */
static int transfer_of(json_t *arr, const char *msgid, json_t **found)
{
	json_t *v;
	size_t i;

	*found = NULL;
	if (arr == NULL)
		return TERN_ENOMEM;
	json_array_foreach(arr, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "message_id")), msgid) == 0) {
			*found = json_incref(v);
			break;
		}
	}
	json_decref(arr);
	return TERN_OK;
}

/* "messages.list": one page of the messages sent and received (msglist.c).
 * A refusal names the argument in "field". */
static json_t *messages_list(node *n, MDB_txn *txn, json_t *req)
{
	node_list_query q;
	char why[768];
	const char *field = node_list_query_parse(req, &q, why, sizeof(why));
	json_t *page = NULL, *res;
	int rc;

	if (field != NULL) {
		res = tern_api_error(TERN_EINVAL, "%s", why);
		if (res)
			json_object_set_new(res, "field", json_string(field));
		return res;
	}
	if ((rc = node_store_messages_list(txn, n->store, &q, &page)) != TERN_OK)
		return tern_api_error(rc, "cannot list the messages: %s", tern_errdetail());
	json_object_set_new(page, "ok", json_true());
	return page;
}

json_t *node_api_read(node *n, const char *op, json_t *req)
{
	MDB_txn *txn;
	json_t *res = NULL, *rec = NULL;
	const char *id = json_string_value(json_object_get(req, "message_id"));
	int rc0;

	if ((rc0 = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return tern_api_error(rc0, "cannot read the store: %s", tern_errdetail());
	if (strcmp(op, "status") == 0) {
		json_t *rc2, *arr = json_array();
		const char *k;
		json_t *h = id ? json_object_get(n->held, id) : NULL;
		json_t *xs = NULL;
		if (id && transfer_of(node_xin_status(n), id, &xs) != TERN_OK) {
			json_decref(arr);
			res = tern_api_error(TERN_ENOMEM, "cannot read the transfers now: out of "
			                                  "memory");
		} else if (xs != NULL) {
			/* A delivery whose attachments are still coming (xfer_in.c). */
			json_decref(arr);
			res = json_pack("{s:b, s:s, s:s, s:s, s:O, s:O, s:O, s:O}", "ok", 1,
			                "message_id", id, "state", "receiving", "direction",
			                "received", "sender", json_object_get(xs, "sender"),
			                "bytes", json_object_get(xs, "bytes"), "received_bytes",
			                json_object_get(xs, "received"), "stalled",
			                json_object_get(xs, "stalled"));
			json_decref(xs);
			goto out;
		}
		if (h != NULL) {
			/* A delivery this node holds (docs/messages.md, "Held messages"). */
			json_decref(arr);
			res = json_pack("{s:b, s:s, s:s, s:s, s:O?, s:O?}", "ok", 1, "message_id",
			                id, "state", "held", "direction", "received", "sender",
			                json_object_get(h, "sender"), "awaiting",
			                json_object_get(h, "ref"));
			if (res)
				json_object_set(res, "until", json_object_get(h, "until"));
			goto out;
		}
		int rc = id ? node_store_sent_get(txn, n->store, id, &rec) : TERN_ENOENT;
		if (rc != TERN_OK) {
			json_decref(arr);
			/* Not read is not absent: a client told "no such message"
			 * might send it again. */
			res = rc == TERN_ENOENT ? tern_api_error(TERN_ENOENT,
			                                         "no message %s was sent from this "
			                                         "node, nor is one held here",
			                                         id ? id : "(none given)")
			                        : tern_api_error(rc, "cannot read message %s: %s",
			                                         id, tern_errdetail());
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
		if (res && (transfer_of(node_xout_status(n), id, &xs) != TERN_OK ||
		            (xs && json_object_set_new(res, "attachments", xs) != 0))) {
			/* Whole or no-memory: a sent message whose attachments
			 * still go must not read as one with none going. */
			json_decref(res);
			res = tern_api_error(TERN_ENOMEM, "cannot read the transfers now: out of "
			                                  "memory");
		}
	} else if (strcmp(op, "inbox.list") == 0) {
		/* All or nothing: a list with holes would pass for the whole inbox. */
		json_t *ids = json_array(), *ctx[2] = {ids, NULL}, *msgs = json_array(), *v;
		size_t i;
		int rc = ids && msgs ? node_store_inbox_scan(txn, n->store, list_visit, ctx)
		                     : TERN_ENOMEM;
		if (rc == TERN_OK && ctx[1] != NULL)
			rc = TERN_ENOMEM;
		json_array_foreach(ids, i, v)
		{
			json_t *r = NULL, *item;
			if (rc != TERN_OK)
				break;
			if ((rc = node_store_received(txn, n->store, json_string_value(v), &r)) !=
			    TERN_OK) {
				/* Gone or damaged: not in the inbox to list. */
				rc = rc == TERN_ENOMEM ? rc : TERN_OK;
				continue;
			}
			item = json_pack("{s:O, s:O?, s:O?, s:O?, s:O?}", "message_id", v, "sender",
			                 json_object_get(r, "sender"), "type",
			                 json_object_get(r, "type"), "case_id",
			                 json_object_get(r, "case_id"), "received_at",
			                 json_object_get(r, "received_at"));
			if (json_array_append_new(msgs, item) != 0)
				rc = TERN_ENOMEM;
			json_decref(r);
		}
		json_decref(ids);
		if (rc != TERN_OK) {
			json_decref(msgs);
			res = tern_api_error(rc, "cannot list the inbox: %s", tern_errdetail());
		} else {
			res = json_pack("{s:b, s:o}", "ok", 1, "messages", msgs);
		}
	} else if (strcmp(op, "inbox.show") == 0) {
		json_t *m = NULL;
		int rc = id ? message_json(n, txn, id, &m) : TERN_ENOENT;
		if (rc == TERN_OK)
			res = json_pack("{s:b, s:o}", "ok", 1, "message", m);
		else if (rc == TERN_ENOENT)
			res = tern_api_error(TERN_ENOENT, "no message %s in this node's inbox",
			                     id ? id : "(none given)");
		else
			res = tern_api_error(rc, "message %s cannot be shown: %s", id,
			                     tern_errdetail());
	} else if (strcmp(op, "case.show") == 0) {
		const char *cid = json_string_value(json_object_get(req, "case_id"));
		int ok = cid && cid[0] && strlen(cid) <= TERN_CASE_ID_MAX;
		json_t *v = NULL;
		int vrc = ok ? node_case_view(n, txn, cid, &v) : TERN_OK;
		if (cid == NULL || cid[0] == '\0')
			res = tern_api_error(TERN_EINVAL, "give \"case_id\"");
		else if (!ok)
			res = tern_api_error(TERN_EINVAL, "a case id has at most %d characters",
			                     TERN_CASE_ID_MAX);
		else if (vrc != TERN_OK)
			res =
			    tern_api_error(vrc, "cannot build the case view: %s", tern_errdetail());
		else if (json_array_size(json_object_get(v, "timeline")) == 0)
			res = tern_api_error(
			    TERN_ENOENT, "no message of case %s was sent, received or held here",
			    cid);
		else
			res = json_pack("{s:b, s:O}", "ok", 1, "case", v);
		json_decref(v);
	} else if (strcmp(op, "messages.list") == 0) {
		res = messages_list(n, txn, req);
	} else if (strcmp(op, "node.info") == 0) {
		json_t *counts = NULL, *xo, *xi, *ws;
		int crc = node_store_counts(txn, n->store, &counts);
		if (crc != TERN_OK) {
			res = tern_api_error(crc, "cannot count the node's messages: %s",
			                     tern_errdetail());
			goto out;
		}
		xo = node_xout_status(n);
		xi = node_xin_status(n);
		ws = node_witness_status(n);
		/* "s:o" steals xo, xi and ws, and json_pack answers NULL (the
		 * API: no-memory) when one is NULL. */
		res = json_pack(
		    "{s:b, s:s, s:s, s:b, s:O?, s:O?, s:O?, s:O?, s:{s:o, s:o}, s:o}", "ok", 1,
		    "node_id", n->id.id, "broker_id", n->broker->node_id, "connected", n->connected,
		    "outbox", json_object_get(counts, "outbox"), "inbox",
		    json_object_get(counts, "inbox"), "held", json_object_get(counts, "held"),
		    "webhooks", json_object_get(counts, "webhooks"), "transfers", "out", xo, "in",
		    xi, "audit", ws);
		json_decref(counts);
	}
out:
	json_decref(rec);
	mdb_txn_abort(txn);
	return res;
}

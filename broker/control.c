/* The operator's control socket (docs/operations.md): the live view of the
 * queues and peers, one queue's headers, and the dead-letter queue (list,
 * retry, drop; each retry or drop is audited with who asked).
 *
 * Touches: the store (reads; dead-letter moves), marks peers dirty; reads
 * the peers' state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>

#include "apisrv.h"
#include "broker_int.h"
#include "util.h"

/* A control request is an op and a message id or a destination. */
#define CONTROL_MAX_FRAME 65536

/* The live view: what the store holds, with what only the running broker
 * knows (connections, deliveries in flight, attempts). */
static json_t *queues_json(broker *b)
{
	MDB_txn *txn = NULL;
	bq_dest *d = NULL;
	size_t nd = 0;
	int64_t now = tern_now_ms();
	uint64_t retained = 0;
	json_t *arr, *it;
	size_t i;

	if (tern_store_read_begin(b->store, &txn) != TERN_OK ||
	    bq_stats(txn, b->store, &d, &nd) != TERN_OK) {
		if (txn)
			mdb_txn_abort(txn);
		return tern_api_error(TERN_EIO, "cannot read the queues: %s", tern_errdetail());
	}
	arr = bq_stats_json(d, nd, now);
	free(d);
	/* Connected nodes with nothing queued are destinations too. */
	for (size_t p = 0; p < b->npeers; p++) {
		int found = 0;
		json_array_foreach(arr, i, it) found |=
		    strcmp(json_string_value(json_object_get(it, "id")), b->peers[p].id) == 0;
		if (!found)
			json_array_append_new(arr,
			                      json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i}", "id",
			                                b->peers[p].id, "depth", 0, "bytes", 0,
			                                "notices", 0, "dead_letters", 0,
			                                "oldest_age_ms", 0, "transfer_bytes", 0));
	}
	json_array_foreach(arr, i, it)
	{
		struct peer *p = peer_find(b, json_string_value(json_object_get(it, "id")), 0);
		json_object_set_new(it, "connected", json_boolean(p && p->live));
		json_object_set_new(it, "in_flight",
		                    json_integer(p ? (json_int_t)(p->sent - p->acked) : 0));
		uint64_t head = 0, acked;
		/* The count is its entry's: one that expired or was acknowledged
		 * since (an acknowledgement not committed yet counts) has no
		 * failed deliveries to show for the queue now. */
		if (p && p->attempts > 0) {
			acked = batch_ack_pending(b, p->id);
			if (acked < p->acked)
				acked = p->acked;
			(void)bq_head(txn, b->store, p->id, acked + 1, &head);
		}
		json_object_set_new(it, "attempts",
		                    json_integer(p && p->attempts > 0 && head == p->attempts_seq
		                                     ? p->attempts
		                                     : 0));
		json_object_set_new(it, "last_seen_ms_ago",
		                    p && p->last_rx ? json_integer(now - p->last_rx) : json_null());
	}
	if (xfer_retained_bytes(txn, b->store, &retained) != TERN_OK) {
		mdb_txn_abort(txn);
		json_decref(arr);
		return tern_api_error(TERN_EIO, "cannot read the transfers: %s", tern_errdetail());
	}
	mdb_txn_abort(txn);
	return json_pack("{s:b, s:s, s:s, s:o, s:I}", "ok", 1, "source", "daemon", "broker",
	                 b->id.id, "destinations", arr, "transfer_retained_bytes",
	                 (json_int_t)retained);
}

struct dlq_find {
	const char *msgid;
	char rcpts[MAX_PEERS][64];
	size_t n;
	json_t *list;
};

static void dlq_visit(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                      void *arg)
{
	struct dlq_find *f = arg;

	if (f->list)
		json_array_append_new(f->list,
		                      json_pack("{s:s, s:s, s:s, s:I}", "destination", rcpt,
		                                "message_id", msgid, "reason", reason,
		                                "dead_lettered_at", (json_int_t)at));
	else if (strcmp(msgid, f->msgid) == 0 && f->n < MAX_PEERS)
		snprintf(f->rcpts[f->n++], 64, "%s", rcpt);
}

struct dlq_act {
	broker *b;
	struct dlq_find *f;
	int retry;
	char who[32];
};

static int dlq_apply(MDB_txn *txn, void *arg)
{
	struct dlq_act *a = arg;
	int64_t now = tern_now_ms();
	int rc;

	for (size_t i = 0; i < a->f->n; i++) {
		if ((rc = bq_dlq_take(txn, a->b->store, a->f->rcpts[i], a->f->msgid, a->retry,
		                      now + a->b->default_ttl_ms, now)) != TERN_OK)
			return rc;
		/* Who did what to which message, in the same transaction. */
		if ((rc = bq_audit(txn, a->b->store, TERN__V1__AUDIT_ENTRY__KIND__OPERATOR,
		                   a->f->msgid, a->f->rcpts[i], NULL,
		                   a->retry ? "dlq-retry" : "dlq-drop", NULL, 0, a->who, NULL, 0,
		                   now)) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static json_t *dlq_op(broker *b, const char *op, const json_t *req, uid_t uid)
{
	struct dlq_find f = {0};
	struct dlq_act a = {b, &f, strcmp(op, "dlq.retry") == 0, ""};
	MDB_txn *txn = NULL;
	int rc;

	if (strcmp(op, "dlq.list") == 0)
		f.list = json_array();
	else if ((f.msgid = json_string_value(json_object_get(req, "message_id"))) == NULL)
		return tern_api_error(TERN_EINVAL, "give message_id");
	if ((rc = tern_store_read_begin(b->store, &txn)) == TERN_OK)
		rc = bq_dlq_scan(txn, b->store, dlq_visit, &f);
	if (txn)
		mdb_txn_abort(txn);
	if (rc != TERN_OK) {
		json_decref(f.list);
		return tern_api_error(rc, "cannot read the dead letters: %s", tern_errdetail());
	}
	if (f.list)
		return json_pack("{s:b, s:o}", "ok", 1, "dead_letters", f.list);
	if (f.n == 0)
		return tern_api_error(TERN_ENOENT, "%s is not in the dead-letter queue", f.msgid);
	snprintf(a.who, sizeof(a.who), "uid %u", (unsigned)uid);
	if ((rc = tern_store_write(b->store, dlq_apply, &a)) != TERN_OK)
		return tern_api_error(rc, "%s", tern_errdetail());
	b->last_audit = tern_now_ms();
	for (size_t i = 0; i < f.n; i++) {
		struct peer *p = peer_find(b, f.rcpts[i], 0);
		if (p)
			p->dirty = 1;
		log_info("operator (%s) %s %s for %s", a.who, a.retry ? "requeued" : "dropped",
		         f.msgid, f.rcpts[i]);
	}
	return json_pack("{s:b, s:i}", "ok", 1, "destinations", (int)f.n);
}

static json_t *queue_show(broker *b, const json_t *req)
{
	const char *dest = json_string_value(json_object_get(req, "destination"));
	json_int_t max = json_integer_value(json_object_get(req, "max"));
	MDB_txn *txn = NULL;
	json_t *items = NULL;
	int rc;

	if (dest == NULL)
		return tern_api_error(TERN_EINVAL, "give destination");
	if ((rc = tern_store_read_begin(b->store, &txn)) == TERN_OK)
		rc = bq_show(txn, b->store, dest, max > 0 ? (size_t)max : 1000, &items);
	if (txn)
		mdb_txn_abort(txn);
	if (rc != TERN_OK)
		return tern_api_error(rc, "cannot read the queue: %s", tern_errdetail());
	return json_pack("{s:b, s:s, s:o}", "ok", 1, "destination", dest, "items", items);
}

static json_t *peers_json(broker *b)
{
	json_t *arr = json_array();
	int64_t now = tern_now_ms();

	for (size_t i = 0; i < tern_directory_count(b->id.dir); i++) {
		const tern_member *m = tern_directory_at(b->id.dir, i);
		struct peer *p;
		if (m->roles & TERN_ROLE_BROKER)
			continue;
		p = peer_find(b, m->node_id, 0);
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:b, s:o, s:s, s:I, s:b}", "id", m->node_id,
		                   "agency", m->agency ? m->agency : "", "connected", p && p->live,
		                   "last_seen_ms_ago",
		                   p && p->last_rx ? json_integer(now - p->last_rx) : json_null(),
		                   "software", p ? p->software : "", "certificate_expires_at",
		                   (json_int_t)m->cert_not_after, "revoked", m->revoked));
	}
	return json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "source", "daemon", "broker", b->id.id,
	                 "peers", arr);
}

/* One complete control request; the answer goes back without blocking
 * (apisrv.h). */
static json_t *on_control(void *arg, int conn, json_t *req, uid_t uid)
{
	broker *b = arg;
	const char *op;

	(void)conn;
	if (json_integer_value(json_object_get(req, "v")) != TERN_API_VERSION ||
	    (op = json_string_value(json_object_get(req, "op"))) == NULL)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "this broker speaks control version 1; give \"v\":1 and \"op\"");
	if (strcmp(op, "queues") == 0)
		return queues_json(b);
	if (strcmp(op, "queue.show") == 0)
		return queue_show(b, req);
	if (strcmp(op, "peers") == 0)
		return peers_json(b);
	if (strcmp(op, "dlq.list") == 0 || strcmp(op, "dlq.retry") == 0 ||
	    strcmp(op, "dlq.drop") == 0)
		return dlq_op(b, op, req, uid);
	return tern_api_error(TERN_EINVAL,
	                      "unknown operation '%s' (queues, queue.show, peers, dlq.list, "
	                      "dlq.retry, dlq.drop)",
	                      op);
}

int control_open(broker *b)
{
	tern_apisrv_opts o = {.name = "control",
	                      .max_frame = CONTROL_MAX_FRAME,
	                      .max_conns = TERN_API_MAX_CONNS,
	                      .max_buffered = 0, /* at most max_conns x 64 KiB */
	                      .request_ms = TERN_API_REQUEST_MS,
	                      .reply_ms = TERN_API_REPLY_MS};
	int fd, rc;

	if ((rc = tern_api_listen(tern_config_get(b->id.cfg, "broker", "control_socket"), &fd)) !=
	    TERN_OK)
		return rc;
	return tern_apisrv_new(fd, &o, on_control, b, &b->ctl);
}

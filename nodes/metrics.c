/* Operations: the /metrics, /healthz and /readyz snapshots, and the count
 * of HTTP API requests refused for want of the token.
 *
 * It reads struct node's counters (n->m) and the store; it writes only the
 * refusals' audit entry.
 */
#include <stdio.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>

#include "http.h"
#include "node_int.h"
#include "prom.h"

void node_publish_metrics(node *n)
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
		                 (double)n->m.sent[tern_msgtype_index(t->type)]);
	}
	tern_prom_family(&p, "tern_node_received_total", "counter",
	                 "messages delivered to this node, by type and outcome");
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		for (int o = 0; o < 2; o++) {
			snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", t->name,
			         o ? "refused" : "accepted");
			tern_prom_sample(&p, "tern_node_received_total", labels,
			                 (double)n->m.received[tern_msgtype_index(t->type)][o]);
		}
	tern_prom_family(&p, "tern_node_held_messages", "gauge",
	                 "delivered messages held, unjudged, until the message they cite arrives");
	tern_prom_sample(&p, "tern_node_held_messages", NULL, (double)node_held_count(n));
	if (n->hook) {
		/* The pushes waiting for the agency's system, and the attempts
		 * (docs/api.md, "Webhooks"). */
		uint64_t pending = 0, ok = 0, failed = 0;
		MDB_txn *rtxn;
		if (tern_store_read_begin(n->store, &rtxn) == TERN_OK) {
			node_push_count(rtxn, n->store, &pending);
			mdb_txn_abort(rtxn);
		}
		node_webhook_counts(n->hook, &ok, &failed);
		tern_prom_family(&p, "tern_node_webhook_pending", "gauge",
		                 "webhook pushes not yet taken by the agency's system");
		tern_prom_sample(&p, "tern_node_webhook_pending", NULL, (double)pending);
		tern_prom_family(&p, "tern_node_webhook_attempts_total", "counter",
		                 "webhook posts since the start, by result");
		tern_prom_sample(&p, "tern_node_webhook_attempts_total", "result=\"delivered\"",
		                 (double)ok);
		tern_prom_sample(&p, "tern_node_webhook_attempts_total", "result=\"failed\"",
		                 (double)failed);
	}
	{
		/* What attachments still have to move, each way (docs/attachments.md). */
		json_t *out = node_xout_status(n), *in = node_xin_status(n), *xv;
		double left[2] = {0, 0};
		size_t i;
		/* Not read for want of memory: no gauge this time, not a wrong one. */
		if (out == NULL || in == NULL)
			goto xfers_done;
		json_array_foreach(out, i, xv) left[0] +=
		    (double)(json_integer_value(json_object_get(xv, "bytes")) -
		             json_integer_value(json_object_get(xv, "at_broker")));
		json_array_foreach(in, i, xv) left[1] +=
		    (double)(json_integer_value(json_object_get(xv, "bytes")) -
		             json_integer_value(json_object_get(xv, "received")));
		tern_prom_family(&p, "tern_node_transfer_bytes", "gauge",
		                 "attachment bytes still to move: out (to the broker) and in");
		tern_prom_sample(&p, "tern_node_transfer_bytes", "direction=\"out\"", left[0]);
		tern_prom_sample(&p, "tern_node_transfer_bytes", "direction=\"in\"", left[1]);
	xfers_done:
		json_decref(out);
		json_decref(in);
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
struct http_refusals {
	node *n;
	uint64_t count;
};

static int http_refusals_apply(MDB_txn *txn, void *arg)
{
	struct http_refusals *r = arg;
	char why[64];

	snprintf(why, sizeof(why), "unauthorized: %llu requests", (unsigned long long)r->count);
	return node_audit(r->n, txn, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, NULL, "http", NULL,
	                  "http-request", NULL, 0, why, NULL, NULL);
}

void node_count_refusals(node *n)
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

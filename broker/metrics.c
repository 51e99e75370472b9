/* What the broker shows of itself: the Prometheus snapshot it publishes a
 * second (/metrics, /healthz, /readyz) and the socket monitor's events, which
 * count connections and handshakes that never reach a frame handler.
 *
 * Touches: b->m (the monitor's counters), b->qstats; reads the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>

#include "broker_int.h"
#include "prom.h"
#include "util.h"

const double broker_lat_le[LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,    5,     30,   300, 3600};

void publish_metrics(broker *b, int64_t now)
{
	static const double le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
	tern_prom p = {0};
	MDB_txn *txn = NULL;
	bq_dest *d, *fresh = NULL;
	size_t nd = 0;
	char labels[128];

	tern_prom_family(&p, "tern_broker_submissions_total", "counter",
	                 "envelopes submitted by nodes, by message type and outcome");
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		for (int o = 0; o < 2; o++) {
			snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", t->name,
			         o ? "refused" : "accepted");
			tern_prom_sample(&p, "tern_broker_submissions_total", labels,
			                 (double)b->m.subs[tern_msgtype_index(t->type)][o]);
		}
	tern_prom_one(&p, "tern_broker_deliveries_acked_total", "counter",
	              "queue items nodes acknowledged as committed", (double)b->m.acked);
	tern_prom_family(&p, "tern_broker_dead_letters_total", "counter",
	                 "items dead-lettered, by reason: too many delivery attempts, past "
	                 "their time-to-live, or the recipient revoked or removed from the "
	                 "directory");
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"max-attempts\"",
	                 (double)b->m.dead);
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"expired\"",
	                 (double)b->m.expired_dead);
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"recipient-revoked\"",
	                 (double)b->m.revoked_dead);
	tern_prom_sample(&p, "tern_broker_dead_letters_total", "reason=\"recipient-removed\"",
	                 (double)b->m.removed_dead);
	tern_prom_one(&p, "tern_broker_node_restores_total", "counter",
	              "nodes found holding less than they acknowledged (a store put back from an "
	              "older copy): what is retained is delivered again",
	              (double)b->m.restores);
	tern_prom_one(&p, "tern_broker_restore_lost_total", "counter",
	              "deliveries such nodes lost that retention had already purged "
	              "([delivery] retain too short for the backup's age)",
	              (double)b->m.lost);
	tern_prom_one(&p, "tern_broker_retained_purged_total", "counter",
	              "acknowledged items deleted once past [delivery] retain",
	              (double)b->m.purged);
	tern_prom_one(&p, "tern_broker_frames_not_admitted_total", "counter",
	              "frames refused because their member is no longer admitted (revoked, "
	              "removed or lapsed since its handshake)",
	              (double)b->m.barred);
	tern_prom_histogram(&p, "tern_broker_delivery_latency_seconds",
	                    "from the broker's commit of a message to the recipient node's",
	                    broker_lat_le, b->m.lat, LAT_BUCKETS, b->m.lat_sum);
	tern_prom_histogram(&p, "tern_broker_commit_batch_size",
	                    "submissions written per LMDB commit (group commit)", le, b->m.batch,
	                    10, (double)b->m.batch_sum);
	if (now >= b->next_qscan && tern_store_read_begin(b->store, &txn) == TERN_OK) {
		if (bq_stats(txn, b->store, &fresh, &nd) == TERN_OK) {
			int64_t spent;
			uint64_t kept;
			if (xfer_retained_bytes(txn, b->store, &kept) == TERN_OK)
				b->xfer_retained = kept;
			spent = tern_now_ms() - now;
			free(b->qstats);
			b->qstats = fresh;
			b->nqstats = nd;
			b->next_qscan = now + (spent * 100 > 1000 ? spent * 100 : 1000);
		}
		mdb_txn_abort(txn);
	}
	d = b->qstats;
	nd = b->nqstats;
	{
		tern_prom_family(&p, "tern_broker_queue_depth", "gauge",
		                 "items queued per destination, in flight included");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_depth", labels, (double)d[i].depth);
		}
		tern_prom_family(&p, "tern_broker_queue_bytes", "gauge",
		                 "bytes queued per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_bytes", labels, (double)d[i].bytes);
		}
		tern_prom_family(&p, "tern_broker_queue_oldest_seconds", "gauge",
		                 "age of the oldest item per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_queue_oldest_seconds", labels,
			                 d[i].depth ? (double)(now - d[i].oldest) / 1000 : 0);
		}
		tern_prom_family(&p, "tern_broker_transfer_bytes", "gauge",
		                 "sealed attachment bytes the broker holds for each destination "
		                 "(chunks of transfers it has not said ChunkDone for)");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_transfer_bytes", labels,
			                 (double)d[i].transfer_bytes);
		}
		tern_prom_one(&p, "tern_broker_transfer_retained_bytes", "gauge",
		              "sealed attachment bytes kept after every recipient had them, for a "
		              "node restored from an older backup ([delivery] retain)",
		              (double)b->xfer_retained);
		tern_prom_family(&p, "tern_broker_dead_letter_depth", "gauge",
		                 "items in the dead-letter queue per destination");
		for (size_t i = 0; i < nd; i++) {
			snprintf(labels, sizeof(labels), "destination=\"%s\"", d[i].id);
			tern_prom_sample(&p, "tern_broker_dead_letter_depth", labels,
			                 (double)d[i].dead);
		}
	}
	tern_prom_family(&p, "tern_broker_chunks_total", "counter",
	                 "attachment chunks: committed from senders, sent to recipients, refused "
	                 "(not under their seal)");
	tern_prom_sample(&p, "tern_broker_chunks_total", "direction=\"in\"",
	                 (double)b->m.chunks_in);
	tern_prom_sample(&p, "tern_broker_chunks_total", "direction=\"out\"",
	                 (double)b->m.chunks_out);
	tern_prom_sample(&p, "tern_broker_chunks_total", "direction=\"refused\"",
	                 (double)b->m.chunks_refused);
	tern_prom_one(&p, "tern_broker_connections_accepted_total", "counter",
	              "TCP connections accepted on the listening endpoint", (double)b->m.accepted);
	tern_prom_family(&p, "tern_broker_handshakes_total", "counter",
	                 "CurveZMQ handshakes by result (accepted minus these: connections that "
	                 "never completed one)");
	tern_prom_sample(&p, "tern_broker_handshakes_total", "result=\"ok\"",
	                 (double)b->m.handshakes_ok);
	tern_prom_sample(&p, "tern_broker_handshakes_total", "result=\"failed\"",
	                 (double)b->m.handshakes_failed);
	tern_prom_one(&p, "tern_broker_submits_out_of_sequence_total", "counter",
	              "Submissions not taken because they came out of their session's order "
	              "(the node resubmits them)",
	              (double)b->m.out_of_sequence);
	{
		uint64_t hits, misses;
		tern_sigcache_stats(b->sigs, &hits, &misses);
		tern_prom_family(
		    &p, "tern_broker_batch_roots_total", "counter",
		    "batch-signed envelopes by how their root's signature was checked: "
		    "verified, or remembered from an envelope of the same batch");
		tern_prom_sample(&p, "tern_broker_batch_roots_total", "result=\"verified\"",
		                 (double)misses);
		tern_prom_sample(&p, "tern_broker_batch_roots_total", "result=\"remembered\"",
		                 (double)hits);
	}
	tern_prom_family(&p, "tern_broker_node_connected", "gauge", "1 when the node is connected");
	for (size_t i = 0; i < b->npeers; i++) {
		snprintf(labels, sizeof(labels), "node=\"%s\"", b->peers[i].id);
		tern_prom_sample(&p, "tern_broker_node_connected", labels, b->peers[i].live);
	}
	tern_prom_directory(&p, b->id.dir, tern_trust_crl_number(b->id.trust), b->m.rollbacks);
	if (p.buf) {
		tern_http_publish(b->http, "/metrics", 200, TERN_PROM_CTYPE, p.buf, 0);
		tern_http_publish(b->http, "/healthz", 200, "text/plain; charset=utf-8", "ok\n",
		                  10000);
		tern_http_publish(b->http, "/readyz", 200, "text/plain; charset=utf-8", "ready\n",
		                  10000);
	}
	tern_prom_free(&p);
}

/* Connections that never complete the CurveZMQ handshake (garbage on the
 * port, a scanner, a client without the broker's key) never reach the ZAP
 * handler or any frame handler: libzmq drops them. The socket monitor counts
 * them for /metrics (accepted minus completed handshakes) and logs the
 * failures before authentication, at most once a second, with the peer's
 * address when it can be known (zmon.h says when); refusals by the ZAP
 * handler are logged there, with the address its request carries. */
static void on_monitor_event(void *arg, const tern_zmon_event *e)
{
	broker *b = arg;
	int64_t now;

	if (e->event == ZMQ_EVENT_ACCEPTED)
		b->m.accepted++;
	else if (e->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
		b->m.handshakes_ok++;
	if (e->event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	    e->event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
	    e->event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return;
	b->m.handshakes_failed++;
	if (e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return;
	b->handshakes_failed++;
	if ((now = tern_now_ms()) - b->last_handshake_log < 1000)
		return;
	log_warnx("%u connection(s) failed the CurveZMQ handshake before authentication (a client "
	          "without this broker's current key, or not a Tern node), the last from %s",
	          b->handshakes_failed,
	          e->peer[0] ? e->peer : "a peer whose address is unknown (closed too soon)");
	b->handshakes_failed = 0;
	b->last_handshake_log = now;
}

void on_monitor(broker *b)
{
	tern_zmon_drain(b->zmon, on_monitor_event, b);
}

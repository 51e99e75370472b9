/* The broker's skeleton: open (configuration, identity, store, sockets),
 * close, reload on SIGHUP, the timers, and the loop that polls the sockets
 * and drives the modules one round at a time (broker_int.h lists them).
 *
 * Touches: everything, but only to wire the modules together. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include <unistd.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/log.h>

#include "apisrv.h"
#include "broker_int.h"
#include "syncer.h"
#include "daemon.h"
#include "hop.h"
#include "http.h"
#include "ident.h"
#include "prom.h"
#include "util.h"
#include "zmon.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define CONTROL_POLL_MAX TERN_APISRV_POLL_MAX(TERN_API_MAX_CONNS)

/* --- timers ----------------------------------------------------------------------- */

/* Heartbeats go before redelivery: a peer found silent loses its route and
 * is not redelivered to. */
static void timers(broker *b, int64_t now)
{
	disconnect_due(b, now);
	session_heartbeats(b, now);
	deliver_redeliveries(b, now);
	batch_timers(b, now);
}

/* --- life cycle ------------------------------------------------------------------ */

int broker_open(const char *conf, broker **out)
{
	broker *b;
	int rc, one = 1;
	const char *dom = TERN_HOP_ZAP_DOMAIN;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return TERN_ENOMEM;
	if ((rc = tern_ident_load_start(conf, TERN_CONFIG_BROKER, stderr, &b->id)) != TERN_OK) {
		free(b);
		return rc;
	}
	log_init("tern-broker", (int)tern_config_get_int(b->id.cfg, "broker", "log_level"));
	if ((rc = tern_sigcache_new(0, &b->sigs)) != TERN_OK)
		goto fail;
	b->max_msg = tern_config_get_int(b->id.cfg, "limits", "max_message_size");
	b->frame_max = tern_hop_frame_max(b->max_msg);
	b->max_att_size = (uint64_t)tern_config_get_int(b->id.cfg, "limits", "max_attachment_size");
	b->max_att_total =
	    (uint64_t)tern_config_get_int(b->id.cfg, "limits", "max_message_attachments");
	if ((size_t)snprintf(b->chunk_dir, sizeof(b->chunk_dir), "%s/chunks",
	                     tern_config_get(b->id.cfg, "broker", "data_dir")) >=
	    sizeof(b->chunk_dir)) {
		fprintf(stderr, "tern-broker: [broker] data_dir is too long\n");
		rc = TERN_ECONFIG;
		goto fail;
	}
	b->batch_size = tern_config_get_int(b->id.cfg, "delivery", "batch_size");
	b->default_ttl_ms = tern_config_get_int(b->id.cfg, "delivery", "default_ttl") * 1000;
	b->max_attempts = tern_config_get_int(b->id.cfg, "delivery", "max_attempts");
	b->ack_timeout_ms = tern_config_get_int(b->id.cfg, "delivery", "ack_timeout") * 1000;
	b->max_backoff_ms = tern_config_get_int(b->id.cfg, "delivery", "max_backoff") * 1000;
	b->retain_ms = tern_config_get_int(b->id.cfg, "delivery", "retain") * 1000;
	b->retain_ids_ms = tern_config_get_int(b->id.cfg, "delivery", "retain_ids") * 1000;
	if (b->retain_ids_ms < b->retain_ms)
		b->retain_ids_ms = b->retain_ms; /* ids are kept at least as long as items */
	b->hb_ivl_ms = tern_config_get_int(b->id.cfg, "delivery", "heartbeat_interval") * 1000;
	b->hb_timeout_ms = tern_config_get_int(b->id.cfg, "delivery", "heartbeat_timeout") * 1000;
	b->skew_ms = tern_config_get_int(b->id.cfg, "federation", "max_clock_skew") * 1000;
	b->cp_ivl_ms = tern_config_get_int(b->id.cfg, "audit", "checkpoint_interval") * 1000;
	b->peer_rate = (double)tern_config_get_int(b->id.cfg, "limits", "peer_rate");
	b->peer_burst = (double)tern_config_get_int(b->id.cfg, "limits", "peer_burst");
	b->peer_backlog = tern_config_get_int(b->id.cfg, "limits", "peer_backlog");
	b->idle_ivl_ms = tern_config_get_int(b->id.cfg, "audit", "idle_checkpoint_interval") * 1000;

	randombytes_buf(b->epoch, BQ_EPOCH_LEN);
	if ((rc = bq_open(tern_config_get(b->id.cfg, "broker", "data_dir"), &b->store,
	                  b->store_id)) != TERN_OK) {
		fprintf(stderr, "tern-broker: cannot open the store in %s: %s (%s)\n",
		        tern_config_get(b->id.cfg, "broker", "data_dir"), tern_strerror(rc),
		        tern_errdetail());
		goto fail;
	}
	bq_audit_dbs(b->store, &b->audit);
	if ((rc = tern_daemon_trustmark_start(b->store, tern_store_dbi(b->store, BQ_META),
	                                      &b->audit, &b->id, "tern-broker")) != TERN_OK)
		goto fail;
	snprintf(b->origin, sizeof(b->origin), "tern/%s/%s", tern_directory_federation(b->id.dir),
	         b->id.id);
	b->ctx = zmq_ctx_new();
	/* The ZAP handler must be bound before the server socket binds. */
	b->zap = zmq_socket(b->ctx, ZMQ_REP);
	if (zmq_bind(b->zap, ZAP_ENDPOINT) != 0) {
		fprintf(stderr, "tern-broker: cannot bind the ZAP handler: %s\n",
		        zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
	if ((rc = tern_hop_sockopts(b->router, (int)(b->hb_ivl_ms / 1000),
	                            (int)(b->hb_timeout_ms / 1000), b->frame_max)) != TERN_OK ||
	    zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(b->id.curve), 32) !=
	        0 ||
	    zmq_setsockopt(b->router, ZMQ_ZAP_DOMAIN, dom, strlen(dom)) != 0 ||
	    zmq_setsockopt(b->router, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0) {
		fprintf(stderr, "tern-broker: socket options: %s\n", zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = tern_zmon_attach(b->ctx, b->router, "inproc://tern-broker-monitor",
	                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED,
	                           &b->monitor)) != TERN_OK ||
	    (rc = tern_zmon_new(b->monitor, &b->zmon)) != TERN_OK) {
		fprintf(stderr, "tern-broker: %s\n", tern_errdetail());
		goto fail;
	}
	if (zmq_bind(b->router, tern_config_get(b->id.cfg, "broker", "listen")) != 0) {
		fprintf(stderr, "tern-broker: cannot listen on %s: %s\n",
		        tern_config_get(b->id.cfg, "broker", "listen"), zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = tern_syncer_new(&b->syncer)) != TERN_OK || (rc = xput_start(b)) != TERN_OK) {
		fprintf(stderr, "tern-broker: %s\n", tern_errdetail());
		goto fail;
	}
	if ((rc = control_open(b)) != TERN_OK) {
		fprintf(stderr, "tern-broker: cannot open the control socket: %s\n",
		        tern_errdetail());
		goto fail;
	}
	if (tern_config_get_int(b->id.cfg, "metrics", "port") > 0 &&
	    (rc = tern_http_start((uint16_t)tern_config_get_int(b->id.cfg, "metrics", "port"), NULL,
	                          &b->http)) != TERN_OK) {
		fprintf(stderr, "tern-broker: metrics: %s\n", tern_errdetail());
		goto fail;
	}
	*out = b;
	return TERN_OK;
fail:
	broker_close(&b);
	return rc ? rc : TERN_EIO;
}

void broker_close(broker **bp)
{
	broker *b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	batch_reset(b);
	free(b->batch.subs);
	/* A sync under way ends first; what it held was never counted, and the
	 * senders put it again. */
	xput_stop(b);
	tern_syncer_free(&b->syncer);
	free(b->qstats);
	for (size_t i = 0; i < b->nstaged; i++)
		free(b->staged[i].proof);
	free(b->staged);
	for (size_t i = 0; i < b->npeers; i++) {
		rate_free(&b->peers[i]);
		chunk_gets_drop(&b->peers[i]);
	}
	tern_http_stop(&b->http);
	if (b->ctl) {
		tern_apisrv_free(&b->ctl);
		unlink(tern_config_get(b->id.cfg, "broker", "control_socket"));
	}
	tern_zmon_free(&b->zmon);
	/* The monitor stops before its reader closes (zmon.h: a stop that
	 * never ended). */
	tern_zmon_detach(b->router, &b->monitor);
	if (b->router)
		zmq_close(b->router);
	if (b->zap)
		zmq_close(b->zap);
	if (b->ctx)
		zmq_ctx_term(b->ctx);
	tern_store_close(&b->store);
	tern_sigcache_free(&b->sigs);
	tern_ident_free(&b->id);
	free(b);
	*bp = NULL;
}

/* --- SIGHUP ------------------------------------------------------------------------ */

/* Between batches, so no envelope of the old directory is still in hand. */
static void reload(broker *b)
{
	uint64_t before = tern_directory_version(b->id.dir);

	if (tern_daemon_reload_ident(&b->id, TERN_CONFIG_BROKER, NULL, b->store,
	                             tern_store_dbi(b->store, BQ_META), &b->audit,
	                             b->m.rollbacks) != TERN_OK)
		return;
	log_info("reloaded: directory version %llu (was %llu), CRL number %lld",
	         (unsigned long long)tern_directory_version(b->id.dir), (unsigned long long)before,
	         (long long)tern_trust_crl_number(b->id.trust));
	b->last_audit = tern_now_ms();
	revocation_sweep(b);
}

int broker_run(broker *b, volatile sig_atomic_t *stop)
{
	log_info("broker %s listening on %s (directory version %llu)", b->id.id,
	         tern_config_get(b->id.cfg, "broker", "listen"),
	         (unsigned long long)tern_directory_version(b->id.dir));
	revocation_sweep(b); /* members revoked while the broker was down */
	log_hold(1);
	while (!*stop) {
		/* Control clients are polled with the nodes: none can hold the loop. */
		zmq_pollitem_t items[5 + CONTROL_POLL_MAX] = {
		    {b->router, 0, ZMQ_POLLIN, 0},
		    {b->zap, 0, ZMQ_POLLIN, 0},
		    {b->monitor, 0, ZMQ_POLLIN, 0},
		    {NULL, tern_syncer_fd(b->syncer), ZMQ_POLLIN, 0},
		    {NULL, tern_workq_fd(b->xput), ZMQ_POLLIN, 0}};
		size_t nctl = tern_apisrv_pollitems(b->ctl, items + 5, CONTROL_POLL_MAX);
		int64_t now;
		int wait_ms = 100, n;

		(void)batch_due(b, tern_now_ms(), &wait_ms); /* deferred acknowledgements */
		/* Chunks left for a later turn (this turn's share sent, or a full
		 * socket): soon, without spinning. */
		for (size_t i = 0; i < b->npeers && wait_ms > 10; i++)
			if (b->peers[i].chunk_dirty && b->peers[i].live)
				wait_ms = 10;
		log_flush(); /* the turn's lines, in one write (log.h) */
		n = zmq_poll(items, 5 + (int)nctl, wait_ms);

		if (n < 0 && errno != EINTR) {
			log_warn("zmq_poll");
			break;
		}
		if (n > 0 && (items[1].revents & ZMQ_POLLIN))
			zap_handle(b);
		if (n > 0 && (items[2].revents & ZMQ_POLLIN))
			on_monitor(b);
		tern_apisrv_serve(b->ctl, items + 5, nctl, n > 0, tern_now_ms());
		b->batch.now = tern_now_ms();
		if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
			/* Group commit: take what is waiting, up to a batch, then write once. */
			b->turn_puts = 0;
			for (int64_t i = 0; i < b->batch_size; i++) {
				/* Read until nothing waits: asking ZMQ_EVENTS first
				 * would cost libzmq two system calls a frame. */
				if (!on_router(b))
					break;
				/* A turn's chunks are few: a message read after them
				 * waits for their checks and writes (the ROUTER takes
				 * the connections in turn, so the next is soon). */
				if (b->batch.nsubs >= (size_t)b->batch_size ||
				    b->turn_puts >= CHUNK_PUTS_PER_TURN)
					break;
			}
		}
		/* Chunks the writing thread is done with (its fd), then those
		 * synced since (the syncer's fd woke the poll) are counted; those
		 * written go to the syncer. */
		if (n > 0 && (items[4].revents & ZMQ_POLLIN))
			chunk_xput_done(b);
		chunk_flush(b);
		now = tern_now_ms();
		timers(b, now);
		if (now >= b->next_expiry_check) {
			/* At start and hourly: an expiry must not surprise anyone. */
			tern_expiry_warn(b->id.dir, b->id.id, now / 1000);
			b->next_expiry_check = now + 3600 * 1000;
		}
		if (tern_daemon_reload && b->batch.nsubs == 0) {
			tern_daemon_reload = 0;
			reload(b);
		}
		if (b->http && now >= b->next_metrics) {
			/* A snapshot a second: scrapes never touch the loop's state. */
			publish_metrics(b, now);
			b->next_metrics = now + 1000;
		}
		b->batch.now = now;
		rate_release(b, now);
		wait_ms = 0;
		if (batch_due(b, now, &wait_ms))
			batch_commit(b);
		if (b->sweep_deferred && b->batch.failures == 0)
			revocation_sweep(b);
		for (size_t i = 0; i < b->npeers; i++)
			if (b->peers[i].dirty && b->peers[i].live)
				deliver_pump(b, &b->peers[i]);
		/* Chunks after deliveries, a few a turn: they must not starve them. */
		for (size_t i = 0; i < b->npeers; i++)
			if (b->peers[i].chunk_dirty && b->peers[i].live)
				chunk_pump(b, &b->peers[i]);
	}
	b->batch.checkpoint = 1; /* sign the head before leaving */
	batch_commit(b);
	log_info("broker %s stopped", b->id.id);
	log_hold(0);
	return TERN_OK;
}

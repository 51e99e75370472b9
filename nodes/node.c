/* tern-node's skeleton: opening (configuration, store, sockets, HTTP
 * servers), the loop that runs one turn at a time (poll, serve, commit,
 * submit, timers), SIGHUP reload, and closing. What each turn does is in the
 * other files (node_int.h lists them).
 *
 * It sets up and tears down all of struct node; in the loop it keeps only
 * the turn's clock and timers (batch.now, the checkpoint schedule, next_*)
 * and leaves the rest to the files it calls, in an order that matters:
 * frames in, API requests, one commit, then what reads the committed state.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include <tern/config.h>
#include <tern/error.h>
#include <tern/log.h>

#include "daemon.h"
#include "node_int.h"
#include "syncer.h"
#include "prom.h"
#include "util.h"
#include "zmon.h"

#define MONITOR_ENDPOINT "inproc://tern-node-monitor"

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
	node_unshown_clear(n); /* a sender's standing may be back */
	log_info("reloaded: directory version %llu (was %llu), CRL number %lld",
	         (unsigned long long)tern_directory_version(n->id.dir), (unsigned long long)before,
	         (long long)tern_trust_crl_number(n->id.trust));
	n->last_audit = n->last_event = tern_now_ms();
}

static int start_http(node *n);
static int start_webhook(node *n);

/* A DEALER to the broker with this node's CURVE keys: the main connection,
 * and the bulk lane's (wire.proto, BulkHello), which are alike. */
static int dealer_open(node *n, void *ctx, void **out)
{
	const char *dom = TERN_HOP_ZAP_DOMAIN;
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int v = 100;

	*out = s;
	if (s == NULL ||
	    tern_hop_sockopts(s, (int)(n->hb_ivl_ms / 1000), (int)(n->hb_timeout_ms / 1000),
	                      tern_hop_frame_max(n->max_msg)) != TERN_OK ||
	    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &v, sizeof(v)) != 0 ||
	    (v = (int)tern_config_get_int(n->id.cfg, "delivery", "reconnect_max") * 1000,
	     zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &v, sizeof(v))) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, n->broker->curve_public, 32) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, tern_curvekey_public(n->id.curve), 32) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, tern_curvekey_secret(n->id.curve), 32) != 0 ||
	    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, dom, strlen(dom)) != 0)
		return TERN_EIO;
	return TERN_OK;
}

/* The bulk lane's ZMQ context and socket, made on a thread at nice 10:
 * libzmq starts the context's I/O thread with its first socket, and a new
 * thread takes its maker's niceness. That I/O thread does CurveZMQ for
 * every chunk (a megabyte's encryption or decryption each), and the main
 * connection's, on a context of its own, runs at the loop's priority. */
#define BULK_NICE 10

struct bulk_open {
	node *n;
	int rc, err;
};

static void *bulk_open_thread(void *arg)
{
	struct bulk_open *bo = arg;

	/* Only ever lower: a node started nicer stays so. Failing it, the
	 * lane's threads run at the loop's priority, as the main one's. */
	if (getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)) < BULK_NICE)
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BULK_NICE);
	bo->rc = dealer_open(bo->n, bo->n->bulk_ctx, &bo->n->bulk);
	bo->err = errno;
	return NULL;
}

static int bulk_open(node *n)
{
	struct bulk_open bo = {n, TERN_EIO, 0};
	pthread_t t;

	if ((n->bulk_ctx = zmq_ctx_new()) == NULL)
		return TERN_EIO;
	/* Its threads are told from the main connection's in top -H and the
	 * benchmarks: 2/ZMQbg/IO/0 (libzmq takes a number). */
	(void)zmq_ctx_set(n->bulk_ctx, ZMQ_THREAD_NAME_PREFIX, 2);
	if ((errno = pthread_create(&t, NULL, bulk_open_thread, &bo)) != 0) {
		log_warnx("the bulk lane's threads run at the loop's priority: %s",
		          strerror(errno));
		return dealer_open(n, n->bulk_ctx, &n->bulk);
	}
	pthread_join(t, NULL); /* the socket is the loop's from here */
	errno = bo.err;
	return bo.rc;
}

int node_open(const char *conf, node **out)
{
	node *n;
	MDB_txn *txn;
	int rc;

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
	do
		randombytes_buf(&n->instance, sizeof(n->instance));
	while (n->instance == 0);
	n->window = tern_config_get_int(n->id.cfg, "delivery", "submit_window");
	n->hb_ivl_ms = tern_config_get_int(n->id.cfg, "delivery", "heartbeat_interval") * 1000;
	n->hb_timeout_ms = tern_config_get_int(n->id.cfg, "delivery", "heartbeat_timeout") * 1000;
	n->skew_ms = tern_config_get_int(n->id.cfg, "federation", "max_clock_skew") * 1000;
	n->cp_ivl_ms = tern_config_get_int(n->id.cfg, "audit", "checkpoint_interval") * 1000;
	n->idle_ivl_ms = tern_config_get_int(n->id.cfg, "audit", "idle_checkpoint_interval") * 1000;
	n->hold_ms = tern_config_get_int(n->id.cfg, "delivery", "hold") * 1000;
	n->att_max = tern_config_get_int(n->id.cfg, "limits", "max_attachment_size");
	n->att_total = tern_config_get_int(n->id.cfg, "limits", "max_message_attachments");
	n->att_window = tern_config_get_int(n->id.cfg, "limits", "attachment_window");
	n->att_retain_ms = tern_config_get_int(n->id.cfg, "delivery", "attachment_retain") * 1000;
	if ((n->data_dir = strdup(tern_config_get(n->id.cfg, "node", "data_dir"))) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	tern_backoff_init(&n->hs_backoff, 100,
	                  tern_config_get_int(n->id.cfg, "delivery", "reconnect_max") * 1000);
	tern_lograte_init(&n->hs_log, 60 * 1000);

	if ((rc = node_store_open(tern_config_get(n->id.cfg, "node", "data_dir"), 0, &n->store)) !=
	    TERN_OK) {
		/* Short of memory, the open's one-time upgrades (the counts, the
		 * listing index) were not kept, and the conversion of JSON records
		 * kept only its whole transactions: a later start does the rest. */
		fprintf(stderr, "tern-node: cannot open the store in %s: %s (%s)%s\n",
		        tern_config_get(n->id.cfg, "node", "data_dir"), tern_strerror(rc),
		        tern_errdetail(),
		        rc == TERN_ENOMEM ? "; nothing was lost: start the node again to finish"
		                          : "");
		goto fail;
	}
	node_store_audit_dbs(n->store, &n->audit);
	if ((rc = node_held_load(n)) != TERN_OK) {
		fprintf(stderr, "tern-node: cannot read the held deliveries: %s%s\n",
		        tern_errdetail(),
		        rc == TERN_ENOMEM ? "; nothing was changed: start the node again" : "");
		goto fail;
	}
	if ((rc = node_xout_load(n)) != TERN_OK || (rc = node_xin_load(n)) != TERN_OK) {
		fprintf(stderr, "tern-node: cannot read the attachment transfers: %s\n",
		        tern_errdetail());
		goto fail;
	}
	snprintf(n->origin, sizeof(n->origin), "tern/%s/%s", tern_directory_federation(n->id.dir),
	         n->id.id);
	if ((rc = tern_daemon_trustmark_start(n->store, tern_store_dbi(n->store, NS_META),
	                                      &n->audit, &n->id, "tern-node")) != TERN_OK)
		goto fail;
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		goto fail;
	/* Unread, the resync point would read as "holds nothing": the broker
	 * would take this node for one put back from an empty copy. Damaged, it
	 * is read so, and said: the broker resends what it retains, and what
	 * this node holds already is dropped as a duplicate. */
	if ((rc = node_store_delivered_get(txn, n->store, n->dstore, n->epoch, &n->delivered)) ==
	    TERN_EMALFORMED) {
		log_warnx("%s; read as none: the broker will resend what it retains for this node, "
		          "and what is here already is dropped as a duplicate",
		          tern_errdetail());
		rc = TERN_OK;
	}
	if (rc != TERN_OK ||
	    ((rc = node_store_accepted_get(txn, n->store, n->astore, &n->amax)) != TERN_OK &&
	     rc != TERN_EMALFORMED)) { /* damaged acceptance numbers read as none, as before */
		mdb_txn_abort(txn);
		fprintf(stderr, "tern-node: cannot read where this node's deliveries stand: %s\n",
		        tern_errdetail());
		goto fail;
	}
	memcpy(n->h_store, n->dstore, 16);
	memcpy(n->h_epoch, n->epoch, 16);
	n->h_upto = n->delivered;
	mdb_txn_abort(txn);

	{
		api_handlers h;
		node_api_handlers(n, &h);
		if ((rc = api_server_open(tern_config_get(n->id.cfg, "node", "api_socket"), &h,
		                          n->store, &n->api)) != TERN_OK) {
			fprintf(stderr, "tern-node: %s\n", tern_errdetail());
			goto fail;
		}
	}
	n->ctx = zmq_ctx_new();
	if ((rc = dealer_open(n, n->ctx, &n->dealer)) != TERN_OK ||
	    (rc = bulk_open(n)) != TERN_OK) {
		fprintf(stderr, "tern-node: socket options: %s\n", zmq_strerror(errno));
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
	/* The bulk lane connects once this one's handshake succeeded
	 * (session.c): a refused node must not knock twice. */
	if (zmq_connect(n->dealer, tern_config_get(n->id.cfg, "broker", "endpoint")) != 0) {
		fprintf(stderr, "tern-node: cannot connect to %s: %s\n",
		        tern_config_get(n->id.cfg, "broker", "endpoint"), zmq_strerror(errno));
		rc = TERN_EIO;
		goto fail;
	}
	if ((rc = tern_syncer_new(&n->xsync)) != TERN_OK) {
		fprintf(stderr, "tern-node: %s\n", tern_errdetail());
		goto fail;
	}
	if ((rc = start_http(n)) != TERN_OK || (rc = start_webhook(n)) != TERN_OK)
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
	                     token, n->att_max, &n->http);
	sodium_memzero(token, tl);
	free(token);
	if (rc != TERN_OK)
		fprintf(stderr, "tern-node: HTTP API: %s\n", tern_errdetail());
	return rc;
}

/* The pusher of [webhook] url, unless it is off (webhook.h). */
static int start_webhook(node *n)
{
	const char *url = tern_config_get(n->id.cfg, "webhook", "url");
	uint8_t *key = NULL;
	size_t klen = 0;
	int rc;

	if (strcmp(url, "off") == 0)
		return TERN_OK;
	if ((rc =
	         tern_webhook_secret_load(url, tern_config_get(n->id.cfg, "webhook", "secret_file"),
	                                  &key, &klen)) == TERN_OK)
		rc = node_webhook_start(
		    url, key, klen, tern_config_get_int(n->id.cfg, "webhook", "max_backoff") * 1000,
		    n->store, &n->hook);
	if (key) {
		sodium_memzero(key, klen);
		free(key);
	}
	if (rc != TERN_OK)
		fprintf(stderr, "tern-node: %s\n", tern_errdetail());
	return rc;
}

void node_close(node **np)
{
	node *n;

	if (np == NULL || (n = *np) == NULL)
		return;
	node_xseal_stop(n);
	node_xopen_stop(n);          /* before node_xin_free: its jobs point into transfers */
	tern_syncer_free(&n->xsync); /* a sync under way ends; it was not counted */
	/* Before the store closes: the pusher reads it. What it delivered and
	 * the loop did not delete yet is posted again at the next start. */
	node_webhook_stop(&n->hook);
	node_batch_reset(n);
	free(n->batch.pushes_done);
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
	if (n->dealer) {
		/* The Bye, if queued, has a moment to leave (the linger is 0
		 * otherwise: a stop never waits on a broker gone). */
		int linger = 200;
		(void)zmq_setsockopt(n->dealer, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(n->dealer);
	}
	if (n->bulk)
		zmq_close(n->bulk);
	if (n->ctx)
		zmq_ctx_term(n->ctx);
	if (n->bulk_ctx)
		zmq_ctx_term(n->bulk_ctx);
	node_held_free(n);
	node_xout_free(n);
	node_xin_free(n);
	free(n->xbuf);
	free(n->data_dir);
	tern_store_close(&n->store);
	tern_sealcache_free(&n->seals);
	tern_sigcache_free(&n->sigs);
	tern_ident_free(&n->id);
	node_unshown_clear(n);
	sodium_memzero(n->inbox_key, sizeof(n->inbox_key));
	free(n);
	*np = NULL;
}

int node_run(node *n, volatile sig_atomic_t *stop)
{
	log_info("node %s started; broker %s at %s", n->id.id, n->broker->node_id,
	         tern_config_get(n->id.cfg, "broker", "endpoint"));
	n->last_rx = tern_now_ms();
	log_hold(1);
	while (!*stop) {
		/* The API's sockets are polled with the broker's: no client can hold
		 * the loop (api_server.h). */
		zmq_pollitem_t items[7 + API_SERVER_POLL_MAX] = {
		    {n->dealer, 0, ZMQ_POLLIN, 0},
		    {n->monitor, 0, ZMQ_POLLIN, 0},
		    {n->bulk, 0, ZMQ_POLLIN, 0},
		    {NULL, tern_syncer_fd(n->xsync), ZMQ_POLLIN, 0}};
		size_t napi = api_server_pollitems(n->api, items + 4, API_SERVER_POLL_MAX);
		int64_t now;
		int round, wait_ms = 50, rc, nitems = 4 + (int)napi;

		int hook_item = -1, xopen_item = -1, xseal_item = -1;

		/* Sends whose attachments the sealing thread finished (xfer_seal.c). */
		if (node_xseal_fd(n) >= 0) {
			xseal_item = nitems;
			items[nitems++] = (zmq_pollitem_t){NULL, node_xseal_fd(n), ZMQ_POLLIN, 0};
		}
		/* Chunks the opening thread is done with (xfer_open.c). */
		if (node_xopen_fd(n) >= 0) {
			xopen_item = nitems;
			items[nitems++] = (zmq_pollitem_t){NULL, node_xopen_fd(n), ZMQ_POLLIN, 0};
		}
		/* Webhook pushes delivered, to delete (webhook.h). */
		if (n->hook) {
			hook_item = nitems;
			items[nitems++] =
			    (zmq_pollitem_t){NULL, node_webhook_fd(n->hook), ZMQ_POLLIN, 0};
		}
		(void)node_batch_due(n, tern_now_ms(), &wait_ms); /* deferred results */
		log_flush(); /* the turn's lines, in one write (log.h) */
		rc = zmq_poll(items, nitems, wait_ms);

		if (rc < 0 && errno != EINTR) {
			log_warn("zmq_poll");
			break;
		}
		n->batch.now = tern_now_ms();
		if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
			node_on_monitor(n);
		node_session_reconnect(n);
		/* Messages first: the bulk lane's chunks, a few a turn, after them. */
		if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
			node_on_dealer(n);
		if (rc > 0 && (items[2].revents & ZMQ_POLLIN))
			node_on_bulk(n);
		if (rc > 0 && xopen_item >= 0 && (items[xopen_item].revents & ZMQ_POLLIN))
			node_xopen_done(n);
		node_xin_flush(n); /* counts what the syncer finished (items[3]) */
		api_server_serve(n->api, items + 4, napi, rc > 0, tern_now_ms());
		if (rc > 0 && xseal_item >= 0 && (items[xseal_item].revents & ZMQ_POLLIN))
			node_xseal_done(n);
		if (rc > 0 && hook_item >= 0 && (items[hook_item].revents & ZMQ_POLLIN))
			node_pushes_take(n);
		now = tern_now_ms();
		n->batch.now = now;
		/* Before the checkpoint below, which is to sign its entry. */
		if (n->http && now >= n->next_http_refusals) {
			node_count_refusals(n);
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
		wait_ms = 0;
		if (node_batch_due(n, now, &wait_ms))
			node_batch_commit(n);
		/* An idle node must not keep its ephemeral sealing key past its
		 * lifetime waiting for the next message. */
		tern_sealcache_expire(n->seals, now);
		/* Witnessing follows checkpoints of real events, and the idle ones;
		 * not the ones that only cover cosignatures, or peers would keep
		 * cosigning each other's cosignatures forever. */
		if (round && n->connected) {
			n->last_round = now;
			node_witness_round(n, NULL);
		}
		api_server_serve_waiters(n->api, now);
		node_held_tick(n, now);
		node_xin_tick(n, now);
		node_xout_tick(n, now);
		node_submit_pump(n);
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
			node_publish_metrics(n);
			n->next_metrics = now + 2000;
		}
		node_session_tick(n, now);
	}
	/* Sign what the log holds now, so an export after a clean stop covers it. */
	n->batch.checkpoint = 1;
	node_batch_commit(n);
	node_session_bye(n);
	log_info("node %s stopped", n->id.id);
	log_hold(0);
	return TERN_OK;
}

/* The broker's operator commands: tern queues, queue show, dlq, peers. Each
 * asks the running broker over its control socket; when the broker is down,
 * the read-only ones open its store read-only instead (as postqueue -p does),
 * and say so. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/config.h>
#include <tern/directory.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/trust.h>

#include "commands.h"
#include "node_store.h"
#include "nodeapi.h"
#include "queue.h"
#include "xfer.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("Usage: tern queues -c CONF [--json]\n"
	      "\n"
	      "With a broker's configuration: per destination, the messages queued (depth),\n"
	      "their bytes, the age of the oldest, deliveries in flight, redelivery attempts,\n"
	      "dead letters, whether the node is connected, and the attachment bytes held for\n"
	      "it; then the attachment bytes kept for restores after every recipient had them\n"
	      "([delivery] retain). It asks the running broker;\n"
	      "when the broker is down it reads the store read-only and says so (in-flight,\n"
	      "attempts and connections are then unknown).\n"
	      "With a node's configuration: the node's outbox by state and its inbox.\n"
	      "\n"
	      "Examples:\n"
	      "  tern queues -c /tmp/fed/broker/broker.conf\n"
	      "  tern queues -c /tmp/fed/broker/broker.conf --json | jq '.destinations[]'\n"
	      "  tern queues -c /tmp/fed/unhcr/node.conf\n",
	      f);
}

/* The broker is down: the same view, from the store alone. */
static int store_view(const tern_config *cfg, json_t **out)
{
	tern_store *s = NULL;
	MDB_txn *txn = NULL;
	bq_dest *d = NULL;
	size_t n = 0;
	uint64_t retained = 0;
	int rc;

	if ((rc = bq_open_rdonly(tern_config_get(cfg, "broker", "data_dir"), &s)) != TERN_OK)
		return rc;
	if ((rc = tern_store_read_begin(s, &txn)) == TERN_OK &&
	    (rc = bq_stats(txn, s, &d, &n)) == TERN_OK &&
	    (rc = xfer_retained_bytes(txn, s, &retained)) == TERN_OK)
		*out = json_pack("{s:b, s:s, s:s, s:o, s:I}", "ok", 1, "source", "store", "broker",
		                 tern_config_get(cfg, "broker", "id"), "destinations",
		                 bq_stats_json(d, n, tern_now_ms()), "transfer_retained_bytes",
		                 (json_int_t)retained);
	if (txn)
		mdb_txn_abort(txn);
	free(d);
	tern_store_close(&s);
	return rc;
}

static void fmt_bytes(json_int_t b, char *buf, size_t len)
{
	if (b < 10 * 1024)
		snprintf(buf, len, "%lld", (long long)b);
	else if (b < 10 * 1024 * 1024)
		snprintf(buf, len, "%lldK", (long long)(b / 1024));
	else
		snprintf(buf, len, "%lldM", (long long)(b / (1024 * 1024)));
}

static void fmt_age(json_int_t ms, int depth, char *buf, size_t len)
{
	long long s = (long long)ms / 1000;

	if (!depth)
		snprintf(buf, len, "-");
	else if (s < 120)
		snprintf(buf, len, "%llds", s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%lldh", s / 3600);
	else
		snprintf(buf, len, "%lldd", s / 86400);
}

static void print_broker(const json_t *v)
{
	int live = strcmp(json_string_value(json_object_get(v, "source")), "daemon") == 0;
	size_t i;
	json_t *d;

	printf("broker %s: %s\n", json_string_value(json_object_get(v, "broker")),
	       live ? "running" : "not running; read-only view of its store");
	printf("%-20s %7s %7s %7s %9s %8s %5s %-9s %s\n", "DESTINATION", "DEPTH", "BYTES", "OLDEST",
	       "IN-FLIGHT", "ATTEMPTS", "DEAD", "CONNECTED", "ATTACHED");
	json_array_foreach(json_object_get(v, "destinations"), i, d)
	{
		char bytes[24], age[24], fl[24] = "-", at[24] = "-", att[24];
		json_int_t depth = json_integer_value(json_object_get(d, "depth"));
		fmt_bytes(json_integer_value(json_object_get(d, "bytes")), bytes, sizeof(bytes));
		/* attachment bytes the broker holds for it (docs/attachments.md) */
		fmt_bytes(json_integer_value(json_object_get(d, "transfer_bytes")), att,
		          sizeof(att));
		fmt_age(json_integer_value(json_object_get(d, "oldest_age_ms")), depth != 0, age,
		        sizeof(age));
		if (live) {
			snprintf(fl, sizeof(fl), "%lld",
			         (long long)json_integer_value(json_object_get(d, "in_flight")));
			snprintf(at, sizeof(at), "%lld",
			         (long long)json_integer_value(json_object_get(d, "attempts")));
		}
		printf("%-20s %7lld %7s %7s %9s %8s %5lld %-9s %s\n",
		       json_string_value(json_object_get(d, "id")), (long long)depth, bytes, age,
		       fl, at, (long long)json_integer_value(json_object_get(d, "dead_letters")),
		       !live                                           ? "-"
		       : json_is_true(json_object_get(d, "connected")) ? "yes"
		                                                       : "no",
		       att);
	}
	{
		/* Not a destination's: kept after every recipient had them, for one
		 * restored from an older backup ([delivery] retain). */
		char kept[24];
		json_int_t r = json_integer_value(json_object_get(v, "transfer_retained_bytes"));
		fmt_bytes(r, kept, sizeof(kept));
		if (r > 0)
			printf("attachments kept for restores ([delivery] retain): %s\n", kept);
	}
}

static int node_store_view(const tern_config *cfg, json_t **out)
{
	tern_store *s = NULL;
	MDB_txn *txn = NULL;
	json_t *counts = NULL;
	int rc;

	if ((rc = node_store_open(tern_config_get(cfg, "node", "data_dir"), 1, &s)) == TERN_OK &&
	    (rc = tern_store_read_begin(s, &txn)) == TERN_OK &&
	    (rc = node_store_counts(txn, s, &counts)) == TERN_OK)
		*out = json_pack("{s:s, s:s, s:O?, s:o}", "source", "store", "node_id",
		                 tern_config_get(cfg, "node", "id"), "webhooks",
		                 json_object_get(counts, "webhooks"), "counts", counts);
	if (txn)
		mdb_txn_abort(txn);
	tern_store_close(&s);
	return rc;
}

static int node_queues(const char *conf, int json)
{
	tern_config *cfg = NULL;
	json_t *req, *resp = NULL, *counts, *v;
	const char *k;
	int rc, ret = CLI_FAIL;

	if (tern_config_load(conf, TERN_CONFIG_NODE, &cfg) != TERN_OK)
		goto out;
	req = json_pack("{s:i, s:s}", "v", TERN_API_VERSION, "op", "node.info");
	rc = tern_api_call(tern_config_get(cfg, "node", "api_socket"), req, 5000, &resp);
	json_decref(req);
	if (rc == TERN_ENOENT || rc == TERN_EIO) {
		json_decref(resp);
		resp = NULL;
		if ((rc = node_store_view(cfg, &resp)) != TERN_OK) {
			cli_fail(rc, "the node is not running and its store cannot be read");
			goto out;
		}
	} else if (rc != TERN_OK || !json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "tern queues: the node answered: %s\n",
		        json_string_value(json_object_get(resp, "message")) ?: tern_errdetail());
		goto out;
	} else {
		/* The same shape as the read-only view. node_id is the answer's
		 * JSON string, so it is packed with O: s would read the json_t as
		 * a char * and print its type tag (\u0002). */
		json_t *live = json_pack("{s:s, s:O, s:O, s:{s:O, s:O}, s:O?}", "source", "daemon",
		                         "node_id", json_object_get(resp, "node_id"), "connected",
		                         json_object_get(resp, "connected"), "counts", "outbox",
		                         json_object_get(resp, "outbox"), "inbox",
		                         json_object_get(resp, "inbox"), "webhooks",
		                         json_object_get(resp, "webhooks"));
		json_decref(resp);
		resp = live;
	}
	if (json) {
		json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		int live =
		    strcmp(json_string_value(json_object_get(resp, "source")), "daemon") == 0;
		counts = json_object_get(resp, "counts");
		printf("node %s: %s\n", json_string_value(json_object_get(resp, "node_id")),
		       !live ? "not running; read-only view of its store"
		       : json_is_true(json_object_get(resp, "connected"))
		           ? "running, connected"
		           : "running, not connected");
		printf("outbox\n");
		json_object_foreach(json_object_get(counts, "outbox"), k, v)
		    printf("  %-12s %lld\n", k, (long long)json_integer_value(v));
		printf("inbox (not acknowledged) %lld\n",
		       (long long)json_integer_value(json_object_get(counts, "inbox")));
		printf("webhook pushes pending %lld\n",
		       (long long)json_integer_value(
		           json_object_get(json_object_get(resp, "webhooks"), "pending")));
	}
	ret = CLI_OK;
out:
	json_decref(resp);
	tern_config_free(&cfg);
	return ret;
}

int cmd_queues(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	tern_config *cfg = NULL;
	json_t *req, *resp = NULL;
	int c, json = 0, rc, ret = CLI_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("queues", "unknown option");
		}
	}
	if (conf == NULL || optind != argc)
		return cli_usage_error("queues", "give -c CONF (a broker's or a node's)");
	if (tern_config_load(conf, TERN_CONFIG_BROKER, &cfg) != TERN_OK) {
		tern_config_free(&cfg);
		if (tern_config_load(conf, TERN_CONFIG_NODE, &cfg) == TERN_OK) {
			tern_config_free(&cfg);
			return node_queues(conf, json);
		}
		fprintf(stderr, "tern queues: %s is neither a broker nor a node configuration:\n%s",
		        conf, cfg ? tern_config_errors(cfg) : tern_errdetail());
		tern_config_free(&cfg);
		return CLI_FAIL;
	}
	req = json_pack("{s:i, s:s}", "v", TERN_API_VERSION, "op", "queues");
	rc = tern_api_call(tern_config_get(cfg, "broker", "control_socket"), req, 5000, &resp);
	json_decref(req);
	if (rc == TERN_ENOENT || rc == TERN_EIO) {
		json_decref(resp);
		resp = NULL;
		if ((rc = store_view(cfg, &resp)) != TERN_OK) {
			cli_fail(rc, "the broker is not running and its store cannot be read");
			goto out;
		}
	} else if (rc != TERN_OK || !json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "tern queues: the broker answered: %s\n",
		        json_string_value(json_object_get(resp, "message")) ?: tern_errdetail());
		goto out;
	}
	json_object_del(resp, "ok");
	if (json) {
		json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		print_broker(resp);
	}
	ret = CLI_OK;
out:
	json_decref(resp);
	tern_config_free(&cfg);
	return ret;
}

/* --- queue show, dlq, peers ------------------------------------------------------- */

/* Loads a broker configuration and asks the running broker; *down = 1 when it
 * is not running (then *resp is NULL and the caller may read the store). */
static int broker_ask(const char *cmd, const char *conf, json_t *req, tern_config **cfg,
                      json_t **resp, int *down)
{
	int rc;

	*resp = NULL;
	*down = 0;
	if (tern_config_load(conf, TERN_CONFIG_BROKER, cfg) != TERN_OK) {
		fprintf(stderr, "tern %s: %s is not a broker configuration:\n%s", cmd, conf,
		        *cfg ? tern_config_errors(*cfg) : tern_errdetail());
		json_decref(req);
		return CLI_FAIL;
	}
	json_object_set_new(req, "v", json_integer(TERN_API_VERSION));
	rc = tern_api_call(tern_config_get(*cfg, "broker", "control_socket"), req, 10000, resp);
	json_decref(req);
	if (rc == TERN_ENOENT || rc == TERN_EIO) {
		json_decref(*resp);
		*resp = NULL;
		*down = 1;
		return CLI_OK;
	}
	if (rc != TERN_OK || !json_is_true(json_object_get(*resp, "ok"))) {
		fprintf(stderr, "tern %s: %s\n", cmd,
		        json_string_value(json_object_get(*resp, "message")) ?: tern_errdetail());
		return json_is_false(json_object_get(*resp, "ok")) ? CLI_NO : CLI_FAIL;
	}
	json_object_del(*resp, "ok");
	return CLI_OK;
}

/* The broker is down: run fn on its store, read-only. */
static int store_read(const tern_config *cfg, int (*fn)(MDB_txn *, tern_store *, void *), void *arg)
{
	tern_store *s = NULL;
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = bq_open_rdonly(tern_config_get(cfg, "broker", "data_dir"), &s)) == TERN_OK &&
	    (rc = tern_store_read_begin(s, &txn)) == TERN_OK)
		rc = fn(txn, s, arg);
	if (txn)
		mdb_txn_abort(txn);
	tern_store_close(&s);
	return rc;
}

static void print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
}

struct show_arg {
	const char *dest;
	json_t *items;
};

static int show_read(MDB_txn *txn, tern_store *s, void *arg)
{
	struct show_arg *a = arg;
	return bq_show(txn, s, a->dest, 1000, &a->items);
}

static int queue_show(const char *conf, const char *dest, int json)
{
	tern_config *cfg = NULL;
	json_t *resp = NULL;
	struct show_arg a = {dest, NULL};
	int down, rc, ret;
	size_t i;
	json_t *it;

	ret = broker_ask(
	    "queue", conf,
	    json_pack("{s:s, s:s, s:i}", "op", "queue.show", "destination", dest, "max", 1000),
	    &cfg, &resp, &down);
	if (ret == CLI_OK && down) {
		if ((rc = store_read(cfg, show_read, &a)) != TERN_OK) {
			ret =
			    cli_fail(rc, "the broker is not running and its store cannot be read");
			goto out;
		}
		resp = json_pack("{s:s, s:s, s:o}", "source", "store", "destination", dest, "items",
		                 a.items);
	}
	if (ret != CLI_OK)
		goto out;
	if (json) {
		print_json(resp);
		goto out;
	}
	if (down)
		printf("(broker not running: read-only view of its store)\n");
	printf("%-6s %-36s %-20s %-10s %-20s %s\n", "SEQ", "MESSAGE", "TYPE", "SENDER", "CASE",
	       "ENQUEUED");
	json_array_foreach(json_object_get(resp, "items"), i, it)
	{
		char when[40];
		nodeapi_time(json_integer_value(json_object_get(it, "enqueued_at")), when,
		             sizeof(when));
		printf("%-6lld %-36s %-20s %-10s %-20s %s\n",
		       (long long)json_integer_value(json_object_get(it, "seq")),
		       json_string_value(json_object_get(it, "message_id")) ?: "",
		       json_string_value(json_object_get(it, "type"))
		           ?: json_string_value(json_object_get(it, "kind")),
		       json_string_value(json_object_get(it, "sender")) ?: "-",
		       json_string_value(json_object_get(it, "case_id")) ?: "-", when);
	}
	printf("%zu item(s) for %s\n", json_array_size(json_object_get(resp, "items")), dest);
out:
	json_decref(resp);
	tern_config_free(&cfg);
	return ret;
}

static void dlq_collect(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                        void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:I}", "destination", rcpt,
	                                     "message_id", msgid, "reason", reason,
	                                     "dead_lettered_at", (json_int_t)at));
}

static int dlq_read(MDB_txn *txn, tern_store *s, void *arg)
{
	return bq_dlq_scan(txn, s, dlq_collect, arg);
}

static int dlq(const char *conf, const char *action, const char *msgid, int json)
{
	tern_config *cfg = NULL;
	json_t *resp = NULL, *it;
	char op[16];
	int down, rc, ret;
	size_t i;

	snprintf(op, sizeof(op), "dlq.%s", action);
	ret = broker_ask("dlq", conf,
	                 msgid ? json_pack("{s:s, s:s}", "op", op, "message_id", msgid)
	                       : json_pack("{s:s}", "op", op),
	                 &cfg, &resp, &down);
	if (ret == CLI_OK && down) {
		if (msgid) {
			fprintf(stderr,
			        "tern dlq: the broker is not running; %s needs it (start it, "
			        "then try again)\n",
			        action);
			ret = CLI_FAIL;
			goto out;
		}
		json_t *list = json_array();
		if ((rc = store_read(cfg, dlq_read, list)) != TERN_OK) {
			json_decref(list);
			ret =
			    cli_fail(rc, "the broker is not running and its store cannot be read");
			goto out;
		}
		resp = json_pack("{s:s, s:o}", "source", "store", "dead_letters", list);
	}
	if (ret != CLI_OK)
		goto out;
	if (json) {
		print_json(resp);
	} else if (msgid) {
		printf("%s %s for %lld destination(s); the action is in the broker's audit log\n",
		       strcmp(action, "retry") == 0 ? "requeued" : "dropped", msgid,
		       (long long)json_integer_value(json_object_get(resp, "destinations")));
	} else {
		if (down)
			printf("(broker not running: read-only view of its store)\n");
		printf("%-20s %-36s %-24s %s\n", "DESTINATION", "MESSAGE", "REASON",
		       "DEAD-LETTERED");
		json_array_foreach(json_object_get(resp, "dead_letters"), i, it)
		{
			char when[40];
			nodeapi_time(json_integer_value(json_object_get(it, "dead_lettered_at")),
			             when, sizeof(when));
			printf("%-20s %-36s %-24s %s\n",
			       json_string_value(json_object_get(it, "destination")),
			       json_string_value(json_object_get(it, "message_id")),
			       json_string_value(json_object_get(it, "reason")), when);
		}
	}
out:
	json_decref(resp);
	tern_config_free(&cfg);
	return ret;
}

/* The broker is down: the members of the directory file it would load at
 * start, checked against the CA and CRL as it would (revoked from the CRL),
 * in the live view's shape. Nothing live is known: no node is connected, none
 * was seen, no software named. */
static int peers_directory_view(const tern_config *cfg, json_t **out)
{
	tern_trust *trust = NULL;
	tern_directory *dir = NULL;
	json_t *arr = NULL;
	int rc;

	*out = NULL;
	if ((rc = tern_trust_load(tern_config_get(cfg, "federation", "ca"),
	                          tern_config_get(cfg, "federation", "crl"), &trust)) != TERN_OK ||
	    (rc = tern_directory_load(tern_config_get(cfg, "federation", "directory"), trust, 0,
	                              &dir)) != TERN_OK)
		goto cleanup;
	if ((arr = json_array()) == NULL) {
		rc = TERN_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < tern_directory_count(dir); i++) {
		const tern_member *m = tern_directory_at(dir, i);
		if (m->roles & TERN_ROLE_BROKER)
			continue;
		if (json_array_append_new(
		        arr, json_pack("{s:s, s:s, s:b, s:n, s:s, s:I, s:b}", "id", m->node_id,
		                       "agency", m->agency ? m->agency : "", "connected", 0,
		                       "last_seen_ms_ago", "software", "", "certificate_expires_at",
		                       (json_int_t)m->cert_not_after, "revoked", m->revoked)) !=
		    0) {
			rc = TERN_ENOMEM;
			goto cleanup;
		}
	}
	*out = json_pack("{s:s, s:s, s:o}", "source", "directory", "broker",
	                 tern_config_get(cfg, "broker", "id"), "peers", arr);
	arr = NULL; /* "o" took it, on failure too */
	rc = *out ? TERN_OK : TERN_ENOMEM;
cleanup:
	json_decref(arr);
	tern_directory_free(&dir);
	tern_trust_free(&trust);
	return rc;
}

static int peers(const char *conf, int json)
{
	tern_config *cfg = NULL;
	json_t *resp = NULL, *it;
	int down, rc, ret;
	size_t i;

	ret = broker_ask("peers", conf, json_pack("{s:s}", "op", "peers"), &cfg, &resp, &down);
	if (ret == CLI_OK && down) {
		if ((rc = peers_directory_view(cfg, &resp)) != TERN_OK) {
			ret = cli_fail(rc, "the broker is not running and its directory cannot be "
			                   "read");
			goto out;
		}
		/* On stderr: stdout keeps the same table (or JSON) as the live view. */
		fprintf(stderr, "tern peers: the broker is not running: read-only view of its "
		                "directory file (no node is connected; last seen and software "
		                "are unknown)\n");
	}
	if (ret != CLI_OK)
		goto out;
	if (json) {
		print_json(resp);
		goto out;
	}
	printf("%-12s %-9s %-10s %-22s %-12s %s\n", "NODE", "CONNECTED", "LAST-SEEN", "SOFTWARE",
	       "CERT-EXPIRES", "AGENCY");
	json_array_foreach(json_object_get(resp, "peers"), i, it)
	{
		char seen[24] = "-", exp[40];
		json_t *ls = json_object_get(it, "last_seen_ms_ago");
		const char *sw = json_string_value(json_object_get(it, "software"));
		if (json_is_integer(ls))
			snprintf(seen, sizeof(seen), "%llds ago",
			         (long long)json_integer_value(ls) / 1000);
		nodeapi_time(json_integer_value(json_object_get(it, "certificate_expires_at")) *
		                 1000,
		             exp, sizeof(exp));
		exp[10] = 0; /* the date says enough */
		printf("%-12s %-9s %-10s %-22s %-12s %s%s\n",
		       json_string_value(json_object_get(it, "id")),
		       json_is_true(json_object_get(it, "connected")) ? "yes" : "no", seen,
		       sw && sw[0] ? sw : "-", exp,
		       json_string_value(json_object_get(it, "agency")),
		       json_is_true(json_object_get(it, "revoked")) ? " (REVOKED)" : "");
	}
out:
	json_decref(resp);
	tern_config_free(&cfg);
	return ret;
}

static int parse_common(const char *cmd, int argc, char **argv, const char **conf, int *json)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	int c;

	optind = 1;
	*conf = NULL;
	*json = 0;
	while ((c = getopt_long(argc, argv, "c:j", opts, NULL)) != -1) {
		if (c == 'c')
			*conf = optarg;
		else if (c == 'j')
			*json = 1;
		else
			return cli_usage_error(cmd, "unknown option");
	}
	if (*conf == NULL)
		return cli_usage_error(cmd, "give -c BROKERCONF");
	return CLI_OK;
}

int cmd_queue(int argc, char **argv)
{
	const char *conf;
	int json, rc;

	if (cli_wants_help(argc, argv)) {
		puts("Usage: tern queue show -c BROKERCONF DESTINATION [--json]\n"
		     "\n"
		     "Lists the headers (message id, type, sender, case, times; never a body) of\n"
		     "what is queued for DESTINATION, in delivery order, up to 1,000. Reads the\n"
		     "store read-only when the broker is down.\n"
		     "\n"
		     "Example:\n"
		     "  tern queue show -c /tmp/fed/broker/broker.conf sweden");
		return CLI_OK;
	}
	if ((rc = parse_common("queue", argc, argv, &conf, &json)) != CLI_OK)
		return rc;
	if (argc - optind != 2 || strcmp(argv[optind], "show") != 0)
		return cli_usage_error("queue", "usage: tern queue show -c BROKERCONF DESTINATION");
	return queue_show(conf, argv[optind + 1], json);
}

int cmd_dlq(int argc, char **argv)
{
	const char *conf;
	int json, rc;

	if (cli_wants_help(argc, argv)) {
		puts(
		    "Usage: tern dlq -c BROKERCONF list [--json]\n"
		    "       tern dlq -c BROKERCONF retry MSGID\n"
		    "       tern dlq -c BROKERCONF drop MSGID\n"
		    "\n"
		    "The broker's dead-letter queue: messages that expired or ran out of delivery\n"
		    "attempts. retry queues one again for every destination it died for (with a\n"
		    "fresh time-to-live); drop discards it. Both need the running broker and are\n"
		    "recorded in its audit log with the operator's uid; list reads the store\n"
		    "read-only when the broker is down.\n"
		    "\n"
		    "Examples:\n"
		    "  tern dlq -c /tmp/fed/broker/broker.conf list\n"
		    "  tern dlq -c /tmp/fed/broker/broker.conf retry 01a2...");
		return CLI_OK;
	}
	if ((rc = parse_common("dlq", argc, argv, &conf, &json)) != CLI_OK)
		return rc;
	if (argc - optind == 1 && strcmp(argv[optind], "list") == 0)
		return dlq(conf, "list", NULL, json);
	if (argc - optind == 2 &&
	    (strcmp(argv[optind], "retry") == 0 || strcmp(argv[optind], "drop") == 0))
		return dlq(conf, argv[optind], argv[optind + 1], json);
	return cli_usage_error("dlq", "give list, retry MSGID or drop MSGID");
}

int cmd_peers(int argc, char **argv)
{
	const char *conf;
	int json, rc;

	if (cli_wants_help(argc, argv)) {
		puts("Usage: tern peers -c BROKERCONF [--json]\n"
		     "\n"
		     "Every node of the directory: connected or not, when last heard from, the\n"
		     "software its Hello named, and when its certificate expires. It asks the\n"
		     "running broker; when the broker is down it reads the directory file the\n"
		     "broker would load (checked against the CA and CRL) and says so on stderr\n"
		     "(no node is then connected; last seen and software are unknown).\n"
		     "\n"
		     "Example:\n"
		     "  tern peers -c /tmp/fed/broker/broker.conf");
		return CLI_OK;
	}
	if ((rc = parse_common("peers", argc, argv, &conf, &json)) != CLI_OK)
		return rc;
	if (optind != argc)
		return cli_usage_error("peers", "no arguments besides -c and --json");
	return peers(conf, json);
}

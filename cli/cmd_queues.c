/* tern queues: what is queued where. Asks the running broker over its control
 * socket; when the broker is down, opens its store read-only instead (as
 * postqueue -p does), and says so. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/config.h>
#include <tern/error.h>

#include "commands.h"
#include "nodeapi.h"
#include "queue.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("Usage: tern queues -c CONF [--json]\n"
	      "\n"
	      "With a broker's configuration: per destination, the messages queued (depth),\n"
	      "their bytes, the age of the oldest, deliveries in flight, redelivery attempts,\n"
	      "dead letters, and whether the node is connected. It asks the running broker;\n"
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
	int rc;

	if ((rc = bq_open_rdonly(tern_config_get(cfg, "broker", "data_dir"), &s)) != TERN_OK)
		return rc;
	if ((rc = tern_store_read_begin(s, &txn)) == TERN_OK &&
	    (rc = bq_stats(txn, s, &d, &n)) == TERN_OK)
		*out = json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "source", "store", "broker",
		                 tern_config_get(cfg, "broker", "id"), "destinations",
		                 bq_stats_json(d, n, tern_now_ms()));
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
	printf("%-20s %7s %7s %7s %9s %8s %5s %s\n", "DESTINATION", "DEPTH", "BYTES", "OLDEST",
	       "IN-FLIGHT", "ATTEMPTS", "DEAD", "CONNECTED");
	json_array_foreach(json_object_get(v, "destinations"), i, d)
	{
		char bytes[24], age[24], fl[24] = "-", at[24] = "-";
		json_int_t depth = json_integer_value(json_object_get(d, "depth"));
		fmt_bytes(json_integer_value(json_object_get(d, "bytes")), bytes, sizeof(bytes));
		fmt_age(json_integer_value(json_object_get(d, "oldest_age_ms")), depth != 0, age,
		        sizeof(age));
		if (live) {
			snprintf(fl, sizeof(fl), "%lld",
			         (long long)json_integer_value(json_object_get(d, "in_flight")));
			snprintf(at, sizeof(at), "%lld",
			         (long long)json_integer_value(json_object_get(d, "attempts")));
		}
		printf("%-20s %7lld %7s %7s %9s %8s %5lld %s\n",
		       json_string_value(json_object_get(d, "id")), (long long)depth, bytes, age,
		       fl, at, (long long)json_integer_value(json_object_get(d, "dead_letters")),
		       !live                                           ? "-"
		       : json_is_true(json_object_get(d, "connected")) ? "yes"
		                                                       : "no");
	}
}

static int node_queues(const char *conf, int json)
{
	json_t *resp = NULL;
	int rc = nodeapi_call("queues", conf, json_pack("{s:s}", "op", "node.info"), 0, &resp);
	const char *k;
	json_t *v;

	if (rc != CLI_OK) {
		json_decref(resp);
		return rc;
	}
	if (json) {
		json_dumpf(resp, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("node %s\n", json_string_value(json_object_get(resp, "node")) ?: "");
		json_object_foreach(resp, k, v) if (json_is_integer(v))
		    printf("  %-20s %lld\n", k, (long long)json_integer_value(v));
	}
	json_decref(resp);
	return CLI_OK;
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

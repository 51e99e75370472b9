/* tern messages: the messages a node sent and received, filtered, a page at
 * a time (the local API's messages.list; docs/api.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/error.h>

#include "commands.h"
#include "http_int.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs(
	    "Usage: tern messages -c NODECONF [--sent|--received] [--case ID] [--type TYPE]\n"
	    "                     [--state STATE] [--peer NODE] [--since TIME] [--until TIME]\n"
	    "                     [--limit N] [--cursor C | --all] [--json]\n"
	    "\n"
	    "Lists the messages this node sent and received, oldest first: ids, types,\n"
	    "cases, peers and states, never bodies. Receipts are not listed (they show as\n"
	    "their messages' states).\n"
	    "\n"
	    "  --sent, --received  one direction (default: both)\n"
	    "  --case ID           one case\n"
	    "  --type TYPE         one message type (case-referral, ...)\n"
	    "  --state STATE       sent: queued, at-broker, delivered, rejected, expired;\n"
	    "                      received: accepted, refused\n"
	    "  --peer NODE         a recipient of a sent message, the sender of a received one\n"
	    "  --since, --until    times (RFC 3339, or a date for its midnight UTC): created\n"
	    "                      (sent) or received at or after --since, before --until\n"
	    "  --limit N           messages a page, 1 to 1000 (default 100)\n"
	    "  --cursor C          the page after the one that printed C\n"
	    "  --all               every page, following the cursors\n"
	    "  --json              the node's answer as JSON (with --all, one object with\n"
	    "                      every page's messages)\n"
	    "\n"
	    "Without --all, a page that has more after it ends with 'next page: --cursor C'\n"
	    "on standard error (in \"next_cursor\" with --json). A page reads at most 2,000\n"
	    "entries of the node's index: when it stopped there it may hold fewer messages,\n"
	    "and says so (docs/api.md, messages.list).\n"
	    "\n"
	    "Exit status: 0 done, 1 an argument the node refused, 2 usage, 3 node not\n"
	    "reachable.\n"
	    "\n"
	    "Examples:\n"
	    "  tern messages -c /tmp/fed/unhcr/node.conf\n"
	    "  tern messages -c /tmp/fed/unhcr/node.conf --sent --case AMM-26C00417\n"
	    "  tern messages -c /tmp/fed/unhcr/node.conf --received --state refused --since "
	    "2026-12-01\n"
	    "  tern messages -c /tmp/fed/unhcr/node.conf --json --limit 50 --cursor "
	    "v1.0000000000000032\n"
	    "  tern messages -c /tmp/fed/unhcr/node.conf --all --json | jq '.messages | length'\n",
	    f);
}

/* "2026-12-06" (midnight UTC) or RFC 3339: epoch ms; -1 if neither. */
static long long parse_time(const char *s)
{
	char full[40];
	int64_t ms;

	if (strlen(s) == 10) {
		snprintf(full, sizeof(full), "%sT00:00:00Z", s);
		s = full;
	}
	return node_http_time_parse(s, &ms) == TERN_OK ? (long long)ms : -1;
}

/* The human form: one line a message. */
static void print_page(const json_t *msgs, int header)
{
	size_t i;
	json_t *m;

	if (header)
		printf("%-23s  %-4s  %-36s  %-25s  %-16s  %-16s  %s\n", "WHEN", "DIR", "MESSAGE",
		       "TYPE", "CASE", "PEER", "STATE");
	json_array_foreach(msgs, i, m)
	{
		char when[40], peers[256] = "";
		int sent = strcmp(cli_json_str(m, "direction"), "sent") == 0;
		json_t *r;
		size_t k;
		nodeapi_time(
		    json_integer_value(json_object_get(m, sent ? "created_at" : "received_at")),
		    when, sizeof(when));
		if (sent)
			json_array_foreach(json_object_get(m, "recipients"), k, r) snprintf(
			    peers + strlen(peers), sizeof(peers) - strlen(peers), "%s%s",
			    k ? "," : "", json_string_value(r) ? json_string_value(r) : "");
		else
			snprintf(peers, sizeof(peers), "%s", cli_json_str(m, "sender"));
		printf("%-23s  %-4s  %-36s  %-25s  %-16s  %-16s  %s%s%s\n", when,
		       sent ? "out" : "in", cli_json_str(m, "message_id"), cli_json_str(m, "type"),
		       cli_json_str(m, "case_id"), peers, cli_json_str(m, "state"),
		       cli_json_str(m, "reason_code")[0] ? " " : "",
		       cli_json_str(m, "reason_code"));
	}
}

int cmd_messages(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"sent", no_argument, NULL, 'o'},
	                                     {"received", no_argument, NULL, 'i'},
	                                     {"case", required_argument, NULL, 'C'},
	                                     {"type", required_argument, NULL, 't'},
	                                     {"state", required_argument, NULL, 's'},
	                                     {"peer", required_argument, NULL, 'p'},
	                                     {"since", required_argument, NULL, 'S'},
	                                     {"until", required_argument, NULL, 'U'},
	                                     {"limit", required_argument, NULL, 'n'},
	                                     {"cursor", required_argument, NULL, 'k'},
	                                     {"all", no_argument, NULL, 'a'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL, *cursor = NULL;
	int c, json = 0, all = 0, rc = CLI_OK, pages = 0;
	json_t *req = json_pack("{s:s}", "op", "messages.list"), *resp = NULL, *every = NULL;
	char *end;

	if (req == NULL)
		return CLI_FAIL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		long long v;
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
		case 'i':
			if (json_object_get(req, "direction")) {
				rc = cli_usage_error("messages",
				                     "give --sent or --received, not both");
				goto cleanup;
			}
			json_object_set_new(req, "direction",
			                    json_string(c == 'o' ? "sent" : "received"));
			break;
		case 'C':
		case 't':
		case 's':
		case 'p':
			json_object_set_new(req,
			                    c == 'C'   ? "case_id"
			                    : c == 't' ? "type"
			                    : c == 's' ? "state"
			                               : "peer",
			                    json_string(optarg));
			break;
		case 'S':
		case 'U':
			if ((v = parse_time(optarg)) < 0) {
				rc =
				    cli_usage_error("messages",
				                    "--%s takes a date (2026-12-06) or an RFC 3339 "
				                    "time (2026-12-06T12:00:00Z)",
				                    c == 'S' ? "since" : "until");
				goto cleanup;
			}
			json_object_set_new(req, c == 'S' ? "since" : "until", json_integer(v));
			break;
		case 'n':
			v = strtoll(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 1000) {
				rc = cli_usage_error("messages", "--limit takes 1 to 1000");
				goto cleanup;
			}
			json_object_set_new(req, "limit", json_integer(v));
			break;
		case 'k':
			cursor = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			goto cleanup;
		default:
			rc = cli_usage_error("messages", "unknown option");
			goto cleanup;
		}
	}
	if (conf == NULL || optind != argc) {
		rc = cli_usage_error("messages", "need -c NODECONF, and no other argument");
		goto cleanup;
	}
	if (cursor)
		json_object_set_new(req, "cursor", json_string(cursor));
	if (all && json && (every = json_array()) == NULL) {
		rc = CLI_FAIL;
		goto cleanup;
	}
	for (;;) {
		const char *next;
		json_t *msgs;
		rc = nodeapi_call("messages", conf, req, 30000, &resp);
		if (rc != CLI_OK) {
			if (json && resp)
				json_dumpf(resp, stdout, JSON_INDENT(2)), putchar('\n');
			goto cleanup;
		}
		msgs = json_object_get(resp, "messages");
		next = json_string_value(json_object_get(resp, "next_cursor"));
		if (every)
			json_array_extend(every, msgs);
		else if (json) {
			json_object_del(resp, "ok");
			json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			putchar('\n');
		} else {
			print_page(msgs, pages == 0);
			if (json_is_true(json_object_get(resp, "scan_limited")))
				fprintf(stderr, "(this page stopped after the node's scan bound: "
				                "more may follow)\n");
		}
		pages++;
		if (next == NULL)
			break;
		if (!all) {
			if (!json)
				fprintf(stderr, "next page: --cursor %s\n", next);
			break;
		}
		json_object_set_new(req, "cursor", json_string(next));
		json_decref(resp);
		resp = NULL;
	}
	if (every) {
		json_t *out = json_pack("{s:O, s:n, s:b}", "messages", every, "next_cursor",
		                        "scan_limited", 0);
		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(out);
	}
cleanup:
	json_decref(every);
	json_decref(req);
	json_decref(resp);
	return rc;
}

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs("Usage: tern status -c NODECONF [--json] MSGID\n"
	      "\n"
	      "Shows what became of a message this node sent, per recipient:\n"
	      "  queued     stored at this node, not yet at the broker\n"
	      "  at-broker  stored at the broker, not yet delivered\n"
	      "  delivered  the recipient's signed receipt was verified\n"
	      "  rejected   refused by the broker or the recipient (the reason follows)\n"
	      "  expired    dead-lettered by the broker before delivery\n"
	      "For a message this node received and holds until the one it cites arrives\n"
	      "(docs/messages.md, \"Held messages\"): held, the sender, the awaited id and\n"
	      "the time after which it is refused. For one whose attachments are still\n"
	      "coming (docs/attachments.md): receiving, and the bytes in so far; a sent\n"
	      "message's attachments show how much of them the broker holds.\n"
	      "\n"
	      "Examples:\n"
	      "  tern status -c /tmp/fed/unhcr/node.conf 01a2...\n"
	      "  tern status -c /tmp/fed/unhcr/node.conf --json 01a2...\n",
	      f);
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The human form is pinned by tests: change it with care. */
static void print_status(json_t *r)
{
	char when[40];
	size_t i;
	json_t *v;

	printf("message    %s\n", str(r, "message_id"));
	if (strcmp(str(r, "state"), "held") == 0) {
		/* Received, held until the message it cites arrives. */
		nodeapi_time(json_integer_value(json_object_get(r, "until")), when, sizeof(when));
		printf("state      held (received from %s)\n", str(r, "sender"));
		printf("awaiting   %s, until %s\n", str(r, "awaiting"), when);
		return;
	}
	if (strcmp(str(r, "state"), "receiving") == 0) {
		/* Received, its attachments still coming (docs/attachments.md). */
		printf("state      receiving (from %s)\n", str(r, "sender"));
		printf("attachments %lld of %lld bytes in\n",
		       json_integer_value(json_object_get(r, "received_bytes")),
		       json_integer_value(json_object_get(r, "bytes")));
		if (str(r, "stalled")[0])
			printf("stalled    %s (asked again every 5 s)\n", str(r, "stalled"));
		return;
	}
	printf("type       %s\n", str(r, "type"));
	printf("case       %s\n", str(r, "case_id"));
	nodeapi_time(json_integer_value(json_object_get(r, "created_at")), when, sizeof(when));
	printf("created    %s\n", when);
	printf("state      %s\n", str(r, "state"));
	if (str(r, "reason_code")[0])
		printf("reason     %s: %s\n", str(r, "reason_code"), str(r, "reason_text"));
	if (json_is_object(json_object_get(r, "attachments"))) {
		json_t *a = json_object_get(r, "attachments");
		printf("attachments %s: %lld of %lld bytes at the broker\n", str(a, "state"),
		       json_integer_value(json_object_get(a, "at_broker")),
		       json_integer_value(json_object_get(a, "bytes")));
	}
	printf("recipients\n");
	json_array_foreach(json_object_get(r, "recipients"), i, v)
	{
		nodeapi_time(json_integer_value(json_object_get(v, "at")), when, sizeof(when));
		printf("  %-10s %-10s %s", str(v, "node_id"), str(v, "state"), when);
		if (str(v, "reason_code")[0])
			printf("  %s: %s", str(v, "reason_code"), str(v, "reason_text"));
		putchar('\n');
	}
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	int c, json = 0, rc;
	json_t *req, *resp = NULL;

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
			return cli_usage_error("status", "unknown option");
		}
	}
	if (conf == NULL || argc - optind != 1)
		return cli_usage_error("status", "need -c NODECONF and MSGID");
	req = json_pack("{s:s, s:s}", "op", "status", "message_id", argv[optind]);
	rc = nodeapi_call("status", conf, req, 10000, &resp);
	if (rc == CLI_OK) {
		json_object_del(resp, "ok");
		if (json)
			json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER),
			    putchar('\n');
		else
			print_status(resp);
	}
	json_decref(req);
	json_decref(resp);
	return rc;
}

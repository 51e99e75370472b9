#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "commands.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs("Usage: tern info -c NODECONF [--json]\n"
	      "\n"
	      "Asks the running node whether it is connected to its broker and counts the\n"
	      "messages it sent, by state, and those waiting in its inbox.\n"
	      "\n"
	      "Examples:\n"
	      "  tern info -c /tmp/fed/unhcr/node.conf\n"
	      "  tern info -c /tmp/fed/unhcr/node.conf --json\n",
	      f);
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	int c, json = 0, rc;
	json_t *req, *resp = NULL, *o;

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
			return cli_usage_error("info", "unknown option");
		}
	}
	if (conf == NULL || optind != argc)
		return cli_usage_error("info", "need -c NODECONF");
	req = json_pack("{s:s}", "op", "node.info");
	rc = nodeapi_call("info", conf, req, 10000, &resp);
	if (rc == CLI_OK) {
		json_object_del(resp, "ok");
		if (json) {
			json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			putchar('\n');
		} else {
			o = json_object_get(resp, "outbox");
			printf("node       %s\n",
			       json_string_value(json_object_get(resp, "node_id")));
			printf("broker     %s (%s)\n",
			       json_string_value(json_object_get(resp, "broker_id")),
			       json_is_true(json_object_get(resp, "connected")) ? "connected"
			                                                        : "not connected");
			printf("sent       %lld queued, %lld at-broker, %lld delivered, %lld "
			       "rejected, "
			       "%lld expired\n",
			       json_integer_value(json_object_get(o, "queued")),
			       json_integer_value(json_object_get(o, "at-broker")),
			       json_integer_value(json_object_get(o, "delivered")),
			       json_integer_value(json_object_get(o, "rejected")),
			       json_integer_value(json_object_get(o, "expired")));
			printf("inbox      %lld unacknowledged\n",
			       json_integer_value(json_object_get(resp, "inbox")));
			printf("held       %lld waiting for the message they cite\n",
			       json_integer_value(json_object_get(resp, "held")));
			{
				json_t *t = json_object_get(resp, "transfers");
				printf("transfers  %zu going to the broker, %zu coming in\n",
				       json_array_size(json_object_get(t, "out")),
				       json_array_size(json_object_get(t, "in")));
			}
		}
	}
	json_decref(req);
	json_decref(resp);
	return rc;
}

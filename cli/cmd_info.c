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
	      "messages it sent, by state, and those waiting in its inbox; and, since it\n"
	      "started, which member nodes cosigned its audit log (the size of the last\n"
	      "checkpoint each cosigned, or its refusal: after a store put back from a\n"
	      "backup, 'tern audit reanchor').\n"
	      "\n"
	      "Examples:\n"
	      "  tern info -c /tmp/fed/unhcr/node.conf\n"
	      "  tern info -c /tmp/fed/unhcr/node.conf --json\n",
	      f);
}

/* "witnessed  iom 31 (12s ago), unhcr refuses (rollback)": who cosigned this
 * node's log since it started, from node.info's "audit". */
static void print_witnesses(const json_t *a)
{
	const char *sep = "";
	json_t *w;
	size_t i;
	char when[40];

	printf("witnessed ");
	if (json_array_size(json_object_get(a, "witnesses")) == 0)
		printf(" not asked yet since the start (at the next checkpoint)");
	json_array_foreach(json_object_get(a, "witnesses"), i, w)
	{
		const char *id = json_string_value(json_object_get(w, "id"));
		const char *refused = json_string_value(json_object_get(w, "refused"));
		long long size = (long long)json_integer_value(json_object_get(w, "cosigned"));
		printf("%s %s", sep, id);
		if (refused)
			printf(" refuses (%s)", refused);
		else if (size > 0)
			printf(" at %lld entries", size);
		else
			printf(" no answer yet");
		sep = ",";
	}
	putchar('\n');
	if ((w = json_object_get(a, "reanchor")) != NULL) {
		nodeapi_time(json_integer_value(json_object_get(w, "until")), when, sizeof(when));
		printf("reanchor   asked of refusing witnesses until %s\n", when);
	}
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
			print_witnesses(json_object_get(resp, "audit"));
		}
	}
	json_decref(req);
	json_decref(resp);
	return rc;
}

/* tern case show: a node's view of one case (docs/api.md, "case.show"). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs("Usage: tern case show -c NODECONF [--json] CASEID\n"
	      "\n"
	      "Shows what this node knows of a case: each thread (a referral and what\n"
	      "followed it) with its state and the messages that may come next, from whom;\n"
	      "the case's messages sent, received and held, in time order, each naming its\n"
	      "referral when the case has several. Ids and states only: the bodies stay in\n"
	      "the inbox (tern inbox show).\n"
	      "\n"
	      "Options:\n"
	      "  -c, --config NODECONF  the node to ask (it must be running)\n"
	      "  --json                 the view as JSON (the node's local-API form: snake_case\n"
	      "                         keys, times in ms since the epoch; GET /v1/cases/{caseId}\n"
	      "                         gives the same view in the HTTP API's form, docs/api.md)\n"
	      "\n"
	      "Exit status: 0 shown, 1 no message of the case at this node, 2 usage,\n"
	      "3 the node is not running or did not answer.\n"
	      "\n"
	      "Examples:\n"
	      "  tern case show -c /etc/tern/unhcr/node.conf AMM-26C00417\n"
	      "  tern case show -c /etc/tern/unhcr/node.conf --json AMM-26C00417\n",
	      f);
}

static void print_threads(const json_t *c)
{
	size_t i, j;
	json_t *t, *x;

	json_array_foreach(json_object_get(c, "threads"), i, t)
	{
		json_t *to = json_object_get(t, "referred_to");
		printf("thread     referral %s", cli_json_str(t, "referral_id"));
		if (json_array_size(to)) {
			printf(" to");
			json_array_foreach(to, j, x)
			    printf("%s%s", j ? "," : " ", json_string_value(x));
		}
		if (!json_is_true(json_object_get(t, "referral_held"))) {
			json_t *ps = json_object_get(t, "parties");
			printf(" (the referral is not held here");
			json_array_foreach(ps, j, x)
			    printf("%s%s", j ? ", " : "; between ", json_string_value(x));
			printf(")");
		}
		printf(": %s\n", cli_json_str(t, "state")[0] ? cli_json_str(t, "state")
		                                             : "(state not traced)");
		json_array_foreach(json_object_get(t, "next"), j, x)
		{
			printf("  next     %s%s%s from %s\n", cli_json_str(x, "type"),
			       cli_json_str(x, "value")[0] ? " " : "", cli_json_str(x, "value"),
			       cli_json_str(x, "from"));
		}
		if ((x = json_object_get(t, "booking_refused")) != NULL)
			printf("  no booking here (%s): the case is %s on referral %s\n",
			       cli_json_str(x, "reason"), cli_json_str(x, "state"),
			       cli_json_str(x, "referral_id"));
	}
}

static void print_timeline(const json_t *c)
{
	char when[40];
	size_t i, j;
	json_t *e, *r;

	/* With two referrals or more, each line says whose thread it is:
	 * otherwise two States' decisions read alike. */
	int several = json_array_size(json_object_get(c, "threads")) > 1;

	printf("timeline\n");
	json_array_foreach(json_object_get(c, "timeline"), i, e)
	{
		const char *dir = cli_json_str(e, "direction");
		long long at = json_integer_value(json_object_get(e, "at"));
		nodeapi_time(at, when, sizeof(when));
		printf("  %-23s %-8s %-25s %-10s %s", strcmp(dir, "held") ? when : "", dir,
		       cli_json_str(e, "type"), cli_json_str(e, "value"),
		       cli_json_str(e, "message_id"));
		if (strcmp(dir, "sent") == 0) {
			json_array_foreach(json_object_get(e, "recipients"), j, r)
			{
				printf("%s %s%s%s", j ? "," : "  to", cli_json_str(r, "node_id"),
				       cli_json_str(r, "state")[0] ? " " : "",
				       cli_json_str(r, "state"));
				if (cli_json_str(r, "reason_code")[0])
					printf(" (%s)", cli_json_str(r, "reason_code"));
			}
		} else if (strcmp(dir, "received") == 0) {
			printf("  from %s: %s", cli_json_str(e, "sender"),
			       cli_json_str(e, "state"));
			if (cli_json_str(e, "reason_code")[0])
				printf(" (%s)", cli_json_str(e, "reason_code"));
		} else {
			nodeapi_time(json_integer_value(json_object_get(e, "until")), when,
			             sizeof(when));
			printf("  from %s: waits for %s until %s", cli_json_str(e, "sender"),
			       cli_json_str(e, "awaiting"), when);
		}
		if (several && cli_json_str(e, "referral_id")[0] &&
		    strcmp(cli_json_str(e, "referral_id"), cli_json_str(e, "message_id")) != 0)
			printf("  (referral %s)", cli_json_str(e, "referral_id"));
		putchar('\n');
	}
}

void case_view_print(const json_t *cs)
{
	printf("case       %s\n", cli_json_str(cs, "case_id"));
	print_threads(cs);
	print_timeline(cs);
	if (json_integer_value(json_object_get(cs, "refused_omitted")) > 0)
		printf("  (%lld older refused messages not listed)\n",
		       (long long)json_integer_value(json_object_get(cs, "refused_omitted")));
	printf("held       %zu\n", json_array_size(json_object_get(cs, "held")));
}

int cmd_case(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	int c, json = 0, rc;
	json_t *req, *resp = NULL, *cs;

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
			return cli_usage_error("case", "unknown option");
		}
	}
	if (optind < argc && strcmp(argv[optind], "show") == 0)
		optind++;
	else
		return cli_usage_error("case", "the subcommand is show: tern case show -c NODECONF "
		                               "CASEID");
	if (conf == NULL || argc - optind != 1)
		return cli_usage_error("case", "need -c NODECONF and CASEID");
	req = json_pack("{s:s, s:s}", "op", "case.show", "case_id", argv[optind]);
	rc = nodeapi_call("case", conf, req, 10000, &resp);
	cs = json_object_get(resp, "case");
	if (rc == CLI_OK && json) {
		json_dumpf(cs, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else if (rc == CLI_OK) {
		case_view_print(cs);
	}
	json_decref(req);
	json_decref(resp);
	return rc;
}

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attach.h"
#include "commands.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs("Usage: tern inbox -c NODECONF list [--json]\n"
	      "       tern inbox -c NODECONF next [--wait SECONDS]\n"
	      "       tern inbox -c NODECONF show MSGID\n"
	      "       tern inbox -c NODECONF ack MSGID\n"
	      "       tern inbox -c NODECONF attachment MSGID NAME --out FILE|-\n"
	      "\n"
	      "The messages this node received and accepted. A message stays in the inbox\n"
	      "until it is acknowledged, so an agency system takes it with 'next', stores it,\n"
	      "then 'ack's it. 'next' and 'show' print the header and the opened body as JSON;\n"
	      "'list' shows ids, senders, types and case ids only. 'attachment' writes one of\n"
	      "the message's attachments to FILE (- for standard output) and checks its\n"
	      "SHA-256 against the declared one. A message whose sender was revoked, lapsed,\n"
	      "left the directory or replaced its key after it came carries\n"
	      "\"sender_standing\"; one whose key was revoked as compromised is not shown, and\n"
	      "'next' passes over it (docs/api.md, inbox.show).\n"
	      "\n"
	      "Exit status: 0 done, 1 nothing in the inbox (next) or no such message, 3 node\n"
	      "not reachable.\n"
	      "\n"
	      "Examples:\n"
	      "  tern inbox -c /tmp/fed/sweden/node.conf list\n"
	      "  tern inbox -c /tmp/fed/sweden/node.conf next --wait 30 > message.json\n"
	      "  tern inbox -c /tmp/fed/sweden/node.conf ack 01a2...\n"
	      "  tern inbox -c /tmp/fed/sweden/node.conf attachment 01a2... \\\n"
	      "      medical-assessment.pdf --out maf.pdf\n",
	      f);
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int cmd_inbox(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
	    {"wait", required_argument, NULL, 'w'},   {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
	const char *conf = NULL, *sub, *outp = NULL;
	int c, json = 0, rc = CLI_OK;
	long wait = 0;
	json_t *req = NULL, *resp = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:jw:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'w':
			wait = strtol(optarg, NULL, 10);
			break;
		case 'o':
			outp = optarg;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("inbox", "unknown option");
		}
	}
	if (conf == NULL || optind >= argc)
		return cli_usage_error("inbox", "need -c NODECONF and list, next, show or ack");
	sub = argv[optind];
	if (strcmp(sub, "attachment") == 0) {
		char sock[4096];
		if (argc - optind != 3 || outp == NULL)
			return cli_usage_error("inbox",
			                       "attachment needs MSGID, NAME and --out FILE");
		if ((rc = cli_node_socket("inbox", conf, sock, sizeof(sock))) != CLI_OK)
			return rc;
		return cli_attach_download("inbox", sock, argv[optind + 1], argv[optind + 2], outp);
	}
	if (strcmp(sub, "list") == 0 && argc - optind == 1) {
		req = json_pack("{s:s}", "op", "inbox.list");
	} else if (strcmp(sub, "next") == 0 && argc - optind == 1) {
		if (wait < 0 || wait > 3600)
			return cli_usage_error("inbox", "--wait takes 0 to 3600 seconds");
		req =
		    json_pack("{s:s, s:I}", "op", "inbox.next", "wait_ms", (json_int_t)wait * 1000);
	} else if ((strcmp(sub, "show") == 0 || strcmp(sub, "ack") == 0) && argc - optind == 2) {
		req = json_pack("{s:s, s:s}", "op",
		                strcmp(sub, "show") == 0 ? "inbox.show" : "inbox.ack", "message_id",
		                argv[optind + 1]);
	} else {
		return cli_usage_error("inbox", "unknown or incomplete subcommand '%s'", sub);
	}
	rc = nodeapi_call("inbox", conf, req, (int)(wait * 1000) + 10000, &resp);
	if (rc != CLI_OK)
		goto out;
	if (strcmp(sub, "list") == 0) {
		json_t *msgs = json_object_get(resp, "messages"), *v;
		size_t i;
		if (json) {
			json_dumpf(msgs, stdout, JSON_INDENT(2));
			putchar('\n');
			goto out;
		}
		printf("%-23s  %-36s  %-10s  %-20s  %s\n", "RECEIVED", "MESSAGE", "SENDER", "TYPE",
		       "CASE");
		json_array_foreach(msgs, i, v)
		{
			char when[40];
			nodeapi_time(json_integer_value(json_object_get(v, "received_at")), when,
			             sizeof(when));
			printf("%-23s  %-36s  %-10s  %-20s  %s\n", when, str(v, "message_id"),
			       str(v, "sender"), str(v, "type"), str(v, "case_id"));
		}
	} else if (strcmp(sub, "next") == 0 || strcmp(sub, "show") == 0) {
		json_t *m = json_object_get(resp, "message");
		if (!json_is_object(m)) {
			fputs("tern inbox: inbox empty\n", stderr);
			rc = CLI_NO;
			goto out;
		}
		json_dumpf(m, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else if (json) {
		puts("{\"ok\": true}");
	}
out:
	json_decref(req);
	json_decref(resp);
	return rc;
}

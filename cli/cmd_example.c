/* tern example TYPE: print a valid example body. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/examples.h>
#include <tern/msgtype.h>
#include <tern/uuid.h>

#include "commands.h"

static void list_types(FILE *f)
{
	fputs("Types:\n", f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		fprintf(f, "  %s\n", t->name);
}

static void usage(FILE *f)
{
	fputs("Usage: tern example TYPE [--reply-to MSGID]\n"
	      "\n"
	      "Prints a valid example body of message type TYPE as proto3 JSON on standard\n"
	      "output: a starting point for agency systems and for 'tern validate'.\n"
	      "The people in the examples are fictional.\n"
	      "\n"
	      "A type that answers a message (an acceptance-decision answers a referral)\n"
	      "names it in a body field, its reference (referralId, decisionId, requestId...:\n"
	      "docs/messages.md, \"The workflow\"). The example's reference is a made-up id:\n"
	      "the recipient that would have sent what it cites (the referrer, for a\n"
	      "decision) refuses it at once (unknown-referral); one that must hold it but\n"
	      "would not have sent it holds it until [delivery] hold passes, then refuses it\n"
	      "(unknown-reference); one that need not hold it (IOM) takes it.\n"
	      "--reply-to MSGID puts the id of the real message there.\n"
	      "\n"
	      "Options:\n"
	      "  --reply-to MSGID  the id of the message this one answers, as its reference\n"
	      "\n",
	      f);
	list_types(f);
	fputs("\n"
	      "Examples:\n"
	      "  tern example case-referral > referral.json\n"
	      "  tern example acceptance-decision | tern validate acceptance-decision -\n"
	      "  tern example acceptance-decision --reply-to 01a2...(the referral's id) |\n"
	      "      tern send -c sweden/node.conf --to unhcr,iom acceptance-decision -\n",
	      f);
}

int cmd_example(int argc, char **argv)
{
	static const struct option opts[] = {{"reply-to", required_argument, NULL, 'r'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const tern_msgtype *t;
	const char *reply = NULL;
	char *text = NULL;
	int c, rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_OK;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'r')
			reply = optarg;
		else if (c == 'h') {
			usage(stdout);
			return CLI_OK;
		} else
			return cli_usage_error("example", "unknown option");
	}
	if (argc - optind != 1)
		return cli_usage_error("example", "expected one TYPE");
	if ((t = tern_msgtype_by_name(argv[optind])) == NULL) {
		fprintf(stderr, "tern: unknown message type '%s'\n", argv[optind]);
		list_types(stderr);
		return CLI_USAGE;
	}
	if (reply && t->ref_field == NULL)
		return cli_usage_error(
		    "example", "a %s answers no message (it starts a thread): no --reply-to",
		    t->name);
	if (reply && !tern_uuid_valid(reply))
		return cli_usage_error("example", "--reply-to takes a message id, not '%s'", reply);
	if ((rc = tern_example_json(t->name, &text)) != TERN_OK)
		return cli_fail(rc, "cannot make the %s example", t->name);
	if (reply) {
		/* The reference field's JSON name: referral_id -> referralId. */
		char name[64];
		size_t j = 0;
		json_t *body = json_loads(text, JSON_PRESERVE_ORDER, NULL);
		for (size_t i = 0; t->ref_field[i] && j + 1 < sizeof(name); i++)
			name[j++] = t->ref_field[i] == '_' && t->ref_field[i + 1]
			                ? (char)toupper((unsigned char)t->ref_field[++i])
			                : t->ref_field[i];
		name[j] = 0;
		free(text);
		text = NULL;
		if (body == NULL || json_object_set_new(body, name, json_string(reply)) != 0 ||
		    (text = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL) {
			json_decref(body);
			return cli_fail(TERN_ENOMEM, "cannot make the %s example", t->name);
		}
		json_decref(body);
		fputs(text, stdout);
		fputc('\n', stdout);
	} else
		fputs(text, stdout);
	free(text);
	if (fflush(stdout) != 0)
		return cli_fail(TERN_EIO, "cannot write standard output");
	return CLI_OK;
}

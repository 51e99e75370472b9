/* tern example TYPE: print a valid example body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/examples.h>
#include <tern/msgtype.h>

#include "commands.h"

static void list_types(FILE *f)
{
	fputs("Types:\n", f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		fprintf(f, "  %s\n", t->name);
}

static void usage(FILE *f)
{
	fputs("Usage: tern example TYPE\n"
	      "\n"
	      "Prints a valid example body of message type TYPE as proto3 JSON on standard\n"
	      "output: a starting point for agency systems and for 'tern validate'.\n"
	      "The people in the examples are fictional.\n"
	      "\n",
	      f);
	list_types(f);
	fputs("\n"
	      "Examples:\n"
	      "  tern example case-referral > referral.json\n"
	      "  tern example acceptance-decision | tern validate acceptance-decision -\n",
	      f);
}

int cmd_example(int argc, char **argv)
{
	char *text = NULL;
	int rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_OK;
	}
	if (argc != 2)
		return cli_usage_error(argv[0], "expected one TYPE");
	if (tern_msgtype_by_name(argv[1]) == NULL) {
		fprintf(stderr, "tern: unknown message type '%s'\n", argv[1]);
		list_types(stderr);
		return CLI_USAGE;
	}
	if ((rc = tern_example_json(argv[1], &text)) != TERN_OK)
		return cli_fail(rc, "cannot make the %s example", argv[1]);
	fputs(text, stdout);
	free(text);
	if (fflush(stdout) != 0)
		return cli_fail(TERN_EIO, "cannot write standard output");
	return CLI_OK;
}

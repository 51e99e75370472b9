/* tern validate TYPE FILE|-: check a JSON body against the schema and the rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/msgtype.h>
#include <tern/validate.h>

#include "commands.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("Usage: tern validate [--json] TYPE FILE|-\n"
	      "\n"
	      "Checks that FILE (or standard input for -) is a proto3 JSON body of message\n"
	      "type TYPE that meets Tern's rules (see docs/messages.md).\n"
	      "\n"
	      "Output goes to standard output, so scripts can capture it:\n"
	      "  valid:       'ok: TYPE is valid', exit status 0\n"
	      "  not valid:   one line 'PATH: RULE' per violation, exit status 1\n"
	      "  not JSON:    'LINE:COLUMN: MESSAGE', exit status 1\n"
	      "Messages name fields, never their values. Exit status 2 is a usage error\n"
	      "(such as an unknown TYPE), 3 an operational failure (cannot read FILE).\n"
	      "\n"
	      "Options:\n"
	      "  --json      print {\"valid\":BOOL,\"violations\":[{\"path\":..,\"rule\":..}]}\n"
	      "              (plus \"error\" when the body does not decode)\n"
	      "  -h, --help  show this help\n"
	      "\n"
	      "Types:\n",
	      f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		fprintf(f, "  %s\n", t->name);
	fputs("\n"
	      "Examples:\n"
	      "  tern validate case-referral referral.json\n"
	      "  tern example travel-confirmation | tern validate travel-confirmation -\n"
	      "  tern validate --json acceptance-decision decision.json\n",
	      f);
}

static int print_json(int valid, const char *error, const tern_violations *v)
{
	json_t *root = json_object(), *arr = json_array();
	char *text;

	if (root == NULL || arr == NULL)
		goto nomem;
	for (size_t i = 0; v != NULL && i < v->count; i++) {
		if (json_array_append_new(arr, json_pack("{s:s, s:s}", "path", v->v[i].path, "rule",
		                                         v->v[i].rule)) != 0)
			goto nomem;
	}
	if (json_object_set_new(root, "valid", json_boolean(valid)) != 0 ||
	    json_object_set(root, "violations", arr) != 0 ||
	    (v != NULL && v->truncated &&
	     json_object_set_new(root, "truncated", json_true()) != 0) ||
	    (error != NULL && json_object_set_new(root, "error", json_string(error)) != 0))
		goto nomem;
	if ((text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL)
		goto nomem;
	puts(text);
	free(text);
	json_decref(arr);
	json_decref(root);
	return CLI_OK;
nomem:
	json_decref(arr);
	json_decref(root);
	return cli_fail(TERN_ENOMEM, "cannot write the result");
}

int cmd_validate(int argc, char **argv)
{
	const char *pos[2];
	const tern_msgtype *t;
	ProtobufCMessage *msg = NULL;
	tern_violations *v = NULL;
	uint8_t *buf = NULL;
	char err[512];
	int as_json = 0, npos = 0, opts = 1, rc, status;
	size_t len;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (opts && strcmp(argv[i], "--") == 0)
			opts = 0;
		else if (opts && strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (opts && argv[i][0] == '-' && argv[i][1] != '\0')
			return cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
		else if (npos < 2)
			pos[npos++] = argv[i];
		else
			return cli_usage_error(argv[0], "too many arguments");
	}
	if (npos != 2)
		return cli_usage_error(argv[0], "expected TYPE and FILE (or - for standard input)");
	if ((t = tern_msgtype_by_name(pos[0])) == NULL) {
		char names[512];
		tern_msgtype_names(names, sizeof(names), ", ", 0);
		return cli_usage_error(argv[0], "unknown message type '%s' (types: %s)", pos[0],
		                       names);
	}
	if ((rc = cli_read_input(pos[1], CLI_MAX_BODY, &buf, &len)) != TERN_OK)
		return cli_fail(rc, "cannot read %s",
		                strcmp(pos[1], "-") ? pos[1] : "standard input");

	rc = tern_json_parse_text(t->desc, (const char *)buf, len, &msg, err, sizeof(err));
	free(buf);
	if (rc == TERN_ENOMEM)
		return cli_fail(rc, "cannot decode the body");
	if (rc != TERN_OK) {
		if (as_json)
			return print_json(0, err, NULL) == CLI_OK ? CLI_NO : CLI_FAIL;
		printf("%s\n", err);
		fprintf(stderr, "tern: the body is not a valid %s\n", t->name);
		return CLI_NO;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		tern_json_message_free(&msg);
		return cli_fail(TERN_ENOMEM, "cannot validate");
	}
	rc = tern_validate(msg, tern_now_ms(), v);
	tern_json_message_free(&msg);
	if (rc != TERN_OK && rc != TERN_EINVALID) {
		free(v);
		return cli_fail(rc, "cannot validate");
	}
	if (as_json) {
		status = print_json(rc == TERN_OK, NULL, v);
	} else {
		status = CLI_OK;
		if (rc == TERN_OK)
			printf("ok: %s is valid\n", t->name);
		for (size_t i = 0; i < v->count; i++)
			printf("%s: %s\n", v->v[i].path, v->v[i].rule);
		if (v->truncated)
			printf("(more violations not shown)\n");
		if (rc != TERN_OK)
			fprintf(stderr, "tern: %s is not valid: %zu%s violation(s)\n", t->name,
			        v->count, v->truncated ? "+" : "");
	}
	free(v);
	if (status != CLI_OK)
		return status;
	if (fflush(stdout) != 0)
		return cli_fail(TERN_EIO, "cannot write standard output");
	return rc == TERN_OK ? CLI_OK : CLI_NO;
}

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/attach.h>
#include <tern/error.h>
#include <tern/msgtype.h>

#include "attach.h"
#include "commands.h"
#include "nodeapi.h"

static void usage(FILE *f)
{
	fputs(
	    "Usage: tern send -c NODECONF --to ID[,ID...] [--reply-to MSGID] [--ttl SECONDS]\n"
	    "                 [--client-ref KEY] [--wait SECONDS] [--attach FILE[:NAME]]...\n"
	    "                 [--upload]\n"
	    "                 TYPE FILE|-\n"
	    "\n"
	    "Hands a business message to this agency's node, which signs it, seals it to\n"
	    "the recipients and keeps it in its outbox until the broker has it. Prints the\n"
	    "message id once the node has stored it durably.\n"
	    "\n"
	    "TYPE: one of the types below\n"
	    "FILE: the body as proto3 JSON (see 'tern example TYPE'), or - for stdin.\n"
	    "\n"
	    "Options:\n"
	    "  -c, --config NODECONF  the node's node.conf\n"
	    "  --to IDS               recipients' node ids, comma-separated\n"
	    "  --reply-to MSGID       the message this one answers: for a type that cites one,\n"
	    "                         the id its body's reference names (referralId, ...),\n"
	    "                         which the node takes by default and checks against\n"
	    "  --ttl SECONDS          dead-letter it if not delivered in time (default: the\n"
	    "                         broker's default_ttl)\n"
	    "  --client-ref KEY       an idempotency key: sending again with the same key\n"
	    "                         returns the first message id instead of a second message\n"
	    "  --wait SECONDS         then wait up to SECONDS for the final state and print it\n"
	    "                         after the id: delivered (a signed receipt from every\n"
	    "                         recipient), rejected or expired\n"
	    "  --attach FILE[:NAME]   carry FILE with the message (repeatable; up to [limits]\n"
	    "                         max_attachment_size each): its name (NAME, or FILE's\n"
	    "                         own), media type, SHA-256 and size are declared in the\n"
	    "                         body's attachments, and the node seals it straight\n"
	    "                         from FILE, passed over its socket (no copy is made).\n"
	    "                         Leave FILE as it is until tern send has printed the\n"
	    "                         id. The recipient gets the message only once every\n"
	    "                         file is in (docs/attachments.md). Types:\n"
	    "                         case-referral, information-response. With --attach\n"
	    "                         tern send runs at nice 10, below the daemons' loops.\n"
	    "  --upload               copy each FILE to the node first instead (done anyway\n"
	    "                         for a file not on a local disk or tmpfs, e.g. on NFS,\n"
	    "                         SMB, FUSE or overlayfs, whose reads could hang the\n"
	    "                         node's sealing)\n"
	    "\n"
	    "Exit status: 0 stored (with --wait: delivered), 1 refused, rejected or expired (the\n"
	    "reasons are printed), 3 node not reachable, 4 --wait ran out first.\n"
	    "\n"
	    "Types:\n",
	    f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++)
		if (t->type != TERN__V1__MESSAGE_TYPE__RECEIPT)
			fprintf(f, "  %s\n", t->name);
	fputs("\n"
	      "Examples:\n"
	      "  tern send -c /tmp/fed/unhcr/node.conf --to sweden case-referral referral.json\n"
	      "  REF=$(tern send -c unhcr/node.conf --to sweden case-referral referral.json)\n"
	      "  tern example acceptance-decision --reply-to \"$REF\" |\n"
	      "      tern send -c sweden/node.conf --to unhcr,iom acceptance-decision -\n"
	      "  tern send -c unhcr/node.conf --to sweden --wait 60 case-referral referral.json\n"
	      "  tern send -c unhcr/node.conf --to sweden --attach maf.pdf:medical-assessment.pdf "
	      "\\\n"
	      "      --attach photo.jpg case-referral referral.json\n",
	      f);
}

/* The files of --attach: passed to the node by descriptor (fds), or, with
 * --upload or when the node could not read one where it is, uploaded
 * (uploads: their ids). Either way in the same order as the body's
 * declarations. */
struct attached {
	int fds[TERN_ATTACH_MAX_COUNT];
	size_t nfds;
	json_t *uploads;
};

static void attached_clear(struct attached *a)
{
	for (size_t i = 0; i < a->nfds; i++)
		close(a->fds[i]);
	a->nfds = 0;
	json_decref(a->uploads);
	a->uploads = NULL;
}

/* Splits FILE[:NAME] into path (buf) and the name declared. */
static const char *file_name(const char *arg, char *path, size_t len)
{
	const char *colon = strrchr(arg, ':'), *slash;

	snprintf(path, len, "%.*s", (int)(colon ? (size_t)(colon - arg) : strlen(arg)), arg);
	slash = strrchr(path, '/');
	return colon && colon[1] ? colon + 1 : slash ? slash + 1 : path;
}

/* The niceness tern send takes when it attaches files (never lower than
 * it was started with). */
#define CLI_BULK_NICE 10

/* Declares each FILE[:NAME] in body's attachments and fills a: by
 * descriptor unless upload is set or a file is where the node could not
 * read it (then every file is uploaded). */
static int attach_files(const char *conf, const char *type, json_t *body, const char *const *files,
                        size_t n, int upload, struct attached *a)
{
	const tern_msgtype *t = tern_msgtype_by_name(type);
	json_t *decls = json_object_get(body, "attachments");
	char sock[4096], path[4096], id[37];
	int rc = CLI_OK;

	if (protobuf_c_message_descriptor_get_field_by_name(t->desc, "attachments") == NULL)
		return cli_usage_error("send", "a %s carries no attachments", type);
	if (!json_is_object(body))
		return cli_usage_error("send", "the body is not a JSON object");
	if (json_array_size(decls) > 0)
		return cli_usage_error("send",
		                       "the body declares attachments already: with --attach, "
		                       "leave \"attachments\" out and let tern fill it in");
	/* Hashing (and uploading) gigabytes is bulk work: below the daemons'
	 * loops, which carry ordinary messages on this machine, as their own
	 * bulk threads are (docs/attachments.md). Only this process's. */
	if (n > 0 && getpriority(PRIO_PROCESS, 0) < CLI_BULK_NICE &&
	    setpriority(PRIO_PROCESS, 0, CLI_BULK_NICE) != 0) {
		/* it runs at its own priority */
	}
	decls = json_array();
	for (size_t i = 0; !upload && i < n; i++) {
		const char *name = file_name(files[i], path, sizeof(path));
		json_t *decl;
		int fd;
		rc = cli_attach_by_fd("send", path, name, &decl, &fd);
		if (rc == CLI_NO) { /* where the node cannot read it: upload all */
			json_array_clear(decls);
			attached_clear(a);
			break;
		}
		if (rc != CLI_OK)
			goto fail;
		json_array_append_new(decls, decl);
		a->fds[a->nfds++] = fd;
	}
	if (a->nfds < n) {
		if ((rc = cli_node_socket("send", conf, sock, sizeof(sock))) != CLI_OK)
			goto fail;
		a->uploads = json_array();
		for (size_t i = 0; i < n; i++) {
			const char *name = file_name(files[i], path, sizeof(path));
			json_t *decl;
			if ((rc = cli_attach_upload("send", sock, path, name, &decl, id)) != CLI_OK)
				goto fail;
			json_array_append_new(decls, decl);
			json_array_append_new(a->uploads, json_string(id));
		}
	}
	json_object_set_new(body, "attachments", decls);
	return CLI_OK;
fail:
	json_decref(decls);
	attached_clear(a);
	return rc;
}

int cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"to", required_argument, NULL, 't'},
	                                     {"reply-to", required_argument, NULL, 'r'},
	                                     {"ttl", required_argument, NULL, 'l'},
	                                     {"client-ref", required_argument, NULL, 'k'},
	                                     {"wait", required_argument, NULL, 'w'},
	                                     {"attach", required_argument, NULL, 'a'},
	                                     {"upload", no_argument, NULL, 'u'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL, *to = NULL, *reply = NULL, *ref = NULL;
	long ttl = 0, wait = 0;
	json_t *req, *resp = NULL, *body, *rcpts;
	json_error_t jerr;
	uint8_t *buf = NULL;
	size_t len;
	char *copy, *save = NULL;
	const char *attach[TERN_ATTACH_MAX_COUNT];
	size_t nattach = 0;
	struct attached files = {.nfds = 0};
	int upload = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'r':
			reply = optarg;
			break;
		case 'k':
			ref = optarg;
			break;
		case 'l':
			ttl = strtol(optarg, NULL, 10);
			if (ttl <= 0)
				return cli_usage_error("send",
				                       "--ttl takes a positive number of seconds");
			break;
		case 'w':
			wait = strtol(optarg, NULL, 10);
			if (wait <= 0 || wait > 3600)
				return cli_usage_error(
				    "send", "--wait takes 1 to 3600 seconds, not '%s'", optarg);
			break;
		case 'a':
			if (nattach == TERN_ATTACH_MAX_COUNT)
				return cli_usage_error("send", "at most %d --attach",
				                       TERN_ATTACH_MAX_COUNT);
			attach[nattach++] = optarg;
			break;
		case 'u':
			upload = 1;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("send", "unknown option");
		}
	}
	if (conf == NULL || to == NULL || argc - optind != 2)
		return cli_usage_error("send", "need -c NODECONF, --to IDS, TYPE and FILE");
	if (tern_msgtype_by_name(argv[optind]) == NULL || strcmp(argv[optind], "receipt") == 0)
		return cli_usage_error("send", "unknown TYPE '%s'", argv[optind]);
	if ((rc = cli_read_input(argv[optind + 1], CLI_MAX_BODY, &buf, &len)) != TERN_OK)
		return cli_fail(rc, "cannot read %s", argv[optind + 1]);
	body = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (body == NULL) {
		fprintf(stderr, "tern send: %s is not JSON: line %d, column %d\n", argv[optind + 1],
		        jerr.line, jerr.column);
		return CLI_NO;
	}
	if (nattach && (rc = attach_files(conf, argv[optind], body, attach, nattach, upload,
	                                  &files)) != CLI_OK) {
		json_decref(body);
		return rc;
	}
	rcpts = json_array();
	copy = strdup(to);
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(rcpts, json_string(t));
	free(copy);
	req = json_pack("{s:s, s:o, s:s, s:o}", "op", "send", "to", rcpts, "type", argv[optind],
	                "body", body);
	if (reply)
		json_object_set_new(req, "in_reply_to", json_string(reply));
	if (ttl)
		json_object_set_new(req, "ttl_seconds", json_integer(ttl));
	if (ref)
		json_object_set_new(req, "client_ref", json_string(ref));
	if (wait)
		json_object_set_new(req, "wait_ms", json_integer((json_int_t)wait * 1000));
	if (files.uploads) {
		json_object_set_new(req, "uploads", files.uploads);
		files.uploads = NULL;
	} else if (files.nfds) {
		json_object_set_new(req, "descriptors", json_integer((json_int_t)files.nfds));
	}
	rc = nodeapi_call_fds("send", conf, req, files.fds, files.nfds, 30000 + (int)wait * 1000,
	                      &resp);
	attached_clear(&files);
	if (rc == CLI_OK && wait && json_object_get(resp, "state")) {
		const char *state = json_string_value(json_object_get(resp, "state"));
		const char *code = json_string_value(json_object_get(resp, "reason_code"));
		printf("%s %s%s%s\n", json_string_value(json_object_get(resp, "message_id")), state,
		       code && *code ? " " : "", code && *code ? code : "");
		if (!json_is_true(json_object_get(resp, "final")))
			rc = CLI_TIMEOUT;
		else if (strcmp(state, "delivered") != 0)
			rc = CLI_NO;
	} else if (rc == CLI_OK) {
		puts(json_string_value(json_object_get(resp, "message_id")));
	} else if (resp) {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(resp, "violations"), i, v)
		    printf("%s: %s\n", json_string_value(json_object_get(v, "path")),
		           json_string_value(json_object_get(v, "rule")));
	}
	json_decref(req);
	json_decref(resp);
	return rc;
}

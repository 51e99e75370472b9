/* tern: the command-line tool for Tern operators, agency staff and auditors. */
#include <stdio.h>
#include <string.h>

#include <tern/crypto.h>
#include <tern/error.h>

#include "commands.h"

static const struct {
	const char *name;
	cli_cmd_fn *fn;
	const char *summary;
} commands[] = {
    {"example", cmd_example, "print a valid example body as JSON"},
    {"validate", cmd_validate, "check a business message body against the rules"},
    {"ca", cmd_ca, "federation CA: init, issue, revoke, crl, directory, list"},
    {"keygen", cmd_keygen, "generate a node's private keys and public-key request"},
    {"dev-federation", cmd_dev_federation, "build a complete local federation for demo and tests"},
    {"send", cmd_send, "hand a message to this agency's node for delivery"},
    {"status", cmd_status, "show what became of a message this node sent"},
    {"case", cmd_case, "a case as this node knows it: threads, states, what may come next"},
    {"inbox", cmd_inbox, "list, take, show and acknowledge received messages"},
    {"messages", cmd_messages, "list the messages a node sent and received, a page at a time"},
    {"info", cmd_info, "a running node's connection and message counts"},
    {"audit", cmd_audit, "export, verify and replay the tamper-evident audit logs"},
    {"queues", cmd_queues, "what is queued where, at a broker (live or read-only) or a node"},
    {"queue", cmd_queue, "the headers of what is queued for one destination"},
    {"dlq", cmd_dlq, "the broker's dead letters: list, retry, drop"},
    {"peers", cmd_peers, "the federation's nodes as the broker sees them"},
    {"backup", cmd_backup, "a hot, consistent copy of a node's or broker's store"},
    {"demo", cmd_demo, "run a local federation and walk one case through it"},
    {"bench", cmd_bench, "measure end-to-end throughput and latency"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("Usage: tern COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "Tern exchanges signed, sealed resettlement messages between agencies.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Examples:\n"
	      "  tern example case-referral > referral.json\n"
	      "  tern validate case-referral referral.json\n"
	      "  tern dev-federation /tmp/fed\n"
	      "\n"
	      "Run 'tern COMMAND --help' for a command's options and examples.\n",
	      f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		puts("tern 0.1.0");
		return CLI_OK;
	}
	if (tern_crypto_init() != TERN_OK) {
		fputs("tern: cannot initialise libsodium or OpenSSL\n", stderr);
		return CLI_FAIL;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "tern: unknown command '%s'\nTry 'tern --help'.\n", argv[1]);
	return CLI_USAGE;
}

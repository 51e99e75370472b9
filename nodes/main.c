/* tern-node: an agency's node in a Tern federation. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/log.h>

#include "ident.h"
#include "node.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fputs("Usage: tern-node -c FILE [-n] [-d]\n"
	      "\n"
	      "An agency's node: keeps its outbox, inbox and receipts in LMDB, exchanges\n"
	      "signed, sealed messages through its broker, and serves the local API that\n"
	      "the tern CLI and the agency's systems use (docs/api.md).\n"
	      "\n"
	      "Options:\n"
	      "  -c, --config FILE    node.conf (see docs/configuration.md)\n"
	      "  -n, --check-config   check the configuration, keys, CA, CRL and directory;\n"
	      "                       print 'configuration OK' or each problem, then exit\n"
	      "  -d, --debug          log at debug level\n"
	      "  -h, --help           show this help\n"
	      "\n"
	      "Signals: SIGTERM or SIGINT finish the current batch and stop cleanly.\n"
	      "\n"
	      "Examples:\n"
	      "  tern-node -c /etc/tern/node.conf -n\n"
	      "  tern-node -c /tmp/fed/unhcr/node.conf\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"check-config", no_argument, NULL, 'n'},
	                                     {"debug", no_argument, NULL, 'd'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	int check = 0, debug = 0, c, rc;
	node *n = NULL;
	struct sigaction sa;

	while ((c = getopt_long(argc, argv, "c:ndh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (conf == NULL || optind != argc) {
		fputs("tern-node: -c FILE is required\n", stderr);
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fputs("tern-node: libsodium failed to initialise\n", stderr);
		return 1;
	}
	log_init("tern-node", debug ? TERN_LOG_DEBUG : TERN_LOG_INFO);
	if (check) {
		tern_ident id;
		if (tern_ident_load(conf, TERN_CONFIG_NODE, 0, stdout, &id) != TERN_OK)
			return 1;
		tern_ident_free(&id);
		puts("configuration OK");
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = node_open(conf, &n)) != TERN_OK) {
		fprintf(stderr, "tern-node: not started: %s\n", tern_strerror(rc));
		return 1;
	}
	if (debug)
		log_init("tern-node", TERN_LOG_DEBUG);
	rc = node_run(n, &stop);
	node_close(&n);
	return rc == TERN_OK ? 0 : 1;
}

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/log.h>

#include "daemon.h"
#include "ident.h"

static volatile sig_atomic_t stop;
volatile sig_atomic_t tern_daemon_reload;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		tern_daemon_reload = 1;
	else
		stop = 1;
}

static void usage(const tern_daemon *d, FILE *f)
{
	fprintf(f,
	        "Usage: %s -c FILE [-n] [-d]\n"
	        "\n"
	        "%s\n"
	        "\n"
	        "Options:\n"
	        "  -c, --config FILE    %s (see docs/configuration.md)\n"
	        "  -n, --check-config   run the checks a start runs: the configuration; the\n"
	        "                       keys, CA, CRL and directory; data_dir, the local\n"
	        "                       socket, the ports (and a node's HTTP API token); that\n"
	        "                       no other user may write these files or their\n"
	        "                       directories. Prints 'configuration OK' or each\n"
	        "                       problem, then exits. Creates and binds nothing: safe\n"
	        "                       beside the running daemon\n"
	        "  -d, --debug          log at debug level\n"
	        "  -h, --help           show this help\n"
	        "\n"
	        "Signals: SIGTERM or SIGINT finish the current batch and stop cleanly;\n"
	        "SIGHUP reloads the CA, CRL and directory (never an older directory).\n"
	        "\n"
	        "Examples:\n%s",
	        d->prog, d->about, tern_config_kind_name(d->kind), d->examples);
}

int tern_daemon_main(int argc, char **argv, const tern_daemon *d)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"check-config", no_argument, NULL, 'n'},
	                                     {"debug", no_argument, NULL, 'd'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL;
	int check = 0, debug = 0, c, rc;
	void *h = NULL;
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
			usage(d, stdout);
			return 0;
		default:
			usage(d, stderr);
			return 2;
		}
	}
	if (conf == NULL || optind != argc) {
		fprintf(stderr, "%s: -c FILE is required\n", d->prog);
		usage(d, stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: libsodium failed to initialise\n", d->prog);
		return 1;
	}
	log_init(d->prog, debug ? TERN_LOG_DEBUG : TERN_LOG_INFO);
	if (check) {
		tern_ident id;
		/* The very checks d->open() starts with (tern_ident_load_start). */
		if (tern_ident_load_start(conf, d->kind, stdout, &id) != TERN_OK)
			return 1;
		tern_ident_free(&id);
		puts("configuration OK");
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = d->open(conf, &h)) != TERN_OK) {
		fprintf(stderr, "%s: not started: %s\n", d->prog, tern_strerror(rc));
		return 1;
	}
	if (debug) /* the configuration's log_level gave way to -d */
		log_init(d->prog, TERN_LOG_DEBUG);
	rc = d->run(h, &stop);
	d->close(&h);
	return rc == TERN_OK ? 0 : 1;
}

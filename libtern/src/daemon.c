#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <tern/config.h>
#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/log.h>

#include "daemon.h"
#include "http.h"
#include "ident.h"
#include "util.h"

static volatile sig_atomic_t stop;
volatile sig_atomic_t tern_daemon_reload;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		tern_daemon_reload = 1;
	else
		stop = 1;
}

/* The trust mark in the daemon's store, read-only (the daemon may be
 * running); TERN_ENOENT when there is no store yet. */
static int stored_trustmark(const tern_ident *id, int kind, tern_trustmark *out)
{
	static const char *const names[] = {"meta", NULL};
	const char *dir =
	    tern_config_get(id->cfg, kind == TERN_CONFIG_BROKER ? "broker" : "node", "data_dir");
	tern_store *s = NULL;
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = tern_store_open(dir, names, TERN_STORE_RDONLY, 0, &s)) != TERN_OK)
		return TERN_ENOENT;
	if ((rc = tern_store_read_begin(s, &txn)) == TERN_OK) {
		rc = tern_trustmark_get(txn, tern_store_dbi(s, 0), out);
		mdb_txn_abort(txn);
	}
	tern_store_close(&s);
	return rc;
}

/* The soft RLIMIT_NOFILE is often 1024 (systemd's default, kept low for
 * select()), too few for the HTTP servers' connection limits; the daemons
 * use poll and epoll, so raise it towards the hard limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= TERN_HTTP_NOFILE)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > TERN_HTTP_NOFILE
	                  ? TERN_HTTP_NOFILE
	                  : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("setrlimit(RLIMIT_NOFILE, %llu)", (unsigned long long)rl.rlim_cur);
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

	/* Attachment frames are a megabyte each, allocated and freed many times a
	 * second. Above glibc's mmap threshold each would be a fresh mapping,
	 * faulted in page by page and unmapped again (half the broker's CPU in
	 * a transfer, docs/performance.md): kept in the heap, they reuse pages
	 * already there. The heap is trimmed past 32 MiB, so what a transfer
	 * held goes back after it; and one arena for all threads, so that the
	 * HTTP workers' and libzmq's threads do not each keep 32 MiB of their
	 * own (test_http_upload.sh bounds a download's memory). */
	(void)mallopt(M_MMAP_THRESHOLD, 16 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 32 << 20);
	(void)mallopt(M_ARENA_MAX, 1);
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
	if (tern_crypto_init() != TERN_OK) {
		fprintf(stderr, "%s: cannot initialise libsodium or OpenSSL\n", d->prog);
		return 1;
	}
	log_init(d->prog, debug ? TERN_LOG_DEBUG : TERN_LOG_INFO);
	if (check) {
		tern_ident id;
		tern_trustmark floor, m;
		const char *what;
		/* The very checks d->open() starts with (tern_ident_load_start). */
		if (tern_ident_load_start(conf, d->kind, stdout, &id) != TERN_OK)
			return 1;
		/* As a start would (tern_daemon_trustmark_start): nothing older
		 * than the store has put in force. */
		tern_ident_mark(&id, &m);
		if (stored_trustmark(&id, d->kind, &floor) == TERN_OK &&
		    tern_trustmark_check(&m, &floor, &what) != TERN_OK) {
			printf("%s: %s\n",
			       tern_config_get(id.cfg, "federation",
			                       strcmp(what, "crl") == 0 ? "crl" : "directory"),
			       tern_errdetail());
			tern_ident_free(&id);
			return 1;
		}
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
	raise_nofile();
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

struct refusal {
	const tern_audit_dbs *audit;
	const char *self, *what;
};

static int refusal_apply(MDB_txn *txn, void *arg)
{
	struct refusal *r = arg;

	return tern_trustmark_audit_refusal(txn, r->audit, r->self, r->what, tern_now_ms());
}

struct accepted {
	const tern_audit_dbs *audit;
	MDB_dbi meta;
	const char *self;
	tern_trustmark m;
};

static int accepted_apply(MDB_txn *txn, void *arg)
{
	struct accepted *a = arg;

	return tern_trustmark_accept(txn, a->meta, a->audit, a->self, &a->m, tern_now_ms());
}

int tern_daemon_reload_ident(tern_ident *id, int kind, const char *must_have, tern_store *s,
                             MDB_dbi meta, const tern_audit_dbs *audit, uint64_t rollbacks[2])
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	const char *went_back = NULL;
	FILE *err = open_memstream(&text, &len);
	struct accepted a = {audit, meta, id->id, {0, -1}};
	int rc;

	if (err == NULL)
		return TERN_ENOMEM;
	rc = tern_ident_reload(id, kind, NULL, must_have, err, &went_back);
	fclose(err);
	if (rc != TERN_OK) {
		/* The reasons, one per line as the check wrote them, into the log. */
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			log_warnx("reload refused: %s", line);
		log_warnx("the directory and CRL in use stay (directory version %llu, CRL number "
		          "%lld)",
		          (unsigned long long)tern_directory_version(id->dir),
		          (long long)tern_trust_crl_number(id->trust));
		free(text);
		if (went_back) {
			struct refusal r = {audit, id->id, went_back};
			rollbacks[strcmp(went_back, "crl") == 0 ? 0 : 1]++;
			if (tern_store_write(s, refusal_apply, &r) != TERN_OK)
				log_warnx("the refused rollback is not in the audit log: %s",
				          tern_errdetail());
		}
		return rc;
	}
	free(text);
	tern_ident_mark(id, &a.m);
	a.self = id->id;
	if (tern_store_write(s, accepted_apply, &a) != TERN_OK)
		log_warnx("the directory change is not in the audit log: %s", tern_errdetail());
	return TERN_OK;
}

int tern_daemon_trustmark_start(tern_store *s, MDB_dbi meta, const tern_audit_dbs *audit,
                                const tern_ident *id, const char *prog)
{
	tern_trustmark m;
	char why[512] = "";
	int refused = 0, rc;

	tern_ident_mark(id, &m);
	rc = tern_trustmark_enforce(s, meta, audit, id->id, &m, tern_now_ms(), &refused, why,
	                            sizeof(why));
	if (rc != TERN_OK) {
		fprintf(stderr, "%s: cannot check the trust mark in the store: %s\n", prog,
		        tern_errdetail());
		return rc;
	}
	if (refused) {
		fprintf(stderr, "%s: %s\n", prog, why);
		return tern_fail(TERN_EOLDER, "%s", why);
	}
	return TERN_OK;
}

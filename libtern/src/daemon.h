/* The start-up both daemons share: options (-c, -n, -d, -h), signals, the
 * configuration check, and the open/run/close life cycle. */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include <signal.h>

typedef struct tern_daemon {
	const char *prog;  /* "tern-broker" */
	int kind;          /* TERN_CONFIG_BROKER or TERN_CONFIG_NODE */
	const char *about; /* what it does, for --help */
	const char *examples;
	int (*open)(const char *conf, void **handle);
	int (*run)(void *handle, volatile sig_atomic_t *stop);
	void (*close)(void **handle);
} tern_daemon;

/* Set by SIGHUP: the daemon's loop reloads its directory and CRL
 * (tern_ident_reload) and clears it. */
extern volatile sig_atomic_t tern_daemon_reload;

/* Returns the process exit code: 0 clean stop or configuration OK, 1 a
 * failure, 2 a usage error. */
int tern_daemon_main(int argc, char **argv, const tern_daemon *d);

#endif

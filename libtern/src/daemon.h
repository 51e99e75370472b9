/* The start-up both daemons share: options (-c, -n, -d, -h), signals, the
 * configuration check, and the open/run/close life cycle. */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include <signal.h>
#include <stdint.h>

#include "audit.h"
#include "ident.h"
#include "store.h"

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

/* SIGHUP, for both daemons: reloads id (tern_ident_reload), logging each
 * problem found. A directory or CRL older than the one in force is refused
 * with a REJECTED audit entry in s and counted in rollbacks[0] (CRL) or
 * rollbacks[1] (directory); accepted material raises the store's trust mark
 * (meta: its meta database) with a DIRECTORY_CHANGE entry. TERN_OK when the
 * new material is in force; otherwise id is unchanged. */
int tern_daemon_reload_ident(tern_ident *id, int kind, const char *must_have, tern_store *s,
                             MDB_dbi meta, const tern_audit_dbs *audit, uint64_t rollbacks[2]);

/* At start, once the store is open: refuses (TERN_EOLDER) a directory or CRL
 * older than the store's trust mark, with a REJECTED audit entry and a line
 * on stderr naming both numbers; otherwise raises the mark to what id holds.
 * prog prefixes the line ("tern-node"). */
int tern_daemon_trustmark_start(tern_store *s, MDB_dbi meta, const tern_audit_dbs *audit,
                                const tern_ident *id, const char *prog);

#endif

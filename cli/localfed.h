/* A development federation the CLI builds and runs on this machine, for
 * `tern demo` and `tern bench`: `tern dev-federation` in a directory, the
 * broker and some nodes started from the tern binary's own directory, their
 * logs beside the federation. Never for production: every key is in one place. */
#ifndef TERN_CLI_LOCALFED_H
#define TERN_CLI_LOCALFED_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#define LOCALFED_MAX 5

typedef struct localfed {
	char dir[PATH_MAX];     /* the logs, and fed/ */
	char fed[PATH_MAX + 8]; /* the federation */
	int port;               /* the broker's */
	int kept;               /* dir was the caller's: never removed */
	size_t n;               /* daemons started: names[0] is "broker" */
	const char *names[LOCALFED_MAX];
	pid_t pids[LOCALFED_MAX];
} localfed;

/* Builds the federation in keep (made if missing, refused unless empty;
 * kept, its absolute path in dir) or in a new temporary directory, with the
 * broker on port (0: a free one). cmd names the command in errors. CLI_OK
 * or a CLI_* status, the error printed and a temporary directory removed. */
int localfed_create(localfed *lf, const char *keep, int port, const char *cmd);

/* Starts the broker and the n named nodes (n < LOCALFED_MAX), each logging
 * to dir/NAME.log. TERN_BROKER and TERN_NODE override the binaries. */
int localfed_start(localfed *lf, const char *const *nodes, size_t n, const char *cmd);

/* Waits until every started node says it is connected to the broker;
 * gives up after timeout_ms or when *interrupted becomes non-zero. */
int localfed_wait_connected(localfed *lf, int timeout_ms, volatile sig_atomic_t *interrupted,
                            const char *cmd);

/* The API socket of a node: "fed/NODE/data/api.sock". */
void localfed_socket(const localfed *lf, const char *node, char *buf, size_t len);

/* SIGTERM to every daemon, SIGKILL to any still running after 5 s. */
void localfed_stop(localfed *lf);

/* Says which daemons have exited (each with its log), reaping them; how many. */
int localfed_report_exits(localfed *lf, const char *cmd);

/* Removes a temporary directory after a success; after a failure keeps it
 * (or keep's) and says where, on stderr. Stops the daemons first if they
 * still run. */
void localfed_destroy(localfed *lf, int ok, const char *cmd);

#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include <tern/api.h>
#include <tern/error.h>

#include "commands.h"
#include "localfed.h"
#include "util.h"

extern char **environ;

static int port_free(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr = {htonl(INADDR_LOOPBACK)}};
	int s = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (s < 0)
		return 0;
	ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

static void remove_tree(const char *dir, const char *cmd)
{
	char shell[PATH_MAX + 16];

	snprintf(shell, sizeof(shell), "rm -rf '%s'", dir);
	if (system(shell) != 0)
		fprintf(stderr, "tern %s: could not remove %s\n", cmd, dir);
}

int localfed_create(localfed *lf, const char *keep, int port, const char *cmd)
{
	char portbuf[16], *fedargv[5], abs[PATH_MAX];
	int rc, fd;

	memset(lf, 0, sizeof(*lf));
	for (int tries = 0; port == 0 && tries < 50; tries++) {
		/* The federation takes port to port + 19 (tern dev-federation):
		 * all free, and below Linux's ephemeral range (32768-60999), where
		 * any outgoing connection may take one between check and bind. */
		int p = 20000 + (int)randombytes_uniform(12700), ok = 1;
		for (int i = 0; ok && i < 20; i++)
			ok = port_free(p + i);
		if (ok)
			port = p;
	}
	if (port == 0)
		return cli_fail(TERN_EIO, "no free port found for the broker");
	lf->port = port;
	if (keep) {
		/* The logs and fed/ go straight into it: a previous run's would be
		 * overwritten, or dev-federation would refuse fed/ half-way. */
		if (!cli_dir_empty_or_missing(keep)) {
			fprintf(stderr,
			        "tern %s: --keep %s: not an empty directory (a previous run's?).\n"
			        "Give --keep a new or empty directory, or remove this one first.\n",
			        cmd, keep);
			return CLI_USAGE;
		}
		if (tern_mkdirs(keep, 0700) != TERN_OK)
			return cli_fail(TERN_EIO, "cannot create %s", keep);
		/* Absolute, so that what we print can be used from anywhere. */
		if (realpath(keep, abs) == NULL)
			return cli_fail(TERN_EIO, "cannot use %s: %s", keep, strerror(errno));
		if (strlen(abs) >= sizeof(lf->dir) - 64)
			return cli_fail(TERN_EINVAL, "--keep %s: the path is too long", keep);
		snprintf(lf->dir, sizeof(lf->dir), "%s", abs);
		lf->kept = 1;
	} else {
		snprintf(lf->dir, sizeof(lf->dir), "/tmp/tern-%s-XXXXXX", cmd);
		if (mkdtemp(lf->dir) == NULL)
			return cli_fail(TERN_EIO, "cannot make a temporary directory");
	}
	snprintf(lf->fed, sizeof(lf->fed), "%s/fed", lf->dir);
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	fedargv[0] = "dev-federation";
	fedargv[1] = lf->fed;
	fedargv[2] = "--base-port";
	fedargv[3] = portbuf;
	fedargv[4] = NULL;
	/* Its summary is noise here: the caller says what matters. */
	fflush(stdout);
	if ((fd = dup(1)) < 0)
		return CLI_FAIL;
	if (freopen("/dev/null", "w", stdout) == NULL) {
		close(fd);
		return CLI_FAIL;
	}
	optind = 1;
	rc = cmd_dev_federation(4, fedargv);
	fflush(stdout);
	dup2(fd, 1);
	close(fd);
	if (rc != CLI_OK) {
		/* Nothing ran yet: no logs to keep. A temporary directory goes;
		 * the caller's stays, with what dev-federation left in it. */
		if (!lf->kept)
			remove_tree(lf->dir, cmd);
		else
			fprintf(stderr, "tern %s: left %s as it is\n", cmd, lf->dir);
		lf->dir[0] = 0;
	}
	return rc;
}

int localfed_start(localfed *lf, const char *const *nodes, size_t n, const char *cmd)
{
	char self[PATH_MAX], bindir[PATH_MAX], bin[PATH_MAX + 32], conf[PATH_MAX + 32],
	    log[PATH_MAX + 32];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len <= 0 || n + 1 > LOCALFED_MAX)
		return TERN_EINVAL;
	self[len] = 0;
	snprintf(bindir, sizeof(bindir), "%s", dirname(self));
	lf->names[0] = "broker";
	for (size_t i = 0; i < n; i++)
		lf->names[i + 1] = nodes[i];
	for (size_t i = 0; i <= n; i++) {
		posix_spawn_file_actions_t fa;
		const char *env = getenv(i == 0 ? "TERN_BROKER" : "TERN_NODE");
		char *argv[4];
		int rc;

		if (env)
			snprintf(bin, sizeof(bin), "%s", env);
		else
			snprintf(bin, sizeof(bin), "%s/%s", bindir,
			         i == 0 ? "tern-broker" : "tern-node");
		snprintf(conf, sizeof(conf), "%s/%s/%s", lf->fed, lf->names[i],
		         i == 0 ? "broker.conf" : "node.conf");
		snprintf(log, sizeof(log), "%s/%s.log", lf->dir, lf->names[i]);
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
		argv[0] = bin;
		argv[1] = "-c";
		argv[2] = conf;
		argv[3] = NULL;
		rc = posix_spawn(&lf->pids[i], bin, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		if (rc != 0) {
			fprintf(stderr, "tern %s: cannot start %s: %s\n", cmd, bin, strerror(rc));
			return TERN_EIO;
		}
		lf->n = i + 1;
	}
	return TERN_OK;
}

void localfed_socket(const localfed *lf, const char *node, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/data/api.sock", lf->fed, node);
}

/* Whether the daemon has exited; it is left for localfed_report_exits to reap. */
static int exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == pid;
}

int localfed_wait_connected(localfed *lf, int timeout_ms, volatile sig_atomic_t *interrupted,
                            const char *cmd)
{
	int64_t until = tern_now_ms() + timeout_ms;
	char sock[PATH_MAX + 32];

	for (size_t i = 1; i < lf->n; i++) {
		localfed_socket(lf, lf->names[i], sock, sizeof(sock));
		for (;;) {
			json_t *req =
			    json_pack("{s:i, s:s}", "v", TERN_API_VERSION, "op", "node.info");
			json_t *r = NULL;
			int ok = tern_api_call(sock, req, 5000, &r) == TERN_OK &&
			         json_is_true(json_object_get(r, "connected"));
			json_decref(req);
			json_decref(r);
			if (ok)
				break;
			if ((interrupted && *interrupted) || tern_now_ms() > until ||
			    exited(lf->pids[i]) || exited(lf->pids[0])) {
				fprintf(stderr,
				        "tern %s: %s did not connect to the broker; see %s/%s.log "
				        "and %s/broker.log\n",
				        cmd, lf->names[i], lf->dir, lf->names[i], lf->dir);
				return TERN_EIO;
			}
			usleep(50000);
		}
	}
	return TERN_OK;
}

void localfed_stop(localfed *lf)
{
	for (size_t i = lf->n; i-- > 0;)
		if (lf->pids[i] > 0)
			kill(lf->pids[i], SIGTERM);
	for (size_t i = 0; i < lf->n; i++) {
		int64_t until = tern_now_ms() + 5000;
		int st;
		if (lf->pids[i] <= 0)
			continue;
		while (waitpid(lf->pids[i], &st, WNOHANG) == 0) {
			if (tern_now_ms() > until) {
				kill(lf->pids[i], SIGKILL);
				waitpid(lf->pids[i], &st, 0);
				break;
			}
			usleep(20000);
		}
		lf->pids[i] = 0;
	}
}

int localfed_report_exits(localfed *lf, const char *cmd)
{
	int n = 0;

	for (size_t i = 0; i < lf->n; i++) {
		int st;
		if (lf->pids[i] <= 0 || waitpid(lf->pids[i], &st, WNOHANG) != lf->pids[i])
			continue;
		lf->pids[i] = 0;
		n++;
		if (WIFSIGNALED(st))
			fprintf(stderr, "tern %s: %s's %s was killed by signal %d; see %s/%s.log\n",
			        cmd, lf->names[i], i == 0 ? "tern-broker" : "tern-node",
			        WTERMSIG(st), lf->dir, lf->names[i]);
		else
			fprintf(stderr, "tern %s: %s's %s exited with status %d; see %s/%s.log\n",
			        cmd, lf->names[i], i == 0 ? "tern-broker" : "tern-node",
			        WEXITSTATUS(st), lf->dir, lf->names[i]);
	}
	return n;
}

void localfed_destroy(localfed *lf, int ok, const char *cmd)
{
	localfed_stop(lf);
	if (lf->dir[0] == 0)
		return;
	if (!ok) {
		/* Whatever went wrong, the logs stay, and the last line says where. */
		fflush(stdout);
		fprintf(stderr,
		        "tern %s: failed; the logs are kept in %s (broker.log and one per node), "
		        "the federation in %s\n",
		        cmd, lf->dir, lf->fed);
		return;
	}
	if (!lf->kept)
		remove_tree(lf->dir, cmd);
}

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

int localfed_create(localfed *lf, const char *keep, int port, const char *cmd)
{
	char portbuf[16], *fedargv[5];
	int rc, fd;

	memset(lf, 0, sizeof(*lf));
	for (int tries = 0; port == 0 && tries < 50; tries++) {
		/* The broker takes port and port + 1 (metrics); the nodes follow. */
		int p = 20000 + (int)randombytes_uniform(20000);
		if (port_free(p) && port_free(p + 1))
			port = p;
	}
	if (port == 0)
		return cli_fail(TERN_EIO, "no free port found for the broker");
	lf->port = port;
	if (keep) {
		snprintf(lf->dir, sizeof(lf->dir), "%s", keep);
		if (tern_mkdirs(lf->dir, 0700) != TERN_OK)
			return cli_fail(TERN_EIO, "cannot create %s", keep);
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
			if ((interrupted && *interrupted) || tern_now_ms() > until) {
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

void localfed_destroy(localfed *lf, int ok, const char *cmd)
{
	char shell[PATH_MAX + 16];

	localfed_stop(lf);
	if (lf->kept || lf->dir[0] == 0)
		return;
	if (!ok) {
		fprintf(stderr, "tern %s: kept %s for the logs\n", cmd, lf->dir);
		return;
	}
	snprintf(shell, sizeof(shell), "rm -rf '%s'", lf->dir);
	if (system(shell) != 0)
		fprintf(stderr, "tern %s: could not remove %s\n", cmd, lf->dir);
}

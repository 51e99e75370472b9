#include <stdio.h>
#include <string.h>
#include <time.h>

#include <tern/api.h>
#include <tern/config.h>
#include <tern/error.h>

#include "cli.h"
#include "nodeapi.h"

int nodeapi_call(const char *cmd, const char *conf, json_t *req, int timeout_ms, json_t **resp)
{
	return nodeapi_call_fds(cmd, conf, req, NULL, 0, timeout_ms, resp);
}

int nodeapi_call_fds(const char *cmd, const char *conf, json_t *req, const int *fds, size_t nfds,
                     int timeout_ms, json_t **resp)
{
	tern_config *cfg = NULL;
	const char *sock;
	int rc;

	*resp = NULL;
	rc = tern_config_load(conf, TERN_CONFIG_NODE, &cfg);
	if (rc != TERN_OK) {
		fprintf(stderr, "tern %s: cannot use %s:\n%s", cmd, conf,
		        cfg ? tern_config_errors(cfg) : "");
		if (cfg == NULL)
			fprintf(stderr, "%s\n", tern_errdetail());
		tern_config_free(&cfg);
		return CLI_FAIL;
	}
	sock = tern_config_get(cfg, "node", "api_socket");
	json_object_set_new(req, "v", json_integer(TERN_API_VERSION));
	rc = tern_api_call_fds(sock, req, fds, nfds, timeout_ms, resp);
	if (rc == TERN_ENOENT) {
		fprintf(stderr,
		        "tern %s: the node is not running (nothing listens on %s).\n"
		        "Start it with: tern-node -c %s\n",
		        cmd, sock, conf);
		tern_config_free(&cfg);
		return CLI_FAIL;
	}
	tern_config_free(&cfg);
	if (rc != TERN_OK) {
		fprintf(stderr, "tern %s: %s (%s)\n", cmd, tern_strerror(rc), tern_errdetail());
		return CLI_FAIL;
	}
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		const char *code = json_string_value(json_object_get(*resp, "error"));
		const char *msg = json_string_value(json_object_get(*resp, "message"));
		fprintf(stderr, "tern %s: %s: %s\n", cmd, code ? code : "error", msg ? msg : "");
		return CLI_NO;
	}
	return CLI_OK;
}

void nodeapi_time(long long ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Talking to a running tern-node through its local API (docs/api.md). */
#ifndef TERN_CLI_NODEAPI_H
#define TERN_CLI_NODEAPI_H

#include <stddef.h>

#include <jansson.h>

/* Loads NODECONF to find the API socket, sends req ("v" is added), and
 * returns the response in *resp. Errors are printed as the user should see
 * them: a node that is down, a configuration that does not load, or the
 * node's own {"ok":false} answer (then *resp is still set, for --json).
 * Returns a CLI exit code: CLI_OK, CLI_NO for a refusal, CLI_FAIL. */
int nodeapi_call(const char *cmd, const char *conf, json_t *req, int timeout_ms, json_t **resp);
/* The same, passing nfds file descriptors with the request (docs/api.md,
 * "Files by descriptor"). */
int nodeapi_call_fds(const char *cmd, const char *conf, json_t *req, const int *fds, size_t nfds,
                     int timeout_ms, json_t **resp);

/* "2026-11-22 22:50:01 UTC" for ms since the epoch. */
void nodeapi_time(long long ms, char *buf, size_t len);

#endif

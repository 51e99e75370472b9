/* Shared pieces of the tern command-line tool. */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Exit codes: 0 success, 1 the answer is "no" (invalid body, verify failed),
 * 2 usage error, 3 operational failure (I/O, crypto, configuration). */
enum { CLI_OK = 0, CLI_NO = 1, CLI_USAGE = 2, CLI_FAIL = 3, CLI_TIMEOUT = 4 };

/* A command: argv[0] is the command name. Returns an exit code. */
typedef int cli_cmd_fn(int argc, char **argv);

/* True when argv holds -h or --help (before a "--"). */
int cli_wants_help(int argc, char **argv);

/* Prints "tern: <msg>" to stderr, then "Try 'tern <cmd> --help'." and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "tern: <msg>" plus libtern's error detail, returns CLI_FAIL. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct tern_config;

/* Loads conf as a node's configuration or else a broker's, for commands that
 * take either; *section is then "node" or "broker" (the section holding
 * data_dir). On failure it says why, as "tern cmd: ...", and returns
 * CLI_FAIL (with *cfg NULL); else CLI_OK, and the caller frees *cfg. */
int cli_config_load_either(const char *cmd, const char *conf, struct tern_config **cfg,
                           const char **section);

/* Reads FILE or standard input when path is "-"; at most max bytes. *out is
 * malloc'd and NUL-terminated. */
int cli_read_input(const char *path, size_t max, uint8_t **out, size_t *len);

#define CLI_MAX_BODY (4u * 1024 * 1024)

/* 1 if path is missing or an empty directory (a folder a command may fill
 * without overwriting anything), else 0. */
int cli_dir_empty_or_missing(const char *path);

/* o's string member key, or "" when it has none (for printing answers). */
const char *cli_json_str(const json_t *o, const char *key);

#endif

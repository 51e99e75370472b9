/* Configuration files: loading, defaults, path resolution, every kind of error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/config.h>
#include <tern/error.h>
#include <tern/log.h>

#include "testutil.h"
#include "util.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	return tt_mkdtemp(tmpdir, sizeof(tmpdir), "config");
}

static int teardown(void **state)
{
	(void)state;
	return tt_rmtree(tmpdir);
}

/* Writes text to tmpdir/name; returns the path (static buffer). */
static const char *write_conf(const char *name, const char *text)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_int_equal(tt_write_file(path, text, strlen(text), 0644), 0);
	return path;
}

static char *joined(const char *rel)
{
	static char buf[4][512];
	static int i;
	char *b = buf[i++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s", tmpdir, rel);
	return b;
}

#define NODE_CONF                                                                                  \
	"[node]\n"                                   /* 1 */                                       \
	"id = unhcr-geneva\n"                        /* 2 */                                       \
	"log_level = debug ; verbose for now\n"      /* 3 */                                       \
	"\n"                                         /* 4 */                                       \
	"[keys]\n"                                   /* 5 */                                       \
	"certificate = certs/node.crt\n"             /* 6 */                                       \
	"\n"                                         /* 7 */                                       \
	"[federation]\n"                             /* 8 */                                       \
	"ca = ../fed/ca.crt\n"                       /* 9 */                                       \
	"crl = /etc/tern/crl.pem\n"                  /* 10 */                                      \
	"directory = ../fed/directory.bin\n"         /* 11 */                                      \
	"max_clock_skew = 2m\n"                      /* 12 */                                      \
	"\n"                                         /* 13 */                                      \
	"# the broker of the federation\n"           /* 14 */                                      \
	"[broker]\n"                                 /* 15 */                                      \
	"id = broker-1\n"                            /* 16 */                                      \
	"endpoint = tcp://broker.example.org:7400\n" /* 17 */                                      \
	"\n"                                         /* 18 */                                      \
	"[limits]\n"                                 /* 19 */                                      \
	"max_message_size = 2M\n"                    /* 20 */

#define NODE_MIN                                                                                   \
	"[node]\nid = unhcr-geneva\n"                                                              \
	"[federation]\nca = ca.crt\ncrl = ca.crl\ndirectory = directory.bin\n"                     \
	"[broker]\nid = broker-1\nendpoint = ipc://broker.sock\n"

#define BROKER_CONF                                                                                \
	"[broker]\n"                                                                               \
	"id = broker-1\n"                                                                          \
	"listen = tcp://*:7400\n"                                                                  \
	"control_socket = /run/tern/control.sock\n"                                                \
	"[federation]\n"                                                                           \
	"ca = ca.crt\n"                                                                            \
	"crl = ca.crl\n"                                                                           \
	"directory = directory.bin\n"

/* Loads text as kind expecting TERN_ECONFIG with exactly nerr errors, each of
 * the NULL-terminated substrings present in the error text. */
static void expect_errors(int kind, const char *text, size_t nerr, ...)
{
	tern_config *cfg = NULL;
	const char *path = write_conf(kind == TERN_CONFIG_NODE ? "node.conf" : "broker.conf", text);
	const char *want;
	va_list ap;

	assert_int_equal(tern_config_load(path, kind, &cfg), TERN_ECONFIG);
	assert_non_null(cfg);
	va_start(ap, nerr);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (strstr(tern_config_errors(cfg), want) == NULL)
			fail_msg("expected \"%s\" in:\n%s", want, tern_config_errors(cfg));
	}
	va_end(ap);
	if (tern_config_error_count(cfg) != nerr)
		fail_msg("expected %zu errors, got:\n%s", nerr, tern_config_errors(cfg));
	/* the detail names the first error, for callers that log only that */
	assert_non_null(strstr(tern_errdetail(), ".conf"));
	tern_config_free(&cfg);
	assert_null(cfg);
}

static void test_node_loads_and_resolves_paths(void **state)
{
	tern_config *cfg = NULL;
	const char *path = write_conf("node.conf", NODE_CONF);

	(void)state;
	assert_int_equal(tern_config_load(path, TERN_CONFIG_NODE, &cfg), TERN_OK);
	assert_string_equal(tern_config_path(cfg), path);
	assert_int_equal(tern_config_kind(cfg), TERN_CONFIG_NODE);
	assert_int_equal(tern_config_error_count(cfg), 0);
	assert_string_equal(tern_config_errors(cfg), "");
	assert_string_equal(tern_config_get(cfg, "node", "id"), "unhcr-geneva");
	/* the inline comment is not part of the value */
	assert_string_equal(tern_config_get(cfg, "node", "log_level"), "debug");
	assert_int_equal(tern_config_get_int(cfg, "node", "log_level"), TERN_LOG_DEBUG);
	assert_string_equal(tern_config_get(cfg, "keys", "certificate"), joined("certs/node.crt"));
	assert_string_equal(tern_config_get(cfg, "federation", "ca"), joined("../fed/ca.crt"));
	assert_string_equal(tern_config_get(cfg, "federation", "directory"),
	                    joined("../fed/directory.bin"));
	/* absolute paths are left alone */
	assert_string_equal(tern_config_get(cfg, "federation", "crl"), "/etc/tern/crl.pem");
	assert_int_equal(tern_config_get_int(cfg, "federation", "max_clock_skew"), 120);
	assert_int_equal(tern_config_get_int(cfg, "limits", "max_message_size"), 2 * 1024 * 1024);
	assert_string_equal(tern_config_get(cfg, "broker", "id"), "broker-1");
	assert_string_equal(tern_config_get(cfg, "broker", "endpoint"),
	                    "tcp://broker.example.org:7400");
	assert_int_equal(tern_config_line(cfg, "node", "id"), 2);
	assert_int_equal(tern_config_line(cfg, "broker", "endpoint"), 17);
	assert_int_equal(tern_config_line(cfg, "node", "data_dir"), 0);
	tern_config_free(&cfg);
	assert_null(cfg);
	tern_config_free(&cfg); /* harmless */
}

static void test_defaults_applied(void **state)
{
	tern_config *cfg = NULL;
	const char *path = write_conf("node.conf", NODE_MIN);

	(void)state;
	assert_int_equal(tern_config_load(path, TERN_CONFIG_NODE, &cfg), TERN_OK);
	assert_string_equal(tern_config_get(cfg, "node", "data_dir"), joined("data"));
	assert_string_equal(tern_config_get(cfg, "node", "api_socket"), joined("data/api.sock"));
	assert_string_equal(tern_config_get(cfg, "node", "log_level"), "info");
	assert_int_equal(tern_config_get_int(cfg, "node", "log_level"), TERN_LOG_INFO);
	assert_string_equal(tern_config_get(cfg, "keys", "certificate"), joined("node.crt"));
	assert_string_equal(tern_config_get(cfg, "keys", "signing_key"), joined("node.key"));
	assert_string_equal(tern_config_get(cfg, "keys", "seal_key"), joined("seal.key"));
	assert_string_equal(tern_config_get(cfg, "keys", "curve_key"), joined("curve.key"));
	assert_int_equal(tern_config_get_int(cfg, "federation", "max_clock_skew"), 300);
	assert_int_equal(tern_config_get_int(cfg, "limits", "max_message_size"), 8 * 1024 * 1024);
	/* a relative ipc endpoint is resolved like a path */
	{
		char want[600];

		snprintf(want, sizeof(want), "ipc://%s", joined("broker.sock"));
		assert_string_equal(tern_config_get(cfg, "broker", "endpoint"), want);
	}
	tern_config_free(&cfg);
}

static void test_relative_config_path(void **state)
{
	tern_config *cfg = NULL;
	char cwd[512];

	(void)state;
	write_conf("node.conf", NODE_MIN);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(tern_config_load("node.conf", TERN_CONFIG_NODE, &cfg), TERN_OK);
	assert_int_equal(chdir(cwd), 0);
	/* made absolute at load time, so a daemon may change directory later */
	assert_string_equal(tern_config_path(cfg), joined("node.conf"));
	assert_string_equal(tern_config_get(cfg, "node", "data_dir"), joined("data"));
	tern_config_free(&cfg);
}

static void test_broker_kind(void **state)
{
	tern_config *cfg = NULL;
	const char *path = write_conf("broker.conf", BROKER_CONF);

	(void)state;
	assert_int_equal(tern_config_load(path, TERN_CONFIG_BROKER, &cfg), TERN_OK);
	assert_string_equal(tern_config_get(cfg, "broker", "id"), "broker-1");
	assert_string_equal(tern_config_get(cfg, "broker", "listen"), "tcp://*:7400");
	assert_string_equal(tern_config_get(cfg, "broker", "data_dir"), joined("data"));
	assert_string_equal(tern_config_get(cfg, "broker", "control_socket"),
	                    "/run/tern/control.sock");
	assert_int_equal(tern_config_get_int(cfg, "broker", "log_level"), TERN_LOG_INFO);
	assert_string_equal(tern_config_get(cfg, "keys", "seal_key"), joined("seal.key"));
	assert_int_equal(tern_config_get_int(cfg, "limits", "max_message_size"), 8 * 1024 * 1024);
	tern_config_free(&cfg);

	/* node-only settings are rejected in broker.conf */
	expect_errors(TERN_CONFIG_BROKER, BROKER_CONF "[node]\nid = alpha\n", 1,
	              "broker.conf:9: [node]: section of node.conf, not of broker.conf", NULL);
	expect_errors(
	    TERN_CONFIG_BROKER,
	    "[broker]\nid = broker-1\nlisten = tcp://*:7400\nendpoint = tcp://x:1\n"
	    "[federation]\nca = a\ncrl = b\ndirectory = c\n",
	    1, "broker.conf:4: [broker] endpoint: a node.conf setting, not a broker.conf one",
	    NULL);
	/* and broker.conf's required keys are its own */
	expect_errors(TERN_CONFIG_BROKER, "[federation]\nca = a\ncrl = b\ndirectory = c\n", 2,
	              "broker.conf: [broker] id: required setting is missing",
	              "broker.conf: [broker] listen: required setting is missing", NULL);
	/* and broker-only keys in node.conf */
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "listen = tcp://*:1\n", 1,
	              "node.conf:10: [broker] listen: a broker.conf setting, not a node.conf one",
	              NULL);
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\ndata_dri = x\n", 1,
	              "node.conf:11: [node] data_dri: unknown key (did you mean data_dir?)", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[limits]\nfoo = 1\n", 1,
	              "node.conf:11: [limits] foo: unknown key; [limits] keys: max_message_size",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[keys]\nca = x\n", 1,
	              "node.conf:11: [keys] ca: unknown key here (it belongs in [federation])",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, "log_level = info\n" NODE_MIN, 1,
	              "node.conf:1: log_level: key outside any section (put it under [node])",
	              NULL);
}

static void test_unknown_section(void **state)
{
	(void)state;
	/* reported once, at the header, not once per key in it */
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federaton]\nca = x\ncrl = y\n", 1,
	              "node.conf:10: [federaton]: unknown section (did you mean [federation]?)",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[misc]\n", 1,
	              "node.conf:10: [misc]: unknown section; sections: node, keys, federation, "
	              "broker, limits",
	              NULL);
}

static void test_bad_numbers(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federation]\nmax_clock_skew = five\n", 1,
	              "node.conf:11: [federation] max_clock_skew: 'five': not a valid duration",
	              "1..86400 seconds", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federation]\nmax_clock_skew = 2x\n", 1,
	              "node.conf:11: [federation] max_clock_skew: '2x': not a valid duration",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federation]\nmax_clock_skew = 0\n", 1,
	              "node.conf:11: [federation] max_clock_skew: '0': out of bounds; allowed: "
	              "1..86400 seconds",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federation]\nmax_clock_skew = 2d\n", 1,
	              "out of bounds", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[federation]\nmax_clock_skew = -5\n", 1,
	              "not a valid duration", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[limits]\nmax_message_size = 1000\n", 1,
	              "node.conf:11: [limits] max_message_size: '1000': out of bounds; allowed: "
	              "1k..64M bytes",
	              NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[limits]\nmax_message_size = 65M\n", 1,
	              "out of bounds", NULL);
	expect_errors(TERN_CONFIG_NODE,
	              NODE_MIN "[limits]\nmax_message_size = 99999999999999999999999\n", 1,
	              "not a valid size", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[limits]\nmax_message_size = 9999999999G\n", 1,
	              "not a valid size", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\nlog_level = verbose\n", 1,
	              "node.conf:11: [node] log_level: 'verbose': not a log level; allowed: debug, "
	              "info, warn, error",
	              NULL);
}

static void test_sizes_and_durations(void **state)
{
	static const struct {
		const char *text;
		int64_t bytes;
	} sizes[] = {
	    {"1024", 1024}, {"1k", 1024}, {"64K", 65536}, {"3 MiB", 3 << 20}, {"64M", 64 << 20}};
	static const struct {
		const char *text;
		int64_t secs;
	} durations[] = {{"1", 1}, {"45s", 45}, {"10m", 600}, {"2h", 7200}, {"1d", 86400}};
	tern_config *cfg = NULL;
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(text, sizeof(text), NODE_MIN "[limits]\nmax_message_size = %s\n",
		         sizes[i].text);
		assert_int_equal(
		    tern_config_load(write_conf("node.conf", text), TERN_CONFIG_NODE, &cfg),
		    TERN_OK);
		assert_int_equal(tern_config_get_int(cfg, "limits", "max_message_size"),
		                 sizes[i].bytes);
		tern_config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		snprintf(text, sizeof(text), NODE_MIN "[federation]\nmax_clock_skew = %s\n",
		         durations[i].text);
		assert_int_equal(
		    tern_config_load(write_conf("node.conf", text), TERN_CONFIG_NODE, &cfg),
		    TERN_OK);
		assert_int_equal(tern_config_get_int(cfg, "federation", "max_clock_skew"),
		                 durations[i].secs);
		tern_config_free(&cfg);
	}
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE,
	              "[node]\nid = a\n[federation]\ncrl = c\ndirectory = d\n"
	              "[broker]\nid = b\nendpoint = tcp://h:1\n",
	              1, "node.conf: [federation] ca: required setting is missing", NULL);
	/* an empty file lacks every required setting */
	expect_errors(TERN_CONFIG_NODE, "", 6, "[node] id: required", "[federation] ca: required",
	              "[federation] crl: required", "[federation] directory: required",
	              "[broker] id: required", "[broker] endpoint: required", NULL);
	expect_errors(TERN_CONFIG_NODE,
	              "[node]\nid = a\n[federation]\nca =\ncrl = c\ndirectory = d\n"
	              "[broker]\nid = b\nendpoint = tcp://h:1\n",
	              1, "node.conf:4: [federation] ca: empty value; a value is required", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\ndata_dir =\n", 1,
	              "node.conf:11: [node] data_dir: empty value; remove the line to use the "
	              "default (data)",
	              NULL);
}

static void test_bad_node_id(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE,
	              "[node]\nid = UNHCR_Geneva\n[federation]\nca = a\ncrl = b\ndirectory = c\n"
	              "[broker]\nid = 1broker\nendpoint = tcp://h:1\n",
	              2, "node.conf:2: [node] id: 'UNHCR_Geneva': not a valid node id",
	              "node.conf:8: [broker] id: '1broker': not a valid node id",
	              "starting with a letter", NULL);
}

static void test_bad_endpoint(void **state)
{
	static const char *bad[] = {
	    "http://broker:80", "tcp://broker",   "tcp://:7400", "tcp://broker:70000",
	    "tcp://broker:0",   "tcp://broker:x", "ipc://",      "broker:7400"};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         "[node]\nid = a\n[federation]\nca = a\ncrl = b\ndirectory = c\n"
		         "[broker]\nid = b\nendpoint = %s\n",
		         bad[i]);
		expect_errors(TERN_CONFIG_NODE, text, 1, "node.conf:9: [broker] endpoint: '",
		              bad[i], NULL);
	}
	expect_errors(TERN_CONFIG_NODE,
	              "[node]\nid = a\n[federation]\nca = a\ncrl = b\ndirectory = c\n"
	              "[broker]\nid = b\nendpoint = ftp://x\n",
	              1, "not an endpoint; write tcp://HOST:PORT or ipc://PATH", NULL);
}

static void test_duplicate_key(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\nid = other\n", 1,
	              "node.conf:11: [node] id: duplicate key, first set on line 2", NULL);
	/* a duplicate of a bad value is still a duplicate, not a second bad value */
	expect_errors(
	    TERN_CONFIG_NODE, NODE_MIN "[limits]\nmax_message_size = 1\nmax_message_size = 2\n", 2,
	    "node.conf:11: [limits] max_message_size: '1': out of bounds",
	    "node.conf:12: [limits] max_message_size: duplicate key, first set on line 11", NULL);
}

static void test_all_errors_collected(void **state)
{
	(void)state;
	expect_errors(TERN_CONFIG_NODE,
	              "[node]\n"               /* 1 */
	              "id = Bad\n"             /* 2 */
	              "this is not a pair\n"   /* 3 */
	              "[keys\n"                /* 4 */
	              "[federation]\n"         /* 5 */
	              "max_clock_skew = -1\n"  /* 6 */
	              "bogus = 1\n"            /* 7 */
	              "[broker]\n"             /* 8 */
	              "id = b\n"               /* 9 */
	              "endpoint = tcp://h:1\n" /* 10 */
	              "id = c\n",              /* 11 */
	              9, "node.conf:2: [node] id", "node.conf:3: expected 'key = value'",
	              "node.conf:4: section header without a closing ']'",
	              "node.conf:6: [federation] max_clock_skew", "node.conf:7: [federation] bogus",
	              "node.conf:11: [broker] id: duplicate key, first set on line 9",
	              "node.conf: [federation] ca: required",
	              "node.conf: [federation] crl: required",
	              "node.conf: [federation] directory: required", NULL);
}

static void test_line_rules(void **state)
{
	char text[2048], longpath[300];
	tern_config *cfg = NULL;

	(void)state;
	/* a line inih would cut in two is an error, not a shortened value */
	memset(longpath, 'p', 250);
	longpath[250] = '\0';
	snprintf(text, sizeof(text), NODE_MIN "[node]\ndata_dir = /%s\n", longpath);
	expect_errors(TERN_CONFIG_NODE, text, 1,
	              "node.conf:11: line is 262 characters long; the limit is 197", NULL);
	/* exactly at the limit is fine */
	memset(longpath, 'p', 185);
	longpath[185] = '\0';
	snprintf(text, sizeof(text), NODE_MIN "[node]\ndata_dir = /%s\n", longpath);
	assert_int_equal(tern_config_load(write_conf("node.conf", text), TERN_CONFIG_NODE, &cfg),
	                 TERN_OK);
	assert_int_equal(strlen(tern_config_get(cfg, "node", "data_dir")), 186);
	tern_config_free(&cfg);

	/* an indented line after a key would silently extend its value in inih */
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\ndata_dir = a\n  api_socket = b\n", 1,
	              "node.conf:12: indented line would continue the previous value", NULL);
	/* but indentation right after a section header is harmless */
	assert_int_equal(
	    tern_config_load(write_conf("node.conf", NODE_MIN "[node]\n  data_dir = a\n"
	                                                      "\t# comment\n"),
	                     TERN_CONFIG_NODE, &cfg),
	    TERN_OK);
	assert_string_equal(tern_config_get(cfg, "node", "data_dir"), joined("a"));
	tern_config_free(&cfg);

	/* ';' starts a comment only after white space; CRLF line ends are fine */
	assert_int_equal(
	    tern_config_load(
	        write_conf("node.conf", "\xEF\xBB\xBF" NODE_MIN "[node]\r\ndata_dir = a;b ; c\r\n"),
	        TERN_CONFIG_NODE, &cfg),
	    TERN_OK);
	assert_string_equal(tern_config_get(cfg, "node", "data_dir"), joined("a;b"));
	tern_config_free(&cfg);

	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\ndata_dir = \"data\"\n", 1,
	              "node.conf:11: [node] data_dir: '\"data\"': quotes are kept", NULL);
	expect_errors(TERN_CONFIG_NODE, NODE_MIN "[node]\ndata_dir = ~/tern\n", 1,
	              "'~' is not expanded", NULL);
}

static void test_socket_path_length(void **state)
{
	char text[1024], deep[120];

	(void)state;
	/* fits in the line, not in sockaddr_un once joined to the directory */
	memset(deep, 'd', 100);
	deep[100] = '\0';
	snprintf(text, sizeof(text), NODE_MIN "[node]\napi_socket = %s/api.sock\n", deep);
	expect_errors(TERN_CONFIG_NODE, text, 1,
	              "node.conf:11: [node] api_socket:", "a Unix socket path must be at most 107",
	              NULL);
	snprintf(text, sizeof(text),
	         "[node]\nid = a\n[federation]\nca = a\ncrl = b\ndirectory = c\n"
	         "[broker]\nid = b\nendpoint = ipc://%s/b.sock\n",
	         deep);
	expect_errors(TERN_CONFIG_NODE, text, 1,
	              "node.conf:9: [broker] endpoint:", "a Unix socket path must be at most 107",
	              NULL);
}

/* Whatever bytes a file holds, its errors are plain ASCII lines: anything
 * else escaped (\x9c), each quoted value cut short. */
static void test_errors_escape_file_bytes(void **state)
{
	static const char text[] =
	    "[n\x9c\x1b[2Jde]\n"
	    "[node]\n"
	    "id = a\x9c\x07\x1b]0;title\x07\n"
	    "\xff\xfe = 1\n"
	    "log_level = "
	    "\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b"
	    "\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b"
	    "\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\x9b\n";
	char path[256];
	tern_config *cfg = NULL;
	const char *errs, *line;

	(void)state;
	snprintf(path, sizeof(path), "%s/node.conf", tmpdir);
	assert_int_equal(tt_write_file(path, text, sizeof(text) - 1, 0644), 0);
	assert_int_equal(tern_config_load(path, TERN_CONFIG_NODE, &cfg), TERN_ECONFIG);
	errs = tern_config_errors(cfg);
	for (const unsigned char *p = (const unsigned char *)errs; *p; p++)
		if (*p != '\n' && (*p < 0x20 || *p > 0x7e))
			fail_msg("byte 0x%02x in the errors:\n%s", *p, errs);
	assert_non_null(strstr(errs, "[n\\x9c\\x1b[2Jde]: unknown section"));
	assert_non_null(strstr(errs, "'a\\x9c\\x07\\x1b]0;title\\x07': value contains control"));
	assert_non_null(strstr(errs, "] \\xff\\xfe: unknown key"));
	assert_non_null(strstr(errs, "log_level: '\\x9b"));
	for (line = errs; *line; line = strchr(line, '\n') + 1)
		assert_true(strchr(line, '\n') - line < 300);
	assert_non_null(strstr(errs, "\\x9b...'"));
	tern_config_free(&cfg);
	/* a named pipe is refused at once, not waited on */
	snprintf(path, sizeof(path), "%s/pipe.conf", tmpdir);
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_int_equal(tern_config_load(path, TERN_CONFIG_NODE, &cfg), TERN_EIO);
	assert_null(cfg);
	assert_non_null(strstr(tern_errdetail(), "pipe.conf is a named pipe (FIFO)"));
}

static void test_missing_file(void **state)
{
	tern_config *cfg = (tern_config *)1;

	(void)state;
	assert_int_equal(tern_config_load(joined("nope.conf"), TERN_CONFIG_NODE, &cfg),
	                 TERN_ENOENT);
	assert_null(cfg);
	assert_non_null(strstr(tern_errdetail(), "nope.conf"));
	/* a directory is not a config file */
	cfg = (tern_config *)1;
	assert_int_equal(tern_config_load(tmpdir, TERN_CONFIG_NODE, &cfg), TERN_EIO);
	assert_null(cfg);
	assert_non_null(strstr(tern_errdetail(), tmpdir));
	assert_int_equal(tern_config_load(write_conf("node.conf", NODE_MIN), 3, &cfg), TERN_EINVAL);
	assert_null(cfg);
}

static void test_get_undeclared_is_fatal(void **state)
{
	tern_config *cfg = NULL;
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(
	    tern_config_load(write_conf("broker.conf", BROKER_CONF), TERN_CONFIG_BROKER, &cfg),
	    TERN_OK);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* a node.conf key asked of broker.conf */
		freopen("/dev/null", "w", stderr);
		tern_config_get(cfg, "broker", "endpoint");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	tern_config_free(&cfg);
}

static char *capture_describe(int kind, int format)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(tern_config_describe(kind, format, f), TERN_OK);
	fclose(f);
	return buf;
}

static void test_describe_defaults_load(void **state)
{
	tern_config *cfg = NULL;
	char *ini;

	(void)state;
	/* The sample file lists every default; loading it leaves exactly the
	 * required settings missing, so every default parses within its bounds. */
	ini = capture_describe(TERN_CONFIG_NODE, TERN_CONFIG_FORMAT_INI);
	assert_non_null(strstr(ini, "max_message_size = 8M\n"));
	assert_non_null(strstr(ini, ";id =\n"));
	expect_errors(TERN_CONFIG_NODE, ini, 6, "required setting is missing", NULL);
	free(ini);
	ini = capture_describe(TERN_CONFIG_BROKER, TERN_CONFIG_FORMAT_INI);
	assert_null(strstr(ini, "endpoint ="));
	expect_errors(TERN_CONFIG_BROKER, ini, 5, "required setting is missing", NULL);
	free(ini);
	assert_int_equal(tern_config_describe(7, TERN_CONFIG_FORMAT_INI, stdout), TERN_EINVAL);
	assert_int_equal(tern_config_describe(TERN_CONFIG_NODE, 9, stdout), TERN_EINVAL);

	/* print shows the effective values with where they came from */
	{
		char *out = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&out, &len);

		assert_int_equal(
		    tern_config_load(write_conf("node.conf", NODE_CONF), TERN_CONFIG_NODE, &cfg),
		    TERN_OK);
		assert_int_equal(tern_config_print(cfg, f), TERN_OK);
		fclose(f);
		assert_non_null(strstr(out, "id = unhcr-geneva ; line 2\n"));
		assert_non_null(strstr(out, "max_clock_skew = 2m ; line 12\n"));
		assert_non_null(strstr(out, "seal_key = "));
		assert_non_null(strstr(out, "/seal.key ; default\n"));
		free(out);
		tern_config_free(&cfg);
	}
}

/* docs/configuration.md carries the tables tern_config_describe() writes; a
 * setting added to the table without the docs fails here. */
static void check_docs_table(const char *docs, int kind)
{
	char begin[64], end[64];
	const char *b, *e;
	char *want = capture_describe(kind, TERN_CONFIG_FORMAT_MARKDOWN);

	snprintf(begin, sizeof(begin), "<!-- BEGIN %s -->\n", tern_config_kind_name(kind));
	snprintf(end, sizeof(end), "<!-- END %s -->", tern_config_kind_name(kind));
	b = strstr(docs, begin);
	e = b ? strstr(b, end) : NULL;
	if (b == NULL || e == NULL)
		fail_msg("docs/configuration.md lacks the %s and %s markers", begin, end);
	b += strlen(begin);
	if ((size_t)(e - b) != strlen(want) || memcmp(b, want, strlen(want)) != 0) {
		FILE *f = fopen("configuration-tables.md", "a");

		if (f) {
			fprintf(f, "%s%s%s\n", begin, want, end);
			fclose(f);
		}
		fail_msg(
		    "docs/configuration.md's %s table differs from tern_config_describe(); the "
		    "expected table is in configuration-tables.md in the test's directory",
		    tern_config_kind_name(kind));
	}
	free(want);
}

static void test_docs_match_table(void **state)
{
	const char *src = tt_source_dir();
	char path[512], *docs = NULL;
	size_t dlen = 0;

	(void)state;
	if (src == NULL)
		skip();
	snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
	assert_int_equal(tern_file_read(path, 1 << 20, (uint8_t **)&docs, &dlen), TERN_OK);
	check_docs_table(docs, TERN_CONFIG_NODE);
	check_docs_table(docs, TERN_CONFIG_BROKER);
	free(docs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_node_loads_and_resolves_paths),
	    cmocka_unit_test(test_defaults_applied),
	    cmocka_unit_test(test_relative_config_path),
	    cmocka_unit_test(test_broker_kind),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_unknown_section),
	    cmocka_unit_test(test_bad_numbers),
	    cmocka_unit_test(test_sizes_and_durations),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_bad_node_id),
	    cmocka_unit_test(test_bad_endpoint),
	    cmocka_unit_test(test_duplicate_key),
	    cmocka_unit_test(test_all_errors_collected),
	    cmocka_unit_test(test_line_rules),
	    cmocka_unit_test(test_socket_path_length),
	    cmocka_unit_test(test_errors_escape_file_bytes),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_get_undeclared_is_fatal),
	    cmocka_unit_test(test_describe_defaults_load),
	    cmocka_unit_test(test_docs_match_table),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* Configuration files: one table declares every setting (as Postfix's
 * mail_params does), inih splits the lines, this file checks them. Over 800
 * lines because the table is here: a line per setting, read by the checks
 * below and by tern_config_describe (docs/configuration.md's tables).
 *
 * inih's Debian build (r55) has no line numbers in its handler, cuts lines
 * longer than its buffer in two, turns an indented line after a key into a
 * continuation of that key's value, and reports only the first syntax error.
 * So lines reach inih through line_reader(), which numbers them, classifies
 * them the way inih will, reports every bad line itself and hands inih a blank
 * line instead: inih then only ever sees lines it parses as we expect.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include <tern/attach.h>
#include <tern/config.h>
#include <tern/error.h>
#include <tern/log.h>

#include "util.h"

enum vtype {
	T_STRING,   /* any non-empty text */
	T_PATH,     /* a file or directory, resolved against the config's directory */
	T_SOCKET,   /* a path that names a Unix socket: must fit in sun_path */
	T_INT,      /* a decimal integer */
	T_SIZE,     /* bytes, with an optional k/M/G (powers of 1024) */
	T_DURATION, /* seconds, with an optional s/m/h/d */
	T_LEVEL,    /* a log level: debug, info, warn, error */
	T_NODE_ID,  /* a node id, see tern_node_id_valid() */
	T_ENDPOINT, /* tcp://HOST:PORT or ipc://PATH */
};

struct setting {
	unsigned kinds; /* TERN_CONFIG_NODE and/or TERN_CONFIG_BROKER */
	const char *section;
	const char *key;
	enum vtype type;
	const char *def; /* as a user would write it; NULL if required */
	int64_t min, max;
	int required;
	const char *help;
};

#define NODE TERN_CONFIG_NODE
#define BROKER TERN_CONFIG_BROKER
#define BOTH (TERN_CONFIG_NODE | TERN_CONFIG_BROKER)
#define REQUIRED NULL, 0, 0, 1
#define DEFAULT(d) d, 0, 0, 0
#define BOUNDED(d, lo, hi) d, lo, hi, 0
#define KiB 1024LL
#define MiB (1024LL * 1024)

/* Every setting of every kind. Adding one is adding one line; keep the rows of
 * a section together (tern_config_print and _describe print in this order).
 * The same section and key may appear twice with different kinds: [broker] id
 * is the broker a node talks to in node.conf, the broker itself in broker.conf. */
/* clang-format off */
static const struct setting settings[] = {
	{NODE,   "node",       "id",               T_NODE_ID,  REQUIRED,                            "this node's id, as listed in the federation directory"},
	{NODE,   "node",       "data_dir",         T_PATH,     DEFAULT("data"),                     "directory of the node's message store (LMDB)"},
	{NODE,   "node",       "api_socket",       T_SOCKET,   DEFAULT("data/api.sock"),            "Unix socket where local case-management systems submit and fetch messages"},
	{NODE,   "node",       "log_level",        T_LEVEL,    DEFAULT("info"),                     "least severe log level written"},
	{BROKER, "broker",     "id",               T_NODE_ID,  REQUIRED,                            "this broker's id, as listed in the federation directory"},
	{BROKER, "broker",     "listen",           T_ENDPOINT, REQUIRED,                            "ZeroMQ endpoint where nodes connect"},
	{BROKER, "broker",     "data_dir",         T_PATH,     DEFAULT("data"),                     "directory of the broker's queues (LMDB)"},
	{BROKER, "broker",     "control_socket",   T_SOCKET,   DEFAULT("data/control.sock"),        "Unix socket for operator commands"},
	{BROKER, "broker",     "log_level",        T_LEVEL,    DEFAULT("info"),                     "least severe log level written"},
	{BOTH,   "keys",       "certificate",      T_PATH,     DEFAULT("node.crt"),                 "this party's certificate (PEM), issued by the federation CA"},
	{BOTH,   "keys",       "signing_key",      T_PATH,     DEFAULT("node.key"),                 "Ed25519 signing key (PEM, mode 0600)"},
	{BOTH,   "keys",       "seal_key",         T_PATH,     DEFAULT("seal.key"),                 "X25519 key that opens sealed bodies (PEM, mode 0600)"},
	{BOTH,   "keys",       "curve_key",        T_PATH,     DEFAULT("curve.key"),                "CurveZMQ key pair for the transport (mode 0600)"},
	{BOTH,   "federation", "ca",               T_PATH,     REQUIRED,                            "federation CA certificate (PEM)"},
	{BOTH,   "federation", "crl",              T_PATH,     REQUIRED,                            "federation certificate revocation list (PEM)"},
	{BOTH,   "federation", "directory",        T_PATH,     REQUIRED,                            "signed federation directory"},
	{BOTH,   "federation", "max_clock_skew",   T_DURATION, BOUNDED("300", 1, 86400),            "how far in the future, by this clock, a message's created-at may be (old messages are accepted: they waited for a party that was cut off)"},
	{NODE,   "broker",     "id",               T_NODE_ID,  REQUIRED,                            "id of the broker this node connects to"},
	{NODE,   "broker",     "endpoint",         T_ENDPOINT, REQUIRED,                            "ZeroMQ endpoint of that broker"},
	{BOTH,   "limits",     "max_message_size", T_SIZE,     BOUNDED("8M", 1 * KiB, 64 * MiB),    "largest envelope accepted or sent"},
	{BOTH,   "limits",     "max_attachment_size", T_SIZE,  BOUNDED("2G", 1 * KiB, (long long)TERN_ATTACH_MAX_SIZE_LIMIT), "largest attachment accepted or sent (docs/attachments.md)"},
	{BOTH,   "limits",     "max_message_attachments", T_SIZE, BOUNDED("4G", 1 * KiB, 256 * 1024 * MiB), "most attachment bytes one message may carry in all"},
	{BOTH,   "limits",     "attachment_window", T_INT,     BOUNDED("2", 1, 64),                 "1 MiB chunks in flight per transfer and direction: 2 fill 160 Mbit/s at 100 ms round trip; more delays other messages"},
	{BROKER, "limits",     "peer_rate",        T_INT,      BOUNDED("2000", 1, 1000000),         "submissions per second one node may make; more wait their turn, so one node cannot starve the others"},
	{BROKER, "limits",     "peer_burst",       T_INT,      BOUNDED("5000", 1, 1000000),         "submissions a node may make at once above its rate (token bucket)"},
	{BROKER, "limits",     "peer_backlog",     T_SIZE,     BOUNDED("64M", 1 * MiB, 4096 * MiB), "bytes of one node's submissions that may wait for their turn; beyond, they are dropped and the node resubmits"},
	{BOTH,   "delivery",   "heartbeat_interval", T_DURATION, BOUNDED("5", 1, 300),              "how often an idle connection is probed"},
	{BOTH,   "delivery",   "heartbeat_timeout",  T_DURATION, BOUNDED("15", 2, 3600),            "silence after which a connection is taken as dead"},
	{BOTH,   "delivery",   "batch_size",       T_INT,      BOUNDED("512", 1, 10000),            "most messages written in one commit (group commit)"},
	{BROKER, "delivery",   "default_ttl",      T_DURATION, BOUNDED("7d", 60, 7776000),          "time-to-live of a message whose sender set none; then it is dead-lettered"},
	{BROKER, "delivery",   "max_attempts",     T_INT,      BOUNDED("20", 1, 1000),              "deliveries without acknowledgement before a message is dead-lettered"},
	{BROKER, "delivery",   "ack_timeout",      T_DURATION, BOUNDED("5", 1, 600),                "wait for a node's acknowledgement before the first redelivery"},
	{BROKER, "delivery",   "max_backoff",      T_DURATION, BOUNDED("300", 1, 86400),            "longest wait between redeliveries (the wait doubles each attempt)"},
	{BROKER, "delivery",   "retain_ids",       T_DURATION, BOUNDED("90d", 0, 31536000),         "how long the ids of items past retain are kept, to name what a node restored from an older backup lost (at most retain: none)"},
	{BROKER, "delivery",   "retain",           T_DURATION, BOUNDED("7d", 0, 7776000),           "how long acknowledged items (and attachments every recipient has) stay, so a node restored from an older backup gets them again (0: none); above the oldest backup's age"},
	{NODE,   "delivery",   "hold",             T_DURATION, BOUNDED("1d", 1, 2592000),           "how long a delivered message citing one that has not arrived is held, unjudged, before it is refused unknown-reference"},
	{NODE,   "delivery",   "attachment_retain", T_DURATION, BOUNDED("30d", 0, 315360000),     "how long a received message's attachments stay on disk after the message is acknowledged from the inbox (0: removed soon after the acknowledgement)"},
	{NODE,   "delivery",   "credit",           T_INT,      BOUNDED("256", 1, 65536),            "deliveries the broker may have in flight to this node (flow control)"},
	{NODE,   "delivery",   "submit_window",    T_INT,      BOUNDED("256", 1, 65536),            "submissions in flight to the broker before waiting for results"},
	{NODE,   "delivery",   "reconnect_max",    T_DURATION, BOUNDED("30", 1, 3600),              "longest wait between reconnection attempts, after a lost connection or a refused handshake (the wait doubles from 100 ms)"},
	{BOTH,   "audit",      "checkpoint_interval", T_DURATION, BOUNDED("10", 1, 3600),          "while audit entries arrive, how often a checkpoint of the log is signed (and, at a node, witnessed)"},
	{BOTH,   "audit",      "idle_checkpoint_interval", T_DURATION, BOUNDED("300", 10, 86400), "how often an idle log is signed again, so peers' fresh cosignatures show it was not truncated"},
	{BOTH,   "metrics",    "port",             T_INT,      BOUNDED("0", 0, 65535),              "port on 127.0.0.1 serving /metrics (Prometheus), /healthz and /readyz; 0: off"},
	{NODE,   "http",       "port",             T_INT,      BOUNDED("0", 0, 65535),              "port on 127.0.0.1 of the node's HTTP API (docs/api.md); 0: off"},
	{NODE,   "http",       "token_file",       T_PATH,     DEFAULT("http.token"),               "file (mode 0600) holding the bearer token that HTTP API clients present"},
	{NODE,   "webhook",    "url",              T_STRING,   DEFAULT("off"),                      "http:// or https:// URL the node posts each received message and each final state of a sent one to (docs/api.md, \"Webhooks\"); off: none"},
	{NODE,   "webhook",    "secret_file",      T_PATH,     DEFAULT("webhook.secret"),           "file (mode 0600) holding the signing secret, whsec_ and base64 (Standard Webhooks)"},
	{NODE,   "webhook",    "max_backoff",      T_DURATION, BOUNDED("60", 1, 3600),              "longest wait between attempts while the agency's system does not answer (the wait doubles from 250 ms)"},
};
/* clang-format on */

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

struct value {
	char *str;   /* NULL: no valid value */
	int64_t num; /* int, size, duration, level */
	int line;    /* where it was set; 0: default or unset */
	int seen;    /* set in the file (validly or not), for duplicates */
};

struct tern_config {
	int kind;
	char *path;   /* absolute */
	char *shown;  /* as the caller gave it, for messages */
	char *errors; /* "...\n...\n" */
	size_t errlen, errcap, nerrors;
	char *first_error;
	struct value vals[N_SETTINGS];
};

/* --- errors ---------------------------------------------------------------- */

static int add_error(struct tern_config *cfg, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends "FILE[:LINE]: " fmt "\n". Returns TERN_ENOMEM if that failed. */
static int add_error(struct tern_config *cfg, int line, const char *fmt, ...)
{
	char msg[768], head[1700], shown[1610];
	va_list ap;
	size_t need;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tern_escape(cfg->shown, strlen(cfg->shown), 400, shown, sizeof(shown));
	if (line > 0)
		snprintf(head, sizeof(head), "%s:%d: ", shown, line);
	else
		snprintf(head, sizeof(head), "%s: ", shown);
	need = strlen(head) + strlen(msg) + 2;
	if (cfg->errlen + need > cfg->errcap) {
		size_t cap = (cfg->errcap ? cfg->errcap : 512);
		char *p;

		while (cap < cfg->errlen + need)
			cap *= 2;
		if ((p = realloc(cfg->errors, cap)) == NULL)
			return TERN_ENOMEM;
		cfg->errors = p;
		cfg->errcap = cap;
	}
	n = snprintf(cfg->errors + cfg->errlen, cfg->errcap - cfg->errlen, "%s%s\n", head, msg);
	if (cfg->first_error == NULL)
		cfg->first_error = strndup(cfg->errors + cfg->errlen, (size_t)n - 1);
	cfg->errlen += (size_t)n;
	cfg->nerrors++;
	return TERN_OK;
}

/* Values go into messages quoted, cut short and with everything but printable
 * ASCII escaped (\x9c), so an error line stays one line of plain text whatever
 * bytes the file holds. */
static const char *shown_value(const char *v, char *buf, size_t len)
{
	/* len is at least 16 here; tern_escape stops short of overflowing it. */
	tern_escape(v, strlen(v), len - 12, buf, len);
	return buf;
}

/* --- the table --------------------------------------------------------------- */

static int applies(const struct setting *s, int kind)
{
	return (s->kinds & (unsigned)kind) != 0;
}

static const struct setting *find(int kind, const char *section, const char *key)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (applies(&settings[i], kind) && strcmp(settings[i].section, section) == 0 &&
		    strcmp(settings[i].key, key) == 0)
			return &settings[i];
	return NULL;
}

static int section_known(int kind, const char *section)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (applies(&settings[i], kind) && strcmp(settings[i].section, section) == 0)
			return 1;
	return 0;
}

static int other_kind(int kind)
{
	return kind == TERN_CONFIG_NODE ? TERN_CONFIG_BROKER : TERN_CONFIG_NODE;
}

/* Edit distance, for "did you mean"; long strings are never close. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];

	if (la > 64 || lb > 64)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static int close_enough(const char *typed, const char *known)
{
	size_t d = distance(typed, known), n = strlen(known);

	return d <= (n <= 4 ? 1 : 2) && d < n;
}

/* The declared key of section closest to key, or NULL. */
static const char *closest_key(int kind, const char *section, const char *key)
{
	const char *best = NULL;
	size_t bestd = 1000;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		size_t d;

		if (!applies(s, kind) || strcmp(s->section, section) != 0 ||
		    !close_enough(key, s->key))
			continue;
		if ((d = distance(key, s->key)) < bestd) {
			best = s->key;
			bestd = d;
		}
	}
	return best;
}

/* Sections of kind, "node, keys, ..." in table order. */
static void list_sections(int kind, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_SETTINGS; i++) {
		int dup = 0;

		if (!applies(&settings[i], kind))
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = applies(&settings[j], kind) &&
			      strcmp(settings[j].section, settings[i].section) == 0;
		if (!dup && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
			                        settings[i].section);
	}
}

/* Keys of [section] for kind, "id, data_dir, ...". */
static void list_keys(int kind, const char *section, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (applies(&settings[i], kind) && strcmp(settings[i].section, section) == 0 &&
		    off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
			                        settings[i].key);
}

const char *tern_config_kind_name(int kind)
{
	switch (kind) {
	case TERN_CONFIG_NODE:
		return "node.conf";
	case TERN_CONFIG_BROKER:
		return "broker.conf";
	default:
		return "?";
	}
}

/* --- values -------------------------------------------------------------------- */

struct unit {
	const char *suffix;
	int64_t mult;
};

static const struct unit int_units[] = {{"", 1}, {NULL, 0}};
static const struct unit size_units[] = {
    {"", 1},      {"k", KiB},        {"K", KiB},          {"KiB", KiB}, {"M", MiB},
    {"MiB", MiB}, {"G", 1024 * MiB}, {"GiB", 1024 * MiB}, {NULL, 0},
};
static const struct unit duration_units[] = {
    {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {NULL, 0},
};

/* Whole number with an optional unit; 0 or -1 (not a number / overflow). */
static int parse_scaled(const char *v, const struct unit *units, int negative_ok, int64_t *out)
{
	const char *p = v;
	int neg = 0;
	int64_t n = 0;

	if (*p == '-' && negative_ok) {
		neg = 1;
		p++;
	}
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	while (*p == ' ' || *p == '\t')
		p++;
	for (const struct unit *u = units; u->suffix; u++) {
		if (strcmp(p, u->suffix) != 0)
			continue;
		if (n > INT64_MAX / u->mult)
			return -1;
		*out = neg ? -n * u->mult : n * u->mult;
		return 0;
	}
	return -1;
}

/* A size in the largest unit that divides it: "8M", "1k", "1000". */
static void format_size(int64_t n, char *buf, size_t len)
{
	if (n != 0 && n % (1024 * MiB) == 0)
		snprintf(buf, len, "%lldG", (long long)(n / (1024 * MiB)));
	else if (n != 0 && n % MiB == 0)
		snprintf(buf, len, "%lldM", (long long)(n / MiB));
	else if (n != 0 && n % KiB == 0)
		snprintf(buf, len, "%lldk", (long long)(n / KiB));
	else
		snprintf(buf, len, "%lld", (long long)n);
}

static void format_bound(const struct setting *s, int64_t n, char *buf, size_t len)
{
	if (s->type == T_SIZE)
		format_size(n, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)n);
}

/* What a value of s's type may be, for messages and the docs. */
static void allowed(const struct setting *s, char *buf, size_t len)
{
	char lo[32], hi[32];

	format_bound(s, s->min, lo, sizeof(lo));
	format_bound(s, s->max, hi, sizeof(hi));
	switch (s->type) {
	case T_STRING:
		snprintf(buf, len, "any text");
		break;
	case T_PATH:
		snprintf(buf, len, "absolute, or relative to the file's directory");
		break;
	case T_SOCKET:
		snprintf(buf, len, "as a path; at most %zu bytes once resolved",
		         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		break;
	case T_INT:
		snprintf(buf, len, "%s..%s", lo, hi);
		break;
	case T_SIZE:
		snprintf(buf, len, "%s..%s bytes (suffix k, M or G: x1024)", lo, hi);
		break;
	case T_DURATION:
		snprintf(buf, len, "%s..%s seconds (suffix s, m, h or d)", lo, hi);
		break;
	case T_LEVEL:
		snprintf(buf, len, "debug, info, warn, error");
		break;
	case T_NODE_ID:
		snprintf(buf, len, "1 to 63 of a-z, 0-9 and '-', starting with a letter");
		break;
	case T_ENDPOINT:
		snprintf(buf, len, "tcp://HOST:PORT or ipc://PATH");
		break;
	}
}

static const char *type_name(enum vtype t)
{
	static const char *names[] = {
	    [T_STRING] = "string",   [T_PATH] = "path",       [T_SOCKET] = "socket path",
	    [T_INT] = "integer",     [T_SIZE] = "size",       [T_DURATION] = "duration",
	    [T_LEVEL] = "log level", [T_NODE_ID] = "node id", [T_ENDPOINT] = "endpoint",
	};
	return names[t];
}

static int has_control(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 1;
	return 0;
}

/* Resolves a path value; "why" is set when the value itself is wrong. */
static int resolve_path(const struct tern_config *cfg, const char *v, size_t max, char **out,
                        char *why, size_t whylen)
{
	int rc;

	if (v[0] == '~') {
		snprintf(why, whylen,
		         "'~' is not expanded; give an absolute path or one relative "
		         "to the directory of the config file");
		return TERN_ECONFIG;
	}
	if ((rc = tern_path_resolve(cfg->path, v, out)) != TERN_OK)
		return rc;
	if (max != 0 && strlen(*out) > max) {
		snprintf(why, whylen,
		         "resolves to a path of %zu bytes; a Unix socket path must be at most %zu "
		         "(give a shorter absolute path)",
		         strlen(*out), max);
		free(*out);
		*out = NULL;
		return TERN_ECONFIG;
	}
	return TERN_OK;
}

static int parse_endpoint(const struct tern_config *cfg, const char *v, char **out, char *why,
                          size_t whylen)
{
	const size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	if (strncmp(v, "tcp://", 6) == 0) {
		const char *host = v + 6, *colon = strrchr(host, ':');
		int64_t port;

		if (colon == NULL || colon == host || strpbrk(host, " \t") != NULL ||
		    parse_scaled(colon + 1, int_units, 0, &port) != 0 || port < 1 || port > 65535) {
			snprintf(why, whylen,
			         "a tcp endpoint needs a host and a port 1..65535, "
			         "as in tcp://broker.example.org:7400");
			return TERN_ECONFIG;
		}
		return (*out = strdup(v)) ? TERN_OK : TERN_ENOMEM;
	}
	if (strncmp(v, "ipc://", 6) == 0) {
		char *path = NULL;
		int rc;

		if (v[6] == '\0') {
			snprintf(why, whylen,
			         "an ipc endpoint needs a path, as in ipc://data/broker.sock");
			return TERN_ECONFIG;
		}
		if (v[6] == '@') /* Linux abstract socket: not a file */
			return (*out = strdup(v)) ? TERN_OK : TERN_ENOMEM;
		if ((rc = resolve_path(cfg, v + 6, sun_max, &path, why, whylen)) != TERN_OK)
			return rc;
		rc = asprintf(out, "ipc://%s", path) < 0 ? TERN_ENOMEM : TERN_OK;
		free(path);
		return rc;
	}
	snprintf(why, whylen, "not an endpoint; write tcp://HOST:PORT or ipc://PATH");
	return TERN_ECONFIG;
}

/* Checks v against s and fills val. TERN_ECONFIG with why set if v is wrong. */
static int parse_value(const struct tern_config *cfg, const struct setting *s, const char *v,
                       struct value *val, char *why, size_t whylen)
{
	const size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	char lo[32], hi[32], *str = NULL;
	const struct unit *units = int_units;
	int rc, level;
	int64_t n = 0;

	if (*v == '\0') {
		if (s->required)
			snprintf(why, whylen, "empty value; a value is required");
		else
			snprintf(why, whylen,
			         "empty value; remove the line to use the default (%s)", s->def);
		return TERN_ECONFIG;
	}
	if (has_control(v)) {
		snprintf(why, whylen, "value contains control characters");
		return TERN_ECONFIG;
	}
	if (v[0] == '"' || v[0] == '\'') {
		snprintf(why, whylen, "quotes are kept as part of the value; remove them");
		return TERN_ECONFIG;
	}
	switch (s->type) {
	case T_STRING:
		if ((str = strdup(v)) == NULL)
			return TERN_ENOMEM;
		break;
	case T_PATH:
	case T_SOCKET:
		if ((rc = resolve_path(cfg, v, s->type == T_SOCKET ? sun_max : 0, &str, why,
		                       whylen)) != TERN_OK)
			return rc;
		break;
	case T_SIZE:
	case T_DURATION:
	case T_INT:
		units = s->type == T_SIZE       ? size_units
		        : s->type == T_DURATION ? duration_units
		                                : int_units;
		format_bound(s, s->min, lo, sizeof(lo));
		format_bound(s, s->max, hi, sizeof(hi));
		if (parse_scaled(v, units, s->type == T_INT, &n) != 0) {
			char a[160];

			allowed(s, a, sizeof(a));
			snprintf(why, whylen, "not a valid %s; allowed: %s", type_name(s->type), a);
			return TERN_ECONFIG;
		}
		if (n < s->min || n > s->max) {
			snprintf(why, whylen, "out of bounds; allowed: %s..%s%s", lo, hi,
			         s->type == T_SIZE       ? " bytes"
			         : s->type == T_DURATION ? " seconds"
			                                 : "");
			return TERN_ECONFIG;
		}
		if ((str = strdup(v)) == NULL)
			return TERN_ENOMEM;
		break;
	case T_LEVEL:
		if (log_level_parse(v, &level) != 0) {
			snprintf(why, whylen, "not a log level; allowed: debug, info, warn, error");
			return TERN_ECONFIG;
		}
		n = level;
		if ((str = strdup(v)) == NULL)
			return TERN_ENOMEM;
		break;
	case T_NODE_ID:
		if (!tern_node_id_valid(v)) {
			snprintf(why, whylen,
			         "not a valid node id; allowed: 1 to 63 of a-z, 0-9 and "
			         "'-', starting with a letter");
			return TERN_ECONFIG;
		}
		if ((str = strdup(v)) == NULL)
			return TERN_ENOMEM;
		break;
	case T_ENDPOINT:
		if ((rc = parse_endpoint(cfg, v, &str, why, whylen)) != TERN_OK)
			return rc;
		break;
	}
	free(val->str);
	val->str = str;
	val->num = n;
	return TERN_OK;
}

/* --- parsing ------------------------------------------------------------------ */

struct parse {
	struct tern_config *cfg;
	const char *buf;
	size_t len, pos;
	int lineno;
	int section_ok; /* the current section is declared for this kind */
	int had_pair;   /* a key since the last section header: inih's prev_name */
	int rc;         /* TERN_ENOMEM once memory ran out */
};

static void note(struct parse *p, int rc)
{
	if (rc != TERN_OK && p->rc == TERN_OK)
		p->rc = rc;
}

/* inih's ini_find_chars_or_comment(): the first of chars, or of a ';' that
 * follows white space (an inline comment), or the end. */
static const char *find_chars_or_comment(const char *s, const char *e, const char *chars)
{
	int was_space = 0;

	for (; s < e; s++) {
		if (strchr(chars, *s) != NULL || (was_space && *s == ';'))
			return s;
		was_space = isspace((unsigned char)*s);
	}
	return e;
}

static void check_section(struct parse *p, const char *name)
{
	char buf[256], shown[72];
	int other = other_kind(p->cfg->kind);

	p->section_ok = section_known(p->cfg->kind, name);
	if (p->section_ok)
		return;
	list_sections(p->cfg->kind, buf, sizeof(buf));
	shown_value(name, shown, sizeof(shown));
	if (section_known(other, name)) {
		note(p, add_error(p->cfg, p->lineno,
		                  "[%s]: section of %s, not of %s; %s sections: %s", shown,
		                  tern_config_kind_name(other), tern_config_kind_name(p->cfg->kind),
		                  tern_config_kind_name(p->cfg->kind), buf));
		return;
	}
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (applies(&settings[i], p->cfg->kind) &&
		    close_enough(name, settings[i].section)) {
			note(p,
			     add_error(p->cfg, p->lineno,
			               "[%s]: unknown section (did you mean [%s]?); sections: %s",
			               shown, settings[i].section, buf));
			return;
		}
	}
	note(p, add_error(p->cfg, p->lineno, "[%s]: unknown section; sections: %s", shown, buf));
}

/* ini_reader: hands inih the next line, or a blank line in place of one that
 * is wrong (after reporting it). */
static char *line_reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *line = p->buf + p->pos, *nl, *s, *e;
	size_t n;

	if (p->pos >= p->len || num < 3)
		return NULL;
	p->lineno++;
	nl = memchr(line, '\n', p->len - p->pos);
	n = nl ? (size_t)(nl - line) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	if (p->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		line += 3;
		n -= 3;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	strcpy(str, "\n");

	if (memchr(line, '\0', n) != NULL) {
		note(p, add_error(p->cfg, p->lineno, "line contains a NUL byte"));
		return str;
	}
	if (n > (size_t)num - 3) {
		note(p,
		     add_error(p->cfg, p->lineno,
		               "line is %zu characters long; the limit is %d (give a shorter path)",
		               n, num - 3));
		return str;
	}

	for (s = line, e = line + n; s < e && isspace((unsigned char)*s);)
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	if (s == e || *s == ';' || *s == '#') {
		/* blank or comment */
	} else if (s > line && p->had_pair) {
		note(p, add_error(p->cfg, p->lineno,
		                  "indented line would continue the previous value; continuation "
		                  "lines are not supported (remove the indentation)"));
		return str;
	} else if (*s == '[') {
		const char *end = find_chars_or_comment(s + 1, e, "]");
		char name[64];

		if (end == e || *end != ']') {
			note(p,
			     add_error(p->cfg, p->lineno, "section header without a closing ']'"));
			return str;
		}
		/* inih keeps at most 49 bytes of a section name. */
		snprintf(name, 50, "%.*s", (int)(end - s - 1), s + 1);
		check_section(p, name);
		p->had_pair = 0;
	} else {
		const char *sep = find_chars_or_comment(s, e, "=:");

		if (sep == e || (*sep != '=' && *sep != ':')) {
			note(p, add_error(p->cfg, p->lineno,
			                  "expected 'key = value', a [section] or a comment"));
			return str;
		}
		p->had_pair = 1;
	}
	memcpy(str, line, n);
	memcpy(str + n, "\n", 2);
	return str;
}

static int handler(void *user, const char *section, const char *key, const char *v)
{
	struct parse *p = user;
	struct tern_config *cfg = p->cfg;
	const struct setting *s;
	const char *hint;
	char why[512], shown[72], keys[256];
	struct value *val;
	int rc;

	shown_value(key, shown, sizeof(shown));
	if (section[0] == '\0') {
		for (size_t i = 0; i < N_SETTINGS; i++) {
			if (applies(&settings[i], cfg->kind) && strcmp(settings[i].key, key) == 0) {
				note(p, add_error(cfg, p->lineno,
				                  "%s: key outside any section (put it under [%s])",
				                  shown, settings[i].section));
				return 1;
			}
		}
		note(p, add_error(cfg, p->lineno,
		                  "%s: key outside any section; keys belong under a [section]",
		                  shown));
		return 1;
	}
	if (!p->section_ok)
		return 1; /* reported once, at the section header */

	if ((s = find(cfg->kind, section, key)) == NULL) {
		list_keys(cfg->kind, section, keys, sizeof(keys));
		if ((hint = closest_key(cfg->kind, section, key)) != NULL) {
			note(p, add_error(cfg, p->lineno, "[%s] %s: unknown key (did you mean %s?)",
			                  section, shown, hint));
			return 1;
		}
		for (size_t i = 0; i < N_SETTINGS; i++) {
			if (applies(&settings[i], cfg->kind) && strcmp(settings[i].key, key) == 0) {
				note(p, add_error(
				            cfg, p->lineno,
				            "[%s] %s: unknown key here (it belongs in [%s]); [%s] "
				            "keys: %s",
				            section, shown, settings[i].section, section, keys));
				return 1;
			}
		}
		if (find(other_kind(cfg->kind), section, key) != NULL) {
			note(p,
			     add_error(cfg, p->lineno,
			               "[%s] %s: a %s setting, not a %s one; [%s] keys: %s",
			               section, shown, tern_config_kind_name(other_kind(cfg->kind)),
			               tern_config_kind_name(cfg->kind), section, keys));
			return 1;
		}
		note(p, add_error(cfg, p->lineno, "[%s] %s: unknown key; [%s] keys: %s", section,
		                  shown, section, keys));
		return 1;
	}

	val = &cfg->vals[s - settings];
	if (val->seen) {
		note(p,
		     add_error(cfg, p->lineno,
		               "[%s] %s: duplicate key, first set on line %d (each key may appear "
		               "once)",
		               section, key, val->line));
		return 1;
	}
	val->seen = 1;
	val->line = p->lineno;
	rc = parse_value(cfg, s, v, val, why, sizeof(why));
	if (rc == TERN_ECONFIG) {
		char vbuf[72];

		if (*v != '\0')
			note(p, add_error(cfg, p->lineno, "[%s] %s: '%s': %s", section, key,
			                  shown_value(v, vbuf, sizeof(vbuf)), why));
		else
			note(p, add_error(cfg, p->lineno, "[%s] %s: %s", section, key, why));
	} else {
		note(p, rc);
	}
	return 1;
}

/* Defaults for what the file left out; required settings it left out. */
static int apply_defaults(struct parse *p)
{
	struct tern_config *cfg = p->cfg;
	char why[512];

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		int rc;

		if (!applies(s, cfg->kind) || cfg->vals[i].seen)
			continue;
		if (s->required) {
			note(p, add_error(cfg, 0, "[%s] %s: required setting is missing: %s",
			                  s->section, s->key, s->help));
			continue;
		}
		rc = parse_value(cfg, s, s->def, &cfg->vals[i], why, sizeof(why));
		/* A default can fail only where it meets the file's location (a socket
		 * path that grows too long once resolved). */
		if (rc == TERN_ECONFIG)
			note(p, add_error(cfg, 0, "[%s] %s: default '%s' %s; set %s", s->section,
			                  s->key, s->def, why, s->key));
		else
			note(p, rc);
	}
	return p->rc;
}

static int absolute(const char *path, char **out)
{
	char *cwd;
	int n;

	if (path[0] == '/')
		return (*out = strdup(path)) ? TERN_OK : TERN_ENOMEM;
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return tern_fail(TERN_EIO, "cannot resolve %s: getcwd: %s", path, strerror(errno));
	n = asprintf(out, "%s/%s", cwd, path);
	free(cwd);
	return n < 0 ? TERN_ENOMEM : TERN_OK;
}

int tern_config_load(const char *path, int kind, tern_config **out)
{
	struct tern_config *cfg;
	struct parse p = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc, r;

	if (out == NULL)
		return tern_fail(TERN_EINVAL, "tern_config_load: out is NULL");
	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return tern_fail(TERN_EINVAL, "tern_config_load: no path");
	if (kind != TERN_CONFIG_NODE && kind != TERN_CONFIG_BROKER)
		return tern_fail(TERN_EINVAL, "tern_config_load: unknown kind %d", kind);
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return TERN_ENOMEM;
	cfg->kind = kind;
	if ((cfg->shown = strdup(path)) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	if ((rc = absolute(path, &cfg->path)) != TERN_OK)
		goto fail;
	if ((rc = tern_file_read(cfg->path, TERN_CONFIG_MAX_SIZE, &buf, &len)) != TERN_OK)
		goto fail;

	p.cfg = cfg;
	p.buf = (const char *)buf;
	p.len = len;
	p.section_ok = 1; /* keys before any section are caught by the handler */
	r = ini_parse_stream(line_reader, &p, handler, &p);
	if (r < 0 && p.rc == TERN_OK)
		p.rc = TERN_ENOMEM;
	/* line_reader() lets through only lines inih accepts; this is a safety net. */
	if (r > 0 && cfg->nerrors == 0)
		note(&p, add_error(cfg, r, "syntax error"));
	if (p.rc == TERN_OK)
		apply_defaults(&p);
	if ((rc = p.rc) != TERN_OK)
		goto fail;
	free(buf);
	buf = NULL;

	if (cfg->nerrors > 0) {
		if (cfg->nerrors == 1)
			tern_fail(TERN_ECONFIG, "%s", cfg->first_error);
		else
			tern_fail(TERN_ECONFIG, "%zu errors; the first: %s", cfg->nerrors,
			          cfg->first_error ? cfg->first_error : "?");
		*out = cfg;
		return TERN_ECONFIG;
	}
	*out = cfg;
	return TERN_OK;

fail:
	free(buf);
	tern_config_free(&cfg);
	return rc;
}

/* --- access -------------------------------------------------------------------- */

static const struct value *lookup(const tern_config *cfg, const char *section, const char *key,
                                  const struct setting **sp)
{
	const struct setting *s;

	if (cfg == NULL)
		fatalx("config: [%s] %s asked of a NULL configuration", section, key);
	if ((s = find(cfg->kind, section, key)) == NULL)
		fatalx("config: [%s] %s is not a %s setting", section, key,
		       tern_config_kind_name(cfg->kind));
	if (sp)
		*sp = s;
	return &cfg->vals[s - settings];
}

const char *tern_config_get(const tern_config *cfg, const char *section, const char *key)
{
	return lookup(cfg, section, key, NULL)->str;
}

int64_t tern_config_get_int(const tern_config *cfg, const char *section, const char *key)
{
	const struct setting *s;
	const struct value *v = lookup(cfg, section, key, &s);

	if (s->type != T_INT && s->type != T_SIZE && s->type != T_DURATION && s->type != T_LEVEL)
		fatalx("config: [%s] %s is a %s, not a number", section, key, type_name(s->type));
	return v->num;
}

int tern_config_line(const tern_config *cfg, const char *section, const char *key)
{
	return lookup(cfg, section, key, NULL)->line;
}

const char *tern_config_path(const tern_config *cfg)
{
	return cfg->path;
}

int tern_config_kind(const tern_config *cfg)
{
	return cfg->kind;
}

const char *tern_config_errors(const tern_config *cfg)
{
	return cfg->errors ? cfg->errors : "";
}

size_t tern_config_error_count(const tern_config *cfg)
{
	return cfg->nerrors;
}

void tern_config_free(tern_config **cfgp)
{
	struct tern_config *cfg;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++)
		free(cfg->vals[i].str);
	free(cfg->first_error);
	free(cfg->errors);
	free(cfg->shown);
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

/* --- printing ------------------------------------------------------------------ */

int tern_config_print(const tern_config *cfg, FILE *fp)
{
	const char *section = NULL;

	fprintf(fp, "; %s (%s)\n", cfg->path, tern_config_kind_name(cfg->kind));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		const struct value *v = &cfg->vals[i];

		if (!applies(s, cfg->kind))
			continue;
		if (section == NULL || strcmp(section, s->section) != 0) {
			fprintf(fp, "%s[%s]\n", section ? "\n" : "", s->section);
			section = s->section;
		}
		if (v->str == NULL)
			fprintf(fp, "; %s = (no valid value)\n", s->key);
		else if (v->line == 0)
			fprintf(fp, "%s = %s ; default\n", s->key, v->str);
		else
			fprintf(fp, "%s = %s ; line %d\n", s->key, v->str, v->line);
	}
	if (fflush(fp) != 0 || ferror(fp))
		return tern_fail(TERN_EIO, "cannot write the configuration: %s", strerror(errno));
	return TERN_OK;
}

static void describe_ini(int kind, FILE *fp)
{
	const char *section = NULL;
	char a[256];

	fprintf(fp,
	        "; %s: every setting with its default. Relative paths are resolved against\n"
	        "; the directory of this file. Generated by tern_config_describe().\n",
	        tern_config_kind_name(kind));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (!applies(s, kind))
			continue;
		if (section == NULL || strcmp(section, s->section) != 0) {
			fprintf(fp, "\n[%s]\n", s->section);
			section = s->section;
		}
		allowed(s, a, sizeof(a));
		fprintf(fp, "; %s: %s.\n;   %s%s: %s.\n", s->key, s->help, type_name(s->type),
		        s->required ? ", required" : "", a);
		if (s->required)
			fprintf(fp, ";%s =\n", s->key);
		else
			fprintf(fp, "%s = %s\n", s->key, s->def);
	}
}

static void describe_markdown(int kind, FILE *fp)
{
	char a[256];

	fprintf(fp, "| Section | Key | Type | Default | Allowed | Meaning |\n");
	fprintf(fp, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (!applies(s, kind))
			continue;
		allowed(s, a, sizeof(a));
		fprintf(fp, "| `[%s]` | `%s` | %s | %s%s%s | %s | %s |\n", s->section, s->key,
		        type_name(s->type), s->required ? "**required**" : "`",
		        s->required ? "" : s->def, s->required ? "" : "`", a, s->help);
	}
}

int tern_config_describe(int kind, int format, FILE *fp)
{
	if (kind != TERN_CONFIG_NODE && kind != TERN_CONFIG_BROKER)
		return tern_fail(TERN_EINVAL, "tern_config_describe: unknown kind %d", kind);
	if (format == TERN_CONFIG_FORMAT_INI)
		describe_ini(kind, fp);
	else if (format == TERN_CONFIG_FORMAT_MARKDOWN)
		describe_markdown(kind, fp);
	else
		return tern_fail(TERN_EINVAL, "tern_config_describe: unknown format %d", format);
	if (fflush(fp) != 0 || ferror(fp))
		return tern_fail(TERN_EIO, "cannot write the settings: %s", strerror(errno));
	return TERN_OK;
}

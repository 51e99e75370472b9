#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/msgtype.h>

#include "ident.h"
#include "util.h"

void tern_ident_free(tern_ident *ident)
{
	tern_curvekey_free(&ident->curve);
	tern_sealkey_free(&ident->seal);
	tern_signkey_free(&ident->sign);
	tern_directory_free(&ident->dir);
	tern_trust_free(&ident->trust);
	tern_config_free(&ident->cfg);
	memset(ident, 0, sizeof(*ident));
}

/* --- reporting ----------------------------------------------------------------- */

/* Every problem goes to err as lines of plain ASCII: a message may quote a
 * path or a value from the configuration file, and a file of random bytes
 * must not put control bytes on the operator's terminal. */
struct report {
	FILE *err;
	int first;      /* code of the first problem, TERN_OK while none */
	char *seen[32]; /* components already reported by a StrictModes check */
	size_t nseen;
};

static void report(struct report *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes text, line by line, with each byte that is not printable ASCII as
 * \xNN and each line cut at 1024 bytes. Quoted values are escaped where they
 * are quoted (tern_escape); this is the net under everything else. */
static void put_lines(FILE *fp, const char *text)
{
	const unsigned char *p = (const unsigned char *)text;

	while (*p) {
		size_t n = 0;

		for (; *p && *p != '\n'; p++, n++) {
			if (n == 1024) {
				fputs("...", fp);
			} else if (n > 1024) {
				continue;
			} else if (*p < 0x20 || *p > 0x7e) {
				fprintf(fp, "\\x%02x", *p);
			} else {
				fputc(*p, fp);
			}
		}
		fputc('\n', fp);
		if (*p == '\n')
			p++;
	}
}

static void report(struct report *r, int code, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	if (r->first == TERN_OK)
		r->first = code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	put_lines(r->err, msg);
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->nseen; i++)
		free(r->seen[i]);
	r->nseen = 0;
}

/* "node.conf:7: [keys] signing_key: " (no line for a default), for problems a
 * setting leads to, so the operator knows which line to change. */
static void where(const tern_config *cfg, const char *section, const char *key, char *buf,
                  size_t len)
{
	int line = tern_config_line(cfg, section, key);

	if (line > 0)
		snprintf(buf, len, "%s:%d: [%s] %s", tern_config_path(cfg), line, section, key);
	else
		snprintf(buf, len, "%s: [%s] %s", tern_config_path(cfg), section, key);
}

/* StrictModes for path; each offending directory is reported once, however
 * many settings lead there. label (if not NULL) names what led there. */
static void strict(struct report *r, const char *label, const char *path, int flags)
{
	char bad[4096];
	int rc = tern_path_check_strict(path, flags, bad, sizeof(bad));

	if (rc == TERN_OK)
		return;
	if (rc == TERN_EPERM) {
		for (size_t i = 0; i < r->nseen; i++)
			if (strcmp(r->seen[i], bad) == 0)
				return;
		if (r->nseen < sizeof(r->seen) / sizeof(r->seen[0]) &&
		    (r->seen[r->nseen] = strdup(bad)) != NULL)
			r->nseen++;
	}
	if (label)
		report(r, TERN_ECONFIG, "%s: %s", label, tern_errdetail());
	else
		report(r, TERN_ECONFIG, "%s", tern_errdetail());
}

static void strict_setting(struct report *r, const tern_config *cfg, const char *section,
                           const char *key, int flags)
{
	char label[1024];

	where(cfg, section, key, label, sizeof(label));
	strict(r, label, tern_config_get(cfg, section, key), flags);
}

/* --- what a start needs beyond the identity ---------------------------------- */

static int writable_dir(const char *path)
{
	return faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) == 0;
}

/* The store's directory: a directory this user may write, or one a start
 * can create (mode 0700) under a directory this user may write. Never
 * created here: -n changes nothing. */
static void check_data_dir(struct report *r, const tern_config *cfg, const char *section)
{
	const char *dir = tern_config_get(cfg, section, "data_dir");
	char label[1024], *up = NULL;
	struct stat st;

	where(cfg, section, "data_dir", label, sizeof(label));
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			report(r, TERN_ECONFIG,
			       "%s: %s is %s, not a directory; set data_dir to a directory for "
			       "the store",
			       label, dir, tern_file_kind(st.st_mode));
		else if (!writable_dir(dir))
			report(r, TERN_ECONFIG,
			       "%s: this user (uid %u) cannot write in %s; give the daemon's user "
			       "the directory (chown)",
			       label, (unsigned)geteuid(), dir);
		strict(r, label, dir, TERN_STRICT_SELF);
		return;
	}
	if (errno != ENOENT) {
		report(r, TERN_ECONFIG, "%s: cannot use %s: %s", label, dir, strerror(errno));
		return;
	}
	/* A start creates it and any missing parents: the nearest existing
	 * directory above must take them. */
	if ((up = strdup(dir)) == NULL) {
		report(r, TERN_ENOMEM, "%s: out of memory", label);
		return;
	}
	for (;;) {
		char *slash = strrchr(up, '/');

		if (slash == NULL)
			break;
		if (slash == up)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(up, &st) == 0 || errno != ENOENT || slash == up)
			break;
	}
	if (stat(up, &st) != 0 || !S_ISDIR(st.st_mode) || !writable_dir(up))
		report(r, TERN_ECONFIG,
		       "%s: %s does not exist, and this user (uid %u) cannot create it in %s; "
		       "create it (mode 0700) for the daemon's user",
		       label, dir, (unsigned)geteuid(), up);
	else
		strict(r, label, up, TERN_STRICT_SELF);
	free(up);
}

/* Where a start listens for local clients: tern_api_listen() removes what is
 * at the path first (a stale socket of a crashed daemon), so anything else
 * there is refused rather than deleted; and its directory must exist (or be
 * data_dir, which a start creates). A socket already there is fine: -n runs
 * beside the daemon it checks. */
static void check_socket(struct report *r, const tern_config *cfg, const char *section,
                         const char *key)
{
	const char *path = tern_config_get(cfg, section, key);
	const char *data = tern_config_get(cfg, section, "data_dir");
	char label[1024], *copy, *dir;
	size_t dl = strlen(data);
	struct stat st;

	where(cfg, section, key, label, sizeof(label));
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		report(r, TERN_ECONFIG,
		       "%s: %s is %s; a start would remove it to listen there: point %s at a "
		       "free path",
		       label, path, tern_file_kind(st.st_mode), key);
	if ((copy = strdup(path)) == NULL) {
		report(r, TERN_ENOMEM, "%s: out of memory", label);
		return;
	}
	dir = dirname(copy);
	while (dl > 1 && data[dl - 1] == '/')
		dl--;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !writable_dir(dir))
			report(r, TERN_ECONFIG,
			       "%s: this user (uid %u) cannot create a socket in %s; give the "
			       "daemon's user the directory",
			       label, (unsigned)geteuid(), dir);
		else
			strict(r, label, dir, TERN_STRICT_SELF);
	} else if (!(strlen(dir) == dl && strncmp(dir, data, dl) == 0)) {
		report(r, TERN_ECONFIG,
		       "%s: the directory %s does not exist; create it (mode 0700) or put the "
		       "socket in data_dir",
		       label, dir);
	}
	free(copy);
}

/* The port of a tcp:// endpoint on this host's loopback or every address, or
 * 0: what [metrics] port must not take from the broker's listener. */
static long local_tcp_port(const char *ep)
{
	const char *host, *colon;

	if (strncmp(ep, "tcp://", 6) != 0 || (colon = strrchr(ep, ':')) == NULL)
		return 0;
	host = ep + 6;
	if (!((colon - host == 1 && host[0] == '*') ||
	      (colon - host == 9 && strncmp(host, "127.0.0.1", 9) == 0) ||
	      (colon - host == 9 && strncmp(host, "localhost", 9) == 0) ||
	      (colon - host == 7 && strncmp(host, "0.0.0.0", 7) == 0)))
		return 0;
	return strtol(colon + 1, NULL, 10);
}

int tern_token_load(const char *path, char **out, size_t *outlen)
{
	uint8_t *tok = NULL;
	size_t tl = 0, lead = 0, all;
	int rc, bad = -1;

	*out = NULL;
	if ((rc = tern_file_read_private(path, 4096, &tok, &tl)) != TERN_OK)
		return rc;
	all = tl;
	/* White space around the token is not part of it: a file ending in a
	 * newline (as echo, editors and dev-federation write it), or with a
	 * space or CR about it, holds the same token. */
	while (tl && isspace(tok[tl - 1]))
		tl--;
	while (lead < tl && isspace(tok[lead]))
		lead++;
	memmove(tok, tok + lead, tl - lead);
	tl -= lead;
	sodium_memzero(tok + tl, all - tl); /* what the move left behind */
	for (size_t i = 0; i < tl && bad < 0; i++)
		if (tok[i] <= ' ' || tok[i] >= 0x7f)
			bad = tok[i];
	if (bad == 0)
		rc = tern_fail(TERN_ECONFIG,
		               "the token in %s holds a NUL byte; make one with\n"
		               "  head -c 32 /dev/urandom | base64 > %s && chmod 600 %s",
		               path, path, path);
	else if (bad > 0)
		/* It could not travel in an Authorization header as it is. */
		rc = tern_fail(TERN_ECONFIG,
		               "the token in %s holds %s inside it; a token is one word of "
		               "visible ASCII characters. Make one with\n"
		               "  head -c 32 /dev/urandom | base64 > %s && chmod 600 %s",
		               path,
		               bad == ' ' || bad == '\t' ? "white space"
		               : bad < 0x7f              ? "a control character"
		                                         : "a character outside ASCII",
		               path, path);
	else if (tl < 32)
		rc = tern_fail(TERN_ECONFIG,
		               "the token in %s is shorter than 32 characters; make one with\n"
		               "  head -c 32 /dev/urandom | base64 > %s && chmod 600 %s",
		               path, path, path);
	if (rc == TERN_OK) {
		tok[tl] = '\0'; /* the buffer has a byte after the data */
		*out = (char *)tok;
		*outlen = tl;
		return TERN_OK;
	}
	sodium_memzero(tok, tl);
	free(tok);
	return rc;
}

static void start_checks(struct report *r, const tern_config *cfg, int kind)
{
	const char *sect = kind == TERN_CONFIG_BROKER ? "broker" : "node";
	int64_t mport = tern_config_get_int(cfg, "metrics", "port");
	char label[1024];

	check_data_dir(r, cfg, sect);
	check_socket(r, cfg, sect, kind == TERN_CONFIG_BROKER ? "control_socket" : "api_socket");
	if (kind == TERN_CONFIG_BROKER) {
		const char *listen = tern_config_get(cfg, "broker", "listen");

		if (mport > 0 && local_tcp_port(listen) == mport) {
			where(cfg, "metrics", "port", label, sizeof(label));
			report(r, TERN_ECONFIG,
			       "%s: %lld is also the port of [broker] listen (%s); give /metrics "
			       "a port of its own",
			       label, (long long)mport, listen);
		}
		return;
	}
	int64_t hport = tern_config_get_int(cfg, "http", "port");
	if (mport > 0 && mport == hport) {
		where(cfg, "metrics", "port", label, sizeof(label));
		report(r, TERN_ECONFIG,
		       "%s: %lld is also [http] port; give /metrics and the HTTP API a port each",
		       label, (long long)mport);
	}
	if (hport > 0) {
		char *tok = NULL;
		size_t tl = 0;

		where(cfg, "http", "token_file", label, sizeof(label));
		if (tern_token_load(tern_config_get(cfg, "http", "token_file"), &tok, &tl) !=
		    TERN_OK)
			report(r, TERN_ECONFIG, "%s: the HTTP API needs its token: %s", label,
			       tern_errdetail());
		if (tok) {
			sodium_memzero(tok, tl);
			free(tok);
		}
		strict_setting(r, cfg, "http", "token_file", 0);
	}
	if (strcmp(tern_config_get(cfg, "webhook", "url"), "off") != 0) {
		uint8_t *key = NULL;
		size_t klen = 0;

		where(cfg, "webhook", "secret_file", label, sizeof(label));
		if (tern_webhook_secret_load(tern_config_get(cfg, "webhook", "url"),
		                             tern_config_get(cfg, "webhook", "secret_file"), &key,
		                             &klen) != TERN_OK)
			report(r, TERN_ECONFIG, "%s: %s", label, tern_errdetail());
		if (key) {
			sodium_memzero(key, klen);
			free(key);
		}
		strict_setting(r, cfg, "webhook", "secret_file", 0);
	}
}

/* --- the webhook secret ----------------------------------------------------- */

int tern_webhook_secret_load(const char *url, const char *secret_file, uint8_t **key, size_t *klen)
{
	uint8_t *raw = NULL, *bin = NULL;
	size_t rl = 0, bl = 0, at = 0;
	int rc;

	*key = NULL;
	*klen = 0;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return tern_fail(TERN_ECONFIG,
		                 "[webhook] url '%s' must start with http:// or https:// (or be "
		                 "'off')",
		                 url);
	if ((rc = tern_file_read_private(secret_file, 4096, &raw, &rl)) != TERN_OK)
		return rc;
	/* White space around it is not part of it (a file ends in a newline). */
	while (rl && (raw[rl - 1] == '\n' || raw[rl - 1] == '\r' || raw[rl - 1] == ' ' ||
	              raw[rl - 1] == '\t'))
		rl--;
	while (at < rl && (raw[at] == ' ' || raw[at] == '\t' || raw[at] == '\n' || raw[at] == '\r'))
		at++;
	if (rl - at <= 6 || memcmp(raw + at, "whsec_", 6) != 0 || (bin = malloc(rl)) == NULL ||
	    sodium_base642bin(bin, rl, (const char *)raw + at + 6, rl - at - 6, NULL, &bl, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bl < 24 || bl > 64) {
		rc = tern_fail(TERN_ECONFIG,
		               "the secret in %s must be whsec_ and the base64 of 24 to 64 random "
		               "bytes; make one with\n"
		               "  (printf whsec_; head -c 32 /dev/urandom | base64) > %s && chmod "
		               "600 %s",
		               secret_file, secret_file, secret_file);
		if (bin)
			sodium_memzero(bin, rl);
		free(bin);
		bin = NULL;
	}
	sodium_memzero(raw, rl);
	free(raw);
	if (bin == NULL)
		return rc ? rc : TERN_ENOMEM;
	*key = bin;
	*klen = bl;
	return TERN_OK;
}

/* --- the identity ------------------------------------------------------------- */

void tern_ident_mark(const tern_ident *ident, tern_trustmark *out)
{
	out->directory_version = tern_directory_version(ident->dir);
	out->crl_number = tern_trust_crl_number(ident->trust);
}

static int load(const char *conf, int kind, const tern_trustmark *floor, int start, FILE *err,
                tern_ident *out, const char **went_back)
{
	tern_ident id;
	struct report r = {err, TERN_OK, {0}, 0};
	const char *sect = kind == TERN_CONFIG_BROKER ? "broker" : "node";
	unsigned need_role;
	int rc;

	memset(&id, 0, sizeof(id));
	if (went_back)
		*went_back = NULL;
	/* Before its content is believed: could anyone else have written it? */
	strict(&r, NULL, conf, TERN_STRICT_SELF);
	rc = tern_config_load(conf, kind, &id.cfg);
	if (rc == TERN_ECONFIG) {
		/* Every line of it, however many: not through report()'s buffer. */
		r.first = r.first ? r.first : rc;
		put_lines(err, tern_config_errors(id.cfg));
		goto fail;
	}
	if (rc != TERN_OK) {
		report(&r, rc, "cannot load %s: %s", conf, tern_errdetail());
		goto fail;
	}
	id.id = tern_config_get(id.cfg, sect, "id");
	if (start)
		start_checks(&r, id.cfg, kind);
	/* The files it names: the public ones (whose content a signature or the
	 * trust anchor vouches for, but whose replacement still changes what the
	 * daemon trusts or refuses) and the directories of the private ones
	 * (whose own mode and owner the key loaders check). */
	strict_setting(&r, id.cfg, "federation", "ca", TERN_STRICT_SELF);
	strict_setting(&r, id.cfg, "federation", "crl", TERN_STRICT_SELF);
	strict_setting(&r, id.cfg, "federation", "directory", TERN_STRICT_SELF);
	strict_setting(&r, id.cfg, "keys", "signing_key", 0);
	strict_setting(&r, id.cfg, "keys", "seal_key", 0);
	strict_setting(&r, id.cfg, "keys", "curve_key", 0);
	if ((rc = tern_trust_load(tern_config_get(id.cfg, "federation", "ca"),
	                          tern_config_get(id.cfg, "federation", "crl"), &id.trust)) !=
	    TERN_OK) {
		report(&r, rc, "federation CA or CRL: %s (%s)", tern_strerror(rc),
		       tern_errdetail());
	} else if ((rc = tern_directory_load(tern_config_get(id.cfg, "federation", "directory"),
	                                     id.trust, 0, &id.dir)) != TERN_OK) {
		report(&r, rc, "federation directory %s: %s (%s)",
		       tern_config_get(id.cfg, "federation", "directory"), tern_strerror(rc),
		       tern_errdetail());
	} else {
		tern_trustmark m;
		const char *what;
		tern_ident_mark(&id, &m);
		if ((rc = tern_trustmark_check(&m, floor, &what)) != TERN_OK) {
			if (went_back)
				*went_back = what;
			report(&r, rc, "%s: %s",
			       tern_config_get(id.cfg, "federation",
			                       strcmp(what, "crl") == 0 ? "crl" : "directory"),
			       tern_errdetail());
		}
	}
	if ((rc = tern_signkey_load(tern_config_get(id.cfg, "keys", "signing_key"), &id.sign)) !=
	    TERN_OK)
		report(&r, rc, "signing key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if ((rc = tern_sealkey_load(tern_config_get(id.cfg, "keys", "seal_key"), &id.seal)) !=
	    TERN_OK)
		report(&r, rc, "seal key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if ((rc = tern_curvekey_load(tern_config_get(id.cfg, "keys", "curve_key"), &id.curve)) !=
	    TERN_OK)
		report(&r, rc, "CURVE key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if (id.dir == NULL || id.sign == NULL || id.seal == NULL || id.curve == NULL)
		goto fail;

	if (tern_directory_find(id.dir, id.id, &id.self) != TERN_OK) {
		report(&r, TERN_ECONFIG, "'%s' is not in the federation directory (version %llu)",
		       id.id, (unsigned long long)tern_directory_version(id.dir));
	} else {
		need_role = kind == TERN_CONFIG_BROKER ? TERN_ROLE_BROKER : 0;
		if (need_role && !(id.self->roles & need_role))
			report(&r, TERN_ECONFIG,
			       "'%s' does not have the broker role in the directory", id.id);
		if (kind == TERN_CONFIG_NODE && (id.self->roles & TERN_ROLE_BROKER))
			report(&r, TERN_ECONFIG, "'%s' is a broker; run tern-broker for it", id.id);
		if (memcmp(id.self->sign_public, tern_signkey_public(id.sign), 32) != 0)
			report(&r, TERN_ECONFIG,
			       "the signing key is not the one certified for '%s'", id.id);
		if (memcmp(id.self->seal_public, tern_sealkey_public(id.seal), 32) != 0)
			report(&r, TERN_ECONFIG,
			       "the seal key is not the one in the directory for '%s'", id.id);
		if (memcmp(id.self->curve_public, tern_curvekey_public(id.curve), 32) != 0)
			report(&r, TERN_ECONFIG,
			       "the CURVE key is not the one in the directory for '%s'", id.id);
		if (id.self->revoked)
			report(&r, TERN_EREVOKED, "the certificate of '%s' is revoked", id.id);
		if (id.self->expired)
			report(&r, TERN_EEXPIRED, "the certificate of '%s' has expired", id.id);
	}
	if (kind == TERN_CONFIG_NODE && id.self != NULL) {
		const tern_member *b;
		const char *bid = tern_config_get(id.cfg, "broker", "id");
		if (tern_directory_find(id.dir, bid, &b) != TERN_OK ||
		    !(b->roles & TERN_ROLE_BROKER))
			report(&r, TERN_ECONFIG, "broker '%s' is not a broker in the directory",
			       bid);
	}
	if (r.first != TERN_OK)
		goto fail;
	report_free(&r);
	*out = id;
	return TERN_OK;
fail:
	report_free(&r);
	tern_ident_free(&id);
	return r.first;
}

int tern_ident_load(const char *conf, int kind, const tern_trustmark *floor, FILE *err,
                    tern_ident *out, const char **went_back)
{
	return load(conf, kind, floor, 0, err, out, went_back);
}

int tern_ident_load_start(const char *conf, int kind, FILE *err, tern_ident *out)
{
	return load(conf, kind, NULL, 1, err, out, NULL);
}

int tern_ident_reload(tern_ident *ident, int kind, const tern_trustmark *floor,
                      const char *must_have, FILE *err, const char **went_back)
{
	tern_ident fresh;
	tern_trustmark mark;
	char *path = strdup(tern_config_path(ident->cfg));
	int rc;

	if (path == NULL)
		return TERN_ENOMEM;
	/* Never below what is in force, nor below what the store has seen. */
	tern_ident_mark(ident, &mark);
	if (floor && floor->directory_version > mark.directory_version)
		mark.directory_version = floor->directory_version;
	if (floor && floor->crl_number > mark.crl_number)
		mark.crl_number = floor->crl_number;
	rc = tern_ident_load(path, kind, &mark, err, &fresh, went_back);
	free(path);
	if (rc != TERN_OK)
		return rc;
	if (must_have) {
		const tern_member *m;
		if (tern_directory_find(fresh.dir, must_have, &m) != TERN_OK) {
			fprintf(err, "the new directory lacks %s; keeping the old one\n",
			        must_have);
			tern_ident_free(&fresh);
			return TERN_EUNKNOWN;
		}
	}
	if (strcmp(fresh.id, ident->id) != 0) {
		fprintf(err, "%s now names '%s', not '%s'; restart to change identity\n",
		        tern_config_path(fresh.cfg), fresh.id, ident->id);
		tern_ident_free(&fresh);
		return TERN_ECONFIG;
	}
	tern_ident_free(ident);
	*ident = fresh;
	return TERN_OK;
}

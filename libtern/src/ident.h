/* A daemon's identity at start-up: its configuration, the federation's trust
 * anchor and directory, its keys, and its own directory entry, all checked
 * against one another. Shared by tern-broker and tern-node (and -n). */
#ifndef TERN_IDENT_H
#define TERN_IDENT_H

#include <stdint.h>
#include <stdio.h>

#include <tern/config.h>
#include <tern/curve.h>
#include <tern/directory.h>
#include <tern/keys.h>
#include <tern/trust.h>

#include "trustmark.h"

typedef struct tern_ident {
	tern_config *cfg;
	tern_trust *trust;
	tern_directory *dir;
	tern_signkey *sign;
	tern_sealkey *seal;
	tern_curvekey *curve;
	const tern_member *self; /* valid while dir lives */
	const char *id;          /* this party's node id (from cfg) */
} tern_ident;

/* kind: TERN_CONFIG_NODE or TERN_CONFIG_BROKER. Every problem found is
 * written to err, one line each, as a sentence that says what to do (plain
 * ASCII: bytes from a file are escaped as \xNN); the return is TERN_OK or the
 * first error's code. The configuration file, the CA, CRL and directory and
 * the directories holding the keys are held to StrictModes
 * (tern_path_check_strict); the keys themselves must be private. Files are
 * opened without blocking, and anything but a regular file is refused.
 * floor: refuse a directory or CRL older than it (TERN_EOLDER, naming both
 * numbers; *went_back, if given, is then "crl" or "directory", else NULL);
 * floor NULL = any. On failure what was loaded is freed. */
int tern_ident_load(const char *conf, int kind, const tern_trustmark *floor, FILE *err,
                    tern_ident *out, const char **went_back);
void tern_ident_free(tern_ident *ident);

/* The directory version and CRL number ident holds. */
void tern_ident_mark(const tern_ident *ident, tern_trustmark *out);

/* Everything a start needs, checked the same way for a start and for -n
 * (tern_daemon_main): tern_ident_load() and, before the identity, what the
 * configuration names for the daemon's own use -- data_dir (a writable
 * directory, or one a start can create), the local socket (its directory
 * exists; nothing but a stale socket at its path), the ports (/metrics apart
 * from the HTTP API and the broker's listener), and the HTTP API token
 * (tern_token_load) when [http] port is set -- each also held to StrictModes
 * (tern_path_check_strict). Creates nothing and binds nothing, so -n may run
 * beside the daemon it checks. Every problem goes to err, one line each. */
int tern_ident_load_start(const char *conf, int kind, FILE *err, tern_ident *out);

/* The HTTP API's bearer token: a private file (0600, this user's, not a
 * symbolic link), white space around it dropped (a trailing newline, a CR,
 * spaces), at least 32 characters, visible ASCII only (no NUL, no white
 * space or control character inside). *out is malloc'd and NUL-terminated;
 * wipe it (sodium_memzero, *len bytes) before freeing it. */
int tern_token_load(const char *path, char **out, size_t *len);
/* The node's webhook signing key: checks url (http:// or https://) and reads
 * secret_file as tern_token_load does, which must hold "whsec_" and the
 * base64 of 24 to 64 bytes (Standard Webhooks). *key is malloc'd (the caller
 * wipes and frees it). TERN_ECONFIG with what to do. */
int tern_webhook_secret_load(const char *url, const char *secret_file, uint8_t **key, size_t *klen);

/* SIGHUP: loads the federation files (CA, CRL, directory) and the rest of the
 * identity again from the same configuration file, refusing a directory or
 * CRL older than the ones in use or than floor (TERN_EOLDER; floor may be
 * NULL), a directory without the member must_have (unless NULL), and a
 * configuration that names another party.
 * On success *ident is replaced (pointers into the old one, such as members
 * and config strings, are then invalid); on failure it is kept as it was and
 * the problems are written to err. */
int tern_ident_reload(tern_ident *ident, int kind, const tern_trustmark *floor,
                      const char *must_have, FILE *err, const char **went_back);

#endif

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
 * written to err, one line each, as a sentence that says what to do; the
 * return is TERN_OK or the first error's code. floor: refuse a directory or
 * CRL older than it (TERN_EOLDER, naming both numbers; *went_back, if given,
 * is then "crl" or "directory", else NULL); floor NULL = any. On failure
 * what was loaded is freed. */
int tern_ident_load(const char *conf, int kind, const tern_trustmark *floor, FILE *err,
                    tern_ident *out, const char **went_back);
void tern_ident_free(tern_ident *ident);

/* The directory version and CRL number ident holds. */
void tern_ident_mark(const tern_ident *ident, tern_trustmark *out);

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

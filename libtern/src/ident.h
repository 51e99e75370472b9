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
 * return is TERN_OK or the first error's code. min_dir_version: refuse an
 * older directory (0 = any). On failure what was loaded is freed. */
int tern_ident_load(const char *conf, int kind, uint64_t min_dir_version, FILE *err,
                    tern_ident *out);
void tern_ident_free(tern_ident *ident);

/* SIGHUP: loads the federation files (CA, CRL, directory) and the rest of the
 * identity again from the same configuration file, refusing a directory
 * older than the one in use, one without the member must_have (unless NULL),
 * and a configuration that names another party.
 * On success *ident is replaced (pointers into the old one, such as members
 * and config strings, are then invalid); on failure it is kept as it was and
 * the problems are written to err. */
int tern_ident_reload(tern_ident *ident, int kind, const char *must_have, FILE *err);

#endif

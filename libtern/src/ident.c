#include <stdlib.h>
#include <string.h>

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

#define REPORT(code, ...)                                                                          \
	do {                                                                                       \
		if (first == TERN_OK)                                                              \
			first = (code);                                                            \
		fprintf(err, __VA_ARGS__);                                                         \
		fputc('\n', err);                                                                  \
	} while (0)

void tern_ident_mark(const tern_ident *ident, tern_trustmark *out)
{
	out->directory_version = tern_directory_version(ident->dir);
	out->crl_number = tern_trust_crl_number(ident->trust);
}

int tern_ident_load(const char *conf, int kind, const tern_trustmark *floor, FILE *err,
                    tern_ident *out, const char **went_back)
{
	tern_ident id;
	const char *sect = kind == TERN_CONFIG_BROKER ? "broker" : "node";
	unsigned need_role;
	int rc, first = TERN_OK;

	memset(&id, 0, sizeof(id));
	if (went_back)
		*went_back = NULL;
	rc = tern_config_load(conf, kind, &id.cfg);
	if (rc == TERN_ECONFIG) {
		REPORT(rc, "%s", tern_config_errors(id.cfg));
		tern_ident_free(&id);
		return first;
	}
	if (rc != TERN_OK) {
		REPORT(rc, "cannot load %s: %s", conf, tern_errdetail());
		return first;
	}
	id.id = tern_config_get(id.cfg, sect, "id");
	if ((rc = tern_trust_load(tern_config_get(id.cfg, "federation", "ca"),
	                          tern_config_get(id.cfg, "federation", "crl"), &id.trust)) !=
	    TERN_OK) {
		REPORT(rc, "federation CA or CRL: %s (%s)", tern_strerror(rc), tern_errdetail());
	} else if ((rc = tern_directory_load(tern_config_get(id.cfg, "federation", "directory"),
	                                     id.trust, 0, &id.dir)) != TERN_OK) {
		REPORT(rc, "federation directory %s: %s (%s)",
		       tern_config_get(id.cfg, "federation", "directory"), tern_strerror(rc),
		       tern_errdetail());
	} else {
		tern_trustmark m;
		const char *what;
		tern_ident_mark(&id, &m);
		if ((rc = tern_trustmark_check(&m, floor, &what)) != TERN_OK) {
			if (went_back)
				*went_back = what;
			REPORT(rc, "%s: %s",
			       tern_config_get(id.cfg, "federation",
			                       strcmp(what, "crl") == 0 ? "crl" : "directory"),
			       tern_errdetail());
		}
	}
	if ((rc = tern_signkey_load(tern_config_get(id.cfg, "keys", "signing_key"), &id.sign)) !=
	    TERN_OK)
		REPORT(rc, "signing key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if ((rc = tern_sealkey_load(tern_config_get(id.cfg, "keys", "seal_key"), &id.seal)) !=
	    TERN_OK)
		REPORT(rc, "seal key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if ((rc = tern_curvekey_load(tern_config_get(id.cfg, "keys", "curve_key"), &id.curve)) !=
	    TERN_OK)
		REPORT(rc, "CURVE key: %s (%s)", tern_strerror(rc), tern_errdetail());
	if (first != TERN_OK) {
		tern_ident_free(&id);
		return first;
	}

	if (tern_directory_find(id.dir, id.id, &id.self) != TERN_OK) {
		REPORT(TERN_ECONFIG, "'%s' is not in the federation directory (version %llu)",
		       id.id, (unsigned long long)tern_directory_version(id.dir));
	} else {
		need_role = kind == TERN_CONFIG_BROKER ? TERN_ROLE_BROKER : 0;
		if (need_role && !(id.self->roles & need_role))
			REPORT(TERN_ECONFIG, "'%s' does not have the broker role in the directory",
			       id.id);
		if (kind == TERN_CONFIG_NODE && (id.self->roles & TERN_ROLE_BROKER))
			REPORT(TERN_ECONFIG, "'%s' is a broker; run tern-broker for it", id.id);
		if (memcmp(id.self->sign_public, tern_signkey_public(id.sign), 32) != 0)
			REPORT(TERN_ECONFIG, "the signing key is not the one certified for '%s'",
			       id.id);
		if (memcmp(id.self->seal_public, tern_sealkey_public(id.seal), 32) != 0)
			REPORT(TERN_ECONFIG,
			       "the seal key is not the one in the directory for '%s'", id.id);
		if (memcmp(id.self->curve_public, tern_curvekey_public(id.curve), 32) != 0)
			REPORT(TERN_ECONFIG,
			       "the CURVE key is not the one in the directory for '%s'", id.id);
		if (id.self->revoked)
			REPORT(TERN_EREVOKED, "the certificate of '%s' is revoked", id.id);
		if (id.self->expired)
			REPORT(TERN_EEXPIRED, "the certificate of '%s' has expired", id.id);
	}
	if (kind == TERN_CONFIG_NODE && first == TERN_OK) {
		const tern_member *b;
		const char *bid = tern_config_get(id.cfg, "broker", "id");
		if (tern_directory_find(id.dir, bid, &b) != TERN_OK ||
		    !(b->roles & TERN_ROLE_BROKER))
			REPORT(TERN_ECONFIG, "broker '%s' is not a broker in the directory", bid);
	}
	if (first != TERN_OK) {
		tern_ident_free(&id);
		return first;
	}
	*out = id;
	return TERN_OK;
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

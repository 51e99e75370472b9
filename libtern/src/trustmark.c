#include <stdio.h>
#include <string.h>

#include <tern/error.h>

#include "store.h"
#include "trustmark.h"
#include "util.h"

#define KEY_DIR "trust.directory_version"
#define KEY_CRL "trust.crl_number"

static int get_u64(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t *out, int *found)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, meta, &k, &v);

	*found = 0;
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return tern_store_mdb_err(rc, "read the trust mark");
	if (v.mv_size != 8)
		return tern_fail(TERN_EMALFORMED, "damaged trust mark %s in the store", name);
	*out = tern_be64_get(v.mv_data);
	*found = 1;
	return TERN_OK;
}

static int put_u64(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t n)
{
	uint8_t b[8];
	MDB_val k = {strlen(name), (void *)name}, v = {8, b};

	tern_be64_put(b, n);
	return tern_store_mdb_err(mdb_put(txn, meta, &k, &v, 0), "write the trust mark");
}

int tern_trustmark_get(MDB_txn *txn, MDB_dbi meta, tern_trustmark *out)
{
	uint64_t crl = 0;
	int found, rc;

	*out = (tern_trustmark)TERN_TRUSTMARK_NONE;
	if ((rc = get_u64(txn, meta, KEY_DIR, &out->directory_version, &found)) != TERN_OK ||
	    (rc = get_u64(txn, meta, KEY_CRL, &crl, &found)) != TERN_OK)
		return rc;
	if (found)
		out->crl_number = (int64_t)crl;
	return TERN_OK;
}

int tern_trustmark_raise(MDB_txn *txn, MDB_dbi meta, const tern_trustmark *m)
{
	tern_trustmark cur;
	int rc;

	if ((rc = tern_trustmark_get(txn, meta, &cur)) != TERN_OK)
		return rc;
	if (m->directory_version > cur.directory_version &&
	    (rc = put_u64(txn, meta, KEY_DIR, m->directory_version)) != TERN_OK)
		return rc;
	if (m->crl_number > cur.crl_number &&
	    (rc = put_u64(txn, meta, KEY_CRL, (uint64_t)m->crl_number)) != TERN_OK)
		return rc;
	return TERN_OK;
}

int tern_trustmark_check(const tern_trustmark *m, const tern_trustmark *floor, const char **what)
{
	if (what)
		*what = NULL;
	if (floor == NULL)
		return TERN_OK;
	if (m->crl_number < floor->crl_number) {
		if (what)
			*what = "crl";
		return tern_fail(TERN_EOLDER,
		                 "the CRL is number %lld, older than number %lld already in "
		                 "force here: a CRL never goes back (it would un-revoke what the "
		                 "newer one revoked); install the newest CRL from the CA",
		                 (long long)m->crl_number, (long long)floor->crl_number);
	}
	if (m->directory_version < floor->directory_version) {
		if (what)
			*what = "directory";
		return tern_fail(TERN_EOLDER,
		                 "the directory is version %llu, older than version %llu already "
		                 "in force here: a directory never goes back; install the newest "
		                 "directory from the CA",
		                 (unsigned long long)m->directory_version,
		                 (unsigned long long)floor->directory_version);
	}
	return TERN_OK;
}

int tern_trustmark_audit_refusal(MDB_txn *txn, const tern_audit_dbs *audit, const char *self,
                                 const char *what, int64_t now)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;

	e.kind = TERN__V1__AUDIT_ENTRY__KIND__REJECTED;
	e.at = now;
	e.peer = (char *)self;
	e.type = (char *)what;
	e.reason = "rollback";
	return tern_audit_append(txn, audit, &e);
}

int tern_trustmark_accept(MDB_txn *txn, MDB_dbi meta, const tern_audit_dbs *audit, const char *self,
                          const tern_trustmark *m, int64_t now)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	char v[80];
	int rc;

	if ((rc = tern_trustmark_raise(txn, meta, m)) != TERN_OK)
		return rc;
	snprintf(v, sizeof(v), "version %llu, CRL number %lld",
	         (unsigned long long)m->directory_version, (long long)m->crl_number);
	e.kind = TERN__V1__AUDIT_ENTRY__KIND__DIRECTORY_CHANGE;
	e.at = now;
	e.peer = (char *)self;
	e.type = "directory";
	e.reason = v;
	return tern_audit_append(txn, audit, &e);
}

struct enforce {
	MDB_dbi meta;
	const tern_audit_dbs *audit;
	const char *self;
	const tern_trustmark *m;
	int64_t now;
	int *refused;
	char *why;
	size_t whylen;
};

static int enforce_apply(MDB_txn *txn, void *arg)
{
	struct enforce *j = arg;
	tern_trustmark floor;
	const char *what;
	int rc;

	*j->refused = 0;
	if ((rc = tern_trustmark_get(txn, j->meta, &floor)) != TERN_OK)
		return rc;
	if (tern_trustmark_check(j->m, &floor, &what) != TERN_OK) {
		snprintf(j->why, j->whylen, "%s", tern_errdetail());
		*j->refused = 1;
		return tern_trustmark_audit_refusal(txn, j->audit, j->self, what, j->now);
	}
	if (j->m->directory_version == floor.directory_version &&
	    j->m->crl_number == floor.crl_number)
		return TERN_OK; /* as at the last start or reload */
	return tern_trustmark_accept(txn, j->meta, j->audit, j->self, j->m, j->now);
}

int tern_trustmark_enforce(tern_store *s, MDB_dbi meta, const tern_audit_dbs *audit,
                           const char *self, const tern_trustmark *m, int64_t now, int *refused,
                           char *why, size_t whylen)
{
	struct enforce j = {meta, audit, self, m, now, refused, why, whylen};

	return tern_store_write(s, enforce_apply, &j);
}

/* Trust material only goes forward. A daemon keeps, in its own store, the
 * newest directory version and CRL number it has put in force (its trust
 * mark); on start and on every reload it refuses a directory or CRL older
 * than the mark. Without it, copying back an older CRL, or an older
 * directory across a restart, would re-admit a revoked member.
 *
 * The mark lives under two keys of the store's meta database (index 0 in
 * both daemons' stores) and is written in the caller's transaction. */
#ifndef TERN_TRUSTMARK_H
#define TERN_TRUSTMARK_H

#include <stdint.h>

#include <lmdb.h>

#include "audit.h"
#include "store.h"

typedef struct tern_trustmark {
	uint64_t directory_version; /* 0: none yet */
	int64_t crl_number;         /* -1: none yet */
} tern_trustmark;

#define TERN_TRUSTMARK_NONE                                                                        \
	{                                                                                          \
		0, -1                                                                              \
	}

/* The mark stored in meta (TERN_TRUSTMARK_NONE when the store has none). */
int tern_trustmark_get(MDB_txn *txn, MDB_dbi meta, tern_trustmark *out);
/* Raises the stored mark to m where m is newer; never lowers it. */
int tern_trustmark_raise(MDB_txn *txn, MDB_dbi meta, const tern_trustmark *m);

/* TERN_OK when m goes back in neither number from floor; else TERN_EOLDER
 * with a detail naming both numbers and what to do (the first of the two
 * that went back). *what, if given, is set to "crl" or "directory". */
int tern_trustmark_check(const tern_trustmark *m, const tern_trustmark *floor, const char **what);

/* At start, in one write to s: m (what the daemon loaded) against the mark
 * in meta. Older in either number: a REJECTED audit entry (peer self, type
 * "crl" or "directory", reason "rollback"), *refused = 1 and why filled with
 * a sentence naming both numbers; the mark stays. Otherwise the mark rises
 * to m, with a DIRECTORY_CHANGE entry when it rose. TERN_OK unless the write
 * failed. */
int tern_trustmark_enforce(tern_store *s, MDB_dbi meta, const tern_audit_dbs *audit,
                           const char *self, const tern_trustmark *m, int64_t now, int *refused,
                           char *why, size_t whylen);

/* In the caller's transaction: raises the mark to m and appends the
 * DIRECTORY_CHANGE entry (after a reload). */
int tern_trustmark_accept(MDB_txn *txn, MDB_dbi meta, const tern_audit_dbs *audit, const char *self,
                          const tern_trustmark *m, int64_t now);
/* In the caller's transaction: the REJECTED entry for material that went back. */
int tern_trustmark_audit_refusal(MDB_txn *txn, const tern_audit_dbs *audit, const char *self,
                                 const char *what, int64_t now);

#endif

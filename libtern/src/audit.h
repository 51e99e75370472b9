/* The audit log: an append-only RFC 6962 Merkle log of AuditEntry records in
 * the daemon's LMDB store, written inside the same transaction as the state
 * change it records. Signed checkpoints (C2SP) are kept beside it.
 *
 * The store must have the databases named in TERN_AUDIT_DBNAMES; pass their
 * handles in a tern_audit_dbs. */
#ifndef TERN_AUDIT_H
#define TERN_AUDIT_H

#include <stdint.h>

#include <tern/keys.h>
#include <tern/merkle.h>
#include <tern/v1/audit.pb-c.h>

#include "store.h"

#define TERN_AUDIT_DBNAMES "audit", "audit_meta", "audit_checkpoints"

typedef struct tern_audit_dbs {
	MDB_dbi entries;     /* be64 index -> serialized AuditEntry */
	MDB_dbi meta;        /* size and frontier */
	MDB_dbi checkpoints; /* be64 size -> signed note */
} tern_audit_dbs;

/* Appends e (its fields are copied) and updates the frontier. */
int tern_audit_append(MDB_txn *txn, const tern_audit_dbs *d, const Tern__V1__AuditEntry *e);
/* The log's size and root now. */
int tern_audit_head(MDB_txn *txn, const tern_audit_dbs *d, uint64_t *size, tern_hash root);
/* Signs a checkpoint of the current head as origin and stores it; *size is
 * the checkpoint's size (no new checkpoint if the last one has this size
 * and force is 0). */
int tern_audit_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, const char *origin,
                          const tern_signkey *key, int force, uint64_t *size);
/* The leaf hashes of the first n entries, in a malloc'd array (n >= 1) the
 * caller frees. TERN_ENOENT when the log holds fewer. */
int tern_audit_leaves(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash **out);
/* The newest checkpoint note (malloc'd), or TERN_ENOENT. */
int tern_audit_latest_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, char **note,
                                 uint64_t *size);

#endif

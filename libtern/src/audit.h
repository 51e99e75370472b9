/* The audit log: an append-only RFC 6962 Merkle log of AuditEntry records in
 * the daemon's LMDB store, written inside the same transaction as the state
 * change it records. Signed checkpoints (C2SP) are kept beside it, and the
 * hash of every complete subtree, stored 256 entries at a time (the append
 * that leaves them 256 behind stores them), so that a proof costs O(log n)
 * reads, and hashes at most 255 entries, however long the log.
 *
 * The store must have the databases named in TERN_AUDIT_DBNAMES, in that
 * order; pass their handles in a tern_audit_dbs (tern_audit_dbs_at). */
#ifndef TERN_AUDIT_H
#define TERN_AUDIT_H

#include <stdint.h>

#include <tern/keys.h>
#include <tern/merkle.h>
#include <tern/v1/audit.pb-c.h>

#include "store.h"

/* audit_subtrees came later: a read-only view of an older store has none. */
#define TERN_AUDIT_DBNAMES "audit", "audit_meta", "audit_checkpoints", "?audit_subtrees"

typedef struct tern_audit_dbs {
	MDB_dbi entries;     /* be64 index -> serialized AuditEntry */
	MDB_dbi meta;        /* size and frontier */
	MDB_dbi checkpoints; /* be64 size -> signed note */
	/* be64 position -> hash of a complete subtree, numbered in the order the
	 * log completes them (post-order: a leaf, then each subtree it closes),
	 * so every append goes at the end. 0 when the store has none (read-only
	 * view of a store from before): proofs then hash the entries. */
	MDB_dbi subtrees;
} tern_audit_dbs;

/* The handles of the TERN_AUDIT_DBNAMES databases opened at index first of s. */
void tern_audit_dbs_at(const tern_store *s, int first, tern_audit_dbs *d);
/* Stores the subtree hashes that a log written before they were kept lacks
 * (or one an older binary appended to for long), in transactions of a
 * bounded size, logging progress. For daemons opening their store for
 * writing. Fewer than a batch behind is left to the appends; nothing to do
 * costs one lookup. */
int tern_audit_backfill(tern_store *s, const tern_audit_dbs *d);

/* Appends e (its fields are copied) and updates the frontier. */
int tern_audit_append(MDB_txn *txn, const tern_audit_dbs *d, const Tern__V1__AuditEntry *e);
/* The log's size and root now. */
int tern_audit_head(MDB_txn *txn, const tern_audit_dbs *d, uint64_t *size, tern_hash root);
/* Signs a checkpoint of the current head as origin and stores it; *size is
 * the checkpoint's size (no new checkpoint if the last one has this size
 * and force is 0). */
int tern_audit_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, const char *origin,
                          const tern_signkey *key, int force, uint64_t *size);
/* Proofs and roots of the log's first n entries (TERN_ENOENT when it holds
 * fewer), from the stored subtrees: O(log n) lookups. Where those are missing
 * (an older store read-only, before its daemon filled them in) the entries
 * are read and hashed instead, each at most once per call. proof has
 * room for TERN_MERKLE_MAX_PROOF hashes. */
int tern_audit_inclusion_proof(MDB_txn *txn, const tern_audit_dbs *d, uint64_t index, uint64_t n,
                               tern_hash *proof, size_t *len);
int tern_audit_consistency_proof(MDB_txn *txn, const tern_audit_dbs *d, uint64_t m, uint64_t n,
                                 tern_hash *proof, size_t *len);
int tern_audit_root_at(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash root);
/* The frontier of the first n entries: the roots of the complete subtrees
 * that make them up, largest first (one per set bit of n, *count of them). */
int tern_audit_frontier_at(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash out[64],
                           int *count);
/* The newest checkpoint note (malloc'd), or TERN_ENOENT. */
int tern_audit_latest_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, char **note,
                                 uint64_t *size);

#endif

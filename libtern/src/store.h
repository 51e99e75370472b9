/* Durable state in LMDB, shared by tern-broker and tern-node.
 *
 * A store is one LMDB environment in a directory, with named databases opened
 * once at start-up. Writes go through tern_store_write(): the caller's apply
 * function runs inside one write transaction, and the transaction commits
 * (fsync) before tern_store_write returns. That is the group commit: a daemon
 * gathers a batch in memory, applies it in one call, and acknowledges nothing
 * before the call returns 0.
 *
 * When the map fills, the transaction is aborted, the map grows, and apply is
 * called again from the start (PITFALLS: a transaction that hit MDB_MAP_FULL
 * is dead). apply must therefore only read its in-memory input and write to
 * the transaction, never change the input or act on the world.
 *
 * MDB_val data is valid only until the transaction ends or the next write in
 * it: copy what must outlive it.
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "util.h"

#define TERN_STORE_MAX_DBS 32

typedef struct tern_store tern_store;

enum tern_store_flags {
	TERN_STORE_RDONLY = 1, /* operator tools reading while the daemon runs or is down */
};

/* Opens (creating unless read-only) the environment in dir (0700) with the
 * named databases (NULL-terminated list; index i is dbi number i).
 * A name starting with '?' is a database added after stores were first
 * written: it is created like the others, but a read-only open of a store that
 * does not have it yet succeeds with tern_store_dbi() 0 for it, which the
 * caller must check (LMDB never gives 0 to a named database).
 * initial_map: map size in bytes for a new store (0 = 64 MiB); the map grows
 * by doubling whenever it fills. */
int tern_store_open(const char *dir, const char *const *dbnames, int flags, size_t initial_map,
                    tern_store **out);
void tern_store_close(tern_store **store);

MDB_dbi tern_store_dbi(const tern_store *store, int index);

typedef int tern_store_apply_fn(MDB_txn *txn, void *arg);

/* Runs apply in a write transaction and commits. apply returns 0 or a TERN_E*
 * code (then the transaction is aborted and that code returned); an LMDB
 * error inside apply should be passed through tern_store_mdb_err(). */
int tern_store_write(tern_store *store, tern_store_apply_fn *apply, void *arg);

/* A read-only transaction; end it with mdb_txn_abort(). For the thread that
 * calls tern_store_write only. */
int tern_store_read_begin(tern_store *store, MDB_txn **txn);
/* A read-only transaction on any other thread; end it with
 * tern_store_thread_read_end() (not mdb_txn_abort), soon: the map cannot
 * grow while it is live. */
int tern_store_thread_read_begin(tern_store *store, MDB_txn **txn);
void tern_store_thread_read_end(tern_store *store, MDB_txn *txn);

/* mdb_put, for a database whose new keys usually sort after all its others
 * (message ids, which are UUIDv7, and increasing sequences). LMDB splits a
 * full leaf in the middle, so a tree that only grows at its end is left with
 * half-empty leaves and every commit writes more pages; MDB_APPEND instead
 * starts a new leaf and leaves the full one full. The append is used only
 * when key sorts strictly after the database's last key (else MDB_APPEND
 * would fail with MDB_KEYEXIST), and never on an MDB_DUPSORT database:
 * otherwise this is mdb_put with flags, and an existing key is overwritten
 * as mdb_put would. Returns an LMDB code, as mdb_put. */
int tern_store_put_tail(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned int flags);

/* Maps an LMDB return code to a TERN_E* code, recording the detail.
 * MDB_MAP_FULL is kept distinct so tern_store_write can grow and retry. */
int tern_store_mdb_err(int mdb_rc, const char *what);
#define TERN_STORE_MAP_FULL (-30792) /* == MDB_MAP_FULL, passed through unchanged */

/* A consistent copy of the store in dir, taken while its daemon may be
 * writing (LMDB's copy runs in one read transaction), written as
 * out/data.mdb, compacted (free pages left out). out is created (0700) and
 * must not hold a store already. *bytes = the copy's size. This is the hot
 * backup of docs/operations.md. */
int tern_store_copy(const char *dir, const char *out, uint64_t *bytes);

/* The current map size, for metrics and tests. */
size_t tern_store_mapsize(const tern_store *store);

#endif

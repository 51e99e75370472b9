/* Attachment transfers at the broker (docs/attachments.md): what it holds of
 * each message's sealed chunks, in the store beside the queues, and the
 * spool files the chunks themselves live in.
 *
 * The store keeps, per message with attachments, a transfer record (BQ_XFER,
 * keyed by message id): its sender, its recipients and which of them said
 * ChunkDone, its expiry, and per attachment the seal (size, chunk size,
 * root) and how many chunks are committed (have). Each committed chunk's
 * inclusion proof is kept too (BQ_XPROOF, msgid || be32(att) || be64(index)),
 * so the chunk can be served with it. The chunks are in
 * <data_dir>/chunks/<msgid>.<att>, chunk k at tern_attach_slot(k): bulk
 * bytes stay out of LMDB (PITFALLS: large values fragment its free list).
 *
 * A chunk's bytes are synced in the spool before its count is committed, so
 * a crash leaves at most a chunk written and not counted, which the sender
 * puts again. Both databases came after stores were first written: on a
 * read-only open of an older store they are absent (dbi 0), and the readers
 * here then see no transfers. */
#ifndef TERN_BROKER_XFER_H
#define TERN_BROKER_XFER_H

#include <stddef.h>
#include <stdint.h>

#include <tern/attach.h>
#include <tern/envelope.h>

#include "store.h"

#define XFER_MAX_RCPTS TERN_ENVELOPE_MAX_RECIPIENTS
/* A proof longer than this would be for a tree of more than 2^64 chunks. */
#define XFER_MAX_PROOF 64
typedef struct xfer_att {
	uint64_t size;
	uint32_t chunk_size;
	uint8_t root[32];
	uint64_t have; /* chunks 0..have-1 are committed */
} xfer_att;

typedef struct xfer_rec {
	char msgid[37];
	char sender[64];
	int64_t expires; /* ms: the envelope's, as its queue items' */
	size_t nrcpt;
	char rcpt[XFER_MAX_RCPTS][64];
	uint8_t done[XFER_MAX_RCPTS]; /* said ChunkDone, or its copy was dead-lettered */
	size_t natt;
	xfer_att att[TERN_ATTACH_MAX_COUNT];
} xfer_rec;

/* Records the transfer of msgid (nseals > 0), inside the write that accepts
 * its envelope. An existing record is kept as it is (its counts stand). */
int xfer_create(MDB_txn *txn, tern_store *s, const char *msgid, const char *sender,
                char *const *rcpts, size_t nrcpt, const Tern__V1__AttachmentSeal *const *seals,
                size_t nseals, int64_t expires);
/* TERN_ENOENT when msgid has no transfer (or the store has no transfers yet). */
int xfer_get(MDB_txn *txn, tern_store *s, const char *msgid, xfer_rec *out);
/* Decodes a stored record (len bytes) into r, all but its msgid (the key)
 * and the counts (have, stored apart): TERN_EMALFORMED or TERN_EVERSION for
 * a record xfer_create did not write. Pure, for the fuzzer too. */
int xfer_rec_decode(const uint8_t *data, size_t len, xfer_rec *r);
/* The seal of r's attachment att, pointing into r. */
void xfer_seal(const xfer_rec *r, uint32_t att, Tern__V1__AttachmentSeal *seal);
/* Index of rcpt among r's recipients, -1 when it is not one. */
int xfer_rcpt_index(const xfer_rec *r, const char *rcpt);

/* Commits chunk index of attachment att, already synced in its spool file,
 * with its proof (proof_len bytes, 32 per hash): have becomes index + 1.
 * TERN_EEXIST when have is not index (another put came first: nothing
 * written); *have = the count after the call, either way. */
int xfer_chunk_commit(MDB_txn *txn, tern_store *s, const char *msgid, uint32_t att, uint64_t index,
                      const uint8_t *proof, size_t proof_len, uint64_t *have);
/* The stored proof of a committed chunk, pointing into the transaction. */
int xfer_proof_get(MDB_txn *txn, tern_store *s, const char *msgid, uint32_t att, uint64_t index,
                   const uint8_t **proof, size_t *len);

/* rcpt said ChunkDone for msgid (at now). When every recipient has, the
 * transfer is retained until now + retain_ms (its expiry moved there: a
 * recipient put back from an older copy fetches the chunks again, as it is
 * given its retained queue items again), and *gone = 0; with retain_ms 0 it
 * is deleted and *gone = its attachment count (the spool files to remove
 * after the commit). Said again by a recipient done already: nothing
 * changes (its retention is not drawn out). TERN_ENOENT: no such transfer,
 * or rcpt is not one of its recipients. */
int xfer_rcpt_done(MDB_txn *txn, tern_store *s, const char *msgid, const char *rcpt, int64_t now,
                   int64_t retain_ms, size_t *gone);
/* Deletes msgid's record and proofs. */
int xfer_delete(MDB_txn *txn, tern_store *s, const char *msgid);

/* Ends, at most max of them, the transfers that expired by now (a retained
 * one: its retention is over) or whose every recipient is done or has its
 * copy of the envelope in the dead letters (expired, max attempts, revoked)
 * with none done. One where some are done and the others dead-lettered is
 * retained from now for retain_ms instead (as if the last had said
 * ChunkDone: a done recipient may be restored from a backup); retain_ms 0
 * ends it. gone(msgid, natt, arg) is called for each one deleted (it may be
 * called again if the transaction runs again: removing a spool file twice is
 * harmless). *n = how many ended. */
typedef void xfer_gone_fn(const char *msgid, size_t natt, void *arg);
int xfer_sweep(MDB_txn *txn, tern_store *s, int64_t now, int64_t retain_ms, size_t max,
               xfer_gone_fn *gone, void *arg, size_t *n);

/* The sealed bytes the broker holds of r's attachment att. */
uint64_t xfer_att_bytes(const xfer_att *a);
/* Calls fn(rcpt, bytes, arg) for every recipient not done with every
 * transfer, bytes being what the broker holds of that transfer, and
 * fn(NULL, bytes, arg) once for a transfer every recipient is done with
 * (kept for [delivery] retain). */
int xfer_scan_bytes(MDB_txn *txn, tern_store *s,
                    void (*fn)(const char *rcpt, uint64_t bytes, void *arg), void *arg);
/* *bytes = the sealed bytes of transfers every recipient is done with,
 * kept for a recipient restored from an older backup: disk no destination
 * waits for, which transfer_bytes does not show. */
int xfer_retained_bytes(MDB_txn *txn, tern_store *s, uint64_t *bytes);

/* Adds to the destinations d (*n of them, realloc'd) the bytes held for
 * each (bq_dest.transfer_bytes), adding the destinations that have only
 * those. For bq_stats. */
struct bq_dest;
int xfer_stats_add(MDB_txn *txn, tern_store *s, struct bq_dest **d, size_t *n);

/* --- spool files (dir: <data_dir>/chunks) --- */

/* Writes len bytes at off of msgid's attachment att spool file (creating
 * dir 0700 and the file 0600) and syncs them. TERN_EIO with *err = errno
 * (ENOSPC: the disk is full) when they could not be. */
/* xfer_spool_write without the sync, into a file that exists (the
 * chunk-writing thread's: a transfer that ended meanwhile had its file
 * removed, and a write must not make it again); xfer_spool_create makes the
 * file (and dir) if missing, on the loop, while the transfer exists; and the
 * spool file opened (*fd, the caller's to close) for the sync of the chunks
 * written, which the syncer thread does (syncer.h): the same errors and
 * *err. */
int xfer_spool_create(const char *dir, const char *msgid, uint32_t att, int *err);
int xfer_spool_put(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                   const uint8_t *data, size_t len, int *err);
int xfer_spool_open_sync(const char *dir, const char *msgid, uint32_t att, int *fd, int *err);
int xfer_spool_write(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                     const uint8_t *data, size_t len, int *err);
/* Reads len bytes at off; TERN_EIO when they are not all there. */
int xfer_spool_read(const char *dir, const char *msgid, uint32_t att, uint64_t off, uint8_t *buf,
                    size_t len);
struct tern_syncer;
/* Removes msgid's spool files 0..natt-1 (those that exist), on the syncer's
 * thread (syncer.h: a gigabyte's unlink takes ext4 hundreds of ms); s NULL:
 * here. */
void xfer_spool_remove(struct tern_syncer *s, const char *dir, const char *msgid, size_t natt);

#endif

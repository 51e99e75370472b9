/* The broker's durable state in LMDB: per-recipient queues, the expiry index,
 * submission de-duplication and the dead-letter queue. Every function taking
 * a txn runs inside the caller's write (or read) transaction; see store.h for
 * the group-commit and re-run rules.
 *
 * Each queue has an acknowledged mark (every item at or below it is committed
 * at its node). Acknowledged items are kept for a retention period (the ack
 * log says when each mark was reached) and then purged, so that a node
 * restored from an older copy of its store can be given them again
 * (bq_rewind). Everything that counts or sends "what is queued" starts above
 * the mark. */
#ifndef TERN_BROKER_QUEUE_H
#define TERN_BROKER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tern/v1/envelope.pb-c.h>

#include "audit.h"
#include "store.h"

enum {
	BQ_META,
	BQ_QUEUE,
	BQ_EXPIRY,
	BQ_DEDUP,
	BQ_DLQ,
	BQ_AUDIT,
	BQ_AUDIT_META,
	BQ_AUDIT_CHECKPOINTS,
	BQ_AUDIT_SUBTREES,
	BQ_ACKLOG,  /* be64(at) rcpt -> be64(upto): when each mark was reached */
	BQ_STUBLOG, /* be64(at) rcpt -> be64(upto): when items up to upto became stubs */
	BQ_XFER,    /* attachment transfers (xfer.h) */
	BQ_XPROOF,  /* their chunks' inclusion proofs (xfer.h) */
	BQ_NDB
};

/* BQ_STUB: what is left of an acknowledged item past retention, its sender
 * and message id without the payload, kept longer (bq_purge), so that a node
 * restored from a backup older than the retention is told, by id, what it
 * lost. A stub is never delivered. */
enum bq_kind { BQ_ENVELOPE = 1, BQ_NOTICE = 2, BQ_STUB = 3 };

#define BQ_EPOCH_LEN 16

/* A queue item as stored: kind, expiry, sender, message id and payload (the
 * envelope bytes, or a packed tern.v1.Notice). Pointers into an LMDB value
 * are valid only until the transaction ends. */
typedef struct bq_item {
	int kind;
	int64_t expires_at; /* ms */
	int64_t enqueued_at;
	char sender[64];
	char msgid[37];
	const uint8_t *payload;
	size_t len;
} bq_item;

/* The audit log's databases in the broker's store. */
void bq_audit_dbs(tern_store *s, tern_audit_dbs *d);
/* Appends an audit entry (digest: SHA-256 of the envelope, or NULL). */
int bq_audit(MDB_txn *txn, tern_store *s, Tern__V1__AuditEntry__Kind kind, const char *msgid,
             const char *peer, const char *case_id, const char *type, const uint8_t *env,
             size_t len, const char *reason, char *const *recipients, size_t nrcpts, int64_t now);

/* The same, with the attachments' seals (AuditEntry.attachments: index,
 * size, root). */
int bq_audit_seals(MDB_txn *txn, tern_store *s, Tern__V1__AuditEntry__Kind kind, const char *msgid,
                   const char *peer, const char *case_id, const char *type, const uint8_t *env,
                   size_t len, const char *reason, char *const *recipients, size_t nrcpts,
                   const Tern__V1__AttachmentSeal *const *seals, size_t nseals, int64_t now);

/* Opens the store in dir and reads (or makes, once) its identity: 16 random
 * bytes fixed when the store was created. A copy of the store (a backup put
 * back) has the same identity and the same counters as when it was taken:
 * that is how peers recognise it went back in time. */
int bq_open(const char *dir, tern_store **out, uint8_t store_id[BQ_EPOCH_LEN]);

/* Appends item to rcpt's queue with the next sequence (persisted). */
int bq_append(MDB_txn *txn, tern_store *s, const char *rcpt, const bq_item *item, uint64_t *seq);

/* rcpt's acknowledged mark (0 when nothing was ever acknowledged). */
int bq_acked(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t *acked);
/* rcpt's node committed every item up to upto: the mark moves there (never
 * back), the items leave the expiry index, and fn (if any) sees each newly
 * acknowledged item (latency figures). keep: the items stay for retention
 * (purged by bq_purge), else they are deleted now. *n = items acknowledged. */
int bq_ack(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t upto, int keep, int64_t now,
           void (*fn)(const bq_item *it, void *arg), void *arg, size_t *n);
/* rcpt's node holds less than it acknowledged (its store was restored): the
 * mark goes back to to, and the retained items above it are queued again.
 * They stay out of the expiry index: they were delivered once, and a restore
 * must not turn them into expired ones (nor tell their senders so). *first:
 * the first item still held above to, stub or not (to + 1 when nothing was
 * deleted in between; the next sequence to be assigned when nothing is held
 * above to). lost (if not NULL) is called for each stub between to and the
 * old mark: a message the node had and cannot be given again. */
int bq_rewind(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t to, uint64_t *first,
              void (*lost)(uint64_t seq, const bq_item *stub, void *arg), void *arg);
/* Past retention: acknowledged items whose mark was reached before before
 * become stubs (or are deleted, when ids_before >= before: no ids kept),
 * and stubs made before ids_before are deleted; at most max items in all.
 * now dates the stubs. *n = items changed (max: there may be more). */
int bq_purge(MDB_txn *txn, tern_store *s, int64_t before, int64_t ids_before, int64_t now,
             size_t max, size_t *n);
/* The last sequence assigned for rcpt (0: none). */
int bq_last_seq(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t *seq);

/* Acceptances per sender: the n-th envelope this store accepted from a
 * node. The node keeps the numbers it was told, so that a store put back
 * from an older copy (whose count is lower) shows which of its messages
 * the broker no longer holds. */
int bq_accept_next(MDB_txn *txn, tern_store *s, const char *sender, const char *msgid, uint64_t *n);
/* *n acceptances from sender; last (37 bytes) the last one's id, "" if none. */
int bq_accepted_count(MDB_txn *txn, tern_store *s, const char *sender, uint64_t *n, char *last);
/* Reads one entry; TERN_ENOENT if gone. */
int bq_get(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq, bq_item *item);
/* Calls fn for rcpt's entries with seq >= from, in order, until fn returns non-zero. */
typedef int bq_visit_fn(uint64_t seq, const bq_item *item, void *arg);
int bq_scan(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t from, bq_visit_fn *fn,
            void *arg);
/* The first entry for rcpt with seq >= from that is not a stub, in *seq (0:
 * none): the head of its queue when from is the mark + 1. */
int bq_head(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t from, uint64_t *seq);
/* Number of entries and bytes queued for rcpt (above its mark). */
int bq_depth(MDB_txn *txn, tern_store *s, const char *rcpt, size_t *n, size_t *bytes);

/* What is queued for one destination. */
typedef struct bq_dest {
	char id[64];
	size_t depth, bytes, notices, dead;
	size_t retained;         /* acknowledged, kept for retention */
	uint64_t acked;          /* the acknowledged mark */
	int64_t oldest;          /* enqueue time of the oldest entry, ms; INT64_MAX when empty */
	uint64_t transfer_bytes; /* attachment chunks held for it (xfer.h) */
} bq_dest;

/* Every destination with anything queued, dead-lettered or attachment bytes
 * held for it, in id order, in a malloc'd array the caller frees. Works in a
 * read-only transaction. Reads per-destination counters kept in meta, so it
 * costs the same however much is queued (an older store, read-only: a scan). */
int bq_stats(MDB_txn *txn, tern_store *s, bq_dest **out, size_t *n);
/* The same by reading every queued item: what bq_stats does for a store from
 * before its counters, and what the tests hold the counters to. */
int bq_stats_scan(MDB_txn *txn, tern_store *s, bq_dest **out, size_t *n);

/* The stats as the JSON array `tern queues --json` shows (new reference):
 * [{id, depth, bytes, notices, dead_letters, retained, oldest_age_ms,
 * transfer_bytes}]. */
json_t *bq_stats_json(const bq_dest *d, size_t n, int64_t now);

/* Opens a broker's store read-only, for operator tools while it is down. */
int bq_open_rdonly(const char *dir, tern_store **out);

/* Moves rcpt's entry seq to the dead-letter queue with reason and, for an
 * envelope, queues a Notice for its sender. TERN_ENOENT when it is gone or
 * already acknowledged (kept for retention: delivered, not dead). */
int bq_dead_letter(MDB_txn *txn, tern_store *s, const char *rcpt, uint64_t seq, int notice_kind,
                   const char *reason, int64_t now);
/* Dead-letters up to max of rcpt's unacknowledged entries, oldest first, with reason and a
 * Notice of notice_kind to each envelope's sender (a recipient revoked or
 * removed from the directory). *n = entries moved (fewer than max: the queue
 * is empty now). */
int bq_dead_letter_queue(MDB_txn *txn, tern_store *s, const char *rcpt, int notice_kind,
                         const char *reason, int64_t now, size_t max, size_t *n);
/* The destinations that have anything queued, in id order: calls fn(rcpt,
 * arg) for each (one cursor jump per destination, not a scan of the items). */
int bq_destinations(MDB_txn *txn, tern_store *s, void (*fn)(const char *rcpt, void *arg),
                    void *arg);
/* Dead-letters every entry whose expiry is <= now (reason "expired").
 * *n = entries moved; *damaged (if not NULL) = entries past their expiry
 * that do not decode, whose expiry is dropped and which stay where they are
 * (delivery passes over them); touched(rcpt) is called for each queue that
 * changed. */
int bq_expire(MDB_txn *txn, tern_store *s, int64_t now, size_t *n, size_t *damaged,
              void (*touched)(const char *rcpt, void *arg), void *arg);
/* The earliest expiry in the store (INT64_MAX if none). */
int64_t bq_next_expiry(MDB_txn *txn, tern_store *s);

/* De-duplication by message id, bound to the sender that got it accepted.
 * Only acceptances are remembered: a refusal must not mark an id as seen, or
 * a member holding another's envelope could submit it first and have the
 * real sender refused for good. */
typedef struct bq_dedup {
	char sender[64]; /* the authenticated node it was accepted from; "" when
	                    unknown (a record from before senders were kept) */
	uint64_t n;      /* its number among that sender's acceptances (0: unknown) */
	int64_t at;      /* when it was accepted, ms */
} bq_dedup;

/* TERN_OK with *out when msgid was accepted before, TERN_ENOENT when not. */
int bq_dedup_get(MDB_txn *txn, tern_store *s, const char *msgid, bq_dedup *out);
/* Records that msgid was accepted from sender as its n-th. */
int bq_dedup_put(MDB_txn *txn, tern_store *s, const char *msgid, const char *sender, uint64_t n,
                 int64_t now);

/* TERN_OK when msgid is among rcpt's dead letters, TERN_ENOENT when not. */
int bq_dlq_has(MDB_txn *txn, tern_store *s, const char *rcpt, const char *msgid);

/* Dead-letter entries for rcpt ("" = all): calls fn(rcpt, msgid, reason, at, arg). */
int bq_dlq_scan(MDB_txn *txn, tern_store *s,
                void (*fn)(const char *rcpt, const char *msgid, const char *reason, int64_t at,
                           void *arg),
                void *arg);

/* The headers (never bodies) of rcpt's first max queue entries, as a JSON
 * array (new reference): seq, kind, message_id, sender, type, case_id,
 * created_at, enqueued_at, expires_at, bytes. */
int bq_show(MDB_txn *txn, tern_store *s, const char *rcpt, size_t max, json_t **out);

/* Takes msgid out of rcpt's dead letters: retry = 1 queues it again for rcpt
 * (expiring at expires_at), 0 drops it. TERN_ENOENT when not there. */
int bq_dlq_take(MDB_txn *txn, tern_store *s, const char *rcpt, const char *msgid, int retry,
                int64_t expires_at, int64_t now);

#endif

/* The node's durable state in LMDB: outbox, sent-message records with their
 * per-recipient states, inbox, received messages (bodies stay sealed at
 * rest), cross-reference index, and the broker resync point.
 *
 * The sent and received records are protobuf (record.h); the others are
 * small JSON objects (jansson). Functions taking a txn run inside the
 * caller's transaction (see store.h: a write's apply function may run more
 * than once). json_t results are new references the caller releases. */
#ifndef TERN_NODE_STORE_H
#define TERN_NODE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "audit.h"
#include "record.h"
#include "store.h"

enum {
	NS_META,
	NS_OUTBOX,
	NS_OUTENV,
	NS_MSGS,
	NS_INBOX,
	NS_RECEIVED,
	NS_INENV,
	NS_REFS,
	NS_CLIENTREFS,
	NS_AUDIT,
	NS_AUDIT_META,
	NS_AUDIT_CHECKPOINTS,
	NS_AUDIT_SUBTREES,
	NS_ACCEPTED, /* be64(n) -> msgid: the n-th acceptance by the broker's store */
	NS_HELD,     /* msgid -> HeldRecord (nodestore.proto): held deliveries */
	NS_HELDENV,  /* msgid -> the held envelope as delivered */
	NS_CASES,    /* case_id NUL msgid -> 'o' sent, 'i' received, 'h' held (cases.c) */
	NS_UPLOADS,  /* upload id -> UploadRecord: uploads under way (upload.c) */
	NS_XOUT,     /* msgid -> TransferOutRecord: transfers out (xfer_out.c) */
	NS_XLEAVES,  /* msgid NUL be32(i) -> attachment i's chunk leaf hashes (xfer_out.c) */
	NS_XIN,      /* msgid -> TransferInRecord: transfers in (xfer_in.c) */
	NS_XINENV,   /* msgid -> the envelope of a transfer in */
	NS_PUSHES,   /* be64(seq) -> PushRecord: webhook pushes not yet delivered (webhook.c) */
	NS_LIST,     /* 'a'|'o'|'i' be64(n), 'c' case_id NUL be64(n) -> kind msgid (msglist.c) */
	NS_NDB
};

int node_store_open(const char *dir, int rdonly, tern_store **out);
/* The audit log's databases in the node's store (see audit.h). */
void node_store_audit_dbs(tern_store *s, tern_audit_dbs *d);

/* A message this node sends: queued in the outbox in order. */
typedef struct node_out {
	const char *msgid;
	const uint8_t *envelope;
	size_t len;
	const char *type; /* "case-referral", ... "receipt" */
	const char *case_id;
	int64_t created_at;
	const char *const *recipients;
	size_t n_recipients;
	const char *outcome;      /* decisions: ACCEPTED etc.; else "" */
	const char *ref;          /* referralId / decisionId / receipt's message id, or "" */
	const char *client_ref;   /* API idempotency key, or NULL */
	const uint8_t *client_fp; /* with client_ref: 32 bytes saying what was sent */
} node_out;

int node_store_enqueue(MDB_txn *txn, tern_store *s, const node_out *m, int64_t now);
/* The next number of the counter name (kept in meta; the first is 1). */
int node_store_next_seq(MDB_txn *txn, tern_store *s, const char *name, uint64_t *out);
/* The broker's answer to a submission. Unknown message ids are ignored.
 * accepted_n: the broker store's number for it (0: none given); it is
 * indexed, so that a broker store put back from an older copy shows which
 * messages it no longer holds (node_store_resubmit_after). The envelope stays
 * in the store after acceptance, for exactly that. */
int node_store_submitted(MDB_txn *txn, tern_store *s, const char *msgid, int accepted,
                         uint64_t accepted_n, const char *code, const char *text, int64_t now);
/* A recipient's receipt, or (notice = 1) the broker's dead-letter notice.
 * TERN_EEXIST when it changes nothing: the same verdict delivered again, or a
 * notice about a recipient that already receipted the message (a signed
 * receipt outweighs the broker's word, e.g. for an item delivered again to a
 * node restored from a backup). */
int node_store_recipient_state(MDB_txn *txn, tern_store *s, const char *msgid, const char *node,
                               const char *state, const char *code, const char *text, int notice,
                               int64_t now);

/* Which broker store the acceptance numbers count in, and the highest one
 * this node was told (zeros and 0 when none yet). */
int node_store_accepted_get(MDB_txn *txn, tern_store *s, uint8_t store[16], uint64_t *max);
/* A broker store other than the one the numbers count in: its numbers start
 * afresh, the index of the old one's is dropped. */
int node_store_accepted_reset(MDB_txn *txn, tern_store *s, const uint8_t store[16]);
/* The broker's store holds only count of this node's acceptances, fewer than
 * it told this node: every message it accepted after those is queued again
 * in its original outbox place (recipients still at-broker go back to
 * queued), so that it is submitted again in order, and the highest number
 * known becomes count. *n = messages queued again. A record that is gone or
 * damaged is passed over; one not read for want of memory fails the call
 * (TERN_ENOMEM): the transaction is to be aborted and the call made again. */
int node_store_resubmit_after(MDB_txn *txn, tern_store *s, uint64_t count, int64_t now, size_t *n);
/* This node's store knows fewer acceptances than the broker's store holds
 * (this store was put back from an older copy): the highest known becomes
 * count. */
int node_store_accepted_raise(MDB_txn *txn, tern_store *s, uint64_t count);
/* TERN_OK with *rec (the sent-message record) or TERN_ENOENT. */
int node_store_sent_get(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec);
/* The same record decoded, for the message path; free with node_rec_sent_free. */
int node_store_sent_rec(MDB_txn *txn, tern_store *s, const char *msgid, node_sent_rec **rec);
/* Outbox entries from seq on, in order: fn(seq, msgid, envelope, len, arg), stop on non-zero. */
int node_store_outbox_scan(MDB_txn *txn, tern_store *s, uint64_t from,
                           int (*fn)(uint64_t seq, const char *msgid, const uint8_t *env,
                                     size_t len, void *arg),
                           void *arg);
/* The message a client_ref made, and in fp what its send said (zeros for a
 * record written before fingerprints were kept, which *has_fp then says);
 * TERN_ENOENT when the key is unused. */
int node_store_client_ref(MDB_txn *txn, tern_store *s, const char *ref, char msgid[37],
                          uint8_t fp[32], int *has_fp);

/* A received message: accepted ones enter the inbox. */
typedef struct node_in {
	const char *msgid;
	const uint8_t *envelope;
	size_t len;
	const char *sender;
	const char *type;
	const char *case_id;
	const char *outcome; /* decisions */
	int accepted;
	const char *code; /* when refused */
	const char *text;
	const uint8_t *tag; /* accepted: its 32-byte envelope_tag (node_inbox_tag); NULL: none */
} node_in;

int node_store_receive(MDB_txn *txn, tern_store *s, const node_in *m, int64_t now);
/* A delivery held until the message it cites (ref) arrives, or until
 * `until` (ms) passes; docs/messages.md, "Held messages". */
typedef struct node_held {
	const char *msgid, *ref, *sender, *case_id, *type;
	int64_t until;
	const uint8_t *envelope;
	size_t len;
} node_held;
int node_store_hold(MDB_txn *txn, tern_store *s, const node_held *h);
/* Forgets a held delivery (released: judged at last). TERN_ENOENT if none. */
int node_store_unhold(MDB_txn *txn, tern_store *s, const char *msgid);
/* 1 if msgid is held (no copy made). */
int node_store_held_has(MDB_txn *txn, tern_store *s, const char *msgid);
/* TERN_OK with the held envelope (a copy the caller frees), or TERN_ENOENT. */
int node_store_held_envelope(MDB_txn *txn, tern_store *s, const char *msgid, uint8_t **env,
                             size_t *len);
/* Every held delivery: fn(msgid, record, arg), the record read from either
 * form (record.h) and valid during the call; a non-zero return stops.
 * Records that do not decode are passed over; TERN_ENOMEM when one could
 * not be read for want of memory. */
typedef Tern__V1__HeldRecord node_held_rec;
int node_store_held_scan(MDB_txn *txn, tern_store *s,
                         int (*fn)(const char *msgid, const node_held_rec *rec, void *arg),
                         void *arg);

/* Indexes a held msgid under case_id (kind 'h'); cases.c. Sent and received
 * messages are found by case through the listing index (below). */
int node_store_case_note(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid,
                         char kind);
/* Takes msgid out of the held entries of case_id (it was received, accepted
 * or refused); nothing if it was not there. */
int node_store_case_forget(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid);

/* The listing index (msglist.c): numbers msgid (kind 'o' sent, 'i'
 * received) after every message noted before it, under its direction and
 * case_id ("" or NULL: none). */
int node_store_list_note(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid,
                         char kind);
/* A tern_store_write apply function (arg: the store): indexes, once, what a
 * store from before the listing index holds, in time order. */
int node_store_list_backfill(MDB_txn *txn, void *arg);
/* Converts, once, the records an older release wrote as JSON (sent and
 * received messages, the case workflow, held deliveries, webhook pushes,
 * transfers, uploads) to protobuf, in bounded transactions, and marks the
 * store done (convert.c). Damaged ones are left as they are. *converted and
 * *damaged count what this call found. Called by node_store_open. */
int node_store_convert(tern_store *s, size_t *converted, size_t *damaged);
/* Its mark in NS_META: present once a store holds no JSON record it wrote. */
#define NODE_STORE_CONVERT_MARK "records.protobuf"
/* The messages indexed under case_id, in the order they were noted:
 * fn(kind, msgid, arg); a non-zero return stops. */
int node_store_list_case_scan(MDB_txn *txn, tern_store *s, const char *case_id,
                              int (*fn)(char kind, const char *msgid, void *arg), void *arg);

#define NODE_LIST_LIMIT_DEFAULT 100
#define NODE_LIST_LIMIT_MAX 1000
/* Index entries a page reads at most: the filters other than direction and
 * case are checked on the records, and a page runs on the node's loop, which
 * carries its broker traffic. 2,000 records take some 10 ms to read and
 * check (a page of 1,000 messages, 20 ms); 10,000 took 70. */
#define NODE_LIST_SCAN_MAX 2000
#define NODE_LIST_CURSOR_LEN 19 /* "v1." and 16 hex digits */

/* A messages.list query (docs/api.md). Strings are borrowed. */
typedef struct node_list_query {
	char direction;                     /* 'o' sent, 'i' received, 0 both */
	const char *case_id, *type, *state; /* NULL: any */
	const char *peer;                   /* a recipient (sent) or the sender (received) */
	int64_t since, until;               /* ms, since <= t < until */
	size_t limit;                       /* 1 to NODE_LIST_LIMIT_MAX */
	uint64_t after;                     /* the cursor: index numbers after this one */
	size_t scan_max;                    /* 0: NODE_LIST_SCAN_MAX */
} node_list_query;

/* Checks a messages.list request's arguments into q (pointing into req):
 * NULL, or the name of the argument refused, with why in why. */
const char *node_list_query_parse(const json_t *req, node_list_query *q, char *why, size_t cap);
/* One page: {"messages": [...], "next_cursor": string or null, "scan_limited":
 * bool} (a new reference in *out). next_cursor is null when the index holds
 * nothing after the page; scan_limited says the page stopped after
 * NODE_LIST_SCAN_MAX entries (it may then hold fewer than limit messages). */
int node_store_messages_list(MDB_txn *txn, tern_store *s, const node_list_query *q, json_t **out);
int node_list_cursor_format(uint64_t seq, char out[NODE_LIST_CURSOR_LEN + 1]);
int node_list_cursor_parse(const char *s, uint64_t *seq);

/* Keeps rec (the workflow's record, tern/workflow.h) under msgid in the refs
 * table, as protobuf; node_store_ref reads it back. */
int node_store_ref_put(MDB_txn *txn, tern_store *s, const char *msgid, const tern_wf_record *rec);
/* TERN_OK if msgid was received before (accepted or refused). */
int node_store_received(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec);
/* The same record decoded; free with node_rec_recv_free. */
int node_store_recv_rec(MDB_txn *txn, tern_store *s, const char *msgid, node_recv_rec **rec);
/* The envelope bytes of a received message (copied; free them). */
int node_store_received_envelope(MDB_txn *txn, tern_store *s, const char *msgid, uint8_t **env,
                                 size_t *len);
/* Takes msgid out of the inbox. TERN_EEXIST when it was acknowledged before
 * (nothing changes), TERN_ENOENT when it is not a message accepted here. */
int node_store_inbox_ack(MDB_txn *txn, tern_store *s, const char *msgid);
/* Unacknowledged inbox entries in arrival order: fn(msgid, arg), stop on non-zero. */
int node_store_inbox_scan(MDB_txn *txn, tern_store *s, int (*fn)(const char *msgid, void *arg),
                          void *arg);
/* The workflow record of a message sent or accepted: the workflow's, or for
 * a message without one (a receipt) the store's own (type, case_id, outcome,
 * and a sent message's ref). Either form in the store (record.h); *rec is new
 * (tern_wf_record_free), NULL on an error. TERN_ENOENT for none. */
int node_store_ref(MDB_txn *txn, tern_store *s, const char *msgid, tern_wf_record **rec);

/* The broker resync point: every delivery up to upto of the broker store
 * store, in the broker's start epoch, is committed. None: zeros, TERN_OK;
 * one of a size no version wrote: zeros, TERN_EMALFORMED. */
int node_store_delivered_get(MDB_txn *txn, tern_store *s, uint8_t store[16], uint8_t epoch[16],
                             uint64_t *upto);
int node_store_delivered_put(MDB_txn *txn, tern_store *s, const uint8_t store[16],
                             const uint8_t epoch[16], uint64_t upto);

/* Counts for node.info: sent messages by state (excluding receipts), inbox size. */
int node_store_counts(MDB_txn *txn, tern_store *s, json_t **out);

#endif

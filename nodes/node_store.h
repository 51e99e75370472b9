/* The node's durable state in LMDB: outbox, sent-message records with their
 * per-recipient states, inbox, received messages (bodies stay sealed at
 * rest), cross-reference index, and the broker resync point.
 *
 * Records are small JSON objects (jansson). Functions taking a txn run inside
 * the caller's transaction (see store.h: a write's apply function may run
 * more than once). json_t results are new references the caller releases. */
#ifndef TERN_NODE_STORE_H
#define TERN_NODE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "audit.h"
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
	const char *outcome;    /* decisions: ACCEPTED etc.; else "" */
	const char *ref;        /* referralId / decisionId / receipt's message id, or "" */
	const char *client_ref; /* API idempotency key, or NULL */
} node_out;

int node_store_enqueue(MDB_txn *txn, tern_store *s, const node_out *m, int64_t now);
/* The broker's answer to a submission. Unknown message ids are ignored. */
int node_store_submitted(MDB_txn *txn, tern_store *s, const char *msgid, int accepted,
                         const char *code, const char *text, int64_t now);
/* A recipient's receipt, or the broker's dead-letter notice (state "expired"). */
int node_store_recipient_state(MDB_txn *txn, tern_store *s, const char *msgid, const char *node,
                               const char *state, const char *code, const char *text, int64_t now);
/* TERN_OK with *rec (the sent-message record) or TERN_ENOENT. */
int node_store_sent_get(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec);
/* Outbox entries from seq on, in order: fn(seq, msgid, envelope, len, arg), stop on non-zero. */
int node_store_outbox_scan(MDB_txn *txn, tern_store *s, uint64_t from,
                           int (*fn)(uint64_t seq, const char *msgid, const uint8_t *env,
                                     size_t len, void *arg),
                           void *arg);
int node_store_client_ref(MDB_txn *txn, tern_store *s, const char *ref, char msgid[37]);

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
} node_in;

int node_store_receive(MDB_txn *txn, tern_store *s, const node_in *m, int64_t now);
/* TERN_OK if msgid was received before (accepted or refused). */
int node_store_received(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec);
/* The envelope bytes of a received message (copied; free them). */
int node_store_received_envelope(MDB_txn *txn, tern_store *s, const char *msgid, uint8_t **env,
                                 size_t *len);
int node_store_inbox_ack(MDB_txn *txn, tern_store *s, const char *msgid);
/* Unacknowledged inbox entries in arrival order: fn(msgid, arg), stop on non-zero. */
int node_store_inbox_scan(MDB_txn *txn, tern_store *s, int (*fn)(const char *msgid, void *arg),
                          void *arg);
/* Cross-reference record {"type","case_id","outcome"} of a message sent or accepted. */
int node_store_ref(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec);

/* The broker resync point: every delivery of store epoch up to upto is committed. */
int node_store_delivered_get(MDB_txn *txn, tern_store *s, uint8_t epoch[16], uint64_t *upto);
int node_store_delivered_put(MDB_txn *txn, tern_store *s, const uint8_t epoch[16], uint64_t upto);

/* Counts for node.info: sent messages by state (excluding receipts), inbox size. */
int node_store_counts(MDB_txn *txn, tern_store *s, json_t **out);

#endif

/* Webhooks: the node pushes each received message and each final state of a
 * sent one to the agency's system (docs/api.md, "Webhooks"), signed as the
 * Standard Webhooks specification says.
 *
 * A push is written to the store (NS_PUSHES) in the transaction that makes
 * its event, so none is lost to a crash or to the agency's system being
 * down. One thread (the pusher) posts them in the order they were written
 * (one damaged at rest is passed over, said and counted: no retry mends it),
 * which keeps them in order per case, with a doubling wait after a failure;
 * it reads the store and never writes it: what it delivered it hands back to
 * the loop (node_webhook_done), whose next commit deletes it. Delivery is
 * at least once: a push delivered just before a crash, or whose answer was
 * lost, is posted again with the same webhook-id, which receivers use to
 * drop repeats.
 */
#ifndef TERN_NODE_WEBHOOK_H
#define TERN_NODE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>
#include <protobuf-c/protobuf-c.h>

#include "store.h"

/* The events, as the payload's "type" says them. */
typedef enum node_push_event {
	NODE_PUSH_RECEIVED, /* a message entered the inbox */
	NODE_PUSH_FINAL,    /* a sent message reached delivered, rejected or expired */
} node_push_event;

/* Writes a push for event about message msgid in txn: its webhook-id is
 * "msgid.received" or "msgid.final.SEQ" (a final state can change: each
 * is its own event, SEQ the push's number), its body the JSON payload {"type",
 * "timestamp" (now_ms, RFC 3339), "data": data} (data borrowed; ids, types
 * and states only, never a body). */
int node_push_add(MDB_txn *txn, tern_store *s, node_push_event event, const char *msgid,
                  const json_t *data, int64_t now_ms);
/* Removes the push seq (delivered); a missing one is not an error. */
int node_push_del(MDB_txn *txn, tern_store *s, uint64_t seq);
/* A push's record (NS_PUSHES), either form (record.h: node_rec_decode). */
int node_push_record_decode(const void *data, size_t len, ProtobufCMessage **out);
/* How many pushes wait (0 for a store without the table). */
int node_push_count(MDB_txn *txn, tern_store *s, uint64_t *n);

typedef struct node_webhook node_webhook;

/* Starts the pusher for url with key (copied). store is read from its
 * thread (the store is opened MDB_NOTLS) and must outlive it. */
int node_webhook_start(const char *url, const uint8_t *key, size_t klen, int64_t max_backoff_ms,
                       tern_store *store, node_webhook **out);
/* Readable when pushes were delivered (poll it with the loop's sockets). */
int node_webhook_fd(const node_webhook *w);
/* Takes up to cap delivered pushes' seqs for the loop to delete; clears the
 * fd's readiness when none is left. Returns how many. */
size_t node_webhook_done(node_webhook *w, uint64_t *seqs, size_t cap);
/* New pushes were committed: post them now rather than at the next poll. */
void node_webhook_kick(node_webhook *w);
/* Pushes delivered, and attempts that failed, since the start. */
void node_webhook_counts(node_webhook *w, uint64_t *delivered, uint64_t *failed);
/* Stops the pusher (a post under way ends within its timeout) and frees it;
 * *w is NULL after. */
void node_webhook_stop(node_webhook **w);

#endif

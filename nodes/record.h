/* The node's per-message records (proto/tern/v1/nodestore.proto): the record
 * of each message it sent (NS_MSGS) and of each it received (NS_RECEIVED);
 * and the case workflow's record of each message (NS_REFS, tern_wf_record:
 * proto/tern/v1/workflow.proto).
 *
 * They are protobuf. A store written before holds JSON objects with the same
 * field names; every decode here takes either, so an upgraded node reads its
 * old records as they are and writes protobuf when it changes one.
 *
 * Decoded records are protobuf-c messages allocated with malloc; free them
 * with the _free functions, which null the caller's pointer. To change a
 * string field of a decoded record use node_rec_set_str, which frees what it
 * replaces. The json_t forms are what the local API and the operator tools
 * show (the old records' field names, states as their names); they are new
 * references the caller releases. */
#ifndef TERN_NODE_RECORD_H
#define TERN_NODE_RECORD_H

#include <stddef.h>

#include <jansson.h>
#include <lmdb.h>

#include <tern/v1/nodestore.pb-c.h>
#include <tern/workflow.h>

typedef Tern__V1__SentRecord node_sent_rec;
typedef Tern__V1__SentRecipient node_sent_rcpt;
typedef Tern__V1__ReceivedRecord node_recv_rec;
typedef Tern__V1__SentState node_sent_state;

#define NODE_SENT_QUEUED TERN__V1__SENT_STATE__SENT_STATE_QUEUED
#define NODE_SENT_AT_BROKER TERN__V1__SENT_STATE__SENT_STATE_AT_BROKER
#define NODE_SENT_DELIVERED TERN__V1__SENT_STATE__SENT_STATE_DELIVERED
#define NODE_SENT_REJECTED TERN__V1__SENT_STATE__SENT_STATE_REJECTED
#define NODE_SENT_EXPIRED TERN__V1__SENT_STATE__SENT_STATE_EXPIRED

/* "queued", "at-broker", "delivered", "rejected", "expired"; "" for an
 * unknown value. */
const char *node_sent_state_name(node_sent_state st);
/* The state of that name; 0 (unspecified) for any other. */
node_sent_state node_sent_state_parse(const char *name);
/* 1 for delivered, rejected and expired: nothing more will happen to it. */
int node_sent_state_final(node_sent_state st);

/* TERN_OK, or TERN_EMALFORMED when the bytes are neither form. */
int node_rec_sent_decode(const void *data, size_t len, node_sent_rec **out);
int node_rec_recv_decode(const void *data, size_t len, node_recv_rec **out);
/* An old JSON workflow record holds states as their names and no flags:
 * "value" and "persons" are there or not; unknown state names read as none.
 * Free the record with tern_wf_record_free. */
int node_rec_wf_decode(const void *data, size_t len, tern_wf_record **out);
/* Either form of a record of any table as a message of descriptor d
 * (malloc'd, free with protobuf_c_message_free_unpacked(m, NULL)):
 * from_json makes it from an old JSON record (NULL when out of memory).
 * TERN_ENOMEM when memory ran out, whichever form (protobuf-c's unpack and
 * jansson alike answer a shortage as bad bytes: both are watched);
 * TERN_EMALFORMED when the bytes are neither form. what names the record
 * in the error ("the record of a held delivery"). */
int node_rec_decode(const void *data, size_t len, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage *(*from_json)(const json_t *), const char *what,
                    ProtobufCMessage **out);
/* Writes any table's record m, packed, under key (a string) in dbi. */
int node_rec_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessage *m);
/* Writes the record under key in dbi. */
int node_rec_sent_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const node_sent_rec *r);
int node_rec_recv_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const node_recv_rec *r);
int node_rec_wf_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const tern_wf_record *r);
void node_rec_sent_free(node_sent_rec **r);
void node_rec_recv_free(node_recv_rec **r);

/* The recipient named node, or NULL. */
node_sent_rcpt *node_rec_sent_rcpt(const node_sent_rec *r, const char *node);
/* Replaces *field (of a decoded record) with a copy of v (NULL: ""). */
int node_rec_set_str(char **field, const char *v);

/* A JSON string of s: its longest start that is valid UTF-8 (a text cut at
 * a byte limit may end inside a character); NULL when out of memory. */
json_t *node_rec_text(const char *s);
/* The JSON forms; NULL when out of memory. */
json_t *node_rec_sent_json(const node_sent_rec *r);
json_t *node_rec_recv_json(const node_recv_rec *r);
/* Either form of bytes from NS_MSGS ('o') or NS_RECEIVED ('i') as JSON; NULL
 * when they do not decode. */
json_t *node_rec_load_json(char kind, const void *data, size_t len);

#endif

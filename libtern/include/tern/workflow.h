/* The case workflow: which messages may follow which, as one table that every
 * hop reads (libtern/src/msgtype.c holds the rows, one per message type; this
 * file the rules that read them).
 *
 * A case is worked in threads. A referral starts one; a decision answers a
 * referral; a travel confirmation follows a decision; an information
 * response answers an information request. The thread's state
 * lives with its referral (the "root") and moves by the table's transitions.
 *
 * Who checks what:
 *   - the broker: the sender's roles (tern_envelope_authorize) and every
 *     recipient's roles (tern_workflow_recipient_ok), from the table alone;
 *   - the sending node: the same, and the rules below against what it holds,
 *     before it seals;
 *   - each recipient: the rules below against its own records of the case
 *     (tern_workflow_judge), answering a violation with a negative receipt;
 *   - `tern audit replay`: the rules across the agencies' archives.
 *
 * Records. What a party knows of a message is a tern_wf_record, the protobuf
 * message tern.v1.WorkflowRecord (proto/tern/v1/workflow.proto, which says
 * what each field holds). The node keeps it in its "refs" table as protobuf
 * (a store of an older node holds the same fields as JSON objects, which
 * nodes/record.c reads); replay builds it from archives. Of a message: its
 * type, case_id, sender, to, value (the name of the row's state_field enum
 * value), ref (the message it cites) and root (its thread's start). On a
 * root also: state and last, the thread's state and the message that last
 * moved it by type; persons, the person ids of the thread's members; a stub
 * (a thread traced from its middle) its parties. A field missing (a record
 * written by an older node) turns off the rules that need it; value and
 * persons, whose empty value is a value, have a flag saying they are there.
 *
 * Records are protobuf-c messages allocated with malloc field by field, as
 * protobuf_c_message_unpack leaves them: tern_wf_record_free frees them. A
 * record built on the stack with borrowed strings is copied into that form
 * by tern_wf_record_copy.
 */
#ifndef TERN_WORKFLOW_H
#define TERN_WORKFLOW_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include <tern/msgtype.h>
#include <tern/reason.h>
#include <tern/v1/workflow.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tern_case_state {
	TERN_CASE_NONE = 0,
	TERN_CASE_REFERRED,
	TERN_CASE_INFO_REQUESTED,
	TERN_CASE_DEFERRED,
	TERN_CASE_ACCEPTED,
	TERN_CASE_REJECTED,
	TERN_CASE_BOOKED,
	TERN_CASE_DEPARTED,
	TERN_CASE_ARRIVED,
	TERN_CASE_CANCELLED,
	TERN_CASE_WITHDRAWN,
	TERN_CASE_HANDED_OVER,
	TERN_CASE_STATE_COUNT
} tern_case_state;

#define TERN_CASE_BIT(s) (1u << (s))

/* "referred", "info-requested", ... ("" for NONE). */
const char *tern_case_state_name(tern_case_state s);
/* TERN_ENOENT (and NONE) for an unknown name. */
int tern_case_state_parse(const char *name, tern_case_state *out);
/* A sentence on what the state means, for docs. */
const char *tern_case_state_description(tern_case_state s);

/* 1 if a node with these roles may receive messages of type t. */
int tern_workflow_recipient_ok(const tern_msgtype *t, unsigned roles);
/* 1 if one message of type t may go to n recipients. */
int tern_workflow_recipients_ok(const tern_msgtype *t, size_t n);

/* The message being judged: its header's facts and its opened body. A party
 * that cannot open the body (an auditor replaying audit logs) gives body NULL
 * and the facts the logs hold instead: value (the state field's enum name)
 * and ref (the cited message id); the rules on members are then skipped. */
typedef struct tern_wf_msg {
	const char *msgid;
	const tern_msgtype *type;
	const char *sender;
	const char *const *to;
	size_t nto;
	const char *case_id;
	const ProtobufCMessage *body;
	const char *value; /* body NULL only */
	const char *ref;   /* body NULL only */
} tern_wf_msg;

typedef Tern__V1__WorkflowRecord tern_wf_record;

/* A copy of r (which may borrow its strings) in the form above; NULL when out
 * of memory. */
tern_wf_record *tern_wf_record_copy(const tern_wf_record *r);
/* Frees *r and nulls it; NULL or *r NULL does nothing. */
void tern_wf_record_free(tern_wf_record **r);
/* The message id that last moved the thread of root record r by a message of
 * type (a type name), "" for none. */
const char *tern_wf_record_last(const tern_wf_record *r, const char *type);

/* Reads what the judging party knows of msgid: *rec is a new record the
 * caller frees, or the call returns TERN_ENOENT. */
typedef int (*tern_wf_lookup)(void *arg, const char *msgid, tern_wf_record **rec);

/* Records by message id, later ones replacing earlier: what `tern audit
 * replay` holds, and a node's batch before it writes them. Ids are message
 * ids (at most TERN_WF_ID_MAX bytes). */
#define TERN_WF_ID_MAX 36
typedef struct tern_wf_records tern_wf_records;
/* NULL when out of memory. */
tern_wf_records *tern_wf_records_new(void);
void tern_wf_records_free(tern_wf_records **s);
/* Room for n more records: that many puts of new ids cannot then fail for
 * memory. */
int tern_wf_records_reserve(tern_wf_records *s, size_t n);
/* Keeps *rec under id, freeing what it replaces. Takes *rec (NULL after,
 * either way). TERN_EINVAL for an id too long, TERN_ENOMEM. */
int tern_wf_records_put(tern_wf_records *s, const char *id, tern_wf_record **rec);
/* The record under id (still the set's), or NULL. */
const tern_wf_record *tern_wf_records_get(const tern_wf_records *s, const char *id);
size_t tern_wf_records_count(const tern_wf_records *s);
/* Calls fn for each record, in the order their ids were first kept; stops
 * at and returns fn's first error. */
int tern_wf_records_each(const tern_wf_records *s,
                         int (*fn)(const char *id, const tern_wf_record *rec, void *arg),
                         void *arg);
/* A tern_wf_lookup over the tern_wf_records arg: a copy of the record. */
int tern_wf_records_lookup(void *arg, const char *msgid, tern_wf_record **rec);

typedef struct tern_wf_verdict {
	tern_reason reason; /* TERN_REASON_NONE: the message may go on */
	char text[256];     /* why, naming message and person ids, never names */
	/* The reference is not held here, though this party must hold it to
	 * judge: the caller refuses (or holds) the message. reason is
	 * TERN_REASON_UNKNOWN_REFERENCE then. */
	int unknown_ref;
	tern_wf_record *record;      /* the message's own record, to keep under its id */
	char root[37];               /* the thread's root, when root_record is set */
	tern_wf_record *root_record; /* the root's record with the new state, or NULL */
} tern_wf_verdict;

/* Judges m as the party self (with roles) holding what get reads. as_sender
 * is 1 when self is m's sender (then an unknown reference is not checked:
 * the sender may know it from elsewhere), 0 when self is a recipient.
 * Returns TERN_OK with v filled (a violation is v->reason, not an error),
 * TERN_EINVAL for a bad argument, TERN_ENOMEM, or get's error other than
 * TERN_ENOENT (v then holds no record).
 * The caller owns v's records: tern_wf_verdict_clear frees them (or the
 * caller takes them, nulling the pointers). */
int tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned roles, int as_sender,
                        tern_wf_lookup get, void *arg, tern_wf_verdict *v);
void tern_wf_verdict_clear(tern_wf_verdict *v);

/* Calls fn for every move the table allows while a thread is in state s:
 * the type, its state field's value ("" for any) and the state it leads to
 * (s itself for a move that keeps the state). */
void tern_workflow_next(tern_case_state s,
                        void (*fn)(const tern_msgtype *t, const char *value, tern_case_state to,
                                   void *arg),
                        void *arg);

/* Writes the list of message types (name, schema, roles, purpose) as
 * markdown; docs/messages.md opens with it. */
int tern_workflow_describe_types(FILE *f);

/* Writes the workflow table (types, roles, references, members, transitions)
 * and the case states as markdown; docs/messages.md carries it. */
int tern_workflow_describe(FILE *f);

#ifdef __cplusplus
}
#endif
#endif

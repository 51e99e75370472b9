/* Message types: their CLI names, protobuf descriptors and the role that may send them. */
#ifndef TERN_MSGTYPE_H
#define TERN_MSGTYPE_H

#include <protobuf-c/protobuf-c.h>
#include <tern/v1/directory.pb-c.h>
#include <tern/v1/envelope.pb-c.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Role bits, as in the directory (tern.v1.Role). */
#define TERN_ROLE_REFERRER (1u << TERN__V1__ROLE__REFERRER)
#define TERN_ROLE_STATE (1u << TERN__V1__ROLE__STATE)
#define TERN_ROLE_MOVEMENT (1u << TERN__V1__ROLE__MOVEMENT)
#define TERN_ROLE_BROKER (1u << TERN__V1__ROLE__BROKER)

/* One past the highest tern.v1.MessageType value: per-type counters are
 * arrays of this size (a test checks every row's type is below it). */
#define TERN_MSGTYPE_MAX 16

/* A counter's index for type value t: t itself, 0 when out of range. */
static inline unsigned tern_msgtype_index(int t)
{
	return t > 0 && t < TERN_MSGTYPE_MAX ? (unsigned)t : 0;
}

/* A transition's to that keeps the thread in the state it is in: the
 * message may come in the states of from, and moves nothing. */
#define TERN_WF_KEEP (-1)

/* One move of a case thread (tern/workflow.h): a message whose state field
 * holds value (-1: any value, or no state field) may come while the thread is
 * in one of the states of from (TERN_CASE_BIT set), and puts it in to. */
typedef struct tern_wf_transition {
	int value;
	unsigned from;
	int to; /* tern_case_state or TERN_WF_KEEP; 0 ends a row's list */
} tern_wf_transition;

/* One row of the workflow table: everything Tern knows of a message type.
 * docs/messages.md's "The workflow" section is generated from the rows. */
typedef struct tern_msgtype {
	Tern__V1__MessageType type;
	const char *name;                       /* "case-referral" */
	const ProtobufCMessageDescriptor *desc; /* body schema */
	unsigned sender_roles;                  /* roles allowed to send it; 0 = any member */
	unsigned recipient_roles;               /* roles allowed to receive it; 0 = any member */
	unsigned max_recipients;                /* most recipients of one message; 0 = any */
	const char *purpose;                    /* a phrase, for docs */
	/* What it must cite: the body field (proto name) holding the message id
	 * of a message of type ref_type, of the same case, that the sender sent
	 * or received. A recipient with one of ref_holders' roles must hold it
	 * to judge the message. NULL: it cites nothing (a thread starts here). */
	const char *ref_field;
	Tern__V1__MessageType ref_type;
	unsigned ref_holders;
	/* The cited message's state field must hold this value (NULL: any). */
	const char *ref_value;
	/* Person ids it names, each a member of the thread's referral: a
	 * repeated string field, or "repeated_message_field.string_field".
	 * For a thread's first message: the members it defines. NULL: none. */
	const char *members_field;
	/* Changes to the thread's members (the root's "persons"): person ids
	 * this message adds to them, and ids it removes (paths as for
	 * members_field). Ids it removes must be members (list the same path
	 * as members_field); a person removed is no member for what follows. */
	const char *members_added;
	const char *members_removed;
	/* The enum field whose value chooses the transition; NULL: none. */
	const char *state_field;
	const tern_wf_transition *transitions; /* NULL: it moves no thread */
} tern_msgtype;

/* NULL when unknown. The returned entries are static. */
const tern_msgtype *tern_msgtype_by_name(const char *name);
const tern_msgtype *tern_msgtype_by_type(Tern__V1__MessageType type);
/* The table, terminated by an entry whose name is NULL. */
const tern_msgtype *tern_msgtype_all(void);

/* Writes the table's type names into buf, separated by sep ("case-referral,
 * acceptance-decision, ..."); business_only leaves out the receipt, which a
 * node writes itself and no agency system sends. Truncated to fit. */
void tern_msgtype_names(char *buf, size_t len, const char *sep, int business_only);

/* Role names: "referrer" | "state" | "movement" | "broker". */
int tern_role_parse(const char *name, unsigned *bit);
/* Comma-separated list ("referrer,state") into a bit set. */
int tern_roles_parse(const char *list, unsigned *bits);
/* Writes "referrer,state" into buf. */
void tern_roles_format(unsigned bits, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif

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

typedef struct tern_msgtype {
	Tern__V1__MessageType type;
	const char *name;                          /* "case-referral" */
	const ProtobufCMessageDescriptor *desc;    /* body schema */
	unsigned sender_roles;                     /* roles allowed to send it; 0 = any member */
} tern_msgtype;

/* NULL when unknown. The returned entries are static. */
const tern_msgtype *tern_msgtype_by_name(const char *name);
const tern_msgtype *tern_msgtype_by_type(Tern__V1__MessageType type);
/* The table, terminated by an entry whose name is NULL. */
const tern_msgtype *tern_msgtype_all(void);

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

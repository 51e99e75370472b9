/* What tern audit replay's files share (audit_replay.c reads the archives
 * and runs the checks; audit_replay_workflow.c judges each case's threads by
 * the workflow table). Internal to the CLI. */
#ifndef TERN_AUDIT_REPLAY_INT_H
#define TERN_AUDIT_REPLAY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "audit_archive.h"

/* A reply that has not come this long after its cause, while the log that
 * should hold it went on recording, is missing rather than late. */
#define RECEIPT_GRACE_MS 60000

typedef Tern__V1__AuditEntry entry;
#define K(x) TERN__V1__AUDIT_ENTRY__KIND__##x

struct ev {
	const audit_archive *ar;
	uint64_t index;
	const entry *e;
	uint64_t checkpoint; /* the first signed size that covers it; 0: none */
	const char *case_id; /* the entry's, or its message's */
};

struct log {
	const audit_archive *ar;
	uint64_t *sizes; /* checkpoint sizes, ascending */
	size_t nsizes;
	int64_t first_at, last_at;
};

struct finding {
	char kind[24];
	char case_id[129];
	char msgid[40];
	char *text;
	json_t *evidence; /* [{log, index, checkpoint}] */
};

struct replay {
	struct log *logs;
	size_t nlogs;
	struct ev *evs;
	size_t nevs;
	struct ev **bymsg; /* events with a message id, sorted by it */
	size_t nbymsg;
	struct ev **receipts; /* RECEIPT_SENT events, sorted by the message they answer */
	size_t nreceipts;
	struct finding *f;
	size_t nf;
	const char *only_case;
};

/* One finding per kind and message; later evidence joins the first. */
void find(struct replay *r, const char *kind, const struct ev *const *ev, size_t nev,
          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The owner (log id) of the archive v is in. */
const char *owner(const struct ev *v);
/* The directory member id names, NULL if none; 1 if id is a broker. */
const audit_member *member(const struct replay *r, const char *id);
int is_broker(const struct replay *r, const char *id);
/* The events of msgid (sorted by message id), *n of them; NULL if none. */
struct ev *const *group_find(const struct replay *r, const char *msgid, size_t *n);
/* A message's sender and type, from its events g[0..n). */
const char *sender_of(const struct replay *r, const struct ev *const *g, size_t n);
const char *type_of(const struct ev *const *g, size_t n);

/* audit_replay_workflow.c: judges every business message, in the order sent,
 * by the workflow table (tern/workflow.h), as an auditor holding every
 * archive, and reports each refusal as a finding named by its reason. */
void check_threads(struct replay *r);

/* audit_replay_attach.c: the attachments entries declare (docs/attachments.md).
 * The findings about them, by kind; the table in audit_replay_attach.c holds
 * each one's name and rule (docs/audit.md lists them as written there). */
enum att_finding { ATT_MISSING, ATT_MISMATCH, ATT_FINDING_COUNT };
const char *att_finding_kind(enum att_finding f);
/* An entry's attachments for the timeline (index, size, root and sha256 in
 * hex), NULL if it has none; att_print writes an event's as a line. */
json_t *att_json(const entry *e);
void att_print(const json_t *event);
/* The findings about the attachments of one message's events g[0..n). */
void check_attachments(struct replay *r, const struct ev *const *g, size_t n);

#endif

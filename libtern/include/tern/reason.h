/* Why something was refused: one enumerated table that the broker, the nodes,
 * the local and HTTP APIs and docs/protocol.md all read (libtern/src/reason.c).
 *
 * A reason's code is what travels: in a SubmitResult or Refused frame, in a
 * negative receipt, a dead-letter notice, an API answer's "error", a log line
 * and an audit entry. Codes are stable; a new reason gets a new code. The
 * errors of the library (tern_errcode_name) are the codes of its TERN_E*
 * values; a reason that comes from one (a signature that does not verify)
 * has the same code.
 */
#ifndef TERN_REASON_H
#define TERN_REASON_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tern_reason {
	TERN_REASON_NONE = 0,
	/* an envelope that does not verify (the broker, and again each recipient) */
	TERN_REASON_MALFORMED,
	TERN_REASON_TOO_LARGE,
	TERN_REASON_UNSUPPORTED_VERSION,
	TERN_REASON_BAD_SIGNATURE,
	TERN_REASON_UNKNOWN_SENDER,
	TERN_REASON_REVOKED_SENDER,
	TERN_REASON_DIGEST_MISMATCH,
	TERN_REASON_CLOCK_SKEW,
	TERN_REASON_EXPIRED,
	TERN_REASON_WRONG_ROLE,
	/* a submission the broker refuses */
	TERN_REASON_FORGED_SENDER,
	TERN_REASON_UNKNOWN_RECIPIENT,
	TERN_REASON_RECIPIENT_REVOKED,
	TERN_REASON_RECIPIENT_EXPIRED,
	TERN_REASON_DUPLICATE_ID,
	/* a frame or connection the broker refuses */
	TERN_REASON_HELLO_REQUIRED,
	TERN_REASON_OUT_OF_SEQUENCE,
	TERN_REASON_IDENTITY_MISMATCH,
	TERN_REASON_NOT_ADMITTED,
	TERN_REASON_BUSY,
	TERN_REASON_UNEXPECTED_FRAME,
	TERN_REASON_WRONG_EPOCH,
	TERN_REASON_TOO_MANY_FRAMES,
	/* a delivery the broker gives up (a dead letter) */
	TERN_REASON_MAX_ATTEMPTS,
	TERN_REASON_RECIPIENT_REMOVED,
	/* a delivery a recipient refuses (in its negative receipt) */
	TERN_REASON_NOT_A_RECIPIENT,
	TERN_REASON_CANNOT_OPEN,
	TERN_REASON_INVALID_BODY,
	TERN_REASON_CASE_MISMATCH,
	TERN_REASON_UNKNOWN_REFERRAL,
	TERN_REASON_UNKNOWN_DECISION,
	TERN_REASON_DECISION_NOT_ACCEPTED,
	TERN_REASON_UNKNOWN_MESSAGE,
	/* the case workflow (tern/workflow.h): the broker checks roles, the
	 * sending node and each recipient the rest */
	TERN_REASON_WRONG_RECIPIENT_ROLE,
	TERN_REASON_TOO_MANY_RECIPIENTS,
	TERN_REASON_UNKNOWN_REFERENCE,
	TERN_REASON_REFERENCE_NOT_SHARED,
	TERN_REASON_UNKNOWN_MEMBER,
	TERN_REASON_SUPERSEDED,
	TERN_REASON_WRONG_STATE,
	TERN_REASON_STATE_NOT_TOLD,
	TERN_REASON_CASE_BOOKED_ELSEWHERE,
	TERN_REASON_DECISION_NOT_RECEIVED,
	/* attachments (tern/attach.h): chunks and what they add up to */
	TERN_REASON_CHUNK_MISMATCH,
	TERN_REASON_ATTACHMENT_MISMATCH,
	TERN_REASON_ATTACHMENT_INCOMPLETE,
	TERN_REASON_ATTACHMENT_TOO_LARGE,
	TERN_REASON_UNKNOWN_TRANSFER,
	TERN_REASON_NO_SPACE,
	/* trust material a daemon refuses; a log a witness refuses to cosign */
	TERN_REASON_ROLLBACK,
	TERN_REASON_CONFLICT,
	TERN_REASON_FORK,
	TERN_REASON_BAD_PROOF,
	TERN_REASON_COUNT
} tern_reason;

typedef struct tern_reason_info {
	tern_reason reason;
	const char *code; /* "forged-sender" */
	const char *by;   /* who refuses: "broker", "recipient", "broker, recipient", "daemon",
	                   * "witness" */
	int http_status;  /* the HTTP API's status for an answer with this error */
	const char *description; /* a sentence, for docs/protocol.md and operators */
} tern_reason_info;

/* The table entry of r (never NULL: an unknown value gives the NONE entry). */
const tern_reason_info *tern_reason_info_of(tern_reason r);
/* r's code ("" for TERN_REASON_NONE). */
const char *tern_reason_code(tern_reason r);
/* The reason whose code is code; TERN_ENOENT (and NONE) when there is none. */
int tern_reason_from_code(const char *code, tern_reason *out);
/* The reason a library error stands for when it refuses something (a failed
 * verification: TERN_EBADSIG -> bad-signature); NONE for the others. */
tern_reason tern_reason_from_error(int code);
/* The HTTP status for an API answer's "error" code: a reason's, else a
 * library error's (not-found 404, io and no-memory 503, ...), else 400. */
int tern_reason_http_status(const char *code);
/* Writes the table as markdown (docs/protocol.md carries it). */
int tern_reason_describe(FILE *f);

#ifdef __cplusplus
}
#endif
#endif

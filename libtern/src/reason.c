#include <string.h>

#include <tern/error.h>
#include <tern/reason.h>

/* The one table: docs/protocol.md's "Reasons" section is generated from it
 * (tests/unit/test_reason.c checks they agree). */
static const tern_reason_info table[TERN_REASON_COUNT] = {
    [TERN_REASON_NONE] = {TERN_REASON_NONE, "", "", 200, "not refused"},
    [TERN_REASON_MALFORMED] = {TERN_REASON_MALFORMED, "malformed", "broker, recipient", 400,
                               "the bytes do not decode as the expected structure"},
    [TERN_REASON_TOO_LARGE] = {TERN_REASON_TOO_LARGE, "too-large", "broker, recipient", 413,
                               "over [limits] max_message_size"},
    [TERN_REASON_UNSUPPORTED_VERSION] = {TERN_REASON_UNSUPPORTED_VERSION, "unsupported-version",
                                         "broker, recipient", 400,
                                         "a schema or protocol version this party does not speak"},
    [TERN_REASON_BAD_SIGNATURE] = {TERN_REASON_BAD_SIGNATURE, "bad-signature", "broker, recipient",
                                   400,
                                   "the header's signature does not verify with the sender's "
                                   "certified key"},
    [TERN_REASON_UNKNOWN_SENDER] = {TERN_REASON_UNKNOWN_SENDER, "unknown-sender",
                                    "broker, recipient", 400,
                                    "the sender is not in the federation directory"},
    [TERN_REASON_REVOKED_SENDER] = {TERN_REASON_REVOKED_SENDER, "revoked-sender",
                                    "broker, recipient", 403,
                                    "the sender's certificate is on the CRL"},
    [TERN_REASON_DIGEST_MISMATCH] = {TERN_REASON_DIGEST_MISMATCH, "digest-mismatch",
                                     "broker, recipient", 400,
                                     "the sealed body is not the one the header's digest names"},
    [TERN_REASON_CLOCK_SKEW] = {TERN_REASON_CLOCK_SKEW, "clock-skew", "broker, recipient", 400,
                                "created further in the future than [federation] "
                                "max_clock_skew allows"},
    [TERN_REASON_EXPIRED] = {TERN_REASON_EXPIRED, "expired", "broker, recipient", 400,
                             "the message's time to live, or a certificate, ran out first"},
    [TERN_REASON_WRONG_ROLE] = {TERN_REASON_WRONG_ROLE, "wrong-role", "broker, recipient", 403,
                                "the sender's roles may not send this message type"},
    [TERN_REASON_FORGED_SENDER] = {TERN_REASON_FORGED_SENDER, "forged-sender", "broker", 403,
                                   "the header's sender is not the node that submitted it"},
    [TERN_REASON_UNKNOWN_RECIPIENT] = {TERN_REASON_UNKNOWN_RECIPIENT, "unknown-recipient",
                                       "broker, node", 400,
                                       "a recipient is not a member node of the directory"},
    [TERN_REASON_RECIPIENT_REVOKED] = {TERN_REASON_RECIPIENT_REVOKED, "recipient-revoked",
                                       "broker, node", 403,
                                       "a recipient is revoked: nothing is sealed or delivered "
                                       "to it, and what waited for it is dead-lettered"},
    [TERN_REASON_RECIPIENT_EXPIRED] = {TERN_REASON_RECIPIENT_EXPIRED, "recipient-expired", "broker",
                                       400, "a recipient's certificate has lapsed"},
    [TERN_REASON_DUPLICATE_ID] = {TERN_REASON_DUPLICATE_ID, "duplicate-id", "broker, recipient",
                                  409, "the message id was already used by another sender"},
    [TERN_REASON_HELLO_REQUIRED] = {TERN_REASON_HELLO_REQUIRED, "hello-required", "broker", 503,
                                    "the node must say Hello (again) and resubmit what is "
                                    "unanswered"},
    [TERN_REASON_OUT_OF_SEQUENCE] = {TERN_REASON_OUT_OF_SEQUENCE, "out-of-sequence", "broker", 503,
                                     "a submission came out of its session's order; the node "
                                     "says Hello and resubmits"},
    [TERN_REASON_IDENTITY_MISMATCH] = {TERN_REASON_IDENTITY_MISMATCH, "identity-mismatch", "broker",
                                       403, "a Hello's node id is not the authenticated one"},
    [TERN_REASON_NOT_ADMITTED] = {TERN_REASON_NOT_ADMITTED, "not-admitted", "broker", 403,
                                  "the member is no longer admitted (revoked, removed, or its "
                                  "certificate lapsed) since its handshake"},
    [TERN_REASON_BUSY] = {TERN_REASON_BUSY, "busy", "broker, node", 503,
                          "a limit is reached for now; try again"},
    [TERN_REASON_UNEXPECTED_FRAME] = {TERN_REASON_UNEXPECTED_FRAME, "unexpected-frame", "broker",
                                      400, "a frame a node may not send"},
    [TERN_REASON_WRONG_EPOCH] = {TERN_REASON_WRONG_EPOCH, "wrong-epoch", "broker", 400,
                                 "an acknowledgement for another start of the broker"},
    [TERN_REASON_TOO_MANY_FRAMES] = {TERN_REASON_TOO_MANY_FRAMES, "too-many-frames", "broker", 400,
                                     "a message of more than one frame"},
    [TERN_REASON_MAX_ATTEMPTS] = {TERN_REASON_MAX_ATTEMPTS, "max-attempts", "broker", 410,
                                  "dead-lettered: not acknowledged after [delivery] "
                                  "max_attempts deliveries"},
    [TERN_REASON_RECIPIENT_REMOVED] = {TERN_REASON_RECIPIENT_REMOVED, "recipient-removed", "broker",
                                       410,
                                       "dead-lettered: the recipient was removed from the "
                                       "directory before it took the message"},
    [TERN_REASON_NOT_A_RECIPIENT] = {TERN_REASON_NOT_A_RECIPIENT, "not-a-recipient", "recipient",
                                     400,
                                     "the node that got the message is not among its "
                                     "recipients"},
    [TERN_REASON_CANNOT_OPEN] = {TERN_REASON_CANNOT_OPEN, "cannot-open", "recipient", 400,
                                 "the sealed body does not open with the recipient's key"},
    [TERN_REASON_INVALID_BODY] = {TERN_REASON_INVALID_BODY, "invalid-body", "node, recipient", 400,
                                  "the body breaks the rules of docs/messages.md"},
    [TERN_REASON_CASE_MISMATCH] = {TERN_REASON_CASE_MISMATCH, "case-mismatch", "recipient", 400,
                                   "the header's case id is not the body's, or a referenced "
                                   "message is for another case"},
    [TERN_REASON_UNKNOWN_REFERRAL] = {TERN_REASON_UNKNOWN_REFERRAL, "unknown-referral", "recipient",
                                      400,
                                      "a decision names a referral the referrer never sent, or "
                                      "one that is not a referral"},
    [TERN_REASON_UNKNOWN_DECISION] = {TERN_REASON_UNKNOWN_DECISION, "unknown-decision", "recipient",
                                      400,
                                      "a travel confirmation names a decision the State never "
                                      "made, or one that is not a decision"},
    [TERN_REASON_DECISION_NOT_ACCEPTED] = {TERN_REASON_DECISION_NOT_ACCEPTED,
                                           "decision-not-accepted", "recipient", 409,
                                           "travel for a case whose decision did not accept it"},
    [TERN_REASON_UNKNOWN_MESSAGE] = {TERN_REASON_UNKNOWN_MESSAGE, "unknown-message", "recipient",
                                     404,
                                     "a receipt for a message this node never sent to its "
                                     "sender"},
    [TERN_REASON_WRONG_RECIPIENT_ROLE] = {TERN_REASON_WRONG_RECIPIENT_ROLE, "wrong-recipient-role",
                                          "broker, node", 403,
                                          "a recipient's roles may not receive this message "
                                          "type (docs/messages.md, \"The workflow\")"},
    [TERN_REASON_TOO_MANY_RECIPIENTS] = {TERN_REASON_TOO_MANY_RECIPIENTS, "too-many-recipients",
                                         "broker, node", 400,
                                         "more recipients than the type allows: a referral goes "
                                         "to one State (refer the case again to another)"},
    [TERN_REASON_UNKNOWN_REFERENCE] = {TERN_REASON_UNKNOWN_REFERENCE, "unknown-reference",
                                       "recipient", 400,
                                       "the message cites one this recipient must hold to "
                                       "judge it, and does not"},
    [TERN_REASON_REFERENCE_NOT_SHARED] = {TERN_REASON_REFERENCE_NOT_SHARED, "reference-not-shared",
                                          "node, recipient", 403,
                                          "the message cites one its sender neither sent nor "
                                          "received (a State decides only on a case referred "
                                          "to it)"},
    [TERN_REASON_UNKNOWN_MEMBER] = {TERN_REASON_UNKNOWN_MEMBER, "unknown-member", "node, recipient",
                                    400,
                                    "the message names a person who is not a member of the "
                                    "case's referral"},
    [TERN_REASON_STATE_NOT_TOLD] = {TERN_REASON_STATE_NOT_TOLD, "state-not-told", "node", 400,
                                    "a case update must go to the State its referral went to, "
                                    "while the directory admits it (and to IOM if IOM is to "
                                    "know)"},
    [TERN_REASON_CASE_BOOKED_ELSEWHERE] = {TERN_REASON_CASE_BOOKED_ELSEWHERE,
                                           "case-booked-elsewhere", "node", 409,
                                           "IOM books a case on one referral at a time: it is "
                                           "booked on another (cancel that travel first), or "
                                           "the family travelled on one"},
    [TERN_REASON_DECISION_NOT_RECEIVED] = {TERN_REASON_DECISION_NOT_RECEIVED,
                                           "decision-not-received", "node", 409,
                                           "IOM's node books travel only on a decision it has "
                                           "received and accepted, so that it can hold the "
                                           "case to one referral: wait for it, or ask the "
                                           "State to send it to IOM too"},
    [TERN_REASON_SUPERSEDED] = {TERN_REASON_SUPERSEDED, "superseded", "node, recipient", 409,
                                "the message cites a decision (or other message) that a later "
                                "one of its kind replaced"},
    [TERN_REASON_WRONG_STATE] = {TERN_REASON_WRONG_STATE, "wrong-state", "node, recipient", 409,
                                 "the case is in a state this message may not follow (a "
                                 "decision after a rejection, a departure before a booking)"},
    [TERN_REASON_CHUNK_MISMATCH] = {TERN_REASON_CHUNK_MISMATCH, "chunk-mismatch",
                                    "broker, recipient", 422,
                                    "an attachment chunk of the wrong length, or whose hash "
                                    "is not under its signed seal (altered, swapped or "
                                    "moved from another message)"},
    [TERN_REASON_ATTACHMENT_MISMATCH] = {TERN_REASON_ATTACHMENT_MISMATCH, "attachment-mismatch",
                                         "node, recipient", 422,
                                         "an attachment whose bytes do not have the SHA-256 "
                                         "or size its message declares, or declarations "
                                         "that do not match the signed seals"},
    [TERN_REASON_ATTACHMENT_INCOMPLETE] = {TERN_REASON_ATTACHMENT_INCOMPLETE,
                                           "attachment-incomplete", "recipient", 410,
                                           "the message expired before all of its "
                                           "attachments' chunks arrived"},
    [TERN_REASON_ATTACHMENT_TOO_LARGE] = {TERN_REASON_ATTACHMENT_TOO_LARGE, "attachment-too-large",
                                          "node, broker, recipient", 413,
                                          "an attachment over [limits] max_attachment_size, "
                                          "or a message's over max_message_attachments"},
    [TERN_REASON_UNKNOWN_TRANSFER] = {TERN_REASON_UNKNOWN_TRANSFER, "unknown-transfer", "broker",
                                      404,
                                      "chunks for a message the broker holds no attachments "
                                      "of, or not from or for this node"},
    [TERN_REASON_NO_SPACE] = {TERN_REASON_NO_SPACE, "no-space", "node, broker", 507,
                              "the disk is full: the chunk was not taken and will be put "
                              "again when there is room"},
    [TERN_REASON_ROLLBACK] = {TERN_REASON_ROLLBACK, "rollback", "daemon, witness", 409,
                              "a CRL or directory older than the one in force, or an audit "
                              "log shorter than one already cosigned"},
    [TERN_REASON_CONFLICT] = {TERN_REASON_CONFLICT, "conflict", "witness", 409,
                              "a consistency proof from another size than the one this "
                              "witness last cosigned (the log owner proves again from it)"},
    [TERN_REASON_FORK] = {TERN_REASON_FORK, "fork", "witness", 409,
                          "a log of the size already cosigned with another root: its "
                          "history was rewritten"},
    [TERN_REASON_BAD_PROOF] = {TERN_REASON_BAD_PROOF, "bad-proof", "witness", 400,
                               "a consistency proof that does not link the cosigned head to "
                               "the new one"},
};

/* Library errors' codes that reasons share, and the HTTP status of the
 * others when an API answer carries them. */
static const struct {
	int err;
	tern_reason reason;
	int http_status;
} errors[] = {
    {TERN_EMALFORMED, TERN_REASON_MALFORMED, 400},
    {TERN_ETOOBIG, TERN_REASON_TOO_LARGE, 413},
    {TERN_EVERSION, TERN_REASON_UNSUPPORTED_VERSION, 400},
    {TERN_EBADSIG, TERN_REASON_BAD_SIGNATURE, 400},
    {TERN_EUNKNOWN, TERN_REASON_UNKNOWN_SENDER, 400},
    {TERN_EREVOKED, TERN_REASON_REVOKED_SENDER, 403},
    {TERN_ENOTRCPT, TERN_REASON_NOT_A_RECIPIENT, 400},
    {TERN_EDIGEST, TERN_REASON_DIGEST_MISMATCH, 400},
    {TERN_ESKEW, TERN_REASON_CLOCK_SKEW, 400},
    {TERN_EDECRYPT, TERN_REASON_CANNOT_OPEN, 400},
    {TERN_EEXPIRED, TERN_REASON_EXPIRED, 400},
    {TERN_EINVALID, TERN_REASON_INVALID_BODY, 400},
    {TERN_EROLE, TERN_REASON_WRONG_ROLE, 403},
    {TERN_ENOENT, TERN_REASON_NONE, 404},
    {TERN_EIO, TERN_REASON_NONE, 503},
    {TERN_ENOMEM, TERN_REASON_NONE, 503},
    {TERN_EEXIST, TERN_REASON_NONE, 409},
    {TERN_EPERM, TERN_REASON_NONE, 403},
};

const tern_reason_info *tern_reason_info_of(tern_reason r)
{
	if ((int)r < 0 || r >= TERN_REASON_COUNT || table[r].code == NULL)
		return &table[TERN_REASON_NONE];
	return &table[r];
}

const char *tern_reason_code(tern_reason r)
{
	return tern_reason_info_of(r)->code;
}

int tern_reason_from_code(const char *code, tern_reason *out)
{
	*out = TERN_REASON_NONE;
	if (code == NULL || code[0] == '\0')
		return TERN_ENOENT;
	for (int r = 1; r < TERN_REASON_COUNT; r++)
		if (table[r].code && strcmp(table[r].code, code) == 0) {
			*out = (tern_reason)r;
			return TERN_OK;
		}
	return TERN_ENOENT;
}

tern_reason tern_reason_from_error(int code)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].err == code)
			return errors[i].reason;
	return TERN_REASON_NONE;
}

int tern_reason_http_status(const char *code)
{
	tern_reason r;

	if (tern_reason_from_code(code, &r) == TERN_OK)
		return table[r].http_status;
	for (size_t i = 0; code && i < sizeof(errors) / sizeof(errors[0]); i++)
		if (strcmp(tern_errcode_name(errors[i].err), code) == 0)
			return errors[i].http_status;
	return 400;
}

int tern_reason_describe(FILE *f)
{
	fputs("| code | refused by | HTTP | meaning |\n|---|---|---|---|\n", f);
	for (int r = 1; r < TERN_REASON_COUNT; r++)
		fprintf(f, "| `%s` | %s | %d | %s |\n", table[r].code, table[r].by,
		        table[r].http_status, table[r].description);
	return ferror(f) ? TERN_EIO : TERN_OK;
}

/* Delivery: what the broker delivers (envelopes and dead-letter notices) is
 * judged by the recipient's checks (docs/protocol.md) and added to the
 * batch, with the receipt owed to its sender.
 *
 * Judging (node_judge_envelope) reads the store and the batch and writes
 * nothing, so that it can run without a node; node_on_deliver adds to the
 * batch's dins and outs. The write is commit.c's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/validate.h>
#include <tern/workflow.h>

#include "node_int.h"
#include "pbuf.h"
#include "util.h"

int node_wf_lookup(void *arg, const char *msgid, tern_wf_record **rec)
{
	const struct node_wf_view *w = arg;

	/* A reference may point at a message of this very batch. */
	if (w->j->batch && tern_wf_records_get(w->j->batch->wf, msgid))
		return tern_wf_records_lookup(w->j->batch->wf, msgid, rec);
	if (w->txn == NULL) /* a caller that judged a type citing nothing */
		return tern_fail(TERN_EINVAL, "no transaction to read %s in", msgid);
	return node_store_ref(w->txn, w->j->store, msgid, rec);
}

int node_wf_keep(node *n, const char *msgid, tern_wf_record **rec, const char *root,
                 tern_wf_record **rootrec)
{
	struct batch *b = &n->batch;
	int rc = TERN_OK;

	/* Both or neither: a message's record without its case root's (or the
	 * other way round) would be written as a state the case never had. Room
	 * for both first, so that neither put can fail for memory. */
	if (b->wf == NULL && (b->wf = tern_wf_records_new()) == NULL)
		rc = TERN_ENOMEM;
	else if (strlen(msgid) > TERN_WF_ID_MAX || (root && strlen(root) > TERN_WF_ID_MAX))
		rc = tern_fail(TERN_EINVAL, "a workflow record id longer than a message id");
	else
		rc = tern_wf_records_reserve(b->wf, 2);
	if (rc == TERN_OK && *rec)
		rc = tern_wf_records_put(b->wf, msgid, rec);
	if (rc == TERN_OK && rootrec && *rootrec && root && root[0])
		rc = tern_wf_records_put(b->wf, root, rootrec);
	tern_wf_record_free(rec);
	if (rootrec)
		tern_wf_record_free(rootrec);
	return rc;
}

void node_din_clear(struct din *d)
{
	free(d->env);
	free(d->atts);
	tern_wf_record_free(&d->wf);
	tern_wf_record_free(&d->wf_rootrec);
	memset(d, 0, sizeof(*d));
}

/* 1: a receipt to sender can never be sealed, as the directory in force
 * stands: it is no member, or revoked, or its certificate has lapsed. */
static int receipt_unsealable(const node *n, const char *sender)
{
	const tern_member *m;

	return tern_directory_find(n->id.dir, sender, &m) != TERN_OK || m->revoked ||
	       tern_member_expired(m, tern_now_ms() / 1000);
}

int node_din_take(node *n, struct din *d, const uint8_t *env, size_t len)
{
	struct batch *b = &n->batch;
	int rc, owed = 0;

	/* No receipt for a receipt, nor to a sender we cannot name. */
	if ((d->kind == DIN_ACCEPT || d->kind == DIN_REFUSE) && d->msgid[0] && d->sender[0] &&
	    strcmp(d->type, "receipt") != 0) {
		rc = node_owe_receipt(n, d, env, len);
		/* Taken without it only when its addressee can never have one: the
		 * sender revoked, lapsed or removed since it sent. Waiting then
		 * would block every delivery behind this one. Any other failure
		 * (memory; this node's own entry revoked, lapsed or not matching
		 * its key) holds the delivery back: taken, its sender would never
		 * hear of it, not even by the broker's dead letter. */
		if (rc != TERN_OK && !receipt_unsealable(n, d->sender))
			return rc;
		owed = rc == TERN_OK;
	}
	if (d->kind == DIN_ACCEPT &&
	    (rc = node_wf_keep(n, d->msgid, &d->wf, d->wf_root, &d->wf_rootrec)) != TERN_OK) {
		if (owed)
			node_out_free(&b->outs[--b->nouts]);
		return rc;
	}
	return TERN_OK;
}

/* 0: msgid is new; 1: it came before (this batch or the store); 2: it came
 * before from another sender than the one given (NULL: any sender will do);
 * -1: no memory to tell (the delivery is left for later). */
static int seen_before(const node_judge *j, MDB_txn *txn, const char *msgid, const char *sender)
{
	const struct batch *b = j->batch;
	node_recv_rec *rec = NULL;
	int seen, rc;

	for (size_t i = 0; i < b->ndins; i++)
		if (b->dins[i].msgid[0] && strcmp(b->dins[i].msgid, msgid) == 0 &&
		    (b->dins[i].kind == DIN_ACCEPT || b->dins[i].kind == DIN_REFUSE))
			return sender && strcmp(b->dins[i].sender, sender) != 0 ? 2 : 1;
	for (size_t i = 0; !j->releasing && i < b->ndins; i++)
		if (b->dins[i].kind == DIN_HOLD && strcmp(b->dins[i].msgid, msgid) == 0)
			return sender && strcmp(b->dins[i].sender, sender) != 0 ? 2 : 1;
	/* Held: the sender is the envelope's, checked when it was held. */
	if (!j->releasing && node_store_held_has(txn, j->store, msgid))
		return 1;
	/* A transfer under way: the same (its end judges it, xfer_done). */
	for (size_t i = 0; !j->xfer_done && i < b->ndins; i++)
		if (b->dins[i].kind == DIN_XFER && strcmp(b->dins[i].msgid, msgid) == 0)
			return sender && strcmp(b->dins[i].sender, sender) != 0 ? 2 : 1;
	if (!j->xfer_done && node_store_xin_has(txn, j->store, msgid))
		return 1;
	rc = node_store_recv_rec(txn, j->store, msgid, &rec);
	/* No memory to decode it: the record is there (the lookup found it),
	 * only its sender is unknown. Taken as new, a redelivery would be
	 * taken and answered again (a second inbox entry; on a last try
	 * refused no-memory, a verdict contradicting the first receipt), and a
	 * message under another sender's id would overwrite the first one's
	 * record. So: later; on the last try, seen (a reused id then goes
	 * unanswered as a redelivery, its audit entry as a duplicate lost). */
	if (rc == TERN_ENOMEM)
		return j->nomem_final ? 1 : -1;
	if (rc != TERN_OK)
		return 0;
	seen = sender && strcmp(rec->sender, sender) != 0 ? 2 : 1;
	node_rec_recv_free(&rec);
	return seen;
}

static void refuse(struct din *d, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct din *d, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->kind = DIN_REFUSE;
	snprintf(d->code, sizeof(d->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
	va_end(ap);
}

/* Whether one more delivery from sender may be held: what earlier commits
 * hold and what this batch holds count alike. A held message judged again
 * (j->releasing) is counted already: it keeps its place. */
static int hold_room(const node_judge *j, const char *sender, size_t len)
{
	size_t all = json_object_size(j->held), from = node_held_from(j->held, sender);
	size_t all_bytes, from_bytes = node_held_bytes(j->held, sender, &all_bytes);

	if (j->releasing)
		return 1;
	for (size_t i = 0; j->batch && i < j->batch->ndins; i++)
		if (j->batch->dins[i].kind == DIN_HOLD) {
			int same = strcmp(j->batch->dins[i].sender, sender) == 0;
			all++;
			from += same;
			all_bytes += j->batch->dins[i].len;
			from_bytes += same ? j->batch->dins[i].len : 0;
		}
	return !j->hold_full && all < NODE_HELD_MAX && from < NODE_HELD_PER_SENDER &&
	       all_bytes + len <= NODE_HELD_BYTES && from_bytes + len <= NODE_HELD_BYTES_PER_SENDER;
}

/* rc a shortage: no verdict, the delivery left for later (DIN_NOMEM); on
 * the last try (nomem_final) refused no-memory in words of its own (the
 * library leaves no detail with every shortage, and an older error's text
 * must not go into a receipt). 1 if so. */
static int shortage(const node_judge *j, struct din *d, int rc, const char *what)
{
	if (rc != TERN_ENOMEM)
		return 0;
	if (!j->nomem_final)
		d->kind = DIN_NOMEM;
	else
		refuse(d, tern_errcode_name(rc), "out of memory %s, on every try for %d s", what,
		       TERN_NOMEM_SPAN_MS / 1000);
	return 1;
}

/* A message with attachments: its declarations match its signed seals,
 * within this node's limits. 0 when refused (d says why) or left for later
 * (DIN_NOMEM). */
static int check_attachments(const node_judge *j, const Tern__V1__Header *h,
                             const ProtobufCMessage *body, struct din *d)
{
	char why[200];
	int rc;

	if (tern_attach_seals_check((const Tern__V1__AttachmentSeal *const *)h->attachments,
	                            h->n_attachments, j->att_max, j->att_total) != TERN_OK) {
		refuse(d, tern_reason_code(TERN_REASON_ATTACHMENT_TOO_LARGE), "%s",
		       tern_errdetail());
		return 0;
	}
	rc = node_atts_of(h, body, &d->atts, &d->natts, why, sizeof(why));
	if (shortage(j, d, rc, "reading its attachments"))
		return 0;
	if (rc != TERN_OK) {
		refuse(d, tern_reason_code(TERN_REASON_ATTACHMENT_MISMATCH), "%s", why);
		return 0;
	}
	return 1;
}

/* Whether held msgid was judged again in this batch (a release, accepted or
 * refused): n->held keeps it until the commit, but it waits no more. */
static int released_here(const node_judge *j, const char *msgid)
{
	for (size_t i = 0; j->batch && i < j->batch->ndins; i++)
		if (j->batch->dins[i].unhold && strcmp(j->batch->dins[i].msgid, msgid) == 0)
			return 1;
	return 0;
}

/* The id of a message held here from sender that cites ref too, or NULL: a
 * later message of the same sender citing the same one waits behind it, so
 * that the two are judged in the order they were sent. One released in this
 * batch is judged already: what follows it is judged after it, at once. */
static const char *held_sibling(const node_judge *j, const char *sender, const char *ref)
{
	const char *id;
	json_t *h;

	if (j->releasing || ref[0] == '\0')
		return NULL;
	for (size_t i = 0; j->batch && i < j->batch->ndins; i++) /* held in this turn */
		if (j->batch->dins[i].kind == DIN_HOLD &&
		    strcmp(j->batch->dins[i].sender, sender) == 0 &&
		    strcmp(j->batch->dins[i].ref, ref) == 0)
			return j->batch->dins[i].msgid;
	if (j->held == NULL)
		return NULL;
	json_object_foreach((json_t *)j->held, id, h)
	{
		const char *hs = json_string_value(json_object_get(h, "sender"));
		const char *hr = json_string_value(json_object_get(h, "ref"));
		if (hs && hr && strcmp(hs, sender) == 0 && strcmp(hr, ref) == 0 &&
		    !released_here(j, id))
			return id;
	}
	return NULL;
}

int node_refused_here(const node_judge *j, MDB_txn *txn, const char *msgid, int *refused,
                      char code[64])
{
	node_recv_rec *rec = NULL;
	int rc;

	*refused = 0;
	for (size_t i = 0; j->batch && i < j->batch->ndins; i++)
		if (j->batch->dins[i].kind == DIN_REFUSE &&
		    strcmp(j->batch->dins[i].msgid, msgid) == 0) {
			snprintf(code, 64, "%s", j->batch->dins[i].code);
			*refused = 1;
			return TERN_OK;
		}
	rc = node_store_recv_rec(txn, j->store, msgid, &rec);
	if (rc == TERN_ENOMEM)
		return rc;
	if (rc != TERN_OK)
		return TERN_OK; /* not received (or a damaged record: as not received) */
	*refused = !rec->accepted;
	snprintf(code, 64, "%s", rec->reason_code);
	node_rec_recv_free(&rec);
	return TERN_OK;
}

/* The recipient's checks (docs/protocol.md) on an opened business message:
 * its rules, then the workflow's against what this node holds of the case. */
static void check_body(const node_judge *j, MDB_txn *txn, const tern_envelope *env, size_t envlen,
                       const tern_msgtype *t, const ProtobufCMessage *body, struct din *d)
{
	const Tern__V1__Header *h = tern_envelope_header(env);
	struct node_wf_view w = {j, txn};
	tern_wf_msg m = {.msgid = h->message_id,
	                 .type = t,
	                 .sender = h->sender,
	                 .to = (const char *const *)h->recipients,
	                 .nto = h->n_recipients,
	                 .case_id = h->case_id,
	                 .body = body};
	tern_violations viol;
	tern_wf_verdict v;
	int rc;

	rc = tern_validate(body, tern_now_ms(), &viol);
	if (shortage(j, d, rc, "checking its body"))
		return;
	if (rc != TERN_OK) {
		refuse(d, tern_reason_code(TERN_REASON_INVALID_BODY), "%s: %s",
		       viol.count ? viol.v[0].path : "",
		       viol.count ? viol.v[0].rule : "does not validate");
		return;
	}
	if (strcmp(node_field_string(body, "case_id"), h->case_id) != 0) {
		refuse(d, tern_reason_code(TERN_REASON_CASE_MISMATCH),
		       "header case id differs from the body's caseId");
		return;
	}
	if ((rc = tern_workflow_judge(&m, j->self, j->roles, 0, node_wf_lookup, &w, &v)) ==
	        TERN_ENOMEM &&
	    !j->nomem_final) {
		d->kind = DIN_NOMEM;
		return;
	}
	if (rc != TERN_OK) {
		/* A store that cannot be read: refused, and said why; the sender
		 * may send again once the operator has seen to it. */
		refuse(d, tern_errcode_name(rc), "cannot read this node's records of the case: %s",
		       tern_errdetail());
		return;
	}
	snprintf(d->ref, sizeof(d->ref), "%s", v.record->ref);
	if (t->state_field) /* in the audit entry: what replay judges the thread by */
		snprintf(d->outcome, sizeof(d->outcome), "%s", v.record->value);
	if (v.unknown_ref && (tern_msgtype_by_type(t->ref_type)->sender_roles & j->roles) &&
	    !(tern_msgtype_by_type(t->ref_type)->recipient_roles & j->roles)) {
		/* What it cites is of a type this node sends, not one it is sent:
		 * had this node sent it, it would hold it (a send is recorded
		 * before it leaves), so it will not arrive. Refused at once, not
		 * held a day while its sender sees it at-broker (a new user's
		 * finding: a State's decision on a made-up referral). A member
		 * with two roles that is also sent the type (portugal, referrer
		 * and state: another State's decision comes to it as referrer)
		 * holds it as any recipient does: it may come yet. "No record",
		 * not "never sent": a node put back from a copy may have sent it
		 * after the copy was taken (docs/operations.md, restores). */
		refuse(d, tern_reason_code(v.reason),
		       "it cites %s (%s), which this node has no record of sending", v.record->ref,
		       tern_msgtype_by_type(t->ref_type)->name);
		tern_wf_verdict_clear(&v);
		return;
	}
	if (v.unknown_ref) {
		/* Not held for what this node refused: that never comes (a review
		 * found a booking citing a refused decision held a day). */
		char code[64];
		int refused = 0;
		rc = node_refused_here(j, txn, v.record->ref, &refused, code);
		if (shortage(j, d, rc, "reading what it cites")) {
			tern_wf_verdict_clear(&v);
			return;
		}
		if (refused) {
			refuse(d, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE),
			       "it cites %s, which this node refused (%s)", v.record->ref,
			       code[0] ? code : "refused");
			tern_wf_verdict_clear(&v);
			return;
		}
	}
	if (!v.unknown_ref) {
		/* What it cites is here now, but an earlier message of its sender
		 * that cites it too is still held (its release comes at the next
		 * tick): this one waits behind it, whatever it would be judged now,
		 * and is judged after it. A departure report arriving with the
		 * decision must not be judged before the booking held for that
		 * decision. */
		const char *before = held_sibling(j, h->sender, v.record->ref);
		if (before && hold_room(j, h->sender, envlen)) {
			d->kind = DIN_HOLD;
			d->hold_until = tern_now_ms() + j->hold_ms;
			snprintf(d->code, sizeof(d->code), "%s",
			         tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
			snprintf(d->text, sizeof(d->text), "held behind %s, which cites %s too",
			         before, v.record->ref);
			d->behind = 1;
			tern_wf_verdict_clear(&v);
			return;
		}
		if (before) {
			/* No room to wait: refused, not judged out of order. Judged
			 * now, a cancellation overtaking its sender's held booking
			 * would be accepted and the booking after it, leaving the
			 * case booked where the sender cancelled. */
			refuse(d, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE),
			       "it must wait behind %s, which cites %s too, and this node holds as "
			       "many messages waiting as it may (%d or %u MiB in all, %d or %u MiB "
			       "from one sender)",
			       before, v.record->ref, NODE_HELD_MAX, NODE_HELD_BYTES >> 20,
			       NODE_HELD_PER_SENDER, NODE_HELD_BYTES_PER_SENDER >> 20);
			tern_wf_verdict_clear(&v);
			return;
		}
	}
	if (v.unknown_ref && hold_room(j, h->sender, envlen)) {
		/* It may have been sent before what it cites reached us: held. */
		d->kind = DIN_HOLD;
		d->hold_until = tern_now_ms() + j->hold_ms;
		snprintf(d->code, sizeof(d->code), "%s",
		         tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
		snprintf(d->text, sizeof(d->text), "%s", v.text);
		tern_wf_verdict_clear(&v);
		return;
	}
	if (v.unknown_ref) {
		refuse(d, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE),
		       "%s, and this node holds as many messages waiting as it may (%d or %u MiB "
		       "in all, %d or %u MiB from one sender)",
		       v.text, NODE_HELD_MAX, NODE_HELD_BYTES >> 20, NODE_HELD_PER_SENDER,
		       NODE_HELD_BYTES_PER_SENDER >> 20);
		tern_wf_verdict_clear(&v);
		return;
	}
	if (v.reason != TERN_REASON_NONE) {
		refuse(d, tern_reason_code(v.reason), "%s", v.text);
		tern_wf_verdict_clear(&v);
		return;
	}
	d->wf = v.record;
	d->wf_rootrec = v.root_record;
	snprintf(d->wf_root, sizeof(d->wf_root), "%s", v.root);
}

void node_judge_of(node *n, node_judge *j)
{
	*j = (node_judge){.dir = n->id.dir,
	                  .self = n->id.id,
	                  .roles = n->id.self->roles,
	                  .seal = n->id.seal,
	                  .seals = n->seals,
	                  .sigs = n->sigs,
	                  .store = n->store,
	                  .batch = &n->batch,
	                  .max_msg = (size_t)n->max_msg,
	                  .skew_ms = n->skew_ms,
	                  .hold_ms = n->hold_ms,
	                  .hold_full = node_held_count(n) >= NODE_HELD_MAX,
	                  .held = n->held,
	                  .att_max = (uint64_t)n->att_max,
	                  .att_total = (uint64_t)n->att_total};
}

void node_judge_envelope(const node_judge *j, MDB_txn *txn, const uint8_t *buf, size_t len,
                         struct din *d)
{
	tern_verify_opts o = {.max_size = j->max_msg,
	                      .max_skew_ms = j->skew_ms,
	                      .future_skew_only = 1,
	                      .sigcache = j->sigs};
	tern_envelope *env = NULL;
	const Tern__V1__Header *h;
	const tern_msgtype *t;
	ProtobufCMessage *body = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0;
	int rc, mine = 0;

	d->kind = DIN_ACCEPT;
	rc = tern_envelope_verify(buf, len, j->dir, &o, &env);
	if (rc == TERN_ENOMEM && !j->nomem_final) {
		d->kind = DIN_NOMEM;
		return;
	}
	if (rc == TERN_ENOMEM)
		/* The last try: said in words of its own, for the library leaves
		 * no detail with every shortage (an older error's text, perhaps
		 * about another member's message, must not go into a receipt). */
		tern_fail(rc, "out of memory verifying it, on every try for %d s",
		          TERN_NOMEM_SPAN_MS / 1000);
	if (rc != TERN_OK) {
		/* Unverified: still answer the claimed sender, if it is a member.
		 * Decoded within the same bounds as the broker's (envelope.h). */
		tern_envelope_claim c;
		const tern_member *m;
		if (tern_envelope_claims(buf, len, &c) == TERN_OK && c.message_id[0] &&
		    c.sender[0] && tern_directory_find(j->dir, c.sender, &m) == TERN_OK) {
			snprintf(d->msgid, sizeof(d->msgid), "%s", c.message_id);
			snprintf(d->sender, sizeof(d->sender), "%s", c.sender);
			snprintf(d->case_id, sizeof(d->case_id), "%s", c.case_id);
		}
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		switch (d->msgid[0] ? seen_before(j, txn, d->msgid, NULL) : 0) {
		case -1:
			d->kind = DIN_NOMEM;
			break;
		case 1:
		case 2:
			d->kind = DIN_NOTHING;
			break;
		}
		return;
	}
	h = tern_envelope_header(env);
	t = tern_msgtype_by_type(h->type);
	d->sealed_atts = h->n_attachments;
	snprintf(d->msgid, sizeof(d->msgid), "%s", h->message_id);
	snprintf(d->sender, sizeof(d->sender), "%s", h->sender);
	snprintf(d->type, sizeof(d->type), "%s", t->name);
	snprintf(d->case_id, sizeof(d->case_id), "%s", h->case_id);
	switch (seen_before(j, txn, h->message_id, h->sender)) {
	case -1:
		d->kind = DIN_NOMEM;
		goto out;
	case 1:
		d->kind = DIN_NOTHING; /* a redelivery: already answered */
		goto out;
	case 2:
		/* Validly signed by its sender, but the id is another sender's: the
		 * broker should have refused it. Nothing is stored under the id
		 * (that would overwrite the first message's record) and nothing is
		 * answered; it is logged and audited. */
		d->kind = DIN_DUPLICATE;
		snprintf(d->code, sizeof(d->code), "%s",
		         tern_reason_code(TERN_REASON_DUPLICATE_ID));
		snprintf(d->text, sizeof(d->text), "message id already used by another sender");
		goto out;
	}
	for (size_t i = 0; i < h->n_recipients; i++)
		mine |= strcmp(h->recipients[i], j->self) == 0;
	if (!mine) {
		refuse(d, tern_reason_code(TERN_REASON_NOT_A_RECIPIENT),
		       "this node is not among the recipients");
		goto out;
	}
	if ((rc = tern_envelope_authorize(env)) != TERN_OK) {
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		goto out;
	}
	if ((rc = tern_envelope_open_cached(env, j->self, j->seal, j->seals, &plain, &plen)) ==
	        TERN_ENOMEM &&
	    !j->nomem_final) {
		d->kind = DIN_NOMEM;
		goto out;
	}
	if (rc == TERN_ENOMEM) /* the last try, as above */
		tern_fail(rc, "out of memory opening it, on every try for %d s",
		          TERN_NOMEM_SPAN_MS / 1000);
	if (rc != TERN_OK) {
		refuse(d, tern_errcode_name(rc), "%s", tern_errdetail());
		goto out;
	}
	if ((rc = tern_pb_unpack(t->desc, plain, plen, plen, &body)) == TERN_ENOMEM &&
	    !j->nomem_final) {
		d->kind = DIN_NOMEM;
		goto out;
	}
	if (rc == TERN_ENOMEM) { /* the last try (nomem_final) */
		refuse(d, tern_errcode_name(rc),
		       "out of memory decoding the body, on every try for %d s",
		       TERN_NOMEM_SPAN_MS / 1000);
		goto out;
	}
	if (rc != TERN_OK) {
		refuse(d, tern_reason_code(TERN_REASON_INVALID_BODY),
		       "the body does not decode as %s", t->name);
		goto out;
	}
	if (t->type == TERN__V1__MESSAGE_TYPE__RECEIPT) {
		const Tern__V1__Receipt *r = (const Tern__V1__Receipt *)body;
		node_sent_rec *rec = NULL;
		d->kind = DIN_RECEIPT;
		snprintf(d->target, sizeof(d->target), "%s", r->message_id);
		snprintf(d->node, sizeof(d->node), "%s", h->sender);
		snprintf(d->state, sizeof(d->state), "%s",
		         r->status == TERN__V1__RECEIPT__STATUS__ACCEPTED ? "delivered"
		                                                          : "rejected");
		snprintf(d->code, sizeof(d->code), "%s", r->reason_code);
		snprintf(d->text, sizeof(d->text), "%s", r->reason_text);
		rc = node_store_sent_rec(txn, j->store, r->message_id, &rec);
		/* Not read for a shortage: no sign that the message is unknown,
		 * and a receipt refused is lost for good. */
		if (shortage(j, d, rc, "matching the receipt to its message")) {
			node_rec_sent_free(&rec);
			goto out;
		}
		if (rc != TERN_OK || node_rec_sent_rcpt(rec, h->sender) == NULL) {
			/* Refused like any bad message: logged and audited; never answered,
			 * as no receipt is ever sent for a receipt. "No record", not
			 * "never sent", as for the at-once refusal (check_body): a node
			 * put back from a copy may have sent it after the copy. */
			refuse(d, tern_reason_code(TERN_REASON_UNKNOWN_MESSAGE),
			       "a receipt for %s, which this node has no record of sending to %s",
			       r->message_id, h->sender);
		}
		node_rec_sent_free(&rec);
		goto out;
	}
	if ((h->n_attachments || node_body_attachments(body, &(size_t){0})) &&
	    !check_attachments(j, h, body, d))
		goto out;
	check_body(j, txn, env, len, t, body, d);
	if (d->natts && d->kind == DIN_ACCEPT && !j->xfer_done) {
		/* Judged again when its attachments are in (xfer_in.c): what the
		 * workflow said now is not kept. */
		d->kind = DIN_XFER;
		d->xfer_until =
		    h->expires_at ? h->expires_at : h->created_at + NODE_XFER_DEFAULT_TTL_MS;
		tern_wf_record_free(&d->wf);
		tern_wf_record_free(&d->wf_rootrec);
	} else if (d->natts && d->kind == DIN_ACCEPT && j->xfer_code && j->xfer_code[0]) {
		tern_wf_record_free(&d->wf);
		tern_wf_record_free(&d->wf_rootrec);
		refuse(d, j->xfer_code, "%s", j->xfer_text ? j->xfer_text : "");
	}
out:
	tern_pb_free(&body);
	if (plain)
		tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&env);
}

int node_owe_receipt(node *n, struct din *d, const uint8_t *env, size_t len)
{
	Tern__V1__Receipt r = TERN__V1__RECEIPT__INIT;
	const char *to[1] = {d->sender};
	uint8_t *body;
	size_t blen;
	struct out o, *slot;
	int rc;

	r.message_id = (char *)d->msgid;
	if ((rc = tern_sha256(env, len, d->env_digest)) != TERN_OK)
		return rc;
	d->has_digest = 1;
	r.envelope_digest.data = d->env_digest;
	r.envelope_digest.len = 32;
	r.status = d->kind == DIN_ACCEPT ? TERN__V1__RECEIPT__STATUS__ACCEPTED
	                                 : TERN__V1__RECEIPT__STATUS__REJECTED;
	r.reason_code = d->kind == DIN_ACCEPT ? "" : (char *)d->code;
	r.reason_text = d->kind == DIN_ACCEPT ? "" : (char *)d->text;
	if ((rc = tern_pb_pack(&r.base, &body, &blen)) != TERN_OK) {
		log_warnx("cannot make the receipt for %s: %s", d->msgid, tern_strerror(rc));
		return rc;
	}
	rc = node_make_out(n, tern_msgtype_by_type(TERN__V1__MESSAGE_TYPE__RECEIPT), to, 1,
	                   d->case_id, d->msgid, 0, body, blen, NULL, &o);
	free(body);
	if (rc != TERN_OK) {
		log_warnx("cannot seal the receipt for %s: %s", d->msgid, tern_errdetail());
		return rc;
	}
	snprintf(o.ref, sizeof(o.ref), "%s", d->msgid);
	snprintf(o.outcome, sizeof(o.outcome), "%s",
	         d->kind == DIN_ACCEPT ? "ACCEPTED" : "REJECTED");
	if ((slot = node_batch_out(n)) == NULL) {
		node_out_free(&o);
		return TERN_ENOMEM;
	}
	*slot = o;
	return TERN_OK;
}

/* The delivery of seq could not be taken: nothing after it may be taken
 * either (a later seq would acknowledge it), and the broker is asked for it
 * again by a new Hello, which it answers by delivering again from what this
 * node has committed. */
static void deliver_stop(node *n, uint64_t seq, const char *why)
{
	log_warnx("could not take delivery %llu (%s); asking the broker for it again (Hello)",
	          (unsigned long long)seq, why);
	n->deliver_stopped = 1;
	/* Not at once, a second from now at the soonest: a cause that lasts
	 * (this node's own certificate lapsed) would make a Hello and a
	 * redelivery per round trip. */
	if (n->hello_due == 0)
		n->hello_due = tern_now_ms() + 1000;
}

void node_deliver_lost(node *n, const char *why)
{
	deliver_stop(n, n->delivered + 1, why);
}

void node_deliver_resume(node *n)
{
	n->deliver_stopped = 0;
}

void node_on_deliver(node *n, const Tern__V1__Deliver *dv)
{
	struct batch *b = &n->batch;
	struct din *d;
	MDB_txn *txn;
	int rc = TERN_ENOMEM;

	if (dv->broker_epoch.len != 16 || n->deliver_stopped)
		return;
	if (memcmp(dv->broker_epoch.data, n->epoch, 16) != 0) {
		/* A new start of the broker: its numbers are trusted only within
		 * it. What this batch holds of the old one is committed first, so
		 * that one batch never mixes the two. */
		node_batch_commit(n);
		memcpy(n->epoch, dv->broker_epoch.data, 16);
		memcpy(n->dstore, n->bstore, 16);
		n->delivered = 0;
		b->delivered = 0;
		n->nomem_seq = 0; /* the old start's seqs name other messages now */
		n->nomem = (tern_nomem){0, 0};
	}
	if (dv->seq <= n->delivered || dv->seq <= b->delivered) {
		if (b->delivered < n->delivered)
			b->delivered = n->delivered;
		return; /* already held: acknowledged again below */
	}
	if (TERN_GROW(b->dins, b->ndins, b->capdins)) {
		deliver_stop(n, dv->seq, "out of memory");
		return;
	}
	d = &b->dins[b->ndins];
	memset(d, 0, sizeof(*d));
	d->seq = dv->seq;
	if (tern_store_read_begin(n->store, &txn) != TERN_OK) {
		deliver_stop(n, dv->seq, tern_errdetail());
		return;
	}
	if (dv->item_case == TERN__V1__DELIVER__ITEM_NOTICE) {
		const Tern__V1__Notice *nt = dv->notice;
		d->kind = DIN_NOTICE;
		d->notice = nt->kind;
		snprintf(d->target, sizeof(d->target), "%s", nt->message_id);
		snprintf(d->node, sizeof(d->node), "%s", nt->recipient);
		snprintf(d->code, sizeof(d->code), "%s", nt->reason);
		if (nt->kind == TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED) {
			/* Final: the recipient will never take it. */
			snprintf(d->state, sizeof(d->state), "rejected");
			snprintf(
			    d->text, sizeof(d->text),
			    "dead-lettered by the broker: %s was %s from the federation before "
			    "it took the message",
			    nt->recipient,
			    strcmp(nt->reason, tern_reason_code(TERN_REASON_RECIPIENT_REMOVED)) == 0
			        ? "removed"
			        : "revoked");
		} else {
			snprintf(d->state, sizeof(d->state), "expired");
			snprintf(d->text, sizeof(d->text), "dead-lettered by the broker: %s",
			         nt->reason);
		}
	} else if (dv->item_case == TERN__V1__DELIVER__ITEM_ENVELOPE) {
		node_judge j;
		node_judge_of(n, &j);
		j.nomem_final =
		    dv->seq == n->nomem_seq && tern_nomem_final(&n->nomem, tern_now_ms());
		node_judge_envelope(&j, txn, dv->envelope.data, dv->envelope.len, d);
		if (d->kind == DIN_NOMEM) {
			if (dv->seq != n->nomem_seq) { /* another message's count goes */
				n->nomem_seq = dv->seq;
				n->nomem = (tern_nomem){0, 0};
			}
			tern_nomem_count(&n->nomem, tern_now_ms());
			rc = TERN_ENOMEM;
			goto oom;
		}
		if (dv->seq == n->nomem_seq) { /* judged at last */
			n->nomem_seq = 0;
			n->nomem = (tern_nomem){0, 0};
		}
		if (d->kind == DIN_ACCEPT || d->kind == DIN_REFUSE || d->kind == DIN_DUPLICATE ||
		    d->kind == DIN_HOLD || d->kind == DIN_XFER) {
			if ((d->env = malloc(dv->envelope.len)) == NULL)
				goto oom;
			memcpy(d->env, dv->envelope.data, dv->envelope.len);
			d->len = dv->envelope.len;
		}
		/* Taken with its receipt and its workflow records, or not at all:
		 * acknowledged without them, the sender would never have a
		 * receipt, or the case a state it reached. */
		if ((rc = node_din_take(n, d, dv->envelope.data, dv->envelope.len)) != TERN_OK)
			goto oom;
		if (d->kind == DIN_REFUSE)
			log_warnx("refused %s from %s: %s: %s", d->msgid[0] ? d->msgid : "(no id)",
			          d->sender[0] ? d->sender : "?", d->code, d->text);
	} else {
		d->kind = DIN_NOTHING;
	}
	mdb_txn_abort(txn);
	b->ndins++;
	b->delivered = dv->seq;
	return;
oom:
	mdb_txn_abort(txn);
	node_din_clear(d);
	deliver_stop(n, dv->seq,
	             rc == TERN_ENOMEM ? "out of memory" : "its receipt cannot be sealed");
}

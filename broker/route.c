/* Routing: judging one Submit and, inside the batch's write, queueing it for
 * each recipient or recording its refusal. Judging reads only the rules it
 * is given (route_rules) and the submission; the write touches only the
 * transaction it runs in. Nothing here sends or reads a socket: the loop
 * sends the answer (route_result) once the write is committed, which is
 * what lets tests/unit/test_broker_route.c run it without processes.
 *
 * Touches: the sub it is given; submit_now also appends to b->batch, and
 * keeps the counts of shortages in the sender's struct peer (nomem). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/attach.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/workflow.h>

#include "broker_int.h"
#include "pbuf.h"

/* --- judging ------------------------------------------------------------------ */

static void sub_refuse(struct sub *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sub_refuse(struct sub *s, int code, const char *fmt, ...)
{
	va_list ap;

	snprintf(s->code, sizeof(s->code), "%s", tern_errcode_name(code));
	va_start(ap, fmt);
	vsnprintf(s->text, sizeof(s->text), fmt, ap);
	va_end(ap);
}

/* A refusal of the broker's own (the reason table's code), not a library
 * error's. */
static void sub_refuse_reason(struct sub *s, tern_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sub_refuse_reason(struct sub *s, tern_reason reason, const char *fmt, ...)
{
	va_list ap;

	snprintf(s->code, sizeof(s->code), "%s", tern_reason_code(reason));
	va_start(ap, fmt);
	vsnprintf(s->text, sizeof(s->text), fmt, ap);
	va_end(ap);
}

void route_sub_init(struct sub *s, Tern__V1__Frame *f, const char *peer, const uint8_t *rid,
                    size_t rid_len)
{
	memset(s, 0, sizeof(*s));
	s->frame = f;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	memcpy(s->rid, rid, rid_len);
	s->rid_len = rid_len;
}

/* De-duplication is decided inside the write (route_write): it needs the
 * store as of the transaction, and the batch's earlier submissions. */
void route_judge(const struct route_rules *r, struct sub *s, int64_t now)
{
	/* Only the future is bounded: an envelope is sealed when its node
	 * accepts the message, and may wait in that node's outbox for as long
	 * as the node is cut off from the broker or behind a backlog. Refusing
	 * it as too old would lose a message the node had accepted; replays are
	 * refused by message id, which the broker never forgets. */
	tern_verify_opts o = {.max_size = (size_t)r->max_msg,
	                      .max_skew_ms = r->skew_ms,
	                      .future_skew_only = 1,
	                      .sigcache = r->sigs};
	const Tern__V1__Submit *sm = s->frame->submit;
	const Tern__V1__Header *h;
	int rc;

	rc = tern_envelope_verify(sm->envelope.data, sm->envelope.len, r->dir, &o, &s->env);
	if (rc == TERN_ENOMEM && !r->nomem_final) {
		/* The broker's shortage, not the message's fault (an envelope that
		 * decodes past its budget is not TERN_ENOMEM): refused, the
		 * sender would mark it rejected for good. Put off instead. */
		s->oom = 1;
		return;
	}
	if (rc == TERN_ENOMEM) /* the last try: said in words of its own */
		tern_fail(rc, "out of memory verifying it, on every try for %d s",
		          TERN_NOMEM_SPAN_MS / 1000);
	if (rc != TERN_OK) {
		/* The id, if the header decodes at all, lets the node match the answer.
		 * Only a well-formed id: it goes into logs and the audit log. */
		tern_envelope_claim c;
		char why[256];
		snprintf(why, sizeof(why), "%s", tern_errdetail());
		if (tern_envelope_claims(sm->envelope.data, sm->envelope.len, &c) == TERN_OK &&
		    c.sender[0] && c.message_id[0])
			snprintf(s->msgid, sizeof(s->msgid), "%s", c.message_id);
		sub_refuse(s, rc, "%s", why);
		return;
	}
	h = tern_envelope_header(s->env);
	snprintf(s->msgid, sizeof(s->msgid), "%s", h->message_id);
	if (strcmp(h->sender, s->peer) != 0) {
		sub_refuse_reason(s, TERN_REASON_FORGED_SENDER,
		                  "header sender %s is not the authenticated peer %s", h->sender,
		                  s->peer);
		return;
	}
	s->own = 1;
	if ((rc = tern_envelope_authorize(s->env)) != TERN_OK) {
		sub_refuse(s, rc, "%s", tern_errdetail());
		return;
	}
	if (!tern_workflow_recipients_ok(tern_msgtype_by_type(h->type), h->n_recipients)) {
		sub_refuse_reason(s, TERN_REASON_TOO_MANY_RECIPIENTS,
		                  "a %s goes to at most %u recipient(s), not %zu",
		                  tern_msgtype_by_type(h->type)->name,
		                  tern_msgtype_by_type(h->type)->max_recipients, h->n_recipients);
		return;
	}
	for (size_t i = 0; i < h->n_recipients; i++) {
		const tern_member *m;
		if (tern_directory_find(r->dir, h->recipients[i], &m) != TERN_OK ||
		    (m->roles & TERN_ROLE_BROKER)) {
			sub_refuse_reason(s, TERN_REASON_UNKNOWN_RECIPIENT,
			                  "recipient %s is not a member node", h->recipients[i]);
			return;
		}
		if (!tern_workflow_recipient_ok(tern_msgtype_by_type(h->type), m->roles)) {
			char roles[64];
			tern_roles_format(m->roles, roles, sizeof(roles));
			sub_refuse_reason(s, TERN_REASON_WRONG_RECIPIENT_ROLE,
			                  "recipient %s (roles: %s) may not receive %s",
			                  h->recipients[i], roles[0] ? roles : "none",
			                  tern_msgtype_by_type(h->type)->name);
			return;
		}
		if (m->revoked || tern_member_expired(m, now / 1000)) {
			sub_refuse_reason(s,
			                  m->revoked ? TERN_REASON_RECIPIENT_REVOKED
			                             : TERN_REASON_RECIPIENT_EXPIRED,
			                  "recipient %s is %s", h->recipients[i],
			                  m->revoked ? "revoked" : "expired");
			return;
		}
	}
	/* The structure of the seals was checked with the signature; the sizes
	 * are this broker's to bound, since it holds the chunks. */
	rc = tern_attach_seals_check(
	    (const Tern__V1__AttachmentSeal *const *)h->attachments, h->n_attachments,
	    r->max_att_size ? r->max_att_size : TERN_ATTACH_MAX_SIZE_DEFAULT,
	    r->max_att_total ? r->max_att_total : TERN_ATTACH_MAX_TOTAL_DEFAULT);
	if (rc == TERN_ETOOBIG) {
		sub_refuse_reason(s, TERN_REASON_ATTACHMENT_TOO_LARGE, "%s", tern_errdetail());
		return;
	}
	if (rc != TERN_OK) {
		sub_refuse(s, rc, "%s", tern_errdetail());
		return;
	}
	s->expires = h->expires_at ? h->expires_at : now + r->default_ttl_ms;
	if (s->expires <= now)
		sub_refuse_reason(s, TERN_REASON_EXPIRED, "%s",
		                  "the message expired before it reached the broker");
}

/* --- the write ------------------------------------------------------------------ */

int route_write(MDB_txn *txn, tern_store *st, struct sub *s, int64_t now)
{
	const Tern__V1__Header *h;
	bq_dedup seen;
	bq_item it;
	int rc;

	s->accepted = 0;
	s->n = 0;
	s->out_code[0] = s->out_text[0] = '\0';
	if (s->msgid[0] == '\0') { /* nothing to remember it by */
		snprintf(s->out_code, sizeof(s->out_code), "%s", s->code);
		snprintf(s->out_text, sizeof(s->out_text), "%s", s->text);
		return TERN_OK;
	}
	/* A refusal is never written to the de-duplication table, and the table
	 * is read only for an envelope whose signature checked and whose sender
	 * is the authenticated peer: an id is only its sender's to claim, and
	 * only once the envelope was accepted from that sender. Otherwise a
	 * member holding another's envelope could submit it first and poison
	 * its id, or replay one already accepted and be told "accepted". A
	 * message its own sender had accepted before gets the same answer even
	 * if it would be refused now (expired since, a recipient revoked
	 * since): its sender resubmits what it holds unanswered, and the queue
	 * still has it for its recipients. */
	if (s->code[0] == '\0' || s->own) {
		rc = bq_dedup_get(txn, st, s->msgid, &seen);
		if (rc == TERN_OK) {
			if (seen.sender[0] == '\0' || strcmp(seen.sender, s->peer) == 0) {
				s->accepted = 1; /* a resubmission: the same answer, no copy */
				s->n = seen.n;
				return TERN_OK;
			}
			if (s->code[0] == '\0')
				sub_refuse_reason(
				    s, TERN_REASON_DUPLICATE_ID,
				    "message id %s was already used by another sender", s->msgid);
		} else if (rc != TERN_ENOENT) {
			return rc;
		}
	}
	if (s->code[0] != '\0') {
		snprintf(s->out_code, sizeof(s->out_code), "%s", s->code);
		snprintf(s->out_text, sizeof(s->out_text), "%s", s->text);
		return bq_audit(txn, st, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, s->msgid, s->peer,
		                NULL, NULL, s->frame->submit->envelope.data,
		                s->frame->submit->envelope.len, s->code, NULL, 0, now);
	}
	h = tern_envelope_header(s->env);
	memset(&it, 0, sizeof(it));
	it.kind = BQ_ENVELOPE;
	it.expires_at = s->expires;
	it.enqueued_at = now;
	snprintf(it.sender, sizeof(it.sender), "%s", h->sender);
	memcpy(it.msgid, s->msgid, 37);
	it.payload = s->frame->submit->envelope.data;
	it.len = s->frame->submit->envelope.len;
	for (size_t r = 0; r < h->n_recipients; r++) {
		uint64_t seq;
		if ((rc = bq_append(txn, st, h->recipients[r], &it, &seq)) != TERN_OK)
			return rc;
	}
	if ((rc = bq_accept_next(txn, st, s->peer, s->msgid, &s->n)) != TERN_OK ||
	    (rc = bq_dedup_put(txn, st, s->msgid, s->peer, s->n, now)) != TERN_OK)
		return rc;
	/* The chunks come after the acceptance: the transfer is known from the
	 * same commit on, with the envelope's expiry. */
	rc = xfer_create(txn, st, s->msgid, h->sender, h->recipients, h->n_recipients,
	                 (const Tern__V1__AttachmentSeal *const *)h->attachments, h->n_attachments,
	                 s->expires);
	if (rc != TERN_OK)
		return rc;
	rc = bq_audit_seals(txn, st, TERN__V1__AUDIT_ENTRY__KIND__RELAYED, s->msgid, h->sender,
	                    h->case_id, tern_msgtype_by_type(h->type)->name, it.payload, it.len,
	                    NULL, h->recipients, h->n_recipients,
	                    (const Tern__V1__AttachmentSeal *const *)h->attachments,
	                    h->n_attachments, now);
	if (rc != TERN_OK)
		return rc;
	s->accepted = 1;
	return TERN_OK;
}

void route_result(struct sub *s, Tern__V1__SubmitResult *r)
{
	r->message_id = s->msgid;
	r->accepted = s->accepted;
	r->reason_code = s->out_code;
	r->reason_text = s->out_text;
	r->session = s->frame && s->frame->submit ? s->frame->submit->session : 0;
	r->accepted_n = s->accepted ? s->n : 0;
}

void route_sub_free(struct sub *s)
{
	tern_envelope_free(&s->env);
	tern_pb_free((ProtobufCMessage **)&s->frame);
}

/* --- shortages ---------------------------------------------------------------- */

/* What names a submission before it verifies. Hashing allocates nothing: it
 * runs while memory is short. */
static void nomem_digest(const Tern__V1__Frame *f, uint8_t dg[PEER_NOMEM_DIGEST])
{
	crypto_generichash(dg, PEER_NOMEM_DIGEST, f->submit->envelope.data, f->submit->envelope.len,
	                   NULL, 0);
}

static int nomem_any(const struct peer *p)
{
	for (size_t i = 0; i < PEER_NOMEM_SLOTS; i++)
		if (p->nomem[i].c.tries)
			return 1;
	return 0;
}

static struct peer_nomem *nomem_find(struct peer *p, const uint8_t *dg)
{
	for (size_t i = 0; i < PEER_NOMEM_SLOTS; i++)
		if (p->nomem[i].c.tries && memcmp(p->nomem[i].digest, dg, PEER_NOMEM_DIGEST) == 0)
			return &p->nomem[i];
	return NULL;
}

/* A slot for the submission dg: a free one, else the one tried least
 * recently, whose count starts again. */
static struct peer_nomem *nomem_slot(struct peer *p, const uint8_t *dg)
{
	struct peer_nomem *c = &p->nomem[0];

	for (size_t i = 0; i < PEER_NOMEM_SLOTS && c->c.tries; i++)
		if (p->nomem[i].c.tries == 0 || p->nomem[i].last < c->last)
			c = &p->nomem[i];
	memset(c, 0, sizeof(*c));
	memcpy(c->digest, dg, PEER_NOMEM_DIGEST);
	return c;
}

/* --- into the batch ------------------------------------------------------------ */

int submit_now(broker *b, const char *user, const uint8_t *rid, size_t rid_len, Tern__V1__Frame *f)
{
	struct batch *bt = &b->batch;
	struct peer *p = peer_find(b, user, 0);
	struct peer_nomem *c = NULL;
	uint8_t dg[PEER_NOMEM_DIGEST];
	int hashed = 0;
	struct route_rules r = {.dir = b->id.dir,
	                        .sigs = b->sigs,
	                        .max_msg = b->max_msg,
	                        .skew_ms = b->skew_ms,
	                        .default_ttl_ms = b->default_ttl_ms,
	                        .max_att_size = b->max_att_size,
	                        .max_att_total = b->max_att_total};
	struct sub *s;

	if (bt->nsubs == bt->capsubs) {
		size_t nc = bt->capsubs ? bt->capsubs * 2 : 64;
		struct sub *ns = realloc(bt->subs, nc * sizeof(*ns));
		if (ns == NULL)
			return TERN_ENOMEM;
		bt->subs = ns;
		bt->capsubs = nc;
	}
	/* Its own count: another's shortages, before or since, say nothing of
	 * whether this one can be afforded. */
	if (p && nomem_any(p)) {
		nomem_digest(f, dg);
		hashed = 1;
		c = nomem_find(p, dg);
	}
	r.nomem_final = c && tern_nomem_final(&c->c, bt->now);
	s = &bt->subs[bt->nsubs++];
	route_sub_init(s, f, user, rid, rid_len);
	route_judge(&r, s, bt->now);
	if (s->oom) {
		/* Not taken: the caller still owns f, and breaks the session (or
		 * keeps the deferred submission for the next turn). */
		tern_envelope_free(&s->env);
		bt->nsubs--;
		if (p && c == NULL) {
			if (!hashed)
				nomem_digest(f, dg);
			c = nomem_slot(p, dg);
		}
		if (c) {
			tern_nomem_count(&c->c, bt->now);
			c->last = bt->now;
		}
		return tern_fail(TERN_ENOMEM, "out of memory verifying a submission from %s", user);
	}
	if (c) /* taken: a failed commit starts anew */
		memset(c, 0, sizeof(*c));
	return TERN_OK;
}

/* The node's store (node_store.h): outbox, sent records and their states,
 * inbox, received records, references, resync points. Over 800 lines on
 * purpose: these share the record helpers and the outbox counters, moved in
 * the same transactions; what could stand apart already does (held
 * deliveries in held.c, the case index in cases.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/reason.h>

#include <tern/envelope.h>

#include "node_store.h"
#include "record.h"
#include "util.h"
#include "webhook.h"

/* accepted, held, heldenv and cases came later: a read-only view of an older
 * store has none (dbi 0). */
static const char *const dbnames[] = {
    "meta",     "outbox",     "outenv",           "msgs",      "inbox",   "received", "inenv",
    "refs",     "clientrefs", TERN_AUDIT_DBNAMES, "?accepted", "?held",   "?heldenv", "?cases",
    "?uploads", "?xout",      "?xleaves",         "?xin",      "?xinenv", "?pushes",  "?msglist",
    NULL};

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))

static int counts_apply(MDB_txn *txn, void *arg);

/* The outbox counts by state are kept as counters in meta, moved in the
 * transaction that moves a message, so reading them costs the same with ten
 * messages or ten million. A store from before the counters gets them once,
 * by a full scan, when it is opened for writing. */
#define COUNTS_MARK "count.kept"
static const char *const count_states[] = {"queued",   "at-broker", "delivered",
                                           "rejected", "expired",   NULL};

int node_store_open(const char *dir, int rdonly, tern_store **out)
{
	tern_audit_dbs audit;
	size_t converted, damaged;
	int rc = tern_store_open(dir, dbnames, rdonly ? TERN_STORE_RDONLY : 0, 0, out);

	if (rc != TERN_OK || rdonly)
		return rc;
	node_store_audit_dbs(*out, &audit);
	if ((rc = node_store_convert(*out, &converted, &damaged)) != TERN_OK ||
	    (rc = tern_store_write(*out, counts_apply, *out)) != TERN_OK ||
	    (rc = tern_store_write(*out, node_store_list_backfill, *out)) != TERN_OK ||
	    (rc = tern_audit_backfill(*out, &audit)) != TERN_OK)
		tern_store_close(out);
	return rc;
}

void node_store_audit_dbs(tern_store *s, tern_audit_dbs *d)
{
	tern_audit_dbs_at(s, NS_AUDIT, d);
}

static MDB_val sval(const char *s)
{
	MDB_val v = {strlen(s), (void *)s};
	return v;
}

/* Next value of a persistent counter in meta. */
int node_store_next_seq(MDB_txn *txn, tern_store *s, const char *name, uint64_t *out)
{
	MDB_val k = sval(name), v;
	uint8_t b[8];
	uint64_t n = 1;
	int rc = mdb_get(txn, DBI(s, NS_META), &k, &v);

	if (rc == 0 && v.mv_size == 8)
		n = tern_be64_get(v.mv_data) + 1;
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "read counter");
	tern_be64_put(b, n);
	v = (MDB_val){8, b};
	if ((rc = mdb_put(txn, DBI(s, NS_META), &k, &v, 0)) != 0)
		return MDB(rc, "write counter");
	*out = n;
	return TERN_OK;
}

static int count_add(MDB_txn *txn, tern_store *s, const char *state, int64_t delta)
{
	char name[32];
	MDB_val k, v;
	uint8_t b[8];
	uint64_t n = 0;
	int rc;

	snprintf(name, sizeof(name), "count.%s", state);
	k = sval(name);
	rc = mdb_get(txn, DBI(s, NS_META), &k, &v);
	if (rc == 0 && v.mv_size == 8)
		n = tern_be64_get(v.mv_data);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "read count");
	n = (delta < 0 && n < (uint64_t)-delta) ? 0 : n + (uint64_t)delta;
	tern_be64_put(b, n);
	v = (MDB_val){8, b};
	return MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write count");
}

/* Receipts are not counted: the counts are of the agency's own messages. */
static int count_move(MDB_txn *txn, tern_store *s, const node_sent_rec *rec, node_sent_state from)
{
	node_sent_state to = rec->state;
	int rc = TERN_OK;

	if (strcmp(rec->type, "receipt") == 0 || from == to)
		return TERN_OK;
	if (from)
		rc = count_add(txn, s, node_sent_state_name(from), -1);
	if (rc == TERN_OK && to)
		rc = count_add(txn, s, node_sent_state_name(to), 1);
	return rc;
}

static int counts_apply(MDB_txn *txn, void *arg)
{
	tern_store *s = arg;
	MDB_val k = sval(COUNTS_MARK), v;
	MDB_cursor *c;
	uint8_t zero[8] = {0};
	int rc = mdb_get(txn, DBI(s, NS_META), &k, &v);

	if (rc == 0)
		return TERN_OK; /* kept since the store was made, or counted before */
	if (rc != MDB_NOTFOUND)
		return MDB(rc, "read the counts' mark");
	for (int i = 0; count_states[i]; i++) {
		char name[32];
		MDB_val ck, cv = {8, zero};
		snprintf(name, sizeof(name), "count.%s", count_states[i]);
		ck = sval(name);
		if ((rc = mdb_put(txn, DBI(s, NS_META), &ck, &cv, 0)) != 0)
			return MDB(rc, "write count");
	}
	if ((rc = mdb_cursor_open(txn, DBI(s, NS_MSGS), &c)) != 0)
		return MDB(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		node_sent_rec *rec = NULL;
		/* A damaged record is not counted; a shortage fails the open, as
		 * the mark would otherwise keep the wrong counts for good (the
		 * node is started again, and counts then). */
		int rc2 = node_rec_sent_decode(v.mv_data, v.mv_size, &rec);
		if (rc2 == TERN_OK)
			rc2 = count_move(txn, s, rec, 0);
		else if (rc2 == TERN_EMALFORMED)
			rc2 = TERN_OK;
		node_rec_sent_free(&rec);
		if (rc2 != TERN_OK) {
			mdb_cursor_close(c);
			return rc2;
		}
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return MDB(rc, "read records");
	k = sval(COUNTS_MARK);
	v = (MDB_val){8, zero};
	return MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write the counts' mark");
}

int node_store_enqueue(MDB_txn *txn, tern_store *s, const node_out *m, int64_t now)
{
	node_sent_rec rec = TERN__V1__SENT_RECORD__INIT;
	node_sent_rcpt rs[TERN_ENVELOPE_MAX_RECIPIENTS], *ps[TERN_ENVELOPE_MAX_RECIPIENTS];
	tern_wf_record ref = TERN__V1__WORKFLOW_RECORD__INIT;
	uint8_t kb[8];
	uint64_t seq;
	MDB_val k, v;
	int rc;

	if (m->n_recipients > TERN_ENVELOPE_MAX_RECIPIENTS)
		return tern_fail(TERN_EINVAL, "%zu recipients, at most %d", m->n_recipients,
		                 TERN_ENVELOPE_MAX_RECIPIENTS);
	if ((rc = node_store_next_seq(txn, s, "outseq", &seq)) != TERN_OK)
		return rc;
	tern_be64_put(kb, seq);
	k = (MDB_val){8, kb};
	v = sval(m->msgid);
	if ((rc = mdb_put(txn, DBI(s, NS_OUTBOX), &k, &v, MDB_APPEND)) != 0)
		return MDB(rc, "append to outbox");
	k = sval(m->msgid);
	v = (MDB_val){m->len, (void *)m->envelope};
	/* The id was made here (UUIDv7): it sorts last but in a clock step. */
	if ((rc = tern_store_put_tail(txn, DBI(s, NS_OUTENV), &k, &v, 0)) != 0)
		return MDB(rc, "store envelope");
	for (size_t i = 0; i < m->n_recipients; i++) {
		tern__v1__sent_recipient__init(&rs[i]);
		rs[i].node = (char *)m->recipients[i];
		rs[i].state = NODE_SENT_QUEUED;
		rs[i].at = now;
		ps[i] = &rs[i];
	}
	rec.type = (char *)m->type;
	rec.case_id = (char *)m->case_id;
	rec.created_at = m->created_at;
	rec.state = NODE_SENT_QUEUED;
	rec.n_recipients = m->n_recipients;
	rec.recipients = ps;
	/* seq: its outbox place while it waits for the broker's answer (0 once
	 * answered); outseq: that place for good, should it have to go again. */
	rec.seq = rec.outseq = seq;
	rc = node_rec_sent_put(txn, DBI(s, NS_MSGS), m->msgid, &rec);
	if (rc == TERN_OK)
		rc = count_move(txn, s, &rec, 0);
	if (rc != TERN_OK)
		return rc;
	/* The store's own record; the workflow's (tern/workflow.h), when the
	 * message has one, replaces it in the same commit (commit.c). */
	ref.type = (char *)m->type;
	ref.case_id = (char *)m->case_id;
	ref.outcome = (char *)(m->outcome ? m->outcome : "");
	ref.ref = (char *)(m->ref ? m->ref : "");
	rc = node_rec_wf_put(txn, DBI(s, NS_REFS), m->msgid, &ref);
	if (rc == TERN_OK && strcmp(m->type, "receipt") != 0)
		rc = node_store_list_note(txn, s, m->case_id, m->msgid, 'o');
	if (rc == TERN_OK && m->client_ref && m->client_ref[0]) {
		/* the id, then what the send said: a reuse of the key with
		 * other content is then told apart from a retry */
		uint8_t val[36 + 32];
		memcpy(val, m->msgid, 36);
		if (m->client_fp)
			memcpy(val + 36, m->client_fp, 32);
		k = sval(m->client_ref);
		v = (MDB_val){m->client_fp ? sizeof(val) : 36, val};
		rc = MDB(mdb_put(txn, DBI(s, NS_CLIENTREFS), &k, &v, 0), "store client ref");
	}
	return rc;
}

int node_store_client_ref(MDB_txn *txn, tern_store *s, const char *ref, char msgid[37],
                          uint8_t fp[32], int *has_fp)
{
	MDB_val k = sval(ref), v;
	int rc = mdb_get(txn, DBI(s, NS_CLIENTREFS), &k, &v);

	if (rc != 0)
		return MDB(rc, "read client ref");
	if (v.mv_size != 36 && v.mv_size != 36 + 32)
		return TERN_EMALFORMED;
	memcpy(msgid, v.mv_data, 36);
	msgid[36] = 0;
	*has_fp = v.mv_size == 36 + 32;
	memset(fp, 0, 32);
	if (*has_fp)
		memcpy(fp, (const uint8_t *)v.mv_data + 36, 32);
	return TERN_OK;
}

/* delivered when every recipient is; rejected or expired if any is; else
 * at-broker once the broker holds it. */
static void overall_state(node_sent_rec *rec)
{
	node_sent_state worst = 0;
	int all_delivered = 1, any_broker = 0;

	for (size_t i = 0; i < rec->n_recipients; i++) {
		node_sent_state st = rec->recipients[i]->state;
		if (st != NODE_SENT_DELIVERED)
			all_delivered = 0;
		if (st != NODE_SENT_QUEUED)
			any_broker = 1;
		if (st == NODE_SENT_REJECTED)
			worst = NODE_SENT_REJECTED;
		else if (st == NODE_SENT_EXPIRED && worst == 0)
			worst = NODE_SENT_EXPIRED;
	}
	rec->state = worst           ? worst
	             : all_delivered ? NODE_SENT_DELIVERED
	             : any_broker    ? NODE_SENT_AT_BROKER
	                             : NODE_SENT_QUEUED;
}

/* 1 when no recipient is still owed it (queued or at the broker). */
static int all_answered(const node_sent_rec *rec)
{
	for (size_t i = 0; i < rec->n_recipients; i++)
		if (rec->recipients[i]->state == NODE_SENT_QUEUED ||
		    rec->recipients[i]->state == NODE_SENT_AT_BROKER)
			return 0;
	return 1;
}

/* A message every recipient answered can never have to go again: its
 * envelope and acceptance number, kept for a broker put back from a copy
 * (node_store_resubmit_after), go. Receipts are never answered: theirs stay,
 * as received envelopes do. */
static int forget_envelope(MDB_txn *txn, tern_store *s, const char *msgid, const node_sent_rec *rec)
{
	uint64_t bn = rec->broker_n;
	MDB_val k = sval(msgid), v;
	uint8_t kb[8];
	int rc = mdb_del(txn, DBI(s, NS_OUTENV), &k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "drop an answered envelope");
	if (bn == 0 || DBI(s, NS_ACCEPTED) == 0)
		return TERN_OK;
	tern_be64_put(kb, bn);
	k = (MDB_val){8, kb};
	rc = mdb_get(txn, DBI(s, NS_ACCEPTED), &k, &v);
	if (rc == 0 && v.mv_size == 36 && memcmp(v.mv_data, msgid, 36) == 0)
		rc = mdb_del(txn, DBI(s, NS_ACCEPTED), &k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "drop an acceptance number");
}

/* Recomputes the message's state from its recipients', writes the record and
 * moves the counts if the state changed. */
static int restate(MDB_txn *txn, tern_store *s, const char *msgid, node_sent_rec *rec)
{
	node_sent_state before = rec->state;
	int forget = strcmp(rec->type, "receipt") != 0 && all_answered(rec), rc;

	overall_state(rec);
	if (forget && rec->seq != 0) {
		/* Its receipts came before the broker's answer (lost with a
		 * connection): with nothing left to send it again for, its
		 * outbox entry goes too, or every scan would skip it for ever. */
		uint8_t kb[8];
		MDB_val k = {8, kb};
		tern_be64_put(kb, rec->seq);
		rc = mdb_del(txn, DBI(s, NS_OUTBOX), &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return MDB(rc, "remove from outbox");
		rec->seq = 0;
	}
	if ((rc = node_rec_sent_put(txn, DBI(s, NS_MSGS), msgid, rec)) != TERN_OK)
		return rc;
	if (forget && (rc = forget_envelope(txn, s, msgid, rec)) != TERN_OK)
		return rc;
	return count_move(txn, s, rec, before);
}

static int set_reason(char **code_field, char **text_field, const char *code, const char *text)
{
	int rc = node_rec_set_str(code_field, code);
	return rc == TERN_OK ? node_rec_set_str(text_field, text) : rc;
}

/* The message's reason follows its recipients': it is kept while a recipient
 * not delivered to still carries it, else taken from the first that carries
 * one (rejected before expired, as overall_state ranks them), else cleared.
 * A verdict a later one replaced (expired, then delivered after tern dlq
 * retry) must not go on being shown. */
static int message_reason(node_sent_rec *rec)
{
	const node_sent_rcpt *pick = NULL;

	for (size_t i = 0; i < rec->n_recipients; i++) {
		const node_sent_rcpt *r = rec->recipients[i];
		if (r->state == NODE_SENT_DELIVERED || r->reason_code[0] == 0)
			continue;
		if (rec->reason_code[0] && strcmp(r->reason_code, rec->reason_code) == 0)
			return TERN_OK;
		if (pick == NULL ||
		    (r->state == NODE_SENT_REJECTED && pick->state != NODE_SENT_REJECTED))
			pick = r;
	}
	return pick ? set_reason(&rec->reason_code, &rec->reason_text, pick->reason_code,
	                         pick->reason_text)
	            : set_reason(&rec->reason_code, &rec->reason_text, NULL, NULL);
}

static int accepted_note(MDB_txn *txn, tern_store *s, const char *msgid, uint64_t n);

/* The record of a message this node sent; TERN_ENOENT if none. */
static int sent_read(MDB_txn *txn, tern_store *s, const char *msgid, node_sent_rec **out)
{
	MDB_val k = sval(msgid), v;
	int rc = mdb_get(txn, DBI(s, NS_MSGS), &k, &v);

	*out = NULL;
	if (rc != 0)
		return MDB(rc, "read record");
	return node_rec_sent_decode(v.mv_data, v.mv_size, out);
}

static int recv_read(MDB_txn *txn, tern_store *s, const char *msgid, node_recv_rec **out)
{
	MDB_val k = sval(msgid), v;
	int rc = mdb_get(txn, DBI(s, NS_RECEIVED), &k, &v);

	*out = NULL;
	if (rc != 0)
		return MDB(rc, "read record");
	return node_rec_recv_decode(v.mv_data, v.mv_size, out);
}

int node_store_submitted(MDB_txn *txn, tern_store *s, const char *msgid, int accepted,
                         uint64_t accepted_n, const char *code, const char *text, int64_t now)
{
	node_sent_rec *rec;
	uint8_t kb[8];
	MDB_val k;
	int rc;

	if ((rc = sent_read(txn, s, msgid, &rec)) != TERN_OK)
		return rc == TERN_ENOENT ? TERN_OK : rc;
	if (rec->seq == 0) {
		node_rec_sent_free(&rec); /* answered before */
		return TERN_OK;
	}
	tern_be64_put(kb, rec->seq);
	k = (MDB_val){8, kb};
	/* Out of the outbox; the envelope stays (node_store_resubmit_after). */
	rc = mdb_del(txn, DBI(s, NS_OUTBOX), &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rc = MDB(rc, "remove from outbox");
		goto out;
	}
	rc = TERN_OK;
	if (accepted && accepted_n) {
		if ((rc = accepted_note(txn, s, msgid, accepted_n)) != TERN_OK)
			goto out;
		rec->broker_n = accepted_n;
	}
	rec->seq = 0;
	for (size_t i = 0; i < rec->n_recipients && rc == TERN_OK; i++) {
		node_sent_rcpt *r = rec->recipients[i];
		/* The broker's answer only moves a recipient on from "queued": a
		 * receipt can overtake the answer to a resubmission after a crash,
		 * and a receipt's verdict must not be overwritten. */
		if (r->state != NODE_SENT_QUEUED)
			continue;
		r->state = accepted ? NODE_SENT_AT_BROKER : NODE_SENT_REJECTED;
		r->at = now;
		if (!accepted)
			rc = set_reason(&r->reason_code, &r->reason_text, code, text);
	}
	/* The message's reason follows its recipients': a refusal that moved
	 * none (each answered by its receipt already) leaves it as it is. */
	if (rc == TERN_OK && !accepted)
		rc = message_reason(rec);
	if (rc == TERN_OK)
		rc = restate(txn, s, msgid, rec);
out:
	node_rec_sent_free(&rec);
	return rc;
}

/* Whether code is one a notice of the broker's gives a rejected recipient:
 * in a record from before SentRecipient.receipted, any other rejection is a
 * receipt's verdict (or the broker's refusal, after which no notice comes). */
static int notice_reason(const char *code)
{
	return strcmp(code, tern_reason_code(TERN_REASON_RECIPIENT_REVOKED)) == 0 ||
	       strcmp(code, tern_reason_code(TERN_REASON_RECIPIENT_REMOVED)) == 0;
}

int node_store_recipient_state(MDB_txn *txn, tern_store *s, const char *msgid, const char *node,
                               const char *state, const char *code, const char *text, int notice,
                               int64_t now)
{
	node_sent_state st = node_sent_state_parse(state);
	node_sent_rec *rec;
	node_sent_rcpt *r;
	int rc;

	if (st == 0)
		return tern_fail(TERN_EINVAL, "no sent state %s", state);
	if ((rc = sent_read(txn, s, msgid, &rec)) != TERN_OK)
		return rc;
	if ((r = node_rec_sent_rcpt(rec, node)) == NULL) {
		node_rec_sent_free(&rec);
		return tern_fail(TERN_ENOENT, "%s was not sent to %s", msgid, node);
	}
	/* A notice is the broker's word that the recipient did not take the
	 * message: it never moves one its signed receipt answered (delivered or
	 * rejected: a notice can follow the receipt when the recipient's
	 * acknowledgement was lost). It may correct an earlier notice (a dead
	 * letter retried, then dead-lettered again). */
	if ((notice && (r->receipted || r->state == NODE_SENT_DELIVERED ||
	                (r->state == NODE_SENT_REJECTED && !notice_reason(r->reason_code)))) ||
	    (r->state == st && strcmp(r->reason_code, code ? code : "") == 0)) {
		/* Or the same verdict again (a redelivery after a broker restart). */
		node_rec_sent_free(&rec);
		return TERN_EEXIST;
	}
	r->state = st;
	r->at = now;
	r->receipted = !notice;
	if ((rc = set_reason(&r->reason_code, &r->reason_text, code, text)) == TERN_OK &&
	    (rc = message_reason(rec)) == TERN_OK)
		rc = restate(txn, s, msgid, rec);
	node_rec_sent_free(&rec);
	return rc;
}

int node_store_sent_rec(MDB_txn *txn, tern_store *s, const char *msgid, node_sent_rec **rec)
{
	return sent_read(txn, s, msgid, rec);
}

int node_store_recv_rec(MDB_txn *txn, tern_store *s, const char *msgid, node_recv_rec **rec)
{
	return recv_read(txn, s, msgid, rec);
}

int node_store_sent_get(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec)
{
	node_sent_rec *r;
	int rc = sent_read(txn, s, msgid, &r);

	*rec = NULL;
	if (rc != TERN_OK)
		return rc;
	*rec = node_rec_sent_json(r);
	node_rec_sent_free(&r);
	return *rec ? TERN_OK : TERN_ENOMEM;
}

int node_store_outbox_scan(MDB_txn *txn, tern_store *s, uint64_t from,
                           int (*fn)(uint64_t seq, const char *msgid, const uint8_t *env,
                                     size_t len, void *arg),
                           void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t kb[8];
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, NS_OUTBOX), &c)) != 0)
		return MDB(rc, "cursor");
	tern_be64_put(kb, from);
	k = (MDB_val){8, kb};
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char id[37];
		MDB_val ek, ev;
		if (v.mv_size != 36 || k.mv_size != 8)
			continue;
		memcpy(id, v.mv_data, 36);
		id[36] = 0;
		ek = sval(id);
		if (mdb_get(txn, DBI(s, NS_OUTENV), &ek, &ev) != 0)
			continue;
		if (fn(tern_be64_get(k.mv_data), id, ev.mv_data, ev.mv_size, arg))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan outbox");
}

int node_store_receive(MDB_txn *txn, tern_store *s, const node_in *m, int64_t now)
{
	node_recv_rec rec = TERN__V1__RECEIVED_RECORD__INIT;
	uint64_t seq = 0;
	uint8_t kb[8];
	MDB_val k = sval(m->msgid), v;
	/* numbered for listing once: a record written again keeps its place */
	int again = mdb_get(txn, DBI(s, NS_RECEIVED), &k, &v) == 0, rc;

	if (m->accepted) {
		if ((rc = node_store_next_seq(txn, s, "inseq", &seq)) != TERN_OK)
			return rc;
		tern_be64_put(kb, seq);
		k = (MDB_val){8, kb};
		v = sval(m->msgid);
		if ((rc = mdb_put(txn, DBI(s, NS_INBOX), &k, &v, MDB_APPEND)) != 0)
			return MDB(rc, "append to inbox");
		k = sval(m->msgid);
		v = (MDB_val){m->len, (void *)m->envelope};
		/* Ids from every sender, each a UUIDv7: in arrival order, mostly. */
		if ((rc = tern_store_put_tail(txn, DBI(s, NS_INENV), &k, &v, 0)) != 0)
			return MDB(rc, "store envelope");
		/* As a sent message's (node_store_enqueue). */
		tern_wf_record ref = TERN__V1__WORKFLOW_RECORD__INIT;
		ref.type = (char *)m->type;
		ref.case_id = (char *)m->case_id;
		ref.outcome = (char *)(m->outcome ? m->outcome : "");
		rc = node_rec_wf_put(txn, DBI(s, NS_REFS), m->msgid, &ref);
		if (rc != TERN_OK)
			return rc;
		if (m->tag)
			rec.envelope_tag = (ProtobufCBinaryData){32, (uint8_t *)m->tag};
	}
	rec.sender = (char *)m->sender;
	rec.type = (char *)m->type;
	rec.case_id = (char *)m->case_id;
	rec.received_at = now;
	rec.accepted = m->accepted != 0;
	rec.inbox_seq = seq;
	rec.reason_code = (char *)(m->code ? m->code : "");
	rec.reason_text = (char *)(m->text ? m->text : "");
	rc = node_rec_recv_put(txn, DBI(s, NS_RECEIVED), m->msgid, &rec);
	if (rc == TERN_OK && strcmp(m->type, "receipt") != 0 &&
	    (rc = node_store_case_forget(txn, s, m->case_id, m->msgid)) == TERN_OK && !again)
		rc = node_store_list_note(txn, s, m->case_id, m->msgid, 'i');
	return rc;
}

int node_store_received(MDB_txn *txn, tern_store *s, const char *msgid, json_t **rec)
{
	node_recv_rec *r = NULL;
	int rc = recv_read(txn, s, msgid, &r);

	if (rec) {
		*rec = rc == TERN_OK ? node_rec_recv_json(r) : NULL;
		if (rc == TERN_OK && *rec == NULL)
			rc = TERN_ENOMEM;
	}
	node_rec_recv_free(&r);
	return rc;
}

int node_store_received_envelope(MDB_txn *txn, tern_store *s, const char *msgid, uint8_t **env,
                                 size_t *len)
{
	MDB_val k = sval(msgid), v;
	int rc = mdb_get(txn, DBI(s, NS_INENV), &k, &v);

	if (rc != 0)
		return MDB(rc, "read envelope");
	if ((*env = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
		return TERN_ENOMEM;
	memcpy(*env, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return TERN_OK;
}

int node_store_inbox_ack(MDB_txn *txn, tern_store *s, const char *msgid)
{
	node_recv_rec *rec;
	uint8_t kb[8];
	MDB_val k;
	int rc;

	if ((rc = recv_read(txn, s, msgid, &rec)) != TERN_OK)
		return rc;
	if (!rec->accepted) {
		node_rec_recv_free(&rec);
		return tern_fail(TERN_ENOENT, "%s was refused, it is not in the inbox", msgid);
	}
	if (rec->acked) {
		node_rec_recv_free(&rec);
		return TERN_EEXIST; /* acknowledged before: nothing changes */
	}
	tern_be64_put(kb, rec->inbox_seq);
	k = (MDB_val){8, kb};
	rc = mdb_del(txn, DBI(s, NS_INBOX), &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		node_rec_recv_free(&rec);
		return MDB(rc, "remove from inbox");
	}
	rec->acked = 1;
	/* from when its attachments' retention runs (xfer_in.c) */
	rec->acked_at = tern_now_ms();
	rc = node_rec_recv_put(txn, DBI(s, NS_RECEIVED), msgid, rec);
	node_rec_recv_free(&rec);
	return rc;
}

int node_store_inbox_scan(MDB_txn *txn, tern_store *s, int (*fn)(const char *msgid, void *arg),
                          void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, NS_INBOX), &c)) != 0)
		return MDB(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		char id[37];
		if (v.mv_size != 36)
			continue;
		memcpy(id, v.mv_data, 36);
		id[36] = 0;
		if (fn(id, arg))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan inbox");
}

int node_store_ref_put(MDB_txn *txn, tern_store *s, const char *msgid, const tern_wf_record *rec)
{
	return node_rec_wf_put(txn, DBI(s, NS_REFS), msgid, rec);
}

int node_store_ref(MDB_txn *txn, tern_store *s, const char *msgid, tern_wf_record **rec)
{
	MDB_val k = sval(msgid), v;
	int rc = mdb_get(txn, DBI(s, NS_REFS), &k, &v);

	*rec = NULL;
	if (rc != 0)
		return MDB(rc, "read record");
	return node_rec_wf_decode(v.mv_data, v.mv_size, rec);
}

int node_store_delivered_get(MDB_txn *txn, tern_store *s, uint8_t store[16], uint8_t epoch[16],
                             uint64_t *upto)
{
	MDB_val k = sval("delivered"), v;
	int rc = mdb_get(txn, DBI(s, NS_META), &k, &v);

	memset(store, 0, 16);
	memset(epoch, 0, 16);
	*upto = 0;
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read resync point");
	if (v.mv_size == 40) {
		memcpy(store, v.mv_data, 16);
		memcpy(epoch, (uint8_t *)v.mv_data + 16, 16);
		*upto = tern_be64_get((uint8_t *)v.mv_data + 32);
	} else if (v.mv_size == 24) {
		/* Written when a broker's epoch was its store's identity. */
		memcpy(store, v.mv_data, 16);
		memcpy(epoch, v.mv_data, 16);
		*upto = tern_be64_get((uint8_t *)v.mv_data + 16);
	} else {
		return tern_fail(TERN_EMALFORMED, "the resync point is %zu bytes, not 40",
		                 v.mv_size);
	}
	return TERN_OK;
}

int node_store_delivered_put(MDB_txn *txn, tern_store *s, const uint8_t store[16],
                             const uint8_t epoch[16], uint64_t upto)
{
	uint8_t b[40];
	MDB_val k = sval("delivered"), v = {40, b};

	memcpy(b, store, 16);
	memcpy(b + 16, epoch, 16);
	tern_be64_put(b + 32, upto);
	return MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write resync point");
}

/* meta "broker.accepted": store(16) | be64(highest number told). */
int node_store_accepted_get(MDB_txn *txn, tern_store *s, uint8_t store[16], uint64_t *max)
{
	MDB_val k = sval("broker.accepted"), v;
	int rc = mdb_get(txn, DBI(s, NS_META), &k, &v);

	memset(store, 0, 16);
	*max = 0;
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read acceptance numbers");
	if (v.mv_size != 24)
		return tern_fail(TERN_EMALFORMED, "damaged acceptance numbers in the store");
	memcpy(store, v.mv_data, 16);
	*max = tern_be64_get((uint8_t *)v.mv_data + 16);
	return TERN_OK;
}

static int accepted_put(MDB_txn *txn, tern_store *s, const uint8_t store[16], uint64_t max)
{
	uint8_t b[24];
	MDB_val k = sval("broker.accepted"), v = {24, b};

	memcpy(b, store, 16);
	tern_be64_put(b + 16, max);
	return MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write acceptance numbers");
}

static int accepted_note(MDB_txn *txn, tern_store *s, const char *msgid, uint64_t n)
{
	uint8_t store[16], kb[8];
	uint64_t max;
	MDB_val k = {8, kb}, v = sval(msgid);
	int rc;

	if (DBI(s, NS_ACCEPTED) == 0)
		return TERN_OK;
	if ((rc = node_store_accepted_get(txn, s, store, &max)) != TERN_OK)
		return rc;
	tern_be64_put(kb, n);
	/* The broker numbers its acceptances in order: n is mostly the new last. */
	if ((rc = tern_store_put_tail(txn, DBI(s, NS_ACCEPTED), &k, &v, 0)) != 0)
		return MDB(rc, "index acceptance");
	return n > max ? accepted_put(txn, s, store, n) : TERN_OK;
}

int node_store_accepted_reset(MDB_txn *txn, tern_store *s, const uint8_t store[16])
{
	int rc;

	if (DBI(s, NS_ACCEPTED) && (rc = mdb_drop(txn, DBI(s, NS_ACCEPTED), 0)) != 0)
		return MDB(rc, "drop acceptance numbers");
	return accepted_put(txn, s, store, 0);
}

int node_store_accepted_raise(MDB_txn *txn, tern_store *s, uint64_t count)
{
	uint8_t store[16];
	uint64_t max;
	int rc;

	if ((rc = node_store_accepted_get(txn, s, store, &max)) != TERN_OK)
		return rc;
	return count > max ? accepted_put(txn, s, store, count) : TERN_OK;
}

int node_store_resubmit_after(MDB_txn *txn, tern_store *s, uint64_t count, int64_t now, size_t *n)
{
	uint8_t store[16], kb[8];
	uint64_t max;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*n = 0;
	if (DBI(s, NS_ACCEPTED) == 0)
		return TERN_OK;
	if ((rc = node_store_accepted_get(txn, s, store, &max)) != TERN_OK)
		return rc;
	if ((rc = mdb_cursor_open(txn, DBI(s, NS_ACCEPTED), &c)) != 0)
		return MDB(rc, "cursor");
	tern_be64_put(kb, count + 1);
	k = (MDB_val){8, kb};
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) {
		char id[37];
		node_sent_rec *rec = NULL;
		int again = 0;
		uint64_t outseq;
		if (v.mv_size == 36) {
			memcpy(id, v.mv_data, 36);
			id[36] = 0;
		} else {
			id[0] = 0;
		}
		/* The entry goes first: the writes below move the cursor's page. */
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		if (id[0] == 0)
			goto next;
		/* Only a record that is not there, or is damaged, is passed over: a
		 * shortage (or a failed read) fails the whole call, which undoes the
		 * deletions, and the caller compares the stores again later. */
		if ((rc = sent_read(txn, s, id, &rec)) == TERN_ENOENT || rc == TERN_EMALFORMED)
			goto next;
		if (rc != TERN_OK)
			goto out;
		outseq = rec->outseq;
		{
			MDB_val ek = sval(id), ev;
			if (outseq == 0)
				goto next; /* an older record: cannot go again */
			if ((rc = mdb_get(txn, DBI(s, NS_OUTENV), &ek, &ev)) == MDB_NOTFOUND)
				goto next; /* no envelope left: cannot go again */
			if (rc != 0) {
				node_rec_sent_free(&rec);
				rc = MDB(rc, "read an envelope to submit again");
				goto out;
			}
		}
		/* Recipients the broker still owed it go back to queued; those that
		 * answered keep their answer (and take it again, de-duplicated). */
		for (size_t i = 0; i < rec->n_recipients; i++) {
			if (rec->recipients[i]->state != NODE_SENT_AT_BROKER)
				continue;
			rec->recipients[i]->state = NODE_SENT_QUEUED;
			rec->recipients[i]->at = now;
			again = 1;
		}
		if (!again)
			goto next; /* answered by every recipient: nothing is owed */
		tern_be64_put(kb, outseq);
		{
			MDB_val ok = {8, kb}, ov = sval(id);
			if ((rc = mdb_put(txn, DBI(s, NS_OUTBOX), &ok, &ov, 0)) != 0) {
				node_rec_sent_free(&rec);
				rc = MDB(rc, "queue again");
				goto out;
			}
		}
		rec->seq = outseq;
		if ((rc = restate(txn, s, id, rec)) != TERN_OK) {
			node_rec_sent_free(&rec);
			goto out;
		}
		(*n)++;
	next:
		node_rec_sent_free(&rec);
		tern_be64_put(kb, count + 1);
		k = (MDB_val){8, kb};
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? accepted_put(txn, s, store, count)
	                                   : MDB(rc, "scan acceptance numbers");
out:
	mdb_cursor_close(c);
	return rc;
}

int node_store_counts(MDB_txn *txn, tern_store *s, json_t **out)
{
	json_t *counts = json_pack("{s:i, s:i, s:i, s:i, s:i}", "queued", 0, "at-broker", 0,
	                           "delivered", 0, "rejected", 0, "expired", 0);
	MDB_val k = sval(COUNTS_MARK), v;
	MDB_stat st;
	uint64_t np = 0;
	int rc = TERN_ENOMEM;

	/* Whole or TERN_ENOMEM: a count left at 0 for want of memory would be
	 * shown as the node's state. */
	*out = NULL;
	if (counts == NULL)
		return TERN_ENOMEM;
	if (mdb_get(txn, DBI(s, NS_META), &k, &v) == 0) {
		for (int i = 0; count_states[i]; i++) {
			char name[32];
			snprintf(name, sizeof(name), "count.%s", count_states[i]);
			k = sval(name);
			if (mdb_get(txn, DBI(s, NS_META), &k, &v) == 0 && v.mv_size == 8 &&
			    json_object_set_new(
			        counts, count_states[i],
			        json_integer((json_int_t)tern_be64_get(v.mv_data))) != 0)
				goto out;
		}
	} else {
		/* A store from before the counters, opened read-only: count. */
		MDB_cursor *c;
		if ((rc = mdb_cursor_open(txn, DBI(s, NS_MSGS), &c)) != 0) {
			rc = MDB(rc, "cursor");
			goto out;
		}
		rc = TERN_OK;
		while (rc == TERN_OK && mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
			node_sent_rec *rec = NULL;
			int drc = node_rec_sent_decode(v.mv_data, v.mv_size, &rec);
			if (drc == TERN_ENOMEM)
				rc = drc;
			else if (drc == TERN_OK && strcmp(rec->type, "receipt") != 0) {
				json_t *n =
				    json_object_get(counts, node_sent_state_name(rec->state));
				if (n)
					json_integer_set(n, json_integer_value(n) + 1);
			}
			node_rec_sent_free(&rec);
		}
		mdb_cursor_close(c);
		if (rc != TERN_OK)
			goto out;
		rc = TERN_ENOMEM;
	}
	mdb_stat(txn, DBI(s, NS_INBOX), &st);
	*out = json_pack("{s:O, s:I, s:I}", "outbox", counts, "inbox", (json_int_t)st.ms_entries,
	                 "held", (json_int_t)0);
	if (*out == NULL)
		goto out;
	if ((rc = node_push_count(txn, s, &np)) != TERN_OK)
		goto fail;
	rc = TERN_ENOMEM;
	if (DBI(s, NS_HELD) != 0 && mdb_stat(txn, DBI(s, NS_HELD), &st) == 0 &&
	    json_object_set_new(*out, "held", json_integer((json_int_t)st.ms_entries)) != 0)
		goto fail;
	if (json_object_set_new(*out, "webhooks", json_pack("{s:I}", "pending", (json_int_t)np)) !=
	    0)
		goto fail;
	rc = TERN_OK;
	goto out;
fail:
	json_decref(*out);
	*out = NULL;
out:
	json_decref(counts);
	return rc;
}

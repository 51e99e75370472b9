/* The batch's write: everything one turn of the loop changes (outbox
 * entries, submission results, deliveries, receipts, inbox
 * acknowledgements, a checkpoint) is signed and written in one LMDB write
 * transaction, and only then answered: API clients, counters, the log, and
 * the DeliverAck to the broker.
 *
 * The other files add to n->batch; this is the only one that writes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/log.h>

#include "node_int.h"
#include "util.h"

int node_audit(node *n, MDB_txn *txn, Tern__V1__AuditEntry__Kind kind, const char *msgid,
               const char *peer, const char *case_id, const char *type, const uint8_t *env,
               size_t len, const char *reason, const char *outcome, const char *ref)
{
	return node_audit_att(n, txn, kind, msgid, peer, case_id, type, env, len, reason, outcome,
	                      ref, NULL, 0);
}

int node_audit_att(node *n, MDB_txn *txn, Tern__V1__AuditEntry__Kind kind, const char *msgid,
                   const char *peer, const char *case_id, const char *type, const uint8_t *env,
                   size_t len, const char *reason, const char *outcome, const char *ref,
                   const struct node_att *atts, size_t natts)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	Tern__V1__AuditAttachment aa[TERN_ATTACH_MAX_COUNT], *aap[TERN_ATTACH_MAX_COUNT];
	uint8_t digest[32];

	for (size_t i = 0; i < natts && i < TERN_ATTACH_MAX_COUNT; i++) {
		tern__v1__audit_attachment__init(&aa[i]);
		aa[i].index = (uint32_t)i;
		aa[i].size = atts[i].size;
		aa[i].root.data = (uint8_t *)atts[i].root;
		aa[i].root.len = 32;
		aa[i].sha256.data = (uint8_t *)atts[i].sha256;
		aa[i].sha256.len = 32;
		aap[i] = &aa[i];
	}
	e.n_attachments = natts < TERN_ATTACH_MAX_COUNT ? natts : TERN_ATTACH_MAX_COUNT;
	e.attachments = aap;

	e.kind = kind;
	e.at = n->batch.now;
	e.message_id = (char *)(msgid ? msgid : "");
	e.peer = (char *)(peer ? peer : "");
	e.case_id = (char *)(case_id ? case_id : "");
	e.type = (char *)(type ? type : "");
	e.reason = (char *)(reason ? reason : "");
	e.outcome = (char *)(outcome ? outcome : "");
	e.ref = (char *)(ref ? ref : "");
	if (env) {
		int rc = tern_sha256(env, len, digest);
		if (rc != TERN_OK)
			return rc;
		e.digest.data = digest;
		e.digest.len = 32;
	}
	n->last_audit = n->last_event = n->batch.now;
	return tern_audit_append(txn, &n->audit, &e);
}

/* A sent message's state as the store has it now ("" if none, or damaged).
 * Not read for want of memory, it fails the commit: taken as "", a final
 * state that did not change would be pushed again as a new event. */
static int sent_state(node *n, MDB_txn *txn, const char *msgid, char out[16])
{
	node_sent_rec *rec = NULL;
	int rc = node_store_sent_rec(txn, n->store, msgid, &rec);

	out[0] = 0;
	if (rc == TERN_OK)
		snprintf(out, 16, "%s", node_sent_state_name(rec->state));
	node_rec_sent_free(&rec);
	return rc == TERN_ENOENT || rc == TERN_EMALFORMED ? TERN_OK : rc;
}

/* The webhook push of a sent message that has just reached its final state
 * (it was `before`): ids, type, states and reason codes. */
static int push_if_final(node *n, MDB_txn *txn, const char *msgid, const char *before)
{
	json_t *rec = NULL, *data, *rcpts, *v;
	const char *state, *k;
	int rc;

	/* Not read for want of memory, the commit fails and is done again: its
	 * state change committed without its push, the push would be lost. */
	if ((rc = node_store_sent_get(txn, n->store, msgid, &rec)) != TERN_OK)
		return rc == TERN_ENOENT || rc == TERN_EMALFORMED ? TERN_OK : rc;
	state = json_string_value(json_object_get(rec, "state")) ?: "";
	if (strcmp(state, before) == 0 ||
	    (strcmp(state, "delivered") && strcmp(state, "rejected") && strcmp(state, "expired")) ||
	    strcmp(json_string_value(json_object_get(rec, "type")) ?: "", "receipt") == 0) {
		json_decref(rec);
		return TERN_OK;
	}
	rcpts = json_array();
	json_object_foreach(json_object_get(rec, "recipients"), k, v)
	{
		json_t *e = json_pack("{s:s, s:O?, s:O?}", "nodeId", k, "state",
		                      json_object_get(v, "state"), "reasonCode",
		                      json_object_get(v, "reason_code"));
		/* A recipient left out for want of memory: no push (the commit
		 * fails) rather than one that misses it. */
		if (rcpts && json_array_append_new(rcpts, e) != 0) {
			json_decref(rcpts);
			rcpts = NULL;
		}
	}
	data = json_pack("{s:s, s:O?, s:O?, s:s, s:O?, s:o}", "messageId", msgid, "caseId",
	                 json_object_get(rec, "case_id"), "type", json_object_get(rec, "type"),
	                 "state", state, "reasonCode", json_object_get(rec, "reason_code"),
	                 "recipients", rcpts);
	rc = data ? node_push_add(txn, n->store, NODE_PUSH_FINAL, msgid, data, n->batch.now)
	          : TERN_ENOMEM;
	json_decref(data);
	json_decref(rec);
	n->batch.pushes_added |= rc == TERN_OK;
	return rc;
}

static int push_received(node *n, MDB_txn *txn, const struct din *d)
{
	char at[TERN_RFC3339_LEN];
	json_t *data;
	int rc;

	tern_time_rfc3339(n->batch.now, at);
	data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "messageId", d->msgid, "caseId", d->case_id,
	                 "type", d->type, "sender", d->sender, "receivedAt", at);
	rc = data ? node_push_add(txn, n->store, NODE_PUSH_RECEIVED, d->msgid, data, n->batch.now)
	          : TERN_ENOMEM;
	json_decref(data);
	n->batch.pushes_added |= rc == TERN_OK;
	return rc;
}

void node_pushes_take(node *n)
{
	struct batch *b = &n->batch;
	uint64_t seqs[256];
	size_t k;

	while ((k = node_webhook_done(n->hook, seqs, 256)) > 0)
		for (size_t i = 0; i < k; i++) {
			/* Out of memory: left in the store, posted again after a
			 * restart, which receivers drop as a repeat. */
			if (TERN_GROW(b->pushes_done, b->npushes_done, b->cappushes_done) !=
			    TERN_OK)
				return;
			b->pushes_done[b->npushes_done++] = seqs[i];
		}
}

struct wf_put {
	node *n;
	MDB_txn *txn;
};

static int wf_put_one(const char *id, const tern_wf_record *rec, void *arg)
{
	const struct wf_put *p = arg;

	return node_store_ref_put(p->txn, p->n->store, id, rec);
}

static int batch_apply(MDB_txn *txn, void *arg)
{
	node *n = arg;
	struct batch *b = &n->batch;
	char before[16] = "";
	int rc;

	for (size_t i = 0; i < b->npushes_done; i++)
		if ((rc = node_push_del(txn, n->store, b->pushes_done[i])) != TERN_OK)
			return rc;

	for (size_t i = 0; i < b->nouts; i++) {
		struct out *o = &b->outs[i];
		node_out m = {o->msgid,
		              o->env,
		              o->len,
		              o->type,
		              o->case_id,
		              o->created_at,
		              (const char *const *)o->rcpts,
		              o->nrcpts,
		              o->outcome,
		              o->ref,
		              o->client_ref,
		              o->client_ref[0] ? o->client_fp : NULL};
		if ((rc = node_store_enqueue(txn, n->store, &m, b->now)) != TERN_OK)
			return rc;
		if ((rc = node_xout_store(txn, n, o)) != TERN_OK)
			return rc;
		for (size_t r = 0; r < o->nrcpts; r++) {
			rc = node_audit_att(n, txn,
			                    strcmp(o->type, "receipt") == 0
			                        ? TERN__V1__AUDIT_ENTRY__KIND__RECEIPT_SENT
			                        : TERN__V1__AUDIT_ENTRY__KIND__SENT,
			                    o->msgid, o->rcpts[r], o->case_id, o->type, o->env,
			                    o->len, NULL, o->outcome, o->ref, o->atts, o->natts);
			if (rc != TERN_OK)
				return rc;
		}
	}
	for (size_t i = 0; i < b->nresults; i++) {
		struct result *r = &b->results[i];
		if (n->hook && !r->accepted &&
		    (rc = sent_state(n, txn, r->msgid, before)) != TERN_OK)
			return rc;
		if ((rc = node_store_submitted(txn, n->store, r->msgid, r->accepted, r->n, r->code,
		                               r->text, b->now)) != TERN_OK)
			return rc;
		if (n->hook && !r->accepted &&
		    (rc = push_if_final(n, txn, r->msgid, before)) != TERN_OK)
			return rc;
	}
	for (size_t i = 0; i < b->ndins; i++) {
		struct din *d = &b->dins[i];
		if (d->unhold && (rc = node_store_unhold(txn, n->store, d->msgid)) != TERN_OK &&
		    rc != TERN_ENOENT)
			return rc;
		if ((d->unxfer || d->kind == DIN_XFER) &&
		    (rc = node_xin_store(txn, n, d)) != TERN_OK)
			return rc;
		if (d->kind == DIN_HOLD) {
			node_held h = {d->msgid, d->ref,        d->sender, d->case_id,
			               d->type,  d->hold_until, d->env,    d->len};
			if ((rc = node_store_hold(txn, n->store, &h)) != TERN_OK)
				return rc;
			rc = node_audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__HELD, d->msgid,
			                d->sender, d->case_id, d->type, d->env, d->len, NULL,
			                d->outcome, d->ref);
			if (rc != TERN_OK)
				return rc;
		} else if (d->kind == DIN_ACCEPT || (d->kind == DIN_REFUSE && d->msgid[0])) {
			uint8_t tag[32];
			node_in m = {d->msgid, d->env,     d->len,     d->sender,
			             d->type,  d->case_id, d->outcome, d->kind == DIN_ACCEPT,
			             d->code,  d->text,    NULL};
			if (d->kind == DIN_ACCEPT) {
				/* Usually made for its receipt already. */
				if (!d->has_digest &&
				    (rc = tern_sha256(d->env, d->len, d->env_digest)) != TERN_OK)
					return rc;
				d->has_digest = 1;
				if ((rc = node_inbox_tag(n, d->msgid, d->env_digest, tag)) !=
				    TERN_OK)
					return rc;
				m.tag = tag;
			}
			if ((rc = node_store_receive(txn, n->store, &m, b->now)) != TERN_OK)
				return rc;
			if (n->hook && d->kind == DIN_ACCEPT &&
			    (rc = push_received(n, txn, d)) != TERN_OK)
				return rc;
			rc = node_audit_att(n, txn,
			                    d->kind == DIN_ACCEPT
			                        ? TERN__V1__AUDIT_ENTRY__KIND__RECEIVED
			                        : TERN__V1__AUDIT_ENTRY__KIND__REJECTED,
			                    d->msgid, d->sender, d->case_id, d->type, d->env,
			                    d->len, d->kind == DIN_ACCEPT ? NULL : d->code,
			                    d->outcome, d->ref, d->atts, d->natts);
			if (rc != TERN_OK)
				return rc;
		} else if (d->kind == DIN_DUPLICATE) {
			rc = node_audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, d->msgid,
			                d->sender, d->case_id, d->type, d->env, d->len, d->code,
			                NULL, NULL);
			if (rc != TERN_OK)
				return rc;
		} else if (d->kind == DIN_RECEIPT || d->kind == DIN_NOTICE) {
			if (n->hook && (rc = sent_state(n, txn, d->target, before)) != TERN_OK)
				return rc;
			rc = node_store_recipient_state(txn, n->store, d->target, d->node, d->state,
			                                d->code, d->text, d->kind == DIN_NOTICE,
			                                b->now);
			if (rc == TERN_EEXIST)
				continue; /* the same verdict delivered again: no new event */
			if (rc != TERN_OK && rc != TERN_ENOENT)
				return rc;
			if (n->hook && rc == TERN_OK &&
			    (rc = push_if_final(n, txn, d->target, before)) != TERN_OK)
				return rc;
			rc = node_audit(
			    n, txn,
			    d->kind == DIN_RECEIPT ? TERN__V1__AUDIT_ENTRY__KIND__RECEIPT_RECEIVED
			    : d->notice == TERN__V1__NOTICE__KIND__EXPIRED
			        ? TERN__V1__AUDIT_ENTRY__KIND__EXPIRED
			        : TERN__V1__AUDIT_ENTRY__KIND__DEAD_LETTERED,
			    d->target, d->node, d->case_id, NULL, NULL, 0,
			    d->kind == DIN_NOTICE || strcmp(d->state, "rejected") == 0 ? d->code
			                                                               : NULL,
			    d->state, NULL);
			if (rc != TERN_OK)
				return rc;
		}
	}
	/* After the outbox and inbox writes, whose own refs records these
	 * replace with the workflow's. */
	{
		struct wf_put p = {n, txn};
		if ((rc = tern_wf_records_each(b->wf, wf_put_one, &p)) != TERN_OK)
			return rc;
	}
	for (size_t i = 0; i < b->nacks; i++) {
		rc = node_store_inbox_ack(txn, n->store, b->acks[i].msgid);
		/* Acknowledging again (a retry, or twice in this batch) succeeds
		 * and changes nothing, so it records nothing either. */
		if (rc == TERN_EEXIST)
			continue;
		if (rc != TERN_OK && rc != TERN_ENOENT)
			return rc;
		if ((rc = node_audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__OPERATOR,
		                     b->acks[i].msgid, n->id.id, NULL, "inbox-ack", NULL, 0, NULL,
		                     NULL, NULL)) != TERN_OK)
			return rc;
	}
	if (b->checkpoint) {
		uint64_t size;
		if ((rc = tern_audit_checkpoint(txn, &n->audit, n->origin, n->id.sign,
		                                b->checkpoint == 2, &size)) != TERN_OK)
			return rc;
	}
	if (b->delivered > n->delivered &&
	    (rc = node_store_delivered_put(txn, n->store, n->dstore, n->epoch, b->delivered)) !=
	        TERN_OK)
		return rc;
	return TERN_OK;
}

static void client_reply(node *n, int ci, json_t *reply)
{
	api_server_reply(n->api, ci, reply);
}

void node_batch_reset(node *n)
{
	struct batch *b = &n->batch;

	for (size_t i = 0; i < b->nouts; i++)
		node_out_free(&b->outs[i]);
	for (size_t i = 0; i < b->ndins; i++) {
		free(b->dins[i].env);
		free(b->dins[i].atts);
		tern_wf_record_free(&b->dins[i].wf);
		tern_wf_record_free(&b->dins[i].wf_rootrec);
	}
	tern_wf_records_free(&b->wf);
	b->npushes_done = 0;
	b->pushes_added = 0;
	b->nouts = b->ndins = b->nresults = b->nacks = 0;
	b->delivered = 0;
	b->checkpoint = 0;
}

/* One signature for every envelope this commit sends: a Merkle root over
 * their headers, each envelope with its inclusion proof (envelope.h). */
static int batch_sign(node *n)
{
	struct batch *b = &n->batch;
	tern_sealed **items;
	uint8_t **envs;
	size_t *lens, k = 0;
	int rc;

	if (b->nouts == 0)
		return TERN_OK;
	items = calloc(b->nouts, sizeof(*items));
	envs = calloc(b->nouts, sizeof(*envs));
	lens = calloc(b->nouts, sizeof(*lens));
	if (items == NULL || envs == NULL || lens == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->nouts; i++) {
		if (b->outs[i].sealed != NULL)
			items[k++] = b->outs[i].sealed;
		else if (b->outs[i].env == NULL) {
			/* Would be written to the outbox with no envelope at all. */
			rc = tern_fail(TERN_EINVAL, "message %s has no envelope", b->outs[i].msgid);
			goto out;
		}
	}
	if (k == 0 || (rc = tern_envelope_sign(items, k, n->id.sign, envs, lens)) != TERN_OK) {
		rc = k == 0 ? TERN_OK : rc;
		goto out;
	}
	k = 0;
	for (size_t i = 0; i < b->nouts; i++)
		if (b->outs[i].sealed != NULL) {
			b->outs[i].env = envs[k];
			b->outs[i].len = lens[k++];
			tern_sealed_free(&b->outs[i].sealed);
		}
out:
	free(lens);
	free(envs);
	free(items);
	return rc;
}

int node_batch_due(const node *n, int64_t now, int *wait_ms)
{
	const struct batch *b = &n->batch;
	int64_t left;

	if (b->nouts || b->ndins || b->nacks || b->checkpoint || b->delivered || b->npushes_done)
		return 1;
	if (b->nresults == 0)
		return 0;
	left = b->results_since + NODE_RESULT_DEFER_MS - now;
	if (left <= 0)
		return 1;
	if (*wait_ms > left)
		*wait_ms = (int)left;
	return 0;
}

/* After a failed commit: its deliveries are lost, though the broker counts
 * them as sent, and a later delivery's acknowledgement (cumulative) would
 * cover them; its answers are lost, and their submit window slots with them.
 * So no delivery is taken until a Welcome, and a Hello is due: the broker
 * then delivers again from what is committed, and the Welcome resubmits
 * what is unanswered with the whole window. The Hello waits 1 s, 2 s, ...
 * up to 30 s over consecutive failures: a full disk fails every commit. */
static void commit_failed(node *n)
{
	struct batch *b = &n->batch;
	int took = b->ndins || b->delivered > n->delivered;
	int64_t wait;

	if (n->commit_failures < 30)
		n->commit_failures++;
	if (took)
		n->deliver_stopped = 1;
	b->delivered = 0;
	/* Not connected: the Welcome to the Hello already out does it all. */
	if ((took || b->nresults) && n->connected && n->hello_due == 0) {
		wait = 1000 * (int64_t)n->commit_failures;
		n->hello_due = tern_now_ms() + wait;
		log_warnx("deliveries and answers of the failed commit are asked for again in "
		          "%lld ms (Hello)",
		          (long long)wait);
	}
}

void node_batch_commit(node *n)
{
	struct batch *b = &n->batch;
	int rc;

	if (b->nouts == 0 && b->ndins == 0 && b->nresults == 0 && b->nacks == 0 &&
	    b->npushes_done == 0 && b->delivered <= n->delivered && !b->checkpoint) {
		if (b->delivered && b->delivered == n->delivered)
			goto ack; /* only redeliveries: acknowledge again */
		return;
	}
	/* A signing failure fails the whole commit, as a failed write does:
	 * nothing of it is acknowledged, so API clients retry and the broker
	 * redelivers what this batch received. */
	if ((rc = batch_sign(n)) != TERN_OK)
		log_warnx("cannot sign this batch's envelopes: %s (%s)", tern_strerror(rc),
		          tern_errdetail());
	else
		rc = tern_store_write(n->store, batch_apply, n);
	if (rc != TERN_OK) {
		log_warnx("commit failed: %s (%s); nothing of this batch is acknowledged",
		          tern_strerror(rc), tern_errdetail());
		for (size_t i = 0; i < b->nouts; i++)
			if (b->outs[i].client >= 0)
				client_reply(
				    n, b->outs[i].client,
				    tern_api_error(rc, "not stored: %s", tern_errdetail()));
		for (size_t i = 0; i < b->nacks; i++)
			if (b->acks[i].client >= 0)
				client_reply(n, b->acks[i].client,
				             tern_api_error(rc, "not stored"));
		node_rejudge_after(n, 1000 * (int64_t)(n->commit_failures + 1));
		node_held_failed(n);
		node_xin_failed(n);
		commit_failed(n);
		node_batch_reset(n);
		return;
	}
	n->commit_failures = 0;
	if (b->ndins || b->nacks)
		n->inbox_gen++; /* inbox.next looks again (api_ops.c) */
	if (b->pushes_added)
		node_webhook_kick(n->hook);
	node_held_committed(n);
	node_xout_committed(n);
	node_xin_committed(n);
	for (size_t i = 0; i < b->nouts; i++) {
		const tern_msgtype *t = tern_msgtype_by_name(b->outs[i].type);
		n->m.sent[t ? tern_msgtype_index(t->type) : 0]++;
	}
	for (size_t i = 0; i < b->ndins; i++) {
		const struct din *d = &b->dins[i];
		const tern_msgtype *t = tern_msgtype_by_name(d->type);
		unsigned ti = t ? tern_msgtype_index(t->type) : 0;
		if (d->kind == DIN_ACCEPT || (d->kind == DIN_REFUSE && d->msgid[0]))
			n->m.received[ti][d->kind == DIN_ACCEPT ? 0 : 1]++;
		else if (d->kind == DIN_RECEIPT)
			n->m.receipts[strcmp(d->state, "rejected") == 0]++;
	}
	for (size_t i = 0; i < b->nouts; i++) {
		struct out *o = &b->outs[i];
		if (strcmp(o->type, "receipt") != 0)
			log_info("queued %s %s for %zu recipient(s), case %s", o->msgid, o->type,
			         o->nrcpts, o->case_id);
		if (o->client >= 0 && o->wait_ms > 0) {
			api_server_await_final(n->api, o->client, o->msgid,
			                       tern_now_ms() + o->wait_ms);
		} else if (o->client >= 0) {
			client_reply(n, o->client,
			             json_pack("{s:b, s:s}", "ok", 1, "message_id", o->msgid));
		}
	}
	/* Waiters whose message this batch answered look at its state again;
	 * the others wait on (one store read each would cost more than the rest). */
	for (size_t k = 0; k < b->ndins; k++)
		if (b->dins[k].kind == DIN_RECEIPT || b->dins[k].kind == DIN_NOTICE)
			api_server_state_changed(n->api, b->dins[k].target);
	for (size_t k = 0; k < b->nresults; k++)
		if (!b->results[k].accepted)
			api_server_state_changed(n->api, b->results[k].msgid);
	for (size_t i = 0; i < b->ndins; i++) {
		struct din *d = &b->dins[i];
		if (d->kind == DIN_ACCEPT)
			log_info("received %s %s from %s, case %s", d->msgid, d->type, d->sender,
			         d->case_id);
		else if (d->kind == DIN_RECEIPT)
			log_info("receipt from %s: %s %s%s%s", d->node, d->target, d->state,
			         d->code[0] ? " " : "", d->code);
		else if (d->kind == DIN_NOTICE)
			log_warnx("%s to %s dead-lettered by the broker: %s", d->target, d->node,
			          d->code);
		else if (d->kind == DIN_DUPLICATE)
			log_warnx("refused %s from %s: duplicate-id: the id came before from "
			          "another sender",
			          d->msgid, d->sender);
	}
	for (size_t i = 0; i < b->nresults; i++) {
		if (n->inflight && b->results[i].current)
			n->inflight--;
		if (b->results[i].accepted && b->results[i].n > n->amax)
			n->amax = b->results[i].n;
		if (!b->results[i].accepted)
			log_warnx("broker refused %s: %s: %s", b->results[i].msgid,
			          b->results[i].code, b->results[i].text);
	}
	for (size_t i = 0; i < b->nacks; i++)
		if (b->acks[i].client >= 0)
			client_reply(n, b->acks[i].client, json_pack("{s:b}", "ok", 1));
	if (b->delivered > n->delivered) {
		n->delivered = b->delivered;
		memcpy(n->h_epoch, n->epoch, 16);
		memcpy(n->h_store, n->dstore, 16);
		n->h_upto = n->delivered;
	}
ack:
	if (b->delivered) {
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__DeliverAck a = TERN__V1__DELIVER_ACK__INIT;
		a.broker_epoch.data = n->epoch;
		a.broker_epoch.len = 16;
		a.upto = n->delivered;
		f.body_case = TERN__V1__FRAME__BODY_DELIVER_ACK;
		f.deliver_ack = &a;
		node_hop_send(n, &f);
	}
	node_batch_reset(n);
}

/* tern audit replay, the workflow: every business message of the archives,
 * in the order it was sent, judged by the table the nodes and the broker read
 * (tern/workflow.h), as an auditor holding every archive; what the workflow
 * refuses is a finding named by its reason, and moves no thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/reason.h>
#include <tern/workflow.h>

#include "audit_replay_int.h"

/* One business message as the archives show it: its facts from the sender's
 * SENT entries (or, without the sender's log, from its recipients'). */
struct wmsg {
	const struct ev *const *g; /* the events about it */
	size_t n;
	const tern_msgtype *t;
	const char *sender, *value, *ref;
	const char **to;
	size_t nto;
	int64_t at;  /* the sender's SENT time, else the first event's */
	int refused; /* a recipient or the broker REJECTED it, and no one RECEIVED it */
};

static int wmsg_cmp(const void *x, const void *y)
{
	const struct wmsg *a = x, *b = y;

	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	return strcmp(a->g[0]->e->message_id, b->g[0]->e->message_id);
}

static int add_to(struct wmsg *w, const char *id)
{
	for (size_t i = 0; i < w->nto; i++)
		if (strcmp(w->to[i], id) == 0)
			return 0;
	w->to[w->nto++] = id;
	return 0;
}

static int wmsg_of(const struct replay *r, const struct ev *const *g, size_t n, struct wmsg *w)
{
	const char *type = type_of(g, n);
	int sent = 0, received = 0, rejected = 0;

	memset(w, 0, sizeof(*w));
	w->g = g;
	w->n = n;
	w->t = tern_msgtype_by_name(type);
	if (w->t == NULL || (w->t->ref_field == NULL && w->t->transitions == NULL))
		return -1; /* a receipt, or a type the table does not know */
	if ((w->sender = sender_of(r, g, n)) == NULL || (w->to = calloc(n, sizeof(char *))) == NULL)
		return -1;
	w->value = w->ref = "";
	w->at = INT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (g[i]->e->kind == K(SENT)) {
			if (!sent || g[i]->e->at < w->at)
				w->at = g[i]->e->at;
			sent = 1;
			add_to(w, g[i]->e->peer);
		}
	for (size_t i = 0; i < n; i++) {
		const entry *e = g[i]->e;
		int k = e->kind, node = !is_broker(r, owner(g[i]));
		if (k != K(SENT) && k != K(RECEIVED) && k != K(REJECTED))
			continue;
		if (!sent && e->at < w->at)
			w->at = e->at;
		if (!sent && node && k != K(SENT))
			add_to(w, owner(g[i]));
		received |= k == K(RECEIVED);
		rejected |= k == K(REJECTED);
		/* the sender's own entries first: they come before its recipients' */
		if (!w->value[0] && e->outcome[0] && (k == K(SENT) || !sent))
			w->value = e->outcome;
		if (!w->ref[0] && e->ref[0] && (k == K(SENT) || !sent))
			w->ref = e->ref;
	}
	if (w->at == INT64_MAX) {
		free(w->to);
		w->to = NULL;
		return -1; /* only a broker's or an operator's entries */
	}
	w->refused = rejected && !received;
	return 0;
}

/* The evidence of a message: what its sender and recipients recorded of it,
 * then the cited message's SENT entries. */
static size_t evidence_of(const struct replay *r, const struct wmsg *w, const char *cited,
                          const struct ev **out, size_t max)
{
	size_t k = 0, dn = 0;
	struct ev *const *dg = cited && cited[0] ? group_find(r, cited, &dn) : NULL;

	for (size_t i = 0; i < w->n && k < max; i++)
		if (w->g[i]->e->kind == K(SENT) || w->g[i]->e->kind == K(RECEIVED) ||
		    w->g[i]->e->kind == K(REJECTED))
			out[k++] = w->g[i];
	for (size_t i = 0; i < dn && k < max; i++)
		if (dg[i]->e->kind == K(SENT))
			out[k++] = dg[i];
	return k;
}

static int found(const struct replay *r, const char *kind, const char *msgid)
{
	for (size_t i = 0; i < r->nf; i++)
		if (strcmp(r->f[i].kind, kind) == 0 && strcmp(r->f[i].msgid, msgid) == 0)
			return 1;
	return 0;
}

/* 1 if t moves a thread by its value (a decision's outcome, a travel's
 * status): without the value, its move cannot be told. */
static int moves_by_value(const tern_msgtype *t)
{
	for (const tern_wf_transition *x = t->transitions; x && x->to; x++)
		if (x->value != -1)
			return 1;
	return 0;
}

/* The thread of the message ref cites is followed no further: its root's
 * state is none, as a node's record of a thread begun before the workflow,
 * which later moves are not judged against. */
static void untrace(tern_wf_records *held, const char *ref)
{
	const tern_wf_record *cited = ref[0] ? tern_wf_records_get(held, ref) : NULL;
	const char *root = cited && cited->root[0] ? cited->root : ref;
	const tern_wf_record *r = cited ? tern_wf_records_get(held, root) : NULL;
	tern_wf_record *copy;

	if (r == NULL || (copy = tern_wf_record_copy(r)) == NULL)
		return;
	copy->state = 0;
	(void)tern_wf_records_put(held, root, &copy);
}

/* Judges one message as an auditor holding every archive: every role, so the
 * rules of every holder apply; what it keeps moves the thread for the next. */
static void judge_one(struct replay *r, const struct wmsg *w, tern_wf_records *held)
{
	const char *msgid = w->g[0]->e->message_id, *case_id = w->g[0]->case_id;
	const struct ev *evd[64];
	size_t nevd;
	const audit_member *sm = member(r, w->sender);
	tern_wf_msg m = {.msgid = msgid,
	                 .type = w->t,
	                 .sender = w->sender,
	                 .to = (const char *const *)w->to,
	                 .nto = w->nto,
	                 .case_id = case_id,
	                 .value = w->value,
	                 .ref = w->ref};
	tern_wf_verdict v;
	int keep = !w->refused;

	/* A sender whose role may not send the type is wrong-role already (and
	 * the broker refuses it): it moves nothing, and is judged no further. */
	if (sm && w->t->sender_roles && !(sm->roles & w->t->sender_roles))
		return;
	if (!tern_workflow_recipients_ok(w->t, w->nto)) {
		nevd = evidence_of(r, w, NULL, evd, 64);
		find(r, tern_reason_code(TERN_REASON_TOO_MANY_RECIPIENTS), evd, nevd,
		     "%s %s from %s to %zu recipients; it goes to at most %u", w->t->name, msgid,
		     w->sender, w->nto, w->t->max_recipients);
		keep = 0; /* the broker refuses it: no one holds it */
	}
	for (size_t i = 0; i < w->nto; i++) {
		const audit_member *rm = member(r, w->to[i]);
		if (rm && !tern_workflow_recipient_ok(w->t, rm->roles)) {
			char roles[64];
			tern_roles_format(rm->roles, roles, sizeof(roles));
			nevd = evidence_of(r, w, NULL, evd, 64);
			find(r, tern_reason_code(TERN_REASON_WRONG_RECIPIENT_ROLE), evd, nevd,
			     "%s %s from %s to %s, whose role (%s) may not receive it", w->t->name,
			     msgid, w->sender, w->to[i], roles);
			keep = 0; /* the broker refuses it: no one holds it */
		}
	}
	if (tern_workflow_judge(&m, "audit", ~0u & ~TERN_ROLE_BROKER, 0, tern_wf_records_lookup,
	                        held, &v) != TERN_OK) {
		tern_wf_verdict_clear(&v);
		return;
	}
	if (v.reason == TERN_REASON_WRONG_STATE && !w->value[0] && moves_by_value(w->t)) {
		/* Its entries name no value: logged by a release from before
		 * they did (5787a07 named a decision's outcome, not a travel's
		 * status). What it did to its thread cannot be told, so neither
		 * its move nor what follows it in the thread is judged; what it
		 * cites still is (above). */
		untrace(held, w->ref);
		tern_wf_verdict_clear(&v);
		return;
	}
	if (v.reason != TERN_REASON_NONE) {
		const char *code = tern_reason_code(v.reason);
		keep = 0;
		/* travel after a decision that did not accept: illegal-transition */
		if (!(v.reason == TERN_REASON_DECISION_NOT_ACCEPTED &&
		      found(r, "illegal-transition", msgid))) {
			size_t dn = 0;
			nevd = evidence_of(r, w, w->ref, evd, 64);
			if (v.unknown_ref) {
				/* the auditor holds every archive: no one held it when
				 * this was sent, because it came only later, or the
				 * workflow refused it, or it never was */
				struct ev *const *dg = group_find(r, w->ref, &dn);
				int64_t at = INT64_MAX;
				for (size_t q = 0; q < dn; q++)
					if (dg[q]->e->kind == K(SENT) && dg[q]->e->at < at)
						at = dg[q]->e->at;
				for (size_t q = 0; q < dn && at == INT64_MAX; q++)
					if (dg[q]->e->at < at)
						at = dg[q]->e->at;
				find(r, code, evd, nevd, "%s %s from %s in case %s cites %s, %s",
				     w->t->name, msgid, w->sender, case_id, w->ref,
				     dn == 0 ? "which no archive holds"
				     : at > w->at
				         ? "which was sent only after it"
				         : "which the workflow refused (it moves nothing)");
			} else {
				find(r, code, evd, nevd, "%s %s from %s in case %s: %s", w->t->name,
				     msgid, w->sender, case_id, v.text);
			}
		}
	}
	if (keep) {
		/* What cannot be kept (out of memory) is judged as not held: the
		 * findings then say what this replay could not see. */
		(void)tern_wf_records_put(held, msgid, &v.record);
		if (v.root_record)
			(void)tern_wf_records_put(held, v.root, &v.root_record);
	}
	tern_wf_verdict_clear(&v);
}

/* A recipient's refusal that names a rule of the workflow: the evidence of a
 * violation replay may not see itself (unknown-member needs the body). */
static void refusals(struct replay *r, const struct ev *const *g, size_t n)
{
	static const tern_reason rules[] = {
	    TERN_REASON_WRONG_RECIPIENT_ROLE, TERN_REASON_REFERENCE_NOT_SHARED,
	    TERN_REASON_UNKNOWN_MEMBER,       TERN_REASON_SUPERSEDED,
	    TERN_REASON_WRONG_STATE,          TERN_REASON_UNKNOWN_REFERRAL,
	    TERN_REASON_UNKNOWN_DECISION,     TERN_REASON_UNKNOWN_REFERENCE};

	for (size_t i = 0; i < n; i++) {
		const struct ev *v = g[i];
		if (v->e->kind != K(REJECTED))
			continue;
		for (size_t k = 0; k < sizeof(rules) / sizeof(rules[0]); k++)
			if (strcmp(v->e->reason, tern_reason_code(rules[k])) == 0)
				find(r, v->e->reason, &v, 1, "%s %s from %s refused by %s: %s",
				     type_of(g, n)[0] ? type_of(g, n) : "message", v->e->message_id,
				     v->e->peer, owner(v), v->e->reason);
	}
}

/* The workflow table (tern/workflow.h), as the nodes apply it, over every
 * business message in the order their senders sent them. */
void check_threads(struct replay *r)
{
	struct wmsg *ws = calloc(r->nbymsg ? r->nbymsg : 1, sizeof(*ws));
	tern_wf_records *held = tern_wf_records_new();
	size_t nw = 0;

	for (size_t i = 0; ws && held && i < r->nbymsg;) {
		size_t j = i;
		const struct ev *const *g = (const struct ev *const *)&r->bymsg[i];
		while (j < r->nbymsg &&
		       strcmp(r->bymsg[j]->e->message_id, r->bymsg[i]->e->message_id) == 0)
			j++;
		if (wmsg_of(r, g, j - i, &ws[nw]) == 0)
			nw++;
		i = j;
	}
	if (ws)
		qsort(ws, nw, sizeof(*ws), wmsg_cmp);
	for (size_t i = 0; held && i < nw; i++) {
		judge_one(r, &ws[i], held);
	}
	/* every message's, the broker's too (its entries name no type or case) */
	for (size_t i = 0; i < r->nbymsg;) {
		size_t j = i;
		while (j < r->nbymsg &&
		       strcmp(r->bymsg[j]->e->message_id, r->bymsg[i]->e->message_id) == 0)
			j++;
		refusals(r, (const struct ev *const *)&r->bymsg[i], j - i);
		i = j;
	}
	for (size_t i = 0; i < nw; i++)
		free(ws[i].to);
	free(ws);
	tern_wf_records_free(&held);
}

/* --- output ------------------------------------------------------------------------- */

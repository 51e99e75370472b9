/* tern audit replay: folds several agencies' archives into each case's
 * timeline and reports what does not add up, with the evidence (log, index,
 * the checkpoint that signs it). See docs/audit.md for the rules. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/reason.h>
#include <tern/workflow.h>

#include "audit_archive.h"
#include "audit_cmd.h"
#include "cli.h"

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

static struct replay *R; /* for the integrity callback */

static const char *kind_name(int k)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&tern__v1__audit_entry__kind__descriptor, k);
	return v ? v->name : "?";
}

static const char *owner(const struct ev *v)
{
	return v->ar->a->log_id;
}

static struct finding *finding_get(struct replay *r, const char *kind, const char *case_id,
                                   const char *msgid)
{
	struct finding *f;

	for (size_t i = 0; i < r->nf; i++)
		if (strcmp(r->f[i].kind, kind) == 0 && msgid[0] &&
		    strcmp(r->f[i].msgid, msgid) == 0)
			return &r->f[i];
	if ((f = realloc(r->f, (r->nf + 1) * sizeof(*f))) == NULL)
		return NULL;
	r->f = f;
	f = &r->f[r->nf++];
	memset(f, 0, sizeof(*f));
	snprintf(f->kind, sizeof(f->kind), "%s", kind);
	snprintf(f->case_id, sizeof(f->case_id), "%s", case_id ? case_id : "");
	snprintf(f->msgid, sizeof(f->msgid), "%s", msgid);
	f->evidence = json_array();
	return f;
}

/* One finding per kind and message; later evidence joins the first. */
static void find(struct replay *r, const char *kind, const struct ev *const *ev, size_t nev,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void find(struct replay *r, const char *kind, const struct ev *const *ev, size_t nev,
                 const char *fmt, ...)
{
	const struct ev *first = nev ? ev[0] : NULL;
	struct finding *f =
	    finding_get(r, kind, first ? first->case_id : "", first ? first->e->message_id : "");
	va_list ap;

	if (f == NULL)
		return;
	if (f->text == NULL) {
		va_start(ap, fmt);
		if (vasprintf(&f->text, fmt, ap) < 0)
			f->text = NULL;
		va_end(ap);
	}
	for (size_t i = 0; i < nev; i++) {
		json_t *it;
		size_t j;
		int dup = 0;
		json_array_foreach(f->evidence, j, it)
		{
			dup |= strcmp(json_string_value(json_object_get(it, "log")),
			              owner(ev[i])) == 0 &&
			       (uint64_t)json_integer_value(json_object_get(it, "index")) ==
			           ev[i]->index;
		}
		if (!dup)
			json_array_append_new(f->evidence,
			                      json_pack("{s:s, s:s, s:I, s:I}", "log", owner(ev[i]),
			                                "file", ev[i]->ar->file, "index",
			                                (json_int_t)ev[i]->index, "checkpoint",
			                                (json_int_t)ev[i]->checkpoint));
	}
}

static void integrity(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void integrity(const char *file, const char *fmt, ...)
{
	struct finding *f = finding_get(R, "integrity", "", "");
	va_list ap;
	char *msg = NULL;

	if (f == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (asprintf(&f->text, "%s: %s", file, msg ? msg : "") < 0)
		f->text = NULL;
	free(msg);
}

/* --- indexing ----------------------------------------------------------------------- */

static uint64_t covering_checkpoint(const struct log *l, uint64_t index)
{
	size_t lo = 0, hi = l->nsizes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->sizes[mid] > index)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < l->nsizes ? l->sizes[lo] : 0;
}

static int size_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static void log_index(struct log *l, const audit_archive *ar)
{
	const Tern__V1__AuditArchive *a = ar->a;

	l->ar = ar;
	l->sizes = calloc(a->n_checkpoints + 1, sizeof(uint64_t));
	for (size_t c = 0; l->sizes && c < a->n_checkpoints; c++) {
		char origin[TERN_NOTE_NAME_MAX + 1];
		tern_hash root;
		if (tern_checkpoint_parse(a->checkpoints[c], origin, &l->sizes[l->nsizes], root) ==
		    TERN_OK)
			l->nsizes++;
	}
	if (l->sizes)
		qsort(l->sizes, l->nsizes, sizeof(uint64_t), size_cmp);
	l->first_at = INT64_MAX;
	l->last_at = INT64_MIN;
	for (size_t i = 0; i < a->n_entries; i++)
		if (ar->entries[i]) {
			if (ar->entries[i]->at < l->first_at)
				l->first_at = ar->entries[i]->at;
			if (ar->entries[i]->at > l->last_at)
				l->last_at = ar->entries[i]->at;
		}
}

static int msg_cmp(const void *x, const void *y)
{
	const struct ev *a = *(struct ev *const *)x, *b = *(struct ev *const *)y;
	int c = strcmp(a->e->message_id, b->e->message_id);

	if (c)
		return c;
	return a->e->at < b->e->at ? -1 : a->e->at > b->e->at;
}

static int time_cmp(const void *x, const void *y)
{
	const struct ev *a = x, *b = y;
	int c = strcmp(a->case_id, b->case_id);

	if (c)
		return c;
	if (a->e->at != b->e->at)
		return a->e->at < b->e->at ? -1 : 1;
	c = strcmp(owner(a), owner(b));
	return c ? c : (a->index < b->index ? -1 : a->index > b->index);
}

static const struct log *log_of(const struct replay *r, const char *id)
{
	for (size_t i = 0; i < r->nlogs; i++)
		if (strcmp(r->logs[i].ar->a->log_id, id) == 0)
			return &r->logs[i];
	return NULL;
}

/* Whether the log of id is here and was recording at time t. */
static int covers(const struct replay *r, const char *id, int64_t t)
{
	const struct log *l = log_of(r, id);
	return l && l->first_at <= t && t <= l->last_at;
}

static const audit_member *member(const struct replay *r, const char *id)
{
	for (size_t i = 0; i < r->nlogs; i++) {
		const audit_member *m = audit_member_find(r->logs[i].ar, id);
		if (m)
			return m;
	}
	return NULL;
}

static int is_broker(const struct replay *r, const char *id)
{
	const audit_member *m = member(r, id);
	return m && (m->roles & TERN_ROLE_BROKER);
}

/* The events about msgid, which sort together in bymsg. */
static struct ev *const *group_find(const struct replay *r, const char *msgid, size_t *n)
{
	size_t lo = 0, hi = r->nbymsg, end;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(r->bymsg[mid]->e->message_id, msgid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < r->nbymsg && strcmp(r->bymsg[end]->e->message_id, msgid) == 0; end++)
		;
	*n = end - lo;
	return &r->bymsg[lo];
}

/* Whether log ar sent a receipt for msgid: receipts sort by what they answer. */
static int ref_cmp(const void *x, const void *y)
{
	const struct ev *a = *(struct ev *const *)x, *b = *(struct ev *const *)y;
	int c = strcmp(a->e->ref, b->e->ref);

	return c ? c : (a->ar < b->ar ? -1 : a->ar > b->ar);
}

static int receipt_sent(const struct replay *r, const audit_archive *ar, const char *msgid)
{
	size_t lo = 0, hi = r->nreceipts;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(r->receipts[mid]->e->ref, msgid);
		if (c == 0 && r->receipts[mid]->ar == ar)
			return 1;
		if (c < 0 || (c == 0 && r->receipts[mid]->ar < ar))
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* --- the rules ---------------------------------------------------------------------- */

/* The events about one message id: g[0..n). */
static const struct ev *first_of(const struct ev *const *g, size_t n, const char *log, int kind,
                                 const char *peer)
{
	for (size_t i = 0; i < n; i++)
		if ((int)g[i]->e->kind == kind && (!log || strcmp(owner(g[i]), log) == 0) &&
		    (!peer || strcmp(g[i]->e->peer, peer) == 0))
			return g[i];
	return NULL;
}

static const char *sender_of(const struct replay *r, const struct ev *const *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int k = g[i]->e->kind;
		if (k == K(SENT) || k == K(RECEIPT_SENT))
			return owner(g[i]);
		if ((k == K(RECEIVED) || k == K(REJECTED) || k == K(RELAYED)) &&
		    !is_broker(r, g[i]->e->peer))
			return g[i]->e->peer;
	}
	return NULL;
}

static const char *type_of(const struct ev *const *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (g[i]->e->type[0] && g[i]->e->kind != K(OPERATOR))
			return g[i]->e->type;
	return "";
}

static void check_message(struct replay *r, const struct ev *const *g, size_t n)
{
	const char *msgid = g[0]->e->message_id, *sender = sender_of(r, g, n);
	const char *type = type_of(g, n);
	const tern_msgtype *t = tern_msgtype_by_name(type);

	/* duplicate: the same event twice in one log */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (g[i]->ar == g[j]->ar && g[i]->e->kind == g[j]->e->kind &&
			    g[i]->e->kind != K(OPERATOR) && g[i]->e->kind != K(REJECTED) &&
			    strcmp(g[i]->e->peer, g[j]->e->peer) == 0) {
				const struct ev *p[2] = {g[i], g[j]};
				find(r, "duplicate", p, 2, "%s %s recorded twice by %s (%s %s)",
				     type, msgid, owner(g[i]), kind_name(g[i]->e->kind),
				     g[i]->e->peer);
			}
	/* wrong role: the sender's role may not send this type */
	if (sender && t && t->sender_roles) {
		const audit_member *m = member(r, sender);
		if (m && !(m->roles & t->sender_roles)) {
			char roles[64];
			tern_roles_format(m->roles, roles, sizeof(roles));
			find(r, "wrong-role", g, n,
			     "%s %s from %s, whose role (%s) may not send it", type, msgid, sender,
			     roles);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct ev *v = g[i];
		const entry *e = v->e;
		if (e->kind == K(REJECTED) && strcmp(e->reason, "wrong-role") == 0)
			find(r, "wrong-role", &v, 1, "%s %s from %s refused by %s: wrong role",
			     type, msgid, e->peer, owner(v));
		if (e->kind == K(RECEIVED)) {
			const struct ev *s = NULL;
			/* orphan: received what its sender never sent */
			if (covers(r, e->peer, e->at) &&
			    (s = first_of(g, n, e->peer, K(SENT), owner(v))) == NULL) {
				find(r, "orphan", &v, 1,
				     "%s received %s %s from %s, whose log has no SENT of it",
				     owner(v), type, msgid, e->peer);
			}
			if (s && (s->e->digest.len != e->digest.len ||
			          memcmp(s->e->digest.data, e->digest.data, e->digest.len) != 0)) {
				const struct ev *p[2] = {s, v};
				find(r, "altered", p, 2,
				     "%s %s: the envelope %s received is not the one %s sent", type,
				     msgid, owner(v), e->peer);
			}
			/* gap: no broker relayed it */
			for (size_t l = 0; l < r->nlogs; l++) {
				const audit_archive *b = r->logs[l].ar;
				if ((b->owner && (b->owner->roles & TERN_ROLE_BROKER)) &&
				    covers(r, b->a->log_id, e->at) &&
				    !first_of(g, n, b->a->log_id, K(RELAYED), NULL))
					find(r, "gap", &v, 1,
					     "%s received %s %s, which broker %s never relayed",
					     owner(v), type, msgid, b->a->log_id);
			}
			/* missing receipt, at the recipient and at the sender */
			if (strcmp(type, "receipt") != 0) {
				const struct log *rl = log_of(r, owner(v)),
				                 *sl = log_of(r, e->peer);
				if (!receipt_sent(r, v->ar, msgid) && rl &&
				    rl->last_at > e->at + RECEIPT_GRACE_MS)
					find(r, "missing-receipt", &v, 1,
					     "%s received %s %s but never sent a receipt for it",
					     owner(v), type, msgid);
				if (sl && sl->last_at > e->at + RECEIPT_GRACE_MS &&
				    !first_of(g, n, e->peer, K(RECEIPT_RECEIVED), owner(v)))
					find(r, "missing-receipt", &v, 1,
					     "%s never recorded %s's receipt for %s %s", e->peer,
					     owner(v), type, msgid);
			}
		}
		/* gap: acknowledged, but the acknowledging log has no RECEIVED */
		if (e->kind == K(RECEIPT_RECEIVED) && e->reason[0] == 0 &&
		    strcmp(e->outcome, "rejected") != 0 && covers(r, e->peer, e->at) &&
		    !first_of(g, n, e->peer, K(RECEIVED), NULL) &&
		    !first_of(g, n, e->peer, K(REJECTED), NULL))
			find(r, "gap", &v, 1,
			     "%s holds %s's receipt for %s %s, but %s's log has no RECEIVED of it",
			     owner(v), e->peer, type, msgid, e->peer);
	}
}

/* What a type may cite only with a given value (docs/messages.md: travel,
 * health, orientation and the handover follow an accepting decision), from
 * the table: a message citing one whose recorded value differs, or refused by
 * a recipient for it (decision-not-accepted), is an illegal transition. */
static void check_workflow(struct replay *r)
{
	for (size_t i = 0; i < r->nbymsg;) {
		size_t j = i;
		const struct ev *const *g = (const struct ev *const *)&r->bymsg[i];
		while (j < r->nbymsg &&
		       strcmp(r->bymsg[j]->e->message_id, r->bymsg[i]->e->message_id) == 0)
			j++;
		const tern_msgtype *t = tern_msgtype_by_name(type_of(g, j - i));
		const tern_msgtype *rt =
		    t && t->ref_value ? tern_msgtype_by_type(t->ref_type) : NULL;
		if (rt) {
			const char *ref = "";
			for (size_t q = 0; q < j - i && !ref[0]; q++)
				ref = g[q]->e->ref;
			/* The message it cites, as any log recorded it: of the type it
			 * must cite (another is the workflow's unknown-* finding). */
			const struct ev *d = NULL;
			size_t dn = 0;
			struct ev *const *dg = ref[0] ? group_find(r, ref, &dn) : NULL;
			if (dn && strcmp(type_of((const struct ev *const *)dg, dn), rt->name) != 0)
				dn = 0;
			for (size_t q = 0; q < dn && d == NULL; q++)
				if (dg[q]->e->outcome[0] &&
				    (dg[q]->e->kind == K(SENT) || dg[q]->e->kind == K(RECEIVED)))
					d = dg[q];
			for (size_t q = 0; q < j - i; q++) {
				const struct ev *v = g[q];
				int bad =
				    (d && strcmp(d->e->outcome, t->ref_value) != 0 &&
				     (v->e->kind == K(SENT) || v->e->kind == K(RECEIVED))) ||
				    (v->e->kind == K(REJECTED) &&
				     strcmp(v->e->reason,
				            tern_reason_code(TERN_REASON_DECISION_NOT_ACCEPTED)) ==
				         0);
				if (!bad)
					continue;
				if (d) {
					const struct ev *p[2] = {v, d};
					find(r, "illegal-transition", p, 2,
					     "%s %s for case %s, whose %s %s was %s (not %s)",
					     t->name, v->e->message_id, v->case_id, rt->name, ref,
					     d->e->outcome, t->ref_value);
				} else {
					find(r, "illegal-transition", &v, 1,
					     "%s %s for case %s, refused by %s: its %s is not %s",
					     t->name, v->e->message_id, v->case_id, owner(v),
					     rt->name, t->ref_value);
				}
			}
		}
		i = j;
	}
}

/* --- the workflow table, across agencies --------------------------------------------- */

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

static int held_get(void *arg, const char *msgid, json_t **rec)
{
	json_t *x = json_object_get(arg, msgid);

	if (x == NULL)
		return TERN_ENOENT;
	*rec = json_incref(x);
	return TERN_OK;
}

/* Judges one message as an auditor holding every archive: every role, so the
 * rules of every holder apply; what it keeps moves the thread for the next. */
static void judge_one(struct replay *r, const struct wmsg *w, json_t *held)
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
	if (tern_workflow_judge(&m, "audit", ~0u & ~TERN_ROLE_BROKER, 0, held_get, held, &v) !=
	    TERN_OK) {
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
		json_object_set(held, msgid, v.record);
		if (v.root_record)
			json_object_set(held, v.root, v.root_record);
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
static void check_threads(struct replay *r)
{
	struct wmsg *ws = calloc(r->nbymsg ? r->nbymsg : 1, sizeof(*ws));
	json_t *held = json_object();
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
	json_decref(held);
}

/* --- output ------------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[24];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", s, (int)(ms % 1000));
}

static int in_scope(const struct replay *r, const char *case_id)
{
	return r->only_case == NULL || strcmp(case_id, r->only_case) == 0;
}

static json_t *event_json(const struct ev *v)
{
	char at[32];
	json_t *o;

	fmt_time(v->e->at, at, sizeof(at));
	o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "at", at, "log", owner(v),
	              "index", (json_int_t)v->index, "checkpoint", (json_int_t)v->checkpoint,
	              "kind", kind_name(v->e->kind), "message_id", v->e->message_id, "type",
	              v->e->type, "peer", v->e->peer);
	if (v->e->reason[0])
		json_object_set_new(o, "reason", json_string(v->e->reason));
	if (v->e->outcome[0])
		json_object_set_new(o, "outcome", json_string(v->e->outcome));
	if (v->e->ref[0])
		json_object_set_new(o, "ref", json_string(v->e->ref));
	return o;
}

static int print(struct replay *r, int json)
{
	json_t *cases = json_array(), *fs = json_array(), *cur = NULL;
	const char *cur_case = NULL;
	size_t nf = 0;

	for (size_t i = 0; i < r->nevs; i++) {
		const struct ev *v = &r->evs[i];
		if (!v->case_id[0] || !in_scope(r, v->case_id))
			continue;
		if (cur_case == NULL || strcmp(cur_case, v->case_id) != 0) {
			cur_case = v->case_id;
			cur = json_array();
			json_array_append_new(
			    cases, json_pack("{s:s, s:o}", "case_id", cur_case, "timeline", cur));
		}
		json_array_append_new(cur, event_json(v));
	}
	for (size_t i = 0; i < r->nf; i++) {
		const struct finding *f = &r->f[i];
		if (f->case_id[0] ? !in_scope(r, f->case_id)
		                  : r->only_case != NULL && strcmp(f->kind, "integrity") != 0)
			continue;
		nf++;
		json_array_append_new(fs, json_pack("{s:s, s:s, s:s, s:s, s:O}", "kind", f->kind,
		                                    "case_id", f->case_id, "message_id", f->msgid,
		                                    "text", f->text ? f->text : "", "evidence",
		                                    f->evidence));
	}
	if (json) {
		json_t *o = json_pack("{s:o, s:o}", "cases", cases, "findings", fs);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
		return nf ? CLI_NO : CLI_OK;
	}
	{
		size_t ci, ei;
		json_t *c, *e;
		json_array_foreach(cases, ci, c)
		{
			json_t *tl = json_object_get(c, "timeline");
			printf("case %s: %zu events\n",
			       json_string_value(json_object_get(c, "case_id")),
			       json_array_size(tl));
			json_array_foreach(tl, ei, e)
			{
				const char *peer = json_string_value(json_object_get(e, "peer"));
				const char *reason =
				    json_string_value(json_object_get(e, "reason"));
				const char *outcome =
				    json_string_value(json_object_get(e, "outcome"));
				printf("  %s  %-9s #%-5lld %-17s %-20s %s%s%s%s%s%s%s\n",
				       json_string_value(json_object_get(e, "at")),
				       json_string_value(json_object_get(e, "log")),
				       (long long)json_integer_value(json_object_get(e, "index")),
				       json_string_value(json_object_get(e, "kind")),
				       json_string_value(json_object_get(e, "type")),
				       json_string_value(json_object_get(e, "message_id")),
				       peer && peer[0] ? " peer " : "", peer ? peer : "",
				       outcome ? " " : "", outcome ? outcome : "",
				       reason ? " reason " : "", reason ? reason : "");
			}
		}
		json_array_foreach(fs, ci, c)
		{
			size_t k;
			json_t *ev;
			printf("finding %s: %s\n", json_string_value(json_object_get(c, "kind")),
			       json_string_value(json_object_get(c, "text")));
			json_array_foreach(json_object_get(c, "evidence"), k, ev) printf(
			    "  evidence: %s's log, entry %lld, signed by checkpoint %lld (%s)\n",
			    json_string_value(json_object_get(ev, "log")),
			    (long long)json_integer_value(json_object_get(ev, "index")),
			    (long long)json_integer_value(json_object_get(ev, "checkpoint")),
			    json_string_value(json_object_get(ev, "file")));
		}
		printf("%zu finding%s\n", nf, nf == 1 ? "" : "s");
	}
	json_decref(cases);
	json_decref(fs);
	return nf ? CLI_NO : CLI_OK;
}

/* --- the command -------------------------------------------------------------------- */

int audit_replay(int nfiles, char **files, const char *case_id, int json)
{
	struct replay r = {.only_case = case_id};
	audit_archive *ars = calloc((size_t)nfiles, sizeof(*ars));
	size_t nars = 0, total = 0;
	int ret = CLI_FAIL;

	R = &r;
	if (ars == NULL || (r.logs = calloc((size_t)nfiles, sizeof(*r.logs))) == NULL)
		goto out;
	for (int i = 0; i < nfiles; i++) {
		if (audit_archive_load(files[i], &ars[nars], integrity, 1) != 0)
			continue;
		for (size_t j = 0; j < nars; j++)
			if (strcmp(ars[j].a->log_id, ars[nars].a->log_id) == 0)
				integrity(files[i],
				          "a second archive of %s's log (the first is %s)",
				          ars[j].a->log_id, ars[j].file);
		total += ars[nars].a->n_entries;
		nars++;
	}
	/* Replay rests on the archives being what their owners signed. */
	audit_verify_archives(ars, nars, integrity);
	if ((r.evs = calloc(total ? total : 1, sizeof(*r.evs))) == NULL ||
	    (r.bymsg = calloc(total ? total : 1, sizeof(*r.bymsg))) == NULL ||
	    (r.receipts = calloc(total ? total : 1, sizeof(*r.receipts))) == NULL)
		goto out;
	for (size_t i = 0; i < nars; i++) {
		log_index(&r.logs[r.nlogs++], &ars[i]);
		for (size_t k = 0; k < ars[i].a->n_entries; k++) {
			const entry *e = ars[i].entries[k];
			if (e == NULL || e->kind == K(COSIGNED))
				continue;
			r.evs[r.nevs] = (struct ev){
			    &ars[i], ars[i].a->first_index + k, e,
			    covering_checkpoint(&r.logs[r.nlogs - 1], ars[i].a->first_index + k),
			    e->case_id};
			r.nevs++;
		}
	}
	/* Entries without a case id (an inbox acknowledgement) take their message's. */
	for (size_t i = 0; i < r.nevs; i++)
		if (r.evs[i].e->message_id[0])
			r.bymsg[r.nbymsg++] = &r.evs[i];
	qsort(r.bymsg, r.nbymsg, sizeof(*r.bymsg), msg_cmp);
	for (size_t i = 0; i < r.nevs; i++)
		if (r.evs[i].e->kind == K(RECEIPT_SENT))
			r.receipts[r.nreceipts++] = &r.evs[i];
	qsort(r.receipts, r.nreceipts, sizeof(*r.receipts), ref_cmp);
	for (size_t i = 0; i < r.nbymsg;) {
		size_t j = i;
		const char *c = "";
		while (j < r.nbymsg &&
		       strcmp(r.bymsg[j]->e->message_id, r.bymsg[i]->e->message_id) == 0) {
			if (!c[0])
				c = r.bymsg[j]->e->case_id;
			j++;
		}
		for (size_t q = i; q < j; q++)
			if (!r.bymsg[q]->case_id[0])
				r.bymsg[q]->case_id = c;
		i = j;
	}
	for (size_t i = 0; i < r.nbymsg;) {
		size_t j = i;
		while (j < r.nbymsg &&
		       strcmp(r.bymsg[j]->e->message_id, r.bymsg[i]->e->message_id) == 0)
			j++;
		check_message(&r, (const struct ev *const *)&r.bymsg[i], j - i);
		i = j;
	}
	check_workflow(&r);
	check_threads(&r);
	/* The timeline: by case, then time; bymsg points into evs, so sort last. */
	qsort(r.evs, r.nevs, sizeof(*r.evs), time_cmp);
	ret = print(&r, json);
out:
	for (size_t i = 0; i < r.nf; i++) {
		free(r.f[i].text);
		json_decref(r.f[i].evidence);
	}
	free(r.f);
	for (size_t i = 0; i < r.nlogs; i++)
		free(r.logs[i].sizes);
	free(r.logs);
	free(r.evs);
	free(r.bymsg);
	free(r.receipts);
	for (size_t i = 0; i < nars; i++)
		audit_archive_free(&ars[i]);
	free(ars);
	R = NULL;
	return ret;
}

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
#include "audit_replay_int.h"

static struct replay *R; /* for the integrity callback */

static const char *kind_name(int k)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&tern__v1__audit_entry__kind__descriptor, k);
	return v ? v->name : "?";
}

const char *owner(const struct ev *v)
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

void find(struct replay *r, const char *kind, const struct ev *const *ev, size_t nev,
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

const audit_member *member(const struct replay *r, const char *id)
{
	for (size_t i = 0; i < r->nlogs; i++) {
		const audit_member *m = audit_member_find(r->logs[i].ar, id);
		if (m)
			return m;
	}
	return NULL;
}

int is_broker(const struct replay *r, const char *id)
{
	const audit_member *m = member(r, id);
	return m && (m->roles & TERN_ROLE_BROKER);
}

/* The events about msgid, which sort together in bymsg. */
struct ev *const *group_find(const struct replay *r, const char *msgid, size_t *n)
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

const char *sender_of(const struct replay *r, const struct ev *const *g, size_t n)
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

const char *type_of(const struct ev *const *g, size_t n)
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
	json_t *o, *a;

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
	if ((a = att_json(v->e)) != NULL)
		json_object_set_new(o, "attachments", a);
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
				att_print(e);
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
		int lrc = audit_archive_load(files[i], &ars[nars], integrity, 1);
		if (lrc == -2) /* replay counts an archive it cannot read as a finding */
			integrity(files[i], "cannot read: %s", tern_errdetail());
		if (lrc != 0)
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
			if (e == NULL || e->kind == K(COSIGNED) || e->kind == K(REANCHORED))
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
		check_attachments(&r, (const struct ev *const *)&r.bymsg[i], j - i);
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

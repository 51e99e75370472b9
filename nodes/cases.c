/* Cases: the case view (`tern case show`, GET /v1/cases/{caseId}, the local
 * API's "case.show"; docs/api.md) and the index of held messages by case.
 *
 * A case's sent and received messages are found through the listing
 * index's 'c' keys (msglist.c), written with each message. The cases table
 * maps case_id NUL msgid to 'h' for a message this node holds (held.c); the
 * entry goes when the message is received, accepted or refused. (Until
 * nodestore.proto the table indexed sent and received messages too: every
 * message then wrote two keys by case, in two B-trees, each a page of its
 * own; the view now skips such entries of an older store.) Receipts are left
 * out: they show as their message's states.
 *
 * Touches: the cases table (inside the caller's transaction); reads the
 * others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/workflow.h>

#include "node_int.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
/* The refused messages a case view lists; older ones are counted only. */
#define CASE_VIEW_REFUSED 100

static size_t case_key(char *buf, size_t len, const char *case_id, const char *msgid)
{
	size_t cl = strlen(case_id), ml = strlen(msgid);

	if (cl + 1 + ml > len)
		return 0;
	memcpy(buf, case_id, cl);
	buf[cl] = '\0';
	memcpy(buf + cl + 1, msgid, ml);
	return cl + 1 + ml;
}

int node_store_case_note(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid,
                         char kind)
{
	char kb[256];
	size_t kl;
	MDB_val k, v = {1, &kind};

	if (case_id == NULL || case_id[0] == '\0' || DBI(s, NS_CASES) == 0)
		return TERN_OK;
	if ((kl = case_key(kb, sizeof(kb), case_id, msgid)) == 0)
		return TERN_OK; /* longer than any valid case id: not indexed */
	k = (MDB_val){kl, kb};
	return MDB(mdb_put(txn, DBI(s, NS_CASES), &k, &v, 0), "index a message by case");
}

int node_store_case_forget(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid)
{
	char kb[256];
	size_t kl;
	MDB_val k;
	int rc;

	if (case_id == NULL || case_id[0] == '\0' || DBI(s, NS_CASES) == 0 ||
	    (kl = case_key(kb, sizeof(kb), case_id, msgid)) == 0)
		return TERN_OK;
	k = (MDB_val){kl, kb};
	/* A missing key is only looked up: no page is written for it. */
	rc = mdb_del(txn, DBI(s, NS_CASES), &k, NULL);
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "take a held message out of its case");
}

/* --- one booking a case ------------------------------------------------------ */

/* IOM books a family on one referral at a time: a case referred to two
 * States at once and accepted by both (nothing ties a case's threads,
 * docs/messages.md) must not be booked to both. A booking is refused while
 * another referral of the case is booked or further along, as this node
 * holds it (or this turn's batch moves it). */
#define BOOKED_ON                                                                                  \
	(TERN_CASE_BIT(TERN_CASE_BOOKED) | TERN_CASE_BIT(TERN_CASE_DEPARTED) |                     \
	 TERN_CASE_BIT(TERN_CASE_ARRIVED) | TERN_CASE_BIT(TERN_CASE_HANDED_OVER))

struct booked_scan {
	const struct node_wf_view *w;
	const char *case_id, *root;
	char other[TERN_WF_ID_MAX + 1];
	tern_case_state state;
	int rc;
};

/* What IOM's own last travel confirmation on the thread of root record rec
 * still holds the family to, when the thread's state does not say it:
 * DEPARTED or ARRIVED (the family travelled on it) whatever the state, for
 * a move that crossed the departure report (a re-acceptance, a withdrawal)
 * moves IOM's trace on without undoing the journey; ACCEPTED for a booking
 * a new acceptance left standing (members added or removed: the travel
 * stands until IOM cancels it, docs/messages.md). TERN_CASE_NONE for none
 * (no travel, a cancellation, a booking a rejection or withdrawal voided),
 * or a record that cannot be read; b->rc set for want of memory. */
static tern_case_state travel_stands(struct booked_scan *b, const tern_wf_record *rec)
{
	const char *last = tern_wf_record_last(rec, "travel-confirmation");
	tern_wf_record *t = NULL;
	tern_case_state st = TERN_CASE_NONE;
	int rc;

	if (last[0] == '\0')
		return TERN_CASE_NONE;
	if ((rc = node_wf_lookup((void *)b->w, last, &t)) == TERN_OK) {
		if (strcmp(t->value, "DEPARTED") == 0)
			st = TERN_CASE_DEPARTED;
		else if (strcmp(t->value, "ARRIVED") == 0)
			st = TERN_CASE_ARRIVED;
		else if (strcmp(t->value, "BOOKED") == 0 &&
		         (tern_case_state)rec->state == TERN_CASE_ACCEPTED)
			st = TERN_CASE_ACCEPTED;
	} else if (rc == TERN_ENOMEM) {
		b->rc = rc;
	}
	tern_wf_record_free(&t);
	return st;
}

static int booked_check(struct booked_scan *b, const char *id, const tern_wf_record *rec)
{
	tern_case_state st;

	if (strcmp(id, b->root) == 0 || strcmp(rec->case_id, b->case_id) != 0)
		return 0;
	if (TERN_CASE_BIT((tern_case_state)rec->state) & BOOKED_ON)
		b->state = (tern_case_state)rec->state;
	else if ((st = travel_stands(b, rec)) != TERN_CASE_NONE)
		b->state = st;
	else
		return b->rc != TERN_OK; /* out of memory: the scan stops */
	snprintf(b->other, sizeof(b->other), "%s", id);
	return 1;
}

static int booked_batch(const char *id, const tern_wf_record *rec, void *arg)
{
	return booked_check(arg, id, rec);
}

/* A node_store_list_case_scan visit: the thread of msgid, by its root. */
static int booked_visit(char kind, const char *msgid, void *arg)
{
	struct booked_scan *b = arg;
	tern_wf_record *rec = NULL, *root = NULL;
	int rc, found = 0;

	(void)kind;
	if ((rc = node_wf_lookup((void *)b->w, msgid, &rec)) == TERN_OK) {
		const char *rid = rec->root[0] ? rec->root : msgid;
		if (strcmp(rid, msgid) == 0)
			found = booked_check(b, rid, rec);
		else if ((rc = node_wf_lookup((void *)b->w, rid, &root)) == TERN_OK)
			found = booked_check(b, rid, root);
	}
	tern_wf_record_free(&rec);
	tern_wf_record_free(&root);
	if (rc == TERN_ENOMEM) {
		b->rc = rc;
		return 1;
	}
	return found; /* a message with no record (a receipt), a damaged one: passed over */
}

int node_case_booked_on(const struct node_wf_view *w, const char *case_id, const char *root,
                        char other[TERN_WF_ID_MAX + 1], tern_case_state *state)
{
	struct booked_scan b = {.w = w, .case_id = case_id, .root = root ? root : ""};
	const struct batch *bt = w->j->batch;
	int rc;

	other[0] = '\0';
	*state = TERN_CASE_NONE;
	if (!(bt && bt->wf && tern_wf_records_each(bt->wf, booked_batch, &b)) &&
	    (rc = node_store_list_case_scan(w->txn, w->j->store, case_id, booked_visit, &b)) !=
	        TERN_OK)
		return rc;
	if (b.rc != TERN_OK)
		return b.rc;
	memcpy(other, b.other, sizeof(b.other));
	*state = b.state;
	return TERN_OK;
}

/* --- the view ----------------------------------------------------------------- */

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

struct next_acc {
	json_t *arr;
	int failed;
};

static void add_next(const tern_msgtype *t, const char *value, tern_case_state to, void *arg)
{
	struct next_acc *na = arg;
	char roles[64];

	tern_roles_format(t->sender_roles, roles, sizeof(roles));
	if (json_array_append_new(na->arr, json_pack("{s:s, s:s, s:s, s:s}", "type", t->name,
	                                             "value", value, "from", roles, "moves_to",
	                                             tern_case_state_name(to))) != 0)
		na->failed = 1;
}

/* A record's read failing for want of memory fails the view; any other
 * failure (none, damaged) leaves that piece out, as a view of what can be
 * read. */
static int lacks(int rc)
{
	return rc == TERN_ENOMEM;
}

/* The thread rooted at root, as this node traces it: the API's view of the
 * root's record, its fields under the names the JSON records had. TERN_OK
 * with *out NULL when root's record cannot be read; TERN_ENOMEM. */
static int thread_json(MDB_txn *txn, tern_store *s, const char *root, json_t **out)
{
	tern_wf_record *rec = NULL;
	json_t *t = NULL, *last = NULL, *to = NULL;
	struct next_acc na = {NULL, 0};
	tern_case_state st;
	int rc;

	*out = NULL;
	if ((rc = node_store_ref(txn, s, root, &rec)) != TERN_OK)
		return lacks(rc) ? rc : TERN_OK;
	rc = TERN_ENOMEM;
	/* A root without last (a record from before the workflow) shows null:
	 * the judge never writes an empty one. */
	if (rec->n_last && (last = json_object()) == NULL)
		goto out;
	for (size_t i = 0; i < rec->n_last; i++)
		if (json_object_set_new(last, rec->last[i]->key,
		                        node_rec_text(rec->last[i]->value)) != 0)
			goto out;
	t = json_pack("{s:s, s:s, s:b, s:o?}", "referral_id", root, "state",
	              tern_case_state_name((tern_case_state)rec->state), "referral_held",
	              !rec->stub, "last", last);
	last = NULL;
	if (t == NULL)
		goto out;
	if (rec->sender[0] || (rec->stub && rec->n_parties)) {
		/* Held: the States it went to. Traced: the members the first
		 * message this node saw of it named, the State among them, so
		 * that IOM tells one State's thread of a case from another's. */
		char **names = rec->sender[0] ? rec->to : rec->parties;
		size_t nn = rec->sender[0] ? rec->n_to : rec->n_parties;
		if ((to = json_array()) == NULL)
			goto out;
		for (size_t i = 0; i < nn; i++)
			if (json_array_append_new(to, node_rec_text(names[i])) != 0)
				goto out;
		if (json_object_set_new(t, rec->sender[0] ? "referred_to" : "parties", to) != 0) {
			to = NULL;
			goto out;
		}
		to = NULL;
	}
	st = (tern_case_state)rec->state;
	if (tern_case_state_name(st)[0]) {
		if ((na.arr = json_array()) == NULL)
			goto out;
		tern_workflow_next(st, add_next, &na);
		if (na.failed || json_object_set_new(t, "next", na.arr) != 0) {
			if (!na.failed)
				na.arr = NULL;
			goto out;
		}
		na.arr = NULL;
	}
	*out = t;
	t = NULL;
	rc = TERN_OK;
out:
	json_decref(na.arr);
	json_decref(to);
	json_decref(last);
	json_decref(t);
	tern_wf_record_free(&rec);
	return rc;
}

/* The referral whose thread id's record (ref) belongs to: its root, or id
 * itself for a thread's first message; "" for none, or a damaged record's
 * (no thread to trace). */
static const char *thread_root(const tern_wf_record *ref, const char *id)
{
	const char *root = ref->root[0]                                           ? ref->root
	                   : tern_case_state_name((tern_case_state)ref->state)[0] ? id
	                                                                          : "";

	return tern_utf8_valid(root, strlen(root)) ? root : "";
}

/* msgid's event in the timeline. TERN_OK with *out NULL when its record
 * cannot be read; TERN_ENOMEM. */
static int event_json(node *n, MDB_txn *txn, const char *msgid, char kind, json_t **out)
{
	json_t *rec = NULL, *e = NULL, *to = NULL;
	tern_wf_record *ref = NULL;
	const char *root;
	int rc = node_store_ref(txn, n->store, msgid, &ref);

	*out = NULL;
	if (lacks(rc))
		return rc;
	rc = TERN_OK;
	if (kind == 'o' && !lacks(rc = node_store_sent_get(txn, n->store, msgid, &rec)) &&
	    rc == TERN_OK) {
		json_t *v;
		const char *who;
		rc = TERN_ENOMEM;
		if ((to = json_array()) == NULL)
			goto out;
		json_object_foreach(json_object_get(rec, "recipients"), who, v)
		{
			if (json_array_append_new(to,
			                          json_pack("{s:s, s:s, s:s}", "node_id", who,
			                                    "state", str(v, "state"), "reason_code",
			                                    str(v, "reason_code"))) != 0)
				goto out;
		}
		e = json_pack("{s:s, s:s, s:I, s:s, s:O}", "direction", "sent", "message_id", msgid,
		              "at", json_integer_value(json_object_get(rec, "created_at")), "type",
		              str(rec, "type"), "recipients", to);
		if (e == NULL)
			goto out;
	} else if (kind == 'i' && !lacks(rc = node_store_received(txn, n->store, msgid, &rec)) &&
	           rc == TERN_OK) {
		int ok = json_is_true(json_object_get(rec, "accepted"));
		rc = TERN_ENOMEM;
		e = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "direction", "received",
		              "message_id", msgid, "at",
		              json_integer_value(json_object_get(rec, "received_at")), "type",
		              str(rec, "type"), "sender", str(rec, "sender"), "state",
		              ok ? "accepted" : "refused");
		if (e == NULL ||
		    (!ok && json_object_set_new(e, "reason_code",
		                                json_string(str(rec, "reason_code"))) != 0))
			goto out;
	} else if (kind == 'h') {
		json_t *h = json_object_get(n->held, msgid);
		rc = TERN_ENOMEM;
		e = json_pack("{s:s, s:s, s:s, s:I}", "direction", "held", "message_id", msgid,
		              "awaiting", str(h, "ref"), "until",
		              json_integer_value(json_object_get(h, "until")));
		/* A held message has no record yet: its type and sender are the
		 * held table's. */
		if (e == NULL || json_object_set_new(e, "type", json_string(str(h, "type"))) != 0 ||
		    json_object_set_new(e, "sender", json_string(str(h, "sender"))) != 0)
			goto out;
	} else if (lacks(rc)) {
		goto out;
	}
	rc = TERN_ENOMEM;
	if (e && ref) {
		/* value only: a record from before the workflow (its outcome) shows
		 * none. node_rec_text: a damaged record's text cut to its valid
		 * UTF-8 start; NULL only for want of memory. */
		if ((ref->value[0] &&
		     json_object_set_new(e, "value", node_rec_text(ref->value)) != 0) ||
		    (ref->ref[0] && json_object_set_new(e, "cites", node_rec_text(ref->ref)) != 0))
			goto out;
		/* The thread's referral, so that a case referred to two States
		 * reads line by line (UNHCR's timeline could not say which
		 * State's decision a line was); the referral's own line too. */
		root = thread_root(ref, msgid);
		if (root[0] && json_object_set_new(e, "referral_id", json_string(root)) != 0)
			goto out;
	}
	*out = e;
	e = NULL;
	rc = TERN_OK;
out:
	json_decref(e);
	json_decref(to);
	json_decref(rec);
	tern_wf_record_free(&ref);
	return rc;
}

static int by_time(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "at"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "at"));

	return x < y ? -1 : x > y;
}

struct view_acc {
	node *n;
	MDB_txn *txn;
	json_t *events, *threads;
	int rc; /* TERN_ENOMEM once a piece could not be made: no view */
};

/* One message of the case: its event, and the thread it belongs to. */
static int view_add(char kind, const char *id, void *arg)
{
	struct view_acc *va = arg;
	json_t *e;
	tern_wf_record *ref = NULL;
	const char *root;
	int rc;

	if ((rc = event_json(va->n, va->txn, id, kind, &e)) != TERN_OK ||
	    (e && json_array_append_new(va->events, e) != 0))
		goto fail;
	if ((rc = node_store_ref(va->txn, va->n->store, id, &ref)) == TERN_OK) {
		root = thread_root(ref, id);
		rc = root[0] && json_object_get(va->threads, root) == NULL
		         ? json_object_set_new(va->threads, root, json_null())
		         : 0;
		tern_wf_record_free(&ref);
		if (rc != 0)
			goto fail;
	} else if (lacks(rc)) {
		goto fail;
	}
	return 0;
fail:
	va->rc = TERN_ENOMEM;
	return 1;
}

/* At IOM's node: a thread whose booking the node would refuse
 * (case-booked-elsewhere) does not offer one in its next steps, and says
 * why, naming the referral the case is booked on (a new user saw the view
 * offer what the node then refused). */
static int booking_refused(node *n, MDB_txn *txn, const char *case_id, json_t *threads)
{
	node_judge j;
	struct node_wf_view w;
	char other[TERN_WF_ID_MAX + 1];
	tern_case_state st;
	size_t i, k;
	json_t *t, *x;
	int rc;

	node_judge_of(n, &j);
	w = (struct node_wf_view){&j, txn};
	json_array_foreach(threads, i, t)
	{
		json_t *next = json_object_get(t, "next");
		if ((rc = node_case_booked_on(&w, case_id, str(t, "referral_id"), other, &st)) !=
		    TERN_OK)
			return rc;
		if (other[0] == '\0')
			continue;
		for (k = json_array_size(next); k-- > 0;) {
			x = json_array_get(next, k);
			if (strcmp(str(x, "type"), "travel-confirmation") == 0 &&
			    strcmp(str(x, "value"), "BOOKED") == 0 &&
			    json_array_remove(next, k) != 0)
				return TERN_ENOMEM;
		}
		if (json_object_set_new(
		        t, "booking_refused",
		        json_pack("{s:s, s:s, s:s}", "reason",
		                  tern_reason_code(TERN_REASON_CASE_BOOKED_ELSEWHERE),
		                  "referral_id", other, "state", tern_case_state_name(st))) != 0)
			return TERN_ENOMEM;
	}
	return TERN_OK;
}

int node_case_view(node *n, MDB_txn *txn, const char *case_id, json_t **view)
{
	tern_store *s = n->store;
	json_t *events = json_array(), *threads = json_object(), *out = NULL, *v;
	json_t **sorted = NULL;
	char kb[256];
	size_t kl = case_key(kb, sizeof(kb), case_id, ""), ne, i, refused = 0, omitted = 0;
	MDB_cursor *c = NULL;
	MDB_val k = {kl, kb}, val;
	const char *root;
	struct view_acc va = {n, txn, events, threads, TERN_OK};
	json_t *tl;
	int rc = TERN_ENOMEM;

	*view = NULL;
	if (events == NULL || threads == NULL)
		goto out;
	if (kl == 0) {
		rc = tern_fail(TERN_EINVAL, "case id %s is too long", case_id);
		goto out;
	}
	if ((rc = node_store_list_case_scan(txn, s, case_id, view_add, &va)) != TERN_OK ||
	    (rc = va.rc) != TERN_OK)
		goto out;
	/* The held deliveries' index (none in a store from before it). */
	if (DBI(s, NS_CASES) != 0) {
		if ((rc = mdb_cursor_open(txn, DBI(s, NS_CASES), &c)) != 0) {
			rc = tern_store_mdb_err(rc, "read the case index");
			goto out;
		}
		for (rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE);
		     rc == 0 && k.mv_size > kl && memcmp(k.mv_data, kb, kl) == 0;
		     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
			char id[64];
			/* 'o' and 'i' entries are an older store's: the listing index
			 * has those messages. */
			if (k.mv_size - kl >= sizeof(id) || val.mv_size != 1 ||
			    *(const char *)val.mv_data != 'h')
				continue;
			memcpy(id, (const char *)k.mv_data + kl, k.mv_size - kl);
			id[k.mv_size - kl] = '\0';
			if (view_add('h', id, &va)) {
				rc = va.rc;
				goto out;
			}
		}
		if (rc != MDB_NOTFOUND && rc != 0) {
			rc = tern_store_mdb_err(rc, "read the case index");
			goto out;
		}
	}
	rc = TERN_ENOMEM; /* from here, only memory can fail */
	/* In time order: sent by creation, received by arrival. */
	ne = json_array_size(events);
	refused = 0;
	for (i = 0; i < ne; i++)
		refused += strcmp(str(json_array_get(events, i), "state"), "refused") == 0;
	if (ne) {
		if ((sorted = calloc(ne, sizeof(*sorted))) == NULL)
			goto out;
		for (i = 0; i < ne; i++)
			sorted[i] = json_incref(json_array_get(events, i));
		qsort(sorted, ne, sizeof(*sorted), by_time);
		json_array_clear(events);
		/* Refused messages are anyone's to send: past the latest
		 * CASE_VIEW_REFUSED of them only their number is given, so that a
		 * member sending junk under a case id can neither push the case's
		 * own messages out of its view nor make the view too large to
		 * answer (a local API frame is at most 16 MiB). */
		for (i = 0; i < ne; i++) {
			if (strcmp(str(sorted[i], "state"), "refused") == 0 &&
			    refused-- > CASE_VIEW_REFUSED) {
				omitted++;
				json_decref(sorted[i]);
				continue;
			}
			if (json_array_append_new(events, sorted[i]) != 0) {
				/* the ones after it are still sorted's */
				while (++i < ne)
					json_decref(sorted[i]);
				free(sorted);
				goto out;
			}
		}
		free(sorted);
	}
	/* Whole or none: a view with a message or a thread left out for want
	 * of memory would be taken for the case's history (and an empty one
	 * for no case at all). */
	if ((tl = json_array()) == NULL)
		goto out;
	out = json_pack("{s:s, s:o, s:O, s:o, s:I}", "case_id", case_id, "threads", tl, "timeline",
	                events, "held", json_array(), "refused_omitted", (json_int_t)omitted);
	if (out == NULL)
		goto out;
	json_object_foreach(threads, root, v)
	{
		json_t *t;
		if (thread_json(txn, s, root, &t) != TERN_OK ||
		    (t && json_array_append_new(tl, t) != 0))
			goto fail;
	}
	if (n->id.self && (n->id.self->roles & TERN_ROLE_MOVEMENT) &&
	    (rc = booking_refused(n, txn, case_id, tl)) != TERN_OK)
		goto fail;
	rc = TERN_ENOMEM;
	json_array_foreach(events, i, v)
	{
		if (strcmp(str(v, "direction"), "held") == 0 &&
		    json_array_append(json_object_get(out, "held"), v) != 0)
			goto fail;
	}
	*view = out;
	rc = TERN_OK;
	goto out;
fail:
	json_decref(out);
out:
	if (c)
		mdb_cursor_close(c);
	json_decref(events);
	json_decref(threads);
	if (rc == TERN_ENOMEM)
		rc = tern_fail(TERN_ENOMEM, "out of memory building the view of case %s", case_id);
	return rc;
}

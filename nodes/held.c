/* Held deliveries (docs/messages.md, "Held messages"). Messages of one case
 * come from different senders on different streams, so a message may arrive
 * before the one it cites: a recipient that must hold the cited message to
 * judge (the workflow's ref_holders) keeps the delivery, acknowledged to the
 * broker but not yet judged, receipted or in the inbox, until the cited
 * message arrives (it is then judged as if just delivered) or [delivery]
 * hold passes (it is then refused unknown-reference).
 *
 * The store keeps what is held (written in the batch that takes the
 * delivery); n->held indexes it in memory by message id, {ref, until}, so
 * that a commit can see which held messages it set free without a scan.
 *
 * Touches: the held tables (inside the batch's write), n->held, n->batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>
#include <tern/reason.h>

#include "node_int.h"
#include "record.h"
#include "util.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))

static MDB_val sval(const char *s)
{
	MDB_val v = {strlen(s), (void *)s};
	return v;
}

/* --- the store ---------------------------------------------------------------- */

int node_store_hold(MDB_txn *txn, tern_store *s, const node_held *h)
{
	Tern__V1__HeldRecord r = TERN__V1__HELD_RECORD__INIT;
	MDB_val k = sval(h->msgid), v;
	int rc;

	r.ref = (char *)h->ref;
	r.until = h->until;
	r.sender = (char *)h->sender;
	r.case_id = (char *)h->case_id;
	r.type = (char *)h->type;
	r.len = h->len;
	if ((rc = node_store_next_seq(txn, s, "heldorder", &r.order)) != TERN_OK ||
	    (rc = node_rec_put(txn, DBI(s, NS_HELD), h->msgid, &r.base)) != TERN_OK)
		return rc;
	v = (MDB_val){h->len, (void *)h->envelope};
	if ((rc = MDB(mdb_put(txn, DBI(s, NS_HELDENV), &k, &v, 0), "hold a delivery's envelope")) !=
	    TERN_OK)
		return rc;
	return node_store_case_note(txn, s, h->case_id, h->msgid, 'h');
}

int node_store_unhold(MDB_txn *txn, tern_store *s, const char *msgid)
{
	MDB_val k = sval(msgid);
	int rc = mdb_del(txn, DBI(s, NS_HELD), &k, NULL);

	if (rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	if (rc != 0)
		return MDB(rc, "release a held delivery");
	rc = mdb_del(txn, DBI(s, NS_HELDENV), &k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "release a held envelope");
}

int node_store_held_has(MDB_txn *txn, tern_store *s, const char *msgid)
{
	MDB_val k = sval(msgid), v;

	return DBI(s, NS_HELD) != 0 && mdb_get(txn, DBI(s, NS_HELD), &k, &v) == 0;
}

int node_store_held_envelope(MDB_txn *txn, tern_store *s, const char *msgid, uint8_t **env,
                             size_t *len)
{
	MDB_val k = sval(msgid), v;
	int rc;

	if (DBI(s, NS_HELDENV) == 0)
		return TERN_ENOENT; /* a read-only look at a store from before holding */
	if ((rc = mdb_get(txn, DBI(s, NS_HELDENV), &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? TERN_ENOENT : MDB(rc, "read a held envelope");
	if ((*env = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
		return TERN_ENOMEM;
	memcpy(*env, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return TERN_OK;
}

static char *jdup(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return strdup(v ? v : "");
}

/* A held delivery's record as an earlier release wrote it: a JSON object
 * with the same field names. NULL when out of memory. */
static ProtobufCMessage *held_from_json(const json_t *o)
{
	Tern__V1__HeldRecord *r = malloc(sizeof(*r));

	if (r == NULL)
		return NULL;
	tern__v1__held_record__init(r);
	r->until = (int64_t)json_integer_value(json_object_get(o, "until"));
	r->len = (uint64_t)json_integer_value(json_object_get(o, "len"));
	if ((r->ref = jdup(o, "ref")) == NULL || (r->sender = jdup(o, "sender")) == NULL ||
	    (r->case_id = jdup(o, "case_id")) == NULL || (r->type = jdup(o, "type")) == NULL) {
		/* free_unpacked frees what is not the descriptor's default. */
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return &r->base;
}

int node_held_record_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_rec_decode(data, len, &tern__v1__held_record__descriptor, held_from_json,
	                       "the record of a held delivery", out);
}

/* Without what it cites or who sent it, nothing could release or judge a
 * held delivery; a text that is not UTF-8 could not be shown. Either is
 * bytes the node did not write (an empty value decodes to no fields). */
static int held_rec_sound(const node_held_rec *r)
{
	const char *t[4] = {r->ref, r->sender, r->case_id, r->type};

	if (r->ref[0] == '\0' || r->sender[0] == '\0')
		return 0;
	for (int i = 0; i < 4; i++)
		if (!tern_utf8_valid(t[i], strlen(t[i])))
			return 0;
	return 1;
}

int node_store_held_scan(MDB_txn *txn, tern_store *s,
                         int (*fn)(const char *msgid, const node_held_rec *rec, void *arg),
                         void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	char id[64];
	int rc;

	if (DBI(s, NS_HELD) == 0)
		return TERN_OK;
	if ((rc = mdb_cursor_open(txn, DBI(s, NS_HELD), &c)) != 0)
		return MDB(rc, "scan held deliveries");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		ProtobufCMessage *m = NULL;
		int stop, drc = node_held_record_decode(v.mv_data, v.mv_size, &m);
		/* A record not read for want of memory is no damaged one (passed
		 * over, it would never be judged until a restart). */
		if (drc == TERN_ENOMEM) {
			mdb_cursor_close(c);
			return TERN_ENOMEM;
		}
		if (drc == TERN_OK && !held_rec_sound((const node_held_rec *)m))
			drc = TERN_EMALFORMED;
		if (drc != TERN_OK || k.mv_size >= sizeof(id)) {
			protobuf_c_message_free_unpacked(m, NULL);
			continue; /* damaged: left for an operator, never judged */
		}
		memcpy(id, k.mv_data, k.mv_size);
		id[k.mv_size] = '\0';
		stop = fn(id, (const node_held_rec *)m, arg);
		protobuf_c_message_free_unpacked(m, NULL);
		if (stop)
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "scan held deliveries");
}

/* --- the node ----------------------------------------------------------------- */

struct held_load {
	node *n;
	int rc;
};

static int load_one(const char *msgid, const node_held_rec *rec, void *arg)
{
	struct held_load *l = arg;
	node *n = l->n;

	/* All or nothing: a held delivery left out of memory would never be
	 * released, nor refused at its time, until the next start. */
	if (json_object_set_new(n->held, msgid,
	                        json_pack("{s:s, s:I, s:s, s:s, s:I, s:i, s:i, s:I}", "ref",
	                                  rec->ref, "until", (json_int_t)rec->until, "sender",
	                                  rec->sender, "type", rec->type, "len",
	                                  (json_int_t)rec->len, "nomem_tries", 0, "nomem_first", 0,
	                                  "order", (json_int_t)rec->order)) != 0 ||
	    /* Judged again at the first tick: what it cites may have been kept
	     * by the last commit before a stop, whose due list lived in memory
	     * only. */
	    json_array_append_new(n->held_due, json_string(msgid)) != 0) {
		l->rc = tern_fail(TERN_ENOMEM, "out of memory loading the held deliveries");
		return 1;
	}
	return 0;
}

struct held_order {
	const char *id;
	json_int_t order, until;
};

static int held_order_cmp(const void *a, const void *b)
{
	const struct held_order *x = a, *y = b;

	if (x->order != y->order) /* 0, from before the field: first, by until */
		return x->order < y->order ? -1 : 1;
	if (x->until != y->until)
		return x->until < y->until ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* n->held and n->held_due in the order the deliveries were held (the
 * store's counter, HeldRecord.order), not by id: a message held behind
 * another of its sender's (deliver.c) must be judged after it, and a
 * later-sent message can carry an earlier id (a send with attachments takes
 * its id when sealing begins). TERN_ENOMEM leaves them as they were. */
static int held_sort(node *n)
{
	size_t k = 0, cnt = json_object_size(n->held);
	struct held_order *v;
	json_t *held, *due, *h;
	const char *id;

	if (cnt < 2)
		return TERN_OK;
	if ((v = calloc(cnt, sizeof(*v))) == NULL)
		return TERN_ENOMEM;
	json_object_foreach(n->held, id, h)
	{
		v[k].id = id;
		v[k].order = json_integer_value(json_object_get(h, "order"));
		v[k++].until = json_integer_value(json_object_get(h, "until"));
	}
	qsort(v, cnt, sizeof(*v), held_order_cmp);
	held = json_object();
	due = json_array();
	for (k = 0; held && due && k < cnt; k++)
		if (json_object_set(held, v[k].id, json_object_get(n->held, v[k].id)) != 0 ||
		    json_array_append_new(due, json_string(v[k].id)) != 0)
			break;
	free(v);
	if (held == NULL || due == NULL || k < cnt) {
		json_decref(held);
		json_decref(due);
		return TERN_ENOMEM;
	}
	json_decref(n->held);
	json_decref(n->held_due);
	n->held = held;
	n->held_due = due;
	return TERN_OK;
}

int node_held_load(node *n)
{
	MDB_txn *txn;
	int rc;

	if ((n->held = json_object()) == NULL || (n->held_due = json_array()) == NULL)
		return TERN_ENOMEM;
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return rc;
	{
		struct held_load l = {n, TERN_OK};
		rc = node_store_held_scan(txn, n->store, load_one, &l);
		if (rc == TERN_OK)
			rc = l.rc;
	}
	mdb_txn_abort(txn);
	if (rc == TERN_OK && (rc = held_sort(n)) != TERN_OK)
		rc = tern_fail(rc, "out of memory ordering the held deliveries");
	if (rc == TERN_OK && json_object_size(n->held))
		log_info("%zu held deliveries wait for the messages they cite",
		         json_object_size(n->held));
	return rc;
}

void node_held_free(node *n)
{
	json_decref(n->held);
	json_decref(n->held_due);
	n->held = n->held_due = NULL;
}

size_t node_held_from(const json_t *held, const char *sender)
{
	const char *id;
	json_t *h;
	size_t k = 0;

	json_object_foreach((json_t *)held, id, h)
	{
		const char *s = json_string_value(json_object_get(h, "sender"));
		k += s && strcmp(s, sender) == 0;
	}
	return k;
}

size_t node_held_bytes(const json_t *held, const char *sender, size_t *all)
{
	const char *id;
	json_t *h;
	size_t k = 0;

	*all = 0;
	json_object_foreach((json_t *)held, id, h)
	{
		const char *s = json_string_value(json_object_get(h, "sender"));
		size_t len = (size_t)json_integer_value(json_object_get(h, "len"));
		*all += len;
		if (s && strcmp(s, sender) == 0)
			k += len;
	}
	return k;
}

size_t node_held_count(const node *n)
{
	return json_object_size(n->held);
}

void node_held_committed(node *n)
{
	const struct batch *b = &n->batch;
	const char *id, *ref;
	json_t *h;

	for (size_t i = 0; i < b->ndins; i++) {
		const struct din *d = &b->dins[i];
		if (d->kind == DIN_HOLD) {
			json_object_set_new(n->held, d->msgid,
			                    json_pack("{s:s, s:I, s:s, s:s, s:I, s:i, s:i}", "ref",
			                              d->ref, "until", (json_int_t)d->hold_until,
			                              "sender", d->sender, "type", d->type, "len",
			                              (json_int_t)d->len, "nomem_tries", 0,
			                              "nomem_first", 0));
			log_info("holding %s %s from %s, case %s, until %s arrives", d->msgid,
			         d->type, d->sender, d->case_id, d->ref);
		} else if (d->unhold) {
			json_object_del(n->held, d->msgid);
		}
	}
	/* What this commit kept may be what a held message waits for; what it
	 * refused, too: judged again, such a message is refused at once. */
	if (json_object_size(n->held) == 0)
		return;
	json_object_foreach(n->held, id, h)
	{
		int due = 0;
		ref = json_string_value(json_object_get(h, "ref"));
		if (ref == NULL)
			continue;
		due = tern_wf_records_count(b->wf) && tern_wf_records_get(b->wf, ref);
		for (size_t i = 0; !due && i < b->ndins; i++)
			due = b->dins[i].kind == DIN_REFUSE && strcmp(b->dins[i].msgid, ref) == 0;
		if (due)
			json_array_append_new(n->held_due, json_string(id));
	}
	/* Held behind one of their sender's (what they cite is here): due
	 * after it, which is due already or just made so above. */
	for (size_t i = 0; i < b->ndins; i++)
		if (b->dins[i].kind == DIN_HOLD && b->dins[i].behind)
			json_array_append_new(n->held_due, json_string(b->dins[i].msgid));
}

void node_rejudge_after(node *n, int64_t wait_ms)
{
	int64_t at = tern_now_ms() + wait_ms;

	if (at > n->rejudge_at) /* never sooner than a failure's back-off */
		n->rejudge_at = at;
}

int node_rejudge_later(const node *n, int64_t now)
{
	/* Never more than a minute ahead: a clock set back must not hold
	 * releases for as long as it went back. */
	return now < n->rejudge_at && n->rejudge_at - now <= 60000;
}

void node_held_failed(node *n)
{
	const struct batch *b = &n->batch;

	/* What a release took was in this commit alone: without this, the
	 * held message would wait out [delivery] hold (a day by default) though
	 * what it cites is stored. */
	for (size_t i = 0; i < b->ndins; i++)
		if (b->dins[i].unhold)
			json_array_append_new(n->held_due, json_string(b->dins[i].msgid));
}

/* A held entry's count, kept in its n->held entry (in memory only). */
static tern_nomem held_nomem(const json_t *h)
{
	return (tern_nomem){(int)json_integer_value(json_object_get(h, "nomem_tries")),
	                    json_integer_value(json_object_get(h, "nomem_first"))};
}

/* Into the integers the entry was made with (load_one, node_held_committed):
 * set in place, with no allocation, when memory is what ran out. */
static void held_nomem_set(json_t *h, const tern_nomem *c)
{
	json_integer_set(json_object_get(h, "nomem_tries"), c->tries);
	json_integer_set(json_object_get(h, "nomem_first"), c->first);
}

/* msgid could not be judged now (no memory, or no receipt this node can
 * seal): due again in a second, not at the end of its hold. Returns 1, what
 * release() returns for it. */
static int release_later(node *n, const char *msgid)
{
	json_array_append_new(n->held_due, json_string(msgid));
	node_rejudge_after(n, 1000);
	return 1;
}

/* Judges a held delivery again; final: refused if it still waits. 1: it
 * could not be taken now (no memory, or this node cannot make receipts) and
 * is due again after a wait: the rest of the round waits too. */
static int release(node *n, const char *msgid, int final, int64_t now)
{
	struct batch *b = &n->batch;
	json_t *h = json_object_get(n->held, msgid);
	struct din *d;
	node_judge j;
	MDB_txn *txn;
	uint8_t *env = NULL;
	size_t len = 0;
	tern_nomem nm;
	int rc;

	if (h == NULL)
		return 0;
	for (size_t i = 0; i < b->ndins; i++)
		if (b->dins[i].unhold && strcmp(b->dins[i].msgid, msgid) == 0)
			return 0; /* released already, in this batch */
	if (TERN_GROW(b->dins, b->ndins, b->capdins) ||
	    tern_store_read_begin(n->store, &txn) != TERN_OK)
		return release_later(n, msgid);
	if ((rc = node_store_held_envelope(txn, n->store, msgid, &env, &len)) != TERN_OK) {
		mdb_txn_abort(txn);
		if (rc == TERN_ENOENT) {
			json_object_del(n->held, msgid); /* gone: nothing to judge */
			return 0;
		}
		return release_later(n, msgid);
	}
	d = &b->dins[b->ndins];
	memset(d, 0, sizeof(*d));
	node_judge_of(n, &j);
	j.releasing = 1;
	nm = held_nomem(h);
	j.nomem_final = tern_nomem_final(&nm, now);
	node_judge_envelope(&j, txn, env, len, d);
	mdb_txn_abort(txn);
	if (d->kind == DIN_NOMEM) {
		free(env);
		node_din_clear(d);
		tern_nomem_count(&nm, now);
		held_nomem_set(h, &nm);
		return release_later(n, msgid);
	}
	if (d->kind == DIN_HOLD && !final) {
		free(env); /* still waiting */
		free(d->atts);
		d->atts = NULL;
		return 0;
	}
	if (d->kind == DIN_HOLD) {
		d->kind = DIN_REFUSE;
		snprintf(d->code, sizeof(d->code), "%s",
		         tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
		snprintf(d->text, sizeof(d->text),
		         "%s did not arrive within [delivery] hold (%lld s)", d->ref,
		         (long long)(n->hold_ms / 1000));
	}
	d->unhold = 1;
	d->env = env;
	d->len = len;
	if (node_din_take(n, d, env, len) != TERN_OK) {
		node_din_clear(d);
		return release_later(n, msgid);
	}
	b->ndins++;
	held_nomem_set(h, &(tern_nomem){0, 0}); /* taken: a failed commit starts anew */
	if (d->kind == DIN_REFUSE)
		log_warnx("refused held %s from %s: %s: %s", d->msgid, d->sender, d->code, d->text);
	else if (d->kind == DIN_ACCEPT)
		log_info("released held %s from %s: %s arrived", d->msgid, d->sender, d->ref);
	return 0;
}

void node_held_tick(node *n, int64_t now)
{
	const char *id;
	json_t *h, *due = n->held_due;
	void *tmp;
	size_t i;
	int stop = 0;

	if (node_rejudge_later(n, now))
		return;
	if ((n->held_due = json_array()) == NULL) {
		n->held_due = due;
		return;
	}
	/* One that cannot be taken now stops the round (the rest is due with
	 * it): ten thousand held messages must not make ten thousand failed
	 * receipts, and log lines, a second. */
	json_array_foreach(due, i, h)
	{
		if (stop)
			json_array_append(n->held_due, h);
		else
			stop = release(n, json_string_value(h), 0, now);
	}
	json_decref(due);
	if (stop || now < n->next_hold_check)
		return;
	n->next_hold_check = now + 1000;
	/* release() may drop an entry whose envelope is gone. */
	json_object_foreach_safe(n->held, tmp, id, h)
	{
		if (json_integer_value(json_object_get(h, "until")) <= now &&
		    release(n, id, 1, now))
			break;
	}
}

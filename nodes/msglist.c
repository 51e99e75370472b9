/* Listing the messages this node sent and received, with filters and cursor
 * paging (the local API's "messages.list", GET /v1/messages, `tern
 * messages`; docs/api.md).
 *
 * The index ("msglist") numbers each message once, as it is written, from
 * one counter for both directions ("listseq" in meta), and keeps it under
 * three keys, each mapping to the kind ('o' sent, 'i' received) and the id:
 *
 *   'a' be64(seq)                    every message
 *   'o' | 'i' be64(seq)              one direction
 *   'c' case_id NUL be64(seq)        one case
 *
 * So a page is a range read in the order the messages were written, from the
 * narrowest key the filters allow, and a cursor is the last number read: a
 * message written between two pages has a higher number than any before it,
 * so it comes on a later page, never on one already read, and nothing is
 * read twice. The other filters (type, state, peer, time) are checked on
 * each message's record, so a page reads at most NODE_LIST_SCAN_MAX entries
 * and says so when it stopped there. Receipts are left out, as in the case
 * index: they show as their messages' states.
 *
 * Touches: the msglist table (inside the caller's transaction); reads the
 * sent and received records. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/msgtype.h>

#include "node_store.h"
#include "util.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
#define LIST_MARK "list.kept"
#define LIST_SEQ "listseq"
/* 'c', the case id (at most TERN_CASE_ID_MAX when valid), NUL, be64 */
#define KEY_MAX (1 + TERN_CASE_ID_MAX + 1 + 8)

static const char *const sent_states[] = {"queued",   "at-broker", "delivered",
                                          "rejected", "expired",   NULL};
static const char *const recv_states[] = {"accepted", "refused", NULL};

/* The key of prefix (1 byte, or 'c' and the case id) and seq; its length, 0
 * when the case id is too long to be a valid one. */
static size_t list_key(uint8_t *buf, char prefix, const char *case_id, uint64_t seq)
{
	size_t n = 0;

	buf[n++] = (uint8_t)prefix;
	if (prefix == 'c') {
		size_t cl = strlen(case_id);
		if (cl == 0 || cl > TERN_CASE_ID_MAX)
			return 0;
		memcpy(buf + n, case_id, cl);
		n += cl;
		buf[n++] = 0;
	}
	tern_be64_put(buf + n, seq);
	return n + 8;
}

int node_store_list_note(MDB_txn *txn, tern_store *s, const char *case_id, const char *msgid,
                         char kind)
{
	const char prefixes[] = {'a', kind, 'c'};
	uint8_t kb[KEY_MAX], vb[37];
	uint64_t seq = 0;
	int rc;

	if (DBI(s, NS_LIST) == 0 || strlen(msgid) != 36)
		return TERN_OK;
	if ((rc = node_store_next_seq(txn, s, LIST_SEQ, &seq)) != TERN_OK)
		return rc;
	vb[0] = (uint8_t)kind;
	memcpy(vb + 1, msgid, 36);
	for (size_t i = 0; i < sizeof(prefixes); i++) {
		size_t kl = list_key(kb, prefixes[i], case_id ? case_id : "", seq);
		MDB_val k = {kl, kb}, v = {sizeof(vb), vb};
		if (kl == 0)
			continue; /* no case id (or not a valid one): not under 'c' */
		/* seq grows, so the key is its prefix's last; the tree's last
		 * only under the highest prefix in use ('o'), which appends. */
		if ((rc = tern_store_put_tail(txn, DBI(s, NS_LIST), &k, &v, 0)) != 0)
			return MDB(rc, "index a message for listing");
	}
	return TERN_OK;
}

int node_store_list_case_scan(MDB_txn *txn, tern_store *s, const char *case_id,
                              int (*fn)(char kind, const char *msgid, void *arg), void *arg)
{
	uint8_t kb[KEY_MAX];
	size_t n = list_key(kb, 'c', case_id, 0), kl = n - 8; /* kl: 'c' case_id NUL */
	MDB_cursor *c;
	MDB_val k = {n, kb}, v;
	int rc;

	if (DBI(s, NS_LIST) == 0 || n == 0)
		return TERN_OK; /* not a valid case id: nothing is under it */
	if ((rc = mdb_cursor_open(txn, DBI(s, NS_LIST), &c)) != 0)
		return MDB(rc, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == kl + 8 && memcmp(k.mv_data, kb, kl) == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char id[37];
		if (v.mv_size != 37)
			continue;
		memcpy(id, (const char *)v.mv_data + 1, 36);
		id[36] = 0;
		if (fn(*(const char *)v.mv_data, id, arg))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "read the case's messages");
}

/* --- the index for a store from before it ------------------------------------ */

struct old {
	int64_t at;
	char kind;
	char id[37];
	char *case_id;
};

static int old_cmp(const void *a, const void *b)
{
	const struct old *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* What the index needs of an old record: its type, case and time. 1 when
 * the record is damaged (left out, as it cannot be listed), TERN_ENOMEM when
 * memory was short to read it: the backfill then fails, and its mark is not
 * written, or the message would be missing from the listing for good. */
static int old_read(char kind, const MDB_val *d, struct old *o, int *receipt)
{
	node_sent_rec *sr = NULL;
	node_recv_rec *rr = NULL;
	int rc = kind == 'o' ? node_rec_sent_decode(d->mv_data, d->mv_size, &sr)
	                     : node_rec_recv_decode(d->mv_data, d->mv_size, &rr);

	if (rc == TERN_EMALFORMED)
		return 1;
	if (rc != TERN_OK)
		return rc;
	*receipt = strcmp(sr ? sr->type : rr->type, "receipt") == 0;
	o->at = sr ? sr->created_at : rr->received_at;
	o->kind = kind;
	o->case_id = strdup(sr ? sr->case_id : rr->case_id);
	node_rec_sent_free(&sr);
	node_rec_recv_free(&rr);
	return o->case_id ? TERN_OK : TERN_ENOMEM;
}

static int old_collect(MDB_txn *txn, tern_store *s, int dbi, char kind, struct old **v, size_t *n,
                       size_t *cap)
{
	MDB_cursor *c;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(txn, DBI(s, dbi), &c)) != 0)
		return MDB(rc, "cursor");
	while ((rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) == 0) {
		struct old o = {0};
		int receipt = 0, r;
		if (k.mv_size != 36)
			continue;
		if ((r = old_read(kind, &d, &o, &receipt)) == 1)
			continue;
		if (r != TERN_OK) {
			rc = r;
			break;
		}
		if (receipt) {
			free(o.case_id);
			continue;
		}
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			struct old *nv = realloc(*v, nc * sizeof(**v));
			if (nv == NULL) {
				free(o.case_id);
				rc = TERN_ENOMEM;
				break;
			}
			*v = nv;
			*cap = nc;
		}
		memcpy(o.id, k.mv_data, 36);
		o.id[36] = 0;
		(*v)[(*n)++] = o;
	}
	mdb_cursor_close(c);
	if (rc == TERN_ENOMEM)
		return rc;
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "read records");
}

int node_store_list_backfill(MDB_txn *txn, void *arg)
{
	tern_store *s = arg;
	MDB_val k = {strlen(LIST_MARK), LIST_MARK}, v;
	struct old *old = NULL;
	size_t n = 0, cap = 0;
	int rc = mdb_get(txn, DBI(s, NS_META), &k, &v);

	if (rc == 0 || DBI(s, NS_LIST) == 0)
		return TERN_OK;
	if (rc != MDB_NOTFOUND)
		return MDB(rc, "read the listing index's mark");
	/* Numbered in time order: the order the messages were written is not
	 * kept elsewhere, and time is the nearest to it. */
	if ((rc = old_collect(txn, s, NS_MSGS, 'o', &old, &n, &cap)) != TERN_OK ||
	    (rc = old_collect(txn, s, NS_RECEIVED, 'i', &old, &n, &cap)) != TERN_OK)
		goto cleanup;
	if (n)
		qsort(old, n, sizeof(*old), old_cmp);
	for (size_t i = 0; i < n && rc == TERN_OK; i++)
		rc = node_store_list_note(txn, s, old[i].case_id, old[i].id, old[i].kind);
	if (rc == TERN_OK) {
		k = (MDB_val){strlen(LIST_MARK), LIST_MARK};
		v = (MDB_val){1, "1"};
		rc =
		    MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write the listing index's mark");
	}
cleanup:
	for (size_t i = 0; i < n; i++)
		free(old[i].case_id);
	free(old);
	return rc;
}

/* --- the query ------------------------------------------------------------------ */

static int in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcmp(*l, s) == 0)
			return 1;
	return 0;
}

int node_list_cursor_format(uint64_t seq, char out[NODE_LIST_CURSOR_LEN + 1])
{
	return snprintf(out, NODE_LIST_CURSOR_LEN + 1, "v1.%016" PRIx64, seq) ==
	               NODE_LIST_CURSOR_LEN
	           ? TERN_OK
	           : TERN_EINVAL;
}

int node_list_cursor_parse(const char *s, uint64_t *seq)
{
	uint64_t v = 0;

	if (s == NULL || strlen(s) != NODE_LIST_CURSOR_LEN || strncmp(s, "v1.", 3) != 0)
		return TERN_EINVAL;
	for (const char *p = s + 3; *p; p++) {
		int d = (*p >= '0' && *p <= '9')   ? *p - '0'
		        : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
		                                   : -1;
		if (d < 0)
			return TERN_EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	*seq = v;
	return TERN_OK;
}

/* The one place the arguments are checked, so that the socket and HTTP say
 * the same: a refusal names the argument in *field. */
static const char *const list_args[] = {"v",    "op",    "direction", "case_id", "type",   "state",
                                        "peer", "since", "until",     "limit",   "cursor", NULL};

static const char *fail_arg(char *why, size_t cap, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *fail_arg(char *why, size_t cap, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return field;
}

const char *node_list_query_parse(const json_t *req, node_list_query *q, char *why, size_t cap)
{
	const char *k, *sv;
	json_t *v;

	memset(q, 0, sizeof(*q));
	q->until = INT64_MAX;
	q->limit = NODE_LIST_LIMIT_DEFAULT;
	json_object_foreach((json_t *)req, k, v)
	{
		if (!in_list(list_args, k))
			return fail_arg(why, cap, k,
			                "unknown argument '%.64s' (messages.list takes direction, "
			                "case_id, type, state, peer, since, until, limit, cursor)",
			                k);
	}
	if ((v = json_object_get(req, "direction")) != NULL) {
		sv = json_string_value(v);
		if (sv && strcmp(sv, "sent") == 0)
			q->direction = 'o';
		else if (sv && strcmp(sv, "received") == 0)
			q->direction = 'i';
		else if (!(sv && strcmp(sv, "both") == 0))
			return fail_arg(why, cap, "direction",
			                "direction must be \"sent\", \"received\" or \"both\"");
	}
	if ((v = json_object_get(req, "case_id")) != NULL) {
		q->case_id = json_string_value(v);
		if (q->case_id == NULL || q->case_id[0] == 0 ||
		    strlen(q->case_id) > TERN_CASE_ID_MAX)
			return fail_arg(why, cap, "case_id",
			                "case_id must be a case id of 1 to %s characters", "128");
	}
	if ((v = json_object_get(req, "type")) != NULL) {
		const tern_msgtype *t;
		q->type = json_string_value(v);
		t = q->type ? tern_msgtype_by_name(q->type) : NULL;
		if (t == NULL || t->type == TERN__V1__MESSAGE_TYPE__RECEIPT) {
			char names[512];
			tern_msgtype_names(names, sizeof(names), ", ", 1);
			return fail_arg(why, cap, "type",
			                "type must be one of: %s (receipts are not listed: they "
			                "show as their messages' states)",
			                names);
		}
	}
	if ((v = json_object_get(req, "state")) != NULL) {
		q->state = json_string_value(v);
		if (q->state == NULL || !((q->direction != 'i' && in_list(sent_states, q->state)) ||
		                          (q->direction != 'o' && in_list(recv_states, q->state))))
			return fail_arg(
			    why, cap, "state", "state must be one of: %s",
			    q->direction == 'o'   ? "queued, at-broker, delivered, rejected, "
			                            "expired"
			    : q->direction == 'i' ? "accepted, refused"
			                          : "queued, at-broker, delivered, rejected, "
			                            "expired (sent), accepted, refused "
			                            "(received)");
	}
	if ((v = json_object_get(req, "peer")) != NULL) {
		q->peer = json_string_value(v);
		if (q->peer == NULL || q->peer[0] == 0 || strlen(q->peer) > 64)
			return fail_arg(why, cap, "peer", "peer must be a node id");
	}
	if ((v = json_object_get(req, "since")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return fail_arg(why, cap, "since",
			                "since must be a time in milliseconds since the epoch");
		q->since = json_integer_value(v);
	}
	if ((v = json_object_get(req, "until")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return fail_arg(why, cap, "until",
			                "until must be a time in milliseconds since the epoch");
		q->until = json_integer_value(v);
		if (q->until <= q->since)
			return fail_arg(why, cap, "until", "until must be after since");
	}
	if ((v = json_object_get(req, "limit")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > NODE_LIST_LIMIT_MAX)
			return fail_arg(why, cap, "limit", "limit must be an integer from 1 to %s",
			                "1000");
		q->limit = (size_t)json_integer_value(v);
	}
	if ((v = json_object_get(req, "cursor")) != NULL &&
	    node_list_cursor_parse(json_string_value(v), &q->after) != TERN_OK)
		return fail_arg(why, cap, "cursor",
		                "cursor must be a next_cursor a previous page gave");
	return NULL;
}

/* The message msgid of kind as the listing shows it, or NULL when it is
 * gone (or damaged) or the filters leave it out. */
/* msgid's entry of a page in *out, or NULL when the query leaves it out (or
 * its record is gone or damaged). TERN_ENOMEM when it could not be read or
 * made: the page must fail, not go on without it, since a client paging
 * with the cursor would never see it. */
static int list_item(MDB_txn *txn, tern_store *s, const node_list_query *q, char kind,
                     const char *msgid, json_t **out)
{
	json_t *rec = NULL;
	const char *type, *state;
	int64_t at;
	int rc = kind == 'o' ? node_store_sent_get(txn, s, msgid, &rec)
	                     : node_store_received(txn, s, msgid, &rec);

	*out = NULL;
	if (rc != TERN_OK)
		return rc == TERN_ENOENT || rc == TERN_EMALFORMED ? TERN_OK : rc;
	type = json_string_value(json_object_get(rec, "type"));
	if (kind == 'o')
		state = json_string_value(json_object_get(rec, "state"));
	else
		state = json_is_true(json_object_get(rec, "accepted")) ? "accepted" : "refused";
	at = json_integer_value(json_object_get(rec, kind == 'o' ? "created_at" : "received_at"));
	if (type == NULL || state == NULL || (q->type && strcmp(q->type, type) != 0) ||
	    (q->state && strcmp(q->state, state) != 0) || at < q->since || at >= q->until)
		goto cleanup;
	if (kind == 'o') {
		json_t *rcpts = json_array(), *r;
		const char *node;
		int peer_ok = q->peer == NULL;
		json_object_foreach(json_object_get(rec, "recipients"), node, r)
		{
			if (rcpts && json_array_append_new(rcpts, json_string(node)) != 0) {
				json_decref(rcpts);
				rcpts = NULL;
			}
			peer_ok |= q->peer && strcmp(q->peer, node) == 0;
		}
		if (!peer_ok) {
			json_decref(rcpts);
			goto cleanup;
		}
		*out = rcpts == NULL ? NULL
		                     : json_pack("{s:s, s:s, s:s, s:O?, s:o, s:s, s:O?, s:I}",
		                                 "message_id", msgid, "direction", "sent", "type",
		                                 type, "case_id", json_object_get(rec, "case_id"),
		                                 "recipients", rcpts, "state", state, "reason_code",
		                                 json_object_get(rec, "reason_code"), "created_at",
		                                 (json_int_t)at);
	} else {
		const char *sender = json_string_value(json_object_get(rec, "sender"));
		if (sender == NULL || (q->peer && strcmp(q->peer, sender) != 0))
			goto cleanup;
		*out = json_pack("{s:s, s:s, s:s, s:O?, s:s, s:s, s:O?, s:I, s:b}", "message_id",
		                 msgid, "direction", "received", "type", type, "case_id",
		                 json_object_get(rec, "case_id"), "sender", sender, "state", state,
		                 "reason_code", json_object_get(rec, "reason_code"), "received_at",
		                 (json_int_t)at, "acknowledged",
		                 json_is_true(json_object_get(rec, "acked")));
	}
	rc = *out ? TERN_OK : TERN_ENOMEM;
cleanup:
	json_decref(rec);
	return rc;
}

int node_store_messages_list(MDB_txn *txn, tern_store *s, const node_list_query *q, json_t **out)
{
	uint8_t kb[KEY_MAX];
	char prefix = q->case_id ? 'c' : q->direction ? q->direction : 'a';
	size_t plen, kl, examined = 0, scan_max = q->scan_max ? q->scan_max : NODE_LIST_SCAN_MAX;
	uint64_t last = q->after;
	int more = 0, limited = 0, rc;
	json_t *msgs = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;

	*out = NULL;
	if (DBI(s, NS_LIST) == 0)
		return tern_fail(TERN_ENOENT, "this store predates the listing index: let the node "
		                              "open it once");
	if ((kl = list_key(kb, prefix, q->case_id ? q->case_id : "",
	                   q->after == UINT64_MAX ? q->after : q->after + 1)) == 0)
		return tern_fail(TERN_EINVAL, "not a valid case id");
	plen = kl - 8;
	if ((msgs = json_array()) == NULL)
		return TERN_ENOMEM;
	if ((rc = mdb_cursor_open(txn, DBI(s, NS_LIST), &c)) != 0) {
		rc = MDB(rc, "cursor");
		goto cleanup;
	}
	k = (MDB_val){kl, kb};
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char id[37];
		json_t *item;
		if (k.mv_size != plen + 8 || memcmp(k.mv_data, kb, plen) != 0)
			break; /* past the prefix */
		if (json_array_size(msgs) == q->limit) {
			more = 1; /* something after the page: worth a cursor */
			break;
		}
		if (examined == scan_max) {
			more = limited = 1;
			break;
		}
		examined++;
		last = tern_be64_get((const uint8_t *)k.mv_data + plen);
		if (v.mv_size != 37 ||
		    (q->direction && ((const char *)v.mv_data)[0] != q->direction))
			continue;
		memcpy(id, (const char *)v.mv_data + 1, 36);
		id[36] = 0;
		if ((rc = list_item(txn, s, q, ((const char *)v.mv_data)[0], id, &item)) != TERN_OK)
			goto cleanup;
		if (item != NULL && json_array_append_new(msgs, item) != 0) {
			rc = TERN_ENOMEM;
			goto cleanup;
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rc = MDB(rc, "read the listing index");
		goto cleanup;
	}
	{
		char cur[NODE_LIST_CURSOR_LEN + 1];
		node_list_cursor_format(last, cur);
		*out = json_pack("{s:o, s:o, s:b}", "messages", msgs, "next_cursor",
		                 more ? json_string(cur) : json_null(), "scan_limited", limited);
		msgs = NULL;
	}
	rc = *out ? TERN_OK : TERN_ENOMEM;
cleanup:
	if (c)
		mdb_cursor_close(c);
	json_decref(msgs);
	return rc;
}

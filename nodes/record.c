/* The node's per-message records (record.h). */
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>

#include "record.h"
#include "store.h"

/* One table: the state's value, its name in the API and in old records. */
static const struct {
	node_sent_state st;
	const char *name;
} sent_states[] = {
    {NODE_SENT_QUEUED, "queued"},       {NODE_SENT_AT_BROKER, "at-broker"},
    {NODE_SENT_DELIVERED, "delivered"}, {NODE_SENT_REJECTED, "rejected"},
    {NODE_SENT_EXPIRED, "expired"},
};

const char *node_sent_state_name(node_sent_state st)
{
	for (size_t i = 0; i < sizeof(sent_states) / sizeof(sent_states[0]); i++)
		if (sent_states[i].st == st)
			return sent_states[i].name;
	return "";
}

node_sent_state node_sent_state_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(sent_states) / sizeof(sent_states[0]); i++)
		if (strcmp(sent_states[i].name, name) == 0)
			return sent_states[i].st;
	return TERN__V1__SENT_STATE__SENT_STATE_UNSPECIFIED;
}

int node_sent_state_final(node_sent_state st)
{
	return st == NODE_SENT_DELIVERED || st == NODE_SENT_REJECTED || st == NODE_SENT_EXPIRED;
}

/* A JSON record starts with '{'. As a protobuf tag that byte is field 15 of
 * the deprecated group type, which no record has: the forms cannot be taken
 * for each other. */
static int is_json(const void *data, size_t len)
{
	return len > 0 && ((const char *)data)[0] == '{';
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int64_t jint(const json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

/* Packs m and unpacks it again: a record read from JSON is then allocated
 * like one read from protobuf, and freed the same way. */
static void *repack(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *d)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	void *out;

	if (buf == NULL)
		return NULL;
	protobuf_c_message_pack(m, buf);
	out = protobuf_c_message_unpack(d, NULL, n, buf);
	free(buf);
	return out;
}

static ProtobufCMessage *sent_from_json(const json_t *o)
{
	node_sent_rec r = TERN__V1__SENT_RECORD__INIT;
	ProtobufCMessage *out = NULL;
	json_t *rcpts = json_object_get(o, "recipients"), *v;
	size_t n = json_object_size(rcpts), i = 0;
	node_sent_rcpt *rs = calloc(n ? n : 1, sizeof(*rs));
	node_sent_rcpt **ps = calloc(n ? n : 1, sizeof(*ps));
	const char *key;

	if (rs == NULL || ps == NULL)
		goto out;
	r.type = (char *)jstr(o, "type");
	r.case_id = (char *)jstr(o, "case_id");
	r.created_at = jint(o, "created_at");
	r.state = node_sent_state_parse(jstr(o, "state"));
	r.reason_code = (char *)jstr(o, "reason_code");
	r.reason_text = (char *)jstr(o, "reason_text");
	r.seq = (uint64_t)jint(o, "seq");
	r.outseq = (uint64_t)jint(o, "outseq");
	r.broker_n = (uint64_t)jint(o, "broker_n");
	json_object_foreach(rcpts, key, v)
	{
		tern__v1__sent_recipient__init(&rs[i]);
		rs[i].node = (char *)key;
		rs[i].state = node_sent_state_parse(jstr(v, "state"));
		rs[i].reason_code = (char *)jstr(v, "reason_code");
		rs[i].reason_text = (char *)jstr(v, "reason_text");
		rs[i].at = jint(v, "at");
		ps[i] = &rs[i];
		i++;
	}
	r.n_recipients = i;
	r.recipients = ps;
	out = repack(&r.base, &tern__v1__sent_record__descriptor);
out:
	free(rs);
	free(ps);
	return out;
}

static ProtobufCMessage *recv_from_json(const json_t *o)
{
	node_recv_rec r = TERN__V1__RECEIVED_RECORD__INIT;

	r.sender = (char *)jstr(o, "sender");
	r.type = (char *)jstr(o, "type");
	r.case_id = (char *)jstr(o, "case_id");
	r.received_at = jint(o, "received_at");
	r.accepted = json_is_true(json_object_get(o, "accepted"));
	r.inbox_seq = (uint64_t)jint(o, "inbox_seq");
	r.acked = json_is_true(json_object_get(o, "acked"));
	r.acked_at = jint(o, "acked_at");
	r.reason_code = (char *)jstr(o, "reason_code");
	r.reason_text = (char *)jstr(o, "reason_text");
	return repack(&r.base, &tern__v1__received_record__descriptor);
}

/* The strings of a JSON array, borrowed into a new array of n (non-strings
 * left out: the old rules skipped them too); NULL when out of memory. */
static char **jstrs(const json_t *a, size_t *n)
{
	char **v = calloc(json_array_size(a) ? json_array_size(a) : 1, sizeof(*v));
	size_t i;
	json_t *x;

	*n = 0;
	if (v == NULL)
		return NULL;
	json_array_foreach(a, i, x) if (json_is_string(x)) v[(*n)++] = (char *)json_string_value(x);
	return v;
}

static ProtobufCMessage *wf_from_json(const json_t *o)
{
	tern_wf_record r = TERN__V1__WORKFLOW_RECORD__INIT;
	Tern__V1__WorkflowRecord__LastEntry *es = NULL, **ps = NULL;
	const json_t *last = json_object_get(o, "last"), *persons = json_object_get(o, "persons"),
	             *x;
	ProtobufCMessage *out = NULL;
	size_t n = json_object_size(last);
	tern_case_state st;
	const char *key;

	r.type = (char *)jstr(o, "type");
	r.case_id = (char *)jstr(o, "case_id");
	r.sender = (char *)jstr(o, "sender");
	r.value = (char *)jstr(o, "value");
	r.has_value = json_is_string(json_object_get(o, "value"));
	r.ref = (char *)jstr(o, "ref");
	r.outcome = (char *)jstr(o, "outcome");
	r.root = (char *)jstr(o, "root");
	(void)tern_case_state_parse(jstr(o, "state"), &st); /* none for "" or unknown */
	r.state = (Tern__V1__CaseState)st;
	r.has_persons = json_is_array(persons);
	r.stub = json_is_true(json_object_get(o, "stub"));
	if ((r.to = jstrs(json_object_get(o, "to"), &r.n_to)) == NULL ||
	    (r.persons = jstrs(persons, &r.n_persons)) == NULL ||
	    (r.parties = jstrs(json_object_get(o, "parties"), &r.n_parties)) == NULL ||
	    (es = calloc(n ? n : 1, sizeof(*es))) == NULL ||
	    (ps = calloc(n ? n : 1, sizeof(*ps))) == NULL)
		goto out;
	json_object_foreach((json_t *)last, key, x)
	{
		if (!json_is_string(x))
			continue;
		tern__v1__workflow_record__last_entry__init(&es[r.n_last]);
		es[r.n_last].key = (char *)key;
		es[r.n_last].value = (char *)json_string_value(x);
		ps[r.n_last] = &es[r.n_last];
		r.n_last++;
	}
	r.last = ps;
	out = (ProtobufCMessage *)tern_wf_record_copy(&r);
out:
	free(r.to);
	free(r.persons);
	free(r.parties);
	free(es);
	free(ps);
	return out;
}

/* The JSON object of an old record, NULL when the bytes are not one; *bad
 * says why when they were meant as JSON: 1 damaged, 2 no memory to read
 * them. */
static json_t *old_record(const void *data, size_t len, int *bad)
{
	json_t *o = NULL;
	int rc;

	*bad = 0;
	if (!is_json(data, len))
		return NULL;
	/* Watched: jansson seldom says when memory ran out (json.h). */
	if ((rc = tern_json_loadb_stored(data, len, &o)) != TERN_OK || !json_is_object(o)) {
		*bad = rc == TERN_ENOMEM ? 2 : 1;
		json_decref(o);
		return NULL;
	}
	return o;
}

/* protobuf-c's own malloc, noting a failure: its unpack returns NULL alike
 * for bytes that do not decode and for no memory, and only the second may
 * pass. What it allocates is freed as usual (free_unpacked with NULL). */
static void *note_alloc(void *data, size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		*(int *)data = 1;
	return p;
}

static void note_free(void *data, void *p)
{
	(void)data;
	free(p);
}

int node_rec_decode(const void *data, size_t len, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage *(*from_json)(const json_t *), const char *what,
                    ProtobufCMessage **out)
{
	int bad, oom = 0;
	ProtobufCAllocator a = {note_alloc, note_free, &oom};
	json_t *o = old_record(data, len, &bad);

	*out = NULL;
	if (o) {
		*out = from_json(o);
		json_decref(o);
		return *out ? TERN_OK : tern_fail(TERN_ENOMEM, "out of memory reading %s", what);
	}
	if (!bad)
		*out = protobuf_c_message_unpack(d, &a, len, data);
	if (*out)
		return TERN_OK;
	if (oom || bad == 2)
		return tern_fail(TERN_ENOMEM, "out of memory reading %s", what);
	return tern_fail(TERN_EMALFORMED, "%s is damaged", what);
}

int node_rec_sent_decode(const void *data, size_t len, node_sent_rec **out)
{
	ProtobufCMessage *m;
	int rc = node_rec_decode(data, len, &tern__v1__sent_record__descriptor, sent_from_json,
	                         "the record of a sent message", &m);

	*out = (node_sent_rec *)m;
	return rc;
}

int node_rec_recv_decode(const void *data, size_t len, node_recv_rec **out)
{
	ProtobufCMessage *m;
	int rc = node_rec_decode(data, len, &tern__v1__received_record__descriptor, recv_from_json,
	                         "the record of a received message", &m);

	*out = (node_recv_rec *)m;
	return rc;
}

int node_rec_wf_decode(const void *data, size_t len, tern_wf_record **out)
{
	ProtobufCMessage *m;
	int rc = node_rec_decode(data, len, &tern__v1__workflow_record__descriptor, wf_from_json,
	                         "the workflow record of a message", &m);

	*out = (tern_wf_record *)m;
	return rc;
}

int node_rec_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessage *m)
{
	uint8_t stackbuf[1024], *buf = stackbuf;
	size_t n = protobuf_c_message_get_packed_size(m);
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;

	if (n > sizeof(stackbuf) && (buf = malloc(n)) == NULL)
		return TERN_ENOMEM;
	v = (MDB_val){protobuf_c_message_pack(m, buf), buf};
	/* msgs, received and refs are keyed by message id (UUIDv7): a new record's
	 * key mostly sorts last; a record written again takes the plain put. */
	rc = tern_store_put_tail(txn, dbi, &k, &v, 0);
	if (buf != stackbuf)
		free(buf);
	return tern_store_mdb_err(rc, "write record");
}

int node_rec_sent_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const node_sent_rec *r)
{
	return node_rec_put(txn, dbi, key, &r->base);
}

int node_rec_recv_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const node_recv_rec *r)
{
	return node_rec_put(txn, dbi, key, &r->base);
}

int node_rec_wf_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const tern_wf_record *r)
{
	return node_rec_put(txn, dbi, key, &r->base);
}

void node_rec_sent_free(node_sent_rec **r)
{
	if (r && *r) {
		protobuf_c_message_free_unpacked(&(*r)->base, NULL);
		*r = NULL;
	}
}

void node_rec_recv_free(node_recv_rec **r)
{
	if (r && *r) {
		protobuf_c_message_free_unpacked(&(*r)->base, NULL);
		*r = NULL;
	}
}

node_sent_rcpt *node_rec_sent_rcpt(const node_sent_rec *r, const char *node)
{
	for (size_t i = 0; i < r->n_recipients; i++)
		if (strcmp(r->recipients[i]->node, node) == 0)
			return r->recipients[i];
	return NULL;
}

int node_rec_set_str(char **field, const char *v)
{
	char *copy = strdup(v ? v : "");

	if (copy == NULL)
		return TERN_ENOMEM;
	/* protobuf-c leaves an absent string pointing at its shared empty one,
	 * which its free also skips. */
	if (*field != protobuf_c_empty_string)
		free(*field);
	*field = copy;
	return TERN_OK;
}

json_t *node_rec_text(const char *s)
{
	size_t n = strlen(s);

	/* protobuf-c keeps any bytes, and a text cut at a byte limit (a peer's
	 * reason copied into 256 bytes) can end inside a character: its
	 * longest valid start is shown, so the record stays readable. */
	while (n > 0 && !tern_utf8_valid(s, n))
		n--;
	return json_stringn(s, n);
}

json_t *node_rec_sent_json(const node_sent_rec *r)
{
	json_t *rcpts = json_object(), *o;

	if (rcpts == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_recipients; i++) {
		const node_sent_rcpt *p = r->recipients[i];
		/* A recipient left out for want of memory would read as a record
		 * without it: the whole form fails instead. */
		if (json_object_set_new(
		        rcpts, p->node,
		        json_pack("{s:s, s:o, s:o, s:I}", "state", node_sent_state_name(p->state),
		                  "reason_code", node_rec_text(p->reason_code), "reason_text",
		                  node_rec_text(p->reason_text), "at", (json_int_t)p->at)) != 0) {
			json_decref(rcpts);
			return NULL;
		}
	}
	o = json_pack("{s:o, s:o, s:I, s:s, s:o, s:o, s:o, s:I, s:I}", "type",
	              node_rec_text(r->type), "case_id", node_rec_text(r->case_id), "created_at",
	              (json_int_t)r->created_at, "state", node_sent_state_name(r->state),
	              "reason_code", node_rec_text(r->reason_code), "reason_text",
	              node_rec_text(r->reason_text), "recipients", rcpts, "seq", (json_int_t)r->seq,
	              "outseq", (json_int_t)r->outseq);
	if (o && r->broker_n &&
	    json_object_set_new(o, "broker_n", json_integer((json_int_t)r->broker_n)) != 0) {
		json_decref(o); /* whole or none: its absence means something */
		o = NULL;
	}
	return o;
}

json_t *node_rec_recv_json(const node_recv_rec *r)
{
	json_t *o = json_pack("{s:o, s:o, s:o, s:I, s:b, s:I, s:b, s:o, s:o}", "sender",
	                      node_rec_text(r->sender), "type", node_rec_text(r->type), "case_id",
	                      node_rec_text(r->case_id), "received_at", (json_int_t)r->received_at,
	                      "accepted", r->accepted, "inbox_seq", (json_int_t)r->inbox_seq,
	                      "acked", r->acked, "reason_code", node_rec_text(r->reason_code),
	                      "reason_text", node_rec_text(r->reason_text));

	/* Absent in a record acknowledged before it was kept (xfer_spool.c
	 * then counts from the arrival): never left out for want of memory, or
	 * the attachments would go before their time. */
	if (o && r->acked_at &&
	    json_object_set_new(o, "acked_at", json_integer((json_int_t)r->acked_at)) != 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

json_t *node_rec_load_json(char kind, const void *data, size_t len)
{
	json_t *o = NULL;

	if (kind == 'o') {
		node_sent_rec *r = NULL;
		if (node_rec_sent_decode(data, len, &r) == TERN_OK)
			o = node_rec_sent_json(r);
		node_rec_sent_free(&r);
	} else {
		node_recv_rec *r = NULL;
		if (node_rec_recv_decode(data, len, &r) == TERN_OK)
			o = node_rec_recv_json(r);
		node_rec_recv_free(&r);
	}
	return o;
}

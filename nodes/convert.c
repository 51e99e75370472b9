/* The one-time conversion of a store's JSON records to protobuf
 * (node_store.h: node_store_convert).
 *
 * Releases before the protobuf records wrote the records of sent and
 * received messages, the case workflow's, held deliveries, webhook pushes,
 * transfers and uploads as JSON objects. Every reader takes either form, so
 * nothing needs this to work; it is done once, when the store is first
 * opened for writing by this release, so that no record read later goes
 * through jansson (whose allocation failures inside an escaped string
 * abort the process) and a later release may drop the JSON readers. A meta
 * mark records that it was done.
 *
 * Each table is converted in bounded write transactions, resumed from the
 * first key not yet looked at: a node killed during it converts the rest at
 * its next start, and a converted record is simply protobuf then. A record
 * that does not decode (damaged) is left as it is, as the readers leave it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tern/error.h>
#include <tern/log.h>

#include "node_int.h"
#include "node_store.h"
#include "record.h"
#include "util.h"
#include "xfer_rec.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))

#define CONVERT_MARK NODE_STORE_CONVERT_MARK
/* Per write transaction: records converted, records looked at. */
#define CONVERT_TXN_MAX 1000
#define CONVERT_SCAN_MAX 50000
/* LMDB's longest key with its default build. */
#define KEY_MAX 511

typedef int conv_decode_fn(const void *data, size_t len, ProtobufCMessage **out);

static int sent_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_rec_sent_decode(data, len, (node_sent_rec **)out);
}

static int recv_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_rec_recv_decode(data, len, (node_recv_rec **)out);
}

static int wf_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_rec_wf_decode(data, len, (tern_wf_record **)out);
}

static int xin_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_xin_record_decode(data, len, (node_xin_pb **)out);
}

static int xout_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_xout_record_decode(data, len, (node_xout_pb **)out);
}

static int upload_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_upload_record_decode(data, len, (node_upload_pb **)out);
}

/* Every table whose values are records of one kind. */
static const struct conv_table {
	int dbi;
	const char *name;
	conv_decode_fn *decode;
} tables[] = {
    {NS_MSGS, "sent messages", sent_decode},
    {NS_RECEIVED, "received messages", recv_decode},
    {NS_REFS, "the case workflow", wf_decode},
    {NS_HELD, "held deliveries", node_held_record_decode},
    {NS_PUSHES, "webhook pushes", node_push_record_decode},
    {NS_XIN, "transfers in", xin_decode},
    {NS_XOUT, "transfers out", xout_decode},
    {NS_UPLOADS, "uploads", upload_decode},
};

struct conv_pair {
	MDB_val k, v; /* both malloc'd */
};

/* One write's work on one table, from the first key not looked at yet. */
struct conv_job {
	tern_store *s;
	const struct conv_table *t;
	uint8_t from[KEY_MAX];
	size_t from_len;
	int started; /* from is set */
	/* What the write did (set afresh by each run: LMDB may run it twice). */
	uint8_t next[KEY_MAX];
	size_t next_len;
	int done;
	size_t converted, damaged;
};

static void pairs_free(struct conv_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].k.mv_data);
		free(p[i].v.mv_data);
	}
	free(p);
}

/* The record v as protobuf into *out (malloc'd): TERN_OK, TERN_EMALFORMED
 * (damaged: left as it is) or TERN_ENOMEM. */
static int convert_one(const struct conv_table *t, const MDB_val *v, MDB_val *out)
{
	ProtobufCMessage *m = NULL;
	int rc = t->decode(v->mv_data, v->mv_size, &m);
	size_t n;

	if (rc != TERN_OK)
		return rc;
	n = protobuf_c_message_get_packed_size(m);
	if ((out->mv_data = malloc(n ? n : 1)) == NULL) {
		protobuf_c_message_free_unpacked(m, NULL);
		return TERN_ENOMEM;
	}
	out->mv_size = protobuf_c_message_pack(m, out->mv_data);
	protobuf_c_message_free_unpacked(m, NULL);
	return TERN_OK;
}

static int convert_apply(MDB_txn *txn, void *arg)
{
	struct conv_job *j = arg;
	struct conv_pair *p = NULL;
	size_t np = 0, seen = 0;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc;

	j->done = 0;
	j->next_len = 0;
	j->converted = j->damaged = 0;
	if ((p = calloc(CONVERT_TXN_MAX, sizeof(*p))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory converting the records of %s",
		                 j->t->name);
	if ((rc = mdb_cursor_open(txn, DBI(j->s, j->t->dbi), &c)) != 0) {
		rc = MDB(rc, "cursor");
		goto out;
	}
	k = (MDB_val){j->from_len, j->from};
	rc = mdb_cursor_get(c, &k, &v, j->started ? MDB_SET_RANGE : MDB_FIRST);
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int crc;
		if (np == CONVERT_TXN_MAX || seen == CONVERT_SCAN_MAX || k.mv_size > KEY_MAX)
			break; /* the next write starts here */
		seen++;
		if (v.mv_size == 0 || ((const char *)v.mv_data)[0] != '{')
			continue; /* protobuf already */
		crc = convert_one(j->t, &v, &p[np].v);
		if (crc == TERN_EMALFORMED) {
			j->damaged++;
			continue;
		}
		if (crc == TERN_OK && (p[np].k.mv_data = malloc(k.mv_size)) == NULL) {
			free(p[np].v.mv_data);
			p[np].v.mv_data = NULL;
			crc = TERN_ENOMEM;
		}
		if (crc != TERN_OK) {
			rc = tern_fail(crc, "converting a record of %s: %s", j->t->name,
			               tern_errdetail());
			goto out;
		}
		memcpy(p[np].k.mv_data, k.mv_data, k.mv_size);
		p[np].k.mv_size = k.mv_size;
		np++;
	}
	if (rc == MDB_NOTFOUND) {
		j->done = 1;
	} else if (rc != 0) {
		rc = MDB(rc, "read records to convert");
		goto out;
	} else if (k.mv_size > KEY_MAX) {
		rc = tern_fail(TERN_EMALFORMED, "a key of %zu bytes in the records of %s",
		               k.mv_size, j->t->name);
		goto out;
	} else {
		memcpy(j->next, k.mv_data, k.mv_size);
		j->next_len = k.mv_size;
	}
	mdb_cursor_close(c);
	c = NULL;
	/* Written after the scan: a put under an open cursor of the same
	 * table would move what the cursor stands on. */
	rc = TERN_OK;
	for (size_t i = 0; i < np && rc == TERN_OK; i++)
		rc = MDB(mdb_put(txn, DBI(j->s, j->t->dbi), &p[i].k, &p[i].v, 0), "write record");
	j->converted = np;
out:
	if (c)
		mdb_cursor_close(c);
	pairs_free(p, np);
	return rc;
}

static int mark_apply(MDB_txn *txn, void *arg)
{
	tern_store *s = arg;
	MDB_val k = {strlen(CONVERT_MARK), CONVERT_MARK}, v = {1, "1"};

	return MDB(mdb_put(txn, DBI(s, NS_META), &k, &v, 0), "write the conversion's mark");
}

int node_store_convert(tern_store *s, size_t *converted, size_t *damaged)
{
	MDB_val k = {strlen(CONVERT_MARK), CONVERT_MARK}, v;
	struct conv_job *j = NULL;
	time_t t0 = time(NULL), said = t0;
	MDB_txn *txn;
	int rc;

	*converted = *damaged = 0;
	if ((rc = tern_store_read_begin(s, &txn)) != TERN_OK)
		return rc;
	rc = mdb_get(txn, DBI(s, NS_META), &k, &v);
	mdb_txn_abort(txn);
	if (rc == 0)
		return TERN_OK; /* done before */
	if (rc != MDB_NOTFOUND)
		return MDB(rc, "read the conversion's mark");
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory converting records");
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		if (DBI(s, tables[i].dbi) == 0)
			continue; /* a table this store never had */
		memset(j, 0, sizeof(*j));
		j->s = s;
		j->t = &tables[i];
		for (;;) {
			if ((rc = tern_store_write(s, convert_apply, j)) != TERN_OK)
				goto out;
			*converted += j->converted;
			*damaged += j->damaged;
			if (*converted && time(NULL) - said >= 10) {
				said = time(NULL);
				log_info(
				    "converting records an older release wrote as JSON: %zu so "
				    "far (now: %s)",
				    *converted, tables[i].name);
			}
			if (j->done)
				break;
			memcpy(j->from, j->next, j->next_len);
			j->from_len = j->next_len;
			j->started = 1;
		}
	}
	if ((rc = tern_store_write(s, mark_apply, s)) != TERN_OK)
		goto out;
	if (*converted || *damaged)
		log_info("converted %zu records an older release wrote as JSON to protobuf in %lld "
		         "s; %zu damaged records left as they were",
		         *converted, (long long)(time(NULL) - t0), *damaged);
out:
	free(j);
	return rc;
}

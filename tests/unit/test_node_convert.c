/* The one-time conversion of a store's JSON records to protobuf
 * (nodes/convert.c): every record an older release wrote, in every table,
 * becomes the protobuf record its readers made of it; damaged ones and
 * protobuf ones are left as they are; it runs in bounded transactions, once,
 * and under any shortage leaves every record readable as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>

#include "failmalloc.h"
#include "node_int.h"
#include "node_store.h"
#include "record.h"
#include "testutil.h"
#include "webhook.h"
#include "xfer_rec.h"

static char dir[128];
static tern_store *st;

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "nodeconvert") != 0)
		return -1;
	return node_store_open(dir, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

/* Records as the releases before protobuf wrote them (JSON_COMPACT). */
#define ROOT "abababababababababababababababababababababababababababababababab"
#define SHA "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
#define OLD_SENT                                                                                   \
	"{\"type\":\"case-referral\",\"case_id\":\"C-7\",\"created_at\":1,\"state\":"              \
	"\"at-broker\",\"reason_code\":\"\",\"reason_text\":\"\",\"recipients\":{\"sweden\":{"     \
	"\"state\":\"delivered\",\"reason_code\":\"\",\"reason_text\":\"\",\"at\":10},\"iom\":{"   \
	"\"state\":\"at-broker\",\"reason_code\":\"\",\"reason_text\":\"\",\"at\":10}},\"seq\":1," \
	"\"outseq\":1,\"broker_n\":4}"
#define OLD_RECEIVED                                                                               \
	"{\"sender\":\"unhcr\",\"type\":\"acceptance-decision\",\"case_id\":\"C-7\","              \
	"\"received_at\":5,\"accepted\":true,\"inbox_seq\":1,\"acked\":true,\"acked_at\":9,"       \
	"\"reason_code\":\"\",\"reason_text\":\"caf\\u00e9 \\\"quoted\\\"\"}"
#define OLD_WF                                                                                     \
	"{\"type\":\"case-referral\",\"case_id\":\"C-7\",\"sender\":\"unhcr\",\"to\":[\"sweden\"]" \
	","                                                                                        \
	"\"value\":\"\",\"ref\":\"\",\"persons\":[\"P1\",\"P2\"],\"state\":\"accepted\",\"last\":" \
	"{"                                                                                        \
	"\"case-referral\":\"01a20598-0000-7000-8000-0000000000a1\"}}"
#define OLD_WF_STUB                                                                                \
	"{\"stub\":true,\"case_id\":\"C-7\",\"parties\":[\"sweden\",\"unhcr\",\"iom\"],\"last\":{" \
	"\"acceptance-decision\":\"01a20598-0000-7000-8000-0000000000d1\"},\"state\":"             \
	"\"accepted\"}"
#define OLD_HELD                                                                                   \
	"{\"ref\":\"01a20598-0000-7000-8000-0000000000a1\",\"until\":1795390000000,\"sender\":"    \
	"\"sweden\",\"case_id\":\"C-7\",\"type\":\"travel-arrangement\",\"len\":1200}"
#define OLD_PUSH                                                                                   \
	"{\"id\":\"01a20598-0000-7000-8000-000000000009.received\",\"body\":"                      \
	"\"{\\\"type\\\":\\\"message.received\\\",\\\"data\\\":{\\\"messageId\\\":"                \
	"\\\"01a20598-0000-7000-8000-000000000009\\\"}}\"}"
#define OLD_XIN                                                                                    \
	"{\"sender\":\"unhcr\",\"case_id\":\"C-1\",\"type\":\"case-referral\",\"until\":"          \
	"1795390000000,\"att\":1,\"have\":3,\"atts\":[{\"size\":5000,\"chunk_size\":65536,"        \
	"\"root\":\"" ROOT "\",\"sha256\":\"" SHA "\"},{\"size\":5000000,\"chunk_size\":1048576,"  \
	"\"root\":\"" ROOT "\",\"sha256\":\"" SHA "\"}]}"
#define OLD_XOUT                                                                                   \
	"{\"atts\":[{\"size\":5000,\"chunk_size\":65536,\"root\":\"" ROOT "\"}],\"done\":true}"
#define OLD_UPLOAD "{\"size\":123456,\"expires\":1795390000000}"

#define NSENT 2300 /* more than one write transaction's worth */

struct rec {
	int dbi;
	uint8_t key[64];
	size_t klen;
	const char *json;
};

static int decode_any(int dbi, const void *data, size_t len, ProtobufCMessage **m)
{
	switch (dbi) {
	case NS_MSGS:
		return node_rec_sent_decode(data, len, (node_sent_rec **)m);
	case NS_RECEIVED:
		return node_rec_recv_decode(data, len, (node_recv_rec **)m);
	case NS_REFS:
		return node_rec_wf_decode(data, len, (tern_wf_record **)m);
	case NS_HELD:
		return node_held_record_decode(data, len, m);
	case NS_PUSHES:
		return node_push_record_decode(data, len, m);
	case NS_XIN:
		return node_xin_record_decode(data, len, (node_xin_pb **)m);
	case NS_XOUT:
		return node_xout_record_decode(data, len, (node_xout_pb **)m);
	default:
		return node_upload_record_decode(data, len, (node_upload_pb **)m);
	}
}

/* What the readers make of bytes: the record they decode to, packed. */
static uint8_t *as_read(int dbi, const void *data, size_t len, size_t *out_len)
{
	ProtobufCMessage *m = NULL;
	uint8_t *buf;

	assert_int_equal(decode_any(dbi, data, len, &m), TERN_OK);
	*out_len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*out_len ? *out_len : 1);
	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	protobuf_c_message_free_unpacked(m, NULL);
	return buf;
}

/* One record of each table, and the many sent ones when many is set. */
static struct rec *old_records(int many, size_t *n)
{
	struct rec *r = calloc(16 + NSENT, sizeof(*r));
	size_t i = 0;

	assert_non_null(r);
#define ADD(d, k, j)                                                                               \
	do {                                                                                       \
		r[i].dbi = (d);                                                                    \
		r[i].klen = strlen(k);                                                             \
		memcpy(r[i].key, (k), r[i].klen);                                                  \
		r[i].json = (j);                                                                   \
		i++;                                                                               \
	} while (0)
	ADD(NS_MSGS, "01a20598-0000-7000-8000-000000000001", OLD_SENT);
	ADD(NS_RECEIVED, "01a20598-0000-7000-8000-000000000002", OLD_RECEIVED);
	ADD(NS_REFS, "01a20598-0000-7000-8000-0000000000a1", OLD_WF);
	ADD(NS_REFS, "01a20598-0000-7000-8000-0000000000a2", OLD_WF_STUB);
	ADD(NS_HELD, "01a20598-0000-7000-8000-000000000003", OLD_HELD);
	ADD(NS_XIN, "01a20598-0000-7000-8000-000000000004", OLD_XIN);
	ADD(NS_XOUT, "01a20598-0000-7000-8000-000000000005", OLD_XOUT);
	ADD(NS_UPLOADS, "u-0f3c", OLD_UPLOAD);
	r[i].dbi = NS_PUSHES; /* keyed by be64(seq) */
	r[i].klen = 8;
	r[i].key[7] = 1;
	r[i].json = OLD_PUSH;
	i++;
	for (int s = 0; many && s < NSENT; s++) {
		char id[37];
		snprintf(id, sizeof(id), "01a20598-0000-7000-8001-%012d", s);
		ADD(NS_MSGS, id, OLD_SENT);
	}
#undef ADD
	*n = i;
	return r;
}

static int put_raw(MDB_txn *txn, void *arg)
{
	const struct rec *r = arg;
	MDB_val k = {r->klen, (void *)r->key}, v = {strlen(r->json), (void *)r->json};

	return mdb_put(txn, tern_store_dbi(st, r->dbi), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

struct bytes {
	int dbi;
	MDB_val k, v;
};

static int put_bytes(MDB_txn *txn, void *arg)
{
	struct bytes *b = arg;

	return mdb_put(txn, tern_store_dbi(st, b->dbi), &b->k, &b->v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static int drop_convert_mark(MDB_txn *txn, void *arg)
{
	MDB_val k = {strlen(NODE_STORE_CONVERT_MARK), NODE_STORE_CONVERT_MARK};
	int rc = mdb_del(txn, tern_store_dbi(st, NS_META), &k, NULL);

	(void)arg;
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : TERN_EIO;
}

static int has_mark(void)
{
	MDB_val k = {strlen(NODE_STORE_CONVERT_MARK), NODE_STORE_CONVERT_MARK}, v;
	MDB_txn *txn;
	int rc;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	rc = mdb_get(txn, tern_store_dbi(st, NS_META), &k, &v);
	mdb_txn_abort(txn);
	return rc == 0;
}

/* The bytes the store holds under r's key (a copy). */
static uint8_t *stored(int dbi, const void *key, size_t klen, size_t *len)
{
	MDB_val k = {klen, (void *)key}, v;
	MDB_txn *txn;
	uint8_t *out;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, dbi), &k, &v), 0);
	out = malloc(v.mv_size ? v.mv_size : 1);
	assert_non_null(out);
	memcpy(out, v.mv_data, v.mv_size);
	*len = v.mv_size;
	mdb_txn_abort(txn);
	return out;
}

/* Every record of r reads as its JSON did; converted: stored as protobuf,
 * the very record the readers made of it. */
static void check_records(const struct rec *r, size_t n, int converted)
{
	for (size_t i = 0; i < n; i++) {
		size_t wl, gl, sl;
		uint8_t *want = as_read(r[i].dbi, r[i].json, strlen(r[i].json), &wl);
		uint8_t *s = stored(r[i].dbi, r[i].key, r[i].klen, &sl);
		uint8_t *got = as_read(r[i].dbi, s, sl, &gl);
		if (gl != wl || memcmp(got, want, wl) != 0)
			fail_msg("record %zu (table %d) reads otherwise than its JSON did", i,
			         r[i].dbi);
		if (converted && (sl != wl || memcmp(s, want, wl) != 0))
			fail_msg("record %zu (table %d) is not stored as its protobuf", i,
			         r[i].dbi);
		free(want);
		free(got);
		free(s);
	}
}

/* A store an older release wrote, opened by this one: every JSON record in
 * every table is protobuf after the open, reading as before; a damaged
 * record and a protobuf one are left byte for byte; the mark is set, and the
 * next open converts nothing (a JSON record written after it stays). */
static void test_open_converts_every_table(void **state)
{
	static const char damaged[] = "{\"type\":\"case-referral\",\"case_id\":";
	static const char bad_id[] = "01a20598-0000-7000-8001-999999999999";
	static const char pb_id[] = "01a20598-0000-7000-8000-0000000000ff";
	struct rec bad = {.dbi = NS_MSGS, .klen = 36, .json = damaged};
	size_t n, conv, dmg, len, pl;
	struct rec *r = old_records(1, &n);
	uint8_t *pb = as_read(NS_MSGS, OLD_SENT, strlen(OLD_SENT), &pl), *s;

	(void)state;
	memcpy(bad.key, bad_id, 36);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tern_store_write(st, put_raw, &r[i]), TERN_OK);
	assert_int_equal(tern_store_write(st, put_raw, &bad), TERN_OK);
	{
		struct bytes p = {NS_MSGS, {36, (void *)pb_id}, {pl, pb}};
		assert_int_equal(tern_store_write(st, put_bytes, &p), TERN_OK);
	}
	assert_int_equal(tern_store_write(st, drop_convert_mark, NULL), TERN_OK);
	check_records(r, n, 0);

	/* Read-only (an operator tool while the node is down): nothing changes. */
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 1, &st), TERN_OK);
	s = stored(NS_MSGS, r[0].key, r[0].klen, &len);
	assert_int_equal(s[0], '{');
	free(s);
	assert_false(has_mark());
	tern_store_close(&st);

	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK); /* converts */
	check_records(r, n, 1);
	assert_true(has_mark());
	s = stored(NS_MSGS, bad_id, 36, &len);
	assert_int_equal(len, strlen(damaged));
	assert_memory_equal(s, damaged, len);
	free(s);
	s = stored(NS_MSGS, pb_id, 36, &len);
	assert_int_equal(len, pl);
	assert_memory_equal(s, pb, pl);
	free(s);

	/* Once: a second call finds the mark and looks at nothing. */
	assert_int_equal(tern_store_write(st, put_raw, &r[1]), TERN_OK); /* JSON again */
	assert_int_equal(node_store_convert(st, &conv, &dmg), TERN_OK);
	assert_int_equal(conv, 0);
	assert_int_equal(dmg, 0);
	s = stored(NS_RECEIVED, r[1].key, r[1].klen, &len);
	assert_int_equal(s[0], '{');
	free(s);
	/* Without the mark, it is converted, and only it: the damaged one is
	 * counted again. */
	assert_int_equal(tern_store_write(st, drop_convert_mark, NULL), TERN_OK);
	assert_int_equal(node_store_convert(st, &conv, &dmg), TERN_OK);
	assert_int_equal(conv, 1);
	assert_int_equal(dmg, 1);
	check_records(r, n, 1);
	free(pb);
	free(r);
}

/* The conversion under each shortage (the node's start with too little
 * memory): it fails out of memory or succeeds, and whatever it committed,
 * every record still reads as its JSON did; run again with memory, it
 * finishes. Nothing is lost or half written. */
static void test_every_convert_shortage_keeps_records(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	size_t n, conv, dmg, total = 0;
	struct rec *r = old_records(0, &n);
	long k;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(tern_store_write(st, put_raw, &r[i]), TERN_OK);
	assert_int_equal(tern_store_write(st, drop_convert_mark, NULL), TERN_OK);
	for (k = 1;; k++) {
		int rc, failed;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_store_convert(st, &conv, &dmg);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc != TERN_OK && rc != TERN_ENOMEM)
			fail_msg("allocation %ld failing: %s (%s)", k, tern_strerror(rc),
			         tern_errdetail());
		assert_int_equal(dmg, 0);
		total += conv;
		check_records(r, n, 0);
		if (rc == TERN_OK) {
			assert_true(has_mark());
			assert_true(total <= n);
			if (!failed)
				break;
			/* Done despite a failed allocation (one nothing needed): for
			 * the next k, the store as an older release left it. */
			for (size_t i = 0; i < n; i++)
				assert_int_equal(tern_store_write(st, put_raw, &r[i]), TERN_OK);
			assert_int_equal(tern_store_write(st, drop_convert_mark, NULL), TERN_OK);
			total = 0;
		} else {
			assert_false(has_mark());
		}
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 10);
	check_records(r, n, 1);
	free(r);
#else
	(void)state;
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_converts_every_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_convert_shortage_keeps_records, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

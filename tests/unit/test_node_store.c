/* The node's store: outbox order, message states per recipient, inbox and
 * its acknowledgement, cross-references, the broker resync point. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/v1/messages.pb-c.h>
#include <tern/workflow.h>

#include "api_server.h"
#include "failmalloc.h"
#include "node_store.h"
#include "testutil.h"

static char dir[128];
static tern_store *st;

static const char *const two[] = {"sweden", "iom"};
#define ID1 "01a20598-0000-7000-8000-000000000001"
#define ID2 "01a20598-0000-7000-8000-000000000002"
#define ID3 "01a20598-0000-7000-8000-000000000003"
#define ID4 "01a20598-0000-7000-8000-000000000004"

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "nodestore") != 0)
		return -1;
	return node_store_open(dir, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

struct op {
	int (*fn)(MDB_txn *txn, struct op *o);
	const char *msgid, *node, *state, *code;
	int accepted;
	uint64_t n; /* do_submitted: the broker's acceptance number; do_resubmit: the count */
	size_t out;
	int notice; /* do_rstate: the broker's notice, not a receipt */
};

static int apply(MDB_txn *txn, void *arg)
{
	struct op *o = arg;
	return o->fn(txn, o);
}

static int do_enqueue(MDB_txn *txn, struct op *o)
{
	node_out m = {
	    o->msgid, (const uint8_t *)"env", 3, "case-referral", "C-1", 1, two, 2, "", "", NULL,
	    NULL};
	return node_store_enqueue(txn, st, &m, 10);
}

static int do_submitted(MDB_txn *txn, struct op *o)
{
	return node_store_submitted(txn, st, o->msgid, o->accepted, o->n, o->code, "why", 20);
}

static const uint8_t broker_store[16] = {0xb5};

static int do_reset(MDB_txn *txn, struct op *o)
{
	(void)o;
	return node_store_accepted_reset(txn, st, broker_store);
}

static int do_resubmit(MDB_txn *txn, struct op *o)
{
	return node_store_resubmit_after(txn, st, o->n, 40, &o->out);
}

static int do_rstate(MDB_txn *txn, struct op *o)
{
	return node_store_recipient_state(txn, st, o->msgid, o->node, o->state, o->code, "",
	                                  o->notice, 30);
}

static void run(struct op o)
{
	assert_int_equal(tern_store_write(st, apply, &o), TERN_OK);
}

static const char *state_of(const char *msgid, const char *node)
{
	static char buf[32];
	MDB_txn *txn;
	json_t *rec = NULL, *where;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, msgid, &rec), TERN_OK);
	mdb_txn_abort(txn);
	where = node ? json_object_get(json_object_get(rec, "recipients"), node) : rec;
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(where, "state")));
	json_decref(rec);
	return buf;
}

static const char *reason_of(const char *msgid)
{
	static char buf[64];
	MDB_txn *txn;
	json_t *rec = NULL;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, msgid, &rec), TERN_OK);
	mdb_txn_abort(txn);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(rec, "reason_code")));
	json_decref(rec);
	return buf;
}

static int count_visit(uint64_t seq, const char *msgid, const uint8_t *env, size_t len, void *arg)
{
	(void)seq;
	(void)env;
	(void)len;
	strncat(arg, msgid + 35, 1);
	return 0;
}

/* Removes the counts' mark and spoils a counter, as a store from before the
 * counters would be. */
static int drop_mark(MDB_txn *txn, void *arg)
{
	MDB_val k = {10, "count.kept"}, k2 = {15, "count.delivered"}, v = {8, "\0\0\0\0\0\0\0\x09"};

	(void)arg;
	if (mdb_del(txn, tern_store_dbi(st, NS_META), &k, NULL) != 0)
		return TERN_EIO;
	return mdb_put(txn, tern_store_dbi(st, NS_META), &k2, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static void test_states(void **state)
{
	char order[8] = "";
	MDB_txn *txn;

	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_outbox_scan(txn, st, 0, count_visit, order);
	mdb_txn_abort(txn);
	assert_string_equal(order, "12");
	assert_string_equal(state_of(ID1, NULL), "queued");

	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	assert_string_equal(state_of(ID1, NULL), "at-broker");
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "delivered", .code = ""});
	assert_string_equal(state_of(ID1, NULL), "at-broker");
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "delivered", .code = ""});
	assert_string_equal(state_of(ID1, NULL), "delivered");

	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 0, .code = "wrong-role"});
	assert_string_equal(state_of(ID2, NULL), "rejected");
	order[0] = 0;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_outbox_scan(txn, st, 0, count_visit, order);
	mdb_txn_abort(txn);
	assert_string_equal(order, ""); /* answered entries leave the outbox */
}

/* The message's reason is one a recipient still carries: expired for sweden,
 * then delivered there after the broker's dlq retry, it is no longer shown
 * as expired; a rejection by iom that came after is shown until it too is
 * replaced. */
static void test_reason_follows_recipients(void **state)
{
	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID3});
	run((struct op){.fn = do_submitted, .msgid = ID3, .accepted = 1, .code = ""});
	run((struct op){.fn = do_rstate,
	                .msgid = ID3,
	                .node = "sweden",
	                .state = "expired",
	                .code = "expired",
	                .notice = 1});
	assert_string_equal(state_of(ID3, NULL), "expired");
	assert_string_equal(reason_of(ID3), "expired");
	run((struct op){.fn = do_rstate,
	                .msgid = ID3,
	                .node = "iom",
	                .state = "rejected",
	                .code = "invalid-body"});
	assert_string_equal(state_of(ID3, NULL), "rejected");
	assert_string_equal(reason_of(ID3), "expired"); /* the first reason stays */

	run((struct op){
	    .fn = do_rstate, .msgid = ID3, .node = "sweden", .state = "delivered", .code = ""});
	assert_string_equal(state_of(ID3, "sweden"), "delivered");
	assert_string_equal(reason_of(ID3), "invalid-body");
	run((struct op){
	    .fn = do_rstate, .msgid = ID3, .node = "iom", .state = "delivered", .code = ""});
	assert_string_equal(state_of(ID3, NULL), "delivered");
	assert_string_equal(reason_of(ID3), "");
}

static json_int_t count_of(const char *state_name)
{
	MDB_txn *txn;
	json_t *c = NULL;
	json_int_t n;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_counts(txn, st, &c), TERN_OK);
	mdb_txn_abort(txn);
	n = json_integer_value(json_object_get(json_object_get(c, "outbox"), state_name));
	json_decref(c);
	return n;
}

/* The counts by state follow every move, survive a reopen, and a store
 * without them (from before they were kept) gets them counted once. */
static void test_counts(void **state)
{
	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	assert_int_equal(count_of("queued"), 2);
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""}); /* again */
	assert_int_equal(count_of("queued"), 1);
	assert_int_equal(count_of("at-broker"), 1);
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "delivered", .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "delivered", .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 0, .code = "wrong-role"});
	assert_int_equal(count_of("queued"), 0);
	assert_int_equal(count_of("at-broker"), 0);
	assert_int_equal(count_of("delivered"), 1);
	assert_int_equal(count_of("rejected"), 1);

	/* Reopened: the same. Without the counters: counted again on open. */
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK);
	assert_int_equal(count_of("delivered"), 1);
	assert_int_equal(tern_store_write(st, drop_mark, NULL), TERN_OK);
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 1, &st), TERN_OK); /* read-only: scans */
	assert_int_equal(count_of("delivered"), 1);
	assert_int_equal(count_of("rejected"), 1);
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK); /* counts once */
	assert_int_equal(count_of("delivered"), 1);
	assert_int_equal(count_of("rejected"), 1);
	assert_int_equal(count_of("queued"), 0);
}

/* node_store_counts under each shortage, with the counters and (read-only,
 * a store from before them) counting: the same counts, or TERN_ENOMEM.
 * Before, a count not set for want of memory was shown as 0. */
static void test_every_counts_shortage_whole(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	long swept = 0;

	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	for (int counted = 0; counted < 2; counted++) {
		MDB_txn *txn;
		json_t *want = NULL;
		long k;
		if (counted) {
			assert_int_equal(tern_store_write(st, drop_mark, NULL), TERN_OK);
			tern_store_close(&st);
			assert_int_equal(node_store_open(dir, 1, &st), TERN_OK);
		}
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		assert_int_equal(node_store_counts(txn, st, &want), TERN_OK);
		mdb_txn_abort(txn);
		assert_int_equal(
		    json_integer_value(json_object_get(json_object_get(want, "outbox"), "queued")),
		    1);
		for (k = 1;; k++) {
			json_t *c = NULL;
			int rc, failed;
			assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
			malloc_failed = 0;
			malloc_fail_at = k;
			rc = node_store_counts(txn, st, &c);
			malloc_fail_at = 0;
			failed = malloc_failed;
			mdb_txn_abort(txn);
			if (rc == TERN_OK && !json_equal(c, want))
				fail_msg("%s, allocation %ld failing: other counts",
				         counted ? "counting" : "counters", k);
			if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed || c != NULL))
				fail_msg("%s, allocation %ld failing: %s",
				         counted ? "counting" : "counters", k, tern_strerror(rc));
			json_decref(c);
			if (!failed)
				break;
		}
		swept += k - 1;
		json_decref(want);
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 10);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static int hold_id4(MDB_txn *txn, void *arg)
{
	(void)arg;
	return node_store_case_note(txn, st, "C-1", ID4, 'h');
}

static int do_receive_c1(MDB_txn *txn, struct op *o)
{
	node_in m = {o->msgid,
	             (const uint8_t *)"env",
	             3,
	             "sweden",
	             "acceptance-decision",
	             "C-1",
	             "ACCEPTED",
	             o->accepted,
	             "",
	             "",
	             NULL};
	return node_store_receive(txn, st, &m, 15);
}

/* The cases table, as "kind:msgid" joined. */
static const char *case_index(void)
{
	static char buf[512];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	size_t off = 0;

	buf[0] = '\0';
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, tern_store_dbi(st, NS_CASES), &c), 0);
	while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%c:%.*s", off ? " " : "",
		                        *(const char *)v.mv_data, (int)(k.mv_size - 4),
		                        (const char *)k.mv_data + 4);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return buf;
}

static int join_visit(char kind, const char *msgid, void *arg)
{
	char *buf = arg;
	size_t off = strlen(buf);
	snprintf(buf + off, 512 - off, "%s%c:%s", off ? " " : "", kind, msgid);
	return 0;
}

/* The messages the listing index has under case_id, as "kind:msgid" joined. */
static const char *case_messages(const char *case_id)
{
	static char buf[512];
	MDB_txn *txn;

	buf[0] = '\0';
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_list_case_scan(txn, st, case_id, join_visit, buf), TERN_OK);
	mdb_txn_abort(txn);
	return buf;
}

/* A case's messages are found through the listing index, in the order they
 * were written, receipts left out. The cases table holds held messages only,
 * each until it is received (accepted or refused): a message costs one key
 * by case, not two. */
static void test_case_index(void **state)
{
	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	assert_int_equal(tern_store_write(st, hold_id4, NULL), TERN_OK);
	run((struct op){.fn = do_receive_c1, .msgid = ID2, .accepted = 1});
	run((struct op){.fn = do_receive_c1, .msgid = ID3, .accepted = 0});
	assert_string_equal(case_messages("C-1"), "o:" ID1 " i:" ID2 " i:" ID3);
	assert_string_equal(case_messages("C-2"), "");
	assert_string_equal(case_messages(""), "");
	assert_string_equal(case_index(), "h:" ID4);
	run((struct op){.fn = do_receive_c1, .msgid = ID4, .accepted = 1});
	assert_string_equal(case_index(), "");
	assert_string_equal(case_messages("C-1"), "o:" ID1 " i:" ID2 " i:" ID3 " i:" ID4);
}

/* 300 entries: more than the 256 the log stores its subtrees by. */
static int audit_300(MDB_txn *txn, void *arg)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	tern_audit_dbs d;
	int rc = TERN_OK;

	(void)arg;
	node_store_audit_dbs(st, &d);
	e.kind = TERN__V1__AUDIT_ENTRY__KIND__SENT;
	e.peer = "sweden";
	for (int i = 0; i < 300 && rc == TERN_OK; i++) {
		e.at = i;
		rc = tern_audit_append(txn, &d, &e);
	}
	return rc;
}

static int delete_subtrees(MDB_txn *txn, void *arg)
{
	(void)arg;
	return tern_store_mdb_err(mdb_drop(txn, tern_store_dbi(st, NS_AUDIT_SUBTREES), 1), "drop");
}

static size_t subtrees_stored(void)
{
	MDB_txn *txn;
	MDB_stat ms;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_stat(txn, tern_store_dbi(st, NS_AUDIT_SUBTREES), &ms), 0);
	mdb_txn_abort(txn);
	return ms.ms_entries;
}

/* A store from before the audit log kept its subtrees: tools open it
 * read-only as it is; the node's open for writing fills them in. */
static void test_audit_subtrees_from_before(void **state)
{
	tern_audit_dbs d;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	uint64_t size;
	tern_hash root;
	size_t len;
	MDB_txn *txn;

	(void)state;
	assert_int_equal(tern_store_write(st, audit_300, NULL), TERN_OK);
	assert_int_equal(subtrees_stored(), 2 * 256 - 1); /* stored a batch at a time */
	assert_int_equal(tern_store_write(st, delete_subtrees, NULL), TERN_OK);
	tern_store_close(&st);

	assert_int_equal(node_store_open(dir, 1, &st), TERN_OK);
	node_store_audit_dbs(st, &d);
	assert_true(d.subtrees == 0);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(tern_audit_head(txn, &d, &size, root), TERN_OK);
	assert_true(size == 300);
	assert_int_equal(tern_audit_consistency_proof(txn, &d, 3, 5, proof, &len), TERN_OK);
	assert_int_equal(len, 4);
	mdb_txn_abort(txn);
	tern_store_close(&st);

	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK);
	assert_int_equal(subtrees_stored(), 2 * 300 - 4); /* all of them: 300 has 4 bits set */
}

/* After a crash a receipt can overtake the broker's answer to a resubmission:
 * the answer must not undo the receipt's verdict. */
static void test_receipt_before_broker_answer(void **state)
{
	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "delivered", .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "delivered", .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	assert_string_equal(state_of(ID1, "sweden"), "delivered");
	assert_string_equal(state_of(ID1, NULL), "delivered");
}

/* Entries in the outbox (those awaiting the broker's answer), envelope or not. */
static size_t outbox_entries(void)
{
	MDB_txn *txn;
	MDB_stat ms;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_stat(txn, tern_store_dbi(st, NS_OUTBOX), &ms), 0);
	mdb_txn_abort(txn);
	return ms.ms_entries;
}

/* The broker's answer lost and the receipts in first: the message is answered
 * for good, its envelope dropped, and its outbox entry must go with it. Kept,
 * it was skipped by every scan (no envelope to send) and stayed for ever. */
static void test_receipts_clear_outbox_entry(void **state)
{
	(void)state;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	assert_int_equal(outbox_entries(), 2);
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "delivered", .code = ""});
	assert_int_equal(outbox_entries(), 2); /* iom still owed: it may have to go again */
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "delivered", .code = ""});
	assert_string_equal(state_of(ID1, NULL), "delivered");
	assert_int_equal(outbox_entries(), 1);
	/* The answer that comes late changes nothing. */
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	assert_string_equal(state_of(ID1, NULL), "delivered");
	assert_int_equal(outbox_entries(), 1);
	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 1, .code = ""});
	assert_int_equal(outbox_entries(), 0);
}

static int do_receive(MDB_txn *txn, struct op *o)
{
	node_in m = {o->msgid,
	             (const uint8_t *)"env",
	             3,
	             "unhcr",
	             "acceptance-decision",
	             "C-1",
	             "ACCEPTED",
	             o->accepted,
	             o->code,
	             "",
	             NULL};
	return node_store_receive(txn, st, &m, 5);
}

static int do_ack(MDB_txn *txn, struct op *o)
{
	return node_store_inbox_ack(txn, st, o->msgid);
}

static int first(const char *msgid, void *arg)
{
	snprintf(arg, 37, "%s", msgid);
	return 1;
}

static void test_inbox_and_refs(void **state)
{
	char head[37] = "";
	MDB_txn *txn;
	tern_wf_record *ref = NULL;
	uint8_t ep[16] = {7}, got[16];
	uint64_t upto;

	(void)state;
	run((struct op){.fn = do_receive, .msgid = ID1, .accepted = 1});
	run((struct op){.fn = do_receive, .msgid = ID2, .accepted = 0, .code = "invalid-body"});
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_inbox_scan(txn, st, first, head);
	assert_string_equal(head, ID1);
	assert_int_equal(node_store_received(txn, st, ID2, NULL), TERN_OK); /* remembered */
	assert_int_equal(node_store_ref(txn, st, ID1, &ref), TERN_OK);
	assert_string_equal(ref->outcome, "ACCEPTED");
	tern_wf_record_free(&ref);
	assert_int_equal(node_store_ref(txn, st, ID2, &ref), TERN_ENOENT); /* refused: no ref */
	mdb_txn_abort(txn);

	run((struct op){.fn = do_ack, .msgid = ID1});
	head[0] = 0;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_inbox_scan(txn, st, first, head);
	assert_string_equal(head, "");
	assert_int_equal(node_store_delivered_get(txn, st, got, got, &upto), TERN_OK);
	assert_true(upto == 0);
	mdb_txn_abort(txn);
	(void)ep;
}

static int put_short_resync(MDB_txn *txn, void *arg)
{
	MDB_val k = {9, "delivered"}, v = {7, "damaged"};

	(void)arg;
	return mdb_put(txn, tern_store_dbi(st, NS_META), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static const uint8_t resync_store[16] = {1}, resync_epoch[16] = {2};

static int put_resync(MDB_txn *txn, void *arg)
{
	(void)arg;
	return node_store_delivered_put(txn, st, resync_store, resync_epoch, 42);
}

/* A resync point of a size no version writes is said to be damaged (the
 * node's start logs it and reads it as none), not read as "holds nothing"
 * without a word, as it was; the two sizes written are read back. */
static void test_resync_point_sizes(void **state)
{
	uint8_t got_s[16], got_e[16];
	uint64_t upto = 9;
	MDB_txn *txn;

	(void)state;
	assert_int_equal(tern_store_write(st, put_short_resync, NULL), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_delivered_get(txn, st, got_s, got_e, &upto), TERN_EMALFORMED);
	assert_non_null(strstr(tern_errdetail(), "7 bytes"));
	assert_true(upto == 0);
	assert_true(got_s[0] == 0 && got_e[0] == 0);
	mdb_txn_abort(txn);
	assert_int_equal(tern_store_write(st, put_resync, NULL), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_delivered_get(txn, st, got_s, got_e, &upto), TERN_OK);
	assert_true(upto == 42);
	assert_memory_equal(got_s, resync_store, 16);
	assert_memory_equal(got_e, resync_epoch, 16);
	mdb_txn_abort(txn);
}

/* Records as a store written before the protobuf records (5787a07 to 59102aa)
 * holds them: JSON objects, byte for byte as those versions wrote them. */
#define OLD_SENT                                                                                   \
	"{\"type\":\"case-referral\",\"case_id\":\"C-7\",\"created_at\":1,\"state\":"              \
	"\"queued\",\"reason_code\":\"\",\"reason_text\":\"\",\"recipients\":{\"sweden\":{"        \
	"\"state\":\"queued\",\"reason_code\":\"\",\"reason_text\":\"\",\"at\":10},\"iom\":{"      \
	"\"state\":\"queued\",\"reason_code\":\"\",\"reason_text\":\"\",\"at\":10}},\"seq\":1,"    \
	"\"outseq\":1}"
#define OLD_RECEIVED                                                                               \
	"{\"sender\":\"unhcr\",\"type\":\"acceptance-decision\",\"case_id\":\"C-7\","              \
	"\"received_at\":5,\"accepted\":true,\"inbox_seq\":1,\"acked\":false,\"reason_code\":"     \
	"\"\",\"reason_text\":\"\"}"

static int put_old(MDB_txn *txn, void *arg)
{
	uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	MDB_val k = {36, ID1}, v = {strlen(OLD_SENT), OLD_SENT};
	MDB_val ok = {8, one}, ov = {36, ID1}, rk = {36, ID2},
	        rv = {strlen(OLD_RECEIVED), OLD_RECEIVED};
	MDB_val ik = {8, one}, iv = {36, ID2};

	(void)arg;
	if (mdb_put(txn, tern_store_dbi(st, NS_MSGS), &k, &v, 0) != 0 ||
	    mdb_put(txn, tern_store_dbi(st, NS_OUTBOX), &ok, &ov, 0) != 0 ||
	    mdb_put(txn, tern_store_dbi(st, NS_RECEIVED), &rk, &rv, 0) != 0 ||
	    mdb_put(txn, tern_store_dbi(st, NS_INBOX), &ik, &iv, 0) != 0)
		return TERN_EIO;
	return TERN_OK;
}

/* The first byte of what the store holds for msgid in dbi. */
static char stored_first_byte(int dbi, const char *msgid)
{
	MDB_txn *txn;
	MDB_val k = {strlen(msgid), (void *)msgid}, v;
	char c;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, dbi), &k, &v), 0);
	c = ((const char *)v.mv_data)[0];
	mdb_txn_abort(txn);
	return c;
}

/* An upgraded node reads the old JSON records as they are (the same fields
 * through the API), counts them, moves them on, and writes what it changes
 * as protobuf. */
static void test_old_json_records(void **state)
{
	json_t *old = json_loads(OLD_SENT, 0, NULL), *rec = NULL, *r2;
	MDB_txn *txn;

	(void)state;
	assert_int_equal(tern_store_write(st, put_old, NULL), TERN_OK);
	assert_int_equal(tern_store_write(st, drop_mark, NULL), TERN_OK);
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK); /* counts by a scan */
	assert_int_equal(count_of("queued"), 1);

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, ID1, &rec), TERN_OK);
	assert_true(json_equal(rec, old));
	json_decref(rec);
	assert_int_equal(node_store_received(txn, st, ID2, &rec), TERN_OK);
	r2 = json_loads(OLD_RECEIVED, 0, NULL);
	assert_true(json_equal(rec, r2));
	json_decref(r2);
	json_decref(rec);
	mdb_txn_abort(txn);
	assert_int_equal(stored_first_byte(NS_MSGS, ID1), '{');

	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .n = 3, .code = ""});
	assert_true(stored_first_byte(NS_MSGS, ID1) != '{');
	assert_string_equal(state_of(ID1, "iom"), "at-broker");
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "rejected", .code = "late"});
	assert_string_equal(state_of(ID1, NULL), "rejected");
	assert_string_equal(reason_of(ID1), "late");
	assert_int_equal(count_of("queued"), 0);
	assert_int_equal(count_of("rejected"), 1);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, ID1, &rec), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(json_integer_value(json_object_get(rec, "broker_n")), 3);
	assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 0);
	assert_string_equal(json_string_value(json_object_get(rec, "case_id")), "C-7");
	json_decref(rec);

	run((struct op){.fn = do_ack, .msgid = ID2});
	assert_true(stored_first_byte(NS_RECEIVED, ID2) != '{');
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_received(txn, st, ID2, &rec), TERN_OK);
	mdb_txn_abort(txn);
	assert_true(json_is_true(json_object_get(rec, "acked")));
	assert_true(json_integer_value(json_object_get(rec, "acked_at")) > 0);
	assert_string_equal(json_string_value(json_object_get(rec, "sender")), "unhcr");
	json_decref(rec);
	{ /* acknowledged before: nothing changes */
		struct op again = {.fn = do_ack, .msgid = ID2};
		assert_int_equal(tern_store_write(st, apply, &again), TERN_EEXIST);
	}
	json_decref(old);
}

/* Workflow records (the refs table) as the release before tern.v1.
 * WorkflowRecord wrote them: JSON, byte for byte what its engine and store.c
 * produced (printed by that release's code for this scenario). unhcr referred
 * case C-7 to sweden (members P1, P2), sweden accepted it; IOM, which never
 * held the referral, traced the thread from the decision (a stub). */
#define WR "01a20598-0000-7000-8000-0000000000a1" /* the referral */
#define WD "01a20598-0000-7000-8000-0000000000d1" /* sweden's decision */
#define WS "01a20598-0000-7000-8000-0000000000a2" /* a root IOM traced */
#define WE "01a20598-0000-7000-8000-0000000000e1" /* node_store_enqueue's */
#define WV "01a20598-0000-7000-8000-0000000000e2" /* node_store_receive's */
#define WP "01a20598-0000-7000-8000-0000000000a3" /* a root with no person left */
/* The referral's root record once the decision moved it. */
#define OLD_WF_ROOT                                                                                \
	"{\"type\":\"case-referral\",\"case_id\":\"C-7\",\"sender\":\"unhcr\",\"to\":[\"sweden\"]" \
	","                                                                                        \
	"\"value\":\"\",\"ref\":\"\",\"persons\":[\"P1\",\"P2\"],\"state\":\"accepted\",\"last\":" \
	"{"                                                                                        \
	"\"case-referral\":\"" WR "\",\"acceptance-decision\":\"" WD "\"}}"
/* The decision's own record (tern_workflow_judge's own_record). */
#define OLD_WF_DECISION                                                                            \
	"{\"type\":\"acceptance-decision\",\"case_id\":\"C-7\",\"sender\":\"sweden\",\"to\":["     \
	"\"unhcr\",\"iom\"],\"value\":\"ACCEPTED\",\"ref\":\"" WR "\",\"root\":\"" WR "\"}"
/* IOM's stub of the referral after the decision. */
#define OLD_WF_STUB                                                                                \
	"{\"stub\":true,\"case_id\":\"C-7\",\"parties\":[\"sweden\",\"unhcr\",\"iom\"],\"last\":{" \
	"\"acceptance-decision\":\"" WD "\"},\"state\":\"accepted\"}"
#define OLD_WF_ENQUEUED                                                                            \
	"{\"type\":\"acceptance-decision\",\"case_id\":\"C-7\",\"outcome\":\"ACCEPTED\",\"ref\":"  \
	"\"" WR "\"}"
#define OLD_WF_RECEIVED                                                                            \
	"{\"type\":\"acceptance-decision\",\"case_id\":\"C-7\",\"outcome\":\"ACCEPTED\"}"
/* Not written by a node as such (its roots name at least one member), but
 * the shape a root with every member removed has: persons there, empty. */
#define OLD_WF_NO_PERSONS                                                                          \
	"{\"type\":\"case-referral\",\"case_id\":\"C-7\",\"sender\":\"unhcr\",\"to\":[\"sweden\"]" \
	","                                                                                        \
	"\"value\":\"\",\"ref\":\"\",\"persons\":[],\"state\":\"referred\",\"last\":{"             \
	"\"case-referral\":\"" WP "\"}}"

static int put_old_wf(MDB_txn *txn, void *arg)
{
	static const char *const kv[][2] = {
	    {WR, OLD_WF_ROOT},     {WD, OLD_WF_DECISION}, {WS, OLD_WF_STUB},
	    {WE, OLD_WF_ENQUEUED}, {WV, OLD_WF_RECEIVED}, {WP, OLD_WF_NO_PERSONS},
	};

	(void)arg;
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		MDB_val k = {strlen(kv[i][0]), (void *)kv[i][0]},
		        v = {strlen(kv[i][1]), (void *)kv[i][1]};
		if (mdb_put(txn, tern_store_dbi(st, NS_REFS), &k, &v, 0) != 0)
			return TERN_EIO;
	}
	return TERN_OK;
}

static tern_wf_record *wf_read(const char *msgid)
{
	MDB_txn *txn;
	tern_wf_record *r = NULL;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_ref(txn, st, msgid, &r), TERN_OK);
	mdb_txn_abort(txn);
	assert_non_null(r);
	return r;
}

/* The store as a workflow lookup (arg: a read transaction). */
static int wf_store_lookup(void *arg, const char *msgid, tern_wf_record **rec)
{
	return node_store_ref(arg, st, msgid, rec);
}

static const tern_wf_record *wf_put_rec;

static int do_wf_put(MDB_txn *txn, struct op *o)
{
	return node_store_ref_put(txn, st, o->msgid, wf_put_rec);
}

/* Packs r: two records are equal when their bytes are. */
static size_t wf_bytes(const tern_wf_record *r, uint8_t *buf, size_t cap)
{
	size_t n = protobuf_c_message_get_packed_size(&r->base);

	assert_true(n <= cap);
	return protobuf_c_message_pack(&r->base, buf);
}

/* travel-confirmation `id` from iom citing decision WD, naming traveller, as
 * unhcr judges it against the store. */
static tern_reason wf_travel(const char *id, const char *traveller, tern_wf_verdict *v)
{
	Tern__V1__TravelConfirmation b = TERN__V1__TRAVEL_CONFIRMATION__INIT;
	char *travellers[1] = {(char *)traveller};
	static const char *const to[] = {"sweden", "unhcr"};
	tern_wf_msg m = {.msgid = id,
	                 .type = tern_msgtype_by_name("travel-confirmation"),
	                 .sender = "iom",
	                 .to = to,
	                 .nto = 2,
	                 .case_id = "C-7",
	                 .body = &b.base};
	MDB_txn *txn;

	b.case_id = "C-7";
	b.decision_id = WD;
	b.status = TERN__V1__TRAVEL_CONFIRMATION__STATUS__BOOKED;
	b.travellers = travellers;
	b.n_travellers = 1;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(
	    tern_workflow_judge(&m, "unhcr", TERN_ROLE_REFERRER, 0, wf_store_lookup, txn, v),
	    TERN_OK);
	mdb_txn_abort(txn);
	return v->reason;
}

/* Old JSON records read under each shortage: the record as it is, or
 * no-memory; never "damaged" (a listing or a resubmission would leave the
 * message out for good), never another record. jansson seldom says when its
 * memory ran out, so the reading watches its allocations. */
static void test_every_old_record_shortage_not_damaged(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	json_t *want[2] = {json_loads(OLD_SENT, 0, NULL), json_loads(OLD_RECEIVED, 0, NULL)};
	long swept = 0;

	assert_int_equal(tern_store_write(st, put_old, NULL), TERN_OK);
	for (int which = 0; which < 2; which++) {
		long k;
		for (k = 1;; k++) {
			json_t *rec = NULL;
			MDB_txn *txn;
			int rc, failed;
			assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
			malloc_failed = 0;
			malloc_fail_at = k;
			rc = which ? node_store_received(txn, st, ID2, &rec)
			           : node_store_sent_get(txn, st, ID1, &rec);
			malloc_fail_at = 0;
			failed = malloc_failed;
			mdb_txn_abort(txn);
			if (rc == TERN_OK && !json_equal(rec, want[which]))
				fail_msg("record %d, allocation %ld failing: read as another",
				         which, k);
			if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
				fail_msg("record %d, allocation %ld failing: %s", which, k,
				         tern_strerror(rc));
			json_decref(rec);
			if (!failed)
				break;
		}
		swept += k - 1;
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 20);
	json_decref(want[0]);
	json_decref(want[1]);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* An upgraded node reads the refs table's old JSON records as they are, every
 * field and every distinction the rules make (a field there or not), judges
 * by them as before, and writes protobuf, which reads back the same. */
static void test_old_json_workflow_records(void **state)
{
	tern_wf_record *r;
	tern_wf_verdict v;
	uint8_t a[1024], b[1024];
	size_t na;

	(void)state;
	assert_int_equal(tern_store_write(st, put_old_wf, NULL), TERN_OK);
	assert_int_equal(stored_first_byte(NS_REFS, WR), '{');

	r = wf_read(WR);
	assert_string_equal(r->type, "case-referral");
	assert_string_equal(r->case_id, "C-7");
	assert_string_equal(r->sender, "unhcr");
	assert_int_equal(r->n_to, 1);
	assert_string_equal(r->to[0], "sweden");
	assert_true(r->has_value);
	assert_string_equal(r->value, "");
	assert_string_equal(r->ref, "");
	assert_string_equal(r->root, "");
	assert_int_equal(r->state, TERN_CASE_ACCEPTED);
	assert_true(r->has_persons);
	assert_int_equal(r->n_persons, 2);
	assert_string_equal(r->persons[0], "P1");
	assert_string_equal(r->persons[1], "P2");
	assert_int_equal(r->n_last, 2);
	assert_string_equal(r->last[0]->key, "case-referral");
	assert_string_equal(tern_wf_record_last(r, "case-referral"), WR);
	assert_string_equal(tern_wf_record_last(r, "acceptance-decision"), WD);
	assert_false(r->stub);
	assert_int_equal(r->n_parties, 0);
	/* Written back as protobuf, it reads the same. */
	na = wf_bytes(r, a, sizeof(a));
	wf_put_rec = r;
	run((struct op){.fn = do_wf_put, .msgid = WR});
	tern_wf_record_free(&r);
	assert_null(r);
	assert_true(stored_first_byte(NS_REFS, WR) != '{');
	r = wf_read(WR);
	assert_int_equal(wf_bytes(r, b, sizeof(b)), na);
	assert_memory_equal(a, b, na);
	tern_wf_record_free(&r);

	r = wf_read(WD);
	assert_string_equal(r->type, "acceptance-decision");
	assert_string_equal(r->sender, "sweden");
	assert_int_equal(r->n_to, 2);
	assert_string_equal(r->to[1], "iom");
	assert_true(r->has_value);
	assert_string_equal(r->value, "ACCEPTED");
	assert_string_equal(r->ref, WR);
	assert_string_equal(r->root, WR);
	assert_int_equal(r->state, TERN_CASE_NONE);
	assert_false(r->has_persons);
	assert_int_equal(r->n_last, 0);
	tern_wf_record_free(&r);

	r = wf_read(WS);
	assert_true(r->stub);
	assert_string_equal(r->case_id, "C-7");
	assert_string_equal(r->type, "");
	assert_string_equal(r->sender, "");
	assert_false(r->has_value);
	assert_false(r->has_persons);
	assert_int_equal(r->n_parties, 3);
	assert_string_equal(r->parties[0], "sweden");
	assert_string_equal(r->parties[2], "iom");
	assert_int_equal(r->state, TERN_CASE_ACCEPTED);
	assert_string_equal(tern_wf_record_last(r, "acceptance-decision"), WD);
	tern_wf_record_free(&r);

	/* The store's own records: outcome, never value. */
	r = wf_read(WE);
	assert_false(r->has_value);
	assert_string_equal(r->value, "");
	assert_string_equal(r->outcome, "ACCEPTED");
	assert_string_equal(r->ref, WR);
	assert_string_equal(r->sender, "");
	assert_int_equal(r->state, TERN_CASE_NONE);
	tern_wf_record_free(&r);
	r = wf_read(WV);
	assert_string_equal(r->type, "acceptance-decision");
	assert_string_equal(r->outcome, "ACCEPTED");
	assert_false(r->has_value);
	assert_string_equal(r->ref, "");
	tern_wf_record_free(&r);

	/* persons there but empty is not persons missing; the flag survives
	 * protobuf too. */
	r = wf_read(WP);
	assert_true(r->has_persons);
	assert_int_equal(r->n_persons, 0);
	assert_int_equal(r->state, TERN_CASE_REFERRED);
	wf_put_rec = r;
	run((struct op){.fn = do_wf_put, .msgid = WP});
	tern_wf_record_free(&r);
	r = wf_read(WP);
	assert_true(r->has_persons);
	assert_int_equal(r->n_persons, 0);
	assert_true(stored_first_byte(NS_REFS, WP) != '{');
	tern_wf_record_free(&r);

	/* Judged by the old records as before: a member of the referral may
	 * travel on the accepted decision (the referral, now protobuf, moves to
	 * booked); a person outside it may not. */
	assert_int_equal(wf_travel(ID3, "P9", &v), TERN_REASON_UNKNOWN_MEMBER);
	tern_wf_verdict_clear(&v);
	assert_int_equal(wf_travel(ID3, "P1", &v), TERN_REASON_NONE);
	assert_string_equal(v.root, WR);
	assert_non_null(v.root_record);
	assert_int_equal(v.root_record->state, TERN_CASE_BOOKED);
	assert_string_equal(tern_wf_record_last(v.root_record, "travel-confirmation"), ID3);
	assert_string_equal(tern_wf_record_last(v.root_record, "acceptance-decision"), WD);
	assert_int_equal(v.root_record->n_persons, 2);
	assert_string_equal(v.record->root, WR);
	assert_string_equal(v.record->ref, WD);
	tern_wf_verdict_clear(&v);
	assert_null(v.record);

	/* What enqueue and receive write now is protobuf. */
	run((struct op){.fn = do_receive, .msgid = ID1, .accepted = 1});
	assert_true(stored_first_byte(NS_REFS, ID1) != '{');
	r = wf_read(ID1);
	assert_string_equal(r->outcome, "ACCEPTED");
	assert_false(r->has_value);
	tern_wf_record_free(&r);
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	assert_true(stored_first_byte(NS_REFS, ID2) != '{');
	r = wf_read(ID2);
	assert_string_equal(r->type, "case-referral");
	assert_string_equal(r->case_id, "C-1");
	tern_wf_record_free(&r);
}

/* A refs record that is neither form is refused as damaged, not read. */
static int put_damaged_wf(MDB_txn *txn, void *arg)
{
	MDB_val k = {strlen(WR), (void *)WR}, v = {5, "{\"typ"};
	MDB_val k2 = {strlen(WD), (void *)WD}, v2 = {3, "\x0a\x09x"};

	(void)arg;
	return mdb_put(txn, tern_store_dbi(st, NS_REFS), &k, &v, 0) == 0 &&
	               mdb_put(txn, tern_store_dbi(st, NS_REFS), &k2, &v2, 0) == 0
	           ? TERN_OK
	           : TERN_EIO;
}

static void test_damaged_workflow_record(void **state)
{
	MDB_txn *txn;
	tern_wf_record *r = NULL;

	(void)state;
	assert_int_equal(tern_store_write(st, put_damaged_wf, NULL), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_ref(txn, st, WR, &r), TERN_EMALFORMED);
	assert_null(r);
	assert_int_equal(node_store_ref(txn, st, WD, &r), TERN_EMALFORMED);
	assert_null(r);
	assert_int_equal(node_store_ref(txn, st, WS, &r), TERN_ENOENT);
	mdb_txn_abort(txn);
}

static char cut_text[300];

static int do_rstate_cut(MDB_txn *txn, struct op *o)
{
	return node_store_recipient_state(txn, st, o->msgid, "sweden", "rejected", "late", cut_text,
	                                  0, 30);
}

static int do_receive_cut(MDB_txn *txn, struct op *o)
{
	node_in m = {o->msgid,
	             (const uint8_t *)"env",
	             3,
	             "unhcr",
	             "acceptance-decision",
	             "C-1",
	             "ACCEPTED",
	             0,
	             "invalid-body",
	             cut_text,
	             NULL};
	return node_store_receive(txn, st, &m, 5);
}

/* A peer's reason copied into a byte limit can end inside a character: the
 * record keeps it, and reads show its valid start instead of losing the
 * whole record (the API's message, its listing, the webhook's push). */
static void test_cut_text_stays_readable(void **state)
{
	MDB_txn *txn;
	json_t *rec = NULL;
	char want[300];

	(void)state;
	memset(cut_text, 'a', 254);
	memcpy(cut_text + 254, "\xd8", 2); /* the first byte of an Arabic letter */
	memcpy(want, cut_text, 254);
	want[254] = 0;
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_rstate_cut, .msgid = ID1});
	run((struct op){.fn = do_receive_cut, .msgid = ID2});
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, ID1, &rec), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(rec, "reason_text")), want);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(rec, "recipients"), "sweden"), "reason_text")),
	    want);
	json_decref(rec);
	assert_int_equal(node_store_received(txn, st, ID2, &rec), TERN_OK);
	assert_string_equal(json_string_value(json_object_get(rec, "reason_text")), want);
	json_decref(rec);
	mdb_txn_abort(txn);
	{
		json_t *t = node_rec_text("\xff\xfe");
		assert_string_equal(json_string_value(t), "");
		json_decref(t);
	}
}

/* A record that is neither form is refused as damaged, not taken as empty. */
static void test_damaged_record(void **state)
{
	node_sent_rec *r = NULL;
	node_recv_rec *q = NULL;

	(void)state;
	assert_int_equal(node_rec_sent_decode("{not json", 9, &r), TERN_EMALFORMED);
	assert_null(r);
	assert_int_equal(node_rec_recv_decode("\xff\xff\xff", 3, &q), TERN_EMALFORMED);
	assert_null(q);
	assert_int_equal(node_rec_sent_decode("[1]", 3, &r), TERN_EMALFORMED);
}

/* A broker store put back from an older copy holds fewer of this node's
 * acceptances than it told: what it accepted after them goes back into the
 * outbox in its original place, unless every recipient already answered. */
/* Three messages the broker accepted as 1, 2 and 3: ID3 answered by both
 * recipients, ID2 by sweden only, ID1 by none. */
static void accepted_three(void)
{
	run((struct op){.fn = do_reset});
	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	run((struct op){.fn = do_enqueue, .msgid = ID3});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .n = 1, .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 1, .n = 2, .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID3, .accepted = 1, .n = 3, .code = ""});
	/* ID3 was answered by both recipients already: nothing is owed. */
	run((struct op){
	    .fn = do_rstate, .msgid = ID3, .node = "sweden", .state = "delivered", .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID3, .node = "iom", .state = "delivered", .code = ""});
	/* ID2 half answered: the other recipient is still owed. */
	run((struct op){
	    .fn = do_rstate, .msgid = ID2, .node = "sweden", .state = "delivered", .code = ""});
}

static void test_resubmit_after_broker_restore(void **state)
{
	char order[8] = "";
	uint8_t got[16];
	uint64_t max = 0;
	MDB_txn *txn;
	struct op r = {.fn = do_resubmit, .n = 1};

	(void)state;
	accepted_three();
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_accepted_get(txn, st, got, &max), TERN_OK);
	mdb_txn_abort(txn);
	assert_memory_equal(got, broker_store, 16);
	assert_true(max == 3);

	/* An answered message's envelope is no longer kept; one still owed is. */
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	{
		MDB_val k3 = {36, ID3}, k2 = {36, ID2}, v;
		assert_int_equal(mdb_get(txn, tern_store_dbi(st, NS_OUTENV), &k3, &v),
		                 MDB_NOTFOUND);
		assert_int_equal(mdb_get(txn, tern_store_dbi(st, NS_OUTENV), &k2, &v), 0);
	}
	mdb_txn_abort(txn);
	assert_int_equal(tern_store_write(st, apply, &r), TERN_OK);
	assert_int_equal(r.out, 1);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_outbox_scan(txn, st, 0, count_visit, order);
	assert_int_equal(node_store_accepted_get(txn, st, got, &max), TERN_OK);
	mdb_txn_abort(txn);
	assert_string_equal(order, "2");
	assert_true(max == 1);
	assert_string_equal(state_of(ID2, "iom"), "queued");
	assert_string_equal(state_of(ID2, "sweden"), "delivered");
	assert_string_equal(state_of(ID1, "iom"), "at-broker"); /* the store still holds ID1 */
	assert_string_equal(state_of(ID3, NULL), "delivered");

	/* Its answer again, with its new number, takes it out once more. */
	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 1, .n = 2, .code = ""});
	assert_string_equal(state_of(ID2, "iom"), "at-broker");
	/* The same verdict twice is no new event. */
	r = (struct op){
	    .fn = do_rstate, .msgid = ID3, .node = "iom", .state = "delivered", .code = ""};
	assert_int_equal(tern_store_write(st, apply, &r), TERN_EEXIST);
	/* Nor does the broker's word override a recipient's signed receipt. */
	r = (struct op){.fn = do_rstate,
	                .msgid = ID3,
	                .node = "iom",
	                .state = "expired",
	                .code = "expired",
	                .notice = 1};
	assert_int_equal(tern_store_write(st, apply, &r), TERN_EEXIST);
	assert_string_equal(state_of(ID3, "iom"), "delivered");
}

#if MALLOC_CAN_FAIL
/* The outbox as a string of the ids' last digits, in order. */
static const char *outbox_order(void)
{
	static char order[8];
	MDB_txn *txn;

	order[0] = 0;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_outbox_scan(txn, st, 0, count_visit, order), TERN_OK);
	mdb_txn_abort(txn);
	return order;
}

static uint64_t accepted_max(void)
{
	uint8_t got[16];
	uint64_t max = 0;
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_accepted_get(txn, st, got, &max), TERN_OK);
	mdb_txn_abort(txn);
	return max;
}

#endif

/* Each allocation of the resubmission after a broker restore made to fail in
 * turn: the call either fails with nothing changed (the node compares the
 * stores again after its next Hello) or puts ID2 back in the outbox, as with
 * memory. Before, a record not read for want of memory was passed over as
 * absent after its acceptance entry was deleted: ID2, still owed to iom,
 * was never submitted again. */
static void test_resubmit_shortage_not_lost(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	long k;

	for (k = 1;; k++) {
		struct op r = {.fn = do_resubmit, .n = 1};
		int rc, failed;
		tern_store_close(&st);
		assert_int_equal(tt_rmtree(dir), 0);
		assert_int_equal(setup(NULL), 0);
		accepted_three();
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = tern_store_write(st, apply, &r);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK) {
			if (r.out != 1 || strcmp(outbox_order(), "2") != 0)
				fail_msg(
				    "allocation %ld failing: %zu submitted again, outbox \"%s\"", k,
				    r.out, outbox_order());
			assert_string_equal(state_of(ID2, "iom"), "queued");
			assert_true(accepted_max() == 1);
		} else {
			if (!failed)
				fail_msg("allocation %ld: failed (%d) with no shortage", k, rc);
			/* Nothing of it kept: the next comparison finds the same. */
			assert_string_equal(outbox_order(), "");
			assert_string_equal(state_of(ID2, "iom"), "at-broker");
			assert_true(accepted_max() == 3);
		}
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 3);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

#if MALLOC_CAN_FAIL
/* Removes the listing index and its mark, as a store from before it. */
static int drop_listing(MDB_txn *txn, void *arg)
{
	MDB_val k = {9, "list.kept"};

	(void)arg;
	if (mdb_drop(txn, tern_store_dbi(st, NS_LIST), 0) != 0)
		return TERN_EIO;
	return mdb_del(txn, tern_store_dbi(st, NS_META), &k, NULL) == 0 ? TERN_OK : TERN_EIO;
}

#endif

/* Each allocation of opening a store from before the counts and the listing
 * index made to fail in turn: the open either fails, and what it marked done
 * is right (the next open does the rest), or counts and lists every message.
 * Before, a record not read for want of memory was left out as damaged and
 * the mark written: the counts (and the listing) stayed wrong for good. */
static void test_upgrade_shortage_not_kept(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	long k;

	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_enqueue, .msgid = ID2});
	run((struct op){.fn = do_enqueue, .msgid = ID3});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "sweden", .state = "delivered", .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "delivered", .code = ""});
	run((struct op){.fn = do_submitted, .msgid = ID2, .accepted = 0, .code = "wrong-role"});
	for (k = 1;; k++) {
		int rc, failed;
		assert_int_equal(tern_store_write(st, drop_mark, NULL), TERN_OK);
		assert_int_equal(tern_store_write(st, drop_listing, NULL), TERN_OK);
		tern_store_close(&st);
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_store_open(dir, 0, &st);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc != TERN_OK) {
			if (!failed)
				fail_msg("allocation %ld: the open failed (%d) with no shortage", k,
				         rc);
			assert_null(st);
			/* What it marked done is right; the rest is done now. */
			assert_int_equal(node_store_open(dir, 0, &st), TERN_OK);
		}
		if (count_of("delivered") != 1 || count_of("rejected") != 1 ||
		    count_of("queued") != 1)
			fail_msg(
			    "allocation %ld failing: %lld delivered, %lld rejected, %lld queued", k,
			    (long long)count_of("delivered"), (long long)count_of("rejected"),
			    (long long)count_of("queued"));
		assert_string_equal(case_messages("C-1"), "o:" ID1 " o:" ID2 " o:" ID3);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 3);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* --- a send waiting for its final state (api_server.h) ------------------- */

#if MALLOC_CAN_FAIL
static int parked_at = -1;

/* "send" as the node takes it: parked until the commit. */
static json_t *park_send(void *arg, json_t *req, int client)
{
	(void)arg;
	(void)req;
	parked_at = client;
	return NULL;
}

/* Serves s until a request is parked (parked_at set). */
static void serve_until_parked(api_server *s)
{
	for (int turn = 0; turn < 200 && parked_at < 0; turn++) {
		zmq_pollitem_t items[API_SERVER_POLL_MAX];
		size_t n = api_server_pollitems(s, items, API_SERVER_POLL_MAX);
		int rc = zmq_poll(items, (int)n, 10);
		api_server_serve(s, items, n, rc > 0, tern_now_ms());
	}
	assert_true(parked_at >= 0);
}

/* The answer waiting on fd, if any: 1 and *res (NULL when the connection
 * was closed with none), or 0 when nothing came. */
static int answer_of(int fd, json_t **res)
{
	struct pollfd p = {fd, POLLIN, 0};

	*res = NULL;
	if (poll(&p, 1, 0) != 1)
		return 0;
	if (tern_api_read(fd, 1 << 20, res) != TERN_OK)
		*res = NULL;
	return 1;
}

static void assert_final_rejected(const json_t *res, long k)
{
	if (!json_is_true(json_object_get(res, "ok")) ||
	    strcmp(json_string_value(json_object_get(res, "state")) ?: "", "rejected") != 0 ||
	    !json_is_true(json_object_get(res, "final"))) {
		char *t = json_dumps(res, JSON_COMPACT);
		fail_msg("allocation %ld failing: answered %s", k, t ? t : "?");
	}
}

#endif

/* Each allocation of answering a send that waits for its final state made
 * to fail in turn: the client gets the final state, or a temporary error
 * (no-memory, from the API server's own shortage), or (the shortage not
 * yet seen by it) waits on and gets the state at the next round. Before,
 * a record not read for want of memory was answered as "message not found"
 * for a message sent and rejected. */
static void test_final_wait_shortage_not_unknown(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	api_handlers h = {.send = park_send};
	char path[192];
	api_server *s = NULL;
	long k;

	run((struct op){.fn = do_enqueue, .msgid = ID1});
	run((struct op){.fn = do_submitted, .msgid = ID1, .accepted = 1, .code = ""});
	run((struct op){
	    .fn = do_rstate, .msgid = ID1, .node = "iom", .state = "rejected", .code = "late"});
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	assert_int_equal(api_server_open(path, &h, st, &s), TERN_OK);
	for (k = 1;; k++) {
		json_t *req = json_pack("{s:i, s:s}", "v", 1, "op", "send"), *res = NULL;
		int64_t now = tern_now_ms();
		int fd, failed;
		assert_int_equal(tern_api_connect(path, &fd), TERN_OK);
		assert_int_equal(tern_api_write(fd, req), TERN_OK);
		json_decref(req);
		parked_at = -1;
		serve_until_parked(s);
		/* Committed, it waits for ID1's final state. */
		api_server_await_final(s, parked_at, ID1, now + 60000);
		api_server_state_changed(s, ID1);
		malloc_failed = 0;
		malloc_fail_at = k;
		api_server_serve_waiters(s, now);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (answer_of(fd, &res)) {
			const char *e = json_string_value(json_object_get(res, "error"));
			if (res == NULL && !failed)
				fail_msg("allocation %ld: closed with no shortage", k);
			if (res != NULL && !(e && failed && strcmp(e, "no-memory") == 0))
				assert_final_rejected(res, k);
		} else {
			if (!failed)
				fail_msg("allocation %ld: no answer with no shortage", k);
			/* Waits on; the next round reads it again. */
			api_server_serve_waiters(s, now + 50);
			assert_int_equal(answer_of(fd, &res), 1);
			assert_final_rejected(res, k);
		}
		json_decref(res);
		close(fd);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 3);
	api_server_close(&s);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A client_ref keeps what its send said, so a reuse with other content is
 * told from a retry; a record from before fingerprints (the id alone) still
 * reads, as one without. */
static int put_ref(MDB_txn *txn, void *arg)
{
	const uint8_t *fp = arg;
	node_out m = {
	    ID1, (const uint8_t *)"env", 3, "case-referral", "C-1", 1, two, 2, "", "", "ref-1", fp};
	return node_store_enqueue(txn, st, &m, 10);
}

static int put_legacy_ref(MDB_txn *txn, void *arg)
{
	MDB_val k = {5, (void *)"ref-2"}, v = {36, (void *)ID2};
	MDB_dbi dbi;
	(void)arg;
	if (mdb_dbi_open(txn, "clientrefs", 0, &dbi) != 0)
		return TERN_EIO;
	return mdb_put(txn, dbi, &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static void test_client_ref_fingerprint(void **state)
{
	uint8_t fp[32], got[32];
	char id[37];
	int has = -1;
	MDB_txn *txn;

	(void)state;
	for (int i = 0; i < 32; i++)
		fp[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(tern_store_write(st, put_ref, fp), TERN_OK);
	assert_int_equal(tern_store_write(st, put_legacy_ref, NULL), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_client_ref(txn, st, "ref-1", id, got, &has), TERN_OK);
	assert_string_equal(id, ID1);
	assert_int_equal(has, 1);
	assert_memory_equal(got, fp, 32);
	assert_int_equal(node_store_client_ref(txn, st, "ref-2", id, got, &has), TERN_OK);
	assert_string_equal(id, ID2);
	assert_int_equal(has, 0);
	assert_int_equal(node_store_client_ref(txn, st, "ref-3", id, got, &has), TERN_ENOENT);
	mdb_txn_abort(txn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resync_point_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reason_follows_recipients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_counts_shortage_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_case_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receipt_before_broker_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receipts_clear_outbox_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_subtrees_from_before, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_and_refs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resubmit_after_broker_restore, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resubmit_shortage_not_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_shortage_not_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_final_wait_shortage_not_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_ref_fingerprint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_json_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_old_record_shortage_not_damaged, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_old_json_workflow_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_workflow_record, setup, teardown),
	    cmocka_unit_test(test_damaged_record),
	    cmocka_unit_test_setup_teardown(test_cut_text_stays_readable, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

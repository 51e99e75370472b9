/* The owner's and the witness's sides of witnessing (nodes/witnessing.c),
 * two nodes in one process: what each sends goes through a relay that, like
 * the broker, replaces peer with the sender's id, and can lose frames. The
 * nodes are struct node with what these paths read: keys, the directory, a
 * store. A restore is the owner's store file put back from a copy, and the
 * node started again (its witnesses' sizes forgotten). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/directory.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/msgtype.h>

#include "node_int.h"
#include "pbuf.h"
#include "testutil.h"
#include "util.h"
#include "witness.h"

enum { OWNER, WITNESS, NN };

static const char *const names[NN] = {"unhcr", "sweden"};

static struct {
	tern_signkey *sign[NN];
	tern_directory *dir;
	char dirs[NN][128], backup[128];
	tern_store *st[NN];
	node *n[NN];
} F;

/* --- the relay -------------------------------------------------------------- */

struct frame {
	int from;
	uint8_t *buf;
	size_t len;
};
static struct frame q[256];
static size_t nq;

int __real_node_hop_send(node *n, Tern__V1__Frame *f);
int __wrap_node_hop_send(node *n, Tern__V1__Frame *f);

int __wrap_node_hop_send(node *n, Tern__V1__Frame *f)
{
	assert_true(nq < sizeof(q) / sizeof(q[0]));
	q[nq].from = n == F.n[OWNER] ? OWNER : WITNESS;
	assert_int_equal(tern_pb_pack(&f->base, &q[nq].buf, &q[nq].len), TERN_OK);
	nq++;
	return TERN_OK;
}

static Tern__V1__Frame *frame_at(size_t i)
{
	ProtobufCMessage *m = NULL;

	assert_true(i < nq);
	assert_int_equal(
	    tern_pb_unpack(&tern__v1__frame__descriptor, q[i].buf, q[i].len, q[i].len, &m),
	    TERN_OK);
	return (Tern__V1__Frame *)m;
}

/* Takes the first frame off the queue: delivered, or lost. */
static void take(int deliver)
{
	Tern__V1__Frame *f = frame_at(0);
	int from = q[0].from;
	char **peer;

	free(q[0].buf);
	memmove(q, q + 1, (--nq) * sizeof(q[0]));
	if (deliver) {
		char *was;
		peer = f->body_case == TERN__V1__FRAME__BODY_WITNESS_REQUEST
		           ? &f->witness_request->peer
		           : &f->witness_response->peer;
		assert_string_equal(*peer, names[1 - from]);
		was = *peer;
		*peer = (char *)names[from]; /* the authenticated sender, as the broker does */
		if (f->body_case == TERN__V1__FRAME__BODY_WITNESS_REQUEST)
			node_on_witness_request(F.n[1 - from], f->witness_request);
		else
			node_on_witness_response(F.n[1 - from], f->witness_response);
		*peer = was;
	}
	tern_pb_free((ProtobufCMessage **)&f);
}

/* Delivers until nothing is left (at most max frames). */
static void relay(int max)
{
	while (nq > 0 && max-- > 0)
		take(1);
	assert_int_equal(nq, 0);
}

/* --- the nodes --------------------------------------------------------------- */

static void node_up(int who)
{
	node *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	n->id.dir = F.dir;
	n->id.id = names[who];
	n->id.sign = F.sign[who];
	assert_int_equal(tern_directory_find(F.dir, names[who], &n->id.self), TERN_OK);
	assert_int_equal(node_store_open(F.dirs[who], 0, &F.st[who]), TERN_OK);
	n->store = F.st[who];
	node_store_audit_dbs(n->store, &n->audit);
	assert_int_equal(tern_audit_origin("test", names[who], n->origin, sizeof(n->origin)),
	                 TERN_OK);
	n->batch.now = tern_now_ms();
	F.n[who] = n;
}

static void node_down(int who)
{
	free(F.n[who]);
	F.n[who] = NULL;
	tern_store_close(&F.st[who]);
}

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	char buf[65536];
	size_t k;

	assert_non_null(a);
	assert_non_null(b);
	while ((k = fread(buf, 1, sizeof(buf), a)) > 0)
		assert_int_equal(fwrite(buf, 1, k, b), k);
	fclose(a);
	assert_int_equal(fclose(b), 0);
}

/* A copy of who's store, taken while it is stopped; put back by restore(). */
static void backup(int who)
{
	char a[256], b[256];

	node_down(who);
	snprintf(a, sizeof(a), "%s/data.mdb", F.dirs[who]);
	snprintf(b, sizeof(b), "%s/data.mdb", F.backup);
	copy_file(a, b);
	node_up(who);
}

static void restore(int who)
{
	char a[256], b[256];

	node_down(who);
	snprintf(a, sizeof(a), "%s/data.mdb", F.backup);
	snprintf(b, sizeof(b), "%s/data.mdb", F.dirs[who]);
	copy_file(a, b);
	snprintf(b, sizeof(b), "%s/lock.mdb", F.dirs[who]);
	remove(b);
	node_up(who);
}

struct grow {
	node *n;
	int k;
	const char *tag;
};

static int grow_apply(MDB_txn *txn, void *arg)
{
	struct grow *g = arg;
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	char id[64];
	uint64_t size;
	int rc = TERN_OK;

	for (int i = 0; i < g->k && rc == TERN_OK; i++) {
		snprintf(id, sizeof(id), "%s-%d", g->tag, i);
		e.kind = TERN__V1__AUDIT_ENTRY__KIND__SENT;
		e.message_id = id;
		e.peer = "sweden";
		rc = tern_audit_append(txn, &g->n->audit, &e);
	}
	return rc != TERN_OK ? rc
	                     : tern_audit_checkpoint(txn, &g->n->audit, g->n->origin, g->n->id.sign,
	                                             0, &size);
}

/* k more entries in the owner's log (tag tells histories apart), and a
 * checkpoint over them. */
static void grow(int k, const char *tag)
{
	struct grow g = {F.n[OWNER], k, tag};

	assert_int_equal(tern_store_write(F.st[OWNER], grow_apply, &g), TERN_OK);
}

/* What the witness remembers of the owner's log: the size it cosigned. */
static uint64_t witnessed(void)
{
	MDB_txn *txn;
	char key[] = "w/unhcr";
	MDB_val k = {strlen(key), key}, v;
	uint64_t size = 0;

	assert_int_equal(tern_store_read_begin(F.st[WITNESS], &txn), TERN_OK);
	if (mdb_get(txn, F.n[WITNESS]->audit.meta, &k, &v) == 0)
		size = tern_be64_get(v.mv_data);
	mdb_txn_abort(txn);
	return size;
}

/* The kind of the witness's last log entry. */
static int witness_last_kind(void)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	Tern__V1__AuditEntry *e;
	int kind;

	assert_int_equal(tern_store_read_begin(F.st[WITNESS], &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, F.n[WITNESS]->audit.entries, &c), 0);
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
	e = tern__v1__audit_entry__unpack(NULL, v.mv_size, v.mv_data);
	assert_non_null(e);
	kind = e->kind;
	tern__v1__audit_entry__free_unpacked(e, NULL);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return kind;
}

static uint64_t owner_size(void)
{
	MDB_txn *txn;
	char *note = NULL;
	uint64_t size = 0;

	assert_int_equal(tern_store_read_begin(F.st[OWNER], &txn), TERN_OK);
	assert_int_equal(tern_audit_latest_checkpoint(txn, &F.n[OWNER]->audit, &note, &size),
	                 TERN_OK);
	free(note);
	mdb_txn_abort(txn);
	return size;
}

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	nq = 0;
	if (tern_directory_new("test", 1, &F.dir) != TERN_OK ||
	    tt_mkdtemp(F.backup, sizeof(F.backup), "witnessing-backup") != 0)
		return -1;
	for (int i = 0; i < NN; i++) {
		tern_member m;
		if (tern_signkey_generate(&F.sign[i]) != TERN_OK ||
		    tt_mkdtemp(F.dirs[i], sizeof(F.dirs[i]), names[i]) != 0)
			return -1;
		memset(&m, 0, sizeof(m));
		snprintf(m.node_id, sizeof(m.node_id), "%s", names[i]);
		m.agency = (char *)names[i];
		m.roles = i == OWNER ? TERN_ROLE_REFERRER : TERN_ROLE_STATE;
		memcpy(m.sign_public, tern_signkey_public(F.sign[i]), 32);
		if (tern_directory_add(F.dir, &m) != TERN_OK)
			return -1;
	}
	node_up(OWNER);
	node_up(WITNESS);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	while (nq > 0)
		take(0);
	for (int i = 0; i < NN; i++) {
		node_down(i);
		tern_signkey_free(&F.sign[i]);
		tt_rmtree(F.dirs[i]);
	}
	tt_rmtree(F.backup);
	tern_directory_free(&F.dir);
	return 0;
}

/* The owner's log cosigned at 4, backed up, cosigned at 8; then put back
 * (4 entries) and grown by one of another history. */
static void cosigned_then_restored(void)
{
	grow(4, "a");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 4);
	backup(OWNER);
	grow(4, "b");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	restore(OWNER);
	grow(1, "c");
	assert_int_equal(owner_size(), 5);
}

/* A restarted owner (its witnesses' sizes forgotten) is told where the
 * witness stands and proves from there: cosigned, nothing refused. */
static void test_restarted_owner_resyncs(void **state)
{
	(void)state;
	grow(4, "a");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	node_down(OWNER);
	node_up(OWNER);
	grow(3, "a2");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 7);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
}

/* A witness put back from a copy remembers less of the owner's log than the
 * owner thinks: told so (conflict), the owner proves from there. */
static void test_restored_witness_resyncs(void **state)
{
	(void)state;
	grow(4, "a");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	backup(WITNESS);
	grow(4, "b");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	restore(WITNESS);
	assert_int_equal(witnessed(), 4);
	grow(2, "c");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 10);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
}

/* A restored owner is refused (rollback, kept as evidence) until its
 * operator asks to re-anchor; then the witness takes its newest checkpoint
 * and witnessing goes on from there. */
static void test_restored_owner_reanchored(void **state)
{
	json_t *r;

	(void)state;
	cosigned_then_restored();
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REJECTED);
	r = node_reanchor(F.n[OWNER]);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	grow(0, "d"); /* the checkpoint over the request, as the next turn signs */
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 6);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REANCHORED);
	grow(2, "e");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
}

/* The operator's request holds for NODE_REANCHOR_MS (docs/audit.md: "a
 * witness that was away for those 10 minutes is asked again after another
 * tern audit reanchor"). A witness whose re-anchor request was lost (away,
 * or the broker dropped it) was still asked to re-anchor at every round
 * after the window, whenever it came back, with no operator asking: the
 * flag outlived the window. */
static void test_reanchor_ends_with_its_window(void **state)
{
	Tern__V1__Frame *f;
	json_t *r;

	(void)state;
	cosigned_then_restored();
	r = node_reanchor(F.n[OWNER]);
	json_decref(r);
	grow(0, "d");
	node_witness_round(F.n[OWNER], NULL);
	take(1); /* from 0 (a restarted owner): the witness says where it stands */
	take(1); /* the owner asks again from there, to re-anchor */
	assert_int_equal(nq, 1);
	f = frame_at(0);
	assert_true(f->witness_request->reanchor[0]); /* the owner's signed request */
	tern_pb_free((ProtobufCMessage **)&f);
	take(0); /* lost: the witness went away */
	F.n[OWNER]->reanchor_until = tern_now_ms() - 1;
	node_witness_round(F.n[OWNER], NULL);
	assert_int_equal(nq, 1);
	f = frame_at(0);
	assert_false(f->witness_request->reanchor[0]);
	tern_pb_free((ProtobufCMessage **)&f);
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REJECTED);
}

/* The broker relays every request: were the re-anchor a flag, it could set
 * it on one it saw before, and the witness would re-anchor the owner's log
 * at that older checkpoint (a REANCHORED entry and its state moved back)
 * with no operator asking; an owner put back once could so be moved back
 * onto the history it gave up, and refused again (a review's finding). The
 * request is the owner's signed note, for that checkpoint and from the
 * witness's size: one the broker writes is refused. */
static void test_relay_cannot_reanchor(void **state)
{
	Tern__V1__Frame *f;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	grow(4, "a");
	node_witness_round(F.n[OWNER], NULL);
	assert_int_equal(nq, 1);
	f = frame_at(0); /* what the broker keeps of the owner's request */
	relay(8);
	grow(4, "b");
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	f->witness_request->old_size = 8; /* from the witness's answers */
	{
		/* The relay's own request: its text, no owner's signature. */
		char *kept = f->witness_request->reanchor;
		f->witness_request->reanchor = "tern-reanchor/v1\nfrom 8\nat 0\n";
		assert_int_equal(tern_pb_pack(&f->base, &buf, &len), TERN_OK);
		f->witness_request->reanchor = kept; /* the decoder's, to free */
	}
	tern_pb_free((ProtobufCMessage **)&f);
	q[nq++] = (struct frame){OWNER, buf, len};
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_not_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REANCHORED);
}

/* A genuine re-anchor request holds for 15 minutes, bound to the witness's
 * size and the checkpoint: once the re-anchored log has grown back to the
 * size the witness had cosigned before (a busy node, or a backup a few
 * entries old), the broker, which kept the request and its checkpoint,
 * could send them again, and the witness re-anchored a second time: its
 * state moved back onto the older checkpoint, and a REANCHORED entry
 * blamed a restore no one made. A request is taken once. */
static void test_reanchor_request_not_replayed(void **state)
{
	uint8_t *kept = NULL;
	size_t kept_len = 0;
	json_t *r;

	(void)state;
	cosigned_then_restored();
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	r = node_reanchor(F.n[OWNER]);
	json_decref(r);
	grow(0, "d");
	node_witness_round(F.n[OWNER], NULL);
	for (int i = 0; nq > 0 && i < 8; i++) {
		Tern__V1__Frame *f = frame_at(0);
		if (f->body_case == TERN__V1__FRAME__BODY_WITNESS_REQUEST &&
		    f->witness_request->reanchor[0] && kept == NULL) {
			kept = malloc(q[0].len);
			assert_non_null(kept);
			memcpy(kept, q[0].buf, q[0].len);
			kept_len = q[0].len;
		}
		tern_pb_free((ProtobufCMessage **)&f);
		take(1);
	}
	assert_non_null(kept);
	assert_int_equal(witnessed(), 6);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REANCHORED);
	grow(2, "e"); /* back at 8 entries, of the new history */
	node_witness_round(F.n[OWNER], NULL);
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
	q[nq++] = (struct frame){OWNER, kept, kept_len}; /* the broker sends it again */
	relay(8);
	assert_int_equal(witnessed(), 8);
	assert_int_not_equal(witness_last_kind(), TERN__V1__AUDIT_ENTRY__KIND__REANCHORED);
}

/* jansson's allocations failing in turn, counted from json_fail_at. */
static long json_fail_at;
static int json_failed;

static void *failing_json_malloc(size_t size)
{
	if (json_fail_at > 0 && --json_fail_at == 0) {
		json_failed = 1;
		return NULL;
	}
	return malloc(size);
}

/* node.info's "audit" with each of jansson's allocations failing in turn:
 * NULL (no memory) or the whole answer, never a value freed twice. A
 * witness's object that the array could not take (its table grown past 8)
 * was freed by json_array_append_new and again by node_witness_status. */
static void test_witness_status_short_of_memory(void **state)
{
	node *n = calloc(1, sizeof(*n));

	(void)state;
	assert_non_null(n);
	n->nwitnesses = 12; /* past the array's first table */
	for (size_t i = 0; i < n->nwitnesses; i++) {
		snprintf(n->witnesses[i].id, sizeof(n->witnesses[i].id), "w%zu", i);
		n->witnesses[i].cosigned = i;
		n->witnesses[i].cosigned_at = i ? 1700000000000 : 0;
		if (i % 3 == 0)
			snprintf(n->witnesses[i].refused, sizeof(n->witnesses[i].refused),
			         "rollback");
	}
	n->reanchor_until = tern_now_ms() + 60000;
	json_set_alloc_funcs(failing_json_malloc, free);
	for (long k = 1;; k++) {
		json_t *o;
		json_fail_at = k;
		json_failed = 0;
		o = node_witness_status(n);
		if (!json_failed) {
			assert_non_null(o);
			assert_int_equal(json_array_size(json_object_get(o, "witnesses")), 12);
			json_decref(o);
			break;
		}
		json_decref(o);
	}
	json_fail_at = 0;
	json_set_alloc_funcs(malloc, free);
	free(n);
}

/* A witness's refusal is its word: a reason code that is not UTF-8 (or cut
 * in the middle of a character where it was kept) made node.info's "audit"
 * NULL, and node.info, tern info and GET /v1/node answered "no memory"
 * until that member cosigned again. */
static void test_witness_status_odd_refusal(void **state)
{
	Tern__V1__WitnessResponse a = TERN__V1__WITNESS_RESPONSE__INIT;
	json_t *o;

	(void)state;
	grow(4, "a");
	node_witness_round(F.n[OWNER], NULL);
	while (nq > 0)
		take(0);
	a.peer = (char *)names[WITNESS];
	a.size = 4;
	a.cosignature = "";
	a.reason_code = "rollback\xff\x1b[2J";
	node_on_witness_response(F.n[OWNER], &a);
	o = node_witness_status(F.n[OWNER]);
	assert_non_null(o);
	assert_non_null(
	    json_object_get(json_array_get(json_object_get(o, "witnesses"), 0), "refused"));
	json_decref(o);
	a.reason_code = "abcdefghijklmnopqrstuvwxyz01234\xc3\xa9"; /* cut at 31 bytes */
	node_on_witness_response(F.n[OWNER], &a);
	o = node_witness_status(F.n[OWNER]);
	assert_non_null(o);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_restarted_owner_resyncs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restored_witness_resyncs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restored_owner_reanchored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reanchor_ends_with_its_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_relay_cannot_reanchor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reanchor_request_not_replayed, setup, teardown),
	    cmocka_unit_test(test_witness_status_short_of_memory),
	    cmocka_unit_test_setup_teardown(test_witness_status_odd_refusal, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The node's message listing (nodes/msglist.c): filters, cursor paging in
 * the order messages were written, a message written between two pages,
 * the scan bound, the argument checks, and the index built for a store from
 * before it. */
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
#include "node_store.h"
#include "testutil.h"

static char dir[128];
static tern_store *st;

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "msglist") != 0)
		return -1;
	return node_store_open(dir, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

/* Message i's id: distinct, and not in the order they are written (the
 * listing must follow the writes, not the ids). */
static void id_of(int i, char out[37])
{
	snprintf(out, 37, "01a20598-0000-7000-8000-%012d", (i * 7919) % 1000);
}

struct msg {
	int i;
	char kind; /* 'o' sent, 'i' received */
	const char *case_id, *type, *peer;
	int64_t at;
	int accepted;
};

static int put_msg(MDB_txn *txn, void *arg)
{
	const struct msg *m = arg;
	char id[37];

	id_of(m->i, id);
	if (m->kind == 'o') {
		const char *to[] = {m->peer};
		node_out o = {
		    id,  (const uint8_t *)"env", 3, m->type, m->case_id, m->at, to, 1, "", "", NULL,
		    NULL};
		return node_store_enqueue(txn, st, &o, m->at);
	}
	node_in in = {id,
	              (const uint8_t *)"env",
	              3,
	              m->peer,
	              m->type,
	              m->case_id,
	              "",
	              m->accepted,
	              m->accepted ? "" : "invalid-body",
	              "",
	              NULL};
	return node_store_receive(txn, st, &in, m->at);
}

static void add(struct msg m)
{
	assert_int_equal(tern_store_write(st, put_msg, &m), TERN_OK);
}

/* One page as "i,i,..." of the message numbers (by id), and its cursor. */
static int page(const char *args, char *got, size_t cap, char cursor[32], int *limited)
{
	json_t *req = json_loads(args, 0, NULL), *res = NULL, *v;
	node_list_query q;
	char why[512];
	MDB_txn *txn;
	size_t i;
	int rc;

	assert_non_null(req);
	if (cursor && cursor[0])
		json_object_set_new(req, "cursor", json_string(cursor));
	assert_null(node_list_query_parse(req, &q, why, sizeof(why)));
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	rc = node_store_messages_list(txn, st, &q, &res);
	mdb_txn_abort(txn);
	json_decref(req);
	if (rc != TERN_OK)
		return rc;
	got[0] = 0;
	json_array_foreach(json_object_get(res, "messages"), i, v)
	{
		const char *id = json_string_value(json_object_get(v, "message_id"));
		int n = -1;
		for (int k = 0; k < 100 && n < 0; k++) {
			char c[37];
			id_of(k, c);
			if (strcmp(c, id) == 0)
				n = k;
		}
		snprintf(got + strlen(got), cap - strlen(got), "%s%d", i ? "," : "", n);
	}
	if (cursor) {
		const char *c = json_string_value(json_object_get(res, "next_cursor"));
		snprintf(cursor, 32, "%s", c ? c : "");
	}
	if (limited)
		*limited = json_is_true(json_object_get(res, "scan_limited"));
	json_decref(res);
	return TERN_OK;
}

static const char *list(const char *args)
{
	static char got[1024];
	assert_int_equal(page(args, got, sizeof(got), NULL, NULL), TERN_OK);
	return got;
}

/* Ten messages: sent 0-4 (cases A and B, to sweden or iom), received 5-9
 * (from sweden or portugal, one refused), at times 1000 + 100 i. */
static void ten(void)
{
	for (int i = 0; i < 5; i++)
		add((struct msg){i, 'o', i % 2 ? "B" : "A",
		                 i == 4 ? "case-update" : "case-referral", i < 3 ? "sweden" : "iom",
		                 1000 + 100 * i, 1});
	for (int i = 5; i < 10; i++)
		add((struct msg){i, 'i', i % 2 ? "B" : "A", "acceptance-decision",
		                 i < 8 ? "sweden" : "portugal", 1000 + 100 * i, i != 7});
}

/* A page under each shortage: the whole page, or no-memory. Never a page
 * with a message left out: a client paging on with its cursor would never
 * see that message. */
static void test_every_page_shortage_whole(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	json_t *req = json_object(), *res;
	node_list_query q;
	char why[512];
	long k;

	ten();
	assert_null(node_list_query_parse(req, &q, why, sizeof(why)));
	for (k = 1;; k++) {
		MDB_txn *txn;
		int rc, failed;
		res = NULL;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_store_messages_list(txn, st, &q, &res);
		malloc_fail_at = 0;
		failed = malloc_failed;
		mdb_txn_abort(txn);
		if (rc == TERN_OK && json_array_size(json_object_get(res, "messages")) != 10)
			fail_msg("allocation %ld failing: a page of %zu messages, of 10", k,
			         json_array_size(json_object_get(res, "messages")));
		if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		json_decref(res);
		if (!failed)
			break;
	}
	json_decref(req);
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 50);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static void test_filters(void **state)
{
	(void)state;
	ten();
	assert_string_equal(list("{}"), "0,1,2,3,4,5,6,7,8,9");
	assert_string_equal(list("{\"direction\":\"sent\"}"), "0,1,2,3,4");
	assert_string_equal(list("{\"direction\":\"received\"}"), "5,6,7,8,9");
	assert_string_equal(list("{\"case_id\":\"A\"}"), "0,2,4,6,8");
	assert_string_equal(list("{\"case_id\":\"B\",\"direction\":\"received\"}"), "5,7,9");
	assert_string_equal(list("{\"type\":\"case-update\"}"), "4");
	assert_string_equal(list("{\"state\":\"refused\"}"), "7");
	assert_string_equal(list("{\"state\":\"queued\"}"), "0,1,2,3,4");
	assert_string_equal(list("{\"peer\":\"sweden\"}"), "0,1,2,5,6,7");
	assert_string_equal(list("{\"peer\":\"iom\",\"direction\":\"received\"}"), "");
	assert_string_equal(list("{\"since\":1300,\"until\":1700}"), "3,4,5,6");
	assert_string_equal(list("{\"case_id\":\"none\"}"), "");
}

/* Pages of 3 through everything; a message written between two pages
 * comes once, on a later page; the last page's cursor is null. */
static void test_paging(void **state)
{
	char got[256], all[1024] = "", cur[32] = "";
	int pages = 0;

	(void)state;
	ten();
	do {
		assert_int_equal(page("{\"limit\":3}", got, sizeof(got), cur, NULL), TERN_OK);
		if (pages == 1) /* a write between the second and third page */
			add((struct msg){10, 'i', "A", "case-update", "sweden", 900, 1});
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s",
		         all[0] && got[0] ? "," : "", got);
		pages++;
	} while (cur[0] && pages < 20);
	assert_string_equal(all, "0,1,2,3,4,5,6,7,8,9,10");
	assert_int_equal(pages, 4);
	/* with a filter, the cursor goes on through the filtered index */
	cur[0] = 0;
	assert_int_equal(page("{\"limit\":2,\"case_id\":\"A\"}", got, sizeof(got), cur, NULL),
	                 TERN_OK);
	assert_string_equal(got, "0,2");
	assert_int_equal(page("{\"limit\":2,\"case_id\":\"A\"}", got, sizeof(got), cur, NULL),
	                 TERN_OK);
	assert_string_equal(got, "4,6");
	assert_int_equal(page("{\"limit\":2,\"case_id\":\"A\"}", got, sizeof(got), cur, NULL),
	                 TERN_OK);
	assert_string_equal(got, "8,10");
	assert_string_equal(cur, "");
}

/* A page reads at most scan_max entries, and says so. */
static void test_scan_bound(void **state)
{
	json_t *req = json_loads("{\"type\":\"case-update\"}", 0, NULL), *res = NULL;
	node_list_query q;
	char why[256];
	MDB_txn *txn;

	(void)state;
	ten();
	assert_null(node_list_query_parse(req, &q, why, sizeof(why)));
	q.scan_max = 3;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_messages_list(txn, st, &q, &res), TERN_OK);
	assert_int_equal(json_array_size(json_object_get(res, "messages")), 0);
	assert_true(json_is_true(json_object_get(res, "scan_limited")));
	assert_string_equal(json_string_value(json_object_get(res, "next_cursor")),
	                    "v1.0000000000000003");
	json_decref(res);
	q.after = 3;
	assert_int_equal(node_store_messages_list(txn, st, &q, &res), TERN_OK);
	assert_int_equal(json_array_size(json_object_get(res, "messages")), 1);
	json_decref(res);
	mdb_txn_abort(txn);
	json_decref(req);
}

/* Every argument is checked, and a refusal names it. */
static void test_arguments(void **state)
{
	static const struct {
		const char *args, *field;
	} bad[] = {
	    {"{\"direction\":\"out\"}", "direction"},
	    {"{\"case_id\":\"\"}", "case_id"},
	    {"{\"case_id\":7}", "case_id"},
	    {"{\"type\":\"receipt\"}", "type"},
	    {"{\"type\":\"referral\"}", "type"},
	    {"{\"state\":\"accepted\",\"direction\":\"sent\"}", "state"},
	    {"{\"state\":\"delivered\",\"direction\":\"received\"}", "state"},
	    {"{\"peer\":\"\"}", "peer"},
	    {"{\"since\":\"yesterday\"}", "since"},
	    {"{\"since\":-1}", "since"},
	    {"{\"since\":5,\"until\":5}", "until"},
	    {"{\"limit\":0}", "limit"},
	    {"{\"limit\":1001}", "limit"},
	    {"{\"cursor\":\"v1.00000000000000zz\"}", "cursor"},
	    {"{\"cursor\":\"12\"}", "cursor"},
	    {"{\"caseId\":\"A\"}", "caseId"},
	};
	node_list_query q;
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *req = json_loads(bad[i].args, 0, NULL);
		const char *f = node_list_query_parse(req, &q, why, sizeof(why));
		assert_non_null(f);
		assert_string_equal(f, bad[i].field);
		assert_non_null(strstr(why, bad[i].field));
		json_decref(req);
	}
	{
		json_t *req = json_loads("{\"v\":1,\"op\":\"messages.list\",\"state\":\"accepted\","
		                         "\"limit\":1000,\"cursor\":\"v1.000000000000002a\"}",
		                         0, NULL);
		assert_null(node_list_query_parse(req, &q, why, sizeof(why)));
		assert_int_equal(q.after, 42);
		assert_int_equal(q.limit, 1000);
		json_decref(req);
	}
}

/* A received record written again (the store takes it; the delivery path
 * de-duplicates before) keeps its one place in the listing. */
static void test_received_again(void **state)
{
	(void)state;
	add((struct msg){0, 'i', "A", "case-update", "sweden", 1000, 1});
	add((struct msg){1, 'o', "A", "case-referral", "sweden", 1100, 1});
	add((struct msg){0, 'i', "A", "case-update", "sweden", 1200, 0});
	assert_string_equal(list("{}"), "0,1");
	assert_string_equal(list("{\"state\":\"refused\"}"), "0");
}

static int drop_list(MDB_txn *txn, void *arg)
{
	MDB_val k = {9, "list.kept"};
	int rc;

	(void)arg;
	if ((rc = mdb_drop(txn, tern_store_dbi(st, NS_LIST), 0)) != 0)
		return tern_store_mdb_err(rc, "drop");
	mdb_del(txn, tern_store_dbi(st, NS_META), &k, NULL);
	k = (MDB_val){7, "listseq"};
	mdb_del(txn, tern_store_dbi(st, NS_META), &k, NULL);
	return TERN_OK;
}

/* A store from before the index gets it, in time order, on its first
 * writable open. */
static void test_backfill(void **state)
{
	(void)state;
	add((struct msg){0, 'o', "A", "case-referral", "sweden", 3000, 1});
	add((struct msg){1, 'i', "A", "acceptance-decision", "sweden", 1000, 1});
	add((struct msg){2, 'o', "B", "case-referral", "iom", 2000, 1});
	assert_int_equal(tern_store_write(st, drop_list, NULL), TERN_OK);
	assert_string_equal(list("{}"), "");
	tern_store_close(&st);
	assert_int_equal(node_store_open(dir, 0, &st), TERN_OK);
	assert_string_equal(list("{}"), "1,2,0");
	assert_string_equal(list("{\"case_id\":\"A\"}"), "1,0");
	add((struct msg){3, 'o', "A", "case-referral", "sweden", 500, 1});
	assert_string_equal(list("{\"direction\":\"sent\"}"), "2,0,3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_page_shortage_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_received_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backfill, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

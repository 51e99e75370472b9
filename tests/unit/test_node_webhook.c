/* The webhook pusher (nodes/webhook.c) against a receiver on loopback: it
 * posts the stored pushes in order, one damaged at rest does not hold the
 * ones after it, and a push an earlier release stored as JSON is posted as
 * it would have been. */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include <tern/error.h>

#include "node_store.h"
#include "testutil.h"
#include "webhook.h"

static char dir[128];
static tern_store *st;

/* What the receiver was posted: the webhook-ids, in order. */
static pthread_mutex_t got_mu = PTHREAD_MUTEX_INITIALIZER;
static char got[8][96];
static char gotbody[8][512];
static int ngot;
static char bodybuf[512];
static size_t bodylen;

static enum MHD_Result on_post(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	const char *id;

	(void)cls, (void)url, (void)method, (void)version;
	if (*con_cls == NULL) {
		*con_cls = c; /* the headers: the body comes next */
		return MHD_YES;
	}
	if (*size > 0) {
		/* The body, taken (one connection at a time: MHD's one thread). */
		size_t take =
		    *size < sizeof(bodybuf) - 1 - bodylen ? *size : sizeof(bodybuf) - 1 - bodylen;
		memcpy(bodybuf + bodylen, data, take);
		bodylen += take;
		*size = 0;
		return MHD_YES;
	}
	id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
	pthread_mutex_lock(&got_mu);
	if (ngot < 8) {
		bodybuf[bodylen] = '\0';
		snprintf(gotbody[ngot], sizeof(gotbody[0]), "%s", bodybuf);
		snprintf(got[ngot++], sizeof(got[0]), "%s", id ? id : "");
	}
	bodylen = 0;
	pthread_mutex_unlock(&got_mu);
	r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
	MHD_destroy_response(r);
	return ret;
}

static int setup(void **state)
{
	(void)state;
	ngot = 0;
	bodylen = 0;
	if (tt_mkdtemp(dir, sizeof(dir), "nodewebhook") != 0)
		return -1;
	return node_store_open(dir, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

/* The receiver on a free loopback port; url gets its address. */
static struct MHD_Daemon *receiver(char url[64])
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct MHD_Daemon *d =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_post, NULL,
	                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	const union MHD_DaemonInfo *info;

	assert_non_null(d);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	snprintf(url, 64, "http://127.0.0.1:%u/hook", (unsigned)info->port);
	return d;
}

struct pushes {
	const char *msgid[3];
};

static int add_pushes(MDB_txn *txn, void *arg)
{
	const struct pushes *p = arg;
	json_t *data = json_pack("{s:s}", "messageId", "x");
	int rc = TERN_OK;

	for (int i = 0; i < 3 && rc == TERN_OK; i++)
		rc = node_push_add(txn, st, NODE_PUSH_RECEIVED, p->msgid[i], data, 1700000000000);
	json_decref(data);
	return rc;
}

/* Push seq's stored bytes replaced with ones that do not decode. */
static int damage_push(MDB_txn *txn, void *arg)
{
	uint8_t kb[8];
	MDB_val k = {8, kb}, v = {7, "{\"id\":\""};

	tern_be64_put(kb, *(const uint64_t *)arg);
	return tern_store_mdb_err(mdb_put(txn, tern_store_dbi(st, NS_PUSHES), &k, &v, 0), "put");
}

/* Three pushes, the second damaged at rest: the first and the third are
 * posted, in order, and all three are handed back to the loop to delete
 * (the damaged one counted as a failed attempt). Before, the pusher read
 * the damaged one again every second, for good, and posted nothing after
 * it. */
static void test_damaged_push_passed_over(void **state)
{
	static const uint8_t key[32] = {1};
	struct pushes p = {{"01a20598-0000-7000-8000-000000000001",
	                    "01a20598-0000-7000-8000-000000000002",
	                    "01a20598-0000-7000-8000-000000000003"}};
	struct MHD_Daemon *d;
	node_webhook *w = NULL;
	uint64_t two = 2, seqs[8], ok = 0, failed = 0;
	size_t nseqs = 0;
	char url[64];

	(void)state;
	assert_int_equal(tern_store_write(st, add_pushes, &p), TERN_OK);
	assert_int_equal(tern_store_write(st, damage_push, &two), TERN_OK);
	d = receiver(url);
	assert_int_equal(node_webhook_start(url, key, sizeof(key), 1000, st, &w), TERN_OK);
	node_webhook_kick(w);
	for (int i = 0; i < 100 && nseqs < 3; i++) {
		usleep(50 * 1000);
		nseqs += node_webhook_done(w, seqs + nseqs, 8 - nseqs);
	}
	node_webhook_counts(w, &ok, &failed);
	node_webhook_stop(&w);
	MHD_stop_daemon(d);
	assert_int_equal(nseqs, 3);
	assert_int_equal(ok, 2);
	assert_int_equal(failed, 1);
	assert_int_equal(ngot, 2);
	assert_string_equal(got[0], "01a20598-0000-7000-8000-000000000001.received");
	assert_string_equal(got[1], "01a20598-0000-7000-8000-000000000003.received");
}

/* A push as an earlier release stored it: a JSON object whose body is the
 * posted JSON as a string (escapes and all). */
static int put_old_push(MDB_txn *txn, void *arg)
{
	static const char old[] =
	    "{\"id\":\"01a20598-0000-7000-8000-000000000009.received\",\"body\":"
	    "\"{\\\"type\\\":\\\"message.received\\\",\\\"timestamp\\\":"
	    "\\\"2023-11-14T22:13:20.000Z\\\",\\\"data\\\":{\\\"messageId\\\":"
	    "\\\"01a20598-0000-7000-8000-000000000009\\\"}}\"}";
	uint8_t kb[8];
	MDB_val k = {8, kb}, v = {sizeof(old) - 1, (void *)old};
	uint64_t seq;
	/* Numbered as that release numbered it: webhook.c's counter. */
	int rc = node_store_next_seq(txn, st, "pushseq", &seq);

	(void)arg;
	if (rc != TERN_OK)
		return rc;
	tern_be64_put(kb, seq);
	return tern_store_mdb_err(mdb_put(txn, tern_store_dbi(st, NS_PUSHES), &k, &v, 0), "put");
}

static int add_one(MDB_txn *txn, void *arg)
{
	json_t *data = json_pack("{s:s, s:s}", "messageId", "01a20598-0000-7000-8000-00000000000a",
	                         "note", "a \"quoted\" \\ word");
	int rc = node_push_add(txn, st, NODE_PUSH_RECEIVED, "01a20598-0000-7000-8000-00000000000a",
	                       data, 1700000000000);

	(void)arg;
	json_decref(data);
	return rc;
}

/* A push stored as JSON by an earlier release (its body a JSON string with
 * escapes), then one stored now (protobuf, not JSON: its first byte is no
 * '{'): both posted in order, each body the exact JSON its push was made
 * with. */
static void test_old_and_new_pushes_posted(void **state)
{
	static const uint8_t key[32] = {2};
	struct MHD_Daemon *d;
	node_webhook *w = NULL;
	uint64_t seqs[8], ok = 0, failed = 0;
	size_t nseqs = 0;
	char url[64];
	MDB_txn *txn;
	MDB_val k, v;
	MDB_cursor *c;

	(void)state;
	assert_int_equal(tern_store_write(st, put_old_push, NULL), TERN_OK);
	assert_int_equal(tern_store_write(st, add_one, NULL), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, tern_store_dbi(st, NS_PUSHES), &c), 0);
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
	assert_int_equal(tern_be64_get(k.mv_data), 2);
	assert_int_not_equal(((const char *)v.mv_data)[0], '{');
	mdb_cursor_close(c);
	mdb_txn_abort(txn);

	d = receiver(url);
	assert_int_equal(node_webhook_start(url, key, sizeof(key), 1000, st, &w), TERN_OK);
	node_webhook_kick(w);
	for (int i = 0; i < 100 && nseqs < 2; i++) {
		usleep(50 * 1000);
		nseqs += node_webhook_done(w, seqs + nseqs, 8 - nseqs);
	}
	node_webhook_counts(w, &ok, &failed);
	node_webhook_stop(&w);
	MHD_stop_daemon(d);
	assert_int_equal(nseqs, 2);
	assert_int_equal(ok, 2);
	assert_int_equal(failed, 0);
	assert_int_equal(ngot, 2);
	assert_string_equal(got[0], "01a20598-0000-7000-8000-000000000009.received");
	assert_string_equal(gotbody[0], "{\"type\":\"message.received\",\"timestamp\":"
	                                "\"2023-11-14T22:13:20.000Z\",\"data\":{\"messageId\":"
	                                "\"01a20598-0000-7000-8000-000000000009\"}}");
	assert_string_equal(got[1], "01a20598-0000-7000-8000-00000000000a.received");
	assert_string_equal(gotbody[1], "{\"type\":\"message.received\",\"timestamp\":"
	                                "\"2023-11-14T22:13:20.000Z\",\"data\":{\"messageId\":"
	                                "\"01a20598-0000-7000-8000-00000000000a\",\"note\":"
	                                "\"a \\\"quoted\\\" \\\\ word\"}}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_damaged_push_passed_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_and_new_pushes_posted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Webhooks (webhook.h): the pushes in the store, and the thread that posts
 * them with libcurl, signed as Standard Webhooks says: HMAC-SHA256 over
 * "id.timestamp.body" with the secret's bytes, in the headers webhook-id,
 * webhook-timestamp (Unix seconds) and webhook-signature ("v1,BASE64"). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>

#include "ident.h"
#include "node_store.h"
#include "pbuf.h"
#include "record.h"
#include "util.h"
#include "webhook.h"

#define DBI(s) tern_store_dbi((s), NS_PUSHES)
#define SEQ_KEY "pushseq"
#define FIRST_BACKOFF_MS 250
#define POST_TIMEOUT_MS 10000
#define IDLE_POLL_MS 1000

/* --- the pushes in the store ---------------------------------------------- */

int node_push_add(MDB_txn *txn, tern_store *s, node_push_event event, const char *msgid,
                  const json_t *data, int64_t now_ms)
{
	char ts[TERN_RFC3339_LEN], id[64];
	uint8_t kb[8];
	uint64_t seq;
	MDB_val k, v;
	json_t *payload;
	Tern__V1__PushRecord rec = TERN__V1__PUSH_RECORD__INIT;
	char *text = NULL;
	uint8_t *packed = NULL;
	size_t plen = 0;
	int rc;

	if (DBI(s) == 0)
		return tern_fail(TERN_EIO, "this store has no table of pushes");
	if ((rc = node_store_next_seq(txn, s, SEQ_KEY, &seq)) != TERN_OK)
		return rc;
	tern_be64_put(kb, seq);
	tern_time_rfc3339(now_ms, ts);
	/* A message is received once, but its final state can change (expired,
	 * then delivered after tern dlq retry; one recipient expired, another
	 * rejected): each is a new event, which receivers must not drop as a
	 * repeat of the last, so it carries the push's own number. */
	if (event == NODE_PUSH_RECEIVED)
		snprintf(id, sizeof(id), "%s.received", msgid);
	else
		snprintf(id, sizeof(id), "%s.final.%llu", msgid, (unsigned long long)seq);
	payload = json_pack("{s:s, s:s, s:O}", "type",
	                    event == NODE_PUSH_RECEIVED ? "message.received" : "message.final",
	                    "timestamp", ts, "data", data);
	/* The body is fixed now: every attempt posts the same bytes. */
	if (payload == NULL || tern_json_dumps_exact(payload, JSON_COMPACT, &text) != TERN_OK)
		text = NULL;
	json_decref(payload);
	if (text == NULL)
		return TERN_ENOMEM;
	rec.id = id;
	rec.body = (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
	if ((rc = tern_pb_pack(&rec.base, &packed, &plen)) == TERN_OK) {
		k = (MDB_val){8, kb};
		v = (MDB_val){plen, packed};
		if ((rc = mdb_put(txn, DBI(s), &k, &v, MDB_APPEND)) != 0)
			rc = tern_store_mdb_err(rc, "write a push");
	}
	free(packed);
	free(text);
	return rc;
}

int node_push_del(MDB_txn *txn, tern_store *s, uint64_t seq)
{
	uint8_t kb[8];
	MDB_val k = {8, kb};
	int rc;

	tern_be64_put(kb, seq);
	rc = mdb_del(txn, DBI(s), &k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? TERN_OK : tern_store_mdb_err(rc, "remove a push");
}

int node_push_count(MDB_txn *txn, tern_store *s, uint64_t *n)
{
	MDB_stat st;

	*n = 0;
	if (DBI(s) == 0)
		return TERN_OK;
	if (mdb_stat(txn, DBI(s), &st) != 0)
		return TERN_EIO;
	*n = st.ms_entries;
	return TERN_OK;
}

/* A push as an earlier release stored it: {"id": ..., "body": the JSON
 * posted, as a string}. NULL when out of memory. */
static ProtobufCMessage *push_from_json(const json_t *o)
{
	Tern__V1__PushRecord *r = malloc(sizeof(*r));
	const char *id = json_string_value(json_object_get(o, "id"));
	const char *body = json_string_value(json_object_get(o, "body"));
	size_t blen = json_string_length(json_object_get(o, "body"));

	if (r == NULL)
		return NULL;
	tern__v1__push_record__init(r);
	r->id = strdup(id ? id : "");
	r->body.data = malloc(blen ? blen : 1);
	if (r->id == NULL || r->body.data == NULL) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	memcpy(r->body.data, body ? body : "", blen);
	r->body.len = blen;
	return &r->base;
}

int node_push_record_decode(const void *data, size_t len, ProtobufCMessage **out)
{
	return node_rec_decode(data, len, &tern__v1__push_record__descriptor, push_from_json,
	                       "a webhook push", out);
}

/* The first push at or after seq: its seq, id and body (malloc'd, with a
 * terminating NUL). */
static int push_next(tern_store *s, uint64_t from, uint64_t *seq, char **id, char **body)
{
	MDB_txn *txn;
	MDB_cursor *c;
	uint8_t kb[8];
	MDB_val k = {8, kb}, v;
	ProtobufCMessage *m = NULL;
	Tern__V1__PushRecord *rec;
	int rc, drc = TERN_OK;

	*id = *body = NULL;
	if ((rc = tern_store_thread_read_begin(s, &txn)) != TERN_OK)
		return rc;
	tern_be64_put(kb, from);
	if (mdb_cursor_open(txn, DBI(s), &c) != 0) {
		tern_store_thread_read_end(s, txn);
		return TERN_EIO;
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 8) {
		*seq = tern_be64_get(k.mv_data);
		/* A shortage is tried again; only bytes that do not decode with
		 * memory to spare are damaged (passed over). */
		drc = node_push_record_decode(v.mv_data, v.mv_size, &m);
	}
	mdb_cursor_close(c);
	tern_store_thread_read_end(s, txn);
	if (rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	if (rc != 0 || k.mv_size != 8)
		return tern_fail(TERN_EIO, "cannot read the pushes: %s",
		                 rc ? mdb_strerror(rc) : "a key of another size");
	if (drc == TERN_ENOMEM)
		return tern_fail(TERN_ENOMEM, "out of memory reading push %llu",
		                 (unsigned long long)*seq);
	rec = (Tern__V1__PushRecord *)m;
	/* No id or no body: bytes the node did not write (an empty value
	 * decodes), nothing a receiver could use. */
	if (drc != TERN_OK || rec->id[0] == '\0' || rec->body.len == 0) {
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		return tern_fail(TERN_EMALFORMED, "push %llu is not readable",
		                 (unsigned long long)*seq);
	}
	*id = strdup(rec->id);
	if ((*body = malloc(rec->body.len + 1)) != NULL) {
		memcpy(*body, rec->body.data, rec->body.len);
		(*body)[rec->body.len] = '\0';
	}
	protobuf_c_message_free_unpacked(m, NULL);
	if (*id == NULL || *body == NULL) {
		free(*id);
		free(*body);
		*id = *body = NULL;
		return TERN_ENOMEM;
	}
	return TERN_OK;
}

/* --- the pusher ------------------------------------------------------------ */

struct node_webhook {
	char *url;
	char *shown; /* url for the log: no user:password@, no ?query or #fragment */
	uint8_t *key;
	size_t klen;
	int64_t max_backoff_ms;
	tern_store *store;
	int efd;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, kicked;
	uint64_t *done; /* delivered, not yet taken by the loop */
	size_t ndone, capdone;
	uint64_t delivered, failed;
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Posts one push; its HTTP status in *status (0 when none came). */
static int post(node_webhook *w, CURL *h, const char *id, const char *body, long *status)
{
	char ts[24], sig[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	char hid[128], hts[64], hsig[sizeof(sig) + 40];
	uint8_t mac[32];
	crypto_auth_hmacsha256_state st;
	struct curl_slist *hdrs = NULL;
	CURLcode cc;

	*status = 0;
	snprintf(ts, sizeof(ts), "%lld", (long long)(tern_now_ms() / 1000));
	crypto_auth_hmacsha256_init(&st, w->key, w->klen);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, strlen(body));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(sig, sizeof(sig), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	snprintf(hid, sizeof(hid), "webhook-id: %s", id);
	snprintf(hts, sizeof(hts), "webhook-timestamp: %s", ts);
	snprintf(hsig, sizeof(hsig), "webhook-signature: v1,%s", sig);
	/* curl_slist_append returns NULL, and keeps the list, when it cannot
	 * add: going on with NULL would post without the headers before it. */
	{
		const char *h_all[] = {"Content-Type: application/json", hid, hts, hsig,
		                       "Expect:" /* no 100-continue round trip */};
		for (size_t i = 0; i < sizeof(h_all) / sizeof(h_all[0]); i++) {
			struct curl_slist *more = curl_slist_append(hdrs, h_all[i]);
			if (more == NULL) {
				curl_slist_free_all(hdrs);
				return tern_fail(TERN_ENOMEM, "out of memory for a push's headers");
			}
			hdrs = more;
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return cc == CURLE_OK ? TERN_OK : tern_fail(TERN_EIO, "%s", curl_easy_strerror(cc));
}

/* Waits ms, or until a kick or the stop; 1 when stopping. */
static int pause_for(node_webhook *w, int64_t ms, int kick_ends)
{
	struct timespec until;
	int stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->stop && !(kick_ends && w->kicked))
		if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
			break;
	w->kicked = 0;
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

/* Hands seq back to the loop, whose next commit deletes it: delivered, or
 * (posted 0) passed over as damaged. */
static void delivered(node_webhook *w, uint64_t seq, int posted)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->mu);
	if (w->ndone == w->capdone) {
		size_t cap = w->capdone ? 2 * w->capdone : 64;
		uint64_t *d = realloc(w->done, cap * sizeof(*d));
		if (d) {
			w->done = d;
			w->capdone = cap;
		}
	}
	/* Out of memory: left in the store, posted again after a restart. */
	if (w->ndone < w->capdone)
		w->done[w->ndone++] = seq;
	if (posted)
		w->delivered++;
	else
		w->failed++;
	pthread_mutex_unlock(&w->mu);
	if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warnx("webhook: cannot wake the loop: %s", strerror(errno));
}

/* A post under way ends at the stop, not at its timeout. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	node_webhook *w = arg;
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return __atomic_load_n(&w->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

static void *run(void *arg)
{
	node_webhook *w = arg;
	CURL *h = curl_easy_init();
	uint64_t next = 1, seq = 0;
	int64_t backoff = 0;
	int failing = 0;

	if (h == NULL) {
		log_warnx("webhook: cannot start libcurl; no push will be posted");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, w->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)POST_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)POST_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	while (1) {
		char *id = NULL, *body = NULL;
		long status = 0;
		int rc = push_next(w->store, next, &seq, &id, &body);

		if (rc == TERN_EMALFORMED) {
			/* Damaged at rest: no later read makes it whole, and waiting
			 * for it would hold every push after it for good. Passed
			 * over, said, counted as a failed attempt; the state it
			 * carried is still what tern status and the API show. */
			log_warnx("webhook: push %llu is damaged in the store and cannot be "
			          "posted; passed over, the pushes after it go on",
			          (unsigned long long)seq);
			next = seq + 1;
			delivered(w, seq, 0);
			continue;
		}
		if (rc == TERN_ENOENT || rc != TERN_OK) {
			if (rc != TERN_ENOENT)
				log_warnx("webhook: cannot read the next push: %s",
				          tern_errdetail());
			if (pause_for(w, IDLE_POLL_MS, 1))
				break;
			continue;
		}
		rc = post(w, h, id, body, &status);
		if (rc == TERN_OK && status >= 200 && status < 300) {
			if (failing)
				log_info("webhook: %s answers again; posting what waited",
				         w->shown);
			failing = 0;
			backoff = 0;
			next = seq + 1;
			delivered(w, seq, 1);
		} else {
			pthread_mutex_lock(&w->mu);
			w->failed++;
			pthread_mutex_unlock(&w->mu);
			/* Once per outage, not per attempt: ids only. */
			if (!failing)
				log_warnx("webhook: push %s to %s failed (%s); retrying with "
				          "backoff up to "
				          "%lld s",
				          id, w->shown,
				          rc == TERN_OK ? "an HTTP error status" : tern_errdetail(),
				          (long long)(w->max_backoff_ms / 1000));
			failing = 1;
			backoff = backoff ? backoff * 2 : FIRST_BACKOFF_MS;
			if (backoff > w->max_backoff_ms)
				backoff = w->max_backoff_ms;
		}
		free(id);
		free(body);
		if (backoff && pause_for(w, backoff, 0))
			break;
		pthread_mutex_lock(&w->mu);
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		pthread_mutex_unlock(&w->mu);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* url without what may be a credential (user:password@, a ?token=...), for
 * the log. */
static char *url_shown(const char *url)
{
	const char *auth = strstr(url, "://"), *end, *at;
	char *out = malloc(strlen(url) + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	auth = auth ? auth + 3 : url;
	end = auth + strcspn(auth, "/?#");
	memcpy(out, url, (size_t)(auth - url));
	n = (size_t)(auth - url);
	/* the last '@' of the authority ends its user information */
	for (at = end; at > auth && at[-1] != '@'; at--)
		;
	memcpy(out + n, at, (size_t)(end - at));
	n += (size_t)(end - at);
	memcpy(out + n, end, strcspn(end, "?#"));
	n += strcspn(end, "?#");
	out[n] = 0;
	return out;
}

int node_webhook_start(const char *url, const uint8_t *key, size_t klen, int64_t max_backoff_ms,
                       tern_store *store, node_webhook **out)
{
	node_webhook *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (w == NULL)
		return TERN_ENOMEM;
	w->efd = -1;
	/* Here, on the main thread, before any other thread uses libcurl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(w);
		return tern_fail(TERN_EIO, "webhook: cannot start libcurl");
	}
	if ((w->url = strdup(url)) == NULL || (w->shown = url_shown(url)) == NULL ||
	    (w->key = malloc(klen)) == NULL) {
		node_webhook_stop(&w);
		return TERN_ENOMEM;
	}
	memcpy(w->key, key, klen);
	w->klen = klen;
	w->max_backoff_ms = max_backoff_ms;
	w->store = store;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    pthread_create(&w->thread, NULL, run, w) != 0) {
		int rc =
		    tern_fail(TERN_EIO, "webhook: cannot start its thread: %s", strerror(errno));
		if (w->efd >= 0)
			close(w->efd);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w->url);
		free(w->shown);
		sodium_memzero(w->key, klen);
		free(w->key);
		free(w);
		return rc;
	}
	*out = w;
	return TERN_OK;
}

int node_webhook_fd(const node_webhook *w)
{
	return w ? w->efd : -1;
}

size_t node_webhook_done(node_webhook *w, uint64_t *seqs, size_t cap)
{
	uint64_t v;
	size_t n;

	if (w == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	n = w->ndone < cap ? w->ndone : cap;
	memcpy(seqs, w->done, n * sizeof(*seqs));
	memmove(w->done, w->done + n, (w->ndone - n) * sizeof(*seqs));
	w->ndone -= n;
	if (w->ndone == 0) /* readable again with the next one */
		while (read(w->efd, &v, sizeof(v)) > 0)
			;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void node_webhook_kick(node_webhook *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->kicked = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void node_webhook_counts(node_webhook *w, uint64_t *delivered_n, uint64_t *failed)
{
	*delivered_n = *failed = 0;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	*delivered_n = w->delivered;
	*failed = w->failed;
	pthread_mutex_unlock(&w->mu);
}

void node_webhook_stop(node_webhook **wp)
{
	node_webhook *w;

	if (wp == NULL || (w = *wp) == NULL)
		return;
	if (w->efd >= 0) { /* started */
		pthread_mutex_lock(&w->mu);
		__atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		close(w->efd);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
	}
	free(w->done);
	free(w->url);
	free(w->shown);
	if (w->key) {
		sodium_memzero(w->key, w->klen);
		free(w->key);
	}
	free(w);
	*wp = NULL;
}

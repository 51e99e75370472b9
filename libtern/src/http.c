#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/resource.h>

#include <microhttpd.h>
#include <sodium.h>

#include <tern/error.h>
#include <tern/log.h>

#include "http.h"
#include "util.h"

#define MAX_SNAPSHOTS 8
/* Each connection's memory pool: the request line and headers (about 7 KiB of
 * them; more gets 431), then the response's headers. It bounds what a client
 * that never finishes its headers can make us hold. Measured: 1,000 idle or
 * slow connections cost 4.5 MB of RSS, 6.5 MB once churned (malloc keeps what
 * it touched); with 16 KiB pools, 10 MB once churned. */
#define CONN_MEMORY (8 * 1024)

#define JSON_CTYPE "application/json"
/* What MHD asks a stream for at a time: its write buffer for the body. */
#define STREAM_BLOCK (64 * 1024)

struct snapshot {
	char path[32];
	int64_t at, max_age_ms; /* published when; served stale as 503 after max_age_ms */
	int status;
	const char *ctype;
	char *text;
};

enum req_state { REQ_BODY, REQ_QUEUED, REQ_DONE };

/* What the workers take from the queue: a request for the handler, or a
 * stream that needs its next piece. */
struct job {
	struct job *next;
	int is_fill;
};

/* One authenticated API request, from its headers to its reply. */
struct req {
	struct job job; /* first: the queue holds jobs */
	struct MHD_Connection *c;
	/* MHD's strings (method, url, header values): valid while the request
	 * lives, and the connection is suspended (MHD leaves it alone) while a
	 * worker reads them. */
	tern_http_request in;
	char *body;
	size_t len, cap;
	int too_big;
	enum req_state state;
	tern_http_response res; /* the handler's answer, set by a worker */
};

/* A streamed response's state, owned by its MHD response (freed with it).
 * The server's thread copies out data[off..len); when that is spent it
 * suspends the connection and queues the fill for a worker, which calls
 * the stream's next and resumes the connection. */
struct fill {
	struct job job; /* first */
	tern_http *h;
	struct MHD_Connection *c;
	tern_http_stream s;
	const uint8_t *data;
	size_t len, off;
	uint64_t sent;
	int failed;
};

struct tern_http {
	struct MHD_Daemon *d;
	pthread_mutex_t mu; /* snapshots */
	struct snapshot snaps[MAX_SNAPSHOTS];
	size_t nsnaps;
	/* the API (api == 0: snapshots only) */
	int api;
	char *prefix, *token;
	size_t prefix_len, token_len, max_body;
	tern_http_handler *handler;
	tern_http_early *early;
	void *arg;
	const char *headers[TERN_HTTP_MAX_HEADERS + 1];
	atomic_uint_fast64_t refusals;
	/* workers: a new request is refused (503) when busy reaches nworkers,
	 * so it never waits behind another's long poll; a stream's fill is
	 * never refused (its response is under way) and may wait its turn. */
	pthread_mutex_t jmu;
	pthread_cond_t jcv;
	struct job *head, *tail;
	pthread_t *threads;
	unsigned nworkers, nthreads;
	unsigned busy;      /* requests and fills queued or running */
	unsigned answering; /* answers resumed and not yet sent (under jmu) */
	int stopping;
};

int tern_http_response_header(tern_http_response *r, const char *name, const char *fmt, ...)
{
	va_list ap;
	char *v = NULL, *n;
	int len;

	if (r->nheaders == TERN_HTTP_MAX_HEADERS)
		return TERN_EINVAL;
	va_start(ap, fmt);
	len = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (len < 0)
		return TERN_ENOMEM;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			free(v);
			return TERN_EINVAL;
		}
	if ((n = strdup(name)) == NULL) {
		free(v);
		return TERN_ENOMEM;
	}
	r->header_name[r->nheaders] = n;
	r->header_value[r->nheaders++] = v;
	return TERN_OK;
}

/* Frees what a response still owns: its body, headers and stream. */
static void response_clear(tern_http_response *r)
{
	free(r->out);
	r->out = NULL;
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->header_name[i]);
		free(r->header_value[i]);
	}
	r->nheaders = 0;
	if (r->streamed && r->stream.free)
		r->stream.free(r->stream.arg);
	r->streamed = 0;
}

static void enqueue(tern_http *h, struct job *j)
{
	if (h->tail)
		h->tail->next = j;
	else
		h->head = j;
	h->tail = j;
	pthread_cond_signal(&h->jcv);
}

/* MHD's content reader for a stream, on the server's thread: never blocks.
 * With nothing made yet it hands the fill to a worker and suspends the
 * connection (returning 0, which MHD takes as "nothing yet"); the worker's
 * resume brings MHD back here. */
static ssize_t fill_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fill *f = cls;
	tern_http *h = f->h;
	size_t n;

	if (pos != f->sent || f->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (f->off < f->len) {
		n = f->len - f->off < max ? f->len - f->off : max;
		memcpy(buf, f->data + f->off, n);
		f->off += n;
		f->sent += n;
		return (ssize_t)n;
	}
	if (f->sent >= f->s.size)
		return MHD_CONTENT_READER_END_OF_STREAM;
	pthread_mutex_lock(&h->jmu);
	if (h->stopping) {
		pthread_mutex_unlock(&h->jmu);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	/* A fill is never refused (the response is under way): it may wait
	 * for a worker, and counts as busy so new requests see the load. */
	h->busy++;
	MHD_suspend_connection(f->c);
	enqueue(h, &f->job);
	pthread_mutex_unlock(&h->jmu);
	return 0;
}

static void fill_free(void *cls)
{
	struct fill *f = cls;

	if (f->s.free)
		f->s.free(f->s.arg);
	free(f);
}

/* Queues res as c's answer. The response takes res's body or stream; its
 * headers are copied (response_clear frees what is left). */
static enum MHD_Result reply_res(tern_http *h, struct MHD_Connection *c, tern_http_response *res)
{
	struct MHD_Response *r;
	struct fill *f = NULL;
	enum MHD_Result rc;

	if (res->streamed) {
		if ((f = calloc(1, sizeof(*f))) == NULL)
			return MHD_NO; /* response_clear frees the stream */
		f->job.is_fill = 1;
		f->h = h;
		f->c = c;
		f->s = res->stream;
		res->streamed = 0; /* the fill owns it now */
		r = MHD_create_response_from_callback(f->s.size, STREAM_BLOCK, fill_read, f,
		                                      fill_free);
		if (r == NULL) {
			fill_free(f);
			return MHD_NO;
		}
	} else {
		/* no body (a 204, or a handler out of memory): empty */
		r = MHD_create_response_from_buffer(
		    res->out ? res->outlen : 0, res->out ? res->out : (void *)"",
		    res->out ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		res->out = NULL;
	}
	if (res->ctype)
		MHD_add_response_header(r, "Content-Type", res->ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (res->status == 401)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
	if (res->status == 503)
		MHD_add_response_header(r, "Retry-After", "1");
	for (size_t i = 0; i < res->nheaders; i++)
		MHD_add_response_header(r, res->header_name[i], res->header_value[i]);
	rc = MHD_queue_response(c, (unsigned)res->status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype, char *text,
                             size_t len)
{
	tern_http_response res = {.status = status, .ctype = ctype, .out = text, .outlen = len};
	enum MHD_Result rc;

	if (text == NULL)
		return MHD_NO; /* out of memory: close the connection */
	rc = reply_res(NULL, c, &res);
	response_clear(&res);
	return rc;
}

/* An error as RFC 9457 problem details (docs/api.md, "Errors"). */
static enum MHD_Result reply_error(struct MHD_Connection *c, int status, const char *code,
                                   const char *msg)
{
	char *out = NULL;
	size_t len = 0;

	if (tern_http_problem(status, code, msg, NULL, &out, &len) != TERN_OK)
		return MHD_NO; /* out of memory: close the connection */
	return reply(c, status, TERN_HTTP_PROBLEM_CTYPE, out, len);
}

enum { AUTH_OK, AUTH_NONE, AUTH_CONTROL };

/* Whether the Authorization header carries the token, "Bearer TOKEN" (the
 * scheme in any case, spaces and tabs around the token being HTTP's
 * optional white space, not the token's); the comparison in constant time.
 * AUTH_CONTROL: a CR or another control character in the value, as a client
 * that sent a token file's line end with the token makes it. */
static int authorized(const tern_http *h, const char *auth)
{
	size_t len;

	if (auth == NULL)
		return AUTH_NONE;
	for (const char *p = auth; *p; p++)
		if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
			return AUTH_CONTROL;
	while (*auth == ' ' || *auth == '\t')
		auth++;
	if (strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
		return AUTH_NONE;
	auth += 6;
	while (*auth == ' ' || *auth == '\t')
		auth++;
	len = strlen(auth);
	while (len && (auth[len - 1] == ' ' || auth[len - 1] == '\t'))
		len--;
	if (len != h->token_len)
		return AUTH_NONE;
	return sodium_memcmp(auth, h->token, h->token_len) == 0 ? AUTH_OK : AUTH_NONE;
}

static enum MHD_Result serve_snapshot(tern_http *h, struct MHD_Connection *c, const char *url,
                                      int *found)
{
	int status = 0;
	const char *ctype = NULL;
	char *out = NULL;

	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->nsnaps; i++)
		if (strcmp(h->snaps[i].path, url) == 0) {
			status = h->snaps[i].status;
			if (h->snaps[i].max_age_ms &&
			    tern_now_ms() - h->snaps[i].at > h->snaps[i].max_age_ms)
				status = 503; /* the daemon's loop has stopped publishing */
			ctype = h->snaps[i].ctype;
			out = strdup(h->snaps[i].text);
			*found = 1;
			break;
		}
	pthread_mutex_unlock(&h->mu);
	return *found ? reply(c, status, ctype, out, out ? strlen(out) : 0) : MHD_NO;
}

/* MHD_get_connection_values' iterator: the query's arguments into the
 * request (MHD's strings, which live as long as it). */
static enum MHD_Result take_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
	tern_http_request *in = cls;

	(void)kind;
	if (in->nargs == TERN_HTTP_MAX_ARGS) {
		in->args_over = 1;
		return MHD_NO;
	}
	in->arg_name[in->nargs] = key;
	in->arg_value[in->nargs++] = value ? value : "";
	return MHD_YES;
}

/* The first call, with the headers and before any body: everything that can
 * be decided without the body is decided here, so that a request we refuse
 * never makes us read or hold a byte of it (MHD discards the rest of the
 * request and closes the connection after an early reply). */
static enum MHD_Result first_call(tern_http *h, struct MHD_Connection *c, const char *url,
                                  const char *method, void **con_cls)
{
	const char *cl;
	struct req *r;
	tern_http_response early = {0};
	int found = 0;
	enum MHD_Result rc;

	if (strcmp(method, "GET") == 0) {
		rc = serve_snapshot(h, c, url, &found);
		if (found)
			return rc;
	}
	if (!h->api || strncmp(url, h->prefix, h->prefix_len) != 0) {
		return reply_error(c, 404, "not-found",
		                   h->api ? "no such path: the API is under /v1/ (docs/api.md)"
		                          : "no such path: this server has /metrics, /healthz and "
		                            "/readyz");
	}
	switch (authorized(h, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
	case AUTH_OK:
		break;
	case AUTH_CONTROL:
		atomic_fetch_add(&h->refusals, 1);
		return reply_error(c, 401, "unauthorized",
		                   "the Authorization header holds a line break or another control "
		                   "character: send the token without the white space around it "
		                   "in its file");
	default:
		atomic_fetch_add(&h->refusals, 1);
		return reply_error(c, 401, "unauthorized",
		                   "give the token: Authorization: Bearer TOKEN");
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > h->max_body)
		return reply_error(c, 413, "too-big", "request body over the limit");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return MHD_NO;
	r->c = c;
	r->in.method = method;
	r->in.url = url;
	for (size_t i = 0; h->headers[i]; i++)
		r->in.headers[i] = MHD_lookup_connection_value(c, MHD_HEADER_KIND, h->headers[i]);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, take_arg, &r->in);
	if (h->early) {
		h->early(h->arg, &r->in, &early);
		if (early.status != 0) {
			free(r);
			rc = reply_res(h, c, &early);
			response_clear(&early);
			return rc;
		}
		response_clear(&early);
	}
	*con_cls = r;
	return MHD_YES;
}

/* Bodies are bounded: even a client with the token cannot make us hold more
 * than max_body for a request. Beyond it the rest is read and dropped, and
 * the request gets 413 (MHD cannot answer in the middle of a body). */
static int take_body(tern_http *h, struct req *r, const char *data, size_t len)
{
	if (r->too_big || r->len + len > h->max_body) {
		r->too_big = 1;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return TERN_OK;
	}
	if (r->len + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *nb;
		while (cap < r->len + len + 1)
			cap *= 2;
		if (cap > h->max_body + 1)
			cap = h->max_body + 1;
		if ((nb = realloc(r->body, cap)) == NULL)
			return TERN_ENOMEM;
		r->body = nb;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, len);
	r->len += len;
	r->body[r->len] = 0;
	return TERN_OK;
}

/* Hands a complete request to a worker and suspends its connection, or
 * answers 503 when every worker is taken: a client must not be able to
 * queue work without bound, nor wait behind another's long poll. */
static enum MHD_Result dispatch(tern_http *h, struct MHD_Connection *c, struct req *r)
{
	char msg[160];

	pthread_mutex_lock(&h->jmu);
	if (h->stopping || h->busy >= h->nworkers) {
		int stopping = h->stopping;
		pthread_mutex_unlock(&h->jmu);
		snprintf(msg, sizeof(msg),
		         stopping
		             ? "the server is stopping; retry in a moment"
		             : "all %u request slots are busy (waiting clients hold one each); "
		               "retry in a moment",
		         h->nworkers);
		return reply_error(c, 503, "busy", msg);
	}
	h->busy++;
	r->state = REQ_QUEUED;
	/* Suspended before a worker can see it, so that its resume always
	 * follows this suspend. */
	MHD_suspend_connection(c);
	enqueue(h, &r->job);
	pthread_mutex_unlock(&h->jmu);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
	tern_http *h = cls;
	struct req *r = *con_cls;

	(void)version;
	if (r == NULL)
		return first_call(h, c, url, method, con_cls);
	if (*upload_size) {
		if (take_body(h, r, upload_data, *upload_size) != TERN_OK)
			return MHD_NO; /* out of memory: close the connection */
		*upload_size = 0;
		return MHD_YES;
	}
	switch (r->state) {
	case REQ_BODY:
		if (r->too_big)
			return reply_error(c, 413, "too-big", "request body over the limit");
		return dispatch(h, c, r);
	case REQ_QUEUED:
		return MHD_YES; /* not ours to answer yet (MHD should not call) */
	case REQ_DONE:
		return reply_res(h, c, &r->res);
	}
	return MHD_NO;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
	tern_http *h = cls;
	struct req *r = *con_cls;

	(void)c;
	(void)why;
	if (r && r->state == REQ_DONE) {
		pthread_mutex_lock(&h->jmu);
		h->answering--;
		pthread_mutex_unlock(&h->jmu);
	}
	if (r) {
		free(r->body);
		response_clear(&r->res);
		free(r);
		*con_cls = NULL;
	}
}

/* A stream's next piece, on a worker; the connection waits suspended. */
static void fill_run(tern_http *h, struct fill *f, int stopping)
{
	const uint8_t *data = NULL;
	size_t len = 0;

	if (stopping || f->s.next(f->s.arg, &data, &len) != TERN_OK || len == 0 ||
	    len > f->s.size - f->sent) {
		f->failed = 1; /* MHD closes the connection short of Content-Length */
	} else {
		f->data = data;
		f->len = len;
		f->off = 0;
	}
	pthread_mutex_lock(&h->jmu);
	h->busy--;
	pthread_mutex_unlock(&h->jmu);
	MHD_resume_connection(f->c);
}

static void *worker(void *arg)
{
	tern_http *h = arg;
	struct job *j;
	struct req *r;

	for (;;) {
		int stopping;
		pthread_mutex_lock(&h->jmu);
		while (h->head == NULL && !h->stopping)
			pthread_cond_wait(&h->jcv, &h->jmu);
		if ((j = h->head) == NULL) {
			pthread_mutex_unlock(&h->jmu);
			return NULL; /* stopping, and nothing left to answer */
		}
		if ((h->head = j->next) == NULL)
			h->tail = NULL;
		j->next = NULL;
		stopping = h->stopping;
		pthread_mutex_unlock(&h->jmu);

		if (j->is_fill) {
			fill_run(h, (struct fill *)j, stopping);
			continue;
		}
		r = (struct req *)j;
		r->res.status = 500;
		r->res.ctype = JSON_CTYPE;
		if (stopping) {
			r->res.status = 503;
			r->res.out =
			    strdup("{\n  \"ok\": false,\n  \"error\": \"busy\",\n  \"message\": "
			           "\"the server is stopping; retry in a moment\"\n}\n");
			r->res.outlen = r->res.out ? strlen(r->res.out) : 0;
		} else {
			r->in.body = r->body ? r->body : "";
			r->in.blen = r->len;
			h->handler(h->arg, &r->in, &r->res);
		}
		pthread_mutex_lock(&h->jmu);
		r->state = REQ_DONE;
		h->busy--;
		h->answering++;
		pthread_mutex_unlock(&h->jmu);
		/* MHD calls on_request again, which queues the answer. */
		MHD_resume_connection(r->c);
	}
}

/* How many connections a server may hold: TERN_HTTP_CONNECTIONS, fewer when
 * the process may not open that many descriptors (two servers, metrics and
 * API, may share a process). tern_daemon_main raised the soft limit. */
static unsigned connection_limit(uint16_t port)
{
	struct rlimit rl;
	uint64_t lim;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return TERN_HTTP_CONNECTIONS;
	lim = rl.rlim_cur > TERN_HTTP_FD_RESERVE + 2 * 64 ? (rl.rlim_cur - TERN_HTTP_FD_RESERVE) / 2
	                                                  : 64;
	if (lim >= TERN_HTTP_CONNECTIONS)
		return TERN_HTTP_CONNECTIONS;
	log_warnx("HTTP on port %u: at most %llu connections, as RLIMIT_NOFILE is %llu; set "
	          "LimitNOFILE=%d (docs/operations.md)",
	          port, (unsigned long long)lim, (unsigned long long)rl.rlim_cur, TERN_HTTP_NOFILE);
	return (unsigned)lim;
}

static void free_server(tern_http *h)
{
	for (size_t i = 0; i < h->nsnaps; i++)
		free(h->snaps[i].text);
	if (h->token) {
		sodium_memzero(h->token, h->token_len);
		free(h->token);
	}
	free(h->prefix);
	free(h->threads);
	pthread_cond_destroy(&h->jcv);
	pthread_mutex_destroy(&h->jmu);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

static void stop_workers(tern_http *h)
{
	pthread_mutex_lock(&h->jmu);
	h->stopping = 1;
	pthread_cond_broadcast(&h->jcv);
	pthread_mutex_unlock(&h->jmu);
	for (unsigned i = 0; i < h->nthreads; i++)
		pthread_join(h->threads[i], NULL);
	h->nthreads = 0;
}

int tern_http_start(uint16_t port, const tern_http_api *api, tern_http **out)
{
	struct sockaddr_in sa;
	tern_http *h = calloc(1, sizeof(*h));
	int rc;

	*out = NULL;
	if (h == NULL)
		return TERN_ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->jmu, NULL);
	pthread_cond_init(&h->jcv, NULL);
	atomic_init(&h->refusals, 0);
	if (api) {
		if (api->handler == NULL || api->prefix == NULL || api->token == NULL ||
		    api->token[0] == 0) {
			free_server(h);
			return tern_fail(TERN_EINVAL, "an HTTP API needs a prefix, a token and a "
			                              "handler");
		}
		h->api = 1;
		h->handler = api->handler;
		h->early = api->early;
		h->arg = api->arg;
		for (size_t i = 0; api->headers && api->headers[i]; i++) {
			if (i == TERN_HTTP_MAX_HEADERS) {
				free_server(h);
				return tern_fail(TERN_EINVAL,
				                 "an HTTP API reads at most %d headers",
				                 TERN_HTTP_MAX_HEADERS);
			}
			h->headers[i] = api->headers[i];
		}
		h->max_body = api->max_body;
		h->nworkers = api->workers ? api->workers : TERN_HTTP_WORKERS;
		if ((h->prefix = strdup(api->prefix)) == NULL ||
		    (h->token = strdup(api->token)) == NULL ||
		    (h->threads = calloc(h->nworkers, sizeof(*h->threads))) == NULL) {
			free_server(h);
			return TERN_ENOMEM;
		}
		h->prefix_len = strlen(h->prefix);
		h->token_len = strlen(h->token);
		for (; h->nthreads < h->nworkers; h->nthreads++)
			if (pthread_create(&h->threads[h->nthreads], NULL, worker, h) != 0) {
				stop_workers(h);
				free_server(h);
				return tern_fail(TERN_ENOMEM, "cannot start the HTTP workers");
			}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* One epoll thread holds every connection: an idle or slow client costs
	 * a descriptor and a small pool, not a thread, and the limit is in the
	 * thousands. Blocking work goes to the workers (dispatch). */
	h->d = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, port, NULL, NULL, on_request,
	    h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done,
	    h, MHD_OPTION_CONNECTION_LIMIT, connection_limit(port), MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)TERN_HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
	    MHD_OPTION_END);
	if (h->d == NULL) {
		rc = tern_fail(TERN_EIO, "cannot listen on 127.0.0.1:%u (in use?)", port);
		stop_workers(h);
		free_server(h);
		return rc;
	}
	*out = h;
	return TERN_OK;
}

int tern_http_port(const tern_http *h, uint16_t *port)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);

	if (i == NULL || i->port == 0)
		return tern_fail(TERN_EIO, "the HTTP server's port is unknown");
	*port = i->port;
	return TERN_OK;
}

int tern_http_publish(tern_http *h, const char *path, int status, const char *ctype,
                      const char *text, int64_t max_age_ms)
{
	char *copy = strdup(text);
	size_t i;

	if (copy == NULL)
		return TERN_ENOMEM;
	pthread_mutex_lock(&h->mu);
	for (i = 0; i < h->nsnaps && strcmp(h->snaps[i].path, path) != 0; i++)
		;
	if (i == MAX_SNAPSHOTS) {
		pthread_mutex_unlock(&h->mu);
		free(copy);
		return TERN_EINVAL;
	}
	if (i == h->nsnaps) {
		snprintf(h->snaps[i].path, sizeof(h->snaps[i].path), "%s", path);
		h->nsnaps++;
	}
	free(h->snaps[i].text);
	h->snaps[i].text = copy;
	h->snaps[i].status = status;
	h->snaps[i].ctype = ctype;
	h->snaps[i].at = tern_now_ms();
	h->snaps[i].max_age_ms = max_age_ms;
	pthread_mutex_unlock(&h->mu);
	return TERN_OK;
}

int tern_http_take_refusals(tern_http *h, uint64_t *n)
{
	*n = atomic_exchange(&h->refusals, 0);
	return TERN_OK;
}

void tern_http_stop(tern_http **hp)
{
	tern_http *h;

	if (hp == NULL || (h = *hp) == NULL)
		return;
	/* MHD must not stop with a connection suspended: every worker resumes
	 * the connection it took, and what is still queued is answered 503. */
	stop_workers(h);
	/* Then the answers go out before the connections close (a client
	 * waiting on inbox/next gets its 503, not a reset); at most a second. */
	for (int i = 0; i < 100; i++) {
		unsigned left;
		pthread_mutex_lock(&h->jmu);
		left = h->answering;
		pthread_mutex_unlock(&h->jmu);
		if (left == 0)
			break;
		usleep(10000);
	}
	MHD_stop_daemon(h->d);
	free_server(h);
	*hp = NULL;
}

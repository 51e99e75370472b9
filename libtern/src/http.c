#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include <tern/error.h>

#include "http.h"
#include "util.h"

#define MAX_SNAPSHOTS 8

struct snapshot {
	char path[32];
	int64_t at, max_age_ms; /* published when; served stale as 503 after max_age_ms */
	int status;
	const char *ctype;
	char *text;
};

struct tern_http {
	struct MHD_Daemon *d;
	pthread_mutex_t mu;
	struct snapshot snaps[MAX_SNAPSHOTS];
	size_t nsnaps;
	tern_http_handler *handler;
	void *arg;
	size_t max_body;
};

struct upload {
	char *buf;
	size_t len;
	int too_big;
};

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype, char *text,
                             size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
	tern_http *h = cls;
	struct upload *u = *con_cls;
	int status = 404;
	const char *ctype = "text/plain; charset=utf-8";
	char *out = NULL;
	size_t outlen = 0;

	(void)version;
	if (u == NULL) {
		if ((u = calloc(1, sizeof(*u))) == NULL)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*upload_size) {
		/* Bodies are bounded: a client cannot make the daemon hold more. */
		if (u->len + *upload_size > h->max_body) {
			u->too_big = 1;
		} else if (!u->too_big) {
			char *nb = realloc(u->buf, u->len + *upload_size + 1);
			if (nb == NULL)
				return MHD_NO;
			u->buf = nb;
			memcpy(u->buf + u->len, upload_data, *upload_size);
			u->len += *upload_size;
			u->buf[u->len] = 0;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (u->too_big) {
		out = strdup("{\"ok\": false, \"error\": \"too-big\", \"message\": \"request body "
		             "over the limit\"}\n");
		return reply(c, 413, "application/json", out, out ? strlen(out) : 0);
	}
	if (strcmp(method, "GET") == 0) {
		pthread_mutex_lock(&h->mu);
		for (size_t i = 0; i < h->nsnaps; i++)
			if (strcmp(h->snaps[i].path, url) == 0) {
				status = h->snaps[i].status;
				if (h->snaps[i].max_age_ms &&
				    tern_now_ms() - h->snaps[i].at > h->snaps[i].max_age_ms)
					status = 503; /* the daemon's loop has stopped publishing */
				ctype = h->snaps[i].ctype;
				out = strdup(h->snaps[i].text);
				outlen = out ? strlen(out) : 0;
				break;
			}
		pthread_mutex_unlock(&h->mu);
		if (out)
			return reply(c, status, ctype, out, outlen);
	}
	if (h->handler) {
		h->handler(h->arg, method, url,
		           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
		           u->buf ? u->buf : "", u->len, &status, &ctype, &out, &outlen);
		if (out)
			return reply(c, status, ctype, out, outlen);
	}
	out = strdup("not found\n");
	return reply(c, 404, "text/plain; charset=utf-8", out, out ? strlen(out) : 0);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)why;
	if (u) {
		free(u->buf);
		free(u);
		*con_cls = NULL;
	}
}

int tern_http_start(uint16_t port, size_t max_body, tern_http_handler *handler, void *arg,
                    tern_http **out)
{
	struct sockaddr_in sa;
	tern_http *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL)
		return TERN_ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	h->handler = handler;
	h->arg = arg;
	h->max_body = max_body;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A thread per connection: a client waiting on inbox/next (up to a
	 * minute) must not hold up another request. */
	h->d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, port,
	    NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)90, MHD_OPTION_END);
	if (h->d == NULL) {
		pthread_mutex_destroy(&h->mu);
		free(h);
		return tern_fail(TERN_EIO, "cannot listen on 127.0.0.1:%u (in use?)", port);
	}
	*out = h;
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

void tern_http_stop(tern_http **hp)
{
	tern_http *h;

	if (hp == NULL || (h = *hp) == NULL)
		return;
	MHD_stop_daemon(h->d);
	for (size_t i = 0; i < h->nsnaps; i++)
		free(h->snaps[i].text);
	pthread_mutex_destroy(&h->mu);
	free(h);
	*hp = NULL;
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/error.h>

#include "api_server.h"
#include "apisrv.h"
#include "node_store.h"
#include "pbuf.h"
#include "util.h"

/* A client waiting for the node to answer. */
struct parked {
	int conn;         /* its tern_apisrv connection; -1: the slot is free */
	int waiting;      /* 1: for a commit; 2: for an inbox message; 3: for a final state */
	int64_t deadline; /* for waiting == 2 and 3 */
	char msgid[37];   /* for waiting == 3 */
	int look;         /* waiting == 3: its message changed state in the last commit */
};

struct api_server {
	tern_apisrv *srv;
	api_handlers h;
	tern_store *store;
	char *path;
	struct parked parked[API_SERVER_MAX_PARKED];
	int sent_changed; /* a receipt, notice or refusal came: look at final-state waiters */
};

/* A free parked slot for conn, or -1. */
static int park(api_server *s, int conn)
{
	for (int i = 0; i < API_SERVER_MAX_PARKED; i++)
		if (s->parked[i].conn < 0) {
			s->parked[i].conn = conn;
			return i;
		}
	return -1;
}

/* The handler answered at once: the slot is free again. */
static json_t *unpark(api_server *s, int ci, json_t *res)
{
	memset(&s->parked[ci], 0, sizeof(s->parked[ci]));
	s->parked[ci].conn = -1;
	return res;
}

/* One complete binary request (a tern.v1.ApiRequest): answered now, or
 * parked (NULL), as its JSON form would be. */
static json_t *on_binary(void *arg, int conn, const uint8_t *buf, size_t len, uid_t uid)
{
	api_server *s = arg;
	ProtobufCMessage *m = NULL;
	const Tern__V1__ApiRequest *r;
	json_t *res;
	int ci;

	(void)uid;
	/* Canonical, as JSON with its duplicate keys refused: no field twice, no
	 * string cut at a NUL, no unknown field; and every string UTF-8. */
	if (tern_pb_unpack_canonical(&tern__v1__api_request__descriptor, buf, len,
	                             TERN_API_MAX_FRAME, &m) != TERN_OK ||
	    tern_pb_strings_utf8(m) != TERN_OK) {
		tern_pb_free(&m);
		return tern_api_error(TERN_EMALFORMED,
		                      "the binary request is not a canonical tern.v1.ApiRequest");
	}
	r = (const Tern__V1__ApiRequest *)m;
	if (r->v == TERN_API_VERSION && r->op_case == TERN__V1__API_REQUEST__OP_UPLOAD_APPEND) {
		res = s->h.upload_bin(s->h.arg, r->upload_append);
		tern_pb_free(&m);
		return res ? res : tern_api_error(TERN_ENOMEM, "cannot build the answer");
	}
	if (r->v != TERN_API_VERSION || r->op_case != TERN__V1__API_REQUEST__OP_SEND) {
		tern_pb_free(&m);
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "this node speaks API version 1; binary frames carry send and "
		                 "upload.append");
	}
	if ((ci = park(s, conn)) < 0) {
		tern_pb_free(&m);
		return tern_api_error(TERN_ENOMEM, "too many API clients waiting; try again");
	}
	res = s->h.send_bin(s->h.arg, r->send, ci);
	tern_pb_free(&m);
	if (res != NULL)
		return unpark(s, ci, res);
	s->parked[ci].waiting = 1;
	return NULL;
}

/* One complete request: answered now, or parked (NULL). */
static json_t *on_request(void *arg, int conn, json_t *req, uid_t uid)
{
	api_server *s = arg;
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *res = NULL;
	struct parked *p;
	int ci = -1;

	(void)uid;
	if (json_integer_value(json_object_get(req, "v")) != TERN_API_VERSION || op == NULL)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "this node speaks API version 1; give \"v\":1 and \"op\"");
	if (strcmp(op, "status") == 0 || strcmp(op, "inbox.list") == 0 ||
	    strcmp(op, "inbox.show") == 0 || strcmp(op, "node.info") == 0 ||
	    strcmp(op, "case.show") == 0 || strcmp(op, "messages.list") == 0) {
		/* Never parked: a NULL here would leave the client waiting for good. */
		json_t *r = s->h.read(s->h.arg, op, req);
		return r ? r : tern_api_error(TERN_ENOMEM, "cannot build the answer");
	}
	if (strncmp(op, "upload.", 7) == 0 || strcmp(op, "attachment.get") == 0) {
		json_t *r = s->h.attach(s->h.arg, op, req);
		return r ? r : tern_api_error(TERN_ENOMEM, "cannot build the answer");
	}
	if (strcmp(op, "audit.reanchor") == 0) {
		json_t *r = s->h.reanchor(s->h.arg);
		return r ? r : tern_api_error(TERN_ENOMEM, "cannot build the answer");
	}
	if (strcmp(op, "send") != 0 && strcmp(op, "inbox.ack") != 0 &&
	    strcmp(op, "inbox.next") != 0)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "unknown operation");
	/* These may wait: each holds a parked slot while its handler runs. */
	if ((ci = park(s, conn)) < 0)
		return tern_api_error(TERN_ENOMEM, "too many API clients waiting; try again");
	p = &s->parked[ci];
	if (strcmp(op, "send") == 0) {
		res = s->h.send(s->h.arg, req, ci);
	} else if (strcmp(op, "inbox.ack") == 0) {
		res = s->h.ack(s->h.arg, req, ci);
	} else {
		int rc = TERN_OK;
		json_t *m = s->h.inbox_next(s->h.arg, &rc);
		json_int_t wait = json_integer_value(json_object_get(req, "wait_ms"));
		if (m == NULL && rc != TERN_OK && wait <= 0) {
			res = tern_api_error(rc, "cannot look at the inbox now: %s; try again",
			                     tern_errdetail());
		} else if (m != NULL || wait <= 0) {
			res = json_pack("{s:b, s:o}", "ok", 1, "message", m ? m : json_null());
		} else {
			p->waiting = 2;
			p->deadline = tern_now_ms() + (wait > 3600000 ? 3600000 : wait);
		}
	}
	if (res != NULL)
		return unpark(s, ci, res);
	if (p->waiting == 0)
		p->waiting = 1;
	return NULL;
}

/* A parked client hung up: a wait (inbox.next, a send's final state) is let
 * go at once, its slot free for others; one waiting for this turn's commit
 * is kept, since the commit answers it by slot within the turn. */
static int on_gone(void *arg, int conn)
{
	api_server *s = arg;

	for (int i = 0; i < API_SERVER_MAX_PARKED; i++) {
		struct parked *p = &s->parked[i];
		if (p->conn != conn)
			continue;
		if (p->waiting != 2 && p->waiting != 3)
			return 0;
		memset(p, 0, sizeof(*p));
		p->conn = -1;
		return 1;
	}
	return 0;
}

int api_server_open(const char *path, const api_handlers *handlers, tern_store *store,
                    api_server **out)
{
	tern_apisrv_opts o = {.name = "API",
	                      .max_frame = TERN_API_MAX_FRAME,
	                      .max_conns = TERN_API_MAX_CONNS,
	                      /* Four of the largest requests at once; more wait. */
	                      .max_buffered = 4 * (size_t)TERN_API_MAX_FRAME,
	                      .request_ms = TERN_API_REQUEST_MS,
	                      .reply_ms = TERN_API_REPLY_MS,
	                      .fn_bin = on_binary,
	                      /* a send's files by descriptor (docs/api.md): one per
	                       * attachment; two sends' worth wait at once in all */
	                      .max_fds = TERN_ATTACH_MAX_COUNT,
	                      .max_fds_total = 2 * TERN_ATTACH_MAX_COUNT,
	                      .gone = on_gone};
	api_server *s;
	int fd, rc;

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
		free(s);
		return tern_fail(TERN_ENOMEM, "out of memory for the API server");
	}
	s->h = *handlers;
	s->store = store;
	for (int i = 0; i < API_SERVER_MAX_PARKED; i++)
		s->parked[i].conn = -1;
	if ((rc = tern_api_listen(path, &fd)) != TERN_OK)
		goto fail;
	if ((rc = tern_apisrv_new(fd, &o, on_request, s, &s->srv)) != TERN_OK) {
		unlink(path);
		goto fail;
	}
	*out = s;
	return TERN_OK;
fail:
	free(s->path);
	free(s);
	return rc;
}

void api_server_close(api_server **sp)
{
	api_server *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	tern_apisrv_free(&s->srv);
	unlink(s->path);
	free(s->path);
	free(s);
	*sp = NULL;
}

size_t api_server_pollitems(api_server *s, zmq_pollitem_t *items, size_t cap)
{
	return tern_apisrv_pollitems(s->srv, items, cap);
}

void api_server_serve(api_server *s, const zmq_pollitem_t *items, size_t n, int polled, int64_t now)
{
	tern_apisrv_serve(s->srv, items, n, polled, now);
}

void api_server_reply(api_server *s, int client, json_t *reply)
{
	struct parked *p;

	if (client < 0 || client >= API_SERVER_MAX_PARKED) {
		json_decref(reply);
		return;
	}
	p = &s->parked[client];
	if (p->conn >= 0)
		tern_apisrv_reply(s->srv, p->conn, reply);
	else
		json_decref(reply);
	memset(p, 0, sizeof(*p));
	p->conn = -1;
}

int api_server_take_fds(api_server *s, int client, int *fds, size_t n)
{
	if (client < 0 || client >= API_SERVER_MAX_PARKED || s->parked[client].conn < 0)
		return tern_fail(TERN_EINVAL, "no such API client");
	return tern_apisrv_take_fds(s->srv, s->parked[client].conn, fds, n);
}

void api_server_await_final(api_server *s, int client, const char *msgid, int64_t deadline)
{
	struct parked *p = &s->parked[client];

	p->waiting = 3;
	p->deadline = deadline;
	snprintf(p->msgid, sizeof(p->msgid), "%s", msgid);
}

void api_server_state_changed(api_server *s, const char *msgid)
{
	if (s == NULL)
		return;
	for (int i = 0; i < API_SERVER_MAX_PARKED; i++) {
		struct parked *p = &s->parked[i];
		if (p->conn < 0 || p->waiting != 3 || strcmp(p->msgid, msgid) != 0)
			continue;
		p->look = 1;
		s->sent_changed = 1;
	}
}

/* Clients that sent with "wait_ms" get the final state (delivered, rejected or
 * expired) once it is committed, or the state so far at their deadline. */
static void serve_sent_waiters(api_server *s, int64_t now)
{
	MDB_txn *txn = NULL;
	int look = s->sent_changed;

	s->sent_changed = 0;
	for (int i = 0; i < API_SERVER_MAX_PARKED; i++) {
		struct parked *c = &s->parked[i];
		node_sent_rec *rec = NULL;
		json_t *reply = NULL;
		int final, rc;
		if (c->conn < 0 || c->waiting != 3 || (!(look && c->look) && now < c->deadline))
			continue;
		if (txn == NULL && tern_store_read_begin(s->store, &txn) != TERN_OK) {
			s->sent_changed = look; /* again next round */
			return;
		}
		c->look = 0;
		rc = node_store_sent_rec(txn, s->store, c->msgid, &rec);
		if (rc == TERN_ENOENT || rc == TERN_EMALFORMED) {
			api_server_reply(
			    s, i, tern_api_error(TERN_EIO, "message %s not found", c->msgid));
			continue;
		}
		if (rc == TERN_OK) {
			final = node_sent_state_final(rec->state);
			if (final || now >= c->deadline)
				reply = json_pack("{s:b, s:s, s:s, s:b, s:o, s:o}", "ok", 1,
				                  "message_id", c->msgid, "state",
				                  node_sent_state_name(rec->state), "final", final,
				                  "reason_code", node_rec_text(rec->reason_code),
				                  "reason_text", node_rec_text(rec->reason_text));
			node_rec_sent_free(&rec);
			if (reply != NULL)
				api_server_reply(s, i, reply);
			if (reply != NULL || (!final && now < c->deadline))
				continue;
			rc = TERN_ENOMEM; /* the answer could not be built */
		}
		/* The state not read (no memory, or a failed read) is no answer:
		 * not "unknown", not the state so far. It waits on and is read
		 * again next round; past its deadline it is told to ask again. */
		if (now < c->deadline) {
			c->look = 1;
			s->sent_changed = 1;
			continue;
		}
		api_server_reply(s, i,
		                 tern_api_error(rc,
		                                "message %s was sent; its state could not be read "
		                                "(%s): ask again with \"status\"",
		                                c->msgid, tern_strerror(rc)));
	}
	if (txn)
		mdb_txn_abort(txn);
}

static void serve_inbox_waiters(api_server *s, int64_t now)
{
	json_t *m = NULL;
	int looked = 0, rc = TERN_OK;

	for (int i = 0; i < API_SERVER_MAX_PARKED; i++) {
		struct parked *c = &s->parked[i];
		if (c->conn < 0 || c->waiting != 2)
			continue;
		if (!looked) {
			m = s->h.inbox_next(s->h.arg, &rc);
			looked = 1;
		}
		if (m != NULL)
			api_server_reply(s, i, json_pack("{s:b, s:O}", "ok", 1, "message", m));
		else if (now >= c->deadline && rc != TERN_OK)
			/* The last look could not be made: not "none". */
			api_server_reply(
			    s, i, tern_api_error(rc, "cannot look at the inbox now; try again"));
		else if (now >= c->deadline)
			api_server_reply(s, i, json_pack("{s:b, s:n}", "ok", 1, "message"));
	}
	json_decref(m);
}

void api_server_serve_waiters(api_server *s, int64_t now)
{
	serve_inbox_waiters(s, now);
	serve_sent_waiters(s, now);
}

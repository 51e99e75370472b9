/* Sealing a send's attachments (docs/attachments.md) on a thread of its
 * own: a 2 GiB upload takes seconds to read, hash, seal and sync, and the
 * node's loop must go on meanwhile (other clients, the broker, transfers).
 *
 * The loop checks what it can at once (one upload per declaration, sizes,
 * limits), opens the uploads, chooses the message id and content key, and
 * queues a job; the sending client stays parked. The thread seals each
 * upload into spool/out, syncs it and checks its SHA-256 against the
 * declaration, then queues the job as done and wakes the loop through an
 * eventfd. The loop finishes the send (node_send_finish: the envelope, the
 * workflow, the outbox entry), or answers the refusal.
 *
 * The thread touches only the job (its descriptors, its prep) and the spool
 * files it makes: never the store, the batch or the API server.
 *
 * The thread and its queue are libtern's workq (workq.h).
 *
 * Touches: spool/out, n->xseal. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "pbuf.h"
#include "util.h"
#include "workq.h"

/* Sends waiting to be sealed at once; one more is told to try again. */
#define XSEAL_QUEUE_MAX 16

struct job {
	struct tern_workq_item item; /* first: the queue's link */
	struct job *out_next;        /* the loop's list of jobs out */
	struct node_send s;
	struct node_xprep prep;
	int fds[TERN_ATTACH_MAX_COUNT];
	char sha[TERN_ATTACH_MAX_COUNT][65]; /* as declared */
	char dir[PATH_MAX];                  /* spool/out */
	int rc;
	json_t *res; /* the refusal, when rc != TERN_OK */
};

/* The sealing thread (libtern's workq) and the jobs handed to it and not
 * taken back: the loop's own list, which the thread never touches, so that
 * a send can be told it is being sealed without a lock (their client_ref
 * and msgid are set before the push and never change). */
struct xseal {
	tern_workq *q;
	struct job *out;
};

void node_send_free(struct node_send *s)
{
	for (size_t i = 0; s->rcpts && i < s->np; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	free(s->reply_to);
	free(s->client_ref);
	free(s->body);
	memset(s, 0, sizeof(*s));
}

void node_xprep_finish(node *n, struct node_xprep *p, struct out *o)
{
	if (o != NULL) {
		o->atts = p->atts;
		o->natts = p->n;
		o->leaves = p->leaves;
		o->uploads = p->uploads;
		p->atts = NULL;
		p->leaves = NULL;
		p->uploads = NULL;
	} else {
		char path[PATH_MAX];
		for (size_t i = 0; i < p->n; i++) {
			node_spool_path(n, "out", p->msgid, i, path, sizeof(path));
			unlink(path);
		}
		for (size_t i = 0; p->leaves && i < p->n; i++)
			free(p->leaves[i]);
		free(p->leaves);
		free(p->atts);
		free(p->uploads);
	}
	free(p->seals);
	free(p->sealp);
	sodium_memzero(p->key, sizeof(p->key));
	memset(p, 0, sizeof(*p));
}

/* --- on the sealing thread ------------------------------------------------------ */

static void seal_job(struct job *j)
{
	struct node_xprep *p = &j->prep;

	for (size_t i = 0; i < p->n; i++) {
		char path[PATH_MAX + 64], hex[65];
		uint8_t key[32];
		int out, rc;
		snprintf(path, sizeof(path), "%s/%s.%zu", j->dir, p->msgid, i);
		if ((out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
			j->rc = TERN_EIO;
			j->res = tern_api_error(TERN_EIO, "cannot make the spool file: %s",
			                        strerror(errno));
			return;
		}
		rc = tern_attach_key(p->key, (uint32_t)i, key);
		if (rc == TERN_OK)
			rc = tern_attach_seal_fd(j->fds[i], p->atts[i].size, p->atts[i].chunk_size,
			                         key, p->msgid, (uint32_t)i, out, &p->seals[i],
			                         p->atts[i].root, p->atts[i].sha256, &p->leaves[i]);
		sodium_memzero(key, sizeof(key));
		if (rc == TERN_OK && fdatasync(out) != 0)
			rc = tern_fail(TERN_EIO, "sync: %s", strerror(errno));
		close(out);
		if (rc != TERN_OK) {
			int full = errno == ENOSPC || errno == EDQUOT;
			j->rc = rc;
			j->res =
			    full ? tern_api_refusal(TERN_REASON_NO_SPACE,
			                            "the node's disk is full: nothing was sent")
			         : tern_api_error(rc, "attachments[%zu]: %s", i, tern_errdetail());
			return;
		}
		p->sealp[i] = &p->seals[i];
		sodium_bin2hex(hex, sizeof(hex), p->atts[i].sha256, 32);
		if (strcmp(hex, j->sha[i]) != 0) {
			j->rc = TERN_EINVALID;
			j->res =
			    tern_api_refusal(TERN_REASON_ATTACHMENT_MISMATCH,
			                     "attachments[%zu]: the upload's SHA-256 is %s, the "
			                     "body declares %s",
			                     i, hex, j->sha[i]);
			return;
		}
	}
	{
		/* The new files' names, durable before the outbox commit names them. */
		int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	j->rc = TERN_OK;
}

/* The niceness of the sealing threads (the thread's helper, which the seal
 * starts, takes it from it): a seal keeps two cores busy for seconds, and
 * the loops that carry ordinary messages (this node's, the broker's, the
 * other nodes' on the same machine) must get a core first. Not SCHED_IDLE:
 * on a machine busy with other work a seal would then hardly move. */
#define SEAL_NICE 10

static void run(struct tern_workq_item *it, void *arg)
{
	(void)arg;
	seal_job((struct job *)it);
}

/* --- on the loop ---------------------------------------------------------------- */

static void job_free(node *n, struct job *j)
{
	for (size_t i = 0; i < TERN_ATTACH_MAX_COUNT; i++)
		if (j->fds[i] >= 0)
			close(j->fds[i]); /* an upload, or a passed file found on a local disk */
	node_xprep_finish(n, &j->prep, NULL);
	node_send_free(&j->s);
	json_decref(j->res);
	free(j);
}

static int xseal_open(node *n)
{
	struct xseal *x;
	int rc;

	if (n->xseal)
		return TERN_OK;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return TERN_ENOMEM;
	/* Named, so that top -H and the benchmarks tell its CPU from the loop's. */
	if ((rc = tern_workq_new("tern-seal", SEAL_NICE, run, NULL, &x->q)) != TERN_OK) {
		free(x);
		return rc;
	}
	n->xseal = x;
	return TERN_OK;
}

/* Takes j off the loop's list of jobs out. */
static void out_remove(struct xseal *x, const struct job *j)
{
	for (struct job **pp = &x->out; *pp; pp = &(*pp)->out_next)
		if (*pp == j) {
			*pp = j->out_next;
			return;
		}
}

int node_xseal_start(node *n, struct node_send *s, const ProtobufCMessage *body,
                     const char *const *uploads, size_t nup, int *fds, size_t nfds,
                     json_t **res)
{
	size_t na;
	Tern__V1__Attachment **a = node_body_attachments(body, &na);
	struct job *j = NULL;
	uint64_t total = 0;
	int rc;

	*res = NULL;
	if (nfds > 0)
		nup = nfds;
	if (na == 0 && nup == 0)
		return TERN_ENOENT;
	if (na != nup) {
		*res = tern_api_error(TERN_EINVAL,
		                      "the body declares %zu attachment(s) and the send names %zu "
		                      "upload(s): give one upload per declared attachment, in "
		                      "the same order (tern send --attach does it for you)",
		                      na, nup);
		return TERN_EINVAL;
	}
	if (na > TERN_ATTACH_MAX_COUNT) {
		*res = tern_api_refusal(TERN_REASON_ATTACHMENT_TOO_LARGE,
		                        "%zu attachments: a message carries at most %d", na,
		                        TERN_ATTACH_MAX_COUNT);
		return TERN_ETOOBIG;
	}
	if ((rc = xseal_open(n)) != TERN_OK || (rc = node_spool_dirs(n)) != TERN_OK) {
		*res = tern_api_error(rc, "cannot seal the attachments: %s", tern_errdetail());
		return rc;
	}
	if (tern_workq_out(n->xseal->q) >= XSEAL_QUEUE_MAX) {
		*res = tern_api_error(TERN_ENOMEM,
		                      "%d sends with attachments are being sealed: try again",
		                      XSEAL_QUEUE_MAX);
		return TERN_ENOMEM;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		*res = tern_api_error(TERN_ENOMEM, "out of memory");
		return TERN_ENOMEM;
	}
	for (size_t i = 0; i < TERN_ATTACH_MAX_COUNT; i++)
		j->fds[i] = -1;
	struct node_xprep *p = &j->prep;
	p->seals = calloc(na, sizeof(*p->seals));
	p->sealp = calloc(na, sizeof(*p->sealp));
	p->atts = calloc(na, sizeof(*p->atts));
	p->leaves = calloc(na, sizeof(*p->leaves));
	p->uploads = calloc(na, sizeof(*p->uploads));
	if (!p->seals || !p->sealp || !p->atts || !p->leaves || !p->uploads ||
	    (rc = tern_uuid_v7(p->msgid)) != TERN_OK) {
		*res = tern_api_error(TERN_ENOMEM, "out of memory");
		rc = TERN_ENOMEM;
		goto fail;
	}
	randombytes_buf(p->key, sizeof(p->key));
	for (size_t i = 0; i < na; i++) {
		uint64_t size;
		if (nfds > 0) {
			/* The client's own file (docs/api.md, "Files by descriptor"):
			 * sealed from where it is, no copy in uploads/. */
			if ((rc = tern_attach_fd_check(fds[i], &size)) != TERN_OK) {
				*res = tern_api_error(rc,
				                      "attachments[%zu]: the file passed cannot be "
				                      "sealed from: %s; send it as an upload",
				                      i, tern_errdetail());
				goto fail;
			}
			j->fds[i] = fds[i];
			fds[i] = -1;
		} else if ((rc = node_upload_open(n, uploads[i], &j->fds[i], &size)) != TERN_OK) {
			*res = tern_api_error(rc, "attachments[%zu]: %s", i, tern_errdetail());
			goto fail;
		}
		p->n = i + 1; /* from here its spool file is the job's to remove */
		/* "": no upload to forget once the send is stored */
		snprintf(p->uploads[i], sizeof(p->uploads[i]), "%s", nfds > 0 ? "" : uploads[i]);
		snprintf(j->sha[i], sizeof(j->sha[i]), "%s", a[i]->sha256);
		total += size;
		if (size != a[i]->size) {
			*res = tern_api_refusal(
			    TERN_REASON_ATTACHMENT_MISMATCH,
			    "attachments[%zu]: the upload holds %llu bytes, the "
			    "body declares %llu",
			    i, (unsigned long long)size, (unsigned long long)a[i]->size);
			rc = TERN_EINVALID;
			goto fail;
		}
		if ((int64_t)size > n->att_max || (int64_t)total > n->att_total) {
			*res = tern_api_refusal(
			    TERN_REASON_ATTACHMENT_TOO_LARGE,
			    "attachments[%zu]: over [limits] max_attachment_size (%lld) or "
			    "max_message_attachments (%lld)",
			    i, (long long)n->att_max, (long long)n->att_total);
			rc = TERN_ETOOBIG;
			goto fail;
		}
		p->atts[i].size = size;
		p->atts[i].chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
	}
	snprintf(j->dir, sizeof(j->dir), "%s/spool/out", n->data_dir);
	j->s = *s;
	memset(s, 0, sizeof(*s));
	j->out_next = n->xseal->out;
	n->xseal->out = j;
	tern_workq_push(n->xseal->q, &j->item);
	log_info("sealing %zu attachment(s) of %s (%llu bytes)", na, p->msgid,
	         (unsigned long long)total);
	return TERN_OK;
fail:
	job_free(n, j);
	return rc;
}

int node_xseal_fd(const node *n)
{
	return n->xseal ? tern_workq_fd(n->xseal->q) : -1;
}

void node_xseal_done(node *n)
{
	struct tern_workq_item *done;

	if (n->xseal == NULL)
		return;
	done = tern_workq_take(n->xseal->q);
	while (done) {
		struct job *j = (struct job *)done;
		ProtobufCMessage *body = NULL;
		json_t *res = NULL;
		done = done->next;
		out_remove(n->xseal, j);
		for (size_t i = 0; i < TERN_ATTACH_MAX_COUNT; i++)
			if (j->fds[i] >= 0) {
				close(j->fds[i]);
				j->fds[i] = -1;
			}
		if (j->rc != TERN_OK) {
			log_warnx("sealing %s's attachments failed: %s", j->prep.msgid,
			          json_string_value(json_object_get(j->res, "error")));
			res = json_incref(j->res);
		} else if (tern_pb_unpack(j->s.t->desc, j->s.body, j->s.blen, j->s.blen, &body) !=
		           TERN_OK) {
			res = tern_api_error(TERN_ENOMEM, "cannot decode the body again");
		} else {
			res = node_send_finish(n, &j->s, body, &j->prep);
		}
		tern_pb_free(&body);
		if (res)
			api_server_reply(n->api, j->s.client, res);
		job_free(n, j);
	}
}

int node_xseal_has_ref(const node *n, const char *client_ref)
{
	if (n->xseal == NULL || client_ref == NULL)
		return 0;
	for (const struct job *j = n->xseal->out; j; j = j->out_next)
		if (j->s.client_ref && strcmp(j->s.client_ref, client_ref) == 0)
			return 1;
	return 0;
}

int node_xseal_has_msgid(const node *n, const char *msgid)
{
	if (n->xseal == NULL)
		return 0;
	for (const struct job *j = n->xseal->out; j; j = j->out_next)
		if (strcmp(j->prep.msgid, msgid) == 0)
			return 1;
	return 0;
}

void node_xseal_stop(node *n)
{
	struct tern_workq_item *left;

	if (n->xseal == NULL)
		return;
	/* The seal under way ends; the jobs not answered are dropped: their
	 * clients get no answer and send again (nothing of theirs was
	 * stored). */
	tern_workq_free(&n->xseal->q, &left);
	while (left) {
		struct job *j = (struct job *)left;
		left = left->next;
		job_free(n, j);
	}
	free(n->xseal);
	n->xseal = NULL;
}

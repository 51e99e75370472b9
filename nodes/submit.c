/* Submission: making outbox entries (sealed now, signed at the commit with
 * everything else the commit sends), the broker's answers to submissions,
 * and the pump that submits outbox entries in order within the session's
 * window.
 *
 * It may add to the batch's outs and results; the outbox itself is written
 * by commit.c and read here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <tern/error.h>

#include "node_int.h"
#include "util.h"

const char *node_field_string(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *fd =
	    protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);

	if (fd == NULL || fd->type != PROTOBUF_C_TYPE_STRING ||
	    fd->label == PROTOBUF_C_LABEL_REPEATED)
		return "";
	return *(const char *const *)((const char *)m + fd->offset);
}

/* Seals body for rcpts and fills o (everything the outbox write needs). On
 * failure o holds nothing to free. */
int node_make_out(node *n, const tern_msgtype *t, const char *const *rcpts, size_t nr,
                  const char *case_id, const char *in_reply_to, int64_t expires_at,
                  const uint8_t *body, size_t blen, const struct node_xprep *prep, struct out *o)
{
	tern_seal_params p = {.sender = n->id.id,
	                      .sign_key = n->id.sign,
	                      .recipients = rcpts,
	                      .n_recipients = nr,
	                      .type = t->type,
	                      .case_id = case_id,
	                      .in_reply_to = in_reply_to,
	                      .body = body,
	                      .body_len = blen,
	                      .expires_at = expires_at,
	                      .cache = n->seals};
	int rc;

	if (prep && prep->n) {
		p.message_id = prep->msgid;
		p.content_key = prep->key;
		p.attachments = (const Tern__V1__AttachmentSeal *const *)prep->sealp;
		p.n_attachments = prep->n;
	}
	memset(o, 0, sizeof(*o));
	o->client = -1;
	p.created_at = tern_now_ms();
	/* Signed at the commit, with everything else the commit sends. */
	if ((rc = tern_envelope_seal_unsigned(&p, n->id.dir, &o->sealed, o->msgid)) != TERN_OK)
		return rc;
	snprintf(o->type, sizeof(o->type), "%s", t->name);
	snprintf(o->case_id, sizeof(o->case_id), "%s", case_id ? case_id : "");
	o->created_at = p.created_at;
	if ((o->rcpts = calloc(nr, sizeof(char *))) == NULL)
		goto nomem;
	for (; o->nrcpts < nr; o->nrcpts++)
		if ((o->rcpts[o->nrcpts] = strdup(rcpts[o->nrcpts])) == NULL)
			goto nomem;
	return TERN_OK;
nomem:
	node_out_free(o);
	return tern_fail(TERN_ENOMEM, "out of memory sealing %s", o->msgid);
}

/* Frees what o holds and leaves it empty (freeing it again is harmless). */
void node_out_free(struct out *o)
{
	tern_sealed_free(&o->sealed);
	free(o->env);
	o->env = NULL;
	for (size_t i = 0; i < o->nrcpts; i++)
		free(o->rcpts[i]);
	free(o->rcpts);
	o->rcpts = NULL;
	o->nrcpts = 0;
	for (size_t i = 0; o->leaves && i < o->natts; i++)
		free(o->leaves[i]);
	free(o->leaves);
	free(o->atts);
	free(o->uploads);
	o->leaves = NULL;
	o->atts = NULL;
	o->uploads = NULL;
	o->natts = 0;
}

struct out *node_batch_out(node *n)
{
	struct batch *b = &n->batch;

	if (TERN_GROW(b->outs, b->nouts, b->capouts))
		return NULL;
	return &b->outs[b->nouts++];
}

static int submit_visit(uint64_t seq, const char *msgid, const uint8_t *env, size_t len, void *arg)
{
	node *n = arg;
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Submit s = TERN__V1__SUBMIT__INIT;

	(void)msgid;
	if (n->inflight >= (uint32_t)n->window)
		return 1;
	s.envelope.data = (uint8_t *)env;
	s.envelope.len = len;
	s.session = n->session;
	s.index = n->sub_index + 1;
	f.body_case = TERN__V1__FRAME__BODY_SUBMIT;
	f.submit = &s;
	if (tern_hop_send(n->dealer, NULL, 0, &f, ZMQ_DONTWAIT) != TERN_OK)
		return 1;
	n->last_tx = tern_now_ms();
	n->inflight++;
	n->sub_index++;
	n->submit_next = seq + 1;
	return 0;
}

void node_submit_pump(node *n)
{
	MDB_txn *txn;

	if (!n->connected || n->inflight >= (uint32_t)n->window)
		return;
	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	node_store_outbox_scan(txn, n->store, n->submit_next, submit_visit, n);
	mdb_txn_abort(txn);
}

void node_submit_result(node *n, const Tern__V1__SubmitResult *sr)
{
	struct batch *b = &n->batch;
	struct result *r;

	if (TERN_GROW(b->results, b->nresults, b->capresults))
		return;
	if (b->nresults == 0)
		b->results_since = tern_now_ms();
	r = &b->results[b->nresults++];
	snprintf(r->msgid, sizeof(r->msgid), "%s", sr->message_id);
	r->accepted = sr->accepted;
	if (sr->accepted)
		node_xout_accepted(n, sr->message_id);
	r->n = sr->accepted_n;
	/* An answer to an earlier session's submission frees no slot of the
	 * current window. */
	r->current = sr->session == n->session;
	snprintf(r->code, sizeof(r->code), "%s", sr->reason_code);
	snprintf(r->text, sizeof(r->text), "%s", sr->reason_text);
}

/* The local API's operations (docs/api.md): send and inbox.ack here, the
 * reads in api_reads.c. api_server.c owns the socket and the parked clients
 * and calls these (node_api_handlers).
 *
 * A send or an acknowledgement is checked here and added to the batch; it
 * is answered after the commit (commit.c).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/json.h>
#include <tern/reason.h>
#include <tern/workflow.h>
#include <tern/uuid.h>
#include <tern/validate.h>

#include "fdclose.h"
#include "node_int.h"
#include "pbuf.h"
#include "util.h"

/* Ten years: far past any delivery, far from an overflow in milliseconds. */
#define MAX_TTL_S (3650 * 86400)

/* A send as either form of the API gives it (JSON or binary), checked the
 * same way from here on. Strings are borrowed from the request. */
struct send_req {
	const tern_msgtype *t;
	const char *rcpts[64];
	size_t np;
	const char *reply_to, *client_ref; /* NULL: none */
	int64_t ttl_s, wait_ms;
	/* one upload per declared attachment (docs/attachments.md) */
	const char *uploads[TERN_ATTACH_MAX_COUNT];
	size_t nup;
	int bad_uploads; /* not a list of at most TERN_ATTACH_MAX_COUNT strings */
	/* or the files themselves, passed with the request ("descriptors":
	 * docs/api.md, "Files by descriptor"); -1 once the sealing took one */
	int *fds;
	size_t nfds;
};

/* The checks before the body: type, recipients, client_ref. NULL when the
 * send may go on; else the answer (a refusal, or the id a client_ref already
 * has). */
static json_t *send_check(node *n, const struct send_req *r)
{
	if (r->t == NULL || r->t->type == TERN__V1__MESSAGE_TYPE__RECEIPT) {
		char names[512];
		tern_msgtype_names(names, sizeof(names), ", ", 1);
		return tern_api_error(TERN_EINVAL, "type must be one of: %s", names);
	}
	if (r->np == 0)
		return tern_api_error(TERN_EINVAL, "'to' must list 1 to 64 node ids");
	if (r->bad_uploads)
		return tern_api_error(TERN_EINVAL, "'uploads' must list at most %d upload ids",
		                      TERN_ATTACH_MAX_COUNT);
	if (r->nup > 0 && r->nfds > 0)
		return tern_api_error(TERN_EINVAL,
		                      "give the files either as 'uploads' or as 'descriptors', "
		                      "not both");
	if (r->ttl_s < 0 || r->ttl_s > MAX_TTL_S)
		return tern_api_error(
		    TERN_EINVAL, "ttl_seconds must be 0 (the broker's default) to %d", MAX_TTL_S);
	if (!tern_workflow_recipients_ok(r->t, r->np))
		return tern_api_refusal(TERN_REASON_TOO_MANY_RECIPIENTS,
		                        "a %s goes to one State at a time: send one referral per "
		                        "State, each its own thread (docs/messages.md, \"The "
		                        "workflow\")",
		                        r->t->name);
	for (size_t i = 0; i < r->np; i++) {
		const tern_member *m;
		const char *rc = r->rcpts[i];
		/* Named, so that of several recipients the sender knows which one
		 * to correct: a node id is no personal data. */
		if (rc == NULL)
			return tern_api_refusal(TERN_REASON_UNKNOWN_RECIPIENT,
			                        "recipient %zu is not a node id", i + 1);
		if (tern_directory_find(n->id.dir, rc, &m) != TERN_OK ||
		    (m->roles & TERN_ROLE_BROKER))
			return tern_api_refusal(
			    TERN_REASON_UNKNOWN_RECIPIENT,
			    "recipient %s is not a member node of the federation", rc);
		if (!tern_workflow_recipient_ok(r->t, m->roles)) {
			/* Built apart: a json_pack that failed would be NULL, which
			 * here means "go on". */
			char roles[64], why[256];
			tern_roles_format(m->roles, roles, sizeof(roles));
			snprintf(why, sizeof(why),
			         "%s (roles: %s) may not receive %s (docs/messages.md, \"The "
			         "workflow\")",
			         rc, roles[0] ? roles : "none", r->t->name);
			return tern_api_refusal(TERN_REASON_WRONG_RECIPIENT_ROLE, "%s", why);
		}
		if (m->revoked) /* its sealing key may be in other hands */
			return json_pack("{s:b, s:s, s:s+}", "ok", 0, "error",
			                 tern_reason_code(TERN_REASON_RECIPIENT_REVOKED), "message",
			                 rc,
			                 " is revoked by the federation CRL: nothing is "
			                 "sealed to it");
	}
	if (r->client_ref) {
		if (strlen(r->client_ref) > 128)
			return tern_api_error(TERN_EINVAL,
			                      "client_ref is longer than 128 characters");
		for (size_t k = 0; k < n->batch.nouts; k++)
			if (strcmp(n->batch.outs[k].client_ref, r->client_ref) == 0)
				return tern_api_error(TERN_EEXIST,
				                      "a send with this client_ref is in progress");
		if (node_xseal_has_ref(n, r->client_ref))
			return tern_api_error(TERN_EEXIST,
			                      "a send with this client_ref is in progress (its "
			                      "attachments are being sealed)");
	}
	return NULL;
}

/* What a send says, as 32 bytes: its type, recipients, reference, ttl and
 * encoded body (canonical, so the JSON and binary forms agree). A retry
 * with the same client_ref must say the same; uploads are left out, as a
 * retry may have uploaded its files again (the body declares their
 * SHA-256). */
static void send_fingerprint(const struct send_req *r, const uint8_t *packed, size_t plen,
                             uint8_t fp[32])
{
	crypto_hash_sha256_state st;
	char num[24];
	const uint8_t zero = 0;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)r->t->name, strlen(r->t->name) + 1);
	for (size_t i = 0; i < r->np; i++)
		crypto_hash_sha256_update(&st, (const uint8_t *)r->rcpts[i],
		                          strlen(r->rcpts[i]) + 1);
	crypto_hash_sha256_update(&st, &zero, 1);
	/* Each field ends in a NUL: none can lend characters to the next. */
	if (r->reply_to)
		crypto_hash_sha256_update(&st, (const uint8_t *)r->reply_to, strlen(r->reply_to));
	crypto_hash_sha256_update(&st, &zero, 1);
	snprintf(num, sizeof(num), "%lld", (long long)r->ttl_s);
	crypto_hash_sha256_update(&st, (const uint8_t *)num, strlen(num) + 1);
	crypto_hash_sha256_update(&st, packed, plen);
	crypto_hash_sha256_final(&st, fp);
}

/* A client_ref already used: the first message's id when the send says the
 * same (a retry), a 409 naming it when it says something else; NULL when the
 * key is new. */
static json_t *send_ref_known(node *n, const struct send_req *r, const uint8_t fp[32])
{
	MDB_txn *txn;
	char existing[37];
	uint8_t had[32];
	int has_fp = 0, rc;
	json_t *res;

	if (r->client_ref == NULL || tern_store_read_begin(n->store, &txn) != TERN_OK)
		return NULL;
	rc = node_store_client_ref(txn, n->store, r->client_ref, existing, had, &has_fp);
	mdb_txn_abort(txn);
	if (rc != TERN_OK)
		return NULL;
	/* a key recorded before fingerprints were kept is taken as a retry */
	if (!has_fp || sodium_memcmp(had, fp, 32) == 0)
		return json_pack("{s:b, s:s, s:b}", "ok", 1, "message_id", existing, "duplicate",
		                 1);
	res = tern_api_error(TERN_EEXIST,
	                     "this client_ref already made message %s, with another type, "
	                     "recipients, reference, ttl or body: give a new client_ref for a new "
	                     "message",
	                     existing);
	if (res)
		json_object_set_new(res, "message_id", json_string(existing));
	return res;
}

/* A send's request, copied to outlive it (its attachments are sealed on
 * another thread). */
static int send_copy(const struct send_req *r, const uint8_t *packed, size_t plen, int ci,
                     struct node_send *s)
{
	memset(s, 0, sizeof(*s));
	s->t = r->t;
	s->ttl_s = r->ttl_s;
	s->wait_ms = r->wait_ms;
	s->client = ci;
	if ((s->rcpts = calloc(r->np, sizeof(char *))) == NULL)
		goto nomem;
	for (; s->np < r->np; s->np++)
		if ((s->rcpts[s->np] = strdup(r->rcpts[s->np])) == NULL)
			goto nomem;
	if ((r->reply_to && (s->reply_to = strdup(r->reply_to)) == NULL) ||
	    (r->client_ref && (s->client_ref = strdup(r->client_ref)) == NULL) ||
	    (s->body = malloc(plen + 1)) == NULL)
		goto nomem;
	memcpy(s->body, packed, plen);
	s->blen = plen;
	return TERN_OK;
nomem:
	node_send_free(s);
	return TERN_ENOMEM;
}

/* The rest of a checked send, with its decoded body (borrowed): validation,
 * then either the outbox entry in the batch, or, with attachments, their
 * sealing (xfer_seal.c), after which node_send_finish goes on. NULL:
 * parked until the commit. */
static json_t *send_body(node *n, const struct send_req *req, const ProtobufCMessage *body, int ci)
{
	struct send_req rr = *req, *r = &rr;
	tern_violations viol;
	uint8_t *packed = NULL, fp[32];
	size_t plen;
	struct node_send s;
	json_t *res = NULL;
	int rc;

	if ((rc = tern_validate(body, tern_now_ms(), &viol)) == TERN_ENOMEM)
		return tern_api_error(rc, "out of memory checking the body; try again");
	if (rc != TERN_OK) {
		json_t *arr = json_array();
		for (size_t k = 0; k < viol.count; k++)
			json_array_append_new(arr, json_pack("{s:s, s:s}", "path", viol.v[k].path,
			                                     "rule", viol.v[k].rule));
		return json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "error",
		                 tern_reason_code(TERN_REASON_INVALID_BODY), "message",
		                 "the body breaks validation rules", "violations", arr);
	}
	/* A message that answers another names it in its body (its reference,
	 * docs/messages.md "The workflow"): in_reply_to is that id, taken from
	 * the body when the request gives none, and refused when it gives
	 * another. */
	if (r->t->ref_field) {
		const char *cited = node_field_string(body, r->t->ref_field);
		if (cited && *cited && r->reply_to && strcmp(cited, r->reply_to) != 0)
			return tern_api_error(
			    TERN_EINVAL,
			    "in_reply_to %s is not the message the body's %s names "
			    "(%s): a %s answers the message its reference names; "
			    "give that id, or leave in_reply_to out",
			    r->reply_to, r->t->ref_field, cited, r->t->name);
		if (cited && *cited && r->reply_to == NULL)
			r->reply_to = cited;
	}
	if ((rc = tern_pb_pack(body, &packed, &plen)) != TERN_OK)
		return tern_api_error(rc, "cannot encode the body");
	send_fingerprint(r, packed, plen, fp);
	if ((res = send_ref_known(n, r, fp)) != NULL) {
		free(packed);
		return res;
	}
	if (send_copy(r, packed, plen, ci, &s) != TERN_OK) {
		free(packed);
		return tern_api_error(TERN_ENOMEM, "out of memory");
	}
	free(packed);
	memcpy(s.fp, fp, sizeof(fp));
	rc = node_xseal_start(n, &s, body, r->uploads, r->nup, r->fds, r->nfds, &res);
	if (rc == TERN_ENOENT) /* no attachments: on at once */
		res = node_send_finish(n, &s, body, NULL);
	node_send_free(&s); /* empty if the sealing took it */
	return res;
}

/* A case update goes to the State its referral went to, while the
 * directory admits it: the State is told of every update of the case it is
 * considering, and one sent to IOM alone would leave IOM a trace of the
 * thread that names no State (docs/messages.md). A State revoked, removed or
 * lapsed since is not asked for (a withdrawal must still reach IOM). Sets
 * v->reason when the send is refused; TERN_ENOMEM. */
static int state_told(node *n, struct node_wf_view *w, const struct node_send *s, const char *refid,
                      tern_wf_verdict *v)
{
	tern_wf_record *ref = NULL;
	int rc;

	if (refid == NULL || refid[0] == '\0')
		return TERN_OK;
	if ((rc = node_wf_lookup(w, refid, &ref)) != TERN_OK)
		return rc == TERN_ENOENT ? TERN_OK : rc;
	for (size_t i = 0; ref && !ref->stub && i < ref->n_to; i++) {
		const tern_member *mb;
		int told = 0;
		for (size_t k = 0; k < s->np && !told; k++)
			told = strcmp(s->rcpts[k], ref->to[i]) == 0;
		if (told || tern_directory_find(n->id.dir, ref->to[i], &mb) != TERN_OK ||
		    mb->revoked || tern_member_expired(mb, tern_now_ms() / 1000))
			continue;
		v->reason = TERN_REASON_STATE_NOT_TOLD;
		snprintf(v->text, sizeof(v->text),
		         "a case update on referral %s goes to %s, the State it was referred to, "
		         "too",
		         refid, ref->to[i]);
		break;
	}
	tern_wf_record_free(&ref);
	return TERN_OK;
}

/* 1 when msgid is held here (stored, or this turn's batch holds it). */
static int held_here(const struct node_wf_view *w, const char *msgid)
{
	for (size_t i = 0; w->j->batch && i < w->j->batch->ndins; i++)
		if (w->j->batch->dins[i].kind == DIN_HOLD &&
		    strcmp(w->j->batch->dins[i].msgid, msgid) == 0)
			return 1;
	return node_store_held_has(w->txn, w->j->store, msgid);
}

/* Sets v->reason when a booking citing decision (on the thread root) must
 * wait: the decision is not here yet, or the case is booked on another
 * referral (node_case_booked_on). TERN_ENOMEM, or the store's error. */
static int booked_elsewhere(struct node_wf_view *w, const char *case_id, const char *decision,
                            const char *root, tern_wf_verdict *v)
{
	char other[TERN_WF_ID_MAX + 1];
	tern_wf_record *dec = NULL;
	tern_case_state state;
	int rc;

	/* A booking on a decision this node does not hold would be tied to no
	 * referral here, and a second booking of the family elsewhere would go
	 * through (a review's finding): it waits for the decision. The text
	 * says which of the ways not to hold it this is, as each asks the
	 * caseworker for something else. */
	if ((rc = node_wf_lookup(w, decision, &dec)) == TERN_ENOENT ||
	    (rc == TERN_OK && dec->stub)) {
		int stub = rc == TERN_OK, refused = 0;
		char code[64] = "";
		tern_wf_record_free(&dec);
		if (!stub &&
		    (rc = node_refused_here(w->j, w->txn, decision, &refused, code)) != TERN_OK)
			return rc;
		v->reason = TERN_REASON_DECISION_NOT_RECEIVED;
		if (stub)
			snprintf(v->text, sizeof(v->text),
			         "%s is a referral this node traced, not a decision: a booking "
			         "cites the State's decision that accepted the case",
			         decision);
		else if (refused)
			snprintf(
			    v->text, sizeof(v->text),
			    "decision %s reached this node and was refused (%s): this node "
			    "books travel only on a decision it accepted, to hold the family to "
			    "one referral (tern status %s says why)",
			    decision, code[0] ? code : "refused", decision);
		else if (held_here(w, decision))
			snprintf(v->text, sizeof(v->text),
			         "decision %s is held here, not judged yet: this node books travel "
			         "only on a decision it accepted, to hold the family to one "
			         "referral; wait for it",
			         decision);
		else
			snprintf(
			    v->text, sizeof(v->text),
			    "decision %s has not reached this node: it books travel only on a "
			    "decision it accepted, to hold the family to one referral; wait for "
			    "it, or ask the State to send it here too",
			    decision);
		return TERN_OK;
	}
	tern_wf_record_free(&dec);
	if (rc != TERN_OK)
		return rc;
	if ((rc = node_case_booked_on(w, case_id, root, other, &state)) != TERN_OK)
		return rc;
	if (other[0]) {
		v->reason = TERN_REASON_CASE_BOOKED_ELSEWHERE;
		/* What the caseworker can do: a cancellation is allowed while
		 * booked or accepted, not once the family travelled. */
		if (state == TERN_CASE_BOOKED)
			snprintf(
			    v->text, sizeof(v->text),
			    "case %.64s is booked on referral %s: cancel that travel (a travel "
			    "confirmation CANCELLED) before booking it on another",
			    case_id, other);
		else if (state == TERN_CASE_ACCEPTED)
			snprintf(
			    v->text, sizeof(v->text),
			    "case %.64s has travel booked on referral %s, accepted again since: "
			    "cancel it (a travel confirmation CANCELLED citing the new decision) "
			    "first",
			    case_id, other);
		else
			snprintf(v->text, sizeof(v->text),
			         "case %.64s is %s on referral %s: the family travelled on that "
			         "referral, and is booked on no other",
			         case_id, tern_case_state_name(state), other);
	}
	return TERN_OK;
}

json_t *node_send_finish(node *n, const struct node_send *s, const ProtobufCMessage *body,
                         struct node_xprep *prep)
{
	struct out o, *slot = NULL;
	json_t *res = NULL;
	int rc;

	rc = node_make_out(n, s->t, (const char *const *)s->rcpts, s->np,
	                   node_field_string(body, "case_id"), s->reply_to,
	                   s->ttl_s > 0 ? tern_now_ms() + s->ttl_s * 1000 : 0, s->body, s->blen,
	                   prep, &o);
	if (rc != TERN_OK) {
		if (prep)
			node_xprep_finish(n, prep, NULL);
		return tern_api_error(rc, "cannot seal: %s", tern_errdetail());
	}
	if (prep)
		node_xprep_finish(n, prep, &o);
	/* Its slot first: a workflow record kept for a send that then could not
	 * be queued would be written all the same, a state the case never had. */
	if ((slot = node_batch_out(n)) == NULL) {
		res = tern_api_error(TERN_ENOMEM, "out of memory");
		goto refuse;
	}
	/* The workflow, against what this node holds of the case: a caseworker
	 * hears at once what each recipient would refuse. */
	{
		node_judge j;
		MDB_txn *txn;
		struct node_wf_view w;
		tern_wf_msg m = {.msgid = o.msgid,
		                 .type = s->t,
		                 .sender = n->id.id,
		                 .to = (const char *const *)s->rcpts,
		                 .nto = s->np,
		                 .case_id = o.case_id,
		                 .body = body};
		tern_wf_verdict v;
		node_judge_of(n, &j);
		w = (struct node_wf_view){&j, NULL};
		if (s->t->ref_field == NULL) {
			/* It cites nothing: nothing to read (no transaction on the hot
			 * path of referrals). */
			rc = tern_workflow_judge(&m, n->id.id, n->id.self->roles, 1, node_wf_lookup,
			                         &w, &v);
		} else if ((rc = tern_store_read_begin(n->store, &txn)) == TERN_OK) {
			w.txn = txn;
			rc = tern_workflow_judge(&m, n->id.id, n->id.self->roles, 1, node_wf_lookup,
			                         &w, &v);
			if (rc == TERN_OK && v.reason == TERN_REASON_NONE &&
			    s->t->type == TERN__V1__MESSAGE_TYPE__CASE_UPDATE)
				rc = state_told(n, &w, s, v.record->ref, &v);
			if (rc == TERN_OK && v.reason == TERN_REASON_NONE &&
			    s->t->type == TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION &&
			    strcmp(v.record->value, "BOOKED") == 0)
				rc = booked_elsewhere(&w, o.case_id, v.record->ref, v.record->root,
				                      &v);
			mdb_txn_abort(txn);
		}
		if (rc != TERN_OK) {
			res = tern_api_error(rc, "cannot read this node's records of the case: %s",
			                     tern_errdetail());
			goto refuse;
		}
		if (v.reason != TERN_REASON_NONE) {
			/* The operator sees what the caseworker heard (ids and the
			 * rule only: the workflow's texts name fields, never values). */
			log_info("refused to send %s, case %s: %s: %s", s->t->name, o.case_id,
			         tern_reason_code(v.reason), v.text);
			res = tern_api_refusal(v.reason, "%s", v.text);
			tern_wf_verdict_clear(&v);
			goto refuse;
		}
		snprintf(o.ref, sizeof(o.ref), "%s", v.record->ref);
		if (s->t->state_field)
			snprintf(o.outcome, sizeof(o.outcome), "%s", v.record->value);
		rc = node_wf_keep(n, o.msgid, &v.record, v.root, &v.root_record);
		tern_wf_verdict_clear(&v);
		if (rc != TERN_OK) {
			res = tern_api_error(rc, "out of memory");
			goto refuse;
		}
	}
	if (s->client_ref) {
		snprintf(o.client_ref, sizeof(o.client_ref), "%s", s->client_ref);
		memcpy(o.client_fp, s->fp, sizeof(o.client_fp));
	}
	o.client = s->client;
	o.wait_ms = s->wait_ms <= 0 ? 0 : s->wait_ms > 3600000 ? 3600000 : s->wait_ms;
	*slot = o;
	return NULL;
refuse:
	if (slot)
		n->batch.nouts--; /* the last: nothing took a slot since */
	/* Nothing of it is kept: its sealed attachments go too. */
	for (size_t i = 0; i < o.natts; i++) {
		char path[PATH_MAX];
		node_spool_path(n, "out", o.msgid, i, path, sizeof(path));
		unlink(path);
	}
	node_out_free(&o);
	return res;
}

/* api_send once the descriptors, if any, are in r. */
static json_t *api_send_parsed(node *n, json_t *req, struct send_req *rp, int ci)
{
	struct send_req r = *rp;
	json_t *to = json_object_get(req, "to"), *v, *res;
	ProtobufCMessage *body = NULL;
	char err[256];
	size_t i;

	if (json_is_array(to) && json_array_size(to) <= 64)
		json_array_foreach(to, i, v) r.rcpts[r.np++] = json_string_value(v);
	v = json_object_get(req, "uploads");
	if (v != NULL && (!json_is_array(v) || json_array_size(v) > TERN_ATTACH_MAX_COUNT))
		r.bad_uploads = 1;
	else if (v != NULL) {
		json_t *u;
		json_array_foreach(v, i, u)
		{
			if ((r.uploads[r.nup++] = json_string_value(u)) == NULL)
				r.bad_uploads = 1;
		}
	}
	if ((res = send_check(n, &r)) != NULL)
		return res;
	if (tern_json_decode(r.t->desc, json_object_get(req, "body"), &body, err, sizeof(err)) !=
	    TERN_OK)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error",
		                 tern_reason_code(TERN_REASON_INVALID_BODY), "message", err);
	res = send_body(n, &r, body, ci);
	protobuf_c_message_free_unpacked(body, NULL);
	return res; /* NULL: parked until the commit */
}

/* Handles "send" in JSON: everything but the outbox write, which the batch
 * does. */
static json_t *api_send(node *n, json_t *req, int ci)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *v, *res;
	struct send_req r = {
	    .t = tern_msgtype_by_name(type ? type : ""),
	    /* "" is none, as in a binary send */
	    .reply_to = json_string_length(json_object_get(req, "in_reply_to"))
	                    ? json_string_value(json_object_get(req, "in_reply_to"))
	                    : NULL,
	    .client_ref = json_string_length(json_object_get(req, "client_ref"))
	                      ? json_string_value(json_object_get(req, "client_ref"))
	                      : NULL,
	    .ttl_s = json_integer_value(json_object_get(req, "ttl_seconds")),
	    .wait_ms = json_integer_value(json_object_get(req, "wait_ms"))};
	int fds[TERN_ATTACH_MAX_COUNT];
	size_t i;

	/* The descriptors that came with this request: taken here, whatever
	 * the answer, and closed once the seal is done or the send refused (the
	 * API server closes any a request does not take). */
	v = json_object_get(req, "descriptors");
	if (v != NULL) {
		json_int_t nd = json_integer_value(v);
		if (!json_is_integer(v) || nd < 1 || nd > TERN_ATTACH_MAX_COUNT)
			return tern_api_error(
			    TERN_EINVAL,
			    "'descriptors' is the number of files passed with the "
			    "request: 1 to %d",
			    TERN_ATTACH_MAX_COUNT);
		if (n->api == NULL || api_server_take_fds(n->api, ci, fds, (size_t)nd) != TERN_OK)
			return tern_api_error(TERN_EINVAL, "%s", tern_errdetail());
		r.fds = fds;
		r.nfds = (size_t)nd;
	}
	res = api_send_parsed(n, req, &r, ci);
	for (i = 0; i < r.nfds; i++)
		if (fds[i] >= 0)
			tern_fdclose(fds[i]); /* never on the loop: fdclose.h */
	return res;
}

/* Handles a binary "send" (tern.v1.ApiSend): the body arrives encoded, and
 * is taken only in its canonical encoding (no unknown fields: what is signed
 * is what the JSON form could have said). */
static json_t *api_send_bin(node *n, const Tern__V1__ApiSend *as, int ci)
{
	struct send_req r = {.t = tern_msgtype_by_type(as->type),
	                     .reply_to = as->in_reply_to[0] ? as->in_reply_to : NULL,
	                     .client_ref = as->client_ref[0] ? as->client_ref : NULL,
	                     .ttl_s = as->ttl_seconds,
	                     .wait_ms = as->wait_ms};
	ProtobufCMessage *body = NULL;
	json_t *res;

	if (as->n_to <= 64)
		for (size_t i = 0; i < as->n_to; i++)
			r.rcpts[r.np++] = as->to[i];
	if (as->n_uploads > TERN_ATTACH_MAX_COUNT)
		r.bad_uploads = 1;
	else
		for (size_t i = 0; i < as->n_uploads; i++)
			r.uploads[r.nup++] = as->uploads[i];
	if ((res = send_check(n, &r)) != NULL)
		return res;
	if (tern_pb_unpack_canonical(r.t->desc, as->body.data, as->body.len, n->max_msg, &body) !=
	        TERN_OK ||
	    tern_pb_strings_utf8(body) != TERN_OK)
		return json_pack("{s:b, s:s, s:s+}", "ok", 0, "error",
		                 tern_reason_code(TERN_REASON_INVALID_BODY), "message",
		                 "the body is not a canonical encoding of ", r.t->name);
	res = send_body(n, &r, body, ci);
	tern_pb_free(&body);
	return res; /* NULL: parked until the commit */
}

/* Handles "inbox.ack": checks the message is in the inbox; the removal is
 * part of the next commit. */
static json_t *api_ack(node *n, json_t *req, int ci)
{
	const char *id = json_string_value(json_object_get(req, "message_id"));
	MDB_txn *txn;
	json_t *rec = NULL;
	int rc, known = 0;

	if (id == NULL || !tern_uuid_valid(id) || n->batch.nacks == MAX_CLIENTS)
		return tern_api_error(TERN_EINVAL, "give the message_id to acknowledge");
	if ((rc = tern_store_read_begin(n->store, &txn)) == TERN_OK) {
		rc = node_store_received(txn, n->store, id, &rec);
		known = rc == TERN_OK && json_is_true(json_object_get(rec, "accepted"));
		mdb_txn_abort(txn);
		json_decref(rec);
	}
	if (rc != TERN_OK && rc != TERN_ENOENT) /* not read is not absent */
		return tern_api_error(rc, "cannot read message %s: %s", id, tern_errdetail());
	if (!known)
		return tern_api_error(TERN_ENOENT, "no message %s in this inbox", id);
	snprintf(n->batch.acks[n->batch.nacks].msgid, 37, "%s", id);
	n->batch.acks[n->batch.nacks++].client = ci;
	return NULL; /* parked until the commit */
}

/* The operations, as the API server (api_server.h) calls them. */
static json_t *h_send(void *arg, json_t *req, int client)
{
	return api_send(arg, req, client);
}

static json_t *h_send_bin(void *arg, const Tern__V1__ApiSend *req, int client)
{
	return api_send_bin(arg, req, client);
}

static json_t *h_ack(void *arg, json_t *req, int client)
{
	return api_ack(arg, req, client);
}

static json_t *h_read(void *arg, const char *op, json_t *req)
{
	return node_api_read(arg, op, req);
}

static json_t *h_inbox_next(void *arg, int *rc)
{
	return node_api_inbox_next(arg, rc);
}

static json_t *h_attach(void *arg, const char *op, json_t *req)
{
	if (strcmp(op, "attachment.get") == 0)
		return node_attachment_get(arg, req);
	return node_upload_op(arg, op, req);
}

static json_t *h_upload_bin(void *arg, const Tern__V1__ApiUploadAppend *req)
{
	return node_upload_append(arg, req->upload_id, req->offset, req->data.data, req->data.len);
}

static json_t *h_reanchor(void *arg)
{
	return node_reanchor(arg);
}

void node_api_handlers(node *n, api_handlers *h)
{
	*h = (api_handlers){n,        h_send,       h_send_bin, h_ack, h_read, h_inbox_next,
	                    h_attach, h_upload_bin, h_reanchor};
}

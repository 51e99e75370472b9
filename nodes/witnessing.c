/* Witnessing (docs/audit.md): asking the other member nodes to cosign this
 * node's newest checkpoint, keeping their cosignatures, and cosigning
 * theirs. The checking and cosigning is libtern's (witness.h); this file is
 * the node's side of the conversation.
 *
 * It may touch n->witnesses and writes the store on its own (a cosignature
 * or a refusal is stored before it is answered), outside the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/reason.h>
#include <tern/log.h>

#include "node_int.h"
#include "witness.h"

static struct witness *witness_find(node *n, const char *id)
{
	for (size_t i = 0; i < n->nwitnesses; i++)
		if (strcmp(n->witnesses[i].id, id) == 0)
			return &n->witnesses[i];
	return NULL;
}

/* Asks w to cosign note (of size entries), from the size w last cosigned.
 * A witness that cosigned more than this log holds (the store was put back
 * from a backup) is asked from its own size all the same, with no proof: it
 * answers rollback and keeps the checkpoint as evidence, and the operator is
 * told what to do. (The size used to be reset to 0 there: the witness
 * answered conflict, and the two traded conflicts at the broker's rate for
 * good, keeping no evidence and saying nothing.) */
static void send_witness_request(node *n, MDB_txn *txn, struct witness *w, const char *note,
                                 uint64_t size)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__WitnessRequest r = TERN__V1__WITNESS_REQUEST__INIT;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	ProtobufCBinaryData pb[TERN_MERKLE_MAX_PROOF];
	char *reanchor = NULL;
	size_t plen = 0;

	/* O(log n) lookups of stored subtrees, whatever the log's size. */
	if (w->size > 0 && w->size < size &&
	    tern_audit_consistency_proof(txn, &n->audit, w->size, size, proof, &plen) != TERN_OK)
		plen = 0;
	for (size_t i = 0; i < plen; i++)
		pb[i] = (ProtobufCBinaryData){TERN_HASH_LEN, proof[i]};
	r.peer = w->id;
	r.checkpoint = (char *)note;
	r.old_size = w->size;
	r.n_proof = plen;
	r.proof = pb;
	/* From the witness's own size, with a proof where this log has one: a
	 * log that does extend it is cosigned as usual, so a re-anchor asked
	 * in vain records nothing. Only while the operator's request holds: a
	 * witness whose re-anchor went unanswered (away, or the frame lost) is
	 * not re-anchored whenever it comes back. */
	if (w->reanchor && n->reanchor_until <= tern_now_ms())
		w->reanchor = 0;
	/* Signed, for this checkpoint and from the witness's size: the broker
	 * relaying it cannot ask a witness to re-anchor on this node's behalf.
	 * Not without the proof this log owes where it does extend the
	 * witness's size (one that could not be made: a store read failing):
	 * the witness would re-anchor a log that needs none. */
	if (w->reanchor && !(w->size > 0 && w->size < size && plen == 0)) {
		tern_hash root;
		int rc = tern_audit_root_at(txn, &n->audit, size, root);
		if (rc == TERN_OK)
			rc = tern_witness_reanchor_request(n->origin, n->id.sign, w->size, size,
			                                   root, tern_now_ms(), &reanchor);
		if (rc != TERN_OK)
			log_warnx("cannot sign the re-anchor request to %s: %s (%s); asked plainly",
			          w->id, tern_strerror(rc), tern_errdetail());
	}
	r.reanchor = reanchor ? reanchor : "";
	f.body_case = TERN__V1__FRAME__BODY_WITNESS_REQUEST;
	f.witness_request = &r;
	node_hop_send(n, &f);
	free(reanchor);
}

/* Asks every other member node to cosign the newest checkpoint. */
void node_witness_round(node *n, const char *only)
{
	MDB_txn *txn = NULL;
	char *note = NULL;
	uint64_t size = 0;

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	if (tern_audit_latest_checkpoint(txn, &n->audit, &note, &size) != TERN_OK || size == 0)
		goto out;
	for (size_t i = 0; i < tern_directory_count(n->id.dir); i++) {
		const tern_member *m = tern_directory_at(n->id.dir, i);
		struct witness *w;
		if ((m->roles & TERN_ROLE_BROKER) || m->revoked || m->expired ||
		    strcmp(m->node_id, n->id.id) == 0 || (only && strcmp(m->node_id, only) != 0))
			continue;
		if ((w = witness_find(n, m->node_id)) == NULL) {
			if (n->nwitnesses == MAX_WITNESSES)
				continue;
			w = &n->witnesses[n->nwitnesses++];
			snprintf(w->id, sizeof(w->id), "%s", m->node_id);
			w->size = 0;
		}
		send_witness_request(n, txn, w, note, size);
	}
out:
	free(note);
	mdb_txn_abort(txn);
}

struct witness_job {
	node *n;
	const Tern__V1__WitnessRequest *r;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	size_t nproof;
	char *line;
	uint64_t size, witnessed;
	const char *reason;
	int refused; /* the refusal's code; 0 when cosigned */
};

static int witness_apply(MDB_txn *txn, void *arg)
{
	struct witness_job *j = arg;
	tern_witness_req req = {j->r->peer,     j->r->checkpoint,
	                        j->r->old_size, (const tern_hash *)j->proof,
	                        j->nproof,      j->r->reanchor[0] ? j->r->reanchor : NULL};
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	int rc;

	free(j->line); /* a retried transaction starts over */
	j->line = NULL;
	rc = tern_witness_cosign(txn, &j->n->audit, j->n->id.dir, &req, j->n->origin, j->n->id.sign,
	                         j->n->batch.now, &j->line, &j->size, &j->witnessed, &j->reason);
	j->refused = rc;
	if (rc == TERN_OK || rc == TERN_EEXIST)
		return TERN_OK; /* cosigned, or a routine "prove from here instead" */
	if (rc == TERN_ENOMEM || rc == TERN_EIO)
		return rc;
	/* A checkpoint that contradicts what we cosigned is evidence: keep it. */
	e.kind = TERN__V1__AUDIT_ENTRY__KIND__REJECTED;
	e.at = j->n->batch.now;
	e.peer = j->r->peer;
	e.type = "checkpoint";
	e.reason = (char *)j->reason;
	e.checkpoint = j->r->checkpoint;
	return tern_audit_append(txn, &j->n->audit, &e);
}

void node_on_witness_request(node *n, const Tern__V1__WitnessRequest *r)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__WitnessResponse a = TERN__V1__WITNESS_RESPONSE__INIT;
	struct witness_job j = {.n = n, .r = r, .reason = tern_reason_code(TERN_REASON_BAD_PROOF)};
	int rc = TERN_OK;

	if (r->n_proof > TERN_MERKLE_MAX_PROOF) {
		j.refused = TERN_EINVAL;
	} else {
		for (size_t i = 0; i < r->n_proof; i++) {
			if (r->proof[i].len != TERN_HASH_LEN) {
				j.refused = TERN_EINVAL;
				break;
			}
			memcpy(j.proof[i], r->proof[i].data, TERN_HASH_LEN);
		}
		j.nproof = r->n_proof;
	}
	if (j.refused == TERN_OK)
		rc = tern_store_write(n->store, witness_apply, &j);
	if (rc != TERN_OK) {
		log_warnx("witnessing %s's log: %s (%s)", r->peer, tern_strerror(rc),
		          tern_errdetail());
		free(j.line);
		return; /* the owner asks again next round */
	}
	if (j.refused == TERN_OK && j.reason[0]) {
		n->last_audit = n->batch.now;
		log_warnx("re-anchored %s's log at its checkpoint of %llu entries, at its "
		          "owner's request (a store put back from a backup, it says); the %llu "
		          "entries cosigned before are kept as evidence",
		          r->peer, (unsigned long long)j.size, (unsigned long long)j.witnessed);
	} else if (j.refused == TERN_OK) {
		n->last_audit = n->batch.now;
		log_debug("cosigned %s's checkpoint of %llu entries", r->peer,
		          (unsigned long long)j.size);
	} else if (j.refused != TERN_EEXIST) {
		log_warnx("refused to cosign %s's checkpoint: %s: %s", r->peer, j.reason,
		          tern_errdetail());
		n->last_audit = n->batch.now;
	}
	a.peer = r->peer;
	a.size = j.size;
	a.cosignature = j.line ? j.line : "";
	a.witnessed_size = j.witnessed;
	a.reason_code = j.refused == TERN_OK ? "" : (char *)j.reason; /* "": cosigned */
	a.reanchored = j.refused == TERN_OK && j.reason[0]; /* the owner says which it was */
	f.body_case = TERN__V1__FRAME__BODY_WITNESS_RESPONSE;
	f.witness_response = &a;
	node_hop_send(n, &f);
	free(j.line);
}

struct cosig_job {
	node *n;
	const Tern__V1__WitnessResponse *r;
};

static int cosig_apply(MDB_txn *txn, void *arg)
{
	struct cosig_job *j = arg;

	return tern_audit_add_cosignature(txn, &j->n->audit, j->n->id.dir, j->r->peer, j->r->size,
	                                  j->r->cosignature);
}

void node_on_witness_response(node *n, const Tern__V1__WitnessResponse *r)
{
	struct witness *w = witness_find(n, r->peer);
	struct cosig_job j = {n, r};
	int rc, reanchoring;

	if (w == NULL)
		return; /* we never asked */
	reanchoring = n->reanchor_until > tern_now_ms();
	if (strcmp(r->reason_code, tern_reason_code(TERN_REASON_CONFLICT)) == 0) {
		/* It cosigned another size (we restarted, or an answer was lost):
		 * prove from there, once; a second conflict waits for the next round. */
		if (w->size != r->witnessed_size || (reanchoring && !w->reanchor)) {
			w->size = r->witnessed_size;
			w->reanchor = reanchoring;
			node_witness_round(n, r->peer);
		}
		return;
	}
	if (r->reason_code[0]) {
		int gone;
		/* The witness's word, shown by node.info and tern info: a code as
		 * reason codes are (a-z, 0-9, '-'), or "other" (one that is not
		 * UTF-8 made node.info's answer NULL; escapes reached the terminal). */
		size_t cl = strspn(r->reason_code, "abcdefghijklmnopqrstuvwxyz0123456789-");
		snprintf(w->refused, sizeof(w->refused), "%s",
		         r->reason_code[cl] == '\0' && cl < sizeof(w->refused) ? r->reason_code
		                                                               : "other");
		gone = strcmp(r->reason_code, tern_reason_code(TERN_REASON_ROLLBACK)) == 0 ||
		       strcmp(r->reason_code, tern_reason_code(TERN_REASON_FORK)) == 0 ||
		       strcmp(r->reason_code, tern_reason_code(TERN_REASON_BAD_PROOF)) == 0;
		if (gone && reanchoring && !w->reanchor) {
			/* The log no longer extends what it cosigned: ask again,
			 * from its size, to re-anchor. */
			w->size = r->witnessed_size;
			w->reanchor = 1;
			node_witness_round(n, r->peer);
			return;
		}
		if (gone && !reanchoring)
			log_warnx(
			    "%s refused to cosign our checkpoint of %llu entries: %s (it "
			    "cosigned %llu); if this node's store was put back from a backup, "
			    "run tern audit reanchor",
			    r->peer, (unsigned long long)r->size, r->reason_code,
			    (unsigned long long)r->witnessed_size);
		else
			log_warnx("%s refused to cosign our checkpoint of %llu entries: %s",
			          r->peer, (unsigned long long)r->size, r->reason_code);
		return;
	}
	if ((rc = tern_store_write(n->store, cosig_apply, &j)) != TERN_OK) {
		log_warnx("cosignature from %s not kept: %s (%s)", r->peer, tern_strerror(rc),
		          tern_errdetail());
		return;
	}
	/* The operator asked, and reads the log to see what came of it. */
	if (r->reanchored)
		log_warnx("%s re-anchored this log: it witnesses it again from its checkpoint of "
		          "%llu entries, and keeps the %llu it had cosigned before as evidence",
		          r->peer, (unsigned long long)r->size,
		          (unsigned long long)r->witnessed_size);
	else if (w->reanchor)
		log_info(
		    "%s cosigned this log's checkpoint of %llu entries: it extends what %s had "
		    "cosigned, so nothing was re-anchored there",
		    r->peer, (unsigned long long)r->size, r->peer);
	w->size = r->size;
	w->reanchor = 0;
	w->cosigned = r->size;
	w->cosigned_at = tern_now_ms();
	w->refused[0] = '\0';
}

json_t *node_witness_status(const node *n)
{
	json_t *a = json_array(), *o;

	for (size_t i = 0; a && i < n->nwitnesses; i++) {
		const struct witness *w = &n->witnesses[i];
		json_t *e =
		    json_pack("{s:s, s:I}", "id", w->id, "cosigned", (json_int_t)w->cosigned);
		if (e == NULL ||
		    (w->cosigned_at > 0 &&
		     json_object_set_new(e, "at", json_integer(w->cosigned_at)) != 0) ||
		    (w->refused[0] &&
		     json_object_set_new(e, "refused", json_string(w->refused)) != 0)) {
			json_decref(e);
			json_decref(a);
			return NULL;
		}
		/* It takes e, and frees it when it cannot. */
		if (json_array_append_new(a, e) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	if (a == NULL || (o = json_pack("{s:o}", "witnesses", a)) == NULL)
		return NULL;
	if (n->reanchor_until > tern_now_ms() &&
	    json_object_set_new(o, "reanchor",
	                        json_pack("{s:I}", "until", (json_int_t)n->reanchor_until)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int reanchor_apply(MDB_txn *txn, void *arg)
{
	node *n = arg;

	return node_audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__OPERATOR, NULL, n->id.id, NULL,
	                  "reanchor", NULL, 0, NULL, NULL, NULL);
}

json_t *node_reanchor(node *n)
{
	int rc;

	/* In the log before anything is asked of the witnesses: an auditor
	 * sees who asked, and when, next to what the witnesses kept. */
	if ((rc = tern_store_write(n->store, reanchor_apply, n)) != TERN_OK)
		return tern_api_error(rc,
		                      "cannot record the request in the audit log: %s; nothing "
		                      "was asked",
		                      tern_errdetail());
	n->reanchor_until = tern_now_ms() + NODE_REANCHOR_MS;
	for (size_t i = 0; i < n->nwitnesses; i++)
		n->witnesses[i].reanchor = 0; /* each asked again from what it answers */
	n->batch.checkpoint = 2;              /* a checkpoint and a round at the next turn */
	log_warnx("the operator asked this node's witnesses to re-anchor its audit log (a store "
	          "put back from a backup), for the next %d minutes",
	          NODE_REANCHOR_MS / 60000);
	return json_pack("{s:b, s:I}", "ok", 1, "until", (json_int_t)n->reanchor_until);
}

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/reason.h>
#include <tern/note.h>

#include "util.h"
#include "witness.h"

#define MDB(rc, what) tern_store_mdb_err((rc), (what))
#define COSIG_PREFIX "\xe2\x80\x94 " /* "— " starts every signature line */

int tern_audit_origin(const char *federation, const char *node_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "tern/%s/%s", federation, node_id);

	return n < 0 || (size_t)n >= len || (size_t)n > TERN_NOTE_NAME_MAX
	           ? tern_fail(TERN_EINVAL, "origin for %s is too long", node_id)
	           : TERN_OK;
}

/* The audit meta key of what this witness keeps for owner's log ("w/OWNER",
 * "r/OWNER"), in key. */
static MDB_val owner_key(char key[80], char kind, const char *owner)
{
	snprintf(key, 80, "%c/%s", kind, owner);
	return (MDB_val){strlen(key), key};
}

/* What this witness last cosigned for owner's log: "w/OWNER" -> be64 size || root. */
static int state_get(MDB_txn *txn, const tern_audit_dbs *d, const char *owner, uint64_t *size,
                     tern_hash root)
{
	char key[80];
	MDB_val k, v;
	int rc;

	k = owner_key(key, 'w', owner);
	rc = mdb_get(txn, d->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*size = 0;
		return TERN_OK;
	}
	if (rc != 0)
		return MDB(rc, "read witness state");
	if (v.mv_size != 8 + TERN_HASH_LEN)
		return tern_fail(TERN_EMALFORMED, "damaged witness state for %s", owner);
	*size = tern_be64_get(v.mv_data);
	memcpy(root, (uint8_t *)v.mv_data + 8, TERN_HASH_LEN);
	return TERN_OK;
}

static int state_put(MDB_txn *txn, const tern_audit_dbs *d, const char *owner, uint64_t size,
                     const tern_hash root)
{
	char key[80];
	uint8_t buf[8 + TERN_HASH_LEN];
	MDB_val k, v = {sizeof(buf), buf};

	k = owner_key(key, 'w', owner);
	tern_be64_put(buf, size);
	memcpy(buf + 8, root, TERN_HASH_LEN);
	return MDB(mdb_put(txn, d->meta, &k, &v, 0), "write witness state");
}

#define REANCHOR_TAG "tern-reanchor/v1\n"

int tern_witness_reanchor_request(const char *origin, const tern_signkey *key, uint64_t old_size,
                                  uint64_t size, const tern_hash root, int64_t now_ms, char **note)
{
	char *body = NULL, *text = NULL;
	int rc;

	*note = NULL;
	if ((rc = tern_checkpoint_format(origin, size, root, &body)) != TERN_OK)
		return rc;
	if (asprintf(&text, REANCHOR_TAG "from %" PRIu64 "\nat %" PRId64 "\n%s", old_size,
	             now_ms / 1000, body) < 0)
		text = NULL;
	rc = text ? tern_note_sign(text, origin, key, note) : TERN_ENOMEM;
	free(text);
	free(body);
	return rc;
}

/* When the last re-anchor request this witness took for owner's log was made
 * (the owner's clock, seconds): "r/OWNER" -> be64; 0 for none. */
static int taken_get(MDB_txn *txn, const tern_audit_dbs *d, const char *owner, int64_t *at)
{
	char key[80];
	MDB_val k, v;
	int rc;

	k = owner_key(key, 'r', owner);
	*at = 0;
	rc = mdb_get(txn, d->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read witness state");
	if (v.mv_size != 8)
		return tern_fail(TERN_EMALFORMED, "damaged witness state for %s", owner);
	*at = (int64_t)tern_be64_get(v.mv_data);
	return TERN_OK;
}

static int taken_put(MDB_txn *txn, const tern_audit_dbs *d, const char *owner, int64_t at)
{
	char key[80];
	uint8_t buf[8];
	MDB_val k, v = {sizeof(buf), buf};

	k = owner_key(key, 'r', owner);
	tern_be64_put(buf, (uint64_t)at);
	return MDB(mdb_put(txn, d->meta, &k, &v, 0), "write witness state");
}

/* Whether req->reanchor is the owner's request (origin, pub) to re-anchor
 * from old at this checkpoint (size, root), made within TERN_REANCHOR_AGE_S
 * of now_ms: TERN_OK, TERN_ENOMEM, or why not (its detail says). Signed, so
 * that the broker relaying requests cannot set it on the owner's behalf, and
 * bound to the witness's size and this checkpoint, so that an old one cannot
 * be used again once the witness moved on; made after taken (the last one
 * taken), so that none is taken twice. *asked_at: when it was made. */
static int reanchor_asked(const tern_witness_req *req, const char *origin, const uint8_t pub[32],
                          uint64_t old, uint64_t size, const tern_hash root, int64_t now_ms,
                          int64_t taken, int64_t *asked_at)
{
	char *text = NULL, *endp, got[TERN_NOTE_NAME_MAX + 1];
	const char *p;
	uint64_t from, csize;
	long long at;
	tern_hash croot;
	int rc;

	rc = tern_note_verify(req->reanchor, strlen(req->reanchor), origin, pub, &text);
	if (rc == TERN_ENOMEM)
		return rc;
	if (rc != TERN_OK || strncmp(text, REANCHOR_TAG, strlen(REANCHOR_TAG)) != 0) {
		rc = tern_fail(TERN_EBADSIG, "a re-anchor request not signed by %s's log key",
		               req->owner);
		goto out;
	}
	p = text + strlen(REANCHOR_TAG);
	if (strncmp(p, "from ", 5) != 0 || (from = strtoull(p + 5, &endp, 10), *endp != '\n') ||
	    strncmp(endp + 1, "at ", 3) != 0 ||
	    (at = strtoll(endp + 4, &endp, 10), *endp != '\n') ||
	    tern_checkpoint_parse(endp + 1, got, &csize, croot) != TERN_OK) {
		rc = tern_fail(TERN_EMALFORMED, "%s's re-anchor request is malformed", req->owner);
		goto out;
	}
	if (strcmp(got, origin) != 0 || csize != size || memcmp(croot, root, TERN_HASH_LEN) != 0 ||
	    from != old) {
		rc = tern_fail(TERN_EINVAL,
		               "%s's re-anchor request is for another checkpoint, or from another "
		               "size than the %llu this witness cosigned",
		               req->owner, (unsigned long long)old);
		goto out;
	}
	if (at < now_ms / 1000 - TERN_REANCHOR_AGE_S || at > now_ms / 1000 + TERN_REANCHOR_AGE_S) {
		rc = tern_fail(TERN_EINVAL, "%s's re-anchor request is not of the last %d minutes",
		               req->owner, TERN_REANCHOR_AGE_S / 60);
		goto out;
	}
	/* Taken once: the log grown back to the size the witness had
	 * cosigned, the same request would move it back again. */
	if (at <= taken) {
		rc = tern_fail(TERN_EINVAL,
		               "%s's re-anchor request is not newer than the one this witness "
		               "took last",
		               req->owner);
		goto out;
	}
	*asked_at = at;
	rc = TERN_OK;
out:
	free(text);
	return rc;
}

int tern_witness_cosign(MDB_txn *txn, const tern_audit_dbs *d, const tern_directory *dir,
                        const tern_witness_req *req, const char *self_origin,
                        const tern_signkey *key, int64_t now_ms, char **line, uint64_t *size,
                        uint64_t *witnessed, const char **reason)
{
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	const tern_member *m;
	char origin[TERN_NOTE_NAME_MAX + 1], got[TERN_NOTE_NAME_MAX + 1];
	char *text = NULL, *cosig = NULL, *evidence = NULL;
	tern_hash root, old_root;
	uint64_t old = 0;
	int64_t asked_at = 0;
	int rc, reanchored;

	*line = NULL;
	*size = 0;
	*witnessed = 0;
	*reason = tern_reason_code(TERN_REASON_BAD_SIGNATURE);
	if (tern_directory_find(dir, req->owner, &m) != TERN_OK || m->revoked ||
	    tern_audit_origin(tern_directory_federation(dir), req->owner, origin, sizeof(origin)) !=
	        TERN_OK)
		return tern_fail(TERN_EUNKNOWN, "%s is not a member whose log can be witnessed",
		                 req->owner);
	/* The authenticated sender must be the log's owner: no one relays another's log.
	 * No memory to check it with is no verdict: a refusal is kept as
	 * evidence against the owner, and told to it. */
	rc = tern_note_verify(req->note, strlen(req->note), origin, m->sign_public, &text);
	if (rc == TERN_ENOMEM)
		return tern_fail(TERN_ENOMEM, "out of memory checking %s's checkpoint", req->owner);
	if (rc != TERN_OK || tern_checkpoint_parse(text, got, size, root) != TERN_OK ||
	    strcmp(got, origin) != 0) {
		free(text);
		return tern_fail(TERN_EBADSIG, "checkpoint from %s is not signed by its log key",
		                 req->owner);
	}
	if ((rc = state_get(txn, d, req->owner, &old, old_root)) != TERN_OK)
		goto out;
	*witnessed = old;
	if (req->old_size != old) {
		*reason = tern_reason_code(TERN_REASON_CONFLICT);
		rc = tern_fail(TERN_EEXIST, "%s proved from size %llu; this witness cosigned %llu",
		               req->owner, (unsigned long long)req->old_size,
		               (unsigned long long)old);
		goto out;
	}
	if (*size < old) {
		*reason = tern_reason_code(TERN_REASON_ROLLBACK);
		rc = tern_fail(TERN_EOLDER, "%s's log shrank from %llu to %llu entries", req->owner,
		               (unsigned long long)old, (unsigned long long)*size);
	} else if (old > 0 && (*size == old ? memcmp(root, old_root, TERN_HASH_LEN) != 0
	                                    : tern_merkle_verify_consistency(
	                                          old, *size, old_root, root, req->proof,
	                                          req->nproof) != TERN_OK)) {
		*reason = tern_reason_code(*size == old ? TERN_REASON_FORK : TERN_REASON_BAD_PROOF);
		rc = tern_fail(TERN_EINVAL,
		               "%s's checkpoint of %llu entries does not extend the one of %llu "
		               "this witness cosigned",
		               req->owner, (unsigned long long)*size, (unsigned long long)old);
	}
	if (rc != TERN_OK) {
		int asked;
		int64_t taken = 0;
		if (req->reanchor == NULL || req->reanchor[0] == '\0')
			goto out;
		if ((asked = taken_get(txn, d, req->owner, &taken)) != TERN_OK) {
			rc = asked;
			goto out;
		}
		/* A request that does not hold leaves the refusal as it was (its
		 * detail says why); a shortage is no verdict. */
		if ((asked = reanchor_asked(req, origin, m->sign_public, old, *size, root, now_ms,
		                            taken, &asked_at)) != TERN_OK) {
			if (asked == TERN_ENOMEM)
				rc = asked;
			goto out;
		}
	}
	/* Re-anchored: the owner's signed checkpoint that does not extend the
	 * cosigned one is itself the evidence that history was given up; it is
	 * kept with the size and root it replaces, and witnessing goes on from
	 * it instead of refusing the log for good. */
	reanchored = rc != TERN_OK;
	rc = TERN_OK;
	*reason = reanchored ? "reanchored" : "";
	if ((rc = tern_cosign(text, self_origin, key, (uint64_t)(now_ms / 1000), &cosig)) !=
	    TERN_OK)
		goto out;
	if (asprintf(&evidence, "%s%s", req->note, cosig) < 0) {
		rc = TERN_ENOMEM;
		goto out;
	}
	e.kind = reanchored ? TERN__V1__AUDIT_ENTRY__KIND__REANCHORED
	                    : TERN__V1__AUDIT_ENTRY__KIND__COSIGNED;
	e.at = now_ms;
	e.peer = (char *)req->owner;
	e.checkpoint = evidence;
	if (reanchored) {
		e.abandoned_size = old;
		e.abandoned_root = (ProtobufCBinaryData){TERN_HASH_LEN, old_root};
		e.request = (char *)req->reanchor;
	}
	if ((rc = state_put(txn, d, req->owner, *size, root)) != TERN_OK ||
	    (reanchored && (rc = taken_put(txn, d, req->owner, asked_at)) != TERN_OK) ||
	    (rc = tern_audit_append(txn, d, &e)) != TERN_OK)
		goto out;
	*line = cosig;
	cosig = NULL;
out:
	free(evidence);
	free(cosig);
	free(text);
	return rc;
}

int tern_audit_add_cosignature(MDB_txn *txn, const tern_audit_dbs *d, const tern_directory *dir,
                               const char *witness, uint64_t size, const char *line)
{
	const tern_member *m;
	char name[TERN_NOTE_NAME_MAX + 1], prefix[TERN_NOTE_NAME_MAX + 8];
	char *note = NULL, *cand = NULL;
	uint8_t kb[8];
	MDB_val k = {8, kb}, v;
	int rc;

	if (tern_directory_find(dir, witness, &m) != TERN_OK ||
	    tern_audit_origin(tern_directory_federation(dir), witness, name, sizeof(name)) !=
	        TERN_OK)
		return tern_fail(TERN_EUNKNOWN, "cosignature from %s, not a member", witness);
	tern_be64_put(kb, size);
	rc = mdb_get(txn, d->checkpoints, &k, &v);
	if (rc == MDB_NOTFOUND)
		return tern_fail(TERN_ENOENT, "no checkpoint of size %llu to cosign",
		                 (unsigned long long)size);
	if (rc != 0)
		return MDB(rc, "read checkpoint");
	if ((note = strndup(v.mv_data, v.mv_size)) == NULL)
		return TERN_ENOMEM;
	/* Keep one cosignature per witness: its newest says the most. */
	snprintf(prefix, sizeof(prefix), "\n" COSIG_PREFIX "%s ", name);
	for (char *p; (p = strstr(note, prefix)) != NULL;) {
		char *start = p + 1, *eol = strchr(start, '\n');
		char *rest = eol ? eol + 1 : start + strlen(start);
		memmove(start, rest, strlen(rest) + 1);
	}
	if (asprintf(&cand, "%s%s", note, line) < 0) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_cosign_verify(cand, strlen(cand), name, m->sign_public, NULL)) != TERN_OK) {
		if (rc != TERN_ENOMEM) /* no memory to check it is no verdict on it */
			rc =
			    tern_fail(TERN_EBADSIG, "%s's cosignature of size %llu does not verify",
			              witness, (unsigned long long)size);
		goto out;
	}
	v = (MDB_val){strlen(cand), cand};
	rc = MDB(mdb_put(txn, d->checkpoints, &k, &v, 0), "store cosignature");
out:
	free(cand);
	free(note);
	return rc;
}

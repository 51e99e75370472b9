#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/note.h>

#include "audit.h"
#include "pbuf.h"
#include "util.h"

#define MDB(rc, what) tern_store_mdb_err((rc), (what))

/* The frontier: the roots of the complete subtrees that make up the log, left
 * to right, one per set bit of its size. Enough to append and to compute the
 * root without reading a single entry. */
struct frontier {
	uint64_t size;
	int n;
	tern_hash h[64];
};

static int frontier_get(MDB_txn *txn, const tern_audit_dbs *d, struct frontier *f)
{
	MDB_val k = {8, "frontier"}, v;
	int rc = mdb_get(txn, d->meta, &k, &v);

	memset(f, 0, sizeof(*f));
	if (rc == MDB_NOTFOUND)
		return TERN_OK;
	if (rc != 0)
		return MDB(rc, "read audit frontier");
	if (v.mv_size < 8 || (v.mv_size - 8) % TERN_HASH_LEN != 0 ||
	    (v.mv_size - 8) / TERN_HASH_LEN > 64)
		return tern_fail(TERN_EMALFORMED, "damaged audit frontier");
	f->size = tern_be64_get(v.mv_data);
	f->n = (int)((v.mv_size - 8) / TERN_HASH_LEN);
	if (f->n != __builtin_popcountll(f->size))
		return tern_fail(TERN_EMALFORMED, "audit frontier does not match its size");
	memcpy(f->h, (uint8_t *)v.mv_data + 8, (size_t)f->n * TERN_HASH_LEN);
	return TERN_OK;
}

static int frontier_put(MDB_txn *txn, const tern_audit_dbs *d, const struct frontier *f)
{
	uint8_t buf[8 + 64 * TERN_HASH_LEN];
	MDB_val k = {8, "frontier"}, v = {8 + (size_t)f->n * TERN_HASH_LEN, buf};

	tern_be64_put(buf, f->size);
	memcpy(buf + 8, f->h, (size_t)f->n * TERN_HASH_LEN);
	return MDB(mdb_put(txn, d->meta, &k, &v, 0), "write audit frontier");
}

static void frontier_root(const struct frontier *f, tern_hash root)
{
	if (f->n == 0) {
		crypto_hash_sha256(root, (const uint8_t *)"", 0);
		return;
	}
	memcpy(root, f->h[f->n - 1], TERN_HASH_LEN);
	for (int i = f->n - 2; i >= 0; i--)
		tern_merkle_node_hash(f->h[i], root, root);
}

int tern_audit_append(MDB_txn *txn, const tern_audit_dbs *d, const Tern__V1__AuditEntry *e)
{
	struct frontier f;
	uint8_t kb[8], *buf = NULL;
	size_t len;
	tern_hash h;
	MDB_val k, v;
	int rc;

	if ((rc = frontier_get(txn, d, &f)) != TERN_OK)
		return rc;
	if ((rc = tern_pb_pack(&e->base, &buf, &len)) != TERN_OK)
		return rc;
	tern_be64_put(kb, f.size);
	k = (MDB_val){8, kb};
	v = (MDB_val){len, buf};
	rc = mdb_put(txn, d->entries, &k, &v, MDB_APPEND);
	if (rc != 0) {
		free(buf);
		return MDB(rc, "append audit entry");
	}
	tern_merkle_leaf_hash(buf, len, h);
	free(buf);
	/* Each trailing 1 bit of the old size is a subtree the new leaf completes. */
	for (uint64_t s = f.size; s & 1; s >>= 1)
		tern_merkle_node_hash(f.h[--f.n], h, h);
	memcpy(f.h[f.n++], h, TERN_HASH_LEN);
	f.size++;
	return frontier_put(txn, d, &f);
}

int tern_audit_head(MDB_txn *txn, const tern_audit_dbs *d, uint64_t *size, tern_hash root)
{
	struct frontier f;
	int rc = frontier_get(txn, d, &f);

	if (rc != TERN_OK)
		return rc;
	*size = f.size;
	frontier_root(&f, root);
	return TERN_OK;
}

int tern_audit_latest_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, char **note, uint64_t *size)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, d->checkpoints, &c)) != 0)
		return MDB(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8) {
		*size = tern_be64_get(k.mv_data);
		*note = strndup(v.mv_data, v.mv_size);
		rc = *note ? TERN_OK : TERN_ENOMEM;
	} else {
		rc = rc == MDB_NOTFOUND ? TERN_ENOENT : MDB(rc, "read checkpoint");
	}
	mdb_cursor_close(c);
	return rc;
}

int tern_audit_checkpoint(MDB_txn *txn, const tern_audit_dbs *d, const char *origin,
                          const tern_signkey *key, int force, uint64_t *size)
{
	char *body = NULL, *note = NULL, *last = NULL;
	uint64_t lsize = 0;
	uint8_t kb[8];
	tern_hash root;
	MDB_val k, v;
	int rc;

	if ((rc = tern_audit_head(txn, d, size, root)) != TERN_OK)
		return rc;
	if (tern_audit_latest_checkpoint(txn, d, &last, &lsize) == TERN_OK) {
		free(last);
		/* An idle log is still re-signed (force) so a quiet period cannot
		 * hide a truncation; a checkpoint of the same size replaces the old. */
		if (lsize == *size && !force)
			return TERN_OK;
	}
	if ((rc = tern_checkpoint_format(origin, *size, root, &body)) != TERN_OK)
		return rc;
	rc = tern_note_sign(body, origin, key, &note);
	free(body);
	if (rc != TERN_OK)
		return rc;
	tern_be64_put(kb, *size);
	k = (MDB_val){8, kb};
	v = (MDB_val){strlen(note), note};
	rc = MDB(mdb_put(txn, d->checkpoints, &k, &v, 0), "store checkpoint");
	free(note);
	return rc;
}

int tern_audit_leaves(MDB_txn *txn, const tern_audit_dbs *d, uint64_t n, tern_hash **out)
{
	tern_hash *leaves = malloc((n ? n : 1) * sizeof(*leaves));
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t i = 0;
	int rc;

	*out = NULL;
	if (leaves == NULL)
		return TERN_ENOMEM;
	if ((rc = mdb_cursor_open(txn, d->entries, &c)) != 0) {
		free(leaves);
		return MDB(rc, "cursor");
	}
	while (i < n && mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, leaves[i++]);
	mdb_cursor_close(c);
	if (i < n) {
		free(leaves);
		return tern_fail(TERN_ENOENT, "the audit log holds %llu entries, not %llu",
		                 (unsigned long long)i, (unsigned long long)n);
	}
	*out = leaves;
	return TERN_OK;
}

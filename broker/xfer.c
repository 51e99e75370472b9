/* The broker's attachment transfers: records and proofs in the store, chunks
 * in spool files (xfer.h has the layout and the rules).
 *
 * BQ_XFER holds two kinds of keys per transfer, adjacent: msgid (36 bytes)
 * -> the record (sender, expiry, recipients with their done flags, seals),
 * and msgid || be32(att) (40 bytes) -> be64(have). The counts are apart from
 * the record because they change with every chunk: committing one rewrites
 * 8 bytes, not a record of up to 64 recipients. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tern/error.h>

#include "queue.h"
#include "syncer.h"
#include "util.h"
#include "xfer.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
#define XFER_VERSION 1

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int msgid_ok(const char *msgid)
{
	return msgid != NULL && strlen(msgid) == 36;
}

/* msgid || be32(att): the key of an attachment's count. */
static MDB_val have_key(uint8_t k[40], const char *msgid, uint32_t att)
{
	memcpy(k, msgid, 36);
	be32_put(k + 36, att);
	return (MDB_val){40, k};
}

/* msgid || be32(att) || be64(index): the key of a chunk's proof. */
static MDB_val proof_key(uint8_t k[48], const char *msgid, uint32_t att, uint64_t index)
{
	memcpy(k, msgid, 36);
	be32_put(k + 36, att);
	tern_be64_put(k + 40, index);
	return (MDB_val){48, k};
}

/* version | be64 expires | len sender | n rcpts (len id done)* | n atts
 * (be64 size, be32 chunk_size, root[32])* */
static int rec_encode(const xfer_rec *r, uint8_t *buf, size_t cap, size_t *len)
{
	size_t n = 0, l;

	if (cap < 1 + 8 + 1 + 63 + 1 + XFER_MAX_RCPTS * 65 + 1 + TERN_ATTACH_MAX_COUNT * 44)
		return tern_fail(TERN_EINVAL, "transfer record: buffer too small");
	buf[n++] = XFER_VERSION;
	tern_be64_put(buf + n, (uint64_t)r->expires);
	n += 8;
	l = strlen(r->sender);
	buf[n++] = (uint8_t)l;
	memcpy(buf + n, r->sender, l);
	n += l;
	buf[n++] = (uint8_t)r->nrcpt;
	for (size_t i = 0; i < r->nrcpt; i++) {
		l = strlen(r->rcpt[i]);
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, r->rcpt[i], l);
		n += l;
		buf[n++] = r->done[i];
	}
	buf[n++] = (uint8_t)r->natt;
	for (size_t i = 0; i < r->natt; i++) {
		tern_be64_put(buf + n, r->att[i].size);
		be32_put(buf + n + 8, r->att[i].chunk_size);
		memcpy(buf + n + 12, r->att[i].root, 32);
		n += 44;
	}
	*len = n;
	return TERN_OK;
}

int xfer_rec_decode(const uint8_t *data, size_t len, xfer_rec *r)
{
	const uint8_t *p = data, *end = p + len;
	size_t l;

#define NEED(k)                                                                                    \
	do {                                                                                       \
		if ((size_t)(end - p) < (size_t)(k))                                               \
			return tern_fail(TERN_EMALFORMED, "damaged transfer record");              \
	} while (0)
	NEED(1 + 8 + 1);
	if (*p++ != XFER_VERSION)
		return tern_fail(TERN_EVERSION, "transfer record of an unknown version");
	r->expires = (int64_t)tern_be64_get(p);
	p += 8;
	l = *p++;
	NEED(l + 1);
	if (l > 63)
		return tern_fail(TERN_EMALFORMED, "damaged transfer record");
	memcpy(r->sender, p, l);
	r->sender[l] = 0;
	p += l;
	r->nrcpt = *p++;
	if (r->nrcpt > XFER_MAX_RCPTS)
		return tern_fail(TERN_EMALFORMED, "damaged transfer record");
	for (size_t i = 0; i < r->nrcpt; i++) {
		NEED(1);
		l = *p++;
		NEED(l + 1);
		if (l > 63)
			return tern_fail(TERN_EMALFORMED, "damaged transfer record");
		memcpy(r->rcpt[i], p, l);
		r->rcpt[i][l] = 0;
		p += l;
		r->done[i] = *p++;
	}
	NEED(1);
	r->natt = *p++;
	if (r->natt > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EMALFORMED, "damaged transfer record");
	NEED(r->natt * 44);
	for (size_t i = 0; i < r->natt; i++) {
		r->att[i].size = tern_be64_get(p);
		r->att[i].chunk_size = be32_get(p + 8);
		memcpy(r->att[i].root, p + 12, 32);
		r->att[i].have = 0;
		p += 44;
		/* A record holds only seals that passed tern_attach_seals_check,
		 * or it is damaged: no chunk count of 0, no size over the most
		 * max_attachment_size allows (the chunk arithmetic would wrap),
		 * no chunk over the buffers' TERN_ATTACH_CHUNK_MAX. */
		if (r->att[i].size == 0 || r->att[i].size > TERN_ATTACH_MAX_SIZE_LIMIT ||
		    r->att[i].chunk_size < TERN_ATTACH_CHUNK_MIN ||
		    r->att[i].chunk_size > TERN_ATTACH_CHUNK_MAX)
			return tern_fail(TERN_EMALFORMED, "damaged transfer record");
	}
#undef NEED
	return TERN_OK;
}

static int rec_put(MDB_txn *txn, tern_store *s, const xfer_rec *r, unsigned flags)
{
	uint8_t buf[8192];
	MDB_val k = {36, (void *)r->msgid}, v;
	size_t len;
	int rc;

	if ((rc = rec_encode(r, buf, sizeof(buf), &len)) != TERN_OK)
		return rc;
	v = (MDB_val){len, buf};
	rc = mdb_put(txn, DBI(s, BQ_XFER), &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return TERN_EEXIST;
	return rc ? MDB(rc, "write transfer record") : TERN_OK;
}

int xfer_create(MDB_txn *txn, tern_store *s, const char *msgid, const char *sender,
                char *const *rcpts, size_t nrcpt, const Tern__V1__AttachmentSeal *const *seals,
                size_t nseals, int64_t expires)
{
	xfer_rec *r;
	int rc;

	if (nseals == 0)
		return TERN_OK;
	if (DBI(s, BQ_XFER) == 0)
		return tern_fail(TERN_EINVAL, "store opened without transfers");
	if (!msgid_ok(msgid) || strlen(sender) > 63 || nrcpt == 0 || nrcpt > XFER_MAX_RCPTS ||
	    nseals > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EINVAL, "transfer: bad message id, sender or counts");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return TERN_ENOMEM;
	memcpy(r->msgid, msgid, 37);
	snprintf(r->sender, sizeof(r->sender), "%s", sender);
	r->expires = expires;
	r->nrcpt = nrcpt;
	for (size_t i = 0; i < nrcpt; i++) {
		rc = TERN_EINVAL;
		if (strlen(rcpts[i]) > 63)
			goto out;
		snprintf(r->rcpt[i], sizeof(r->rcpt[i]), "%s", rcpts[i]);
	}
	r->natt = nseals;
	for (size_t i = 0; i < nseals; i++) {
		rc = tern_fail(TERN_EINVAL, "transfer: seal %zu has no 32-byte root", i);
		if (seals[i]->root.len != 32)
			goto out;
		r->att[i].size = seals[i]->size;
		r->att[i].chunk_size = seals[i]->chunk_size;
		memcpy(r->att[i].root, seals[i]->root.data, 32);
	}
	rc = rec_put(txn, s, r, MDB_NOOVERWRITE);
	if (rc == TERN_EEXIST)
		rc = TERN_OK; /* accepted before: its counts stand */
out:
	free(r);
	return rc;
}

int xfer_get(MDB_txn *txn, tern_store *s, const char *msgid, xfer_rec *out)
{
	MDB_val k, v;
	uint8_t hk[40];
	int rc;

	if (DBI(s, BQ_XFER) == 0 || !msgid_ok(msgid))
		return TERN_ENOENT;
	k = (MDB_val){36, (void *)msgid};
	rc = mdb_get(txn, DBI(s, BQ_XFER), &k, &v);
	if (rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	if (rc != 0)
		return MDB(rc, "read transfer record");
	memset(out, 0, sizeof(*out));
	if ((rc = xfer_rec_decode(v.mv_data, v.mv_size, out)) != TERN_OK)
		return rc;
	memcpy(out->msgid, msgid, 37);
	for (size_t i = 0; i < out->natt; i++) {
		k = have_key(hk, msgid, (uint32_t)i);
		rc = mdb_get(txn, DBI(s, BQ_XFER), &k, &v);
		if (rc == 0 && v.mv_size == 8)
			out->att[i].have = tern_be64_get(v.mv_data);
		else if (rc != 0 && rc != MDB_NOTFOUND)
			return MDB(rc, "read transfer count");
	}
	return TERN_OK;
}

void xfer_seal(const xfer_rec *r, uint32_t att, Tern__V1__AttachmentSeal *seal)
{
	tern__v1__attachment_seal__init(seal);
	seal->size = r->att[att].size;
	seal->chunk_size = r->att[att].chunk_size;
	seal->root.data = (uint8_t *)r->att[att].root;
	seal->root.len = 32;
}

int xfer_rcpt_index(const xfer_rec *r, const char *rcpt)
{
	for (size_t i = 0; i < r->nrcpt; i++)
		if (strcmp(r->rcpt[i], rcpt) == 0)
			return (int)i;
	return -1;
}

int xfer_chunk_commit(MDB_txn *txn, tern_store *s, const char *msgid, uint32_t att, uint64_t index,
                      const uint8_t *proof, size_t proof_len, uint64_t *have)
{
	xfer_rec *r;
	uint8_t hk[40], pk[48], hv[8];
	MDB_val k, v;
	int rc;

	if ((r = malloc(sizeof(*r))) == NULL)
		return TERN_ENOMEM;
	if ((rc = xfer_get(txn, s, msgid, r)) != TERN_OK)
		goto out;
	rc = tern_fail(TERN_EINVAL, "transfer %s has no attachment %u", msgid, att);
	if (att >= r->natt || index >= tern_attach_chunks(r->att[att].size, r->att[att].chunk_size))
		goto out;
	*have = r->att[att].have;
	rc = TERN_EEXIST;
	if (index != r->att[att].have)
		goto out;
	k = proof_key(pk, msgid, att, index);
	v = (MDB_val){proof_len, (void *)(proof_len ? proof : (const uint8_t *)"")};
	if ((rc = mdb_put(txn, DBI(s, BQ_XPROOF), &k, &v, 0)) != 0) {
		rc = MDB(rc, "write chunk proof");
		goto out;
	}
	tern_be64_put(hv, index + 1);
	k = have_key(hk, msgid, att);
	v = (MDB_val){8, hv};
	if ((rc = mdb_put(txn, DBI(s, BQ_XFER), &k, &v, 0)) != 0) {
		rc = MDB(rc, "write transfer count");
		goto out;
	}
	*have = index + 1;
	rc = TERN_OK;
out:
	free(r);
	return rc;
}

int xfer_proof_get(MDB_txn *txn, tern_store *s, const char *msgid, uint32_t att, uint64_t index,
                   const uint8_t **proof, size_t *len)
{
	uint8_t pk[48];
	MDB_val k, v;
	int rc;

	if (DBI(s, BQ_XPROOF) == 0 || !msgid_ok(msgid))
		return TERN_ENOENT;
	k = proof_key(pk, msgid, att, index);
	rc = mdb_get(txn, DBI(s, BQ_XPROOF), &k, &v);
	if (rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	if (rc != 0)
		return MDB(rc, "read chunk proof");
	*proof = v.mv_data;
	*len = v.mv_size;
	return TERN_OK;
}

/* Deletes every key of db that starts with msgid's 36 bytes. Each round
 * seeks again rather than trusting where a cursor stands after a delete. */
static int delete_prefix(MDB_txn *txn, MDB_dbi db, const char *msgid)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, db, &c)) != 0)
		return MDB(rc, "cursor");
	for (;;) {
		k = (MDB_val){36, (void *)msgid};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size < 36 || memcmp(k.mv_data, msgid, 36) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0 || (rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc ? MDB(rc, "delete transfer") : TERN_OK;
}

int xfer_delete(MDB_txn *txn, tern_store *s, const char *msgid)
{
	int rc;

	if (DBI(s, BQ_XFER) == 0 || !msgid_ok(msgid))
		return TERN_OK;
	if ((rc = delete_prefix(txn, DBI(s, BQ_XFER), msgid)) != TERN_OK)
		return rc;
	return delete_prefix(txn, DBI(s, BQ_XPROOF), msgid);
}

static int all_done(const xfer_rec *r)
{
	for (size_t i = 0; i < r->nrcpt; i++)
		if (!r->done[i])
			return 0;
	return 1;
}

int xfer_rcpt_done(MDB_txn *txn, tern_store *s, const char *msgid, const char *rcpt, int64_t now,
                   int64_t retain_ms, size_t *gone)
{
	xfer_rec *r;
	int rc, i;

	*gone = 0;
	if ((r = malloc(sizeof(*r))) == NULL)
		return TERN_ENOMEM;
	if ((rc = xfer_get(txn, s, msgid, r)) != TERN_OK)
		goto out;
	rc = TERN_ENOENT;
	if ((i = xfer_rcpt_index(r, rcpt)) < 0)
		goto out;
	if (r->done[i]) {
		rc = TERN_OK; /* said again (a restored recipient done again) */
		goto out;
	}
	r->done[i] = 1;
	if (all_done(r)) {
		if (retain_ms <= 0) {
			if ((rc = xfer_delete(txn, s, msgid)) == TERN_OK)
				*gone = r->natt;
			goto out;
		}
		/* Kept as the acknowledged queue items are: past the envelope's
		 * own expiry too, which a redelivery to a restored recipient
		 * does not check again. */
		r->expires = now + retain_ms;
	}
	rc = rec_put(txn, s, r, 0);
out:
	free(r);
	return rc;
}

/* What becomes of r now: 1 it ends (expired: retained past every
 * recipient's done until then; or every recipient done or dead-lettered,
 * none done, or retain 0), 2 it is retained from now (every recipient done
 * or dead-lettered, some done: those may be restored from a backup; the
 * dead-lettered ones count as done from here; or retained longer than a
 * lowered retain allows), 0 it goes on. */
static int xfer_fate(MDB_txn *txn, tern_store *s, const xfer_rec *r, int64_t now, int64_t retain_ms)
{
	int some_done = 0;

	if (r->expires <= now)
		return 1;
	if (all_done(r)) /* retained (xfer_rcpt_done, or here), for at most retain now */
		return retain_ms <= 0 ? 1 : r->expires > now + retain_ms ? 2 : 0;
	for (size_t i = 0; i < r->nrcpt; i++) {
		some_done |= r->done[i];
		if (!r->done[i] && bq_dlq_has(txn, s, r->rcpt[i], r->msgid) != TERN_OK)
			return 0;
	}
	return some_done && retain_ms > 0 ? 2 : 1;
}

int xfer_sweep(MDB_txn *txn, tern_store *s, int64_t now, int64_t retain_ms, size_t max,
               xfer_gone_fn *gone, void *arg, size_t *n)
{
	MDB_cursor *c;
	MDB_val k, v;
	xfer_rec *r;
	char(*ids)[37] = NULL, (*keep)[37] = NULL;
	size_t nids = 0, nkeep = 0;
	int rc;

	*n = 0;
	if (DBI(s, BQ_XFER) == 0 || max == 0)
		return TERN_OK;
	r = malloc(sizeof(*r));
	ids = calloc(max, sizeof(*ids));
	keep = calloc(max, sizeof(*keep));
	rc = TERN_ENOMEM;
	if (r == NULL || ids == NULL || keep == NULL)
		goto out;
	/* First find them, then delete: no cursor walks what is being deleted. */
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_XFER), &c)) != 0) {
		rc = MDB(rc, "cursor");
		goto out;
	}
	while (nids < max && nkeep < max && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		int fate;
		if (k.mv_size != 36)
			continue; /* a count */
		memset(r, 0, sizeof(*r));
		memcpy(r->msgid, k.mv_data, 36);
		r->msgid[36] = 0;
		if (xfer_rec_decode(v.mv_data, v.mv_size, r) != TERN_OK)
			fate = 1; /* a damaged record goes too */
		else
			fate = xfer_fate(txn, s, r, now, retain_ms);
		if (fate == 1)
			memcpy(ids[nids++], r->msgid, 37);
		else if (fate == 2)
			memcpy(keep[nkeep++], r->msgid, 37);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rc = MDB(rc, "read transfers");
		goto out;
	}
	for (size_t i = 0; i < nkeep; i++) {
		/* Retained as if every recipient had said ChunkDone now. */
		if ((rc = xfer_get(txn, s, keep[i], r)) != TERN_OK)
			goto out;
		for (size_t j = 0; j < r->nrcpt; j++)
			r->done[j] = 1;
		r->expires = now + retain_ms;
		if ((rc = rec_put(txn, s, r, 0)) != TERN_OK)
			goto out;
	}
	for (size_t i = 0; i < nids; i++) {
		size_t natt = TERN_ATTACH_MAX_COUNT; /* unknown: remove whatever is there */
		if (xfer_get(txn, s, ids[i], r) == TERN_OK)
			natt = r->natt;
		if ((rc = xfer_delete(txn, s, ids[i])) != TERN_OK)
			goto out;
		if (gone)
			gone(ids[i], natt, arg);
	}
	*n = nids;
	rc = TERN_OK;
out:
	free(ids);
	free(keep);
	free(r);
	return rc;
}

uint64_t xfer_att_bytes(const xfer_att *a)
{
	uint64_t plain;

	if (a->chunk_size == 0)
		return 0;
	plain = a->have * (uint64_t)a->chunk_size;
	if (plain > a->size)
		plain = a->size;
	return plain + a->have * TERN_ATTACH_TAG_LEN;
}

int xfer_scan_bytes(MDB_txn *txn, tern_store *s,
                    void (*fn)(const char *rcpt, uint64_t bytes, void *arg), void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	xfer_rec *r;
	int rc;

	if (DBI(s, BQ_XFER) == 0)
		return TERN_OK;
	if ((r = malloc(sizeof(*r))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory reading the transfers");
	if ((rc = mdb_cursor_open(txn, DBI(s, BQ_XFER), &c)) != 0) {
		free(r);
		return MDB(rc, "cursor");
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		char id[37];
		uint64_t bytes = 0;
		if (k.mv_size != 36)
			continue;
		memcpy(id, k.mv_data, 36);
		id[36] = 0;
		if (xfer_get(txn, s, id, r) != TERN_OK)
			continue;
		size_t open = 0;
		for (size_t i = 0; i < r->natt; i++)
			bytes += xfer_att_bytes(&r->att[i]);
		for (size_t i = 0; i < r->nrcpt; i++)
			if (!r->done[i]) {
				fn(r->rcpt[i], bytes, arg);
				open++;
			}
		if (open == 0)
			fn(NULL, bytes, arg);
	}
	mdb_cursor_close(c);
	free(r);
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "read transfers");
}

struct xfer_add {
	bq_dest *d;
	size_t n;
	int nomem;
};

/* Adds a transfer's bytes to rcpt's figures (an xfer_scan_bytes callback). */
static void stats_xfer(const char *rcpt, uint64_t bytes, void *arg)
{
	struct xfer_add *xa = arg;
	size_t i;

	if (rcpt == NULL)
		return; /* retained: no destination waits for it */
	for (i = 0; i < xa->n && strcmp(xa->d[i].id, rcpt) != 0; i++)
		;
	if (i == xa->n) {
		bq_dest *nd = realloc(xa->d, (xa->n + 1) * sizeof(*nd));
		if (nd == NULL) {
			xa->nomem = 1;
			return;
		}
		xa->d = nd;
		memset(&nd[i], 0, sizeof(*nd));
		snprintf(nd[i].id, sizeof(nd[i].id), "%s", rcpt);
		nd[i].oldest = INT64_MAX;
		xa->n++;
	}
	xa->d[i].transfer_bytes += bytes;
}

int xfer_stats_add(MDB_txn *txn, tern_store *s, bq_dest **d, size_t *n)
{
	struct xfer_add xa = {*d, *n, 0};
	int rc = xfer_scan_bytes(txn, s, stats_xfer, &xa);

	*d = xa.d;
	*n = xa.n;
	return rc == TERN_OK && xa.nomem ? TERN_ENOMEM : rc;
}

static void add_retained(const char *rcpt, uint64_t bytes, void *arg)
{
	if (rcpt == NULL)
		*(uint64_t *)arg += bytes;
}

int xfer_retained_bytes(MDB_txn *txn, tern_store *s, uint64_t *bytes)
{
	*bytes = 0;
	return xfer_scan_bytes(txn, s, add_retained, bytes);
}

/* --- spool files -------------------------------------------------------------- */

static int spool_path(char *out, size_t n, const char *dir, const char *msgid, uint32_t att)
{
	/* The id is checked: it names a file. */
	if (!msgid_ok(msgid) || strchr(msgid, '/') || msgid[0] == '.')
		return tern_fail(TERN_EINVAL, "transfer: bad message id");
	if ((size_t)snprintf(out, n, "%s/%s.%u", dir, msgid, att) >= n)
		return tern_fail(TERN_EINVAL, "transfer: spool path too long");
	return TERN_OK;
}

/* sync: fdatasync after the write; create: make dir and the file if missing. */
static int spool_put(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                     const uint8_t *data, size_t len, int sync, int create, int *err);

int xfer_spool_create(const char *dir, const char *msgid, uint32_t att, int *err)
{
	return spool_put(dir, msgid, att, 0, NULL, 0, 0, 1, err);
}

int xfer_spool_put(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                   const uint8_t *data, size_t len, int *err)
{
	return spool_put(dir, msgid, att, off, data, len, 0, 0, err);
}

int xfer_spool_write(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                     const uint8_t *data, size_t len, int *err)
{
	return spool_put(dir, msgid, att, off, data, len, 1, 1, err);
}

int xfer_spool_open_sync(const char *dir, const char *msgid, uint32_t att, int *fd, int *err)
{
	char path[1024];
	int rc;

	*err = 0;
	*fd = -1;
	if ((rc = spool_path(path, sizeof(path), dir, msgid, att)) != TERN_OK)
		return rc;
	if ((*fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
		*err = errno;
		return tern_fail(TERN_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
	}
	return TERN_OK;
}

static int spool_put(const char *dir, const char *msgid, uint32_t att, uint64_t off,
                     const uint8_t *data, size_t len, int sync, int create, int *err)
{
	char path[1024];
	size_t done = 0;
	int fd, rc;

	*err = 0;
	if ((rc = spool_path(path, sizeof(path), dir, msgid, att)) != TERN_OK)
		return rc;
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		*err = errno;
		return tern_fail(TERN_EIO, "cannot create %s: %s", dir, strerror(errno));
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0600)) < 0) {
		*err = errno;
		return tern_fail(TERN_EIO, "cannot open %s: %s", path, strerror(errno));
	}
	while (done < len) {
		ssize_t w = pwrite(fd, data + done, len - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*err = w < 0 ? errno : EIO;
			rc = tern_fail(TERN_EIO, "cannot write %s: %s", path, strerror(*err));
			goto out;
		}
		done += (size_t)w;
	}
	/* The count is committed after this returns: the bytes must be there. */
	if (sync && fdatasync(fd) != 0) {
		*err = errno;
		rc = tern_fail(TERN_EIO, "cannot sync %s: %s", path, strerror(errno));
		goto out;
	}
	rc = TERN_OK;
out:
	close(fd);
	return rc;
}

int xfer_spool_read(const char *dir, const char *msgid, uint32_t att, uint64_t off, uint8_t *buf,
                    size_t len)
{
	char path[1024];
	size_t done = 0;
	int fd, rc;

	if ((rc = spool_path(path, sizeof(path), dir, msgid, att)) != TERN_OK)
		return rc;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return tern_fail(TERN_EIO, "cannot open %s: %s", path, strerror(errno));
	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = tern_fail(TERN_EIO, "cannot read %s: %s", path,
			               r < 0 ? strerror(errno) : "short file");
			goto out;
		}
		done += (size_t)r;
	}
	rc = TERN_OK;
out:
	close(fd);
	return rc;
}

void xfer_spool_remove(tern_syncer *s, const char *dir, const char *msgid, size_t natt)
{
	char path[1024];

	for (size_t i = 0; i < natt; i++)
		if (spool_path(path, sizeof(path), dir, msgid, (uint32_t)i) == TERN_OK)
			(void)tern_syncer_unlink(s, path);
}

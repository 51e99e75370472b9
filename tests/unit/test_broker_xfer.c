/* The broker's attachment transfers in its store (broker/xfer.c): records
 * and counts, chunks committed only in order with their proofs, recipients
 * done, transfers ended by expiry, by every recipient or by dead letters,
 * the bytes `tern queues` shows, a read-only view of a store from before
 * transfers, and the spool files (places, modes, a full disk). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/attach.h>
#include <tern/error.h>
#include <tern/v1/wire.pb-c.h>

#include "queue.h"
#include "testutil.h"
#include "xfer.h"

#define ID1 "01a20598-0000-7000-8000-000000000001"
#define ID2 "01a20598-0000-7000-8000-000000000002"

static char dir[128];
static tern_store *st;
static uint8_t epoch[BQ_EPOCH_LEN];

static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "bx") != 0)
		return -1;
	return bq_open(dir, &st, epoch) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

/* --- helpers ------------------------------------------------------------------ */

struct create_job {
	const char *msgid;
	const char *const *rcpts;
	size_t nrcpt;
	size_t nseals;
	int64_t expires;
};

/* Seals: attachment i of 40000 + i bytes in chunks of 16 KiB (3 chunks). */
static int do_create(MDB_txn *txn, void *arg)
{
	struct create_job *j = arg;
	Tern__V1__AttachmentSeal seal[4], *seals[4];
	uint8_t roots[4][32];

	for (size_t i = 0; i < j->nseals; i++) {
		tern__v1__attachment_seal__init(&seal[i]);
		seal[i].size = 40000 + i;
		seal[i].chunk_size = 16384;
		memset(roots[i], (int)(0xa0 + i), 32);
		seal[i].root.data = roots[i];
		seal[i].root.len = 32;
		seals[i] = &seal[i];
	}
	return xfer_create(txn, st, j->msgid, "unhcr", (char *const *)j->rcpts, j->nrcpt,
	                   (const Tern__V1__AttachmentSeal *const *)seals, j->nseals, j->expires);
}

static const char *const two[] = {"sweden", "iom"};

static void create(const char *msgid, size_t nseals, int64_t expires)
{
	struct create_job j = {msgid, two, 2, nseals, expires};
	assert_int_equal(tern_store_write(st, do_create, &j), TERN_OK);
}

static int get(const char *msgid, xfer_rec *r)
{
	MDB_txn *txn;
	int rc;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	rc = xfer_get(txn, st, msgid, r);
	mdb_txn_abort(txn);
	return rc;
}

struct commit_job {
	const char *msgid;
	uint32_t att;
	uint64_t index, have;
	uint8_t proof[64];
	size_t proof_len;
};

static int do_commit(MDB_txn *txn, void *arg)
{
	struct commit_job *c = arg;
	return xfer_chunk_commit(txn, st, c->msgid, c->att, c->index, c->proof, c->proof_len,
	                         &c->have);
}

/* Commits chunk index of att with a proof of two hashes naming it;
 * returns the code, *have the count after. */
static int commit(const char *msgid, uint32_t att, uint64_t index, uint64_t *have)
{
	struct commit_job c = {msgid, att, index, 0, {0}, 64};
	int rc;

	memset(c.proof, (int)(index + 1), 32);
	memset(c.proof + 32, (int)(att + 1), 32);
	rc = tern_store_write(st, do_commit, &c);
	*have = c.have;
	return rc;
}

struct done_job {
	const char *msgid, *rcpt;
	size_t gone;
};

static int do_done(MDB_txn *txn, void *arg)
{
	struct done_job *d = arg;
	return xfer_rcpt_done(txn, st, d->msgid, d->rcpt, 1000, 0, &d->gone);
}

static int done(const char *msgid, const char *rcpt, size_t *gone)
{
	struct done_job d = {msgid, rcpt, 99};
	int rc = tern_store_write(st, do_done, &d);
	*gone = d.gone;
	return rc;
}

static int count_proofs(void)
{
	MDB_txn *txn;
	MDB_stat ms;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_stat(txn, tern_store_dbi(st, BQ_XPROOF), &ms), 0);
	mdb_txn_abort(txn);
	return (int)ms.ms_entries;
}

/* --- the cases ------------------------------------------------------------ */

/* A transfer is recorded with its sender, recipients, seals and expiry, none
 * done and nothing held; a message without attachments has none; creating it
 * again (a resubmission) keeps what was counted. */
static void test_create_and_get(void **state)
{
	xfer_rec *r = malloc(sizeof(*r));
	uint64_t have;

	(void)state;
	assert_non_null(r);
	assert_int_equal(get(ID1, r), TERN_ENOENT);
	create(ID2, 0, 5000);
	assert_int_equal(get(ID2, r), TERN_ENOENT);
	create(ID1, 2, 5000);
	assert_int_equal(get(ID1, r), TERN_OK);
	assert_string_equal(r->msgid, ID1);
	assert_string_equal(r->sender, "unhcr");
	assert_int_equal(r->expires, 5000);
	assert_int_equal(r->nrcpt, 2);
	assert_string_equal(r->rcpt[0], "sweden");
	assert_string_equal(r->rcpt[1], "iom");
	assert_int_equal(r->done[0] | r->done[1], 0);
	assert_int_equal(xfer_rcpt_index(r, "iom"), 1);
	assert_int_equal(xfer_rcpt_index(r, "unhcr"), -1);
	assert_int_equal(r->natt, 2);
	assert_int_equal(r->att[1].size, 40001);
	assert_int_equal(r->att[1].chunk_size, 16384);
	assert_int_equal(r->att[1].root[31], 0xa1);
	assert_int_equal(r->att[0].have, 0);
	{
		Tern__V1__AttachmentSeal s;
		xfer_seal(r, 1, &s);
		assert_int_equal(s.size, 40001);
		assert_int_equal(s.root.len, 32);
		assert_memory_equal(s.root.data, r->att[1].root, 32);
	}
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_OK);
	create(ID1, 2, 9999); /* again: kept as it was */
	assert_int_equal(get(ID1, r), TERN_OK);
	assert_int_equal(r->expires, 5000);
	assert_int_equal(r->att[0].have, 1);
	free(r);
}

/* Chunks are counted only in order: a repeat or a chunk ahead changes
 * nothing and says the count; the proof of each committed chunk is served
 * back as it was put; no chunk past the last one. */
static void test_chunks_in_order(void **state)
{
	xfer_rec r;
	uint64_t have = 77;
	MDB_txn *txn;
	const uint8_t *proof;
	size_t len;

	(void)state;
	create(ID1, 2, 5000);
	assert_int_equal(commit(ID1, 0, 1, &have), TERN_EEXIST);
	assert_int_equal(have, 0);
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_OK);
	assert_int_equal(have, 1);
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_EEXIST);
	assert_int_equal(have, 1);
	assert_int_equal(commit(ID1, 0, 1, &have), TERN_OK);
	assert_int_equal(commit(ID1, 0, 2, &have), TERN_OK);
	assert_int_equal(have, 3);
	/* 40000 bytes in 16 KiB chunks: 3 chunks, no fourth */
	assert_int_equal(commit(ID1, 0, 3, &have), TERN_EINVAL);
	assert_int_equal(commit(ID1, 2, 0, &have), TERN_EINVAL); /* no such attachment */
	assert_int_equal(commit(ID2, 0, 0, &have), TERN_ENOENT); /* no such transfer */
	assert_int_equal(commit(ID1, 1, 0, &have), TERN_OK);     /* attachments apart */
	assert_int_equal(get(ID1, &r), TERN_OK);
	assert_int_equal(r.att[0].have, 3);
	assert_int_equal(r.att[1].have, 1);

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(xfer_proof_get(txn, st, ID1, 0, 2, &proof, &len), TERN_OK);
	assert_int_equal(len, 64);
	assert_int_equal(proof[0], 3);  /* index 2 */
	assert_int_equal(proof[63], 1); /* attachment 0 */
	assert_int_equal(xfer_proof_get(txn, st, ID1, 1, 0, &proof, &len), TERN_OK);
	assert_int_equal(proof[63], 2);
	assert_int_equal(xfer_proof_get(txn, st, ID1, 1, 1, &proof, &len), TERN_ENOENT);
	mdb_txn_abort(txn);
	assert_int_equal(count_proofs(), 4);
}

/* The transfer ends when its last recipient is done, not before; only its
 * recipients count; its records and proofs go with it, and another
 * transfer's stay. */
static void test_recipients_done(void **state)
{
	xfer_rec r;
	size_t gone;
	uint64_t have;

	(void)state;
	create(ID1, 2, 5000);
	create(ID2, 1, 5000);
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_OK);
	assert_int_equal(commit(ID2, 0, 0, &have), TERN_OK);
	assert_int_equal(done(ID1, "unhcr", &gone), TERN_ENOENT); /* the sender is not one */
	assert_int_equal(done(ID1, "sweden", &gone), TERN_OK);
	assert_int_equal(gone, 0);
	assert_int_equal(get(ID1, &r), TERN_OK);
	assert_int_equal(r.done[0], 1);
	assert_int_equal(r.done[1], 0);
	assert_int_equal(r.att[0].have, 1);                    /* the counts stay with the record */
	assert_int_equal(done(ID1, "sweden", &gone), TERN_OK); /* said twice */
	assert_int_equal(gone, 0);
	assert_int_equal(done(ID1, "iom", &gone), TERN_OK);
	assert_int_equal(gone, 2);
	assert_int_equal(get(ID1, &r), TERN_ENOENT);
	assert_int_equal(done(ID1, "iom", &gone), TERN_ENOENT);
	assert_int_equal(count_proofs(), 1); /* ID2's */
	assert_int_equal(get(ID2, &r), TERN_OK);
	assert_int_equal(r.att[0].have, 1);
}

struct sweep_job {
	int64_t now, retain_ms;
	size_t n, ngone;
	char ids[4][37];
	size_t natt[4];
};

static void on_gone(const char *msgid, size_t natt, void *arg)
{
	struct sweep_job *j = arg;

	if (j->ngone < 4) {
		snprintf(j->ids[j->ngone], 37, "%s", msgid);
		j->natt[j->ngone] = natt;
	}
	j->ngone++;
}

static int do_sweep(MDB_txn *txn, void *arg)
{
	struct sweep_job *j = arg;
	j->ngone = 0;
	return xfer_sweep(txn, st, j->now, j->retain_ms, 16, on_gone, j, &j->n);
}

/* Expired transfers end on the sweep, the others stay. */
static void test_sweep_expired(void **state)
{
	struct sweep_job j = {.now = 6000};
	xfer_rec r;

	(void)state;
	create(ID1, 2, 5000);
	create(ID2, 1, 7000);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(j.n, 1);
	assert_int_equal(j.ngone, 1);
	assert_string_equal(j.ids[0], ID1);
	assert_int_equal(j.natt[0], 2);
	assert_int_equal(get(ID1, &r), TERN_ENOENT);
	assert_int_equal(get(ID2, &r), TERN_OK);
	j.now = 6500;
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(j.n, 0);
	j.now = 7000;
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(j.n, 1);
	assert_int_equal(get(ID2, &r), TERN_ENOENT);
}

struct dead_job {
	const char *rcpt, *msgid;
};

/* Queues msgid for rcpt and dead-letters it, as max attempts or a
 * revocation would. */
static int do_dead(MDB_txn *txn, void *arg)
{
	struct dead_job *d = arg;
	bq_item it = {.kind = BQ_ENVELOPE, .expires_at = 1000000, .enqueued_at = 1};
	uint64_t seq;
	int rc;

	snprintf(it.sender, sizeof(it.sender), "unhcr");
	memcpy(it.msgid, d->msgid, 37);
	it.payload = (const uint8_t *)"env";
	it.len = 3;
	if ((rc = bq_append(txn, st, d->rcpt, &it, &seq)) != TERN_OK)
		return rc;
	return bq_dead_letter(txn, st, d->rcpt, seq, TERN__V1__NOTICE__KIND__DEAD_LETTERED,
	                      "max-attempts", 10);
}

/* A recipient whose copy was dead-lettered will never ask: it counts as
 * done. One such recipient is not enough while another waits. */
static void test_sweep_dead_letters(void **state)
{
	struct sweep_job j = {.now = 100};
	struct dead_job d1 = {"iom", ID1}, d2 = {"sweden", ID1};
	xfer_rec r;
	MDB_txn *txn;

	(void)state;
	create(ID1, 1, 5000);
	assert_int_equal(tern_store_write(st, do_dead, &d1), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_dlq_has(txn, st, "iom", ID1), TERN_OK);
	assert_int_equal(bq_dlq_has(txn, st, "sweden", ID1), TERN_ENOENT);
	assert_int_equal(bq_dlq_has(txn, st, "iom", ID2), TERN_ENOENT);
	mdb_txn_abort(txn);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(j.n, 0);
	assert_int_equal(get(ID1, &r), TERN_OK);
	assert_int_equal(tern_store_write(st, do_dead, &d2), TERN_OK);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(j.n, 1);
	assert_int_equal(get(ID1, &r), TERN_ENOENT);
}

static const bq_dest *dest_of(const bq_dest *d, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].id, id) == 0)
			return &d[i];
	return NULL;
}

/* `tern queues`: the bytes held for each recipient not done, sealed (tags
 * counted), the last chunk short; a destination with nothing queued but
 * bytes held is shown; in the JSON as transfer_bytes. */
static void test_stats_bytes(void **state)
{
	MDB_txn *txn;
	bq_dest *d;
	size_t n, gone;
	uint64_t have;
	json_t *js;

	(void)state;
	create(ID1, 2, 5000);
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_OK);
	assert_int_equal(commit(ID1, 0, 1, &have), TERN_OK);
	assert_int_equal(commit(ID1, 0, 2, &have), TERN_OK);
	assert_int_equal(commit(ID1, 1, 0, &have), TERN_OK);
	assert_int_equal(done(ID1, "iom", &gone), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_stats(txn, st, &d, &n), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(n, 1);
	assert_non_null(dest_of(d, n, "sweden"));
	assert_null(dest_of(d, n, "iom"));
	/* all of attachment 0 (40000 + 3 tags), one chunk of attachment 1 */
	assert_int_equal(dest_of(d, n, "sweden")->transfer_bytes, 40000 + 3 * 16 + 16384 + 16);
	assert_int_equal(dest_of(d, n, "sweden")->depth, 0);
	js = bq_stats_json(d, n, 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(js, 0), "transfer_bytes")),
	    40000 + 3 * 16 + 16384 + 16);
	json_decref(js);
	free(d);
	assert_int_equal(done(ID1, "sweden", &gone), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_stats(txn, st, &d, &n), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(n, 0);
	free(d);
}

/* A store written before transfers existed, opened read-only by an
 * operator's tool: no transfers, and `tern queues` works. */
static void test_rdonly_old_store(void **state)
{
	static const char *const old[] = {"meta",    "queue",    "expiry",
	                                  "dedup",   "dlq",      TERN_AUDIT_DBNAMES,
	                                  "?acklog", "?stublog", NULL};
	tern_store *o = NULL, *ro = NULL;
	char odir[160];
	MDB_txn *txn;
	xfer_rec r;
	bq_dest *d;
	size_t n;

	(void)state;
	snprintf(odir, sizeof(odir), "%s/old", dir);
	assert_int_equal(tern_store_open(odir, old, 0, 0, &o), TERN_OK);
	tern_store_close(&o);
	assert_int_equal(bq_open_rdonly(odir, &ro), TERN_OK);
	assert_int_equal(tern_store_dbi(ro, BQ_XFER), 0);
	assert_int_equal(tern_store_read_begin(ro, &txn), TERN_OK);
	assert_int_equal(xfer_get(txn, ro, ID1, &r), TERN_ENOENT);
	assert_int_equal(bq_stats(txn, ro, &d, &n), TERN_OK);
	assert_int_equal(n, 0);
	free(d);
	mdb_txn_abort(txn);
	tern_store_close(&ro);
}

/* Chunks at their slots, read back; the directory 0700 and the files 0600;
 * a bad id names no file; the files go. */
static void test_spool(void **state)
{
	char cdir[160], path[256];
	uint8_t a[100], b[100];
	int err = -1;

	(void)state;
	snprintf(cdir, sizeof(cdir), "%s/chunks", dir);
	memset(a, 0x11, sizeof(a));
	assert_int_equal(xfer_spool_write(cdir, ID1, 3, 1000, a, sizeof(a), &err), TERN_OK);
	assert_int_equal(err, 0);
	assert_int_equal(tt_file_mode(cdir), 0700);
	snprintf(path, sizeof(path), "%s/%s.3", cdir, ID1);
	assert_int_equal(tt_file_mode(path), 0600);
	assert_int_equal(xfer_spool_read(cdir, ID1, 3, 1000, b, sizeof(b)), TERN_OK);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(xfer_spool_read(cdir, ID1, 3, 1050, b, sizeof(b)), TERN_EIO); /* short */
	assert_int_equal(xfer_spool_read(cdir, ID1, 2, 0, b, 1), TERN_EIO);
	assert_int_equal(
	    xfer_spool_write(cdir, "../../etc/passwd-0000-0000-0000-00000", 0, 0, a, 1, &err),
	    TERN_EINVAL);
	xfer_spool_remove(NULL, cdir, ID1, 4);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* The chunk-writing thread's write goes only into a file that exists: a
 * transfer that ended while its chunk waited had its files removed, and the
 * write must not make one again (nothing would ever remove it). The loop
 * makes the file while the transfer exists. */
static void test_spool_put_needs_the_file(void **state)
{
	char cdir[160], path[256];
	uint8_t a[100], b[100];
	int err = 0;

	(void)state;
	snprintf(cdir, sizeof(cdir), "%s/chunks", dir);
	snprintf(path, sizeof(path), "%s/%s.0", cdir, ID1);
	memset(a, 0x22, sizeof(a));
	assert_int_equal(xfer_spool_create(cdir, ID1, 0, &err), TERN_OK);
	assert_int_equal(tt_file_mode(path), 0600);
	assert_int_equal(xfer_spool_put(cdir, ID1, 0, 500, a, sizeof(a), &err), TERN_OK);
	assert_int_equal(xfer_spool_read(cdir, ID1, 0, 500, b, sizeof(b)), TERN_OK);
	assert_memory_equal(a, b, sizeof(a));
	xfer_spool_remove(NULL, cdir, ID1, 1); /* the transfer ended */
	assert_int_equal(xfer_spool_put(cdir, ID1, 0, 500, a, sizeof(a), &err), TERN_EIO);
	assert_int_equal(err, ENOENT);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* A full disk: the write fails with ENOSPC told apart, so the broker can
 * say no-space and go on. /dev/full stands in for the disk. */
static void test_spool_full(void **state)
{
	char cdir[160], path[256];
	uint8_t a[64] = {0};
	int err = 0;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	snprintf(cdir, sizeof(cdir), "%s/chunks", dir);
	assert_int_equal(mkdir(cdir, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s.0", cdir, ID1);
	assert_int_equal(symlink("/dev/full", path), 0);
	assert_int_equal(xfer_spool_write(cdir, ID1, 0, 0, a, sizeof(a), &err), TERN_EIO);
	assert_int_equal(err, ENOSPC);
	assert_int_equal(unlink(path), 0);
}

/* A stored record as xfer_create writes it (version, expiry, sender, one
 * recipient, one attachment of size bytes in chunks of chunk_size). */
static size_t rec_bytes(uint8_t *b, uint64_t size, uint32_t chunk_size)
{
	size_t n = 0;

	b[n++] = 1; /* the record format's version (xfer.c) */
	for (int i = 7; i >= 0; i--)
		b[n++] = (uint8_t)((uint64_t)1795390000000 >> (8 * i));
	b[n++] = 5;
	memcpy(b + n, "unhcr", 5);
	n += 5;
	b[n++] = 1;
	b[n++] = 6;
	memcpy(b + n, "sweden", 6);
	n += 6;
	b[n++] = 0;
	b[n++] = 1;
	for (int i = 7; i >= 0; i--)
		b[n++] = (uint8_t)(size >> (8 * i));
	for (int i = 3; i >= 0; i--)
		b[n++] = (uint8_t)(chunk_size >> (8 * i));
	memset(b + n, 0xab, 32);
	return n + 32;
}

/* A damaged store's record with an attachment larger than any
 * [limits] max_attachment_size allows is refused: its chunk count times the
 * slot width would wrap past 2^64 (a chunk's place in the spool before an
 * earlier one's). Before, only a size of 0 was refused
 * (tests/fuzz/regressions/xfer/broker-size-over-limit). */
static void test_decode_refuses_size_over_limit(void **state)
{
	uint8_t b[256];
	xfer_rec *r = calloc(1, sizeof(*r));
	size_t n;

	(void)state;
	assert_non_null(r);
	n = rec_bytes(b, TERN_ATTACH_MAX_SIZE_LIMIT, TERN_ATTACH_CHUNK_MIN);
	assert_int_equal(xfer_rec_decode(b, n, r), TERN_OK);
	assert_int_equal(r->natt, 1);
	assert_int_equal(r->att[0].size, TERN_ATTACH_MAX_SIZE_LIMIT);
	assert_string_equal(r->sender, "unhcr");
	n = rec_bytes(b, TERN_ATTACH_MAX_SIZE_LIMIT + 1, TERN_ATTACH_CHUNK_MIN);
	assert_int_equal(xfer_rec_decode(b, n, r), TERN_EMALFORMED);
	n = rec_bytes(b, UINT64_MAX, TERN_ATTACH_CHUNK_MAX);
	assert_int_equal(xfer_rec_decode(b, n, r), TERN_EMALFORMED);
	free(r);
}

struct done_retain_job {
	const char *msgid, *rcpt;
	int64_t now, retain_ms;
	size_t gone;
};

static int do_done_retain(MDB_txn *txn, void *arg)
{
	struct done_retain_job *d = arg;
	return xfer_rcpt_done(txn, st, d->msgid, d->rcpt, d->now, d->retain_ms, &d->gone);
}

/* With [delivery] retain, a transfer some recipients completed (ChunkDone)
 * while the others' copies were dead-lettered is retained from the sweep
 * that finds it so, as if the last had said ChunkDone: sweden, put back from
 * a copy taken before it had the attachments, is given the envelope again
 * and finds the chunks. Before (a review's test), it ended at that sweep.
 * (A recipient that refuses the message at once now says ChunkDone too:
 * nodes/xfer_in.c.) */
static void test_done_retained_when_another_is_dead_lettered(void **state)
{
	struct done_retain_job dn = {ID1, "sweden", 100, 3600000, 99};
	struct dead_job d = {"iom", ID1};
	struct sweep_job j = {.now = 200, .retain_ms = 3600000};
	xfer_rec r;

	(void)state;
	create(ID1, 1, 5000);
	assert_int_equal(tern_store_write(st, do_done_retain, &dn), TERN_OK);
	assert_int_equal(dn.gone, 0);
	assert_int_equal(tern_store_write(st, do_dead, &d), TERN_OK);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	if (get(ID1, &r) != TERN_OK)
		fail_msg("sweden's transfer ended at the sweep after iom's copy was dead-lettered, "
		         "not retain after its ChunkDone");
	j.now = 6000; /* past the envelope's expiry, within retain of sweden's done */
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	if (get(ID1, &r) != TERN_OK)
		fail_msg("sweden's transfer ended at the envelope's expiry, within retain of its "
		         "ChunkDone");
}

/* A retained transfer follows [delivery] retain lowered since: at the next
 * sweep it is kept for at most the new retain, and retain 0 ends it, as
 * acknowledged queue items are purged (a review's finding: it kept the
 * expiry it was given). */
static void test_retained_follows_a_lowered_retain(void **state)
{
	struct done_retain_job dn = {ID1, "sweden", 100, 3600000, 99};
	struct done_retain_job dn2 = {ID1, "iom", 100, 3600000, 99};
	struct sweep_job j = {.now = 200, .retain_ms = 1000};
	xfer_rec r;

	(void)state;
	create(ID1, 1, 5000);
	assert_int_equal(tern_store_write(st, do_done_retain, &dn), TERN_OK);
	assert_int_equal(tern_store_write(st, do_done_retain, &dn2), TERN_OK);
	assert_int_equal(get(ID1, &r), TERN_OK);
	assert_int_equal(r.expires, 100 + 3600000);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(get(ID1, &r), TERN_OK);
	assert_int_equal(r.expires, 200 + 1000); /* the lowered retain */
	j.now = 300;
	j.retain_ms = 0; /* none */
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(get(ID1, &r), TERN_ENOENT);
}

static uint64_t retained_bytes(void)
{
	MDB_txn *txn;
	uint64_t b = 99;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(xfer_retained_bytes(txn, st, &b), TERN_OK);
	mdb_txn_abort(txn);
	return b;
}

/* The bytes kept after every recipient had them are shown (`tern queues`,
 * tern_broker_transfer_retained_bytes): a review found them in no figure,
 * while [delivery] retain keeps them a week by default. Counted once per
 * transfer, not per recipient; none while a recipient waits (that is its
 * transfer_bytes), none once the retention ends. */
static void test_retained_bytes_shown(void **state)
{
	struct done_retain_job dn = {ID1, "sweden", 100, 3600000, 99};
	struct done_retain_job dn2 = {ID1, "iom", 100, 3600000, 99};
	struct sweep_job j = {.now = 300, .retain_ms = 0};
	uint64_t have;
	bq_dest *d;
	size_t n;
	MDB_txn *txn;

	(void)state;
	create(ID1, 2, 5000);
	assert_int_equal(commit(ID1, 0, 0, &have), TERN_OK);
	assert_int_equal(retained_bytes(), 0);
	assert_int_equal(tern_store_write(st, do_done_retain, &dn), TERN_OK);
	assert_int_equal(retained_bytes(), 0); /* iom still waits: its transfer_bytes */
	assert_int_equal(tern_store_write(st, do_done_retain, &dn2), TERN_OK);
	assert_int_equal(retained_bytes(), 16384 + 16);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(bq_stats(txn, st, &d, &n), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(n, 0); /* no destination waits for them */
	free(d);
	assert_int_equal(tern_store_write(st, do_sweep, &j), TERN_OK);
	assert_int_equal(retained_bytes(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_retained_follows_a_lowered_retain, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_done_retained_when_another_is_dead_lettered, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retained_bytes_shown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_and_get, setup, teardown),
	    cmocka_unit_test(test_decode_refuses_size_over_limit),
	    cmocka_unit_test_setup_teardown(test_chunks_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recipients_done, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep_expired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep_dead_letters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rdonly_old_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool_put_needs_the_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool_full, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

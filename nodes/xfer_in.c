/* Attachments coming in (docs/attachments.md): a delivered message that
 * carries attachments is kept as a transfer, acknowledged to the broker but
 * not judged, receipted or in the inbox, while its chunks are fetched; when
 * every chunk is in and each attachment is what the body declares, it is
 * judged as if it had just arrived (like a held delivery, held.c).
 *
 * Chunks are asked for [limits] attachment_window at a time and taken in
 * order. Each is checked against its signed seal, opened (its plaintext
 * only feeds the running SHA-256, never the disk: the spool keeps chunks
 * sealed, as they came) and written at its place in spool/in on the
 * opening thread (xfer_open.c), then synced, and only then counted in the
 * transfer's record; a restart resumes at the count, hashing again what
 * the spool holds of the attachment under way.
 *
 * About 1,100 lines: a transfer's record, its fetching and its judging
 * share its state and belong together, and so does what a shortage of
 * memory leaves to do (a transfer not started, a spool to reopen); what is
 * at rest once it is done (reading it back, removing it) is xfer_spool.c's.
 * The next split would take the store's part (records, their checks) out.
 *
 * Touches: spool/in, the xin and xinenv tables (the batch's write for a new
 * or finished transfer; its own small write per chunk), n->xins and
 * n->batch. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "pbuf.h"
#include "record.h"
#include "syncer.h"
#include "util.h"
#include "xfer_rec.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
#define XIN_SILENCE_MS 10000
/* A shortage ends a transfer no-memory only if it still held it back this
 * recently when its message expired: an older one, since over, says
 * nothing of chunks that then never came. */
#define XIN_STUCK_RECENT_MS (3 * XIN_SILENCE_MS)
/* Bad chunks of one transfer before the message is refused. */
#define XIN_MAX_FAILS 3

struct xin {
	char msgid[37], sender[64];
	struct node_att *atts;
	size_t natt;
	uint32_t att; /* the attachment being fetched */
	/* chunks committed (synced, counted in the record); written, not yet
	 * synced (node_xin_flush has them synced and commits them); asked for up
	 * to */
	uint64_t have, written, asked;
	/* Handed to the opening thread up to (written..queued are out there),
	 * how many of its jobs are out, and the thread's failure flag (see
	 * struct node_xopen_job). While jobs > 0 the loop leaves fd and hs
	 * alone and does not free the transfer. */
	uint64_t queued;
	int jobs, wfailed;
	/* A failure to act on once no job is out: the thread's first (the
	 * chunk, its result and reason) or a rewind the loop asked for. */
	int pend;
	enum node_xopen_result pend_result;
	uint64_t pend_index;
	char pend_why[256];
	int pend_rewind; /* and back to what is committed (a failed sync, ...) */
	char rewind_why[160];
	/* A sync under way on the node's syncer: slot + 1 in its batch (0:
	 * none) and the written count it makes durable; then to be committed. */
	int sync_slot;
	uint64_t sync_upto, commit_to;
	int fd;              /* spool/in of att, or -1 */
	uint8_t ck[32];      /* the message's content key */
	uint8_t key[32];     /* att's chunk key */
	tern_sha256_ctx *hs; /* the plaintext of att so far */
	int64_t until, last_io, retry_at;
	int fails;
	int ready;    /* 1: to be judged (complete, or failed with code) */
	int released; /* judged in the batch under way */
	char code[40], text[256];
	char stalled[160]; /* why the last chunks were not kept ("": they were) */
	/* The spool of att to open and hash again (rehash) before more is
	 * asked for: a shortage stopped that (tried again at retry_at). */
	int reopen;
	/* Its envelope not verified again, or its spool not hashed, for want
	 * of memory: started by the tick (xin_begin) at retry_at. */
	int unstarted;
	/* The shortages that have kept it from going on (started, its spool
	 * reopened, a chunk taken) since it last did: a lasting one
	 * (tern_nomem_final) when its message expires ends it no-memory. */
	tern_nomem stuck;
	int64_t stuck_last; /* the last of them, ms */
	int ask_short;      /* the last request for chunks could not be made */
	/* The last chunk that came was dropped for want of memory: each time
	 * it is asked for again (after the silence) counts as a try. */
	int chunk_short;
	tern_nomem nomem; /* its judging's shortages (backoff.h) */
};

static void spool_path(const node *n, const char *msgid, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/spool/in/%s.%zu", n->data_dir, msgid, i);
}

int node_atts_of(const Tern__V1__Header *h, const ProtobufCMessage *body, struct node_att **out,
                 size_t *n, char *why, size_t whylen)
{
	size_t nd;
	Tern__V1__Attachment **d = node_body_attachments(body, &nd);
	struct node_att *a;

	*out = NULL;
	*n = 0;
	if (nd != h->n_attachments) {
		snprintf(why, whylen,
		         "the body declares %zu attachment(s), the signed header seals %zu", nd,
		         h->n_attachments);
		return TERN_EINVALID;
	}
	if (nd == 0)
		return TERN_OK;
	if ((a = calloc(nd, sizeof(*a))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return TERN_ENOMEM;
	}
	for (size_t i = 0; i < nd; i++) {
		size_t bin = 0;
		const Tern__V1__AttachmentSeal *s = h->attachments[i];
		if (d[i]->size != s->size || strlen(d[i]->sha256) != 64 ||
		    sodium_hex2bin(a[i].sha256, 32, d[i]->sha256, 64, NULL, &bin, NULL) != 0 ||
		    bin != 32) {
			snprintf(why, whylen,
			         "attachments[%zu]: the body declares %llu bytes, its seal %llu", i,
			         (unsigned long long)d[i]->size, (unsigned long long)s->size);
			free(a);
			return TERN_EINVALID;
		}
		a[i].size = s->size;
		a[i].chunk_size = s->chunk_size;
		memcpy(a[i].root, s->root.data, 32);
	}
	*out = a;
	*n = nd;
	return TERN_OK;
}

/* --- the store ------------------------------------------------------------------ */

/* The stored form of x, into the caller's r, pb and ptrs (TERN_ATTACH_MAX_COUNT
 * of them): its strings and bytes point into x and the arguments. */
static void xin_record(const struct xin *x, const char *case_id, const char *type, node_xin_pb *r,
                       Tern__V1__TransferAttachment *pb, Tern__V1__TransferAttachment **ptrs)
{
	tern__v1__transfer_in_record__init(r);
	r->sender = (char *)x->sender;
	r->case_id = (char *)case_id;
	r->type = (char *)type;
	r->until = x->until;
	r->att = x->att;
	r->have = x->have;
	node_xfer_atts_pb(x->atts, x->natt, 1, pb, ptrs);
	r->n_atts = x->natt;
	r->atts = ptrs;
}

static int put_rec(MDB_txn *txn, tern_store *s, const char *msgid, const node_xin_pb *rec)
{
	int rc = node_rec_put(txn, DBI(s, NS_XIN), msgid, &rec->base);

	return rc == TERN_OK ? TERN_OK : tern_fail(rc, "record a transfer: %s", tern_errdetail());
}

int node_store_xin_has(MDB_txn *txn, tern_store *s, const char *msgid)
{
	MDB_val k = {strlen(msgid), (void *)msgid}, v;

	return DBI(s, NS_XIN) != 0 && mdb_get(txn, DBI(s, NS_XIN), &k, &v) == 0;
}

int node_xin_store(MDB_txn *txn, node *n, const struct din *d)
{
	MDB_val k = {strlen(d->msgid), (void *)d->msgid}, v;
	int rc;

	if (d->unxfer) {
		rc = mdb_del(txn, DBI(n->store, NS_XIN), &k, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_del(txn, DBI(n->store, NS_XINENV), &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return MDB(rc, "finish a transfer");
	}
	if (d->kind == DIN_XFER) {
		struct xin x = {.atts = d->atts, .natt = d->natts, .until = d->xfer_until};
		node_xin_pb rec;
		Tern__V1__TransferAttachment pb[TERN_ATTACH_MAX_COUNT],
		    *ptrs[TERN_ATTACH_MAX_COUNT];
		snprintf(x.sender, sizeof(x.sender), "%s", d->sender);
		xin_record(&x, d->case_id, d->type, &rec, pb, ptrs);
		if ((rc = put_rec(txn, n->store, d->msgid, &rec)) != TERN_OK)
			return rc;
		v = (MDB_val){d->len, d->env};
		if ((rc = MDB(mdb_put(txn, DBI(n->store, NS_XINENV), &k, &v, 0),
		              "keep a transfer's envelope")) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

/* --- in memory ------------------------------------------------------------------ */

static void xin_free(struct xin **xp)
{
	struct xin *x = *xp;

	if (x == NULL)
		return;
	if (x->fd >= 0)
		close(x->fd);
	sodium_memzero(x->ck, sizeof(x->ck));
	sodium_memzero(x->key, sizeof(x->key));
	tern_sha256_free(&x->hs);
	free(x->atts);
	free(x);
	*xp = NULL;
}

static struct xin *xin_find(const node *n, const char *msgid)
{
	for (size_t i = 0; i < n->nxins; i++)
		if (strcmp(n->xins[i]->msgid, msgid) == 0)
			return n->xins[i];
	return NULL;
}

int node_xin_active(const node *n, const char *msgid)
{
	return xin_find(n, msgid) != NULL;
}

static void fail(struct xin *x, tern_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct xin *x, tern_reason r, const char *fmt, ...)
{
	va_list ap;

	snprintf(x->code, sizeof(x->code), "%s", tern_reason_code(r));
	va_start(ap, fmt);
	vsnprintf(x->text, sizeof(x->text), fmt, ap);
	va_end(ap);
	x->ready = 1;
}

/* stuck: a shortage of this node's kept x from going on, at now; unstuck:
 * it went on. */
static void stuck(struct xin *x, int64_t now)
{
	tern_nomem_count(&x->stuck, now);
	x->stuck_last = now;
}

static void unstuck(struct xin *x)
{
	x->stuck = (tern_nomem){0, 0};
	x->stuck_last = 0;
}

/* x's time is up (now) with chunks missing. If a lasting shortage of this
 * node's held it back, that is what ends it: no-memory, the verdict of a
 * lasting shortage, not attachment-incomplete, which tells its sender the
 * chunks did not come. */
static void expire(struct xin *x, int64_t now)
{
	const char *what;

	/* None, a brief one, or one over well before the end (its chunks did
	 * not come once it was): the sender's chunks are what is missing. */
	/* Lasting means the shortage itself (its first count to its last) over
	 * TERN_NOMEM_SPAN_MS, not a moment's many counts long before the end:
	 * frames and requests can count several in one millisecond. */
	if (!tern_nomem_final(&x->stuck, x->stuck_last) ||
	    (!x->unstarted && !x->reopen && now - x->stuck_last > XIN_STUCK_RECENT_MS)) {
		fail(x, TERN_REASON_ATTACHMENT_INCOMPLETE,
		     "its attachments did not all arrive before it expired");
		return;
	}
	if (x->unstarted)
		what =
		    "start receiving the attachments (verify the envelope again, read the spool)";
	else if (x->reopen)
		what = "reopen the spool the attachment is written to";
	else if (x->ask_short)
		what = "ask the broker for the chunks";
	else
		what = "take the chunks that came";
	snprintf(x->code, sizeof(x->code), "%s", tern_errcode_name(TERN_ENOMEM));
	snprintf(x->text, sizeof(x->text),
	         "this node was short of memory until the message expired: it could not %s, on "
	         "every try; nothing is known to be wrong with the attachments",
	         what);
	x->ready = 1;
}

/* Opens attachment x->att's spool file and derives its key; the running
 * hash starts afresh (rehash feeds it what the spool holds). */
static int open_att(node *n, struct xin *x)
{
	char path[PATH_MAX];
	int rc;

	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (node_spool_dirs(n) != TERN_OK)
		return TERN_EIO;
	spool_path(n, x->msgid, x->att, path, sizeof(path));
	if ((x->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		/* Out of memory or of descriptors: a shortage, tried again. */
		return tern_fail(errno == ENOMEM || errno == EMFILE || errno == ENFILE ? TERN_ENOMEM
		                                                                       : TERN_EIO,
		                 "%s: %s", path, strerror(errno));
	if ((rc = tern_sha256_init(x->hs)) != TERN_OK ||
	    (rc = tern_attach_key(x->ck, x->att, x->key)) != TERN_OK) {
		/* Half open: nothing may be written to it until it is again. */
		close(x->fd);
		x->fd = -1;
	}
	return rc;
}

static int hash_piece(void *arg, uint64_t off, const uint8_t *buf, size_t len)
{
	(void)off;
	return tern_sha256_update(arg, buf, len);
}

/* open_att's re-hash, feeding x->hs. */
static int rehash(node *n, struct xin *x)
{
	const struct node_att *a = &x->atts[x->att];
	Tern__V1__AttachmentSeal seal = TERN__V1__ATTACHMENT_SEAL__INIT;
	uint64_t to = x->have * a->chunk_size > a->size ? a->size : x->have * a->chunk_size;
	int rc;

	if ((rc = open_att(n, x)) != TERN_OK || x->have == 0)
		return rc;
	seal.size = a->size;
	seal.chunk_size = a->chunk_size;
	seal.root.data = (uint8_t *)a->root;
	seal.root.len = 32;
	rc = tern_attach_open_fd(x->fd, &seal, x->key, x->msgid, x->att, 0, to, hash_piece, x->hs,
	                         NULL);
	if (rc != TERN_OK) { /* its hash is partial: nothing is written until it is redone */
		close(x->fd);
		x->fd = -1;
	}
	return rc;
}

static int xin_begin(node *n, struct xin *x, const uint8_t *env, size_t len);
static void att_complete(node *n, struct xin *x);

/* A transfer from its record and envelope: its content key unwrapped. */
static int xin_add(node *n, const char *msgid, const node_xin_pb *rec, const uint8_t *env,
                   size_t len)
{
	struct node_xin_rec *r;
	struct xin *x;
	int rc;

	if (xin_find(n, msgid))
		return TERN_OK;
	if (n->nxins == n->capxins) {
		size_t cap = n->capxins ? n->capxins * 2 : 8;
		struct xin **nx = realloc(n->xins, cap * sizeof(*nx));
		if (nx == NULL)
			return TERN_ENOMEM;
		n->xins = nx;
		n->capxins = cap;
	}
	/* The record's fields, checked (xfer_rec.c; the fuzzer reads them too). */
	if ((r = malloc(sizeof(*r))) == NULL)
		return TERN_ENOMEM;
	if (node_xin_record_parse(rec, r) != TERN_OK) {
		char why[200]; /* the detail is rewritten by tern_fail: a copy */
		snprintf(why, sizeof(why), "%s", tern_errdetail());
		free(r);
		return tern_fail(TERN_EMALFORMED, "transfer %s: a damaged record (%s)", msgid, why);
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		free(r);
		return TERN_ENOMEM;
	}
	x->fd = -1;
	snprintf(x->msgid, sizeof(x->msgid), "%s", msgid);
	snprintf(x->sender, sizeof(x->sender), "%s", r->sender);
	x->natt = r->natt;
	x->until = r->until;
	x->att = r->att;
	x->have = x->written = x->asked = x->queued = r->have;
	if ((x->atts = calloc(x->natt, sizeof(*x->atts))) == NULL ||
	    tern_sha256_new(&x->hs) != TERN_OK) {
		free(r);
		xin_free(&x);
		return TERN_ENOMEM;
	}
	memcpy(x->atts, r->atts, x->natt * sizeof(*x->atts));
	free(r);
	n->xins[n->nxins++] = x;
	if ((rc = xin_begin(n, x, env, len)) == TERN_ENOMEM) {
		/* No verdict on the transfer for a shortage: in memory (its time
		 * runs, the spool sweep keeps its file), started by the tick. */
		log_warnx("transfer %s: %s; started again in a second", msgid, tern_errdetail());
		x->unstarted = 1;
		x->retry_at = tern_now_ms() + 1000;
		stuck(x, tern_now_ms());
	}
	return TERN_OK;
}

/* x's content key, unwrapped from its envelope verified again (the store is
 * not trusted more than the wire), and its spool hashed so far. One that no
 * longer verifies or opens is refused; TERN_ENOMEM: nothing decided. */
static int xin_begin(node *n, struct xin *x, const uint8_t *env, size_t len)
{
	tern_verify_opts o = {
	    .max_size = (size_t)n->max_msg, .future_skew_only = 1, .max_skew_ms = INT64_MAX / 4};
	tern_envelope *e = NULL;
	int rc;

	rc = tern_envelope_verify(env, len, n->id.dir, &o, &e);
	if (rc == TERN_OK)
		rc = tern_envelope_content_key(e, n->id.id, n->id.seal, n->seals, x->ck);
	tern_envelope_free(&e);
	if (rc == TERN_ENOMEM)
		return rc;
	if (rc != TERN_OK) {
		fail(x, TERN_REASON_CANNOT_OPEN, "%s", tern_errdetail());
		return TERN_OK;
	}
	if ((rc = rehash(n, x)) == TERN_OK) {
		const struct node_att *a = &x->atts[x->att];
		/* Every chunk of it counted before a restart, its digest not yet
		 * checked: nothing more would come to complete it, and it would end
		 * attachment-incomplete, though all is in. */
		if (x->have == tern_attach_chunks(a->size, a->chunk_size))
			att_complete(n, x);
		return TERN_OK;
	}
	if (rc == TERN_ENOMEM)
		return rc;
	/* The spool lost what the record counts (a disk restored?): fetch this
	 * attachment again from its start. */
	log_warnx("transfer %s: the spool does not hold the %llu chunks counted of "
	          "attachment %u (%s): fetching it again",
	          x->msgid, (unsigned long long)x->have, x->att, tern_errdetail());
	x->have = x->written = x->asked = x->queued = 0;
	if ((rc = open_att(n, x)) == TERN_ENOMEM) {
		x->reopen = 1;
		stuck(x, tern_now_ms());
	} else if (rc != TERN_OK)
		fail(x, TERN_REASON_NO_SPACE, "cannot open the spool: %s", tern_errdetail());
	return TERN_OK;
}

/* xin_begin again for a transfer that a shortage left unstarted. */
static int xin_restart(node *n, struct xin *x)
{
	MDB_val k = {36, x->msgid}, v;
	MDB_txn *txn;
	int rc;

	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return TERN_ENOMEM; /* every reader busy: the same, a second later */
	if (mdb_get(txn, DBI(n->store, NS_XINENV), &k, &v) != 0) {
		mdb_txn_abort(txn);
		fail(x, TERN_REASON_CANNOT_OPEN, "its envelope is not in the store");
		return TERN_OK;
	}
	rc = xin_begin(n, x, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return rc;
}

/* node_xin_load found something it could not read or start: again later. */
static void reload_later(node *n)
{
	n->xin_reload_wait = n->xin_reload_wait ? n->xin_reload_wait * 2 : 1000;
	if (n->xin_reload_wait > 60000)
		n->xin_reload_wait = 60000;
	n->xin_reload_at = tern_now_ms() + n->xin_reload_wait;
}

int node_xin_load(node *n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v, ev;
	int rc, again = 0;

	if (DBI(n->store, NS_XIN) == 0)
		return TERN_OK;
	/* What cannot be read or started now waits in the store and is tried
	 * again (node_xin_tick), at most every minute: a shortage passes; a
	 * damaged record is said again each time, for an operator to see. */
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK) {
		reload_later(n);
		return rc;
	}
	if (mdb_cursor_open(txn, DBI(n->store, NS_XIN), &c) != 0) {
		mdb_txn_abort(txn);
		reload_later(n);
		return tern_fail(TERN_EIO, "cannot read the transfers");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		node_xin_pb *rec = NULL;
		char id[37];
		if (k.mv_size != 36)
			continue;
		memcpy(id, k.mv_data, 36);
		id[36] = '\0';
		if (xin_find(n, id) || mdb_get(txn, DBI(n->store, NS_XINENV), &k, &ev) != 0)
			continue;
		if (node_xin_record_decode(v.mv_data, v.mv_size, &rec) != TERN_OK ||
		    xin_add(n, id, rec, ev.mv_data, ev.mv_size) != TERN_OK) {
			log_warnx("transfer %s: %s", id, tern_errdetail());
			again = 1;
		}
		if (rec)
			protobuf_c_message_free_unpacked(&rec->base, NULL);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (again)
		reload_later(n);
	else
		n->xin_reload_wait = 0;
	return TERN_OK;
}

void node_xin_free(node *n)
{
	for (size_t i = 0; i < n->nxins; i++)
		xin_free(&n->xins[i]);
	free(n->xins);
	n->xins = NULL;
	n->nxins = n->capxins = 0;
}

/* --- fetching ------------------------------------------------------------------- */

/* Asks the broker for x's next chunks (now: the caller's time, for the
 * shortage count). */
static void request(node *n, struct xin *x, int64_t now)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__ChunkGet g = TERN__V1__CHUNK_GET__INIT;
	const struct node_att *a = &x->atts[x->att];
	uint64_t nc = tern_attach_chunks(a->size, a->chunk_size), left = nc - x->queued;

	/* x->reopen: its spool is not open (a shortage); the tick reopens it
	 * first, and nothing may arrive for it until then. */
	if (!n->connected || x->ready || x->pend || x->reopen || x->unstarted || x->queued >= nc)
		return;
	{
		/* Its turn: among the first NODE_XFER_ACTIVE still fetching. */
		size_t ahead = 0;
		for (size_t i = 0; i < n->nxins && n->xins[i] != x; i++)
			ahead += !n->xins[i]->ready;
		if (ahead >= NODE_XFER_ACTIVE)
			return;
	}
	g.message_id = x->msgid;
	g.attachment = x->att;
	g.from = x->queued;
	g.count = (uint32_t)(left < (uint64_t)n->att_window ? left : (uint64_t)n->att_window);
	f.body_case = TERN__V1__FRAME__BODY_CHUNK_GET;
	f.chunk_get = &g;
	if (node_bulk_send(n, &f) == TERN_ENOMEM) {
		/* Not asked: this node's shortage, counted (expire), not the
		 * sender's chunks missing; asked again at the next tick. */
		stuck(x, now);
		x->ask_short = 1;
		return;
	}
	x->ask_short = 0;
	x->asked = x->queued + g.count;
	x->last_io = tern_now_ms();
}

void node_xin_short(node *n, int64_t now)
{
	for (size_t i = 0; i < n->nxins; i++)
		if (!n->xins[i]->ready && !n->xins[i]->pend)
			stuck(n->xins[i], now);
}

/* Counts what the syncer made durable of each transfer (commit_to), in one
 * transaction. */
static int have_apply(MDB_txn *txn, void *arg)
{
	node *n = arg;
	struct node_xin_rec *chk = NULL;
	int rc = TERN_OK;

	for (size_t i = 0; i < n->nxins; i++) {
		struct xin *x = n->xins[i];
		MDB_val k = {36, x->msgid}, v;
		node_xin_pb *rec = NULL;
		if (x->commit_to <= x->have || x->ready || x->pend)
			continue;
		if ((rc = mdb_get(txn, DBI(n->store, NS_XIN), &k, &v)) != 0) {
			rc = MDB(rc, "read a transfer");
			goto out;
		}
		if ((rc = node_xin_record_decode(v.mv_data, v.mv_size, &rec)) != TERN_OK) {
			rc = tern_fail(rc, "transfer %s: %s", x->msgid, tern_errdetail());
			goto out;
		}
		/* Checked before it is written back, as a restart will read it: a
		 * record stored damaged would lose the transfer. */
		rec->att = x->att;
		rec->have = x->commit_to;
		if ((chk == NULL && (chk = malloc(sizeof(*chk))) == NULL) ||
		    node_xin_record_parse(rec, chk) != TERN_OK) {
			rc = chk ? tern_fail(TERN_EMALFORMED, "transfer %s: %s", x->msgid,
			                     tern_errdetail())
			         : tern_fail(TERN_ENOMEM, "transfer %s: its record not rewritten",
			                     x->msgid);
			protobuf_c_message_free_unpacked(&rec->base, NULL);
			goto out;
		}
		rc = put_rec(txn, n->store, x->msgid, rec);
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		if (rc != TERN_OK)
			goto out;
	}
out:
	free(chk);
	return rc;
}

/* Back to what is committed: the chunks written since are fetched again
 * (their bytes in the spool are overwritten), the running hash re-read. */
static void rewind_to_have(node *n, struct xin *x, const char *why)
{
	int rc;

	if (x->jobs > 0) {
		/* The thread still has chunks of it: done once they are back
		 * (act); meanwhile nothing more of it is synced or counted. */
		if (!x->pend) {
			x->pend = 1;
			x->pend_result = NODE_XOPEN_OK;
		}
		if (!x->pend_rewind) {
			x->pend_rewind = 1;
			snprintf(x->rewind_why, sizeof(x->rewind_why), "%s", why);
		}
		return;
	}
	log_warnx("transfer %s: chunks %llu to %llu not kept (%s); asked again in 5 s", x->msgid,
	          (unsigned long long)x->have, (unsigned long long)x->written, why);
	snprintf(x->stalled, sizeof(x->stalled), "%s", why);
	x->written = x->asked = x->queued = x->have;
	x->sync_slot = 0; /* a sync under way counts for nothing now */
	x->commit_to = 0;
	x->retry_at = tern_now_ms() + 5000;
	if ((rc = rehash(n, x)) == TERN_ENOMEM) {
		x->reopen = 1; /* again at retry_at: no verdict for a shortage */
		stuck(x, tern_now_ms());
	} else if (rc != TERN_OK)
		fail(x, TERN_REASON_NO_SPACE, "cannot read the spool again: %s", tern_errdetail());
}

/* The attachment under way is complete and committed: its digest is
 * checked, then the next one starts, or the transfer is ready. */
static void att_complete(node *n, struct xin *x)
{
	const struct node_att *a = &x->atts[x->att];
	uint8_t got[32];
	int rc;

	if (tern_sha256_final(x->hs, got) != TERN_OK)
		memset(got, 0, sizeof(got));
	if (sodium_memcmp(got, a->sha256, 32) != 0) {
		char hex[65];
		sodium_bin2hex(hex, sizeof(hex), got, 32);
		fail(x, TERN_REASON_ATTACHMENT_MISMATCH,
		     "attachment %u has SHA-256 %s, not the one its message declares", x->att, hex);
		return;
	}
	if (x->att + 1 == x->natt) {
		x->ready = 1;
		return;
	}
	x->att++;
	x->have = x->written = x->asked = x->queued = 0;
	if ((rc = open_att(n, x)) == TERN_ENOMEM) {
		x->reopen = 1;
		x->retry_at = tern_now_ms() + 1000;
		stuck(x, tern_now_ms());
	} else if (rc != TERN_OK) {
		fail(x, TERN_REASON_NO_SPACE, "cannot open the spool: %s", tern_errdetail());
	}
}

/* The syncer's batch is done: each transfer in it has its chunks up to
 * sync_upto durable (commit_to), or goes back to what is committed. */
static void xin_collect(node *n)
{
	int errs[TERN_SYNCER_MAX];
	size_t ne = 0;

	if (tern_syncer_collect(n->xsync, errs, &ne) != TERN_OK)
		return;
	for (size_t i = 0; i < n->nxins; i++) {
		struct xin *x = n->xins[i];
		size_t slot = (size_t)x->sync_slot;
		if (slot == 0)
			continue;
		x->sync_slot = 0;
		if (x->ready || slot > ne)
			continue;
		if (errs[slot - 1])
			rewind_to_have(n, x, strerror(errs[slot - 1]));
		else if (!x->pend) /* else rewound once its jobs are back */
			x->commit_to = x->sync_upto;
	}
}

/* Hands each transfer's chunks written since its last sync to the syncer. */
static void xin_sync_start(node *n)
{
	int fds[TERN_SYNCER_MAX];
	size_t nf = 0;

	for (size_t i = 0; i < n->nxins && nf < TERN_SYNCER_MAX; i++) {
		struct xin *x = n->xins[i];
		int fd;
		if (x->ready || x->pend || x->written <= x->have || x->written <= x->commit_to)
			continue;
		/* The syncer closes its own descriptor: this one may close (the
		 * next attachment) or go (a refused message) meanwhile. */
		if ((fd = dup(x->fd)) < 0) {
			rewind_to_have(n, x, strerror(errno));
			continue;
		}
		fds[nf++] = fd;
		x->sync_slot = (int)nf;
		x->sync_upto = x->written;
	}
	if (nf && tern_syncer_start(n->xsync, fds, nf) != TERN_OK) {
		for (size_t i = 0; i < nf; i++)
			close(fds[i]);
		for (size_t i = 0; i < n->nxins; i++)
			n->xins[i]->sync_slot = 0; /* cannot happen: collected before */
	}
}

void node_xin_flush(node *n)
{
	int any = 0, rc;

	/* Chunks are synced on the syncer's thread (syncer.h), each spool file
	 * once per batch, and counted in one commit when the batch is done: a
	 * sync on the loop held every message of the turn behind it. */
	if (tern_syncer_busy(n->xsync)) {
		xin_collect(n);
		if (tern_syncer_busy(n->xsync))
			return;
	}
	for (size_t i = 0; i < n->nxins; i++)
		any |= !n->xins[i]->ready && !n->xins[i]->pend &&
		       n->xins[i]->commit_to > n->xins[i]->have;
	if (any && (rc = tern_store_write(n->store, have_apply, n)) != TERN_OK) {
		for (size_t i = 0; i < n->nxins; i++)
			if (n->xins[i]->commit_to > n->xins[i]->have && !n->xins[i]->ready &&
			    !n->xins[i]->pend)
				rewind_to_have(n, n->xins[i], tern_errdetail());
		any = 0;
	}
	for (size_t i = 0; any && i < n->nxins; i++) {
		struct xin *x = n->xins[i];
		const struct node_att *a = &x->atts[x->att];
		if (x->commit_to <= x->have || x->ready || x->pend)
			continue;
		x->have = x->commit_to;
		x->commit_to = 0;
		x->stalled[0] = '\0';
		if (x->have == tern_attach_chunks(a->size, a->chunk_size)) {
			att_complete(n, x);
			if (!x->ready)
				request(n, x, tern_now_ms());
		}
	}
	xin_sync_start(n);
}

/* A chunk that failed its check: audited, then asked again, or the message
 * refused after XIN_MAX_FAILS. */
static int chunk_refused_apply(MDB_txn *txn, void *arg)
{
	void **a = arg;
	node *n = a[0];
	struct xin *x = a[1];

	return node_audit(n, txn, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, x->msgid, x->sender, NULL,
	                  "chunk", NULL, 0, tern_reason_code(TERN_REASON_CHUNK_MISMATCH), NULL,
	                  NULL);
}

static void chunk_refused(node *n, struct xin *x, uint64_t index, const char *why)
{
	void *arg[2] = {n, x};

	log_warnx("refused chunk %llu of %s attachment %u from the broker: chunk-mismatch: %s",
	          (unsigned long long)index, x->msgid, x->att, why);
	n->batch.now = tern_now_ms();
	if (tern_store_write(n->store, chunk_refused_apply, arg) != TERN_OK)
		log_warnx("cannot audit the refused chunk: %s", tern_errdetail());
	if (++x->fails >= XIN_MAX_FAILS) {
		fail(x, TERN_REASON_CHUNK_MISMATCH,
		     "chunk %llu of attachment %u did not match its seal %d times: the broker's "
		     "copy is damaged",
		     (unsigned long long)index, x->att, XIN_MAX_FAILS);
		return;
	}
	x->asked = x->queued = x->written; /* asked again at the next tick */
	x->retry_at = tern_now_ms() + 1000;
}

/* Asks for the next window once what was asked is in hand, and while the
 * thread has fewer than a window of this transfer's chunks. */
static void more(node *n, struct xin *x)
{
	const struct node_att *a = &x->atts[x->att];

	if (!x->retry_at && x->queued == x->asked && x->jobs < n->att_window &&
	    x->queued < tern_attach_chunks(a->size, a->chunk_size))
		request(n, x, tern_now_ms());
}

void node_xin_on_chunk(node *n, Tern__V1__Frame **fp)
{
	const Tern__V1__Chunk *c = (*fp)->chunk;
	struct xin *x = xin_find(n, c->message_id);
	const struct node_att *a;
	struct node_xopen_job *j;
	uint64_t nc;
	int rc;

	/* reopen, unstarted: its spool or hash is not ready; what was asked
	 * before is asked again once it is. */
	if (x == NULL || x->ready || x->pend || x->reopen || x->unstarted ||
	    c->attachment != x->att)
		return;
	if (c->reason_code[0]) {
		log_warnx("the broker sends no chunks of %s: %s: %s", x->msgid, c->reason_code,
		          c->reason_text);
		x->asked = x->queued;
		x->retry_at = tern_now_ms() + 5000;
		return;
	}
	a = &x->atts[x->att];
	nc = tern_attach_chunks(a->size, a->chunk_size);
	if (c->index != x->queued || x->queued == nc)
		return; /* a chunk asked for before a new get */
	x->last_io = tern_now_ms();
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		x->chunk_short = 1;
		return; /* asked again after the silence (node_xin_tick) */
	}
	j->owner = x;
	j->failed = &x->wfailed;
	j->key = x->key;
	j->msgid = x->msgid;
	j->att = x->att;
	j->size = a->size;
	j->chunk_size = a->chunk_size;
	j->root = a->root;
	j->fd = x->fd;
	j->hs = x->hs;
	j->frame = *fp;
	if ((rc = node_xopen_queue(n, j)) != TERN_OK) {
		/* Asked again after the silence; tern status says why. */
		x->chunk_short = rc == TERN_ENOMEM;
		log_warnx("transfer %s: %s", x->msgid, tern_errdetail());
		snprintf(x->stalled, sizeof(x->stalled), "%s", tern_errdetail());
		free(j);
		return;
	}
	*fp = NULL;
	x->chunk_short = 0;
	unstuck(x);
	x->queued++;
	x->jobs++;
	/* The next window is asked for now, so that the broker sends while
	 * the thread opens and this node syncs. */
	more(n, x);
}

/* A failure the thread met, once none of x's jobs is out. */
static void act(node *n, struct xin *x)
{
	int back = x->pend_rewind;

	x->pend = x->pend_rewind = 0;
	x->wfailed = 0;
	x->queued = x->written;
	switch (x->pend_result) {
	case NODE_XOPEN_OK:
		break; /* only the rewind below */
	case NODE_XOPEN_SKIPPED:
		break; /* cannot be: never recorded */
	case NODE_XOPEN_MISMATCH:
		chunk_refused(n, x, x->pend_index, x->pend_why);
		break;
	case NODE_XOPEN_UNOPENED:
		/* Under its seal, so its sender sealed it so: refused at once. */
		fail(x, TERN_REASON_ATTACHMENT_MISMATCH,
		     "chunk %llu of attachment %u does not open with the message's key",
		     (unsigned long long)x->pend_index, x->att);
		break;
	case NODE_XOPEN_UNWRITTEN:
		back = 0;
		rewind_to_have(n, x, x->pend_why); /* ENOSPC: the disk is full */
		break;
	}
	if (back && !x->ready)
		rewind_to_have(n, x, x->rewind_why);
}

void node_xin_opened(node *n, const struct node_xopen_job *j)
{
	struct xin *x = j->owner;
	uint64_t index = j->frame->chunk->index;

	x->jobs--;
	if (x->ready) {
		/* judged meanwhile (it expired): released once none is out */
	} else if (j->result == NODE_XOPEN_OK && !x->pend && index == x->written) {
		/* Counted once synced (node_xin_flush, this turn). */
		x->written++;
		more(n, x);
	} else if (j->result != NODE_XOPEN_OK && j->result != NODE_XOPEN_SKIPPED &&
	           (!x->pend || x->pend_result == NODE_XOPEN_OK)) {
		x->pend = 1;
		x->pend_result = j->result;
		x->pend_index = index;
		snprintf(x->pend_why, sizeof(x->pend_why), "%s", j->why);
	}
	if (x->jobs == 0 && x->pend && !x->ready)
		act(n, x);
	else if (x->jobs == 0)
		x->wfailed = 0;
}

static void start(node *n, struct xin *x)
{
	const struct node_att *a = &x->atts[x->att];

	if (x->ready)
		return;
	log_info("fetching %s attachment %u from chunk %llu of %llu", x->msgid, x->att,
	         (unsigned long long)x->have,
	         (unsigned long long)tern_attach_chunks(a->size, a->chunk_size));
	x->asked = x->queued;
	request(n, x, tern_now_ms());
}

void node_xin_session(node *n)
{
	for (size_t i = 0; i < n->nxins; i++)
		start(n, n->xins[i]);
}

/* Judges a finished transfer (x->code "" when all is in and as declared).
 * 1: it could not be taken now (no memory, or this node cannot make
 * receipts): the others wait too. */
static int release(node *n, struct xin *x, int64_t now)
{
	struct batch *b = &n->batch;
	struct din *d;
	node_judge j;
	MDB_txn *txn;
	MDB_val k = {36, x->msgid}, v;
	uint8_t *env;
	size_t len;

	if (x->released)
		return 0;
	if (TERN_GROW(b->dins, b->ndins, b->capdins) ||
	    tern_store_read_begin(n->store, &txn) != TERN_OK) {
		node_rejudge_after(n, 1000);
		return 1;
	}
	if (mdb_get(txn, DBI(n->store, NS_XINENV), &k, &v) != 0) {
		mdb_txn_abort(txn);
		return 0; /* its envelope is not there: the others go on */
	}
	if ((env = malloc(v.mv_size)) == NULL) {
		mdb_txn_abort(txn);
		node_rejudge_after(n, 1000);
		return 1;
	}
	memcpy(env, v.mv_data, v.mv_size);
	len = v.mv_size;
	d = &b->dins[b->ndins];
	memset(d, 0, sizeof(*d));
	node_judge_of(n, &j);
	j.xfer_done = 1;
	j.xfer_code = x->code;
	j.xfer_text = x->text;
	j.nomem_final = tern_nomem_final(&x->nomem, now);
	node_judge_envelope(&j, txn, env, len, d);
	mdb_txn_abort(txn);
	if (d->kind == DIN_NOMEM) {
		free(env);
		node_din_clear(d); /* judged again in a second */
		tern_nomem_count(&x->nomem, now);
		node_rejudge_after(n, 1000);
		return 1;
	}
	if (d->kind == DIN_NOTHING || d->kind == DIN_XFER) {
		/* Judged before (a copy in this batch), or still lacking: never here. */
		free(env);
		free(d->atts);
		tern_wf_record_free(&d->wf);
		tern_wf_record_free(&d->wf_rootrec);
		memset(d, 0, sizeof(*d));
		return 0;
	}
	d->unxfer = 1;
	d->env = env;
	d->len = len;
	if (node_din_take(n, d, env, len) != TERN_OK) {
		node_din_clear(d); /* judged again in a second */
		node_rejudge_after(n, 1000);
		return 1;
	}
	b->ndins++;
	x->released = 1;
	x->nomem = (tern_nomem){0, 0}; /* taken: a failed commit starts anew */
	if (d->kind == DIN_REFUSE)
		log_warnx("refused %s from %s: %s: %s", d->msgid, d->sender, d->code, d->text);
	else if (d->kind == DIN_ACCEPT)
		log_info("%s from %s: every attachment is in", d->msgid, d->sender);
	return 0;
}

void node_xin_failed(node *n)
{
	const struct batch *b = &n->batch;

	/* The judgement was in the failed commit alone: judged again at the
	 * next tick. Left released, the message would wait for a restart, its
	 * sender for the receipt. */
	for (size_t i = 0; i < b->ndins; i++) {
		struct xin *x;
		if (b->dins[i].unxfer && (x = xin_find(n, b->dins[i].msgid)) != NULL)
			x->released = 0;
	}
}

void node_xin_committed(node *n)
{
	const struct batch *b = &n->batch;

	for (size_t i = 0; i < b->ndins; i++) {
		const struct din *d = &b->dins[i];
		if (d->unxfer) {
			struct xin *x = xin_find(n, d->msgid);
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__ChunkDone cd = TERN__V1__CHUNK_DONE__INIT;
			cd.message_id = (char *)d->msgid;
			cd.reason_code = (char *)(d->kind == DIN_ACCEPT ? "" : d->code);
			f.body_case = TERN__V1__FRAME__BODY_CHUNK_DONE;
			f.chunk_done = &cd;
			/* On the main connection: it goes once, and a lane the
			 * broker closed meanwhile would drop it. */
			node_hop_send(n, &f);
			if (d->kind != DIN_ACCEPT)
				for (size_t k = 0; k < d->natts; k++) {
					char path[PATH_MAX];
					spool_path(n, d->msgid, k, path, sizeof(path));
					(void)tern_syncer_unlink(n->xsync, path);
				}
			for (size_t k = 0; x && k < n->nxins; k++)
				if (n->xins[k] == x) {
					xin_free(&n->xins[k]);
					n->xins[k] = n->xins[--n->nxins];
					break;
				}
		}
		if (d->kind == DIN_REFUSE && !d->unxfer && d->sealed_atts > 0 && d->msgid[0]) {
			/* Refused before any transfer (the workflow, the body): this
			 * node will never fetch the attachments. Said, so that the
			 * broker's copy ends with the other recipients' (or is
			 * retained then), not at the message's expiry. */
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__ChunkDone cd = TERN__V1__CHUNK_DONE__INIT;
			cd.message_id = (char *)d->msgid;
			cd.reason_code = (char *)(d->code[0] ? d->code : "refused");
			f.body_case = TERN__V1__FRAME__BODY_CHUNK_DONE;
			f.chunk_done = &cd;
			node_hop_send(n, &f);
		}
		if (d->kind == DIN_XFER) {
			struct xin *x;
			node_xin_pb rec;
			Tern__V1__TransferAttachment pb[TERN_ATTACH_MAX_COUNT],
			    *ptrs[TERN_ATTACH_MAX_COUNT];
			struct xin tmp = {
			    .atts = d->atts, .natt = d->natts, .until = d->xfer_until};
			snprintf(tmp.sender, sizeof(tmp.sender), "%s", d->sender);
			xin_record(&tmp, d->case_id, d->type, &rec, pb, ptrs);
			if (xin_add(n, d->msgid, &rec, d->env, d->len) != TERN_OK) {
				/* Its record is committed: started from the store once
				 * memory allows. */
				log_warnx("transfer %s starts in a second: %s", d->msgid,
				          tern_errdetail());
				n->xin_reload_wait = 0;
				reload_later(n);
			} else if ((x = xin_find(n, d->msgid)) != NULL) {
				log_info("receiving %s's %zu attachment(s) from %s", d->msgid,
				         d->natts, d->sender);
				start(n, x);
			}
		}
	}
}

void node_xin_tick(node *n, int64_t now)
{
	if (now >= n->next_spool_sweep) {
		n->next_spool_sweep = now + 60000;
		node_xin_sweep(n, now);
	}
	if (n->xin_reload_at && now >= n->xin_reload_at) {
		n->xin_reload_at = 0; /* set again if one still cannot start */
		(void)node_xin_load(n);
	}
	for (size_t i = 0; i < n->nxins; i++) {
		struct xin *x = n->xins[i];
		if (x->released)
			continue;
		if (!x->ready && x->until && now >= x->until)
			expire(x, now);
		if (x->ready) {
			/* x->jobs: else freed under the opening thread */
			if (x->jobs == 0 && !node_rejudge_later(n, now) && release(n, x, now))
				break; /* the rest wait with it */
			continue;
		}
		if (x->pend)
			continue; /* acted on when its jobs are back */
		if (x->unstarted) {
			if (now < x->retry_at)
				continue;
			if (xin_restart(n, x) == TERN_ENOMEM) {
				x->retry_at = now + 1000; /* a shortage: no verdict */
				stuck(x, now);
				continue;
			}
			unstuck(x);
			x->unstarted = 0;
			x->retry_at = 0;
			start(n, x);
			continue;
		}
		if (x->reopen) {
			int rc;
			/* Not under the opening thread: its chunks come back first
			 * (and fail, the spool being closed). */
			if ((x->retry_at && now < x->retry_at) || x->jobs > 0)
				continue;
			if ((rc = rehash(n, x)) == TERN_ENOMEM) {
				x->retry_at = now + 1000; /* a shortage: no verdict */
				stuck(x, now);
				continue;
			}
			unstuck(x);
			x->reopen = 0;
			x->retry_at = 0;
			if (rc != TERN_OK)
				fail(x, TERN_REASON_NO_SPACE, "cannot read the spool again: %s",
				     tern_errdetail());
			else
				request(n, x, now);
			continue;
		}
		if (x->retry_at && now >= x->retry_at) {
			x->retry_at = 0;
			request(n, x, now);
		} else if (x->asked > x->queued && now - x->last_io >= XIN_SILENCE_MS) {
			/* Counted once a drop: a silence after the chunk was asked
			 * for again, with none dropped since, is the sender's. */
			if (x->chunk_short)
				stuck(x, now);
			x->chunk_short = 0;
			x->asked = x->queued; /* a get or a chunk was lost */
			request(n, x, now);
		} else if (x->asked == x->queued && x->jobs == 0 && x->written == x->have &&
		           !x->retry_at) {
			request(n, x, now); /* waiting its turn, or between attachments */
		}
	}
}

json_t *node_xin_status(node *n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n->nxins; i++) {
		struct xin *x = n->xins[i];
		uint64_t total = 0, got = 0;
		for (size_t k = 0; k < x->natt; k++) {
			total += x->atts[k].size;
			if (k < x->att)
				got += x->atts[k].size;
		}
		got += x->have * x->atts[x->att].chunk_size > x->atts[x->att].size
		           ? x->atts[x->att].size
		           : x->have * x->atts[x->att].chunk_size;
		/* node_rec_text: the valid UTF-8 start of a text (an error's detail
		 * may name a path), NULL only for want of memory. */
		if (json_array_append_new(
		        arr,
		        json_pack("{s:s, s:o, s:I, s:I, s:o}", "message_id", x->msgid, "sender",
		                  node_rec_text(x->sender), "bytes", (json_int_t)total, "received",
		                  (json_int_t)got, "stalled", node_rec_text(x->stalled))) != 0) {
			/* Whole or none: one left out would pass for one not under way. */
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

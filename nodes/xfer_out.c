/* Attachments going out (docs/attachments.md): sealing the uploads a send
 * names into spool/out, and putting their chunks to the broker once it has
 * accepted the envelope.
 *
 * A send's attachments are sealed before its envelope, under the message
 * id and content key chosen here, and checked against what the body
 * declares; the spool files are synced before the outbox commit that
 * records the transfer, so an accepted send never lacks its chunks.
 *
 * Putting is resumable without anything committed per chunk: the broker's
 * ChunkAck says how many it holds, and a new session (or a silent broker)
 * asks it again. At most [limits] attachment_window chunks are unanswered
 * per transfer, so a transfer never fills the connection ahead of
 * ordinary messages. The spool stays until every recipient has answered
 * (a receipt, a refusal or an expiry), so that a broker restored from an
 * older copy can be given the chunks again.
 *
 * Touches: spool/out, the xout and xleaves tables (the batch's write for a
 * new transfer; its own small writes when one is done or dropped), and
 * n->xouts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "record.h"
#include "syncer.h"
#include "util.h"
#include "xfer_rec.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
/* A put or question the broker has not answered in this long is asked again. */
#define XOUT_SILENCE_MS 10000
#define XOUT_SWEEP_MS 30000

enum xo_state { XO_WAIT, XO_ASK, XO_PUT, XO_DONE, XO_FAILED };

struct xout {
	char msgid[37];
	struct node_att *atts;
	size_t natt;
	uint32_t att;        /* the attachment being put */
	uint64_t have, next; /* chunks the broker holds; the next to put */
	int state;
	int fd; /* spool/out of att, or -1 */
	tern_merkle_tree *tree;
	int64_t last_io, retry_at;
	int fails;
};

uint8_t *node_xbuf(node *n)
{
	if (n->xbuf == NULL)
		n->xbuf = malloc(TERN_ATTACH_CHUNK_MAX + TERN_ATTACH_TAG_LEN);
	return n->xbuf;
}

Tern__V1__Attachment **node_body_attachments(const ProtobufCMessage *body, size_t *n)
{
	const ProtobufCFieldDescriptor *fd =
	    protobuf_c_message_descriptor_get_field_by_name(body->descriptor, "attachments");

	*n = 0;
	if (fd == NULL || fd->label != PROTOBUF_C_LABEL_REPEATED ||
	    fd->type != PROTOBUF_C_TYPE_MESSAGE ||
	    fd->descriptor != &tern__v1__attachment__descriptor)
		return NULL;
	*n = *(const size_t *)((const char *)body + fd->quantifier_offset);
	return *(Tern__V1__Attachment ***)((const char *)body + fd->offset);
}

void node_spool_path(const node *n, const char *dir, const char *msgid, size_t i, char *buf,
                     size_t len)
{
	snprintf(buf, len, "%s/spool/%s/%s.%zu", n->data_dir, dir, msgid, i);
}

int node_spool_dirs(const node *n)
{
	char p[PATH_MAX];
	const char *sub[] = {"spool", "spool/out", "spool/in"};

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", n->data_dir, sub[i]);
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return tern_fail(TERN_EIO, "cannot make %s: %s", p, strerror(errno));
	}
	return TERN_OK;
}

/* --- the store ------------------------------------------------------------------ */

/* Writes the record of the transfer of atts[0..n) under msgid. */
static int put_xout(MDB_txn *txn, node *n, const char *msgid, const struct node_att *atts,
                    size_t natt, int done)
{
	node_xout_pb r = TERN__V1__TRANSFER_OUT_RECORD__INIT;
	Tern__V1__TransferAttachment pb[TERN_ATTACH_MAX_COUNT], *ptrs[TERN_ATTACH_MAX_COUNT];
	int rc;

	node_xfer_atts_pb(atts, natt, 0, pb, ptrs);
	r.n_atts = natt;
	r.atts = ptrs;
	r.done = done;
	rc = node_rec_put(txn, DBI(n->store, NS_XOUT), msgid, &r.base);
	return rc == TERN_OK ? TERN_OK : tern_fail(rc, "record a transfer: %s", tern_errdetail());
}

static void leaves_key(const char *msgid, uint32_t i, uint8_t k[41])
{
	memcpy(k, msgid, 36);
	k[36] = 0;
	k[37] = (uint8_t)(i >> 24);
	k[38] = (uint8_t)(i >> 16);
	k[39] = (uint8_t)(i >> 8);
	k[40] = (uint8_t)i;
}

int node_xout_store(MDB_txn *txn, node *n, const struct out *o)
{
	int rc;

	if (o->natts == 0)
		return TERN_OK;
	rc = put_xout(txn, n, o->msgid, o->atts, o->natts, 0);
	for (size_t i = 0; rc == TERN_OK && i < o->natts; i++) {
		uint8_t kb[41];
		MDB_val k = {sizeof(kb), kb}, v;
		leaves_key(o->msgid, (uint32_t)i, kb);
		v = (MDB_val){tern_attach_chunks(o->atts[i].size, o->atts[i].chunk_size) *
		                  sizeof(tern_hash),
		              o->leaves[i]};
		rc = MDB(mdb_put(txn, DBI(n->store, NS_XLEAVES), &k, &v, 0), "keep chunk hashes");
	}
	for (size_t i = 0; rc == TERN_OK && i < o->natts; i++)
		rc = node_upload_forget(txn, n->store, o->uploads[i]);
	return rc;
}

/* --- in memory ------------------------------------------------------------------ */

static void xout_close_att(struct xout *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	tern_merkle_tree_free(&x->tree);
}

static void xout_free(struct xout **xp)
{
	struct xout *x = *xp;

	if (x == NULL)
		return;
	xout_close_att(x);
	free(x->atts);
	free(x);
	*xp = NULL;
}

static struct xout *xout_find(node *n, const char *msgid)
{
	for (size_t i = 0; i < n->nxouts; i++)
		if (strcmp(n->xouts[i]->msgid, msgid) == 0)
			return n->xouts[i];
	return NULL;
}

static int xout_add(node *n, const char *msgid, const struct node_att *atts, size_t natt, int done)
{
	struct xout *x;

	if (xout_find(n, msgid))
		return TERN_OK;
	if (n->nxouts == n->capxouts) {
		size_t cap = n->capxouts ? n->capxouts * 2 : 8;
		struct xout **nx = realloc(n->xouts, cap * sizeof(*nx));
		if (nx == NULL)
			return TERN_ENOMEM;
		n->xouts = nx;
		n->capxouts = cap;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (x->atts = malloc(natt * sizeof(*atts))) == NULL) {
		free(x);
		return TERN_ENOMEM;
	}
	memcpy(x->atts, atts, natt * sizeof(*atts));
	snprintf(x->msgid, sizeof(x->msgid), "%s", msgid);
	x->natt = natt;
	x->fd = -1;
	x->state = done ? XO_DONE : XO_WAIT;
	n->xouts[n->nxouts++] = x;
	return TERN_OK;
}

void node_xout_committed(node *n)
{
	const struct batch *b = &n->batch;

	for (size_t i = 0; i < b->nouts; i++) {
		const struct out *o = &b->outs[i];
		if (o->natts == 0)
			continue;
		for (size_t k = 0; k < o->natts; k++)
			node_upload_unlink(n, o->uploads[k]);
		if (xout_add(n, o->msgid, o->atts, o->natts, 0) != TERN_OK)
			log_warnx("out of memory: %s's attachments go at the next start", o->msgid);
		else
			log_info("queued %s's %zu attachment(s) for the broker", o->msgid,
			         o->natts);
	}
}

int node_xout_load(node *n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, err = TERN_OK;

	if (DBI(n->store, NS_XOUT) == 0)
		return TERN_OK;
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return rc;
	if ((rc = mdb_cursor_open(txn, DBI(n->store, NS_XOUT), &c)) != 0) {
		mdb_txn_abort(txn);
		return tern_store_mdb_err(rc, "read the transfers");
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct node_att atts[TERN_ATTACH_MAX_COUNT];
		char id[37];
		size_t na = 0;
		int done = 0;
		/* A record not read for want of memory is no damaged one (passed
		 * over, its attachments would not go until a restart). */
		if ((err = node_xout_record_read(v.mv_data, v.mv_size, atts, &na, &done)) ==
		    TERN_ENOMEM)
			break;
		if (err != TERN_OK || k.mv_size != 36) {
			err = TERN_OK;
			continue;
		}
		memcpy(id, k.mv_data, 36);
		id[36] = '\0';
		if ((err = xout_add(n, id, atts, na, done)) != TERN_OK)
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (err != TERN_OK)
		return tern_fail(err, "out of memory loading the transfers");
	if (rc != 0 && rc != MDB_NOTFOUND)
		return tern_store_mdb_err(rc, "read the transfers");
	return TERN_OK;
}

void node_xout_free(node *n)
{
	for (size_t i = 0; i < n->nxouts; i++)
		xout_free(&n->xouts[i]);
	free(n->xouts);
	n->xouts = NULL;
	n->nxouts = n->capxouts = 0;
}

/* --- putting -------------------------------------------------------------------- */

static void send_put(node *n, struct xout *x, uint64_t index, const uint8_t *data, size_t len,
                     const tern_hash *proof, size_t nproof)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__ChunkPut p = TERN__V1__CHUNK_PUT__INIT;
	ProtobufCBinaryData pr[TERN_MERKLE_MAX_PROOF];

	p.message_id = x->msgid;
	p.attachment = x->att;
	p.index = index;
	p.data.data = (uint8_t *)data;
	p.data.len = len;
	for (size_t i = 0; i < nproof; i++) {
		pr[i].data = (uint8_t *)proof[i];
		pr[i].len = TERN_HASH_LEN;
	}
	p.n_proof = nproof;
	p.proof = pr;
	f.body_case = TERN__V1__FRAME__BODY_CHUNK_PUT;
	f.chunk_put = &p;
	node_bulk_send(n, &f);
	x->last_io = tern_now_ms();
}

static void ask(node *n, struct xout *x)
{
	x->state = XO_ASK;
	send_put(n, x, 0, NULL, 0, NULL, 0);
}

/* Opens attachment x->att's spool file and its chunk tree. */
static int open_att(node *n, struct xout *x)
{
	const struct node_att *a = &x->atts[x->att];
	uint64_t nc = tern_attach_chunks(a->size, a->chunk_size);
	char path[PATH_MAX];
	uint8_t kb[41];
	MDB_val k = {sizeof(kb), kb}, v;
	MDB_txn *txn;
	int rc;

	xout_close_att(x);
	node_spool_path(n, "out", x->msgid, x->att, path, sizeof(path));
	if ((x->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return tern_fail(TERN_EIO, "%s: %s", path, strerror(errno));
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return rc;
	leaves_key(x->msgid, x->att, kb);
	rc = mdb_get(txn, DBI(n->store, NS_XLEAVES), &k, &v);
	if (rc == 0 && v.mv_size == nc * sizeof(tern_hash))
		rc = tern_merkle_tree_build(v.mv_data, nc, &x->tree);
	else
		rc = tern_fail(TERN_ENOENT, "the chunk hashes of %s attachment %u are gone",
		               x->msgid, x->att);
	mdb_txn_abort(txn);
	if (rc == TERN_OK && node_xbuf(n) == NULL)
		rc = TERN_ENOMEM;
	return rc;
}

static void pump(node *n, struct xout *x)
{
	const struct node_att *a;
	uint64_t nc;

	if (x->state != XO_PUT || !n->connected)
		return;
	{
		/* Its turn: among the first NODE_XFER_ACTIVE putting. */
		size_t ahead = 0;
		for (size_t i = 0; i < n->nxouts && n->xouts[i] != x; i++)
			ahead += n->xouts[i]->state == XO_PUT;
		if (ahead >= NODE_XFER_ACTIVE)
			return;
	}
	a = &x->atts[x->att];
	nc = tern_attach_chunks(a->size, a->chunk_size);
	if (x->fd < 0 && open_att(n, x) != TERN_OK) {
		log_warnx("cannot put %s's attachment %u: %s", x->msgid, x->att, tern_errdetail());
		x->state = XO_FAILED;
		return;
	}
	while (x->next < nc && x->next - x->have < (uint64_t)n->att_window) {
		size_t len = tern_attach_chunk_len(a->size, a->chunk_size, x->next) +
		             TERN_ATTACH_TAG_LEN,
		       got = 0, np = 0;
		tern_hash proof[TERN_MERKLE_MAX_PROOF];
		while (got < len) {
			ssize_t r = pread(x->fd, n->xbuf + got, len - got,
			                  (off_t)(tern_attach_slot(a->chunk_size, x->next) + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != len ||
		    tern_merkle_tree_inclusion_proof(x->tree, x->next, proof, &np) != TERN_OK) {
			log_warnx("cannot read chunk %llu of %s's attachment %u from the spool",
			          (unsigned long long)x->next, x->msgid, x->att);
			x->state = XO_FAILED;
			return;
		}
		send_put(n, x, x->next, n->xbuf, len, proof, np);
		x->next++;
	}
}

static int mark_done_apply(MDB_txn *txn, void *arg)
{
	void **a = arg;
	node *n = a[0];
	struct xout *x = a[1];

	return put_xout(txn, n, x->msgid, x->atts, x->natt, 1);
}

void node_xout_accepted(node *n, const char *msgid)
{
	struct xout *x = xout_find(n, msgid);

	if (x && x->state == XO_WAIT && n->connected)
		ask(n, x);
}

void node_xout_on_ack(node *n, const Tern__V1__ChunkAck *a)
{
	struct xout *x = xout_find(n, a->message_id);
	uint64_t nc;

	if (x == NULL || x->state == XO_DONE || x->state == XO_FAILED || a->attachment != x->att)
		return; /* stale: an answer to an earlier question */
	x->last_io = tern_now_ms();
	if (a->reason_code[0]) {
		if (strcmp(a->reason_code, tern_reason_code(TERN_REASON_UNKNOWN_TRANSFER)) == 0) {
			x->state = XO_WAIT; /* not accepted yet: its SubmitResult starts it */
			return;
		}
		log_warnx("broker refused chunk of %s attachment %u: %s: %s", x->msgid, x->att,
		          a->reason_code, a->reason_text);
		if (strcmp(a->reason_code, tern_reason_code(TERN_REASON_CHUNK_MISMATCH)) == 0 &&
		    ++x->fails >= 3) {
			log_warnx("giving up %s's attachments: the spool copy does not match its "
			          "seal (disk damage?)",
			          x->msgid);
			x->state = XO_FAILED;
			return;
		}
		/* no-space and the rest: ask again later */
		x->state = XO_WAIT;
		x->retry_at = tern_now_ms() + 5000;
		return;
	}
	nc = tern_attach_chunks(x->atts[x->att].size, x->atts[x->att].chunk_size);
	x->have = a->have > nc ? nc : a->have;
	if (x->state == XO_ASK && x->have < nc)
		log_info("putting %s attachment %u from chunk %llu of %llu", x->msgid, x->att,
		         (unsigned long long)x->have, (unsigned long long)nc);
	if (x->state == XO_ASK || x->next < x->have)
		x->next = x->have;
	x->state = XO_PUT;
	if (x->have == nc) {
		xout_close_att(x);
		if (++x->att == x->natt) {
			void *arg[2] = {n, x};
			x->att--; /* keeps a->attachment checks meaningful */
			if (tern_store_write(n->store, mark_done_apply, arg) != TERN_OK)
				log_warnx("cannot record %s's attachments as sent: %s", x->msgid,
				          tern_errdetail());
			x->state = XO_DONE;
			log_info("the broker holds %s's %zu attachment(s)", x->msgid, x->natt);
			return;
		}
		x->have = x->next = 0;
		ask(n, x);
		return;
	}
	pump(n, x);
}

void node_xout_session(node *n)
{
	for (size_t i = 0; i < n->nxouts; i++) {
		struct xout *x = n->xouts[i];
		if (x->state == XO_DONE || x->state == XO_FAILED)
			continue;
		ask(n, x);
	}
}

/* Whether every recipient of msgid has answered: its spool may go. */
static int answered(node *n, const char *msgid)
{
	MDB_txn *txn;
	json_t *rec = NULL, *st;
	const char *who;
	int all = 1, rc;

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return 0;
	if ((rc = node_store_sent_get(txn, n->store, msgid, &rec)) != TERN_OK) {
		mdb_txn_abort(txn);
		/* No such message any more; a record not read for want of memory
		 * says nothing: the spool stays until a later sweep. */
		return rc == TERN_ENOENT;
	}
	mdb_txn_abort(txn);
	json_object_foreach(json_object_get(rec, "recipients"), who, st)
	{
		const char *s = json_string_value(json_object_get(st, "state"));
		if (s == NULL)
			s = json_string_value(st);
		if (s == NULL || (strcmp(s, "delivered") != 0 && strcmp(s, "rejected") != 0 &&
		                  strcmp(s, "expired") != 0))
			all = 0;
	}
	json_decref(rec);
	return all;
}

static int forget_apply(MDB_txn *txn, void *arg)
{
	void **a = arg;
	node *n = a[0];
	struct xout *x = a[1];
	MDB_val k = {36, x->msgid};
	int rc = mdb_del(txn, DBI(n->store, NS_XOUT), &k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND)
		return MDB(rc, "forget a transfer");
	for (size_t i = 0; i < x->natt; i++) {
		uint8_t kb[41];
		MDB_val lk = {sizeof(kb), kb};
		leaves_key(x->msgid, (uint32_t)i, kb);
		rc = mdb_del(txn, DBI(n->store, NS_XLEAVES), &lk, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return MDB(rc, "forget chunk hashes");
	}
	return TERN_OK;
}

/* Spool files of no transfer: a sealing cut short by a crash, or a send
 * refused after it. Those of a sealing under way, or of a send in this
 * turn's batch, are new, not orphans. */
static void sweep_orphans(node *n)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	DIR *d;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "%s/spool/out", n->data_dir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char id[37];
		int busy = 0;
		if (strlen(e->d_name) < 38 || e->d_name[36] != '.')
			continue;
		memcpy(id, e->d_name, 36);
		id[36] = '\0';
		if (!tern_uuid_valid(id) || xout_find(n, id) || node_xseal_has_msgid(n, id))
			continue;
		for (size_t i = 0; i < n->batch.nouts && !busy; i++)
			busy = strcmp(n->batch.outs[i].msgid, id) == 0;
		if (busy)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		log_info("removing spool file %s: no transfer names it", e->d_name);
		(void)tern_syncer_unlink(n->xsync, path);
	}
	closedir(d);
}

static void sweep(node *n)
{
	sweep_orphans(n);
	for (size_t i = 0; i < n->nxouts;) {
		struct xout *x = n->xouts[i];
		void *arg[2] = {n, x};
		if ((x->state != XO_DONE && x->state != XO_FAILED) || !answered(n, x->msgid) ||
		    tern_store_write(n->store, forget_apply, arg) != TERN_OK) {
			i++;
			continue;
		}
		for (size_t k = 0; k < x->natt; k++) {
			char path[PATH_MAX];
			node_spool_path(n, "out", x->msgid, k, path, sizeof(path));
			(void)tern_syncer_unlink(n->xsync, path); /* off the loop: syncer.h */
		}
		log_info("removing %s's attachments from the spool: every recipient answered",
		         x->msgid);
		xout_free(&n->xouts[i]);
		n->xouts[i] = n->xouts[--n->nxouts];
	}
}

void node_xout_tick(node *n, int64_t now)
{
	for (size_t i = 0; i < n->nxouts && n->connected; i++) {
		struct xout *x = n->xouts[i];
		if (x->state == XO_WAIT && x->retry_at && now >= x->retry_at) {
			x->retry_at = 0;
			ask(n, x);
		} else if ((x->state == XO_ASK || (x->state == XO_PUT && x->next > x->have)) &&
		           now - x->last_io >= XOUT_SILENCE_MS) {
			ask(n, x); /* a put or an answer was lost */
		} else if (x->state == XO_PUT && x->next == x->have) {
			pump(n, x); /* waiting its turn */
		}
	}
	if (now >= n->next_xfer_sweep) {
		n->next_xfer_sweep = now + XOUT_SWEEP_MS;
		sweep(n);
		node_upload_sweep(n, now);
	}
}

json_t *node_xout_status(node *n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n->nxouts; i++) {
		struct xout *x = n->xouts[i];
		uint64_t total = 0, held = 0;
		static const char *const names[] = {"waiting", "asking", "sending", "sent",
		                                    "failed"};
		if (x->state == XO_DONE)
			continue;
		for (size_t k = 0; k < x->natt; k++) {
			total += x->atts[k].size;
			if (k < x->att)
				held += x->atts[k].size;
		}
		held += x->have * x->atts[x->att].chunk_size > x->atts[x->att].size
		            ? x->atts[x->att].size
		            : x->have * x->atts[x->att].chunk_size;
		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "message_id",
		                                         x->msgid, "state", names[x->state],
		                                         "bytes", (json_int_t)total, "at_broker",
		                                         (json_int_t)held)) != 0) {
			/* Whole or none: one left out would pass for one done. */
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

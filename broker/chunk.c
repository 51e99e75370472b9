/* Attachment chunks at the broker (docs/attachments.md, docs/protocol.md):
 * ChunkPut from the sender, checked against the signed seal, spooled,
 * synced and counted; ChunkGet from a recipient, served from the spool as
 * chunks are counted; ChunkDone, after which the copy goes.
 *
 * A chunk is staged when its frame comes and checked and written
 * (unsynced) on the chunk-writing thread (xput.c); after the turn's frames,
 * chunk_flush syncs each file of the chunks back from it once and commits
 * every staged count in one write, then answers the ChunkAcks: the checks
 * and three syncs a chunk on the loop would hold ordinary messages behind a
 * transfer. A put is taken in order of the counts committed and staged.
 * Nothing here holds more than XPUT_MAX_OUT chunks, and a recipient's
 * pending gets are a few numbers each, bounded per peer.
 *
 * Touches: the peers' pending gets, the store (transfers, audit), the spool
 * files under b->chunk_dir; sends ChunkAck and Chunk on b->router. Never
 * logs chunk bytes: ids, indexes and reasons only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/error.h>
#include <tern/log.h>

#include "broker_int.h"
#include "hop.h"
#include "syncer.h"
#include "util.h"

/* The most a ChunkGet may ask for at once ([limits] attachment_window is at
 * most 64). */
#define CHUNK_GET_MAX 64

/* --- ChunkPut ----------------------------------------------------------------- */

static void send_ack(broker *b, struct peer *p, const char *msgid, uint32_t att, uint64_t have,
                     tern_reason reason, const char *text)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__ChunkAck a = TERN__V1__CHUNK_ACK__INIT;

	a.message_id = (char *)msgid;
	a.attachment = att;
	a.have = have;
	a.reason_code = (char *)(reason ? tern_reason_code(reason) : "");
	a.reason_text = (char *)(text ? text : "");
	f.body_case = TERN__V1__FRAME__BODY_CHUNK_ACK;
	f.chunk_ack = &a;
	/* A lost answer costs only a question: the node asks after a while. */
	(void)peer_send_bulk(b, p, &f);
}

struct reject_arg {
	tern_store *st;
	const char *msgid, *peer;
	int64_t now;
};

static int reject_apply(MDB_txn *txn, void *arg)
{
	struct reject_arg *r = arg;

	/* Type "chunk", as the recipient's node audits one: what was refused
	 * is a chunk of the message, not the message. */
	return bq_audit(txn, r->st, TERN__V1__AUDIT_ENTRY__KIND__REJECTED, r->msgid, r->peer, NULL,
	                "chunk", NULL, 0, tern_reason_code(TERN_REASON_CHUNK_MISMATCH), NULL, 0,
	                r->now);
}

/* A chunk that is not under its seal: refused, logged and audited. */
static void put_mismatch(broker *b, struct peer *p, const Tern__V1__ChunkPut *cp, uint64_t have,
                         const char *why)
{
	struct reject_arg ra = {b->store, cp->message_id, p->id, tern_now_ms()};
	int rc;

	b->m.chunks_refused++;
	log_warnx("refused chunk %llu of attachment %u of %s from %s: %s",
	          (unsigned long long)cp->index, cp->attachment, cp->message_id, p->id, why);
	if ((rc = tern_store_write(b->store, reject_apply, &ra)) != TERN_OK)
		log_warnx("cannot audit the refused chunk of %s: %s", cp->message_id,
		          tern_errdetail());
	else
		b->last_audit = ra.now;
	send_ack(b, p, cp->message_id, cp->attachment, have, TERN_REASON_CHUNK_MISMATCH, why);
}

/* Wakes the pending gets of msgid's recipients: a chunk was counted. */
static void wake_gets(broker *b, const xfer_rec *r)
{
	for (size_t i = 0; i < r->nrcpt; i++) {
		struct peer *q = peer_find(b, r->rcpt[i], 0);
		if (q && q->ngets)
			q->chunk_dirty = 1;
	}
}

/* Staged chunks of msgid's attachment att: written, not yet counted (being
 * synced, or waiting for the next sync). */
static uint64_t staged_count(const broker *b, const char *msgid, uint32_t att)
{
	uint64_t k = 0;

	for (size_t i = 0; i < b->nstaged; i++)
		k += !b->staged[i].failed && b->staged[i].att == att &&
		     strcmp(b->staged[i].msgid, msgid) == 0;
	return k;
}

static int stage(broker *b, const struct peer *p, const Tern__V1__ChunkPut *cp, uint64_t n,
                 uint8_t *proof, size_t proof_len, uint64_t seq)
{
	struct chunk_staged *c;

	if (TERN_GROW(b->staged, b->nstaged, b->capstaged))
		return TERN_ENOMEM;
	c = &b->staged[b->nstaged++];
	memset(c, 0, sizeof(*c));
	c->seq = seq;
	c->pending = 1;
	snprintf(c->msgid, sizeof(c->msgid), "%s", cp->message_id);
	snprintf(c->peer, sizeof(c->peer), "%s", p->id);
	c->att = cp->attachment;
	c->index = cp->index;
	c->nchunks = n;
	c->proof = proof;
	c->proof_len = proof_len;
	return TERN_OK;
}

static int flush_apply(MDB_txn *txn, void *arg)
{
	broker *b = arg;

	for (size_t i = 0; i < b->nstaged; i++) {
		struct chunk_staged *c = &b->staged[i];
		int rc;
		if (c->failed)
			continue;
		rc = xfer_chunk_commit(txn, b->store, c->msgid, c->att, c->index, c->proof,
		                       c->proof_len, &c->have);
		if (rc == TERN_EEXIST) {
			c->failed = 1; /* counted before: answered by have */
			continue;
		}
		if (rc == TERN_ENOENT || rc == TERN_EINVAL) {
			/* The transfer ended while its chunk was synced (every
			 * recipient done, or expired): this put only, not the
			 * others of the batch. */
			c->failed = 4;
			continue;
		}
		if (rc != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static int same_file(const struct chunk_staged *a, const struct chunk_staged *c)
{
	return a->att == c->att && strcmp(a->msgid, c->msgid) == 0;
}

/* Whether entry i is the first of its file among the entries [0, i) not
 * failed: the one whose descriptor the syncer gets. A failed entry gets
 * none, so a chunk staged behind one must not count on it. */
static int first_of_file(const broker *b, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!b->staged[j].failed && same_file(&b->staged[j], &b->staged[i]))
			return 0;
	return 1;
}

static void mark_file(broker *b, size_t from, size_t to, const struct chunk_staged *c, int err)
{
	for (size_t j = from; j < to; j++)
		if (same_file(&b->staged[j], c))
			b->staged[j].failed = err == ENOSPC || err == EDQUOT ? 2 : 3;
}

/* The first k entries are synced (or marked failed): their counts are
 * committed in one write, each put answered, recipients woken; the entries
 * staged since move up. */
static void finish(broker *b, size_t k)
{
	size_t all = b->nstaged;
	int rc;

	b->nstaged = k; /* flush_apply commits these */
	rc = tern_store_write(b->store, flush_apply, b);
	b->nstaged = all;
	for (size_t i = 0; i < k; i++) {
		struct chunk_staged *c = &b->staged[i];
		struct peer *p = peer_find(b, c->peer, 0);
		if (rc == TERN_OK && c->failed == 4) {
			if (p)
				send_ack(b, p, c->msgid, c->att, 0, TERN_REASON_UNKNOWN_TRANSFER,
				         "the transfer has ended");
		} else if (c->failed == 5) {
			/* refused, and answered then */
		} else if (rc != TERN_OK || c->failed >= 2) {
			if (p)
				send_ack(b, p, c->msgid, c->att, c->index,
				         c->failed == 2 ? TERN_REASON_NO_SPACE : TERN_REASON_BUSY,
				         "the broker could not keep the chunk: put it again later");
		} else if (c->failed) {
			if (p)
				send_ack(b, p, c->msgid, c->att, c->have, TERN_REASON_NONE, NULL);
		} else {
			b->m.chunks_in++;
			if (c->have == c->nchunks)
				log_info(
				    "attachment %u of %s complete at the broker: %llu chunk(s)",
				    c->att, c->msgid, (unsigned long long)c->nchunks);
			if (p)
				send_ack(b, p, c->msgid, c->att, c->have, TERN_REASON_NONE, NULL);
		}
	}
	if (rc != TERN_OK)
		log_warnx("chunks not counted: %s", tern_errdetail());
	else {
		/* Recipients waiting for these chunks: each message once. */
		xfer_rec *r = malloc(sizeof(*r));
		MDB_txn *txn;
		if (r && tern_store_read_begin(b->store, &txn) == TERN_OK) {
			for (size_t i = 0; i < k; i++) {
				int seen = 0;
				for (size_t j = 0; j < i && !seen; j++)
					seen = strcmp(b->staged[j].msgid, b->staged[i].msgid) == 0;
				if (!seen &&
				    xfer_get(txn, b->store, b->staged[i].msgid, r) == TERN_OK)
					wake_gets(b, r);
			}
			mdb_txn_abort(txn);
		}
		free(r);
	}
	for (size_t i = 0; i < k; i++)
		free(b->staged[i].proof);
	memmove(b->staged, b->staged + k, (all - k) * sizeof(*b->staged));
	b->nstaged = all - k;
}

/* The syncer's batch is done: its errors are marked on its entries, which
 * are then finished. */
static void collect(broker *b)
{
	int errs[TERN_SYNCER_MAX];
	size_t n = 0, f = 0;

	if (tern_syncer_collect(b->syncer, errs, &n) != TERN_OK)
		return; /* still syncing */
	for (size_t i = 0; i < b->nsyncing && f < n; i++) {
		struct chunk_staged *c = &b->staged[i];
		if (c->failed || !first_of_file(b, i))
			continue; /* not given to the syncer, or not its first entry */
		if (errs[f]) {
			log_warnx("chunks of attachment %u of %s not kept: cannot sync: %s", c->att,
			          c->msgid, strerror(errs[f]));
			/* And those of the file staged since: after the failed
			 * one they cannot be counted, and the sender puts them
			 * again from the first. */
			mark_file(b, i, b->nstaged, c, errs[f]);
		}
		f++;
	}
	finish(b, b->nsyncing);
	b->nsyncing = 0;
}

void chunk_flush(broker *b)
{
	int fds[TERN_SYNCER_MAX];
	size_t nf = 0, k = 0;

	if (b->nsyncing) {
		collect(b);
		if (b->nsyncing)
			return;
	}
	if (b->nstaged == 0)
		return;
	/* The bytes must be on disk before their count: each file once, on
	 * the syncer's thread, while the loop goes on (syncer.h). */
	for (; k < b->nstaged; k++) {
		struct chunk_staged *c = &b->staged[k];
		int err, fd;
		if (c->pending)
			break; /* not written yet: this one and the rest in a later batch */
		if (!first_of_file(b, k) || c->failed)
			continue;
		if (nf == TERN_SYNCER_MAX)
			break; /* the rest in the next batch */
		if (xfer_spool_open_sync(b->chunk_dir, c->msgid, c->att, &fd, &err) != TERN_OK) {
			log_warnx("chunks of attachment %u of %s not kept: %s", c->att, c->msgid,
			          tern_errdetail());
			mark_file(b, k, b->nstaged, c, err);
			continue;
		}
		if (b->syncer == NULL) {
			/* No thread (a broker made by a test): synced here. */
			if (fdatasync(fd) != 0) {
				log_warnx("chunks of attachment %u of %s not kept: cannot sync: %s",
				          c->att, c->msgid, strerror(errno));
				mark_file(b, k, b->nstaged, c, errno);
			}
			close(fd);
			continue;
		}
		fds[nf++] = fd;
	}
	if (nf == 0) {
		if (k > 0)
			finish(b, k); /* nothing to wait for */
		return;
	}
	if (tern_syncer_start(b->syncer, fds, nf) != TERN_OK) {
		for (size_t i = 0; i < nf; i++)
			close(fds[i]);
		return; /* cannot happen: collected above */
	}
	b->nsyncing = k;
}

/* What the store counts of msgid's attachment att (0 when it cannot say):
 * answers say only what is committed. */
static uint64_t committed_count(broker *b, const char *msgid, uint32_t att)
{
	xfer_rec *r = malloc(sizeof(*r));
	MDB_txn *txn;
	uint64_t have = 0;

	if (r && tern_store_read_begin(b->store, &txn) == TERN_OK) {
		if (xfer_get(txn, b->store, msgid, r) == TERN_OK && att < r->natt)
			have = r->att[att].have;
		mdb_txn_abort(txn);
	}
	free(r);
	return have;
}

/* A job back from the chunk-writing thread: its staged entry may be synced
 * and counted, or it is refused (a mismatch: audited and answered now, the
 * chunks of its file staged after it dropped) or not kept (answered when
 * its turn comes, as a failed sync is). */
static void xput_back(broker *b, const struct chunk_xjob *j)
{
	struct chunk_staged *c = NULL;
	struct peer *p;
	size_t i;

	for (i = 0; i < b->nstaged && c == NULL; i++)
		if (b->staged[i].seq == j->seq)
			c = &b->staged[i];
	if (c == NULL)
		return; /* cannot happen: an entry is finished only once back */
	i--;
	c->pending = 0;
	if (j->result == CHUNK_XPUT_OK || c->failed)
		return;
	if (j->result == CHUNK_XPUT_MISMATCH) {
		struct reject_arg ra = {b->store, c->msgid, c->peer, tern_now_ms()};
		b->m.chunks_refused++;
		log_warnx("refused chunk %llu of attachment %u of %s from %s: %s",
		          (unsigned long long)c->index, c->att, c->msgid, c->peer, j->why);
		if (tern_store_write(b->store, reject_apply, &ra) != TERN_OK)
			log_warnx("cannot audit the refused chunk of %s: %s", c->msgid,
			          tern_errdetail());
		else
			b->last_audit = ra.now;
		if ((p = peer_find(b, c->peer, 0)) != NULL)
			send_ack(b, p, c->msgid, c->att, committed_count(b, c->msgid, c->att),
			         TERN_REASON_CHUNK_MISMATCH, j->why);
		for (size_t k = i; k < b->nstaged; k++)
			if (same_file(&b->staged[k], c))
				b->staged[k].failed = 5;
		return;
	}
	if (j->err == ENOENT) {
		/* Its file went: the transfer ended while the chunk waited. */
		for (size_t k = i; k < b->nstaged; k++)
			if (same_file(&b->staged[k], c))
				b->staged[k].failed = 4;
		return;
	}
	log_warnx("chunk %llu of attachment %u of %s not stored: %s", (unsigned long long)c->index,
	          c->att, c->msgid, j->why);
	mark_file(b, i, b->nstaged, c, j->err);
}

void chunk_xput_done(broker *b)
{
	struct tern_workq_item *list = tern_workq_take(b->xput);

	while (list) {
		struct chunk_xjob *j = (struct chunk_xjob *)list;
		list = list->next;
		xput_back(b, j);
		chunk_xjob_free(&j);
	}
}

void chunk_on_put(broker *b, struct peer *p, const Tern__V1__ChunkPut *cp)
{
	struct chunk_xjob *j = NULL;
	xfer_rec *r = NULL;
	tern_hash *proof = NULL;
	Tern__V1__AttachmentSeal seal;
	MDB_txn *txn;
	uint64_t have = 0, committed = 0, n;
	uint32_t att = cp->attachment;
	int rc, err;

	if ((r = malloc(sizeof(*r))) == NULL) {
		send_ack(b, p, cp->message_id, att, 0, TERN_REASON_BUSY, "broker out of memory");
		return;
	}
	rc = tern_store_read_begin(b->store, &txn);
	if (rc == TERN_OK) {
		rc = xfer_get(txn, b->store, cp->message_id, r);
		mdb_txn_abort(txn);
	}
	/* Only the authenticated sender of an accepted envelope puts its chunks:
	 * anyone else learns nothing about the transfer. */
	if (rc != TERN_OK || strcmp(r->sender, p->id) != 0 || att >= r->natt) {
		if (rc != TERN_OK && rc != TERN_ENOENT)
			log_warnx("cannot read transfer %s: %s", cp->message_id, tern_errdetail());
		send_ack(b, p, cp->message_id, att, 0, TERN_REASON_UNKNOWN_TRANSFER,
		         "no such transfer from this node");
		goto out;
	}
	/* Committed, and written since (being synced, or waiting for it): the
	 * next in order. Answers say only what is committed: a sender told of
	 * a chunk not yet durable could count it as held and never put it
	 * again, and a crash would lose it. */
	committed = r->att[att].have;
	have = committed + staged_count(b, cp->message_id, att);
	n = tern_attach_chunks(r->att[att].size, r->att[att].chunk_size);
	/* A question, a repeat or a chunk ahead of the count: the count says
	 * where the sender goes on. */
	if (cp->data.len == 0 || cp->index != have || cp->index >= n) {
		send_ack(b, p, cp->message_id, att, committed, TERN_REASON_NONE, NULL);
		goto out;
	}
	if (cp->n_proof > XFER_MAX_PROOF) {
		put_mismatch(b, p, cp, committed, "proof too long");
		goto out;
	}
	if (cp->n_proof && (proof = malloc(cp->n_proof * sizeof(*proof))) == NULL) {
		send_ack(b, p, cp->message_id, att, committed, TERN_REASON_BUSY,
		         "broker out of memory");
		goto out;
	}
	for (size_t i = 0; i < cp->n_proof; i++) {
		if (cp->proof[i].len != sizeof(tern_hash)) {
			put_mismatch(b, p, cp, committed, "a proof hash is not 32 bytes");
			goto out;
		}
		memcpy(proof[i], cp->proof[i].data, sizeof(tern_hash));
	}
	/* The file is made here, while the transfer exists: the thread only
	 * writes into it, so that a transfer that ends meanwhile (its files
	 * removed) does not leave one behind. */
	if (xfer_spool_create(b->chunk_dir, cp->message_id, att, &err) != TERN_OK) {
		log_warnx("chunk %llu of attachment %u of %s not stored: %s",
		          (unsigned long long)cp->index, att, cp->message_id, tern_errdetail());
		send_ack(b, p, cp->message_id, att, committed,
		         err == ENOSPC ? TERN_REASON_NO_SPACE : TERN_REASON_BUSY,
		         err == ENOSPC
		             ? "the broker's disk is full: put it again later"
		             : "the broker could not store the chunk: put it again later");
		goto out;
	}
	/* The chunk's own checks and its write go to the thread: a copy of
	 * it, staged as to be written. */
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->data = malloc(cp->data.len)) == NULL ||
	    (cp->n_proof && (j->proof = malloc(cp->n_proof * sizeof(tern_hash))) == NULL)) {
		chunk_xjob_free(&j);
		send_ack(b, p, cp->message_id, att, committed, TERN_REASON_BUSY,
		         "broker out of memory");
		goto out;
	}
	xfer_seal(r, att, &seal);
	j->seq = ++b->xput_seq;
	snprintf(j->msgid, sizeof(j->msgid), "%s", cp->message_id);
	j->att = att;
	j->index = cp->index;
	j->size = seal.size;
	j->chunk_size = seal.chunk_size;
	memcpy(j->root, seal.root.data, sizeof(j->root));
	memcpy(j->data, cp->data.data, cp->data.len);
	j->len = cp->data.len;
	if (cp->n_proof)
		memcpy(j->proof, proof, cp->n_proof * sizeof(tern_hash));
	j->nproof = cp->n_proof;
	j->dir = b->chunk_dir;
	if (stage(b, p, cp, n, (uint8_t *)proof, cp->n_proof * sizeof(tern_hash), j->seq) !=
	    TERN_OK) {
		chunk_xjob_free(&j);
		send_ack(b, p, cp->message_id, att, committed, TERN_REASON_BUSY,
		         "broker out of memory");
		goto out;
	}
	proof = NULL; /* the staged chunk's now */
	b->turn_puts++;
	if (b->xput == NULL || tern_workq_out(b->xput) >= XPUT_MAX_OUT) {
		/* No thread (a broker made by a test), or it is XPUT_MAX_OUT
		 * chunks behind (many senders at once): here, at once, as
		 * before the thread, rather than hold more copies or make the
		 * sender wait. */
		(void)xput_work(j);
		xput_back(b, j);
		chunk_xjob_free(&j);
	} else {
		tern_workq_push(b->xput, &j->item);
	}
out:
	free(proof);
	free(r);
}

/* --- ChunkGet ---------------------------------------------------------------- */

static void send_chunk_refusal(broker *b, struct peer *p, const char *msgid, uint32_t att,
                               uint64_t index, tern_reason reason, const char *text)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Chunk c = TERN__V1__CHUNK__INIT;

	c.message_id = (char *)msgid;
	c.attachment = att;
	c.index = index;
	c.reason_code = (char *)tern_reason_code(reason);
	c.reason_text = (char *)text;
	f.body_case = TERN__V1__FRAME__BODY_CHUNK;
	f.chunk = &c;
	(void)peer_send_bulk(b, p, &f);
}

static void get_remove(struct peer *p, size_t i)
{
	p->gets[i] = p->gets[--p->ngets];
}

void chunk_gets_drop(struct peer *p)
{
	free(p->gets);
	p->gets = NULL;
	p->ngets = 0;
	p->chunk_dirty = 0;
}

static void gets_drop_msg(struct peer *p, const char *msgid)
{
	for (size_t i = 0; i < p->ngets;)
		if (strcmp(p->gets[i].msgid, msgid) == 0)
			get_remove(p, i);
		else
			i++;
}

void chunk_on_get(broker *b, struct peer *p, const Tern__V1__ChunkGet *cg)
{
	xfer_rec *r;
	MDB_txn *txn;
	struct chunk_get *g = NULL;
	int rc;

	if ((r = malloc(sizeof(*r))) == NULL)
		return; /* the node asks again */
	rc = tern_store_read_begin(b->store, &txn);
	if (rc == TERN_OK) {
		rc = xfer_get(txn, b->store, cg->message_id, r);
		mdb_txn_abort(txn);
	}
	if (rc != TERN_OK || xfer_rcpt_index(r, p->id) < 0 || cg->attachment >= r->natt) {
		send_chunk_refusal(b, p, cg->message_id, cg->attachment, cg->from,
		                   TERN_REASON_UNKNOWN_TRANSFER, "no such transfer for this node");
		goto out;
	}
	/* A new get for the same attachment replaces the old one. */
	for (size_t i = 0; i < p->ngets; i++)
		if (p->gets[i].att == cg->attachment &&
		    strcmp(p->gets[i].msgid, cg->message_id) == 0)
			g = &p->gets[i];
	if (cg->count == 0 || cg->from >= tern_attach_chunks(r->att[cg->attachment].size,
	                                                     r->att[cg->attachment].chunk_size)) {
		if (g)
			get_remove(p, (size_t)(g - p->gets)); /* nothing (more) to send */
		goto out;
	}
	if (g == NULL) {
		if (p->gets == NULL && (p->gets = calloc(PEER_MAX_GETS, sizeof(*p->gets))) == NULL)
			goto out;
		if (p->ngets == PEER_MAX_GETS) {
			send_chunk_refusal(b, p, cg->message_id, cg->attachment, cg->from,
			                   TERN_REASON_BUSY,
			                   "too many chunk gets pending: ask later");
			goto out;
		}
		g = &p->gets[p->ngets++];
		snprintf(g->msgid, sizeof(g->msgid), "%s", cg->message_id);
		g->att = cg->attachment;
	}
	g->next = cg->from;
	g->left = cg->count > CHUNK_GET_MAX ? CHUNK_GET_MAX : cg->count;
	p->chunk_dirty = 1;
out:
	free(r);
}

/* Sends chunk g->next of r; TERN_EAGAIN-like failures leave g as it was. */
static int send_one(broker *b, struct peer *p, MDB_txn *txn, const xfer_rec *r, struct chunk_get *g,
                    int *blocked)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Chunk c = TERN__V1__CHUNK__INIT;
	ProtobufCBinaryData hashes[XFER_MAX_PROOF];
	const xfer_att *a = &r->att[g->att];
	const uint8_t *proof;
	size_t plen,
	    len = tern_attach_chunk_len(a->size, a->chunk_size, g->next) + TERN_ATTACH_TAG_LEN;
	uint8_t *buf = NULL;
	int rc;

	if ((rc = xfer_proof_get(txn, b->store, r->msgid, g->att, g->next, &proof, &plen)) !=
	        TERN_OK ||
	    plen % sizeof(tern_hash) != 0 || plen / sizeof(tern_hash) > XFER_MAX_PROOF)
		return rc != TERN_OK ? rc : tern_fail(TERN_EMALFORMED, "damaged chunk proof");
	if ((buf = malloc(len)) == NULL)
		return TERN_ENOMEM;
	if ((rc = xfer_spool_read(b->chunk_dir, r->msgid, g->att,
	                          tern_attach_slot(a->chunk_size, g->next), buf, len)) != TERN_OK)
		goto out;
	for (size_t i = 0; i < plen / sizeof(tern_hash); i++)
		hashes[i] = (ProtobufCBinaryData){sizeof(tern_hash),
		                                  (uint8_t *)proof + i * sizeof(tern_hash)};
	c.message_id = (char *)r->msgid;
	c.attachment = g->att;
	c.index = g->next;
	c.data = (ProtobufCBinaryData){len, buf};
	c.n_proof = plen / sizeof(tern_hash);
	c.proof = c.n_proof ? hashes : NULL;
	f.body_case = TERN__V1__FRAME__BODY_CHUNK;
	f.chunk = &c;
	if (peer_send_bulk(b, p, &f) != TERN_OK) {
		*blocked = 1; /* the socket is full or the peer gone: a later turn */
		goto out;
	}
	b->m.chunks_out++;
	g->next++;
	g->left--;
out:
	free(buf);
	return rc;
}

void chunk_pump(broker *b, struct peer *p)
{
	xfer_rec *r;
	MDB_txn *txn;
	int budget = CHUNK_SENDS_PER_TURN, blocked = 0;

	p->chunk_dirty = 0;
	if (!p->live || p->ngets == 0)
		return;
	if ((r = malloc(sizeof(*r))) == NULL || tern_store_read_begin(b->store, &txn) != TERN_OK) {
		free(r);
		p->chunk_dirty = 1;
		return;
	}
	for (size_t i = 0; i < p->ngets && !blocked;) {
		struct chunk_get *g = &p->gets[i];
		uint64_t n;
		int rc = xfer_get(txn, b->store, g->msgid, r);
		if (rc != TERN_OK || g->att >= r->natt) {
			/* Ended since (expired, or every recipient done): say so. */
			send_chunk_refusal(b, p, g->msgid, g->att, g->next,
			                   TERN_REASON_UNKNOWN_TRANSFER, "the transfer has ended");
			get_remove(p, i);
			continue;
		}
		n = tern_attach_chunks(r->att[g->att].size, r->att[g->att].chunk_size);
		while (g->left && g->next < r->att[g->att].have && budget > 0 && !blocked) {
			if ((rc = send_one(b, p, txn, r, g, &blocked)) != TERN_OK) {
				log_warnx(
				    "cannot serve chunk %llu of attachment %u of %s to %s: %s",
				    (unsigned long long)g->next, g->att, g->msgid, p->id,
				    tern_errdetail());
				send_chunk_refusal(
				    b, p, g->msgid, g->att, g->next, TERN_REASON_BUSY,
				    "the broker could not read the chunk: ask again");
				g->left = 0;
				break;
			}
			budget--;
		}
		if (g->left == 0 || g->next >= n) {
			get_remove(p, i);
			continue;
		}
		i++;
	}
	mdb_txn_abort(txn);
	free(r);
	/* More to send than this turn's share, or a full socket: next turn. */
	p->chunk_dirty = blocked || budget == 0;
}

/* --- ChunkDone --------------------------------------------------------------- */

/* A reason code as nodes send them (lower-case letters, digits, '-'): only
 * such a peer's string goes into the log. */
static int code_printable(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (n >= 64 ||
		    !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
			return 0;
	return 1;
}

struct done_arg {
	tern_store *st;
	const char *msgid, *rcpt;
	int64_t now, retain_ms;
	size_t gone;
};

static int done_apply(MDB_txn *txn, void *arg)
{
	struct done_arg *d = arg;

	return xfer_rcpt_done(txn, d->st, d->msgid, d->rcpt, d->now, d->retain_ms, &d->gone);
}

void chunk_on_done(broker *b, struct peer *p, const Tern__V1__ChunkDone *cd)
{
	struct done_arg d = {b->store, cd->message_id, p->id, tern_now_ms(), b->retain_ms, 0};
	int rc;

	gets_drop_msg(p, cd->message_id);
	rc = tern_store_write(b->store, done_apply, &d);
	if (rc == TERN_ENOENT)
		return; /* said twice, or not its transfer: nothing to do */
	if (rc != TERN_OK) {
		log_warnx("cannot record that %s is done with %s: %s", p->id, cd->message_id,
		          tern_errdetail());
		return;
	}
	if (cd->reason_code[0])
		log_info("%s gave up the attachments of %s: %s", p->id, cd->message_id,
		         code_printable(cd->reason_code) ? cd->reason_code
		                                         : "(an unreadable reason)");
	if (d.gone) {
		xfer_spool_remove(b->syncer, b->chunk_dir, cd->message_id, d.gone);
		log_info("attachments of %s dropped: every recipient is done", cd->message_id);
	}
}

/* --- ended transfers ---------------------------------------------------------- */

void chunk_gone(const char *msgid, size_t natt, void *arg)
{
	struct batch *bt = arg;

	/* The batch's write may run again (map growth): the same id twice is
	 * harmless, but the array must not fill up with repeats. */
	for (size_t i = 0; i < bt->nxgone; i++)
		if (strcmp(bt->xgone[i].msgid, msgid) == 0)
			return;
	if (bt->nxgone == XFER_SWEEP_MAX)
		return;
	snprintf(bt->xgone[bt->nxgone].msgid, sizeof(bt->xgone[0].msgid), "%s", msgid);
	bt->xgone[bt->nxgone++].natt = natt;
}

void chunk_gone_apply(broker *b)
{
	struct batch *bt = &b->batch;

	for (size_t i = 0; i < bt->nxgone; i++) {
		xfer_spool_remove(b->syncer, b->chunk_dir, bt->xgone[i].msgid, bt->xgone[i].natt);
		log_info("attachments of %s dropped: expired, or no recipient waits for them",
		         bt->xgone[i].msgid);
	}
	if (bt->nxgone)
		for (size_t i = 0; i < b->npeers; i++)
			if (b->peers[i].ngets)
				b->peers[i].chunk_dirty = 1; /* a get may be for one of them */
	bt->nxgone = 0;
}

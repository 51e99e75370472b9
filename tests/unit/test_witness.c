/* Witnessing: a witness cosigns a log's checkpoint only when it extends the
 * one it cosigned before, and tells the owner where it stands otherwise; the
 * owner keeps one verified cosignature per witness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/note.h>

#include "failmalloc.h"
#include "testutil.h"
#include "witness.h"

static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};

struct logfx {
	char dir[128];
	tern_store *s;
	tern_audit_dbs d;
};

struct fx {
	struct logfx owner, witness, other; /* other: a second history under the owner's key */
	tern_signkey *owner_key, *witness_key, *stranger_key;
	tern_directory *dir;
	char owner_origin[64], witness_origin[64];
	/* the request under test */
	struct logfx *from;
	int n;
	char *note;
	uint64_t size;
	tern_witness_req req;
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	char *line;
	uint64_t got_size, witnessed;
	const char *reason;
	char *reanchor; /* the owner's signed re-anchor request, when made */
};

static int log_open(struct logfx *l, const char *name)
{
	if (tt_mkdtemp(l->dir, sizeof(l->dir), name) != 0 ||
	    tern_store_open(l->dir, dbnames, 0, 0, &l->s) != TERN_OK)
		return -1;
	tern_audit_dbs_at(l->s, 0, &l->d);
	return 0;
}

static void log_close(struct logfx *l)
{
	tern_store_close(&l->s);
	tt_rmtree(l->dir);
}

static int add_member(tern_directory *d, const char *id, unsigned roles, const tern_signkey *k)
{
	tern_member m;

	memset(&m, 0, sizeof(m));
	snprintf(m.node_id, sizeof(m.node_id), "%s", id);
	m.roles = roles;
	memcpy(m.sign_public, tern_signkey_public(k), 32);
	return tern_directory_add(d, &m);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || log_open(&f->owner, "wit-owner") || log_open(&f->witness, "wit-witness") ||
	    log_open(&f->other, "wit-other") || tern_signkey_generate(&f->owner_key) != TERN_OK ||
	    tern_signkey_generate(&f->witness_key) != TERN_OK ||
	    tern_signkey_generate(&f->stranger_key) != TERN_OK ||
	    tern_directory_new("tern-test", 1, &f->dir) != TERN_OK ||
	    add_member(f->dir, "unhcr", TERN_ROLE_REFERRER, f->owner_key) != TERN_OK ||
	    add_member(f->dir, "sweden", TERN_ROLE_STATE, f->witness_key) != TERN_OK)
		return -1;
	tern_audit_origin("tern-test", "unhcr", f->owner_origin, sizeof(f->owner_origin));
	tern_audit_origin("tern-test", "sweden", f->witness_origin, sizeof(f->witness_origin));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	log_close(&f->owner);
	log_close(&f->witness);
	log_close(&f->other);
	tern_signkey_free(&f->owner_key);
	tern_signkey_free(&f->witness_key);
	tern_signkey_free(&f->stranger_key);
	tern_directory_free(&f->dir);
	free(f->note);
	free(f->line);
	free(f->reanchor);
	free(f);
	return 0;
}

static int grow(MDB_txn *txn, void *arg)
{
	struct fx *f = arg;
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	char id[40];
	uint64_t size;
	int rc = TERN_OK;

	for (int i = 0; i < f->n && rc == TERN_OK; i++) {
		snprintf(id, sizeof(id), "01a20598-0000-7000-8000-%012d", i);
		e.kind = TERN__V1__AUDIT_ENTRY__KIND__SENT;
		e.message_id = id;
		/* The other history differs from the owner's in its peer. */
		e.peer = f->from == &f->other ? "portugal" : "sweden";
		rc = tern_audit_append(txn, &f->from->d, &e);
	}
	return rc != TERN_OK ? rc
	                     : tern_audit_checkpoint(txn, &f->from->d, f->owner_origin,
	                                             f->owner_key, 0, &size);
}

/* Appends n entries to log l, signs a checkpoint, and builds a request
 * proving it from old_size. */
static void prepare(struct fx *f, struct logfx *l, int n, uint64_t old_size)
{
	MDB_txn *txn;
	size_t plen = 0;

	f->from = l;
	f->n = n;
	assert_int_equal(tern_store_write(l->s, grow, f), TERN_OK);
	assert_int_equal(tern_store_read_begin(l->s, &txn), TERN_OK);
	free(f->note);
	assert_int_equal(tern_audit_latest_checkpoint(txn, &l->d, &f->note, &f->size), TERN_OK);
	if (old_size > 0 && old_size < f->size)
		assert_int_equal(
		    tern_audit_consistency_proof(txn, &l->d, old_size, f->size, f->proof, &plen),
		    TERN_OK);
	mdb_txn_abort(txn);
	f->req =
	    (tern_witness_req){"unhcr", f->note, old_size, (const tern_hash *)f->proof, plen, 0};
}

/* Makes the request prove l's newest checkpoint from old_size with l's own
 * proof: a log that does not extend what was cosigned at old_size. */
static void prove_own_from(struct fx *f, struct logfx *l, uint64_t old_size)
{
	MDB_txn *txn;
	size_t plen = 0;

	assert_int_equal(tern_store_read_begin(l->s, &txn), TERN_OK);
	assert_int_equal(
	    tern_audit_consistency_proof(txn, &l->d, old_size, f->size, f->proof, &plen), TERN_OK);
	mdb_txn_abort(txn);
	f->req.old_size = old_size;
	f->req.nproof = plen;
}

#define NOW_MS 1700000000000 /* the witness's clock in these tests */

/* Signs, with key at t_ms, the owner's request that the witness re-anchor
 * from f->req.old_size at the request's checkpoint (f->size entries of l),
 * and sets it on the request. */
static void ask_reanchor_as(struct fx *f, struct logfx *l, const tern_signkey *key, int64_t t_ms)
{
	MDB_txn *txn;
	tern_hash root;

	assert_int_equal(tern_store_read_begin(l->s, &txn), TERN_OK);
	assert_int_equal(tern_audit_root_at(txn, &l->d, f->size, root), TERN_OK);
	mdb_txn_abort(txn);
	free(f->reanchor);
	assert_int_equal(tern_witness_reanchor_request(f->owner_origin, key, f->req.old_size,
	                                               f->size, root, t_ms, &f->reanchor),
	                 TERN_OK);
	f->req.reanchor = f->reanchor;
}

static void ask_reanchor(struct fx *f, struct logfx *l)
{
	ask_reanchor_as(f, l, f->owner_key, NOW_MS);
}

static int cosign_apply(MDB_txn *txn, void *arg)
{
	struct fx *f = arg;
	int rc;

	free(f->line);
	f->line = NULL;
	rc = tern_witness_cosign(txn, &f->witness.d, f->dir, &f->req, f->witness_origin,
	                         f->witness_key, NOW_MS, &f->line, &f->got_size, &f->witnessed,
	                         &f->reason);
	return rc;
}

static int cosign(struct fx *f)
{
	return tern_store_write(f->witness.s, cosign_apply, f);
}

static uint64_t witness_log_size(struct fx *f)
{
	MDB_txn *txn;
	uint64_t size;
	tern_hash root;

	assert_int_equal(tern_store_read_begin(f->witness.s, &txn), TERN_OK);
	assert_int_equal(tern_audit_head(txn, &f->witness.d, &size, root), TERN_OK);
	mdb_txn_abort(txn);
	return size;
}

static void test_cosigns_and_extends(void **state)
{
	struct fx *f = *state;

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	assert_non_null(f->line);
	assert_int_equal(f->got_size, 3);
	assert_string_equal(f->reason, "");
	assert_int_equal(witness_log_size(f), 1); /* the COSIGNED entry */

	prepare(f, &f->owner, 4, 3);
	assert_true(f->req.nproof > 0);
	assert_int_equal(cosign(f), TERN_OK);
	assert_int_equal(f->got_size, 7);
	assert_int_equal(witness_log_size(f), 2);
}

#if MALLOC_CAN_FAIL
/* One try of a sweep: fn(txn, arg) in a write transaction with allocation
 * k (from fn's start) failing, then aborted, so that each try meets the
 * same state. */
struct short_try {
	tern_store_apply_fn *fn;
	void *arg;
	long k;
	int rc, failed;
};

static int short_try_apply(MDB_txn *txn, void *arg)
{
	struct short_try *s = arg;

	malloc_failed = 0;
	malloc_fail_at = s->k;
	s->rc = s->fn(txn, s->arg);
	malloc_fail_at = 0;
	s->failed = malloc_failed;
	return TERN_ECONFIG; /* abort: nothing of the try is kept */
}

/* Cosigns f's request with allocation 1, 2, ... failing in turn until one
 * try needs no more: each try is cosigned or out of memory, never refused
 * (a refusal would be kept as evidence against the owner). Aborted, every
 * try; the last one (which failed nothing) is left in f. */
static void sweep_cosign(struct fx *f, struct short_try *s)
{
	for (s->k = 1;; s->k++) {
		assert_int_equal(tern_store_write(f->witness.s, short_try_apply, s), TERN_ECONFIG);
		if (s->rc != TERN_OK && (s->rc != TERN_ENOMEM || !s->failed))
			fail_msg("allocation %ld failing: %s, reason \"%s\"", s->k,
			         tern_strerror(s->rc), f->reason);
		if (!s->failed) {
			assert_int_equal(s->rc, TERN_OK);
			return;
		}
	}
}
#endif

/* Cosigning an owner's checkpoint with each allocation failing in turn:
 * cosigned, or out of memory (the node answers nothing and the owner asks
 * again next round). Never a refusal: the node keeps a refused checkpoint
 * in its audit log as evidence against the owner, and tells the owner. */
static void test_every_shortage_no_false_evidence(void **state)
{
#if MALLOC_CAN_FAIL
	struct fx *f = *state;
	struct short_try s = {cosign_apply, f, 0, 0, 0};

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	prepare(f, &f->owner, 4, 3); /* a checkpoint that extends the one cosigned */
	sweep_cosign(f, &s);
	assert_int_equal(f->got_size, 7);
	print_message("shortage sweep: %ld allocations\n", s.k - 1);
	assert_true(s.k > 3);
#else
	(void)state;
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* Re-anchoring a restored log with each allocation failing in turn:
 * re-anchored, or out of memory (nothing kept: the owner asks again); never
 * a refusal kept as evidence, and never the state moved without its
 * REANCHORED entry (one transaction). */
static void test_reanchor_every_shortage(void **state)
{
#if MALLOC_CAN_FAIL
	struct fx *f = *state;
	struct short_try s = {cosign_apply, f, 0, 0, 0};

	prepare(f, &f->owner, 5, 0);
	assert_int_equal(cosign(f), TERN_OK);
	prepare(f, &f->other, 2, 5); /* put back: shorter, another history */
	ask_reanchor(f, &f->other);
	sweep_cosign(f, &s);
	assert_string_equal(f->reason, "reanchored");
	assert_int_equal(f->got_size, 2);
	assert_true(s.k > 3);
	assert_int_equal(witness_log_size(f), 1); /* every try aborted */
#else
	(void)state;
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

static void test_conflict_tells_where_the_witness_is(void **state)
{
	struct fx *f = *state;

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	prepare(f, &f->owner, 2, 0); /* the owner forgot: it restarted */
	assert_int_equal(cosign(f), TERN_EEXIST);
	assert_string_equal(f->reason, "conflict");
	assert_int_equal(f->witnessed, 3);
	assert_int_equal(witness_log_size(f), 1);
	/* Proving from there works. */
	{
		MDB_txn *txn;
		size_t plen = 0;
		assert_int_equal(tern_store_read_begin(f->owner.s, &txn), TERN_OK);
		assert_int_equal(
		    tern_audit_consistency_proof(txn, &f->owner.d, 3, 5, f->proof, &plen), TERN_OK);
		mdb_txn_abort(txn);
		f->req.old_size = 3;
		f->req.nproof = plen;
	}
	assert_int_equal(cosign(f), TERN_OK);
	assert_int_equal(f->got_size, 5);
}

static void test_bad_proof_refused(void **state)
{
	struct fx *f = *state;

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	prepare(f, &f->owner, 5, 3);
	f->proof[0][0] ^= 1;
	assert_int_equal(cosign(f), TERN_EINVAL);
	assert_string_equal(f->reason, "bad-proof");
	assert_null(f->line);
	assert_int_equal(witness_log_size(f), 1);
}

static void test_rewritten_history_refused(void **state)
{
	struct fx *f = *state;

	prepare(f, &f->owner, 4, 0);
	assert_int_equal(cosign(f), TERN_OK);
	/* Same size, another root: a fork. */
	prepare(f, &f->other, 4, 4);
	assert_int_equal(cosign(f), TERN_EINVAL);
	assert_string_equal(f->reason, "fork");
	/* Larger, but not an extension of what was cosigned: its own proof from 4
	 * leads to its own root at 4, not the cosigned one. */
	prepare(f, &f->other, 3, 0);
	prove_own_from(f, &f->other, 4);
	assert_int_equal(cosign(f), TERN_EINVAL);
	assert_string_equal(f->reason, "bad-proof");
	assert_int_equal(witness_log_size(f), 1);
}

static void test_rollback_refused(void **state)
{
	struct fx *f = *state;

	prepare(f, &f->owner, 5, 0);
	assert_int_equal(cosign(f), TERN_OK);
	prepare(f, &f->other, 2, 5);
	assert_int_equal(cosign(f), TERN_EOLDER);
	assert_string_equal(f->reason, "rollback");
}

/* The witness's last log entry, decoded (the caller frees it). */
static Tern__V1__AuditEntry *witness_last_entry(struct fx *f)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	Tern__V1__AuditEntry *e;

	assert_int_equal(tern_store_read_begin(f->witness.s, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, f->witness.d.entries, &c), 0);
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
	e = tern__v1__audit_entry__unpack(NULL, v.mv_size, v.mv_data);
	assert_non_null(e);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return e;
}

static int witness_last_entry_kind(struct fx *f)
{
	Tern__V1__AuditEntry *e = witness_last_entry(f);
	int k = e->kind;

	tern__v1__audit_entry__free_unpacked(e, NULL);
	return k;
}

/* A log put back from a backup (a shorter history, then a fork of the same
 * size) is refused for good, unless its owner asks to re-anchor: then the
 * witness cosigns it as the new start and keeps what it gives up in a
 * REANCHORED entry; witnessing then goes on from there. A re-anchor asked of
 * a log that does extend what was cosigned is a plain cosignature, and one
 * that names another size than the witness's, or is not signed by the
 * owner, is refused as before. Before, nothing re-anchored a restored log:
 * it was never witnessed again. */
static void test_reanchor_takes_a_restored_log(void **state)
{
	struct fx *f = *state;
	Tern__V1__AuditEntry *e;
	MDB_txn *txn;
	tern_hash root5;

	prepare(f, &f->owner, 5, 0);
	assert_int_equal(cosign(f), TERN_OK);
	assert_int_equal(tern_store_read_begin(f->owner.s, &txn), TERN_OK);
	assert_int_equal(tern_audit_root_at(txn, &f->owner.d, 5, root5), TERN_OK);
	mdb_txn_abort(txn);
	/* The restored copy: 2 entries of another history. */
	prepare(f, &f->other, 2, 5);
	assert_int_equal(cosign(f), TERN_EOLDER);
	f->req.old_size = 3; /* not the witness's size: where it stands, as before */
	ask_reanchor(f, &f->other);
	assert_int_equal(cosign(f), TERN_EEXIST);
	assert_int_equal(f->witnessed, 5);
	/* Requests that do not hold leave the refusal as it was: signed from
	 * another size than the witness's (an old one used again), not by the
	 * owner (a relay's), older than its time allows, for another
	 * checkpoint. */
	f->req.old_size = 5;
	assert_int_equal(cosign(f), TERN_EOLDER);
	ask_reanchor_as(f, &f->other, f->stranger_key, NOW_MS);
	assert_int_equal(cosign(f), TERN_EOLDER);
	ask_reanchor_as(f, &f->other, f->owner_key, NOW_MS - (TERN_REANCHOR_AGE_S + 1) * 1000LL);
	assert_int_equal(cosign(f), TERN_EOLDER);
	ask_reanchor(f, &f->other);
	f->size = 1; /* the request names 1 entry; the checkpoint has 2 */
	ask_reanchor(f, &f->other);
	f->size = 2;
	assert_int_equal(cosign(f), TERN_EOLDER);
	assert_int_equal(witness_last_entry_kind(f), TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
	ask_reanchor(f, &f->other);
	assert_int_equal(cosign(f), TERN_OK);
	assert_string_equal(f->reason, "reanchored");
	assert_non_null(f->line);
	assert_int_equal(f->got_size, 2);
	e = witness_last_entry(f);
	assert_int_equal(e->kind, TERN__V1__AUDIT_ENTRY__KIND__REANCHORED);
	assert_string_equal(e->peer, "unhcr");
	assert_int_equal(e->abandoned_size, 5);
	assert_int_equal(e->abandoned_root.len, TERN_HASH_LEN);
	assert_memory_equal(e->abandoned_root.data, root5, TERN_HASH_LEN);
	assert_non_null(strstr(e->checkpoint, f->note)); /* the owner's signed checkpoint */
	assert_string_equal(e->request, f->reanchor);    /* and its signed request */
	tern__v1__audit_entry__free_unpacked(e, NULL);
	/* Witnessed again from there: 3 more entries, proved from 2. */
	prepare(f, &f->other, 3, 2);
	assert_int_equal(cosign(f), TERN_OK);
	assert_string_equal(f->reason, "");
	assert_int_equal(f->got_size, 5);
	/* A re-anchor asked in vain (the log extends the cosigned one): a plain
	 * cosignature. */
	prepare(f, &f->other, 1, 5);
	ask_reanchor(f, &f->other);
	assert_int_equal(cosign(f), TERN_OK);
	assert_string_equal(f->reason, "");
	e = witness_last_entry(f);
	assert_int_equal(e->kind, TERN__V1__AUDIT_ENTRY__KIND__COSIGNED);
	tern__v1__audit_entry__free_unpacked(e, NULL);
	/* A fork of the same size, re-anchored. */
	prepare(f, &f->owner, 1, 0);
	f->req.old_size = 6;
	assert_int_equal(cosign(f), TERN_EINVAL);
	assert_string_equal(f->reason, "fork");
	/* Each re-anchor its own request, made after the last one taken. */
	ask_reanchor_as(f, &f->owner, f->owner_key, NOW_MS + 1000);
	assert_int_equal(cosign(f), TERN_OK);
	assert_string_equal(f->reason, "reanchored");
	/* A larger log that does not extend it, re-anchored (bad-proof). */
	prepare(f, &f->other, 2, 0);
	prove_own_from(f, &f->other, 6);
	ask_reanchor_as(f, &f->other, f->owner_key, NOW_MS + 1000);
	assert_int_equal(cosign(f), TERN_EINVAL); /* no newer than the one taken */
	ask_reanchor_as(f, &f->other, f->owner_key, NOW_MS + 2000);
	assert_int_equal(cosign(f), TERN_OK);
	assert_string_equal(f->reason, "reanchored");
	assert_int_equal(f->got_size, 8);
}

static void test_foreign_signature_refused(void **state)
{
	struct fx *f = *state;
	char *body = NULL, *forged = NULL;

	prepare(f, &f->owner, 2, 0);
	body = strndup(f->note, strstr(f->note, "\n\n") + 1 - f->note);
	assert_int_equal(tern_note_sign(body, f->owner_origin, f->stranger_key, &forged), TERN_OK);
	f->req.note = forged;
	assert_int_equal(cosign(f), TERN_EBADSIG);
	/* Nor may anyone present the owner's log as someone else's. */
	f->req.note = f->note;
	f->req.owner = "sweden";
	assert_int_equal(cosign(f), TERN_EBADSIG);
	assert_int_equal(witness_log_size(f), 0);
	free(body);
	free(forged);
}

struct addfx {
	struct fx *f;
	const char *line;
};

static int add_apply(MDB_txn *txn, void *arg)
{
	struct addfx *a = arg;

	return tern_audit_add_cosignature(txn, &a->f->owner.d, a->f->dir, "sweden", a->f->size,
	                                  a->line);
}

static void test_owner_keeps_one_cosignature_per_witness(void **state)
{
	struct fx *f = *state;
	struct addfx a = {f, NULL};
	char *first, *note = NULL, *bad, *p;
	uint64_t size, t = 0;
	MDB_txn *txn;

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	first = strdup(f->line);
	a.line = first;
	assert_int_equal(tern_store_write(f->owner.s, add_apply, &a), TERN_OK);
	/* A later round cosigns the same checkpoint again (an idle log). */
	f->req.old_size = 3;
	assert_int_equal(cosign(f), TERN_OK);
	a.line = f->line;
	assert_int_equal(tern_store_write(f->owner.s, add_apply, &a), TERN_OK);
	assert_int_equal(tern_store_read_begin(f->owner.s, &txn), TERN_OK);
	assert_int_equal(tern_audit_latest_checkpoint(txn, &f->owner.d, &note, &size), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(tern_cosign_verify(note, strlen(note), f->witness_origin,
	                                    tern_signkey_public(f->witness_key), &t),
	                 TERN_OK);
	assert_int_equal(t, 1700000000);
	p = strstr(note, f->witness_origin);
	assert_non_null(p);
	assert_null(strstr(p + 1, f->witness_origin)); /* only one line by sweden */
	/* A line that does not verify is not kept. */
	bad = strdup(f->line);
	bad[strlen(bad) - 20] = bad[strlen(bad) - 20] == 'A' ? 'B' : 'A';
	a.line = bad;
	assert_int_equal(tern_store_write(f->owner.s, add_apply, &a), TERN_EBADSIG);
	free(bad);
	free(first);
	free(note);
}

/* Keeping a good cosignature under each shortage: kept, or out of memory.
 * Never "does not verify": the owner would log its witness's good line as
 * a bad one (and an auditor's tern audit verify, the same note as forged). */
static void test_every_cosignature_shortage_not_bad(void **state)
{
#if MALLOC_CAN_FAIL
	struct fx *f = *state;
	struct addfx a = {f, NULL};
	struct short_try s = {add_apply, &a, 0, 0, 0};

	prepare(f, &f->owner, 3, 0);
	assert_int_equal(cosign(f), TERN_OK);
	a.line = f->line;
	for (s.k = 1;; s.k++) {
		assert_int_equal(tern_store_write(f->owner.s, short_try_apply, &s), TERN_ECONFIG);
		if (s.rc != TERN_OK && (s.rc != TERN_ENOMEM || !s.failed))
			fail_msg("allocation %ld failing: %s", s.k, tern_strerror(s.rc));
		if (!s.failed) {
			assert_int_equal(s.rc, TERN_OK);
			break;
		}
	}
	print_message("shortage sweep: %ld allocations\n", s.k - 1);
	assert_true(s.k > 2);
#else
	(void)state;
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cosigns_and_extends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_shortage_no_false_evidence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_cosignature_shortage_not_bad, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_tells_where_the_witness_is, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_proof_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rewritten_history_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reanchor_every_shortage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reanchor_takes_a_restored_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_signature_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_keeps_one_cosignature_per_witness, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tern-audit-proofs DATADIR [ROUNDS]: what a consistency proof costs on the
 * audit log in a STOPPED daemon's store (tests/bench/audit-proofs.sh).
 *
 * Opens the store for writing, as the daemon does, so a store from before the
 * subtree hashes were kept is backfilled first (timed). Then, for a few old
 * sizes, times the proof to the log's size made three ways: by hashing every
 * entry into an array (how every proof was made before), from the stored
 * subtrees, and from the entries alone (a read-only view of a store that has
 * no subtrees yet), and checks that the three agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tern/error.h>

#include "audit.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The proof as it was made before: every leaf hash into an array. */
static int leaf_scan_proof(MDB_txn *txn, const tern_audit_dbs *d, uint64_t m, uint64_t n,
                           tern_hash *proof, size_t *len)
{
	tern_hash *leaves = malloc(n * sizeof(*leaves));
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t i = 0;
	int rc;

	if (leaves == NULL)
		return TERN_ENOMEM;
	if ((rc = mdb_cursor_open(txn, d->entries, &c)) != 0) {
		free(leaves);
		return tern_store_mdb_err(rc, "cursor");
	}
	while (i < n && mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
		tern_merkle_leaf_hash(v.mv_data, v.mv_size, leaves[i++]);
	mdb_cursor_close(c);
	rc = i < n ? TERN_ENOENT : tern_merkle_consistency_proof(leaves, n, m, proof, len);
	free(leaves);
	return rc;
}

typedef int proof_fn(MDB_txn *txn, const tern_audit_dbs *d, uint64_t m, uint64_t n,
                     tern_hash *proof, size_t *len);

/* The fastest of rounds runs, in ms; the proof in proof/len. */
static double best_of(int rounds, proof_fn *fn, MDB_txn *txn, const tern_audit_dbs *d, uint64_t m,
                      uint64_t n, tern_hash *proof, size_t *len)
{
	double best = -1;

	for (int r = 0; r < rounds; r++) {
		double t = now_ms();
		if (fn(txn, d, m, n, proof, len) != TERN_OK) {
			fprintf(stderr, "tern-audit-proofs: %s\n", tern_errdetail());
			exit(1);
		}
		t = now_ms() - t;
		if (best < 0 || t < best)
			best = t;
	}
	return best;
}

int main(int argc, char **argv)
{
	static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};
	tern_hash a[TERN_MERKLE_MAX_PROOF], b[TERN_MERKLE_MAX_PROOF], c[TERN_MERKLE_MAX_PROOF];
	tern_hash root;
	tern_store *st = NULL;
	tern_audit_dbs d, bare;
	MDB_txn *txn;
	MDB_stat ms;
	uint64_t size, olds[4];
	size_t la, lb, lc;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	double t;

	if (argc < 2 || rounds < 1) {
		fprintf(stderr, "usage: tern-audit-proofs DATADIR [ROUNDS]\n");
		return 2;
	}
	if (tern_store_open(argv[1], dbnames, 0, 0, &st) != TERN_OK) {
		fprintf(stderr, "tern-audit-proofs: %s\n", tern_errdetail());
		return 1;
	}
	tern_audit_dbs_at(st, 0, &d);
	t = now_ms();
	if (tern_audit_backfill(st, &d) != TERN_OK) {
		fprintf(stderr, "tern-audit-proofs: backfill: %s\n", tern_errdetail());
		return 1;
	}
	printf("backfill at open: %.0f ms\n", now_ms() - t);
	if (tern_store_read_begin(st, &txn) != TERN_OK ||
	    tern_audit_head(txn, &d, &size, root) != TERN_OK || size < 2) {
		fprintf(stderr, "tern-audit-proofs: no log to prove (%s)\n", tern_errdetail());
		return 1;
	}
	mdb_stat(txn, d.entries, &ms);
	printf("log: %llu entries, entries db %.1f MiB\n", (unsigned long long)size,
	       (double)(ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages) *
	           ms.ms_psize / 1048576);
	mdb_stat(txn, d.subtrees, &ms);
	printf("subtrees: %zu stored, %.1f MiB (%.1f bytes per entry)\n", ms.ms_entries,
	       (double)(ms.ms_branch_pages + ms.ms_leaf_pages) * ms.ms_psize / 1048576,
	       (double)(ms.ms_branch_pages + ms.ms_leaf_pages) * ms.ms_psize / (double)size);
	bare = d;
	bare.subtrees = 0;
	olds[0] = size - 1;
	olds[1] = size / 2 + 1;
	olds[2] = size / 3;
	olds[3] = 1;
	printf("consistency proof to %llu, best of %d (ms): leaf scan (before) | stored subtrees "
	       "| entries only (older store, read-only)\n",
	       (unsigned long long)size, rounds);
	for (int i = 0; i < 4; i++) {
		double ta = best_of(rounds, leaf_scan_proof, txn, &d, olds[i], size, a, &la);
		double tb =
		    best_of(rounds, tern_audit_consistency_proof, txn, &d, olds[i], size, b, &lb);
		double tc = best_of(rounds, tern_audit_consistency_proof, txn, &bare, olds[i], size,
		                    c, &lc);
		if (la != lb || la != lc || memcmp(a, b, la * TERN_HASH_LEN) != 0 ||
		    memcmp(a, c, la * TERN_HASH_LEN) != 0) {
			fprintf(stderr, "tern-audit-proofs: the proofs from %llu differ\n",
			        (unsigned long long)olds[i]);
			return 1;
		}
		printf("  from %8llu (%2zu hashes): %9.1f | %7.3f | %9.1f\n",
		       (unsigned long long)olds[i], la, ta, tb, tc);
	}
	mdb_txn_abort(txn);
	tern_store_close(&st);
	return 0;
}

/* Witnessing (docs/audit.md): nodes cosign each other's audit checkpoints,
 * after c2sp.org/tlog-witness, so that an agency that rewrites its own history
 * contradicts what its peers recorded.
 *
 * The witness side keeps, per log, the size and root it last cosigned (in the
 * audit meta database) and accepts a new checkpoint only with a consistency
 * proof from there. The owner side stores each verified cosignature with the
 * checkpoint it covers, so exports carry them. */
#ifndef TERN_WITNESS_H
#define TERN_WITNESS_H

#include <stdint.h>

#include <tern/directory.h>
#include <tern/keys.h>
#include <tern/merkle.h>

#include "audit.h"

/* "tern/FEDERATION/NODE": the name a node signs and cosigns checkpoints under. */
int tern_audit_origin(const char *federation, const char *node_id, char *buf, size_t len);

typedef struct tern_witness_req {
	const char *owner;      /* the authenticated sender, whose log this is */
	const char *note;       /* its signed checkpoint */
	uint64_t old_size;      /* what the owner believes this witness last cosigned */
	const tern_hash *proof; /* consistency proof from old_size */
	size_t nproof;
	/* The owner's store was put back and its operator asked to re-anchor:
	 * its signed request (tern_witness_reanchor_request), or NULL. With one
	 * that holds (the owner's signature, from old_size, for this very
	 * checkpoint, made within TERN_REANCHOR_AGE_S of now), a checkpoint
	 * that does not extend the cosigned one (smaller, a fork, a proof that
	 * fails) is cosigned as the new start all the same, and a REANCHORED
	 * entry keeps what was given up with the request. Each request is taken
	 * once: one no newer than the last taken for this log is refused. */
	const char *reanchor;
} tern_witness_req;

/* How old (or, for clocks apart, how far ahead) a re-anchor request may be:
 * the node asks for 10 minutes after its operator's command. */
#define TERN_REANCHOR_AGE_S (15 * 60)

/* The owner's request that a witness which cosigned old_size entries take
 * its checkpoint of (size, root) as the log's new start, signed at now_ms
 * with its log key under origin: *note, malloc'd. */
int tern_witness_reanchor_request(const char *origin, const tern_signkey *key, uint64_t old_size,
                                  uint64_t size, const tern_hash root, int64_t now_ms, char **note);

/* Checks req against what this witness last cosigned for the owner's log and,
 * when it holds, cosigns the checkpoint as self_origin with key at now_ms,
 * remembers it and appends a COSIGNED entry, all in txn. With req->reanchor,
 * a checkpoint that does not extend the cosigned one is cosigned as well,
 * remembered as the new start, and kept in a REANCHORED entry with the size
 * and root it replaces; *reason is then "reanchored". On success *line is
 * the cosignature line (malloc'd). On refusal returns TERN_EBADSIG (note not
 * signed by the owner), TERN_EINVAL (bad proof, or a different root at the
 * same size: a fork), TERN_EOLDER (smaller than what was cosigned) or
 * TERN_EEXIST (old_size is not what this witness cosigned; *witnessed holds
 * that size), with *reason a short code for the answer. */
int tern_witness_cosign(MDB_txn *txn, const tern_audit_dbs *d, const tern_directory *dir,
                        const tern_witness_req *req, const char *self_origin,
                        const tern_signkey *key, int64_t now_ms, char **line, uint64_t *size,
                        uint64_t *witnessed, const char **reason);

/* Owner side: verifies witness's cosignature line for the stored checkpoint of
 * size and keeps it with that checkpoint, replacing an older one by the same
 * witness. TERN_ENOENT when no checkpoint of that size is stored; TERN_EBADSIG
 * when the line does not verify. */
int tern_audit_add_cosignature(MDB_txn *txn, const tern_audit_dbs *d, const tern_directory *dir,
                               const char *witness, uint64_t size, const char *line);

#endif

/* RFC 6962 / RFC 9162 Merkle trees: leaf hash = SHA-256(0x00 || entry),
 * interior node = SHA-256(0x01 || left || right), split at the largest power
 * of two smaller than the size.
 *
 * Proof generation works over an array of leaf hashes, or over a callback
 * that gives the hash of a complete subtree (a log that keeps those);
 * verification needs only the proof. All functions return TERN_OK or
 * TERN_EINVAL (bad size or index, wrong proof length, a hash that does not
 * match); the _cb functions also pass on the callback's errors.
 */
#ifndef TERN_MERKLE_H
#define TERN_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_HASH_LEN 32
/* No proof in a tree of fewer than 2^63 leaves is longer than this. */
#define TERN_MERKLE_MAX_PROOF 64

typedef uint8_t tern_hash[TERN_HASH_LEN];

void tern_merkle_leaf_hash(const uint8_t *entry, size_t len, tern_hash out);
void tern_merkle_node_hash(const tern_hash left, const tern_hash right, tern_hash out);

/* The root of n leaves (n = 0: SHA-256 of the empty string). */
int tern_merkle_root(const tern_hash *leaves, uint64_t n, tern_hash out);

/* Audit path for leaves[index] in the tree of the first n leaves. proof has
 * room for TERN_MERKLE_MAX_PROOF hashes; *len receives the count. */
int tern_merkle_inclusion_proof(const tern_hash *leaves, uint64_t n, uint64_t index,
                                tern_hash *proof, size_t *len);
/* Consistency proof between the trees of the first m and n leaves, 0 < m <= n. */
int tern_merkle_consistency_proof(const tern_hash *leaves, uint64_t n, uint64_t m, tern_hash *proof,
                                  size_t *len);

/* The hash of the complete subtree of leaves [start, end): end - start is a
 * power of two and start a multiple of it, so it is a node of every tree that
 * holds leaf end - 1. Returns TERN_OK or an error code that is passed on. */
typedef int tern_merkle_subtree_fn(void *ctx, uint64_t start, uint64_t end, tern_hash out);

/* The same root and proofs, from complete subtrees: a proof asks for
 * O(log n) of them (the one part of it that is not complete, the right-hand
 * edge of the tree, is made of at most one per level). */
int tern_merkle_root_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n, tern_hash out);
int tern_merkle_inclusion_proof_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n,
                                   uint64_t index, tern_hash *proof, size_t *len);
int tern_merkle_consistency_proof_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n,
                                     uint64_t m, tern_hash *proof, size_t *len);

int tern_merkle_verify_inclusion(uint64_t index, uint64_t size, const tern_hash leaf,
                                 const tern_hash *proof, size_t len, const tern_hash root);
/* The root that proof leads to from leaf at index in a tree of size (for a
 * caller that checks a signature over it rather than compares). */
int tern_merkle_root_from_inclusion(uint64_t index, uint64_t size, const tern_hash leaf,
                                    const tern_hash *proof, size_t len, tern_hash root);
int tern_merkle_verify_consistency(uint64_t size1, uint64_t size2, const tern_hash root1,
                                   const tern_hash root2, const tern_hash *proof, size_t len);

/* A tree held whole in memory, for proving every leaf of a batch: building
 * it costs about n hashes and 2n hashes of memory, each proof O(log n). */
typedef struct tern_merkle_tree tern_merkle_tree;
/* n >= 1; the leaves are copied. */
int tern_merkle_tree_build(const tern_hash *leaves, uint64_t n, tern_merkle_tree **out);
void tern_merkle_tree_root(const tern_merkle_tree *t, tern_hash out);
/* The same audit path as tern_merkle_inclusion_proof. */
int tern_merkle_tree_inclusion_proof(const tern_merkle_tree *t, uint64_t index, tern_hash *proof,
                                     size_t *len);
/* Frees t and sets *t to NULL. */
void tern_merkle_tree_free(tern_merkle_tree **t);

#ifdef __cplusplus
}
#endif
#endif

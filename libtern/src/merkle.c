#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/merkle.h>

#include "util.h"

void tern_merkle_leaf_hash(const uint8_t *entry, size_t len, tern_hash out)
{
	static const uint8_t zero = 0x00;
	const tern_span s[2] = {{&zero, 1}, {entry, len}};

	if (tern_sha256_spans(s, 2, out) != TERN_OK) {
		/* Not after initialisation; libsodium's portable code all the same. */
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, &zero, 1);
		crypto_hash_sha256_update(&st, entry, len);
		crypto_hash_sha256_final(&st, out);
	}
}

void tern_merkle_node_hash(const tern_hash left, const tern_hash right, tern_hash out)
{
	uint8_t buf[1 + 2 * TERN_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, TERN_HASH_LEN);
	memcpy(buf + 1 + TERN_HASH_LEN, right, TERN_HASH_LEN);
	/* tern_sha256 cannot fail once initialised (the daemons and tools
	 * initialise at start); the one-shot is the fallback all the same. */
	if (tern_sha256(buf, sizeof(buf), out) != TERN_OK)
		SHA256(buf, sizeof(buf), out);
}

/* The largest power of two strictly smaller than n (n >= 2). */
static uint64_t split(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* MTH(D[0:n]) by a stack of complete subtrees: O(n) hashes, O(log n) memory. */
int tern_merkle_root(const tern_hash *leaves, uint64_t n, tern_hash out)
{
	tern_hash stack[65];
	uint64_t sizes[65];
	int top = 0;

	if (n == 0) {
		crypto_hash_sha256(out, (const uint8_t *)"", 0);
		return TERN_OK;
	}
	for (uint64_t i = 0; i < n; i++) {
		memcpy(stack[top], leaves[i], TERN_HASH_LEN);
		sizes[top++] = 1;
		/* Merge equal-size complete subtrees as soon as they pair up. */
		while (top >= 2 && sizes[top - 1] == sizes[top - 2]) {
			tern_merkle_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
			sizes[top - 2] *= 2;
			top--;
		}
	}
	/* What remains, right to left, are the right-hand parts of the splits. */
	while (top >= 2) {
		tern_merkle_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]);
		top--;
	}
	memcpy(out, stack[0], TERN_HASH_LEN);
	return TERN_OK;
}

struct source {
	tern_merkle_subtree_fn *subtree;
	void *ctx;
};

/* MTH(D[start:end]), end > start, where start is a multiple of a power of two
 * no smaller than end - start, as every range of the recursions below is.
 * Such a range is the complete subtrees of its size's binary digits, largest
 * first, each aligned, and the largest power of two below the size is the
 * first of them: folding them from the right is the RFC's split. */
static int range_hash(const struct source *src, uint64_t start, uint64_t end, tern_hash out)
{
	tern_hash part[64];
	uint64_t at = start;
	int n = 0, rc;

	for (int k = 63; k >= 0; k--) {
		uint64_t span = (uint64_t)1 << k;
		if (!((end - start) & span))
			continue;
		if ((rc = src->subtree(src->ctx, at, at + span, part[n++])) != TERN_OK)
			return rc;
		at += span;
	}
	memcpy(out, part[n - 1], TERN_HASH_LEN);
	for (int i = n - 2; i >= 0; i--)
		tern_merkle_node_hash(part[i], out, out);
	return TERN_OK;
}

/* RFC 6962 2.1.1 PATH(m, D[off:off+n]), appended to proof at *len (deepest
 * first). */
static int path(const struct source *src, uint64_t off, uint64_t n, uint64_t m, tern_hash *proof,
                size_t *len)
{
	uint64_t k;
	int rc;

	if (n <= 1)
		return TERN_OK;
	k = split(n);
	if (m < k) {
		if ((rc = path(src, off, k, m, proof, len)) != TERN_OK)
			return rc;
		return range_hash(src, off + k, off + n, proof[(*len)++]);
	}
	if ((rc = path(src, off + k, n - k, m - k, proof, len)) != TERN_OK)
		return rc;
	return range_hash(src, off, off + k, proof[(*len)++]);
}

/* RFC 6962 2.1.2 SUBPROOF(m, D[off:off+n], b). */
static int subproof(const struct source *src, uint64_t off, uint64_t n, uint64_t m, int b,
                    tern_hash *proof, size_t *len)
{
	uint64_t k;
	int rc;

	if (m == n)
		return b ? TERN_OK : range_hash(src, off, off + n, proof[(*len)++]);
	k = split(n);
	if (m <= k) {
		if ((rc = subproof(src, off, k, m, b, proof, len)) != TERN_OK)
			return rc;
		return range_hash(src, off + k, off + n, proof[(*len)++]);
	}
	if ((rc = subproof(src, off + k, n - k, m - k, 0, proof, len)) != TERN_OK)
		return rc;
	return range_hash(src, off, off + k, proof[(*len)++]);
}

int tern_merkle_root_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n, tern_hash out)
{
	struct source src = {subtree, ctx};

	if (n == 0) {
		crypto_hash_sha256(out, (const uint8_t *)"", 0);
		return TERN_OK;
	}
	return range_hash(&src, 0, n, out);
}

int tern_merkle_inclusion_proof_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n,
                                   uint64_t index, tern_hash *proof, size_t *len)
{
	struct source src = {subtree, ctx};

	*len = 0;
	if (index >= n)
		return tern_fail(TERN_EINVAL, "leaf %llu is not in a tree of %llu",
		                 (unsigned long long)index, (unsigned long long)n);
	return path(&src, 0, n, index, proof, len);
}

int tern_merkle_consistency_proof_cb(tern_merkle_subtree_fn *subtree, void *ctx, uint64_t n,
                                     uint64_t m, tern_hash *proof, size_t *len)
{
	struct source src = {subtree, ctx};

	*len = 0;
	if (m == 0 || m > n)
		return tern_fail(TERN_EINVAL, "no consistency proof from %llu to %llu",
		                 (unsigned long long)m, (unsigned long long)n);
	return subproof(&src, 0, n, m, 1, proof, len);
}

/* The array's complete subtrees, hashed from their leaves: the proofs below
 * cost O(n) hashes, as the RFC's definitions do. */
static int array_subtree(void *ctx, uint64_t start, uint64_t end, tern_hash out)
{
	const tern_hash *leaves = ctx;

	return tern_merkle_root(leaves + start, end - start, out);
}

int tern_merkle_inclusion_proof(const tern_hash *leaves, uint64_t n, uint64_t index,
                                tern_hash *proof, size_t *len)
{
	return tern_merkle_inclusion_proof_cb(array_subtree, (void *)leaves, n, index, proof, len);
}

int tern_merkle_consistency_proof(const tern_hash *leaves, uint64_t n, uint64_t m, tern_hash *proof,
                                  size_t *len)
{
	return tern_merkle_consistency_proof_cb(array_subtree, (void *)leaves, n, m, proof, len);
}

/* RFC 9162 2.1.3.2. */
int tern_merkle_verify_inclusion(uint64_t index, uint64_t size, const tern_hash leaf,
                                 const tern_hash *proof, size_t len, const tern_hash root)
{
	tern_hash r;
	int rc;

	if ((rc = tern_merkle_root_from_inclusion(index, size, leaf, proof, len, r)) != TERN_OK)
		return rc;
	if (sodium_memcmp(r, root, TERN_HASH_LEN) != 0)
		return tern_fail(TERN_EINVAL, "inclusion proof does not lead to the root");
	return TERN_OK;
}

int tern_merkle_root_from_inclusion(uint64_t index, uint64_t size, const tern_hash leaf,
                                    const tern_hash *proof, size_t len, tern_hash r)
{
	uint64_t fn = index, sn;

	if (index >= size)
		return tern_fail(TERN_EINVAL, "leaf index %llu outside a tree of %llu",
		                 (unsigned long long)index, (unsigned long long)size);
	sn = size - 1;
	memcpy(r, leaf, TERN_HASH_LEN);
	for (size_t i = 0; i < len; i++) {
		if (sn == 0)
			return tern_fail(TERN_EINVAL, "inclusion proof is too long");
		if ((fn & 1) || fn == sn) {
			tern_merkle_node_hash(proof[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			tern_merkle_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return tern_fail(TERN_EINVAL, "inclusion proof is too short");
	return TERN_OK;
}

/* RFC 9162 2.1.4.2. */
int tern_merkle_verify_consistency(uint64_t size1, uint64_t size2, const tern_hash root1,
                                   const tern_hash root2, const tern_hash *proof, size_t len)
{
	uint64_t fn, sn;
	tern_hash fr, sr;
	size_t i = 0;

	if (size1 == 0 || size1 > size2)
		return tern_fail(TERN_EINVAL, "no consistency between sizes %llu and %llu",
		                 (unsigned long long)size1, (unsigned long long)size2);
	if (size1 == size2) {
		if (len != 0)
			return tern_fail(TERN_EINVAL, "equal sizes need an empty proof");
		if (sodium_memcmp(root1, root2, TERN_HASH_LEN) != 0)
			return tern_fail(TERN_EINVAL, "equal sizes, different roots");
		return TERN_OK;
	}
	if (len == 0)
		return tern_fail(TERN_EINVAL, "empty consistency proof");
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	/* A power-of-two size1 is itself the first node of the proof. */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, TERN_HASH_LEN);
	} else {
		memcpy(fr, proof[0], TERN_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, TERN_HASH_LEN);
	for (; i < len; i++) {
		if (sn == 0)
			return tern_fail(TERN_EINVAL, "consistency proof is too long");
		if ((fn & 1) || fn == sn) {
			tern_merkle_node_hash(proof[i], fr, fr);
			tern_merkle_node_hash(proof[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			tern_merkle_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return tern_fail(TERN_EINVAL, "consistency proof is too short");
	if (sodium_memcmp(fr, root1, TERN_HASH_LEN) != 0 ||
	    sodium_memcmp(sr, root2, TERN_HASH_LEN) != 0)
		return tern_fail(TERN_EINVAL, "consistency proof does not match the roots");
	return TERN_OK;
}

/* Every complete, aligned subtree: level[l][j] covers leaves [j * 2^l, (j + 1) * 2^l). */
struct tern_merkle_tree {
	uint64_t n;
	int nlevels;
	tern_hash *level[64];
};

int tern_merkle_tree_build(const tern_hash *leaves, uint64_t n, tern_merkle_tree **out)
{
	tern_merkle_tree *t;
	uint64_t w = n;

	*out = NULL;
	if (n == 0 || n > ((uint64_t)1 << 40))
		return tern_fail(TERN_EINVAL, "a tree of %llu leaves", (unsigned long long)n);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return TERN_ENOMEM;
	t->n = n;
	for (int l = 0; w > 0; l++, w >>= 1) {
		if ((t->level[l] = malloc(w * sizeof(tern_hash))) == NULL) {
			tern_merkle_tree_free(&t);
			return TERN_ENOMEM;
		}
		t->nlevels = l + 1;
		for (uint64_t j = 0; j < w; j++)
			if (l == 0)
				memcpy(t->level[0][j], leaves[j], TERN_HASH_LEN);
			else
				tern_merkle_node_hash(t->level[l - 1][2 * j],
				                      t->level[l - 1][2 * j + 1], t->level[l][j]);
	}
	*out = t;
	return TERN_OK;
}

void tern_merkle_tree_free(tern_merkle_tree **t)
{
	if (t == NULL || *t == NULL)
		return;
	for (int l = 0; l < (*t)->nlevels; l++)
		free((*t)->level[l]);
	free(*t);
	*t = NULL;
}

/* The callback of the _cb functions: a complete, aligned subtree is one
 * lookup in its level. */
static int tree_subtree(void *ctx, uint64_t start, uint64_t end, tern_hash out)
{
	const tern_merkle_tree *t = ctx;
	int l = 0;

	while (((uint64_t)1 << l) < end - start)
		l++;
	memcpy(out, t->level[l][start >> l], TERN_HASH_LEN);
	return TERN_OK;
}

void tern_merkle_tree_root(const tern_merkle_tree *t, tern_hash out)
{
	tern_merkle_root_cb(tree_subtree, (void *)t, t->n, out);
}

int tern_merkle_tree_inclusion_proof(const tern_merkle_tree *t, uint64_t index, tern_hash *proof,
                                     size_t *len)
{
	return tern_merkle_inclusion_proof_cb(tree_subtree, (void *)t, t->n, index, proof, len);
}

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <sodium.h>

#include <tern/error.h>
#include <tern/merkle.h>

#include "util.h"

void tern_merkle_leaf_hash(const uint8_t *entry, size_t len, tern_hash out)
{
	crypto_hash_sha256_state st;
	static const uint8_t zero = 0x00;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &zero, 1);
	crypto_hash_sha256_update(&st, entry, len);
	crypto_hash_sha256_final(&st, out);
}

void tern_merkle_node_hash(const tern_hash left, const tern_hash right, tern_hash out)
{
	uint8_t buf[1 + 2 * TERN_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, TERN_HASH_LEN);
	memcpy(buf + 1 + TERN_HASH_LEN, right, TERN_HASH_LEN);
	/* OpenSSL's one-shot SHA-256 uses the CPU's SHA extensions where present. */
	SHA256(buf, sizeof(buf), out);
}

/* The largest power of two strictly smaller than n (n >= 2). */
static uint64_t split(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
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

/* RFC 6962 2.1.1 PATH(m, D[n]), appended to proof at *len (deepest first). */
static void path(const tern_hash *leaves, uint64_t n, uint64_t m, tern_hash *proof, size_t *len)
{
	uint64_t k;

	if (n <= 1)
		return;
	k = split(n);
	if (m < k) {
		path(leaves, k, m, proof, len);
		tern_merkle_root(leaves + k, n - k, proof[(*len)++]);
	} else {
		path(leaves + k, n - k, m - k, proof, len);
		tern_merkle_root(leaves, k, proof[(*len)++]);
	}
}

int tern_merkle_inclusion_proof(const tern_hash *leaves, uint64_t n, uint64_t index,
                                tern_hash *proof, size_t *len)
{
	if (index >= n)
		return tern_fail(TERN_EINVAL, "leaf %llu is not in a tree of %llu",
		                 (unsigned long long)index, (unsigned long long)n);
	*len = 0;
	path(leaves, n, index, proof, len);
	return TERN_OK;
}

/* RFC 6962 2.1.2 SUBPROOF(m, D[n], b). */
static void subproof(const tern_hash *leaves, uint64_t n, uint64_t m, int b, tern_hash *proof,
                     size_t *len)
{
	uint64_t k;

	if (m == n) {
		if (!b)
			tern_merkle_root(leaves, n, proof[(*len)++]);
		return;
	}
	k = split(n);
	if (m <= k) {
		subproof(leaves, k, m, b, proof, len);
		tern_merkle_root(leaves + k, n - k, proof[(*len)++]);
	} else {
		subproof(leaves + k, n - k, m - k, 0, proof, len);
		tern_merkle_root(leaves, k, proof[(*len)++]);
	}
}

int tern_merkle_consistency_proof(const tern_hash *leaves, uint64_t n, uint64_t m, tern_hash *proof,
                                  size_t *len)
{
	if (m == 0 || m > n)
		return tern_fail(TERN_EINVAL, "no consistency proof from %llu to %llu",
		                 (unsigned long long)m, (unsigned long long)n);
	*len = 0;
	subproof(leaves, n, m, 1, proof, len);
	return TERN_OK;
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

/* MTH(D[lo:hi]): one lookup for a complete aligned subtree; otherwise the
 * split, whose left part always is one (only the right edge recurses). */
static void tree_mth(const tern_merkle_tree *t, uint64_t lo, uint64_t hi, tern_hash out)
{
	uint64_t w = hi - lo, k;
	int l = 0;

	if ((w & (w - 1)) == 0 && lo % w == 0) {
		while (((uint64_t)1 << l) < w)
			l++;
		memcpy(out, t->level[l][lo >> l], TERN_HASH_LEN);
		return;
	}
	k = split(w);
	tern_hash left, right;
	tree_mth(t, lo, lo + k, left);
	tree_mth(t, lo + k, hi, right);
	tern_merkle_node_hash(left, right, out);
}

void tern_merkle_tree_root(const tern_merkle_tree *t, tern_hash out)
{
	tree_mth(t, 0, t->n, out);
}

int tern_merkle_tree_inclusion_proof(const tern_merkle_tree *t, uint64_t index, tern_hash *proof,
                                     size_t *len)
{
	uint64_t lo = 0, hi = t->n, k;
	size_t depth = 0;
	tern_hash path[TERN_MERKLE_MAX_PROOF];

	if (index >= t->n)
		return tern_fail(TERN_EINVAL, "leaf %llu is not in a tree of %llu",
		                 (unsigned long long)index, (unsigned long long)t->n);
	/* Top down, so the siblings come out shallowest first; the proof
	 * lists them deepest first. */
	while (hi - lo > 1) {
		k = split(hi - lo);
		if (index < lo + k) {
			tree_mth(t, lo + k, hi, path[depth++]);
			hi = lo + k;
		} else {
			tree_mth(t, lo, lo + k, path[depth++]);
			lo += k;
		}
	}
	for (size_t i = 0; i < depth; i++)
		memcpy(proof[i], path[depth - 1 - i], TERN_HASH_LEN);
	*len = depth;
	return TERN_OK;
}

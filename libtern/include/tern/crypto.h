/* Thin wrappers over the primitives Tern is built from, each returning a
 * TERN_* code, so envelopes, logs and tests share one tested path.
 *
 * Hashing, AEAD, X25519 and Ed25519 come from libsodium; HKDF is RFC 5869's
 * two steps over OpenSSL 3's HMAC-SHA256 (EVP_MAC), because libsodium 1.0.18
 * has none. All functions are thread-safe. Nothing here keeps secret state
 * between calls.
 */
#ifndef TERN_CRYPTO_H
#define TERN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_SHA256_LEN 32
#define TERN_AEAD_KEY_LEN 32
#define TERN_AEAD_NONCE_LEN 12
#define TERN_AEAD_TAG_LEN 16

/* Initialises libsodium, with its randomness (randombytes_*) drawn from
 * OpenSSL's DRBG (RAND_bytes), and fetches the OpenSSL algorithms used on hot
 * paths. Every function below calls it; calling it early only moves the cost.
 * A program using libtern calls it instead of sodium_init, which must not
 * come first (libsodium takes its randomness before sodium_init). */
int tern_crypto_init(void);

int tern_sha256(const uint8_t *buf, size_t len, uint8_t out[TERN_SHA256_LEN]);

/* SHA-256 of the concatenation of n spans, without copying them together. */
typedef struct tern_span {
	const void *p;
	size_t len;
} tern_span;
int tern_sha256_spans(const tern_span *spans, size_t n, uint8_t out[TERN_SHA256_LEN]);

/* SHA-256 over bytes that come in pieces (an attachment, chunk by chunk),
 * with OpenSSL's code, which uses the CPU's SHA extensions. new: a context
 * started afresh (TERN_ENOMEM); update and final: TERN_ECRYPTO if OpenSSL
 * fails; final may be followed by init to start again. free sets *c NULL. */
typedef struct tern_sha256_ctx tern_sha256_ctx;
int tern_sha256_new(tern_sha256_ctx **out);
int tern_sha256_init(tern_sha256_ctx *c);
int tern_sha256_update(tern_sha256_ctx *c, const void *buf, size_t len);
int tern_sha256_final(tern_sha256_ctx *c, uint8_t out[TERN_SHA256_LEN]);
void tern_sha256_free(tern_sha256_ctx **c);

/* RFC 5869 HKDF-SHA256 (extract then expand) into out[outlen]. salt and info
 * may be empty (NULL with length 0). TERN_EINVAL if outlen is 0 or over
 * 255 * 32, the most HKDF-SHA256 can produce. */
int tern_hkdf_sha256(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                     const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen);
/* Its two halves, for a caller that derives many keys from one secret and
 * salt: prk = HKDF-Extract(salt, ikm) (32 bytes; an empty salt as above),
 * then HKDF-Expand(prk, info) into out[outlen] as often as needed. The
 * caller wipes prk when done with it. */
int tern_hkdf_sha256_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                             uint8_t prk[32]);
int tern_hkdf_sha256_expand(const uint8_t prk[32], const uint8_t *info, size_t infolen,
                            uint8_t *out, size_t outlen);

/* ChaCha20-Poly1305 (RFC 8439, IETF 96-bit nonce). The key must be 32 bytes
 * and the nonce 12 (TERN_EINVAL otherwise).
 *
 * seal writes ptlen + TERN_AEAD_TAG_LEN bytes (ciphertext || tag) to out. */
int tern_aead_seal(const uint8_t *key, size_t keylen, const uint8_t *nonce, size_t noncelen,
                   const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
                   uint8_t *out);
/* open takes ciphertext || tag and writes ctlen - TERN_AEAD_TAG_LEN bytes of
 * plaintext to out, and only once the tag has verified: on failure
 * (TERN_EDECRYPT) out holds zeros, never unauthenticated plaintext. */
int tern_aead_open(const uint8_t *key, size_t keylen, const uint8_t *nonce, size_t noncelen,
                   const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen, uint8_t *out,
                   size_t *outlen);

/* X25519 (RFC 7748) of scalar and point. TERN_EDECRYPT when the shared
 * secret is all zeros (a low-order or otherwise contributory-free point):
 * such a secret carries no key material from our side. */
int tern_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32]);
/* X25519 with the base point: the public key of scalar. */
int tern_x25519_base(uint8_t out[32], const uint8_t scalar[32]);

/* Plain RFC 8032 Ed25519 verification, without Tern's domain label (see
 * tern_verify in keys.h for Tern's own signatures). 0 or TERN_EBADSIG.
 * Rejects non-canonical S, small-order keys and R (libsodium's rules). */
int tern_ed25519_verify_raw(const uint8_t pub[32], const uint8_t *msg, size_t len,
                            const uint8_t sig[64]);

#ifdef __cplusplus
}
#endif
#endif

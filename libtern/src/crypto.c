#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/log.h>

#include "util.h"

/* HKDF is RFC 5869's, over OpenSSL's HMAC-SHA256 (HMAC prepared once, with
 * its digest, then copied for each derivation). OpenSSL 3.0's EVP_KDF "HKDF"
 * looks SHA-256 up again from its parameters on every call, and 3.0 cannot
 * copy an HKDF context: about 2.8 us a 32-byte derivation in a loop, against
 * 1.0-1.4 us this way. The copy is freed, so cleansed, after each call: no
 * key outlives it. */
static EVP_MAC_CTX *hmac_sha256;
/* The same for SHA-256: OpenSSL 3's one-shot SHA256() fetches the algorithm
 * on every call, which is two thirds of its cost on a Merkle node's 65 bytes
 * (534 -> 177 ns in a tight loop; more in a busy daemon, where the fetch's
 * lock and tables are cold). Each thread keeps its own digest context. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static int init_rc = TERN_ECRYPTO;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

/* --- libsodium's randomness, from OpenSSL's DRBG --------------------------- */

/* libsodium 1.0.18's default randombytes makes a getrandom system call for
 * every randombytes_buf, and a sealed envelope asks for random bytes two or
 * three times (a uuid once more). OpenSSL 3's RAND_bytes draws from a
 * per-thread DRBG in user space, seeded from the kernel, reseeded by OpenSSL
 * and after a fork: one CSPRNG, without the system call.
 *
 * Each RAND_bytes call costs more than the bytes (the DRBG's lookup, its
 * lock and parameters): the small draws of a message (a uuid's 10 bytes, a
 * key and a nonce) come from a per-thread pool of RAND_bytes output, filled
 * 256 bytes at a time. Each byte is handed out once and wiped as it goes; a
 * fork empties the child's pool (pthread_atfork), so parent and child never
 * share bytes. Draws over a quarter of the pool go to RAND_bytes directly. */
#define DRBG_POOL 256
static _Thread_local struct {
	unsigned char b[DRBG_POOL];
	size_t next; /* b[next..] not yet handed out */
} drbg_pool = {.next = DRBG_POOL};

static void drbg_pool_forget(void)
{
	sodium_memzero(drbg_pool.b, sizeof(drbg_pool.b));
	drbg_pool.next = DRBG_POOL;
}

static void drbg_direct(void *const buf, const size_t size);

static void drbg_buf(void *const buf, const size_t size)
{
	unsigned char *p = buf;
	size_t left = size;

	if (size > DRBG_POOL / 4) {
		drbg_direct(buf, size);
		return;
	}
	while (left > 0) {
		size_t take;
		if (drbg_pool.next == DRBG_POOL) {
			drbg_direct(drbg_pool.b, DRBG_POOL);
			drbg_pool.next = 0;
		}
		take = DRBG_POOL - drbg_pool.next < left ? DRBG_POOL - drbg_pool.next : left;
		memcpy(p, drbg_pool.b + drbg_pool.next, take);
		sodium_memzero(drbg_pool.b + drbg_pool.next, take);
		drbg_pool.next += take;
		p += take;
		left -= take;
	}
}

static void drbg_direct(void *const buf, const size_t size)
{
	unsigned char *p = buf;
	size_t left = size;

	while (left > 0) {
		int n = left > INT_MAX ? INT_MAX : (int)left;
		if (RAND_bytes(p, n) != 1) {
			/* randombytes_buf cannot fail to its caller, and a key or
			 * nonce made of whatever the buffer held must never be used. */
			log_warnx("OpenSSL's RAND_bytes failed: no randomness, aborting");
			abort();
		}
		p += n;
		left -= (size_t)n;
	}
}

static uint32_t drbg_random(void)
{
	uint32_t r;

	drbg_buf(&r, sizeof(r));
	return r;
}

/* As libsodium's own: without modulo bias, by rejecting the values below
 * 2^32 mod upper_bound. */
static uint32_t drbg_uniform(const uint32_t upper_bound)
{
	uint32_t min, r;

	if (upper_bound < 2)
		return 0;
	min = (1U + ~upper_bound) % upper_bound;
	do
		r = drbg_random();
	while (r < min);
	return r % upper_bound;
}

static const char *drbg_name(void)
{
	return "openssl-drbg";
}

/* OpenSSL keeps and reseeds its own state: nothing to stir or close. */
static void drbg_stir(void)
{
}

static int drbg_close(void)
{
	return 0;
}

static randombytes_implementation drbg_impl = {
    .implementation_name = drbg_name,
    .random = drbg_random,
    .stir = drbg_stir,
    .uniform = drbg_uniform,
    .buf = drbg_buf,
    .close = drbg_close,
};

static void crypto_init_once(void)
{
	/* libsodium wants its implementation before sodium_init: hence every
	 * sodium_init in Tern is this one. */
	if (randombytes_set_implementation(&drbg_impl) != 0 || sodium_init() < 0 ||
	    pthread_atfork(NULL, NULL, drbg_pool_forget) != 0)
		return;
	{
		EVP_MAC *hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
		OSSL_PARAM params[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		    OSSL_PARAM_construct_end(),
		};
		if (hmac != NULL)
			hmac_sha256 = EVP_MAC_CTX_new(hmac);
		EVP_MAC_free(hmac); /* the context keeps its own reference */
		if (hmac_sha256 == NULL || EVP_MAC_CTX_set_params(hmac_sha256, params) != 1)
			return;
	}
	if ((sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    pthread_key_create(&sha256_key, sha256_ctx_free) != 0)
		return;
	init_rc = TERN_OK;
}

int tern_crypto_init(void)
{
	if (pthread_once(&init_once, crypto_init_once) != 0)
		return TERN_ECRYPTO;
	if (init_rc != TERN_OK)
		return tern_fail(TERN_ECRYPTO,
		                 "cannot initialise libsodium or OpenSSL's HMAC-SHA256");
	return TERN_OK;
}

/* OpenSSL 3.0 allocates at every digest init and every HMAC key, and when
 * that fails says only "initialization error". Rather than fail a hash or
 * a derivation (which its callers would have to tell from a verdict on
 * their input), the one-shot functions below compute the same result with
 * libsodium's portable code, whose state lives on the stack. Said once a
 * process for each of the three uses, with OpenSSL's reasons, so that a
 * failure that lasts (a broken provider configuration) is seen. */
static atomic_int sha256_said, hmac_said, sha256_init_said;

static void fallback_note(atomic_int *said, const char *what, const char *then)
{
	char why[256] = "no reason given";
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, why, sizeof(why));
	ERR_clear_error();
	if (atomic_exchange(said, 1) == 0)
		log_warnx("OpenSSL's %s failed (%s); %s (said once a process)", what, why, then);
}

static void sha256_sodium(const tern_span *spans, size_t n, uint8_t out[TERN_SHA256_LEN])
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	for (size_t i = 0; i < n; i++)
		if (spans[i].len > 0)
			crypto_hash_sha256_update(&st, spans[i].p, spans[i].len);
	crypto_hash_sha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int tern_sha256_new(tern_sha256_ctx **out)
{
	EVP_MD_CTX *ctx;
	int rc;

	*out = NULL;
	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory for a SHA-256 state");
	if ((rc = tern_sha256_init((tern_sha256_ctx *)ctx)) != TERN_OK) {
		EVP_MD_CTX_free(ctx);
		return rc;
	}
	*out = (tern_sha256_ctx *)ctx;
	return TERN_OK;
}

int tern_sha256_init(tern_sha256_ctx *c)
{
	/* SHA-256 of the default provider, fetched at start, fails to start
	 * for want of memory only (see fallback_note); a state kept across
	 * calls cannot fall back to libsodium, so the caller is told. */
	if (EVP_DigestInit_ex2((EVP_MD_CTX *)c, sha256_md, NULL) != 1) {
		fallback_note(&sha256_init_said, "SHA-256", "taken as a shortage of memory");
		return tern_fail(TERN_ENOMEM, "out of memory starting a SHA-256");
	}
	return TERN_OK;
}

int tern_sha256_update(tern_sha256_ctx *c, const void *buf, size_t len)
{
	return len == 0 || EVP_DigestUpdate((EVP_MD_CTX *)c, buf, len) == 1 ? TERN_OK
	                                                                    : TERN_ECRYPTO;
}

int tern_sha256_final(tern_sha256_ctx *c, uint8_t out[TERN_SHA256_LEN])
{
	unsigned int olen = 0;

	return EVP_DigestFinal_ex((EVP_MD_CTX *)c, out, &olen) == 1 && olen == TERN_SHA256_LEN
	           ? TERN_OK
	           : TERN_ECRYPTO;
}

void tern_sha256_free(tern_sha256_ctx **c)
{
	if (c == NULL || *c == NULL)
		return;
	EVP_MD_CTX_free((EVP_MD_CTX *)*c);
	*c = NULL;
}

int tern_sha256_spans(const tern_span *spans, size_t n, uint8_t out[TERN_SHA256_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int olen = 0;
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	/* OpenSSL's SHA-256 uses the CPU's SHA extensions where present: about
	 * five times libsodium's portable code on a 1 KiB envelope body. */
	if ((ctx = pthread_getspecific(sha256_key)) == NULL) {
		if ((ctx = EVP_MD_CTX_new()) == NULL)
			goto fallback;
		if (pthread_setspecific(sha256_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			goto fallback;
		}
	}
	if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1)
		goto fallback;
	for (size_t i = 0; i < n; i++)
		if (spans[i].len > 0 && EVP_DigestUpdate(ctx, spans[i].p, spans[i].len) != 1)
			goto fallback;
	if (EVP_DigestFinal_ex(ctx, out, &olen) != 1 || olen != TERN_SHA256_LEN)
		goto fallback;
	return TERN_OK;
fallback:
	/* Never a failure once initialised: nothing to tell from a verdict. */
	fallback_note(&sha256_said, "SHA-256", "computed with libsodium instead");
	sha256_sodium(spans, n, out);
	return TERN_OK;
}

int tern_sha256(const uint8_t *buf, size_t len, uint8_t out[TERN_SHA256_LEN])
{
	tern_span s = {buf, len};

	return tern_sha256_spans(&s, 1, out);
}

/* RFC 5869 over libsodium's HMAC-SHA256 (its state on the stack): the
 * fallback of the HKDF functions below, the same bytes, a little slower (1.7
 * against 1.0 us a 32-byte derivation in a loop). */
static void extract_sodium(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                           uint8_t prk[32])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, salt, saltlen);
	crypto_auth_hmacsha256_update(&st, ikm, ikmlen);
	crypto_auth_hmacsha256_final(&st, prk);
	sodium_memzero(&st, sizeof(st));
}

static void expand_sodium(const uint8_t prk[32], const uint8_t *info, size_t infolen, uint8_t *out,
                          size_t outlen)
{
	crypto_auth_hmacsha256_state st;
	uint8_t t[32];
	size_t tlen = 0, done = 0;

	for (uint8_t i = 1; done < outlen; i++) {
		size_t take = outlen - done < sizeof(t) ? outlen - done : sizeof(t);
		crypto_auth_hmacsha256_init(&st, prk, 32);
		if (tlen > 0)
			crypto_auth_hmacsha256_update(&st, t, tlen);
		if (infolen > 0)
			crypto_auth_hmacsha256_update(&st, info, infolen);
		crypto_auth_hmacsha256_update(&st, &i, 1);
		crypto_auth_hmacsha256_final(&st, t);
		tlen = sizeof(t);
		memcpy(out + done, t, take);
		done += take;
	}
	sodium_memzero(t, sizeof(t));
	sodium_memzero(&st, sizeof(st));
}

int tern_hkdf_sha256_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                             uint8_t prk[32])
{
	/* An absent salt is HashLen zero bytes (RFC 5869, 2.2). */
	static const uint8_t zero_salt[32];
	EVP_MAC_CTX *c;
	size_t n;
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if (ikm == NULL || ikmlen == 0)
		return tern_fail(TERN_EINVAL, "HKDF needs input key material");
	if (salt == NULL || saltlen == 0) {
		salt = zero_salt;
		saltlen = sizeof(zero_salt);
	}
	/* PRK = HMAC(salt, IKM). */
	if ((c = EVP_MAC_CTX_dup(hmac_sha256)) == NULL ||
	    EVP_MAC_init(c, salt, saltlen, NULL) != 1 || EVP_MAC_update(c, ikm, ikmlen) != 1 ||
	    EVP_MAC_final(c, prk, &n, 32) != 1) {
		/* Keying HMAC allocates (see fallback_note): the same without
		 * OpenSSL, never a failure once initialised. */
		fallback_note(&hmac_said, "HMAC-SHA256", "computed with libsodium instead");
		extract_sodium(salt, saltlen, ikm, ikmlen, prk);
	}
	EVP_MAC_CTX_free(c); /* cleanses the keyed HMAC state */
	return TERN_OK;
}

int tern_hkdf_sha256_expand(const uint8_t prk[32], const uint8_t *info, size_t infolen,
                            uint8_t *out, size_t outlen)
{
	uint8_t t[32];
	size_t tlen = 0, done = 0, n;
	EVP_MAC_CTX *c;
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if (outlen == 0 || outlen > 255 * 32)
		return tern_fail(TERN_EINVAL, "HKDF-SHA256 output of %zu bytes (1..8160 allowed)",
		                 outlen);
	if ((c = EVP_MAC_CTX_dup(hmac_sha256)) == NULL)
		goto fail;
	/* T(i) = HMAC(PRK, T(i-1) | info | i), i = 1.. (at most 255). */
	for (uint8_t i = 1; done < outlen; i++) {
		size_t take = outlen - done < sizeof(t) ? outlen - done : sizeof(t);
		if (EVP_MAC_init(c, prk, 32, NULL) != 1 ||
		    (tlen > 0 && EVP_MAC_update(c, t, tlen) != 1) ||
		    (infolen > 0 && EVP_MAC_update(c, info, infolen) != 1) ||
		    EVP_MAC_update(c, &i, 1) != 1 || EVP_MAC_final(c, t, &n, sizeof(t)) != 1)
			goto fail;
		tlen = sizeof(t);
		memcpy(out + done, t, take);
		done += take;
	}
	goto out;
fail:
	fallback_note(&hmac_said, "HMAC-SHA256", "computed with libsodium instead");
	expand_sodium(prk, info, infolen, out, outlen);
out:
	OPENSSL_cleanse(t, sizeof(t));
	EVP_MAC_CTX_free(c); /* cleanses the keyed HMAC state */
	return TERN_OK;
}

int tern_hkdf_sha256(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                     const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
	uint8_t prk[32];
	int rc;

	/* Checked before any work, as before the halves were apart. */
	if (outlen == 0 || outlen > 255 * 32)
		return tern_fail(TERN_EINVAL, "HKDF-SHA256 output of %zu bytes (1..8160 allowed)",
		                 outlen);
	if ((rc = tern_hkdf_sha256_extract(salt, saltlen, ikm, ikmlen, prk)) == TERN_OK)
		rc = tern_hkdf_sha256_expand(prk, info, infolen, out, outlen);
	sodium_memzero(prk, sizeof(prk));
	return rc;
}

static int aead_check(size_t keylen, size_t noncelen)
{
	if (keylen != TERN_AEAD_KEY_LEN)
		return tern_fail(TERN_EINVAL, "ChaCha20-Poly1305 key of %zu bytes (32 required)",
		                 keylen);
	if (noncelen != TERN_AEAD_NONCE_LEN)
		return tern_fail(TERN_EINVAL, "ChaCha20-Poly1305 nonce of %zu bytes (12 required)",
		                 noncelen);
	return tern_crypto_init();
}

int tern_aead_seal(const uint8_t *key, size_t keylen, const uint8_t *nonce, size_t noncelen,
                   const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	int rc;

	if ((rc = aead_check(keylen, noncelen)) != TERN_OK)
		return rc;
	if (ptlen > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return tern_fail(TERN_ETOOBIG, "plaintext too long for ChaCha20-Poly1305");
	if (crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, ptlen, aad, aadlen, NULL,
	                                              nonce, key) != 0)
		return TERN_ECRYPTO;
	return TERN_OK;
}

int tern_aead_open(const uint8_t *key, size_t keylen, const uint8_t *nonce, size_t noncelen,
                   const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen, uint8_t *out,
                   size_t *outlen)
{
	unsigned long long n = 0;
	int rc;

	if ((rc = aead_check(keylen, noncelen)) != TERN_OK)
		return rc;
	if (ctlen < TERN_AEAD_TAG_LEN)
		return tern_fail(TERN_EDECRYPT, "ciphertext of %zu bytes is shorter than its tag",
		                 ctlen);
	/* libsodium checks the tag before it decrypts anything. */
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &n, NULL, ct, ctlen, aad, aadlen, nonce,
	                                              key) != 0) {
		sodium_memzero(out, ctlen - TERN_AEAD_TAG_LEN);
		return tern_fail(TERN_EDECRYPT, "ChaCha20-Poly1305 tag does not verify");
	}
	*outlen = (size_t)n;
	return TERN_OK;
}

int tern_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32])
{
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	/* libsodium returns -1 exactly when the result is all zeros. */
	if (crypto_scalarmult(out, scalar, point) != 0) {
		sodium_memzero(out, 32);
		return tern_fail(TERN_EDECRYPT,
		                 "X25519 shared secret is all zeros (low-order point)");
	}
	return TERN_OK;
}

int tern_x25519_base(uint8_t out[32], const uint8_t scalar[32])
{
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if (crypto_scalarmult_base(out, scalar) != 0)
		return TERN_ECRYPTO;
	return TERN_OK;
}

int tern_ed25519_verify_raw(const uint8_t pub[32], const uint8_t *msg, size_t len,
                            const uint8_t sig[64])
{
	int rc;

	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if (crypto_sign_verify_detached(sig, msg, len, pub) != 0)
		return tern_fail(TERN_EBADSIG, "Ed25519 signature does not verify");
	return TERN_OK;
}

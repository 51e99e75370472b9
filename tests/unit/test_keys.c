/* Node keys: files, permissions, types, and labelled signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/keys.h>

#include "testutil.h"

struct dir {
	char path[64];
};

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	assert_int_equal(tt_mkdtemp(d->path, sizeof(d->path), "keys"), 0);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;

	assert_int_equal(tt_rmtree(d->path), 0);
	free(d);
	return 0;
}

static void path_in(const struct dir *d, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", d->path, name);
}

static void test_signkey_roundtrip(void **state)
{
	struct dir *d = *state;
	tern_signkey *k = NULL, *l = NULL;
	uint8_t sig[64];
	char p[128];

	path_in(d, "node.sign.pem", p, sizeof(p));
	assert_int_equal(tern_signkey_generate(&k), TERN_OK);
	assert_int_equal(tern_signkey_save(k, p), TERN_OK);
	assert_int_equal(tt_file_mode(p), 0600);
	assert_int_equal(tern_signkey_load(p, &l), TERN_OK);
	assert_memory_equal(tern_signkey_public(k), tern_signkey_public(l), 32);
	/* The loaded key signs what the original's public key accepts. */
	assert_int_equal(tern_sign(l, "tern/v1 test", (const uint8_t *)"hello", 5, sig), TERN_OK);
	assert_int_equal(
	    tern_verify(tern_signkey_public(k), "tern/v1 test", (const uint8_t *)"hello", 5, sig),
	    TERN_OK);
	/* Ed25519 is deterministic: same key, same bytes, same signature. */
	{
		uint8_t sig2[64];
		assert_int_equal(tern_sign(k, "tern/v1 test", (const uint8_t *)"hello", 5, sig2),
		                 TERN_OK);
		assert_memory_equal(sig, sig2, 64);
	}
	/* The file is a standard PKCS#8 PEM that OpenSSL reads as Ed25519. */
	{
		FILE *f = fopen(p, "r");
		EVP_PKEY *pk;
		assert_non_null(f);
		pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		assert_non_null(pk);
		assert_int_equal(EVP_PKEY_get_id(pk), EVP_PKEY_ED25519);
		EVP_PKEY_free(pk);
	}
	tern_signkey_free(&k);
	assert_null(k);
	tern_signkey_free(&k);
	tern_signkey_free(&l);
}

static void test_sealkey_roundtrip(void **state)
{
	struct dir *d = *state;
	tern_sealkey *k = NULL, *l = NULL;
	char p[128];

	path_in(d, "node.seal.pem", p, sizeof(p));
	assert_int_equal(tern_sealkey_generate(&k), TERN_OK);
	assert_int_equal(tern_sealkey_save(k, p), TERN_OK);
	assert_int_equal(tt_file_mode(p), 0600);
	assert_int_equal(tern_sealkey_load(p, &l), TERN_OK);
	assert_memory_equal(tern_sealkey_public(k), tern_sealkey_public(l), 32);
	assert_memory_equal(tern_sealkey_secret(k), tern_sealkey_secret(l), 32);
	tern_sealkey_free(&k);
	assert_null(k);
	tern_sealkey_free(&l);
}

/* RFC 7748 section 6.1: the public keys and the shared secret of Alice and Bob. */
static void test_sealkey_rfc7748(void **state)
{
	static const char *a_sk =
	    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
	static const char *a_pk =
	    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
	static const char *b_sk =
	    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
	static const char *b_pk =
	    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
	static const char *k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
	uint8_t as[32], ap[32], bs[32], bp[32], kk[32], s1[32], s2[32];
	tern_sealkey *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(sodium_hex2bin(as, 32, a_sk, 64, NULL, NULL, NULL), 0);
	assert_int_equal(sodium_hex2bin(ap, 32, a_pk, 64, NULL, NULL, NULL), 0);
	assert_int_equal(sodium_hex2bin(bs, 32, b_sk, 64, NULL, NULL, NULL), 0);
	assert_int_equal(sodium_hex2bin(bp, 32, b_pk, 64, NULL, NULL, NULL), 0);
	assert_int_equal(sodium_hex2bin(kk, 32, k, 64, NULL, NULL, NULL), 0);
	assert_int_equal(tern_sealkey_from_secret(as, &a), TERN_OK);
	assert_int_equal(tern_sealkey_from_secret(bs, &b), TERN_OK);
	assert_memory_equal(tern_sealkey_public(a), ap, 32);
	assert_memory_equal(tern_sealkey_public(b), bp, 32);
	assert_int_equal(tern_x25519(s1, tern_sealkey_secret(a), tern_sealkey_public(b)), TERN_OK);
	assert_int_equal(tern_x25519(s2, tern_sealkey_secret(b), tern_sealkey_public(a)), TERN_OK);
	assert_memory_equal(s1, kk, 32);
	assert_memory_equal(s2, kk, 32);
	tern_sealkey_free(&a);
	tern_sealkey_free(&b);
}

static void test_permissions(void **state)
{
	struct dir *d = *state;
	tern_signkey *k = NULL, *l = NULL;
	tern_sealkey *s = NULL, *t = NULL;
	static const unsigned bad[] = {0644, 0640, 0604, 0660, 0602};
	char p[128], q[128];

	path_in(d, "perm.sign.pem", p, sizeof(p));
	path_in(d, "perm.seal.pem", q, sizeof(q));
	assert_int_equal(tern_signkey_generate(&k), TERN_OK);
	assert_int_equal(tern_signkey_save(k, p), TERN_OK);
	assert_int_equal(tern_sealkey_generate(&s), TERN_OK);
	assert_int_equal(tern_sealkey_save(s, q), TERN_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(p, bad[i]), 0);
		assert_int_equal(tern_signkey_load(p, &l), TERN_EPERM);
		assert_null(l);
		assert_non_null(strstr(tern_errdetail(), "chmod 600"));
		assert_int_equal(chmod(q, bad[i]), 0);
		assert_int_equal(tern_sealkey_load(q, &t), TERN_EPERM);
		assert_null(t);
	}
	/* Back to 0600 (or stricter), it loads. */
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(tern_signkey_load(p, &l), TERN_OK);
	tern_signkey_free(&l);
	/* Saving over a loose file leaves it 0600 again. */
	assert_int_equal(chmod(q, 0644), 0);
	assert_int_equal(tern_sealkey_save(s, q), TERN_OK);
	assert_int_equal(tt_file_mode(q), 0600);
	tern_signkey_free(&k);
	tern_sealkey_free(&s);
}

static void test_wrong_type_and_damage(void **state)
{
	struct dir *d = *state;
	tern_signkey *k = NULL, *l = NULL;
	tern_sealkey *s = NULL, *t = NULL;
	const char *garbage =
	    /* Split so that scans for committed keys do not flag this junk. */
	    "-----BEGIN PRIVATE "
	    "KEY-----\nnot base64 at all\n-----END PRIVATE "
	    "KEY-----\n";
	char p[128], q[128], g[128];

	path_in(d, "a.sign.pem", p, sizeof(p));
	path_in(d, "a.seal.pem", q, sizeof(q));
	path_in(d, "garbage.pem", g, sizeof(g));
	assert_int_equal(tern_signkey_generate(&k), TERN_OK);
	assert_int_equal(tern_signkey_save(k, p), TERN_OK);
	assert_int_equal(tern_sealkey_generate(&s), TERN_OK);
	assert_int_equal(tern_sealkey_save(s, q), TERN_OK);

	assert_int_equal(tern_signkey_load(q, &l), TERN_EMALFORMED);
	assert_null(l);
	assert_int_equal(tern_sealkey_load(p, &t), TERN_EMALFORMED);
	assert_null(t);

	assert_int_equal(tt_write_file(g, garbage, strlen(garbage), 0600), 0);
	assert_int_equal(tern_signkey_load(g, &l), TERN_EMALFORMED);
	assert_int_equal(tern_sealkey_load(g, &t), TERN_EMALFORMED);

	path_in(d, "missing.pem", g, sizeof(g));
	assert_int_equal(tern_signkey_load(g, &l), TERN_ENOENT);
	assert_null(l);
	tern_signkey_free(&k);
	tern_sealkey_free(&s);
}

/* A passphrase-protected key is refused at once, never by prompting on a
 * terminal (daemons have none). */
static void test_encrypted_key_refused(void **state)
{
	struct dir *d = *state;
	tern_signkey *k = NULL, *l = NULL;
	EVP_PKEY *pk;
	FILE *f;
	char p[128];

	path_in(d, "enc.sign.pem", p, sizeof(p));
	assert_int_equal(tern_signkey_generate(&k), TERN_OK);
	pk = tern_signkey_evp(k);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(
	    PEM_write_PKCS8PrivateKey(f, pk, EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
	fclose(f);
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(tern_signkey_load(p, &l), TERN_EMALFORMED);
	assert_null(l);
	tern_signkey_free(&k);
}

static void test_labels(void **state)
{
	tern_signkey *k = NULL, *other = NULL;
	const uint8_t *pub;
	uint8_t msg[300], sig[64], big[5000];

	(void)state;
	randombytes_buf(msg, sizeof(msg));
	randombytes_buf(big, sizeof(big));
	assert_int_equal(tern_signkey_generate(&k), TERN_OK);
	assert_int_equal(tern_signkey_generate(&other), TERN_OK);
	pub = tern_signkey_public(k);

	assert_int_equal(tern_sign(k, "tern/v1 envelope header", msg, sizeof(msg), sig), TERN_OK);
	assert_int_equal(tern_verify(pub, "tern/v1 envelope header", msg, sizeof(msg), sig),
	                 TERN_OK);
	/* The same bytes under another label, or none, do not verify. */
	assert_int_equal(tern_verify(pub, "tern/v1 directory", msg, sizeof(msg), sig),
	                 TERN_EBADSIG);
	assert_int_equal(tern_verify(pub, "tern/v1 envelope heade", msg, sizeof(msg), sig),
	                 TERN_EBADSIG);
	assert_int_equal(tern_verify(pub, "", msg, sizeof(msg), sig), TERN_EBADSIG);
	assert_int_equal(tern_ed25519_verify_raw(pub, msg, sizeof(msg), sig), TERN_EBADSIG);
	/* Another key, a changed message, a changed signature. */
	assert_int_equal(tern_verify(tern_signkey_public(other), "tern/v1 envelope header", msg,
	                             sizeof(msg), sig),
	                 TERN_EBADSIG);
	msg[299] ^= 1;
	assert_int_equal(tern_verify(pub, "tern/v1 envelope header", msg, sizeof(msg), sig),
	                 TERN_EBADSIG);
	msg[299] ^= 1;
	sig[0] ^= 1;
	assert_int_equal(tern_verify(pub, "tern/v1 envelope header", msg, sizeof(msg), sig),
	                 TERN_EBADSIG);
	/* Messages past the internal stack buffer take the heap path. */
	assert_int_equal(tern_sign(k, "tern/v1 checkpoint", big, sizeof(big), sig), TERN_OK);
	assert_int_equal(tern_verify(pub, "tern/v1 checkpoint", big, sizeof(big), sig), TERN_OK);
	assert_int_equal(tern_verify(pub, "tern/v1 directory", big, sizeof(big), sig),
	                 TERN_EBADSIG);
	tern_signkey_free(&k);
	tern_signkey_free(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_signkey_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealkey_roundtrip, setup, teardown),
	    cmocka_unit_test(test_sealkey_rfc7748),
	    cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_type_and_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encrypted_key_refused, setup, teardown),
	    cmocka_unit_test(test_labels),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

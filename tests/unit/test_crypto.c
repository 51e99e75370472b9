/* Crypto wrappers against RFC 8032 section 7.1 and the Wycheproof vectors.
 *
 * Wycheproof "acceptable" cases (only x25519_test.json has them, all flagged
 * as edge cases of the public key): Tern accepts such a key and must then
 * produce exactly the expected shared secret, EXCEPT when that secret is all
 * zeros (low-order points, flag ZeroSharedSecret), which tern_x25519 refuses
 * (TERN_EDECRYPT): a zero secret carries no contribution from our key and
 * would make a key wrap guessable. docs/envelope.md records the same choice.
 */
/* RAND_set_rand_method (deprecated in OpenSSL 3, still honoured by
 * RAND_bytes) lets test_randombytes_openssl see where libsodium's bytes come
 * from. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/keys.h>

#include "failmalloc.h"
#include "testutil.h"

static json_t *load_vectors(const char *name)
{
	char path[8192];
	json_error_t err;
	json_t *root;

	snprintf(path, sizeof(path), "%s/wycheproof/%s", tt_testdata(), name);
	root = json_load_file(path, 0, &err);
	if (root == NULL)
		fail_msg("cannot load %s: %s (line %d)", path, err.text, err.line);
	return root;
}

/* Decodes hex into a malloc'd buffer (never NULL, even when empty). */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2, got = 0;
	uint8_t *b = malloc(n + 1);

	assert_non_null(b);
	assert_int_equal(sodium_hex2bin(b, n, hex, strlen(hex), NULL, &got, NULL), 0);
	assert_int_equal(got, n);
	*len = n;
	return b;
}

static uint8_t *field(json_t *obj, const char *name, size_t *len)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_string(v))
		fail_msg("vector field %s missing", name);
	return unhex(json_string_value(v), len);
}

enum result { VALID, INVALID, ACCEPTABLE };

static enum result result_of(json_t *t)
{
	const char *r = json_string_value(json_object_get(t, "result"));

	assert_non_null(r);
	if (strcmp(r, "valid") == 0)
		return VALID;
	if (strcmp(r, "invalid") == 0)
		return INVALID;
	assert_string_equal(r, "acceptable");
	return ACCEPTABLE;
}

static int tc_id(json_t *t)
{
	return (int)json_integer_value(json_object_get(t, "tcId"));
}

/* ---- RFC 8032 section 7.1 ---- */

struct rfc8032 {
	const char *name, *seed, *pub, *msg, *sig;
};

static const struct rfc8032 rfc8032[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
     "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
     "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
     "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
     "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
     "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
     "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
     "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
     "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
     "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
     "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
     "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
     "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
     "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
     "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
     "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
     "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
     "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
     "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
     "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
     "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
     "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
     "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
     "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
     "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
     "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
     "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
     "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
     "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
     "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
     "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
     "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
     "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0",
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
     "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

static void test_rfc8032(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc8032) / sizeof(rfc8032[0]); i++) {
		const struct rfc8032 *v = &rfc8032[i];
		size_t sl, pl, ml, gl, evplen = 64;
		uint8_t *seed = unhex(v->seed, &sl), *pub = unhex(v->pub, &pl);
		uint8_t *msg = unhex(v->msg, &ml), *sig = unhex(v->sig, &gl);
		uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[32], out[64], *labelled;
		tern_signkey *key = NULL;
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assert_int_equal(sl, 32);
		assert_int_equal(gl, 64);
		if (i == 3)
			assert_int_equal(ml, 1023);
		/* The key object derives the RFC's public key from the seed. */
		assert_int_equal(tern_signkey_from_seed(seed, &key), TERN_OK);
		assert_memory_equal(tern_signkey_public(key), pub, 32);

		/* Raw signing, libsodium path (the one tern_sign uses). */
		crypto_sign_seed_keypair(pk, sk, seed);
		assert_memory_equal(pk, pub, 32);
		crypto_sign_detached(out, NULL, msg, ml, sk);
		assert_memory_equal(out, sig, 64);
		/* Raw signing through the key's OpenSSL EVP_PKEY (X.509 path). */
		assert_non_null(md);
		assert_int_equal(
		    EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, tern_signkey_evp(key), NULL),
		    1);
		assert_int_equal(EVP_DigestSign(md, out, &evplen, msg, ml), 1);
		assert_int_equal(evplen, 64);
		assert_memory_equal(out, sig, 64);

		assert_int_equal(tern_ed25519_verify_raw(pub, msg, ml, sig), TERN_OK);
		sig[63] ^= 0x10;
		assert_int_equal(tern_ed25519_verify_raw(pub, msg, ml, sig), TERN_EBADSIG);
		sig[63] ^= 0x10;
		if (ml > 0) {
			msg[0] ^= 1;
			assert_int_equal(tern_ed25519_verify_raw(pub, msg, ml, sig), TERN_EBADSIG);
			msg[0] ^= 1;
		}

		/* tern_sign signs "label" || 0x00 || msg, never msg alone. */
		assert_int_equal(tern_sign(key, "tern/v1 test", msg, ml, out), TERN_OK);
		assert_int_equal(tern_verify(pub, "tern/v1 test", msg, ml, out), TERN_OK);
		assert_int_equal(tern_ed25519_verify_raw(pub, msg, ml, out), TERN_EBADSIG);
		labelled = malloc(13 + ml);
		assert_non_null(labelled);
		memcpy(labelled, "tern/v1 test", 13);
		if (ml)
			memcpy(labelled + 13, msg, ml);
		assert_int_equal(tern_ed25519_verify_raw(pub, labelled, 13 + ml, out), TERN_OK);
		free(labelled);

		print_message("RFC 8032 %s: ok\n", v->name);
		EVP_MD_CTX_free(md);
		tern_signkey_free(&key);
		free(seed);
		free(pub);
		free(msg);
		free(sig);
	}
}

static void test_sha256(void **state)
{
	static const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	static const char *empty =
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	uint8_t out[32], *want;
	size_t n;

	(void)state;
	assert_int_equal(tern_sha256((const uint8_t *)"abc", 3, out), TERN_OK);
	want = unhex(abc, &n);
	assert_memory_equal(out, want, 32);
	free(want);
	assert_int_equal(tern_sha256(NULL, 0, out), TERN_OK);
	want = unhex(empty, &n);
	assert_memory_equal(out, want, 32);
	free(want);
	/* In spans, empty ones among them, the same digest as the whole. */
	{
		const tern_span parts[4] = {{"a", 1}, {"", 0}, {"bc", 2}, {NULL, 0}};
		assert_int_equal(tern_sha256_spans(parts, 4, out), TERN_OK);
		want = unhex(abc, &n);
		assert_memory_equal(out, want, 32);
		free(want);
	}
}

/* ---- Wycheproof ---- */

static void test_wycheproof_ed25519(void **state)
{
	json_t *root = load_vectors("ed25519_test.json"), *g, *t;
	size_t gi, ti, counts[3] = {0};

	(void)state;
	json_array_foreach(json_object_get(root, "testGroups"), gi, g)
	{
		size_t pl;
		uint8_t *pk = unhex(
		    json_string_value(json_object_get(json_object_get(g, "publicKey"), "pk")), &pl);
		json_array_foreach(json_object_get(g, "tests"), ti, t)
		{
			size_t ml, sl;
			uint8_t *msg = field(t, "msg", &ml), *sig = field(t, "sig", &sl);
			enum result r = result_of(t);
			/* The API takes exactly 64 bytes: another length is a refusal. */
			int rc = (pl == 32 && sl == 64) ? tern_ed25519_verify_raw(pk, msg, ml, sig)
			                                : TERN_EBADSIG;
			if (r == VALID && rc != TERN_OK)
				fail_msg("ed25519 tcId %d (valid) rejected", tc_id(t));
			if (r == INVALID && rc != TERN_EBADSIG)
				fail_msg("ed25519 tcId %d (invalid) accepted", tc_id(t));
			assert_true(r !=
			            ACCEPTABLE); /* none in this file: a new one needs a choice */
			counts[r]++;
			free(msg);
			free(sig);
		}
		free(pk);
	}
	print_message("wycheproof ed25519: %zu valid accepted, %zu invalid rejected\n",
	              counts[VALID], counts[INVALID]);
	assert_true(counts[VALID] > 0 && counts[INVALID] > 0);
	json_decref(root);
}

static void test_wycheproof_x25519(void **state)
{
	json_t *root = load_vectors("x25519_test.json"), *g, *t;
	size_t gi, ti, counts[3] = {0}, zero_refused = 0;
	static const uint8_t zero[32];

	(void)state;
	json_array_foreach(json_object_get(root, "testGroups"), gi, g)
	{
		json_array_foreach(json_object_get(g, "tests"), ti, t)
		{
			size_t pl, kl, sl;
			uint8_t *pub = field(t, "public", &pl), *priv = field(t, "private", &kl);
			uint8_t *shared = field(t, "shared", &sl), out[32];
			enum result r = result_of(t);
			int rc = TERN_EINVAL;

			if (pl == 32 && kl == 32)
				rc = tern_x25519(out, priv, pub);
			if (r == INVALID) {
				if (rc == TERN_OK)
					fail_msg("x25519 tcId %d (invalid) accepted", tc_id(t));
			} else if (sl == 32 && sodium_memcmp(shared, zero, 32) == 0) {
				/* The documented choice: an all-zero secret is refused. */
				if (rc != TERN_EDECRYPT)
					fail_msg("x25519 tcId %d: zero shared secret not refused",
					         tc_id(t));
				assert_memory_equal(out, zero, 32);
				zero_refused++;
			} else {
				if (rc != TERN_OK)
					fail_msg("x25519 tcId %d (%s) rejected", tc_id(t),
					         r == VALID ? "valid" : "acceptable");
				assert_int_equal(sl, 32);
				if (memcmp(out, shared, 32) != 0)
					fail_msg("x25519 tcId %d: wrong shared secret", tc_id(t));
			}
			counts[r]++;
			free(pub);
			free(priv);
			free(shared);
		}
	}
	print_message("wycheproof x25519: %zu valid, %zu invalid, %zu acceptable "
	              "(%zu with an all-zero secret refused, the rest accepted)\n",
	              counts[VALID], counts[INVALID], counts[ACCEPTABLE], zero_refused);
	assert_true(counts[VALID] > 0 && zero_refused > 0);
	json_decref(root);
}

static void test_wycheproof_chacha20_poly1305(void **state)
{
	json_t *root = load_vectors("chacha20_poly1305_test.json"), *g, *t;
	size_t gi, ti, counts[3] = {0};

	(void)state;
	json_array_foreach(json_object_get(root, "testGroups"), gi, g)
	{
		json_array_foreach(json_object_get(g, "tests"), ti, t)
		{
			size_t kl, nl, al, ml, cl, tl, outlen = 0;
			uint8_t *key = field(t, "key", &kl), *iv = field(t, "iv", &nl);
			uint8_t *aad = field(t, "aad", &al), *msg = field(t, "msg", &ml);
			uint8_t *ct = field(t, "ct", &cl), *tag = field(t, "tag", &tl);
			uint8_t *sealed = malloc(cl + tl + 1), *opened = malloc(cl + tl + 1);
			enum result r = result_of(t);
			int rc;

			assert_non_null(sealed);
			assert_non_null(opened);
			memcpy(sealed, ct, cl);
			memcpy(sealed + cl, tag, tl);
			rc = tern_aead_open(key, kl, iv, nl, aad, al, sealed, cl + tl, opened,
			                    &outlen);
			if (r == VALID) {
				if (rc != TERN_OK)
					fail_msg("chacha20-poly1305 tcId %d (valid) rejected",
					         tc_id(t));
				assert_int_equal(outlen, ml);
				assert_memory_equal(opened, msg, ml);
				/* And sealing reproduces ciphertext and tag. */
				assert_int_equal(
				    tern_aead_seal(key, kl, iv, nl, aad, al, msg, ml, opened),
				    TERN_OK);
				assert_memory_equal(opened, sealed, cl + tl);
			} else {
				assert_true(r == INVALID);
				if (rc == TERN_OK)
					fail_msg("chacha20-poly1305 tcId %d (invalid) accepted",
					         tc_id(t));
				if (nl != 12 || kl != 32) {
					assert_int_equal(rc, TERN_EINVAL);
					assert_int_equal(tern_aead_seal(key, kl, iv, nl, aad, al,
					                                msg, ml, opened),
					                 TERN_EINVAL);
				} else {
					assert_int_equal(rc, TERN_EDECRYPT);
					/* Nothing unauthenticated is left behind. */
					for (size_t i = 0; i + tl < cl + tl && i < ml; i++)
						assert_int_equal(opened[i], 0);
				}
			}
			counts[r]++;
			free(key);
			free(iv);
			free(aad);
			free(msg);
			free(ct);
			free(tag);
			free(sealed);
			free(opened);
		}
	}
	print_message("wycheproof chacha20-poly1305: %zu valid accepted, %zu invalid rejected\n",
	              counts[VALID], counts[INVALID]);
	assert_int_equal(counts[ACCEPTABLE], 0);
	assert_true(counts[VALID] > 0 && counts[INVALID] > 0);
	json_decref(root);
}

/* SHA-256 with no memory: OpenSSL allocates its state at every init, and
 * the hash falls back to libsodium's, never a failure (a caller would have
 * to tell it from a verdict on its input). FIPS 180-2's "abc" and two
 * blocks' worth of spans. */
static void test_sha256_without_memory(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	static const uint8_t abc_digest[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
	                                       0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	                                       0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
	                                       0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	uint8_t big[200], want[32], got[32];
	const tern_span spans[3] = {{big, 7}, {big + 7, 0}, {big + 7, sizeof(big) - 7}};
	int rc;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(tern_sha256(big, sizeof(big), want), TERN_OK);
	malloc_fails = 1;
	rc = tern_sha256((const uint8_t *)"abc", 3, got);
	malloc_fails = 0;
	assert_int_equal(rc, TERN_OK);
	assert_memory_equal(got, abc_digest, 32);
	malloc_fails = 1;
	rc = tern_sha256_spans(spans, 3, got);
	malloc_fails = 0;
	assert_int_equal(rc, TERN_OK);
	assert_memory_equal(got, want, 32);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* RFC 5869 appendix A, the SHA-256 cases: 1 (basic), 2 (inputs longer than
 * a block, output of three blocks) and 3 (no salt, no info). Derived in
 * turn, twice, so that no call sees what the one before it was given. */
static void test_rfc5869(void **state)
{
	static const struct {
		const char *ikm, *salt, *info, *okm, *prk;
	} v[] = {
	    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
	     "f0f1f2f3f4f5f6f7f8f9",
	     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b88718586"
	     "5",
	     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	     "404142434445464748494a4b4c4d4e4f",
	     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	     "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
	     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
	     "cc30c58179ec3e87c14c01d5c1f3434f1d87",
	     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"},
	    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
	     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c"
	     "8",
	     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"},
	};

	(void)state;
	/* The third round with no memory at all: OpenSSL's HMAC cannot be keyed,
	 * and the derivation falls back to libsodium's, the same bytes. */
	for (int round = 0; round < 2 + MALLOC_CAN_FAIL; round++)
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			size_t il, sl, fl, ol;
			uint8_t *ikm = unhex(v[i].ikm, &il), *salt = unhex(v[i].salt, &sl);
			uint8_t *info = unhex(v[i].info, &fl), *okm = unhex(v[i].okm, &ol);
			uint8_t out[82], out2[82], prk[32], *wantprk;
			size_t pl;
			int rc;

			assert_true(ol <= sizeof(out));
#if MALLOC_CAN_FAIL
			malloc_fails = round == 2;
#endif
			rc = tern_hkdf_sha256(sl ? salt : NULL, sl, ikm, il, fl ? info : NULL, fl,
			                      out, ol);
			/* And in its two halves: the PRK the RFC gives, then the OKM. */
			if (rc == TERN_OK)
				rc = tern_hkdf_sha256_extract(sl ? salt : NULL, sl, ikm, il, prk);
			if (rc == TERN_OK)
				rc = tern_hkdf_sha256_expand(prk, fl ? info : NULL, fl, out2, ol);
#if MALLOC_CAN_FAIL
			malloc_fails = 0;
#endif
			assert_int_equal(rc, TERN_OK);
			assert_memory_equal(out, okm, ol);
			assert_memory_equal(out2, okm, ol);
			wantprk = unhex(v[i].prk, &pl);
			assert_int_equal(pl, 32);
			assert_memory_equal(prk, wantprk, 32);
			free(wantprk);
			free(ikm);
			free(salt);
			free(info);
			free(okm);
		}
}

static void test_wycheproof_hkdf(void **state)
{
	json_t *root = load_vectors("hkdf_sha256_test.json"), *g, *t;
	size_t gi, ti, counts[3] = {0};

	(void)state;
	json_array_foreach(json_object_get(root, "testGroups"), gi, g)
	{
		json_array_foreach(json_object_get(g, "tests"), ti, t)
		{
			size_t il, sl, fl, ol;
			uint8_t *ikm = field(t, "ikm", &il), *salt = field(t, "salt", &sl);
			uint8_t *info = field(t, "info", &fl), *okm = field(t, "okm", &ol);
			size_t size = (size_t)json_integer_value(json_object_get(t, "size"));
			uint8_t *out = malloc(size + 1);
			enum result r = result_of(t);
			int rc;

			assert_non_null(out);
			rc = tern_hkdf_sha256(salt, sl, ikm, il, info, fl, out, size);
			if (r == VALID) {
				if (rc != TERN_OK)
					fail_msg("hkdf tcId %d (valid) rejected", tc_id(t));
				assert_int_equal(ol, size);
				assert_memory_equal(out, okm, size);
			} else {
				assert_true(r == INVALID);
				if (rc == TERN_OK)
					fail_msg("hkdf tcId %d (invalid) accepted", tc_id(t));
			}
			counts[r]++;
			free(ikm);
			free(salt);
			free(info);
			free(okm);
			free(out);
		}
	}
	print_message("wycheproof hkdf-sha256: %zu valid accepted, %zu invalid rejected\n",
	              counts[VALID], counts[INVALID]);
	assert_int_equal(counts[ACCEPTABLE], 0);
	assert_true(counts[VALID] > 0 && counts[INVALID] > 0);
	json_decref(root);
}

/* libsodium's randomness comes from OpenSSL's DRBG once tern_crypto_init has
 * run: randombytes_buf, _random and _uniform stay usable, and their bytes are
 * RAND_bytes' (seen through a RAND_METHOD that hands out a known pattern:
 * small draws come from a pool of 256 bytes of it, large ones straight). */
static int fake_bytes(unsigned char *buf, int num)
{
	for (int i = 0; i < num; i++)
		buf[i] = (unsigned char)(0xa0 + i);
	return 1;
}

/* Whether want[0..n) appears in got[0..len). */
static int holds(const uint8_t *got, size_t len, const uint8_t *want, size_t n)
{
	for (size_t k = 0; k + n <= len; k++)
		if (memcmp(got + k, want, n) == 0)
			return 1;
	return 0;
}

static int fake_status(void)
{
	return 1;
}

static void test_randombytes_openssl(void **state)
{
	uint8_t a[32], b[32], want[128], big[128], small[512], pool[256];
	int seen[10] = {0};
	RAND_METHOD fake = {.bytes = fake_bytes, .status = fake_status};
	const RAND_METHOD *real;
	uint32_t r;

	(void)state;
	assert_int_equal(tern_crypto_init(), TERN_OK);
	assert_string_equal(randombytes_implementation_name(), "openssl-drbg");
	randombytes_buf(a, sizeof(a));
	randombytes_buf(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	for (int i = 0; i < 10000; i++) {
		uint32_t v = randombytes_uniform(10);
		assert_true(v < 10);
		seen[v]++;
	}
	for (int i = 0; i < 10; i++)
		assert_true(seen[i] > 0);
	assert_int_equal(randombytes_uniform(1), 0);
	assert_int_equal(randombytes_uniform(0), 0);

	real = RAND_get_rand_method();
	assert_int_equal(RAND_set_rand_method(&fake), 1);
	fake_bytes(want, sizeof(want));
	randombytes_buf(big, sizeof(big)); /* over the pool's draws: straight */
	/* Small draws: what the pool held before, then a pool of the pattern. */
	for (size_t i = 0; i < sizeof(small); i += 16)
		randombytes_buf(small + i, 16);
	r = randombytes_random();
	assert_int_equal(RAND_set_rand_method(real), 1);
	assert_memory_equal(big, want, sizeof(want));
	fake_bytes(pool, sizeof(pool));
	assert_true(holds(small, sizeof(small), pool, sizeof(pool)));
	(void)r;
}

/* The pool never hands a byte out twice: 16,000 bytes in draws of 16, no
 * two draws alike. */
static int cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void test_randombytes_pool_no_repeat(void **state)
{
	enum { N = 1000 };
	uint8_t(*d)[16] = malloc(N * 16);

	(void)state;
	assert_non_null(d);
	assert_int_equal(tern_crypto_init(), TERN_OK);
	for (int i = 0; i < N; i++)
		randombytes_buf(d[i], 16);
	qsort(d, N, 16, cmp16);
	for (int i = 1; i < N; i++)
		assert_memory_not_equal(d[i - 1], d[i], 16);
	free(d);
}

/* A fork empties the child's pool: the child's next bytes are not the
 * parent's (a pool copied into the child would hand both the same keys and
 * nonces). Fails with the pthread_atfork handler taken out. */
static void test_randombytes_pool_fork(void **state)
{
	uint8_t mine[32], theirs[32];
	int fds[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(tern_crypto_init(), TERN_OK);
	randombytes_buf(mine, 8); /* the pool filled, and partly left */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		randombytes_buf(theirs, sizeof(theirs));
		_exit(write(fds[1], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs) ? 0 : 1);
	}
	randombytes_buf(mine, sizeof(mine));
	assert_int_equal(read(fds[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fds[0]);
	close(fds[1]);
	assert_memory_not_equal(mine, theirs, sizeof(mine));
}

static void test_argument_checks(void **state)
{
	uint8_t key[32] = {1}, nonce[12] = {2}, buf[64] = {3}, out[64], zero[32] = {0};
	size_t n;

	(void)state;
	assert_int_equal(tern_aead_seal(key, 31, nonce, 12, NULL, 0, buf, 8, out), TERN_EINVAL);
	assert_int_equal(tern_aead_seal(key, 32, nonce, 8, NULL, 0, buf, 8, out), TERN_EINVAL);
	assert_int_equal(tern_aead_seal(key, 32, nonce, 24, NULL, 0, buf, 8, out), TERN_EINVAL);
	assert_int_equal(tern_aead_open(key, 32, nonce, 12, NULL, 0, buf, 15, out, &n),
	                 TERN_EDECRYPT);
	assert_int_equal(tern_hkdf_sha256(NULL, 0, key, 32, NULL, 0, out, 0), TERN_EINVAL);
	assert_int_equal(tern_hkdf_sha256(NULL, 0, key, 32, NULL, 0, out, 32), TERN_OK);
	/* The all-zero point is the simplest low-order point. */
	assert_int_equal(tern_x25519(out, key, zero), TERN_EDECRYPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc8032),
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_wycheproof_ed25519),
	    cmocka_unit_test(test_wycheproof_x25519),
	    cmocka_unit_test(test_wycheproof_chacha20_poly1305),
	    cmocka_unit_test(test_rfc5869),
	    cmocka_unit_test(test_sha256_without_memory),
	    cmocka_unit_test(test_wycheproof_hkdf),
	    cmocka_unit_test(test_argument_checks),
	    cmocka_unit_test(test_randombytes_openssl),
	    cmocka_unit_test(test_randombytes_pool_no_repeat),
	    cmocka_unit_test(test_randombytes_pool_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

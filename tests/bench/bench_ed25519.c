/* Ed25519 with OpenSSL 3 and with libsodium on the same keys and messages,
 * and the envelope operations built on libsodium.
 *
 *   build/bin/bench-ed25519 [N]     (N messages of 300 bytes, default 20000)
 *
 * Numbers are per core, single thread. Build Release or RelWithDebInfo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/directory.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/msgtype.h>

#define MSG_LEN 300
#define BODY_LEN 1024

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench-ed25519: %s failed: %s %s\n", what, tern_strerror(rc),
	        tern_errdetail());
	exit(1);
}

static void report(const char *what, size_t n, double secs)
{
	printf("  %-38s %9.0f ops/s  %8.1f us/op\n", what, (double)n / secs,
	       secs * 1e6 / (double)n);
}

struct node {
	const char *id;
	unsigned roles;
	tern_signkey *sign;
	tern_sealkey *seal;
};

/* What a node and a broker do per envelope under load: envelopes sealed with a
 * seal cache and signed in batches of BATCH (one commit's worth), verified
 * with a signature cache, opened with a seal cache. */
#define BATCH 64
static void bench_node_path(size_t n, const struct node *nodes, const tern_directory *dir,
                            const uint8_t *body)
{
	const char *rcpts[] = {"sweden"};
	tern_seal_params p = {
	    .sender = "unhcr",
	    .sign_key = nodes[0].sign,
	    .recipients = rcpts,
	    .n_recipients = 1,
	    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	    .case_id = "BENCH-0001",
	    .body = body,
	    .body_len = BODY_LEN,
	};
	tern_sealed *items[BATCH];
	uint8_t *envs[BATCH], *opened = NULL;
	size_t lens[BATCH], opened_len = 0, rounds = (n + BATCH - 1) / BATCH;
	tern_sealcache *seal_cache = NULL, *open_cache = NULL;
	tern_sigcache *sigs = NULL;
	tern_verify_opts o = {0};
	double t_seal = 0, t_verify = 0, t_open = 0, t;
	char what[80];
	int rc;

	if ((rc = tern_sealcache_new(0, 0, &seal_cache)) != TERN_OK ||
	    (rc = tern_sealcache_new(0, 0, &open_cache)) != TERN_OK ||
	    (rc = tern_sigcache_new(0, &sigs)) != TERN_OK)
		die("caches", rc);
	p.cache = seal_cache;
	for (size_t r = 0; r < rounds; r++) {
		t = now_s();
		for (size_t i = 0; i < BATCH; i++)
			if ((rc = tern_envelope_seal_unsigned(&p, dir, &items[i], NULL)) != TERN_OK)
				die("seal", rc);
		if ((rc = tern_envelope_sign(items, BATCH, nodes[0].sign, envs, lens)) != TERN_OK)
			die("sign", rc);
		t_seal += now_s() - t;
		/* The broker's verification, then the recipient's, each with its cache. */
		o.sigcache = sigs;
		t = now_s();
		for (size_t i = 0; i < BATCH; i++) {
			tern_envelope *env = NULL;
			if ((rc = tern_envelope_verify(envs[i], lens[i], dir, &o, &env)) != TERN_OK)
				die("verify", rc);
			tern_envelope_free(&env);
		}
		t_verify += now_s() - t;
		t = now_s();
		for (size_t i = 0; i < BATCH; i++) {
			tern_envelope *env = NULL;
			if ((rc = tern_envelope_verify(envs[i], lens[i], dir, &o, &env)) !=
			        TERN_OK ||
			    (rc = tern_envelope_open_cached(env, "sweden", nodes[1].seal,
			                                    open_cache, &opened, &opened_len)) !=
			        TERN_OK)
				die("verify + open", rc);
			if (opened_len != BODY_LEN || memcmp(opened, body, BODY_LEN) != 0)
				die("open (wrong plaintext)", TERN_EDECRYPT);
			tern_envelope_body_free(&opened, opened_len);
			tern_envelope_free(&env);
		}
		t_open += now_s() - t;
		for (size_t i = 0; i < BATCH; i++) {
			tern_sealed_free(&items[i]);
			free(envs[i]);
		}
	}
	printf("a node's path (1 recipient; seal cache, batches of %d, signature cache):\n", BATCH);
	snprintf(what, sizeof(what), "seal + batch sign (%zu bytes)", lens[0]);
	report(what, rounds * BATCH, t_seal);
	report("verify only (broker)", rounds * BATCH, t_verify);
	report("verify + open", rounds * BATCH, t_open);
	tern_sigcache_free(&sigs);
	tern_sealcache_free(&open_cache);
	tern_sealcache_free(&seal_cache);
}

static void bench_envelopes(size_t n)
{
	struct node nodes[] = {
	    {"unhcr", TERN_ROLE_REFERRER, NULL, NULL},
	    {"sweden", TERN_ROLE_STATE, NULL, NULL},
	    {"iom", TERN_ROLE_MOVEMENT, NULL, NULL},
	};
	const char *rcpts[] = {"sweden", "iom"};
	tern_directory *dir = NULL;
	uint8_t body[BODY_LEN];
	int rc;

	randombytes_buf(body, sizeof(body));
	if ((rc = tern_directory_new("bench", 1, &dir)) != TERN_OK)
		die("directory", rc);
	for (size_t i = 0; i < 3; i++) {
		tern_member m;
		memset(&m, 0, sizeof(m));
		if ((rc = tern_signkey_generate(&nodes[i].sign)) != TERN_OK ||
		    (rc = tern_sealkey_generate(&nodes[i].seal)) != TERN_OK)
			die("key generation", rc);
		snprintf(m.node_id, sizeof(m.node_id), "%s", nodes[i].id);
		m.roles = nodes[i].roles;
		memcpy(m.sign_public, tern_signkey_public(nodes[i].sign), 32);
		memcpy(m.seal_public, tern_sealkey_public(nodes[i].seal), 32);
		if ((rc = tern_directory_add(dir, &m)) != TERN_OK)
			die("directory add", rc);
	}

	printf(
	    "envelopes (%d-byte body, libsodium Ed25519/X25519/ChaCha20-Poly1305, OpenSSL HKDF):\n",
	    BODY_LEN);
	for (size_t nr = 1; nr <= 2; nr++) {
		tern_seal_params p = {
		    .sender = "unhcr",
		    .sign_key = nodes[0].sign,
		    .recipients = rcpts,
		    .n_recipients = nr,
		    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
		    .case_id = "BENCH-0001",
		    .body = body,
		    .body_len = sizeof(body),
		};
		uint8_t *env_buf = NULL, *opened = NULL;
		size_t env_len = 0, opened_len = 0;
		char what[64];
		double t;

		t = now_s();
		for (size_t i = 0; i < n; i++) {
			free(env_buf);
			env_buf = NULL;
			if ((rc = tern_envelope_seal(&p, dir, &env_buf, &env_len, NULL)) != TERN_OK)
				die("seal", rc);
		}
		t = now_s() - t;
		snprintf(what, sizeof(what), "seal, %zu recipient%s (%zu bytes)", nr,
		         nr == 1 ? "" : "s", env_len);
		report(what, n, t);

		t = now_s();
		for (size_t i = 0; i < n; i++) {
			tern_envelope *env = NULL;
			if ((rc = tern_envelope_verify(env_buf, env_len, dir, NULL, &env)) !=
			    TERN_OK)
				die("verify", rc);
			if ((rc = tern_envelope_open(env, "sweden", nodes[1].seal, &opened,
			                             &opened_len)) != TERN_OK)
				die("open", rc);
			if (opened_len != sizeof(body) || memcmp(opened, body, sizeof(body)) != 0)
				die("open (wrong plaintext)", TERN_EDECRYPT);
			tern_envelope_body_free(&opened, opened_len);
			tern_envelope_free(&env);
		}
		t = now_s() - t;
		snprintf(what, sizeof(what), "verify + open, %zu recipient%s", nr,
		         nr == 1 ? "" : "s");
		report(what, n, t);

		t = now_s();
		for (size_t i = 0; i < n; i++) {
			tern_envelope *env = NULL;
			if ((rc = tern_envelope_verify(env_buf, env_len, dir, NULL, &env)) !=
			    TERN_OK)
				die("verify", rc);
			tern_envelope_free(&env);
		}
		t = now_s() - t;
		snprintf(what, sizeof(what), "verify only (broker), %zu recipient%s", nr,
		         nr == 1 ? "" : "s");
		report(what, n, t);
		free(env_buf);
	}
	bench_node_path(n, nodes, dir, body);
	for (size_t i = 0; i < 3; i++) {
		tern_signkey_free(&nodes[i].sign);
		tern_sealkey_free(&nodes[i].seal);
	}
	tern_directory_free(&dir);
}

int main(int argc, char **argv)
{
	size_t n = 20000, seedlen = 32, siglen;
	uint8_t *msgs, *sigs_ossl, *sigs_sodium, seed[32], sk[crypto_sign_SECRETKEYBYTES], pk[32];
	tern_signkey *key = NULL;
	EVP_PKEY *pkey;
	EVP_MD_CTX *ctx;
	double t, ossl_sign, ossl_verify, na_sign, na_verify;
	int rc;

	if (argc > 1 && (n = strtoul(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: bench-ed25519 [N]\n");
		return 2;
	}
	if (tern_crypto_init() != TERN_OK)
		die("tern_crypto_init", TERN_ECRYPTO);
	if ((rc = tern_signkey_generate(&key)) != TERN_OK)
		die("tern_signkey_generate", rc);
	/* One key for both libraries: OpenSSL's EVP_PKEY and libsodium's
	 * expanded key come from the same seed. */
	pkey = tern_signkey_evp(key);
	if (EVP_PKEY_get_raw_private_key(pkey, seed, &seedlen) != 1 || seedlen != 32)
		die("EVP_PKEY_get_raw_private_key", TERN_ECRYPTO);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));

	msgs = malloc(n * MSG_LEN);
	sigs_ossl = malloc(n * 64);
	sigs_sodium = malloc(n * 64);
	ctx = EVP_MD_CTX_new();
	if (msgs == NULL || sigs_ossl == NULL || sigs_sodium == NULL || ctx == NULL)
		die("allocation", TERN_ENOMEM);
	randombytes_buf(msgs, n * MSG_LEN);

	printf("Ed25519, %zu messages of %d bytes, same key:\n", n, MSG_LEN);
	/* OpenSSL 3: one EVP_PKEY and one EVP_MD_CTX re-initialised per message. */
	t = now_s();
	for (size_t i = 0; i < n; i++) {
		siglen = 64;
		if (EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, pkey, NULL) != 1 ||
		    EVP_DigestSign(ctx, sigs_ossl + 64 * i, &siglen, msgs + MSG_LEN * i, MSG_LEN) !=
		        1)
			die("EVP_DigestSign", TERN_ECRYPTO);
	}
	ossl_sign = now_s() - t;
	t = now_s();
	for (size_t i = 0; i < n; i++) {
		if (EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, pkey, NULL) != 1 ||
		    EVP_DigestVerify(ctx, sigs_ossl + 64 * i, 64, msgs + MSG_LEN * i, MSG_LEN) != 1)
			die("EVP_DigestVerify", TERN_EBADSIG);
	}
	ossl_verify = now_s() - t;

	t = now_s();
	for (size_t i = 0; i < n; i++)
		crypto_sign_detached(sigs_sodium + 64 * i, NULL, msgs + MSG_LEN * i, MSG_LEN, sk);
	na_sign = now_s() - t;
	t = now_s();
	for (size_t i = 0; i < n; i++)
		if (crypto_sign_verify_detached(sigs_sodium + 64 * i, msgs + MSG_LEN * i, MSG_LEN,
		                                pk) != 0)
			die("crypto_sign_verify_detached", TERN_EBADSIG);
	na_verify = now_s() - t;

	/* Ed25519 is deterministic: both libraries must produce the same bytes. */
	if (memcmp(sigs_ossl, sigs_sodium, n * 64) != 0)
		die("cross-check (signatures differ)", TERN_ECRYPTO);

	report("OpenSSL 3 sign", n, ossl_sign);
	report("OpenSSL 3 verify", n, ossl_verify);
	report("libsodium sign", n, na_sign);
	report("libsodium verify", n, na_verify);
	printf("  libsodium / OpenSSL: sign x%.2f, verify x%.2f -> %s is faster\n",
	       ossl_sign / na_sign, ossl_verify / na_verify,
	       (na_sign < ossl_sign && na_verify < ossl_verify) ? "libsodium (used by libtern)"
	                                                        : "not libsodium: revisit keys.c");

	t = now_s();
	for (size_t i = 0; i < n; i++)
		if ((rc = tern_sign(key, "tern/v1 envelope header", msgs + MSG_LEN * i, MSG_LEN,
		                    sigs_sodium + 64 * i)) != TERN_OK)
			die("tern_sign", rc);
	report("tern_sign (label + libsodium)", n, now_s() - t);
	t = now_s();
	for (size_t i = 0; i < n; i++)
		if ((rc = tern_verify(pk, "tern/v1 envelope header", msgs + MSG_LEN * i, MSG_LEN,
		                      sigs_sodium + 64 * i)) != TERN_OK)
			die("tern_verify", rc);
	report("tern_verify (label + libsodium)", n, now_s() - t);
	printf("\n");

	bench_envelopes(n / 4 ? n / 4 : 1);

	EVP_MD_CTX_free(ctx);
	sodium_memzero(sk, sizeof(sk));
	free(msgs);
	free(sigs_ossl);
	free(sigs_sodium);
	tern_signkey_free(&key);
	return 0;
}

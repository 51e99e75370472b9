#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/keys.h>

#include "util.h"

#define KEY_FILE_MAX 16384

/* Signing uses libsodium (about twice OpenSSL 3.0's Ed25519 speed here, see
 * README); the EVP_PKEY is kept for X.509 work (CSRs, certificates). */
struct tern_signkey {
	EVP_PKEY *evp;
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

struct tern_sealkey {
	uint8_t sk[crypto_scalarmult_SCALARBYTES];
	uint8_t pk[crypto_scalarmult_BYTES];
};

int tern_signkey_from_seed(const uint8_t seed[32], tern_signkey **out)
{
	tern_signkey *k;

	if (tern_crypto_init() != TERN_OK)
		return TERN_ECRYPTO;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return TERN_ENOMEM;
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	k->evp = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	if (k->evp == NULL) {
		tern_signkey_free(&k);
		return TERN_ECRYPTO;
	}
	*out = k;
	return TERN_OK;
}

int tern_signkey_generate(tern_signkey **out)
{
	uint8_t seed[32];
	int rc;

	if (tern_crypto_init() != TERN_OK)
		return TERN_ECRYPTO;
	randombytes_buf(seed, sizeof(seed));
	rc = tern_signkey_from_seed(seed, out);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void tern_signkey_free(tern_signkey **key)
{
	if (key == NULL || *key == NULL)
		return;
	EVP_PKEY_free((*key)->evp);
	sodium_memzero((*key)->sk, sizeof((*key)->sk));
	free(*key);
	*key = NULL;
}

const uint8_t *tern_signkey_public(const tern_signkey *key)
{
	return key->pk;
}

void *tern_signkey_evp(const tern_signkey *key)
{
	return key->evp;
}

/* Node keys are stored unencrypted (0600). Without this callback OpenSSL
 * would prompt for a passphrase on the controlling terminal and block a
 * daemon; refusing makes an encrypted key an ordinary load error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Reads a PEM private key of the given type and returns its raw 32 bytes. */
static int load_raw_private(const char *path, int type, uint8_t raw[32])
{
	uint8_t *buf = NULL;
	size_t len = 0, rawlen = 32;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int rc;

	if ((rc = tern_file_read_private(path, KEY_FILE_MAX, &buf, &len)) != TERN_OK)
		return rc;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (pkey == NULL) {
		rc = tern_fail(TERN_EMALFORMED, "%s is not an unencrypted PEM private key", path);
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != type) {
		rc = tern_fail(TERN_EMALFORMED, "%s holds a %s key, expected %s", path,
		               OBJ_nid2sn(EVP_PKEY_get_id(pkey)), OBJ_nid2sn(type));
		goto out;
	}
	if (EVP_PKEY_get_raw_private_key(pkey, raw, &rawlen) != 1 || rawlen != 32) {
		rc = tern_fail(TERN_ECRYPTO, "cannot extract the key in %s", path);
		goto out;
	}
	rc = TERN_OK;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	if (buf)
		sodium_memzero(buf, len);
	free(buf);
	return rc;
}

static int save_raw_private(const char *path, int type, const uint8_t raw[32])
{
	EVP_PKEY *pkey;
	BIO *bio;
	char *pem;
	long n;
	int rc;

	if ((pkey = EVP_PKEY_new_raw_private_key(type, NULL, raw, 32)) == NULL)
		return TERN_ECRYPTO;
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		EVP_PKEY_free(pkey);
		return TERN_ENOMEM;
	}
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = TERN_ECRYPTO;
		goto out;
	}
	n = BIO_get_mem_data(bio, &pem);
	rc = tern_file_write(path, pem, (size_t)n, 0600);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return rc;
}

int tern_signkey_load(const char *path, tern_signkey **out)
{
	uint8_t seed[32];
	int rc;

	if ((rc = load_raw_private(path, EVP_PKEY_ED25519, seed)) != TERN_OK)
		return rc;
	rc = tern_signkey_from_seed(seed, out);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

int tern_signkey_save(const tern_signkey *key, const char *path)
{
	/* libsodium's secret key is seed || public key. */
	return save_raw_private(path, EVP_PKEY_ED25519, key->sk);
}

int tern_sign(const tern_signkey *key, const char *label, const uint8_t *msg, size_t len,
              uint8_t sig[TERN_ED25519_SIG_LEN])
{
	size_t ll = strlen(label);
	uint8_t stackbuf[1024], *buf = stackbuf;

	if (ll + 1 + len > sizeof(stackbuf) && (buf = malloc(ll + 1 + len)) == NULL)
		return TERN_ENOMEM;
	memcpy(buf, label, ll);
	buf[ll] = 0;
	if (len) /* an empty message may come as NULL, which memcpy must not get */
		memcpy(buf + ll + 1, msg, len);
	crypto_sign_detached(sig, NULL, buf, ll + 1 + len, key->sk);
	if (buf != stackbuf)
		free(buf);
	return TERN_OK;
}

int tern_sign_raw(const tern_signkey *key, const uint8_t *msg, size_t len,
                  uint8_t sig[TERN_ED25519_SIG_LEN])
{
	crypto_sign_detached(sig, NULL, msg, len, key->sk);
	return TERN_OK;
}

int tern_verify(const uint8_t pub[TERN_ED25519_PUBLIC_LEN], const char *label, const uint8_t *msg,
                size_t len, const uint8_t sig[TERN_ED25519_SIG_LEN])
{
	size_t ll = strlen(label);
	uint8_t stackbuf[1024], *buf = stackbuf;
	int ok;

	if (ll + 1 + len > sizeof(stackbuf) && (buf = malloc(ll + 1 + len)) == NULL)
		return TERN_ENOMEM;
	memcpy(buf, label, ll);
	buf[ll] = 0;
	if (len) /* an empty message may come as NULL, which memcpy must not get */
		memcpy(buf + ll + 1, msg, len);
	ok = crypto_sign_verify_detached(sig, buf, ll + 1 + len, pub) == 0;
	if (buf != stackbuf)
		free(buf);
	return ok ? TERN_OK : TERN_EBADSIG;
}

int tern_sealkey_from_secret(const uint8_t secret[TERN_X25519_LEN], tern_sealkey **out)
{
	tern_sealkey *k;

	if (tern_crypto_init() != TERN_OK)
		return TERN_ECRYPTO;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return TERN_ENOMEM;
	memcpy(k->sk, secret, sizeof(k->sk));
	crypto_scalarmult_base(k->pk, k->sk);
	*out = k;
	return TERN_OK;
}

int tern_sealkey_generate(tern_sealkey **out)
{
	uint8_t sk[TERN_X25519_LEN];
	int rc;

	if (tern_crypto_init() != TERN_OK)
		return TERN_ECRYPTO;
	randombytes_buf(sk, sizeof(sk));
	rc = tern_sealkey_from_secret(sk, out);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

int tern_sealkey_load(const char *path, tern_sealkey **out)
{
	uint8_t sk[TERN_X25519_LEN];
	int rc;

	if ((rc = load_raw_private(path, EVP_PKEY_X25519, sk)) != TERN_OK)
		return rc;
	rc = tern_sealkey_from_secret(sk, out);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

int tern_sealkey_save(const tern_sealkey *key, const char *path)
{
	return save_raw_private(path, EVP_PKEY_X25519, key->sk);
}

void tern_sealkey_free(tern_sealkey **key)
{
	if (key == NULL || *key == NULL)
		return;
	sodium_memzero((*key)->sk, sizeof((*key)->sk));
	free(*key);
	*key = NULL;
}

const uint8_t *tern_sealkey_public(const tern_sealkey *key)
{
	return key->pk;
}

const uint8_t *tern_sealkey_secret(const tern_sealkey *key)
{
	return key->sk;
}

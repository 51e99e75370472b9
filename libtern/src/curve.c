/* ZeroMQ CURVE key pairs, stored in CZMQ's zcert secret-file layout so the
 * usual ZeroMQ tools can read them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include <tern/curve.h>
#include <tern/error.h>

#include "util.h"

#define CURVE_FILE_MAX 4096

struct tern_curvekey {
	uint8_t pk[TERN_CURVE_KEY_LEN];
	uint8_t sk[TERN_CURVE_KEY_LEN];
	char pk_z85[TERN_CURVE_Z85_LEN];
	char sk_z85[TERN_CURVE_Z85_LEN];
};

int tern_curve_z85_decode(const char *z85, uint8_t out[TERN_CURVE_KEY_LEN])
{
	static const char alphabet[] =
	    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    ".-:+=^!/*?&<>()[]{}@%$#";

	if (strlen(z85) != TERN_CURVE_Z85_LEN - 1)
		return tern_fail(TERN_EMALFORMED, "a CURVE key in Z85 is 40 characters, got %zu",
		                 strlen(z85));
	if (strspn(z85, alphabet) != TERN_CURVE_Z85_LEN - 1)
		return tern_fail(TERN_EMALFORMED, "CURVE key holds a character outside Z85");
	if (zmq_z85_decode(out, z85) == NULL)
		return tern_fail(TERN_EMALFORMED, "CURVE key is not valid Z85");
	return TERN_OK;
}

void tern_curve_z85_encode(const uint8_t key[TERN_CURVE_KEY_LEN], char out[TERN_CURVE_Z85_LEN])
{
	zmq_z85_encode(out, key, TERN_CURVE_KEY_LEN);
}

static int curvekey_from_secret(const uint8_t sk[TERN_CURVE_KEY_LEN], tern_curvekey **out)
{
	tern_curvekey *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return TERN_ENOMEM;
	memcpy(k->sk, sk, TERN_CURVE_KEY_LEN);
	zmq_z85_encode(k->sk_z85, k->sk, TERN_CURVE_KEY_LEN);
	if (zmq_curve_public(k->pk_z85, k->sk_z85) != 0) {
		tern_curvekey_free(&k);
		return tern_fail(TERN_ECRYPTO, "libzmq cannot derive a CURVE public key (built "
		                               "without CURVE support?)");
	}
	zmq_z85_decode(k->pk, k->pk_z85);
	*out = k;
	return TERN_OK;
}

int tern_curvekey_generate(tern_curvekey **out)
{
	char pub[TERN_CURVE_Z85_LEN], sec[TERN_CURVE_Z85_LEN];
	uint8_t sk[TERN_CURVE_KEY_LEN];
	int rc;

	if (zmq_curve_keypair(pub, sec) != 0)
		return tern_fail(TERN_ECRYPTO, "libzmq cannot make a CURVE key pair (built without "
		                               "CURVE support?)");
	zmq_z85_decode(sk, sec);
	rc = curvekey_from_secret(sk, out);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sec, sizeof(sec));
	return rc;
}

void tern_curvekey_free(tern_curvekey **key)
{
	if (key == NULL || *key == NULL)
		return;
	sodium_memzero(*key, sizeof(**key));
	free(*key);
	*key = NULL;
}

const uint8_t *tern_curvekey_public(const tern_curvekey *key)
{
	return key->pk;
}

const uint8_t *tern_curvekey_secret(const tern_curvekey *key)
{
	return key->sk;
}

const char *tern_curvekey_public_z85(const tern_curvekey *key)
{
	return key->pk_z85;
}

const char *tern_curvekey_secret_z85(const tern_curvekey *key)
{
	return key->sk_z85;
}

int tern_curvekey_save(const tern_curvekey *key, const char *path)
{
	char *text = NULL;
	int n, rc;

	n = asprintf(&text,
	             "#   ZeroMQ CURVE **Secret** Certificate (Tern node transport key)\n"
	             "#   Keep private: mode 0600, never copy it off this machine.\n"
	             "\n"
	             "metadata\n"
	             "curve\n"
	             "    public-key = \"%s\"\n"
	             "    secret-key = \"%s\"\n",
	             key->pk_z85, key->sk_z85);
	if (n < 0)
		return TERN_ENOMEM;
	rc = tern_file_write(path, text, (size_t)n, 0600);
	sodium_memzero(text, (size_t)n);
	free(text);
	return rc;
}

/* Finds `name = "value"` in ZPL text and copies the value (at most 40 characters). */
static int zpl_value(const char *text, const char *name, char out[TERN_CURVE_Z85_LEN])
{
	const char *line = text;
	size_t nl = strlen(name);

	while (line && *line) {
		const char *p = line + strspn(line, " \t");
		if (strncmp(p, name, nl) == 0) {
			const char *q = p + nl + strspn(p + nl, " \t");
			if (*q == '=') {
				const char *v = q + 1 + strspn(q + 1, " \t"), *end;
				if (*v != '"' || (end = strchr(v + 1, '"')) == NULL ||
				    (size_t)(end - v - 1) != TERN_CURVE_Z85_LEN - 1)
					return TERN_EMALFORMED;
				memcpy(out, v + 1, TERN_CURVE_Z85_LEN - 1);
				out[TERN_CURVE_Z85_LEN - 1] = '\0';
				return TERN_OK;
			}
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return TERN_ENOENT;
}

int tern_curvekey_load(const char *path, tern_curvekey **out)
{
	char pub[TERN_CURVE_Z85_LEN], sec[TERN_CURVE_Z85_LEN];
	uint8_t sk[TERN_CURVE_KEY_LEN], *text = NULL;
	tern_curvekey *k = NULL;
	size_t len = 0;
	int rc;

	if ((rc = tern_file_read_private(path, CURVE_FILE_MAX, &text, &len)) != TERN_OK)
		return rc;
	if (zpl_value((const char *)text, "secret-key", sec) != TERN_OK ||
	    tern_curve_z85_decode(sec, sk) != TERN_OK) {
		rc = tern_fail(TERN_EMALFORMED, "%s has no valid secret-key line", path);
		goto out;
	}
	if ((rc = curvekey_from_secret(sk, &k)) != TERN_OK)
		goto out;
	/* A public key that does not belong to the secret means a damaged or
	 * hand-edited file: better to stop than to announce the wrong key. */
	if (zpl_value((const char *)text, "public-key", pub) == TERN_OK &&
	    strcmp(pub, k->pk_z85) != 0) {
		rc = tern_fail(TERN_EMALFORMED, "%s: public-key does not match secret-key", path);
		tern_curvekey_free(&k);
		goto out;
	}
	*out = k;
	rc = TERN_OK;
out:
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sec, sizeof(sec));
	sodium_memzero(text, len);
	free(text);
	return rc;
}

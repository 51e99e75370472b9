#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/error.h>
#include <tern/note.h>

#include "util.h"

#define DASH "\xe2\x80\x94 " /* U+2014 EM DASH and a space start a signature line */

void tern_note_key_id(const char *name, uint8_t type, const uint8_t pub[32], uint8_t id[4])
{
	crypto_hash_sha256_state st;
	uint8_t h[32], sep = 0x0a;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
	crypto_hash_sha256_update(&st, &sep, 1);
	crypto_hash_sha256_update(&st, &type, 1);
	crypto_hash_sha256_update(&st, pub, 32);
	crypto_hash_sha256_final(&st, h);
	memcpy(id, h, 4);
}

static int name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > TERN_NOTE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == '+' || name[i] == 0x7f)
			return 0;
	return 1;
}

int tern_note_vkey_parse(const char *vkey, char name[TERN_NOTE_NAME_MAX + 1], uint8_t pub[32])
{
	const char *p1 = strchr(vkey, '+'), *p2;
	uint8_t raw[64], id[4], want[4];
	size_t rl = 0;
	unsigned hex;

	if (p1 == NULL || (p2 = strchr(p1 + 1, '+')) == NULL || p2 - p1 != 9 ||
	    (size_t)(p1 - vkey) > TERN_NOTE_NAME_MAX)
		return tern_fail(TERN_EMALFORMED, "not a verifier key NAME+ID+KEY");
	memcpy(name, vkey, (size_t)(p1 - vkey));
	name[p1 - vkey] = 0;
	if (!name_valid(name) || sscanf(p1 + 1, "%8x", &hex) != 1)
		return tern_fail(TERN_EMALFORMED, "verifier key: bad name or key id");
	if (sodium_base642bin(raw, sizeof(raw), p2 + 1, strcspn(p2 + 1, "\r\n"), NULL, &rl, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    rl != 33 || raw[0] != TERN_NOTE_ED25519)
		return tern_fail(TERN_EMALFORMED, "verifier key: not an Ed25519 key");
	memcpy(pub, raw + 1, 32);
	want[0] = (uint8_t)(hex >> 24);
	want[1] = (uint8_t)(hex >> 16);
	want[2] = (uint8_t)(hex >> 8);
	want[3] = (uint8_t)hex;
	tern_note_key_id(name, TERN_NOTE_ED25519, pub, id);
	if (memcmp(id, want, 4) != 0)
		return tern_fail(TERN_EMALFORMED,
		                 "verifier key: the key id does not match the key");
	return TERN_OK;
}

int tern_note_vkey_format(const char *name, const uint8_t pub[32], char **out)
{
	uint8_t raw[33], id[4];
	char b64[64];

	if (!name_valid(name))
		return tern_fail(TERN_EINVAL, "note key name '%s' is not valid", name);
	raw[0] = TERN_NOTE_ED25519;
	memcpy(raw + 1, pub, 32);
	tern_note_key_id(name, TERN_NOTE_ED25519, pub, id);
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	return asprintf(out, "%s+%02x%02x%02x%02x+%s", name, id[0], id[1], id[2], id[3], b64) < 0
	           ? TERN_ENOMEM
	           : TERN_OK;
}

/* Appends "— NAME BASE64(blob)\n" to a malloc'd string. */
static int sig_line(const char *name, const uint8_t *blob, size_t len, char **line)
{
	char b64[256];

	sodium_bin2base64(b64, sizeof(b64), blob, len, sodium_base64_VARIANT_ORIGINAL);
	return asprintf(line, DASH "%s %s\n", name, b64) < 0 ? TERN_ENOMEM : TERN_OK;
}

int tern_note_sign(const char *text, const char *name, const tern_signkey *key, char **note)
{
	size_t tl = strlen(text);
	uint8_t blob[4 + 64];
	char *line = NULL;
	int rc;

	if (tl == 0 || text[tl - 1] != '\n' || strstr(text, "\n\n") != NULL || !name_valid(name))
		return tern_fail(TERN_EINVAL,
		                 "a note's text ends in one newline, with no blank line");
	tern_note_key_id(name, TERN_NOTE_ED25519, tern_signkey_public(key), blob);
	tern_sign_raw(key, (const uint8_t *)text, tl, blob + 4);
	if ((rc = sig_line(name, blob, sizeof(blob), &line)) != TERN_OK)
		return rc;
	rc = asprintf(note, "%s\n%s", text, line) < 0 ? TERN_ENOMEM : TERN_OK;
	free(line);
	return rc;
}

/* Splits note at its last blank line: text = [0, *tlen), signatures after. */
static int split_note(const char *note, size_t len, size_t *tlen)
{
	for (size_t i = len; i >= 2; i--) {
		if (note[i - 1] == '\n' && note[i - 2] == '\n') {
			*tlen = i - 1;
			return TERN_OK;
		}
	}
	return tern_fail(TERN_EMALFORMED, "not a signed note (no blank line before signatures)");
}

typedef int sig_fn(const char *text, size_t tlen, const uint8_t *blob, size_t blen, void *arg);

/* Calls fn for each signature line by name whose key id matches; stops at
 * the first that returns TERN_OK. */
static int each_sig(const char *note, size_t len, const char *name, uint8_t type,
                    const uint8_t pub[32], sig_fn *fn, void *arg)
{
	size_t tlen = 0, nl = strlen(name);
	uint8_t id[4], blob[128];
	const char *p, *end = note + len;
	int rc, short_of_memory = 0;

	if (memchr(note, 0, len) != NULL)
		return tern_fail(TERN_EMALFORMED, "a note may not contain NUL bytes");
	if ((rc = split_note(note, len, &tlen)) != TERN_OK)
		return rc;
	tern_note_key_id(name, type, pub, id);
	for (p = note + tlen + 1; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p), bl = 0;

		if (ll > 4 + nl && memcmp(p, DASH, 4) == 0 && memcmp(p + 4, name, nl) == 0 &&
		    p[4 + nl] == ' ' &&
		    sodium_base642bin(blob, sizeof(blob), p + 5 + nl, ll - 5 - nl, NULL, &bl, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) == 0 &&
		    bl >= 4 && memcmp(blob, id, 4) == 0) {
			if ((rc = fn(note, tlen, blob, bl, arg)) == TERN_OK)
				return TERN_OK;
			short_of_memory |= rc == TERN_ENOMEM;
		}
		p += ll + 1;
	}
	/* A signature not checked for want of memory is not a bad one: the
	 * caller must not take the note for forged. */
	if (short_of_memory)
		return tern_fail(TERN_ENOMEM, "out of memory checking a signature by %s", name);
	return tern_fail(TERN_EBADSIG, "no valid signature by %s", name);
}

struct verify_arg {
	const uint8_t *pub;
};

static int ed25519_sig(const char *text, size_t tlen, const uint8_t *blob, size_t blen, void *arg)
{
	struct verify_arg *a = arg;

	if (blen != 4 + 64)
		return TERN_EBADSIG;
	return crypto_sign_verify_detached(blob + 4, (const uint8_t *)text, tlen, a->pub) == 0
	           ? TERN_OK
	           : TERN_EBADSIG;
}

int tern_note_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                     char **text)
{
	struct verify_arg a = {pub};
	size_t tlen = 0;
	int rc = each_sig(note, len, name, TERN_NOTE_ED25519, pub, ed25519_sig, &a);

	if (rc != TERN_OK || text == NULL)
		return rc;
	split_note(note, len, &tlen);
	if ((*text = strndup(note, tlen)) == NULL)
		return TERN_ENOMEM;
	return TERN_OK;
}

int tern_checkpoint_format(const char *origin, uint64_t size, const tern_hash root, char **text)
{
	char b64[64];

	if (!name_valid(origin))
		return tern_fail(TERN_EINVAL, "checkpoint origin '%s' is not valid", origin);
	sodium_bin2base64(b64, sizeof(b64), root, TERN_HASH_LEN, sodium_base64_VARIANT_ORIGINAL);
	return asprintf(text, "%s\n%" PRIu64 "\n%s\n", origin, size, b64) < 0 ? TERN_ENOMEM
	                                                                      : TERN_OK;
}

int tern_checkpoint_parse(const char *text, char origin[TERN_NOTE_NAME_MAX + 1], uint64_t *size,
                          tern_hash root)
{
	const char *l1 = strchr(text, '\n'), *l2, *l3;
	size_t rl = 0;
	char *endp;

	if (l1 == NULL || (size_t)(l1 - text) > TERN_NOTE_NAME_MAX ||
	    (l2 = strchr(l1 + 1, '\n')) == NULL || (l3 = strchr(l2 + 1, '\n')) == NULL)
		return tern_fail(TERN_EMALFORMED,
		                 "a checkpoint has an origin, a size and a root line");
	memcpy(origin, text, (size_t)(l1 - text));
	origin[l1 - text] = 0;
	if (l1[1] < '0' || l1[1] > '9' || (l1[1] == '0' && l2 - l1 != 2))
		return tern_fail(TERN_EMALFORMED, "checkpoint size is not a decimal number");
	*size = strtoull(l1 + 1, &endp, 10);
	if (endp != l2)
		return tern_fail(TERN_EMALFORMED, "checkpoint size is not a decimal number");
	if (sodium_base642bin(root, TERN_HASH_LEN, l2 + 1, (size_t)(l3 - l2 - 1), NULL, &rl, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    rl != TERN_HASH_LEN)
		return tern_fail(TERN_EMALFORMED, "checkpoint root is not a base64 SHA-256 hash");
	return TERN_OK;
}

static int cosigned_message(const char *body, size_t blen, uint64_t t, char **msg, size_t *len)
{
	int n = asprintf(msg, "cosignature/v1\ntime %" PRIu64 "\n%.*s", t, (int)blen, body);

	if (n < 0)
		return TERN_ENOMEM;
	*len = (size_t)n;
	return TERN_OK;
}

int tern_cosign(const char *body, const char *name, const tern_signkey *key, uint64_t t,
                char **line)
{
	uint8_t blob[4 + 8 + 64];
	char *msg;
	size_t ml;
	int rc;

	if (!name_valid(name))
		return tern_fail(TERN_EINVAL, "cosigner name '%s' is not valid", name);
	if ((rc = cosigned_message(body, strlen(body), t, &msg, &ml)) != TERN_OK)
		return rc;
	tern_note_key_id(name, TERN_NOTE_COSIGNATURE, tern_signkey_public(key), blob);
	tern_be64_put(blob + 4, t);
	tern_sign_raw(key, (const uint8_t *)msg, ml, blob + 12);
	free(msg);
	return sig_line(name, blob, sizeof(blob), line);
}

struct cosig_arg {
	const uint8_t *pub;
	uint64_t t;
};

static int cosig(const char *text, size_t tlen, const uint8_t *blob, size_t blen, void *arg)
{
	struct cosig_arg *a = arg;
	uint64_t t;
	char *msg;
	size_t ml;
	int ok;

	if (blen != 4 + 8 + 64)
		return TERN_EBADSIG;
	t = tern_be64_get(blob + 4);
	if (cosigned_message(text, tlen, t, &msg, &ml) != TERN_OK)
		return TERN_ENOMEM;
	ok = crypto_sign_verify_detached(blob + 12, (const uint8_t *)msg, ml, a->pub) == 0;
	free(msg);
	if (!ok)
		return TERN_EBADSIG;
	a->t = t;
	return TERN_OK;
}

int tern_cosign_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                       uint64_t *t)
{
	struct cosig_arg a = {pub, 0};
	int rc = each_sig(note, len, name, TERN_NOTE_COSIGNATURE, pub, cosig, &a);

	if (rc == TERN_OK && t)
		*t = a.t;
	return rc;
}

/* Node keys: Ed25519 signing keys (certified by the federation CA) and X25519
 * sealing keys.
 *
 * Private keys are PEM PKCS#8 files written 0600; loading refuses a file that
 * group or others may read (TERN_EPERM). Handles own their secret material and
 * wipe it when freed; *_free() takes the address of the handle and sets it to
 * NULL, so a double free is harmless.
 */
#ifndef TERN_KEYS_H
#define TERN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_ED25519_PUBLIC_LEN 32
#define TERN_ED25519_SIG_LEN 64
#define TERN_X25519_LEN 32

typedef struct tern_signkey tern_signkey;
typedef struct tern_sealkey tern_sealkey;

int tern_signkey_generate(tern_signkey **out);
/* seed: the 32-byte RFC 8032 private key. */
int tern_signkey_from_seed(const uint8_t seed[32], tern_signkey **out);
int tern_signkey_load(const char *path, tern_signkey **out);
int tern_signkey_save(const tern_signkey *key, const char *path);
void tern_signkey_free(tern_signkey **key);
/* Valid as long as key lives. */
const uint8_t *tern_signkey_public(const tern_signkey *key);
/* An OpenSSL EVP_PKEY (as void * to keep OpenSSL out of this header), owned by key. */
void *tern_signkey_evp(const tern_signkey *key);

/* Signs label || 0x00 || msg. The label separates domains (envelope header,
 * directory, checkpoint) so a signature for one can never pass as another. */
int tern_sign(const tern_signkey *key, const char *label, const uint8_t *msg, size_t len,
              uint8_t sig[TERN_ED25519_SIG_LEN]);
/* Signs msg itself, with no label: only for formats that separate domains
 * themselves (C2SP signed notes bind the key type in the key id and the
 * log in the origin line). */
int tern_sign_raw(const tern_signkey *key, const uint8_t *msg, size_t len,
                  uint8_t sig[TERN_ED25519_SIG_LEN]);

/* 0 if sig is pub's signature over label || 0x00 || msg, else TERN_EBADSIG. */
int tern_verify(const uint8_t pub[TERN_ED25519_PUBLIC_LEN], const char *label, const uint8_t *msg,
                size_t len, const uint8_t sig[TERN_ED25519_SIG_LEN]);

int tern_sealkey_generate(tern_sealkey **out);
int tern_sealkey_from_secret(const uint8_t secret[TERN_X25519_LEN], tern_sealkey **out);
int tern_sealkey_load(const char *path, tern_sealkey **out);
int tern_sealkey_save(const tern_sealkey *key, const char *path);
void tern_sealkey_free(tern_sealkey **key);
const uint8_t *tern_sealkey_public(const tern_sealkey *key);
/* The raw secret, for key agreement inside libtern only. */
const uint8_t *tern_sealkey_secret(const tern_sealkey *key);

#ifdef __cplusplus
}
#endif
#endif

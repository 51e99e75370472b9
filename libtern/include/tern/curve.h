/* ZeroMQ CURVE transport keys (the broker link).
 *
 * A CURVE key pair is kept in a ZPL text file in the layout CZMQ's zcert uses
 * (public-key and secret-key as Z85), written 0600; loading refuses a file
 * that group or others may read (TERN_EPERM). The public key is derived again
 * from the secret key on load and must match the one written in the file.
 * Handles wipe their secret when freed; tern_curvekey_free() sets the
 * caller's pointer to NULL.
 */
#ifndef TERN_CURVE_H
#define TERN_CURVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_CURVE_KEY_LEN 32
/* Z85 text of a 32-byte key plus the terminating NUL. */
#define TERN_CURVE_Z85_LEN 41

typedef struct tern_curvekey tern_curvekey;

int tern_curvekey_generate(tern_curvekey **out);
int tern_curvekey_load(const char *path, tern_curvekey **out);
int tern_curvekey_save(const tern_curvekey *key, const char *path);
void tern_curvekey_free(tern_curvekey **key);

/* Raw 32-byte keys; valid as long as key lives. */
const uint8_t *tern_curvekey_public(const tern_curvekey *key);
const uint8_t *tern_curvekey_secret(const tern_curvekey *key);
/* Z85 text (40 characters, NUL-terminated) as ZMQ_CURVE_PUBLICKEY /
 * ZMQ_CURVE_SECRETKEY accept it; valid as long as key lives. */
const char *tern_curvekey_public_z85(const tern_curvekey *key);
const char *tern_curvekey_secret_z85(const tern_curvekey *key);

/* Z85 <-> raw for a 32-byte key. Decoding returns TERN_EMALFORMED for text
 * that is not exactly 40 valid Z85 characters. */
int tern_curve_z85_decode(const char *z85, uint8_t out[TERN_CURVE_KEY_LEN]);
void tern_curve_z85_encode(const uint8_t key[TERN_CURVE_KEY_LEN], char out[TERN_CURVE_Z85_LEN]);

#ifdef __cplusplus
}
#endif
#endif

/* C2SP signed notes, tlog checkpoints and cosignatures
 * (c2sp.org/signed-note, /tlog-checkpoint, /tlog-cosignature).
 *
 * A note is text ending in a newline, a blank line, then signature lines
 * "— NAME BASE64(key id || signature)". Key id = SHA-256(NAME || 0x0A ||
 * type || public key)[:4], type 0x01 for Ed25519 signatures and 0x04 for
 * timestamped cosignatures. Returned strings are malloc'd; free them.
 */
#ifndef TERN_NOTE_H
#define TERN_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include <tern/keys.h>
#include <tern/merkle.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_NOTE_ED25519 0x01
#define TERN_NOTE_COSIGNATURE 0x04
#define TERN_NOTE_NAME_MAX 127

void tern_note_key_id(const char *name, uint8_t type, const uint8_t pub[32], uint8_t id[4]);

/* Parses a verifier key "NAME+HEXID+BASE64(0x01 || public key)". */
int tern_note_vkey_parse(const char *vkey, char name[TERN_NOTE_NAME_MAX + 1], uint8_t pub[32]);
/* Formats the verifier key of pub under name. */
int tern_note_vkey_format(const char *name, const uint8_t pub[32], char **out);

/* text (ending in '\n') signed by key under name: the whole note. */
int tern_note_sign(const char *text, const char *name, const tern_signkey *key, char **note);
/* Verifies that note carries a valid Ed25519 signature by (name, pub). On
 * success *text (if not NULL) receives a copy of the signed text. */
int tern_note_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                     char **text);

/* Checkpoint body: "ORIGIN\nSIZE\nBASE64(ROOT)\n". */
int tern_checkpoint_format(const char *origin, uint64_t size, const tern_hash root, char **text);
int tern_checkpoint_parse(const char *text, char origin[TERN_NOTE_NAME_MAX + 1], uint64_t *size,
                          tern_hash root);

/* A witness's cosignature line for a checkpoint body, at time t (seconds):
 * "— NAME BASE64(id || be64(t) || sig over "cosignature/v1\ntime T\n" || body)\n". */
int tern_cosign(const char *body, const char *name, const tern_signkey *key, uint64_t t,
                char **line);
/* Verifies a cosignature by (name, pub) on note's body; *t receives its time. */
int tern_cosign_verify(const char *note, size_t len, const char *name, const uint8_t pub[32],
                       uint64_t *t);

#ifdef __cplusplus
}
#endif
#endif

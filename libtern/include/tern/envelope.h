/* Envelopes: the signed, sealed unit nodes exchange (tern.v1.Envelope).
 *
 * A sender seals a body once under a fresh content key, wraps that key for
 * each recipient with X25519 + HKDF-SHA256 + ChaCha20-Poly1305, and signs the
 * serialized header with Ed25519, alone or with others under one signed
 * Merkle root (a batch signature). A receiver verifies the envelope (size,
 * structure, version, sender, signature, body digest, clock), may check the
 * sender's role for the message type, and opens the body with its sealing
 * key. docs/envelope.md describes the format byte by byte.
 *
 * Errors name the precise reason (TERN_EBADSIG, TERN_EDIGEST, ...) and
 * tern_errdetail() says which field; bodies never appear in either.
 */
#ifndef TERN_ENVELOPE_H
#define TERN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <tern/directory.h>
#include <tern/keys.h>
#include <tern/v1/envelope.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_ENVELOPE_SCHEMA_VERSION 1
/* Signature label: the signed bytes are this, a 0x00, then Envelope.header. */
#define TERN_ENVELOPE_SIGN_LABEL "tern/v1 envelope header"
/* Batch signature label: the signed bytes are this, a 0x00, be64(tree_size)
 * and the root of the RFC 6962 tree whose leaves are the batch's envelopes,
 * each leaf the bytes a lone signature would sign (docs/envelope.md). */
#define TERN_ENVELOPE_BATCH_LABEL "tern/v1 envelope batch"
/* Envelopes under one batch signature, at most, and so the longest proof. */
#define TERN_ENVELOPE_MAX_BATCH 4096
#define TERN_ENVELOPE_MAX_BATCH_DEPTH 12
#define TERN_ENVELOPE_MAX_SIZE_DEFAULT (8u * 1024 * 1024)
#define TERN_ENVELOPE_MAX_SKEW_MS_DEFAULT (5 * 60 * 1000)
/* Limits a well-formed header stays within. */
#define TERN_ENVELOPE_MAX_RECIPIENTS 64
#define TERN_ENVELOPE_HEADER_MAX 16384
#define TERN_CASE_ID_MAX 128

typedef struct tern_envelope tern_envelope;

/* X25519 work a node can reuse across envelopes (opaque; one thread at a
 * time, like the node's loop that owns it).
 *
 * Sealing: one ephemeral key pair serves every envelope for up to
 * lifetime_ms or max_uses envelopes, then is wiped and replaced; the shared
 * secret with each recipient is computed once per ephemeral key. Each
 * envelope still gets its own content key and nonce, and its key wrap is
 * derived with its own message id, so no key or nonce repeats.
 * Opening: the shared secrets of the most recent ephemeral keys seen are
 * remembered, so a run of envelopes from one sender costs one X25519.
 * Secrets are wiped when replaced, by tern_sealcache_expire once the
 * ephemeral key's lifetime has passed (an idle owner calls it, so that the
 * key does not outlive its lifetime between envelopes) and by
 * tern_sealcache_free. */
typedef struct tern_sealcache tern_sealcache;
#define TERN_SEALCACHE_LIFETIME_MS_DEFAULT (60 * 1000)
#define TERN_SEALCACHE_MAX_USES_DEFAULT 100000

/* lifetime_ms and max_uses of 0 take the defaults above. */
int tern_sealcache_new(int64_t lifetime_ms, uint32_t max_uses, tern_sealcache **out);
/* Wipes the secrets, frees the cache and sets *c to NULL. */
void tern_sealcache_free(tern_sealcache **c);
/* Wipes the ephemeral key pair and the sealing secrets computed from it if
 * the key is past its lifetime or uses at now_ms (ms since the epoch); the
 * next seal makes a new one. Opening secrets are kept: they belong to the
 * senders' keys, which the senders rotate. c may be NULL. */
void tern_sealcache_expire(tern_sealcache *c, int64_t now_ms);
/* How many X25519 operations the cache saved and how many it did (for tests
 * and metrics). */
void tern_sealcache_stats(const tern_sealcache *c, uint64_t *hits, uint64_t *misses);

typedef struct tern_seal_params {
	const char *sender;            /* our node id; must be in the directory */
	const tern_signkey *sign_key;  /* must match the sender's sign_public */
	const char *const *recipients; /* node ids, distinct, all in the directory */
	size_t n_recipients;           /* 1..TERN_ENVELOPE_MAX_RECIPIENTS */
	Tern__V1__MessageType type;    /* not MESSAGE_TYPE_UNSPECIFIED */
	const char *case_id;           /* printable ASCII, at most TERN_CASE_ID_MAX; NULL = "" */
	const char *in_reply_to;       /* a message id, or NULL */
	const uint8_t *body;           /* the serialized message, sealed as is */
	size_t body_len;
	int64_t created_at;    /* ms since the epoch; 0 = now */
	int64_t expires_at;    /* ms since the epoch; 0 = the broker's default time-to-live */
	tern_sealcache *cache; /* NULL: a fresh ephemeral key for this envelope alone */
	/* Attachments (tern/attach.h): the sender seals them first, so it
	 * chooses the message id and the content key, and passes their seals
	 * to sign in the header. NULL / 0: a new UUIDv7, a random key, none. */
	const char *message_id;
	const uint8_t *content_key; /* 32 bytes */
	const Tern__V1__AttachmentSeal *const *attachments;
	size_t n_attachments;
} tern_seal_params;

/* Sealing in two steps, so that a node can sign everything one commit
 * writes with one signature: tern_envelope_seal_unsigned does all of the
 * sealing but the signature (and every check tern_envelope_seal makes) and
 * returns the envelope in a tern_sealed; tern_envelope_sign then signs n of
 * them with key, which must be the sign_key they were sealed with. One
 * envelope gets a lone Ed25519 signature; two or more get one batch
 * signature per TERN_ENVELOPE_MAX_BATCH, each envelope carrying the root's
 * signature and its own inclusion proof, so each still verifies alone.
 * outs[i] is then a malloc'd serialized Envelope of out_lens[i] bytes (the
 * caller frees them); on failure none is set. The items stay the caller's. */
typedef struct tern_sealed tern_sealed;
int tern_envelope_seal_unsigned(const tern_seal_params *p, const tern_directory *dir,
                                tern_sealed **out, char message_id[37]);
int tern_envelope_sign(tern_sealed *const *items, size_t n, const tern_signkey *key, uint8_t **outs,
                       size_t *out_lens);
/* The message id, valid as long as s. */
const char *tern_sealed_message_id(const tern_sealed *s);
/* Frees s and sets *s to NULL. */
void tern_sealed_free(tern_sealed **s);

/* Seals p->body for p->recipients (their seal_public keys come from dir) and
 * signs the header with p->sign_key. On success *out is a malloc'd serialized
 * Envelope of *out_len bytes (the caller frees it) and message_id, if not
 * NULL, receives the new UUIDv7. TERN_EINVAL for bad parameters (unknown,
 * duplicate or invalid recipients, sender key not the directory's),
 * TERN_EUNKNOWN if the sender or a recipient is not in dir, TERN_EREVOKED if
 * a recipient's certificate is revoked. Thread-safe; dir is only read. */
int tern_envelope_seal(const tern_seal_params *p, const tern_directory *dir, uint8_t **out,
                       size_t *out_len, char message_id[37]);

/* Batch roots whose signatures verified, so that the other envelopes of a
 * batch cost a proof check instead of a signature check (opaque; one thread
 * at a time). A fixed table of slots: a full one forgets, never grows. */
typedef struct tern_sigcache tern_sigcache;
#define TERN_SIGCACHE_SLOTS_DEFAULT 4096
/* slots 0 takes the default. */
int tern_sigcache_new(size_t slots, tern_sigcache **out);
void tern_sigcache_free(tern_sigcache **c);
void tern_sigcache_stats(const tern_sigcache *c, uint64_t *hits, uint64_t *misses);

/* Zero fields take the defaults: TERN_ENVELOPE_MAX_SIZE_DEFAULT, the current
 * time, TERN_ENVELOPE_MAX_SKEW_MS_DEFAULT. opts itself may be NULL. */
typedef struct tern_verify_opts {
	size_t max_size;
	int64_t now_ms;
	int64_t max_skew_ms;
	/* Non-zero: bound only created-at in the future. Envelopes are sealed
	 * when the sender accepts them and can legitimately be days old when
	 * they reach the broker (a sender cut off or behind a backlog) or the
	 * recipient (a node offline); broker and nodes both set it. */
	int future_skew_only;
	tern_sigcache *sigcache; /* NULL: every signature is checked */
	/* Non-NULL: the SHA-256 of the envelope as this reader accepted it,
	 * after a full verification (a recipient reading its own inbox). When
	 * buf still has that digest, what was verified then stays verified: the
	 * sender's standing (revoked, expired, a lapsed CRL, left the
	 * directory) and its key (replaced since) are not checked again, and
	 * the sender is NULL if it left the directory. Decoding, the header and
	 * the body digest are checked as always. Another digest: ignored. */
	const uint8_t *accepted_digest;
} tern_verify_opts;

/* Verifies a received envelope; the checks run in this order and the first
 * that fails gives the result:
 *   TERN_ETOOBIG     len over max_size
 *   TERN_EMALFORMED  envelope or header does not decode, a field is missing
 *                    or invalid (ids, recipients, type, digest length)
 *   TERN_EVERSION    schema_version is not 1
 *   TERN_EUNKNOWN    sender not in dir
 *   TERN_EREVOKED    sender's certificate revoked
 *   TERN_EEXPIRED    sender's certificate, or the federation's CRL, has
 *                    expired at now_ms
 *   TERN_EBADSIG     signature over the received header bytes fails (batch:
 *                    the proof does not fit its tree, or the root's
 *                    signature fails)
 *   TERN_EDIGEST     SHA-256(sealed_body) differs from header.body_digest
 *   TERN_ESKEW       created_at more than max_skew_ms from now, either way
 * and TERN_ENOMEM wherever memory runs out: no verdict on the envelope (a
 * caller tries again later rather than refuse it).
 * On success *out is a new handle (free it with tern_envelope_free); it
 * refers to the sender's entry in dir, so dir must outlive it. Verification
 * does not decrypt: a broker verifies without any sealing key. */
int tern_envelope_verify(const uint8_t *buf, size_t len, const tern_directory *dir,
                         const tern_verify_opts *opts, tern_envelope **out);

/* The decoded header, valid as long as env. */
const Tern__V1__Header *tern_envelope_header(const tern_envelope *env);
/* The sender's directory entry, valid as long as env and its directory;
 * NULL only for an envelope verified by its accepted_digest whose sender
 * has left the directory since. */
const tern_member *tern_envelope_sender(const tern_envelope *env);
/* The serialized header and sealed body as received, valid as long as env. */
void tern_envelope_raw(const tern_envelope *env, const uint8_t **header, size_t *header_len,
                       const uint8_t **sealed_body, size_t *sealed_len);

/* TERN_EROLE if the sender's roles may not send the header's type (see
 * msgtype.h), or the sender is not in the directory; TERN_EMALFORMED for a
 * type libtern does not know. */
int tern_envelope_authorize(const tern_envelope *env);

/* Opens the body for self_id with its sealing key. *body is malloc'd and
 * holds *body_len bytes of plaintext; release it with tern_envelope_body_free
 * (which wipes it). Returns TERN_ENOTRCPT if self_id is not a recipient or has
 * no wrapped key, TERN_EMALFORMED for a damaged SealedBody, TERN_EDECRYPT if
 * the key wrap or the body does not authenticate (also: the wrong key),
 * TERN_ENOMEM when memory runs out (no verdict, as for verify).
 * Plaintext is only ever returned after its tag verified. */
int tern_envelope_open(const tern_envelope *env, const char *self_id, const tern_sealkey *key,
                       uint8_t **body, size_t *body_len);
/* The same, remembering shared secrets in cache (NULL: none). */
int tern_envelope_open_cached(const tern_envelope *env, const char *self_id,
                              const tern_sealkey *key, tern_sealcache *cache, uint8_t **body,
                              size_t *body_len);
/* The message's content key, unwrapped for self_id (the same checks and
 * errors as tern_envelope_open, without opening the body): what its
 * attachments' chunk keys derive from (tern/attach.h). Wipe it after use. */
int tern_envelope_content_key(const tern_envelope *env, const char *self_id,
                              const tern_sealkey *key, tern_sealcache *cache, uint8_t out[32]);
/* Wipes and frees a body returned by tern_envelope_open; sets *body to NULL. */
void tern_envelope_body_free(uint8_t **body, size_t body_len);

void tern_envelope_free(tern_envelope **env);

/* What an envelope that failed verification claims about itself, so that a
 * refusal can be matched to its message by the claimed sender. Nothing here is
 * verified. Decoding is bounded (at most len bytes of envelope, 64 KiB of
 * header, within the decoder's memory budget), and each field is copied only
 * when well-formed (a UUID, a node id; a case id of printable ASCII): they go
 * into logs and audit entries. A field that is not is left "". */
typedef struct tern_envelope_claim {
	char message_id[37];
	char sender[64];
	char case_id[129];
} tern_envelope_claim;

/* Always fills *out (all "" when nothing decodes); TERN_OK when the header
 * decoded, TERN_EMALFORMED otherwise. */
int tern_envelope_claims(const uint8_t *buf, size_t len, tern_envelope_claim *out);

#ifdef __cplusplus
}
#endif
#endif

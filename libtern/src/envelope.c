/* Envelopes (tern/envelope.h): sealing, batch signing, verifying, opening,
 * and the caches that make them cheap (docs/envelope.md).
 *
 * One file over 800 lines on purpose: the sending and the receiving side
 * share the header's associated data (header_aad), the key-wrap derivation
 * (wrap_key_derive) and the bytes a batch signature covers
 * (batch_signed_bytes). Kept private to one file, the two sides can never be
 * built from different copies of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/merkle.h>
#include <tern/msgtype.h>
#include <tern/uuid.h>

#include "pbuf.h"
#include "util.h"

#define SEAL_AAD_LABEL "tern/v1 seal"
#define KEY_WRAP_LABEL "tern/v1 key wrap"
#define CONTENT_KEY_LEN TERN_AEAD_KEY_LEN
#define WRAPPED_LEN (CONTENT_KEY_LEN + TERN_AEAD_TAG_LEN)
/* Most headers encode in far less; longer ones fall back to the heap. */
#define AAD_STACK 1024

struct tern_envelope {
	Tern__V1__Envelope *env;
	Tern__V1__Header *hdr;
	const tern_member *sender;
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends u32be(len) || data at *p. */
static uint8_t *put_lp(uint8_t *p, const void *data, size_t len)
{
	put_u32(p, (uint32_t)len);
	if (len)
		memcpy(p + 4, data, len);
	return p + 4 + len;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* The associated data of the body: every header field but body_digest (which
 * covers the sealed body and so cannot be known before it), each field
 * length-prefixed so that no two headers encode alike. docs/envelope.md. */
static int header_aad(const Tern__V1__Header *h, uint8_t *stack, uint8_t **out, size_t *out_len)
{
	const char *strs[5] = {SEAL_AAD_LABEL, str_or_empty(h->message_id), str_or_empty(h->sender),
	                       str_or_empty(h->case_id), str_or_empty(h->in_reply_to)};
	uint8_t num[8];
	size_t need = 4 + 4 + 4 + 8; /* recipient count, lengths of the three integers */
	uint8_t *buf, *p;

	need += 4 + 4 + 8 + 4 + 8; /* schema_version, type, created_at, expires_at */
	for (size_t i = 0; i < 5; i++)
		need += 4 + strlen(strs[i]);
	for (size_t i = 0; i < h->n_recipients; i++)
		need += 4 + strlen(str_or_empty(h->recipients[i]));
	if (need <= AAD_STACK)
		buf = stack;
	else if ((buf = malloc(need)) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory for a header's associated data");

	p = put_lp(buf, strs[0], strlen(strs[0]));
	put_u32(num, h->schema_version);
	p = put_lp(p, num, 4);
	p = put_lp(p, strs[1], strlen(strs[1]));
	p = put_lp(p, strs[2], strlen(strs[2]));
	put_u32(p, (uint32_t)h->n_recipients);
	p += 4;
	for (size_t i = 0; i < h->n_recipients; i++) {
		const char *r = str_or_empty(h->recipients[i]);
		p = put_lp(p, r, strlen(r));
	}
	put_u32(num, (uint32_t)h->type);
	p = put_lp(p, num, 4);
	p = put_lp(p, strs[3], strlen(strs[3]));
	put_u32(num, (uint32_t)((uint64_t)h->created_at >> 32));
	put_u32(num + 4, (uint32_t)(uint64_t)h->created_at);
	p = put_lp(p, num, 8);
	p = put_lp(p, strs[4], strlen(strs[4]));
	put_u32(num, (uint32_t)((uint64_t)h->expires_at >> 32));
	put_u32(num + 4, (uint32_t)(uint64_t)h->expires_at);
	p = put_lp(p, num, 8);
	*out = buf;
	*out_len = (size_t)(p - buf);
	return TERN_OK;
}

static void aad_release(uint8_t *aad, const uint8_t *stack)
{
	if (aad != stack)
		free(aad);
}

/* Records code with prefix in front of the detail already recorded (which
 * must be copied out first: tern_fail writes into the same buffer). */
static int refail(int code, const char *prefix)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s", tern_errdetail());
	return tern_fail(code, "%s: %s", prefix, detail);
}

static int case_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > TERN_CASE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Every rule a header must meet apart from its version and digest.
 * TERN_EMALFORMED with the field named. */
static int header_check(const Tern__V1__Header *h)
{
	if (!tern_uuid_valid(h->message_id) || h->message_id[14] != '7')
		return tern_fail(TERN_EMALFORMED, "header message_id is not a UUIDv7");
	if (!tern_node_id_valid(h->sender))
		return tern_fail(TERN_EMALFORMED, "header sender is not a node id");
	if (h->n_recipients == 0)
		return tern_fail(TERN_EMALFORMED, "message %s has no recipients", h->message_id);
	if (h->n_recipients > TERN_ENVELOPE_MAX_RECIPIENTS)
		return tern_fail(TERN_EMALFORMED, "message %s has %zu recipients (at most %d)",
		                 h->message_id, h->n_recipients, TERN_ENVELOPE_MAX_RECIPIENTS);
	for (size_t i = 0; i < h->n_recipients; i++) {
		if (!tern_node_id_valid(h->recipients[i]))
			return tern_fail(TERN_EMALFORMED,
			                 "message %s: recipient %zu is not a node id",
			                 h->message_id, i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->recipients[i], h->recipients[j]) == 0)
				return tern_fail(TERN_EMALFORMED,
				                 "message %s names recipient %s twice",
				                 h->message_id, h->recipients[i]);
	}
	if (tern_msgtype_by_type(h->type) == NULL)
		return tern_fail(TERN_EMALFORMED, "message %s has unknown type %d", h->message_id,
		                 (int)h->type);
	if (!case_id_valid(h->case_id))
		return tern_fail(TERN_EMALFORMED,
		                 "message %s: case_id is not printable ASCII of at most %d bytes",
		                 h->message_id, TERN_CASE_ID_MAX);
	if (h->in_reply_to[0] != '\0' && !tern_uuid_valid(h->in_reply_to))
		return tern_fail(TERN_EMALFORMED, "message %s: in_reply_to is not a message id",
		                 h->message_id);
	if (h->expires_at != 0 && h->expires_at <= h->created_at)
		return tern_fail(TERN_EMALFORMED, "message %s expires before it was created",
		                 h->message_id);
	/* Structure only: each daemon applies its own size limits. */
	if (tern_attach_seals_check((const Tern__V1__AttachmentSeal *const *)h->attachments,
	                            h->n_attachments, 0, 0) != TERN_OK)
		return tern_fail(TERN_EMALFORMED, "message %s: %s", h->message_id,
		                 tern_errdetail());
	return TERN_OK;
}

/* wrap key = HKDF-SHA256(ikm = shared, salt = eph_public || recipient_public,
 *                        info = label || 0 || message_id || 0 || recipient).
 * In two halves: prk = HKDF-Extract(salt, shared) depends on the two keys
 * only, so the seal cache keeps it with the shared secret (wrap_prk); each
 * message's wrap key is then one HKDF-Expand (wrap_key_derive). */
static int wrap_prk(const uint8_t shared[32], const uint8_t eph_public[32],
                    const uint8_t rcpt_public[32], uint8_t prk[32])
{
	uint8_t salt[64];

	memcpy(salt, eph_public, 32);
	memcpy(salt + 32, rcpt_public, 32);
	return tern_hkdf_sha256_extract(salt, sizeof(salt), shared, 32, prk);
}

static int wrap_key_derive(const uint8_t prk[32], const char *message_id, const char *rcpt,
                           uint8_t key[CONTENT_KEY_LEN])
{
	uint8_t info[sizeof(KEY_WRAP_LABEL) + TERN_UUID_STRLEN + 1 + TERN_NODE_ID_MAX];
	size_t ml = strlen(message_id), rl = strlen(rcpt), n = 0;

	if (ml > TERN_UUID_STRLEN || rl > TERN_NODE_ID_MAX)
		return TERN_EINVAL;
	memcpy(info, KEY_WRAP_LABEL, sizeof(KEY_WRAP_LABEL)); /* with its NUL */
	n = sizeof(KEY_WRAP_LABEL);
	memcpy(info + n, message_id, ml);
	n += ml;
	info[n++] = 0;
	memcpy(info + n, rcpt, rl);
	n += rl;
	return tern_hkdf_sha256_expand(prk, info, n, key, CONTENT_KEY_LEN);
}

static const uint8_t zero_nonce[TERN_AEAD_NONCE_LEN];

/* Enough for every peer of a large federation's busy node; beyond it the
 * oldest slot is recomputed, which costs time, never correctness. */
#define SEALCACHE_SLOTS 64

struct secret_slot {
	int used;
	uint8_t self[32]; /* opening: our sealing public key; sealing: unused */
	uint8_t peer[32]; /* sealing: the recipient's key; opening: the ephemeral key */
	uint8_t prk[32];  /* wrap_prk of the X25519 secret of the two */
};

struct tern_sealcache {
	int64_t lifetime_ms;
	uint32_t max_uses;
	int have_eph;
	int64_t eph_born;
	uint32_t eph_uses;
	uint8_t eph_sk[32], eph_pk[32];
	struct secret_slot sealing[SEALCACHE_SLOTS];
	struct secret_slot opening[SEALCACHE_SLOTS];
	size_t next_sealing, next_opening;
	uint64_t hits, misses;
};

int tern_sealcache_new(int64_t lifetime_ms, uint32_t max_uses, tern_sealcache **out)
{
	tern_sealcache *c;
	int rc;

	if (out == NULL || lifetime_ms < 0)
		return tern_fail(TERN_EINVAL, "sealcache: bad parameter");
	*out = NULL;
	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	/* sodium_malloc: guarded, locked in memory, wiped by sodium_free. */
	if ((c = sodium_malloc(sizeof(*c))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory for a seal cache");
	memset(c, 0, sizeof(*c));
	c->lifetime_ms = lifetime_ms ? lifetime_ms : TERN_SEALCACHE_LIFETIME_MS_DEFAULT;
	c->max_uses = max_uses ? max_uses : TERN_SEALCACHE_MAX_USES_DEFAULT;
	*out = c;
	return TERN_OK;
}

void tern_sealcache_free(tern_sealcache **c)
{
	if (c == NULL || *c == NULL)
		return;
	sodium_free(*c);
	*c = NULL;
}

void tern_sealcache_stats(const tern_sealcache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}

static int sealcache_stale(const tern_sealcache *c, int64_t now)
{
	return c->eph_uses >= c->max_uses || now - c->eph_born >= c->lifetime_ms ||
	       now < c->eph_born;
}

static void sealcache_wipe_sealing(tern_sealcache *c)
{
	sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
	sodium_memzero(c->eph_pk, sizeof(c->eph_pk));
	sodium_memzero(c->sealing, sizeof(c->sealing));
	c->next_sealing = 0;
	c->have_eph = 0;
}

void tern_sealcache_expire(tern_sealcache *c, int64_t now_ms)
{
	if (c != NULL && c->have_eph && sealcache_stale(c, now_ms))
		sealcache_wipe_sealing(c);
}

/* The ephemeral key pair for the next envelope: the cache's, replaced when
 * too old or too used (with every secret computed from it). */
static int sealcache_ephemeral(tern_sealcache *c, uint8_t sk[32], uint8_t pk[32])
{
	int64_t now = tern_now_ms();
	int rc;

	if (!c->have_eph || sealcache_stale(c, now)) {
		sealcache_wipe_sealing(c);
		randombytes_buf(c->eph_sk, sizeof(c->eph_sk));
		if ((rc = tern_x25519_base(c->eph_pk, c->eph_sk)) != TERN_OK)
			return rc;
		c->have_eph = 1;
		c->eph_born = now;
		c->eph_uses = 0;
	}
	c->eph_uses++;
	memcpy(sk, c->eph_sk, 32);
	memcpy(pk, c->eph_pk, 32);
	return TERN_OK;
}

/* prk = wrap_prk(X25519(scalar, point), eph_public, rcpt_public), from slots
 * when (self, point) is there. Sealing: point is the recipient's key and
 * eph_public ours (the slots go with it); opening: point is the ephemeral
 * key and self ours. TERN_ECRYPTO for a low-order point, which is never
 * remembered. */
static int sealcache_prk(tern_sealcache *c, struct secret_slot *slots, size_t *next,
                         const uint8_t self[32], const uint8_t scalar[32], const uint8_t point[32],
                         const uint8_t eph_public[32], const uint8_t rcpt_public[32],
                         uint8_t prk[32])
{
	struct secret_slot *s;
	uint8_t shared[32];
	int rc;

	for (size_t i = 0; c != NULL && i < SEALCACHE_SLOTS; i++)
		if (slots[i].used && sodium_memcmp(slots[i].peer, point, 32) == 0 &&
		    sodium_memcmp(slots[i].self, self, 32) == 0) {
			memcpy(prk, slots[i].prk, 32);
			c->hits++;
			return TERN_OK;
		}
	if (c != NULL)
		c->misses++;
	if (tern_x25519(shared, scalar, point) != TERN_OK)
		return TERN_ECRYPTO;
	rc = wrap_prk(shared, eph_public, rcpt_public, prk);
	sodium_memzero(shared, sizeof(shared));
	if (rc != TERN_OK || c == NULL)
		return rc;
	s = &slots[*next];
	*next = (*next + 1) % SEALCACHE_SLOTS;
	s->used = 1;
	memcpy(s->self, self, 32);
	memcpy(s->peer, point, 32);
	memcpy(s->prk, prk, 32);
	return TERN_OK;
}

/* Checks the parameters and finds the recipients' directory entries. */
static int seal_check(const tern_seal_params *p, const tern_directory *dir,
                      const tern_member **rcpts)
{
	const tern_member *m;

	if (p == NULL || dir == NULL || p->sender == NULL || p->sign_key == NULL ||
	    (p->n_recipients > 0 && p->recipients == NULL) || (p->body == NULL && p->body_len > 0))
		return tern_fail(TERN_EINVAL, "seal: missing parameter");
	if (!tern_node_id_valid(p->sender))
		return tern_fail(TERN_EINVAL, "seal: sender '%s' is not a node id", p->sender);
	if (p->n_recipients == 0 || p->n_recipients > TERN_ENVELOPE_MAX_RECIPIENTS)
		return tern_fail(TERN_EINVAL, "seal: %zu recipients (1..%d allowed)",
		                 p->n_recipients, TERN_ENVELOPE_MAX_RECIPIENTS);
	if (tern_directory_find(dir, p->sender, &m) != TERN_OK)
		return tern_fail(TERN_EUNKNOWN, "seal: sender %s is not in the directory",
		                 p->sender);
	if (sodium_memcmp(m->sign_public, tern_signkey_public(p->sign_key),
	                  TERN_ED25519_PUBLIC_LEN) != 0)
		return tern_fail(TERN_EINVAL,
		                 "seal: the signing key is not %s's key in the directory",
		                 p->sender);
	if (m->revoked)
		return tern_fail(TERN_EREVOKED, "seal: sender %s is revoked", p->sender);
	if (tern_member_expired(m, (p->created_at ? p->created_at : tern_now_ms()) / 1000))
		return tern_fail(TERN_EEXPIRED,
		                 "seal: sender %s's certificate has expired: the CA must issue a "
		                 "new one",
		                 p->sender);
	for (size_t i = 0; i < p->n_recipients; i++) {
		const char *r = p->recipients[i];
		if (r == NULL || !tern_node_id_valid(r))
			return tern_fail(TERN_EINVAL, "seal: recipient %zu is not a node id", i);
		if (tern_directory_find(dir, r, &rcpts[i]) != TERN_OK)
			return tern_fail(TERN_EUNKNOWN,
			                 "seal: recipient %s is not in the directory", r);
		/* A revoked node's sealing key may be in other hands. */
		if (rcpts[i]->revoked)
			return tern_fail(TERN_EREVOKED, "seal: recipient %s is revoked", r);
		if (tern_member_expired(rcpts[i],
		                        (p->created_at ? p->created_at : tern_now_ms()) / 1000))
			return tern_fail(TERN_EEXPIRED,
			                 "seal: recipient %s's certificate has expired", r);
	}
	return TERN_OK;
}

struct tern_sealed {
	char id[TERN_UUID_STRLEN + 1];
	uint8_t signer[TERN_ED25519_PUBLIC_LEN]; /* the key seal_check accepted */
	uint8_t *header, *sealed;
	size_t header_len, sealed_len;
};

/* What a batch signature adds to an envelope at most: the signature, two
 * varints and a full-depth proof, with their tags and lengths. */
#define BATCH_SIG_MAX (8 + 2 + TERN_ED25519_SIG_LEN + 2 * 11 + TERN_ENVELOPE_MAX_BATCH_DEPTH * 34)

void tern_sealed_free(tern_sealed **s)
{
	if (s == NULL || *s == NULL)
		return;
	free((*s)->header);
	free((*s)->sealed);
	free(*s);
	*s = NULL;
}

const char *tern_sealed_message_id(const tern_sealed *s)
{
	return s->id;
}

int tern_envelope_seal_unsigned(const tern_seal_params *p, const tern_directory *dir,
                                tern_sealed **out, char message_id[37])
{
	const tern_member *rcpts[TERN_ENVELOPE_MAX_RECIPIENTS];
	Tern__V1__WrappedKey wk[TERN_ENVELOPE_MAX_RECIPIENTS];
	Tern__V1__WrappedKey *wkp[TERN_ENVELOPE_MAX_RECIPIENTS];
	uint8_t wrapped[TERN_ENVELOPE_MAX_RECIPIENTS][WRAPPED_LEN];
	Tern__V1__Header h = TERN__V1__HEADER__INIT;
	Tern__V1__SealedBody sb = TERN__V1__SEALED_BODY__INIT;
	tern_sealed *res = NULL;
	uint8_t content_key[CONTENT_KEY_LEN], nonce[TERN_AEAD_NONCE_LEN];
	uint8_t eph_sk[32], eph_pk[32], prk[32], wrap_key[CONTENT_KEY_LEN];
	uint8_t digest[TERN_SHA256_LEN];
	uint8_t aad_stack[AAD_STACK], *aad = aad_stack;
	uint8_t *ct = NULL;
	size_t aad_len;
	int rc;

	if (out == NULL)
		return tern_fail(TERN_EINVAL, "seal: missing parameter");
	*out = NULL;
	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if ((rc = seal_check(p, dir, rcpts)) != TERN_OK)
		return rc;
	if ((res = calloc(1, sizeof(*res))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory sealing");
	memcpy(res->signer, tern_signkey_public(p->sign_key), TERN_ED25519_PUBLIC_LEN);
	if (p->message_id != NULL) {
		if (!tern_uuid_valid(p->message_id)) {
			rc = tern_fail(TERN_EINVAL, "seal: message id is not a UUID");
			goto out;
		}
		snprintf(res->id, sizeof(res->id), "%s", p->message_id);
	} else if ((rc = tern_uuid_v7(res->id)) != TERN_OK)
		goto out;

	h.schema_version = TERN_ENVELOPE_SCHEMA_VERSION;
	h.message_id = res->id;
	h.sender = (char *)p->sender;
	h.n_recipients = p->n_recipients;
	h.recipients = (char **)p->recipients;
	h.type = p->type;
	h.case_id = (char *)str_or_empty(p->case_id);
	h.created_at = p->created_at ? p->created_at : tern_now_ms();
	h.expires_at = p->expires_at;
	h.in_reply_to = (char *)str_or_empty(p->in_reply_to);
	h.n_attachments = p->n_attachments;
	h.attachments = (Tern__V1__AttachmentSeal **)p->attachments;
	/* The receiver's rules, applied before anything is signed. */
	if (header_check(&h) != TERN_OK) {
		rc = refail(TERN_EINVAL, "seal");
		goto out;
	}

	if (p->content_key != NULL)
		memcpy(content_key, p->content_key, sizeof(content_key));
	else
		randombytes_buf(content_key, sizeof(content_key));
	randombytes_buf(nonce, sizeof(nonce));
	if (p->cache != NULL)
		rc = sealcache_ephemeral(p->cache, eph_sk, eph_pk);
	else {
		randombytes_buf(eph_sk, sizeof(eph_sk));
		rc = tern_x25519_base(eph_pk, eph_sk);
	}
	if (rc != TERN_OK)
		goto out;

	if ((rc = header_aad(&h, aad_stack, &aad, &aad_len)) != TERN_OK)
		goto out;
	if ((ct = malloc(p->body_len + TERN_AEAD_TAG_LEN)) == NULL) {
		rc = tern_fail(TERN_ENOMEM, "out of memory sealing a body");
		goto out;
	}
	if ((rc = tern_aead_seal(content_key, sizeof(content_key), nonce, sizeof(nonce), aad,
	                         aad_len, p->body, p->body_len, ct)) != TERN_OK)
		goto out;

	for (size_t i = 0; i < p->n_recipients; i++) {
		if ((rc = sealcache_prk(p->cache, p->cache ? p->cache->sealing : NULL,
		                        p->cache ? &p->cache->next_sealing : NULL, eph_pk, eph_sk,
		                        rcpts[i]->seal_public, eph_pk, rcpts[i]->seal_public,
		                        prk)) != TERN_OK) {
			if (rc == TERN_ECRYPTO)
				rc = tern_fail(TERN_ECRYPTO,
				               "seal: %s's sealing key is a low-order point",
				               rcpts[i]->node_id);
			goto out;
		}
		rc = wrap_key_derive(prk, res->id, rcpts[i]->node_id, wrap_key);
		if (rc == TERN_OK)
			rc = tern_aead_seal(wrap_key, sizeof(wrap_key), zero_nonce,
			                    sizeof(zero_nonce), (const uint8_t *)rcpts[i]->node_id,
			                    strlen(rcpts[i]->node_id), content_key,
			                    sizeof(content_key), wrapped[i]);
		if (rc != TERN_OK)
			goto out;
		tern__v1__wrapped_key__init(&wk[i]);
		wk[i].recipient = (char *)rcpts[i]->node_id;
		wk[i].wrapped.data = wrapped[i];
		wk[i].wrapped.len = WRAPPED_LEN;
		wkp[i] = &wk[i];
	}

	sb.aead = TERN__V1__AEAD__CHACHA20_POLY1305;
	sb.ephemeral_key.data = eph_pk;
	sb.ephemeral_key.len = sizeof(eph_pk);
	sb.n_keys = p->n_recipients;
	sb.keys = wkp;
	sb.nonce.data = nonce;
	sb.nonce.len = sizeof(nonce);
	sb.ciphertext.data = ct;
	sb.ciphertext.len = p->body_len + TERN_AEAD_TAG_LEN;
	if ((rc = tern_pb_pack(&sb.base, &res->sealed, &res->sealed_len)) != TERN_OK)
		goto out;
	if ((rc = tern_sha256(res->sealed, res->sealed_len, digest)) != TERN_OK)
		goto out;

	h.body_digest.data = digest;
	h.body_digest.len = sizeof(digest);
	if ((rc = tern_pb_pack(&h.base, &res->header, &res->header_len)) != TERN_OK)
		goto out;
	/* Better refused here, with the sender told, than by every receiver;
	 * counted with the largest signature the envelope could get. */
	if (res->header_len + res->sealed_len + 16 + BATCH_SIG_MAX >
	    TERN_ENVELOPE_MAX_SIZE_DEFAULT) {
		rc = tern_fail(TERN_ETOOBIG,
		               "seal: envelope of about %zu bytes is over the %zu-byte limit",
		               res->header_len + res->sealed_len + BATCH_SIG_MAX,
		               (size_t)TERN_ENVELOPE_MAX_SIZE_DEFAULT);
		goto out;
	}
	if (message_id != NULL)
		memcpy(message_id, res->id, sizeof(res->id));
	*out = res;
	res = NULL;

out:
	sodium_memzero(content_key, sizeof(content_key));
	sodium_memzero(eph_sk, sizeof(eph_sk));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(wrap_key, sizeof(wrap_key));
	tern_sealed_free(&res);
	free(ct);
	aad_release(aad, aad_stack);
	return rc;
}

/* RFC 6962 leaf hash of what a lone signature signs: 0x00 || label || 0x00 || header. */
static void header_leaf(const uint8_t *header, size_t len, tern_hash out)
{
	static const uint8_t zero = 0x00;
	const tern_span s[3] = {
	    {&zero, 1},
	    {TERN_ENVELOPE_SIGN_LABEL, sizeof(TERN_ENVELOPE_SIGN_LABEL)}, /* NUL */
	    {header, len}};

	if (tern_sha256_spans(s, 3, out) != TERN_OK) {
		/* Not after initialisation; libsodium's portable code all the same. */
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, &zero, 1);
		crypto_hash_sha256_update(&st, (const uint8_t *)TERN_ENVELOPE_SIGN_LABEL,
		                          sizeof(TERN_ENVELOPE_SIGN_LABEL));
		crypto_hash_sha256_update(&st, header, len);
		crypto_hash_sha256_final(&st, out);
	}
}

/* What a batch signature signs after its label: be64(tree_size) || root. */
static void batch_signed_bytes(uint64_t size, const tern_hash root, uint8_t out[8 + TERN_HASH_LEN])
{
	tern_be64_put(out, size);
	memcpy(out + 8, root, TERN_HASH_LEN);
}

static int pack_envelope(const tern_sealed *s, Tern__V1__Signature *sig, uint8_t **out,
                         size_t *out_len)
{
	Tern__V1__Envelope e = TERN__V1__ENVELOPE__INIT;
	int rc;

	e.header.data = s->header;
	e.header.len = s->header_len;
	e.sealed_body.data = s->sealed;
	e.sealed_body.len = s->sealed_len;
	e.signature = sig;
	if ((rc = tern_pb_pack(&e.base, out, out_len)) != TERN_OK)
		return rc;
	if (*out_len > TERN_ENVELOPE_MAX_SIZE_DEFAULT) { /* seal_unsigned counted for this */
		free(*out);
		*out = NULL;
		return tern_fail(TERN_ETOOBIG, "envelope %s of %zu bytes is over the limit", s->id,
		                 *out_len);
	}
	return TERN_OK;
}

/* One chunk of at most TERN_ENVELOPE_MAX_BATCH (n >= 2) under one root. */
static int sign_chunk(tern_sealed *const *items, size_t n, const tern_signkey *key, uint8_t **outs,
                      size_t *out_lens)
{
	Tern__V1__Signature sig = TERN__V1__SIGNATURE__INIT;
	Tern__V1__BatchSignature bs = TERN__V1__BATCH_SIGNATURE__INIT;
	ProtobufCBinaryData pproof[TERN_MERKLE_MAX_PROOF];
	tern_hash *leaves = NULL, root, proof[TERN_MERKLE_MAX_PROOF];
	tern_merkle_tree *tree = NULL;
	uint8_t sigbytes[TERN_ED25519_SIG_LEN], msg[8 + TERN_HASH_LEN];
	size_t plen;
	int rc;

	if ((leaves = malloc(n * sizeof(*leaves))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory signing a batch");
	for (size_t i = 0; i < n; i++)
		header_leaf(items[i]->header, items[i]->header_len, leaves[i]);
	if ((rc = tern_merkle_tree_build(leaves, n, &tree)) != TERN_OK)
		goto out;
	tern_merkle_tree_root(tree, root);
	batch_signed_bytes(n, root, msg);
	if ((rc = tern_sign(key, TERN_ENVELOPE_BATCH_LABEL, msg, sizeof(msg), sigbytes)) != TERN_OK)
		goto out;
	sig.kind_case = TERN__V1__SIGNATURE__KIND_BATCH;
	sig.batch = &bs;
	bs.root_signature.data = sigbytes;
	bs.root_signature.len = sizeof(sigbytes);
	bs.tree_size = n;
	bs.inclusion_proof = pproof;
	for (size_t i = 0; i < n; i++) {
		if ((rc = tern_merkle_tree_inclusion_proof(tree, i, proof, &plen)) != TERN_OK)
			goto out;
		for (size_t j = 0; j < plen; j++)
			pproof[j] = (ProtobufCBinaryData){TERN_HASH_LEN, proof[j]};
		bs.leaf_index = i;
		bs.n_inclusion_proof = plen;
		if ((rc = pack_envelope(items[i], &sig, &outs[i], &out_lens[i])) != TERN_OK)
			goto out;
	}
out:
	tern_merkle_tree_free(&tree);
	free(leaves);
	return rc;
}

int tern_envelope_sign(tern_sealed *const *items, size_t n, const tern_signkey *key, uint8_t **outs,
                       size_t *out_lens)
{
	int rc = TERN_OK;

	if (items == NULL || key == NULL || outs == NULL || out_lens == NULL || n == 0)
		return tern_fail(TERN_EINVAL, "sign: missing parameter");
	for (size_t i = 0; i < n; i++)
		outs[i] = NULL;
	for (size_t i = 0; i < n; i++) {
		if (items[i] == NULL)
			return tern_fail(TERN_EINVAL, "sign: missing envelope %zu", i);
		/* seal_unsigned checked the sender against this key, not another. */
		if (sodium_memcmp(items[i]->signer, tern_signkey_public(key),
		                  TERN_ED25519_PUBLIC_LEN) != 0)
			return tern_fail(TERN_EINVAL,
			                 "sign: envelope %s was sealed for another key",
			                 items[i]->id);
	}
	if (n == 1) {
		Tern__V1__Signature sig = TERN__V1__SIGNATURE__INIT;
		uint8_t sigbytes[TERN_ED25519_SIG_LEN];
		if ((rc = tern_sign(key, TERN_ENVELOPE_SIGN_LABEL, items[0]->header,
		                    items[0]->header_len, sigbytes)) != TERN_OK)
			return rc;
		sig.kind_case = TERN__V1__SIGNATURE__KIND_ED25519;
		sig.ed25519.data = sigbytes;
		sig.ed25519.len = sizeof(sigbytes);
		return pack_envelope(items[0], &sig, &outs[0], &out_lens[0]);
	}
	for (size_t i = 0; i < n && rc == TERN_OK; i += TERN_ENVELOPE_MAX_BATCH) {
		size_t c = n - i < TERN_ENVELOPE_MAX_BATCH ? n - i : TERN_ENVELOPE_MAX_BATCH;
		/* A lone leftover needs no tree: it gets a lone signature, which
		 * every verifier already accepts. */
		rc = c == 1 ? tern_envelope_sign(items + i, 1, key, outs + i, out_lens + i)
		            : sign_chunk(items + i, c, key, outs + i, out_lens + i);
	}
	if (rc != TERN_OK)
		for (size_t i = 0; i < n; i++) {
			free(outs[i]);
			outs[i] = NULL;
		}
	return rc;
}

int tern_envelope_seal(const tern_seal_params *p, const tern_directory *dir, uint8_t **out,
                       size_t *out_len, char message_id[37])
{
	tern_sealed *s = NULL;
	int rc;

	if (out == NULL || out_len == NULL)
		return tern_fail(TERN_EINVAL, "seal: missing parameter");
	if ((rc = tern_envelope_seal_unsigned(p, dir, &s, message_id)) != TERN_OK)
		return rc;
	rc = tern_envelope_sign(&s, 1, p->sign_key, out, out_len);
	tern_sealed_free(&s);
	return rc;
}

/* Verified batch roots. A slot holds SHA-256(signer || size || root ||
 * signature) of a signature that verified: a hit needs all four to match,
 * so nothing unverified can ride on an entry. */
struct tern_sigcache {
	size_t nslots;
	uint64_t hits, misses;
	tern_hash slot[];
};

int tern_sigcache_new(size_t slots, tern_sigcache **out)
{
	tern_sigcache *c;

	if (out == NULL)
		return tern_fail(TERN_EINVAL, "sigcache: missing parameter");
	*out = NULL;
	if (slots == 0)
		slots = TERN_SIGCACHE_SLOTS_DEFAULT;
	if (slots > (1u << 24))
		return tern_fail(TERN_EINVAL, "sigcache: %zu slots is too many", slots);
	if ((c = calloc(1, sizeof(*c) + slots * sizeof(tern_hash))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory for a signature cache");
	c->nslots = slots;
	*out = c;
	return TERN_OK;
}

void tern_sigcache_free(tern_sigcache **c)
{
	if (c == NULL || *c == NULL)
		return;
	free(*c);
	*c = NULL;
}

void tern_sigcache_stats(const tern_sigcache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}

/* The batch signature of an envelope: its root from the inclusion proof,
 * then the root's signature, from the cache or verified and remembered. */
static int batch_verify(const Tern__V1__BatchSignature *bs, const uint8_t *header,
                        size_t header_len, const tern_member *sender, tern_sigcache *cache,
                        const char *mid)
{
	tern_hash leaf, root, proof[TERN_MERKLE_MAX_PROOF], key;
	uint8_t msg[8 + TERN_HASH_LEN];
	crypto_hash_sha256_state st;
	tern_hash *slot = NULL;

	for (size_t i = 0; i < bs->n_inclusion_proof; i++)
		memcpy(proof[i], bs->inclusion_proof[i].data, TERN_HASH_LEN);
	header_leaf(header, header_len, leaf);
	if (tern_merkle_root_from_inclusion(bs->leaf_index, bs->tree_size, leaf,
	                                    (const tern_hash *)proof, bs->n_inclusion_proof,
	                                    root) != TERN_OK)
		return tern_fail(TERN_EBADSIG,
		                 "message %s: the batch proof does not fit a tree of %llu", mid,
		                 (unsigned long long)bs->tree_size);
	batch_signed_bytes(bs->tree_size, root, msg);
	if (cache != NULL) {
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, sender->sign_public, TERN_ED25519_PUBLIC_LEN);
		crypto_hash_sha256_update(&st, msg, sizeof(msg));
		crypto_hash_sha256_update(&st, bs->root_signature.data, TERN_ED25519_SIG_LEN);
		crypto_hash_sha256_final(&st, key);
		slot = &cache->slot[tern_be64_get(key) % cache->nslots];
		if (sodium_memcmp(*slot, key, TERN_HASH_LEN) == 0) {
			cache->hits++;
			return TERN_OK;
		}
		cache->misses++;
	}
	if (tern_verify(sender->sign_public, TERN_ENVELOPE_BATCH_LABEL, msg, sizeof(msg),
	                bs->root_signature.data) != TERN_OK)
		return tern_fail(TERN_EBADSIG, "message %s: batch signature by %s does not verify",
		                 mid, sender->node_id);
	if (slot != NULL)
		memcpy(*slot, key, TERN_HASH_LEN);
	return TERN_OK;
}

/* The shape of a batch signature, before anything is hashed. */
static int batch_check(const Tern__V1__BatchSignature *bs)
{
	if (bs->root_signature.len != TERN_ED25519_SIG_LEN)
		return tern_fail(TERN_EMALFORMED, "batch signature of %zu bytes",
		                 bs->root_signature.len);
	if (bs->tree_size < 1 || bs->tree_size > TERN_ENVELOPE_MAX_BATCH ||
	    bs->leaf_index >= bs->tree_size)
		return tern_fail(TERN_EMALFORMED, "batch of %llu, leaf %llu",
		                 (unsigned long long)bs->tree_size,
		                 (unsigned long long)bs->leaf_index);
	if (bs->n_inclusion_proof > TERN_ENVELOPE_MAX_BATCH_DEPTH)
		return tern_fail(TERN_EMALFORMED, "batch proof of %zu hashes",
		                 bs->n_inclusion_proof);
	for (size_t i = 0; i < bs->n_inclusion_proof; i++)
		if (bs->inclusion_proof[i].len != TERN_HASH_LEN)
			return tern_fail(TERN_EMALFORMED, "batch proof hash of %zu bytes",
			                 bs->inclusion_proof[i].len);
	return TERN_OK;
}

int tern_envelope_verify(const uint8_t *buf, size_t len, const tern_directory *dir,
                         const tern_verify_opts *opts, tern_envelope **out)
{
	size_t max_size = TERN_ENVELOPE_MAX_SIZE_DEFAULT;
	int64_t now, skew = TERN_ENVELOPE_MAX_SKEW_MS_DEFAULT;
	int future_only;
	ProtobufCMessage *m = NULL;
	Tern__V1__Envelope *e;
	Tern__V1__Header *h;
	tern_envelope *env;
	const tern_member *sender;
	uint8_t digest[TERN_SHA256_LEN];
	int rc;

	if ((buf == NULL && len > 0) || dir == NULL || out == NULL)
		return tern_fail(TERN_EINVAL, "verify: missing parameter");
	if ((rc = tern_crypto_init()) != TERN_OK)
		return rc;
	if (opts != NULL && opts->max_size > 0)
		max_size = opts->max_size;
	if (opts != NULL && opts->max_skew_ms > 0)
		skew = opts->max_skew_ms;
	future_only = opts != NULL && opts->future_skew_only;
	now = opts != NULL && opts->now_ms ? opts->now_ms : tern_now_ms();

	if (len > max_size)
		return tern_fail(TERN_ETOOBIG, "envelope of %zu bytes is over the limit of %zu",
		                 len, max_size);
	if ((env = calloc(1, sizeof(*env))) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory verifying an envelope");

	if ((rc = tern_pb_unpack(&tern__v1__envelope__descriptor, buf, len, max_size, &m)) !=
	    TERN_OK)
		goto fail;
	env->env = e = (Tern__V1__Envelope *)m;
	if (e->header.len == 0 || e->sealed_body.len == 0 || e->signature == NULL ||
	    e->signature->kind_case == TERN__V1__SIGNATURE__KIND__NOT_SET) {
		rc = tern_fail(TERN_EMALFORMED, "envelope lacks its header, body or signature");
		goto fail;
	}
	if (e->signature->kind_case == TERN__V1__SIGNATURE__KIND_ED25519 &&
	    e->signature->ed25519.len != TERN_ED25519_SIG_LEN) {
		rc = tern_fail(TERN_EMALFORMED, "Ed25519 signature of %zu bytes",
		               e->signature->ed25519.len);
		goto fail;
	}
	if (e->signature->kind_case == TERN__V1__SIGNATURE__KIND_BATCH &&
	    (e->signature->batch == NULL || (rc = batch_check(e->signature->batch)) != TERN_OK)) {
		rc = e->signature->batch == NULL
		         ? tern_fail(TERN_EMALFORMED, "empty batch signature")
		         : rc;
		goto fail;
	}
	m = NULL;
	/* Canonical form: what every reader decodes from the signed bytes is
	 * exactly what is checked here and bound into the body's AAD. */
	rc = tern_pb_unpack_canonical(&tern__v1__header__descriptor, e->header.data, e->header.len,
	                              TERN_ENVELOPE_HEADER_MAX, &m);
	if (rc != TERN_OK) {
		/* A shortage is no verdict on the header: the caller tries again. */
		rc = refail(rc == TERN_ENOMEM ? TERN_ENOMEM : TERN_EMALFORMED, "envelope header");
		goto fail;
	}
	env->hdr = h = (Tern__V1__Header *)m;
	if ((rc = header_check(h)) != TERN_OK)
		goto fail;
	if (h->body_digest.len != TERN_SHA256_LEN) {
		rc = tern_fail(TERN_EMALFORMED, "message %s: body digest of %zu bytes",
		               h->message_id, h->body_digest.len);
		goto fail;
	}

	if (h->schema_version != TERN_ENVELOPE_SCHEMA_VERSION) {
		rc = tern_fail(TERN_EVERSION,
		               "message %s has schema version %u (this node speaks 1)",
		               h->message_id, h->schema_version);
		goto fail;
	}

	if (opts != NULL && opts->accepted_digest != NULL) {
		/* Accepted before, after every check: if these are still the
		 * bytes, the sender's standing and key since are not theirs to
		 * undo. The sealed body is still checked against its digest. */
		if ((rc = tern_sha256(buf, len, digest)) != TERN_OK)
			goto fail;
		if (sodium_memcmp(digest, opts->accepted_digest, TERN_SHA256_LEN) == 0) {
			if (tern_directory_find(dir, h->sender, &sender) != TERN_OK)
				sender = NULL;
			goto body;
		}
	}
	if (tern_directory_find(dir, h->sender, &sender) != TERN_OK) {
		rc = tern_fail(TERN_EUNKNOWN, "message %s: sender %s is not in the directory",
		               h->message_id, h->sender);
		goto fail;
	}
	if (sender->revoked) {
		rc = tern_fail(TERN_EREVOKED, "message %s: sender %s is revoked", h->message_id,
		               h->sender);
		goto fail;
	}
	if (tern_member_expired(sender, now / 1000)) {
		rc = tern_fail(TERN_EEXPIRED, "message %s: sender %s's certificate has expired",
		               h->message_id, h->sender);
		goto fail;
	}
	if (tern_directory_crl_next_update(dir) &&
	    now / 1000 > tern_directory_crl_next_update(dir)) {
		rc = tern_fail(TERN_EEXPIRED,
		               "message %s: the federation CRL has expired; install the CA's new "
		               "crl.pem and reload",
		               h->message_id);
		goto fail;
	}
	/* Over the header bytes as received: never a re-serialization. */
	if (e->signature->kind_case == TERN__V1__SIGNATURE__KIND_BATCH) {
		if ((rc = batch_verify(e->signature->batch, e->header.data, e->header.len, sender,
		                       opts ? opts->sigcache : NULL, h->message_id)) != TERN_OK)
			goto fail;
	} else if ((rc = tern_verify(sender->sign_public, TERN_ENVELOPE_SIGN_LABEL, e->header.data,
	                             e->header.len, e->signature->ed25519.data)) != TERN_OK) {
		/* A header over 1 KiB is copied to the heap to be verified: no
		 * memory for that says nothing of the signature. */
		rc = rc == TERN_ENOMEM
		         ? tern_fail(rc, "message %s: out of memory verifying its signature",
		                     h->message_id)
		         : tern_fail(TERN_EBADSIG, "message %s: signature by %s does not verify",
		                     h->message_id, h->sender);
		goto fail;
	}
body:
	if ((rc = tern_sha256(e->sealed_body.data, e->sealed_body.len, digest)) != TERN_OK)
		goto fail;
	if (sodium_memcmp(digest, h->body_digest.data, TERN_SHA256_LEN) != 0) {
		rc = tern_fail(TERN_EDIGEST, "message %s: sealed body does not match its digest",
		               h->message_id);
		goto fail;
	}
	/* Written so that neither subtraction can overflow on hostile values. */
	if ((h->created_at > now && (uint64_t)h->created_at - (uint64_t)now > (uint64_t)skew) ||
	    (!future_only && h->created_at < now &&
	     (uint64_t)now - (uint64_t)h->created_at > (uint64_t)skew)) {
		rc = tern_fail(TERN_ESKEW,
		               "message %s: created at %lld ms, this node's clock reads %lld ms "
		               "(at most %lld ms apart)",
		               h->message_id, (long long)h->created_at, (long long)now,
		               (long long)skew);
		goto fail;
	}
	env->sender = sender;
	*out = env;
	return TERN_OK;

fail:
	tern_envelope_free(&env);
	return rc;
}

const Tern__V1__Header *tern_envelope_header(const tern_envelope *env)
{
	return env->hdr;
}

const tern_member *tern_envelope_sender(const tern_envelope *env)
{
	return env->sender;
}

void tern_envelope_raw(const tern_envelope *env, const uint8_t **header, size_t *header_len,
                       const uint8_t **sealed_body, size_t *sealed_len)
{
	if (header)
		*header = env->env->header.data;
	if (header_len)
		*header_len = env->env->header.len;
	if (sealed_body)
		*sealed_body = env->env->sealed_body.data;
	if (sealed_len)
		*sealed_len = env->env->sealed_body.len;
}

int tern_envelope_authorize(const tern_envelope *env)
{
	const tern_msgtype *t = tern_msgtype_by_type(env->hdr->type);
	char roles[64];

	if (t == NULL)
		return tern_fail(TERN_EMALFORMED, "message %s has unknown type %d",
		                 env->hdr->message_id, (int)env->hdr->type);
	if (env->sender == NULL)
		return tern_fail(TERN_EROLE, "message %s: its sender %s has left the directory",
		                 env->hdr->message_id, env->hdr->sender);
	if (t->sender_roles != 0 && (env->sender->roles & t->sender_roles) == 0) {
		tern_roles_format(env->sender->roles, roles, sizeof(roles));
		return tern_fail(TERN_EROLE, "message %s: %s (roles: %s) may not send %s",
		                 env->hdr->message_id, env->sender->node_id,
		                 roles[0] ? roles : "none", t->name);
	}
	return TERN_OK;
}

/* The one wrapped key for self_id, or NULL (TERN_ENOTRCPT / TERN_EMALFORMED in *rc). */
static const Tern__V1__WrappedKey *find_wrapped(const Tern__V1__SealedBody *sb, const char *self_id,
                                                const char *mid, int *rc)
{
	const Tern__V1__WrappedKey *found = NULL;

	for (size_t i = 0; i < sb->n_keys; i++) {
		if (strcmp(sb->keys[i]->recipient, self_id) != 0)
			continue;
		if (found != NULL) {
			*rc = tern_fail(TERN_EMALFORMED, "message %s: two wrapped keys for %s", mid,
			                self_id);
			return NULL;
		}
		found = sb->keys[i];
	}
	if (found == NULL)
		*rc =
		    tern_fail(TERN_ENOTRCPT, "message %s has no wrapped key for %s", mid, self_id);
	else if (found->wrapped.len != WRAPPED_LEN)
		*rc = tern_fail(TERN_EMALFORMED, "message %s: wrapped key of %zu bytes", mid,
		                found->wrapped.len);
	else
		return found;
	return NULL;
}

int tern_envelope_open(const tern_envelope *env, const char *self_id, const tern_sealkey *key,
                       uint8_t **body, size_t *body_len)
{
	return tern_envelope_open_cached(env, self_id, key, NULL, body, body_len);
}

/* Opens the body (body != NULL) or only unwraps the content key into ck_out. */
static int open_body(const tern_envelope *env, const char *self_id, const tern_sealkey *key,
                     tern_sealcache *cache, uint8_t **body, size_t *body_len, uint8_t *ck_out);

int tern_envelope_open_cached(const tern_envelope *env, const char *self_id,
                              const tern_sealkey *key, tern_sealcache *cache, uint8_t **body,
                              size_t *body_len)
{
	if (body == NULL || body_len == NULL)
		return tern_fail(TERN_EINVAL, "open: missing parameter");
	return open_body(env, self_id, key, cache, body, body_len, NULL);
}

int tern_envelope_content_key(const tern_envelope *env, const char *self_id,
                              const tern_sealkey *key, tern_sealcache *cache, uint8_t out[32])
{
	if (out == NULL)
		return tern_fail(TERN_EINVAL, "open: missing parameter");
	return open_body(env, self_id, key, cache, NULL, NULL, out);
}

static int open_body(const tern_envelope *env, const char *self_id, const tern_sealkey *key,
                     tern_sealcache *cache, uint8_t **body, size_t *body_len, uint8_t *ck_out)
{
	const Tern__V1__Header *h;
	const Tern__V1__WrappedKey *wk;
	ProtobufCMessage *m = NULL;
	Tern__V1__SealedBody *sb;
	uint8_t prk[32], wrap_key[CONTENT_KEY_LEN], content_key[CONTENT_KEY_LEN];
	uint8_t aad_stack[AAD_STACK], *aad = aad_stack;
	uint8_t *pt = NULL;
	size_t aad_len = 0, ck_len, pt_len, i;
	int rc;

	if (env == NULL || self_id == NULL || key == NULL)
		return tern_fail(TERN_EINVAL, "open: missing parameter");
	h = env->hdr;
	for (i = 0; i < h->n_recipients; i++)
		if (strcmp(h->recipients[i], self_id) == 0)
			break;
	if (i == h->n_recipients)
		return tern_fail(TERN_ENOTRCPT, "message %s is not addressed to %s", h->message_id,
		                 self_id);

	rc =
	    tern_pb_unpack_canonical(&tern__v1__sealed_body__descriptor, env->env->sealed_body.data,
	                             env->env->sealed_body.len, env->env->sealed_body.len, &m);
	if (rc == TERN_ENOMEM)
		return tern_fail(TERN_ENOMEM, "message %s: out of memory decoding its sealed body",
		                 h->message_id);
	if (rc != TERN_OK)
		return tern_fail(TERN_EMALFORMED, "message %s: sealed body does not decode",
		                 h->message_id);
	sb = (Tern__V1__SealedBody *)m;
	if (sb->aead != TERN__V1__AEAD__CHACHA20_POLY1305 || sb->ephemeral_key.len != 32 ||
	    sb->nonce.len != TERN_AEAD_NONCE_LEN || sb->ciphertext.len < TERN_AEAD_TAG_LEN) {
		rc = tern_fail(TERN_EMALFORMED,
		               "message %s: sealed body lacks its algorithm, key, nonce or tag",
		               h->message_id);
		goto out;
	}
	if ((wk = find_wrapped(sb, self_id, h->message_id, &rc)) == NULL)
		goto out;

	if ((rc = sealcache_prk(
	         cache, cache ? cache->opening : NULL, cache ? &cache->next_opening : NULL,
	         tern_sealkey_public(key), tern_sealkey_secret(key), sb->ephemeral_key.data,
	         sb->ephemeral_key.data, tern_sealkey_public(key), prk)) != TERN_OK) {
		if (rc == TERN_ECRYPTO)
			rc = tern_fail(TERN_EDECRYPT,
			               "message %s: ephemeral key is a low-order point",
			               h->message_id);
		goto out;
	}
	if ((rc = wrap_key_derive(prk, h->message_id, self_id, wrap_key)) != TERN_OK)
		goto out;
	if (tern_aead_open(wrap_key, sizeof(wrap_key), zero_nonce, sizeof(zero_nonce),
	                   (const uint8_t *)self_id, strlen(self_id), wk->wrapped.data,
	                   wk->wrapped.len, content_key, &ck_len) != TERN_OK) {
		rc = tern_fail(TERN_EDECRYPT,
		               "message %s: the content key does not unwrap for %s (wrong key?)",
		               h->message_id, self_id);
		goto out;
	}
	if (ck_out != NULL) {
		memcpy(ck_out, content_key, sizeof(content_key));
		rc = TERN_OK;
		goto out;
	}

	if ((rc = header_aad(h, aad_stack, &aad, &aad_len)) != TERN_OK)
		goto out;
	/* One spare byte so that an empty body is still a real allocation. */
	if ((pt = malloc(sb->ciphertext.len - TERN_AEAD_TAG_LEN + 1)) == NULL) {
		rc = tern_fail(TERN_ENOMEM, "message %s: out of memory opening its body",
		               h->message_id);
		goto out;
	}
	if (tern_aead_open(content_key, sizeof(content_key), sb->nonce.data, sb->nonce.len, aad,
	                   aad_len, sb->ciphertext.data, sb->ciphertext.len, pt,
	                   &pt_len) != TERN_OK) {
		rc = tern_fail(TERN_EDECRYPT, "message %s: body does not authenticate",
		               h->message_id);
		goto out;
	}
	*body = pt;
	*body_len = pt_len;
	pt = NULL;
	rc = TERN_OK;

out:
	/* tern_aead_open has already zeroed pt on failure. */
	free(pt);
	aad_release(aad, aad_stack);
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(wrap_key, sizeof(wrap_key));
	sodium_memzero(content_key, sizeof(content_key));
	tern_pb_free(&m);
	return rc;
}

void tern_envelope_body_free(uint8_t **body, size_t body_len)
{
	if (body == NULL || *body == NULL)
		return;
	sodium_memzero(*body, body_len);
	free(*body);
	*body = NULL;
}

void tern_envelope_free(tern_envelope **env)
{
	ProtobufCMessage *m;

	if (env == NULL || *env == NULL)
		return;
	m = (ProtobufCMessage *)(*env)->hdr;
	tern_pb_free(&m);
	m = (ProtobufCMessage *)(*env)->env;
	tern_pb_free(&m);
	free(*env);
	*env = NULL;
}

static int printable(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] && i < max; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return s[i] == '\0' && i > 0;
}

int tern_envelope_claims(const uint8_t *buf, size_t len, tern_envelope_claim *out)
{
	ProtobufCMessage *em = NULL, *hm = NULL;
	const Tern__V1__Header *h;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = tern_pb_unpack(&tern__v1__envelope__descriptor, buf, len, len, &em)) != TERN_OK ||
	    (rc = tern_pb_unpack(&tern__v1__header__descriptor,
	                         ((Tern__V1__Envelope *)em)->header.data,
	                         ((Tern__V1__Envelope *)em)->header.len, 65536, &hm)) != TERN_OK) {
		tern_pb_free(&em);
		return TERN_EMALFORMED;
	}
	h = (const Tern__V1__Header *)hm;
	if (tern_uuid_valid(h->message_id))
		snprintf(out->message_id, sizeof(out->message_id), "%s", h->message_id);
	if (tern_node_id_valid(h->sender) && strlen(h->sender) < sizeof(out->sender))
		snprintf(out->sender, sizeof(out->sender), "%s", h->sender);
	if (printable(h->case_id, sizeof(out->case_id) - 1))
		snprintf(out->case_id, sizeof(out->case_id), "%s", h->case_id);
	tern_pb_free(&hm);
	tern_pb_free(&em);
	return TERN_OK;
}

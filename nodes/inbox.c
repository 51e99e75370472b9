/* What the node shows from its inbox (inbox.show, inbox.next, attachment.get):
 * a message it accepted, its envelope verified again on the way out, since
 * the store is trusted no more than the wire.
 *
 * Verified again against today's directory, a message whose sender has
 * since been revoked, expired, left the directory or replaced its key would
 * no longer verify, though it was verified, accepted and receipted when it
 * came: the agency could never read it, and, at the head of the inbox, it
 * would hide every message behind it from inbox.next. So when the full
 * check fails for the sender's standing or key, the envelope is checked
 * against the tag kept when it was accepted (ReceivedRecord.envelope_tag):
 * an HMAC of the message id and the envelope's digest under a key derived
 * from this node's sealing key, which is not in the store. Someone who can
 * write the store but not read the node's key cannot make one, so cannot
 * pass off an envelope of their own as one the node verified.
 *
 * Touches: reads the store (NS_RECEIVED, NS_INENV) in the caller's txn;
 * n->inbox_key, n->unshown.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/trust.h>

#include "node_int.h"
#include "record.h"

#define INBOX_TAG_LABEL "tern inbox record tag v1"

int node_inbox_tag(node *n, const char *msgid, const uint8_t digest[32], uint8_t tag[32])
{
	crypto_auth_hmacsha256_state st;
	int rc;

	if (!n->inbox_key_set) {
		if ((rc = tern_hkdf_sha256(NULL, 0, tern_sealkey_secret(n->id.seal),
		                           TERN_X25519_LEN, (const uint8_t *)INBOX_TAG_LABEL,
		                           sizeof(INBOX_TAG_LABEL) - 1, n->inbox_key,
		                           sizeof(n->inbox_key))) != TERN_OK)
			return rc;
		n->inbox_key_set = 1;
	}
	/* libsodium's HMAC keeps its state on the stack: nothing to run out of. */
	crypto_auth_hmacsha256_init(&st, n->inbox_key, sizeof(n->inbox_key));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)msgid, strlen(msgid) + 1);
	crypto_auth_hmacsha256_update(&st, digest, 32);
	crypto_auth_hmacsha256_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
	return TERN_OK;
}

/* What sender_standing says for a full check's code; NULL for a code that
 * is no change of the sender's (the fallback is not for it). */
static const char *node_standing_name(int rc)
{
	switch (rc) {
	case TERN_EREVOKED:
		return "revoked";
	case TERN_EEXPIRED:
		return "expired";
	case TERN_EBADSIG:
		return "key-replaced";
	case TERN_EUNKNOWN:
		return "left-directory";
	default:
		return NULL;
	}
}

/* What changed of sender since it sent (rc: its envelope's full check),
 * as sender_standing says it, in *name; NULL when what changed forbids
 * showing it: a revocation for a compromise of its key (or for a reason
 * that does not say the key was safe), since the key may have signed what
 * its holder never sent. A lapsed CRL (this node's trust material out of
 * date) is not the sender's doing. TERN_ENOMEM when the CRL could not be
 * read for want of memory: no verdict. */
static int standing_of(node *n, const char *sender, int rc, const char **name)
{
	const tern_member *m = NULL;
	int compromised = 1, trc;

	*name = NULL;
	if (tern_directory_find(n->id.dir, sender, &m) != TERN_OK)
		m = NULL;
	if (rc == TERN_EREVOKED) {
		if (m == NULL)
			return TERN_OK; /* no certificate to read a reason of: as compromised */
		trc = tern_trust_revoked_compromised(n->id.trust, m->cert_der, m->cert_len,
		                                     &compromised);
		if (trc == TERN_ENOMEM)
			return trc;
		if (trc == TERN_OK && !compromised)
			*name = node_standing_name(rc);
		return TERN_OK;
	}
	if (rc == TERN_EEXPIRED && m != NULL && !tern_member_expired(m, tern_now_ms() / 1000))
		*name = "crl-lapsed";
	else
		*name = node_standing_name(rc);
	return TERN_OK;
}

/* Whether buf is the envelope the node accepted as msgid: its tag, made
 * again, is the one the record keeps. */
static int tag_matches(node *n, const node_recv_rec *rec, const char *msgid, const uint8_t *buf,
                       size_t len, uint8_t digest[32])
{
	uint8_t tag[32];

	if (rec->envelope_tag.len != sizeof(tag) || tern_sha256(buf, len, digest) != TERN_OK ||
	    node_inbox_tag(n, msgid, digest, tag) != TERN_OK)
		return 0;
	return sodium_memcmp(tag, rec->envelope_tag.data, sizeof(tag)) == 0;
}

int node_inbox_envelope(node *n, MDB_txn *txn, const char *msgid, tern_envelope **env,
                        const char **standing, int64_t *received_at)
{
	tern_verify_opts o = {
	    .max_size = (size_t)n->max_msg, .future_skew_only = 1, .max_skew_ms = INT64_MAX / 4};
	node_recv_rec *rec = NULL;
	uint8_t *buf = NULL, digest[32];
	const char *changed;
	size_t len = 0;
	int rc, rc2;

	*env = NULL;
	*standing = NULL;
	if ((rc = node_store_recv_rec(txn, n->store, msgid, &rec)) != TERN_OK)
		return rc;
	if (!rec->accepted) {
		rc = tern_fail(TERN_ENOENT, "%s was refused, not taken into the inbox", msgid);
		goto out;
	}
	if (received_at)
		*received_at = rec->received_at;
	if ((rc = node_store_received_envelope(txn, n->store, msgid, &buf, &len)) != TERN_OK)
		goto out;
	/* A record with a tag vouches for its envelope on every path: bytes
	 * swapped at rest for another genuine envelope are refused too. */
	if (rec->envelope_tag.len > 0 && !tag_matches(n, rec, msgid, buf, len, digest)) {
		rc = tern_fail(TERN_EBADSIG,
		               "message %s: its stored envelope is not the one this node accepted",
		               msgid);
		goto out;
	}
	rc = tern_envelope_verify(buf, len, n->id.dir, &o, env);
	if (rc == TERN_OK)
		goto same_id;
	if (node_standing_name(rc) == NULL || rec->envelope_tag.len == 0)
		goto out;
	if ((rc2 = standing_of(n, rec->sender, rc, &changed)) != TERN_OK) {
		rc = rc2;
		goto out;
	}
	if (changed == NULL) {
		rc = tern_fail(TERN_EREVOKED,
		               "message %s: its sender %s was revoked as compromised (or for no "
		               "reason given) after this node accepted it: not shown; inbox.ack "
		               "removes it",
		               msgid, rec->sender);
		goto out;
	}
	o.accepted_digest = digest;
	if ((rc = tern_envelope_verify(buf, len, n->id.dir, &o, env)) != TERN_OK)
		goto out;
	*standing = changed;
same_id:
	/* Without a tag (a record of an older release), the id is what ties
	 * the envelope to the record. */
	if (strcmp(tern_envelope_header(*env)->message_id, msgid) != 0) {
		rc = tern_fail(TERN_EBADSIG, "message %s: its stored envelope is message %s", msgid,
		               tern_envelope_header(*env)->message_id);
		tern_envelope_free(env);
		*standing = NULL;
	}
out:
	free(buf);
	node_rec_recv_free(&rec);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int node_unshown_has(const node *n, const char *msgid)
{
	return n->nunshown > 0 &&
	       bsearch(msgid, n->unshown, n->nunshown, sizeof(n->unshown[0]), id_cmp) != NULL;
}

int node_unshown_add(node *n, const char *msgid)
{
	size_t lo = 0, hi = n->nunshown;

	if (strlen(msgid) >= sizeof(n->unshown[0]) || node_unshown_has(n, msgid))
		return 0;
	if (n->nunshown == n->unshown_cap) {
		size_t cap = n->unshown_cap ? 2 * n->unshown_cap : 64;
		char(*p)[37];
		if (cap > NODE_UNSHOWN_MAX || (p = realloc(n->unshown, cap * sizeof(*p))) == NULL)
			return 1; /* not remembered: looked at again next time */
		n->unshown = p;
		n->unshown_cap = cap;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(n->unshown[mid], msgid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(n->unshown[lo + 1], n->unshown[lo], (n->nunshown - lo) * sizeof(n->unshown[0]));
	snprintf(n->unshown[lo], sizeof(n->unshown[0]), "%s", msgid);
	n->nunshown++;
	return 1;
}

void node_unshown_clear(node *n)
{
	free(n->unshown);
	n->unshown = NULL;
	n->nunshown = n->unshown_cap = 0;
	n->inbox_gen++; /* what was passed over is looked at again */
}

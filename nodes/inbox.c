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
 * against the digest kept when it was accepted (ReceivedRecord.
 * envelope_digest): the same bytes were verified then, and the answer says
 * what changed since.
 *
 * Touches: reads the store (NS_RECEIVED, NS_INENV) in the caller's txn.
 */
#include <stdlib.h>
#include <string.h>

#include <tern/envelope.h>
#include <tern/error.h>

#include "node_int.h"
#include "record.h"

const char *node_standing_name(int rc)
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

int node_inbox_envelope(node *n, MDB_txn *txn, const char *msgid, tern_envelope **env,
                        const char **standing)
{
	tern_verify_opts o = {
	    .max_size = (size_t)n->max_msg, .future_skew_only = 1, .max_skew_ms = INT64_MAX / 4};
	node_recv_rec *rec = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	*env = NULL;
	*standing = NULL;
	if ((rc = node_store_recv_rec(txn, n->store, msgid, &rec)) != TERN_OK)
		return rc;
	if (!rec->accepted) {
		rc = tern_fail(TERN_ENOENT, "%s was refused, not taken into the inbox", msgid);
		goto out;
	}
	if ((rc = node_store_received_envelope(txn, n->store, msgid, &buf, &len)) != TERN_OK)
		goto out;
	rc = tern_envelope_verify(buf, len, n->id.dir, &o, env);
	if (node_standing_name(rc) != NULL && rec->envelope_digest.len == 32) {
		int standing_rc = rc;
		o.accepted_digest = rec->envelope_digest.data;
		if ((rc = tern_envelope_verify(buf, len, n->id.dir, &o, env)) == TERN_OK)
			*standing = node_standing_name(standing_rc);
	}
out:
	free(buf);
	node_rec_recv_free(&rec);
	return rc;
}

/* Received attachments at rest (docs/attachments.md): read back from the
 * spool for the inbox's clients (attachment.get: opened a piece at a time,
 * never kept in the clear), and removed once their message is acknowledged
 * and [delivery] attachment_retain has passed, or when nothing names them.
 *
 * Touches: spool/in (reads; removes files of no transfer under way). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/error.h>
#include <tern/log.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "pbuf.h"
#include "syncer.h"
#include "util.h"

/* Most bytes one attachment.get answers. */
#define GET_MAX (4u << 20)

void node_xin_sweep(node *n, int64_t now)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	DIR *d;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "%s/spool/in", n->data_dir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char id[37];
		json_t *rec = NULL;
		MDB_txn *txn;
		int keep = 1, rc;
		if (strlen(e->d_name) < 38 || e->d_name[36] != '.')
			continue;
		memcpy(id, e->d_name, 36);
		id[36] = '\0';
		if (!tern_uuid_valid(id) || node_xin_active(n, id))
			continue;
		if (tern_store_read_begin(n->store, &txn) != TERN_OK)
			break;
		/* A transfer the store holds but memory does not (not started
		 * yet, for want of memory): its spool is its progress. */
		if (node_store_xin_has(txn, n->store, id)) {
			mdb_txn_abort(txn);
			continue;
		}
		rc = node_store_received(txn, n->store, id, &rec);
		mdb_txn_abort(txn);
		/* A record not read for want of memory is no sign that the
		 * message is gone: its file waits for a later sweep. */
		if (rc != TERN_OK && rc != TERN_ENOENT && rc != TERN_EMALFORMED)
			continue;
		if (rc != TERN_OK || !json_is_true(json_object_get(rec, "accepted")))
			keep = 0; /* refused, or a transfer that never was (a crash) */
		else if (json_is_true(json_object_get(rec, "acked")))
			/* acked_at: since this version; before, its arrival */
			keep = json_integer_value(json_object_get(
			           rec,
			           json_object_get(rec, "acked_at") ? "acked_at" : "received_at")) +
			           n->att_retain_ms >
			       now;
		json_decref(rec);
		if (keep)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		log_info("removing attachment file %s: %s", e->d_name,
		         rc == TERN_OK ? "acknowledged and past [delivery] attachment_retain"
		                       : "no message of this node names it");
		(void)tern_syncer_unlink(n->xsync, path); /* off the loop: syncer.h */
	}
	closedir(d);
}

/* --- reading an attachment from the inbox -------------------------------------- */

struct getbuf {
	uint8_t *p;
	size_t len;
};

static int get_piece(void *arg, uint64_t off, const uint8_t *buf, size_t len)
{
	struct getbuf *g = arg;
	(void)off;
	memcpy(g->p + g->len, buf, len);
	g->len += len;
	return TERN_OK;
}

json_t *node_attachment_get(node *n, json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "message_id"));
	const char *name = json_string_value(json_object_get(req, "name"));
	json_t *jidx = json_object_get(req, "index"), *res = NULL;
	json_int_t off = json_integer_value(json_object_get(req, "offset"));
	json_int_t want = json_is_integer(json_object_get(req, "length"))
	                      ? json_integer_value(json_object_get(req, "length"))
	                      : (json_int_t)(1u << 20);
	tern_envelope *env = NULL;
	const Tern__V1__Header *h;
	const char *standing = NULL; /* the sender's since: no bar to its attachments */
	ProtobufCMessage *body = NULL;
	Tern__V1__Attachment **decl;
	uint8_t *plain = NULL, ck[32], key[32];
	size_t plen = 0, nd, idx = SIZE_MAX;
	MDB_txn *txn;
	struct getbuf g = {NULL, 0};
	char path[PATH_MAX];
	int fd = -1, rc;

	if (id == NULL || !tern_uuid_valid(id))
		return tern_api_error(TERN_EINVAL, "give the \"message_id\"");
	if (off < 0 || want <= 0)
		return tern_api_error(TERN_EINVAL, "\"offset\" and \"length\" must be positive");
	if (want > (json_int_t)GET_MAX)
		want = GET_MAX;
	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return tern_api_error(rc, "cannot read the store: %s", tern_errdetail());
	rc = node_inbox_envelope(n, txn, id, &env, &standing, NULL);
	mdb_txn_abort(txn);
	if (rc == TERN_ENOENT) {
		res = tern_api_error(TERN_ENOENT, "no message %s in this node's inbox", id);
		goto out;
	}
	if (rc != TERN_OK || (rc = tern_envelope_open_cached(env, n->id.id, n->id.seal, n->seals,
	                                                     &plain, &plen)) != TERN_OK) {
		res = tern_api_error(rc, "message %s no longer opens: %s", id, tern_errdetail());
		goto out;
	}
	h = tern_envelope_header(env);
	if (tern_pb_unpack(tern_msgtype_by_type(h->type)->desc, plain, plen, plen, &body) !=
	    TERN_OK) {
		res = tern_api_error(TERN_EMALFORMED, "message %s: the body does not decode", id);
		goto out;
	}
	decl = node_body_attachments(body, &nd);
	if (json_is_integer(jidx) && json_integer_value(jidx) >= 0 &&
	    (size_t)json_integer_value(jidx) < nd)
		idx = (size_t)json_integer_value(jidx);
	for (size_t i = 0; name && idx == SIZE_MAX && i < nd; i++)
		if (strcmp(decl[i]->name, name) == 0)
			idx = i;
	if (idx == SIZE_MAX || idx >= h->n_attachments) {
		res = tern_api_error(TERN_ENOENT, "message %s has no attachment %s (it has %zu)",
		                     id, name ? name : "at that index", nd);
		goto out;
	}
	if ((uint64_t)off > h->attachments[idx]->size)
		off = (json_int_t)h->attachments[idx]->size;
	if ((uint64_t)(off + want) > h->attachments[idx]->size)
		want = (json_int_t)(h->attachments[idx]->size - (uint64_t)off);
	node_spool_path(n, "in", id, idx, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		res = tern_api_error(TERN_ENOENT,
		                     "the bytes of %s's attachment %zu are no longer on this node "
		                     "(removed after the retention period)",
		                     id, idx);
		goto out;
	}
	if ((g.p = malloc((size_t)want + 1)) == NULL ||
	    tern_envelope_content_key(env, n->id.id, n->id.seal, n->seals, ck) != TERN_OK ||
	    tern_attach_key(ck, (uint32_t)idx, key) != TERN_OK) {
		res = tern_api_error(TERN_ENOMEM, "cannot read the attachment");
		goto out;
	}
	if (want > 0 && (rc = tern_attach_open_fd(fd, h->attachments[idx], key, id, (uint32_t)idx,
	                                          (uint64_t)off, (uint64_t)(off + want), get_piece,
	                                          &g, NULL)) != TERN_OK) {
		log_warnx("attachment %zu of %s does not open from the spool: %s", idx, id,
		          tern_errdetail());
		res = tern_api_error(rc, "the stored attachment is damaged: %s", tern_errdetail());
		goto out;
	}
	{
		size_t b64len = sodium_base64_ENCODED_LEN(g.len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = malloc(b64len);
		if (b64 == NULL) {
			res = tern_api_error(TERN_ENOMEM, "out of memory");
			goto out;
		}
		sodium_bin2base64(b64, b64len, g.p, g.len, sodium_base64_VARIANT_ORIGINAL);
		res = json_pack("{s:b, s:s, s:i, s:s, s:s, s:I, s:I, s:s, s:s}", "ok", 1,
		                "message_id", id, "index", (int)idx, "name", decl[idx]->name,
		                "media_type", decl[idx]->media_type, "size",
		                (json_int_t)h->attachments[idx]->size, "offset", (json_int_t)off,
		                "sha256", decl[idx]->sha256, "data", b64);
		free(b64);
	}
out:
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(key, sizeof(key));
	if (g.p) {
		sodium_memzero(g.p, g.len);
		free(g.p);
	}
	if (fd >= 0)
		close(fd);
	tern_pb_free(&body);
	if (plain)
		tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&env);
	return res;
}

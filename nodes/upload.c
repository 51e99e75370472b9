/* Uploads: the files a client stores with its node before a send names them
 * as attachments (docs/attachments.md). Resumable: an upload is a file in
 * data_dir/uploads and the offset committed for it; an append must start at
 * that offset, so a client that lost its connection asks for the offset
 * ("upload.info", HTTP HEAD) and goes on from there.
 *
 * The offset is the file's size, and an append is written, not synced: an
 * upload is not accepted yet (nothing is until the send's commit), and a
 * sync of every piece on the node's loop held ordinary messages behind an
 * upload. A crash may lose the last pieces written: the client asks for the
 * offset, as after any cut, and sends them again. A file system that kept a
 * size without its data would give an upload whose SHA-256 the send then
 * refuses. The seal syncs what it makes of the upload before the send is
 * committed. No commit per append either: the record, written once, holds
 * the size and the expiry. At most NODE_UPLOADS_MAX uploads
 * exist at once, each at most [limits] max_attachment_size; one not named
 * by a send within NODE_UPLOAD_TTL_MS is dropped.
 *
 * Touches: the uploads table (its own small writes, outside the batch:
 * nothing else reads them until a send, whose commit forgets the upload)
 * and data_dir/uploads. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <sodium.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/log.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "node_int.h"
#include "record.h"
#include "syncer.h"
#include "util.h"
#include "xfer_rec.h"

#define DBI(s, i) tern_store_dbi((s), (i))
#define MDB(rc, what) tern_store_mdb_err((rc), (what))
/* Most bytes one append may carry (a binary frame holds 16 MiB). */
#define APPEND_MAX (8u << 20)

static void upload_path(const node *n, const char *id, char *buf, size_t len)
{
	/* A data_dir too long for a path names no file: the open fails. */
	if (snprintf(buf, len, "%s/uploads/%s", n->data_dir, id) >= (int)len)
		buf[0] = '\0';
}

static int uploads_dir(const node *n)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/uploads", n->data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return tern_fail(TERN_EIO, "cannot make %s: %s", dir, strerror(errno));
	return TERN_OK;
}

/* Upload id's size and expiry. TERN_ENOENT when there is no such upload;
 * TERN_ENOMEM, TERN_EIO, or TERN_EMALFORMED (its record damaged) when it
 * may be there: never taken for none, or an upload under way would be
 * answered as gone and its file swept. */
static int upload_get(node *n, const char *id, uint64_t *size, int64_t *expires)
{
	MDB_txn *txn;
	MDB_val k = {strlen(id), (void *)id}, v;
	int rc;

	if ((rc = tern_store_read_begin(n->store, &txn)) != TERN_OK)
		return rc;
	if ((rc = mdb_get(txn, DBI(n->store, NS_UPLOADS), &k, &v)) == 0)
		rc = node_upload_record_read(v.mv_data, v.mv_size, size, expires);
	else
		rc = rc == MDB_NOTFOUND ? TERN_ENOENT : MDB(rc, "read an upload");
	mdb_txn_abort(txn);
	return rc;
}

struct upload_write {
	tern_store *s;
	const char *id;
	const node_upload_pb *rec; /* NULL: delete */
};

static int upload_write_apply(MDB_txn *txn, void *arg)
{
	struct upload_write *w = arg;
	MDB_val k = {strlen(w->id), (void *)w->id};
	int rc;

	if (w->rec == NULL) {
		rc = mdb_del(txn, DBI(w->s, NS_UPLOADS), &k, NULL);
		return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "forget an upload");
	}
	return node_rec_put(txn, DBI(w->s, NS_UPLOADS), w->id, &w->rec->base);
}

static int upload_put(node *n, const char *id, const node_upload_pb *rec)
{
	struct upload_write w = {n->store, id, rec};
	return tern_store_write(n->store, upload_write_apply, &w);
}

static size_t upload_count(node *n)
{
	MDB_txn *txn;
	MDB_stat st = {0};

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return NODE_UPLOADS_MAX;
	mdb_stat(txn, DBI(n->store, NS_UPLOADS), &st);
	mdb_txn_abort(txn);
	return st.ms_entries;
}

static json_t *no_upload(const char *id)
{
	return tern_api_error(TERN_ENOENT,
	                      "no upload %s on this node (finished by a send, deleted, or "
	                      "older than 24 hours): start a new one with upload.create",
	                      id ? id : "(none given)");
}

static json_t *upload_create(node *n, json_t *req)
{
	json_t *jsize = json_object_get(req, "size");
	json_int_t size = json_integer_value(jsize);
	node_upload_pb rec = TERN__V1__UPLOAD_RECORD__INIT;
	char id[37], path[PATH_MAX];
	int fd, rc;

	if (!json_is_integer(jsize) || size <= 0)
		return tern_api_error(TERN_EINVAL, "give the upload's \"size\" in bytes (over 0)");
	if (size > n->att_max)
		return tern_api_refusal(TERN_REASON_ATTACHMENT_TOO_LARGE,
		                        "%lld bytes is over [limits] max_attachment_size (%lld)",
		                        (long long)size, (long long)n->att_max);
	if (upload_count(n) >= NODE_UPLOADS_MAX)
		return tern_api_error(TERN_ENOMEM,
		                      "%d uploads are open on this node: finish (send) or delete "
		                      "one first",
		                      NODE_UPLOADS_MAX);
	if ((rc = uploads_dir(n)) != TERN_OK || (rc = tern_uuid_v7(id)) != TERN_OK)
		return tern_api_error(rc, "cannot start an upload: %s", tern_errdetail());
	upload_path(n, id, path, sizeof(path));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return tern_api_error(TERN_EIO, "cannot start an upload: %s", strerror(errno));
	close(fd);
	rec.size = (uint64_t)size;
	rec.expires = tern_now_ms() + NODE_UPLOAD_TTL_MS;
	if ((rc = upload_put(n, id, &rec)) != TERN_OK) {
		unlink(path);
		return tern_api_error(rc == TERN_ENOMEM ? TERN_ENOMEM : TERN_EIO,
		                      "cannot record the upload: %s", tern_errdetail());
	}
	return json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "upload_id", id, "size", size, "offset",
	                 (json_int_t)0);
}

/* The answer to a request naming upload id whose record upload_get could
 * not give (rc): none, or why it cannot be read now. */
static json_t *upload_unread(const char *id, int rc)
{
	if (rc == TERN_ENOENT)
		return no_upload(id);
	if (rc == TERN_ENOMEM)
		return tern_api_error(TERN_ENOMEM,
		                      "upload %s cannot be read now: the node is short "
		                      "of memory; try again",
		                      id);
	return tern_api_error(TERN_EIO, "upload %s: %s", id, tern_errdetail());
}

/* The bytes upload id holds: its file's size (0 if it has none). */
static uint64_t upload_offset(const node *n, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	upload_path(n, id, path, sizeof(path));
	return stat(path, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 0;
}

static json_t *upload_state(const node *n, const char *id, uint64_t size)
{
	return json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "upload_id", id, "size", (json_int_t)size,
	                 "offset", (json_int_t)upload_offset(n, id));
}

json_t *node_upload_append(node *n, const char *id, uint64_t offset, const uint8_t *data,
                           size_t len)
{
	json_t *res;
	uint64_t size, at;
	int64_t expires;
	char path[PATH_MAX];
	size_t put = 0;
	int fd, rc;

	if (id == NULL || !tern_uuid_valid(id))
		return tern_api_error(TERN_EINVAL, "give the \"upload_id\" to append to");
	if ((rc = upload_get(n, id, &size, &expires)) != TERN_OK)
		return upload_unread(id, rc);
	at = upload_offset(n, id);
	if (offset != at) {
		/* tus: a PATCH at another offset than the server's is a conflict;
		 * the client asks for the offset and goes on from there. */
		res =
		    json_pack("{s:b, s:s, s:s, s:I, s:I}", "ok", 0, "error", "conflict", "message",
		              "the upload's offset is not the one given: go on from \"offset\"",
		              "offset", (json_int_t)at, "size", (json_int_t)size);
		return res;
	}
	if (len == 0 || len > APPEND_MAX || len > size - at) {
		return tern_api_error(TERN_EINVAL,
		                      "an append carries 1 byte to %u MiB, and no more than the "
		                      "%llu bytes the upload still lacks",
		                      APPEND_MAX >> 20, (unsigned long long)(size - at));
	}
	upload_path(n, id, path, sizeof(path));
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return tern_api_error(TERN_EIO, "upload %s: %s", id, strerror(errno));
	while (put < len) {
		ssize_t w = pwrite(fd, data + put, len - put, (off_t)(at + put));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		put += (size_t)w;
	}
	rc = put == len ? TERN_OK : TERN_EIO;
	if (rc != TERN_OK) {
		int e = errno;
		/* Back to the offset answered before: nothing of it counts. */
		if (ftruncate(fd, (off_t)at) != 0)
			log_warnx("upload %s: cannot cut back to %llu", id, (unsigned long long)at);
		close(fd);
		log_warnx("upload %s: cannot write at %llu: %s", id, (unsigned long long)at,
		          strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			return tern_api_refusal(TERN_REASON_NO_SPACE,
			                        "the node's disk is full: nothing of this append "
			                        "was kept; send it again when there is room");
		return tern_api_error(TERN_EIO, "cannot write the upload: %s", strerror(e));
	}
	close(fd);
	return upload_state(n, id, size);
}

json_t *node_upload_op(node *n, const char *op, json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "upload_id"));
	json_t *res;
	uint64_t size;
	int64_t expires;
	int rc;

	if (strcmp(op, "upload.create") == 0)
		return upload_create(n, req);
	if (strcmp(op, "upload.append") == 0) {
		const char *b64 = json_string_value(json_object_get(req, "data"));
		json_t *joff = json_object_get(req, "offset");
		uint8_t *bin;
		size_t blen = 0, cap;
		if (b64 == NULL || !json_is_integer(joff) || json_integer_value(joff) < 0)
			return tern_api_error(
			    TERN_EINVAL, "give \"upload_id\", \"offset\" and \"data\" (base64)");
		cap = strlen(b64) / 4 * 3 + 3;
		if (cap > APPEND_MAX + 3)
			return tern_api_error(TERN_ETOOBIG, "an append carries at most %u MiB",
			                      APPEND_MAX >> 20);
		if ((bin = malloc(cap)) == NULL)
			return tern_api_error(TERN_ENOMEM, "out of memory");
		if (sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &blen, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(bin);
			return tern_api_error(TERN_EINVAL, "\"data\" is not standard base64");
		}
		res = node_upload_append(n, id, (uint64_t)json_integer_value(joff), bin, blen);
		free(bin);
		return res;
	}
	if (strcmp(op, "upload.info") != 0 && strcmp(op, "upload.delete") != 0)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unsupported", "message",
		                 "unknown operation");
	if (id == NULL || !tern_uuid_valid(id))
		return tern_api_error(TERN_EINVAL, "give the \"upload_id\"");
	rc = upload_get(n, id, &size, &expires);
	if (strcmp(op, "upload.info") == 0)
		return rc == TERN_OK ? upload_state(n, id, size) : upload_unread(id, rc);
	/* upload.delete: a damaged record goes too, with its file. */
	if (rc != TERN_OK && rc != TERN_EMALFORMED)
		return upload_unread(id, rc);
	if ((rc = upload_put(n, id, NULL)) == TERN_OK)
		node_upload_unlink(n, id);
	return rc == TERN_OK ? json_pack("{s:b}", "ok", 1)
	                     : tern_api_error(rc, "cannot delete: %s", tern_errdetail());
}

int node_upload_open(node *n, const char *id, int *fd, uint64_t *size)
{
	char path[PATH_MAX];
	uint64_t sz, off;
	int64_t expires;
	int rc;

	if (id == NULL || !tern_uuid_valid(id))
		return tern_fail(TERN_ENOENT, "no upload %s on this node", id ? id : "");
	if ((rc = upload_get(n, id, &sz, &expires)) == TERN_ENOENT)
		return tern_fail(TERN_ENOENT, "no upload %s on this node", id);
	if (rc == TERN_ENOMEM)
		return tern_fail(TERN_ENOMEM, "upload %s cannot be read now: out of memory", id);
	if (rc != TERN_OK)
		return tern_fail(TERN_EIO, "upload %s: %s", id, tern_errdetail());
	off = upload_offset(n, id);
	if (off != sz)
		return tern_fail(TERN_EINVAL,
		                 "upload %s holds %llu of its %llu bytes: finish it first", id,
		                 (unsigned long long)off, (unsigned long long)sz);
	upload_path(n, id, path, sizeof(path));
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return tern_fail(TERN_EIO, "upload %s: %s", id, strerror(errno));
	*size = sz;
	return TERN_OK;
}

int node_upload_forget(MDB_txn *txn, tern_store *s, const char *id)
{
	MDB_val k = {strlen(id), (void *)id};
	int rc;

	if (id[0] == '\0') /* a file passed by descriptor: no upload */
		return TERN_OK;
	rc = mdb_del(txn, DBI(s, NS_UPLOADS), &k, NULL);
	return rc == MDB_NOTFOUND ? TERN_OK : MDB(rc, "forget an upload");
}

void node_upload_unlink(node *n, const char *id)
{
	char path[PATH_MAX];

	if (id[0] == '\0') /* a file passed by descriptor: the client's */
		return;
	upload_path(n, id, path, sizeof(path));
	/* Off the loop (syncer.h): an upload may be gigabytes. Upload ids are
	 * never made again. */
	(void)tern_syncer_unlink(n->xsync, path);
}

void node_upload_sweep(node *n, int64_t now)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	char gone[NODE_UPLOADS_MAX * 2][37];
	size_t ngone = 0;
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *e;

	if (tern_store_read_begin(n->store, &txn) != TERN_OK)
		return;
	if (mdb_cursor_open(txn, DBI(n->store, NS_UPLOADS), &c) == 0) {
		int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		for (; rc == 0 && ngone < NODE_UPLOADS_MAX * 2;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			uint64_t size;
			int64_t expires = 0;
			/* Not read for want of memory is not expired: read as 0, an
			 * upload under way would be dropped with its file. The
			 * sweep stops and comes back; a damaged record goes. */
			int rrc = node_upload_record_read(v.mv_data, v.mv_size, &size, &expires);
			if (rrc == TERN_ENOMEM)
				break;
			if (k.mv_size == 36 && (rrc != TERN_OK || expires <= now)) {
				memcpy(gone[ngone], k.mv_data, 36);
				gone[ngone++][36] = '\0';
			}
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	for (size_t i = 0; i < ngone; i++) {
		if (upload_put(n, gone[i], NULL) == TERN_OK) {
			node_upload_unlink(n, gone[i]);
			log_info("dropped upload %s: no send named it within 24 hours", gone[i]);
		}
	}
	/* Files no record names: an upload whose send committed just before a
	 * crash, before its file was removed. */
	snprintf(dir, sizeof(dir), "%s/uploads", n->data_dir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		uint64_t size;
		int64_t expires;
		if (!tern_uuid_valid(e->d_name))
			continue;
		/* Only a file no record names: a record not read now (a
		 * shortage) may name it, and its upload be under way. */
		if (upload_get(n, e->d_name, &size, &expires) == TERN_ENOENT)
			node_upload_unlink(n, e->d_name);
	}
	closedir(d);
}

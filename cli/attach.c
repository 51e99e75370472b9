/* Attachments on the command line (docs/attachments.md): a file uploaded to
 * the node for `tern send --attach`, and one read back from the inbox for
 * `tern inbox attachment`. Both talk to the node over one kept connection
 * of its local API, the upload in binary frames (no base64 on the way in). */
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/api.h>
#include <tern/attach.h>
#include <tern/config.h>
#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/v1/api.pb-c.h>

#include "attach.h"
#include "cli.h"
#include "pbuf.h"

/* Bytes per upload append: a binary frame holds 16 MiB. */
#define APPEND_LEN (4u << 20)

static const struct {
	const char *ext, *type;
} media[] = {{"pdf", "application/pdf"},
             {"jpg", "image/jpeg"},
             {"jpeg", "image/jpeg"},
             {"png", "image/png"},
             {"tif", "image/tiff"},
             {"tiff", "image/tiff"},
             {"gif", "image/gif"},
             {"txt", "text/plain"},
             {"csv", "text/csv"},
             {"json", "application/json"},
             {"xml", "application/xml"},
             {"zip", "application/zip"},
             {"doc", "application/msword"},
             {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
             {NULL, NULL}};

const char *cli_attach_media_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && media[i].ext; i++)
		if (strcasecmp(dot + 1, media[i].ext) == 0)
			return media[i].type;
	return "application/octet-stream";
}

int cli_node_socket(const char *cmd, const char *conf, char *buf, size_t len)
{
	tern_config *cfg = NULL;

	if (tern_config_load(conf, TERN_CONFIG_NODE, &cfg) != TERN_OK) {
		fprintf(stderr, "tern %s: cannot use %s:\n%s", cmd, conf,
		        cfg ? tern_config_errors(cfg) : "");
		tern_config_free(&cfg);
		return CLI_FAIL;
	}
	snprintf(buf, len, "%s", tern_config_get(cfg, "node", "api_socket"));
	tern_config_free(&cfg);
	return CLI_OK;
}

/* One request on fd, JSON (req) or binary (bin), and its answer. */
static int ask(const char *cmd, int fd, json_t *req, const uint8_t *bin, size_t blen, json_t **resp)
{
	int rc;

	*resp = NULL;
	if (req)
		json_object_set_new(req, "v", json_integer(TERN_API_VERSION));
	rc = req ? tern_api_write(fd, req) : tern_api_write_binary(fd, bin, blen);
	if (rc == TERN_OK)
		rc = tern_api_read(fd, TERN_API_MAX_FRAME, resp);
	if (rc != TERN_OK) {
		fprintf(stderr, "tern %s: the node did not answer: %s (%s)\n", cmd,
		        tern_strerror(rc), tern_errdetail());
		return CLI_FAIL;
	}
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		const char *code = json_string_value(json_object_get(*resp, "error"));
		const char *msg = json_string_value(json_object_get(*resp, "message"));
		fprintf(stderr, "tern %s: %s: %s\n", cmd, code ? code : "error", msg ? msg : "");
		return CLI_NO;
	}
	return CLI_OK;
}

static void progress(const char *what, uint64_t done, uint64_t total, int *last)
{
	int pct = total ? (int)(done * 100 / total) : 100;

	if (!isatty(STDERR_FILENO) || pct / 10 == *last / 10)
		return;
	*last = pct;
	fprintf(stderr, "%s: %d%% (%llu of %llu bytes)\n", what, pct, (unsigned long long)done,
	        (unsigned long long)total);
}

/* The body's declaration of a file: name, media type, SHA-256, size. */
static json_t *declaration(const char *name, uint64_t size, const uint8_t digest[32])
{
	char hex[65], sz[32]; /* proto3 JSON writes a uint64 as a string */

	sodium_bin2hex(hex, sizeof(hex), digest, 32);
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	return json_pack("{s:s, s:s, s:s, s:s}", "name", name, "mediaType",
	                 cli_attach_media_type(name), "sha256", hex, "size", sz);
}

/* Opens path for reading: a regular file with bytes in it. */
static int open_regular(const char *cmd, const char *path, int *fd, struct stat *st)
{
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(*fd, st) != 0) {
		fprintf(stderr, "tern %s: cannot read %s: %s\n", cmd, path, strerror(errno));
		return CLI_FAIL;
	}
	if (!S_ISREG(st->st_mode) || st->st_size == 0) {
		fprintf(stderr, "tern %s: %s is not a regular file with bytes in it\n", cmd, path);
		return CLI_USAGE;
	}
	return CLI_OK;
}

int cli_attach_by_fd(const char *cmd, const char *path, const char *name, json_t **decl,
                     int *fd_out)
{
	struct stat st;
	tern_sha256_ctx *hs = NULL;
	uint8_t *buf = NULL, digest[32];
	uint64_t off = 0, size;
	int in = -1, rc, last = -10;

	*decl = NULL;
	*fd_out = -1;
	if ((rc = open_regular(cmd, path, &in, &st)) != CLI_OK)
		goto out;
	rc = CLI_FAIL;
	if (tern_attach_fd_check(in, &size) != TERN_OK) {
		rc = CLI_NO; /* not an error: the caller uploads it */
		goto out;
	}
	if ((buf = malloc(APPEND_LEN)) == NULL || tern_sha256_new(&hs) != TERN_OK)
		goto out;
	while (off < size) {
		ssize_t got = pread(in, buf, APPEND_LEN, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			fprintf(stderr, "tern %s: %s changed while it was read\n", cmd, path);
			goto out;
		}
		tern_sha256_update(hs, buf, (size_t)got);
		off += (uint64_t)got;
		progress(path, off, size, &last);
	}
	tern_sha256_final(hs, digest);
	if ((*decl = declaration(name, size, digest)) == NULL)
		goto out;
	*fd_out = in;
	in = -1;
	rc = CLI_OK;
out:
	if (in >= 0)
		close(in);
	tern_sha256_free(&hs);
	free(buf);
	return rc;
}

int cli_attach_upload(const char *cmd, const char *sock, const char *path, const char *name,
                      json_t **decl, char upload_id[37])
{
	struct stat st;
	tern_sha256_ctx *hs = NULL;
	uint8_t *buf = NULL, digest[32];
	json_t *req, *resp = NULL;
	uint64_t off = 0;
	int in = -1, fd = -1, rc, last = -10;

	*decl = NULL;
	if ((rc = open_regular(cmd, path, &in, &st)) != CLI_OK)
		goto out;
	rc = CLI_FAIL;
	if ((buf = malloc(APPEND_LEN)) == NULL)
		goto out;
	if (tern_api_connect(sock, &fd) != TERN_OK) {
		fprintf(stderr, "tern %s: the node is not running (nothing listens on %s)\n", cmd,
		        sock);
		goto out;
	}
	req = json_pack("{s:s, s:I}", "op", "upload.create", "size", (json_int_t)st.st_size);
	rc = ask(cmd, fd, req, NULL, 0, &resp);
	json_decref(req);
	if (rc != CLI_OK)
		goto out;
	snprintf(upload_id, 37, "%s", json_string_value(json_object_get(resp, "upload_id")));
	json_decref(resp);
	resp = NULL;
	if (tern_sha256_new(&hs) != TERN_OK)
		goto out;
	while (off < (uint64_t)st.st_size) {
		Tern__V1__ApiRequest r = TERN__V1__API_REQUEST__INIT;
		Tern__V1__ApiUploadAppend a = TERN__V1__API_UPLOAD_APPEND__INIT;
		uint8_t *packed = NULL;
		size_t plen;
		ssize_t got = pread(in, buf, APPEND_LEN, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			fprintf(stderr, "tern %s: %s changed while it was read\n", cmd, path);
			rc = CLI_FAIL;
			goto out;
		}
		tern_sha256_update(hs, buf, (size_t)got);
		a.upload_id = upload_id;
		a.offset = off;
		a.data.data = buf;
		a.data.len = (size_t)got;
		r.v = TERN_API_VERSION;
		r.op_case = TERN__V1__API_REQUEST__OP_UPLOAD_APPEND;
		r.upload_append = &a;
		if (tern_pb_pack(&r.base, &packed, &plen) != TERN_OK) {
			rc = CLI_FAIL;
			goto out;
		}
		rc = ask(cmd, fd, NULL, packed, plen, &resp);
		free(packed);
		json_decref(resp);
		resp = NULL;
		if (rc != CLI_OK)
			goto out;
		off += (uint64_t)got;
		progress(path, off, (uint64_t)st.st_size, &last);
	}
	tern_sha256_final(hs, digest);
	*decl = declaration(name, (uint64_t)st.st_size, digest);
	rc = *decl ? CLI_OK : CLI_FAIL;
out:
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	tern_sha256_free(&hs);
	free(buf);
	json_decref(resp);
	return rc;
}

int cli_attach_download(const char *cmd, const char *sock, const char *msgid, const char *name,
                        const char *out_path)
{
	tern_sha256_ctx *hs = NULL;
	uint8_t *bin = NULL, digest[32];
	char hex[65], tmp[4096], want[65] = "";
	json_t *resp = NULL;
	uint64_t off = 0, size = 1;
	int fd = -1, out = -1, rc = CLI_FAIL, last = -10, to_stdout = strcmp(out_path, "-") == 0;
	size_t cap = ((size_t)4 << 20) + 16;

	if ((bin = malloc(cap)) == NULL)
		goto out;
	if (tern_api_connect(sock, &fd) != TERN_OK) {
		fprintf(stderr, "tern %s: the node is not running (nothing listens on %s)\n", cmd,
		        sock);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.part", out_path);
	if (to_stdout)
		out = STDOUT_FILENO;
	else if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "tern %s: cannot write %s: %s\n", cmd, tmp, strerror(errno));
		goto out;
	}
	if (tern_sha256_new(&hs) != TERN_OK)
		goto out;
	while (off < size) {
		json_t *req = json_pack("{s:s, s:s, s:s, s:I, s:I}", "op", "attachment.get",
		                        "message_id", msgid, "name", name, "offset",
		                        (json_int_t)off, "length", (json_int_t)(4 << 20));
		const char *b64;
		size_t blen = 0;
		rc = ask(cmd, fd, req, NULL, 0, &resp);
		json_decref(req);
		if (rc != CLI_OK)
			goto out;
		rc = CLI_FAIL;
		size = (uint64_t)json_integer_value(json_object_get(resp, "size"));
		snprintf(want, sizeof(want), "%s",
		         json_string_value(json_object_get(resp, "sha256")));
		b64 = json_string_value(json_object_get(resp, "data"));
		if (b64 == NULL ||
		    sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &blen, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    (blen == 0 && off < size)) {
			fprintf(stderr, "tern %s: the node's answer does not decode\n", cmd);
			goto out;
		}
		tern_sha256_update(hs, bin, blen);
		for (size_t put = 0; put < blen;) {
			ssize_t w = write(out, bin + put, blen - put);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				fprintf(stderr, "tern %s: cannot write %s: %s\n", cmd, out_path,
				        strerror(errno));
				goto out;
			}
			put += (size_t)w;
		}
		off += blen;
		json_decref(resp);
		resp = NULL;
		if (!to_stdout)
			progress(out_path, off, size, &last);
	}
	tern_sha256_final(hs, digest);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (strcmp(hex, want) != 0) {
		fprintf(stderr, "tern %s: what was read has SHA-256 %s, not the declared %s\n", cmd,
		        hex, want);
		rc = CLI_NO;
		goto out;
	}
	if (!to_stdout) {
		if (fsync(out) != 0 || rename(tmp, out_path) != 0) {
			fprintf(stderr, "tern %s: cannot write %s: %s\n", cmd, out_path,
			        strerror(errno));
			goto out;
		}
		fprintf(stderr, "%s: %llu bytes, SHA-256 %s as declared\n", out_path,
		        (unsigned long long)off, hex);
	}
	rc = CLI_OK;
out:
	if (out >= 0 && !to_stdout) {
		close(out);
		if (rc != CLI_OK)
			unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	tern_sha256_free(&hs);
	free(bin);
	json_decref(resp);
	return rc;
}

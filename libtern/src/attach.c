/* Attachment chunks: sealing, opening and checking (tern/attach.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>

#include "util.h"

#define KEY_INFO "tern/v1 attachment key"
#define AAD_LABEL "tern/v1 attachment chunk"
#define AAD_MAX (sizeof(AAD_LABEL) + 36 + 4 + 8)

uint64_t tern_attach_chunks(uint64_t size, uint32_t chunk_size)
{
	if (chunk_size == 0)
		return 0;
	return size / chunk_size + (size % chunk_size != 0);
}

size_t tern_attach_chunk_len(uint64_t size, uint32_t chunk_size, uint64_t index)
{
	uint64_t start;

	if (chunk_size == 0 || index >= tern_attach_chunks(size, chunk_size))
		return 0;
	start = index * chunk_size;
	return (size_t)(size - start < chunk_size ? size - start : chunk_size);
}

/* Local disk and memory file systems: their reads end. Not overlayfs,
 * whose lower layer may be anything, nor NFS, SMB or FUSE. */
static const char *const local_fs[] = {"ext2", "ext3",  "ext4",  "xfs",
                                       "btrfs", "f2fs", "tmpfs", "ramfs"};

/* The file system type of the mount mnt_id, from /proc/self/mountinfo:
 * nothing here asks the file system itself, whose server may not answer. */
static int mount_type(uint64_t mnt_id, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = TERN_ENOENT;

	if (f == NULL)
		return tern_fail(TERN_EIO, "cannot read /proc/self/mountinfo: %s", strerror(errno));
	while (rc == TERN_ENOENT && getline(&line, &cap, f) > 0) {
		char *sep, *end;
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE ..." */
		if (strtoull(line, &end, 10) != mnt_id || end == line || *end != ' ' ||
		    (sep = strstr(line, " - ")) == NULL)
			continue;
		sep += 3;
		snprintf(type, len, "%.*s", (int)strcspn(sep, " \n"), sep);
		rc = TERN_OK;
	}
	free(line);
	fclose(f);
	return rc == TERN_OK ? TERN_OK : tern_fail(TERN_EIO, "its mount is not listed");
}

int tern_attach_fd_check(int fd, uint64_t *size)
{
	struct statx sx;
	char type[64];
	size_t i;
	int fl;

	/* Attributes as the kernel has them (AT_STATX_DONT_SYNC): no question
	 * to a network or FUSE file system's server, which could hang. */
	if (fd < 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
	    statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_SIZE | STATX_MNT_ID,
	          &sx) != 0)
		return tern_fail(TERN_EINVAL, "not an open file descriptor");
	if (!S_ISREG(sx.stx_mode))
		return tern_fail(TERN_EINVAL, "not a regular file");
	if ((fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY)
		return tern_fail(TERN_EINVAL, "not open for reading");
	if (fl & O_DIRECT)
		return tern_fail(TERN_EINVAL, "open with O_DIRECT, which the seal's reads do not fit");
	if (!(sx.stx_mask & STATX_MNT_ID) || mount_type(sx.stx_mnt_id, type, sizeof(type)) != TERN_OK)
		return tern_fail(TERN_EINVAL, "its file system is unknown");
	for (i = 0; i < sizeof(local_fs) / sizeof(local_fs[0]); i++)
		if (strcmp(type, local_fs[i]) == 0)
			break;
	if (i == sizeof(local_fs) / sizeof(local_fs[0]))
		return tern_fail(TERN_EINVAL,
		                 "its file system (%s) is not a local disk: a read there could hang",
		                 type);
	*size = (uint64_t)sx.stx_size;
	return TERN_OK;
}

uint64_t tern_attach_slot(uint32_t chunk_size, uint64_t index)
{
	return index * ((uint64_t)chunk_size + TERN_ATTACH_TAG_LEN);
}

int tern_attach_seals_check(const Tern__V1__AttachmentSeal *const *seals, size_t n,
                            uint64_t max_size, uint64_t max_total)
{
	uint64_t total = 0;

	if (n > TERN_ATTACH_MAX_COUNT)
		return tern_fail(TERN_EMALFORMED, "%zu attachments: at most %d", n,
		                 TERN_ATTACH_MAX_COUNT);
	for (size_t i = 0; i < n; i++) {
		const Tern__V1__AttachmentSeal *s = seals[i];
		if (s->size == 0 || s->root.len != TERN_HASH_LEN ||
		    s->chunk_size < TERN_ATTACH_CHUNK_MIN || s->chunk_size > TERN_ATTACH_CHUNK_MAX)
			return tern_fail(TERN_EMALFORMED,
			                 "attachment %zu: a seal needs a size, a chunk size of "
			                 "%u to %u bytes and a 32-byte root",
			                 i, TERN_ATTACH_CHUNK_MIN, TERN_ATTACH_CHUNK_MAX);
		if (max_size && s->size > max_size)
			return tern_fail(TERN_ETOOBIG, "attachment %zu: %llu bytes, over %llu", i,
			                 (unsigned long long)s->size, (unsigned long long)max_size);
		total += s->size;
		if (max_total && total > max_total)
			return tern_fail(TERN_ETOOBIG, "attachments: over %llu bytes in all",
			                 (unsigned long long)max_total);
	}
	return TERN_OK;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int tern_attach_key(const uint8_t content_key[32], uint32_t attachment, uint8_t key[32])
{
	uint8_t info[sizeof(KEY_INFO) + 4];

	memcpy(info, KEY_INFO, sizeof(KEY_INFO)); /* with its NUL: the separator */
	put_be(info + sizeof(KEY_INFO), attachment, 4);
	return tern_hkdf_sha256(NULL, 0, content_key, 32, info, sizeof(info), key, 32);
}

/* Nonce be32(attachment) || be64(index): unique under a key that is itself
 * unique to the message and the attachment. The associated data names the
 * message too, so a chunk cannot pass for another message's even where a
 * content key were ever reused. */
static size_t chunk_params(const char *msgid, uint32_t attachment, uint64_t index,
                           uint8_t nonce[TERN_AEAD_NONCE_LEN], uint8_t aad[AAD_MAX])
{
	size_t idlen = strnlen(msgid, 36), n = 0;

	put_be(nonce, attachment, 4);
	put_be(nonce + 4, index, 8);
	memcpy(aad, AAD_LABEL, sizeof(AAD_LABEL));
	n = sizeof(AAD_LABEL);
	memcpy(aad + n, msgid, idlen);
	n += idlen;
	put_be(aad + n, attachment, 4);
	put_be(aad + n + 4, index, 8);
	return n + 12;
}

int tern_attach_chunk_seal(const uint8_t key[32], const char *msgid, uint32_t attachment,
                           uint64_t index, const uint8_t *plain, size_t len, uint8_t *out)
{
	uint8_t nonce[TERN_AEAD_NONCE_LEN], aad[AAD_MAX];
	size_t alen = chunk_params(msgid, attachment, index, nonce, aad);

	return tern_aead_seal(key, 32, nonce, sizeof(nonce), aad, alen, plain, len, out);
}

int tern_attach_chunk_open(const uint8_t key[32], const char *msgid, uint32_t attachment,
                           uint64_t index, const uint8_t *sealed, size_t len, uint8_t *out,
                           size_t *out_len)
{
	uint8_t nonce[TERN_AEAD_NONCE_LEN], aad[AAD_MAX];
	size_t alen = chunk_params(msgid, attachment, index, nonce, aad);

	if (len < TERN_ATTACH_TAG_LEN)
		return tern_fail(TERN_EMALFORMED, "attachment %u chunk %llu: shorter than its tag",
		                 attachment, (unsigned long long)index);
	if (tern_aead_open(key, 32, nonce, sizeof(nonce), aad, alen, sealed, len, out, out_len) !=
	    TERN_OK)
		return tern_fail(TERN_EDECRYPT, "attachment %u chunk %llu does not authenticate",
		                 attachment, (unsigned long long)index);
	return TERN_OK;
}

int tern_attach_chunk_verify(const Tern__V1__AttachmentSeal *seal, uint64_t index,
                             const uint8_t *sealed, size_t len, const tern_hash *proof,
                             size_t nproof)
{
	uint64_t n = tern_attach_chunks(seal->size, seal->chunk_size);
	size_t want = tern_attach_chunk_len(seal->size, seal->chunk_size, index);
	tern_hash leaf;

	if (index >= n || seal->root.len != TERN_HASH_LEN)
		return tern_fail(TERN_EMALFORMED, "chunk %llu: the attachment has %llu",
		                 (unsigned long long)index, (unsigned long long)n);
	if (len != want + TERN_ATTACH_TAG_LEN)
		return tern_fail(TERN_EMALFORMED, "chunk %llu: %zu bytes where its seal says %zu",
		                 (unsigned long long)index, len, want + TERN_ATTACH_TAG_LEN);
	tern_merkle_leaf_hash(sealed, len, leaf);
	if (tern_merkle_verify_inclusion(index, n, leaf, proof, nproof, seal->root.data) != TERN_OK)
		return tern_fail(TERN_EDIGEST, "chunk %llu is not the one its sender signed",
		                 (unsigned long long)index);
	return TERN_OK;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return tern_fail(TERN_EIO, "read: %s", strerror(errno));
		if (r == 0)
			return tern_fail(TERN_EMALFORMED, "the file ends %llu bytes early",
			                 (unsigned long long)(len - got));
		got += (size_t)r;
	}
	return TERN_OK;
}

static int write_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t put = 0;

	while (put < len) {
		ssize_t w = pwrite(fd, buf + put, len - put, (off_t)(off + put));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return tern_fail(TERN_EIO, "write: %s", strerror(errno));
		put += (size_t)w;
	}
	return TERN_OK;
}

/* Every SEAL_WRITEBACK bytes written: the writeback of that stretch starts
 * now, and the one before it is waited for. A gigabyte left dirty would be
 * written in one burst at the caller's fdatasync, and every other sync on the
 * disk (the stores' commits) would wait behind it. Not a sync: failures are
 * the fdatasync's to report. */
#define SEAL_WRITEBACK ((off_t)32 << 20)

/* Called with the end of what was written so far; *paced: where the
 * writeback started last. */
static void pace_writeback(int fd, off_t end, off_t *paced)
{
	while (end - *paced >= SEAL_WRITEBACK) {
		(void)sync_file_range(fd, *paced, SEAL_WRITEBACK, SYNC_FILE_RANGE_WRITE);
		if (*paced >= SEAL_WRITEBACK)
			(void)sync_file_range(fd, *paced - SEAL_WRITEBACK, SEAL_WRITEBACK,
			                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			                          SYNC_FILE_RANGE_WAIT_AFTER);
		*paced += SEAL_WRITEBACK;
	}
}

/* The seal runs on two threads, the caller's and a helper, a batch of
 * SEAL_BATCH chunks at a time: the caller reads the batch; then the helper
 * hashes its plaintext (in order: one running SHA-256) while the caller
 * seals, hashes and writes chunks, and the helper takes chunks too once its
 * hash is done. Sealing (ChaCha20-Poly1305, a leaf hash, a write) costs
 * about three times the plaintext hash, so the two finish a batch nearly
 * together: on an idle 2-core machine a gigabyte seals in about half the
 * time of one thread. */
#define SEAL_BATCH 8u

struct seal_batch {
	/* set by the caller before each batch */
	const uint8_t *key;
	const char *msgid;
	uint32_t attachment, chunk_size;
	uint64_t size, first, count; /* chunks first .. first+count-1 */
	uint8_t *plain;              /* count * chunk_size bytes */
	int out_fd;
	tern_hash *lv;
	tern_sha256_ctx *st;
	/* shared while a batch runs */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next;   /* the next chunk of the batch to take */
	unsigned batch;  /* batches handed to the helper */
	unsigned done;   /* batches the helper finished */
	int stop;
	int rc;          /* the first failure of either thread */
	int err;         /* its errno (the caller tells a full disk by it) */
	char why[256];   /* its detail */
};

/* Seals chunks of the batch until none is left; sealed is a buffer of
 * chunk_size + TERN_ATTACH_TAG_LEN. */
static int seal_take(struct seal_batch *b, uint8_t *sealed)
{
	for (;;) {
		uint64_t k;
		size_t len;
		int rc;
		pthread_mutex_lock(&b->mu);
		k = b->rc == TERN_OK && b->next < b->count ? b->next++ : b->count;
		pthread_mutex_unlock(&b->mu);
		if (k == b->count)
			return TERN_OK;
		len = tern_attach_chunk_len(b->size, b->chunk_size, b->first + k);
		rc = tern_attach_chunk_seal(b->key, b->msgid, b->attachment, b->first + k,
		                            b->plain + k * b->chunk_size, len, sealed);
		if (rc == TERN_OK) {
			tern_merkle_leaf_hash(sealed, len + TERN_ATTACH_TAG_LEN, b->lv[b->first + k]);
			rc = write_full(b->out_fd, sealed, len + TERN_ATTACH_TAG_LEN,
			                tern_attach_slot(b->chunk_size, b->first + k));
		}
		if (rc != TERN_OK)
			return rc;
	}
}

static void seal_fail(struct seal_batch *b, int rc)
{
	pthread_mutex_lock(&b->mu);
	if (b->rc == TERN_OK) {
		b->rc = rc;
		b->err = errno;
		snprintf(b->why, sizeof(b->why), "%s", tern_errdetail());
	}
	pthread_mutex_unlock(&b->mu);
}

static void *seal_helper(void *arg)
{
	struct seal_batch *b = arg;
	uint8_t *sealed = malloc((size_t)b->chunk_size + TERN_ATTACH_TAG_LEN);
	unsigned seen = 0;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		uint64_t bytes = 0;
		int rc = TERN_OK;
		while (b->batch == seen && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->stop)
			break;
		seen = b->batch;
		pthread_mutex_unlock(&b->mu);
		for (uint64_t k = 0; k < b->count; k++)
			bytes += tern_attach_chunk_len(b->size, b->chunk_size, b->first + k);
		rc = tern_sha256_update(b->st, b->plain, (size_t)bytes);
		if (rc == TERN_OK)
			rc = sealed ? seal_take(b, sealed)
			            : tern_fail(TERN_ENOMEM, "out of memory for a sealed chunk");
		if (rc != TERN_OK)
			seal_fail(b, rc);
		pthread_mutex_lock(&b->mu);
		b->done = seen;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	free(sealed);
	return NULL;
}

int tern_attach_seal_fd(int in_fd, uint64_t size, uint32_t chunk_size, const uint8_t key[32],
                        const char *msgid, uint32_t attachment, int out_fd,
                        Tern__V1__AttachmentSeal *seal, uint8_t root_out[32], uint8_t sha256[32],
                        tern_hash **leaves)
{
	off_t paced = 0;
	uint64_t n = tern_attach_chunks(size, chunk_size);
	struct seal_batch b = {.key = key,
	                       .msgid = msgid,
	                       .attachment = attachment,
	                       .chunk_size = chunk_size,
	                       .size = size,
	                       .out_fd = out_fd};
	uint8_t *sealed = NULL;
	pthread_t helper;
	int rc = TERN_OK, started = 0;

	if (leaves)
		*leaves = NULL;
	if (size == 0 || chunk_size < TERN_ATTACH_CHUNK_MIN || chunk_size > TERN_ATTACH_CHUNK_MAX)
		return tern_fail(TERN_EINVAL,
		                 "seal attachment: size 0 or chunk size out of bounds");
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.plain = malloc((size_t)chunk_size * SEAL_BATCH);
	sealed = malloc((size_t)chunk_size + TERN_ATTACH_TAG_LEN);
	b.lv = malloc(n * sizeof(*b.lv));
	if (b.plain == NULL || sealed == NULL || b.lv == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_sha256_new(&b.st)) != TERN_OK)
		goto out;
	if (pthread_create(&helper, NULL, seal_helper, &b) != 0) {
		rc = tern_fail(TERN_EIO, "cannot start a sealing thread");
		goto out;
	}
	started = 1;
	for (uint64_t i = 0; i < n && rc == TERN_OK; i += SEAL_BATCH) {
		uint64_t count = n - i < SEAL_BATCH ? n - i : SEAL_BATCH, bytes = 0;
		for (uint64_t k = 0; k < count; k++)
			bytes += tern_attach_chunk_len(size, chunk_size, i + k);
		/* The helper is idle here: the batch's fields are the caller's. */
		if ((rc = read_full(in_fd, b.plain, (size_t)bytes, i * (uint64_t)chunk_size)) !=
		    TERN_OK)
			break;
		pthread_mutex_lock(&b.mu);
		b.first = i;
		b.count = count;
		b.next = 0;
		b.batch++;
		pthread_cond_broadcast(&b.cv);
		pthread_mutex_unlock(&b.mu);
		if ((rc = seal_take(&b, sealed)) != TERN_OK)
			seal_fail(&b, rc);
		pthread_mutex_lock(&b.mu);
		while (b.done != b.batch)
			pthread_cond_wait(&b.cv, &b.mu);
		rc = b.rc;
		pthread_mutex_unlock(&b.mu);
		if (rc != TERN_OK) {
			rc = tern_fail(rc, "%s", b.why);
			errno = b.err;
		} else
			pace_writeback(out_fd, (off_t)tern_attach_slot(chunk_size, i + count),
			               &paced);
	}
	if (rc != TERN_OK)
		goto out;
	if ((rc = tern_sha256_final(b.st, sha256)) != TERN_OK)
		goto out;
	if ((rc = tern_merkle_root(b.lv, n, root_out)) != TERN_OK)
		goto out;
	tern__v1__attachment_seal__init(seal);
	seal->size = size;
	seal->chunk_size = chunk_size;
	seal->root.data = root_out;
	seal->root.len = TERN_HASH_LEN;
	if (leaves) {
		*leaves = b.lv;
		b.lv = NULL;
	}
out:
	if (started) {
		pthread_mutex_lock(&b.mu);
		b.stop = 1;
		pthread_cond_broadcast(&b.cv);
		pthread_mutex_unlock(&b.mu);
		pthread_join(helper, NULL);
	}
	tern_sha256_free(&b.st);
	if (b.plain)
		sodium_memzero(b.plain, (size_t)chunk_size * SEAL_BATCH);
	free(b.plain);
	free(sealed);
	free(b.lv);
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv);
	return rc;
}

int tern_attach_open_fd(int fd, const Tern__V1__AttachmentSeal *seal, const uint8_t key[32],
                        const char *msgid, uint32_t attachment, uint64_t from, uint64_t to,
                        tern_attach_piece_fn *fn, void *arg, uint8_t sha256[32])
{
	uint32_t cs = seal->chunk_size;
	uint64_t n = tern_attach_chunks(seal->size, cs);
	tern_sha256_ctx *st = NULL;
	uint8_t *plain = NULL, *sealed = NULL;
	int rc = TERN_OK;

	if (cs < TERN_ATTACH_CHUNK_MIN || cs > TERN_ATTACH_CHUNK_MAX || to > seal->size ||
	    from > to)
		return tern_fail(TERN_EINVAL, "open attachment: bad seal or range");
	plain = malloc(cs);
	sealed = malloc((size_t)cs + TERN_ATTACH_TAG_LEN);
	if (plain == NULL || sealed == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_sha256_new(&st)) != TERN_OK)
		goto out;
	for (uint64_t i = from / cs; i < n && i * (uint64_t)cs < to; i++) {
		size_t len = tern_attach_chunk_len(seal->size, cs, i), plen;
		uint64_t start = i * (uint64_t)cs, a, b;
		if ((rc = read_full(fd, sealed, len + TERN_ATTACH_TAG_LEN,
		                    tern_attach_slot(cs, i))) != TERN_OK)
			goto out;
		if ((rc = tern_attach_chunk_open(key, msgid, attachment, i, sealed,
		                                 len + TERN_ATTACH_TAG_LEN, plain, &plen)) !=
		    TERN_OK)
			goto out;
		if ((rc = tern_sha256_update(st, plain, plen)) != TERN_OK)
			goto out;
		a = from > start ? from - start : 0;
		b = to < start + plen ? to - start : plen;
		if (fn && b > a && (rc = fn(arg, start + a, plain + a, (size_t)(b - a))) != TERN_OK)
			goto out;
	}
	if (sha256)
		rc = tern_sha256_final(st, sha256);
out:
	tern_sha256_free(&st);
	if (plain)
		sodium_memzero(plain, cs);
	free(plain);
	free(sealed);
	return rc;
}

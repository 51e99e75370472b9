/* Attachment chunks (tern/attach.h): sealing and opening, each chunk checked
 * alone against its seal, and every way a chunk could be moved refused:
 * altered, swapped, reordered, cut, taken from another attachment or
 * another message. Also whole files through a spool, and an envelope that
 * signs the seals with the id and key the sender chose. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/merkle.h>

#include "testutil.h"

#define MSGID "01900000-0000-7000-8000-000000000001"
#define OTHER "01900000-0000-7000-8000-000000000002"
#define CS TERN_ATTACH_CHUNK_MIN

static void test_counts(void **state)
{
	(void)state;
	assert_int_equal(tern_attach_chunks(1, CS), 1);
	assert_int_equal(tern_attach_chunks(CS, CS), 1);
	assert_int_equal(tern_attach_chunks(CS + 1, CS), 2);
	assert_int_equal(tern_attach_chunk_len(CS + 1, CS, 0), CS);
	assert_int_equal(tern_attach_chunk_len(CS + 1, CS, 1), 1);
	assert_int_equal(tern_attach_chunk_len(CS + 1, CS, 2), 0);
	assert_int_equal(tern_attach_slot(CS, 3), 3 * (uint64_t)(CS + TERN_ATTACH_TAG_LEN));
}

/* An attachment of n chunks sealed in memory, with its leaves and root. */
struct sealed {
	uint8_t key[32];
	uint8_t **chunk;
	size_t *len;
	tern_hash *leaves;
	uint8_t root[32];
	Tern__V1__AttachmentSeal seal;
	uint64_t n;
};

static void seal_mem(struct sealed *s, const char *msgid, uint32_t att, uint64_t size)
{
	uint8_t ck[32], *plain = malloc(CS);

	memset(ck, 7, sizeof(ck));
	assert_int_equal(tern_attach_key(ck, att, s->key), TERN_OK);
	s->n = tern_attach_chunks(size, CS);
	s->chunk = calloc(s->n, sizeof(*s->chunk));
	s->len = calloc(s->n, sizeof(*s->len));
	s->leaves = calloc(s->n, sizeof(*s->leaves));
	for (uint64_t i = 0; i < s->n; i++) {
		size_t len = tern_attach_chunk_len(size, CS, i);
		memset(plain, (int)(i + 1), len);
		s->chunk[i] = malloc(len + TERN_ATTACH_TAG_LEN);
		s->len[i] = len + TERN_ATTACH_TAG_LEN;
		assert_int_equal(
		    tern_attach_chunk_seal(s->key, msgid, att, i, plain, len, s->chunk[i]),
		    TERN_OK);
		tern_merkle_leaf_hash(s->chunk[i], s->len[i], s->leaves[i]);
	}
	assert_int_equal(tern_merkle_root(s->leaves, s->n, s->root), TERN_OK);
	tern__v1__attachment_seal__init(&s->seal);
	s->seal.size = size;
	s->seal.chunk_size = CS;
	s->seal.root.data = s->root;
	s->seal.root.len = 32;
	free(plain);
}

static void sealed_free(struct sealed *s)
{
	for (uint64_t i = 0; i < s->n; i++)
		free(s->chunk[i]);
	free(s->chunk);
	free(s->len);
	free(s->leaves);
}

static int verify(const struct sealed *s, uint64_t index, const uint8_t *data, size_t len,
                  uint64_t proof_for)
{
	tern_hash proof[TERN_MERKLE_MAX_PROOF];
	size_t np = 0;

	assert_int_equal(tern_merkle_inclusion_proof(s->leaves, s->n, proof_for, proof, &np),
	                 TERN_OK);
	return tern_attach_chunk_verify(&s->seal, index, data, len, proof, np);
}

static void test_each_chunk_alone(void **state)
{
	struct sealed s, other;
	uint8_t plain[CS];
	size_t plen;

	(void)state;
	seal_mem(&s, MSGID, 0, 5 * CS + 100);
	seal_mem(&other, OTHER, 0, 5 * CS + 100);
	for (uint64_t i = 0; i < s.n; i++) {
		assert_int_equal(verify(&s, i, s.chunk[i], s.len[i], i), TERN_OK);
		assert_int_equal(
		    tern_attach_chunk_open(s.key, MSGID, 0, i, s.chunk[i], s.len[i], plain, &plen),
		    TERN_OK);
		assert_int_equal(plen, s.len[i] - TERN_ATTACH_TAG_LEN);
		assert_int_equal(plain[0], (uint8_t)(i + 1));
	}
	/* swapped or reordered: chunk 1 offered as chunk 2 (with 2's proof or 1's) */
	assert_int_equal(verify(&s, 2, s.chunk[1], s.len[1], 2), TERN_EDIGEST);
	assert_int_equal(verify(&s, 2, s.chunk[1], s.len[1], 1), TERN_EDIGEST);
	/* altered: one bit */
	s.chunk[3][10] ^= 1;
	assert_int_equal(verify(&s, 3, s.chunk[3], s.len[3], 3), TERN_EDIGEST);
	assert_int_equal(
	    tern_attach_chunk_open(s.key, MSGID, 0, 3, s.chunk[3], s.len[3], plain, &plen),
	    TERN_EDECRYPT);
	s.chunk[3][10] ^= 1;
	/* cut: the last chunk short, or a full chunk where the short one goes */
	assert_int_equal(verify(&s, 5, s.chunk[5], s.len[5] - 1, 5), TERN_EMALFORMED);
	assert_int_equal(verify(&s, 5, s.chunk[4], s.len[4], 5), TERN_EMALFORMED);
	/* past the end */
	assert_int_equal(verify(&s, 6, s.chunk[5], s.len[5], 5), TERN_EMALFORMED);
	/* from another message: same plaintext, same position, another seal */
	assert_int_equal(verify(&s, 1, other.chunk[1], other.len[1], 1), TERN_EDIGEST);
	/* opened as another message's, or another attachment's, or at another place */
	assert_int_equal(
	    tern_attach_chunk_open(s.key, OTHER, 0, 1, s.chunk[1], s.len[1], plain, &plen),
	    TERN_EDECRYPT);
	assert_int_equal(
	    tern_attach_chunk_open(s.key, MSGID, 1, 1, s.chunk[1], s.len[1], plain, &plen),
	    TERN_EDECRYPT);
	assert_int_equal(
	    tern_attach_chunk_open(s.key, MSGID, 0, 2, s.chunk[1], s.len[1], plain, &plen),
	    TERN_EDECRYPT);
	sealed_free(&s);
	sealed_free(&other);
}

static void test_keys_differ(void **state)
{
	uint8_t ck[32], k0[32], k1[32], k0b[32];

	(void)state;
	memset(ck, 1, sizeof(ck));
	assert_int_equal(tern_attach_key(ck, 0, k0), TERN_OK);
	assert_int_equal(tern_attach_key(ck, 1, k1), TERN_OK);
	assert_int_equal(tern_attach_key(ck, 0, k0b), TERN_OK);
	assert_memory_not_equal(k0, k1, 32);
	assert_memory_equal(k0, k0b, 32);
	assert_memory_not_equal(k0, ck, 32);
}

static void test_seals_check(void **state)
{
	Tern__V1__AttachmentSeal a = TERN__V1__ATTACHMENT_SEAL__INIT, b;
	const Tern__V1__AttachmentSeal *v[2] = {&a, &b};
	uint8_t root[32] = {0};

	(void)state;
	a.size = 100;
	a.chunk_size = CS;
	a.root.data = root;
	a.root.len = 32;
	b = a;
	assert_int_equal(tern_attach_seals_check(v, 2, 0, 0), TERN_OK);
	assert_int_equal(tern_attach_seals_check(v, 2, 100, 200), TERN_OK);
	assert_int_equal(tern_attach_seals_check(v, 2, 99, 0), TERN_ETOOBIG);
	assert_int_equal(tern_attach_seals_check(v, 2, 100, 199), TERN_ETOOBIG);
	b.chunk_size = CS - 1;
	assert_int_equal(tern_attach_seals_check(v, 2, 0, 0), TERN_EMALFORMED);
	b.chunk_size = TERN_ATTACH_CHUNK_MAX + 1;
	assert_int_equal(tern_attach_seals_check(v, 2, 0, 0), TERN_EMALFORMED);
	b = a;
	b.size = 0;
	assert_int_equal(tern_attach_seals_check(v, 2, 0, 0), TERN_EMALFORMED);
	b = a;
	b.root.len = 31;
	assert_int_equal(tern_attach_seals_check(v, 2, 0, 0), TERN_EMALFORMED);
	assert_int_equal(tern_attach_seals_check(v, TERN_ATTACH_MAX_COUNT + 1, 0, 0),
	                 TERN_EMALFORMED);
}

struct collect {
	uint8_t *buf;
	size_t len;
};

static int collect(void *arg, uint64_t off, const uint8_t *buf, size_t len)
{
	struct collect *c = arg;
	(void)off;
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return TERN_OK;
}

/* A file sealed into a spool and opened back, whole and in ranges. */
static void test_files(void **state)
{
	char dir[] = "/tmp/tern-attach-XXXXXX", in[64], out[64];
	uint64_t size = 3 * CS + 12345;
	uint8_t *data = malloc(size), *back = malloc(size), ck[32], key[32], root[32];
	uint8_t sha[32], sha2[32], want[32];
	Tern__V1__AttachmentSeal seal;
	tern_hash *leaves = NULL, proof[TERN_MERKLE_MAX_PROOF];
	struct collect c = {back, 0};
	size_t np;
	int fi, fo;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(in, sizeof(in), "%s/in", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	randombytes_buf(data, size);
	randombytes_buf(ck, sizeof(ck));
	fi = open(in, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fi, data, size), (ssize_t)size);
	fo = open(out, O_RDWR | O_CREAT, 0600);
	assert_int_equal(tern_attach_key(ck, 2, key), TERN_OK);
	assert_int_equal(
	    tern_attach_seal_fd(fi, size, CS, key, MSGID, 2, fo, &seal, root, sha, &leaves),
	    TERN_OK);
	tern_sha256(data, size, want);
	assert_memory_equal(sha, want, 32);
	assert_int_equal(seal.size, size);
	/* each chunk of the spool checks against the seal */
	for (uint64_t i = 0; i < 4; i++) {
		size_t len = tern_attach_chunk_len(size, CS, i) + TERN_ATTACH_TAG_LEN;
		uint8_t *buf = malloc(len);
		assert_int_equal(pread(fo, buf, len, (off_t)tern_attach_slot(CS, i)), (ssize_t)len);
		assert_int_equal(tern_merkle_inclusion_proof(leaves, 4, i, proof, &np), TERN_OK);
		assert_int_equal(tern_attach_chunk_verify(&seal, i, buf, len, proof, np), TERN_OK);
		free(buf);
	}
	assert_int_equal(tern_attach_open_fd(fo, &seal, key, MSGID, 2, 0, size, collect, &c, sha2),
	                 TERN_OK);
	assert_int_equal(c.len, size);
	assert_memory_equal(back, data, size);
	assert_memory_equal(sha2, want, 32);
	/* a range across a chunk boundary */
	c.len = 0;
	assert_int_equal(
	    tern_attach_open_fd(fo, &seal, key, MSGID, 2, CS - 10, CS + 20, collect, &c, NULL),
	    TERN_OK);
	assert_int_equal(c.len, 30);
	assert_memory_equal(back, data + CS - 10, 30);
	/* the wrong key: nothing comes out */
	key[0] ^= 1;
	c.len = 0;
	assert_int_equal(tern_attach_open_fd(fo, &seal, key, MSGID, 2, 0, size, collect, &c, NULL),
	                 TERN_EDECRYPT);
	assert_int_equal(c.len, 0);
	/* a file shorter than it says */
	assert_int_equal(
	    tern_attach_seal_fd(fi, size + 1, CS, key, MSGID, 2, fo, &seal, root, sha, NULL),
	    TERN_EMALFORMED);
	close(fi);
	close(fo);
	unlink(in);
	unlink(out);
	rmdir(dir);
	free(leaves);
	free(data);
	free(back);
}

/* A seal over several batches of chunks (attach.c seals on two threads, 8
 * chunks a batch): every chunk in the spool is the one sealed alone at its
 * index, the leaves are their hashes, the digest the whole plaintext's; a
 * write that fails on either thread fails the seal, and it returns. */
static void test_seal_batches(void **state)
{
	char dir[] = "/tmp/tern-attach-XXXXXX", in[64], out[64];
	uint64_t size = 19 * (uint64_t)CS + 777, n = tern_attach_chunks(size, CS);
	uint8_t *data = malloc(size), key[32], root[32], sha[32], want[32];
	uint8_t *buf = malloc(CS + TERN_ATTACH_TAG_LEN), *ref = malloc(CS + TERN_ATTACH_TAG_LEN);
	Tern__V1__AttachmentSeal seal;
	tern_hash *leaves = NULL, leaf;
	int fi, fo;

	(void)state;
	assert_int_equal(n, 20);
	assert_non_null(mkdtemp(dir));
	snprintf(in, sizeof(in), "%s/in", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	randombytes_buf(data, size);
	randombytes_buf(key, sizeof(key));
	fi = open(in, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fi, data, size), (ssize_t)size);
	fo = open(out, O_RDWR | O_CREAT, 0600);
	assert_int_equal(
	    tern_attach_seal_fd(fi, size, CS, key, MSGID, 0, fo, &seal, root, sha, &leaves),
	    TERN_OK);
	tern_sha256(data, size, want);
	assert_memory_equal(sha, want, 32);
	for (uint64_t i = 0; i < n; i++) {
		size_t len = tern_attach_chunk_len(size, CS, i);
		assert_int_equal(tern_attach_chunk_seal(key, MSGID, 0, i, data + i * CS, len, ref),
		                 TERN_OK);
		assert_int_equal(pread(fo, buf, len + TERN_ATTACH_TAG_LEN,
		                       (off_t)tern_attach_slot(CS, i)),
		                 (ssize_t)(len + TERN_ATTACH_TAG_LEN));
		assert_memory_equal(buf, ref, len + TERN_ATTACH_TAG_LEN);
		tern_merkle_leaf_hash(ref, len + TERN_ATTACH_TAG_LEN, leaf);
		assert_memory_equal(leaves[i], leaf, sizeof(leaf));
	}
	close(fo);
	/* every write fails (a descriptor open for reading only) */
	fo = open(out, O_RDONLY);
	assert_int_equal(tern_attach_seal_fd(fi, size, CS, key, MSGID, 0, fo, &seal, root, sha, NULL),
	                 TERN_EIO);
	close(fo);
	/* the file ends in the last batch */
	fo = open(out, O_RDWR);
	assert_int_equal(
	    tern_attach_seal_fd(fi, size + CS, CS, key, MSGID, 0, fo, &seal, root, sha, NULL),
	    TERN_EMALFORMED);
	close(fo);
	close(fi);
	unlink(in);
	unlink(out);
	rmdir(dir);
	free(leaves);
	free(data);
	free(buf);
	free(ref);
}

/* What a node seals from when a client passes a file by descriptor: a
 * regular file open for reading, on a local file system; not a directory,
 * a pipe, a write-only, O_PATH or O_DIRECT descriptor. The positive case
 * needs a directory on a local disk or tmpfs (the test's own, or
 * /dev/shm): skipped where there is none (overlayfs everywhere). */
static void test_fd_check(void **state)
{
	const char *bases[] = {NULL, "/dev/shm"};
	char dir[256], path[300];
	int fd, p[2], ok = 0;
	uint64_t size = 0;

	(void)state;
	assert_int_equal(tt_mkdtemp(dir, sizeof(dir), "fdcheck"), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "12345", 5), 5);
	assert_int_equal(tern_attach_fd_check(fd, &size), TERN_EINVAL); /* write-only */
	close(fd);
	fd = open(path, O_PATH | O_CLOEXEC);
	assert_int_equal(tern_attach_fd_check(fd, &size), TERN_EINVAL);
	close(fd);
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd >= 0) { /* tmpfs takes no O_DIRECT */
		assert_int_equal(tern_attach_fd_check(fd, &size), TERN_EINVAL);
		close(fd);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(tern_attach_fd_check(fd, &size), TERN_EINVAL);
	close(fd);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(tern_attach_fd_check(p[0], &size), TERN_EINVAL);
	close(p[0]);
	close(p[1]);
	assert_int_equal(tern_attach_fd_check(-1, &size), TERN_EINVAL);
	/* /proc's files are regular and not a disk's */
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_int_equal(tern_attach_fd_check(fd, &size), TERN_EINVAL);
	close(fd);
	for (size_t i = 0; i < 2 && !ok; i++) {
		char f2[320];
		snprintf(f2, sizeof(f2), "%s/tern-fdcheck-%d", bases[i] ? bases[i] : dir,
		         (int)getpid());
		if ((fd = open(f2, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
			continue;
		assert_int_equal(write(fd, "12345", 5), 5);
		if (tern_attach_fd_check(fd, &size) == TERN_OK) {
			assert_int_equal(size, 5);
			ok = 1;
		}
		close(fd);
		unlink(f2);
	}
	tt_rmtree(dir);
	if (!ok)
		skip(); /* no local disk or tmpfs here to accept a file from */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts),      cmocka_unit_test(test_each_chunk_alone),
	    cmocka_unit_test(test_keys_differ), cmocka_unit_test(test_seals_check),
	    cmocka_unit_test(test_files),       cmocka_unit_test(test_seal_batches),
	    cmocka_unit_test(test_fd_check),
	};
	tern_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

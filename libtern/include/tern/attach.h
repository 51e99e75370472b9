/* Attachments: the files a message declares, carried beside its envelope in
 * sealed chunks (docs/attachments.md has the format byte by byte).
 *
 * Attachment i of a message is cut into chunks of chunk_size plaintext
 * bytes (the last one holds the rest). Each chunk is sealed with
 * ChaCha20-Poly1305 under a key derived from the message's content key, so
 * whoever can open the body, and only they, can open its chunks; the nonce
 * and the associated data name the message, the attachment and the chunk.
 * The RFC 6962 root over the sealed chunks goes into the signed header
 * (tern.v1.AttachmentSeal), so each chunk, with its inclusion proof, is
 * checked alone against the sender's signature: by the broker, which cannot
 * read it, and by the recipient.
 *
 * Sealed chunks are stored at fixed places in a spool file: chunk k at
 * k * (chunk_size + TERN_ATTACH_TAG_LEN), so that a transfer resumes at any
 * chunk without an index. Functions return TERN_OK or an error code with
 * tern_errdetail() saying which chunk; nothing here logs.
 */
#ifndef TERN_ATTACH_H
#define TERN_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include <tern/merkle.h>
#include <tern/v1/envelope.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_ATTACH_TAG_LEN 16
/* The chunk size a node seals with, and the bounds a receiver accepts. */
#define TERN_ATTACH_CHUNK_DEFAULT (1u << 20)
#define TERN_ATTACH_CHUNK_MIN (16u << 10)
#define TERN_ATTACH_CHUNK_MAX (4u << 20)
/* Attachments one message may carry (the header's repeated seal). */
#define TERN_ATTACH_MAX_COUNT 32
/* The [limits] defaults: bytes per attachment, and per message in all. */
#define TERN_ATTACH_MAX_SIZE_DEFAULT (2ull << 30)
/* The most [limits] max_attachment_size may be set to: no attachment a node
 * sends, receives or records is larger. */
#define TERN_ATTACH_MAX_SIZE_LIMIT (64ull << 30)
#define TERN_ATTACH_MAX_TOTAL_DEFAULT (4ull << 30)

/* How many chunks an attachment of size bytes has (size > 0, chunk_size > 0). */
uint64_t tern_attach_chunks(uint64_t size, uint32_t chunk_size);
/* Plaintext bytes of chunk index (0 when index is past the end). */
size_t tern_attach_chunk_len(uint64_t size, uint32_t chunk_size, uint64_t index);
/* Where chunk index starts in a spool file. */
uint64_t tern_attach_slot(uint32_t chunk_size, uint64_t index);

/* Checks a header's seals: at most TERN_ATTACH_MAX_COUNT, each size in
 * 1..max_size, chunk_size within bounds, a 32-byte root, and the sizes'
 * sum at most max_total. TERN_EMALFORMED for a seal no sender makes,
 * TERN_ETOOBIG for one over the limits; tern_errdetail() names it. */
int tern_attach_seals_check(const Tern__V1__AttachmentSeal *const *seals, size_t n,
                            uint64_t max_size, uint64_t max_total);

/* The key attachment `index` of a message is sealed under, from the
 * message's content key (HKDF-SHA256; docs/attachments.md). */
int tern_attach_key(const uint8_t content_key[32], uint32_t attachment, uint8_t key[32]);

/* Seals chunk `index` of attachment `attachment` of message msgid: out
 * receives len + TERN_ATTACH_TAG_LEN bytes. */
int tern_attach_chunk_seal(const uint8_t key[32], const char *msgid, uint32_t attachment,
                           uint64_t index, const uint8_t *plain, size_t len, uint8_t *out);
/* Opens one: *out_len = len - TERN_ATTACH_TAG_LEN bytes into out, only
 * after the tag verified (TERN_EDECRYPT otherwise). */
int tern_attach_chunk_open(const uint8_t key[32], const char *msgid, uint32_t attachment,
                           uint64_t index, const uint8_t *sealed, size_t len, uint8_t *out,
                           size_t *out_len);

/* Checks one sealed chunk against its seal: its length is the one chunk
 * `index` must have, and its leaf hash with proof (nproof 32-byte hashes)
 * leads to seal->root. TERN_EMALFORMED for a wrong length or index,
 * TERN_EDIGEST for a chunk that is not the signed one. */
int tern_attach_chunk_verify(const Tern__V1__AttachmentSeal *seal, uint64_t index,
                             const uint8_t *sealed, size_t len, const tern_hash *proof,
                             size_t nproof);

/* Seals a whole attachment: reads size plaintext bytes from in_fd (from
 * offset 0), writes every sealed chunk at its slot of out_fd, and fills
 * seal (size, chunk_size, root; root points into root_out) and sha256 (the
 * plaintext's digest). leaves, if not NULL, receives the chunk leaf hashes
 * (malloc'd, tern_attach_chunks() of them; the caller frees). Does not sync
 * out_fd, but starts its writeback every 32 MiB and waits for the 32 MiB
 * before (sync_file_range), so that the caller's fdatasync is short and the
 * disk is never handed a gigabyte at once. TERN_EIO when a read or write fails (TERN_EMALFORMED if in_fd
 * holds fewer than size bytes). Runs on the caller's thread and one it
 * starts and joins before it returns (the plaintext's hash beside the
 * chunks' sealing); holds 8 chunks of plaintext at a time. */
int tern_attach_seal_fd(int in_fd, uint64_t size, uint32_t chunk_size, const uint8_t key[32],
                        const char *msgid, uint32_t attachment, int out_fd,
                        Tern__V1__AttachmentSeal *seal, uint8_t root_out[32],
                        uint8_t sha256[32], tern_hash **leaves);

/* Whether a node may seal straight from fd, a file a client passed by
 * descriptor (docs/api.md, "Files by descriptor"): a regular file, open for
 * reading (not O_DIRECT), on a local file system whose reads cannot hang
 * (ext2/3/4, XFS, Btrfs, F2FS, tmpfs, ramfs); not on NFS, SMB, FUSE,
 * overlayfs (whose lower layer may be any of them) or another network file
 * system, whose reads could hold the sealing thread for good. Asks nothing
 * of the file system itself: the kernel's cached attributes and
 * /proc/self/mountinfo. *size: its bytes now. TERN_EINVAL otherwise,
 * tern_errdetail() says why. */
int tern_attach_fd_check(int fd, uint64_t *size);

/* Opens every chunk of an attachment from spool file fd in order, giving
 * each plaintext piece to fn (if not NULL), and computes the plaintext's
 * SHA-256. Chunks are checked against their tags only (a spool's chunks
 * were checked against the seal when they came). TERN_EDECRYPT names the
 * first chunk that does not open; fn's non-zero return stops with it. */
typedef int tern_attach_piece_fn(void *arg, uint64_t offset, const uint8_t *buf, size_t len);
int tern_attach_open_fd(int fd, const Tern__V1__AttachmentSeal *seal, const uint8_t key[32],
                        const char *msgid, uint32_t attachment, uint64_t from, uint64_t to,
                        tern_attach_piece_fn *fn, void *arg, uint8_t sha256[32]);

#ifdef __cplusplus
}
#endif

#endif

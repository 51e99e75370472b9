/* Internal helpers shared by libtern modules and the programs built on it.
 * Not installed: nothing outside this repository may include it.
 */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Records a detail sentence for tern_errdetail(); returns code so callers can
 * write `return tern_fail(TERN_EIO, "cannot read %s: %s", path, strerror(errno));`. */
int tern_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tern_errdetail_clear(void);

/* Reads a whole file of at most max bytes. *out is malloc'd with one NUL byte
 * after the data (so text can be parsed in place); the caller frees it. */
int tern_file_read(const char *path, size_t max, uint8_t **out, size_t *len);
/* Reads a private key file: refuses (TERN_EPERM) one that group or others may
 * access or that belongs to another user, and a symbolic link. Wipe the buffer
 * (sodium_memzero) before freeing it. */
int tern_file_read_private(const char *path, size_t max, uint8_t **out, size_t *len);
/* Writes atomically (temporary file, fsync, rename, fsync of the directory)
 * with the given mode; the mode is set before any data is written, so a
 * private key is never briefly world-readable. */
int tern_file_write(const char *path, const void *buf, size_t len, mode_t mode);
/* "a named pipe (FIFO)", "a directory", ... for messages about a file that
 * is not what it should be. */
const char *tern_file_kind(mode_t mode);

/* Writes at most max bytes of buf to out (outlen bytes, NUL-terminated) with
 * everything but printable ASCII as \xNN and '\' as "\\", and "..." when
 * cut short: what a file holds can be quoted in a message without bringing
 * control bytes or invalid text to a terminal or a log. Returns the length
 * written. outlen >= 4 * max + 4 always holds the whole result. */
size_t tern_escape(const void *buf, size_t len, size_t max, char *out, size_t outlen);

/* StrictModes (as OpenSSH's): TERN_EPERM if anyone but this user and root
 * could change what path holds: path (with TERN_STRICT_SELF) and every
 * directory above it, symbolic links resolved, up to but not including "/",
 * must be owned by this user or root (any owner when this user is root) and
 * not writable by group or others -- except a directory owned by root with
 * the sticky bit set, such as /tmp. A path that does not exist is not an
 * error here (its opener reports it); the directories above it are checked.
 * On failure bad (if not NULL) gets the offending component, so a caller
 * checking many paths can report each component once. */
#define TERN_STRICT_SELF 1
int tern_path_check_strict(const char *path, int flags, char *bad, size_t badlen);

/* TERN_EPERM if group or others may read or write path. */
int tern_file_check_private(const char *path);
/* mkdir -p with mode for the directories it creates. */
int tern_mkdirs(const char *path, mode_t mode);
/* Bulk data (attachment chunks) leaves this much of a disk free, so that
 * the store's own small writes (ordinary messages, receipts, the audit
 * log) still fit when a transfer has filled the rest. */
#define TERN_DISK_RESERVE (32ull * 1024 * 1024)
/* TERN_OK if the filesystem holding dir has need bytes free beyond
 * TERN_DISK_RESERVE; TERN_EIO with errno ENOSPC (and a detail saying how
 * much is free) if not. A statvfs that fails says nothing: TERN_OK. */
int tern_disk_room(const char *dir, uint64_t need);

/* Resolves rel against the directory that holds base_file (absolute rel is
 * returned as is). *out is malloc'd. */
int tern_path_resolve(const char *base_file, const char *rel, char **out);

int64_t tern_now_ms(void);
/* ms since the epoch as RFC 3339 UTC with milliseconds, such as
 * "2026-12-06T12:21:09.818Z"; TERN_EINVAL for a negative or unrepresentable
 * time. */
#define TERN_RFC3339_LEN 32
int tern_time_rfc3339(int64_t ms, char out[TERN_RFC3339_LEN]);

/* Room for one more element of size bytes in *arr (n used of *cap): doubles
 * *cap (64 at first) when full. TERN_ENOMEM when memory runs out or the size
 * would overflow, with *arr and *cap as they were: nothing leaked or lost. */
int tern_grow(void **arr, size_t n, size_t *cap, size_t size);
#define TERN_GROW(arr, n, cap) tern_grow((void **)&(arr), (n), &(cap), sizeof(*(arr)))

/* Node ids: 1..63 of [a-z0-9-], starting with a letter. */
int tern_node_id_valid(const char *id);

/* Big-endian u64 keys sort in numeric order (LMDB's MDB_APPEND works on them). */
static inline void tern_be64_put(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

static inline uint64_t tern_be64_get(const uint8_t in[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void tern_hex(const uint8_t *buf, size_t len, char *out);

#endif

#include <errno.h>
#include <sys/statvfs.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <tern/error.h>

#include "util.h"

/* Reads the open fd (whose fstat is st) into a malloc'd, NUL-terminated buffer. */
static int read_fd(int fd, const struct stat *st, const char *path, size_t max, uint8_t **out,
                   size_t *len)
{
	uint8_t *buf;
	size_t got = 0;

	if ((size_t)st->st_size > max)
		return tern_fail(TERN_ETOOBIG, "%s is %lld bytes, over the limit of %zu", path,
		                 (long long)st->st_size, max);
	if ((buf = malloc((size_t)st->st_size + 1)) == NULL)
		return TERN_ENOMEM;
	while (got < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return tern_fail(TERN_EIO, "cannot read %s: %s", path,
			                 n == 0 ? "file shrank while reading" : strerror(errno));
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return TERN_OK;
}

const char *tern_file_kind(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a named pipe (FIFO)";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISLNK(mode))
		return "a symbolic link";
	return "not a regular file";
}

/* O_NONBLOCK: opening a named pipe for reading would otherwise wait for a
 * writer, and a daemon (or -n) would hang on a misconfigured path. A regular
 * file is read the same way with or without it; anything else is refused on
 * the descriptor's own fstat, before a byte is read. */
static int open_read(const char *path, int extra_flags, int *fd, struct stat *st)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | extra_flags);
	if (*fd < 0) {
		int e = errno;
		struct stat lst;

		if (e == ELOOP && (extra_flags & O_NOFOLLOW))
			return tern_fail(
			    TERN_EIO,
			    "cannot open %s: a private file may not be a symbolic link "
			    "(point the setting at the file itself)",
			    path);
		/* A Unix socket cannot be opened at all (ENXIO): say what it is. */
		if (e == ENXIO && lstat(path, &lst) == 0)
			return tern_fail(TERN_EIO, "%s is %s, not a regular file", path,
			                 tern_file_kind(lst.st_mode));
		return tern_fail(e == ENOENT ? TERN_ENOENT : TERN_EIO, "cannot open %s: %s", path,
		                 strerror(e));
	}
	if (fstat(*fd, st) != 0) {
		close(*fd);
		return tern_fail(TERN_EIO, "cannot stat %s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st->st_mode)) {
		close(*fd);
		return tern_fail(TERN_EIO,
		                 "%s is %s, not a regular file; Tern reads only regular files",
		                 path, tern_file_kind(st->st_mode));
	}
	return TERN_OK;
}

int tern_file_read(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	int fd, rc;

	if ((rc = open_read(path, 0, &fd, &st)) != TERN_OK)
		return rc;
	rc = read_fd(fd, &st, path, max, out, len);
	close(fd);
	return rc;
}

/* The checks run on the descriptor that is read, so the file cannot be
 * swapped between check and use. */
int tern_file_read_private(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	int fd, rc;

	if ((rc = open_read(path, O_NOFOLLOW, &fd, &st)) != TERN_OK)
		return rc;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		rc = tern_fail(
		    TERN_EPERM,
		    "%s has mode %04o; a private key or token must be 0600 (chmod 600 %s)", path,
		    (unsigned)(st.st_mode & 07777), path);
	else if (st.st_uid != geteuid() && geteuid() != 0)
		rc = tern_fail(TERN_EPERM, "%s belongs to uid %u, not to this user (uid %u)", path,
		               (unsigned)st.st_uid, (unsigned)geteuid());
	else
		rc = read_fd(fd, &st, path, max, out, len);
	close(fd);
	return rc;
}

int tern_file_write(const char *path, const void *buf, size_t len, mode_t mode)
{
	char *tmp = NULL, *dcopy = NULL;
	const uint8_t *p = buf;
	int fd = -1, dfd, rc;
	size_t off = 0;

	/* An unpredictable name opened O_EXCL|O_NOFOLLOW: nobody can plant a
	 * link there that would redirect the write. */
	if (asprintf(&tmp, "%s.tmp.%08x%08x", path, randombytes_random(), randombytes_random()) < 0)
		return TERN_ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = tern_fail(TERN_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* open() honours the umask; fchmod makes the mode exact before data lands. */
	if (fchmod(fd, mode) != 0) {
		rc = tern_fail(TERN_EIO, "cannot chmod %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tern_fail(TERN_EIO, "cannot write %s: %s", tmp, strerror(errno));
			goto out_unlink;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = tern_fail(TERN_EIO, "cannot sync %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	rc = close(fd);
	fd = -1;
	if (rc != 0) {
		rc = tern_fail(TERN_EIO, "cannot close %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	if (rename(tmp, path) != 0) {
		rc = tern_fail(TERN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out_unlink;
	}
	dcopy = strdup(path);
	if (dcopy != NULL &&
	    (dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = TERN_OK;
	goto out;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(dcopy);
	free(tmp);
	return rc;
}

int tern_file_check_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return tern_fail(errno == ENOENT ? TERN_ENOENT : TERN_EIO, "cannot stat %s: %s",
		                 path, strerror(errno));
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return tern_fail(TERN_EPERM,
		                 "%s has mode %04o; a private key must be 0600 (chmod 600 %s)",
		                 path, (unsigned)(st.st_mode & 07777), path);
	return TERN_OK;
}

int tern_mkdirs(const char *path, mode_t mode)
{
	char *p, *s;
	int rc = TERN_OK;

	if ((s = strdup(path)) == NULL)
		return TERN_ENOMEM;
	for (p = s + 1;; p++) {
		char c = *p;
		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(s, mode) != 0 && errno != EEXIST) {
			rc = tern_fail(TERN_EIO, "cannot create directory %s: %s", s,
			               strerror(errno));
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(s);
	return rc;
}

int tern_path_resolve(const char *base_file, const char *rel, char **out)
{
	char *copy, *dir;
	int n;

	if (rel[0] == '/') {
		*out = strdup(rel);
		return *out ? TERN_OK : TERN_ENOMEM;
	}
	if ((copy = strdup(base_file)) == NULL)
		return TERN_ENOMEM;
	dir = dirname(copy);
	n = asprintf(out, "%s/%s", dir, rel);
	free(copy);
	return n < 0 ? TERN_ENOMEM : TERN_OK;
}

int tern_grow(void **arr, size_t n, size_t *cap, size_t size)
{
	size_t nc;
	void *p;

	if (n < *cap)
		return TERN_OK;
	nc = *cap ? *cap * 2 : 64;
	if (nc < *cap || size == 0 || nc > SIZE_MAX / size)
		return TERN_ENOMEM;
	if ((p = realloc(*arr, nc * size)) == NULL)
		return TERN_ENOMEM;
	*arr = p;
	*cap = nc;
	return TERN_OK;
}

int64_t tern_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tern_node_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 63 || id[0] < 'a' || id[0] > 'z')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

void tern_hex(const uint8_t *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * len] = '\0';
}

size_t tern_escape(const void *buf, size_t len, size_t max, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = buf;
	size_t i, o = 0;

	if (outlen < 4) {
		if (outlen)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i < len && i < max; i++) {
		uint8_t c = p[i];
		size_t need = c == '\\' ? 2 : (c < 0x20 || c > 0x7e) ? 4 : 1;

		/* Room is kept for "..." and the NUL whatever comes next. */
		if (o + need + 4 > outlen)
			break;
		if (need == 1) {
			out[o++] = (char)c;
		} else if (need == 2) {
			out[o++] = '\\';
			out[o++] = '\\';
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = digits[c >> 4];
			out[o++] = digits[c & 15];
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

/* One component of a path Tern trusts: may anyone but this user and root
 * change what it holds? */
static int strict_component(const char *path, const struct stat *st, uid_t me)
{
	int gw = (st->st_mode & S_IWGRP) != 0, ow = (st->st_mode & S_IWOTH) != 0;

	if (st->st_uid != 0 && st->st_uid != me && me != 0)
		return tern_fail(TERN_EPERM,
		                 "%s belongs to uid %u, neither to this user (uid %u) nor to root, "
		                 "who alone may own what Tern trusts (chown %u %s)",
		                 path, (unsigned)st->st_uid, (unsigned)me, (unsigned)me, path);
	/* /tmp and its like: others may create entries there but not remove or
	 * rename anyone else's (the sticky bit), and root owns it. */
	if (S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX) && st->st_uid == 0)
		return TERN_OK;
	if (gw || ow)
		return tern_fail(TERN_EPERM,
		                 "%s is %s writable by %s (mode %04o), who could then change what "
		                 "Tern trusts there (chmod go-w %s)",
		                 path, S_ISDIR(st->st_mode) ? "a directory" : "a file",
		                 gw && ow ? "its group and others"
		                 : gw     ? "its group"
		                          : "others",
		                 (unsigned)(st->st_mode & 07777), path);
	return TERN_OK;
}

int tern_path_check_strict(const char *path, int flags, char *bad, size_t badlen)
{
	char *real = NULL, *copy = NULL;
	struct stat st;
	uid_t me = geteuid();
	int rc = TERN_OK;

	if (bad && badlen)
		bad[0] = '\0';
	/* Symbolic links resolved first, as OpenSSH's StrictModes does: what
	 * matters is the directories the file really lives in. A path that does
	 * not exist is left to whoever opens it (which says so); its parents are
	 * still checked. */
	if ((real = realpath(path, NULL)) == NULL) {
		if (errno == ENOMEM)
			return TERN_ENOMEM;
		if ((copy = strdup(path)) == NULL)
			return TERN_ENOMEM;
		real = realpath(dirname(copy), NULL);
		free(copy);
		if (real == NULL)
			return errno == ENOMEM ? TERN_ENOMEM : TERN_OK;
		flags |= TERN_STRICT_SELF; /* the parent is a component, not the file */
	}
	for (int first = 1;; first = 0) {
		char *slash;

		if (!first || (flags & TERN_STRICT_SELF)) {
			if (stat(real, &st) != 0) {
				rc = tern_fail(TERN_EIO, "cannot stat %s: %s", real,
				               strerror(errno));
				break;
			}
			if ((rc = strict_component(real, &st, me)) != TERN_OK)
				break;
		}
		/* Up to, not including, "/": the root directory is the system's. */
		if ((slash = strrchr(real, '/')) == NULL || slash == real)
			break;
		*slash = '\0';
	}
	if (rc != TERN_OK && bad && badlen)
		snprintf(bad, badlen, "%s", real);
	free(real);
	return rc;
}

int tern_disk_room(const char *dir, uint64_t need)
{
	struct statvfs st;
	uint64_t free_bytes;

	if (statvfs(dir, &st) != 0)
		return TERN_OK;
	free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	if (free_bytes >= need + TERN_DISK_RESERVE)
		return TERN_OK;
	errno = ENOSPC;
	return tern_fail(TERN_EIO,
	                 "No space left on device: %llu MiB free, and %llu MiB are kept for the "
	                 "store",
	                 (unsigned long long)(free_bytes >> 20),
	                 (unsigned long long)(TERN_DISK_RESERVE >> 20));
}

int tern_time_rfc3339(int64_t ms, char out[TERN_RFC3339_LEN])
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);

	out[0] = 0;
	if (ms < 0 || gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return TERN_EINVAL;
	{
		/* 24 characters, within out, for any year up to 9999; the wider
		 * buffer only quiets gcc's bound on each field */
		char tmp[96];
		snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		         (int)(ms % 1000));
		snprintf(out, TERN_RFC3339_LEN, "%.*s", TERN_RFC3339_LEN - 1, tmp);
	}
	return TERN_OK;
}

#include <errno.h>
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

	if (!S_ISREG(st->st_mode))
		return tern_fail(TERN_EIO, "%s is not a regular file", path);
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

static int open_read(const char *path, int extra_flags, int *fd, struct stat *st)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC | extra_flags);
	if (*fd < 0)
		return tern_fail(errno == ENOENT ? TERN_ENOENT : TERN_EIO, "cannot open %s: %s", path,
		                 errno == ELOOP ? "a private key may not be a symbolic link"
		                                : strerror(errno));
	if (fstat(*fd, st) != 0) {
		close(*fd);
		return tern_fail(TERN_EIO, "cannot stat %s: %s", path, strerror(errno));
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
		rc = tern_fail(TERN_EPERM,
		               "%s has mode %04o; a private key must be 0600 (chmod 600 %s)", path,
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
	if (dcopy != NULL && (dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
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
		return tern_fail(errno == ENOENT ? TERN_ENOENT : TERN_EIO, "cannot stat %s: %s", path,
		                 strerror(errno));
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return tern_fail(TERN_EPERM, "%s has mode %04o; a private key must be 0600 (chmod 600 %s)",
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
			rc = tern_fail(TERN_EIO, "cannot create directory %s: %s", s, strerror(errno));
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

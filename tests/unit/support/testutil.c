#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tt_mkdtemp(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "/tmp/tern-%s-XXXXXX", name);

	if (n < 0 || (size_t)n >= len)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int tt_rmtree(const char *path)
{
	/* FTW_DEPTH empties a directory before removing it; FTW_PHYS removes a
	 * symbolic link itself instead of what it points to outside the tree. */
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

const char *tt_source_dir(void)
{
	const char *src = getenv("TERN_SOURCE_DIR");

	return src != NULL && src[0] != '\0' ? src : NULL;
}

const char *tt_testdata(void)
{
	static char testdata[4096];
	const char *env = getenv("TERN_TESTDATA"), *src = tt_source_dir();

	if (env != NULL && env[0] != '\0')
		snprintf(testdata, sizeof(testdata), "%s", env);
	else if (src != NULL)
		snprintf(testdata, sizeof(testdata), "%s/tests/data", src);
	else
		snprintf(testdata, sizeof(testdata), "tests/data");
	return testdata;
}

int tt_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	const char *p = data;
	int fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		p += n;
		len -= (size_t)n;
	}
	/* open() applied the umask and left an existing file's mode alone. */
	if (fchmod(fd, (mode_t)mode) != 0)
		goto out;
	rc = 0;
out:
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

int tt_file_mode(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

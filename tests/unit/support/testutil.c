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

int tt_docs_section(const char *doc, const char *name, int (*describe)(FILE *f),
                    const char *outfile, char *why, size_t len)
{
	const char *src = tt_source_dir(), *b, *e;
	char path[1024], begin[128], end[128], *want = NULL, *docs = NULL;
	size_t wl = 0;
	long dl;
	FILE *f;
	int rc = -1;

	if (src == NULL)
		return 1;
	snprintf(begin, sizeof(begin), "<!-- BEGIN %s -->\n", name);
	snprintf(end, sizeof(end), "<!-- END %s -->", name);
	snprintf(path, sizeof(path), "%s/%s", src, doc);
	if ((f = open_memstream(&want, &wl)) == NULL || describe(f) != 0) {
		if (f)
			fclose(f);
		snprintf(why, len, "cannot write the %s section", name);
		goto out;
	}
	fclose(f);
	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 || (dl = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (docs = calloc(1, (size_t)dl + 1)) == NULL ||
	    fread(docs, 1, (size_t)dl, f) != (size_t)dl) {
		if (f)
			fclose(f);
		snprintf(why, len, "cannot read %s", path);
		goto out;
	}
	fclose(f);
	b = strstr(docs, begin);
	e = b ? strstr(b, end) : NULL;
	if (b == NULL || e == NULL) {
		snprintf(why, len, "%s lacks the %s and %s markers", doc, name, end);
		goto out;
	}
	b += strlen(begin);
	if ((size_t)(e - b) == wl && memcmp(b, want, wl) == 0) {
		rc = 0;
		goto out;
	}
	if ((f = fopen(outfile, "w")) != NULL) {
		fprintf(f, "%s%s%s\n", begin, want, end);
		fclose(f);
	}
	snprintf(why, len,
	         "%s's %s section differs from what the code writes; the expected one is in %s "
	         "in the test's directory",
	         doc, name, outfile);
out:
	free(docs);
	free(want);
	return rc;
}

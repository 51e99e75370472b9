/* Test support shared by the unit tests: scratch directories, test-vector
 * and source locations, small file helpers. Plain return codes, no cmocka,
 * so a fixture's setup can report failure the way cmocka expects. */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>

/* Creates a fresh private directory /tmp/tern-<name>-XXXXXX and writes its
 * path into buf (len bytes). Fixed under /tmp rather than $TMPDIR so that
 * paths stay short enough for the socket-path tests. Returns 0, or -1 when
 * buf is too small or mkdtemp fails. */
int tt_mkdtemp(char *buf, size_t len, const char *name);

/* Removes path and everything below it without following symbolic links.
 * Returns 0, or -1 if anything could not be removed (or path is missing). */
int tt_rmtree(const char *path);

/* The public test vectors kept in the repository (tests/data, see its
 * README): $TERN_TESTDATA, else $TERN_SOURCE_DIR/tests/data, else
 * tests/data. The string is static and lives until exit. */
const char *tt_testdata(void);

/* $TERN_SOURCE_DIR, or NULL when it is unset or empty (a test that needs
 * the source tree then skips). */
const char *tt_source_dir(void);

/* Writes len bytes of data to path (created or truncated) and sets its
 * mode to exactly mode, whatever the umask. Returns 0, or -1 on any error. */
int tt_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* The permission bits (mode & 07777) of path, or -1 if it cannot be stat'ed. */
int tt_file_mode(const char *path);

/* A generated section of a doc: doc (relative to the source tree) holds,
 * between "<!-- BEGIN name -->" and "<!-- END name -->" lines, exactly what
 * describe writes. Returns 0 when it does; 1 when the source tree is not
 * known (the caller skips); -1 with why filled when it does not, having
 * written the expected section, markers included, to outfile in the current
 * directory for a maintainer to paste. */
int tt_docs_section(const char *doc, const char *name, int (*describe)(FILE *f),
                    const char *outfile, char *why, size_t len);

#endif

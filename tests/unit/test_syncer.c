/* The syncer (libtern/src/syncer.h): batches synced on its thread, each
 * descriptor's outcome reported in its slot, one batch at a time, and the
 * loop woken through its fd. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/error.h>

#include "syncer.h"
#include "testutil.h"

struct fixture {
	char dir[128];
	tern_syncer *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || tt_mkdtemp(f->dir, sizeof(f->dir), "syncer") != 0 ||
	    tern_syncer_new(&f->s) != TERN_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	tern_syncer_free(&f->s);
	assert_null(f->s);
	rc = tt_rmtree(f->dir);
	free(f);
	return rc;
}

static int file_fd(const struct fixture *f, const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "chunk", 5), 5);
	return fd;
}

/* Waits (at most 5 s) for the syncer's fd, as the loop's poll does. */
static void wait_done(const struct fixture *f)
{
	struct pollfd p = {tern_syncer_fd(f->s), POLLIN, 0};

	assert_int_equal(poll(&p, 1, 5000), 1);
}

/* Files synced, a descriptor that cannot be synced reported in its own slot,
 * and the syncer free for the next batch after the collect. */
static void test_batch_outcomes(void **state)
{
	struct fixture *f = *state;
	int pipefd[2], fds[3], errs[TERN_SYNCER_MAX];
	size_t n = 0;

	assert_int_equal(pipe(pipefd), 0);
	fds[0] = file_fd(f, "a");
	fds[1] = pipefd[0]; /* fdatasync on a pipe: EINVAL */
	fds[2] = file_fd(f, "b");
	assert_false(tern_syncer_busy(f->s));
	assert_int_equal(tern_syncer_start(f->s, fds, 3), TERN_OK);
	assert_true(tern_syncer_busy(f->s));
	wait_done(f);
	assert_int_equal(tern_syncer_collect(f->s, errs, &n), TERN_OK);
	assert_int_equal(n, 3);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], EINVAL);
	assert_int_equal(errs[2], 0);
	assert_false(tern_syncer_busy(f->s));
	/* The descriptors were the syncer's: closed by it. */
	assert_int_equal(fcntl(fds[0], F_GETFD), -1);
	assert_int_equal(fcntl(pipefd[0], F_GETFD), -1);
	close(pipefd[1]);
	/* Nothing left to collect, and the fd no longer readable. */
	assert_int_equal(tern_syncer_collect(f->s, errs, &n), TERN_ENOENT);
	{
		struct pollfd p = {tern_syncer_fd(f->s), POLLIN, 0};
		assert_int_equal(poll(&p, 1, 0), 0);
	}
	fds[0] = file_fd(f, "c");
	assert_int_equal(tern_syncer_start(f->s, fds, 1), TERN_OK);
	wait_done(f);
	assert_int_equal(tern_syncer_collect(f->s, errs, &n), TERN_OK);
	assert_int_equal(n, 1);
	assert_int_equal(errs[0], 0);
}

/* One batch at a time: a second start is refused (and its descriptors stay
 * the caller's) until the first is collected; sizes out of bounds are
 * refused. */
static void test_one_batch_at_a_time(void **state)
{
	struct fixture *f = *state;
	int fds[TERN_SYNCER_MAX + 1], other, errs[TERN_SYNCER_MAX];
	size_t n = 0;

	fds[0] = file_fd(f, "a");
	other = file_fd(f, "b");
	assert_int_equal(tern_syncer_start(f->s, fds, 1), TERN_OK);
	assert_int_equal(tern_syncer_start(f->s, &other, 1), TERN_EEXIST);
	wait_done(f);
	/* Done but not collected: still refused. */
	assert_int_equal(tern_syncer_start(f->s, &other, 1), TERN_EEXIST);
	assert_int_not_equal(fcntl(other, F_GETFD), -1);
	assert_int_equal(tern_syncer_collect(f->s, errs, &n), TERN_OK);
	assert_int_equal(tern_syncer_start(f->s, &other, 0), TERN_EINVAL);
	for (int i = 0; i <= TERN_SYNCER_MAX; i++)
		fds[i] = other;
	assert_int_equal(tern_syncer_start(f->s, fds, TERN_SYNCER_MAX + 1), TERN_EINVAL);
	assert_false(tern_syncer_busy(f->s));
	close(other);
}

/* Freed with a batch under way (a daemon stopping mid-sync): the batch ends,
 * its descriptors are closed, nothing leaks (the sanitizer run checks). */
static void test_free_while_busy(void **state)
{
	struct fixture *f = *state;
	int fds[8];

	for (int i = 0; i < 8; i++) {
		char name[8];
		snprintf(name, sizeof(name), "f%d", i);
		fds[i] = file_fd(f, name);
	}
	assert_int_equal(tern_syncer_start(f->s, fds, 8), TERN_OK);
	tern_syncer_free(&f->s);
	assert_null(f->s);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fcntl(fds[i], F_GETFD), -1);
	tern_syncer_free(&f->s); /* NULL: nothing */
}

/* Removals on the thread: done soon after the call, done before the thread
 * stops when still queued, and here when there is no syncer. */
static void test_unlink(void **state)
{
	struct fixture *f = *state;
	char a[256], b[256], c[256];
	int fd;

	snprintf(a, sizeof(a), "%s/a", f->dir);
	snprintf(b, sizeof(b), "%s/b", f->dir);
	snprintf(c, sizeof(c), "%s/c", f->dir);
	close(file_fd(f, "a"));
	close(file_fd(f, "b"));
	close(file_fd(f, "c"));
	assert_int_equal(tern_syncer_unlink(f->s, a), TERN_OK);
	for (int i = 0; i < 500 && access(a, F_OK) == 0; i++)
		usleep(10000);
	assert_int_not_equal(access(a, F_OK), 0);
	/* queued behind a batch, then the syncer is stopped: still removed */
	fd = file_fd(f, "d");
	assert_int_equal(tern_syncer_start(f->s, &fd, 1), TERN_OK);
	assert_int_equal(tern_syncer_unlink(f->s, b), TERN_OK);
	tern_syncer_free(&f->s);
	assert_int_not_equal(access(b, F_OK), 0);
	/* a large (sparse) file: cut down in steps, then gone */
	fd = file_fd(f, "big");
	assert_int_equal(ftruncate(fd, (off_t)100 << 20), 0);
	close(fd);
	{
		char big[256];
		snprintf(big, sizeof(big), "%s/big", f->dir);
		assert_int_equal(tern_syncer_unlink(NULL, big), TERN_OK);
		assert_int_not_equal(access(big, F_OK), 0);
	}
	/* no syncer: at once */
	assert_int_equal(tern_syncer_unlink(NULL, c), TERN_OK);
	assert_int_not_equal(access(c, F_OK), 0);
	/* a name already gone is not an error */
	assert_int_equal(tern_syncer_unlink(NULL, c), TERN_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_batch_outcomes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_batch_at_a_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_while_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unlink, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

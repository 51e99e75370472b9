/* The syncer (syncer.h): one thread, one batch of descriptors at a time,
 * an eventfd to tell the loop. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tern/error.h>
#include <tern/log.h>

#include "syncer.h"
#include "util.h"

enum { IDLE, QUEUED, DONE };

struct tern_syncer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd, stop, state;
	size_t n;
	int fds[TERN_SYNCER_MAX];
	int errs[TERN_SYNCER_MAX];
	/* Files to remove, oldest first (tern_syncer_unlink). */
	char *gone[TERN_SYNCER_UNLINK_MAX];
	size_t ngone;
};

/* A large file is cut down in steps before it goes: ext4 frees a gigabyte's
 * extents in one journal transaction of hundreds of milliseconds, which
 * every other sync on the filesystem (the stores' commits) waits for; in
 * steps, each waits for one step at most. */
#define REMOVE_STEP (32 << 20)

static void remove_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			for (off_t size = st.st_size; size > REMOVE_STEP;) {
				const struct timespec pause = {0, 2 * 1000 * 1000};
				size -= REMOVE_STEP;
				if (ftruncate(fd, size) != 0)
					break;
				nanosleep(&pause, NULL);
			}
		close(fd);
	}
	if (unlink(path) != 0 && errno != ENOENT)
		log_warnx("cannot remove %s: %s", path, strerror(errno));
}

static void *run(void *arg)
{
	tern_syncer *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && s->state != QUEUED && s->ngone == 0)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->state == QUEUED) {
			/* The batch is this thread's until DONE: no lock held while
			 * the disk works. A batch goes before removals: a loop
			 * waits for it. */
			pthread_mutex_unlock(&s->mu);
			for (size_t i = 0; i < s->n; i++) {
				int rc;
				do
					rc = fdatasync(s->fds[i]);
				while (rc != 0 && errno == EINTR);
				s->errs[i] = rc == 0 ? 0 : errno;
				close(s->fds[i]);
				s->fds[i] = -1;
			}
			pthread_mutex_lock(&s->mu);
			s->state = DONE;
			{
				uint64_t one = 1;
				(void)!write(s->efd, &one, sizeof(one));
			}
			pthread_cond_broadcast(&s->cv);
		} else if (s->ngone) {
			/* One at a time, the oldest first, so a batch that comes
			 * meanwhile waits for one removal at most. Done also when
			 * stopping: a file to go must not stay. */
			char *path = s->gone[0];
			memmove(s->gone, s->gone + 1, --s->ngone * sizeof(*s->gone));
			pthread_mutex_unlock(&s->mu);
			remove_file(path);
			free(path);
			pthread_mutex_lock(&s->mu);
		} else {
			break; /* stopping, nothing under way */
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int tern_syncer_new(tern_syncer **out)
{
	tern_syncer *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return TERN_ENOMEM;
	if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = tern_fail(TERN_EIO, "eventfd: %s", strerror(errno));
		goto fail_free;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((rc = pthread_create(&s->thread, NULL, run, s)) != 0) {
		rc = tern_fail(TERN_ENOMEM, "cannot start the sync thread: %s", strerror(rc));
		goto fail_sync;
	}
	*out = s;
	return TERN_OK;
fail_sync:
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	close(s->efd);
fail_free:
	free(s);
	return rc;
}

int tern_syncer_fd(const tern_syncer *s)
{
	return s->efd;
}

int tern_syncer_busy(const tern_syncer *s)
{
	tern_syncer *m = (tern_syncer *)s; /* the lock, not the state, changes */
	int busy;

	pthread_mutex_lock(&m->mu);
	busy = m->state != IDLE;
	pthread_mutex_unlock(&m->mu);
	return busy;
}

int tern_syncer_start(tern_syncer *s, const int *fds, size_t n)
{
	if (n == 0 || n > TERN_SYNCER_MAX)
		return tern_fail(TERN_EINVAL, "a sync batch of %zu files (1 to %d)", n,
		                 TERN_SYNCER_MAX);
	pthread_mutex_lock(&s->mu);
	if (s->state != IDLE) {
		pthread_mutex_unlock(&s->mu);
		return TERN_EEXIST;
	}
	memcpy(s->fds, fds, n * sizeof(*fds));
	s->n = n;
	s->state = QUEUED;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return TERN_OK;
}

int tern_syncer_collect(tern_syncer *s, int *errs, size_t *n)
{
	uint64_t v;
	int rc = TERN_OK;

	pthread_mutex_lock(&s->mu);
	if (s->state != DONE)
		rc = TERN_ENOENT;
	else {
		memcpy(errs, s->errs, s->n * sizeof(*errs));
		*n = s->n;
		s->n = 0;
		s->state = IDLE;
		(void)!read(s->efd, &v, sizeof(v)); /* not readable until the next batch */
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int tern_syncer_unlink(tern_syncer *s, const char *path)
{
	char *copy;

	if (s == NULL || (copy = strdup(path)) == NULL) {
		remove_file(path);
		return TERN_OK;
	}
	pthread_mutex_lock(&s->mu);
	if (s->ngone == TERN_SYNCER_UNLINK_MAX) {
		pthread_mutex_unlock(&s->mu);
		free(copy);
		remove_file(path); /* a backlog: here, as before */
		return TERN_OK;
	}
	s->gone[s->ngone++] = copy;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return TERN_OK;
}

void tern_syncer_free(tern_syncer **sp)
{
	tern_syncer *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* A batch under way finishes first, then the removals still queued
	 * (run checks stop only when it has nothing left). */
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	close(s->efd);
	free(s);
	*sp = NULL;
}

/* The closer thread (fdclose.h). */
#include <pthread.h>
#include <unistd.h>

#include <tern/log.h>

#include "fdclose.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int queue[TERN_FDCLOSE_MAX];
static size_t head, count; /* queued, not yet taken */
static int closing;          /* the thread is in a close(2) */
static int started, failed;

static void *closer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		int fd;
		while (count == 0)
			pthread_cond_wait(&cv, &mu);
		fd = queue[head];
		head = (head + 1) % TERN_FDCLOSE_MAX;
		count--;
		closing = 1; /* busy() counts a stuck close too */
		pthread_mutex_unlock(&mu);
		/* May wait for a file system's server; only this thread does. */
		close(fd);
		pthread_mutex_lock(&mu);
		closing = 0;
	}
	return NULL;
}

void tern_fdclose(int fd)
{
	pthread_t t;
	int now = 0;

	if (fd < 0)
		return;
	pthread_mutex_lock(&mu);
	if (!started && !failed) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, closer, NULL) == 0)
			started = 1;
		else
			failed = 1;
		pthread_attr_destroy(&a);
	}
	if (!started || count == TERN_FDCLOSE_MAX) {
		now = 1;
	} else {
		queue[(head + count) % TERN_FDCLOSE_MAX] = fd;
		count++;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
	if (now)
		close(fd);
}

int tern_fdclose_busy(void)
{
	int busy;

	pthread_mutex_lock(&mu);
	busy = count + (size_t)closing >= TERN_FDCLOSE_MAX / 2;
	pthread_mutex_unlock(&mu);
	return busy;
}

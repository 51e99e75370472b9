/* The closer threads (fdclose.h). */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <tern/log.h>

#include "fdclose.h"
#include "util.h"

/* A thread in close(2) this long is taken for stuck (a file system's server
 * that does not answer): the next descriptor starts another thread, so that
 * one hung server does not hold every later close. At most CLOSERS_MAX. */
#define STUCK_MS 1000
#define CLOSERS_MAX 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int queue[TERN_FDCLOSE_MAX];
static size_t head, count;          /* queued, not yet taken */
static int64_t since[CLOSERS_MAX];  /* per thread: when its close began; 0 idle */
static size_t nthreads;

static void *closer(void *arg)
{
	size_t me = (size_t)(uintptr_t)arg;

	pthread_mutex_lock(&mu);
	for (;;) {
		int fd;
		while (count == 0)
			pthread_cond_wait(&cv, &mu);
		fd = queue[head];
		head = (head + 1) % TERN_FDCLOSE_MAX;
		count--;
		since[me] = tern_now_ms();
		pthread_mutex_unlock(&mu);
		/* May wait for a file system's server; only this thread does. */
		close(fd);
		pthread_mutex_lock(&mu);
		since[me] = 0;
	}
	return NULL;
}

/* Under mu: a thread free to close, or a new one started when every one is
 * stuck. */
static void closers_enough(void)
{
	int64_t now = tern_now_ms();
	pthread_attr_t a;
	pthread_t t;

	for (size_t i = 0; i < nthreads; i++)
		if (since[i] == 0 || now - since[i] < STUCK_MS)
			return;
	if (nthreads == CLOSERS_MAX)
		return;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, closer, (void *)(uintptr_t)nthreads) == 0)
		nthreads++;
	pthread_attr_destroy(&a);
}

void tern_fdclose(int fd)
{
	int queued = 0;

	if (fd < 0)
		return;
	pthread_mutex_lock(&mu);
	closers_enough();
	if (nthreads > 0 && count < TERN_FDCLOSE_MAX) {
		queue[(head + count) % TERN_FDCLOSE_MAX] = fd;
		count++;
		queued = 1;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
	/* Never a close here: the caller may be a daemon's loop. A descriptor
	 * that finds no room stays open (the servers stop taking descriptors
	 * long before: tern_fdclose_busy). */
	if (!queued)
		log_warnx("a descriptor a client passed is left open: %d closes wait",
		          TERN_FDCLOSE_MAX);
}

int tern_fdclose_busy(void)
{
	int busy;

	pthread_mutex_lock(&mu);
	busy = count >= TERN_FDCLOSE_MAX / 2;
	pthread_mutex_unlock(&mu);
	return busy;
}

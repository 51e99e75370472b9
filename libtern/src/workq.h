/* A thread that does a daemon's bulk work below its event loop: jobs go in
 * from the loop in order, the thread (named, at a given niceness) runs each
 * in turn, and the loop takes them back, in the same order, when the
 * descriptor it polls is readable. The attachments' chunks (the recipient
 * opening them, the broker checking and writing them) cost a millisecond
 * or more of CPU each; on the loop, every ordinary message behind them
 * waited for it.
 *
 * A job is the caller's struct with a struct tern_workq_item first; the
 * thread touches only what the caller's function does. Used by one thread
 * (the loop) besides its own. Internal to this repository. */
#ifndef TERN_WORKQ_H
#define TERN_WORKQ_H

#include <stddef.h>

typedef struct tern_workq tern_workq;

/* The first member of a job: the queue's link. */
struct tern_workq_item {
	struct tern_workq_item *next;
};

/* Runs on the thread, for each job in turn. */
typedef void tern_workq_fn(struct tern_workq_item *job, void *arg);

/* Starts the thread, named name (at most 15 characters: top -H and the
 * benchmarks show it) at niceness nice (if the system lets it: else at the
 * loop's). *out is the caller's until tern_workq_free. */
int tern_workq_new(const char *name, int nice, tern_workq_fn *fn, void *arg, tern_workq **out);
/* Queues job (the queue's until taken back). */
void tern_workq_push(tern_workq *q, struct tern_workq_item *job);
/* Readable (poll) when jobs are done and not taken back. */
int tern_workq_fd(const tern_workq *q);
/* Jobs pushed and not yet taken back. */
size_t tern_workq_out(const tern_workq *q);
/* The jobs done since the last call, in the order pushed (a list through
 * next; the caller's again), or NULL. */
struct tern_workq_item *tern_workq_take(tern_workq *q);
/* Stops the thread after the job under way, if any; the jobs not taken
 * back (done or not) are the caller's again through *left (a list, in
 * order; left may be NULL only when none can be). Frees q and sets *qp to
 * NULL. NULL and *qp NULL are fine. */
void tern_workq_free(tern_workq **qp, struct tern_workq_item **left);

#endif

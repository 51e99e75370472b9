/* A thread that makes files durable (fdatasync) away from a daemon's event
 * loop. Attachment chunks are written on the loop, into the page cache; the
 * sync of a loop turn's chunks, megabytes each time, waits for the disk, and
 * on the loop it held every ordinary message of that turn behind it. The
 * loop hands the files here, goes on, and commits their counts when the
 * syncer says they are on disk (tern_syncer_collect): nothing is counted
 * before its bytes are durable, as before.
 *
 * One batch at a time: tern_syncer_start refuses (TERN_EEXIST) while one is
 * under way; the caller gathers the next batch meanwhile. Used by one thread
 * (the loop) besides its own. Internal to this repository. */
#ifndef TERN_SYNCER_H
#define TERN_SYNCER_H

#include <stddef.h>

#define TERN_SYNCER_MAX 64         /* files per batch */
#define TERN_SYNCER_UNLINK_MAX 256 /* removals waiting; more are done at once */

typedef struct tern_syncer tern_syncer;

/* Starts the thread. *out is the caller's until tern_syncer_free. */
int tern_syncer_new(tern_syncer **out);
/* Readable (poll) when the batch under way is done: the loop polls it. */
int tern_syncer_fd(const tern_syncer *s);
/* Whether a batch was started and not yet collected. */
int tern_syncer_busy(const tern_syncer *s);
/* Syncs the n (1..TERN_SYNCER_MAX) files fds on the thread. Takes ownership
 * of the descriptors (they are closed once synced, also on failure), so the
 * caller may close or unlink its own meanwhile. TERN_EEXIST while a batch is
 * under way or not yet collected (the fds stay the caller's), TERN_EINVAL
 * for a bad n. */
int tern_syncer_start(tern_syncer *s, const int *fds, size_t n);
/* The batch's outcome, once done: errs[i] is 0 or the errno of fds[i]'s
 * fdatasync (ENOSPC, EIO...), for the n of the batch (errs has room for
 * TERN_SYNCER_MAX). TERN_ENOENT when there is no finished batch (none was
 * started, or the thread is still syncing: tern_syncer_busy says which).
 * After it, a new batch may start. */
int tern_syncer_collect(tern_syncer *s, int *errs, size_t *n);
/* Removes path on the thread, after the batch under way if any: a spool
 * file of a gigabyte takes ext4 hundreds of milliseconds to free, which on
 * the loop held every message behind it. Failures other than ENOENT are
 * logged there. With s NULL, or TERN_SYNCER_UNLINK_MAX removals waiting,
 * removes it here. Only for names never made again (a message id's, an
 * upload's): the removal may come after the call returns. TERN_OK. */
int tern_syncer_unlink(tern_syncer *s, const char *path);
/* Waits for the batch under way, if any (its outcome is dropped), stops the
 * thread, frees s and sets *sp to NULL. NULL and *sp NULL are fine. */
void tern_syncer_free(tern_syncer **sp);

#endif

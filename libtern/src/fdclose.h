/* Closing descriptors that clients passed (docs/api.md, "Files by
 * descriptor") off the daemon's loop.
 *
 * close(2) of a file on FUSE asks the file system's server (FUSE_FLUSH) and
 * waits for its answer: a server that never answers would hold whichever
 * thread closes. A daemon's loop therefore never closes a descriptor a
 * client passed; it hands it to one closer thread per process, which may
 * hang there without holding anything else. Bounded: at most
 * TERN_FDCLOSE_MAX wait; tern_fdclose_busy() says when a server should stop
 * taking descriptors (recvmsg without room for them: the kernel then drops
 * them itself, without a flush).
 *
 * Thread-safe; the thread starts with the first call and lives as long as
 * the process. Internal to the daemons. */
#ifndef TERN_FDCLOSE_H
#define TERN_FDCLOSE_H

#include <stddef.h>

#define TERN_FDCLOSE_MAX 256

/* Closes fd on the closer thread (fd < 0: nothing). When the queue is full
 * or the thread cannot start, fd is closed here and now, the one case that
 * may wait. */
void tern_fdclose(int fd);

/* 1 when half the queue or more waits: take no more descriptors. */
int tern_fdclose_busy(void);

#endif

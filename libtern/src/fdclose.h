/* Closing descriptors that clients passed (docs/api.md, "Files by
 * descriptor") off the daemon's loop.
 *
 * close(2) of a file on FUSE asks the file system's server (FUSE_FLUSH) and
 * waits for its answer: a server that never answers would hold whichever
 * thread closes. A daemon's loop therefore never closes a descriptor a
 * client passed before the descriptor was found on a local disk
 * (tern_attach_fd_check); it hands it to a closer thread, which may hang
 * there. A close stuck for a second makes the next one start another
 * thread, up to 8, so that one hung server does not hold every later close.
 * Bounded: at most TERN_FDCLOSE_MAX wait; tern_fdclose_busy() says when a
 * server should stop taking descriptors (recvmsg without room for them: the
 * kernel then drops them itself, without a flush). A process whose closer
 * is stuck in a FUSE close cannot exit until that file system's server
 * answers or its connection is aborted (/sys/fs/fuse/connections/N/abort).
 *
 * Thread-safe; threads start with the first call and live as long as the
 * process. Internal to the daemons. */
#ifndef TERN_FDCLOSE_H
#define TERN_FDCLOSE_H

#include <stddef.h>

#define TERN_FDCLOSE_MAX 256

/* Closes fd on a closer thread (fd < 0: nothing); never waits. When the
 * queue is full or no thread could start, fd is left open, and logged. */
void tern_fdclose(int fd);

/* 1 when half the queue or more waits: take no more descriptors. */
int tern_fdclose_busy(void);

#endif

/* Small leveled logging to stderr, fit for journald.
 *
 * log_warn() appends strerror(errno); log_warnx() does not. fatal()/fatalx()
 * log and exit(1): use them only in daemons' start-up and for programming
 * errors, never for a peer's bad input. Never pass message bodies or personal
 * data: message ids and case ids only.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum tern_log_level { TERN_LOG_DEBUG, TERN_LOG_INFO, TERN_LOG_WARN, TERN_LOG_ERROR };

/* name: program name shown in each line; level: minimum level written. */
void log_init(const char *name, int level);
int log_level_parse(const char *s, int *level);

/* log_hold(1): the calling thread's debug and info lines are kept (up to
 * PIPE_BUF bytes) and written together by log_flush(), or when the buffer is
 * full, or before a warning or an error, which are never held. A daemon's
 * loop holds while it works a turn and flushes before it waits, so a busy
 * turn costs one write, not one per message. log_hold(0) flushes and stops
 * holding; call it (or log_flush) before exit: held lines are lost if the
 * process dies first. */
void log_hold(int on);
void log_flush(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#ifdef __cplusplus
}
#endif
#endif

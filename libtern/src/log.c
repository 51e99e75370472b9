#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tern/log.h>

static const char *log_name = "tern";
static int log_min = TERN_LOG_INFO;

/* A daemon's loop thread holds its debug and info lines between polls and
 * writes them with one system call (log_flush before it waits): under load
 * that is one write a turn instead of one a message at each hop. The buffer
 * is PIPE_BUF long, so when stderr is a pipe or a file opened for append a
 * flushed batch of whole lines is never interleaved with another thread's
 * line (a stream socket makes no such promise for any write, held or not).
 * Warnings and errors are not held: they flush what is held, then go out at
 * once, in order. Only the calling thread's lines are held; other threads
 * (HTTP workers, the webhook sender) write theirs as before, so a held line
 * can appear after another thread's later one (each keeps its time). A
 * crash, an abort or kill -9 loses the held lines of the turn. */
static __thread struct {
	int on;
	size_t n;
	char buf[PIPE_BUF];
} held;

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
}

void log_flush(void)
{
	if (held.n > 0)
		write_all(held.buf, held.n);
	held.n = 0;
}

void log_hold(int on)
{
	static int at_exit;

	log_flush();
	held.on = on;
	/* exit() from the holding thread (a fatal at start-up, the end of
	 * main) writes what it held. */
	if (on && !at_exit)
		at_exit = atexit(log_flush) == 0;
}

void log_init(const char *name, int level)
{
	log_name = name;
	log_min = level;
}

int log_level_parse(const char *s, int *level)
{
	static const char *names[] = {"debug", "info", "warn", "error"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	return -1;
}

/* logfmt, one line per event, so journald and log shippers can parse it. */
static void vlog(int level, const char *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlog(int level, const char *err, const char *fmt, va_list ap)
{
	static const char *lv[] = {"debug", "info", "warn", "error"};
	char msg[1024], line[2 * sizeof(msg) + 256];
	char ts[32];
	struct timespec now;
	struct tm tm;
	size_t n;

	if (level < log_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = (size_t)snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s prog=%s msg=\"", ts,
	                     now.tv_nsec / 1000000, lv[level], log_name);
	/* Quotes inside msg are escaped so a line stays one logfmt record, and
	 * anything but printable ASCII becomes \xNN: a message may quote what a
	 * file or a peer sent, which must not reach a terminal or a log shipper
	 * as control bytes or invalid text. */
	for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof(line) - 8; p++) {
		if (*p == '"' || *p == '\\') {
			line[n++] = '\\';
			line[n++] = (char)*p;
		} else if (*p == '\n') {
			line[n++] = ' ';
		} else if (*p < 0x20 || *p > 0x7e) {
			n += (size_t)snprintf(line + n, 5, "\\x%02x", *p);
		} else {
			line[n++] = (char)*p;
		}
	}
	if (err)
		n += (size_t)snprintf(line + n, sizeof(line) - n - 3, ": %s", err);
	if (n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	line[n++] = '"';
	line[n++] = '\n';
	if (held.on && level <= TERN_LOG_INFO && n <= sizeof(held.buf)) {
		if (held.n + n > sizeof(held.buf))
			log_flush();
		memcpy(held.buf + held.n, line, n);
		held.n += n;
		return;
	}
	/* One write per line: a record is never interleaved with another
	 * thread's, and the daemons do not pay a system call per character. */
	log_flush();
	write_all(line, n);
}

#define LOGFN(fn, level, with_errno)                                                               \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		va_list ap;                                                                        \
		const char *e = (with_errno) ? strerror(errno) : NULL;                             \
		va_start(ap, fmt);                                                                 \
		vlog(level, e, fmt, ap);                                                           \
		va_end(ap);                                                                        \
	}

LOGFN(log_debug, TERN_LOG_DEBUG, 0)
LOGFN(log_info, TERN_LOG_INFO, 0)
LOGFN(log_warn, TERN_LOG_WARN, 1)
LOGFN(log_warnx, TERN_LOG_WARN, 0)

void fatal(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	va_start(ap, fmt);
	vlog(TERN_LOG_ERROR, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(TERN_LOG_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

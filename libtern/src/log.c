#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tern/log.h>

static const char *log_name = "tern";
static int log_min = TERN_LOG_INFO;

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
	/* One write per line: a record is never interleaved with another
	 * thread's, and the daemons do not pay a system call per character. */
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, line, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		memmove(line, line + w, n - (size_t)w);
		n -= (size_t)w;
	}
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

/* Waiting between attempts, logging a repeated failure without flooding
 * the log, and when a lasting shortage of memory becomes a verdict. Shared
 * by the daemons; not installed. */
#ifndef TERN_BACKOFF_H
#define TERN_BACKOFF_H

#include <stdint.h>

/* Exponential backoff: first_ms, doubling to max_ms; each wait is shortened by
 * a random 0-25 %, so many nodes refused at once do not retry in step, and no
 * wait exceeds max_ms. */
typedef struct tern_backoff {
	int64_t first_ms, max_ms, cur_ms;
} tern_backoff;

void tern_backoff_init(tern_backoff *b, int64_t first_ms, int64_t max_ms);
/* The wait before the next attempt; the one after will be twice as long. */
int64_t tern_backoff_next(tern_backoff *b);
/* After a success: the next failure waits first_ms again. */
void tern_backoff_reset(tern_backoff *b);

/* A line that may repeat: the first is written at once, then at most one
 * every every_ms, each saying how many were held back since the last. */
typedef struct tern_lograte {
	int64_t every_ms, last_ms;
	uint64_t held; /* occurrences since the last line written */
	int written;   /* a line was written since the last reset */
} tern_lograte;

void tern_lograte_init(tern_lograte *l, int64_t every_ms);
/* Counts one occurrence at now. 1: write a line now (*held gets how many
 * occurrences were held back since the previous line); 0: hold it back. */
int tern_lograte_due(tern_lograte *l, int64_t now, uint64_t *held);
/* After the condition ended: *held gets the occurrences never written; the
 * next occurrence is written at once again. */
void tern_lograte_reset(tern_lograte *l, uint64_t *held);

/* A shortage of memory is no verdict on a message: judging it is put off and
 * tried again. So that one a daemon can never afford does not come back for
 * ever, the tries of one message are counted until it is taken (judged,
 * whatever the verdict), and once it has run out of memory TERN_NOMEM_TRIES
 * times, over TERN_NOMEM_SPAN_MS at least, the next try that runs out is
 * refused no-memory. The span is what makes it a lasting shortage: a retry
 * can come a round trip after the last (a Hello the peer is asked for), and
 * a shortage of a second must not use the tries up. A count that is lost or
 * started again only puts the refusal off. */
#define TERN_NOMEM_TRIES 3
#define TERN_NOMEM_SPAN_MS 5000

typedef struct tern_nomem {
	int tries;
	int64_t first; /* ms, the first of them */
} tern_nomem;

/* 1 if a shortage at now is the last try: refused, not put off again. */
int tern_nomem_final(const tern_nomem *c, int64_t now);
/* Counts a try that ran out of memory at now. */
void tern_nomem_count(tern_nomem *c, int64_t now);

#endif

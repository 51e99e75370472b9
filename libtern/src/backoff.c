#include <sodium.h>

#include "backoff.h"

void tern_backoff_init(tern_backoff *b, int64_t first_ms, int64_t max_ms)
{
	b->first_ms = first_ms > 0 ? first_ms : 1;
	b->max_ms = max_ms > b->first_ms ? max_ms : b->first_ms;
	b->cur_ms = b->first_ms;
}

int64_t tern_backoff_next(tern_backoff *b)
{
	int64_t wait = b->cur_ms, quarter = b->cur_ms / 4;

	if (quarter > 0 && quarter < UINT32_MAX)
		wait -= (int64_t)randombytes_uniform((uint32_t)quarter + 1);
	b->cur_ms = b->cur_ms > b->max_ms / 2 ? b->max_ms : b->cur_ms * 2;
	return wait;
}

void tern_backoff_reset(tern_backoff *b)
{
	b->cur_ms = b->first_ms;
}

void tern_lograte_init(tern_lograte *l, int64_t every_ms)
{
	l->every_ms = every_ms;
	l->last_ms = 0;
	l->held = 0;
	l->written = 0;
}

int tern_lograte_due(tern_lograte *l, int64_t now, uint64_t *held)
{
	if (l->written && now - l->last_ms < l->every_ms) {
		l->held++;
		return 0;
	}
	*held = l->held;
	l->held = 0;
	l->last_ms = now;
	l->written = 1;
	return 1;
}

void tern_lograte_reset(tern_lograte *l, uint64_t *held)
{
	*held = l->held;
	l->held = 0;
	l->written = 0;
}

int tern_nomem_final(const tern_nomem *c, int64_t now)
{
	return c->tries >= TERN_NOMEM_TRIES && now - c->first >= TERN_NOMEM_SPAN_MS;
}

void tern_nomem_count(tern_nomem *c, int64_t now)
{
	if (c->tries++ == 0)
		c->first = now;
}

/* The per-peer rate limit on submissions ([limits] peer_rate, peer_burst,
 * peer_backlog): a token bucket per peer, and the submissions over it,
 * waiting in order until their turn (rate_release, each loop turn).
 *
 * Touches: the peers' buckets and deferred queues, b->batch (appends the
 * submissions whose turn came, through route.c's submit_now). */
#include <stdlib.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/reason.h>

#include "broker_int.h"
#include "pbuf.h"
#include "util.h"

static void refill(broker *b, struct peer *p, int64_t now)
{
	if (p->refilled == 0)
		p->tokens = b->peer_burst;
	else if (now > p->refilled)
		p->tokens += (double)(now - p->refilled) * b->peer_rate / 1000;
	if (p->tokens > b->peer_burst)
		p->tokens = b->peer_burst;
	p->refilled = now;
}

/* Per-peer rate limit ([limits] peer_rate, peer_burst): one node's flood
 * must not starve the others. A submission over the rate waits, in order,
 * with its answer delayed, so a node keeping to its submit window simply
 * slows down. Returns 1 when f was deferred (or dropped: then the node is
 * told to say Hello again, which makes it resubmit what is unanswered). */
int rate_admit(broker *b, struct peer *p, Tern__V1__Frame *f)
{
	int64_t now = tern_now_ms();
	struct deferred *d;
	size_t bytes = f->submit ? f->submit->envelope.len : 0;
	uint64_t f_session = f->submit ? f->submit->session : 0;

	refill(b, p, now);
	if (p->dq_n == 0 && p->tokens >= 1) {
		p->tokens -= 1;
		return 0;
	}
	if ((int64_t)(p->dq_bytes + bytes) > b->peer_backlog || (d = malloc(sizeof(*d))) == NULL) {
		if (now - p->last_limit_log > 1000) {
			log_warnx("%s is over its rate and backlog: submissions dropped; it will "
			          "resubmit them",
			          p->id);
			p->last_limit_log = now;
		}
		tern_pb_free((ProtobufCMessage **)&f);
		/* What follows in this session would overtake the dropped one. */
		p->broken = 1;
		session_refuse(b, p->rid, p->rid_len, f_session, TERN_REASON_HELLO_REQUIRED,
		               "over the rate limit: say Hello again and resubmit");
		return 1;
	}
	d->next = NULL;
	d->frame = f;
	d->bytes = bytes;
	if (p->dq_tail)
		p->dq_tail->next = d;
	else
		p->dq_head = d;
	p->dq_tail = d;
	p->dq_n++;
	p->dq_bytes += bytes;
	if (p->dq_n == 1 && now - p->last_limit_log > 10000) {
		log_info("%s is over its rate (%.0f/s): its submissions wait", p->id, b->peer_rate);
		p->last_limit_log = now;
	}
	return 1;
}

/* Takes the first deferred submission off p's queue; the caller owns it. */
static struct deferred *dq_pop(struct peer *p)
{
	struct deferred *d = p->dq_head;

	p->dq_head = d->next;
	if (p->dq_head == NULL)
		p->dq_tail = NULL;
	p->dq_n--;
	p->dq_bytes -= d->bytes;
	return d;
}

/* Deferred submissions whose turn has come join the batch. Those of a
 * broken session (a failed commit dropped what came before them, or a gap)
 * or of one a Hello replaced are dropped instead: the node resubmits all it
 * has unanswered, in order, in its next session, and taking them here would
 * put them ahead of what was dropped. */
void rate_release(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = &b->peers[i];
		if (p->dq_n == 0)
			continue;
		if (p->broken) {
			rate_free(p);
			continue;
		}
		refill(b, p, now);
		while (p->dq_head && b->batch.nsubs < (size_t)b->batch_size) {
			struct deferred *d = p->dq_head;
			if (d->frame->submit->session != p->session) {
				d = dq_pop(p);
				tern_pb_free((ProtobufCMessage **)&d->frame);
				free(d);
				continue;
			}
			if (p->tokens < 1 ||
			    submit_now(b, p->id, p->rid, p->rid_len, d->frame) != TERN_OK)
				break;
			p->tokens -= 1;
			free(dq_pop(p)); /* the batch owns its frame now */
		}
	}
}

void rate_free(struct peer *p)
{
	while (p->dq_head) {
		struct deferred *d = p->dq_head;
		p->dq_head = d->next;
		tern_pb_free((ProtobufCMessage **)&d->frame);
		free(d);
	}
	p->dq_tail = NULL;
	p->dq_n = p->dq_bytes = 0;
}

/* The broker's internals, shared by its modules and its unit tests
 * (tests/unit/test_broker_*.c); main.c sees only broker.h. One struct broker
 * holds the whole state: the loop (broker.c) owns it, and each module below
 * touches only the parts its own comment names.
 *
 *   broker.c   open, close, reload, the timers and the run loop: the skeleton
 *   admit.c    who may connect and speak: ZAP, bars on members no longer
 *              admitted, closing their connections, revocation sweeps
 *   session.c  peers: Hello/Welcome, frames from nodes, rate limits, heartbeats
 *   route.c    judging a Submit: verify, authorize, recipients, dedup, queueing
 *   batch.c    the one write per round (group commit) and what follows it
 *   deliver.c  deliveries under credit, redelivery, nodes found restored
 *   control.c  the operator's control socket
 *   metrics.c  /metrics and the socket monitor's events
 *   chunk.c    attachment frames: ChunkPut, ChunkGet, ChunkDone, pending gets
 *              (the transfers' store and spool files: xfer.h)
 */
#ifndef TERN_BROKER_INT_H
#define TERN_BROKER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <tern/envelope.h>
#include <tern/msgtype.h>
#include <tern/reason.h>
#include <tern/v1/wire.pb-c.h>

#include "audit.h"
#include "backoff.h"
#include "broker.h"
#include "apisrv.h"
#include "http.h"
#include "ident.h"
#include "queue.h"
#include "store.h"
#include "workq.h"
#include "xfer.h"
#include "zmon.h"

#define MAX_PEERS 256
#define XFER_SWEEP_MAX 256 /* transfers ended per write */
#define MAX_RID 256
/* Delivers in one DeliverBatch frame at most, and their envelopes' bytes: a
 * batch stays far below any node's frame limit (tern_hop_frame_max). */
#define BROKER_DELIVER_BATCH_MAX 64
#define BROKER_DELIVER_BATCH_BYTES (256u << 10)

/* A submission whose verification ran out of memory, and its tries
 * (tern_nomem, backoff.h) until it is taken (route.c). It is named by a
 * digest of its envelope: its id is inside what could not be verified. */
#define PEER_NOMEM_DIGEST 16
struct peer_nomem {
	uint8_t digest[PEER_NOMEM_DIGEST];
	tern_nomem c; /* c.tries 0: a free slot */
	int64_t last; /* ms, its latest try */
};
/* Counts kept per peer. A node resubmits from its oldest unanswered, so it
 * has one message put off at a time, as a rule; a few slots cover the odd
 * case. Each peer has its own: a member that sends many cannot push out
 * another's count, and a count pushed out of its own slots only starts
 * again (the message put off longer, never refused sooner). */
#define PEER_NOMEM_SLOTS 4

struct peer {
	char id[64];
	uint8_t rid[MAX_RID];
	size_t rid_len;
	int live; /* said Hello on its current connection */
	/* The connection's socket and its two ends as at Hello: lets the broker
	 * close the connection of a member it no longer admits (see
	 * peer_disconnect). fd -1 when unknown. */
	int fd;
	struct sockaddr_storage local, remote;
	/* Submissions are taken only in sequence within the latest Hello's
	 * session (wire.proto, Submit); after a gap the rest of the session is
	 * refused until the node says Hello again. */
	uint64_t session, next_index;
	int broken;
	uint32_t credit;
	uint32_t deliver_batch; /* Delivers per frame it takes (Hello); 0 or 1: one each */
	uint32_t result_batch;  /* SubmitResults per frame it takes (Hello); 0 or 1: one each */
	uint64_t acked;         /* every seq <= acked is committed at the node */
	uint64_t sent;          /* highest seq sent, back to acked for a redelivery */
	/* highest seq sent on this connection, redeliveries or not: what the
	 * node may acknowledge */
	uint64_t sent_hi;
	int64_t progress; /* last ack that advanced, or first send after idle */
	int64_t wait;     /* current redelivery wait, ms */
	/* Attempts belong to one entry, the queue's head (attempts_seq): each
	 * delivery of it that ended without its acknowledgement counts once,
	 * when its ack_timeout passes or when a new process of the node says
	 * Hello (a node that crashes on it, again and again). A Hello from the
	 * same process resets the count: it says the node had a reason of its
	 * own (its disk, a gap, a silent broker). */
	int attempts;
	uint64_t attempts_seq;
	/* What was sent on a connection whose route was dropped for silence,
	 * not yet counted (the sent mark goes back to acked with the route):
	 * the next Hello of a new process counts it. 0: nothing. */
	uint64_t lost_hi;
	/* Its Hellos' instances: the node's process (0: unknown), and the one
	 * before it (a Hello from that one is a handover back, between two
	 * processes sharing the identity, not a restart); when a restart was
	 * last counted (at most one an ack_timeout). */
	uint64_t instance, prev_instance;
	int64_t restart_counted;
	int64_t last_rx;
	int64_t last_tx;
	int64_t last_restore; /* when its store was last found put back */
	int dirty;            /* queue changed: try to deliver */
	int64_t scan_warned;  /* when a cut-short scan of its queue was last logged */
	char software[64];    /* as its Hello said */
	/* Rate limit: a token bucket; submissions over it wait here, in order. */
	double tokens;
	int64_t refilled;
	struct deferred *dq_head, *dq_tail;
	size_t dq_n, dq_bytes;
	int64_t last_limit_log;
	/* Pending chunk gets (chunk.c); chunk_dirty: something may be sendable. */
	struct chunk_get *gets; /* PEER_MAX_GETS of them once allocated */
	size_t ngets;
	int chunk_dirty;
	/* The bulk lane (wire.proto, BulkHello): the route of the node's second
	 * connection, which carries its chunk frames; bulk_rid_len 0 when it has
	 * none for the current session. */
	uint8_t bulk_rid[MAX_RID];
	size_t bulk_rid_len;
	/* The lane's socket and ends, as at its BulkHello (fd -1: unknown), so
	 * that closing the session closes the lane too. */
	int bulk_fd;
	struct sockaddr_storage bulk_local, bulk_remote;
	/* Its submissions put off for a shortage of the broker's (route.c). */
	struct peer_nomem nomem[PEER_NOMEM_SLOTS];
};

/* A recipient's ChunkGet not yet served in full (chunk.c): in memory only,
 * dropped with its session; the node asks again after a Hello. */
struct chunk_get {
	char msgid[37];
	uint32_t att;
	uint64_t next; /* the next chunk to send */
	uint32_t left; /* chunks still to send */
};
#define PEER_MAX_GETS 64 /* pending gets per peer; more are refused (busy) */

struct deferred {
	struct deferred *next;
	Tern__V1__Frame *frame;
	size_t bytes;
};

struct sub {
	Tern__V1__Frame *frame; /* owns the envelope bytes */
	tern_envelope *env;     /* NULL when refused before verification */
	char peer[64];
	uint8_t rid[MAX_RID];
	size_t rid_len;
	char msgid[37];
	int64_t expires;
	char code[32]; /* refusal found before the write, or "" */
	char text[256];
	/* The signature checked and the header's sender the authenticated
	 * peer: a refusal found after that (expiry, a recipient revoked since)
	 * does not stand against a message this sender had accepted before. */
	int own;
	/* The broker had no memory to verify it: no verdict, and no answer (the
	 * session is broken, so the node resubmits it). */
	int oom;
	/* outputs of the apply */
	int accepted;
	uint64_t n; /* accepted: its number among its sender's acceptances */
	char out_code[64], out_text[512];
};

struct ack {
	char node[64];
	uint64_t upto;
};

struct dead {
	char node[64];
	uint64_t seq; /* the head the attempts were counted for; 0: dropped */
};

/* Delivery latency buckets (seconds): broker commit to the node's commit
 * (metrics.c). */
#define LAT_BUCKETS 12
extern const double broker_lat_le[LAT_BUCKETS];

struct batch {
	struct sub *subs;
	size_t nsubs, capsubs;
	struct ack acks[MAX_PEERS * 2];
	size_t nacks;
	int64_t acks_since; /* when the oldest acknowledgement in acks came */
	/* Commits failed in a row: the acknowledgements they kept wait longer
	 * each time before they alone make a commit (2 s, 4 s, ... 32 s). */
	int failures;
	struct dead dead[MAX_PEERS];
	int dead_done[MAX_PEERS]; /* output: 1 when the entry was there to dead-letter */
	size_t ndead;
	int sweep;
	size_t expired;        /* output: items the sweep dead-lettered as expired */
	size_t expire_damaged; /* output: expired items that do not decode (left) */
	int purge;             /* delete acknowledged items past retention */
	size_t purged;         /* output: how many */
	size_t acked_items;    /* output: queue items the acknowledgements took */
	int checkpoint;        /* 1: sign if the log grew; 2: even if not */
	int64_t now;
	uint64_t lat[LAT_BUCKETS + 1]; /* delivery latencies acknowledged in this batch */
	double lat_sum;
	/* transfers ended in this write (expired, or all done or dead): their
	 * spool files go once it committed */
	struct xfer_gone {
		char msgid[37];
		size_t natt;
	} xgone[XFER_SWEEP_MAX];
	size_t nxgone;
};

/* A chunk written this turn, counted at chunk_flush. */
struct chunk_staged {
	char msgid[37];
	char peer[TERN_NODE_ID_MAX + 1];
	uint32_t att;
	uint64_t index, nchunks, have;
	uint8_t *proof; /* owned */
	size_t proof_len;
	/* 1: counted before; 2: no space; 3: not kept; 4: transfer gone;
	 * 5: refused (answered when it was) */
	int failed;
	uint64_t seq; /* its job on the chunk-writing thread (xput.c) */
	int pending;  /* 1 until that job is back: not synced nor counted before */
};

struct broker {
	tern_ident id;
	tern_sigcache *sigs; /* verified batch roots */
	void *ctx, *router, *zap, *monitor;
	tern_zmon *zmon; /* the monitor's events, with the peer's address */
	int64_t last_handshake_log, last_barred_log;
	unsigned handshakes_failed;
	tern_store *store;
	/* The store's identity (fixed when it was created; a copy put back has
	 * the same) and this start's epoch (delivery sequences are trusted by
	 * nodes only within one epoch: a store put back numbers again what it
	 * numbered after the copy was taken). */
	uint8_t store_id[BQ_EPOCH_LEN], epoch[BQ_EPOCH_LEN];
	struct peer peers[MAX_PEERS];
	/* Witness frames each member may still have relayed to each other
	 * member, by their indexes in peers (relay_witness): a bucket of
	 * WITNESS_BURST refilled at WITNESS_RATE a second, per pair, so that no
	 * member can spend another's allowance. Here, not in struct peer: a
	 * peer is zeroed on the stack for every frame read (on_router). */
	struct witness_bucket {
		double tokens;
		int64_t refilled;
	} wb[MAX_PEERS][MAX_PEERS];
	size_t npeers;
	/* connections of members no longer admitted, closed when due */
	struct closing {
		struct peer conn;
		int64_t at;
	} closing[MAX_PEERS];
	size_t nclosing;
	struct batch batch;
	/* Chunks put and written, not yet counted (chunk.c): the first
	 * nsyncing are being synced by the syncer's thread, the rest wait for
	 * its next batch; chunk_flush counts each batch once it is on disk. */
	struct chunk_staged *staged;
	size_t nstaged, capstaged, nsyncing;
	unsigned turn_puts; /* chunks taken in this turn of the loop */
	struct tern_syncer *syncer;
	tern_workq *xput; /* the chunk-writing thread (xput.c); NULL: on the loop */
	uint64_t xput_seq;
	/* Attachments: [limits] bounds, and where the chunks are spooled */
	uint64_t max_att_size, max_att_total;
	char chunk_dir[1024];
	int64_t frame_max; /* the largest frame taken: an envelope's or a chunk's */
	int64_t max_msg, batch_size, default_ttl_ms, max_attempts, ack_timeout_ms, max_backoff_ms;
	int64_t retain_ms, retain_ids_ms, next_purge;
	int64_t hb_ivl_ms, hb_timeout_ms, skew_ms;
	int64_t next_sweep;
	tern_audit_dbs audit;
	char origin[160];
	int64_t last_checkpoint, last_audit;
	int64_t cp_ivl_ms, idle_ivl_ms;
	double peer_rate, peer_burst;
	int64_t peer_backlog;
	tern_apisrv *ctl; /* the control socket (docs/operations.md) and its clients */
	tern_http *http;  /* /metrics, /healthz, /readyz; NULL when [metrics] port = 0 */
	int64_t next_metrics, next_expiry_check;
	/* A revocation sweep found acknowledgements it could not commit: what
	 * waits for revoked members is dead-lettered once a commit succeeds. */
	int sweep_deferred;
	/* The queue gauges read every queued item: with a large backlog they are
	 * refreshed less often than the snapshot, for at most 1% of the loop. */
	bq_dest *qstats;
	size_t nqstats;
	uint64_t xfer_retained; /* xfer_retained_bytes at the last refresh */
	int64_t next_qscan;
	struct {
		uint64_t subs[TERN_MSGTYPE_MAX][2]; /* by message type, [accepted, refused] */
		uint64_t acked, dead;
		uint64_t expired_dead; /* dead-lettered: past their time-to-live */
		uint64_t revoked_dead; /* dead-lettered: recipient revoked */
		uint64_t removed_dead; /* dead-lettered: recipient removed from the directory */
		uint64_t restores;     /* nodes found restored from an older copy */
		uint64_t lost;         /* deliveries such nodes lost beyond retention */
		uint64_t purged;       /* acknowledged items purged after retention */
		uint64_t barred;       /* frames from members no longer admitted */
		uint64_t batch[11];    /* commit sizes: <=1, 2, 4, ..., 512, more */
		uint64_t batch_sum;
		uint64_t lat[LAT_BUCKETS + 1];
		double lat_sum;
		uint64_t accepted, handshakes_ok, handshakes_failed;
		uint64_t out_of_sequence;
		uint64_t rollbacks[2]; /* older trust material refused: [CRL, directory] */
		uint64_t chunks_in, chunks_out, chunks_refused; /* attachment chunks */
	} m;
};

/* What judging a submission reads (route_judge): the directory in force and
 * the limits. The broker makes one from its own state each time, so a reload
 * takes effect at the next submission; a unit test makes one by hand. */
struct route_rules {
	const tern_directory *dir;
	tern_sigcache *sigs; /* verified batch roots; may be NULL */
	int64_t max_msg, skew_ms, default_ttl_ms;
	/* [limits] max_attachment_size, max_message_attachments; 0: the defaults */
	uint64_t max_att_size, max_att_total;
	/* Verifying this submission has run out of memory over a lasting
	 * shortage (tern_nomem_final, counted for it by its sender's peer): one
	 * more is refused (no-memory), not put off again, so that a submission
	 * this broker can never afford to verify does not come back for ever (a
	 * Hello and a resubmission a round trip). */
	int nomem_final;
};

/* --- session.c -------------------------------------------------------------- */

/* The peer named id; create: add it if it is new and there is room. */
struct peer *peer_find(broker *b, const char *id, int create);
/* Marks rcpt's queue as changed (arg: the broker); a bq_* callback. */
void touch_peer(const char *rcpt, void *arg);
int peer_send(broker *b, struct peer *p, Tern__V1__Frame *f);
/* Sends a chunk frame (ChunkAck, Chunk) on p's bulk lane when it has one,
 * else on its main connection. A lane whose connection went is closed and
 * the frame goes on the main connection. */
int peer_send_bulk(broker *b, struct peer *p, Tern__V1__Frame *f);
/* Reads one ROUTER message: routing id, then exactly one frame. 0 when none
 * was waiting, 1 when one was read (handled, refused or dropped). */
int on_router(broker *b);
/* One decoded frame from the authenticated node user on route rid (conn:
 * its connection's socket, fd only: its ends are looked up, with conn_ends,
 * only when a Hello or BulkHello records them); takes ownership of f.
 * on_router's second half, apart so that tests can drive it without CURVE. */
void session_on_frame(broker *b, const char *user, const struct peer *conn, const uint8_t *rid,
                      size_t rid_len, Tern__V1__Frame *f);
/* Whether a Submit comes in its session's order (wire.proto, Submit). */
enum submit_order {
	SUBMIT_TAKE,   /* the next one due: taken, and the one after is due */
	SUBMIT_STALE,  /* of a session a later Hello replaced: dropped silently */
	SUBMIT_GAP,    /* not the one due: refused (out-of-sequence), and the
	                  rest of the session with it */
	SUBMIT_BROKEN, /* after a gap, until the next Hello: dropped silently */
};
/* p's session can no longer be taken in order (a submission of it was
 * dropped: out of memory, a failed commit): what follows in it is dropped
 * (submit_order: SUBMIT_BROKEN) and the node is told, once, to say Hello
 * again and resubmit from its outbox, in order. */
void session_break(broker *b, struct peer *p, const uint8_t *rid, size_t rid_len, const char *why);
enum submit_order submit_order(struct peer *p, const Tern__V1__Submit *sm);
/* A frame from user (rid: its connection) that did not decode (rc): refused
 * with its reason and audited, as bad input; for want of memory (TERN_ENOMEM),
 * no fault of the node's, its session is broken instead (session_break). */
void frame_undecodable(broker *b, const char *user, const uint8_t *rid, size_t rid_len, int rc);
/* A Refused frame to connection rid, for the Submit of session (0: none). */
void session_refuse(broker *b, const void *rid, size_t rid_len, uint64_t session,
                    tern_reason reason, const char *text);

/* --- ratelimit.c ------------------------------------------------------------ */

/* 1 when submission f of p is over the rate and waits (or was dropped, p's
 * session broken and the node told); it then owns f. 0: take it now. */
int rate_admit(broker *b, struct peer *p, Tern__V1__Frame *f);
/* The waiting submissions whose turn has come join the batch. */
void rate_release(broker *b, int64_t now);
/* Drops p's waiting submissions. */
void rate_free(struct peer *p);
void session_heartbeats(broker *b, int64_t now);

/* --- admit.c ---------------------------------------------------------------- */

const char *peer_barred(const broker *b, const char *id, int64_t now_ms);
/* The two ends of the connection whose socket is fd (as ZMQ_SRCFD gives it),
 * into *local and *remote; returns fd, or -1 when fd is -1 or either lookup
 * fails. Two system calls: made only where a connection is recorded (Hello,
 * BulkHello, a barred peer's frame), not for every frame. */
int conn_ends(int fd, struct sockaddr_storage *local, struct sockaddr_storage *remote);
void peer_disconnect_later(broker *b, const struct peer *conn);
void disconnect_due(broker *b, int64_t now);
void session_close(broker *b, struct peer *p, const char *why);
void zap_handle(broker *b);
void audit_refusal(broker *b, const char *peer, const char *code);
void revocation_sweep(broker *b);

/* --- route.c ---------------------------------------------------------------- */

/* Puts a submission into the batch, judged. TERN_ENOMEM (no room in the
 * batch, or no memory to verify it) leaves f with the caller (not
 * acknowledged: the node resubmits after its next Hello). */
int submit_now(broker *b, const char *user, const uint8_t *rid, size_t rid_len, Tern__V1__Frame *f);
/* Prepares s for f (a Submit frame, which s then owns) from peer. */
void route_sub_init(struct sub *s, Tern__V1__Frame *f, const char *peer, const uint8_t *rid,
                    size_t rid_len);
/* Everything that can be decided before the write: signature, identity,
 * role, recipients, expiry. A refusal sets s->code and s->text. */
void route_judge(const struct route_rules *r, struct sub *s, int64_t now);
/* Inside the write: de-duplication, then the item queued for every
 * recipient, or the refusal audited. Sets s->accepted, s->n and s->out_*.
 * Anything but TERN_OK aborts the whole transaction. */
int route_write(MDB_txn *txn, tern_store *st, struct sub *s, int64_t now);
/* The answer the node gets for s once the write committed. Points into s. */
void route_result(struct sub *s, Tern__V1__SubmitResult *r);
/* Frees what s owns (its frame and envelope). */
void route_sub_free(struct sub *s);

/* --- chunk.c ---------------------------------------------------------------- */

/* Chunk puts the loop takes per turn, and chunks it sends per recipient:
 * each costs a megabyte's checking and copying, and a message read after
 * them waits for them. */
#define CHUNK_PUTS_PER_TURN 2
#define CHUNK_SENDS_PER_TURN 2
/* The attachment frames from a node (docs/protocol.md, Attachments). */
void chunk_on_put(broker *b, struct peer *p, const Tern__V1__ChunkPut *cp);
/* After a turn's frames: counts the chunks the syncer has made durable since
 * (one write), answers their ChunkAcks and wakes their recipients' gets;
 * then hands the chunks put since to the syncer, each file once. */
void chunk_flush(broker *b);
void chunk_on_get(broker *b, struct peer *p, const Tern__V1__ChunkGet *cg);
void chunk_on_done(broker *b, struct peer *p, const Tern__V1__ChunkDone *cd);
/* Sends p what its pending gets may have now, a few chunks a turn, without
 * blocking: what the socket does not take waits for a later turn. */
void chunk_pump(broker *b, struct peer *p);
/* p's session ended: its pending gets go. */
void chunk_gets_drop(struct peer *p);
/* An xfer_sweep callback (arg: the batch): remembers what to remove. */
void chunk_gone(const char *msgid, size_t natt, void *arg);
/* After a commit: removes the spool files of the transfers that ended. */
void chunk_gone_apply(broker *b);

/* --- xput.c ----------------------------------------------------------------- */

/* Chunk puts out on the chunk-writing thread at once, each holding its
 * chunk's copy; with as many out, the loop does the next put itself. */
#define XPUT_MAX_OUT 16
enum chunk_xresult {
	CHUNK_XPUT_OK,        /* checked against its seal and written */
	CHUNK_XPUT_MISMATCH,  /* it does not match its seal and proof */
	CHUNK_XPUT_UNWRITTEN, /* not written: err (ENOSPC: the disk is full) */
};
/* A put for the thread: its own copy of the chunk and the proof. */
struct chunk_xjob {
	struct tern_workq_item item; /* first: the queue's link */
	uint64_t seq;                /* its staged entry's */
	char msgid[37];
	uint32_t att, chunk_size;
	uint64_t index, size;
	uint8_t root[32]; /* the signed seal's */
	uint8_t *data;    /* owned */
	size_t len;
	tern_hash *proof; /* owned */
	size_t nproof;
	const char *dir; /* b->chunk_dir */
	enum chunk_xresult result;
	int err;
	char why[256];
};
/* Checks j against its seal, makes sure of the room and writes it: on the
 * thread, or on the loop for a broker without one. 0, or 1 with j->result. */
int xput_work(struct chunk_xjob *j);
void chunk_xjob_free(struct chunk_xjob **j);
/* Starts the thread, b->xput (broker_open: the loop queues jobs with
 * tern_workq_push, polls tern_workq_fd and takes them back); stops it,
 * dropping what it holds (those chunks were never counted: their senders
 * put them again). */
int xput_start(broker *b);
void xput_stop(broker *b);
/* chunk.c: the jobs back from the thread marked on their staged entries. */
void chunk_xput_done(broker *b);

/* --- batch.c ---------------------------------------------------------------- */

void batch_reset(broker *b);
/* Writes the batch in one transaction, then answers and counts. */
void batch_commit(broker *b);
/* Whether the loop commits now: always when the batch holds anything but
 * acknowledgements; acknowledgements alone wait up to BATCH_ACK_DEFER_MS for
 * company (a submission usually follows within it), since committing them
 * is never urgent: one lost in a crash only means a redelivery the node
 * recognises. *wait_ms: how long the loop may sleep before it must ask
 * again. */
#define BATCH_ACK_DEFER_MS 20
/* Adds node's acknowledgement of everything up to upto to the batch: one
 * entry per node, the highest. */
void batch_ack_add(broker *b, const char *node, uint64_t upto);
/* node's acknowledgement in the batch, not committed yet (0: none). */
uint64_t batch_ack_pending(const broker *b, const char *node);
int batch_due(const broker *b, int64_t now, int *wait_ms);
/* Decides what the next batch also does: checkpoint, purge, expiry sweep. */
void batch_timers(broker *b, int64_t now);

/* --- deliver.c -------------------------------------------------------------- */

/* Sends the next deliveries to p while its credit allows, in seq order. */
void deliver_pump(broker *b, struct peer *p);
/* Counts an acknowledged item's delivery latency into the batch (arg); a
 * bq_ack callback. */
void deliver_latency(const bq_item *it, void *arg);
void deliver_redeliveries(broker *b, int64_t now);
/* One delivery of head, p's first entry, ended unacknowledged: counted for
 * head; at [delivery] max_attempts the batch dead-letters it. */
void deliver_count(broker *b, struct peer *p, uint64_t head);
void node_restored(broker *b, struct peer *p, uint64_t to, int exact);

/* --- control.c -------------------------------------------------------------- */

int control_open(broker *b);

/* --- metrics.c -------------------------------------------------------------- */

void publish_metrics(broker *b, int64_t now);
void on_monitor(broker *b);

#endif

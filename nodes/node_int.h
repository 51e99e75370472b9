/* tern-node's internals, shared by its files (node.h is the public face
 * main.c uses): struct node, the batch one loop turn commits, and what each
 * file offers the others.
 *
 *   node.c        open, close, the loop, SIGHUP reload: the skeleton
 *   session.c     the broker session: Hello/Welcome, frames from the broker,
 *                 heartbeats, the socket monitor and refused handshakes
 *   submit.c      outbox entries (sealing), the submit window, results
 *   deliver.c     judging what the broker delivers, receipts owed
 *   commit.c      the batch's one write transaction per turn, and after it
 *   witnessing.c  cosigning peers' checkpoints, asking peers for ours
 *   api_ops.c     the local API's operations (api_server.h calls them)
 *   metrics.c     /metrics, /healthz, /readyz; HTTP API refusal counts
 *   store.c       the LMDB layout (node_store.h)
 *
 * Everything a turn changes in the store goes through n->batch: the other
 * files add to it, and only commit.c writes it (witnessing, the refusal
 * counts and a broker store found restored write at once, outside it).
 * Single-threaded: every function runs on the node's loop.
 */
#ifndef TERN_NODE_INT_H
#define TERN_NODE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/merkle.h>
#include <tern/msgtype.h>
#include <tern/v1/messages.pb-c.h>

#include "api_server.h"
#include "backoff.h"
#include "hop.h"
#include "http_api.h"
#include "ident.h"
#include "node.h"
#include "node_store.h"
#include "webhook.h"
#include "workq.h"

/* The acknowledgements one commit holds: each is a parked API client. */
#define MAX_CLIENTS API_SERVER_MAX_PARKED
/* Delivers this node takes in one DeliverBatch frame (its Hello says so). */
#define NODE_DELIVER_BATCH 64
/* SubmitResults this node takes in one frame (its Hello says so). */
#define NODE_RESULT_BATCH 256

/* One attachment as a message carries it (tern/attach.h, docs/attachments.md). */
struct node_att {
	uint64_t size;
	uint32_t chunk_size;
	uint8_t root[32];   /* the signed seal's */
	uint8_t sha256[32]; /* the plaintext's, as the body declares it */
};

/* A message to put in the outbox: an API send, or a receipt we owe. */
struct out {
	char msgid[37];
	tern_sealed *sealed; /* until batch_sign turns it into env */
	uint8_t *env;
	size_t len;
	char type[32];
	char case_id[129];
	int64_t created_at;
	char **rcpts;
	size_t nrcpts;
	char outcome[40];
	char ref[37];
	char client_ref[129];
	uint8_t client_fp[32]; /* what the send said (node_send_fingerprint), with client_ref */
	int client;            /* the API client parked for the commit (api_server.h), or -1 */
	int64_t wait_ms;       /* the client waits for the final state too (send "wait_ms") */
	/* Attachments sealed into spool/out (xfer_out.c): their seals, each
	 * one's chunk leaf hashes (for the proofs), the uploads they came from */
	struct node_att *atts;
	size_t natts;
	tern_hash **leaves;
	char (*uploads)[37];
};

/* DIN_HOLD: kept, unjudged, until the message it cites (ref) arrives (held.c). */
enum din_kind {
	DIN_ACCEPT,
	DIN_REFUSE,
	DIN_RECEIPT,
	DIN_NOTICE,
	DIN_DUPLICATE,
	DIN_NOTHING,
	DIN_HOLD,
	DIN_XFER, /* kept, unjudged, until its attachments are in (xfer_in.c) */
	/* Not judged: memory ran out on the way. Not taken, answered or kept:
	 * judged again later. A refusal would be a signed verdict of a moment's
	 * shortage, for good. */
	DIN_NOMEM
};

/* What a delivery does to the store, decided before the write. */
struct din {
	int kind;
	uint64_t seq;
	char msgid[37];
	uint8_t *env;
	size_t len;
	char sender[64], type[32], case_id[129], outcome[40];
	char ref[37]; /* the referral a decision answers, the decision a travel follows */
	char code[40], text[256];
	/* DIN_RECEIPT / DIN_NOTICE: which of our messages, for whom, what state */
	char target[37], node[64], state[16];
	int notice; /* DIN_NOTICE: its tern.v1.Notice.Kind */
	/* DIN_ACCEPT: the workflow's verdict (tern/workflow.h), owned: the
	 * message's record and its thread's new root record (NULL: none) */
	tern_wf_record *wf, *wf_rootrec;
	char wf_root[37];
	int64_t hold_until; /* DIN_HOLD: refused unknown-reference after this (ms) */
	int unhold;         /* a held delivery judged at last: forgotten as held */
	int behind;         /* DIN_HOLD behind a held one of its sender citing the same:
	                     * due at the next tick, after it */
	size_t sealed_atts; /* attachments its signed header seals (the broker holds
	                     * them: a refusal tells it this node is done with them) */
	/* Its attachments (audit entries); DIN_XFER: their seals and the
	 * declared digests. unxfer: a transfer judged at last. */
	struct node_att *atts;
	size_t natts;
	int64_t xfer_until; /* DIN_XFER: refused attachment-incomplete after this */
	int unxfer;
	/* SHA-256 of env, once made for its receipt: kept with the record too
	 * (ReceivedRecord.envelope_digest), not hashed again. */
	uint8_t env_digest[32];
	int has_digest;
};

struct result {
	char msgid[37];
	int accepted;
	uint64_t n;  /* accepted: the broker store's number for it */
	int current; /* answers a submission of the current session */
	char code[64], text[256];
};

struct inack {
	char msgid[37];
	int client;
};

struct batch {
	struct out *outs;
	size_t nouts, capouts;
	struct din *dins;
	size_t ndins, capdins;
	struct result *results;
	size_t nresults, capresults;
	int64_t results_since; /* when the oldest result in results came */
	struct inack acks[MAX_CLIENTS];
	size_t nacks;
	uint64_t delivered; /* highest delivery seq handled this round */
	int checkpoint;     /* 1: sign a checkpoint if the log grew; 2: even if not */
	int64_t now;
	/* The workflow records (tern/workflow.h) this batch writes to the refs
	 * table, by message id, later ones replacing earlier: judging reads
	 * them before the store, so that a message may follow one of the same
	 * batch. NULL when none. */
	tern_wf_records *wf;
	/* Webhook pushes delivered (webhook.h), to delete; pushes_added: this
	 * batch wrote some, so the pusher is woken after the commit. */
	uint64_t *pushes_done;
	size_t npushes_done, cappushes_done;
	int pushes_added;
};

#define MAX_WITNESSES 64

struct xout;
struct xin;
struct node_xprep;
struct xseal;
struct xopen;

/* Most inbox messages inbox.next remembers it cannot show (inbox.c): far
 * more than an inbox holds unacknowledged in practice, 37 MB at most. */
#define NODE_UNSHOWN_MAX 1000000

struct node {
	tern_ident id;
	tern_sealcache *seals; /* X25519 reuse for sealing and opening */
	/* inbox.c: the key of the inbox records' tags, derived from the sealing
	 * key when first needed; and the unshown messages' ids. */
	uint8_t inbox_key[32];
	int inbox_key_set;
	char (*unshown)[37]; /* sorted; passed over until the directory is reloaded */
	size_t nunshown, unshown_cap;
	/* Counts commits that may have changed the inbox, and reloads: a look
	 * of inbox.next that found nothing holds until it moves (its waiters
	 * look every turn). */
	uint64_t inbox_gen, none_at_gen;
	int none_seen;
	tern_sigcache *sigs; /* verified batch roots */
	tern_store *store;
	void *ctx, *dealer, *monitor;
	/* The bulk lane (wire.proto, BulkHello): a second connection for chunk
	 * frames, so that a transfer never queues ahead of messages. Open
	 * (bulk_ready) from its BulkWelcome until the next Hello or a refusal;
	 * chunk frames go on the main connection meanwhile. */
	void *bulk;
	void *bulk_ctx; /* the bulk lane's own: its I/O thread runs at nice 10 (node.c) */
	struct tern_syncer *xsync; /* syncs received chunks off the loop (xfer_in.c) */
	int bulk_connected;        /* connected once the main handshake succeeded */
	int bulk_ready;
	int xfer_started; /* transfers went on after this session's Welcome */
	int64_t bulk_hello_at;
	const tern_member *broker;
	api_server *api; /* the local API socket and its clients */
	struct batch batch;
	/* broker session */
	int connected;
	uint8_t epoch[16];  /* the broker start we hold deliveries of */
	uint8_t dstore[16]; /* the broker store those deliveries' numbers count in */
	/* The same as last committed: what Hello says. A Hello sent between a
	 * new epoch's first delivery and its commit must not claim 0, or the
	 * broker would take this store for one put back from an old copy. */
	uint8_t h_epoch[16], h_store[16];
	uint64_t h_upto;
	uint8_t bstore[16]; /* the broker store of the current connection (Welcome) */
	/* The broker store our acceptance numbers count in, and the highest we
	 * were told: a store put back from an older copy tells a lower count. */
	uint8_t astore[16];
	uint64_t amax;
	uint64_t delivered; /* committed up to */
	/* A delivery could not be taken (out of memory, no store reader): later
	 * ones are not taken either, so that none is acknowledged past it, until
	 * the Welcome to the Hello that asked for them all again. */
	int deliver_stopped;
	/* The delivery (its seq) judged out of memory, and its tries: once
	 * they are a lasting shortage (tern_nomem_final, backoff.h) it is
	 * refused no-memory, so that a message whose judging always runs out of
	 * memory here cannot block the queue behind it. */
	uint64_t nomem_seq;
	tern_nomem nomem;
	/* A commit failed with deliveries or answers in it: what the broker
	 * counts as given is lost, so the node says Hello again (at hello_due,
	 * later after each consecutive failure: a full disk must not turn into
	 * a Hello a round trip). 0: none due. */
	int64_t hello_due;
	int commit_failures;
	uint64_t submit_next;
	uint32_t inflight;
	/* Each Hello opens a session; submissions are numbered within it and
	 * only sent once its Welcome came (wire.proto, Submit). */
	uint64_t session, sub_index;
	/* This process's Hello instance (wire.proto, Hello): chosen at open, so
	 * the broker tells a restart from another Hello of the same process. */
	uint64_t instance;
	int64_t hello_at;
	int64_t last_rx, last_tx;
	/* A refused CurveZMQ handshake: libzmq 4.3.4 would retry every 100-200 ms
	 * whatever ZMQ_RECONNECT_IVL_MAX says (that applies to failed TCP
	 * connects only), so the node disconnects and reconnects itself. */
	tern_backoff hs_backoff;
	tern_lograte hs_log;
	int64_t reconnect_at; /* 0: connected, or libzmq is reconnecting */
	tern_audit_dbs audit;
	char origin[160];
	int64_t last_checkpoint, last_audit;
	/* witnessing: what each peer last cosigned of this log, as far as we know */
	struct witness {
		char id[TERN_NODE_ID_MAX + 1];
		uint64_t size;
		int reanchor; /* ask it to re-anchor from size (node_reanchor) */
		/* For node.info: its last cosignature of this log since the start
		 * (size, ms), and its last refusal's code ("" since a cosignature). */
		uint64_t cosigned;
		int64_t cosigned_at;
		char refused[32];
	} witnesses[MAX_WITNESSES];
	size_t nwitnesses;
	/* Until when witnesses that refuse this log (it was put back from a
	 * backup) are asked to re-anchor it: set by the operator, 0 when not. */
	int64_t reanchor_until;
	int64_t last_event, last_round; /* last entry other than COSIGNED; last round */
	/* operations: /metrics and the HTTP API (NULL when off) */
	tern_http *metrics;
	node_http *http;
	struct node_webhook *hook; /* NULL: [webhook] url = off */
	int64_t next_metrics, next_expiry_check, next_http_refusals;
	/* held.c: held deliveries by id ({ref, until}), those due to be judged
	 * again, and [delivery] hold */
	json_t *held, *held_due;
	int64_t next_hold_check, hold_ms;
	/* After a failed commit, what it released (held deliveries, finished
	 * transfers) is judged again from then on, not in the next turn: that
	 * commit would fail too, turn after turn. */
	int64_t rejudge_at;
	struct {
		uint64_t sent[TERN_MSGTYPE_MAX];        /* by message type */
		uint64_t received[TERN_MSGTYPE_MAX][2]; /* by message type, [accepted, refused] */
		uint64_t receipts[2];  /* receipts received: [delivered, rejected] */
		uint64_t rollbacks[2]; /* older trust material refused: [CRL, directory] */
		uint64_t restores[2];  /* stores found older: [the broker's, this node's] */
		uint64_t http_unauthorized;
	} m;
	/* attachments: the spool directory, transfers to the broker (xfer_out.c)
	 * and from it (xfer_in.c), and their limits */
	char *data_dir;
	struct xout **xouts;
	size_t nxouts, capxouts;
	struct xin **xins;
	size_t nxins, capxins;
	/* A transfer in the store could not be read or started (for want of
	 * memory, most likely): node_xin_load runs again at xin_reload_at (ms;
	 * 0: none due), a second later at first, then twice as long each time
	 * up to a minute while one still cannot (a damaged record, say). */
	int64_t xin_reload_at, xin_reload_wait;
	int64_t att_max, att_total, att_window, att_retain_ms;
	int64_t next_xfer_sweep, next_spool_sweep;
	struct xseal *xseal; /* the sealing thread (xfer_seal.c), NULL until needed */
	struct xopen *xopen; /* the chunk-opening thread (xfer_open.c), NULL until needed */
	uint8_t *xbuf;       /* one sealed chunk or its plaintext (xfer_*.c), or NULL */
	/* settings */
	int64_t cp_ivl_ms, idle_ivl_ms;
	int64_t max_msg, batch_size, credit, window, hb_ivl_ms, hb_timeout_ms, skew_ms;
};

/* --- session.c ----------------------------------------------------------------- */

/* Sends f to the broker without blocking; a frame the socket cannot take
 * now is dropped. TERN_OK; TERN_ENOMEM when there was no memory to make the
 * frame (nothing sent); TERN_EIO when the socket did not take it. Callers
 * that need not know ignore it: each frame's loss is covered by a resend. */
int node_hop_send(node *n, Tern__V1__Frame *f);
/* The same for a chunk frame: on the bulk lane when it is open. */
int node_bulk_send(node *n, Tern__V1__Frame *f);
/* Opens a new session: nothing is submitted until its Welcome. */
void node_send_hello(node *n);
/* Frames from the broker, at most batch_size per call. */
void node_on_dealer(node *n);
/* Frames on the bulk lane, a few per call: messages come first. */
void node_on_bulk(node *n);
/* Events of the broker connection (zmon.h). */
void node_on_monitor(node *n);
/* After a refused handshake: connects again when the backoff is over. */
void node_session_reconnect(node *n);
/* Heartbeats and a lost Hello or Welcome, once per turn. */
void node_session_tick(node *n, int64_t now);
/* Tells the broker this process stops (Bye), if connected: sent without
 * waiting; node_close gives it a moment to leave. */
void node_session_bye(node *n);

/* --- submit.c ------------------------------------------------------------------ */

/* The string field name of m, or "" (no such field, or not a string). */
const char *node_field_string(const ProtobufCMessage *m, const char *name);
/* Seals body for rcpts and fills o (everything the outbox write needs). On
 * failure o holds nothing to free. */
int node_make_out(node *n, const tern_msgtype *t, const char *const *rcpts, size_t nr,
                  const char *case_id, const char *in_reply_to, int64_t expires_at,
                  const uint8_t *body, size_t blen, const struct node_xprep *prep, struct out *o);
/* Frees what o holds and leaves it empty (freeing it again is harmless). */
void node_out_free(struct out *o);
/* A new slot in this turn's outbox writes, or NULL (out of memory). */
struct out *node_batch_out(node *n);
/* The broker's answer to a submission: kept for this turn's commit. */
void node_submit_result(node *n, const Tern__V1__SubmitResult *sr);
/* Submits outbox entries while the session and the window allow. */
void node_submit_pump(node *n);

/* --- deliver.c ----------------------------------------------------------------- */
/* What judging an envelope needs of the node: who it is, its keys, its
 * store and this turn's batch (a reference may point at a message received
 * or sent in it). A test can fill one by hand. */
typedef struct node_judge {
	const tern_directory *dir;
	const char *self; /* this node's id */
	unsigned roles;   /* its TERN_ROLE_* bits */
	const tern_sealkey *seal;
	tern_sealcache *seals; /* NULL: none */
	tern_sigcache *sigs;   /* NULL: none */
	tern_store *store;
	const struct batch *batch;
	size_t max_msg;
	int64_t skew_ms;
	int64_t hold_ms;    /* [delivery] hold */
	int hold_full;      /* no room to hold another: refuse what would be held */
	const json_t *held; /* n->held, to count a sender's (NULL: not counted) */
	int releasing;      /* judging a held delivery again (held.c) */
	/* Attachment limits; and, judging a transfer at its end (xfer_in.c),
	 * xfer_done = 1 with xfer_code "" (all in and as declared) or the
	 * reason it failed. */
	uint64_t att_max, att_total;
	int xfer_done;
	const char *xfer_code, *xfer_text;
	/* Memory ran out judging this delivery TERN_NOMEM_TRIES times already:
	 * refuse it (no-memory) rather than return DIN_NOMEM once more. */
	int nomem_final;
} node_judge;

/* tern_wf_lookup over j's batch, then the store in txn (arg: a
 * struct node_wf_view). */
struct node_wf_view {
	const node_judge *j;
	MDB_txn *txn;
};
int node_wf_lookup(void *arg, const char *msgid, tern_wf_record **rec);
/* Adds the records of v (taken: v's are NULL after, either way) to the
 * batch's: both, or neither (TERN_ENOMEM). */
int node_wf_keep(node *n, const char *msgid, tern_wf_record **rec, const char *root,
                 tern_wf_record **rootrec);
/* d, judged, joins this turn's batch with what it brings: the receipt owed
 * (an accepted or refused message with an id and a sender, not itself a
 * receipt; one that can never be sealed, its sender revoked, lapsed or
 * removed, is logged and left out) and its workflow records. All of it, or
 * nothing: an error (out of memory, or a receipt this node cannot seal for
 * a fault of its own) and the caller leaves the delivery for later. The
 * caller counts d in. */
int node_din_take(node *n, struct din *d, const uint8_t *env, size_t len);
/* Frees what d holds and zeroes it. */
void node_din_clear(struct din *d);

/* The judging context of n as it stands. */
void node_judge_of(node *n, node_judge *j);
/* *refused: whether this node refused msgid when it was delivered (in this
 * turn's batch, or stored), with its reason in code: what cites it then
 * waits for nothing. TERN_ENOMEM: no verdict. */
int node_refused_here(const node_judge *j, MDB_txn *txn, const char *msgid, int *refused,
                      char code[64]);
/* Decides what an envelope delivery does; fills d (zeroed by the caller).
 * Never fails: every outcome is a verdict the sender hears about, but for
 * DIN_NOMEM (memory ran out: the caller leaves the delivery for later).
 * Reads the store in txn, writes nothing. */
void node_judge_envelope(const node_judge *j, MDB_txn *txn, const uint8_t *buf, size_t len,
                         struct din *d);
/* A Deliver frame: judged and added to this turn's batch, with the receipt
 * owed for it. */
void node_on_deliver(node *n, const Tern__V1__Deliver *dv);
/* A frame from the broker was lost here (no memory to decode it): it may
 * have carried deliveries, so none after it is taken (an acknowledgement
 * would pass over them) until the Hello that asks for them all again. */
void node_deliver_lost(node *n, const char *why);
/* Takes deliveries again after one could not be taken (the Welcome to the
 * Hello that followed). */
void node_deliver_resume(node *n);

/* A signed receipt for d's message (accepted or refused), to its sender,
 * queued with this batch; an error when it could not be made (then nothing
 * is queued). */
int node_owe_receipt(node *n, struct din *d, const uint8_t *env, size_t len);

/* --- held.c -------------------------------------------------------------------- */

/* Most deliveries held at once; past it, what would be held is refused. */
#define NODE_HELD_MAX 10000
/* Most held from one sender: one member cannot take all the room. */
#define NODE_HELD_PER_SENDER 1000
/* Most bytes of envelopes held, in all and from one sender: a held envelope
 * may be as large as [limits] max_message_size (its body padded with fields
 * the recipient ignores), and 1,000 of 8 MiB would be 8 GiB of disk. */
#define NODE_HELD_BYTES (512u * 1024 * 1024)
#define NODE_HELD_BYTES_PER_SENDER (64u * 1024 * 1024)
/* The bytes of n->held-shaped entries from sender, and (all) from everyone. */
size_t node_held_bytes(const json_t *held, const char *sender, size_t *all);
/* How many of n->held-shaped entries came from sender. */
size_t node_held_from(const json_t *held, const char *sender);
/* Reads what the store holds into n->held. */
int node_held_load(node *n);
/* A held delivery's record (NS_HELD), either form (record.h:
 * node_rec_decode); its soundness is node_held_load's to judge. */
int node_held_record_decode(const void *data, size_t len, ProtobufCMessage **out);
void node_held_free(node *n);
size_t node_held_count(const node *n);
/* After a commit, before the batch is emptied: new holds and releases into
 * n->held, and the held deliveries whose cited message it kept marked due. */
void node_held_committed(node *n);
/* After a failed commit, before the batch is emptied: the held deliveries
 * it released are due again (from n->rejudge_at). */
void node_held_failed(node *n);
/* Releases wait wait_ms from now (or longer, if they already did). */
void node_rejudge_after(node *n, int64_t wait_ms);
/* 1: now is before n->rejudge_at, and releases wait. */
int node_rejudge_later(const node *n, int64_t now);
/* Each turn: judges the due ones again, and refuses those past their time. */
void node_held_tick(node *n, int64_t now);

/* --- upload.c ----------------------------------------------------------------- */

/* Uploads (docs/attachments.md): a file the node keeps for a send to name. */
#define NODE_UPLOADS_MAX 64
#define NODE_UPLOAD_TTL_MS (24LL * 3600 * 1000)
/* "upload.create", "upload.append", "upload.info", "upload.delete" */
json_t *node_upload_op(node *n, const char *op, json_t *req);
/* A binary append (tern.v1.ApiUploadAppend). */
json_t *node_upload_append(node *n, const char *id, uint64_t offset, const uint8_t *data,
                           size_t len);
/* Opens a complete upload for reading: *fd (the caller closes it), *size. */
int node_upload_open(node *n, const char *id, int *fd, uint64_t *size);
/* Forgets an upload in txn (its file goes with node_upload_unlink after the
 * commit). Both take id "" (a file passed by descriptor) as no upload. */
int node_upload_forget(MDB_txn *txn, tern_store *s, const char *id);
void node_upload_unlink(node *n, const char *id);
/* Drops uploads past NODE_UPLOAD_TTL_MS and files no record names. */
void node_upload_sweep(node *n, int64_t now);

/* --- xfer_out.c ---------------------------------------------------------------- */

/* Transfers that move at once each way: the others wait their turn, so
 * that many at once neither hold a window of chunks each in the socket
 * queues nor starve one another. */
#define NODE_XFER_ACTIVE 2
/* n->xbuf, made at first use (room for the largest sealed chunk): the
 * loop handles one chunk at a time. NULL when out of memory. */
uint8_t *node_xbuf(node *n);
/* Makes data_dir/spool, spool/out and spool/in (0700) if missing. */
int node_spool_dirs(const node *n);
/* data_dir/spool/DIR/MSGID.I */
void node_spool_path(const node *n, const char *dir, const char *msgid, size_t i, char *buf,
                     size_t len);

/* The attachments field of a business message, or NULL with *n 0. */
Tern__V1__Attachment **node_body_attachments(const ProtobufCMessage *body, size_t *n);
/* What a send with attachments seals before its envelope: the message id
 * and content key are chosen here, the uploads sealed into spool/out. */
struct node_xprep {
	char msgid[37];
	uint8_t key[32];
	Tern__V1__AttachmentSeal *seals;
	Tern__V1__AttachmentSeal **sealp;
	struct node_att *atts;
	tern_hash **leaves;
	char (*uploads)[37];
	size_t n;
};
/* Hands prep's attachments to o (prep is empty after); or frees them and
 * removes their spool files (o == NULL). */
void node_xprep_finish(node *n, struct node_xprep *prep, struct out *o);
/* In the batch's write: the transfer record of an out with attachments. */
int node_xout_store(MDB_txn *txn, node *n, const struct out *o);
/* After the commit: the new transfers wait for the broker's acceptance. */
void node_xout_committed(node *n);
/* Reads the unfinished transfers at start. */
int node_xout_load(node *n);
void node_xout_free(node *n);
/* The broker accepted msgid: its chunks may go. */
void node_xout_accepted(node *n, const char *msgid);
void node_xout_on_ack(node *n, const Tern__V1__ChunkAck *a);
/* A new session: ask the broker where each transfer stands. */
void node_xout_session(node *n);
void node_xout_tick(node *n, int64_t now);
/* For status: {msgid: {bytes, sent}} of transfers in progress. */
json_t *node_xout_status(node *n);

/* --- xfer_seal.c --------------------------------------------------------------- */

/* A send whose attachments are being sealed: the request, owned. */
struct node_send {
	const tern_msgtype *t;
	char **rcpts;
	size_t np;
	char *reply_to, *client_ref; /* NULL: none */
	int64_t ttl_s, wait_ms;
	uint8_t *body; /* the body, encoded */
	size_t blen;
	uint8_t fp[32]; /* node_send_fingerprint of it */
	int client;     /* the parked API client */
};
void node_send_free(struct node_send *s);
/* The rest of a send once its attachments are sealed (api_ops.c): the
 * envelope, the workflow's judgement, the outbox entry in the batch. NULL:
 * parked until the commit; else the answer (prep is freed either way). */
json_t *node_send_finish(node *n, const struct node_send *s, const ProtobufCMessage *body,
                         struct node_xprep *prep);
/* Starts sealing the uploads a send names (checked here: counts, sizes,
 * limits) on the sealing thread, so that the loop goes on; the send goes
 * on with node_send_finish when it is done. Or, with nfds > 0, the files
 * the client passed by descriptor instead of uploads: each one checked
 * (tern_attach_fd_check) and taken (fds[i] set to -1; the caller closes
 * those left). TERN_OK: s is taken and the client stays parked; else *res
 * is the answer. No attachments at all: TERN_ENOENT, and nothing is taken. */
int node_xseal_start(node *n, struct node_send *s, const ProtobufCMessage *body,
                     const char *const *uploads, size_t nup, int *fds, size_t nfds, json_t **res);
/* The descriptor the loop polls for finished sealings (-1: none yet). */
int node_xseal_fd(const node *n);
/* Finishes the sends whose sealing is done. */
void node_xseal_done(node *n);
/* 1 if a send with client_ref is being sealed. */
int node_xseal_has_ref(const node *n, const char *client_ref);
/* 1 if msgid's attachments are being sealed (its spool files are new). */
int node_xseal_has_msgid(const node *n, const char *msgid);
/* Waits for the sealing thread and frees what waits (at close). */
void node_xseal_stop(node *n);

/* --- xfer_in.c ----------------------------------------------------------------- */

/* A transfer whose message has no expiry of its own fails this long after
 * it was created (the broker's default time-to-live is not known here). */
#define NODE_XFER_DEFAULT_TTL_MS (7LL * 86400 * 1000)
/* 1 if msgid is a transfer under way (no copy made). */
int node_store_xin_has(MDB_txn *txn, tern_store *s, const char *msgid);
int node_xin_load(node *n);
void node_xin_free(node *n);
/* In the batch's write: a DIN_XFER's record (and unxfer's removal). */
int node_xin_store(MDB_txn *txn, node *n, const struct din *d);
/* Takes the webhook pushes the pusher delivered into the batch, whose
 * commit deletes them (commit.c). */
void node_pushes_take(node *n);
/* After the commit: new transfers start, finished ones tell the broker. */
void node_xin_committed(node *n);
/* After a failed commit, before the batch is emptied: the transfers it
 * judged are judged again (from n->rejudge_at). */
void node_xin_failed(node *n);
/* A Chunk frame from the broker: *f is taken (set to NULL) when its chunk
 * goes to the opening thread. */
void node_xin_on_chunk(node *n, Tern__V1__Frame **f);
/* Syncs and counts the chunks this turn wrote (once per turn, after the
 * frames from the broker). */
void node_xin_flush(node *n);
void node_xin_session(node *n);
void node_xin_tick(node *n, int64_t now);
/* A frame from the broker lost for want of memory at now: perhaps a chunk,
 * of a transfer that cannot tell; each one fetching counts the shortage (a
 * lasting one then ends it no-memory, not attachment-incomplete). */
void node_xin_short(node *n, int64_t now);
/* 1 if msgid is a transfer under way at this node (xfer_in.c). */
int node_xin_active(const node *n, const char *msgid);

/* --- xfer_open.c --------------------------------------------------------------- */

/* What became of a chunk on the opening thread. */
enum node_xopen_result {
	NODE_XOPEN_OK,        /* checked, opened, hashed and written */
	NODE_XOPEN_SKIPPED,   /* an earlier job of its transfer failed: not looked at */
	NODE_XOPEN_MISMATCH,  /* it does not match its seal and proof */
	NODE_XOPEN_UNOPENED,  /* under its seal, it does not open with the key */
	NODE_XOPEN_UNWRITTEN, /* not written (a full disk, an I/O error) */
};

/* A chunk for the opening thread. Owner, failed, key, msgid, root, fd and hs
 * are the transfer's (xfer_in.c): while any of its jobs is out the loop
 * neither frees it nor touches its hash or descriptor, and only the thread
 * sets *failed (the loop clears it once none is out). */
struct node_xopen_job {
	struct tern_workq_item item; /* first: the queue's link */
	void *owner;
	int *failed;            /* set on a failure: the owner's later jobs are skipped */
	Tern__V1__Frame *frame; /* the job's: frame->chunk is the chunk */
	const uint8_t *key;     /* the attachment's chunk key */
	const char *msgid;
	uint32_t att, chunk_size;
	uint64_t size;
	const uint8_t *root; /* the signed seal's Merkle root */
	int fd;              /* the attachment's spool file */
	tern_sha256_ctx *hs; /* the running hash of its plaintext */
	enum node_xopen_result result;
	char why[256];
};
/* Queues j (taken on TERN_OK), starting the thread at first use. */
int node_xopen_queue(node *n, struct node_xopen_job *j);
/* The descriptor the loop polls for opened chunks (-1: no thread yet). */
int node_xopen_fd(const node *n);
/* Hands each finished job to node_xin_opened, in order, and frees it. */
void node_xopen_done(node *n);
/* Stops the thread; jobs not done are dropped (their chunks are fetched
 * again: only synced chunks are counted). Before node_xin_free. */
void node_xopen_stop(node *n);
/* xfer_in.c: a job back from the thread. */
void node_xin_opened(node *n, const struct node_xopen_job *j);

/* --- xfer_spool.c -------------------------------------------------------------- */

/* Removes received attachments past [delivery] attachment_retain after
 * their message's acknowledgement, and spool files nothing names. */
void node_xin_sweep(node *n, int64_t now);
/* "attachment.get": {message_id, index | name, offset, length} from the inbox. */
json_t *node_attachment_get(node *n, json_t *req);
json_t *node_xin_status(node *n);
/* A node_att array from a verified header and its opened body; NULL, *n 0
 * when none. TERN_EINVALID (with why) when declarations and seals differ. */
int node_atts_of(const Tern__V1__Header *h, const ProtobufCMessage *body, struct node_att **out,
                 size_t *n, char *why, size_t whylen);

/* --- inbox.c ------------------------------------------------------------------- */

/* The envelope_tag of an accepted message (nodestore.proto): an HMAC of its
 * id and its envelope's SHA-256, under a key derived from this node's
 * sealing key. */
int node_inbox_tag(node *n, const char *msgid, const uint8_t digest[32], uint8_t tag[32]);
/* The envelope of msgid, accepted into this node's inbox, verified again:
 * *env a new handle (tern_envelope_free). TERN_ENOENT when no message of
 * that id was accepted here; TERN_ENOMEM when memory ran out (no verdict);
 * the verification's code when it fails. A sender whose standing or key
 * changed since the message was accepted does not make it unreadable: the
 * bytes are checked against the tag kept at acceptance instead, and
 * *standing names what changed ("revoked", "expired", "crl-lapsed",
 * "key-replaced", "left-directory"); NULL when nothing did. *received_at
 * (NULL: not wanted) is when the message was accepted.
 * Records kept before the tag was have no such fallback. */
int node_inbox_envelope(node *n, MDB_txn *txn, const char *msgid, tern_envelope **env,
                        const char **standing, int64_t *received_at);
/* Whether inbox.next found msgid unshowable before (since the last reload);
 * node_unshown_add remembers it and answers 1 when it was new, so that the
 * caller says so once. node_unshown_clear forgets them all (a reload: a
 * sender's standing may be back), and has inbox.next look again. */
int node_unshown_has(const node *n, const char *msgid);
int node_unshown_add(node *n, const char *msgid);
void node_unshown_clear(node *n);

/* --- cases.c ------------------------------------------------------------------- */

/* This node's view of a case (docs/api.md, "case.show"): its threads with
 * their states and what may come next, its messages in time order, what is
 * held, into *out (a new reference). Whole or none: TERN_ENOMEM when memory
 * ran out, another code when the store could not be read; a record that is
 * absent or damaged is left out of the view. Reads in txn. */
int node_case_view(node *n, MDB_txn *txn, const char *case_id, json_t **out);
/* IOM books a family on one referral at a time (docs/messages.md, "What
 * the workflow leaves to the agencies"): other gets the id of a referral of
 * case_id other than root that is booked, departed, arrived or handed over,
 * or accepted again with its travel still booked, as w reads it (the store,
 * and its batch's newer records), and state its state (TERN_CASE_ACCEPTED
 * for the last); other "" when none. cases.c. TERN_ENOMEM, or the store's
 * error. */
int node_case_booked_on(const struct node_wf_view *w, const char *case_id, const char *root,
                        char other[TERN_WF_ID_MAX + 1], tern_case_state *state);

/* --- commit.c ------------------------------------------------------------------ */

/* Appends an audit entry in txn, at this turn's time; node_audit_att with
 * the message's attachments (sha: with their declared digests). */
int node_audit_att(node *n, MDB_txn *txn, Tern__V1__AuditEntry__Kind kind, const char *msgid,
                   const char *peer, const char *case_id, const char *type, const uint8_t *env,
                   size_t len, const char *reason, const char *outcome, const char *ref,
                   const struct node_att *atts, size_t natts);
int node_audit(node *n, MDB_txn *txn, Tern__V1__AuditEntry__Kind kind, const char *msgid,
               const char *peer, const char *case_id, const char *type, const uint8_t *env,
               size_t len, const char *reason, const char *outcome, const char *ref);
/* Empties the batch (frees what it holds). */
void node_batch_reset(node *n);
/* Signs and writes this turn's batch in one transaction, then answers what
 * waited for it (API clients, the broker's deliveries); a failed commit
 * answers nothing as done. */
void node_batch_commit(node *n);
/* Whether the loop commits now: always when the batch holds anything but
 * the broker's submit results; results alone wait up to
 * NODE_RESULT_DEFER_MS for company (a receipt or a send usually follows),
 * since they only record the intermediate at-broker state: one lost in a
 * crash means a resubmission the broker answers as a duplicate. *wait_ms:
 * how long the loop may sleep before it must ask again. */
#define NODE_RESULT_DEFER_MS 20
int node_batch_due(const node *n, int64_t now, int *wait_ms);

/* --- witnessing.c -------------------------------------------------------------- */

/* Asks every other member node (only: that one) to cosign the newest
 * checkpoint. */
void node_witness_round(node *n, const char *only);
void node_on_witness_request(node *n, const Tern__V1__WitnessRequest *r);
void node_on_witness_response(node *n, const Tern__V1__WitnessResponse *r);
/* "audit.reanchor" (tern audit reanchor): this node's store was put back from
 * a backup, so its log no longer extends what its witnesses cosigned; for the
 * next NODE_REANCHOR_MS, witnesses that refuse it are asked to take its
 * newest checkpoint as their new start, each keeping what it gives up
 * (docs/audit.md). Recorded in the audit log (OPERATOR, "reanchor") first;
 * the answer is the API's JSON, never NULL. */
#define NODE_REANCHOR_MS (10 * 60 * 1000)
json_t *node_reanchor(node *n);
/* For node.info's "audit": {"witnesses": [{"id", "cosigned": SIZE, "at"?: MS,
 * "refused"?: CODE}], "reanchor"?: {"until": MS}} for the witnesses asked
 * since the start; NULL for want of memory. */
json_t *node_witness_status(const node *n);

/* --- api_ops.c ----------------------------------------------------------------- */

/* The local API's operations on n, for api_server_open. */
void node_api_handlers(node *n, api_handlers *h);

/* --- api_reads.c --------------------------------------------------------------- */

/* The answer to read operation op ("status", "inbox.list", "inbox.show",
 * "node.info", "messages.list", ...) with request req (borrowed): a new
 * reference, an error answer for an unknown op or a failure. */
json_t *node_api_read(node *n, const char *op, json_t *req);
/* The oldest message of the inbox the API can show; NULL when none (*rc
 * TERN_OK) or when memory ran out (*rc TERN_ENOMEM). */
json_t *node_api_inbox_next(node *n, int *rc);

/* --- metrics.c ----------------------------------------------------------------- */

/* How often the HTTP API's refusals are counted and audited. */
#define HTTP_REFUSALS_PERIOD_MS 10000

void node_publish_metrics(node *n);
/* Takes the HTTP API's count of unauthorized requests: one log line and one
 * audit entry for them all. */
void node_count_refusals(node *n);

#endif

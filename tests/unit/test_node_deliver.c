/* The node's state machines, without processes or sockets: judging what the
 * broker delivers (node_judge_envelope), what a delivery, a receipt or a
 * dead-letter notice does once committed (the receipt owed, the recipient's
 * state), and what the broker's answer to a submission does to an outbox
 * entry. The node here is struct node with only what these paths read: keys,
 * a directory, a store; no broker socket (frames to it are dropped) and no
 * API server.
 *
 * Over 800 lines on purpose: the judging and the node-turn tests share one
 * federation fixture and the helpers that make its messages; split, both
 * halves would need them as a library of their own. */
#include <fcntl.h>
#include <setjmp.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/directory.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/reason.h>
#include <tern/uuid.h>

#include "failmalloc.h"
#include "node_int.h"
#include "pbuf.h"
#include "testutil.h"
#include "util.h"
#include "syncer.h"
#include "xfer_rec.h"

enum { UNHCR, SWEDEN, PORTUGAL, IOM, NNODES };

static const char *const names[NNODES] = {"unhcr", "sweden", "portugal", "iom"};
static const unsigned roles[NNODES] = {TERN_ROLE_REFERRER, TERN_ROLE_STATE, TERN_ROLE_STATE,
                                       TERN_ROLE_MOVEMENT};
#define CASE "AMM-26C00417" /* the examples' case id */
#define OTHER_CASE "AMM-26C00999"

static struct {
	tern_signkey *sign[NNODES];
	tern_sealkey *seal[NNODES];
	tern_directory *dir;
} F;

static char dir[128];
static tern_store *st;
static const struct batch empty;

static int group_setup(void **state)
{
	(void)state;
	if (tern_crypto_init() != TERN_OK || tern_directory_new("test", 1, &F.dir) != TERN_OK)
		return -1;
	for (int i = 0; i < NNODES; i++) {
		tern_member m;
		if (tern_signkey_generate(&F.sign[i]) != TERN_OK ||
		    tern_sealkey_generate(&F.seal[i]) != TERN_OK)
			return -1;
		memset(&m, 0, sizeof(m));
		snprintf(m.node_id, sizeof(m.node_id), "%s", names[i]);
		m.agency = (char *)names[i];
		m.roles = roles[i];
		memcpy(m.sign_public, tern_signkey_public(F.sign[i]), 32);
		memcpy(m.seal_public, tern_sealkey_public(F.seal[i]), 32);
		randombytes_buf(m.curve_public, 32);
		if (tern_directory_add(F.dir, &m) != TERN_OK)
			return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NNODES; i++) {
		tern_signkey_free(&F.sign[i]);
		tern_sealkey_free(&F.seal[i]);
	}
	tern_directory_free(&F.dir);
	return 0;
}

/* Each test has a store of its own. */
static int setup(void **state)
{
	(void)state;
	if (tt_mkdtemp(dir, sizeof(dir), "nodedeliver") != 0)
		return -1;
	return node_store_open(dir, 0, &st) == TERN_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tern_store_close(&st);
	return tt_rmtree(dir);
}

/* --- making messages ----------------------------------------------------------------- */

/* The example body of type_name, with string fields set as given (pairs of
 * JSON name and value, NULL-terminated), serialized. */
static uint8_t *body_of(const char *type_name, size_t *len, ...)
{
	const tern_msgtype *t = tern_msgtype_by_name(type_name);
	ProtobufCMessage *msg = NULL;
	char *text = NULL, err[256];
	json_t *j;
	uint8_t *out = NULL;
	const char *k;
	va_list ap;

	assert_non_null(t);
	assert_int_equal(tern_example_json(type_name, &text), TERN_OK);
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	free(text);
	va_start(ap, len);
	while ((k = va_arg(ap, const char *)) != NULL)
		json_object_set_new(j, k, json_string(va_arg(ap, const char *)));
	va_end(ap);
	assert_int_equal(tern_json_decode(t->desc, j, &msg, err, sizeof(err)), TERN_OK);
	assert_int_equal(tern_pb_pack(msg, &out, len), TERN_OK);
	protobuf_c_message_free_unpacked(msg, NULL);
	json_decref(j);
	return out;
}

static const char *const to_sweden_iom[] = {"sweden", "iom"};
static const char *const to_unhcr_iom[] = {"unhcr", "iom"};
static const char *const to_unhcr_only[] = {"unhcr"};
static const char *const to_sweden[] = {"sweden"};

/* An envelope from `from`, signed by it, with body as the body bytes. */
static uint8_t *seal(int from, const char *const *to, size_t nto, const char *type_name,
                     const char *case_id, const uint8_t *body, size_t blen, size_t *len,
                     char id[37])
{
	tern_seal_params p = {.sender = names[from],
	                      .sign_key = F.sign[from],
	                      .recipients = to,
	                      .n_recipients = nto,
	                      .type = tern_msgtype_by_name(type_name)->type,
	                      .case_id = case_id,
	                      .body = body,
	                      .body_len = blen};
	uint8_t *out = NULL;

	assert_int_equal(tern_envelope_seal(&p, F.dir, &out, len, id), TERN_OK);
	return out;
}

/* A business message of type_name with the example body (fields set as
 * given), its header's case id the body's. */
static uint8_t *message(int from, const char *const *to, size_t nto, const char *type_name,
                        size_t *len, char id[37], const char *k1, const char *v1, const char *k2,
                        const char *v2)
{
	size_t blen;
	uint8_t *body = body_of(type_name, &blen, k1, v1, k2, v2, NULL);
	const char *case_id = k1 && strcmp(k1, "caseId") == 0   ? v1
	                      : k2 && strcmp(k2, "caseId") == 0 ? v2
	                                                        : CASE;
	uint8_t *env = seal(from, to, nto, type_name, case_id, body, blen, len, id);

	free(body);
	return env;
}

/* A receipt from `from` to `to` for msgid. */
static uint8_t *receipt(int from, int to, const char *msgid, int accepted, const char *code,
                        size_t *len, char id[37])
{
	Tern__V1__Receipt r = TERN__V1__RECEIPT__INIT;
	uint8_t digest[32] = {1}, *body, *env;
	size_t blen;

	r.message_id = (char *)msgid;
	r.envelope_digest.data = digest;
	r.envelope_digest.len = 32;
	r.status =
	    accepted ? TERN__V1__RECEIPT__STATUS__ACCEPTED : TERN__V1__RECEIPT__STATUS__REJECTED;
	r.reason_code = (char *)code;
	r.reason_text = "";
	assert_int_equal(tern_pb_pack(&r.base, &body, &blen), TERN_OK);
	env = seal(from, &names[to], 1, "receipt", CASE, body, blen, len, id);
	free(body);
	return env;
}

/* env with one bit of its Ed25519 signature flipped. */
static uint8_t *spoil_signature(const uint8_t *env, size_t len, size_t *out_len)
{
	Tern__V1__Envelope *e = tern__v1__envelope__unpack(NULL, len, env);
	uint8_t *out;

	assert_non_null(e);
	assert_int_equal(e->signature->kind_case, TERN__V1__SIGNATURE__KIND_ED25519);
	e->signature->ed25519.data[0] ^= 1;
	*out_len = tern__v1__envelope__get_packed_size(e);
	out = malloc(*out_len);
	assert_non_null(out);
	tern__v1__envelope__pack(e, out);
	tern__v1__envelope__free_unpacked(e, NULL);
	return out;
}

/* --- the store as others left it --------------------------------------------------- */

struct put {
	const char *msgid, *sender, *type, *case_id, *outcome;
	const char *const *to;
	size_t nto;
};

static int put_sent_apply(MDB_txn *txn, void *arg)
{
	struct put *p = arg;
	node_out m = {p->msgid,   (const uint8_t *)"env",
	              3,          p->type,
	              p->case_id, 1,
	              p->to,      p->nto,
	              p->outcome, "",
	              NULL,       NULL};
	return node_store_enqueue(txn, st, &m, 10);
}

/* This node sent msgid (as far as the store knows). */
static void put_sent(const char *msgid, const char *type, const char *case_id, const char *outcome,
                     const char *const *to, size_t nto)
{
	struct put p = {msgid, NULL, type, case_id, outcome, to, nto};
	assert_int_equal(tern_store_write(st, put_sent_apply, &p), TERN_OK);
}

static int put_received_apply(MDB_txn *txn, void *arg)
{
	struct put *p = arg;
	node_in m = {
	    p->msgid, (const uint8_t *)"env", 3, p->sender, p->type, p->case_id, "", 1, "", "",
	    NULL};
	return node_store_receive(txn, st, &m, 10);
}

/* This node accepted msgid from sender before. */
static void put_received(const char *msgid, const char *sender)
{
	struct put p = {msgid, sender, "case-referral", CASE, "", NULL, 0};
	assert_int_equal(tern_store_write(st, put_received_apply, &p), TERN_OK);
}

/* --- judging ------------------------------------------------------------------------- */

static node_judge judge_as(int who, const struct batch *b)
{
	return (node_judge){.dir = F.dir,
	                    .self = names[who],
	                    .roles = roles[who],
	                    .seal = F.seal[who],
	                    .store = st,
	                    .batch = b,
	                    .max_msg = 1 << 20,
	                    .skew_ms = 300000,
	                    .hold_ms = 60000};
}

static struct din judge_in(int who, const struct batch *b, const uint8_t *env, size_t len)
{
	node_judge j = judge_as(who, b);
	struct din d;
	MDB_txn *txn;

	memset(&d, 0, sizeof(d));
	d.kind = -1;
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_judge_envelope(&j, txn, env, len, &d);
	mdb_txn_abort(txn);
	/* The workflow's records are the node turn's to keep; judging alone
	 * drops them. */
	tern_wf_record_free(&d.wf);
	tern_wf_record_free(&d.wf_rootrec);
	return d;
}

static struct din judge(int who, const uint8_t *env, size_t len)
{
	return judge_in(who, &empty, env, len);
}

static void assert_refused(const struct din *d, tern_reason r)
{
	assert_int_equal(d->kind, DIN_REFUSE);
	assert_string_equal(d->code, tern_reason_code(r));
	assert_true(d->text[0] != 0);
}

/* A valid referral is accepted by each recipient, and refused by a member
 * it is not addressed to. */
static void test_judge_referral(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	struct din d;

	(void)state;
	d = judge(SWEDEN, env, len);
	assert_int_equal(d.kind, DIN_ACCEPT);
	assert_string_equal(d.msgid, id);
	assert_string_equal(d.sender, "unhcr");
	assert_string_equal(d.type, "case-referral");
	assert_string_equal(d.case_id, CASE);
	assert_string_equal(d.code, "");
	assert_int_equal(judge(IOM, env, len).kind, DIN_ACCEPT);

	d = judge(PORTUGAL, env, len);
	assert_refused(&d, TERN_REASON_NOT_A_RECIPIENT);
	assert_string_equal(d.msgid, id); /* the sender hears about it */
	assert_string_equal(d.sender, "unhcr");
	free(env);
}

/* An envelope that does not verify is refused with the library's reason, and
 * still names its claimed id and sender, so a receipt can answer it; one
 * whose id came before is not answered again. */
static void test_judge_bad_signature(void **state)
{
	char id[37];
	size_t len, blen;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *bad = spoil_signature(env, len, &blen);
	struct din d;

	(void)state;
	d = judge(SWEDEN, bad, blen);
	assert_refused(&d, TERN_REASON_BAD_SIGNATURE);
	assert_string_equal(d.msgid, id);
	assert_string_equal(d.sender, "unhcr");
	assert_string_equal(d.case_id, CASE);

	/* Truncated: no claims to read, nobody to answer. */
	d = judge(SWEDEN, env, 10);
	assert_int_equal(d.kind, DIN_REFUSE);
	assert_string_equal(d.msgid, "");

	put_received(id, "unhcr");
	assert_int_equal(judge(SWEDEN, bad, blen).kind, DIN_NOTHING);
	free(bad);
	free(env);
}

/* A message id seen before: from the same sender it is a redelivery (already
 * answered); from another sender the id is taken (refused unanswered). The
 * batch of this turn counts as seen. */
static void test_judge_duplicates(void **state)
{
	char id[37], id2[37];
	size_t len, len2;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *env2 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	struct din in_batch = {.kind = DIN_ACCEPT, .sender = "unhcr"};
	struct batch b = {.dins = &in_batch, .ndins = 1};
	struct din d;

	(void)state;
	snprintf(in_batch.msgid, sizeof(in_batch.msgid), "%s", id);
	assert_int_equal(judge_in(SWEDEN, &b, env, len).kind, DIN_NOTHING);
	assert_int_equal(judge_in(SWEDEN, &b, env2, len2).kind, DIN_ACCEPT);
	snprintf(in_batch.sender, sizeof(in_batch.sender), "iom");
	d = judge_in(SWEDEN, &b, env, len);
	assert_int_equal(d.kind, DIN_DUPLICATE);
	assert_string_equal(d.code, tern_reason_code(TERN_REASON_DUPLICATE_ID));

	assert_int_equal(judge(SWEDEN, env, len).kind, DIN_ACCEPT);
	put_received(id, "unhcr");
	assert_int_equal(judge(SWEDEN, env, len).kind, DIN_NOTHING);
	put_received(id2, "portugal");
	d = judge(SWEDEN, env2, len2);
	assert_int_equal(d.kind, DIN_DUPLICATE);
	assert_string_equal(d.code, tern_reason_code(TERN_REASON_DUPLICATE_ID));
	assert_string_equal(d.sender, "unhcr");
	free(env);
	free(env2);
}

/* A decision answers a referral: the referrer refuses one whose referral it
 * never sent or received, or that is for another case; a node that takes no
 * part in referrals (movement) cannot know, and accepts it. */
static void test_judge_decision(void **state)
{
	char ref[37], id[37], other[37];
	size_t len;
	uint8_t *env;
	struct din d;

	(void)state;
	assert_int_equal(tern_uuid_v7(ref), TERN_OK);
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId", ref,
	              NULL, NULL);
	/* A referral unhcr never sent: it will not come (a node records what it
	 * sends before it leaves), so refused at once, not held a day while
	 * sweden sees it at-broker (a new user's finding). */
	d = judge(UNHCR, env, len);
	assert_refused(&d, TERN_REASON_UNKNOWN_REFERRAL);
	assert_non_null(strstr(d.text, "no record of sending"));
	assert_int_equal(judge(IOM, env, len).kind, DIN_ACCEPT);
	free(env);
	/* A decision unhcr was not sent yet (IOM's booking came first): held
	 * until it comes, not judged (held.c). */
	assert_int_equal(tern_uuid_v7(other), TERN_OK);
	env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &len, id, "decisionId", other,
	              NULL, NULL);
	d = judge(UNHCR, env, len);
	assert_int_equal(d.kind, DIN_HOLD);
	assert_string_equal(d.code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	assert_string_equal(d.ref, other);
	assert_true(d.hold_until > tern_now_ms());
	/* With no room left to hold it: refused at once. */
	{
		node_judge j = judge_as(UNHCR, &empty);
		MDB_txn *txn;
		struct din full;
		memset(&full, 0, sizeof(full));
		j.hold_full = 1;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		node_judge_envelope(&j, txn, env, len, &full);
		mdb_txn_abort(txn);
		assert_refused(&full, TERN_REASON_UNKNOWN_REFERENCE);
		/* One sender may not take all the room: iom, with as many held
		 * as one sender may have, is refused; another sender's still
		 * leaves it room. */
		j.hold_full = 0;
		j.held = json_object();
		for (int i = 0; i < NODE_HELD_PER_SENDER; i++) {
			char k[16];
			snprintf(k, sizeof(k), "m%d", i);
			json_object_set_new((json_t *)j.held, k,
			                    json_pack("{s:s}", "sender", i ? "iom" : "sweden"));
		}
		memset(&full, 0, sizeof(full));
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		node_judge_envelope(&j, txn, env, len, &full);
		mdb_txn_abort(txn);
		assert_int_equal(full.kind, DIN_HOLD); /* 999 from iom */
		json_object_set_new((json_t *)j.held, "m0", json_pack("{s:s}", "sender", "iom"));
		memset(&full, 0, sizeof(full));
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		node_judge_envelope(&j, txn, env, len, &full);
		mdb_txn_abort(txn);
		assert_refused(&full, TERN_REASON_UNKNOWN_REFERENCE);
		json_decref((json_t *)j.held);
	}
	free(env);

	/* The referral this node sent, for this case: accepted, with its outcome. */
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId", ref,
	              NULL, NULL);
	put_sent(ref, "case-referral", CASE, "", to_sweden_iom, 2);
	d = judge(UNHCR, env, len);
	assert_int_equal(d.kind, DIN_ACCEPT);
	assert_string_equal(d.ref, ref);
	assert_string_equal(d.outcome, "ACCEPTED");
	free(env);

	/* The referral is for another case than the decision. */
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId", ref,
	              "caseId", OTHER_CASE);
	d = judge(UNHCR, env, len);
	assert_refused(&d, TERN_REASON_CASE_MISMATCH);
	free(env);

	/* A decision whose referralId names a message that is not a referral. */
	put_sent(id, "travel-confirmation", CASE, "", to_sweden_iom, 2);
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, other, "referralId", id,
	              NULL, NULL);
	assert_refused((d = judge(UNHCR, env, len), &d), TERN_REASON_UNKNOWN_REFERRAL);
	free(env);
}

/* A travel confirmation follows an accepting decision of the same case. */
static void test_judge_travel(void **state)
{
	char dec[37], rejected[37], id[37];
	size_t len;
	uint8_t *env;
	struct din d;

	(void)state;
	assert_int_equal(tern_uuid_v7(dec), TERN_OK);
	assert_int_equal(tern_uuid_v7(rejected), TERN_OK);
	env = message(IOM, to_sweden, 1, "travel-confirmation", &len, id, "decisionId", dec, NULL,
	              NULL);
	/* A decision sweden never sent: refused at once, not held (a node
	 * records what it sends before it leaves, so it will not come). */
	d = judge(SWEDEN, env, len);
	assert_refused(&d, TERN_REASON_UNKNOWN_DECISION);
	assert_non_null(strstr(d.text, "no record of sending"));
	put_sent(dec, "acceptance-decision", CASE, "ACCEPTED", to_unhcr_iom, 2);
	d = judge(SWEDEN, env, len);
	assert_int_equal(d.kind, DIN_ACCEPT);
	assert_string_equal(d.ref, dec);
	free(env);

	put_sent(rejected, "acceptance-decision", CASE, "REJECTED", to_unhcr_iom, 2);
	env = message(IOM, to_sweden, 1, "travel-confirmation", &len, id, "decisionId", rejected,
	              NULL, NULL);
	assert_refused((d = judge(SWEDEN, env, len), &d), TERN_REASON_DECISION_NOT_ACCEPTED);
	free(env);

	/* The decision is in this turn's batch (its workflow record), not yet
	 * in the store. */
	{
		char fresh[37];
		struct batch b = {0};
		assert_int_equal(tern_uuid_v7(fresh), TERN_OK);
		tern_wf_record r = TERN__V1__WORKFLOW_RECORD__INIT, *rp;
		r.type = "acceptance-decision";
		r.case_id = CASE;
		r.value = "ACCEPTED";
		r.has_value = 1;
		assert_non_null(b.wf = tern_wf_records_new());
		assert_non_null(rp = tern_wf_record_copy(&r));
		assert_int_equal(tern_wf_records_put(b.wf, fresh, &rp), TERN_OK);
		env = message(IOM, to_sweden, 1, "travel-confirmation", &len, id, "decisionId",
		              fresh, NULL, NULL);
		assert_int_equal(judge(SWEDEN, env, len).kind, DIN_REFUSE);
		assert_int_equal(judge_in(SWEDEN, &b, env, len).kind, DIN_ACCEPT);
		tern_wf_records_free(&b.wf);
		free(env);
	}
}

/* A member with two roles (tern dev-federation's portugal: referrer and
 * state, for relocation) sends decisions as a State and is sent them as a
 * referrer. A travel confirmation IOM books on Sweden's decision on
 * portugal's referral can reach portugal before that decision (two senders,
 * two streams): it must wait for it, as at unhcr, not be refused at once as
 * citing "a decision this node never sent". Nor a case update from unhcr
 * citing its referral to portugal (as a State) that has not come yet (a
 * referral with attachments is judged only once its chunks are in). */
static void test_judge_two_roles_holds(void **state)
{
	static const char *const to_sweden_portugal[] = {"sweden", "portugal"};
	static const char *const to_portugal[] = {"portugal"};
	char dec[37], ref[37], id[37];
	node_judge j = judge_as(PORTUGAL, &empty);
	size_t len;
	uint8_t *env;
	MDB_txn *txn;
	struct din d;

	(void)state;
	j.roles = TERN_ROLE_REFERRER | TERN_ROLE_STATE;
	assert_int_equal(tern_uuid_v7(dec), TERN_OK);
	env = message(IOM, to_sweden_portugal, 2, "travel-confirmation", &len, id, "decisionId",
	              dec, NULL, NULL);
	memset(&d, 0, sizeof(d));
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_judge_envelope(&j, txn, env, len, &d);
	mdb_txn_abort(txn);
	assert_int_equal(d.kind, DIN_HOLD);
	assert_string_equal(d.code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	assert_string_equal(d.ref, dec);
	free(env);

	assert_int_equal(tern_uuid_v7(ref), TERN_OK);
	env =
	    message(UNHCR, to_portugal, 1, "case-update", &len, id, "referralId", ref, NULL, NULL);
	memset(&d, 0, sizeof(d));
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_judge_envelope(&j, txn, env, len, &d);
	mdb_txn_abort(txn);
	assert_int_equal(d.kind, DIN_HOLD);
	assert_string_equal(d.ref, ref);
	free(env);
}

/* The body: it must decode as its type, pass validation, and carry the
 * header's case id. */
static void test_judge_body(void **state)
{
	char id[37];
	size_t len, blen;
	uint8_t *body, *env;
	struct din d;

	(void)state;
	body = body_of("case-referral", &blen, NULL);
	env = seal(UNHCR, to_sweden_iom, 2, "case-referral", OTHER_CASE, body, blen, &len, id);
	assert_refused((d = judge(SWEDEN, env, len), &d), TERN_REASON_CASE_MISMATCH);
	free(env);
	free(body);

	env = seal(UNHCR, to_sweden_iom, 2, "case-referral", CASE, (const uint8_t *)"\xff\xff", 2,
	           &len, id);
	assert_refused((d = judge(SWEDEN, env, len), &d), TERN_REASON_INVALID_BODY);
	free(env);

	env = message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, "caseId", "", NULL, NULL);
	assert_refused((d = judge(SWEDEN, env, len), &d), TERN_REASON_INVALID_BODY);
	free(env);
}

/* A receipt is for a message this node sent to the receipt's sender. */
static void test_judge_receipt(void **state)
{
	char sent[37], id[37];
	size_t len;
	uint8_t *env;
	struct din d;

	(void)state;
	assert_int_equal(tern_uuid_v7(sent), TERN_OK);
	env = receipt(SWEDEN, UNHCR, sent, 1, "", &len, id);
	assert_refused((d = judge(UNHCR, env, len), &d), TERN_REASON_UNKNOWN_MESSAGE);
	/* Not "never sent": a node put back from a copy may have sent it after
	 * the copy was taken (as the at-once refusal says, test_judge_travel). */
	assert_non_null(strstr(d.text, "no record of sending to sweden"));
	put_sent(sent, "case-referral", CASE, "", to_sweden_iom, 2);
	d = judge(UNHCR, env, len);
	assert_int_equal(d.kind, DIN_RECEIPT);
	assert_string_equal(d.target, sent);
	assert_string_equal(d.node, "sweden");
	assert_string_equal(d.state, "delivered");
	free(env);

	env = receipt(IOM, UNHCR, sent, 0, "case-mismatch", &len, id);
	d = judge(UNHCR, env, len);
	assert_int_equal(d.kind, DIN_RECEIPT);
	assert_string_equal(d.node, "iom");
	assert_string_equal(d.state, "rejected");
	assert_string_equal(d.code, "case-mismatch");
	free(env);

	/* Portugal was not a recipient of it. */
	env = receipt(PORTUGAL, UNHCR, sent, 1, "", &len, id);
	assert_refused((d = judge(UNHCR, env, len), &d), TERN_REASON_UNKNOWN_MESSAGE);
	free(env);
}

/* --- a node's turn: deliveries, results and the commit ------------------------------ */

/* struct node with what these paths read: no broker socket (what it would
 * send to the broker is dropped) and no API server. */
static node *node_as(int who)
{
	node *n = calloc(1, sizeof(*n));

	assert_non_null(n);
	n->id.dir = F.dir;
	n->id.id = names[who];
	n->id.sign = F.sign[who];
	n->id.seal = F.seal[who];
	assert_int_equal(tern_directory_find(F.dir, names[who], &n->id.self), TERN_OK);
	assert_int_equal(tern_sealcache_new(0, 0, &n->seals), TERN_OK);
	assert_int_equal(tern_sigcache_new(0, &n->sigs), TERN_OK);
	n->store = st;
	node_store_audit_dbs(st, &n->audit);
	snprintf(n->origin, sizeof(n->origin), "tern/test/%s", names[who]);
	n->max_msg = 1 << 20;
	n->skew_ms = 300000;
	n->window = 8;
	n->session = 7;
	n->hold_ms = 60000;
	n->batch.now = tern_now_ms();
	assert_int_equal(node_held_load(n), TERN_OK);
	return n;
}

static void node_free(node *n)
{
	node_xopen_stop(n);
	tern_syncer_free(&n->xsync);
	node_held_free(n);
	node_batch_reset(n);
	free(n->batch.outs);
	free(n->batch.dins);
	free(n->batch.results);
	tern_sealcache_free(&n->seals);
	tern_sigcache_free(&n->sigs);
	node_unshown_clear(n);
	free(n);
}

static const uint8_t epoch[16] = {0xe1};

static void deliver(node *n, uint64_t seq, const uint8_t *env, size_t len)
{
	Tern__V1__Deliver dv = TERN__V1__DELIVER__INIT;

	dv.broker_epoch = (ProtobufCBinaryData){16, (uint8_t *)epoch};
	dv.seq = seq;
	dv.item_case = TERN__V1__DELIVER__ITEM_ENVELOPE;
	dv.envelope = (ProtobufCBinaryData){len, (uint8_t *)env};
	node_on_deliver(n, &dv);
}

static void notice(node *n, uint64_t seq, const char *msgid, const char *rcpt,
                   Tern__V1__Notice__Kind kind, const char *reason)
{
	Tern__V1__Deliver dv = TERN__V1__DELIVER__INIT;
	Tern__V1__Notice nt = TERN__V1__NOTICE__INIT;

	nt.kind = kind;
	nt.message_id = (char *)msgid;
	nt.recipient = (char *)rcpt;
	nt.reason = (char *)reason;
	dv.broker_epoch = (ProtobufCBinaryData){16, (uint8_t *)epoch};
	dv.seq = seq;
	dv.item_case = TERN__V1__DELIVER__ITEM_NOTICE;
	dv.notice = &nt;
	node_on_deliver(n, &dv);
}

static void result(node *n, const char *msgid, int accepted, uint64_t accepted_n, const char *code,
                   uint64_t session)
{
	Tern__V1__SubmitResult r = TERN__V1__SUBMIT_RESULT__INIT;

	r.message_id = (char *)msgid;
	r.accepted = accepted;
	r.accepted_n = accepted_n;
	r.reason_code = (char *)code;
	r.reason_text = accepted ? "" : "refused here";
	r.session = session;
	node_submit_result(n, &r);
}

/* The stored record of a message received, or NULL. */
static json_t *received(const char *msgid)
{
	MDB_txn *txn;
	json_t *rec = NULL;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	if (node_store_received(txn, st, msgid, &rec) != TERN_OK)
		rec = NULL;
	mdb_txn_abort(txn);
	return rec;
}

/* A string field of the sent-message record of msgid (rcpt: of that
 * recipient's part), copied into a static buffer. */
static const char *sent_field(const char *msgid, const char *rcpt, const char *key)
{
	static char buf[128];
	MDB_txn *txn;
	json_t *rec = NULL, *where;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_sent_get(txn, st, msgid, &rec), TERN_OK);
	mdb_txn_abort(txn);
	where = rcpt ? json_object_get(json_object_get(rec, "recipients"), rcpt) : rec;
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(where, key)) ?: "");
	json_decref(rec);
	return buf;
}

struct outbox {
	size_t n;
	char msgid[4][37];
	uint8_t *env[4];
	size_t len[4];
};

static int outbox_visit(uint64_t seq, const char *msgid, const uint8_t *env, size_t len, void *arg)
{
	struct outbox *o = arg;

	(void)seq;
	assert_true(o->n < 4);
	snprintf(o->msgid[o->n], 37, "%s", msgid);
	o->env[o->n] = malloc(len);
	memcpy(o->env[o->n], env, len);
	o->len[o->n++] = len;
	return 0;
}

static void outbox_read(struct outbox *o)
{
	MDB_txn *txn;

	memset(o, 0, sizeof(*o));
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_outbox_scan(txn, st, 0, outbox_visit, o);
	mdb_txn_abort(txn);
}

static void outbox_free(struct outbox *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->env[i]);
}

/* The receipt in env, as its recipient `who` opens it. */
static Tern__V1__Receipt *open_receipt(int who, const uint8_t *env, size_t len,
                                       const char *in_reply_to)
{
	tern_envelope *e = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0;
	Tern__V1__Receipt *r;

	assert_int_equal(tern_envelope_verify(env, len, F.dir, NULL, &e), TERN_OK);
	assert_int_equal(tern_envelope_header(e)->type, TERN__V1__MESSAGE_TYPE__RECEIPT);
	assert_string_equal(tern_envelope_header(e)->in_reply_to, in_reply_to);
	assert_int_equal(tern_envelope_open(e, names[who], F.seal[who], &plain, &plen), TERN_OK);
	r = tern__v1__receipt__unpack(NULL, plen, plain);
	assert_non_null(r);
	tern_envelope_body_free(&plain, plen);
	tern_envelope_free(&e);
	return r;
}

/* A delivery is committed with the signed receipt owed to its sender: an
 * accepted message enters the inbox and its sender gets ACCEPTED; one that
 * fails verification is kept as refused and its claimed sender gets
 * REJECTED with the reason. A redelivery adds nothing. */
static void test_deliver_commit(void **state)
{
	char id[37], id2[37];
	size_t len, len2, blen;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *env2 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	uint8_t *bad = spoil_signature(env2, len2, &blen);
	node *n = node_as(SWEDEN);
	struct outbox o;
	Tern__V1__Receipt *r;
	json_t *rec;

	(void)state;
	deliver(n, 1, env, len);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_int_equal(n->batch.nouts, 1); /* the receipt owed */
	assert_string_equal(n->batch.outs[0].type, "receipt");
	assert_string_equal(n->batch.outs[0].ref, id);
	assert_string_equal(n->batch.outs[0].outcome, "ACCEPTED");
	node_batch_commit(n);
	assert_int_equal(n->batch.ndins, 0);
	assert_int_equal(n->delivered, 1);
	assert_memory_equal(n->epoch, epoch, 16);
	rec = received(id);
	assert_non_null(rec);
	assert_true(json_is_true(json_object_get(rec, "accepted")));
	assert_string_equal(json_string_value(json_object_get(rec, "sender")), "unhcr");
	json_decref(rec);
	outbox_read(&o);
	assert_int_equal(o.n, 1);
	r = open_receipt(UNHCR, o.env[0], o.len[0], id);
	assert_string_equal(r->message_id, id);
	assert_int_equal(r->status, TERN__V1__RECEIPT__STATUS__ACCEPTED);
	tern__v1__receipt__free_unpacked(r, NULL);
	outbox_free(&o);

	/* Delivered again (the acknowledgement was lost): nothing new. */
	deliver(n, 1, env, len);
	assert_int_equal(n->batch.ndins, 0);
	assert_int_equal(n->batch.nouts, 0);

	deliver(n, 2, bad, blen);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 2);
	rec = received(id2);
	assert_non_null(rec);
	assert_false(json_is_true(json_object_get(rec, "accepted")));
	assert_string_equal(json_string_value(json_object_get(rec, "reason_code")),
	                    tern_reason_code(TERN_REASON_BAD_SIGNATURE));
	json_decref(rec);
	outbox_read(&o);
	assert_int_equal(o.n, 2);
	r = open_receipt(UNHCR, o.env[1], o.len[1], id2);
	assert_int_equal(r->status, TERN__V1__RECEIPT__STATUS__REJECTED);
	assert_string_equal(r->reason_code, tern_reason_code(TERN_REASON_BAD_SIGNATURE));
	tern__v1__receipt__free_unpacked(r, NULL);
	outbox_free(&o);

	/* The same id again, now validly signed: seen before, not answered twice. */
	deliver(n, 3, env2, len2);
	assert_int_equal(n->batch.dins[0].kind, DIN_NOTHING);
	assert_int_equal(n->batch.nouts, 0);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 3);
	node_free(n);
	free(bad);
	free(env2);
	free(env);
}

/* A delivery the node cannot take (here: every store reader busy) must not
 * be acknowledged by a later one: before, the next delivery was taken and
 * its seq acknowledged both, and the first was lost. Now nothing more is
 * taken until the Welcome to the Hello that asks for them again. */
static void test_delivery_not_taken_stops_the_rest(void **state)
{
	char id[37], id2[37];
	size_t len, len2;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *env2 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	MDB_txn *readers[1024];
	size_t nr = 0;

	(void)state;
	while (nr < 1024 && tern_store_read_begin(st, &readers[nr]) == TERN_OK)
		nr++;
	assert_true(nr < 1024); /* the readers' table is full */
	deliver(n, 1, env, len);
	while (nr > 0)
		mdb_txn_abort(readers[--nr]);
	assert_int_equal(n->batch.ndins, 0);
	deliver(n, 2, env2, len2); /* came behind it */
	assert_int_equal(n->batch.ndins, 0);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0);

	node_deliver_resume(n); /* the Welcome; the broker delivers from 1 again */
	deliver(n, 1, env, len);
	deliver(n, 2, env2, len2);
	assert_int_equal(n->batch.ndins, 2);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 2);
	node_free(n);
	free(env2);
	free(env);
}

/* n sends a case referral to sweden and iom, committed; its id in id. */
static void send_referral(node *n, char id[37])
{
	size_t blen;
	uint8_t *body = body_of("case-referral", &blen, NULL);
	struct out o, *slot;

	assert_int_equal(node_make_out(n, tern_msgtype_by_name("case-referral"), to_sweden_iom, 2,
	                               CASE, NULL, 0, body, blen, NULL, &o),
	                 TERN_OK);
	snprintf(id, 37, "%s", o.msgid);
	assert_non_null(slot = node_batch_out(n));
	*slot = o;
	node_batch_commit(n);
	free(body);
}

/* send_referral, then the broker's acceptance of it, committed. */
static void send_accepted(node *n, char id[37])
{
	send_referral(n, id);
	result(n, id, 1, 1, "", n->session);
	node_batch_commit(n);
}

/* Delivers to n, as seq, the receipt `from` signs for msgid. */
static void deliver_receipt(node *n, uint64_t seq, int from, const char *msgid, int accepted,
                            const char *code)
{
	char rid[37];
	size_t len;
	uint8_t *env = receipt(from, UNHCR, msgid, accepted, code, &len, rid);

	deliver(n, seq, env, len);
	free(env);
}

/* Makes the next commit fail as a failed write does: an entry with no
 * envelope fails batch_sign, which takes the same path. */
static void fail_next_commit(node *n)
{
	struct out *o = node_batch_out(n);

	assert_non_null(o);
	memset(o, 0, sizeof(*o));
	o->client = -1;
	snprintf(o->msgid, sizeof(o->msgid), "not-an-envelope");
	snprintf(o->type, sizeof(o->type), "case-referral");
}

/* A commit that fails loses its deliveries, which the broker counts as sent:
 * the next delivery's acknowledgement would cover them, and they would never
 * come again. Before, seq 2 was taken and acknowledged with seq 1 never
 * stored. Now nothing is taken until the Welcome to a Hello, due a second
 * later, and the broker's redelivery from the committed mark is taken. */
static void test_failed_commit_takes_nothing_more(void **state)
{
	char id[37], id2[37];
	size_t len, len2;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *env2 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	json_t *rec;
	int64_t t0 = tern_now_ms();

	(void)state;
	n->connected = 1;
	deliver(n, 1, env, len);
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0);
	deliver(n, 2, env2, len2); /* in flight behind it */
	assert_int_equal(n->batch.ndins, 0);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0); /* nothing acknowledged past seq 1 */
	assert_true(n->hello_due >= t0 + 1000);
	assert_true(n->hello_due <= tern_now_ms() + 1000);

	node_deliver_resume(n); /* the Welcome: the broker delivers from 1 again */
	deliver(n, 1, env, len);
	deliver(n, 2, env2, len2);
	assert_int_equal(n->batch.ndins, 2);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 2);
	assert_int_equal(n->commit_failures, 0);
	rec = received(id);
	assert_non_null(rec);
	json_decref(rec);
	node_free(n);
	free(env2);
	free(env);
}

/* A commit that fails loses the broker's answers in it, and the submit
 * window's slots they would free: after a window's worth the node would
 * stop submitting while connected and heartbeating. A Hello comes due (later
 * after each consecutive failure), and its Welcome resubmits with the whole
 * window. Without a failure nothing is due. */
static void test_failed_commit_says_hello(void **state)
{
	char id[37];
	node *n = node_as(UNHCR);
	uint64_t session;
	int64_t due;

	(void)state;
	n->connected = 1;
	n->bulk_ready = 1;
	n->hb_ivl_ms = n->hb_timeout_ms = 3600 * 1000;
	n->last_rx = n->last_tx = tern_now_ms();
	send_referral(n, id);
	assert_int_equal(n->hello_due, 0);
	n->inflight = 1;
	result(n, id, 1, 1, "", n->session);
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(n->inflight, 1); /* its slot, lost with the answer */
	assert_string_equal(sent_field(id, NULL, "state"), "queued");
	due = n->hello_due;
	assert_true(due > 0);
	session = n->session;
	node_session_tick(n, due - 1);
	assert_int_equal(n->session, session); /* not yet */
	assert_true(n->connected);
	node_session_tick(n, due);
	assert_int_not_equal(n->session, session); /* the Hello */
	assert_false(n->connected);
	assert_int_equal(n->hello_due, 0);

	/* A second failure in a row waits longer; a Hello already out does it. */
	n->connected = 1;
	result(n, id, 1, 1, "", n->session);
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(n->commit_failures, 2);
	assert_true(n->hello_due >= tern_now_ms() + 1500);
	n->hello_due = 0;
	n->connected = 0;
	result(n, id, 1, 1, "", n->session);
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(n->hello_due, 0);
	node_free(n);
}

/* A recipient's signed REJECTED receipt is its verdict; a dead-letter notice
 * the broker sends later (the recipient's acknowledgement was lost and the
 * entry expired) must not replace it. Before, only DELIVERED was kept, and
 * REJECTED invalid-body became EXPIRED expired. */
static void test_notice_keeps_rejected_receipt(void **state)
{
	char id[37];
	node *n = node_as(UNHCR);

	(void)state;
	send_accepted(n, id);
	deliver_receipt(n, 1, SWEDEN, id, 0, "invalid-body");
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "rejected");
	notice(n, 2, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
	notice(n, 3, id, "iom", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "rejected");
	assert_string_equal(sent_field(id, "sweden", "reason_code"), "invalid-body");
	assert_string_equal(sent_field(id, "iom", "state"), "expired"); /* no verdict: moved */
	node_free(n);
}

/* The broker's refusal of a resubmission (its first answer lost) moves only
 * recipients still queued; the message's reason follows theirs. Before, a
 * message every recipient had receipted took the refusal's reason:
 * "delivered", reason "expired". */
static void test_refusal_after_receipts(void **state)
{
	char id[37];
	node *n = node_as(UNHCR);

	(void)state;
	send_referral(n, id);
	deliver_receipt(n, 1, SWEDEN, id, 1, "");
	deliver_receipt(n, 2, IOM, id, 1, "");
	node_batch_commit(n);
	result(n, id, 0, 0, tern_reason_code(TERN_REASON_EXPIRED), n->session);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, NULL, "state"), "delivered");
	assert_string_equal(sent_field(id, NULL, "reason_code"), "");
	assert_string_equal(sent_field(id, "iom", "state"), "delivered");
	node_free(n);
}

/* A Welcome telling fewer of this node's acceptances than it was told (the
 * broker's store put back) makes the node queue again what the store lost;
 * if that cannot be written, the node must not go on: submitting, it would
 * have the broker's new acceptance numbers overwrite those of the messages
 * still to send again, which would then never go. Before, it went connected
 * whatever the write did. */
static void test_welcome_unwritten_not_connected(void **state)
{
	node *n = node_as(UNHCR);
	void *ctx = zmq_ctx_new(), *router = zmq_socket(ctx, ZMQ_ROUTER),
	     *dealer = zmq_socket(ctx, ZMQ_DEALER);
	Tern__V1__Frame fr = TERN__V1__FRAME__INIT;
	Tern__V1__Welcome w = TERN__V1__WELCOME__INIT;
	uint8_t wire[512], bstore[16];
	tern_store *ro = NULL;
	size_t len;

	(void)state;
	assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "un", 2), 0);
	assert_int_equal(zmq_bind(router, "inproc://welcome"), 0);
	assert_int_equal(zmq_connect(dealer, "inproc://welcome"), 0);
	n->dealer = dealer;
	n->batch_size = 64;
	assert_int_equal(tern_directory_find(F.dir, names[SWEDEN], &n->broker), TERN_OK);
	memset(bstore, 0xab, sizeof(bstore));
	memcpy(n->astore, bstore, 16);
	n->amax = 10;
	w.broker_id = "hub";
	w.broker_store = (ProtobufCBinaryData){16, bstore};
	w.accepted_count = 5; /* the store holds 5 of the 10 it accepted */
	w.session = n->session;
	fr.version = TERN_HOP_VERSION;
	fr.body_case = TERN__V1__FRAME__BODY_WELCOME;
	fr.welcome = &w;
	len = tern__v1__frame__pack(&fr, wire);
	assert_int_equal(node_store_open(dir, 1, &ro), TERN_OK); /* a failing disk */
	n->store = ro;
	assert_int_equal(zmq_send(router, "un", 2, ZMQ_SNDMORE), 2);
	assert_int_equal(zmq_send(router, wire, len, 0), (int)len);
	node_on_dealer(n);
	assert_false(n->connected);
	assert_int_equal(n->amax, 10);
	n->store = st; /* the disk back: the next Welcome goes through */
	assert_int_equal(zmq_send(router, "un", 2, ZMQ_SNDMORE), 2);
	assert_int_equal(zmq_send(router, wire, len, 0), (int)len);
	node_on_dealer(n);
	assert_true(n->connected);
	assert_int_equal(n->amax, 5);
	tern_store_close(&ro);
	zmq_close(dealer);
	zmq_close(router);
	zmq_ctx_term(ctx);
	node_free(n);
}

static uint64_t audit_size(node *n);

/* A Welcome telling more acceptances than the node was told, the last of
 * them a message it holds (answers lost with a connection, nothing put
 * back), taken under each shortage: the node goes connected with nothing
 * to say, or stays unconnected and asks again (Hello). Before, a record
 * it had no memory to read passed for one it does not hold: an audit entry
 * saying this node's store was put back, which it was not. */
static void test_every_welcome_shortage_no_false_restore(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	void *ctx = zmq_ctx_new(), *router = zmq_socket(ctx, ZMQ_ROUTER),
	     *dealer = zmq_socket(ctx, ZMQ_DEALER);
	Tern__V1__Frame fr = TERN__V1__FRAME__INIT;
	Tern__V1__Welcome w = TERN__V1__WELCOME__INIT;
	uint8_t wire[512], bstore[16];
	char last[37];
	size_t len;
	long k;
	int connected = 0;

	assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "un", 2), 0);
	assert_int_equal(zmq_bind(router, "inproc://welcome-sweep"), 0);
	assert_int_equal(zmq_connect(dealer, "inproc://welcome-sweep"), 0);
	{
		node *n = node_as(UNHCR);
		send_referral(n, last);
		node_free(n);
	}
	memset(bstore, 0xab, sizeof(bstore));
	w.broker_id = "hub";
	w.broker_store = (ProtobufCBinaryData){16, bstore};
	w.accepted_count = 11; /* the node was told 10 */
	w.last_accepted = last;
	fr.version = TERN_HOP_VERSION;
	fr.body_case = TERN__V1__FRAME__BODY_WELCOME;
	fr.welcome = &w;
	for (k = 1;; k++) {
		node *n = node_as(UNHCR);
		uint64_t audited;
		int failed;
		n->dealer = dealer;
		n->batch_size = 64;
		assert_int_equal(tern_directory_find(F.dir, names[SWEDEN], &n->broker), TERN_OK);
		memcpy(n->astore, bstore, 16);
		n->amax = 10;
		w.session = n->session;
		len = tern__v1__frame__pack(&fr, wire);
		audited = audit_size(n);
		assert_int_equal(zmq_send(router, "un", 2, ZMQ_SNDMORE), 2);
		assert_int_equal(zmq_send(router, wire, len, 0), (int)len);
		malloc_failed = 0;
		malloc_fail_at = k;
		node_on_dealer(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (n->m.restores[0] || n->m.restores[1] || audit_size(n) != audited)
			fail_msg("allocation %ld failing: taken for a store put back (%llu, %llu; "
			         "%llu audit entries)",
			         k, (unsigned long long)n->m.restores[0],
			         (unsigned long long)n->m.restores[1],
			         (unsigned long long)(audit_size(n) - audited));
		if (n->connected)
			connected++;
		else if (!failed)
			fail_msg("allocation %ld failing: not connected with memory", k);
		{
			zmq_msg_t m; /* the Hellos and BulkHellos it sent */
			zmq_msg_init(&m);
			while (zmq_msg_recv(&m, router, ZMQ_DONTWAIT) >= 0)
				;
			zmq_msg_close(&m);
		}
		node_batch_reset(n);
		node_free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations, connected %d times\n", k - 1, connected);
	assert_true(k > 1);
	zmq_close(dealer);
	zmq_close(router);
	zmq_ctx_term(ctx);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

int __real_tern_hop_decode(const void *buf, size_t len, size_t max, Tern__V1__Frame **out);
int __wrap_tern_hop_decode(const void *buf, size_t len, size_t max, Tern__V1__Frame **out);
static int frame_oom;

int __wrap_tern_hop_decode(const void *buf, size_t len, size_t max, Tern__V1__Frame **out)
{
	if (frame_oom) {
		frame_oom = 0; /* once */
		return TERN_ENOMEM;
	}
	return __real_tern_hop_decode(buf, len, max, out);
}

/* Sends a frame carrying one Deliver of env as seq to the node's dealer. */
static void send_deliver(void *router, uint64_t seq, const uint8_t *env, size_t len)
{
	Tern__V1__Frame fr = TERN__V1__FRAME__INIT;
	Tern__V1__Deliver dv = TERN__V1__DELIVER__INIT;
	size_t n;
	uint8_t *wire;

	dv.broker_epoch = (ProtobufCBinaryData){16, (uint8_t *)epoch};
	dv.seq = seq;
	dv.item_case = TERN__V1__DELIVER__ITEM_ENVELOPE;
	dv.envelope = (ProtobufCBinaryData){len, (uint8_t *)env};
	fr.version = TERN_HOP_VERSION;
	fr.body_case = TERN__V1__FRAME__BODY_DELIVER;
	fr.deliver = &dv;
	n = tern__v1__frame__get_packed_size(&fr);
	assert_non_null(wire = malloc(n));
	tern__v1__frame__pack(&fr, wire);
	assert_int_equal(zmq_send(router, "sw", 2, ZMQ_SNDMORE), 2);
	assert_int_equal(zmq_send(router, wire, n, 0), (int)n);
	free(wire);
}

/* A frame from the broker the node has no memory to decode may carry
 * deliveries: none after it may be taken, or the next acknowledgement would
 * pass over them (lost, with no receipt and no dead letter). The node stops
 * taking deliveries and asks for them all again. Before, it logged the frame
 * as undecodable and took the next one. */
static void test_frame_oom_stops_deliveries(void **state)
{
	node *n = node_as(SWEDEN);
	void *ctx = zmq_ctx_new(), *router = zmq_socket(ctx, ZMQ_ROUTER),
	     *dealer = zmq_socket(ctx, ZMQ_DEALER);
	char id1[37], id2[37];
	size_t l1, l2;
	uint8_t *e1 = message(UNHCR, to_sweden_iom, 2, "case-referral", &l1, id1, NULL, NULL, NULL,
	                      NULL),
	        *e2 = message(UNHCR, to_sweden_iom, 2, "case-referral", &l2, id2, NULL, NULL, NULL,
	                      NULL);

	(void)state;
	assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "sw", 2), 0);
	assert_int_equal(zmq_bind(router, "inproc://framelost"), 0);
	assert_int_equal(zmq_connect(dealer, "inproc://framelost"), 0);
	n->dealer = dealer;
	n->batch_size = 64;
	n->connected = 1;
	send_deliver(router, 1, e1, l1);
	send_deliver(router, 2, e2, l2);
	frame_oom = 1; /* the first frame */
	node_on_dealer(n);
	assert_true(n->deliver_stopped);
	assert_int_equal(n->batch.ndins, 0); /* seq 2 not taken past the lost seq 1 */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0);
	zmq_close(dealer);
	zmq_close(router);
	zmq_ctx_term(ctx);
	node_free(n);
	free(e1);
	free(e2);
}

/* Drops SentRecipient.receipted from the record of msgid (arg), as a record
 * written before the field reads. */
static int unmark_apply(MDB_txn *txn, void *arg)
{
	const char *msgid = arg;
	MDB_val k = {strlen(msgid), (void *)msgid}, v;
	node_sent_rec *rec = NULL;
	uint8_t buf[4096];

	assert_int_equal(mdb_get(txn, tern_store_dbi(st, NS_MSGS), &k, &v), 0);
	assert_int_equal(node_rec_sent_decode(v.mv_data, v.mv_size, &rec), TERN_OK);
	for (size_t i = 0; i < rec->n_recipients; i++)
		rec->recipients[i]->receipted = 0;
	assert_true(tern__v1__sent_record__get_packed_size(rec) <= sizeof(buf));
	v = (MDB_val){tern__v1__sent_record__pack(rec, buf), buf};
	node_rec_sent_free(&rec);
	return mdb_put(txn, tern_store_dbi(st, NS_MSGS), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

static void unmark_receipted(const char *msgid)
{
	assert_int_equal(tern_store_write(st, unmark_apply, (void *)msgid), TERN_OK);
}

/* In a record from before SentRecipient.receipted, a REJECTED with a reason
 * no notice gives is a receipt's verdict, and stands against notices too. */
static void test_notice_keeps_old_rejected_receipt(void **state)
{
	char id[37];
	node *n = node_as(UNHCR);

	(void)state;
	send_accepted(n, id);
	deliver_receipt(n, 1, SWEDEN, id, 0, "invalid-body");
	node_batch_commit(n);
	unmark_receipted(id);
	notice(n, 2, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "rejected");
	assert_string_equal(sent_field(id, "sweden", "reason_code"), "invalid-body");
	node_free(n);
}

/* A notice may correct an earlier notice (a dead letter retried with `tern
 * dlq retry`, then dead-lettered again): only a receipt's verdict stands
 * against notices. The fix that kept REJECTED receipts had made any
 * rejected or expired state final against notices. */
static void test_second_notice_after_retry(void **state)
{
	char id[37];
	node *n = node_as(UNHCR);

	(void)state;
	send_accepted(n, id);
	notice(n, 1, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "expired");
	notice(n, 2, id, "sweden", TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED,
	       tern_reason_code(TERN_REASON_RECIPIENT_REVOKED));
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "rejected");
	assert_string_equal(sent_field(id, "sweden", "reason_code"),
	                    tern_reason_code(TERN_REASON_RECIPIENT_REVOKED));
	node_free(n);
}

static uint64_t audit_size(node *n)
{
	MDB_txn *txn;
	uint64_t size = 0;
	tern_hash root;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(tern_audit_head(txn, &n->audit, &size, root), TERN_OK);
	mdb_txn_abort(txn);
	return size;
}

/* An acknowledgement as the API parks it for the commit (no client). */
static void ack(node *n, const char *msgid)
{
	assert_true(n->batch.nacks < MAX_CLIENTS);
	snprintf(n->batch.acks[n->batch.nacks].msgid, 37, "%s", msgid);
	n->batch.acks[n->batch.nacks++].client = -1;
}

/* Acknowledging is idempotent: the first acknowledgement of a message takes
 * it out of the inbox with one audit entry; another, in a later batch or in
 * the same one, succeeds and records nothing. */
static void test_ack_twice(void **state)
{
	char id[37], id2[37];
	size_t len, len2;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	uint8_t *env2 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	uint64_t before;
	json_t *rec;

	(void)state;
	deliver(n, 1, env, len);
	deliver(n, 2, env2, len2);
	node_batch_commit(n);

	before = audit_size(n);
	ack(n, id);
	node_batch_commit(n);
	assert_int_equal(audit_size(n), before + 1);
	rec = received(id);
	assert_true(json_is_true(json_object_get(rec, "acked")));
	json_decref(rec);

	ack(n, id);
	node_batch_commit(n);
	assert_int_equal(audit_size(n), before + 1);

	ack(n, id2);
	ack(n, id2);
	node_batch_commit(n);
	assert_int_equal(audit_size(n), before + 2);
	rec = received(id2);
	assert_true(json_is_true(json_object_get(rec, "acked")));
	json_decref(rec);

	node_free(n);
	free(env2);
	free(env);
}

/* Receipts and dead-letter notices move a sent message's recipients to
 * their final states; no receipt is ever owed for either. */
/* A travel confirmation that comes before the decision it cites is held:
 * acknowledged to the broker (a redelivery changes nothing) but neither
 * judged, receipted nor in the inbox; the decision's commit sets it free, and
 * it is judged and receipted then. One whose decision never comes is refused
 * unknown-reference when [delivery] hold has passed. Before holding, both
 * were refused at once. */
static void test_held_until_the_reference_comes(void **state)
{
	static const char *const to_unhcr[] = {"unhcr"};
	char ref[37], dec[37], t1[37], t2[37], never[37];
	size_t dlen, tlen, t2len;
	uint8_t *denv, *tenv, *t2env, *e = NULL;
	node *n = node_as(UNHCR);
	json_t *rec;
	MDB_txn *txn;
	size_t elen;

	(void)state;
	assert_int_equal(tern_uuid_v7(ref), TERN_OK);
	assert_int_equal(tern_uuid_v7(never), TERN_OK);
	put_sent(ref, "case-referral", CASE, "", to_sweden_iom, 2);
	denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &dlen, dec, "referralId",
	               ref, NULL, NULL);
	tenv = message(IOM, to_unhcr, 1, "travel-confirmation", &tlen, t1, "decisionId", dec, NULL,
	               NULL);
	deliver(n, 1, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	assert_int_equal(n->batch.nouts, 0); /* no receipt yet */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 1); /* acknowledged: the node keeps it */
	assert_int_equal(node_held_count(n), 1);
	assert_null(received(t1));
	deliver(n, 2, tenv, tlen); /* delivered again: it is held already */
	assert_int_equal(n->batch.dins[0].kind, DIN_NOTHING);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 1);

	deliver(n, 3, denv, dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_true(n->batch.dins[0].unhold);
	assert_int_equal(n->batch.nouts, 1);
	assert_string_equal(n->batch.outs[0].ref, t1);
	assert_string_equal(n->batch.outs[0].outcome, "ACCEPTED");
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	rec = received(t1);
	assert_non_null(rec);
	assert_true(json_is_true(json_object_get(rec, "accepted")));
	json_decref(rec);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_held_envelope(txn, st, t1, &e, &elen), TERN_ENOENT);
	mdb_txn_abort(txn);

	t2env = message(IOM, to_unhcr, 1, "travel-confirmation", &t2len, t2, "decisionId", never,
	                NULL, NULL);
	deliver(n, 4, t2env, t2len);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 1);
	node_held_tick(n, tern_now_ms()); /* not yet due */
	assert_int_equal(n->batch.ndins, 0);
	n->next_hold_check = 0;
	node_held_tick(n, tern_now_ms() + n->hold_ms + 1);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	assert_string_equal(n->batch.outs[0].outcome, "REJECTED");
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	rec = received(t2);
	assert_non_null(rec);
	assert_false(json_is_true(json_object_get(rec, "accepted")));
	assert_string_equal(json_string_value(json_object_get(rec, "reason_code")),
	                    tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	json_decref(rec);
	free(denv);
	free(tenv);
	free(t2env);
	node_free(n);
}

/* What a held message is made of: a referral unhcr sent (ref), sweden's
 * decision on it (*denv, id dec) and iom's travel confirmation citing that
 * decision (*tenv, id t), which unhcr holds until it has the decision. */
static void held_pair(char ref[37], char dec[37], char t[37], uint8_t **denv, size_t *dlen,
                      uint8_t **tenv, size_t *tlen)
{
	static const char *const to_unhcr[] = {"unhcr"};

	assert_int_equal(tern_uuid_v7(ref), TERN_OK);
	put_sent(ref, "case-referral", CASE, "", to_sweden_iom, 2);
	*denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", dlen, dec, "referralId",
	                ref, NULL, NULL);
	*tenv = message(IOM, to_unhcr, 1, "travel-confirmation", tlen, t, "decisionId", dec, NULL,
	                NULL);
}

/* held_pair's two delivered to n and committed: the travel confirmation held,
 * then the decision it cites taken, so that the next tick releases it. The
 * envelopes are the caller's to free. */
static void held_then_cited(node *n, uint8_t **denv, uint8_t **tenv)
{
	char ref[37], dec[37], t[37];
	size_t dlen, tlen;

	held_pair(ref, dec, t, denv, &dlen, tenv, &tlen);
	deliver(n, 1, *tenv, tlen);
	node_batch_commit(n);
	deliver(n, 2, *denv, dlen);
	node_batch_commit(n);
}

/* Attack (issue 15 review): the node stops (kill -9) after the commit that
 * keeps the cited message but before the tick that releases what waited for
 * it. The set of held messages that are due lived in memory only: after the
 * restart the held message waited the whole [delivery] hold (a day by
 * default) though what it cites was there. A start re-judges what is held. */
static void test_held_released_after_a_crash(void **state)
{
	char ref[37], dec[37], t1[37];
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);

	(void)state;
	held_pair(ref, dec, t1, &denv, &dlen, &tenv, &tlen);
	deliver(n, 1, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	deliver(n, 2, denv, dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	node_free(n); /* killed before its next tick */
	n = node_as(UNHCR);
	assert_int_equal(node_held_count(n), 1);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_true(n->batch.dins[0].unhold);
	assert_int_equal(n->batch.nouts, 1); /* its receipt, once */
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 0);
	free(denv);
	free(tenv);
	node_free(n);
}

static void raw_put(int db, const char *key, const uint8_t *val, size_t len);

/* The stored record of held delivery id as a HeldRecord (protobuf), or NULL
 * when the bytes are not one. */
static Tern__V1__HeldRecord *held_stored(const char *id, int *first_byte)
{
	MDB_txn *txn;
	MDB_val k = {strlen(id), (void *)id}, v;
	Tern__V1__HeldRecord *r;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, NS_HELD), &k, &v), 0);
	*first_byte = v.mv_size ? ((const uint8_t *)v.mv_data)[0] : -1;
	r = tern__v1__held_record__unpack(NULL, v.mv_size, v.mv_data);
	mdb_txn_abort(txn);
	return r;
}

/* A held delivery is kept as protobuf (HeldRecord), and a store an earlier
 * release wrote holds it as a JSON object: an upgraded node loads that one
 * with every field, releases it when the cited message comes and receipts
 * it once, as it would its own. */
static void test_held_old_json_record(void **state)
{
	char ref[37], dec[37], t1[37], old[512];
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	Tern__V1__HeldRecord *r;
	json_t *h;
	int first;
	node *n = node_as(UNHCR);

	(void)state;
	held_pair(ref, dec, t1, &denv, &dlen, &tenv, &tlen);
	deliver(n, 1, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	r = held_stored(t1, &first);
	assert_non_null(r);
	assert_int_not_equal(first, '{');
	assert_string_equal(r->ref, dec);
	assert_string_equal(r->sender, "iom");
	assert_string_equal(r->type, "travel-confirmation");
	assert_int_equal(r->len, tlen);
	assert_true(r->until > 0);
	/* The same record as the earlier release wrote it, byte for byte
	 * (json_pack, then JSON_COMPACT): its keys in that order. */
	snprintf(old, sizeof(old),
	         "{\"ref\":\"%s\",\"until\":%lld,\"sender\":\"%s\",\"case_id\":\"%s\","
	         "\"type\":\"%s\",\"len\":%llu}",
	         r->ref, (long long)r->until, r->sender, r->case_id, r->type,
	         (unsigned long long)r->len);
	tern__v1__held_record__free_unpacked(r, NULL);
	node_free(n);
	raw_put(NS_HELD, t1, (const uint8_t *)old, strlen(old));
	assert_null(held_stored(t1, &first));
	assert_int_equal(first, '{');

	n = node_as(UNHCR);
	assert_int_equal(node_held_count(n), 1);
	h = json_object_get(n->held, t1);
	assert_non_null(h);
	assert_string_equal(json_string_value(json_object_get(h, "ref")), dec);
	assert_string_equal(json_string_value(json_object_get(h, "sender")), "iom");
	assert_int_equal(json_integer_value(json_object_get(h, "len")), tlen);
	assert_int_equal(node_held_from(n->held, "iom"), 1);
	deliver(n, 2, denv, dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_true(n->batch.dins[0].unhold);
	assert_int_equal(n->batch.nouts, 1); /* its receipt, once */
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	free(denv);
	free(tenv);
	node_free(n);
}

/* A held delivery whose record holds a text that is not UTF-8 (a damaged
 * store: protobuf-c keeps any bytes) is passed over at start as damaged, and
 * the others load. Before, its in-memory entry could not be made, which was
 * taken for a shortage: the node would not start ("out of memory loading the
 * held deliveries"), with memory to spare, for ever. */
static void test_held_damaged_text_passed_over(void **state)
{
	Tern__V1__HeldRecord r = TERN__V1__HELD_RECORD__INIT;
	uint8_t buf[256];
	size_t len;
	node *n;

	(void)state;
	r.ref = "01a20598-0000-7000-8000-0000000000d0";
	r.until = tern_now_ms() + 60000;
	r.sender = "iom";
	r.case_id = CASE;
	r.type = "travel-confirmation";
	r.len = 10;
	len = protobuf_c_message_pack(&r.base, buf);
	raw_put(NS_HELD, "01a20598-0000-7000-8000-0000000000d1", buf, len);
	r.sender = "io\xffm";
	len = protobuf_c_message_pack(&r.base, buf);
	raw_put(NS_HELD, "01a20598-0000-7000-8000-0000000000d2", buf, len);
	n = node_as(UNHCR); /* loads the held deliveries: asserts it starts */
	assert_int_equal(node_held_count(n), 1);
	assert_non_null(json_object_get(n->held, "01a20598-0000-7000-8000-0000000000d1"));
	node_free(n);
}

/* A commit that fails after a tick released a held message (its cited
 * message stored by an earlier commit) loses the release; nothing brings the
 * cited message again. Before, the held message then waited out [delivery]
 * hold (a day by default). Now it is judged again once the failure's
 * back-off has passed, not in the very next turn. */
static void test_held_release_after_failed_commit(void **state)
{
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);
	int64_t t0;

	(void)state;
	held_then_cited(n, &denv, &tenv);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_true(n->batch.dins[0].unhold);
	t0 = tern_now_ms();
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 1);
	node_held_tick(n, t0); /* within the back-off: not yet */
	assert_int_equal(n->batch.ndins, 0);
	node_held_tick(n, t0 + 5000); /* past the back-off, long before hold_ms */
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_true(n->batch.dins[0].unhold);
	assert_int_equal(n->batch.nouts, 1); /* its receipt, once */
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	free(denv);
	free(tenv);
	node_free(n);
}

struct xin_put {
	const char *msgid;
	const uint8_t *env;
	size_t len;
	/* Its record: 0 / NULL take a transfer past its time (until 1), nothing
	 * of it here yet, one attachment of 1,000 bytes in 64 KiB chunks. */
	int64_t until, have, size, chunk;
	const char *root, *sha256; /* 64 hex digits */
};

/* A transfer in, as a commit that took its delivery leaves it: its record
 * and its envelope. */
static int put_xin(MDB_txn *txn, void *arg)
{
	const struct xin_put *x = arg;
	static const char zero[] =
	    "0000000000000000000000000000000000000000000000000000000000000000";
	json_t *rec =
	    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:[{s:I, s:I, s:s, s:s}]}", "sender", "unhcr",
	              "case_id", CASE, "type", "case-referral", "until",
	              (json_int_t)(x->until ? x->until : 1), "att", (json_int_t)0, "have",
	              (json_int_t)x->have, "atts", "size", (json_int_t)(x->size ? x->size : 1000),
	              "chunk_size", (json_int_t)(x->chunk ? x->chunk : 64 << 10), "root",
	              x->root ? x->root : zero, "sha256", x->sha256 ? x->sha256 : zero);
	char *text = json_dumps(rec, JSON_COMPACT);
	MDB_val k = {strlen(x->msgid), (void *)x->msgid}, v = {strlen(text), text};
	int rc = mdb_put(txn, tern_store_dbi(st, NS_XIN), &k, &v, 0);

	json_decref(rec);
	free(text);
	v = (MDB_val){x->len, (void *)x->env};
	if (rc == 0)
		rc = mdb_put(txn, tern_store_dbi(st, NS_XINENV), &k, &v, 0);
	return rc == 0 ? TERN_OK : TERN_EIO;
}

/* A finished transfer (here: past its time) is judged into a batch whose
 * commit fails. Before, it stayed marked judged in memory: never
 * judged again until the node restarted, its sender without a receipt. Now
 * it is judged again once the failure's back-off has passed. */
static void test_transfer_judged_after_failed_commit(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	struct xin_put x = {.msgid = id, .env = env, .len = len};
	node *n = node_as(SWEDEN);
	json_t *rec;
	int64_t t0;

	(void)state;
	n->data_dir = dir; /* its spool: in this test's directory */
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	assert_int_equal(node_xin_load(n), TERN_OK);
	assert_true(node_xin_active(n, id));
	node_xin_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_true(n->batch.dins[0].unxfer);
	t0 = tern_now_ms();
	fail_next_commit(n);
	node_batch_commit(n);
	assert_int_equal(n->batch.ndins, 0);
	node_xin_tick(n, t0); /* within the back-off: not yet */
	assert_int_equal(n->batch.ndins, 0);
	node_xin_tick(n, t0 + 5000);
	assert_int_equal(n->batch.ndins, 1);
	assert_true(n->batch.dins[0].unxfer);
	assert_int_equal(n->batch.nouts, 1); /* its receipt, once */
	assert_string_equal(n->batch.outs[0].ref, id);
	node_batch_commit(n);
	rec = received(id); /* its envelope declares no attachment: accepted */
	assert_non_null(rec);
	json_decref(rec);
	assert_false(node_xin_active(n, id));
	node_xin_free(n);
	node_free(n);
	free(env);
}

/* Linked with --wrap=tern_pb_pack and --wrap=node_batch_out
 * (tests/CMakeLists.txt): while receipt_oom is set, encoding a Receipt fails
 * as out of memory; while out_oom is set, the batch has no room for an
 * outbox entry. */
int __real_tern_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len);
int __wrap_tern_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len);
struct out *__real_node_batch_out(node *n);
struct out *__wrap_node_batch_out(node *n);
static int receipt_oom, out_oom, receipt_packs;

int __wrap_tern_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
	if (msg->descriptor == &tern__v1__receipt__descriptor) {
		receipt_packs++;
		if (receipt_oom)
			return TERN_ENOMEM;
	}
	return __real_tern_pb_pack(msg, out, out_len);
}

struct out *__wrap_node_batch_out(node *n)
{
	return out_oom ? NULL : __real_node_batch_out(n);
}

int __real_tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned r, int as_sender,
                               tern_wf_lookup get, void *arg, tern_wf_verdict *v);
int __wrap_tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned r, int as_sender,
                               tern_wf_lookup get, void *arg, tern_wf_verdict *v);
static int judge_oom;

int __wrap_tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned r, int as_sender,
                               tern_wf_lookup get, void *arg, tern_wf_verdict *v)
{
	if (judge_oom) {
		memset(v, 0, sizeof(*v)); /* as the judge leaves it on an error */
		return TERN_ENOMEM;
	}
	return __real_tern_workflow_judge(m, self, r, as_sender, get, arg, v);
}

int __real_tern_pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                          size_t max_len, ProtobufCMessage **out);
int __wrap_tern_pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                          size_t max_len, ProtobufCMessage **out);
static int body_oom;

int __wrap_tern_pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                          size_t max_len, ProtobufCMessage **out)
{
	if (body_oom && desc == &tern__v1__case_referral__descriptor)
		return TERN_ENOMEM;
	return __real_tern_pb_unpack(desc, buf, len, max_len, out);
}

/* Linked with --wrap=tern_envelope_content_key: while key_oom is set, a
 * transfer's content key cannot be unwrapped for want of memory (the node's
 * own call, when it starts a transfer; the library's judging is not
 * touched). */
int __real_tern_envelope_content_key(const tern_envelope *env, const char *self_id,
                                     const tern_sealkey *key, tern_sealcache *cache,
                                     uint8_t out[32]);
int __wrap_tern_envelope_content_key(const tern_envelope *env, const char *self_id,
                                     const tern_sealkey *key, tern_sealcache *cache,
                                     uint8_t out[32]);
static int key_oom;

int __wrap_tern_envelope_content_key(const tern_envelope *env, const char *self_id,
                                     const tern_sealkey *key, tern_sealcache *cache,
                                     uint8_t out[32])
{
	if (key_oom)
		return TERN_ENOMEM;
	return __real_tern_envelope_content_key(env, self_id, key, cache, out);
}

/* Memory that runs out while a delivery is judged (*oom set: its body
 * decoded, or a record of the case read, copied or built) is no verdict on
 * the message: it is not taken, answered or acknowledged, and is taken when
 * the broker delivers it again. Before, it was refused: a negative receipt,
 * signed, for a moment's shortage ("the body does not decode", or "cannot
 * read this node's records of the case"). */
static void oom_not_refused(int *oom)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	json_t *rec;

	n->connected = 1;
	*oom = 1;
	deliver(n, 1, env, len);
	*oom = 0;
	assert_int_equal(n->batch.ndins, 0);
	assert_int_equal(n->batch.nouts, 0); /* no receipt, negative or not */
	assert_null(n->batch.wf);            /* nor its workflow record */
	assert_true(n->deliver_stopped);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0);
	assert_null(received(id));

	node_deliver_resume(n); /* the Welcome: the broker delivers it again */
	deliver(n, 1, env, len);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_int_equal(n->batch.nouts, 1);
	assert_string_equal(n->batch.outs[0].ref, id); /* its receipt */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 1);
	rec = received(id);
	assert_non_null(rec);
	json_decref(rec);
	node_free(n);
	free(env);
}

/* Memory that runs out judging the same delivery every time (a host too
 * small for one message) must not block the queue behind it for ever: after
 * TERN_NOMEM_TRIES deliveries not taken, over TERN_NOMEM_SPAN_MS at least,
 * the next is refused no-memory (a negative receipt, as before DIN_NOMEM)
 * and the queue goes on. Tries that come fast (a Hello the broker asked for
 * is sent at once) do not end it sooner. */
static void test_oom_every_time_refused(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);

	(void)state;
	n->connected = 1;
	for (int i = 0; i < TERN_NOMEM_TRIES; i++) {
		body_oom = 1;
		deliver(n, 1, env, len);
		body_oom = 0;
		assert_int_equal(n->batch.ndins, 0);
		assert_true(n->deliver_stopped);
		node_deliver_resume(n);
	}
	body_oom = 1;
	deliver(n, 1, env, len); /* within the span: put off again */
	body_oom = 0;
	assert_int_equal(n->batch.ndins, 0);
	assert_true(n->deliver_stopped);
	node_deliver_resume(n);
	n->nomem.first -= TERN_NOMEM_SPAN_MS; /* as if the first try was that long ago */
	body_oom = 1;
	deliver(n, 1, env, len);
	body_oom = 0;
	assert_false(n->deliver_stopped);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_errcode_name(TERN_ENOMEM));
	assert_int_equal(n->batch.nouts, 1); /* its negative receipt */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 1);
	node_free(n);
	free(env);
}

/* The tries are counted per broker start: a broker restored from an older
 * copy numbers again, and its seq 1 is another message, whose first shortage
 * must not be its last. */
static void test_oom_tries_per_epoch(void **state)
{
	static const uint8_t epoch2[16] = {0xe2};
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	Tern__V1__Deliver dv = TERN__V1__DELIVER__INIT;

	(void)state;
	n->connected = 1;
	for (int i = 0; i < TERN_NOMEM_TRIES; i++) {
		body_oom = 1;
		deliver(n, 1, env, len);
		body_oom = 0;
		node_deliver_resume(n);
	}
	dv.broker_epoch = (ProtobufCBinaryData){16, (uint8_t *)epoch2};
	dv.seq = 1;
	dv.item_case = TERN__V1__DELIVER__ITEM_ENVELOPE;
	dv.envelope = (ProtobufCBinaryData){len, env};
	body_oom = 1;
	node_on_deliver(n, &dv);
	body_oom = 0;
	assert_int_equal(n->batch.ndins, 0); /* not refused: the first try of this start */
	assert_true(n->deliver_stopped);
	node_free(n);
	free(env);
}

static void test_judge_oom_not_refused(void **state)
{
	(void)state;
	oom_not_refused(&judge_oom);
}

static void test_body_oom_not_refused(void **state)
{
	(void)state;
	oom_not_refused(&body_oom);
}

#if MALLOC_CAN_FAIL
/* Delivers env as seq 1 to n with the k-th allocation failing. Left for
 * later (not taken), it must have been for that failure, with deliveries
 * stopped; it is then delivered again with memory (the Welcome to the
 * Hello). Returns whether an allocation failed (0: the sweep is done). */
static int deliver_short(node *n, const uint8_t *env, size_t len, long k)
{
	int failed;

	n->connected = 1;
	malloc_failed = 0;
	malloc_fail_at = k;
	deliver(n, 1, env, len);
	malloc_fail_at = 0;
	failed = malloc_failed;
	if (n->batch.ndins == 0) {
		if (!failed || !n->deliver_stopped)
			fail_msg("allocation %ld: not taken, failed %d, stopped %d", k, failed,
			         n->deliver_stopped);
		assert_int_equal(n->batch.nouts, 0);
		node_deliver_resume(n);
		deliver(n, 1, env, len);
	}
	return failed;
}
#endif

/* Each allocation of judging one delivery made to fail in turn (a real
 * malloc that fails, not a function replaced): the delivery is either left
 * for later (not taken, not answered, deliveries stopped) or taken and
 * receipted as with memory. Never refused: a refusal is a signed negative
 * receipt to another agency, and a shortage is no verdict on its message. */
static void test_every_shortage_not_refused(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	long k;

	for (k = 1;; k++) {
		node *n = node_as(SWEDEN);
		int failed = deliver_short(n, env, len, k);
		if (n->batch.ndins != 1 || n->batch.dins[0].kind != DIN_ACCEPT)
			fail_msg("allocation %ld failing: %zu deliveries, the first %s: %s", k,
			         n->batch.ndins, n->batch.ndins ? "judged" : "none",
			         n->batch.ndins ? n->batch.dins[0].code : "");
		assert_int_equal(n->batch.nouts, 1);
		assert_string_equal(n->batch.outs[0].ref, id); /* its receipt */
		node_batch_reset(n);
		node_free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The same for a receipt coming back to the sender: under each shortage it
 * is either left for later or taken as a receipt, never refused or dropped
 * (a receipt lost would leave the message at-broker for good). */
static void test_every_receipt_shortage_not_lost(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37], rid[37];
	size_t len, blen;
	uint8_t *body = body_of("case-referral", &blen, NULL), *env;
	node *n = node_as(UNHCR);
	struct out o, *slot;
	long k;

	assert_int_equal(node_make_out(n, tern_msgtype_by_name("case-referral"), to_sweden_iom, 2,
	                               CASE, NULL, 0, body, blen, NULL, &o),
	                 TERN_OK);
	snprintf(id, sizeof(id), "%s", o.msgid);
	assert_non_null(slot = node_batch_out(n));
	*slot = o;
	node_batch_commit(n);
	result(n, id, 1, 1, "", n->session);
	node_batch_commit(n);
	node_free(n);
	env = receipt(SWEDEN, UNHCR, id, 1, "", &len, rid);
	for (k = 1;; k++) {
		int failed;
		n = node_as(UNHCR);
		failed = deliver_short(n, env, len, k);
		if (n->batch.ndins != 1 || n->batch.dins[0].kind != DIN_RECEIPT)
			fail_msg("allocation %ld failing: %zu deliveries, the first of kind %d: %s",
			         k, n->batch.ndins,
			         n->batch.ndins ? (int)n->batch.dins[0].kind : -1,
			         n->batch.ndins ? n->batch.dins[0].code : "");
		assert_int_equal(n->batch.nouts, 0); /* a receipt is not answered */
		if (!failed)
			break;
		node_batch_reset(n);
		node_free(n);
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "delivered");
	node_free(n);
	free(env);
	free(body);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

#if MALLOC_CAN_FAIL
/* One try of test_every_redelivery_shortage_seen's: env delivered with the
 * k-th allocation failing, on a last try if final. Returns whether an
 * allocation failed (0: the sweep is done). */
static int redelivery_short(const uint8_t *env, size_t len, enum din_kind want, int final, long k)
{
	node *n = node_as(SWEDEN);
	int failed;

	if (final) {
		memcpy(n->epoch, epoch, 16); /* the same start of the broker */
		n->nomem_seq = 1;
		n->nomem.tries = TERN_NOMEM_TRIES;
		n->nomem.first = tern_now_ms() - TERN_NOMEM_SPAN_MS;
	}
	failed = deliver_short(n, env, len, k);
	/* On the last try a reused id may be taken for a redelivery (its
	 * sender unknown): unanswered either way. */
	if (n->batch.ndins != 1 || ((int)n->batch.dins[0].kind != (int)want &&
	                            !(final && n->batch.dins[0].kind == DIN_NOTHING)))
		fail_msg("allocation %ld failing%s: %zu deliveries, the first of kind %d: %s", k,
		         final ? " on the last try" : "", n->batch.ndins,
		         n->batch.ndins ? (int)n->batch.dins[0].kind : -1,
		         n->batch.ndins ? n->batch.dins[0].code : "");
	assert_int_equal(n->batch.nouts, 0); /* nothing answered again */
	node_batch_reset(n);
	node_free(n);
	return failed;
}

#endif

#if MALLOC_CAN_FAIL
/* What a delivery was judged to be: its kind, and what a verdict names. */
struct verdict {
	int kind;
	char code[40], outcome[40], ref[37];
};

static struct verdict verdict_of(const node *n)
{
	struct verdict v = {-1, "", "", ""};

	if (n->batch.ndins != 1)
		return v;
	v.kind = n->batch.dins[0].kind;
	snprintf(v.code, sizeof(v.code), "%s", n->batch.dins[0].code);
	snprintf(v.outcome, sizeof(v.outcome), "%s", n->batch.dins[0].outcome);
	snprintf(v.ref, sizeof(v.ref), "%s", n->batch.dins[0].ref);
	return v;
}

/* env delivered to `who`, first with memory, then with each allocation
 * failing in turn: every run is left for later (deliver_short checks that)
 * or judged exactly as with memory, the same kind, reason, outcome and
 * reference. Nothing is committed, so each run meets the same store.
 * Returns the number of allocations swept. */
static long judged_as_with_memory(int who, const uint8_t *env, size_t len, int want_kind)
{
	node *n = node_as(who);
	struct verdict want, got;
	long k;

	n->connected = 1;
	deliver(n, 1, env, len);
	want = verdict_of(n);
	assert_int_equal(want.kind, want_kind);
	node_batch_reset(n);
	node_free(n);
	for (k = 1;; k++) {
		int failed;
		n = node_as(who);
		failed = deliver_short(n, env, len, k);
		got = verdict_of(n);
		if (got.kind != want.kind || strcmp(got.code, want.code) != 0 ||
		    strcmp(got.outcome, want.outcome) != 0 || strcmp(got.ref, want.ref) != 0)
			fail_msg(
			    "allocation %ld failing: judged %d %s %s %s, with memory %d %s %s %s",
			    k, got.kind, got.code, got.outcome, got.ref, want.kind, want.code,
			    want.outcome, want.ref);
		node_batch_reset(n);
		node_free(n);
		if (!failed)
			break;
	}
	return k - 1;
}
#endif

/* The workflow's verdicts under each shortage: a decision and a travel
 * confirmation judged against the records of the case (accepted, refused
 * case-mismatch or decision-not-accepted, held for a reference not yet
 * here), and bodies refused on their own merits. A record the node had no
 * memory to read must not pass for one that is absent (held, or refused
 * unknown-reference) or for another case's. */
static void test_every_workflow_shortage_judged_alike(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char ref[37], dec[37], rejected[37], absent[37], id[37];
	size_t len, blen;
	uint8_t *env, *body;
	long swept = 0;

	assert_int_equal(tern_uuid_v7(ref), TERN_OK);
	assert_int_equal(tern_uuid_v7(dec), TERN_OK);
	assert_int_equal(tern_uuid_v7(rejected), TERN_OK);
	assert_int_equal(tern_uuid_v7(absent), TERN_OK);
	put_sent(ref, "case-referral", CASE, "", to_sweden_iom, 2);
	put_sent(dec, "acceptance-decision", CASE, "ACCEPTED", to_unhcr_iom, 2);
	put_sent(rejected, "acceptance-decision", CASE, "REJECTED", to_unhcr_iom, 2);

	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId", ref,
	              NULL, NULL);
	swept += judged_as_with_memory(UNHCR, env, len, DIN_ACCEPT);
	free(env);
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId", ref,
	              "caseId", OTHER_CASE);
	swept += judged_as_with_memory(UNHCR, env, len, DIN_REFUSE);
	free(env);
	/* A referral unhcr never sent: refused at once (it will not come); a
	 * decision unhcr was not sent yet: held until it comes. */
	env = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &len, id, "referralId",
	              absent, NULL, NULL);
	swept += judged_as_with_memory(UNHCR, env, len, DIN_REFUSE);
	free(env);
	env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &len, id, "decisionId", absent,
	              NULL, NULL);
	swept += judged_as_with_memory(UNHCR, env, len, DIN_HOLD);
	free(env);
	env = message(IOM, to_sweden, 1, "travel-confirmation", &len, id, "decisionId", dec, NULL,
	              NULL);
	swept += judged_as_with_memory(SWEDEN, env, len, DIN_ACCEPT);
	free(env);
	env = message(IOM, to_sweden, 1, "travel-confirmation", &len, id, "decisionId", rejected,
	              NULL, NULL);
	swept += judged_as_with_memory(SWEDEN, env, len, DIN_REFUSE);
	free(env);
	/* Refused for what they are: another case than the envelope's, a body
	 * that does not decode, a message to somebody else. */
	body = body_of("case-referral", &blen, NULL);
	env = seal(UNHCR, to_sweden_iom, 2, "case-referral", OTHER_CASE, body, blen, &len, id);
	swept += judged_as_with_memory(SWEDEN, env, len, DIN_REFUSE);
	free(env);
	free(body);
	env = seal(UNHCR, to_sweden_iom, 2, "case-referral", CASE, (const uint8_t *)"\xff\xff", 2,
	           &len, id);
	swept += judged_as_with_memory(SWEDEN, env, len, DIN_REFUSE);
	free(env);
	env = message(UNHCR, to_sweden, 1, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	swept += judged_as_with_memory(IOM, env, len, DIN_REFUSE);
	free(env);
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 100);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A notice from the broker (a recipient's queue expired, a member removed)
 * under each shortage: left for later (not taken, deliveries stopped) or
 * taken as with memory. A notice dropped would leave the message at-broker
 * for that recipient for good, with nobody to tell the sender otherwise. */
static void test_every_notice_shortage_not_lost(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	node *n = node_as(UNHCR);
	long k;

	send_accepted(n, id);
	node_free(n);
	for (k = 1;; k++) {
		int failed;
		n = node_as(UNHCR);
		n->connected = 1;
		malloc_failed = 0;
		malloc_fail_at = k;
		notice(n, 1, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (n->batch.ndins == 0) {
			if (!failed || !n->deliver_stopped)
				fail_msg("allocation %ld: not taken, failed %d, stopped %d", k,
				         failed, n->deliver_stopped);
			node_deliver_resume(n);
			notice(n, 1, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
		}
		if (n->batch.ndins != 1 || n->batch.dins[0].kind != DIN_NOTICE ||
		    strcmp(n->batch.dins[0].target, id) != 0 ||
		    strcmp(n->batch.dins[0].node, "sweden") != 0)
			fail_msg("allocation %ld failing: %zu deliveries, the first of kind %d", k,
			         n->batch.ndins, n->batch.ndins ? (int)n->batch.dins[0].kind : -1);
		assert_int_equal(n->batch.nouts, 0); /* a notice is not answered */
		if (!failed)
			break;
		node_batch_reset(n);
		node_free(n);
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 1);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "expired");
	assert_string_equal(sent_field(id, "iom", "state"), "at-broker");
	node_free(n);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

#if MALLOC_CAN_FAIL
/* Whether sweden's copy of msgid is in this node's store as received. */
static int received_here(const char *msgid)
{
	MDB_txn *txn;
	json_t *rec = NULL;
	int rc;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	rc = node_store_received(txn, st, msgid, &rec);
	mdb_txn_abort(txn);
	json_decref(rec);
	if (rc != TERN_OK && rc != TERN_ENOENT)
		fail_msg("reading %s: %s", msgid, tern_strerror(rc));
	return rc == TERN_OK;
}
#endif

/* The commit itself under each shortage: a batch holding a notice, a
 * receipt and a received referral (with its receipt to send) is written
 * whole, or not at all and asked for again. Written in part, a notice or
 * receipt would be acknowledged and never applied, and a referral
 * acknowledged without its record or receipt. */
static void test_every_commit_shortage_all_or_nothing(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	long k;

	for (k = 1;; k++) {
		char noticed[37], receipted[37], rid[37], in[37];
		size_t rlen, len;
		node *n = node_as(UNHCR);
		uint8_t *renv, *env;
		int failed, failures;

		send_accepted(n, noticed);
		send_accepted(n, receipted);
		renv = receipt(SWEDEN, UNHCR, receipted, 1, "", &rlen, rid);
		env = message(SWEDEN, to_unhcr_iom, 2, "case-referral", &len, in, NULL, NULL, NULL,
		              NULL);
		n->connected = 1;
		notice(n, 1, noticed, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
		deliver(n, 2, renv, rlen);
		deliver(n, 3, env, len);
		assert_int_equal(n->batch.ndins, 3);
		failures = n->commit_failures;
		malloc_failed = 0;
		malloc_fail_at = k;
		node_batch_commit(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (n->commit_failures > failures) {
			/* Nothing of it: all three will come again. */
			assert_true(failed);
			assert_true(n->deliver_stopped);
			assert_string_equal(sent_field(noticed, "sweden", "state"), "at-broker");
			assert_string_equal(sent_field(receipted, "sweden", "state"), "at-broker");
			assert_false(received_here(in));
		} else {
			if (strcmp(sent_field(noticed, "sweden", "state"), "expired") != 0 ||
			    strcmp(sent_field(receipted, "sweden", "state"), "delivered") != 0 ||
			    !received_here(in))
				fail_msg(
				    "allocation %ld failing: committed, but the notice says %s, "
				    "the receipt %s, the referral %s",
				    k, sent_field(noticed, "sweden", "state"),
				    sent_field(receipted, "sweden", "state"),
				    received_here(in) ? "received" : "absent");
		}
		node_batch_reset(n);
		node_free(n);
		free(renv);
		free(env);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

#if MALLOC_CAN_FAIL
static int outbox_find(uint64_t seq, const char *msgid, const uint8_t *env, size_t len, void *arg)
{
	(void)seq;
	(void)env;
	(void)len;
	return strcmp(msgid, arg) == 0 ? (*(char *)arg = 0, 1) : 0;
}

/* Whether msgid is in the outbox, to be sent. */
static int in_outbox(const char *msgid)
{
	char id[37];
	MDB_txn *txn;

	snprintf(id, sizeof(id), "%s", msgid);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	node_store_outbox_scan(txn, st, 0, outbox_find, id);
	mdb_txn_abort(txn);
	return id[0] == 0;
}
#endif

/* A send under each shortage, from sealing to the commit: refused to its
 * client (nothing kept), or kept whole: its record, queued for each
 * recipient, and in the outbox. Kept in part, a message its client was told
 * is stored could never go, or go with no record to take its receipts. */
static void test_every_send_shortage_all_or_nothing(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	size_t blen;
	uint8_t *body = body_of("case-referral", &blen, NULL);
	long k;
	int kept = 0;

	for (k = 1;; k++) {
		node *n = node_as(UNHCR);
		struct out o, *slot;
		int rc, failed, failures = n->commit_failures;
		MDB_txn *txn;
		json_t *rec = NULL;

		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_make_out(n, tern_msgtype_by_name("case-referral"), to_sweden_iom, 2, CASE,
		                   NULL, 0, body, blen, NULL, &o);
		if (rc == TERN_OK) {
			slot = node_batch_out(n);
			if (slot == NULL) {
				rc = TERN_ENOMEM;
				node_out_free(&o);
			} else {
				*slot = o;
				node_batch_commit(n);
			}
		}
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc != TERN_OK) {
			if (rc != TERN_ENOMEM || !failed)
				fail_msg("allocation %ld failing: not sent, %s", k,
				         tern_strerror(rc));
		} else if (n->commit_failures > failures) {
			assert_true(failed);
			assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
			assert_int_equal(node_store_sent_get(txn, st, o.msgid, &rec), TERN_ENOENT);
			mdb_txn_abort(txn);
			assert_false(in_outbox(o.msgid));
		} else {
			assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
			rc = node_store_sent_get(txn, st, o.msgid, &rec);
			mdb_txn_abort(txn);
			json_decref(rec);
			if (rc != TERN_OK || !in_outbox(o.msgid) ||
			    strcmp(sent_field(o.msgid, "sweden", "state"), "queued") != 0 ||
			    strcmp(sent_field(o.msgid, "iom", "state"), "queued") != 0)
				fail_msg(
				    "allocation %ld failing: committed, but record %s, outbox %d, "
				    "sweden %s",
				    k, tern_strerror(rc), in_outbox(o.msgid),
				    rc == TERN_OK ? sent_field(o.msgid, "sweden", "state") : "");
			kept++;
		}
		node_batch_reset(n);
		node_free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations, kept %d times\n", k - 1, kept);
	assert_true(k > 20);
	free(body);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* And for a message seen before (a redelivery, or another sender's id, as
 * test_judge_duplicates): under each shortage it is left for later or known
 * as seen. Taken as new, a redelivery would be answered twice and a reused
 * id would overwrite the first message's record. */
static void test_every_redelivery_shortage_seen(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37], id2[37];
	size_t len[2];
	uint8_t *env[2] = {
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len[0], id, NULL, NULL, NULL, NULL),
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len[1], id2, NULL, NULL, NULL,
	            NULL)};
	const enum din_kind want[2] = {DIN_NOTHING, DIN_DUPLICATE};
	long k = 0;

	put_received(id, "unhcr");
	put_received(id2, "portugal");
	/* Then the same on a last try (final): its tries used up. */
	for (int final = 0; final < 2; final++) {
		for (int c = 0; c < 2; c++) {
			for (k = 1;; k++) {
				if (!redelivery_short(env[c], len[c], want[c], final, k))
					break;
			}
		}
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 10);
	free(env[0]);
	free(env[1]);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A case referral from unhcr to sweden declaring one attachment of 5,000
 * bytes, with its seal: what waits for its transfer (DIN_XFER). */
static uint8_t *att_envelope_case(size_t *len, char id[37], const char *header_case);

static uint8_t *att_envelope(size_t *len, char id[37])
{
	return att_envelope_case(len, id, CASE);
}

/* The same, its header naming header_case (CASE: the body's). */
static uint8_t *att_envelope_case(size_t *len, char id[37], const char *header_case)
{
	Tern__V1__AttachmentSeal seal = TERN__V1__ATTACHMENT_SEAL__INIT;
	const Tern__V1__AttachmentSeal *seals[1] = {&seal};
	const tern_msgtype *t = tern_msgtype_by_name("case-referral");
	ProtobufCMessage *msg = NULL;
	uint8_t root[32], ck[32], *body = NULL, *env = NULL;
	char *text = NULL, err[256], mine[37];
	size_t blen;
	json_t *j;

	assert_int_equal(tern_example_json("case-referral", &text), TERN_OK);
	j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	json_object_set_new(
	    j, "attachments",
	    json_pack("[{s:s, s:s, s:s, s:i}]", "name", "scan.pdf", "mediaType", "application/pdf",
	              "sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	              "size", 5000));
	assert_int_equal(tern_json_decode(t->desc, j, &msg, err, sizeof(err)), TERN_OK);
	json_decref(j);
	assert_int_equal(tern_pb_pack(msg, &body, &blen), TERN_OK);
	protobuf_c_message_free_unpacked(msg, NULL);
	memset(root, 7, sizeof(root));
	randombytes_buf(ck, sizeof(ck));
	seal.size = 5000;
	seal.chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
	seal.root = (ProtobufCBinaryData){32, root};
	assert_int_equal(tern_uuid_v7(mine), TERN_OK);
	{
		tern_seal_params p = {.sender = "unhcr",
		                      .sign_key = F.sign[UNHCR],
		                      .recipients = to_sweden,
		                      .n_recipients = 1,
		                      .type = t->type,
		                      .case_id = header_case,
		                      .body = body,
		                      .body_len = blen,
		                      .message_id = mine,
		                      .content_key = ck,
		                      .attachments = seals,
		                      .n_attachments = 1};
		assert_int_equal(tern_envelope_seal(&p, F.dir, &env, len, id), TERN_OK);
	}
	free(body);
	return env;
}

#if MALLOC_CAN_FAIL
/* 1 if the store holds a transfer record for msgid. */
static int xin_stored(const char *msgid)
{
	MDB_txn *txn;
	MDB_val k = {strlen(msgid), (void *)msgid}, v;
	int found;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	found = mdb_get(txn, tern_store_dbi(st, NS_XIN), &k, &v) == 0;
	mdb_txn_abort(txn);
	return found;
}
/* A few ticks, each past a second's wait: transfer id runs in n (started
 * or reloaded, if a shortage had put it off), and nothing was refused. */
static void xin_runs_unrefused(node *n, const char *id, long k)
{
	int64_t t = tern_now_ms();

	for (int i = 1; i <= 3; i++)
		node_xin_tick(n, t + 1500 * i);
	if (!node_xin_active(n, id))
		fail_msg("allocation %ld: the transfer is not running", k);
	for (size_t i = 0; i < n->batch.ndins; i++)
		if (n->batch.dins[i].kind == DIN_REFUSE)
			fail_msg("allocation %ld: refused %s: %s", k, n->batch.dins[i].code,
			         n->batch.dins[i].text);
}
#endif

/* And for a message with an attachment (its declarations matched against
 * its signed seals before it waits for the files): left for later, or kept
 * for its transfer (DIN_XFER), never refused. */
static void test_every_attachment_shortage_not_refused(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	size_t len;
	uint8_t *env = att_envelope(&len, id);
	long k;

	for (k = 1;; k++) {
		node *n = node_as(SWEDEN);
		int failed = deliver_short(n, env, len, k);
		if (n->batch.ndins != 1 || n->batch.dins[0].kind != DIN_XFER)
			fail_msg("allocation %ld failing: %zu deliveries, the first of kind %d: %s",
			         k, n->batch.ndins,
			         n->batch.ndins ? (int)n->batch.dins[0].kind : -1,
			         n->batch.ndins ? n->batch.dins[0].code : "");
		node_batch_reset(n);
		node_free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The commit that keeps such a message and starts its transfer, with each
 * allocation made to fail in turn. Either the commit fails (nothing kept:
 * the broker delivers it again) or the transfer is kept: once memory allows
 * it runs, it is never refused, and a restart finds it again. Before, a
 * shortage while its envelope was verified again refused it cannot-open
 * (review 2's probe), and a record stored with its attachment left out
 * (json_pack, json_array_append_new and json_dumps each dropped something
 * quietly) was read back as damaged after a restart and the transfer lost
 * (review 3's probe). */
static void test_every_transfer_start_shortage_not_refused(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	long k;

	for (k = 1;; k++) {
		char id[37];
		size_t len;
		uint8_t *env = att_envelope(&len, id);
		node *n = node_as(SWEDEN);
		int failed;
		n->connected = 1;
		n->data_dir = dir;
		n->next_spool_sweep = INT64_MAX;
		deliver(n, 1, env, len);
		assert_int_equal(n->batch.ndins, 1);
		assert_int_equal(n->batch.dins[0].kind, DIN_XFER);
		malloc_failed = 0;
		malloc_fail_at = k;
		node_batch_commit(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (xin_stored(id)) {
			xin_runs_unrefused(n, id, k);
		} else if (!failed) {
			fail_msg("allocation %ld: nothing failed, and no transfer kept", k);
		}
		node_batch_reset(n);
		node_xin_free(n);
		node_free(n);
		if (xin_stored(id)) {
			node *m = node_as(SWEDEN); /* a restart finds it again */
			m->data_dir = dir;
			m->next_spool_sweep = INT64_MAX;
			assert_int_equal(node_xin_load(m), TERN_OK);
			if (!node_xin_active(m, id))
				fail_msg("allocation %ld: kept, and not found after a restart", k);
			node_xin_free(m);
			node_free(m);
		}
		free(env);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* Loading a stored transfer (a restart) with each allocation made to fail
 * in turn: the transfer is started a second later (or more), never lost
 * until the next restart, never refused. */
static void test_every_transfer_load_shortage_not_lost(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	size_t len;
	uint8_t *env = att_envelope(&len, id);
	struct xin_put x = {.msgid = id,
	                    .env = env,
	                    .len = len,
	                    .until = tern_now_ms() + 3600000,
	                    .size = 5000,
	                    .chunk = TERN_ATTACH_CHUNK_DEFAULT};
	long k;

	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	for (k = 1;; k++) {
		node *n = node_as(SWEDEN);
		int failed;
		n->data_dir = dir;
		n->next_spool_sweep = INT64_MAX;
		malloc_failed = 0;
		malloc_fail_at = k;
		(void)node_xin_load(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		xin_runs_unrefused(n, id, k);
		node_batch_reset(n);
		node_xin_free(n);
		node_free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 10);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The spool sweep keeps the file of a transfer the store holds and memory
 * does not (yet): before, only one in memory or received and accepted was
 * kept, so a transfer waiting to start lost its spool (the third review's
 * probe). */
static void test_spool_sweep_keeps_waiting_transfer(void **state)
{
	char id[37], path[PATH_MAX];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden, 1, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	struct xin_put x = {.msgid = id,
	                    .env = env,
	                    .len = len,
	                    .until = tern_now_ms() + 3600000,
	                    .size = 5000,
	                    .chunk = TERN_ATTACH_CHUNK_DEFAULT};
	node *n = node_as(SWEDEN);
	FILE *f;

	(void)state;
	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	n->data_dir = dir;
	snprintf(path, sizeof(path), "%s/spool", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in/%s.0", dir, id);
	assert_non_null(f = fopen(path, "w"));
	fputs("chunks", f);
	fclose(f);
	n->xin_reload_at = tern_now_ms() + 60000; /* not loaded: its start put off */
	n->next_spool_sweep = 0;
	node_xin_tick(n, tern_now_ms());
	assert_false(node_xin_active(n, id));
	assert_int_equal(access(path, F_OK), 0);
	node_xin_free(n);
	node_free(n);
	free(env);
}

#if MALLOC_CAN_FAIL
/* msgid's received record: accepted at time 1, acknowledged now. */
static int put_acked_recv(MDB_txn *txn, void *arg)
{
	node_recv_rec r = TERN__V1__RECEIVED_RECORD__INIT;

	r.sender = "unhcr";
	r.type = "case-referral";
	r.case_id = CASE;
	r.received_at = 1;
	r.accepted = 1;
	r.acked = 1;
	r.acked_at = tern_now_ms();
	return node_rec_recv_put(txn, tern_store_dbi(st, NS_RECEIVED), arg, &r);
}
#endif

/* Each allocation of the sweep of received attachments made to fail in turn:
 * the file of a message accepted and not yet acknowledged stays. Before, its
 * record not read for want of memory was taken as no message naming the
 * file, which was removed: the agency's attachment lost. */
static void test_spool_sweep_shortage_keeps_file(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37], path[PATH_MAX];
	node *n = node_as(SWEDEN);
	FILE *f;
	long k;

	assert_int_equal(tern_uuid_v7(id), TERN_OK);
	put_received(id, "unhcr");
	n->data_dir = dir;
	snprintf(path, sizeof(path), "%s/spool", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in/%s.0", dir, id);
	assert_non_null(f = fopen(path, "w"));
	fputs("attachment", f);
	fclose(f);
	for (int acked = 0; acked < 2; acked++) {
		if (acked) {
			/* Acknowledged a moment ago, received long ago: kept for
			 * [delivery] attachment_retain from the acknowledgement.
			 * Before, a shortage that left acked_at out of the record's
			 * JSON counted from the arrival: the file went at once. */
			n->att_retain_ms = 3600 * 1000;
			assert_int_equal(tern_store_write(st, put_acked_recv, id), TERN_OK);
		}
		for (k = 1;; k++) {
			int failed;
			malloc_failed = 0;
			malloc_fail_at = k;
			node_xin_sweep(n, tern_now_ms());
			malloc_fail_at = 0;
			failed = malloc_failed;
			if (access(path, F_OK) != 0)
				fail_msg(
				    "%s, allocation %ld failing: the attachment file was removed",
				    acked ? "acknowledged" : "in the inbox", k);
			if (!failed)
				break;
		}
		print_message("shortage sweep: %ld allocations\n", k - 1);
		assert_true(k > 3);
	}
	node_free(n);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A restart after every chunk of an attachment was counted, before the
 * message was judged: the transfer is complete, and is judged on its merits
 * (accepted). Before, nothing completed it after the restart (the chunks
 * were all in, so none was asked for), and it ended attachment-incomplete at
 * its time (the third review's probe; older than this session's changes). */
/* A referral from unhcr to sweden with one attachment of 5,000 random bytes
 * (one chunk), sealed under a content key of its own: its envelope (*env,
 * *len; the caller frees it), id, the attachment's root and SHA-256 in hex,
 * and the sealed chunk written at slot 0 of spool_path (created). */
static void one_chunk_message(const char *spool_path, uint8_t **env, size_t *len, char id[37],
                              char roothex[65], char shahex[65])
{
	Tern__V1__AttachmentSeal seal = TERN__V1__ATTACHMENT_SEAL__INIT, sealed;
	const Tern__V1__AttachmentSeal *seals[1] = {&seal};
	const tern_msgtype *t = tern_msgtype_by_name("case-referral");
	ProtobufCMessage *msg = NULL;
	uint8_t root[32], ck[32], key[32], sha[32], *body = NULL, plain[5000];
	char *text = NULL, err[256], mine[37], in[PATH_MAX];
	size_t blen;
	json_t *j;
	int fd, infd;

	randombytes_buf(plain, sizeof(plain));
	randombytes_buf(ck, sizeof(ck));
	assert_int_equal(tern_uuid_v7(mine), TERN_OK);
	snprintf(in, sizeof(in), "%s/plain", dir);
	infd = open(in, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(infd >= 0);
	assert_int_equal(write(infd, plain, sizeof(plain)), (ssize_t)sizeof(plain));
	fd = open(spool_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(tern_attach_key(ck, 0, key), TERN_OK);
	tern__v1__attachment_seal__init(&sealed);
	assert_int_equal(tern_attach_seal_fd(infd, sizeof(plain), TERN_ATTACH_CHUNK_DEFAULT, key,
	                                     mine, 0, fd, &sealed, root, sha, NULL),
	                 TERN_OK);
	close(fd);
	close(infd);
	sodium_bin2hex(shahex, 65, sha, 32);
	sodium_bin2hex(roothex, 65, root, 32);
	/* Its message, declaring it. */
	assert_int_equal(tern_example_json("case-referral", &text), TERN_OK);
	j = json_loads(text, 0, NULL);
	free(text);
	json_object_set_new(j, "attachments",
	                    json_pack("[{s:s, s:s, s:s, s:i}]", "name", "scan.pdf", "mediaType",
	                              "application/pdf", "sha256", shahex, "size", 5000));
	assert_int_equal(tern_json_decode(t->desc, j, &msg, err, sizeof(err)), TERN_OK);
	json_decref(j);
	assert_int_equal(tern_pb_pack(msg, &body, &blen), TERN_OK);
	protobuf_c_message_free_unpacked(msg, NULL);
	seal.size = 5000;
	seal.chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
	seal.root = (ProtobufCBinaryData){32, root};
	{
		tern_seal_params p = {.sender = "unhcr",
		                      .sign_key = F.sign[UNHCR],
		                      .recipients = to_sweden,
		                      .n_recipients = 1,
		                      .type = t->type,
		                      .case_id = CASE,
		                      .body = body,
		                      .body_len = blen,
		                      .message_id = mine,
		                      .content_key = ck,
		                      .attachments = seals,
		                      .n_attachments = 1};
		assert_int_equal(tern_envelope_seal(&p, F.dir, env, len, id), TERN_OK);
	}
	free(body);
}

static void test_restart_with_attachment_complete_judged(void **state)
{
	char id[37], shahex[65], roothex[65], path[PATH_MAX];
	uint8_t *env = NULL;
	size_t len;
	node *n;
	int64_t t0;

	(void)state;
	/* The spool as the fetching leaves it: the one chunk, sealed. */
	snprintf(path, sizeof(path), "%s/spool", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/in/unsealed.0", dir);
	one_chunk_message(path, &env, &len, id, roothex, shahex);
	{
		char spooled[PATH_MAX];
		snprintf(spooled, sizeof(spooled), "%s/spool/in/%s.0", dir, id);
		assert_int_equal(rename(path, spooled), 0);
	}
	/* The record as the last chunk's commit leaves it: have = every chunk. */
	{
		struct xin_put r = {.msgid = id,
		                    .env = env,
		                    .len = len,
		                    .until = tern_now_ms() + 600000,
		                    .have = 1,
		                    .size = 5000,
		                    .chunk = TERN_ATTACH_CHUNK_DEFAULT,
		                    .root = roothex,
		                    .sha256 = shahex};
		assert_int_equal(tern_store_write(st, put_xin, &r), TERN_OK);
	}
	n = node_as(SWEDEN); /* the restart */
	n->connected = 1;
	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(node_xin_load(n), TERN_OK);
	node_xin_session(n);
	t0 = tern_now_ms();
	for (int i = 0; i < 5 && n->batch.ndins == 0; i++)
		node_xin_tick(n, t0 + 2000 * i);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_reset(n);
	node_xin_free(n);
	node_free(n);
	free(env);
}

/* The store's record of transfer id, decoded (either form); *json: whether
 * it is stored as the JSON object an older release wrote. */
static node_xin_pb *xin_record_of(const char *id, int *json)
{
	node_xin_pb *rec = NULL;
	MDB_txn *txn;
	MDB_val k = {strlen(id), (void *)id}, v;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_get(txn, tern_store_dbi(st, NS_XIN), &k, &v), 0);
	*json = v.mv_size > 0 && ((const char *)v.mv_data)[0] == '{';
	assert_int_equal(node_xin_record_decode(v.mv_data, v.mv_size, &rec), TERN_OK);
	mdb_txn_abort(txn);
	return rec;
}

/* A transfer an older release recorded as JSON, fetched by this one: the
 * commit that counts its chunk (have_apply) writes the record back as
 * protobuf, with every field the JSON object held and the new count, and a
 * restart reads it so. */
static void test_old_json_transfer_rewritten_as_protobuf(void **state)
{
	char id[37], shahex[65], roothex[65], path[PATH_MAX];
	uint8_t *env = NULL, *sealed = malloc(TERN_ATTACH_CHUNK_DEFAULT + TERN_ATTACH_TAG_LEN);
	size_t len,
	    clen = tern_attach_chunk_len(5000, TERN_ATTACH_CHUNK_DEFAULT, 0) + TERN_ATTACH_TAG_LEN;
	int64_t until = tern_now_ms() + 600000, t0;
	node_xin_pb *rec;
	int json, fd;
	node *n;

	(void)state;
	assert_non_null(sealed);
	snprintf(path, sizeof(path), "%s/sealed", dir);
	one_chunk_message(path, &env, &len, id, roothex, shahex);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(
	    pread(fd, sealed, clen, (off_t)tern_attach_slot(TERN_ATTACH_CHUNK_DEFAULT, 0)),
	    (ssize_t)clen);
	close(fd);
	{
		struct xin_put r = {.msgid = id,
		                    .env = env,
		                    .len = len,
		                    .until = until,
		                    .size = 5000,
		                    .chunk = TERN_ATTACH_CHUNK_DEFAULT,
		                    .root = roothex,
		                    .sha256 = shahex};
		assert_int_equal(tern_store_write(st, put_xin, &r), TERN_OK);
	}
	rec = xin_record_of(id, &json);
	assert_true(json); /* as an older release left it */
	assert_int_equal(rec->have, 0);
	protobuf_c_message_free_unpacked(&rec->base, NULL);

	n = node_as(SWEDEN);
	n->connected = 1;
	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(tern_syncer_new(&n->xsync), TERN_OK);
	assert_int_equal(node_xin_load(n), TERN_OK);
	node_xin_session(n); /* chunk 0 asked for */
	{
		/* As the broker sends it, decoded as the loop decodes frames. */
		Tern__V1__Frame f = TERN__V1__FRAME__INIT, *fr = NULL;
		Tern__V1__Chunk c = TERN__V1__CHUNK__INIT;
		uint8_t *buf = NULL;
		size_t blen;
		c.message_id = id;
		c.data = (ProtobufCBinaryData){clen, sealed};
		f.body_case = TERN__V1__FRAME__BODY_CHUNK;
		f.chunk = &c;
		assert_int_equal(tern_pb_pack(&f.base, &buf, &blen), TERN_OK);
		assert_int_equal(tern_pb_unpack(&tern__v1__frame__descriptor, buf, blen, blen,
		                                (ProtobufCMessage **)&fr),
		                 TERN_OK);
		free(buf);
		node_xin_on_chunk(n, &fr);
		assert_null(fr); /* taken: on the opening thread */
	}
	/* The loop's part: the opened chunk back, synced, then counted. */
	t0 = tern_now_ms();
	for (;;) {
		struct pollfd pfd = {.fd = node_xopen_fd(n), .events = POLLIN};
		if (pfd.fd >= 0 && poll(&pfd, 1, 10) > 0)
			node_xopen_done(n);
		node_xin_flush(n);
		rec = xin_record_of(id, &json);
		if (rec->have == 1)
			break;
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		if (tern_now_ms() - t0 > 10000)
			fail_msg("the chunk was not counted within 10 s");
		usleep(2000);
	}
	assert_false(json); /* written back as protobuf */
	assert_string_equal(rec->sender, "unhcr");
	assert_string_equal(rec->case_id, CASE);
	assert_string_equal(rec->type, "case-referral");
	assert_int_equal(rec->until, until);
	assert_int_equal(rec->att, 0);
	assert_int_equal(rec->n_atts, 1);
	assert_int_equal(rec->atts[0]->size, 5000);
	assert_int_equal(rec->atts[0]->chunk_size, TERN_ATTACH_CHUNK_DEFAULT);
	{
		char hex[65];
		assert_int_equal(rec->atts[0]->root.len, 32);
		sodium_bin2hex(hex, sizeof(hex), rec->atts[0]->root.data, 32);
		assert_string_equal(hex, roothex);
		assert_int_equal(rec->atts[0]->sha256.len, 32);
		sodium_bin2hex(hex, sizeof(hex), rec->atts[0]->sha256.data, 32);
		assert_string_equal(hex, shahex);
	}
	protobuf_c_message_free_unpacked(&rec->base, NULL);
	/* Complete: judged on its merits, accepted. */
	for (int i = 0; i < 5 && n->batch.ndins == 0; i++)
		node_xin_tick(n, t0 + 2000 * i);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_reset(n);
	node_xopen_stop(n); /* before node_xin_free, as the node does */
	node_xin_free(n);
	node_free(n);
	free(env);
	free(sealed);
}

/* Attack (this session's review): a member seals a referral whose body
 * decodes to more than its budget (200,000 empty linkedCases: 400 KB that
 * would take megabytes decoded). That is the body's fault: it is refused
 * (invalid-body, a negative receipt) and taken, and what comes after it is
 * delivered. Taken for a lack of memory, the node would ask for it again for
 * ever and its queue would stay blocked behind it. */
static void test_body_over_budget_refused(void **state)
{
	size_t blen, n, len, len2, pad = 200000;
	uint8_t *body = body_of("case-referral", &blen, NULL), *big = malloc(blen + 2 * pad), *env,
	        *env2;
	char id[37], id2[37];
	node *nd = node_as(SWEDEN);

	(void)state;
	assert_non_null(big);
	memcpy(big, body, blen);
	n = blen;
	for (size_t i = 0; i < pad; i++) {
		big[n++] = 0x52; /* field 10 (linked_cases), length-delimited */
		big[n++] = 0x00; /* empty */
	}
	env = seal(UNHCR, to_sweden, 1, "case-referral", CASE, big, n, &len, id);
	env2 = message(UNHCR, to_sweden, 1, "case-referral", &len2, id2, NULL, NULL, NULL, NULL);
	nd->connected = 1;
	deliver(nd, 1, env, len);
	deliver(nd, 2, env2, len2);
	assert_false(nd->deliver_stopped);
	assert_int_equal(nd->batch.ndins, 2);
	assert_int_equal(nd->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(nd->batch.dins[0].code, tern_reason_code(TERN_REASON_INVALID_BODY));
	/* by the decoder's budget, not by a rule the body broke */
	assert_non_null(strstr(nd->batch.dins[0].text, "does not decode"));
	assert_int_equal(nd->batch.dins[1].kind, DIN_ACCEPT);
	assert_int_equal(nd->batch.nouts, 2); /* a receipt for each, the first negative */
	node_batch_commit(nd);
	assert_int_equal(nd->delivered, 2);
	node_free(nd);
	free(env);
	free(env2);
	free(big);
	free(body);
}

/* A held message whose release runs out of memory while judged is not
 * refused: it stays held and is released at a later tick. */
static void test_held_release_judge_oom(void **state)
{
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);
	int64_t t0;

	(void)state;
	held_then_cited(n, &denv, &tenv);
	t0 = tern_now_ms();
	judge_oom = 1;
	node_held_tick(n, t0);
	judge_oom = 0;
	assert_int_equal(n->batch.ndins, 0); /* not refused, not taken */
	assert_int_equal(n->batch.nouts, 0);
	assert_int_equal(node_held_count(n), 1);
	node_held_tick(n, t0 + 5000);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	free(denv);
	free(tenv);
	node_free(n);
}

/* A held message whose release always runs out of memory must not hold back
 * the releases behind it for ever (each round stops at it): after
 * TERN_NOMEM_TRIES releases not taken, over TERN_NOMEM_SPAN_MS at least, the
 * next is refused no-memory, with its negative receipt, as a delivery is. */
static void test_held_release_oom_every_time_refused(void **state)
{
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);
	int64_t t;

	(void)state;
	held_then_cited(n, &denv, &tenv);
	t = tern_now_ms();
	for (int i = 0; i < TERN_NOMEM_TRIES + 1; i++) {
		judge_oom = 1;
		node_held_tick(n, t);
		judge_oom = 0;
		assert_int_equal(n->batch.ndins, 0); /* within the span: put off again */
		assert_int_equal(node_held_count(n), 1);
		t += 1100; /* past the second's wait, within the span */
	}
	t += TERN_NOMEM_SPAN_MS; /* the ticks' clock: the span has passed */
	judge_oom = 1;
	node_held_tick(n, t);
	judge_oom = 0;
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_errcode_name(TERN_ENOMEM));
	assert_int_equal(n->batch.nouts, 1); /* its negative receipt */
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	free(denv);
	free(tenv);
	node_free(n);
}

/* A finished transfer whose judging always runs out of memory: put off
 * TERN_NOMEM_TRIES times over TERN_NOMEM_SPAN_MS, then refused no-memory with
 * its negative receipt, not retried every second for ever. */
static void test_transfer_judge_oom_every_time_refused(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	struct xin_put x = {.msgid = id, .env = env, .len = len};
	node *n = node_as(SWEDEN);
	int64_t t = tern_now_ms();

	(void)state;
	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	assert_int_equal(node_xin_load(n), TERN_OK);
	for (int i = 0; i < TERN_NOMEM_TRIES + 1; i++) {
		judge_oom = 1;
		node_xin_tick(n, t);
		judge_oom = 0;
		assert_int_equal(n->batch.ndins, 0); /* put off */
		assert_true(node_xin_active(n, id));
		t += 1100; /* past the second's wait, within the span */
	}
	t += TERN_NOMEM_SPAN_MS; /* the ticks' clock: the span has passed */
	judge_oom = 1;
	node_xin_tick(n, t);
	judge_oom = 0;
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_errcode_name(TERN_ENOMEM));
	assert_int_equal(n->batch.nouts, 1); /* its negative receipt */
	node_batch_commit(n);
	assert_false(node_xin_active(n, id));
	node_xin_free(n);
	node_free(n);
	free(env);
}

/* The batch's delivery of msgid, which must be there. */
static const struct din *din_of(const node *n, const char *msgid)
{
	for (size_t i = 0; i < n->batch.ndins; i++)
		if (strcmp(n->batch.dins[i].msgid, msgid) == 0)
			return &n->batch.dins[i];
	fail_msg("%s is not in the batch", msgid);
	return NULL;
}

/* A transfer that a lasting shortage of the recipient's kept from starting
 * (its content key not unwrapped, each second) until its message expired
 * ends no-memory, in words that say so: the recipient's fault, not its
 * sender's. Before, it ended attachment-incomplete ("its attachments did not
 * all arrive"), which tells the sender its files never came. A transfer
 * whose chunks just did not come, beside it, still ends
 * attachment-incomplete. */
static void test_transfer_start_shortage_ends_no_memory(void **state)
{
	char id[37], id2[37];
	size_t len, len2;
	uint8_t *env = att_envelope(&len, id), *env2 = att_envelope(&len2, id2);
	int64_t t = tern_now_ms(), until = t + 8000;
	struct xin_put x = {.msgid = id,
	                    .env = env,
	                    .len = len,
	                    .until = until,
	                    .size = 5000,
	                    .chunk = TERN_ATTACH_CHUNK_DEFAULT},
	               x2 = x;
	node *n = node_as(SWEDEN);
	const struct din *d;

	(void)state;
	x2.msgid = id2;
	x2.env = env2;
	x2.len = len2;
	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	key_oom = 1;
	assert_int_equal(node_xin_load(n), TERN_OK); /* id: not started */
	key_oom = 0;
	assert_int_equal(tern_store_write(st, put_xin, &x2), TERN_OK);
	assert_int_equal(node_xin_load(n), TERN_OK); /* id2: started */
	key_oom = 1;
	for (t += 1100; t < until; t += 1100) {
		node_xin_tick(n, t);
		assert_int_equal(n->batch.ndins, 0); /* put off, each second */
	}
	node_xin_tick(n, until);
	key_oom = 0;
	assert_int_equal(n->batch.ndins, 2);
	d = din_of(n, id);
	assert_int_equal(d->kind, DIN_REFUSE);
	assert_string_equal(d->code, tern_errcode_name(TERN_ENOMEM));
	assert_non_null(strstr(d->text, "short of memory"));
	assert_non_null(strstr(d->text, "start receiving"));
	d = din_of(n, id2);
	assert_int_equal(d->kind, DIN_REFUSE);
	assert_string_equal(d->code, tern_reason_code(TERN_REASON_ATTACHMENT_INCOMPLETE));
	assert_int_equal(n->batch.nouts, 2); /* a negative receipt each */
	node_batch_commit(n);
	assert_false(node_xin_active(n, id));
	assert_false(node_xin_active(n, id2));
	node_xin_free(n);
	node_free(n);
	free(env);
	free(env2);
}

#if MALLOC_CAN_FAIL
/* sweden, connected, with one transfer in (id, its envelope *env, expiring
 * at until) loaded and its first chunks asked for. */
static node *xin_fetching(char id[37], uint8_t **env, int64_t until)
{
	size_t len;
	node *n = node_as(SWEDEN);
	struct xin_put x = {
	    .msgid = id, .until = until, .size = 5000, .chunk = TERN_ATTACH_CHUNK_DEFAULT};

	*env = att_envelope(&len, id);
	x.env = *env;
	x.len = len;
	n->connected = 1;
	n->att_window = 4; /* chunks asked for at a time ([limits] attachment_window) */
	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	assert_int_equal(node_xin_load(n), TERN_OK);
	node_xin_session(n); /* the first chunks asked for */
	return n;
}

/* A transfer (its message expiring at until) loaded at sweden, whose first
 * chunk comes and is dropped for want of memory TERN_NOMEM_TRIES times, each
 * time it is asked for again after the silence; *t moves with the ticks. */
static node *chunks_dropped(char id[37], uint8_t **env, int64_t *t, int64_t until)
{
	node *n = xin_fetching(id, env, until);

	for (int i = 0; i < TERN_NOMEM_TRIES; i++) {
		Tern__V1__Frame fr = TERN__V1__FRAME__INIT, *fp = &fr;
		Tern__V1__Chunk c = TERN__V1__CHUNK__INIT;
		c.message_id = id;
		fr.body_case = TERN__V1__FRAME__BODY_CHUNK;
		fr.chunk = &c;
		malloc_failed = 0;
		malloc_fail_at = 1;
		node_xin_on_chunk(n, &fp); /* chunk 0 comes: no memory to take it */
		malloc_fail_at = 0;
		assert_true(malloc_failed);
		assert_ptr_equal(fp, &fr); /* not taken */
		*t += 11000;               /* the silence: asked for again */
		node_xin_tick(n, *t);
		assert_int_equal(n->batch.ndins, 0);
	}
	return n;
}

/* The transfer's end: it expired at until, and was judged refused code
 * (no-memory: its text saying it could not do what). */
static void transfer_ends(node *n, const char *id, int64_t until, const char *code,
                          const char *what)
{
	const struct din *d;

	node_xin_tick(n, until);
	assert_int_equal(n->batch.ndins, 1);
	d = din_of(n, id);
	assert_int_equal(d->kind, DIN_REFUSE);
	assert_string_equal(d->code, code);
	if (strcmp(code, tern_errcode_name(TERN_ENOMEM)) == 0)
		assert_non_null(strstr(d->text, what));
	node_batch_commit(n);
	node_xin_free(n);
	node_free(n);
}
#endif

/* The same for a transfer whose chunks come and are dropped for want of
 * memory, each time they are asked for again, until its message expires: it
 * ends no-memory, not attachment-incomplete. */
static void test_transfer_chunk_shortage_ends_no_memory(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	uint8_t *env;
	int64_t t = tern_now_ms(), until = t + 45000;
	node *n = chunks_dropped(id, &env, &t, until);

	transfer_ends(n, id, until, tern_errcode_name(TERN_ENOMEM), "take the chunks");
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The same for a transfer whose chunk requests cannot be made (no memory to
 * make the frame), each time they are asked for again, until its message
 * expires: it ends no-memory. Before, a request not made was taken for one
 * sent, and the chunks that never came were the sender's fault:
 * attachment-incomplete. */
static void test_transfer_request_shortage_ends_no_memory(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	uint8_t *env;
	int64_t t = tern_now_ms(), until = t + 45000;
	node *n = xin_fetching(id, &env, until); /* none come */

	for (int i = 0; i < TERN_NOMEM_TRIES; i++) {
		t += 11000; /* the silence: asked for again, with no memory to */
		malloc_fails = 1;
		node_xin_tick(n, t);
		malloc_fails = 0;
		assert_int_equal(n->batch.ndins, 0);
	}
	transfer_ends(n, id, until, tern_errcode_name(TERN_ENOMEM),
	              "ask the broker for the chunks");
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A shortage that dropped a transfer's chunks, then ended, with the chunks
 * never coming after (the sender gone): what is missing is the sender's,
 * so the transfer ends attachment-incomplete, not no-memory. Before, the
 * shortage counted since the last progress made it no-memory, and every
 * silence after the chunks were asked for again counted as one more. */
static void test_transfer_old_shortage_ends_incomplete(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	uint8_t *env;
	int64_t t = tern_now_ms(), until = t + 200000;
	node *n = chunks_dropped(id, &env, &t, until);

	/* The shortage over; the chunks never come again, silence after
	 * silence, until the message expires. */
	for (int i = 0; i < 10; i++) {
		t += 11000;
		node_xin_tick(n, t);
		assert_int_equal(n->batch.ndins, 0);
	}
	transfer_ends(n, id, until, tern_reason_code(TERN_REASON_ATTACHMENT_INCOMPLETE), NULL);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A transfer whose chunks are asked for again and again and never come
 * (the sender's), loaded at t; a moment's shortage (a few
 * milliseconds) ten seconds before its message expires, after which the
 * chunks are asked for again and still never come. The shortage held
 * nothing back: the transfer must end attachment-incomplete. */
#if MALLOC_CAN_FAIL
static node *chunks_never_come(char id[37], uint8_t **env, int64_t *t, int64_t until)
{
	node *n = xin_fetching(id, env, until); /* none ever come */

	for (*t += 11000; *t < until - 10000; *t += 11000) {
		node_xin_tick(n, *t); /* the silence: asked for again */
		assert_int_equal(n->batch.ndins, 0);
	}
	return n;
}
#endif

/* The moment's shortage is three frames of one batch from the broker that
 * could not be decoded (node_on_dealer / node_on_bulk call node_xin_short
 * once for each), all at the same millisecond. */
static void test_transfer_instant_frame_shortage_ends_incomplete(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	uint8_t *env;
	int64_t t = tern_now_ms(), until = t + 100000, t0;
	node *n = chunks_never_come(id, &env, &t, until);

	t0 = until - 10000;
	for (int i = 0; i < 3; i++)
		node_xin_short(n, t0);
	node_xin_tick(n, t0 + 1); /* memory again: asked for again */
	assert_int_equal(n->batch.ndins, 0);
	transfer_ends(n, id, until, tern_reason_code(TERN_REASON_ATTACHMENT_INCOMPLETE), NULL);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The same with the moment's shortage as three chunk requests that could
 * not be made, on three ticks of the node's loop two milliseconds apart (the
 * loop ticks at every event: many times a second on a busy node). */
static void test_transfer_instant_request_shortage_ends_incomplete(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	uint8_t *env;
	int64_t t = tern_now_ms(), until = t + 100000, t0;
	node *n = chunks_never_come(id, &env, &t, until);

	t0 = until - 10000;
	for (int i = 0; i < 3; i++) {
		malloc_fails = 1;
		node_xin_tick(n, t0 + i); /* the silence: asked for again, no memory to */
		malloc_fails = 0;
		assert_int_equal(n->batch.ndins, 0);
	}
	node_xin_tick(n, t0 + 3); /* memory again: asked for; the chunks never come */
	assert_int_equal(n->batch.ndins, 0);
	transfer_ends(n, id, until, tern_reason_code(TERN_REASON_ATTACHMENT_INCOMPLETE), NULL);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* node.info's "transfers" (node_xin_status) under each shortage:
 * every transfer under way, or none (node.info then answers no-memory).
 * A transfer left out would be taken for one not under way. */
static void test_every_xin_status_shortage_whole(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[2][37];
	uint8_t *env[2];
	node *n = node_as(SWEDEN);
	long k;

	n->data_dir = dir;
	n->next_spool_sweep = INT64_MAX;
	for (int i = 0; i < 2; i++) {
		size_t len;
		struct xin_put x = {.msgid = id[i],
		                    .until = tern_now_ms() + 100000,
		                    .size = 5000,
		                    .chunk = TERN_ATTACH_CHUNK_DEFAULT};
		env[i] = att_envelope(&len, id[i]);
		x.env = env[i];
		x.len = len;
		assert_int_equal(tern_store_write(st, put_xin, &x), TERN_OK);
	}
	assert_int_equal(node_xin_load(n), TERN_OK);
	assert_true(node_xin_active(n, id[0]) && node_xin_active(n, id[1]));
	for (k = 1;; k++) {
		json_t *v;
		int failed;
		malloc_failed = 0;
		malloc_fail_at = k;
		v = node_xin_status(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (v != NULL && json_array_size(v) != 2)
			fail_msg("allocation %ld failing: %zu of the 2 transfers under way", k,
			         json_array_size(v));
		json_decref(v);
		if (!failed)
			break;
	}
	assert_true(k > 2);
	node_xin_free(n);
	node_free(n);
	free(env[0]);
	free(env[1]);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The held deliveries loaded at start under each shortage: all of them,
 * or the start fails (and says to start again). Before, a record not read
 * for want of memory was passed over as damaged, and that delivery was
 * neither released nor refused until the next start. */
static void test_every_held_load_shortage_all(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char ref[37], id[37];
	size_t len;
	uint8_t *env;
	node *n = node_as(UNHCR);
	long k;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(tern_uuid_v7(ref), TERN_OK);
		env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &len, id, "decisionId",
		              ref, NULL, NULL);
		n->connected = 1;
		deliver(n, (uint64_t)i + 1, env, len);
		assert_int_equal(n->batch.dins[n->batch.ndins - 1].kind, DIN_HOLD);
		free(env);
	}
	node_batch_commit(n);
	node_free(n);
	for (k = 1;; k++) {
		int rc, failed;
		n = calloc(1, sizeof(*n));
		assert_non_null(n);
		n->store = st;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_held_load(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK &&
		    (json_object_size(n->held) != 2 || json_array_size(n->held_due) != 2))
			fail_msg("allocation %ld failing: %zu held loaded, of 2", k,
			         json_object_size(n->held));
		if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		node_held_free(n);
		free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 10);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The held deliveries loaded under each shortage when their
 * records are the JSON an earlier release wrote: all of them, or
 * TERN_ENOMEM; never one passed over as damaged. */
static void test_every_old_held_load_shortage_all(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	static const char *ids[2] = {"01a20598-0000-7000-8000-0000000000c1",
	                             "01a20598-0000-7000-8000-0000000000c2"};
	char old[512];
	node *n;
	long k;

	for (int i = 0; i < 2; i++) {
		snprintf(old, sizeof(old),
		         "{\"ref\":\"01a20598-0000-7000-8000-0000000000d%d\",\"until\":%lld,"
		         "\"sender\":\"iom\",\"case_id\":\"C-7\",\"type\":\"travel-confirmation\","
		         "\"len\":%d}",
		         i, (long long)tern_now_ms() + 3600000, 100 + i);
		raw_put(NS_HELD, ids[i], (const uint8_t *)old, strlen(old));
	}
	for (k = 1;; k++) {
		int rc, failed;
		n = calloc(1, sizeof(*n));
		assert_non_null(n);
		n->store = st;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_held_load(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK &&
		    (json_object_size(n->held) != 2 || json_array_size(n->held_due) != 2))
			fail_msg("allocation %ld failing: %zu held loaded, of 2", k,
			         json_object_size(n->held));
		if (rc == TERN_OK && json_integer_value(json_object_get(
		                         json_object_get(n->held, ids[1]), "len")) != 101)
			fail_msg("allocation %ld failing: read as another", k);
		if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		node_held_free(n);
		free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 10);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The outgoing transfers loaded at start under each shortage: all of them,
 * or the start fails. Before, a record not read for want of memory was
 * passed over as damaged (and one that could not be added was dropped):
 * its attachments did not go until the next start. */
static void test_every_xout_load_shortage_all(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	static const char rec[] =
	    "{\"atts\":[{\"size\":5000,\"chunk_size\":65536,\"root\":"
	    "\"abababababababababababababababababababababababababababababababab\"}],"
	    "\"done\":false}";
	long k;

	raw_put(NS_XOUT, "01a20598-0000-7000-8000-0000000000a1", (const uint8_t *)rec,
	        sizeof(rec) - 1);
	raw_put(NS_XOUT, "01a20598-0000-7000-8000-0000000000a2", (const uint8_t *)rec,
	        sizeof(rec) - 1);
	for (k = 1;; k++) {
		int rc, failed;
		node *n = calloc(1, sizeof(*n));
		assert_non_null(n);
		n->store = st;
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_xout_load(n);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (rc == TERN_OK && n->nxouts != 2)
			fail_msg("allocation %ld failing: %zu transfers loaded, of 2", k,
			         n->nxouts);
		if (rc != TERN_OK && (rc != TERN_ENOMEM || !failed))
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		node_xout_free(n);
		free(n);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 5);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* The sweep of expired uploads under each shortage: an upload that has not
 * expired stays. Before, a record not read for want of memory read as
 * expired at 0, and the upload went, with its file. */
static void test_every_upload_sweep_shortage_keeps(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	static const char id[] = "01a20598-0000-7000-8000-0000000000b1";
	char rec[128], path[256];
	uint8_t pb[32];
	Tern__V1__UploadRecord r = TERN__V1__UPLOAD_RECORD__INIT;
	node *n = node_as(SWEDEN);
	long swept = 0;

	n->data_dir = dir;
	snprintf(path, sizeof(path), "%s/uploads", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/uploads/%s", dir, id);
	/* The record as an earlier release wrote it (JSON), then as now. */
	snprintf(rec, sizeof(rec), "{\"expires\":%lld,\"size\":10,\"have\":0}",
	         (long long)tern_now_ms() + 3600000);
	r.size = 10;
	r.expires = tern_now_ms() + 3600000;
	for (int form = 0; form < 2; form++) {
		long k;
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
		if (form == 0)
			raw_put(NS_UPLOADS, id, (const uint8_t *)rec, strlen(rec));
		else
			raw_put(NS_UPLOADS, id, pb, protobuf_c_message_pack(&r.base, pb));
		for (k = 1;; k++) {
			MDB_txn *txn;
			MDB_val key = {36, (void *)id}, v;
			int failed, kept;
			malloc_failed = 0;
			malloc_fail_at = k;
			node_upload_sweep(n, tern_now_ms());
			malloc_fail_at = 0;
			failed = malloc_failed;
			assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
			kept = mdb_get(txn, tern_store_dbi(st, NS_UPLOADS), &key, &v) == 0;
			mdb_txn_abort(txn);
			if (!kept)
				fail_msg("form %d, allocation %ld failing: the upload was dropped",
				         form, k);
			/* Its file too: a record not read now names it still. */
			if (access(path, F_OK) != 0)
				fail_msg("form %d, allocation %ld failing: the upload's file was "
				         "removed",
				         form, k);
			if (!failed)
				break;
		}
		swept += k - 1;
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 4);
	node_free(n);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* upload.info and upload.append of an upload under way, each allocation
 * made to fail in turn: the upload's state, or a no-memory error; never "no
 * upload", which tells a client to start again. Before, a record not read
 * for want of memory was answered as none. */
static void test_every_upload_read_shortage_not_gone(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char path[256];
	node *n = node_as(SWEDEN);
	json_t *req = json_pack("{s:I}", "size", (json_int_t)10), *res;
	const char *id;
	long swept = 0;

	n->data_dir = dir;
	n->att_max = 1 << 20;
	res = node_upload_op(n, "upload.create", req);
	json_decref(req);
	assert_true(json_is_true(json_object_get(res, "ok")));
	id = json_string_value(json_object_get(res, "upload_id"));
	assert_non_null(id);
	snprintf(path, sizeof(path), "%s", id);
	json_decref(res);
	/* upload.info, then upload.append until one has taken the byte (the
	 * next would be at another offset). */
	for (int op = 0; op < 2; op++) {
		long k;
		int done = 0, lost = 0;
		for (k = 1; !done; k++) {
			int failed;
			const char *err;
			json_t *q = json_pack("{s:s, s:I, s:s}", "upload_id", path, "offset",
			                      (json_int_t)0, "data", "QQ==");
			assert_non_null(q);
			malloc_failed = 0;
			malloc_fail_at = k;
			res = op ? node_upload_op(n, "upload.append", q)
			         : node_upload_op(n, "upload.info", q);
			malloc_fail_at = 0;
			failed = malloc_failed;
			json_decref(q);
			err = json_string_value(json_object_get(res, "error"));
			/* An append whose answer was lost (NULL: the API says
			 * no-memory) may have taken the byte: the next is then a
			 * conflict naming offset 1, as tus has it. */
			if (lost && err && strcmp(err, "conflict") == 0 &&
			    json_integer_value(json_object_get(res, "offset")) == 1) {
				json_decref(res);
				break;
			}
			if (res != NULL && !json_is_true(json_object_get(res, "ok")) &&
			    (err == NULL || strcmp(err, tern_errcode_name(TERN_ENOMEM)) != 0))
				fail_msg("op %d, allocation %ld failing: answered %s", op, k,
				         err ? err : "(no error)");
			done = !failed || (op == 1 && json_is_true(json_object_get(res, "ok")));
			lost = op == 1 && res == NULL;
			json_decref(res);
		}
		swept += k - 1;
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 4);
	node_free(n);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A delivery whose receipt cannot be made (out of memory) is not taken:
 * acknowledged, its sender would never have a receipt. Before, it was
 * accepted and acknowledged with no receipt owed. Now the node stops taking
 * deliveries and asks for it again (Hello), and takes it with its receipt. */
static void test_no_receipt_not_taken(void **state)
{
	(void)state;
	oom_not_refused(&receipt_oom);
}

/* Delivers env to n as seq while who stands revoked in the directory. */
static void deliver_revoked(node *n, const char *who, uint64_t seq, const uint8_t *env, size_t len)
{
	tern_member *m;

	assert_int_equal(tern_directory_find(F.dir, who, (const tern_member **)&m), TERN_OK);
	m->revoked = 1;
	deliver(n, seq, env, len);
	m->revoked = 0;
}

/* A receipt that can never be sealed (its sender was revoked since it sent
 * the message) does not hold the delivery back: the message is judged,
 * taken and acknowledged without one, as the log says. Waiting for memory
 * is for a lack of memory only; waiting here would block every delivery
 * behind this one until it expired. */
static void test_unsealable_receipt_taken(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);

	(void)state;
	deliver_revoked(n, "unhcr", 1, env, len);
	assert_false(n->deliver_stopped);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_int_equal(n->batch.nouts, 0); /* no receipt: it cannot be sealed */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 1);
	node_free(n);
	free(env);
}

/* A receipt this node cannot seal for a fault of its own (here: its own
 * entry revoked in its directory, reloaded before the broker's) holds the
 * delivery back, and the node asks for it again a second later, not at once:
 * taken without a receipt, and acknowledged, its sender would never hear of
 * it, not even by the broker's dead letter once the broker bars this node. */
static void test_own_fault_holds_delivery(void **state)
{
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	int64_t t0 = tern_now_ms();

	(void)state;
	n->connected = 1;
	deliver_revoked(n, "sweden", 1, env, len);
	assert_true(n->deliver_stopped);
	assert_int_equal(n->batch.ndins, 0);
	assert_int_equal(n->batch.nouts, 0);
	assert_true(n->connected); /* no Hello at once */
	assert_true(n->hello_due >= t0 + 1000);
	node_batch_commit(n);
	assert_int_equal(n->delivered, 0);
	node_deliver_resume(n); /* reinstated; the broker delivers it again */
	deliver(n, 1, env, len);
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.nouts, 1); /* with its receipt */
	node_batch_commit(n);
	assert_int_equal(n->delivered, 1);
	node_free(n);
	free(env);
}

/* Held messages due when this node cannot make receipts (its own entry
 * revoked in its directory): the first one's failure stops the round, and
 * the rest wait with it for the next one, a second later. Before, each was
 * judged and failed in turn: with thousands held, thousands of failed
 * receipts and log lines a second. Reinstated, all three are taken. */
static void test_held_round_stops_on_own_fault(void **state)
{
	char ref[3][37], dec[3][37], t[3][37];
	uint8_t *denv[3], *tenv[3];
	size_t dlen[3], tlen[3];
	node *n = node_as(UNHCR);
	tern_member *m;
	int64_t t0;

	(void)state;
	for (int i = 0; i < 3; i++) {
		held_pair(ref[i], dec[i], t[i], &denv[i], &dlen[i], &tenv[i], &tlen[i]);
		deliver(n, (uint64_t)(1 + i), tenv[i], tlen[i]);
	}
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 3);
	for (int i = 0; i < 3; i++)
		deliver(n, (uint64_t)(4 + i), denv[i], dlen[i]);
	node_batch_commit(n);
	assert_int_equal(tern_directory_find(F.dir, "unhcr", (const tern_member **)&m), TERN_OK);
	m->revoked = 1;
	receipt_packs = 0;
	t0 = tern_now_ms();
	node_held_tick(n, t0);
	m->revoked = 0;
	assert_int_equal(receipt_packs, 1); /* one tried, not three */
	assert_int_equal(n->batch.ndins, 0);
	assert_int_equal(json_array_size(n->held_due), 3);
	node_held_tick(n, t0 + 5000);
	assert_int_equal(n->batch.ndins, 3);
	assert_int_equal(n->batch.nouts, 3);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	for (int i = 0; i < 3; i++) {
		free(denv[i]);
		free(tenv[i]);
	}
	node_free(n);
}

/* A send the batch has no room for is refused, and leaves no workflow
 * record behind: before, the record was kept first and written by the next
 * commit, a case state no message ever made. */
static void test_refused_send_keeps_no_record(void **state)
{
	const tern_msgtype *t = tern_msgtype_by_name("case-referral");
	static const char *rcpts[] = {"sweden", "iom"};
	struct node_send s;
	ProtobufCMessage *body;
	node *n = node_as(UNHCR);
	json_t *res;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.t = t;
	s.rcpts = (char **)rcpts;
	s.np = 2;
	s.client = -1;
	s.body = body_of("case-referral", &s.blen, "caseId", CASE, NULL);
	body = protobuf_c_message_unpack(t->desc, NULL, s.blen, s.body);
	assert_non_null(body);
	out_oom = 1;
	res = node_send_finish(n, &s, body, NULL);
	out_oom = 0;
	assert_non_null(res); /* refused */
	json_decref(res);
	assert_int_equal(n->batch.nouts, 0);
	assert_int_equal(tern_wf_records_count(n->batch.wf), 0);
	/* And with room, the same send keeps its record. */
	res = node_send_finish(n, &s, body, NULL);
	assert_null(res);
	assert_int_equal(n->batch.nouts, 1);
	assert_true(tern_wf_records_count(n->batch.wf) > 0);
	node_batch_reset(n);
	protobuf_c_message_free_unpacked(body, NULL);
	free(s.body);
	node_free(n);
}

/* Attack (issue 15 review): the per-sender cap on held messages counted only
 * what earlier commits held, so one batch (up to [delivery] credit
 * deliveries, 256 by default, 65,536 at most) from one sender could hold past
 * it. And a node that starts with a sender at its cap must not refuse that
 * sender's held messages when it judges them again (they are counted
 * already). */
static void test_held_cap_within_a_batch(void **state)
{
	static const char *const to_unhcr[] = {"unhcr"};
	char id[37], never[37];
	size_t len, holds = 0, refusals = 0;
	uint8_t *env;
	node *n = node_as(UNHCR);

	(void)state;
	for (size_t i = 0; i < NODE_HELD_PER_SENDER + 1; i++) {
		assert_int_equal(tern_uuid_v7(never), TERN_OK);
		env = message(IOM, to_unhcr, 1, "travel-confirmation", &len, id, "decisionId",
		              never, NULL, NULL);
		deliver(n, i + 1, env, len);
		free(env);
	}
	for (size_t i = 0; i < n->batch.ndins; i++) {
		holds += n->batch.dins[i].kind == DIN_HOLD;
		refusals += n->batch.dins[i].kind == DIN_REFUSE;
	}
	assert_int_equal(holds, NODE_HELD_PER_SENDER);
	assert_int_equal(refusals, 1);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), NODE_HELD_PER_SENDER);
	node_free(n); /* and started again */
	n = node_as(UNHCR);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 0); /* still held, none refused */
	assert_int_equal(node_held_count(n), NODE_HELD_PER_SENDER);
	node_free(n);
}

static int junk(MDB_txn *txn, void *arg)
{
	size_t n = *(size_t *)arg;
	char id[37];

	for (size_t i = 0; i < n; i++) {
		node_in m = {id,
		             (const uint8_t *)"x",
		             1,
		             "portugal",
		             "travel-confirmation",
		             "VICTIM-1",
		             "",
		             0,
		             "invalid-body",
		             "junk",
		             NULL};
		int rc;
		assert_int_equal(tern_uuid_v7(id), TERN_OK);
		if ((rc = node_store_receive(txn, st, &m, tern_now_ms())) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static int one_accepted(MDB_txn *txn, void *arg)
{
	node_in m = {arg,        (const uint8_t *)"x", 1, "sweden", "acceptance-decision",
	             "VICTIM-1", "ACCEPTED",           1, NULL,     NULL,
	             NULL};

	return node_store_receive(txn, st, &m, tern_now_ms() - 1000);
}

/* Attack (issue 15 review): refused messages are indexed under the case id
 * their sender chose. A member sending 100,000 junk messages under a case id
 * made that case's view 19 MB (past the local API's 16 MiB frame: no view
 * at all) and 1.4 s of the node's loop. The view lists the latest 100
 * refused ones and counts the rest; the case's own messages all stay. */
static void test_case_view_under_junk(void **state)
{
	size_t n = 1000, refused = 0, accepted = 0, i;
	char good[37];
	node *nd = node_as(UNHCR);
	MDB_txn *txn;
	json_t *v, *e;

	(void)state;
	assert_int_equal(tern_uuid_v7(good), TERN_OK);
	assert_int_equal(tern_store_write(st, one_accepted, good), TERN_OK);
	assert_int_equal(tern_store_write(st, junk, &n), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_case_view(nd, txn, "VICTIM-1", &v), TERN_OK);
	mdb_txn_abort(txn);
	assert_non_null(v);
	json_array_foreach(json_object_get(v, "timeline"), i, e)
	{
		const char *s = json_string_value(json_object_get(e, "state"));
		refused += s && strcmp(s, "refused") == 0;
		accepted += s && strcmp(s, "accepted") == 0;
	}
	assert_int_equal(accepted, 1);
	assert_int_equal(refused, 100);
	assert_int_equal(json_integer_value(json_object_get(v, "refused_omitted")), n - 100);
	json_decref(v);
	node_free(nd);
}

/* The case view (case.show) under each shortage: the whole view, the same
 * as with memory to spare, or none (the API answers no-memory). Before, a
 * message, a thread or a held delivery whose piece could not be made was
 * left out, and a view left empty answered that the case had no message
 * here. The case: a referral sent, the decision it drew received, and a
 * travel confirmation citing the decision held before the decision came
 * (so both are on the timeline, one of them held). */
static void test_every_case_view_shortage_whole(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char ref[37], dec[37], t1[37];
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);
	MDB_txn *txn;
	json_t *want, *v;
	long k;

	held_pair(ref, dec, t1, &denv, &dlen, &tenv, &tlen);
	deliver(n, 1, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	deliver(n, 2, denv, dlen); /* taken; the tick that releases the other not yet */
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_case_view(n, txn, CASE, &want), TERN_OK);
	mdb_txn_abort(txn);
	assert_non_null(want);
	assert_int_equal(json_array_size(json_object_get(want, "timeline")), 3);
	assert_int_equal(json_array_size(json_object_get(want, "held")), 1);
	assert_int_equal(json_array_size(json_object_get(want, "threads")), 1);
	for (k = 1;; k++) {
		int failed, rc;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		malloc_failed = 0;
		malloc_fail_at = k;
		rc = node_case_view(n, txn, CASE, &v);
		malloc_fail_at = 0;
		failed = malloc_failed;
		mdb_txn_abort(txn);
		if (rc == TERN_OK && !json_equal(v, want)) {
			char *got = json_dumps(v, JSON_COMPACT);
			fail_msg("allocation %ld failing: another view: %s", k, got ? got : "");
		}
		if (rc != TERN_OK && (rc != TERN_ENOMEM || v != NULL || !failed))
			fail_msg("allocation %ld: no view (%s)", k, tern_strerror(rc));
		json_decref(v);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
	json_decref(want);
	free(denv);
	free(tenv);
	node_free(n);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* A damaged workflow record (a text that is not UTF-8, from a flipped
 * byte: protobuf-c keeps any bytes) still has its message in the case view,
 * the bad text cut: not taken for a shortage, which would answer case.show
 * no-memory ("try again") for ever, with memory to spare. */
static char bad_utf8[] = "accepted\xff";

static int damage_value(MDB_txn *txn, void *arg)
{
	const char *msgid = arg;
	tern_wf_record *r = NULL;
	char *keep;
	int rc;

	if ((rc = node_store_ref(txn, st, msgid, &r)) != TERN_OK)
		return rc;
	keep = r->value;
	r->value = bad_utf8;
	rc = node_store_ref_put(txn, st, msgid, r);
	r->value = keep;
	tern_wf_record_free(&r);
	return rc;
}

static void test_case_view_damaged_text_not_shortage(void **state)
{
	char ref[37], dec[37], t1[37];
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);
	MDB_txn *txn;
	json_t *v;

	(void)state;
	held_pair(ref, dec, t1, &denv, &dlen, &tenv, &tlen);
	deliver(n, 1, tenv, tlen);
	node_batch_commit(n);
	deliver(n, 2, denv, dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	assert_int_equal(tern_store_write(st, damage_value, dec), TERN_OK);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_case_view(n, txn, CASE, &v), TERN_OK); /* not no-memory */
	mdb_txn_abort(txn);
	assert_non_null(v);
	assert_int_equal(json_array_size(json_object_get(v, "timeline")), 3);
	json_decref(v);
	free(denv);
	free(tenv);
	node_free(n);
}

/* A travel confirmation citing decision, its body padded with a field the
 * recipient does not know (ignored by the decoder) to about pad bytes. */
static uint8_t *padded_travel(int from, const char *decision, size_t pad, size_t *len, char id[37])
{
	static const char *const to_unhcr[] = {"unhcr"};
	size_t blen, n = 0;
	uint8_t *body = body_of("travel-confirmation", &blen, "decisionId", decision, NULL);
	uint8_t *big = malloc(blen + pad + 16), *env;

	assert_non_null(big);
	memcpy(big, body, blen);
	n = blen;
	big[n++] = 0xc2; /* field 1000, length-delimited */
	big[n++] = 0x3e;
	for (size_t v = pad;; v >>= 7) {
		big[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	memset(big + n, 'x', pad);
	n += pad;
	env = seal(from, to_unhcr, 1, "travel-confirmation", CASE, big, n, len, id);
	free(body);
	free(big);
	return env;
}

/* Attack (issue 15 review): what is held was capped in number only. A body
 * padded with unknown fields (the recipient decodes it without them) makes
 * each held envelope as large as [limits] max_message_size: 1,000 of 8 MiB
 * from one member were 8 GiB of the recipient's disk, 10,000 were 80 GiB.
 * Held envelopes are capped in bytes too, from one sender and in all. */
static void test_held_bytes_capped(void **state)
{
	char id[37], never[37];
	size_t len, bytes = 0, i;
	uint8_t *env;
	node *n = node_as(UNHCR);
	int refused = 0;

	(void)state;
	for (i = 0; i < NODE_HELD_BYTES_PER_SENDER / 1000000 + 8 && !refused; i++) {
		assert_int_equal(tern_uuid_v7(never), TERN_OK);
		env = padded_travel(IOM, never, 1000000, &len, id);
		deliver(n, i + 1, env, len);
		free(env);
		if (n->batch.dins[n->batch.ndins - 1].kind == DIN_HOLD)
			bytes += len;
		else
			refused = n->batch.dins[n->batch.ndins - 1].kind == DIN_REFUSE;
		if (i % 16 == 15)
			node_batch_commit(n);
	}
	assert_true(refused);
	assert_true(bytes <= NODE_HELD_BYTES_PER_SENDER);
	assert_true(bytes > NODE_HELD_BYTES_PER_SENDER - 2 * 1024 * 1024); /* held up to it */
	node_batch_commit(n);
	node_free(n);
}

static void test_receipts_and_notices(void **state)
{
	char id[37], rid[37];
	size_t len, blen;
	uint8_t *body = body_of("case-referral", &blen, NULL), *env;
	node *n = node_as(UNHCR);
	struct out o, *slot;

	(void)state;
	assert_int_equal(node_make_out(n, tern_msgtype_by_name("case-referral"), to_sweden_iom, 2,
	                               CASE, NULL, 0, body, blen, NULL, &o),
	                 TERN_OK);
	snprintf(id, sizeof(id), "%s", o.msgid);
	assert_non_null(slot = node_batch_out(n));
	*slot = o;
	node_batch_commit(n);
	result(n, id, 1, 1, "", n->session);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "at-broker");

	env = receipt(SWEDEN, UNHCR, id, 1, "", &len, rid);
	deliver(n, 1, env, len);
	free(env);
	assert_int_equal(n->batch.dins[0].kind, DIN_RECEIPT);
	assert_int_equal(n->batch.nouts, 0);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "delivered");
	assert_string_equal(sent_field(id, "iom", "state"), "at-broker");

	notice(n, 2, id, "iom", TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED,
	       tern_reason_code(TERN_REASON_RECIPIENT_REVOKED));
	assert_int_equal(n->batch.dins[0].kind, DIN_NOTICE);
	assert_int_equal(n->batch.nouts, 0);
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "iom", "state"), "rejected");
	assert_string_equal(sent_field(id, "iom", "reason_code"),
	                    tern_reason_code(TERN_REASON_RECIPIENT_REVOKED));
	/* A notice after the recipient's own receipt changes nothing. */
	notice(n, 3, id, "sweden", TERN__V1__NOTICE__KIND__EXPIRED, "expired");
	node_batch_commit(n);
	assert_string_equal(sent_field(id, "sweden", "state"), "delivered");
	assert_int_equal(n->delivered, 3);
	node_free(n);
	free(body);
}

/* The broker's answer to a submission: accepted moves the entry to
 * at-broker and frees a slot of the window; refused makes it rejected, with
 * the broker's reason; an answer to an earlier session's submission frees no
 * slot; an entry answered once keeps its first answer. */
static void test_submit_results(void **state)
{
	char id[3][37];
	size_t blen;
	uint8_t *body = body_of("case-referral", &blen, NULL);
	node *n = node_as(UNHCR);
	struct outbox ob;

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct out o, *slot;
		assert_int_equal(node_make_out(n, tern_msgtype_by_name("case-referral"),
		                               to_sweden_iom, 2, CASE, NULL, 0, body, blen, NULL,
		                               &o),
		                 TERN_OK);
		snprintf(id[i], sizeof(id[i]), "%s", o.msgid);
		assert_non_null(slot = node_batch_out(n));
		*slot = o;
	}
	node_batch_commit(n);
	for (int i = 0; i < 3; i++)
		assert_string_equal(sent_field(id[i], NULL, "state"), "queued");
	outbox_read(&ob);
	assert_int_equal(ob.n, 3);
	for (size_t i = 0; i < ob.n; i++) /* in order, each signed by this node */
		assert_string_equal(ob.msgid[i], id[i]);
	{
		tern_envelope *e = NULL;
		assert_int_equal(tern_envelope_verify(ob.env[2], ob.len[2], F.dir, NULL, &e),
		                 TERN_OK);
		tern_envelope_free(&e);
	}
	outbox_free(&ob);
	n->inflight = 3;

	result(n, id[0], 1, 5, "", n->session);
	result(n, id[1], 0, 0, tern_reason_code(TERN_REASON_UNKNOWN_RECIPIENT), n->session);
	result(n, id[2], 1, 6, "", n->session - 1);
	assert_int_equal(n->batch.nresults, 3);
	node_batch_commit(n);
	assert_int_equal(n->batch.nresults, 0);
	assert_string_equal(sent_field(id[0], NULL, "state"), "at-broker");
	assert_string_equal(sent_field(id[0], "iom", "state"), "at-broker");
	assert_string_equal(sent_field(id[1], NULL, "state"), "rejected");
	assert_string_equal(sent_field(id[1], NULL, "reason_code"),
	                    tern_reason_code(TERN_REASON_UNKNOWN_RECIPIENT));
	assert_string_equal(sent_field(id[1], "sweden", "state"), "rejected");
	assert_string_equal(sent_field(id[2], NULL, "state"), "at-broker");
	assert_int_equal(n->inflight, 1); /* id[2]'s answer was to another session */
	assert_int_equal(n->amax, 6);
	outbox_read(&ob);
	assert_int_equal(ob.n, 0); /* answered entries leave the outbox */

	/* A late refusal of an accepted entry does not undo the acceptance. */
	result(n, id[0], 0, 0, tern_reason_code(TERN_REASON_DUPLICATE_ID), n->session);
	node_batch_commit(n);
	assert_string_equal(sent_field(id[0], NULL, "state"), "at-broker");
	node_free(n);
	free(body);
}

/* The broker's submit results alone wait up to NODE_RESULT_DEFER_MS for a
 * commit with company, the loop sleeping no longer than that; anything else
 * in the batch is committed at once. */
static void test_result_deferral(void **state)
{
	node n;
	int wait = 50;
	int64_t now = 1000000;

	(void)state;
	memset(&n, 0, sizeof(n));
	assert_false(node_batch_due(&n, now, &wait)); /* empty */
	assert_int_equal(wait, 50);
	n.batch.nresults = 1;
	n.batch.results_since = now;
	assert_false(node_batch_due(&n, now + 5, &wait));
	assert_int_equal(wait, NODE_RESULT_DEFER_MS - 5);
	assert_true(node_batch_due(&n, now + NODE_RESULT_DEFER_MS, &wait));
	n.batch.ndins = 1; /* a delivery: committed (and acknowledged) at once */
	assert_true(node_batch_due(&n, now, &wait));
	n.batch.ndins = 0;
	n.batch.nresults = 0;
	n.batch.checkpoint = 1;
	assert_true(node_batch_due(&n, now, &wait));
}

/* --- the inbox, shown later ------------------------------------------------------------ */

struct raw_put {
	int db;
	const char *key;
	const uint8_t *val;
	size_t len;
};

static int raw_put_apply(MDB_txn *txn, void *arg)
{
	struct raw_put *r = arg;
	MDB_val k = {strlen(r->key), (void *)r->key}, v = {r->len, (void *)r->val};

	return tern_store_mdb_err(mdb_put(txn, tern_store_dbi(st, r->db), &k, &v, 0), "put");
}

/* Writes bytes under key in the node store's database db, as a hand at the
 * disk would. */
static void raw_put(int db, const char *key, const uint8_t *val, size_t len)
{
	struct raw_put r = {db, key, val, len};

	assert_int_equal(tern_store_write(st, raw_put_apply, &r), TERN_OK);
}

/* inbox.show of id: its error code ("" when shown) and, shown, its
 * sender_standing ("" when none). */
static const char *show(api_handlers *h, const char *id, char standing[32])
{
	static char code[32];
	json_t *req = json_pack("{s:s}", "message_id", id),
	       *res = h->read(h->arg, "inbox.show", req);
	json_t *m = json_object_get(res, "message");

	snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(res, "error")) ?: "");
	snprintf(standing, 32, "%s",
	         json_string_value(json_object_get(m, "sender_standing")) ?: "");
	json_decref(req);
	json_decref(res);
	return code;
}

/* The message_id of what inbox.next shows ("" for none). */
static const char *next_id(api_handlers *h)
{
	static char id[37];
	int rc = TERN_OK;
	json_t *m = h->inbox_next(h->arg, &rc);

	assert_int_equal(rc, TERN_OK);
	snprintf(id, sizeof(id), "%s",
	         json_string_value(json_object_get(json_object_get(m, "header"), "messageId"))
	             ?: "");
	json_decref(m);
	return id;
}

/* A message accepted into the inbox stays readable by its agency when its
 * sender is revoked, or replaces its key, after it came: it was verified,
 * accepted and receipted then. Before, inbox.show answered "no message"
 * and inbox.next "none", so the message at the head of the inbox hid every
 * one behind it. Bytes changed at rest are still not shown, and inbox.next
 * passes over what it cannot show. */
static void test_inbox_after_sender_changes(void **state)
{
	char first[37], second[37], standing[32];
	size_t len1, len2;
	uint8_t *env1 =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len1, first, NULL, NULL, NULL, NULL);
	uint8_t *env2 = message(UNHCR, to_sweden_iom, 2, "case-referral", &len2, second, NULL, NULL,
	                        NULL, NULL);
	node *n = node_as(SWEDEN);
	tern_member *m;
	api_handlers h;
	uint8_t pub[32];
	char seen[5][40];

	(void)state;
	n->connected = 1;
	deliver(n, 1, env1, len1);
	deliver(n, 2, env2, len2);
	node_batch_commit(n);
	node_api_handlers(n, &h);
	assert_string_equal(show(&h, first, standing), "");
	assert_string_equal(standing, "");
	assert_string_equal(next_id(&h), first);

	/* The directory is the suite's: what is seen while unhcr stands
	 * revoked or with another key is asserted once it is put back. */
	assert_int_equal(tern_directory_find(F.dir, "unhcr", (const tern_member **)&m), TERN_OK);
	memcpy(pub, m->sign_public, 32);
	m->revoked = 1;
	snprintf(seen[0], sizeof(seen[0]), "%s", show(&h, first, standing));
	snprintf(seen[1], sizeof(seen[1]), "%s", standing);
	snprintf(seen[2], sizeof(seen[2]), "%s", next_id(&h));
	m->revoked = 0;
	m->sign_public[0] ^= 1; /* its key replaced */
	snprintf(seen[3], sizeof(seen[3]), "%s", show(&h, first, standing));
	snprintf(seen[4], sizeof(seen[4]), "%s", standing);
	memcpy(m->sign_public, pub, 32);
	/* Revoked, with no reason this node can read (no CRL here): as for a
	 * compromised key, not shown, nor by inbox.next (both are unhcr's);
	 * test_revocation.sh has the CRL's reasons. */
	assert_string_equal(seen[0], tern_errcode_name(TERN_EREVOKED));
	assert_string_equal(seen[2], "");
	assert_int_equal(n->nunshown, 2);
	assert_string_equal(seen[3], "");
	assert_string_equal(seen[4], "key-replaced");
	node_unshown_clear(n); /* as the reload that put unhcr back would */

	/* The first one's bytes changed at rest: not what was accepted, so
	 * checked in full, and refused; inbox.next goes on to the second. */
	{
		uint8_t *bad = malloc(len1);
		memcpy(bad, env1, len1);
		bad[len1 - 1] ^= 1;
		raw_put(NS_INENV, first, bad, len1);
		free(bad);
	}
	assert_string_not_equal(show(&h, first, standing), "");
	assert_string_not_equal(show(&h, first, standing), "not-found");
	assert_string_equal(next_id(&h), second);
	m->revoked = 1;
	snprintf(seen[0], sizeof(seen[0]), "%s", show(&h, first, standing));
	m->revoked = 0;
	assert_string_not_equal(seen[0], ""); /* revoked since or not: not the bytes signed */
	assert_string_equal(show(&h, second, standing), "");
	node_free(n);
	free(env1);
	free(env2);
}

static int ack_apply(MDB_txn *txn, void *arg)
{
	return node_store_inbox_ack(txn, st, arg);
}

static int forged_receive_apply(MDB_txn *txn, void *arg)
{
	const node_in *m = arg;

	return node_store_receive(txn, st, m, tern_now_ms());
}

/* Someone who can write the store but not read the node's keys adds a
 * message of their own (a record saying accepted, an inbox entry, an
 * envelope whose signature does not verify), with each tag they could make:
 * none, the SHA-256 of their envelope, or a genuine message's tag. None is
 * shown, as inbox.show or inbox.next: the tag is keyed by the node's
 * sealing key, and bound to the message id. */
static void test_inbox_forged_at_rest_not_shown(void **state)
{
	char real[37], forged[37], standing[32];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, real, NULL, NULL, NULL, NULL);
	uint8_t *bad = malloc(len), sha[32], realtag[32];
	node *n = node_as(SWEDEN);
	node_recv_rec *rec = NULL;
	api_handlers h;
	MDB_txn *txn;

	(void)state;
	n->connected = 1;
	deliver(n, 1, env, len);
	node_batch_commit(n);
	node_api_handlers(n, &h);
	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_recv_rec(txn, st, real, &rec), TERN_OK);
	mdb_txn_abort(txn);
	assert_int_equal(rec->envelope_tag.len, 32);
	memcpy(realtag, rec->envelope_tag.data, 32);
	node_rec_recv_free(&rec);
	/* Signed by nobody it names: the last byte is the signature's. */
	memcpy(bad, env, len);
	bad[len - 1] ^= 1;
	assert_int_equal(tern_sha256(bad, len, sha), TERN_OK);
	for (int how = 0; how < 3; how++) {
		const uint8_t *tags[] = {NULL, sha, realtag};
		node_in m = {forged, bad, len, "unhcr", "case-referral", CASE,
		             "",     1,   "",  "",      tags[how]};
		assert_int_equal(tern_uuid_v7(forged), TERN_OK);
		assert_int_equal(tern_store_write(st, forged_receive_apply, &m), TERN_OK);
		if (strcmp(show(&h, forged, standing), "") == 0 || standing[0])
			fail_msg("a forgery with tag %d shown (standing \"%s\")", how, standing);
		assert_string_equal(next_id(&h), real); /* the genuine one, still first */
	}
	/* The genuine one acknowledged: the forgeries are all that is left,
	 * and inbox.next shows none of them. */
	assert_int_equal(tern_store_write(st, ack_apply, real), TERN_OK);
	assert_string_equal(next_id(&h), "");
	assert_int_equal(n->nunshown, 3);
	node_free(n);
	free(bad);
	free(env);
}

/* Two genuine messages, the envelope of one written at rest under the
 * other's id: refused, though its sender stands and its signature holds
 * (the tag binds the envelope to its id, and so does the header's id).
 * And inbox.next, having found nothing, looks again once a commit adds a
 * message. */
static void test_inbox_swapped_at_rest_not_shown(void **state)
{
	char a[37], b[37], c[37], standing[32];
	size_t la, lb, lc;
	uint8_t *ea =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &la, a, NULL, NULL, NULL, NULL);
	uint8_t *eb =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &lb, b, NULL, NULL, NULL, NULL);
	uint8_t *ec =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &lc, c, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	api_handlers h;

	(void)state;
	n->connected = 1;
	node_api_handlers(n, &h);
	assert_string_equal(next_id(&h), ""); /* empty: none, remembered */
	deliver(n, 1, ea, la);
	deliver(n, 2, eb, lb);
	node_batch_commit(n);
	assert_string_equal(next_id(&h), a); /* the commit has it look again */
	raw_put(NS_INENV, b, ea, la);
	assert_string_equal(show(&h, b, standing), tern_errcode_name(TERN_EBADSIG));
	assert_string_equal(show(&h, a, standing), "");
	assert_int_equal(tern_store_write(st, ack_apply, a), TERN_OK);
	n->inbox_gen++;                       /* as the acknowledgement's commit does */
	assert_string_equal(next_id(&h), ""); /* b passed over */
	deliver(n, 3, ec, lc);
	node_batch_commit(n);
	assert_string_equal(next_id(&h), c);
	node_free(n);
	free(ea);
	free(eb);
	free(ec);
}

/* inbox.next passes over every message it cannot show, however many come
 * first (here 70, past the set's first growth), finds the one behind them,
 * and tries each only once until a reload. */
static void test_inbox_next_past_unshowable(void **state)
{
	enum { N = 70 };
	char ids[N + 1][37];
	uint8_t *envs[N + 1];
	size_t lens[N + 1];
	node *n = node_as(SWEDEN);
	api_handlers h;

	(void)state;
	n->connected = 1;
	for (int i = 0; i <= N; i++) {
		envs[i] = message(UNHCR, to_sweden_iom, 2, "case-referral", &lens[i], ids[i], NULL,
		                  NULL, NULL, NULL);
		deliver(n, (uint64_t)i + 1, envs[i], lens[i]);
	}
	node_batch_commit(n);
	for (int i = 0; i < N; i++) {
		envs[i][lens[i] - 1] ^= 1; /* changed at rest */
		raw_put(NS_INENV, ids[i], envs[i], lens[i]);
	}
	node_api_handlers(n, &h);
	assert_string_equal(next_id(&h), ids[N]);
	assert_int_equal(n->nunshown, N);
	assert_string_equal(next_id(&h), ids[N]);
	assert_int_equal(n->nunshown, N); /* not tried again */
	node_unshown_clear(n);            /* as a reload does */
	assert_string_equal(next_id(&h), ids[N]);
	assert_int_equal(n->nunshown, N);
	for (int i = 0; i <= N; i++)
		free(envs[i]);
	node_free(n);
}

/* inbox.next under each shortage, with a message in the inbox: the
 * message, or no memory said. Never "none": a client that reads until none
 * would stop early. */
static void test_every_next_shortage_not_none(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	char id[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, id, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	api_handlers h;
	long k;

	n->connected = 1;
	deliver(n, 1, env, len);
	node_batch_commit(n);
	node_api_handlers(n, &h);
	for (k = 1;; k++) {
		int rc = TERN_OK, failed;
		json_t *m;
		malloc_failed = 0;
		malloc_fail_at = k;
		m = h.inbox_next(h.arg, &rc);
		malloc_fail_at = 0;
		failed = malloc_failed;
		if (m == NULL && rc == TERN_OK)
			fail_msg("allocation %ld failing: inbox.next says none", k);
		if (m == NULL && rc != TERN_ENOMEM)
			fail_msg("allocation %ld failing: %s", k, tern_strerror(rc));
		json_decref(m);
		if (!failed)
			break;
	}
	print_message("shortage sweep: %ld allocations\n", k - 1);
	assert_true(k > 20);
	assert_int_equal(n->nunshown, 0); /* no shortage taken for unshowable */
	node_free(n);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

#if MALLOC_CAN_FAIL
/* One read operation of the API with allocation k failing: the error code
 * it answers ("" for none). */
static const char *read_short(api_handlers *h, const char *op, const char *id, long k, int *failed)
{
	static char code[32];
	json_t *req = json_pack("{s:s}", "message_id", id), *res;

	malloc_failed = 0;
	malloc_fail_at = k;
	res = h->read(h->arg, op, req);
	malloc_fail_at = 0;
	*failed = malloc_failed;
	snprintf(code, sizeof(code), "%s",
	         res ? json_string_value(json_object_get(res, "error")) ?: "" : "(none)");
	/* A list answered is the whole inbox: here, one message. */
	if (code[0] == 0 && strcmp(op, "inbox.list") == 0 &&
	    json_array_size(json_object_get(res, "messages")) != 1)
		fail_msg("inbox.list, allocation %ld failing: %zu messages listed, of 1", k,
		         json_array_size(json_object_get(res, "messages")));
	json_decref(req);
	json_decref(res);
	return code;
}
#endif

/* The API's reads of one message under each shortage (inbox.show, status,
 * inbox.list): shown, or no-memory. Never "not found": an agency's system
 * told a message it sent is unknown might send it again, and one told its
 * inbox lacks a message might look no further. */
static void test_every_read_shortage_not_unknown(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	static const char *const ops[] = {"inbox.show", "status", "inbox.list"};
	char in[37], out[37];
	size_t len;
	uint8_t *env =
	    message(UNHCR, to_sweden_iom, 2, "case-referral", &len, in, NULL, NULL, NULL, NULL);
	node *n = node_as(SWEDEN);
	api_handlers h;
	long swept = 0;

	n->connected = 1;
	deliver(n, 1, env, len);
	node_batch_commit(n);
	send_referral(n, out); /* sweden's own, for status */
	node_api_handlers(n, &h);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		const char *id = strcmp(ops[i], "status") == 0 ? out : in;
		long k;
		for (k = 1;; k++) {
			int failed;
			const char *code = read_short(&h, ops[i], id, k, &failed);
			if (code[0] && strcmp(code, tern_errcode_name(TERN_ENOMEM)) != 0 &&
			    strcmp(code, "(none)") != 0)
				fail_msg("%s, allocation %ld failing: %s", ops[i], k, code);
			if (!failed) {
				assert_string_equal(code, "");
				break;
			}
		}
		swept += k - 1;
	}
	print_message("shortage sweep: %ld allocations\n", swept);
	assert_true(swept > 30);
	node_free(n);
	free(env);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* --- webhook pushes --------------------------------------------------------------- */

/* The pusher stood in for: a commit only tests n->hook and kicks it. */
void __wrap_node_webhook_kick(node_webhook *w);
void __wrap_node_webhook_kick(node_webhook *w)
{
	(void)w;
}

#if MALLOC_CAN_FAIL
static uint64_t pushes_waiting(void)
{
	MDB_txn *txn;
	uint64_t np = 0;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_push_count(txn, st, &np), TERN_OK);
	mdb_txn_abort(txn);
	return np;
}

/* Whether the last push written names every recipient of a message to
 * sweden and iom. */
static int last_push_names_both(void)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	Tern__V1__PushRecord *rec;
	char *body;
	int both;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(mdb_cursor_open(txn, tern_store_dbi(st, NS_PUSHES), &c), 0);
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
	assert_non_null(rec = tern__v1__push_record__unpack(NULL, v.mv_size, v.mv_data));
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	assert_non_null(body = strndup((const char *)rec->body.data, rec->body.len));
	both = strstr(body, "\"nodeId\":\"sweden\"") && strstr(body, "\"nodeId\":\"iom\"");
	free(body);
	tern__v1__push_record__free_unpacked(rec, NULL);
	return both;
}

/* One try of test_every_push_shortage_seen's: a referral to sweden and iom,
 * iom rejected by the broker's notice (final: one push), then sweden's
 * receipt (still rejected: no new event); the notice's commit made short at
 * allocation k if !second, else the receipt's. Returns whether an
 * allocation failed. */
static int push_short(long k, int second)
{
	node *n = node_as(UNHCR);
	uint64_t before;
	char id[37];
	int failed;

	n->hook = (node_webhook *)n; /* never used as one: kick is wrapped */
	send_accepted(n, id);
	notice(n, 1, id, "iom", TERN__V1__NOTICE__KIND__RECIPIENT_REVOKED,
	       tern_reason_code(TERN_REASON_RECIPIENT_REVOKED));
	if (second) {
		node_batch_commit(n);
		deliver_receipt(n, 2, SWEDEN, id, 1, "");
	}
	assert_int_equal(n->batch.ndins, 1);
	before = pushes_waiting();
	malloc_failed = 0;
	malloc_fail_at = k;
	node_batch_commit(n);
	malloc_fail_at = 0;
	failed = malloc_failed;
	if (!second && strcmp(sent_field(id, "iom", "state"), "rejected") == 0) {
		if (pushes_waiting() != before + 1)
			fail_msg("allocation %ld failing: rejected, %llu push(es) written", k,
			         (unsigned long long)(pushes_waiting() - before));
		if (!last_push_names_both())
			fail_msg("allocation %ld failing: a recipient left out of the push", k);
	} else if (second && strcmp(sent_field(id, "sweden", "state"), "delivered") == 0) {
		assert_string_equal(sent_field(id, NULL, "state"), "rejected");
		if (pushes_waiting() != before)
			fail_msg("allocation %ld failing: no new final state, %llu push(es) "
			         "written",
			         k, (unsigned long long)(pushes_waiting() - before));
	} else {
		/* Not committed: asked for again (Hello), nothing written. */
		if (!failed)
			fail_msg("allocation %ld: not committed with no shortage", k);
		assert_int_equal(pushes_waiting(), before);
	}
	node_free(n);
	return failed;
}
#endif

/* Each allocation of a commit that brings a sent message to its final state
 * made to fail in turn: the commit either fails (its deliveries asked for
 * again) or writes the webhook push. Before, the record not read for want of
 * memory was taken as absent: the state was committed without its push,
 * lost. The same for a commit that changes a recipient but not the final
 * state: before, the state before it, not read, was taken as none, and the
 * same final state pushed again as a new event. */
static void test_every_push_shortage_seen(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	for (int second = 0; second < 2; second++) {
		long k;
		for (k = 1; push_short(k, second); k++)
			;
		print_message("shortage sweep: %ld allocations\n", k - 1);
		assert_true(k > 10);
	}
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

/* --- several States, out of order ----------------------------------------------- */

/* n sends type, its body the JSON text, to the recipients given, by the local
 * API's path (node_send_finish: the workflow judges it as its sender); the
 * send is committed. NULL when taken (its id in id), else the refusal, which
 * the caller frees. */
/* As a caseworker's send: judged and queued, then committed and accepted
 * by the broker unless !commit (left in this turn's batch). */
static json_t *api_send_json_in(node *n, const char *type, const char *const *to, size_t nto,
                                const char *text, char id[37], int commit)
{
	const tern_msgtype *t = tern_msgtype_by_name(type);
	struct node_send s;
	ProtobufCMessage *body = NULL;
	char err[256];
	json_t *j = json_loads(text, 0, NULL), *res;

	assert_non_null(j);
	assert_int_equal(tern_json_decode(t->desc, j, &body, err, sizeof(err)), TERN_OK);
	json_decref(j);
	memset(&s, 0, sizeof(s));
	s.t = t;
	s.rcpts = (char **)to;
	s.np = nto;
	s.client = -1;
	assert_int_equal(tern_pb_pack(body, &s.body, &s.blen), TERN_OK);
	res = node_send_finish(n, &s, body, NULL);
	if (res == NULL) {
		snprintf(id, 37, "%s", n->batch.outs[n->batch.nouts - 1].msgid);
		if (commit) {
			node_batch_commit(n);
			result(n, id, 1, 1, "", n->session);
			node_batch_commit(n);
		}
	}
	protobuf_c_message_free_unpacked(body, NULL);
	free(s.body);
	return res;
}

static json_t *api_send_json(node *n, const char *type, const char *const *to, size_t nto,
                             const char *text, char id[37])
{
	return api_send_json_in(n, type, to, nto, text, id, 1);
}

/* unhcr's referral of the example case to sweden, sent by n (unhcr) through
 * the API's path, so that n holds its thread; its id in id. */
static void unhcr_refers(node *n, char id[37])
{
	char *text = NULL;

	assert_int_equal(tern_example_json("case-referral", &text), TERN_OK);
	assert_null(api_send_json(n, "case-referral", to_sweden, 1, text, id));
	free(text);
}

/* portugal decides on R, which unhcr referred to sweden: unhcr refuses it
 * (reference-not-shared), IOM takes it (it holds no referral to judge by)
 * and books travel on it. The booking cites what unhcr refused: it is
 * refused at once, in either order (the booking held first, then the
 * decision refused: released and refused). Before (a review's attack), it
 * was held for the whole [delivery] hold (a day by default), as if the
 * decision had not come, and IOM saw it at-broker all that time. */
/* unhcr (n) refers the case to sweden; portugal's decision on that
 * referral (*denv) and IOM's booking on the decision (*tenv), sealed. */
static void portugal_decides_iom_books(node *n, uint8_t **denv, size_t *dlen, uint8_t **tenv,
                                       size_t *tlen)
{
	char ref[37], dec[37], t[37];

	unhcr_refers(n, ref);
	*denv = message(PORTUGAL, to_unhcr_iom, 2, "acceptance-decision", dlen, dec, "referralId",
	                ref, NULL, NULL);
	*tenv = message(IOM, to_unhcr_only, 1, "travel-confirmation", tlen, t, "decisionId", dec,
	                NULL, NULL);
}

static void test_travel_citing_a_refused_decision_held(void **state)
{
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);

	(void)state;
	portugal_decides_iom_books(n, &denv, &dlen, &tenv, &tlen);
	/* The decision first, then the booking. */
	deliver(n, 1, denv, dlen);
	assert_refused(&n->batch.dins[0], TERN_REASON_REFERENCE_NOT_SHARED);
	node_batch_commit(n);
	deliver(n, 2, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	assert_non_null(strstr(n->batch.dins[0].text, "which this node refused"));
	node_batch_commit(n);
	node_free(n);
	free(denv);
	free(tenv);
}

static void test_held_citing_a_refused_decision_released(void **state)
{
	size_t dlen, tlen;
	uint8_t *denv, *tenv;
	node *n = node_as(UNHCR);

	(void)state;
	portugal_decides_iom_books(n, &denv, &dlen, &tenv, &tlen);
	/* The booking first: held; then the decision, refused: the booking is
	 * released and refused at the next tick, not a day later. */
	deliver(n, 1, tenv, tlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 1);
	deliver(n, 2, denv, dlen);
	assert_refused(&n->batch.dins[0], TERN_REASON_REFERENCE_NOT_SHARED);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	node_free(n);
	free(denv);
	free(tenv);
}

/* The state of the thread rooted at root, as the store holds it now. */
static const char *stored_thread_state(const char *root)
{
	static char out[32];
	tern_wf_record *rec = NULL;
	MDB_txn *txn;

	assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
	assert_int_equal(node_store_ref(txn, st, root, &rec), TERN_OK);
	mdb_txn_abort(txn);
	snprintf(out, sizeof(out), "%s", tern_case_state_name((tern_case_state)rec->state));
	tern_wf_record_free(&rec);
	return out;
}

/* unhcr (n) refers the case to sweden: sweden's decision on it (denv), and
 * IOM's booking on that decision (t1env) and its next travel confirmation of
 * status t2_status (t2env), sealed; the booking delivered first and held
 * (the decision has not come), committed. */
struct held_booking {
	char ref[37], dec[37], t1[37], t2[37];
	size_t dlen, t1len, t2len;
	uint8_t *denv, *t1env, *t2env;
};

static void held_booking(node *n, const char *t2_status, struct held_booking *b)
{
	unhcr_refers(n, b->ref);
	b->denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &b->dlen, b->dec,
	                  "referralId", b->ref, NULL, NULL);
	b->t1env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &b->t1len, b->t1,
	                   "decisionId", b->dec, NULL, NULL);
	b->t2env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &b->t2len, b->t2,
	                   "decisionId", b->dec, "status", t2_status);
	deliver(n, 1, b->t1env, b->t1len);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
}

static void held_booking_free(struct held_booking *b)
{
	free(b->denv);
	free(b->t1env);
	free(b->t2env);
}

/* IOM books (T1) and then reports the departure (T2), both citing sweden's
 * decision D, which reaches unhcr after T1 (held) and in the same turn as
 * T2. T2 waits behind T1 (held: its sender's earlier message citing D is),
 * and the next tick releases both in order: booked, then departed. Before (a
 * review's attack), T2 was judged at once against the case as D left it
 * (accepted) and refused wrong-state, and T1 was released after the commit:
 * unhcr ended "booked" with the family in the air. */
static void test_held_booking_overtaken_by_the_departure(void **state)
{
	char ref[37], dec[37], t1[37], t2[37];
	size_t dlen, t1len, t2len;
	uint8_t *denv, *t1env, *t2env;
	node *n = node_as(UNHCR);

	(void)state;
	unhcr_refers(n, ref);
	denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &dlen, dec, "referralId",
	               ref, NULL, NULL);
	t1env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &t1len, t1, "decisionId", dec,
	                NULL, NULL);
	t2env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &t2len, t2, "decisionId", dec,
	                "status", "DEPARTED");
	deliver(n, 1, t1env, t1len);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	deliver(n, 2, denv, dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	deliver(n, 3, t2env, t2len);
	assert_int_equal(n->batch.dins[1].kind, DIN_HOLD); /* behind T1 */
	assert_non_null(strstr(n->batch.dins[1].text, "held behind"));
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 2);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 2);
	assert_string_equal(n->batch.dins[0].msgid, t1); /* in the order sent */
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_string_equal(n->batch.dins[1].msgid, t2);
	assert_int_equal(n->batch.dins[1].kind, DIN_ACCEPT);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	assert_string_equal(stored_thread_state(ref), "departed");
	node_free(n);

	/* All three in one turn, the booking first: the same. */
	n = node_as(UNHCR);
	unhcr_refers(n, ref);
	free(denv);
	free(t1env);
	free(t2env);
	denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &dlen, dec, "referralId",
	               ref, NULL, NULL);
	t1env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &t1len, t1, "decisionId", dec,
	                NULL, NULL);
	t2env = message(IOM, to_unhcr_only, 1, "travel-confirmation", &t2len, t2, "decisionId", dec,
	                "status", "DEPARTED");
	deliver(n, 1, t1env, t1len);
	deliver(n, 2, denv, dlen);
	deliver(n, 3, t2env, t2len);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	assert_int_equal(n->batch.dins[1].kind, DIN_ACCEPT);
	assert_int_equal(n->batch.dins[2].kind, DIN_HOLD); /* behind T1, held in this turn */
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	assert_string_equal(stored_thread_state(ref), "departed");
	free(denv);
	free(t1env);
	free(t2env);
	node_free(n);
}

/* IOM books (T1, held: sweden's decision D has not reached unhcr) and then
 * cancels (T2, citing D too); D and T2 arrive in one turn while IOM has no
 * room left to be held. T2 is refused, saying it must wait behind T1: a
 * review found it judged at once instead, out of order, so the cancellation
 * was accepted and the booking released after it, and unhcr ended "booked"
 * for a travel IOM had cancelled. */
static void test_behind_without_room_refused(void **state)
{
	struct held_booking b;
	node *n = node_as(UNHCR);

	(void)state;
	held_booking(n, "CANCELLED", &b);
	/* IOM's share of the hold taken up (an entry the tick never sees). */
	assert_int_equal(json_object_set_new(n->held, "taken",
	                                     json_pack("{s:s, s:I}", "sender", "iom", "len",
	                                               (json_int_t)NODE_HELD_BYTES_PER_SENDER)),
	                 0);
	deliver(n, 2, b.denv, b.dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	deliver(n, 3, b.t2env, b.t2len);
	assert_int_equal(n->batch.dins[1].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[1].code, tern_reason_code(TERN_REASON_UNKNOWN_REFERENCE));
	assert_non_null(strstr(n->batch.dins[1].text, "must wait behind"));
	assert_non_null(strstr(n->batch.dins[1].text, b.t1));
	assert_int_equal(json_object_del(n->held, "taken"), 0);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_string_equal(n->batch.dins[0].msgid, b.t1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	assert_string_equal(stored_thread_state(b.ref), "booked");
	node_free(n);
	held_booking_free(&b);
}

/* As above, but T1 is released (accepted) at a tick before T2 comes, in a
 * batch not committed yet: T1 is still in n->held until the commit. T2 has
 * nothing left to wait behind and must be judged at once (after T1, whose
 * record is in the batch), not refused "must wait behind" T1 for want of a
 * room T1 itself still takes. */
static void test_behind_a_sibling_released_this_turn(void **state)
{
	struct held_booking b;
	node *n = node_as(UNHCR);

	(void)state;
	held_booking(n, "CANCELLED", &b);
	deliver(n, 2, b.denv, b.dlen);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	assert_int_equal(n->batch.ndins, 1);
	assert_string_equal(n->batch.dins[0].msgid, b.t1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT); /* released, not committed */
	/* IOM's share of the hold taken up (an entry the tick never sees). */
	assert_int_equal(json_object_set_new(n->held, "taken",
	                                     json_pack("{s:s, s:I, s:I}", "sender", "iom", "len",
	                                               (json_int_t)NODE_HELD_BYTES_PER_SENDER,
	                                               "until", (json_int_t)INT64_MAX)),
	                 0);
	deliver(n, 3, b.t2env, b.t2len);
	assert_int_equal(n->batch.ndins, 2);
	assert_string_equal(n->batch.dins[1].msgid, b.t2);
	assert_int_equal(n->batch.dins[1].kind, DIN_ACCEPT);
	assert_int_equal(json_object_del(n->held, "taken"), 0);
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	assert_string_equal(stored_thread_state(b.ref), "cancelled");
	node_free(n);
	held_booking_free(&b);
}

static const char *const to_iom_only[] = {"iom"};

/* unhcr's node refuses to send a case update on R that does not go to
 * sweden, the State R was referred to (state-not-told): one to IOM alone
 * would leave IOM a trace naming no State. To sweden and IOM it goes. Once
 * sweden is revoked, a withdrawal to IOM alone goes (a review found the rule
 * first left unhcr no way to tell IOM of a withdrawal then). */
static void test_update_goes_to_the_state(void **state)
{
	static const char *const to_sweden_and_iom[] = {"sweden", "iom"};
	char ref[37], id[37], text[512];
	node *n = node_as(UNHCR);
	tern_member *sw;
	json_t *res;

	(void)state;
	unhcr_refers(n, ref);
	snprintf(text, sizeof(text),
	         "{\"caseId\": \"%s\", \"referralId\": \"%s\", \"kind\": \"PRIORITY_CHANGED\", "
	         "\"priority\": \"URGENT\"}",
	         CASE, ref);
	res = api_send_json(n, "case-update", to_iom_only, 1, text, id);
	assert_non_null(res);
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_STATE_NOT_TOLD));
	assert_non_null(strstr(json_string_value(json_object_get(res, "message")), "sweden"));
	json_decref(res);
	assert_null(api_send_json(n, "case-update", to_sweden_and_iom, 2, text, id));
	assert_int_equal(tern_directory_find(F.dir, "sweden", (const tern_member **)&sw), TERN_OK);
	sw->revoked = 1;
	snprintf(text, sizeof(text),
	         "{\"caseId\": \"%s\", \"referralId\": \"%s\", \"kind\": \"WITHDRAWN\", "
	         "\"reason\": \"Another durable solution.\"}",
	         CASE, ref);
	res = api_send_json(n, "case-update", to_iom_only, 1, text, id);
	sw->revoked = 0;
	if (res)
		fail_msg("a withdrawal to IOM alone, sweden revoked: %s",
		         json_string_value(json_object_get(res, "message")));
	node_free(n);
}

/* IOM's booking of travel (status) on decision, to the State that made it
 * and unhcr, as IOM's caseworker sends it: NULL when queued (id then). */
static json_t *iom_travel_in(node *n, const char *state, const char *decision, const char *status,
                             char id[37], int commit)
{
	const char *to[] = {state, "unhcr"};
	char *text = NULL, *out;
	json_t *j, *res;

	assert_int_equal(tern_example_json("travel-confirmation", &text), TERN_OK);
	assert_non_null(j = json_loads(text, 0, NULL));
	free(text);
	json_object_set_new(j, "decisionId", json_string(decision));
	json_object_set_new(j, "status", json_string(status));
	assert_non_null(out = json_dumps(j, 0));
	json_decref(j);
	res = api_send_json_in(n, "travel-confirmation", to, 2, out, id, commit);
	free(out);
	return res;
}

static json_t *iom_travel(node *n, const char *state, const char *decision, const char *status,
                          char id[37])
{
	return iom_travel_in(n, state, decision, status, id, 1);
}

/* Asserts that res refuses a send for reason, its message holding naming
 * (when given); why says what a send taken (res NULL) means. Frees res. */
static void send_refused_as(json_t *res, tern_reason reason, const char *naming, const char *why)
{
	if (res == NULL)
		fail_msg("%s", why);
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(reason));
	if (naming)
		assert_non_null(strstr(json_string_value(json_object_get(res, "message")), naming));
	json_decref(res);
}

/* At IOM (n): sweden accepts r1 (its decision's id in d1) and portugal r2
 * (d2), a case referred to both at once; delivered and committed. */
static void both_accept(node *n, const char *r1, const char *r2, char d1[37], char d2[37])
{
	size_t l1, l2;
	uint8_t *e1 = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1, d1, "referralId",
	                      r1, NULL, NULL);
	uint8_t *e2 = message(PORTUGAL, to_unhcr_iom, 2, "acceptance-decision", &l2, d2,
	                      "referralId", r2, NULL, NULL);

	deliver(n, 1, e1, l1);
	deliver(n, 2, e2, l2);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_int_equal(n->batch.dins[1].kind, DIN_ACCEPT);
	node_batch_commit(n);
	free(e1);
	free(e2);
}

/* Two States on one case: unhcr referred it to sweden (R1) and to portugal
 * (R2) at once, and both accepted. IOM's node books the family on one
 * referral at a time: the booking on portugal's decision is refused
 * case-booked-elsewhere while the one on sweden's stands, and goes once that
 * travel is cancelled. Before (a review's attack), IOM booked both. */
static void test_iom_books_one_referral_at_a_time(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000a1",
	                  r2[] = "01900000-0000-7000-8000-0000000000a2",
	                  r3[] = "01900000-0000-7000-8000-0000000000a3";
	char d1[37], d2[37], t1[37], t2[37], t3[37];
	size_t l1;
	uint8_t *e1;
	node *n = node_as(IOM);
	json_t *res;

	(void)state;
	both_accept(n, r1, r2, d1, d2);
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t1));
	send_refused_as(
	    iom_travel(n, "portugal", d2, "BOOKED", t2), TERN_REASON_CASE_BOOKED_ELSEWHERE, r1,
	    "IOM booked the case on portugal's referral while it is booked on sweden's");
	/* A new itinerary on the same referral is no second booking. */
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t3));
	assert_null(iom_travel(n, "sweden", d1, "CANCELLED", t3));
	assert_null(iom_travel(n, "portugal", d2, "BOOKED", t2));
	res = iom_travel(n, "sweden", d1, "BOOKED", t1);
	assert_non_null(res); /* now portugal's stands */
	json_decref(res);
	/* A third referral (R3, sweden again) whose decision and booking are
	 * both in this turn, not committed yet: the batch's booking counts. */
	assert_null(iom_travel(n, "portugal", d2, "CANCELLED", t2));
	e1 = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1, d1, "referralId", r3,
	             NULL, NULL);
	deliver(n, 3, e1, l1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_null(iom_travel_in(n, "sweden", d1, "BOOKED", t1, 0));
	send_refused_as(iom_travel_in(n, "portugal", d2, "BOOKED", t3, 0),
	                TERN_REASON_CASE_BOOKED_ELSEWHERE, NULL,
	                "IOM booked the case again while this turn's batch books it on R3");
	node_batch_commit(n);
	/* IOM's case view names each thread's State (a new user could not
	 * tell the two referrals apart). */
	{
		MDB_txn *txn;
		json_t *v = NULL, *t;
		size_t i;
		int sweden = 0, portugal = 0, refused_here = 0;
		assert_int_equal(tern_store_read_begin(st, &txn), TERN_OK);
		assert_int_equal(node_case_view(n, txn, CASE, &v), TERN_OK);
		mdb_txn_abort(txn);
		json_array_foreach(json_object_get(v, "threads"), i, t)
		{
			const char *rid = json_string_value(json_object_get(t, "referral_id"));
			char *ps = json_dumps(json_object_get(t, "parties"), 0);
			assert_false(json_is_true(json_object_get(t, "referral_held")));
			assert_non_null(ps);
			sweden += (strcmp(rid, r1) == 0 || strcmp(rid, r3) == 0) &&
			          strstr(ps, "\"sweden\"") && !strstr(ps, "portugal");
			portugal += strcmp(rid, r2) == 0 && strstr(ps, "\"portugal\"") &&
			            !strstr(ps, "sweden");
			free(ps);
			/* R1 and R2 (cancelled) offer no booking while R3 is booked,
			 * and say so; R3 offers its own. */
			ps = json_dumps(json_object_get(t, "next"), 0);
			assert_non_null(ps);
			if (strcmp(rid, r3) == 0) {
				assert_null(json_object_get(t, "booking_refused"));
			} else {
				json_t *br = json_object_get(t, "booking_refused");
				assert_non_null(br);
				assert_string_equal(
				    json_string_value(json_object_get(br, "referral_id")), r3);
				assert_null(strstr(ps, "\"BOOKED\""));
				refused_here++;
			}
			free(ps);
		}
		assert_int_equal(sweden, 2);
		assert_int_equal(portugal, 1);
		assert_int_equal(refused_here, 2);
		/* Each line of the timeline names its thread's referral: a
		 * decision the referral it cites, a booking its decision's. */
		{
			json_t *tl = json_object_get(v, "timeline"), *e, *f;
			size_t k, decisions = 0, bookings = 0;
			json_array_foreach(tl, i, e)
			{
				const char *type = json_string_value(json_object_get(e, "type"));
				const char *rid =
				    json_string_value(json_object_get(e, "referral_id"));
				const char *cites = json_string_value(json_object_get(e, "cites"));
				if (rid == NULL)
					fail_msg("a timeline line names no referral");
				if (strcmp(type, "acceptance-decision") == 0) {
					assert_string_equal(rid, cites);
					decisions++;
					continue;
				}
				json_array_foreach(tl, k, f)
				{
					if (strcmp(
					        json_string_value(json_object_get(f, "message_id")),
					        cites) == 0) {
						assert_string_equal(
						    rid, json_string_value(
						             json_object_get(f, "referral_id")));
						bookings++;
					}
				}
			}
			assert_int_equal(decisions, 3);
			assert_int_equal(bookings, json_array_size(tl) - 3);
		}
		json_decref(v);
	}
	/* Once the family has departed on R3, no cancellation can follow: the
	 * refusal does not advise one (a new user's finding). */
	assert_null(iom_travel(n, "sweden", d1, "DEPARTED", t1));
	res = iom_travel(n, "portugal", d2, "BOOKED", t3);
	assert_non_null(res);
	assert_non_null(strstr(json_string_value(json_object_get(res, "message")), "travelled"));
	assert_null(strstr(json_string_value(json_object_get(res, "message")), "cancel"));
	json_decref(res);
	free(e1);
	node_free(n);
}

/* A booking citing a decision IOM's node does not hold (IOM learnt its id
 * another way) was tied to no referral there: booked on sweden's R1, IOM
 * could book the family again on portugal's decision before it arrived (a
 * review's finding). Now such a booking waits for its decision
 * (decision-not-received); once the decision is here, the one-referral rule
 * judges it. A departure citing an absent decision is not a booking: the
 * recipients judge it, as before. */
static void test_iom_books_only_a_decision_it_holds(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000b1",
	                  r2[] = "01900000-0000-7000-8000-0000000000b2",
	                  absent[] = "01900000-0000-7000-8000-0000000000bf";
	char d1[37], d2[37], t1[37], t2[37];
	size_t l2;
	uint8_t *e2;
	node *n = node_as(IOM);
	size_t l1;
	uint8_t *e1 = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1, d1, "referralId",
	                      r1, NULL, NULL);

	(void)state;
	deliver(n, 1, e1, l1);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	free(e1);
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t1));
	send_refused_as(iom_travel(n, "portugal", absent, "BOOKED", t2),
	                TERN_REASON_DECISION_NOT_RECEIVED, absent,
	                "IOM booked the family on a decision its node does not hold, while it is "
	                "booked on sweden's referral");
	/* Not a booking: not this rule's (the recipients hold or refuse it). */
	assert_null(iom_travel(n, "portugal", absent, "DEPARTED", t2));
	/* portugal's decision on R2 arrives: the booking is judged by the
	 * one-referral rule now, and goes once sweden's travel is cancelled. */
	e2 = message(PORTUGAL, to_unhcr_iom, 2, "acceptance-decision", &l2, d2, "referralId", r2,
	             NULL, NULL);
	deliver(n, 2, e2, l2);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	free(e2);
	send_refused_as(iom_travel(n, "portugal", d2, "BOOKED", t2),
	                TERN_REASON_CASE_BOOKED_ELSEWHERE, r1,
	                "IOM booked portugal's decision while sweden's referral is booked");
	assert_null(iom_travel(n, "sweden", d1, "CANCELLED", t1));
	assert_null(iom_travel(n, "portugal", d2, "BOOKED", t2));
	node_free(n);
}

/* decision-not-received says which way the decision is not held, as each
 * asks the caseworker for something else: one IOM's node refused will not
 * come by waiting, nor by the State sending it here (it was sent here);
 * a referral's id (IOM traced the thread) is no decision at all. Before,
 * each read "not received, or refused ... wait for it, or ask the State to
 * send it here too". */
static void test_iom_decision_not_received_says_which(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000c1",
	                  absent[] = "01900000-0000-7000-8000-0000000000cf";
	char d1[37], dp[37], t[37];
	size_t l1, lp;
	uint8_t *e1 = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1, d1, "referralId",
	                      r1, NULL, NULL),
	        *ep = message(PORTUGAL, to_unhcr_iom, 2, "acceptance-decision", &lp, dp,
	                      "referralId", r1, NULL, NULL);
	node *n = node_as(IOM);
	json_t *res;
	const char *text;

	(void)state;
	/* sweden's decision traces R1 at IOM; portugal's on R1 is refused (R1
	 * went to sweden). */
	deliver(n, 1, e1, l1);
	deliver(n, 2, ep, lp);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	assert_int_equal(n->batch.dins[1].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[1].code,
	                    tern_reason_code(TERN_REASON_REFERENCE_NOT_SHARED));
	node_batch_commit(n);
	free(e1);
	free(ep);

	res = iom_travel(n, "portugal", dp, "BOOKED", t);
	assert_non_null(res);
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_DECISION_NOT_RECEIVED));
	text = json_string_value(json_object_get(res, "message"));
	if (strstr(text, "wait for it") || !strstr(text, "reference-not-shared"))
		fail_msg("a booking on a decision IOM's node refused: %s", text);
	assert_non_null(strstr(text, dp));
	json_decref(res);

	res = iom_travel(n, "sweden", r1, "BOOKED", t);
	assert_non_null(res);
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_DECISION_NOT_RECEIVED));
	text = json_string_value(json_object_get(res, "message"));
	if (strstr(text, "wait for it") || !strstr(text, "referral"))
		fail_msg("a booking citing a referral's id: %s", text);
	json_decref(res);

	res = iom_travel(n, "sweden", absent, "BOOKED", t);
	assert_non_null(res);
	text = json_string_value(json_object_get(res, "message"));
	assert_non_null(strstr(text, absent));
	assert_non_null(strstr(text, "wait for it"));
	assert_null(strstr(text, "refused"));
	json_decref(res);
	assert_int_equal(
	    tern_reason_http_status(tern_reason_code(TERN_REASON_DECISION_NOT_RECEIVED)), 409);
	node_free(n);
}

/* sweden accepts R1 again after IOM booked it (a member added: a new
 * acceptance, docs/messages.md "A new decision after a booking needs a new
 * booking"): the thread is accepted again, but the travel IOM booked on it
 * was never cancelled. The booking on portugal's R2 must still be refused
 * (the rule: until that travel is cancelled, or the referral rejected or
 * withdrawn). Before, the re-acceptance freed the case and IOM booked the
 * family on both. Cancelled on R1 (citing the new decision), R2 books. */
static void test_iom_booking_kept_across_a_new_acceptance(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000b1",
	                  r2[] = "01900000-0000-7000-8000-0000000000b2";
	char d1[37], d1b[37], d2[37], t1[37], t2[37], t3[37];
	size_t l1b;
	uint8_t *e1b;
	node *n = node_as(IOM);

	(void)state;
	both_accept(n, r1, r2, d1, d2);
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t1));
	e1b = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1b, d1b, "referralId", r1,
	              NULL, NULL);
	deliver(n, 3, e1b, l1b);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	send_refused_as(iom_travel(n, "portugal", d2, "BOOKED", t2),
	                TERN_REASON_CASE_BOOKED_ELSEWHERE, r1,
	                "IOM booked portugal's referral while sweden's booking, re-accepted, was "
	                "never cancelled");
	/* Cancelled (on the decision that stands), portugal's booking goes. */
	assert_null(iom_travel(n, "sweden", d1b, "CANCELLED", t3));
	assert_null(iom_travel(n, "portugal", d2, "BOOKED", t2));
	free(e1b);
	node_free(n);
}

/* The refusal says what the caseworker can do: a family that departed on
 * sweden's R1 cannot have that travel cancelled (the table allows
 * CANCELLED only while accepted or booked), so the text must not tell IOM
 * to cancel it. */
static void test_iom_booked_elsewhere_text_after_departure(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000d1",
	                  r2[] = "01900000-0000-7000-8000-0000000000d2";
	char d1[37], d2[37], t1[37], t2[37];
	node *n = node_as(IOM);
	json_t *res;
	const char *text;

	(void)state;
	both_accept(n, r1, r2, d1, d2);
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t1));
	assert_null(iom_travel(n, "sweden", d1, "DEPARTED", t1));
	/* What the refusal would advise is refused itself. */
	res = iom_travel(n, "sweden", d1, "CANCELLED", t1);
	assert_non_null(res);
	json_decref(res);
	res = iom_travel(n, "portugal", d2, "BOOKED", t2);
	assert_non_null(res);
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_CASE_BOOKED_ELSEWHERE));
	text = json_string_value(json_object_get(res, "message"));
	assert_non_null(strstr(text, r1));
	if (strstr(text, "cancel") || strstr(text, "CANCELLED"))
		fail_msg("the refusal tells IOM to cancel a travel that departed: %s", text);
	json_decref(res);
	node_free(n);
}

/* A family that departed on sweden's R1 is booked on no other referral,
 * whatever IOM's trace of R1 follows after: a re-acceptance sweden sent
 * while it still saw R1 booked (a member added), crossing IOM's departure
 * report, or a withdrawal unhcr sent the same way. IOM's trace follows
 * such a move out of departed (it judges no one else's moves but out of a
 * final state), so R1 reads accepted, or withdrawn, after the departure.
 * Before, the one-referral rule then took R1 for free (accepted, its last
 * travel no booking; or withdrawn) and IOM booked the family on
 * portugal's R2 too. */
static void test_iom_travelled_family_not_freed_by_a_late_move(void **state)
{
	static const char r1[] = "01900000-0000-7000-8000-0000000000e1",
	                  r2[] = "01900000-0000-7000-8000-0000000000e2";
	char d1[37], d1b[37], d2[37], t1[37], t2[37], wid[37], text[512];
	size_t l1b, lw;
	uint8_t *e1b, *ew;
	node *n = node_as(IOM);
	json_t *res;
	const char *msg;

	(void)state;
	both_accept(n, r1, r2, d1, d2);
	assert_null(iom_travel(n, "sweden", d1, "BOOKED", t1));
	assert_null(iom_travel(n, "sweden", d1, "DEPARTED", t1));
	/* sweden's re-acceptance, sent before it saw the departure. */
	e1b = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &l1b, d1b, "referralId", r1,
	              NULL, NULL);
	deliver(n, 3, e1b, l1b);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	free(e1b);
	res = iom_travel(n, "portugal", d2, "BOOKED", t2);
	if (res == NULL)
		fail_msg("IOM booked portugal's referral after the family departed on sweden's "
		         "(a re-acceptance crossed the departure)");
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_CASE_BOOKED_ELSEWHERE));
	msg = json_string_value(json_object_get(res, "message"));
	assert_non_null(strstr(msg, r1));
	assert_non_null(strstr(msg, "travelled"));
	assert_null(strstr(msg, "cancel"));
	json_decref(res);
	/* unhcr's withdrawal of R1, sent before it saw the departure: R1 is
	 * withdrawn in IOM's trace, and the family still travelled on it. */
	snprintf(text, sizeof(text),
	         "{\"caseId\": \"%s\", \"referralId\": \"%s\", \"kind\": \"WITHDRAWN\", "
	         "\"reason\": \"Another durable solution.\"}",
	         CASE, r1);
	{
		const tern_msgtype *t = tern_msgtype_by_name("case-update");
		ProtobufCMessage *body = NULL;
		json_t *j = json_loads(text, 0, NULL);
		uint8_t *b = NULL;
		size_t blen;
		char err[256];
		assert_non_null(j);
		assert_int_equal(tern_json_decode(t->desc, j, &body, err, sizeof(err)), TERN_OK);
		assert_int_equal(tern_pb_pack(body, &b, &blen), TERN_OK);
		protobuf_c_message_free_unpacked(body, NULL);
		json_decref(j);
		ew = seal(UNHCR, to_sweden_iom, 2, "case-update", CASE, b, blen, &lw, wid);
		free(b);
	}
	deliver(n, 4, ew, lw);
	assert_int_equal(n->batch.dins[0].kind, DIN_ACCEPT);
	node_batch_commit(n);
	free(ew);
	assert_string_equal(stored_thread_state(r1), "withdrawn");
	res = iom_travel(n, "portugal", d2, "BOOKED", t2);
	if (res == NULL)
		fail_msg("IOM booked portugal's referral after the family departed on sweden's "
		         "(a withdrawal crossed the departure)");
	assert_string_equal(json_string_value(json_object_get(res, "error")),
	                    tern_reason_code(TERN_REASON_CASE_BOOKED_ELSEWHERE));
	json_decref(res);
	node_free(n);
}

static int put_old_decision_apply(MDB_txn *txn, void *arg)
{
	/* node_store_receive's record as a node from before the workflow wrote
	 * it (tests/unit/test_node_store.c, OLD_WF_RECEIVED): no sender, no
	 * referral, no root. */
	static const char old[] =
	    "{\"type\":\"acceptance-decision\",\"case_id\":\"" CASE "\",\"outcome\":\"ACCEPTED\"}";
	MDB_val k = {strlen(arg), arg}, v = {strlen(old), (void *)old};

	return mdb_put(txn, tern_store_dbi(st, NS_REFS), &k, &v, 0) == 0 ? TERN_OK : TERN_EIO;
}

/* sweden's acceptance reached IOM before the upgrade to the workflow: its
 * record there names no referral (nor any thread state). IOM's node books
 * on it: a decision it holds and accepted is no decision-not-received (a
 * review checked that the new refusal takes no legitimate booking). Not
 * covered, and documented (docs/messages.md): such a booking is tied to no
 * referral IOM's node can count, so a second booking of the family on
 * another referral is not refused. */
static void test_iom_booking_on_a_pre_workflow_decision(void **state)
{
	static const char dold[] = "01900000-0000-7000-8000-0000000000f1";
	char t1[37];
	node *n = node_as(IOM);
	json_t *res;

	(void)state;
	assert_int_equal(tern_store_write(st, put_old_decision_apply, (void *)dold), TERN_OK);
	res = iom_travel(n, "sweden", dold, "BOOKED", t1);
	if (res)
		fail_msg("a booking on a decision held from before the workflow was refused: %s",
		         json_string_value(json_object_get(res, "message")));
	node_free(n);
}

/* message() under a message id given (a sender's node gives a message with
 * attachments the id it drew when their sealing began, xfer_seal.c). */
static uint8_t *message_as_id(int from, const char *const *to, size_t nto, const char *type_name,
                              size_t *len, const char *id, const char *k1, const char *v1,
                              const char *k2, const char *v2)
{
	size_t blen;
	uint8_t *body = body_of(type_name, &blen, k1, v1, k2, v2, NULL);
	tern_seal_params p = {.sender = names[from],
	                      .sign_key = F.sign[from],
	                      .recipients = to,
	                      .n_recipients = nto,
	                      .type = tern_msgtype_by_name(type_name)->type,
	                      .case_id = CASE,
	                      .message_id = id,
	                      .body = body,
	                      .body_len = blen};
	uint8_t *out = NULL;
	char got[37];

	assert_int_equal(tern_envelope_seal(&p, F.dir, &out, len, got), TERN_OK);
	assert_string_equal(got, id);
	free(body);
	return out;
}

/* The booking T1 and the departure T2 of the test above, T2 held behind
 * T1, and the node killed (kill -9) before the tick that releases them. A
 * start judges what is held again in the order it was held (HeldRecord's
 * order), not by id: the departure's id sorts before the booking's here (an
 * id drawn when a send with attachments began sealing, xfer_seal.c; a
 * sender's clock set back across its restart). Before (a review's test), the
 * departure was judged first and refused wrong-state, and unhcr ended
 * "booked" with the family in the air. */
static void test_held_behind_order_kept_across_a_restart(void **state)
{
	char ref[37], dec[37], t1[37], t2[37];
	size_t dlen, t1len, t2len;
	uint8_t *denv, *t1env, *t2env;
	node *n = node_as(UNHCR);

	(void)state;
	unhcr_refers(n, ref);
	assert_int_equal(tern_uuid_v7(t2), TERN_OK); /* drawn first, sent second */
	assert_int_equal(tern_uuid_v7(t1), TERN_OK);
	assert_true(strcmp(t2, t1) < 0);
	denv = message(SWEDEN, to_unhcr_iom, 2, "acceptance-decision", &dlen, dec, "referralId",
	               ref, NULL, NULL);
	t1env = message_as_id(IOM, to_unhcr_only, 1, "travel-confirmation", &t1len, t1,
	                      "decisionId", dec, NULL, NULL);
	t2env = message_as_id(IOM, to_unhcr_only, 1, "travel-confirmation", &t2len, t2,
	                      "decisionId", dec, "status", "DEPARTED");
	deliver(n, 1, t1env, t1len);
	assert_int_equal(n->batch.dins[0].kind, DIN_HOLD);
	node_batch_commit(n);
	deliver(n, 2, denv, dlen);
	deliver(n, 3, t2env, t2len);
	assert_int_equal(n->batch.dins[1].kind, DIN_HOLD); /* behind T1 */
	node_batch_commit(n);
	node_free(n); /* killed before its next tick */
	n = node_as(UNHCR);
	assert_int_equal(node_held_count(n), 2);
	node_held_tick(n, tern_now_ms());
	for (size_t i = 0; i < n->batch.ndins; i++)
		if (n->batch.dins[i].kind != DIN_ACCEPT)
			fail_msg("%s (%s) refused after the restart: %s: %s",
			         n->batch.dins[i].msgid,
			         strcmp(n->batch.dins[i].msgid, t2) == 0 ? "the departure"
			                                                 : "the booking",
			         n->batch.dins[i].code, n->batch.dins[i].text);
	node_batch_commit(n);
	node_held_tick(n, tern_now_ms());
	node_batch_commit(n);
	assert_int_equal(node_held_count(n), 0);
	assert_string_equal(stored_thread_state(ref), "departed");
	free(denv);
	free(t1env);
	free(t2env);
	node_free(n);
}

/* A message with attachments refused before any transfer (here its header
 * names another case than its body): sweden says ChunkDone, with the
 * reason, once the refusal is committed, so that the broker's copy ends
 * with the other recipients' (or is retained from then) rather than at the
 * message's expiry. Before (a review's finding), only a transfer's end said
 * it, and the broker kept a completed recipient's copy no longer than the
 * envelope's expiry. */
static void test_refused_with_attachments_says_done(void **state)
{
	node *n = node_as(SWEDEN);
	void *ctx = zmq_ctx_new(), *router = zmq_socket(ctx, ZMQ_ROUTER),
	     *dealer = zmq_socket(ctx, ZMQ_DEALER);
	Tern__V1__Frame *fr = NULL;
	uint8_t who[16], buf[4096];
	char id[37];
	size_t len;
	int got;
	uint8_t *env = att_envelope_case(&len, id, "ANOTHER-CASE");

	(void)state;
	assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "sw", 2), 0);
	assert_int_equal(zmq_bind(router, "inproc://refused-done"), 0);
	assert_int_equal(zmq_connect(dealer, "inproc://refused-done"), 0);
	n->dealer = dealer;
	n->connected = 1;
	deliver(n, 1, env, len);
	assert_int_equal(n->batch.dins[0].kind, DIN_REFUSE);
	assert_string_equal(n->batch.dins[0].code, tern_reason_code(TERN_REASON_CASE_MISMATCH));
	node_batch_commit(n);
	for (;;) { /* the receipt goes too, on the same connection */
		int t = 1000;
		zmq_setsockopt(router, ZMQ_RCVTIMEO, &t, sizeof(t));
		assert_int_equal(zmq_recv(router, who, sizeof(who), 0), 2);
		got = zmq_recv(router, buf, sizeof(buf), 0);
		assert_true(got > 0);
		assert_int_equal(tern_hop_decode(buf, (size_t)got, sizeof(buf), &fr), TERN_OK);
		if (fr->body_case == TERN__V1__FRAME__BODY_CHUNK_DONE)
			break;
		tern_pb_free((ProtobufCMessage **)&fr);
	}
	assert_string_equal(fr->chunk_done->message_id, id);
	assert_string_equal(fr->chunk_done->reason_code,
	                    tern_reason_code(TERN_REASON_CASE_MISMATCH));
	tern_pb_free((ProtobufCMessage **)&fr);
	n->dealer = NULL;
	zmq_close(dealer);
	zmq_close(router);
	zmq_ctx_term(ctx);
	free(env);
	node_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_judge_referral, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_bad_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_decision, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_travel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_two_roles_holds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_receipt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deliver_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delivery_not_taken_stops_the_rest, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_failed_commit_takes_nothing_more, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_commit_says_hello, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notice_keeps_rejected_receipt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_notice_after_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notice_keeps_old_rejected_receipt, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refusal_after_receipts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_welcome_unwritten_not_connected, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_welcome_shortage_no_false_restore, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ack_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_until_the_reference_comes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_release_after_failed_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_receipt_not_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge_oom_not_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_oom_not_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_shortage_not_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_receipt_shortage_not_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_push_shortage_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_redelivery_shortage_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_workflow_shortage_judged_alike, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_notice_shortage_not_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_commit_shortage_all_or_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_send_shortage_all_or_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_attachment_shortage_not_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_transfer_start_shortage_not_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_transfer_load_shortage_not_lost, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_spool_sweep_keeps_waiting_transfer, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_spool_sweep_shortage_keeps_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_with_attachment_complete_judged, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_old_json_transfer_rewritten_as_protobuf, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_body_over_budget_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom_every_time_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom_tries_per_epoch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_frame_oom_stops_deliveries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_release_judge_oom, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_release_oom_every_time_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_judge_oom_every_time_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_start_shortage_ends_no_memory, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_old_shortage_ends_incomplete, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_chunk_shortage_ends_no_memory, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_request_shortage_ends_no_memory, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unsealable_receipt_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_own_fault_holds_delivery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_round_stops_on_own_fault, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_judged_after_failed_commit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refused_send_keeps_no_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_released_after_a_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_old_json_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_travel_citing_a_refused_decision_held, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_citing_a_refused_decision_released, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_booking_overtaken_by_the_departure, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_update_goes_to_the_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_behind_without_room_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iom_books_one_referral_at_a_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iom_books_only_a_decision_it_holds, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_iom_decision_not_received_says_which, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_iom_booking_kept_across_a_new_acceptance, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_iom_travelled_family_not_freed_by_a_late_move,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iom_booking_on_a_pre_workflow_decision, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_iom_booked_elsewhere_text_after_departure, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_behind_a_sibling_released_this_turn, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_behind_order_kept_across_a_restart, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refused_with_attachments_says_done, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_damaged_text_passed_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_held_load_shortage_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_old_held_load_shortage_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_xout_load_shortage_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_upload_sweep_shortage_keeps, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_every_upload_read_shortage_not_gone, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_cap_within_a_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_case_view_under_junk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_case_view_shortage_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_case_view_damaged_text_not_shortage, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_instant_frame_shortage_ends_incomplete,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_instant_request_shortage_ends_incomplete,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_xin_status_shortage_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_bytes_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receipts_and_notices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_submit_results, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_after_sender_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_forged_at_rest_not_shown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_swapped_at_rest_not_shown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_next_past_unshowable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_next_shortage_not_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_read_shortage_not_unknown, setup, teardown),
	    cmocka_unit_test(test_result_deferral),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

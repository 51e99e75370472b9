/* Envelopes: seal, verify, authorize and open, and every way each refuses.
 *
 * Over 800 lines on purpose: envelopes are one module, tested by one executable,
 * over one federation fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include <tern/directory.h>
#include <tern/attach.h>
#include <tern/crypto.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/uuid.h>

#include "directory_int.h"
#include "failmalloc.h"
#include "util.h"

enum { UNHCR, SWEDEN, PORTUGAL, IOM, NNODES };

static const char *const names[NNODES] = {"unhcr", "sweden", "portugal", "iom"};
static const unsigned roles[NNODES] = {TERN_ROLE_REFERRER, TERN_ROLE_STATE, TERN_ROLE_STATE,
                                       TERN_ROLE_MOVEMENT};

struct fixture {
	tern_signkey *sign[NNODES];
	tern_sealkey *seal[NNODES];
	tern_directory *dir;
	uint8_t body[1024];
};

/* A directory of the four nodes; skip leaves one out, revoke marks one revoked
 * (-1 for neither). */
static int expire_node = -1; /* make_dir marks this node's certificate expired */

static tern_directory *make_dir(struct fixture *f, int skip, int revoke)
{
	tern_directory *d = NULL;

	assert_int_equal(tern_directory_new("test", 1, &d), TERN_OK);
	for (int i = 0; i < NNODES; i++) {
		tern_member m;
		if (i == skip)
			continue;
		memset(&m, 0, sizeof(m));
		strcpy(m.node_id, names[i]);
		m.agency = (char *)names[i];
		m.roles = roles[i];
		memcpy(m.sign_public, tern_signkey_public(f->sign[i]), 32);
		memcpy(m.seal_public, tern_sealkey_public(f->seal[i]), 32);
		randombytes_buf(m.curve_public, 32);
		m.revoked = i == revoke;
		m.expired = i == expire_node;
		assert_int_equal(tern_directory_add(d, &m), TERN_OK);
	}
	return d;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (int i = 0; i < NNODES; i++) {
		assert_int_equal(tern_signkey_generate(&f->sign[i]), TERN_OK);
		assert_int_equal(tern_sealkey_generate(&f->seal[i]), TERN_OK);
	}
	f->dir = make_dir(f, -1, -1);
	for (size_t i = 0; i < sizeof(f->body); i++)
		f->body[i] = (uint8_t)(i * 7 + 3);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < NNODES; i++) {
		tern_signkey_free(&f->sign[i]);
		tern_sealkey_free(&f->seal[i]);
	}
	tern_directory_free(&f->dir);
	free(f);
	return 0;
}

static const char *const to_sweden_iom[] = {"sweden", "iom"};

/* unhcr -> sweden, iom: a case referral with f->body, through seal cache c
 * (NULL: none). */
static void seal_through(struct fixture *f, tern_sealcache *c, int64_t created_at, uint8_t **out,
                         size_t *len, char id[37])
{
	tern_seal_params p = {
	    .sender = "unhcr",
	    .sign_key = f->sign[UNHCR],
	    .recipients = to_sweden_iom,
	    .n_recipients = 2,
	    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	    .case_id = "UNHCR-KEN-2024-000123",
	    .body = f->body,
	    .body_len = sizeof(f->body),
	    .created_at = created_at,
	    .cache = c,
	};
	assert_int_equal(tern_envelope_seal(&p, f->dir, out, len, id), TERN_OK);
}

static void seal_default(struct fixture *f, int64_t created_at, uint8_t **out, size_t *len,
                         char id[37])
{
	seal_through(f, NULL, created_at, out, len, id);
}

static int verify(const uint8_t *buf, size_t len, const tern_directory *dir)
{
	tern_envelope *env = NULL;
	int rc = tern_envelope_verify(buf, len, dir, NULL, &env);

	if (rc == TERN_OK)
		assert_non_null(env);
	else
		assert_null(env);
	tern_envelope_free(&env);
	return rc;
}

static void open_ok(struct fixture *f, const tern_envelope *env, int who)
{
	uint8_t *body = NULL;
	size_t len = 0;

	assert_int_equal(tern_envelope_open(env, names[who], f->seal[who], &body, &len), TERN_OK);
	assert_int_equal(len, sizeof(f->body));
	assert_memory_equal(body, f->body, len);
	tern_envelope_body_free(&body, len);
	assert_null(body);
}

static void test_seal_verify_open(void **state)
{
	struct fixture *f = *state;
	tern_envelope *env = NULL;
	const Tern__V1__Header *h;
	uint8_t *buf = NULL, *body = NULL;
	size_t len = 0, blen = 0;
	char id[37];
	int64_t t;

	seal_default(f, 0, &buf, &len, id);
	assert_true(tern_uuid_valid(id));
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	h = tern_envelope_header(env);
	assert_int_equal(h->schema_version, 1);
	assert_string_equal(h->message_id, id);
	assert_string_equal(h->sender, "unhcr");
	assert_int_equal(h->n_recipients, 2);
	assert_string_equal(h->recipients[0], "sweden");
	assert_string_equal(h->recipients[1], "iom");
	assert_int_equal(h->type, TERN__V1__MESSAGE_TYPE__CASE_REFERRAL);
	assert_string_equal(h->case_id, "UNHCR-KEN-2024-000123");
	assert_string_equal(h->in_reply_to, "");
	assert_int_equal(h->body_digest.len, 32);
	assert_int_equal(tern_uuid_v7_time(id, &t), TERN_OK);
	assert_true(llabs(h->created_at - tern_now_ms()) < 60000);
	assert_true(llabs(t - h->created_at) < 1000);
	assert_string_equal(tern_envelope_sender(env)->node_id, "unhcr");
	assert_int_equal(tern_envelope_authorize(env), TERN_OK);

	/* Both recipients open the same plaintext. */
	open_ok(f, env, SWEDEN);
	open_ok(f, env, IOM);

	/* Portugal is in the federation but not addressed. */
	assert_int_equal(tern_envelope_open(env, "portugal", f->seal[PORTUGAL], &body, &blen),
	                 TERN_ENOTRCPT);
	assert_null(body);
	/* The right name with the wrong key. */
	assert_int_equal(tern_envelope_open(env, "sweden", f->seal[IOM], &body, &blen),
	                 TERN_EDECRYPT);
	assert_int_equal(tern_envelope_open(env, "iom", f->seal[PORTUGAL], &body, &blen),
	                 TERN_EDECRYPT);
	assert_null(body);

	tern_envelope_free(&env);
	assert_null(env);
	tern_envelope_free(&env);
	free(buf);
}

/* Unpacks an envelope the test itself made. */
static Tern__V1__Envelope *unpack_env(const uint8_t *buf, size_t len)
{
	Tern__V1__Envelope *e = tern__v1__envelope__unpack(NULL, len, buf);

	assert_non_null(e);
	return e;
}

static void repack_env(const Tern__V1__Envelope *e, uint8_t **out, size_t *len)
{
	*len = tern__v1__envelope__get_packed_size(e);
	*out = malloc(*len);
	assert_non_null(*out);
	tern__v1__envelope__pack(e, *out);
}

/* What a failed envelope claims: read within bounds, and only well-formed
 * ids are passed on (they go into logs and audit entries). */
static void test_claims(void **state)
{
	struct fixture *f = *state;
	tern_envelope_claim c;
	Tern__V1__Envelope *e;
	Tern__V1__Header *h;
	uint8_t *buf = NULL, *hb, *eb;
	size_t len = 0, hl, el;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	assert_int_equal(tern_envelope_claims(buf, len, &c), TERN_OK);
	assert_string_equal(c.message_id, id);
	assert_string_equal(c.sender, "unhcr");
	assert_string_equal(c.case_id, "UNHCR-KEN-2024-000123");
	/* Cut short: nothing decodes, every field is empty. */
	assert_int_equal(tern_envelope_claims(buf, len / 2, &c), TERN_EMALFORMED);
	assert_string_equal(c.message_id, "");
	assert_string_equal(c.sender, "");
	/* A header whose id, sender and case id are not well-formed. */
	e = tern__v1__envelope__unpack(NULL, len, buf);
	assert_non_null(e);
	h = tern__v1__header__unpack(NULL, e->header.len, e->header.data);
	assert_non_null(h);
	char *keep[3] = {h->message_id, h->sender, h->case_id};
	ProtobufCBinaryData keep_header = e->header;
	h->message_id = "not-a-uuid";
	h->sender = "Bad Sender\n";
	h->case_id = "CASE\x1b[2J";
	hl = tern__v1__header__get_packed_size(h);
	hb = malloc(hl);
	tern__v1__header__pack(h, hb);
	e->header.data = hb;
	e->header.len = hl;
	el = tern__v1__envelope__get_packed_size(e);
	eb = malloc(el);
	tern__v1__envelope__pack(e, eb);
	assert_int_equal(tern_envelope_claims(eb, el, &c), TERN_OK);
	assert_string_equal(c.message_id, "");
	assert_string_equal(c.sender, "");
	assert_string_equal(c.case_id, "");
	free(eb);
	free(hb);
	/* The unpacked fields were replaced: restore them before freeing. */
	h->message_id = keep[0];
	h->sender = keep[1];
	h->case_id = keep[2];
	e->header = keep_header;
	tern__v1__header__free_unpacked(h, NULL);
	tern__v1__envelope__free_unpacked(e, NULL);
	free(buf);
}

static void test_every_header_byte(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf, *mod, *orig;
	size_t len, mlen, hlen;
	Tern__V1__Envelope *e;
	char id[37];
	size_t rejected = 0;

	seal_default(f, 0, &buf, &len, id);
	e = unpack_env(buf, len);
	hlen = e->header.len;
	orig = malloc(hlen);
	memcpy(orig, e->header.data, hlen);
	for (size_t i = 0; i < hlen; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(e->header.data, orig, hlen);
			e->header.data[i] ^= (uint8_t)(1u << bit);
			repack_env(e, &mod, &mlen);
			if (verify(mod, mlen, f->dir) != TERN_OK)
				rejected++;
			else
				fail_msg("header byte %zu bit %d flipped was accepted", i, bit);
			free(mod);
		}
	}
	assert_int_equal(rejected, hlen * 8);
	print_message("header flips rejected: %zu (%zu bytes x 8 bits)\n", rejected, hlen);
	free(orig);
	tern__v1__envelope__free_unpacked(e, NULL);
	free(buf);
}

static void test_body_and_signature_flips(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf, *mod;
	size_t len, mlen;
	Tern__V1__Envelope *e;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	e = unpack_env(buf, len);
	/* Every byte of the sealed body: first, middle (ciphertext), last (tag). */
	for (size_t i = 0; i < e->sealed_body.len; i++) {
		e->sealed_body.data[i] ^= 0x01;
		repack_env(e, &mod, &mlen);
		assert_int_equal(verify(mod, mlen, f->dir), TERN_EDIGEST);
		free(mod);
		e->sealed_body.data[i] ^= 0x01;
	}
	for (size_t i = 0; i < e->signature->ed25519.len; i++) {
		e->signature->ed25519.data[i] ^= 0x80;
		repack_env(e, &mod, &mlen);
		assert_int_equal(verify(mod, mlen, f->dir), TERN_EBADSIG);
		free(mod);
		e->signature->ed25519.data[i] ^= 0x80;
	}
	/* Restored, it verifies again: the loop really flipped and unflipped. */
	repack_env(e, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_OK);
	free(mod);
	tern__v1__envelope__free_unpacked(e, NULL);
	free(buf);
}

static void test_sender_checks(void **state)
{
	struct fixture *f = *state;
	tern_directory *nounhcr = make_dir(f, UNHCR, -1);
	tern_directory *revoked = make_dir(f, -1, UNHCR);
	tern_directory *sweden_revoked = make_dir(f, -1, SWEDEN);
	uint8_t *buf;
	size_t len;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	assert_int_equal(verify(buf, len, nounhcr), TERN_EUNKNOWN);
	assert_int_equal(verify(buf, len, revoked), TERN_EREVOKED);
	/* A revoked recipient does not stop verification of someone else's message. */
	assert_int_equal(verify(buf, len, sweden_revoked), TERN_OK);
	free(buf);

	/* A directory whose unhcr entry has another signing key: a forgery. */
	{
		tern_signkey *other = NULL;
		tern_directory *d = NULL;
		assert_int_equal(tern_signkey_generate(&other), TERN_OK);
		tern_signkey_free(&f->sign[UNHCR]);
		f->sign[UNHCR] = other;
		d = f->dir;
		f->dir = make_dir(f, -1, -1);
		seal_default(f, 0, &buf, &len, id);
		assert_int_equal(verify(buf, len, f->dir), TERN_OK);
		assert_int_equal(verify(buf, len, d), TERN_EBADSIG);
		free(buf);
		tern_directory_free(&d);
	}
	tern_directory_free(&nounhcr);
	tern_directory_free(&revoked);
	tern_directory_free(&sweden_revoked);
}

/* verify with opts.accepted_digest = digest; opens it for sweden. */
static int verify_accepted(struct fixture *f, const uint8_t *buf, size_t len,
                           const tern_directory *dir, const uint8_t digest[32],
                           const tern_member **sender)
{
	tern_verify_opts o = {.accepted_digest = digest};
	tern_envelope *env = NULL;
	int rc = tern_envelope_verify(buf, len, dir, &o, &env);

	if (rc == TERN_OK) {
		open_ok(f, env, SWEDEN);
		*sender = tern_envelope_sender(env);
	}
	tern_envelope_free(&env);
	return rc;
}

/* What a recipient accepted stays readable by it whatever its sender's
 * standing becomes (revoked, left the directory, key replaced), while the
 * bytes are still those it accepted: its digest, kept at acceptance, stands
 * for the checks made then. Other bytes, or no such digest, are checked in
 * full: a forgery gains nothing. */
static void test_accepted_digest(void **state)
{
	struct fixture *f = *state;
	tern_directory *nounhcr = make_dir(f, UNHCR, -1);
	tern_directory *revoked = make_dir(f, -1, UNHCR);
	const tern_member *sender = NULL;
	uint8_t *buf, digest[32], other[32];
	size_t len;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	assert_int_equal(tern_sha256(buf, len, digest), TERN_OK);
	memcpy(other, digest, 32);
	other[0] ^= 1;
	assert_int_equal(verify_accepted(f, buf, len, revoked, digest, &sender), TERN_OK);
	assert_non_null(sender);
	assert_int_equal(verify_accepted(f, buf, len, revoked, other, &sender), TERN_EREVOKED);
	assert_int_equal(verify_accepted(f, buf, len, nounhcr, digest, &sender), TERN_OK);
	assert_null(sender); /* left the directory */
	{
		tern_verify_opts o = {.accepted_digest = digest};
		tern_envelope *env = NULL;
		assert_int_equal(tern_envelope_verify(buf, len, nounhcr, &o, &env), TERN_OK);
		assert_int_equal(tern_envelope_authorize(env), TERN_EROLE);
		tern_envelope_free(&env);
	}
	/* Its key replaced since: the old signature stands for what was kept. */
	{
		tern_signkey *newkey = NULL, *old = f->sign[UNHCR];
		tern_directory *d;
		assert_int_equal(tern_signkey_generate(&newkey), TERN_OK);
		f->sign[UNHCR] = newkey;
		d = make_dir(f, -1, -1);
		f->sign[UNHCR] = old;
		assert_int_equal(verify(buf, len, d), TERN_EBADSIG);
		assert_int_equal(verify_accepted(f, buf, len, d, digest, &sender), TERN_OK);
		tern_directory_free(&d);
		tern_signkey_free(&newkey);
	}
	/* A byte changed: not what was accepted, so checked in full. */
	buf[len - 1] ^= 1;
	assert_int_not_equal(verify_accepted(f, buf, len, revoked, digest, &sender), TERN_OK);
	assert_int_not_equal(verify_accepted(f, buf, len, f->dir, digest, &sender), TERN_OK);
	/* Bytes whose digest is the accepted one but whose sealed body was
	 * swapped cannot exist; the body digest is still checked all the same. */
	free(buf);
	tern_directory_free(&nounhcr);
	tern_directory_free(&revoked);
}

static void test_clock_skew(void **state)
{
	struct fixture *f = *state;
	int64_t now = tern_now_ms();
	tern_verify_opts o = {0};
	tern_envelope *env = NULL;
	uint8_t *buf;
	size_t len;
	char id[37];

	seal_default(f, now - 10 * 60 * 1000, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_ESKEW);
	o.max_skew_ms = 11 * 60 * 1000;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	tern_envelope_free(&env);
	free(buf);

	seal_default(f, now + 10 * 60 * 1000, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_ESKEW);
	o.max_skew_ms = 0;
	o.now_ms = now + 10 * 60 * 1000;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	tern_envelope_free(&env);
	free(buf);

	/* Inside the default five minutes either way. */
	seal_default(f, now + 4 * 60 * 1000, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_OK);
	free(buf);
	seal_default(f, now - 4 * 60 * 1000, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_OK);
	free(buf);
	/* Hostile extremes must not overflow into acceptance. */
	seal_default(f, INT64_MIN + 1, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_ESKEW);
	free(buf);
	seal_default(f, INT64_MAX, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_ESKEW);
	free(buf);
}

static void test_size_garbage_truncation(void **state)
{
	struct fixture *f = *state;
	tern_verify_opts o = {0};
	tern_envelope *env = NULL;
	uint8_t *buf, garbage[512];
	size_t len;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	o.max_size = len - 1;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_ETOOBIG);
	assert_null(env);
	o.max_size = len;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	tern_envelope_free(&env);
	/* Over the default 8 MiB, whatever the bytes. */
	{
		size_t big = TERN_ENVELOPE_MAX_SIZE_DEFAULT + 1;
		uint8_t *b = calloc(1, big);
		assert_non_null(b);
		assert_int_equal(verify(b, big, f->dir), TERN_ETOOBIG);
		free(b);
	}

	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(verify(buf, cut, f->dir), TERN_EMALFORMED);
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + randombytes_uniform(sizeof(garbage));
		randombytes_buf(garbage, n);
		assert_int_equal(verify(garbage, n, f->dir), TERN_EMALFORMED);
	}
	memset(garbage, 0xff, sizeof(garbage));
	assert_int_equal(verify(garbage, sizeof(garbage), f->dir), TERN_EMALFORMED);
	free(buf);
}

static void test_roles(void **state)
{
	struct fixture *f = *state;
	const char *to_unhcr[] = {"unhcr"};
	tern_seal_params p = {
	    .sender = "sweden",
	    .sign_key = f->sign[SWEDEN],
	    .recipients = to_unhcr,
	    .n_recipients = 1,
	    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	    .case_id = "UNHCR-KEN-2024-000123",
	    .body = f->body,
	    .body_len = 10,
	};
	tern_envelope *env = NULL;
	uint8_t *buf;
	size_t len;

	/* A State may not refer cases... */
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_authorize(env), TERN_EROLE);
	tern_envelope_free(&env);
	free(buf);
	/* ...but decides on them. */
	p.type = TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_authorize(env), TERN_OK);
	tern_envelope_free(&env);
	free(buf);
	/* IOM may not decide; anyone may send a receipt. */
	p.sender = "iom";
	p.sign_key = f->sign[IOM];
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_authorize(env), TERN_EROLE);
	tern_envelope_free(&env);
	free(buf);
	p.type = TERN__V1__MESSAGE_TYPE__RECEIPT;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_authorize(env), TERN_OK);
	tern_envelope_free(&env);
	free(buf);
}

static void test_seal_refusals(void **state)
{
	struct fixture *f = *state;
	const char *dup[] = {"sweden", "sweden"};
	const char *stranger[] = {"sweden", "canada"};
	const char *bad[] = {"Sweden"};
	const char *one[] = {"sweden"};
	tern_seal_params p = {
	    .sender = "unhcr",
	    .sign_key = f->sign[UNHCR],
	    .recipients = one,
	    .n_recipients = 1,
	    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	    .case_id = "C-1",
	    .body = f->body,
	    .body_len = 1,
	};
	tern_directory *revoked = make_dir(f, -1, SWEDEN);
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_OK);
	free(buf);
	buf = NULL;
	p.recipients = dup;
	p.n_recipients = 2;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.recipients = stranger;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EUNKNOWN);
	p.recipients = bad;
	p.n_recipients = 1;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.n_recipients = 0;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.recipients = one;
	p.n_recipients = 1;
	assert_int_equal(tern_envelope_seal(&p, revoked, &buf, &len, NULL), TERN_EREVOKED);
	p.sign_key = f->sign[IOM];
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.sign_key = f->sign[UNHCR];
	p.type = TERN__V1__MESSAGE_TYPE__MESSAGE_TYPE_UNSPECIFIED;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL;
	p.in_reply_to = "not-a-uuid";
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	p.in_reply_to = NULL;
	p.case_id = "line\nbreak";
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, NULL), TERN_EINVAL);
	assert_null(buf);
	tern_directory_free(&revoked);
}

/* Re-signs a modified header with unhcr's real key: what a member gone bad,
 * or a bug, could produce. Checks that refuses such envelopes come from the
 * rules, not from the signature. */
typedef void (*header_edit)(Tern__V1__Header *h, void *arg);

static void resign(struct fixture *f, const uint8_t *buf, size_t len, header_edit edit, void *arg,
                   const ProtobufCBinaryData *sealed, uint8_t **out, size_t *out_len)
{
	Tern__V1__Envelope *e = unpack_env(buf, len);
	Tern__V1__Header *h = tern__v1__header__unpack(NULL, e->header.len, e->header.data);
	Tern__V1__Envelope ec;
	Tern__V1__Header hc;
	uint8_t *hb, digest[32];
	size_t hl;

	assert_non_null(h);
	/* Edits go into shallow copies, so the unpacked originals free cleanly. */
	hc = *h;
	ec = *e;
	if (sealed != NULL) {
		ec.sealed_body = *sealed;
		crypto_hash_sha256(digest, sealed->data, sealed->len);
		hc.body_digest.data = digest;
	}
	if (edit)
		edit(&hc, arg);
	hl = tern__v1__header__get_packed_size(&hc);
	hb = malloc(hl);
	assert_non_null(hb);
	tern__v1__header__pack(&hc, hb);
	ec.header.data = hb;
	ec.header.len = hl;
	assert_int_equal(
	    tern_sign(f->sign[UNHCR], TERN_ENVELOPE_SIGN_LABEL, hb, hl, e->signature->ed25519.data),
	    TERN_OK);
	repack_env(&ec, out, out_len);
	free(hb);
	tern__v1__header__free_unpacked(h, NULL);
	tern__v1__envelope__free_unpacked(e, NULL);
}

static void set_version(Tern__V1__Header *h, void *arg)
{
	h->schema_version = *(uint32_t *)arg;
}

static void drop_recipients(Tern__V1__Header *h, void *arg)
{
	(void)arg;
	h->n_recipients = 0;
}

static void set_message_id(Tern__V1__Header *h, void *arg)
{
	h->message_id = arg;
}

static void set_case_id(Tern__V1__Header *h, void *arg)
{
	h->case_id = arg;
}

static void add_portugal(Tern__V1__Header *h, void *arg)
{
	static char *three[3];
	three[0] = h->recipients[0];
	three[1] = h->recipients[1];
	three[2] = arg;
	h->recipients = three;
	h->n_recipients = 3;
}

static void test_rules_behind_a_valid_signature(void **state)
{
	struct fixture *f = *state;
	tern_envelope *env = NULL;
	uint8_t *buf, *mod, *body = NULL;
	size_t len, mlen, blen;
	uint32_t v = 2;
	char id[37];

	seal_default(f, 0, &buf, &len, id);

	resign(f, buf, len, NULL, NULL, NULL, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_OK); /* the harness is sound */
	free(mod);
	resign(f, buf, len, set_version, &v, NULL, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_EVERSION);
	free(mod);
	v = 0;
	resign(f, buf, len, set_version, &v, NULL, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_EVERSION);
	free(mod);
	resign(f, buf, len, drop_recipients, NULL, NULL, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_EMALFORMED);
	free(mod);
	resign(f, buf, len, set_message_id, "0190B5C2-7D4E-7A3B-9F12-3C4D5E6F7A8B", NULL, &mod,
	       &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_EMALFORMED);
	free(mod);

	/* Header fields are the body's associated data: a changed case id or an
	 * added recipient, even re-signed, does not open. */
	resign(f, buf, len, set_case_id, "UNHCR-KEN-2024-000124", NULL, &mod, &mlen);
	assert_int_equal(tern_envelope_verify(mod, mlen, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_open(env, "sweden", f->seal[SWEDEN], &body, &blen),
	                 TERN_EDECRYPT);
	assert_null(body);
	tern_envelope_free(&env);
	free(mod);
	resign(f, buf, len, add_portugal, "portugal", NULL, &mod, &mlen);
	assert_int_equal(tern_envelope_verify(mod, mlen, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_open(env, "sweden", f->seal[SWEDEN], &body, &blen),
	                 TERN_EDECRYPT);
	/* Named in the header, but no key was wrapped for it. */
	assert_int_equal(tern_envelope_open(env, "portugal", f->seal[PORTUGAL], &body, &blen),
	                 TERN_ENOTRCPT);
	tern_envelope_free(&env);
	free(mod);

	/* A sealed body that is not a SealedBody, with a matching signed digest. */
	{
		uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
		ProtobufCBinaryData s = {sizeof(junk), junk};
		resign(f, buf, len, NULL, NULL, &s, &mod, &mlen);
		assert_int_equal(tern_envelope_verify(mod, mlen, f->dir, NULL, &env), TERN_OK);
		assert_int_equal(tern_envelope_open(env, "sweden", f->seal[SWEDEN], &body, &blen),
		                 TERN_EMALFORMED);
		tern_envelope_free(&env);
		free(mod);
	}
	/* A ciphertext byte changed and the digest re-signed: the tag catches it. */
	{
		Tern__V1__Envelope *e = unpack_env(buf, len);
		Tern__V1__SealedBody *sb =
		    tern__v1__sealed_body__unpack(NULL, e->sealed_body.len, e->sealed_body.data);
		ProtobufCBinaryData s;
		assert_non_null(sb);
		sb->ciphertext.data[5] ^= 1;
		s.len = tern__v1__sealed_body__get_packed_size(sb);
		s.data = malloc(s.len);
		tern__v1__sealed_body__pack(sb, s.data);
		resign(f, buf, len, NULL, NULL, &s, &mod, &mlen);
		assert_int_equal(tern_envelope_verify(mod, mlen, f->dir, NULL, &env), TERN_OK);
		assert_int_equal(tern_envelope_open(env, "iom", f->seal[IOM], &body, &blen),
		                 TERN_EDECRYPT);
		assert_null(body);
		tern_envelope_free(&env);
		free(mod);
		free(s.data);
		tern__v1__sealed_body__free_unpacked(sb, NULL);
		tern__v1__envelope__free_unpacked(e, NULL);
	}
	free(buf);
}

/* Signs raw header bytes with unhcr's key and builds the envelope around them. */
static void sign_raw_header(struct fixture *f, const uint8_t *buf, size_t len, const uint8_t *hb,
                            size_t hl, uint8_t **out, size_t *out_len)
{
	Tern__V1__Envelope *e = unpack_env(buf, len);
	Tern__V1__Envelope ec = *e;

	ec.header.data = (uint8_t *)hb;
	ec.header.len = hl;
	assert_int_equal(
	    tern_sign(f->sign[UNHCR], TERN_ENVELOPE_SIGN_LABEL, hb, hl, e->signature->ed25519.data),
	    TERN_OK);
	repack_env(&ec, out, out_len);
	tern__v1__envelope__free_unpacked(e, NULL);
}

/* Bytes that decode but are not the canonical encoding of what they decode
 * to would let a sender carry data past every check (and other protobuf
 * readers could see other values): all are refused, even validly signed. */
static void test_non_canonical_headers(void **state)
{
	struct fixture *f = *state;
	Tern__V1__Envelope *e;
	uint8_t *buf, *mod, hb[512];
	size_t len, mlen, hl;
	char id[37];
	static const uint8_t unknown_field[] = {0x78, 0x01};           /* field 15 = 1 */
	static const uint8_t dup_case[] = {0x32, 0x03, 'C', '-', '1'}; /* case_id again */
	static const uint8_t nul_case[] = {0x32, 0x08, 'C', '-', '1', 0, 'A', 'm', 'i', 'n'};
	const uint8_t *extras[] = {unknown_field, dup_case, nul_case};
	const size_t extra_len[] = {sizeof(unknown_field), sizeof(dup_case), sizeof(nul_case)};

	seal_default(f, 0, &buf, &len, id);
	e = unpack_env(buf, len);
	assert_true(e->header.len + 16 < sizeof(hb));
	/* The harness is sound: the unchanged bytes, re-signed, verify. */
	sign_raw_header(f, buf, len, e->header.data, e->header.len, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_OK);
	free(mod);
	for (size_t i = 0; i < 3; i++) {
		memcpy(hb, e->header.data, e->header.len);
		memcpy(hb + e->header.len, extras[i], extra_len[i]);
		hl = e->header.len + extra_len[i];
		sign_raw_header(f, buf, len, hb, hl, &mod, &mlen);
		assert_int_equal(verify(mod, mlen, f->dir), TERN_EMALFORMED);
		assert_non_null(strstr(tern_errdetail(), "Header"));
		free(mod);
	}
	tern__v1__envelope__free_unpacked(e, NULL);
	free(buf);
}

static void test_expired_sender_and_crl(void **state)
{
	struct fixture *f = *state;
	tern_directory *expired;
	tern_verify_opts o = {0};
	tern_envelope *env = NULL;
	const tern_member *m;
	uint8_t *buf;
	size_t len;
	char id[37];

	seal_default(f, 0, &buf, &len, id);
	expire_node = UNHCR;
	expired = make_dir(f, -1, -1);
	expire_node = -1;
	assert_int_equal(verify(buf, len, expired), TERN_EEXPIRED);
	tern_directory_free(&expired);

	/* A certificate whose notAfter passes while the process runs. */
	assert_int_equal(tern_directory_find(f->dir, "unhcr", &m), TERN_OK);
	((tern_member *)m)->cert_not_after = tern_now_ms() / 1000 + 3600;
	assert_int_equal(verify(buf, len, f->dir), TERN_OK);
	o.now_ms = tern_now_ms() + 2 * 3600 * 1000;
	o.max_skew_ms = 3 * 3600 * 1000;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_EEXPIRED);
	assert_null(env);
	((tern_member *)m)->cert_not_after = 0;
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	tern_envelope_free(&env);
	/* Past the CRL's nextUpdate every sender is refused until a new CRL. */
	((struct tern_directory *)f->dir)->crl_next_update = tern_now_ms() / 1000 - 1;
	assert_int_equal(verify(buf, len, f->dir), TERN_EEXPIRED);
	((struct tern_directory *)f->dir)->crl_next_update = tern_now_ms() / 1000 + 3600;
	assert_int_equal(verify(buf, len, f->dir), TERN_OK);
	((struct tern_directory *)f->dir)->crl_next_update = 0;

	free(buf);

	/* Neither sending from nor to an expired member. */
	expire_node = SWEDEN;
	expired = make_dir(f, -1, -1);
	expire_node = -1;
	{
		tern_seal_params p = {.sender = "unhcr",
		                      .sign_key = f->sign[UNHCR],
		                      .recipients = to_sweden_iom,
		                      .n_recipients = 2,
		                      .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
		                      .body = f->body,
		                      .body_len = sizeof(f->body)};
		assert_int_equal(tern_envelope_seal(&p, expired, &buf, &len, id), TERN_EEXPIRED);
	}
	tern_directory_free(&expired);
}

/* A node back from days offline gets old messages: with future_skew_only they
 * pass, while a created-at in the future is still refused. */
static void test_future_only_skew(void **state)
{
	struct fixture *f = *state;
	tern_verify_opts o = {.future_skew_only = 1};
	tern_envelope *env = NULL;
	uint8_t *buf;
	size_t len;
	char id[37];

	seal_default(f, tern_now_ms() - 3 * 24 * 3600 * 1000LL, &buf, &len, id);
	assert_int_equal(verify(buf, len, f->dir), TERN_ESKEW);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	tern_envelope_free(&env);
	free(buf);
	seal_default(f, tern_now_ms() + 3600 * 1000, &buf, &len, id);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_ESKEW);
	free(buf);
}

static void set_expires(Tern__V1__Header *h, void *arg)
{
	h->expires_at = *(int64_t *)arg;
}

/* The sealed body of a serialized envelope (the caller frees it). */
static Tern__V1__SealedBody *sealed_body_of(const uint8_t *buf, size_t len)
{
	Tern__V1__Envelope *e = tern__v1__envelope__unpack(NULL, len, buf);
	Tern__V1__SealedBody *sb;

	assert_non_null(e);
	sb = tern__v1__sealed_body__unpack(NULL, e->sealed_body.len, e->sealed_body.data);
	assert_non_null(sb);
	tern__v1__envelope__free_unpacked(e, NULL);
	return sb;
}

/* Opens buf for who, with cache c (NULL: none); returns the result code. */
static int open_with(struct fixture *f, const uint8_t *buf, size_t len, const char *as, int key,
                     tern_sealcache *c)
{
	tern_envelope *env = NULL;
	uint8_t *body = NULL;
	size_t blen = 0;
	int rc;

	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	rc = tern_envelope_open_cached(env, as, f->seal[key], c, &body, &blen);
	if (rc == TERN_OK) {
		assert_int_equal(blen, sizeof(f->body));
		assert_memory_equal(body, f->body, blen);
		tern_envelope_body_free(&body, blen);
	}
	tern_envelope_free(&env);
	return rc;
}

/* A seal cache reuses the ephemeral key within its bounds and nothing else;
 * an open cache answers only for the key and ephemeral it computed. */
static void test_sealcache(void **state)
{
	struct fixture *f = *state;
	tern_sealcache *sc = NULL, *rc_sweden = NULL, *rc_iom = NULL;
	uint8_t *e[4] = {NULL};
	size_t el[4];
	Tern__V1__SealedBody *sb[4];
	uint64_t hits, misses;

	assert_int_equal(tern_sealcache_new(0, 3, &sc), TERN_OK);
	assert_int_equal(tern_sealcache_new(0, 0, &rc_sweden), TERN_OK);
	assert_int_equal(tern_sealcache_new(0, 0, &rc_iom), TERN_OK);
	for (int i = 0; i < 4; i++) {
		seal_through(f, sc, 0, &e[i], &el[i], NULL);
		sb[i] = sealed_body_of(e[i], el[i]);
	}
	/* Three envelopes share an ephemeral key (max_uses 3), the fourth has a
	 * new one; content keys, nonces and wrapped keys never repeat. */
	assert_memory_equal(sb[0]->ephemeral_key.data, sb[1]->ephemeral_key.data, 32);
	assert_memory_equal(sb[0]->ephemeral_key.data, sb[2]->ephemeral_key.data, 32);
	assert_memory_not_equal(sb[2]->ephemeral_key.data, sb[3]->ephemeral_key.data, 32);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			assert_memory_not_equal(sb[i]->nonce.data, sb[j]->nonce.data,
			                        sb[i]->nonce.len);
			for (size_t k = 0; k < 2; k++)
				assert_memory_not_equal(sb[i]->keys[k]->wrapped.data,
				                        sb[j]->keys[k]->wrapped.data,
				                        sb[i]->keys[k]->wrapped.len);
		}
	/* Seal side: two X25519 per ephemeral key (one per recipient), then
	 * reuse: 4 envelopes x 2 recipients = 8 = 4 computed + 4 reused. */
	tern_sealcache_stats(sc, &hits, &misses);
	assert_int_equal(misses, 4);
	assert_int_equal(hits, 4);

	/* Open side: every envelope opens with and without a cache. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(open_with(f, e[i], el[i], "sweden", SWEDEN, NULL), TERN_OK);
		assert_int_equal(open_with(f, e[i], el[i], "sweden", SWEDEN, rc_sweden), TERN_OK);
	}
	tern_sealcache_stats(rc_sweden, &hits, &misses);
	assert_int_equal(misses, 2); /* one per distinct ephemeral key */
	assert_int_equal(hits, 2);
	/* The wrong key through a cache that knows this ephemeral key for
	 * sweden's key: still refused, and sweden's entry is not disturbed. */
	assert_int_equal(open_with(f, e[0], el[0], "sweden", PORTUGAL, rc_sweden), TERN_EDECRYPT);
	assert_int_equal(open_with(f, e[0], el[0], "iom", SWEDEN, rc_sweden), TERN_EDECRYPT);
	assert_int_equal(open_with(f, e[1], el[1], "sweden", SWEDEN, rc_sweden), TERN_OK);
	/* Another recipient of the same envelopes, with its own cache. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(open_with(f, e[i], el[i], "iom", IOM, rc_iom), TERN_OK);

	/* A lifetime bounds reuse too. */
	tern_sealcache_free(&sc);
	assert_null(sc);
	assert_int_equal(tern_sealcache_new(1, 0, &sc), TERN_OK);
	for (int i = 0; i < 2; i++) {
		tern__v1__sealed_body__free_unpacked(sb[i], NULL);
		free(e[i]);
		seal_through(f, sc, 0, &e[i], &el[i], NULL);
		sb[i] = sealed_body_of(e[i], el[i]);
		usleep(5000);
	}
	assert_memory_not_equal(sb[0]->ephemeral_key.data, sb[1]->ephemeral_key.data, 32);

	/* An idle owner's expire call drops the key once its lifetime has
	 * passed, and not before: the next envelope then needs a new one. */
	tern_sealcache_free(&sc);
	assert_int_equal(tern_sealcache_new(60000, 0, &sc), TERN_OK);
	tern_sealcache_expire(NULL, tern_now_ms()); /* harmless */
	tern_sealcache_expire(sc, tern_now_ms());   /* nothing to expire yet */
	for (int i = 0; i < 3; i++) {
		tern__v1__sealed_body__free_unpacked(sb[i], NULL);
		free(e[i]);
		seal_through(f, sc, 0, &e[i], &el[i], NULL);
		sb[i] = sealed_body_of(e[i], el[i]);
		if (i == 0)
			tern_sealcache_expire(sc, tern_now_ms() + 59000);
		if (i == 1)
			tern_sealcache_expire(sc, tern_now_ms() + 61000);
	}
	assert_memory_equal(sb[0]->ephemeral_key.data, sb[1]->ephemeral_key.data, 32);
	assert_memory_not_equal(sb[1]->ephemeral_key.data, sb[2]->ephemeral_key.data, 32);
	tern_sealcache_stats(sc, &hits, &misses);
	assert_int_equal(misses, 4); /* two keys, two recipients each */
	assert_int_equal(hits, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(open_with(f, e[i], el[i], "sweden", SWEDEN, NULL), TERN_OK);

	for (int i = 0; i < 4; i++) {
		tern__v1__sealed_body__free_unpacked(sb[i], NULL);
		free(e[i]);
	}
	tern_sealcache_free(&sc);
	tern_sealcache_free(&rc_sweden);
	tern_sealcache_free(&rc_iom);
	tern_sealcache_free(&sc); /* twice is harmless */
}

/* The time-to-live is signed and bound into the body's associated data. */
static void test_expires_at(void **state)
{
	struct fixture *f = *state;
	int64_t now = tern_now_ms(), later;
	tern_envelope *env = NULL;
	uint8_t *buf, *mod, *body = NULL;
	size_t len, mlen, blen;
	char id[37];
	tern_seal_params p = {.sender = "unhcr",
	                      .sign_key = f->sign[UNHCR],
	                      .recipients = to_sweden_iom,
	                      .n_recipients = 2,
	                      .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	                      .body = f->body,
	                      .body_len = sizeof(f->body),
	                      .created_at = now,
	                      .expires_at = now + 3600 * 1000};

	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, id), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_true(tern_envelope_header(env)->expires_at == now + 3600 * 1000);
	open_ok(f, env, SWEDEN);
	tern_envelope_free(&env);

	later = now + 7200 * 1000;
	resign(f, buf, len, set_expires, &later, NULL, &mod, &mlen);
	assert_int_equal(tern_envelope_verify(mod, mlen, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_open(env, "sweden", f->seal[SWEDEN], &body, &blen),
	                 TERN_EDECRYPT);
	tern_envelope_free(&env);
	free(mod);
	later = now - 1;
	resign(f, buf, len, set_expires, &later, NULL, &mod, &mlen);
	assert_int_equal(verify(mod, mlen, f->dir), TERN_EMALFORMED);
	free(mod);
	free(buf);

	p.expires_at = now;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, id), TERN_EINVAL);
}

/* A sender with attachments chooses the id and the content key and signs
 * the seals: each recipient unwraps that same key; the seals are in the
 * header; another member unwraps nothing; a seal no sender makes is
 * refused at seal and at verify. */
static void test_attachment_seals(void **state)
{
	struct fixture *f = *state;
	Tern__V1__AttachmentSeal a = TERN__V1__ATTACHMENT_SEAL__INIT;
	const Tern__V1__AttachmentSeal *seals[1] = {&a};
	uint8_t ck[32], got[32], root[32];
	tern_envelope *env = NULL;
	uint8_t *buf;
	size_t len;
	char id[37], mine[37];
	tern_seal_params p = {.sender = "unhcr",
	                      .sign_key = f->sign[UNHCR],
	                      .recipients = to_sweden_iom,
	                      .n_recipients = 2,
	                      .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
	                      .body = f->body,
	                      .body_len = sizeof(f->body),
	                      .content_key = ck,
	                      .attachments = seals,
	                      .n_attachments = 1};

	randombytes_buf(ck, sizeof(ck));
	memset(root, 9, sizeof(root));
	a.size = 5000000;
	a.chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
	a.root.data = root;
	a.root.len = 32;
	assert_int_equal(tern_uuid_v7(mine), TERN_OK);
	p.message_id = mine;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, id), TERN_OK);
	assert_string_equal(id, mine);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_int_equal(tern_envelope_header(env)->n_attachments, 1);
	assert_int_equal(tern_envelope_header(env)->attachments[0]->size, 5000000);
	assert_memory_equal(tern_envelope_header(env)->attachments[0]->root.data, root, 32);
	assert_int_equal(tern_envelope_content_key(env, "sweden", f->seal[SWEDEN], NULL, got),
	                 TERN_OK);
	assert_memory_equal(got, ck, 32);
	assert_int_equal(tern_envelope_content_key(env, "iom", f->seal[IOM], NULL, got), TERN_OK);
	assert_memory_equal(got, ck, 32);
	assert_int_equal(tern_envelope_content_key(env, "portugal", f->seal[PORTUGAL], NULL, got),
	                 TERN_ENOTRCPT);
	assert_int_equal(tern_envelope_content_key(env, "sweden", f->seal[IOM], NULL, got),
	                 TERN_EDECRYPT);
	open_ok(f, env, SWEDEN);
	tern_envelope_free(&env);
	free(buf);
	/* a seal no sender makes */
	a.chunk_size = 100;
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, id), TERN_EINVAL);
	a.chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
	p.message_id = "not-a-uuid";
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, id), TERN_EINVAL);
}

/* n envelopes unhcr -> sweden signed together (each body differs). */
static void seal_batch(struct fixture *f, size_t n, const tern_signkey *key, uint8_t **outs,
                       size_t *lens, int want)
{
	static const char *const to[] = {"sweden"};
	tern_sealed **items = calloc(n, sizeof(*items));

	assert_non_null(items);
	for (size_t i = 0; i < n; i++) {
		tern_seal_params p = {
		    .sender = "unhcr",
		    .sign_key = f->sign[UNHCR],
		    .recipients = to,
		    .n_recipients = 1,
		    .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
		    .case_id = "UNHCR-KEN-2024-000123",
		    .body = f->body,
		    .body_len = sizeof(f->body) - i % 7,
		};
		char id[37];
		assert_int_equal(tern_envelope_seal_unsigned(&p, f->dir, &items[i], id), TERN_OK);
		assert_string_equal(tern_sealed_message_id(items[i]), id);
	}
	assert_int_equal(tern_envelope_sign(items, n, key, outs, lens), want);
	for (size_t i = 0; i < n; i++) {
		if (want != TERN_OK)
			assert_null(outs[i]);
		tern_sealed_free(&items[i]);
		assert_null(items[i]);
	}
	free(items);
}

static int verify_cached(const uint8_t *buf, size_t len, const tern_directory *dir,
                         tern_sigcache *c)
{
	tern_verify_opts o = {.sigcache = c};
	tern_envelope *env = NULL;
	int rc = tern_envelope_verify(buf, len, dir, &o, &env);

	tern_envelope_free(&env);
	return rc;
}

enum batch_change {
	BC_INDEX,
	BC_SIZE,
	BC_PROOF_BYTE,
	BC_PROOF_SHORT,
	BC_ROOTSIG,
	BC_OTHER_HEADER,
	BC_SIGLEN,
	BC_SIZE0,
	BC_SIZE_MAX,
	BC_INDEX_OUT,
	BC_HASHLEN,
	BC_PROOF_LONG,
	BC_NULL
};

/* buf with its batch signature changed one way, verified through c. */
static int batch_changed(struct fixture *f, const uint8_t *buf, size_t len, const uint8_t *other,
                         size_t olen, enum batch_change how, tern_sigcache *c)
{
	Tern__V1__Envelope *e = unpack_env(buf, len), *o = unpack_env(other, olen);
	Tern__V1__BatchSignature *bs = e->signature->batch;
	ProtobufCBinaryData keep_header = e->header, long_proof[TERN_ENVELOPE_MAX_BATCH_DEPTH + 1];
	ProtobufCBinaryData *keep_proof = bs->inclusion_proof, keep_first = bs->inclusion_proof[0];
	size_t keep_np = bs->n_inclusion_proof;
	uint8_t h31[31] = {0}, *mod;
	size_t mlen;
	int rc;

	assert_int_equal(e->signature->kind_case, TERN__V1__SIGNATURE__KIND_BATCH);
	switch (how) {
	case BC_INDEX:
		bs->leaf_index ^= 1;
		break;
	case BC_SIZE:
		bs->tree_size += 1;
		break;
	case BC_PROOF_BYTE:
		bs->inclusion_proof[0].data[5] ^= 0x20;
		break;
	case BC_PROOF_SHORT:
		bs->n_inclusion_proof--;
		break;
	case BC_ROOTSIG:
		bs->root_signature.data[10] ^= 0x01;
		break;
	case BC_OTHER_HEADER:
		e->header = o->header;
		break;
	case BC_SIGLEN:
		bs->root_signature.len = 63;
		break;
	case BC_SIZE0:
		bs->tree_size = 0;
		break;
	case BC_SIZE_MAX:
		bs->tree_size = TERN_ENVELOPE_MAX_BATCH + 1;
		break;
	case BC_INDEX_OUT:
		bs->leaf_index = bs->tree_size;
		break;
	case BC_HASHLEN:
		bs->inclusion_proof[0].data = h31, bs->inclusion_proof[0].len = 31;
		break;
	case BC_PROOF_LONG:
		for (size_t i = 0; i <= TERN_ENVELOPE_MAX_BATCH_DEPTH; i++)
			long_proof[i] = keep_proof[0];
		bs->inclusion_proof = long_proof;
		bs->n_inclusion_proof = TERN_ENVELOPE_MAX_BATCH_DEPTH + 1;
		break;
	case BC_NULL:
		e->signature->batch = NULL;
		break;
	}
	repack_env(e, &mod, &mlen);
	rc = verify_cached(mod, mlen, f->dir, c);
	free(mod);
	e->header = keep_header;
	e->signature->batch = bs;
	bs->inclusion_proof = keep_proof;
	bs->inclusion_proof[0] = keep_first;
	bs->n_inclusion_proof = keep_np;
	tern__v1__envelope__free_unpacked(o, NULL);
	tern__v1__envelope__free_unpacked(e, NULL);
	return rc;
}

/* One signature over a Merkle root signs a whole batch; every envelope
 * still verifies and opens alone, a verified root is remembered, and any
 * change to an envelope, its proof or the root's signature is refused,
 * whether or not the genuine root is remembered. */
static void test_batch_signature(void **state)
{
	struct fixture *f = *state;
	enum { N = 5 };
	uint8_t *e[N], *one[1];
	size_t el[N], onel[1];
	tern_sigcache *c = NULL;
	tern_directory *revoked;
	uint64_t hits, misses;
	static const struct {
		enum batch_change how;
		int want;
	} changes[] = {
	    {BC_INDEX, TERN_EBADSIG},       {BC_SIZE, TERN_EBADSIG},
	    {BC_PROOF_BYTE, TERN_EBADSIG},  {BC_PROOF_SHORT, TERN_EBADSIG},
	    {BC_ROOTSIG, TERN_EBADSIG},     {BC_OTHER_HEADER, TERN_EBADSIG},
	    {BC_SIGLEN, TERN_EMALFORMED},   {BC_SIZE0, TERN_EMALFORMED},
	    {BC_SIZE_MAX, TERN_EMALFORMED}, {BC_INDEX_OUT, TERN_EMALFORMED},
	    {BC_HASHLEN, TERN_EMALFORMED},  {BC_PROOF_LONG, TERN_EMALFORMED},
	    {BC_NULL, TERN_EMALFORMED},
	};

	seal_batch(f, N, f->sign[UNHCR], e, el, TERN_OK);
	assert_int_equal(tern_sigcache_new(16, &c), TERN_OK);
	for (int i = 0; i < N; i++) {
		Tern__V1__Envelope *u = unpack_env(e[i], el[i]);
		tern_envelope *env = NULL;
		uint8_t *body = NULL;
		size_t blen = 0;
		assert_int_equal(u->signature->kind_case, TERN__V1__SIGNATURE__KIND_BATCH);
		assert_int_equal(u->signature->batch->tree_size, N);
		assert_int_equal(u->signature->batch->leaf_index, i);
		tern__v1__envelope__free_unpacked(u, NULL);
		assert_int_equal(verify(e[i], el[i], f->dir), TERN_OK);
		assert_int_equal(verify_cached(e[i], el[i], f->dir, c), TERN_OK);
		assert_int_equal(tern_envelope_verify(e[i], el[i], f->dir, NULL, &env), TERN_OK);
		assert_int_equal(tern_envelope_open(env, "sweden", f->seal[SWEDEN], &body, &blen),
		                 TERN_OK);
		assert_int_equal(blen, sizeof(f->body) - i % 7);
		assert_memory_equal(body, f->body, blen);
		tern_envelope_body_free(&body, blen);
		tern_envelope_free(&env);
	}
	tern_sigcache_stats(c, &hits, &misses);
	assert_int_equal(misses, 1);
	assert_int_equal(hits, N - 1);

	/* The genuine root is in the cache now: changes must still fail. */
	for (size_t k = 0; k < sizeof(changes) / sizeof(changes[0]); k++) {
		assert_int_equal(batch_changed(f, e[2], el[2], e[3], el[3], changes[k].how, c),
		                 changes[k].want);
		assert_int_equal(batch_changed(f, e[2], el[2], e[3], el[3], changes[k].how, NULL),
		                 changes[k].want);
	}
	/* A remembered root does not outlive its sender's revocation. */
	revoked = make_dir(f, -1, UNHCR);
	assert_int_equal(verify_cached(e[0], el[0], revoked, c), TERN_EREVOKED);
	tern_directory_free(&revoked);

	/* One envelope alone gets a plain signature. */
	seal_batch(f, 1, f->sign[UNHCR], one, onel, TERN_OK);
	{
		Tern__V1__Envelope *u = unpack_env(one[0], onel[0]);
		assert_int_equal(u->signature->kind_case, TERN__V1__SIGNATURE__KIND_ED25519);
		tern__v1__envelope__free_unpacked(u, NULL);
	}
	assert_int_equal(verify(one[0], onel[0], f->dir), TERN_OK);
	free(one[0]);
	for (int i = 0; i < N; i++)
		free(e[i]);
	/* Only the key the envelopes were sealed with signs them. */
	seal_batch(f, 3, f->sign[SWEDEN], e, el, TERN_EINVAL);
	tern_sigcache_free(&c);
	assert_null(c);
}

/* Past TERN_ENVELOPE_MAX_BATCH a batch is signed in several trees. */
static void test_batch_chunks(void **state)
{
	struct fixture *f = *state;
	enum { N = TERN_ENVELOPE_MAX_BATCH + 3 };
	uint8_t **e = calloc(N, sizeof(*e));
	size_t *el = calloc(N, sizeof(*el));
	tern_sigcache *c = NULL;
	uint64_t hits, misses;

	assert_non_null(e);
	assert_non_null(el);
	seal_batch(f, N, f->sign[UNHCR], e, el, TERN_OK);
	assert_int_equal(tern_sigcache_new(0, &c), TERN_OK);
	for (size_t i = 0; i < N; i++) {
		Tern__V1__Envelope *u = unpack_env(e[i], el[i]);
		int first = i < TERN_ENVELOPE_MAX_BATCH;
		assert_int_equal(u->signature->batch->tree_size,
		                 first ? TERN_ENVELOPE_MAX_BATCH : 3);
		assert_int_equal(u->signature->batch->n_inclusion_proof,
		                 first ? TERN_ENVELOPE_MAX_BATCH_DEPTH : (i == N - 1 ? 1 : 2));
		tern__v1__envelope__free_unpacked(u, NULL);
		assert_int_equal(verify_cached(e[i], el[i], f->dir, c), TERN_OK);
		free(e[i]);
	}
	tern_sigcache_stats(c, &hits, &misses);
	assert_int_equal(misses, 2);
	assert_int_equal(hits, N - 2);
	tern_sigcache_free(&c);
	free(e);
	free(el);
}

static void test_bodies_and_replies(void **state)
{
	struct fixture *f = *state;
	const char *all[] = {"sweden", "portugal", "iom"};
	tern_seal_params p = {
	    .sender = "unhcr",
	    .sign_key = f->sign[UNHCR],
	    .recipients = all,
	    .n_recipients = 3,
	    .type = TERN__V1__MESSAGE_TYPE__RECEIPT,
	    .case_id = NULL,
	    .body = NULL,
	    .body_len = 0,
	};
	tern_envelope *env = NULL;
	uint8_t *buf, *body;
	size_t len, blen;
	char first[37], second[37];

	/* An empty body, no case id. */
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, first), TERN_OK);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	for (int i = SWEDEN; i <= IOM; i++) {
		body = NULL;
		assert_int_equal(tern_envelope_open(env, names[i], f->seal[i], &body, &blen),
		                 TERN_OK);
		assert_int_equal(blen, 0);
		tern_envelope_body_free(&body, blen);
	}
	tern_envelope_free(&env);
	free(buf);

	/* A reply; each recipient of three opens the same 1 KiB. */
	p.in_reply_to = first;
	p.body = f->body;
	p.body_len = sizeof(f->body);
	assert_int_equal(tern_envelope_seal(&p, f->dir, &buf, &len, second), TERN_OK);
	assert_true(strcmp(first, second) < 0);
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, NULL, &env), TERN_OK);
	assert_string_equal(tern_envelope_header(env)->in_reply_to, first);
	for (int i = SWEDEN; i <= IOM; i++)
		open_ok(f, env, i);
	tern_envelope_free(&env);
	free(buf);
}

#if MALLOC_CAN_FAIL
/* buf verified through sig and opened for sweden through seal, with the n-th
 * allocation failing: returns 1 while that allocation was reached. A shortage
 * is TERN_ENOMEM wherever it strikes, never a verdict on the envelope (the
 * daemons answer a verdict with a signed refusal, and a shortage with a try
 * later), and leaves the caches as good as it found them. */
static int verify_open_short(struct fixture *f, const uint8_t *buf, size_t len, size_t want, long n,
                             tern_sigcache *sig, tern_sealcache *seal)
{
	tern_verify_opts o = {.sigcache = sig};
	tern_envelope *env = NULL;
	uint8_t *body = NULL;
	size_t blen = 0;
	int rc, orc = TERN_OK, failed;

	malloc_failed = 0;
	malloc_fail_at = n;
	rc = tern_envelope_verify(buf, len, f->dir, &o, &env);
	if (rc == TERN_OK)
		orc = tern_envelope_open_cached(env, "sweden", f->seal[SWEDEN], seal, &body, &blen);
	malloc_fail_at = 0;
	failed = malloc_failed;
	if (rc != TERN_OK && rc != TERN_ENOMEM)
		fail_msg("allocation %ld failing: verify says %s (%s)", n, tern_strerror(rc),
		         tern_errdetail());
	if (orc != TERN_OK && orc != TERN_ENOMEM)
		fail_msg("allocation %ld failing: open says %s (%s)", n, tern_strerror(orc),
		         tern_errdetail());
	if (!failed)
		assert_true(rc == TERN_OK && orc == TERN_OK);
	if (rc == TERN_OK && orc == TERN_OK) {
		assert_int_equal(blen, want);
		assert_memory_equal(body, f->body, blen);
	}
	tern_envelope_body_free(&body, blen);
	tern_envelope_free(&env);
	/* And the next try, with memory, finds everything as it should be. */
	assert_int_equal(tern_envelope_verify(buf, len, f->dir, &o, &env), TERN_OK);
	assert_int_equal(
	    tern_envelope_open_cached(env, "sweden", f->seal[SWEDEN], seal, &body, &blen), TERN_OK);
	assert_int_equal(blen, want);
	assert_memory_equal(body, f->body, blen);
	tern_envelope_body_free(&body, blen);
	tern_envelope_free(&env);
	return failed;
}

/* Each allocation of one verification and opening made to fail in turn, as a
 * daemon does them: one by one without caches, and through the signature and
 * seal caches, cold (each try with new ones) and warm. */
static void test_every_shortage_is_enomem(void **state)
{
	struct fixture *f = *state;
	uint8_t *one = NULL, *batch[3];
	size_t onel = 0, batchl[3];
	char id[37];
	long n, reached[3] = {0, 0, 0};

	seal_default(f, 0, &one, &onel, id);
	seal_batch(f, 3, f->sign[UNHCR], batch, batchl, TERN_OK);
	for (n = 1; verify_open_short(f, one, onel, sizeof(f->body), n, NULL, NULL); n++)
		;
	reached[0] = n;
	{
		/* A header over 1 KiB (thirty attachment seals), which the signature
		 * check copies to the heap: a shortage there was a bad signature. */
		enum { NSEALS = 30 };
		Tern__V1__AttachmentSeal a[NSEALS];
		const Tern__V1__AttachmentSeal *seals[NSEALS];
		uint8_t roots[NSEALS][32], ck[32], *big = NULL;
		size_t bigl = 0;
		char mine[37];
		tern_seal_params p = {.sender = "unhcr",
		                      .sign_key = f->sign[UNHCR],
		                      .recipients = to_sweden_iom,
		                      .n_recipients = 2,
		                      .type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL,
		                      .body = f->body,
		                      .body_len = sizeof(f->body),
		                      .message_id = mine,
		                      .content_key = ck,
		                      .attachments = seals,
		                      .n_attachments = NSEALS};
		randombytes_buf(ck, sizeof(ck));
		for (int i = 0; i < NSEALS; i++) {
			tern__v1__attachment_seal__init(&a[i]);
			memset(roots[i], i + 1, sizeof(roots[i]));
			a[i].size = 5000000;
			a[i].chunk_size = TERN_ATTACH_CHUNK_DEFAULT;
			a[i].root = (ProtobufCBinaryData){32, roots[i]};
			seals[i] = &a[i];
		}
		assert_int_equal(tern_uuid_v7(mine), TERN_OK);
		assert_int_equal(tern_envelope_seal(&p, f->dir, &big, &bigl, id), TERN_OK);
		assert_true(bigl > 2048);
		for (n = 1; verify_open_short(f, big, bigl, sizeof(f->body), n, NULL, NULL); n++)
			;
		assert_true(n > reached[0]);
		free(big);
	}
	for (n = 1;; n++) {
		tern_sigcache *sig = NULL;
		tern_sealcache *seal = NULL;
		int more;
		assert_int_equal(tern_sigcache_new(16, &sig), TERN_OK);
		assert_int_equal(tern_sealcache_new(60000, 1000, &seal), TERN_OK);
		more = verify_open_short(f, batch[1], batchl[1], sizeof(f->body) - 1, n, sig, seal);
		tern_sigcache_free(&sig);
		tern_sealcache_free(&seal);
		if (!more)
			break;
	}
	reached[1] = n;
	{
		tern_sigcache *sig = NULL;
		tern_sealcache *seal = NULL;
		assert_int_equal(tern_sigcache_new(16, &sig), TERN_OK);
		assert_int_equal(tern_sealcache_new(60000, 1000, &seal), TERN_OK);
		verify_open_short(f, batch[0], batchl[0], sizeof(f->body), 0, sig,
		                  seal); /* warms both */
		for (n = 1;
		     verify_open_short(f, batch[2], batchl[2], sizeof(f->body) - 2, n, sig, seal);
		     n++)
			;
		reached[2] = n;
		tern_sigcache_free(&sig);
		tern_sealcache_free(&seal);
	}
	print_message("shortage sweeps: %ld, %ld and %ld allocations\n", reached[0] - 1,
	              reached[1] - 1, reached[2] - 1);
	/* Each sweep went through allocations, and stopped only past the last. */
	for (int i = 0; i < 3; i++)
		assert_true(reached[i] > 5);
	free(one);
	for (int i = 0; i < 3; i++)
		free(batch[i]);
}
#else
static void test_every_shortage_is_enomem(void **state)
{
	(void)state;
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seal_verify_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_header_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_and_signature_flips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sender_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_accepted_digest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clock_skew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_garbage_truncation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seal_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rules_behind_a_valid_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bodies_and_replies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_canonical_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_shortage_is_enomem, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_sender_and_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_future_only_skew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expires_at, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attachment_seals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealcache, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

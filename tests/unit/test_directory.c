/* The signed directory file: round trip and every way a directory is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <tern/directory.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/trust.h>
#include <tern/v1/directory.pb-c.h>

#include "pbuf.h"
#include "testutil.h"
#include "util.h"

enum { UNHCR, IOM, HUB, NNODES };

static const struct {
	const char *id, *agency;
	unsigned roles;
	const char *endpoint;
} nodes[NNODES] = {
    {"unhcr", "UNHCR", TERN_ROLE_REFERRER, NULL},
    {"iom", "IOM", TERN_ROLE_MOVEMENT, NULL},
    {"hub", "Hub", TERN_ROLE_BROKER, "tcp://127.0.0.1:7700"},
};

struct fx {
	char root[64];
	char ca[128], ca_crt[160], crl[160], dir_file[192];
	tern_node_request req[NNODES];
	uint8_t *der[NNODES];
	size_t der_len[NNODES];
	tern_signkey *ca_key;
	tern_trust *trust;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	tern_ca *ca = NULL;
	char path[256];

	if (tt_mkdtemp(f->root, sizeof(f->root), "dir") != 0)
		return -1;
	snprintf(f->ca, sizeof(f->ca), "%s/ca", f->root);
	snprintf(f->ca_crt, sizeof(f->ca_crt), "%s/ca.crt", f->ca);
	snprintf(f->crl, sizeof(f->crl), "%s/crl.pem", f->ca);
	snprintf(f->dir_file, sizeof(f->dir_file), "%s/directory.tdir", f->ca);
	if (tern_ca_init(f->ca, "test", 0) != TERN_OK || tern_ca_open(f->ca, &ca) != TERN_OK)
		return -1;
	for (int i = 0; i < NNODES; i++) {
		char *pem = NULL;
		snprintf(path, sizeof(path), "%s/%s", f->root, nodes[i].id);
		if (tern_node_keygen(path, nodes[i].id, &f->req[i]) != TERN_OK ||
		    tern_ca_issue(ca, &f->req[i], nodes[i].agency, nodes[i].roles,
		                  nodes[i].endpoint, 0, &pem) != TERN_OK ||
		    tern_cert_pem_to_der(pem, strlen(pem), &f->der[i], &f->der_len[i]) != TERN_OK)
			return -1;
		free(pem);
	}
	if (tern_ca_write_directory(ca, NULL, NULL) != TERN_OK)
		return -1;
	tern_ca_close(&ca);
	snprintf(path, sizeof(path), "%s/ca.key", f->ca);
	if (tern_signkey_load(path, &f->ca_key) != TERN_OK ||
	    tern_trust_load(f->ca_crt, f->crl, &f->trust) != TERN_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < NNODES; i++)
		free(f->der[i]);
	tern_signkey_free(&f->ca_key);
	tern_trust_free(&f->trust);
	tt_rmtree(f->root);
	free(f);
	return 0;
}

static void read_file(const char *path, uint8_t **buf, size_t *len)
{
	assert_int_equal(tern_file_read(path, 1 << 20, buf, len), TERN_OK);
}

/* A directory built by hand, for the cases the CA would never write. */
struct raw_member {
	const char *node_id, *agency;
	Tern__V1__Role roles[4];
	size_t nroles;
	const uint8_t *cert;
	size_t cert_len;
	const uint8_t *x25519, *curve;
	size_t x25519_len, curve_len;
};

static void raw_from_node(const struct fx *f, int i, struct raw_member *m)
{
	memset(m, 0, sizeof(*m));
	m->node_id = nodes[i].id;
	m->agency = nodes[i].agency;
	for (int r = 1; r <= TERN__V1__ROLE__BROKER; r++)
		if (nodes[i].roles & (1u << r))
			m->roles[m->nroles++] = (Tern__V1__Role)r;
	m->cert = f->der[i];
	m->cert_len = f->der_len[i];
	m->x25519 = f->req[i].seal_public;
	m->x25519_len = 32;
	m->curve = f->req[i].curve_public;
	m->curve_len = 32;
}

static void raw_sign(const tern_signkey *key, uint32_t schema, const char *federation,
                     uint64_t version, const struct raw_member *ms, size_t n, uint8_t **out,
                     size_t *out_len)
{
	Tern__V1__Directory d = TERN__V1__DIRECTORY__INIT;
	Tern__V1__SignedDirectory sd = TERN__V1__SIGNED_DIRECTORY__INIT;
	Tern__V1__DirectoryMember pm[8], *pp[8];
	uint8_t *bytes = NULL, sig[64];
	size_t len = 0;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		tern__v1__directory_member__init(&pm[i]);
		pm[i].node_id = (char *)ms[i].node_id;
		pm[i].agency = (char *)ms[i].agency;
		pm[i].n_roles = ms[i].nroles;
		pm[i].roles = (Tern__V1__Role *)ms[i].roles;
		pm[i].certificate.data = (uint8_t *)ms[i].cert;
		pm[i].certificate.len = ms[i].cert_len;
		pm[i].x25519_public_key.data = (uint8_t *)ms[i].x25519;
		pm[i].x25519_public_key.len = ms[i].x25519_len;
		pm[i].curve_public_key.data = (uint8_t *)ms[i].curve;
		pm[i].curve_public_key.len = ms[i].curve_len;
		pp[i] = &pm[i];
	}
	d.schema_version = schema;
	d.federation = (char *)federation;
	d.version = version;
	d.issued_at = 1;
	d.n_members = n;
	d.members = pp;
	assert_int_equal(tern_pb_pack(&d.base, &bytes, &len), TERN_OK);
	assert_int_equal(tern_sign(key, TERN_DIRECTORY_LABEL, bytes, len, sig), TERN_OK);
	sd.directory.data = bytes;
	sd.directory.len = len;
	sd.signature.data = sig;
	sd.signature.len = key ? 64 : 0;
	assert_int_equal(tern_pb_pack(&sd.base, out, out_len), TERN_OK);
	free(bytes);
}

static int parse_raw(struct fx *f, uint32_t schema, const char *fed, uint64_t version,
                     const struct raw_member *ms, size_t n)
{
	tern_directory *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	raw_sign(f->ca_key, schema, fed, version, ms, n, &buf, &len);
	rc = tern_directory_parse(buf, len, f->trust, 0, &d);
	free(buf);
	if (rc == TERN_OK)
		assert_non_null(d);
	else
		assert_null(d);
	tern_directory_free(&d);
	return rc;
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL;
	const tern_member *m;

	assert_int_equal(tern_directory_load(f->dir_file, f->trust, 0, &d), TERN_OK);
	assert_int_equal(tern_directory_version(d), 1);
	assert_string_equal(tern_directory_federation(d), "test");
	assert_int_equal(tern_directory_count(d), NNODES);
	/* Sorted by node id. */
	assert_string_equal(tern_directory_at(d, 0)->node_id, "hub");
	assert_string_equal(tern_directory_at(d, 1)->node_id, "iom");
	assert_string_equal(tern_directory_at(d, 2)->node_id, "unhcr");
	for (int i = 0; i < NNODES; i++) {
		assert_int_equal(tern_directory_find(d, nodes[i].id, &m), TERN_OK);
		assert_string_equal(m->agency, nodes[i].agency);
		assert_int_equal(m->roles, nodes[i].roles);
		assert_memory_equal(m->sign_public, f->req[i].sign_public, 32);
		assert_memory_equal(m->seal_public, f->req[i].seal_public, 32);
		assert_memory_equal(m->curve_public, f->req[i].curve_public, 32);
		assert_int_equal(m->cert_len, f->der_len[i]);
		assert_memory_equal(m->cert_der, f->der[i], f->der_len[i]);
		assert_int_equal(m->revoked, 0);
		assert_true(m->cert_not_after > 0);
		if (nodes[i].endpoint)
			assert_string_equal(m->broker_endpoint, nodes[i].endpoint);
		else
			assert_null(m->broker_endpoint);
		assert_int_equal(tern_directory_find_curve(d, f->req[i].curve_public, &m), TERN_OK);
		assert_string_equal(m->node_id, nodes[i].id);
	}
	tern_directory_free(&d);
	assert_null(d);
}

static void test_sign_then_parse(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL, *back = NULL;
	tern_member m;
	uint8_t *buf = NULL;
	size_t len = 0;

	/* tern_directory_sign on a directory built in memory. */
	assert_int_equal(tern_directory_new("test", 42, &d), TERN_OK);
	memset(&m, 0, sizeof(m));
	strcpy(m.node_id, "iom");
	m.agency = "IOM";
	m.roles = TERN_ROLE_MOVEMENT;
	memcpy(m.seal_public, f->req[IOM].seal_public, 32);
	memcpy(m.curve_public, f->req[IOM].curve_public, 32);
	m.cert_der = f->der[IOM];
	m.cert_len = f->der_len[IOM];
	assert_int_equal(tern_directory_add(d, &m), TERN_OK);
	assert_int_equal(tern_directory_sign(d, f->ca_key, &buf, &len), TERN_OK);
	assert_int_equal(tern_directory_parse(buf, len, f->trust, 42, &back), TERN_OK);
	assert_int_equal(tern_directory_version(back), 42);
	assert_int_equal(tern_directory_count(back), 1);
	/* The signing key is read from the certificate. */
	assert_memory_equal(tern_directory_at(back, 0)->sign_public, f->req[IOM].sign_public, 32);
	tern_directory_free(&back);
	assert_int_equal(tern_directory_parse(buf, len, f->trust, 43, &back), TERN_EOLDER);
	free(buf);
	tern_directory_free(&d);
}

static void test_every_flipped_byte_refused(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	read_file(f->dir_file, &buf, &len);
	assert_true(len > 500);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			buf[i] ^= (uint8_t)(1u << bit);
			int rc = tern_directory_parse(buf, len, f->trust, 0, &d);
			if (rc == TERN_OK)
				fail_msg("flipping bit %d of byte %zu went unnoticed", bit, i);
			assert_null(d);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Truncated at every length. */
	for (size_t n = 0; n < len; n++)
		assert_int_not_equal(tern_directory_parse(buf, n, f->trust, 0, &d), TERN_OK);
	assert_int_equal(tern_directory_parse(buf, len, f->trust, 0, &d), TERN_OK);
	tern_directory_free(&d);
	free(buf);
}

static void test_unsigned_refused(void **state)
{
	struct fx *f = *state;
	Tern__V1__SignedDirectory *sd;
	ProtobufCMessage *msg = NULL;
	tern_directory *d = NULL;
	uint8_t *buf = NULL, *out = NULL, *orig_sig;
	size_t len = 0, out_len = 0;

	read_file(f->dir_file, &buf, &len);
	assert_int_equal(
	    tern_pb_unpack(&tern__v1__signed_directory__descriptor, buf, len, len, &msg), TERN_OK);
	sd = (Tern__V1__SignedDirectory *)msg;
	orig_sig = sd->signature.data;
	sd->signature.len = 0;
	assert_int_equal(tern_pb_pack(msg, &out, &out_len), TERN_OK);
	assert_int_equal(tern_directory_parse(out, out_len, f->trust, 0, &d), TERN_EBADSIG);
	free(out);
	/* The bare Directory bytes, with no SignedDirectory around them. */
	assert_int_not_equal(
	    tern_directory_parse(sd->directory.data, sd->directory.len, f->trust, 0, &d), TERN_OK);
	/* A signature of the right size by somebody else. */
	{
		tern_signkey *k = NULL;
		uint8_t sig[64];
		assert_int_equal(tern_signkey_generate(&k), TERN_OK);
		assert_int_equal(
		    tern_sign(k, TERN_DIRECTORY_LABEL, sd->directory.data, sd->directory.len, sig),
		    TERN_OK);
		sd->signature.data = sig;
		sd->signature.len = 64;
		assert_int_equal(tern_pb_pack(msg, &out, &out_len), TERN_OK);
		assert_int_equal(tern_directory_parse(out, out_len, f->trust, 0, &d), TERN_EBADSIG);
		free(out);
		/* The CA's key but another domain label. */
		assert_int_equal(tern_sign(f->ca_key, "tern/v1 envelope", sd->directory.data,
		                           sd->directory.len, sig),
		                 TERN_OK);
		assert_int_equal(tern_pb_pack(msg, &out, &out_len), TERN_OK);
		assert_int_equal(tern_directory_parse(out, out_len, f->trust, 0, &d), TERN_EBADSIG);
		free(out);
		sd->signature.data = orig_sig; /* so tern_pb_free releases it */
		tern_signkey_free(&k);
	}
	tern_pb_free(&msg);
	free(buf);
	assert_null(d);
}

static void test_older_version_refused(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL;

	assert_int_equal(tern_directory_load(f->dir_file, f->trust, 1, &d), TERN_OK);
	tern_directory_free(&d);
	assert_int_equal(tern_directory_load(f->dir_file, f->trust, 2, &d), TERN_EOLDER);
	assert_null(d);
}

static void test_wrong_ca_refused(void **state)
{
	struct fx *f = *state;
	tern_trust *other = NULL;
	tern_directory *d = NULL;
	char dir[192], crt[224], crl[224];

	/* Same federation name: only the key differs. */
	snprintf(dir, sizeof(dir), "%s/other", f->root);
	assert_int_equal(tern_ca_init(dir, "test", 0), TERN_OK);
	snprintf(crt, sizeof(crt), "%s/ca.crt", dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", dir);
	assert_int_equal(tern_trust_load(crt, crl, &other), TERN_OK);
	assert_int_equal(tern_directory_load(f->dir_file, other, 0, &d), TERN_EBADSIG);
	assert_null(d);
	tern_trust_free(&other);
}

static void test_revoked_member_kept(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL;
	const tern_member *m;
	tern_ca *ca = NULL;
	uint64_t v = 0;

	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_revoke(ca, "iom", NULL), TERN_OK);
	assert_int_equal(tern_ca_write_directory(ca, NULL, &v), TERN_OK);
	tern_ca_close(&ca);
	assert_int_equal(v, 2);
	tern_trust_free(&f->trust);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &f->trust), TERN_OK);
	assert_int_equal(tern_directory_load(f->dir_file, f->trust, 2, &d), TERN_OK);
	assert_int_equal(tern_directory_count(d), NNODES);
	assert_int_equal(tern_directory_find(d, "iom", &m), TERN_OK);
	assert_int_equal(m->revoked, 1);
	assert_int_equal(tern_directory_find(d, "unhcr", &m), TERN_OK);
	assert_int_equal(m->revoked, 0);
	tern_directory_free(&d);
}

static void test_mismatch_with_certificate_refused(void **state)
{
	struct fx *f = *state;
	struct raw_member m[2];

	/* The hand-built form of a good directory passes... */
	raw_from_node(f, UNHCR, &m[0]);
	raw_from_node(f, IOM, &m[1]);
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_OK);

	/* ...roles the certificate does not give... */
	m[0].roles[0] = TERN__V1__ROLE__STATE;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_ECERT);
	assert_non_null(strstr(tern_errdetail(), "unhcr"));
	m[0].roles[m[0].nroles++] = TERN__V1__ROLE__REFERRER;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_ECERT);
	raw_from_node(f, UNHCR, &m[0]);
	/* ...another node's certificate under this node id... */
	m[0].cert = f->der[IOM];
	m[0].cert_len = f->der_len[IOM];
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_ECERT);
	raw_from_node(f, UNHCR, &m[0]);
	/* ...another agency... */
	m[0].agency = "IOM";
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_ECERT);
	raw_from_node(f, UNHCR, &m[0]);
	/* ...keys of the wrong size... */
	m[0].x25519_len = 31;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_EMALFORMED);
	raw_from_node(f, UNHCR, &m[0]);
	m[0].curve_len = 0;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_EMALFORMED);
	raw_from_node(f, UNHCR, &m[0]);
	/* ...a shared CURVE or X25519 key... */
	m[1].curve = m[0].curve;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_EMALFORMED);
	raw_from_node(f, IOM, &m[1]);
	m[1].x25519 = m[0].x25519;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_EMALFORMED);
	raw_from_node(f, IOM, &m[1]);
	/* ...no role, an unknown role, a bad node id, a duplicate node... */
	m[0].nroles = 0;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_EMALFORMED);
	m[0].roles[0] = (Tern__V1__Role)9;
	m[0].nroles = 1;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_EMALFORMED);
	raw_from_node(f, UNHCR, &m[0]);
	m[0].node_id = "UNHCR";
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_EMALFORMED);
	raw_from_node(f, UNHCR, &m[0]);
	m[1] = m[0];
	assert_int_not_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_OK);
	/* ...no certificate at all. */
	raw_from_node(f, UNHCR, &m[0]);
	m[0].cert_len = 0;
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 1), TERN_ECERT);
}

static void test_foreign_certificate_refuses_directory(void **state)
{
	struct fx *f = *state;
	struct raw_member m[2];
	tern_node_request req;
	tern_ca *other = NULL;
	char dir[192], ndir[192], *pem = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	snprintf(dir, sizeof(dir), "%s/other", f->root);
	snprintf(ndir, sizeof(ndir), "%s/intruder", f->root);
	assert_int_equal(tern_ca_init(dir, "test", 0), TERN_OK);
	assert_int_equal(tern_node_keygen(ndir, "sweden", &req), TERN_OK);
	assert_int_equal(tern_ca_open(dir, &other), TERN_OK);
	assert_int_equal(tern_ca_issue(other, &req, "S", TERN_ROLE_STATE, NULL, 0, &pem), TERN_OK);
	tern_ca_close(&other);
	assert_int_equal(tern_cert_pem_to_der(pem, strlen(pem), &der, &len), TERN_OK);

	raw_from_node(f, UNHCR, &m[0]);
	memset(&m[1], 0, sizeof(m[1]));
	m[1].node_id = "sweden";
	m[1].agency = "S";
	m[1].roles[0] = TERN__V1__ROLE__STATE;
	m[1].nroles = 1;
	m[1].cert = der;
	m[1].cert_len = len;
	m[1].x25519 = req.seal_public;
	m[1].x25519_len = 32;
	m[1].curve = req.curve_public;
	m[1].curve_len = 32;
	/* Even signed by our CA, one foreign certificate sinks the directory. */
	assert_int_equal(parse_raw(f, 1, "test", 5, m, 2), TERN_ECERT);
	assert_non_null(strstr(tern_errdetail(), "sweden"));
	free(der);
	free(pem);
}

static void test_schema_and_federation(void **state)
{
	struct fx *f = *state;
	struct raw_member m;

	raw_from_node(f, UNHCR, &m);
	assert_int_equal(parse_raw(f, 2, "test", 5, &m, 1), TERN_EVERSION);
	assert_int_equal(parse_raw(f, 0, "test", 5, &m, 1), TERN_EVERSION);
	assert_int_equal(parse_raw(f, 1, "other", 5, &m, 1), TERN_EMALFORMED);
	assert_int_equal(parse_raw(f, 1, "test", 0, &m, 1), TERN_EMALFORMED);
	assert_int_equal(parse_raw(f, 1, "test", 5, NULL, 0), TERN_OK);
}

static void test_size_cap_and_garbage(void **state)
{
	struct fx *f = *state;
	tern_directory *d = NULL;
	size_t big = 9u * 1024 * 1024;
	uint8_t *buf = calloc(1, big);

	assert_non_null(buf);
	assert_int_equal(tern_directory_parse(buf, big, f->trust, 0, &d), TERN_ETOOBIG);
	assert_int_not_equal(tern_directory_parse(buf, 100, f->trust, 0, &d), TERN_OK);
	memset(buf, 0xff, 100);
	assert_int_not_equal(tern_directory_parse(buf, 100, f->trust, 0, &d), TERN_OK);
	assert_null(d);
	free(buf);
	assert_int_equal(tern_directory_load("/nonexistent/dir.tdir", f->trust, 0, &d),
	                 TERN_ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_then_parse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_flipped_byte_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsigned_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_older_version_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_ca_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revoked_member_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mismatch_with_certificate_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_certificate_refuses_directory, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_schema_and_federation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_cap_and_garbage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

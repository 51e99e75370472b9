/* The federation CA: init, node keys and requests, issue, revoke, CRL,
 * directory versions, CURVE key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <tern/curve.h>
#include <tern/directory.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/trust.h>

#include "testutil.h"
#include "util.h"

struct fx {
	char root[64];
	char ca[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (tt_mkdtemp(f->root, sizeof(f->root), "pki") != 0)
		return -1;
	snprintf(f->ca, sizeof(f->ca), "%s/ca", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tt_rmtree(f->root);
	free(f);
	return 0;
}

static mode_t file_mode(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return (mode_t)tt_file_mode(path);
}

static void keygen(struct fx *f, const char *id, tern_node_request *req)
{
	char dir[256];

	snprintf(dir, sizeof(dir), "%s/%s", f->root, id);
	assert_int_equal(tern_node_keygen(dir, id, req), TERN_OK);
}

static long crl_number(const char *cadir, int *revoked_count)
{
	char path[256];
	FILE *fp;
	X509_CRL *crl;
	ASN1_INTEGER *num;
	long n;

	snprintf(path, sizeof(path), "%s/crl.pem", cadir);
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(crl = PEM_read_X509_CRL(fp, NULL, NULL, NULL));
	fclose(fp);
	assert_non_null(num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL));
	n = ASN1_INTEGER_get(num);
	if (revoked_count) {
		STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
		*revoked_count = revs ? sk_X509_REVOKED_num(revs) : 0;
	}
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	return n;
}

static void test_ca_init_files_and_modes(void **state)
{
	struct fx *f = *state;
	tern_ca *ca = NULL;

	assert_int_equal(tern_ca_init(f->ca, "test federation", 0), TERN_OK);
	assert_int_equal(file_mode(f->root, "ca"), 0700);
	assert_int_equal(file_mode(f->ca, "ca.key"), 0600);
	assert_int_not_equal(file_mode(f->ca, "ca.crt"), (mode_t)-1);
	assert_int_not_equal(file_mode(f->ca, "crl.pem"), (mode_t)-1);
	assert_int_not_equal(file_mode(f->ca, "ca.json"), (mode_t)-1);
	/* A CA is created once. */
	assert_int_equal(tern_ca_init(f->ca, "other", 0), TERN_EEXIST);

	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_string_equal(tern_ca_federation(ca), "test federation");
	assert_int_equal(tern_ca_count(ca), 0);
	assert_int_equal(tern_ca_directory_version(ca), 0);
	/* Ten years by default, give or take a day. */
	assert_true(tern_ca_not_after(ca) > tern_now_ms() / 1000 + 3649LL * 86400);
	assert_true(tern_ca_not_after(ca) < tern_now_ms() / 1000 + 3651LL * 86400);
	tern_ca_close(&ca);
	assert_null(ca);
	assert_int_equal(crl_number(f->ca, NULL), 1);
}

static void test_ca_init_bad_args(void **state)
{
	struct fx *f = *state;

	assert_int_equal(tern_ca_init(f->ca, "", 0), TERN_EINVAL);
	assert_int_equal(tern_ca_init(f->ca, "line\nbreak", 0), TERN_EINVAL);
	assert_int_equal(tern_ca_init(f->ca, "x", -1), TERN_EINVAL);
	assert_int_equal(tern_ca_open(f->ca, &(tern_ca *){NULL}), TERN_ENOENT);
}

static void test_ca_open_refuses_readable_key(void **state)
{
	struct fx *f = *state;
	char path[256];
	tern_ca *ca = NULL;

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	snprintf(path, sizeof(path), "%s/ca.key", f->ca);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_EPERM);
	assert_null(ca);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	tern_ca_close(&ca);
}

static void test_ca_lock(void **state)
{
	struct fx *f = *state;
	tern_ca *a = NULL, *b = NULL;

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	assert_int_equal(tern_ca_open(f->ca, &a), TERN_OK);
	assert_int_equal(tern_ca_open(f->ca, &b), TERN_EIO);
	tern_ca_close(&a);
	assert_int_equal(tern_ca_open(f->ca, &b), TERN_OK);
	tern_ca_close(&b);
}

static void test_keygen_files_and_request(void **state)
{
	struct fx *f = *state;
	tern_node_request req, loaded;
	char dir[256], path[300];
	tern_signkey *sk = NULL;
	tern_sealkey *xk = NULL;
	tern_curvekey *ck = NULL;

	keygen(f, "unhcr", &req);
	snprintf(dir, sizeof(dir), "%s/unhcr", f->root);
	assert_int_equal(file_mode(f->root, "unhcr"), 0700);
	assert_int_equal(file_mode(dir, "node.key"), 0600);
	assert_int_equal(file_mode(dir, "seal.key"), 0600);
	assert_int_equal(file_mode(dir, "curve.key"), 0600);
	assert_int_equal(file_mode(dir, "node.req.json"), 0644);

	/* The request names the keys that were written. */
	snprintf(path, sizeof(path), "%s/node.key", dir);
	assert_int_equal(tern_signkey_load(path, &sk), TERN_OK);
	snprintf(path, sizeof(path), "%s/seal.key", dir);
	assert_int_equal(tern_sealkey_load(path, &xk), TERN_OK);
	snprintf(path, sizeof(path), "%s/curve.key", dir);
	assert_int_equal(tern_curvekey_load(path, &ck), TERN_OK);
	snprintf(path, sizeof(path), "%s/node.req.json", dir);
	assert_int_equal(tern_node_request_load(path, &loaded), TERN_OK);
	assert_string_equal(loaded.node_id, "unhcr");
	assert_memory_equal(loaded.sign_public, tern_signkey_public(sk), 32);
	assert_memory_equal(loaded.seal_public, tern_sealkey_public(xk), 32);
	assert_memory_equal(loaded.curve_public, tern_curvekey_public(ck), 32);
	assert_memory_equal(&loaded, &req, sizeof(req));
	tern_curvekey_free(&ck);
	tern_sealkey_free(&xk);
	tern_signkey_free(&sk);

	/* Keys are never overwritten. */
	assert_int_equal(tern_node_keygen(dir, "unhcr", NULL), TERN_EEXIST);
	assert_int_equal(tern_node_keygen(dir, "Bad_Id", NULL), TERN_EINVAL);
}

/* Replaces the first occurrence of from in the request file's text. */
static int request_edit(const char *path, const char *from, const char *to, tern_node_request *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *p;
	int rc;

	assert_int_equal(tern_file_read(path, 65536, &buf, &len), TERN_OK);
	p = strstr((char *)buf, from);
	assert_non_null(p);
	memcpy(p, to, strlen(to));
	rc = tern_node_request_parse((const char *)buf, len, out);
	free(buf);
	return rc;
}

static void test_request_proof_of_possession(void **state)
{
	struct fx *f = *state;
	tern_node_request req, a, b;
	char path[256], hex[65];
	int rc;

	keygen(f, "unhcr", &req);
	keygen(f, "iom", &b);
	snprintf(path, sizeof(path), "%s/unhcr/node.req.json", f->root);

	/* Another node's sealing key swapped in: the proof no longer verifies. */
	tern_hex(req.seal_public, 32, hex);
	{
		char other[65];
		tern_hex(b.seal_public, 32, other);
		assert_int_equal(request_edit(path, hex, other, &a), TERN_EBADSIG);
	}
	/* A renamed request. */
	assert_int_equal(request_edit(path, "\"unhcr\"", "\"unhcx\"", &a), TERN_EBADSIG);
	/* A changed format is refused before anything else. */
	rc = request_edit(path, "tern-node-request/1", "tern-node-request/9", &a);
	assert_int_equal(rc, TERN_EVERSION);
	assert_int_equal(tern_node_request_parse("{}", 2, &a), TERN_EMALFORMED);
	assert_int_equal(tern_node_request_parse("not json", 8, &a), TERN_EMALFORMED);
}

static void test_issue_serials_and_duplicates(void **state)
{
	struct fx *f = *state;
	tern_node_request u, i, u2;
	tern_ca *ca = NULL;
	tern_ca_entry e;
	char *pem = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	tern_cert_info info;

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	keygen(f, "unhcr", &u);
	keygen(f, "iom", &i);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);

	assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, &pem),
	                 TERN_OK);
	assert_int_equal(tern_cert_pem_to_der(pem, strlen(pem), &der, &der_len), TERN_OK);
	assert_int_equal(tern_cert_info_read(der, der_len, &info), TERN_OK);
	assert_string_equal(info.node_id, "unhcr");
	assert_string_equal(info.agency, "UNHCR");
	assert_int_equal(info.roles, TERN_ROLE_REFERRER);
	assert_memory_equal(info.sign_public, u.sign_public, 32);
	assert_string_equal(info.serial, "2"); /* the CA certificate is serial 1 */
	/* Two years by default. */
	assert_true(info.not_after - info.not_before > 729LL * 86400);
	assert_true(info.not_after - info.not_before < 731LL * 86400);
	free(der);
	free(pem);

	assert_int_equal(
	    tern_ca_issue(ca, &i, "IOM", TERN_ROLE_MOVEMENT | TERN_ROLE_STATE, NULL, 5, NULL),
	    TERN_OK);
	assert_int_equal(tern_ca_count(ca), 2);
	assert_int_equal(tern_ca_entry_at(ca, 1, &e), TERN_OK);
	assert_string_equal(e.serial, "3");
	assert_int_equal(e.roles, TERN_ROLE_MOVEMENT | TERN_ROLE_STATE);
	assert_true(e.not_after - e.not_before < 6 * 86400);

	/* One valid certificate per node; one certificate per key. */
	assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_EEXIST);
	u2 = i;
	strcpy(u2.node_id, "sweden");
	assert_int_equal(tern_ca_issue(ca, &u2, "S", TERN_ROLE_STATE, NULL, 0, NULL), TERN_EEXIST);

	/* Bad arguments. */
	assert_int_equal(tern_ca_issue(ca, &u, "", TERN_ROLE_REFERRER, NULL, 0, NULL), TERN_EINVAL);
	assert_int_equal(tern_ca_issue(ca, &u, "U", 0, NULL, 0, NULL), TERN_EINVAL);
	assert_int_equal(tern_ca_issue(ca, &u, "U", 1u << 9, NULL, 0, NULL), TERN_EINVAL);

	/* After revocation the node comes back, but only with fresh keys. */
	assert_int_equal(tern_ca_revoke(ca, "unhcr", "superseded"), TERN_OK);
	assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_EEXIST);
	tern_ca_close(&ca);
}

/* --until: the certificate ends at that instant; never in the past, never
 * beyond the CA. tern_member_expired judges against the clock given. */
static void test_issue_until(void **state)
{
	struct fx *f = *state;
	tern_node_request u;
	tern_ca *ca = NULL;
	tern_ca_entry e;
	tern_member m;
	int64_t now = (int64_t)time(NULL);

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	keygen(f, "unhcr", &u);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_issue_until(ca, &u, "U", TERN_ROLE_REFERRER, NULL, now - 1, NULL),
	                 TERN_EINVAL);
	assert_int_equal(tern_ca_issue_until(ca, &u, "U", TERN_ROLE_REFERRER, NULL,
	                                     tern_ca_not_after(ca) + 1, NULL),
	                 TERN_EINVAL);
	assert_int_equal(tern_ca_count(ca), 0);
	assert_int_equal(
	    tern_ca_issue_until(ca, &u, "U", TERN_ROLE_REFERRER, NULL, now + 3600, NULL), TERN_OK);
	assert_int_equal(tern_ca_entry_at(ca, 0, &e), TERN_OK);
	assert_int_equal(e.not_after, now + 3600);

	memset(&m, 0, sizeof(m));
	m.cert_not_after = e.not_after;
	assert_false(tern_member_expired(&m, now));
	assert_false(tern_member_expired(&m, now + 3600));
	assert_true(tern_member_expired(&m, now + 3601));
	m.expired = 1; /* found expired when the directory was loaded */
	assert_true(tern_member_expired(&m, now));
	tern_ca_close(&ca);
}

static void test_reissue_after_revoke(void **state)
{
	struct fx *f = *state;
	tern_node_request a, b;
	tern_ca *ca = NULL;
	char dir[256];

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	keygen(f, "unhcr", &a);
	snprintf(dir, sizeof(dir), "%s/unhcr-new", f->root);
	assert_int_equal(tern_node_keygen(dir, "unhcr", &b), TERN_OK);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_issue(ca, &a, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_OK);
	assert_int_equal(tern_ca_revoke(ca, "unhcr", "key-compromise"), TERN_OK);
	assert_int_equal(tern_ca_revoke(ca, "unhcr", NULL), TERN_ENOENT);
	assert_int_equal(tern_ca_revoke(ca, "nobody", NULL), TERN_ENOENT);
	assert_int_equal(tern_ca_issue(ca, &b, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_OK);
	assert_int_equal(tern_ca_count(ca), 2);
	tern_ca_close(&ca);
}

static void test_crl_numbers_and_entries(void **state)
{
	struct fx *f = *state;
	tern_node_request u, i;
	tern_ca *ca = NULL;
	tern_ca_entry e;
	int nrev = -1;

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	keygen(f, "unhcr", &u);
	keygen(f, "iom", &i);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_OK);
	assert_int_equal(tern_ca_issue(ca, &i, "IOM", TERN_ROLE_MOVEMENT, NULL, 0, NULL), TERN_OK);
	assert_int_equal(crl_number(f->ca, &nrev), 1);
	assert_int_equal(nrev, 0);
	assert_int_equal(tern_ca_revoke(ca, "iom", "cessation-of-operation"), TERN_OK);
	assert_int_equal(crl_number(f->ca, &nrev), 2);
	assert_int_equal(nrev, 1);
	assert_int_equal(tern_ca_write_crl(ca, 7), TERN_OK);
	assert_int_equal(crl_number(f->ca, &nrev), 3);
	assert_int_equal(nrev, 1);
	assert_int_equal(tern_ca_write_crl(ca, 0), TERN_OK);
	assert_int_equal(tern_ca_write_crl(ca, 100000), TERN_EINVAL);

	assert_int_equal(tern_ca_entry_at(ca, 1, &e), TERN_OK);
	assert_string_equal(e.node_id, "iom");
	assert_true(e.revoked);
	assert_true(e.revoked_at > 0);
	assert_string_equal(e.reason, "cessation-of-operation");
	assert_int_equal(tern_ca_entry_at(ca, 0, &e), TERN_OK);
	assert_false(e.revoked);
	assert_int_equal(tern_ca_entry_at(ca, 2, &e), TERN_ENOENT);
	tern_ca_close(&ca);

	/* The database survives a reopen. */
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_count(ca), 2);
	assert_int_equal(tern_ca_entry_at(ca, 1, &e), TERN_OK);
	assert_true(e.revoked);
	tern_ca_close(&ca);
}

static void test_directory_versions_increase(void **state)
{
	struct fx *f = *state;
	tern_node_request u;
	tern_ca *ca = NULL;
	uint64_t v1 = 0, v2 = 0, v3 = 0;
	char out[256];

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	keygen(f, "unhcr", &u);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	assert_int_equal(tern_ca_write_directory(ca, NULL, &v1), TERN_OK); /* empty is fine */
	assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
	                 TERN_OK);
	assert_int_equal(tern_ca_write_directory(ca, NULL, &v2), TERN_OK);
	tern_ca_close(&ca);
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	snprintf(out, sizeof(out), "%s/elsewhere.tdir", f->root);
	assert_int_equal(tern_ca_write_directory(ca, out, &v3), TERN_OK);
	assert_int_equal(v1, 1);
	assert_int_equal(v2, 2);
	assert_int_equal(v3, 3);
	assert_int_equal(tern_ca_directory_version(ca), 3);
	assert_int_not_equal(file_mode(f->root, "elsewhere.tdir"), (mode_t)-1);
	tern_ca_close(&ca);
}

static void test_directory_refused_with_expired_crl(void **state)
{
	struct fx *f = *state;
	tern_ca *ca = NULL;
	char path[256], cmd[512];
	uint64_t v = 0;

	assert_int_equal(tern_ca_init(f->ca, "t", 0), TERN_OK);
	/* Replace the CRL with one from the past: the CA's self-check must
	 * refuse to publish a directory nodes would reject. */
	assert_int_equal(tern_ca_open(f->ca, &ca), TERN_OK);
	snprintf(path, sizeof(path), "%s/crl.pem", f->ca);
	{
		FILE *fp = fopen(path, "r");
		X509_CRL *crl;
		ASN1_TIME *t;
		tern_signkey *k = NULL;
		assert_non_null(fp);
		assert_non_null(crl = PEM_read_X509_CRL(fp, NULL, NULL, NULL));
		fclose(fp);
		snprintf(cmd, sizeof(cmd), "%s/ca.key", f->ca);
		assert_int_equal(tern_signkey_load(cmd, &k), TERN_OK);
		t = X509_gmtime_adj(NULL, -86400);
		X509_CRL_set1_nextUpdate(crl, t);
		t = X509_gmtime_adj(t, -2 * 86400);
		X509_CRL_set1_lastUpdate(crl, t);
		ASN1_TIME_free(t);
		assert_true(X509_CRL_sign(crl, tern_signkey_evp(k), NULL) > 0);
		assert_non_null(fp = fopen(path, "w"));
		PEM_write_X509_CRL(fp, crl);
		fclose(fp);
		X509_CRL_free(crl);
		tern_signkey_free(&k);
	}
	{
		tern_node_request u;
		keygen(f, "unhcr", &u);
		assert_int_equal(tern_ca_issue(ca, &u, "UNHCR", TERN_ROLE_REFERRER, NULL, 0, NULL),
		                 TERN_OK);
	}
	assert_int_equal(tern_ca_write_directory(ca, NULL, &v), TERN_EEXPIRED);
	assert_int_equal(tern_ca_directory_version(ca), 0);
	assert_int_equal(file_mode(f->ca, "directory.tdir"), (mode_t)-1);
	/* A fresh CRL fixes it. */
	assert_int_equal(tern_ca_write_crl(ca, 0), TERN_OK);
	assert_int_equal(tern_ca_write_directory(ca, NULL, &v), TERN_OK);
	assert_int_equal(v, 1);
	tern_ca_close(&ca);
}

static void test_curve_keys(void **state)
{
	struct fx *f = *state;
	tern_curvekey *k = NULL, *l = NULL;
	uint8_t raw[32];
	char path[256], z85[TERN_CURVE_Z85_LEN];

	assert_int_equal(tern_curvekey_generate(&k), TERN_OK);
	assert_int_equal(strlen(tern_curvekey_public_z85(k)), 40);
	assert_int_equal(strlen(tern_curvekey_secret_z85(k)), 40);
	assert_int_equal(tern_curve_z85_decode(tern_curvekey_public_z85(k), raw), TERN_OK);
	assert_memory_equal(raw, tern_curvekey_public(k), 32);
	tern_curve_z85_encode(raw, z85);
	assert_string_equal(z85, tern_curvekey_public_z85(k));

	snprintf(path, sizeof(path), "%s/curve.key", f->root);
	assert_int_equal(tern_curvekey_save(k, path), TERN_OK);
	assert_int_equal(file_mode(f->root, "curve.key"), 0600);
	assert_int_equal(tern_curvekey_load(path, &l), TERN_OK);
	assert_memory_equal(tern_curvekey_secret(l), tern_curvekey_secret(k), 32);
	assert_memory_equal(tern_curvekey_public(l), tern_curvekey_public(k), 32);
	tern_curvekey_free(&l);
	assert_null(l);

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(tern_curvekey_load(path, &l), TERN_EPERM);
	tern_curvekey_free(&k);
	tern_curvekey_free(&k); /* harmless */

	assert_int_equal(tern_curve_z85_decode("short", raw), TERN_EMALFORMED);
	assert_int_equal(tern_curve_z85_decode("~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~", raw),
	                 TERN_EMALFORMED);
}

static void test_curve_key_file_mismatch(void **state)
{
	struct fx *f = *state;
	tern_curvekey *a = NULL, *b = NULL, *l = NULL;
	char path[256], text[512];
	int n;

	assert_int_equal(tern_curvekey_generate(&a), TERN_OK);
	assert_int_equal(tern_curvekey_generate(&b), TERN_OK);
	snprintf(path, sizeof(path), "%s/mixed.key", f->root);
	n = snprintf(text, sizeof(text),
	             "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
	             tern_curvekey_public_z85(b), tern_curvekey_secret_z85(a));
	assert_int_equal(tt_write_file(path, text, (size_t)n, 0600), 0);
	assert_int_equal(tern_curvekey_load(path, &l), TERN_EMALFORMED);
	assert_null(l);
	tern_curvekey_free(&a);
	tern_curvekey_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ca_init_files_and_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ca_init_bad_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ca_open_refuses_readable_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ca_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keygen_files_and_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_proof_of_possession, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_issue_serials_and_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_issue_until, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reissue_after_revoke, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crl_numbers_and_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_directory_versions_increase, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_directory_refused_with_expired_crl, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_curve_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_curve_key_file_mismatch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

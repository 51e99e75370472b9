/* Trust checks: a node certificate against the federation CA and CRL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <tern/error.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/trust.h>

#include "failmalloc.h"
#include "testutil.h"
#include "util.h"

struct fx {
	char root[64];
	char ca[128], ca_crt[160], crl[160];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (tt_mkdtemp(f->root, sizeof(f->root), "trust") != 0)
		return -1;
	snprintf(f->ca, sizeof(f->ca), "%s/ca", f->root);
	snprintf(f->ca_crt, sizeof(f->ca_crt), "%s/ca.crt", f->ca);
	snprintf(f->crl, sizeof(f->crl), "%s/crl.pem", f->ca);
	if (tern_ca_init(f->ca, "test", 0) != TERN_OK)
		return -1;
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

/* Generates keys for id under root and has the CA in cadir certify them. */
static void issue(const char *root, const char *cadir, const char *id, unsigned roles, int days,
                  tern_node_request *req, uint8_t **der, size_t *len)
{
	char dir[256], *pem = NULL;
	tern_ca *ca = NULL;

	snprintf(dir, sizeof(dir), "%s/%s", root, id);
	assert_int_equal(tern_node_keygen(dir, id, req), TERN_OK);
	assert_int_equal(tern_ca_open(cadir, &ca), TERN_OK);
	assert_int_equal(tern_ca_issue(ca, req, "Agency", roles, NULL, days, &pem), TERN_OK);
	tern_ca_close(&ca);
	assert_int_equal(tern_cert_pem_to_der(pem, strlen(pem), der, len), TERN_OK);
	free(pem);
}

static void revoke_for(const char *cadir, const char *id, const char *reason)
{
	tern_ca *ca = NULL;

	assert_int_equal(tern_ca_open(cadir, &ca), TERN_OK);
	assert_int_equal(tern_ca_revoke(ca, id, reason), TERN_OK);
	tern_ca_close(&ca);
}

static void revoke(const char *cadir, const char *id)
{
	revoke_for(cadir, id, "key-compromise");
}

/* Why the CRL revokes a certificate: a compromise (or no reason given)
 * forbids anything its key signed, another reason (superseded, an agency
 * leaving) does not. What a recipient shows from its inbox depends on it. */
static void test_revocation_reason(void **state)
{
	struct fx *f = *state;
	static const char *const why[] = {"key-compromise", "unspecified", "superseded",
	                                  "cessation-of-operation", "affiliation-changed"};
	static const int compromise[] = {1, 1, 0, 0, 0};
	static const char *const ids[] = {"unhcr", "sweden", "iom", "norway", "italy"};
	uint8_t *der[5] = {NULL};
	size_t len[5] = {0};
	tern_node_request req;
	tern_trust *t = NULL;
	int c;

	for (int i = 0; i < 5; i++)
		issue(f->root, f->ca, ids[i], TERN_ROLE_STATE, 0, &req, &der[i], &len[i]);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(tern_trust_revoked_compromised(t, der[i], len[i], &c),
		                 TERN_ENOENT);
	tern_trust_free(&t);
	for (int i = 0; i < 5; i++)
		revoke_for(f->ca, ids[i], why[i]);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	for (int i = 0; i < 5; i++) {
		c = -1;
		assert_int_equal(tern_trust_revoked_compromised(t, der[i], len[i], &c), TERN_OK);
		if (c != compromise[i])
			fail_msg("revoked %s: compromised %d", why[i], c);
	}
	assert_int_equal(tern_trust_revoked_compromised(t, (const uint8_t *)"junk", 4, &c),
	                 TERN_ECERT);
#if MALLOC_CAN_FAIL
	/* Under each shortage: the same answer, or no-memory. Never a key
	 * superseded taken for one compromised (its messages hidden), nor the
	 * other way round. */
	for (int i = 0; i < 5; i += 2) {
		long k;
		for (k = 1;; k++) {
			int rc, failed;
			c = -1;
			malloc_failed = 0;
			malloc_fail_at = k;
			rc = tern_trust_revoked_compromised(t, der[i], len[i], &c);
			malloc_fail_at = 0;
			failed = malloc_failed;
			if (rc == TERN_OK ? c != compromise[i] : rc != TERN_ENOMEM || !failed)
				fail_msg("revoked %s, allocation %ld failing: %s, compromised %d",
				         why[i], k, tern_strerror(rc), c);
			if (!failed)
				break;
		}
		print_message("shortage sweep (%s): %ld allocations\n", why[i], k - 1);
	}
#endif
	tern_trust_free(&t);
	for (int i = 0; i < 5; i++)
		free(der[i]);
}

static void test_load_and_accessors(void **state)
{
	struct fx *f = *state;
	tern_trust *t = NULL;
	tern_signkey *k = NULL;
	char path[256];
	int64_t now = (int64_t)time(NULL);

	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	snprintf(path, sizeof(path), "%s/ca.key", f->ca);
	assert_int_equal(tern_signkey_load(path, &k), TERN_OK);
	assert_memory_equal(tern_trust_ca_public(t), tern_signkey_public(k), 32);
	assert_string_equal(tern_trust_federation(t), "test");
	/* The first CRL the CA signs is number 1. */
	assert_true(tern_trust_crl_number(t) == 1);
	/* 30 days by default. */
	assert_true(tern_trust_crl_next_update(t) > now + 29 * 86400);
	assert_true(tern_trust_crl_next_update(t) < now + 31 * 86400);
	tern_signkey_free(&k);
	tern_trust_free(&t);
	assert_null(t);
	tern_trust_free(&t);
}

static void test_load_refusals(void **state)
{
	struct fx *f = *state;
	tern_trust *t = NULL;
	char other[160], other_crl[192], missing[192];

	/* A CRL is required. */
	snprintf(missing, sizeof(missing), "%s/none.pem", f->ca);
	assert_int_equal(tern_trust_load(f->ca_crt, missing, &t), TERN_ENOENT);
	/* A CRL from another CA. */
	snprintf(other, sizeof(other), "%s/other", f->root);
	assert_int_equal(tern_ca_init(other, "test", 0), TERN_OK);
	snprintf(other_crl, sizeof(other_crl), "%s/crl.pem", other);
	assert_int_equal(tern_trust_load(f->ca_crt, other_crl, &t), TERN_ECERT);
	/* Not a certificate at all. */
	assert_int_equal(tern_trust_load(f->crl, f->crl, &t), TERN_ECERT);
	assert_null(t);
}

static void test_valid_then_revoked(void **state)
{
	struct fx *f = *state;
	tern_node_request req;
	tern_trust *t = NULL;
	tern_cert_info info;
	uint8_t *der = NULL;
	size_t len = 0;

	issue(f->root, f->ca, "unhcr", TERN_ROLE_REFERRER, 0, &req, &der, &len);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_OK);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_OK);
	assert_string_equal(info.node_id, "unhcr");
	assert_string_equal(info.agency, "Agency");
	assert_int_equal(info.roles, TERN_ROLE_REFERRER);
	assert_memory_equal(info.sign_public, req.sign_public, 32);
	tern_trust_free(&t);

	revoke(f->ca, "unhcr");
	/* The old trust still holds the old CRL; a reloaded one knows, and has
	 * the next number. */
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_true(tern_trust_crl_number(t) == 2);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_EREVOKED);
	assert_non_null(strstr(tern_errdetail(), "revoked"));
	tern_trust_free(&t);
	free(der);
}

static void test_other_ca(void **state)
{
	struct fx *f = *state;
	tern_node_request req;
	tern_trust *t = NULL;
	char other[160];
	uint8_t *der = NULL;
	size_t len = 0;

	/* Same federation name, same node id: only the key tells them apart. */
	snprintf(other, sizeof(other), "%s/other", f->root);
	assert_int_equal(tern_ca_init(other, "test", 0), TERN_OK);
	issue(f->root, other, "unhcr", TERN_ROLE_REFERRER, 0, &req, &der, &len);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_ECERT);
	tern_trust_free(&t);
	free(der);
}

static void test_expiry(void **state)
{
	struct fx *f = *state;
	tern_node_request req;
	tern_trust *t = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	int64_t now = (int64_t)time(NULL);

	issue(f->root, f->ca, "iom", TERN_ROLE_MOVEMENT, 1, &req, &der, &len);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, der, len, now + 3600), TERN_OK);
	/* Two days on the certificate is out of date; the CRL still holds. */
	assert_int_equal(tern_trust_check_cert(t, der, len, now + 2 * 86400), TERN_EEXPIRED);
	free(der);
	/* A two-year certificate 40 days on: the CRL is past its nextUpdate. */
	issue(f->root, f->ca, "sweden", TERN_ROLE_STATE, 0, &req, &der, &len);
	tern_trust_free(&t);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, der, len, now + 40 * 86400), TERN_EEXPIRED);
	assert_non_null(strstr(tern_errdetail(), "CRL"));
	assert_int_equal(tern_trust_check_cert(t, der, len, now + 86400), TERN_OK);
	tern_trust_free(&t);
	free(der);
}

static void test_garbage(void **state)
{
	struct fx *f = *state;
	tern_node_request req;
	tern_trust *t = NULL;
	tern_cert_info info;
	uint8_t *der = NULL, *longer;
	size_t len = 0;

	issue(f->root, f->ca, "unhcr", TERN_ROLE_REFERRER, 0, &req, &der, &len);
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, (const uint8_t *)"junk", 4, 0), TERN_ECERT);
	assert_int_equal(tern_trust_check_cert(t, der, 0, 0), TERN_ECERT);
	assert_int_equal(tern_trust_check_cert(t, der, len - 1, 0), TERN_ECERT);
	/* A trailing byte would let two blobs stand for one certificate. */
	longer = malloc(len + 1);
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_int_equal(tern_trust_check_cert(t, longer, len + 1, 0), TERN_ECERT);
	assert_int_equal(tern_cert_info_read(longer, len + 1, &info), TERN_ECERT);
	/* One flipped bit in the signature. */
	memcpy(longer, der, len);
	longer[len - 3] ^= 1;
	assert_int_equal(tern_trust_check_cert(t, longer, len, 0), TERN_ECERT);
	free(longer);
	tern_trust_free(&t);
	free(der);
}

/* A certificate the CA key signs with a profile of our choosing. */
/* What craft() signs with and which serial it uses: the CA's key and 999
 * unless a test says otherwise. */
static tern_signkey *craft_signer;
static long craft_serial = 999;

static void craft(struct fx *f, const char *subject_cn, const char *ou, const char *bc,
                  const char *ku, uint8_t **der, size_t *len)
{
	char path[256];
	tern_signkey *cak = NULL, *nk = NULL;
	X509 *ca, *x;
	X509_NAME *name;
	X509V3_CTX ctx;
	FILE *fp;
	unsigned char *buf = NULL;
	int n;

	snprintf(path, sizeof(path), "%s/ca.key", f->ca);
	assert_int_equal(tern_signkey_load(path, &cak), TERN_OK);
	assert_non_null(fp = fopen(f->ca_crt, "r"));
	assert_non_null(ca = PEM_read_X509(fp, NULL, NULL, NULL));
	fclose(fp);
	assert_int_equal(tern_signkey_generate(&nk), TERN_OK);

	x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), craft_serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, tern_signkey_evp(nk));
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"A", -1, -1, 0);
	if (ou)
		X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1,
		                           -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)subject_cn, -1,
	                           -1, 0);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	{
		struct {
			int nid;
			const char *v;
		} exts[] = {{NID_basic_constraints, bc},
		            {NID_key_usage, ku},
		            {NID_subject_key_identifier, "hash"},
		            {NID_authority_key_identifier, "keyid:always"}};
		for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
			X509_EXTENSION *e;
			if (exts[i].v == NULL)
				continue;
			assert_non_null(
			    e = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].v));
			X509_add_ext(x, e, -1);
			X509_EXTENSION_free(e);
		}
	}
	assert_true(X509_sign(x, tern_signkey_evp(craft_signer ? craft_signer : cak), NULL) > 0);
	assert_true((n = i2d_X509(x, &buf)) > 0);
	*der = malloc((size_t)n);
	memcpy(*der, buf, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(buf);
	X509_free(x);
	X509_free(ca);
	tern_signkey_free(&nk);
	tern_signkey_free(&cak);
}

/* OpenSSL checks the CRL before the signature: a forgery that reuses a
 * revoked serial must not pass as a genuine, revoked member. */
static void test_forgery_with_revoked_serial(void **state)
{
	struct fx *f = *state;
	tern_node_request req;
	tern_cert_info info;
	tern_trust *t = NULL;
	tern_signkey *fake = NULL;
	uint8_t *der = NULL, *forged = NULL;
	size_t len = 0, flen = 0;

	issue(f->root, f->ca, "unhcr", TERN_ROLE_REFERRER, 0, &req, &der, &len);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_OK);
	revoke(f->ca, "unhcr");
	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_EREVOKED);

	assert_int_equal(tern_signkey_generate(&fake), TERN_OK);
	craft_signer = fake;
	craft_serial = strtol(info.serial, NULL, 16);
	craft(f, "unhcr", "referrer", "critical,CA:FALSE", "critical,digitalSignature", &forged,
	      &flen);
	craft_signer = NULL;
	craft_serial = 999;
	assert_int_equal(tern_trust_check_cert(t, forged, flen, 0), TERN_ECERT);
	assert_non_null(strstr(tern_errdetail(), "not signed by the federation CA"));

	tern_signkey_free(&fake);
	tern_trust_free(&t);
	free(forged);
	free(der);
}

static void test_profile_checks(void **state)
{
	struct fx *f = *state;
	tern_trust *t = NULL;
	tern_cert_info info;
	uint8_t *der = NULL;
	size_t len = 0;

	assert_int_equal(tern_trust_load(f->ca_crt, f->crl, &t), TERN_OK);

	/* The crafted profile itself is fine... */
	craft(f, "good", "state", "critical,CA:FALSE", "critical,digitalSignature", &der, &len);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_OK);
	free(der);
	/* ...without digitalSignature it is not (purpose "any" would pass it). */
	craft(f, "nosig", "state", "critical,CA:FALSE", "critical,keyEncipherment", &der, &len);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_ECERT);
	assert_non_null(strstr(tern_errdetail(), "digitalSignature"));
	free(der);
	/* No key usage at all. */
	craft(f, "noku", "state", "critical,CA:FALSE", NULL, &der, &len);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_ECERT);
	free(der);
	/* No basicConstraints. */
	craft(f, "nobc", "state", NULL, "critical,digitalSignature", &der, &len);
	assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_ECERT);
	free(der);
	/* The CA certificate is not a node certificate. */
	{
		uint8_t *buf = NULL;
		size_t n = 0;
		assert_int_equal(tern_file_read(f->ca_crt, 65536, &buf, &n), TERN_OK);
		assert_int_equal(tern_cert_pem_to_der((const char *)buf, n, &der, &len), TERN_OK);
		assert_int_equal(tern_trust_check_cert(t, der, len, 0), TERN_ECERT);
		free(buf);
		free(der);
	}
	/* Identity: an OU that is not a role, no OU, a CN that is no node id. */
	craft(f, "good", "admin", "critical,CA:FALSE", "critical,digitalSignature", &der, &len);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_ECERT);
	free(der);
	craft(f, "good", NULL, "critical,CA:FALSE", "critical,digitalSignature", &der, &len);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_ECERT);
	free(der);
	craft(f, "Not A Node", "state", "critical,CA:FALSE", "critical,digitalSignature", &der,
	      &len);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_ECERT);
	free(der);
	craft(f, "good", "state", "critical,CA:FALSE", "critical,digitalSignature", &der, &len);
	assert_int_equal(tern_cert_info_read(der, len, &info), TERN_OK);
	assert_string_equal(info.serial, "3e7");
	assert_int_equal(info.roles, TERN_ROLE_STATE);
	free(der);
	tern_trust_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_and_accessors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_valid_then_revoked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revocation_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_ca, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_profile_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forgery_with_revoked_serial, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

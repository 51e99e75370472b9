/* The federation trust anchor: one CA certificate and its CRL in an
 * X509_STORE, plus the checks OpenSSL's default purpose "any" leaves out. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/trust.h>

#include "util.h"

#define PEM_FILE_MAX (1024 * 1024)
#define CERT_DER_MAX 16384

struct tern_trust {
	X509_STORE *store;
	X509 *ca;
	X509_CRL *crl;
	uint8_t ca_public[32];
	char federation[128];
	int64_t crl_next_update;
	int64_t crl_number;
};

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* The first error in OpenSSL's queue, for a detail sentence. */
static const char *ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "no reason given";
}

/* Copies the only entry of nid in name as UTF-8; TERN_ENOENT if none,
 * TERN_EMALFORMED if several or too long. */
static int name_get_one(const X509_NAME *name, int nid, char *out, size_t cap)
{
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *utf8 = NULL;
	int n;

	if (idx < 0)
		return TERN_ENOENT;
	if (X509_NAME_get_index_by_NID(name, nid, idx) >= 0)
		return TERN_EMALFORMED;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
	if (n < 0)
		return TERN_EMALFORMED;
	if ((size_t)n >= cap || memchr(utf8, 0, (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return TERN_EMALFORMED;
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
	return TERN_OK;
}

static int read_pem_file(const char *path, uint8_t **buf, size_t *len, BIO **bio)
{
	int rc;

	if ((rc = tern_file_read(path, PEM_FILE_MAX, buf, len)) != TERN_OK)
		return rc;
	if ((*bio = BIO_new_mem_buf(*buf, (int)*len)) == NULL) {
		free(*buf);
		*buf = NULL;
		return TERN_ENOMEM;
	}
	return TERN_OK;
}

static int load_ca(const char *path, tern_trust *t)
{
	uint8_t *buf = NULL;
	size_t len = 0, publen = 32;
	BIO *bio = NULL;
	EVP_PKEY *pkey;
	int rc;

	if ((rc = read_pem_file(path, &buf, &len, &bio)) != TERN_OK)
		return rc;
	if ((t->ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		rc = tern_fail(TERN_ECERT, "%s is not a PEM certificate", path);
		goto out;
	}
	pkey = X509_get0_pubkey(t->ca);
	if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		rc = tern_fail(TERN_ECERT, "%s: a Tern CA certificate has an Ed25519 key", path);
		goto out;
	}
	if (X509_check_ca(t->ca) != 1 || !(X509_get_extension_flags(t->ca) & EXFLAG_SS) ||
	    X509_verify(t->ca, pkey) != 1) {
		rc = tern_fail(TERN_ECERT, "%s is not a self-signed CA certificate", path);
		goto out;
	}
	if ((X509_get_key_usage(t->ca) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) !=
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
		rc = tern_fail(TERN_ECERT, "%s: CA key usage lacks keyCertSign or cRLSign", path);
		goto out;
	}
	if (EVP_PKEY_get_raw_public_key(pkey, t->ca_public, &publen) != 1 || publen != 32) {
		rc = tern_fail(TERN_ECRYPTO, "cannot read the CA public key in %s", path);
		goto out;
	}
	if (name_get_one(X509_get_subject_name(t->ca), NID_organizationName, t->federation,
	                 sizeof(t->federation)) != TERN_OK) {
		rc = tern_fail(TERN_ECERT, "%s: the CA subject has no single O (federation name)",
		               path);
		goto out;
	}
	rc = TERN_OK;
out:
	BIO_free(bio);
	free(buf);
	return rc;
}

static int load_crl(const char *path, tern_trust *t)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	if ((rc = read_pem_file(path, &buf, &len, &bio)) != TERN_OK)
		return rc;
	if ((t->crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) == NULL) {
		rc = tern_fail(TERN_ECERT, "%s is not a PEM CRL", path);
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(t->crl), X509_get_subject_name(t->ca)) != 0) {
		rc = tern_fail(TERN_ECERT, "%s was issued by another CA than the federation's",
		               path);
		goto out;
	}
	if (X509_CRL_verify(t->crl, X509_get0_pubkey(t->ca)) != 1) {
		rc = tern_fail(TERN_ECERT, "%s is not signed by the federation CA", path);
		goto out;
	}
	if (X509_CRL_get0_nextUpdate(t->crl) == NULL) {
		rc = tern_fail(TERN_ECERT, "%s has no nextUpdate; Tern CRLs must expire", path);
		goto out;
	}
	t->crl_next_update = asn1_time_epoch(X509_CRL_get0_nextUpdate(t->crl));
	/* The number is what lets a daemon refuse an older CRL put back in
	 * place (which would un-revoke whoever the newer one revoked). */
	{
		ASN1_INTEGER *num = X509_CRL_get_ext_d2i(t->crl, NID_crl_number, NULL, NULL);
		int ok =
		    num && ASN1_INTEGER_get_int64(&t->crl_number, num) == 1 && t->crl_number >= 0;
		ASN1_INTEGER_free(num);
		if (!ok) {
			rc =
			    tern_fail(TERN_ECERT,
			              "%s has no usable cRLNumber; Tern CRLs are numbered (tern ca "
			              "crl)",
			              path);
			goto out;
		}
	}
	rc = TERN_OK;
out:
	BIO_free(bio);
	free(buf);
	return rc;
}

int tern_trust_load(const char *ca_path, const char *crl_path, tern_trust **out)
{
	tern_trust *t;
	int rc;

	if (ca_path == NULL || crl_path == NULL || out == NULL)
		return TERN_EINVAL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return TERN_ENOMEM;
	ERR_clear_error();
	if ((rc = load_ca(ca_path, t)) != TERN_OK)
		goto fail;
	if ((rc = load_crl(crl_path, t)) != TERN_OK)
		goto fail;
	if ((t->store = X509_STORE_new()) == NULL || X509_STORE_add_cert(t->store, t->ca) != 1 ||
	    X509_STORE_add_crl(t->store, t->crl) != 1) {
		rc = tern_fail(TERN_ECRYPTO, "cannot build the trust store: %s", ossl_reason());
		goto fail;
	}
	/* OpenSSL never fetches CRLs and skips them unless told: require one for
	 * every certificate in the chain. */
	X509_STORE_set_flags(t->store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL |
	                                   X509_V_FLAG_X509_STRICT);
	*out = t;
	return TERN_OK;
fail:
	tern_trust_free(&t);
	return rc;
}

void tern_trust_free(tern_trust **trust)
{
	if (trust == NULL || *trust == NULL)
		return;
	X509_STORE_free((*trust)->store);
	X509_CRL_free((*trust)->crl);
	X509_free((*trust)->ca);
	free(*trust);
	*trust = NULL;
}

const uint8_t *tern_trust_ca_public(const tern_trust *trust)
{
	return trust->ca_public;
}

const char *tern_trust_federation(const tern_trust *trust)
{
	return trust->federation;
}

int64_t tern_trust_crl_next_update(const tern_trust *trust)
{
	return trust->crl_next_update;
}

int64_t tern_trust_crl_number(const tern_trust *trust)
{
	return trust->crl_number;
}

static X509 *der_to_x509(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (der == NULL || len == 0 || len > CERT_DER_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	/* Trailing bytes would let two different blobs carry one certificate. */
	if (x != NULL && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int map_verify_error(int err, int depth)
{
	const char *what = depth == 0 ? "certificate" : "CA certificate";
	const char *why = X509_verify_cert_error_string(err);

	switch (err) {
	case X509_V_ERR_CERT_REVOKED:
		return tern_fail(TERN_EREVOKED, "%s is revoked by the federation CRL", what);
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return tern_fail(TERN_EEXPIRED, "%s: %s", what, why);
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return tern_fail(TERN_EEXPIRED, "the federation CRL is past its nextUpdate; the CA "
		                                "operator must publish a new one (tern ca crl)");
	default:
		return tern_fail(TERN_ECERT, "%s does not verify: %s", what, why);
	}
}

int tern_trust_check_cert(const tern_trust *trust, const uint8_t *der, size_t len, int64_t now)
{
	X509_STORE_CTX *ctx = NULL;
	X509 *x;
	EVP_PKEY *pkey;
	uint32_t flags;
	int rc, ok, err, depth;

	if (trust == NULL)
		return TERN_EINVAL;
	if ((x = der_to_x509(der, len)) == NULL)
		return tern_fail(TERN_ECERT, "not a DER X.509 certificate (%zu bytes)", len);
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, trust->store, x, NULL) != 1) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if (now != 0)
		X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
	ok = X509_verify_cert(ctx) == 1;
	err = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	if (!ok) {
		/* OpenSSL reports revocation (and expiry) of the leaf before, or
		 * instead of, a failed signature: a forged certificate reusing a
		 * revoked serial would pass as "revoked". Only a certificate the CA
		 * really signed, in our profile, may be called revoked or expired. */
		int leaf_status = depth == 0 && (err == X509_V_ERR_CERT_REVOKED ||
		                                 err == X509_V_ERR_CERT_HAS_EXPIRED ||
		                                 err == X509_V_ERR_CERT_NOT_YET_VALID);
		if (!leaf_status) {
			rc = map_verify_error(err, depth);
			goto out;
		}
		if (X509_verify(x, X509_get0_pubkey(trust->ca)) != 1) {
			rc =
			    tern_fail(TERN_ECERT, "certificate is not signed by the federation CA");
			goto out;
		}
	}
	/* The chain is sound; now what the default purpose "any" does not ask. */
	pkey = X509_get0_pubkey(x);
	if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		rc = tern_fail(TERN_ECERT, "certificate key is not Ed25519");
		goto out;
	}
	flags = X509_get_extension_flags(x);
	if ((flags & EXFLAG_CA) || !(flags & EXFLAG_BCONS)) {
		rc = tern_fail(TERN_ECERT,
		               "not a node certificate (basicConstraints must be CA:FALSE)");
		goto out;
	}
	if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE)) {
		rc = tern_fail(TERN_ECERT, "certificate key usage lacks digitalSignature");
		goto out;
	}
	if (!ok) {
		rc = map_verify_error(err, depth);
		goto out;
	}
	rc = TERN_OK;
out:
	X509_STORE_CTX_free(ctx);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

/* Whether OpenSSL's last failure on this thread was an allocation. */
static int short_of_memory(void)
{
	unsigned long e;

	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
			return 1;
	return 0;
}

int tern_trust_revoked_compromised(const tern_trust *trust, const uint8_t *der, size_t len,
                                   int *compromised)
{
	X509_REVOKED *rev = NULL;
	ASN1_ENUMERATED *why = NULL;
	X509 *x;
	long reason = -1;
	int crit = -1, rc;

	*compromised = 0;
	if (trust == NULL || trust->crl == NULL)
		return TERN_EINVAL;
	if ((x = der_to_x509(der, len)) == NULL) {
		rc = short_of_memory()
		         ? tern_fail(TERN_ENOMEM, "out of memory reading a certificate")
		         : tern_fail(TERN_ECERT, "not a DER X.509 certificate (%zu bytes)", len);
		ERR_clear_error();
		return rc;
	}
	if (X509_CRL_get0_by_cert(trust->crl, &rev, x) != 1 || rev == NULL) {
		rc = TERN_ENOENT;
		goto out;
	}
	/* NULL with crit -1: the entry gives no reason; otherwise it could not
	 * be read: no reason to trust the key, unless memory ran out (no
	 * verdict: the caller tries again). */
	if ((why = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL)) != NULL)
		reason = ASN1_ENUMERATED_get(why);
	else if (crit != -1 && short_of_memory()) {
		rc = tern_fail(TERN_ENOMEM, "out of memory reading a revocation's reason");
		goto out;
	}
	/* Only the reasons that say the key itself was safe are trusted; any
	 * other (compromise, a hold, one this code does not know) is not. */
	*compromised =
	    !(reason == CRL_REASON_SUPERSEDED || reason == CRL_REASON_AFFILIATION_CHANGED ||
	      reason == CRL_REASON_CESSATION_OF_OPERATION ||
	      reason == CRL_REASON_PRIVILEGE_WITHDRAWN);
	rc = TERN_OK;
out:
	ASN1_ENUMERATED_free(why);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int tern_cert_info_read(const uint8_t *der, size_t len, tern_cert_info *out)
{
	const X509_NAME *subj;
	tern_cert_info info;
	EVP_PKEY *pkey;
	BIGNUM *bn = NULL;
	char *hex = NULL, ou[64];
	size_t publen = 32;
	X509 *x;
	int rc, idx;

	memset(&info, 0, sizeof(info));
	if ((x = der_to_x509(der, len)) == NULL)
		return tern_fail(TERN_ECERT, "not a DER X.509 certificate (%zu bytes)", len);
	subj = X509_get_subject_name(x);
	if (name_get_one(subj, NID_commonName, info.node_id, sizeof(info.node_id)) != TERN_OK ||
	    !tern_node_id_valid(info.node_id)) {
		rc = tern_fail(TERN_ECERT, "certificate subject needs one CN that is a node id");
		goto out;
	}
	if (name_get_one(subj, NID_organizationName, info.agency, sizeof(info.agency)) != TERN_OK ||
	    info.agency[0] == '\0') {
		rc = tern_fail(TERN_ECERT, "certificate of %s needs one O (agency)", info.node_id);
		goto out;
	}
	for (idx = -1;
	     (idx = X509_NAME_get_index_by_NID(subj, NID_organizationalUnitName, idx)) >= 0;) {
		unsigned char *utf8 = NULL;
		unsigned bit;
		int n = ASN1_STRING_to_UTF8(
		    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
		/* An embedded NUL would make "state\0junk" read as "state". */
		if (n < 0 || (size_t)n >= sizeof(ou) || memchr(utf8, 0, (size_t)n) != NULL) {
			OPENSSL_free(utf8);
			rc = tern_fail(TERN_ECERT, "certificate of %s has a bad OU", info.node_id);
			goto out;
		}
		memcpy(ou, utf8, (size_t)n);
		ou[n] = '\0';
		OPENSSL_free(utf8);
		if (tern_role_parse(ou, &bit) != TERN_OK) {
			rc = tern_fail(TERN_ECERT, "certificate of %s: OU '%s' is not a role",
			               info.node_id, ou);
			goto out;
		}
		info.roles |= bit;
	}
	if (info.roles == 0) {
		rc = tern_fail(TERN_ECERT, "certificate of %s names no role (OU)", info.node_id);
		goto out;
	}
	pkey = X509_get0_pubkey(x);
	if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(pkey, info.sign_public, &publen) != 1 || publen != 32) {
		rc = tern_fail(TERN_ECERT, "certificate of %s has no Ed25519 key", info.node_id);
		goto out;
	}
	info.not_before = asn1_time_epoch(X509_get0_notBefore(x));
	info.not_after = asn1_time_epoch(X509_get0_notAfter(x));
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL || strlen(hex) >= sizeof(info.serial)) {
		rc = tern_fail(TERN_ECERT, "certificate of %s has a bad serial", info.node_id);
		goto out;
	}
	{
		const char *h = hex + strspn(hex, "0");
		if (*h == '\0')
			h--;
		for (size_t i = 0; h[i]; i++)
			info.serial[i] =
			    (char)((h[i] >= 'A' && h[i] <= 'F') ? h[i] - 'A' + 'a' : h[i]);
	}
	*out = info;
	rc = TERN_OK;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int tern_cert_pem_to_der(const char *pem, size_t len, uint8_t **der, size_t *der_len)
{
	BIO *bio;
	X509 *x;
	unsigned char *buf = NULL;
	int n;

	if (len > PEM_FILE_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return TERN_EINVAL;
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (x == NULL) {
		ERR_clear_error();
		return tern_fail(TERN_ECERT, "not a PEM certificate");
	}
	n = i2d_X509(x, &buf);
	X509_free(x);
	if (n <= 0)
		return TERN_ECRYPTO;
	/* Hand back malloc'd memory, as the header promises. */
	if ((*der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(buf);
		return TERN_ENOMEM;
	}
	memcpy(*der, buf, (size_t)n);
	*der_len = (size_t)n;
	OPENSSL_free(buf);
	return TERN_OK;
}

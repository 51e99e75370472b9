/* The federation CA: certificates, CRL, member database and directory.
 * See tern/pki.h for the files a CA directory holds.
 *
 * One file over 800 lines on purpose: every CA operation takes the CA
 * directory's lock and goes through the same private helpers for the member
 * database (db_*), the OpenSSL objects (x509_*, add_ext) and the CRL
 * (crl_*); split, those would become an internal interface with one user. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include <tern/curve.h>
#include <tern/directory.h>
#include <tern/error.h>
#include <tern/json.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/trust.h>

#include "directory_int.h"
#include "util.h"

#define DB_FORMAT "tern-ca/1"
#define REQUEST_FORMAT "tern-node-request/1"
#define REQUEST_MAX 16384
#define PEM_MAX (1024 * 1024)
#define DAYS_MAX 36500
#define FEDERATION_MAX 48 /* "<name> federation CA" must fit the 64 of X.520 */
#define AGENCY_MAX 64
#define ENDPOINT_MAX 255
/* Backdating notBefore a little spares a node whose clock runs behind the
 * CA's from refusing a certificate issued a minute ago. */
#define BACKDATE_SECONDS 300

struct tern_ca {
	char *dir;
	int lock_fd;
	tern_signkey *key;
	X509 *cert;
	json_t *db;
	char federation[FEDERATION_MAX + 1];
};

/* ---------------------------------------------------------------- helpers */

static char *path_join(const char *dir, const char *name)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int file_exists(const char *dir, const char *name)
{
	char *p = path_join(dir, name);
	int ok = p != NULL && access(p, F_OK) == 0;

	free(p);
	return ok;
}

static int text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int days_check(int *days, int def)
{
	if (*days == 0)
		*days = def;
	if (*days < 1 || *days > DAYS_MAX)
		return tern_fail(TERN_EINVAL, "validity of %d days is outside 1..%d", *days,
		                 DAYS_MAX);
	return TERN_OK;
}

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static int ossl_fail(const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	int rc = tern_fail(TERN_ECRYPTO, "%s: %s", what, r ? r : "OpenSSL gave no reason");

	ERR_clear_error();
	return rc;
}

static int add_ext(X509 *issuer, X509 *subject, X509_CRL *crl, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, subject, NULL, crl, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return ossl_fail(OBJ_nid2sn(nid));
	ok = crl ? X509_CRL_add_ext(crl, ext, -1) : X509_add_ext(subject, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? TERN_OK : ossl_fail(OBJ_nid2sn(nid));
}

static char *x509_to_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long n;

	if (bio == NULL)
		return NULL;
	if (PEM_write_bio_X509(bio, x) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
	    (pem = malloc((size_t)n + 1)) != NULL) {
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
	}
	BIO_free(bio);
	return pem;
}

static X509 *pem_to_x509(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return x;
}

static int hex_decode32(const char *hex, uint8_t out[32])
{
	size_t n = 0;

	if (hex == NULL || strlen(hex) != 64 ||
	    sodium_hex2bin(out, 32, hex, 64, NULL, &n, NULL) != 0 || n != 32)
		return TERN_EMALFORMED;
	return TERN_OK;
}

static int all_zero(const uint8_t *b, size_t n)
{
	return sodium_is_zero(b, n);
}

/* ------------------------------------------------------- node requests */

/* The bytes a proof of possession signs: fixed-size keys after the node id
 * and a NUL, so no two requests share a signed form. */
static void request_signed_bytes(const tern_node_request *r, uint8_t *buf, size_t *len)
{
	size_t n = strlen(r->node_id);

	memcpy(buf, r->node_id, n + 1);
	memcpy(buf + n + 1, r->sign_public, 32);
	memcpy(buf + n + 33, r->seal_public, 32);
	memcpy(buf + n + 65, r->curve_public, 32);
	*len = n + 97;
}

int tern_node_keygen(const char *dir, const char *node_id, tern_node_request *req)
{
	static const char *const files[] = {TERN_NODE_SIGN_KEY_FILE, TERN_NODE_SEAL_KEY_FILE,
	                                    TERN_NODE_CURVE_KEY_FILE, TERN_NODE_REQUEST_FILE};
	tern_signkey *sk = NULL;
	tern_sealkey *xk = NULL;
	tern_curvekey *ck = NULL;
	tern_node_request r;
	uint8_t msg[160], sig[TERN_ED25519_SIG_LEN];
	char hsign[65], hseal[65], hsig[129], *path = NULL, *text = NULL;
	json_t *j = NULL;
	size_t mlen;
	int rc;

	if (dir == NULL || node_id == NULL)
		return TERN_EINVAL;
	if (!tern_node_id_valid(node_id))
		return tern_fail(TERN_EINVAL,
		                 "'%s' is not a node id (1-63 of a-z, 0-9, '-', "
		                 "starting with a letter)",
		                 node_id);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (file_exists(dir, files[i]))
			return tern_fail(TERN_EEXIST,
			                 "%s/%s already exists; keys are never "
			                 "overwritten",
			                 dir, files[i]);
	if ((rc = tern_mkdirs(dir, 0700)) != TERN_OK)
		return rc;
	if ((rc = tern_signkey_generate(&sk)) != TERN_OK ||
	    (rc = tern_sealkey_generate(&xk)) != TERN_OK ||
	    (rc = tern_curvekey_generate(&ck)) != TERN_OK)
		goto out;

	memset(&r, 0, sizeof(r));
	snprintf(r.node_id, sizeof(r.node_id), "%s", node_id);
	memcpy(r.sign_public, tern_signkey_public(sk), 32);
	memcpy(r.seal_public, tern_sealkey_public(xk), 32);
	memcpy(r.curve_public, tern_curvekey_public(ck), 32);
	request_signed_bytes(&r, msg, &mlen);
	if ((rc = tern_sign(sk, TERN_REQUEST_LABEL, msg, mlen, sig)) != TERN_OK)
		goto out;

	if ((path = path_join(dir, TERN_NODE_SIGN_KEY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_signkey_save(sk, path)) != TERN_OK)
		goto out;
	free(path);
	if ((path = path_join(dir, TERN_NODE_SEAL_KEY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_sealkey_save(xk, path)) != TERN_OK)
		goto out;
	free(path);
	if ((path = path_join(dir, TERN_NODE_CURVE_KEY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_curvekey_save(ck, path)) != TERN_OK)
		goto out;
	free(path);

	sodium_bin2hex(hsign, sizeof(hsign), r.sign_public, 32);
	sodium_bin2hex(hseal, sizeof(hseal), r.seal_public, 32);
	sodium_bin2hex(hsig, sizeof(hsig), sig, sizeof(sig));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "format", REQUEST_FORMAT, "node_id",
	              node_id, "sign_public", hsign, "seal_public", hseal, "curve_public",
	              tern_curvekey_public_z85(ck), "proof", hsig);
	if (j == NULL || tern_json_dumps_exact(j, JSON_INDENT(2), &text) != TERN_OK) {
		rc = TERN_ENOMEM;
		path = NULL;
		goto out;
	}
	if ((path = path_join(dir, TERN_NODE_REQUEST_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	{
		size_t tl = strlen(text);
		char *nl = realloc(text, tl + 2);
		if (nl == NULL) {
			rc = TERN_ENOMEM;
			goto out;
		}
		text = nl;
		text[tl] = '\n';
		text[tl + 1] = '\0';
	}
	if ((rc = tern_file_write(path, text, strlen(text), 0644)) != TERN_OK)
		goto out;
	if (req)
		*req = r;
	rc = TERN_OK;
out:
	free(path);
	free(text);
	json_decref(j);
	tern_curvekey_free(&ck);
	tern_sealkey_free(&xk);
	tern_signkey_free(&sk);
	return rc;
}

int tern_node_request_parse(const char *text, size_t len, tern_node_request *out)
{
	const char *format, *node_id, *hsign, *hseal, *zcurve, *hproof;
	uint8_t msg[160], sig[TERN_ED25519_SIG_LEN];
	tern_node_request r;
	json_error_t jerr;
	json_t *j;
	size_t mlen, n = 0;
	int rc;

	if (text == NULL || out == NULL)
		return TERN_EINVAL;
	if (len > REQUEST_MAX)
		return tern_fail(TERN_ETOOBIG, "a node request is at most %d bytes", REQUEST_MAX);
	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return tern_fail(TERN_EMALFORMED, "node request is not JSON (line %d: %s)",
		                 jerr.line, jerr.text);
	if (json_unpack_ex(j, &jerr, JSON_STRICT, "{s:s, s:s, s:s, s:s, s:s, s:s}", "format",
	                   &format, "node_id", &node_id, "sign_public", &hsign, "seal_public",
	                   &hseal, "curve_public", &zcurve, "proof", &hproof) != 0) {
		rc = tern_fail(TERN_EMALFORMED, "node request: %s", jerr.text);
		goto out;
	}
	if (strcmp(format, REQUEST_FORMAT) != 0) {
		rc = tern_fail(TERN_EVERSION, "node request format '%s'; expected '%s'", format,
		               REQUEST_FORMAT);
		goto out;
	}
	memset(&r, 0, sizeof(r));
	if (!tern_node_id_valid(node_id)) {
		rc = tern_fail(TERN_EMALFORMED, "node request names an invalid node id");
		goto out;
	}
	snprintf(r.node_id, sizeof(r.node_id), "%s", node_id);
	if (hex_decode32(hsign, r.sign_public) != TERN_OK ||
	    hex_decode32(hseal, r.seal_public) != TERN_OK ||
	    tern_curve_z85_decode(zcurve, r.curve_public) != TERN_OK ||
	    strlen(hproof) != 2 * sizeof(sig) ||
	    sodium_hex2bin(sig, sizeof(sig), hproof, strlen(hproof), NULL, &n, NULL) != 0 ||
	    n != sizeof(sig)) {
		rc = tern_fail(TERN_EMALFORMED,
		               "node request for '%s' has a malformed key or proof", node_id);
		goto out;
	}
	if (all_zero(r.seal_public, 32) || all_zero(r.curve_public, 32)) {
		rc = tern_fail(TERN_EMALFORMED, "node request for '%s' has an all-zero key",
		               node_id);
		goto out;
	}
	request_signed_bytes(&r, msg, &mlen);
	if (tern_verify(r.sign_public, TERN_REQUEST_LABEL, msg, mlen, sig) != TERN_OK) {
		rc = tern_fail(TERN_EBADSIG,
		               "node request for '%s': the proof of possession does "
		               "not verify (damaged or edited request)",
		               node_id);
		goto out;
	}
	*out = r;
	rc = TERN_OK;
out:
	json_decref(j);
	return rc;
}

int tern_node_request_load(const char *path, tern_node_request *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char detail[512];
	int rc;

	if ((rc = tern_file_read(path, REQUEST_MAX, &buf, &len)) != TERN_OK)
		return rc;
	rc = tern_node_request_parse((const char *)buf, len, out);
	free(buf);
	if (rc != TERN_OK) {
		snprintf(detail, sizeof(detail), "%s", tern_errdetail());
		tern_fail(rc, "%s: %s", path, detail);
	}
	return rc;
}

/* ------------------------------------------------------------- database */

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static int64_t jint(const json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

static json_t *db_members(const tern_ca *ca)
{
	return json_object_get(ca->db, "members");
}

static unsigned member_roles(const json_t *m)
{
	unsigned bits = 0, b;
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(m, "roles"), i, v)
	{
		if (tern_role_parse(json_string_value(v) ? json_string_value(v) : "", &b) ==
		    TERN_OK)
			bits |= b;
	}
	return bits;
}

/* The database is the CA's own file, but a hand edit or a half-restored
 * backup must stop the CA rather than produce odd certificates. */
static int db_validate(const json_t *db, const char *path)
{
	static const char *const strs[] = {"serial",      "node_id",          "agency",
	                                   "sign_public", "seal_public",      "curve_public",
	                                   "certificate", "revocation_reason"};
	static const char *const ints[] = {"not_before", "not_after", "revoked_at"};
	json_t *members = json_object_get(db, "members"), *m;
	size_t i;

	if (strcmp(jstr(db, "format"), DB_FORMAT) != 0)
		return tern_fail(TERN_EVERSION, "%s: format is not '%s'", path, DB_FORMAT);
	if (!json_is_string(json_object_get(db, "federation")) ||
	    !json_is_integer(json_object_get(db, "next_serial")) ||
	    !json_is_integer(json_object_get(db, "crl_number")) ||
	    !json_is_integer(json_object_get(db, "directory_version")) || !json_is_array(members))
		return tern_fail(TERN_EMALFORMED, "%s lacks federation, counters or members", path);
	if (jint(db, "next_serial") < 2 || jint(db, "crl_number") < 0 ||
	    jint(db, "directory_version") < 0)
		return tern_fail(TERN_EMALFORMED, "%s: a counter is out of range", path);
	json_array_foreach(members, i, m)
	{
		for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
			if (!json_is_string(json_object_get(m, strs[k])))
				return tern_fail(TERN_EMALFORMED, "%s: member %zu lacks '%s'", path,
				                 i, strs[k]);
		for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
			if (!json_is_integer(json_object_get(m, ints[k])))
				return tern_fail(TERN_EMALFORMED, "%s: member %zu lacks '%s'", path,
				                 i, ints[k]);
		if (!json_is_boolean(json_object_get(m, "revoked")) ||
		    !json_is_array(json_object_get(m, "roles")) || member_roles(m) == 0 ||
		    !tern_node_id_valid(jstr(m, "node_id")))
			return tern_fail(TERN_EMALFORMED, "%s: member %zu is damaged", path, i);
	}
	return TERN_OK;
}

static int db_save(const tern_ca *ca)
{
	char *path, *text;
	int rc;

	if ((path = path_join(ca->dir, TERN_CA_DB_FILE)) == NULL)
		return TERN_ENOMEM;
	/* The CA's register, read back before it replaces the old one. */
	if ((rc = tern_json_dumps_exact(ca->db, JSON_INDENT(2) | JSON_PRESERVE_ORDER, &text)) !=
	    TERN_OK) {
		free(path);
		return rc;
	}
	rc = tern_file_write(path, text, strlen(text), 0644);
	free(text);
	free(path);
	return rc;
}

static int db_set_int(tern_ca *ca, const char *key, int64_t v)
{
	return json_object_set_new(ca->db, key, json_integer((json_int_t)v)) == 0 ? TERN_OK
	                                                                          : TERN_ENOMEM;
}

/* ------------------------------------------------------------- CA files */

static int lock_dir(const char *dir, int *fd_out)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return tern_fail(errno == ENOENT ? TERN_ENOENT : TERN_EIO, "cannot open %s: %s",
		                 dir, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return tern_fail(TERN_EIO,
		                 "%s is in use by another tern ca command; try again when "
		                 "it has finished",
		                 dir);
	}
	*fd_out = fd;
	return TERN_OK;
}

static int x509_set_name(X509_NAME *name, const char *field, const char *value)
{
	if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value, -1,
	                               -1, 0) != 1)
		return ossl_fail("cannot set the certificate subject");
	return TERN_OK;
}

static int make_ca_cert(const tern_signkey *key, const char *federation, int days, X509 **out)
{
	char cn[FEDERATION_MAX + 32];
	X509_NAME *name = NULL;
	X509 *x;
	int rc;

	if ((x = X509_new()) == NULL)
		return TERN_ENOMEM;
	snprintf(cn, sizeof(cn), "%s federation CA", federation);
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL ||
	    X509_set_pubkey(x, tern_signkey_evp(key)) != 1) {
		rc = ossl_fail("cannot fill in the CA certificate");
		goto fail;
	}
	if ((name = X509_NAME_new()) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	if ((rc = x509_set_name(name, "O", federation)) != TERN_OK ||
	    (rc = x509_set_name(name, "CN", cn)) != TERN_OK)
		goto fail;
	if (X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1) {
		rc = ossl_fail("cannot set the CA name");
		goto fail;
	}
	if ((rc = add_ext(x, x, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) ||
	    (rc = add_ext(x, x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign")) ||
	    (rc = add_ext(x, x, NULL, NID_subject_key_identifier, "hash")) ||
	    (rc = add_ext(x, x, NULL, NID_authority_key_identifier, "keyid:always")))
		goto fail;
	/* Ed25519 takes no digest: X509_sign with md NULL signs the whole TBS. */
	if (X509_sign(x, tern_signkey_evp(key), NULL) <= 0) {
		rc = ossl_fail("cannot sign the CA certificate");
		goto fail;
	}
	X509_NAME_free(name);
	*out = x;
	return TERN_OK;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return rc;
}

static const struct {
	const char *name; /* lower case, no separators */
	int code;
} crl_reasons[] = {
    {"unspecified", CRL_REASON_UNSPECIFIED},
    {"keycompromise", CRL_REASON_KEY_COMPROMISE},
    {"cacompromise", CRL_REASON_CA_COMPROMISE},
    {"affiliationchanged", CRL_REASON_AFFILIATION_CHANGED},
    {"superseded", CRL_REASON_SUPERSEDED},
    {"cessationofoperation", CRL_REASON_CESSATION_OF_OPERATION},
    {"privilegewithdrawn", CRL_REASON_PRIVILEGE_WITHDRAWN},
};

/* "key-compromise", "keyCompromise" and "Key compromise" all name one code. */
static int crl_reason_code(const char *text)
{
	char norm[64];
	size_t n = 0;

	for (const char *p = text; *p && n < sizeof(norm) - 1; p++) {
		if (*p == '-' || *p == '_' || *p == ' ')
			continue;
		norm[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
	}
	norm[n] = '\0';
	for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++)
		if (strcmp(norm, crl_reasons[i].name) == 0)
			return crl_reasons[i].code;
	return CRL_REASON_UNSPECIFIED;
}

static int crl_add_revoked(X509_CRL *crl, const json_t *m)
{
	X509_REVOKED *rev = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_TIME *when = NULL;
	ASN1_ENUMERATED *reason = NULL;
	BIGNUM *bn = NULL;
	int code = crl_reason_code(jstr(m, "revocation_reason"));
	int rc = TERN_ECRYPTO;

	if (BN_hex2bn(&bn, jstr(m, "serial")) == 0 ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (when = ASN1_TIME_set(NULL, (time_t)jint(m, "revoked_at"))) == NULL ||
	    (rev = X509_REVOKED_new()) == NULL || X509_REVOKED_set_serialNumber(rev, serial) != 1 ||
	    X509_REVOKED_set_revocationDate(rev, when) != 1)
		goto out;
	/* RFC 5280: the reason "unspecified" SHOULD be left out. */
	if (code != CRL_REASON_UNSPECIFIED) {
		if ((reason = ASN1_ENUMERATED_new()) == NULL ||
		    ASN1_ENUMERATED_set(reason, code) != 1 ||
		    X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0) != 1)
			goto out;
	}
	if (X509_CRL_add0_revoked(crl, rev) != 1)
		goto out;
	rev = NULL;
	rc = TERN_OK;
out:
	X509_REVOKED_free(rev);
	ASN1_ENUMERATED_free(reason);
	ASN1_TIME_free(when);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return rc == TERN_OK ? rc : ossl_fail("cannot add a revoked serial to the CRL");
}

static int crl_write(tern_ca *ca, int days)
{
	X509_CRL *crl = NULL;
	ASN1_TIME *last = NULL, *next = NULL;
	ASN1_INTEGER *number = NULL;
	BIO *bio = NULL;
	char *data, *path = NULL;
	int64_t crlno = jint(ca->db, "crl_number") + 1;
	long n;
	size_t i;
	json_t *m;
	int rc;

	if ((rc = days_check(&days, TERN_CRL_DAYS_DEFAULT)) != TERN_OK)
		return rc;
	if ((crl = X509_CRL_new()) == NULL || (last = X509_gmtime_adj(NULL, 0)) == NULL ||
	    (next = X509_time_adj_ex(NULL, days, 0, NULL)) == NULL ||
	    (number = ASN1_INTEGER_new()) == NULL || ASN1_INTEGER_set_int64(number, crlno) != 1) {
		rc = ossl_fail("cannot start the CRL");
		goto out;
	}
	if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, last) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1) {
		rc = ossl_fail("cannot fill in the CRL");
		goto out;
	}
	json_array_foreach(db_members(ca), i, m)
	{
		if (json_is_true(json_object_get(m, "revoked")) &&
		    (rc = crl_add_revoked(crl, m)) != TERN_OK)
			goto out;
	}
	if (X509_CRL_sort(crl) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) != 1) {
		rc = ossl_fail("cannot number the CRL");
		goto out;
	}
	if ((rc = add_ext(ca->cert, NULL, crl, NID_authority_key_identifier, "keyid:always")) !=
	    TERN_OK)
		goto out;
	if (X509_CRL_sign(crl, tern_signkey_evp(ca->key), NULL) <= 0) {
		rc = ossl_fail("cannot sign the CRL");
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509_CRL(bio, crl) != 1 ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		rc = ossl_fail("cannot encode the CRL");
		goto out;
	}
	/* Record the number first: a crash after it leaves a gap, never a reuse. */
	if ((rc = db_set_int(ca, "crl_number", crlno)) != TERN_OK || (rc = db_save(ca)) != TERN_OK)
		goto out;
	if ((path = path_join(ca->dir, TERN_CA_CRL_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	rc = tern_file_write(path, data, (size_t)n, 0644);
out:
	free(path);
	BIO_free(bio);
	ASN1_INTEGER_free(number);
	ASN1_TIME_free(next);
	ASN1_TIME_free(last);
	X509_CRL_free(crl);
	return rc;
}

int tern_ca_write_crl(tern_ca *ca, int days)
{
	if (ca == NULL)
		return TERN_EINVAL;
	return crl_write(ca, days);
}

/* ------------------------------------------------------------ open/init */

void tern_ca_close(tern_ca **ca)
{
	if (ca == NULL || *ca == NULL)
		return;
	json_decref((*ca)->db);
	X509_free((*ca)->cert);
	tern_signkey_free(&(*ca)->key);
	if ((*ca)->lock_fd >= 0)
		close((*ca)->lock_fd);
	free((*ca)->dir);
	free(*ca);
	*ca = NULL;
}

static tern_ca *ca_alloc(const char *dir)
{
	tern_ca *ca = calloc(1, sizeof(*ca));

	if (ca == NULL)
		return NULL;
	ca->lock_fd = -1;
	if ((ca->dir = strdup(dir)) == NULL) {
		free(ca);
		return NULL;
	}
	return ca;
}

int tern_ca_init(const char *dir, const char *federation, int days)
{
	static const char *const files[] = {TERN_CA_KEY_FILE, TERN_CA_CERT_FILE, TERN_CA_CRL_FILE,
	                                    TERN_CA_DB_FILE};
	tern_ca *ca = NULL;
	char *path = NULL, *pem = NULL;
	int rc;

	if (dir == NULL || federation == NULL)
		return TERN_EINVAL;
	if (!text_ok(federation, FEDERATION_MAX))
		return tern_fail(TERN_EINVAL, "federation name must be 1-%d printable characters",
		                 FEDERATION_MAX);
	if ((rc = days_check(&days, TERN_CA_DAYS_DEFAULT)) != TERN_OK)
		return rc;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (file_exists(dir, files[i]))
			return tern_fail(TERN_EEXIST, "%s/%s already exists; a CA is created once",
			                 dir, files[i]);
	if ((rc = tern_mkdirs(dir, 0700)) != TERN_OK)
		return rc;
	if ((ca = ca_alloc(dir)) == NULL)
		return TERN_ENOMEM;
	if ((rc = lock_dir(dir, &ca->lock_fd)) != TERN_OK)
		goto out;
	snprintf(ca->federation, sizeof(ca->federation), "%s", federation);
	if ((rc = tern_signkey_generate(&ca->key)) != TERN_OK ||
	    (rc = make_ca_cert(ca->key, federation, days, &ca->cert)) != TERN_OK)
		goto out;
	ca->db = json_pack("{s:s, s:s, s:I, s:I, s:I, s:[]}", "format", DB_FORMAT, "federation",
	                   federation, "next_serial", (json_int_t)2, "crl_number", (json_int_t)0,
	                   "directory_version", (json_int_t)0, "members");
	if (ca->db == NULL || (pem = x509_to_pem(ca->cert)) == NULL ||
	    (path = path_join(dir, TERN_CA_KEY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_signkey_save(ca->key, path)) != TERN_OK)
		goto out;
	free(path);
	if ((path = path_join(dir, TERN_CA_CERT_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_file_write(path, pem, strlen(pem), 0644)) != TERN_OK)
		goto out;
	rc = crl_write(ca, 0); /* also writes ca.json */
out:
	free(pem);
	free(path);
	tern_ca_close(&ca);
	return rc;
}

int tern_ca_open(const char *dir, tern_ca **out)
{
	char *path = NULL;
	uint8_t *pem = NULL, pub[32];
	size_t len = 0, publen = sizeof(pub);
	json_error_t jerr;
	tern_ca *ca;
	char org[FEDERATION_MAX + 1];
	int rc;

	if (dir == NULL || out == NULL)
		return TERN_EINVAL;
	if (!file_exists(dir, TERN_CA_DB_FILE) || !file_exists(dir, TERN_CA_CERT_FILE))
		return tern_fail(TERN_ENOENT,
		                 "%s is not a CA directory (no %s or %s); create one "
		                 "with 'tern ca init'",
		                 dir, TERN_CA_CERT_FILE, TERN_CA_DB_FILE);
	if ((ca = ca_alloc(dir)) == NULL)
		return TERN_ENOMEM;
	if ((rc = lock_dir(dir, &ca->lock_fd)) != TERN_OK)
		goto fail;
	if ((path = path_join(dir, TERN_CA_KEY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	if ((rc = tern_signkey_load(path, &ca->key)) != TERN_OK)
		goto fail;
	free(path);
	if ((path = path_join(dir, TERN_CA_CERT_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	if ((rc = tern_file_read(path, PEM_MAX, &pem, &len)) != TERN_OK)
		goto fail;
	if ((ca->cert = pem_to_x509((const char *)pem)) == NULL) {
		rc = tern_fail(TERN_ECERT, "%s is not a PEM certificate", path);
		goto fail;
	}
	if (X509_get0_pubkey(ca->cert) == NULL ||
	    EVP_PKEY_get_raw_public_key(X509_get0_pubkey(ca->cert), pub, &publen) != 1 ||
	    publen != 32 || memcmp(pub, tern_signkey_public(ca->key), 32) != 0) {
		rc = tern_fail(TERN_ECERT, "%s does not belong to %s/%s", path, dir,
		               TERN_CA_KEY_FILE);
		goto fail;
	}
	free(path);
	if ((path = path_join(dir, TERN_CA_DB_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	if ((ca->db = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		rc = tern_fail(TERN_EMALFORMED, "%s: line %d: %s", path, jerr.line, jerr.text);
		goto fail;
	}
	if ((rc = db_validate(ca->db, path)) != TERN_OK)
		goto fail;
	org[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca->cert), NID_organizationName, org,
	                          sizeof(org));
	if (strcmp(org, jstr(ca->db, "federation")) != 0) {
		rc = tern_fail(TERN_EMALFORMED, "%s names federation '%s', the CA certificate '%s'",
		               path, jstr(ca->db, "federation"), org);
		goto fail;
	}
	snprintf(ca->federation, sizeof(ca->federation), "%s", org);
	free(path);
	free(pem);
	*out = ca;
	return TERN_OK;
fail:
	free(path);
	free(pem);
	tern_ca_close(&ca);
	return rc;
}

const char *tern_ca_federation(const tern_ca *ca)
{
	return ca->federation;
}

const char *tern_ca_dir(const tern_ca *ca)
{
	return ca->dir;
}

uint64_t tern_ca_directory_version(const tern_ca *ca)
{
	return (uint64_t)jint(ca->db, "directory_version");
}

int64_t tern_ca_not_after(const tern_ca *ca)
{
	return asn1_time_epoch(X509_get0_notAfter(ca->cert));
}

/* ---------------------------------------------------------------- issue */

/* until: the notAfter instant (seconds), or 0 for days from now. */
static int make_node_cert(const tern_ca *ca, const tern_node_request *req, const char *agency,
                          unsigned roles, int days, int64_t until, uint64_t serial, X509 **out)
{
	EVP_PKEY *pub = NULL;
	X509_NAME *name = NULL;
	char san[128], rname[32];
	time_t ca_end = (time_t)tern_ca_not_after(ca);
	X509 *x;
	int rc;

	if ((x = X509_new()) == NULL)
		return TERN_ENOMEM;
	if ((pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, req->sign_public, 32)) ==
	    NULL) {
		rc = ossl_fail("the request's Ed25519 key is not usable");
		goto out;
	}
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) == NULL ||
	    (until ? ASN1_TIME_set(X509_getm_notAfter(x), (time_t)until)
	           : X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL)) == NULL ||
	    X509_set_pubkey(x, pub) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1) {
		rc = ossl_fail("cannot fill in the certificate");
		goto out;
	}
	/* A certificate that outlives its CA would fail the chain check anyway. */
	if (X509_cmp_time(X509_get0_notAfter(x), &ca_end) > 0 &&
	    ASN1_TIME_set(X509_getm_notAfter(x), ca_end) == NULL) {
		rc = ossl_fail("cannot limit the certificate to the CA's validity");
		goto out;
	}
	if ((name = X509_NAME_new()) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = x509_set_name(name, "O", agency)) != TERN_OK)
		goto out;
	for (int r = 1; r <= TERN__V1__ROLE__BROKER; r++) {
		if (!(roles & (1u << r)))
			continue;
		tern_roles_format(1u << r, rname, sizeof(rname));
		if ((rc = x509_set_name(name, "OU", rname)) != TERN_OK)
			goto out;
	}
	if ((rc = x509_set_name(name, "CN", req->node_id)) != TERN_OK)
		goto out;
	if (X509_set_subject_name(x, name) != 1) {
		rc = ossl_fail("cannot set the subject");
		goto out;
	}
	snprintf(san, sizeof(san), "URI:urn:tern:node:%s", req->node_id);
	if ((rc = add_ext(ca->cert, x, NULL, NID_basic_constraints, "critical,CA:FALSE")) ||
	    (rc = add_ext(ca->cert, x, NULL, NID_key_usage, "critical,digitalSignature")) ||
	    (rc = add_ext(ca->cert, x, NULL, NID_subject_alt_name, san)) ||
	    (rc = add_ext(ca->cert, x, NULL, NID_subject_key_identifier, "hash")) ||
	    (rc = add_ext(ca->cert, x, NULL, NID_authority_key_identifier, "keyid:always")))
		goto out;
	if (X509_sign(x, tern_signkey_evp(ca->key), NULL) <= 0) {
		rc = ossl_fail("cannot sign the certificate");
		goto out;
	}
	*out = x;
	x = NULL;
	rc = TERN_OK;
out:
	X509_NAME_free(name);
	EVP_PKEY_free(pub);
	X509_free(x);
	return rc;
}

/* A key must belong to one certificate only: the broker finds members by
 * CURVE key and senders seal to X25519 keys, and a node whose certificate was
 * revoked must come back with fresh keys. */
static int request_keys_unused(const tern_ca *ca, const tern_node_request *req)
{
	char hsign[65], hseal[65], zcurve[TERN_CURVE_Z85_LEN];
	size_t i;
	json_t *m;

	sodium_bin2hex(hsign, sizeof(hsign), req->sign_public, 32);
	sodium_bin2hex(hseal, sizeof(hseal), req->seal_public, 32);
	tern_curve_z85_encode(req->curve_public, zcurve);
	json_array_foreach(db_members(ca), i, m)
	{
		const char *who = jstr(m, "node_id");
		if (strcmp(jstr(m, "node_id"), req->node_id) == 0 &&
		    !json_is_true(json_object_get(m, "revoked")))
			return tern_fail(TERN_EEXIST,
			                 "node '%s' already holds certificate serial %s; "
			                 "revoke it first (tern ca revoke)",
			                 who, jstr(m, "serial"));
		if (strcmp(jstr(m, "sign_public"), hsign) == 0 ||
		    strcmp(jstr(m, "seal_public"), hseal) == 0 ||
		    strcmp(jstr(m, "curve_public"), zcurve) == 0)
			return tern_fail(TERN_EEXIST,
			                 "a key in this request was already certified "
			                 "(for node '%s', serial %s); the node must make "
			                 "fresh keys with 'tern keygen'",
			                 who, jstr(m, "serial"));
	}
	return TERN_OK;
}

static int ca_issue(tern_ca *ca, const tern_node_request *req, const char *agency, unsigned roles,
                    const char *endpoint, int days, int64_t until, char **cert_pem);

int tern_ca_issue(tern_ca *ca, const tern_node_request *req, const char *agency, unsigned roles,
                  const char *endpoint, int days, char **cert_pem)
{
	return ca_issue(ca, req, agency, roles, endpoint, days, 0, cert_pem);
}

int tern_ca_issue_until(tern_ca *ca, const tern_node_request *req, const char *agency,
                        unsigned roles, const char *endpoint, int64_t not_after, char **cert_pem)
{
	int64_t now = (int64_t)time(NULL);

	if (ca == NULL)
		return TERN_EINVAL;
	if (not_after <= now)
		return tern_fail(TERN_EINVAL, "the validity must end in the future");
	if (not_after > tern_ca_not_after(ca))
		return tern_fail(TERN_EINVAL, "the validity must end before the CA's (%lld)",
		                 (long long)tern_ca_not_after(ca));
	return ca_issue(ca, req, agency, roles, endpoint, 0, not_after, cert_pem);
}

static int ca_issue(tern_ca *ca, const tern_node_request *req, const char *agency, unsigned roles,
                    const char *endpoint, int days, int64_t until, char **cert_pem)
{
	const unsigned all_roles =
	    TERN_ROLE_REFERRER | TERN_ROLE_STATE | TERN_ROLE_MOVEMENT | TERN_ROLE_BROKER;
	char hsign[65], hseal[65], zcurve[TERN_CURVE_Z85_LEN], serial_hex[32], rname[32];
	int64_t serial;
	X509 *x = NULL;
	char *pem = NULL;
	json_t *m = NULL, *jroles = NULL;
	int rc;

	if (ca == NULL || req == NULL || agency == NULL)
		return TERN_EINVAL;
	if (!tern_node_id_valid(req->node_id))
		return tern_fail(TERN_EINVAL, "invalid node id '%s'", req->node_id);
	if (!text_ok(agency, AGENCY_MAX))
		return tern_fail(TERN_EINVAL, "agency must be 1-%d printable characters",
		                 AGENCY_MAX);
	if (roles == 0 || (roles & ~all_roles))
		return tern_fail(TERN_EINVAL, "roles must be one or more of referrer, state, "
		                              "movement, broker");
	if (endpoint != NULL && (!text_ok(endpoint, ENDPOINT_MAX) || strchr(endpoint, ' ')))
		return tern_fail(TERN_EINVAL, "endpoint must be 1-%d characters without spaces",
		                 ENDPOINT_MAX);
	if ((rc = days_check(&days, TERN_CERT_DAYS_DEFAULT)) != TERN_OK)
		return rc;
	if ((rc = request_keys_unused(ca, req)) != TERN_OK)
		return rc;

	serial = jint(ca->db, "next_serial");
	if ((rc = make_node_cert(ca, req, agency, roles, days, until, (uint64_t)serial, &x)) !=
	    TERN_OK)
		goto out;
	if ((pem = x509_to_pem(x)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	sodium_bin2hex(hsign, sizeof(hsign), req->sign_public, 32);
	sodium_bin2hex(hseal, sizeof(hseal), req->seal_public, 32);
	tern_curve_z85_encode(req->curve_public, zcurve);
	snprintf(serial_hex, sizeof(serial_hex), "%llx", (unsigned long long)serial);
	if ((jroles = json_array()) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	for (int r = 1; r <= TERN__V1__ROLE__BROKER; r++) {
		if (roles & (1u << r)) {
			tern_roles_format(1u << r, rname, sizeof(rname));
			json_array_append_new(jroles, json_string(rname));
		}
	}
	m = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:s, s:b, s:I, "
	              "s:s}",
	              "serial", serial_hex, "node_id", req->node_id, "agency", agency, "roles",
	              jroles, "sign_public", hsign, "seal_public", hseal, "curve_public", zcurve,
	              "broker_endpoint", endpoint, "issued_at", (json_int_t)time(NULL),
	              "not_before", (json_int_t)asn1_time_epoch(X509_get0_notBefore(x)),
	              "not_after", (json_int_t)asn1_time_epoch(X509_get0_notAfter(x)),
	              "certificate", pem, "revoked", 0, "revoked_at", (json_int_t)0,
	              "revocation_reason", "");
	if (m == NULL || json_array_append(db_members(ca), m) != 0 ||
	    (rc = db_set_int(ca, "next_serial", serial + 1)) != TERN_OK) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = db_save(ca)) != TERN_OK)
		goto out;
	if (cert_pem) {
		*cert_pem = pem;
		pem = NULL;
	}
	rc = TERN_OK;
out:
	json_decref(m);
	json_decref(jroles);
	free(pem);
	X509_free(x);
	return rc;
}

/* --------------------------------------------------------------- revoke */

int tern_ca_revoke(tern_ca *ca, const char *node_id, const char *reason)
{
	json_t *m, *found = NULL;
	size_t i;
	int rc;

	if (ca == NULL || node_id == NULL)
		return TERN_EINVAL;
	if (reason != NULL && reason[0] != '\0' && !text_ok(reason, 200))
		return tern_fail(TERN_EINVAL, "reason must be at most 200 printable characters");
	json_array_foreach(db_members(ca), i, m)
	{
		if (strcmp(jstr(m, "node_id"), node_id) == 0 &&
		    !json_is_true(json_object_get(m, "revoked")))
			found = m;
	}
	if (found == NULL)
		return tern_fail(TERN_ENOENT,
		                 "node '%s' holds no certificate that is not already "
		                 "revoked (see 'tern ca list')",
		                 node_id);
	if (json_object_set_new(found, "revoked", json_true()) != 0 ||
	    json_object_set_new(found, "revoked_at", json_integer((json_int_t)time(NULL))) != 0 ||
	    json_object_set_new(found, "revocation_reason", json_string(reason ? reason : "")) != 0)
		return TERN_ENOMEM;
	if ((rc = db_save(ca)) != TERN_OK)
		return rc;
	return crl_write(ca, 0);
}

/* ------------------------------------------------------------ directory */

static int member_from_db(const json_t *m, tern_member *out, uint8_t **der)
{
	const char *pem = jstr(m, "certificate");
	size_t der_len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->node_id, sizeof(out->node_id), "%s", jstr(m, "node_id"));
	out->agency = (char *)jstr(m, "agency");
	out->roles = member_roles(m);
	if (hex_decode32(jstr(m, "sign_public"), out->sign_public) != TERN_OK ||
	    hex_decode32(jstr(m, "seal_public"), out->seal_public) != TERN_OK ||
	    tern_curve_z85_decode(jstr(m, "curve_public"), out->curve_public) != TERN_OK)
		return tern_fail(TERN_EMALFORMED, "database entry for '%s' has a damaged key",
		                 out->node_id);
	out->broker_endpoint = (char *)json_string_value(json_object_get(m, "broker_endpoint"));
	if ((rc = tern_cert_pem_to_der(pem, strlen(pem), der, &der_len)) != TERN_OK)
		return rc;
	out->cert_der = *der;
	out->cert_len = der_len;
	out->revoked = json_is_true(json_object_get(m, "revoked"));
	out->cert_not_after = jint(m, "not_after");
	return TERN_OK;
}

static int cmp_node_id(const void *a, const void *b)
{
	const json_t *const *ma = a, *const *mb = b;

	return strcmp(jstr(*ma, "node_id"), jstr(*mb, "node_id"));
}

/* For each node its latest certificate, by node id; expired ones that were
 * never revoked are dropped (nodes would refuse the whole directory). */
static int directory_entries(const tern_ca *ca, const json_t ***out, size_t *n)
{
	json_t *members = db_members(ca), *m;
	const json_t **list;
	time_t now = time(NULL);
	size_t i, count = 0;

	if ((list = calloc(json_array_size(members) + 1, sizeof(*list))) == NULL)
		return TERN_ENOMEM;
	json_array_foreach(members, i, m)
	{
		int superseded = 0;
		for (size_t j = i + 1; j < json_array_size(members); j++)
			if (strcmp(jstr(json_array_get(members, j), "node_id"),
			           jstr(m, "node_id")) == 0)
				superseded = 1;
		if (superseded)
			continue;
		if (!json_is_true(json_object_get(m, "revoked")) && jint(m, "not_after") <= now)
			continue;
		list[count++] = m;
	}
	qsort(list, count, sizeof(*list), cmp_node_id);
	*out = list;
	*n = count;
	return TERN_OK;
}

int tern_ca_write_directory(tern_ca *ca, const char *out_path, uint64_t *version)
{
	tern_directory *d = NULL, *check = NULL;
	tern_trust *trust = NULL;
	const json_t **list = NULL;
	uint8_t *buf = NULL;
	char *ca_path = NULL, *crl_path = NULL, *def_path = NULL, detail[512];
	size_t n = 0, len = 0;
	uint64_t v;
	int rc;

	if (ca == NULL)
		return TERN_EINVAL;
	v = tern_ca_directory_version(ca) + 1;
	if ((rc = tern_directory_new(ca->federation, v, &d)) != TERN_OK)
		return rc;
	d->issued_at = tern_now_ms();
	if ((rc = directory_entries(ca, &list, &n)) != TERN_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		tern_member m;
		uint8_t *der = NULL;
		rc = member_from_db(list[i], &m, &der);
		if (rc == TERN_OK)
			rc = tern_directory_add(d, &m);
		free(der);
		if (rc != TERN_OK)
			goto out;
	}
	if ((rc = tern_directory_sign(d, ca->key, &buf, &len)) != TERN_OK)
		goto out;

	/* Read it back as a node will, against the published CA and CRL. */
	if ((ca_path = path_join(ca->dir, TERN_CA_CERT_FILE)) == NULL ||
	    (crl_path = path_join(ca->dir, TERN_CA_CRL_FILE)) == NULL ||
	    (def_path = path_join(ca->dir, TERN_CA_DIRECTORY_FILE)) == NULL) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_trust_load(ca_path, crl_path, &trust)) != TERN_OK)
		goto out;
	if (tern_trust_crl_next_update(trust) <= (int64_t)time(NULL)) {
		rc = tern_fail(TERN_EEXPIRED,
		               "%s is past its nextUpdate and nodes would refuse "
		               "every certificate; run 'tern ca crl' first",
		               crl_path);
		goto out;
	}
	if ((rc = tern_directory_parse(buf, len, trust, v, &check)) != TERN_OK) {
		snprintf(detail, sizeof(detail), "%s", tern_errdetail());
		rc = tern_fail(rc, "nodes would refuse this directory: %s", detail);
		goto out;
	}
	if ((rc = db_set_int(ca, "directory_version", (int64_t)v)) != TERN_OK ||
	    (rc = db_save(ca)) != TERN_OK)
		goto out;
	if ((rc = tern_file_write(out_path ? out_path : def_path, buf, len, 0644)) != TERN_OK)
		goto out;
	if (version)
		*version = v;
	rc = TERN_OK;
out:
	free(def_path);
	free(crl_path);
	free(ca_path);
	free(buf);
	free(list);
	tern_trust_free(&trust);
	tern_directory_free(&check);
	tern_directory_free(&d);
	return rc;
}

/* -------------------------------------------------------------- listing */

size_t tern_ca_count(const tern_ca *ca)
{
	return json_array_size(db_members(ca));
}

int tern_ca_entry_at(const tern_ca *ca, size_t i, tern_ca_entry *out)
{
	const json_t *m = json_array_get(db_members(ca), i);

	if (m == NULL)
		return TERN_ENOENT;
	memset(out, 0, sizeof(*out));
	out->serial = jstr(m, "serial");
	out->node_id = jstr(m, "node_id");
	out->agency = jstr(m, "agency");
	out->roles = member_roles(m);
	out->endpoint = json_string_value(json_object_get(m, "broker_endpoint"));
	out->not_before = jint(m, "not_before");
	out->not_after = jint(m, "not_after");
	out->revoked = json_is_true(json_object_get(m, "revoked"));
	out->revoked_at = jint(m, "revoked_at");
	out->reason = jstr(m, "revocation_reason");
	out->cert_pem = jstr(m, "certificate");
	return TERN_OK;
}

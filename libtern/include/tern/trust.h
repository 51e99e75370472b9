/* Federation trust anchor: the CA certificate and its CRL, checked with
 * OpenSSL's X509_STORE (chain + CRL + key usage).
 *
 * A trust handle is immutable once loaded and may be shared by threads.
 */
#ifndef TERN_TRUST_H
#define TERN_TRUST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_trust tern_trust;

/* ca_path: PEM CA certificate; crl_path: PEM CRL signed by that CA (required:
 * a federation without a CRL cannot revoke). The CA certificate must be a
 * self-signed Ed25519 CA; the CRL's signature and issuer are checked against
 * it here, so a foreign or damaged CRL, or one without a cRLNumber, is refused
 * at load (TERN_ECERT). */
int tern_trust_load(const char *ca_path, const char *crl_path, tern_trust **out);
void tern_trust_free(tern_trust **trust);

/* The CA's Ed25519 public key (signs directories); valid while trust lives. */
const uint8_t *tern_trust_ca_public(const tern_trust *trust);

/* The federation name: the O attribute of the CA's subject. Valid while
 * trust lives. */
const char *tern_trust_federation(const tern_trust *trust);

/* Checks a DER node certificate against the CA and CRL at time now (seconds;
 * 0 = current time). TERN_EREVOKED if revoked, TERN_EEXPIRED if out of its
 * validity (or the CRL is past its nextUpdate), TERN_ECERT for any other
 * failure (detail in tern_errdetail()). Beyond the chain, it requires what
 * OpenSSL's default purpose "any" does not: an Ed25519 key, CA:FALSE and the
 * digitalSignature key usage. */
int tern_trust_check_cert(const tern_trust *trust, const uint8_t *der, size_t len, int64_t now);

/* Whether the CRL revokes the DER certificate for a compromise: *compromised
 * 0 only for the reasons that say the key itself was safe (superseded,
 * affiliationChanged, cessationOfOperation, privilegeWithdrawn); 1 for any
 * other (keyCompromise, cACompromise, unspecified, none, a hold, one not
 * known, one that does not decode). TERN_ENOENT when the CRL does not
 * revoke it; TERN_ECERT when der is not a certificate; TERN_ENOMEM when
 * memory ran out (no verdict). */
int tern_trust_revoked_compromised(const tern_trust *trust, const uint8_t *der, size_t len,
                                   int *compromised);

/* Seconds since the epoch at which the CRL's nextUpdate falls. */
int64_t tern_trust_crl_next_update(const tern_trust *trust);
/* The CRL's cRLNumber (a CRL without one is refused at load). CRLs only go
 * forward: a daemon refuses one numbered below what it already used. */
int64_t tern_trust_crl_number(const tern_trust *trust);

/* What a node certificate says about its holder. */
typedef struct tern_cert_info {
	char node_id[64];        /* subject CN */
	char agency[128];        /* subject O */
	unsigned roles;          /* one subject OU per role: TERN_ROLE_* bits */
	uint8_t sign_public[32]; /* the certified Ed25519 key */
	int64_t not_before;      /* seconds since the epoch */
	int64_t not_after;
	char serial[41]; /* lower-case hex, no leading zeros */
} tern_cert_info;

/* Reads the identity out of a DER certificate without judging trust (use
 * tern_trust_check_cert for that). TERN_ECERT if it is not a Tern node
 * certificate: no single CN that is a valid node id, no O, an OU that is not a
 * role name, or a key that is not Ed25519. */
int tern_cert_info_read(const uint8_t *der, size_t len, tern_cert_info *out);

/* Converts one PEM certificate into DER; *der is malloc'd, the caller frees it. */
int tern_cert_pem_to_der(const char *pem, size_t len, uint8_t **der, size_t *der_len);

#ifdef __cplusplus
}
#endif
#endif

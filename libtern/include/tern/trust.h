/* Federation trust anchor: the CA certificate and its CRL, checked with
 * OpenSSL's X509_STORE (chain + CRL + key usage).
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
 * a federation without a CRL cannot revoke). */
int tern_trust_load(const char *ca_path, const char *crl_path, tern_trust **out);
void tern_trust_free(tern_trust **trust);

/* The CA's Ed25519 public key (signs directories); valid while trust lives. */
const uint8_t *tern_trust_ca_public(const tern_trust *trust);

/* Checks a DER node certificate against the CA and CRL at time now (seconds;
 * 0 = current time). TERN_EREVOKED if revoked, TERN_EEXPIRED if out of its
 * validity, TERN_ECERT for any other failure (detail in tern_errdetail()). */
int tern_trust_check_cert(const tern_trust *trust, const uint8_t *der, size_t len, int64_t now);

/* Seconds since the epoch at which the CRL's nextUpdate falls. */
int64_t tern_trust_crl_next_update(const tern_trust *trust);

#ifdef __cplusplus
}
#endif
#endif

/* The federation directory: members, their roles and public keys, signed by
 * the federation CA and versioned.
 *
 * A directory handle is immutable once loaded and may be shared by threads.
 * Member pointers returned by lookups are valid as long as the directory.
 */
#ifndef TERN_DIRECTORY_H
#define TERN_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include <tern/keys.h>
#include <tern/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_NODE_ID_MAX 63

typedef struct tern_member {
	char node_id[TERN_NODE_ID_MAX + 1];
	char *agency;
	unsigned roles;                               /* TERN_ROLE_* bits */
	uint8_t sign_public[TERN_ED25519_PUBLIC_LEN]; /* from the certificate */
	uint8_t seal_public[TERN_X25519_LEN];
	uint8_t curve_public[32];
	char *broker_endpoint; /* NULL unless a broker */
	uint8_t *cert_der;
	size_t cert_len;
	int revoked;            /* certificate on the CRL */
	int expired;            /* certificate outside its validity */
	int64_t cert_not_after; /* seconds since epoch */
} tern_member;

typedef struct tern_directory tern_directory;

/* 1 if m's certificate is outside its validity at now (seconds since the
 * epoch): expired when the directory was loaded, or lapsed since. */
int tern_member_expired(const tern_member *m, int64_t now);

/* An empty, unsigned directory, for building one (CA side) and for tests. */
int tern_directory_new(const char *federation, uint64_t version, tern_directory **out);
/* Copies m into d. TERN_EEXIST if the node id is already present. */
int tern_directory_add(tern_directory *d, const tern_member *m);

/* Loads a signed directory file. Refuses (TERN_EBADSIG) one not signed by the
 * trust's CA, TERN_EMALFORMED for a damaged file, TERN_EOLDER if its version
 * is below min_version. Each member's certificate is checked against the CA
 * and CRL: a member whose certificate is revoked stays listed with
 * revoked = 1; a certificate that is not from the CA refuses the whole
 * directory (TERN_ECERT). Roles and keys must match the certificate. */
int tern_directory_load(const char *path, const tern_trust *trust, uint64_t min_version,
                        tern_directory **out);
/* The same from bytes already in memory. */
int tern_directory_parse(const uint8_t *buf, size_t len, const tern_trust *trust,
                         uint64_t min_version, tern_directory **out);
/* Serializes and signs d with the CA key into a SignedDirectory. *out is
 * malloc'd; the caller frees it. */
int tern_directory_sign(const tern_directory *d, const tern_signkey *ca_key, uint8_t **out,
                        size_t *out_len);

void tern_directory_free(tern_directory **d);

uint64_t tern_directory_version(const tern_directory *d);
const char *tern_directory_federation(const tern_directory *d);
size_t tern_directory_count(const tern_directory *d);
const tern_member *tern_directory_at(const tern_directory *d, size_t i);
/* TERN_ENOENT when node_id is not a member. */
int tern_directory_find(const tern_directory *d, const char *node_id, const tern_member **out);
/* Seconds since the epoch at which the CRL the directory was checked against
 * stops being valid (0 for a directory built in memory): past it, verifying
 * refuses every sender until a new CRL is loaded. */
int64_t tern_directory_crl_next_update(const tern_directory *d);
/* Lookup by CURVE public key (the ZAP handler's question). */
int tern_directory_find_curve(const tern_directory *d, const uint8_t curve_public[32],
                              const tern_member **out);

#ifdef __cplusplus
}
#endif
#endif

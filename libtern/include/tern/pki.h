/* The federation CA: key, certificate, CRL, member database and the signed
 * directory, all in one CA directory kept on an offline machine.
 *
 * A CA directory holds:
 *   ca.key         Ed25519 CA private key, PEM PKCS#8, mode 0600
 *   ca.crt         self-signed CA certificate (public)
 *   crl.pem        the current CRL (public)
 *   ca.json        the member database: issued certificates and counters
 *   directory.tdir the last signed directory written (public)
 *
 * Serial numbers are issued in increasing order from 1 (the CA certificate
 * itself is serial 1); ca.json holds the next one. A Tern certificate is
 * signed with PureEdDSA, which signs the whole certificate rather than a hash
 * of it, so the unpredictable serials that guard SHA-based CAs against
 * collision attacks buy nothing here and readable serials help operators.
 *
 * A tern_ca handle holds an exclusive lock on its directory (flock) until it
 * is closed: two operators cannot hand out one serial twice. Every call that
 * changes the CA writes ca.json atomically before it returns.
 *
 * Nodes make their own keys (tern_node_keygen) and hand the CA only a public
 * request file; the CA never sees a node's private key.
 */
#ifndef TERN_PKI_H
#define TERN_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <tern/curve.h>
#include <tern/keys.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_CA_DAYS_DEFAULT 3650
#define TERN_CERT_DAYS_DEFAULT 730
#define TERN_CRL_DAYS_DEFAULT 30

/* File names inside a CA directory and a node directory. */
#define TERN_CA_KEY_FILE "ca.key"
#define TERN_CA_CERT_FILE "ca.crt"
#define TERN_CA_CRL_FILE "crl.pem"
#define TERN_CA_DB_FILE "ca.json"
#define TERN_CA_DIRECTORY_FILE "directory.tdir"
#define TERN_NODE_SIGN_KEY_FILE "node.key"
#define TERN_NODE_SEAL_KEY_FILE "seal.key"
#define TERN_NODE_CURVE_KEY_FILE "curve.key"
#define TERN_NODE_REQUEST_FILE "node.req.json"
#define TERN_NODE_CERT_FILE "node.crt"

/* The domain label of a request's proof of possession (see tern_sign). */
#define TERN_REQUEST_LABEL "tern/v1 node-request"
/* The domain label of the directory signature. */
#define TERN_DIRECTORY_LABEL "tern/v1 directory"

/* A node's public keys, as the CA receives them. */
typedef struct tern_node_request {
	char node_id[64];
	uint8_t sign_public[TERN_ED25519_PUBLIC_LEN];
	uint8_t seal_public[TERN_X25519_LEN];
	uint8_t curve_public[TERN_CURVE_KEY_LEN];
} tern_node_request;

/* Creates node.key, seal.key and curve.key (0600) and node.req.json in dir
 * (made 0700 if missing). TERN_EEXIST if any of those files is already
 * there: keys are never overwritten. req (may be NULL) receives the request. */
int tern_node_keygen(const char *dir, const char *node_id, tern_node_request *req);

/* Reads a request file and checks its proof of possession: an Ed25519
 * signature by the requester's node.key over the request, so a request cannot
 * name somebody else's signing key. TERN_EBADSIG if the proof fails,
 * TERN_EMALFORMED for a damaged file. */
int tern_node_request_load(const char *path, tern_node_request *out);
/* The same from JSON text in memory. */
int tern_node_request_parse(const char *json, size_t len, tern_node_request *out);

typedef struct tern_ca tern_ca;

/* Creates a CA in dir (made 0700 if missing): a new Ed25519 key, a
 * self-signed certificate valid for days (0 = default), an empty CRL and the
 * database. federation: 1-48 printable characters (the CA's O). TERN_EEXIST
 * if dir already holds any of the CA files. */
int tern_ca_init(const char *dir, const char *federation, int days);

/* Opens an existing CA: loads the key (refused unless 0600), certificate and
 * database, and locks the directory. TERN_EIO if another process holds it. */
int tern_ca_open(const char *dir, tern_ca **out);
void tern_ca_close(tern_ca **ca);

const char *tern_ca_federation(const tern_ca *ca);
const char *tern_ca_dir(const tern_ca *ca);

/* Issues a node certificate for req: subject CN=node id, O=agency (1-64
 * printable characters), one OU per role; valid for days (0 = default) but
 * never past the CA certificate's notAfter. endpoint (may be NULL) is the
 * broker's address, recorded for the directory. TERN_EEXIST if the node
 * already holds a certificate that is not revoked (revoke it first), or if
 * another member already uses one of the request's public keys. *cert_pem is
 * malloc'd (the caller frees it); cert_pem may be NULL. */
int tern_ca_issue(tern_ca *ca, const tern_node_request *req, const char *agency, unsigned roles,
                  const char *endpoint, int days, char **cert_pem);

/* As tern_ca_issue, with the validity ending at not_after (seconds since the
 * epoch) instead of after a number of days: to align a certificate with an
 * agreement's end. TERN_EINVAL unless not_after is in the future and within
 * the CA's own validity. */
int tern_ca_issue_until(tern_ca *ca, const tern_node_request *req, const char *agency,
                        unsigned roles, const char *endpoint, int64_t not_after, char **cert_pem);

/* Marks the node's current certificate revoked and writes a new CRL valid
 * for the default period. reason may be NULL; the names of RFC 5280 reason
 * codes ("key-compromise", "superseded", "affiliation-changed",
 * "cessation-of-operation", "privilege-withdrawn", "unspecified") go into
 * the CRL, any other text is kept in the database only. TERN_ENOENT if the
 * node has no certificate that is not already revoked. */
int tern_ca_revoke(tern_ca *ca, const char *node_id, const char *reason);

/* Signs and writes crl.pem afresh (next CRL number), valid for days
 * (0 = default). Run it before the current CRL's nextUpdate. */
int tern_ca_write_crl(tern_ca *ca, int days);

/* Builds the directory from the database (for each node its latest
 * certificate; certificates that expired without being revoked are left
 * out), gives it the next version, signs it with the CA key and writes it to
 * out_path (NULL = the CA directory's directory.tdir). The result is loaded
 * back against ca.crt and crl.pem before this returns, so a directory nodes
 * would refuse is never left behind. version may be NULL. */
int tern_ca_write_directory(tern_ca *ca, const char *out_path, uint64_t *version);

/* One issued certificate, for listings. Strings are valid until the next
 * call that changes ca. */
typedef struct tern_ca_entry {
	const char *serial; /* lower-case hex */
	const char *node_id;
	const char *agency;
	unsigned roles;
	const char *endpoint; /* NULL if none */
	int64_t not_before;   /* seconds since the epoch */
	int64_t not_after;
	int revoked;
	int64_t revoked_at; /* seconds since the epoch; 0 unless revoked */
	const char *reason; /* "" unless revoked with a reason */
	const char *cert_pem;
} tern_ca_entry;

size_t tern_ca_count(const tern_ca *ca);
int tern_ca_entry_at(const tern_ca *ca, size_t i, tern_ca_entry *out);
/* The last directory version written (0 if none yet). */
uint64_t tern_ca_directory_version(const tern_ca *ca);
/* The CA certificate's notAfter, seconds since the epoch. */
int64_t tern_ca_not_after(const tern_ca *ca);

#ifdef __cplusplus
}
#endif
#endif

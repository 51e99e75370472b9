#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/trust.h>
#include <tern/v1/directory.pb-c.h>

#include "audit_archive.h"
#include "cli.h"
#include "pbuf.h"
#include "util.h"

#define DIRECTORY_LABEL "tern/v1 directory"

int audit_sig_checked(int rc)
{
	if (rc == TERN_ENOMEM) {
		fprintf(stderr, "tern audit: out of memory checking a signature; the "
		                "verification is incomplete\n");
		exit(CLI_FAIL);
	}
	return rc;
}

const audit_member *audit_member_find(const audit_archive *ar, const char *id)
{
	for (size_t i = 0; i < ar->nmembers; i++)
		if (strcmp(ar->members[i].id, id) == 0)
			return &ar->members[i];
	return NULL;
}

const audit_member *audit_member_by_origin(const audit_archive *ar, const char *origin)
{
	for (size_t i = 0; i < ar->nmembers; i++)
		if (strcmp(ar->members[i].origin, origin) == 0)
			return &ar->members[i];
	return NULL;
}

/* The members' keys, from certificates the CA signed, in a directory the CA
 * signed. No validity periods: an archive is checked years after its
 * certificates expired. */
static int anchors(audit_archive *ar, audit_finding_fn *finding)
{
	const Tern__V1__AuditArchive *a = ar->a;
	const char *file = ar->file;
	const unsigned char *cp = a->ca_certificate.data;
	X509 *ca = d2i_X509(NULL, &cp, (long)a->ca_certificate.len);
	EVP_PKEY *ca_key = NULL;
	ProtobufCMessage *sdm = NULL, *dm = NULL;
	Tern__V1__Directory *dir;
	uint8_t ca_pub[32];
	size_t pl = 32;
	int ok = 0;

	if (ca != NULL && cp != a->ca_certificate.data + a->ca_certificate.len) {
		finding(file, "trailing bytes after the CA certificate");
		goto out;
	}
	/* A key OpenSSL cannot decode leaves the certificate without one (NULL). */
	if (ca == NULL || (ca_key = X509_get0_pubkey(ca)) == NULL ||
	    EVP_PKEY_get_id(ca_key) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(ca_key, ca_pub, &pl) != 1 || pl != 32) {
		finding(file, "the CA certificate does not decode as an Ed25519 certificate");
		goto out;
	}
	/* Every byte of the anchor counts: its own signature covers the rest. */
	if (X509_verify(ca, ca_key) != 1) {
		finding(file, "the CA certificate's self-signature does not verify");
		goto out;
	}
	{
		const unsigned char *rp = a->crl.data;
		X509_CRL *crl = d2i_X509_CRL(NULL, &rp, (long)a->crl.len);
		int crl_ok =
		    crl && rp == a->crl.data + a->crl.len && X509_CRL_verify(crl, ca_key) == 1;
		X509_CRL_free(crl);
		if (!crl_ok) {
			finding(file, "the CRL is not signed by the archive's CA");
			goto out;
		}
	}
	{
		uint8_t md[32];
		unsigned mdl = 0;
		X509_digest(ca, EVP_sha256(), md, &mdl);
		tern_hex(md, 32, ar->ca_fingerprint);
	}
	if (tern_pb_unpack(&tern__v1__signed_directory__descriptor, a->directory.data,
	                   a->directory.len, a->directory.len, &sdm) != TERN_OK) {
		finding(file, "the directory does not decode");
		goto out;
	}
	{
		Tern__V1__SignedDirectory *sd = (Tern__V1__SignedDirectory *)sdm;
		if (sd->signature.len != 64 ||
		    tern_verify(ca_pub, DIRECTORY_LABEL, sd->directory.data, sd->directory.len,
		                sd->signature.data) != TERN_OK) {
			finding(file, "the directory is not signed by the archive's CA");
			goto out;
		}
		if (tern_pb_unpack_canonical(&tern__v1__directory__descriptor, sd->directory.data,
		                             sd->directory.len, sd->directory.len,
		                             &dm) != TERN_OK) {
			finding(file, "the signed directory bytes do not decode");
			goto out;
		}
	}
	dir = (Tern__V1__Directory *)dm;
	if ((ar->members = calloc(dir->n_members ? dir->n_members : 1, sizeof(audit_member))) ==
	    NULL)
		goto out;
	for (size_t i = 0; i < dir->n_members; i++) {
		const Tern__V1__DirectoryMember *m = dir->members[i];
		const unsigned char *p = m->certificate.data;
		X509 *cert = d2i_X509(NULL, &p, (long)m->certificate.len);
		audit_member *am = &ar->members[ar->nmembers];
		tern_cert_info info;
		int good = cert != NULL && p == m->certificate.data + m->certificate.len &&
		           X509_verify(cert, ca_key) == 1 &&
		           tern_cert_info_read(m->certificate.data, m->certificate.len, &info) ==
		               TERN_OK &&
		           strcmp(info.node_id, m->node_id) == 0 &&
		           strlen(m->node_id) < sizeof(am->id);
		X509_free(cert);
		if (!good) {
			finding(file, "the certificate of %s is not one the CA signed", m->node_id);
			continue;
		}
		snprintf(am->id, sizeof(am->id), "%s", m->node_id);
		snprintf(am->origin, sizeof(am->origin), "tern/%s/%s", dir->federation, m->node_id);
		memcpy(am->pub, info.sign_public, 32);
		for (size_t r = 0; r < m->n_roles; r++)
			if (m->roles[r] < 32)
				am->roles |= 1u << m->roles[r];
		ar->nmembers++;
	}
	if ((ar->owner = audit_member_find(ar, a->log_id)) == NULL) {
		finding(file, "%s is not in the archive's directory", a->log_id);
		goto out;
	}
	if (strcmp(ar->owner->origin, a->origin) != 0) {
		finding(file, "the archive's origin %s is not %s's", a->origin, a->log_id);
		goto out;
	}
	ok = 1;
out:
	X509_free(ca);
	tern_pb_free(&dm);
	tern_pb_free(&sdm);
	return ok;
}

static void evidence_add(audit_archive *ar, uint64_t index, const Tern__V1__AuditEntry *e,
                         audit_finding_fn *finding)
{
	char origin[TERN_NOTE_NAME_MAX + 1], *text = NULL;
	const audit_member *owner =
	    audit_member_by_origin(ar, (snprintf(origin, sizeof(origin), "%.*s",
	                                         (int)strcspn(e->checkpoint, "\n"), e->checkpoint),
	                                origin));
	audit_evidence *ev, *nv;
	uint64_t t = 0;

	/* The witness's own cosignature and the owner's signature must both hold:
	 * then the entry proves what the owner signed, whoever keeps it. */
	if (owner == NULL || strcmp(owner->id, e->peer) != 0 ||
	    audit_sig_checked(tern_note_verify(e->checkpoint, strlen(e->checkpoint), owner->origin,
	                                       owner->pub, &text)) != TERN_OK ||
	    (ar->owner && audit_sig_checked(tern_cosign_verify(e->checkpoint, strlen(e->checkpoint),
	                                                       ar->owner->origin, ar->owner->pub,
	                                                       &t)) != TERN_OK)) {
		finding(ar->file,
		        "entry %llu: a cosigned checkpoint of %s whose signatures do not "
		        "verify",
		        (unsigned long long)index, e->peer);
		free(text);
		return;
	}
	if ((nv = realloc(ar->evidence, (ar->nevidence + 1) * sizeof(*nv))) == NULL) {
		free(text);
		return;
	}
	ar->evidence = nv;
	ev = &nv[ar->nevidence];
	ev->index = index;
	snprintf(ev->owner, sizeof(ev->owner), "%s", owner->id);
	ev->time = t;
	ev->reanchored = e->kind == TERN__V1__AUDIT_ENTRY__KIND__REANCHORED;
	ev->abandoned = e->abandoned_size;
	if (tern_checkpoint_parse(text, origin, &ev->size, ev->root) == TERN_OK)
		ar->nevidence++;
	free(text);
}

int audit_archive_load(const char *file, audit_archive *ar, audit_finding_fn *finding,
                       int keep_entries)
{
	ProtobufCMessage *am = NULL;
	size_t len;
	int rc;

	memset(ar, 0, sizeof(*ar));
	ar->file = file;
	/* Not being able to read it says nothing of what it holds: the caller
	 * reports that as an error, not a finding. */
	if ((rc = tern_file_read(file, AUDIT_ARCHIVE_MAX, &ar->buf, &len)) != TERN_OK)
		return -2;
	if (tern_pb_unpack_canonical(&tern__v1__audit_archive__descriptor, ar->buf, len, len,
	                             &am) != TERN_OK) {
		finding(file, "not an audit archive (%s)", tern_errdetail());
		audit_archive_free(ar);
		return -1;
	}
	ar->a = (Tern__V1__AuditArchive *)am;
	if (ar->a->schema_version != 1) {
		finding(file, "archive version %u is not supported", ar->a->schema_version);
		audit_archive_free(ar);
		return -1;
	}
	ar->anchored = anchors(ar, finding);
	ar->leaves = malloc((ar->a->n_entries ? ar->a->n_entries : 1) * sizeof(tern_hash));
	if (keep_entries)
		ar->entries = calloc(ar->a->n_entries ? ar->a->n_entries : 1, sizeof(*ar->entries));
	if (ar->leaves == NULL || (keep_entries && ar->entries == NULL)) {
		audit_archive_free(ar);
		tern_fail(TERN_ENOMEM, "out of memory");
		return -2;
	}
	for (size_t i = 0; i < ar->a->n_entries; i++) {
		const ProtobufCBinaryData *eb = &ar->a->entries[i];
		ProtobufCMessage *e = NULL;
		Tern__V1__AuditEntry *ae;
		uint64_t index = ar->a->first_index + i;

		tern_merkle_leaf_hash(eb->data, eb->len, ar->leaves[i]);
		if (tern_pb_unpack_canonical(&tern__v1__audit_entry__descriptor, eb->data, eb->len,
		                             AUDIT_ENTRY_MAX, &e) != TERN_OK) {
			finding(file, "entry %llu does not decode as an audit entry",
			        (unsigned long long)index);
			continue;
		}
		ae = (Tern__V1__AuditEntry *)e;
		if ((ae->kind == TERN__V1__AUDIT_ENTRY__KIND__COSIGNED ||
		     ae->kind == TERN__V1__AUDIT_ENTRY__KIND__REANCHORED) &&
		    ar->anchored)
			evidence_add(ar, index, ae, finding);
		if (ae->kind == TERN__V1__AUDIT_ENTRY__KIND__OPERATOR &&
		    strcmp(ae->type, "reanchor") == 0) {
			uint64_t *nr = realloc(ar->requests, (ar->nrequests + 1) * sizeof(*nr));
			if (nr == NULL) {
				tern_pb_free(&e);
				audit_archive_free(ar);
				tern_fail(TERN_ENOMEM, "out of memory");
				return -2;
			}
			ar->requests = nr;
			ar->requests[ar->nrequests++] = index;
		}
		if (keep_entries)
			ar->entries[i] = ae;
		else
			tern_pb_free(&e);
	}
	return 0;
}

void audit_archive_free(audit_archive *ar)
{
	if (ar->entries)
		for (size_t i = 0; i < ar->a->n_entries; i++)
			tern_pb_free((ProtobufCMessage **)&ar->entries[i]);
	free(ar->entries);
	free(ar->leaves);
	free(ar->evidence);
	free(ar->requests);
	free(ar->members);
	tern_pb_free((ProtobufCMessage **)&ar->a);
	free(ar->buf);
	memset(ar, 0, sizeof(*ar));
}

static void fold(const tern_hash *f, int n, tern_hash root)
{
	if (n == 0) {
		tern_merkle_root(NULL, 0, root);
		return;
	}
	memcpy(root, f[n - 1], TERN_HASH_LEN);
	for (int i = n - 2; i >= 0; i--)
		tern_merkle_node_hash(f[i], root, root);
}

int audit_archive_roots(const audit_archive *ar, const uint64_t *sizes, size_t k, tern_hash *roots)
{
	const Tern__V1__AuditArchive *a = ar->a;
	tern_hash f[64];
	int n = 0;
	uint64_t done = a->first_index;
	size_t j = 0;

	if ((int)a->n_prefix_frontier != __builtin_popcountll(a->first_index))
		return -1;
	for (size_t i = 0; i < a->n_prefix_frontier; i++) {
		if (a->prefix_frontier[i].len != TERN_HASH_LEN)
			return -1;
		memcpy(f[n++], a->prefix_frontier[i].data, TERN_HASH_LEN);
	}
	for (; j < k; j++) {
		if (sizes[j] < done || sizes[j] > audit_archive_end(ar))
			return -1;
		for (; done < sizes[j]; done++) {
			tern_hash h;
			memcpy(h, ar->leaves[done - a->first_index], TERN_HASH_LEN);
			/* Each trailing 1 bit of the size is a subtree this leaf completes. */
			for (uint64_t s = done; s & 1; s >>= 1)
				tern_merkle_node_hash(f[--n], h, h);
			memcpy(f[n++], h, TERN_HASH_LEN);
		}
		fold(f, n, roots[j]);
	}
	return 0;
}

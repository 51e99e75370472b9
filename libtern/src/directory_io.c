/* The signed directory on disk: a SignedDirectory whose directory bytes are
 * verified exactly as received (never re-serialized) before they are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/directory.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/trust.h>
#include <tern/v1/directory.pb-c.h>

#include "directory_int.h"
#include "pbuf.h"
#include "util.h"

/* Tens of members at a few kilobytes each: 8 MiB leaves room and still caps
 * what a damaged or hostile file can make us allocate. */
#define DIRECTORY_MAX (8u * 1024 * 1024)
#define DIRECTORY_SCHEMA 1
#define ROLE_MAX TERN__V1__ROLE__BROKER

/* True when the member's certificate is outside its validity period now. */
static int cert_out_of_validity(const Tern__V1__DirectoryMember *pm)
{
	tern_cert_info info;
	int64_t now = tern_now_ms() / 1000;

	if (tern_cert_info_read(pm->certificate.data, pm->certificate.len, &info) != TERN_OK)
		return 0;
	return now < info.not_before || now > info.not_after;
}

static int check_member_keys(const tern_directory *d, const Tern__V1__DirectoryMember *pm)
{
	if (pm->x25519_public_key.len != TERN_X25519_LEN)
		return tern_fail(TERN_EMALFORMED, "node '%s': X25519 key is %zu bytes, not 32",
		                 pm->node_id, pm->x25519_public_key.len);
	if (pm->curve_public_key.len != 32)
		return tern_fail(TERN_EMALFORMED, "node '%s': CURVE key is %zu bytes, not 32",
		                 pm->node_id, pm->curve_public_key.len);
	/* The broker identifies a connection by its CURVE key and senders seal
	 * to X25519 keys: two members sharing either would be confused. */
	for (size_t i = 0; i < d->count; i++) {
		if (memcmp(d->members[i].curve_public, pm->curve_public_key.data, 32) == 0)
			return tern_fail(TERN_EMALFORMED, "nodes '%s' and '%s' share a CURVE key",
			                 d->members[i].node_id, pm->node_id);
		if (memcmp(d->members[i].seal_public, pm->x25519_public_key.data, 32) == 0)
			return tern_fail(TERN_EMALFORMED, "nodes '%s' and '%s' share an X25519 key",
			                 d->members[i].node_id, pm->node_id);
	}
	return TERN_OK;
}

static int member_from_pb(tern_directory *d, const Tern__V1__DirectoryMember *pm,
                          const tern_trust *trust)
{
	char detail[512];
	tern_cert_info info;
	tern_member m;
	unsigned roles = 0;
	int rc, revoked = 0, expired = 0;

	if (!tern_node_id_valid(pm->node_id))
		return tern_fail(TERN_EMALFORMED, "directory lists an invalid node id");
	for (size_t r = 0; r < pm->n_roles; r++) {
		if ((int)pm->roles[r] < 1 || (int)pm->roles[r] > ROLE_MAX)
			return tern_fail(TERN_EMALFORMED, "node '%s': unknown role %d", pm->node_id,
			                 (int)pm->roles[r]);
		roles |= 1u << pm->roles[r];
	}
	if (roles == 0)
		return tern_fail(TERN_EMALFORMED, "node '%s' has no role", pm->node_id);
	if ((rc = check_member_keys(d, pm)) != TERN_OK)
		return rc;

	rc = tern_trust_check_cert(trust, pm->certificate.data, pm->certificate.len, 0);
	if (rc == TERN_EREVOKED) {
		revoked = 1;
	} else if (rc == TERN_EEXPIRED && cert_out_of_validity(pm)) {
		/* One member's lapsed certificate must not stop the federation:
		 * keep it listed, refused as sender and recipient. (An expired
		 * CRL also reads TERN_EEXPIRED, but then every certificate is
		 * still in its validity and the directory is refused below.) */
		expired = 1;
	} else if (rc != TERN_OK) {
		snprintf(detail, sizeof(detail), "%s", tern_errdetail());
		return tern_fail(TERN_ECERT, "certificate of node '%s': %s", pm->node_id, detail);
	}
	if ((rc = tern_cert_info_read(pm->certificate.data, pm->certificate.len, &info)) !=
	    TERN_OK) {
		snprintf(detail, sizeof(detail), "%s", tern_errdetail());
		return tern_fail(TERN_ECERT, "node '%s': %s", pm->node_id, detail);
	}
	if (strcmp(info.node_id, pm->node_id) != 0)
		return tern_fail(TERN_ECERT, "directory entry '%s' carries the certificate of '%s'",
		                 pm->node_id, info.node_id);
	if (info.roles != roles)
		return tern_fail(TERN_ECERT,
		                 "node '%s': roles in the directory differ from its "
		                 "certificate",
		                 pm->node_id);
	if (strcmp(info.agency, pm->agency) != 0)
		return tern_fail(TERN_ECERT,
		                 "node '%s': agency in the directory differs from its "
		                 "certificate",
		                 pm->node_id);

	memset(&m, 0, sizeof(m));
	snprintf(m.node_id, sizeof(m.node_id), "%s", pm->node_id);
	m.agency = pm->agency;
	m.roles = roles;
	memcpy(m.sign_public, info.sign_public, sizeof(m.sign_public));
	memcpy(m.seal_public, pm->x25519_public_key.data, TERN_X25519_LEN);
	memcpy(m.curve_public, pm->curve_public_key.data, 32);
	m.broker_endpoint = pm->broker_endpoint[0] ? pm->broker_endpoint : NULL;
	m.cert_der = pm->certificate.data;
	m.cert_len = pm->certificate.len;
	m.revoked = revoked;
	m.expired = expired;
	m.cert_not_after = info.not_after;
	/* tern_directory_add copies every pointer field. */
	if ((rc = tern_directory_add(d, &m)) == TERN_EEXIST)
		return tern_fail(TERN_EMALFORMED, "node '%s' is listed twice", pm->node_id);
	return rc;
}

int tern_directory_parse(const uint8_t *buf, size_t len, const tern_trust *trust,
                         uint64_t min_version, tern_directory **out)
{
	ProtobufCMessage *sm = NULL, *dm = NULL;
	Tern__V1__SignedDirectory *sd;
	Tern__V1__Directory *dir;
	tern_directory *d = NULL;
	int rc;

	if (buf == NULL || trust == NULL || out == NULL)
		return TERN_EINVAL;
	if ((rc = tern_pb_unpack(&tern__v1__signed_directory__descriptor, buf, len, DIRECTORY_MAX,
	                         &sm)) != TERN_OK)
		return rc == TERN_EMALFORMED ? tern_fail(rc, "not a signed directory") : rc;
	sd = (Tern__V1__SignedDirectory *)sm;
	if (sd->signature.len == 0 || sd->directory.len == 0) {
		rc = tern_fail(TERN_EBADSIG, "the directory is not signed");
		goto out;
	}
	if (sd->signature.len != TERN_ED25519_SIG_LEN ||
	    (rc = tern_verify(tern_trust_ca_public(trust), TERN_DIRECTORY_LABEL, sd->directory.data,
	                      sd->directory.len, sd->signature.data)) != TERN_OK) {
		rc = rc == TERN_ENOMEM
		         ? tern_fail(rc, "out of memory verifying the directory")
		         : tern_fail(TERN_EBADSIG,
		                     "the directory signature is not the federation CA's");
		goto out;
	}
	/* Only now, with the bytes known to come from the CA, read them. */
	if ((rc = tern_pb_unpack_canonical(&tern__v1__directory__descriptor, sd->directory.data,
	                                   sd->directory.len, DIRECTORY_MAX, &dm)) != TERN_OK) {
		if (rc == TERN_EMALFORMED) {
			char why[256];
			snprintf(why, sizeof(why), "%s", tern_errdetail());
			tern_fail(rc, "the signed directory bytes: %s", why);
		}
		goto out;
	}
	dir = (Tern__V1__Directory *)dm;
	if (dir->schema_version != DIRECTORY_SCHEMA) {
		rc = tern_fail(TERN_EVERSION, "directory schema version %u; this build reads %d",
		               dir->schema_version, DIRECTORY_SCHEMA);
		goto out;
	}
	if (strcmp(dir->federation, tern_trust_federation(trust)) != 0) {
		rc =
		    tern_fail(TERN_EMALFORMED, "directory is for federation '%s', the CA's is '%s'",
		              dir->federation, tern_trust_federation(trust));
		goto out;
	}
	if (dir->version == 0) {
		rc = tern_fail(TERN_EMALFORMED, "directory version 0 is not valid");
		goto out;
	}
	if (dir->version < min_version) {
		rc = tern_fail(TERN_EOLDER,
		               "directory version %llu is older than version %llu "
		               "already held",
		               (unsigned long long)dir->version, (unsigned long long)min_version);
		goto out;
	}
	if ((rc = tern_directory_new(dir->federation, dir->version, &d)) != TERN_OK)
		goto out;
	d->issued_at = dir->issued_at;
	d->crl_next_update = tern_trust_crl_next_update(trust);
	for (size_t i = 0; i < dir->n_members; i++)
		if ((rc = member_from_pb(d, dir->members[i], trust)) != TERN_OK)
			goto out;
	*out = d;
	d = NULL;
	rc = TERN_OK;
out:
	tern_directory_free(&d);
	tern_pb_free(&dm);
	tern_pb_free(&sm);
	return rc;
}

int tern_directory_load(const char *path, const tern_trust *trust, uint64_t min_version,
                        tern_directory **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char detail[512];
	int rc;

	if ((rc = tern_file_read(path, DIRECTORY_MAX, &buf, &len)) != TERN_OK)
		return rc;
	rc = tern_directory_parse(buf, len, trust, min_version, out);
	free(buf);
	if (rc != TERN_OK) {
		snprintf(detail, sizeof(detail), "%s", tern_errdetail());
		tern_fail(rc, "%s: %s", path, detail);
	}
	return rc;
}

int tern_directory_sign(const tern_directory *d, const tern_signkey *ca_key, uint8_t **out,
                        size_t *out_len)
{
	Tern__V1__Directory dir = TERN__V1__DIRECTORY__INIT;
	Tern__V1__SignedDirectory sd = TERN__V1__SIGNED_DIRECTORY__INIT;
	Tern__V1__DirectoryMember *pms = NULL, **ptrs = NULL;
	Tern__V1__Role *roles = NULL;
	uint8_t *dbytes = NULL, sig[TERN_ED25519_SIG_LEN];
	size_t dlen = 0, nroles = 0;
	int rc;

	if (d == NULL || ca_key == NULL || out == NULL || out_len == NULL)
		return TERN_EINVAL;
	if (d->count > 0) {
		pms = calloc(d->count, sizeof(*pms));
		ptrs = calloc(d->count, sizeof(*ptrs));
		roles = calloc(d->count * ROLE_MAX, sizeof(*roles));
		if (pms == NULL || ptrs == NULL || roles == NULL) {
			rc = TERN_ENOMEM;
			goto out;
		}
	}
	dir.schema_version = DIRECTORY_SCHEMA;
	dir.federation = d->federation;
	dir.version = d->version;
	dir.issued_at = d->issued_at ? d->issued_at : tern_now_ms();
	for (size_t i = 0; i < d->count; i++) {
		const tern_member *m = &d->members[i];
		Tern__V1__DirectoryMember *pm = &pms[i];

		tern__v1__directory_member__init(pm);
		pm->node_id = (char *)m->node_id;
		pm->agency = m->agency;
		pm->roles = &roles[nroles];
		for (int r = 1; r <= ROLE_MAX; r++)
			if (m->roles & (1u << r))
				roles[nroles + pm->n_roles++] = (Tern__V1__Role)r;
		nroles += pm->n_roles;
		pm->certificate.data = m->cert_der;
		pm->certificate.len = m->cert_len;
		pm->x25519_public_key.data = (uint8_t *)m->seal_public;
		pm->x25519_public_key.len = TERN_X25519_LEN;
		pm->curve_public_key.data = (uint8_t *)m->curve_public;
		pm->curve_public_key.len = 32;
		if (m->broker_endpoint)
			pm->broker_endpoint = m->broker_endpoint;
		ptrs[i] = pm;
	}
	dir.n_members = d->count;
	dir.members = ptrs;
	if ((rc = tern_pb_pack(&dir.base, &dbytes, &dlen)) != TERN_OK)
		goto out;
	if ((rc = tern_sign(ca_key, TERN_DIRECTORY_LABEL, dbytes, dlen, sig)) != TERN_OK)
		goto out;
	sd.directory.data = dbytes;
	sd.directory.len = dlen;
	sd.signature.data = sig;
	sd.signature.len = sizeof(sig);
	rc = tern_pb_pack(&sd.base, out, out_len);
out:
	free(dbytes);
	free(roles);
	free(ptrs);
	free(pms);
	return rc;
}

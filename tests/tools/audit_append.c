/* tern-audit-append CONF < ENTRIES: appends audit entries to a STOPPED
 * node's or broker's log and signs a checkpoint over them, so that a test builds the
 * archives `tern audit export` writes without running a federation (replay's
 * workflow findings: tests/cli/test_replay_workflow.sh). One entry a line:
 *   KIND PEER TYPE MSGID CASE OUTCOME REF AT_MS [REASON [ATTACHMENTS]]
 * KIND as in audit.proto (SENT, RECEIVED, RECEIPT_SENT, ...), "-" for an
 * empty field. The digest is made from the message id, so that what one node
 * SENT and another RECEIVED agree. ATTACHMENTS: comma-separated
 * INDEX:SIZE:ROOT[:SHA256], ROOT and SHA256 tags of up to 32 characters
 * whose bytes make the 32-byte hash (zero-padded), as for the digest, so that
 * entries agree when their tags do; SHA256 "-" or left out for none, as a
 * broker's RELAYED has (replay's attachment findings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/config.h>
#include <tern/directory.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/trust.h>

#include "audit.h"

struct lines {
	tern_audit_dbs d;
	const char *origin;
	const tern_signkey *key;
};

static char *field(char *s)
{
	return strcmp(s, "-") == 0 ? "" : s;
}

/* A 32-byte hash made from tag t's bytes. */
static void tag_hash(const char *t, uint8_t out[32])
{
	memset(out, 0, 32);
	for (size_t i = 0; t[i] && i < 32; i++)
		out[i] = (uint8_t)t[i];
}

/* The ATTACHMENTS field s into a[], p[] (at most max), *n of them. */
static int parse_atts(char *s, Tern__V1__AuditAttachment *a, Tern__V1__AuditAttachment **p,
                      uint8_t (*hashes)[2][32], size_t max, size_t *n)
{
	char *save = NULL;

	*n = 0;
	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *save2 = NULL, *f[4] = {0};
		int k = 0;
		if (*n == max)
			return TERN_EINVAL;
		for (char *u = strtok_r(t, ":", &save2); u && k < 4;
		     u = strtok_r(NULL, ":", &save2))
			f[k++] = u;
		if (k < 3)
			return TERN_EINVAL;
		tern__v1__audit_attachment__init(&a[*n]);
		a[*n].index = (uint32_t)strtoul(f[0], NULL, 10);
		a[*n].size = strtoull(f[1], NULL, 10);
		tag_hash(f[2], hashes[*n][0]);
		a[*n].root.data = hashes[*n][0];
		a[*n].root.len = 32;
		if (k > 3 && strcmp(f[3], "-") != 0) {
			tag_hash(f[3], hashes[*n][1]);
			a[*n].sha256.data = hashes[*n][1];
			a[*n].sha256.len = 32;
		}
		p[*n] = &a[*n];
		(*n)++;
	}
	return TERN_OK;
}

static int apply(MDB_txn *txn, void *arg)
{
	struct lines *l = arg;
	char line[1024];
	uint64_t size;
	int rc, no = 0;

	while (fgets(line, sizeof(line), stdin)) {
		Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
		const ProtobufCEnumValue *k;
		Tern__V1__AuditAttachment att[8], *attp[8];
		uint8_t hashes[8][2][32];
		char *f[10] = {0}, *save = NULL;
		uint8_t digest[32] = {0};
		int n = 0;

		no++;
		for (char *t = strtok_r(line, " \t\n", &save); t && n < 10;
		     t = strtok_r(NULL, " \t\n", &save))
			f[n++] = t;
		if (n == 0 || f[0][0] == '#')
			continue;
		if (n < 8 || (k = protobuf_c_enum_descriptor_get_value_by_name(
		                  &tern__v1__audit_entry__kind__descriptor, f[0])) == NULL) {
			fprintf(stderr, "tern-audit-append: line %d: bad entry\n", no);
			return TERN_EINVAL;
		}
		e.kind = k->value;
		e.peer = field(f[1]);
		e.type = field(f[2]);
		e.message_id = field(f[3]);
		e.case_id = field(f[4]);
		e.outcome = field(f[5]);
		e.ref = field(f[6]);
		e.at = strtoll(f[7], NULL, 10);
		e.reason = n > 8 ? field(f[8]) : "";
		if (n > 9 && strcmp(f[9], "-") != 0 &&
		    parse_atts(f[9], att, attp, hashes, 8, &e.n_attachments) != TERN_OK) {
			fprintf(stderr, "tern-audit-append: line %d: bad attachments\n", no);
			return TERN_EINVAL;
		}
		e.attachments = attp;
		for (size_t i = 0; e.message_id[i] && i < sizeof(digest); i++)
			digest[i] = (uint8_t)e.message_id[i];
		e.digest.data = digest;
		e.digest.len = sizeof(digest);
		if ((rc = tern_audit_append(txn, &l->d, &e)) != TERN_OK)
			return rc;
	}
	return tern_audit_checkpoint(txn, &l->d, l->origin, l->key, 1, &size);
}

int main(int argc, char **argv)
{
	static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};
	tern_config *cfg = NULL;
	tern_store *st = NULL;
	tern_signkey *key = NULL;
	tern_trust *trust = NULL;
	tern_directory *dir = NULL;
	char origin[160];
	const char *sect = "node";
	struct lines l;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: tern-audit-append NODE-OR-BROKER-CONF < ENTRIES\n");
		return 2;
	}
	if (tern_config_load(argv[1], TERN_CONFIG_NODE, &cfg) != TERN_OK) {
		/* a broker's configuration: its log is the same, under [broker] */
		tern_config_free(&cfg);
		sect = "broker";
		if (tern_config_load(argv[1], TERN_CONFIG_BROKER, &cfg) != TERN_OK) {
			fprintf(stderr,
			        "tern-audit-append: %s is neither a node nor a broker "
			        "configuration\n",
			        argv[1]);
			tern_config_free(&cfg);
			return 1;
		}
	}
	if (tern_signkey_load(tern_config_get(cfg, "keys", "signing_key"), &key) != TERN_OK ||
	    tern_trust_load(tern_config_get(cfg, "federation", "ca"),
	                    tern_config_get(cfg, "federation", "crl"), &trust) != TERN_OK ||
	    tern_directory_load(tern_config_get(cfg, "federation", "directory"), trust, 0, &dir) !=
	        TERN_OK ||
	    tern_store_open(tern_config_get(cfg, sect, "data_dir"), dbnames, 0, 0, &st) !=
	        TERN_OK) {
		fprintf(stderr, "tern-audit-append: %s\n", tern_errdetail());
		return 1;
	}
	snprintf(origin, sizeof(origin), "tern/%s/%s", tern_directory_federation(dir),
	         tern_config_get(cfg, sect, "id"));
	tern_audit_dbs_at(st, 0, &l.d);
	l.origin = origin;
	l.key = key;
	rc = tern_store_write(st, apply, &l);
	if (rc != TERN_OK)
		fprintf(stderr, "tern-audit-append: %s\n", tern_errdetail());
	tern_store_close(&st);
	tern_directory_free(&dir);
	tern_trust_free(&trust);
	tern_signkey_free(&key);
	tern_config_free(&cfg);
	return rc == TERN_OK ? 0 : 1;
}

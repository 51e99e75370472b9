/* tern-audit-synth NODECONF N: appends N synthetic entries to a STOPPED node's
 * audit log in batches of 10,000 and signs a checkpoint, for the verify
 * benchmark (tests/bench/audit-verify.sh). */
#include <stdio.h>
#include <stdlib.h>

#include <tern/config.h>
#include <tern/directory.h>
#include <tern/error.h>
#include <tern/keys.h>
#include <tern/trust.h>

#include "audit.h"

struct synth {
	tern_audit_dbs d;
	uint64_t from, n;
	const char *origin;
	const tern_signkey *key;
};

static int apply(MDB_txn *txn, void *arg)
{
	struct synth *s = arg;
	Tern__V1__AuditEntry e = TERN__V1__AUDIT_ENTRY__INIT;
	uint8_t digest[32] = {0};
	char id[64], cs[40];
	uint64_t size;
	int rc;

	e.kind = TERN__V1__AUDIT_ENTRY__KIND__SENT;
	e.peer = "sweden";
	e.type = "case-referral";
	e.message_id = id;
	e.case_id = cs;
	e.digest.data = digest;
	e.digest.len = 32;
	for (uint64_t i = s->from; i < s->from + s->n; i++) {
		snprintf(id, sizeof(id), "01a20598-0000-7000-8000-%012llu", (unsigned long long)i);
		snprintf(cs, sizeof(cs), "BENCH-%08llu", (unsigned long long)i);
		e.at = 1795390000000LL + (int64_t)i;
		digest[0] = (uint8_t)i;
		if ((rc = tern_audit_append(txn, &s->d, &e)) != TERN_OK)
			return rc;
	}
	return tern_audit_checkpoint(txn, &s->d, s->origin, s->key, 0, &size);
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
	struct synth s;
	uint64_t n;

	if (argc != 3) {
		fprintf(stderr, "usage: tern-audit-synth NODECONF N\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 10);
	if (tern_config_load(argv[1], TERN_CONFIG_NODE, &cfg) != TERN_OK ||
	    tern_signkey_load(tern_config_get(cfg, "keys", "signing_key"), &key) != TERN_OK ||
	    tern_trust_load(tern_config_get(cfg, "federation", "ca"),
	                    tern_config_get(cfg, "federation", "crl"), &trust) != TERN_OK ||
	    tern_directory_load(tern_config_get(cfg, "federation", "directory"), trust, 0, &dir) !=
	        TERN_OK ||
	    tern_store_open(tern_config_get(cfg, "node", "data_dir"), dbnames, 0, 0, &st) !=
	        TERN_OK) {
		fprintf(stderr, "tern-audit-synth: %s\n", tern_errdetail());
		return 1;
	}
	snprintf(origin, sizeof(origin), "tern/%s/%s", tern_directory_federation(dir),
	         tern_config_get(cfg, "node", "id"));
	tern_audit_dbs_at(st, 0, &s.d);
	s.origin = origin;
	s.key = key;
	for (uint64_t done = 0; done < n; done += s.n) {
		s.from = done;
		s.n = n - done < 10000 ? n - done : 10000;
		if (tern_store_write(st, apply, &s) != TERN_OK) {
			fprintf(stderr, "tern-audit-synth: %s\n", tern_errdetail());
			return 1;
		}
	}
	tern_store_close(&st);
	tern_directory_free(&dir);
	tern_trust_free(&trust);
	tern_signkey_free(&key);
	tern_config_free(&cfg);
	return 0;
}

/* tern audit export | verify: the auditor's tools (docs/audit.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <jansson.h>
#include <sodium.h>

#include <tern/config.h>
#include <tern/error.h>
#include <tern/merkle.h>
#include <tern/note.h>
#include <tern/trust.h>
#include <tern/v1/audit.pb-c.h>
#include <tern/v1/directory.pb-c.h>

#include "audit.h"
#include "audit_archive.h"
#include "audit_cmd.h"
#include "commands.h"
#include "nodeapi.h"
#include "pbuf.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("Usage: tern audit export -c CONF --out FILE [--from T] [--to T] [--previous OLD]\n"
	      "       tern audit verify FILE...\n"
	      "       tern audit replay FILE... [--case ID] [--json]\n"
	      "       tern audit prove -c CONF MSGID > proof.json\n"
	      "       tern audit check-proof proof.json\n"
	      "       tern audit reanchor -c NODECONF [--json]\n"
	      "\n"
	      "export  writes a self-contained archive of a node's or broker's audit log: its\n"
	      "        entries up to the latest signed checkpoint, the checkpoints with their\n"
	      "        cosignatures, and the CA certificate, CRL and directory needed to check\n"
	      "        them. It reads the store read-only, so the daemon may keep running.\n"
	      "        --from/--to T  only entries recorded in that time (2026-11-23 or\n"
	      "                       2026-11-23T10:00:00Z, UTC), up to the checkpoint that\n"
	      "                       signs the last of them\n"
	      "        --previous OLD continue from the archive OLD exported before: start\n"
	      "                       where it ended and prove this log extends it\n"
	      "verify  checks archives offline, with no network and no clock: the directory's\n"
	      "        CA signature, the log owner's certificate, every checkpoint's signature\n"
	      "        and cosignatures, that each checkpoint's root is the Merkle root of the\n"
	      "        entries before it, the proof to the previous export, and that every\n"
	      "        checkpoint a peer's log says it cosigned matches this log. The result\n"
	      "        goes to stdout: exit 0 with an ok line per archive when clean, exit 1\n"
	      "        with one line per finding; exit 3 when an archive cannot be read (said\n"
	      "        on stderr).\n"
	      "replay  folds several agencies' archives into each case's timeline and reports\n"
	      "        findings with evidence: integrity (verify's findings), gaps, orphans,\n"
	      "        alterations, duplicates, missing receipts and attachments, and every\n"
	      "        breach of the case workflow (wrong role, illegal transition, wrong\n"
	      "        state, superseded...; docs/audit.md lists them all). Exit 1 with\n"
	      "        findings.\n"
	      "prove   prints every log entry about MSGID with its inclusion proof, the newest\n"
	      "        signed checkpoint and the log's verifier key, as JSON.\n"
	      "check-proof  checks such a proof with nothing else: compare its vkey with the\n"
	      "        one the agency published.\n"
	      "reanchor  after a node's store was put back from a backup, its log no longer\n"
	      "        extends what its witnesses cosigned, and they refuse it (rollback, fork,\n"
	      "        bad-proof). Asks the running node to have them take its newest\n"
	      "        checkpoint as their new start, for the next 10 minutes; each keeps what\n"
	      "        it gives up (a REANCHORED entry), and the node's log records the\n"
	      "        request. 'tern info' shows who cosigns the log, or refuses it.\n"
	      "        Exit 0 when asked (the node's log says which witness re-anchored),\n"
	      "        2 for a broker's configuration (its log is not witnessed), 3 when\n"
	      "        the node is not running.\n"
	      "\n"
	      "Examples:\n"
	      "  tern audit export -c /tmp/fed/unhcr/node.conf --out unhcr.tern-audit\n"
	      "  tern audit export -c /tmp/fed/unhcr/node.conf --previous unhcr.tern-audit \\\n"
	      "      --out unhcr-2.tern-audit\n"
	      "  tern audit verify unhcr.tern-audit sweden.tern-audit hub.tern-audit\n"
	      "  tern audit replay *.tern-audit --case AMM-26C00417\n"
	      "  tern audit prove -c /tmp/fed/sweden/node.conf 01a2... > proof.json\n"
	      "  tern audit reanchor -c /etc/tern/sweden/node.conf\n",
	      f);
}

static int read_file(const char *path, ProtobufCBinaryData *out)
{
	uint8_t *buf;
	size_t len;
	int rc = tern_file_read(path, 1u << 20, &buf, &len);

	if (rc == TERN_OK) {
		out->data = buf;
		out->len = len;
	}
	return rc;
}

/* A PEM certificate (crl = 0) or CRL (crl = 1) file, as DER: PEM has slack
 * (whitespace, base64 padding bits) that would let bytes change unnoticed. */
static int read_der(const char *path, int crl, ProtobufCBinaryData *out)
{
	ProtobufCBinaryData pem;
	unsigned char *der = NULL;
	BIO *bio;
	int rc, n = -1;

	if ((rc = read_file(path, &pem)) != TERN_OK)
		return rc;
	if ((bio = BIO_new_mem_buf(pem.data, (int)pem.len)) != NULL) {
		if (crl) {
			X509_CRL *x = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
			n = x ? i2d_X509_CRL(x, &der) : -1;
			X509_CRL_free(x);
		} else {
			X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			n = x ? i2d_X509(x, &der) : -1;
			X509_free(x);
		}
		BIO_free(bio);
	}
	free(pem.data);
	if (n <= 0)
		return tern_fail(TERN_EMALFORMED, "%s is not a PEM %s", path,
		                 crl ? "CRL" : "certificate");
	out->data = malloc((size_t)n);
	if (out->data == NULL) {
		OPENSSL_free(der);
		return TERN_ENOMEM;
	}
	memcpy(out->data, der, (size_t)n);
	out->len = (size_t)n;
	OPENSSL_free(der);
	return TERN_OK;
}

/* "2026-11-23" (midnight UTC) or "2026-11-23T10:00:00Z": ms since the epoch. */
static int parse_time(const char *s, int64_t *ms)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, strlen(s) == 10 ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != 0)
		return -1;
	*ms = (int64_t)timegm(&tm) * 1000;
	return 0;
}

/* The roots of the complete subtrees left of start, largest first: with
 * them a verifier hashes on from entry start as if it had every entry before. */
static int frontier_of(MDB_txn *txn, const tern_audit_dbs *d, uint64_t start,
                       ProtobufCBinaryData **out, size_t *n)
{
	tern_hash f[64];
	int count, rc;

	*n = 0;
	if ((rc = tern_audit_frontier_at(txn, d, start, f, &count)) != TERN_OK)
		return rc;
	if ((*out = calloc(64, sizeof(**out))) == NULL)
		return TERN_ENOMEM;
	for (int i = 0; i < count; i++) {
		if (((*out)[*n].data = malloc(TERN_HASH_LEN)) == NULL)
			return TERN_ENOMEM;
		(*out)[*n].len = TERN_HASH_LEN;
		memcpy((*out)[(*n)++].data, f[i], TERN_HASH_LEN);
	}
	return TERN_OK;
}

/* The newest checkpoint of an earlier export of the same log. */
static int previous_checkpoint(const char *path, const char *origin, char **note, uint64_t *size)
{
	uint8_t *buf = NULL;
	size_t len;
	ProtobufCMessage *m = NULL;
	Tern__V1__AuditArchive *a;
	char o[TERN_NOTE_NAME_MAX + 1];
	tern_hash root;
	int rc;

	if ((rc = tern_file_read(path, 1u << 30, &buf, &len)) != TERN_OK)
		return rc;
	rc = tern_pb_unpack(&tern__v1__audit_archive__descriptor, buf, len, len, &m);
	free(buf);
	if (rc != TERN_OK)
		return tern_fail(TERN_EMALFORMED, "%s is not an audit archive", path);
	a = (Tern__V1__AuditArchive *)m;
	if (a->n_checkpoints == 0 || strcmp(a->origin, origin) != 0 ||
	    tern_checkpoint_parse(a->checkpoints[a->n_checkpoints - 1], o, size, root) != TERN_OK) {
		tern_pb_free(&m);
		return tern_fail(TERN_EINVAL, "%s is not an earlier export of %s", path, origin);
	}
	*note = strdup(a->checkpoints[a->n_checkpoints - 1]);
	tern_pb_free(&m);
	return *note ? TERN_OK : TERN_ENOMEM;
}

static int export_archive(const char *conf, const char *outpath, int64_t from, int64_t to,
                          const char *prev)
{
	static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};
	Tern__V1__AuditArchive a = TERN__V1__AUDIT_ARCHIVE__INIT;
	tern_config *cfg = NULL;
	tern_store *s = NULL;
	tern_audit_dbs d;
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	char *note = NULL, origin[TERN_NOTE_NAME_MAX + 1] = "", *prev_note = NULL;
	uint64_t csize = 0, size = 0, start = 0, end, prev_size = 0, *cp_sizes = NULL;
	char **cp_notes = NULL;
	size_t ncps = 0;
	tern_hash root, proof[TERN_MERKLE_MAX_PROOF];
	ProtobufCBinaryData pproof[TERN_MERKLE_MAX_PROOF];
	const char *sect = "node";
	uint8_t *packed = NULL;
	size_t plen;
	int rc, ret = CLI_FAIL;

	if (cli_config_load_either("audit", conf, &cfg, &sect) != CLI_OK)
		return CLI_FAIL;
	if ((rc = tern_store_open(tern_config_get(cfg, sect, "data_dir"), dbnames,
	                          TERN_STORE_RDONLY, 0, &s)) != TERN_OK) {
		cli_fail(rc, "cannot open the store of %s", conf);
		goto out;
	}
	tern_audit_dbs_at(s, 0, &d);
	if ((rc = tern_store_read_begin(s, &txn)) != TERN_OK ||
	    (rc = tern_audit_head(txn, &d, &size, root)) != TERN_OK) {
		cli_fail(rc, "cannot read the audit log");
		goto out;
	}
	if (tern_audit_latest_checkpoint(txn, &d, &note, &csize) != TERN_OK) {
		fprintf(stderr,
		        "tern audit: the log has no signed checkpoint yet; start the daemon "
		        "and try again in a few seconds\n");
		goto out;
	}
	snprintf(origin, sizeof(origin), "%.*s", (int)strcspn(note, "\n"), note);
	/* Every checkpoint, oldest first, with its size. */
	mdb_cursor_open(txn, d.checkpoints, &c);
	while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0 && k.mv_size == 8) {
		uint64_t *ns = realloc(cp_sizes, (ncps + 1) * sizeof(*ns));
		char **nn = realloc(cp_notes, (ncps + 1) * sizeof(*nn));
		if (ns)
			cp_sizes = ns;
		if (nn)
			cp_notes = nn;
		if (ns == NULL || nn == NULL)
			goto out;
		cp_sizes[ncps] = tern_be64_get(k.mv_data);
		cp_notes[ncps++] = strndup(v.mv_data, v.mv_size);
	}
	mdb_cursor_close(c);
	c = NULL;
	if (prev) {
		if (previous_checkpoint(prev, origin, &prev_note, &prev_size) != TERN_OK) {
			cli_fail(TERN_EINVAL, "--previous");
			goto out;
		}
		if (prev_size > csize) {
			fprintf(stderr,
			        "tern audit: %s covers %llu entries, more than this log's %llu "
			        "signed ones: not an earlier export of this log\n",
			        prev, (unsigned long long)prev_size, (unsigned long long)csize);
			goto out;
		}
		start = prev_size;
	}
	/* Only what a signature covers goes in; the rest waits for the next checkpoint. */
	end = csize;
	if (from != INT64_MIN || to != INT64_MAX) {
		uint64_t i = 0, first = UINT64_MAX, last = 0;
		mdb_cursor_open(txn, d.entries, &c);
		while (i < csize && mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
			ProtobufCMessage *em = NULL;
			if (tern_pb_unpack(&tern__v1__audit_entry__descriptor, v.mv_data, v.mv_size,
			                   65536, &em) == TERN_OK) {
				int64_t at = ((Tern__V1__AuditEntry *)em)->at;
				if (at >= from && at <= to) {
					if (first == UINT64_MAX)
						first = i;
					last = i + 1;
				}
			}
			tern_pb_free(&em);
			i++;
		}
		mdb_cursor_close(c);
		c = NULL;
		if (first == UINT64_MAX) {
			fprintf(stderr, "tern audit: no signed entry falls in the time range\n");
			ret = CLI_NO;
			goto out;
		}
		if (from != INT64_MIN)
			start = first;
		/* Up to the first checkpoint that signs the last entry in range. */
		end = csize;
		for (size_t j = 0; j < ncps; j++)
			if (cp_sizes[j] >= last && cp_sizes[j] < end)
				end = cp_sizes[j];
	}
	if (start > end) {
		fprintf(stderr, "tern audit: nothing to export after the previous export\n");
		ret = CLI_NO;
		goto out;
	}
	a.schema_version = 1;
	a.log_id = (char *)tern_config_get(cfg, sect, "id");
	a.origin = origin;
	a.first_index = start;
	if (start > 0 && (rc = frontier_of(txn, &d, start, &a.prefix_frontier,
	                                   &a.n_prefix_frontier)) != TERN_OK) {
		cli_fail(rc, "cannot read the audit log");
		goto out;
	}
	a.entries = calloc(end - start + 1, sizeof(ProtobufCBinaryData));
	a.checkpoints = calloc(ncps + 1, sizeof(char *));
	if (a.entries == NULL || a.checkpoints == NULL)
		goto out;
	if (end > start) {
		uint8_t kb[8];
		tern_be64_put(kb, start);
		k = (MDB_val){8, kb};
		mdb_cursor_open(txn, d.entries, &c);
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
		     rc == 0 && a.n_entries < end - start;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			a.entries[a.n_entries].data = v.mv_data; /* valid until the txn ends */
			a.entries[a.n_entries++].len = v.mv_size;
		}
		if (a.n_entries < end - start) {
			cli_fail(TERN_EMALFORMED,
			         "the audit log lacks entries its checkpoint signed");
			goto out;
		}
	}
	for (size_t j = 0; j < ncps; j++)
		if (cp_sizes[j] >= start && cp_sizes[j] <= end)
			a.checkpoints[a.n_checkpoints++] = cp_notes[j];
	if (prev_note && prev_size > 0) {
		size_t pl = 0;
		if (tern_audit_consistency_proof(txn, &d, prev_size, end, proof, &pl) == TERN_OK) {
			for (size_t q = 0; q < pl; q++)
				pproof[q] = (ProtobufCBinaryData){TERN_HASH_LEN, proof[q]};
			a.previous_checkpoint = prev_note;
			a.previous_proof = pproof;
			a.n_previous_proof = pl;
		}
	}
	if (read_der(tern_config_get(cfg, "federation", "ca"), 0, &a.ca_certificate) != TERN_OK ||
	    read_der(tern_config_get(cfg, "federation", "crl"), 1, &a.crl) != TERN_OK ||
	    read_file(tern_config_get(cfg, "federation", "directory"), &a.directory) != TERN_OK) {
		cli_fail(TERN_EIO, "cannot read the federation files named in %s", conf);
		goto out;
	}
	if ((rc = tern_pb_pack(&a.base, &packed, &plen)) != TERN_OK ||
	    (rc = tern_file_write(outpath, packed, plen, 0640)) != TERN_OK) {
		cli_fail(rc, "cannot write %s", outpath);
		goto out;
	}
	printf("%s: entries %llu to %llu, %zu checkpoints (log size %llu, signed up to %llu)%s, "
	       "origin %s\n",
	       outpath, (unsigned long long)start, (unsigned long long)end, a.n_checkpoints,
	       (unsigned long long)size, (unsigned long long)csize,
	       prev_note ? ", with a consistency proof to the previous export" : "", origin);
	ret = CLI_OK;
out:
	free(packed);
	free(a.ca_certificate.data);
	free(a.crl.data);
	free(a.directory.data);
	for (size_t i = 0; i < a.n_prefix_frontier; i++)
		free(a.prefix_frontier[i].data);
	free(a.prefix_frontier);
	free(a.checkpoints); /* the notes are cp_notes' */
	for (size_t i = 0; i < ncps; i++)
		free(cp_notes[i]);
	free(cp_notes);
	free(cp_sizes);
	free(a.entries);
	free(note);
	free(prev_note);
	if (c)
		mdb_cursor_close(c);
	if (txn)
		mdb_txn_abort(txn);
	tern_store_close(&s);
	tern_config_free(&cfg);
	return ret;
}

/* --- prove / check-proof ------------------------------------------------------------ */

static char *b64(const uint8_t *p, size_t n)
{
	size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);

	if (out)
		sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Every entry about msgid, each with an inclusion proof against the newest
 * checkpoint, and that checkpoint with the log's verifier key. */
static int prove(const char *conf, const char *msgid)
{
	static const char *const dbnames[] = {TERN_AUDIT_DBNAMES, NULL};
	tern_config *cfg = NULL;
	tern_store *s = NULL;
	tern_signkey *key = NULL;
	tern_audit_dbs d;
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	char *note = NULL, *vkey = NULL, origin[TERN_NOTE_NAME_MAX + 1];
	const char *sect = "node";
	json_t *out = NULL, *arr;
	uint64_t csize = 0, i = 0;
	int ret = CLI_FAIL;

	if (cli_config_load_either("audit", conf, &cfg, &sect) != CLI_OK)
		goto out;
	if (tern_store_open(tern_config_get(cfg, sect, "data_dir"), dbnames, TERN_STORE_RDONLY, 0,
	                    &s) != TERN_OK ||
	    tern_signkey_load(tern_config_get(cfg, "keys", "signing_key"), &key) != TERN_OK) {
		cli_fail(TERN_EIO, "cannot open the log or key of %s", conf);
		goto out;
	}
	tern_audit_dbs_at(s, 0, &d);
	tern_store_read_begin(s, &txn);
	if (tern_audit_latest_checkpoint(txn, &d, &note, &csize) != TERN_OK || csize == 0) {
		fprintf(stderr, "tern audit: no signed checkpoint covers any entry yet\n");
		goto out;
	}
	snprintf(origin, sizeof(origin), "%.*s", (int)strcspn(note, "\n"), note);
	tern_note_vkey_format(origin, tern_signkey_public(key), &vkey);
	arr = json_array();
	mdb_cursor_open(txn, d.entries, &c);
	while (i < csize && mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
		ProtobufCMessage *e = NULL;
		if (tern_pb_unpack(&tern__v1__audit_entry__descriptor, v.mv_data, v.mv_size, 65536,
		                   &e) == TERN_OK &&
		    strcmp(((Tern__V1__AuditEntry *)e)->message_id, msgid) == 0) {
			char *eb = b64(v.mv_data, v.mv_size);
			json_array_append_new(
			    arr, json_pack("{s:I, s:s}", "index", (json_int_t)i, "entry", eb));
			free(eb);
		}
		tern_pb_free(&e);
		i++;
	}
	if (json_array_size(arr) == 0) {
		fprintf(stderr, "tern audit: no entry about %s is covered by a checkpoint yet\n",
		        msgid);
		json_decref(arr);
		goto out;
	}
	{
		size_t j;
		json_t *it;
		json_array_foreach(arr, j, it)
		{
			uint64_t index = (uint64_t)json_integer_value(json_object_get(it, "index"));
			tern_hash proof[TERN_MERKLE_MAX_PROOF];
			size_t plen = 0;
			json_t *pa;
			int rc = tern_audit_inclusion_proof(txn, &d, index, csize, proof, &plen);
			if (rc != TERN_OK) {
				cli_fail(rc, "cannot prove entry %llu", (unsigned long long)index);
				json_decref(arr);
				goto out;
			}
			pa = json_array();
			for (size_t q = 0; q < plen; q++) {
				char *h = b64(proof[q], TERN_HASH_LEN);
				json_array_append_new(pa, json_string(h));
				free(h);
			}
			json_object_set_new(it, "proof", pa);
		}
	}
	out = json_pack("{s:s, s:s, s:I, s:s, s:o}", "vkey", vkey, "checkpoint", note, "tree_size",
	                (json_int_t)csize, "message_id", msgid, "entries", arr);
	json_dumpf(out, stdout, JSON_INDENT(2));
	putchar('\n');
	ret = CLI_OK;
out:
	json_decref(out);
	if (c)
		mdb_cursor_close(c);
	if (txn)
		mdb_txn_abort(txn);
	free(note);
	free(vkey);
	tern_signkey_free(&key);
	tern_store_close(&s);
	tern_config_free(&cfg);
	return ret;
}

/* Checks a proof from `prove` with nothing but the proof and the log's
 * verifier key (compare it with the one the agency published). */
static int check_proof(const char *path)
{
	json_error_t je;
	json_t *p = json_load_file(path, 0, &je), *it;
	char name[TERN_NOTE_NAME_MAX + 1], origin[TERN_NOTE_NAME_MAX + 1], *text = NULL;
	uint8_t pub[32];
	uint64_t size;
	tern_hash root;
	const char *note;
	size_t j;
	int ok = 1;

	if (p == NULL) {
		fprintf(stderr, "tern audit: %s: %s\n", path, je.text);
		return CLI_FAIL;
	}
	note = json_string_value(json_object_get(p, "checkpoint"));
	if (tern_note_vkey_parse(json_string_value(json_object_get(p, "vkey")) ?: "", name, pub) !=
	        TERN_OK ||
	    note == NULL ||
	    audit_sig_checked(tern_note_verify(note, strlen(note), name, pub, &text)) != TERN_OK ||
	    tern_checkpoint_parse(text, origin, &size, root) != TERN_OK) {
		printf("%s: the checkpoint is not signed by the given key\n", path);
		json_decref(p);
		free(text);
		return CLI_NO;
	}
	free(text);
	json_array_foreach(json_object_get(p, "entries"), j, it)
	{
		uint8_t eb[65536];
		tern_hash leaf, proof[TERN_MERKLE_MAX_PROOF];
		size_t el = 0, pl = 0, q;
		json_t *h;
		const char *e = json_string_value(json_object_get(it, "entry"));
		ProtobufCMessage *m = NULL;

		if (e == NULL ||
		    sodium_base642bin(eb, sizeof(eb), e, strlen(e), NULL, &el, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    tern_pb_unpack_canonical(&tern__v1__audit_entry__descriptor, eb, el, el, &m) !=
		        TERN_OK ||
		    strcmp(((Tern__V1__AuditEntry *)m)->message_id,
		           json_string_value(json_object_get(p, "message_id")) ?: "") != 0) {
			printf("%s: entry %zu is not an audit entry about the message\n", path, j);
			tern_pb_free(&m);
			ok = 0;
			continue;
		}
		tern_pb_free(&m);
		tern_merkle_leaf_hash(eb, el, leaf);
		json_array_foreach(json_object_get(it, "proof"), q, h)
		{
			size_t hl = 0;
			const char *hs = json_string_value(h);
			if (pl == TERN_MERKLE_MAX_PROOF || hs == NULL ||
			    sodium_base642bin(proof[pl], TERN_HASH_LEN, hs, strlen(hs), NULL, &hl,
			                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
			    hl != TERN_HASH_LEN)
				break;
			pl++;
		}
		if (tern_merkle_verify_inclusion(
		        (uint64_t)json_integer_value(json_object_get(it, "index")), size, leaf,
		        (const tern_hash *)proof, pl, root) != TERN_OK) {
			printf("%s: entry %zu is not in the signed log\n", path, j);
			ok = 0;
		}
	}
	if (ok)
		printf("%s: ok: %zu entries about %s are in %s's log of %llu entries\n", path,
		       json_array_size(json_object_get(p, "entries")),
		       json_string_value(json_object_get(p, "message_id")), origin,
		       (unsigned long long)size);
	json_decref(p);
	return ok ? CLI_OK : CLI_NO;
}

/* Asks the running node to have its witnesses re-anchor its log. */
static int reanchor(const char *conf, int json)
{
	json_t *req, *resp = NULL;
	struct tern_config *cfg = NULL;
	const char *section = NULL;
	char when[40];
	int rc;

	/* A broker's log is checkpointed, not witnessed: say so, rather than
	 * every broker setting a node's configuration does not take. */
	if ((rc = cli_config_load_either("audit", conf, &cfg, &section)) != CLI_OK)
		return rc;
	tern_config_free(&cfg);
	if (strcmp(section, "broker") == 0)
		return cli_usage_error(
		    "audit",
		    "reanchor is for a node: %s is a broker's configuration, and "
		    "a broker's log is not witnessed",
		    conf);
	if ((req = json_pack("{s:s}", "op", "audit.reanchor")) == NULL)
		return cli_fail(TERN_ENOMEM, "out of memory");
	rc = nodeapi_call("audit", conf, req, 10000, &resp);
	json_decref(req);
	if (rc == CLI_OK) {
		if (json) {
			json_dumpf(resp, stdout, JSON_INDENT(2));
			putchar('\n');
		} else {
			nodeapi_time(json_integer_value(json_object_get(resp, "until")), when,
			             sizeof(when));
			printf("asked this node's witnesses to re-anchor its audit log, until %s;\n"
			       "the node's log says which did (\"re-anchored this log\")\n",
			       when);
		}
	}
	json_decref(resp);
	return rc;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"case", required_argument, NULL, 'C'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"from", required_argument, NULL, 'f'},
	                                     {"to", required_argument, NULL, 't'},
	                                     {"previous", required_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL, *out = NULL, *sub, *case_id = NULL, *prev = NULL;
	int64_t from = INT64_MIN, to = INT64_MAX;
	int c, json = 0;

	if (argc < 2 || cli_wants_help(argc, argv)) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	sub = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'C':
			case_id = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'p':
			prev = optarg;
			break;
		case 'f':
		case 't':
			if (parse_time(optarg, c == 'f' ? &from : &to) != 0)
				return cli_usage_error("audit",
				                       "--%s wants a time like 2026-11-23 or "
				                       "2026-11-23T10:00:00Z, not '%s'",
				                       c == 'f' ? "from" : "to", optarg);
			if (c == 't' && strlen(optarg) == 10)
				to += 86399999; /* a date means the whole day */
			break;
		default:
			return cli_usage_error("audit", "unknown option");
		}
	}
	if (strcmp(sub, "export") == 0) {
		if (conf == NULL || out == NULL || optind != argc)
			return cli_usage_error("audit", "export needs -c CONF and --out FILE");
		return export_archive(conf, out, from, to, prev);
	}
	if (strcmp(sub, "verify") == 0) {
		if (optind >= argc)
			return cli_usage_error("audit", "verify needs at least one archive");
		return audit_verify(argc - optind, argv + optind);
	}
	if (strcmp(sub, "replay") == 0) {
		if (optind >= argc)
			return cli_usage_error("audit", "replay needs at least one archive");
		return audit_replay(argc - optind, argv + optind, case_id, json);
	}
	if (strcmp(sub, "prove") == 0) {
		if (conf == NULL || argc - optind != 1)
			return cli_usage_error("audit", "prove needs -c CONF and MSGID");
		return prove(conf, argv[optind]);
	}
	if (strcmp(sub, "check-proof") == 0) {
		if (argc - optind != 1)
			return cli_usage_error("audit", "check-proof needs a proof file");
		return check_proof(argv[optind]);
	}
	if (strcmp(sub, "reanchor") == 0) {
		if (conf == NULL || optind != argc)
			return cli_usage_error("audit",
			                       "reanchor needs -c NODECONF and nothing else");
		return reanchor(conf, json);
	}
	return cli_usage_error(
	    "audit",
	    "unknown subcommand '%s' (export, verify, replay, prove, check-proof, reanchor)", sub);
}

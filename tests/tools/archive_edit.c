/* tern-archive-edit IN OUT OP [ARG]: rewrites an audit archive the way a
 * dishonest operator might, to test that verify and replay notice.
 *   delete I         remove entry I
 *   insert I         insert a copy of entry I before it
 *   swap I           swap entries I and I+1
 *   drop KIND MSGID  remove the first entry of KIND ("RECEIVED") about MSGID
 *   resign KEYFILE   replace every checkpoint by one the owner's key signs over
 *                    the entries as they now are (no cosignatures: an agency
 *                    rewriting its own history cannot forge its peers')
 * The archive stays well-formed; only the history changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/keys.h>
#include <tern/merkle.h>
#include <tern/note.h>
#include <tern/v1/audit.pb-c.h>

#include "pbuf.h"
#include "util.h"

static int resign(Tern__V1__AuditArchive *a, const char *keyfile, char ***notes)
{
	tern_signkey *key = NULL;
	tern_hash *leaves = malloc((a->n_entries + 1) * sizeof(*leaves)), root;
	char *body = NULL;

	if (leaves == NULL || tern_signkey_load(keyfile, &key) != TERN_OK)
		return -1;
	for (size_t i = 0; i < a->n_entries; i++)
		tern_merkle_leaf_hash(a->entries[i].data, a->entries[i].len, leaves[i]);
	tern_merkle_root(leaves, a->n_entries, root);
	*notes = calloc(1, sizeof(char *));
	if (*notes == NULL ||
	    tern_checkpoint_format(a->origin, a->n_entries, root, &body) != TERN_OK ||
	    tern_note_sign(body, a->origin, key, &(*notes)[0]) != TERN_OK)
		return -1;
	free(body);
	free(leaves);
	tern_signkey_free(&key);
	return 0;
}

int main(int argc, char **argv)
{
	Tern__V1__AuditArchive *a;
	ProtobufCMessage *m = NULL;
	ProtobufCBinaryData *e, *ne, tmp;
	char **cps, **new_cps = NULL;
	uint8_t *buf, *out;
	size_t len, olen, i = 0, n, ncps;
	int rc;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: tern-archive-edit IN OUT delete|insert|swap INDEX\n"
		                "       tern-archive-edit IN OUT drop KIND MSGID\n"
		                "       tern-archive-edit IN OUT resign KEYFILE\n");
		return 2;
	}
	if (tern_file_read(argv[1], 1u << 30, &buf, &len) != TERN_OK ||
	    tern_pb_unpack(&tern__v1__audit_archive__descriptor, buf, len, len, &m) != TERN_OK) {
		fprintf(stderr, "tern-archive-edit: %s\n", tern_errdetail());
		return 1;
	}
	a = (Tern__V1__AuditArchive *)m;
	e = a->entries;
	n = a->n_entries;
	cps = a->checkpoints;
	ncps = a->n_checkpoints;
	if (strcmp(argv[3], "drop") == 0) {
		const ProtobufCEnumValue *k = protobuf_c_enum_descriptor_get_value_by_name(
		    &tern__v1__audit_entry__kind__descriptor, argc == 6 ? argv[4] : "");
		for (i = 0; k && argc == 6 && i < n; i++) {
			ProtobufCMessage *em = NULL;
			int hit = tern_pb_unpack(&tern__v1__audit_entry__descriptor, e[i].data,
			                         e[i].len, e[i].len, &em) == TERN_OK &&
			          (int)((Tern__V1__AuditEntry *)em)->kind == k->value &&
			          strcmp(((Tern__V1__AuditEntry *)em)->message_id, argv[5]) == 0;
			tern_pb_free(&em);
			if (hit)
				break;
		}
		if (k == NULL || i == n) {
			fprintf(stderr, "tern-archive-edit: no %s entry about %s\n", argv[4],
			        argc == 6 ? argv[5] : "");
			return 1;
		}
	} else if (strcmp(argv[3], "resign") != 0) {
		i = strtoul(argv[4], NULL, 10);
		if (i + 1 >= n) {
			fprintf(stderr, "tern-archive-edit: index %zu out of range\n", i);
			return 1;
		}
	}
	/* Edit a copy of the entry array; the decoded archive keeps its own, so
	 * it frees exactly what it allocated. */
	ne = malloc((n + 1) * sizeof(*e));
	memcpy(ne, e, n * sizeof(*e));
	a->entries = ne;
	if (strcmp(argv[3], "delete") == 0 || strcmp(argv[3], "drop") == 0) {
		memmove(&ne[i], &ne[i + 1], (n - i - 1) * sizeof(*e));
		a->n_entries = n - 1;
	} else if (strcmp(argv[3], "insert") == 0) {
		memmove(&ne[i + 1], &ne[i], (n - i) * sizeof(*e));
		a->n_entries = n + 1;
	} else if (strcmp(argv[3], "swap") == 0) {
		tmp = ne[i];
		ne[i] = ne[i + 1];
		ne[i + 1] = tmp;
	} else if (strcmp(argv[3], "resign") == 0) {
		if (a->first_index != 0 || resign(a, argv[4], &new_cps) != 0) {
			fprintf(stderr, "tern-archive-edit: cannot re-sign with %s\n", argv[4]);
			return 1;
		}
		a->checkpoints = new_cps;
		a->n_checkpoints = 1;
	} else {
		fprintf(stderr, "tern-archive-edit: unknown operation %s\n", argv[3]);
		return 2;
	}
	rc = tern_pb_pack(&a->base, &out, &olen) == TERN_OK &&
	     tern_file_write(argv[2], out, olen, 0640) == TERN_OK;
	a->entries = e;
	a->n_entries = n;
	a->checkpoints = cps;
	a->n_checkpoints = ncps;
	if (new_cps) {
		free(new_cps[0]);
		free(new_cps);
	}
	free(ne);
	if (!rc)
		return 1;
	free(out);
	tern_pb_free(&m);
	free(buf);
	return 0;
}

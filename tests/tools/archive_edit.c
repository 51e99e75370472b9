/* tern-archive-edit IN OUT OP INDEX: rewrites an audit archive the way a
 * dishonest operator might, to test that verify notices.
 *   delete I     remove entry I
 *   insert I     insert a copy of entry I before it
 *   swap I       swap entries I and I+1
 * The archive stays well-formed; only the history changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/v1/audit.pb-c.h>

#include "pbuf.h"
#include "util.h"

int main(int argc, char **argv)
{
	Tern__V1__AuditArchive *a;
	ProtobufCMessage *m = NULL;
	ProtobufCBinaryData *e, *ne, tmp;
	uint8_t *buf, *out;
	size_t len, olen, i, n;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: tern-archive-edit IN OUT delete|insert|swap INDEX\n");
		return 2;
	}
	i = strtoul(argv[4], NULL, 10);
	if (tern_file_read(argv[1], 1u << 30, &buf, &len) != TERN_OK ||
	    tern_pb_unpack(&tern__v1__audit_archive__descriptor, buf, len, len, &m) != TERN_OK) {
		fprintf(stderr, "tern-archive-edit: %s\n", tern_errdetail());
		return 1;
	}
	a = (Tern__V1__AuditArchive *)m;
	e = a->entries;
	n = a->n_entries;
	if (i + 1 >= n) {
		fprintf(stderr, "tern-archive-edit: index %zu out of range\n", i);
		return 1;
	}
	/* Edit a copy of the entry array; the decoded archive keeps its own, so
	 * it frees exactly what it allocated. */
	ne = malloc((n + 1) * sizeof(*e));
	memcpy(ne, e, n * sizeof(*e));
	a->entries = ne;
	if (strcmp(argv[3], "delete") == 0) {
		memmove(&ne[i], &ne[i + 1], (n - i - 1) * sizeof(*e));
		a->n_entries = n - 1;
	} else if (strcmp(argv[3], "insert") == 0) {
		memmove(&ne[i + 1], &ne[i], (n - i) * sizeof(*e));
		a->n_entries = n + 1;
	} else if (strcmp(argv[3], "swap") == 0) {
		tmp = ne[i];
		ne[i] = ne[i + 1];
		ne[i + 1] = tmp;
	} else {
		fprintf(stderr, "tern-archive-edit: unknown operation %s\n", argv[3]);
		return 2;
	}
	rc = tern_pb_pack(&a->base, &out, &olen) == TERN_OK &&
	     tern_file_write(argv[2], out, olen, 0640) == TERN_OK;
	a->entries = e;
	a->n_entries = n;
	free(ne);
	if (!rc)
		return 1;
	free(out);
	tern_pb_free(&m);
	free(buf);
	return 0;
}

/* tern-forge NODECONF SIGNER_DIR TYPE TO [BODY]: puts into a STOPPED node's
 * outbox an envelope the node itself would never make, to test what the
 * broker and recipients refuse:
 *   SIGNER_DIR  a node directory whose node.key signs it and whose id is the
 *               header's sender (another node's: a forged sender; the node's
 *               own with a TYPE its role may not send: a wrong role)
 *   TO          recipients, comma-separated (a recipient whose role may not
 *               receive TYPE: a wrong recipient role)
 *   BODY        the body as JSON (default: the type's example), which the
 *               node's own checks would refuse (a workflow violation); its
 *               caseId is the header's
 * Prints the message id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/config.h>
#include <tern/directory.h>
#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/keys.h>
#include <tern/msgtype.h>
#include <tern/trust.h>

#include "node_store.h"
#include "pbuf.h"
#include "util.h"

struct forged {
	node_out m;
	tern_store *s;
};

/* Exactly what the node does for a send: the outbox entry and its record. */
static int apply(MDB_txn *txn, void *arg)
{
	struct forged *f = arg;

	return node_store_enqueue(txn, f->s, &f->m, 0);
}

int main(int argc, char **argv)
{
	tern_config *cfg = NULL;
	tern_trust *trust = NULL;
	tern_directory *dir = NULL;
	tern_signkey *key = NULL;
	tern_store *store = NULL;
	ProtobufCMessage *body = NULL;
	const tern_msgtype *t;
	char path[1024], signer[64], *text = NULL, err[256], id[37];
	uint8_t *packed = NULL, *env = NULL;
	size_t plen, elen;
	const char *to[16], *slash, *case_id = "FORGED-1";
	size_t nto = 0;
	char *save = NULL;
	int rc;

	if ((argc != 5 && argc != 6) || (t = tern_msgtype_by_name(argv[3])) == NULL) {
		fprintf(stderr,
		        "usage: tern-forge NODECONF SIGNER_DIR TYPE TO[,TO...] [BODY.json]\n");
		return 2;
	}
	for (char *tok = strtok_r(argv[4], ",", &save); tok && nto < 16;
	     tok = strtok_r(NULL, ",", &save))
		to[nto++] = tok;
	if (tern_config_load(argv[1], TERN_CONFIG_NODE, &cfg) != TERN_OK ||
	    tern_trust_load(tern_config_get(cfg, "federation", "ca"),
	                    tern_config_get(cfg, "federation", "crl"), &trust) != TERN_OK ||
	    tern_directory_load(tern_config_get(cfg, "federation", "directory"), trust, 0, &dir) !=
	        TERN_OK) {
		fprintf(stderr, "tern-forge: cannot load %s: %s\n", argv[1], tern_errdetail());
		return 1;
	}
	snprintf(path, sizeof(path), "%s/node.key", argv[2]);
	if (tern_signkey_load(path, &key) != TERN_OK) {
		fprintf(stderr, "tern-forge: %s\n", tern_errdetail());
		return 1;
	}
	slash = strrchr(argv[2], '/');
	snprintf(signer, sizeof(signer), "%s", slash ? slash + 1 : argv[2]);
	if (argc == 6) {
		size_t tl;
		if (tern_file_read(argv[5], 1 << 22, (uint8_t **)&text, &tl) != TERN_OK) {
			fprintf(stderr, "tern-forge: %s\n", tern_errdetail());
			return 1;
		}
		text[tl] = '\0';
	} else if (tern_example_json(t->name, &text) != TERN_OK) {
		return 1;
	}
	if (tern_json_parse_text(t->desc, text, strlen(text), &body, err, sizeof(err)) != TERN_OK ||
	    tern_pb_pack(body, &packed, &plen) != TERN_OK) {
		fprintf(stderr, "tern-forge: the body: %s\n", err);
		return 1;
	}
	if (argc == 6) {
		const ProtobufCFieldDescriptor *fd =
		    protobuf_c_message_descriptor_get_field_by_name(t->desc, "case_id");
		if (fd)
			case_id = *(const char *const *)((const char *)body + fd->offset);
	}
	{
		tern_seal_params p = {.sender = signer,
		                      .sign_key = key,
		                      .recipients = to,
		                      .n_recipients = nto,
		                      .type = t->type,
		                      .case_id = case_id,
		                      .body = packed,
		                      .body_len = plen};
		if ((rc = tern_envelope_seal(&p, dir, &env, &elen, id)) != TERN_OK) {
			fprintf(stderr, "tern-forge: seal: %s\n", tern_errdetail());
			return 1;
		}
	}
	if (node_store_open(tern_config_get(cfg, "node", "data_dir"), 0, &store) != TERN_OK) {
		fprintf(stderr, "tern-forge: store: %s\n", tern_errdetail());
		return 1;
	}
	{
		struct forged f = {
		    {id, env, elen, t->name, case_id, 0, to, nto, "", "", NULL, NULL}, store};
		if ((rc = tern_store_write(store, apply, &f)) != TERN_OK) {
			fprintf(stderr, "tern-forge: write: %s\n", tern_errdetail());
			return 1;
		}
	}
	tern_store_close(&store);
	printf("%s\n", id);
	free(env);
	free(packed);
	tern_json_message_free(&body);
	free(text);
	tern_signkey_free(&key);
	tern_directory_free(&dir);
	tern_trust_free(&trust);
	tern_config_free(&cfg);
	return 0;
}

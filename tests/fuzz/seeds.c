/* tern-fuzz-seeds OUTDIR: valid inputs for the fuzz targets, made with the
 * federation in $TERN_FUZZ_FED (its keys are made per run, so these seeds
 * cannot be committed): envelopes, frames, messages, JSON, checkpoints.
 * The attachment frames and the binary upload.append use the fixed attachment
 * (fuzz_att) only: they are the same every run, and tests/fuzz/corpus holds
 * a copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tern/envelope.h>
#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/msgtype.h>
#include <tern/note.h>
#include <tern/merkle.h>
#include <tern/v1/api.pb-c.h>
#include <tern/v1/wire.pb-c.h>

#include "fuzz.h"
#include "pbuf.h"

static const char *out;

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void put_prefixed(const char *target, const char *name, uint8_t b, const void *d, size_t len)
{
	uint8_t *buf = malloc(len + 1);

	buf[0] = b;
	memcpy(buf + 1, d, len);
	put(target, name, buf, len + 1);
	free(buf);
}

static void put_frame(const char *name, Tern__V1__Frame *f)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	f->version = 1;
	if (tern_pb_pack(&f->base, &buf, &len) != TERN_OK) {
		fprintf(stderr, "frame %s: %s\n", name, tern_errdetail());
		exit(1);
	}
	/* Both targets: fuzz_frame decodes them, fuzz_chunk handles them. */
	put("frame", name, buf, len);
	put("chunk", name, buf, len);
	free(buf);
}

/* Every attachment frame: each chunk of the fixed attachment as a put and as
 * a delivered chunk (with its proof), and the other frames. */
static void chunk_seeds(void)
{
	const struct fuzz_att *a = fuzz_att();
	char name[64];

	for (uint64_t k = 0; k < FUZZ_ATT_CHUNKS; k++) {
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__ChunkPut cp = TERN__V1__CHUNK_PUT__INIT;
		Tern__V1__Chunk c = TERN__V1__CHUNK__INIT;
		tern_hash proof[TERN_MERKLE_MAX_PROOF];
		ProtobufCBinaryData pd[TERN_MERKLE_MAX_PROOF];
		size_t np = 0;
		if (tern_merkle_inclusion_proof(a->leaves, FUZZ_ATT_CHUNKS, k, proof, &np) !=
		    TERN_OK)
			exit(1);
		for (size_t i = 0; i < np; i++)
			pd[i] = (ProtobufCBinaryData){TERN_HASH_LEN, proof[i]};
		/* A seed that does not verify would leave the open path unfuzzed. */
		if (tern_attach_chunk_verify(
		        &a->seal, k, a->sealed + tern_attach_slot(FUZZ_ATT_CHUNK, k),
		        tern_attach_chunk_len(FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK, k) +
		            TERN_ATTACH_TAG_LEN,
		        (const tern_hash *)proof, np) != TERN_OK) {
			fprintf(stderr, "chunk %llu: %s\n", (unsigned long long)k,
			        tern_errdetail());
			exit(1);
		}
		cp.message_id = c.message_id = FUZZ_ATT_MSGID;
		cp.index = c.index = k;
		cp.data.data = c.data.data = a->sealed + tern_attach_slot(FUZZ_ATT_CHUNK, k);
		cp.data.len = c.data.len =
		    tern_attach_chunk_len(FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK, k) + TERN_ATTACH_TAG_LEN;
		cp.n_proof = c.n_proof = np;
		cp.proof = c.proof = pd;
		f.body_case = TERN__V1__FRAME__BODY_CHUNK_PUT;
		f.chunk_put = &cp;
		snprintf(name, sizeof(name), "chunk-put-%llu", (unsigned long long)k);
		put_frame(name, &f);
		f.body_case = TERN__V1__FRAME__BODY_CHUNK;
		f.chunk = &c;
		snprintf(name, sizeof(name), "chunk-%llu", (unsigned long long)k);
		put_frame(name, &f);
	}
	{
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__ChunkPut q = TERN__V1__CHUNK_PUT__INIT; /* a question: no data */
		Tern__V1__ChunkAck ack = TERN__V1__CHUNK_ACK__INIT;
		Tern__V1__ChunkGet get = TERN__V1__CHUNK_GET__INIT;
		Tern__V1__Chunk none = TERN__V1__CHUNK__INIT;
		Tern__V1__ChunkDone done = TERN__V1__CHUNK_DONE__INIT;
		q.message_id = ack.message_id = get.message_id = none.message_id = done.message_id =
		    FUZZ_ATT_MSGID;
		f.body_case = TERN__V1__FRAME__BODY_CHUNK_PUT;
		f.chunk_put = &q;
		put_frame("chunk-put-question", &f);
		ack.have = 2;
		f.body_case = TERN__V1__FRAME__BODY_CHUNK_ACK;
		f.chunk_ack = &ack;
		put_frame("chunk-ack", &f);
		ack.reason_code = "chunk-mismatch";
		ack.reason_text = "proof does not lead to the root";
		put_frame("chunk-ack-refused", &f);
		get.from = 1;
		get.count = 8;
		f.body_case = TERN__V1__FRAME__BODY_CHUNK_GET;
		f.chunk_get = &get;
		put_frame("chunk-get", &f);
		none.reason_code = "unknown-transfer";
		none.reason_text = "no such transfer";
		f.body_case = TERN__V1__FRAME__BODY_CHUNK;
		f.chunk = &none;
		put_frame("chunk-refused", &f);
		f.body_case = TERN__V1__FRAME__BODY_CHUNK_DONE;
		f.chunk_done = &done;
		put_frame("chunk-done", &f);
		done.reason_code = "chunk-mismatch";
		put_frame("chunk-done-gave-up", &f);
	}
	{
		/* The bulk lane's opening (wire.proto, BulkHello). */
		Tern__V1__Frame f = TERN__V1__FRAME__INIT;
		Tern__V1__BulkHello h = TERN__V1__BULK_HELLO__INIT;
		Tern__V1__BulkWelcome w = TERN__V1__BULK_WELCOME__INIT;
		h.node_id = "unhcr";
		h.session = w.session = 0x1234567890abcdefULL;
		f.body_case = TERN__V1__FRAME__BODY_BULK_HELLO;
		f.bulk_hello = &h;
		put_frame("bulk-hello", &f);
		f.body_case = TERN__V1__FRAME__BODY_BULK_WELCOME;
		f.bulk_welcome = &w;
		put_frame("bulk-welcome", &f);
	}
	{
		/* A binary upload.append as fuzz_apiconn reads it: the chunk size
		 * byte, then the length prefix with its top bit set. */
		Tern__V1__ApiRequest req = TERN__V1__API_REQUEST__INIT;
		Tern__V1__ApiUploadAppend up = TERN__V1__API_UPLOAD_APPEND__INIT;
		uint8_t *buf = NULL, *in;
		size_t len = 0;
		req.v = 1;
		req.op_case = TERN__V1__API_REQUEST__OP_UPLOAD_APPEND;
		req.upload_append = &up;
		up.upload_id = FUZZ_ATT_MSGID;
		up.offset = 16384;
		up.data.data = a->plain;
		up.data.len = 300;
		if (tern_pb_pack(&req.base, &buf, &len) != TERN_OK ||
		    (in = malloc(len + 5)) == NULL)
			exit(1);
		in[0] = 0x3f;
		in[1] = (uint8_t)(0x80 | (len >> 24));
		in[2] = (uint8_t)(len >> 16);
		in[3] = (uint8_t)(len >> 8);
		in[4] = (uint8_t)len;
		memcpy(in + 5, buf, len);
		put("apiconn", "binary-upload-append", in, len + 5);
		free(in);
		free(buf);
	}
}

int main(int argc, char **argv)
{
	const struct fuzz_fed *fed;
	const tern_msgtype *t = tern_msgtype_all();
	static const char *const to[] = {"sweden"};

	if (argc != 2) {
		fprintf(stderr, "usage: TERN_FUZZ_FED=DIR tern-fuzz-seeds OUTDIR\n");
		return 2;
	}
	out = argv[1];
	mkdir(out, 0755);
	fed = fuzz_fed();
	tern_sealed *batch[16];
	size_t nbatch = 0;
	for (uint8_t i = 0; t[i].name; i++) {
		char *json = NULL, err[256];
		ProtobufCMessage *m = NULL;
		uint8_t *bin = NULL, *env = NULL, *frame;
		size_t blen = 0, elen = 0;
		if (tern_example_json(t[i].name, &json) != TERN_OK ||
		    tern_json_parse_text(t[i].desc, json, strlen(json), &m, err, sizeof(err)) !=
		        TERN_OK ||
		    tern_pb_pack(m, &bin, &blen) != TERN_OK) {
			fprintf(stderr, "example %s: %s\n", t[i].name, tern_errdetail());
			return 1;
		}
		put_prefixed("json", t[i].name, i, json, strlen(json));
		put_prefixed("message", t[i].name, i, bin, blen);
		tern_seal_params p = {.sender = "unhcr",
		                      .sign_key = fed->unhcr_sign,
		                      .recipients = to,
		                      .n_recipients = 1,
		                      .type = t[i].type,
		                      .case_id = "FUZZ-1",
		                      .body = bin,
		                      .body_len = blen};
		if (tern_envelope_seal(&p, fed->dir, &env, &elen, NULL) != TERN_OK) {
			fprintf(stderr, "seal %s: %s\n", t[i].name, tern_errdetail());
			return 1;
		}
		put("envelope", t[i].name, env, elen);
		if (i == 0) {
			/* One declaring the fixed attachment: its seal signed in the
			 * header, so mutations reach tern_attach_seals_check. */
			const struct fuzz_att *a = fuzz_att();
			const Tern__V1__AttachmentSeal *seals[] = {&a->seal};
			tern_seal_params pa = p;
			uint8_t *aenv = NULL;
			size_t alen = 0;
			pa.message_id = FUZZ_ATT_MSGID;
			pa.content_key = a->content_key;
			pa.attachments = seals;
			pa.n_attachments = 1;
			if (tern_envelope_seal(&pa, fed->dir, &aenv, &alen, NULL) != TERN_OK) {
				fprintf(stderr, "seal with an attachment: %s\n", tern_errdetail());
				return 1;
			}
			put("envelope", "with-attachment", aenv, alen);
			free(aenv);
		}
		if (nbatch < sizeof(batch) / sizeof(batch[0]) &&
		    tern_envelope_seal_unsigned(&p, fed->dir, &batch[nbatch], NULL) == TERN_OK)
			nbatch++;
		{
			Tern__V1__Frame f = TERN__V1__FRAME__INIT;
			Tern__V1__Submit s = TERN__V1__SUBMIT__INIT;
			size_t fl;
			s.envelope.data = env;
			s.envelope.len = elen;
			f.version = 1;
			f.body_case = TERN__V1__FRAME__BODY_SUBMIT;
			f.submit = &s;
			tern_pb_pack(&f.base, &frame, &fl);
			put("frame", t[i].name, frame, fl);
			free(frame);
		}
		free(env);
		free(bin);
		free(json);
		tern_json_message_free(&m);
	}
	{
		/* The same messages under one batch signature, so that mutations
		 * reach the proof and root checks. */
		uint8_t *envs[16];
		size_t lens[16];
		if (nbatch < 2 ||
		    tern_envelope_sign(batch, nbatch, fed->unhcr_sign, envs, lens) != TERN_OK) {
			fprintf(stderr, "batch sign: %s\n", tern_errdetail());
			return 1;
		}
		for (size_t i = 0; i < nbatch; i++) {
			char name[64];
			snprintf(name, sizeof(name), "batch-%zu", i);
			put("envelope", name, envs[i], lens[i]);
			free(envs[i]);
			tern_sealed_free(&batch[i]);
		}
	}
	chunk_seeds();
	{
		tern_hash root = {1, 2, 3};
		char *body = NULL, *note = NULL, *cosig = NULL, *both = NULL;
		tern_checkpoint_format("tern/tern-dev/unhcr", 42, root, &body);
		tern_note_sign(body, "tern/tern-dev/unhcr", fed->unhcr_sign, &note);
		tern_cosign(body, "tern/tern-dev/unhcr", fed->unhcr_sign, 1795000000, &cosig);
		if (note == NULL || cosig == NULL || asprintf(&both, "%s%s", note, cosig) < 0)
			return 1;
		put("checkpoint", "signed", note, strlen(note));
		put("checkpoint", "cosigned", both, strlen(both));
		free(body);
		free(note);
		free(cosig);
		free(both);
	}
	return 0;
}

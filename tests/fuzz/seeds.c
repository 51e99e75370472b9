/* tern-fuzz-seeds OUTDIR: valid inputs for the fuzz targets, made with the
 * federation in $TERN_FUZZ_FED (its keys are made per run, so these seeds
 * cannot be committed): envelopes, frames, messages, JSON, checkpoints. */
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

/* Envelopes as a broker and a recipient see them: verify against the
 * directory, then (as sweden) open the sealed body and check its business
 * message, after checking the attachments its header declares. Seeds are
 * valid envelopes (one with an attachment), so mutations reach every stage. */
#include <stdlib.h>

#include <tern/attach.h>
#include <tern/envelope.h>
#include <tern/msgtype.h>
#include <tern/validate.h>

#include "fuzz.h"
#include "pbuf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fed();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_fed *fed = fuzz_fed();
	/* No clock: any created-at passes, so old seeds stay valid. */
	tern_verify_opts o = {.max_size = 1u << 20, .max_skew_ms = INT64_MAX / 4};
	tern_envelope *env = NULL;
	tern_sigcache *sigs = NULL;
	uint8_t *body = NULL;
	size_t blen = 0;
	int rc;

	/* Twice through a fresh signature cache: a batch root remembered the
	 * first time must give the same verdict the second. */
	if (tern_sigcache_new(16, &sigs) != 0)
		abort();
	o.sigcache = sigs;
	rc = tern_envelope_verify(data, size, fed->dir, &o, &env);
	tern_envelope_free(&env);
	if (tern_envelope_verify(data, size, fed->dir, &o, &env) != rc)
		abort();
	tern_sigcache_free(&sigs);
	if (rc != 0)
		return 0;
	/* The attachments a signed header declares, as broker and node check
	 * them before any chunk (the [limits] defaults). */
	{
		const Tern__V1__Header *h = tern_envelope_header(env);
		tern_attach_seals_check((const Tern__V1__AttachmentSeal *const *)h->attachments,
		                        h->n_attachments, TERN_ATTACH_MAX_SIZE_DEFAULT,
		                        TERN_ATTACH_MAX_TOTAL_DEFAULT);
	}
	tern_envelope_authorize(env);
	if (tern_envelope_open(env, "sweden", fed->sweden_seal, &body, &blen) == 0) {
		const tern_msgtype *t = tern_msgtype_by_type(tern_envelope_header(env)->type);
		ProtobufCMessage *m = NULL;
		tern_violations v;
		if (t && tern_pb_unpack(t->desc, body, blen, blen, &m) == 0)
			tern_validate(m, 0, &v);
		tern_pb_free(&m);
		tern_envelope_body_free(&body, blen);
	}
	tern_envelope_free(&env);
	return 0;
}

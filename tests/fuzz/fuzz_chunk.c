/* Attachment frames from a peer (wire.proto: ChunkPut, ChunkAck, ChunkGet,
 * Chunk, ChunkDone), decoded as tern_hop_decode does and then handled as the
 * broker and the recipient handle them, against a fixed attachment
 * (fuzz_att): a put's or a chunk's proof hashes taken as broker/chunk.c and
 * nodes/xfer_in.c take them, the chunk checked against the seal with
 * tern_attach_chunk_verify, and, once it verifies, opened with the key. A
 * chunk that verifies is the signed one: it must open, to its plaintext. */
#include <stdlib.h>
#include <string.h>

#include <tern/attach.h>
#include <tern/error.h>
#include <tern/reason.h>

#include "fuzz.h"
#include "hop.h"
#include "pbuf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_att();
	return 0;
}

static void chunk(uint64_t index, const ProtobufCBinaryData *data, size_t n_proof,
                  const ProtobufCBinaryData *proof)
{
	const struct fuzz_att *a = fuzz_att();
	tern_hash hashes[TERN_MERKLE_MAX_PROOF];
	uint8_t *plain;
	size_t plen = 0;

	/* As the recipient: at most TERN_MERKLE_MAX_PROOF hashes of 32 bytes. */
	if (n_proof > TERN_MERKLE_MAX_PROOF)
		return;
	for (size_t i = 0; i < n_proof; i++) {
		if (proof[i].len != TERN_HASH_LEN)
			return;
		memcpy(hashes[i], proof[i].data, TERN_HASH_LEN);
	}
	if (tern_attach_chunk_verify(&a->seal, index, data->data, data->len,
	                             (const tern_hash *)hashes, n_proof) != TERN_OK)
		return;
	if (index >= FUZZ_ATT_CHUNKS || data->len < TERN_ATTACH_TAG_LEN ||
	    (plain = malloc(data->len)) == NULL)
		abort(); /* verified a chunk the seal does not have */
	if (tern_attach_chunk_open(a->key, FUZZ_ATT_MSGID, 0, index, data->data, data->len, plain,
	                           &plen) != TERN_OK ||
	    plen != tern_attach_chunk_len(FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK, index) ||
	    memcmp(plain, a->plain + index * FUZZ_ATT_CHUNK, plen) != 0)
		abort(); /* a chunk the seal signs that is not the sender's */
	free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Tern__V1__Frame *f = NULL;
	tern_reason r;

	if (tern_hop_decode(data, size, 1u << 20, &f) != 0)
		return 0;
	switch (f->body_case) {
	case TERN__V1__FRAME__BODY_CHUNK_PUT:
		chunk(f->chunk_put->index, &f->chunk_put->data, f->chunk_put->n_proof,
		      f->chunk_put->proof);
		break;
	case TERN__V1__FRAME__BODY_CHUNK:
		if (f->chunk->reason_code[0])
			tern_reason_from_code(f->chunk->reason_code, &r);
		else
			chunk(f->chunk->index, &f->chunk->data, f->chunk->n_proof, f->chunk->proof);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_GET:
		/* The broker's answer starts at this chunk's slot in the spool. */
		if (f->chunk_get->from < FUZZ_ATT_CHUNKS)
			(void)tern_attach_slot(FUZZ_ATT_CHUNK, f->chunk_get->from);
		(void)tern_attach_chunk_len(FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK, f->chunk_get->from);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_ACK:
		if (f->chunk_ack->reason_code[0])
			tern_reason_from_code(f->chunk_ack->reason_code, &r);
		break;
	case TERN__V1__FRAME__BODY_CHUNK_DONE:
		if (f->chunk_done->reason_code[0])
			tern_reason_from_code(f->chunk_done->reason_code, &r);
		break;
	default:
		break;
	}
	tern_pb_free((ProtobufCMessage **)&f);
	return 0;
}

/* Transfer records as they come back from a store that is not trusted more
 * than the wire: the first byte picks the reader, the rest is the record.
 *   0: a node's incoming transfer (node_xin_record_read)
 *   1: a node's outgoing transfer (node_xout_record_read)
 *   2: a node's upload (node_upload_record_read)
 * The node's readers take protobuf, or the JSON an earlier release wrote.
 *   3: the broker's transfer record (binary, xfer_rec_decode)
 * What a reader accepts must be what the node and broker then compute with
 * safely: chunk counts and lengths for every attachment it gives. */
#include <stdlib.h>

#include <tern/attach.h>
#include <tern/error.h>

#include "fuzz.h"
#include "xfer.h"
#include "xfer_rec.h"

/* What the transfer code computes from an accepted attachment. */
static void use(uint64_t size, uint32_t chunk_size)
{
	uint64_t n;

	if (size == 0 || size > TERN_ATTACH_MAX_SIZE_LIMIT || chunk_size < TERN_ATTACH_CHUNK_MIN ||
	    chunk_size > TERN_ATTACH_CHUNK_MAX)
		abort(); /* accepted what the readers promise to refuse */
	n = tern_attach_chunks(size, chunk_size);
	if (n == 0 || tern_attach_chunk_len(size, chunk_size, n - 1) == 0 ||
	    tern_attach_chunk_len(size, chunk_size, n) != 0)
		abort();
	(void)tern_attach_slot(chunk_size, n - 1);
}

static void node_record(uint8_t which, const uint8_t *data, size_t size)
{
	if (which == 0) {
		struct node_xin_rec *r = malloc(sizeof(*r));
		if (r && node_xin_record_read(data, size, r) == TERN_OK) {
			if (r->natt == 0 || r->natt > TERN_ATTACH_MAX_COUNT || r->att >= r->natt ||
			    r->have > tern_attach_chunks(r->atts[r->att].size,
			                                 r->atts[r->att].chunk_size))
				abort();
			for (size_t i = 0; i < r->natt; i++)
				use(r->atts[i].size, r->atts[i].chunk_size);
		}
		free(r);
	} else if (which == 1) {
		struct node_att atts[TERN_ATTACH_MAX_COUNT];
		size_t n = 0;
		int done = 0;
		if (node_xout_record_read(data, size, atts, &n, &done) == TERN_OK) {
			if (n == 0 || n > TERN_ATTACH_MAX_COUNT)
				abort();
			for (size_t i = 0; i < n; i++)
				use(atts[i].size, atts[i].chunk_size);
		}
	} else {
		uint64_t sz = 0;
		int64_t expires = 0;
		if (node_upload_record_read(data, size, &sz, &expires) == TERN_OK && sz == 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 4 < 3) {
		node_record(data[0] % 4, data + 1, size - 1);
	} else {
		xfer_rec *r = calloc(1, sizeof(*r));
		if (r && xfer_rec_decode(data + 1, size - 1, r) == TERN_OK) {
			Tern__V1__AttachmentSeal seal;
			if (r->nrcpt > XFER_MAX_RCPTS || r->natt > TERN_ATTACH_MAX_COUNT)
				abort();
			for (size_t i = 0; i < r->natt; i++) {
				xfer_seal(r, (uint32_t)i, &seal);
				use(seal.size, seal.chunk_size);
			}
		}
		free(r);
	}
	return 0;
}

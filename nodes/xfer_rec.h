/* The node's transfer and upload records (JSON in the store: NS_XIN,
 * NS_XOUT, NS_UPLOADS) read back into their fields, checked as a peer's input
 * is: the store is not trusted more than the wire. Pure functions, so that the
 * loaders and the fuzzer (tests/fuzz/fuzz_xfer.c) read records the same way. */
#ifndef TERN_NODE_XFER_REC_H
#define TERN_NODE_XFER_REC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tern/attach.h>

#include "node_int.h"

/* An incoming transfer (xfer_in.c's record). */
struct node_xin_rec {
	char sender[64];
	int64_t until;
	uint32_t att;  /* the attachment being fetched, < natt */
	uint64_t have; /* its chunks committed */
	size_t natt;   /* 1..TERN_ATTACH_MAX_COUNT */
	struct node_att atts[TERN_ATTACH_MAX_COUNT];
};

/* TERN_EMALFORMED (tern_errdetail() says what) for a record the node did not
 * write: no sender, no attachment or too many, a size of 0, a chunk size out
 * of bounds, a root or SHA-256 that is not 64 hex digits, att past the end. */
int node_xin_record_parse(const json_t *rec, struct node_xin_rec *out);

/* An outgoing transfer (xfer_out.c's record): its attachments, *natt of them
 * (at most TERN_ATTACH_MAX_COUNT, into atts; no SHA-256 is recorded), and
 * whether the broker holds them all. TERN_EMALFORMED as above. */
int node_xout_record_parse(const json_t *rec, struct node_att *atts, size_t *natt, int *done);

/* An upload (upload.c's record): its size (over 0) and when it expires; the
 * offset is its file's length. TERN_EMALFORMED otherwise. */
int node_upload_record_parse(const json_t *rec, uint64_t *size, int64_t *expires);

#endif

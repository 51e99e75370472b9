/* The node's transfer and upload records (NS_XIN, NS_XOUT, NS_UPLOADS:
 * proto/tern/v1/nodestore.proto's TransferInRecord, TransferOutRecord and
 * UploadRecord), written, and read back into their fields checked as a
 * peer's input is: the store is not trusted more than the wire. A store an
 * earlier release wrote holds them as JSON objects with the same field
 * names (roots and digests in hex); the readers take either form, the
 * writers write protobuf. The readers are pure functions, so that the
 * loaders and the fuzzer (tests/fuzz/fuzz_xfer.c) read records the same way.
 *
 * Decoded records are protobuf-c messages allocated with malloc: free them
 * with protobuf_c_message_free_unpacked(&m->base, NULL). */
#ifndef TERN_NODE_XFER_REC_H
#define TERN_NODE_XFER_REC_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include <tern/attach.h>
#include <tern/v1/nodestore.pb-c.h>

#include "node_int.h"

typedef Tern__V1__TransferInRecord node_xin_pb;
typedef Tern__V1__TransferOutRecord node_xout_pb;
typedef Tern__V1__UploadRecord node_upload_pb;

/* An incoming transfer (xfer_in.c's record), checked. */
struct node_xin_rec {
	char sender[64];
	int64_t until;
	uint32_t att;  /* the attachment being fetched, < natt */
	uint64_t have; /* its chunks committed, at most its chunk count */
	size_t natt;   /* 1..TERN_ATTACH_MAX_COUNT */
	struct node_att atts[TERN_ATTACH_MAX_COUNT];
};

/* The stored bytes, either form, as the record, not yet checked: a field
 * the JSON form held with the wrong type reads as one the checks refuse.
 * TERN_ENOMEM when memory ran out (never taken for damage); TERN_EMALFORMED
 * when the bytes are neither form. */
int node_xin_record_decode(const void *data, size_t len, node_xin_pb **out);
int node_xout_record_decode(const void *data, size_t len, node_xout_pb **out);
int node_upload_record_decode(const void *data, size_t len, node_upload_pb **out);

/* TERN_EMALFORMED (tern_errdetail() says what) for a record the node did not
 * write: no sender, no attachment or too many, a size of 0, a chunk size out
 * of bounds, a root or SHA-256 that is not 32 bytes, att past the end, more
 * chunks committed than the attachment has. */
int node_xin_record_parse(const node_xin_pb *rec, struct node_xin_rec *out);

/* An outgoing transfer (xfer_out.c's record): its attachments, *natt of them
 * (at most TERN_ATTACH_MAX_COUNT, into atts; no SHA-256 is recorded), and
 * whether the broker holds them all. TERN_EMALFORMED as above. */
int node_xout_record_parse(const node_xout_pb *rec, struct node_att *atts, size_t *natt, int *done);

/* An upload (upload.c's record): its size (over 0) and when it expires; the
 * offset is its file's length. TERN_EMALFORMED otherwise. */
int node_upload_record_parse(const node_upload_pb *rec, uint64_t *size, int64_t *expires);

/* Decode and parse in one: TERN_ENOMEM, or TERN_EMALFORMED for bytes that
 * are neither form or a record that fails its checks. */
int node_xin_record_read(const void *data, size_t len, struct node_xin_rec *out);
int node_xout_record_read(const void *data, size_t len, struct node_att *atts, size_t *natt,
                          int *done);
int node_upload_record_read(const void *data, size_t len, uint64_t *size, int64_t *expires);

/* The stored form of atts[0..n) (n at most TERN_ATTACH_MAX_COUNT), into the
 * caller's pb and ptrs (ptrs[i] = &pb[i]; the bytes point into atts, which
 * must outlive them); the SHA-256 only if with_sha. */
void node_xfer_atts_pb(const struct node_att *atts, size_t n, int with_sha,
                       Tern__V1__TransferAttachment *pb, Tern__V1__TransferAttachment **ptrs);

#endif

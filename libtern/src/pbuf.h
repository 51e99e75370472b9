/* Bounded protobuf-c decoding.
 *
 * protobuf-c 1.4 has no size or depth limit and may allocate ~13x its input.
 * Every decode of bytes from outside the process goes through here: the input
 * size is capped and all allocations come out of a byte budget.
 */
#ifndef TERN_PBUF_H
#define TERN_PBUF_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Decoded memory may use at most this many times the input size (plus a floor). */
#define TERN_PB_BUDGET_FACTOR 16
#define TERN_PB_BUDGET_FLOOR 65536

/* Unpacks buf (at most max_len bytes) as desc. TERN_ETOOBIG if longer;
 * TERN_EMALFORMED if it does not decode, or if decoded it would take more
 * than its budget (TERN_PB_BUDGET_FLOOR + TERN_PB_BUDGET_FACTOR bytes per
 * byte of input: the input's fault, not a lack of memory); TERN_ENOMEM only
 * when the process is out of memory (which may pass).
 * Free the result with tern_pb_free(). */
int tern_pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                   size_t max_len, ProtobufCMessage **out);
void tern_pb_free(ProtobufCMessage **msg);

/* tern_pb_unpack, then refuses (TERN_EMALFORMED) bytes that are not the
 * canonical encoding of what they decode to: unknown fields anywhere,
 * repeated scalar fields, strings cut at an embedded NUL, non-minimal
 * varints, fields out of order. Use it for signed bytes, so that every
 * reader of the signed bytes, in any language, sees what Tern checked. */
int tern_pb_unpack_canonical(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                             size_t max_len, ProtobufCMessage **out);

/* TERN_OK when every string field of m, in nested messages too, is valid
 * UTF-8 (protobuf-c does not check; proto3 JSON, and so every reader of what
 * Tern signs, requires it); else TERN_EMALFORMED naming the field. */
int tern_pb_strings_utf8(const ProtobufCMessage *m);

/* Packs msg into a malloc'd buffer. */
int tern_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len);

#endif

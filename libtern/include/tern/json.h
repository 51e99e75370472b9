/* The proto3 JSON mapping for Tern's messages, over protobuf-c descriptors.
 *
 * One generic codec for every message type (no per-message code):
 * - field names are lowerCamelCase, derived from the proto name (protobuf-c
 *   has no json_name); on input the original snake_case name is accepted too;
 * - enums are their value names (on input a defined integer value is accepted);
 * - 64-bit integers are decimal strings on output (string or number on input,
 *   range-checked); 32-bit integers are numbers (numeric strings accepted);
 * - bytes are standard base64 on output (standard or URL-safe, padded or not,
 *   on input);
 * - repeated fields are arrays, sub-messages objects, a oneof holds at most
 *   one member; proto3 default values are omitted on output; null on input
 *   means "default";
 * - an unknown field, a wrong JSON type, a duplicate key or an out-of-range
 *   value is an error naming the field path ("members[1].sex: expected
 *   string"); error texts name paths, never values;
 * - strings must be valid UTF-8: encoding a message holding a bad string
 *   fails (TERN_EMALFORMED) rather than emit bad JSON.
 * Not supported (Tern's schemas use none): map fields (seen as arrays of
 * key/value entries) and the well-known types' special forms.
 *
 * Limits: messages nest at most TERN_JSON_MAX_DEPTH levels; JSON text is at
 * most TERN_JSON_MAX_TEXT bytes.
 *
 * Ownership: a decoded message is allocated with protobuf-c's default
 * allocator (malloc). Free it with protobuf_c_message_free_unpacked(msg, NULL)
 * or tern_json_message_free(). Do NOT free it with tern_pb_free(), and do not
 * free a message from tern_pb_unpack() with these.
 */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_JSON_MAX_DEPTH 32
#define TERN_JSON_MAX_TEXT (4u * 1024 * 1024)

/* Encodes msg as a JSON object. *out is a new reference (json_decref it).
 * TERN_EMALFORMED (detail names the path) if a string is not valid UTF-8 or
 * a float is not representable; TERN_ENOMEM; TERN_EINVAL on NULL arguments. */
int tern_json_encode(const ProtobufCMessage *msg, json_t **out);

/* Decodes the JSON object in as a message of type desc. On failure returns
 * TERN_EMALFORMED (or TERN_ENOMEM) and, if err is not NULL, writes
 * "path: reason" into err (errlen bytes, always NUL-terminated); the same
 * sentence is the libtern error detail. in is not modified. */
int tern_json_decode(const ProtobufCMessageDescriptor *desc, const json_t *in,
                     ProtobufCMessage **out, char *err, size_t errlen);

/* Parses JSON text (len bytes, need not be NUL-terminated) and decodes it.
 * A syntax error gives TERN_EMALFORMED with err "line:column: reason" (the
 * parser's text, with any quoted fragment of the input removed); text over
 * TERN_JSON_MAX_TEXT gives TERN_ETOOBIG. Duplicate object keys are refused. */
int tern_json_parse_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                         ProtobufCMessage **out, char *err, size_t errlen);

/* Writes msg as JSON text: keys in the descriptor's field order, 2-space
 * indentation, a final newline. *out is malloc'd; the caller frees it. */
int tern_json_dump_text(const ProtobufCMessage *msg, char **out);

/* json_dumps(v, flags) into *out (malloc'd; the caller frees it), read
 * back and compared with v before it is given: TERN_ENOMEM when the text
 * could not be made, or does not say v (jansson can drop bytes when short
 * of memory and still answer). For JSON a store keeps. */
int tern_json_dumps_exact(const json_t *v, size_t flags, char **out);

/* JSON read from a store: json_loadb(buf, len, 0), telling a shortage
 * from damage. jansson 2.14 seldom says out_of_memory when an allocation
 * fails (it says "invalid syntax", or nothing, and can drop a byte and
 * still answer), so every allocation it makes on this thread is watched:
 * TERN_ENOMEM if one failed, whatever it answered; TERN_EMALFORMED when the
 * bytes are not JSON with memory to spare. *out a new reference. */
int tern_json_loadb_stored(const void *buf, size_t len, json_t **out);

/* Frees a message returned by tern_json_decode/tern_json_parse_text and sets
 * *msg to NULL. */
void tern_json_message_free(ProtobufCMessage **msg);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF), else 0. */
int tern_utf8_valid(const char *s, size_t len);

/* The lowerCamelCase JSON name of a proto field name ("date_of_birth" ->
 * "dateOfBirth") into buf; truncated to len-1 bytes. */
void tern_json_name(const char *proto_name, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif

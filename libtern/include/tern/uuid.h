/* Message ids: RFC 9562 UUIDv7 in canonical lower-case text
 * ("0190b5c2-7d4e-7a3b-9f12-3c4d5e6f7a8b").
 *
 * The first 48 bits are the Unix time in milliseconds, so ids sort by
 * creation time. Within one process ids are strictly increasing, even when
 * several are made in the same millisecond or the clock steps back.
 */
#ifndef TERN_UUID_H
#define TERN_UUID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_UUID_STRLEN 36

/* Writes a fresh UUIDv7 and its NUL into out. Thread-safe. */
int tern_uuid_v7(char out[TERN_UUID_STRLEN + 1]);

/* 1 if s is a UUID in canonical form: 36 characters, 8-4-4-4-12 lower-case
 * hex digits and hyphens. Any version and variant; 0 otherwise (also for
 * NULL). */
int tern_uuid_valid(const char *s);

/* The 48-bit millisecond timestamp of a UUIDv7 in canonical form; TERN_EINVAL
 * if s is not a canonical version-7 UUID. */
int tern_uuid_v7_time(const char *s, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif

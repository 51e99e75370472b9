/* A malloc that fails on demand, for the tests of what a shortage does: an
 * executable that includes this (in one file) has its own malloc, calloc and
 * realloc, which stand in front of the C library's for libtern, protobuf-c
 * and OpenSSL too (ELF interposition).
 * - While malloc_fails is set, every allocation fails.
 * - malloc_fail_at = n makes the n-th allocation from now fail, once, and
 *   sets malloc_failed; a test that counts n up from 1 makes each allocation
 *   of a call fail in turn, until a run sets no malloc_failed.
 *
 * Not under AddressSanitizer, whose own malloc must stay in front: there
 * MALLOC_CAN_FAIL is 0, and a test that needs it calls skip(). Nor under
 * valgrind, whose malloc replaces this one: the tests that sweep
 * allocations would fail there (the suite does not run under valgrind). */
#ifndef TERN_TEST_FAILMALLOC_H
#define TERN_TEST_FAILMALLOC_H

#include <stddef.h>

/* gcc says __SANITIZE_ADDRESS__; clang 14 says it only through __has_feature. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERN_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TERN_TEST_ASAN)
#define MALLOC_CAN_FAIL 0
#else
#define MALLOC_CAN_FAIL 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
static int malloc_fails;
static long malloc_fail_at;
static int malloc_failed;

static int alloc_fails(void)
{
	if (malloc_fails)
		return 1;
	if (malloc_fail_at > 0 && --malloc_fail_at == 0) {
		malloc_failed = 1;
		return 1;
	}
	return 0;
}

void *malloc(size_t size)
{
	return alloc_fails() ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	return alloc_fails() ? NULL : __libc_realloc(p, size);
}
#endif

#endif

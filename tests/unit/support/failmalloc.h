/* A malloc that fails on demand, for the tests of what a shortage does: an
 * executable that includes this (in one file) has its own malloc, which
 * stands in front of the C library's for libtern too (ELF interposition).
 * Every malloc fails while malloc_fails is set.
 *
 * Not under AddressSanitizer, whose own malloc must stay in front: there
 * MALLOC_CAN_FAIL is 0, and a test that needs it calls skip(). */
#ifndef TERN_TEST_FAILMALLOC_H
#define TERN_TEST_FAILMALLOC_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define MALLOC_CAN_FAIL 0
#else
#define MALLOC_CAN_FAIL 1
extern void *__libc_malloc(size_t size);
static int malloc_fails;

void *malloc(size_t size)
{
	return malloc_fails ? NULL : __libc_malloc(size);
}
#endif

#endif

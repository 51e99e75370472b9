#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <tern/crypto.h>
#include <tern/error.h>
#include <tern/uuid.h>

#include "util.h"

/* RFC 9562 section 6.2, method 2: the 74 random bits (12 of rand_a, 62 of
 * rand_b) act as a counter seeded at random each millisecond and advanced by
 * a random step inside it, which keeps ids unguessable and increasing. */
#define RAND_B_BITS 62
#define RAND_B_LIMIT (UINT64_C(1) << RAND_B_BITS)

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint16_t last_a;
static uint64_t last_b;

int tern_uuid_v7(char out[TERN_UUID_STRLEN + 1])
{
	uint8_t b[16];
	int64_t ms;
	uint16_t ra;
	uint64_t rb;
	char hex[33];

	if (tern_crypto_init() != TERN_OK)
		return TERN_ECRYPTO;
	ms = tern_now_ms();
	pthread_mutex_lock(&uuid_lock);
	if (ms > last_ms) {
		randombytes_buf(&last_a, sizeof(last_a));
		randombytes_buf(&last_b, sizeof(last_b));
		/* The top bit of the counter starts clear, leaving room to count. */
		last_a &= 0x7ff;
		last_b &= RAND_B_LIMIT - 1;
		last_ms = ms;
	} else {
		/* Same millisecond, or the clock went back: keep counting. */
		last_b += 1 + (randombytes_random() & 0xffffff);
		if (last_b >= RAND_B_LIMIT) {
			last_b -= RAND_B_LIMIT;
			if (++last_a > 0xfff) {
				last_a = 0;
				last_ms++;
			}
		}
	}
	ms = last_ms;
	ra = last_a;
	rb = last_b;
	pthread_mutex_unlock(&uuid_lock);

	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (ra >> 8));
	b[7] = (uint8_t)ra;
	b[8] = (uint8_t)(0x80 | (rb >> 56));
	for (int i = 9; i < 16; i++)
		b[i] = (uint8_t)(rb >> (8 * (15 - i)));
	tern_hex(b, sizeof(b), hex);
	snprintf(out, TERN_UUID_STRLEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
	return TERN_OK;
}

int tern_uuid_valid(const char *s)
{
	if (s == NULL)
		return 0;
	for (int i = 0; i < TERN_UUID_STRLEN; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return 0; /* also stops at a NUL before 36 characters */
		}
	}
	return s[TERN_UUID_STRLEN] == '\0';
}

int tern_uuid_v7_time(const char *s, int64_t *ms)
{
	char digits[13];
	uint8_t b[6];
	size_t n;
	int64_t t = 0;

	if (!tern_uuid_valid(s) || s[14] != '7')
		return TERN_EINVAL;
	memcpy(digits, s, 8);
	memcpy(digits + 8, s + 9, 4);
	digits[12] = '\0';
	if (sodium_hex2bin(b, sizeof(b), digits, 12, NULL, &n, NULL) != 0 || n != 6)
		return TERN_EINVAL;
	for (int i = 0; i < 6; i++)
		t = (t << 8) | b[i];
	*ms = t;
	return TERN_OK;
}

/* Hop frames from a peer: decoded within bounds; a wrong version, an empty
 * frame or garbage is an ordinary error that says what was wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>

#include "hop.h"
#include "pbuf.h"

static size_t pack_ping(uint32_t version, int empty, uint8_t *buf)
{
	Tern__V1__Frame f = TERN__V1__FRAME__INIT;
	Tern__V1__Ping p = TERN__V1__PING__INIT;

	f.version = version;
	p.at = 1795000000000;
	if (!empty) {
		f.body_case = TERN__V1__FRAME__BODY_PING;
		f.ping = &p;
	}
	return tern__v1__frame__pack(&f, buf);
}

static void test_valid(void **state)
{
	uint8_t buf[64];
	size_t n = pack_ping(TERN_HOP_VERSION, 0, buf);
	Tern__V1__Frame *f = NULL;

	(void)state;
	assert_int_equal(tern_hop_decode(buf, n, 4096, &f), TERN_OK);
	assert_int_equal(f->body_case, TERN__V1__FRAME__BODY_PING);
	assert_int_equal(f->ping->at, 1795000000000);
	tern_pb_free((ProtobufCMessage **)&f);
}

/* The fuzzer found this one: the version was read after the frame was freed. */
static void test_wrong_version(void **state)
{
	uint8_t buf[64];
	size_t n = pack_ping(7, 0, buf);
	Tern__V1__Frame *f = NULL;

	(void)state;
	assert_int_equal(tern_hop_decode(buf, n, 4096, &f), TERN_EVERSION);
	assert_null(f);
	assert_non_null(strstr(tern_errdetail(), "version 7"));
}

static void test_empty_and_garbage(void **state)
{
	uint8_t buf[64], junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	size_t n = pack_ping(TERN_HOP_VERSION, 1, buf);
	Tern__V1__Frame *f = NULL;

	(void)state;
	assert_int_equal(tern_hop_decode(buf, n, 4096, &f), TERN_EMALFORMED);
	assert_int_equal(tern_hop_decode(junk, sizeof(junk), 4096, &f), TERN_EMALFORMED);
	n = pack_ping(TERN_HOP_VERSION, 0, buf);
	assert_int_not_equal(tern_hop_decode(buf, n, n - 1, &f), TERN_OK); /* over max */
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_empty_and_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The HTTP API's token file (tern_token_load): white space around the token
 * is not part of it (a trailing newline, CRLF, spaces, tabs, leading ones);
 * white space or a control character inside it, a NUL, or fewer than 32
 * characters once stripped is refused with a sentence that says how to make
 * one; the file must be private. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include <tern/error.h>

#include "ident.h"

#define TOKEN "Zk1x-abcdefghijklmnopqrstuvwxyz012345_"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/tern-test-token.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void put(const char *data, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int load(const char *data, char **tok, size_t *len)
{
	put(data, strlen(data), 0600);
	return tern_token_load(path, tok, len);
}

static void test_white_space_around_is_dropped(void **state)
{
	static const char *const files[] = {
	    TOKEN,          TOKEN "\n",           TOKEN "\r\n",        TOKEN " \n",
	    " " TOKEN "\n", "\n\t " TOKEN "\n\n", "  " TOKEN " \r\n ",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *tok = NULL;
		size_t len = 0;
		assert_int_equal(load(files[i], &tok, &len), TERN_OK);
		assert_int_equal(len, strlen(TOKEN));
		assert_string_equal(tok, TOKEN);
		sodium_memzero(tok, len);
		free(tok);
	}
}

static void test_refusals_say_how_to_make_one(void **state)
{
	static const struct {
		const char *data;
		const char *says;
	} cases[] = {
	    {"Zk1x-abcdefghijklmno pqrstuvwxyz012345_\n", "white space inside"},
	    {"Zk1x-abcdefghijklmno\tpqrstuvwxyz012345_\n", "white space inside"},
	    {"Zk1x-abcdefghijklmno\npqrstuvwxyz012345_\n", "a control character inside"},
	    {"Zk1x-abcdefghijklmno\rpqrstuvwxyz012345_\n", "a control character inside"},
	    {"Zk1x-abcdefghijklmno\xc3\xa9pqrstuvwxyz012345_\n", "outside ASCII"},
	    {"  short-token-0123456789  \n", "shorter than 32 characters"},
	    {" \n", "shorter than 32 characters"},
	};
	char *tok = NULL;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(load(cases[i].data, &tok, &len), TERN_ECONFIG);
		assert_null(tok);
		assert_non_null(strstr(tern_errdetail(), cases[i].says));
		assert_non_null(strstr(tern_errdetail(), "head -c 32 /dev/urandom | base64"));
	}
	/* A NUL */
	put(TOKEN "\0" TOKEN "\n", 2 * strlen(TOKEN) + 2, 0600);
	assert_int_equal(tern_token_load(path, &tok, &len), TERN_ECONFIG);
	assert_non_null(strstr(tern_errdetail(), "NUL"));
	/* Not private */
	put(TOKEN "\n", strlen(TOKEN) + 1, 0644);
	assert_int_not_equal(tern_token_load(path, &tok, &len), TERN_OK);
	assert_null(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_white_space_around_is_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals_say_how_to_make_one, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* C2SP signed notes, checkpoints and cosignatures: the specification's
 * example note (tests/data/c2sp), round trips, and every kind of tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/note.h>

#include "testutil.h"
#include "util.h"

static char *slurp(const char *name, size_t *len)
{
	char path[1024];
	uint8_t *buf = NULL;

	snprintf(path, sizeof(path), "%s/c2sp/%s", tt_testdata(), name);
	assert_int_equal(tern_file_read(path, 65536, &buf, len), TERN_OK);
	return (char *)buf;
}

static void test_c2sp_example(void **state)
{
	char name[TERN_NOTE_NAME_MAX + 1], *vkey, *note, *text = NULL;
	uint8_t pub[32];
	size_t vl, nl;

	(void)state;
	vkey = slurp("signed-note-example.vkey", &vl);
	note = slurp("signed-note-example.note", &nl);
	assert_int_equal(tern_note_vkey_parse(vkey, name, pub), TERN_OK);
	assert_string_equal(name, "example.com/foo");
	assert_int_equal(tern_note_verify(note, nl, name, pub, &text), TERN_OK);
	assert_string_equal(text, "This is an example message.\n");
	free(text);
	/* Any change to the text breaks it. */
	note[0] ^= 1;
	assert_int_equal(tern_note_verify(note, nl, name, pub, NULL), TERN_EBADSIG);
	note[0] ^= 1;
	/* Another name, or another key, finds no signature. */
	assert_int_equal(tern_note_verify(note, nl, "example.com/bar", pub, NULL), TERN_EBADSIG);
	pub[0] ^= 1;
	assert_int_equal(tern_note_verify(note, nl, name, pub, NULL), TERN_EBADSIG);
	/* A verifier key whose id does not match its key is refused. */
	vkey[strlen("example.com/foo+")] ^= 1;
	assert_int_equal(tern_note_vkey_parse(vkey, name, pub), TERN_EMALFORMED);
	free(vkey);
	free(note);
}

static void test_checkpoint_sign_and_cosign(void **state)
{
	tern_signkey *log = NULL, *witness = NULL;
	tern_hash root, got;
	char *body = NULL, *note = NULL, *line = NULL, *both = NULL, *vkey = NULL;
	char origin[TERN_NOTE_NAME_MAX + 1], name[TERN_NOTE_NAME_MAX + 1];
	uint8_t pub[32];
	uint64_t size, t;

	(void)state;
	memset(root, 0xab, sizeof(root));
	assert_int_equal(tern_signkey_generate(&log), TERN_OK);
	assert_int_equal(tern_signkey_generate(&witness), TERN_OK);
	assert_int_equal(tern_checkpoint_format("tern/dev/unhcr", 42, root, &body), TERN_OK);
	assert_int_equal(tern_checkpoint_parse(body, origin, &size, got), TERN_OK);
	assert_string_equal(origin, "tern/dev/unhcr");
	assert_true(size == 42);
	assert_memory_equal(got, root, 32);

	assert_int_equal(tern_note_sign(body, "tern/dev/unhcr", log, &note), TERN_OK);
	assert_int_equal(
	    tern_note_verify(note, strlen(note), "tern/dev/unhcr", tern_signkey_public(log), NULL),
	    TERN_OK);
	assert_int_equal(tern_note_vkey_format("tern/dev/unhcr", tern_signkey_public(log), &vkey),
	                 TERN_OK);
	assert_int_equal(tern_note_vkey_parse(vkey, name, pub), TERN_OK);
	assert_memory_equal(pub, tern_signkey_public(log), 32);

	/* A witness cosigns; the cosignature binds its time and the body. */
	assert_int_equal(tern_cosign(body, "sweden", witness, 1795390000, &line), TERN_OK);
	assert_true(asprintf(&both, "%s%s", note, line) > 0);
	assert_int_equal(
	    tern_cosign_verify(both, strlen(both), "sweden", tern_signkey_public(witness), &t),
	    TERN_OK);
	assert_true(t == 1795390000);
	/* The log's signature still verifies beside it. */
	assert_int_equal(
	    tern_note_verify(both, strlen(both), "tern/dev/unhcr", tern_signkey_public(log), NULL),
	    TERN_OK);
	/* A cosignature is not a log signature, and the reverse. */
	assert_int_equal(
	    tern_note_verify(both, strlen(both), "sweden", tern_signkey_public(witness), NULL),
	    TERN_EBADSIG);
	assert_int_equal(
	    tern_cosign_verify(both, strlen(both), "tern/dev/unhcr", tern_signkey_public(log), &t),
	    TERN_EBADSIG);
	/* A different size in the body breaks both. */
	both[strlen("tern/dev/unhcr\n")] = '3';
	assert_int_equal(
	    tern_cosign_verify(both, strlen(both), "sweden", tern_signkey_public(witness), &t),
	    TERN_EBADSIG);
	assert_int_equal(
	    tern_note_verify(both, strlen(both), "tern/dev/unhcr", tern_signkey_public(log), NULL),
	    TERN_EBADSIG);

	/* Malformed checkpoints. */
	assert_int_equal(tern_checkpoint_parse("o\n01\nAAAA\n", origin, &size, got),
	                 TERN_EMALFORMED);
	assert_int_equal(tern_checkpoint_parse("o\n1\n", origin, &size, got), TERN_EMALFORMED);
	assert_int_equal(tern_checkpoint_parse("o\n-1\nAAAA\n", origin, &size, got),
	                 TERN_EMALFORMED);
	assert_int_equal(tern_note_sign("two\n\nparagraphs\n", "x", log, &line), TERN_EINVAL);

	free(vkey);
	free(both);
	free(line);
	free(note);
	free(body);
	tern_signkey_free(&witness);
	tern_signkey_free(&log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_c2sp_example),
	    cmocka_unit_test(test_checkpoint_sign_and_cosign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

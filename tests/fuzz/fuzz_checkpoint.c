/* Signed notes, checkpoints and cosignatures as witnesses receive them. */
#include <stdlib.h>
#include <string.h>

#include <tern/note.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fed();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *pub = tern_signkey_public(fuzz_fed()->unhcr_sign);
	char *note = malloc(size + 1), *text = NULL, origin[TERN_NOTE_NAME_MAX + 1];
	char name[TERN_NOTE_NAME_MAX + 1];
	uint8_t kpub[32];
	uint64_t n, t;
	tern_hash root;

	if (note == NULL)
		return 0;
	memcpy(note, data, size);
	note[size] = 0;
	/* Unsigned parsing first: a witness parses before it trusts. */
	tern_checkpoint_parse(note, origin, &n, root);
	tern_note_vkey_parse(note, name, kpub);
	if (tern_note_verify(note, size, "tern/tern-dev/unhcr", pub, &text) == 0) {
		tern_checkpoint_parse(text, origin, &n, root);
		free(text);
	}
	tern_cosign_verify(note, size, "tern/tern-dev/unhcr", pub, &t);
	free(note);
	return 0;
}

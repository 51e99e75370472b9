/* The signed federation directory, checked against the federation's CA. */
#include <tern/directory.h>

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
	tern_directory *d = NULL;

	if (tern_directory_parse(data, size, fuzz_fed()->trust, 0, &d) == 0)
		tern_directory_free(&d);
	return 0;
}

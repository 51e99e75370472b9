/* Shared by the libFuzzer targets (docs/fuzzing.md): the development
 * federation some targets check against, named by TERN_FUZZ_FED (made by
 * scripts/fuzz.sh with `tern dev-federation`). A target must never crash,
 * leak or hang on any input; every rejection is an ordinary error return. */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <tern/directory.h>
#include <tern/keys.h>
#include <tern/trust.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: defined by the targets that need the federation loaded first. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fuzz_fed {
	tern_trust *trust;
	tern_directory *dir;
	tern_sealkey *sweden_seal;
	tern_signkey *unhcr_sign;
};

/* Loads $TERN_FUZZ_FED; exits with a clear message when it is not set up. */
const struct fuzz_fed *fuzz_fed(void);
/* Writes data to a private temporary file and returns its path (static). */
const char *fuzz_tmpfile(const uint8_t *data, size_t size);

#endif

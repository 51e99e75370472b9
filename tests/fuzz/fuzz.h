/* Shared by the libFuzzer targets (docs/fuzzing.md): the development
 * federation some targets check against, named by TERN_FUZZ_FED (made by
 * scripts/fuzz.sh with `tern dev-federation`). A target must never crash,
 * leak or hang on any input; every rejection is an ordinary error return. */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <tern/attach.h>
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

/* A fixed attachment, the same in every run (no federation needed): its
 * plaintext of FUZZ_ATT_SIZE bytes sealed in FUZZ_ATT_CHUNKS chunks of
 * FUZZ_ATT_CHUNK bytes under a fixed content key for message FUZZ_ATT_MSGID,
 * attachment 0; the sealed chunks at their slots, their leaf hashes and the
 * seal. So chunk frames made from it (seeds.c, corpus/chunk) verify and open
 * in fuzz_chunk.c, and an envelope can carry its seal. */
#define FUZZ_ATT_MSGID "01890000-0000-7000-8000-00000000a77a"
#define FUZZ_ATT_CHUNK (16u << 10)
#define FUZZ_ATT_SIZE (2 * FUZZ_ATT_CHUNK + 1000)
#define FUZZ_ATT_CHUNKS 3
struct fuzz_att {
	uint8_t content_key[32], key[32];
	uint8_t *plain;  /* FUZZ_ATT_SIZE bytes */
	uint8_t *sealed; /* chunk k at tern_attach_slot(FUZZ_ATT_CHUNK, k) */
	tern_hash *leaves;
	uint8_t root[32], sha256[32];
	Tern__V1__AttachmentSeal seal;
};
/* Makes it once; exits on failure. */
const struct fuzz_att *fuzz_att(void);

/* Loads $TERN_FUZZ_FED; exits with a clear message when it is not set up. */
const struct fuzz_fed *fuzz_fed(void);
/* Writes data to a private temporary file and returns its path (static). */
const char *fuzz_tmpfile(const uint8_t *data, size_t size);

#endif

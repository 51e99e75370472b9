#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/error.h>
#include <tern/log.h>

#include "fuzz.h"

const struct fuzz_fed *fuzz_fed(void)
{
	static struct fuzz_fed f;
	static int loaded;
	const char *dir = getenv("TERN_FUZZ_FED");
	char a[4096], b[4096];

	if (loaded)
		return &f;
	if (dir == NULL) {
		fprintf(stderr, "set TERN_FUZZ_FED to a `tern dev-federation` directory "
		                "(scripts/fuzz.sh does)\n");
		exit(2);
	}
	log_init("fuzz", TERN_LOG_ERROR + 1);
	snprintf(a, sizeof(a), "%s/ca/ca.crt", dir);
	snprintf(b, sizeof(b), "%s/ca/crl.pem", dir);
	if (tern_trust_load(a, b, &f.trust) != TERN_OK)
		goto fail;
	snprintf(a, sizeof(a), "%s/ca/directory.tdir", dir);
	if (tern_directory_load(a, f.trust, 0, &f.dir) != TERN_OK)
		goto fail;
	snprintf(a, sizeof(a), "%s/sweden/seal.key", dir);
	snprintf(b, sizeof(b), "%s/unhcr/node.key", dir);
	if (tern_sealkey_load(a, &f.sweden_seal) != TERN_OK ||
	    tern_signkey_load(b, &f.unhcr_sign) != TERN_OK)
		goto fail;
	loaded = 1;
	return &f;
fail:
	fprintf(stderr, "cannot load the federation in %s: %s\n", dir, tern_errdetail());
	exit(2);
}

const char *fuzz_tmpfile(const uint8_t *data, size_t size)
{
	static char path[64];
	FILE *fp;

	if (path[0] == 0) {
		int fd;
		snprintf(path, sizeof(path), "/tmp/tern-fuzz.XXXXXX");
		if ((fd = mkstemp(path)) < 0)
			abort();
		close(fd);
	}
	if ((fp = fopen(path, "wb")) == NULL)
		abort();
	if (size && fwrite(data, 1, size, fp) != size)
		abort();
	fclose(fp);
	return path;
}

const struct fuzz_att *fuzz_att(void)
{
	static struct fuzz_att a;
	static int made;
	FILE *in = NULL, *out = NULL;
	size_t len = tern_attach_slot(FUZZ_ATT_CHUNK, FUZZ_ATT_CHUNKS);

	if (made)
		return &a;
	memset(a.content_key, 0x5a, sizeof(a.content_key));
	if ((a.plain = malloc(FUZZ_ATT_SIZE)) == NULL || (a.sealed = calloc(1, len)) == NULL)
		goto fail;
	for (size_t i = 0; i < FUZZ_ATT_SIZE; i++)
		a.plain[i] = (uint8_t)(i * 7 % 251);
	/* tern_attach_seal_fd reads and writes files: two temporary ones. */
	if ((in = tmpfile()) == NULL || (out = tmpfile()) == NULL ||
	    fwrite(a.plain, 1, FUZZ_ATT_SIZE, in) != FUZZ_ATT_SIZE || fflush(in) != 0 ||
	    tern_attach_key(a.content_key, 0, a.key) != TERN_OK ||
	    tern_attach_seal_fd(fileno(in), FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK, a.key, FUZZ_ATT_MSGID, 0,
	                        fileno(out), &a.seal, a.root, a.sha256, &a.leaves) != TERN_OK ||
	    pread(fileno(out), a.sealed, len, 0) <
	        (ssize_t)(tern_attach_slot(FUZZ_ATT_CHUNK, FUZZ_ATT_CHUNKS - 1) +
	                  tern_attach_chunk_len(FUZZ_ATT_SIZE, FUZZ_ATT_CHUNK,
	                                        FUZZ_ATT_CHUNKS - 1) +
	                  TERN_ATTACH_TAG_LEN))
		goto fail;
	fclose(in);
	fclose(out);
	made = 1;
	return &a;
fail:
	fprintf(stderr, "fuzz: cannot make the fixed attachment: %s\n", tern_errdetail());
	exit(2);
}

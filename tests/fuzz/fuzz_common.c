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

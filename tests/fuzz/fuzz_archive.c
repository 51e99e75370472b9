/* Audit archives as auditors receive them: every check verify makes. */
#include <stdarg.h>
#include <stdlib.h>

#include "audit_archive.h"
#include "audit_cmd.h"
#include "fuzz.h"

static void quiet(const char *file, const char *fmt, ...)
{
	(void)file;
	(void)fmt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	audit_archive ar[1];

	if (audit_archive_load(fuzz_tmpfile(data, size), ar, quiet, 1) == 0) {
		audit_verify_archives(ar, 1, quiet);
		audit_archive_free(ar);
	}
	return 0;
}

/* Directory internals shared by directory.c and directory_io.c. */
#ifndef TERN_DIRECTORY_INT_H
#define TERN_DIRECTORY_INT_H

#include <tern/directory.h>

struct tern_directory {
	char *federation;
	uint64_t version;
	int64_t issued_at;
	int64_t crl_next_update; /* seconds; 0 = not checked against a CRL */
	tern_member *members;
	size_t count, cap;
};

#endif

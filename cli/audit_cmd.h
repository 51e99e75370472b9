/* The parts of tern audit (cmd_audit.c) that live in their own files. */
#ifndef TERN_CLI_AUDIT_CMD_H
#define TERN_CLI_AUDIT_CMD_H

/* tern audit verify FILE...: CLI_OK when clean, CLI_NO with findings. */
int audit_verify(int nfiles, char **files);
/* Every check verify makes, on archives already loaded, reported through fn. */
#include "audit_archive.h"
void audit_verify_archives(audit_archive *ars, size_t n, audit_finding_fn *fn);
/* tern audit replay FILE... [--case ID] [--json] */
int audit_replay(int nfiles, char **files, const char *case_id, int json);

#endif

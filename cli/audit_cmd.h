/* The parts of tern audit (cmd_audit.c) that live in their own files. */
#ifndef TERN_CLI_AUDIT_CMD_H
#define TERN_CLI_AUDIT_CMD_H

/* tern audit verify FILE...: CLI_OK when clean, CLI_NO with findings. */
int audit_verify(int nfiles, char **files);
/* tern audit replay FILE... [--case ID] [--json] */
int audit_replay(int nfiles, char **files, const char *case_id, int json);

#endif

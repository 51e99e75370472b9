#include <stdio.h>
#include "commands.h"
/* Placeholder until this command lands; the owner of this file replaces it. */
int cmd_ca(int argc, char **argv) { (void)argc; fprintf(stderr, "tern %s: not built yet\n", argv[0]); return CLI_FAIL; }
int cmd_keygen(int argc, char **argv) { (void)argc; fprintf(stderr, "tern %s: not built yet\n", argv[0]); return CLI_FAIL; }

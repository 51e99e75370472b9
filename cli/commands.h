/* The tern subcommands; each lives in cmd_<name>.c. */
#ifndef TERN_COMMANDS_H
#define TERN_COMMANDS_H

#include <jansson.h>

#include "cli.h"

cli_cmd_fn cmd_example;        /* cmd_example.c */
cli_cmd_fn cmd_validate;       /* cmd_validate.c */
cli_cmd_fn cmd_ca;             /* cmd_ca.c */
cli_cmd_fn cmd_keygen;         /* cmd_ca.c */
cli_cmd_fn cmd_dev_federation; /* cmd_dev_federation.c */
cli_cmd_fn cmd_send;           /* cmd_send.c */
cli_cmd_fn cmd_status;         /* cmd_status.c */
cli_cmd_fn cmd_case;           /* cmd_case.c */
cli_cmd_fn cmd_inbox;          /* cmd_inbox.c */
cli_cmd_fn cmd_messages;       /* cmd_messages.c */
cli_cmd_fn cmd_demo;           /* cmd_demo.c */
cli_cmd_fn cmd_bench;          /* cmd_bench.c */
cli_cmd_fn cmd_info;           /* cmd_info.c */
cli_cmd_fn cmd_audit;          /* cmd_audit.c */
cli_cmd_fn cmd_queues;         /* cmd_queues.c */
cli_cmd_fn cmd_queue;          /* cmd_queues.c */
cli_cmd_fn cmd_dlq;            /* cmd_queues.c */
cli_cmd_fn cmd_peers;          /* cmd_queues.c */
cli_cmd_fn cmd_backup;         /* cmd_backup.c */

/* Prints a case view (the local API's case.show answer's "case") as
 * `tern case show` does; the demo prints it too. */
void case_view_print(const json_t *cs);

#endif

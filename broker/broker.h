/* tern-broker: routes envelopes between nodes (see docs/protocol.md). */
#ifndef TERN_BROKER_H
#define TERN_BROKER_H

#include <signal.h>

typedef struct broker broker;

/* Loads the configuration, identity and store; binds. Problems are written to
 * stderr; returns 0 or a TERN_E* code. */
int broker_open(const char *conf, broker **out);
/* Runs until *stop becomes non-zero (set from a signal handler). */
int broker_run(broker *b, volatile sig_atomic_t *stop);
void broker_close(broker **b);

#endif

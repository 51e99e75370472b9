/* tern-node: an agency's node (see docs/protocol.md and docs/api.md). */
#ifndef TERN_NODE_H
#define TERN_NODE_H

#include <signal.h>

typedef struct node node;

int node_open(const char *conf, node **out);
int node_run(node *n, volatile sig_atomic_t *stop);
void node_close(node **n);

#endif

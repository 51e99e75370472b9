/* tern-node: an agency's node in a Tern federation. */
#include "daemon.h"
#include "node.h"

#include <tern/config.h>

static int n_open(const char *conf, void **h)
{
	return node_open(conf, (node **)h);
}

static int n_run(void *h, volatile sig_atomic_t *stop)
{
	return node_run(h, stop);
}

static void n_close(void **h)
{
	node_close((node **)h);
}

int main(int argc, char **argv)
{
	static const tern_daemon d = {
	    "tern-node",
	    TERN_CONFIG_NODE,
	    "An agency's node: keeps its outbox, inbox and receipts in LMDB, exchanges\n"
	    "signed, sealed messages through its broker, and serves the local API that\n"
	    "the tern CLI and the agency's systems use (docs/api.md).",
	    "  tern-node -c /etc/tern/node.conf -n\n"
	    "  tern-node -c /tmp/fed/unhcr/node.conf\n",
	    n_open,
	    n_run,
	    n_close};

	return tern_daemon_main(argc, argv, &d);
}

/* tern-node: an agency's node in a Tern federation. */
#include <malloc.h>

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

	/* Buffers of 512 KiB and more (an attachment piece, its base64 and
	 * JSON, a few MiB each) are mapped and given back when freed. With
	 * glibc's sliding threshold they came from each HTTP worker's arena
	 * and stayed there: one 64 MiB download left the node 140 MB larger
	 * (16 workers, 16 arenas); with this, 2 to 7 MB at its peak, none
	 * after (test_http_upload.sh), and downloads as fast as `tern inbox
	 * attachment` measured alongside (the node's attachment.get sets the
	 * pace). */
	mallopt(M_MMAP_THRESHOLD, 512 * 1024);
	return tern_daemon_main(argc, argv, &d);
}

/* tern-broker: routes signed, sealed envelopes between Tern nodes. */
#include "broker.h"
#include "daemon.h"

#include <tern/config.h>

static int b_open(const char *conf, void **h)
{
	return broker_open(conf, (broker **)h);
}

static int b_run(void *h, volatile sig_atomic_t *stop)
{
	return broker_run(h, stop);
}

static void b_close(void **h)
{
	broker_close((broker **)h);
}

int main(int argc, char **argv)
{
	static const tern_daemon d = {
	    "tern-broker",
	    TERN_CONFIG_BROKER,
	    "Routes envelopes between the nodes of a Tern federation: verifies each\n"
	    "sender's signature and role, keeps durable per-recipient queues, and\n"
	    "delivers with acknowledgements. It cannot read message bodies.",
	    "  tern-broker -c /etc/tern/broker.conf -n\n"
	    "  tern-broker -c /tmp/fed/broker/broker.conf\n",
	    b_open,
	    b_run,
	    b_close};

	return tern_daemon_main(argc, argv, &d);
}

/* bench-nats: the `tern bench` workload on NATS JetStream with file storage
 * (tests/bench/compare.sh): publishes with at most --window unacknowledged
 * (the stream's PubAck is NATS's publisher confirm), a second connection
 * consumes with explicit acknowledgement. Prints one JSON line. */
#include <unistd.h>

#include <nats/nats.h>

#include "compare_common.h"

static struct cmp_stats stats = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	cmp_record(&stats, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
	natsMsg_Ack(msg, NULL);
	natsMsg_Destroy(msg);
}

static void fail(const char *what, natsStatus s)
{
	fprintf(stderr, "bench-nats: %s: %s\n", what, natsStatus_GetText(s));
	exit(1);
}

int main(int argc, char **argv)
{
	struct cmp_args a;
	natsConnection *pc = NULL, *cc = NULL;
	jsCtx *pjs = NULL, *cjs = NULL;
	jsOptions jo;
	jsStreamConfig cfg;
	jsSubOptions so;
	natsSubscription *sub = NULL;
	const char *subjects[] = {"bench.tern"};
	char *buf;
	int64_t t0;
	uint64_t failed = 0;
	natsStatus s;

	cmp_parse(argc, argv, "bench-nats", "nats://127.0.0.1:4222", &a);
	if ((buf = calloc(1, (size_t)a.size)) == NULL)
		return 1;
	memset(buf + sizeof(int64_t), 'x', (size_t)a.size - sizeof(int64_t));
	if ((s = natsConnection_ConnectTo(&pc, a.url)) != NATS_OK)
		fail("connect", s);
	if ((s = natsConnection_ConnectTo(&cc, a.url)) != NATS_OK)
		fail("connect", s);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = a.window;
	if ((s = natsConnection_JetStream(&pjs, pc, &jo)) != NATS_OK ||
	    (s = natsConnection_JetStream(&cjs, cc, NULL)) != NATS_OK)
		fail("jetstream", s);
	js_DeleteStream(pjs, "TERNBENCH", NULL, NULL);
	jsStreamConfig_Init(&cfg);
	cfg.Name = "TERNBENCH";
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	if ((s = js_AddStream(NULL, pjs, &cfg, NULL, NULL)) != NATS_OK)
		fail("add stream", s);
	jsSubOptions_Init(&so);
	so.Config.AckPolicy = js_AckExplicit;
	so.ManualAck = true;
	so.Config.MaxAckPending = a.window * 4;
	if ((s = js_Subscribe(&sub, cjs, "bench.tern", on_msg, NULL, NULL, &so, NULL)) != NATS_OK)
		fail("subscribe", s);

	t0 = cmp_now_us();
	stats.measure_from = t0 + (int64_t)a.warmup * 1000000;
	stats.stop_at = stats.measure_from + (int64_t)a.duration * 1000000;
	while (cmp_now_us() < stats.stop_at) {
		int64_t t = cmp_now_us();
		memcpy(buf, &t, sizeof(t));
		/* Blocks while --window publishes are unacknowledged. */
		if (js_PublishAsync(pjs, "bench.tern", buf, a.size, NULL) != NATS_OK)
			failed++;
	}
	js_PublishAsyncComplete(pjs, NULL);
	usleep(500000);
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	js_DeleteStream(pjs, "TERNBENCH", NULL, NULL);
	cmp_report("nats-jetstream", &a, &stats, failed);
	jsCtx_Destroy(pjs);
	jsCtx_Destroy(cjs);
	natsConnection_Destroy(pc);
	natsConnection_Destroy(cc);
	free(buf);
	free(stats.lat_us);
	return 0;
}

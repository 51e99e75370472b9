/* tern bench: end-to-end delivery throughput and latency (docs/performance.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/config.h>
#include <tern/error.h>
#include <tern/examples.h>
#include <tern/json.h>
#include <tern/msgtype.h>

#include "commands.h"
#include "tern/v1/api.pb-c.h"
#include "tern/v1/messages.pb-c.h"
#include "localfed.h"
#include "pbuf.h"
#include "util.h"

#define MAX_SLOTS 256 /* the node parks at most 256 API clients */

static void usage(FILE *f)
{
	fputs(
	    "Usage: tern bench [-c NODECONF --to ID] [--size BYTES] [--window N] [--producers N]\n"
	    "                  [--duration SECONDS] [--warmup SECONDS] [--rate N] [--keep DIR]\n"
	    "                  [--api binary|json] [--json]\n"
	    "\n"
	    "Measures end-to-end delivery. Each message is a case referral handed to the\n"
	    "sender's node (signed, sealed, fsynced), relayed by the broker (verified,\n"
	    "fsynced), taken by the recipient's node (verified, opened, validated, fsynced),\n"
	    "and counted when the recipient's signed receipt is verified and committed at\n"
	    "the sender. Latency runs from the send (in open loop, from the time the send\n"
	    "was scheduled) to that commit.\n"
	    "\n"
	    "Without -c it builds a development federation in a temporary directory, runs\n"
	    "the broker and the unhcr and sweden nodes, sends from unhcr to sweden, and\n"
	    "reports the CPU each process used. Its broker has the per-node rate limit\n"
	    "([limits] peer_rate, 2,000/s by default) lifted, or that limit is what would\n"
	    "be measured; a running federation (-c) is measured with its own limits.\n"
	    "\n"
	    "Options:\n"
	    "  -c, --config NODECONF  send from this running node (with --to)\n"
	    "  --to ID                the recipient node (with -c)\n"
	    "  --size BYTES           body size, 256 to 4096 (default 1024)\n"
	    "  --window N             messages in flight per producer (default 16)\n"
	    "  --producers N          concurrent producers (default 4; window x producers\n"
	    "                         at most 256)\n"
	    "  --duration SECONDS     how long to measure (default 10)\n"
	    "  --warmup SECONDS       sent before measuring, not counted (default 2)\n"
	    "  --rate N               open loop: N messages/s in all, on a fixed schedule\n"
	    "                         (default: closed loop, as fast as the windows allow)\n"
	    "  --keep DIR             build the federation in DIR and keep it with the logs\n"
	    "  --api binary|json      how requests reach the node's local API: binary\n"
	    "                         frames with the body encoded (default), or JSON\n"
	    "  --json                 print the results as JSON\n"
	    "\n"
	    "Exit status: 0 when every message sent was delivered, 1 when some were not.\n"
	    "\n"
	    "Examples:\n"
	    "  tern bench\n"
	    "  tern bench --window 1 --producers 1 --duration 10      # latency, one at a time\n"
	    "  tern bench --rate 500 --duration 30 --json\n"
	    "  tern bench -c /etc/tern/unhcr/node.conf --to sweden --duration 60\n",
	    f);
}

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct producer {
	pthread_t thread;
	int id;
	const char *sock, *to;
	json_t *body;                /* this producer's copy */
	int binary;                  /* send binary frames (tern.v1.ApiRequest) */
	Tern__V1__CaseReferral *msg; /* binary: the body, decoded once */
	int window;
	double rate; /* messages/s for this producer; 0 = closed loop */
	int64_t t0, measure_from, stop_at;
	/* counted in the measured period */
	_Atomic uint64_t done, failed;
	_Atomic uint64_t sent;
	uint64_t *lat_us;
	size_t nlat, caplat;
	char error[256];
};

/* A slot is one connection to the node, kept open from send to send (the
 * API takes many requests per connection): busy while a send waits for its
 * answer. */
struct slot {
	int fd;
	int busy;
	int64_t start_us; /* scheduled (open loop) or actual send time */
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int slot_write(int fd, const json_t *req, const uint8_t *bin, size_t binlen)
{
	return bin ? tern_api_write_binary(fd, bin, binlen) : tern_api_write(fd, req);
}

static int slot_send(struct producer *p, struct slot *s, uint64_t seq, int64_t start_us)
{
	char caseid[64];
	json_t *req = NULL;
	uint8_t *bin = NULL;
	size_t binlen = 0;
	int rc;

	snprintf(caseid, sizeof(caseid), "BENCH-%d-%llu", p->id, (unsigned long long)seq);
	if (p->binary) {
		/* The request as a client with the body already encoded sends it. */
		Tern__V1__ApiRequest ar = TERN__V1__API_REQUEST__INIT;
		Tern__V1__ApiSend as = TERN__V1__API_SEND__INIT;
		char *to[1] = {(char *)p->to};
		uint8_t *body = NULL;
		size_t blen = 0;
		char *own = p->msg->case_id;
		p->msg->case_id = caseid;
		rc = tern_pb_pack(&p->msg->base, &body, &blen);
		p->msg->case_id = own;
		if (rc != TERN_OK)
			return rc;
		as.n_to = 1;
		as.to = to;
		as.type = TERN__V1__MESSAGE_TYPE__CASE_REFERRAL;
		as.body.data = body;
		as.body.len = blen;
		as.wait_ms = 120000;
		ar.v = TERN_API_VERSION;
		ar.op_case = TERN__V1__API_REQUEST__OP_SEND;
		ar.send = &as;
		rc = tern_pb_pack(&ar.base, &bin, &binlen);
		free(body);
		if (rc != TERN_OK)
			return rc;
	} else {
		json_object_set_new(p->body, "caseId", json_string(caseid));
		req = json_pack("{s:i, s:s, s:[s], s:s, s:O, s:i}", "v", TERN_API_VERSION, "op",
		                "send", "to", p->to, "type", "case-referral", "body", p->body,
		                "wait_ms", 120000);
	}
	if (s->fd >= 0 && slot_write(s->fd, req, bin, binlen) != TERN_OK) {
		close(s->fd); /* closed by the node while idle: a new one */
		s->fd = -1;
	}
	if (s->fd >= 0)
		rc = TERN_OK;
	else if ((rc = tern_api_connect(p->sock, &s->fd)) == TERN_OK &&
	         (rc = slot_write(s->fd, req, bin, binlen)) != TERN_OK) {
		close(s->fd);
		s->fd = -1;
	}
	json_decref(req);
	free(bin);
	if (rc != TERN_OK) {
		snprintf(p->error, sizeof(p->error), "%s", tern_errdetail());
		return rc;
	}
	s->start_us = start_us;
	s->busy = 1;
	atomic_fetch_add(&p->sent, 1);
	return TERN_OK;
}

static void slot_done(struct producer *p, struct slot *s)
{
	json_t *r = NULL;
	int64_t t = now_us();
	int ok = tern_api_read(s->fd, TERN_API_MAX_FRAME, &r) == TERN_OK &&
	         json_is_true(json_object_get(r, "ok")) &&
	         strcmp(json_string_value(json_object_get(r, "state")) ?: "", "delivered") == 0;

	if (!ok && p->error[0] == 0)
		snprintf(p->error, sizeof(p->error), "%s: %s",
		         r ? json_string_value(json_object_get(r, "state")) ?: "error" : "no answer",
		         r ? json_string_value(json_object_get(r, "message"))
		                 ?: json_string_value(json_object_get(r, "reason_text")) ?: ""
		           : tern_errdetail());
	json_decref(r);
	s->busy = 0;
	if (!ok) { /* the stream may be out of step: a new connection next time */
		close(s->fd);
		s->fd = -1;
	}
	if (s->start_us < p->measure_from || t > p->stop_at)
		return; /* warm-up, or after the end */
	if (!ok) {
		atomic_fetch_add(&p->failed, 1);
		return;
	}
	if (p->nlat == p->caplat) {
		size_t nc = p->caplat ? p->caplat * 2 : 65536;
		uint64_t *nl = realloc(p->lat_us, nc * sizeof(*nl));
		if (nl == NULL)
			return;
		p->lat_us = nl;
		p->caplat = nc;
	}
	p->lat_us[p->nlat++] = (uint64_t)(t - s->start_us);
	atomic_fetch_add(&p->done, 1);
}

static void *producer_run(void *arg)
{
	struct producer *p = arg;
	struct slot slots[MAX_SLOTS];
	struct pollfd pfd[MAX_SLOTS];
	uint64_t seq = 0, scheduled = 0;
	int inflight = 0;

	for (int i = 0; i < p->window; i++) {
		slots[i].fd = -1;
		slots[i].busy = 0;
	}
	for (;;) {
		int64_t t = now_us(), next_due = 0;
		int n = 0, timeout;

		for (int i = 0; i < p->window && t < p->stop_at && !interrupted; i++) {
			int64_t start = t;
			if (slots[i].busy)
				continue;
			if (p->rate > 0) {
				/* Open loop: the schedule does not wait for the system. */
				start = p->t0 + (int64_t)((double)scheduled * 1e6 / p->rate);
				if (start > t) {
					next_due = start;
					break;
				}
			}
			if (slot_send(p, &slots[i], ++seq, start) != TERN_OK) {
				atomic_fetch_add(&p->failed, 1);
				continue;
			}
			scheduled++;
			inflight++;
		}
		if (inflight == 0 && (now_us() >= p->stop_at || interrupted))
			break;
		for (int i = 0; i < p->window; i++)
			if (slots[i].busy) {
				pfd[n].fd = slots[i].fd;
				pfd[n].events = POLLIN;
				pfd[n].revents = 0;
				n++;
			}
		/* Rounded up: a sub-millisecond wait must not become a busy loop. */
		timeout = next_due ? (int)((next_due - now_us() + 999) / 1000) : 100;
		if (timeout < 0)
			timeout = 0;
		if (timeout > 100)
			timeout = 100;
		if (poll(pfd, (nfds_t)n, timeout) <= 0)
			continue;
		for (int k = 0, i = 0; k < n; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (i = 0; i < p->window && slots[i].fd != pfd[k].fd; i++)
				;
			if (i < p->window && slots[i].busy) {
				slot_done(p, &slots[i]);
				inflight--;
			}
		}
	}
	for (int i = 0; i < p->window; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	return NULL;
}

/* A referral whose encoded body is about size bytes: the summary is padded. */
static json_t *bench_body(size_t size)
{
	char *text = NULL, *pad;
	json_t *j;
	ProtobufCMessage *m = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	const tern_msgtype *t = tern_msgtype_by_name("case-referral");

	if (tern_example_json("case-referral", &text) != TERN_OK)
		return NULL;
	j = json_loads(text, 0, NULL);
	free(text);
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "needsSummary", json_string(""));
	if (tern_json_decode(t->desc, j, &m, NULL, 0) != TERN_OK ||
	    tern_pb_pack(m, &buf, &len) != TERN_OK) {
		tern_json_message_free(&m);
		json_decref(j);
		return NULL;
	}
	tern_json_message_free(&m);
	free(buf);
	if (size > len + 3) {
		size_t n = size - len - 3; /* the field's tag and length */
		if ((pad = malloc(n + 1)) == NULL) {
			json_decref(j);
			return NULL;
		}
		memset(pad, 'x', n);
		pad[n] = 0;
		json_object_set_new(j, "needsSummary", json_string(pad));
		free(pad);
	}
	return j;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(q * (double)n);
	return (double)v[i ? i - 1 : 0] / 1000.0;
}

/* utime + stime of a process, in clock ticks; -1 if it cannot be read. */
static long long proc_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After the command name in parentheses: state is field 3, utime 14, stime 15. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static long long self_ticks(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
	        (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec) *
	       sysconf(_SC_CLK_TCK) / 1000000;
}

/* The broker's per-node token bucket ([limits] peer_rate, 2,000 a second by
 * default) is a fairness policy: left in place, a bench measures it (every
 * figure up to 2,130 msg/s did), not the message path. The bench's own
 * federation lifts it to the most the setting takes. */
#define BENCH_PEER_RATE 1000000

static int unlimited_broker(const localfed *lf)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/broker/broker.conf", lf->fed);
	if ((f = fopen(path, "a")) == NULL)
		return cli_fail(TERN_EIO, "cannot open %s: %s", path, strerror(errno));
	fprintf(f,
	        "\n# tern bench: measure the path, not the fairness policy.\n"
	        "[limits]\npeer_rate = %d\npeer_burst = %d\n",
	        BENCH_PEER_RATE, BENCH_PEER_RATE);
	if (fclose(f) != 0)
		return cli_fail(TERN_EIO, "cannot write %s", path);
	return CLI_OK;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"to", required_argument, NULL, 't'},
	                                     {"size", required_argument, NULL, 's'},
	                                     {"window", required_argument, NULL, 'w'},
	                                     {"producers", required_argument, NULL, 'p'},
	                                     {"duration", required_argument, NULL, 'd'},
	                                     {"warmup", required_argument, NULL, 'u'},
	                                     {"rate", required_argument, NULL, 'r'},
	                                     {"keep", required_argument, NULL, 'k'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"api", required_argument, NULL, 'a'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	static const char *const nodes[] = {"unhcr", "sweden"};
	const char *conf = NULL, *to = NULL, *keep = NULL;
	long size = 1024, window = 16, producers = 4, duration = 10, warmup = 2;
	double rate = 0;
	int json = 0, c, rc = CLI_FAIL, own = 0, started = 0, binary = 1;
	char sock[PATH_MAX + 32];
	struct producer *ps = NULL;
	localfed lf;
	json_t *body = NULL;
	long long ticks0[LOCALFED_MAX + 1], ticks1[LOCALFED_MAX + 1];
	struct sigaction sa;
	uint64_t *all = NULL;
	size_t nall = 0;
	uint64_t done = 0, failed = 0, sent = 0;
	int64_t t_measure, t_end;
	long tck = sysconf(_SC_CLK_TCK);

	memset(&lf, 0, sizeof(lf));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		char *end = NULL;
		long v = 0;
		if (c == 's' || c == 'w' || c == 'p' || c == 'd' || c == 'u') {
			v = strtol(optarg, &end, 10);
			if (end == optarg || *end)
				return cli_usage_error("bench", "'%s' is not a number", optarg);
		}
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 's':
			if (v < 256 || v > 4096)
				return cli_usage_error("bench", "--size takes 256 to 4096 bytes");
			size = v;
			break;
		case 'w':
			window = v;
			break;
		case 'p':
			producers = v;
			break;
		case 'd':
			if (v < 1 || v > 86400)
				return cli_usage_error("bench",
				                       "--duration takes 1 to 86400 seconds");
			duration = v;
			break;
		case 'u':
			if (v < 0 || v > 3600)
				return cli_usage_error("bench", "--warmup takes 0 to 3600 seconds");
			warmup = v;
			break;
		case 'r':
			rate = strtod(optarg, &end);
			if (end == optarg || *end || rate <= 0 || rate > 1e7)
				return cli_usage_error("bench",
				                       "--rate takes messages per second, above 0");
			break;
		case 'k':
			keep = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'a':
			if (strcmp(optarg, "binary") == 0)
				binary = 1;
			else if (strcmp(optarg, "json") == 0)
				binary = 0;
			else
				return cli_usage_error("bench", "--api takes binary or json");
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("bench", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error("bench", "no arguments expected");
	if (window < 1 || producers < 1 || window * producers > MAX_SLOTS - 16)
		return cli_usage_error("bench",
		                       "--window and --producers take 1 or more, %d in all at most",
		                       MAX_SLOTS - 16);
	if ((conf == NULL) != (to == NULL))
		return cli_usage_error("bench", "give -c NODECONF and --to ID together");
	if (conf && keep)
		return cli_usage_error("bench", "--keep is for the federation bench builds");
	if ((body = bench_body((size_t)size)) == NULL)
		return cli_fail(TERN_ENOMEM, "cannot build the message body");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_int;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (conf) {
		tern_config *cfg = NULL;
		if (tern_config_load(conf, TERN_CONFIG_NODE, &cfg) != TERN_OK) {
			fprintf(stderr, "tern bench: %s: %s\n", conf,
			        cfg ? tern_config_errors(cfg) : tern_errdetail());
			tern_config_free(&cfg);
			rc = CLI_FAIL;
			goto out;
		}
		snprintf(sock, sizeof(sock), "%s", tern_config_get(cfg, "node", "api_socket"));
		tern_config_free(&cfg);
	} else {
		own = 1;
		to = "sweden";
		if ((rc = localfed_create(&lf, keep, 0, "bench")) != CLI_OK)
			goto out;
		if ((rc = unlimited_broker(&lf)) != CLI_OK)
			goto out;
		if (!json)
			fprintf(
			    stderr,
			    "tern bench: federation in %s; starting broker, unhcr, sweden "
			    "(the broker's per-node rate limit lifted: [limits] peer_rate %d)\n",
			    lf.dir, BENCH_PEER_RATE);
		if (localfed_start(&lf, nodes, 2, "bench") != TERN_OK ||
		    localfed_wait_connected(&lf, 20000, &interrupted, "bench") != TERN_OK) {
			rc = CLI_FAIL;
			goto out;
		}
		started = 1;
		localfed_socket(&lf, "unhcr", sock, sizeof(sock));
	}

	if ((ps = calloc((size_t)producers, sizeof(*ps))) == NULL) {
		rc = cli_fail(TERN_ENOMEM, "out of memory");
		goto out;
	}
	{
		int64_t t0 = now_us();
		t_measure = t0 + (int64_t)warmup * 1000000;
		t_end = t_measure + (int64_t)duration * 1000000;
		for (long i = 0; i < producers; i++) {
			ps[i].id = (int)i;
			ps[i].sock = sock;
			ps[i].to = to;
			ps[i].body = json_deep_copy(body);
			ps[i].binary = binary;
			if (binary &&
			    tern_json_decode(tern_msgtype_by_name("case-referral")->desc, body,
			                     (ProtobufCMessage **)&ps[i].msg, NULL, 0) != TERN_OK) {
				rc = cli_fail(TERN_EINVAL, "cannot encode the message body");
				goto out;
			}
			ps[i].window = (int)window;
			ps[i].rate = rate / (double)producers;
			/* Spread the producers' schedules over one interval. */
			ps[i].t0 = t0 + (rate > 0 ? (int64_t)(1e6 / rate * (double)i) : 0);
			ps[i].measure_from = t_measure;
			ps[i].stop_at = t_end;
			if (pthread_create(&ps[i].thread, NULL, producer_run, &ps[i]) != 0) {
				producers = i;
				rc = cli_fail(TERN_ENOMEM, "cannot start a producer thread");
				break;
			}
		}
	}
	/* Progress while it runs, CPU of each process over the measured period. */
	{
		int measuring = 0;
		uint64_t last = 0;
		while (now_us() < t_end && !interrupted) {
			uint64_t d = 0;
			int64_t t = now_us();
			if (!measuring && t >= t_measure) {
				measuring = 1;
				for (size_t i = 0; own && i < lf.n; i++)
					ticks0[i] = proc_ticks(lf.pids[i]);
				ticks0[LOCALFED_MAX] = self_ticks();
			}
			for (long i = 0; i < producers; i++)
				d += atomic_load(&ps[i].done);
			if (!json && isatty(2))
				fprintf(stderr, "\r  %s %3llds: %llu delivered, %llu/s   ",
				        measuring ? "measuring" : "warming up",
				        (long long)((t - (measuring ? t_measure
				                                    : t_measure - (int64_t)warmup *
				                                                      1000000)) /
				                    1000000),
				        (unsigned long long)d, (unsigned long long)(d - last));
			last = d;
			usleep(1000000);
		}
		for (size_t i = 0; own && i < lf.n; i++)
			ticks1[i] = proc_ticks(lf.pids[i]);
		ticks1[LOCALFED_MAX] = self_ticks();
		if (!json && isatty(2))
			fprintf(stderr, "\r%60s\r", "");
	}
	for (long i = 0; i < producers; i++)
		pthread_join(ps[i].thread, NULL);
	for (long i = 0; i < producers; i++) {
		done += atomic_load(&ps[i].done);
		failed += atomic_load(&ps[i].failed);
		sent += atomic_load(&ps[i].sent);
		nall += ps[i].nlat;
	}
	if ((all = malloc((nall ? nall : 1) * sizeof(*all))) == NULL) {
		rc = cli_fail(TERN_ENOMEM, "out of memory");
		goto out;
	}
	nall = 0;
	for (long i = 0; i < producers; i++) {
		memcpy(all + nall, ps[i].lat_us, ps[i].nlat * sizeof(*all));
		nall += ps[i].nlat;
	}
	qsort(all, nall, sizeof(*all), cmp_u64);
	{
		double secs = (double)(t_end - t_measure) / 1e6;
		double tput = (double)done / secs, mean = 0;
		json_t *cpu = json_object();
		for (size_t i = 0; own && i < lf.n; i++)
			if (ticks0[i] >= 0 && ticks1[i] >= 0)
				json_object_set_new(
				    cpu, lf.names[i],
				    json_real(100.0 * (double)(ticks1[i] - ticks0[i]) /
				              (double)tck / secs));
		/* The daemons' CPU per delivered message: the figure that says what
		 * the path costs, whatever the machine's cores did meanwhile. */
		double daemons_us = 0;
		for (size_t i = 0; own && i < lf.n; i++)
			if (ticks0[i] >= 0 && ticks1[i] >= 0)
				daemons_us += (double)(ticks1[i] - ticks0[i]) / (double)tck * 1e6;
		daemons_us = done ? daemons_us / (double)done : 0;
		for (size_t k = 0; k < nall; k++)
			mean += (double)all[k] / 1000.0 / (double)nall;
		json_object_set_new(
		    cpu, "bench",
		    json_real(100.0 * (double)(ticks1[LOCALFED_MAX] - ticks0[LOCALFED_MAX]) /
		              (double)tck / secs));
		if (json) {
			json_t *out = json_pack(
			    "{s:i, s:i, s:i, s:f, s:s?, s:f, s:I, s:I, s:f, s:{s:f, s:f, s:f, s:f, "
			    "s:f}, s:o, s:I}",
			    "size", (int)size, "window", (int)window, "producers", (int)producers,
			    "rate", rate, "mode", rate > 0 ? "open-loop" : "closed-loop", "seconds",
			    secs, "delivered", (json_int_t)done, "failed", (json_int_t)failed,
			    "throughput", tput, "latency_ms", "p50", pct(all, nall, 0.50), "p99",
			    pct(all, nall, 0.99), "p99.9", pct(all, nall, 0.999), "max",
			    nall ? (double)all[nall - 1] / 1000.0 : 0.0, "mean", mean,
			    "cpu_percent", cpu, "sent", (json_int_t)sent);
			if (own)
				json_object_set_new(out, "cpu_us_per_message",
				                    json_real(daemons_us));
			json_object_set_new(out, "api", json_string(binary ? "binary" : "json"));
			if (own)
				json_object_set_new(out, "peer_rate",
				                    json_integer(BENCH_PEER_RATE));
			char *text = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
			puts(text);
			free(text);
			json_decref(out);
		} else {
			const char *k;
			json_t *v;
			printf("tern bench: %ld-byte referrals, %s, %ld producer(s) x window %ld, "
			       "%s API, %.0f s measured\n",
			       size, rate > 0 ? "open loop" : "closed loop", producers, window,
			       binary ? "binary" : "JSON", secs);
			if (rate > 0)
				printf("  offered        %10.0f msg/s\n", rate);
			printf("  delivered      %10llu (%llu failed)\n", (unsigned long long)done,
			       (unsigned long long)failed);
			printf("  throughput     %10.0f msg/s\n", tput);
			printf("  latency mean   %10.2f ms\n", mean);
			printf("  latency p50    %10.2f ms\n", pct(all, nall, 0.50));
			printf("  latency p99    %10.2f ms\n", pct(all, nall, 0.99));
			printf("  latency p99.9  %10.2f ms\n", pct(all, nall, 0.999));
			printf("  latency max    %10.2f ms\n",
			       nall ? (double)all[nall - 1] / 1000.0 : 0.0);
			printf("  CPU (%% of one core):");
			json_object_foreach(cpu, k, v) printf(" %s %.0f%%", k, json_real_value(v));
			printf("\n");
			if (own)
				printf("  daemons' CPU   %10.0f us per delivered message\n",
				       daemons_us);
			json_decref(cpu);
		}
		rc = failed == 0 && done > 0 ? CLI_OK : CLI_NO;
		for (long i = 0; i < producers && rc != CLI_OK; i++)
			if (ps[i].error[0]) {
				fprintf(stderr, "tern bench: producer %ld: %s\n", i, ps[i].error);
				break;
			}
	}
out:
	for (long i = 0; ps && i < producers; i++) {
		json_decref(ps[i].body);
		tern_json_message_free((ProtobufCMessage **)&ps[i].msg);
		free(ps[i].lat_us);
	}
	free(ps);
	free(all);
	json_decref(body);
	if (own)
		localfed_destroy(&lf, started && rc == CLI_OK, "bench");
	return rc;
}

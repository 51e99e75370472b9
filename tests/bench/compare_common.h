/* Shared by bench-rabbitmq and bench-nats (tests/bench/compare.sh): the same
 * workload as `tern bench` against another broker, reported the same way.
 * Each message carries its send time; latency runs from the publish to the
 * consumer's receipt on the same machine (CLOCK_MONOTONIC). */
#ifndef TERN_BENCH_COMPARE_COMMON_H
#define TERN_BENCH_COMPARE_COMMON_H

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cmp_args {
	const char *url;
	int size, window, duration, warmup;
};

struct cmp_stats {
	pthread_mutex_t mu;
	uint64_t *lat_us;
	size_t n, cap;
	uint64_t consumed;
	int64_t measure_from, stop_at;
};

static inline int64_t cmp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --url U --size B --window W --duration S --warmup S; 0 or exits 2. */
static inline void cmp_parse(int argc, char **argv, const char *prog, const char *defurl,
                             struct cmp_args *a)
{
	static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
	                                     {"size", required_argument, NULL, 's'},
	                                     {"window", required_argument, NULL, 'w'},
	                                     {"duration", required_argument, NULL, 'd'},
	                                     {"warmup", required_argument, NULL, 'm'},
	                                     {NULL, 0, NULL, 0}};
	int c;

	a->url = defurl;
	a->size = 1024;
	a->window = 64;
	a->duration = 10;
	a->warmup = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			a->url = optarg;
			break;
		case 's':
			a->size = atoi(optarg);
			break;
		case 'w':
			a->window = atoi(optarg);
			break;
		case 'd':
			a->duration = atoi(optarg);
			break;
		case 'm':
			a->warmup = atoi(optarg);
			break;
		default:
			fprintf(stderr,
			        "usage: %s [--url URL] [--size BYTES] [--window N] [--duration S] "
			        "[--warmup S]\n",
			        prog);
			exit(2);
		}
	}
	if (a->size < 16 || a->window < 1 || a->duration < 1 || a->warmup < 0) {
		fprintf(stderr, "%s: size at least 16, window and duration at least 1\n", prog);
		exit(2);
	}
}

/* The consumer side: one message with its embedded send time arrived. */
static inline void cmp_record(struct cmp_stats *s, const void *data, size_t len)
{
	int64_t sent, t = cmp_now_us();

	if (len < sizeof(sent))
		return;
	memcpy(&sent, data, sizeof(sent));
	if (sent < s->measure_from || t > s->stop_at)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 65536;
		uint64_t *nl = realloc(s->lat_us, nc * sizeof(*nl));
		if (nl != NULL) {
			s->lat_us = nl;
			s->cap = nc;
		}
	}
	if (s->n < s->cap)
		s->lat_us[s->n++] = (uint64_t)(t - sent);
	s->consumed++;
	pthread_mutex_unlock(&s->mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline double cmp_pct(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);

	return n ? (double)v[i ? i - 1 : 0] / 1000.0 : 0;
}

/* The same JSON fields as `tern bench --json`. */
static inline void cmp_report(const char *system, const struct cmp_args *a, struct cmp_stats *s,
                              uint64_t failed)
{
	double secs = (double)a->duration;

	qsort(s->lat_us, s->n, sizeof(*s->lat_us), cmp_u64);
	printf("{\"system\": \"%s\", \"size\": %d, \"window\": %d, \"seconds\": %.0f, "
	       "\"delivered\": %llu, \"failed\": %llu, \"throughput\": %.1f, \"latency_ms\": "
	       "{\"p50\": %.3f, \"p99\": %.3f, \"p99.9\": %.3f, \"max\": %.3f}}\n",
	       system, a->size, a->window, secs, (unsigned long long)s->consumed,
	       (unsigned long long)failed, (double)s->consumed / secs, cmp_pct(s->lat_us, s->n, 0.5),
	       cmp_pct(s->lat_us, s->n, 0.99), cmp_pct(s->lat_us, s->n, 0.999),
	       s->n ? (double)s->lat_us[s->n - 1] / 1000.0 : 0);
}

#endif

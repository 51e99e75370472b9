#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

static void add(tern_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(tern_prom *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->cap == 0 && p->buf == NULL) {
		p->cap = 4096;
		if ((p->buf = malloc(p->cap)) == NULL)
			return;
		p->buf[0] = 0;
	}
	if (p->buf == NULL)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < p->cap - p->len) {
			p->len += (size_t)n;
			return;
		}
		char *nb = realloc(p->buf, p->cap * 2);
		if (nb == NULL) {
			free(p->buf);
			p->buf = NULL;
			return;
		}
		p->buf = nb;
		p->cap *= 2;
	}
}

void tern_prom_family(tern_prom *p, const char *name, const char *type, const char *help)
{
	add(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tern_prom_sample(tern_prom *p, const char *name, const char *labels, double value)
{
	if (labels && labels[0])
		add(p, "%s{%s} %.17g\n", name, labels, value);
	else
		add(p, "%s %.17g\n", name, value);
}

void tern_prom_histogram(tern_prom *p, const char *name, const char *help, const double *le,
                         const uint64_t *counts, size_t n, double sum)
{
	uint64_t cum = 0;

	tern_prom_family(p, name, "histogram", help);
	for (size_t i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			add(p, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
		else
			add(p, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	add(p, "%s_sum %.17g\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

void tern_prom_directory(tern_prom *p, const tern_directory *d)
{
	char labels[96];

	tern_prom_family(p, "tern_certificate_expiry_timestamp_seconds", "gauge",
	                 "when each member's certificate expires (Unix time)");
	for (size_t i = 0; i < tern_directory_count(d); i++) {
		const tern_member *m = tern_directory_at(d, i);
		snprintf(labels, sizeof(labels), "node=\"%s\"", m->node_id);
		tern_prom_sample(p, "tern_certificate_expiry_timestamp_seconds", labels,
		                 (double)m->cert_not_after);
	}
	tern_prom_family(p, "tern_crl_next_update_timestamp_seconds", "gauge",
	                 "when the CRL must be replaced (Unix time)");
	tern_prom_sample(p, "tern_crl_next_update_timestamp_seconds", "",
	                 (double)tern_directory_crl_next_update(d));
	tern_prom_family(p, "tern_directory_version", "gauge", "version of the directory in use");
	tern_prom_sample(p, "tern_directory_version", "", (double)tern_directory_version(d));
}

void tern_prom_free(tern_prom *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <tern/log.h>

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

void tern_prom_one(tern_prom *p, const char *name, const char *type, const char *help, double value)
{
	tern_prom_family(p, name, type, help);
	tern_prom_sample(p, name, "", value);
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

void tern_prom_directory(tern_prom *p, const tern_directory *d, int64_t crl_number,
                         const uint64_t rollbacks[2])
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
	tern_prom_family(p, "tern_expiry_alarm", "gauge",
	                 "1 when a certificate expires within 30 days or the CRL within 7");
	{
		int64_t now = (int64_t)time(NULL);
		for (size_t i = 0; i < tern_directory_count(d); i++) {
			const tern_member *m = tern_directory_at(d, i);
			snprintf(labels, sizeof(labels), "what=\"certificate\",node=\"%s\"",
			         m->node_id);
			tern_prom_sample(p, "tern_expiry_alarm", labels,
			                 m->cert_not_after - now < TERN_CERT_ALARM_S);
		}
		tern_prom_sample(p, "tern_expiry_alarm", "what=\"crl\"",
		                 tern_directory_crl_next_update(d) - now < TERN_CRL_ALARM_S);
	}
	tern_prom_family(p, "tern_directory_version", "gauge", "version of the directory in use");
	tern_prom_sample(p, "tern_directory_version", "", (double)tern_directory_version(d));
	tern_prom_family(p, "tern_crl_number", "gauge", "cRLNumber of the CRL in use");
	tern_prom_sample(p, "tern_crl_number", "", (double)crl_number);
	tern_prom_family(p, "tern_trust_rollbacks_refused_total", "counter",
	                 "a CRL or directory older than the one in force, refused on reload");
	tern_prom_sample(p, "tern_trust_rollbacks_refused_total", "what=\"crl\"",
	                 (double)rollbacks[0]);
	tern_prom_sample(p, "tern_trust_rollbacks_refused_total", "what=\"directory\"",
	                 (double)rollbacks[1]);
}

void tern_prom_free(tern_prom *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}

int tern_expiry_warn(const tern_directory *d, const char *self_id, int64_t now)
{
	const tern_member *self;
	int64_t crl = tern_directory_crl_next_update(d);
	int n = 0;

	if (tern_directory_find(d, self_id, &self) == 0 &&
	    self->cert_not_after - now < TERN_CERT_ALARM_S) {
		log_warnx("this party's certificate expires in %lld days: have the CA issue a new "
		          "one (tern keygen, tern ca issue)",
		          (long long)((self->cert_not_after - now) / 86400));
		n++;
	}
	if (crl && crl <= now) {
		/* Past nextUpdate every sender is refused: as urgent as it gets. */
		log_warnx("the CRL expired %lld hours ago and every message is refused until a "
		          "new one is in force: sign one (tern ca crl), distribute it and send "
		          "SIGHUP",
		          (long long)((now - crl) / 3600));
		n++;
	} else if (crl - now < TERN_CRL_ALARM_S) {
		log_warnx("the CRL must be replaced within %lld hours: sign one (tern ca crl), "
		          "distribute it and send SIGHUP",
		          (long long)((crl - now) / 3600));
		n++;
	}
	return n;
}

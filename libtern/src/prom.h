/* Prometheus text exposition (version 0.0.4) for the daemons' /metrics:
 * a growing buffer, and the series both daemons share. */
#ifndef TERN_PROM_H
#define TERN_PROM_H

#include <stddef.h>
#include <stdint.h>

#include <tern/directory.h>

/* How long before an expiry the alarms go off. */
#define TERN_CERT_ALARM_S (30 * 86400)
#define TERN_CRL_ALARM_S (7 * 86400)

#define TERN_PROM_CTYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct tern_prom {
	char *buf; /* NUL-terminated; NULL after an allocation failure */
	size_t len, cap;
} tern_prom;

/* "# HELP name help" and "# TYPE name type", once per metric family. */
void tern_prom_family(tern_prom *p, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. labels is "" or `node="x",type="y"`
 * (values must not need escaping: ids and type names do not). */
void tern_prom_sample(tern_prom *p, const char *name, const char *labels, double value);
/* A family with one unlabelled sample: the common case of a counter or gauge. */
void tern_prom_one(tern_prom *p, const char *name, const char *type, const char *help,
                   double value);
/* A histogram with bucket upper bounds le[0..n) and counts per bucket (not
 * cumulative; counts[n] is +Inf), plus sum. */
void tern_prom_histogram(tern_prom *p, const char *name, const char *help, const double *le,
                         const uint64_t *counts, size_t n, double sum);
/* Certificate expiry of every member, CRL next update and number, directory
 * version, and how many older CRLs ([0]) and directories ([1]) were refused. */
void tern_prom_directory(tern_prom *p, const tern_directory *d, int64_t crl_number,
                         const uint64_t rollbacks[2]);
void tern_prom_free(tern_prom *p);

/* Logs a warning, saying what to do, when self_id's certificate or the CRL
 * is near expiry (now: seconds since the epoch). Returns how many. */
int tern_expiry_warn(const tern_directory *d, const char *self_id, int64_t now);

#endif

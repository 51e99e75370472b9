/* Prometheus text for /metrics: families, samples, cumulative histograms,
 * and the expiry alarms both daemons raise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <tern/log.h>

#include "directory_int.h"
#include "prom.h"

static void test_samples_and_histogram(void **state)
{
	static const double le[] = {1, 4};
	const uint64_t counts[] = {2, 3, 1}; /* <=1, <=4, more */
	tern_prom p = {0};

	(void)state;
	tern_prom_family(&p, "tern_x_total", "counter", "things");
	tern_prom_sample(&p, "tern_x_total", "type=\"a\"", 3);
	tern_prom_sample(&p, "tern_y", "", 0.5);
	tern_prom_histogram(&p, "tern_h", "sizes", le, counts, 2, 17);
	assert_non_null(p.buf);
	assert_non_null(strstr(p.buf, "# HELP tern_x_total things\n# TYPE tern_x_total counter\n"));
	assert_non_null(strstr(p.buf, "tern_x_total{type=\"a\"} 3\n"));
	assert_non_null(strstr(p.buf, "tern_y 0.5\n"));
	/* Buckets are cumulative, +Inf equals the count. */
	assert_non_null(strstr(p.buf, "tern_h_bucket{le=\"1\"} 2\n"
	                              "tern_h_bucket{le=\"4\"} 5\n"
	                              "tern_h_bucket{le=\"+Inf\"} 6\n"
	                              "tern_h_sum 17\n"
	                              "tern_h_count 6\n"));
	tern_prom_free(&p);
}

static void test_grows_past_its_first_buffer(void **state)
{
	tern_prom p = {0};
	char name[32];

	(void)state;
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "tern_m%d", i);
		tern_prom_sample(&p, name, "", i);
	}
	assert_non_null(p.buf);
	assert_non_null(strstr(p.buf, "tern_m1999 1999\n"));
	assert_int_equal(strlen(p.buf), p.len);
	tern_prom_free(&p);
}

static void test_expiry_alarms(void **state)
{
	tern_directory *d = NULL;
	tern_member soon, later;
	tern_prom p = {0};
	int64_t now = (int64_t)time(NULL);

	(void)state;
	memset(&soon, 0, sizeof(soon));
	memset(&later, 0, sizeof(later));
	snprintf(soon.node_id, sizeof(soon.node_id), "unhcr");
	soon.cert_not_after = now + 10 * 86400;
	snprintf(later.node_id, sizeof(later.node_id), "sweden");
	later.cert_not_after = now + 400 * 86400;
	assert_int_equal(tern_directory_new("tern-test", 1, &d), 0);
	assert_int_equal(tern_directory_add(d, &soon), 0);
	assert_int_equal(tern_directory_add(d, &later), 0);
	/* No CRL next-update was set: that counts as due. */
	assert_int_equal(tern_expiry_warn(d, "unhcr", now), 2);
	assert_int_equal(tern_expiry_warn(d, "sweden", now), 1);
	tern_prom_directory(&p, d, 7, (const uint64_t[2]){1, 0});
	assert_non_null(
	    strstr(p.buf, "tern_expiry_alarm{what=\"certificate\",node=\"unhcr\"} 1\n"));
	assert_non_null(strstr(p.buf, "tern_crl_number 7\n"));
	assert_non_null(strstr(p.buf, "tern_trust_rollbacks_refused_total{what=\"crl\"} 1\n"));
	assert_non_null(
	    strstr(p.buf, "tern_trust_rollbacks_refused_total{what=\"directory\"} 0\n"));
	assert_non_null(
	    strstr(p.buf, "tern_expiry_alarm{what=\"certificate\",node=\"sweden\"} 0\n"));
	tern_prom_free(&p);
	tern_directory_free(&d);
}

/* A CRL past its nextUpdate raises the alarms an expiring certificate does:
 * the gauge at 1, and a warning that says it expired, not "within -N hours". */
static void test_lapsed_crl_alarms(void **state)
{
	tern_directory *d = NULL;
	tern_member m;
	tern_prom p = {0};
	int64_t now = (int64_t)time(NULL);

	(void)state;
	memset(&m, 0, sizeof(m));
	snprintf(m.node_id, sizeof(m.node_id), "sweden");
	m.cert_not_after = now + 400 * 86400;
	assert_int_equal(tern_directory_new("tern-test", 1, &d), 0);
	assert_int_equal(tern_directory_add(d, &m), 0);
	d->crl_next_update = now - 7200; /* lapsed two hours ago */
	assert_int_equal(tern_expiry_warn(d, "sweden", now), 1);
	tern_prom_directory(&p, d, 3, (const uint64_t[2]){0, 0});
	assert_non_null(strstr(p.buf, "tern_expiry_alarm{what=\"crl\"} 1\n"));
	assert_non_null(
	    strstr(p.buf, "tern_expiry_alarm{what=\"certificate\",node=\"sweden\"} 0\n"));
	tern_prom_free(&p);
	d->crl_next_update = now + 30 * 86400; /* a fresh one: no alarm */
	assert_int_equal(tern_expiry_warn(d, "sweden", now), 0);
	tern_prom_directory(&p, d, 4, (const uint64_t[2]){0, 0});
	assert_non_null(strstr(p.buf, "tern_expiry_alarm{what=\"crl\"} 0\n"));
	tern_prom_free(&p);
	tern_directory_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_samples_and_histogram),
	    cmocka_unit_test(test_grows_past_its_first_buffer),
	    cmocka_unit_test(test_expiry_alarms),
	    cmocka_unit_test(test_lapsed_crl_alarms),
	};
	log_init("test_prom", TERN_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* libtern core: errors, file helpers, paths, node ids, roles, bounded protobuf decoding. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <tern/error.h>
#include <tern/log.h>
#include <tern/msgtype.h>
#include <tern/v1/messages.pb-c.h>

#include "backoff.h"
#include "failmalloc.h"
#include "pbuf.h"
#include "testutil.h"
#include "util.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	return tt_mkdtemp(tmpdir, sizeof(tmpdir), "core");
}

static int teardown(void **state)
{
	(void)state;
	return tt_rmtree(tmpdir);
}

/* stderr into a fresh temporary file, whose descriptor *fd stays open for
 * reading; *saved is the old stderr, for stderr_back. */
static void stderr_to_file(char *path, int *fd, int *saved)
{
	*fd = mkstemp(path);
	*saved = dup(STDERR_FILENO);
	assert_true(*fd >= 0 && *saved >= 0);
	assert_int_equal(dup2(*fd, STDERR_FILENO), STDERR_FILENO);
}

/* stderr back; what the file got into buf (NUL-terminated), which must not
 * be empty; the file removed. Returns its length. */
static ssize_t stderr_back(const char *path, int fd, int saved, char *buf, size_t cap)
{
	ssize_t n;

	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, cap - 1, 0);
	close(fd);
	unlink(path);
	assert_true(n > 0);
	buf[n] = 0;
	return n;
}

/* One logfmt record per line, quotes and backslashes escaped, newlines
 * flattened, each line written whole. */
static void test_log_lines(void **state)
{
	char path[] = "/tmp/tern-test-log.XXXXXX", buf[4096], big[3000];
	int fd, saved;
	ssize_t n;

	(void)state;
	stderr_to_file(path, &fd, &saved);
	log_init("test", TERN_LOG_INFO);
	log_debug("not shown");
	log_warnx("a \"quoted\" c:\\dir\nsecond line");
	log_warnx("bytes \x9c\x1b[2J from a file");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_info("%s", big); /* cut to the buffer, still one closed line */
	n = stderr_back(path, fd, saved, buf, sizeof(buf));
	assert_null(strstr(buf, "not shown"));
	assert_non_null(strstr(buf, " level=warn prog=test msg=\"a \\\"quoted\\\" c:\\\\dir second "
	                            "line\"\n"));
	assert_non_null(strstr(buf, " level=info prog=test msg=\"xxx"));
	assert_non_null(strstr(buf, "msg=\"bytes \\x9c\\x1b[2J from a file\"\n"));
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(buf[n - 2], '"');
	{
		int lines = 0;
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
		assert_int_equal(lines, 3);
	}
}

static off_t file_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

static void *log_from_thread(void *arg)
{
	(void)arg;
	log_info("from another thread");
	return NULL;
}

/* A holding thread's info lines wait for log_flush (one write for the turn);
 * a warning writes them first, then itself; a full buffer flushes whole
 * lines; other threads are not held; log_hold(0) writes what is left. */
static void test_log_hold(void **state)
{
	char path[] = "/tmp/tern-test-log.XXXXXX", buf[16384];
	int fd, saved;
	pthread_t t;
	off_t before;
	ssize_t n;

	(void)state;
	stderr_to_file(path, &fd, &saved);
	log_init("test", TERN_LOG_INFO);
	log_hold(1);
	log_info("held one");
	log_info("held two");
	assert_int_equal(file_size(fd), 0);
	assert_int_equal(pthread_create(&t, NULL, log_from_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	before = file_size(fd);
	assert_true(before > 0); /* the other thread's line, at once */
	log_warnx("a warning");  /* not held, and after what was held */
	log_info("held three");
	log_flush();
	for (int i = 0; i < 100; i++) /* ~9 KiB: the buffer fills and flushes */
		log_info("line %03d of a long turn", i);
	before = file_size(fd);
	assert_true(before > 4096);
	log_hold(0);
	assert_true(file_size(fd) > before);
	log_info("not held");
	n = stderr_back(path, fd, saved, buf, sizeof(buf));
	{
		const char *other = strstr(buf, "from another thread"),
		           *one = strstr(buf, "held one"), *two = strstr(buf, "held two"),
		           *warn = strstr(buf, "a warning"), *three = strstr(buf, "held three"),
		           *first = strstr(buf, "line 000"), *last = strstr(buf, "line 099"),
		           *after = strstr(buf, "not held");
		int lines = 0;
		assert_true(other && one && two && warn && three && first && last && after);
		assert_true(other < one && one < two && two < warn && warn < three &&
		            three < first && first < last && last < after);
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
		assert_int_equal(lines, 106); /* whole lines, none lost or doubled */
	}
}

static void test_strerror_covers_every_code(void **state)
{
	(void)state;
	for (int c = 0; c < TERN_ERR_COUNT; c++) {
		assert_string_not_equal(tern_strerror(c), "unknown error");
		assert_string_not_equal(tern_errcode_name(c), "unknown");
	}
	assert_string_equal(tern_strerror(TERN_ERR_COUNT), "unknown error");
	assert_string_equal(tern_strerror(-1), "unknown error");
	assert_string_equal(tern_errcode_name(TERN_EBADSIG), "bad-signature");
}

static void test_fail_records_detail(void **state)
{
	(void)state;
	tern_errdetail_clear();
	assert_string_equal(tern_errdetail(), "");
	assert_int_equal(tern_fail(TERN_EIO, "cannot read %s", "x.conf"), TERN_EIO);
	assert_string_equal(tern_errdetail(), "cannot read x.conf");
}

static void test_file_write_mode_and_read_back(void **state)
{
	char path[128];
	struct stat st;
	uint8_t *buf;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%s/secret", tmpdir);
	umask(0);
	assert_int_equal(tern_file_write(path, "hello", 5, 0600), TERN_OK);
	umask(022);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(tern_file_check_private(path), TERN_OK);
	assert_int_equal(tern_file_read(path, 100, &buf, &len), TERN_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(buf[5], 0);
	free(buf);
	assert_int_equal(tern_file_read(path, 4, &buf, &len), TERN_ETOOBIG);
	chmod(path, 0640);
	assert_int_equal(tern_file_check_private(path), TERN_EPERM);
	assert_non_null(strstr(tern_errdetail(), "chmod 600"));
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(tern_file_read(path, 100, &buf, &len), TERN_ENOENT);
}

/* Bytes quoted in a message: printable ASCII as is, the rest \xNN, '\' doubled,
 * bounded, "..." when cut. */
static void test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(tern_escape("plain text", 10, 40, out, sizeof(out)), 10);
	assert_string_equal(out, "plain text");
	tern_escape("a\x9c\x1b[2J\\b\n", 9, 40, out, sizeof(out));
	assert_string_equal(out, "a\\x9c\\x1b[2J\\\\b\\x0a");
	tern_escape("abcdefghij", 10, 4, out, sizeof(out));
	assert_string_equal(out, "abcd...");
	/* the output buffer bounds it too, and it stays terminated */
	tern_escape("\xff\xff\xff\xff\xff\xff\xff\xff", 8, 100, out, 14);
	assert_string_equal(out, "\\xff\\xff...");
	tern_escape("", 0, 10, out, sizeof(out));
	assert_string_equal(out, "");
}

/* A named pipe or a device where a file should be is refused at once, without
 * waiting for a writer, and the message says what it is. */
static void test_read_refuses_non_files(void **state)
{
	char path[128];
	uint8_t *buf = NULL;
	size_t len = 0;
	time_t t0 = time(NULL);

	(void)state;
	snprintf(path, sizeof(path), "%s/pipe", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(tern_file_read(path, 100, &buf, &len), TERN_EIO);
	assert_non_null(strstr(tern_errdetail(), "is a named pipe (FIFO), not a regular file"));
	assert_int_equal(tern_file_read_private(path, 100, &buf, &len), TERN_EIO);
	assert_non_null(strstr(tern_errdetail(), path));
	assert_non_null(strstr(tern_errdetail(), "named pipe"));
	assert_true(time(NULL) - t0 < 5);
	assert_int_equal(tern_file_read("/dev/null", 100, &buf, &len), TERN_EIO);
	assert_non_null(strstr(tern_errdetail(), "/dev/null is a character device"));
	assert_int_equal(tern_file_read(tmpdir, 100, &buf, &len), TERN_EIO);
	assert_non_null(strstr(tern_errdetail(), "is a directory"));
	assert_null(buf);
}

/* StrictModes: the file and every directory above it up to "/". */
static void test_path_check_strict(void **state)
{
	char dir[128], file[160], other[128], link[160], bad[256];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/conf", tmpdir);
	snprintf(file, sizeof(file), "%s/node.conf", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(tt_write_file(file, "x", 1, 0644), 0);
	/* /tmp above it is root's and sticky: accepted */
	assert_int_equal(tern_path_check_strict(file, TERN_STRICT_SELF, bad, sizeof(bad)), TERN_OK);
	chmod(file, 0666);
	assert_int_equal(tern_path_check_strict(file, TERN_STRICT_SELF, bad, sizeof(bad)),
	                 TERN_EPERM);
	assert_string_equal(bad, file);
	assert_non_null(strstr(tern_errdetail(), "writable by its group and others (mode 0666)"));
	assert_non_null(strstr(tern_errdetail(), "chmod go-w"));
	/* without TERN_STRICT_SELF only the directories count (a key's own mode
	 * is its loader's business) */
	assert_int_equal(tern_path_check_strict(file, 0, bad, sizeof(bad)), TERN_OK);
	chmod(file, 0644);
	chmod(dir, 0770);
	assert_int_equal(tern_path_check_strict(file, 0, bad, sizeof(bad)), TERN_EPERM);
	assert_string_equal(bad, dir);
	assert_non_null(strstr(tern_errdetail(), "writable by its group (mode 0770)"));
	/* a missing file: its directory is still checked */
	snprintf(link, sizeof(link), "%s/missing", dir);
	assert_int_equal(tern_path_check_strict(link, TERN_STRICT_SELF, bad, sizeof(bad)),
	                 TERN_EPERM);
	assert_string_equal(bad, dir);
	chmod(dir, 0700);
	/* a symbolic link is followed: the directory the file really is in counts */
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(link, sizeof(link), "%s/other/real.conf", tmpdir);
	assert_int_equal(tt_write_file(link, "x", 1, 0644), 0);
	snprintf(link, sizeof(link), "%s/linked.conf", dir);
	snprintf(file, sizeof(file), "%s/other/real.conf", tmpdir);
	assert_int_equal(symlink(file, link), 0);
	assert_int_equal(tern_path_check_strict(link, TERN_STRICT_SELF, bad, sizeof(bad)), TERN_OK);
	chmod(other, 0777);
	assert_int_equal(tern_path_check_strict(link, TERN_STRICT_SELF, bad, sizeof(bad)),
	                 TERN_EPERM);
	assert_string_equal(bad, other);
	/* a directory like /tmp (root's, sticky) may be world-writable */
	if (geteuid() == 0) {
		chmod(other, 01777);
		assert_int_equal(tern_path_check_strict(link, TERN_STRICT_SELF, bad, sizeof(bad)),
		                 TERN_OK);
	}
	chmod(other, 0700);
}

/* 100 ms doubling to the maximum, each wait shortened by up to a quarter;
 * a repeated line written at once, then once a period with the count. */
static void test_backoff_and_lograte(void **state)
{
	tern_backoff b;
	tern_lograte l;
	uint64_t held = 99;
	int64_t expect = 100;

	(void)state;
	tern_backoff_init(&b, 100, 30000);
	for (int i = 0; i < 20; i++) {
		int64_t w = tern_backoff_next(&b);
		assert_true(w <= expect && w >= expect - expect / 4);
		expect = expect * 2 > 30000 ? 30000 : expect * 2;
	}
	tern_backoff_reset(&b);
	assert_true(tern_backoff_next(&b) <= 100);

	tern_lograte_init(&l, 60000);
	assert_int_equal(tern_lograte_due(&l, 1000, &held), 1);
	assert_int_equal(held, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(tern_lograte_due(&l, 2000 + i, &held), 0);
	assert_int_equal(tern_lograte_due(&l, 61000, &held), 1);
	assert_int_equal(held, 5);
	assert_int_equal(tern_lograte_due(&l, 62000, &held), 0);
	tern_lograte_reset(&l, &held);
	assert_int_equal(held, 1);
	assert_int_equal(tern_lograte_due(&l, 63000, &held), 1);
	assert_int_equal(held, 0);
}

static void test_mkdirs(void **state)
{
	char path[128];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
	assert_int_equal(tern_mkdirs(path, 0700), TERN_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(tern_mkdirs(path, 0700), TERN_OK);
}

static void test_path_resolve(void **state)
{
	char *p;

	(void)state;
	assert_int_equal(tern_path_resolve("/etc/tern/node.conf", "node.key", &p), TERN_OK);
	assert_string_equal(p, "/etc/tern/node.key");
	free(p);
	assert_int_equal(tern_path_resolve("/etc/tern/node.conf", "/srv/ca.crt", &p), TERN_OK);
	assert_string_equal(p, "/srv/ca.crt");
	free(p);
	assert_int_equal(tern_path_resolve("node.conf", "../ca/ca.crt", &p), TERN_OK);
	assert_string_equal(p, "./../ca/ca.crt");
	free(p);
}

static void test_node_ids(void **state)
{
	(void)state;
	assert_true(tern_node_id_valid("unhcr"));
	assert_true(tern_node_id_valid("sweden-2"));
	assert_false(tern_node_id_valid(""));
	assert_false(tern_node_id_valid("2sweden"));
	assert_false(tern_node_id_valid("Sweden"));
	assert_false(tern_node_id_valid("a b"));
	assert_false(tern_node_id_valid("../etc"));
	assert_false(
	    tern_node_id_valid("a234567890123456789012345678901234567890123456789012345678901234"));
}

static void test_roles(void **state)
{
	unsigned bits;
	char buf[64];

	(void)state;
	assert_int_equal(tern_roles_parse("referrer,state", &bits), TERN_OK);
	assert_int_equal(bits, TERN_ROLE_REFERRER | TERN_ROLE_STATE);
	tern_roles_format(bits, buf, sizeof(buf));
	assert_string_equal(buf, "referrer,state");
	assert_int_equal(tern_roles_parse("king", &bits), TERN_EINVAL);
	assert_int_equal(tern_roles_parse("", &bits), TERN_EINVAL);
}

static void test_msgtypes(void **state)
{
	const tern_msgtype *t;

	(void)state;
	t = tern_msgtype_by_name("acceptance-decision");
	assert_non_null(t);
	assert_int_equal(t->type, TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION);
	assert_ptr_equal(t->desc, &tern__v1__acceptance_decision__descriptor);
	assert_int_equal(t->sender_roles, TERN_ROLE_STATE);
	assert_int_equal(
	    tern_msgtype_by_type(TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION)->sender_roles,
	    TERN_ROLE_MOVEMENT);
	assert_null(tern_msgtype_by_name("love-letter"));
}

/* Under AddressSanitizer an allocation too large to be served aborts by
 * default; here it must fail as the C library's does. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* Growing an array: doubled when full; when memory runs out, the array and
 * its capacity are as they were (the node's old GROW lost the array and
 * doubled the capacity of a NULL pointer). */
static void test_grow(void **state)
{
	int *a = NULL;
	size_t cap = 0;
	struct big {
		char b[SIZE_MAX / 256];
	};
	struct big *huge;
	void *keep;

	(void)state;
	assert_int_equal(TERN_GROW(a, 0, cap), TERN_OK);
	assert_non_null(a);
	assert_int_equal(cap, 64);
	a[63] = 7;
	assert_int_equal(TERN_GROW(a, 63, cap), TERN_OK); /* room left: unchanged */
	assert_int_equal(cap, 64);
	assert_int_equal(TERN_GROW(a, 64, cap), TERN_OK);
	assert_int_equal(cap, 128);
	assert_int_equal(a[63], 7);
	/* A realloc that must fail: the array stays, with its capacity. */
	keep = a;
	cap = 64;
	huge = keep;
	assert_int_equal(TERN_GROW(huge, 64, cap), TERN_ENOMEM);
	assert_ptr_equal(huge, keep);
	assert_int_equal(cap, 64);
	cap = 1; /* doubled, the size would be within range: realloc itself fails */
	assert_int_equal(tern_grow(&keep, 1, &cap, SIZE_MAX / 4), TERN_ENOMEM);
	assert_ptr_equal(keep, a);
	assert_int_equal(cap, 1);
	free(a);
}

static void test_pb_unpack_limits(void **state)
{
	Tern__V1__Receipt r = TERN__V1__RECEIPT__INIT;
	ProtobufCMessage *m = NULL;
	uint8_t *buf;
	size_t len;
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};

	(void)state;
	r.message_id = "0190c2a4-8c1e-7000-8000-000000000001";
	r.status = TERN__V1__RECEIPT__STATUS__ACCEPTED;
	assert_int_equal(tern_pb_pack(&r.base, &buf, &len), TERN_OK);
	assert_int_equal(tern_pb_unpack(&tern__v1__receipt__descriptor, buf, len, 4096, &m),
	                 TERN_OK);
	assert_string_equal(((Tern__V1__Receipt *)m)->message_id, r.message_id);
	tern_pb_free(&m);
	assert_null(m);
	assert_int_equal(tern_pb_unpack(&tern__v1__receipt__descriptor, buf, len, len - 1, &m),
	                 TERN_ETOOBIG);
	assert_int_equal(
	    tern_pb_unpack(&tern__v1__receipt__descriptor, garbage, sizeof(garbage), 4096, &m),
	    TERN_EMALFORMED);
	free(buf);
}

/* A message with many small repeated strings costs far more memory decoded
 * than encoded; the budget must stop it rather than let it grow. */
static void test_pb_unpack_budget(void **state)
{
	size_t n = 200000, len = 2 * n;
	uint8_t *buf = malloc(len);
	ProtobufCMessage *m = NULL;

	(void)state;
	/* field 10 (linked_cases), length-delimited, empty: tag 0x52, length 0 */
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = 0x52;
		buf[2 * i + 1] = 0x00;
	}
	/* The input's fault, not the process's: not TERN_ENOMEM, which readers
	 * wait out (a node would ask for the message again for ever). */
	assert_int_equal(tern_pb_unpack(&tern__v1__case_referral__descriptor, buf, len, len, &m),
	                 TERN_EMALFORMED);
	assert_non_null(strstr(tern_errdetail(), "budget"));
	assert_null(m);
	free(buf);
}

/* No memory while decoding is the process's shortage, which may pass
 * (TERN_ENOMEM: readers put the input off); over the budget is the input's
 * fault (test_pb_unpack_budget). Before, a failed malloc read as bytes that
 * do not decode, and the budget as a lack of memory. */
static void test_pb_unpack_no_memory(void **state)
{
	(void)state;
#if MALLOC_CAN_FAIL
	uint8_t buf[] = {0x0a, 0x03, 'C', '-', '1'}; /* case_id "C-1" */
	ProtobufCMessage *m = NULL;
	int rc;

	malloc_fails = 1;
	rc =
	    tern_pb_unpack(&tern__v1__case_referral__descriptor, buf, sizeof(buf), sizeof(buf), &m);
	malloc_fails = 0;
	assert_int_equal(rc, TERN_ENOMEM);
	assert_null(m);
	assert_int_equal(
	    tern_pb_unpack(&tern__v1__case_referral__descriptor, buf, sizeof(buf), sizeof(buf), &m),
	    TERN_OK);
	tern_pb_free(&m);
#else
	skip(); /* AddressSanitizer's malloc cannot be made to fail here */
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_lines),
	    cmocka_unit_test(test_log_hold),
	    cmocka_unit_test(test_strerror_covers_every_code),
	    cmocka_unit_test(test_fail_records_detail),
	    cmocka_unit_test(test_file_write_mode_and_read_back),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_read_refuses_non_files),
	    cmocka_unit_test(test_path_check_strict),
	    cmocka_unit_test(test_backoff_and_lograte),
	    cmocka_unit_test(test_mkdirs),
	    cmocka_unit_test(test_path_resolve),
	    cmocka_unit_test(test_node_ids),
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_msgtypes),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_pb_unpack_limits),
	    cmocka_unit_test(test_pb_unpack_budget),
	    cmocka_unit_test(test_pb_unpack_no_memory),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

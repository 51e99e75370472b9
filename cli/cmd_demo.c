/* tern demo: a whole federation on this machine, one case walked through it. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/examples.h>

#include "commands.h"
#include "localfed.h"
#include "util.h"

static const char *const nodes[] = {"unhcr", "sweden", "iom", "portugal"};

struct demo {
	localfed lf;
	int64_t t0;
	int events;
};

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *f)
{
	fputs("Usage: tern demo [--keep DIR] [--base-port N]\n"
	      "\n"
	      "Builds a development federation in a temporary directory, starts the broker\n"
	      "and the four nodes (unhcr, sweden, iom, portugal), and walks one resettlement\n"
	      "case through it: a referral from UNHCR to Sweden, Sweden's acceptance to UNHCR\n"
	      "and IOM, IOM's travel booking and arrival to Sweden and UNHCR, each with its\n"
	      "signed receipt. Prints the case's timeline, then stops everything.\n"
	      "\n"
	      "Options:\n"
	      "  --keep DIR      build the federation in DIR and keep it (and the logs)\n"
	      "  --base-port N   the broker's port (default: a free port from 20000-40000)\n"
	      "\n"
	      "Exit status: 0 when every message was delivered with a verified receipt.\n"
	      "\n"
	      "Examples:\n"
	      "  tern demo\n"
	      "  tern demo --keep /tmp/tern-demo --base-port 7700\n",
	      f);
}

static void event(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void event(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	printf("  +%6.2fs  ", (double)(tern_now_ms() - d->t0) / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	d->events++;
}

static int call(struct demo *d, const char *node, json_t *req, json_t **resp)
{
	char sock[PATH_MAX + 32];
	int rc;

	localfed_socket(&d->lf, node, sock, sizeof(sock));
	json_object_set_new(req, "v", json_integer(TERN_API_VERSION));
	rc = tern_api_call(sock, req, 30000, resp);
	json_decref(req);
	if (rc != TERN_OK)
		return rc;
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		fprintf(stderr, "tern demo: %s answered %s: %s\n", node,
		        json_string_value(json_object_get(*resp, "error")),
		        json_string_value(json_object_get(*resp, "message")));
		return TERN_EINVAL;
	}
	return TERN_OK;
}

/* Sends body from node to the comma-less list, returns the message id. */
static int send_msg(struct demo *d, const char *from, const char *const *to, size_t nto,
                    const char *type, json_t *body, char id[37])
{
	json_t *arr = json_array(), *r = NULL;
	int rc;

	for (size_t i = 0; i < nto; i++)
		json_array_append_new(arr, json_string(to[i]));
	rc = call(
	    d, from,
	    json_pack("{s:s, s:o, s:s, s:O}", "op", "send", "to", arr, "type", type, "body", body),
	    &r);
	if (rc == TERN_OK)
		snprintf(id, 37, "%s", json_string_value(json_object_get(r, "message_id")));
	json_decref(r);
	return rc;
}

static int wait_delivered(struct demo *d, const char *from, const char *id)
{
	int64_t until = tern_now_ms() + 30000;

	while (!interrupted && tern_now_ms() < until) {
		json_t *r = NULL;
		const char *st;
		if (call(d, from, json_pack("{s:s, s:s}", "op", "status", "message_id", id), &r) !=
		    TERN_OK) {
			json_decref(r);
			return TERN_EIO;
		}
		st = json_string_value(json_object_get(r, "state"));
		if (strcmp(st, "delivered") == 0) {
			json_decref(r);
			return TERN_OK;
		}
		if (strcmp(st, "rejected") == 0 || strcmp(st, "expired") == 0) {
			fprintf(stderr, "tern demo: %s was %s: %s\n", id, st,
			        json_string_value(json_object_get(r, "reason_text")));
			json_decref(r);
			return TERN_EINVAL;
		}
		json_decref(r);
		usleep(20000);
	}
	fprintf(stderr, "tern demo: %s not delivered within 30 s; see the logs in %s\n", id,
	        d->lf.dir);
	return TERN_EIO;
}

/* The recipient takes the message from its inbox and acknowledges it. */
static int take(struct demo *d, const char *node, const char *id)
{
	json_t *r = NULL;
	const char *got;
	int rc = call(d, node, json_pack("{s:s, s:i}", "op", "inbox.next", "wait_ms", 10000), &r);

	if (rc != TERN_OK)
		goto out;
	got = json_string_value(
	    json_object_get(json_object_get(json_object_get(r, "message"), "header"), "messageId"));
	if (got == NULL || strcmp(got, id) != 0) {
		fprintf(stderr, "tern demo: %s's inbox did not hold %s first\n", node, id);
		rc = TERN_EINVAL;
		goto out;
	}
	json_decref(r);
	r = NULL;
	rc = call(d, node, json_pack("{s:s, s:s}", "op", "inbox.ack", "message_id", id), &r);
out:
	json_decref(r);
	return rc;
}

static json_t *example(const char *type)
{
	char *text = NULL;
	json_t *j;

	if (tern_example_json(type, &text) != TERN_OK)
		return NULL;
	j = json_loads(text, 0, NULL);
	free(text);
	return j;
}

/* One message of the case: send, wait for the verified receipts, recipients take it. */
static int step(struct demo *d, const char *from, const char *const *to, size_t nto,
                const char *type, json_t *body, const char *what, char id[37])
{
	char list[128] = "";
	int rc;

	for (size_t i = 0; i < nto; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
		         to[i]);
	if ((rc = send_msg(d, from, to, nto, type, body, id)) != TERN_OK)
		return rc;
	event(d, "%-7s -> %-15s %-20s %s  %s: queued", from, list, type, id, what);
	if ((rc = wait_delivered(d, from, id)) != TERN_OK)
		return rc;
	event(d, "%-7s    %-15s %-20s %s  delivered (signed receipts verified)", "", "", "", id);
	for (size_t i = 0; i < nto; i++)
		if ((rc = take(d, to[i], id)) != TERN_OK)
			return rc;
	event(d, "%-7s    %-15s %-20s %s  taken from the inbox and acknowledged", "", list, "", id);
	return TERN_OK;
}

static int walk_case(struct demo *d)
{
	static const char *const to_sweden[] = {"sweden"};
	static const char *const to_unhcr_iom[] = {"unhcr", "iom"};
	static const char *const to_sweden_unhcr[] = {"sweden", "unhcr"};
	json_t *ref = example("case-referral"), *dec = example("acceptance-decision"),
	       *travel = example("travel-confirmation");
	char rid[37], did[37], tid[37], aid[37];
	const char *case_id;
	int rc = TERN_EINVAL;

	if (ref == NULL || dec == NULL || travel == NULL)
		goto out;
	case_id = json_string_value(json_object_get(ref, "caseId"));
	printf("\nCase %s, %lld member(s): referral, acceptance, travel.\n\n", case_id,
	       (long long)json_array_size(json_object_get(ref, "members")));
	if ((rc = step(d, "unhcr", to_sweden, 1, "case-referral", ref, "referral", rid)) != TERN_OK)
		goto out;
	json_object_set_new(dec, "caseId", json_string(case_id));
	json_object_set_new(dec, "referralId", json_string(rid));
	json_object_set_new(dec, "outcome", json_string("ACCEPTED"));
	if ((rc = step(d, "sweden", to_unhcr_iom, 2, "acceptance-decision", dec, "accepted",
	               did)) != TERN_OK)
		goto out;
	json_object_set_new(travel, "caseId", json_string(case_id));
	json_object_set_new(travel, "decisionId", json_string(did));
	json_object_set_new(travel, "status", json_string("BOOKED"));
	if ((rc = step(d, "iom", to_sweden_unhcr, 2, "travel-confirmation", travel, "BOOKED",
	               tid)) != TERN_OK)
		goto out;
	json_object_set_new(travel, "status", json_string("ARRIVED"));
	if ((rc = step(d, "iom", to_sweden_unhcr, 2, "travel-confirmation", travel, "ARRIVED",
	               aid)) != TERN_OK)
		goto out;
	printf("\nCase %s: 4 messages, every one delivered to every recipient with a verified\n"
	       "signed receipt. The broker routed them without being able to read them.\n",
	       case_id);
out:
	json_decref(ref);
	json_decref(dec);
	json_decref(travel);
	return rc;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {{"keep", required_argument, NULL, 'k'},
	                                     {"base-port", required_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct demo d;
	const char *keep = NULL;
	int c, port = 0, rc;
	struct sigaction sa;

	memset(&d, 0, sizeof(d));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keep = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			if (port < 1024 || port > 65000)
				return cli_usage_error("demo", "--base-port takes 1024 to 65000");
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("demo", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error("demo", "no arguments expected");
	if ((rc = localfed_create(&d.lf, keep, port, "demo")) != CLI_OK)
		return rc;
	printf("== A development federation in %s (broker on 127.0.0.1:%d)\n", d.lf.fed, d.lf.port);
	fflush(stdout);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_int;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("== Starting the broker and four nodes (logs in %s/*.log)\n", d.lf.dir);
	fflush(stdout);
	if ((rc = localfed_start(&d.lf, nodes, 4, "demo")) != TERN_OK ||
	    (rc = localfed_wait_connected(&d.lf, 20000, &interrupted, "demo")) != TERN_OK) {
		localfed_destroy(&d.lf, 0, "demo");
		return CLI_FAIL;
	}
	printf("== Walking a case\n");
	d.t0 = tern_now_ms();
	rc = walk_case(&d);
	printf("\n== Stopping\n");
	localfed_destroy(&d.lf, rc == TERN_OK, "demo");
	return rc == TERN_OK ? CLI_OK : CLI_FAIL;
}

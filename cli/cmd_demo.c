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
	      "case through its whole lifecycle: UNHCR's referral to Sweden, Sweden's request\n"
	      "for more information and UNHCR's answer, Sweden's acceptance to UNHCR and IOM,\n"
	      "IOM's health assessment and pre-departure orientation, the travel booked,\n"
	      "departed and arrived, and the handover to Sweden's reception, each with its\n"
	      "signed receipts. Prints the case's timeline and Sweden's view of the case\n"
	      "(tern case show), then stops everything and removes the temporary directory.\n"
	      "If anything fails, the directory is kept and its path printed: the daemons'\n"
	      "logs are there.\n"
	      "\n"
	      "Options:\n"
	      "  --keep DIR      build the federation in DIR/fed, the logs in DIR/*.log, and\n"
	      "                  keep them after the run (DIR: new or empty; made if missing)\n"
	      "  --base-port N   the broker's port; the federation takes N to N+19 (default: a\n"
	      "                  free block from 20000-32719)\n"
	      "\n"
	      "Exit status: 0 when every message was delivered with a verified receipt;\n"
	      "2 for a wrong option or a --keep DIR that is not empty; 3 on a failure.\n"
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
	if (rc != TERN_OK) {
		fprintf(stderr, "tern demo: %s's node did not answer: %s; see %s/%s.log\n", node,
		        tern_errdetail(), d->lf.dir, node);
		return rc;
	}
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
		if ((st = json_string_value(json_object_get(r, "state"))) == NULL) {
			fprintf(stderr, "tern demo: %s's node gave no state for %s\n", from, id);
			json_decref(r);
			return TERN_EINVAL;
		}
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
	if (interrupted)
		fprintf(stderr, "tern demo: interrupted\n");
	else
		fprintf(stderr, "tern demo: %s not delivered within 30 s\n", id);
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
	event(d, "%-7s -> %-15s %-25s %s  %s: queued", from, list, type, id, what);
	if ((rc = wait_delivered(d, from, id)) != TERN_OK)
		return rc;
	event(d, "%-7s    %-15s %-25s %s  delivered (signed receipts verified)", "", "", "", id);
	for (size_t i = 0; i < nto; i++)
		if ((rc = take(d, to[i], id)) != TERN_OK)
			return rc;
	event(d, "%-7s    %-15s %-25s %s  taken from the inbox and acknowledged", "", list, "", id);
	return TERN_OK;
}

/* The body of type for the case, citing ref in field (NULL: none), with the
 * state field set to value (NULL: the example's). */
static json_t *body_for(const char *type, const char *case_id, const char *field, const char *ref,
                        const char *state_field, const char *value)
{
	json_t *b = example(type);

	if (b == NULL)
		return NULL;
	json_object_set_new(b, "caseId", json_string(case_id));
	if (field)
		json_object_set_new(b, field, json_string(ref));
	if (state_field && value)
		json_object_set_new(b, state_field, json_string(value));
	return b;
}

/* The case's lifecycle, each message delivered with its signed receipts
 * before the next, as docs/messages.md's workflow table allows it. */
static int walk_case(struct demo *d)
{
	static const char *const to_sweden[] = {"sweden"}, *const to_unhcr[] = {"unhcr"},
	                         *const to_unhcr_iom[] = {"unhcr", "iom"},
	                         *const to_sweden_unhcr[] = {"sweden", "unhcr"};
	struct {
		const char *from;
		const char *const *to;
		size_t nto;
		const char *type, *field, *cites, *state_field, *value, *what;
	} steps[] = {
	    {"unhcr", to_sweden, 1, "case-referral", NULL, NULL, NULL, NULL, "referral"},
	    {"sweden", to_unhcr, 1, "information-request", "referralId", "referral", NULL, NULL,
	     "more information, please"},
	    {"unhcr", to_sweden, 1, "information-response", "requestId", "request", NULL, NULL,
	     "the answers"},
	    {"sweden", to_unhcr_iom, 2, "acceptance-decision", "referralId", "referral", "outcome",
	     "ACCEPTED", "accepted"},
	    {"iom", to_sweden, 1, "health-assessment", "decisionId", "decision", NULL, NULL,
	     "fit to travel (one with conditions)"},
	    {"iom", to_sweden_unhcr, 2, "pre-departure-orientation", "decisionId", "decision", NULL,
	     NULL, "orientation attended"},
	    {"iom", to_sweden_unhcr, 2, "travel-confirmation", "decisionId", "decision", "status",
	     "BOOKED", "BOOKED"},
	    {"iom", to_sweden_unhcr, 2, "travel-confirmation", "decisionId", "decision", "status",
	     "DEPARTED", "DEPARTED"},
	    {"iom", to_sweden_unhcr, 2, "travel-confirmation", "decisionId", "decision", "status",
	     "ARRIVED", "ARRIVED"},
	    {"iom", to_sweden, 1, "arrival-handover", "decisionId", "decision", NULL, NULL,
	     "handed over to reception"},
	};
	char referral[37] = "", request[37] = "", decision[37] = "", id[37];
	json_t *ref = example("case-referral"), *view = NULL;
	const char *case_id;
	int rc = TERN_EINVAL;

	if (ref == NULL)
		goto out;
	case_id = json_string_value(json_object_get(ref, "caseId"));
	printf("\nCase %s, %lld member(s), from referral to reception.\n\n", case_id,
	       (long long)json_array_size(json_object_get(ref, "members")));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const char *cites = steps[i].cites == NULL                    ? NULL
		                    : strcmp(steps[i].cites, "referral") == 0 ? referral
		                    : strcmp(steps[i].cites, "request") == 0  ? request
		                                                              : decision;
		json_t *body = body_for(steps[i].type, case_id, steps[i].field, cites,
		                        steps[i].state_field, steps[i].value);
		if (body == NULL) {
			fprintf(stderr, "tern demo: no example body for %s\n", steps[i].type);
			rc = TERN_EINVAL;
			goto out;
		}
		rc = step(d, steps[i].from, steps[i].to, steps[i].nto, steps[i].type, body,
		          steps[i].what, id);
		json_decref(body);
		if (rc != TERN_OK)
			goto out;
		if (strcmp(steps[i].type, "case-referral") == 0)
			memcpy(referral, id, 37);
		else if (strcmp(steps[i].type, "information-request") == 0)
			memcpy(request, id, 37);
		else if (strcmp(steps[i].type, "acceptance-decision") == 0)
			memcpy(decision, id, 37);
	}
	printf("\nCase %s: %zu messages, every one delivered to every recipient with a\n"
	       "verified signed receipt. The broker routed them without being able to read them.\n"
	       "\nSweden's view of the case (tern case show):\n\n",
	       case_id, sizeof(steps) / sizeof(steps[0]));
	if ((rc = call(d, "sweden", json_pack("{s:s, s:s}", "op", "case.show", "case_id", case_id),
	               &view)) != TERN_OK)
		goto out;
	case_view_print(json_object_get(view, "case"));
out:
	json_decref(ref);
	json_decref(view);
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
		localfed_report_exits(&d.lf, "demo");
		localfed_destroy(&d.lf, 0, "demo");
		return CLI_FAIL;
	}
	printf("== Walking a case\n");
	d.t0 = tern_now_ms();
	rc = walk_case(&d);
	if (rc != TERN_OK)
		localfed_report_exits(&d.lf, "demo");
	printf("\n== Stopping\n");
	fflush(stdout);
	localfed_destroy(&d.lf, rc == TERN_OK, "demo");
	if (rc == TERN_OK && d.lf.kept)
		printf("== Kept: the federation in %s, the logs in %s/*.log\n", d.lf.fed, d.lf.dir);
	return rc == TERN_OK ? CLI_OK : CLI_FAIL;
}

/* tern-flood SOCKET FROM TO N [PREFIX [FIRST]]: sends N case referrals through a
 * node's API, one after another, each with caseId PREFIX-<i> (i from FIRST, 1 by
 * default) and an idempotency key, retrying
 * while the node is down. Prints progress every 1000 messages. Exit 0 when all N
 * are stored at the node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/api.h>
#include <tern/error.h>
#include <tern/examples.h>

int main(int argc, char **argv)
{
	char *text = NULL, caseid[64], ref[96];
	json_t *body;
	long n;

	if (argc < 5) {
		fprintf(stderr, "usage: tern-flood SOCKET FROM TO N [PREFIX [FIRST]]\n");
		return 2;
	}
	n = strtol(argv[4], NULL, 10);
	if (tern_example_json("case-referral", &text) != TERN_OK)
		return 1;
	body = json_loads(text, 0, NULL);
	free(text);
	long first = argc > 6 ? strtol(argv[6], NULL, 10) : 1;
	for (long i = first; i < first + n; i++) {
		json_t *req, *resp = NULL;
		int tries = 0;

		snprintf(caseid, sizeof(caseid), "%s-%06ld", argc > 5 ? argv[5] : "FLOOD", i);
		snprintf(ref, sizeof(ref), "%s", caseid);
		json_object_set_new(body, "caseId", json_string(caseid));
		req = json_pack("{s:i, s:s, s:[s], s:s, s:O, s:s}", "v", TERN_API_VERSION, "op",
		                "send", "to", argv[3], "type", "case-referral", "body", body,
		                "client_ref", ref);
		for (;;) {
			int rc = tern_api_call(argv[1], req, 10000, &resp);
			if (rc == TERN_OK && json_is_true(json_object_get(resp, "ok")))
				break;
			if (rc == TERN_OK) {
				const char *e = json_string_value(json_object_get(resp, "error"));
				/* A refusal that is not about the moment is a test failure. */
				if (e && strcmp(e, "exists") != 0 && strcmp(e, "io") != 0) {
					fprintf(stderr, "tern-flood: %s refused: %s\n", caseid, e);
					return 1;
				}
			}
			json_decref(resp);
			resp = NULL;
			if (++tries > 1200) {
				fprintf(stderr, "tern-flood: node unreachable for 2 minutes\n");
				return 1;
			}
			usleep(100000);
		}
		json_decref(resp);
		json_decref(req);
		if (i % 1000 == 0)
			fprintf(stderr, "tern-flood: %ld/%ld stored\n", i, n);
	}
	json_decref(body);
	return 0;
}

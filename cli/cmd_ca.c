/* tern ca ... and tern keygen: the federation CA and node key generation. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <tern/curve.h>
#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/pki.h>
#include <tern/validate.h>

#include "commands.h"
#include "util.h"

static int parse_days(const char *cmd, const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 1 || v > 36500)
		return cli_usage_error(
		    cmd, "--days wants a number of days from 1 to 36500, not '%s'", s);
	*out = (int)v;
	return CLI_OK;
}

static void fmt_time(int64_t t, char *buf, size_t len, int iso)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "?");
		return;
	}
	strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d", &tm);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

/* ------------------------------------------------------------ tern keygen */

static const char keygen_help[] =
    "Usage: tern keygen --node ID --out DIR [--json]\n"
    "\n"
    "Generates a node's private keys on the node's own machine and a public\n"
    "request for the federation CA:\n"
    "  DIR/node.key       Ed25519 signing key (0600; its certificate names it)\n"
    "  DIR/seal.key       X25519 key others seal messages to (0600)\n"
    "  DIR/curve.key      ZeroMQ CURVE transport key (0600)\n"
    "  DIR/node.req.json  public keys + proof of possession: send this to the CA\n"
    "Existing key files are never overwritten. No private key leaves DIR.\n"
    "\n"
    "Options:\n"
    "  --node ID   node id: 1-63 of a-z, 0-9 and '-', starting with a letter\n"
    "  --out DIR   where to write the files (created 0700 if missing)\n"
    "  --json      print the request's public keys as JSON\n"
    "\n"
    "Examples:\n"
    "  tern keygen --node unhcr --out /etc/tern/unhcr\n"
    "  tern ca issue --ca /media/ca --request /etc/tern/unhcr/node.req.json \\\n"
    "      --agency UNHCR --roles referrer --out /etc/tern/unhcr/node.crt\n";

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *node = NULL, *out = NULL;
	char hsign[65], hseal[65], zcurve[TERN_CURVE_Z85_LEN];
	tern_node_request req;
	int c, json = 0, rc;

	if (cli_wants_help(argc, argv)) {
		fputs(keygen_help, stdout);
		return CLI_OK;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			node = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return cli_usage_error("keygen", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("keygen", "unexpected argument '%s'", argv[optind]);
	if (node == NULL || out == NULL)
		return cli_usage_error("keygen", "--node and --out are required");
	if (!tern_node_id_valid(node))
		return cli_usage_error("keygen",
		                       "'%s' is not a node id (1-63 of a-z, 0-9, '-', "
		                       "starting with a letter)",
		                       node);
	if ((rc = tern_node_keygen(out, node, &req)) != TERN_OK)
		return cli_fail(rc, "cannot generate keys for '%s'", node);
	tern_hex(req.sign_public, 32, hsign);
	tern_hex(req.seal_public, 32, hseal);
	tern_curve_z85_encode(req.curve_public, zcurve);
	if (json) {
		print_json(json_pack("{s:s, s:s, s:s, s:s, s:s}", "node_id", node, "request", out,
		                     "sign_public", hsign, "seal_public", hseal, "curve_public",
		                     zcurve));
		return CLI_OK;
	}
	printf("Generated keys for node '%s' in %s (private keys 0600, never copy them):\n"
	       "  Ed25519 signing key  %s\n"
	       "  X25519 sealing key   %s\n"
	       "  CURVE transport key  %s\n"
	       "Next: send %s/%s to the federation CA operator.\n",
	       node, out, hsign, hseal, zcurve, out, TERN_NODE_REQUEST_FILE);
	return CLI_OK;
}

/* --------------------------------------------------------------- tern ca */

static const char ca_help[] =
    "Usage: tern ca SUBCOMMAND --ca CADIR [OPTIONS]\n"
    "\n"
    "The federation certificate authority. Keep CADIR on an offline machine:\n"
    "it holds ca.key, the key the whole federation trusts.\n"
    "\n"
    "Subcommands:\n"
    "  init       create the CA key, certificate, first CRL and database\n"
    "  issue      certify a node from its request (made by 'tern keygen')\n"
    "  revoke     revoke a node's certificate and write a new CRL\n"
    "  crl        sign a fresh CRL (before the current one's nextUpdate)\n"
    "  directory  sign the federation directory with the next version\n"
    "  list       show issued certificates\n"
    "\n"
    "Examples:\n"
    "  tern ca init --ca /media/ca --federation resettlement\n"
    "  tern ca issue --ca /media/ca --request unhcr/node.req.json --agency UNHCR \\\n"
    "      --roles referrer --out unhcr/node.crt\n"
    "  tern ca issue --ca /media/ca --request hub/node.req.json --agency Hub \\\n"
    "      --roles broker --endpoint tcp://broker.example.org:7700 --out hub/node.crt\n"
    "  tern ca revoke --ca /media/ca --node unhcr --reason key-compromise\n"
    "  tern ca directory --ca /media/ca\n"
    "  tern ca list --ca /media/ca --json\n"
    "\n"
    "Run 'tern ca SUBCOMMAND --help' for its options.\n";

static const char init_help[] =
    "Usage: tern ca init --ca CADIR --federation NAME [--days N]\n"
    "\n"
    "Creates CADIR (0700) with ca.key (0600), ca.crt, crl.pem and ca.json.\n"
    "Refuses a CADIR that already holds a CA.\n"
    "\n"
    "Options:\n"
    "  --ca CADIR          the CA directory\n"
    "  --federation NAME   federation name (the CA certificate's O)\n"
    "  --days N            CA certificate validity (default 3650)\n"
    "\n"
    "Example:\n"
    "  tern ca init --ca /media/ca --federation resettlement\n";

static const char issue_help[] =
    "Usage: tern ca issue --ca CADIR --request FILE --agency NAME --roles ROLES\n"
    "                     [--endpoint URL] [--days N | --until TIME] [--out FILE] [--json]\n"
    "\n"
    "Checks the request's proof of possession and issues an Ed25519 node\n"
    "certificate (CN=node id, O=agency, one OU per role), recorded in ca.json.\n"
    "A node that already holds a valid certificate must be revoked first, and\n"
    "keys are never certified twice.\n"
    "\n"
    "Options:\n"
    "  --request FILE   node.req.json from 'tern keygen'\n"
    "  --agency NAME    the agency running the node\n"
    "  --roles ROLES    comma-separated: referrer, state, movement, broker\n"
    "  --endpoint URL   for a broker: where nodes connect (tcp://host:port)\n"
    "  --days N         validity (default 730; never beyond the CA's)\n"
    "  --until TIME     validity ends at TIME instead (RFC 3339, e.g. the end of an\n"
    "                   agreement: 2027-06-30T00:00:00Z); in the future, within the CA's\n"
    "  --out FILE       write the PEM certificate there (default: standard output)\n"
    "  --json           print serial, node and expiry as JSON\n"
    "\n"
    "Example:\n"
    "  tern ca issue --ca /media/ca --request sweden/node.req.json \\\n"
    "      --agency 'Sweden Migration Agency' --roles state --out sweden/node.crt\n";

static const char revoke_help[] =
    "Usage: tern ca revoke --ca CADIR --node ID [--reason TEXT] [--days N]\n"
    "\n"
    "Marks the node's current certificate revoked and writes a new crl.pem\n"
    "(valid N days, default 30). Then publish crl.pem and a new directory\n"
    "('tern ca directory') to every node.\n"
    "RFC 5280 reasons go into the CRL: key-compromise, affiliation-changed,\n"
    "superseded, cessation-of-operation, privilege-withdrawn; other text is\n"
    "kept in ca.json only.\n"
    "\n"
    "Example:\n"
    "  tern ca revoke --ca /media/ca --node unhcr --reason key-compromise\n";

static const char crl_help[] =
    "Usage: tern ca crl --ca CADIR [--days N]\n"
    "\n"
    "Signs a fresh crl.pem valid for N days (default 30). Nodes refuse\n"
    "certificates once the CRL is past its nextUpdate: run this in time.\n"
    "\n"
    "Example:\n"
    "  tern ca crl --ca /media/ca --days 30\n";

static const char directory_help[] =
    "Usage: tern ca directory --ca CADIR [--out FILE] [--json]\n"
    "\n"
    "Signs the federation directory (each node's latest certificate, roles,\n"
    "X25519 and CURVE keys, broker endpoint) with the next version number and\n"
    "writes it to FILE (default CADIR/directory.tdir). Nodes refuse a version\n"
    "lower than the one they hold. Prints the version.\n"
    "\n"
    "Example:\n"
    "  tern ca directory --ca /media/ca --out /media/transfer/directory.tdir\n";

static const char list_help[] =
    "Usage: tern ca list --ca CADIR [--json]\n"
    "\n"
    "Lists issued certificates: serial, node, agency, roles, expiry and\n"
    "revocation state.\n"
    "\n"
    "Example:\n"
    "  tern ca list --ca /media/ca --json\n";

struct ca_args {
	const char *ca, *federation, *request, *agency, *roles, *endpoint, *out, *node, *reason;
	int days, json;
	int64_t until_ms;
};

enum {
	O_CA = 256,
	O_FED,
	O_REQ,
	O_AGENCY,
	O_ROLES,
	O_ENDPOINT,
	O_OUT,
	O_NODE,
	O_REASON,
	O_DAYS,
	O_UNTIL,
	O_JSON
};

/* Parses the options a subcommand allows (allowed: a string of O_* codes). */
static int parse_ca_args(const char *cmd, int argc, char **argv, const int *allowed,
                         struct ca_args *a)
{
	static const struct option opts[] = {{"ca", required_argument, NULL, O_CA},
	                                     {"federation", required_argument, NULL, O_FED},
	                                     {"request", required_argument, NULL, O_REQ},
	                                     {"agency", required_argument, NULL, O_AGENCY},
	                                     {"roles", required_argument, NULL, O_ROLES},
	                                     {"endpoint", required_argument, NULL, O_ENDPOINT},
	                                     {"out", required_argument, NULL, O_OUT},
	                                     {"node", required_argument, NULL, O_NODE},
	                                     {"reason", required_argument, NULL, O_REASON},
	                                     {"days", required_argument, NULL, O_DAYS},
	                                     {"until", required_argument, NULL, O_UNTIL},
	                                     {"json", no_argument, NULL, O_JSON},
	                                     {NULL, 0, NULL, 0}};
	int c, rc;

	memset(a, 0, sizeof(*a));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int ok = 0;
		for (const int *p = allowed; *p; p++)
			ok |= *p == c;
		if (c == '?' || c == ':' || !ok)
			return cli_usage_error(cmd, "unknown or incomplete option '%s'",
			                       argv[optind - 1]);
		switch (c) {
		case O_CA:
			a->ca = optarg;
			break;
		case O_FED:
			a->federation = optarg;
			break;
		case O_REQ:
			a->request = optarg;
			break;
		case O_AGENCY:
			a->agency = optarg;
			break;
		case O_ROLES:
			a->roles = optarg;
			break;
		case O_ENDPOINT:
			a->endpoint = optarg;
			break;
		case O_OUT:
			a->out = optarg;
			break;
		case O_NODE:
			a->node = optarg;
			break;
		case O_REASON:
			a->reason = optarg;
			break;
		case O_DAYS:
			if ((rc = parse_days(cmd, optarg, &a->days)) != CLI_OK)
				return rc;
			break;
		case O_UNTIL:
			if (!tern_datetime_parse(optarg, &a->until_ms))
				return cli_usage_error(
				    cmd,
				    "--until '%s': give an RFC 3339 time such as "
				    "2027-06-30T00:00:00Z",
				    optarg);
			break;
		case O_JSON:
			a->json = 1;
			break;
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (a->ca == NULL)
		return cli_usage_error(cmd, "--ca CADIR is required");
	return CLI_OK;
}

static int open_ca(const char *dir, tern_ca **ca)
{
	int rc = tern_ca_open(dir, ca);

	if (rc != TERN_OK)
		return cli_fail(rc, "cannot open the CA in %s", dir);
	return CLI_OK;
}

static int ca_init(int argc, char **argv)
{
	static const int allowed[] = {O_CA, O_FED, O_DAYS, 0};
	struct ca_args a;
	int rc;

	if ((rc = parse_ca_args("ca init", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if (a.federation == NULL)
		return cli_usage_error("ca init", "--federation NAME is required");
	if ((rc = tern_ca_init(a.ca, a.federation, a.days)) != TERN_OK)
		return cli_fail(rc, "cannot create the CA in %s", a.ca);
	printf("Created the CA of federation '%s' in %s:\n"
	       "  %s  CA private key (0600): keep it offline, back it up encrypted\n"
	       "  %s  CA certificate: give it to every node\n"
	       "  %s  certificate revocation list: give it to every node\n"
	       "  %s  issued certificates and counters\n"
	       "Next: 'tern ca issue' for each node's request, then 'tern ca directory'.\n",
	       a.federation, a.ca, TERN_CA_KEY_FILE, TERN_CA_CERT_FILE, TERN_CA_CRL_FILE,
	       TERN_CA_DB_FILE);
	return CLI_OK;
}

static int ca_issue(int argc, char **argv)
{
	static const int allowed[] = {O_CA,  O_REQ,  O_AGENCY, O_ROLES, O_ENDPOINT,
	                              O_OUT, O_DAYS, O_UNTIL,  O_JSON,  0};
	struct ca_args a;
	tern_node_request req;
	tern_ca *ca = NULL;
	tern_ca_entry e;
	unsigned roles;
	char *pem = NULL, rbuf[64], until[32], khex[2 * TERN_ED25519_PUBLIC_LEN + 1];
	int rc;

	if ((rc = parse_ca_args("ca issue", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if (a.request == NULL || a.agency == NULL || a.roles == NULL)
		return cli_usage_error("ca issue", "--request, --agency and --roles are required");
	if (a.until_ms && a.days)
		return cli_usage_error("ca issue", "give --days or --until, not both");
	if (tern_roles_parse(a.roles, &roles) != TERN_OK)
		return cli_usage_error("ca issue",
		                       "--roles '%s': use a comma-separated list of "
		                       "referrer, state, movement, broker",
		                       a.roles);
	if ((rc = tern_node_request_load(a.request, &req)) != TERN_OK)
		return cli_fail(rc, "cannot use the request %s", a.request);
	if ((rc = open_ca(a.ca, &ca)) != CLI_OK)
		return rc;
	rc = a.until_ms ? tern_ca_issue_until(ca, &req, a.agency, roles, a.endpoint,
	                                      a.until_ms / 1000, &pem)
	                : tern_ca_issue(ca, &req, a.agency, roles, a.endpoint, a.days, &pem);
	if (rc != TERN_OK) {
		rc = cli_fail(rc, "cannot issue a certificate for '%s'", req.node_id);
		goto out;
	}
	tern_ca_entry_at(ca, tern_ca_count(ca) - 1, &e);
	if (a.out) {
		if ((rc = tern_file_write(a.out, pem, strlen(pem), 0644)) != TERN_OK) {
			rc = cli_fail(rc,
			              "certificate serial %s was issued and recorded, but "
			              "cannot be written; copy it from 'tern ca list --json'",
			              e.serial);
			goto out;
		}
	} else {
		fputs(pem, stdout);
	}
	tern_roles_format(e.roles, rbuf, sizeof(rbuf));
	fmt_time(e.not_after, until, sizeof(until), a.json);
	tern_hex(req.sign_public, sizeof(req.sign_public), khex);
	if (a.json && a.out) {
		print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "serial", e.serial,
		                     "node_id", e.node_id, "agency", e.agency, "roles", rbuf,
		                     "sign_public", khex, "not_after", until, "certificate",
		                     a.out));
	} else {
		fprintf(a.out ? stdout : stderr,
		        "Issued certificate serial %s to '%s' (%s; %s), valid until %s%s%s.\n"
		        "Certified Ed25519 key: %s\n"
		        "(the node operator can compare it with what 'tern keygen' printed)\n"
		        "Next: 'tern ca directory' to publish the node to the federation.\n",
		        e.serial, e.node_id, e.agency, rbuf, until, a.out ? "; written to " : "",
		        a.out ? a.out : "", khex);
	}
	rc = CLI_OK;
out:
	free(pem);
	tern_ca_close(&ca);
	return rc;
}

static int ca_revoke(int argc, char **argv)
{
	static const int allowed[] = {O_CA, O_NODE, O_REASON, O_DAYS, 0};
	struct ca_args a;
	tern_ca *ca = NULL;
	int rc;

	if ((rc = parse_ca_args("ca revoke", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if (a.node == NULL)
		return cli_usage_error("ca revoke", "--node ID is required");
	if ((rc = open_ca(a.ca, &ca)) != CLI_OK)
		return rc;
	if ((rc = tern_ca_revoke(ca, a.node, a.reason)) != TERN_OK) {
		rc = cli_fail(rc, "cannot revoke '%s'", a.node);
		goto out;
	}
	/* tern_ca_revoke wrote a CRL with the default period; honour --days. */
	if (a.days && (rc = tern_ca_write_crl(ca, a.days)) != TERN_OK) {
		rc = cli_fail(rc, "'%s' is revoked but the CRL could not be rewritten", a.node);
		goto out;
	}
	printf("Revoked the certificate of '%s' and wrote %s/%s.\n"
	       "Next: publish crl.pem, and 'tern ca directory' for a new directory.\n",
	       a.node, a.ca, TERN_CA_CRL_FILE);
	rc = CLI_OK;
out:
	tern_ca_close(&ca);
	return rc;
}

static int ca_crl(int argc, char **argv)
{
	static const int allowed[] = {O_CA, O_DAYS, 0};
	struct ca_args a;
	tern_ca *ca = NULL;
	int rc;

	if ((rc = parse_ca_args("ca crl", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if ((rc = open_ca(a.ca, &ca)) != CLI_OK)
		return rc;
	if ((rc = tern_ca_write_crl(ca, a.days)) != TERN_OK)
		rc = cli_fail(rc, "cannot write the CRL");
	else
		printf("Wrote %s/%s, valid for %d days.\n", a.ca, TERN_CA_CRL_FILE,
		       a.days ? a.days : TERN_CRL_DAYS_DEFAULT);
	tern_ca_close(&ca);
	return rc == TERN_OK ? CLI_OK : rc;
}

static int ca_directory(int argc, char **argv)
{
	static const int allowed[] = {O_CA, O_OUT, O_JSON, 0};
	struct ca_args a;
	tern_ca *ca = NULL;
	uint64_t version = 0;
	char *def = NULL;
	const char *path;
	int rc;

	if ((rc = parse_ca_args("ca directory", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if ((rc = open_ca(a.ca, &ca)) != CLI_OK)
		return rc;
	if ((rc = tern_ca_write_directory(ca, a.out, &version)) != TERN_OK) {
		rc = cli_fail(rc, "cannot write the directory");
		goto out;
	}
	if (a.out == NULL && asprintf(&def, "%s/%s", a.ca, TERN_CA_DIRECTORY_FILE) < 0)
		def = NULL;
	path = a.out ? a.out : (def ? def : TERN_CA_DIRECTORY_FILE);
	if (a.json)
		print_json(json_pack("{s:I, s:s, s:s}", "version", (json_int_t)version,
		                     "federation", tern_ca_federation(ca), "path", path));
	else
		printf("%llu\n", (unsigned long long)version);
	fprintf(stderr, "Wrote directory version %llu of federation '%s' to %s.\n",
	        (unsigned long long)version, tern_ca_federation(ca), path);
	rc = CLI_OK;
out:
	free(def);
	tern_ca_close(&ca);
	return rc;
}

static int ca_list(int argc, char **argv)
{
	static const int allowed[] = {O_CA, O_JSON, 0};
	struct ca_args a;
	tern_ca *ca = NULL;
	json_t *arr = NULL;
	time_t now = time(NULL);
	int rc;

	if ((rc = parse_ca_args("ca list", argc, argv, allowed, &a)) != CLI_OK)
		return rc;
	if ((rc = open_ca(a.ca, &ca)) != CLI_OK)
		return rc;
	if (a.json)
		arr = json_array();
	else
		printf("%-6s %-20s %-28s %-18s %-10s %s\n", "SERIAL", "NODE", "AGENCY", "ROLES",
		       "EXPIRES", "STATE");
	for (size_t i = 0; i < tern_ca_count(ca); i++) {
		tern_ca_entry e;
		char roles[64], until[32], when[32];
		const char *state;

		tern_ca_entry_at(ca, i, &e);
		tern_roles_format(e.roles, roles, sizeof(roles));
		state = e.revoked ? "revoked" : (e.not_after <= now ? "expired" : "valid");
		fmt_time(e.not_after, until, sizeof(until), a.json);
		if (a.json) {
			json_t *o =
			    json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "serial", e.serial,
			              "node_id", e.node_id, "agency", e.agency, "roles", roles,
			              "endpoint", e.endpoint, "not_after", until, "state", state);
			if (o && e.revoked) {
				fmt_time(e.revoked_at, when, sizeof(when), 1);
				json_object_set_new(o, "revoked_at", json_string(when));
				json_object_set_new(o, "reason", json_string(e.reason));
			}
			json_array_append_new(arr, o);
		} else {
			printf("%-6s %-20s %-28s %-18s %-10s %s\n", e.serial, e.node_id, e.agency,
			       roles, until, state);
		}
	}
	if (a.json)
		print_json(json_pack("{s:s, s:I, s:o}", "federation", tern_ca_federation(ca),
		                     "directory_version", (json_int_t)tern_ca_directory_version(ca),
		                     "members", arr));
	tern_ca_close(&ca);
	return CLI_OK;
}

int cmd_ca(int argc, char **argv)
{
	static const struct {
		const char *name;
		cli_cmd_fn *fn;
		const char *help;
	} subs[] = {
	    {"init", ca_init, init_help},
	    {"issue", ca_issue, issue_help},
	    {"revoke", ca_revoke, revoke_help},
	    {"crl", ca_crl, crl_help},
	    {"directory", ca_directory, directory_help},
	    {"list", ca_list, list_help},
	};

	if (argc < 2 || argv[1][0] == '-') {
		if (cli_wants_help(argc, argv)) {
			fputs(ca_help, stdout);
			return CLI_OK;
		}
		fputs(ca_help, stderr);
		return CLI_USAGE;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		if (cli_wants_help(argc - 1, argv + 1)) {
			fputs(subs[i].help, stdout);
			return CLI_OK;
		}
		return subs[i].fn(argc - 1, argv + 1);
	}
	return cli_usage_error("ca", "unknown subcommand '%s'", argv[1]);
}

/* tern dev-federation: a complete local federation (CA, broker, four nodes)
 * for demos and tests, built with the same CA code an operator uses. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sys/stat.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/pki.h>

#include "commands.h"
#include "util.h"

#define DEV_FEDERATION "tern-dev"
#define BROKER_ID "hub"
#define BROKER_DIR "broker"

static const char dev_help[] =
    "Usage: tern dev-federation DIR [--base-port N] [--federation NAME]\n"
    "\n"
    "Builds a complete local federation in DIR (which must be missing or empty):\n"
    "  DIR/ca/       CA key, certificate, CRL, database and signed directory\n"
    "  DIR/broker/   broker 'hub' listening on tcp://127.0.0.1:N (broker.conf)\n"
    "  DIR/unhcr/    UNHCR, referrer         (node.conf)\n"
    "  DIR/iom/      IOM, movement           (node.conf)\n"
    "  DIR/sweden/   Sweden Migration Agency, state\n"
    "  DIR/portugal/ Portugal AIMA, referrer and state (relocation)\n"
    "Each node directory holds node.crt and its private keys (0600). Paths in\n"
    "the config files are relative to the file, so DIR can be moved. DIR and\n"
    "every directory below it are made 0700; the daemons also refuse a\n"
    "federation under a directory others may write (docs/configuration.md).\n"
    "For development only: the CA key sits next to the nodes it certifies.\n"
    "\n"
    "Options:\n"
    "  --base-port N       broker port (default 7700); metrics and HTTP API ports\n"
    "                      follow it (N+1, N+10..N+19)\n"
    "  --federation NAME   federation name (default " DEV_FEDERATION ")\n"
    "\n"
    "Examples:\n"
    "  tern dev-federation /tmp/fed\n"
    "  tern dev-federation /tmp/fed2 --base-port 7800\n"
    "  tern ca list --ca /tmp/fed/ca\n";

static const struct dev_node {
	const char *dir;
	const char *id;
	const char *agency;
	const char *roles;
} dev_nodes[] = {
    {BROKER_DIR, BROKER_ID, "Tern development broker", "broker"},
    {"unhcr", "unhcr", "UNHCR", "referrer"},
    {"iom", "iom", "IOM", "movement"},
    {"sweden", "sweden", "Sweden Migration Agency", "state"},
    {"portugal", "portugal", "Portugal AIMA", "referrer,state"},
};
#define NDEV (sizeof(dev_nodes) / sizeof(dev_nodes[0]))

static const char keys_federation_ini[] = "[keys]\n"
                                          "certificate = node.crt\n"
                                          "signing_key = node.key\n"
                                          "seal_key = seal.key\n"
                                          "curve_key = curve.key\n"
                                          "\n"
                                          "[federation]\n"
                                          "ca = ../ca/ca.crt\n"
                                          "crl = ../ca/crl.pem\n"
                                          "directory = ../ca/directory.tdir\n";

/* Ports: the broker listens on port, its metrics on port + 1; node i serves
 * metrics on port + 10 + 2i and its HTTP API on port + 11 + 2i. */
static int write_config(const char *root, const struct dev_node *n, int i, int port)
{
	char *path = NULL, *text = NULL;
	int len, rc;

	if (strcmp(n->id, BROKER_ID) == 0)
		len = asprintf(&text,
		               "# Tern broker '%s' (development federation)\n"
		               "[broker]\n"
		               "id = %s\n"
		               "listen = tcp://127.0.0.1:%d\n"
		               "data_dir = data\n"
		               "control_socket = data/control.sock\n"
		               "\n%s"
		               "\n"
		               "[metrics]\n"
		               "port = %d\n",
		               n->id, n->id, port, keys_federation_ini, port + 1);
	else
		len = asprintf(&text,
		               "# Tern node '%s' of %s (development federation)\n"
		               "[node]\n"
		               "id = %s\n"
		               "data_dir = data\n"
		               "api_socket = data/api.sock\n"
		               "\n%s"
		               "\n"
		               "[broker]\n"
		               "id = %s\n"
		               "endpoint = tcp://127.0.0.1:%d\n"
		               "\n"
		               "[metrics]\n"
		               "port = %d\n"
		               "\n"
		               "[http]\n"
		               "port = %d\n"
		               "token_file = http.token\n",
		               n->id, n->agency, n->id, keys_federation_ini, BROKER_ID, port,
		               port + 10 + 2 * i, port + 11 + 2 * i);
	if (len < 0)
		return TERN_ENOMEM;
	if (asprintf(&path, "%s/%s/%s", root, n->dir,
	             strcmp(n->id, BROKER_ID) == 0 ? "broker.conf" : "node.conf") < 0) {
		free(text);
		return TERN_ENOMEM;
	}
	rc = tern_file_write(path, text, (size_t)len, 0644);
	free(path);
	free(text);
	return rc;
}

static int make_node(tern_ca *ca, const char *root, const struct dev_node *n, int i, int port)
{
	tern_node_request req;
	char *dir = NULL, *path = NULL, *pem = NULL, endpoint[64];
	unsigned roles;
	int rc;

	if (asprintf(&dir, "%s/%s", root, n->dir) < 0)
		return TERN_ENOMEM;
	if ((rc = tern_node_keygen(dir, n->id, &req)) != TERN_OK)
		goto out;
	if ((rc = tern_roles_parse(n->roles, &roles)) != TERN_OK)
		goto out;
	snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", port);
	rc = tern_ca_issue(ca, &req, n->agency, roles, (roles & TERN_ROLE_BROKER) ? endpoint : NULL,
	                   0, &pem);
	if (rc != TERN_OK)
		goto out;
	if (asprintf(&path, "%s/%s", dir, TERN_NODE_CERT_FILE) < 0) {
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_file_write(path, pem, strlen(pem), 0644)) != TERN_OK)
		goto out;
	free(path);
	/* The daemon's state directory, private like the keys beside it. */
	if (asprintf(&path, "%s/data", dir) < 0) {
		path = NULL;
		rc = TERN_ENOMEM;
		goto out;
	}
	if ((rc = tern_mkdirs(path, 0700)) != TERN_OK)
		goto out;
	if (strcmp(n->id, BROKER_ID) != 0) {
		/* The HTTP API's bearer token: 32 random bytes, base64, private. */
		uint8_t rnd[32];
		char tok[64];
		free(path);
		if (asprintf(&path, "%s/http.token", dir) < 0) {
			path = NULL;
			rc = TERN_ENOMEM;
			goto out;
		}
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2base64(tok, sizeof(tok), rnd, sizeof(rnd),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		strcat(tok, "\n");
		rc = tern_file_write(path, tok, strlen(tok), 0600);
		sodium_memzero(tok, sizeof(tok));
		if (rc != TERN_OK)
			goto out;
	}
	rc = write_config(root, n, i, port);
out:
	free(pem);
	free(path);
	free(dir);
	return rc;
}

int cmd_dev_federation(int argc, char **argv)
{
	static const struct option opts[] = {{"base-port", required_argument, NULL, 'p'},
	                                     {"federation", required_argument, NULL, 'f'},
	                                     {NULL, 0, NULL, 0}};
	const char *root, *federation = DEV_FEDERATION;
	char *cadir = NULL, *end;
	tern_ca *ca = NULL;
	uint64_t version = 0;
	long port = 7700;
	int c, rc;

	if (cli_wants_help(argc, argv)) {
		fputs(dev_help, stdout);
		return CLI_OK;
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno || *optarg == '\0' || *end != '\0' || port < 1 || port > 65515)
				return cli_usage_error(
				    "dev-federation",
				    "--base-port wants a port from 1 to 65515 (the "
				    "federation uses the 20 from there), not '%s'",
				    optarg);
			break;
		case 'f':
			federation = optarg;
			break;
		default:
			return cli_usage_error("dev-federation",
			                       "unknown or incomplete option '%s'",
			                       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("dev-federation", "give exactly one directory DIR");
	root = argv[optind];
	if (!cli_dir_empty_or_missing(root)) {
		fprintf(stderr,
		        "tern: %s exists and is not empty; dev-federation never overwrites.\n"
		        "Choose a new directory, or remove this one first if it is a previous "
		        "development federation.\n",
		        root);
		return CLI_FAIL;
	}
	if ((rc = tern_mkdirs(root, 0700)) != TERN_OK)
		return cli_fail(rc, "cannot create %s", root);
	/* An empty directory given by the user may be looser than the daemons
	 * accept (StrictModes, docs/configuration.md): everything below it is
	 * made 0700 (directories, keys 0600) and it is made 0700 too. */
	if (chmod(root, 0700) != 0)
		return cli_fail(TERN_EIO, "cannot chmod 700 %s: %s", root, strerror(errno));
	if (asprintf(&cadir, "%s/ca", root) < 0)
		return cli_fail(TERN_ENOMEM, "cannot build the federation");
	if ((rc = tern_ca_init(cadir, federation, 0)) != TERN_OK) {
		rc = cli_fail(rc, "cannot create the CA in %s", cadir);
		goto out;
	}
	if ((rc = tern_ca_open(cadir, &ca)) != TERN_OK) {
		rc = cli_fail(rc, "cannot open the CA in %s", cadir);
		goto out;
	}
	for (size_t i = 0; i < NDEV; i++) {
		if ((rc = make_node(ca, root, &dev_nodes[i], (int)i, (int)port)) != TERN_OK) {
			rc = cli_fail(rc, "cannot set up node '%s'", dev_nodes[i].id);
			goto out;
		}
	}
	if ((rc = tern_ca_write_directory(ca, NULL, &version)) != TERN_OK) {
		rc = cli_fail(rc, "cannot write the directory");
		goto out;
	}
	printf("Development federation '%s' in %s:\n", federation, root);
	printf("  %-10s CA: ca.crt, crl.pem, directory.tdir (version %llu), ca.key (0600)\n", "ca/",
	       (unsigned long long)version);
	for (size_t i = 0; i < NDEV; i++)
		printf("  %-10s %-9s %-24s %s\n", dev_nodes[i].dir, dev_nodes[i].id,
		       dev_nodes[i].agency, dev_nodes[i].roles);
	printf("Broker 'hub' listens on tcp://127.0.0.1:%ld (broker/broker.conf), metrics on\n"
	       "http://127.0.0.1:%ld/metrics; each node's settings (metrics and HTTP API ports)\n"
	       "are in <node>/node.conf, its HTTP API token in <node>/http.token (a line:\n"
	       "drop the white space around it when you read it, docs/api.md).\n"
	       "Development only: the CA key is in %s.\n",
	       port, port + 1, cadir);
	/* The directories above DIR are the user's choice: say at once if the
	 * daemons will refuse what lies below them. */
	if (tern_path_check_strict(root, TERN_STRICT_SELF, NULL, 0) != TERN_OK)
		fprintf(stderr,
		        "tern: warning: the daemons will refuse this federation until this is "
		        "fixed: %s\n",
		        tern_errdetail());
	rc = CLI_OK;
out:
	tern_ca_close(&ca);
	free(cadir);
	return rc;
}

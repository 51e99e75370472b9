/* tern backup: a hot, consistent, compacted copy of a node's or broker's store. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <tern/config.h>
#include <tern/error.h>

#include "commands.h"
#include "store.h"

static void usage(FILE *f)
{
	fputs(
	    "Usage: tern backup -c CONF --out DIR [--json]\n"
	    "\n"
	    "Copies the store of the node or broker CONF names into DIR (made, mode 0700;\n"
	    "it must not hold a store already) as DIR/data.mdb: one consistent snapshot,\n"
	    "taken while the daemon runs (LMDB's compacting copy, one read transaction),\n"
	    "without free pages. Keep it with the daemon's keys and configuration out of\n"
	    "others' reach: it holds sealed messages and the audit log.\n"
	    "\n"
	    "To restore: stop the daemon, move its data_dir aside, put DIR in its place,\n"
	    "start it. Its peers notice the store went back in time and send again what\n"
	    "it no longer holds (docs/operations.md, \"Backup and restore\").\n"
	    "\n"
	    "Options:\n"
	    "  -c, --config CONF  the node's node.conf or the broker's broker.conf\n"
	    "  -o, --out DIR      where the copy goes\n"
	    "  -j, --json         print {\"store\", \"out\", \"bytes\"} as JSON\n"
	    "\n"
	    "Examples:\n"
	    "  tern backup -c /etc/tern/unhcr/node.conf --out /var/backups/tern/unhcr-$(date +%F)\n"
	    "  tern backup -c /etc/tern/broker/broker.conf --out /var/backups/tern/hub --json\n",
	    f);
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf = NULL, *out = NULL, *sect, *dir;
	tern_config *cfg = NULL;
	uint64_t bytes = 0;
	int c, json = 0, rc, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:o:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage_error("backup", "unknown option");
		}
	}
	if (conf == NULL || out == NULL || optind != argc)
		return cli_usage_error("backup", "give -c CONF and --out DIR");
	if (cli_config_load_either("backup", conf, &cfg, &sect) != CLI_OK)
		return CLI_FAIL;
	dir = tern_config_get(cfg, sect, "data_dir");
	if ((rc = tern_store_copy(dir, out, &bytes)) != TERN_OK) {
		ret = cli_fail(rc, "cannot back up %s", dir);
		tern_config_free(&cfg);
		return ret;
	}
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:I}", "store", dir, "out", out, "bytes",
		                      (json_int_t)bytes);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		printf("backed up %s to %s/data.mdb (%llu bytes)\n", dir, out,
		       (unsigned long long)bytes);
	}
	tern_config_free(&cfg);
	return CLI_OK;
}

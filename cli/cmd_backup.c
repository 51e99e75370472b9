/* tern backup: a hot, consistent, compacted copy of a node's or broker's store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <tern/config.h>
#include <tern/error.h>

#include "commands.h"
#include "store.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs(
	    "Usage: tern backup -c CONF --out DIR [--json]\n"
	    "\n"
	    "Copies the store of the node or broker CONF names into DIR (made, mode 0700;\n"
	    "it must not hold a store already) as DIR/data.mdb (mode 0600): one consistent\n"
	    "snapshot, taken while the daemon runs (LMDB's compacting copy, one read\n"
	    "transaction), without free pages. Then the attachment files the store\n"
	    "counts (a node's spool/, a broker's chunks/; sealed, as they are kept) are\n"
	    "copied beside it: taken after the snapshot, they hold at least what it\n"
	    "counts. Uploads not yet sent are not copied. Keep it with the daemon's keys\n"
	    "and configuration out of others' reach: it holds sealed messages and the\n"
	    "audit log.\n"
	    "\n"
	    "To restore: stop the daemon, move its data_dir aside, put a copy of DIR in\n"
	    "its place (cp -a: keep DIR), start it; for a node, then run\n"
	    "'tern audit reanchor -c CONF' so that its witnesses cosign its log again. Its\n"
	    "peers notice the store went back in time and send again what it no longer\n"
	    "holds (docs/operations.md, \"Backup and restore\", says what they cannot).\n"
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

/* Copies the regular files of the tree at from (if any) to to (0700
 * directories, 0600 files, each synced); *bytes adds up what was copied. */
static int copy_tree(const char *from, const char *to, uint64_t *bytes)
{
	DIR *d = opendir(from);
	struct dirent *e;
	int rc = TERN_OK;

	if (d == NULL)
		return errno == ENOENT ? TERN_OK
		                       : tern_fail(TERN_EIO, "%s: %s", from, strerror(errno));
	if (mkdir(to, 0700) != 0 && errno != EEXIST) {
		closedir(d);
		return tern_fail(TERN_EIO, "cannot make %s: %s", to, strerror(errno));
	}
	while (rc == TERN_OK && (e = readdir(d)) != NULL) {
		char src[4096], dst[4096];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(src, sizeof(src), "%s/%s", from, e->d_name);
		snprintf(dst, sizeof(dst), "%s/%s", to, e->d_name);
		if (lstat(src, &st) != 0)
			continue; /* gone since: removed after the snapshot */
		if (S_ISDIR(st.st_mode)) {
			rc = copy_tree(src, dst, bytes);
		} else if (S_ISREG(st.st_mode)) {
			int in = open(src, O_RDONLY | O_CLOEXEC), out;
			char buf[1 << 16];
			ssize_t r = 0;
			if (in < 0)
				continue;
			if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
				close(in);
				rc =
				    tern_fail(TERN_EIO, "cannot make %s: %s", dst, strerror(errno));
				break;
			}
			while ((r = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)r) != r) {
					r = -1;
					break;
				} else
					*bytes += (uint64_t)r;
			if (r < 0 || fsync(out) != 0)
				rc =
				    tern_fail(TERN_EIO, "cannot copy %s: %s", src, strerror(errno));
			close(in);
			close(out);
		}
	}
	closedir(d);
	return rc;
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
	{
		/* The attachments' files: after the snapshot, so that they hold at
		 * least every chunk it counts (chunks are synced before counted). */
		static const char *const subs[] = {"spool", "chunks"};
		for (size_t i = 0; i < 2; i++) {
			char from[4096], to[4096];
			uint64_t nb = 0;
			snprintf(from, sizeof(from), "%s/%s", dir, subs[i]);
			snprintf(to, sizeof(to), "%s/%s", out, subs[i]);
			if ((rc = copy_tree(from, to, &nb)) != TERN_OK) {
				ret = cli_fail(rc, "cannot back up %s", from);
				tern_config_free(&cfg);
				return ret;
			}
			bytes += nb;
		}
	}
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:I}", "store", dir, "out", out, "bytes",
		                      (json_int_t)bytes);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		printf("backed up %s to %s (%llu bytes, attachments included)\n", dir, out,
		       (unsigned long long)bytes);
	}
	tern_config_free(&cfg);
	return CLI_OK;
}

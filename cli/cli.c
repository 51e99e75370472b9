#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/config.h>
#include <tern/error.h>

#include "cli.h"
#include "util.h"

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("tern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'tern %s --help'.\n", cmd);
	return CLI_USAGE;
}

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	const char *d = tern_errdetail();

	fputs("tern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s", tern_strerror(code));
	if (d[0])
		fprintf(stderr, " (%s)", d);
	fputc('\n', stderr);
	return CLI_FAIL;
}

int cli_read_input(const char *path, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *buf;
	size_t got = 0, cap = 65536;

	if (strcmp(path, "-") != 0)
		return tern_file_read(path, max, out, len);
	if ((buf = malloc(cap + 1)) == NULL)
		return TERN_ENOMEM;
	for (;;) {
		size_t n = fread(buf + got, 1, cap - got, stdin);
		got += n;
		if (got > max) {
			free(buf);
			return tern_fail(TERN_ETOOBIG,
			                 "standard input is over the limit of %zu bytes", max);
		}
		if (n == 0) {
			if (ferror(stdin)) {
				free(buf);
				return tern_fail(TERN_EIO, "cannot read standard input: %s",
				                 strerror(errno));
			}
			break;
		}
		if (got == cap) {
			uint8_t *nb = realloc(buf, cap * 2 + 1);
			if (nb == NULL) {
				free(buf);
				return TERN_ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return TERN_OK;
}

int cli_config_load_either(const char *cmd, const char *conf, struct tern_config **cfg,
                           const char **section)
{
	*section = "node";
	if (tern_config_load(conf, TERN_CONFIG_NODE, cfg) == TERN_OK)
		return CLI_OK;
	tern_config_free(cfg);
	*section = "broker";
	if (tern_config_load(conf, TERN_CONFIG_BROKER, cfg) == TERN_OK)
		return CLI_OK;
	{
		const char *why = *cfg ? tern_config_errors(*cfg) : tern_errdetail();
		size_t n = strlen(why);
		fprintf(stderr, "tern %s: %s is neither a node nor a broker configuration:\n%s%s",
		        cmd, conf, why, n && why[n - 1] == '\n' ? "" : "\n");
	}
	tern_config_free(cfg);
	return CLI_FAIL;
}

int cli_dir_empty_or_missing(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int empty = 1;

	if (d == NULL)
		return errno == ENOENT;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	return empty;
}

const char *cli_json_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

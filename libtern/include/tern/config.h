/* Configuration files of tern-node (node.conf) and tern-broker (broker.conf).
 *
 * INI files (parsed with inih): [section] headers, "key = value" lines, comments
 * on lines of their own starting with ';' or '#', and inline comments after
 * " ;" (a ';' preceded by white space). Values are taken verbatim: no quotes, no
 * escapes, no continuation lines, no "~" expansion. Lines are at most
 * TERN_CONFIG_MAX_LINE characters. Each key may appear once.
 *
 * Every setting is declared once, in a table in config.c, with its kinds, type,
 * default, bounds and a line of help; docs/configuration.md is generated from
 * the same table (tern_config_describe).
 *
 * Relative paths (and relative ipc:// endpoints) are resolved against the
 * directory of the configuration file when it is loaded, so a federation
 * directory can be moved as a whole; tern_config_get() returns them absolute.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* inih's line buffer (200 bytes in Debian's build) less "\r\n\0". */
#define TERN_CONFIG_MAX_LINE 197

/* Largest configuration file accepted. */
#define TERN_CONFIG_MAX_SIZE (1024 * 1024)

typedef struct tern_config tern_config;

/* Kinds of configuration file; also bits of each setting's kind mask. */
enum tern_config_kind { TERN_CONFIG_NODE = 1, TERN_CONFIG_BROKER = 2 };

enum tern_config_format {
	TERN_CONFIG_FORMAT_INI,     /* a commented sample file with every default */
	TERN_CONFIG_FORMAT_MARKDOWN /* a table, as pasted in docs/configuration.md */
};

/* Loads path as a configuration file of kind (TERN_CONFIG_NODE or _BROKER).
 *
 * TERN_OK: *out is a complete configuration; every declared setting has a
 * value (from the file or its default).
 * TERN_ECONFIG: the file was read but something in it is wrong. Every problem
 * found is collected (not only the first), one per line, each as
 * "FILE:LINE: [section] key: what is wrong; what is allowed", and *out is
 * STILL SET to the partial configuration so that tern_config_errors() can
 * report them; the caller must tern_config_free() it and must not use its
 * values. tern_errdetail() holds the count and the first error.
 * Any other code (TERN_ENOENT, TERN_EIO, TERN_ETOOBIG, TERN_ENOMEM,
 * TERN_EINVAL): *out is NULL and tern_errdetail() says why.
 *
 * The configuration owns every string it returns; they live until
 * tern_config_free(). Loading touches no global state and may run in any
 * thread. */
int tern_config_load(const char *path, int kind, tern_config **out);

/* Every error found by tern_config_load(), each line ending in '\n'; "" when
 * there is none. Valid until tern_config_free(). */
const char *tern_config_errors(const tern_config *cfg);
size_t tern_config_error_count(const tern_config *cfg);

/* The value of [section] key: as written in the file, or its default; paths
 * and ipc:// endpoints resolved to absolute ones. NULL only for a setting
 * that has no value, which after a TERN_OK load cannot happen.
 *
 * Asking for a key that is not declared for cfg's kind is a programming error:
 * the process exits through fatalx(). */
const char *tern_config_get(const tern_config *cfg, const char *section, const char *key);

/* The value of an int, size (bytes) or duration (seconds) setting; for a
 * log_level setting the TERN_LOG_* level of <tern/log.h>. Any other type, or
 * an undeclared key, is a programming error (fatalx()). */
int64_t tern_config_get_int(const tern_config *cfg, const char *section, const char *key);

/* Line of the file where [section] key was set; 0 if its default applies.
 * For later messages such as "node.conf:7: [keys] certificate: ...". Undeclared
 * key: fatalx(). */
int tern_config_line(const tern_config *cfg, const char *section, const char *key);

/* The file cfg came from, made absolute (symbolic links are not resolved, so
 * relative settings follow the path the operator gave). */
const char *tern_config_path(const tern_config *cfg);
int tern_config_kind(const tern_config *cfg);

/* Writes the effective configuration (every setting, defaults marked) as an
 * INI file to fp, for --check-config. TERN_EIO if writing fails. */
int tern_config_print(const tern_config *cfg, FILE *fp);

/* Writes every setting declared for kind, with type, default, bounds and help,
 * in format (enum tern_config_format). TERN_EINVAL for an unknown kind or
 * format, TERN_EIO if writing fails. */
int tern_config_describe(int kind, int format, FILE *fp);

/* "node.conf" or "broker.conf"; "?" for an unknown kind. */
const char *tern_config_kind_name(int kind);

/* Frees *cfg (NULL is fine) and sets it to NULL. */
void tern_config_free(tern_config **cfg);

#ifdef __cplusplus
}
#endif
#endif

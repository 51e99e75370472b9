/* Attachments on the command line: uploading a file to the node, reading
 * one back from the inbox (docs/attachments.md). Errors are printed as
 * "tern CMD: ..."; the functions return CLI exit codes (cli.h). */
#ifndef TERN_CLI_ATTACH_H
#define TERN_CLI_ATTACH_H

#include <stddef.h>

#include <jansson.h>

/* The media type a file name suggests (application/octet-stream if none). */
const char *cli_attach_media_type(const char *name);
/* The node's API socket from its configuration, into buf. */
int cli_node_socket(const char *cmd, const char *conf, char *buf, size_t len);
/* Uploads path to the node at sock; *decl is the body's declaration of it
 * (name, mediaType, sha256, size: a new reference) and upload_id the id a
 * send names. Progress goes to stderr when it is a terminal. */
int cli_attach_upload(const char *cmd, const char *sock, const char *path, const char *name,
                      json_t **decl, char upload_id[37]);
/* Opens path to pass to the node by descriptor (docs/api.md, "Files by
 * descriptor") and hashes it: *decl as for cli_attach_upload, *fd the open
 * file (the caller closes it). CLI_NO, nothing printed, when the node could
 * not seal from it (tern_attach_fd_check: e.g. on NFS): upload it instead. */
int cli_attach_by_fd(const char *cmd, const char *path, const char *name, json_t **decl,
                     int *fd);
/* Writes attachment name of inbox message msgid to out_path ("-": standard
 * output), through out_path.part, and checks its SHA-256 is the declared one. */
int cli_attach_download(const char *cmd, const char *sock, const char *msgid, const char *name,
                        const char *out_path);

#endif

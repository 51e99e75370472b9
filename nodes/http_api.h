/* The node's HTTP API (docs/api.md#http): the local API's operations over
 * HTTP on 127.0.0.1 with a bearer token, for agency systems that would
 * rather speak HTTP than a Unix socket. Each request becomes one local API
 * call on the node's own socket, so both offer exactly the same operations
 * with the same checks. */
#ifndef TERN_NODE_HTTP_API_H
#define TERN_NODE_HTTP_API_H

#include "http.h"

typedef struct node_http node_http;

/* Serves the API on 127.0.0.1:port, and hands GETs of published snapshots
 * (/metrics, /healthz, /readyz) to the same server. token is copied;
 * max_upload is [limits] max_attachment_size (tus's Tus-Max-Size). */
int node_http_start(uint16_t port, const char *api_socket, const char *token, int64_t max_upload,
                    node_http **out);
tern_http *node_http_server(node_http *h);
void node_http_stop(node_http **h);

#endif

/* cpserver.h - wsgw-control's gRPC side: the Admin API and the ControlPlane stream,
 * driven by one completion queue on one thread (the caller's).
 *
 * Ownership: cp_server_new() takes ownership of the state; cp_server_run() returns after
 * cp_server_stop() was requested (from a signal handler: it only sets a flag) and the
 * shutdown sequence finished; cp_server_free() then releases everything.
 */
#ifndef CP_SERVER_H
#define CP_SERVER_H

#include <stdbool.h>

#include "state.h"

typedef struct {
    const char *node_listen;    /* host:port for data planes */
    const char *admin_listen;   /* host:port for admins */
    const char *metrics_listen; /* host:port for /metrics and /health, or "" */
    const char *state_path;
    const char *admin_token;
    const char *node_token;
    const char *tls_cert, *tls_key, *tls_client_ca; /* PEM file paths or "" */
    long report_interval_ms;
    long debounce_ms;
    long debounce_max_ms;
    long max_nodes;   /* fleet entries kept (connected + gone) */
    long gone_ttl_ms; /* a gone node stays listed this long */
} cp_server_opts_t;

typedef struct cp_server cp_server_t;

/* NULL (with a reason in err) when a port cannot be bound or TLS files cannot be read. */
cp_server_t *cp_server_new(const cp_server_opts_t *o, cp_state_t *state, char *err, size_t errlen);
void cp_server_run(cp_server_t *s);
void cp_server_stop(cp_server_t *s); /* async-signal-safe */
void cp_server_free(cp_server_t *s);

/* Ports actually bound (useful with port 0). */
int cp_server_node_port(const cp_server_t *s);
int cp_server_admin_port(const cp_server_t *s);
int cp_server_metrics_port(const cp_server_t *s);

#endif

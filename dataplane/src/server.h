/* server.h - the node: libwebsockets on the shared libuv loop serving /ws, /health and
 * /stats, wired to the hub and the Redis link; owns every session and the drain on
 * shutdown.
 *
 * Ownership: gw_server_new() borrows cfg and loop (both must outlive the server).
 * gw_server_drain() starts a graceful stop; once the loop has no more work, call
 * gw_server_free(). All of it runs on the loop thread.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <uv.h>

#include "acl.h"
#include "auth.h"
#include "config.h"

typedef struct gw_server gw_server_t;

/* Returns NULL (after logging why) when the listener or the Redis URL cannot be set up.
 * roles and auth are borrowed: the caller frees them after gw_server_free(). */
gw_server_t *gw_server_new(uv_loop_t *loop, const gw_config_t *cfg, gw_roles_t *roles,
                           gw_auth_t *auth);

/* Stops accepting, asks every client to close with 1001 after its queue is flushed, and
 * tears everything down when all are gone or cfg->shutdown_timeout_ms has passed. */
void gw_server_drain(gw_server_t *srv);

void gw_server_free(gw_server_t *srv);

#endif

/* server_internal.h - the node's state, shared by the modules that make up the server:
 * server.c (lws callback, sessions, writes, lifecycle), http.c (/health, /stats,
 * /metrics, the dashboard) and cpapply.c (control-plane snapshots and reports).
 * Everything here runs on the loop thread. Not for use outside those three files. */
#ifndef GW_SERVER_INTERNAL_H
#define GW_SERVER_INTERNAL_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "auth.h"
#include "cidr.h"
#include "cplink.h"
#include "hub.h"
#include "iptable.h"
#include "origin.h"
#include "redis.h"
#include "server.h"
#include "session.h"

struct gw_server {
    uv_loop_t *loop;
    const gw_config_t *cfg; /* the node's own settings */
    gw_config_t live;       /* what sessions see: cfg, overridden by the control plane */
    char *owned_default_role;
    bool cp_mode;      /* CONTROL_PLANE_URL is set */
    bool config_ready; /* in cp_mode: a snapshot (pushed or cached) is applied */
    uint64_t config_version;
    char config_epoch[64];
    unsigned char config_digest[32]; /* SHA-256 of the applied snapshot, as pushed */
    gw_cplink_t *cplink;
    uv_timer_t report_timer;
    struct lws_context *ctx;
    gw_hub_t *hub;
    gw_redis_t *redis;
    gw_session_env_t env;
    gw_hub_ops_t hub_ops;
    gw_session_t *sessions; /* doubly linked */
    uint64_t serial;
    uint64_t started_ms;
    bool draining;
    bool over_budget; /* queues over NODE_QUEUE_BYTES: enforce at the end of the turn */
    bool finished;
    uv_timer_t drain_timer;
    uv_check_t flush_check; /* writes queued frames once per loop turn, after all I/O */
    uv_timer_t tick_timer;  /* auth timeouts and credential expiry */
    gw_iptable_t *ips;      /* what each client address holds */
    gw_ipent_t *accepting;  /* counted at accept, until lws instantiates its wsi */
    struct gw_sock *pending_head, *pending_tail; /* sockets not upgraded, oldest first */
    uint64_t npending;                           /* on that list */
    uint64_t evicting;                           /* evicted from it, not yet closed */
    uint64_t sockets;                            /* accepted sockets open (WebSocket or not) */
    uint64_t socket_limit; /* from RLIMIT_NOFILE, with descriptors kept for the rest */
    uint64_t ws_limit;     /* MAX_CONNECTIONS, lowered to leave sockets for HTTP */
    gw_cidr_t *proxies;    /* TRUSTED_PROXIES */
    int nproxies;
    /* failed authentications since the last summary line (one line per interval) */
    struct {
        uint32_t epoch, addresses, top_count;
        uint64_t total, by_reason[GW_AUTH__COUNT];
        char top[GW_IP_TEXT_MAX];
        uint64_t next_us;
    } fails;
    unsigned char stats_token_hash[32];
    gw_origins_t ws_origins;   /* ALLOWED_ORIGINS */
    gw_origins_t cors_origins; /* CORS_ALLOW_ORIGINS */
    gw_session_t *flush;       /* sessions with frames queued since the last turn */
    unsigned char *wbuf;       /* LWS_PRE + WBUF_SIZE, shared by all writes on this thread */
    lws_retry_bo_t retry;
};

/* Per-connection data, allocated by lws for both HTTP and WebSocket roles. */
typedef struct {
    gw_session_t *s;
    unsigned char *body; /* HTTP: LWS_PRE + body_len */
    size_t body_len;
    gw_ipent_t *ip; /* WebSocket: its connection, counted in srv->ips */
    char *token;    /* credentials of the upgrade request, until ESTABLISHED */
    char *api_key;
} pss_t;

/* http.c */
int gw_http_request(gw_server_t *srv, struct lws *wsi, pss_t *pss, const char *path);
int gw_http_writeable(struct lws *wsi, pss_t *pss);

/* cpapply.c: loads the cached snapshot, starts the link and the stats reports. */
void gw_control_start(gw_server_t *srv);

#endif

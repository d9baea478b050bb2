/* stats.h - process-wide counters, owned and updated by the event loop thread only. */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdint.h>

#include "auth.h"
#include "proto.h"

/* Delivery lag (Redis receive to socket write) histogram bounds, in microseconds. */
#define GW_LAG_BUCKETS 16
extern const uint64_t gw_lag_bounds_us[GW_LAG_BUCKETS];

typedef struct {
    uint64_t conn_current;
    uint64_t conn_total;
    uint64_t conn_legacy;       /* current connections speaking the legacy dialect */
    uint64_t client_subs_exact; /* current client-level subscriptions */
    uint64_t client_subs_pattern;
    uint64_t redis_subs_exact; /* current Redis-level subscriptions (confirmed) */
    uint64_t redis_subs_pattern;
    uint64_t redis_messages; /* messages received from Redis */
    uint64_t redis_reconnects;
    uint64_t frames_received; /* client text frames handled */
    uint64_t frames_sent;
    uint64_t bytes_sent;
    uint64_t writes;           /* socket writes; frames_sent / writes is the coalescing ratio */
    uint64_t dropped_drop;     /* messages dropped by the drop policy */
    uint64_t dropped_conflate; /* messages replaced by a newer one under conflate */
    uint64_t slow_closes;      /* connections closed with 1013 */
    uint64_t resyncs_sent;
    uint64_t errors[GW_E__COUNT]; /* error frames sent, by code */
    uint64_t closes_too_big;      /* connections closed with 1009 */
    uint64_t auth_ok;
    uint64_t auth_failures[GW_AUTH__COUNT]; /* by reason */
    uint64_t auth_expired_closes;
    uint64_t acl_denied;                      /* subscriptions refused */
    uint64_t acl_blocked_deliveries;          /* deliveries stopped by the per-message check */
    uint64_t rate_limited;                    /* frames refused by the token bucket */
    uint64_t rate_closes;                     /* connections closed with 4429 */
    uint64_t refused_max_conn;                /* upgrades refused: MAX_CONNECTIONS (503) */
    uint64_t refused_per_ip;                  /* upgrades refused: MAX_CONNECTIONS_PER_IP (429) */
    uint64_t refused_origin;                  /* upgrades refused: ALLOWED_ORIGINS (403) */
    uint64_t refused_sockets;                 /* sockets refused: descriptor budget (503) */
    uint64_t refused_handshakes;              /* sockets refused: MAX_HANDSHAKES_PER_IP (429) */
    uint64_t evicted_pending;                 /* not-upgraded sockets closed for newcomers */
    uint64_t budget_closes;                   /* closed (1013): NODE_QUEUE_BYTES exceeded */
    uint64_t refused_auth_throttled;          /* upgrades refused: MAX_AUTH_FAILURES_PER_IP */
    uint64_t refused_subprotocol;             /* upgrades refused: unknown subprotocol (400) */
    uint64_t stats_unauthorized;              /* /health or /stats without STATS_TOKEN (401) */
    uint64_t revoked_closes;                  /* connections closed with 4403 */
    uint64_t config_applied;                  /* snapshots applied from the control plane */
    uint64_t config_rejected;                 /* snapshots NACKed */
    uint64_t lag_buckets[GW_LAG_BUCKETS + 1]; /* last one: +Inf */
    uint64_t lag_sum_us;
    uint64_t lag_count;
} gw_stats_t;

extern gw_stats_t gw_stats;

/* Records one delivery's lag. */
static inline void gw_stats_lag(uint64_t us)
{
    int b = 0;
    while (b < GW_LAG_BUCKETS && us > gw_lag_bounds_us[b]) b++;
    gw_stats.lag_buckets[b]++;
    gw_stats.lag_sum_us += us;
    gw_stats.lag_count++;
}

#endif

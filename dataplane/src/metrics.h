/* metrics.h - the node's counters in the Prometheus text format (GET /metrics).
 * Labels have bounded cardinality: error codes, auth results, policies; never a channel. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

typedef struct {
    bool redis_up;
    bool cp_enabled, cp_connected;
    uint64_t config_version;
    uint64_t uptime_s;
    uint64_t patterns_held, patterns_limit; /* MAX_REDIS_PATTERNS */
    uint64_t sockets_open, sockets_limit;   /* the descriptor budget */
    uint64_t queued_bytes;                  /* gw_outq_retained() */
} gw_metrics_ctx_t;

void gw_metrics_render(gw_buf_t *b, const gw_metrics_ctx_t *ctx);

#endif

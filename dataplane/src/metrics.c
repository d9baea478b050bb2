#include "metrics.h"

#include "auth.h"
#include "proto.h"
#include "stats.h"

static void metric(gw_buf_t *b, const char *name, const char *type, const char *help)
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(gw_buf_t *b, const char *name, const char *labels, uint64_t v)
{
    gw_buf_printf(b, "%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "",
                  labels ? "}" : "", (unsigned long long)v);
}

static void one(gw_buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    metric(b, name, type, help);
    sample(b, name, NULL, v);
}

void gw_metrics_render(gw_buf_t *b, const gw_metrics_ctx_t *c)
{
    const gw_stats_t *s = &gw_stats;
    char l[96];

    one(b, "wsgw_up", "gauge", "1 while the node serves", 1);
    one(b, "wsgw_uptime_seconds", "gauge", "seconds since start", c->uptime_s);
    one(b, "wsgw_connections", "gauge", "open WebSocket connections", s->conn_current);
    one(b, "wsgw_connections_total", "counter", "WebSocket connections accepted", s->conn_total);
    metric(b, "wsgw_subscriptions", "gauge", "subscriptions by level and kind");
    sample(b, "wsgw_subscriptions", "level=\"client\",kind=\"exact\"", s->client_subs_exact);
    sample(b, "wsgw_subscriptions", "level=\"client\",kind=\"pattern\"", s->client_subs_pattern);
    sample(b, "wsgw_subscriptions", "level=\"redis\",kind=\"exact\"", s->redis_subs_exact);
    sample(b, "wsgw_subscriptions", "level=\"redis\",kind=\"pattern\"", s->redis_subs_pattern);
    one(b, "wsgw_redis_patterns", "gauge",
        "distinct patterns held on Redis (each one slows every PUBLISH there)", c->patterns_held);
    one(b, "wsgw_redis_patterns_limit", "gauge", "MAX_REDIS_PATTERNS", c->patterns_limit);
    one(b, "wsgw_sockets", "gauge", "accepted sockets open, WebSocket or not", c->sockets_open);
    one(b, "wsgw_sockets_limit", "gauge", "sockets the descriptor limit allows", c->sockets_limit);
    one(b, "wsgw_messages_in_total", "counter", "messages received from Redis", s->redis_messages);
    one(b, "wsgw_frames_out_total", "counter", "frames written to clients", s->frames_sent);
    one(b, "wsgw_bytes_out_total", "counter", "bytes written to clients", s->bytes_sent);
    one(b, "wsgw_socket_writes_total", "counter", "socket writes (frames are coalesced)",
        s->writes);
    one(b, "wsgw_client_frames_total", "counter", "frames received from clients",
        s->frames_received);
    metric(b, "wsgw_dropped_total", "counter", "messages dropped for slow consumers, by policy");
    sample(b, "wsgw_dropped_total", "policy=\"drop\"", s->dropped_drop);
    sample(b, "wsgw_dropped_total", "policy=\"conflate\"", s->dropped_conflate);
    one(b, "wsgw_slow_consumer_closes_total", "counter", "connections closed with 1013",
        s->slow_closes);
    metric(b, "wsgw_errors_total", "counter", "error frames sent, by code");
    for (int i = 0; i < GW_E__COUNT; i++) {
        snprintf(l, sizeof l, "code=\"%s\"", gw_errcode_name((gw_errcode_t)i));
        sample(b, "wsgw_errors_total", l, s->errors[i]);
    }
    metric(b, "wsgw_auth_total", "counter", "authentication attempts, by result");
    sample(b, "wsgw_auth_total", "result=\"ok\"", s->auth_ok);
    for (int i = 1; i < GW_AUTH__COUNT; i++) {
        snprintf(l, sizeof l, "result=\"%s\"", gw_auth_result_name((gw_auth_result_t)i));
        sample(b, "wsgw_auth_total", l, s->auth_failures[i]);
    }
    one(b, "wsgw_acl_denied_total", "counter", "subscriptions refused by the ACL", s->acl_denied);
    one(b, "wsgw_acl_blocked_deliveries_total", "counter",
        "deliveries stopped by the per-message ACL check", s->acl_blocked_deliveries);
    one(b, "wsgw_rate_limited_total", "counter", "client frames refused by the rate limit",
        s->rate_limited);
    one(b, "wsgw_rate_limit_closes_total", "counter", "connections closed with 4429",
        s->rate_closes);
    metric(b, "wsgw_refused_connections_total", "counter", "upgrades refused, by reason");
    sample(b, "wsgw_refused_connections_total", "reason=\"max_connections\"", s->refused_max_conn);
    sample(b, "wsgw_refused_connections_total", "reason=\"per_ip\"", s->refused_per_ip);
    sample(b, "wsgw_refused_connections_total", "reason=\"origin\"", s->refused_origin);
    sample(b, "wsgw_refused_connections_total", "reason=\"subprotocol\"", s->refused_subprotocol);
    sample(b, "wsgw_refused_connections_total", "reason=\"sockets\"", s->refused_sockets);
    sample(b, "wsgw_refused_connections_total", "reason=\"handshakes_per_ip\"",
           s->refused_handshakes);
    sample(b, "wsgw_refused_connections_total", "reason=\"auth_throttled\"",
           s->refused_auth_throttled);
    one(b, "wsgw_queued_bytes", "gauge",
        "bytes all outbound queues hold (shared frames once; NODE_QUEUE_BYTES bounds it)",
        c->queued_bytes);
    one(b, "wsgw_queue_budget_closes_total", "counter",
        "connections closed (1013) because all queues together were over NODE_QUEUE_BYTES",
        s->budget_closes);
    one(b, "wsgw_evicted_pending_total", "counter",
        "sockets that had not upgraded, closed to make room for newcomers", s->evicted_pending);
    one(b, "wsgw_redis_connected", "gauge", "1 while the Redis link is up", c->redis_up);
    one(b, "wsgw_redis_reconnects_total", "counter", "Redis reconnections", s->redis_reconnects);
    one(b, "wsgw_config_version", "gauge", "applied control-plane config version",
        c->config_version);
    one(b, "wsgw_control_plane_connected", "gauge",
        "1 while the control-plane stream is up (0 when standalone)", c->cp_connected);
    one(b, "wsgw_config_applied_total", "counter", "snapshots applied", s->config_applied);
    one(b, "wsgw_config_rejected_total", "counter", "snapshots NACKed", s->config_rejected);

    metric(b, "wsgw_delivery_lag_microseconds", "histogram",
           "time from a message's arrival from Redis to its socket write");
    uint64_t acc = 0;
    for (int i = 0; i <= GW_LAG_BUCKETS; i++) {
        acc += s->lag_buckets[i];
        if (i < GW_LAG_BUCKETS)
            snprintf(l, sizeof l, "le=\"%llu\"", (unsigned long long)gw_lag_bounds_us[i]);
        else
            snprintf(l, sizeof l, "le=\"+Inf\"");
        sample(b, "wsgw_delivery_lag_microseconds_bucket", l, acc);
    }
    sample(b, "wsgw_delivery_lag_microseconds_sum", NULL, s->lag_sum_us);
    sample(b, "wsgw_delivery_lag_microseconds_count", NULL, s->lag_count);
}

#include "server_internal.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "buf.h"
#include "clock.h"
#include "json.h"
#include "metrics.h"
#include "stats.h"

/*------------------------------------------------------------------------------
 * HTTP: /health, /stats, 404 */

/* "control_plane":{...}, with a trailing comma. */
static void render_control(gw_server_t *srv, gw_buf_t *b)
{
    gw_buf_printf(b,
                  "\"control_plane\":{\"enabled\":%s,\"connected\":%s,\"config_version\":%llu,"
                  "\"config_epoch\":\"%s\",\"applied\":%llu,\"rejected\":%llu},",
                  srv->cp_mode ? "true" : "false",
                  srv->cplink && gw_cplink_connected(srv->cplink) ? "true" : "false",
                  (unsigned long long)srv->config_version, srv->config_epoch,
                  (unsigned long long)gw_stats.config_applied,
                  (unsigned long long)gw_stats.config_rejected);
}

/* The fields the Python gateway's /stats and /health had, for its dashboards and probes:
 * flat, alongside ours. */
static void put_timestamp(gw_buf_t *b)
{
    char ts[GW_ISO8601_LEN];
    gw_buf_printf(b, "\"timestamp\":\"%s\"", gw_iso8601(gw_unix_us(), ts));
}

static void render_legacy_stats(gw_buf_t *b, bool up)
{
    gw_buf_printf(b,
                  "\"clients_connected\":%llu,\"total_subscriptions\":%llu,"
                  "\"channels_subscribed\":%llu,\"patterns_subscribed\":%llu,"
                  "\"redis_connected\":%s,",
                  (unsigned long long)gw_stats.conn_current,
                  (unsigned long long)(gw_stats.client_subs_exact + gw_stats.client_subs_pattern),
                  (unsigned long long)gw_stats.redis_subs_exact,
                  (unsigned long long)gw_stats.redis_subs_pattern, up ? "true" : "false");
    put_timestamp(b);
}

static void render_stats(gw_server_t *srv, gw_buf_t *b)
{
    bool up = srv->redis && gw_redis_is_up(srv->redis);
    gw_buf_puts(b, "{");
    render_control(srv, b);
    gw_buf_printf(b, "\"node\":");
    gw_json_put_string(b, srv->cfg->node_id, strlen(srv->cfg->node_id));
    gw_buf_printf(
        b,
        ",\"uptime_s\":%llu,\"redis\":{\"connected\":%s,\"reconnects\":%llu},"
        "\"connections\":{\"current\":%llu,\"total\":%llu,\"legacy\":%llu,\"limit\":%llu},"
        "\"sockets\":{\"open\":%llu,\"limit\":%llu,\"pending\":%llu,\"evicted\":%llu},"
        "\"subscriptions\":{\"client\":{\"exact\":%llu,\"pattern\":%llu},"
        "\"redis\":{\"exact\":%llu,\"pattern\":%llu,\"patterns_held\":%llu,"
        "\"patterns_limit\":%ld}},"
        "\"messages\":{\"from_redis\":%llu,\"frames_sent\":%llu,\"bytes_sent\":%llu,"
        "\"writes\":%llu,\"frames_received\":%llu,\"resyncs_sent\":%llu},"
        "\"slow_consumers\":{\"policy\":\"%s\",\"dropped\":%llu,"
        "\"dropped_by_policy\":{\"drop\":%llu,\"conflate\":%llu},\"closed\":%llu,"
        "\"node_queued_bytes\":%zu,\"node_queue_limit\":%ld,\"closed_over_node_limit\":%llu},"
        "\"closes_too_big\":%llu,\"errors\":{",
        (unsigned long long)((uv_now(srv->loop) - srv->started_ms) / 1000), up ? "true" : "false",
        (unsigned long long)gw_stats.redis_reconnects, (unsigned long long)gw_stats.conn_current,
        (unsigned long long)gw_stats.conn_total, (unsigned long long)gw_stats.conn_legacy,
        (unsigned long long)srv->ws_limit, (unsigned long long)srv->sockets,
        (unsigned long long)srv->socket_limit, (unsigned long long)srv->npending,
        (unsigned long long)gw_stats.evicted_pending,
        (unsigned long long)gw_stats.client_subs_exact,
        (unsigned long long)gw_stats.client_subs_pattern,
        (unsigned long long)gw_stats.redis_subs_exact,
        (unsigned long long)gw_stats.redis_subs_pattern,
        (unsigned long long)gw_hub_pattern_count(srv->hub), srv->live.max_redis_patterns,
        (unsigned long long)gw_stats.redis_messages, (unsigned long long)gw_stats.frames_sent,
        (unsigned long long)gw_stats.bytes_sent, (unsigned long long)gw_stats.writes,
        (unsigned long long)gw_stats.frames_received, (unsigned long long)gw_stats.resyncs_sent,
        gw_policy_name(srv->cfg->slow_policy),
        (unsigned long long)(gw_stats.dropped_drop + gw_stats.dropped_conflate),
        (unsigned long long)gw_stats.dropped_drop, (unsigned long long)gw_stats.dropped_conflate,
        (unsigned long long)gw_stats.slow_closes, gw_outq_retained(), srv->cfg->node_queue_bytes,
        (unsigned long long)gw_stats.budget_closes, (unsigned long long)gw_stats.closes_too_big);
    for (int i = 0; i < GW_E__COUNT; i++)
        gw_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", gw_errcode_name((gw_errcode_t)i),
                      (unsigned long long)gw_stats.errors[i]);
    gw_buf_printf(b, "},\"auth\":{\"ok\":%llu,\"expired_closes\":%llu,\"failures\":{",
                  (unsigned long long)gw_stats.auth_ok,
                  (unsigned long long)gw_stats.auth_expired_closes);
    for (int i = 1; i < GW_AUTH__COUNT; i++)
        gw_buf_printf(b, "%s\"%s\":%llu", i > 1 ? "," : "",
                      gw_auth_result_name((gw_auth_result_t)i),
                      (unsigned long long)gw_stats.auth_failures[i]);
    gw_buf_printf(
        b,
        "}},\"acl\":{\"denied\":%llu,\"blocked_deliveries\":%llu},"
        "\"rate_limit\":{\"limited\":%llu,\"closes\":%llu},"
        "\"refused\":{\"max_connections\":%llu,\"per_ip\":%llu,\"origin\":%llu,"
        "\"subprotocol\":%llu,\"sockets\":%llu,\"handshakes_per_ip\":%llu,"
        "\"auth_throttled\":%llu},"
        "\"stats_unauthorized\":%llu,",
        (unsigned long long)gw_stats.acl_denied,
        (unsigned long long)gw_stats.acl_blocked_deliveries,
        (unsigned long long)gw_stats.rate_limited, (unsigned long long)gw_stats.rate_closes,
        (unsigned long long)gw_stats.refused_max_conn, (unsigned long long)gw_stats.refused_per_ip,
        (unsigned long long)gw_stats.refused_origin,
        (unsigned long long)gw_stats.refused_subprotocol,
        (unsigned long long)gw_stats.refused_sockets,
        (unsigned long long)gw_stats.refused_handshakes,
        (unsigned long long)gw_stats.refused_auth_throttled,
        (unsigned long long)gw_stats.stats_unauthorized);
    render_legacy_stats(b, up);
    gw_buf_putc(b, '}');
}

static int render_health(gw_server_t *srv, gw_buf_t *b)
{
    bool up = srv->redis && gw_redis_is_up(srv->redis);
    bool configured = !srv->cp_mode || srv->config_ready;
    const char *status = srv->draining ? "draining" : up && configured ? "ok" : "unavailable";
    gw_buf_printf(b, "{\"status\":\"%s\",\"redis\":\"%s\",", status, up ? "up" : "down");
    if (srv->draining)
        gw_buf_puts(b, "\"reason\":\"shutting down\",");
    else if (!up)
        gw_buf_puts(b, "\"reason\":\"redis link is down\",");
    else if (!configured)
        gw_buf_puts(b, "\"reason\":\"no configuration from the control plane yet\",");
    render_control(srv, b);
    gw_buf_puts(b, "\"node\":");
    gw_json_put_string(b, srv->cfg->node_id, strlen(srv->cfg->node_id));
    gw_buf_printf(b,
                  ",\"uptime_s\":%llu,\"connections\":%llu,\"service\":\"redis-ws-gateway\","
                  "\"redis_connected\":%s,\"clients_connected\":%llu,",
                  (unsigned long long)((uv_now(srv->loop) - srv->started_ms) / 1000),
                  (unsigned long long)gw_stats.conn_current, up ? "true" : "false",
                  (unsigned long long)gw_stats.conn_current);
    put_timestamp(b);
    gw_buf_putc(b, '}');
    return (up && configured && !srv->draining) ? 200 : 503;
}

/* STATS_TOKEN: compared as SHA-256 digests in constant time (no length leak either). */
static bool stats_authorized(gw_server_t *srv, struct lws *wsi)
{
    char hdr[512];
    unsigned char h[32];
    if (!srv->cfg->stats_token[0]) return true;
    int n = lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n < 8 || strncasecmp(hdr, "Bearer ", 7) != 0) return false;
    gw_sha256(hdr + 7, (size_t)n - 7, h);
    bool ok = CRYPTO_memcmp(h, srv->stats_token_hash, sizeof h) == 0;
    OPENSSL_cleanse(hdr, sizeof hdr);
    return ok;
}

/* CORS_ALLOW_ORIGINS: "*", or the request's Origin echoed when it is listed (the answer
 * then depends on the request, which caches must know: Vary). */
static int add_cors_headers(gw_server_t *srv, struct lws *wsi, bool preflight, unsigned char **p,
                            unsigned char *end)
{
    char origin[GW_ORIGIN_MAX + 1];
    const gw_origins_t *o = &srv->cors_origins;
    const char *allow = NULL;
    if (o->any) {
        allow = "*";
    } else if (o->n) {
        int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
        if (n > 0 && gw_origins_match(o, origin, (size_t)n)) allow = origin;
        if (lws_add_http_header_by_name(
                wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, p, end))
            return 1;
    }
    if (!allow) return 0;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                    (const unsigned char *)allow, (int)strlen(allow), p, end))
        return 1;
    if (!preflight) return 0;
    static const char *const pre[][2] = {
        {"access-control-allow-methods:", "GET, OPTIONS"},
        {"access-control-allow-headers:", "Authorization"},
        {"access-control-max-age:", "600"},
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)pre[i][0],
                                        (const unsigned char *)pre[i][1], (int)strlen(pre[i][1]), p,
                                        end))
            return 1;
    return 0;
}

/* Anything but GET and OPTIONS: answered at once, completely, and the connection
 * closed. (Answering later would wait for a request body lws is still reading, and the
 * reply would land after the next request's on a kept-alive connection.) */
static int refuse_method(struct lws *wsi)
{
    static const char body[] = "{\"error\":\"method_not_allowed\"}\n";
    unsigned char buf[LWS_PRE + 256];
    int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 405 Method Not Allowed\r\nallow: GET, OPTIONS\r\n"
                     "content-type: application/json\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return -1;
}

int gw_http_request(gw_server_t *srv, struct lws *wsi, pss_t *pss, const char *path)
{
    gw_buf_t body = GW_BUF_INIT;
    int status;
    const char *type = "application/json";
    bool known = !strcmp(path, "/health") || !strcmp(path, "/stats") || !strcmp(path, "/metrics");
    const gw_asset_t *asset = gw_asset_find(path);
    /* A browser asks before it sends Authorization cross-origin; the answer needs none. */
    bool preflight = lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0;
    if (!preflight && !lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) return refuse_method(wsi);

    if (preflight) {
        status = known ? 204 : 404;
        if (!known) gw_buf_puts(&body, "{\"error\":\"not_found\"}");
    } else if (known && !stats_authorized(srv, wsi)) {
        gw_stats.stats_unauthorized++;
        status = 401;
        gw_buf_puts(&body, "{\"error\":\"unauthorized\"}");
    } else if (!strcmp(path, "/health")) {
        status = render_health(srv, &body);
    } else if (!strcmp(path, "/stats")) {
        status = 200;
        render_stats(srv, &body);
    } else if (!strcmp(path, "/metrics")) {
        gw_metrics_ctx_t mc = {srv->redis && gw_redis_is_up(srv->redis),
                               srv->cp_mode,
                               srv->cplink && gw_cplink_connected(srv->cplink),
                               srv->config_version,
                               (uv_now(srv->loop) - srv->started_ms) / 1000,
                               gw_hub_pattern_count(srv->hub),
                               (uint64_t)srv->live.max_redis_patterns,
                               srv->sockets,
                               srv->socket_limit,
                               gw_outq_retained()};
        status = 200;
        type = "text/plain; version=0.0.4";
        gw_metrics_render(&body, &mc);
    } else if (asset) {
        status = 200;
        type = asset->type;
        gw_buf_append(&body, asset->data, asset->len);
    } else {
        status = 404;
        gw_buf_puts(&body, "{\"error\":\"not_found\"}");
    }
    if (!asset && body.len && !strcmp(type, "application/json")) gw_buf_putc(&body, '\n');

    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start;
    unsigned char *end = hdr + sizeof hdr - 1;
    /* A 204 carries neither a body nor a Content-Length (RFC 9110, 8.6). */
    if ((status == 204
             ? lws_add_http_header_status(wsi, 204, &p, end)
             : lws_add_http_common_headers(wsi, (unsigned)status, type, body.len, &p, end)) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        (known && add_cors_headers(srv, wsi, preflight, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        gw_buf_free(&body);
        return 1;
    }
    free(pss->body); /* only one response is pending per connection; never lose one */
    pss->body = gw_xmalloc(LWS_PRE + body.len);
    if (body.len) memcpy(pss->body + LWS_PRE, body.data, body.len);
    pss->body_len = body.len;
    gw_buf_free(&body);
    lws_callback_on_writable(wsi);
    return 0;
}

int gw_http_writeable(struct lws *wsi, pss_t *pss)
{
    if (!pss->body) return 0;
    int n = lws_write(wsi, pss->body + LWS_PRE, pss->body_len, LWS_WRITE_HTTP_FINAL);
    free(pss->body);
    pss->body = NULL;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

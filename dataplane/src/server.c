#include "server.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <time.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "acl.h"
#include "auth.h"
#include "buf.h"
#include "cplink.h"
#include "hub.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "assets.h"
#include "proto.h"
#include "redis.h"
#include "session.h"
#include "snapshot.h"
#include "stats.h"

#define SUBSYS "server"

/* Coalescing buffer: all frames queued for one socket go out in one write of up to this. */
#define WBUF_SIZE (256 * 1024)

struct gw_server {
    uv_loop_t *loop;
    const gw_config_t *cfg; /* the node's own settings */
    gw_config_t live;       /* what sessions see: cfg, overridden by the control plane */
    char *owned_default_role;
    bool cp_mode;      /* CONTROL_PLANE_URL is set */
    bool config_ready; /* in cp_mode: a snapshot (pushed or cached) is applied */
    uint64_t config_version;
    char config_epoch[64];
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
    bool finished;
    uv_timer_t drain_timer;
    uv_check_t flush_check; /* writes queued frames once per loop turn, after all I/O */
    uv_timer_t tick_timer;  /* auth timeouts and credential expiry */
    struct ipcount **ips;   /* connections per client address */
    size_t nips_buckets;
    unsigned char stats_token_hash[32];
    gw_session_t *flush; /* sessions with frames queued since the last turn */
    unsigned char *wbuf; /* LWS_PRE + WBUF_SIZE, shared by all writes on this thread */
    lws_retry_bo_t retry;
};

/* Connections per client address, for MAX_CONNECTIONS_PER_IP. */
struct ipcount {
    struct ipcount *next;
    uint32_t n;
    char ip[48];
};

/* Per-connection data, allocated by lws for both HTTP and WebSocket roles. */
typedef struct {
    gw_session_t *s;
    unsigned char *body; /* HTTP: LWS_PRE + body_len */
    size_t body_len;
    struct ipcount *ip; /* WebSocket: counted in srv->ips */
    char *token;        /* credentials of the upgrade request, until ESTABLISHED */
    char *api_key;
} pss_t;

static void finish(gw_server_t *srv);
static void on_flush_check(uv_check_t *h);

/*------------------------------------------------------------------------------
 * Glue: hub <-> Redis link <-> sessions */

static int hub_redis_cmd(void *ud, bool subscribe, bool pattern, const char *const *names,
                         const size_t *lens, size_t n)
{
    gw_server_t *srv = ud;
    return srv->redis ? gw_redis_cmd(srv->redis, subscribe, pattern, names, lens, n) : -1;
}

static void hub_deliver(void *ud, gw_sub_t *sub, gw_msg_t *m)
{
    (void)ud;
    gw_session_deliver(sub, m);
}

static void hub_sub_active(void *ud, gw_sub_t *sub)
{
    (void)ud;
    gw_session_sub_active(sub);
}

static void hub_resync(void *ud)
{
    gw_server_t *srv = ud;
    gw_msg_t *m = gw_frame_resync("redis_reconnected");
    size_t n = 0;
    for (gw_session_t *s = srv->sessions; s; s = s->next) {
        if (!s->nsubs) continue;
        gw_session_send(s, m);
        n++;
    }
    gw_msg_unref(m);
    gw_stats.resyncs_sent += n;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "resync_sent", "sessions=%zu", n);
}

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static void redis_message(void *ud, const char *chan, size_t chlen, const char *pattern,
                          size_t plen, const char *data, size_t dlen)
{
    gw_server_t *srv = ud;
    gw_hub_on_message(srv->hub, chan, chlen, pattern, plen, data, dlen, now_us());
}

static void redis_confirm(void *ud, bool subscribe, bool pattern, const char *name, size_t len)
{
    gw_server_t *srv = ud;
    gw_hub_on_confirm(srv->hub, subscribe, pattern, name, len);
}

static void redis_up(void *ud)
{
    gw_server_t *srv = ud;
    gw_stats.redis_reconnects = gw_redis_reconnects(srv->redis);
    gw_hub_on_link_up(srv->hub);
}

static void redis_down(void *ud)
{
    gw_server_t *srv = ud;
    gw_hub_on_link_down(srv->hub);
}

static gw_server_t *server_of(gw_session_t *s)
{
    return (gw_server_t *)(void *)((char *)s->env - offsetof(gw_server_t, env));
}

/* A session's queue went from empty to non-empty. Instead of asking lws for a WRITEABLE
 * callback (two epoll_ctl calls and a loop turn per burst), write it at the end of this
 * loop turn, when everything that arrived in the turn is queued: one write carries it. */
static void session_want_write(gw_session_t *s)
{
    gw_server_t *srv = server_of(s);
    if (s->in_flush) return;
    if (!srv->flush) uv_check_start(&srv->flush_check, on_flush_check);
    s->in_flush = true;
    s->flush_next = srv->flush;
    srv->flush = s;
}

static void session_close(gw_session_t *s, int code, const char *reason)
{
    (void)reason;
    s->closing = true;
    s->close_code = (uint16_t)code;
    session_want_write(s);
}

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
        "\"connections\":{\"current\":%llu,\"total\":%llu},"
        "\"subscriptions\":{\"client\":{\"exact\":%llu,\"pattern\":%llu},"
        "\"redis\":{\"exact\":%llu,\"pattern\":%llu}},"
        "\"messages\":{\"from_redis\":%llu,\"frames_sent\":%llu,\"bytes_sent\":%llu,"
        "\"writes\":%llu,\"frames_received\":%llu,\"resyncs_sent\":%llu},"
        "\"slow_consumers\":{\"policy\":\"%s\",\"dropped\":%llu,"
        "\"dropped_by_policy\":{\"drop\":%llu,\"conflate\":%llu},\"closed\":%llu},"
        "\"closes_too_big\":%llu,\"errors\":{",
        (unsigned long long)((uv_now(srv->loop) - srv->started_ms) / 1000), up ? "true" : "false",
        (unsigned long long)gw_stats.redis_reconnects, (unsigned long long)gw_stats.conn_current,
        (unsigned long long)gw_stats.conn_total, (unsigned long long)gw_stats.client_subs_exact,
        (unsigned long long)gw_stats.client_subs_pattern,
        (unsigned long long)gw_stats.redis_subs_exact,
        (unsigned long long)gw_stats.redis_subs_pattern,
        (unsigned long long)gw_stats.redis_messages, (unsigned long long)gw_stats.frames_sent,
        (unsigned long long)gw_stats.bytes_sent, (unsigned long long)gw_stats.writes,
        (unsigned long long)gw_stats.frames_received, (unsigned long long)gw_stats.resyncs_sent,
        gw_policy_name(srv->cfg->slow_policy),
        (unsigned long long)(gw_stats.dropped_drop + gw_stats.dropped_conflate),
        (unsigned long long)gw_stats.dropped_drop, (unsigned long long)gw_stats.dropped_conflate,
        (unsigned long long)gw_stats.slow_closes, (unsigned long long)gw_stats.closes_too_big);
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
        "\"refused\":{\"max_connections\":%llu,\"per_ip\":%llu},"
        "\"stats_unauthorized\":%llu}",
        (unsigned long long)gw_stats.acl_denied,
        (unsigned long long)gw_stats.acl_blocked_deliveries,
        (unsigned long long)gw_stats.rate_limited, (unsigned long long)gw_stats.rate_closes,
        (unsigned long long)gw_stats.refused_max_conn, (unsigned long long)gw_stats.refused_per_ip,
        (unsigned long long)gw_stats.stats_unauthorized);
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
    gw_buf_printf(b, ",\"uptime_s\":%llu,\"connections\":%llu}",
                  (unsigned long long)((uv_now(srv->loop) - srv->started_ms) / 1000),
                  (unsigned long long)gw_stats.conn_current);
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

static int http_request(gw_server_t *srv, struct lws *wsi, pss_t *pss, const char *path)
{
    gw_buf_t body = GW_BUF_INIT;
    int status;
    const char *type = "application/json";
    bool known = !strcmp(path, "/health") || !strcmp(path, "/stats") || !strcmp(path, "/metrics");
    const gw_asset_t *asset = gw_asset_find(path);

    if (known && !stats_authorized(srv, wsi)) {
        gw_stats.stats_unauthorized++;
        status = 401;
        gw_buf_puts(&body, "{\"error\":\"unauthorized\"}");
    } else if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
        status = 405;
        gw_buf_puts(&body, "{\"error\":\"method_not_allowed\"}");
    } else if (!strcmp(path, "/health")) {
        status = render_health(srv, &body);
    } else if (!strcmp(path, "/stats")) {
        status = 200;
        render_stats(srv, &body);
    } else if (!strcmp(path, "/metrics")) {
        gw_metrics_ctx_t mc = {srv->redis && gw_redis_is_up(srv->redis), srv->cp_mode,
                               srv->cplink && gw_cplink_connected(srv->cplink), srv->config_version,
                               (uv_now(srv->loop) - srv->started_ms) / 1000};
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
    if (!asset && !strcmp(type, "application/json")) gw_buf_putc(&body, '\n');

    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start;
    unsigned char *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, type, body.len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        gw_buf_free(&body);
        return 1;
    }
    pss->body = gw_xmalloc(LWS_PRE + body.len);
    memcpy(pss->body + LWS_PRE, body.data, body.len);
    pss->body_len = body.len;
    gw_buf_free(&body);
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_writeable(struct lws *wsi, pss_t *pss)
{
    if (!pss->body) return 0;
    int n = lws_write(wsi, pss->body + LWS_PRE, pss->body_len, LWS_WRITE_HTTP_FINAL);
    free(pss->body);
    pss->body = NULL;
    if (n < 0) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*------------------------------------------------------------------------------
 * WebSocket */

static struct ipcount **ip_slot(gw_server_t *srv, const char *ip)
{
    struct ipcount **pp = &srv->ips[gw_hash(ip, strlen(ip)) & (srv->nips_buckets - 1)];
    while (*pp && strcmp((*pp)->ip, ip)) pp = &(*pp)->next;
    return pp;
}

static void ip_release(gw_server_t *srv, struct ipcount *c)
{
    if (!c || --c->n) return;
    struct ipcount **pp = ip_slot(srv, c->ip);
    *pp = c->next;
    free(c);
}

static char *dup_credential(const char *s, size_t n)
{
    return n ? gw_xstrndup(s, n) : NULL;
}

/* Credentials may come in the upgrade request: Authorization: Bearer <jwt>, X-API-Key,
 * or ?token= / ?api_key= (browsers cannot set headers on a WebSocket). */
static void take_credentials(struct lws *wsi, pss_t *pss)
{
    static char buf[GW_TOKEN_MAX + 64];
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && !strncasecmp(buf, "Bearer ", 7))
        pss->token = dup_credential(buf + 7, (size_t)n - 7);
    else if (n < 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
        pss->token = gw_xstrdup(""); /* too long to be ours: fails as malformed, not silently */
    n = lws_hdr_custom_copy(wsi, buf, sizeof buf, "x-api-key:", 10);
    if (n > 0) pss->api_key = dup_credential(buf, (size_t)n);
    const char *v;
    if (!pss->token && (v = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf)))
        pss->token = dup_credential(v, strlen(v));
    if (!pss->api_key && (v = lws_get_urlarg_by_name(wsi, "api_key=", buf, sizeof buf)))
        pss->api_key = dup_credential(v, strlen(v));
    if (pss->token && pss->api_key) { /* one credential: the token wins */
        free(pss->api_key);
        pss->api_key = NULL;
    }
    OPENSSL_cleanse(buf, sizeof buf);
}

static int refuse(struct lws *wsi, unsigned status)
{
    lws_return_http_status(wsi, status, NULL);
    return -1;
}

static int ws_filter(gw_server_t *srv, struct lws *wsi, pss_t *pss)
{
    char uri[64], ip[48];
    if (srv->draining) return refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE);
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0)
        return refuse(wsi, HTTP_STATUS_NOT_FOUND);
    if (!pss) return -1;
    if (srv->cp_mode && !srv->config_ready) /* fail closed: no config, no clients */
        return refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE);
    if (gw_stats.conn_current >= (uint64_t)srv->cfg->max_connections) {
        gw_stats.refused_max_conn++;
        return refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE);
    }
    if (!lws_get_peer_simple(wsi, ip, sizeof ip)) snprintf(ip, sizeof ip, "?");
    struct ipcount **slot = ip_slot(srv, ip);
    if (*slot && (*slot)->n >= (uint32_t)srv->cfg->max_connections_per_ip) {
        gw_stats.refused_per_ip++;
        return refuse(wsi, 429);
    }
    if (!*slot) {
        *slot = gw_xcalloc(1, sizeof **slot);
        snprintf((*slot)->ip, sizeof(*slot)->ip, "%s", ip);
    }
    (*slot)->n++;
    pss->ip = *slot;
    take_credentials(wsi, pss);
    return 0;
}

static void forget_credentials(pss_t *pss)
{
    if (pss->token) OPENSSL_cleanse(pss->token, strlen(pss->token));
    if (pss->api_key) OPENSSL_cleanse(pss->api_key, strlen(pss->api_key));
    free(pss->token);
    free(pss->api_key);
    pss->token = pss->api_key = NULL;
}

static void ws_established(gw_server_t *srv, struct lws *wsi, pss_t *pss)
{
    gw_session_t *s = gw_session_new(&srv->env, wsi, ++srv->serial);
    pss->s = s;
    s->next = srv->sessions;
    if (s->next) s->next->prev = s;
    srv->sessions = s;
    gw_stats.conn_current++;
    gw_stats.conn_total++;
    GW_LOG(GW_LOG_DEBUG, SUBSYS, "client_open", "session=%s", s->id);

    gw_session_start(s, pss->token, pss->api_key);
    forget_credentials(pss);
}

static void ws_closed(gw_server_t *srv, pss_t *pss)
{
    gw_session_t *s = pss->s;
    forget_credentials(pss);
    ip_release(srv, pss->ip);
    pss->ip = NULL;
    if (!s) return;
    pss->s = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->in_flush) {
        gw_session_t **pp = &srv->flush;
        while (*pp != s) pp = &(*pp)->flush_next;
        *pp = s->flush_next;
    }
    gw_stats.conn_current--;
    GW_LOG(GW_LOG_DEBUG, SUBSYS, "client_closed", "session=%s", s->id);
    gw_session_free(s);
    if (srv->draining && !srv->sessions) finish(srv);
}

static int ws_receive(struct lws *wsi, pss_t *pss, const char *in, size_t len)
{
    gw_session_t *s = pss->s;
    if (!s) return -1;
    if (s->closing) return 0; /* the rest of an oversized message: ignore it */
    if (gw_session_on_fragment(s, in, len, lws_is_first_fragment(wsi), lws_is_final_fragment(wsi),
                               lws_frame_is_binary(wsi)) < 0) {
        gw_stats.closes_too_big++;
        gw_session_reject_too_large(s);
        session_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL);
    }
    return 0;
}

/* Appends a close frame to out. We write it ourselves, behind the data, because lws
 * treats a failing WRITEABLE callback as a dead socket and would send none. */
static size_t put_close_frame(unsigned char *out, uint16_t code)
{
    const char *reason = code == 1013   ? "slow consumer"
                         : code == 1009 ? "message too big"
                         : code == 4401 ? "unauthenticated"
                         : code == 4403 ? "forbidden"
                         : code == 4429 ? "rate limited"
                                        : "going away";
    size_t rlen = strlen(reason);
    out[0] = 0x88; /* FIN + close */
    out[1] = (unsigned char)(2 + rlen);
    out[2] = (unsigned char)(code >> 8);
    out[3] = (unsigned char)code;
    memcpy(out + 4, reason, rlen);
    return 4 + rlen;
}

#define CLOSE_FRAME_MAX 32

#define MAX_FRAMES_PER_WRITE 4096

/* Sends what is queued for s, up to the buffer size, in one send(): frames coalesced,
 * and the close frame behind them when the session is closing.
 *
 * We send on the socket ourselves rather than through lws_write(), which copies
 * whatever the kernel does not take (up to the whole 256 KiB batch) into its own buffer:
 * frames that were not sent simply stay in our queue. Only the tail of a frame the
 * kernel cut in two goes to lws_write(), so the stream stays frame-aligned: lws flushes
 * its buffer before it writes anything of its own (PING, PONG, close).
 * Callers make sure lws holds no buffered bytes. Returns -1 when the socket failed. */
static int session_write(gw_server_t *srv, struct lws *wsi, gw_session_t *s)
{
    static size_t ends[MAX_FRAMES_PER_WRITE + 1];
    size_t need, cap = WBUF_SIZE - CLOSE_FRAME_MAX;
    unsigned char *buf = srv->wbuf + LWS_PRE, *big = NULL;

    size_t nf = gw_session_peek(s, buf, cap, ends, MAX_FRAMES_PER_WRITE, &need);
    if (!nf && need) { /* one frame bigger than the shared buffer */
        big = gw_xmalloc(LWS_PRE + need + CLOSE_FRAME_MAX);
        buf = big + LWS_PRE;
        nf = gw_session_peek(s, buf, need, ends, 1, &need);
    }
    size_t n = nf ? ends[nf - 1] : 0, total = nf;
    bool with_close = s->closing && nf == s->qlen && !s->close_sent;
    if (with_close) {
        n += put_close_frame(buf + n, s->close_code);
        ends[total++] = n;
    }
    int rc = 0;
    if (n) {
        ssize_t w = send(lws_get_socket_fd(wsi), buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            rc = -1;
            goto Exit;
        }
        size_t sent = w > 0 ? (size_t)w : 0, done = 0;
        gw_stats.writes++;
        while (done < total && ends[done] <= sent) done++;
        if (done < total && sent > (done ? ends[done - 1] : 0)) {
            /* a frame cut in two: lws keeps its tail and flushes it first */
            if (lws_write(wsi, buf + sent, ends[done] - sent, LWS_WRITE_RAW) < 0) {
                rc = -1;
                goto Exit;
            }
            sent = ends[done++];
        }
        gw_stats.bytes_sent += sent;
        if (with_close && done == total) {
            s->close_sent = true;
            done--;
        }
        gw_session_consume(s, done);
    }
    if (s->qlen || s->close_sent || with_close) lws_callback_on_writable(wsi);
Exit:
    free(big);
    return rc;
}

static int ws_writeable(gw_server_t *srv, struct lws *wsi, pss_t *pss)
{
    gw_session_t *s = pss->s;
    if (!s || s->close_sent) return -1; /* the close frame is flushed: hang up */
    return session_write(srv, wsi, s);
}

static void on_flush_check(uv_check_t *h)
{
    gw_server_t *srv = h->data;
    gw_session_t *list = srv->flush;
    srv->flush = NULL;
    uv_check_stop(h);
    while (list) {
        gw_session_t *s = list;
        list = s->flush_next;
        s->in_flush = false;
        struct lws *wsi = s->conn;
        if (s->close_sent) continue;
        if (lws_partial_buffered(wsi)) { /* lws still holds bytes: wait for POLLOUT */
            lws_callback_on_writable(wsi);
            continue;
        }
        if (session_write(srv, wsi, s) < 0)
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    gw_server_t *srv = ctx ? lws_context_user(ctx) : NULL;
    pss_t *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: return http_request(srv, wsi, pss, (const char *)in);
    case LWS_CALLBACK_HTTP_WRITEABLE: return http_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP: /* also an upgrade that failed after the filter */
        if (pss) {
            free(pss->body);
            pss->body = NULL;
            forget_credentials(pss);
            ip_release(srv, pss->ip);
            pss->ip = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: return ws_filter(srv, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED: ws_established(srv, wsi, pss); return 0;
    case LWS_CALLBACK_RECEIVE: return ws_receive(wsi, pss, (const char *)in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE: return ws_writeable(srv, wsi, pss);
    case LWS_CALLBACK_CLOSED: ws_closed(srv, pss); return 0;
    default: return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/*------------------------------------------------------------------------------
 * Lifecycle */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' ')) n--;
    GW_LOG(level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN, "lws", "log", "msg=\"%.*s\"", (int)n,
           line);
}

static int fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl); /* 5,000+ clients need more than the usual 1,024 */
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > 200000 ? 200000 : (int)rl.rlim_cur;
}

/*------------------------------------------------------------------------------
 * Control plane: snapshots in, stats out */

/* Swaps a validated snapshot in. Everything that can fail is checked before anything
 * changes, so a failure leaves the node exactly as it was. */
static int apply_snapshot(gw_server_t *srv, const uint8_t *data, size_t len, char *err,
                          size_t errlen, uint64_t *version)
{
    gw_snapshot_t sn;
    *version = 0;
    if (gw_snapshot_decode(data, len, &sn, err, errlen) < 0) return -1;
    *version = sn.version;
    if (gw_auth_set_jwt(srv->env.auth, sn.jwt_issuer, sn.jwt_audience, sn.jwt_role_claim,
                        sn.jwt_leeway_s, sn.jwt_require_exp, sn.jwt_pem, err, errlen) < 0) {
        gw_snapshot_free(&sn);
        return -1;
    }
    gw_auth_set_keys(srv->env.auth, sn.keys, sn.nkeys);
    const gw_config_t *own = srv->cfg;
    gw_config_t *live = &srv->live;
    live->require_auth = sn.require_auth;
    free(srv->owned_default_role);
    live->default_role = srv->owned_default_role = sn.default_role;
    sn.default_role = NULL;
    live->jwt_leeway_s = sn.jwt_leeway_s;
    live->max_channels = sn.max_channels ? sn.max_channels : own->max_channels;
    live->max_wildcards = sn.max_wildcards ? sn.max_wildcards : own->max_wildcards;
    live->client_rate_limit = sn.rate_limit ? sn.rate_limit : own->client_rate_limit;
    live->client_rate_burst = sn.rate_burst ? sn.rate_burst : own->client_rate_burst;
    gw_roles_unref(srv->env.roles);
    srv->env.roles = sn.roles;
    sn.roles = NULL;
    srv->config_version = sn.version;
    snprintf(srv->config_epoch, sizeof srv->config_epoch, "%s", sn.epoch);
    srv->config_ready = true;
    gw_snapshot_free(&sn);

    /* Live connections follow: forbidden subscriptions go, revoked keys and deleted
     * roles are closed with 4403. Closing is deferred, so the list stays intact. */
    for (gw_session_t *s = srv->sessions; s; s = s->next) gw_session_reauthorize(s);
    gw_stats.config_applied++;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "config_applied", "version=%llu epoch=%s",
           (unsigned long long)srv->config_version, srv->config_epoch);
    return 0;
}

static void on_snapshot(void *ud, const uint8_t *data, size_t len, const char *nonce)
{
    gw_server_t *srv = ud;
    char err[512];
    uint64_t version;
    if (apply_snapshot(srv, data, len, err, sizeof err, &version) < 0) {
        gw_stats.config_rejected++;
        GW_LOG(GW_LOG_WARN, SUBSYS, "config_rejected", "version=%llu kept=%llu error=\"%s\"",
               (unsigned long long)version, (unsigned long long)srv->config_version, err);
        gw_cplink_nack(srv->cplink, srv->config_version, version, nonce, err);
        return;
    }
    if (srv->cfg->config_cache_path[0] &&
        gw_write_file_atomic(srv->cfg->config_cache_path, data, len, err, sizeof err) < 0)
        GW_LOG(GW_LOG_WARN, SUBSYS, "cache_write_failed", "error=\"%s\"", err);
    gw_cplink_ack(srv->cplink, srv->config_version, srv->config_epoch, nonce);
}

static void load_cached_config(gw_server_t *srv)
{
    gw_buf_t b = GW_BUF_INIT;
    char err[512];
    uint64_t version;
    const char *path = srv->cfg->config_cache_path;
    if (path[0] && gw_buf_read_file(&b, path, 64u << 20) == 0 && b.len > 0) {
        if (apply_snapshot(srv, (const uint8_t *)b.data, b.len, err, sizeof err, &version) == 0)
            GW_LOG(GW_LOG_NOTICE, SUBSYS, "config_from_cache", "version=%llu path=%s",
                   (unsigned long long)version, path);
        else
            GW_LOG(GW_LOG_WARN, SUBSYS, "cache_unusable", "path=%s error=\"%s\"", path, err);
    }
    gw_buf_free(&b);
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_report(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    size_t n;
    uint8_t *st = gw_stats_report(srv->redis && gw_redis_is_up(srv->redis), wall_ms(), &n);
    gw_cplink_report(srv->cplink, st, n);
    free(st);
}

static void start_control_link(gw_server_t *srv)
{
    const gw_config_t *cfg = srv->cfg;
    srv->cp_mode = true;
    load_cached_config(srv);
    gw_cplink_opts_t o = {.target = cfg->control_plane_url,
                          .token = cfg->control_node_token,
                          .node_id = cfg->node_id,
                          .address = cfg->node_id,
                          .build = "wsgw " GW_VERSION,
                          .tls_ca = cfg->control_tls_ca,
                          .tls_cert = cfg->control_tls_client_cert,
                          .tls_key = cfg->control_tls_client_key};
    srv->cplink =
        gw_cplink_start(srv->loop, &o, srv->config_version, srv->config_epoch, on_snapshot, srv);
    if (!srv->cplink) return; /* logged; the node serves from its cache, if any */
    uv_timer_init(srv->loop, &srv->report_timer);
    srv->report_timer.data = srv;
    uv_timer_start(&srv->report_timer, on_report, (uint64_t)cfg->report_interval_ms,
                   (uint64_t)cfg->report_interval_ms);
}

static uint64_t env_now_us(void)
{
    return uv_hrtime() / 1000;
}

static int64_t env_now_unix(void)
{
    return (int64_t)time(NULL);
}

static void on_tick(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    for (gw_session_t *s = srv->sessions; s; s = s->next) gw_session_tick(s);
}

gw_server_t *gw_server_new(uv_loop_t *loop, const gw_config_t *cfg, gw_roles_t *roles,
                           gw_auth_t *auth)
{
    gw_redis_url_t url;
    const char *why;
    if (gw_redis_url_parse(cfg->redis_url, &url, &why) < 0) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "bad_config", "setting=REDIS_URL reason=\"%s\"", why);
        return NULL;
    }

    gw_server_t *srv = gw_xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->cfg = cfg;
    srv->started_ms = uv_now(loop);
    srv->wbuf = gw_xmalloc(LWS_PRE + WBUF_SIZE);
    srv->hub_ops = (gw_hub_ops_t){hub_redis_cmd, hub_deliver, hub_sub_active, hub_resync};
    srv->hub = gw_hub_new(&srv->hub_ops, srv);
    srv->live = *cfg; /* strings stay the config's; the control plane replaces some */
    srv->env = (gw_session_env_t){.hub = srv->hub,
                                  .cfg = &srv->live,
                                  .auth = auth,
                                  .roles = gw_roles_ref(roles), /* the server's own reference */
                                  .want_write = session_want_write,
                                  .close = session_close,
                                  .now_us = env_now_us,
                                  .now_unix = env_now_unix};
    srv->nips_buckets = 1024;
    srv->ips = gw_xcalloc(srv->nips_buckets, sizeof *srv->ips);
    if (cfg->stats_token[0])
        gw_sha256(cfg->stats_token, strlen(cfg->stats_token), srv->stats_token_hash);

    /* rx_buffer_size is allocated per connection: client frames are small, and larger
     * ones arrive in pieces that the session reassembles up to MAX_FRAME_BYTES. */
    static const struct lws_protocols protocols[] = {
        {"wsgw", callback, sizeof(pss_t), 512, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    srv->retry.secs_since_valid_ping = (uint16_t)cfg->keepalive_interval_s;
    srv->retry.secs_since_valid_hangup =
        (uint16_t)(cfg->keepalive_interval_s + cfg->keepalive_timeout_s);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    struct lws_context_creation_info info;
    void *foreign[1] = {loop};
    memset(&info, 0, sizeof info);
    info.port = (int)cfg->port;
    info.iface = cfg->bind_address[0] ? cfg->bind_address : NULL;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = foreign;
    info.user = srv;
    info.pcontext = &srv->ctx;
    info.retry_and_idle_policy = &srv->retry;
    info.fd_limit_per_thread = (unsigned)fd_limit();
    info.timeout_secs = 10;
    /* Header tables (4 KiB each) are only needed during the handshake. lws allocates
     * one per connection by default, and after a connect storm the freed ones leave
     * holes that keep RSS high; a bounded pool is reused instead. Excess handshakes
     * wait in the accept queue. */
    info.max_http_header_pool = 128;
    info.max_http_header_data = GW_TOKEN_MAX + 1024; /* a bearer token in the upgrade */
    info.count_threads = 1;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "listen_failed", "bind=%s port=%ld", cfg->bind_address,
               cfg->port);
        gw_redis_url_free(&url);
        gw_server_free(srv);
        return NULL;
    }
    uv_timer_init(loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    uv_check_init(loop, &srv->flush_check);
    srv->flush_check.data = srv;
    uv_timer_init(loop, &srv->tick_timer);
    srv->tick_timer.data = srv;
    uv_timer_start(&srv->tick_timer, on_tick, 250, 250);
    if (cfg->control_plane_url[0]) start_control_link(srv);

    char sentinel[300];
    snprintf(sentinel, sizeof sentinel, "__wsgw:node:%s", cfg->node_id);
    gw_redis_opts_t ro = {cfg->redis_connect_timeout_ms, cfg->redis_backoff_min_ms,
                          cfg->redis_backoff_max_ms, cfg->redis_ping_interval_ms, sentinel};
    static const gw_redis_cbs_t rcbs = {redis_message, redis_confirm, redis_up, redis_down};
    srv->redis = gw_redis_new(loop, &url, &ro, &rcbs, srv);

    GW_LOG(GW_LOG_NOTICE, SUBSYS, "listening", "bind=%s port=%ld node=%s policy=%s",
           cfg->bind_address, cfg->port, cfg->node_id, gw_policy_name(cfg->slow_policy));
    return srv;
}

static void on_drain_timeout(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    size_t left = 0;
    for (gw_session_t *s = srv->sessions; s; s = s->next) left++;
    GW_LOG(GW_LOG_WARN, SUBSYS, "drain_timeout", "sessions_left=%zu", left);
    finish(srv);
}

/* Everything is flushed or out of time: let lws and the Redis link close their handles;
 * the loop then runs dry and main() returns. */
static void finish(gw_server_t *srv)
{
    if (srv->finished) return;
    srv->finished = true;
    uv_timer_stop(&srv->drain_timer);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    uv_close((uv_handle_t *)&srv->flush_check, NULL);
    uv_close((uv_handle_t *)&srv->tick_timer, NULL);
    if (srv->cplink) {
        uv_close((uv_handle_t *)&srv->report_timer, NULL);
        gw_cplink_stop(srv->cplink, NULL, NULL); /* frees itself once its thread is joined */
        srv->cplink = NULL;
    }
    if (srv->ctx) lws_context_destroy(srv->ctx); /* closes remaining sessions */
    gw_redis_close(srv->redis);
    srv->redis = NULL;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "stopped", "connections_total=%llu",
           (unsigned long long)gw_stats.conn_total);
}

void gw_server_drain(gw_server_t *srv)
{
    if (srv->draining || srv->finished) return;
    srv->draining = true;
    size_t n = 0;
    for (gw_session_t *s = srv->sessions; s; s = s->next, n++) session_close(s, 1001, NULL);
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "draining", "sessions=%zu timeout_ms=%ld", n,
           srv->cfg->shutdown_timeout_ms);
    if (srv->ctx) lws_context_deprecate(srv->ctx, NULL); /* closes the listen socket */
    if (!srv->sessions)
        finish(srv);
    else
        uv_timer_start(&srv->drain_timer, on_drain_timeout, (uint64_t)srv->cfg->shutdown_timeout_ms,
                       0);
}

void gw_server_free(gw_server_t *srv)
{
    if (!srv) return;
    /* With a foreign loop, lws finishes destroying its context in further
     * lws_context_destroy() calls once its handles are closed (it clears srv->ctx). */
    for (int i = 0; srv->ctx && i < 3; i++) {
        lws_context_destroy(srv->ctx);
        uv_run(srv->loop, UV_RUN_DEFAULT);
    }
    if (srv->ctx) GW_LOG(GW_LOG_WARN, SUBSYS, "lws_context_alive", "note=\"destroy incomplete\"");
    gw_hub_free(srv->hub);
    gw_roles_unref(srv->env.roles);
    free(srv->owned_default_role);
    for (size_t i = 0; srv->ips && i < srv->nips_buckets; i++)
        for (struct ipcount *c = srv->ips[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    free(srv->ips);
    free(srv->wbuf);
    free(srv);
}

#include "server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "proto.h"
#include "stats.h"

/* All of a request's headers: room for a bearer token in the upgrade and the rest. */
#define HEADER_DATA_MAX (GW_TOKEN_MAX + 1024)
/* Sockets that have not upgraded, all addresses together: a connect storm of real
 * clients fits (their requests complete in milliseconds), an attacker's idle sockets
 * are bounded. Each holds a header table of at most HEADER_DATA_MAX plus lws's
 * fragment index (~10 KiB, allocated only while used): ~40 MiB at most. */
#define PENDING_MAX 4096
/* A socket that has not upgraded after this long is stale: it makes room for a
 * newcomer when PENDING_MAX are held. */
#define EVICT_AGE_US 500000
/* Evicted sockets still being closed, at most (each holds its descriptor and header
 * table until lws closes it, next turn). */
#define EVICTING_MAX 32
/* The header pool never runs out, so no socket ever waits for a table: lws's wait list
 * is never used (a socket given a table from it after its request arrived may not be
 * read again until more bytes come). */
#define HEADER_POOL (PENDING_MAX + EVICTING_MAX)
#define SUBSYS      "server"

/* Coalescing buffer: all frames queued for one socket go out in one write of up to this. */
#define WBUF_SIZE (256 * 1024)

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

static void hub_resync(void *ud)
{
    gw_server_t *srv = ud;
    gw_msg_t *m = gw_frame_resync("redis_reconnected");
    size_t n = 0;
    for (gw_session_t *s = srv->sessions; s; s = s->next) {
        /* The legacy dialect has no such frame; its clients cannot be told. */
        if (!s->nsubs || s->dialect == GW_DIALECT_LEGACY) continue;
        gw_session_send(s, m);
        n++;
    }
    gw_msg_unref(m);
    gw_stats.resyncs_sent += n;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "resync_sent", "sessions=%zu", n);
}

static void redis_message(void *ud, const char *chan, size_t chlen, const char *pattern,
                          size_t plen, const char *data, size_t dlen)
{
    gw_server_t *srv = ud;
    gw_hub_on_message(srv->hub, chan, chlen, pattern, plen, data, dlen, gw_mono_us(), gw_unix_us());
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

/* All queues together went over NODE_QUEUE_BYTES: the largest are closed at the end of
 * this loop turn (on_flush_check), whatever filled them. */
static void session_over_budget(gw_session_t *s)
{
    gw_server_t *srv = server_of(s);
    srv->over_budget = true;
    if (!srv->flush) uv_check_start(&srv->flush_check, on_flush_check);
}

#define BUDGET_CLOSES_MAX 32 /* per loop turn: a frame shared by many queues frees late */

/* Closes the connections with the largest queues, largest first, until the node is back
 * under NODE_QUEUE_BYTES (or BUDGET_CLOSES_MAX were closed this turn). One pass over the
 * sessions picks the candidates. */
static void enforce_queue_budget(gw_server_t *srv)
{
    gw_session_t *top[BUDGET_CLOSES_MAX];
    size_t n = 0, limit = (size_t)srv->cfg->node_queue_bytes;
    srv->over_budget = false;
    if (gw_outq_retained() <= limit) return;
    for (gw_session_t *s = srv->sessions; s; s = s->next) {
        size_t b = gw_session_queued_bytes(s);
        if (s->closing || !b) continue;
        size_t i = n < BUDGET_CLOSES_MAX ? n++ : BUDGET_CLOSES_MAX;
        if (i == BUDGET_CLOSES_MAX && b <= gw_session_queued_bytes(top[i - 1])) continue;
        if (i == BUDGET_CLOSES_MAX) i--;
        while (i > 0 && gw_session_queued_bytes(top[i - 1]) < b) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = s;
    }
    for (size_t i = 0; i < n && gw_outq_retained() > limit; i++)
        gw_session_close_overloaded(top[i]);
}

/* Closing takes bounded time whatever the peer does: CLOSE_SEND_S to take what is queued
 * and our close frame (a peer that does not read never will), then CLOSE_ACK_S for its
 * close frame, while what it still sends is read and discarded: hanging up on unread
 * data would make the kernel send a reset, and the peer would never see the close code. */
#define CLOSE_SEND_S 5
#define CLOSE_ACK_S  2

static void session_close(gw_session_t *s, int code, const char *reason)
{
    (void)reason;
    if (s->close_code) return; /* the first reason stands: a drain does not hide a 1013 */
    s->closing = true;
    s->close_code = (uint16_t)code;
    lws_set_timeout(s->conn, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_SEND_S);
    session_want_write(s);
}

/*------------------------------------------------------------------------------
 * WebSocket */

static void ip_release(gw_server_t *srv, gw_ipent_t *e)
{
    if (!e) return;
    e->conns--;
    gw_ip_put(srv->ips, e, gw_mono_us());
}

/*------------------------------------------------------------------------------
 * Sockets before the upgrade: what one address may hold, what the process can hold */

/* Every accepted socket carries one of these (lws opaque user data) until it is
 * destroyed. Sockets that have not upgraded are also on the server's pending list, oldest
 * first: they are what can hold a header table. */
typedef struct gw_sock {
    struct gw_sock *prev, *next; /* the pending list, while pending && !evicted */
    struct lws *wsi;
    gw_ipent_t *ip;    /* counted in ip->pending while pending */
    uint64_t since_us; /* accepted at */
    bool pending, evicted;
} gw_sock_t;

static bool is_trusted_proxy(gw_server_t *srv, const char *ip)
{
    return srv->nproxies && gw_cidr_contains(srv->proxies, srv->nproxies, ip);
}

/* A refusal written on the socket itself before it is closed: nothing has been read
 * from it, so this is all the client gets (no request is parsed for it). */
static void refuse_socket(int fd, unsigned status, const char *title, const char *code)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\nretry-after: 2\r\nconnection: close\r\n\r\n"
                     "{\"error\":\"%s\"}\n",
                     status, title, strlen(code) + 13, code);
    (void)!send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void peer_of(int fd, char *ip, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    snprintf(ip, len, "?");
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) != 0) return;
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, (socklen_t)len);
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, (socklen_t)len);
}

static void forget_pending(gw_server_t *srv, gw_ipent_t *e)
{
    e->pending--;
    gw_ip_put(srv->ips, e, gw_mono_us());
}

static void pending_unlink(gw_server_t *srv, gw_sock_t *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        srv->pending_head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        srv->pending_tail = k->prev;
    k->prev = k->next = NULL;
    srv->npending--;
}

/* Makes room for a newcomer by closing the oldest socket that has not upgraded, if it
 * is stale: an attacker's idle or half-sent requests linger for up to
 * HANDSHAKE_TIMEOUT_S, a real one completes in milliseconds, so no number of addresses
 * keeps a probe out for more than EVICT_AGE_US. At most EVICTING_MAX are being closed at
 * once; beyond, the newcomer is refused. */
static bool evict_stale_pending(gw_server_t *srv, uint64_t now)
{
    gw_sock_t *k = srv->pending_head;
    if (!k || srv->evicting >= EVICTING_MAX || now - k->since_us < EVICT_AGE_US) return false;
    pending_unlink(srv, k);
    k->evicted = true;
    srv->evicting++;
    gw_stats.evicted_pending++;
    lws_set_timeout(k->wsi, PENDING_TIMEOUT_AWAITING_PROXY_RESPONSE, LWS_TO_KILL_ASYNC);
    return true;
}

static int refuse_full(gw_server_t *srv, gw_ipent_t *e, int fd, uint64_t now, const char *code)
{
    gw_stats.refused_sockets++;
    GW_LOG(GW_LOG_WARN, SUBSYS, code, "open=%llu limit=%llu pending=%llu",
           (unsigned long long)srv->sockets, (unsigned long long)srv->socket_limit,
           (unsigned long long)srv->npending);
    gw_ip_put(srv->ips, e, now);
    refuse_socket(fd, 503, "Service Unavailable", code);
    return 1;
}

/* Called by lws for each accepted socket, before anything is read from it. Refusing
 * here closes it at once: sockets beyond the process's budget never pile up (no
 * EMFILE, no accept loop spinning), and one address cannot hold more than
 * MAX_HANDSHAKES_PER_IP sockets that have not upgraded. A trusted proxy speaks for many
 * clients and completes its requests at once: it is not held to the per-address cap. */
static int net_accept(gw_server_t *srv, int fd)
{
    char ip[GW_IP_TEXT_MAX];
    uint64_t now = gw_mono_us();
    if (srv->accepting) { /* lws never adopted the previous one */
        srv->sockets--;
        forget_pending(srv, srv->accepting);
        srv->accepting = NULL;
    }
    peer_of(fd, ip, sizeof ip);
    gw_ipent_t *e = gw_ip_get(srv->ips, ip);
    if (e->pending >= (uint32_t)srv->cfg->max_handshakes_per_ip && !is_trusted_proxy(srv, ip)) {
        gw_stats.refused_handshakes++;
        gw_ip_put(srv->ips, e, now);
        refuse_socket(fd, 429, "Too Many Requests", "handshakes_per_ip");
        return 1;
    }
    if (srv->npending >= PENDING_MAX && !evict_stale_pending(srv, now))
        return refuse_full(srv, e, fd, now, "handshake_limit");
    if (srv->sockets >= srv->socket_limit && !evict_stale_pending(srv, now))
        return refuse_full(srv, e, fd, now, "socket_limit");
    e->pending++;
    srv->sockets++;
    srv->accepting = e;
    if (srv->cfg->client_sndbuf > 0) { /* bounds the kernel's memory per slow client */
        int sz = (int)srv->cfg->client_sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    return 0;
}

static void net_instantiated(gw_server_t *srv, struct lws *wsi)
{
    gw_sock_t *k = gw_xcalloc(1, sizeof *k);
    k->wsi = wsi;
    k->ip = srv->accepting;
    k->since_us = gw_mono_us();
    k->pending = true;
    k->prev = srv->pending_tail;
    if (k->prev)
        k->prev->next = k;
    else
        srv->pending_head = k;
    srv->pending_tail = k;
    srv->npending++;
    lws_set_opaque_user_data(wsi, k);
    srv->accepting = NULL;
}

/* The socket upgraded: it no longer counts as a pending one. */
static void net_upgraded(gw_server_t *srv, struct lws *wsi)
{
    gw_sock_t *k = lws_get_opaque_user_data(wsi);
    if (!k || !k->pending) return;
    if (!k->evicted) pending_unlink(srv, k);
    k->pending = false;
    forget_pending(srv, k->ip);
}

static void net_destroyed(gw_server_t *srv, struct lws *wsi)
{
    gw_sock_t *k = lws_get_opaque_user_data(wsi);
    if (!k) return;
    srv->sockets--;
    if (k->evicted)
        srv->evicting--;
    else if (k->pending)
        pending_unlink(srv, k);
    if (k->pending) forget_pending(srv, k->ip);
    lws_set_opaque_user_data(wsi, NULL);
    free(k);
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

/* The client's address for per-IP limits: the peer, or, when the peer is one of
 * TRUSTED_PROXIES, the client its X-Forwarded-For names (gw_xff_client). An untrusted
 * peer's X-Forwarded-For is ignored: anyone can send one. Returns false when a trusted
 * proxy's header cannot be read (oversized or not addresses): counting that request as
 * the proxy's own would make every client behind it share one budget. */
static bool client_ip(gw_server_t *srv, struct lws *wsi, char *ip, size_t len)
{
    /* The whole header (lws bounds headers below this): the client is found from the
     * right, so padding a client puts on the left must not make it unreadable. */
    char xff[HEADER_DATA_MAX];
    if (!lws_get_peer_simple(wsi, ip, len)) snprintf(ip, len, "?");
    if (!is_trusted_proxy(srv, ip) || lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) <= 0)
        return true;
    int n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
    char client[GW_IP_TEXT_MAX] = "";
    if (n <= 0 ||
        gw_xff_client(xff, (size_t)n, srv->proxies, srv->nproxies, client, sizeof client) < 0)
        return false;
    snprintf(ip, len, "%s", client);
    return true;
}

/* Whether Sec-WebSocket-Protocol, when sent, offers the one protocol lws knows here. */
static bool subprotocol_ok(struct lws *wsi)
{
    char buf[256];
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL);
    if (n == 0) return true;
    if (n < 0) return false;
    for (char *save = NULL, *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
        if (!strcmp(t, "wsgw")) return true;
    return false;
}

/* A browser's Origin must be in ALLOWED_ORIGINS (when set); a request without one is
 * not a browser's (browsers always send it on a WebSocket upgrade). */
static bool origin_ok(gw_server_t *srv, struct lws *wsi)
{
    char buf[GW_ORIGIN_MAX + 1];
    if (!srv->ws_origins.n && !srv->ws_origins.any) return true;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0) return true;
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_ORIGIN);
    return n > 0 && gw_origins_match(&srv->ws_origins, buf, (size_t)n);
}

/*------------------------------------------------------------------------------
 * Failed authentications: throttled per address, summarised in the log */

#define FAIL_SUMMARY_US (10 * 1000000ull) /* one summary line per interval at most */

static double fail_rate(const gw_server_t *srv)
{
    return (double)srv->cfg->max_auth_failures_per_ip / 60.0;
}

static gw_ipent_t *session_ip(gw_session_t *s)
{
    pss_t *pss = s->conn ? lws_wsi_user(s->conn) : NULL;
    return pss ? pss->ip : NULL;
}

static void auth_failed_hook(gw_session_t *s, gw_auth_result_t r)
{
    gw_server_t *srv = server_of(s);
    gw_ipent_t *e = session_ip(s);
    uint64_t now = gw_mono_us();
    double burst = (double)srv->cfg->max_auth_failures_per_ip;
    /* The interval's first failure is logged at once (an operator sees it now); the
     * rest only in the interval's summary line. */
    if (!srv->fails.total++)
        GW_LOG(GW_LOG_INFO, SUBSYS, "auth_failed",
               "session=%s reason=%s address=%s note=\"more in this interval: one summary line\"",
               s->id, gw_auth_result_name(r), e ? e->ip : "?");
    srv->fails.by_reason[r]++;
    if (!e) return;
    gw_bucket_take(&e->authfail, fail_rate(srv), burst, now);
    e->hold_until_us = now + (uint64_t)(burst / fail_rate(srv) * 1e6);
    if (e->fail_epoch != srv->fails.epoch || !e->fail_count) {
        e->fail_epoch = srv->fails.epoch;
        e->fail_count = 0;
        srv->fails.addresses++;
    }
    if (++e->fail_count > srv->fails.top_count) {
        srv->fails.top_count = e->fail_count;
        snprintf(srv->fails.top, sizeof srv->fails.top, "%s", e->ip);
    }
}

static bool ip_may_authenticate(gw_server_t *srv, gw_ipent_t *e, double *wait_s)
{
    if (!e) return true;
    double level = gw_bucket_level(&e->authfail, fail_rate(srv),
                                   (double)srv->cfg->max_auth_failures_per_ip, gw_mono_us());
    if (wait_s) *wait_s = (1.0 - level) / fail_rate(srv);
    return level >= 1.0;
}

static bool auth_allowed_hook(gw_session_t *s)
{
    return ip_may_authenticate(server_of(s), session_ip(s), NULL);
}

static void fails_reset(gw_server_t *srv, uint64_t now)
{
    uint32_t epoch = srv->fails.epoch + 1;
    memset(&srv->fails, 0, sizeof srv->fails);
    srv->fails.epoch = epoch;
    srv->fails.next_us = now + FAIL_SUMMARY_US;
}

/* One line for all the failures of an interval, instead of one per failure. */
static void fails_summary(gw_server_t *srv, uint64_t now)
{
    if (now < srv->fails.next_us) return;
    gw_iptable_sweep(srv->ips, now);
    if (srv->fails.total < 2) { /* none, or the one already logged */
        fails_reset(srv, now);
        return;
    }
    char reasons[512];
    size_t n = 0;
    reasons[0] = '\0';
    for (int i = 1; i < GW_AUTH__COUNT && n < sizeof reasons; i++)
        if (srv->fails.by_reason[i])
            n += (size_t)snprintf(reasons + n, sizeof reasons - n, "%s%s:%llu", n ? "," : "",
                                  gw_auth_result_name((gw_auth_result_t)i),
                                  (unsigned long long)srv->fails.by_reason[i]);
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "auth_failures",
           "count=%llu addresses=%u top=%s top_count=%u reasons=%s interval_s=%llu",
           (unsigned long long)srv->fails.total, srv->fails.addresses, srv->fails.top,
           srv->fails.top_count, reasons, (unsigned long long)(FAIL_SUMMARY_US / 1000000));
    fails_reset(srv, now);
}

/* Whether the upgrade request carries a credential (headers or query). (lws copies a
 * query argument whole, name included, or reports none: the buffer must hold it.) */
static bool has_credential(struct lws *wsi)
{
    static char buf[GW_TOKEN_MAX + 64];
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 ||
           lws_hdr_custom_length(wsi, "x-api-key:", 10) > 0 ||
           lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf) ||
           lws_get_urlarg_by_name(wsi, "api_key=", buf, sizeof buf);
}

/* Answers an upgrade request with a complete HTTP/1.1 response and a JSON reason, and
 * Retry-After when trying again later can work. (lws_return_http_status() writes an
 * HTTP/1.0 status line for upgrade requests, which browsers' WebSocket clients reject as
 * an invalid response instead of reporting the status.) Returns 1: "answered". */
static int refuse_upgrade(struct lws *wsi, unsigned status, const char *title, const char *code,
                          const char *message, int retry_after_s)
{
    unsigned char buf[LWS_PRE + 640];
    char body[320], retry[40] = "";
    int blen =
        snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, message);
    if (retry_after_s) snprintf(retry, sizeof retry, "retry-after: %d\r\n", retry_after_s);
    int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\n"
                     "content-length: %d\r\ncache-control: no-store\r\n%s\r\n%s",
                     status, title, blen, retry, body);
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* Who may upgrade, decided while the request can still be answered, with a status and a
 * reason a client can read: the path, the node's state, the connection limits, the
 * subprotocol (lws would drop the connection for an unknown one) and the origin. */
static int ws_confirm_upgrade(gw_server_t *srv, struct lws *wsi)
{
    char uri[64], ip[48];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0)
        return refuse_upgrade(wsi, 404, "Not Found", "not_found", "the WebSocket endpoint is /ws",
                              0);
    if (srv->draining)
        return refuse_upgrade(wsi, 503, "Service Unavailable", "draining",
                              "this node is shutting down: connect to another", 1);
    if (srv->cp_mode && !srv->config_ready) /* fail closed: no config, no clients */
        return refuse_upgrade(wsi, 503, "Service Unavailable", "not_configured",
                              "no configuration from the control plane yet", 2);
    if (gw_stats.conn_current >= srv->ws_limit) {
        gw_stats.refused_max_conn++;
        return refuse_upgrade(wsi, 503, "Service Unavailable", "max_connections",
                              "this node is full (MAX_CONNECTIONS)", 5);
    }
    if (!client_ip(srv, wsi, ip, sizeof ip))
        return refuse_upgrade(wsi, 400, "Bad Request", "bad_forwarded_for",
                              "X-Forwarded-For from a trusted proxy does not name a client "
                              "address",
                              0);
    gw_ipent_t *e = gw_ip_find(srv->ips, ip);
    double wait_s;
    if (has_credential(wsi) && !ip_may_authenticate(srv, e, &wait_s)) {
        gw_stats.refused_auth_throttled++;
        return refuse_upgrade(wsi, 429, "Too Many Requests", "auth_throttled",
                              "too many failed authentications from this address "
                              "(MAX_AUTH_FAILURES_PER_IP)",
                              (int)wait_s + 1);
    }
    if (e && e->conns >= (uint32_t)srv->cfg->max_connections_per_ip) {
        gw_stats.refused_per_ip++;
        return refuse_upgrade(wsi, 429, "Too Many Requests", "per_ip",
                              "too many connections from this address (MAX_CONNECTIONS_PER_IP)", 5);
    }
    if (!subprotocol_ok(wsi)) {
        gw_stats.refused_subprotocol++;
        return refuse_upgrade(wsi, 400, "Bad Request", "unsupported_subprotocol",
                              "this gateway speaks no WebSocket subprotocol: connect without "
                              "Sec-WebSocket-Protocol",
                              0);
    }
    if (!origin_ok(srv, wsi)) {
        gw_stats.refused_origin++;
        return refuse_upgrade(wsi, 403, "Forbidden", "origin_not_allowed",
                              "this page's origin is not in ALLOWED_ORIGINS", 0);
    }
    return 0;
}

/* The upgrade was confirmed (ws_confirm_upgrade): count the connection against its
 * address and take its credentials. */
static int ws_filter(gw_server_t *srv, struct lws *wsi, pss_t *pss)
{
    char ip[48];
    if (!pss || !client_ip(srv, wsi, ip, sizeof ip)) return -1; /* refused at confirmation */
    pss->ip = gw_ip_get(srv->ips, ip);
    pss->ip->conns++;
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
    net_upgraded(srv, wsi);
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
                         : code == 1008 ? "Authentication failed"
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
    bool with_close = s->closing && nf == gw_session_queued(s) && !s->close_sent;
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
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_ACK_S);
            done--;
        }
        gw_session_consume(s, done);
    }
    if (gw_session_queued(s) || (with_close && !s->close_sent)) lws_callback_on_writable(wsi);
Exit:
    free(big);
    return rc;
}

static int ws_writeable(gw_server_t *srv, struct lws *wsi, pss_t *pss)
{
    gw_session_t *s = pss->s;
    if (!s) return -1;
    if (s->close_sent) return 0; /* waiting for the peer's close (CLOSE_ACK_S) */
    return session_write(srv, wsi, s);
}

/* The peer's close frame: an answer to ours ends the connection now, without an echo;
 * one of its own is echoed by lws. */
static int ws_peer_close(pss_t *pss)
{
    return pss->s && pss->s->close_sent ? 1 : 0;
}

static void on_flush_check(uv_check_t *h)
{
    gw_server_t *srv = h->data;
    if (srv->over_budget) enforce_queue_budget(srv);
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

/* What an HTTP connection's pss holds. lws frees the pss itself when the connection
 * closes and also when it rebinds the protocol (an upgrade or another request on a
 * kept-alive connection), with a response possibly still unwritten: both paths come here. */
static void http_release(gw_server_t *srv, pss_t *pss)
{
    if (!pss) return;
    free(pss->body);
    pss->body = NULL;
    forget_credentials(pss);
    ip_release(srv, pss->ip);
    pss->ip = NULL;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    gw_server_t *srv = ctx ? lws_context_user(ctx) : NULL;
    pss_t *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: return gw_http_request(srv, wsi, pss, (const char *)in);
    case LWS_CALLBACK_HTTP_WRITEABLE: return gw_http_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:        /* also an upgrade that failed after the filter */
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* lws frees pss next: a pipelined upgrade */
        http_release(srv, pss);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: return net_accept(srv, (int)(intptr_t)in);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: net_instantiated(srv, wsi); return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (srv) net_destroyed(srv, wsi);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: return ws_confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: return ws_filter(srv, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED: ws_established(srv, wsi, pss); return 0;
    case LWS_CALLBACK_RECEIVE: return ws_receive(wsi, pss, (const char *)in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE: return ws_writeable(srv, wsi, pss);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: return ws_peer_close(pss);
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

/* Descriptors kept for everything but client sockets (Redis, the control plane's gRPC
 * channel, the event loop, the listener, logs), and client sockets kept for HTTP when
 * WebSocket connections are at their limit (probes and scrapes must still get in). */
#define FD_RESERVE   64
#define HTTP_RESERVE 16

static uint64_t fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl); /* 5,000+ clients need more than the usual 1,024 */
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > 200000 ? 200000 : (uint64_t)rl.rlim_cur;
}

/* The socket budget and the WebSocket limit the descriptor limit allows. */
static void derive_limits(gw_server_t *srv, uint64_t fds)
{
    uint64_t max_ws = (uint64_t)srv->cfg->max_connections;
    srv->socket_limit = fds > FD_RESERVE + HTTP_RESERVE + 1 ? fds - FD_RESERVE : HTTP_RESERVE + 1;
    srv->ws_limit = srv->socket_limit - HTTP_RESERVE;
    if (srv->ws_limit > max_ws) srv->ws_limit = max_ws;
    if (srv->ws_limit < max_ws)
        GW_LOG(GW_LOG_NOTICE, SUBSYS, "max_connections_lowered",
               "max_connections=%llu setting=%ld nofile=%llu note=\"raise the descriptor "
               "limit (ulimit -n) to allow more\"",
               (unsigned long long)srv->ws_limit, srv->cfg->max_connections,
               (unsigned long long)fds);
}

static void on_tick(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    for (gw_session_t *s = srv->sessions; s; s = s->next) gw_session_tick(s);
    fails_summary(srv, gw_mono_us());
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
    srv->hub_ops =
        (gw_hub_ops_t){hub_redis_cmd, gw_session_deliver, gw_session_sub_active, hub_resync};
    srv->hub = gw_hub_new(&srv->hub_ops, srv);
    srv->live = *cfg; /* strings stay the config's; the control plane replaces some */
    srv->env = (gw_session_env_t){.hub = srv->hub,
                                  .cfg = &srv->live,
                                  .auth = auth,
                                  .roles = gw_roles_ref(roles), /* the server's own reference */
                                  .want_write = session_want_write,
                                  .over_budget = session_over_budget,
                                  .close = session_close,
                                  .now_us = gw_mono_us,
                                  .now_unix = gw_unix_s,
                                  .auth_failed = auth_failed_hook,
                                  .auth_allowed = auth_allowed_hook};
    char bad[128];
    srv->nproxies = gw_cidr_parse_list(cfg->trusted_proxies, &srv->proxies, bad, sizeof bad);
    if (srv->nproxies < 0) srv->nproxies = 0; /* validated with the config already */
    srv->ips = gw_iptable_new();
    if (cfg->stats_token[0])
        gw_sha256(cfg->stats_token, strlen(cfg->stats_token), srv->stats_token_hash);
    /* Validated with the config already. */
    gw_origins_parse(cfg->allowed_origins, true, &srv->ws_origins, bad, sizeof bad);
    gw_origins_parse(cfg->cors_allow_origins, true, &srv->cors_origins, bad, sizeof bad);

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
    uint64_t fds = fd_limit();
    derive_limits(srv, fds);
    info.fd_limit_per_thread = (unsigned)fds;
    info.timeout_secs = 10;
    /* A socket holding a header table must have sent its whole request by then. */
    info.timeout_secs_ah_idle = (unsigned)cfg->handshake_timeout_s;
    /* Header tables are only needed during the handshake. lws allocates one per
     * connection by default, and after a connect storm the freed ones leave holes that
     * keep RSS high; a bounded pool is reused instead. No more sockets than it has
     * tables are pending at once (net_accept), so a newcomer always finds one. */
    info.max_http_header_pool = HEADER_POOL;
    info.max_http_header_data = HEADER_DATA_MAX;
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
    if (cfg->control_plane_url[0]) gw_control_start(srv);

    char sentinel[300];
    snprintf(sentinel, sizeof sentinel, GW_RESERVED_PREFIX "node:%s", cfg->node_id);
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
    gw_iptable_free(srv->ips);
    free(srv->proxies);
    gw_origins_free(&srv->ws_origins);
    gw_origins_free(&srv->cors_origins);
    free(srv->wbuf);
    free(srv);
}

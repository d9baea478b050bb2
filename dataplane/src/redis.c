#include "redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "redis_uv.h"

#define SUBSYS "redis"

/* L_HANDSHAKE: connected, AUTH and the sentinel SUBSCRIBE sent; the link is up only
 * once Redis has answered them (a frozen server accepts connections all the same). */
typedef enum { L_IDLE, L_CONNECTING, L_HANDSHAKE, L_UP, L_CLOSED } link_state_t;

struct gw_redis {
    uv_loop_t *loop;
    gw_redis_url_t url;
    gw_redis_opts_t opts;
    char *sentinel;
    gw_redis_cbs_t cbs;
    void *ud;

    redisAsyncContext *ac;
    link_state_t state;
    uv_timer_t retry_timer;
    uv_timer_t tick_timer; /* connect timeout and PING */
    uint64_t state_since_ms;
    uint64_t last_rx_ms;
    long backoff_ms;
    uint64_t reconnects;
    bool ever_up;
    int handles_open;
    const char *abort_reason; /* why we are hanging up, for on_disconnect's log line */
};

/*------------------------------------------------------------------------------
 * URL */

static int parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int gw_redis_url_parse(const char *url, gw_redis_url_t *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) {
        *why = "must start with redis://";
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            *why = "credentials must be [user]:password@";
            return -1;
        }
        if (colon > p) out->user = gw_xstrndup(p, (size_t)(colon - p));
        out->password = gw_xstrndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *hstart = p, *hend, *colon = NULL;
    if (*p == '[') { /* [IPv6]:port */
        hstart = p + 1;
        hend = memchr(hstart, ']', (size_t)(hostend - hstart));
        if (!hend || (hend + 1 < hostend && hend[1] != ':')) {
            *why = "an IPv6 host is written [address]:port";
            goto Error;
        }
        colon = hend + 1 < hostend ? hend + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        if (colon && memchr(colon + 1, ':', (size_t)(hostend - colon - 1))) {
            *why = "an IPv6 host is written [address]:port";
            goto Error;
        }
        hend = colon ? colon : hostend;
    }
    if (hend == hstart) {
        *why = "host is empty";
        goto Error;
    }
    out->host = gw_xstrndup(hstart, (size_t)(hend - hstart));
    if (colon && parse_int(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &out->port) < 0) {
        *why = "port must be 1..65535";
        goto Error;
    }
    if (slash && slash[1] && parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &out->db) < 0) {
        *why = "db must be a number";
        goto Error;
    }
    return 0;
Error:
    gw_redis_url_free(out);
    return -1;
}

void gw_redis_url_free(gw_redis_url_t *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

/*------------------------------------------------------------------------------
 * Link */

static void connect_now(gw_redis_t *r);

static uint64_t now_ms(gw_redis_t *r)
{
    return uv_now(r->loop);
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

#define STABLE_MS 10000 /* up this long: the backoff starts over */

static void set_state(gw_redis_t *r, link_state_t st)
{
    r->state = st;
    r->state_since_ms = now_ms(r);
}

static void schedule_retry(gw_redis_t *r)
{
    if (r->state == L_CLOSED) return;
    set_state(r, L_IDLE);
    long d = r->backoff_ms;
    d = d / 2 + (long)(random() % (d / 2 + 1)); /* jitter: spread a fleet's reconnects */
    r->backoff_ms *= 2;
    if (r->backoff_ms > r->opts.backoff_max_ms) r->backoff_ms = r->opts.backoff_max_ms;
    GW_LOG(GW_LOG_INFO, SUBSYS, "retry_scheduled", "delay_ms=%ld", d);
    uv_timer_start(&r->retry_timer, on_retry, (uint64_t)d, 0);
}

/* The link is gone (whatever the reason): tell the hub once, then retry. */
static void link_lost(gw_redis_t *r, const char *reason)
{
    bool was_up = r->state == L_UP;
    r->ac = NULL;
    if (r->state != L_CLOSED)
        GW_LOG(GW_LOG_WARN, SUBSYS, "link_down", "reason=\"%s\" host=%s port=%d", reason,
               r->url.host, r->url.port);
    if (was_up) r->cbs.down(r->ud);
    schedule_retry(r);
}

static bool str_is(const redisReply *e, const char *s)
{
    return e->type == REDIS_REPLY_STRING && strlen(s) == e->len && !strcasecmp(e->str, s);
}

static void link_up(gw_redis_t *r);

/* In subscribed mode hiredis 0.14 routes replies by their content, so every callback
 * here is this one function, which dispatches on the reply's content too. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    gw_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || !rep || r->state == L_CLOSED) return;
    r->last_rx_ms = now_ms(r);

    if (rep->type == REDIS_REPLY_ERROR) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "error_reply", "error=\"%.*s\"", (int)rep->len, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) return;
    redisReply **e = rep->element;
    for (size_t i = 0; i < rep->elements; i++)
        if (e[i]->type != REDIS_REPLY_STRING && e[i]->type != REDIS_REPLY_INTEGER) return;

    if (str_is(e[0], "message") && rep->elements == 3) {
        r->cbs.message(r->ud, e[1]->str, e[1]->len, NULL, 0, e[2]->str, e[2]->len);
    } else if (str_is(e[0], "pmessage") && rep->elements == 4) {
        r->cbs.message(r->ud, e[2]->str, e[2]->len, e[1]->str, e[1]->len, e[3]->str, e[3]->len);
    } else if (rep->elements == 3 && e[1]->type == REDIS_REPLY_STRING) {
        bool sub = str_is(e[0], "subscribe") || str_is(e[0], "psubscribe");
        bool unsub = str_is(e[0], "unsubscribe") || str_is(e[0], "punsubscribe");
        bool pat = e[0]->len && (e[0]->str[0] == 'p' || e[0]->str[0] == 'P');
        if (!sub && !unsub) return;
        if (!pat && !strcmp(e[1]->str, r->sentinel)) { /* the handshake, or a probe */
            if (sub && r->state == L_HANDSHAKE) link_up(r);
            return;
        }
        r->cbs.confirm(r->ud, sub, pat, e[1]->str, e[1]->len);
    }
}

/* Redis has answered the handshake: from now on the link is up. */
static void link_up(gw_redis_t *r)
{
    set_state(r, L_UP);
    r->last_rx_ms = now_ms(r);
    if (r->ever_up) r->reconnects++;
    r->ever_up = true;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "link_up", "host=%s port=%d reconnects=%llu", r->url.host,
           r->url.port, (unsigned long long)r->reconnects);
    r->cbs.up(r->ud);
}

/* The sentinel: an exact channel of the node's own, subscribed for the life of the
 * link. It keeps hiredis 0.14 in subscribed mode (it leaves it, and then asserts on
 * in-flight replies, when the Redis-side count drops to zero), and SUBSCRIBE to it again
 * is the liveness probe: in subscribed mode hiredis routes a PING's reply by its first
 * element as if it named a pattern, and keeps the PING's callback forever. An exact
 * channel costs other clients' PUBLISHes nothing, unlike a pattern. */
static void send_sentinel(gw_redis_t *r)
{
    const char *argv[2] = {"SUBSCRIBE", r->sentinel};
    redisAsyncCommandArgv(r->ac, on_reply, NULL, 2, argv, NULL);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    gw_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || !rep || r->state != L_HANDSHAKE) return;
    if (rep->type == REDIS_REPLY_ERROR) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "auth_failed", "error=\"%.*s\"", (int)rep->len, rep->str);
        redisAsyncDisconnect(ac); /* disconnect callback schedules the retry */
        return;
    }
    send_sentinel(r);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    gw_redis_t *r = ac->data;
    if (!r) return;
    if (status != REDIS_OK) {
        link_lost(r, ac->errstr); /* hiredis frees the context after this callback */
        return;
    }
    set_state(r, L_HANDSHAKE);
    if (r->url.password) {
        const char *argv[3] = {"AUTH", r->url.user ? r->url.user : r->url.password,
                               r->url.password};
        redisAsyncCommandArgv(ac, on_auth, NULL, r->url.user ? 3 : 2, argv, NULL);
    } else {
        send_sentinel(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    gw_redis_t *r = ac->data;
    if (!r) return;
    /* We hang up (abort_link) with a reason; hiredis names what the server did. */
    const char *why = r->abort_reason      ? r->abort_reason
                      : status == REDIS_OK ? "closed by the node"
                                           : ac->errstr;
    r->abort_reason = NULL;
    link_lost(r, why);
}

static void connect_now(gw_redis_t *r)
{
    if (r->state == L_CLOSED) return;
    set_state(r, L_CONNECTING);
    redisAsyncContext *ac = redisAsyncConnect(r->url.host, r->url.port);
    if (!ac || ac->err) {
        GW_LOG(GW_LOG_WARN, SUBSYS, "connect_failed", "error=\"%s\"", ac ? ac->errstr : "oom");
        if (ac) redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    if (gw_redis_uv_attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* Kills a context from outside hiredis callbacks (timeouts): free it, then retry. */
static void abort_link(gw_redis_t *r, const char *reason)
{
    redisAsyncContext *ac = r->ac;
    bool connected = r->state == L_HANDSHAKE || r->state == L_UP;
    if (!ac) return;
    if (connected) {
        r->abort_reason = reason;
        redisAsyncFree(ac); /* calls on_disconnect, which reports and retries */
    } else {
        ac->data = NULL; /* never connected: hiredis calls no callback */
        redisAsyncFree(ac);
        link_lost(r, reason);
    }
}

static void on_tick(uv_timer_t *t)
{
    gw_redis_t *r = t->data;
    uint64_t now = now_ms(r);
    if ((r->state == L_CONNECTING || r->state == L_HANDSHAKE) &&
        now - r->state_since_ms > (uint64_t)r->opts.connect_timeout_ms) {
        abort_link(r, r->state == L_CONNECTING ? "connect timeout" : "no answer to the handshake");
    } else if (r->state == L_UP) {
        /* Read first, then judge: after the node itself was stalled, this timer runs
         * before the poll, and what Redis sent meanwhile is waiting unread. */
        redisAsyncHandleRead(r->ac);
        if (r->state != L_UP) return; /* that read found the link gone */
        if (now - r->last_rx_ms > 3 * (uint64_t)r->opts.ping_interval_ms) {
            abort_link(r, "no answer to the liveness probe");
            return;
        }
        send_sentinel(r);
        /* The backoff starts over only once the link has proved stable: a link that
         * Redis drops right after the handshake (a refused command, a restricted ACL
         * user) must not make every node reconnect in a tight loop. */
        if (now - r->state_since_ms >= STABLE_MS) r->backoff_ms = r->opts.backoff_min_ms;
    }
}

gw_redis_t *gw_redis_new(uv_loop_t *loop, gw_redis_url_t *url, const gw_redis_opts_t *opts,
                         const gw_redis_cbs_t *cbs, void *ud)
{
    gw_redis_t *r = gw_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->url = *url;
    memset(url, 0, sizeof *url);
    r->opts = *opts;
    r->sentinel = gw_xstrdup(opts->sentinel);
    r->cbs = *cbs;
    r->ud = ud;
    r->backoff_ms = opts->backoff_min_ms;
    uv_timer_init(loop, &r->retry_timer);
    uv_timer_init(loop, &r->tick_timer);
    r->retry_timer.data = r->tick_timer.data = r;
    r->handles_open = 2;
    uint64_t tick = (uint64_t)opts->ping_interval_ms;
    uv_timer_start(&r->tick_timer, on_tick, tick, tick);
    connect_now(r);
    return r;
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_redis_t *r = h->data;
    if (--r->handles_open) return;
    gw_redis_url_free(&r->url);
    free(r->sentinel);
    free(r);
}

void gw_redis_close(gw_redis_t *r)
{
    if (!r) return;
    redisAsyncContext *ac = r->ac;
    r->state = L_CLOSED;
    r->ac = NULL;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&r->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->tick_timer, on_handle_closed);
}

bool gw_redis_is_up(const gw_redis_t *r)
{
    return r->state == L_UP;
}

uint64_t gw_redis_reconnects(const gw_redis_t *r)
{
    return r->reconnects;
}

int gw_redis_cmd(gw_redis_t *r, bool subscribe, bool pattern, const char *const *names,
                 const size_t *lens, size_t n)
{
    if (r->state != L_UP || n == 0) return -1;
    const char **argv = gw_xmalloc((n + 1) * sizeof *argv);
    size_t *argl = gw_xmalloc((n + 1) * sizeof *argl);
    argv[0] = subscribe ? (pattern ? "PSUBSCRIBE" : "SUBSCRIBE")
                        : (pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE");
    argl[0] = strlen(argv[0]);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = names[i];
        argl[i + 1] = lens[i];
    }
    int rc = redisAsyncCommandArgv(r->ac, on_reply, NULL, (int)n + 1, argv, argl);
    free(argv);
    free(argl);
    return rc == REDIS_OK ? 0 : -1;
}

/* wsgw-bench - load generator and meter for the gateway.
 *
 * One thread, one epoll: N WebSocket clients (minimal RFC 6455 client, no masking work
 * on receive) and one Redis connection that PUBLISHes at a fixed rate. Every payload
 * carries a CLOCK_MONOTONIC timestamp and a counter, so each client measures delivery
 * latency and loss; the per-connection seq shows gaps. The gateway's CPU time per
 * delivered frame and its RSS per connection are read from /proc/<pid>.
 *
 *   wsgw-bench --gw 127.0.0.1:8889 --redis 127.0.0.1:6379 --gw-pid PID
 *              [--clients 1000] [--rate 1000] [--payload 128] [--warmup 2] [--duration 10]
 *              [--idle --subs 5] [--cpu 1] [--json] [--dialect v1|legacy]
 *
 * --dialect legacy: the clients speak the Python gateway's dialect ({"action":...},
 * "data" frames), to compare its fan-out cost with v1's in the same run.
 *
 * --channels K [--prefix P]: client i subscribes to P<i mod K> (default bench:0 for all);
 * the publisher cycles through the K channels, each payload carrying its channel's own
 * counter, so loss is still exact.
 * --jwt-secret S: every client authenticates with its own HS256 JWT (role "internal",
 * narrowed by a `channels` claim naming its channel and a private pattern of its own), so
 * the per-message ACL check runs per client instead of once per role.
 *
 * --attack slow|patterns|idle --attackers N: while the clients above (the victims) are
 * measured, N more connections attack the node:
 *   slow      subscribe to channel 0 with a 4 KiB receive buffer, send one ping, and
 *             never read again (a control frame at the head of a queue that only grows)
 *   patterns  send fresh long many-wildcard patterns as fast as the rate limiter allows,
 *             reconnecting when closed
 *   idle      open TCP connections from 127.0.0.10.. that send half a request and
 *             nothing more, reconnecting when the node hangs up
 * The report adds the node's peak RSS and the slowest /health answer seen (probed every
 * 100 ms from a separate connection). Victims connect from 127.1.0.1, 127.1.0.2, ... (one
 * address each, as distinct users), so per-address limits apply to the attackers only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/hmac.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { VICTIM, ATTACKER, PROBE };

typedef struct {
    int kind;
    int idx;
    int fd;
    int state;           /* 0 handshake sent, 1 open, 2 subscribed */
    unsigned char *left; /* bytes of an incomplete frame from the previous read */
    size_t nleft;
    uint64_t last_seq;
    uint64_t next_n; /* next expected publisher counter */
    uint64_t messages, gaps, seq_gaps;
    int acks;
    uint64_t due, sent_at; /* attackers and the probe: next action, request sent (ns) */
} client_t;

static struct {
    const char *gw_host, *redis_host;
    int gw_port, redis_port, gw_pid;
    int clients, rate, payload, subs, cpu;
    double warmup, duration;
    bool idle, json, legacy;
    int channels, attackers;
    const char *prefix, *jwt_secret, *attack;
} opt = {.gw_host = "127.0.0.1",
         .redis_host = "127.0.0.1",
         .gw_port = 8889,
         .redis_port = 6379,
         .clients = 1000,
         .rate = 1000,
         .payload = 128,
         .subs = 1,
         .cpu = -1,
         .warmup = 2,
         .duration = 10,
         .channels = 1,
         .prefix = "bench:",
         .attack = ""};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/*------------------------------------------------------------------------------
 * Latency histogram: 1 µs resolution below 1 ms, then 1% buckets. */

#define HBUCKETS 4000
static uint64_t hist[HBUCKETS];
static uint64_t hist_n;

static int bucket(uint64_t us)
{
    if (us < 1000) return (int)us;
    int b = 1000;
    double v = 1000;
    while (v * 1.01 < (double)us && b < HBUCKETS - 1) {
        v *= 1.01;
        b++;
    }
    return b;
}

static uint64_t bucket_value(int b)
{
    if (b < 1000) return (uint64_t)b;
    double v = 1000;
    for (int i = 1000; i < b; i++) v *= 1.01;
    return (uint64_t)v;
}

/* Bucket lookup for large values is a loop; cache per exponent to keep the hot path
 * cheap: most samples fall in the same few buckets. */
static int bucket_fast(uint64_t us)
{
    static uint64_t cache_us[64];
    static int cache_b[64];
    if (us < 1000) return (int)us;
    int k = 63 - __builtin_clzll(us);
    uint64_t key = us >> (k > 6 ? k - 6 : 0);
    int slot = (int)((key * 2654435761u) & 63);
    if (cache_us[slot] == us) return cache_b[slot];
    cache_us[slot] = us;
    return cache_b[slot] = bucket(us);
}

static uint64_t percentile(double p)
{
    uint64_t want = (uint64_t)((double)hist_n * p), acc = 0;
    if (want >= hist_n) want = hist_n ? hist_n - 1 : 0;
    for (int b = 0; b < HBUCKETS; b++) {
        acc += hist[b];
        if (acc > want) return bucket_value(b);
    }
    return 0;
}

/*------------------------------------------------------------------------------
 * /proc readings of the gateway */

static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/*------------------------------------------------------------------------------
 * Sockets */

/* source: a local IPv4 address to connect from (host order), or 0; rcvbuf: SO_RCVBUF or 0. */
static int connect_from(const char *host, int port, uint32_t source, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (source) {
        struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(source)};
        if (bind(fd, (struct sockaddr *)&b, sizeof b) < 0) die("bind");
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int connect_to(const char *host, int port)
{
    return connect_from(host, port, 0, 0);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("send");
        }
        c += w;
        n -= (size_t)w;
    }
}

/* A masked (zero key) text frame of s in frame[4096]; returns its length. */
static size_t ws_frame(unsigned char *frame, const char *s)
{
    size_t n = strlen(s), h = 0;
    if (n > 4096 - 8) die("frame too long");
    frame[h++] = 0x81;
    if (n < 126) {
        frame[h++] = (unsigned char)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(n >> 8);
        frame[h++] = (unsigned char)n;
    }
    memset(frame + h, 0, 4); /* zero mask: payload unchanged */
    h += 4;
    memcpy(frame + h, s, n);
    return h + n;
}

static void ws_send_text(int fd, const char *s)
{
    unsigned char frame[4096];
    send_all(fd, frame, ws_frame(frame, s));
}

/* For attackers: false when the frame could not be sent whole at once (closed, full). */
static bool ws_try_text(int fd, const char *s)
{
    unsigned char frame[4096];
    size_t n = ws_frame(frame, s);
    return send(fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n;
}

static void channel_name(char *out, size_t len, int idx)
{
    snprintf(out, len, "%s%d", opt.prefix, idx % opt.channels);
}

static size_t b64url(char *out, const unsigned char *in, size_t n)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = T[v >> 18 & 63];
        out[o++] = T[v >> 12 & 63];
        if (i + 1 < n) out[o++] = T[v >> 6 & 63];
        if (i + 2 < n) out[o++] = T[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* Client idx's own HS256 token: role internal, narrowed to its channel and a private
 * pattern, so no two clients share an ACL. */
static void client_jwt(char *out, size_t len, int idx)
{
    char chan[64], claims[256], signing[600];
    channel_name(chan, sizeof chan, idx);
    int cn = snprintf(claims, sizeof claims,
                      "{\"sub\":\"bench-%d\",\"role\":\"internal\",\"channels\":[\"%s\","
                      "\"private:%d:*\"],\"exp\":%ld}",
                      idx, chan, idx, (long)time(NULL) + 3600);
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t n = b64url(signing, (const unsigned char *)header, sizeof header - 1);
    signing[n++] = '.';
    n += b64url(signing + n, (const unsigned char *)claims, (size_t)cn);
    unsigned char mac[32];
    unsigned maclen = sizeof mac;
    HMAC(EVP_sha256(), opt.jwt_secret, (int)strlen(opt.jwt_secret), (unsigned char *)signing, n,
         mac, &maclen);
    char sig[64];
    b64url(sig, mac, maclen);
    snprintf(out, len, "%s.%s", signing, sig);
}

static void handshake(client_t *c)
{
    char req[1536], auth[1100] = "";
    if (opt.jwt_secret && c->kind == VICTIM) {
        char tok[1024];
        client_jwt(tok, sizeof tok, c->idx);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", tok);
    }
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.gw_host, opt.gw_port, auth);
    send_all(c->fd, req, (size_t)n);
}

static void subscribe(client_t *c, int idx)
{
    char msg[900];
    const char *head = opt.legacy ? "{\"action\":\"subscribe\",\"requestId\":\"b\",\"channels\":["
                                  : "{\"type\":\"subscribe\",\"channels\":[";
    if (!opt.idle) {
        char chan[64];
        channel_name(chan, sizeof chan, idx);
        snprintf(msg, sizeof msg, "%s\"%s\"]}", head, chan);
        ws_send_text(c->fd, msg);
        return;
    }
    int n = snprintf(msg, sizeof msg, "%s", head);
    for (int k = 0; k < opt.subs; k++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s\"idle:%d:%d\"", k ? "," : "", idx % 100,
                      k);
    snprintf(msg + n, sizeof msg - (size_t)n, "]}");
    ws_send_text(c->fd, msg);
}

/*------------------------------------------------------------------------------
 * Receiving */

static bool measuring;
static uint64_t window_frames;

static uint64_t parse_u64(const unsigned char *p, const unsigned char *end)
{
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* The envelope of the bench channel starts with this, so the timestamp sits at a fixed
 * offset: the client parses a frame in a few dozen instructions. */
static const char fast_prefix[] = "{\"type\":\"message\",\"channel\":\"bench:0\",\"data\":{\"ts\":";
static const char fast_legacy[] =
    "{\"type\":\"data\",\"channel\":\"bench:0\",\"pattern\":null,\"data\":{\"ts\":";

static void on_text(client_t *c, const unsigned char *p, size_t n, uint64_t now)
{
    const unsigned char *end = p + n;
    const char *prefix = opt.legacy ? fast_legacy : fast_prefix;
    size_t plen = opt.legacy ? sizeof fast_legacy - 1 : sizeof fast_prefix - 1;
    /* {"type":"message"... or {"type":"data"...  /  {"type":"subscribed"... */
    if (n > 10 && p[9] == (opt.legacy ? 'd' : 'm')) {
        const unsigned char *ts;
        if (n > plen && !memcmp(p, prefix, plen))
            ts = p + plen;
        else if ((ts = memmem(p, n, "\"ts\":", 5)))
            ts += 5;
        else
            return;
        uint64_t t = parse_u64(ts, end);
        const unsigned char *cnt = ts;
        while (cnt < end && *cnt != ':') cnt++;
        uint64_t k = parse_u64(cnt + 1, end);
        const unsigned char *q = end - 2;
        while (q > p && *q >= '0' && *q <= '9') q--;
        uint64_t seq = parse_u64(q + 1, end);
        if (c->last_seq && seq != c->last_seq + 1) c->seq_gaps++;
        c->last_seq = seq;
        if (k != c->next_n && c->messages) c->gaps += k > c->next_n ? k - c->next_n : 0;
        c->next_n = k + 1;
        c->messages++;
        if (measuring) {
            uint64_t us = now > t ? (now - t) / 1000 : 0;
            hist[bucket_fast(us)]++;
            hist_n++;
            window_frames++;
        }
    } else {
        const unsigned char *sq = memmem(p, n, "\"seq\":", 6);
        if (sq) c->last_seq = parse_u64(sq + 6, end);
        if (memmem(p, n, "\"subscribed\"", 12)) {
            c->acks++;
            c->state = 2;
        }
    }
}

static unsigned char rbuf[1 << 20];

/*------------------------------------------------------------------------------
 * Attackers and the /health probe (see --attack at the top) */

/* A slow attacker pings once the node has had time to fill the kernel's buffers and
 * start queueing for it (~20 s of this load at most), so the pong waits in the node's
 * queue ahead of data that keeps coming; then again every 5 s. */
#define SLOW_PING_AFTER_NS 12000000000ull

static int ep;
static client_t *atk;
static uint64_t atk_closes, atk_requests;
static uint64_t health_max_us, health_probes;
static client_t probe = {.kind = PROBE, .fd = -1};

static uint32_t rnd(void)
{
    static uint32_t x = 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* The shape tests/e2e/test_bounds.py uses: ~200 bytes, up to 8 wildcards, classes. */
static size_t hostile_pattern(char *p)
{
    static const char *const parts[] = {"a", "s", "e", "c",     "r",   "t",
                                        ":", "m", "?", "[a-z]", "[^:]"};
    static const char *const heads[] = {"market:", "indicators:", ""};
    size_t n = (size_t)sprintf(p, "%s", heads[rnd() % 3]);
    int wild = 0;
    while (n < 200) {
        const char *c = wild < 8 && rnd() % 100 < 15 ? "*" : parts[rnd() % 11];
        if (c[0] == '*' || c[0] == '?' || c[0] == '[') {
            if (wild == 8)
                c = "a";
            else
                wild++;
        }
        n += (size_t)sprintf(p + n, "%s", c);
    }
    return n;
}

static bool attacking(const char *kind)
{
    return !strcmp(opt.attack, kind);
}

static void attacker_open(client_t *a)
{
    /* idle: all from one address, as the attack that stalled handshakes did */
    uint32_t src = attacking("idle") ? (127u << 24 | 10) : 0;
    a->fd = connect_from(opt.gw_host, opt.gw_port, src, attacking("slow") ? 4096 : 0);
    fcntl(a->fd, F_SETFL, O_NONBLOCK);
    a->state = 0;
    if (attacking("idle")) {
        static const char half[] = "GET /ws HTTP/1.1\r\nHost: x\r\n";
        send_all(a->fd, half, sizeof half - 1);
    } else {
        handshake(a);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = a};
    epoll_ctl(ep, EPOLL_CTL_ADD, a->fd, &ev);
}

static void attacker_closed(client_t *a, uint64_t now)
{
    close(a->fd);
    a->fd = -1;
    a->due = now + 50000000ull; /* reconnect in 50 ms */
    atk_closes++;
}

static void attacker_send(client_t *a, uint64_t now)
{
    char msg[2048];
    size_t n = (size_t)sprintf(msg, "{\"type\":\"subscribe\",\"channels\":[");
    for (int k = 0; k < 5; k++) {
        n += (size_t)sprintf(msg + n, "%s\"", k ? "," : "");
        n += hostile_pattern(msg + n);
        msg[n++] = '"';
    }
    sprintf(msg + n, "]}");
    if (ws_try_text(a->fd, msg))
        atk_requests++;
    else if (errno != EAGAIN)
        attacker_closed(a, now);
}

static void attacker_readable(client_t *a, uint64_t now)
{
    for (;;) {
        ssize_t r = recv(a->fd, rbuf, sizeof rbuf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (r <= 0) {
            attacker_closed(a, now);
            return;
        }
        if (a->state == 0 && memmem(rbuf, (size_t)r, "HTTP/1.1 101", 12)) {
            a->state = 1;
            if (attacking("slow")) { /* subscribed, then deaf; pings come later */
                char chan[64], msg[128];
                channel_name(chan, sizeof chan, 0);
                snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"channels\":[\"%s\"]}", chan);
                ws_send_text(a->fd, msg);
                epoll_ctl(ep, EPOLL_CTL_DEL, a->fd, NULL);
                a->due = now + SLOW_PING_AFTER_NS;
                return;
            }
        }
    }
}

/* Patterns attackers send a fresh request every 10 ms; slow ones ping when due; closed
 * ones come back after 50 ms. */
static void attackers_tick(uint64_t now)
{
    for (int i = 0; i < opt.attackers; i++) {
        client_t *a = &atk[i];
        if (a->fd < 0) {
            if (now >= a->due) attacker_open(a);
        } else if (a->state == 1 && now >= a->due) {
            if (attacking("patterns")) {
                attacker_send(a, now);
                a->due = now + 10000000ull;
            } else if (attacking("slow")) {
                if (!ws_try_text(a->fd, "{\"type\":\"ping\"}") && errno != EAGAIN) {
                    attacker_closed(a, now); /* closed by the node (1013): comes back */
                    continue;
                }
                a->due = now + 5000000000ull;
            }
        }
    }
}

/* /health every 100 ms on its own connection: how long it takes is what a load
 * balancer's probe would see. */
static void probe_tick(uint64_t now)
{
    if (probe.fd >= 0 || now < probe.due) return;
    probe.fd = connect_to(opt.gw_host, opt.gw_port);
    fcntl(probe.fd, F_SETFL, O_NONBLOCK);
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(probe.fd, req, sizeof req - 1);
    probe.sent_at = now;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &probe};
    epoll_ctl(ep, EPOLL_CTL_ADD, probe.fd, &ev);
}

static void probe_readable(uint64_t now)
{
    ssize_t r;
    while ((r = recv(probe.fd, rbuf, sizeof rbuf, 0)) > 0) {
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    uint64_t us = (now - probe.sent_at) / 1000;
    if (measuring) {
        if (us > health_max_us) health_max_us = us;
        health_probes++;
    }
    close(probe.fd);
    probe.fd = -1;
    probe.due = now + 100000000ull;
}

/* Returns -1 when a victim's connection is gone. */
static int on_readable(client_t *c)
{
    uint64_t now = now_ns();
    if (c->kind == ATTACKER) {
        attacker_readable(c, now);
        return 0;
    }
    if (c->kind == PROBE) {
        probe_readable(now);
        return 0;
    }
    for (;;) {
        size_t have = c->nleft;
        if (have) memcpy(rbuf, c->left, have);
        ssize_t r = recv(c->fd, rbuf + have, sizeof rbuf - have, 0);
        if (r == 0) return -1;
        if (r < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        size_t n = have + (size_t)r, off = 0;
        if (c->state == 0) {
            unsigned char *e = memmem(rbuf, n, "\r\n\r\n", 4);
            if (!e) {
                c->left = realloc(c->left, n);
                memcpy(c->left, rbuf, n);
                c->nleft = n;
                continue;
            }
            if (memcmp(rbuf, "HTTP/1.1 101", 12) != 0) return -1;
            off = (size_t)(e + 4 - rbuf);
            c->state = 1;
        }
        while (n - off >= 2) {
            unsigned char op = rbuf[off] & 0x0f;
            size_t len = rbuf[off + 1] & 0x7f, h = 2;
            if (len == 126) {
                if (n - off < 4) break;
                len = (size_t)rbuf[off + 2] << 8 | rbuf[off + 3];
                h = 4;
            } else if (len == 127) {
                if (n - off < 10) break;
                len = 0;
                for (int i = 0; i < 8; i++) len = len << 8 | rbuf[off + 2 + i];
                h = 10;
            }
            if (n - off < h + len) break;
            if (op == 1) on_text(c, rbuf + off + h, len, now);
            if (op == 8) return -1;
            off += h + len;
        }
        c->nleft = n - off;
        if (c->nleft) {
            c->left = realloc(c->left, c->nleft);
            memcpy(c->left, rbuf + off, c->nleft);
        }
        if ((size_t)r < sizeof rbuf - have) return 0; /* drained the socket */
    }
}

/*------------------------------------------------------------------------------
 * Publisher */

static char pubbuf[1 << 16];

/* Publish number p goes to channel p mod K and carries that channel's own counter. */
static size_t format_publish(char *out, uint64_t p)
{
    char payload[1024], chan[64];
    int len =
        snprintf(payload, sizeof payload, "{\"ts\":%llu,\"n\":%llu,\"pad\":\"",
                 (unsigned long long)now_ns(), (unsigned long long)(p / (uint64_t)opt.channels));
    while (len < opt.payload - 2) payload[len++] = 'x';
    payload[len++] = '"';
    payload[len++] = '}';
    channel_name(chan, sizeof chan, (int)(p % (uint64_t)opt.channels));
    return (size_t)sprintf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n%.*s\r\n",
                           strlen(chan), chan, len, len, payload);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void parse_hostport(const char *s, const char **host, int *port)
{
    const char *c = strrchr(s, ':');
    if (!c) {
        fprintf(stderr, "expected host:port, got %s\n", s);
        exit(2);
    }
    *host = strndup(s, (size_t)(c - s));
    *port = atoi(c + 1);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gw") && v)
            parse_hostport(argv[++i], &opt.gw_host, &opt.gw_port);
        else if (!strcmp(a, "--redis") && v)
            parse_hostport(argv[++i], &opt.redis_host, &opt.redis_port);
        else if (!strcmp(a, "--gw-pid") && v)
            opt.gw_pid = atoi(argv[++i]);
        else if (!strcmp(a, "--clients") && v)
            opt.clients = atoi(argv[++i]);
        else if (!strcmp(a, "--rate") && v)
            opt.rate = atoi(argv[++i]);
        else if (!strcmp(a, "--payload") && v)
            opt.payload = atoi(argv[++i]);
        else if (!strcmp(a, "--subs") && v)
            opt.subs = atoi(argv[++i]);
        else if (!strcmp(a, "--cpu") && v)
            opt.cpu = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v)
            opt.warmup = atof(argv[++i]);
        else if (!strcmp(a, "--duration") && v)
            opt.duration = atof(argv[++i]);
        else if (!strcmp(a, "--idle"))
            opt.idle = true;
        else if (!strcmp(a, "--json"))
            opt.json = true;
        else if (!strcmp(a, "--dialect") && v)
            opt.legacy = !strcmp(argv[++i], "legacy");
        else if (!strcmp(a, "--channels") && v)
            opt.channels = atoi(argv[++i]);
        else if (!strcmp(a, "--prefix") && v)
            opt.prefix = argv[++i];
        else if (!strcmp(a, "--jwt-secret") && v)
            opt.jwt_secret = argv[++i];
        else if (!strcmp(a, "--attack") && v)
            opt.attack = argv[++i];
        else if (!strcmp(a, "--attackers") && v)
            opt.attackers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: see the comment at the top of bench/wsgw_bench.c\n");
            exit(2);
        }
    }
    if (opt.payload < 48 || opt.payload > 900) {
        fprintf(stderr, "--payload must be 48..900\n");
        exit(2);
    }
    if (opt.channels < 1 || strlen(opt.prefix) > 40) {
        fprintf(stderr, "--channels must be >= 1, --prefix at most 40 bytes\n");
        exit(2);
    }
    if (opt.attack[0] && !attacking("slow") && !attacking("patterns") && !attacking("idle")) {
        fprintf(stderr, "--attack must be slow, patterns or idle\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    ep = epoll_create1(0);
    long rss0 = opt.gw_pid ? proc_rss_kb(opt.gw_pid) : -1;

    client_t *cl = calloc((size_t)opt.clients, sizeof *cl);
    for (int i = 0; i < opt.clients; i++) {
        cl[i].kind = VICTIM;
        cl[i].idx = i;
        /* each from its own loopback address, as distinct users are: per-address limits
         * stay at their defaults and apply to the attackers only */
        cl[i].fd = connect_from(
            opt.gw_host, opt.gw_port,
            127u << 24 | 1u << 16 | (uint32_t)(i / 250) << 8 | (uint32_t)(i % 250 + 1), 0);
        handshake(&cl[i]);
        fcntl(cl[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cl[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
        /* keep the accept queue short: pump events every 100 connects, and keep at most
         * 1,000 handshakes in flight (a node holds 4,096 sockets before the upgrade) */
        for (int wait = 0; i % 100 == 99; wait = 10) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, wait);
            for (int j = 0; j < k; j++) on_readable(evs[j].data.ptr);
            int open = 0;
            for (int j = 0; j <= i; j++) open += cl[j].state >= 1;
            if (i + 1 - open <= 1000) break;
        }
    }

    /* Wait until every client is open, then subscribe, then wait for every ack. */
    int phase_open = 0, subscribed = 0;
    uint64_t deadline = now_ns() + 60ull * 1000000000u;
    struct epoll_event evs[1024];
    while (now_ns() < deadline) {
        int k = epoll_wait(ep, evs, 1024, 10);
        for (int j = 0; j < k; j++)
            if (on_readable(evs[j].data.ptr) < 0) {
                fprintf(stderr, "a client was closed during setup\n");
                return 1;
            }
        if (!phase_open) {
            int open = 0;
            for (int i = 0; i < opt.clients; i++) open += cl[i].state >= 1;
            if (open == opt.clients) {
                phase_open = 1;
                for (int i = 0; i < opt.clients; i++) subscribe(&cl[i], i);
            }
        } else {
            subscribed = 0;
            for (int i = 0; i < opt.clients; i++) subscribed += cl[i].state == 2;
            if (subscribed == opt.clients) break;
        }
    }
    if (subscribed != opt.clients) {
        fprintf(stderr, "only %d of %d clients subscribed\n", subscribed, opt.clients);
        return 1;
    }

    if (opt.idle) {
        sleep(1); /* let the gateway settle (allocator, lazy buffers) */
        long rss1 = proc_rss_kb(opt.gw_pid);
        double per = (double)(rss1 - rss0) * 1024.0 / opt.clients;
        if (opt.json)
            printf("{\"scenario\":\"idle\",\"clients\":%d,\"subs_each\":%d,\"rss_before_kb\":%ld,"
                   "\"rss_after_kb\":%ld,\"bytes_per_conn\":%.0f}\n",
                   opt.clients, opt.subs, rss0, rss1, per);
        else
            printf("idle: %d connections x %d subscriptions: gateway RSS %ld -> %ld KiB, "
                   "%.0f bytes per connection\n",
                   opt.clients, opt.subs, rss0, rss1, per);
        return 0;
    }

    atk = calloc((size_t)opt.attackers + 1, sizeof *atk);
    for (int i = 0; i < opt.attackers; i++) {
        atk[i].kind = ATTACKER;
        atk[i].idx = opt.clients + i;
        atk[i].fd = -1;
    }
    long rss_max = 0;
    uint64_t rss_next = 0;

    int rfd = connect_to(opt.redis_host, opt.redis_port);
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    struct epoll_event rev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &rev);

    uint64_t t0 = now_ns(), published = 0;
    uint64_t wstart = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t wend = wstart + (uint64_t)(opt.duration * 1e9);
    double cpu0 = 0, cpu1 = 0;
    uint64_t w_t0 = 0, w_t1 = 0;
    bool drained = false;
    uint64_t stop_at = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && !w_t0 && now >= wstart) {
            measuring = true;
            w_t0 = now;
            cpu0 = opt.gw_pid ? proc_cpu_s(opt.gw_pid) : 0;
        }
        if (measuring && now >= wend) {
            measuring = false;
            w_t1 = now;
            cpu1 = opt.gw_pid ? proc_cpu_s(opt.gw_pid) : 0;
            stop_at = now + 2000000000ull; /* then let the queues drain */
        }
        if (opt.attackers) attackers_tick(now);
        probe_tick(now);
        if (measuring && opt.gw_pid && now >= rss_next) {
            long kb = proc_rss_kb(opt.gw_pid);
            if (kb > rss_max) rss_max = kb;
            rss_next = now + 100000000ull;
        }
        if (!stop_at) { /* publish what is due */
            uint64_t due = (uint64_t)((double)(now - t0) * opt.rate / 1e9);
            size_t len = 0;
            while (published < due && len < sizeof pubbuf - 1200) {
                len += format_publish(pubbuf + len, published);
                published++;
            }
            if (len) send_all(rfd, pubbuf, len);
        } else if (now >= stop_at) {
            drained = true;
            break;
        }
        int k = epoll_wait(ep, evs, 1024, 1);
        for (int j = 0; j < k; j++) {
            if (!evs[j].data.ptr) {
                while (recv(rfd, rbuf, sizeof rbuf, 0) > 0) {
                }
                continue;
            }
            if (on_readable(evs[j].data.ptr) < 0) {
                fprintf(stderr, "a client was closed by the gateway\n");
                return 1;
            }
        }
    }
    (void)drained;

    uint64_t delivered = 0, seq_gaps = 0, expected = 0, K = (uint64_t)opt.channels;
    for (int i = 0; i < opt.clients; i++) {
        delivered += cl[i].messages;
        seq_gaps += cl[i].seq_gaps;
        uint64_t ch = (uint64_t)i % K; /* publishes p < published with p mod K == ch */
        expected += published > ch ? (published - ch + K - 1) / K : 0;
    }
    double secs = (double)(w_t1 - w_t0) / 1e9;
    double fps = (double)window_frames / secs;
    double cpu_us = window_frames ? (cpu1 - cpu0) * 1e6 / (double)window_frames : 0;
    double cpu_share = (cpu1 - cpu0) / secs;
    if (opt.json)
        printf("{\"scenario\":\"fanout\",\"dialect\":\"%s\",\"clients\":%d,\"rate\":%d,"
               "\"payload\":%d,"
               "\"frames_per_s\":%.0f,\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,"
               "\"max_us\":%llu,\"published\":%llu,\"expected\":%llu,\"delivered\":%llu,"
               "\"lost\":%llu,\"seq_gaps\":%llu,\"gw_cpu_us_per_frame\":%.2f,"
               "\"gw_cpu_share\":%.2f,\"channels\":%d,\"auth\":\"%s\",\"attack\":\"%s\","
               "\"attackers\":%d,\"attacker_closes\":%llu,\"attacker_requests\":%llu,"
               "\"rss_before_kb\":%ld,\"rss_max_kb\":%ld,\"health_max_us\":%llu,"
               "\"health_probes\":%llu}\n",
               opt.legacy ? "legacy" : "v1", opt.clients, opt.rate, opt.payload, fps,
               (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
               (unsigned long long)percentile(0.999), (unsigned long long)percentile(1.0),
               (unsigned long long)published, (unsigned long long)expected,
               (unsigned long long)delivered, (unsigned long long)(expected - delivered),
               (unsigned long long)seq_gaps, cpu_us, cpu_share, opt.channels,
               opt.jwt_secret ? "jwt-per-client" : "none", opt.attack[0] ? opt.attack : "none",
               opt.attackers, (unsigned long long)atk_closes, (unsigned long long)atk_requests,
               rss0, rss_max, (unsigned long long)health_max_us, (unsigned long long)health_probes);
    else
        printf("fanout: %d clients, %d publishes/s, %d-byte payloads\n"
               "  delivered %.0f frames/s; latency p50 %llu us, p99 %llu us, p99.9 %llu us\n"
               "  published %llu, delivered %llu of %llu (lost %llu, seq gaps %llu)\n"
               "  gateway CPU %.2f us per delivered frame (%.0f%% of a core)\n"
               "  gateway RSS %ld KiB before, %ld KiB at most; /health at most %.1f ms (%llu "
               "probes)\n",
               opt.clients, opt.rate, opt.payload, fps, (unsigned long long)percentile(0.50),
               (unsigned long long)percentile(0.99), (unsigned long long)percentile(0.999),
               (unsigned long long)published, (unsigned long long)delivered,
               (unsigned long long)expected, (unsigned long long)(expected - delivered),
               (unsigned long long)seq_gaps, cpu_us, cpu_share * 100, rss0, rss_max,
               (double)health_max_us / 1000, (unsigned long long)health_probes);
    return expected == delivered ? 0 : 3;
}

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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

typedef struct {
    int fd;
    int state;           /* 0 handshake sent, 1 open, 2 subscribed */
    unsigned char *left; /* bytes of an incomplete frame from the previous read */
    size_t nleft;
    uint64_t last_seq;
    uint64_t next_n; /* next expected publisher counter */
    uint64_t messages, gaps, seq_gaps;
    int acks;
} client_t;

static struct {
    const char *gw_host, *redis_host;
    int gw_port, redis_port, gw_pid;
    int clients, rate, payload, subs, cpu;
    double warmup, duration;
    bool idle, json, legacy;
} opt = {"127.0.0.1", "127.0.0.1", 8889, 6379, 0,     1000,  1000, 128,
         1,           -1,          2,    10,   false, false, false};

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

static int connect_to(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
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

static void ws_send_text(int fd, const char *s)
{
    unsigned char frame[1024];
    size_t n = strlen(s), h = 0;
    frame[h++] = 0x81;
    frame[h++] = (unsigned char)(0x80 | n); /* n < 126 here */
    memset(frame + h, 0, 4);                /* zero mask: payload unchanged */
    h += 4;
    memcpy(frame + h, s, n);
    send_all(fd, frame, h + n);
}

static void handshake(client_t *c)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt.gw_host, opt.gw_port);
    send_all(c->fd, req, (size_t)n);
}

static void subscribe(client_t *c, int idx)
{
    char msg[900];
    const char *head = opt.legacy ? "{\"action\":\"subscribe\",\"requestId\":\"b\",\"channels\":["
                                  : "{\"type\":\"subscribe\",\"channels\":[";
    if (!opt.idle) {
        snprintf(msg, sizeof msg, "%s\"bench:0\"]}", head);
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

/* Returns -1 when the connection is gone. */
static int on_readable(client_t *c)
{
    uint64_t now = now_ns();
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

static size_t format_publish(char *out, uint64_t n)
{
    char payload[1024];
    int len = snprintf(payload, sizeof payload, "{\"ts\":%llu,\"n\":%llu,\"pad\":\"",
                       (unsigned long long)now_ns(), (unsigned long long)n);
    while (len < opt.payload - 2) payload[len++] = 'x';
    payload[len++] = '"';
    payload[len++] = '}';
    return (size_t)sprintf(out, "*3\r\n$7\r\nPUBLISH\r\n$7\r\nbench:0\r\n$%d\r\n%.*s\r\n", len, len,
                           payload);
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
        else {
            fprintf(stderr, "usage: see the comment at the top of bench/wsgw_bench.c\n");
            exit(2);
        }
    }
    if (opt.payload < 48 || opt.payload > 900) {
        fprintf(stderr, "--payload must be 48..900\n");
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
    int ep = epoll_create1(0);
    long rss0 = opt.gw_pid ? proc_rss_kb(opt.gw_pid) : -1;

    client_t *cl = calloc((size_t)opt.clients, sizeof *cl);
    for (int i = 0; i < opt.clients; i++) {
        cl[i].fd = connect_to(opt.gw_host, opt.gw_port);
        handshake(&cl[i]);
        fcntl(cl[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cl[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
        /* keep the accept queue short: pump events every 100 connects */
        if (i % 100 == 99) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, 0);
            for (int j = 0; j < k; j++) on_readable(evs[j].data.ptr);
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

    uint64_t delivered = 0, gaps = 0, seq_gaps = 0;
    for (int i = 0; i < opt.clients; i++) {
        delivered += cl[i].messages;
        gaps += cl[i].gaps + (published - (cl[i].next_n));
        seq_gaps += cl[i].seq_gaps;
    }
    double secs = (double)(w_t1 - w_t0) / 1e9;
    double fps = (double)window_frames / secs;
    double cpu_us = window_frames ? (cpu1 - cpu0) * 1e6 / (double)window_frames : 0;
    double cpu_share = (cpu1 - cpu0) / secs;
    uint64_t expected = published * (uint64_t)opt.clients;
    if (opt.json)
        printf("{\"scenario\":\"fanout\",\"dialect\":\"%s\",\"clients\":%d,\"rate\":%d,"
               "\"payload\":%d,"
               "\"frames_per_s\":%.0f,\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,"
               "\"max_us\":%llu,\"published\":%llu,\"expected\":%llu,\"delivered\":%llu,"
               "\"lost\":%llu,\"seq_gaps\":%llu,\"gw_cpu_us_per_frame\":%.2f,"
               "\"gw_cpu_share\":%.2f}\n",
               opt.legacy ? "legacy" : "v1", opt.clients, opt.rate, opt.payload, fps,
               (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
               (unsigned long long)percentile(0.999), (unsigned long long)percentile(1.0),
               (unsigned long long)published, (unsigned long long)expected,
               (unsigned long long)delivered, (unsigned long long)(expected - delivered),
               (unsigned long long)seq_gaps, cpu_us, cpu_share);
    else
        printf("fanout: %d clients, %d publishes/s, %d-byte payloads\n"
               "  delivered %.0f frames/s; latency p50 %llu us, p99 %llu us, p99.9 %llu us\n"
               "  published %llu, delivered %llu of %llu (lost %llu, seq gaps %llu)\n"
               "  gateway CPU %.2f us per delivered frame (%.0f%% of a core)\n",
               opt.clients, opt.rate, opt.payload, fps, (unsigned long long)percentile(0.50),
               (unsigned long long)percentile(0.99), (unsigned long long)percentile(0.999),
               (unsigned long long)published, (unsigned long long)delivered,
               (unsigned long long)expected, (unsigned long long)(expected - delivered),
               (unsigned long long)seq_gaps, cpu_us, cpu_share * 100);
    (void)gaps;
    return expected == delivered ? 0 : 3;
}

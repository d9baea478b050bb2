#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"

typedef struct {
    char path[16];
    gw_buf_t body;
} page_t;

struct cp_httpd {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    atomic_int stop;
    page_t pages[2];
};

/* Every connection is served by one poll loop, each with its own deadline: idle or slow
 * sockets cost a slot and at most CONN_TIMEOUT_MS, never the others' time; when all
 * slots are taken, the oldest idle one makes room. */
#define MAX_CONNS       64
#define CONN_TIMEOUT_MS 2000
#define REQ_MAX         2048

typedef struct {
    int fd;        /* -1: free */
    int64_t until; /* deadline, monotonic ms */
    char req[REQ_MAX];
    size_t rlen;
    gw_buf_t out; /* the response once the request is complete */
    size_t sent;
} conn_t;

static int64_t mono_ms(void)
{
    return (int64_t)(gw_mono_us() / 1000);
}

static void build_response(cp_httpd_t *h, conn_t *c)
{
    char path[64] = "";
    if (sscanf(c->req, "GET %63s", path) != 1) {
        gw_buf_puts(&c->out, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    pthread_mutex_lock(&h->mu);
    const page_t *pg = NULL;
    for (int i = 0; i < 2; i++)
        if (!strcmp(h->pages[i].path, path)) pg = &h->pages[i];
    if (pg && pg->body.len) {
        bool metrics = !strcmp(path, "/metrics");
        gw_buf_printf(&c->out,
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      metrics ? "text/plain; version=0.0.4" : "application/json", pg->body.len);
        gw_buf_append(&c->out, pg->body.data, pg->body.len);
    }
    pthread_mutex_unlock(&h->mu);
    if (!c->out.len)
        gw_buf_puts(&c->out, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                             "Content-Length: 22\r\nConnection: close\r\n\r\n"
                             "{\"error\":\"not_found\"}\n");
}

static void drop(conn_t *c)
{
    close(c->fd);
    gw_buf_free(&c->out);
    c->fd = -1;
}

/* Reads what has come; answers once the headers are complete (or too long). */
static void on_readable(cp_httpd_t *h, conn_t *c)
{
    ssize_t n = recv(c->fd, c->req + c->rlen, sizeof c->req - 1 - c->rlen, 0);
    if (n <= 0) {
        drop(c);
        return;
    }
    c->rlen += (size_t)n;
    c->req[c->rlen] = '\0';
    if (strstr(c->req, "\r\n\r\n") || c->rlen == sizeof c->req - 1) build_response(h, c);
}

static void on_writable(conn_t *c)
{
    ssize_t w = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
    if (w > 0) c->sent += (size_t)w;
    if (w <= 0 || c->sent == c->out.len) drop(c);
}

/* A free slot, else the one that has waited longest without a complete request (idle
 * sockets cannot starve a scraper: each newcomer pushes the oldest idler out), else none
 * (every slot is sending an answer, which ends soon). */
static conn_t *slot_for_new(conn_t *conns)
{
    conn_t *idle = NULL;
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].fd < 0) return &conns[i];
        if (!conns[i].out.len && (!idle || conns[i].until < idle->until)) idle = &conns[i];
    }
    if (idle) drop(idle);
    return idle;
}

static void accept_all(cp_httpd_t *h, conn_t *conns)
{
    int fd;
    while ((fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        conn_t *c = slot_for_new(conns);
        if (!c) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->until = mono_ms() + CONN_TIMEOUT_MS;
        c->rlen = c->sent = 0;
    }
}

static void *serve(void *arg)
{
    cp_httpd_t *h = arg;
    conn_t conns[MAX_CONNS];
    struct pollfd p[MAX_CONNS + 1];
    int idx[MAX_CONNS + 1];
    for (int i = 0; i < MAX_CONNS; i++) {
        conns[i].fd = -1;
        conns[i].out = (gw_buf_t)GW_BUF_INIT;
    }
    while (!atomic_load(&h->stop)) {
        int n = 0;
        p[n++] = (struct pollfd){h->fd, POLLIN, 0};
        int64_t now = mono_ms();
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i].fd < 0) continue;
            if (now > conns[i].until) {
                drop(&conns[i]);
                continue;
            }
            idx[n] = i;
            p[n++] = (struct pollfd){conns[i].fd, conns[i].out.len ? POLLOUT : POLLIN, 0};
        }
        if (poll(p, (nfds_t)n, 100) <= 0) continue;
        for (int k = 1; k < n; k++) {
            conn_t *c = &conns[idx[k]];
            if (c->fd < 0 || !p[k].revents) continue;
            if (p[k].revents & (POLLERR | POLLHUP | POLLNVAL))
                drop(c);
            else if (c->out.len)
                on_writable(c);
            else
                on_readable(h, c);
        }
        /* After the others: a slot reused here must not see its previous socket's events. */
        if (p[0].revents & POLLIN) accept_all(h, conns);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0) drop(&conns[i]);
    return NULL;
}

cp_httpd_t *cp_httpd_start(const char *listen_addr, char *err, size_t errlen)
{
    char host[64];
    int port;
    const char *colon = strrchr(listen_addr, ':');
    if (!colon || (size_t)(colon - listen_addr) >= sizeof host ||
        sscanf(colon + 1, "%d", &port) != 1) {
        snprintf(err, errlen, "invalid CONTROL_METRICS_LISTEN: expected host:port");
        return NULL;
    }
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        snprintf(err, errlen, "invalid CONTROL_METRICS_LISTEN: '%s' is not an IPv4 address", host);
        return NULL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    cp_httpd_t *h = gw_xcalloc(1, sizeof *h);
    h->fd = fd;
    h->port = ntohs(a.sin_port);
    pthread_mutex_init(&h->mu, NULL);
    snprintf(h->pages[0].path, sizeof h->pages[0].path, "/metrics");
    snprintf(h->pages[1].path, sizeof h->pages[1].path, "/health");
    pthread_create(&h->thread, NULL, serve, h);
    return h;
}

void cp_httpd_publish(cp_httpd_t *h, const char *path, const char *body, size_t len)
{
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < 2; i++) {
        if (strcmp(h->pages[i].path, path)) continue;
        h->pages[i].body.len = 0;
        gw_buf_append(&h->pages[i].body, body, len);
    }
    pthread_mutex_unlock(&h->mu);
}

int cp_httpd_port(const cp_httpd_t *h)
{
    return h->port;
}

void cp_httpd_stop(cp_httpd_t *h)
{
    if (!h) return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    for (int i = 0; i < 2; i++) gw_buf_free(&h->pages[i].body);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

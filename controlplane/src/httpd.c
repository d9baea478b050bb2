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

static void respond(cp_httpd_t *h, int c)
{
    char req[1024];
    ssize_t n = 0;
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 2000) == 1) n = recv(c, req, sizeof req - 1, 0);
    if (n <= 0) return;
    req[n] = '\0';
    char path[64] = "";
    if (sscanf(req, "GET %63s", path) != 1) {
        const char *bad = "HTTP/1.0 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
        send(c, bad, strlen(bad), MSG_NOSIGNAL);
        return;
    }
    gw_buf_t out = GW_BUF_INIT;
    pthread_mutex_lock(&h->mu);
    const page_t *pg = NULL;
    for (int i = 0; i < 2; i++)
        if (!strcmp(h->pages[i].path, path)) pg = &h->pages[i];
    if (pg && pg->body.len) {
        bool metrics = !strcmp(path, "/metrics");
        gw_buf_printf(&out,
                      "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n\r\n",
                      metrics ? "text/plain; version=0.0.4" : "application/json", pg->body.len);
        gw_buf_append(&out, pg->body.data, pg->body.len);
    }
    pthread_mutex_unlock(&h->mu);
    if (!out.len)
        gw_buf_puts(&out, "HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n"
                          "Content-Length: 22\r\n\r\n{\"error\":\"not_found\"}\n");
    for (size_t off = 0; off < out.len;) {
        ssize_t w = send(c, out.data + off, out.len - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    gw_buf_free(&out);
}

static void *serve(void *arg)
{
    cp_httpd_t *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {h->fd, POLLIN, 0};
        if (poll(&p, 1, 200) != 1) continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0) continue;
        respond(h, c);
        close(c);
    }
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
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
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

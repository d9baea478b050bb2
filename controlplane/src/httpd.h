/* httpd.h - a tiny HTTP endpoint for wsgw-control's /metrics and /health, on its own
 * thread. The gRPC thread publishes rendered bodies with cp_httpd_publish(); the HTTP
 * thread only ever serves the latest copy, under a mutex, so the two never share state.
 * Up to 64 connections are served at once, each given 2 s; one request per connection. */
#ifndef CP_HTTPD_H
#define CP_HTTPD_H

#include <stddef.h>

typedef struct cp_httpd cp_httpd_t;

/* Listens on host:port; NULL with a reason in err when it cannot. */
cp_httpd_t *cp_httpd_start(const char *listen, char *err, size_t errlen);
/* Replaces the body served at path ("/metrics", "/health"). */
void cp_httpd_publish(cp_httpd_t *h, const char *path, const char *body, size_t len);
void cp_httpd_stop(cp_httpd_t *h);
int cp_httpd_port(const cp_httpd_t *h);

#endif

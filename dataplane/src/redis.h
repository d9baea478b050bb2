/* redis.h - the node's one Redis subscriber connection (hiredis async on libuv).
 *
 * It connects, authenticates and subscribes to a private sentinel channel
 * (__wsgw:node:<id>, exact, so it costs nobody's PUBLISH anything); the link counts as
 * up only once Redis has answered that, and SUBSCRIBE to it again probes the link every
 * ping interval (silent for three: dead). It reconnects with capped, jittered
 * exponential backoff; a refused connect is noticed at once (redis_uv.h). Every
 * (un)subscribe confirmation and message is handed to the callbacks; the hub decides
 * what to do.
 *
 * Ownership: gw_redis_new() returns a link owned by the caller; gw_redis_close() starts
 * an asynchronous close and frees the link once its libuv handles are closed.
 * Payload pointers handed to callbacks are valid only during the callback.
 */
#ifndef GW_REDIS_H
#define GW_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct {
    char *host;
    int port;
    char *user;     /* NULL unless the URL names one (ACL users) */
    char *password; /* NULL when the URL has none */
    int db;
} gw_redis_url_t;

/* Parses redis://[[user]:password@]host[:port][/db]. Returns 0, or -1 with a reason
 * (which never contains the password). Free with gw_redis_url_free(). */
int gw_redis_url_parse(const char *url, gw_redis_url_t *out, const char **why);
void gw_redis_url_free(gw_redis_url_t *u);

typedef struct {
    void (*message)(void *ud, const char *chan, size_t chlen, const char *pattern, size_t plen,
                    const char *data, size_t dlen);
    void (*confirm)(void *ud, bool subscribe, bool pattern, const char *name, size_t len);
    void (*up)(void *ud);
    void (*down)(void *ud);
} gw_redis_cbs_t;

typedef struct {
    long connect_timeout_ms;
    long backoff_min_ms;
    long backoff_max_ms;
    long ping_interval_ms;
    const char *sentinel; /* private exact channel kept subscribed */
} gw_redis_opts_t;

typedef struct gw_redis gw_redis_t;

/* Takes ownership of url's strings. Starts connecting at once. */
gw_redis_t *gw_redis_new(uv_loop_t *loop, gw_redis_url_t *url, const gw_redis_opts_t *opts,
                         const gw_redis_cbs_t *cbs, void *ud);
void gw_redis_close(gw_redis_t *r);

bool gw_redis_is_up(const gw_redis_t *r);
uint64_t gw_redis_reconnects(const gw_redis_t *r);

/* Sends (P)SUBSCRIBE / (P)UNSUBSCRIBE. Returns -1 when the link is not up. */
int gw_redis_cmd(gw_redis_t *r, bool subscribe, bool pattern, const char *const *names,
                 const size_t *lens, size_t n);

#endif

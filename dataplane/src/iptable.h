/* iptable.h - what each client address holds on this node: WebSocket connections
 * (MAX_CONNECTIONS_PER_IP), accepted sockets that have not upgraded yet
 * (MAX_HANDSHAKES_PER_IP), and its failed authentications (MAX_AUTH_FAILURES_PER_IP),
 * so that one address cannot take the node's connections, its handshake header pool, or
 * guess credentials at the speed of the network.
 *
 * A hash table of entries keyed by the address text, grown as addresses come (never a
 * fixed number of buckets). An entry lives while it counts anything, and while its
 * failures are remembered (hold_until_us) unless the table is over GW_IPTABLE_MAX
 * entries: then a wide attack from many addresses costs bounded memory.
 *
 * Ownership: the table owns its entries. gw_ip_get() returns an entry the caller may
 * keep while it holds a count in it; gw_ip_put() frees it once nothing keeps it.
 */
#ifndef GW_IPTABLE_H
#define GW_IPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

#define GW_IP_TEXT_MAX 48     /* INET6_ADDRSTRLEN, rounded up */
#define GW_IPTABLE_MAX 100000 /* entries kept for their memory of failures at most */

typedef struct gw_ipent {
    struct gw_ipent *next;
    uint32_t hash;
    uint32_t conns;         /* WebSocket connections */
    uint32_t pending;       /* accepted sockets not (yet) WebSocket connections */
    gw_bucket_t authfail;   /* failed authentications it may still make */
    uint64_t hold_until_us; /* keep the entry for its failures until then */
    uint32_t fail_epoch;    /* the log summary interval of its last failure ... */
    uint32_t fail_count;    /* ... and its failures in it */
    char ip[GW_IP_TEXT_MAX];
} gw_ipent_t;

typedef struct gw_iptable gw_iptable_t;

gw_iptable_t *gw_iptable_new(void);
void gw_iptable_free(gw_iptable_t *t);

/* The entry of ip, created with zero counts when absent. */
gw_ipent_t *gw_ip_get(gw_iptable_t *t, const char *ip);

/* The entry of ip, or NULL. */
gw_ipent_t *gw_ip_find(gw_iptable_t *t, const char *ip);

/* Frees e when it counts nothing any more and holds no failures past now_us. */
void gw_ip_put(gw_iptable_t *t, gw_ipent_t *e, uint64_t now_us);

/* Frees every entry gw_ip_put() would (those kept for failures that are now forgotten). */
void gw_iptable_sweep(gw_iptable_t *t, uint64_t now_us);

size_t gw_iptable_size(const gw_iptable_t *t);

#endif

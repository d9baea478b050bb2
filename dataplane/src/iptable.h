/* iptable.h - what each client address holds on this node: WebSocket connections
 * (MAX_CONNECTIONS_PER_IP) and accepted sockets that have not upgraded yet
 * (MAX_HANDSHAKES_PER_IP), so that one address cannot take the node's connections or
 * its handshake header pool.
 *
 * A hash table of entries keyed by the address text, grown as addresses come (never a
 * fixed number of buckets). An entry lives while it counts anything.
 *
 * Ownership: the table owns its entries. gw_ip_get() returns an entry the caller may
 * keep while it holds a count in it; gw_ip_put() frees it once every count is zero.
 */
#ifndef GW_IPTABLE_H
#define GW_IPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define GW_IP_TEXT_MAX 48 /* INET6_ADDRSTRLEN, rounded up */

typedef struct gw_ipent {
    struct gw_ipent *next;
    uint32_t hash;
    uint32_t conns;   /* WebSocket connections */
    uint32_t pending; /* accepted sockets not (yet) WebSocket connections */
    char ip[GW_IP_TEXT_MAX];
} gw_ipent_t;

typedef struct gw_iptable gw_iptable_t;

gw_iptable_t *gw_iptable_new(void);
void gw_iptable_free(gw_iptable_t *t);

/* The entry of ip, created with zero counts when absent. */
gw_ipent_t *gw_ip_get(gw_iptable_t *t, const char *ip);

/* The entry of ip, or NULL. */
gw_ipent_t *gw_ip_find(gw_iptable_t *t, const char *ip);

/* Frees e when it counts nothing any more. */
void gw_ip_put(gw_iptable_t *t, gw_ipent_t *e);

size_t gw_iptable_size(const gw_iptable_t *t);

#endif

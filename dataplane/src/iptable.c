#include "iptable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"

struct gw_iptable {
    gw_ipent_t **b;
    size_t cap, n; /* cap: a power of two; grown past one entry per bucket */
};

gw_iptable_t *gw_iptable_new(void)
{
    gw_iptable_t *t = gw_xcalloc(1, sizeof *t);
    t->cap = 64;
    t->b = gw_xcalloc(t->cap, sizeof *t->b);
    return t;
}

void gw_iptable_free(gw_iptable_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->cap; i++)
        for (gw_ipent_t *e = t->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->b);
    free(t);
}

static gw_ipent_t **slot(gw_iptable_t *t, const char *ip, uint32_t h)
{
    gw_ipent_t **pp = &t->b[h & (t->cap - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->ip, ip))) pp = &(*pp)->next;
    return pp;
}

static void grow(gw_iptable_t *t)
{
    size_t cap = t->cap * 2;
    gw_ipent_t **b = gw_xcalloc(cap, sizeof *b);
    for (size_t i = 0; i < t->cap; i++)
        for (gw_ipent_t *e = t->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (cap - 1)];
            b[e->hash & (cap - 1)] = e;
        }
    free(t->b);
    t->b = b;
    t->cap = cap;
}

gw_ipent_t *gw_ip_find(gw_iptable_t *t, const char *ip)
{
    return *slot(t, ip, gw_hash(ip, strlen(ip)));
}

gw_ipent_t *gw_ip_get(gw_iptable_t *t, const char *ip)
{
    uint32_t h = gw_hash(ip, strlen(ip));
    gw_ipent_t **pp = slot(t, ip, h);
    if (*pp) return *pp;
    if (t->n >= t->cap) {
        grow(t);
        pp = slot(t, ip, h);
    }
    gw_ipent_t *e = gw_xcalloc(1, sizeof *e);
    e->hash = h;
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    *pp = e;
    t->n++;
    return e;
}

static bool unused(const gw_iptable_t *t, const gw_ipent_t *e, uint64_t now_us)
{
    return !e->conns && !e->pending && (e->hold_until_us <= now_us || t->n > GW_IPTABLE_MAX);
}

void gw_ip_put(gw_iptable_t *t, gw_ipent_t *e, uint64_t now_us)
{
    if (!e || !unused(t, e, now_us)) return;
    gw_ipent_t **pp = slot(t, e->ip, e->hash);
    *pp = e->next;
    t->n--;
    free(e);
}

void gw_iptable_sweep(gw_iptable_t *t, uint64_t now_us)
{
    for (size_t i = 0; i < t->cap; i++)
        for (gw_ipent_t **pp = &t->b[i]; *pp;) {
            gw_ipent_t *e = *pp;
            if (unused(t, e, now_us)) {
                *pp = e->next;
                t->n--;
                free(e);
            } else {
                pp = &e->next;
            }
        }
}

size_t gw_iptable_size(const gw_iptable_t *t)
{
    return t->n;
}

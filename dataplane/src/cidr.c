#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static bool parse_one(const char *s, gw_cidr_t *c)
{
    char buf[64];
    if (strlen(s) >= sizeof buf) return false;
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return false;
    }
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || b < 0 || b > c->bits) return false;
        c->bits = (int)b;
    }
    return true;
}

int gw_cidr_parse_list(const char *list, gw_cidr_t **out, char *err, size_t errlen)
{
    char *copy = gw_xstrdup(list), *save = NULL;
    int n = 0, cap = 4;
    *out = gw_xcalloc((size_t)cap, sizeof **out);
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (n == cap) *out = gw_xrealloc(*out, (size_t)(cap *= 2) * sizeof **out);
        if (!parse_one(t, &(*out)[n])) {
            snprintf(err, errlen, "'%.64s' is not an IP address or network", t);
            free(copy);
            free(*out);
            *out = NULL;
            return -1;
        }
        n++;
    }
    free(copy);
    return n;
}

bool gw_cidr_contains(const gw_cidr_t *nets, int n, const char *ip)
{
    gw_cidr_t a;
    if (!parse_one(ip, &a)) return false;
    for (int i = 0; i < n; i++) {
        const gw_cidr_t *c = &nets[i];
        if (c->family != a.family) continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(c->addr, a.addr, (size_t)full)) continue;
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if (rest && (c->addr[full] & mask) != (a.addr[full] & mask)) continue;
        return true;
    }
    return false;
}

int gw_xff_client(const char *xff, size_t len, const gw_cidr_t *trusted, int n, char *out,
                  size_t outlen)
{
    const char *end = xff + len;
    if (outlen) out[0] = '\0'; /* an empty header names nobody */
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',') start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        char ip[64];
        unsigned char bin[16];
        size_t l = (size_t)(b - a);
        if (l == 0 || l >= sizeof ip || l >= outlen) return -1;
        memcpy(ip, a, l);
        ip[l] = '\0';
        if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1) return -1;
        memcpy(out, ip, l + 1);
        if (!gw_cidr_contains(trusted, n, ip)) return 0;
        end = start > xff ? start - 1 : xff; /* a proxy: the client is further left */
    }
    return out[0] ? 0 : -1; /* only proxies: the leftmost one stands for the client */
}

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

/* Fuzz target: the text parsers of request headers and settings that a peer or an
 * operator controls: X-Forwarded-For (gw_xff_client), origin lists and matching, CIDR
 * lists, Redis URLs. Properties: no crash, and what they accept is well formed: a client
 * address that inet_pton reads, origins that match themselves. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "origin.h"
#include "redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    static gw_cidr_t *trusted;
    static int ntrusted;
    if (!trusted) {
        char err[128];
        ntrusted = gw_cidr_parse_list("127.0.0.1, 10.0.0.0/8, fd00::/8", &trusted, err, sizeof err);
    }
    char ip[48];
    unsigned char bin[16];
    if (gw_xff_client((const char *)data, size, trusted, ntrusted, ip, sizeof ip) == 0 &&
        inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
        abort();

    char err[200];
    gw_origins_t o;
    if (gw_origins_parse(s, true, &o, err, sizeof err) == 0) {
        for (size_t i = 0; i < o.n; i++)
            if (!gw_origins_match(&o, o.v[i], strlen(o.v[i]))) abort();
        gw_origins_free(&o);
    }

    gw_cidr_t *nets;
    int n = gw_cidr_parse_list(s, &nets, err, sizeof err);
    if (n >= 0) {
        (void)gw_cidr_contains(nets, n, "10.1.2.3");
        free(nets);
    }

    gw_redis_url_t u;
    const char *why;
    if (gw_redis_url_parse(s, &u, &why) == 0) {
        if (!u.host || !u.host[0] || u.port < 1 || u.port > 65535) abort();
        gw_redis_url_free(&u);
    }
    free(s);
    return 0;
}

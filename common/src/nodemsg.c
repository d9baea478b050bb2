#include "nodemsg.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"

static int fail(char *err, size_t errlen, const char *field, const char *problem)
{
    snprintf(err, errlen, "%s: %s", field, problem);
    return -1;
}

static int ident_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("._:@/+%[]-", c));
}

static int word_check(const char *s, size_t max, int (*ok)(unsigned char), const char *field,
                      const char *charset, char *err, size_t errlen)
{
    size_t n = strnlen(s, max + 1);
    char problem[96];
    if (n > max) {
        snprintf(problem, sizeof problem, "longer than %zu bytes", max);
        return fail(err, errlen, field, problem);
    }
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i])) {
            snprintf(problem, sizeof problem, "byte %zu is outside %s", i, charset);
            return fail(err, errlen, field, problem);
        }
    return 0;
}

int gw_node_id_check(const char *id, char *err, size_t errlen)
{
    if (!id || !id[0]) return fail(err, errlen, "node_id", "required");
    return word_check(id, GW_NODE_ID_MAX, ident_byte, "node_id", "[A-Za-z0-9._:@/+%[]-]", err,
                      errlen);
}

static int build_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

int gw_node_hello_check(const Wsgw__Control__V1__NodeHello *h, char *err, size_t errlen)
{
    if (gw_node_id_check(h->node_id, err, errlen) < 0) return -1;
    if (word_check(h->address ? h->address : "", GW_NODE_ADDRESS_MAX, ident_byte, "address",
                   "[A-Za-z0-9._:@/+%[]-]", err, errlen) < 0 ||
        word_check(h->build_version ? h->build_version : "", GW_NODE_BUILD_MAX, build_byte,
                   "build_version", "printable ASCII without quotes", err, errlen) < 0 ||
        word_check(h->config_epoch ? h->config_epoch : "", GW_NODE_EPOCH_MAX, build_byte,
                   "config_epoch", "printable ASCII without quotes", err, errlen) < 0)
        return -1;
    if (h->config_digest.len != 0 && h->config_digest.len != 32)
        return fail(err, errlen, "config_digest", "not 32 bytes");
    return 0;
}

static int key_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':';
}

int gw_node_stats_check(const Wsgw__Control__V1__NodeStats *st, char *err, size_t errlen)
{
    if (st->n_counters > GW_STATS_MAX_COUNTERS) {
        char problem[64];
        snprintf(problem, sizeof problem, "more than %d", GW_STATS_MAX_COUNTERS);
        return fail(err, errlen, "counters", problem);
    }
    /* Each name once: an open-addressed set of indices, twice the maximum count. */
    uint16_t slot[2 * GW_STATS_MAX_COUNTERS];
    memset(slot, 0, sizeof slot);
    for (size_t i = 0; i < st->n_counters; i++) {
        const char *k = st->counters[i]->key;
        if (!k || !k[0]) return fail(err, errlen, "counters", "a name is empty");
        if (word_check(k, GW_STATS_KEY_MAX, key_byte, "counters", "[a-z0-9_.:]", err, errlen) < 0)
            return -1;
        size_t j = gw_hash(k, strlen(k)) % (2 * GW_STATS_MAX_COUNTERS);
        for (; slot[j]; j = (j + 1) % (2 * GW_STATS_MAX_COUNTERS))
            if (!strcmp(st->counters[slot[j] - 1]->key, k))
                return fail(err, errlen, "counters", "a name appears twice");
        slot[j] = (uint16_t)(i + 1);
    }
    return 0;
}

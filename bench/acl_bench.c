/* acl-bench - what one subscription check can cost: fresh hostile patterns (about 200
 * bytes, up to 8 wildcards, byte classes; never the same twice, so the verdict cache
 * never helps) checked against the built-in `user` role and against a role with deny
 * patterns. Prints the median, p99 and maximum time per check and the share denied
 * (by the ACL or for exceeding the work budget, GW_GLOB_BUDGET).
 *
 *   acl-bench [--checks N] [--seed S] [--json]
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "glob.h"

static uint32_t rng = 2463534242u;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* The shape of tests/e2e/test_bounds.py's and wsgw-bench's hostile patterns. */
static size_t hostile_pattern(char *p)
{
    static const char *const parts[] = {"a", "s", "e", "c",     "r",   "t",
                                        ":", "m", "?", "[a-z]", "[^:]"};
    static const char *const heads[] = {"market:", "indicators:", ""};
    size_t n = (size_t)sprintf(p, "%s", heads[rnd() % 3]);
    int wild = 0;
    while (n < 200) {
        const char *c = wild < 8 && rnd() % 100 < 15 ? "*" : parts[rnd() % 11];
        if (c[0] == '*' || c[0] == '?' || c[0] == '[') {
            if (wild == 8)
                c = "a";
            else
                wild++;
        }
        n += (size_t)sprintf(p + n, "%s", c);
    }
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *label, gw_acl_t *acl, int checks, bool json)
{
    uint64_t *t = malloc((size_t)checks * sizeof *t);
    int denied = 0;
    char p[512];
    for (int i = 0; i < checks; i++) {
        size_t n = hostile_pattern(p);
        uint64_t t0 = now_ns();
        denied += !gw_acl_allows(acl, p, n);
        t[i] = now_ns() - t0;
    }
    qsort(t, (size_t)checks, sizeof *t, cmp_u64);
    double p50 = (double)t[checks / 2] / 1000, p99 = (double)t[checks * 99 / 100] / 1000,
           max = (double)t[checks - 1] / 1000;
    if (json)
        printf("{\"role\":\"%s\",\"checks\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
               "\"denied\":%.3f,\"budget\":%d}\n",
               label, checks, p50, p99, max, (double)denied / checks, GW_GLOB_BUDGET);
    else
        printf("%-28s %d checks: p50 %.1f us, p99 %.1f us, max %.1f us; %.1f%% denied\n", label,
               checks, p50, p99, max, 100.0 * denied / checks);
    free(t);
}

int main(int argc, char **argv)
{
    int checks = 20000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--checks") && i + 1 < argc)
            checks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng = (uint32_t)strtoul(argv[++i], NULL, 10) | 1;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else {
            fprintf(stderr, "usage: acl-bench [--checks N] [--seed S] [--json]\n");
            return 2;
        }
    }
    if (checks < 100) checks = 100;
    gw_roles_t *builtin = gw_roles_default();
    static const char roles_json[] =
        "{\"roles\":[{\"name\":\"user\",\"allow\":[\"market:*\",\"engine:*\",\"indicators:*\"],"
        "\"deny\":[\"engine:decision:*\",\"market:*:internal:*\",\"*secret*\"]}]}";
    char err[256];
    gw_roles_t *denying = gw_roles_parse(roles_json, sizeof roles_json - 1, err, sizeof err);
    if (!denying) {
        fprintf(stderr, "acl-bench: %s\n", err);
        return 1;
    }
    run("built-in user", gw_roles_find(builtin, "user")->acl, checks, json);
    run("user with 3 deny patterns", gw_roles_find(denying, "user")->acl, checks, json);
    gw_roles_unref(builtin);
    gw_roles_unref(denying);
    return 0;
}

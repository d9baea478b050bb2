/* ratelimit.h - a token bucket: `rate` tokens per second, at most `burst` saved up.
 * Time is passed in, so tests drive it with a fake clock. */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    double tokens;
    uint64_t last_us;
    bool started;
} gw_bucket_t;

/* Takes one token if there is one. The bucket starts full. */
bool gw_bucket_take(gw_bucket_t *b, double rate, double burst, uint64_t now_us);

/* Tokens available now, without taking any (refills first; the bucket starts full). */
double gw_bucket_level(gw_bucket_t *b, double rate, double burst, uint64_t now_us);

/* Takes n more tokens for what was just allowed, going into debt down to -burst: the
 * next frames wait until it is paid back. */
void gw_bucket_charge(gw_bucket_t *b, double n, double burst);

#endif

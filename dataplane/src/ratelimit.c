#include "ratelimit.h"

double gw_bucket_level(gw_bucket_t *b, double rate, double burst, uint64_t now_us)
{
    if (!b->started) {
        b->started = true;
        b->tokens = burst;
        b->last_us = now_us;
    }
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * rate / 1e6;
        if (b->tokens > burst) b->tokens = burst;
        b->last_us = now_us;
    }
    return b->tokens;
}

bool gw_bucket_take(gw_bucket_t *b, double rate, double burst, uint64_t now_us)
{
    if (gw_bucket_level(b, rate, burst, now_us) < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}

void gw_bucket_charge(gw_bucket_t *b, double n, double burst)
{
    b->tokens -= n;
    if (b->tokens < -burst) b->tokens = -burst;
}

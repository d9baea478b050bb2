#include "clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t read_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t gw_mono_us(void)
{
    return read_us(CLOCK_MONOTONIC);
}

uint64_t gw_unix_us(void)
{
    return read_us(CLOCK_REALTIME);
}

int64_t gw_unix_s(void)
{
    return (int64_t)(gw_unix_us() / 1000000u);
}

char *gw_iso8601(uint64_t unix_us, char out[GW_ISO8601_LEN])
{
    time_t secs = (time_t)(unix_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* 19 bytes for any year a clock of this program can read (0..9999). */
    size_t n = strftime(out, GW_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n != 19) n = (size_t)snprintf(out, GW_ISO8601_LEN, "0000-01-01T00:00:00");
    snprintf(out + n, GW_ISO8601_LEN - n, ".%06u+00:00", (unsigned)(unix_us % 1000000u));
    return out;
}

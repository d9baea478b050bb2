#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int gw_log_level = GW_LOG_INFO;
static gw_log_format_t log_format = GW_LOG_TEXT;

const char *const gw_log_level_names[] = {"error", "warn", "notice", "info", "debug", NULL};
const char *const gw_log_format_names[] = {"text", "json", NULL};

void gw_log_setup(gw_log_level_t level, gw_log_format_t format)
{
    gw_log_level = (int)level;
    log_format = format;
}

/* JSON-escapes the detail so a line in JSON mode is always one valid object. */
static void put_json_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void gw_log_emit(gw_log_level_t level, const char *subsys, const char *event, const char *fmt, ...)
{
    char detail[1024];
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);

    /* One fprintf-family burst per line under the stdio lock keeps lines whole. */
    flockfile(stderr);
    if (log_format == GW_LOG_JSON) {
        fprintf(stderr,
                "{\"ts\":\"%s\",\"level\":\"%s\",\"sub\":\"%s\",\"event\":\"%s\",\"detail\":\"", ts,
                gw_log_level_names[level], subsys, event);
        put_json_escaped(stderr, detail);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s sub=%s event=%s%s%s\n", ts, gw_log_level_names[level],
                subsys, event, detail[0] ? " " : "", detail);
    }
    funlockfile(stderr);
}

#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Details carry peer-supplied strings (a node's id, a NACK's text, a client's channel):
 * at the sink every byte that could end the line or drive a terminal (C0 controls, DEL,
 * and anything not ASCII) is escaped, so no peer can forge a line or inject escape
 * sequences. JSON mode also escapes quotes and backslashes: a line is one valid object. */
static void put_escaped(FILE *f, const char *s, bool json)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (json && (c == '"' || c == '\\'))
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, json ? "\\u%04x" : "\\x%02x", c);
        else
            fputc(c, f);
    }
}

/* Per (subsystem, event) counters for the current second. Events are string literals:
 * their addresses identify them. A collision just shares a budget. Several threads log
 * (the control-plane link, gRPC's): the table is under a lock; lines are rare. */
#define RL_SLOTS 128
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const char *subsys, *event;
    int64_t second;
    unsigned lines, suppressed;
} rl[RL_SLOTS];

/* Returns false when the line is over budget; else how many were suppressed before. */
static bool rate_ok(const char *subsys, const char *event, int64_t second, unsigned *suppressed)
{
    size_t h = ((uintptr_t)subsys * 31u + (uintptr_t)event) % RL_SLOTS;
    if (rl[h].subsys != subsys || rl[h].event != event) {
        rl[h].subsys = subsys;
        rl[h].event = event;
        rl[h].second = second;
        rl[h].lines = rl[h].suppressed = 0;
    }
    *suppressed = 0;
    if (rl[h].second != second) {
        *suppressed = rl[h].suppressed;
        rl[h].second = second;
        rl[h].lines = rl[h].suppressed = 0;
    }
    if (rl[h].lines >= GW_LOG_BURST) {
        rl[h].suppressed++;
        return false;
    }
    rl[h].lines++;
    return true;
}

void gw_log_emit(gw_log_level_t level, const char *subsys, const char *event, const char *fmt, ...)
{
    char detail[1024];
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &now);
    unsigned suppressed;
    pthread_mutex_lock(&rl_lock);
    bool ok = rate_ok(subsys, event, (int64_t)now.tv_sec, &suppressed);
    pthread_mutex_unlock(&rl_lock);
    if (!ok) return;

    va_start(ap, fmt);
    int dl = vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (suppressed && dl >= 0 && (size_t)dl < sizeof detail)
        snprintf(detail + dl, sizeof detail - (size_t)dl, "%ssuppressed=%u", dl ? " " : "",
                 suppressed);

    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);

    /* One fprintf-family burst per line under the stdio lock keeps lines whole. */
    flockfile(stderr);
    if (log_format == GW_LOG_JSON) {
        fprintf(stderr,
                "{\"ts\":\"%s\",\"level\":\"%s\",\"sub\":\"%s\",\"event\":\"%s\",\"detail\":\"", ts,
                gw_log_level_names[level], subsys, event);
        put_escaped(stderr, detail, true);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s sub=%s event=%s%s", ts, gw_log_level_names[level], subsys,
                event, detail[0] ? " " : "");
        put_escaped(stderr, detail, false);
        fputc('\n', stderr);
    }
    funlockfile(stderr);
}

/* log.h - one line per event, key=value text or JSON, level-gated before formatting.
 *
 * Every line carries a subsystem and an event name; the detail is a printf-style
 * "key=value ..." string. Nothing here allocates on a path where the level is off.
 * Never pass a credential to these functions.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdarg.h>

typedef enum {
    GW_LOG_ERROR = 0,
    GW_LOG_WARN = 1,
    GW_LOG_NOTICE = 2,
    GW_LOG_INFO = 3,
    GW_LOG_DEBUG = 4,
} gw_log_level_t;

typedef enum {
    GW_LOG_TEXT = 0,
    GW_LOG_JSON = 1,
} gw_log_format_t;

extern int gw_log_level; /* current threshold; lines above it are skipped */

#define GW_LOG_BURST 20 /* lines per second per (subsystem, event) */

/* Names of the levels and formats, indexed by value (NULL-terminated), for settings. */
extern const char *const gw_log_level_names[];
extern const char *const gw_log_format_names[];

void gw_log_setup(gw_log_level_t level, gw_log_format_t format);

/* Writes one line to stderr. `event` is a short identifier (no spaces). An event that
 * repeats is written at most GW_LOG_BURST times per second (per subsystem and event);
 * the first line after a quiet second says how many were suppressed (suppressed=N), so
 * a flood of failures costs bounded log volume and CPU but is never invisible. */
void gw_log_emit(gw_log_level_t level, const char *subsys, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define GW_LOG(level, subsys, event, ...)                                                          \
    do {                                                                                           \
        if ((int)(level) <= gw_log_level) gw_log_emit((level), (subsys), (event), __VA_ARGS__);    \
    } while (0)

#endif

/* clock.h - the process's clocks: monotonic time for timeouts and rates, wall time for
 * expiry and timestamps a client reads, and the ISO-8601 form the legacy dialect uses.
 * Stateless; safe from any thread.
 */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds: never jumps, meaningless across processes. */
uint64_t gw_mono_us(void);

/* CLOCK_REALTIME in microseconds and in seconds since the Unix epoch. */
uint64_t gw_unix_us(void);
int64_t gw_unix_s(void);

/* Bytes gw_iso8601() writes, NUL included: "2026-12-01T02:55:35.310644+00:00". */
#define GW_ISO8601_LEN 33

/* Formats a wall-clock time (microseconds since the epoch) as UTC with microseconds and
 * an explicit offset, the way Python's datetime.isoformat() does. Returns out. */
char *gw_iso8601(uint64_t unix_us, char out[GW_ISO8601_LEN]);

#endif

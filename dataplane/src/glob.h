/* glob.h - Redis-compatible glob patterns for channel names.
 *
 * Semantics follow Redis' stringmatchlen(): `*` any run, `?` one byte, `[...]` a class
 * with `^` negation and `a-z` ranges, `\` escapes the next byte. The matcher runs in
 * O(len(pattern) * len(string)) worst case (no exponential backtracking).
 */
#ifndef GW_GLOB_H
#define GW_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* True when s contains a glob metacharacter (`*`, `?` or `[`), i.e. it subscribes with
 * PSUBSCRIBE semantics. */
bool gw_glob_is_pattern(const char *s, size_t len);

/* True when pattern p is well formed: every `[` has a closing `]` and no `\` is last. */
bool gw_glob_well_formed(const char *p, size_t plen);

bool gw_glob_match(const char *p, size_t plen, const char *s, size_t slen);

#endif

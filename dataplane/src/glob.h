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

/* Glob algebra, for ACLs. Both work on the languages of the patterns over all byte
 * strings, so they never claim more than holds.
 *
 * gw_glob_contains(): 1 when every string b matches is also matched by a, 0 when some
 * string matched by b is not matched by a.
 * gw_glob_intersects(): 1 when some string matches both, 0 when none does.
 * Both return -1 when a pattern is malformed, longer than GW_GLOB_ALGEBRA_MAX bytes, or
 * the check would exceed its state budget: callers must treat -1 as "deny". */
#define GW_GLOB_ALGEBRA_MAX 256
int gw_glob_contains(const char *a, size_t alen, const char *b, size_t blen);
int gw_glob_intersects(const char *a, size_t alen, const char *b, size_t blen);

/* Work budget, in steps (one active NFA position advanced over one byte class, about
 * 10 ns): the CPU a check may take, whatever the patterns (the state budget bounds only
 * its memory). The patterns clients use cost 4,000 to 7,000 against a role with deny
 * patterns; GW_GLOB_BUDGET is about 0.2 ms. The _in variants spend from a budget shared
 * by every call of one check and return -1 once it is spent; the plain ones have
 * GW_GLOB_BUDGET each. */
#define GW_GLOB_BUDGET 20000
typedef struct {
    long left;
} gw_glob_budget_t;
int gw_glob_contains_in(gw_glob_budget_t *bud, const char *a, size_t alen, const char *b,
                        size_t blen);
int gw_glob_intersects_in(gw_glob_budget_t *bud, const char *a, size_t alen, const char *b,
                          size_t blen);

#endif

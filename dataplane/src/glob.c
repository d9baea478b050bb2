#include "glob.h"

#include <string.h>

bool gw_glob_is_pattern(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '*' || s[i] == '?' || s[i] == '[') return true;
    return false;
}

/* Scans classes exactly as class_match() consumes them: a range takes three bytes even
 * when its end is `]`, so "[a-]" is unclosed, as Redis reads it. */
bool gw_glob_well_formed(const char *p, size_t plen)
{
    for (size_t i = 0; i < plen; i++) {
        if (p[i] == '\\') {
            if (++i >= plen) return false;
        } else if (p[i] == '[') {
            i++;
            if (i < plen && p[i] == '^') i++;
            for (;;) {
                if (i >= plen) return false;
                if (p[i] == '\\') {
                    if (i + 1 >= plen) return false;
                    i += 2;
                } else if (p[i] == ']') {
                    break;
                } else if (i + 2 < plen && p[i + 1] == '-') {
                    i += 3;
                } else {
                    i++;
                }
            }
        }
    }
    return true;
}

/* Matches one byte c against the class starting just after `[`; *consumed receives the
 * class length including the closing `]` (or the rest of the pattern when unclosed,
 * as Redis does). */
static bool class_match(const char *p, size_t plen, unsigned char c, size_t *consumed)
{
    size_t i = 0;
    bool negate = false, match = false;

    if (i < plen && p[i] == '^') {
        negate = true;
        i++;
    }
    for (; i < plen; i++) {
        if (p[i] == '\\' && i + 1 < plen) {
            i++;
            if ((unsigned char)p[i] == c) match = true;
        } else if (p[i] == ']') {
            break;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            unsigned char lo = (unsigned char)p[i], hi = (unsigned char)p[i + 2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if (c >= lo && c <= hi) match = true;
            i += 2;
        } else if ((unsigned char)p[i] == c) {
            match = true;
        }
    }
    *consumed = (i < plen) ? i + 1 : i; /* past `]` */
    return negate ? !match : match;
}

/* Iterative matcher: remembers only the last `*`. That is exact for globs because every
 * other token matches exactly one byte, so retrying from the latest star subsumes
 * retrying from any earlier one. */
bool gw_glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0;
    size_t star_p = (size_t)-1, star_s = 0;

    while (si < slen) {
        if (pi < plen) {
            char pc = p[pi];
            if (pc == '*') {
                while (pi < plen && p[pi] == '*') pi++;
                if (pi == plen) return true;
                star_p = pi;
                star_s = si;
                continue;
            }
            if (pc == '?') {
                pi++;
                si++;
                continue;
            }
            if (pc == '[') {
                size_t used;
                if (class_match(p + pi + 1, plen - pi - 1, (unsigned char)s[si], &used)) {
                    pi += 1 + used;
                    si++;
                    continue;
                }
            } else {
                size_t adv = 1;
                if (pc == '\\' && pi + 1 < plen) {
                    pc = p[pi + 1];
                    adv = 2;
                }
                if (pc == s[si]) {
                    pi += adv;
                    si++;
                    continue;
                }
            }
        }
        if (star_p == (size_t)-1) return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*') pi++;
    return pi == plen;
}

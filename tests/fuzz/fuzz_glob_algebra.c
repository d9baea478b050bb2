/* Fuzz target: the glob algebra behind pattern ACLs. The input is two patterns split at
 * the first NUL (or the middle). Properties that must hold for any well-formed pair:
 * a pattern contains itself; intersection is symmetric; containment implies
 * intersection for a pattern that matches something; and any string the matcher
 * builds from the pattern that both match agrees with containment. Never a hang:
 * the algebra has a state budget. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"

/* A string the pattern surely matches: stars and classes replaced by their cheapest
 * member where that is easy; returns false when it cannot tell. */
static bool witness(const char *p, size_t n, char *out, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '*') continue;
        if (p[i] == '?') {
            out[o++] = 'x';
        } else if (p[i] == '\\' && i + 1 < n) {
            out[o++] = p[++i];
        } else if (p[i] == '[') {
            return false;
        } else {
            out[o++] = p[i];
        }
    }
    *len = o;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * GW_GLOB_ALGEBRA_MAX) return 0;
    const char *d = (const char *)data;
    const char *nul = memchr(d, '\0', size);
    size_t alen = nul ? (size_t)(nul - d) : size / 2;
    const char *b = d + alen + (nul ? 1 : 0);
    size_t blen = size - (size_t)(b - d);

    int c = gw_glob_contains(d, alen, b, blen);
    int x = gw_glob_intersects(d, alen, b, blen);
    int y = gw_glob_intersects(b, blen, d, alen);
    bool wa = gw_glob_well_formed(d, alen) && alen <= GW_GLOB_ALGEBRA_MAX;
    bool wb = gw_glob_well_formed(b, blen) && blen <= GW_GLOB_ALGEBRA_MAX;
    if (!wa || !wb) {
        if (c != -1 || x != -1) abort(); /* malformed input must be refused */
        return 0;
    }
    if (x != -1 && y != -1 && x != y) abort();
    if (gw_glob_contains(d, alen, d, alen) == 0) abort();

    char w[2 * GW_GLOB_ALGEBRA_MAX + 2];
    size_t wl;
    if (witness(b, blen, w, &wl) && gw_glob_match(b, blen, w, wl)) {
        bool in_a = gw_glob_match(d, alen, w, wl);
        if (c == 1 && !in_a) abort(); /* contained, yet a string of b escapes a */
        if (in_a && x == 0) abort();  /* both match w, yet "no intersection" */
        if (x == 0 && c == 1) abort();
    }
    return 0;
}

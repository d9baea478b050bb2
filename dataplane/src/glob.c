#include "glob.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

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

/*------------------------------------------------------------------------------
 * Glob algebra: both questions are answered by a breadth-first search over pairs of
 * NFA state sets, one NFA per pattern. The 256 input bytes are first grouped into
 * classes that every token of both patterns treats alike, so the search steps once
 * per class, not once per byte. */

#define NPOS         (GW_GLOB_ALGEBRA_MAX + 1)
#define WORDS        ((NPOS + 63) / 64)
#define STATE_BUDGET 4096 /* bounds the memory of a check; GW_GLOB_BUDGET bounds its time */

typedef struct {
    bool star;
    uint64_t set[4]; /* bytes this token accepts (not used for stars) */
} gtok_t;

typedef struct {
    gtok_t tok[GW_GLOB_ALGEBRA_MAX];
    size_t n;
    uint64_t universal[WORDS]; /* positions from which every continuation is accepted */
    uint64_t feasible[WORDS];  /* positions from which some continuation is accepted */
} gprog_t;

typedef struct {
    uint64_t a[WORDS], b[WORDS];
} gpair_t;

static void set_add(uint64_t *set, unsigned c)
{
    set[c >> 6] |= 1ull << (c & 63);
}

static bool set_has(const uint64_t *set, unsigned c)
{
    return set[c >> 6] >> (c & 63) & 1;
}

/* Mirrors class_match(): negation, ranges (swapped when reversed), escapes. */
static size_t compile_class(const char *p, size_t plen, uint64_t *set)
{
    uint64_t acc[4] = {0, 0, 0, 0};
    size_t i = 0;
    bool negate = false;
    if (i < plen && p[i] == '^') {
        negate = true;
        i++;
    }
    for (; i < plen; i++) {
        if (p[i] == '\\' && i + 1 < plen) {
            set_add(acc, (unsigned char)p[++i]);
        } else if (p[i] == ']') {
            break;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            unsigned lo = (unsigned char)p[i], hi = (unsigned char)p[i + 2];
            if (lo > hi) {
                unsigned t = lo;
                lo = hi;
                hi = t;
            }
            for (unsigned c = lo; c <= hi; c++) set_add(acc, c);
            i += 2;
        } else {
            set_add(acc, (unsigned char)p[i]);
        }
    }
    for (int w = 0; w < 4; w++) set[w] = negate ? ~acc[w] : acc[w];
    return i + 1; /* past `]` */
}

static int compile(const char *p, size_t plen, gprog_t *g)
{
    if (plen > GW_GLOB_ALGEBRA_MAX || !gw_glob_well_formed(p, plen)) return -1;
    g->n = 0;
    for (size_t i = 0; i < plen;) {
        gtok_t *t = &g->tok[g->n];
        memset(t, 0, sizeof *t);
        if (p[i] == '*') {
            while (i < plen && p[i] == '*') i++;
            t->star = true;
        } else if (p[i] == '?') {
            memset(t->set, 0xff, sizeof t->set);
            i++;
        } else if (p[i] == '[') {
            i += 1 + compile_class(p + i + 1, plen - i - 1, t->set);
        } else {
            if (p[i] == '\\') i++;
            set_add(t->set, (unsigned char)p[i++]);
        }
        g->n++;
    }
    /* A star with only stars after it: universal (the end itself is not: only the empty
     * continuation is accepted there). No empty class left: feasible. */
    memset(g->universal, 0, sizeof g->universal);
    memset(g->feasible, 0, sizeof g->feasible);
    bool uni = true, feas = true;
    set_add(g->feasible, (unsigned)g->n);
    for (size_t i = g->n; i-- > 0;) {
        const gtok_t *t = &g->tok[i];
        uni = uni && t->star;
        feas = feas && (t->star || t->set[0] || t->set[1] || t->set[2] || t->set[3]);
        if (uni) set_add(g->universal, (unsigned)i);
        if (feas) set_add(g->feasible, (unsigned)i);
    }
    return 0;
}

static bool any_of(const uint64_t *s, const uint64_t *mask)
{
    for (int w = 0; w < WORDS; w++)
        if (s[w] & mask[w]) return true;
    return false;
}

/* Both walk only the positions in the set (a few, usually, however long the pattern),
 * in increasing order, and count them as work. */
static void closure(const gprog_t *g, uint64_t *s, long *work)
{
    for (unsigned w = 0; w < WORDS; w++) {
        uint64_t seen = 0, bits;
        while ((bits = s[w] & ~seen)) { /* a star adds the next position, maybe this word */
            unsigned b = (unsigned)__builtin_ctzll(bits), i = w * 64 + b;
            seen |= 1ull << b;
            (*work)++;
            if (i < g->n && g->tok[i].star) set_add(s, i + 1);
        }
    }
}

static bool step(const gprog_t *g, const uint64_t *s, unsigned c, uint64_t *out, long *work)
{
    bool any = false;
    memset(out, 0, WORDS * sizeof *out);
    *work += WORDS;
    for (unsigned w = 0; w < WORDS; w++) {
        for (uint64_t bits = s[w]; bits; bits &= bits - 1) {
            unsigned i = w * 64 + (unsigned)__builtin_ctzll(bits);
            (*work)++;
            if (i >= g->n) continue; /* the accepting end consumes nothing */
            if (g->tok[i].star)
                set_add(out, i);
            else if (set_has(g->tok[i].set, c))
                set_add(out, i + 1);
            else
                continue;
            any = true;
        }
    }
    closure(g, out, work);
    return any;
}

/* Marks in sig[c] the tokens of g (numbered from k) that accept byte c, walking each
 * token's set bits: a literal costs one, only classes cost up to 256. Returns the work. */
static long mark_tokens(const gprog_t *g, size_t k,
                        uint64_t (*sig)[(2 * GW_GLOB_ALGEBRA_MAX + 63) / 64])
{
    long work = 0;
    for (size_t i = 0; i < g->n; i++, k++) {
        if (g->tok[i].star) continue;
        for (unsigned w = 0; w < 4; w++)
            for (uint64_t bits = g->tok[i].set[w]; bits; bits &= bits - 1, work++) {
                unsigned c = w * 64 + (unsigned)__builtin_ctzll(bits);
                sig[c][k >> 6] |= 1ull << (k & 63);
            }
    }
    return work;
}

/* One representative byte per class of bytes that no token of either program tells
 * apart. Returns the number of representatives; *work gets what it cost. Signatures
 * are hashed, so this is linear whatever the number of classes. */
static int byte_classes(const gprog_t *x, const gprog_t *y, unsigned char *reps, long *work)
{
    uint64_t sig[256][(2 * GW_GLOB_ALGEBRA_MAX + 63) / 64];
    int16_t slot[512]; /* open addressing over byte values; -1: empty */
    int nreps = 0;
    size_t words = (x->n + y->n + 63) / 64; /* at most the row: 2 * 256 tokens */
    for (unsigned c = 0; c < 256; c++) memset(sig[c], 0, words * sizeof(uint64_t));
    memset(slot, 0xff, sizeof slot);
    *work += mark_tokens(x, 0, sig) + mark_tokens(y, x->n, sig) + 256 * (long)words;
    for (unsigned c = 0; c < 256; c++) {
        uint64_t h = 0x9e3779b97f4a7c15ull;
        for (size_t w = 0; w < words; w++) h = (h ^ sig[c][w]) * 0x100000001b3ull;
        unsigned j = (unsigned)(h ^ h >> 29) & 511;
        while (slot[j] >= 0 && memcmp(sig[slot[j]], sig[c], words * sizeof(uint64_t)))
            j = (j + 1) & 511;
        if (slot[j] < 0) {
            slot[j] = (int16_t)c;
            reps[nreps++] = (unsigned char)c;
        }
    }
    return nreps;
}

typedef enum { Q_CONTAINS, Q_INTERSECTS } query_t;

/* Explores reachable pairs (state of a, state of b) while b is alive. Q_CONTAINS looks
 * for a pair where b accepts and a does not; Q_INTERSECTS for one where both accept. */
static uint32_t pair_hash(const gpair_t *p)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int w = 0; w < WORDS; w++) {
        h ^= p->a[w] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h ^= p->b[w] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    }
    return (uint32_t)(h ^ h >> 32);
}

static int explore(const gprog_t *a, const gprog_t *b, query_t q, gw_glob_budget_t *bud)
{
    unsigned char reps[256];
    long work = (long)(a->n + b->n); /* compiling them */
    int nreps = byte_classes(a, b, reps, &work);
    if ((bud->left -= work) < 0) return -1;
    work = 0;
    size_t cap = 1024, head = 0, len = 0, hcap = 4096;
    gpair_t *queue = malloc(cap * sizeof *queue);
    uint32_t *hash = calloc(hcap, sizeof *hash); /* 1-based indexes into queue */
    int result = q == Q_CONTAINS ? 1 : 0;
    if (!queue || !hash) goto Budget;

    gpair_t start;
    memset(&start, 0, sizeof start);
    set_add(start.a, 0);
    set_add(start.b, 0);
    closure(a, start.a, &work);
    closure(b, start.b, &work);
    queue[len++] = start;

    while (head < len) {
        gpair_t cur = queue[head++];
        bool acc_a = set_has(cur.a, (unsigned)a->n), acc_b = set_has(cur.b, (unsigned)b->n);
        if (q == Q_CONTAINS && acc_b && !acc_a) {
            result = 0;
            goto Exit;
        }
        if (q == Q_INTERSECTS && acc_a && acc_b) {
            result = 1;
            goto Exit;
        }
        /* Shortcuts: where a accepts every continuation, b has no counterexample left
         * (contains) and shares whatever b can still reach (intersects). */
        if (q == Q_CONTAINS && !any_of(cur.a, a->feasible) && any_of(cur.b, b->feasible)) {
            result = 0; /* a can no longer accept; b still can: a counterexample exists */
            goto Exit;
        }
        if (any_of(cur.a, a->universal)) {
            if (q == Q_CONTAINS) continue;
            if (any_of(cur.b, b->feasible)) {
                result = 1;
                goto Exit;
            }
        }
        if (q == Q_INTERSECTS && any_of(cur.b, b->universal) && any_of(cur.a, a->feasible)) {
            result = 1;
            goto Exit;
        }
        bud->left -= work;
        work = 0;
        if (bud->left < 0) goto Budget;
        for (int r = 0; r < nreps; r++) {
            gpair_t nx;
            bool live_a = step(a, cur.a, reps[r], nx.a, &work);
            if (!step(b, cur.b, reps[r], nx.b, &work)) continue; /* b is dead: nothing to find */
            if (q == Q_INTERSECTS && !live_a) continue;
            uint32_t h = pair_hash(&nx);
            size_t slot = h & (hcap - 1);
            bool dup = false;
            for (; hash[slot]; slot = (slot + 1) & (hcap - 1))
                if (!memcmp(&queue[hash[slot] - 1], &nx, sizeof nx)) {
                    dup = true;
                    break;
                }
            if (dup) continue;
            if (len >= STATE_BUDGET) goto Budget;
            if (len == cap) {
                gpair_t *nq = realloc(queue, (cap *= 2) * sizeof *queue);
                if (!nq) goto Budget;
                queue = nq;
            }
            queue[len++] = nx;
            hash[slot] = (uint32_t)len;
            if (len * 2 > hcap) { /* rehash */
                size_t ncap = hcap * 2;
                uint32_t *nh = calloc(ncap, sizeof *nh);
                if (!nh) goto Budget;
                for (size_t i = 0; i < len; i++) {
                    size_t sl = pair_hash(&queue[i]) & (ncap - 1);
                    while (nh[sl]) sl = (sl + 1) & (ncap - 1);
                    nh[sl] = (uint32_t)(i + 1);
                }
                free(hash);
                hash = nh;
                hcap = ncap;
            }
        }
    }
    goto Exit;
Budget:
    result = -1;
Exit:
    free(queue);
    free(hash);
    return result;
}

static int algebra(const char *a, size_t alen, const char *b, size_t blen, query_t q,
                   gw_glob_budget_t *bud)
{
    if (bud->left <= 0) return -1;
    gprog_t *ga = malloc(sizeof *ga), *gb = malloc(sizeof *gb);
    int rc = -1;
    if (ga && gb && compile(a, alen, ga) == 0 && compile(b, blen, gb) == 0)
        rc = explore(ga, gb, q, bud);
    free(ga);
    free(gb);
    return rc;
}

int gw_glob_contains_in(gw_glob_budget_t *bud, const char *a, size_t alen, const char *b,
                        size_t blen)
{
    return algebra(a, alen, b, blen, Q_CONTAINS, bud);
}

int gw_glob_intersects_in(gw_glob_budget_t *bud, const char *a, size_t alen, const char *b,
                          size_t blen)
{
    return algebra(a, alen, b, blen, Q_INTERSECTS, bud);
}

int gw_glob_contains(const char *a, size_t alen, const char *b, size_t blen)
{
    gw_glob_budget_t bud = {GW_GLOB_BUDGET};
    return algebra(a, alen, b, blen, Q_CONTAINS, &bud);
}

int gw_glob_intersects(const char *a, size_t alen, const char *b, size_t blen)
{
    gw_glob_budget_t bud = {GW_GLOB_BUDGET};
    return algebra(a, alen, b, blen, Q_INTERSECTS, &bud);
}

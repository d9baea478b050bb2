/* Glob containment and intersection: a table of pattern pairs, and a property test
 * against brute-force matching of every short string over a small alphabet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "glob.h"

typedef struct {
    const char *a, *b;
    int contains;   /* does a contain b? */
    int intersects; /* do a and b share a string? */
} pair_t;

static const pair_t pairs[] = {
    /* the user role must not be widened by patterns */
    {"market:tick:*", "market:tick:AAPL", 1, 1},
    {"market:tick:*", "market:tick:*", 1, 1},
    {"market:tick:*", "market:tick:A*", 1, 1},
    {"market:tick:*", "market:tick:?", 1, 1},
    {"market:tick:*", "market:tick:[A-Z]*", 1, 1},
    {"market:tick:*", "market:*", 0, 1},
    {"market:tick:*", "*", 0, 1},
    {"market:tick:*", "m*", 0, 1},
    {"market:tick:*", "[a-z]*", 0, 1},
    {"market:tick:*", "market:tick", 0, 0},
    {"market:tick:*", "market:tic?:*", 0, 1},
    {"market:tick:*", "market:tick[:]*", 1, 1},
    {"market:tick:*", "market:tick[:x]*", 0, 1},
    {"market:tick:*", "market:tick:\\*", 1, 1},
    {"market:tick:*", "*market:tick:*", 0, 1},
    {"indicators:*", "indicators:rsi:*", 1, 1},
    {"indicators:*", "indicators*", 0, 1},
    {"indicators:*", "indicator?:*", 0, 1},
    {"engine:signal:*", "engine:*", 0, 1},
    {"engine:signal:*", "engine:[s]ignal:*", 1, 1},
    {"engine:signal:*", "engine:[^d]*", 0, 1},
    /* deny patterns: intersection */
    {"engine:decision:*", "*", 0, 1},
    {"engine:decision:*", "m*", 0, 0},
    {"engine:decision:*", "e*", 0, 1},
    {"engine:decision:*", "[a-z]*", 0, 1},
    {"engine:decision:*", "engine:[^d]*", 0, 0},
    {"engine:decision:*", "engine:signal:*", 0, 0},
    {"engine:decision:*", "engine:?ecision:x", 0, 1},
    {"engine:decision:*", "*:decision:*", 0, 1},
    {"engine:decision:*", "*n", 0, 1},
    {"engine:decision:*", "engine:decision", 0, 0},
    {"engine:decision:*", "[^e]*", 0, 0},
    /* basics */
    {"*", "*", 1, 1},
    {"*", "", 1, 1},
    {"*", "anything", 1, 1},
    {"", "", 1, 1},
    {"", "*", 0, 1},
    {"", "a", 0, 0},
    {"a", "a", 1, 1},
    {"a", "b", 0, 0},
    {"?", "a", 1, 1},
    {"?", "[ab]", 1, 1},
    {"?", "??", 0, 0},
    {"?", "*", 0, 1},
    {"??", "?*", 0, 1},
    {"?*", "??", 1, 1},
    {"a*", "ab*", 1, 1},
    {"ab*", "a*", 0, 1},
    {"*b", "*ab", 1, 1},
    {"*ab", "*b", 0, 1},
    {"a*b", "a*c*b", 1, 1},
    {"a*c*b", "a*b", 0, 1},
    {"*a*", "*a*a*", 1, 1},
    {"*a*a*", "*a*", 0, 1},
    {"[a-c]", "b", 1, 1},
    {"[a-c]", "[ab]", 1, 1},
    {"[ab]", "[a-c]", 0, 1},
    {"[^a]", "b", 1, 1},
    {"[^a]", "a", 0, 0},
    {"[^a]", "[^ab]", 1, 1},
    {"[^ab]", "[^a]", 0, 1},
    {"[a-z]*", "abc", 1, 1},
    {"[a-z]*", "Abc", 0, 0},
    {"[z-a]", "m", 1, 1},
    {"\\?", "?", 0, 1},
    {"\\?", "a", 0, 0},
    {"?", "\\?", 1, 1},
    {"a\\*b", "a*b", 0, 1},
    {"a*b", "a\\*b", 1, 1},
    {"x*", "y*", 0, 0},
    {"*x", "*y", 0, 0},
    {"*x*", "*y*", 0, 1},
};

static void test_table(void **state)
{
    (void)state;
    size_t n = sizeof pairs / sizeof pairs[0];
    assert_true(n >= 60);
    for (size_t i = 0; i < n; i++) {
        const pair_t *p = &pairs[i];
        int c = gw_glob_contains(p->a, strlen(p->a), p->b, strlen(p->b));
        int x = gw_glob_intersects(p->a, strlen(p->a), p->b, strlen(p->b));
        if (c != p->contains) fail_msg("contains('%s', '%s') = %d", p->a, p->b, c);
        if (x != p->intersects) fail_msg("intersects('%s', '%s') = %d", p->a, p->b, x);
        /* intersection is symmetric */
        if (gw_glob_intersects(p->b, strlen(p->b), p->a, strlen(p->a)) != x)
            fail_msg("intersects not symmetric for '%s', '%s'", p->a, p->b);
    }
}

static void test_malformed_and_budget(void **state)
{
    (void)state;
    assert_int_equal(gw_glob_contains("[ab", 3, "a", 1), -1);
    assert_int_equal(gw_glob_intersects("a", 1, "x\\", 2), -1);
    char big[300];
    memset(big, 'a', sizeof big);
    assert_int_equal(gw_glob_contains(big, 257, "a", 1), -1);
    /* two patterns of the maximum length: 512 tokens between them (a fuzzer found an
     * overread in the byte-class signatures here) */
    char l1[257], l2[257];
    memset(l1, 'a', 256);
    memset(l2, 'a', 256);
    l1[255] = '*';
    assert_int_equal(gw_glob_contains(l1, 256, l2, 256), 1);
    assert_int_equal(gw_glob_intersects(l2, 256, l1, 256), 1);
    /* many stars with classes: must answer or give up, never hang */
    const char *hard = "*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*";
    int r = gw_glob_contains("*a*b*a*b*a*b*a*b*a*b*", 21, hard, strlen(hard));
    assert_true(r == 0 || r == -1);
}

/* Brute force: all strings of length <= MAXLEN over the bytes the patterns mention, plus
 * 'c', which stands for every byte they do not. */
#define MAXLEN 5
static const char alphabet[] = "abc:*";
#define NALPHA 5

static void random_pattern(char *out, size_t *len)
{
    static const char *const toks[] = {"a", "b", ":", "*", "?", "[ab]", "[^a]", "[a-b]", "\\*"};
    size_t n = (size_t)(rand() % 5), l = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = toks[rand() % 9];
        memcpy(out + l, t, strlen(t));
        l += strlen(t);
    }
    out[l] = '\0';
    *len = l;
}

static void test_property_brute_force(void **state)
{
    (void)state;
    static char strs[6000][MAXLEN + 1];
    static size_t lens[6000];
    size_t ns = 0;
    for (size_t len = 0; len <= MAXLEN; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++) total *= NALPHA;
        for (size_t k = 0; k < total; k++) {
            size_t v = k;
            for (size_t i = 0; i < len; i++, v /= NALPHA) strs[ns][i] = alphabet[v % NALPHA];
            lens[ns++] = len;
        }
    }
    srand(4242);
    for (int iter = 0; iter < 1500; iter++) {
        char a[64], b[64];
        size_t al, bl;
        random_pattern(a, &al);
        random_pattern(b, &bl);
        int c = gw_glob_contains(a, al, b, bl), x = gw_glob_intersects(a, al, b, bl);
        assert_true(c == 0 || c == 1);
        assert_true(x == 0 || x == 1);
        bool counter = false, common = false;
        for (size_t i = 0; i < ns; i++) {
            bool ma = gw_glob_match(a, al, strs[i], lens[i]);
            bool mb = gw_glob_match(b, bl, strs[i], lens[i]);
            if (mb && !ma) counter = true;
            if (ma && mb) common = true;
        }
        /* Small patterns have short witnesses: MAXLEN covers them. */
        if (c != !counter)
            fail_msg("contains('%s','%s')=%d, brute force says %d", a, b, c, !counter);
        if (x != common) fail_msg("intersects('%s','%s')=%d, brute force says %d", a, b, x, common);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_malformed_and_budget),
        cmocka_unit_test(test_property_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

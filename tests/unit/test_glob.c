/* Glob matching with Redis stringmatchlen() semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "glob.h"

typedef struct {
    const char *pat, *str;
    bool match;
} case_t;

static const case_t cases[] = {
    {"market:tick:*", "market:tick:AAPL", true},
    {"market:tick:*", "market:tick:", true},
    {"market:tick:*", "market:tic", false},
    {"market:tick:*", "engine:signal:x", false},
    {"*", "", true},
    {"*", "anything", true},
    {"**", "x", true},
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    {"?", "a", true},
    {"?", "", false},
    {"?", "ab", false},
    {"a?c", "abc", true},
    {"a?c", "ac", false},
    {"a*c", "ac", true},
    {"a*c", "abbbbc", true},
    {"a*c", "abbbbd", false},
    {"*c", "abcabc", true},
    {"a*b*c", "aXbYc", true},
    {"a*b*c", "aXcYb", false},
    {"[abc]", "b", true},
    {"[abc]", "d", false},
    {"[^abc]", "d", true},
    {"[^abc]", "a", false},
    {"[a-z]*", "market", true},
    {"[a-z]*", "Market", false},
    {"[z-a]", "m", true}, /* reversed ranges are swapped, as in Redis */
    {"[a-]", "-", false}, /* Redis reads "a-]" as the range ]..a, class unclosed */
    {"[a-]", "]", true},
    {"[a-]", "`", true},
    {"x[]y", "xy", false},
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"a\\?b", "a?b", true},
    {"a\\?b", "axb", false},
    {"[\\]]", "]", true},
    {"[\\-]", "-", true},
    {"engine:*:BTC", "engine:signal:BTC", true},
    {"engine:*:BTC", "engine:signal:ETH", false},
    {"*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"m*", "market:tick:x", true},
    {"h?llo", "hello", true},
    {"h*llo", "heeeello", true},
    {"h[ae]llo", "hallo", true},
    {"h[ae]llo", "hillo", false},
    {"h[^e]llo", "hallo", true},
    {"h[a-b]llo", "hbllo", true},
    {"*:*", "a:b", true},
    {"*:*", "ab", false},
};

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const case_t *c = &cases[i];
        bool got = gw_glob_match(c->pat, strlen(c->pat), c->str, strlen(c->str));
        if (got != c->match) fail_msg("pattern '%s' vs '%s': got %d", c->pat, c->str, got);
    }
}

/* Reference: the recursive definition, exponential but obviously right on short input. */
static bool ref_match(const char *p, size_t pl, const char *s, size_t sl)
{
    if (pl == 0) return sl == 0;
    if (p[0] == '*') {
        for (size_t k = 0; k <= sl; k++)
            if (ref_match(p + 1, pl - 1, s + k, sl - k)) return true;
        return false;
    }
    if (sl == 0) return false;
    if (p[0] == '?') return ref_match(p + 1, pl - 1, s + 1, sl - 1);
    if (p[0] == '\\' && pl >= 2) return p[1] == s[0] && ref_match(p + 2, pl - 2, s + 1, sl - 1);
    return p[0] == s[0] && ref_match(p + 1, pl - 1, s + 1, sl - 1);
}

static void test_property_against_reference(void **state)
{
    (void)state;
    static const char alpha[] = "ab*?";
    srand(12345);
    for (int iter = 0; iter < 20000; iter++) {
        char p[8], s[10];
        size_t pl = (size_t)(rand() % 7), sl = (size_t)(rand() % 9);
        for (size_t i = 0; i < pl; i++) p[i] = alpha[rand() % 4];
        for (size_t i = 0; i < sl; i++) s[i] = alpha[rand() % 2];
        bool want = ref_match(p, pl, s, sl), got = gw_glob_match(p, pl, s, sl);
        if (want != got) fail_msg("'%.*s' vs '%.*s': want %d", (int)pl, p, (int)sl, s, want);
    }
}

static void test_is_pattern(void **state)
{
    (void)state;
    assert_true(gw_glob_is_pattern("a*", 2));
    assert_true(gw_glob_is_pattern("a?", 2));
    assert_true(gw_glob_is_pattern("a[b]", 4));
    assert_false(gw_glob_is_pattern("market:tick:AAPL", 16));
    assert_false(gw_glob_is_pattern("a]b", 3));
    assert_false(gw_glob_is_pattern("a\\b", 3));
}

static void test_well_formed(void **state)
{
    (void)state;
    assert_true(gw_glob_well_formed("a*", 2));
    assert_true(gw_glob_well_formed("[a-z]*", 6));
    assert_true(gw_glob_well_formed("[^\\]]", 5));
    assert_true(gw_glob_well_formed("\\[x", 3));
    assert_false(gw_glob_well_formed("[abc", 4));
    assert_false(gw_glob_well_formed("[", 1));
    assert_false(gw_glob_well_formed("a\\", 2));
    assert_false(gw_glob_well_formed("[\\", 2));
    assert_false(gw_glob_well_formed("[a-]", 4)); /* the ] is a range end, as in Redis */
    assert_true(gw_glob_well_formed("[a-]]", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_property_against_reference),
        cmocka_unit_test(test_is_pattern),
        cmocka_unit_test(test_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Roles and ACL checks: the built-in roles, containment and deny intersection for
 * patterns, a token's channels claim, the work budget, the verdict cache, and the
 * token bucket the session charges refusals to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "acl.h"
#include "glob.h"
#include "ratelimit.h"

static bool allows(gw_acl_t *a, const char *name)
{
    return gw_acl_allows(a, name, strlen(name));
}

static void test_builtin_roles(void **state)
{
    (void)state;
    gw_roles_t *t = gw_roles_default();
    gw_acl_t *user = (gw_acl_t *)gw_roles_find(t, "user")->acl;
    assert_true(allows(user, "market:tick:AAPL"));
    assert_true(allows(user, "market:tick:*"));
    assert_true(allows(user, "market:tick:A?PL"));
    assert_true(allows(user, "indicators:rsi:*"));
    assert_false(allows(user, "engine:decision:x"));
    /* patterns wider than the role, however they are spelled */
    for (const char *const *p = (const char *const[]){"*", "m*", "market:*", "[a-z]*", "engine:*",
                                                      "*:decision:*", "market:tick*", NULL};
         *p; p++)
        assert_false(allows(user, *p));
    assert_true(allows((gw_acl_t *)gw_roles_find(t, "admin")->acl, "*"));
    gw_roles_unref(t);
}

static void test_deny_and_narrow(void **state)
{
    (void)state;
    const char *j = "{\"roles\":[{\"name\":\"trader\",\"allow\":[\"market:*\",\"engine:*\"],"
                    "\"deny\":[\"engine:decision:*\"]}]}";
    char err[200];
    gw_roles_t *t = gw_roles_parse(j, strlen(j), err, sizeof err);
    assert_non_null(t);
    const gw_role_t *r = gw_roles_find(t, "trader");
    gw_acl_t *a = (gw_acl_t *)r->acl;
    assert_true(allows(a, "engine:signal:*"));
    assert_false(allows(a, "engine:*"));    /* would reach the denied channels */
    assert_false(allows(a, "engine:dec*")); /* so would this */
    assert_false(allows(a, "engine:decision:x"));
    char *claim[] = {"market:tick:*"};
    gw_acl_t *n = gw_acl_narrow(t, r, claim, 1);
    assert_true(allows(n, "market:tick:A*"));
    assert_false(allows(n, "market:quote:*")); /* the role allows it, the claim does not */
    gw_acl_unref(n);
    gw_roles_unref(t);
}

/* A pattern the budget cannot decide is denied, whatever it would have been. */
static void test_work_budget(void **state)
{
    (void)state;
    const char *hard = "*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*[ab]*";
    gw_glob_budget_t tiny = {100};
    assert_int_equal(gw_glob_contains_in(&tiny, "*", 1, hard, strlen(hard)), -1);
    gw_glob_budget_t enough = {GW_GLOB_BUDGET};
    assert_int_equal(gw_glob_contains_in(&enough, "*", 1, hard, strlen(hard)), 1);
    assert_true(enough.left < GW_GLOB_BUDGET); /* it was charged */
    /* one budget for a whole check: spent by the first call, the second gets nothing */
    gw_glob_budget_t shared = {1};
    assert_int_equal(gw_glob_contains_in(&shared, "a*", 2, "a*", 2), -1);
    assert_int_equal(gw_glob_intersects_in(&shared, "a", 1, "a", 1), -1);
}

/* The cache answers what the check would, stays bounded, and a role's verdicts are
 * shared by everybody with that role. */
static void test_verdict_cache(void **state)
{
    (void)state;
    gw_roles_t *t = gw_roles_default();
    gw_acl_t *user = (gw_acl_t *)gw_roles_find(t, "user")->acl;
    char p[64];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2000; i++) {
            snprintf(p, sizeof p, i % 2 ? "market:tick:%d*" : "engine:%d*", i);
            assert_int_equal(allows(user, p), i % 2 == 1);
        }
    assert_non_null(user->cache);
    gw_roles_unref(t);
}

static void test_bucket_charge(void **state)
{
    (void)state;
    gw_bucket_t b = {0};
    assert_true(gw_bucket_take(&b, 10, 10, 0)); /* starts full: 9 left */
    gw_bucket_charge(&b, 9, 10);                /* a refusal's weight: 0 left */
    assert_false(gw_bucket_take(&b, 10, 10, 0));
    gw_bucket_charge(&b, 1000, 10);                    /* debt is bounded by the burst */
    assert_false(gw_bucket_take(&b, 10, 10, 1000000)); /* 1 s: -10 + 10 = 0 */
    assert_true(gw_bucket_take(&b, 10, 10, 1200000));  /* 1.2 s: 2 tokens */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_roles), cmocka_unit_test(test_deny_and_narrow),
        cmocka_unit_test(test_work_budget),   cmocka_unit_test(test_verdict_cache),
        cmocka_unit_test(test_bucket_charge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* TRUSTED_PROXIES networks: parsing and membership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cidr.h"

static void test_parse_and_match(void **state)
{
    (void)state;
    gw_cidr_t *n;
    char err[128];
    int c =
        gw_cidr_parse_list("10.0.0.0/8, 192.168.1.7 fd00::/8,172.16.0.0/12", &n, err, sizeof err);
    assert_int_equal(c, 4);
    assert_true(gw_cidr_contains(n, c, "10.1.2.3"));
    assert_false(gw_cidr_contains(n, c, "11.0.0.1"));
    assert_true(gw_cidr_contains(n, c, "192.168.1.7"));
    assert_false(gw_cidr_contains(n, c, "192.168.1.8"));
    assert_true(gw_cidr_contains(n, c, "172.31.255.255"));
    assert_false(gw_cidr_contains(n, c, "172.32.0.0"));
    assert_true(gw_cidr_contains(n, c, "fd12::1"));
    assert_false(gw_cidr_contains(n, c, "fe80::1"));
    assert_false(gw_cidr_contains(n, c, "not an ip"));
    free(n);

    assert_int_equal(gw_cidr_parse_list("", &n, err, sizeof err), 0);
    free(n);
    assert_int_equal(gw_cidr_parse_list("0.0.0.0/0", &n, err, sizeof err), 1);
    assert_true(gw_cidr_contains(n, 1, "8.8.8.8"));
    free(n);
    const char *bad[] = {"nginx", "10.0.0.0/33", "10.0.0.0/", "::/129", "1.2.3.4/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (gw_cidr_parse_list(bad[i], &n, err, sizeof err) != -1) fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "not an IP"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_and_match)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

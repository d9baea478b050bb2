/* The control plane's fleet (identity, bounds, expiry) and the node-message checks both
 * planes share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fleet.h"
#include "nodemsg.h"

static int s1, s2, s3, s4; /* stream identities */

static cp_fleet_t fleet(size_t max)
{
    return (cp_fleet_t){.max_nodes = max, .report_interval_ms = 1000, .gone_ttl_ms = 5000};
}

static void test_duplicates_get_separate_entries(void **state)
{
    (void)state;
    cp_fleet_t f = fleet(8);
    cp_node_t *real = cp_fleet_attach(&f, "n1", &s1, 0);
    assert_false(real->duplicate);
    cp_node_t *imp = cp_fleet_attach(&f, "n1", &s2, 10);
    assert_ptr_not_equal(real, imp);
    assert_true(real->duplicate && imp->duplicate);
    assert_int_equal(f.count, 2);
    assert_int_equal(cp_fleet_duplicates(&f), 2);
    /* The impostor leaves: its entry goes at once, the real one is neither gone nor dup. */
    cp_fleet_detach(&f, imp, &s2, 20);
    assert_int_equal(f.count, 1);
    assert_true(real->connected);
    assert_false(real->duplicate);
    /* A stale detach (another stream's) changes nothing. */
    cp_fleet_detach(&f, real, &s3, 30);
    assert_true(real->connected);
    cp_fleet_detach(&f, real, &s1, 40);
    assert_false(real->connected);
    assert_string_equal(cp_fleet_status(&f, real, 1, 50), "gone");
    /* Coming back takes over the gone entry. */
    assert_ptr_equal(cp_fleet_attach(&f, "n1", &s4, 60), real);
    assert_int_equal(f.count, 1);
    cp_fleet_free(&f);
}

static void test_full_fleet_evicts_gone_then_refuses(void **state)
{
    (void)state;
    cp_fleet_t f = fleet(2);
    cp_node_t *a = cp_fleet_attach(&f, "a", &s1, 0);
    cp_node_t *b = cp_fleet_attach(&f, "b", &s2, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(cp_fleet_attach(&f, "c", &s3, 0));
    cp_fleet_detach(&f, a, &s1, 100);
    cp_node_t *c = cp_fleet_attach(&f, "c", &s3, 200);
    assert_non_null(c);
    assert_int_equal(f.count, 2);
    for (cp_node_t *n = f.nodes; n; n = n->next) assert_string_not_equal(n->node_id, "a");
    cp_fleet_free(&f);
}

static void test_gone_entries_expire(void **state)
{
    (void)state;
    cp_fleet_t f = fleet(8);
    cp_node_t *a = cp_fleet_attach(&f, "a", &s1, 0);
    cp_fleet_attach(&f, "b", &s2, 0);
    cp_fleet_detach(&f, a, &s1, 1000);
    assert_int_equal(cp_fleet_expire(&f, 5999), 0);
    assert_int_equal(cp_fleet_expire(&f, 6000), 1);
    assert_int_equal(f.count, 1);
    assert_string_equal(f.nodes->node_id, "b");
    cp_fleet_free(&f);
}

static void test_hello_checks(void **state)
{
    (void)state;
    char err[200];
    Wsgw__Control__V1__NodeHello h = WSGW__CONTROL__V1__NODE_HELLO__INIT;
    h.node_id = "gw-1.example:8080";
    h.address = "[2001:db8::1]:8080";
    h.build_version = "wsgw 0.4.0";
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), 0);
    h.node_id = "";
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    assert_string_equal(err, "node_id: required");
    h.node_id = "a b";
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    assert_non_null(strstr(err, "byte 1"));
    h.node_id = "ok";
    h.address = "x\x1b[2J";
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    assert_non_null(strstr(err, "address:"));
    char big[GW_NODE_ADDRESS_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    h.address = big;
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    big[GW_NODE_ADDRESS_MAX] = '\0';
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), 0);
    h.build_version = "a\"b";
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    h.build_version = "";
    uint8_t d[31] = {0};
    h.config_digest.data = d;
    h.config_digest.len = sizeof d;
    assert_int_equal(gw_node_hello_check(&h, err, sizeof err), -1);
    assert_string_equal(err, "config_digest: not 32 bytes");
}

static void test_stats_checks(void **state)
{
    (void)state;
    char err[200], names[GW_STATS_MAX_COUNTERS + 1][16];
    Wsgw__Control__V1__NodeStats__CountersEntry e[GW_STATS_MAX_COUNTERS + 1];
    Wsgw__Control__V1__NodeStats__CountersEntry *ep[GW_STATS_MAX_COUNTERS + 1];
    for (int i = 0; i <= GW_STATS_MAX_COUNTERS; i++) {
        wsgw__control__v1__node_stats__counters_entry__init(&e[i]);
        snprintf(names[i], sizeof names[i], "c%d", i);
        e[i].key = names[i];
        ep[i] = &e[i];
    }
    Wsgw__Control__V1__NodeStats st = WSGW__CONTROL__V1__NODE_STATS__INIT;
    st.counters = ep;
    st.n_counters = GW_STATS_MAX_COUNTERS;
    assert_int_equal(gw_node_stats_check(&st, err, sizeof err), 0);
    st.n_counters++;
    assert_int_equal(gw_node_stats_check(&st, err, sizeof err), -1);
    st.n_counters = 3;
    e[2].key = "c0";
    assert_int_equal(gw_node_stats_check(&st, err, sizeof err), -1);
    assert_string_equal(err, "counters: a name appears twice");
    e[2].key = "Upper";
    assert_int_equal(gw_node_stats_check(&st, err, sizeof err), -1);
    e[2].key = "";
    assert_int_equal(gw_node_stats_check(&st, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicates_get_separate_entries),
        cmocka_unit_test(test_full_fleet_evicts_gone_then_refuses),
        cmocka_unit_test(test_gone_entries_expire),
        cmocka_unit_test(test_hello_checks),
        cmocka_unit_test(test_stats_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

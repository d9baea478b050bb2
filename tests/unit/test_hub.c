/* The routing index and its Redis subscription state machine, against a recording fake
 * link and fake sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"
#include "stats.h"

typedef struct {
    bool up;
    char log[64][80]; /* "SUBSCRIBE a b", "PUNSUBSCRIBE p*" */
    int nlog;
    gw_msg_t *delivered[64];
    gw_sub_t *delivered_to[64];
    int ndelivered;
    int active_calls;
    int resyncs;
} fake_t;

static int fake_cmd(void *ud, bool subscribe, bool pattern, const char *const *names,
                    const size_t *lens, size_t n)
{
    fake_t *f = ud;
    if (!f->up) return -1;
    char *line = f->log[f->nlog++];
    snprintf(line, 80, "%s%s", pattern ? "P" : "", subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(line);
        snprintf(line + l, 80 - l, " %.*s", (int)lens[i], names[i]);
    }
    return 0;
}

static void fake_deliver(void *ud, gw_sub_t *sub, gw_msg_t *m)
{
    fake_t *f = ud;
    f->delivered[f->ndelivered] = gw_msg_ref(m);
    f->delivered_to[f->ndelivered++] = sub;
}

static void fake_active(void *ud, gw_sub_t *sub)
{
    fake_t *f = ud;
    f->active_calls++;
    sub->pending = NULL;
}

static void fake_resync(void *ud)
{
    ((fake_t *)ud)->resyncs++;
}

static const gw_hub_ops_t ops = {fake_cmd, fake_deliver, fake_active, fake_resync};

static void clear_delivered(fake_t *f)
{
    for (int i = 0; i < f->ndelivered; i++) gw_msg_unref(f->delivered[i]);
    f->ndelivered = 0;
}

#define S1 ((struct gw_session *)0x1)
#define S2 ((struct gw_session *)0x2)

static void test_refcounted_subscribe(void **state)
{
    (void)state;
    fake_t f = {.up = true};
    gw_hub_t *h = gw_hub_new(&ops, &f);
    gw_hub_on_link_up(h);
    bool active;
    gw_sub_t *a = gw_hub_subscribe(h, S1, "x", 1, &active);
    assert_false(active);
    assert_int_equal(f.nlog, 1);
    assert_string_equal(f.log[0], "SUBSCRIBE x");
    gw_sub_t *b = gw_hub_subscribe(h, S2, "x", 1, &active);
    assert_false(active);
    assert_int_equal(f.nlog, 1); /* one SUBSCRIBE per node, not per client */

    a->pending = b->pending = (void *)1;
    gw_hub_on_confirm(h, true, false, "x", 1);
    assert_int_equal(f.active_calls, 2);
    assert_int_equal(gw_stats.redis_subs_exact, 1);

    gw_sub_t *c = gw_hub_subscribe(h, S1, "y*", 2, &active);
    assert_string_equal(f.log[1], "PSUBSCRIBE y*");
    gw_hub_unsubscribe(h, c); /* leaves while SUBSCRIBING: wait for the reply */
    assert_int_equal(f.nlog, 2);
    gw_hub_on_confirm(h, true, true, "y*", 2);
    assert_string_equal(f.log[2], "PUNSUBSCRIBE y*");
    gw_hub_on_confirm(h, false, true, "y*", 2);

    gw_hub_unsubscribe(h, a);
    assert_int_equal(f.nlog, 3);
    gw_hub_unsubscribe(h, b);
    assert_string_equal(f.log[3], "UNSUBSCRIBE x");
    gw_hub_on_confirm(h, false, false, "x", 1);
    assert_int_equal(gw_hub_topic_count(h), 0);
    assert_int_equal(gw_stats.redis_subs_exact, 0);
    gw_hub_free(h);
}

static void test_resubscribe_while_unsubscribing(void **state)
{
    (void)state;
    fake_t f = {.up = true};
    gw_hub_t *h = gw_hub_new(&ops, &f);
    gw_hub_on_link_up(h);
    bool active;
    gw_sub_t *a = gw_hub_subscribe(h, S1, "x", 1, &active);
    gw_hub_on_confirm(h, true, false, "x", 1);
    gw_hub_unsubscribe(h, a);
    assert_string_equal(f.log[1], "UNSUBSCRIBE x");
    a = gw_hub_subscribe(h, S1, "x", 1, &active);
    assert_false(active);
    assert_int_equal(f.nlog, 2); /* nothing sent while UNSUBSCRIBE is in flight */
    gw_hub_on_confirm(h, false, false, "x", 1);
    assert_string_equal(f.log[2], "SUBSCRIBE x");
    gw_hub_on_confirm(h, true, false, "x", 1);
    gw_hub_on_message(h, "x", 1, NULL, 0, "1", 1, 0, 0);
    assert_int_equal(f.ndelivered, 1);
    clear_delivered(&f);
    gw_hub_unsubscribe(h, a);
    gw_hub_free(h);
}

static void test_fanout_shares_one_message(void **state)
{
    (void)state;
    fake_t f = {.up = true};
    gw_hub_t *h = gw_hub_new(&ops, &f);
    gw_hub_on_link_up(h);
    bool active;
    gw_sub_t *subs[10];
    for (int i = 0; i < 10; i++)
        subs[i] = gw_hub_subscribe(h, (struct gw_session *)(uintptr_t)(i + 1), "m:*", 3, &active);
    gw_sub_t *exact = gw_hub_subscribe(h, S1, "m:a", 3, &active);
    gw_hub_on_confirm(h, true, true, "m:*", 3);
    gw_hub_on_confirm(h, true, false, "m:a", 3);

    gw_hub_on_message(h, "m:a", 3, "m:*", 3, "{}", 2, 0, 0);
    assert_int_equal(f.ndelivered, 10);
    for (int i = 1; i < 10; i++) assert_ptr_equal(f.delivered[i], f.delivered[0]);
    assert_int_equal(f.delivered[0]->refcnt, 10); /* the hub dropped its own reference */
    clear_delivered(&f);

    gw_hub_on_message(h, "m:a", 3, NULL, 0, "{}", 2, 0, 0);
    assert_int_equal(f.ndelivered, 1);
    assert_ptr_equal(f.delivered_to[0], exact);
    clear_delivered(&f);

    gw_hub_on_message(h, "other", 5, NULL, 0, "{}", 2, 0, 0); /* no topic: nothing */
    gw_hub_on_message(h, "m:a", 3, "m:a", 3, "{}", 2, 0, 0);  /* wrong kind: nothing */
    assert_int_equal(f.ndelivered, 0);

    /* Removing from the middle keeps the index consistent (swap-remove). */
    gw_hub_unsubscribe(h, subs[3]);
    gw_hub_unsubscribe(h, subs[0]);
    gw_hub_on_message(h, "m:b", 3, "m:*", 3, "1", 1, 0, 0);
    assert_int_equal(f.ndelivered, 8);
    for (int i = 0; i < 8; i++)
        assert_true(f.delivered_to[i] != subs[3] && f.delivered_to[i] != subs[0]);
    clear_delivered(&f);
    for (int i = 1; i < 10; i++)
        if (i != 3) gw_hub_unsubscribe(h, subs[i]);
    gw_hub_unsubscribe(h, exact);
    gw_hub_free(h);
}

static void test_link_down_up_resubscribes_and_resyncs(void **state)
{
    (void)state;
    fake_t f = {.up = true};
    memset(&gw_stats, 0, sizeof gw_stats);
    gw_hub_t *h = gw_hub_new(&ops, &f);
    gw_hub_on_link_up(h);
    assert_int_equal(f.resyncs, 0); /* first connect is not a reconnect */
    bool active;
    gw_sub_t *a = gw_hub_subscribe(h, S1, "a", 1, &active);
    gw_sub_t *p = gw_hub_subscribe(h, S1, "p*", 2, &active);
    gw_hub_on_confirm(h, true, false, "a", 1);
    gw_hub_on_confirm(h, true, true, "p*", 2);
    f.nlog = 0;

    f.up = false;
    gw_hub_on_link_down(h);
    assert_int_equal(gw_stats.redis_subs_exact + gw_stats.redis_subs_pattern, 0);
    gw_sub_t *b = gw_hub_subscribe(h, S2, "b", 1, &active); /* while down: queued */
    assert_int_equal(f.nlog, 0);

    f.up = true;
    gw_hub_on_link_up(h);
    assert_int_equal(f.nlog, 2);
    assert_true(!strcmp(f.log[0], "SUBSCRIBE a b") || !strcmp(f.log[0], "SUBSCRIBE b a"));
    assert_string_equal(f.log[1], "PSUBSCRIBE p*");
    gw_hub_on_confirm(h, true, false, "a", 1);
    gw_hub_on_confirm(h, true, false, "b", 1);
    assert_int_equal(f.resyncs, 0); /* not before every topic is back */
    gw_hub_on_confirm(h, true, true, "p*", 2);
    assert_int_equal(f.resyncs, 1);

    gw_hub_unsubscribe(h, a);
    gw_hub_unsubscribe(h, p);
    gw_hub_unsubscribe(h, b);
    gw_hub_free(h);
}

static void test_many_topics_resubscribe_in_batches(void **state)
{
    (void)state;
    fake_t f = {.up = false};
    gw_hub_t *h = gw_hub_new(&ops, &f);
    enum { N = 600 };
    gw_sub_t **subs = malloc(N * sizeof *subs);
    bool active;
    for (int i = 0; i < N; i++) {
        char name[16];
        int n = snprintf(name, sizeof name, "c%d", i);
        subs[i] = gw_hub_subscribe(h, S1, name, (size_t)n, &active);
    }
    f.up = true;
    gw_hub_on_link_up(h);
    assert_int_equal(f.nlog, 3); /* 256 + 256 + 88 */
    for (int i = 0; i < N; i++) gw_hub_unsubscribe(h, subs[i]);
    free(subs);
    gw_hub_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refcounted_subscribe),
        cmocka_unit_test(test_resubscribe_while_unsubscribing),
        cmocka_unit_test(test_fanout_shares_one_message),
        cmocka_unit_test(test_link_down_up_resubscribes_and_resyncs),
        cmocka_unit_test(test_many_topics_resubscribe_in_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The outbound queue: seq order across control and data frames, the drop and conflate
 * policies, holes and their compaction, and invariants under random operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "outq.h"

static gw_msg_t *data_msg(const char *chan, int i)
{
    char payload[64];
    int n = snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    return gw_msg_new_message(chan, strlen(chan), NULL, 0, payload, (size_t)n, 0, 0);
}

static size_t cost_of(const char *chan)
{
    gw_msg_t *m = data_msg(chan, 0);
    size_t c = GW_OUTQ_COST(m) + 1;
    gw_msg_unref(m);
    return c;
}

static gw_msg_t *ctl_msg(int i)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"pong\",\"id\":%d", i);
    return gw_msg_new_control(&b);
}

static void push(gw_outq_t *q, gw_msg_t *m, uint64_t seq, gw_shed_t p, size_t limit,
                 gw_shed_count_t *c)
{
    gw_outq_push(q, m, seq, p, limit, c);
    gw_msg_unref(m); /* the queue holds its own reference */
}

/* The seqs of the queued frames, in the order the writer would send them. */
static size_t seqs(const gw_outq_t *q, uint64_t *out, size_t max)
{
    static unsigned char buf[1 << 20];
    size_t ends[4096], need, n = gw_outq_peek(q, buf, sizeof buf, ends, 4096, &need);
    for (size_t i = 0; i < n && i < max; i++) {
        const char *p = (const char *)buf + ends[i] - 2;
        while (p[-1] >= '0' && p[-1] <= '9') p--;
        out[i] = strtoull(p, NULL, 10);
    }
    return n;
}

static void test_merged_seq_order(void **state)
{
    (void)state;
    gw_outq_t q = {0};
    gw_shed_count_t c = {0, 0};
    push(&q, ctl_msg(1), 1, GW_SHED_DROP, 1 << 20, &c);
    push(&q, data_msg("a", 2), 2, GW_SHED_DROP, 1 << 20, &c);
    push(&q, data_msg("a", 3), 3, GW_SHED_DROP, 1 << 20, &c);
    push(&q, ctl_msg(4), 4, GW_SHED_DROP, 1 << 20, &c);
    push(&q, data_msg("b", 5), 5, GW_SHED_DROP, 1 << 20, &c);
    uint64_t s[8];
    assert_int_equal(seqs(&q, s, 8), 5);
    for (int i = 0; i < 5; i++) assert_int_equal(s[i], i + 1);
    assert_int_equal(gw_outq_frames(&q), 5);
    gw_outq_consume(&q, 2, NULL, NULL);
    assert_int_equal(seqs(&q, s, 8), 3);
    assert_int_equal(s[0], 3);
    gw_outq_clear(&q);
    assert_int_equal(gw_outq_bytes(&q), 0);
}

/* The case that used to cost a scan of the whole queue per message: a reply at the
 * head of a queue nobody reads. It stays; the oldest data goes, the newest stays. */
static void test_drop_behind_a_control_frame(void **state)
{
    (void)state;
    gw_outq_t q = {0};
    gw_shed_count_t c = {0, 0};
    size_t limit = 4096;
    push(&q, ctl_msg(0), 1, GW_SHED_DROP, limit, &c);
    for (int i = 0; i < 100000; i++)
        push(&q, data_msg("a", i), (uint64_t)i + 2, GW_SHED_DROP, limit, &c);
    assert_true(gw_outq_bytes(&q) <= limit);
    uint64_t s[256];
    size_t n = seqs(&q, s, 256);
    assert_int_equal(s[0], 1);          /* the reply */
    assert_int_equal(s[n - 1], 100001); /* the newest message */
    assert_int_equal(c.dropped, 100000 - (n - 1));
    for (size_t i = 1; i < n; i++) assert_true(s[i] > s[i - 1]);
    gw_outq_clear(&q);
}

/* Over the bound, a message replaces its channel's queued one; the newest of every
 * channel survives; order is seq order. */
static void test_conflate_keeps_the_newest_per_channel(void **state)
{
    (void)state;
    gw_outq_t q = {0};
    gw_shed_count_t c = {0, 0};
    size_t limit = 40 * cost_of("c0"); /* about 40 frames */
    const char *chans[] = {"c0", "c1", "c2", "c3", "c4"};
    push(&q, data_msg("quiet", 0), 1, GW_SHED_CONFLATE, limit, &c);
    for (int i = 0; i < 5000; i++)
        push(&q, data_msg(chans[i % 5], i), (uint64_t)i + 2, GW_SHED_CONFLATE, limit, &c);
    assert_true(gw_outq_bytes(&q) <= limit);
    assert_true(c.conflated > 4000);
    /* the quiet channel's only message is at the head and was never replaced or dropped */
    uint64_t s[64];
    size_t n = seqs(&q, s, 64);
    assert_int_equal(s[0], 1);
    assert_int_equal(s[n - 1], 5001);
    for (size_t i = 1; i < n; i++) assert_true(s[i] > s[i - 1]);
    /* holes are compacted: the ring does not grow with the messages replaced */
    assert_true(q.data.len <= 2 * gw_outq_frames(&q) + 33);
    gw_outq_clear(&q);
}

static void test_conflate_too_many_channels_drops_oldest(void **state)
{
    (void)state;
    gw_outq_t q = {0};
    gw_shed_count_t c = {0, 0};
    size_t limit = 20 * cost_of("ch000");
    char chan[16];
    for (int i = 0; i < 200; i++) {
        snprintf(chan, sizeof chan, "ch%03d", i);
        push(&q, data_msg(chan, i), (uint64_t)i + 1, GW_SHED_CONFLATE, limit, &c);
    }
    assert_true(gw_outq_bytes(&q) <= limit);
    assert_int_equal(c.conflated, 0);
    uint64_t s[64];
    size_t n = seqs(&q, s, 64);
    assert_int_equal(s[n - 1], 200);
    assert_int_equal(c.dropped, 200 - n);
    gw_outq_clear(&q);
}

/* `close`: nothing is dropped; the owner sees the queue over its bound. */
static void test_no_shedding(void **state)
{
    (void)state;
    gw_outq_t q = {0};
    gw_shed_count_t c = {0, 0};
    for (int i = 0; i < 100; i++)
        push(&q, data_msg("a", i), (uint64_t)i + 1, GW_SHED_NONE, 1000, &c);
    assert_int_equal(gw_outq_frames(&q), 100);
    assert_true(gw_outq_bytes(&q) > 1000);
    assert_int_equal(c.dropped + c.conflated, 0);
    gw_outq_clear(&q);
}

/* The node-wide measure counts a frame once however many queues hold it, and forgets it
 * when the last one lets go (sent, dropped or cleared). */
static void test_retained_counts_shared_frames_once(void **state)
{
    (void)state;
    gw_outq_t a = {0}, b = {0};
    gw_shed_count_t c = {0, 0};
    size_t base = gw_outq_retained();
    gw_msg_t *m = data_msg("a", 1), *k = ctl_msg(2);
    gw_outq_push(&a, m, 1, GW_SHED_DROP, 1 << 20, &c);
    gw_outq_push(&b, m, 1, GW_SHED_DROP, 1 << 20, &c);
    gw_outq_push(&b, k, 2, GW_SHED_DROP, 1 << 20, &c);
    size_t cm = GW_OUTQ_COST(m), ck = GW_OUTQ_COST(k);
    gw_msg_unref(m);
    gw_msg_unref(k);
    assert_int_equal(gw_outq_retained() - base, cm + ck);
    assert_int_equal(gw_outq_bytes(&a) + gw_outq_bytes(&b), 2 * cm + ck);
    gw_outq_consume(&a, 1, NULL, NULL); /* sent to a: b still holds it */
    assert_int_equal(gw_outq_retained() - base, cm + ck);
    gw_outq_clear(&b);
    assert_int_equal(gw_outq_retained(), base);
    gw_outq_clear(&a);
}

static void count_each(const gw_msg_t *m, void *ud)
{
    (void)m;
    (*(int *)ud)++;
}

/* Random pushes, policies and consumes: output in strictly increasing seq, the frame
 * count right, the bound held by the shedding policies, every consumed frame reported
 * once, nothing leaked (ASan checks at exit). */
static void test_random_operations(void **state)
{
    (void)state;
    srand(7);
    for (int round = 0; round < 200; round++) {
        gw_outq_t q = {0};
        gw_shed_count_t c = {0, 0};
        gw_shed_t policy = (gw_shed_t)(round % 3);
        size_t limit = 512 + (size_t)(rand() % 4096);
        uint64_t seq = 0;
        for (int op = 0; op < 400; op++) {
            int r = rand() % 10;
            if (r < 6) {
                char chan[8];
                snprintf(chan, sizeof chan, "k%d", rand() % 6);
                push(&q, data_msg(chan, op), ++seq, policy, limit, &c);
            } else if (r < 8) {
                push(&q, ctl_msg(op), ++seq, policy, limit, &c);
            } else {
                size_t before = gw_outq_frames(&q), k = (size_t)(rand() % 5);
                int seen = 0;
                gw_outq_consume(&q, k, count_each, &seen);
                assert_int_equal((size_t)seen, k < before ? k : before);
                assert_int_equal(gw_outq_frames(&q), before - (size_t)seen);
            }
            uint64_t s[4096];
            size_t n = seqs(&q, s, 4096);
            assert_int_equal(n, gw_outq_frames(&q));
            for (size_t i = 1; i < n; i++) assert_true(s[i] > s[i - 1]);
            if (policy != GW_SHED_NONE && q.ctl.len == 0)
                assert_true(gw_outq_bytes(&q) <= limit || gw_outq_frames(&q) == 1);
        }
        gw_outq_clear(&q);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merged_seq_order),
        cmocka_unit_test(test_drop_behind_a_control_frame),
        cmocka_unit_test(test_conflate_keeps_the_newest_per_channel),
        cmocka_unit_test(test_conflate_too_many_channels_drops_oldest),
        cmocka_unit_test(test_no_shedding),
        cmocka_unit_test(test_retained_counts_shared_frames_once),
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The shared envelope and its WebSocket framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "msg.h"

static json_t *decode_frame(const unsigned char *f, size_t n, size_t *hdr)
{
    assert_int_equal(f[0], 0x81);
    size_t len = f[1], h = 2;
    if (len == 126) {
        len = (size_t)f[2] << 8 | f[3];
        h = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
        h = 10;
    }
    assert_int_equal(h + len, n);
    *hdr = h;
    json_error_t err;
    json_t *v = json_loadb((const char *)f + h, len, 0, &err);
    if (!v) fail_msg("bad frame: %s", err.text);
    return v;
}

static void test_envelope_exact_and_pattern(void **state)
{
    (void)state;
    gw_msg_t *m = gw_msg_new_message("market:tick:AAPL", 16, NULL, 0, "{\"p\":1}", 7, 5, 0);
    assert_int_equal(m->refcnt, 1);
    assert_int_equal(m->chan_len, 16);
    assert_memory_equal(m->chan, "market:tick:AAPL", 16);
    unsigned char out[256];
    size_t n = gw_msg_write_frame(m, 12, out), h;
    assert_int_equal(n, gw_msg_wire_len(m, 12));
    json_t *v = decode_frame(out, n, &h);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "message");
    assert_null(json_object_get(v, "pattern"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "data"), "p")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), 12);
    json_decref(v);
    gw_msg_unref(m);

    m = gw_msg_new_message("a:b", 3, "a:*", 3, "not json", 8, 0, 0);
    n = gw_msg_write_frame(m, 1, out);
    v = decode_frame(out, n, &h);
    assert_string_equal(json_string_value(json_object_get(v, "pattern")), "a:*");
    assert_string_equal(json_string_value(json_object_get(v, "data")), "not json");
    json_decref(v);
    gw_msg_unref(m);
}

/* The legacy envelope says what the v1 one says, in the Python gateway's shape; it is
 * built once per message and shared. */
static void test_legacy_envelope(void **state)
{
    (void)state;
    unsigned char out[512];
    size_t h;
    /* 2025-12-01T02:55:35.310644 UTC */
    gw_msg_t *m = gw_msg_new_message("m:a", 3, "m:*", 3, "{\"p\":[1,2]}", 11, 5, 1764557735310644u);
    gw_msg_t *l = gw_msg_legacy(m);
    assert_ptr_equal(gw_msg_legacy(m), l); /* cached */
    assert_int_equal(l->chan_len, 3);      /* conflation and ACL keys carried over */
    assert_int_equal(l->chan_hash, m->chan_hash);
    assert_int_equal(l->rx_us, 5);
    size_t n = gw_msg_write_frame(l, 3, out);
    json_t *v = decode_frame(out, n, &h);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "data");
    assert_string_equal(json_string_value(json_object_get(v, "channel")), "m:a");
    assert_string_equal(json_string_value(json_object_get(v, "pattern")), "m:*");
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(v, "data"), "p"), 1)), 2);
    assert_string_equal(json_string_value(json_object_get(v, "timestamp")),
                        "2025-12-01T02:55:35.310644+00:00");
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), 3);
    json_decref(v);
    gw_msg_ref(l); /* a legacy queue keeps its envelope after the message is gone */
    gw_msg_unref(m);
    assert_int_equal(l->refcnt, 1);
    gw_msg_unref(l);

    m = gw_msg_new_message("e\"x", 3, NULL, 0, "not \"json\"", 10, 0, 0);
    n = gw_msg_write_frame(gw_msg_legacy(m), 1, out);
    v = decode_frame(out, n, &h);
    assert_string_equal(json_string_value(json_object_get(v, "channel")), "e\"x");
    assert_true(json_is_null(json_object_get(v, "pattern")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "data"), "raw")),
                        "not \"json\"");
    json_decref(v);
    gw_msg_unref(m);
}

static void test_frame_lengths(void **state)
{
    (void)state;
    size_t sizes[] = {0, 50, 90, 200, 65000, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *data = malloc(sizes[i] + 1);
        memset(data, 'x', sizes[i]);
        gw_msg_t *m = gw_msg_new_message("c", 1, NULL, 0, data, sizes[i], 0, 0);
        for (uint64_t seq = 1; seq < UINT64_MAX / 10; seq = seq * 10 + 7) {
            size_t want = gw_msg_wire_len(m, seq), h;
            unsigned char *out = malloc(want);
            size_t n = gw_msg_write_frame(m, seq, out);
            assert_int_equal(n, want);
            json_t *v = decode_frame(out, n, &h);
            assert_int_equal((uint64_t)json_integer_value(json_object_get(v, "seq")), seq);
            json_decref(v);
            free(out);
        }
        gw_msg_unref(m);
        free(data);
    }
}

static void test_refcount(void **state)
{
    (void)state;
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"pong\"");
    gw_msg_t *m = gw_msg_new_control(&b);
    assert_null(b.data);
    assert_int_equal(m->chan_len, 0);
    gw_msg_ref(m);
    gw_msg_ref(m);
    assert_int_equal(m->refcnt, 3);
    gw_msg_unref(m);
    gw_msg_unref(m);
    assert_int_equal(m->refcnt, 1);
    gw_msg_unref(m); /* freed; ASan would flag a leak or double free */
    gw_msg_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_exact_and_pattern),
        cmocka_unit_test(test_legacy_envelope),
        cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_refcount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

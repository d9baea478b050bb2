/* Client frame parser and control frame encoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "proto.h"

static int parse(const char *s, gw_req_t *r, gw_perr_t *e)
{
    gw_dialect_t d = GW_DIALECT_V1;
    return gw_req_parse(s, strlen(s), 100, &d, r, e);
}

static void test_subscribe_ok(void **state)
{
    (void)state;
    gw_req_t r;
    gw_perr_t e;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"channels\":[\"a\",\"b:*\",\"a\"],"
                           "\"id\":\"c1\"}",
                           &r, &e),
                     0);
    assert_int_equal(r.type, GW_REQ_SUBSCRIBE);
    assert_int_equal(r.nchannels, 2); /* deduplicated */
    assert_string_equal(r.channels[0], "a");
    assert_string_equal(r.channels[1], "b:*");
    assert_string_equal(r.id, "\"c1\"");
    gw_req_free(&r);

    assert_int_equal(parse("{\"type\":\"ping\",\"id\":42}", &r, &e), 0);
    assert_int_equal(r.type, GW_REQ_PING);
    assert_string_equal(r.id, "42");
    gw_req_free(&r);

    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"channels\":[\"x\"]}", &r, &e), 0);
    assert_int_equal(r.type, GW_REQ_UNSUBSCRIBE);
    assert_null(r.id);
    gw_req_free(&r);
}

typedef struct {
    const char *frame;
    gw_errcode_t code;
    const char *id;
} bad_t;

static void test_errors(void **state)
{
    (void)state;
    static const bad_t bad[] = {
        {"", GW_E_BAD_REQUEST, NULL},
        {"nope", GW_E_BAD_REQUEST, NULL},
        {"[]", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":1}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"x\",\"id\":\"q\"}", GW_E_UNKNOWN_TYPE, "\"q\""},
        {"{\"type\":\"subscribe\",\"id\":3}", GW_E_BAD_REQUEST, "3"},
        {"{\"type\":\"subscribe\",\"channels\":[]}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"subscribe\",\"channels\":[null]}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"subscribe\",\"channels\":[\"\"]}", GW_E_INVALID_CHANNEL, NULL},
        {"{\"type\":\"subscribe\",\"channels\":[\"a\\u0001\"]}", GW_E_INVALID_CHANNEL, NULL},
        {"{\"type\":\"subscribe\",\"channels\":[\"[x\"]}", GW_E_INVALID_CHANNEL, NULL},
        {"{\"type\":\"ping\",\"id\":1.5}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"ping\",\"id\":[1]}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"ping\",\"type\":\"ping\"}", GW_E_BAD_REQUEST, NULL},
        {"{\"type\":\"ping\"} trailing", GW_E_BAD_REQUEST, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_req_t r;
        gw_perr_t e;
        if (parse(bad[i].frame, &r, &e) != -1) fail_msg("accepted: %s", bad[i].frame);
        if (e.code != bad[i].code) fail_msg("%s: code %d", bad[i].frame, e.code);
        assert_true(e.message[0] != '\0');
        if (bad[i].id)
            assert_string_equal(e.id, bad[i].id);
        else
            assert_null(e.id);
        gw_perr_free(&e);
    }
}

static void test_channel_limits(void **state)
{
    (void)state;
    char name[300];
    const char *why;
    memset(name, 'a', sizeof name);
    assert_true(gw_channel_valid(name, 256, &why));
    assert_false(gw_channel_valid(name, 257, &why));
    assert_false(gw_channel_valid("\xff", 1, &why));
    assert_true(gw_channel_valid("caf\xc3\xa9", 5, &why));

    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"subscribe\",\"channels\":[");
    for (int i = 0; i < 101; i++) gw_buf_printf(&b, "%s\"c%d\"", i ? "," : "", i);
    gw_buf_puts(&b, "]}");
    gw_req_t r;
    gw_perr_t e;
    gw_dialect_t d = GW_DIALECT_V1;
    assert_int_equal(gw_req_parse(b.data, b.len, 100, &d, &r, &e), -1);
    assert_int_equal(e.code, GW_E_BAD_REQUEST);
    assert_non_null(strstr(e.message, "too many"));
    gw_perr_free(&e);
    assert_int_equal(gw_req_parse(b.data, b.len, 101, &d, &r, &e), 0);
    assert_int_equal(r.nchannels, 101);
    gw_req_free(&r);
    gw_buf_free(&b);
}

/* A control frame completed with a seq must be one valid JSON object. */
static json_t *complete(gw_msg_t *m, unsigned long long seq)
{
    char text[4096];
    snprintf(text, sizeof text, "%.*s%llu}", (int)m->len, m->data, seq);
    gw_msg_unref(m);
    json_error_t err;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!v) fail_msg("invalid frame %s: %s", text, err.text);
    return v;
}

static void test_encoders(void **state)
{
    (void)state;
    json_t *v = complete(gw_frame_welcome("n\"1", "s", "user", NULL), 1);
    assert_string_equal(json_string_value(json_object_get(v, "node")), "n\"1");
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), 1);
    json_decref(v);

    char *chans[] = {"a", "b\n"};
    size_t lens[] = {1, 2};
    v = complete(gw_frame_ack("unsubscribed", "\"x\"", chans, lens, 2, "acl_changed"), 9);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "unsubscribed");
    assert_string_equal(json_string_value(json_object_get(v, "id")), "x");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "channels"), 1)),
                        "b\n");
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "acl_changed");
    json_decref(v);

    v = complete(gw_frame_error(GW_E_INVALID_CHANNEL, "why \"not\"", "7", "c\x01"), 3);
    assert_string_equal(json_string_value(json_object_get(v, "code")), "invalid_channel");
    assert_int_equal(json_integer_value(json_object_get(v, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(v, "channel")), "c\x01");
    json_decref(v);

    v = complete(gw_frame_pong(NULL), 9007199254740993ull);
    assert_null(json_object_get(v, "id"));
    json_decref(v);

    v = complete(gw_frame_resync("redis_reconnected"), 4);
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "redis_reconnected");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_ok),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_channel_limits),
        cmocka_unit_test(test_encoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

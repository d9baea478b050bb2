/* The legacy dialect's parser and encoders: the Python gateway's frames, field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "legacy.h"
#include "proto.h"

static int parse(const char *s, gw_dialect_t *d, gw_req_t *r, gw_perr_t *e)
{
    return gw_req_parse(s, strlen(s), 100, d, r, e);
}

static void test_dialect_is_decided_by_the_frame(void **state)
{
    (void)state;
    gw_req_t r;
    gw_perr_t e;
    gw_dialect_t d = GW_DIALECT_UNKNOWN;
    assert_int_equal(parse("{\"action\":\"ping\",\"requestId\":\"p1\"}", &d, &r, &e), 0);
    assert_int_equal(d, GW_DIALECT_LEGACY);
    assert_int_equal(r.type, GW_REQ_PING);
    assert_string_equal(r.id, "\"p1\"");
    gw_req_free(&r);

    d = GW_DIALECT_UNKNOWN;
    assert_int_equal(parse("{\"type\":\"ping\",\"action\":\"x\"}", &d, &r, &e), 0);
    assert_int_equal(d, GW_DIALECT_V1); /* "type" wins: v1 clients never send "action" */
    gw_req_free(&r);

    d = GW_DIALECT_UNKNOWN; /* tells neither: refused in v1 terms, still undecided */
    assert_int_equal(parse("{\"id\":1}", &d, &r, &e), -1);
    assert_int_equal(d, GW_DIALECT_UNKNOWN);
    assert_non_null(strstr(e.message, "\"type\""));
    gw_perr_free(&e);

    d = GW_DIALECT_UNKNOWN; /* refused, but decided: the reply is in the legacy dialect */
    assert_int_equal(parse("{\"action\":\"nope\",\"requestId\":\"r\"}", &d, &r, &e), -1);
    assert_int_equal(d, GW_DIALECT_LEGACY);
    assert_string_equal(e.message, "Unknown action: nope");
    assert_string_equal(e.id, "\"r\"");
    gw_perr_free(&e);
}

static void test_legacy_subscribe_keeps_invalid_names_for_later(void **state)
{
    (void)state;
    gw_req_t r;
    gw_perr_t e;
    gw_dialect_t d = GW_DIALECT_LEGACY;
    assert_int_equal(
        parse("{\"action\":\"subscribe\",\"channels\":[\"a\",\"\",\"a\",\"b[\"]}", &d, &r, &e), 0);
    assert_int_equal(r.nchannels, 3); /* deduplicated, not validated */
    assert_string_equal(r.channels[1], "");
    assert_null(r.id);
    gw_req_free(&r);
    assert_int_equal(parse("{\"action\":\"subscribe\",\"channels\":[]}", &d, &r, &e), 0);
    assert_int_equal(r.nchannels, 0);
    gw_req_free(&r);
}

static void test_legacy_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *frame, *message;
    } cases[] = {
        {"{nope", "Invalid JSON"},
        {"[]", "Invalid JSON"},
        {"{\"requestId\":1}", "Missing action"},
        {"{\"action\":null}", "Invalid action: must be a string"},
        {"{\"action\":\"subscribe\"}", "Invalid channels: expected an array of strings"},
        {"{\"action\":\"unsubscribe\",\"channels\":[1]}",
         "Invalid channels: expected an array of strings"},
        {"{\"action\":\"ping\",\"requestId\":[1]}",
         "Invalid requestId: must be a string, a number or a boolean"},
        {"{\"action\":\"ping\",\"requestId\":"
         "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
         "Invalid requestId: is longer than 128 bytes"},
        {"{\"action\":\"auth\",\"token\":\"t\"}", "Unknown action: auth"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_req_t r;
        gw_perr_t e;
        gw_dialect_t d = GW_DIALECT_LEGACY;
        assert_int_equal(parse(cases[i].frame, &d, &r, &e), -1);
        assert_string_equal(e.message, cases[i].message);
        gw_perr_free(&e);
    }
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"action\":\"subscribe\",\"channels\":[");
    for (int i = 0; i < 101; i++) gw_buf_printf(&b, "%s\"c%d\"", i ? "," : "", i);
    gw_buf_puts(&b, "]}");
    gw_req_t r;
    gw_perr_t e;
    gw_dialect_t d = GW_DIALECT_LEGACY;
    assert_int_equal(gw_req_parse(b.data, b.len, 100, &d, &r, &e), -1);
    assert_string_equal(e.message, "Too many channels in one request (101, at most 100)");
    gw_perr_free(&e);
    gw_buf_free(&b);
}

static json_t *complete(gw_msg_t *m)
{
    char text[4096];
    snprintf(text, sizeof text, "%.*s7}", (int)m->len, m->data);
    gw_msg_unref(m);
    json_error_t err;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!v) fail_msg("invalid frame %s: %s", text, err.text);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), 7);
    const char *ts = json_string_value(json_object_get(v, "timestamp"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 32); /* 2026-12-01T02:55:35.310644+00:00 */
    assert_string_equal(ts + 26, "+00:00");
    return v;
}

static void test_encoders(void **state)
{
    (void)state;
    json_t *v = complete(gw_legacy_connected("user"));
    assert_string_equal(json_string_value(json_object_get(v, "type")), "connected");
    assert_string_equal(json_string_value(json_object_get(v, "role")), "user");
    const char *id = json_string_value(json_object_get(v, "clientId"));
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4'); /* version 4 */
    json_decref(v);

    char *chans[] = {"a", "b\"c"};
    size_t lens[] = {1, 3};
    char *errs[] = {"Access denied to channel: x\n"};
    v = complete(gw_legacy_subscribed("\"sub-1\"", chans, lens, 2, errs, 1));
    assert_string_equal(json_string_value(json_object_get(v, "requestId")), "sub-1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "channels"), 1)),
                        "b\"c");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "errors"), 0)),
                        "Access denied to channel: x\n");
    json_decref(v);

    v = complete(gw_legacy_subscribed(NULL, NULL, NULL, 0, NULL, 0));
    assert_true(json_is_null(json_object_get(v, "requestId"))); /* present, null */
    assert_int_equal(json_array_size(json_object_get(v, "errors")), 0);
    json_decref(v);

    v = complete(gw_legacy_unsubscribed("5", chans, lens, 1, "acl_changed"));
    assert_int_equal(json_integer_value(json_object_get(v, "requestId")), 5);
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "acl_changed");
    json_decref(v);

    v = complete(gw_legacy_pong("true"));
    assert_true(json_is_true(json_object_get(v, "requestId")));
    json_decref(v);

    v = complete(gw_legacy_error(GW_E_UNKNOWN_TYPE, "Unknown action: \x01", NULL));
    assert_string_equal(json_string_value(json_object_get(v, "error")), "Unknown action: \x01");
    assert_string_equal(json_string_value(json_object_get(v, "code")), "unknown_type");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialect_is_decided_by_the_frame),
        cmocka_unit_test(test_legacy_subscribe_keeps_invalid_names_for_later),
        cmocka_unit_test(test_legacy_refusals),
        cmocka_unit_test(test_encoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

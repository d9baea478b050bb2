/* The hot-path JSON validator and string escaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "json.h"

static const char *const valid[] = {
    "0",
    "-0",
    "1.5e10",
    "-1.25E-3",
    "true",
    "false",
    "null",
    "\"\"",
    "\"a\\nb\"",
    "\"\\u00e9\\ud83d\\ude00\"",
    "[]",
    "{}",
    " [ 1 , 2 ] ",
    "{\"a\":{\"b\":[null]}}",
    "\"caf\xc3\xa9\"",
    "\"\xf0\x9f\x98\x80\"",
    "\t\n\r 7 \n",
};

static const char *const invalid[] = {
    "",
    " ",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "tru",
    "nul",
    "[1,]",
    "{\"a\"}",
    "{\"a\":}",
    "{a:1}",
    "[1 2]",
    "\"unterminated",
    "\"bad \\x escape\"",
    "\"\\u12g4\"",
    "\"ctl \x01\"",
    "\"\xff\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "{} {}",
    "1 2",
    "[",
    "]",
    "{\"a\":1,}",
    "NaN",
    "Infinity",
};

static void test_validator_tables(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (!gw_json_valid(valid[i], strlen(valid[i]))) fail_msg("rejected valid: %s", valid[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (gw_json_valid(invalid[i], strlen(invalid[i])))
            fail_msg("accepted invalid: %s", invalid[i]);
}

static void test_depth_limit(void **state)
{
    (void)state;
    char buf[2 * (GW_JSON_MAX_DEPTH + 2)];
    size_t d = GW_JSON_MAX_DEPTH;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    assert_true(gw_json_valid(buf, 2 * d));
    d = GW_JSON_MAX_DEPTH + 1;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    assert_false(gw_json_valid(buf, 2 * d));
}

/* Whatever bytes go in, the escaped string is valid JSON (jansson agrees) and, for valid
 * UTF-8 input, decodes back to the same bytes. */
static void test_escape_roundtrip(void **state)
{
    (void)state;
    srand(7);
    for (int iter = 0; iter < 5000; iter++) {
        unsigned char in[64];
        size_t n = (size_t)(rand() % 64);
        for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(iter % 2 ? rand() % 128 : rand());
        gw_buf_t b = GW_BUF_INIT;
        gw_json_put_string(&b, (const char *)in, n);
        assert_true(gw_json_valid(b.data, b.len));
        json_error_t err;
        json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(v);
        if (iter % 2) { /* ASCII input: exact round trip */
            assert_int_equal(json_string_length(v), n);
            assert_memory_equal(json_string_value(v), in, n);
        }
        json_decref(v);
        gw_buf_free(&b);
    }
}

static void test_escape_replaces_invalid_utf8(void **state)
{
    (void)state;
    gw_buf_t b = GW_BUF_INIT;
    gw_json_put_string(&b, "a\xff\"\\\n\x01z", 7);
    assert_string_equal(b.data, "\"a\\ufffd\\\"\\\\\\n\\u0001z\"");
    gw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_tables),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_escape_roundtrip),
        cmocka_unit_test(test_escape_replaces_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

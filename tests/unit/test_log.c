/* Log lines: a peer's bytes cannot end a line or reach a terminal raw, in either format;
 * a flood of one event is cut to GW_LOG_BURST lines a second and summarised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

/* Runs emit() with stderr sent to a temporary file; returns what was written. */
static char *capture(void (*emit)(void))
{
    static char out[8192];
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 2);
    emit();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static const char *hostile = "x\x1b[31m\nts=forged level=error\xc2\x9b\x7f\"\\";

static void emit_text(void)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT);
    GW_LOG(GW_LOG_WARN, "t", "text_line", "v=\"%s\"", hostile);
}

static void emit_json(void)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_JSON);
    GW_LOG(GW_LOG_WARN, "t", "json_line", "v=\"%s\"", hostile);
}

static void test_text_escapes(void **state)
{
    (void)state;
    const char *out = capture(emit_text);
    assert_non_null(strstr(out, "v=\"x\\x1b[31m\\x0ats=forged level=error\\xc2\\x9b\\x7f\"\\\"\n"));
    assert_null(strchr(out, '\x1b'));
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
}

static void test_json_escapes(void **state)
{
    (void)state;
    const char *out = capture(emit_json);
    assert_non_null(strstr(out, "x\\u001b[31m\\u000ats=forged level=error\\u00c2\\u009b\\u007f"));
    assert_non_null(strstr(out, "\\\"\\\\\\\"\"}")); /* the value's quote, backslash, quote */
    assert_null(strchr(out, '\x1b'));
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
}

static void emit_flood(void)
{
    gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT);
    for (int i = 0; i < 1000; i++) GW_LOG(GW_LOG_WARN, "t", "flood", "i=%d", i);
}

static void test_flood_is_cut(void **state)
{
    (void)state;
    const char *out = capture(emit_flood);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')); p++) lines++;
    /* The loop may straddle a second: at most two bursts. */
    assert_true(lines >= GW_LOG_BURST && lines <= 2 * GW_LOG_BURST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_escapes),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_flood_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

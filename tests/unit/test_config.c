/* The configuration table: defaults, precedence, bounds and error messages; and the
 * Redis URL parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "redis.h"

static int load(gw_config_t *cfg, char *err, int argc, char **argv)
{
    return gw_config_load(cfg, argc, argv, err, 512);
}

/* Every test starts from an empty environment: whatever the caller's shell holds must
 * not change a result. */
static void clear_env(void)
{
    clearenv();
}

static void test_defaults(void **state)
{
    (void)state;
    clear_env();
    gw_config_t cfg;
    char err[512];
    char *argv[] = {"wsgw"};
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    assert_int_equal(cfg.port, 8889);
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379");
    assert_false(cfg.require_auth);
    assert_string_equal(cfg.default_role, "user");
    assert_int_equal(cfg.max_channels, 50);
    assert_int_equal(cfg.max_wildcards, 5);
    assert_int_equal(cfg.slow_queue_bytes, 1048576);
    assert_int_equal(cfg.slow_policy, GW_POLICY_DROP);
    assert_int_equal(cfg.max_frame_bytes, 65536);
    assert_non_null(strstr(cfg.node_id, ":8889")); /* host:port */
    gw_config_free(&cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_WS_GATEWAY_PORT", "9000", 1);
    setenv("SLOW_CLIENT_POLICY", "conflate", 1);
    setenv("REQUIRE_AUTH", "yes", 1);
    setenv("NODE_ID", "gw-1", 1);
    gw_config_t cfg;
    char err[512];
    char *argv[] = {"wsgw", "--port", "9100", "--slow-client-policy=close", "--require-auth"};
    assert_int_equal(load(&cfg, err, 5, argv), 0);
    assert_int_equal(cfg.port, 9100); /* flag beats env */
    assert_int_equal(cfg.slow_policy, GW_POLICY_CLOSE);
    assert_true(cfg.require_auth);
    assert_string_equal(cfg.node_id, "gw-1"); /* env beats default */
    gw_config_free(&cfg);
    clear_env();
}

static void expect_error(int argc, char **argv, const char *needle)
{
    gw_config_t cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, err, argc, argv), -1);
    if (!strstr(err, needle)) fail_msg("error '%s' does not name '%s'", err, needle);
    assert_null(strchr(err, '\n'));
    gw_config_free(&cfg);
}

static void test_bad_values(void **state)
{
    (void)state;
    clear_env();
    char *a1[] = {"wsgw", "--port", "0"};
    expect_error(3, a1, "REDIS_WS_GATEWAY_PORT");
    char *a2[] = {"wsgw", "--port", "12x"};
    expect_error(3, a2, "REDIS_WS_GATEWAY_PORT");
    char *a3[] = {"wsgw", "--slow-client-policy", "maybe"};
    expect_error(3, a3, "drop, close, conflate");
    char *a4[] = {"wsgw", "--bogus"};
    expect_error(2, a4, "--bogus");
    char *a5[] = {"wsgw", "--port"};
    expect_error(2, a5, "--port");
    char *a6[] = {"wsgw", "--max-wildcards", "60"}; /* above the channel limit: clamped */
    gw_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, err, 3, a6), 0);
    assert_int_equal(cfg.max_wildcards, cfg.max_channels);
    assert_non_null(strstr(cfg.adjusted, "MAX_WILDCARD_SUBSCRIPTIONS"));
    gw_config_free(&cfg);
    char *a7[] = {"wsgw", "--max-channels", "99999999999999999999"};
    expect_error(3, a7, "MAX_CHANNELS_PER_CLIENT");
    setenv("REQUIRE_AUTH", "sure", 1);
    char *a8[] = {"wsgw"};
    expect_error(1, a8, "REQUIRE_AUTH");
    clear_env();
    char *a9[] = {"wsgw", "--node-id", "gw 1"}; /* the control plane would refuse it */
    expect_error(3, a9, "invalid NODE_ID: node_id: byte 2");
}

static void test_secret_not_echoed(void **state)
{
    (void)state;
    clear_env();
    char *key = malloc(5001);
    memset(key, 'k', 5000);
    memcpy(key, "hunter2", 7);
    key[5000] = '\0';
    setenv("GATEWAY_API_KEY", key, 1);
    gw_config_t cfg;
    char err[512];
    char *argv[] = {"wsgw"};
    assert_int_equal(load(&cfg, err, 1, argv), -1);
    assert_non_null(strstr(err, "GATEWAY_API_KEY"));
    assert_null(strstr(err, "hunter2"));
    gw_config_free(&cfg);
    free(key);
    clear_env();
}

/* The Python gateway's names: REDIS_HOST/REDIS_PORT, the bind alias, booleans in any
 * case, a setting that is accepted and reported as ignored. */
static void test_legacy_names(void **state)
{
    (void)state;
    gw_config_t cfg;
    char err[512];
    char *argv[] = {"wsgw"};

    clear_env();
    setenv("REDIS_HOST", "redis", 1);
    setenv("REDIS_PORT", "6380", 1);
    setenv("REDIS_WS_GATEWAY_HOST", "127.0.0.1", 1);
    setenv("REQUIRE_AUTH", "True", 1);
    setenv("MAX_MESSAGES_PER_SECOND", "100", 1);
    setenv("CLIENT_PROTOCOL", "legacy", 1);
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    assert_string_equal(cfg.redis_url, "redis://redis:6380");
    assert_string_equal(cfg.bind_address, "127.0.0.1");
    assert_true(cfg.require_auth);
    assert_string_equal(cfg.ignored, "MAX_MESSAGES_PER_SECOND");
    assert_int_equal(cfg.client_protocol, GW_PROTO_LEGACY);
    assert_string_equal(cfg.api_key_role, "admin"); /* what GATEWAY_API_KEY granted there */
    gw_config_free(&cfg);

    setenv("REDIS_URL", "redis://REDIS:6380/2", 1); /* the same server: fine */
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    gw_config_free(&cfg);
    setenv("REDIS_URL", "redis://other:6380", 1);
    assert_int_equal(load(&cfg, err, 1, argv), -1);
    assert_non_null(strstr(err, "REDIS_HOST"));
    assert_non_null(strstr(err, "REDIS_URL"));
    gw_config_free(&cfg);
    unsetenv("REDIS_HOST"); /* only the port given: it must agree too */
    setenv("REDIS_URL", "redis://other:6379", 1);
    assert_int_equal(load(&cfg, err, 1, argv), -1);
    assert_non_null(strstr(err, "REDIS_PORT"));
    gw_config_free(&cfg);

    clear_env();
    setenv("BIND_ADDRESS", "0.0.0.0", 1);
    setenv("REDIS_WS_GATEWAY_HOST", "127.0.0.1", 1);
    assert_int_equal(load(&cfg, err, 1, argv), -1);
    assert_non_null(strstr(err, "REDIS_WS_GATEWAY_HOST"));
    assert_non_null(strstr(err, "BIND_ADDRESS"));
    gw_config_free(&cfg);
    setenv("REDIS_WS_GATEWAY_HOST", "0.0.0.0", 1); /* both, agreeing */
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    assert_string_equal(cfg.ignored, "");
    gw_config_free(&cfg);

    clear_env(); /* IPv6 hosts: bracketed in the URL, compared without brackets */
    setenv("REDIS_HOST", "::1", 1);
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    assert_string_equal(cfg.redis_url, "redis://[::1]:6379");
    gw_config_free(&cfg);
    setenv("REDIS_URL", "redis://[::1]:6379", 1);
    assert_int_equal(load(&cfg, err, 1, argv), 0);
    gw_config_free(&cfg);
    for (const char *const *v = (const char *const[]){"u:pw@h", "[::1]", "h/0", "", NULL}; *v;
         v++) {
        clear_env();
        setenv("REDIS_HOST", *v, 1);
        assert_int_equal(load(&cfg, err, 1, argv), -1);
        assert_non_null(strstr(err, "REDIS_HOST"));
        assert_null(strstr(err, "pw")); /* whatever it was, not echoed */
        gw_config_free(&cfg);
    }

    clear_env();
    for (const char *const *v = (const char *const[]){"FALSE", "Off", "no", "0", NULL}; *v; v++) {
        setenv("REQUIRE_AUTH", *v, 1);
        assert_int_equal(load(&cfg, err, 1, argv), 0);
        assert_false(cfg.require_auth);
        gw_config_free(&cfg);
    }
    setenv("ALLOWED_ORIGINS", "https://a.example, ftp://b", 1);
    assert_int_equal(load(&cfg, err, 1, argv), -1);
    assert_non_null(strstr(err, "ALLOWED_ORIGINS"));
    gw_config_free(&cfg);
}

static void test_redis_url(void **state)
{
    (void)state;
    gw_redis_url_t u;
    const char *why;
    assert_int_equal(gw_redis_url_parse("redis://localhost:6380/2", &u, &why), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_null(u.password);
    gw_redis_url_free(&u);

    assert_int_equal(gw_redis_url_parse("redis://:s3cr@t@10.0.0.1", &u, &why), 0);
    assert_string_equal(u.password, "s3cr@t");
    assert_null(u.user);
    assert_int_equal(u.port, 6379);
    gw_redis_url_free(&u);

    assert_int_equal(gw_redis_url_parse("redis://bob:pw@h:1/", &u, &why), 0);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    gw_redis_url_free(&u);

    assert_int_equal(gw_redis_url_parse("redis://[::1]:6380", &u, &why), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    gw_redis_url_free(&u);
    assert_int_equal(gw_redis_url_parse("redis://[fe80::1]", &u, &why), 0);
    assert_int_equal(u.port, 6379);
    gw_redis_url_free(&u);

    const char *bad[] = {"http://h",      "redis://",       "redis://h:0",  "redis://h:70000",
                         "redis://h:abc", "redis://h/x",    "redis://pw@h", "redis://::1:6379",
                         "redis://[::1",  "redis://[::1]x", "redis://[]:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (gw_redis_url_parse(bad[i], &u, &why) != -1) fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_values), cmocka_unit_test(test_secret_not_echoed),
        cmocka_unit_test(test_redis_url),  cmocka_unit_test(test_legacy_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

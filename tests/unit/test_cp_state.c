/* The control plane's state: validation with named fields, versions, keys (hash only),
 * and atomic persistence across a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "state.h"

#define NOW 1800000000

static cp_role_msg_t role(const char *name, char **allow, size_t nallow, char **deny, size_t ndeny)
{
    cp_role_msg_t r;
    wsgw__control__v1__role__init(&r);
    r.name = (char *)name;
    r.allow = allow;
    r.n_allow = nallow;
    r.deny = deny;
    r.n_deny = ndeny;
    return r;
}

static void test_new_state(void **state)
{
    (void)state;
    cp_state_t *s = cp_state_new();
    assert_int_equal(cp_state_version(s), 1);
    assert_int_equal(strlen(cp_state_epoch(s)), 32);
    assert_true(cp_state_has_role(s, "user"));
    assert_true(cp_state_has_role(s, "admin"));
    assert_true(cp_state_has_role(s, "internal"));
    cp_state_t *t = cp_state_new();
    assert_string_not_equal(cp_state_epoch(s), cp_state_epoch(t));
    cp_state_free(t);
    cp_state_free(s);
}

static void test_put_role_validation(void **state)
{
    (void)state;
    cp_state_t *s = cp_state_new();
    char err[256];
    char *allow[] = {"market:*", "[bad"}, *deny[] = {"engine:decision:*"};
    cp_role_msg_t r = role("trader", allow, 2, deny, 1);
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "role.allow[1]"));
    assert_int_equal(cp_state_version(s), 1);

    r = role("bad name!", allow, 1, deny, 1);
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "role.name"));

    cp_limits_msg_t lim;
    wsgw__control__v1__limits__init(&lim);
    lim.max_channels = 1000001;
    r = role("trader", allow, 1, deny, 1);
    r.limits = &lim;
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "role.limits.max_channels"));
    lim.max_channels = 10;
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), 0);
    assert_int_equal(cp_state_version(s), 2);
    assert_true(cp_state_has_role(s, "trader"));
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), 0); /* replace */
    assert_int_equal(cp_state_version(s), 3);
    cp_state_free(s);
}

static void test_delete_role(void **state)
{
    (void)state;
    cp_state_t *s = cp_state_new();
    char err[256];
    assert_int_equal(cp_state_delete_role(s, "user", err, sizeof err), -1); /* default role */
    assert_non_null(strstr(err, "default role"));
    assert_int_equal(cp_state_delete_role(s, "nobody", err, sizeof err), -2);
    assert_int_equal(cp_state_delete_role(s, "admin", err, sizeof err), 0);
    assert_false(cp_state_has_role(s, "admin"));
    assert_int_equal(cp_state_version(s), 2);
    cp_state_free(s);
}

static void test_keys(void **state)
{
    (void)state;
    cp_state_t *s = cp_state_new();
    char err[256], secret[64], id[64];
    assert_int_equal(cp_state_create_key(s, "nobody", 0, "", "", NOW, secret, id, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "role"));
    assert_int_equal(
        cp_state_create_key(s, "user", NOW - 1, "", "", NOW, secret, id, err, sizeof err), -1);
    assert_non_null(strstr(err, "expires_at"));
    assert_int_equal(
        cp_state_create_key(s, "internal", 0, "ci", "", NOW, secret, id, err, sizeof err), 0);
    assert_int_equal(strncmp(secret, "wsgw_", 5), 0);
    assert_int_equal(strlen(secret), 37);
    assert_int_equal(strncmp(id, "k_", 2), 0);
    assert_int_equal(
        cp_state_create_key(s, "user", 0, "", "fixed-id", NOW, secret, id, err, sizeof err), 0);
    assert_string_equal(id, "fixed-id");
    assert_int_equal(
        cp_state_create_key(s, "user", 0, "", "fixed-id", NOW, secret, id, err, sizeof err), -3);
    assert_int_equal(cp_state_revoke_key(s, "fixed-id", err, sizeof err), 0);
    uint64_t v = cp_state_version(s);
    assert_int_equal(cp_state_revoke_key(s, "fixed-id", err, sizeof err), 0); /* idempotent */
    assert_int_equal(cp_state_version(s), v);
    assert_int_equal(cp_state_revoke_key(s, "nope", err, sizeof err), -2);

    /* Only the hash is kept: it matches the secret, and admin views leave it out. */
    size_t n;
    uint8_t *p = cp_state_pack(s, true, &n);
    cp_snapshot_msg_t *m = wsgw__control__v1__snapshot__unpack(NULL, n, p);
    unsigned char h[32];
    gw_sha256(secret, strlen(secret), h);
    assert_int_equal(m->n_api_keys, 2);
    assert_int_equal(m->api_keys[1]->sha256.len, 32);
    assert_memory_equal(m->api_keys[1]->sha256.data, h, 32);
    assert_true(m->api_keys[1]->revoked);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    free(p);
    p = cp_state_pack(s, false, &n);
    m = wsgw__control__v1__snapshot__unpack(NULL, n, p);
    assert_int_equal(m->api_keys[0]->sha256.len, 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    free(p);
    cp_state_free(s);
}

static void test_auth_and_limits(void **state)
{
    (void)state;
    cp_state_t *s = cp_state_new();
    char err[256];
    cp_auth_msg_t a;
    wsgw__control__v1__auth_config__init(&a);
    a.default_role = "ghost";
    a.jwt_role_claim = "role";
    assert_int_equal(cp_state_set_auth(s, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "auth.default_role"));
    a.default_role = "admin";
    a.jwt_public_key_pem = "not a key";
    assert_int_equal(cp_state_set_auth(s, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "jwt_public_key_pem"));
    a.jwt_public_key_pem = "";
    a.require_auth = true;
    assert_int_equal(cp_state_set_auth(s, &a, err, sizeof err), 0);
    /* the default role can no longer be deleted */
    assert_int_equal(cp_state_delete_role(s, "admin", err, sizeof err), -1);

    cp_limits_msg_t l;
    wsgw__control__v1__limits__init(&l);
    l.max_channels = 5;
    l.max_wildcards = 6;
    assert_int_equal(cp_state_set_limits(s, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_wildcards"));
    l.max_wildcards = 2;
    assert_int_equal(cp_state_set_limits(s, &l, err, sizeof err), 0);
    cp_state_free(s);
}

static void test_persistence(void **state)
{
    (void)state;
    char path[64], err[256], secret[64], id[64];
    snprintf(path, sizeof path, "/tmp/gwtest-state-%d.pb", (int)getpid());
    unlink(path);
    /* missing: an error, never a fresh state by accident; first boot is explicit */
    assert_null(cp_state_load(path, err, sizeof err));
    assert_non_null(strstr(err, "--init"));
    cp_state_t *s = cp_state_new();
    char *allow[] = {"market:*"};
    cp_role_msg_t r = role("trader", allow, 1, NULL, 0);
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), 0);
    assert_int_equal(
        cp_state_create_key(s, "trader", 0, "", "k1", NOW, secret, id, err, sizeof err), 0);
    assert_int_equal(cp_state_save(s, path, err, sizeof err), 0);
    uint64_t v = cp_state_version(s);
    char epoch[33];
    snprintf(epoch, sizeof epoch, "%s", cp_state_epoch(s));
    cp_state_free(s);

    s = cp_state_load(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(cp_state_version(s), v);
    assert_string_equal(cp_state_epoch(s), epoch);
    assert_true(cp_state_has_role(s, "trader"));
    assert_int_equal(cp_state_put_role(s, &r, err, sizeof err), 0);
    assert_int_equal(cp_state_version(s), v + 1); /* the counter continues */
    cp_state_free(s);

    FILE *f = fopen(path, "w");
    fputs("\xff\xff garbage", f);
    fclose(f);
    assert_null(cp_state_load(path, err, sizeof err));
    assert_non_null(strstr(err, "not a valid snapshot"));

    /* A file that decodes but that the nodes would refuse is refused at load too. */
    cp_state_t *fresh = cp_state_new();
    size_t n = wsgw__control__v1__snapshot__get_packed_size(cp_state_snapshot(fresh));
    uint8_t *buf = malloc(n);
    wsgw__control__v1__snapshot__pack(cp_state_snapshot(fresh), buf);
    Wsgw__Control__V1__Snapshot *m = wsgw__control__v1__snapshot__unpack(NULL, n, buf);
    free(m->auth->default_role);
    m->auth->default_role = strdup("ghost");
    n = wsgw__control__v1__snapshot__get_packed_size(m);
    buf = realloc(buf, n);
    wsgw__control__v1__snapshot__pack(m, buf);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    assert_null(cp_state_load(path, err, sizeof err));
    assert_non_null(strstr(err, "does not validate"));
    assert_non_null(strstr(err, "default_role"));
    wsgw__control__v1__snapshot__free_unpacked(m, NULL);
    free(buf);
    cp_state_free(fresh);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_state),       cmocka_unit_test(test_put_role_validation),
        cmocka_unit_test(test_delete_role),     cmocka_unit_test(test_keys),
        cmocka_unit_test(test_auth_and_limits), cmocka_unit_test(test_persistence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

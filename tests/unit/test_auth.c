/* Credential checks: API keys and JWTs, including a table of hostile tokens. Keys are
 * generated at test time with OpenSSL; tokens are signed with libjwt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth.h"
#include "ratelimit.h"

#define NOW 1800000000LL
static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";

static char *pem_of(EVP_PKEY *k, bool priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (priv)
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, k);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1); /* BIO data is not NUL-terminated */
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static char rsa_priv[8192], rsa_pub_path[64], ec_priv[8192], ec_pub_path[64], rsa_pub[8192];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int setup_keys(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
    char *p;
    p = pem_of(rsa, true);
    snprintf(rsa_priv, sizeof rsa_priv, "%s", p);
    free(p);
    p = pem_of(rsa, false);
    snprintf(rsa_pub, sizeof rsa_pub, "%s", p);
    snprintf(rsa_pub_path, sizeof rsa_pub_path, "/tmp/gwtest-rsa-%d.pem", (int)getpid());
    write_file(rsa_pub_path, p);
    free(p);
    p = pem_of(ec, true);
    snprintf(ec_priv, sizeof ec_priv, "%s", p);
    free(p);
    p = pem_of(ec, false);
    snprintf(ec_pub_path, sizeof ec_pub_path, "/tmp/gwtest-ec-%d.pem", (int)getpid());
    write_file(ec_pub_path, p);
    free(p);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    unlink(rsa_pub_path);
    unlink(ec_pub_path);
    return 0;
}

static gw_auth_t *make(const char *sec, const char *pubfile, const char *iss, const char *aud)
{
    static char empty[] = "", role[] = "role", internal[] = "internal";
    gw_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.api_key = empty;
    cfg.api_key_role = internal;
    cfg.jwt_secret = (char *)(sec ? sec : empty);
    cfg.jwt_public_key_file = (char *)(pubfile ? pubfile : empty);
    cfg.jwt_issuer = (char *)(iss ? iss : empty);
    cfg.jwt_audience = (char *)(aud ? aud : empty);
    cfg.jwt_role_claim = role;
    cfg.jwt_require_exp = true;
    cfg.jwt_leeway_s = 30;
    cfg.jwt_max_ttl_s = 86400;
    char err[256];
    gw_auth_t *a = gw_auth_new(&cfg, err, sizeof err);
    if (!a) fail_msg("gw_auth_new: %s", err);
    return a;
}

/* Signs claims (JSON) with alg and key; returns a malloc'd token. */
static char *sign(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *j;
    jwt_new(&j);
    jwt_add_grants_json(j, claims);
    jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key));
    char *t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static char *b64url(const char *s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s), o = 0;
    char *out = malloc(n * 2 + 4);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | (unsigned char)s[i];
        bits += 8;
        while (bits >= 6) out[o++] = tbl[(acc >> (bits -= 6)) & 63];
    }
    if (bits) out[o++] = tbl[(acc << (6 - bits)) & 63];
    out[o] = 0;
    return out;
}

static gw_auth_result_t check(gw_auth_t *a, const char *tok, gw_identity_t *id)
{
    return gw_auth_jwt(a, tok, strlen(tok), NOW, id);
}

static void test_valid_tokens(void **state)
{
    (void)state;
    gw_identity_t id;
    gw_auth_t *a = make(secret, NULL, "issuer-1", "ui");
    const char *claims = "{\"exp\":1800000600,\"iat\":1800000000,\"role\":\"admin\","
                         "\"iss\":\"issuer-1\",\"aud\":[\"x\",\"ui\"],"
                         "\"channels\":[\"market:tick:AAPL\",\"indicators:*\"]}";
    jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
    for (int i = 0; i < 3; i++) {
        char *t = sign(algs[i], secret, claims);
        assert_int_equal(check(a, t, &id), GW_AUTH_OK);
        assert_string_equal(id.role, "admin");
        assert_int_equal(id.expires, 1800000600);
        assert_int_equal(id.nchannels, 2);
        assert_string_equal(id.channels[1], "indicators:*");
        gw_identity_free(&id);
        free(t);
    }
    gw_auth_free(a);

    a = make(NULL, rsa_pub_path, NULL, NULL);
    char *t = sign(JWT_ALG_RS256, rsa_priv, "{\"exp\":1800000600}");
    assert_int_equal(check(a, t, &id), GW_AUTH_OK);
    assert_null(id.role); /* no role claim: the caller applies DEFAULT_ROLE */
    gw_identity_free(&id);
    free(t);
    gw_auth_free(a);

    a = make(NULL, ec_pub_path, NULL, NULL);
    t = sign(JWT_ALG_ES256, ec_priv, "{\"exp\":1800000600,\"role\":\"user\"}");
    assert_int_equal(check(a, t, &id), GW_AUTH_OK);
    gw_identity_free(&id);
    free(t);
    gw_auth_free(a);
}

typedef struct {
    const char *name;
    char *token;
    gw_auth_result_t want;
} hostile_t;

static void test_hostile_tokens(void **state)
{
    (void)state;
    gw_identity_t id;
    gw_auth_t *hs = make(secret, NULL, "issuer-1", "ui");
    gw_auth_t *rs = make(NULL, rsa_pub_path, NULL, NULL);
    const char *good = "{\"exp\":1800000600,\"iss\":\"issuer-1\",\"aud\":\"ui\",\"role\":\"user\"}";

    char *none_hdr = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *payload = b64url(good);
    char none_tok[1024], none_sig[1024], tampered[2048];
    snprintf(none_tok, sizeof none_tok, "%s.%s.", none_hdr, payload);
    snprintf(none_sig, sizeof none_sig, "%s.%s.c2ln", none_hdr, payload);
    /* A valid token whose payload is swapped for one claiming admin. */
    char *valid = sign(JWT_ALG_HS256, secret, good);
    char *evil = b64url("{\"exp\":1800000600,\"iss\":\"issuer-1\",\"aud\":\"ui\","
                        "\"role\":\"admin\"}");
    const char *d1 = strchr(valid, '.'), *d2 = strchr(d1 + 1, '.');
    snprintf(tampered, sizeof tampered, "%.*s.%s%s", (int)(d1 - valid), valid, evil, d2);
    free(evil);

    hostile_t hs_cases[] = {
        {"alg none", none_tok, GW_AUTH_MALFORMED},
        {"alg none with a signature", none_sig, GW_AUTH_ALG},
        {"tampered payload", tampered, GW_AUTH_SIGNATURE},
        {"wrong secret", sign(JWT_ALG_HS256, "another-secret-another-secret-xx", good),
         GW_AUTH_SIGNATURE},
        {"expired",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1799999000,\"iss\":\"issuer-1\","
              "\"aud\":\"ui\"}"),
         GW_AUTH_EXPIRED},
        {"expired within leeway is fine?", NULL, GW_AUTH_OK},
        {"not yet valid",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800009000,\"nbf\":1800000100,"
              "\"iss\":\"issuer-1\",\"aud\":\"ui\"}"),
         GW_AUTH_NOT_YET_VALID},
        {"issued in the future",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800009000,\"iat\":"
              "1800000100,\"iss\":\"issuer-1\","
              "\"aud\":\"ui\"}"),
         GW_AUTH_NOT_YET_VALID},
        {"no exp", sign(JWT_ALG_HS256, secret, "{\"iss\":\"issuer-1\",\"aud\":\"ui\"}"),
         GW_AUTH_NO_EXP},
        {"exp is a string",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":\"soon\",\"iss\":\"issuer-1\","
              "\"aud\":\"ui\"}"),
         GW_AUTH_CLAIMS},
        {"wrong iss",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800000600,\"iss\":\"evil\","
              "\"aud\":\"ui\"}"),
         GW_AUTH_ISSUER},
        {"wrong aud",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800000600,\"iss\":\"issuer-1\","
              "\"aud\":[\"other\"]}"),
         GW_AUTH_AUDIENCE},
        {"role not a string",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800000600,\"iss\":"
              "\"issuer-1\",\"aud\":\"ui\","
              "\"role\":[\"admin\"]}"),
         GW_AUTH_CLAIMS},
        {"bad channels claim",
         sign(JWT_ALG_HS256, secret,
              "{\"exp\":1800000600,\"iss\":"
              "\"issuer-1\",\"aud\":\"ui\","
              "\"channels\":[\"[x\"]}"),
         GW_AUTH_CLAIMS},
        {"RS256 token to an HMAC-only node", sign(JWT_ALG_RS256, rsa_priv, good), GW_AUTH_ALG},
        {"garbage", strdup("not-a-token"), GW_AUTH_MALFORMED},
        {"two dots of garbage", strdup("a.b.c"), GW_AUTH_MALFORMED},
        {"empty segments", strdup(".."), GW_AUTH_MALFORMED},
        {"four segments", strdup("a.b.c.d"), GW_AUTH_MALFORMED},
    };
    /* A token 30 s past exp is inside the leeway. */
    hs_cases[5].token = sign(JWT_ALG_HS256, secret,
                             "{\"exp\":1799999990,\"iss\":\"issuer-1\","
                             "\"aud\":\"ui\"}");
    for (size_t i = 0; i < sizeof hs_cases / sizeof hs_cases[0]; i++) {
        gw_auth_result_t r = check(hs, hs_cases[i].token, &id);
        if (r != hs_cases[i].want)
            fail_msg("%s: got %s, want %s", hs_cases[i].name, gw_auth_result_name(r),
                     gw_auth_result_name(hs_cases[i].want));
        gw_identity_free(&id);
        if (hs_cases[i].token != none_tok && hs_cases[i].token != none_sig &&
            hs_cases[i].token != tampered)
            free(hs_cases[i].token);
    }

    /* Algorithm confusion: HS256 signed with the RSA public key as the HMAC secret. */
    char *confused = sign(JWT_ALG_HS256, rsa_pub, "{\"exp\":1800000600}");
    assert_int_equal(check(rs, confused, &id), GW_AUTH_ALG);
    free(confused);
    assert_int_equal(check(rs, none_tok, &id), GW_AUTH_MALFORMED);
    assert_int_equal(check(rs, none_sig, &id), GW_AUTH_ALG);
    /* An ES256 token to an RSA-keyed node. */
    char *es = sign(JWT_ALG_ES256, ec_priv, "{\"exp\":1800000600}");
    assert_int_equal(check(rs, es, &id), GW_AUTH_ALG);
    free(es);

    free(valid);
    free(none_hdr);
    free(payload);
    gw_auth_free(hs);
    gw_auth_free(rs);
}

static void test_not_configured_and_key_rules(void **state)
{
    (void)state;
    gw_identity_t id;
    gw_auth_t *a = make(NULL, NULL, NULL, NULL);
    assert_int_equal(check(a, "a.b.c", &id), GW_AUTH_NOT_CONFIGURED);
    gw_apikey_t k;
    memset(&k, 0, sizeof k);
    strcpy(k.id, "k1");
    strcpy(k.role, "internal");
    gw_sha256("open-sesame", 11, k.hash);
    gw_auth_put_key(a, &k);
    assert_int_equal(gw_auth_api_key(a, "open-sesame", 11, NOW, &id), GW_AUTH_OK);
    assert_string_equal(id.role, "internal");
    assert_string_equal(id.key_id, "k1");
    gw_identity_free(&id);
    assert_int_equal(gw_auth_api_key(a, "open-sesamE", 11, NOW, &id), GW_AUTH_UNKNOWN_KEY);
    k.expires = NOW - 1;
    gw_auth_put_key(a, &k); /* same id: replaced */
    assert_int_equal(gw_auth_api_key(a, "open-sesame", 11, NOW, &id), GW_AUTH_KEY_EXPIRED);
    k.expires = 0;
    k.revoked = true;
    gw_auth_put_key(a, &k);
    assert_int_equal(gw_auth_api_key(a, "open-sesame", 11, NOW, &id), GW_AUTH_KEY_REVOKED);
    gw_auth_free(a);
}

static void test_bad_key_material(void **state)
{
    (void)state;
    static char empty[] = "", role[] = "role", internal[] = "internal", shortsec[] = "short",
                missing[] = "/nonexistent/key.pem";
    gw_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.api_key = cfg.jwt_issuer = cfg.jwt_audience = cfg.jwt_public_key_file = empty;
    cfg.api_key_role = internal;
    cfg.jwt_role_claim = role;
    cfg.jwt_secret = shortsec;
    char err[256];
    assert_null(gw_auth_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "JWT_SECRET"));
    cfg.jwt_secret = empty;
    cfg.jwt_public_key_file = missing;
    assert_null(gw_auth_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "JWT_PUBLIC_KEY_FILE"));
}

/* ES256 means P-256: other 256-bit curves are refused. */
static void test_es256_is_p256_only(void **state)
{
    (void)state;
    gw_auth_t *a = make(secret, NULL, NULL, NULL);
    char err[200];
    for (const char *const *curve = (const char *const[]){"secp256k1", "brainpoolP256r1", NULL};
         *curve; curve++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", *curve);
        assert_non_null(k);
        char *pem = pem_of(k, false);
        assert_int_equal(gw_auth_set_jwt(a, NULL, NULL, "role", 30, true, pem, err, sizeof err),
                         -1);
        free(pem);
        EVP_PKEY_free(k);
    }
    EVP_PKEY *p256 = EVP_EC_gen("P-256");
    char *pem = pem_of(p256, false);
    assert_int_equal(gw_auth_set_jwt(a, NULL, NULL, "role", 30, true, pem, err, sizeof err), 0);
    free(pem);
    EVP_PKEY_free(p256);
    gw_auth_free(a);
}

/* A session lives at most JWT_MAX_TTL_S on one token; what decides a JWT's validity
 * changing shows in the generation. */
static void test_lifetime_ceiling_and_generation(void **state)
{
    (void)state;
    gw_auth_t *a = make(secret, NULL, NULL, NULL);
    gw_identity_t id;
    char *t = sign(JWT_ALG_HS256, secret, "{\"exp\":9999999999999}"); /* year 318,857 */
    assert_int_equal(gw_auth_jwt(a, t, strlen(t), NOW, &id), GW_AUTH_OK);
    assert_int_equal(id.expires, NOW + 86400);
    gw_identity_free(&id);
    free(t);
    t = sign(JWT_ALG_HS256, secret, "{\"exp\":1800000600}");
    assert_int_equal(gw_auth_jwt(a, t, strlen(t), NOW, &id), GW_AUTH_OK);
    assert_int_equal(id.expires, 1800000600); /* a shorter exp stands */
    gw_identity_free(&id);
    free(t);

    char err[200];
    uint64_t g0 = gw_auth_jwt_generation(a);
    assert_int_equal(gw_auth_set_jwt(a, NULL, NULL, "role", 10, false, NULL, err, sizeof err), 0);
    assert_int_equal(gw_auth_jwt_generation(a), g0); /* leeway, exp policy: not validity */
    assert_int_equal(gw_auth_set_jwt(a, "idp", NULL, "role", 10, false, NULL, err, sizeof err), 0);
    assert_true(gw_auth_jwt_generation(a) > g0);
    gw_auth_free(a);
}

static void test_token_bucket(void **state)
{
    (void)state;
    gw_bucket_t b = {0};
    uint64_t t = 1000;
    for (int i = 0; i < 5; i++) assert_true(gw_bucket_take(&b, 10, 5, t)); /* burst */
    assert_false(gw_bucket_take(&b, 10, 5, t));
    assert_false(gw_bucket_take(&b, 10, 5, t + 99999)); /* 0.99 token */
    assert_true(gw_bucket_take(&b, 10, 5, t + 100000));
    assert_false(gw_bucket_take(&b, 10, 5, t + 100000));
    t += 10 * 1000000; /* a long pause refills to the burst, not beyond */
    for (int i = 0; i < 5; i++) assert_true(gw_bucket_take(&b, 10, 5, t));
    assert_false(gw_bucket_take(&b, 10, 5, t));
    int ok = 0; /* sustained: 10 per second */
    for (int ms = 1; ms <= 1000; ms++) ok += gw_bucket_take(&b, 10, 5, t + (uint64_t)ms * 1000);
    assert_int_equal(ok, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tokens),
        cmocka_unit_test(test_hostile_tokens),
        cmocka_unit_test(test_not_configured_and_key_rules),
        cmocka_unit_test(test_bad_key_material),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_es256_is_p256_only),
        cmocka_unit_test(test_lifetime_ceiling_and_generation),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}

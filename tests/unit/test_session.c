/* One session: seq numbering, coalesced output, slow-consumer policies, pending acks
 * and fragment reassembly, with a fake transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "session.h"
#include "stats.h"

typedef struct {
    int want_write;
    int closes;
    int close_code;
    int confirm_immediately;
} fake_t;

static fake_t fake;
static gw_config_t cfg;
static gw_hub_t *hub;

static void want_write(gw_session_t *s)
{
    (void)s;
    fake.want_write++;
}

static void do_close(gw_session_t *s, int code, const char *reason)
{
    (void)s;
    (void)reason;
    fake.closes++;
    fake.close_code = code;
}

static int hub_cmd(void *ud, bool subscribe, bool pattern, const char *const *names,
                   const size_t *lens, size_t n)
{
    (void)ud;
    (void)subscribe;
    (void)pattern;
    (void)names;
    (void)lens;
    (void)n;
    return 0;
}

static void hub_resync(void *ud)
{
    (void)ud;
}

static const gw_hub_ops_t hub_ops = {hub_cmd, gw_session_deliver, gw_session_sub_active,
                                     hub_resync};
static gw_session_env_t env;
static gw_roles_t *roles;
static gw_auth_t *auth;
static uint64_t fake_us;
static int64_t fake_unix = 1800000000;

static uint64_t now_us(void)
{
    return fake_us;
}

static int64_t now_unix(void)
{
    return fake_unix;
}

/* The text of queued frame i (0: the oldest), read through the writer's own path;
 * NUL-terminated in a static buffer, or NULL when fewer frames are queued. */
static const char *peek_text(gw_session_t *s, size_t i)
{
    static unsigned char out[1 << 16];
    static char text[1 << 16];
    size_t ends[64], need, n = gw_session_peek(s, out, sizeof out, ends, 64, &need);
    if (i >= n) return NULL;
    size_t start = i ? ends[i - 1] : 0, h = out[start + 1] == 126 ? 4 : 2;
    size_t len = ends[i] - start - h;
    memcpy(text, out + start + h, len);
    text[len] = '\0';
    return text;
}

/* A started, anonymous session whose welcome frame is already written out. */
static gw_session_t *new_session(uint64_t serial)
{
    gw_session_t *s = gw_session_new(&env, NULL, serial);
    gw_session_start(s, NULL, NULL);
    unsigned char buf[256];
    size_t need;
    assert_true(gw_session_fill(s, buf, sizeof buf, &need) > 0);
    assert_int_equal(s->seq, 1);
    fake.want_write = 0;
    gw_stats.frames_sent = 0;
    return s;
}

static int setup(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof fake);
    memset(&gw_stats, 0, sizeof gw_stats);
    memset(&cfg, 0, sizeof cfg);
    cfg.max_channels = 50;
    cfg.max_wildcards = 5;
    cfg.max_channels_per_request = 100;
    cfg.max_redis_patterns = 64;
    cfg.jwt_max_ttl_s = 86400;
    cfg.slow_queue_bytes = 4096;
    cfg.slow_policy = GW_POLICY_DROP;
    cfg.max_frame_bytes = 1024;
    cfg.client_rate_limit = 1000;
    cfg.client_rate_burst = 1000;
    cfg.client_rate_max_strikes = 5;
    static char user[] = "user", node[] = "n1", empty[] = "", role_claim[] = "role";
    cfg.default_role = user;
    cfg.node_id = node;
    cfg.api_key = cfg.jwt_secret = cfg.jwt_public_key_file = empty;
    cfg.jwt_issuer = cfg.jwt_audience = empty;
    cfg.jwt_role_claim = role_claim;
    cfg.stats_token = empty;
    const char *json = "{\"roles\":[{\"name\":\"user\",\"allow\":[\"*\"],"
                       "\"deny\":[\"secret:*\"]}]}";
    char err[200];
    roles = gw_roles_parse(json, strlen(json), err, sizeof err);
    assert_non_null(roles);
    auth = gw_auth_new(&cfg, err, sizeof err);
    assert_non_null(auth);
    hub = gw_hub_new(&hub_ops, NULL);
    gw_hub_on_link_up(hub);
    env = (gw_session_env_t){.hub = hub,
                             .cfg = &cfg,
                             .auth = auth,
                             .roles = roles,
                             .want_write = want_write,
                             .close = do_close,
                             .now_us = now_us,
                             .now_unix = now_unix};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_hub_free(hub);
    gw_auth_free(auth);
    gw_roles_unref(roles);
    return 0;
}

static void publish(gw_session_t *s, const char *chan, int i)
{
    char data[200];
    int n = snprintf(data, sizeof data, "{\"i\":%d,\"pad\":\"%0100d\"}", i, 0);
    gw_msg_t *m = gw_msg_new_message(chan, strlen(chan), NULL, 0, data, (size_t)n, 0, 0);
    gw_session_send(s, m);
    gw_msg_unref(m);
}

/* Drains the session and decodes every frame: returns how many, fills seqs/ids. */
static int drain(gw_session_t *s, uint64_t *seqs, int *ids, char (*chans)[32], int max)
{
    static unsigned char out[1 << 20];
    size_t need;
    size_t n = gw_session_fill(s, out, sizeof out, &need);
    int count = 0;
    for (size_t off = 0; off < n; count++) {
        assert_int_equal(out[off], 0x81);
        size_t len = out[off + 1], h = 2;
        if (len == 126) {
            len = (size_t)out[off + 2] << 8 | out[off + 3];
            h = 4;
        }
        json_error_t err;
        json_t *v = json_loadb((char *)out + off + h, len, 0, &err);
        assert_non_null(v);
        if (count < max) {
            seqs[count] = (uint64_t)json_integer_value(json_object_get(v, "seq"));
            json_t *d = json_object_get(v, "data");
            ids[count] = d ? (int)json_integer_value(json_object_get(d, "i")) : -1;
            const char *c = json_string_value(json_object_get(v, "channel"));
            snprintf(chans[count], 32, "%s", c ? c : "");
        }
        json_decref(v);
        off += h + len;
    }
    return count;
}

static void test_seq_and_coalescing(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    for (int i = 0; i < 5; i++) publish(s, "a", i);
    assert_int_equal(fake.want_write, 1); /* asked once, not per message */
    uint64_t seqs[8];
    int ids[8];
    char chans[8][32];
    assert_int_equal(drain(s, seqs, ids, chans, 8), 5); /* five frames, one buffer */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(seqs[i], i + 2);
        assert_int_equal(ids[i], i);
    }
    assert_int_equal(gw_session_queued(s), 0);
    assert_int_equal(gw_stats.frames_sent, 5);
    gw_session_free(s);
}

static void test_fill_needs_bigger_buffer(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    publish(s, "a", 1);
    unsigned char small[16];
    size_t need;
    assert_int_equal(gw_session_fill(s, small, sizeof small, &need), 0);
    assert_true(need > sizeof small);
    size_t want = need;
    unsigned char *big = malloc(want);
    assert_int_equal(gw_session_fill(s, big, want, &need), want);
    assert_int_equal(gw_session_queued(s), 0);
    free(big);
    gw_session_free(s);
}

static void test_drop_policy_keeps_newest_and_shows_gap(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    for (int i = 0; i < 200; i++) publish(s, "a", i);
    assert_true(gw_session_queued_bytes(s) <= (size_t)cfg.slow_queue_bytes);
    uint64_t seqs[256];
    int ids[256];
    char chans[256][32];
    int n = drain(s, seqs, ids, chans, 256);
    assert_true(n > 0 && n < 200);
    assert_int_equal(ids[n - 1], 199);
    assert_int_equal(seqs[n - 1], 201);
    for (int i = 0; i < n; i++) assert_int_equal(seqs[i], (uint64_t)ids[i] + 2);
    assert_int_equal(gw_stats.dropped_drop, 200 - n);
    assert_int_equal(fake.closes, 0);
    gw_session_free(s);
}

static void test_drop_policy_behind_control_frame(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    gw_msg_t *pong = gw_frame_pong("\"p\"");
    gw_session_send(s, pong); /* a control frame at the head is never dropped */
    gw_msg_unref(pong);
    for (int i = 0; i < 100; i++) publish(s, "a", i);
    uint64_t seqs[128];
    int ids[128];
    char chans[128][32];
    int n = drain(s, seqs, ids, chans, 128);
    assert_int_equal(seqs[0], 2);
    assert_int_equal(ids[0], -1);
    assert_int_equal(ids[n - 1], 99);
    assert_true(n < 101);
    gw_session_free(s);
}

static void test_close_policy(void **state)
{
    (void)state;
    cfg.slow_policy = GW_POLICY_CLOSE;
    gw_session_t *s = new_session(1);
    for (int i = 0; i < 100; i++) publish(s, "a", i);
    assert_int_equal(fake.closes, 1);
    assert_int_equal(fake.close_code, 1013);
    assert_true(s->closing);
    assert_int_equal(gw_session_queued(s), 0);
    assert_int_equal(gw_stats.slow_closes, 1);
    gw_session_free(s);
}

static void test_conflate_policy_keeps_latest_per_channel(void **state)
{
    (void)state;
    cfg.slow_policy = GW_POLICY_CONFLATE;
    gw_session_t *s = new_session(1);
    const char *ch[3] = {"t:A", "t:B", "t:C"};
    for (int i = 0; i < 300; i++) publish(s, ch[i % 3], i);
    uint64_t seqs[512];
    int ids[512];
    char chans[512][32];
    int n = drain(s, seqs, ids, chans, 512);
    assert_true(n < 300);
    int last[3] = {-1, -1, -1};
    for (int i = 0; i < n; i++) {
        int c = chans[i][2] - 'A';
        assert_true(ids[i] > last[c]);
        last[c] = ids[i];
        assert_int_equal(seqs[i], (uint64_t)ids[i] + 2);
        if (i) assert_true(seqs[i] > seqs[i - 1]);
    }
    assert_int_equal(last[0], 297);
    assert_int_equal(last[1], 298);
    assert_int_equal(last[2], 299);
    assert_int_equal(gw_stats.dropped_conflate + gw_stats.dropped_drop, 300 - n);
    assert_true(gw_stats.dropped_conflate > 0);
    gw_session_free(s);
}

static void request(gw_session_t *s, const char *json)
{
    gw_session_on_message(s, json, strlen(json), false);
}

static void test_ack_waits_for_redis(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"x\",\"y*\"],\"id\":\"c1\"}");
    assert_int_equal(gw_session_queued(s), 0); /* Redis has not confirmed yet */
    assert_int_equal(s->nsubs, 2);
    assert_int_equal(s->nwild, 1);
    gw_hub_on_confirm(hub, true, false, "x", 1);
    assert_int_equal(gw_session_queued(s), 0);
    gw_hub_on_confirm(hub, true, true, "y*", 2);
    assert_int_equal(gw_session_queued(s), 1);
    assert_non_null(strstr(peek_text(s, 0), "\"subscribed\""));

    /* Already active: the ack is immediate. */
    gw_session_t *t = new_session(2);
    request(t, "{\"type\":\"subscribe\",\"channels\":[\"x\"]}");
    assert_int_equal(gw_session_queued(t), 1);
    gw_session_free(t);
    gw_session_free(s);
}

static void test_limits(void **state)
{
    (void)state;
    cfg.max_channels = 3;
    cfg.max_wildcards = 1;
    gw_session_t *s = new_session(1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"a\",\"b\",\"c\",\"d\"]}");
    assert_int_equal(s->nsubs, 0);
    assert_int_equal(gw_stats.errors[GW_E_LIMIT_CHANNELS], 1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"a*\",\"b*\"]}");
    assert_int_equal(gw_stats.errors[GW_E_LIMIT_WILDCARDS], 1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"a\",\"b*\"]}");
    assert_int_equal(s->nsubs, 2);
    request(s, "{\"type\":\"unsubscribe\",\"channels\":[\"b*\",\"never\"]}");
    assert_int_equal(s->nsubs, 1);
    assert_int_equal(s->nwild, 0);
    gw_session_free(s);
}

static void test_fragments(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    const char *msg = "{\"type\":\"ping\",\"id\":\"f\"}";
    assert_int_equal(gw_session_on_fragment(s, msg, 5, true, false, false), 0);
    assert_int_equal(gw_session_on_fragment(s, msg + 5, 5, false, false, false), 0);
    assert_int_equal(gw_session_queued(s), 0);
    assert_int_equal(gw_session_on_fragment(s, msg + 10, strlen(msg) - 10, false, true, false), 0);
    assert_int_equal(gw_session_queued(s), 1);
    assert_non_null(strstr(peek_text(s, 0), "pong"));

    char big[600];
    memset(big, ' ', sizeof big);
    assert_int_equal(gw_session_on_fragment(s, big, sizeof big, true, false, false), 0);
    assert_int_equal(gw_session_on_fragment(s, big, sizeof big, false, false, false), -1);
    gw_session_free(s);
}

static int count_code(gw_session_t *s, const char *needle)
{
    int n = 0;
    for (size_t i = 0; i < gw_session_queued(s); i++) {
        const char *text = peek_text(s, i);
        if (getenv("DBG")) fprintf(stderr, "Q: %s\n", text);
        if (strstr(text, needle)) n++;
    }
    return n;
}

static void test_acl_denied_is_atomic(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"ok\",\"secret:x\"],\"id\":1}");
    assert_int_equal(s->nsubs, 0);
    assert_int_equal(count_code(s, "\"acl_denied\""), 1);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"s*\"]}"); /* could match secret:* */
    assert_int_equal(s->nsubs, 0);
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"t*\"]}");
    assert_int_equal(s->nsubs, 1);
    assert_int_equal(gw_stats.acl_denied, 2);
    gw_session_free(s);
}

static void test_rate_limit_then_4429(void **state)
{
    (void)state;
    cfg.client_rate_limit = 10;
    cfg.client_rate_burst = 3;
    gw_session_t *s = new_session(1);
    for (int i = 0; i < 3; i++) request(s, "{\"type\":\"ping\"}");
    assert_int_equal(count_code(s, "\"pong\""), 3);
    request(s, "{\"type\":\"ping\"}"); /* bucket empty */
    assert_int_equal(count_code(s, "\"rate_limited\""), 1);
    fake_us += 100000; /* 0.1 s: one token back */
    request(s, "{\"type\":\"ping\"}");
    assert_int_equal(count_code(s, "\"pong\""), 4);
    for (int i = 0; i < 4; i++) request(s, "{\"type\":\"ping\"}");
    assert_int_equal(fake.closes, 0);
    request(s, "{\"type\":\"ping\"}"); /* fifth refusal in a row */
    assert_int_equal(fake.closes, 1);
    assert_int_equal(fake.close_code, 4429);
    assert_int_equal(gw_stats.rate_closes, 1);
    gw_session_free(s);
}

static void test_require_auth_pending(void **state)
{
    (void)state;
    cfg.require_auth = true;
    cfg.auth_timeout_ms = 1000;
    gw_session_t *s = gw_session_new(&env, NULL, 1);
    gw_session_start(s, NULL, NULL);
    assert_int_equal(gw_session_queued(s), 0); /* no welcome before authentication */
    request(s, "{\"type\":\"subscribe\",\"channels\":[\"a\"]}");
    assert_int_equal(count_code(s, "\"auth_required\""), 1);
    assert_int_equal(fake.close_code, 4401);
    gw_session_free(s);

    fake.closes = 0;
    s = gw_session_new(&env, NULL, 2);
    gw_session_start(s, NULL, NULL);
    fake_us += 999000;
    gw_session_tick(s);
    assert_int_equal(fake.closes, 0);
    fake_us += 2000;
    gw_session_tick(s);
    assert_int_equal(fake.close_code, 4401);
    assert_int_equal(gw_stats.auth_failures[GW_AUTH_TIMEOUT], 1);
    gw_session_free(s);
    cfg.require_auth = false;
}

static void test_api_key_in_band_and_expiry(void **state)
{
    (void)state;
    cfg.require_auth = true;
    cfg.auth_expiry_warning_s = 30;
    cfg.jwt_leeway_s = 0;
    gw_apikey_t k;
    memset(&k, 0, sizeof k);
    strcpy(k.id, "k1");
    strcpy(k.role, "user");
    k.expires = fake_unix + 100;
    gw_sha256("sesame-key", 10, k.hash);
    gw_auth_put_key(auth, &k);

    gw_session_t *s = gw_session_new(&env, NULL, 1);
    gw_session_start(s, NULL, NULL);
    request(s, "{\"type\":\"auth\",\"api_key\":\"sesame-key\"}");
    assert_int_equal(count_code(s, "\"welcome\""), 1);
    assert_non_null(strstr(peek_text(s, 0), "\"seq\":1}")); /* the welcome is seq 1 */
    assert_string_equal(s->key_id, "k1");
    fake_unix += 69;
    gw_session_tick(s);
    assert_int_equal(count_code(s, "\"auth_expiring\""), 0);
    fake_unix += 2;
    gw_session_tick(s);
    assert_int_equal(count_code(s, "\"auth_expiring\""), 1);
    fake_unix += 29;
    gw_session_tick(s);
    assert_int_equal(fake.close_code, 4401);
    gw_session_free(s);

    s = gw_session_new(&env, NULL, 2); /* a wrong key in the upgrade: refused at once */
    fake.closes = 0;
    gw_session_start(s, NULL, "wrong");
    assert_int_equal(count_code(s, "\"auth_failed\""), 1);
    assert_int_equal(fake.close_code, 4401);
    gw_session_free(s);
    cfg.require_auth = false;
}

/* Drains the session; returns the frames as JSON (caller json_decref's each). */
static int drain_json(gw_session_t *s, json_t **v, int max)
{
    static unsigned char out[1 << 16];
    size_t need, n = gw_session_fill(s, out, sizeof out, &need), off = 0;
    int count = 0;
    while (off < n && count < max) {
        size_t len = out[off + 1], h = 2;
        if (len == 126) {
            len = (size_t)out[off + 2] << 8 | out[off + 3];
            h = 4;
        }
        v[count] = json_loadb((char *)out + off + h, len, 0, NULL);
        assert_non_null(v[count++]);
        off += h + len;
    }
    return count;
}

static const char *str(json_t *v, const char *key)
{
    return json_string_value(json_object_get(v, key));
}

static void message(gw_session_t *s, const char *text)
{
    gw_session_on_message(s, text, strlen(text), false);
}

/* CLIENT_PROTOCOL=auto: greeted in v1, the first "action" frame switches the session for
 * good: its own greeting, partial success, data in the legacy envelope. */
static void test_legacy_dialect_in_auto_mode(void **state)
{
    (void)state;
    gw_session_t *s = new_session(1);
    message(s, "{\"action\":\"subscribe\",\"channels\":[\"a\",\"secret:x\",\"b*\"],"
               "\"requestId\":\"s1\"}");
    assert_int_equal(s->dialect, GW_DIALECT_LEGACY);
    assert_int_equal(gw_stats.conn_legacy, 1);
    gw_hub_on_confirm(hub, true, false, "a", 1); /* "subscribed" waits for Redis */
    gw_hub_on_confirm(hub, true, true, "b*", 2);
    json_t *v[8];
    assert_int_equal(drain_json(s, v, 8), 2);
    assert_string_equal(str(v[0], "type"), "connected");
    assert_int_equal(json_integer_value(json_object_get(v[0], "seq")), 2);
    assert_string_equal(str(v[1], "type"), "subscribed");
    assert_string_equal(str(v[1], "requestId"), "s1");
    assert_int_equal(json_array_size(json_object_get(v[1], "channels")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v[1], "errors"), 0)),
                        "Access denied to channel: secret:x");
    for (int i = 0; i < 2; i++) json_decref(v[i]);
    assert_int_equal(s->nsubs, 2);
    assert_int_equal(gw_stats.errors[GW_E_ACL_DENIED], 1);

    gw_msg_t *m = gw_msg_new_message("a", 1, NULL, 0, "1", 1, 0, 0);
    gw_session_deliver(NULL, s->subs[0], m);
    gw_msg_unref(m);
    assert_int_equal(drain_json(s, v, 8), 1);
    assert_string_equal(str(v[0], "type"), "data");
    assert_true(json_is_null(json_object_get(v[0], "pattern")));
    json_decref(v[0]);

    message(s, "{\"type\":\"ping\"}"); /* decided: a v1 frame is not understood now */
    assert_int_equal(drain_json(s, v, 8), 1);
    assert_string_equal(str(v[0], "error"), "Missing action");
    json_decref(v[0]);
    gw_session_free(s);
    assert_int_equal(gw_stats.conn_legacy, 0);
}

static void test_legacy_without_credential_closes_1008(void **state)
{
    (void)state;
    cfg.client_protocol = GW_PROTO_LEGACY;
    cfg.require_auth = true;
    gw_session_t *s = gw_session_new(&env, NULL, 1);
    gw_session_start(s, NULL, NULL);
    assert_int_equal(fake.close_code, 1008);
    assert_int_equal(gw_session_queued(s), 0); /* the legacy gateway said nothing before closing */
    assert_int_equal(gw_stats.auth_failures[GW_AUTH_MISSING], 1);
    gw_session_free(s);

    cfg.client_protocol = GW_PROTO_AUTO; /* undecided: waits for v1's auth frame ... */
    s = gw_session_new(&env, NULL, 2);
    gw_session_start(s, NULL, NULL);
    assert_int_equal(fake.closes, 1);
    message(s, "{\"action\":\"ping\"}"); /* ... which a legacy client never sends */
    assert_int_equal(fake.close_code, 1008);
    assert_int_equal(s->nsubs, 0);
    gw_session_free(s);
}

static void test_refused_optional_credential_falls_back(void **state)
{
    (void)state;
    gw_session_t *s = gw_session_new(&env, NULL, 1);
    gw_session_start(s, NULL, "not-a-key"); /* REQUIRE_AUTH=false */
    assert_int_equal(fake.closes, 0);
    json_t *v[2];
    assert_int_equal(drain_json(s, v, 2), 1);
    assert_string_equal(str(v[0], "type"), "welcome");
    assert_string_equal(str(v[0], "role"), "user");
    assert_string_equal(str(v[0], "auth_error"), "unknown_key");
    json_decref(v[0]);
    assert_int_equal(s->auth, GW_SESS_ANON);
    assert_int_equal(gw_stats.auth_failures[GW_AUTH_UNKNOWN_KEY], 1);
    gw_session_free(s);
}

/* A config change re-evaluates live sessions: REQUIRE_AUTH on closes the anonymous
 * ones; an API key's expiry gets no JWT leeway. */
static void test_reevaluation(void **state)
{
    (void)state;
    gw_session_t *anon = new_session(1);
    cfg.require_auth = true;
    gw_session_reauthorize(anon);
    assert_int_equal(fake.close_code, 4401);
    gw_session_free(anon);
    cfg.require_auth = false;

    cfg.jwt_leeway_s = 30;
    gw_apikey_t k;
    memset(&k, 0, sizeof k);
    strcpy(k.id, "k2");
    strcpy(k.role, "user");
    k.expires = fake_unix + 10;
    gw_sha256("key-two", 7, k.hash);
    gw_auth_put_key(auth, &k);
    fake.closes = 0;
    gw_session_t *s = gw_session_new(&env, NULL, 2);
    gw_session_start(s, NULL, "key-two");
    fake_unix += 10; /* exactly at expiry: no 30 s of grace for a key */
    gw_session_tick(s);
    assert_int_equal(fake.closes, 1);
    assert_int_equal(fake.close_code, 4401);
    gw_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_and_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_needs_bigger_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_policy_keeps_newest_and_shows_gap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drop_policy_behind_control_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflate_policy_keeps_latest_per_channel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_waits_for_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl_denied_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_then_4429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_auth_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_key_in_band_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_dialect_in_auto_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_without_credential_closes_1008, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_optional_credential_falls_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reevaluation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Fuzz target: a client's frames, through reassembly, parsing in either dialect (v1 and
 * legacy, chosen by the frames or fixed), authentication (auth frames with tokens and
 * keys: the JWT and API key paths) and request handling.
 * Property: whatever arrives, every frame the session queues is one valid JSON object,
 * and nothing is subscribed before authentication. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proto.h"
#include "session.h"

static int hub_cmd(void *ud, bool sub, bool pat, const char *const *n, const size_t *l, size_t c)
{
    (void)ud, (void)sub, (void)pat, (void)n, (void)l, (void)c;
    return 0;
}
static void hub_resync(void *ud)
{
    (void)ud;
}
static void want_write(gw_session_t *s)
{
    (void)s;
}
static void do_close(gw_session_t *s, int code, const char *reason)
{
    (void)s, (void)code, (void)reason;
}

static const gw_hub_ops_t ops = {hub_cmd, gw_session_deliver, gw_session_sub_active, hub_resync};

static uint64_t fake_us(void)
{
    return 1;
}

static int64_t fake_unix(void)
{
    return 1800000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_config_t cfg = {.max_channels = 8,
                              .max_wildcards = 2,
                              .max_channels_per_request = 16,
                              .max_redis_patterns = 4,
                              .jwt_max_ttl_s = 86400,
                              .slow_queue_bytes = 8192,
                              .max_frame_bytes = 4096};
    static gw_roles_t *roles;
    static gw_auth_t *auth;
    if (!roles) { /* built once: the fuzzer runs millions of inputs */
        static char user[] = "user", node[] = "n", key[] = "fuzz-key", role_claim[] = "role",
                    empty[] = "", secret[] = "0123456789abcdef0123456789abcdef",
                    internal[] = "internal";
        cfg.default_role = user;
        cfg.node_id = node;
        cfg.api_key = key;
        cfg.api_key_role = internal;
        cfg.jwt_secret = secret;
        cfg.jwt_public_key_file = cfg.jwt_issuer = cfg.jwt_audience = cfg.stats_token = empty;
        cfg.jwt_role_claim = role_claim;
        cfg.client_rate_limit = cfg.client_rate_burst = 1000000;
        cfg.client_rate_max_strikes = 10;
        cfg.require_auth = true;
        cfg.auth_timeout_ms = 1000;
        char err[200];
        roles = gw_roles_default();
        auth = gw_auth_new(&cfg, err, sizeof err);
        if (!auth) abort();
    }
    gw_hub_t *hub = gw_hub_new(&ops, NULL);
    gw_hub_on_link_up(hub);
    gw_session_env_t env = {.hub = hub,
                            .cfg = &cfg,
                            .auth = auth,
                            .roles = roles,
                            .want_write = want_write,
                            .close = do_close,
                            .now_us = fake_us,
                            .now_unix = fake_unix};
    /* First byte: fragment size (low 6 bits), REQUIRE_AUTH off (bit 6), CLIENT_PROTOCOL
     * legacy instead of auto (bit 7). NUL bytes split the rest into messages. */
    unsigned char b0 = size ? data[0] : 0;
    size_t frag = (size_t)(b0 & 63) + 1;
    cfg.require_auth = !(b0 & 64);
    cfg.client_protocol = (b0 & 128) ? GW_PROTO_LEGACY : GW_PROTO_AUTO;
    gw_session_t *s = gw_session_new(&env, NULL, 1);
    gw_session_start(s, NULL, NULL);

    const char *p = (const char *)data + (size ? 1 : 0);
    const char *end = (const char *)data + size;
    while (p < end) {
        const char *e = memchr(p, '\0', (size_t)(end - p));
        size_t len = e ? (size_t)(e - p) : (size_t)(end - p);
        bool ok = true;
        for (size_t off = 0; ok && (off < len || off == 0); off += frag) {
            size_t n = len - off < frag ? len - off : frag;
            ok = gw_session_on_fragment(s, p + off, n, off == 0, off + n >= len, false) == 0;
            if (len == 0) break;
        }
        gw_hub_on_confirm(hub, true, false, "a", 1); /* confirm a likely topic */
        p += len + 1;
    }
    /* A message on that topic reaches subscribers in their dialect's envelope. */
    gw_hub_on_message(hub, "a", 1, NULL, 0, "x", 1, 1, 1764557735000000u);

    if (s->auth == GW_SESS_PENDING && s->nsubs) abort(); /* subscribed without auth */
    /* Every queued frame, as the writer encodes it, is one JSON object. */
    static unsigned char out[1 << 20];
    size_t ends[4096], need, n = gw_session_peek(s, out, sizeof out, ends, 4096, &need);
    if (need) abort(); /* nothing queued is bigger than the queue's bound */
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        size_t h = out[start + 1] == 126 ? 4 : out[start + 1] == 127 ? 10 : 2;
        if (!gw_json_valid((char *)out + start + h, ends[i] - start - h)) abort();
    }
    gw_session_free(s);
    gw_hub_free(hub);
    return 0;
}

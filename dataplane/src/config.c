#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cidr.h"
#include "log.h"
#include "nodemsg.h"
#include "opts.h"
#include "origin.h"
#include "redis.h"

static const char *const policy_choices[] = {"drop", "close", "conflate", NULL};
static const char *const protocol_choices[] = {"auto", "v1", "legacy", NULL};

#define OFF(f) offsetof(gw_config_t, f)

static const gw_opt_t options[] = {
    {"port", "REDIS_WS_GATEWAY_PORT", GW_OPT_INT, OFF(port), "8889", 1, 65535, NULL, 0,
     "TCP port for WebSocket (/ws) and HTTP (/health, /stats)"},
    {"bind", "BIND_ADDRESS", GW_OPT_STR, OFF(bind_address), "0.0.0.0", 0, 0, NULL, 0,
     "address to listen on"},
    {"redis-url", "REDIS_URL", GW_OPT_STR, OFF(redis_url), "", 0, 0, NULL, GW_OPT_SECRET,
     "redis://[[user]:password@]host:port[/db] (pub/sub ignores the db); unset: built from "
     "REDIS_HOST and REDIS_PORT"},
    {"redis-host", "REDIS_HOST", GW_OPT_STR, OFF(redis_host), "127.0.0.1", 0, 0, NULL, 0,
     "Redis host when REDIS_URL is unset (set with REDIS_URL, they must agree)"},
    {"redis-port", "REDIS_PORT", GW_OPT_INT, OFF(redis_port), "6379", 1, 65535, NULL, 0,
     "Redis port when REDIS_URL is unset (set with REDIS_URL, they must agree)"},
    {"client-protocol", "CLIENT_PROTOCOL", GW_OPT_ENUM, OFF(client_protocol), "auto", 0, 0,
     protocol_choices, 0,
     "client dialect: auto (each connection's first frame decides: \"type\" v1, \"action\" "
     "legacy), v1, or legacy (the Python gateway's frames, greeting \"connected\")"},
    {"node-id", "NODE_ID", GW_OPT_STR, OFF(node_id), "", 0, 0, NULL, 0,
     "node name in welcome frames, logs and /health (default host:port; up to 128 bytes of "
     "[A-Za-z0-9._:@/+%[]-])"},
    {"require-auth", "REQUIRE_AUTH", GW_OPT_BOOL, OFF(require_auth), "false", 0, 0, NULL, 0,
     "reject clients that do not authenticate"},
    {"api-key", "GATEWAY_API_KEY", GW_OPT_STR, OFF(api_key), "", 0, 0, NULL, GW_OPT_SECRET,
     "shared API key for trusted clients"},
    {"default-role", "DEFAULT_ROLE", GW_OPT_STR, OFF(default_role), "user", 0, 0, NULL, 0,
     "role of clients that do not authenticate"},
    {"max-channels", "MAX_CHANNELS_PER_CLIENT", GW_OPT_INT, OFF(max_channels), "50", 1, 100000,
     NULL, 0, "subscriptions (exact plus patterns) one client may hold"},
    {"max-wildcards", "MAX_WILDCARD_SUBSCRIPTIONS", GW_OPT_INT, OFF(max_wildcards), "5", 0, 100000,
     NULL, 0, "pattern subscriptions one client may hold"},
    {"max-channels-per-request", "MAX_CHANNELS_PER_REQUEST", GW_OPT_INT,
     OFF(max_channels_per_request), "100", 1, 10000, NULL, 0,
     "channels one subscribe or unsubscribe frame may name"},
    {"max-redis-patterns", "MAX_REDIS_PATTERNS", GW_OPT_INT, OFF(max_redis_patterns), "64", 1,
     100000, NULL, 0,
     "distinct patterns this node subscribes to on Redis, all clients together (each one "
     "slows every PUBLISH on that Redis; beyond: limit_patterns)"},
    {"slow-client-queue-bytes", "SLOW_CLIENT_QUEUE_BYTES", GW_OPT_INT, OFF(slow_queue_bytes),
     "1048576", 4096, 1073741824, NULL, 0, "outbound queue limit per connection, in bytes"},
    {"node-queue-bytes", "NODE_QUEUE_BYTES", GW_OPT_INT, OFF(node_queue_bytes), "268435456",
     1048576, 1099511627776, NULL, 0,
     "memory all outbound queues of the node may hold together (a frame shared by many queues "
     "counts once); beyond, the connections with the largest queues are closed (1013)"},
    {"client-sndbuf-bytes", "CLIENT_SNDBUF_BYTES", GW_OPT_INT, OFF(client_sndbuf), "262144", 0,
     67108864, NULL, 0,
     "kernel send buffer of each client socket (SO_SNDBUF; 0: the kernel's autotuning, up to "
     "net.ipv4.tcp_wmem's maximum per socket)"},
    {"slow-client-policy", "SLOW_CLIENT_POLICY", GW_OPT_ENUM, OFF(slow_policy), "drop", 0, 0,
     policy_choices, 0, "on queue overflow: drop oldest, close (1013) or conflate per channel"},
    {"max-frame-bytes", "MAX_FRAME_BYTES", GW_OPT_INT, OFF(max_frame_bytes), "65536", 256, 16777216,
     NULL, 0, "largest client message (fragments reassembled); beyond: close 1009"},
    {"keepalive-interval-s", "KEEPALIVE_INTERVAL_S", GW_OPT_INT, OFF(keepalive_interval_s), "30", 1,
     3600, NULL, 0, "idle seconds before the gateway pings a client"},
    {"keepalive-timeout-s", "KEEPALIVE_TIMEOUT_S", GW_OPT_INT, OFF(keepalive_timeout_s), "10", 1,
     3600, NULL, 0, "seconds a pinged client has to answer before it is dropped"},
    {"shutdown-timeout-ms", "SHUTDOWN_TIMEOUT_MS", GW_OPT_INT, OFF(shutdown_timeout_ms), "5000", 0,
     600000, NULL, 0, "on SIGTERM, time allowed to flush and close clients"},
    {"redis-connect-timeout-ms", "REDIS_CONNECT_TIMEOUT_MS", GW_OPT_INT,
     OFF(redis_connect_timeout_ms), "2000", 10, 600000, NULL, 0, "Redis connect timeout"},
    {"redis-backoff-min-ms", "REDIS_BACKOFF_MIN_MS", GW_OPT_INT, OFF(redis_backoff_min_ms), "100",
     1, 600000, NULL, 0, "first Redis reconnect delay (doubles per attempt, jittered)"},
    {"redis-backoff-max-ms", "REDIS_BACKOFF_MAX_MS", GW_OPT_INT, OFF(redis_backoff_max_ms), "5000",
     1, 600000, NULL, 0, "cap of the Redis reconnect delay"},
    {"redis-ping-interval-ms", "REDIS_PING_INTERVAL_MS", GW_OPT_INT, OFF(redis_ping_interval_ms),
     "1000", 50, 600000, NULL, 0, "Redis link probe; silent for 3 intervals means dead"},
    {"api-key-role", "GATEWAY_API_KEY_ROLE", GW_OPT_STR, OFF(api_key_role), "admin", 0, 0, NULL, 0,
     "role granted by GATEWAY_API_KEY"},
    {"auth-timeout-ms", "AUTH_TIMEOUT_MS", GW_OPT_INT, OFF(auth_timeout_ms), "5000", 100, 600000,
     NULL, 0, "with REQUIRE_AUTH, time to authenticate before close 4401"},
    {"jwt-secret", "JWT_SECRET", GW_OPT_STR, OFF(jwt_secret), "", 0, 0, NULL, GW_OPT_SECRET,
     "HMAC key (>= 32 bytes): accept HS256, HS384, HS512 tokens"},
    {"jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", GW_OPT_STR, OFF(jwt_public_key_file), "", 0, 0,
     NULL, 0, "PEM public key: RSA accepts RS256, P-256 accepts ES256"},
    {"jwt-require-exp", "JWT_REQUIRE_EXP", GW_OPT_BOOL, OFF(jwt_require_exp), "true", 0, 0, NULL, 0,
     "refuse tokens without exp"},
    {"jwt-leeway-s", "JWT_LEEWAY_S", GW_OPT_INT, OFF(jwt_leeway_s), "30", 0, 3600, NULL, 0,
     "clock skew allowed for exp, nbf and iat"},
    {"jwt-max-ttl-s", "JWT_MAX_TTL_S", GW_OPT_INT, OFF(jwt_max_ttl_s), "86400", 60, 31536000, NULL,
     0,
     "longest a session lives on one JWT, whatever its exp (or none) says; then it "
     "refreshes in band or reconnects"},
    {"jwt-issuer", "JWT_ISSUER", GW_OPT_STR, OFF(jwt_issuer), "", 0, 0, NULL, 0,
     "required iss claim (unset: not checked)"},
    {"jwt-audience", "JWT_AUDIENCE", GW_OPT_STR, OFF(jwt_audience), "", 0, 0, NULL, 0,
     "required aud claim (unset: not checked)"},
    {"jwt-role-claim", "JWT_ROLE_CLAIM", GW_OPT_STR, OFF(jwt_role_claim), "role", 0, 0, NULL, 0,
     "claim naming the role (absent: DEFAULT_ROLE)"},
    {"auth-expiry-warning-s", "AUTH_EXPIRY_WARNING_S", GW_OPT_INT, OFF(auth_expiry_warning_s), "30",
     0, 3600, NULL, 0, "send auth_expiring this long before a token expires"},
    {"roles-file", "ROLES_FILE", GW_OPT_STR, OFF(roles_file), "", 0, 0, NULL, 0,
     "JSON roles replacing the built-in user/admin/internal"},
    {"client-rate-limit", "CLIENT_RATE_LIMIT", GW_OPT_INT, OFF(client_rate_limit), "20", 1, 100000,
     NULL, 0, "client frames per second per connection"},
    {"client-rate-burst", "CLIENT_RATE_BURST", GW_OPT_INT, OFF(client_rate_burst), "40", 1, 100000,
     NULL, 0, "client frames a connection may send at once"},
    {"client-rate-max-strikes", "CLIENT_RATE_MAX_STRIKES", GW_OPT_INT, OFF(client_rate_max_strikes),
     "20", 1, 100000, NULL, 0, "rate-limited frames in a row before close 4429"},
    {"max-connections", "MAX_CONNECTIONS", GW_OPT_INT, OFF(max_connections), "100000", 1, 10000000,
     NULL, 0, "WebSocket connections per node (beyond: HTTP 503)"},
    {"max-connections-per-ip", "MAX_CONNECTIONS_PER_IP", GW_OPT_INT, OFF(max_connections_per_ip),
     "10000", 1, 10000000, NULL, 0,
     "WebSocket connections per peer IP (beyond: HTTP 429); behind a proxy, every client "
     "has the proxy's IP"},
    {"max-handshakes-per-ip", "MAX_HANDSHAKES_PER_IP", GW_OPT_INT, OFF(max_handshakes_per_ip), "32",
     1, 100000, NULL, 0,
     "sockets one address may hold before they upgrade (beyond: HTTP 429 and close); "
     "TRUSTED_PROXIES are exempt"},
    {"max-auth-failures-per-ip", "MAX_AUTH_FAILURES_PER_IP", GW_OPT_INT,
     OFF(max_auth_failures_per_ip), "30", 1, 1000000, NULL, 0,
     "refused credentials one address may present per minute (and at once); beyond, "
     "upgrades carrying one get 429 and auth frames fail as throttled, unchecked"},
    {"handshake-timeout-s", "HANDSHAKE_TIMEOUT_S", GW_OPT_INT, OFF(handshake_timeout_s), "3", 1, 60,
     NULL, 0, "time a socket has to send its whole HTTP request before it is closed"},
    {"trusted-proxies", "TRUSTED_PROXIES", GW_OPT_STR, OFF(trusted_proxies), "", 0, 0, NULL, 0,
     "proxy addresses or networks (10.0.0.0/8) whose X-Forwarded-For names the client"},
    {"cors-allow-origins", "CORS_ALLOW_ORIGINS", GW_OPT_STR, OFF(cors_allow_origins), "*", 0, 0,
     NULL, 0,
     "CORS for /health, /stats, /metrics: * or comma-separated origins allowed to read them "
     "(empty: no CORS headers)"},
    {"allowed-origins", "ALLOWED_ORIGINS", GW_OPT_STR, OFF(allowed_origins), "", 0, 0, NULL, 0,
     "browser origins (comma-separated, e.g. https://ui.example.com) that may open /ws; "
     "others get 403. Empty: any. A request without Origin is not a browser's: allowed"},
    {"max-messages-per-second", "MAX_MESSAGES_PER_SECOND", GW_OPT_IGNORED, 0, "", 0, 0, NULL, 0,
     "the Python gateway's setting, which it never used: accepted, no effect, warned about "
     "(the rate limit is CLIENT_RATE_LIMIT)"},
    {"stats-token", "STATS_TOKEN", GW_OPT_STR, OFF(stats_token), "", 0, 0, NULL, GW_OPT_SECRET,
     "bearer token required by /health and /stats (unset: open)"},
    {"control-plane-url", "CONTROL_PLANE_URL", GW_OPT_STR, OFF(control_plane_url), "", 0, 0, NULL,
     0, "host:port of wsgw-control; unset: standalone, configured by this table"},
    {"control-node-token", "CONTROL_NODE_TOKEN", GW_OPT_STR, OFF(control_node_token), "", 0, 0,
     NULL, GW_OPT_SECRET, "bearer token presented to the control plane"},
    {"control-tls-ca", "CONTROL_TLS_CA", GW_OPT_STR, OFF(control_tls_ca), "", 0, 0, NULL, 0,
     "PEM CA to verify the control plane (unset: plaintext)"},
    {"control-tls-client-cert", "CONTROL_TLS_CLIENT_CERT", GW_OPT_STR, OFF(control_tls_client_cert),
     "", 0, 0, NULL, 0, "PEM client certificate for mTLS to the control plane"},
    {"control-tls-client-key", "CONTROL_TLS_CLIENT_KEY", GW_OPT_STR, OFF(control_tls_client_key),
     "", 0, 0, NULL, 0, "PEM private key for CONTROL_TLS_CLIENT_CERT"},
    {"config-cache-path", "CONFIG_CACHE_PATH", GW_OPT_STR, OFF(config_cache_path),
     "wsgw-config.cache", 0, 0, NULL, 0,
     "last applied snapshot; served from when the control plane is down at start"},
    {"report-interval-ms", "REPORT_INTERVAL_MS", GW_OPT_INT, OFF(report_interval_ms), "2000", 100,
     600000, NULL, 0, "stats report period to the control plane"},
    GW_OPTS_LOG_ROWS(gw_config_t, log_level, log_format),
};

#define NOPTIONS (sizeof options / sizeof options[0])

const char *gw_policy_name(int policy)
{
    return (policy >= 0 && policy <= GW_POLICY_CONFLATE) ? policy_choices[policy] : "?";
}

const char *gw_client_protocol_name(int proto)
{
    return (proto >= 0 && proto <= GW_PROTO_LEGACY) ? protocol_choices[proto] : "?";
}

/* TRUSTED_PROXIES: every entry must be an address or a network. */
static int check_proxies(const char *list, char *err, size_t errlen)
{
    gw_cidr_t *nets;
    char why[128];
    int n = gw_cidr_parse_list(list, &nets, why, sizeof why);
    if (n < 0) {
        snprintf(err, errlen, "invalid TRUSTED_PROXIES: %s", why);
        return -1;
    }
    free(nets);
    return 0;
}

static const gw_opts_spec_t spec;

static bool was_set(const bool *set, const char *env)
{
    return set[gw_opts_find_env(&spec, env) - spec.opts];
}

/* REDIS_URL, or redis://REDIS_HOST:REDIS_PORT. Both given and disagreeing is an error:
 * one of them would be silently ignored, and the node would watch the wrong Redis. */
static int resolve_redis(gw_config_t *cfg, const bool *set, char *err, size_t errlen)
{
    bool url_given = cfg->redis_url[0] != '\0';
    if (strpbrk(cfg->redis_host, "@/[] \t") || !cfg->redis_host[0]) {
        snprintf(err, errlen,
                 "invalid REDIS_HOST: a host name or address, without brackets, "
                 "credentials or path (those go in REDIS_URL)");
        return -1;
    }
    if (!url_given) {
        gw_buf_t b = GW_BUF_INIT;
        bool v6 = strchr(cfg->redis_host, ':') != NULL;
        gw_buf_printf(&b, "redis://%s%s%s:%ld", v6 ? "[" : "", cfg->redis_host, v6 ? "]" : "",
                      cfg->redis_port);
        free(cfg->redis_url);
        cfg->redis_url = b.data;
    }
    gw_redis_url_t u;
    const char *why;
    if (gw_redis_url_parse(cfg->redis_url, &u, &why) < 0) {
        snprintf(err, errlen, "invalid %s: %s", url_given ? "REDIS_URL" : "REDIS_HOST", why);
        return -1;
    }
    int rc = 0;
    if (url_given && ((was_set(set, "REDIS_HOST") && strcasecmp(u.host, cfg->redis_host) != 0) ||
                      (was_set(set, "REDIS_PORT") && u.port != cfg->redis_port))) {
        snprintf(err, errlen,
                 "invalid REDIS_HOST/REDIS_PORT: they disagree with REDIS_URL (host %.64s, "
                 "port %d); set REDIS_URL or REDIS_HOST/REDIS_PORT, not both",
                 u.host, u.port);
        rc = -1;
    }
    gw_redis_url_free(&u);
    return rc;
}

/* Names the accepted-but-ignored settings that were set, for one warning at start. */
static void note_ignored(gw_config_t *cfg, const bool *set)
{
    size_t n = 0;
    cfg->ignored[0] = '\0';
    for (size_t i = 0; i < spec.n; i++) {
        if (spec.opts[i].type != GW_OPT_IGNORED || !set[i]) continue;
        n += (size_t)snprintf(cfg->ignored + n, sizeof cfg->ignored - n, "%s%s", n ? "," : "",
                              spec.opts[i].env);
        if (n >= sizeof cfg->ignored) break;
    }
}

static int check_origins(const char *name, const char *list, char *err, size_t errlen)
{
    gw_origins_t o;
    char why[160];
    if (gw_origins_parse(list, true, &o, why, sizeof why) < 0) {
        snprintf(err, errlen, "invalid %s: %s", name, why);
        return -1;
    }
    gw_origins_free(&o);
    return 0;
}

static int cross_check(gw_config_t *cfg, const bool *set, char *err, size_t errlen)
{
    if (check_proxies(cfg->trusted_proxies, err, errlen) < 0) return -1;
    if (check_origins("ALLOWED_ORIGINS", cfg->allowed_origins, err, errlen) < 0 ||
        check_origins("CORS_ALLOW_ORIGINS", cfg->cors_allow_origins, err, errlen) < 0)
        return -1;
    if (resolve_redis(cfg, set, err, errlen) < 0) return -1;
    note_ignored(cfg, set);
    if (cfg->redis_backoff_min_ms > cfg->redis_backoff_max_ms) {
        snprintf(err, errlen, "invalid REDIS_BACKOFF_MIN_MS: larger than REDIS_BACKOFF_MAX_MS");
        return -1;
    }
    if (!cfg->control_tls_client_cert[0] != !cfg->control_tls_client_key[0]) {
        snprintf(err, errlen,
                 "invalid CONTROL_TLS_CLIENT_CERT / CONTROL_TLS_CLIENT_KEY: set both "
                 "or neither");
        return -1;
    }
    if (cfg->control_tls_client_cert[0] && !cfg->control_tls_ca[0]) {
        snprintf(err, errlen,
                 "invalid CONTROL_TLS_CLIENT_CERT: a client certificate needs TLS "
                 "(CONTROL_TLS_CA); without, the node would connect in plaintext");
        return -1;
    }
    if (cfg->control_plane_url[0] && strlen(cfg->control_node_token) < 16) {
        snprintf(err, errlen,
                 "invalid CONTROL_NODE_TOKEN: required (>= 16 bytes) with "
                 "CONTROL_PLANE_URL");
        return -1;
    }
    cfg->adjusted[0] = '\0';
    if (cfg->max_wildcards > cfg->max_channels) { /* patterns are channels too: the limit */
        snprintf(cfg->adjusted, sizeof cfg->adjusted,
                 "setting=MAX_WILDCARD_SUBSCRIPTIONS value=%ld was=%ld "
                 "reason=\"above MAX_CHANNELS_PER_CLIENT\"",
                 cfg->max_channels, cfg->max_wildcards);
        cfg->max_wildcards = cfg->max_channels;
    }
    if (!cfg->node_id[0]) {
        char host[256];
        if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
        host[sizeof host - 1] = '\0';
        free(cfg->node_id);
        gw_buf_t b = GW_BUF_INIT;
        gw_buf_printf(&b, "%s:%ld", host, cfg->port);
        cfg->node_id = b.data;
    }
    char why[160];
    if (gw_node_id_check(cfg->node_id, why, sizeof why) < 0) { /* the control plane's rule */
        snprintf(err, errlen, "invalid NODE_ID: %s", why);
        return -1;
    }
    return 0;
}

/* The Python gateway's names, so its deployments' environments work unchanged. */
static const gw_opt_alias_t aliases[] = {
    {"BIND_ADDRESS", "REDIS_WS_GATEWAY_HOST"},
    {NULL, NULL},
};

static const gw_opts_spec_t spec = {
    "wsgw",
    "Redis pub/sub to WebSocket gateway (data plane). Every flag has an environment\n"
    "variable; flags win over the environment.",
    options, NOPTIONS, aliases};

int gw_config_load(gw_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    bool set[NOPTIONS];
    memset(cfg, 0, sizeof *cfg);
    int rc = gw_opts_load(&spec, cfg, argc, argv, set, err, errlen);
    return rc != 0 ? rc : cross_check(cfg, set, err, errlen);
}

void gw_config_free(gw_config_t *cfg)
{
    gw_opts_free(&spec, cfg);
}

void gw_config_print_help(FILE *f)
{
    gw_opts_print_help(&spec, f);
}

void gw_config_print_doc(FILE *f)
{
    gw_opts_print_doc(&spec, f);
}

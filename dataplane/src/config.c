#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

typedef enum { OPT_INT, OPT_BOOL, OPT_STR, OPT_ENUM } opt_type_t;

#define OPT_SECRET 1u /* never echoed back, not even in errors */

typedef struct {
    const char *flag; /* --flag */
    const char *env;
    opt_type_t type;
    size_t off;
    const char *def;
    long min, max;
    const char *const *choices; /* OPT_ENUM: NULL-terminated, index is the stored value */
    unsigned flags;
    const char *help;
} opt_t;

static const char *const policy_choices[] = {"drop", "close", "conflate", NULL};
static const char *const level_choices[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const format_choices[] = {"text", "json", NULL};

#define OFF(f) offsetof(gw_config_t, f)

static const opt_t options[] = {
    {"port", "REDIS_WS_GATEWAY_PORT", OPT_INT, OFF(port), "8889", 1, 65535, NULL, 0,
     "TCP port for WebSocket (/ws) and HTTP (/health, /stats)"},
    {"bind", "BIND_ADDRESS", OPT_STR, OFF(bind_address), "0.0.0.0", 0, 0, NULL, 0,
     "address to listen on"},
    {"redis-url", "REDIS_URL", OPT_STR, OFF(redis_url), "redis://127.0.0.1:6379", 0, 0, NULL,
     OPT_SECRET, "redis://[[user]:password@]host:port[/db] (pub/sub ignores the db)"},
    {"node-id", "NODE_ID", OPT_STR, OFF(node_id), "", 0, 0, NULL, 0,
     "node name in welcome frames, logs and /health (default host:port)"},
    {"require-auth", "REQUIRE_AUTH", OPT_BOOL, OFF(require_auth), "false", 0, 0, NULL, 0,
     "reject clients that do not authenticate"},
    {"api-key", "GATEWAY_API_KEY", OPT_STR, OFF(api_key), "", 0, 0, NULL, OPT_SECRET,
     "shared API key for trusted clients"},
    {"default-role", "DEFAULT_ROLE", OPT_STR, OFF(default_role), "user", 0, 0, NULL, 0,
     "role of clients that do not authenticate"},
    {"max-channels", "MAX_CHANNELS_PER_CLIENT", OPT_INT, OFF(max_channels), "50", 1, 100000, NULL,
     0, "subscriptions (exact plus patterns) one client may hold"},
    {"max-wildcards", "MAX_WILDCARD_SUBSCRIPTIONS", OPT_INT, OFF(max_wildcards), "5", 0, 100000,
     NULL, 0, "pattern subscriptions one client may hold"},
    {"max-channels-per-request", "MAX_CHANNELS_PER_REQUEST", OPT_INT, OFF(max_channels_per_request),
     "100", 1, 10000, NULL, 0, "channels one subscribe or unsubscribe frame may name"},
    {"slow-client-queue-bytes", "SLOW_CLIENT_QUEUE_BYTES", OPT_INT, OFF(slow_queue_bytes),
     "1048576", 4096, 1073741824, NULL, 0, "outbound queue limit per connection, in bytes"},
    {"slow-client-policy", "SLOW_CLIENT_POLICY", OPT_ENUM, OFF(slow_policy), "drop", 0, 0,
     policy_choices, 0, "on queue overflow: drop oldest, close (1013) or conflate per channel"},
    {"max-frame-bytes", "MAX_FRAME_BYTES", OPT_INT, OFF(max_frame_bytes), "65536", 256, 16777216,
     NULL, 0, "largest client message (fragments reassembled); beyond: close 1009"},
    {"keepalive-interval-s", "KEEPALIVE_INTERVAL_S", OPT_INT, OFF(keepalive_interval_s), "30", 1,
     3600, NULL, 0, "idle seconds before the gateway pings a client"},
    {"keepalive-timeout-s", "KEEPALIVE_TIMEOUT_S", OPT_INT, OFF(keepalive_timeout_s), "10", 1, 3600,
     NULL, 0, "seconds a pinged client has to answer before it is dropped"},
    {"shutdown-timeout-ms", "SHUTDOWN_TIMEOUT_MS", OPT_INT, OFF(shutdown_timeout_ms), "5000", 0,
     600000, NULL, 0, "on SIGTERM, time allowed to flush and close clients"},
    {"redis-connect-timeout-ms", "REDIS_CONNECT_TIMEOUT_MS", OPT_INT, OFF(redis_connect_timeout_ms),
     "2000", 10, 600000, NULL, 0, "Redis connect timeout"},
    {"redis-backoff-min-ms", "REDIS_BACKOFF_MIN_MS", OPT_INT, OFF(redis_backoff_min_ms), "100", 1,
     600000, NULL, 0, "first Redis reconnect delay (doubles per attempt, jittered)"},
    {"redis-backoff-max-ms", "REDIS_BACKOFF_MAX_MS", OPT_INT, OFF(redis_backoff_max_ms), "5000", 1,
     600000, NULL, 0, "cap of the Redis reconnect delay"},
    {"redis-ping-interval-ms", "REDIS_PING_INTERVAL_MS", OPT_INT, OFF(redis_ping_interval_ms),
     "1000", 50, 600000, NULL, 0, "Redis link probe; silent for 3 intervals means dead"},
    {"api-key-role", "GATEWAY_API_KEY_ROLE", OPT_STR, OFF(api_key_role), "internal", 0, 0, NULL, 0,
     "role granted by GATEWAY_API_KEY"},
    {"auth-timeout-ms", "AUTH_TIMEOUT_MS", OPT_INT, OFF(auth_timeout_ms), "5000", 100, 600000, NULL,
     0, "with REQUIRE_AUTH, time to authenticate before close 4401"},
    {"jwt-secret", "JWT_SECRET", OPT_STR, OFF(jwt_secret), "", 0, 0, NULL, OPT_SECRET,
     "HMAC key (>= 32 bytes): accept HS256, HS384, HS512 tokens"},
    {"jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", OPT_STR, OFF(jwt_public_key_file), "", 0, 0,
     NULL, 0, "PEM public key: RSA accepts RS256, P-256 accepts ES256"},
    {"jwt-require-exp", "JWT_REQUIRE_EXP", OPT_BOOL, OFF(jwt_require_exp), "true", 0, 0, NULL, 0,
     "refuse tokens without exp"},
    {"jwt-leeway-s", "JWT_LEEWAY_S", OPT_INT, OFF(jwt_leeway_s), "30", 0, 3600, NULL, 0,
     "clock skew allowed for exp, nbf and iat"},
    {"jwt-issuer", "JWT_ISSUER", OPT_STR, OFF(jwt_issuer), "", 0, 0, NULL, 0,
     "required iss claim (unset: not checked)"},
    {"jwt-audience", "JWT_AUDIENCE", OPT_STR, OFF(jwt_audience), "", 0, 0, NULL, 0,
     "required aud claim (unset: not checked)"},
    {"jwt-role-claim", "JWT_ROLE_CLAIM", OPT_STR, OFF(jwt_role_claim), "role", 0, 0, NULL, 0,
     "claim naming the role (absent: DEFAULT_ROLE)"},
    {"auth-expiry-warning-s", "AUTH_EXPIRY_WARNING_S", OPT_INT, OFF(auth_expiry_warning_s), "30", 0,
     3600, NULL, 0, "send auth_expiring this long before a token expires"},
    {"roles-file", "ROLES_FILE", OPT_STR, OFF(roles_file), "", 0, 0, NULL, 0,
     "JSON roles replacing the built-in user/admin/internal"},
    {"client-rate-limit", "CLIENT_RATE_LIMIT", OPT_INT, OFF(client_rate_limit), "20", 1, 100000,
     NULL, 0, "client frames per second per connection"},
    {"client-rate-burst", "CLIENT_RATE_BURST", OPT_INT, OFF(client_rate_burst), "40", 1, 100000,
     NULL, 0, "client frames a connection may send at once"},
    {"client-rate-max-strikes", "CLIENT_RATE_MAX_STRIKES", OPT_INT, OFF(client_rate_max_strikes),
     "20", 1, 100000, NULL, 0, "rate-limited frames in a row before close 4429"},
    {"max-connections", "MAX_CONNECTIONS", OPT_INT, OFF(max_connections), "100000", 1, 10000000,
     NULL, 0, "WebSocket connections per node (beyond: HTTP 503)"},
    {"max-connections-per-ip", "MAX_CONNECTIONS_PER_IP", OPT_INT, OFF(max_connections_per_ip),
     "10000", 1, 10000000, NULL, 0,
     "WebSocket connections per peer IP (beyond: HTTP 429); behind a proxy, every client "
     "has the proxy's IP"},
    {"stats-token", "STATS_TOKEN", OPT_STR, OFF(stats_token), "", 0, 0, NULL, OPT_SECRET,
     "bearer token required by /health and /stats (unset: open)"},
    {"log-level", "LOG_LEVEL", OPT_ENUM, OFF(log_level), "info", 0, 0, level_choices, 0,
     "error, warn, notice, info or debug"},
    {"log-format", "LOG_FORMAT", OPT_ENUM, OFF(log_format), "text", 0, 0, format_choices, 0,
     "text (key=value) or json, one line per event"},
};

#define NOPTIONS (sizeof options / sizeof options[0])

const char *gw_policy_name(int policy)
{
    return (policy >= 0 && policy <= GW_POLICY_CONFLATE) ? policy_choices[policy] : "?";
}

static int set_value(gw_config_t *cfg, const opt_t *o, const char *val, const char *source,
                     char *err, size_t errlen)
{
    char *base = (char *)cfg;
    const char *shown = (o->flags & OPT_SECRET) ? "(hidden)" : val;

    switch (o->type) {
    case OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end != '\0' || v < o->min || v > o->max) {
            snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not an integer in [%ld, %ld]",
                     o->env, o->flag, source, shown, o->min, o->max);
            return -1;
        }
        *(long *)(base + o->off) = v;
        return 0;
    }
    case OPT_BOOL: {
        bool v;
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes") || !strcmp(val, "on"))
            v = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no") ||
                 !strcmp(val, "off"))
            v = false;
        else {
            snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not true or false", o->env,
                     o->flag, source, shown);
            return -1;
        }
        *(bool *)(base + o->off) = v;
        return 0;
    }
    case OPT_STR: {
        char **slot = (char **)(base + o->off);
        if (strlen(val) > 4096) {
            snprintf(err, errlen, "invalid %s (--%s) from %s: longer than 4096 bytes", o->env,
                     o->flag, source);
            return -1;
        }
        free(*slot);
        *slot = gw_xstrdup(val);
        return 0;
    }
    case OPT_ENUM:
        for (int i = 0; o->choices[i]; i++) {
            if (!strcmp(val, o->choices[i])) {
                *(int *)(base + o->off) = i;
                return 0;
            }
        }
        snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not one of", o->env, o->flag,
                 source, shown);
        for (int i = 0; o->choices[i]; i++) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, "%s%s", i ? ", " : " ", o->choices[i]);
        }
        return -1;
    }
    return -1;
}

static const opt_t *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].flag) == len && !strncmp(options[i].flag, name, len))
            return &options[i];
    return NULL;
}

static int cross_check(gw_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->redis_backoff_min_ms > cfg->redis_backoff_max_ms) {
        snprintf(err, errlen, "invalid REDIS_BACKOFF_MIN_MS: larger than REDIS_BACKOFF_MAX_MS");
        return -1;
    }
    if (cfg->max_wildcards > cfg->max_channels) {
        snprintf(err, errlen,
                 "invalid MAX_WILDCARD_SUBSCRIPTIONS: larger than MAX_CHANNELS_PER_CLIENT");
        return -1;
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
    return 0;
}

int gw_config_load(gw_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTIONS; i++)
        if (set_value(cfg, &options[i], options[i].def, "default", err, errlen) < 0) return -1;

    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v && set_value(cfg, &options[i], v, "environment", err, errlen) < 0) return -1;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gw_config_print_help(stdout);
            return 1;
        }
        if (!strcmp(a, "--config-doc")) {
            gw_config_print_doc(stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = find_flag(name, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "option --%s needs a value", o->flag);
            return -1;
        }
        if (set_value(cfg, o, val, "command line", err, errlen) < 0) return -1;
    }
    return cross_check(cfg, err, errlen);
}

void gw_config_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].type != OPT_STR) continue;
        char **slot = (char **)((char *)cfg + options[i].off);
        free(*slot);
        *slot = NULL;
    }
}

static void describe_bounds(const opt_t *o, char *out, size_t n)
{
    out[0] = '\0';
    if (o->type == OPT_INT)
        snprintf(out, n, "%ld..%ld", o->min, o->max);
    else if (o->type == OPT_BOOL)
        snprintf(out, n, "true|false");
    else if (o->type == OPT_ENUM) {
        for (int i = 0; o->choices[i]; i++) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%s", i ? "|" : "", o->choices[i]);
        }
    }
}

void gw_config_print_help(FILE *f)
{
    fprintf(f, "usage: wsgw [--flag value | --flag=value]...\n\n"
               "Redis pub/sub to WebSocket gateway (data plane). Every flag has an environment\n"
               "variable; flags win over the environment.\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *o = &options[i];
        char bounds[96];
        describe_bounds(o, bounds, sizeof bounds);
        fprintf(f, "  --%-26s %s\n      %s (default: %s%s%s)\n", o->flag, o->env, o->help,
                o->def[0] ? o->def : "empty", bounds[0] ? "; " : "", bounds);
    }
    fprintf(f, "\n  --help                       this text\n"
               "  --config-doc                 the table as Markdown (docs/CONFIG.md)\n");
}

void gw_config_print_doc(FILE *f)
{
    fprintf(f, "# wsgw configuration\n\n"
               "Generated by `wsgw --config-doc` from the table in `dataplane/src/config.c`; "
               "a test keeps this file in sync.\nPrecedence: default < environment < flag. A bad "
               "value exits with code 2 and names the setting.\n\n"
               "| environment | flag | default | bounds | meaning |\n"
               "|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *o = &options[i];
        char bounds[96];
        describe_bounds(o, bounds, sizeof bounds);
        fprintf(f, "| `%s` | `--%s` | `%s` | ", o->env, o->flag, o->def);
        for (const char *c = bounds; *c; c++) /* a bare | would split the table cell */
            fputs(*c == '|' ? "\\|" : (char[]){*c, 0}, f);
        fprintf(f, " | %s |\n", o->help);
    }
}

/* config.h - the data plane's settings, defined once as a table.
 *
 * Each row names a setting's --flag, environment variable, type, default, bounds and
 * help. Parsing, `wsgw --help` and docs/CONFIG.md (`wsgw --config-doc`) are generated
 * from that table. Precedence: default < environment < command-line flag.
 * Strings in gw_config_t are owned by the config; gw_config_free() releases them.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    GW_POLICY_DROP = 0,     /* drop the oldest queued messages */
    GW_POLICY_CLOSE = 1,    /* close the connection with 1013 */
    GW_POLICY_CONFLATE = 2, /* keep only the newest queued message per channel */
} gw_policy_t;

/* Which client protocol a connection speaks (docs/PROTOCOL.md). */
typedef enum {
    GW_PROTO_AUTO = 0,   /* decided per connection by its first frame: "type" v1, "action" legacy */
    GW_PROTO_V1 = 1,     /* v1 only */
    GW_PROTO_LEGACY = 2, /* the Python gateway's dialect only */
} gw_client_protocol_t;

typedef struct {
    long port;
    char *bind_address;
    char *redis_url; /* never empty after loading: built from redis_host/redis_port if unset */
    char *redis_host;
    long redis_port;
    int client_protocol; /* gw_client_protocol_t */
    char *cors_allow_origins;
    char *allowed_origins;
    char *node_id;
    bool require_auth;
    char *api_key;
    char *default_role;
    long max_channels;
    long max_wildcards;
    long max_channels_per_request;
    long max_redis_patterns;
    long slow_queue_bytes;
    long node_queue_bytes; /* all queues together, frames counted once */
    long client_sndbuf;    /* SO_SNDBUF of client sockets, 0: the kernel's */
    int slow_policy;       /* gw_policy_t */
    long max_frame_bytes;
    long keepalive_interval_s;
    long keepalive_timeout_s;
    long shutdown_timeout_ms;
    long redis_connect_timeout_ms;
    long redis_backoff_min_ms;
    long redis_backoff_max_ms;
    long redis_ping_interval_ms;
    char *api_key_role;
    long auth_timeout_ms;
    char *jwt_secret;
    char *jwt_public_key_file;
    bool jwt_require_exp;
    long jwt_leeway_s;
    long jwt_max_ttl_s;
    char *jwt_issuer;
    char *jwt_audience;
    char *jwt_role_claim;
    long auth_expiry_warning_s;
    char *roles_file;
    long client_rate_limit;
    long client_rate_burst;
    long client_rate_max_strikes;
    long max_connections;
    long max_connections_per_ip;
    long max_handshakes_per_ip;
    long max_auth_failures_per_ip;
    long handshake_timeout_s;
    char *trusted_proxies;
    char *stats_token;
    char *control_plane_url;
    char *control_node_token;
    char *control_tls_ca;
    char *control_tls_client_cert;
    char *control_tls_client_key;
    char *config_cache_path;
    long report_interval_ms;
    int log_level;      /* gw_log_level_t */
    int log_format;     /* gw_log_format_t */
    char ignored[256];  /* accepted settings that have no effect and were set, for a warning */
    char adjusted[256]; /* settings clamped to agree with others, for a warning */
} gw_config_t;

/* Fills cfg from defaults, then the environment, then argv. Returns 0 on success,
 * 1 when the caller should exit 0 (after --help/--config-doc/--version output), and
 * -1 with a one-line message naming the setting in err when a value is bad. */
int gw_config_load(gw_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

void gw_config_free(gw_config_t *cfg);

void gw_config_print_help(FILE *f);
void gw_config_print_doc(FILE *f);

const char *gw_policy_name(int policy);
const char *gw_client_protocol_name(int proto);

#endif

/* wsgw-control - the control plane: owns roles, API keys, limits and auth settings,
 * pushes them to every data plane over gRPC, and shows the fleet. */
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include "cpserver.h"
#include "log.h"
#include "opts.h"
#include "state.h"

typedef struct {
    char *node_listen, *admin_listen, *metrics_listen, *state_path, *admin_token, *node_token;
    char *tls_cert, *tls_key, *tls_client_ca;
    long report_interval_ms, debounce_ms, debounce_max_ms, max_nodes, gone_ttl_s;
    bool init;
    int log_level, log_format;
} cp_config_t;

#define OFF(f) offsetof(cp_config_t, f)
static const gw_opt_t options[] = {
    {"node-listen", "CONTROL_NODE_LISTEN", GW_OPT_STR, OFF(node_listen), "0.0.0.0:7400", 0, 0, NULL,
     0, "host:port for data planes (ControlPlane service)"},
    {"admin-listen", "CONTROL_ADMIN_LISTEN", GW_OPT_STR, OFF(admin_listen), "127.0.0.1:7401", 0, 0,
     NULL, 0, "host:port for admins (Admin service)"},
    {"metrics-listen", "CONTROL_METRICS_LISTEN", GW_OPT_STR, OFF(metrics_listen), "127.0.0.1:7402",
     0, 0, NULL, 0, "host:port for GET /metrics and /health (empty: off)"},
    {"state-path", "CONTROL_STATE_PATH", GW_OPT_STR, OFF(state_path), "wsgw-control.state", 0, 0,
     NULL, 0, "state file (written atomically; survives restarts)"},
    {"init", "CONTROL_INIT", GW_OPT_BOOL, OFF(init), "false", 0, 0, NULL, 0,
     "create CONTROL_STATE_PATH with a new configuration (a new epoch) if it does not exist, "
     "then exit; the server never creates it by itself"},
    {"admin-token", "CONTROL_ADMIN_TOKEN", GW_OPT_STR, OFF(admin_token), "", 0, 0, NULL,
     GW_OPT_SECRET, "bearer token admins present (required, >= 16 bytes)"},
    {"node-token", "CONTROL_NODE_TOKEN", GW_OPT_STR, OFF(node_token), "", 0, 0, NULL, GW_OPT_SECRET,
     "bearer token data planes present (required, >= 16 bytes)"},
    {"tls-cert", "CONTROL_TLS_CERT", GW_OPT_STR, OFF(tls_cert), "", 0, 0, NULL, 0,
     "PEM certificate: TLS on both ports"},
    {"tls-key", "CONTROL_TLS_KEY", GW_OPT_STR, OFF(tls_key), "", 0, 0, NULL, 0,
     "PEM private key for CONTROL_TLS_CERT"},
    {"tls-client-ca", "CONTROL_TLS_CLIENT_CA", GW_OPT_STR, OFF(tls_client_ca), "", 0, 0, NULL, 0,
     "PEM CA: require client certificates (mTLS)"},
    {"report-interval-ms", "REPORT_INTERVAL_MS", GW_OPT_INT, OFF(report_interval_ms), "2000", 100,
     600000, NULL, 0, "expected node report interval; 3 missed reports mark a node stale"},
    {"debounce-ms", "CONTROL_DEBOUNCE_MS", GW_OPT_INT, OFF(debounce_ms), "50", 0, 60000, NULL, 0,
     "changes within this quiet period go out as one snapshot"},
    {"debounce-max-ms", "CONTROL_DEBOUNCE_MAX_MS", GW_OPT_INT, OFF(debounce_max_ms), "500", 0,
     600000, NULL, 0, "a stream of changes is pushed at least this often"},
    {"max-nodes", "CONTROL_MAX_NODES", GW_OPT_INT, OFF(max_nodes), "1024", 1, 100000, NULL, 0,
     "fleet entries kept, connected or gone; a new node evicts the oldest gone one, and is "
     "refused (RESOURCE_EXHAUSTED) when all are connected"},
    {"gone-ttl-s", "CONTROL_GONE_TTL_S", GW_OPT_INT, OFF(gone_ttl_s), "3600", 1, 2592000, NULL, 0,
     "a node whose stream closed stays listed as gone this long"},
    GW_OPTS_LOG_ROWS(cp_config_t, log_level, log_format),
};

static const gw_opts_spec_t spec = {
    "wsgw-control",
    "Control plane: holds roles, API keys, limits and auth settings, pushes them to every\n"
    "data plane over gRPC and aggregates their stats. Every flag has an environment\n"
    "variable; flags win over the environment.",
    options, sizeof options / sizeof options[0], NULL};

static cp_server_t *g_server;

/* Settings that cannot work together: refused at start rather than served insecurely. */
static int cross_check(const cp_config_t *c, char *err, size_t errlen)
{
    if (c->init) return 0; /* only the state file matters */
    if (strlen(c->admin_token) < 16 || strlen(c->node_token) < 16) {
        snprintf(err, errlen,
                 "invalid CONTROL_ADMIN_TOKEN / CONTROL_NODE_TOKEN: both are "
                 "required, at least 16 bytes each");
        return -1;
    }
    if (!strcmp(c->admin_token, c->node_token)) {
        snprintf(err, errlen,
                 "invalid CONTROL_NODE_TOKEN: equal to CONTROL_ADMIN_TOKEN (every "
                 "node could administer the fleet)");
        return -1;
    }
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        snprintf(err, errlen, "invalid CONTROL_TLS_CERT / CONTROL_TLS_KEY: set both or neither");
        return -1;
    }
    if (c->tls_client_ca[0] && !c->tls_cert[0]) {
        snprintf(err, errlen,
                 "invalid CONTROL_TLS_CLIENT_CA: client certificates need TLS "
                 "(CONTROL_TLS_CERT and CONTROL_TLS_KEY); without, it would serve "
                 "plaintext and check no certificate");
        return -1;
    }
    return 0;
}

/* --init: the one way a new configuration is born. */
static int init_state(const char *path)
{
    char err[512];
    if (access(path, F_OK) == 0) {
        GW_LOG(GW_LOG_NOTICE, "control", "init_skipped", "path=\"%s\" note=\"exists: kept\"", path);
        return 0;
    }
    cp_state_t *s = cp_state_new();
    int rc = cp_state_save(s, path, err, sizeof err);
    if (rc == 0)
        GW_LOG(GW_LOG_NOTICE, "control", "init", "path=\"%s\" epoch=%s", path, cp_state_epoch(s));
    else
        fprintf(stderr, "wsgw-control: invalid CONTROL_STATE_PATH: %s\n", err);
    cp_state_free(s);
    return rc == 0 ? 0 : 2;
}

static void on_signal(int sig)
{
    (void)sig;
    if (g_server) cp_server_stop(g_server);
}

int main(int argc, char **argv)
{
    cp_config_t cfg;
    char err[512];
    memset(&cfg, 0, sizeof cfg);
    int rc = gw_opts_load(&spec, &cfg, argc, argv, NULL, err, sizeof err);
    if (rc == 0) rc = cross_check(&cfg, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "wsgw-control: %s\n", err);
        gw_opts_free(&spec, &cfg);
        return rc < 0 ? 2 : 0;
    }
    gw_log_setup((gw_log_level_t)cfg.log_level, (gw_log_format_t)cfg.log_format);
    if (cfg.init) {
        rc = init_state(cfg.state_path);
        gw_opts_free(&spec, &cfg);
        return rc;
    }

    cp_state_t *state = cp_state_load(cfg.state_path, err, sizeof err);
    if (!state) {
        fprintf(stderr, "wsgw-control: invalid CONTROL_STATE_PATH: %s\n", err);
        gw_opts_free(&spec, &cfg);
        return 2;
    }
    /* gRPC's threads inherit the signal mask: handle signals only here, by flag. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    grpc_init();

    cp_server_opts_t o = {.node_listen = cfg.node_listen,
                          .admin_listen = cfg.admin_listen,
                          .metrics_listen = cfg.metrics_listen,
                          .state_path = cfg.state_path,
                          .admin_token = cfg.admin_token,
                          .node_token = cfg.node_token,
                          .tls_cert = cfg.tls_cert,
                          .tls_key = cfg.tls_key,
                          .tls_client_ca = cfg.tls_client_ca,
                          .report_interval_ms = cfg.report_interval_ms,
                          .debounce_ms = cfg.debounce_ms,
                          .debounce_max_ms = cfg.debounce_max_ms,
                          .max_nodes = cfg.max_nodes,
                          .gone_ttl_ms = cfg.gone_ttl_s * 1000};
    g_server = cp_server_new(&o, state, err, sizeof err);
    if (!g_server) {
        fprintf(stderr, "wsgw-control: %s\n", err);
        cp_state_free(state);
        grpc_shutdown();
        gw_opts_free(&spec, &cfg);
        return 1;
    }
    GW_LOG(GW_LOG_NOTICE, "control", "listening",
           "node_port=%d admin_port=%d metrics_port=%d version=%llu", cp_server_node_port(g_server),
           cp_server_admin_port(g_server), cp_server_metrics_port(g_server),
           (unsigned long long)cp_state_version(state));
    cp_server_run(g_server);
    cp_server_t *s = g_server;
    g_server = NULL;
    cp_server_free(s);
    grpc_shutdown();
    for (int i = 0; i < 100 && grpc_is_initialized(); i++) usleep(10000);
    GW_LOG(GW_LOG_NOTICE, "control", "stopped", "%s", "");
    gw_opts_free(&spec, &cfg);
    return 0;
}

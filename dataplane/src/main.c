/* wsgw - the data plane: Redis pub/sub to WebSocket. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <grpc/grpc.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "server.h"

typedef struct {
    gw_server_t *srv;
    uv_signal_t sigterm, sigint;
    int signals;
} app_t;

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    GW_LOG(GW_LOG_NOTICE, "main", "signal", "signal=%d", signum);
    if (++app->signals == 1) {
        gw_server_drain(app->srv);
        uv_close((uv_handle_t *)&app->sigterm, NULL);
        uv_close((uv_handle_t *)&app->sigint, NULL);
    }
}

/* Roles (ROLES_FILE or built-in) and credentials; every name a setting refers to must
 * exist, so a typo fails at start instead of locking everyone out later. */
static int load_access(const gw_config_t *cfg, gw_roles_t **roles, gw_auth_t **auth, char *err,
                       size_t errlen)
{
    char why[400];
    if (cfg->roles_file[0]) {
        *roles = gw_roles_load(cfg->roles_file, why, sizeof why);
        if (!*roles) {
            snprintf(err, errlen, "invalid ROLES_FILE (--roles-file): %s", why);
            return -1;
        }
    } else {
        *roles = gw_roles_default();
    }
    if (!gw_roles_find(*roles, cfg->default_role)) {
        snprintf(err, errlen, "invalid DEFAULT_ROLE (--default-role): no role named '%s'",
                 cfg->default_role);
        return -1;
    }
    if (cfg->api_key[0] && !gw_roles_find(*roles, cfg->api_key_role)) {
        snprintf(err, errlen, "invalid GATEWAY_API_KEY_ROLE (--api-key-role): no role named '%s'",
                 cfg->api_key_role);
        return -1;
    }
    *auth = gw_auth_new(cfg, err, errlen);
    return *auth ? 0 : -1;
}

int main(int argc, char **argv)
{
    gw_config_t cfg;
    char err[512];
    int rc = gw_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "wsgw: %s\n", err);
        gw_config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    gw_log_setup((gw_log_level_t)cfg.log_level, (gw_log_format_t)cfg.log_format);
    if (cfg.adjusted[0]) GW_LOG(GW_LOG_WARN, "config", "setting_adjusted", "%s", cfg.adjusted);
    if (cfg.ignored[0])
        GW_LOG(GW_LOG_WARN, "config", "settings_ignored",
               "settings=%s note=\"accepted for compatibility; they have no effect\"", cfg.ignored);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());

    gw_roles_t *roles = NULL;
    gw_auth_t *auth = NULL;
    if (load_access(&cfg, &roles, &auth, err, sizeof err) < 0) {
        fprintf(stderr, "wsgw: %s\n", err);
        gw_roles_unref(roles);
        gw_config_free(&cfg);
        return 2;
    }

    bool grpc = cfg.control_plane_url[0] != '\0';
    if (grpc) grpc_init(); /* before any thread, so its threads inherit nothing odd */

    uv_loop_t loop;
    uv_loop_init(&loop);
    app_t app = {0};
    app.srv = gw_server_new(&loop, &cfg, roles, auth);
    if (!app.srv) {
        uv_loop_close(&loop);
        if (grpc) grpc_shutdown();
        gw_auth_free(auth);
        gw_roles_unref(roles);
        gw_config_free(&cfg);
        return 1;
    }
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    uv_run(&loop, UV_RUN_DEFAULT);

    gw_server_free(app.srv);
    gw_auth_free(auth);
    gw_roles_unref(roles);
    int closed = uv_loop_close(&loop);
    if (grpc) {
        grpc_shutdown();
        for (int i = 0; i < 100 && grpc_is_initialized(); i++) usleep(10000);
    }
    gw_config_free(&cfg);
    if (closed != 0) fprintf(stderr, "level=warn sub=main event=loop_not_empty\n");
    return 0;
}

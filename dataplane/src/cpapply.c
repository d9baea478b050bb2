#include "server_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"

#define SUBSYS "control"

/*------------------------------------------------------------------------------
 * Control plane: snapshots in, stats out */

/* Swaps a validated snapshot in. Everything that can fail is checked before anything
 * changes, so a failure leaves the node exactly as it was. */
static int apply_snapshot(gw_server_t *srv, const uint8_t *data, size_t len, char *err,
                          size_t errlen, uint64_t *version)
{
    gw_snapshot_t sn;
    *version = 0;
    if (gw_snapshot_decode(data, len, &sn, err, errlen) < 0) return -1;
    *version = sn.version;
    if (gw_auth_set_jwt(srv->env.auth, sn.jwt_issuer, sn.jwt_audience, sn.jwt_role_claim,
                        sn.jwt_leeway_s, sn.jwt_require_exp, sn.jwt_pem, err, errlen) < 0) {
        gw_snapshot_free(&sn);
        return -1;
    }
    gw_auth_set_keys(srv->env.auth, sn.keys, sn.nkeys);
    const gw_config_t *own = srv->cfg;
    gw_config_t *live = &srv->live;
    live->require_auth = sn.require_auth;
    free(srv->owned_default_role);
    live->default_role = srv->owned_default_role = sn.default_role;
    sn.default_role = NULL;
    live->jwt_leeway_s = sn.jwt_leeway_s;
    live->max_channels = sn.max_channels ? sn.max_channels : own->max_channels;
    live->max_wildcards = sn.max_wildcards ? sn.max_wildcards : own->max_wildcards;
    live->client_rate_limit = sn.rate_limit ? sn.rate_limit : own->client_rate_limit;
    live->client_rate_burst = sn.rate_burst ? sn.rate_burst : own->client_rate_burst;
    gw_roles_unref(srv->env.roles);
    srv->env.roles = sn.roles;
    sn.roles = NULL;
    srv->config_version = sn.version;
    snprintf(srv->config_epoch, sizeof srv->config_epoch, "%s", sn.epoch);
    gw_sha256(data, len, srv->config_digest);
    srv->config_ready = true;
    gw_snapshot_free(&sn);

    /* Live connections follow: forbidden subscriptions go, revoked keys and deleted
     * roles are closed with 4403. Closing is deferred, so the list stays intact. */
    for (gw_session_t *s = srv->sessions; s; s = s->next) gw_session_reauthorize(s);
    gw_stats.config_applied++;
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "config_applied", "version=%llu epoch=%s",
           (unsigned long long)srv->config_version, srv->config_epoch);
    return 0;
}

static void on_snapshot(void *ud, const uint8_t *data, size_t len, const char *nonce)
{
    gw_server_t *srv = ud;
    char err[512];
    uint64_t version;
    if (apply_snapshot(srv, data, len, err, sizeof err, &version) < 0) {
        gw_stats.config_rejected++;
        GW_LOG(GW_LOG_WARN, SUBSYS, "config_rejected", "version=%llu kept=%llu error=\"%s\"",
               (unsigned long long)version, (unsigned long long)srv->config_version, err);
        gw_cplink_nack(srv->cplink, srv->config_version, version, nonce, err);
        return;
    }
    if (srv->cfg->config_cache_path[0] &&
        gw_write_file_atomic(srv->cfg->config_cache_path, data, len, err, sizeof err) < 0)
        GW_LOG(GW_LOG_WARN, SUBSYS, "cache_write_failed", "error=\"%s\"", err);
    gw_cplink_ack(srv->cplink, srv->config_version, srv->config_epoch, srv->config_digest, nonce);
}

static void load_cached_config(gw_server_t *srv)
{
    gw_buf_t b = GW_BUF_INIT;
    char err[512];
    uint64_t version;
    const char *path = srv->cfg->config_cache_path;
    if (path[0] && gw_buf_read_file(&b, path, 64u << 20) == 0 && b.len > 0) {
        if (apply_snapshot(srv, (const uint8_t *)b.data, b.len, err, sizeof err, &version) == 0)
            GW_LOG(GW_LOG_NOTICE, SUBSYS, "config_from_cache", "version=%llu path=%s",
                   (unsigned long long)version, path);
        else
            GW_LOG(GW_LOG_WARN, SUBSYS, "cache_unusable", "path=%s error=\"%s\"", path, err);
    }
    gw_buf_free(&b);
}

static void on_report(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    size_t n;
    uint8_t *st = gw_stats_report(srv->redis && gw_redis_is_up(srv->redis),
                                  (int64_t)(gw_unix_us() / 1000), &n);
    gw_cplink_report(srv->cplink, st, n);
    free(st);
}

void gw_control_start(gw_server_t *srv)
{
    const gw_config_t *cfg = srv->cfg;
    srv->cp_mode = true;
    load_cached_config(srv);
    gw_cplink_opts_t o = {.target = cfg->control_plane_url,
                          .token = cfg->control_node_token,
                          .node_id = cfg->node_id,
                          .address = cfg->node_id,
                          .build = "wsgw " GW_VERSION,
                          .tls_ca = cfg->control_tls_ca,
                          .tls_cert = cfg->control_tls_client_cert,
                          .tls_key = cfg->control_tls_client_key};
    srv->cplink =
        gw_cplink_start(srv->loop, &o, srv->config_version, srv->config_epoch,
                        srv->config_version ? srv->config_digest : NULL, on_snapshot, srv);
    if (!srv->cplink) return; /* logged; the node serves from its cache, if any */
    uv_timer_init(srv->loop, &srv->report_timer);
    srv->report_timer.data = srv;
    uv_timer_start(&srv->report_timer, on_report, (uint64_t)cfg->report_interval_ms,
                   (uint64_t)cfg->report_interval_ms);
}

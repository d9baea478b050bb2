#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stats.h"
#include "wsgw/control/v1/control.pb-c.h"

static long limit_or_unset(uint32_t v)
{
    return v ? (long)v : GW_LIMIT_UNSET;
}

static char *dup_str(const char *s)
{
    return gw_xstrdup(s ? s : "");
}

int gw_snapshot_decode(const uint8_t *data, size_t len, gw_snapshot_t *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    Wsgw__Control__V1__Snapshot *m = wsgw__control__v1__snapshot__unpack(NULL, len, data);
    if (!m) {
        snprintf(err, errlen, "snapshot does not decode");
        return -1;
    }
    int rc = -1;
    if (!m->auth || !m->limits || !m->version) {
        snprintf(err, errlen, "snapshot: version, auth and limits are required");
        goto Exit;
    }
    gw_role_spec_t *specs = gw_xcalloc(m->n_roles + 1, sizeof *specs);
    for (size_t i = 0; i < m->n_roles; i++) {
        Wsgw__Control__V1__Role *r = m->roles[i];
        specs[i] = (gw_role_spec_t){r->name,        r->allow,       r->n_allow,
                                    r->deny,        r->n_deny,      GW_LIMIT_UNSET,
                                    GW_LIMIT_UNSET, GW_LIMIT_UNSET, GW_LIMIT_UNSET};
        if (r->limits) {
            specs[i].max_channels = limit_or_unset(r->limits->max_channels);
            specs[i].max_wildcards = limit_or_unset(r->limits->max_wildcards);
            specs[i].rate_limit = limit_or_unset(r->limits->rate_limit);
            specs[i].rate_burst = limit_or_unset(r->limits->rate_burst);
        }
    }
    out->roles = gw_roles_build(specs, m->n_roles, err, errlen);
    free(specs);
    if (!out->roles) goto Exit;
    if (!gw_roles_find(out->roles, m->auth->default_role)) {
        snprintf(err, errlen, "auth.default_role: no role named '%.64s'", m->auth->default_role);
        goto Exit;
    }
    out->keys = gw_xcalloc(m->n_api_keys + 1, sizeof *out->keys);
    for (size_t i = 0; i < m->n_api_keys; i++) {
        Wsgw__Control__V1__ApiKey *k = m->api_keys[i];
        if (k->sha256.len != 32 || strlen(k->id) >= sizeof out->keys[i].id ||
            strlen(k->role) >= sizeof out->keys[i].role) {
            snprintf(err, errlen, "api_keys[%zu]: needs an id, a role and a 32-byte sha256", i);
            goto Exit;
        }
        if (!strcmp(k->id, "env")) { /* the node's own GATEWAY_API_KEY: never replaced */
            snprintf(err, errlen, "api_keys[%zu].id: \"env\" is reserved for the node's own key",
                     i);
            goto Exit;
        }
        gw_apikey_t *d = &out->keys[out->nkeys++];
        snprintf(d->id, sizeof d->id, "%s", k->id);
        snprintf(d->role, sizeof d->role, "%s", k->role);
        memcpy(d->hash, k->sha256.data, 32);
        d->expires = k->expires_at;
        d->revoked = k->revoked;
    }
    out->version = m->version;
    snprintf(out->epoch, sizeof out->epoch, "%s", m->epoch);
    out->require_auth = m->auth->require_auth;
    out->jwt_require_exp = m->auth->jwt_require_exp;
    out->default_role = dup_str(m->auth->default_role);
    out->jwt_issuer = dup_str(m->auth->jwt_issuer);
    out->jwt_audience = dup_str(m->auth->jwt_audience);
    out->jwt_role_claim = dup_str(m->auth->jwt_role_claim);
    out->jwt_pem = dup_str(m->auth->jwt_public_key_pem);
    out->jwt_leeway_s = m->auth->jwt_leeway_s;
    out->max_channels = m->limits->max_channels;
    out->max_wildcards = m->limits->max_wildcards;
    out->rate_limit = m->limits->rate_limit;
    out->rate_burst = m->limits->rate_burst;
    rc = 0;
Exit:
    protobuf_c_message_free_unpacked(&m->base, NULL);
    if (rc < 0) gw_snapshot_free(out);
    return rc;
}

void gw_snapshot_free(gw_snapshot_t *s)
{
    gw_roles_unref(s->roles);
    free(s->keys);
    free(s->default_role);
    free(s->jwt_issuer);
    free(s->jwt_audience);
    free(s->jwt_role_claim);
    free(s->jwt_pem);
    memset(s, 0, sizeof *s);
}

uint8_t *gw_stats_report(bool redis_connected, int64_t now_ms, size_t *len)
{
    uint64_t errors = 0;
    for (int i = 0; i < GW_E__COUNT; i++) errors += gw_stats.errors[i];
    const struct {
        const char *name;
        uint64_t v;
    } c[] = {
        {"connections_current", gw_stats.conn_current},
        {"connections_total", gw_stats.conn_total},
        {"subscriptions_client_exact", gw_stats.client_subs_exact},
        {"subscriptions_client_pattern", gw_stats.client_subs_pattern},
        {"subscriptions_redis_exact", gw_stats.redis_subs_exact},
        {"subscriptions_redis_pattern", gw_stats.redis_subs_pattern},
        {"messages_from_redis", gw_stats.redis_messages},
        {"frames_sent", gw_stats.frames_sent},
        {"bytes_sent", gw_stats.bytes_sent},
        {"frames_received", gw_stats.frames_received},
        {"dropped", gw_stats.dropped_drop + gw_stats.dropped_conflate},
        {"slow_closes", gw_stats.slow_closes},
        {"auth_ok", gw_stats.auth_ok},
        {"acl_denied", gw_stats.acl_denied},
        {"rate_limited", gw_stats.rate_limited},
        {"redis_reconnects", gw_stats.redis_reconnects},
        {"errors", errors},
    };
    enum { N = sizeof c / sizeof c[0] };
    Wsgw__Control__V1__NodeStats__CountersEntry e[N], *ep[N];
    for (size_t i = 0; i < N; i++) {
        wsgw__control__v1__node_stats__counters_entry__init(&e[i]);
        e[i].key = (char *)c[i].name;
        e[i].value = c[i].v;
        ep[i] = &e[i];
    }
    Wsgw__Control__V1__NodeStats st = WSGW__CONTROL__V1__NODE_STATS__INIT;
    st.time_unix_ms = now_ms;
    st.n_counters = N;
    st.counters = ep;
    st.redis_connected = redis_connected;
    *len = wsgw__control__v1__node_stats__get_packed_size(&st);
    uint8_t *out = gw_xmalloc(*len ? *len : 1);
    wsgw__control__v1__node_stats__pack(&st, out);
    return out;
}

#include "cpserver_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "hash.h"
#include "log.h"

#define SUBSYS "control"

/*------------------------------------------------------------------------------
 * Admin handlers */

static grpc_status_code reply_version(cp_server_t *s, grpc_byte_buffer **reply)
{
    Wsgw__Control__V1__VersionReply r = WSGW__CONTROL__V1__VERSION_REPLY__INIT;
    r.version = cp_state_version(s->state);
    *reply = pb_to_bb(&r.base);
    return GRPC_STATUS_OK;
}

/* Applies a mutation made on a copy: persist first, then swap and push. */
static grpc_status_code commit(cp_server_t *s, cp_state_t *next, int rc, char *detail, size_t dlen)
{
    if (rc < 0) {
        cp_state_free(next);
        return rc == -2   ? GRPC_STATUS_NOT_FOUND
               : rc == -3 ? GRPC_STATUS_ALREADY_EXISTS
                          : GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (cp_state_version(next) == cp_state_version(s->state)) {
        cp_state_free(next);
        return GRPC_STATUS_OK;
    }
    if (cp_state_save(next, s->o.state_path, detail, dlen) < 0) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "save_failed", "detail=\"%s\"", detail);
        cp_state_free(next);
        return GRPC_STATUS_INTERNAL;
    }
    cp_state_free(s->state);
    s->state = next;
    GW_LOG(GW_LOG_INFO, SUBSYS, "config_changed", "version=%llu",
           (unsigned long long)cp_state_version(next));
    cp_schedule_push(s);
    return GRPC_STATUS_OK;
}

#define REQ(type, var) const type *var = (const type *)req

/* Every mutation runs the same way: on a copy, committed (persisted, swapped, pushed)
 * only when valid; the reply is the new version. */
typedef int (*mutation_fn)(cp_state_t *next, const ProtobufCMessage *req, char *detail,
                           size_t dlen);

static grpc_status_code mutate(cp_server_t *s, mutation_fn op, const ProtobufCMessage *req,
                               grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    cp_state_t *next = cp_state_clone(s->state);
    grpc_status_code c = commit(s, next, op(next, req, detail, dlen), detail, dlen);
    return c == GRPC_STATUS_OK ? reply_version(s, reply) : c;
}

#define MUTATION(handler, type, call)                                                              \
    static int handler##_op(cp_state_t *next, const ProtobufCMessage *req, char *detail,           \
                            size_t dlen)                                                           \
    {                                                                                              \
        const type *r = (const type *)req;                                                         \
        return call;                                                                               \
    }                                                                                              \
    static grpc_status_code handler(cp_server_t *s, const ProtobufCMessage *req,                   \
                                    grpc_byte_buffer **reply, char *detail, size_t dlen)           \
    {                                                                                              \
        return mutate(s, handler##_op, req, reply, detail, dlen);                                  \
    }

MUTATION(h_put_role, Wsgw__Control__V1__PutRoleRequest,
         cp_state_put_role(next, r->role, detail, dlen))
MUTATION(h_delete_role, Wsgw__Control__V1__DeleteRoleRequest,
         cp_state_delete_role(next, r->name, detail, dlen))
MUTATION(h_revoke_key, Wsgw__Control__V1__RevokeApiKeyRequest,
         cp_state_revoke_key(next, r->id, detail, dlen))
MUTATION(h_set_limits, Wsgw__Control__V1__SetLimitsRequest,
         cp_state_set_limits(next, r->limits, detail, dlen))
MUTATION(h_set_auth, Wsgw__Control__V1__SetAuthConfigRequest,
         cp_state_set_auth(next, r->auth, detail, dlen))

static const cp_role_msg_t *find_role(cp_server_t *s, const char *name)
{
    const cp_snapshot_msg_t *m = cp_state_snapshot(s->state);
    for (size_t i = 0; i < m->n_roles; i++)
        if (!strcmp(m->roles[i]->name, name)) return m->roles[i];
    return NULL;
}

static grpc_status_code h_get_role(cp_server_t *s, const ProtobufCMessage *req,
                                   grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    REQ(Wsgw__Control__V1__GetRoleRequest, r);
    const cp_role_msg_t *role = find_role(s, r->name);
    if (!role) {
        snprintf(detail, dlen, "name: no role named '%.64s'", r->name);
        return GRPC_STATUS_NOT_FOUND;
    }
    *reply = pb_to_bb(&role->base);
    return GRPC_STATUS_OK;
}

static grpc_status_code h_list_roles(cp_server_t *s, const ProtobufCMessage *req,
                                     grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    (void)req, (void)detail, (void)dlen;
    const cp_snapshot_msg_t *m = cp_state_snapshot(s->state);
    Wsgw__Control__V1__ListRolesReply r = WSGW__CONTROL__V1__LIST_ROLES_REPLY__INIT;
    r.n_roles = m->n_roles;
    r.roles = m->roles;
    *reply = pb_to_bb(&r.base);
    return GRPC_STATUS_OK;
}

static grpc_status_code h_create_key(cp_server_t *s, const ProtobufCMessage *req,
                                     grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    REQ(Wsgw__Control__V1__CreateApiKeyRequest, r);
    char secret[64], id[64];
    cp_state_t *next = cp_state_clone(s->state);
    int rc = cp_state_create_key(next, r->role, r->expires_at, r->description, r->id,
                                 (int64_t)time(NULL), secret, id, detail, dlen);
    grpc_status_code c = commit(s, next, rc, detail, dlen);
    if (c != GRPC_STATUS_OK) return c;
    Wsgw__Control__V1__ApiKey k = WSGW__CONTROL__V1__API_KEY__INIT;
    k.id = id;
    k.role = r->role;
    k.expires_at = r->expires_at;
    k.created_at = (int64_t)time(NULL);
    k.description = r->description;
    Wsgw__Control__V1__CreateApiKeyReply out = WSGW__CONTROL__V1__CREATE_API_KEY_REPLY__INIT;
    out.key = &k;
    out.secret = secret;
    out.version = cp_state_version(s->state);
    *reply = pb_to_bb(&out.base);
    memset(secret, 0, sizeof secret);
    return GRPC_STATUS_OK;
}

static grpc_status_code h_list_keys(cp_server_t *s, const ProtobufCMessage *req,
                                    grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    (void)req, (void)detail, (void)dlen;
    size_t n;
    uint8_t *packed = cp_state_pack(s->state, false, &n); /* hashes left out */
    cp_snapshot_msg_t *m = wsgw__control__v1__snapshot__unpack(NULL, n, packed);
    free(packed);
    Wsgw__Control__V1__ListApiKeysReply r = WSGW__CONTROL__V1__LIST_API_KEYS_REPLY__INIT;
    r.n_keys = m->n_api_keys;
    r.keys = m->api_keys;
    *reply = pb_to_bb(&r.base);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return GRPC_STATUS_OK;
}

static grpc_status_code h_get_config(cp_server_t *s, const ProtobufCMessage *req,
                                     grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    (void)req, (void)detail, (void)dlen;
    size_t n;
    uint8_t *packed = cp_state_pack(s->state, false, &n);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)packed, n);
    *reply = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    free(packed);
    return GRPC_STATUS_OK;
}

static grpc_status_code h_list_nodes(cp_server_t *s, const ProtobufCMessage *req,
                                     grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    (void)req, (void)detail, (void)dlen;
    size_t count = 0;
    for (cp_node_t *n = s->fleet.nodes; n; n = n->next) count++;
    Wsgw__Control__V1__NodeStatus *v = gw_xcalloc(count + 1, sizeof *v);
    Wsgw__Control__V1__NodeStatus **p = gw_xcalloc(count + 1, sizeof *p);
    uint64_t version = cp_state_version(s->state);
    size_t i = 0;
    for (cp_node_t *n = s->fleet.nodes; n; n = n->next, i++) {
        wsgw__control__v1__node_status__init(&v[i]);
        v[i].node_id = n->node_id;
        v[i].address = n->address ? n->address : "";
        v[i].build_version = n->build ? n->build : "";
        v[i].acked_version = n->acked_version;
        v[i].sent_version = n->sent_version;
        v[i].sync_status = (char *)cp_fleet_status(&s->fleet, n, version, cp_wall_ms());
        v[i].error_detail = n->error ? n->error : "";
        v[i].last_report_unix_ms = n->last_report_ms;
        v[i].connected_unix_ms = n->connected_ms;
        v[i].duplicate = n->duplicate;
        p[i] = &v[i];
    }
    Wsgw__Control__V1__ListNodesReply r = WSGW__CONTROL__V1__LIST_NODES_REPLY__INIT;
    r.version = version;
    r.n_nodes = count;
    r.nodes = p;
    *reply = pb_to_bb(&r.base);
    free(v);
    free(p);
    return GRPC_STATUS_OK;
}

typedef Wsgw__Control__V1__GetClusterStatsReply__TotalsEntry total_t;

/* Fleet totals by counter name: an open-addressed table (power-of-two size, at most half
 * full) of entries in first-seen order, so summing K reported counters costs O(K). Keys
 * point into the nodes' reports, which outlive the reply. */
typedef struct {
    total_t *tot;
    size_t n, cap;
    uint32_t *slot; /* index + 1, 0 = empty */
    size_t mask;
} totals_t;

static void totals_add(totals_t *t, const char *key, uint64_t value)
{
    size_t j = gw_hash(key, strlen(key)) & t->mask;
    for (; t->slot[j]; j = (j + 1) & t->mask)
        if (!strcmp(t->tot[t->slot[j] - 1].key, key)) {
            t->tot[t->slot[j] - 1].value += value;
            return;
        }
    wsgw__control__v1__get_cluster_stats_reply__totals_entry__init(&t->tot[t->n]);
    t->tot[t->n].key = (char *)key;
    t->tot[t->n].value = value;
    t->slot[j] = (uint32_t)++t->n;
}

static grpc_status_code h_cluster_stats(cp_server_t *s, const ProtobufCMessage *req,
                                        grpc_byte_buffer **reply, char *detail, size_t dlen)
{
    (void)req, (void)detail, (void)dlen;
    size_t count = 0, reported = 0;
    for (cp_node_t *n = s->fleet.nodes; n; n = n->next)
        if (n->connected && n->stats) {
            count++;
            reported += n->stats->n_counters;
        }
    totals_t t = {.cap = reported + 1};
    size_t size = 2;
    while (size < 2 * t.cap) size *= 2;
    t.mask = size - 1;
    t.slot = gw_xcalloc(size, sizeof *t.slot);
    t.tot = gw_xcalloc(t.cap, sizeof *t.tot);
    Wsgw__Control__V1__NodeCounters *v = gw_xcalloc(count + 1, sizeof *v);
    Wsgw__Control__V1__NodeCounters **p = gw_xcalloc(count + 1, sizeof *p);
    size_t i = 0;
    for (cp_node_t *n = s->fleet.nodes; n; n = n->next) {
        if (!n->connected || !n->stats) continue;
        wsgw__control__v1__node_counters__init(&v[i]);
        v[i].node_id = n->node_id;
        v[i].time_unix_ms = n->stats->time_unix_ms;
        v[i].n_counters = n->stats->n_counters;
        /* Same layout as the stats entries: key, value. */
        v[i].counters = (Wsgw__Control__V1__NodeCounters__CountersEntry **)n->stats->counters;
        p[i] = &v[i];
        i++;
        for (size_t c = 0; c < n->stats->n_counters; c++)
            totals_add(&t, n->stats->counters[c]->key, n->stats->counters[c]->value);
    }
    total_t **tp = gw_xcalloc(t.n + 1, sizeof *tp);
    for (size_t k = 0; k < t.n; k++) tp[k] = &t.tot[k];
    Wsgw__Control__V1__GetClusterStatsReply r = WSGW__CONTROL__V1__GET_CLUSTER_STATS_REPLY__INIT;
    r.n_nodes = count;
    r.nodes = p;
    r.n_totals = t.n;
    r.totals = tp;
    *reply = pb_to_bb(&r.base);
    free(v);
    free(p);
    free(t.tot);
    free(t.slot);
    free(tp);
    return GRPC_STATUS_OK;
}

#define M(name, type, fn)                                                                          \
    {                                                                                              \
        PKG "Admin/" name, &wsgw__control__v1__##type##__descriptor, fn, NULL                      \
    }
method_t cp_admin_methods[] = {
    M("PutRole", put_role_request, h_put_role),
    M("GetRole", get_role_request, h_get_role),
    M("ListRoles", list_roles_request, h_list_roles),
    M("DeleteRole", delete_role_request, h_delete_role),
    M("CreateApiKey", create_api_key_request, h_create_key),
    M("RevokeApiKey", revoke_api_key_request, h_revoke_key),
    M("ListApiKeys", list_api_keys_request, h_list_keys),
    M("SetLimits", set_limits_request, h_set_limits),
    M("SetAuthConfig", set_auth_config_request, h_set_auth),
    M("GetConfig", get_config_request, h_get_config),
    M("ListNodes", list_nodes_request, h_list_nodes),
    M("GetClusterStats", get_cluster_stats_request, h_cluster_stats),
};
const size_t cp_n_admin_methods = sizeof cp_admin_methods / sizeof cp_admin_methods[0];

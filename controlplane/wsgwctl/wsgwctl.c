/* wsgwctl - the admin CLI for wsgw-control, over the same gRPC Admin API.
 *
 * Exit codes (stable, for scripts):
 *   0 ok, 1 refused by the server (invalid argument, conflict, internal),
 *   2 usage error, 3 control plane unreachable or timed out,
 *   4 not authenticated / not allowed, 5 not found.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "pb.h"
#include "wsgw/control/v1/control.pb-c.h"

#define PKG "/wsgw.control.v1.Admin/"

static struct {
    const char *server, *token, *tls_ca, *tls_cert, *tls_key;
    bool json;
    long timeout_ms;
} g = {NULL, NULL, "", "", "", false, 5000};

/* Table cells and messages carry what nodes and admins sent (a node's id, a NACK's text):
 * bytes that could drive the terminal (controls, DEL, non-ASCII) print as \xNN. The
 * result lives until 8 more calls. */
static const char *esc(const char *s)
{
    static gw_buf_t ring[8];
    static unsigned next;
    gw_buf_t *b = &ring[next++ % 8];
    b->len = 0;
    gw_buf_printf(b, "%s", ""); /* never NULL, even for "" */
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            gw_buf_printf(b, "\\x%02x", c);
        else
            gw_buf_printf(b, "%c", c);
    }
    return b->data;
}

static grpc_channel *channel;

static void usage(void)
{
    fputs("usage: wsgwctl [--server host:port] [--token T] [--json] [--timeout-ms N]\n"
          "               [--tls-ca file [--tls-cert file --tls-key file]] COMMAND\n\n"
          "  role set NAME --allow P [--allow P]... [--deny P]... [--max-channels N]\n"
          "                [--max-wildcards N] [--rate-limit N] [--rate-burst N]\n"
          "  role get NAME | role list | role delete NAME\n"
          "  key create --role R [--ttl SECONDS | --expires-at UNIX] [--description D] [--id ID]\n"
          "  key revoke ID | key list\n"
          "  limits set [--max-channels N] [--max-wildcards N] [--rate-limit N] [--rate-burst N]\n"
          "  auth set [--require-auth true|false] [--default-role R] [--jwt-issuer S]\n"
          "           [--jwt-audience S] [--jwt-role-claim S] [--jwt-leeway-s N]\n"
          "           [--jwt-require-exp true|false] [--jwt-public-key-file F]\n"
          "  config | nodes | stats\n\n"
          "Server and token also come from WSGW_CONTROL_URL and WSGW_ADMIN_TOKEN.\n"
          "Exit codes: 0 ok, 1 refused, 2 usage, 3 unreachable, 4 auth, 5 not found.\n",
          stderr);
}

static int exit_for(grpc_status_code c)
{
    switch (c) {
    case GRPC_STATUS_OK: return 0;
    case GRPC_STATUS_UNAVAILABLE:
    case GRPC_STATUS_DEADLINE_EXCEEDED: return 3;
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED: return 4;
    case GRPC_STATUS_NOT_FOUND: return 5;
    default: return 1;
    }
}

/* One unary call; on success *reply is the decoded message (free_unpacked). */
static grpc_status_code call(const char *method, const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *rd, ProtobufCMessage **reply)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(g.timeout_ms, GPR_TIMESPAN));
    char path[128];
    snprintf(path, sizeof path, PKG "%s", method);
    grpc_slice mslice = grpc_slice_from_copied_string(path);
    grpc_call *c = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, mslice,
                                            NULL, deadline, NULL);
    grpc_slice_unref(mslice);
    gw_buf_t bearer = GW_BUF_INIT;
    gw_buf_printf(&bearer, "Bearer %s", g.token);
    grpc_metadata md = {grpc_slice_from_static_string("authorization"),
                        grpc_slice_from_copied_string(bearer.data),
                        {{NULL, NULL, NULL, NULL}}};
    gw_buf_free(&bearer);
    grpc_byte_buffer *send = pb_to_bb(req), *recv = NULL;
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int tag;
    if (grpc_call_start_batch(c, ops, 6, &tag, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    *reply = NULL;
    if (status == GRPC_STATUS_OK) {
        *reply = pb_from_bb(rd, recv);
        if (!*reply) status = GRPC_STATUS_INTERNAL;
    } else {
        char *d = grpc_slice_to_c_string(details);
        fprintf(stderr, "wsgwctl: %s: %s\n", method, d[0] ? esc(d) : "failed");
        gpr_free(d);
    }
    grpc_byte_buffer_destroy(send);
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_slice_unref(details);
    grpc_slice_unref(md.value);
    grpc_call_unref(c);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return status;
}

/*------------------------------------------------------------------------------
 * Output: --json is a generic protobuf -> JSON rendering, tables are per command */

static json_t *to_json(const ProtobufCMessage *m);

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_UINT32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64: return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_STRING: {
        /* Not UTF-8 (a peer's bytes): shown escaped rather than dropped. */
        json_t *j = json_string(*(char *const *)p);
        return j ? j : json_string(esc(*(char *const *)p));
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        gw_buf_t hex = GW_BUF_INIT;
        for (size_t i = 0; i < b->len; i++) gw_buf_printf(&hex, "%02x", b->data[i]);
        json_t *s = json_string(hex.data ? hex.data : "");
        gw_buf_free(&hex);
        return s;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? to_json(sub) : json_null();
    }
    default: return json_null();
    }
}

static bool is_map_entry(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    return d->n_fields == 2 && !strcmp(d->fields[0].name, "key") &&
           !strcmp(d->fields[1].name, "value") && strstr(d->name, "Entry");
}

static json_t *to_json(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            void *const *arr = *(void *const *const *)base;
            if (is_map_entry(f)) {
                json_t *map = json_object();
                for (size_t k = 0; k < n; k++) {
                    const ProtobufCMessage *e = arr[k];
                    const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0];
                    const ProtobufCFieldDescriptor *vf = &e->descriptor->fields[1];
                    json_object_set_new(map, *(char *const *)((const char *)e + kf->offset),
                                        field_json(vf, (const char *)e + vf->offset));
                }
                json_object_set_new(o, f->name, map);
                continue;
            }
            json_t *a = json_array();
            size_t sz = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
                            ? sizeof(void *)
                        : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                                                           : 8;
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, field_json(f, (const char *)arr + k * sz));
            json_object_set_new(o, f->name, a);
        } else if (f->quantifier_offset && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            /* a oneof member: only the one that is set */
            uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (which == f->id) json_object_set_new(o, f->name, field_json(f, base));
        } else {
            json_object_set_new(o, f->name, field_json(f, base));
        }
    }
    return o;
}

static void print_json(const ProtobufCMessage *m)
{
    json_t *j = to_json(m);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
    json_decref(j);
}

static void print_roles(Wsgw__Control__V1__Role **roles, size_t n)
{
    printf("%-20s %-40s %s\n", "ROLE", "ALLOW", "DENY");
    for (size_t i = 0; i < n; i++) {
        gw_buf_t a = GW_BUF_INIT, d = GW_BUF_INIT;
        for (size_t k = 0; k < roles[i]->n_allow; k++)
            gw_buf_printf(&a, "%s%s", k ? "," : "", roles[i]->allow[k]);
        for (size_t k = 0; k < roles[i]->n_deny; k++)
            gw_buf_printf(&d, "%s%s", k ? "," : "", roles[i]->deny[k]);
        printf("%-20s %-40s %s\n", esc(roles[i]->name), a.data ? esc(a.data) : "-",
               d.data ? esc(d.data) : "-");
        gw_buf_free(&a);
        gw_buf_free(&d);
    }
}

/*------------------------------------------------------------------------------
 * Commands */

typedef struct {
    int argc;
    char **argv;
    int i;
} args_t;

static const char *next_arg(args_t *a)
{
    return a->i < a->argc ? a->argv[a->i++] : NULL;
}

static bool parse_long(const char *s, long *out)
{
    char *end;
    if (!s) return false;
    *out = strtol(s, &end, 10);
    return *end == '\0' && end != s && *out >= 0;
}

static bool parse_bool(const char *s, protobuf_c_boolean *out)
{
    if (s && (!strcmp(s, "true") || !strcmp(s, "false"))) {
        *out = !strcmp(s, "true");
        return true;
    }
    return false;
}

#define FAIL_USAGE(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "wsgwctl: " __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                                       \
        return 2;                                                                                  \
    } while (0)

/* Finishes a call: prints (json or table) and maps the status to an exit code. */
static int finish(grpc_status_code st, ProtobufCMessage *reply, void (*table)(ProtobufCMessage *))
{
    if (st != GRPC_STATUS_OK) return exit_for(st);
    if (g.json || !table)
        print_json(reply);
    else
        table(reply);
    protobuf_c_message_free_unpacked(reply, NULL);
    return 0;
}

/* call + finish, in that order (as arguments of one call they would be unsequenced). */
static int run(const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *rd, void (*table)(ProtobufCMessage *))
{
    ProtobufCMessage *reply;
    grpc_status_code st = call(method, req, rd, &reply);
    return finish(st, reply, table);
}

static void t_version(ProtobufCMessage *m)
{
    printf("ok, config version %llu\n",
           (unsigned long long)((Wsgw__Control__V1__VersionReply *)m)->version);
}

static void t_roles(ProtobufCMessage *m)
{
    Wsgw__Control__V1__ListRolesReply *r = (Wsgw__Control__V1__ListRolesReply *)m;
    print_roles(r->roles, r->n_roles);
}

static void t_role(ProtobufCMessage *m)
{
    Wsgw__Control__V1__Role *r = (Wsgw__Control__V1__Role *)m;
    print_roles(&r, 1);
}

static int limits_opt(const char *opt, const char *val, Wsgw__Control__V1__Limits *l, bool *ok)
{
    long v;
    uint32_t *dst = !strcmp(opt, "--max-channels")    ? &l->max_channels
                    : !strcmp(opt, "--max-wildcards") ? &l->max_wildcards
                    : !strcmp(opt, "--rate-limit")    ? &l->rate_limit
                    : !strcmp(opt, "--rate-burst")    ? &l->rate_burst
                                                      : NULL;
    if (!dst) return 0;
    *ok = parse_long(val, &v) && v <= 10000000;
    if (*ok) *dst = (uint32_t)v;
    return 1;
}

static int cmd_role(args_t *a)
{
    const char *sub = next_arg(a);
    if (!sub) FAIL_USAGE("role: set, get, list or delete");
    if (!strcmp(sub, "list")) {
        Wsgw__Control__V1__ListRolesRequest req = WSGW__CONTROL__V1__LIST_ROLES_REQUEST__INIT;
        return run("ListRoles", &req.base, &wsgw__control__v1__list_roles_reply__descriptor,
                   t_roles);
    }
    const char *name = next_arg(a);
    if (!name) FAIL_USAGE("role %s: NAME required", sub);
    if (!strcmp(sub, "get")) {
        Wsgw__Control__V1__GetRoleRequest req = WSGW__CONTROL__V1__GET_ROLE_REQUEST__INIT;
        req.name = (char *)name;
        return run("GetRole", &req.base, &wsgw__control__v1__role__descriptor, t_role);
    }
    if (!strcmp(sub, "delete")) {
        Wsgw__Control__V1__DeleteRoleRequest req = WSGW__CONTROL__V1__DELETE_ROLE_REQUEST__INIT;
        req.name = (char *)name;
        return run("DeleteRole", &req.base, &wsgw__control__v1__version_reply__descriptor,
                   t_version);
    }
    if (strcmp(sub, "set")) FAIL_USAGE("role: unknown subcommand '%s'", sub);
    Wsgw__Control__V1__Role role = WSGW__CONTROL__V1__ROLE__INIT;
    Wsgw__Control__V1__Limits lim = WSGW__CONTROL__V1__LIMITS__INIT;
    char **allow = calloc((size_t)a->argc, sizeof *allow),
         **deny = calloc((size_t)a->argc, sizeof *deny);
    role.name = (char *)name;
    role.allow = allow;
    role.deny = deny;
    role.limits = &lim;
    int rc = 2;
    const char *opt;
    while ((opt = next_arg(a))) {
        const char *val = next_arg(a);
        bool ok = val != NULL;
        if (!val) {
            fprintf(stderr, "wsgwctl: %s needs a value\n", opt);
            goto Exit;
        }
        if (!strcmp(opt, "--allow"))
            allow[role.n_allow++] = (char *)val;
        else if (!strcmp(opt, "--deny"))
            deny[role.n_deny++] = (char *)val;
        else if (!limits_opt(opt, val, &lim, &ok) || !ok) {
            fprintf(stderr, "wsgwctl: bad option %s %s\n", opt, val);
            goto Exit;
        }
    }
    Wsgw__Control__V1__PutRoleRequest req = WSGW__CONTROL__V1__PUT_ROLE_REQUEST__INIT;
    req.role = &role;
    rc = run("PutRole", &req.base, &wsgw__control__v1__version_reply__descriptor, t_version);
Exit:
    free(allow);
    free(deny);
    return rc;
}

static void t_created(ProtobufCMessage *m)
{
    Wsgw__Control__V1__CreateApiKeyReply *r = (Wsgw__Control__V1__CreateApiKeyReply *)m;
    printf("id:      %s\nrole:    %s\nsecret:  %s\n(the secret is shown once; store it now)\n",
           esc(r->key->id), esc(r->key->role), esc(r->secret));
}

static void t_keys(ProtobufCMessage *m)
{
    Wsgw__Control__V1__ListApiKeysReply *r = (Wsgw__Control__V1__ListApiKeysReply *)m;
    printf("%-24s %-16s %-12s %-8s %s\n", "ID", "ROLE", "EXPIRES", "REVOKED", "DESCRIPTION");
    for (size_t i = 0; i < r->n_keys; i++) {
        Wsgw__Control__V1__ApiKey *k = r->keys[i];
        char exp[32] = "never";
        if (k->expires_at) snprintf(exp, sizeof exp, "%lld", (long long)k->expires_at);
        printf("%-24s %-16s %-12s %-8s %s\n", esc(k->id), esc(k->role), exp,
               k->revoked ? "yes" : "no", esc(k->description));
    }
}

static int cmd_key(args_t *a)
{
    const char *sub = next_arg(a);
    if (!sub) FAIL_USAGE("key: create, revoke or list");
    if (!strcmp(sub, "list")) {
        Wsgw__Control__V1__ListApiKeysRequest req = WSGW__CONTROL__V1__LIST_API_KEYS_REQUEST__INIT;
        return run("ListApiKeys", &req.base, &wsgw__control__v1__list_api_keys_reply__descriptor,
                   t_keys);
    }
    if (!strcmp(sub, "revoke")) {
        Wsgw__Control__V1__RevokeApiKeyRequest req =
            WSGW__CONTROL__V1__REVOKE_API_KEY_REQUEST__INIT;
        req.id = (char *)next_arg(a);
        if (!req.id) FAIL_USAGE("key revoke: ID required");
        return run("RevokeApiKey", &req.base, &wsgw__control__v1__version_reply__descriptor,
                   t_version);
    }
    if (strcmp(sub, "create")) FAIL_USAGE("key: unknown subcommand '%s'", sub);
    Wsgw__Control__V1__CreateApiKeyRequest req = WSGW__CONTROL__V1__CREATE_API_KEY_REQUEST__INIT;
    const char *opt;
    while ((opt = next_arg(a))) {
        const char *val = next_arg(a);
        long v;
        if (!val) FAIL_USAGE("%s needs a value", opt);
        if (!strcmp(opt, "--role"))
            req.role = (char *)val;
        else if (!strcmp(opt, "--description"))
            req.description = (char *)val;
        else if (!strcmp(opt, "--id"))
            req.id = (char *)val;
        else if (!strcmp(opt, "--ttl") && parse_long(val, &v))
            req.expires_at = (int64_t)time(NULL) + v;
        else if (!strcmp(opt, "--expires-at") && parse_long(val, &v))
            req.expires_at = v;
        else
            FAIL_USAGE("bad option %s %s", opt, val);
    }
    if (!req.role[0]) FAIL_USAGE("key create: --role required");
    return run("CreateApiKey", &req.base, &wsgw__control__v1__create_api_key_reply__descriptor,
               t_created);
}

static Wsgw__Control__V1__Snapshot *get_config(grpc_status_code *st)
{
    Wsgw__Control__V1__GetConfigRequest req = WSGW__CONTROL__V1__GET_CONFIG_REQUEST__INIT;
    ProtobufCMessage *reply;
    *st = call("GetConfig", &req.base, &wsgw__control__v1__snapshot__descriptor, &reply);
    return (Wsgw__Control__V1__Snapshot *)reply;
}

/* limits set / auth set change only what is named: read, merge, write. */
static int cmd_limits(args_t *a)
{
    const char *sub = next_arg(a);
    if (!sub || strcmp(sub, "set")) FAIL_USAGE("limits: set");
    grpc_status_code st;
    Wsgw__Control__V1__Snapshot *cfg = get_config(&st);
    if (!cfg) return exit_for(st);
    Wsgw__Control__V1__Limits lim = *cfg->limits;
    const char *opt;
    int rc = 2;
    while ((opt = next_arg(a))) {
        const char *val = next_arg(a);
        bool ok = val != NULL;
        if (!val || !limits_opt(opt, val, &lim, &ok) || !ok) {
            fprintf(stderr, "wsgwctl: bad option %s %s\n", opt, val ? val : "");
            goto Exit;
        }
    }
    Wsgw__Control__V1__SetLimitsRequest req = WSGW__CONTROL__V1__SET_LIMITS_REQUEST__INIT;
    req.limits = &lim;
    rc = run("SetLimits", &req.base, &wsgw__control__v1__version_reply__descriptor, t_version);
Exit:
    protobuf_c_message_free_unpacked(&cfg->base, NULL);
    return rc;
}

static int cmd_auth(args_t *a)
{
    const char *sub = next_arg(a);
    if (!sub || strcmp(sub, "set")) FAIL_USAGE("auth: set");
    grpc_status_code st;
    Wsgw__Control__V1__Snapshot *cfg = get_config(&st);
    if (!cfg) return exit_for(st);
    Wsgw__Control__V1__AuthConfig au = *cfg->auth;
    gw_buf_t pem = GW_BUF_INIT;
    const char *opt;
    int rc = 2;
    while ((opt = next_arg(a))) {
        const char *val = next_arg(a);
        long v;
        bool ok = val != NULL;
        if (!ok) break;
        if (!strcmp(opt, "--require-auth"))
            ok = parse_bool(val, &au.require_auth);
        else if (!strcmp(opt, "--jwt-require-exp"))
            ok = parse_bool(val, &au.jwt_require_exp);
        else if (!strcmp(opt, "--default-role"))
            au.default_role = (char *)val;
        else if (!strcmp(opt, "--jwt-issuer"))
            au.jwt_issuer = (char *)val;
        else if (!strcmp(opt, "--jwt-audience"))
            au.jwt_audience = (char *)val;
        else if (!strcmp(opt, "--jwt-role-claim"))
            au.jwt_role_claim = (char *)val;
        else if (!strcmp(opt, "--jwt-leeway-s") && (ok = parse_long(val, &v)))
            au.jwt_leeway_s = (uint32_t)v;
        else if (!strcmp(opt, "--jwt-public-key-file") &&
                 (ok = gw_buf_read_file(&pem, val, 1 << 20) == 0))
            au.jwt_public_key_pem = pem.data;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "wsgwctl: bad option %s %s\n", opt, val);
            goto Exit;
        }
    }
    Wsgw__Control__V1__SetAuthConfigRequest req = WSGW__CONTROL__V1__SET_AUTH_CONFIG_REQUEST__INIT;
    req.auth = &au;
    rc = run("SetAuthConfig", &req.base, &wsgw__control__v1__version_reply__descriptor, t_version);
Exit:
    gw_buf_free(&pem);
    protobuf_c_message_free_unpacked(&cfg->base, NULL);
    return rc;
}

static void t_config(ProtobufCMessage *m)
{
    Wsgw__Control__V1__Snapshot *s = (Wsgw__Control__V1__Snapshot *)m;
    printf("version %llu (epoch %s)\n", (unsigned long long)s->version, esc(s->epoch));
    printf("auth: require_auth=%s default_role=%s role_claim=%s leeway=%us require_exp=%s\n",
           s->auth->require_auth ? "true" : "false", esc(s->auth->default_role),
           esc(s->auth->jwt_role_claim), s->auth->jwt_leeway_s,
           s->auth->jwt_require_exp ? "true" : "false");
    printf("limits: max_channels=%u max_wildcards=%u rate_limit=%u rate_burst=%u (0 = node)\n",
           s->limits->max_channels, s->limits->max_wildcards, s->limits->rate_limit,
           s->limits->rate_burst);
    print_roles(s->roles, s->n_roles);
    printf("%zu API keys\n", s->n_api_keys);
}

static void t_nodes(ProtobufCMessage *m)
{
    Wsgw__Control__V1__ListNodesReply *r = (Wsgw__Control__V1__ListNodesReply *)m;
    printf("config version %llu\n%-28s %-8s %-8s %-8s %-22s %s\n", (unsigned long long)r->version,
           "NODE", "STATUS", "ACKED", "SENT", "ADDRESS", "ERROR");
    for (size_t i = 0; i < r->n_nodes; i++) {
        Wsgw__Control__V1__NodeStatus *n = r->nodes[i];
        printf("%-28s %-8s %-8llu %-8llu %-22s %s%s\n", esc(n->node_id), esc(n->sync_status),
               (unsigned long long)n->acked_version, (unsigned long long)n->sent_version,
               n->address[0] ? esc(n->address) : "-",
               n->duplicate ? "DUPLICATE node_id (another stream claims it) " : "",
               esc(n->error_detail));
    }
}

static void t_stats(ProtobufCMessage *m)
{
    Wsgw__Control__V1__GetClusterStatsReply *r = (Wsgw__Control__V1__GetClusterStatsReply *)m;
    printf("%-32s %s\n", "COUNTER", "FLEET TOTAL");
    for (size_t i = 0; i < r->n_totals; i++)
        printf("%-32s %llu\n", esc(r->totals[i]->key), (unsigned long long)r->totals[i]->value);
    printf("(%zu nodes reporting)\n", r->n_nodes);
}

int main(int argc, char **argv)
{
    args_t a = {argc, argv, 1};
    g.server = getenv("WSGW_CONTROL_URL");
    g.token = getenv("WSGW_ADMIN_TOKEN");
    const char *arg;
    while ((arg = next_arg(&a)) && !strncmp(arg, "--", 2)) {
        if (!strcmp(arg, "--json")) {
            g.json = true;
            continue;
        }
        if (!strcmp(arg, "--help")) {
            usage();
            return 0;
        }
        const char *val = next_arg(&a);
        if (!val) FAIL_USAGE("%s needs a value", arg);
        if (!strcmp(arg, "--server"))
            g.server = val;
        else if (!strcmp(arg, "--token"))
            g.token = val;
        else if (!strcmp(arg, "--tls-ca"))
            g.tls_ca = val;
        else if (!strcmp(arg, "--tls-cert"))
            g.tls_cert = val;
        else if (!strcmp(arg, "--tls-key"))
            g.tls_key = val;
        else if (!strcmp(arg, "--timeout-ms"))
            g.timeout_ms = atol(val);
        else
            FAIL_USAGE("unknown option %s (see --help)", arg);
    }
    if (!arg) {
        usage();
        return 2;
    }
    if (!g.server) g.server = "127.0.0.1:7401";
    if (!g.token || !g.token[0]) FAIL_USAGE("no token: pass --token or set WSGW_ADMIN_TOKEN");

    grpc_init();
    grpc_channel_credentials *creds;
    gw_buf_t ca = GW_BUF_INIT, cert = GW_BUF_INIT, key = GW_BUF_INIT;
    if (g.tls_ca[0]) {
        if (gw_buf_read_file(&ca, g.tls_ca, 1 << 20) < 0) FAIL_USAGE("cannot read %s", g.tls_ca);
        if (g.tls_cert[0] && (gw_buf_read_file(&cert, g.tls_cert, 1 << 20) < 0 ||
                              gw_buf_read_file(&key, g.tls_key, 1 << 20) < 0))
            FAIL_USAGE("cannot read --tls-cert / --tls-key");
        grpc_ssl_pem_key_cert_pair pair = {key.data, cert.data};
        creds = grpc_ssl_credentials_create_ex(ca.data, g.tls_cert[0] ? &pair : NULL, NULL, NULL);
        gw_buf_free(&cert);
        gw_buf_free(&key);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    channel = grpc_channel_create(g.server, creds, NULL);
    grpc_channel_credentials_release(creds);
    gw_buf_free(&ca);

    int rc;
    if (!strcmp(arg, "role"))
        rc = cmd_role(&a);
    else if (!strcmp(arg, "key"))
        rc = cmd_key(&a);
    else if (!strcmp(arg, "limits"))
        rc = cmd_limits(&a);
    else if (!strcmp(arg, "auth"))
        rc = cmd_auth(&a);
    else if (!strcmp(arg, "config")) {
        Wsgw__Control__V1__GetConfigRequest req = WSGW__CONTROL__V1__GET_CONFIG_REQUEST__INIT;
        rc = run("GetConfig", &req.base, &wsgw__control__v1__snapshot__descriptor, t_config);
    } else if (!strcmp(arg, "nodes")) {
        Wsgw__Control__V1__ListNodesRequest req = WSGW__CONTROL__V1__LIST_NODES_REQUEST__INIT;
        rc = run("ListNodes", &req.base, &wsgw__control__v1__list_nodes_reply__descriptor, t_nodes);
    } else if (!strcmp(arg, "stats")) {
        Wsgw__Control__V1__GetClusterStatsRequest req =
            WSGW__CONTROL__V1__GET_CLUSTER_STATS_REQUEST__INIT;
        rc = run("GetClusterStats", &req.base,
                 &wsgw__control__v1__get_cluster_stats_reply__descriptor, t_stats);
    } else {
        fprintf(stderr, "wsgwctl: unknown command '%s' (see --help)\n", arg);
        rc = 2;
    }
    grpc_channel_destroy(channel);
    grpc_shutdown();
    return rc;
}

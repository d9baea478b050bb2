#include "state.h"

#include "snapshot.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "auth.h"
#include "buf.h"
#include "proto.h"

/* The state is a Snapshot message owned through protobuf-c's default (malloc) allocator:
 * every string, array and sub-message is its own allocation, so protobuf-c's
 * free_unpacked releases exactly what mutations add. */
struct cp_state {
    cp_snapshot_msg_t *snap;
    bool digested; /* digest is of snap as it is: a state is never changed once shared */
    unsigned char digest[32];
};

#define PB_FREE(m) protobuf_c_message_free_unpacked((ProtobufCMessage *)(m), NULL)

static void *pb_copy(const ProtobufCMessageDescriptor *d, const void *m)
{
    size_t n = protobuf_c_message_get_packed_size((const ProtobufCMessage *)m);
    uint8_t *buf = gw_xmalloc(n ? n : 1);
    protobuf_c_message_pack((const ProtobufCMessage *)m, buf);
    void *copy = protobuf_c_message_unpack(d, NULL, n, buf);
    free(buf);
    if (!copy) abort(); /* a message we just packed always unpacks */
    return copy;
}

static char *str_or_empty(const char *s)
{
    return s && s[0] ? gw_xstrdup(s) : (char *)protobuf_c_empty_string;
}

static void new_epoch(char out[33])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) abort();
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static cp_role_msg_t *make_role(const char *name, const char *const *allow, size_t n)
{
    cp_role_msg_t *r = gw_xmalloc(sizeof *r);
    wsgw__control__v1__role__init(r);
    r->name = gw_xstrdup(name);
    r->n_allow = n;
    r->allow = gw_xcalloc(n ? n : 1, sizeof *r->allow);
    for (size_t i = 0; i < n; i++) r->allow[i] = gw_xstrdup(allow[i]);
    return r;
}

cp_state_t *cp_state_new(void)
{
    static const char *const user[] = {"market:tick", "market:tick:*", "engine:signal",
                                       "engine:signal:*", "indicators:*"};
    static const char *const all[] = {"*"};
    cp_state_t *s = gw_xcalloc(1, sizeof *s);
    cp_snapshot_msg_t *m = gw_xmalloc(sizeof *m);
    wsgw__control__v1__snapshot__init(m);
    m->version = 1;
    char epoch[33];
    new_epoch(epoch);
    m->epoch = gw_xstrdup(epoch);
    m->n_roles = 3;
    m->roles = gw_xcalloc(3, sizeof *m->roles);
    m->roles[0] = make_role("user", user, 5);
    m->roles[1] = make_role("admin", all, 1);
    m->roles[2] = make_role("internal", all, 1);
    m->auth = gw_xmalloc(sizeof *m->auth);
    wsgw__control__v1__auth_config__init(m->auth);
    m->auth->default_role = gw_xstrdup("user");
    m->auth->jwt_role_claim = gw_xstrdup("role");
    m->auth->jwt_leeway_s = 30;
    m->auth->jwt_require_exp = true;
    m->limits = gw_xmalloc(sizeof *m->limits);
    wsgw__control__v1__limits__init(m->limits);
    s->snap = m;
    return s;
}

cp_state_t *cp_state_load(const char *path, char *err, size_t errlen)
{
    if (access(path, F_OK) != 0) {
        /* Never a fresh state by accident (a file deleted, a volume not mounted): every
         * node would drop its roles and keys for the defaults of a new epoch. */
        snprintf(err, errlen,
                 "'%s' does not exist: create it once with --init (CONTROL_INIT=true), "
                 "or point CONTROL_STATE_PATH at the existing one",
                 path);
        return NULL;
    }
    gw_buf_t b = GW_BUF_INIT;
    if (gw_buf_read_file(&b, path, 64u << 20) < 0) {
        snprintf(err, errlen, "cannot read state file '%s'", path);
        gw_buf_free(&b);
        return NULL;
    }
    cp_snapshot_msg_t *m = wsgw__control__v1__snapshot__unpack(NULL, b.len, (uint8_t *)b.data);
    gw_buf_free(&b);
    if (!m || !m->epoch[0] || !m->auth || !m->limits) {
        snprintf(err, errlen, "state file '%s' is not a valid snapshot", path);
        if (m) PB_FREE(m);
        return NULL;
    }
    cp_state_t *s = gw_xcalloc(1, sizeof *s);
    s->snap = m;
    /* What the nodes would refuse is refused here, before anything is pushed. */
    if (cp_state_validate(s, err, errlen) < 0) {
        char why[400];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "state file '%s' does not validate: %s", path, why);
        cp_state_free(s);
        return NULL;
    }
    return s;
}

void cp_state_digest(cp_state_t *s, unsigned char out[32])
{
    if (!s->digested) {
        size_t n = wsgw__control__v1__snapshot__get_packed_size(s->snap);
        uint8_t *buf = gw_xmalloc(n ? n : 1);
        wsgw__control__v1__snapshot__pack(s->snap, buf);
        gw_sha256(buf, n, s->digest);
        free(buf);
        s->digested = true;
    }
    memcpy(out, s->digest, sizeof s->digest);
}

int cp_state_validate(const cp_state_t *s, char *err, size_t errlen)
{
    size_t n = wsgw__control__v1__snapshot__get_packed_size(s->snap);
    uint8_t *buf = gw_xmalloc(n ? n : 1);
    wsgw__control__v1__snapshot__pack(s->snap, buf);
    gw_snapshot_t decoded;
    int rc = gw_snapshot_decode(buf, n, &decoded, err, errlen);
    if (rc == 0) gw_snapshot_free(&decoded);
    free(buf);
    return rc;
}

int cp_state_save(const cp_state_t *s, const char *path, char *err, size_t errlen)
{
    size_t n;
    uint8_t *data = cp_state_pack(s, true, &n);
    int rc = gw_write_file_atomic(path, data, n, err, errlen);
    free(data);
    return rc;
}

void cp_state_free(cp_state_t *s)
{
    if (!s) return;
    PB_FREE(s->snap);
    free(s);
}

cp_state_t *cp_state_clone(const cp_state_t *s)
{
    cp_state_t *c = gw_xcalloc(1, sizeof *c);
    c->snap = pb_copy(&wsgw__control__v1__snapshot__descriptor, s->snap);
    return c;
}

const cp_snapshot_msg_t *cp_state_snapshot(const cp_state_t *s)
{
    return s->snap;
}

uint64_t cp_state_version(const cp_state_t *s)
{
    return s->snap->version;
}

const char *cp_state_epoch(const cp_state_t *s)
{
    return s->snap->epoch;
}

uint8_t *cp_state_pack(const cp_state_t *s, bool with_hashes, size_t *len)
{
    cp_snapshot_msg_t *m = s->snap;
    ProtobufCBinaryData *saved = NULL;
    if (!with_hashes) { /* blank the hashes for the duration of the pack */
        saved = gw_xcalloc(m->n_api_keys + 1, sizeof *saved);
        for (size_t i = 0; i < m->n_api_keys; i++) {
            saved[i] = m->api_keys[i]->sha256;
            m->api_keys[i]->sha256.len = 0;
            m->api_keys[i]->sha256.data = NULL;
        }
    }
    *len = wsgw__control__v1__snapshot__get_packed_size(m);
    uint8_t *out = gw_xmalloc(*len ? *len : 1);
    wsgw__control__v1__snapshot__pack(m, out);
    for (size_t i = 0; saved && i < m->n_api_keys; i++) m->api_keys[i]->sha256 = saved[i];
    free(saved);
    return out;
}

/*------------------------------------------------------------------------------
 * Validation: the data plane's rules, with the field named */

static int fail(char *err, size_t errlen, const char *fmt, const char *a, size_t i, const char *why)
{
    snprintf(err, errlen, fmt, a, i, why);
    return -1;
}

static int check_patterns(char **p, size_t n, const char *field, char *err, size_t errlen)
{
    if (n > 1000) {
        snprintf(err, errlen, "role.%s: more than 1000 patterns", field);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why;
        if (!gw_channel_valid(p[i], strlen(p[i]), &why))
            return fail(err, errlen, "role.%s[%zu]: %s", field, i, why);
    }
    return 0;
}

static int check_limits(const cp_limits_msg_t *l, const char *where, char *err, size_t errlen)
{
    if (!l) return 0;
    struct {
        const char *name;
        uint32_t v, max;
    } f[] = {{"max_channels", l->max_channels, 100000},
             {"max_wildcards", l->max_wildcards, 100000},
             {"rate_limit", l->rate_limit, 1000000},
             {"rate_burst", l->rate_burst, 1000000}};
    for (size_t i = 0; i < 4; i++)
        if (f[i].v > f[i].max) {
            snprintf(err, errlen, "%s.%s: at most %u", where, f[i].name, f[i].max);
            return -1;
        }
    return 0;
}

static size_t find_role(const cp_snapshot_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_roles; i++)
        if (!strcmp(m->roles[i]->name, name)) return i;
    return (size_t)-1;
}

bool cp_state_has_role(const cp_state_t *s, const char *name)
{
    return find_role(s->snap, name) != (size_t)-1;
}

int cp_state_put_role(cp_state_t *s, const cp_role_msg_t *r, char *err, size_t errlen)
{
    if (!r) {
        snprintf(err, errlen, "role: required");
        return -1;
    }
    if (!gw_role_name_valid(r->name)) {
        snprintf(err, errlen, "role.name: 1-64 characters of [A-Za-z0-9_.-]");
        return -1;
    }
    if (check_patterns(r->allow, r->n_allow, "allow", err, errlen) < 0 ||
        check_patterns(r->deny, r->n_deny, "deny", err, errlen) < 0 ||
        check_limits(r->limits, "role.limits", err, errlen) < 0)
        return -1;
    cp_snapshot_msg_t *m = s->snap;
    cp_role_msg_t *copy = pb_copy(&wsgw__control__v1__role__descriptor, r);
    size_t i = find_role(m, r->name);
    if (i != (size_t)-1) {
        PB_FREE(m->roles[i]);
        m->roles[i] = copy;
    } else {
        if (m->n_roles >= 1000) {
            PB_FREE(copy);
            snprintf(err, errlen, "role: at most 1000 roles");
            return -1;
        }
        m->roles = gw_xrealloc(m->roles, (m->n_roles + 1) * sizeof *m->roles);
        m->roles[m->n_roles++] = copy;
    }
    m->version++;
    return 0;
}

int cp_state_delete_role(cp_state_t *s, const char *name, char *err, size_t errlen)
{
    cp_snapshot_msg_t *m = s->snap;
    size_t i = find_role(m, name);
    if (i == (size_t)-1) {
        snprintf(err, errlen, "name: no role named '%.64s'", name);
        return -2; /* not found */
    }
    if (!strcmp(m->auth->default_role, name)) {
        snprintf(err, errlen, "name: '%.64s' is the default role; change auth.default_role first",
                 name);
        return -1;
    }
    PB_FREE(m->roles[i]);
    memmove(&m->roles[i], &m->roles[i + 1], (m->n_roles - i - 1) * sizeof *m->roles);
    m->n_roles--;
    m->version++;
    return 0;
}

int cp_state_create_key(cp_state_t *s, const char *role, int64_t expires_at, const char *desc,
                        const char *id, int64_t now, char *secret_out, char *id_out, char *err,
                        size_t errlen)
{
    cp_snapshot_msg_t *m = s->snap;
    if (!role || find_role(m, role) == (size_t)-1) {
        snprintf(err, errlen, "role: no role named '%.64s'", role ? role : "");
        return -1;
    }
    if (expires_at < 0 || (expires_at && expires_at <= now)) {
        snprintf(err, errlen, "expires_at: must be 0 (never) or in the future");
        return -1;
    }
    if (desc && strlen(desc) > 256) {
        snprintf(err, errlen, "description: at most 256 bytes");
        return -1;
    }
    char gen[64];
    unsigned char r[24];
    if (id && id[0]) {
        if (strlen(id) > 63 || !gw_role_name_valid(id)) {
            snprintf(err, errlen, "id: 1-63 characters of [A-Za-z0-9_.-]");
            return -1;
        }
        if (!strcmp(id, "env")) { /* every node's own GATEWAY_API_KEY entry */
            snprintf(err, errlen, "id: \"env\" is reserved for each node's own key");
            return -1;
        }
        for (size_t i = 0; i < m->n_api_keys; i++)
            if (!strcmp(m->api_keys[i]->id, id)) {
                snprintf(err, errlen, "id: '%s' exists already", id);
                return -3; /* already exists */
            }
        snprintf(gen, sizeof gen, "%s", id);
    } else {
        if (RAND_bytes(r, 6) != 1) abort();
        snprintf(gen, sizeof gen, "k_%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
    }
    /* The secret: 32 random bytes, hex, with a prefix that says what it is. */
    if (RAND_bytes(r, sizeof r) != 1) abort();
    int o = snprintf(secret_out, 8, "wsgw_");
    for (size_t i = 0; i < 16; i++) o += snprintf(secret_out + o, 3, "%02x", r[i]);

    cp_key_msg_t *k = gw_xmalloc(sizeof *k);
    wsgw__control__v1__api_key__init(k);
    k->id = gw_xstrdup(gen);
    k->role = gw_xstrdup(role);
    k->expires_at = expires_at;
    k->created_at = now;
    k->description = str_or_empty(desc);
    k->sha256.len = 32;
    k->sha256.data = gw_xmalloc(32);
    gw_sha256(secret_out, strlen(secret_out), k->sha256.data);
    m->api_keys = gw_xrealloc(m->api_keys, (m->n_api_keys + 1) * sizeof *m->api_keys);
    m->api_keys[m->n_api_keys++] = k;
    snprintf(id_out, 64, "%s", gen);
    m->version++;
    return 0;
}

int cp_state_revoke_key(cp_state_t *s, const char *id, char *err, size_t errlen)
{
    cp_snapshot_msg_t *m = s->snap;
    for (size_t i = 0; i < m->n_api_keys; i++) {
        if (strcmp(m->api_keys[i]->id, id)) continue;
        if (m->api_keys[i]->revoked) return 0; /* idempotent: no new version */
        m->api_keys[i]->revoked = true;
        m->version++;
        return 0;
    }
    snprintf(err, errlen, "id: no key '%.64s'", id);
    return -2;
}

int cp_state_set_limits(cp_state_t *s, const cp_limits_msg_t *l, char *err, size_t errlen)
{
    if (!l) {
        snprintf(err, errlen, "limits: required");
        return -1;
    }
    if (check_limits(l, "limits", err, errlen) < 0) return -1;
    if (l->max_wildcards && l->max_channels && l->max_wildcards > l->max_channels) {
        snprintf(err, errlen, "limits.max_wildcards: larger than max_channels");
        return -1;
    }
    PB_FREE(s->snap->limits);
    s->snap->limits = pb_copy(&wsgw__control__v1__limits__descriptor, l);
    s->snap->version++;
    return 0;
}

int cp_state_set_auth(cp_state_t *s, const cp_auth_msg_t *a, char *err, size_t errlen)
{
    if (!a) {
        snprintf(err, errlen, "auth: required");
        return -1;
    }
    if (!a->default_role[0] || find_role(s->snap, a->default_role) == (size_t)-1) {
        snprintf(err, errlen, "auth.default_role: no role named '%.64s'", a->default_role);
        return -1;
    }
    if (!a->jwt_role_claim[0] || strlen(a->jwt_role_claim) > 64) {
        snprintf(err, errlen, "auth.jwt_role_claim: 1 to 64 bytes");
        return -1;
    }
    if (a->jwt_leeway_s > 3600) {
        snprintf(err, errlen, "auth.jwt_leeway_s: at most 3600");
        return -1;
    }
    if (strlen(a->jwt_issuer) > 4096 || strlen(a->jwt_audience) > 4096 ||
        strlen(a->jwt_public_key_pem) > 65536) {
        snprintf(err, errlen, "auth: a field is too long");
        return -1;
    }
    if (a->jwt_public_key_pem[0] && !strstr(a->jwt_public_key_pem, "-----BEGIN PUBLIC KEY-----")) {
        snprintf(err, errlen, "auth.jwt_public_key_pem: not a PEM public key");
        return -1;
    }
    PB_FREE(s->snap->auth);
    s->snap->auth = pb_copy(&wsgw__control__v1__auth_config__descriptor, a);
    s->snap->version++;
    return 0;
}

#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "legacy.h"
#include "log.h"
#include "proto.h"
#include "stats.h"

#define SUBSYS "session"

struct gw_ack {
    struct gw_ack *next;
    gw_msg_t *frame; /* the "subscribed" frame, built when the request came in */
    uint32_t remaining;
};

gw_session_t *gw_session_new(const gw_session_env_t *env, void *conn, uint64_t serial)
{
    gw_session_t *s = gw_xcalloc(1, sizeof *s);
    s->env = env;
    s->conn = conn;
    snprintf(s->id, sizeof s->id, "%llx", (unsigned long long)serial);
    return s;
}

/*------------------------------------------------------------------------------
 * Outbound queue */

static gw_shed_t shed_policy(int policy)
{
    return policy == GW_POLICY_CLOSE      ? GW_SHED_NONE
           : policy == GW_POLICY_CONFLATE ? GW_SHED_CONFLATE
                                          : GW_SHED_DROP;
}

static void session_close(gw_session_t *s, int code);

void gw_session_send(gw_session_t *s, gw_msg_t *m)
{
    uint64_t seq = ++s->seq;
    if (s->closing) return; /* its number is spent; the client is going away */

    const gw_config_t *cfg = s->env->cfg;
    size_t limit = (size_t)cfg->slow_queue_bytes;
    gw_shed_count_t shed = {0, 0};
    bool was_empty = gw_outq_frames(&s->q) == 0;
    gw_outq_push(&s->q, m, seq, shed_policy(cfg->slow_policy), limit, &shed);
    gw_stats.dropped_drop += shed.dropped;
    gw_stats.dropped_conflate += shed.conflated;
    if (gw_outq_bytes(&s->q) > limit) {
        /* Dropping could not bring it back under: the close policy, or frames that are
         * never dropped (replies) piling up for a client that does not read. */
        GW_LOG(GW_LOG_INFO, SUBSYS, "slow_consumer_close", "session=%s queued_bytes=%zu", s->id,
               gw_outq_bytes(&s->q));
        gw_stats.slow_closes++;
        gw_outq_clear(&s->q);
        session_close(s, 1013);
        return;
    }
    if (was_empty) s->env->want_write(s);
    if (gw_outq_retained() > (size_t)cfg->node_queue_bytes && s->env->over_budget)
        s->env->over_budget(s);
}

void gw_session_close_overloaded(gw_session_t *s)
{
    if (s->closing) return;
    GW_LOG(GW_LOG_WARN, SUBSYS, "queue_budget_close",
           "session=%s queued_bytes=%zu node_retained=%zu limit=%ld", s->id, gw_outq_bytes(&s->q),
           gw_outq_retained(), s->env->cfg->node_queue_bytes);
    gw_stats.budget_closes++;
    gw_outq_clear(&s->q);
    session_close(s, 1013);
}

size_t gw_session_queued(const gw_session_t *s)
{
    return gw_outq_frames(&s->q);
}

size_t gw_session_queued_bytes(const gw_session_t *s)
{
    return gw_outq_bytes(&s->q);
}

size_t gw_session_peek(gw_session_t *s, unsigned char *out, size_t cap, size_t *ends, size_t maxf,
                       size_t *need)
{
    return gw_outq_peek(&s->q, out, cap, ends, maxf, need);
}

static void record_lag(const gw_msg_t *m, void *ud)
{
    uint64_t now = *(const uint64_t *)ud;
    if (m->rx_us && now >= m->rx_us) gw_stats_lag(now - m->rx_us);
}

void gw_session_consume(gw_session_t *s, size_t n)
{
    uint64_t now = s->env->now_us ? s->env->now_us() : 0; /* one clock read per write */
    gw_stats.frames_sent += n;
    gw_outq_consume(&s->q, n, record_lag, &now);
}

size_t gw_session_fill(gw_session_t *s, unsigned char *out, size_t cap, size_t *need)
{
    size_t ends[256], total = 0, n;
    while ((n = gw_session_peek(s, out + total, cap - total, ends, 256, need)) > 0) {
        total += ends[n - 1];
        gw_session_consume(s, n);
    }
    if (total) *need = 0;
    gw_stats.bytes_sent += total;
    return total;
}

/*------------------------------------------------------------------------------
 * Requests */

static bool is_legacy(const gw_session_t *s)
{
    return s->dialect == GW_DIALECT_LEGACY;
}

static void send_frame(gw_session_t *s, gw_msg_t *m)
{
    gw_session_send(s, m);
    gw_msg_unref(m);
}

static void send_error(gw_session_t *s, gw_errcode_t code, const char *msg, const char *id,
                       const char *channel)
{
    gw_stats.errors[code]++;
    if (is_legacy(s)) {
        const char *text = gw_legacy_error_text(code);
        send_frame(s, gw_legacy_error(code, text ? text : msg, id));
    } else {
        send_frame(s, gw_frame_error(code, msg, id, channel));
    }
}

void gw_session_reject_too_large(gw_session_t *s)
{
    char msg[96];
    snprintf(msg, sizeof msg, "message larger than %ld bytes; closing with 1009",
             s->env->cfg->max_frame_bytes);
    send_error(s, GW_E_TOO_LARGE, msg, NULL, NULL);
}

static gw_sub_t *find_sub(gw_session_t *s, const char *name, size_t len, uint32_t *pos)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        size_t l;
        const char *n = gw_sub_name(s->subs[i], &l);
        if (l == len && memcmp(n, name, len) == 0) {
            if (pos) *pos = i;
            return s->subs[i];
        }
    }
    return NULL;
}

static void ack_done(gw_session_t *s, struct gw_ack *a)
{
    struct gw_ack **pp = &s->acks;
    while (*pp != a) pp = &(*pp)->next;
    *pp = a->next;
    gw_session_send(s, a->frame);
    gw_msg_unref(a->frame);
    free(a);
}

static void ack_dec(gw_session_t *s, struct gw_ack *a)
{
    if (--a->remaining == 0) ack_done(s, a);
}

void gw_session_sub_active(void *ud, gw_sub_t *sub)
{
    (void)ud;
    struct gw_ack *a = sub->pending;
    sub->pending = NULL;
    ack_dec(sub->session, a);
}

/* Defence in depth: the concrete channel of every delivery is checked against the
 * connection's ACL. The verdict is cached in the shared message per ACL, so the thousand
 * clients of one role cost one check. */
static bool delivery_allowed(const gw_acl_t *acl, gw_msg_t *m)
{
    for (int i = 0; i < 2; i++)
        if (m->acl_key[i] == acl) return m->acl_ok[i];
    bool ok = gw_acl_allows_channel(acl, m->chan, m->chan_len);
    m->acl_key[1] = m->acl_key[0];
    m->acl_ok[1] = m->acl_ok[0];
    m->acl_key[0] = acl;
    m->acl_ok[0] = ok;
    return ok;
}

void gw_session_deliver(void *ud, gw_sub_t *sub, gw_msg_t *m)
{
    (void)ud;
    gw_session_t *s = sub->session;
    if (!s->acl || !delivery_allowed(s->acl, m)) {
        gw_stats.acl_blocked_deliveries++;
        return;
    }
    gw_session_send(s, is_legacy(s) ? gw_msg_legacy(m) : m);
}

static long role_limit(long role_value, long node_value)
{
    return role_value != GW_LIMIT_UNSET ? role_value : node_value;
}

/* A refused subscription weighs REFUSAL_COST frames in the rate limit: repeating it
 * changes nothing, and it is the request that makes the node check patterns hardest. */
#define REFUSAL_COST 10

static void charge_refusal(gw_session_t *s)
{
    const gw_config_t *cfg = s->env->cfg;
    double burst =
        (double)role_limit(s->role ? s->role->rate_burst : GW_LIMIT_UNSET, cfg->client_rate_burst);
    gw_bucket_charge(&s->bucket, REFUSAL_COST - 1, burst);
}

/* Links s to every name it does not hold yet (all checked by the caller) and queues
 * frame, the reply, once Redis has confirmed each of them. Takes frame's reference. */
static void subscribe_and_ack(gw_session_t *s, char *const *names, const size_t *lens, size_t n,
                              gw_msg_t *frame)
{
    struct gw_ack *a = gw_xcalloc(1, sizeof *a);
    a->frame = frame;
    a->remaining = 1; /* held by this function until every channel is linked */
    a->next = s->acks;
    s->acks = a;
    for (size_t i = 0; i < n; i++) {
        if (find_sub(s, names[i], lens[i], NULL)) continue;
        bool active;
        gw_sub_t *sub = gw_hub_subscribe(s->env->hub, s, names[i], lens[i], &active);
        if (s->nsubs == s->subscap) {
            s->subscap = s->subscap ? s->subscap * 2 : 4;
            s->subs = gw_xrealloc(s->subs, s->subscap * sizeof *s->subs);
        }
        s->subs[s->nsubs++] = sub;
        if (gw_sub_is_pattern(sub)) s->nwild++;
        if (!active) {
            sub->pending = a;
            a->remaining++;
        }
    }
    ack_dec(s, a);
}

/* v1: a request is atomic; any refusal refuses all of it. */
static void do_subscribe(gw_session_t *s, gw_req_t *r)
{
    const gw_config_t *cfg = s->env->cfg;
    long max_channels = role_limit(s->role->max_channels, cfg->max_channels);
    long max_wild = role_limit(s->role->max_wildcards, cfg->max_wildcards);
    uint32_t add = 0, addwild = 0;
    for (size_t i = 0; i < r->nchannels; i++) {
        if (find_sub(s, r->channels[i], r->lens[i], NULL)) continue;
        add++;
        if (gw_glob_is_pattern(r->channels[i], r->lens[i])) addwild++;
    }
    /* Limits first: they are cheap, and they bound how many patterns reach the ACL's
     * glob algebra in one request. */
    if (s->nsubs + add > (uint64_t)max_channels) {
        char msg[128];
        snprintf(msg, sizeof msg, "at most %ld subscriptions per connection", max_channels);
        charge_refusal(s);
        send_error(s, GW_E_LIMIT_CHANNELS, msg, r->id, NULL);
        return;
    }
    if (s->nwild + addwild > (uint64_t)max_wild) {
        char msg[128];
        snprintf(msg, sizeof msg, "at most %ld pattern subscriptions per connection", max_wild);
        charge_refusal(s);
        send_error(s, GW_E_LIMIT_WILDCARDS, msg, r->id, NULL);
        return;
    }
    size_t newpat = 0;
    for (size_t i = 0; i < r->nchannels; i++)
        newpat += gw_glob_is_pattern(r->channels[i], r->lens[i]) &&
                  !gw_hub_has_topic(s->env->hub, r->channels[i], r->lens[i]);
    if (newpat && gw_hub_pattern_count(s->env->hub) + newpat > (size_t)cfg->max_redis_patterns) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "this node holds its maximum of %ld distinct patterns: use a pattern already "
                 "in use, exact channels, or another node",
                 cfg->max_redis_patterns);
        charge_refusal(s);
        send_error(s, GW_E_LIMIT_PATTERNS, msg, r->id, NULL);
        return;
    }
    for (size_t i = 0; i < r->nchannels; i++) {
        if (find_sub(s, r->channels[i], r->lens[i], NULL)) continue;
        if (!gw_acl_allows(s->acl, r->channels[i], r->lens[i])) {
            gw_stats.acl_denied++;
            charge_refusal(s);
            send_error(s, GW_E_ACL_DENIED, "your role may not subscribe to this channel", r->id,
                       r->channels[i]);
            return;
        }
    }
    gw_msg_t *frame = gw_frame_ack("subscribed", r->id, r->channels, r->lens, r->nchannels, NULL);
    subscribe_and_ack(s, r->channels, r->lens, r->nchannels, frame);
}

/* One line of a legacy reply's "errors"; counted like the v1 error frame it replaces. */
static char *refusal(gw_errcode_t code, const char *what, long limit, const char *name, size_t len)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_stats.errors[code]++;
    if (name) /* at most GW_CHANNEL_MAX bytes of it; the encoder escapes them */
        gw_buf_printf(&b, "%s: %.*s", what, (int)(len > GW_CHANNEL_MAX ? GW_CHANNEL_MAX : len),
                      name);
    else
        gw_buf_printf(&b, "%s (%ld)", what, limit);
    gw_buf_putc(&b, '\0');
    return b.data;
}

/* Legacy: each channel is accepted or refused on its own, in request order, with the
 * same checks as v1 (validity, limits, ACL). A pattern that reaches the ACL takes a
 * wildcard slot whether it is accepted or not: as v1's limits do, that bounds the glob
 * algebra one request can cost by MAX_WILDCARD_SUBSCRIPTIONS. The reply lists the
 * accepted channels (held ones included) and one line per refused one. */
static void do_subscribe_partial(gw_session_t *s, gw_req_t *r)
{
    const gw_config_t *cfg = s->env->cfg;
    long max_channels = role_limit(s->role->max_channels, cfg->max_channels);
    long max_wild = role_limit(s->role->max_wildcards, cfg->max_wildcards);
    size_t n = r->nchannels, nok = 0, nadd = 0, nerr = 0;
    char **ok = gw_xcalloc(n + 1, sizeof *ok), **add = gw_xcalloc(n + 1, sizeof *add);
    char **errs = gw_xcalloc(n + 1, sizeof *errs);
    size_t *oklens = gw_xcalloc(n + 1, sizeof *oklens),
           *addlens = gw_xcalloc(n + 1, sizeof *addlens);
    uint64_t held = s->nsubs, wild = s->nwild;
    size_t patterns = gw_hub_pattern_count(s->env->hub);

    for (size_t i = 0; i < n; i++) {
        const char *name = r->channels[i], *why;
        size_t len = r->lens[i];
        bool pattern = gw_glob_is_pattern(name, len);
        if (find_sub(s, name, len, NULL)) {
            /* already held: accepted, nothing to add */
        } else if (!gw_channel_valid(name, len, &why)) {
            errs[nerr++] = refusal(GW_E_INVALID_CHANNEL, "Invalid channel", 0, name, len);
            continue;
        } else if (held + 1 > (uint64_t)max_channels) {
            errs[nerr++] =
                refusal(GW_E_LIMIT_CHANNELS, "Max channels exceeded", max_channels, NULL, 0);
            continue;
        } else if (pattern && wild + 1 > (uint64_t)max_wild) {
            errs[nerr++] = refusal(GW_E_LIMIT_WILDCARDS, "Max wildcard subscriptions exceeded",
                                   max_wild, NULL, 0);
            continue;
        } else if (pattern && !gw_hub_has_topic(s->env->hub, name, len) &&
                   patterns + 1 > (size_t)cfg->max_redis_patterns) {
            errs[nerr++] = refusal(GW_E_LIMIT_PATTERNS, "Max patterns on this node exceeded",
                                   cfg->max_redis_patterns, NULL, 0);
            continue;
        } else {
            wild += pattern; /* its slot is taken by the check, whatever the verdict */
            if (!gw_acl_allows(s->acl, name, len)) {
                gw_stats.acl_denied++;
                errs[nerr++] = refusal(GW_E_ACL_DENIED, "Access denied to channel", 0, name, len);
                continue;
            }
            held++;
            patterns += pattern && !gw_hub_has_topic(s->env->hub, name, len);
            add[nadd] = r->channels[i];
            addlens[nadd++] = len;
        }
        ok[nok] = r->channels[i];
        oklens[nok++] = len;
    }
    if (nerr) charge_refusal(s);
    gw_msg_t *frame = gw_legacy_subscribed(r->id, ok, oklens, nok, errs, nerr);
    subscribe_and_ack(s, add, addlens, nadd, frame);
    for (size_t i = 0; i < nerr; i++) free(errs[i]);
    free(errs);
    free(ok);
    free(oklens);
    free(add);
    free(addlens);
}

static void drop_sub(gw_session_t *s, uint32_t pos)
{
    gw_sub_t *sub = s->subs[pos];
    if (gw_sub_is_pattern(sub)) s->nwild--;
    s->subs[pos] = s->subs[--s->nsubs];
    struct gw_ack *a = sub->pending;
    gw_hub_unsubscribe(s->env->hub, sub);
    if (a) ack_dec(s, a);
}

/* reason: NULL for a client's request, or why the server removed them. */
static gw_msg_t *unsubscribed_frame(gw_session_t *s, const char *id, char *const *names,
                                    const size_t *lens, size_t n, const char *reason)
{
    return is_legacy(s) ? gw_legacy_unsubscribed(id, names, lens, n, reason)
                        : gw_frame_ack("unsubscribed", id, names, lens, n, reason);
}

static void do_unsubscribe(gw_session_t *s, gw_req_t *r)
{
    /* The reply names only what was held: its size is bounded by the subscriptions,
     * not chosen by the request. */
    char **gone = gw_xcalloc(r->nchannels + 1, sizeof *gone);
    size_t *lens = gw_xcalloc(r->nchannels + 1, sizeof *lens), n = 0;
    for (size_t i = 0; i < r->nchannels; i++) {
        uint32_t pos;
        if (!find_sub(s, r->channels[i], r->lens[i], &pos)) continue;
        drop_sub(s, pos);
        gone[n] = r->channels[i];
        lens[n++] = r->lens[i];
    }
    send_frame(s, unsubscribed_frame(s, r->id, gone, lens, n, NULL));
    free(gone);
    free(lens);
}

/*------------------------------------------------------------------------------
 * Access: authentication, roles, expiry */

static const char *close_reason(int code)
{
    switch (code) {
    case 4401: return "unauthenticated";
    case 1008: return "Authentication failed";
    case 4403: return "forbidden";
    case 4429: return "rate limited";
    default: return "";
    }
}

static void session_close(gw_session_t *s, int code)
{
    if (s->closing) return; /* the first reason stands: a drain never hides a 4401 or 1013 */
    /* The legacy gateway closed unauthenticated clients with 1008 (policy violation). */
    if (code == 4401 && is_legacy(s)) code = 1008;
    s->closing = true;
    s->env->close(s, code, close_reason(code));
}

/* Unsubscribes what acl no longer allows, telling the client (reason acl_changed). */
static void enforce_acl(gw_session_t *s)
{
    char **names = gw_xcalloc(s->nsubs + 1, sizeof *names);
    size_t *lens = gw_xcalloc(s->nsubs + 1, sizeof *lens), n = 0;
    for (uint32_t i = s->nsubs; i-- > 0;) {
        size_t len;
        const char *name = gw_sub_name(s->subs[i], &len);
        if (gw_acl_allows(s->acl, name, len)) continue;
        names[n] = gw_xstrndup(name, len);
        lens[n++] = len;
        drop_sub(s, i);
    }
    if (n) send_frame(s, unsubscribed_frame(s, NULL, names, lens, n, "acl_changed"));
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(lens);
}

/* Every refused credential: counted, and reported to the transport (per-address
 * throttling, one summary log line per interval: no line per failure at info). */
static void note_failure(gw_session_t *s, gw_auth_result_t r)
{
    gw_stats.auth_failures[r]++;
    GW_LOG(GW_LOG_DEBUG, SUBSYS, "auth_failed", "session=%s reason=%s", s->id,
           gw_auth_result_name(r));
    if (s->env->auth_failed && r != GW_AUTH_THROTTLED) s->env->auth_failed(s, r);
}

/* Checks a credential and, on success, fills the identity with a known role. */
static gw_auth_result_t authenticate(gw_session_t *s, const char *token, const char *api_key,
                                     gw_identity_t *id, const gw_role_t **role)
{
    const gw_session_env_t *env = s->env;
    memset(id, 0, sizeof *id);
    if (env->auth_allowed && !env->auth_allowed(s)) return GW_AUTH_THROTTLED;
    gw_auth_result_t r =
        token ? gw_auth_token(env->auth, token, strlen(token), env->now_unix(), id)
              : gw_auth_api_key(env->auth, api_key, strlen(api_key), env->now_unix(), id);
    if (r != GW_AUTH_OK) return r;
    *role = gw_roles_find(env->roles, id->role ? id->role : env->cfg->default_role);
    return *role ? GW_AUTH_OK : GW_AUTH_UNKNOWN_ROLE;
}

static void auth_failed(gw_session_t *s, gw_auth_result_t r, const char *id)
{
    char msg[96];
    note_failure(s, r);
    /* The legacy gateway said nothing before its 1008 close, and its UI expects nothing. */
    if (!is_legacy(s)) {
        snprintf(msg, sizeof msg, "authentication failed: %s", gw_auth_result_name(r));
        send_error(s, GW_E_AUTH_FAILED, msg, id, NULL);
    }
    session_close(s, 4401);
}

static void set_access(gw_session_t *s, const gw_role_t *role, gw_identity_t *id)
{
    gw_acl_unref(s->acl);
    if (s->roles != s->env->roles) {
        gw_roles_unref(s->roles);
        s->roles = gw_roles_ref(s->env->roles);
    }
    s->role = role;
    s->acl =
        id && id->channels ? gw_acl_narrow(s->roles, role, id->channels, id->nchannels) : role->acl;
    s->expires = id ? id->expires : 0;
    s->jwt_gen = gw_auth_jwt_generation(s->env->auth);
    s->expiring_sent = false;
    snprintf(s->key_id, sizeof s->key_id, "%s", id ? id->key_id : "");
}

/* auth_error: see gw_frame_welcome (v1 only: the legacy greeting has no such field). */
static void send_welcome(gw_session_t *s, const char *auth_error)
{
    if (is_legacy(s))
        send_frame(s, gw_legacy_connected(s->role->name));
    else
        send_frame(s, gw_frame_welcome(s->env->cfg->node_id, s->id, s->role->name, auth_error));
}

static void set_dialect(gw_session_t *s, gw_dialect_t d)
{
    if (d == GW_DIALECT_LEGACY && s->dialect != GW_DIALECT_LEGACY) gw_stats.conn_legacy++;
    s->dialect = (uint8_t)d;
}

static void do_auth(gw_session_t *s, const char *token, const char *api_key, const char *reqid)
{
    gw_identity_t id;
    const gw_role_t *role = NULL;
    gw_auth_result_t r = authenticate(s, token, api_key, &id, &role);
    if (r == GW_AUTH_OK && s->auth == GW_SESS_AUTHED && strcmp(role->name, s->role->name))
        r = GW_AUTH_ROLE_CHANGED;
    if (r != GW_AUTH_OK) {
        gw_identity_free(&id);
        if (s->auth == GW_SESS_AUTHED) {
            /* a failed refresh: the current credential stays valid until it expires */
            note_failure(s, r);
            send_error(s, GW_E_AUTH_FAILED, "refresh refused", reqid, NULL);
            return;
        }
        auth_failed(s, r, reqid);
        return;
    }
    gw_stats.auth_ok++;
    bool was_pending = s->auth == GW_SESS_PENDING;
    s->auth = GW_SESS_AUTHED;
    set_access(s, role, &id);
    gw_identity_free(&id);
    if (was_pending) {
        send_welcome(s, NULL);
        return;
    }
    enforce_acl(s); /* a refreshed token may narrow the channels */
    send_frame(s, gw_frame_authenticated(s->role->name, s->expires, reqid));
}

static void start_anonymous(gw_session_t *s, const char *auth_error)
{
    s->auth = GW_SESS_ANON;
    set_access(s, s->role, NULL);
    send_welcome(s, auth_error);
}

void gw_session_start(gw_session_t *s, const char *token, const char *api_key)
{
    const gw_session_env_t *env = s->env;
    int proto = env->cfg->client_protocol;
    set_dialect(s, proto == GW_PROTO_LEGACY ? GW_DIALECT_LEGACY
                   : proto == GW_PROTO_V1   ? GW_DIALECT_V1
                                            : GW_DIALECT_UNKNOWN);
    s->roles = gw_roles_ref(env->roles);
    s->role = gw_roles_find(s->roles, env->cfg->default_role);
    if (token || api_key) {
        gw_identity_t id;
        const gw_role_t *role = NULL;
        gw_auth_result_t r = authenticate(s, token, api_key, &id, &role);
        if (r != GW_AUTH_OK) {
            gw_identity_free(&id);
            if (!env->cfg->require_auth) {
                /* Credentials are optional here, and clients of the legacy gateway send
                 * ?token= whether it is needed or not: serve them, and say why not as. */
                note_failure(s, r);
                start_anonymous(s, gw_auth_result_name(r));
                return;
            }
            auth_failed(s, r, NULL);
            return;
        }
        gw_stats.auth_ok++;
        s->auth = GW_SESS_AUTHED;
        set_access(s, role, &id);
        gw_identity_free(&id);
        send_welcome(s, NULL);
        return;
    }
    if (env->cfg->require_auth) {
        s->auth = GW_SESS_PENDING;
        /* The legacy dialect has no auth frame: no credential now means none ever. */
        if (is_legacy(s)) {
            auth_failed(s, GW_AUTH_MISSING, NULL);
            return;
        }
        s->auth_deadline_us = env->now_us() + (uint64_t)env->cfg->auth_timeout_ms * 1000;
        return;
    }
    start_anonymous(s, NULL);
}

void gw_session_reauthorize(gw_session_t *s)
{
    const gw_session_env_t *env = s->env;
    if (s->closing || !s->role) return;
    const gw_role_t *role = s->auth == GW_SESS_AUTHED
                                ? gw_roles_find(env->roles, s->role->name)
                                : gw_roles_find(env->roles, env->cfg->default_role);
    if ((s->auth == GW_SESS_ANON && env->cfg->require_auth) ||
        (s->auth == GW_SESS_AUTHED && !s->key_id[0] &&
         s->jwt_gen != gw_auth_jwt_generation(env->auth))) {
        GW_LOG(GW_LOG_INFO, SUBSYS, "access_revoked", "session=%s reason=%s", s->id,
               s->auth == GW_SESS_ANON ? "auth_required" : "jwt_settings_changed");
        gw_stats.revoked_closes++;
        session_close(s, 4401);
        return;
    }
    gw_auth_result_t key =
        s->key_id[0] ? gw_auth_key_status(env->auth, s->key_id, env->now_unix()) : GW_AUTH_OK;
    if (!role || key != GW_AUTH_OK) {
        GW_LOG(GW_LOG_INFO, SUBSYS, "access_revoked", "session=%s reason=%s", s->id,
               !role ? "role_deleted" : gw_auth_result_name(key));
        gw_stats.revoked_closes++;
        session_close(s, 4403);
        return;
    }
    if (s->auth == GW_SESS_PENDING) {
        /* not authenticated yet: the role only sets its rate limit */
        gw_roles_unref(s->roles);
        s->roles = gw_roles_ref(env->roles);
        s->role = role;
        return;
    }
    gw_acl_t *old = s->acl;
    gw_roles_t *old_roles = s->roles;
    s->roles = gw_roles_ref(env->roles);
    s->role = role;
    s->acl =
        old && old->narrow ? gw_acl_narrow(s->roles, role, old->narrow, old->nnarrow) : role->acl;
    gw_acl_unref(old);
    gw_roles_unref(old_roles);
    enforce_acl(s);
}

void gw_session_tick(gw_session_t *s)
{
    const gw_session_env_t *env = s->env;
    if (s->closing) return;
    if (s->auth == GW_SESS_PENDING) {
        if (env->now_us() >= s->auth_deadline_us) auth_failed(s, GW_AUTH_TIMEOUT, NULL);
        return;
    }
    if (!s->expires) return;
    /* The leeway is for clocks that disagree about a JWT; an API key's expiry is ours. */
    int64_t now = env->now_unix(), end = s->expires + (s->key_id[0] ? 0 : env->cfg->jwt_leeway_s);
    if (now >= end) {
        GW_LOG(GW_LOG_INFO, SUBSYS, "credential_expired", "session=%s", s->id);
        gw_stats.auth_expired_closes++;
        session_close(s, 4401);
    } else if (!s->expiring_sent && now >= end - env->cfg->auth_expiry_warning_s) {
        s->expiring_sent = true;
        /* A legacy client cannot refresh in band: it is closed at expiry and reconnects. */
        if (!is_legacy(s)) send_frame(s, gw_frame_auth_expiring(s->expires, end - now));
    }
}

/* Token bucket per connection: an excess frame is refused with rate_limited; a client
 * that keeps going after CLIENT_RATE_MAX_STRIKES refusals in a row is closed (4429). */
static bool rate_ok(gw_session_t *s)
{
    const gw_config_t *cfg = s->env->cfg;
    double rate =
        (double)role_limit(s->role ? s->role->rate_limit : GW_LIMIT_UNSET, cfg->client_rate_limit);
    double burst =
        (double)role_limit(s->role ? s->role->rate_burst : GW_LIMIT_UNSET, cfg->client_rate_burst);
    if (gw_bucket_take(&s->bucket, rate, burst, s->env->now_us())) {
        s->strikes = 0;
        return true;
    }
    gw_stats.rate_limited++;
    if (++s->strikes >= (uint32_t)cfg->client_rate_max_strikes) {
        GW_LOG(GW_LOG_INFO, SUBSYS, "rate_limit_close", "session=%s", s->id);
        gw_stats.rate_closes++;
        session_close(s, 4429);
        return false;
    }
    send_error(s, GW_E_RATE_LIMITED, "too many frames; slow down", NULL, NULL);
    return false;
}

/* CLIENT_PROTOCOL=auto: the first frame that tells decides the dialect for good. A
 * legacy client was greeted in v1 (the greeting goes out before it speaks), so it gets
 * its own greeting now, before the reply to its frame. Returns false when the session
 * is closed instead (a legacy client cannot authenticate in band). */
static bool adopt_dialect(gw_session_t *s, gw_dialect_t d)
{
    set_dialect(s, d);
    if (d != GW_DIALECT_LEGACY) return true;
    if (s->auth == GW_SESS_PENDING) {
        auth_failed(s, GW_AUTH_MISSING, NULL);
        return false;
    }
    send_welcome(s, NULL);
    return true;
}

void gw_session_on_message(gw_session_t *s, const char *buf, size_t len, bool binary)
{
    gw_req_t req;
    gw_perr_t err;

    gw_stats.frames_received++;
    if (s->closing || !rate_ok(s)) return;
    if (binary) {
        send_error(s, GW_E_BAD_REQUEST, "binary frames are not supported; send JSON text", NULL,
                   NULL);
        return;
    }
    gw_dialect_t d = (gw_dialect_t)s->dialect;
    int rc = gw_req_parse(buf, len, (size_t)s->env->cfg->max_channels_per_request, &d, &req, &err);
    if (d != s->dialect && !adopt_dialect(s, d)) {
        if (rc == 0)
            gw_req_free(&req);
        else
            gw_perr_free(&err);
        return;
    }
    if (rc < 0) {
        send_error(s, err.code, err.message, err.id, err.channel);
        gw_perr_free(&err);
        if (s->auth == GW_SESS_PENDING) session_close(s, 4401);
        return;
    }
    if (s->auth == GW_SESS_PENDING && req.type != GW_REQ_AUTH) {
        send_error(s, GW_E_AUTH_REQUIRED, "authenticate first: send an auth frame", req.id, NULL);
        session_close(s, 4401);
        gw_req_free(&req);
        return;
    }
    switch (req.type) {
    case GW_REQ_SUBSCRIBE:
        if (is_legacy(s))
            do_subscribe_partial(s, &req);
        else
            do_subscribe(s, &req);
        break;
    case GW_REQ_UNSUBSCRIBE: do_unsubscribe(s, &req); break;
    case GW_REQ_AUTH: do_auth(s, req.token, req.api_key, req.id); break;
    case GW_REQ_PING:
        send_frame(s, is_legacy(s) ? gw_legacy_pong(req.id) : gw_frame_pong(req.id));
        break;
    }
    gw_req_free(&req);
}

int gw_session_on_fragment(gw_session_t *s, const char *buf, size_t len, bool first, bool final,
                           bool binary)
{
    size_t limit = (size_t)s->env->cfg->max_frame_bytes;
    if (first) {
        s->rx.len = 0;
        s->rx_binary = binary;
    }
    if (first && final) { /* the common case: no copy */
        if (len > limit) return -1;
        gw_session_on_message(s, buf, len, binary);
        return 0;
    }
    if (s->rx.len + len > limit) {
        gw_buf_free(&s->rx);
        return -1;
    }
    gw_buf_append(&s->rx, buf, len);
    if (final) {
        gw_session_on_message(s, s->rx.data, s->rx.len, s->rx_binary);
        gw_buf_free(&s->rx);
    }
    return 0;
}

void gw_session_free(gw_session_t *s)
{
    if (!s) return;
    s->closing = true; /* acks completed below must not queue frames */
    while (s->nsubs) drop_sub(s, s->nsubs - 1);
    while (s->acks) { /* cannot happen once every sub is dropped, but stay leak-free */
        struct gw_ack *a = s->acks;
        s->acks = a->next;
        gw_msg_unref(a->frame);
        free(a);
    }
    gw_outq_clear(&s->q);
    if (is_legacy(s)) gw_stats.conn_legacy--;
    free(s->subs);
    gw_buf_free(&s->rx);
    gw_acl_unref(s->acl);
    gw_roles_unref(s->roles);
    free(s);
}

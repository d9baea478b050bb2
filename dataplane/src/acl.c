#include "acl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "glob.h"
#include "proto.h"

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static char **copy_strv(const char *const *v, size_t n)
{
    char **out = gw_xcalloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = gw_xstrdup(v[i]);
    return out;
}

static gw_acl_t *acl_new(const gw_role_t *role)
{
    gw_acl_t *a = gw_xcalloc(1, sizeof *a);
    a->refcnt = 1;
    a->role = role;
    return a;
}

static void role_init(gw_role_t *r, const char *name, const char *const *allow, size_t nallow,
                      const char *const *deny, size_t ndeny)
{
    memset(r, 0, sizeof *r);
    r->name = gw_xstrdup(name);
    r->allow = copy_strv(allow, nallow);
    r->nallow = nallow;
    r->deny = copy_strv(deny, ndeny);
    r->ndeny = ndeny;
    r->max_channels = r->max_wildcards = r->rate_limit = r->rate_burst = GW_LIMIT_UNSET;
}

static void finish_table(gw_roles_t *t)
{
    t->refcnt = 1;
    for (size_t i = 0; i < t->n; i++) t->v[i].acl = acl_new(&t->v[i]);
}

gw_roles_t *gw_roles_default(void)
{
    static const char *const user[] = {"market:tick", "market:tick:*", "engine:signal",
                                       "engine:signal:*", "indicators:*"};
    static const char *const all[] = {"*"};
    gw_roles_t *t = gw_xcalloc(1, sizeof *t);
    t->n = 3;
    t->v = gw_xcalloc(t->n, sizeof *t->v);
    role_init(&t->v[0], "user", user, 5, NULL, 0);
    role_init(&t->v[1], "admin", all, 1, NULL, 0);
    role_init(&t->v[2], "internal", all, 1, NULL, 0);
    finish_table(t);
    return t;
}

bool gw_role_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > GW_ROLE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int parse_patterns(json_t *arr, const char *field, size_t idx, char ***out, size_t *n,
                          char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!arr) {
        *out = gw_xcalloc(1, sizeof **out);
        return 0;
    }
    if (!json_is_array(arr) || json_array_size(arr) > 1000) {
        snprintf(err, errlen, "roles[%zu].%s must be an array of at most 1000 patterns", idx,
                 field);
        return -1;
    }
    *out = gw_xcalloc(json_array_size(arr) + 1, sizeof **out);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *p = json_array_get(arr, i);
        const char *why = "not a string";
        if (!json_is_string(p) ||
            !gw_channel_valid(json_string_value(p), json_string_length(p), &why) ||
            strlen(json_string_value(p)) != json_string_length(p)) {
            snprintf(err, errlen, "roles[%zu].%s[%zu]: %s", idx, field, i, why);
            return -1;
        }
        (*out)[(*n)++] = gw_xstrdup(json_string_value(p));
    }
    return 0;
}

static int parse_limit(json_t *o, const char *field, size_t idx, long lo, long hi, long *out,
                       char *err, size_t errlen)
{
    json_t *v = json_object_get(o, field);
    *out = GW_LIMIT_UNSET;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "roles[%zu].%s must be an integer in [%ld, %ld]", idx, field, lo, hi);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

static int parse_role(json_t *o, size_t idx, gw_role_t *r, char *err, size_t errlen)
{
    static const char *const known[] = {"name",          "allow",      "deny",      "max_channels",
                                        "max_wildcards", "rate_limit", "rate_burst"};
    const char *key;
    json_t *val;
    memset(r, 0, sizeof *r);
    r->max_channels = r->max_wildcards = r->rate_limit = r->rate_burst = GW_LIMIT_UNSET;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "roles[%zu] must be an object", idx);
        return -1;
    }
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= !strcmp(key, known[k]);
        if (!ok) {
            snprintf(err, errlen, "roles[%zu]: unknown field '%.64s'", idx, key);
            return -1;
        }
    }
    json_t *name = json_object_get(o, "name");
    if (!json_is_string(name) || !gw_role_name_valid(json_string_value(name))) {
        snprintf(err, errlen, "roles[%zu].name must be 1-64 characters of [A-Za-z0-9_.-]", idx);
        return -1;
    }
    r->name = gw_xstrdup(json_string_value(name));
    if (parse_patterns(json_object_get(o, "allow"), "allow", idx, &r->allow, &r->nallow, err,
                       errlen) < 0 ||
        parse_patterns(json_object_get(o, "deny"), "deny", idx, &r->deny, &r->ndeny, err, errlen) <
            0 ||
        parse_limit(o, "max_channels", idx, 1, 100000, &r->max_channels, err, errlen) < 0 ||
        parse_limit(o, "max_wildcards", idx, 0, 100000, &r->max_wildcards, err, errlen) < 0 ||
        parse_limit(o, "rate_limit", idx, 1, 1000000, &r->rate_limit, err, errlen) < 0 ||
        parse_limit(o, "rate_burst", idx, 1, 1000000, &r->rate_burst, err, errlen) < 0)
        return -1;
    return 0;
}

/* Direct-mapped: a slot per hash, the newest verdict wins it. Bounded by construction,
 * O(1) per lookup; an attacker sending fresh patterns only evicts, each at full cost
 * (which the budget bounds and the rate limiter charges for). */
typedef struct {
    char *pattern; /* NULL: empty */
    uint32_t hash, len;
    bool allowed;
} verdict_t;

struct gw_verdicts {
    uint32_t n; /* slots, a power of two */
    verdict_t slot[];
};

static void verdicts_free(struct gw_verdicts *v)
{
    if (!v) return;
    for (uint32_t i = 0; i < v->n; i++) free(v->slot[i].pattern);
    free(v);
}

static void role_free(gw_role_t *r)
{
    free(r->name);
    free_strv(r->allow, r->nallow);
    free_strv(r->deny, r->ndeny);
    if (r->acl) verdicts_free(r->acl->cache);
    free(r->acl);
}

gw_roles_t *gw_roles_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    gw_roles_t *t = NULL;
    if (!root) {
        snprintf(err, errlen, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        return NULL;
    }
    json_t *arr = json_object_get(root, "roles");
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(arr) ||
        json_array_size(arr) == 0 || json_array_size(arr) > 1000) {
        snprintf(err, errlen, "expected {\"roles\":[...]} with 1 to 1000 roles");
        goto Exit;
    }
    t = gw_xcalloc(1, sizeof *t);
    t->v = gw_xcalloc(json_array_size(arr), sizeof *t->v);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = parse_role(json_array_get(arr, i), i, &t->v[i], err, errlen);
        t->n = i + 1;
        if (rc < 0) goto Error;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->v[j].name, t->v[i].name)) {
                snprintf(err, errlen, "roles[%zu].name '%s' is defined twice", i, t->v[i].name);
                goto Error;
            }
    }
    finish_table(t);
    goto Exit;
Error:
    for (size_t i = 0; i < t->n; i++) role_free(&t->v[i]);
    free(t->v);
    free(t);
    t = NULL;
Exit:
    json_decref(root);
    return t;
}

gw_roles_t *gw_roles_build(const gw_role_spec_t *specs, size_t n, char *err, size_t errlen)
{
    gw_roles_t *t = gw_xcalloc(1, sizeof *t);
    t->v = gw_xcalloc(n ? n : 1, sizeof *t->v);
    for (size_t i = 0; i < n; i++) {
        const gw_role_spec_t *sp = &specs[i];
        const char *why;
        if (!sp->name || !gw_role_name_valid(sp->name)) {
            snprintf(err, errlen, "roles[%zu].name: 1-64 characters of [A-Za-z0-9_.-]", i);
            goto Error;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(specs[j].name, sp->name)) {
                snprintf(err, errlen, "roles[%zu].name: '%s' is defined twice", i, sp->name);
                goto Error;
            }
        for (size_t k = 0; k < sp->nallow + sp->ndeny; k++) {
            const char *p = k < sp->nallow ? sp->allow[k] : sp->deny[k - sp->nallow];
            if (!gw_channel_valid(p, strlen(p), &why)) {
                snprintf(err, errlen, "roles[%zu].%s[%zu]: %s", i,
                         k < sp->nallow ? "allow" : "deny", k < sp->nallow ? k : k - sp->nallow,
                         why);
                goto Error;
            }
        }
        role_init(&t->v[i], sp->name, (const char *const *)sp->allow, sp->nallow,
                  (const char *const *)sp->deny, sp->ndeny);
        t->v[i].max_channels = sp->max_channels;
        t->v[i].max_wildcards = sp->max_wildcards;
        t->v[i].rate_limit = sp->rate_limit;
        t->v[i].rate_burst = sp->rate_burst;
        t->n = i + 1;
    }
    finish_table(t);
    return t;
Error:
    for (size_t i = 0; i < t->n; i++) role_free(&t->v[i]);
    free(t->v);
    free(t);
    return NULL;
}

gw_roles_t *gw_roles_load(const char *path, char *err, size_t errlen)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_roles_t *t = NULL;
    if (gw_buf_read_file(&b, path, 4u << 20) < 0)
        snprintf(err, errlen, "cannot read '%s' (or larger than 4 MiB)", path);
    else
        t = gw_roles_parse(b.data, b.len, err, errlen);
    gw_buf_free(&b);
    return t;
}

const gw_role_t *gw_roles_find(const gw_roles_t *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (!strcmp(r->v[i].name, name)) return &r->v[i];
    return NULL;
}

gw_roles_t *gw_roles_ref(gw_roles_t *r)
{
    r->refcnt++;
    return r;
}

void gw_roles_unref(gw_roles_t *r)
{
    if (!r || --r->refcnt) return;
    for (size_t i = 0; i < r->n; i++) role_free(&r->v[i]);
    free(r->v);
    free(r);
}

gw_acl_t *gw_acl_narrow(gw_roles_t *roles, const gw_role_t *role, char *const *channels, size_t n)
{
    gw_acl_t *a = acl_new(role);
    a->roles = gw_roles_ref(roles);
    a->narrow = copy_strv((const char *const *)channels, n);
    a->nnarrow = n;
    return a;
}

gw_acl_t *gw_acl_ref(gw_acl_t *acl)
{
    acl->refcnt++;
    return acl;
}

void gw_acl_unref(gw_acl_t *acl)
{
    if (!acl || !acl->roles) return; /* a role's own ACL lives with its table */
    if (--acl->refcnt) return;
    free_strv(acl->narrow, acl->nnarrow);
    verdicts_free(acl->cache);
    gw_roles_unref(acl->roles);
    free(acl);
}

static bool any_match(char *const *pats, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (gw_glob_match(pats[i], strlen(pats[i]), s, len)) return true;
    return false;
}

bool gw_acl_allows_channel(const gw_acl_t *acl, const char *chan, size_t len)
{
    const gw_role_t *r = acl->role;
    if (!any_match(r->allow, r->nallow, chan, len)) return false;
    if (any_match(r->deny, r->ndeny, chan, len)) return false;
    return !acl->narrow || any_match(acl->narrow, acl->nnarrow, chan, len);
}

static bool contained_in_one(gw_glob_budget_t *bud, char *const *pats, size_t n, const char *p,
                             size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (gw_glob_contains_in(bud, pats[i], strlen(pats[i]), p, len) == 1) return true;
    return false;
}

/* "Cannot tell" (a malformed pattern, or the budget spent) is a denial. */
static bool check_pattern(const gw_acl_t *acl, const char *name, size_t len)
{
    gw_glob_budget_t bud = {GW_GLOB_BUDGET};
    const gw_role_t *r = acl->role;
    if (!contained_in_one(&bud, r->allow, r->nallow, name, len)) return false;
    for (size_t i = 0; i < r->ndeny; i++)
        if (gw_glob_intersects_in(&bud, r->deny[i], strlen(r->deny[i]), name, len) != 0)
            return false;
    return !acl->narrow || contained_in_one(&bud, acl->narrow, acl->nnarrow, name, len);
}

bool gw_acl_allows(gw_acl_t *acl, const char *name, size_t len)
{
    if (!gw_glob_is_pattern(name, len)) return gw_acl_allows_channel(acl, name, len);
    if (!acl->cache) {
        uint32_t n = acl->narrow ? GW_ACL_CACHE_NARROW : GW_ACL_CACHE;
        acl->cache = gw_xcalloc(1, sizeof *acl->cache + n * sizeof acl->cache->slot[0]);
        acl->cache->n = n;
    }
    uint32_t h = gw_hash(name, len);
    struct gw_verdicts *v = acl->cache;
    verdict_t *e = &v->slot[h & (v->n - 1)];
    if (e->pattern && e->hash == h && e->len == len && !memcmp(e->pattern, name, len))
        return e->allowed;
    bool ok = check_pattern(acl, name, len);
    free(e->pattern);
    e->pattern = gw_xstrndup(name, len);
    e->hash = h;
    e->len = (uint32_t)len;
    e->allowed = ok;
    return ok;
}

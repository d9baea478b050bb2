/* acl.h - roles and the channel access checks made with them.
 *
 * A role has allow and deny patterns and optional limit overrides. An exact channel is
 * allowed when it matches an allow pattern and no deny pattern. A pattern subscription
 * is allowed only when every channel it could ever match is allowed: it is contained in
 * one allow pattern and intersects no deny pattern (glob.h algebra; "cannot tell" means
 * deny). A token's `channels` claim narrows a connection's ACL, never widens it.
 *
 * Ownership: a gw_roles_t is refcounted (gw_roles_ref/unref); each role carries a shared
 * gw_acl_t valid as long as the table. gw_acl_narrow() returns an ACL owned by the
 * caller (gw_acl_unref), which keeps its roles table alive.
 */
#ifndef GW_ACL_H
#define GW_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_ROLE_NAME_MAX 64
#define GW_LIMIT_UNSET   (-1)

typedef struct gw_acl gw_acl_t;
typedef struct gw_roles gw_roles_t;

typedef struct {
    char *name;
    char **allow;
    size_t nallow;
    char **deny;
    size_t ndeny;
    long max_channels; /* GW_LIMIT_UNSET: the node's setting */
    long max_wildcards;
    long rate_limit;
    long rate_burst;
    gw_acl_t *acl; /* the role's own ACL, owned by the table */
} gw_role_t;

struct gw_roles {
    uint32_t refcnt;
    gw_role_t *v;
    size_t n;
};

struct gw_verdicts; /* a cache of pattern checks (acl.c) */

struct gw_acl {
    uint32_t refcnt;
    gw_roles_t *roles; /* kept alive by a narrowed ACL; NULL for a role's own ACL */
    const gw_role_t *role;
    char **narrow; /* patterns of a token's channels claim, or NULL */
    size_t nnarrow;
    struct gw_verdicts *cache; /* pattern -> verdict; an ACL never changes, nor do they */
};

/* The built-in roles: user reads market:tick, market:tick:*, engine:signal,
 * engine:signal:*, indicators:*; admin and internal read everything. */
gw_roles_t *gw_roles_default(void);

/* Parses and validates {"roles":[{"name":..,"allow":[..],"deny":[..],"max_channels":..,
 * "max_wildcards":..,"rate_limit":..,"rate_burst":..}]}. Unknown fields are errors. On
 * failure returns NULL with a message naming the field in err. */
gw_roles_t *gw_roles_parse(const char *text, size_t len, char *err, size_t errlen);
gw_roles_t *gw_roles_load(const char *path, char *err, size_t errlen);

/* One role as plain data (strings borrowed), for building a table from elsewhere (the
 * control plane's snapshots). Limits: GW_LIMIT_UNSET when not set. */
typedef struct {
    const char *name;
    char *const *allow;
    size_t nallow;
    char *const *deny;
    size_t ndeny;
    long max_channels, max_wildcards, rate_limit, rate_burst;
} gw_role_spec_t;

/* Validates like ROLES_FILE (names, patterns, duplicates) and builds a table; NULL with
 * a reason naming the field in err. */
gw_roles_t *gw_roles_build(const gw_role_spec_t *specs, size_t n, char *err, size_t errlen);

/* 1-64 characters of [A-Za-z0-9_.-]. */
bool gw_role_name_valid(const char *s);

const gw_role_t *gw_roles_find(const gw_roles_t *r, const char *name);
gw_roles_t *gw_roles_ref(gw_roles_t *r);
void gw_roles_unref(gw_roles_t *r);

/* An ACL for role narrowed by a channels claim (patterns copied). */
gw_acl_t *gw_acl_narrow(gw_roles_t *roles, const gw_role_t *role, char *const *channels, size_t n);
gw_acl_t *gw_acl_ref(gw_acl_t *acl);
void gw_acl_unref(gw_acl_t *acl);

/* Subscription check for a channel or pattern. A pattern check is bounded in work
 * (GW_GLOB_BUDGET for the whole check: every allow, deny and claim pattern); one that
 * cannot be decided within it is denied. Verdicts on patterns are cached per ACL
 * (GW_ACL_CACHE entries for a role's ACL, shared by its sessions; fewer for a narrowed
 * one), so a pattern repeated costs a lookup. */
#define GW_ACL_CACHE        256
#define GW_ACL_CACHE_NARROW 16
bool gw_acl_allows(gw_acl_t *acl, const char *name, size_t len);

/* Delivery check for one concrete channel (defence in depth). */
bool gw_acl_allows_channel(const gw_acl_t *acl, const char *chan, size_t len);

#endif

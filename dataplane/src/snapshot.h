/* snapshot.h - a control-plane snapshot decoded and validated into what the node needs:
 * a roles table, hashed API keys, auth settings and limits. Decoding never touches the
 * live node: a snapshot that fails here is NACKed and the node keeps what it has.
 *
 * Ownership: gw_snapshot_decode() fills out (free with gw_snapshot_free()); out->roles
 * carries one reference that the caller may take over (set it to NULL then).
 */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "auth.h"

typedef struct {
    uint64_t version;
    char epoch[64];
    gw_roles_t *roles;
    gw_apikey_t *keys;
    size_t nkeys;
    bool require_auth, jwt_require_exp;
    char *default_role, *jwt_issuer, *jwt_audience, *jwt_role_claim, *jwt_pem;
    long jwt_leeway_s;
    long max_channels, max_wildcards, rate_limit, rate_burst; /* 0: the node's own */
} gw_snapshot_t;

int gw_snapshot_decode(const uint8_t *data, size_t len, gw_snapshot_t *out, char *err,
                       size_t errlen);
void gw_snapshot_free(gw_snapshot_t *s);

/* The node's counters as a packed wsgw.control.v1.NodeStats (malloc'd). */
uint8_t *gw_stats_report(bool redis_connected, int64_t now_ms, size_t *len);

#endif

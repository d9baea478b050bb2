/* fleet.h - every data plane the control plane has seen: identity, the config version it
 * holds, sync status and its last stats report. Nodes stay listed (as `gone`) after
 * their stream closes, so an operator sees who went away.
 *
 * Status: synced (ACKed the latest), pending (sent, not ACKed), nacked (refused it, with
 * the error), stale (open stream but no report for 3 intervals), gone (stream closed).
 * Owned by the server thread; not thread-safe.
 */
#ifndef CP_FLEET_H
#define CP_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "wsgw/control/v1/control.pb-c.h"

typedef struct cp_node {
    struct cp_node *next;
    char *node_id, *address, *build;
    uint64_t acked_version, sent_version, nacked_version;
    char *acked_epoch;
    unsigned char acked_digest[32]; /* of the snapshot it holds, from its hello or our push */
    char nonce[24];
    char *error;
    int64_t last_report_ms, connected_ms;
    bool connected;
    void *stream;                        /* the open stream, or NULL */
    Wsgw__Control__V1__NodeStats *stats; /* last report, owned */
} cp_node_t;

typedef struct {
    cp_node_t *nodes;
    long report_interval_ms;
} cp_fleet_t;

cp_node_t *cp_fleet_attach(cp_fleet_t *f, const char *node_id, void *stream, int64_t now_ms);
void cp_fleet_detach(cp_fleet_t *f, cp_node_t *n, void *stream);
const char *cp_fleet_status(const cp_fleet_t *f, const cp_node_t *n, uint64_t version,
                            int64_t now_ms);
void cp_fleet_free(cp_fleet_t *f);

#endif

/* fleet.h - every data plane the control plane has seen: identity, the config version it
 * holds, sync status and its last stats report. An entry belongs to one stream at a
 * time; when its stream closes it stays listed (as `gone`) for gone_ttl_ms, so an
 * operator sees who went away, then it is freed.
 *
 * Identity is not trusted: two open streams that claim one node_id get one entry each
 * (both receive every push, so neither can hide config from the other) and both are
 * marked `duplicate`. A reconnecting node takes over its own `gone` entry.
 *
 * Bounds: at most max_nodes entries. A new stream evicts the oldest `gone` entry when the
 * fleet is full, and is refused when every entry has an open stream.
 *
 * Status: synced (ACKed the latest), pending (sent, not ACKed), nacked (refused it, with
 * the error), stale (open stream but no report for 3 intervals), gone (stream closed).
 * Owned by the server thread; not thread-safe. Entries are owned by the fleet.
 */
#ifndef CP_FLEET_H
#define CP_FLEET_H

#include <stdbool.h>
#include <stddef.h>
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
    int64_t last_report_ms, connected_ms, gone_ms;
    bool connected;
    bool duplicate;                      /* another open stream claims the same node_id */
    void *stream;                        /* the open stream, or NULL */
    Wsgw__Control__V1__NodeStats *stats; /* last report (checked), owned */
} cp_node_t;

typedef struct {
    cp_node_t *nodes;
    size_t count, max_nodes;
    long report_interval_ms;
    int64_t gone_ttl_ms;
} cp_fleet_t;

/* The entry for a new stream, or NULL when the fleet is full of connected nodes. */
cp_node_t *cp_fleet_attach(cp_fleet_t *f, const char *node_id, void *stream, int64_t now_ms);

/* The stream closed. Frees the entry at once when another open stream claims its
 * node_id (that one is the node now); else it stays listed as gone. n may be NULL. */
void cp_fleet_detach(cp_fleet_t *f, cp_node_t *n, void *stream, int64_t now_ms);

/* Frees entries gone for longer than gone_ttl_ms; returns how many. */
size_t cp_fleet_expire(cp_fleet_t *f, int64_t now_ms);

const char *cp_fleet_status(const cp_fleet_t *f, const cp_node_t *n, uint64_t version,
                            int64_t now_ms);
size_t cp_fleet_duplicates(const cp_fleet_t *f);
void cp_fleet_free(cp_fleet_t *f);

#endif

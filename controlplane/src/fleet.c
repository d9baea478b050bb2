#include "fleet.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

cp_node_t *cp_fleet_attach(cp_fleet_t *f, const char *node_id, void *stream, int64_t now_ms)
{
    cp_node_t *n = f->nodes;
    while (n && strcmp(n->node_id, node_id)) n = n->next;
    if (!n) {
        n = gw_xcalloc(1, sizeof *n);
        n->node_id = gw_xstrdup(node_id);
        n->next = f->nodes;
        f->nodes = n;
    }
    /* A reconnecting node starts over: what it holds comes from its hello. */
    n->stream = stream;
    n->connected = true;
    n->connected_ms = now_ms;
    n->last_report_ms = now_ms;
    n->sent_version = n->nacked_version = 0;
    free(n->error);
    n->error = NULL;
    return n;
}

void cp_fleet_detach(cp_fleet_t *f, cp_node_t *n, void *stream)
{
    (void)f;
    if (!n || n->stream != stream) return; /* a newer stream took over */
    n->stream = NULL;
    n->connected = false;
}

const char *cp_fleet_status(const cp_fleet_t *f, const cp_node_t *n, uint64_t version,
                            int64_t now_ms)
{
    if (!n->connected) return "gone";
    if (now_ms - n->last_report_ms > 3 * f->report_interval_ms) return "stale";
    if (n->nacked_version == version) return "nacked";
    if (n->acked_version == version) return "synced";
    return "pending";
}

void cp_fleet_free(cp_fleet_t *f)
{
    cp_node_t *n = f->nodes, *next;
    for (; n; n = next) {
        next = n->next;
        free(n->node_id);
        free(n->address);
        free(n->build);
        free(n->acked_epoch);
        free(n->error);
        if (n->stats) protobuf_c_message_free_unpacked(&n->stats->base, NULL);
        free(n);
    }
    f->nodes = NULL;
}

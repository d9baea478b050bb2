#include "fleet.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void node_free(cp_node_t *n)
{
    free(n->node_id);
    free(n->address);
    free(n->build);
    free(n->acked_epoch);
    free(n->error);
    if (n->stats) protobuf_c_message_free_unpacked(&n->stats->base, NULL);
    free(n);
}

static void unlink_free(cp_fleet_t *f, cp_node_t *n)
{
    cp_node_t **p = &f->nodes;
    while (*p != n) p = &(*p)->next;
    *p = n->next;
    f->count--;
    node_free(n);
}

/* Sets `duplicate` on the open entries claiming node_id, `skip` aside; returns how many
 * there are. */
static size_t mark_twins(cp_fleet_t *f, const char *node_id, const cp_node_t *skip, bool dup)
{
    size_t k = 0;
    for (cp_node_t *n = f->nodes; n; n = n->next)
        if (n != skip && n->connected && !strcmp(n->node_id, node_id)) {
            n->duplicate = dup;
            k++;
        }
    return k;
}

static cp_node_t *oldest_gone(cp_fleet_t *f)
{
    cp_node_t *old = NULL;
    for (cp_node_t *n = f->nodes; n; n = n->next)
        if (!n->connected && (!old || n->gone_ms < old->gone_ms)) old = n;
    return old;
}

cp_node_t *cp_fleet_attach(cp_fleet_t *f, const char *node_id, void *stream, int64_t now_ms)
{
    cp_node_t *n = f->nodes;
    while (n && (n->connected || strcmp(n->node_id, node_id))) n = n->next;
    if (!n) {
        if (f->count >= f->max_nodes) {
            cp_node_t *old = oldest_gone(f);
            if (!old) return NULL;
            unlink_free(f, old);
        }
        n = gw_xcalloc(1, sizeof *n);
        n->node_id = gw_xstrdup(node_id);
        n->next = f->nodes;
        f->nodes = n;
        f->count++;
    }
    /* A reconnecting node starts over: what it holds comes from its hello. */
    n->stream = stream;
    n->connected = true;
    n->connected_ms = now_ms;
    n->last_report_ms = now_ms;
    n->sent_version = n->nacked_version = 0;
    free(n->error);
    n->error = NULL;
    if (n->stats) protobuf_c_message_free_unpacked(&n->stats->base, NULL);
    n->stats = NULL;
    n->duplicate = mark_twins(f, node_id, n, true) > 0;
    return n;
}

void cp_fleet_detach(cp_fleet_t *f, cp_node_t *n, void *stream, int64_t now_ms)
{
    if (!n || n->stream != stream) return;
    n->stream = NULL;
    n->connected = false;
    n->gone_ms = now_ms;
    n->duplicate = false;
    if (n->stats) protobuf_c_message_free_unpacked(&n->stats->base, NULL);
    n->stats = NULL;
    size_t twins = mark_twins(f, n->node_id, n, true);
    if (!twins) return;
    if (twins == 1) mark_twins(f, n->node_id, n, false);
    unlink_free(f, n);
}

size_t cp_fleet_expire(cp_fleet_t *f, int64_t now_ms)
{
    size_t freed = 0;
    cp_node_t **p = &f->nodes;
    while (*p) {
        cp_node_t *n = *p;
        if (!n->connected && now_ms - n->gone_ms >= f->gone_ttl_ms) {
            *p = n->next;
            f->count--;
            node_free(n);
            freed++;
        } else {
            p = &n->next;
        }
    }
    return freed;
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

size_t cp_fleet_duplicates(const cp_fleet_t *f)
{
    size_t k = 0;
    for (const cp_node_t *n = f->nodes; n; n = n->next) k += n->duplicate;
    return k;
}

void cp_fleet_free(cp_fleet_t *f)
{
    cp_node_t *n = f->nodes, *next;
    for (; n; n = next) {
        next = n->next;
        node_free(n);
    }
    f->nodes = NULL;
    f->count = 0;
}

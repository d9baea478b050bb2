#include "outq.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

/*------------------------------------------------------------------------------
 * Rings */

static gw_qent_t *ring_at(const gw_qring_t *r, uint32_t i)
{
    return &r->v[(r->head + i) & (r->cap - 1)];
}

static void ring_push(gw_qring_t *r, gw_qent_t e)
{
    if (r->len == r->cap) { /* grow, keeping the order: index i stays index i */
        uint32_t cap = r->cap ? r->cap * 2 : 8;
        gw_qent_t *v = gw_xmalloc(cap * sizeof *v);
        for (uint32_t i = 0; i < r->len; i++) v[i] = *ring_at(r, i);
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    *ring_at(r, r->len++) = e;
}

static gw_qent_t ring_pop(gw_qring_t *r)
{
    gw_qent_t e = *ring_at(r, 0);
    r->head = (r->head + 1) & (r->cap - 1);
    r->len--;
    return e;
}

static void abs_push(gw_absring_t *r, uint64_t abs)
{
    if (r->len == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        uint64_t *v = gw_xmalloc(cap * sizeof *v);
        for (uint32_t i = 0; i < r->len; i++) v[i] = r->v[(r->head + i) & (r->cap - 1)];
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    r->v[(r->head + r->len++) & (r->cap - 1)] = abs;
}

static uint64_t abs_pop(gw_absring_t *r)
{
    uint64_t v = r->v[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    r->len--;
    return v;
}

/*------------------------------------------------------------------------------
 * Channel -> newest queued data message (conflate). Open addressing, linear probing,
 * deletion by backward shift; at most half full. */

typedef struct {
    const gw_msg_t *m; /* NULL: empty slot */
    uint64_t abs;      /* its absolute index in the data ring */
} slot_t;

struct gw_chanmap {
    slot_t *s;
    uint32_t cap, n;
};

static bool same_channel(const gw_msg_t *a, const gw_msg_t *b)
{
    return a->chan_hash == b->chan_hash && a->chan_len == b->chan_len &&
           memcmp(a->chan, b->chan, a->chan_len) == 0;
}

static slot_t *map_find(struct gw_chanmap *mp, const gw_msg_t *m)
{
    for (uint32_t i = m->chan_hash & (mp->cap - 1);; i = (i + 1) & (mp->cap - 1))
        if (!mp->s[i].m || same_channel(mp->s[i].m, m)) return &mp->s[i];
}

static void map_grow(struct gw_chanmap *mp)
{
    struct gw_chanmap old = *mp;
    mp->cap = old.cap ? old.cap * 2 : 16;
    mp->s = gw_xcalloc(mp->cap, sizeof *mp->s);
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.s[i].m) *map_find(mp, old.s[i].m) = old.s[i];
    free(old.s);
}

/* Records m at abs as its channel's newest; *prev gets the one it replaces, if any. */
static bool map_put(struct gw_chanmap *mp, const gw_msg_t *m, uint64_t abs, uint64_t *prev)
{
    if ((mp->n + 1) * 2 > mp->cap) map_grow(mp);
    slot_t *s = map_find(mp, m);
    bool had = s->m != NULL;
    if (had)
        *prev = s->abs;
    else
        mp->n++;
    s->m = m;
    s->abs = abs;
    return had;
}

/* Forgets m's channel if its newest message is the one at abs (it is leaving). */
static void map_forget(struct gw_chanmap *mp, const gw_msg_t *m, uint64_t abs)
{
    slot_t *s = map_find(mp, m);
    if (!s->m || s->abs != abs) return;
    uint32_t i = (uint32_t)(s - mp->s), mask = mp->cap - 1;
    for (uint32_t j = (i + 1) & mask; mp->s[j].m; j = (j + 1) & mask) {
        uint32_t home = mp->s[j].m->chan_hash & mask;
        /* j may move to i when its home slot is not in (i, j] (cyclically) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            mp->s[i] = mp->s[j];
            i = j;
        }
    }
    mp->s[i].m = NULL;
    mp->n--;
}

static void map_clear(struct gw_chanmap *mp)
{
    if (mp->n) memset(mp->s, 0, mp->cap * sizeof *mp->s);
    mp->n = 0;
}

/*------------------------------------------------------------------------------
 * Queue */

static uint32_t live_data(const gw_outq_t *q)
{
    return q->data.len - q->holes;
}

/* Distinct frames held by all queues of this thread, each counted once however many
 * queues share it: the memory queues really retain (a message fanned out to a thousand
 * slow clients is one allocation). */
static size_t retained;

size_t gw_outq_retained(void)
{
    return retained;
}

static void release(gw_outq_t *q, gw_msg_t *m)
{
    q->bytes -= GW_OUTQ_COST(m);
    if (--m->qrefs == 0) retained -= GW_OUTQ_COST(m);
    gw_msg_unref(m);
}

/* The live data entry at abs, or NULL when it was sent, dropped or replaced since. */
static gw_qent_t *live_at(gw_outq_t *q, uint64_t abs)
{
    if (abs < q->data_base || abs >= q->data_base + q->data.len) return NULL;
    gw_qent_t *e = ring_at(&q->data, (uint32_t)(abs - q->data_base));
    return e->m ? e : NULL;
}

/* Replaces superseded messages by holes, oldest supersession first, until the queue
 * fits. Entries of the list that left the queue meanwhile are skipped. */
static void conflate(gw_outq_t *q, size_t limit, gw_shed_count_t *shed)
{
    while (q->bytes > limit && q->superseded.len) {
        gw_qent_t *e = live_at(q, abs_pop(&q->superseded));
        if (!e) continue;
        release(q, e->m);
        e->m = NULL;
        q->holes++;
        shed->conflated++;
    }
}

/* Pops holes at the head of the data ring: they were already accounted for. */
static void skip_holes(gw_outq_t *q)
{
    while (q->data.len && !ring_at(&q->data, 0)->m) {
        ring_pop(&q->data);
        q->data_base++;
        q->holes--;
    }
}

static gw_msg_t *pop_data(gw_outq_t *q)
{
    skip_holes(q);
    gw_qent_t e = ring_pop(&q->data);
    if (q->map) map_forget(q->map, e.m, q->data_base);
    q->data_base++;
    return e.m;
}

/* Rebuilds the data ring without holes, and the map and the superseded list, whose
 * indexes move: O(n), done once holes outnumber live entries, or once the list is
 * mostly entries that left, so O(1) per message queued. */
static void compact(gw_outq_t *q)
{
    gw_qring_t r = {0};
    while (q->data.len) {
        gw_qent_t e = ring_pop(&q->data);
        if (e.m) ring_push(&r, e);
    }
    free(q->data.v);
    q->data = r;
    q->holes = 0;
    map_clear(q->map);
    q->superseded.len = q->superseded.head = 0;
    uint64_t prev;
    for (uint32_t i = 0; i < q->data.len; i++)
        if (map_put(q->map, ring_at(&q->data, i)->m, q->data_base + i, &prev))
            abs_push(&q->superseded, prev);
}

void gw_outq_push(gw_outq_t *q, gw_msg_t *m, uint64_t seq, gw_shed_t policy, size_t limit,
                  gw_shed_count_t *shed)
{
    gw_qent_t e = {gw_msg_ref(m), seq};
    q->bytes += GW_OUTQ_COST(m);
    if (m->qrefs++ == 0) retained += GW_OUTQ_COST(m);
    if (!m->is_data) {
        ring_push(&q->ctl, e);
    } else {
        uint64_t abs = q->data_base + q->data.len, prev;
        ring_push(&q->data, e);
        if (policy == GW_SHED_CONFLATE) {
            if (!q->map) q->map = gw_xcalloc(1, sizeof *q->map);
            if (map_put(q->map, m, abs, &prev)) abs_push(&q->superseded, prev);
        }
    }
    if (policy == GW_SHED_NONE) return;
    if (policy == GW_SHED_CONFLATE) conflate(q, limit, shed);
    /* Oldest first; the message just queued is never the one dropped. */
    uint32_t keep = m->is_data ? 1 : 0;
    while (q->bytes > limit && live_data(q) > keep) {
        release(q, pop_data(q));
        shed->dropped++;
    }
    if (q->map && (q->holes > live_data(q) + 32 || q->superseded.len > 2 * live_data(q) + 32))
        compact(q);
}

size_t gw_outq_frames(const gw_outq_t *q)
{
    return q->ctl.len + live_data(q);
}

size_t gw_outq_bytes(const gw_outq_t *q)
{
    return q->bytes;
}

/* Merged iteration over both rings in seq order, holes skipped. */
typedef struct {
    uint32_t c, d;
} cursor_t;

static const gw_qent_t *next(const gw_outq_t *q, cursor_t *k)
{
    while (k->d < q->data.len && !ring_at(&q->data, k->d)->m) k->d++;
    const gw_qent_t *a = k->c < q->ctl.len ? ring_at(&q->ctl, k->c) : NULL;
    const gw_qent_t *b = k->d < q->data.len ? ring_at(&q->data, k->d) : NULL;
    if (a && (!b || a->seq < b->seq)) {
        k->c++;
        return a;
    }
    if (b) k->d++;
    return b;
}

size_t gw_outq_peek(const gw_outq_t *q, unsigned char *out, size_t cap, size_t *ends, size_t maxf,
                    size_t *need)
{
    size_t used = 0, n = 0;
    cursor_t k = {0, 0};
    const gw_qent_t *e;
    *need = 0;
    while (n < maxf && (e = next(q, &k))) {
        size_t w = gw_msg_wire_len(e->m, e->seq);
        if (w > cap - used) {
            if (n == 0) *need = w;
            break;
        }
        used += gw_msg_write_frame(e->m, e->seq, out + used);
        ends[n++] = used;
    }
    return n;
}

void gw_outq_consume(gw_outq_t *q, size_t n, void (*each)(const gw_msg_t *m, void *ud), void *ud)
{
    while (n--) {
        skip_holes(q);
        const gw_qent_t *a = q->ctl.len ? ring_at(&q->ctl, 0) : NULL;
        const gw_qent_t *b = q->data.len ? ring_at(&q->data, 0) : NULL;
        if (!a && !b) break;
        gw_msg_t *m = a && (!b || a->seq < b->seq) ? ring_pop(&q->ctl).m : pop_data(q);
        if (each) each(m, ud);
        release(q, m);
    }
    if (q->map && !q->data.len) {
        map_clear(q->map);
        q->superseded.len = q->superseded.head = 0;
    }
}

void gw_outq_clear(gw_outq_t *q)
{
    while (q->ctl.len) release(q, ring_pop(&q->ctl).m);
    while (q->data.len) {
        gw_qent_t e = ring_pop(&q->data);
        if (e.m) release(q, e.m);
    }
    free(q->ctl.v);
    free(q->data.v);
    if (q->map) free(q->map->s);
    free(q->map);
    free(q->superseded.v);
    memset(q, 0, sizeof *q);
}

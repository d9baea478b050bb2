#include "hub.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "hash.h"
#include "log.h"
#include "stats.h"

typedef enum {
    T_UNSUBSCRIBED,
    T_SUBSCRIBING,
    T_SUBSCRIBED,
    T_UNSUBSCRIBING,
} topic_state_t;

struct gw_topic {
    gw_topic_t *next; /* hash chain */
    gw_sub_t **subs;
    uint32_t nsubs, cap;
    uint32_t hash;
    uint8_t state; /* topic_state_t */
    bool pattern;
    bool resub; /* part of the post-reconnect batch: counted in hub->resubscribing */
    size_t len;
    char name[];
};

struct gw_hub {
    const gw_hub_ops_t *ops;
    void *ud;
    gw_topic_t **buckets;
    size_t nbuckets, ntopics, npatterns;
    bool link_up;
    bool was_up;         /* the link has been up before: the next up is a reconnect */
    bool resync_pending; /* a reconnect happened; resync when all topics are back */
    size_t resubscribing;
};

#define SUBSYS "hub"

gw_hub_t *gw_hub_new(const gw_hub_ops_t *ops, void *ud)
{
    gw_hub_t *h = gw_xcalloc(1, sizeof *h);
    h->ops = ops;
    h->ud = ud;
    h->nbuckets = 64;
    h->buckets = gw_xcalloc(h->nbuckets, sizeof *h->buckets);
    return h;
}

static void topic_free(gw_topic_t *t)
{
    free(t->subs);
    free(t);
}

void gw_hub_free(gw_hub_t *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        gw_topic_t *t = h->buckets[i], *next;
        for (; t; t = next) {
            next = t->next;
            assert(t->nsubs == 0);
            topic_free(t);
        }
    }
    free(h->buckets);
    free(h);
}

static gw_topic_t *find(gw_hub_t *h, const char *name, size_t len, uint32_t hash)
{
    for (gw_topic_t *t = h->buckets[hash & (h->nbuckets - 1)]; t; t = t->next)
        if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0) return t;
    return NULL;
}

static void grow(gw_hub_t *h)
{
    size_t n = h->nbuckets * 2;
    gw_topic_t **b = gw_xcalloc(n, sizeof *b);
    for (size_t i = 0; i < h->nbuckets; i++) {
        gw_topic_t *t = h->buckets[i], *next;
        for (; t; t = next) {
            next = t->next;
            t->next = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
}

static void unlink_topic(gw_hub_t *h, gw_topic_t *t)
{
    gw_topic_t **pp = &h->buckets[t->hash & (h->nbuckets - 1)];
    while (*pp != t) pp = &(*pp)->next;
    *pp = t->next;
    h->ntopics--;
    h->npatterns -= t->pattern;
    topic_free(t);
}

static void count_redis(gw_topic_t *t, int delta)
{
    uint64_t *c = t->pattern ? &gw_stats.redis_subs_pattern : &gw_stats.redis_subs_exact;
    *c += (uint64_t)(int64_t)delta;
}

static void send_cmd(gw_hub_t *h, gw_topic_t *t, bool subscribe)
{
    const char *names[1] = {t->name};
    size_t lens[1] = {t->len};
    if (h->ops->redis_cmd(h->ud, subscribe, t->pattern, names, lens, 1) == 0)
        t->state = subscribe ? T_SUBSCRIBING : T_UNSUBSCRIBING;
}

/* Moves a topic towards what its subscribers want; frees it when nobody needs it.
 * Returns false when the topic was freed. */
static bool topic_sync(gw_hub_t *h, gw_topic_t *t)
{
    switch ((topic_state_t)t->state) {
    case T_UNSUBSCRIBED:
        if (t->nsubs == 0) {
            unlink_topic(h, t);
            return false;
        }
        if (h->link_up) send_cmd(h, t, true);
        return true;
    case T_SUBSCRIBED:
        if (t->nsubs == 0) send_cmd(h, t, false);
        return true;
    default: return true; /* a command is in flight: reconcile on its reply */
    }
}

gw_sub_t *gw_hub_subscribe(gw_hub_t *h, struct gw_session *s, const char *name, size_t len,
                           bool *active)
{
    uint32_t hash = gw_hash(name, len);
    gw_topic_t *t = find(h, name, len, hash);
    if (!t) {
        if (h->ntopics >= h->nbuckets) grow(h);
        t = gw_xcalloc(1, sizeof *t + len + 1);
        memcpy(t->name, name, len);
        t->len = len;
        t->hash = hash;
        t->pattern = gw_glob_is_pattern(name, len);
        h->npatterns += t->pattern;
        t->state = T_UNSUBSCRIBED;
        t->next = h->buckets[hash & (h->nbuckets - 1)];
        h->buckets[hash & (h->nbuckets - 1)] = t;
        h->ntopics++;
    }
    if (t->nsubs == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->subs = gw_xrealloc(t->subs, t->cap * sizeof *t->subs);
    }
    gw_sub_t *sub = gw_xcalloc(1, sizeof *sub);
    sub->topic = t;
    sub->session = s;
    sub->idx = t->nsubs;
    t->subs[t->nsubs++] = sub;
    if (t->pattern)
        gw_stats.client_subs_pattern++;
    else
        gw_stats.client_subs_exact++;
    *active = t->state == T_SUBSCRIBED;
    topic_sync(h, t);
    return sub;
}

void gw_hub_unsubscribe(gw_hub_t *h, gw_sub_t *sub)
{
    gw_topic_t *t = sub->topic;
    gw_sub_t *last = t->subs[--t->nsubs];
    t->subs[sub->idx] = last;
    last->idx = sub->idx;
    if (t->pattern)
        gw_stats.client_subs_pattern--;
    else
        gw_stats.client_subs_exact--;
    free(sub);
    topic_sync(h, t);
}

const char *gw_sub_name(const gw_sub_t *sub, size_t *len)
{
    *len = sub->topic->len;
    return sub->topic->name;
}

bool gw_sub_is_pattern(const gw_sub_t *sub)
{
    return sub->topic->pattern;
}

size_t gw_hub_topic_count(const gw_hub_t *h)
{
    return h->ntopics;
}

size_t gw_hub_pattern_count(const gw_hub_t *h)
{
    return h->npatterns;
}

bool gw_hub_has_topic(const gw_hub_t *h, const char *name, size_t len)
{
    return find((gw_hub_t *)h, name, len, gw_hash(name, len)) != NULL;
}

void gw_hub_on_message(gw_hub_t *h, const char *chan, size_t chlen, const char *pattern,
                       size_t plen, const char *data, size_t dlen, uint64_t rx_us,
                       uint64_t rx_unix_us)
{
    const char *key = pattern ? pattern : chan;
    size_t klen = pattern ? plen : chlen;
    gw_topic_t *t = find(h, key, klen, gw_hash(key, klen));

    gw_stats.redis_messages++;
    if (!t || t->pattern != (pattern != NULL) || t->nsubs == 0) return;

    gw_msg_t *m = gw_msg_new_message(chan, chlen, pattern, plen, data, dlen, rx_us, rx_unix_us);
    for (uint32_t i = 0; i < t->nsubs; i++) h->ops->deliver(h->ud, t->subs[i], m);
    gw_msg_drop_legacy(m); /* legacy queues hold their own references */
    gw_msg_unref(m);
}

static void maybe_resync(gw_hub_t *h)
{
    if (h->resync_pending && h->resubscribing == 0 && h->link_up) {
        h->resync_pending = false;
        h->ops->resync(h->ud);
    }
}

void gw_hub_on_confirm(gw_hub_t *h, bool subscribe, bool pattern, const char *name, size_t len)
{
    gw_topic_t *t = find(h, name, len, gw_hash(name, len));
    if (!t || t->pattern != pattern) return;

    if (subscribe) {
        if (t->state != T_SUBSCRIBING) {
            GW_LOG(GW_LOG_WARN, SUBSYS, "unexpected_confirm", "kind=subscribe state=%d", t->state);
            return;
        }
        t->state = T_SUBSCRIBED;
        count_redis(t, +1);
        if (t->resub) {
            t->resub = false;
            h->resubscribing--;
        }
        /* Safe: sub_active only queues a frame; it never unsubscribes. */
        for (uint32_t i = 0; i < t->nsubs; i++)
            if (t->subs[i]->pending) h->ops->sub_active(h->ud, t->subs[i]);
        topic_sync(h, t);
        maybe_resync(h);
    } else {
        if (t->state != T_UNSUBSCRIBING) {
            GW_LOG(GW_LOG_WARN, SUBSYS, "unexpected_confirm", "kind=unsubscribe state=%d",
                   t->state);
            return;
        }
        t->state = T_UNSUBSCRIBED;
        count_redis(t, -1);
        topic_sync(h, t);
    }
}

void gw_hub_on_link_down(gw_hub_t *h)
{
    h->link_up = false;
    h->resubscribing = 0;
    if (h->was_up) h->resync_pending = true;
    for (size_t i = 0; i < h->nbuckets; i++) {
        gw_topic_t *t = h->buckets[i], *next;
        for (; t; t = next) {
            next = t->next;
            if (t->state == T_SUBSCRIBED || t->state == T_UNSUBSCRIBING) count_redis(t, -1);
            t->state = T_UNSUBSCRIBED;
            t->resub = false;
            topic_sync(h, t); /* frees unused topics */
        }
    }
}

/* Resubscribes in batches: one command per kind per 256 names keeps a node with many
 * topics from sending thousands of round trips after a reconnect. */
static void resubscribe_kind(gw_hub_t *h, bool pattern)
{
    enum { BATCH = 256 };
    const char *names[BATCH];
    size_t lens[BATCH];
    gw_topic_t *batch[BATCH];
    size_t n = 0;

    for (size_t i = 0; i <= h->nbuckets; i++) {
        gw_topic_t *t = i < h->nbuckets ? h->buckets[i] : NULL;
        for (; t; t = t->next) {
            if (t->pattern != pattern || t->state != T_UNSUBSCRIBED || t->nsubs == 0) continue;
            names[n] = t->name;
            lens[n] = t->len;
            batch[n++] = t;
            if (n == BATCH) break;
        }
        if (n == BATCH || (i == h->nbuckets && n > 0)) {
            if (h->ops->redis_cmd(h->ud, true, pattern, names, lens, n) != 0) return;
            for (size_t j = 0; j < n; j++) {
                batch[j]->state = T_SUBSCRIBING;
                batch[j]->resub = true;
            }
            h->resubscribing += n;
            n = 0;
            if (i < h->nbuckets) i--; /* the bucket may hold more topics of this kind */
        }
    }
}

void gw_hub_on_link_up(gw_hub_t *h)
{
    h->link_up = true;
    h->was_up = true;
    resubscribe_kind(h, false);
    resubscribe_kind(h, true);
    maybe_resync(h);
}

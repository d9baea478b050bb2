/* hub.h - the routing index: which sessions want which channels and patterns, and the
 * refcounted state of each one on the node's single Redis subscriber connection.
 *
 * A topic is a channel or pattern some session subscribed to. Its Redis state moves
 * UNSUBSCRIBED -> SUBSCRIBING -> SUBSCRIBED -> UNSUBSCRIBING, with at most one command
 * in flight per topic, so replies always match requests. The first session to want a
 * topic makes the hub SUBSCRIBE; when the last one leaves, the hub UNSUBSCRIBEs.
 *
 * A Redis message becomes one gw_msg_t, shared by every recipient (ops->deliver takes
 * its own reference if it keeps it).
 *
 * Ownership: gw_hub_subscribe() returns a gw_sub_t the caller (the session) keeps and
 * later passes to gw_hub_unsubscribe(), which frees it. The hub owns topics.
 * The hub never frees or closes sessions; ops callbacks must not unsubscribe during
 * gw_hub_on_message() (close asynchronously instead).
 */
#ifndef GW_HUB_H
#define GW_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

typedef struct gw_hub gw_hub_t;
typedef struct gw_topic gw_topic_t;
struct gw_session;

typedef struct gw_sub {
    gw_topic_t *topic;
    struct gw_session *session;
    uint32_t idx;  /* position in the topic's subscriber array */
    void *pending; /* session's pending "subscribed" reply, NULL once active */
} gw_sub_t;

typedef struct {
    /* Sends (P)SUBSCRIBE or (P)UNSUBSCRIBE for n names; returns 0 when sent, -1 when the
     * link is down (the hub retries everything on gw_hub_on_link_up). */
    int (*redis_cmd)(void *ud, bool subscribe, bool pattern, const char *const *names,
                     const size_t *lens, size_t n);
    /* One message for one subscription. */
    void (*deliver)(void *ud, gw_sub_t *sub, gw_msg_t *m);
    /* sub->pending is set and the topic just became active in Redis. */
    void (*sub_active)(void *ud, gw_sub_t *sub);
    /* After a reconnect, every topic is active again: tell sessions to resync. */
    void (*resync)(void *ud);
} gw_hub_ops_t;

gw_hub_t *gw_hub_new(const gw_hub_ops_t *ops, void *ud);
/* Frees all topics. Every sub must have been unsubscribed before. NULL-safe. */
void gw_hub_free(gw_hub_t *h);

/* Adds a subscription of session s to name (a pattern when it has glob metacharacters).
 * *active tells whether Redis already delivers it. */
gw_sub_t *gw_hub_subscribe(gw_hub_t *h, struct gw_session *s, const char *name, size_t len,
                           bool *active);
void gw_hub_unsubscribe(gw_hub_t *h, gw_sub_t *sub);

const char *gw_sub_name(const gw_sub_t *sub, size_t *len);
bool gw_sub_is_pattern(const gw_sub_t *sub);

/* Events from the Redis link. */
/* rx_us / rx_unix_us: when it arrived, on the monotonic and the wall clock (msg.h). */
void gw_hub_on_message(gw_hub_t *h, const char *chan, size_t chlen, const char *pattern,
                       size_t plen, const char *data, size_t dlen, uint64_t rx_us,
                       uint64_t rx_unix_us);
void gw_hub_on_confirm(gw_hub_t *h, bool subscribe, bool pattern, const char *name, size_t len);
void gw_hub_on_link_up(gw_hub_t *h);
void gw_hub_on_link_down(gw_hub_t *h);

size_t gw_hub_topic_count(const gw_hub_t *h);

/* Distinct patterns the node holds (or is subscribing to) on Redis: each one is matched
 * against every PUBLISH on that Redis, by every service using it (MAX_REDIS_PATTERNS). */
size_t gw_hub_pattern_count(const gw_hub_t *h);

/* Whether some session already holds name (a new subscription to it costs Redis nothing). */
bool gw_hub_has_topic(const gw_hub_t *h, const char *name, size_t len);

#endif

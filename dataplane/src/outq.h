/* outq.h - one connection's outbound queue: frames waiting for the socket, in seq
 * order, bounded in bytes, with the slow-consumer policies in O(1) amortised time per
 * message, whatever the queue holds.
 *
 * Control frames (replies, errors, greetings) and data messages wait in two rings that
 * are merged by seq when written, so dropping the oldest data message never scans past
 * a control frame at the head. Under `conflate`, a table from channel to its newest
 * queued message tells, as each message is queued, which one it supersedes; superseded
 * messages are remembered in order, and when the queue is over its bound they go first,
 * oldest first, each becoming a hole in the data ring (skipped when writing, compacted
 * away once holes outnumber live entries). Only then are the oldest messages dropped,
 * so a quiet channel's one message outlives a busy channel's backlog.
 *
 * Every queued byte counts (GW_OUTQ_COST per frame), control frames included. Control
 * frames are never dropped: when they alone keep the queue over its bound, dropping
 * cannot help, and the owner closes the connection (gw_outq_bytes() tells).
 *
 * Ownership: the queue holds one reference per queued frame; gw_outq_clear() drops them
 * all and frees the queue's storage (the struct itself is the owner's).
 */
#ifndef GW_OUTQ_H
#define GW_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* Bytes a queued frame is charged: its text plus room for the seq and frame header. */
#define GW_OUTQ_COST(m) ((size_t)(m)->len + 32)

typedef enum {
    GW_SHED_NONE,     /* never drop: the owner closes when over (the `close` policy) */
    GW_SHED_DROP,     /* drop the oldest data messages, never the newest */
    GW_SHED_CONFLATE, /* replace each channel's queued message with its newest, then drop */
} gw_shed_t;

typedef struct {
    gw_msg_t *m; /* NULL: a hole left by conflation */
    uint64_t seq;
} gw_qent_t;

typedef struct {
    gw_qent_t *v;
    uint32_t cap, head, len; /* cap is 0 or a power of two */
} gw_qring_t;

struct gw_chanmap;

typedef struct {
    uint64_t *v;
    uint32_t cap, head, len;
} gw_absring_t;

typedef struct {
    gw_qring_t ctl, data;
    uint32_t holes;          /* holes in data */
    uint64_t data_base;      /* absolute index of data's head entry */
    size_t bytes;            /* charged bytes of the live frames */
    struct gw_chanmap *map;  /* conflate: channel -> its newest queued message */
    gw_absring_t superseded; /* conflate: absolute indexes, oldest supersession first */
} gw_outq_t;

/* What one push shed. */
typedef struct {
    uint32_t dropped;   /* oldest data messages dropped */
    uint32_t conflated; /* messages replaced by a newer one of their channel */
} gw_shed_count_t;

/* Queues m (taking a reference) with its seq, then sheds data messages per policy
 * until the queue fits in limit bytes, or only control frames and the newest message
 * are left. seq must grow from one push to the next. */
void gw_outq_push(gw_outq_t *q, gw_msg_t *m, uint64_t seq, gw_shed_t policy, size_t limit,
                  gw_shed_count_t *shed);

/* Bytes of the distinct frames all queues hold (each frame once, however many queues
 * share it), the node-wide measure NODE_QUEUE_BYTES bounds. One loop thread. */
size_t gw_outq_retained(void);

/* Live frames queued, and their charged bytes. */
size_t gw_outq_frames(const gw_outq_t *q);
size_t gw_outq_bytes(const gw_outq_t *q);

/* Encodes queued frames, oldest seq first, as complete WebSocket frames into out (up to
 * cap bytes and maxf frames) without removing them; ends[i] receives the offset just
 * past frame i. Returns the number of frames encoded: 0 with *need set when the oldest
 * frame alone needs more than cap. Encoding is deterministic, so frames not sent this
 * time encode identically next time. */
size_t gw_outq_peek(const gw_outq_t *q, unsigned char *out, size_t cap, size_t *ends, size_t maxf,
                    size_t *need);

/* Removes the n oldest frames (they were handed to the socket), calling each(m, ud) for
 * every one before it is released. */
void gw_outq_consume(gw_outq_t *q, size_t n, void (*each)(const gw_msg_t *m, void *ud), void *ud);

/* Drops every frame and frees the storage; the queue is empty and usable after. */
void gw_outq_clear(gw_outq_t *q);

#endif

/* msg.h - an outbound frame, encoded once and shared by every recipient.
 *
 * A gw_msg_t holds the frame's JSON text up to, not including, the per-connection
 * sequence number: `{"type":"message",...,"seq":`. The writer appends the digits and `}`
 * behind its own WebSocket header, so per client only `seq` and the frame header differ.
 *
 * A Redis message has a second envelope for legacy-dialect clients (legacy.h), derived
 * from the first on its first legacy delivery and then shared the same way, so either
 * dialect costs one encoding per message, never one per client.
 *
 * Ownership: constructors return a message with one reference, owned by the caller.
 * Every queue that holds it takes gw_msg_ref() and drops it with gw_msg_unref(); the
 * last unref frees it. A message holds one reference to its legacy envelope until
 * gw_msg_drop_legacy() (the hub calls it once the fan-out is over, so that v1 queues
 * never keep a legacy envelope alive). Single-threaded (the event loop owns all
 * messages).
 */
#ifndef GW_MSG_H
#define GW_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct gw_msg {
    uint32_t refcnt;
    uint32_t qrefs;            /* outbound queues holding it (outq.c's retained bytes) */
    uint32_t len;              /* bytes of text in data[] before the seq digits */
    uint32_t chan_len;         /* the channel: conflation key and ACL subject (data only) */
    uint32_t chan_hash;        /* gw_hash of the channel, to compare keys cheaply */
    uint64_t rx_us;            /* monotonic time it arrived from Redis, 0 for control frames */
    uint64_t rx_unix_us;       /* wall-clock time it arrived: the legacy envelope's timestamp */
    struct gw_msg *legacy;     /* the legacy envelope, once built; owned (one reference) */
    uint32_t pat_off, pat_len; /* the pattern's JSON text in data[]; pat_len 0: none */
    uint32_t data_off;         /* where the "data" value starts in data[] */
    bool data_is_string;       /* the payload was not JSON and is embedded as a string */
    bool is_data;              /* a Redis message (droppable), not a control frame */
    const void *acl_key[2];    /* the last ACLs this channel was checked against, and */
    uint8_t acl_ok[2];         /* the verdicts: one check per (message, ACL), not per client */
    const char *chan;          /* the raw channel name, stored after the text */
    char data[];
} gw_msg_t;

#define GW_WS_HDR_MAX 10 /* largest unmasked server frame header */
#define GW_SEQ_MAX    20 /* digits of a uint64 */

/* Builds the envelope of a Redis message. `pattern` is NULL for exact subscriptions.
 * `data` is embedded verbatim when it is valid JSON, as a JSON string otherwise.
 * rx_us: monotonic receive time (delivery lag); rx_unix_us: the same instant on the
 * wall clock (the legacy timestamp). */
gw_msg_t *gw_msg_new_message(const char *chan, size_t chlen, const char *pattern, size_t plen,
                             const char *data, size_t dlen, uint64_t rx_us, uint64_t rx_unix_us);

/* The legacy envelope of a Redis message m (built on the first call, then cached in m):
 * {"type":"data","channel":..,"pattern":..|null,"data":..,"timestamp":"..","seq":
 * where a payload that is not JSON becomes {"raw":"<text>"}. The result is owned by m:
 * take a reference to keep it. */
gw_msg_t *gw_msg_legacy(gw_msg_t *m);

/* Releases m's reference to its legacy envelope, if it has one. */
void gw_msg_drop_legacy(gw_msg_t *m);

/* Takes a control frame's text from b, `{"type":...` up to its last field, and appends
 * `,"seq":`; b is left empty. */
gw_msg_t *gw_msg_new_control(gw_buf_t *b);

static inline gw_msg_t *gw_msg_ref(gw_msg_t *m)
{
    m->refcnt++;
    return m;
}

void gw_msg_unref(gw_msg_t *m);

/* Bytes on the wire for m sent with this seq: header + text + digits + `}`. */
size_t gw_msg_wire_len(const gw_msg_t *m, uint64_t seq);

/* Writes the whole WebSocket text frame (unmasked, FIN) to out, which must have room for
 * gw_msg_wire_len() bytes. Returns the bytes written. */
size_t gw_msg_write_frame(const gw_msg_t *m, uint64_t seq, unsigned char *out);

#endif

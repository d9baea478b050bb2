/* session.h - one WebSocket client: its sequence numbers, subscriptions, bounded
 * outbound queue and slow-consumer policy. Transport-agnostic: the server module wires
 * env->want_write / env->close to libwebsockets, unit tests to a fake.
 *
 * Sequence numbers: every frame addressed to the client takes the next seq when it is
 * queued, so a frame dropped later (drop or conflate policy) leaves a visible gap.
 *
 * Ownership: gw_session_new() returns a session owned by the transport, which must call
 * gw_session_free() exactly once (it unsubscribes everything and drops the queue).
 * Queued messages hold one reference each.
 */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "hub.h"
#include "msg.h"
#include "outq.h"
#include "ratelimit.h"

typedef struct gw_session gw_session_t;

typedef struct {
    gw_hub_t *hub;
    const gw_config_t *cfg;
    gw_auth_t *auth;
    gw_roles_t *roles; /* the current table; sessions hold a reference to the one they use */
    void (*want_write)(gw_session_t *s);
    /* Close after the queue is flushed; never re-enters the hub. */
    void (*close)(gw_session_t *s, int code, const char *reason);
    uint64_t (*now_us)(void);  /* monotonic, for rate limits and timeouts */
    int64_t (*now_unix)(void); /* wall clock, for token expiry */
    /* Optional: a credential of s was refused (the transport knows the client's address:
     * it throttles it and summarises failures in the log), and whether its address may
     * still try (when not, a credential is refused as throttled without being checked). */
    void (*auth_failed)(gw_session_t *s, gw_auth_result_t r);
    bool (*auth_allowed)(gw_session_t *s);
    /* Optional: all queues together hold more than NODE_QUEUE_BYTES (gw_outq_retained);
     * the transport closes the largest (gw_session_close_overloaded) before long. */
    void (*over_budget)(gw_session_t *s);
} gw_session_env_t;

typedef enum {
    GW_SESS_PENDING, /* REQUIRE_AUTH: only an auth frame is accepted */
    GW_SESS_ANON,    /* no credential: DEFAULT_ROLE */
    GW_SESS_AUTHED,  /* authenticated by API key or JWT */
} gw_sess_auth_t;

struct gw_ack; /* a "subscribed" reply waiting for Redis to confirm */

struct gw_session {
    const gw_session_env_t *env;
    void *conn;                /* transport handle */
    gw_session_t *prev, *next; /* the server's list of sessions */
    gw_session_t *flush_next;  /* the server's list of sessions to write this loop turn */
    bool in_flush;
    char id[24];
    uint64_t seq;    /* last seq assigned */
    uint8_t dialect; /* gw_dialect_t: fixed by CLIENT_PROTOCOL or by the first frame */

    gw_outq_t q;

    gw_sub_t **subs;
    uint32_t nsubs, subscap, nwild;
    struct gw_ack *acks;

    /* access: who the client is and what it may do */
    uint8_t auth; /* gw_sess_auth_t */
    bool expiring_sent;
    const gw_role_t *role;
    gw_roles_t *roles; /* reference to the table role lives in */
    gw_acl_t *acl;
    int64_t expires;  /* unix seconds the credential stops being valid; 0 = never */
    uint64_t jwt_gen; /* gw_auth_jwt_generation() when a JWT let it in */
    uint64_t auth_deadline_us;
    char key_id[64];
    gw_bucket_t bucket;
    uint32_t strikes; /* rate-limited frames in a row */

    gw_buf_t rx; /* fragments of the client message being reassembled */
    bool rx_binary;
    bool closing;    /* no more frames are queued; close after the queue drains */
    bool close_sent; /* our close frame has been written */
    uint16_t close_code;
};

gw_session_t *gw_session_new(const gw_session_env_t *env, void *conn, uint64_t serial);

/* Starts the session with the credentials of the upgrade request (either may be NULL):
 * authenticates, or waits for an auth frame (REQUIRE_AUTH), or takes DEFAULT_ROLE; then
 * greets the client (v1 "welcome", legacy "connected"). A refused credential gets
 * auth_failed and close 4401 (legacy: close 1008) under REQUIRE_AUTH; without it the
 * client was not obliged to present one, and is served with DEFAULT_ROLE. */
void gw_session_start(gw_session_t *s, const char *token, const char *api_key);

/* Periodic: enforces AUTH_TIMEOUT_MS and credential expiry (auth_expiring, then 4401). */
void gw_session_tick(gw_session_t *s);

/* The node's roles, keys or settings changed (env->roles and env->auth hold the new
 * ones): re-evaluate this session against them. A deleted role or a revoked or expired
 * key closes it with 4403; an anonymous session once REQUIRE_AUTH is on, or one let in
 * by a JWT whose key, issuer or audience changed since, with 4401 (it reconnects with a
 * credential that passes now); subscriptions the new ACL forbids are removed with
 * {"type":"unsubscribed",...,"reason":"acl_changed"}. */
void gw_session_reauthorize(gw_session_t *s);
void gw_session_free(gw_session_t *s);

/* Queues m (taking a reference) with the next seq and applies the slow-consumer policy.
 * Data messages (m->is_data) may be dropped or conflated; control frames never are.
 * Every byte counts against SLOW_CLIENT_QUEUE_BYTES: a connection still over it once
 * dropping cannot help (the close policy, or control frames a client does not read) is
 * closed with 1013. */
void gw_session_send(gw_session_t *s, gw_msg_t *m);

/* Closes s with 1013 and frees its queue at once: the node's queues together are over
 * NODE_QUEUE_BYTES and this is one of the largest. */
void gw_session_close_overloaded(gw_session_t *s);

/* Frames and charged bytes waiting for the socket. */
size_t gw_session_queued(const gw_session_t *s);
size_t gw_session_queued_bytes(const gw_session_t *s);

/* Handles one complete client message. */
void gw_session_on_message(gw_session_t *s, const char *buf, size_t len, bool binary);

/* Handles a client fragment: reassembles up to cfg->max_frame_bytes (returns -1 when the
 * message is too big: the caller closes with 1009). */
int gw_session_on_fragment(gw_session_t *s, const char *buf, size_t len, bool first, bool final,
                           bool binary);

/* Queues the too_large error that precedes a 1009 close. */
void gw_session_reject_too_large(gw_session_t *s);

/* Encodes queued frames, oldest first, as complete WebSocket frames into out (up to cap
 * bytes and maxf frames) without removing them; ends[i] receives the offset just past
 * frame i. Returns the number of frames encoded: 0 with *need set when the oldest frame
 * alone needs more than cap. Encoding is deterministic, so frames not sent this time
 * encode identically next time. */
size_t gw_session_peek(gw_session_t *s, unsigned char *out, size_t cap, size_t *ends, size_t maxf,
                       size_t *need);

/* Removes the n oldest frames: they have been handed to the socket. */
void gw_session_consume(gw_session_t *s, size_t n);

/* peek + consume of everything that fits: returns the bytes written to out. */
size_t gw_session_fill(gw_session_t *s, unsigned char *out, size_t cap, size_t *need);

/* Hub callbacks. */
/* Hub callbacks, with the gw_hub_ops_t signatures so they plug in directly (ud unused). */
void gw_session_deliver(void *ud, gw_sub_t *sub, gw_msg_t *m);
void gw_session_sub_active(void *ud, gw_sub_t *sub);

#endif

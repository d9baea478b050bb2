/* cplink.h - the data plane's link to the control plane: one gRPC thread keeps the
 * ControlPlane.Connect stream open (reconnecting with capped, jittered backoff), hands
 * every pushed snapshot to the event loop, and sends what the loop gives it (ACK/NACK,
 * stats) on the same stream.
 *
 * Threads: only gw_cplink_start/send/stop and the callbacks run on the loop thread; the
 * gRPC thread touches the loop only through uv_async_send. Hand-off is a mutex-guarded
 * mailbox that keeps only the newest snapshot (an older one is never worth applying).
 *
 * Ownership: gw_cplink_start() returns a link owned by the caller; gw_cplink_stop()
 * ends the stream, joins the thread and calls done(ud) on the loop when the link is
 * freed.
 */
#ifndef GW_CPLINK_H
#define GW_CPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
    const char *target; /* host:port */
    const char *token;  /* CONTROL_NODE_TOKEN */
    const char *node_id, *address, *build;
    const char *tls_ca;   /* PEM file path, or "": plaintext */
    const char *tls_cert; /* client certificate for mTLS, or "" */
    const char *tls_key;
} gw_cplink_opts_t;

/* A pushed snapshot (packed wsgw.control.v1.Snapshot), on the loop thread. The callee
 * answers with gw_cplink_ack() or gw_cplink_nack() for the nonce. */
typedef void (*gw_cplink_snapshot_cb)(void *ud, const uint8_t *data, size_t len, const char *nonce);

typedef struct gw_cplink gw_cplink_t;

/* held_digest: SHA-256 of the snapshot held (as packed when pushed), or NULL for none. */
gw_cplink_t *gw_cplink_start(uv_loop_t *loop, const gw_cplink_opts_t *o, uint64_t held_version,
                             const char *held_epoch, const unsigned char *held_digest,
                             gw_cplink_snapshot_cb cb, void *ud);

void gw_cplink_ack(gw_cplink_t *l, uint64_t version, const char *epoch,
                   const unsigned char digest[32], const char *nonce);
void gw_cplink_nack(gw_cplink_t *l, uint64_t kept, uint64_t rejected, const char *nonce,
                    const char *error);
/* Sends a packed NodeStats. */
void gw_cplink_report(gw_cplink_t *l, const uint8_t *stats, size_t len);

bool gw_cplink_connected(const gw_cplink_t *l);

void gw_cplink_stop(gw_cplink_t *l, void (*done)(void *ud), void *ud);

#endif

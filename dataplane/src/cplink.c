#include "cplink.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pb.h"
#include "wsgw/control/v1/control.pb-c.h"

#define SUBSYS "cplink"

typedef enum { T_WAKE, T_START, T_RECV, T_SEND, T_STATUS } tag_kind_t;

typedef struct {
    tag_kind_t kind;
} tag_t;

typedef struct outmsg {
    struct outmsg *next;
    grpc_byte_buffer *bb;
} outmsg_t;

struct gw_cplink {
    /* set at start, read-only afterwards */
    gw_cplink_opts_t o;
    char *target, *token, *node_id, *address, *build;
    uv_loop_t *loop;
    uv_async_t async;
    gw_cplink_snapshot_cb cb;
    void *ud;
    void (*done)(void *);
    void *done_ud;
    pthread_t thread;

    /* the mailbox, both directions, under mu */
    pthread_mutex_t mu;
    outmsg_t *out_head, *out_tail; /* loop -> thread */
    bool stop;
    uint64_t held_version;
    char held_epoch[64];
    unsigned char held_digest[32];
    uint8_t *snap; /* thread -> loop: the newest snapshot only */
    size_t snap_len;
    char snap_nonce[32];
    bool finished;
    bool wake_armed, wake_closed;
    atomic_int connected;

    /* gRPC thread only */
    grpc_completion_queue *cq;
    grpc_channel *ch, *lame;
    grpc_call *wake, *call;
    int pending; /* batches in flight on call */
    outmsg_t *send_head, *send_tail;
    grpc_byte_buffer *sending, *recv_buf;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice status_details;
    grpc_metadata auth_md;
    long backoff_ms;
    int64_t retry_at_ms;
    tag_t t_wake, t_start, t_recv, t_send, t_status;
};

static int64_t mono_ms(void)
{
    gpr_timespec t = gpr_now(GPR_CLOCK_MONOTONIC);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*------------------------------------------------------------------------------
 * Loop side */

/* Under mu: queue a message for the gRPC thread and wake it (empty batch on a dummy call
 * bound to its queue: the core's only cross-thread wake-up). */
static void post_locked(gw_cplink_t *l, grpc_byte_buffer *bb)
{
    if (bb) {
        outmsg_t *m = gw_xcalloc(1, sizeof *m);
        m->bb = bb;
        if (l->out_tail)
            l->out_tail->next = m;
        else
            l->out_head = m;
        l->out_tail = m;
    }
    if (!l->wake_armed && !l->wake_closed &&
        grpc_call_start_batch(l->wake, NULL, 0, &l->t_wake, NULL) == GRPC_CALL_OK)
        l->wake_armed = true;
}

static void post(gw_cplink_t *l, const ProtobufCMessage *m)
{
    grpc_byte_buffer *bb = pb_to_bb(m);
    pthread_mutex_lock(&l->mu);
    if (l->wake_closed)
        grpc_byte_buffer_destroy(bb);
    else
        post_locked(l, bb);
    pthread_mutex_unlock(&l->mu);
}

void gw_cplink_ack(gw_cplink_t *l, uint64_t version, const char *epoch,
                   const unsigned char digest[32], const char *nonce)
{
    pthread_mutex_lock(&l->mu);
    l->held_version = version;
    snprintf(l->held_epoch, sizeof l->held_epoch, "%s", epoch);
    memcpy(l->held_digest, digest, 32);
    pthread_mutex_unlock(&l->mu);
    Wsgw__Control__V1__Ack a = WSGW__CONTROL__V1__ACK__INIT;
    a.version = version;
    a.nonce = (char *)nonce;
    Wsgw__Control__V1__NodeMessage m = WSGW__CONTROL__V1__NODE_MESSAGE__INIT;
    m.msg_case = WSGW__CONTROL__V1__NODE_MESSAGE__MSG_ACK;
    m.ack = &a;
    post(l, &m.base);
}

void gw_cplink_nack(gw_cplink_t *l, uint64_t kept, uint64_t rejected, const char *nonce,
                    const char *error)
{
    Wsgw__Control__V1__Nack n = WSGW__CONTROL__V1__NACK__INIT;
    n.version_kept = kept;
    n.rejected_version = rejected;
    n.nonce = (char *)nonce;
    n.error_detail = (char *)error;
    Wsgw__Control__V1__NodeMessage m = WSGW__CONTROL__V1__NODE_MESSAGE__INIT;
    m.msg_case = WSGW__CONTROL__V1__NODE_MESSAGE__MSG_NACK;
    m.nack = &n;
    post(l, &m.base);
}

void gw_cplink_report(gw_cplink_t *l, const uint8_t *stats, size_t len)
{
    Wsgw__Control__V1__NodeStats *st = wsgw__control__v1__node_stats__unpack(NULL, len, stats);
    if (!st) return;
    Wsgw__Control__V1__NodeMessage m = WSGW__CONTROL__V1__NODE_MESSAGE__INIT;
    m.msg_case = WSGW__CONTROL__V1__NODE_MESSAGE__MSG_STATS;
    m.stats = st;
    post(l, &m.base);
    wsgw__control__v1__node_stats__free_unpacked(st, NULL);
}

bool gw_cplink_connected(const gw_cplink_t *l)
{
    return atomic_load(&((gw_cplink_t *)l)->connected) != 0;
}

static void free_link(gw_cplink_t *l)
{
    for (outmsg_t *m = l->out_head, *n; m; m = n) {
        n = m->next;
        grpc_byte_buffer_destroy(m->bb);
        free(m);
    }
    free(l->snap);
    free(l->target);
    free(l->token);
    free(l->node_id);
    free(l->address);
    free(l->build);
    pthread_mutex_destroy(&l->mu);
    void (*done)(void *) = l->done;
    void *ud = l->done_ud;
    free(l);
    if (done) done(ud);
}

static void on_async_closed(uv_handle_t *h)
{
    free_link(h->data);
}

static void on_async(uv_async_t *h)
{
    gw_cplink_t *l = h->data;
    pthread_mutex_lock(&l->mu);
    uint8_t *snap = l->snap;
    size_t len = l->snap_len;
    char nonce[32];
    snprintf(nonce, sizeof nonce, "%s", l->snap_nonce);
    l->snap = NULL;
    bool finished = l->finished;
    pthread_mutex_unlock(&l->mu);
    if (snap && !finished) l->cb(l->ud, snap, len, nonce);
    free(snap);
    if (finished) {
        /* The thread's last act was this uv_async_send: join, then close the handle. */
        pthread_join(l->thread, NULL);
        uv_close((uv_handle_t *)&l->async, on_async_closed);
    }
}

/*------------------------------------------------------------------------------
 * gRPC thread */

static bool start(gw_cplink_t *l, grpc_op *ops, size_t n, tag_t *t)
{
    if (grpc_call_start_batch(l->call, ops, n, t, NULL) != GRPC_CALL_OK) return false;
    l->pending++;
    return true;
}

static void try_send(gw_cplink_t *l)
{
    if (!l->call || l->sending || !l->send_head) return;
    outmsg_t *m = l->send_head;
    l->send_head = m->next;
    if (!l->send_head) l->send_tail = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = m->bb;
    if (start(l, &op, 1, &l->t_send))
        l->sending = m->bb;
    else
        grpc_byte_buffer_destroy(m->bb);
    free(m);
}

static void queue_send(gw_cplink_t *l, grpc_byte_buffer *bb, bool front)
{
    outmsg_t *m = gw_xcalloc(1, sizeof *m);
    m->bb = bb;
    if (front) {
        m->next = l->send_head;
        l->send_head = m;
        if (!l->send_tail) l->send_tail = m;
    } else {
        if (l->send_tail)
            l->send_tail->next = m;
        else
            l->send_head = m;
        l->send_tail = m;
    }
}

static void drop_sends(gw_cplink_t *l)
{
    for (outmsg_t *m = l->send_head, *n; m; m = n) {
        n = m->next;
        grpc_byte_buffer_destroy(m->bb);
        free(m);
    }
    l->send_head = l->send_tail = NULL;
}

static void arm_recv(gw_cplink_t *l)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &l->recv_buf;
    start(l, &op, 1, &l->t_recv);
}

static void start_call(gw_cplink_t *l)
{
    l->call = grpc_channel_create_call(
        l->ch, NULL, GRPC_PROPAGATE_DEFAULTS, l->cq,
        grpc_slice_from_static_string("/wsgw.control.v1.ControlPlane/Connect"), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&l->init_md);
    grpc_metadata_array_init(&l->trail_md);
    l->status_details = grpc_empty_slice();
    l->pending = 0;

    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &l->auth_md;
    ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &l->init_md;
    start(l, ops, 2, &l->t_start);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &l->trail_md;
    ops[0].data.recv_status_on_client.status = &l->status;
    ops[0].data.recv_status_on_client.status_details = &l->status_details;
    start(l, ops, 1, &l->t_status);
    arm_recv(l);

    /* The hello goes first on every new stream, with what this node holds now. */
    Wsgw__Control__V1__NodeHello h = WSGW__CONTROL__V1__NODE_HELLO__INIT;
    pthread_mutex_lock(&l->mu);
    char epoch[64];
    unsigned char digest[32];
    snprintf(epoch, sizeof epoch, "%s", l->held_epoch);
    memcpy(digest, l->held_digest, sizeof digest);
    h.config_version = l->held_version;
    pthread_mutex_unlock(&l->mu);
    if (h.config_version) {
        h.config_digest.data = digest;
        h.config_digest.len = sizeof digest;
    }
    h.node_id = l->node_id;
    h.address = l->address;
    h.build_version = l->build;
    h.config_epoch = epoch;
    Wsgw__Control__V1__NodeMessage m = WSGW__CONTROL__V1__NODE_MESSAGE__INIT;
    m.msg_case = WSGW__CONTROL__V1__NODE_MESSAGE__MSG_HELLO;
    m.hello = &h;
    drop_sends(l); /* acks and stats for a dead stream are stale */
    queue_send(l, pb_to_bb(&m.base), true);
    try_send(l);
}

static void call_done_maybe(gw_cplink_t *l)
{
    if (!l->call || l->pending) return;
    grpc_call_unref(l->call);
    l->call = NULL;
    grpc_metadata_array_destroy(&l->init_md);
    grpc_metadata_array_destroy(&l->trail_md);
    grpc_slice_unref(l->status_details);
    if (l->recv_buf) grpc_byte_buffer_destroy(l->recv_buf);
    l->recv_buf = NULL;
    /* Jittered backoff: 100 ms doubling to 5 s, +-20 %. */
    long d = l->backoff_ms;
    d = d * 8 / 10 + (long)(random() % (d * 4 / 10 + 1));
    l->retry_at_ms = mono_ms() + d;
    l->backoff_ms = l->backoff_ms * 2 > 5000 ? 5000 : l->backoff_ms * 2;
}

static void on_recv(gw_cplink_t *l)
{
    grpc_byte_buffer *bb = l->recv_buf;
    l->recv_buf = NULL;
    if (!bb) return; /* the stream is over: the status tag follows */
    Wsgw__Control__V1__ControlMessage *m = (Wsgw__Control__V1__ControlMessage *)pb_from_bb(
        &wsgw__control__v1__control_message__descriptor, bb);
    grpc_byte_buffer_destroy(bb);
    if (m && m->msg_case == WSGW__CONTROL__V1__CONTROL_MESSAGE__MSG_PUSH && m->push->snapshot) {
        size_t n = wsgw__control__v1__snapshot__get_packed_size(m->push->snapshot);
        uint8_t *data = gw_xmalloc(n ? n : 1);
        wsgw__control__v1__snapshot__pack(m->push->snapshot, data);
        pthread_mutex_lock(&l->mu);
        free(l->snap); /* an unapplied older snapshot is superseded */
        l->snap = data;
        l->snap_len = n;
        snprintf(l->snap_nonce, sizeof l->snap_nonce, "%s", m->push->nonce);
        pthread_mutex_unlock(&l->mu);
        uv_async_send(&l->async);
        l->backoff_ms = 100;
    }
    if (m) protobuf_c_message_free_unpacked(&m->base, NULL);
    arm_recv(l);
}

static void on_wake(gw_cplink_t *l, bool *stop)
{
    pthread_mutex_lock(&l->mu);
    l->wake_armed = false;
    outmsg_t *in = l->out_head;
    l->out_head = l->out_tail = NULL;
    *stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    for (outmsg_t *m = in, *n; m; m = n) {
        n = m->next;
        if (l->call && !*stop) {
            queue_send(l, m->bb, false);
        } else {
            grpc_byte_buffer_destroy(m->bb);
        }
        free(m);
    }
    try_send(l);
}

static void *thread_main(void *arg)
{
    gw_cplink_t *l = arg;
    bool stop = false;
    l->retry_at_ms = 0;
    while (!stop || l->call) {
        int64_t now = mono_ms();
        if (!stop && !l->call && now >= l->retry_at_ms) start_call(l);
        int64_t wait = l->call ? 1000 : l->retry_at_ms - now;
        if (wait < 0) wait = 0;
        grpc_event ev = grpc_completion_queue_next(
            l->cq,
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait, GPR_TIMESPAN)),
            NULL);
        if (ev.type != GRPC_OP_COMPLETE) continue;
        tag_t *t = ev.tag;
        switch (t->kind) {
        case T_WAKE:
            on_wake(l, &stop);
            if (stop && l->call) grpc_call_cancel(l->call, NULL);
            continue;
        case T_START:
            l->pending--;
            if (ev.success) {
                atomic_store(&l->connected, 1);
                GW_LOG(GW_LOG_NOTICE, SUBSYS, "connected", "target=%s", l->target);
            }
            break;
        case T_RECV:
            l->pending--;
            if (ev.success && !stop) on_recv(l);
            break;
        case T_SEND:
            l->pending--;
            grpc_byte_buffer_destroy(l->sending);
            l->sending = NULL;
            if (ev.success && !stop) try_send(l);
            break;
        case T_STATUS: {
            l->pending--;
            atomic_store(&l->connected, 0);
            char *d = grpc_slice_to_c_string(l->status_details);
            GW_LOG(stop ? GW_LOG_INFO : GW_LOG_WARN, SUBSYS, "stream_ended",
                   "status=%d detail=\"%s\"", l->status, d);
            gpr_free(d);
            drop_sends(l);
            break;
        }
        }
        call_done_maybe(l);
    }
    /* Shut down: no more wakes, drain the queue, then tell the loop (last act). */
    pthread_mutex_lock(&l->mu);
    l->wake_closed = true;
    pthread_mutex_unlock(&l->mu);
    drop_sends(l);
    grpc_completion_queue_shutdown(l->cq);
    while (grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_call_unref(l->wake);
    grpc_channel_destroy(l->lame);
    grpc_channel_destroy(l->ch);
    grpc_completion_queue_destroy(l->cq);
    grpc_slice_unref(l->auth_md.key);
    grpc_slice_unref(l->auth_md.value);
    pthread_mutex_lock(&l->mu);
    l->finished = true;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->async);
    return NULL;
}

static grpc_channel_credentials *make_creds(const gw_cplink_opts_t *o)
{
    if (!o->tls_ca || !o->tls_ca[0]) return grpc_insecure_credentials_create();
    gw_buf_t ca = GW_BUF_INIT, cert = GW_BUF_INIT, key = GW_BUF_INIT;
    grpc_channel_credentials *c = NULL;
    bool mtls = o->tls_cert && o->tls_cert[0];
    if (gw_buf_read_file(&ca, o->tls_ca, 1 << 20) == 0 &&
        (!mtls || (gw_buf_read_file(&cert, o->tls_cert, 1 << 20) == 0 &&
                   gw_buf_read_file(&key, o->tls_key, 1 << 20) == 0))) {
        grpc_ssl_pem_key_cert_pair pair = {key.data, cert.data};
        c = grpc_ssl_credentials_create_ex(ca.data, mtls ? &pair : NULL, NULL, NULL);
    }
    if (key.data) memset(key.data, 0, key.len);
    gw_buf_free(&ca);
    gw_buf_free(&cert);
    gw_buf_free(&key);
    return c;
}

gw_cplink_t *gw_cplink_start(uv_loop_t *loop, const gw_cplink_opts_t *o, uint64_t held_version,
                             const char *held_epoch, const unsigned char *held_digest,
                             gw_cplink_snapshot_cb cb, void *ud)
{
    grpc_channel_credentials *creds = make_creds(o);
    if (!creds) {
        GW_LOG(GW_LOG_ERROR, SUBSYS, "bad_tls",
               "settings=CONTROL_TLS_CA,CONTROL_TLS_CLIENT_CERT,CONTROL_TLS_CLIENT_KEY");
        return NULL;
    }
    gw_cplink_t *l = gw_xcalloc(1, sizeof *l);
    l->target = gw_xstrdup(o->target);
    l->token = gw_xstrdup(o->token);
    l->node_id = gw_xstrdup(o->node_id);
    l->address = gw_xstrdup(o->address);
    l->build = gw_xstrdup(o->build);
    l->loop = loop;
    l->cb = cb;
    l->ud = ud;
    l->held_version = held_version;
    snprintf(l->held_epoch, sizeof l->held_epoch, "%s", held_epoch ? held_epoch : "");
    if (held_digest) memcpy(l->held_digest, held_digest, sizeof l->held_digest);
    l->backoff_ms = 100;
    l->t_wake.kind = T_WAKE;
    l->t_start.kind = T_START;
    l->t_recv.kind = T_RECV;
    l->t_send.kind = T_SEND;
    l->t_status.kind = T_STATUS;
    pthread_mutex_init(&l->mu, NULL);
    gw_buf_t bearer = GW_BUF_INIT;
    gw_buf_printf(&bearer, "Bearer %s", o->token);
    l->auth_md.key = grpc_slice_from_static_string("authorization");
    l->auth_md.value = grpc_slice_from_copied_string(bearer.data);
    gw_buf_free(&bearer);

    l->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_arg a[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 2000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 20000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = 64 << 20}},
    };
    grpc_channel_args ca = {sizeof a / sizeof a[0], a};
    l->ch = grpc_channel_create(o->target, creds, &ca);
    grpc_channel_credentials_release(creds);
    l->lame = grpc_lame_client_channel_create(NULL, GRPC_STATUS_UNAVAILABLE, "wake");
    l->wake = grpc_channel_create_call(l->lame, NULL, GRPC_PROPAGATE_DEFAULTS, l->cq,
                                       grpc_slice_from_static_string("/wake"), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    uv_async_init(loop, &l->async, on_async);
    l->async.data = l;
    pthread_create(&l->thread, NULL, thread_main, l);
    return l;
}

void gw_cplink_stop(gw_cplink_t *l, void (*done)(void *ud), void *ud)
{
    pthread_mutex_lock(&l->mu);
    l->done = done;
    l->done_ud = ud;
    l->stop = true;
    post_locked(l, NULL);
    pthread_mutex_unlock(&l->mu);
}

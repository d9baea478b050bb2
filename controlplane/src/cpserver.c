#include "cpserver_internal.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "fleet.h"
#include "httpd.h"
#include "log.h"
#include "nodemsg.h"
#include "pb.h"

#define SUBSYS "control"

static int64_t mono_ms(void)
{
    gpr_timespec t = gpr_now(GPR_CLOCK_MONOTONIC);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t cp_wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*------------------------------------------------------------------------------
 * Unary (Admin) calls */

static void request_unary(cp_server_t *s, method_t *m)
{
    ucall_t *u = gw_xcalloc(1, sizeof *u);
    u->srv = s;
    u->m = m;
    u->t_new = (tag_t){T_UNARY_NEW, u};
    u->t_done = (tag_t){T_UNARY_DONE, u};
    grpc_metadata_array_init(&u->md);
    u->details = grpc_empty_slice();
    if (grpc_server_request_registered_call(s->admin_srv, m->registered, &u->call, &u->deadline,
                                            &u->md, &u->payload, s->cq, s->cq,
                                            &u->t_new) != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&u->md);
        free(u);
        return;
    }
    s->live++;
}

static void unary_free(ucall_t *u)
{
    if (u->reply) grpc_byte_buffer_destroy(u->reply);
    if (u->payload) grpc_byte_buffer_destroy(u->payload);
    grpc_metadata_array_destroy(&u->md);
    grpc_slice_unref(u->details);
    if (u->call) grpc_call_unref(u->call);
    u->srv->live--;
    free(u);
}

static grpc_status_code check_token(const grpc_metadata_array *md, const unsigned char hash[32],
                                    char *detail, size_t dlen)
{
    switch (pb_check_bearer(md, hash)) {
    case PB_AUTH_OK: return GRPC_STATUS_OK;
    case PB_AUTH_MISSING:
        snprintf(detail, dlen, "missing 'authorization: Bearer <token>' metadata");
        return GRPC_STATUS_UNAUTHENTICATED;
    default: snprintf(detail, dlen, "token refused"); return GRPC_STATUS_PERMISSION_DENIED;
    }
}

static void on_unary_new(ucall_t *u, bool ok)
{
    cp_server_t *s = u->srv;
    if (!ok) {
        unary_free(u);
        return;
    }
    if (!s->stopping) request_unary(s, u->m);

    char detail[512] = "";
    grpc_status_code code = check_token(&u->md, s->admin_hash, detail, sizeof detail);
    if (code == GRPC_STATUS_OK) {
        ProtobufCMessage *req = pb_from_bb(u->m->req, u->payload);
        if (!req) {
            code = GRPC_STATUS_INVALID_ARGUMENT;
            snprintf(detail, sizeof detail, "request does not decode as %s", u->m->req->name);
        } else {
            code = u->m->fn(s, req, &u->reply, detail, sizeof detail);
            protobuf_c_message_free_unpacked(req, NULL);
        }
    }
    size_t mi = (size_t)(u->m - cp_admin_methods);
    if (mi < 16 && code < CP_NCODES) s->admin_calls[mi][code]++;
    if (code != GRPC_STATUS_OK)
        GW_LOG(GW_LOG_INFO, SUBSYS, "admin_refused", "method=%s code=%d detail=\"%s\"", u->m->path,
               code, detail);
    grpc_slice_unref(u->details);
    u->details = grpc_slice_from_copied_string(detail);
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (code == GRPC_STATUS_OK && u->reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = u->reply;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &u->details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &u->cancelled;
    if (grpc_call_start_batch(u->call, ops, n, &u->t_done, NULL) != GRPC_CALL_OK) unary_free(u);
}

/*------------------------------------------------------------------------------
 * Unknown methods: UNIMPLEMENTED at once instead of hanging until the deadline */

static void request_generic(cp_server_t *s, grpc_server *gs)
{
    gcall_t *g = gw_xcalloc(1, sizeof *g);
    g->srv = s;
    g->gs = gs;
    g->t_new = (tag_t){T_GENERIC_NEW, g};
    g->t_done = (tag_t){T_GENERIC_DONE, g};
    grpc_call_details_init(&g->details);
    grpc_metadata_array_init(&g->md);
    g->status = grpc_slice_from_static_string("unknown method");
    if (grpc_server_request_call(gs, &g->call, &g->details, &g->md, s->cq, s->cq, &g->t_new) !=
        GRPC_CALL_OK) {
        grpc_call_details_destroy(&g->details);
        grpc_metadata_array_destroy(&g->md);
        free(g);
        return;
    }
    s->live++;
}

static void generic_free(gcall_t *g)
{
    grpc_call_details_destroy(&g->details);
    grpc_metadata_array_destroy(&g->md);
    if (g->call) grpc_call_unref(g->call);
    g->srv->live--;
    free(g);
}

static void on_generic_new(gcall_t *g, bool ok)
{
    if (!ok) {
        generic_free(g);
        return;
    }
    if (!g->srv->stopping) request_generic(g->srv, g->gs);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &g->status;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &g->cancelled;
    if (grpc_call_start_batch(g->call, ops, 3, &g->t_done, NULL) != GRPC_CALL_OK) generic_free(g);
}

/*------------------------------------------------------------------------------
 * ControlPlane.Connect: one stream per data plane */

static void request_stream(cp_server_t *s)
{
    stream_t *st = gw_xcalloc(1, sizeof *st);
    st->srv = s;
    st->t_new = (tag_t){T_STREAM_NEW, st};
    st->t_recv = (tag_t){T_STREAM_RECV, st};
    st->t_send = (tag_t){T_STREAM_SEND, st};
    st->t_close = (tag_t){T_STREAM_CLOSE, st};
    st->t_status = (tag_t){T_STREAM_STATUS, st};
    st->t_md = (tag_t){T_STREAM_MD, st};
    st->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&st->md);
    if (grpc_server_request_registered_call(s->node_srv, s->reg_connect, &st->call, &st->deadline,
                                            &st->md, NULL, s->cq, s->cq,
                                            &st->t_new) != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&st->md);
        free(st);
        return;
    }
    s->live++;
}

static bool start(stream_t *st, grpc_op *ops, size_t n, tag_t *t)
{
    if (grpc_call_start_batch(st->call, ops, n, t, NULL) != GRPC_CALL_OK) return false;
    st->pending++;
    return true;
}

static void stream_maybe_free(stream_t *st)
{
    cp_server_t *s = st->srv;
    if (st->pending) return;
    if (st->prev)
        st->prev->next = st->next;
    else if (s->streams == st)
        s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    cp_fleet_detach(&s->fleet, st->node, st, cp_wall_ms());
    s->nstreams--;
    if (st->recv_buf) grpc_byte_buffer_destroy(st->recv_buf);
    if (st->send_buf) grpc_byte_buffer_destroy(st->send_buf);
    grpc_metadata_array_destroy(&st->md);
    grpc_slice_unref(st->status_details);
    grpc_call_unref(st->call);
    s->live--;
    free(st);
}

/* Ends the stream with a status once no message is in flight. */
static void stream_end(stream_t *st, grpc_status_code code, const char *detail)
{
    if (st->status_sent || st->closed) return;
    if (!st->ending) {
        st->ending = true;
        st->end_code = code;
        grpc_slice_unref(st->status_details);
        st->status_details = grpc_slice_from_copied_string(detail);
    }
    if (st->send_busy) return;
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!st->md_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = st->end_code;
    ops[n++].data.send_status_from_server.status_details = &st->status_details;
    st->md_sent = true;
    if (start(st, ops, n, &st->t_status)) st->status_sent = true;
}

/* Sends the current snapshot unless the node has it, was just sent it, or refused this
 * very version (no resend loop: it gets the next one). One message in flight at most. */
static void stream_maybe_send(stream_t *st)
{
    cp_server_t *s = st->srv;
    cp_node_t *n = st->node;
    if (!n || st->send_busy || st->ending || st->closed) return;
    uint64_t v = cp_state_version(s->state);
    if (n->sent_version == v || n->nacked_version == v) return;
    unsigned char digest[32];
    cp_state_digest(s->state, digest);
    if (n->acked_version == v && n->acked_epoch &&
        !strcmp(n->acked_epoch, cp_state_epoch(s->state)) &&
        !memcmp(n->acked_digest, digest, sizeof digest)) {
        n->sent_version = v; /* it told us in its hello that it holds this, bit for bit */
        return;
    }
    Wsgw__Control__V1__SnapshotPush push = WSGW__CONTROL__V1__SNAPSHOT_PUSH__INIT;
    Wsgw__Control__V1__ControlMessage cm = WSGW__CONTROL__V1__CONTROL_MESSAGE__INIT;
    snprintf(n->nonce, sizeof n->nonce, "%llx", (unsigned long long)++s->nonce_counter);
    push.snapshot = (cp_snapshot_msg_t *)cp_state_snapshot(s->state);
    push.nonce = n->nonce;
    cm.msg_case = WSGW__CONTROL__V1__CONTROL_MESSAGE__MSG_PUSH;
    cm.push = &push;
    st->send_buf = pb_to_bb(&cm.base);
    grpc_op ops[2];
    size_t k = 0;
    memset(ops, 0, sizeof ops);
    if (!st->md_sent) ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[k].op = GRPC_OP_SEND_MESSAGE;
    ops[k++].data.send_message.send_message = st->send_buf;
    if (!start(st, ops, k, &st->t_send)) {
        grpc_byte_buffer_destroy(st->send_buf);
        st->send_buf = NULL;
        return;
    }
    st->md_sent = true;
    st->send_busy = true;
    n->sent_version = v;
    s->pushes++;
    GW_LOG(GW_LOG_INFO, SUBSYS, "push", "node=%s version=%llu", n->node_id, (unsigned long long)v);
}

static void arm_recv(stream_t *st)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &st->recv_buf;
    start(st, &op, 1, &st->t_recv);
}

static void on_stream_new(stream_t *st, bool ok)
{
    cp_server_t *s = st->srv;
    if (!ok) {
        grpc_metadata_array_destroy(&st->md);
        s->live--;
        free(st);
        return;
    }
    if (!s->stopping) request_stream(s);
    st->next = s->streams;
    if (st->next) st->next->prev = st;
    s->streams = st;
    s->nstreams++;
    st->opened_ms = mono_ms();

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &st->cancelled;
    start(st, &op, 1, &st->t_close); /* the one reliable "peer went away" signal */

    char detail[256];
    grpc_status_code code = check_token(&st->md, s->node_hash, detail, sizeof detail);
    if (code == GRPC_STATUS_OK && s->nstreams > s->fleet.max_nodes + CP_STREAMS_SPARE) {
        code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(detail, sizeof detail, "too many node streams (CONTROL_MAX_NODES=%zu)",
                 s->fleet.max_nodes);
    }
    if (code != GRPC_STATUS_OK) {
        GW_LOG(GW_LOG_WARN, SUBSYS, "node_refused", "detail=\"%s\"", detail);
        stream_end(st, code, detail);
        return;
    }
    /* Initial metadata at once: the node sees the stream established even when it holds
     * the current config and no push follows. */
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    if (start(st, &op, 1, &st->t_md)) st->md_sent = true;
    arm_recv(st);
}

static size_t count_twins(cp_server_t *s, const cp_node_t *n)
{
    size_t k = 0;
    for (const cp_node_t *o = s->fleet.nodes; o; o = o->next)
        k += o != n && o->connected && !strcmp(o->node_id, n->node_id);
    return k;
}

static char *dup_or_null(const char *s)
{
    return s ? gw_xstrdup(s) : NULL;
}

static void handle_node_message(stream_t *st, Wsgw__Control__V1__NodeMessage *m)
{
    cp_server_t *s = st->srv;
    cp_node_t *n = st->node;
    if (!n && m->msg_case != WSGW__CONTROL__V1__NODE_MESSAGE__MSG_HELLO) {
        stream_end(st, GRPC_STATUS_INVALID_ARGUMENT, "the first message must be a hello");
        return;
    }
    switch (m->msg_case) {
    case WSGW__CONTROL__V1__NODE_MESSAGE__MSG_HELLO: {
        Wsgw__Control__V1__NodeHello *h = m->hello;
        char why[200], detail[256];
        if (n) {
            stream_end(st, GRPC_STATUS_INVALID_ARGUMENT, "hello: sent twice");
            return;
        }
        if (gw_node_hello_check(h, why, sizeof why) < 0) {
            snprintf(detail, sizeof detail, "hello: %s", why);
            GW_LOG(GW_LOG_WARN, SUBSYS, "node_refused", "detail=\"%s\"", detail);
            stream_end(st, GRPC_STATUS_INVALID_ARGUMENT, detail);
            return;
        }
        n = st->node = cp_fleet_attach(&s->fleet, h->node_id, st, cp_wall_ms());
        if (!n) {
            snprintf(detail, sizeof detail, "fleet full: %zu nodes connected (CONTROL_MAX_NODES)",
                     s->fleet.count);
            GW_LOG(GW_LOG_WARN, SUBSYS, "node_refused", "node=%s detail=\"%s\"", h->node_id,
                   detail);
            stream_end(st, GRPC_STATUS_RESOURCE_EXHAUSTED, detail);
            return;
        }
        free(n->address);
        free(n->build);
        free(n->acked_epoch);
        n->address = dup_or_null(h->address);
        n->build = dup_or_null(h->build_version);
        n->acked_version = h->config_version;
        n->acked_epoch = dup_or_null(h->config_epoch);
        memset(n->acked_digest, 0, sizeof n->acked_digest);
        if (h->config_digest.len == sizeof n->acked_digest)
            memcpy(n->acked_digest, h->config_digest.data, sizeof n->acked_digest);
        GW_LOG(GW_LOG_NOTICE, SUBSYS, "node_connected", "node=%s address=%s holds=%llu", n->node_id,
               n->address, (unsigned long long)h->config_version);
        if (n->duplicate) /* both get every push; the operator must sort out who is who */
            GW_LOG(GW_LOG_WARN, SUBSYS, "node_duplicate", "node=%s address=%s streams=%zu",
                   n->node_id, n->address, 1 + count_twins(s, n));
        break;
    }
    case WSGW__CONTROL__V1__NODE_MESSAGE__MSG_ACK:
        /* an answer to an older push, or to none yet (the nonce is empty until then) */
        if (!n->nonce[0] || strcmp(m->ack->nonce, n->nonce)) break;
        n->acked_version = n->sent_version; /* what we pushed with this nonce, not its claim */
        s->acks++;
        if (n->sent_version == cp_state_version(s->state)) {
            free(n->acked_epoch);
            n->acked_epoch = gw_xstrdup(cp_state_epoch(s->state));
            cp_state_digest(s->state, n->acked_digest);
        }
        free(n->error);
        n->error = NULL;
        break;
    case WSGW__CONTROL__V1__NODE_MESSAGE__MSG_NACK:
        if (!n->nonce[0] || strcmp(m->nack->nonce, n->nonce)) break;
        n->nacked_version = m->nack->rejected_version ? m->nack->rejected_version : n->sent_version;
        s->nacks++;
        free(n->error);
        n->error =
            gw_xstrndup(m->nack->error_detail, strnlen(m->nack->error_detail, GW_NODE_ERROR_MAX));
        for (char *c = n->error; *c; c++) /* the node's text, quoted in our log lines */
            if (*c == '"' || *c == '\\') *c = '\'';
        GW_LOG(GW_LOG_WARN, SUBSYS, "node_nack", "node=%s version=%llu error=\"%s\"", n->node_id,
               (unsigned long long)n->nacked_version, n->error);
        break;
    case WSGW__CONTROL__V1__NODE_MESSAGE__MSG_STATS: {
        char why[200];
        if (gw_node_stats_check(m->stats, why, sizeof why) < 0) {
            /* Refused, not fatal: the stream still carries config (a revocation must
             * reach this node whatever its reports look like). */
            GW_LOG(GW_LOG_WARN, SUBSYS, "stats_refused", "node=%s detail=\"%s\"", n->node_id, why);
            break;
        }
        if (n->stats) protobuf_c_message_free_unpacked(&n->stats->base, NULL);
        n->stats = m->stats; /* keep it: take it out of the message before freeing that */
        m->stats = NULL;
        m->msg_case = WSGW__CONTROL__V1__NODE_MESSAGE__MSG__NOT_SET;
        n->last_report_ms = cp_wall_ms();
        break;
    }
    default: stream_end(st, GRPC_STATUS_INVALID_ARGUMENT, "empty message"); return;
    }
    stream_maybe_send(st);
}

static void on_stream_recv(stream_t *st, bool ok)
{
    st->pending--;
    grpc_byte_buffer *bb = st->recv_buf;
    st->recv_buf = NULL;
    if (!ok || !bb) { /* half-close or broken: either way this stream is done */
        if (bb) grpc_byte_buffer_destroy(bb);
        stream_end(st, GRPC_STATUS_OK, "");
        stream_maybe_free(st);
        return;
    }
    Wsgw__Control__V1__NodeMessage *m = (Wsgw__Control__V1__NodeMessage *)pb_from_bb(
        &wsgw__control__v1__node_message__descriptor, bb);
    grpc_byte_buffer_destroy(bb);
    if (!m) {
        stream_end(st, GRPC_STATUS_INVALID_ARGUMENT, "message does not decode");
    } else {
        handle_node_message(st, m);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        if (!st->ending && !st->closed) arm_recv(st);
    }
    stream_maybe_free(st);
}

static void on_stream_send(stream_t *st, bool ok)
{
    st->pending--;
    grpc_byte_buffer_destroy(st->send_buf);
    st->send_buf = NULL;
    st->send_busy = false;
    if (ok && st->ending)
        stream_end(st, st->end_code, "");
    else if (ok)
        stream_maybe_send(st);
    stream_maybe_free(st);
}

static void on_stream_close(stream_t *st)
{
    st->pending--;
    st->closed = true;
    if (st->node) {
        GW_LOG(GW_LOG_NOTICE, SUBSYS, "node_gone", "node=%s", st->node->node_id);
        cp_fleet_detach(&st->srv->fleet, st->node, st, cp_wall_ms());
        st->node = NULL;
    }
    stream_maybe_free(st);
}

/*------------------------------------------------------------------------------
 * Pushing changes: debounced, capped */

void cp_schedule_push(cp_server_t *s)
{
    int64_t now = mono_ms();
    if (!s->dirty_since_ms) s->dirty_since_ms = now;
    int64_t due = now + s->o.debounce_ms, cap = s->dirty_since_ms + s->o.debounce_max_ms;
    s->push_due_ms = due < cap ? due : cap;
}

static void push_all(cp_server_t *s)
{
    s->push_due_ms = s->dirty_since_ms = 0;
    for (stream_t *st = s->streams; st; st = st->next) stream_maybe_send(st);
}

/* Once a second: streams that never said hello are ended, long-gone nodes forgotten. */
static void sweep(cp_server_t *s, int64_t now)
{
    for (stream_t *st = s->streams; st; st = st->next)
        if (!st->node && !st->ending && !st->closed && now - st->opened_ms > CP_HELLO_WAIT_MS)
            stream_end(st, GRPC_STATUS_DEADLINE_EXCEEDED, "no hello within 5 s");
    size_t freed = cp_fleet_expire(&s->fleet, cp_wall_ms());
    if (freed)
        GW_LOG(GW_LOG_INFO, SUBSYS, "nodes_expired", "count=%zu fleet=%zu", freed, s->fleet.count);
}

/*------------------------------------------------------------------------------
 * /metrics and /health, rendered here and served by the HTTP thread */

static const char *const code_names[CP_NCODES] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

static void publish_metrics(cp_server_t *s)
{
    static const char *const statuses[] = {"synced", "pending", "nacked", "stale", "gone"};
    uint64_t count[5] = {0};
    uint64_t v = cp_state_version(s->state);
    size_t dups = cp_fleet_duplicates(&s->fleet);
    for (cp_node_t *n = s->fleet.nodes; n; n = n->next) {
        const char *st = cp_fleet_status(&s->fleet, n, v, cp_wall_ms());
        for (int i = 0; i < 5; i++)
            if (!strcmp(st, statuses[i])) count[i]++;
    }
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b,
                  "# HELP wsgw_control_up 1 while the control plane serves\n"
                  "# TYPE wsgw_control_up gauge\nwsgw_control_up 1\n"
                  "# HELP wsgw_control_config_version current config version\n"
                  "# TYPE wsgw_control_config_version gauge\nwsgw_control_config_version %llu\n"
                  "# HELP wsgw_control_nodes_duplicate open streams whose node_id another "
                  "open stream claims too\n"
                  "# TYPE wsgw_control_nodes_duplicate gauge\nwsgw_control_nodes_duplicate %zu\n"
                  "# HELP wsgw_control_fleet_entries nodes listed, connected or gone\n"
                  "# TYPE wsgw_control_fleet_entries gauge\nwsgw_control_fleet_entries %zu\n"
                  "# HELP wsgw_control_node_streams open node streams, with or without hello\n"
                  "# TYPE wsgw_control_node_streams gauge\nwsgw_control_node_streams %zu\n"
                  "# HELP wsgw_control_fleet_limit CONTROL_MAX_NODES\n"
                  "# TYPE wsgw_control_fleet_limit gauge\nwsgw_control_fleet_limit %zu\n"
                  "# HELP wsgw_control_nodes data planes by sync status\n"
                  "# TYPE wsgw_control_nodes gauge\n",
                  (unsigned long long)v, dups, s->fleet.count, s->nstreams, s->fleet.max_nodes);
    for (int i = 0; i < 5; i++)
        gw_buf_printf(&b, "wsgw_control_nodes{status=\"%s\"} %llu\n", statuses[i],
                      (unsigned long long)count[i]);
    gw_buf_printf(&b,
                  "# HELP wsgw_control_pushes_total snapshots sent to nodes\n"
                  "# TYPE wsgw_control_pushes_total counter\nwsgw_control_pushes_total %llu\n"
                  "# HELP wsgw_control_acks_total snapshots acknowledged\n"
                  "# TYPE wsgw_control_acks_total counter\nwsgw_control_acks_total %llu\n"
                  "# HELP wsgw_control_nacks_total snapshots refused by nodes\n"
                  "# TYPE wsgw_control_nacks_total counter\nwsgw_control_nacks_total %llu\n"
                  "# HELP wsgw_control_admin_calls_total admin calls by method and status\n"
                  "# TYPE wsgw_control_admin_calls_total counter\n",
                  (unsigned long long)s->pushes, (unsigned long long)s->acks,
                  (unsigned long long)s->nacks);
    for (size_t m = 0; m < cp_n_admin_methods && m < 16; m++)
        for (int c = 0; c < CP_NCODES; c++)
            if (s->admin_calls[m][c] || c == 0)
                gw_buf_printf(&b,
                              "wsgw_control_admin_calls_total{method=\"%s\",code=\"%s\"} %llu\n",
                              strrchr(cp_admin_methods[m].path, '/') + 1, code_names[c],
                              (unsigned long long)s->admin_calls[m][c]);
    cp_httpd_publish(s->httpd, "/metrics", b.data, b.len);
    b.len = 0;
    gw_buf_printf(&b,
                  "{\"status\":\"%s\",\"version\":%llu,\"epoch\":\"%s\",\"nodes\":{\"synced\":"
                  "%llu,\"pending\":%llu,\"nacked\":%llu,\"stale\":%llu,\"gone\":%llu,"
                  "\"duplicate\":%zu}}\n",
                  s->stopping ? "stopping" : "ok", (unsigned long long)v, cp_state_epoch(s->state),
                  (unsigned long long)count[0], (unsigned long long)count[1],
                  (unsigned long long)count[2], (unsigned long long)count[3],
                  (unsigned long long)count[4], dups);
    cp_httpd_publish(s->httpd, "/health", b.data, b.len);
    gw_buf_free(&b);
}

/*------------------------------------------------------------------------------
 * Lifecycle */

static grpc_server_credentials *make_creds(const cp_server_opts_t *o, char *err, size_t errlen)
{
    if (!o->tls_cert[0] && !o->tls_key[0]) return grpc_insecure_server_credentials_create();
    gw_buf_t cert = GW_BUF_INIT, key = GW_BUF_INIT, ca = GW_BUF_INIT;
    grpc_server_credentials *c = NULL;
    if (gw_buf_read_file(&cert, o->tls_cert, 1 << 20) < 0 ||
        gw_buf_read_file(&key, o->tls_key, 1 << 20) < 0 ||
        (o->tls_client_ca[0] && gw_buf_read_file(&ca, o->tls_client_ca, 1 << 20) < 0)) {
        snprintf(err, errlen, "cannot read CONTROL_TLS_CERT / CONTROL_TLS_KEY / CLIENT_CA");
        goto Exit;
    }
    grpc_ssl_pem_key_cert_pair pair = {key.data, cert.data};
    c = grpc_ssl_server_credentials_create_ex(
        ca.data, &pair, 1,
        ca.data ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
Exit:
    if (key.data) memset(key.data, 0, key.len);
    gw_buf_free(&cert);
    gw_buf_free(&key);
    gw_buf_free(&ca);
    return c;
}

/* max_recv bounds one message from a peer; max_streams the calls on one connection. */
static grpc_server *make_server(cp_server_t *s, const char *addr, int max_recv, int max_streams,
                                int *port, char *err, size_t errlen)
{
    grpc_arg a[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 30000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 10000}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = max_recv}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONCURRENT_STREAMS, {.integer = max_streams}},
        /* a connection without a call (a node's stream is one for its whole life) is
         * closed after 5 minutes: idle peers do not accumulate */
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_CONNECTION_IDLE_MS, {.integer = 300000}},
    };
    grpc_channel_args ca = {sizeof a / sizeof a[0], a};
    grpc_server *gs = grpc_server_create(&ca, NULL);
    grpc_server_register_completion_queue(gs, s->cq, NULL);
    grpc_server_credentials *creds = make_creds(&s->o, err, errlen);
    if (!creds) {
        grpc_server_destroy(gs);
        return NULL;
    }
    *port = grpc_server_add_http2_port(gs, addr, creds);
    grpc_server_credentials_release(creds);
    if (*port == 0) {
        snprintf(err, errlen, "cannot listen on %s", addr);
        grpc_server_destroy(gs);
        return NULL;
    }
    return gs;
}

cp_server_t *cp_server_new(const cp_server_opts_t *o, cp_state_t *state, char *err, size_t errlen)
{
    cp_server_t *s = gw_xcalloc(1, sizeof *s);
    s->o = *o;
    s->state = state;
    s->fleet.report_interval_ms = o->report_interval_ms;
    s->fleet.max_nodes = o->max_nodes ? (size_t)o->max_nodes : 1024;
    s->fleet.gone_ttl_ms = o->gone_ttl_ms;
    s->t_shutdown = (tag_t){T_SHUTDOWN, s};
    gw_sha256(o->admin_token, strlen(o->admin_token), s->admin_hash);
    gw_sha256(o->node_token, strlen(o->node_token), s->node_hash);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    /* A node sends small messages on one stream; admins may send large roles. */
    s->node_srv = make_server(s, o->node_listen, GW_NODE_MSG_MAX, 4, &s->node_port, err, errlen);
    if (!s->node_srv) goto Error;
    s->admin_srv = make_server(s, o->admin_listen, 16 << 20, 100, &s->admin_port, err, errlen);
    if (!s->admin_srv) goto Error;
    s->reg_connect = grpc_server_register_method(s->node_srv, PKG "ControlPlane/Connect", NULL,
                                                 GRPC_SRM_PAYLOAD_NONE, 0);
    for (size_t i = 0; i < cp_n_admin_methods; i++)
        cp_admin_methods[i].registered =
            grpc_server_register_method(s->admin_srv, cp_admin_methods[i].path, NULL,
                                        GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (o->metrics_listen && o->metrics_listen[0]) {
        s->httpd = cp_httpd_start(o->metrics_listen, err, errlen);
        if (!s->httpd) {
            grpc_server_destroy(s->admin_srv);
            s->admin_srv = NULL;
            goto Error;
        }
        publish_metrics(s);
    }
    grpc_server_start(s->node_srv);
    grpc_server_start(s->admin_srv);
    request_stream(s);
    request_generic(s, s->node_srv);
    request_generic(s, s->admin_srv);
    for (size_t i = 0; i < cp_n_admin_methods; i++) request_unary(s, &cp_admin_methods[i]);
    return s;
Error:
    if (s->node_srv) grpc_server_destroy(s->node_srv);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    s->state = NULL; /* the caller still owns it on failure */
    free(s);
    return NULL;
}

int cp_server_node_port(const cp_server_t *s)
{
    return s->node_port;
}

int cp_server_admin_port(const cp_server_t *s)
{
    return s->admin_port;
}

int cp_server_metrics_port(const cp_server_t *s)
{
    return s->httpd ? cp_httpd_port(s->httpd) : 0;
}

void cp_server_stop(cp_server_t *s)
{
    s->stop_requested = 1;
}

static void begin_shutdown(cp_server_t *s)
{
    s->stopping = true;
    s->stop_at_ms = mono_ms() + 1500;
    s->shutdowns_pending = 2;
    grpc_server_shutdown_and_notify(s->node_srv, s->cq, &s->t_shutdown);
    grpc_server_shutdown_and_notify(s->admin_srv, s->cq, &s->t_shutdown);
    for (stream_t *st = s->streams; st; st = st->next)
        stream_end(st, GRPC_STATUS_UNAVAILABLE, "control plane shutting down");
    GW_LOG(GW_LOG_NOTICE, SUBSYS, "shutting_down", "streams=%s", s->streams ? "open" : "none");
}

static void dispatch(cp_server_t *s, tag_t *t, bool ok)
{
    switch (t->kind) {
    case T_UNARY_NEW: on_unary_new(t->obj, ok); break;
    case T_UNARY_DONE: unary_free(t->obj); break;
    case T_GENERIC_NEW: on_generic_new(t->obj, ok); break;
    case T_GENERIC_DONE: generic_free(t->obj); break;
    case T_STREAM_NEW: on_stream_new(t->obj, ok); break;
    case T_STREAM_RECV: on_stream_recv(t->obj, ok); break;
    case T_STREAM_SEND: on_stream_send(t->obj, ok); break;
    case T_STREAM_CLOSE: on_stream_close(t->obj); break;
    case T_STREAM_MD:
    case T_STREAM_STATUS: {
        stream_t *st = t->obj;
        st->pending--;
        stream_maybe_free(st);
        break;
    }
    case T_SHUTDOWN: s->shutdowns_pending--; break;
    }
}

void cp_server_run(cp_server_t *s)
{
    for (;;) {
        int64_t now = mono_ms();
        if (s->stop_requested && !s->stopping) begin_shutdown(s);
        if (s->push_due_ms && now >= s->push_due_ms && !s->stopping) push_all(s);
        if (now - s->swept_ms >= 1000) {
            sweep(s, now);
            s->swept_ms = now;
        }
        if (s->httpd && now - s->published_ms >= 500) {
            publish_metrics(s);
            s->published_ms = now;
        }
        if (s->stopping && s->stop_at_ms && now >= s->stop_at_ms) {
            grpc_server_cancel_all_calls(s->node_srv);
            grpc_server_cancel_all_calls(s->admin_srv);
            s->stop_at_ms = 0;
        }
        if (s->stopping && !s->cq_shut && s->shutdowns_pending == 0 && s->live == 0) {
            grpc_completion_queue_shutdown(s->cq);
            s->cq_shut = true;
        }
        /* Timers are the next() deadline: at most 100 ms, so a stop request is seen. */
        int64_t wait = 100;
        if (s->push_due_ms) {
            int64_t d = s->push_due_ms - now;
            wait = d < 0 ? 0 : d < wait ? d : wait;
        }
        gpr_timespec dl =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, dl, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) dispatch(s, ev.tag, ev.success);
    }
}

void cp_server_free(cp_server_t *s)
{
    if (!s) return;
    cp_httpd_stop(s->httpd);
    grpc_server_destroy(s->node_srv);
    grpc_server_destroy(s->admin_srv);
    grpc_completion_queue_destroy(s->cq);
    cp_fleet_free(&s->fleet);
    cp_state_free(s->state);
    free(s);
}

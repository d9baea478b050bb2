/* cpserver_internal.h - wsgw-control's server state, shared by cpserver.c (completion
 * queue, streams, lifecycle, metrics) and admin.c (the Admin API handlers). All of it is
 * owned by the completion-queue thread. Not for use outside those two files. */
#ifndef CP_SERVER_INTERNAL_H
#define CP_SERVER_INTERNAL_H

#include <grpc/grpc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpserver.h"
#include "fleet.h"
#include "httpd.h"
#include "pb.h"
#include "state.h"

#define PKG       "/wsgw.control.v1."
#define CP_NCODES (GRPC_STATUS_UNAUTHENTICATED + 1) /* gRPC status codes 0..16 */

/* Streams beyond CONTROL_MAX_NODES allowed while others close (a node reconnecting before
 * its old stream is noticed gone); and how long a stream may stay without a hello. */
#define CP_STREAMS_SPARE 64
#define CP_HELLO_WAIT_MS 5000

typedef enum {
    T_UNARY_NEW,
    T_UNARY_DONE,
    T_GENERIC_NEW,
    T_GENERIC_DONE,
    T_STREAM_NEW,
    T_STREAM_RECV,
    T_STREAM_SEND,
    T_STREAM_CLOSE,
    T_STREAM_STATUS,
    T_STREAM_MD,
    T_SHUTDOWN,
} tag_kind_t;

typedef struct {
    tag_kind_t kind;
    void *obj;
} tag_t;

typedef grpc_status_code (*handler_fn)(cp_server_t *s, const ProtobufCMessage *req,
                                       grpc_byte_buffer **reply, char *detail, size_t dlen);

typedef struct {
    const char *path;
    const ProtobufCMessageDescriptor *req;
    handler_fn fn;
    void *registered;
} method_t;

typedef struct {
    tag_t t_new, t_done;
    cp_server_t *srv;
    method_t *m;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload, *reply;
    grpc_slice details;
    int cancelled;
} ucall_t;

typedef struct {
    tag_t t_new, t_done;
    cp_server_t *srv;
    grpc_server *gs;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_slice status;
    int cancelled;
} gcall_t;

typedef struct stream {
    tag_t t_new, t_recv, t_send, t_close, t_status, t_md;
    cp_server_t *srv;
    struct stream *next, *prev;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *recv_buf, *send_buf;
    grpc_slice status_details;
    int pending, cancelled;
    bool md_sent, send_busy, status_sent, closed, ending;
    grpc_status_code end_code;
    cp_node_t *node;
    int64_t opened_ms;
} stream_t;

struct cp_server {
    cp_server_opts_t o;
    cp_state_t *state;
    cp_fleet_t fleet;
    grpc_completion_queue *cq;
    grpc_server *node_srv, *admin_srv;
    void *reg_connect;
    int node_port, admin_port;
    unsigned char admin_hash[32], node_hash[32];
    stream_t *streams;
    size_t nstreams;
    long live; /* calls and requests not yet freed */
    tag_t t_shutdown;
    int shutdowns_pending;
    volatile sig_atomic_t stop_requested;
    bool stopping, cq_shut;
    int64_t stop_at_ms, push_due_ms, dirty_since_ms;
    uint64_t nonce_counter;
    cp_httpd_t *httpd;
    int64_t published_ms, swept_ms;
    uint64_t admin_calls[16][CP_NCODES]; /* by method, status */
    uint64_t pushes, acks, nacks;
};

/* admin.c */
extern method_t cp_admin_methods[];
extern const size_t cp_n_admin_methods;

/* cpserver.c */
void cp_schedule_push(cp_server_t *s);
int64_t cp_wall_ms(void);

#endif

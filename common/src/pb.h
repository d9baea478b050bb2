/* pb.h - gRPC byte buffers <-> protobuf-c messages, and bearer-token metadata checks.
 * Used by both the control plane and the data plane's gRPC client. */
#ifndef CP_PB_H
#define CP_PB_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* A new byte buffer holding m packed; the caller destroys it once its send completed. */
grpc_byte_buffer *pb_to_bb(const ProtobufCMessage *m);

/* Unpacks bb (NULL when bb is NULL or does not decode); free with
 * protobuf_c_message_free_unpacked(). */
ProtobufCMessage *pb_from_bb(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);

typedef enum { PB_AUTH_OK, PB_AUTH_MISSING, PB_AUTH_WRONG } pb_auth_t;

/* Checks "authorization: Bearer <token>" in md against token_hash (SHA-256 of the
 * expected token), in constant time. */
pb_auth_t pb_check_bearer(const grpc_metadata_array *md, const unsigned char token_hash[32]);

#endif

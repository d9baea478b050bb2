#include "pb.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

grpc_byte_buffer *pb_to_bb(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

ProtobufCMessage *pb_from_bb(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb)) return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return m;
}

pb_auth_t pb_check_bearer(const grpc_metadata_array *md, const unsigned char token_hash[32])
{
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *e = &md->metadata[i];
        if (!grpc_slice_str_cmp(e->key, "authorization")) {
            size_t n = GRPC_SLICE_LENGTH(e->value);
            const char *v = (const char *)GRPC_SLICE_START_PTR(e->value);
            if (n < 8 || strncasecmp(v, "Bearer ", 7)) return PB_AUTH_WRONG;
            unsigned char h[32];
            unsigned int hl = 32;
            EVP_Digest(v + 7, n - 7, h, &hl, EVP_sha256(), NULL);
            return CRYPTO_memcmp(h, token_hash, 32) == 0 ? PB_AUTH_OK : PB_AUTH_WRONG;
        }
    }
    return PB_AUTH_MISSING;
}

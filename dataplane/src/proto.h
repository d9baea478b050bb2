/* proto.h - the client protocol: parsing client frames and encoding v1 control frames.
 *
 * The contract is docs/PROTOCOL.md. A connection speaks one of two dialects: v1, whose
 * client frames are JSON objects with a "type", or the legacy dialect of the Python
 * gateway this project replaces, whose frames carry an "action" (legacy.h encodes its
 * replies). Both parse into the same gw_req_t, so everything after parsing is one
 * implementation. Server frames all end with the connection's "seq", appended by the
 * writer (msg.h).
 * Parsing never trusts its input: every failure yields an error code and a message
 * fit to send back, and the parser's allocations are bounded by the frame size.
 */
#ifndef GW_PROTO_H
#define GW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct json_t;

#define GW_CHANNEL_MAX           256       /* bytes */
#define GW_ID_MAX                128       /* bytes of the JSON text of "id" */
#define GW_PATTERN_WILDCARDS_MAX 8         /* `*`, `?` and `[...]` in one pattern */
#define GW_RESERVED_PREFIX       "__wsgw:" /* the gateway's own channels (and keys) */

typedef enum {
    GW_E_BAD_REQUEST = 0,
    GW_E_UNKNOWN_TYPE,
    GW_E_INVALID_CHANNEL,
    GW_E_LIMIT_CHANNELS,
    GW_E_LIMIT_WILDCARDS,
    GW_E_TOO_LARGE,
    GW_E_ACL_DENIED,
    GW_E_RATE_LIMITED,
    GW_E_AUTH_FAILED,
    GW_E_AUTH_REQUIRED,
    GW_E_LIMIT_PATTERNS,
    GW_E__COUNT
} gw_errcode_t;

const char *gw_errcode_name(gw_errcode_t code);

typedef enum {
    GW_DIALECT_UNKNOWN = 0, /* CLIENT_PROTOCOL=auto before the first frame that tells */
    GW_DIALECT_V1,
    GW_DIALECT_LEGACY,
} gw_dialect_t;

typedef enum {
    GW_REQ_SUBSCRIBE,
    GW_REQ_UNSUBSCRIBE,
    GW_REQ_PING,
    GW_REQ_AUTH,
} gw_req_type_t;

typedef struct {
    gw_req_type_t type;
    char *id;         /* JSON text of "id" (legacy: "requestId"), NULL when absent */
    size_t nchannels; /* deduplicated, in request order; legacy: not yet validated */
    char **channels;  /* each NUL-terminated; lens[] gives the byte length */
    size_t *lens;
    char *token;   /* auth: a JWT, or NULL */
    char *api_key; /* auth: an API key, or NULL */
} gw_req_t;

typedef struct {
    gw_errcode_t code;
    char message[200];
    char *id;      /* echoed "id" when the frame had a usable one, else NULL */
    char *channel; /* the offending channel, else NULL */
} gw_perr_t;

/* Parses one client text frame in the connection's dialect. With *dialect
 * GW_DIALECT_UNKNOWN the frame decides: an "action" member without a "type" makes it
 * LEGACY, a "type" member V1 (stored in *dialect even when the frame is then refused;
 * a frame that tells neither leaves it UNKNOWN and is refused in v1 terms).
 * V1 channels are validated here (a request is atomic); legacy channels are only
 * type-checked, since each is accepted or refused on its own.
 * On success fills req (free with gw_req_free) and returns 0. On failure fills err (free
 * with gw_perr_free; its message is worded for the dialect) and returns -1. */
int gw_req_parse(const char *buf, size_t len, size_t max_channels_per_request,
                 gw_dialect_t *dialect, gw_req_t *req, gw_perr_t *err);
void gw_req_free(gw_req_t *req);
void gw_perr_free(gw_perr_t *err);

/* Helpers the dialects share. gw_req_take_id: root[key] as JSON text of at most GW_ID_MAX
 * bytes in *out (NULL when absent or null); strings and integers, or with any_scalar
 * also reals and booleans. Returns NULL, or why the value was refused. */
void gw_perr_set(gw_perr_t *err, gw_errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *gw_req_take_id(struct json_t *root, const char *key, bool any_scalar, char **out);
/* How a dialect reads "channels": its wording, and whether names are validated here. */
typedef struct {
    const char *not_array; /* not an array (or empty when !allow_empty) */
    const char *not_string;
    const char *too_many; /* format: the count, then the maximum (both %zu) */
    bool allow_empty;
    bool validate; /* v1: a bad name refuses the request (invalid_channel) */
} gw_channels_rules_t;

/* root["channels"] into req: at most max names, deduplicated, in request order. */
int gw_req_take_channels(struct json_t *root, size_t max, const gw_channels_rules_t *rules,
                         gw_req_t *req, gw_perr_t *err);

/* Checks one channel name (exact or pattern): 1..GW_CHANNEL_MAX bytes, valid UTF-8, no
 * control characters, not in the gateway's own namespace (GW_RESERVED_PREFIX), and a
 * well-formed glob when it is a pattern. On failure writes the reason to why and
 * returns false. */
bool gw_channel_valid(const char *s, size_t len, const char **why);

/* Control frame encoders. Each returns a new message with one reference (msg.h).
 * `id` is the JSON text to echo, or NULL. */
/* auth_error: why a credential presented under REQUIRE_AUTH=false was refused (the
 * connection then has DEFAULT_ROLE), or NULL. */
gw_msg_t *gw_frame_welcome(const char *node, const char *session, const char *role,
                           const char *auth_error);
gw_msg_t *gw_frame_ack(const char *type, const char *id, char *const *channels, const size_t *lens,
                       size_t n, const char *reason);
gw_msg_t *gw_frame_pong(const char *id);
gw_msg_t *gw_frame_error(gw_errcode_t code, const char *message, const char *id,
                         const char *channel);
gw_msg_t *gw_frame_resync(const char *reason);
gw_msg_t *gw_frame_authenticated(const char *role, int64_t expires, const char *id);
gw_msg_t *gw_frame_auth_expiring(int64_t expires, int64_t expires_in_s);

#endif

/* legacy.h - the legacy dialect: the frames of the Python gateway this project replaces,
 * so that its UI works against wsgw unchanged (docs/PROTOCOL.md, "Legacy dialect").
 *
 * Only the wire format lives here. Client frames ({"action":...,"requestId":...}) parse
 * into the same gw_req_t as v1 frames, and the session handles both with one
 * implementation; the replies below differ from v1 in names and shape only: every one
 * carries "requestId" (null when the request had none) and an ISO-8601 UTC "timestamp",
 * and errors are prose in "error". The data envelope is built in msg.c (gw_msg_legacy),
 * once per Redis message.
 *
 * Ownership: encoders return a new message with one reference (msg.h).
 */
#ifndef GW_LEGACY_H
#define GW_LEGACY_H

#include <stddef.h>

#include "msg.h"
#include "proto.h"

struct json_t;

/* Parses a legacy frame (an object with "action") into req. Channels are type-checked
 * and deduplicated, not validated: each is accepted or refused on its own. */
int gw_legacy_parse(struct json_t *root, size_t max_channels, gw_req_t *req, gw_perr_t *err);

/* {"type":"connected","clientId":"<uuid v4>","role":...,"timestamp":...,"seq":N} */
gw_msg_t *gw_legacy_connected(const char *role);

/* Partial success: the accepted channels in request order, and one line per refused one. */
gw_msg_t *gw_legacy_subscribed(const char *id, char *const *channels, const size_t *lens, size_t n,
                               char *const *errors, size_t nerrors);

/* reason: NULL, or why the server removed them ("acl_changed"). */
gw_msg_t *gw_legacy_unsubscribed(const char *id, char *const *channels, const size_t *lens,
                                 size_t n, const char *reason);
gw_msg_t *gw_legacy_pong(const char *id);

/* {"type":"error","error":<message>,"code":<v1 code>,"requestId":...}. */
gw_msg_t *gw_legacy_error(gw_errcode_t code, const char *message, const char *id);

/* The legacy wording of an error the session raises (rate limits, sizes), or NULL when
 * the v1 message reads well as it is. */
const char *gw_legacy_error_text(gw_errcode_t code);

#endif

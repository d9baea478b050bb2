/* json.h - the two JSON operations on the hot path, without building a tree.
 *
 * gw_json_valid() decides whether a Redis payload can be embedded verbatim as the
 * "data" of an envelope: it accepts exactly RFC 8259 JSON texts (any value, optional
 * surrounding whitespace) that are valid UTF-8, nested at most GW_JSON_MAX_DEPTH deep.
 * Anything else is sent as a JSON string, escaped by gw_json_put_string(), which
 * replaces invalid UTF-8 with U+FFFD so every frame is a valid WebSocket text frame.
 */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define GW_JSON_MAX_DEPTH 128

bool gw_json_valid(const char *s, size_t len);

/* Appends s as a quoted, escaped JSON string. */
void gw_json_put_string(gw_buf_t *b, const char *s, size_t len);

/* Returns the length of the valid UTF-8 sequence starting at s (1..4), or 0 if invalid. */
size_t gw_utf8_seq(const unsigned char *s, size_t avail);

#endif

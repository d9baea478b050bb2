#include "legacy.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "json.h"

/*------------------------------------------------------------------------------
 * Client frames */

static const gw_channels_rules_t legacy_channels = {
    "Invalid channels: expected an array of strings",
    "Invalid channels: expected an array of strings",
    "Too many channels in one request (%zu, at most %zu)", true, false};

int gw_legacy_parse(json_t *root, size_t max_channels, gw_req_t *req, gw_perr_t *err)
{
    const char *why = gw_req_take_id(root, "requestId", true, &req->id);
    if (why) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "Invalid requestId: %s", why);
        return -1;
    }
    json_t *action = json_object_get(root, "action");
    if (!json_is_string(action)) {
        gw_perr_set(err, GW_E_BAD_REQUEST,
                    action ? "Invalid action: must be a string" : "Missing action");
        return -1;
    }
    const char *a = json_string_value(action);
    if (!strcmp(a, "subscribe"))
        req->type = GW_REQ_SUBSCRIBE;
    else if (!strcmp(a, "unsubscribe"))
        req->type = GW_REQ_UNSUBSCRIBE;
    else if (!strcmp(a, "ping"))
        req->type = GW_REQ_PING;
    else {
        /* The name is echoed, bounded; the encoder escapes it. */
        gw_perr_set(err, GW_E_UNKNOWN_TYPE, "Unknown action: %.64s", a);
        return -1;
    }
    if (req->type == GW_REQ_PING) return 0;
    return gw_req_take_channels(root, max_channels, &legacy_channels, req, err);
}

/*------------------------------------------------------------------------------
 * Server frames */

static void put_request_id(gw_buf_t *b, const char *id)
{
    gw_buf_puts(b, ",\"requestId\":");
    gw_buf_puts(b, id ? id : "null");
}

static void put_names(gw_buf_t *b, const char *key, char *const *names, const size_t *lens,
                      size_t n)
{
    gw_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i) gw_buf_putc(b, ',');
        gw_json_put_string(b, names[i], lens ? lens[i] : strlen(names[i]));
    }
    gw_buf_putc(b, ']');
}

/* Every legacy reply ends with the time it was made (then the seq). */
static gw_msg_t *finish(gw_buf_t *b)
{
    char ts[GW_ISO8601_LEN];
    gw_buf_printf(b, ",\"timestamp\":\"%s\"", gw_iso8601(gw_unix_us(), ts));
    return gw_msg_new_control(b);
}

/* A random (version 4) UUID: the legacy gateway named each client with one. */
static void uuid4(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) abort(); /* no entropy: nothing here can be trusted */
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

gw_msg_t *gw_legacy_connected(const char *role)
{
    char id[37];
    gw_buf_t b = GW_BUF_INIT;
    uuid4(id);
    gw_buf_printf(&b, "{\"type\":\"connected\",\"clientId\":\"%s\",\"role\":", id);
    gw_json_put_string(&b, role, strlen(role));
    return finish(&b);
}

gw_msg_t *gw_legacy_subscribed(const char *id, char *const *channels, const size_t *lens, size_t n,
                               char *const *errors, size_t nerrors)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"subscribed\"");
    put_names(&b, "channels", channels, lens, n);
    put_names(&b, "errors", errors, NULL, nerrors);
    put_request_id(&b, id);
    return finish(&b);
}

gw_msg_t *gw_legacy_unsubscribed(const char *id, char *const *channels, const size_t *lens,
                                 size_t n, const char *reason)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"unsubscribed\"");
    put_names(&b, "channels", channels, lens, n);
    put_request_id(&b, id);
    if (reason) gw_buf_printf(&b, ",\"reason\":\"%s\"", reason);
    return finish(&b);
}

gw_msg_t *gw_legacy_pong(const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"pong\"");
    put_request_id(&b, id);
    return finish(&b);
}

gw_msg_t *gw_legacy_error(gw_errcode_t code, const char *message, const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"error\",\"error\":");
    gw_json_put_string(&b, message, strlen(message));
    gw_buf_printf(&b, ",\"code\":\"%s\"", gw_errcode_name(code));
    put_request_id(&b, id);
    return finish(&b);
}

const char *gw_legacy_error_text(gw_errcode_t code)
{
    switch (code) {
    case GW_E_RATE_LIMITED: return "Rate limit exceeded";
    case GW_E_TOO_LARGE: return "Message too large";
    default: return NULL;
    }
}

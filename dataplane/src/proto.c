#include "proto.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "json.h"
#include "legacy.h"

static const char *const errcode_names[GW_E__COUNT] = {
    [GW_E_BAD_REQUEST] = "bad_request",         [GW_E_UNKNOWN_TYPE] = "unknown_type",
    [GW_E_INVALID_CHANNEL] = "invalid_channel", [GW_E_LIMIT_CHANNELS] = "limit_channels",
    [GW_E_LIMIT_WILDCARDS] = "limit_wildcards", [GW_E_TOO_LARGE] = "too_large",
    [GW_E_ACL_DENIED] = "acl_denied",           [GW_E_RATE_LIMITED] = "rate_limited",
    [GW_E_AUTH_FAILED] = "auth_failed",         [GW_E_AUTH_REQUIRED] = "auth_required",
    [GW_E_LIMIT_PATTERNS] = "limit_patterns",
};
_Static_assert(GW_E_LIMIT_PATTERNS + 1 == GW_E__COUNT, "every error code needs a name");

const char *gw_errcode_name(gw_errcode_t code)
{
    return code < GW_E__COUNT ? errcode_names[code] : "internal";
}

bool gw_channel_valid(const char *s, size_t len, const char **why)
{
    if (len == 0) {
        *why = "channel is empty";
        return false;
    }
    if (len > GW_CHANNEL_MAX) {
        *why = "channel is longer than 256 bytes";
        return false;
    }
    if (len >= sizeof GW_RESERVED_PREFIX - 1 &&
        !memcmp(s, GW_RESERVED_PREFIX, sizeof GW_RESERVED_PREFIX - 1)) {
        *why = "channels beginning with " GW_RESERVED_PREFIX " are the gateway's own";
        return false;
    }
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            *why = "channel contains a control character";
            return false;
        }
        size_t n = gw_utf8_seq(p + i, len - i);
        if (!n) {
            *why = "channel is not valid UTF-8";
            return false;
        }
        i += n;
    }
    if (gw_glob_is_pattern(s, len)) {
        if (!gw_glob_well_formed(s, len)) {
            *why = "pattern is malformed (unclosed '[' or trailing '\\')";
            return false;
        }
        /* Bounds the cost of the ACL's glob algebra for any pattern a client sends. */
        size_t wild = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '*' || s[i] == '?' || s[i] == '[')
                wild++;
        }
        if (wild > GW_PATTERN_WILDCARDS_MAX) {
            *why = "pattern has more than 8 wildcards (*, ? or [...])";
            return false;
        }
    }
    return true;
}

void gw_perr_set(gw_perr_t *err, gw_errcode_t code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* The id is echoed back verbatim, so it must be small and of a simple type. */
const char *gw_req_take_id(json_t *root, const char *key, bool any_scalar, char **out)
{
    json_t *id = json_object_get(root, key);
    *out = NULL;
    if (!id || json_is_null(id)) return NULL;
    bool ok = json_is_string(id) || json_is_integer(id) ||
              (any_scalar && (json_is_real(id) || json_is_boolean(id)));
    if (!ok)
        return any_scalar ? "must be a string, a number or a boolean"
                          : "must be a string or an integer";
    char *text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text || strlen(text) > GW_ID_MAX) {
        free(text);
        return "is longer than 128 bytes";
    }
    *out = text;
    return NULL;
}

static void add_channel(gw_req_t *req, const char *s, size_t len)
{
    for (size_t j = 0; j < req->nchannels; j++)
        if (req->lens[j] == len && memcmp(req->channels[j], s, len) == 0) return;
    req->channels[req->nchannels] = gw_xstrndup(s, len);
    req->lens[req->nchannels++] = len;
}

int gw_req_take_channels(json_t *root, size_t max, const gw_channels_rules_t *rules, gw_req_t *req,
                         gw_perr_t *err)
{
    json_t *arr = json_object_get(root, "channels");
    if (!json_is_array(arr) || (json_array_size(arr) == 0 && !rules->allow_empty)) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "%s", rules->not_array);
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > max) {
        gw_perr_set(err, GW_E_BAD_REQUEST, rules->too_many, n, max);
        return -1;
    }
    req->channels = gw_xcalloc(n + 1, sizeof *req->channels);
    req->lens = gw_xcalloc(n + 1, sizeof *req->lens);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(arr, i);
        if (!json_is_string(c)) {
            gw_perr_set(err, GW_E_BAD_REQUEST, "%s", rules->not_string);
            return -1;
        }
        const char *s = json_string_value(c);
        size_t len = json_string_length(c);
        const char *why;
        if (rules->validate && !gw_channel_valid(s, len, &why)) {
            gw_perr_set(err, GW_E_INVALID_CHANNEL, "%s", why);
            /* Echo at most the limit so an attacker cannot make us echo megabytes. */
            err->channel = gw_xstrndup(s, len > GW_CHANNEL_MAX ? GW_CHANNEL_MAX : len);
            return -1;
        }
        add_channel(req, s, len);
    }
    return 0;
}

static const gw_channels_rules_t v1_channels = {
    "\"channels\" must be a non-empty array of strings", "\"channels\" must contain only strings",
    "too many channels in one request (%zu, at most %zu)", false, true};

/* Exactly one of "token" / "api_key". Error messages never contain the credential. */
static int take_credential(json_t *root, gw_req_t *req, gw_perr_t *err)
{
    json_t *tok = json_object_get(root, "token"), *key = json_object_get(root, "api_key");
    json_t *v = tok ? tok : key;
    if (!v || (tok && key)) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "auth needs exactly one of \"token\" or \"api_key\"");
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 8192 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "the credential must be a string of 1 to 8192 bytes");
        return -1;
    }
    char *copy = gw_xstrdup(json_string_value(v));
    if (tok)
        req->token = copy;
    else
        req->api_key = copy;
    return 0;
}

static int parse_v1(json_t *root, size_t max_channels, gw_req_t *req, gw_perr_t *err)
{
    const char *why = gw_req_take_id(root, "id", false, &req->id);
    if (why) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "\"id\" %s", why);
        return -1;
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        gw_perr_set(err, GW_E_BAD_REQUEST, "\"type\" must be a string");
        return -1;
    }
    const char *t = json_string_value(type);
    if (!strcmp(t, "subscribe"))
        req->type = GW_REQ_SUBSCRIBE;
    else if (!strcmp(t, "unsubscribe"))
        req->type = GW_REQ_UNSUBSCRIBE;
    else if (!strcmp(t, "ping"))
        req->type = GW_REQ_PING;
    else if (!strcmp(t, "auth"))
        req->type = GW_REQ_AUTH;
    else {
        gw_perr_set(err, GW_E_UNKNOWN_TYPE,
                    "unknown \"type\"; expected subscribe, unsubscribe, ping or auth");
        return -1;
    }
    if (req->type == GW_REQ_AUTH) return take_credential(root, req, err);
    if (req->type == GW_REQ_SUBSCRIBE || req->type == GW_REQ_UNSUBSCRIBE)
        return gw_req_take_channels(root, max_channels, &v1_channels, req, err);
    return 0;
}

/* The frame's own dialect: "action" without "type" is the legacy gateway's. */
static gw_dialect_t frame_dialect(json_t *root)
{
    if (json_object_get(root, "type")) return GW_DIALECT_V1;
    return json_object_get(root, "action") ? GW_DIALECT_LEGACY : GW_DIALECT_UNKNOWN;
}

int gw_req_parse(const char *buf, size_t len, size_t max_channels_per_request,
                 gw_dialect_t *dialect, gw_req_t *req, gw_perr_t *err)
{
    json_error_t jerr;
    memset(req, 0, sizeof *req);
    memset(err, 0, sizeof *err);

    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        if (*dialect == GW_DIALECT_LEGACY)
            gw_perr_set(err, GW_E_BAD_REQUEST, "Invalid JSON");
        else if (!root)
            gw_perr_set(err, GW_E_BAD_REQUEST, "invalid JSON at position %d: %s", jerr.position,
                        jerr.text);
        else
            gw_perr_set(err, GW_E_BAD_REQUEST, "a frame must be a JSON object");
        json_decref(root);
        return -1;
    }
    if (*dialect == GW_DIALECT_UNKNOWN) *dialect = frame_dialect(root);
    int rc = *dialect == GW_DIALECT_LEGACY
                 ? gw_legacy_parse(root, max_channels_per_request, req, err)
                 : parse_v1(root, max_channels_per_request, req, err);
    json_decref(root);
    if (rc < 0) {
        err->id = req->id; /* hand the id over so the error can echo it */
        req->id = NULL;
        gw_req_free(req);
    }
    return rc;
}

void gw_req_free(gw_req_t *req)
{
    for (size_t i = 0; i < req->nchannels; i++) free(req->channels[i]);
    free(req->channels);
    free(req->lens);
    free(req->id);
    if (req->token) memset(req->token, 0, strlen(req->token));
    if (req->api_key) memset(req->api_key, 0, strlen(req->api_key));
    free(req->token);
    free(req->api_key);
    memset(req, 0, sizeof *req);
}

void gw_perr_free(gw_perr_t *err)
{
    free(err->id);
    free(err->channel);
    err->id = err->channel = NULL;
}

/*------------------------------------------------------------------------------
 * Control frames */

static void put_id(gw_buf_t *b, const char *id)
{
    if (!id) return;
    gw_buf_puts(b, ",\"id\":");
    gw_buf_puts(b, id);
}

gw_msg_t *gw_frame_welcome(const char *node, const char *session, const char *role,
                           const char *auth_error)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"welcome\",\"node\":");
    gw_json_put_string(&b, node, strlen(node));
    gw_buf_puts(&b, ",\"session\":");
    gw_json_put_string(&b, session, strlen(session));
    gw_buf_puts(&b, ",\"role\":");
    gw_json_put_string(&b, role, strlen(role));
    if (auth_error) {
        gw_buf_puts(&b, ",\"auth_error\":");
        gw_json_put_string(&b, auth_error, strlen(auth_error));
    }
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_ack(const char *type, const char *id, char *const *channels, const size_t *lens,
                       size_t n, const char *reason)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"%s\"", type);
    put_id(&b, id);
    gw_buf_puts(&b, ",\"channels\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) gw_buf_putc(&b, ',');
        gw_json_put_string(&b, channels[i], lens[i]);
    }
    gw_buf_putc(&b, ']');
    if (reason) gw_buf_printf(&b, ",\"reason\":\"%s\"", reason);
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_pong(const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"pong\"");
    put_id(&b, id);
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_error(gw_errcode_t code, const char *message, const char *id,
                         const char *channel)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":", gw_errcode_name(code));
    gw_json_put_string(&b, message, strlen(message));
    put_id(&b, id);
    if (channel) {
        gw_buf_puts(&b, ",\"channel\":");
        gw_json_put_string(&b, channel, strlen(channel));
    }
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_resync(const char *reason)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"resync\",\"reason\":\"%s\"", reason);
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_authenticated(const char *role, int64_t expires, const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"authenticated\"");
    put_id(&b, id);
    gw_buf_puts(&b, ",\"role\":");
    gw_json_put_string(&b, role, strlen(role));
    if (expires) gw_buf_printf(&b, ",\"expires_at\":%lld", (long long)expires);
    return gw_msg_new_control(&b);
}

gw_msg_t *gw_frame_auth_expiring(int64_t expires, int64_t expires_in_s)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"auth_expiring\",\"expires_at\":%lld,\"expires_in\":%lld",
                  (long long)expires, (long long)expires_in_s);
    return gw_msg_new_control(&b);
}

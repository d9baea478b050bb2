#include "proto.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "json.h"

static const char *const errcode_names[GW_E__COUNT] = {
    [GW_E_BAD_REQUEST] = "bad_request",         [GW_E_UNKNOWN_TYPE] = "unknown_type",
    [GW_E_INVALID_CHANNEL] = "invalid_channel", [GW_E_LIMIT_CHANNELS] = "limit_channels",
    [GW_E_LIMIT_WILDCARDS] = "limit_wildcards", [GW_E_TOO_LARGE] = "too_large",
    [GW_E_ACL_DENIED] = "acl_denied",           [GW_E_RATE_LIMITED] = "rate_limited",
    [GW_E_AUTH_FAILED] = "auth_failed",         [GW_E_AUTH_REQUIRED] = "auth_required",
};
_Static_assert(GW_E_AUTH_REQUIRED + 1 == GW_E__COUNT, "every error code needs a name");

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

static void set_err(gw_perr_t *err, gw_errcode_t code, const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
}

/* The id is echoed back verbatim, so it must be small and of a simple type. */
static int take_id(json_t *root, gw_perr_t *err, char **out)
{
    json_t *id = json_object_get(root, "id");
    *out = NULL;
    if (!id || json_is_null(id)) return 0;
    if (!json_is_string(id) && !json_is_integer(id)) {
        set_err(err, GW_E_BAD_REQUEST, "\"id\" must be a string or an integer");
        return -1;
    }
    char *text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text || strlen(text) > GW_ID_MAX) {
        free(text);
        set_err(err, GW_E_BAD_REQUEST, "\"id\" is longer than 128 bytes");
        return -1;
    }
    *out = text;
    return 0;
}

static int take_channels(json_t *root, size_t max, gw_req_t *req, gw_perr_t *err)
{
    json_t *arr = json_object_get(root, "channels");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        set_err(err, GW_E_BAD_REQUEST, "\"channels\" must be a non-empty array of strings");
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > max) {
        snprintf(err->message, sizeof err->message,
                 "too many channels in one request (%zu, at most %zu)", n, max);
        err->code = GW_E_BAD_REQUEST;
        return -1;
    }
    req->channels = gw_xcalloc(n, sizeof *req->channels);
    req->lens = gw_xcalloc(n, sizeof *req->lens);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(arr, i);
        if (!json_is_string(c)) {
            set_err(err, GW_E_BAD_REQUEST, "\"channels\" must contain only strings");
            return -1;
        }
        const char *s = json_string_value(c);
        size_t len = json_string_length(c);
        const char *why;
        if (!gw_channel_valid(s, len, &why)) {
            set_err(err, GW_E_INVALID_CHANNEL, why);
            /* Echo at most the limit so an attacker cannot make us echo megabytes. */
            err->channel = gw_xstrndup(s, len > GW_CHANNEL_MAX ? GW_CHANNEL_MAX : len);
            return -1;
        }
        bool dup = false;
        for (size_t j = 0; j < req->nchannels && !dup; j++)
            dup = req->lens[j] == len && memcmp(req->channels[j], s, len) == 0;
        if (dup) continue;
        req->channels[req->nchannels] = gw_xstrndup(s, len);
        req->lens[req->nchannels++] = len;
    }
    return 0;
}

/* Exactly one of "token" / "api_key". Error messages never contain the credential. */
static int take_credential(json_t *root, gw_req_t *req, gw_perr_t *err)
{
    json_t *tok = json_object_get(root, "token"), *key = json_object_get(root, "api_key");
    json_t *v = tok ? tok : key;
    if (!v || (tok && key)) {
        set_err(err, GW_E_BAD_REQUEST, "auth needs exactly one of \"token\" or \"api_key\"");
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 8192 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        set_err(err, GW_E_BAD_REQUEST, "the credential must be a string of 1 to 8192 bytes");
        return -1;
    }
    char *copy = gw_xstrdup(json_string_value(v));
    if (tok)
        req->token = copy;
    else
        req->api_key = copy;
    return 0;
}

int gw_req_parse(const char *buf, size_t len, size_t max_channels_per_request, gw_req_t *req,
                 gw_perr_t *err)
{
    json_error_t jerr;
    memset(req, 0, sizeof *req);
    memset(err, 0, sizeof *err);

    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err->message, sizeof err->message, "invalid JSON at position %d: %s",
                 jerr.position, jerr.text);
        err->code = GW_E_BAD_REQUEST;
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        set_err(err, GW_E_BAD_REQUEST, "a frame must be a JSON object");
        goto Exit;
    }
    if (take_id(root, err, &req->id) < 0) goto Exit;
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        set_err(err, GW_E_BAD_REQUEST, "\"type\" must be a string");
        goto Exit;
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
        set_err(err, GW_E_UNKNOWN_TYPE,
                "unknown \"type\"; expected subscribe, unsubscribe, ping or auth");
        goto Exit;
    }
    if (req->type == GW_REQ_AUTH && take_credential(root, req, err) < 0) goto Exit;
    if ((req->type == GW_REQ_SUBSCRIBE || req->type == GW_REQ_UNSUBSCRIBE) &&
        take_channels(root, max_channels_per_request, req, err) < 0)
        goto Exit;
    rc = 0;
Exit:
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

static gw_msg_t *finish(gw_buf_t *b)
{
    gw_buf_puts(b, ",\"seq\":");
    return gw_msg_new_control(b);
}

gw_msg_t *gw_frame_welcome(const char *node, const char *session, const char *role)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"welcome\",\"node\":");
    gw_json_put_string(&b, node, strlen(node));
    gw_buf_puts(&b, ",\"session\":");
    gw_json_put_string(&b, session, strlen(session));
    gw_buf_puts(&b, ",\"role\":");
    gw_json_put_string(&b, role, strlen(role));
    return finish(&b);
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
    return finish(&b);
}

gw_msg_t *gw_frame_pong(const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"pong\"");
    put_id(&b, id);
    return finish(&b);
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
    return finish(&b);
}

gw_msg_t *gw_frame_resync(const char *reason)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"resync\",\"reason\":\"%s\"", reason);
    return finish(&b);
}

gw_msg_t *gw_frame_authenticated(const char *role, int64_t expires, const char *id)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_puts(&b, "{\"type\":\"authenticated\"");
    put_id(&b, id);
    gw_buf_puts(&b, ",\"role\":");
    gw_json_put_string(&b, role, strlen(role));
    if (expires) gw_buf_printf(&b, ",\"expires_at\":%lld", (long long)expires);
    return finish(&b);
}

gw_msg_t *gw_frame_auth_expiring(int64_t expires, int64_t expires_in_s)
{
    gw_buf_t b = GW_BUF_INIT;
    gw_buf_printf(&b, "{\"type\":\"auth_expiring\",\"expires_at\":%lld,\"expires_in\":%lld",
                  (long long)expires, (long long)expires_in_s);
    return finish(&b);
}

/* Fuzz target: Redis payloads and channel names into envelopes, and the glob algebra.
 * Properties: an envelope is always valid JSON (whatever the payload bytes), its legacy
 * twin carries the same channel, pattern and data, the validator
 * never accepts what jansson rejects, and glob matching terminates on any input. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "json.h"
#include "msg.h"

/* jansson refuses numbers beyond int64/double range; JSON itself has no such limit
 * (browsers parse them, losing precision), so that refusal is not a finding. */
static int number_limit(const json_error_t *err)
{
    return strstr(err->text, "too big") || strstr(err->text, "overflow");
}

/* The frame m makes with seq 42, parsed. */
static json_t *frame_json(gw_msg_t *m, json_error_t *err)
{
    size_t wire = gw_msg_wire_len(m, 42);
    unsigned char *out = malloc(wire);
    if (gw_msg_write_frame(m, 42, out) != wire) abort();
    size_t h = out[1] == 126 ? 4 : out[1] == 127 ? 10 : 2;
    json_t *v = json_loadb((char *)out + h, wire - h, JSON_ALLOW_NUL, err);
    free(out);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    size_t split = size ? data[0] % (size + 1) : 0;
    if (split > size) split = size;

    gw_msg_t *m = gw_msg_new_message(d, split, size % 2 ? d : NULL, size % 2 ? split : 0, d + split,
                                     size - split, 0, 1764557735310644u);
    json_error_t err;
    json_t *v = frame_json(m, &err);
    if (!v && !number_limit(&err)) abort(); /* the envelope must always be valid JSON */
    /* The legacy envelope, derived from the v1 text, must say the same thing. */
    json_t *l = frame_json(gw_msg_legacy(m), &err);
    if (!l != !v) abort();
    if (v) {
        json_t *ld = json_object_get(l, "data");
        if (m->data_is_string) ld = json_object_get(ld, "raw"); /* not JSON: wrapped */
        if (!json_equal(ld, json_object_get(v, "data")) ||
            !json_equal(json_object_get(l, "channel"), json_object_get(v, "channel")) ||
            !json_is_string(json_object_get(l, "timestamp")))
            abort();
        json_t *vp = json_object_get(v, "pattern"), *lp = json_object_get(l, "pattern");
        if (vp ? !json_equal(vp, lp) : !json_is_null(lp)) abort();
    }
    json_decref(v);
    json_decref(l);
    gw_msg_unref(m);

    if (gw_json_valid(d, size)) {
        v = json_loadb(d, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!v && !number_limit(&err)) abort();
        json_decref(v);
    }

    if (gw_glob_well_formed(d, split)) (void)gw_glob_match(d, split, d + split, size - split);
    (void)gw_glob_match(d + split, size - split, d, split);
    return 0;
}

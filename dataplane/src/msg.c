#include "msg.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hash.h"
#include "json.h"

static gw_msg_t *alloc_msg(const char *text, size_t len, const char *chan, size_t chlen)
{
    gw_msg_t *m = gw_xmalloc(sizeof *m + len + chlen + 1);
    m->refcnt = 1;
    m->qrefs = 0;
    m->len = (uint32_t)len;
    memcpy(m->data, text, len);
    memcpy(m->data + len, chan, chlen);
    m->data[len + chlen] = '\0';
    m->chan = m->data + len;
    m->chan_len = (uint32_t)chlen;
    m->chan_hash = chlen ? gw_hash(chan, chlen) : 0;
    m->rx_us = m->rx_unix_us = 0;
    m->legacy = NULL;
    m->pat_off = m->pat_len = m->data_off = 0;
    m->data_is_string = m->is_data = false;
    m->acl_key[0] = m->acl_key[1] = NULL;
    return m;
}

#define V1_HEAD  "{\"type\":\"message\",\"channel\":"
#define SEQ_TAIL ",\"seq\":"

gw_msg_t *gw_msg_new_message(const char *chan, size_t chlen, const char *pattern, size_t plen,
                             const char *data, size_t dlen, uint64_t rx_us, uint64_t rx_unix_us)
{
    /* One scratch buffer for the loop thread: envelopes are built one at a time. */
    static gw_buf_t scratch = GW_BUF_INIT;
    size_t pat_off = 0, pat_len = 0;

    scratch.len = 0;
    gw_buf_reserve(&scratch, chlen + plen + dlen + 64);
    gw_buf_puts(&scratch, V1_HEAD);
    gw_json_put_string(&scratch, chan, chlen);
    if (pattern) {
        gw_buf_puts(&scratch, ",\"pattern\":");
        pat_off = scratch.len;
        gw_json_put_string(&scratch, pattern, plen);
        pat_len = scratch.len - pat_off;
    }
    gw_buf_puts(&scratch, ",\"data\":");
    size_t data_off = scratch.len;
    bool is_json = gw_json_valid(data, dlen);
    if (is_json)
        gw_buf_append(&scratch, data, dlen);
    else
        gw_json_put_string(&scratch, data, dlen);
    gw_buf_puts(&scratch, SEQ_TAIL);

    gw_msg_t *m = alloc_msg(scratch.data, scratch.len, chan, chlen);
    m->rx_us = rx_us;
    m->rx_unix_us = rx_unix_us;
    m->pat_off = (uint32_t)pat_off;
    m->pat_len = (uint32_t)pat_len;
    m->data_off = (uint32_t)data_off;
    m->data_is_string = !is_json;
    m->is_data = true;
    /* Do not keep a huge buffer alive because of one big message. */
    if (scratch.cap > (1u << 20)) gw_buf_free(&scratch);
    return m;
}

gw_msg_t *gw_msg_new_control(gw_buf_t *b)
{
    gw_buf_puts(b, SEQ_TAIL);
    gw_msg_t *m = alloc_msg(b->data, b->len, "", 0);
    gw_buf_free(b);
    return m;
}

gw_msg_t *gw_msg_legacy(gw_msg_t *m)
{
    assert(m->is_data); /* Redis messages only: control frames have no spans */
    if (m->legacy) return m->legacy;
    /* The spans of the v1 text: channel right after the head, up to the pattern or data
     * key; data up to the seq tail. Both are already JSON-encoded: copied, not redone. */
    const char *chan_json = m->data + sizeof V1_HEAD - 1;
    const char *chan_end = m->pat_len ? m->data + m->pat_off - (sizeof ",\"pattern\":" - 1)
                                      : m->data + m->data_off - (sizeof ",\"data\":" - 1);
    const char *val = m->data + m->data_off;
    size_t vlen = m->len - m->data_off - (sizeof SEQ_TAIL - 1);
    char ts[GW_ISO8601_LEN];
    gw_buf_t b = GW_BUF_INIT;

    gw_buf_reserve(&b, m->len + 96);
    gw_buf_puts(&b, "{\"type\":\"data\",\"channel\":");
    gw_buf_append(&b, chan_json, (size_t)(chan_end - chan_json));
    gw_buf_puts(&b, ",\"pattern\":");
    if (m->pat_len)
        gw_buf_append(&b, m->data + m->pat_off, m->pat_len);
    else
        gw_buf_puts(&b, "null");
    gw_buf_puts(&b, m->data_is_string ? ",\"data\":{\"raw\":" : ",\"data\":");
    gw_buf_append(&b, val, vlen);
    gw_buf_printf(&b, "%s,\"timestamp\":\"%s\"" SEQ_TAIL, m->data_is_string ? "}" : "",
                  gw_iso8601(m->rx_unix_us, ts));

    gw_msg_t *l = alloc_msg(b.data, b.len, m->chan, m->chan_len);
    gw_buf_free(&b);
    l->rx_us = m->rx_us;
    l->rx_unix_us = m->rx_unix_us;
    l->is_data = true;
    m->legacy = l;
    return l;
}

void gw_msg_drop_legacy(gw_msg_t *m)
{
    gw_msg_unref(m->legacy);
    m->legacy = NULL;
}

void gw_msg_unref(gw_msg_t *m)
{
    if (!m) return;
    if (--m->refcnt == 0) {
        gw_msg_unref(m->legacy);
        free(m);
    }
}

static size_t digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static size_t hdr_len(size_t payload)
{
    return payload < 126 ? 2 : payload <= 0xffff ? 4 : 10;
}

size_t gw_msg_wire_len(const gw_msg_t *m, uint64_t seq)
{
    size_t payload = m->len + digits(seq) + 1;
    return hdr_len(payload) + payload;
}

size_t gw_msg_write_frame(const gw_msg_t *m, uint64_t seq, unsigned char *out)
{
    size_t payload = m->len + digits(seq) + 1;
    size_t h = 0;

    out[h++] = 0x81; /* FIN + text */
    if (payload < 126) {
        out[h++] = (unsigned char)payload;
    } else if (payload <= 0xffff) {
        out[h++] = 126;
        out[h++] = (unsigned char)(payload >> 8);
        out[h++] = (unsigned char)payload;
    } else {
        out[h++] = 127;
        for (int i = 7; i >= 0; i--) out[h++] = (unsigned char)((uint64_t)payload >> (8 * i));
    }
    memcpy(out + h, m->data, m->len);
    h += m->len;
    h += gw_u64toa(seq, (char *)out + h);
    out[h++] = '}';
    return h;
}

#include "json.h"

#include <string.h>

size_t gw_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return (avail >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
        if (c == 0xed && s[1] > 0x9f) return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xf4 && s[1] > 0x8f) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool parse_string(cursor_t *c)
{
    c->p++; /* opening quote */
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20) return false;
        if (ch == '\\') {
            if (++c->p >= c->end) return false;
            switch (*c->p) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': c->p++; break;
            case 'u':
                if (c->end - c->p < 5) return false;
                for (int i = 1; i <= 4; i++)
                    if (!is_hex(c->p[i])) return false;
                c->p += 5;
                break;
            default: return false;
            }
            continue;
        }
        if (ch < 0x80) {
            c->p++;
            continue;
        }
        size_t n = gw_utf8_seq(c->p, (size_t)(c->end - c->p));
        if (!n) return false;
        c->p += n;
    }
    return false;
}

static bool parse_digits(cursor_t *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > start;
}

static bool parse_number(cursor_t *c)
{
    if (*c->p == '-') c->p++;
    if (c->p >= c->end) return false;
    if (*c->p == '0')
        c->p++;
    else if (!parse_digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!parse_digits(c)) return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (!parse_digits(c)) return false;
    }
    return true;
}

static bool parse_literal(cursor_t *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return false;
    c->p += n;
    return true;
}

static bool parse_value(cursor_t *c, int depth);

static bool parse_container(cursor_t *c, int depth, unsigned char close, bool object)
{
    if (depth >= GW_JSON_MAX_DEPTH) return false;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
    }
    for (;;) {
        if (object) {
            skip_ws(c);
            if (c->p >= c->end || *c->p != '"' || !parse_string(c)) return false;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return false;
            c->p++;
        }
        if (!parse_value(c, depth + 1)) return false;
        skip_ws(c);
        if (c->p >= c->end) return false;
        if (*c->p == close) {
            c->p++;
            return true;
        }
        if (*c->p != ',') return false;
        c->p++;
    }
}

static bool parse_value(cursor_t *c, int depth)
{
    skip_ws(c);
    if (c->p >= c->end) return false;
    switch (*c->p) {
    case '{': return parse_container(c, depth, '}', true);
    case '[': return parse_container(c, depth, ']', false);
    case '"': return parse_string(c);
    case 't': return parse_literal(c, "true", 4);
    case 'f': return parse_literal(c, "false", 5);
    case 'n': return parse_literal(c, "null", 4);
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return parse_number(c);
        return false;
    }
}

bool gw_json_valid(const char *s, size_t len)
{
    cursor_t c = {(const unsigned char *)s, (const unsigned char *)s + len};
    if (!parse_value(&c, 0)) return false;
    skip_ws(&c);
    return c.p == c.end;
}

void gw_json_put_string(gw_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    gw_buf_reserve(b, len + 2);
    gw_buf_putc(b, '"');
    while (p < end) {
        /* Copy the longest run that needs no escaping in one go. */
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) p++;
        if (p > run) gw_buf_append(b, run, (size_t)(p - run));
        if (p >= end) break;
        unsigned char ch = *p;
        if (ch >= 0x80) {
            size_t n = gw_utf8_seq(p, (size_t)(end - p));
            if (n) {
                gw_buf_append(b, p, n);
                p += n;
            } else {
                gw_buf_puts(b, "\\ufffd");
                p++;
            }
            continue;
        }
        p++;
        switch (ch) {
        case '"': gw_buf_puts(b, "\\\""); break;
        case '\\': gw_buf_puts(b, "\\\\"); break;
        case '\n': gw_buf_puts(b, "\\n"); break;
        case '\r': gw_buf_puts(b, "\\r"); break;
        case '\t': gw_buf_puts(b, "\\t"); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            gw_buf_append(b, esc, 6);
        }
        }
    }
    gw_buf_putc(b, '"');
}

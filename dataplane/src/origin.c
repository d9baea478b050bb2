#include "origin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

/* http(s)://host[:port]: what a browser puts in Origin. */
static bool origin_well_formed(const char *s, size_t len)
{
    size_t skip = !strncasecmp(s, "https://", 8) ? 8 : !strncasecmp(s, "http://", 7) ? 7 : 0;
    if (!skip || len <= skip || len > GW_ORIGIN_MAX) return false;
    for (size_t i = skip; i < len; i++)
        if (s[i] == '/' || s[i] <= ' ' || s[i] == 0x7f || s[i] == ',') return false;
    return true;
}

int gw_origins_parse(const char *list, bool allow_any, gw_origins_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && *a == ' ') a++;
        while (b > a && b[-1] == ' ') b--;
        if (b > a && b[-1] == '/') b--; /* "https://ui.example.com/" means the origin */
        size_t len = (size_t)(b - a);
        p = *end ? end + 1 : end;
        if (len == 0) continue;
        if (len == 1 && *a == '*' && allow_any) {
            out->any = true;
            continue;
        }
        if (!origin_well_formed(a, len)) {
            snprintf(err, errlen, "'%.*s' is not an origin like https://ui.example.com%s",
                     (int)(len > 64 ? 64 : len), a, allow_any ? " or *" : "");
            gw_origins_free(out);
            return -1;
        }
        out->v = gw_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = gw_xstrndup(a, len);
    }
    return 0;
}

bool gw_origins_match(const gw_origins_t *o, const char *origin, size_t len)
{
    if (o->any) return true;
    for (size_t i = 0; i < o->n; i++)
        if (strlen(o->v[i]) == len && !strncasecmp(o->v[i], origin, len)) return true;
    return false;
}

void gw_origins_free(gw_origins_t *o)
{
    for (size_t i = 0; i < o->n; i++) free(o->v[i]);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* origin.h - lists of browser origins: ALLOWED_ORIGINS (who may open /ws) and
 * CORS_ALLOW_ORIGINS (who may read the HTTP endpoints from a page).
 *
 * An entry is an origin as browsers send it, scheme://host[:port] (http or https, no
 * path); "*" means any where the list allows it. Matching ignores case, as origins do.
 * Ownership: gw_origins_parse() fills a list the caller frees with gw_origins_free().
 */
#ifndef GW_ORIGIN_H
#define GW_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

#define GW_ORIGIN_MAX 256 /* bytes of one origin */

typedef struct {
    char **v;
    size_t n;
    bool any; /* "*" */
} gw_origins_t;

/* Parses a comma-separated list (empty: an empty list). Returns 0, or -1 with the bad
 * entry named in err. */
int gw_origins_parse(const char *list, bool allow_any, gw_origins_t *out, char *err, size_t errlen);

/* Whether origin (an Origin header's value) is in the list. */
bool gw_origins_match(const gw_origins_t *o, const char *origin, size_t len);

void gw_origins_free(gw_origins_t *o);

#endif

/* assets.h - the static files of the dashboard page, compiled into the binary from
 * dataplane/web (cmake/embed.cmake), so the node needs no files at run time. */
#ifndef GW_ASSETS_H
#define GW_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* URL path */
    const char *type; /* Content-Type */
    const char *data;
    size_t len;
} gw_asset_t;

/* NULL when path is not an asset. */
const gw_asset_t *gw_asset_find(const char *path);

#endif

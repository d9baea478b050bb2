/* buf.h - a growable byte buffer and the allocation helpers everything else uses.
 *
 * gw_buf_t owns its storage; gw_buf_free() releases it (NULL-safe on an empty buffer).
 * gw_xmalloc & co abort on out-of-memory: sizes a peer controls are checked against
 * configured limits before they reach an allocator, so OOM here is a host problem.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>
#include <stdint.h>

void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t n, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t n);

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} gw_buf_t;

#define GW_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void gw_buf_reserve(gw_buf_t *b, size_t extra);
void gw_buf_append(gw_buf_t *b, const void *p, size_t n);
void gw_buf_puts(gw_buf_t *b, const char *s);
void gw_buf_putc(gw_buf_t *b, char c);
void gw_buf_printf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_buf_u64(gw_buf_t *b, uint64_t v);
void gw_buf_free(gw_buf_t *b);

/* Appends the contents of a file, at most max bytes. Returns 0, or -1 when it cannot be
 * opened or is larger than max. */
int gw_buf_read_file(gw_buf_t *b, const char *path, size_t max);

/* Replaces path with data atomically: a temporary file beside it (a random name, created
 * exclusively, not through a symbolic link; mode 0600), fsync, rename. A crash leaves
 * the old file or the new one, never a torn one. Returns 0, or -1 with a reason. */
int gw_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Writes the decimal form of v into out (at least 20 bytes); returns its length. */
size_t gw_u64toa(uint64_t v, char *out);

#endif

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "level=error sub=alloc event=out_of_memory bytes=%zu\n", n);
    abort();
}

void *gw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *gw_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *gw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *gw_xstrndup(const char *s, size_t n)
{
    char *p = gw_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gw_xstrdup(const char *s)
{
    return gw_xstrndup(s, strlen(s));
}

void gw_buf_reserve(gw_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = gw_xrealloc(b->data, cap);
    b->cap = cap;
}

void gw_buf_append(gw_buf_t *b, const void *p, size_t n)
{
    gw_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void gw_buf_puts(gw_buf_t *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void gw_buf_putc(gw_buf_t *b, char c)
{
    gw_buf_append(b, &c, 1);
}

void gw_buf_printf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    gw_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int gw_buf_read_file(gw_buf_t *b, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char chunk[4096];
    size_t n, start = b->len;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b->len - start <= max)
        gw_buf_append(b, chunk, n);
    fclose(f);
    gw_buf_reserve(b, 0); /* always NUL-terminated, even when empty */
    b->data[b->len] = '\0';
    return b->len - start > max ? -1 : 0;
}

size_t gw_u64toa(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

void gw_buf_u64(gw_buf_t *b, uint64_t v)
{
    gw_buf_reserve(b, 20);
    b->len += gw_u64toa(v, b->data + b->len);
    b->data[b->len] = '\0';
}

void gw_buf_free(gw_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* A temporary file beside path that nobody could have prepared: a random name, created
 * exclusively, never through a symbolic link (a predictable name and O_TRUNC let
 * whoever can write the directory make us overwrite another file). */
static int create_temp(const char *path, gw_buf_t *tmp)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        unsigned char r[8];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return -1;
        tmp->len = 0;
        gw_buf_printf(tmp, "%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", path, r[0], r[1], r[2], r[3],
                      r[4], r[5], r[6], r[7]);
        int fd = open(tmp->data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

int gw_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    gw_buf_t tmp = GW_BUF_INIT;
    int rc = -1, fd = create_temp(path, &tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", tmp.data, strerror(errno));
        goto Exit;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    if (off != len || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", tmp.data, strerror(errno));
        close(fd);
        unlink(tmp.data);
        goto Exit;
    }
    close(fd);
    if (rename(tmp.data, path) != 0) {
        snprintf(err, errlen, "cannot rename to '%s': %s", path, strerror(errno));
        unlink(tmp.data);
        goto Exit;
    }
    rc = 0;
Exit:
    gw_buf_free(&tmp);
    return rc;
}

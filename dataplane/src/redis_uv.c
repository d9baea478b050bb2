#include "redis_uv.h"

#include <stdlib.h>

typedef struct {
    redisAsyncContext *ac; /* NULL once hiredis has let go of the events */
    uv_poll_t poll;
    int events;
} uv_events_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    uv_events_t *p = h->data;
    if (status < 0) {
        /* The socket failed (a refused connect, a reset): let hiredis find out which,
         * by the call that matches where it is. */
        if (!p->ac) return;
        if (!(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else
            redisAsyncHandleRead(p->ac);
        return;
    }
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void update(uv_events_t *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d)
{
    uv_events_t *p = d;
    update(p, p->events | UV_READABLE);
}

static void del_read(void *d)
{
    uv_events_t *p = d;
    update(p, p->events & ~UV_READABLE);
}

static void add_write(void *d)
{
    uv_events_t *p = d;
    update(p, p->events | UV_WRITABLE);
}

static void del_write(void *d)
{
    uv_events_t *p = d;
    update(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *d)
{
    uv_events_t *p = d;
    p->ac = NULL; /* the context is going away; a callback already queued must not use it */
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;
    uv_events_t *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}

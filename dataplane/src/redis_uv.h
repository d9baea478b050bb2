/* redis_uv.h - hiredis' async events on a libuv loop.
 *
 * hiredis 0.14's own adapter (adapters/libuv.h) ignores a poll that reports an error:
 * a refused connect is then noticed only when the connect timeout expires, so reconnect
 * backoff never applies. This one hands errors to hiredis, which reads the socket's
 * error and reports it through the connect or disconnect callback at once.
 *
 * Ownership: the events live with the context; hiredis' cleanup hook closes the poll
 * handle, and the memory is freed in its close callback.
 */
#ifndef GW_REDIS_UV_H
#define GW_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns REDIS_OK, or REDIS_ERR (the context is then still the caller's to free). */
int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif

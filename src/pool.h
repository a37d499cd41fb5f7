/* A bump allocator for objects that live and die together: a config snapshot and all it
 * owns, or a one-off build.  No per-object free; pool_free() releases everything at once. */
#ifndef MG_POOL_H
#define MG_POOL_H

#include <stddef.h>

struct pool;

struct pool *pool_new(void);
void pool_free(struct pool *p);
/* Free everything allocated so far (cleanups run) but keep one chunk for what comes next:
 * a scratch pool reused per item. */
void pool_reset(struct pool *p);
/* Zeroed memory, aligned to 8 bytes: enough for pointers and 64-bit integers, not for
 * over-aligned types (which do not belong in a pool).  Aborts on allocation failure
 * (control thread only). */
void *pool_alloc(struct pool *p, size_t size);
void *pool_calloc(struct pool *p, size_t n, size_t size);
char *pool_strndup(struct pool *p, const char *s, size_t len);
char *pool_strdup(struct pool *p, const char *s);
char *pool_printf(struct pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Grow an array allocated from the pool (old memory is abandoned until pool_free). */
void *pool_grow(struct pool *p, void *old, size_t old_n, size_t new_n, size_t size);
size_t pool_bytes(const struct pool *p);
/* Run fn(arg) when the pool is freed (newest first): for foreign objects such as PCRE2
 * codes that the pool's memory points at. */
void pool_on_free(struct pool *p, void (*fn)(void *), void *arg);

#endif

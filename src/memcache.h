/* Per-thread caches of freed blocks, by power-of-two size class, in front of malloc: for the
 * allocations libevent (buffer chains, buffers) and nghttp2 (streams, header buffers) make
 * and free at request rate.  glibc keeps only 7 freed blocks per size in its per-thread
 * cache; with hundreds of requests in flight the rest go through its bins and their locks.
 *
 * Every block is a plain malloc block (no header: a freed block's class comes from
 * malloc_usable_size), so memory needs no more than before and any block may be freed with
 * free().  Only threads that call memcache_thread_begin() (the workers) keep blocks, at
 * most 256 KiB or 2048 blocks per class and thread, handed back by memcache_thread_end();
 * blocks may be freed on any thread.  Builds with AddressSanitizer keep nothing and round
 * nothing up, so it still sees every overflow and use after free. */
#ifndef MG_MEMCACHE_H
#define MG_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

void *memcache_malloc(size_t n);
void *memcache_calloc(size_t n, size_t size);
void *memcache_realloc(void *p, size_t n);
void memcache_free(void *p);

void memcache_thread_begin(void);
void memcache_thread_end(void);
/* Free the blocks this thread kept that were not needed since its previous call (the ones
 * its cache never dipped into): the worker calls it once a second, so a burst's blocks are
 * kept for the next burst but not for ever. */
void memcache_trim(void);
/* Blocks this thread keeps (for tests). */
unsigned memcache_kept(void);
/* Does this thread keep freed blocks (after memcache_thread_begin, without ASan)? */
bool memcache_caching(void);

/* libevent's allocations go through the cache (before any other libevent call). */
void memcache_install_libevent(void);
/* The allocator to give nghttp2 sessions (nghttp2_session_*_new3). */
nghttp2_mem *memcache_nghttp2(void);

#endif

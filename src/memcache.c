#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "memcache.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEMCACHE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMCACHE_OFF 1
#endif
#endif

/* Classes: 24 B (glibc's smallest block: rounding up to it costs nothing), then powers of
 * two to 32 KiB (libevent's buffer chains up to the 32 KiB read).  A request is rounded up
 * to its class so that the block serves the class again once freed; never below glibc's
 * own granularity at the small end, where libevent's per-descriptor entries of every idle
 * connection are. */
#define NCLASSES 12
/* Kept per class and thread: bytes, and blocks at most.  Enough for the allocations of a
 * burst of hundreds of HTTP/2 streams in flight; memcache_trim() gives back what a quiet
 * second did not use. */
#define CLASS_BYTES_MAX (1024 * 1024)
#define CLASS_COUNT_MAX 2048

struct block {
	struct block *next;
};

struct cache {
	struct block *head;
	unsigned n, max;
	unsigned low; /* fewest blocks kept since the last memcache_trim() */
};

static __thread struct cache caches[NCLASSES];
static __thread bool active;

static size_t class_size(int c)
{
	return c == 0 ? 24 : (size_t)1 << (4 + c);
}

/* The class whose blocks can all hold n bytes (the smallest size >= n), or -1. */
static int class_up(size_t n)
{
	int c;

	if (n <= 24)
		return 0;
	c = 64 - __builtin_clzl((unsigned long)(n - 1)) - 4; /* 2^(c+4) >= n */
	return c < NCLASSES ? c : -1;
}

/* The class a block of usable size u can serve (the largest size <= u), or -1; blocks far
 * larger than the largest class are not kept. */
static int class_down(size_t u)
{
	int c;

	if (u < 24)
		return -1;
	if (u < 32)
		return 0;
	c = 63 - __builtin_clzl((unsigned long)u) - 4; /* 2^(c+4) <= u */
	if (c >= NCLASSES)
		return u < 2 * class_size(NCLASSES - 1) ? NCLASSES - 1 : -1;
	return c;
}

void *memcache_malloc(size_t n)
{
	int c = class_up(n);

	if (c < 0 || !active)
		return malloc(n);
	if (caches[c].head != NULL) {
		struct block *b = caches[c].head;

		caches[c].head = b->next;
		if (--caches[c].n < caches[c].low)
			caches[c].low = caches[c].n;
		return b;
	}
	/* the whole class size, so that the block serves this class again once freed */
	return malloc(class_size(c));
}

void *memcache_calloc(size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	p = memcache_malloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

void memcache_free(void *p)
{
	int c;

	if (p == NULL)
		return;
	if (active && (c = class_down(malloc_usable_size(p))) >= 0 && caches[c].n < caches[c].max) {
		struct block *b = p;

		b->next = caches[c].head;
		caches[c].head = b;
		caches[c].n++;
		return;
	}
	free(p);
}

void *memcache_realloc(void *p, size_t n)
{
	return realloc(p, n); /* every block is a malloc block */
}

void memcache_trim(void)
{
	for (int c = 0; c < NCLASSES; c++) {
		struct cache *k = &caches[c];
		struct block **cut = &k->head, *b;
		unsigned keep = k->n - k->low;

		/* The last `low` blocks of the list (the least recently freed) were not needed
		 * since the last trim. */
		for (unsigned i = 0; i < keep; i++)
			cut = &(*cut)->next;
		while ((b = *cut) != NULL) {
			*cut = b->next;
			free(b);
		}
		k->n -= k->low;
		k->low = k->n;
	}
}

unsigned memcache_kept(void)
{
	unsigned n = 0;

	for (int c = 0; c < NCLASSES; c++)
		n += caches[c].n;
	return n;
}

bool memcache_caching(void)
{
	return active;
}

void memcache_thread_begin(void)
{
#ifndef MEMCACHE_OFF
	for (int c = 0; c < NCLASSES; c++) {
		size_t max = CLASS_BYTES_MAX / class_size(c);

		caches[c].max = (unsigned)(max < CLASS_COUNT_MAX ? max : CLASS_COUNT_MAX);
	}
	active = true;
#endif
}

void memcache_thread_end(void)
{
	active = false;
	for (int c = 0; c < NCLASSES; c++) {
		while (caches[c].head != NULL) {
			struct block *b = caches[c].head;

			caches[c].head = b->next;
			free(b);
		}
		caches[c].n = 0;
		caches[c].low = 0;
	}
}

void memcache_install_libevent(void)
{
	event_set_mem_functions(memcache_malloc, memcache_realloc, memcache_free);
}

static void *ng_malloc(size_t n, void *ud)
{
	(void)ud;
	return memcache_malloc(n);
}

static void ng_free(void *p, void *ud)
{
	(void)ud;
	memcache_free(p);
}

static void *ng_calloc(size_t n, size_t size, void *ud)
{
	(void)ud;
	return memcache_calloc(n, size);
}

static void *ng_realloc(void *p, size_t n, void *ud)
{
	(void)ud;
	return memcache_realloc(p, n);
}

static nghttp2_mem ng_mem = {NULL, ng_malloc, ng_free, ng_calloc, ng_realloc};

nghttp2_mem *memcache_nghttp2(void)
{
	return &ng_mem;
}

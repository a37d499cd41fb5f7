#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pool.h"

/* Chunks double from POOL_CHUNK to POOL_CHUNK_MAX: a small generation stays small, a large
 * one (10 000 virtual hosts) is a few hundred chunks.  Chunks of POOL_MAP bytes and more are
 * mapped rather than malloc'd, so freeing a retired generation gives its memory back to the
 * system at once, whichever thread drops it, instead of leaving holes in malloc's heap that
 * the next generation only partly reuses. */
#define POOL_CHUNK (64 * 1024)
#define POOL_CHUNK_MAX (1024 * 1024)
#define POOL_MAP (256 * 1024)
/* Eight, not malloc's sixteen: nothing kept in a pool needs more than a pointer's alignment
 * (no long double, no __int128, no over-aligned struct), and the config model is mostly
 * 24- and 40-byte blocks, which sixteen would pad by a third (4.5 MB of 75 MB for 10 000
 * virtual hosts x 10 routes). */
#define POOL_ALIGN 8

struct pool_chunk {
	struct pool_chunk *next;
	size_t size;
	size_t used;
	bool mapped;
	_Alignas(POOL_ALIGN) unsigned char data[];
};

struct pool_cleanup {
	struct pool_cleanup *next;
	void (*fn)(void *);
	void *arg;
};

struct pool {
	struct pool_chunk *head;
	struct pool_cleanup *cleanups;
	size_t bytes;
	size_t next; /* size of the next regular chunk */
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		fprintf(stderr, "meshgate: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

struct pool *pool_new(void)
{
	struct pool *p = xmalloc(sizeof(*p));

	p->head = NULL;
	p->cleanups = NULL;
	p->bytes = 0;
	p->next = POOL_CHUNK;
	return p;
}

static struct pool_chunk *pool_chunk_new(size_t size)
{
	size_t total = sizeof(struct pool_chunk) + size;
	struct pool_chunk *c;
	void *m;

	if (total >= POOL_MAP) {
		total = (total + 4095) & ~(size_t)4095;
		m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			fprintf(stderr, "meshgate: out of memory (%zu bytes)\n", total);
			abort();
		}
		c = m;
		c->size = total - sizeof(*c);
		c->mapped = true;
	} else {
		c = xmalloc(total);
		c->size = size;
		c->mapped = false;
	}
	c->used = 0;
	return c;
}

static void pool_chunk_free(struct pool_chunk *c)
{
	if (c->mapped)
		munmap(c, sizeof(*c) + c->size);
	else
		free(c);
}

void pool_free(struct pool *p)
{
	struct pool_chunk *c, *next;

	struct pool_cleanup *cl;

	if (p == NULL)
		return;
	/* Cleanups live in the pool's own chunks: run them all before freeing any chunk. */
	for (cl = p->cleanups; cl != NULL; cl = cl->next)
		cl->fn(cl->arg);
	for (c = p->head; c != NULL; c = next) {
		next = c->next;
		pool_chunk_free(c);
	}
	free(p);
}

void pool_reset(struct pool *p)
{
	struct pool_chunk *c, *next, *keep = NULL;
	struct pool_cleanup *cl;

	for (cl = p->cleanups; cl != NULL; cl = cl->next)
		cl->fn(cl->arg);
	p->cleanups = NULL;
	for (c = p->head; c != NULL; c = next) {
		next = c->next;
		if (keep == NULL && c->size == POOL_CHUNK && !c->mapped)
			keep = c;
		else
			pool_chunk_free(c);
	}
	p->head = keep;
	p->bytes = 0;
	p->next = POOL_CHUNK;
	if (keep != NULL) {
		keep->next = NULL;
		keep->used = 0;
		p->bytes = sizeof(*keep) + keep->size;
	}
}

void *pool_alloc(struct pool *p, size_t size)
{
	struct pool_chunk *c = p->head;
	size_t need = (size + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
	void *ret;

	if (need == 0)
		need = POOL_ALIGN;
	if (c == NULL || c->size - c->used < need) {
		bool oneoff = need > p->next / 4;

		c = pool_chunk_new(oneoff ? need : p->next);
		/* Big one-off blocks go behind the current chunk so its free space is kept. */
		if (oneoff && p->head != NULL) {
			c->next = p->head->next;
			p->head->next = c;
		} else {
			c->next = p->head;
			p->head = c;
			if (!oneoff && p->next < POOL_CHUNK_MAX)
				p->next *= 2;
		}
		p->bytes += sizeof(*c) + c->size;
	}
	ret = c->data + c->used;
	c->used += need;
	memset(ret, 0, size);
	return ret;
}

void *pool_calloc(struct pool *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		fprintf(stderr, "meshgate: allocation overflow\n");
		abort();
	}
	return pool_alloc(p, n * size);
}

char *pool_strndup(struct pool *p, const char *s, size_t len)
{
	char *d = pool_alloc(p, len + 1);

	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *pool_strdup(struct pool *p, const char *s)
{
	return pool_strndup(p, s, strlen(s));
}

char *pool_printf(struct pool *p, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;
	char *d;

	/* Most strings fit the stack buffer: format once, copy once. */
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return pool_strdup(p, "");
	if ((size_t)n < sizeof(tmp))
		return pool_strndup(p, tmp, (size_t)n);
	d = pool_alloc(p, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return d;
}

void *pool_grow(struct pool *p, void *old, size_t old_n, size_t new_n, size_t size)
{
	void *n = pool_calloc(p, new_n, size);

	if (old != NULL && old_n > 0)
		memcpy(n, old, old_n * size);
	return n;
}

size_t pool_bytes(const struct pool *p)
{
	return p->bytes;
}

void pool_on_free(struct pool *p, void (*fn)(void *), void *arg)
{
	struct pool_cleanup *cl = pool_alloc(p, sizeof(*cl));

	cl->fn = fn;
	cl->arg = arg;
	cl->next = p->cleanups;
	p->cleanups = cl;
}

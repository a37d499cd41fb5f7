#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define POOL_CHUNK (64 * 1024)
#define POOL_ALIGN 16

struct pool_chunk {
	struct pool_chunk *next;
	size_t size;
	size_t used;
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
	return p;
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
		free(c);
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
		if (keep == NULL && c->size == POOL_CHUNK)
			keep = c;
		else
			free(c);
	}
	p->head = keep;
	p->bytes = 0;
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
		size_t csize = need > POOL_CHUNK / 4 ? need : POOL_CHUNK;

		c = xmalloc(sizeof(*c) + csize);
		c->size = csize;
		c->used = 0;
		/* Big one-off blocks go behind the current chunk so its free space is kept. */
		if (csize != POOL_CHUNK && p->head != NULL) {
			c->next = p->head->next;
			p->head->next = c;
		} else {
			c->next = p->head;
			p->head = c;
		}
		p->bytes += sizeof(*c) + csize;
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

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_hash.h"
#include "pool.h"
#include "snapshot.h"

/* FNV-1a over the bytes, then the splitmix64 finaliser: FNV alone leaves similar inputs
 * ("10.0.0.1:80_1", "_2" ...) close together, which would cluster ring points. */
uint64_t lb_hash_bytes(const void *data, size_t len)
{
	const unsigned char *b = data;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

struct ring_point {
	uint64_t hash;
	uint32_t owner;
};

static int ring_cmp(const void *a, const void *b)
{
	const struct ring_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->owner < y->owner ? -1 : x->owner > y->owner;
}

static uint64_t total_weight(const struct endpoint *eps, size_t n)
{
	uint64_t w = 0;

	for (size_t i = 0; i < n; i++)
		w += eps[i].weight > 0 ? eps[i].weight : 1;
	return w;
}

static bool ring_build(struct pool *p, struct lb_hash_table *t, const struct endpoint *eps,
		       size_t n, uint64_t min_size)
{
	uint64_t tw = total_weight(eps, n), size = 0;
	struct ring_point *pts;
	char name[96];
	size_t k = 0;

	/* every endpoint gets ceil(min_size * weight / total) points, at least one */
	for (size_t i = 0; i < n; i++) {
		uint64_t w = eps[i].weight > 0 ? eps[i].weight : 1;

		size += (min_size * w + tw - 1) / tw;
	}
	pts = malloc(size * sizeof(*pts));
	if (pts == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint64_t w = eps[i].weight > 0 ? eps[i].weight : 1;
		uint64_t m = (min_size * w + tw - 1) / tw;

		for (uint64_t j = 0; j < m; j++) {
			int len = snprintf(name, sizeof(name), "%s_%llu", eps[i].name,
					   (unsigned long long)j);

			pts[k].hash = lb_hash_bytes(name, (size_t)len);
			pts[k].owner = (uint32_t)i;
			k++;
		}
	}
	qsort(pts, k, sizeof(*pts), ring_cmp);
	t->size = k;
	t->points = pool_alloc(p, k * sizeof(*t->points));
	t->owner = pool_alloc(p, k * sizeof(*t->owner));
	for (size_t i = 0; i < k; i++) {
		t->points[i] = pts[i].hash;
		t->owner[i] = pts[i].owner;
	}
	free(pts);
	return true;
}

/* Maglev (Eisenbud et al., NSDI 2016), weighted as Envoy does: in each round an endpoint
 * claims its next preferred free slot only while its share of the rounds so far stays
 * within its share of the weight. */
static bool maglev_build(struct pool *p, struct lb_hash_table *t, const struct endpoint *eps,
			 size_t n, uint64_t m)
{
	uint64_t *offset = calloc(n, sizeof(*offset)), *skip = calloc(n, sizeof(*skip));
	uint64_t *next = calloc(n, sizeof(*next));
	double *target = calloc(n, sizeof(*target));
	uint32_t max_w = 1;
	size_t filled = 0;

	if (offset == NULL || skip == NULL || next == NULL || target == NULL) {
		free(offset);
		free(skip);
		free(next);
		free(target);
		return false;
	}
	t->size = m;
	t->owner = pool_alloc(p, m * sizeof(*t->owner));
	for (uint64_t s = 0; s < m; s++)
		t->owner[s] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		const char *nm = eps[i].name;
		size_t len = strlen(nm);

		offset[i] = lb_hash_bytes(nm, len) % m;
		skip[i] = (lb_hash_bytes(nm, len) ^ 0x9e3779b97f4a7c15ULL) % (m - 1) + 1;
		if (eps[i].weight > max_w)
			max_w = eps[i].weight;
	}
	for (uint64_t round = 1; filled < m; round++) {
		for (size_t i = 0; i < n && filled < m; i++) {
			double w = (double)(eps[i].weight > 0 ? eps[i].weight : 1) / max_w;
			uint64_t c;

			target[i] += w;
			if (target[i] < 1.0)
				continue;
			target[i] -= 1.0;
			do {
				c = (offset[i] + next[i] * skip[i]) % m;
				next[i]++;
			} while (t->owner[c] != UINT32_MAX);
			t->owner[c] = (uint32_t)i;
			filled++;
		}
	}
	free(offset);
	free(skip);
	free(next);
	free(target);
	return true;
}

struct lb_hash_table *lb_hash_build(struct pool *p, const struct endpoint *eps, size_t n,
				    const struct consistent_hash *ch)
{
	struct lb_hash_table *t;
	uint64_t min = ch->minimum_ring_size > 0 ? ch->minimum_ring_size : 1024;

	if (n == 0)
		return NULL;
	t = pool_alloc(p, sizeof(*t));
	t->maglev = ch->maglev;
	if (t->maglev ? !maglev_build(p, t, eps, n, ch->table_size > 2 ? ch->table_size : 65537)
		      : !ring_build(p, t, eps, n, min < n ? n : min))
		return NULL;
	return t;
}

static size_t ring_first(const struct lb_hash_table *t, uint64_t key)
{
	size_t lo = 0, hi = t->size;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->points[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == t->size ? 0 : lo;
}

size_t lb_hash_pick(const struct lb_hash_table *t, size_t n, uint64_t key, unsigned attempt)
{
	size_t pos, first;

	if (t->maglev) {
		/* another endpoint for a retry: rehash until the owner differs */
		first = t->owner[key % t->size];
		for (unsigned a = 0, tries = 0; a < attempt && n > 1 && tries < 64; tries++) {
			key = lb_hash_bytes(&key, sizeof(key));
			if (t->owner[key % t->size] != first) {
				first = t->owner[key % t->size];
				a++;
			}
		}
		return first;
	}
	pos = ring_first(t, key);
	first = t->owner[pos];
	/* walk clockwise to the attempt-th distinct owner */
	for (unsigned a = 0; a < attempt && n > 1;) {
		size_t prev = t->owner[pos];

		for (size_t s = 0; s < t->size && t->owner[pos] == prev; s++)
			pos = (pos + 1) % t->size;
		a++;
		first = t->owner[pos];
	}
	return first;
}

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "clusterstate.h"
#include "snapshot.h"

/* The registry: two hash tables with chained buckets, walked only by the control thread
 * when a snapshot is attached (config load, never per request).  The mutex keeps a test
 * harness honest too; the data path never takes it. */
#define REGISTRY_BUCKETS 65536 /* power of two; chains stay short up to ~100k entries */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cluster_state **clusters;
static struct endpoint_state **endpoints;

static uint32_t key_hash(const char *a, const char *b)
{
	uint32_t h = 2166136261u;

	for (; *a != '\0'; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	h = (h ^ '|') * 16777619u;
	for (; b != NULL && *b != '\0'; b++)
		h = (h ^ (unsigned char)*b) * 16777619u;
	return h & (REGISTRY_BUCKETS - 1);
}

const char *const cluster_counter_names[CC__COUNT] = {
    "rq_total", "rq_2xx", "rq_3xx", "rq_4xx", "rq_5xx", "rq_retry", "rq_timeout", "cx_connect_fail",
};

static struct cluster_state *cluster_find(const char *name)
{
	for (struct cluster_state *cs = clusters[key_hash(name, NULL)]; cs != NULL; cs = cs->next)
		if (strcmp(cs->name, name) == 0)
			return cs;
	return NULL;
}

static struct endpoint_state *endpoint_find(const char *cluster, const char *ep)
{
	size_t lc = strlen(cluster);

	for (struct endpoint_state *es = endpoints[key_hash(cluster, ep)]; es != NULL;
	     es = es->next)
		if (strncmp(es->key, cluster, lc) == 0 && es->key[lc] == '|' &&
		    strcmp(es->key + lc + 1, ep) == 0)
			return es;
	return NULL;
}

static struct cluster_state *cluster_find_or_add(const char *name, unsigned nworkers)
{
	struct cluster_state **slot = &clusters[key_hash(name, NULL)], *cs;
	size_t len = strlen(name);

	for (cs = *slot; cs != NULL; cs = cs->next)
		if (strcmp(cs->name, name) == 0)
			return cs;
	cs = calloc(1, sizeof(*cs) + len + 1);
	if (cs == NULL)
		return NULL;
	if (nworkers > 0) {
		cs->shards = aligned_alloc(64, nworkers * sizeof(*cs->shards));
		if (cs->shards == NULL) {
			free(cs);
			return NULL;
		}
		memset(cs->shards, 0, nworkers * sizeof(*cs->shards));
		cs->nshards = nworkers;
	}
	memcpy(cs->name, name, len + 1);
	cs->next = *slot;
	*slot = cs;
	return cs;
}

static struct endpoint_state *endpoint_find_or_add(const char *cluster, const char *ep)
{
	struct endpoint_state **slot = &endpoints[key_hash(cluster, ep)], *es;
	size_t lc = strlen(cluster), le = strlen(ep);

	for (es = *slot; es != NULL; es = es->next)
		if (strncmp(es->key, cluster, lc) == 0 && es->key[lc] == '|' &&
		    strcmp(es->key + lc + 1, ep) == 0)
			return es;
	es = calloc(1, sizeof(*es) + lc + le + 2);
	if (es == NULL)
		return NULL;
	memcpy(es->key, cluster, lc);
	es->key[lc] = '|';
	memcpy(es->key + lc + 1, ep, le + 1);
	es->next = *slot;
	*slot = es;
	return es;
}

#define ROUTE_KEY "route:"

static int attach_vhost(struct vhost *vh, unsigned nworkers)
{
	char key[256];

	for (size_t i = 0; vh != NULL && i < vh->nroutes; i++) {
		struct http_route *r = vh->routes[i];

		if (r->more->stat_prefix == NULL || r->more->stats != NULL)
			continue;
		snprintf(key, sizeof(key), ROUTE_KEY "%s", r->more->stat_prefix);
		r->more->stats = cluster_find_or_add(key, nworkers);
		if (r->more->stats == NULL)
			return -1;
	}
	return 0;
}

static int attach_routes(struct snapshot *s, unsigned nworkers)
{
	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct vhost_table *t = &s->listeners[i].vhosts;

		for (size_t k = 0; t->exact != NULL && k <= t->exact_mask; k++)
			if (attach_vhost(t->exact[k], nworkers) != 0)
				return -1;
		for (size_t k = 0; k < t->nwild; k++)
			if (attach_vhost(t->wild[k].vh, nworkers) != 0)
				return -1;
		if (attach_vhost(t->star, nworkers) != 0)
			return -1;
	}
	return 0;
}

void clusterstate_each_route(void (*fn)(const struct cluster_state *cs, const char *prefix,
					void *arg),
			     void *arg)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; clusters != NULL && i < REGISTRY_BUCKETS; i++)
		for (const struct cluster_state *cs = clusters[i]; cs != NULL; cs = cs->next)
			if (strncmp(cs->name, ROUTE_KEY, strlen(ROUTE_KEY)) == 0)
				fn(cs, cs->name + strlen(ROUTE_KEY), arg);
	pthread_mutex_unlock(&registry_lock);
}

int clusterstate_attach(struct snapshot *s, unsigned nworkers)
{
	int rc = 0;

	pthread_mutex_lock(&registry_lock);
	if (clusters == NULL) {
		clusters = calloc(REGISTRY_BUCKETS, sizeof(*clusters));
		endpoints = calloc(REGISTRY_BUCKETS, sizeof(*endpoints));
		if (clusters == NULL || endpoints == NULL)
			rc = -1;
	}
	for (size_t i = 0; i < s->nclusters && rc == 0; i++) {
		struct cluster *c = s->clusters[i];

		bool existed = cluster_find(c->name) != NULL;

		c->state = cluster_find_or_add(c->name, nworkers);
		if (c->state == NULL)
			rc = -1;
		for (size_t k = 0; k < c->nendpoints && rc == 0; k++) {
			bool known = endpoint_find(c->name, c->endpoints[k].name) != NULL;

			c->endpoints[k].state = endpoint_find_or_add(c->name, c->endpoints[k].name);
			if (c->endpoints[k].state == NULL)
				rc = -1;
			/* an endpoint added to a cluster that already served starts slowly
			 * (warmupDurationSecs), as in Envoy; at startup nobody does */
			else if (existed && !known)
				atomic_store(&c->endpoints[k].state->in_service_since_us,
					     clock_mono_us());
		}
	}
	if (rc == 0)
		rc = attach_routes(s, nworkers);
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

void clusterstate_free_all(void)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; clusters != NULL && i < REGISTRY_BUCKETS; i++) {
		while (clusters[i] != NULL) {
			struct cluster_state *next = clusters[i]->next;

			free(clusters[i]->shards);
			free(clusters[i]);
			clusters[i] = next;
		}
	}
	for (size_t i = 0; endpoints != NULL && i < REGISTRY_BUCKETS; i++) {
		while (endpoints[i] != NULL) {
			struct endpoint_state *next = endpoints[i]->next;

			free(endpoints[i]);
			endpoints[i] = next;
		}
	}
	free(clusters);
	free(endpoints);
	clusters = NULL;
	endpoints = NULL;
	pthread_mutex_unlock(&registry_lock);
}

bool clusterstate_admit(atomic_uint *counter, uint32_t max)
{
	unsigned cur;

	if (max == 0) {
		atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
		return true;
	}
	cur = atomic_load_explicit(counter, memory_order_relaxed);
	do {
		if (cur >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    counter, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
	return true;
}

void clusterstate_release(atomic_uint *counter)
{
	unsigned cur = atomic_load_explicit(counter, memory_order_relaxed);

	while (cur > 0 && !atomic_compare_exchange_weak_explicit(
			      counter, &cur, cur - 1, memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t clusterstate_count(const struct cluster_state *cs, enum cluster_counter id)
{
	uint64_t sum = 0;

	for (unsigned w = 0; cs != NULL && w < cs->nshards; w++)
		sum += __atomic_load_n(&cs->shards[w].v[id], __ATOMIC_RELAXED);
	return sum;
}

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdlib.h>

#include "pool.h"
#include "snapshot.h"

/* Workers do not call snapshot_current() per request: each keeps its own reference and
 * compares snapshot_generation_hint() (one relaxed atomic load) before an exchange; only
 * when a new generation was published does it come here.  So a plain mutex, held for a
 * load and an increment, is the simplest correct choice. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;
static atomic_uint_fast64_t current_generation;

struct snapshot *snapshot_ref(struct snapshot *s)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	pool_free(s->pool);
}

void snapshot_publish(struct snapshot *s)
{
	struct snapshot *old;

	atomic_store(&s->refs, 1);
	pthread_mutex_lock(&current_lock);
	old = current;
	current = s;
	atomic_store_explicit(&current_generation, s->generation, memory_order_release);
	pthread_mutex_unlock(&current_lock);
	snapshot_unref(old);
}

struct snapshot *snapshot_current(void)
{
	struct snapshot *s;

	pthread_mutex_lock(&current_lock);
	s = snapshot_ref(current);
	pthread_mutex_unlock(&current_lock);
	return s;
}

uint64_t snapshot_generation_hint(void)
{
	return atomic_load_explicit(&current_generation, memory_order_acquire);
}

void snapshot_publish_none(void)
{
	struct snapshot *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = NULL;
	pthread_mutex_unlock(&current_lock);
	snapshot_unref(old);
}

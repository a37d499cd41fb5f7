/* Timeouts for many objects that share a few durations (a worker's connections: the idle
 * and the request-header timeout).  Entries armed with the same duration expire in the
 * order they were armed, so each duration keeps a plain list in deadline order: arming is
 * an append, cancelling an unlink, and one libevent timer per set fires at the earliest
 * deadline.  An entry is 32 bytes where a libevent timer is 144, and the per-request
 * arm/cancel pairs stay off the libevent timer heap.  Worker thread only. */
#ifndef MG_DEADLINE_H
#define MG_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct deadline_list;

/* Embedded in its owner; zeroed means not armed. */
struct deadline {
	TAILQ_ENTRY(deadline) entry;
	struct deadline_list *list; /* NULL while not armed */
	uint64_t at_us;             /* monotonic (clock.h) */
};

typedef void (*deadline_fn)(struct deadline *d);

struct deadline_set;

/* fire is called for each expired entry, already disarmed: it may arm it again, or free
 * its owner. */
struct deadline_set *deadline_set_new(struct event_base *base, deadline_fn fire);
/* Only once no entry is armed. */
void deadline_set_free(struct deadline_set *s);

/* (Re)arm d to expire after us microseconds from now. */
void deadline_arm(struct deadline_set *s, struct deadline *d, uint64_t us);
void deadline_cancel(struct deadline *d);
static inline bool deadline_armed(const struct deadline *d)
{
	return d->list != NULL;
}

/* Expire what is due at now_us, as the set's timer does (tests drive it directly). */
void deadline_run(struct deadline_set *s, uint64_t now_us);

#endif

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "deadline.h"

/* Distinct durations kept as append-only lists; a further duration (a reload changing
 * timeouts while old entries are armed) shares the sorted spill list. */
#define DEADLINE_LISTS 6

struct deadline_list {
	TAILQ_HEAD(deadline_queue, deadline) q;
	uint64_t dur_us;
	bool sorted_insert; /* the spill list: entries of any duration */
};

struct deadline_set {
	struct event *ev;
	deadline_fn fire;
	uint64_t timer_at; /* when the timer fires; 0: not armed */
	struct deadline_list lists[DEADLINE_LISTS + 1];
};

static void deadline_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deadline_set *s = arg;

	(void)fd;
	(void)what;
	s->timer_at = 0;
	deadline_run(s, clock_mono_us());
}

struct deadline_set *deadline_set_new(struct event_base *base, deadline_fn fire)
{
	struct deadline_set *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->fire = fire;
	for (size_t i = 0; i <= DEADLINE_LISTS; i++)
		TAILQ_INIT(&s->lists[i].q);
	s->lists[DEADLINE_LISTS].sorted_insert = true;
	s->ev = evtimer_new(base, deadline_timer_cb, s);
	if (s->ev == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void deadline_set_free(struct deadline_set *s)
{
	if (s == NULL)
		return;
	event_free(s->ev);
	free(s);
}

/* The timer fires no later than at_us (it may fire early: deadline_run re-arms). */
static void deadline_timer_at(struct deadline_set *s, uint64_t at_us, uint64_t now_us)
{
	uint64_t us = at_us > now_us ? at_us - now_us : 0;
	struct timeval tv;

	if (s->timer_at != 0 && s->timer_at <= at_us)
		return;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(s->ev, &tv);
	s->timer_at = at_us;
}

static struct deadline_list *deadline_list_for(struct deadline_set *s, uint64_t us)
{
	struct deadline_list *free_list = NULL;

	/* dur_us 0 marks a list never used; us is never 0. */
	for (size_t i = 0; i < DEADLINE_LISTS; i++) {
		struct deadline_list *l = &s->lists[i];

		if (l->dur_us == us)
			return l;
		if (free_list == NULL && TAILQ_EMPTY(&l->q))
			free_list = l;
	}
	if (free_list != NULL) {
		free_list->dur_us = us;
		return free_list;
	}
	return &s->lists[DEADLINE_LISTS];
}

void deadline_arm(struct deadline_set *s, struct deadline *d, uint64_t us)
{
	uint64_t now = clock_mono_us();
	struct deadline_list *l;

	if (us == 0)
		us = 1; /* strictly after any deadline_run(now): a re-arm in fire() waits */
	deadline_cancel(d);
	d->at_us = now + us;
	l = deadline_list_for(s, us);
	if (l->sorted_insert) {
		struct deadline *after = TAILQ_LAST(&l->q, deadline_queue);

		while (after != NULL && after->at_us > d->at_us)
			after = TAILQ_PREV(after, deadline_queue, entry);
		if (after == NULL)
			TAILQ_INSERT_HEAD(&l->q, d, entry);
		else
			TAILQ_INSERT_AFTER(&l->q, after, d, entry);
	} else {
		TAILQ_INSERT_TAIL(&l->q, d, entry);
	}
	d->list = l;
	deadline_timer_at(s, d->at_us, now);
}

void deadline_cancel(struct deadline *d)
{
	if (d->list == NULL)
		return;
	TAILQ_REMOVE(&d->list->q, d, entry);
	d->list = NULL;
	/* The timer is left as it is: firing early finds nothing due and re-arms. */
}

void deadline_run(struct deadline_set *s, uint64_t now_us)
{
	uint64_t next = 0;

	for (size_t i = 0; i <= DEADLINE_LISTS; i++) {
		struct deadline_list *l = &s->lists[i];
		struct deadline *d;

		/* With now_us the current time, what fire() arms lands after it (never
		 * "after 0 us", see deadline_arm), so this ends. */
		while ((d = TAILQ_FIRST(&l->q)) != NULL && d->at_us <= now_us) {
			TAILQ_REMOVE(&l->q, d, entry);
			d->list = NULL;
			s->fire(d);
		}
	}
	for (size_t i = 0; i <= DEADLINE_LISTS; i++) {
		struct deadline *d = TAILQ_FIRST(&s->lists[i].q);

		if (d != NULL && (next == 0 || d->at_us < next))
			next = d->at_us;
	}
	if (next != 0)
		deadline_timer_at(s, next, now_us);
}

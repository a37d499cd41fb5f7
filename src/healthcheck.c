#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "clusterstate.h"
#include "healthcheck.h"
#include "log.h"
#include "snapshot.h"

#define HC_MAX_STATUS_LINE 512

/* One endpoint state a probe result is written to (the same address can serve several
 * clusters, e.g. subsets, each with its own state). */
struct hc_target {
	struct endpoint_state *es;
	struct cluster_state *cs;
};

struct checker {
	const struct cfg_health_check *cfg;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[64];
	struct hc_target *targets;
	size_t ntargets;
	struct event *timer;    /* next probe */
	struct event *deadline; /* this probe's timeout */
	struct bufferevent *bev;
	unsigned ok_run, fail_run;
	bool healthy;
};

static struct event_base *hc_base;
static struct snapshot *hc_snap; /* the cfg pointers live in its pool */
static struct checker **checkers;
static size_t nchecker;

static void hc_schedule(struct checker *c, uint64_t us)
{
	struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

	evtimer_add(c->timer, &tv);
}

static void hc_set(struct checker *c, bool healthy)
{
	c->healthy = healthy;
	for (size_t i = 0; i < c->ntargets; i++) {
		bool was = atomic_exchange(&c->targets[i].es->hc_failed, !healthy);

		if (was && healthy) {
			clusterstate_release(&c->targets[i].cs->hc_failed);
			atomic_store(&c->targets[i].es->in_service_since_us, clock_mono_us());
		} else if (!was && !healthy)
			atomic_fetch_add(&c->targets[i].cs->hc_failed, 1);
		if (was != !healthy)
			clusterstate_changed(c->targets[i].cs);
	}
	log_info("health check: %s is %s", c->name, healthy ? "healthy again" : "unhealthy");
}

static void hc_done(struct checker *c, bool ok, const char *why)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->deadline);
	if (ok) {
		c->fail_run = 0;
		if (!c->healthy && ++c->ok_run >= c->cfg->healthy_threshold)
			hc_set(c, true);
	} else {
		c->ok_run = 0;
		log_debug("health check of %s failed: %s", c->name, why);
		if (c->healthy && ++c->fail_run >= c->cfg->unhealthy_threshold)
			hc_set(c, false);
	}
	hc_schedule(c, c->cfg->interval_us);
}

/* "HTTP/1.x NNN ..." at the start of the answer decides. */
static void hc_read_cb(struct bufferevent *bev, void *arg)
{
	struct checker *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in),
	       n = len < HC_MAX_STATUS_LINE ? len : HC_MAX_STATUS_LINE;
	const char *line = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	unsigned status = 0;

	if (memchr(line, '\n', n) == NULL) {
		if (len >= HC_MAX_STATUS_LINE)
			hc_done(c, false, "no status line");
		return;
	}
	if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ') {
		hc_done(c, false, "not an HTTP/1.x answer");
		return;
	}
	for (int i = 9; i < 12; i++)
		status = status * 10 + (unsigned)(line[i] - '0');
	for (size_t i = 0; i < c->cfg->nstatuses; i++)
		if (c->cfg->statuses[i] == status) {
			hc_done(c, true, NULL);
			return;
		}
	hc_done(c, false, "unexpected status");
}

static void hc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct checker *c = arg;

	if (!(what & BEV_EVENT_CONNECTED)) {
		hc_done(c, false, (what & BEV_EVENT_EOF) ? "closed" : "connect or read error");
		return;
	}
	if (!c->cfg->http) {
		hc_done(c, true, NULL);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(bev),
			    "GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: meshgate-health-check\r\n"
			    "connection: close\r\n\r\n",
			    c->cfg->path, c->cfg->authority != NULL ? c->cfg->authority : c->name);
}

static void hc_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	hc_done(arg, false, "timeout");
}

static void hc_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct checker *c = arg;
	struct timeval tv = {(time_t)(c->cfg->timeout_us / 1000000),
			     (suseconds_t)(c->cfg->timeout_us % 1000000)};

	c->bev = bufferevent_socket_new(hc_base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		hc_schedule(c, c->cfg->interval_us);
		return;
	}
	bufferevent_setcb(c->bev, hc_read_cb, NULL, hc_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	evtimer_add(c->deadline, &tv);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, (int)c->addrlen) != 0)
		hc_done(c, false, "connect failed");
}

static void hc_free(struct checker *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->deadline != NULL)
		event_free(c->deadline);
	free(c->targets);
	free(c);
}

void healthcheck_stop(void)
{
	for (size_t i = 0; i < nchecker; i++)
		hc_free(checkers[i]);
	free(checkers);
	checkers = NULL;
	nchecker = 0;
	if (hc_snap != NULL)
		snapshot_unref(hc_snap);
	hc_snap = NULL;
}

static struct checker *hc_find_or_add(const struct cfg_health_check *cfg, const struct endpoint *ep)
{
	struct checker *c, **grown;

	for (size_t i = 0; i < nchecker; i++) {
		c = checkers[i];
		if (c->cfg == cfg && c->addrlen == ep->addrlen &&
		    memcmp(&c->addr, &ep->addr, ep->addrlen) == 0)
			return c;
	}
	c = calloc(1, sizeof(*c));
	grown = realloc(checkers, (nchecker + 1) * sizeof(*checkers));
	if (c == NULL || grown == NULL) {
		free(c);
		if (grown != NULL)
			checkers = grown;
		return NULL;
	}
	checkers = grown;
	c->cfg = cfg;
	memcpy(&c->addr, &ep->addr, ep->addrlen);
	c->addrlen = ep->addrlen;
	snprintf(c->name, sizeof(c->name), "%s", ep->name);
	c->healthy = !atomic_load(&ep->state->hc_failed); /* the state survives reloads */
	c->timer = evtimer_new(hc_base, hc_probe_cb, c);
	c->deadline = evtimer_new(hc_base, hc_deadline_cb, c);
	checkers[nchecker++] = c;
	return c;
}

static void hc_add_target(struct checker *c, struct endpoint_state *es, struct cluster_state *cs)
{
	struct hc_target *t = realloc(c->targets, (c->ntargets + 1) * sizeof(*t));

	if (t == NULL)
		return;
	c->targets = t;
	t[c->ntargets].es = es;
	t[c->ntargets].cs = cs;
	c->ntargets++;
}

void healthcheck_apply(struct event_base *base, struct snapshot *s)
{
	healthcheck_stop();
	hc_base = base;
	hc_snap = snapshot_ref(s);
	for (size_t i = 0; i < s->nclusters; i++) {
		struct cluster *cl = s->clusters[i];
		unsigned failed = 0;

		for (size_t k = 0; k < cl->nendpoints; k++) {
			struct endpoint *ep = &cl->endpoints[k];
			struct checker *c;

			if (ep->state == NULL)
				continue;
			/* no check any more: whatever a former one said no longer holds */
			if (cl->health_check == NULL) {
				atomic_store(&ep->state->hc_failed, false);
				continue;
			}
			c = hc_find_or_add(cl->health_check, ep);
			if (c == NULL)
				continue;
			hc_add_target(c, ep->state, cl->state);
			failed += atomic_load(&ep->state->hc_failed) ? 1 : 0;
		}
		if (cl->state != NULL)
			atomic_store(&cl->state->hc_failed, failed);
		clusterstate_changed(cl->state);
	}
	/* first probes now, spread over a tenth of a second so they do not come in a burst */
	for (size_t i = 0; i < nchecker; i++)
		hc_schedule(checkers[i], (uint64_t)(i % 100) * 1000);
	if (nchecker > 0)
		log_info("health checks: %zu endpoint%s probed", nchecker,
			 nchecker == 1 ? "" : "s");
}

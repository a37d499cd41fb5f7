#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "accesslog.h"
#include "authz.h"
#include "clock.h"
#include "admin.h"
#include "certwatch.h"
#include "config/diag.h"
#include "config/link.h"
#include "config/load.h"
#include "clusterstate.h"
#include "control.h"
#include "dnsresolve.h"
#include "healthcheck.h"
#include "jwtauth.h"
#include "log.h"
#include "pool.h"
#include "snapshot.h"
#include "tls_ticket.h"
#include "worker.h"

/* Listening sockets by "bind:port": one SO_REUSEPORT socket per worker, so the kernel
 * spreads connections and workers never share an accept queue. */
struct ctl_listener {
	char *key;
	int fds[MG_MAX_WORKERS];
	bool in_use; /* scratch during reconcile */
};

static struct ctl_listener *ctl_listeners;
static size_t nctl_listeners;
static uint64_t generation;
static struct event_base *ctl_base;
static const char *ctl_main_path;

/* ---- systemd notification (sd_notify protocol, without libsystemd) ---- */

static void notify_systemd(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
		log_debug("sd_notify failed");
	close(fd);
}

/* ---- loading ---- */

static void print_diag(const struct diag *d, bool to_stdout)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (to_stdout)
			printf("%s\n", d->v[i].text);
		else
			log_raw(d->v[i].text);
	}
	if (to_stdout)
		fflush(stdout);
}

/* Build a snapshot from the files; NULL (and diagnostics printed) when invalid.  Serving
 * (not a check) also fetches what the config points at outside its files: jwksUris. */
static struct snapshot *load_snapshot(const char *path, bool to_stdout, int *nerrors, bool serving)
{
	struct pool *p = pool_new();
	struct diag d;
	struct cfg_set *set;
	struct snapshot *s = NULL;

	diag_init(&d);
	set = config_load(p, &d, path);
	if (d.nerrors == 0 && set != NULL && serving)
		dns_resolve(p, set);
	if (d.nerrors == 0 && set != NULL)
		s = link_compile(p, &d, set);
	config_load_done(set);
	if (s != NULL && serving)
		jwtauth_fetch(p, set);
	print_diag(&d, to_stdout);
	*nerrors = d.nerrors;
	diag_fini(&d);
	if (s == NULL || *nerrors > 0) {
		pool_free(p);
		return NULL;
	}
	return s;
}

int control_check(const char *main_path)
{
	int nerrors = 0;
	struct snapshot *s = load_snapshot(main_path, true, &nerrors, false);

	if (s == NULL) {
		fprintf(stderr, "%s: configuration is invalid (%d error%s)\n", main_path, nerrors,
			nerrors == 1 ? "" : "s");
		return 1;
	}
	fprintf(stderr, "%s: configuration is valid (%zu listener%s, %zu cluster%s", main_path,
		s->nlisteners, s->nlisteners == 1 ? "" : "s", s->nclusters,
		s->nclusters == 1 ? "" : "s");
	if (authz_any(s->set))
		fprintf(stderr, ", access policy: %zu DENY and %zu ALLOW AuthorizationPolicies",
			s->set->nap_deny, s->set->nap_allow);
	if (authz_dry_run(s->set))
		fprintf(stderr, " plus dry runs of %zu DENY and %zu ALLOW, not enforced",
			s->set->nap_shadow_deny, s->set->nap_shadow_allow);
	if (s->set->nap_custom > 0)
		fprintf(stderr,
			", external authorization: %zu CUSTOM AuthorizationPolic%s asking %s",
			s->set->nap_custom, s->set->nap_custom == 1 ? "y" : "ies",
			s->set->ap_provider->name);
	if (s->set->rate_limit != NULL)
		fprintf(stderr, ", local rate limit: %u tokens, %u more every %.3gs",
			s->set->rate_limit->max_tokens, s->set->rate_limit->tokens_per_fill,
			(double)s->set->rate_limit->fill_interval_us / 1e6);
	if (s->set->access_log_by != NULL)
		fprintf(stderr, ", access log %s%s%s by Telemetry %s/%s%s%s%s",
			s->set->access_log_path != NULL ? "on" : "off",
			s->set->access_log_path != NULL ? " to provider " : "",
			s->set->access_log_path != NULL ? s->set->access_log_provider : "",
			s->set->access_log_by->meta.ns, s->set->access_log_by->meta.name,
			s->set->access_log_filter_src != NULL ? " where \"" : "",
			s->set->access_log_filter_src != NULL ? s->set->access_log_filter_src : "",
			s->set->access_log_filter_src != NULL ? "\"" : "");
	if (s->set->metrics_disabled != 0) {
		fputs(", Istio metrics off:", stderr);
		for (int m = 0; m < TM__COUNT; m++)
			if ((s->set->metrics_disabled >> m) & 1)
				fprintf(stderr, " %s", tel_metric_name((enum tel_metric)m));
	}
	if (s->set->nra_rules > 0)
		fprintf(stderr, ", JWT issuers: %zu%s", s->set->nra_rules,
			jwtauth_uses_uris(s->set) ? " (jwksUris are fetched when serving)" : "");
	fprintf(stderr, ")\n");
	atomic_store(&s->refs, 1);
	snapshot_unref(s);
	return 0;
}

/* ---- listeners ---- */

static int open_listen_socket(const struct listener_cfg *lc)
{
	int fd, one = 1;

	fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) < 0 || listen(fd, 4096) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static struct ctl_listener *ctl_find(const char *key)
{
	size_t i;

	for (i = 0; i < nctl_listeners; i++)
		if (strcmp(ctl_listeners[i].key, key) == 0)
			return &ctl_listeners[i];
	return NULL;
}

/* Open what s needs and does not have yet; on failure close what this call opened and
 * return -1 (the running config stays as it is). Sends each worker its plan. */
static int reconcile_listeners(const struct snapshot *s)
{
	struct listener_plan *plans[MG_MAX_WORKERS];
	struct ctl_listener *added = calloc(s->nlisteners + 1, sizeof(*added));
	size_t nadded = 0, i, j;
	int w;

	if (added == NULL)
		return -1;
	for (i = 0; i < nctl_listeners; i++)
		ctl_listeners[i].in_use = false;
	for (i = 0; i < s->nlisteners; i++) {
		const struct listener_cfg *lc = &s->listeners[i];
		struct ctl_listener *cl = ctl_find(lc->key);

		if (cl != NULL) {
			cl->in_use = true;
			continue;
		}
		added[nadded].key = strdup(lc->key);
		for (w = 0; w < nworkers; w++) {
			added[nadded].fds[w] = open_listen_socket(lc);
			if (added[nadded].fds[w] < 0) {
				log_warn("cannot listen on %s", lc->key);
				while (--w >= 0)
					close(added[nadded].fds[w]);
				free(added[nadded].key);
				for (j = 0; j < nadded; j++) {
					for (w = 0; w < nworkers; w++)
						close(added[j].fds[w]);
					free(added[j].key);
				}
				free(added);
				return -1;
			}
		}
		added[nadded].in_use = true;
		nadded++;
	}
	for (w = 0; w < nworkers; w++) {
		plans[w] = calloc(1, sizeof(*plans[w]));
		if (plans[w] == NULL)
			fatalx("out of memory");
		plans[w]->add = calloc(nadded + 1, sizeof(*plans[w]->add));
		plans[w]->remove = calloc(nctl_listeners + 1, sizeof(char *));
		if (plans[w]->add == NULL || plans[w]->remove == NULL)
			fatalx("out of memory");
	}
	/* removals */
	for (i = 0; i < nctl_listeners;) {
		if (ctl_listeners[i].in_use) {
			i++;
			continue;
		}
		log_info("closing listener %s", ctl_listeners[i].key);
		for (w = 0; w < nworkers; w++)
			plans[w]->remove[plans[w]->nremove++] = strdup(ctl_listeners[i].key);
		free(ctl_listeners[i].key); /* workers close their fds (LEV_OPT_CLOSE_ON_FREE) */
		ctl_listeners[i] = ctl_listeners[--nctl_listeners];
	}
	/* additions */
	ctl_listeners =
	    realloc(ctl_listeners, (nctl_listeners + nadded + 1) * sizeof(*ctl_listeners));
	if (ctl_listeners == NULL)
		fatalx("out of memory");
	for (i = 0; i < nadded; i++) {
		const struct listener_cfg *lc = NULL;

		for (j = 0; j < s->nlisteners; j++)
			if (strcmp(s->listeners[j].key, added[i].key) == 0)
				lc = &s->listeners[j];
		log_info("listening on %s", added[i].key);
		for (w = 0; w < nworkers; w++) {
			struct listener_plan *pl = plans[w];

			pl->add[pl->nadd].key = strdup(added[i].key);
			pl->add[pl->nadd].port = lc->port;
			pl->add[pl->nadd].fd = added[i].fds[w];
			pl->nadd++;
		}
		ctl_listeners[nctl_listeners++] = added[i];
	}
	free(added);
	for (w = 0; w < nworkers; w++)
		worker_post(workers[w], worker_apply_plan, plans[w]);
	return 0;
}

/* ---- reload ---- */

static int apply_snapshot(struct snapshot *s, bool initial)
{
	/* Publish first so that workers adopting the new listeners route with the new
	 * config; old listeners keep serving until the plan reaches each worker. */
	s->generation = ++generation;
	if (clusterstate_attach(s, (unsigned)nworkers) != 0) {
		log_warnx("out of memory attaching cluster state");
		return -1;
	}
	/* Ticket keys first: the new generation's contexts seal tickets with them. */
	tls_ticket_use(s->set->main.tls_ticket_keys);
	snapshot_publish(s);
	healthcheck_apply(ctl_base, s);
	if (reconcile_listeners(s) != 0) {
		if (initial)
			fatalx("cannot open the configured listeners");
		return -1;
	}
	if (accesslog_open(s->set->access_log_path, s->set->access_log_format) != 0 && initial)
		fatalx("cannot open the access log");
	return 0;
}

static void do_reload(void)
{
	int nerrors = 0;
	struct snapshot *s, *old;

	notify_systemd("RELOADING=1");
	log_info("reloading %s", ctl_main_path);
	certwatch_begin();
	s = load_snapshot(ctl_main_path, false, &nerrors, true);
	if (s == NULL) {
		certwatch_end(false);
		log_warnx("reload failed: %d error%s; generation %llu keeps serving", nerrors,
			  nerrors == 1 ? "" : "s", (unsigned long long)generation);
		notify_systemd("READY=1");
		return;
	}
	old = snapshot_current();
	if (old != NULL && s->set->main.workers != old->set->main.workers)
		log_warnx("workers changed: takes effect at the next restart");
	snapshot_unref(old);
	/* Bind new listeners before publishing so a port in use refuses the reload whole. */
	if (apply_snapshot(s, false) != 0) {
		certwatch_end(false);
		log_warnx("reload failed: listeners could not be opened; the previous listeners "
			  "stay open");
		notify_systemd("READY=1");
		return;
	}
	certwatch_end(true);
	log_info("reload ok: config generation %llu live", (unsigned long long)generation);
	notify_systemd("READY=1");
}

/* ---- key sets behind jwksUri ---- */

#define JWKS_REFRESH_S (20 * 60) /* Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL */

/* Fetch the jwksUris again; a changed key set (a key rotated) is taken by a reload. */
static void jwks_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct snapshot *s = snapshot_current();
	bool changed = s != NULL && jwtauth_refresh(s->set);

	snapshot_unref(s);
	if (changed) {
		log_info("a jwksUri key set changed");
		do_reload();
	}
}

/* ---- ServiceEntry names (resolution DNS) ---- */

#define DNS_TICK_S 5 /* how often the refresh interval is looked at */

/* Resolve the names again every dnsRefreshRate; changed addresses are taken by a reload. */
static void dns_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	static uint64_t last_us;
	struct snapshot *s = snapshot_current();
	uint64_t now = clock_mono_us();
	bool changed = false;

	if (last_us == 0)
		last_us = now; /* the load that started serving resolved them */
	if (s != NULL && dns_has_names(s->set) && now - last_us >= s->set->main.dns_refresh_us) {
		last_us = now;
		changed = dns_refresh(s->set);
	}
	snapshot_unref(s);
	if (changed) {
		log_info("a ServiceEntry name resolves to other addresses");
		do_reload();
	}
}

/* ---- signals ---- */

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	do_reload();
}

/* A certificate, key, CA, CRL or ticket key file of the configuration changed. */
static void certwatch_cb(const char *path)
{
	log_info("TLS file %s changed", path);
	do_reload();
}

static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	static uint64_t deadline_us;
	struct snapshot *s = snapshot_current();
	int w;

	log_info("received %s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
	notify_systemd("STOPPING=1");
	deadline_us = s != NULL ? s->set->main.timeouts.drain_us : 15000000;
	snapshot_unref(s);
	for (w = 0; w < nworkers; w++)
		worker_post(workers[w], worker_drain, &deadline_us);
	admin_stop();
	event_base_loopexit(ctl_base, NULL);
}

/* ---- privileges ---- */

static void drop_privileges(const char *user)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return;
	if (user == NULL)
		user = "meshgate";
	pw = getpwnam(user);
	if (pw == NULL) {
		log_warnx("running as root: user \"%s\" does not exist (set `user:` in the main "
			  "config or create it)",
			  user);
		return;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		fatal("dropping privileges to %s", user);
	log_info("dropped privileges to user %s", user);
}

int control_run(const char *main_path)
{
	struct event *ev_hup, *ev_term, *ev_int, *ev_jwks, *ev_dns;
	struct timeval jwks_every = {JWKS_REFRESH_S, 0}, dns_every = {DNS_TICK_S, 0};
	struct snapshot *s;
	int nerrors = 0, n;

	ctl_main_path = main_path;
	log_set_thread_name("ctl");
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0)
		fatalx("libevent has no pthreads support");
	certwatch_begin();
	s = load_snapshot(main_path, false, &nerrors, true);
	certwatch_end(s != NULL);
	if (s == NULL) {
		log_warnx("%s: configuration is invalid (%d error%s); not starting", main_path,
			  nerrors, nerrors == 1 ? "" : "s");
		return 1;
	}
	n = s->set->main.workers;
	if (n <= 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus > 0 ? (int)cpus : 1;
	}
	ctl_base = event_base_new();
	if (ctl_base == NULL)
		fatalx("event_base_new failed");
	workers_start(n);
	apply_snapshot(s, true);
	if (admin_start(ctl_base, s->set->main.admin_address) != 0)
		fatalx("cannot start the admin endpoint on %s", s->set->main.admin_address);
	certwatch_start(ctl_base, certwatch_cb);
	tls_ticket_start(ctl_base);
	drop_privileges(s->set->main.user);
	log_info("meshgate %s running: %d worker%s, config generation %llu live", PACKAGE_VERSION,
		 n, n == 1 ? "" : "s", (unsigned long long)generation);
	notify_systemd("READY=1");

	ev_hup = evsignal_new(ctl_base, SIGHUP, sighup_cb, NULL);
	ev_term = evsignal_new(ctl_base, SIGTERM, sigterm_cb, NULL);
	ev_int = evsignal_new(ctl_base, SIGINT, sigterm_cb, NULL);
	evsignal_add(ev_hup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	ev_jwks = event_new(ctl_base, -1, EV_PERSIST, jwks_refresh_cb, NULL);
	event_add(ev_jwks, &jwks_every);
	ev_dns = event_new(ctl_base, -1, EV_PERSIST, dns_tick_cb, NULL);
	event_add(ev_dns, &dns_every);
	event_base_dispatch(ctl_base);

	workers_join();
	log_info("all workers stopped; exiting");
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_jwks);
	event_free(ev_dns);
	jwtauth_fetch_cleanup();
	jwtauth_thread_cleanup(); /* /explain verified tokens on this thread */
	dns_cleanup();
	admin_free();
	for (size_t i = 0; i < nctl_listeners; i++)
		free(ctl_listeners[i].key);
	free(ctl_listeners);
	healthcheck_stop();
	certwatch_stop();
	tls_ticket_stop();
	s = snapshot_current();
	snapshot_unref(s);
	snapshot_publish_none();
	clusterstate_free_all();
	accesslog_close();
	event_base_free(ctl_base);
	libevent_global_shutdown();
	return 0;
}

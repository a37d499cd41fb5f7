#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clusterstate.h"
#include "config/model.h"
#include "exchange.h"
#include "istiometrics.h"
#include "log.h"
#include "snapshot.h"
#include "worker.h"

/* Istio's buckets: request duration in milliseconds, sizes in bytes. */
static const uint64_t dur_bounds_us[] = {500,       1000,      5000,       10000,     25000,
					 50000,     100000,    250000,     500000,    1000000,
					 2500000,   5000000,   10000000,   30000000,  60000000,
					 300000000, 600000000, 1800000000, 3600000000};
static const char *const dur_bounds_text[] = {
    "0.5",  "1",    "5",     "10",    "25",    "50",     "100",    "250",     "500",    "1000",
    "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000"};
#define NDUR (sizeof(dur_bounds_us) / sizeof(dur_bounds_us[0]))
#define NSIZE 10 /* 1, 10, 100 ... 1e9 */

struct istio_series {
	struct istio_series *next; /* the worker's published list, newest first */
	/* the key */
	const struct cluster_state *cs;
	int16_t status, grpc;
	uint8_t proto;
	char flags[32]; /* as long as an exchange's (exchange.h) */
	/* HTTP: requests, histograms (per bucket, the last one +Inf), sums */
	uint64_t count;
	uint64_t dur[NDUR + 1], req_size[NSIZE + 1], resp_size[NSIZE + 1];
	uint64_t dur_sum_us, req_sum, resp_sum;
	/* TCP */
	uint64_t opened, closed, received, sent;
};

_Static_assert(sizeof(((struct istio_series *)0)->flags) >= sizeof(((struct exchange *)0)->flags),
	       "an exchange's flags fit a series key");

struct istio_table {
	struct istio_series **slots;
	size_t cap, n;
	struct istio_series *overflow[3]; /* by protocol, once ISTIOM_MAX_SERIES are made */
	struct istio_series *last;        /* the last one used: most requests repeat it */
	struct istio_series *head;        /* read by the admin thread (acquire) */
};

struct istio_table *istiom_table_new(void)
{
	struct istio_table *t = calloc(1, sizeof(*t));

	if (t == NULL || (t->slots = calloc(64, sizeof(*t->slots))) == NULL)
		fatal("calloc");
	t->cap = 64;
	return t;
}

void istiom_table_free(struct istio_table *t)
{
	struct istio_series *s, *next;

	if (t == NULL)
		return;
	for (s = t->head; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	free(t->slots);
	free(t);
}

static uint64_t series_hash(const struct cluster_state *cs, int status, int grpc, int proto,
			    const char *flags)
{
	uint64_t h = (uint64_t)(uintptr_t)cs * 0x9E3779B97F4A7C15ull;

	h ^= (uint64_t)(status * 31 + grpc * 7 + proto) * 0xC2B2AE3D27D4EB4Full;
	for (const char *p = flags; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
	return h ^ (h >> 29);
}

static inline bool series_is(const struct istio_series *s, const struct cluster_state *cs,
			     int status, int grpc, int proto, const char *flags)
{
	size_t i = 0;

	if (s->cs != cs || s->status != status || s->grpc != grpc || s->proto != proto)
		return false;
	/* flags are short ("-", "UF,URX"): a loop, not a call */
	while (s->flags[i] == flags[i] && flags[i] != '\0')
		i++;
	return s->flags[i] == flags[i];
}

static void table_grow(struct istio_table *t)
{
	size_t cap = t->cap * 2;
	struct istio_series **slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		fatal("calloc");
	for (size_t i = 0; i < t->cap; i++) {
		struct istio_series *s = t->slots[i];
		size_t k;

		if (s == NULL)
			continue;
		k = series_hash(s->cs, s->status, s->grpc, s->proto, s->flags) & (cap - 1);
		while (slots[k] != NULL)
			k = (k + 1) & (cap - 1);
		slots[k] = s;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
}

/* A new series, published for the admin thread. */
static struct istio_series *series_new(struct istio_table *t, const struct cluster_state *cs,
				       int status, int grpc, int proto, const char *flags)
{
	struct istio_series *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cs = cs;
	s->status = (int16_t)status;
	s->grpc = (int16_t)grpc;
	s->proto = (uint8_t)proto;
	strcpy(s->flags, flags);
	s->next = t->head;
	__atomic_store_n(&t->head, s, __ATOMIC_RELEASE);
	return s;
}

/* The series of this key, created on its first use (the last one used is looked at by
 * series_find first). */
static __attribute__((noinline)) struct istio_series *series_get(struct istio_table *t,
								 const struct cluster_state *cs,
								 int status, int grpc, int proto,
								 const char *flags)
{
	size_t k;
	struct istio_series *s;

	if (strlen(flags) >= sizeof(s->flags))
		flags = "-"; /* cannot be: no exchange or relay has longer flags */
	k = series_hash(cs, status, grpc, proto, flags) & (t->cap - 1);
	for (; (s = t->slots[k]) != NULL; k = (k + 1) & (t->cap - 1))
		if (series_is(s, cs, status, grpc, proto, flags))
			return t->last = s;
	if (t->n >= ISTIOM_MAX_SERIES) {
		if (t->overflow[proto] == NULL) {
			log_warnx("istio metrics: more than %d series in a worker: further ones "
				  "are counted with response_flags=\"overflow\"",
				  ISTIOM_MAX_SERIES);
			t->overflow[proto] = series_new(t, NULL, 0, -1, proto, "overflow");
		}
		return t->overflow[proto];
	}
	if ((s = series_new(t, cs, status, grpc, proto, flags)) == NULL)
		return NULL;
	t->slots[k] = t->last = s;
	if (++t->n * 2 > t->cap)
		table_grow(t);
	return s;
}

static inline struct istio_series *series_find(struct istio_table *t,
					       const struct cluster_state *cs, int status, int grpc,
					       int proto, const char *flags)
{
	struct istio_series *s = t->last;

	return s != NULL && series_is(s, cs, status, grpc, proto, flags)
		   ? s
		   : series_get(t, cs, status, grpc, proto, flags);
}

static unsigned dur_bucket(uint64_t us)
{
	unsigned i = 0;

	while (i < NDUR && us > dur_bounds_us[i])
		i++;
	return i;
}

static unsigned size_bucket(uint64_t n)
{
	unsigned i = 0;
	uint64_t bound = 1;

	while (i < NSIZE && n > bound) {
		bound *= 10;
		i++;
	}
	return i;
}

void istiom_request(struct istio_table *t, const struct cluster_state *cs, int status,
		    const char *flags, int grpc, enum istiom_proto proto, uint64_t duration_us,
		    uint64_t request_bytes, uint64_t response_bytes)
{
	struct istio_series *s = series_find(t, cs, status, grpc, (int)proto, flags);

	if (s == NULL)
		return;
	s->count++;
	s->dur[dur_bucket(duration_us)]++;
	s->dur_sum_us += duration_us;
	s->req_size[size_bucket(request_bytes)]++;
	s->req_sum += request_bytes;
	s->resp_size[size_bucket(response_bytes)]++;
	s->resp_sum += response_bytes;
}

void istiom_tcp_opened(struct istio_table *t, const struct cluster_state *cs)
{
	struct istio_series *s = series_find(t, cs, 0, -1, ISTIOM_TCP, "-");

	if (s != NULL)
		s->opened++;
}

void istiom_tcp_bytes(struct istio_table *t, const struct cluster_state *cs, uint64_t received,
		      uint64_t sent)
{
	struct istio_series *s = series_find(t, cs, 0, -1, ISTIOM_TCP, "-");

	if (s != NULL) {
		s->received += received;
		s->sent += sent;
	}
}

void istiom_tcp_closed(struct istio_table *t, const struct cluster_state *cs, const char *flags,
		       uint64_t received, uint64_t sent)
{
	struct istio_series *s = series_find(t, cs, 0, -1, ISTIOM_TCP, flags);

	if (s != NULL) {
		s->closed++;
		s->received += received;
		s->sent += sent;
	}
}

/* ---- the admin thread's view ---- */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* One key's series summed over the workers. */
struct istio_sum {
	const struct istio_series *key;
	struct istio_series v;
};

static int sum_cmp(const void *a, const void *b)
{
	const struct istio_series *x = ((const struct istio_sum *)a)->key;
	const struct istio_series *y = ((const struct istio_sum *)b)->key;
	const char *xn = x->cs != NULL ? x->cs->name : "";
	const char *yn = y->cs != NULL ? y->cs->name : "";
	int c = strcmp(xn, yn);

	if (c != 0)
		return c;
	if (x->proto != y->proto)
		return x->proto - y->proto;
	if (x->status != y->status)
		return x->status - y->status;
	if (x->grpc != y->grpc)
		return x->grpc - y->grpc;
	return strcmp(x->flags, y->flags);
}

static void sum_add(struct istio_series *to, const struct istio_series *s)
{
	to->count += LOAD(s->count);
	for (size_t i = 0; i <= NDUR; i++)
		to->dur[i] += LOAD(s->dur[i]);
	for (size_t i = 0; i <= NSIZE; i++) {
		to->req_size[i] += LOAD(s->req_size[i]);
		to->resp_size[i] += LOAD(s->resp_size[i]);
	}
	to->dur_sum_us += LOAD(s->dur_sum_us);
	to->req_sum += LOAD(s->req_sum);
	to->resp_sum += LOAD(s->resp_sum);
	to->opened += LOAD(s->opened);
	to->closed += LOAD(s->closed);
	to->received += LOAD(s->received);
	to->sent += LOAD(s->sent);
}

/* Every worker's series, summed per key, sorted; *n of them (NULL when none). */
static struct istio_sum *sums_collect(size_t *n)
{
	struct istio_sum *all = NULL;
	size_t cnt = 0, cap = 0, out = 0;

	for (int w = 0; w < nworkers; w++) {
		const struct istio_series *s =
		    workers[w]->istio != NULL
			? __atomic_load_n(&workers[w]->istio->head, __ATOMIC_ACQUIRE)
			: NULL;

		for (; s != NULL; s = s->next) {
			if (cnt == cap) {
				struct istio_sum *bigger;

				cap = cap ? cap * 2 : 64;
				bigger = realloc(all, cap * sizeof(*all));
				if (bigger == NULL) {
					free(all);
					*n = 0;
					return NULL;
				}
				all = bigger;
			}
			memset(&all[cnt].v, 0, sizeof(all[cnt].v));
			all[cnt].key = s;
			sum_add(&all[cnt++].v, s);
		}
	}
	if (cnt == 0) {
		free(all);
		*n = 0;
		return NULL;
	}
	qsort(all, cnt, sizeof(*all), sum_cmp);
	for (size_t i = 0; i < cnt; i++) {
		if (out > 0 && sum_cmp(&all[out - 1], &all[i]) == 0) {
			sum_add(&all[out - 1].v, &all[i].v);
			continue;
		}
		all[out++] = all[i];
	}
	*n = out;
	return all;
}

static const char *kv_value(const struct kv_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].value;
	return NULL;
}

static const char *first_of(const struct kv_list *l, const char *a, const char *b, const char *c,
			    const char *dflt)
{
	const char *v = kv_value(l, a);

	if (v == NULL && b != NULL)
		v = kv_value(l, b);
	if (v == NULL && c != NULL)
		v = kv_value(l, c);
	return v != NULL ? v : dflt;
}

/* One scrape being written: where, from which generation, the labels a Telemetry removed
 * from the current metric (none: NULL), and whether the current sample has a label yet. */
struct scrape {
	FILE *out;
	const struct snapshot *snap;
	const struct str_list *removed;
	bool first;
};

/* One label, unless removed. */
static void lab(struct scrape *sc, const char *name, const char *value)
{
	for (size_t i = 0; sc->removed != NULL && i < sc->removed->n; i++)
		if (strcmp(sc->removed->v[i], name) == 0)
			return;
	fprintf(sc->out, "%s%s=\"%s\"", sc->first ? "" : ",", name, value);
	sc->first = false;
}

/* The labels of the appliance (the source), from the main config's labels and namespace
 * as Istio reads a workload's. */
static void source_labels(struct scrape *sc)
{
	const struct snapshot *snap = sc->snap;
	static const struct kv_list none;
	const struct kv_list *l = snap != NULL ? &snap->set->main.labels : &none;
	const char *app = kv_value(l, "app");
	const char *workload = app != NULL ? app : "meshgate";

	lab(sc, "reporter", "source");
	lab(sc, "source_workload", workload);
	lab(sc, "source_canonical_service",
	    first_of(l, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app",
		     workload));
	lab(sc, "source_canonical_revision",
	    first_of(l, "service.istio.io/canonical-revision", "app.kubernetes.io/version",
		     "version", "latest"));
	lab(sc, "source_workload_namespace", snap != NULL ? snap->set->main.ns : "default");
	lab(sc, "source_principal", "unknown");
	lab(sc, "source_app", app != NULL ? app : "unknown");
	lab(sc, "source_version", first_of(l, "version", NULL, NULL, "unknown"));
	lab(sc, "source_cluster", "unknown");
}

static const struct cluster *cluster_named(const struct snapshot *snap, const char *name)
{
	for (size_t i = 0; snap != NULL && i < snap->nclusters; i++)
		if (strcmp(snap->clusters[i]->name, name) == 0)
			return snap->clusters[i];
	return NULL;
}

/* The destination's labels, from its cluster's name ("outbound|PORT|SUBSET|HOST"): a
 * Kubernetes name "svc.ns.svc..." gives the service's name and namespace, another host is
 * its own name in its ServiceEntry's namespace; the version is the subset's `version`
 * label. */
static void destination_labels(struct scrape *sc, const struct istio_series *key)
{
	const struct snapshot *snap = sc->snap;
	const char *name = key->cs != NULL ? key->cs->name : NULL;
	const char *host = NULL, *subset = NULL, *svc_ns = "unknown", *version = "unknown";
	char svc[256] = "unknown", subset_buf[128] = "", ns_buf[128];
	const struct cluster *cl = NULL;

	if (name != NULL && strncmp(name, "outbound|", 9) == 0) {
		const char *p = strchr(name + 9, '|'), *q = p != NULL ? strchr(p + 1, '|') : NULL;

		if (q != NULL) {
			snprintf(subset_buf, sizeof(subset_buf), "%.*s", (int)(q - p - 1), p + 1);
			subset = subset_buf;
			host = q + 1;
		}
	}
	if (host != NULL) {
		const char *dot = strchr(host, '.');
		const char *svcdot = dot != NULL ? strstr(dot, ".svc.") : NULL;

		cl = cluster_named(snap, name);
		if (svcdot != NULL && svcdot > dot) {
			snprintf(svc, sizeof(svc), "%.*s", (int)(dot - host), host);
			snprintf(ns_buf, sizeof(ns_buf), "%.*s", (int)(svcdot - dot - 1), dot + 1);
			svc_ns = ns_buf;
		} else {
			snprintf(svc, sizeof(svc), "%s", host);
			if (cl != NULL && cl->se != NULL)
				svc_ns = cl->se->meta.ns;
		}
		if (cl != NULL && cl->dr != NULL && subset != NULL && *subset != '\0')
			for (size_t i = 0; i < cl->dr->nsubsets; i++)
				if (strcmp(cl->dr->subsets[i].name, subset) == 0)
					version = first_of(&cl->dr->subsets[i].labels, "version",
							   NULL, NULL, "unknown");
	}
	lab(sc, "destination_workload", "unknown");
	lab(sc, "destination_workload_namespace", svc_ns);
	lab(sc, "destination_principal", "unknown");
	lab(sc, "destination_app", "unknown");
	lab(sc, "destination_version", version);
	lab(sc, "destination_service", host != NULL ? host : "unknown");
	lab(sc, "destination_canonical_service", svc);
	lab(sc, "destination_canonical_revision",
	    strcmp(version, "unknown") != 0 ? version : "latest");
	lab(sc, "destination_service_name", svc);
	lab(sc, "destination_service_namespace", svc_ns);
	lab(sc, "destination_cluster", "unknown");
}

static const char *proto_name(int proto)
{
	return proto == ISTIOM_GRPC ? "grpc" : proto == ISTIOM_TCP ? "tcp" : "http";
}

/* {labels} of a series, with extra (e.g. le="5", or NULL) last. */
static void labels(struct scrape *sc, const struct istio_series *key, const char *extra)
{
	char code[16], grpc[16];

	fputc('{', sc->out);
	sc->first = true;
	source_labels(sc);
	destination_labels(sc, key);
	lab(sc, "request_protocol", proto_name(key->proto));
	if (key->proto != ISTIOM_TCP) {
		snprintf(code, sizeof(code), "%d", key->status);
		lab(sc, "response_code", code);
		snprintf(grpc, sizeof(grpc), "%d", key->grpc);
		lab(sc, "grpc_response_status", key->grpc >= 0 ? grpc : "");
	}
	lab(sc, "response_flags", key->flags);
	lab(sc, "connection_security_policy", "unknown");
	if (extra != NULL)
		fprintf(sc->out, "%s%s", sc->first ? "" : ",", extra);
	fputc('}', sc->out);
}

/* Whether the Telemetries left metric m on; sets the labels it writes. */
static bool metric_on(struct scrape *sc, enum tel_metric m)
{
	const struct snapshot *snap = sc->snap;

	if (snap != NULL && ((snap->set->metrics_disabled >> m) & 1))
		return false;
	sc->removed = snap != NULL && snap->set->metrics_removed[m].n > 0
			  ? &snap->set->metrics_removed[m]
			  : NULL;
	return true;
}

static void histogram(struct scrape *sc, const char *family, const struct istio_sum *all, size_t n,
		      int which)
{
	for (size_t i = 0; i < n; i++) {
		const struct istio_series *v = &all[i].v;
		const uint64_t *b = which == 0 ? v->dur : which == 1 ? v->req_size : v->resp_size;
		size_t nb = which == 0 ? NDUR : NSIZE;
		uint64_t cum = 0;
		char le[40];

		if (all[i].key->proto == ISTIOM_TCP)
			continue;
		for (size_t k = 0; k <= nb; k++) {
			cum += b[k];
			if (k == nb)
				snprintf(le, sizeof(le), "le=\"+Inf\"");
			else if (which == 0)
				snprintf(le, sizeof(le), "le=\"%s\"", dur_bounds_text[k]);
			else
				snprintf(le, sizeof(le), "le=\"1e+%02zu\"", k);
			fprintf(sc->out, "%s_bucket", family);
			labels(sc, all[i].key, le);
			fprintf(sc->out, " %llu\n", (unsigned long long)cum);
		}
		fprintf(sc->out, "%s_sum", family);
		labels(sc, all[i].key, NULL);
		if (which == 0)
			fprintf(sc->out, " %.3f\n", (double)v->dur_sum_us / 1000.0);
		else
			fprintf(sc->out, " %llu\n",
				(unsigned long long)(which == 1 ? v->req_sum : v->resp_sum));
		fprintf(sc->out, "%s_count", family);
		labels(sc, all[i].key, NULL);
		fprintf(sc->out, " %llu\n", (unsigned long long)cum);
	}
}

static void tcp_counter(struct scrape *sc, const char *family, const char *help,
			const struct istio_sum *all, size_t n, size_t offset)
{
	fprintf(sc->out, "# HELP %s %s\n# TYPE %s counter\n", family, help, family);
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		if (all[i].key->proto != ISTIOM_TCP)
			continue;
		memcpy(&v, (const char *)&all[i].v + offset, sizeof(v));
		fputs(family, sc->out);
		labels(sc, all[i].key, NULL);
		fprintf(sc->out, " %llu\n", (unsigned long long)v);
	}
}

void istiom_write_prometheus(FILE *out, const struct snapshot *snap)
{
	struct scrape sc = {out, snap, NULL, true};
	size_t n;
	struct istio_sum *all = sums_collect(&n);

	if (metric_on(&sc, TM_REQUEST_COUNT)) {
		fputs("# HELP istio_requests_total Requests, as Istio's proxies count them\n"
		      "# TYPE istio_requests_total counter\n",
		      out);
		for (size_t i = 0; i < n; i++) {
			if (all[i].key->proto == ISTIOM_TCP)
				continue;
			fputs("istio_requests_total", out);
			labels(&sc, all[i].key, NULL);
			fprintf(out, " %llu\n", (unsigned long long)all[i].v.count);
		}
	}
	if (metric_on(&sc, TM_REQUEST_DURATION)) {
		fputs("# HELP istio_request_duration_milliseconds Request durations\n"
		      "# TYPE istio_request_duration_milliseconds histogram\n",
		      out);
		histogram(&sc, "istio_request_duration_milliseconds", all, n, 0);
	}
	if (metric_on(&sc, TM_REQUEST_SIZE)) {
		fputs("# HELP istio_request_bytes Request body sizes\n"
		      "# TYPE istio_request_bytes histogram\n",
		      out);
		histogram(&sc, "istio_request_bytes", all, n, 1);
	}
	if (metric_on(&sc, TM_RESPONSE_SIZE)) {
		fputs("# HELP istio_response_bytes Response body sizes\n"
		      "# TYPE istio_response_bytes histogram\n",
		      out);
		histogram(&sc, "istio_response_bytes", all, n, 2);
	}
	if (metric_on(&sc, TM_TCP_OPENED_CONNECTIONS))
		tcp_counter(&sc, "istio_tcp_connections_opened_total", "Relayed connections opened",
			    all, n, offsetof(struct istio_series, opened));
	if (metric_on(&sc, TM_TCP_CLOSED_CONNECTIONS))
		tcp_counter(&sc, "istio_tcp_connections_closed_total", "Relayed connections closed",
			    all, n, offsetof(struct istio_series, closed));
	if (metric_on(&sc, TM_TCP_RECEIVED_BYTES))
		tcp_counter(&sc, "istio_tcp_received_bytes_total",
			    "Bytes received from clients on relayed connections", all, n,
			    offsetof(struct istio_series, received));
	if (metric_on(&sc, TM_TCP_SENT_BYTES))
		tcp_counter(&sc, "istio_tcp_sent_bytes_total",
			    "Bytes sent to clients on relayed connections", all, n,
			    offsetof(struct istio_series, sent));
	free(all);
}

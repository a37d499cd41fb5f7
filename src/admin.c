#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "http1.h"
#include "jwtauth.h"
#include "authz.h"
#include "cidr.h"
#include "clock.h"
#include "clusterstate.h"
#include "istiometrics.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "outlier.h"
#include "router.h"
#include "snapshot.h"
#include "tls.h"
#include "worker.h"

static struct evhttp *admin_http;

static void reply_text(struct evhttp_request *req, int code, const char *reason,
		       struct evbuffer *body, const char *ctype)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "content-type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

static void ready_cb(struct evhttp_request *req, void *arg)
{
	struct snapshot *s = snapshot_current();
	struct evbuffer *b = evbuffer_new();

	if (s != NULL) {
		evbuffer_add_printf(b, "LIVE generation %llu\n", (unsigned long long)s->generation);
		reply_text(req, 200, "OK", b, "text/plain");
	} else {
		evbuffer_add_printf(b, "NOT READY\n");
		reply_text(req, 503, "Service Unavailable", b, "text/plain");
	}
	snapshot_unref(s);
	evbuffer_free(b);
}

/* Per-cluster counters as labelled series (cluster names hold no quote or backslash:
 * they are built from host names, ports and subset names). */
struct route_family {
	FILE *f;
	enum cluster_counter k;
};

static void route_prometheus(const struct cluster_state *cs, const char *prefix, void *arg)
{
	const struct route_family *rf = arg;

	fprintf(rf->f, "meshgate_route_%s{route=\"%s\"} %llu\n", cluster_counter_names[rf->k],
		prefix, (unsigned long long)clusterstate_count(cs, rf->k));
}

/* Seconds until each served certificate expires (the earliest of a server's certificates),
 * so an alert can fire well before clients see an expired one. */
static void certs_prometheus(FILE *f)
{
	struct snapshot *s = snapshot_current();
	time_t now = time(NULL);

	fprintf(f, "# HELP meshgate_tls_certificate_expiry_seconds Seconds until the "
		   "certificate expires (negative: expired)\n"
		   "# TYPE meshgate_tls_certificate_expiry_seconds gauge\n");
	for (size_t g = 0; s != NULL && g < s->set->ngateways; g++) {
		const struct cfg_gateway *gw = s->set->gateways[g];

		for (size_t i = 0; gw->served && i < gw->nservers; i++) {
			const struct tls_server_ctx *t = gw->servers[i].tls_ctx;

			if (t != NULL && t->cert_path != NULL)
				fprintf(f,
					"meshgate_tls_certificate_expiry_seconds{gateway=\"%s/%s\","
					"port=\"%u\",file=\"%s\"} %lld\n",
					gw->meta.ns, gw->meta.name, gw->servers[i].port,
					t->cert_path, (long long)(t->not_after - (int64_t)now));
		}
	}
	snapshot_unref(s);
}

static void clusters_prometheus(FILE *f)
{
	struct snapshot *s = snapshot_current();

	/* a family's samples follow its TYPE line: one walk per counter */
	for (int k = CC_RQ_TOTAL; k <= CC_RQ_5XX; k++) {
		struct route_family rf = {f, (enum cluster_counter)k};

		fprintf(f, "# TYPE meshgate_route_%s counter\n", cluster_counter_names[k]);
		clusterstate_each_route(route_prometheus, &rf);
	}
	for (int k = 0; s != NULL && k < CC__COUNT; k++) {
		fprintf(f, "# TYPE meshgate_cluster_%s counter\n", cluster_counter_names[k]);
		for (size_t i = 0; i < s->nclusters; i++)
			fprintf(f, "meshgate_cluster_%s{cluster=\"%s\"} %llu\n",
				cluster_counter_names[k], s->clusters[i]->name,
				(unsigned long long)clusterstate_count(s->clusters[i]->state,
								       (enum cluster_counter)k));
	}
	snapshot_unref(s);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f != NULL) {
		struct snapshot *s = snapshot_current();

		metrics_write_prometheus(f);
		clusters_prometheus(f);
		certs_prometheus(f);
		istiom_write_prometheus(f, s);
		snapshot_unref(s);
		fclose(f);
		evbuffer_add(b, text, len);
		free(text);
	}
	reply_text(req, 200, "OK", b, "text/plain; version=0.0.4");
	evbuffer_free(b);
}

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

/* Envoy-like lines: the circuit breakers in force and their counters. */
static void clusters_state(struct evbuffer *b, const struct cluster *cl)
{
	const struct conn_pool_settings *lim = cl->pool_limits;
	const struct cluster_state *cs = cl->state;

	if (lim != NULL)
		evbuffer_add_printf(
		    b,
		    "%s::circuit_breakers::max_connections::%u::max_pending_requests::"
		    "%u::max_requests::%u::max_retries::%u\n",
		    cl->name, lim->max_connections, lim->max_pending, lim->max_requests,
		    lim->max_retries);
	if (cs == NULL)
		return;
	evbuffer_add_printf(b,
			    "%s::cx_active::%llu::rq_active::%llu::rq_pending::%llu::"
			    "retries_active::%llu\n",
			    cl->name, LOAD(cs->cx_active), LOAD(cs->rq_active),
			    LOAD(cs->rq_pending), LOAD(cs->retries_active));
	evbuffer_add_printf(b, "%s::overflow::cx::%llu::rq_pending::%llu::rq::%llu::retry::%llu\n",
			    cl->name, LOAD(cs->cx_overflow), LOAD(cs->rq_pending_overflow),
			    LOAD(cs->rq_overflow), LOAD(cs->retry_overflow));
	evbuffer_add_printf(b, "%s::stats", cl->name);
	for (int k = 0; k < CC__COUNT; k++)
		evbuffer_add_printf(
		    b, "::%s::%llu", cluster_counter_names[k],
		    (unsigned long long)clusterstate_count(cs, (enum cluster_counter)k));
	evbuffer_add(b, "\n", 1);
	if (cl->outlier != NULL)
		evbuffer_add_printf(b, "%s::outlier::ejected::%llu::ejections_total::%llu\n",
				    cl->name, LOAD(cs->ejected), LOAD(cs->ejections_total));
}

static void clusters_endpoint(struct evbuffer *b, const struct cluster *cl,
			      const struct endpoint *ep, uint64_t now)
{
	const struct endpoint_state *es = ep->state;

	evbuffer_add_printf(b, "%s::%s::weight::%u\n", cl->name, ep->name, ep->weight);
	if (es != NULL && cl->health_check != NULL)
		evbuffer_add_printf(b, "%s::%s::active_health_check::%s\n", cl->name, ep->name,
				    atomic_load(&es->hc_failed) ? "/failed_active_hc" : "healthy");
	if (cl->outlier == NULL || es == NULL)
		return;
	if (outlier_ejected(cl, ep, now))
		evbuffer_add_printf(b,
				    "%s::%s::health_flags::/failed_outlier_check::"
				    "ejected_for_ms::%llu\n",
				    cl->name, ep->name, (LOAD(es->ejected_until_us) - now) / 1000);
	else
		evbuffer_add_printf(b, "%s::%s::health_flags::healthy\n", cl->name, ep->name);
	evbuffer_add_printf(b,
			    "%s::%s::consecutive_5xx::%llu::consecutive_gateway::%llu::"
			    "consecutive_local::%llu::ejections::%llu\n",
			    cl->name, ep->name, LOAD(es->consecutive_5xx),
			    LOAD(es->consecutive_gateway), LOAD(es->consecutive_local),
			    LOAD(es->ejections));
}

static void clusters_cb(struct evhttp_request *req, void *arg)
{
	struct snapshot *s = snapshot_current();
	struct evbuffer *b = evbuffer_new();
	uint64_t now;
	size_t i, j;

	now = clock_mono_us();

	for (i = 0; s != NULL && i < s->nclusters; i++) {
		const struct cluster *cl = s->clusters[i];

		clusters_state(b, cl);
		for (j = 0; j < cl->nendpoints; j++)
			clusters_endpoint(b, cl, &cl->endpoints[j], now);
		if (cl->nendpoints == 0)
			evbuffer_add_printf(b, "%s::(no endpoints)\n", cl->name);
	}
	snapshot_unref(s);
	reply_text(req, 200, "OK", b, "text/plain");
	evbuffer_free(b);
}

static void listeners_cb(struct evhttp_request *req, void *arg)
{
	struct snapshot *s = snapshot_current();
	struct evbuffer *b = evbuffer_new();
	size_t i;

	for (i = 0; s != NULL && i < s->nlisteners; i++) {
		const struct listener_cfg *lc = &s->listeners[i];
		size_t npt = 0;

		for (size_t k = 0; lc->tls != NULL && k < lc->tls->n; k++)
			npt += lc->tls->v[k].sctx == NULL;
		evbuffer_add_printf(b, "%s %zu virtual host%s", lc->key, lc->vhosts.nvhosts,
				    lc->vhosts.nvhosts == 1 ? "" : "s");
		if (npt > 0)
			evbuffer_add_printf(b, ", %zu passthrough SNI host%s", npt,
					    npt == 1 ? "" : "s");
		if (lc->protocol == GWP_TCP)
			evbuffer_add_printf(b, ", %zu tcp route%s", lc->tcp.n,
					    lc->tcp.n == 1 ? "" : "s");
		/* PeerAuthentication opened the port to plaintext */
		if (lc->mtls == PA_PERMISSIVE || lc->mtls == PA_DISABLE)
			evbuffer_add_printf(b, ", mTLS %s",
					    lc->mtls == PA_PERMISSIVE ? "PERMISSIVE" : "DISABLE");
		evbuffer_add(b, "\n", 1);
	}
	snapshot_unref(s);
	reply_text(req, 200, "OK", b, "text/plain");
	evbuffer_free(b);
}

/* GET /explain?port=8080&host=a.example&path=/x?y=1&method=GET&header=end-user:%20jason
 * The router's own decisions, narrated: which listener, which virtual host, and for each
 * route why it did or did not match.  Answers "why did this request get that route / 404".
 * With AuthorizationPolicies, first their verdict (source=IP, principal=, sni= give the
 * connection's side), which answers "why a 403". */
#define EXPLAIN_MAX_HEADERS 32

struct explain_conn {
	const char *source, *principal, *sni;
};

/* RequestAuthentication's verdict on the request's token (header=authorization:...):
 * false when it would be refused (401). */
static bool explain_jwt(struct evbuffer *b, const struct snapshot *s, struct route_request *rq,
			struct http1_header *h, size_t *nh, struct jwtauth *auth)
{
	enum jwt_status st;

	if (s->set->nra_rules == 0)
		return true;
	st = jwtauth_request(s->set, s->generation, h, nh, rq->query, rq->query_len,
			     (int64_t)time(NULL), auth);
	rq->nheaders = *nh;
	evbuffer_add_printf(b, "request authentication (%zu JWT issuers): ", s->set->nra_rules);
	if (st != JWT_OK) {
		evbuffer_add_printf(b, "REFUSED -> 401 %s\n", jwt_status_text(st));
		return false;
	}
	if (auth->jwt == NULL) {
		evbuffer_add_printf(b, "no token (passes; no request principal or claims)\n");
		return true;
	}
	rq->jwt = auth->jwt;
	evbuffer_add_printf(b, "verified, request principal %s\n", auth->principal);
	return true;
}

/* A shadow engine's verdict (the dry-run policies of one action), as Envoy reports it. */
static void explain_shadow(struct evbuffer *b, const char *action, const char *prefix, size_t n,
			   const struct authz_engine *e)
{
	char id[AUTHZ_POLICY_ID_MAX];

	if (n == 0)
		return;
	evbuffer_add_printf(b, "  dry-run %s policies (%s, not enforced): ", action, prefix);
	if (e->verdict == AUTHZ_NOT_EVALUATED)
		evbuffer_add_printf(b, "not evaluated (a DENY policy denies first)\n");
	else
		evbuffer_add_printf(b, "shadow %s, matched policy %s\n",
				    authz_verdict_text(e->verdict),
				    authz_policy_id(e, id, sizeof(id)));
}

static void explain_authz(struct evbuffer *b, const struct cfg_set *set,
			  const struct route_request *rq, const struct explain_conn *ec,
			  const struct jwtauth *auth)
{
	struct sockaddr_storage ss;
	struct authz_request ar;
	struct authz_shadow sh;
	const struct cfg_ap *custom;
	const char *why;

	if (!authz_any(set) && set->nap_custom == 0)
		return;
	memset(&ar, 0, sizeof(ar));
	memset(&ss, 0, sizeof(ss));
	if (ec->source != NULL && cidr_addr_parse(ec->source, strlen(ec->source), &ss))
		ar.peer = (const struct sockaddr *)&ss;
	authz_request_http(&ar, rq);
	ar.auth = auth;
	ar.principal = ec->principal;
	ar.sni = ec->sni;
	/* CUSTOM first (Istio's order); the authorizer is named, never asked */
	if (set->nap_custom > 0) {
		custom = authz_custom(set, &ar);
		if (custom != NULL)
			evbuffer_add_printf(b,
					    "external authorization: CUSTOM %s.%s matches: the "
					    "request would be checked by %s (port %u of %s), whose "
					    "verdict comes before the policies below\n",
					    custom->meta.ns, custom->meta.name,
					    set->ap_provider->name, set->ap_provider->port,
					    set->ap_provider->service);
		else
			evbuffer_add_printf(b,
					    "external authorization: no CUSTOM policy matches "
					    "(%zu apply): not checked\n",
					    set->nap_custom);
	}
	if (!authz_any(set))
		return;
	memset(&sh, 0, sizeof(sh));
	why = authz_check(set, &ar, &sh);
	evbuffer_add_printf(b, "access policy (%zu DENY, %zu ALLOW AuthorizationPolicies apply",
			    set->nap_deny, set->nap_allow);
	if (authz_dry_run(set))
		evbuffer_add_printf(b, "; dry-run: %zu DENY, %zu ALLOW", set->nap_shadow_deny,
				    set->nap_shadow_allow);
	if (why == NULL)
		evbuffer_add_printf(b, "): allowed\n");
	else
		evbuffer_add_printf(b, "): DENIED -> 403 %s\n", why);
	explain_shadow(b, "DENY", AUTHZ_DRY_RUN_DENY, set->nap_shadow_deny, &sh.deny);
	explain_shadow(b, "ALLOW", AUTHZ_DRY_RUN_ALLOW, set->nap_shadow_allow, &sh.allow);
	if (ar.peer == NULL)
		evbuffer_add_printf(b, "  (no valid source=IP given: address conditions saw no "
				       "address)\n");
	if (why != NULL)
		evbuffer_add_printf(b, "  (the router is not consulted for a denied request; "
				       "what it would do follows)\n");
}

static void explain_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq q;
	struct evkeyval *kv;
	struct snapshot *s = snapshot_current();
	const struct listener_cfg *lc = NULL;
	struct http1_header hdrs[EXPLAIN_MAX_HEADERS + JWTAUTH_HEADERS_MAX];
	struct jwtauth auth = {NULL, NULL};
	struct route_request rq;
	struct router_trace t = {0};
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	const char *listener = NULL, *port = NULL, *path = "/", *qm;
	struct explain_conn ec = {NULL, NULL, NULL};
	size_t i, nh = 0;

	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.scheme = "http";
	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
		evbuffer_add_printf(b, "bad query string\n");
		reply_text(req, 400, "Bad Request", b, "text/plain");
		goto out;
	}
	TAILQ_FOREACH(kv, &q, next)
	{
		if (strcmp(kv->key, "listener") == 0)
			listener = kv->value;
		else if (strcmp(kv->key, "port") == 0)
			port = kv->value;
		else if (strcmp(kv->key, "host") == 0)
			rq.authority = kv->value;
		else if (strcmp(kv->key, "path") == 0)
			path = kv->value;
		else if (strcmp(kv->key, "method") == 0)
			rq.method = kv->value;
		else if (strcmp(kv->key, "scheme") == 0)
			rq.scheme = kv->value;
		else if (strcmp(kv->key, "source") == 0)
			ec.source = kv->value;
		else if (strcmp(kv->key, "principal") == 0)
			ec.principal = kv->value;
		else if (strcmp(kv->key, "sni") == 0)
			ec.sni = kv->value;
		else if (strcmp(kv->key, "header") == 0 && nh < EXPLAIN_MAX_HEADERS) {
			const char *colon = strchr(kv->value, ':');

			if (colon == NULL)
				continue;
			hdrs[nh].name = kv->value;
			hdrs[nh].name_len = (size_t)(colon - kv->value);
			colon++;
			while (*colon == ' ')
				colon++;
			hdrs[nh].value = colon;
			hdrs[nh].value_len = strlen(colon);
			nh++;
		}
	}
	for (i = 0; s != NULL && i < s->nlisteners; i++) {
		const struct listener_cfg *l = &s->listeners[i];
		char pbuf[16];

		snprintf(pbuf, sizeof(pbuf), "%u", l->port);
		if ((listener != NULL && strcmp(listener, l->key) == 0) ||
		    (listener == NULL && port != NULL && strcmp(port, pbuf) == 0) ||
		    (listener == NULL && port == NULL && s->nlisteners == 1)) {
			lc = l;
			break;
		}
	}
	if (lc == NULL) {
		evbuffer_add_printf(b, "no such listener: give port=N or listener=ADDR:PORT "
				       "(see /listeners)\n");
		reply_text(req, 404, "Not Found", b, "text/plain");
		goto out;
	}
	rq.method_len = strlen(rq.method);
	if (rq.authority == NULL)
		rq.authority = "";
	rq.authority_len = strlen(rq.authority);
	rq.host = rq.authority;
	rq.host_len = rq.authority_len;
	if (rq.host_len > 0 && rq.host[0] != '[') {
		const char *colon = strrchr(rq.host, ':');

		if (colon != NULL)
			rq.host_len = (size_t)(colon - rq.host);
	}
	rq.path = path;
	qm = strchr(path, '?');
	rq.path_len = qm != NULL ? (size_t)(qm - path) : strlen(path);
	if (qm != NULL) {
		rq.query = qm + 1;
		rq.query_len = strlen(qm + 1);
	}
	rq.port = lc->port;
	rq.headers = (const struct msg_header *)hdrs;
	rq.nheaders = nh;
	if (!explain_jwt(b, s, &rq, hdrs, &nh, &auth))
		evbuffer_add_printf(b, "  (neither access policy nor the router is consulted for "
				       "a refused token; what they would do without it follows)\n");
	explain_authz(b, s->set, &rq, &ec, &auth);
	router_explain(lc, &rq, &t);
	evbuffer_add(b, t.buf != NULL ? t.buf : "", t.len);
	router_trace_free(&t);
	reply_text(req, 200, "OK", b, "text/plain");
out:
	evhttp_clear_headers(&q);
	snapshot_unref(s);
	evbuffer_free(b);
}

static void generic_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(
	    b, "meshgate admin: /ready /metrics /stats/prometheus /clusters "
	       "/listeners /explain?port=&host=&path=&method=&header=name:value&source=ip "
	       "(header=authorization:Bearer%%20TOKEN: its JWT verdict and claims)\n");
	reply_text(req, 404, "Not Found", b, "text/plain");
	evbuffer_free(b);
}

int admin_start(struct event_base *base, const char *address)
{
	char host[256];
	const char *colon;
	long port;

	if (address == NULL || address[0] == '\0')
		return 0;
	colon = strrchr(address, ':');
	if (colon == NULL || (size_t)(colon - address) >= sizeof(host))
		return -1;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	if (host[0] == '[') { /* [::1]:15000 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	port = strtol(colon + 1, NULL, 10);
	admin_http = evhttp_new(base);
	if (admin_http == NULL)
		return -1;
	evhttp_set_allowed_methods(admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(admin_http, "/ready", ready_cb, NULL);
	evhttp_set_cb(admin_http, "/metrics", metrics_cb, NULL);
	evhttp_set_cb(admin_http, "/stats/prometheus", metrics_cb, NULL);
	evhttp_set_cb(admin_http, "/clusters", clusters_cb, NULL);
	evhttp_set_cb(admin_http, "/listeners", listeners_cb, NULL);
	evhttp_set_cb(admin_http, "/explain", explain_cb, NULL);
	evhttp_set_gencb(admin_http, generic_cb, NULL);
	if (evhttp_bind_socket(admin_http, host, (ev_uint16_t)port) != 0) {
		log_warn("admin: cannot bind %s", address);
		return -1;
	}
	log_info("admin endpoint on %s", address);
	return 0;
}

void admin_stop(void)
{
}

void admin_free(void)
{
	if (admin_http != NULL)
		evhttp_free(admin_http);
	admin_http = NULL;
}

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "hc_conf.h"
#include "load.h"
#include "logformat.h"
#include "tls_ticket.h"

#define MAINCONF_MAX_WORKERS 256
#define MAINCONF_SEC 1000000ULL
/* Timeouts beyond a day are configuration mistakes, not policies. */
#define MAINCONF_TIMEOUT_MAX_US (24ULL * 3600 * MAINCONF_SEC)

static void mainconf_defaults(struct cfg_main *m)
{
	m->workers = 0;
	m->ns = "default";
	m->root_namespace = "istio-system";
	m->dns_refresh_us = 60000000; /* Istio's meshConfig.dnsRefreshRate default */
	m->admin_address = "127.0.0.1:15000";
	m->access_log_format = ACCESSLOG_TEXT;
	m->limits.max_header_bytes = 65536;
	m->limits.max_headers = 100;
	m->limits.max_request_line_bytes = 16384;
	m->limits.max_connections = 10000;
	m->timeouts.idle_us = 60 * MAINCONF_SEC;
	m->timeouts.request_headers_us = 10 * MAINCONF_SEC;
	m->timeouts.request_body_idle_us = 30 * MAINCONF_SEC;
	m->timeouts.upstream_connect_us = 5 * MAINCONF_SEC;
	m->timeouts.upstream_idle_us = 60 * MAINCONF_SEC;
	m->timeouts.drain_us = 15 * MAINCONF_SEC;
	m->https_redirect_code = 301;
}

/* Relative paths in the main file are relative to its directory.  When that directory is the
 * current one the path is kept as written, so messages stay short and machine-independent. */
static const char *mainconf_resolve(struct pool *p, const struct cfg_main *m, const char *path)
{
	if (path[0] == '/' || strcmp(m->dir, ".") == 0)
		return path;
	if (strcmp(m->dir, "/") == 0)
		return pool_printf(p, "/%s", path);
	return pool_printf(p, "%s/%s", m->dir, path);
}

static const char *mainconf_dir(struct pool *p, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return ".";
	if (slash == path)
		return "/";
	return pool_strndup(p, path, (size_t)(slash - path));
}

static void mainconf_workers(struct diag *d, struct node *n, struct cfg_main *m)
{
	int64_t v;

	if (n == NULL)
		return;
	if (n->type == NODE_SCALAR && strcmp(n->str, "auto") == 0) {
		m->workers = 0;
		return;
	}
	if (n->type == NODE_SCALAR && !n->quoted && n->len > 0 &&
	    strspn(n->str, "-0123456789") != n->len) {
		diag_error(d, n, "expected a number of workers (1..%d) or \"auto\"",
			   MAINCONF_MAX_WORKERS);
		return;
	}
	if (node_int(d, n, 1, MAINCONF_MAX_WORKERS, &v))
		m->workers = (int)v;
}

/* host:port with an IP literal host ("127.0.0.1:15000", "[::1]:15000"); "" disables. */
static bool mainconf_address_ok(struct pool *p, const char *a)
{
	const char *colon = strrchr(a, ':');
	const char *host;
	char *end;
	long port;

	if (colon == NULL || colon == a)
		return false;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return false;
	if (a[0] == '[') {
		if (colon[-1] != ']')
			return false;
		host = pool_strndup(p, a + 1, (size_t)(colon - a - 2));
		return strchr(host, ':') != NULL && cfg_is_ip(host);
	}
	host = pool_strndup(p, a, (size_t)(colon - a));
	return strchr(host, ':') == NULL && (cfg_is_ip(host) || strcmp(host, "localhost") == 0);
}

static void mainconf_admin(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	struct node *a;
	const char *s;

	if (!node_want_map(d, n))
		return;
	a = node_get(n, "address");
	node_check_unknown(d, n);
	if (a == NULL || !node_str(d, a, &s))
		return;
	if (*s != '\0' && !mainconf_address_ok(p, s)) {
		diag_error(d, a,
			   "invalid address \"%s\": expected IP:PORT (\"\" disables the admin "
			   "listener)",
			   s);
		return;
	}
	m->admin_address = s;
}

struct mainconf_lf_warn {
	struct diag *d;
	struct node *n;
};

static void mainconf_lf_warn(void *arg, size_t off, const char *name)
{
	struct mainconf_lf_warn *w = arg;

	(void)off;
	diag_warn(w->d, w->n,
		  "%%%s%% is an Envoy command operator whose value meshgate does not record: "
		  "it prints \"-\" (null in JSON)",
		  name);
}

static struct logformat *mainconf_lf_text(struct pool *p, struct diag *d, struct node *n)
{
	struct mainconf_lf_warn w = {d, n};
	struct logformat *f;
	char err[200];
	const char *s;
	size_t off = 0;

	if (!node_str(d, n, &s))
		return NULL;
	f = logformat_text(p, s, err, sizeof(err), &off, mainconf_lf_warn, &w);
	if (f == NULL)
		diag_error_scalar(d, n, off, err);
	return f;
}

static struct logformat *mainconf_lf_labels(struct pool *p, struct diag *d, struct node *n)
{
	struct logformat *f;
	bool ok = true;

	if (!node_want_map(d, n))
		return NULL;
	if (n->n == 0) {
		diag_error(d, n, "no labels: give the fields of the JSON object");
		return NULL;
	}
	f = logformat_json(p, n->n);
	for (size_t i = 0; i < n->n; i++) {
		struct node *v = n->vals[i];
		struct mainconf_lf_warn w = {d, v};
		char err[200];
		size_t off = 0;

		node_mark_used(v);
		if (v->type != NODE_SCALAR) {
			/* Istio's labels are a Struct; Envoy's json_format nests objects, which
			 * meshgate's lines do not */
			diag_error(d, v,
				   "expected a format string (nested labels are not supported)");
			ok = false;
			continue;
		}
		if (!logformat_json_label(p, f, n->keys[i]->str, v->str, err, sizeof(err), &off,
					  mainconf_lf_warn, &w)) {
			diag_error_scalar(d, v, off, err);
			ok = false;
		}
	}
	return ok ? f : NULL;
}

/* Istio's EnvoyFileAccessLogProvider.LogFormat: {text: "..."} or {labels: {key: "..."}}
 * (JSON); *fmt says which.  NULL on error. */
static struct logformat *mainconf_log_format(struct pool *p, struct diag *d, struct node *n,
					     enum accesslog_format *fmt)
{
	struct node *text, *labels;

	if (!node_want_map(d, n))
		return NULL;
	text = node_get(n, "text");
	labels = node_get(n, "labels");
	node_check_unknown(d, n);
	if ((text == NULL) == (labels == NULL)) {
		diag_error(d, n, "give one of text or labels");
		return NULL;
	}
	*fmt = text != NULL ? ACCESSLOG_TEXT : ACCESSLOG_JSON;
	return text != NULL ? mainconf_lf_text(p, d, text) : mainconf_lf_labels(p, d, labels);
}

static void mainconf_access_log(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	struct node *path, *fmt, *custom;
	const char *s;

	if (!node_want_map(d, n))
		return;
	path = cfg_require(d, n, "path");
	fmt = node_get(n, "format");
	custom = node_get(n, "logFormat");
	node_check_unknown(d, n);
	if (path != NULL && node_str(d, path, &s)) {
		if (*s == '\0')
			diag_error(d, path, "empty path (use \"-\" for standard output)");
		else
			m->access_log_path = strcmp(s, "-") == 0 ? s : mainconf_resolve(p, m, s);
	}
	if (fmt != NULL && node_str(d, fmt, &s)) {
		if (strcmp(s, "text") == 0)
			m->access_log_format = ACCESSLOG_TEXT;
		else if (strcmp(s, "json") == 0)
			m->access_log_format = ACCESSLOG_JSON;
		else
			diag_error(d, fmt, "invalid format \"%s\": expected text or json", s);
	}
	if (custom != NULL) {
		enum accesslog_format kind = ACCESSLOG_TEXT;

		m->access_log_custom = mainconf_log_format(p, d, custom, &kind);
		if (m->access_log_custom != NULL && fmt != NULL && kind != m->access_log_format)
			diag_error(d, fmt, "logFormat gives a %s format: leave format out",
				   kind == ACCESSLOG_JSON ? "JSON (labels)" : "text");
		m->access_log_format = kind;
	}
}

static void mainconf_limit(struct diag *d, struct node *map, const char *key, uint32_t min,
			   uint32_t max, uint32_t *out)
{
	cfg_decode_u32(d, node_get(map, key), min, max, out);
}

static void mainconf_limits(struct diag *d, struct node *n, struct cfg_limits *l)
{
	if (!node_want_map(d, n))
		return;
	mainconf_limit(d, n, "maxHeaderBytes", 1024, 1048576, &l->max_header_bytes);
	mainconf_limit(d, n, "maxHeaders", 8, 1000, &l->max_headers);
	mainconf_limit(d, n, "maxRequestLineBytes", 256, 1048576, &l->max_request_line_bytes);
	mainconf_limit(d, n, "maxConnections", 1, 10000000, &l->max_connections);
	node_check_unknown(d, n);
}

static void mainconf_timeout(struct diag *d, struct node *map, const char *key, bool zero_ok,
			     uint64_t *out)
{
	struct node *n = node_get(map, key);
	uint64_t us;

	if (n == NULL || !node_duration(d, n, MAINCONF_TIMEOUT_MAX_US, &us))
		return;
	if (us == 0 && !zero_ok) {
		diag_error(d, n, "must be greater than 0");
		return;
	}
	*out = us;
}

static void mainconf_timeouts(struct diag *d, struct node *n, struct cfg_timeouts *t)
{
	if (!node_want_map(d, n))
		return;
	mainconf_timeout(d, n, "idle", false, &t->idle_us);
	mainconf_timeout(d, n, "requestHeaders", false, &t->request_headers_us);
	mainconf_timeout(d, n, "requestBodyIdle", false, &t->request_body_idle_us);
	mainconf_timeout(d, n, "upstreamConnect", false, &t->upstream_connect_us);
	mainconf_timeout(d, n, "upstreamIdle", false, &t->upstream_idle_us);
	/* drain: 0s means close at once on SIGTERM. */
	mainconf_timeout(d, n, "drain", true, &t->drain_us);
	node_check_unknown(d, n);
}

static void mainconf_resources(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	size_t i;

	if (n == NULL || !node_want_seq(d, n))
		return;
	m->resources.v = pool_calloc(p, n->n ? n->n : 1, sizeof(*m->resources.v));
	for (i = 0; i < n->n; i++) {
		struct node *e = n->vals[i];
		const char *s;

		if (!cfg_resource_entry_ok(e)) {
			if (e->type == NODE_SCALAR)
				diag_error(d, e, "empty resource path");
			else
				node_str(d, e, &s); /* reports the type error */
			continue;
		}
		m->resources.v[m->resources.n++] = mainconf_resolve(p, m, e->str);
	}
}

static void mainconf_string(struct pool *p, struct diag *d, struct node *n, bool path,
			    const struct cfg_main *m, const char **out)
{
	const char *s;

	if (n == NULL || !node_str(d, n, &s))
		return;
	if (*s == '\0') {
		diag_error(d, n, "empty value");
		return;
	}
	*out = path ? mainconf_resolve(p, m, s) : s;
}

/* Fields with a framing or forwarding meaning a geoip value must not take over. */
static bool mainconf_reserved_header(const char *s)
{
	static const char *const reserved[] = {
	    "host",
	    "content-length",
	    "transfer-encoding",
	    "connection",
	    "keep-alive",
	    "proxy-connection",
	    "te",
	    "trailer",
	    "upgrade",
	    "expect",
	    "x-forwarded-for",
	    "x-forwarded-proto",
	    "x-request-id",
	    "x-forwarded-client-cert",
	};

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(s, reserved[i]) == 0)
			return true;
	return false;
}

/* `geoip: {database, asnDatabase, headers: {country, city, region, asn}}` */
static void mainconf_geoip(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	struct cfg_geoip *g = &m->geoip;
	struct node *h;
	static const char *const keys[] = {"country", "city", "region", "asn"};
	const char **slots[] = {&g->country, &g->city, &g->region, &g->asn};

	if (!node_want_map(d, n))
		return;
	g->database_node = node_get(n, "database");
	g->asn_node = node_get(n, "asnDatabase");
	mainconf_string(p, d, g->database_node, true, m, &g->database);
	mainconf_string(p, d, g->asn_node, true, m, &g->asn_database);
	if (g->database == NULL && g->database_node == NULL)
		diag_error(d, n, "database is required (a MaxMind .mmdb file)");
	if ((h = node_get(n, "headers")) != NULL && node_want_map(d, h)) {
		for (size_t i = 0; i < 4; i++) {
			struct node *v = node_get(h, keys[i]);
			const char *s;

			if (v == NULL || !node_str(d, v, &s))
				continue;
			if (!cfg_is_token(s))
				diag_error(d, v, "\"%s\" is not a header name", s);
			else if (mainconf_reserved_header(s))
				diag_error(d, v, "%s is a header meshgate sets or reads itself", s);
			else
				*slots[i] = cfg_lower(p, s);
		}
		node_check_unknown(d, h);
	}
	if (g->country == NULL && g->city == NULL && g->region == NULL && g->asn == NULL)
		diag_error(d, h != NULL ? h : n,
			   "headers must name at least one of country, city, region, asn");
	node_check_unknown(d, n);
}

/* 301 is what Envoy's require_tls answers (Istio's httpsRedirect); 308 keeps the method and
 * body of a POST, 302/307 are the temporary forms. */
static void mainconf_redirect_code(struct diag *d, struct node *n, struct cfg_main *m)
{
	uint32_t code = 0;

	if (n == NULL || !cfg_decode_u32(d, n, 0, UINT32_MAX, &code))
		return;
	if (code != 301 && code != 302 && code != 307 && code != 308) {
		diag_error(d, n, "must be 301, 302, 307 or 308");
		return;
	}
	m->https_redirect_code = code;
}

/* meshIdentity: what a sidecar gets from istiod (SDS) -- the workload certificate chain,
 * its key and the mesh root -- given as files.  All three or none: an identity without its
 * root cannot verify peers, a root without a certificate cannot present one. */
static void mainconf_mesh_identity(struct pool *p, struct diag *d, struct node *n,
				   struct cfg_main *m)
{
	const char *cert = NULL, *key = NULL, *ca = NULL;
	struct node *c, *k, *a;

	if (!node_want_map(d, n))
		return;
	c = cfg_require(d, n, "certificate");
	k = cfg_require(d, n, "privateKey");
	a = cfg_require(d, n, "caCertificates");
	node_check_unknown(d, n);
	mainconf_string(p, d, c, true, m, &cert);
	mainconf_string(p, d, k, true, m, &key);
	mainconf_string(p, d, a, true, m, &ca);
	if (cert == NULL || key == NULL || ca == NULL)
		return;
	m->mesh_identity.certificate = cert;
	m->mesh_identity.private_key = key;
	m->mesh_identity.ca_certificates = ca;
	m->mesh_identity.node = n;
}

static bool mainconf_host(struct pool *p, struct diag *d, struct node *n, uint32_t port,
			  struct cfg_main *m)
{
	struct cfg_default_host *e;
	const char *s;
	char why[128];

	if (!node_str(d, n, &s))
		return false;
	s = cfg_lower(p, s);
	if (!cfg_check_host(s, CFG_HOST_WILDCARD, why, sizeof(why))) {
		diag_error(d, n, "%s", why);
		return false;
	}
	m->tls_default_hosts = cfg_append(p, m->tls_default_hosts, m->ntls_default_hosts,
					  sizeof(*m->tls_default_hosts));
	e = &m->tls_default_hosts[m->ntls_default_hosts++];
	e->port = port;
	e->host = s;
	e->node = n;
	return true;
}

/* tlsDefaultHost: HOST, or {PORT: HOST, ..., "*": HOST}. */
static void mainconf_default_host(struct pool *p, struct diag *d, struct node *n,
				  struct cfg_main *m)
{
	size_t i;

	if (n == NULL)
		return;
	if (n->type != NODE_MAP) {
		mainconf_host(p, d, n, 0, m);
		return;
	}
	for (i = 0; i < n->n; i++) {
		struct node *k = n->keys[i];
		unsigned long port = 0;
		char *end = NULL;

		node_mark_used(k);
		/* YAML keys are written 443: or "443": alike */
		if (strcmp(k->str, "*") != 0) {
			port = k->str[0] >= '1' && k->str[0] <= '9' ? strtoul(k->str, &end, 10) : 0;
			if (end == NULL || *end != '\0' || port > 65535) {
				diag_error(d, k, "expected a port number (1-65535) or \"*\"");
				continue;
			}
		}
		mainconf_host(p, d, n->vals[i], (uint32_t)port, m);
	}
}

const char *cfg_main_default_host(const struct cfg_main *m, uint32_t port, struct node **at)
{
	const struct cfg_default_host *any = NULL;
	size_t i;

	for (i = 0; i < m->ntls_default_hosts; i++) {
		if (m->tls_default_hosts[i].port == port) {
			*at = m->tls_default_hosts[i].node;
			return m->tls_default_hosts[i].host;
		}
		if (m->tls_default_hosts[i].port == 0)
			any = &m->tls_default_hosts[i];
	}
	*at = NULL;
	return any != NULL ? any->host : NULL;
}

/* ---- extensionProviders: Istio's MeshConfig.ExtensionProvider ---- */

/* A port written 8000 or "8000" (Istio's own example quotes it). */
static bool mainconf_port(struct diag *d, struct node *n, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (n->type != NODE_SCALAR || !n->quoted)
		return cfg_decode_port(d, n, out);
	v = strtoul(n->str, &end, 10);
	if (n->str[0] < '0' || n->str[0] > '9' || *end != '\0' || v == 0 || v > 65535) {
		diag_error(d, n, "port must be in 1..65535, got \"%s\"", n->str);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* Header name patterns: "abc" exact, "abc*" prefix, "*abc" suffix (Istio's, without the
 * presence match "*"); lower-cased, matched without case. */
static bool mainconf_header_patterns(struct pool *p, struct diag *d, struct node *map,
				     const char *key, struct str_list *out)
{
	struct node *n = node_get(map, key);
	bool ok;

	if (n == NULL)
		return true;
	if (!cfg_decode_str_list(p, d, n, out, true))
		return false;
	ok = true;
	for (size_t i = 0; i < out->n; i++) {
		const char *v = out->v[i];
		size_t len = strlen(v);
		const char *name = v[0] == '*' ? v + 1 : v;
		size_t nlen = len - (v[0] == '*') - (len > 1 && v[len - 1] == '*');
		char *core = pool_strndup(p, name, nlen);

		if (nlen == 0 || !cfg_is_token(core)) {
			diag_error(d, n->vals[i],
				   "\"%s\": expected a header name, \"prefix*\" or \"*suffix\"", v);
			ok = false;
		}
	}
	return ok;
}

/* Provider kinds of Istio's MeshConfig that meshgate does not serve. */
static const char *const mainconf_other_providers[] = {
    "zipkin",      "lightstep",     "datadog",    "stackdriver", "opencensus",
    "skywalking",  "opentelemetry", "prometheus", "sds",         "envoyHttpAls",
    "envoyTcpAls", "envoyOtelAls",  NULL,
};

/* The fields every authorizer kind has (Istio's EnvoyExternalAuthorization{Http,Grpc}
 * Provider): service, port, timeout, failOpen, statusOnError. */
static bool mainconf_ext_authz_common(struct pool *p, struct diag *d, struct node *n,
				      struct ext_authz *x)
{
	struct node *v;
	const char *s;
	bool ok = true;

	x->node = n;
	x->timeout_us = 600 * MAINCONF_SEC; /* Istio's default */
	x->status_on_error = 403;
	x->path_prefix = "";
	x->service_node = cfg_require(d, n, "service");
	x->port_node = cfg_require(d, n, "port");
	if (x->service_node != NULL && node_str(d, x->service_node, &s)) {
		const char *slash = strchr(s, '/');

		/* "[<Namespace>/]<Hostname>": the namespace only picks among registries */
		if (slash != NULL)
			s = slash + 1;
		if (*s == '\0') {
			diag_error(d, x->service_node, "empty service host");
			ok = false;
		} else {
			x->service = cfg_lower(p, s);
		}
	} else {
		ok = false;
	}
	ok &= x->port_node != NULL && mainconf_port(d, x->port_node, &x->port);
	if ((v = node_get(n, "timeout")) != NULL)
		ok &= cfg_decode_duration(d, v, 1000, false, &x->timeout_us);
	if ((v = node_get(n, "failOpen")) != NULL)
		ok &= node_bool(d, v, &x->fail_open);
	if ((v = node_get(n, "statusOnError")) != NULL) {
		if (v->type == NODE_SCALAR && v->quoted) {
			char *end;
			unsigned long code = strtoul(v->str, &end, 10);

			if (v->str[0] < '0' || v->str[0] > '9' || *end != '\0' || code < 200 ||
			    code > 599) {
				diag_error(d, v,
					   "statusOnError must be an HTTP status 200..599, got "
					   "\"%s\"",
					   v->str);
				ok = false;
			} else {
				x->status_on_error = (uint32_t)code;
			}
		} else {
			ok &= cfg_decode_u32(d, v, 200, 599, &x->status_on_error);
		}
	}
	return ok;
}

static bool mainconf_ext_authz_http(struct pool *p, struct diag *d, struct node *n,
				    struct ext_authz *x)
{
	struct node *v;
	const char *s;
	bool ok;

	if (!node_want_map(d, n))
		return false;
	ok = mainconf_ext_authz_common(p, d, n, x);
	if ((v = node_get(n, "pathPrefix")) != NULL && node_str(d, v, &s)) {
		if (*s != '\0' && *s != '/') {
			diag_error(d, v, "pathPrefix must begin with '/', got \"%s\"", s);
			ok = false;
		}
		x->path_prefix = s;
	}
	ok &=
	    mainconf_header_patterns(p, d, n, "includeRequestHeadersInCheck", &x->request_headers);
	if ((v = node_get(n, "includeHeadersInCheck")) != NULL) {
		/* Istio's deprecated name of includeRequestHeadersInCheck */
		if (x->request_headers.n > 0) {
			diag_error(d, v,
				   "give includeRequestHeadersInCheck only (this is its "
				   "deprecated name)");
			ok = false;
		} else {
			ok &= mainconf_header_patterns(p, d, n, "includeHeadersInCheck",
						       &x->request_headers);
		}
	}
	if ((v = node_get(n, "includeAdditionalHeadersInCheck")) != NULL &&
	    cfg_decode_kv_map(p, d, v, &x->additional_headers)) {
		for (size_t i = 0; i < x->additional_headers.n; i++) {
			struct kv *h = &x->additional_headers.v[i];

			if (!cfg_is_token(h->key) || mainconf_reserved_header(h->key)) {
				diag_error(d, v, "%s: %s", h->key,
					   cfg_is_token(h->key) ? "a header meshgate sets itself"
								: "not a header name");
				ok = false;
			}
			h->key = cfg_lower(p, h->key);
		}
	} else if (v != NULL)
		ok = false;
	ok &= mainconf_header_patterns(p, d, n, "headersToUpstreamOnAllow", &x->upstream_on_allow);
	ok &=
	    mainconf_header_patterns(p, d, n, "headersToDownstreamOnDeny", &x->downstream_on_deny);
	ok &= mainconf_header_patterns(p, d, n, "headersToDownstreamOnAllow",
				       &x->downstream_on_allow);
	if ((v = node_get(n, "includeRequestBodyInCheck")) != NULL) {
		node_mark_used(v);
		diag_error(d, v,
			   "not supported: meshgate sends the authorizer no request body "
			   "(Content-Length: 0)");
		ok = false;
	}
	node_check_unknown(d, n);
	return ok;
}

/* envoyExtAuthzGrpc: the common fields only (Istio's EnvoyExternalAuthorizationGrpcProvider
 * has no header lists: Envoy's gRPC check carries every request header). */
static bool mainconf_ext_authz_grpc(struct pool *p, struct diag *d, struct node *n,
				    struct ext_authz *x)
{
	struct node *v;
	bool ok;

	if (!node_want_map(d, n))
		return false;
	x->kind = EXT_AUTHZ_GRPC;
	ok = mainconf_ext_authz_common(p, d, n, x);
	if ((v = node_get(n, "includeRequestBodyInCheck")) != NULL) {
		node_mark_used(v);
		diag_error(d, v,
			   "not supported: meshgate sends the authorizer no request body (the "
			   "CheckRequest has the request's head only)");
		ok = false;
	}
	node_check_unknown(d, n);
	return ok;
}

/* envoyFileAccessLog: {path, logFormat}; "/dev/stdout" is standard output (as "-"), which
 * works also where it is a socket (systemd's journal) that cannot be opened by name. */
static bool mainconf_file_log(struct pool *p, struct diag *d, struct node *n, const char *name,
			      struct cfg_main *m)
{
	struct file_log_provider *f;
	struct node *path, *fmt;
	const char *s;
	bool ok = true;

	if (!node_want_map(d, n))
		return false;
	m->file_logs = cfg_append(p, m->file_logs, m->nfile_logs, sizeof(*m->file_logs));
	f = &m->file_logs[m->nfile_logs];
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->node = n;
	f->format = ACCESSLOG_TEXT; /* Istio's default text format */
	path = cfg_require(d, n, "path");
	fmt = node_get(n, "logFormat");
	node_check_unknown(d, n);
	if (path == NULL || !node_str(d, path, &s)) {
		ok = false;
	} else if (*s == '\0') {
		diag_error(d, path, "empty path (\"/dev/stdout\" for standard output)");
		ok = false;
	} else {
		f->path = strcmp(s, "/dev/stdout") == 0 || strcmp(s, "-") == 0
			      ? "-"
			      : mainconf_resolve(p, m, s);
	}
	if (fmt != NULL && (f->custom = mainconf_log_format(p, d, fmt, &f->format)) == NULL)
		ok = false;
	if (ok)
		m->nfile_logs++;
	return ok;
}

/* extensionProviders: [{name, envoyExtAuthzHttp: {...}}, {name, envoyExtAuthzGrpc: {...}},
 * {name, envoyFileAccessLog: {...}}]; the kinds meshgate does not serve are refused where
 * a policy names them. */
static void mainconf_ext_providers(struct pool *p, struct diag *d, struct node *n,
				   struct cfg_main *m)
{
	if (!node_want_seq(d, n))
		return;
	m->ext_authz = pool_calloc(p, n->n ? n->n : 1, sizeof(*m->ext_authz));
	for (size_t i = 0; i < n->n; i++) {
		struct node *e = n->vals[i], *name, *http, *grpc, *file;
		struct ext_authz *x = &m->ext_authz[m->next_authz];
		bool ok = true, other = false;

		memset(x, 0, sizeof(*x)); /* what a refused or unserved entry left */
		if (!node_want_map(d, e))
			continue;
		name = cfg_require(d, e, "name");
		if (name != NULL && node_str(d, name, &x->name)) {
			if (*x->name == '\0') {
				diag_error(d, name, "empty name");
				ok = false;
			}
			for (size_t j = 0; ok && j < i; j++) {
				struct node *prev = n->vals[j]->type == NODE_MAP
							? node_get(n->vals[j], "name")
							: NULL;

				if (prev != NULL && prev->type == NODE_SCALAR &&
				    strcmp(prev->str, x->name) == 0) {
					diag_error(d, name, "duplicate extension provider name %s",
						   x->name);
					ok = false;
				}
			}
		} else {
			ok = false;
		}
		for (size_t k = 0; mainconf_other_providers[k] != NULL; k++) {
			struct node *o = node_get(e, mainconf_other_providers[k]);

			if (o == NULL)
				continue;
			node_mark_used(o);
			/* Istio's mesh config lists providers for every workload; one that
			 * nothing here uses costs nothing: a warning, and an error where a
			 * policy names it (ap_provider). */
			diag_warn(
			    d, o,
			    "%s: not served by meshgate (envoyExtAuthzHttp, envoyExtAuthzGrpc "
			    "and envoyFileAccessLog are): a CUSTOM policy naming this provider "
			    "is refused, a Telemetry naming it skips it",
			    mainconf_other_providers[k]);
			if (ok && !other) {
				m->unserved_providers.v =
				    cfg_append(p, m->unserved_providers.v, m->unserved_providers.n,
					       sizeof(*m->unserved_providers.v));
				m->unserved_providers.v[m->unserved_providers.n++] = x->name;
			}
			other = true;
		}
		http = node_get(e, "envoyExtAuthzHttp");
		grpc = node_get(e, "envoyExtAuthzGrpc");
		file = node_get(e, "envoyFileAccessLog");
		if (http == NULL && grpc == NULL && file == NULL && !other) {
			diag_error(d, e,
				   "envoyExtAuthzHttp, envoyExtAuthzGrpc or envoyFileAccessLog is "
				   "required (the provider kinds meshgate serves)");
			ok = false;
		}
		if ((http != NULL) + (grpc != NULL) + (file != NULL) > 1) {
			/* Istio's ExtensionProvider is a oneof */
			if (grpc != NULL)
				node_mark_used(grpc);
			if (file != NULL)
				node_mark_used(file);
			diag_error(d, e, "give one provider kind, not %s%s%s%s",
				   http != NULL ? "envoyExtAuthzHttp" : "",
				   http != NULL && grpc != NULL ? " and " : "",
				   grpc != NULL ? "envoyExtAuthzGrpc" : "",
				   file != NULL ? " and envoyFileAccessLog" : "");
			ok = false;
		} else if (file != NULL) {
			if (ok && !other)
				mainconf_file_log(p, d, file, x->name, m);
			else
				node_mark_used(file);
			node_check_unknown(d, e);
			continue;
		} else if (grpc != NULL) {
			ok &= mainconf_ext_authz_grpc(p, d, grpc, x);
		}
		if (http != NULL)
			ok &= mainconf_ext_authz_http(p, d, http, x);
		node_check_unknown(d, e);
		if (ok && !other && (http != NULL || grpc != NULL))
			m->next_authz++;
	}
}

/* tlsTicketKeyFile: read now, so a bad file is a load error (and -t reports it). */
static void mainconf_ticket_keys(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	if (n == NULL)
		return;
	mainconf_string(p, d, n, true, m, &m->tls_ticket_key_file);
	if (m->tls_ticket_key_file == NULL)
		return;
	m->tls_ticket_keys = tls_ticket_file_load(p, d, n, m->tls_ticket_key_file);
	if (m->tls_no_resumption)
		diag_warn(d, n, "unused: tlsSessionResumption is false, no ticket is issued");
}

void cfg_main_decode(struct pool *p, struct diag *d, struct node *root, const char *path,
		     struct cfg_main *m)
{
	struct node *n;
	const char *s;

	memset(m, 0, sizeof(*m));
	mainconf_defaults(m);
	m->path = path;
	m->dir = mainconf_dir(p, path);
	m->node = root;
	/* An empty file is a valid main config: every default, no resources. */
	if (root == NULL || root->type == NODE_NULL)
		return;
	if (!node_want_map(d, root))
		return;

	mainconf_workers(d, node_get(root, "workers"), m);
	cfg_decode_labels(p, d, node_get(root, "labels"), &m->labels);
	if ((n = node_get(root, "namespace")) != NULL && node_str(d, n, &s)) {
		if (cfg_is_dns_label(s))
			m->ns = s;
		else
			diag_error(d, n, "invalid namespace \"%s\": must be a DNS label", s);
	}
	if ((n = node_get(root, "admin")) != NULL)
		mainconf_admin(p, d, n, m);
	mainconf_resources(p, d, node_get(root, "resources"), m);
	if ((n = node_get(root, "accessLog")) != NULL)
		mainconf_access_log(p, d, n, m);
	mainconf_string(p, d, node_get(root, "credentialsDir"), true, m, &m->credentials_dir);
	mainconf_string(p, d, node_get(root, "user"), false, m, &m->user);
	mainconf_redirect_code(d, node_get(root, "httpsRedirectCode"), m);
	if ((n = node_get(root, "meshIdentity")) != NULL)
		mainconf_mesh_identity(p, d, n, m);
	if ((n = node_get(root, "limits")) != NULL)
		mainconf_limits(d, n, &m->limits);
	if ((n = node_get(root, "timeouts")) != NULL)
		mainconf_timeouts(d, n, &m->timeouts);
	hc_conf_decode(p, d, node_get(root, "healthChecks"), m);
	mainconf_string(p, d, node_get(root, "locality"), false, m, &m->locality);
	mainconf_string(p, d, node_get(root, "rootNamespace"), false, m, &m->root_namespace);
	if ((n = node_get(root, "geoip")) != NULL)
		mainconf_geoip(p, d, n, m);
	if ((n = node_get(root, "numTrustedProxies")) != NULL) {
		int64_t v;

		if (node_int(d, n, 0, 32, &v))
			m->num_trusted_proxies = (uint32_t)v;
	}
	if ((n = node_get(root, "proxyProtocol")) != NULL && node_want_map(d, n)) {
		/* Istio's ProxyProtocolConfiguration has no fields */
		node_check_unknown(d, n);
		m->proxy_protocol = true;
	}
	if ((n = node_get(root, "dnsRefreshRate")) != NULL)
		cfg_decode_duration(d, n, 1000000, false, &m->dns_refresh_us);
	if ((n = node_get(root, "tlsSessionResumption")) != NULL) {
		bool on = true;

		node_bool(d, n, &on);
		m->tls_no_resumption = !on;
	}
	mainconf_ticket_keys(p, d, node_get(root, "tlsTicketKeyFile"), m);
	mainconf_default_host(p, d, node_get(root, "tlsDefaultHost"), m);
	if ((n = node_get(root, "extensionProviders")) != NULL)
		mainconf_ext_providers(p, d, n, m);
	node_check_unknown(d, root);
}

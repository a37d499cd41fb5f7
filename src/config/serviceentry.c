#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"

/* Indexed by enum se_location / enum se_resolution. */
static const char *const se_locations[] = {"MESH_EXTERNAL", "MESH_INTERNAL", NULL};
static const char *const se_resolutions[] = {"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", NULL};
/* Istio's protocol.Parse names (case-insensitive there, upper-cased here). */
static const char *const se_protocols[] = {"HTTP", "HTTPS",      "HTTP2", "GRPC",  "GRPC-WEB",
					   "TLS",  "TCP",        "MONGO", "MYSQL", "REDIS",
					   "UDP",  "HTTP_PROXY", NULL};

static bool se_in(const char *const *names, const char *s)
{
	for (; *names != NULL; names++)
		if (strcmp(*names, s) == 0)
			return true;
	return false;
}

/* HTTP or TLS family: ports on which several hosts can be told apart (Host header / SNI). */
static bool se_port_multi_host(const char *proto)
{
	static const char *const ok[] = {"HTTP",     "HTTPS", "HTTP2",      "GRPC",
					 "GRPC-WEB", "TLS",   "HTTP_PROXY", NULL};

	return proto != NULL && se_in(ok, proto);
}

static bool se_port(struct pool *p, struct diag *d, struct node *n, struct se_port *port)
{
	struct node *num, *name, *proto, *tp;
	const char *s;
	bool ok = true;

	memset(port, 0, sizeof(*port));
	if (!node_want_map(d, n))
		return false;
	num = cfg_require(d, n, "number");
	name = cfg_require(d, n, "name");
	proto = node_get(n, "protocol");
	tp = node_get(n, "targetPort");
	node_check_unknown(d, n);
	if (num == NULL || !cfg_decode_port(d, num, &port->number))
		ok = false;
	if (name != NULL && node_str(d, name, &port->name)) {
		if (!cfg_is_dns_label(port->name)) {
			diag_error(d, name, "invalid port name: %s", port->name);
			ok = false;
		}
	} else {
		ok = false;
	}
	/* No protocol: Istio sniffs; meshgate's link decides what an unset protocol means. */
	if (proto != NULL && node_str(d, proto, &s)) {
		char *up = pool_strdup(p, s);
		size_t i;

		for (i = 0; up[i] != '\0'; i++)
			if (up[i] >= 'a' && up[i] <= 'z')
				up[i] = (char)(up[i] - 'a' + 'A');
		if (se_in(se_protocols, up)) {
			port->protocol = up;
		} else {
			diag_error(d, proto, "unsupported protocol: %s", s);
			ok = false;
		}
	} else if (proto != NULL) {
		ok = false;
	}
	ok &= cfg_decode_port(d, tp, &port->target_port);
	return ok;
}

static bool se_endpoint_ports(struct pool *p, struct diag *d, struct node *n,
			      const struct cfg_se *se, struct kv_list *out)
{
	bool ok = true;
	size_t i, j;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	for (i = 0; i < n->n; i++) {
		const char *name = n->keys[i]->str;
		uint32_t port;
		bool declared = false;

		n->keys[i]->used = true;
		if (!cfg_decode_port(d, n->vals[i], &port)) {
			ok = false;
			continue;
		}
		for (j = 0; j < se->nports && !declared; j++)
			declared =
			    se->ports[j].name != NULL && strcmp(se->ports[j].name, name) == 0;
		if (!declared) {
			diag_error(d, n->vals[i],
				   "endpoint port %s is not defined by the service entry", name);
			ok = false;
			continue;
		}
		out->v[out->n].key = name;
		out->v[out->n].value = pool_printf(p, "%u", port);
		out->n++;
	}
	return ok;
}

static bool se_endpoint(struct pool *p, struct diag *d, struct node *n, const struct cfg_se *se,
			struct se_endpoint *ep)
{
	struct node *addr, *x;
	bool ok = true;

	memset(ep, 0, sizeof(*ep));
	if (!node_want_map(d, n))
		return false;
	ep->node = n;
	addr = node_get(n, "address");
	ok &= se_endpoint_ports(p, d, node_get(n, "ports"), se, &ep->ports);
	ok &= cfg_decode_labels(p, d, node_get(n, "labels"), &ep->labels);
	if ((x = node_get(n, "network")) != NULL)
		ok &= node_str(d, x, &ep->network);
	if ((x = node_get(n, "locality")) != NULL)
		ok &= node_str(d, x, &ep->locality);
	ok &= cfg_decode_u32(d, node_get(n, "weight"), 0, UINT32_MAX, &ep->weight);
	if ((x = node_get(n, "serviceAccount")) != NULL)
		ok &= node_str(d, x, &ep->service_account);
	node_check_unknown(d, n);
	if (addr == NULL) {
		if (ep->network == NULL) {
			diag_error(d, n, "missing required field \"address\"");
			return false;
		}
		diag_warn(d, n, "address is unset with network \"%s\"", ep->network);
		return ok;
	}
	if (!node_str(d, addr, &ep->address))
		return false;
	/* Whether a host name is allowed depends on the resolution: the caller checks. */
	if (strncmp(ep->address, "unix://", 7) == 0) {
		diag_error(d, addr, "unix domain socket endpoints are not supported by meshgate");
		ok = false;
	}
	return ok;
}

static bool se_hosts(struct pool *p, struct diag *d, struct node *n, struct cfg_se *se)
{
	char why[160];
	bool ok;
	size_t i;

	if (n == NULL)
		return false;
	ok = cfg_decode_str_list(p, d, n, &se->hosts, true);
	if (ok && se->hosts.n == 0) {
		diag_error(d, n, "service entry must have at least one host");
		return false;
	}
	for (i = 0; i < se->hosts.n; i++) {
		if (strcmp(se->hosts.v[i], "*") == 0) {
			diag_error(d, n->vals[i], "invalid host *");
			ok = false;
		} else if (!cfg_check_host(se->hosts.v[i], CFG_HOST_WILDCARD, why, sizeof(why))) {
			diag_error(d, n->vals[i], "%s", why);
			ok = false;
		}
	}
	return ok;
}

static void se_workload_selector(struct pool *p, struct diag *d, struct node *n,
				 struct kv_list *out)
{
	if (n == NULL || !node_want_map(d, n))
		return;
	cfg_decode_labels(p, d, node_get(n, "labels"), out);
	node_check_unknown(d, n);
	if (out->n == 0)
		diag_warn(d, n,
			  "service entry: workload selector specified without labels, will "
			  "be applied to all services in namespace");
}

/* Istio's resolution-specific rules. */
static void se_check_resolution(struct diag *d, struct node *spec, struct node *eps,
				struct node *ws, struct cfg_se *se)
{
	char why[160];
	size_t i;

	switch (se->resolution) {
	case SE_RES_NONE:
		if (se->nendpoints > 0)
			diag_error(d, eps,
				   "no endpoints should be provided for resolution type NONE");
		if (ws != NULL)
			diag_warn(d, ws,
				  "workloadSelector should not be set when resolution mode is "
				  "NONE");
		break;
	case SE_RES_STATIC:
		for (i = 0; i < se->nendpoints; i++) {
			const struct se_endpoint *ep = &se->endpoints[i];

			if (ep->address != NULL && strncmp(ep->address, "unix://", 7) != 0 &&
			    !cfg_is_ip(ep->address))
				diag_error(
				    d, node_get(ep->node, "address"),
				    "endpoint address \"%s\" is not a valid IP address "
				    "(resolution STATIC needs IP addresses; use DNS for host "
				    "names)",
				    ep->address);
		}
		break;
	case SE_RES_DNS:
	case SE_RES_DNS_ROUND_ROBIN:
		if (se->nendpoints == 0) {
			for (i = 0; i < se->hosts.n; i++) {
				if (se->hosts.v[i][0] == '*') {
					diag_error(
					    d, node_get(spec, "hosts")->vals[i],
					    "hosts must be FQDN if no endpoints are provided for "
					    "resolution mode %s",
					    se_resolutions[se->resolution]);
				}
			}
		}
		if (se->resolution == SE_RES_DNS_ROUND_ROBIN && se->nendpoints > 1)
			diag_error(d, eps,
				   "there must only be 0 or 1 endpoint for resolution mode "
				   "DNS_ROUND_ROBIN");
		for (i = 0; i < se->nendpoints; i++) {
			const struct se_endpoint *ep = &se->endpoints[i];

			if (ep->address != NULL && !cfg_is_ip(ep->address) &&
			    !cfg_check_host(ep->address, 0, why, sizeof(why)))
				diag_error(d, node_get(ep->node, "address"),
					   "endpoint address \"%s\" is not a valid FQDN or an IP "
					   "address",
					   ep->address);
		}
		if (ws != NULL)
			diag_warn(d, ws,
				  "workloadSelector should not be set when resolution mode is "
				  "%s",
				  se_resolutions[se->resolution]);
		break;
	}
	/* Plain TCP cannot tell several hosts apart, unless the hosts are ignored (NONE). */
	if (se->resolution != SE_RES_NONE && se->hosts.n > 1) {
		for (i = 0; i < se->nports; i++) {
			if (!se_port_multi_host(se->ports[i].protocol)) {
				diag_error(d, node_get(spec, "hosts"),
					   "multiple hosts provided with "
					   "non-HTTP, non-TLS ports");
				break;
			}
		}
	}
}

void cfg_se_decode(struct pool *p, struct diag *d, struct cfg_set *set, const struct cfg_meta *meta,
		   struct node *spec)
{
	struct node *hosts, *addrs, *ports, *loc, *res, *eps, *ws;
	int errors = d->nerrors, i;
	bool cidr = false;
	struct cfg_se *se;
	size_t k, j;

	se = pool_alloc(p, sizeof(*se));
	se->meta = *meta;
	hosts = cfg_require(d, spec, "hosts");
	addrs = node_get(spec, "addresses");
	ports = node_get(spec, "ports");
	loc = node_get(spec, "location");
	res = node_get(spec, "resolution");
	eps = node_get(spec, "endpoints");
	ws = node_get(spec, "workloadSelector");
	cfg_decode_export_to(p, d, node_get(spec, "exportTo"), meta->ns, true, &se->export_to);
	cfg_decode_str_list(p, d, node_get(spec, "subjectAltNames"), &se->subject_alt_names, false);
	node_check_unknown(d, spec);

	se_hosts(p, d, hosts, se);
	if (cfg_decode_str_list(p, d, addrs, &se->addresses, false)) {
		for (k = 0; k < se->addresses.n; k++) {
			if (!cfg_is_ip_or_cidr(se->addresses.v[k]))
				diag_error(d, addrs->vals[k],
					   "%s is not a valid IP address or CIDR "
					   "block",
					   se->addresses.v[k]);
			cidr |= strchr(se->addresses.v[k], '/') != NULL;
		}
	}
	if (loc != NULL && node_enum(d, loc, se_locations, &i))
		se->location = (enum se_location)i;
	if (res != NULL && node_enum(d, res, se_resolutions, &i))
		se->resolution = (enum se_resolution)i;
	if (cidr && se->resolution != SE_RES_NONE && se->resolution != SE_RES_STATIC)
		diag_error(d, addrs,
			   "CIDR addresses are allowed only for NONE/STATIC resolution "
			   "types");

	if (ports != NULL && node_want_seq(d, ports)) {
		se->ports = pool_calloc(p, ports->n ? ports->n : 1, sizeof(*se->ports));
		for (k = 0; k < ports->n; k++) {
			struct se_port *pt = &se->ports[se->nports];

			if (!se_port(p, d, ports->vals[k], pt))
				continue;
			for (j = 0; j < se->nports; j++) {
				if (strcmp(se->ports[j].name, pt->name) == 0) {
					diag_error(d, ports->vals[k],
						   "service entry port name \"%s\" "
						   "already defined",
						   pt->name);
					break;
				}
				if (se->ports[j].number == pt->number) {
					diag_error(d, ports->vals[k],
						   "service entry port %u already "
						   "defined",
						   pt->number);
					break;
				}
			}
			se->nports++;
		}
	}
	if (eps != NULL && ws != NULL)
		diag_error(d, eps,
			   "only one of workloadSelector or endpoints is allowed in a "
			   "ServiceEntry");
	if (eps != NULL && node_want_seq(d, eps)) {
		se->endpoints = pool_calloc(p, eps->n ? eps->n : 1, sizeof(*se->endpoints));
		/* Failed endpoints are kept too: the resolution checks still see them. */
		for (k = 0; k < eps->n; k++)
			se_endpoint(p, d, eps->vals[k], se, &se->endpoints[se->nendpoints++]);
	}
	se_workload_selector(p, d, ws, &se->workload_selector);
	se_check_resolution(d, spec, eps, ws, se);

	if (d->nerrors != errors)
		return;
	set->ses = cfg_append(p, set->ses, set->nses, sizeof(*set->ses));
	set->ses[set->nses++] = se;
}

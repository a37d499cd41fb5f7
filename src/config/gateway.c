#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"

/* Indexed by enum gw_protocol. */
static const char *const gateway_protocols[] = {"HTTP", "HTTPS", "HTTP2", "GRPC",
						"TLS",  "TCP",   "MONGO", NULL};
/* Protocols Istio accepts on a Gateway port that meshgate has no model for. */
static const char *const gateway_protocols_other[] = {"GRPC-WEB", "REDIS",      "MYSQL",
						      "UDP",      "HTTP_PROXY", NULL};
/* Indexed by enum tls_mode. */
static const char *const gateway_tls_modes[] = {
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL", NULL};
static const char *const gateway_tls_versions[] = {"TLS_AUTO", "TLSV1_0", "TLSV1_1",
						   "TLSV1_2",  "TLSV1_3", NULL};
static const int gateway_tls_version_num[] = {0, 10, 11, 12, 13};

static int gateway_lookup(const char *const *names, const char *s)
{
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcasecmp(names[i], s) == 0)
			return i;
	return -1;
}

static bool gateway_port(struct diag *d, struct node *n, struct gw_server *srv)
{
	struct node *num, *name, *proto, *tp;
	const char *s;
	bool ok = true;
	int i;

	if (!node_want_map(d, n))
		return false;
	num = cfg_require(d, n, "number");
	name = node_get(n, "name");
	proto = cfg_require(d, n, "protocol");
	tp = node_get(n, "targetPort");
	node_check_unknown(d, n);
	if (num == NULL || !cfg_decode_port(d, num, &srv->port))
		ok = false;
	/* Istio's validation requires the name (it keys the servers' port names). */
	if (name == NULL) {
		diag_error(d, n, "missing required field \"name\"");
		ok = false;
	} else if (node_str(d, name, &s)) {
		srv->port_name = s;
	} else {
		ok = false;
	}
	if (proto != NULL && node_str(d, proto, &s)) {
		if ((i = gateway_lookup(gateway_protocols, s)) >= 0) {
			srv->protocol = (enum gw_protocol)i;
			/* an HTTP listener takes HTTP/1.1 and HTTP/2 with prior knowledge alike
			 * (h2down.c), as Envoy's automatic codec does */
			if (srv->protocol == GWP_HTTP2 || srv->protocol == GWP_GRPC)
				srv->protocol = GWP_HTTP;
		} else if (gateway_lookup(gateway_protocols_other, s) >= 0) {
			diag_error(d, proto, "protocol %s is not supported by meshgate gateways",
				   s);
			ok = false;
		} else {
			diag_error(d, proto,
				   "invalid protocol \"%s\", supported protocols are HTTP, "
				   "HTTPS, HTTP2, GRPC, TLS, TCP, MONGO",
				   s);
			ok = false;
		}
	} else {
		ok = false;
	}
	if (tp != NULL)
		diag_warn(d, tp, "targetPort has no impact on Gateways and is ignored");
	return ok;
}

/* `host`, `*`, `*.suffix`, `ns/host`, `./host` (own namespace), `*\/host`. */
static bool gateway_host(struct pool *p, struct diag *d, struct node *n, const char *own_ns,
			 struct gw_host *out)
{
	const char *s, *slash, *host;
	char why[160];

	if (!node_str(d, n, &s))
		return false;
	s = cfg_lower(p, s);
	slash = strchr(s, '/');
	if (slash != NULL) {
		const char *ns = pool_strndup(p, s, (size_t)(slash - s));

		host = slash + 1;
		if (strcmp(ns, ".") == 0) {
			ns = own_ns;
		} else if (strcmp(ns, "*") != 0 && !cfg_is_dns_label(ns)) {
			diag_error(d, n,
				   "invalid namespace \"%s\" in host \"%s\": expected \"*\", "
				   "\".\" or a namespace",
				   ns, s);
			return false;
		}
		out->ns = ns;
	} else {
		host = s;
		out->ns = "*";
	}
	if (!cfg_check_host(host, CFG_HOST_WILDCARD, why, sizeof(why))) {
		diag_error(d, n, "%s", why);
		return false;
	}
	out->host = host;
	return true;
}

static bool gateway_tls_str(struct diag *d, struct node *map, const char *key, const char **out)
{
	struct node *n = node_get(map, key);

	if (n == NULL)
		return true;
	return node_str(d, n, out);
}

static bool gateway_tls_version(struct diag *d, struct node *n, int *out)
{
	int i;

	if (n == NULL)
		return true;
	if (!node_enum(d, n, gateway_tls_versions, &i))
		return false;
	*out = gateway_tls_version_num[i];
	return true;
}

static bool gateway_has(const char *s)
{
	return s != NULL && *s != '\0';
}

/* Istio's validateTLSOptions, mode by mode. */
static bool gateway_tls_check(struct diag *d, struct node *n, const struct gw_tls *t)
{
	bool cred = gateway_has(t->credential_name) || t->credential_names.n > 0;
	bool ok = true;

	if (t->min_version != 0 && t->min_version < 12 && t->cipher_suites.n == 0)
		diag_warn(d, n,
			  "TLS versions below TLSV1_2 need compatible cipherSuites: the "
			  "defaults no longer include them");
	switch (t->mode) {
	case TLSM_ISTIO_MUTUAL:
		if (gateway_has(t->server_certificate) || gateway_has(t->private_key) ||
		    gateway_has(t->ca_certificates) || cred) {
			diag_error(d, n,
				   "ISTIO_MUTUAL TLS cannot have an associated server "
				   "certificate, private key, CA bundle or credentialName");
			ok = false;
		}
		return ok;
	case TLSM_PASSTHROUGH:
	case TLSM_AUTO_PASSTHROUGH:
		if (gateway_has(t->server_certificate) || gateway_has(t->private_key) ||
		    gateway_has(t->ca_certificates) || gateway_has(t->ca_crl) || cred)
			diag_warn(d, n, "%s mode does not use certificates, they will be ignored",
				  gateway_tls_modes[t->mode]);
		return true;
	case TLSM_SIMPLE:
	case TLSM_MUTUAL:
	case TLSM_OPTIONAL_MUTUAL:
		break;
	}
	if (!cred) {
		const char *m = t->mode == TLSM_SIMPLE ? "SIMPLE" : "MUTUAL";

		if (!gateway_has(t->server_certificate)) {
			diag_error(d, n,
				   "%s TLS requires a server certificate (serverCertificate or "
				   "credentialName)",
				   m);
			ok = false;
		}
		if (!gateway_has(t->private_key)) {
			diag_error(d, n,
				   "%s TLS requires a private key (privateKey or "
				   "credentialName)",
				   m);
			ok = false;
		}
		if (t->mode != TLSM_SIMPLE && !gateway_has(t->ca_certificates)) {
			diag_error(d, n,
				   "MUTUAL TLS requires a client CA bundle (caCertificates or "
				   "credentialName)");
			ok = false;
		}
	}
	if (gateway_has(t->ca_crl)) {
		if (cred) {
			diag_error(d, n,
				   "caCrl is not supported with credentialName: the CRL has to "
				   "be in the credential");
			ok = false;
		}
		if (t->mode == TLSM_SIMPLE) {
			diag_error(d, n, "caCrl is not supported with SIMPLE TLS");
			ok = false;
		}
	}
	return ok;
}

static bool gateway_tls(struct pool *p, struct diag *d, struct node *n, struct gw_tls *t)
{
	struct node *x;
	bool ok = true;
	int i;

	if (!node_want_map(d, n))
		return false;
	t->given = true;
	t->node = n;
	t->mode = TLSM_PASSTHROUGH;
	if ((x = node_get(n, "httpsRedirect")) != NULL)
		ok &= node_bool(d, x, &t->https_redirect);
	if ((x = node_get(n, "mode")) != NULL) {
		if (node_enum(d, x, gateway_tls_modes, &i))
			t->mode = (enum tls_mode)i;
		else
			ok = false;
	}
	ok &= gateway_tls_str(d, n, "serverCertificate", &t->server_certificate);
	ok &= gateway_tls_str(d, n, "privateKey", &t->private_key);
	ok &= gateway_tls_str(d, n, "caCertificates", &t->ca_certificates);
	ok &= gateway_tls_str(d, n, "caCrl", &t->ca_crl);
	ok &= gateway_tls_str(d, n, "credentialName", &t->credential_name);
	ok &=
	    cfg_decode_str_list(p, d, node_get(n, "credentialNames"), &t->credential_names, false);
	ok &=
	    cfg_decode_str_list(p, d, node_get(n, "subjectAltNames"), &t->subject_alt_names, false);
	ok &=
	    cfg_decode_str_list(p, d, node_get(n, "verifyCertificateSpki"), &t->verify_spki, false);
	ok &=
	    cfg_decode_str_list(p, d, node_get(n, "verifyCertificateHash"), &t->verify_hash, false);
	ok &= gateway_tls_version(d, node_get(n, "minProtocolVersion"), &t->min_version);
	ok &= gateway_tls_version(d, node_get(n, "maxProtocolVersion"), &t->max_version);
	ok &= cfg_decode_str_list(p, d, node_get(n, "cipherSuites"), &t->cipher_suites, false);
	node_check_unknown(d, n);
	if (!ok)
		return false;
	if (gateway_has(t->credential_name) && t->credential_names.n > 0) {
		diag_error(d, n, "only one of credentialName or credentialNames may be set");
		return false;
	}
	if (t->min_version != 0 && t->max_version != 0 && t->min_version > t->max_version) {
		diag_error(d, n, "minProtocolVersion is above maxProtocolVersion");
		return false;
	}
	return gateway_tls_check(d, n, t);
}

static bool gateway_is_tls_proto(enum gw_protocol p)
{
	return p == GWP_HTTPS || p == GWP_TLS;
}

static bool gateway_is_http_proto(enum gw_protocol p)
{
	return p == GWP_HTTP || p == GWP_HTTP2 || p == GWP_GRPC;
}

static bool gateway_server(struct pool *p, struct diag *d, struct node *n, const char *ns,
			   struct gw_server *srv)
{
	struct node *port, *bind, *hosts, *name, *tls, *de;
	const char *s;
	bool ok = true, port_ok;
	size_t i;

	memset(srv, 0, sizeof(*srv));
	if (!node_want_map(d, n))
		return false;
	srv->node = n;
	port = cfg_require(d, n, "port");
	bind = node_get(n, "bind");
	hosts = cfg_require(d, n, "hosts");
	name = node_get(n, "name");
	tls = node_get(n, "tls");
	de = node_get(n, "defaultEndpoint");
	node_check_unknown(d, n);

	port_ok = port != NULL && gateway_port(d, port, srv);
	ok &= port_ok;
	if (bind != NULL && node_str(d, bind, &s)) {
		if (strncmp(s, "unix://", 7) == 0) {
			diag_error(d, bind,
				   "unix domain socket binds are not supported by meshgate");
			ok = false;
		} else if (!cfg_is_ip(s)) {
			diag_error(d, bind, "bind \"%s\" is not a valid IP address", s);
			ok = false;
		} else {
			srv->bind = s;
		}
	} else if (bind != NULL) {
		ok = false;
	}
	if (hosts != NULL && node_want_seq(d, hosts)) {
		if (hosts->n == 0) {
			diag_error(d, hosts, "server config must contain at least one host");
			ok = false;
		}
		srv->hosts = pool_calloc(p, hosts->n ? hosts->n : 1, sizeof(*srv->hosts));
		for (i = 0; i < hosts->n; i++) {
			if (gateway_host(p, d, hosts->vals[i], ns, &srv->hosts[srv->nhosts]))
				srv->nhosts++;
			else
				ok = false;
		}
	} else {
		ok = false;
	}
	if (name != NULL) {
		if (node_str(d, name, &s))
			srv->name = s;
		else
			ok = false;
	}
	if (de != NULL)
		diag_warn(d, de, "defaultEndpoint is not supported by meshgate and is ignored");
	if (tls != NULL)
		ok &= gateway_tls(p, d, tls, &srv->tls);

	if (!port_ok)
		return false;
	if (gateway_is_tls_proto(srv->protocol) && tls == NULL) {
		diag_error(d, n, "server must have TLS settings for HTTPS/TLS protocols");
		ok = false;
	} else if (!gateway_is_tls_proto(srv->protocol) && srv->tls.given) {
		const struct gw_tls *t = &srv->tls;
		bool passthrough = t->mode == TLSM_PASSTHROUGH || t->mode == TLSM_AUTO_PASSTHROUGH;

		/* A plain HTTP server may only carry httpsRedirect. */
		if (gateway_is_http_proto(srv->protocol)) {
			if (!passthrough || gateway_has(t->ca_certificates) ||
			    gateway_has(t->private_key) || gateway_has(t->server_certificate)) {
				diag_error(d, tls,
					   "server cannot have TLS settings for plain text HTTP "
					   "ports");
				ok = false;
			}
		} else {
			diag_error(d, tls,
				   "server cannot have TLS settings for non HTTPS/TLS ports");
			ok = false;
		}
	}
	if (srv->tls.https_redirect && srv->protocol != GWP_HTTP)
		diag_warn(d, tls, "tls.httpsRedirect should only be used with HTTP servers");
	return ok;
}

void cfg_gateway_decode(struct pool *p, struct diag *d, struct cfg_set *set,
			const struct cfg_meta *meta, struct node *spec)
{
	struct cfg_gateway *gw;
	struct node *servers;
	int errors = d->nerrors;
	size_t i, j;

	gw = pool_alloc(p, sizeof(*gw));
	gw->meta = *meta;
	/* Istio: a Gateway name is a DNS label (it appears in "ns/name" references). */
	if (!cfg_is_dns_label(meta->name))
		diag_error(d, node_get(node_get(meta->node, "metadata"), "name"),
			   "invalid gateway name \"%s\": must be a DNS label (no dots)",
			   meta->name);
	cfg_decode_kv_map(p, d, node_get(spec, "selector"), &gw->selector);
	servers = node_get(spec, "servers");
	node_check_unknown(d, spec);
	if (servers == NULL || servers->type == NODE_NULL ||
	    (servers->type == NODE_SEQ && servers->n == 0)) {
		diag_error(d, servers ? servers : spec, "a gateway needs at least one server");
	} else if (node_want_seq(d, servers)) {
		gw->servers = pool_calloc(p, servers->n, sizeof(*gw->servers));
		for (i = 0; i < servers->n; i++) {
			struct gw_server *srv = &gw->servers[gw->nservers];

			if (!gateway_server(p, d, servers->vals[i], meta->ns, srv))
				continue;
			/* Istio keys servers by port name: it must be unique in a Gateway. */
			for (j = 0; j < gw->nservers; j++) {
				if (strcmp(gw->servers[j].port_name, srv->port_name) == 0) {
					diag_error(
					    d, node_get(node_get(srv->node, "port"), "name"),
					    "port names in servers must be unique: duplicate "
					    "name %s",
					    srv->port_name);
					break;
				}
			}
			gw->nservers++;
		}
	}
	if (d->nerrors != errors)
		return;
	set->gateways = cfg_append(p, set->gateways, set->ngateways, sizeof(*set->gateways));
	set->gateways[set->ngateways++] = gw;
}

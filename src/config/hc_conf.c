#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "hc_conf.h"
#include "load.h"
#include "model.h"
#include "node.h"
#include "pool.h"

#define HC_SEC 1000000ULL

static bool hc_statuses(struct pool *p, struct diag *d, struct node *n, struct cfg_health_check *hc)
{
	bool ok = true;

	if (!node_want_seq(d, n))
		return false;
	hc->statuses = pool_calloc(p, n->n ? n->n : 1, sizeof(*hc->statuses));
	for (size_t i = 0; i < n->n; i++)
		if (cfg_decode_u32(d, n->vals[i], 100, 599, &hc->statuses[hc->nstatuses]))
			hc->nstatuses++;
		else
			ok = false;
	return ok;
}

static void hc_one(struct pool *p, struct diag *d, struct node *n, const char *ns,
		   struct cfg_health_check *hc)
{
	struct node *host, *http, *tcp, *x;
	const char *h;

	hc->node = n;
	hc->interval_us = 10 * HC_SEC;
	hc->timeout_us = 1 * HC_SEC;
	hc->healthy_threshold = 1;
	hc->unhealthy_threshold = 3;
	if (!node_want_map(d, n))
		return;
	host = cfg_require(d, n, "host");
	if (host != NULL && node_str(d, host, &h))
		hc->host = cfg_expand_host(p, h, ns);
	if ((x = node_get(n, "port")) != NULL)
		cfg_decode_port(d, x, &hc->port);
	cfg_decode_duration(d, node_get(n, "interval"), 1000, false, &hc->interval_us);
	cfg_decode_duration(d, node_get(n, "timeout"), 1000, false, &hc->timeout_us);
	cfg_decode_u32(d, node_get(n, "healthyThreshold"), 1, 1000, &hc->healthy_threshold);
	cfg_decode_u32(d, node_get(n, "unhealthyThreshold"), 1, 1000, &hc->unhealthy_threshold);
	if (hc->timeout_us >= hc->interval_us && node_get(n, "timeout") != NULL)
		diag_error(d, node_get(n, "timeout"), "timeout must be shorter than interval");
	http = node_get(n, "http");
	tcp = node_get(n, "tcp");
	if ((http == NULL) == (tcp == NULL))
		diag_error(d, n, "a health check needs exactly one of http or tcp");
	if (tcp != NULL && node_want_map(d, tcp))
		node_check_unknown(d, tcp);
	if (http != NULL && node_want_map(d, http)) {
		hc->http = true;
		hc->path = "/";
		if ((x = node_get(http, "path")) != NULL && node_str(d, x, &hc->path) &&
		    hc->path[0] != '/')
			diag_error(d, x, "path must start with /");
		if ((x = node_get(http, "host")) != NULL)
			node_str(d, x, &hc->authority);
		if ((x = node_get(http, "expectedStatuses")) != NULL)
			hc_statuses(p, d, x, hc);
		node_check_unknown(d, http);
	}
	if (hc->http && hc->nstatuses == 0) {
		hc->statuses = pool_alloc(p, sizeof(*hc->statuses));
		hc->statuses[0] = 200;
		hc->nstatuses = 1;
	}
	node_check_unknown(d, n);
}

void hc_conf_decode(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m)
{
	if (n == NULL || !node_want_seq(d, n))
		return;
	m->health_checks = pool_calloc(p, n->n ? n->n : 1, sizeof(*m->health_checks));
	m->nhealth_checks = n->n;
	for (size_t i = 0; i < n->n; i++)
		hc_one(p, d, n->vals[i], m->ns, &m->health_checks[i]);
}

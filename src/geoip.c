#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <maxminddb.h>

#include "cidr.h"
#include "config/diag.h"
#include "exchange.h"
#include "geoip.h"
#include "pool.h"

/* libmaxminddb lookups on an MMDB_MODE_MMAP database are read-only and thread-safe: the
 * workers share one open database per configuration generation. */
struct geoip {
	MMDB_s db;
	MMDB_s asn;
	bool has_asn;
};

static void geoip_close(void *arg)
{
	struct geoip *g = arg;

	MMDB_close(&g->db);
	if (g->has_asn)
		MMDB_close(&g->asn);
}

struct geoip *geoip_open(struct pool *p, struct diag *d, const struct cfg_geoip *conf)
{
	struct geoip *g;
	int rc;

	if (conf->database == NULL)
		return NULL;
	g = pool_calloc(p, 1, sizeof(*g));
	if ((rc = MMDB_open(conf->database, MMDB_MODE_MMAP, &g->db)) != MMDB_SUCCESS) {
		diag_error(d, conf->database_node, "cannot open %s: %s", conf->database,
			   rc == MMDB_IO_ERROR ? strerror(errno) : MMDB_strerror(rc));
		return NULL;
	}
	if (conf->asn_database != NULL) {
		if ((rc = MMDB_open(conf->asn_database, MMDB_MODE_MMAP, &g->asn)) != MMDB_SUCCESS) {
			diag_error(d, conf->asn_node, "cannot open %s: %s", conf->asn_database,
				   rc == MMDB_IO_ERROR ? strerror(errno) : MMDB_strerror(rc));
			MMDB_close(&g->db);
			return NULL;
		}
		g->has_asn = true;
	}
	pool_on_free(p, geoip_close, g);
	return g;
}

/* Append name: value (the value copied into the exchange's arena). */
static void geoip_add(struct exchange *ex, struct http1_header *h, size_t *n, const char *name,
		      const char *v, size_t len)
{
	struct http1_header *x = &h[(*n)++];

	x->name = name;
	x->name_len = strlen(name);
	x->value = exchange_keep(ex, v, len, &x->value_len);
}

static void geoip_string(const MMDB_lookup_result_s *r, struct exchange *ex, struct http1_header *h,
			 size_t *n, const char *name, const char *k1, const char *k2,
			 const char *k3)
{
	MMDB_entry_data_s e;
	MMDB_entry_s entry = r->entry;

	if (name == NULL || !r->found_entry ||
	    MMDB_get_value(&entry, &e, k1, k2, k3, NULL) != MMDB_SUCCESS || !e.has_data ||
	    e.type != MMDB_DATA_TYPE_UTF8_STRING || e.data_size == 0 || e.data_size > 256)
		return;
	/* a database is trusted, but a header value still may not carry CR, LF or NUL */
	for (uint32_t i = 0; i < e.data_size; i++)
		if (e.utf8_string[i] == '\r' || e.utf8_string[i] == '\n' ||
		    e.utf8_string[i] == '\0')
			return;
	geoip_add(ex, h, n, name, e.utf8_string, e.data_size);
}

static bool geoip_named(const struct cfg_geoip *c, const char *name, size_t len)
{
	const char *names[] = {c->country, c->city, c->region, c->asn};

	for (size_t i = 0; i < 4; i++)
		if (names[i] != NULL && strlen(names[i]) == len &&
		    strncasecmp(names[i], name, len) == 0)
			return true;
	return false;
}

void geoip_apply(const struct geoip *g, const struct cfg_geoip *conf, const struct sockaddr *client,
		 struct exchange *ex, struct http1_header *h, size_t *n)
{
	struct sockaddr_in v4;
	MMDB_lookup_result_s r, ra;
	MMDB_entry_data_s e;
	size_t k = 0;
	int err = 0;

	for (size_t i = 0; i < *n; i++) /* the client does not speak for its location */
		if (!geoip_named(conf, h[i].name, h[i].name_len))
			h[k++] = h[i];
	*n = k;
	if (g == NULL || client == NULL ||
	    (client->sa_family != AF_INET && client->sa_family != AF_INET6))
		return;
	client = cidr_unmapped(client, &v4); /* a dual-stack socket's IPv4 client */
	r = MMDB_lookup_sockaddr(&g->db, client, &err);
	if (err != MMDB_SUCCESS)
		r.found_entry = false;
	geoip_string(&r, ex, h, n, conf->country, "country", "iso_code", NULL);
	geoip_string(&r, ex, h, n, conf->city, "city", "names", "en");
	geoip_string(&r, ex, h, n, conf->region, "subdivisions", "0", "iso_code");
	if (conf->asn == NULL)
		return;
	ra = r;
	if (g->has_asn) {
		ra = MMDB_lookup_sockaddr(&g->asn, client, &err);
		if (err != MMDB_SUCCESS)
			ra.found_entry = false;
	}
	if (ra.found_entry &&
	    MMDB_get_value(&ra.entry, &e, "autonomous_system_number", NULL) == MMDB_SUCCESS &&
	    e.has_data && e.type == MMDB_DATA_TYPE_UINT32) {
		char num[16];
		int len = snprintf(num, sizeof(num), "%u", e.uint32);

		geoip_add(ex, h, n, conf->asn, num, (size_t)len);
	}
}

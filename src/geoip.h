/* GeoIP request headers from MaxMind databases (libmaxminddb), as Envoy's geoip filter
 * adds them: the client's country, city, region and AS number in headers the main config
 * names, so that AuthorizationPolicy conditions (request.headers[...]), VirtualService
 * header matches and the upstream all see them.  A client's own fields of those names are
 * dropped first: only the gateway speaks for the client's location. */
#ifndef MESHGATE_GEOIP_H
#define MESHGATE_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config/model.h"
#include "http1.h"

struct diag;
struct exchange;
struct pool;

/* The opened databases of a configuration (NULL when it has no geoip section). */
struct geoip;

/* Open the main config's databases (control thread, at link); errors at their keys.
 * Closed when the pool is freed.  NULL without a geoip section or on error. */
struct geoip *geoip_open(struct pool *p, struct diag *d, const struct cfg_geoip *conf);

/* Most fields geoip_apply may append. */
#define GEOIP_HEADERS_MAX 4

/* Rewrite the request's fields h[0..*n) (room for GEOIP_HEADERS_MAX more): drop the
 * configured names, then append each one the lookup of client found (values kept in the
 * exchange's arena). */
void geoip_apply(const struct geoip *g, const struct cfg_geoip *conf, const struct sockaddr *client,
		 struct exchange *ex, struct http1_header *h, size_t *n);

#endif

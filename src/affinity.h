/* Session affinity for consistent hashing: the key a request is hashed by (a header, a
 * cookie, the client's IP address or a query parameter, as the DestinationRule's
 * consistentHash says), and the cookie meshgate sets when an httpCookie policy with a ttl
 * finds none, so the client's next requests stick (Envoy's behaviour).  Pure functions. */
#ifndef MG_AFFINITY_H
#define MG_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/model.h"

struct http1_request;
struct route_request;

#define AFFINITY_COOKIE_LEN 16 /* hex digits of a generated cookie value */

/* The hash key of a request.  peer is "ip:port" or "[ip6]:port".  When the policy's
 * cookie is missing and it has a ttl, a value is made from rnd into new_cookie
 * (AFFINITY_COOKIE_LEN + 1 bytes) and hashed; with new_cookie NULL (a request that can
 * set no cookie, such as a mirror's copy) a missing cookie is no key.  Returns false when
 * the request has no key (the balancer then picks at random, as Envoy does). */
bool affinity_key(const struct consistent_hash *ch, const struct http1_request *req,
		  const struct route_request *rq, const char *peer, uint64_t rnd, uint64_t *key,
		  char *new_cookie);

/* The Set-Cookie header line (with CRLF) for a generated cookie; its length, or 0 when it
 * does not fit in cap. */
size_t affinity_set_cookie(const struct consistent_hash *ch, const char *value, char *out,
			   size_t cap);

#endif

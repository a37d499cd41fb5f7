/* x-forwarded-for: the client address behind trusted proxies (Envoy's
 * xff_num_trusted_hops, Istio's numTrustedProxies).  Client bytes: strict, bounded, fuzzed. */
#ifndef MESHGATE_XFF_H
#define MESHGATE_XFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "msg.h"

/* The address n (>= 1) entries from the right of the x-forwarded-for list that the
 * request's fields h[0..nh) carry (all its fields, in order): what the nearest of n trusted
 * proxies saw as its client.  False when the list is shorter or that entry is not an IP
 * address (spaces and tabs around it are allowed, nothing else). */
bool xff_client(const struct msg_header *h, size_t nh, uint32_t n, struct sockaddr_storage *ss);

#endif

/* ServiceEntry resolution DNS and DNS_ROUND_ROBIN, as Envoy's STRICT_DNS and LOGICAL_DNS
 * clusters under Istio: endpoint names (or, without endpoints, the hosts themselves) are
 * resolved by the control thread when a configuration is loaded to be served, and again
 * every dnsRefreshRate; a change of addresses is taken by a reload.  A name that stops
 * resolving keeps the addresses it last had. */
#ifndef MESHGATE_DNSRESOLVE_H
#define MESHGATE_DNSRESOLVE_H

#include <stdbool.h>

struct cfg_set;
struct pool;

/* Rewrite the endpoints of the set's DNS ServiceEntries into one per address (all of a
 * name's for DNS, its first for DNS_ROUND_ROBIN), before link; set->dns_resolved.  Logs
 * names that give no address (their clusters answer 503 UH until they do).  The names
 * are looked up at once and waited for 5 seconds at most in all. */
void dns_resolve(struct pool *p, struct cfg_set *set);

/* Resolve the set's names again without touching it: true when some name's addresses
 * changed (a reload should follow). */
bool dns_refresh(const struct cfg_set *set);

/* Does the set have names to resolve? */
bool dns_has_names(const struct cfg_set *set);

struct addrinfo;

/* getaddrinfo that waits timeout_ms at most (getaddrinfo_a; control thread): its result,
 * or EAI_AGAIN with *timed_out when no answer came in time. */
int dns_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
		    int timeout_ms, struct addrinfo **res, bool *timed_out);

/* Forget the addresses remembered (exit). */
void dns_cleanup(void);

#endif

/* IPv4 and IPv6 prefixes: parsed from config text, matched against socket addresses (an
 * IPv4-mapped IPv6 address matches IPv4 prefixes too). */
#ifndef MESHGATE_CIDR_H
#define MESHGATE_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	sa_family_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix;     /* bits */
	uint8_t addr[16];
};

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (a full-length prefix). */
bool cidr_parse(const char *s, struct cidr *c);
/* Is the address (AF_INET or AF_INET6; NULL or another family: no) inside the prefix? */
bool cidr_has(const struct cidr *c, const struct sockaddr *sa);

struct sockaddr_in;
struct sockaddr_storage;

/* An IPv4 or IPv6 address in text (len bytes, no NUL inside) into ss; false otherwise. */
bool cidr_addr_parse(const char *text, size_t len, struct sockaddr_storage *ss);
/* An IPv4-mapped IPv6 address as the IPv4 one (written into v4), any other unchanged. */
const struct sockaddr *cidr_unmapped(const struct sockaddr *sa, struct sockaddr_in *v4);

#endif

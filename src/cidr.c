#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

bool cidr_parse(const char *s, struct cidr *c)
{
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned max;
	char addr[64];

	memset(c, 0, sizeof(*c));
	if (len >= sizeof(addr))
		return false;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	c->prefix = (uint8_t)max;
	if (slash != NULL) {
		char *end;
		unsigned long bits;

		if (slash[1] < '0' || slash[1] > '9')
			return false;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > max)
			return false;
		c->prefix = (uint8_t)bits;
	}
	return true;
}

static bool cidr_has_bytes(const struct cidr *c, const uint8_t *a, size_t alen)
{
	size_t full = c->prefix / 8, rest = c->prefix % 8;

	if ((c->family == AF_INET ? 4u : 16u) != alen)
		return false;
	if (memcmp(c->addr, a, full) != 0)
		return false;
	return rest == 0 || ((c->addr[full] ^ a[full]) & (uint8_t)(0xff00 >> rest)) == 0;
}

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool cidr_has(const struct cidr *c, const struct sockaddr *sa)
{
	if (sa != NULL && sa->sa_family == AF_INET)
		return cidr_has_bytes(
		    c, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, 4);
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

		return cidr_has_bytes(c, a, 16) || (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0 &&
						    cidr_has_bytes(c, a + 12, 4));
	}
	return false;
}

bool cidr_addr_parse(const char *text, size_t len, struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];

	if (len >= sizeof(ip) || memchr(text, '\0', len) != NULL)
		return false;
	memcpy(ip, text, len);
	ip[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

const struct sockaddr *cidr_unmapped(const struct sockaddr *sa, struct sockaddr_in *v4)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family != AF_INET6 || memcmp(&in6->sin6_addr, v4_mapped, 12) != 0)
		return sa;
	memset(v4, 0, sizeof(*v4));
	v4->sin_family = AF_INET;
	memcpy(&v4->sin_addr, (const uint8_t *)&in6->sin6_addr + 12, 4);
	return (const struct sockaddr *)v4;
}

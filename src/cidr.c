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

bool cidr_has(const struct cidr *c, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (sa != NULL && sa->sa_family == AF_INET)
		return cidr_has_bytes(
		    c, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, 4);
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

		return cidr_has_bytes(c, a, 16) ||
		       (memcmp(a, mapped, sizeof(mapped)) == 0 && cidr_has_bytes(c, a + 12, 4));
	}
	return false;
}

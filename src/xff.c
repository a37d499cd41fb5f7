#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "http1.h"
#include "xff.h"

bool xff_client(const struct msg_header *h, size_t nh, uint32_t n, struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];

	if (n == 0)
		return false;
	for (size_t i = nh; i-- > 0;) {
		const char *v = h[i].value;
		size_t end = h[i].value_len, start;

		if (!HTTP1_NAME_IS(h[i].name, h[i].name_len, "x-forwarded-for"))
			continue;
		for (;;) {
			for (start = end; start > 0 && v[start - 1] != ','; start--)
				;
			if (--n == 0)
				goto found;
			if (start == 0)
				break;
			end = start - 1;
		}
		continue;
	found:
		while (start < end && (v[start] == ' ' || v[start] == '\t'))
			start++;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		/* the parsers refuse NUL in values; still, "10.0.0.1\0junk" is no address */
		if (end - start >= sizeof(ip) || memchr(v + start, '\0', end - start) != NULL)
			return false;
		memcpy(ip, v + start, end - start);
		ip[end - start] = '\0';
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
	return false;
}

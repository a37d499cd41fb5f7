#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "cidr.h"
#include "http1.h"
#include "xff.h"

bool xff_client(const struct msg_header *h, size_t nh, uint32_t n, struct sockaddr_storage *ss)
{
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
		/* "10.0.0.1\0junk" is no address (the parsers refuse NUL in values anyway) */
		return cidr_addr_parse(v + start, end - start, ss);
	}
	return false;
}

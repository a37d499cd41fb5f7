#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <strings.h>

#include "msg.h"

const struct msg_header *msg_header_find(const struct msg_header *h, size_t n, const char *lit,
					 size_t lit_len)
{
	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == lit_len && strncasecmp(h[i].name, lit, lit_len) == 0)
			return &h[i];
	return NULL;
}

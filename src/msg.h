/* Version-neutral message pieces shared by the HTTP/1 codec, HTTP/2 (later) and the
 * router, so routing and policy never depend on the wire version. */
#ifndef MG_MSG_H
#define MG_MSG_H

#include <stddef.h>

/* Same layout as struct http1_header (checked in proxy.c), so a parsed HTTP/1 head is
 * used without copying. */
struct msg_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* Find the first header named lit (case-insensitive); NULL when absent. */
const struct msg_header *msg_header_find(const struct msg_header *h, size_t n, const char *lit,
					 size_t lit_len);

#endif

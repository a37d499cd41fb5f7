/* Responses meshgate makes itself: errors, 404 NR, directResponse, redirects. */
#ifndef MG_LOCAL_REPLY_H
#define MG_LOCAL_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct exchange;

/* Write a complete response for ex to the client.  extra_headers: preformatted header lines
 * each ending in CRLF (or NULL). close: add Connection: close and close after the flush. */
void local_reply(struct exchange *ex, int status, const char *content_type, const char *body,
		 size_t body_len, const char *extra_headers, bool close);
/* An error before/instead of an exchange: logs an access-log line, answers with
 * Connection: close, and closes once flushed. */
void local_reply_error(struct conn *c, int status, const char *details);
const char *http_reason(int status);

#endif

/* A small, bounded, blocking HTTP/1.1 GET client for the control thread: fetches a
 * document such as a RequestAuthentication jwksUri when a config is loaded.  Off the
 * request path, so it blocks, but every call is bounded in time and memory; plain HTTP
 * or HTTPS (verified against the system trust store, or SSL_CERT_FILE / SSL_CERT_DIR);
 * no redirects, no keep-alive, no proxies. */
#ifndef MG_FETCH_H
#define MG_FETCH_H

#include <stddef.h>

/* GET url ("http://host[:port]/path" or "https://..."; host may be a name, an IPv4
 * address or a bracketed IPv6 address).  Waits at most timeout_ms in all, the name
 * lookup included (dnsresolve.h), and takes a body of at most max_body bytes.  On 200:
 * 0, *body (malloc'd, NUL-terminated, caller frees) and *len.  Otherwise -1 and a
 * one-line reason in err (e.g. "connect 127.0.0.1:9: Connection refused", "HTTP status
 * 404", "body larger than 262144 bytes", "timed out after 3000 ms", "TLS: certificate
 * verify failed: ..."). */
int fetch_get(const char *url, int timeout_ms, size_t max_body, char **body, size_t *len, char *err,
	      size_t errlen);

#endif

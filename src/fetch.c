/* fetch.c: one GET per call over a connection of its own (Connection: close).  A deadline
 * is taken once from the monotonic clock and every wait (connect, TLS handshake, send,
 * receive) polls the non-blocking socket against it.  The response is parsed strictly:
 * a bounded head, then Content-Length, chunked or read-to-EOF framing into a body that
 * never grows past max_body. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "dnsresolve.h"
#include "fetch.h"

#define FETCH_HEAD_MAX 16384 /* status line and header fields, all together */
#define FETCH_LINE_MAX 4096  /* one chunk-size line or trailer field */
#define FETCH_URL_MAX 8192
#define FETCH_INTERIM_MAX 8 /* 1xx responses skipped before the final one */

struct url {
	bool tls;
	bool ip;           /* host is an address literal */
	bool v6;           /* ... an IPv6 one (bracketed in the URL and in Host) */
	bool default_port; /* 80 for http, 443 for https: left out of Host */
	char host[256];    /* without brackets */
	char port[6];
	const char *path; /* into the URL: from '/' or '?', up to '#' or its end */
	size_t pathlen;
};

struct fconn {
	int fd;
	SSL *ssl;
	uint64_t deadline_us; /* clock_mono_us() */
	int timeout_ms;
	bool unclean_eof; /* TLS: the peer closed without close_notify */
	char *err;
	size_t errlen;
	size_t pos, len; /* unread bytes are buf[pos..len) */
	unsigned char buf[FETCH_HEAD_MAX];
};

struct body {
	char *p;
	size_t len, cap, max;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define CERR(c, ...) errf((c)->err, (c)->errlen, __VA_ARGS__)

/* ---- URL ---- */

static bool host_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_';
}

static int parse_url(const char *url, struct url *u, char *err, size_t errlen)
{
	const char *auth, *end, *host, *hostend, *after, *p;
	unsigned long port = 0;
	size_t hostlen;

	memset(u, 0, sizeof(*u));
	if (strlen(url) > FETCH_URL_MAX) {
		errf(err, errlen, "URL longer than %d bytes", FETCH_URL_MAX);
		return -1;
	}
	if (strncasecmp(url, "http://", 7) == 0) {
		auth = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		u->tls = true;
		auth = url + 8;
	} else {
		errf(err, errlen, "URL scheme is not http or https");
		return -1;
	}
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL) {
		errf(err, errlen, "URL has userinfo ('@' in the authority): not allowed");
		return -1;
	}
	if (*auth == '[') {
		const char *rb = memchr(auth, ']', (size_t)(end - auth));
		struct in6_addr a6;

		if (rb == NULL) {
			errf(err, errlen, "URL host: '[' without ']'");
			return -1;
		}
		host = auth + 1;
		hostend = rb;
		after = rb + 1;
		hostlen = (size_t)(hostend - host);
		if (hostlen == 0 || hostlen >= sizeof(u->host)) {
			errf(err, errlen, "URL host: bad IPv6 address");
			return -1;
		}
		memcpy(u->host, host, hostlen);
		u->host[hostlen] = '\0';
		if (inet_pton(AF_INET6, u->host, &a6) != 1) {
			errf(err, errlen, "URL host: bad IPv6 address");
			return -1;
		}
		u->ip = u->v6 = true;
	} else {
		struct in_addr a4;

		host = auth;
		hostend = memchr(auth, ':', (size_t)(end - auth));
		if (hostend == NULL)
			hostend = end;
		after = hostend;
		hostlen = (size_t)(hostend - host);
		if (hostlen == 0) {
			errf(err, errlen, "URL has no host");
			return -1;
		}
		if (hostlen >= sizeof(u->host)) {
			errf(err, errlen, "URL host longer than %zu bytes", sizeof(u->host) - 1);
			return -1;
		}
		for (p = host; p < hostend; p++) {
			if (!host_char((unsigned char)*p)) {
				errf(err, errlen, "URL host: bad character");
				return -1;
			}
		}
		memcpy(u->host, host, hostlen);
		u->host[hostlen] = '\0';
		u->ip = inet_pton(AF_INET, u->host, &a4) == 1;
	}
	if (after < end && *after != ':') {
		errf(err, errlen, "URL host: bad character after ']'");
		return -1;
	}
	if (after < end) {
		size_t ndig = (size_t)(end - after - 1);

		if (ndig == 0 || ndig > 5) {
			errf(err, errlen, "URL port: not a number in 1..65535");
			return -1;
		}
		for (p = after + 1; p < end; p++) {
			if (*p < '0' || *p > '9') {
				errf(err, errlen, "URL port: not a number in 1..65535");
				return -1;
			}
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port < 1 || port > 65535) {
			errf(err, errlen, "URL port: not a number in 1..65535");
			return -1;
		}
	} else {
		port = u->tls ? 443 : 80;
	}
	snprintf(u->port, sizeof(u->port), "%lu", port);
	u->default_port = port == (u->tls ? 443ul : 80ul);

	/* The path with its query; the fragment is the client's own and is not sent. */
	u->path = end;
	u->pathlen = strcspn(end, "#");
	for (p = u->path; p < u->path + u->pathlen; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			errf(err, errlen, "URL path: bad character (must be percent-encoded)");
			return -1;
		}
	}
	return 0;
}

/* ---- waiting and I/O, against the deadline ---- */

/* Waits for events on fd until until_us: 1 ready (or an error condition the next call
 * will report), 0 timed out, -1 poll failed (errno). */
static int wait_fd(int fd, short events, uint64_t until_us)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = clock_mono_us();
		int ms, n;

		if (now >= until_us)
			return 0;
		/* rounded up, so that a poll with less than a millisecond left does not spin */
		ms = (int)((until_us - now + 999) / 1000);
		n = poll(&pfd, 1, ms);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* wait_fd against the call's deadline, reporting a timeout or failure in c->err. */
static bool wait_conn(struct fconn *c, short events)
{
	int r = wait_fd(c->fd, events, c->deadline_us);

	if (r == 0)
		CERR(c, "timed out after %d ms", c->timeout_ms);
	else if (r < 0)
		CERR(c, "poll: %s", strerror(errno));
	return r > 0;
}

/* The reason for a failed TLS call whose SSL_get_error() was e. */
static void tls_err(struct fconn *c, const char *what, int e)
{
	unsigned long code = ERR_peek_last_error();
	long vr = SSL_get_verify_result(c->ssl);

	if (vr != X509_V_OK)
		CERR(c, "TLS: certificate verify failed: %s", X509_verify_cert_error_string(vr));
	else if (code != 0 && ERR_reason_error_string(code) != NULL)
		CERR(c, "TLS %s: %s", what, ERR_reason_error_string(code));
	else if (e == SSL_ERROR_SYSCALL && errno != 0)
		CERR(c, "TLS %s: %s", what, strerror(errno));
	else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
		CERR(c, "TLS %s: connection closed by the server", what);
	else
		CERR(c, "TLS %s: error %d", what, e);
}

/* TLS on c->fd, verifying the server's certificate chain against the default trust store
 * (SSL_CERT_FILE / SSL_CERT_DIR when set) and its name or address against the URL's. */
static int tls_handshake(struct fconn *c, const struct url *u)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		CERR(c, "TLS: cannot create a context");
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		CERR(c, "TLS: cannot set up the context (trust store)");
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	c->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		CERR(c, "TLS: cannot create a connection");
		return -1;
	}
	if (u->ip) {
		/* no SNI for an address (RFC 6066 §3); the certificate must name the address */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) != 1) {
			CERR(c, "TLS: cannot verify against address %s", u->host);
			return -1;
		}
	} else {
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set_tlsext_host_name(c->ssl, u->host) != 1 ||
		    SSL_set1_host(c->ssl, u->host) != 1) {
			CERR(c, "TLS: cannot set the server name %s", u->host);
			return -1;
		}
	}
	if (SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1) != 0) {
		CERR(c, "TLS: cannot set ALPN");
		return -1;
	}
	for (;;) {
		int r, e;

		ERR_clear_error();
		errno = 0;
		r = SSL_connect(c->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			if (!wait_conn(c, POLLIN))
				return -1;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			if (!wait_conn(c, POLLOUT))
				return -1;
		} else {
			tls_err(c, "handshake", e);
			return -1;
		}
	}
}

/* After an SSL call that made no progress: wait for what it wants (true), or report the
 * failure (false). */
static bool tls_retry(struct fconn *c, int e, const char *what)
{
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_conn(c, POLLOUT);
	if (e == SSL_ERROR_WANT_READ)
		return wait_conn(c, POLLIN);
	tls_err(c, what, e);
	return false;
}

/* Sends all n bytes.  Plain sockets use MSG_NOSIGNAL; TLS writes go through OpenSSL's
 * socket BIO, which uses write(), so a peer that has gone raises SIGPIPE: the process
 * ignores it (control.c) and the write fails with EPIPE instead. */
static int io_send(struct fconn *c, const char *data, size_t n)
{
	while (n > 0) {
		if (c->ssl != NULL) {
			int r, e;

			ERR_clear_error();
			errno = 0;
			r = SSL_write(c->ssl, data, n > INT_MAX ? INT_MAX : (int)n);
			if (r > 0) {
				data += r;
				n -= (size_t)r;
				continue;
			}
			e = SSL_get_error(c->ssl, r);
			if (!tls_retry(c, e, "send"))
				return -1;
		} else {
			ssize_t r = send(c->fd, data, n, MSG_NOSIGNAL);

			if (r >= 0) {
				data += r;
				n -= (size_t)r;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!wait_conn(c, POLLOUT))
					return -1;
			} else if (errno != EINTR) {
				CERR(c, "send: %s", strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

/* Receives up to cap bytes: their number, 0 at the end of the stream, -1 on error. */
static ssize_t io_recv(struct fconn *c, void *buf, size_t cap)
{
	for (;;) {
		if (c->ssl != NULL) {
			int r, e;

			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
			if (r > 0)
				return r;
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) ==
						      SSL_R_UNEXPECTED_EOF_WHILE_READING) {
				/* an end without close_notify: fine where framing says where the
				 * body ends, a possible truncation where only the end does */
				c->unclean_eof = true;
				return 0;
			}
			if (!tls_retry(c, e, "receive"))
				return -1;
		} else {
			ssize_t r = recv(c->fd, buf, cap, 0);

			if (r >= 0)
				return r;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!wait_conn(c, POLLIN))
					return -1;
			} else if (errno != EINTR) {
				CERR(c, "recv: %s", strerror(errno));
				return -1;
			}
		}
	}
}

/* More bytes after buf[len) (buf emptied first when all read): 1, 0 at EOF, -1 error. */
static int rd_more(struct fconn *c)
{
	ssize_t n;

	if (c->pos == c->len)
		c->pos = c->len = 0;
	n = io_recv(c, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0)
		return (int)n;
	c->len += (size_t)n;
	return 1;
}

static int rd_byte(struct fconn *c, unsigned char *ch)
{
	if (c->pos == c->len) {
		int r = rd_more(c);

		if (r <= 0)
			return r;
	}
	*ch = c->buf[c->pos++];
	return 1;
}

/* ---- connecting ---- */

static void addr_text(const struct addrinfo *ai, char *text, size_t cap)
{
	char h[NI_MAXHOST], s[NI_MAXSERV];

	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, h, sizeof(h), s, sizeof(s),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(text, cap, "?");
	else if (ai->ai_family == AF_INET6)
		snprintf(text, cap, "[%s]:%s", h, s);
	else
		snprintf(text, cap, "%s:%s", h, s);
}

/* One non-blocking connect, waiting until until_us: the socket, or -1 (c->err set). */
static int connect_one(struct fconn *c, const struct addrinfo *ai, uint64_t until_us)
{
	char addr[NI_MAXHOST + NI_MAXSERV + 4];
	int fd, soerr = 0, r;
	socklen_t sl = sizeof(soerr);

	addr_text(ai, addr, sizeof(addr));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		CERR(c, "socket for %s: %s", addr, strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		CERR(c, "connect %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	r = wait_fd(fd, POLLOUT, until_us);
	if (r == 0) {
		if (until_us >= c->deadline_us)
			CERR(c, "connect %s: timed out after %d ms", addr, c->timeout_ms);
		else
			CERR(c, "connect %s: timed out", addr);
		close(fd);
		return -1;
	}
	if (r < 0) {
		CERR(c, "connect %s: poll: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		soerr = errno;
	if (soerr != 0) {
		CERR(c, "connect %s: %s", addr, strerror(soerr));
		close(fd);
		return -1;
	}
	return fd;
}

/* Tries each address in turn.  With k addresses left, an attempt may take 1/k of the time
 * left, so that one address that drops packets does not use up the time of the others. */
static int connect_any(struct fconn *c, const struct addrinfo *res)
{
	const struct addrinfo *ai;
	size_t left = 0;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		left++;
	for (ai = res; ai != NULL; ai = ai->ai_next, left--) {
		uint64_t now = clock_mono_us(), until;

		if (now >= c->deadline_us) {
			CERR(c, "timed out after %d ms", c->timeout_ms);
			return -1;
		}
		until = now + (c->deadline_us - now) / left;
		c->fd = connect_one(c, ai, until);
		if (c->fd >= 0)
			return 0;
	}
	return -1; /* c->err: the last address's failure */
}

/* ---- response ---- */

/* Reads a response head, status line to the empty line, into buf[0..*headlen). */
static int read_head(struct fconn *c, size_t *headlen)
{
	size_t from = 0;

	/* what followed an interim (1xx) response */
	memmove(c->buf, c->buf + c->pos, c->len - c->pos);
	c->len -= c->pos;
	c->pos = 0;
	for (;;) {
		const unsigned char *end = NULL;
		int r;

		if (c->len >= 4)
			end = memmem(c->buf + from, c->len - from, "\r\n\r\n", 4);
		if (end != NULL) {
			*headlen = (size_t)(end - c->buf) + 4;
			c->pos = *headlen;
			return 0;
		}
		if (c->len == sizeof(c->buf)) {
			CERR(c, "response head larger than %d bytes", FETCH_HEAD_MAX);
			return -1;
		}
		from = c->len >= 3 ? c->len - 3 : 0;
		r = rd_more(c);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (c->len == 0)
				CERR(c, "connection closed without a response");
			else
				CERR(c, "truncated response head");
			return -1;
		}
	}
}

/* "HTTP/1.x NNN[ reason]" CRLF: the status, or -1. */
static int parse_status(const unsigned char *h, size_t n)
{
	size_t i;

	if (n < 14 || memcmp(h, "HTTP/1.", 7) != 0 || h[7] < '0' || h[7] > '9' || h[8] != ' ' ||
	    h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9' ||
	    (h[12] != ' ' && h[12] != '\r'))
		return -1;
	for (i = 12; h[i] != '\r'; i++) {
		if ((h[i] < 0x20 && h[i] != '\t') || h[i] == 0x7f)
			return -1;
	}
	if (h[i + 1] != '\n')
		return -1;
	return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

static bool tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

struct framing {
	bool has_length, chunked;
	uint64_t length;
};

static int parse_decimal(const unsigned char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0 || n > 19)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

/* The fields of a head (status line skipped): its body framing. */
static int parse_fields(struct fconn *c, const unsigned char *h, size_t n, struct framing *f)
{
	/* after the status line, up to the CRLF of the empty line */
	const unsigned char *p = (const unsigned char *)memchr(h, '\n', n) + 1, *end = h + n - 2;

	memset(f, 0, sizeof(*f));
	while (p < end) {
		const unsigned char *eol = memchr(p, '\r', (size_t)(end - p));
		const unsigned char *name = p, *colon, *v, *ve;

		if (eol == NULL || eol[1] != '\n') {
			CERR(c, "bad line in response head (bare CR or LF)");
			return -1;
		}
		if (*p == ' ' || *p == '\t') {
			CERR(c, "obsolete line folding in response head");
			return -1;
		}
		for (colon = p; colon < eol && tchar(*colon); colon++)
			;
		if (colon == name || colon == eol || *colon != ':') {
			CERR(c, "bad field name in response head");
			return -1;
		}
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		for (const unsigned char *q = v; q < ve; q++) {
			if ((*q < 0x20 && *q != '\t') || *q == 0x7f || *q == '\n') {
				CERR(c, "bad field value in response head");
				return -1;
			}
		}
		if ((size_t)(colon - name) == 14 &&
		    strncasecmp((const char *)name, "Content-Length", 14) == 0) {
			uint64_t x;

			if (parse_decimal(v, (size_t)(ve - v), &x) != 0) {
				CERR(c, "bad Content-Length in response");
				return -1;
			}
			if (f->has_length && f->length != x) {
				CERR(c, "conflicting Content-Length fields in response");
				return -1;
			}
			f->has_length = true;
			f->length = x;
		} else if ((size_t)(colon - name) == 17 &&
			   strncasecmp((const char *)name, "Transfer-Encoding", 17) == 0) {
			if ((size_t)(ve - v) != 7 ||
			    strncasecmp((const char *)v, "chunked", 7) != 0 || f->chunked) {
				CERR(c, "unsupported Transfer-Encoding in response: %.*s",
				     (int)(ve - v > 64 ? 64 : ve - v), (const char *)v);
				return -1;
			}
			f->chunked = true;
		}
		p = eol + 2;
	}
	if (f->has_length && f->chunked) {
		CERR(c, "response has both Content-Length and Transfer-Encoding");
		return -1;
	}
	return 0;
}

static int body_reserve(struct fconn *c, struct body *b, size_t n)
{
	size_t cap;
	char *p;

	if (n > b->max - b->len) {
		CERR(c, "body larger than %zu bytes", b->max);
		return -1;
	}
	if (b->len + n + 1 <= b->cap)
		return 0;
	cap = b->cap < 4096 ? 4096 : b->cap;
	while (cap < b->len + n + 1)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->p, cap);
	if (p == NULL) {
		CERR(c, "out of memory for a %zu-byte body", b->len + n);
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Exactly n bytes of body (buffered first, then straight from the connection). */
static int body_read_n(struct fconn *c, struct body *b, size_t n, const char *eof_what)
{
	if (body_reserve(c, b, n) != 0)
		return -1;
	while (n > 0) {
		size_t take;

		if (c->pos < c->len) {
			take = c->len - c->pos < n ? c->len - c->pos : n;
			memcpy(b->p + b->len, c->buf + c->pos, take);
			c->pos += take;
		} else {
			ssize_t r = io_recv(c, b->p + b->len, n);

			if (r < 0)
				return -1;
			if (r == 0) {
				CERR(c, "truncated body%s", eof_what);
				return -1;
			}
			take = (size_t)r;
		}
		b->len += take;
		n -= take;
	}
	return 0;
}

/* One line of chunked framing, CRLF-terminated, into line (NUL-terminated, without CRLF):
 * 1, 0 at EOF (c->err set), -1 error. */
static int read_line(struct fconn *c, char *line, size_t cap)
{
	size_t n = 0;

	for (;;) {
		unsigned char ch;
		int r = rd_byte(c, &ch);

		if (r < 0)
			return -1;
		if (r == 0) {
			CERR(c, "truncated body (chunked)");
			return 0;
		}
		if (ch == '\n') {
			if (n == 0 || line[n - 1] != '\r') {
				CERR(c, "bad chunked encoding (bare LF)");
				return -1;
			}
			line[n - 1] = '\0';
			return 1;
		}
		if ((n > 0 && line[n - 1] == '\r') || ch == '\0') {
			CERR(c, "bad chunked encoding (bare CR or NUL)");
			return -1;
		}
		if (n + 2 > cap) {
			CERR(c, "bad chunked encoding (line longer than %zu bytes)", cap - 2);
			return -1;
		}
		line[n++] = (char)ch;
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int read_chunked(struct fconn *c, struct body *b)
{
	char line[FETCH_LINE_MAX + 2];
	size_t trailers = 0;

	for (;;) {
		uint64_t size = 0;
		const char *p = line;
		int d;

		if (read_line(c, line, sizeof(line)) != 1)
			return -1;
		if (hexval(*p) < 0) {
			CERR(c, "bad chunked encoding (chunk size)");
			return -1;
		}
		for (; (d = hexval(*p)) >= 0; p++) {
			if (size > (UINT64_MAX >> 4)) {
				CERR(c, "body larger than %zu bytes", b->max);
				return -1;
			}
			size = size << 4 | (uint64_t)d;
		}
		/* chunk extensions: BWS ";" ..., ignored */
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0' && *p != ';') {
			CERR(c, "bad chunked encoding (chunk size)");
			return -1;
		}
		if (size == 0)
			break;
		if (size > b->max - b->len) {
			CERR(c, "body larger than %zu bytes", b->max);
			return -1;
		}
		if (body_read_n(c, b, (size_t)size, " (chunked)") != 0)
			return -1;
		if (read_line(c, line, sizeof(line)) != 1)
			return -1;
		if (line[0] != '\0') {
			CERR(c, "bad chunked encoding (no CRLF after chunk data)");
			return -1;
		}
	}
	/* trailer fields, skipped, up to the empty line */
	for (;;) {
		if (read_line(c, line, sizeof(line)) != 1)
			return -1;
		if (line[0] == '\0')
			return 0;
		trailers += strlen(line) + 2;
		if (trailers > FETCH_HEAD_MAX) {
			CERR(c, "response trailers larger than %d bytes", FETCH_HEAD_MAX);
			return -1;
		}
	}
}

static int read_to_eof(struct fconn *c, struct body *b)
{
	for (;;) {
		int r;

		if (c->pos < c->len) {
			size_t n = c->len - c->pos;

			if (body_reserve(c, b, n) != 0)
				return -1;
			memcpy(b->p + b->len, c->buf + c->pos, n);
			b->len += n;
			c->pos = c->len;
		}
		r = rd_more(c);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
	}
	if (c->unclean_eof) {
		/* the end of the connection is the end of the body: it must be a TLS one */
		CERR(c, "truncated body (TLS connection closed without close_notify)");
		return -1;
	}
	return 0;
}

static int read_response(struct fconn *c, struct body *b)
{
	struct framing f;
	size_t headlen;
	int status, interim = 0;

	for (;;) {
		if (read_head(c, &headlen) != 0)
			return -1;
		status = parse_status(c->buf, headlen);
		if (status < 0) {
			CERR(c, "bad status line in response");
			return -1;
		}
		if (status >= 200 || status == 101)
			break;
		if (++interim > FETCH_INTERIM_MAX) {
			CERR(c, "too many interim (1xx) responses");
			return -1;
		}
	}
	if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
		CERR(c, "HTTP status %d (redirects are not followed)", status);
		return -1;
	}
	if (status != 200) {
		CERR(c, "HTTP status %d", status);
		return -1;
	}
	if (parse_fields(c, c->buf, headlen, &f) != 0)
		return -1;
	if (f.chunked)
		return read_chunked(c, b);
	if (f.has_length) {
		if (f.length > b->max) {
			CERR(c, "body larger than %zu bytes", b->max);
			return -1;
		}
		return body_read_n(c, b, (size_t)f.length, "");
	}
	return read_to_eof(c, b);
}

/* ---- the call ---- */

static char *build_request(const struct url *u)
{
	const char *path = u->pathlen > 0 && u->path[0] == '/' ? "" : "/";
	size_t cap = u->pathlen + strlen(u->host) + 160;
	char *req = malloc(cap);

	if (req == NULL)
		return NULL;
	snprintf(req, cap,
		 "GET %s%.*s HTTP/1.1\r\n"
		 "Host: %s%s%s%s%s\r\n"
		 "User-Agent: meshgate\r\n"
		 "Accept: application/json\r\n"
		 "Connection: close\r\n"
		 "\r\n",
		 path, (int)u->pathlen, u->path, u->v6 ? "[" : "", u->host, u->v6 ? "]" : "",
		 u->default_port ? "" : ":", u->default_port ? "" : u->port);
	return req;
}

int fetch_get(const char *url, int timeout_ms, size_t max_body, char **body, size_t *len, char *err,
	      size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	struct body b = {.max = max_body};
	struct fconn *c = NULL;
	struct url u;
	char *req = NULL;
	int rc = -1, gai;
	bool lookup_timed_out = false;

	*body = NULL;
	*len = 0;
	errf(err, errlen, "%s", "");
	if (timeout_ms <= 0) {
		errf(err, errlen, "timeout must be positive");
		return -1;
	}
	if (max_body >= SIZE_MAX - 1) {
		errf(err, errlen, "body limit too large");
		return -1;
	}
	if (parse_url(url, &u, err, errlen) != 0)
		return -1;
	c = calloc(1, sizeof(*c));
	req = build_request(&u);
	if (c == NULL || req == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	c->fd = -1;
	c->err = err;
	c->errlen = errlen;
	c->timeout_ms = timeout_ms;
	c->deadline_us = clock_mono_us() + (uint64_t)timeout_ms * 1000;

	/* The name lookup counts against the deadline too (dns_getaddrinfo waits no longer):
	 * a resolver that does not answer cannot hold the control thread. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (u.ip ? AI_NUMERICHOST : 0);
	gai = dns_getaddrinfo(u.host, u.port, &hints, timeout_ms, &res, &lookup_timed_out);
	if (gai != 0 && lookup_timed_out) {
		errf(err, errlen, "resolve %s: no answer within %d ms", u.host, timeout_ms);
		goto out;
	}
	if (gai != 0) {
		errf(err, errlen, "resolve %s: %s", u.host,
		     gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		goto out;
	}
	if (connect_any(c, res) != 0)
		goto out;
	if (u.tls && tls_handshake(c, &u) != 0)
		goto out;
	if (io_send(c, req, strlen(req)) != 0)
		goto out;
	if (read_response(c, &b) != 0)
		goto out;
	if (b.p == NULL && body_reserve(c, &b, 0) != 0) /* an empty body is still a string */
		goto out;
	b.p[b.len] = '\0';
	*body = b.p;
	*len = b.len;
	b.p = NULL;
	rc = 0;
out:
	if (c != NULL) {
		SSL_free(c->ssl); /* no close_notify: nothing is left to say, and it could block */
		if (c->fd >= 0)
			close(c->fd);
	}
	ERR_clear_error(); /* leave this thread's OpenSSL error queue as it was */
	if (res != NULL)
		freeaddrinfo(res);
	free(b.p);
	free(req);
	free(c);
	return rc;
}

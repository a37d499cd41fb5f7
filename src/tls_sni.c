/* SNI: one front context per listener whose client-hello callback reads the server_name
 * extension, picks the server (exact host, then the longest "*.suffix", then "*"; no SNI:
 * the configured default) and moves the SSL to that server's context.
 *
 * The client hello callback runs before version negotiation, session resumption, cipher
 * and certificate selection, so everything the chosen context says applies.  OpenSSL's
 * SSL_set_SSL_CTX() swaps the certificates and the session id context but not what
 * SSL_new() copied from the front context (verify mode and callback, verify depth,
 * protocol versions, options): those are re-applied here.  Tickets stay with the front
 * context (OpenSSL's session_ctx), which is why the per-server session id context is what
 * keeps a session from resuming on another server. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include "clienthello.h"
#include "errors.h"
#include "pool.h"
#include "tls.h"
#include "tls_int.h"

#define TLS_SNI_MAX 255 /* RFC 6066 HostName, and DNS */

struct tls_sni_index {
	const struct tls_sni_entry **exact; /* sorted by host */
	size_t nexact;
	const struct tls_sni_entry **wild; /* "*.x", sorted by ".x" */
	size_t nwild;
	const struct tls_sni_entry *any; /* "*" */
};

static void tls_sni_release(void *arg)
{
	SSL_CTX_free(arg);
}

/* Ties (a host listed twice, which link refuses) keep the first entry: array order. */
static int tls_sni_cmp(const void *a, const void *b)
{
	const struct tls_sni_entry *x = *(const struct tls_sni_entry *const *)a;
	const struct tls_sni_entry *y = *(const struct tls_sni_entry *const *)b;
	int c = strcmp(x->host, y->host);

	if (c != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Sorted array without the later duplicates. */
static size_t tls_sni_dedup(const struct tls_sni_entry **v, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (k == 0 || strcmp(v[k - 1]->host, v[i]->host) != 0)
			v[k++] = v[i];
	return k;
}

static const struct tls_sni_entry *tls_sni_find(const struct tls_sni_entry *const *v, size_t n,
						const char *key, size_t skip)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, v[mid]->host + skip);

		if (c == 0)
			return v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct tls_sni_entry *tls_sni_lookup(const struct tls_sni_table *t, const char *sni,
					   size_t len)
{
	const struct tls_sni_index *ix = t->index;
	const struct tls_sni_entry *e;
	char name[TLS_SNI_MAX + 1];
	size_t i;

	if (sni == NULL || len == 0)
		return t->no_sni;
	if (ix == NULL)
		return NULL;
	/* A fully-qualified "name." is the same name. */
	if (sni[len - 1] == '.')
		len--;
	if (len == 0 || len > TLS_SNI_MAX)
		return NULL;
	for (i = 0; i < len; i++) {
		char c = sni[i];

		if (c == '\0')
			return NULL;
		name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	name[len] = '\0';
	if ((e = tls_sni_find(ix->exact, ix->nexact, name, 0)) != NULL)
		return e;
	/* The leftmost dot with at least one character before it gives the longest suffix. */
	for (i = 1; i < len && ix->nwild > 0; i++)
		if (name[i] == '.' && (e = tls_sni_find(ix->wild, ix->nwild, name + i, 1)) != NULL)
			return e;
	return ix->any;
}

/* Moves ssl to ctx and re-applies what SSL_new() copied from the front context. */
static bool tls_sni_switch(SSL *ssl, SSL_CTX *ctx)
{
	uint64_t want, have;

	if (SSL_get_SSL_CTX(ssl) == ctx)
		return true;
	if (SSL_set_SSL_CTX(ssl, ctx) != ctx)
		return false;
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
	SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
	want = SSL_CTX_get_options(ctx);
	have = SSL_get_options(ssl);
	if (have != want) {
		SSL_clear_options(ssl, have & ~want);
		SSL_set_options(ssl, want);
	}
	return SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx)) &&
	       SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx));
}

static int tls_sni_hello(SSL *ssl, int *al, void *arg)
{
	const struct tls_sni_table *t = arg;
	const struct tls_sni_entry *e, *prev;
	const unsigned char *ext, *name;
	size_t extlen, n = 0;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &extlen)) {
		if ((e = t->no_sni) == NULL) {
			tls_set_reason(ssl, TLS_FAIL_NO_SNI_MATCH,
				       "client sent no SNI and no default server is configured");
			*al = SSL_AD_UNRECOGNIZED_NAME;
			return SSL_CLIENT_HELLO_ERROR;
		}
	} else if (clienthello_sni_ext(ext, extlen, &name, &n) != MG_OK) {
		tls_set_reason(ssl, TLS_FAIL_PROTOCOL, "malformed server_name extension");
		*al = SSL_AD_DECODE_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	} else if (!clienthello_host_valid(name, n)) {
		tls_set_reason(ssl, TLS_FAIL_NO_SNI_MATCH, "invalid SNI host name");
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	} else if ((e = tls_sni_lookup(t, (const char *)name, n)) == NULL) {
		tls_set_reason(ssl, TLS_FAIL_NO_SNI_MATCH, "no certificate for SNI %.*s", (int)n,
			       (const char *)name);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	/* A passthrough host reaches this only when the ClientHello changed between the peek
	 * and the handshake (a HelloRetryRequest's second hello): it is not ours to answer. */
	if (e->sctx == NULL) {
		tls_set_reason(ssl, TLS_FAIL_NO_SNI_MATCH, "SNI %.*s is a passthrough host", (int)n,
			       (const char *)name);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	/* After a HelloRetryRequest the second ClientHello must name the same server. */
	prev = SSL_get_ex_data(ssl, tls_ex.ssl_entry);
	if (prev != NULL && prev != e) {
		tls_set_reason(ssl, TLS_FAIL_PROTOCOL, "SNI changed after HelloRetryRequest");
		*al = SSL_AD_ILLEGAL_PARAMETER;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (!SSL_set_ex_data(ssl, tls_ex.ssl_entry, (void *)e) ||
	    !tls_sni_switch(ssl, e->sctx->ctx)) {
		tls_set_reason(ssl, TLS_FAIL_OTHER, "cannot switch to the server's TLS context");
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

const struct tls_sni_entry *tls_selected(const SSL *ssl)
{
	if (ssl == NULL || tls_ex.ssl_entry < 0)
		return NULL;
	return SSL_get_ex_data(ssl, tls_ex.ssl_entry);
}

bool tls_sni_table_default(struct tls_sni_table *t, const char *host)
{
	const struct tls_sni_entry *e;

	if (host == NULL || (e = tls_sni_lookup(t, host, strlen(host))) == NULL)
		return false;
	t->no_sni = (struct tls_sni_entry *)e;
	return true;
}

void tls_sni_table_index(struct pool *p, struct tls_sni_table *t)
{
	struct tls_sni_index *ix = pool_alloc(p, sizeof(*ix));
	size_t i;

	ix->exact = pool_calloc(p, t->n ? t->n : 1, sizeof(*ix->exact));
	ix->wild = pool_calloc(p, t->n ? t->n : 1, sizeof(*ix->wild));
	for (i = 0; i < t->n; i++) {
		const struct tls_sni_entry *e = &t->v[i];

		if (e->host == NULL || (e->sctx == NULL && e->user == NULL))
			continue;
		if (strcmp(e->host, "*") == 0) {
			if (ix->any == NULL)
				ix->any = e;
		} else if (e->host[0] == '*' && e->host[1] == '.') {
			ix->wild[ix->nwild++] = e;
		} else {
			ix->exact[ix->nexact++] = e;
		}
	}
	qsort(ix->exact, ix->nexact, sizeof(*ix->exact), tls_sni_cmp);
	ix->nexact = tls_sni_dedup(ix->exact, ix->nexact);
	/* Wildcards sort by ".suffix": the same order as by "*.suffix". */
	qsort(ix->wild, ix->nwild, sizeof(*ix->wild), tls_sni_cmp);
	ix->nwild = tls_sni_dedup(ix->wild, ix->nwild);
	t->index = ix;
}

/* A listener whose hosts all have one server context (one Gateway server, the common case)
 * makes its SSLs from that context: the callback then selects without switching, which
 * saves SSL_set_SSL_CTX's copy of the certificate table (half a KiB of every idle TLS
 * connection) and its work in every handshake.  A context another table claimed already
 * keeps the front's switch, since a context has one client-hello callback. */
static void tls_sni_direct(struct tls_sni_table *t)
{
	SSL_CTX *only = NULL;

	t->direct = NULL;
	for (size_t i = 0; i < t->n; i++) {
		const struct tls_server_ctx *sctx = t->v[i].sctx;

		if (sctx == NULL)
			continue; /* a passthrough host: the callback refuses it either way */
		if (only != NULL && sctx->ctx != only)
			return;
		only = sctx->ctx;
	}
	if (only == NULL || SSL_CTX_get_ex_data(only, tls_ex.ctx_table) != NULL ||
	    !SSL_CTX_set_ex_data(only, tls_ex.ctx_table, t))
		return;
	SSL_CTX_set_client_hello_cb(only, tls_sni_hello, t);
	t->direct = only;
}

int tls_sni_table_init(struct pool *p, struct tls_sni_table *t)
{
	static const unsigned char sid[] = "meshgate-front";
	SSL_CTX *front;

	if (tls_init() < 0)
		return -1;
	tls_sni_table_index(p, t);
	if ((front = SSL_CTX_new(TLS_server_method())) == NULL)
		return -1;
	pool_on_free(p, tls_sni_release, front);
	if (tls_ctx_defaults(front) < 0 || tls_server_ctx_setup_sessions(front) < 0 ||
	    !SSL_CTX_set_session_id_context(front, sid, sizeof(sid) - 1))
		return -1;
	/* Versions are decided after the callback, with the chosen server's limits; the front
	 * must not refuse a ClientHello that a server allowing TLS 1.0 would take. */
	if (!SSL_CTX_set_min_proto_version(front, 0))
		return -1;
	SSL_CTX_set_client_hello_cb(front, tls_sni_hello, t);
	t->front = front;
	tls_sni_direct(t);
	return 0;
}

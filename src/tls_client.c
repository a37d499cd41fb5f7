/* Upstream origination: DestinationRule trafficPolicy.tls (Istio ClientTLSSettings) into a
 * client SSL_CTX, and SSL objects prepared for one upstream host.
 *
 * Session resumption: the context keeps the newest session per host in a small table.
 * Workers share the context, so the table has a mutex; it is taken once when an upstream
 * connection is created and once when its server sends a ticket, never per request, so it
 * stays off the hot path. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pool.h"
#include "config/diag.h"
#include "config/model.h"
#include "config/node.h"
#include "tls.h"
#include "tls_int.h"

/* Hosts per context: a DestinationRule names one host (or a wildcard for a handful); past
 * this, the oldest slot is reused. */
#define TLS_CLIENT_SESSIONS 64

enum tls_client_mode {
	TLSC_DISABLE = 0,
	TLSC_SIMPLE,
	TLSC_MUTUAL,
	TLSC_ISTIO_MUTUAL,
};

static const char *const tls_client_modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};

struct tls_sess_slot {
	char *host;
	SSL_SESSION *sess;
};

struct tls_sess_cache {
	pthread_mutex_t mu;
	size_t n, next; /* slots in use; the next one to reuse when full */
	struct tls_sess_slot v[TLS_CLIENT_SESSIONS];
};

/* ex_data free callback (declared in tls.c): the SSL_CTX owns its session table. */
void tls_client_sessions_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp);
void tls_client_sessions_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp)
{
	struct tls_sess_cache *c = ptr;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->v[i].host);
		SSL_SESSION_free(c->v[i].sess);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static struct tls_sess_slot *tls_client_slot(struct tls_sess_cache *c, const char *host)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].host, host) == 0)
			return &c->v[i];
	return NULL;
}

/* New-session callback: keep the newest resumable session of the connection's host. */
static int tls_client_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_sess_cache *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex.ctx_sessions);
	const char *host = SSL_get_ex_data(ssl, tls_ex.ssl_host);
	struct tls_sess_slot *s;
	SSL_SESSION *old = NULL;
	char *evicted = NULL, *copy;

	if (c == NULL || host == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	if ((copy = strdup(host)) == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	if ((s = tls_client_slot(c, host)) != NULL) {
		free(copy);
	} else {
		if (c->n < TLS_CLIENT_SESSIONS) {
			s = &c->v[c->n++];
		} else {
			s = &c->v[c->next];
			c->next = (c->next + 1) % TLS_CLIENT_SESSIONS;
			evicted = s->host;
		}
		s->host = copy;
	}
	old = s->sess;
	s->sess = sess;
	pthread_mutex_unlock(&c->mu);
	free(evicted);
	SSL_SESSION_free(old);
	return 1; /* we keep the reference */
}

/* The stored session for host with a reference taken, or NULL. */
static SSL_SESSION *tls_client_cached(struct tls_sess_cache *c, const char *host)
{
	struct tls_sess_slot *s;
	SSL_SESSION *sess = NULL;

	pthread_mutex_lock(&c->mu);
	if ((s = tls_client_slot(c, host)) != NULL && s->sess != NULL &&
	    SSL_SESSION_up_ref(s->sess))
		sess = s->sess;
	pthread_mutex_unlock(&c->mu);
	return sess;
}

static void tls_client_release(void *arg)
{
	SSL_CTX_free(arg);
}

static bool tls_client_is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The decoded tls map. */
struct tls_client_cfg {
	int mode;
	const char *ca, *cert, *key, *cred, *crl, *sni;
	struct node *ca_at, *cert_at, *key_at, *cred_at, *crl_at, *insecure_at;
	struct str_list san;
	bool insecure;
};

static bool tls_client_str(struct diag *d, struct node *map, const char *key, const char **out,
			   struct node **at)
{
	struct node *n = node_get(map, key);

	if (n == NULL)
		return true;
	*at = n;
	return node_str(d, n, out);
}

static bool tls_client_decode(struct pool *p, struct diag *d, struct node *n,
			      struct tls_client_cfg *cfg)
{
	struct node *x, *unused = NULL;
	int nerrors = d->nerrors;
	bool ok = true;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	if (n == NULL || n->type == NODE_NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	if ((x = node_get(n, "mode")) != NULL)
		ok &= node_enum(d, x, tls_client_modes, &cfg->mode);
	ok &= tls_client_str(d, n, "caCertificates", &cfg->ca, &cfg->ca_at);
	ok &= tls_client_str(d, n, "clientCertificate", &cfg->cert, &cfg->cert_at);
	ok &= tls_client_str(d, n, "privateKey", &cfg->key, &cfg->key_at);
	ok &= tls_client_str(d, n, "credentialName", &cfg->cred, &cfg->cred_at);
	ok &= tls_client_str(d, n, "caCrl", &cfg->crl, &cfg->crl_at);
	ok &= tls_client_str(d, n, "sni", &cfg->sni, &unused);
	if ((x = node_get(n, "insecureSkipVerify")) != NULL) {
		cfg->insecure_at = x;
		ok &= node_bool(d, x, &cfg->insecure);
	}
	if ((x = node_get(n, "subjectAltNames")) != NULL && x->type != NODE_NULL) {
		if (!node_want_seq(d, x)) {
			ok = false;
		} else {
			cfg->san.v = pool_calloc(p, x->n ? x->n : 1, sizeof(*cfg->san.v));
			for (i = 0; i < x->n; i++)
				if (node_str(d, x->vals[i], &cfg->san.v[cfg->san.n]))
					cfg->san.n++;
				else
					ok = false;
		}
	}
	node_check_unknown(d, n);
	ok &= d->nerrors == nerrors;
	if (cfg->sni != NULL && (cfg->sni[0] == '\0' || strlen(cfg->sni) > 255)) {
		diag_error(d, unused, "sni must be a host name of 1 to 255 characters");
		ok = false;
	}
	return ok;
}

/* ISTIO_MUTUAL: the files are the appliance's mesh identity; the tls block may only choose
 * sni and subjectAltNames (Istio refuses certificates and credentials in this mode). */
static bool tls_client_mesh_files(struct diag *d, const struct cfg_main *m, struct node *n,
				  struct tls_client_cfg *cfg)
{
	struct node *own = cfg->cert_at != NULL   ? cfg->cert_at
			   : cfg->key_at != NULL  ? cfg->key_at
			   : cfg->ca_at != NULL   ? cfg->ca_at
			   : cfg->cred_at != NULL ? cfg->cred_at
						  : cfg->crl_at;

	if (own != NULL) {
		diag_error(d, own,
			   "ISTIO_MUTUAL uses the appliance's mesh identity: clientCertificate, "
			   "privateKey, caCertificates, caCrl and credentialName cannot be set");
		return false;
	}
	if (cfg->insecure) {
		diag_error(d, cfg->insecure_at,
			   "insecureSkipVerify cannot be used with ISTIO_MUTUAL");
		return false;
	}
	if (m == NULL || m->mesh_identity.certificate == NULL) {
		diag_error(d, node_get(n, "mode"),
			   "ISTIO_MUTUAL needs the appliance's mesh identity: set meshIdentity "
			   "(certificate, privateKey, caCertificates) in the main config");
		return false;
	}
	cfg->cert = m->mesh_identity.certificate;
	cfg->key = m->mesh_identity.private_key;
	cfg->ca = m->mesh_identity.ca_certificates;
	cfg->cert_at = node_get(m->mesh_identity.node, "certificate");
	cfg->ca_at = node_get(m->mesh_identity.node, "caCertificates");
	return true;
}

/* Where the context's files come from: explicit paths win over the credential's. */
static bool tls_client_files(struct pool *p, struct diag *d, const struct cfg_main *m,
			     struct node *n, struct tls_client_cfg *cfg)
{
	struct tls_cred c;

	cfg->ca = tls_load_path(p, m, cfg->ca);
	cfg->cert = tls_load_path(p, m, cfg->cert);
	cfg->key = tls_load_path(p, m, cfg->key);
	cfg->crl = tls_load_path(p, m, cfg->crl);
	if (cfg->cred != NULL) {
		if (!tls_load_cred(p, d, cfg->cred_at, m, cfg->cred, cfg->mode == TLSC_MUTUAL, &c))
			return false;
		if (cfg->ca == NULL) {
			cfg->ca = c.ca;
			cfg->ca_at = cfg->cred_at;
		}
		if (cfg->crl == NULL) {
			cfg->crl = c.crl;
			cfg->crl_at = cfg->cred_at;
		}
		if (cfg->mode == TLSC_MUTUAL && cfg->cert == NULL) {
			cfg->cert = c.cert;
			cfg->key = c.key;
			cfg->cert_at = cfg->key_at = cfg->cred_at;
		}
	}
	if (cfg->mode != TLSC_MUTUAL) {
		if (cfg->cert != NULL || cfg->key != NULL)
			diag_warn(d, cfg->cert_at != NULL ? cfg->cert_at : cfg->key_at,
				  "clientCertificate and privateKey are only used in MUTUAL mode");
		return true;
	}
	if (cfg->cert == NULL || cfg->key == NULL) {
		diag_error(d, n,
			   "MUTUAL TLS requires clientCertificate and privateKey (or "
			   "credentialName)");
		return false;
	}
	return true;
}

static bool tls_client_verify(struct diag *d, SSL_CTX *ctx, struct node *n,
			      struct tls_client_cfg *cfg)
{
	char err[256];

	if (cfg->insecure) {
		if (cfg->ca != NULL || cfg->san.n > 0)
			diag_warn(d, n,
				  "insecureSkipVerify: caCertificates and subjectAltNames are "
				  "ignored");
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return true;
	}
	if (cfg->ca != NULL) {
		if (!tls_load_ca(ctx, d, cfg->ca_at != NULL ? cfg->ca_at : n, cfg->ca, false))
			return false;
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		diag_error(d, n, "cannot load the system CA certificates: %s",
			   tls_err_string(err, sizeof(err)));
		return false;
	}
	if (cfg->crl != NULL &&
	    !tls_load_crl(ctx, d, cfg->crl_at != NULL ? cfg->crl_at : n, cfg->crl))
		return false;
	if (tls_verify_policy_new(ctx, d, "upstream", true, &cfg->san, NULL, NULL, NULL, NULL) ==
	    NULL)
		return false;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
	return true;
}

static bool tls_client_sessions(SSL_CTX *ctx)
{
	struct tls_sess_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return false;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return false;
	}
	if (!SSL_CTX_set_ex_data(ctx, tls_ex.ctx_sessions, c)) {
		pthread_mutex_destroy(&c->mu);
		free(c);
		return false;
	}
	/* NO_INTERNAL_STORE: OpenSSL's own cache is keyed by session id, useless to a client
	 * and one more lock; the callback keeps what we resume from. */
	SSL_CTX_set_session_cache_mode(ctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_client_new_session);
	return true;
}

/* FNV-1a over what a context is made of: equal fingerprints make contexts interchangeable
 * for pooled connections, across reloads too.  Files count by identity (device, inode,
 * size, mtime), so a rotated certificate makes a new fingerprint without reading it. */
static uint64_t tls_client_mix(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

static uint64_t tls_client_mix_str(uint64_t h, const char *s)
{
	return s != NULL ? tls_client_mix(h, s, strlen(s) + 1) : tls_client_mix(h, "", 1) ^ 1;
}

static uint64_t tls_client_mix_file(uint64_t h, const char *path)
{
	struct stat st;
	int64_t v[4] = {0, 0, 0, 0};

	h = tls_client_mix_str(h, path);
	if (path != NULL && stat(path, &st) == 0) {
		v[0] = (int64_t)st.st_dev;
		v[1] = (int64_t)st.st_ino;
		v[2] = (int64_t)st.st_size;
		v[3] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
	return tls_client_mix(h, v, sizeof(v));
}

static uint64_t tls_client_fingerprint(const struct tls_client_cfg *cfg)
{
	uint64_t h = 14695981039346656037ULL;
	unsigned char flags[2] = {(unsigned char)cfg->mode, cfg->insecure};

	h = tls_client_mix(h, flags, sizeof(flags));
	h = tls_client_mix_file(h, cfg->ca);
	h = tls_client_mix_file(h, cfg->cert);
	h = tls_client_mix_file(h, cfg->key);
	h = tls_client_mix_file(h, cfg->crl);
	h = tls_client_mix_str(h, cfg->sni);
	for (size_t i = 0; i < cfg->san.n; i++)
		h = tls_client_mix_str(h, cfg->san.v[i]);
	return h;
}

uint64_t tls_client_origin_id(const struct tls_client_ctx *c, const char *name)
{
	unsigned char check = tls_client_checks_name(c);

	return tls_client_mix(tls_client_mix_str(c->id, name), &check, 1);
}

bool tls_client_checks_name(const struct tls_client_ctx *c)
{
	return c->ctx != NULL && c->verify && c->subject_alt_names.n == 0 && !c->mesh;
}

struct tls_client_ctx *tls_client_ctx_new(struct pool *p, struct diag *d, struct node *tls_node,
					  const struct cfg_main *m,
					  const struct str_list *mesh_sans)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	/* What an Istio sidecar offers towards a mesh peer over HTTP/1.1 (istio-http/1.1
	 * selects the peer's mTLS HTTP filter chain), then plain http/1.1. */
	static const unsigned char mesh_alpn[] = "\x0eistio-http/1.1\x05istio\x08http/1.1";
	struct tls_client_cfg cfg;
	struct tls_client_ctx *c;
	int64_t not_after = INT64_MAX;
	unsigned types = 0;
	char err[256];
	bool mesh;
	SSL_CTX *ctx;

	if (!tls_client_decode(p, d, tls_node, &cfg))
		return NULL;
	c = pool_alloc(p, sizeof(*c));
	if (cfg.mode == TLSC_DISABLE)
		return c; /* c->ctx == NULL: plaintext */
	mesh = cfg.mode == TLSC_ISTIO_MUTUAL;
	if (tls_init() < 0) {
		diag_error(d, tls_node, "cannot initialise OpenSSL: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	if (mesh) {
		if (!tls_client_mesh_files(d, m, tls_node, &cfg))
			return NULL;
		/* Istio verifies a mesh peer against the service's accounts (the
		 * ServiceEntry's subjectAltNames) unless the rule names its own. */
		if (cfg.san.n == 0 && mesh_sans != NULL)
			cfg.san = *mesh_sans;
	} else if (!tls_client_files(p, d, m, tls_node, &cfg)) {
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		diag_error(d, tls_node, "cannot create a TLS context: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	pool_on_free(p, tls_client_release, ctx);
	if (tls_ctx_defaults(ctx) < 0 || !tls_client_sessions(ctx) ||
	    (mesh ? SSL_CTX_set_alpn_protos(ctx, mesh_alpn, sizeof(mesh_alpn) - 1)
		  : SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1)) != 0) {
		diag_error(d, tls_node, "cannot configure the TLS context: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	if (!tls_client_verify(d, ctx, tls_node, &cfg))
		return NULL;
	if ((cfg.mode == TLSC_MUTUAL || mesh) &&
	    !tls_load_cert_key(ctx, d, cfg.cert_at != NULL ? cfg.cert_at : tls_node, cfg.cert,
			       cfg.key, &not_after, &types))
		return NULL;
	c->ctx = ctx;
	c->sni = cfg.sni;
	c->subject_alt_names = cfg.san;
	c->verify = !cfg.insecure;
	c->mesh = mesh;
	c->id = tls_client_fingerprint(&cfg);
	return c;
}

SSL *tls_client_ssl_open(SSL_CTX *ctx, const char *name, bool check_name, const char *session_key)
{
	struct tls_sess_cache *cache;
	SSL_SESSION *sess;
	char *key;
	bool ip;
	SSL *ssl;

	if (ctx == NULL || name == NULL || name[0] == '\0')
		return NULL;
	if (session_key == NULL)
		session_key = name;
	ip = tls_client_is_ip(name);
	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if ((key = strdup(session_key)) == NULL || !SSL_set_ex_data(ssl, tls_ex.ssl_host, key)) {
		free(key);
		goto fail;
	}
	/* RFC 6066: no IP literals in SNI. */
	if (!ip && !SSL_set_tlsext_host_name(ssl, name))
		goto fail;
	/* Without subjectAltNames the certificate must match the name we asked for; with them,
	 * the verify callback checks those instead (URI SANs included, SPIFFE style). */
	if (check_name) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (ip ? !X509_VERIFY_PARAM_set1_ip_asc(param, name)
		       : !X509_VERIFY_PARAM_set1_host(param, name, 0))
			goto fail;
	}
	cache = SSL_CTX_get_ex_data(ctx, tls_ex.ctx_sessions);
	if (cache != NULL && (sess = tls_client_cached(cache, session_key)) != NULL) {
		int ok = SSL_set_session(ssl, sess);

		SSL_SESSION_free(sess);
		if (!ok)
			goto fail;
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

SSL *tls_client_ssl_new(const struct tls_client_ctx *c, const char *host)
{
	if (c == NULL || c->ctx == NULL || host == NULL || host[0] == '\0')
		return NULL;
	return tls_client_ssl_open(c->ctx, c->sni != NULL ? c->sni : host,
				   tls_client_checks_name(c), host);
}

/* The verify callback's reasons name the side ("upstream certificate ..."): the access log
 * says "tls verify failed: " first, so only what follows is kept. */
static const char *tls_client_strip(const char *r)
{
	static const char *const prefixes[] = {
	    "upstream certificate verify failed: ", "upstream certificate ", NULL};

	for (size_t i = 0; prefixes[i] != NULL; i++)
		if (strncmp(r, prefixes[i], strlen(prefixes[i])) == 0)
			return r + strlen(prefixes[i]);
	return r;
}

const char *tls_client_failure(const SSL *ssl, char *buf, size_t size)
{
	BIO *wbio;
	bool sent;

	if (ssl == NULL || size == 0)
		return NULL;
	wbio = SSL_get_wbio(ssl);
	/* Bytes written: the TCP connection was up (a refused connect writes nothing). */
	sent = wbio != NULL && BIO_number_written(wbio) > 0;
	if (!tls_has_reason(ssl) && (SSL_is_init_finished(ssl) || !sent))
		return NULL;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		snprintf(buf, size, "tls verify failed: %s",
			 tls_client_strip(tls_failure_reason(ssl)));
	else if (tls_has_reason(ssl))
		snprintf(buf, size, "tls handshake failed: %s", tls_failure_reason(ssl));
	else
		snprintf(buf, size, "tls handshake failed: connection closed by the upstream");
	return buf;
}

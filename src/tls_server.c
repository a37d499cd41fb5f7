/* Terminating contexts: one SSL_CTX per Gateway server, built from its tls block on the
 * control thread and read-only afterwards (workers share it without locks). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pool.h"
#include "config/diag.h"
#include "config/model.h"
#include "config/node.h"
#include "tls.h"
#include "tls_int.h"
#include "tls_ticket.h"

/* One TLS 1.3 ticket per handshake (OpenSSL sends two by default).  Each ticket costs
 * ~6% of a full handshake (the session is DER-encoded, decoded and re-encoded, then
 * encrypted and MACed: ~170k instructions against ~2.6M), and a resumed handshake hands
 * out a fresh one, so a client reconnecting in sequence always has a ticket.  Only a
 * client that opens several connections at once *after* its first one, and uses tickets
 * once (RFC 8446 C.4), resumes fewer of them.  Stateless tickets may also be presented
 * more than once: OpenSSL accepts them. */
#ifndef TLS_SERVER_TICKETS
#define TLS_SERVER_TICKETS 1
#endif

static const char *const tls_server_mode_names[] = {
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL",
};

static void tls_server_ctx_release(void *arg)
{
	SSL_CTX_free(arg);
}

/* The node of a tls field for messages, or the tls block itself. */
static struct node *tls_server_at(const struct gw_tls *t, const char *key)
{
	struct node *n = node_get(t->node, key);

	return n != NULL ? n : t->node;
}

static int tls_server_version(int v)
{
	switch (v) {
	case 10:
		return TLS1_VERSION;
	case 11:
		return TLS1_1_VERSION;
	case 12:
		return TLS1_2_VERSION;
	case 13:
		return TLS1_3_VERSION;
	}
	return 0;
}

static bool tls_server_versions(SSL_CTX *ctx, struct diag *d, const struct gw_tls *t)
{
	int min = t->min_version ? tls_server_version(t->min_version) : TLS1_2_VERSION;
	int max = t->max_version ? tls_server_version(t->max_version) : TLS1_3_VERSION;

	if (min == 0 || max == 0) {
		diag_error(d, t->node, "unsupported TLS version");
		return false;
	}
	if (min > max) {
		diag_error(d, tls_server_at(t, "maxProtocolVersion"),
			   "maxProtocolVersion TLSV1_%d is below the default minimum TLSV1_2: "
			   "set minProtocolVersion too",
			   t->max_version - 10);
		return false;
	}
	if (min < TLS1_2_VERSION) {
		/* OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1/MD5 handshake hashes) above level 0. */
		diag_warn(d, tls_server_at(t, "minProtocolVersion"),
			  "TLSV1_%d is below Mozilla's intermediate profile (TLS 1.2 and 1.3): "
			  "this server runs at OpenSSL security level 0 to allow it",
			  t->min_version - 10);
		SSL_CTX_set_security_level(ctx, 0);
	}
	if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, max)) {
		diag_error(d, t->node, "cannot set the TLS versions");
		return false;
	}
	return true;
}

/* Every cipher this OpenSSL knows, TLS 1.3 suites included. */
static SSL_CTX *tls_server_cipher_catalog(void)
{
	SSL_CTX *all = SSL_CTX_new(TLS_method());

	if (all == NULL)
		return NULL;
	SSL_CTX_set_security_level(all, 0);
	if (!SSL_CTX_set_cipher_list(all, "ALL:COMPLEMENTOFALL:@SECLEVEL=0") ||
	    !SSL_CTX_set_ciphersuites(all, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
					   "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256:"
					   "TLS_AES_128_CCM_8_SHA256")) {
		SSL_CTX_free(all);
		return NULL;
	}
	return all;
}

/* By OpenSSL/BoringSSL name (what Envoy takes) or IANA name. */
static const SSL_CIPHER *tls_server_find_cipher(SSL_CTX *all, const char *name, size_t len)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(all);
	int i;

	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
		const char *std = SSL_CIPHER_standard_name(c);
		const char *nm = SSL_CIPHER_get_name(c);

		if ((strlen(nm) == len && memcmp(nm, name, len) == 0) ||
		    (std != NULL && strlen(std) == len && memcmp(std, name, len) == 0))
			return c;
	}
	return NULL;
}

static void tls_server_append(struct pool *p, const char **list, const char *name)
{
	*list = *list == NULL ? name : pool_printf(p, "%s:%s", *list, name);
}

/* One cipherSuites entry: a name, or a BoringSSL equal-preference group "[A|B]" (OpenSSL
 * has no such groups: its members are listed in order). */
static bool tls_server_cipher_entry(struct pool *p, struct diag *d, const struct node *at,
				    SSL_CTX *all, const char *entry, const char **l12,
				    const char **l13)
{
	const char *s = entry, *end = entry + strlen(entry), *bar;
	bool ok = true;

	if (end - s >= 2 && s[0] == '[' && end[-1] == ']') {
		s++;
		end--;
	}
	for (; s <= end; s = bar + 1) {
		const SSL_CIPHER *c;
		size_t len;

		bar = memchr(s, '|', (size_t)(end - s));
		if (bar == NULL)
			bar = end;
		len = (size_t)(bar - s);
		if ((c = tls_server_find_cipher(all, s, len)) == NULL) {
			diag_error(d, at, "unknown cipher suite \"%.*s\"", (int)len, s);
			ok = false;
			continue;
		}
		if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) { /* TLS 1.3 suite */
			tls_server_append(p, l13, SSL_CIPHER_get_name(c));
			continue;
		}
		if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(c))
			diag_warn(d, at,
				  "cipher suite %s is outside Mozilla's intermediate profile "
				  "(ECDHE with AES-GCM or ChaCha20-Poly1305)",
				  SSL_CIPHER_get_name(c));
		tls_server_append(p, l12, SSL_CIPHER_get_name(c));
	}
	return ok;
}

/* cipherSuites: TLS 1.2 names restrict the TLS 1.2 list; TLS 1.3 names (a meshgate
 * extension: Envoy cannot configure them) restrict the TLS 1.3 suites.  A kind that is not
 * named keeps its default. */
static bool tls_server_ciphers(struct pool *p, struct diag *d, SSL_CTX *ctx, const struct gw_tls *t)
{
	struct node *seq = node_get(t->node, "cipherSuites");
	const char *l12 = NULL, *l13 = NULL;
	char err[256];
	SSL_CTX *all;
	bool ok = true;
	size_t i;

	if (t->cipher_suites.n == 0)
		return true;
	if ((all = tls_server_cipher_catalog()) == NULL) {
		diag_error(d, t->node, "cannot list OpenSSL ciphers: %s",
			   tls_err_string(err, sizeof(err)));
		return false;
	}
	for (i = 0; i < t->cipher_suites.n; i++) {
		const struct node *at =
		    seq != NULL && seq->type == NODE_SEQ && i < seq->n ? seq->vals[i] : t->node;

		ok &= tls_server_cipher_entry(p, d, at, all, t->cipher_suites.v[i], &l12, &l13);
	}
	SSL_CTX_free(all);
	if (!ok)
		return false;
	if ((l12 != NULL && !SSL_CTX_set_cipher_list(ctx, l12)) ||
	    (l13 != NULL && !SSL_CTX_set_ciphersuites(ctx, l13))) {
		diag_error(d, seq != NULL ? seq : t->node, "cipherSuites refused by OpenSSL: %s",
			   tls_err_string(err, sizeof(err)));
		return false;
	}
	return true;
}

/* Certificates from serverCertificate/privateKey or credentialName(s); the trust files a
 * credential carries land in *trust. */
static bool tls_server_certs(struct pool *p, struct diag *d, const struct cfg_main *m, SSL_CTX *ctx,
			     const struct gw_tls *t, struct tls_server_ctx *s,
			     struct tls_cred *trust)
{
	unsigned types = 0;
	struct tls_cred c;
	bool ok = true;
	size_t i;

	memset(trust, 0, sizeof(*trust));
	if (t->mode == TLSM_ISTIO_MUTUAL) {
		struct node *at = m->mesh_identity.node != NULL ? m->mesh_identity.node : t->node;

		trust->ca = m->mesh_identity.ca_certificates;
		s->cert_path = m->mesh_identity.certificate;
		return tls_load_cert_key(ctx, d, at, m->mesh_identity.certificate,
					 m->mesh_identity.private_key, &s->not_after, &types);
	}
	if (t->credential_name != NULL && t->credential_name[0] != '\0') {
		struct node *at = tls_server_at(t, "credentialName");

		if (!tls_load_cred(p, d, at, m, t->credential_name, true, &c))
			return false;
		*trust = c;
		s->cert_path = c.cert;
		return tls_load_cert_key(ctx, d, at, c.cert, c.key, &s->not_after, &types);
	}
	if (t->credential_names.n > 0) {
		struct node *seq = node_get(t->node, "credentialNames");

		for (i = 0; i < t->credential_names.n; i++) {
			struct node *at = seq != NULL && seq->type == NODE_SEQ && i < seq->n
					      ? seq->vals[i]
					      : t->node;

			if (!tls_load_cred(p, d, at, m, t->credential_names.v[i], true, &c)) {
				ok = false;
				continue;
			}
			if (s->cert_path == NULL)
				s->cert_path = c.cert;
			if (trust->ca == NULL)
				*trust = c;
			ok &= tls_load_cert_key(ctx, d, at, c.cert, c.key, &s->not_after, &types);
		}
		return ok;
	}
	if (t->server_certificate == NULL || t->private_key == NULL) {
		diag_error(d, t->node,
			   "%s TLS requires serverCertificate and privateKey "
			   "(or credentialName)",
			   tls_server_mode_names[t->mode]);
		return false;
	}
	s->cert_path = tls_load_path(p, m, t->server_certificate);
	return tls_load_cert_key(ctx, d, tls_server_at(t, "serverCertificate"), s->cert_path,
				 tls_load_path(p, m, t->private_key), &s->not_after, &types);
}

/* Client certificates: the CA (caCertificates, else the credential's), the CRL, the verify
 * mode and the pins. */
static bool tls_server_client_auth(struct pool *p, struct diag *d, const struct cfg_main *m,
				   SSL_CTX *ctx, const struct gw_tls *t,
				   const struct tls_cred *trust)
{
	const char *ca = trust->ca, *crl = trust->crl;
	struct node *ca_at = tls_server_at(t, "credentialName");
	struct node *crl_at = ca_at;
	int mode = SSL_VERIFY_PEER;

	if (t->ca_certificates != NULL && t->ca_certificates[0] != '\0') {
		ca = tls_load_path(p, m, t->ca_certificates);
		ca_at = tls_server_at(t, "caCertificates");
	}
	if (t->ca_crl != NULL && t->ca_crl[0] != '\0') {
		crl = tls_load_path(p, m, t->ca_crl);
		crl_at = tls_server_at(t, "caCrl");
	}
	if (ca == NULL) {
		diag_error(d, t->node,
			   "%s TLS requires caCertificates (or ca.crt in the credential) to "
			   "verify client certificates",
			   tls_server_mode_names[t->mode]);
		return false;
	}
	if (!tls_load_ca(ctx, d, ca_at, ca, true))
		return false;
	if (crl != NULL && !tls_load_crl(ctx, d, crl_at, crl))
		return false;
	if (tls_verify_policy_new(ctx, d, "client", false, &t->subject_alt_names, &t->verify_spki,
				  node_get(t->node, "verifyCertificateSpki"), &t->verify_hash,
				  node_get(t->node, "verifyCertificateHash")) == NULL)
		return false;
	if (t->mode == TLSM_MUTUAL || t->mode == TLSM_ISTIO_MUTUAL)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, tls_verify_cb);
	return true;
}

/* Sessions resume only on the server that created them: the session id context is a
 * digest of what the server is (port, hosts) and of its client-certificate policy, so it
 * is stable across reloads and processes (fleet-shared ticket keys) but changes when the
 * policy does.  The bind address is left out: members of a fleet listen on addresses of
 * their own. */
static bool tls_server_sid_ctx(struct pool *p, SSL_CTX *ctx, const struct gw_server *srv)
{
	const struct gw_tls *t = &srv->tls;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *id;
	size_t i;

	id = pool_printf(p, "meshgate-server|%u|%d|%s|%s", srv->port, (int)t->mode,
			 t->ca_certificates ? t->ca_certificates : "",
			 t->credential_name ? t->credential_name : "");
	for (i = 0; i < srv->nhosts; i++)
		id = pool_printf(p, "%s|h:%s/%s", id, srv->hosts[i].ns ? srv->hosts[i].ns : "",
				 srv->hosts[i].host);
	for (i = 0; i < t->credential_names.n; i++)
		id = pool_printf(p, "%s|c:%s", id, t->credential_names.v[i]);
	for (i = 0; i < t->subject_alt_names.n; i++)
		id = pool_printf(p, "%s|s:%s", id, t->subject_alt_names.v[i]);
	for (i = 0; i < t->verify_spki.n; i++)
		id = pool_printf(p, "%s|k:%s", id, t->verify_spki.v[i]);
	for (i = 0; i < t->verify_hash.n; i++)
		id = pool_printf(p, "%s|x:%s", id, t->verify_hash.v[i]);
	if (!EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL))
		return false;
	if (mdlen > SSL_MAX_SID_CTX_LENGTH)
		mdlen = SSL_MAX_SID_CTX_LENGTH;
	return SSL_CTX_set_session_id_context(ctx, md, mdlen) == 1;
}

/* ALPN: h2 when offered (HTTP/2, h2down.c), else http/1.1 when offered; otherwise no
 * ALPN at all.  The server's preference decides, as in Envoy and HAProxy. */
static int tls_server_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h1[] = "http/1.1";
	const unsigned char *pick = NULL;
	unsigned int i = 0, n;

	(void)ssl;
	(void)arg;
	while (i < inlen) {
		n = in[i];
		if (n == 0 || n > inlen - i - 1)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			pick = in + i;
			break;
		}
		if (pick == NULL && n == sizeof(h1) - 1 && memcmp(in + i + 1, h1, n) == 0)
			pick = in + i;
		i += 1 + n;
	}
	if (pick == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	*out = pick + 1;
	*outlen = pick[0];
	return SSL_TLSEXT_ERR_OK;
}

int tls_server_ctx_setup_sessions(SSL_CTX *ctx)
{
	/* No server-side session cache: it is one locked table shared by every worker, and
	 * stateless tickets (TLS 1.2 and 1.3) resume without it. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* Process-wide ticket keys (tls_ticket.c): they outlive this context, so a reload
	 * keeps clients' tickets valid, and a fleet can share them. */
	if (tls_ticket_install(ctx) < 0)
		return -1;
	return SSL_CTX_set_num_tickets(ctx, TLS_SERVER_TICKETS) == 1 ? 0 : -1;
}

/* A warning when no certificate covers one of the server's hosts: clients would refuse it. */
static void tls_server_check_hosts(struct pool *p, struct diag *d, SSL_CTX *ctx,
				   const struct gw_server *srv)
{
	size_t i;
	int r;

	for (i = 0; i < srv->nhosts; i++) {
		const char *h = srv->hosts[i].host;
		bool covered = false;

		if (h == NULL || strcmp(h, "*") == 0)
			continue;
		/* A wildcard host is covered if a name it stands for is. */
		if (h[0] == '*')
			h = pool_printf(p, "meshgate-check%s", h + 1);
		for (r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST); r == 1 && !covered;
		     r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT)) {
			X509 *x = SSL_CTX_get0_certificate(ctx);

			covered = x != NULL && X509_check_host(x, h, 0, 0, NULL) == 1;
		}
		if (!covered)
			diag_warn(
			    d, srv->tls.node,
			    "the certificate does not cover host \"%s\": clients will refuse it",
			    srv->hosts[i].host);
	}
	ERR_clear_error();
}

struct tls_server_ctx *tls_server_ctx_new(struct pool *p, struct diag *d,
					  const struct gw_server *srv, const struct cfg_main *m)
{
	const struct gw_tls *t = &srv->tls;
	struct tls_server_ctx *s;
	struct tls_cred trust;
	char err[256];
	SSL_CTX *ctx;
	bool ok;

	if (tls_init() < 0) {
		diag_error(d, t->node, "cannot initialise OpenSSL: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	switch (t->mode) {
	case TLSM_SIMPLE:
	case TLSM_MUTUAL:
	case TLSM_OPTIONAL_MUTUAL:
		break;
	case TLSM_ISTIO_MUTUAL:
		/* the mesh-facing side: the appliance's workload identity, peers verified
		 * against the mesh root, as a sidecar does */
		if (m->mesh_identity.certificate == NULL) {
			diag_error(d, tls_server_at(t, "mode"),
				   "ISTIO_MUTUAL needs the appliance's mesh identity: set "
				   "meshIdentity {certificate, privateKey, caCertificates} in the "
				   "main config");
			return NULL;
		}
		break;
	case TLSM_PASSTHROUGH:
	case TLSM_AUTO_PASSTHROUGH:
	default:
		diag_error(d, tls_server_at(t, "mode"), "%s servers do not terminate TLS",
			   (unsigned)t->mode <
				   sizeof(tls_server_mode_names) / sizeof(tls_server_mode_names[0])
			       ? tls_server_mode_names[t->mode]
			       : "unknown");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		diag_error(d, t->node, "cannot create a TLS context: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	pool_on_free(p, tls_server_ctx_release, ctx);
	s = pool_alloc(p, sizeof(*s));
	s->ctx = ctx;
	s->mode = t->mode;
	s->server = srv;
	s->not_after = INT64_MAX;
	s->subject_alt_names = t->subject_alt_names;
	s->verify_spki = t->verify_spki;
	s->verify_hash = t->verify_hash;
	if (tls_ctx_defaults(ctx) < 0 || tls_server_ctx_setup_sessions(ctx) < 0 ||
	    !tls_server_sid_ctx(p, ctx, srv)) {
		diag_error(d, t->node, "cannot configure the TLS context: %s",
			   tls_err_string(err, sizeof(err)));
		return NULL;
	}
	/* tlsSessionResumption: false: every connection a full handshake (no tickets; the
	 * session cache is off anyway), what a handshake benchmark needs */
	if (m->tls_no_resumption) {
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	SSL_CTX_set_alpn_select_cb(ctx, tls_server_alpn, NULL);
	ok = tls_server_versions(ctx, d, t);
	ok &= tls_server_ciphers(p, d, ctx, t);
	ok &= tls_server_certs(p, d, m, ctx, t, s, &trust);
	if (t->mode == TLSM_SIMPLE) {
		if (t->subject_alt_names.n > 0 || t->verify_spki.n > 0 || t->verify_hash.n > 0)
			diag_warn(d, t->node,
				  "subjectAltNames and verifyCertificate* apply to client "
				  "certificates: ignored in SIMPLE mode");
	} else if (ok) {
		ok = tls_server_client_auth(p, d, m, ctx, t, &trust);
	}
	if (!ok)
		return NULL;
	tls_server_check_hosts(p, d, ctx, srv);
	return s;
}

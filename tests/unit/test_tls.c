/* TLS contexts: building them from Gateway/DestinationRule settings (with the exact
 * diagnostics), and real handshakes between an OpenSSL client and meshgate's server
 * contexts over in-memory BIO pairs (no network).
 *
 * The PKI is generated at start by tests/unit/tls-fixtures.sh into a temporary directory
 * (exit 77, skipped, without the openssl CLI).  `test_tls --bench [N [VARIANT]]` measures
 * the full handshake cost of a server context instead of testing (VARIANT 0: the server
 * context alone, 1: behind a one-entry SNI table, 2: a three-entry table; one round, for
 * profilers). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem(); configure's AC_USE_SYSTEM_EXTENSIONS defines it too */
#endif

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pool.h"
#include "tls.h"
#include "tls_ticket.h"
#include "config/diag.h"
#include "config/model.h"
#include "config/node.h"

static char fxdir[PATH_MAX];

struct fx {
	struct pool *p;
	struct diag d;
	struct cfg_main m;
};

static const char *fxp(struct fx *f, const char *name)
{
	return pool_printf(f->p, "%s/%s", fxdir, name);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = pool_new();
	diag_init(&f->d);
	f->m.dir = fxdir;
	f->m.credentials_dir = fxp(f, "creds");
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	diag_fini(&f->d);
	pool_free(f->p);
	free(f);
	ERR_clear_error();
	return 0;
}

static void fx_clear(struct fx *f)
{
	diag_fini(&f->d);
	diag_init(&f->d);
}

/* Some diagnostic contains a, and b when not NULL. */
static bool fx_has(struct fx *f, const char *a, const char *b)
{
	size_t i;

	for (i = 0; i < f->d.n; i++)
		if (strstr(f->d.v[i].text, a) != NULL &&
		    (b == NULL || strstr(f->d.v[i].text, b) != NULL))
			return true;
	diag_print(&f->d, stderr);
	return false;
}

static struct node *fx_yaml(struct fx *f, const char *yaml)
{
	struct node_doc **docs;
	size_t ndocs;

	assert_int_equal(node_load_buffer(f->p, &f->d, "t.yaml", yaml, strlen(yaml), &docs, &ndocs),
			 0);
	assert_int_equal(ndocs, 1);
	return docs[0]->root;
}

static void fx_list(struct fx *f, struct node *n, struct str_list *out)
{
	size_t i;

	if (n == NULL)
		return;
	assert_int_equal(n->type, NODE_SEQ);
	out->v = pool_calloc(f->p, n->n + 1, sizeof(*out->v));
	for (i = 0; i < n->n; i++)
		out->v[out->n++] = n->vals[i]->str;
}

static int fx_version(struct node *n)
{
	return n == NULL ? 0 : 10 + (n->str[strlen(n->str) - 1] - '0');
}

/* A gw_server from a YAML tls map (a stand-in for gateway.c, which has its own tests) and
 * a comma-separated host list. */
static struct gw_server *fx_server(struct fx *f, const char *tls_yaml, const char *hosts)
{
	static const char *const modes[] = {"PASSTHROUGH",      "SIMPLE",       "MUTUAL",
					    "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"};
	struct gw_server *srv = pool_alloc(f->p, sizeof(*srv));
	struct gw_tls *t = &srv->tls;
	struct node *n = fx_yaml(f, tls_yaml), *x;
	char *h, *save = NULL;
	size_t i;

	srv->port = 443;
	srv->protocol = GWP_HTTPS;
	srv->hosts = pool_calloc(f->p, 8, sizeof(*srv->hosts));
	for (h = strtok_r(pool_strdup(f->p, hosts), ",", &save); h != NULL;
	     h = strtok_r(NULL, ",", &save)) {
		srv->hosts[srv->nhosts].ns = "*";
		srv->hosts[srv->nhosts++].host = h;
	}
	t->given = true;
	t->node = n;
	if ((x = node_get(n, "mode")) != NULL)
		for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
			if (strcmp(x->str, modes[i]) == 0)
				t->mode = (enum tls_mode)i;
#define FX_STR(key, field)                                                                         \
	if ((x = node_get(n, key)) != NULL)                                                        \
		t->field = x->str;
	FX_STR("serverCertificate", server_certificate);
	FX_STR("privateKey", private_key);
	FX_STR("caCertificates", ca_certificates);
	FX_STR("caCrl", ca_crl);
	FX_STR("credentialName", credential_name);
#undef FX_STR
	fx_list(f, node_get(n, "credentialNames"), &t->credential_names);
	fx_list(f, node_get(n, "subjectAltNames"), &t->subject_alt_names);
	fx_list(f, node_get(n, "verifyCertificateSpki"), &t->verify_spki);
	fx_list(f, node_get(n, "verifyCertificateHash"), &t->verify_hash);
	fx_list(f, node_get(n, "cipherSuites"), &t->cipher_suites);
	t->min_version = fx_version(node_get(n, "minProtocolVersion"));
	t->max_version = fx_version(node_get(n, "maxProtocolVersion"));
	return srv;
}

static struct tls_server_ctx *fx_sctx(struct fx *f, const char *tls_yaml, const char *hosts)
{
	return tls_server_ctx_new(f->p, &f->d, fx_server(f, tls_yaml, hosts), &f->m);
}

/* A listener's SNI table: "host=ctx" pairs; default_i is the no-SNI entry or -1. */
static struct tls_sni_table *fx_table(struct fx *f, int default_i, size_t n, ...)
{
	struct tls_sni_table *t = pool_alloc(f->p, sizeof(*t));
	va_list ap;
	size_t i;

	t->v = pool_calloc(f->p, n, sizeof(*t->v));
	va_start(ap, n);
	for (i = 0; i < n; i++) {
		t->v[i].host = va_arg(ap, const char *);
		t->v[i].sctx = va_arg(ap, struct tls_server_ctx *);
		assert_non_null(t->v[i].sctx);
		t->v[i].user = (void *)(uintptr_t)(i + 1);
	}
	va_end(ap);
	t->n = n;
	if (default_i >= 0)
		t->no_sni = &t->v[default_i];
	assert_int_equal(tls_sni_table_init(f->p, t), 0);
	return t;
}

/* ---- handshakes over a BIO pair ---- */

struct hs {
	SSL *c, *s;
	bool ok;
};

/* Runs both sides until both finish or one fails (then lets the other read the alert). */
static bool hs_run(struct hs *h)
{
	BIO *bc, *bs;
	bool cdone = false, sdone = false;
	int i, r, fail = 0;

	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(h->c, bc, bc);
	SSL_set_bio(h->s, bs, bs);
	SSL_set_connect_state(h->c);
	SSL_set_accept_state(h->s);
	for (i = 0; i < 64 && !(cdone && sdone) && fail < 3; i++) {
		if (!cdone) {
			r = SSL_do_handshake(h->c);
			if (r == 1)
				cdone = true;
			else if (SSL_get_error(h->c, r) != SSL_ERROR_WANT_READ)
				fail++;
		}
		if (!sdone) {
			r = SSL_do_handshake(h->s);
			if (r == 1)
				sdone = true;
			else if (SSL_get_error(h->s, r) != SSL_ERROR_WANT_READ)
				fail++;
		}
	}
	h->ok = cdone && sdone && fail == 0;
	ERR_clear_error();
	return h->ok;
}

/* Moves a few bytes each way so post-handshake messages (TLS 1.3 tickets) are read. */
static void hs_exchange(struct hs *h)
{
	char buf[16];

	assert_int_equal(SSL_write(h->s, "ping", 4), 4);
	assert_int_equal(SSL_read(h->c, buf, sizeof(buf)), 4);
	assert_int_equal(SSL_write(h->c, "pong", 4), 4);
	assert_int_equal(SSL_read(h->s, buf, sizeof(buf)), 4);
}

/* A clean close first: OpenSSL marks the session of an SSL freed mid-connection as not
 * resumable. */
static void hs_free(struct hs *h)
{
	if (h->ok) {
		SSL_shutdown(h->c);
		SSL_shutdown(h->s);
	}
	SSL_free(h->c);
	SSL_free(h->s);
	h->c = h->s = NULL;
}

/* A plain OpenSSL client context trusting the test root, optionally with a client cert. */
static SSL_CTX *fx_client(struct fx *f, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_load_verify_file(ctx, fxp(f, "ca.crt")), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, fxp(f, cert)), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, fxp(f, key), SSL_FILETYPE_PEM),
				 1);
	}
	return ctx;
}

/* One handshake of cctx (SNI sni, may be NULL) against the table's front context. */
static bool fx_connect(struct hs *h, SSL_CTX *cctx, const struct tls_sni_table *t, const char *sni)
{
	h->c = SSL_new(cctx);
	h->s = SSL_new(t->front);
	assert_non_null(h->c);
	assert_non_null(h->s);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(h->c, sni), 1);
	return hs_run(h);
}

/* CN of the certificate the client was served. */
static const char *hs_served(struct hs *h, char *buf, size_t size)
{
	X509 *x = SSL_get0_peer_certificate(h->c);

	buf[0] = '\0';
	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)size);
	return buf;
}

static const char *hs_served_type(struct hs *h)
{
	X509 *x = SSL_get0_peer_certificate(h->c);
	EVP_PKEY *k = x != NULL ? X509_get0_pubkey(x) : NULL;

	return k == NULL ? "none" : EVP_PKEY_is_a(k, "RSA") ? "RSA" : "EC";
}

/* A handshake naming sni (NULL: none) succeeds, serves the certificate whose CN is cn, and
 * was selected by the table entry selected (NULL: not checked). */
static void fx_expect_served(SSL_CTX *cctx, const struct tls_sni_table *t, const char *sni,
			     const char *cn, const struct tls_sni_entry *selected)
{
	struct hs h = {0};
	char buf[128];

	assert_true(fx_connect(&h, cctx, t, sni));
	assert_string_equal(hs_served(&h, buf, sizeof(buf)), cn);
	if (selected != NULL)
		assert_ptr_equal(tls_selected(h.s), selected);
	hs_free(&h);
}

static X509 *fx_cert(struct fx *f, const char *name)
{
	FILE *fp = fopen(fxp(f, name), "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static const char *fx_hex(struct fx *f, const unsigned char *md, size_t n, bool colons_upper)
{
	char *s = pool_alloc(f->p, n * 3 + 1), *o = s;
	size_t i;

	for (i = 0; i < n; i++)
		o += sprintf(o, colons_upper ? (i ? ":%02X" : "%02X") : "%02x", md[i]);
	return s;
}

/* ---- context building ---- */

static void test_simple_ok(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s = fx_sctx(f,
					   "mode: SIMPLE\n"
					   "serverCertificate: a.crt\n"
					   "privateKey: a.key\n",
					   "a.example.com");

	assert_non_null(s);
	assert_int_equal(f->d.n, 0);
	assert_non_null(s->ctx);
	assert_int_equal(s->mode, TLSM_SIMPLE);
	assert_string_equal(s->cert_path, fxp(f, "a.crt"));
	assert_true(s->not_after > time(NULL) + 800 * 86400LL);
	assert_true(s->not_after < time(NULL) + 826 * 86400LL);
	assert_int_equal(SSL_CTX_get_min_proto_version(s->ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(s->ctx), TLS1_3_VERSION);
	assert_true(SSL_CTX_get_options(s->ctx) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_CTX_get_options(s->ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_false(SSL_CTX_get_options(s->ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_true(SSL_CTX_get_mode(s->ctx) & SSL_MODE_RELEASE_BUFFERS);
	assert_int_equal(SSL_CTX_get_verify_mode(s->ctx), SSL_VERIFY_NONE);
}

static void test_default_ciphers(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s =
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n", "*");
	STACK_OF(SSL_CIPHER) * sk;
	int i;

	assert_non_null(s);
	sk = SSL_CTX_get_ciphers(s->ctx);
	assert_int_equal(sk_SSL_CIPHER_num(sk), 9); /* 3 TLS 1.3 + 6 TLS 1.2 */
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);

		assert_true(SSL_CIPHER_is_aead(c));
		assert_true(SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe ||
			    SSL_CIPHER_get_kx_nid(c) == NID_kx_any);
	}
}

static void test_missing_file(void **state)
{
	struct fx *f = *state;

	assert_null(fx_sctx(f,
			    "mode: SIMPLE\n"
			    "serverCertificate: nope.crt\n"
			    "privateKey: a.key\n",
			    "a.example.com"));
	assert_int_equal(f->d.nerrors, 1);
	assert_true(fx_has(f, "t.yaml:2:20: serverCertificate: cannot read certificate ",
			   "/nope.crt: No such file or directory"));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: nope.key\n",
			    "a.example.com"));
	assert_true(fx_has(f, "cannot read private key ", "/nope.key: No such file"));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.key\nprivateKey: a.key\n", "*"));
	assert_true(fx_has(f, "no PEM certificate in ", "/a.key"));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.crt\n", "*"));
	assert_true(fx_has(f, "no PEM private key in ", "/a.crt"));
}

static void test_key_mismatch(void **state)
{
	struct fx *f = *state;

	assert_null(fx_sctx(f,
			    "mode: SIMPLE\n"
			    "serverCertificate: a.crt\n"
			    "privateKey: wild.key\n",
			    "a.example.com"));
	assert_int_equal(f->d.nerrors, 1);
	assert_true(fx_has(f, "private key ", "/wild.key does not match certificate "));
}

static void test_expired(void **state)
{
	struct fx *f = *state;

	assert_null(
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: expired.crt\nprivateKey: expired.key\n",
		    "expired.example.com"));
	assert_int_equal(f->d.nerrors, 1);
	assert_true(fx_has(f, "serverCertificate: certificate in ",
			   "/expired.crt expired on 2020-02-01 00:00:00 UTC"));
}

static void test_expiring(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s =
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: soon.crt\nprivateKey: soon.key\n",
		    "soon.example.com");

	assert_non_null(s);
	assert_int_equal(f->d.nerrors, 0);
	assert_int_equal(f->d.nwarnings, 1);
	assert_true(fx_has(f, "warning: serverCertificate: certificate in ",
			   "/soon.crt expires in 3 days, on "));
	assert_true(s->not_after - time(NULL) <= 3 * 86400);
}

static void test_chain_file(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s =
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: chain.crt\nprivateKey: chain.key\n",
		    "chain.example.com");
	STACK_OF(X509) *chain = NULL;

	assert_non_null(s);
	assert_int_equal(f->d.n, 0);
	assert_int_equal(SSL_CTX_get0_chain_certs(s->ctx, &chain), 1);
	assert_int_equal(sk_X509_num(chain), 1);
}

static void test_ciphers(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s;

	assert_null(fx_sctx(f,
			    "mode: SIMPLE\n"
			    "serverCertificate: a.crt\n"
			    "privateKey: a.key\n"
			    "cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, FOO-BAR]\n",
			    "a.example.com"));
	assert_int_equal(f->d.nerrors, 1);
	assert_true(
	    fx_has(f, "t.yaml:4:47: cipherSuites[1]: unknown cipher suite \"FOO-BAR\"", NULL));
	fx_clear(f);
	s = fx_sctx(
	    f,
	    "mode: SIMPLE\n"
	    "serverCertificate: a.crt\n"
	    "privateKey: a.key\n"
	    "cipherSuites: ['[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]',"
	    " ECDHE-ECDSA-AES128-SHA, TLS_AES_256_GCM_SHA384,"
	    " TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n",
	    "a.example.com");
	assert_non_null(s);
	assert_int_equal(f->d.nerrors, 0);
	assert_int_equal(f->d.nwarnings, 1);
	assert_true(fx_has(f,
			   "warning: cipherSuites[1]: cipher suite ECDHE-ECDSA-AES128-SHA is "
			   "outside Mozilla's intermediate profile",
			   NULL));
	/* TLS 1.3: only the named suite; TLS 1.2: the four named, in order. */
	assert_int_equal(sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(s->ctx)), 5);
	assert_string_equal(
	    SSL_CIPHER_get_name(sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(s->ctx), 0)),
	    "TLS_AES_256_GCM_SHA384");
	assert_string_equal(
	    SSL_CIPHER_get_name(sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(s->ctx), 4)),
	    "ECDHE-RSA-AES256-GCM-SHA384");
}

static void test_versions(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s;

	s = fx_sctx(f,
		    "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n"
		    "minProtocolVersion: TLSV1_3\n",
		    "a.example.com");
	assert_non_null(s);
	assert_int_equal(SSL_CTX_get_min_proto_version(s->ctx), TLS1_3_VERSION);
	s = fx_sctx(f,
		    "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n"
		    "minProtocolVersion: TLSV1_0\n",
		    "a.example.com");
	assert_non_null(s);
	assert_int_equal(SSL_CTX_get_min_proto_version(s->ctx), TLS1_VERSION);
	assert_true(fx_has(f,
			   "warning: minProtocolVersion: TLSV1_0 is below Mozilla's "
			   "intermediate profile",
			   NULL));
	fx_clear(f);
	assert_null(fx_sctx(f,
			    "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n"
			    "maxProtocolVersion: TLSV1_1\n",
			    "a.example.com"));
	assert_true(fx_has(f, "maxProtocolVersion TLSV1_1 is below the default minimum", NULL));
}

static void test_mutual_needs_ca(void **state)
{
	struct fx *f = *state;

	assert_null(fx_sctx(f, "mode: MUTUAL\nserverCertificate: a.crt\nprivateKey: a.key\n",
			    "a.example.com"));
	assert_int_equal(f->d.nerrors, 1);
	assert_true(
	    fx_has(f, "MUTUAL TLS requires caCertificates (or ca.crt in the credential)", NULL));
	fx_clear(f);
	/* The credential's own ca.crt, or its NAME-cacert companion, is enough. */
	assert_non_null(fx_sctx(f, "mode: MUTUAL\ncredentialName: a-cred\n", "a.example.com"));
	assert_non_null(
	    fx_sctx(f, "mode: OPTIONAL_MUTUAL\ncredentialName: split\n", "a.example.com"));
	assert_int_equal(f->d.n, 0);
	assert_null(fx_sctx(f, "mode: MUTUAL\ncredentialName: dual-ec\n", "dual.example.com"));
	assert_true(fx_has(f, "requires caCertificates", NULL));
}

static void test_credentials(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s;

	s = fx_sctx(f, "mode: SIMPLE\ncredentialName: a-cred\n", "a.example.com");
	assert_non_null(s);
	assert_string_equal(s->cert_path, fxp(f, "creds/a-cred/tls.crt"));
	s = fx_sctx(f, "mode: SIMPLE\ncredentialName: k8s-names\n", "a.example.com");
	assert_non_null(s);
	assert_string_equal(s->cert_path, fxp(f, "creds/k8s-names/cert"));
	assert_int_equal(f->d.n, 0);

	assert_null(fx_sctx(f, "mode: SIMPLE\ncredentialName: nope\n", "a.example.com"));
	assert_true(
	    fx_has(f, "t.yaml:2:17: credentialName: credential \"nope\": cannot read directory ",
		   "/creds/nope: No such file or directory"));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: SIMPLE\ncredentialName: ../creds\n", "a.example.com"));
	assert_true(fx_has(f, "invalid credentialName \"../creds\"", NULL));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: SIMPLE\ncredentialName: split-cacert\n", "a.example.com"));
	assert_true(fx_has(f, "credential \"split-cacert\": no tls.crt (or cert) in ", NULL));
	fx_clear(f);
	f->m.credentials_dir = NULL;
	assert_null(fx_sctx(f, "mode: SIMPLE\ncredentialName: a-cred\n", "a.example.com"));
	assert_true(
	    fx_has(f, "credentialName \"a-cred\" needs credentialsDir in the main config", NULL));
}

static void test_two_of_a_kind(void **state)
{
	struct fx *f = *state;

	assert_null(fx_sctx(f, "mode: SIMPLE\ncredentialNames: [dual-rsa, dual-rsa]\n",
			    "dual.example.com"));
	assert_true(fx_has(f, "credentialNames[1]: certificate ",
			   "another RSA certificate is already configured"));
}

static void test_bad_pins_and_modes(void **state)
{
	struct fx *f = *state;

	assert_null(fx_sctx(f,
			    "mode: MUTUAL\ncredentialName: a-cred\n"
			    "verifyCertificateSpki: [abc]\n"
			    "verifyCertificateHash: ['00:11', zz]\n",
			    "a.example.com"));
	assert_int_equal(f->d.nerrors, 3);
	assert_true(
	    fx_has(f, "verifyCertificateSpki[0]: \"abc\" is not a base64-encoded SHA-256", NULL));
	assert_true(
	    fx_has(f, "verifyCertificateHash[1]: \"zz\" is not a hex SHA-256 digest", NULL));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: ISTIO_MUTUAL\n", "a.example.com"));
	assert_true(fx_has(f, "mode: ISTIO_MUTUAL needs the appliance's mesh identity", NULL));
	fx_clear(f);
	assert_null(fx_sctx(f, "mode: PASSTHROUGH\n", "a.example.com"));
	assert_true(fx_has(f, "PASSTHROUGH servers do not terminate TLS", NULL));
}

static void test_host_coverage(void **state)
{
	struct fx *f = *state;

	assert_non_null(fx_sctx(f,
				"mode: SIMPLE\nserverCertificate: wild.crt\nprivateKey: wild.key\n",
				"*.wild.example.com,x.wild.example.com,*"));
	assert_int_equal(f->d.n, 0);
	assert_non_null(fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n",
				"a.example.com,b.example.com"));
	assert_int_equal(f->d.nwarnings, 1);
	assert_true(
	    fx_has(f, "warning: the certificate does not cover host \"b.example.com\"", NULL));
}

/* ---- SNI ---- */

static struct tls_sni_table *fx_sni_table(struct fx *f, bool with_default)
{
	struct tls_server_ctx *a = fx_sctx(
	    f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n", "a.example.com");
	struct tls_server_ctx *w =
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: wild.crt\nprivateKey: wild.key\n",
		    "*.wild.example.com");
	struct tls_server_ctx *d = fx_sctx(
	    f, "mode: SIMPLE\nserverCertificate: default.crt\nprivateKey: default.key\n", "*");

	if (with_default)
		return fx_table(f, 2, 3, "a.example.com", a, "*.wild.example.com", w, "*", d);
	return fx_table(f, -1, 2, "a.example.com", a, "*.wild.example.com", w);
}

static void test_sni_lookup(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);

#define LK(s) tls_sni_lookup(t, s, strlen(s))
	assert_ptr_equal(LK("a.example.com"), &t->v[0]);
	assert_ptr_equal(LK("A.Example.COM"), &t->v[0]);
	assert_ptr_equal(LK("a.example.com."), &t->v[0]);
	assert_ptr_equal(LK("x.wild.example.com"), &t->v[1]);
	assert_ptr_equal(LK("deep.x.wild.example.com"), &t->v[1]);
	assert_ptr_equal(LK("wild.example.com"), &t->v[2]);
	assert_ptr_equal(LK(".wild.example.com"), &t->v[2]);
	assert_ptr_equal(LK("b.example.com"), &t->v[2]);
	assert_ptr_equal(tls_sni_lookup(t, NULL, 0), &t->v[2]);
	assert_ptr_equal(tls_sni_lookup(t, "a.example.com", 5), &t->v[2]);
#undef LK
	t = fx_sni_table(f, false);
	assert_null(tls_sni_lookup(t, "b.example.com", 13));
	assert_null(tls_sni_lookup(t, NULL, 0));
}

/* Longest wildcard wins, exact beats wildcard, first of duplicates wins. */
static void test_sni_precedence(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *s =
	    fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n", "*");
	struct tls_sni_table *t = fx_table(f, -1, 5, "*.example.com", s, "*.b.example.com", s,
					   "x.b.example.com", s, "*.example.com", s, "*", s);

	assert_ptr_equal(tls_sni_lookup(t, "y.b.example.com", 15), &t->v[1]);
	assert_ptr_equal(tls_sni_lookup(t, "x.b.example.com", 15), &t->v[2]);
	assert_ptr_equal(tls_sni_lookup(t, "z.example.com", 13), &t->v[0]);
	assert_ptr_equal(tls_sni_lookup(t, "b.example.com", 13), &t->v[0]);
	assert_ptr_equal(tls_sni_lookup(t, "example.com", 11), &t->v[4]);
}

static void test_sni_handshakes(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	SSL_CTX *cctx = fx_client(f, NULL, NULL);
	struct hs h = {0};
	char cn[128];

	assert_true(fx_connect(&h, cctx, t, "a.example.com"));
	assert_string_equal(hs_served(&h, cn, sizeof(cn)), "a.example.com");
	assert_ptr_equal(tls_selected(h.s), &t->v[0]);
	assert_ptr_equal(tls_selected(h.s)->user, (void *)1);
	hs_free(&h);
	fx_expect_served(cctx, t, "x.wild.example.com", "*.wild.example.com", &t->v[1]);
	fx_expect_served(cctx, t, "other.example.org", "default.example.com", &t->v[2]);
	fx_expect_served(cctx, t, NULL, "default.example.com", &t->v[2]);
	SSL_CTX_free(cctx);
}

static void test_sni_unknown(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, false);
	SSL_CTX *cctx = fx_client(f, NULL, NULL);
	struct hs h = {0};

	assert_false(fx_connect(&h, cctx, t, "nope.example.com"));
	assert_string_equal(tls_failure_reason(h.s), "no certificate for SNI nope.example.com");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_NO_SNI_MATCH);
	assert_null(tls_selected(h.s));
	hs_free(&h);
	assert_false(fx_connect(&h, cctx, t, NULL));
	assert_string_equal(tls_failure_reason(h.s),
			    "client sent no SNI and no default server is configured");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_NO_SNI_MATCH);
	hs_free(&h);
	/* A successful handshake has no reason recorded. */
	assert_true(fx_connect(&h, cctx, t, "a.example.com"));
	assert_string_equal(tls_failure_reason(h.s), "handshake failed");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_OTHER);
	hs_free(&h);
	SSL_CTX_free(cctx);
}

/* main config tlsDefaultHost: a client without SNI is served as if it named the host. */
static void test_sni_default_host(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, false);
	SSL_CTX *cctx = fx_client(f, NULL, NULL);

	assert_false(tls_sni_table_default(t, "nobody.example.org"));
	assert_null(t->no_sni);
	assert_true(tls_sni_table_default(t, "x.wild.example.com"));
	assert_ptr_equal(t->no_sni, &t->v[1]);
	fx_expect_served(cctx, t, NULL, "*.wild.example.com", &t->v[1]);
	assert_true(tls_sni_table_default(t, "A.example.com"));
	assert_ptr_equal(t->no_sni, &t->v[0]);
	fx_expect_served(cctx, t, NULL, "a.example.com", NULL);
	SSL_CTX_free(cctx);
}

/* The ClientHello of a client asking for sni, as bytes. */
static size_t fx_client_hello(SSL_CTX *cctx, const char *sni, unsigned char *buf, size_t size)
{
	SSL *c = SSL_new(cctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	size_t n;

	SSL_set_bio(c, rb, wb);
	SSL_set_tlsext_host_name(c, sni);
	assert_int_equal(SSL_connect(c), -1);
	n = (size_t)BIO_read(wb, buf, (int)size);
	SSL_free(c);
	return n;
}

/* Raw ClientHello bytes into a server SSL: does the handshake fail, and why. */
static const char *fx_feed(struct tls_sni_table *t, const unsigned char *hello, size_t n, char *why,
			   size_t size)
{
	SSL *s = SSL_new(t->front);
	BIO *rb = BIO_new_mem_buf(hello, (int)n), *wb = BIO_new(BIO_s_mem());

	SSL_set_bio(s, rb, wb);
	assert_true(SSL_accept(s) <= 0);
	snprintf(why, size, "%s", tls_failure_reason(s));
	SSL_free(s);
	ERR_clear_error();
	return why;
}

static void test_sni_malformed(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	SSL_CTX *cctx = fx_client(f, NULL, NULL);
	unsigned char hello[4096], bad[4096];
	unsigned char *name;
	char why[256];
	size_t n = fx_client_hello(cctx, "a.example.com", hello, sizeof(hello));

	assert_true(n > 100);
	name = memmem(hello, n, "a.example.com", 13);
	assert_non_null(name);
	/* list length one more than the extension holds */
	memcpy(bad, hello, n);
	bad[name - hello - 4]++;
	assert_string_equal(fx_feed(t, bad, n, why, sizeof(why)),
			    "malformed server_name extension");
	/* a name type that is not host_name */
	memcpy(bad, hello, n);
	bad[name - hello - 3] = 1;
	assert_string_equal(fx_feed(t, bad, n, why, sizeof(why)),
			    "malformed server_name extension");
	/* bytes that are not a host name */
	memcpy(bad, hello, n);
	bad[name - hello + 1] = ' ';
	assert_string_equal(fx_feed(t, bad, n, why, sizeof(why)), "invalid SNI host name");
	/* the unmodified hello gets past SNI (and waits for more) */
	SSL_CTX_free(cctx);
}

/* A HelloRetryRequest (no key share for a group the server takes) keeps the selection. */
static void test_sni_hello_retry(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	SSL_CTX *cctx = fx_client(f, NULL, NULL);
	struct hs h = {0};
	char cn[128];

	assert_int_equal(SSL_CTX_set1_groups_list(cctx, "secp521r1:prime256v1"), 1);
	assert_true(fx_connect(&h, cctx, t, "x.wild.example.com"));
	assert_string_equal(hs_served(&h, cn, sizeof(cn)), "*.wild.example.com");
	assert_ptr_equal(tls_selected(h.s), &t->v[1]);
	assert_int_equal(SSL_get_negotiated_group(h.s), NID_X9_62_prime256v1);
	hs_free(&h);
	SSL_CTX_free(cctx);
}

/* ---- client certificates ---- */

static struct tls_sni_table *fx_one_host(struct fx *f, const char *tls_yaml, const char *host)
{
	struct tls_server_ctx *s = fx_sctx(f, tls_yaml, host);

	assert_non_null(s);
	return fx_table(f, 0, 1, host, s);
}

static struct tls_sni_table *fx_one(struct fx *f, const char *tls_yaml)
{
	return fx_one_host(f, tls_yaml, "a.example.com");
}

static void test_mutual(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: MUTUAL\n"
					    "serverCertificate: a.crt\n"
					    "privateKey: a.key\n"
					    "caCertificates: ca.crt\n");
	SSL_CTX *none = fx_client(f, NULL, NULL);
	SSL_CTX *wrong = fx_client(f, "wrong-client.crt", "wrong-client.key");
	SSL_CTX *good = fx_client(f, "client.crt", "client.key");
	struct hs h = {0};

	/* TLS 1.3 clients finish before the server has seen their certificate: the server
	 * side is what decides. */
	fx_connect(&h, none, t, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s),
			    "client certificate required (alert certificate required)");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_NO_CLIENT_CERT);
	hs_free(&h);
	fx_connect(&h, wrong, t, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s), "client certificate verify failed: unable to "
						     "get local issuer certificate (depth 0)");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_CLIENT_CERT_UNVERIFIED);
	hs_free(&h);
	assert_true(fx_connect(&h, good, t, "a.example.com"));
	assert_int_equal(SSL_get_verify_result(h.s), X509_V_OK);
	hs_free(&h);
	/* TLS 1.2 too */
	SSL_CTX_set_max_proto_version(none, TLS1_2_VERSION);
	fx_connect(&h, none, t, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s),
			    "client certificate required (alert handshake failure)");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_NO_CLIENT_CERT);
	hs_free(&h);
	SSL_CTX_free(none);
	SSL_CTX_free(wrong);
	SSL_CTX_free(good);
}

static void test_optional_mutual(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: OPTIONAL_MUTUAL\n"
					    "serverCertificate: a.crt\n"
					    "privateKey: a.key\n"
					    "caCertificates: ca.crt\n");
	SSL_CTX *none = fx_client(f, NULL, NULL);
	SSL_CTX *wrong = fx_client(f, "wrong-client.crt", "wrong-client.key");
	SSL_CTX *good = fx_client(f, "client.crt", "client.key");
	struct hs h = {0};
	char xfcc[512];

	assert_true(fx_connect(&h, none, t, "a.example.com"));
	assert_null(SSL_get0_peer_certificate(h.s));
	assert_int_equal(tls_xfcc(h.s, xfcc, sizeof(xfcc)), -1);
	hs_free(&h);
	assert_true(fx_connect(&h, good, t, "a.example.com"));
	assert_non_null(SSL_get0_peer_certificate(h.s));
	assert_true(tls_xfcc(h.s, xfcc, sizeof(xfcc)) > 0);
	hs_free(&h);
	/* presented, hence verified */
	fx_connect(&h, wrong, t, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s), "client certificate verify failed: unable to "
						     "get local issuer certificate (depth 0)");
	hs_free(&h);
	SSL_CTX_free(none);
	SSL_CTX_free(wrong);
	SSL_CTX_free(good);
}

static const char *fx_mutual_with(struct fx *f, const char *extra, char *why, size_t size)
{
	const char *yaml = pool_printf(f->p,
				       "mode: MUTUAL\nserverCertificate: a.crt\nprivateKey: a.key\n"
				       "caCertificates: ca.crt\n%s",
				       extra);
	struct tls_sni_table *t = fx_one(f, yaml);
	SSL_CTX *good = fx_client(f, "client.crt", "client.key");
	struct hs h = {0};

	if (fx_connect(&h, good, t, "a.example.com"))
		snprintf(why, size, "ok");
	else
		snprintf(why, size, "%s%s", tls_failure_reason(h.s),
			 tls_failure_kind(h.s) == TLS_FAIL_SAN_MISMATCH ? " [san_mismatch]" : "");
	hs_free(&h);
	SSL_CTX_free(good);
	return why;
}

static void test_pins(void **state)
{
	struct fx *f = *state;
	X509 *x = fx_cert(f, "client.crt");
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen;
	char b64[64], why[256];
	int len;

	assert_string_equal(fx_mutual_with(f,
					   "subjectAltNames: [spiffe://cluster.local/ns/x/sa/y]\n",
					   why, sizeof(why)),
			    "client certificate SAN mismatch [san_mismatch]");
	assert_string_equal(
	    fx_mutual_with(f, "subjectAltNames: [x, spiffe://cluster.local/ns/default/sa/client]\n",
			   why, sizeof(why)),
	    "ok");
	assert_string_equal(
	    fx_mutual_with(f, "subjectAltNames: [CLIENT.example.com]\n", why, sizeof(why)), "ok");
	/* SPKI */
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
	assert_string_equal(
	    fx_mutual_with(
		f, "verifyCertificateSpki: [47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=]\n", why,
		sizeof(why)),
	    "client certificate SPKI pin mismatch [san_mismatch]");
	assert_string_equal(
	    fx_mutual_with(f, pool_printf(f->p, "verifyCertificateSpki: ['%s']\n", b64), why,
			   sizeof(why)),
	    "ok");
	/* hash, colons and case optional */
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdlen), 1);
	assert_string_equal(
	    fx_mutual_with(f, pool_printf(f->p, "verifyCertificateHash: ['%064d']\n", 0), why,
			   sizeof(why)),
	    "client certificate hash pin mismatch [san_mismatch]");
	assert_string_equal(fx_mutual_with(f,
					   pool_printf(f->p, "verifyCertificateHash: ['%s']\n",
						       fx_hex(f, md, mdlen, true)),
					   why, sizeof(why)),
			    "ok");
	assert_string_equal(fx_mutual_with(f,
					   pool_printf(f->p, "verifyCertificateHash: ['%s']\n",
						       fx_hex(f, md, mdlen, false)),
					   why, sizeof(why)),
			    "ok");
	/* either pin kind matching is enough (Envoy) */
	assert_string_equal(fx_mutual_with(f,
					   pool_printf(f->p,
						       "verifyCertificateHash: ['%064d']\n"
						       "verifyCertificateSpki: ['%s']\n",
						       0, b64),
					   why, sizeof(why)),
			    "ok");
	assert_string_equal(
	    fx_mutual_with(
		f,
		pool_printf(
		    f->p,
		    "verifyCertificateHash: ['%064d']\n"
		    "verifyCertificateSpki: [47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=]\n",
		    0),
		why, sizeof(why)),
	    "client certificate SPKI/hash pin mismatch [san_mismatch]");
	X509_free(x);
}

static void test_crl(void **state)
{
	struct fx *f = *state;
	const char *yaml = "mode: MUTUAL\nserverCertificate: a.crt\nprivateKey: a.key\n"
			   "caCertificates: ca.crt\ncaCrl: ca.crl\n";
	struct tls_sni_table *t = fx_one(f, yaml);
	struct tls_sni_table *tc = fx_one(f, "mode: MUTUAL\ncredentialName: crl-cred\n");
	SSL_CTX *revoked = fx_client(f, "revoked.crt", "revoked.key");
	SSL_CTX *good = fx_client(f, "client.crt", "client.key");
	struct hs h = {0};

	assert_int_equal(f->d.n, 0);
	fx_connect(&h, revoked, t, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s),
			    "client certificate verify failed: certificate revoked (depth 0)");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_CLIENT_CERT_UNVERIFIED);
	hs_free(&h);
	fx_connect(&h, revoked, tc, "a.example.com");
	assert_false(h.ok);
	assert_string_equal(tls_failure_reason(h.s),
			    "client certificate verify failed: certificate revoked (depth 0)");
	hs_free(&h);
	assert_true(fx_connect(&h, good, t, "a.example.com"));
	hs_free(&h);
	SSL_CTX_free(revoked);
	SSL_CTX_free(good);
}

/* ---- versions, ciphers, certificate choice, ALPN ---- */

static void test_tls13_only(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: SIMPLE\nserverCertificate: a.crt\n"
					    "privateKey: a.key\nminProtocolVersion: TLSV1_3\n");
	SSL_CTX *c12 = fx_client(f, NULL, NULL);
	struct hs h = {0};

	SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION);
	assert_false(fx_connect(&h, c12, t, "a.example.com"));
	assert_non_null(strstr(tls_failure_reason(h.s), "protocol version mismatch"));
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_PROTOCOL);
	hs_free(&h);
	SSL_CTX_set_max_proto_version(c12, TLS1_3_VERSION);
	assert_true(fx_connect(&h, c12, t, "a.example.com"));
	assert_int_equal(SSL_version(h.s), TLS1_3_VERSION);
	hs_free(&h);
	SSL_CTX_free(c12);
}

/* TLSV1_0 is accepted (with a warning) and really served when asked for. */
static void test_tls10_allowed(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: SIMPLE\nserverCertificate: a.crt\n"
					    "privateKey: a.key\nminProtocolVersion: TLSV1_0\n"
					    "cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, "
					    "ECDHE-ECDSA-AES128-SHA]\n");
	SSL_CTX *c = fx_client(f, NULL, NULL);
	struct hs h = {0};

	SSL_CTX_set_security_level(c, 0);
	SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(c, TLS1_VERSION);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"), 1);
	assert_true(fx_connect(&h, c, t, "a.example.com"));
	assert_int_equal(SSL_version(h.s), TLS1_VERSION);
	hs_free(&h);
	SSL_CTX_free(c);
}

/* Per-server cipher lists survive the SNI switch. */
static void test_ciphers_follow_sni(void **state)
{
	struct fx *f = *state;
	struct tls_server_ctx *a =
	    fx_sctx(f,
		    "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n"
		    "maxProtocolVersion: TLSV1_2\n"
		    "cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]\n",
		    "a.example.com");
	struct tls_server_ctx *d = fx_sctx(
	    f, "mode: SIMPLE\nserverCertificate: default.crt\nprivateKey: default.key\n", "*");
	struct tls_sni_table *t = fx_table(f, 1, 2, "a.example.com", a, "*", d);
	SSL_CTX *c = fx_client(f, NULL, NULL);
	struct hs h = {0};

	assert_int_equal(SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-GCM-SHA256"), 1);
	assert_false(fx_connect(&h, c, t, "a.example.com"));
	assert_string_equal(tls_failure_reason(h.s), "no shared cipher (alert handshake failure)");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_CIPHER);
	hs_free(&h);
	/* the default server takes it, over TLS 1.3 */
	assert_true(fx_connect(&h, c, t, "b.example.com"));
	hs_free(&h);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES256-GCM-SHA384"), 1);
	assert_true(fx_connect(&h, c, t, "a.example.com"));
	assert_int_equal(SSL_version(h.s), TLS1_2_VERSION);
	assert_string_equal(SSL_get_cipher_name(h.s), "ECDHE-ECDSA-AES256-GCM-SHA384");
	hs_free(&h);
	SSL_CTX_free(c);
}

static void test_rsa_and_ecdsa(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one_host(
	    f, "mode: SIMPLE\ncredentialNames: [dual-rsa, dual-ec]\n", "dual.example.com");
	SSL_CTX *c = fx_client(f, NULL, NULL);
	struct hs h = {0};

	assert_int_equal(f->d.n, 0);
	assert_true(fx_connect(&h, c, t, "dual.example.com"));
	assert_string_equal(hs_served_type(&h), "EC");
	hs_free(&h);
	/* TLS 1.3 client that only verifies RSA signatures */
	assert_int_equal(SSL_CTX_set1_sigalgs_list(c, "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"),
			 1);
	assert_true(fx_connect(&h, c, t, "dual.example.com"));
	assert_string_equal(hs_served_type(&h), "RSA");
	hs_free(&h);
	SSL_CTX_free(c);
	/* TLS 1.2 client with RSA key exchange ciphers only */
	c = fx_client(f, NULL, NULL);
	SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "ECDHE-RSA-AES128-GCM-SHA256"), 1);
	assert_true(fx_connect(&h, c, t, "dual.example.com"));
	assert_string_equal(hs_served_type(&h), "RSA");
	hs_free(&h);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-GCM-SHA256"), 1);
	assert_true(fx_connect(&h, c, t, "dual.example.com"));
	assert_string_equal(hs_served_type(&h), "EC");
	hs_free(&h);
	SSL_CTX_free(c);
}

static void test_alpn(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t =
	    fx_one(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n");
	SSL_CTX *c = fx_client(f, NULL, NULL);
	const unsigned char *sel;
	unsigned int len;
	struct hs h = {0};

	/* h2 when offered, in any place (the server's preference) */
	assert_int_equal(
	    SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x08http/1.1\x02h2", 12), 0);
	assert_true(fx_connect(&h, c, t, "a.example.com"));
	SSL_get0_alpn_selected(h.s, &sel, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(sel, "h2", 2);
	hs_free(&h);
	assert_int_equal(SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x08http/1.1", 9), 0);
	assert_true(fx_connect(&h, c, t, "a.example.com"));
	SSL_get0_alpn_selected(h.s, &sel, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	hs_free(&h);
	/* nothing meshgate speaks: no ALPN, the handshake goes on */
	assert_int_equal(SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x06spdy/3", 7), 0);
	assert_true(fx_connect(&h, c, t, "a.example.com"));
	SSL_get0_alpn_selected(h.s, &sel, &len);
	assert_int_equal(len, 0);
	hs_free(&h);
	SSL_CTX_free(c);
}

/* ---- x-forwarded-client-cert ---- */

static void test_xfcc(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: MUTUAL\ncredentialName: a-cred\n");
	SSL_CTX *good = fx_client(f, "client.crt", "client.key");
	X509 *x = fx_cert(f, "client.crt");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	struct hs h = {0};
	const char *want;
	char out[512];
	int n;

	assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdlen), 1);
	want = pool_printf(f->p,
			   "Hash=%s;Subject=\"CN=client,O=meshgate \\\"test\\\"\";"
			   "URI=spiffe://cluster.local/ns/default/sa/client;DNS=client.example.com",
			   fx_hex(f, md, mdlen, false));
	assert_true(fx_connect(&h, good, t, "a.example.com"));
	n = tls_xfcc(h.s, out, sizeof(out));
	assert_string_equal(out, want);
	assert_int_equal(n, (int)strlen(want));
	/* too small: -1 and an empty string, never a truncated value */
	assert_int_equal(tls_xfcc(h.s, out, strlen(want)), -1);
	assert_string_equal(out, "");
	assert_int_equal(tls_xfcc(h.s, out, strlen(want) + 1), (int)strlen(want));
	/* the client side has no client certificate to describe... but a server one */
	assert_true(tls_xfcc(h.c, out, sizeof(out)) > 0);
	assert_non_null(
	    strstr(out, ";Subject=\"CN=a.example.com,O=meshgate test\";DNS=a.example.com"));
	hs_free(&h);
	X509_free(x);
	SSL_CTX_free(good);
}

/* ---- upstream origination ---- */

static struct tls_client_ctx *fx_cctx(struct fx *f, const char *yaml)
{
	return tls_client_ctx_new(f->p, &f->d, fx_yaml(f, yaml), &f->m, NULL);
}

static bool fx_origin(struct tls_client_ctx *c, const char *host, struct tls_sni_table *t,
		      struct hs *h)
{
	h->c = tls_client_ssl_new(c, host);
	assert_non_null(h->c);
	h->s = SSL_new(t->front);
	return hs_run(h);
}

static void test_client_verify(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	struct tls_client_ctx *c;
	struct hs h = {0};
	char cn[128];

	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	assert_non_null(c);
	assert_non_null(c->ctx);
	assert_true(c->verify);
	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(hs_served(&h, cn, sizeof(cn)), "a.example.com");
	assert_ptr_equal(tls_selected(h.s), &t->v[0]);
	hs_free(&h);
	assert_true(fx_origin(c, "x.wild.example.com", t, &h));
	hs_free(&h);
	/* served the default certificate for another name */
	assert_false(fx_origin(c, "b.example.com", t, &h));
	assert_string_equal(tls_failure_reason(h.c),
			    "upstream certificate verify failed: hostname mismatch (depth 0)");
	assert_string_equal(tls_failure_reason(h.s), "client sent alert bad certificate");
	assert_int_equal(tls_failure_kind(h.s), TLS_FAIL_OTHER);
	hs_free(&h);

	/* sni overrides what is sent and verified */
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\nsni: a.example.com\n");
	assert_true(fx_origin(c, "10.1.2.3", t, &h));
	assert_string_equal(hs_served(&h, cn, sizeof(cn)), "a.example.com");
	hs_free(&h);

	/* subjectAltNames replace the host check */
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n"
		       "subjectAltNames: [default.example.com]\n");
	assert_true(fx_origin(c, "b.example.com", t, &h));
	hs_free(&h);
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(tls_failure_reason(h.c), "upstream certificate SAN mismatch");
	hs_free(&h);
	/* a wildcard certificate covers one label */
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n"
		       "subjectAltNames: [q.wild.example.com]\n");
	assert_true(fx_origin(c, "x.wild.example.com", t, &h));
	hs_free(&h);

	/* untrusted: the system store does not know the test root */
	c = fx_cctx(f, "mode: SIMPLE\n");
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_non_null(strstr(tls_failure_reason(h.c), "upstream certificate verify failed: "));
	hs_free(&h);
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: other-ca.crt\n");
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(tls_failure_reason(h.c), "upstream certificate verify failed: unable "
						     "to get local issuer certificate (depth 0)");
	hs_free(&h);

	/* insecureSkipVerify passes anything */
	c = fx_cctx(f, "mode: SIMPLE\ninsecureSkipVerify: true\n");
	assert_false(c->verify);
	assert_true(fx_origin(c, "b.example.com", t, &h));
	hs_free(&h);
	assert_int_equal(f->d.n, 0);
}

static void test_client_decode(void **state)
{
	struct fx *f = *state;
	struct tls_client_ctx *c;

	c = fx_cctx(f, "mode: DISABLE\n");
	assert_non_null(c);
	assert_null(c->ctx);
	assert_null(tls_client_ssl_new(c, "a.example.com"));
	assert_null(fx_cctx(f, "mode: SIMPLE\ncaCertificate: ca.crt\n"));
	assert_true(fx_has(f, "t.yaml:2:1: caCertificate: unknown field \"caCertificate\"", NULL));
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: MUTUAL\ncaCertificates: ca.crt\n"));
	assert_true(fx_has(f, "MUTUAL TLS requires clientCertificate and privateKey", NULL));
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: ISTIO_MUTUAL\n"));
	assert_true(fx_has(f, "mode: ISTIO_MUTUAL needs the appliance's mesh identity", NULL));
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: SOMETIMES\n"));
	assert_int_equal(f->d.nerrors, 1);
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: SIMPLE\ncaCertificates: nope.pem\n"));
	assert_true(fx_has(f, "caCertificates: cannot read CA certificates ", "/nope.pem"));
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: MUTUAL\nclientCertificate: client.crt\nprivateKey: a.key\n"
			       "caCertificates: ca.crt\n"));
	assert_true(fx_has(f, "does not match certificate", NULL));
	fx_clear(f);
	c = fx_cctx(f, "mode: SIMPLE\ninsecureSkipVerify: true\ncaCertificates: ca.crt\n");
	assert_non_null(c);
	assert_true(fx_has(f,
			   "warning: insecureSkipVerify: caCertificates and subjectAltNames are "
			   "ignored",
			   NULL));
	fx_clear(f);
	c = fx_cctx(f, "mode: SIMPLE\nclientCertificate: client.crt\nprivateKey: client.key\n"
		       "caCertificates: ca.crt\n");
	assert_non_null(c);
	assert_true(fx_has(f,
			   "warning: clientCertificate: clientCertificate and privateKey are "
			   "only used in MUTUAL mode",
			   NULL));
}

static void test_client_mutual(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t =
	    fx_one(f, "mode: MUTUAL\ncredentialName: a-cred\n"
		      "subjectAltNames: [spiffe://cluster.local/ns/default/sa/client]\n");
	struct tls_client_ctx *c;
	struct hs h = {0};
	char out[512];

	c = fx_cctx(f, "mode: MUTUAL\nclientCertificate: client.crt\nprivateKey: client.key\n"
		       "caCertificates: ca.crt\n");
	assert_non_null(c);
	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_true(tls_xfcc(h.s, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, ";URI=spiffe://cluster.local/ns/default/sa/client;"));
	hs_free(&h);
	/* from a credential: tls.crt/tls.key present, ca.crt trusted */
	c = fx_cctx(f, "mode: SIMPLE\ncredentialName: a-cred\n");
	assert_non_null(c);
	assert_true(fx_origin(c, "a.example.com", t, &h) == false);
	assert_string_equal(tls_failure_reason(h.s),
			    "client certificate required (alert certificate required)");
	hs_free(&h);
	c = fx_cctx(f, "mode: MUTUAL\ncredentialName: a-cred\n");
	assert_non_null(c);
	/* a.crt is a server certificate (extendedKeyUsage serverAuth) */
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(
	    tls_failure_reason(h.s),
	    "client certificate verify failed: unsuitable certificate purpose (depth 0)");
	hs_free(&h);
	assert_int_equal(f->d.n, 0);
}

/* ---- resumption ---- */

static void test_resumption(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	struct tls_client_ctx *c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	SSL_SESSION *sess;
	struct hs h = {0};

	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_false(SSL_session_reused(h.c));
	hs_exchange(&h); /* TLS 1.3 tickets arrive after the handshake */
	hs_free(&h);
	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_true(SSL_session_reused(h.c));
	assert_true(SSL_session_reused(h.s));
	assert_ptr_equal(tls_selected(h.s), &t->v[0]);
	hs_exchange(&h);
	sess = SSL_get1_session(h.c);
	hs_free(&h);
	/* another host has its own slot */
	assert_true(fx_origin(c, "x.wild.example.com", t, &h));
	assert_false(SSL_session_reused(h.c));
	hs_free(&h);
	/* a session of one server never resumes on another one of the listener */
	h.c = SSL_new(c->ctx);
	SSL_set_tlsext_host_name(h.c, "x.wild.example.com");
	assert_int_equal(SSL_set_session(h.c, sess), 1);
	h.s = SSL_new(t->front);
	assert_true(hs_run(&h));
	assert_false(SSL_session_reused(h.s));
	assert_ptr_equal(tls_selected(h.s), &t->v[1]);
	hs_free(&h);
	SSL_SESSION_free(sess);
}

static void test_resumption_tls12(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one(f, "mode: MUTUAL\ncredentialName: a-cred\n"
					    "maxProtocolVersion: TLSV1_2\n");
	struct tls_client_ctx *c =
	    fx_cctx(f, "mode: MUTUAL\nclientCertificate: client.crt\nprivateKey: client.key\n"
		       "caCertificates: ca.crt\n");
	struct hs h = {0};
	char out[512];

	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_int_equal(SSL_version(h.c), TLS1_2_VERSION);
	hs_exchange(&h);
	hs_free(&h);
	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_true(SSL_session_reused(h.s));
	/* the client identity survives resumption */
	assert_true(tls_xfcc(h.s, out, sizeof(out)) > 0);
	hs_free(&h);
}

/* ---- session ticket keys ---- */

static void test_ticket_parse(void **state)
{
	unsigned char buf[17 * TLS_TICKET_KEY_LEN];
	struct tls_ticket_keys k;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + i / TLS_TICKET_KEY_LEN);
	assert_int_equal(tls_ticket_parse(buf, 0, &k, &why), -1);
	assert_int_equal(tls_ticket_parse(buf, 79, &k, &why), -1);
	assert_int_equal(tls_ticket_parse(buf, 81, &k, &why), -1);
	assert_int_equal(tls_ticket_parse(buf, 48, &k, &why), -1); /* nginx's AES-128 size */
	assert_int_equal(tls_ticket_parse(buf, sizeof(buf), &k, &why), -1);
	assert_string_equal(why, "holds more than 16 keys");
	assert_int_equal(tls_ticket_parse(buf, 2 * TLS_TICKET_KEY_LEN, &k, &why), 0);
	assert_int_equal(k.n, 2);
	/* nginx's layout: name, HMAC secret, AES key */
	assert_memory_equal(k.k[1].name, buf + 80, 16);
	assert_memory_equal(k.k[1].hmac, buf + 96, 32);
	assert_memory_equal(k.k[1].aes, buf + 128, 32);
	memcpy(buf + 80, buf, 16);
	assert_int_equal(tls_ticket_parse(buf, 2 * TLS_TICKET_KEY_LEN, &k, &why), -1);
	assert_string_equal(why, "has two keys with the same name (first 16 bytes)");
}

static void test_ticket_rotate(void **state)
{
	struct tls_ticket_keys r = {0};
	struct tls_ticket_key k;
	int i;

	for (i = 0; i < 5; i++) {
		memset(&k, 'a' + i, sizeof(k));
		tls_ticket_rotate(&r, &k);
		assert_int_equal(r.n, i < TLS_TICKET_KEEP ? (size_t)i + 1 : TLS_TICKET_KEEP + 1);
		assert_int_equal(r.k[0].name[0], 'a' + i);
		assert_int_equal(r.k[r.n - 1].name[0], 'a' + i - (int)r.n + 1);
	}
}

/* One handshake to a.example.com offering *sess; *sess becomes the newest session. */
static bool fx_resumes(SSL_CTX *cctx, const struct tls_sni_table *t, SSL_SESSION **sess)
{
	struct hs h = {0};
	bool reused;

	h.c = SSL_new(cctx);
	h.s = SSL_new(t->front);
	assert_int_equal(SSL_set_tlsext_host_name(h.c, "a.example.com"), 1);
	if (*sess != NULL)
		assert_int_equal(SSL_set_session(h.c, *sess), 1);
	assert_true(hs_run(&h));
	reused = SSL_session_reused(h.s);
	hs_exchange(&h); /* the TLS 1.3 ticket */
	SSL_SESSION_free(*sess);
	*sess = SSL_get1_session(h.c);
	hs_free(&h);
	return reused;
}

static void fx_keys(struct tls_ticket_keys *k, const char *names)
{
	size_t i;

	memset(k, 0, sizeof(*k));
	for (i = 0; names[i] != '\0'; i++) {
		memset(&k->k[i], names[i], sizeof(k->k[i]));
		k->k[i].aes[0] ^= 1; /* secrets that differ from the name */
	}
	k->n = i;
}

/* Keys are the process's, not a context's: a session survives a new context (a reload);
 * a file's first key seals, the others still open; rotation keeps TLS_TICKET_KEEP. */
static void test_ticket_keys(void **state)
{
	struct fx *f = *state;
	SSL_CTX *cctx = fx_client(f, NULL, NULL);
	SSL_SESSION *sess = NULL;
	struct tls_ticket_keys k;
	int v, i;

	for (v = 0; v < 2; v++) {
		SSL_CTX_set_max_proto_version(cctx, v == 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
		fx_keys(&k, "AB");
		assert_int_equal(tls_ticket_use(&k), 0);
		assert_false(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		/* a reload builds new contexts: the session still resumes */
		assert_true(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		/* a new first key, the old one kept: still opens (and renews with C) */
		fx_keys(&k, "CA");
		assert_int_equal(tls_ticket_use(&k), 0);
		assert_true(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		fx_keys(&k, "C");
		assert_int_equal(tls_ticket_use(&k), 0);
		assert_true(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		/* keys that never sealed it: a full handshake */
		fx_keys(&k, "DE");
		assert_int_equal(tls_ticket_use(&k), 0);
		assert_false(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		/* automatic keys: kept by a later use(NULL), rotated on demand */
		assert_int_equal(tls_ticket_use(NULL), 0);
		assert_false(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		assert_int_equal(tls_ticket_use(NULL), 0);
		for (i = 0; i < TLS_TICKET_KEEP; i++)
			tls_ticket_rotate_now();
		assert_true(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		for (i = 0; i <= TLS_TICKET_KEEP; i++)
			tls_ticket_rotate_now();
		assert_false(
		    fx_resumes(cctx, fx_one(f, "mode: SIMPLE\ncredentialName: a-cred\n"), &sess));
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	SSL_CTX_free(cctx);
}

/* What the access log says about a failed origination handshake. */
static void test_client_failure(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	struct tls_sni_table *m;
	struct tls_client_ctx *c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	struct hs h = {0};
	char buf[256], rd[8];
	SSL *ssl;

	assert_true(fx_origin(c, "a.example.com", t, &h));
	assert_null(tls_client_failure(h.c, buf, sizeof(buf)));
	hs_free(&h);
	assert_false(fx_origin(c, "b.example.com", t, &h));
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls verify failed: hostname mismatch (depth 0)");
	hs_free(&h);
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: other-ca.crt\n");
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls verify failed: unable to get local issuer certificate (depth 0)");
	hs_free(&h);
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\nsubjectAltNames: [x.example.com]\n");
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls verify failed: SAN mismatch");
	hs_free(&h);
	/* nothing sent yet (a refused TCP connect): not a TLS failure */
	ssl = tls_client_ssl_new(c, "a.example.com");
	assert_null(tls_client_failure(ssl, buf, sizeof(buf)));
	SSL_free(ssl);
	/* a server that wants a client certificate: TLS 1.2 says so in the handshake, TLS 1.3
	 * with an alert after it, on the first read */
	c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	m = fx_one(f, "mode: MUTUAL\ncredentialName: a-cred\nmaxProtocolVersion: TLSV1_2\n");
	assert_false(fx_origin(c, "a.example.com", m, &h));
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls handshake failed: upstream sent alert handshake failure");
	hs_free(&h);
	m = fx_one(f, "mode: MUTUAL\ncredentialName: a-cred\n");
	assert_false(fx_origin(c, "a.example.com", m, &h));
	assert_true(SSL_read(h.c, rd, sizeof(rd)) <= 0);
	ERR_clear_error();
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls handshake failed: upstream sent alert certificate required");
	hs_free(&h);
}

/* ISTIO_MUTUAL: the main config's mesh identity is presented and the peer is verified
 * against the mesh root, by the ServiceEntry's accounts when given, never by host name. */
static void test_client_istio_mutual(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_one_host(f, "mode: MUTUAL\ncredentialName: a-cred\n", "*");
	const char *sans_v[] = {"spiffe://cluster.local/ns/default/sa/a"},
		   *dns_v[] = {"a.example.com"};
	struct str_list sans = {sans_v, 1}, dns = {dns_v, 1};
	const unsigned char *alpn;
	struct tls_client_ctx *c;
	struct hs h = {0};
	char buf[512];
	unsigned alen;

	f->m.mesh_identity.certificate = fxp(f, "client.crt");
	f->m.mesh_identity.private_key = fxp(f, "client.key");
	f->m.mesh_identity.ca_certificates = fxp(f, "ca.crt");
	c = fx_cctx(f, "mode: ISTIO_MUTUAL\n");
	assert_non_null(c);
	assert_true(c->mesh);
	assert_false(tls_client_checks_name(c));
	h.c = tls_client_ssl_open(c->ctx, "outbound_.443_._.a.example.com", false, NULL);
	h.s = SSL_new(t->front);
	assert_true(hs_run(&h));
	assert_true(tls_xfcc(h.s, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, ";URI=spiffe://cluster.local/ns/default/sa/client"));
	SSL_get0_alpn_selected(h.c, &alpn, &alen);
	assert_int_equal(alen, 8);
	assert_memory_equal(alpn, "http/1.1", 8);
	hs_free(&h);
	/* the ServiceEntry's accounts: a.crt names no SPIFFE identity */
	c = tls_client_ctx_new(f->p, &f->d, fx_yaml(f, "mode: ISTIO_MUTUAL\n"), &f->m, &sans);
	assert_non_null(c);
	assert_false(fx_origin(c, "a.example.com", t, &h));
	assert_string_equal(tls_client_failure(h.c, buf, sizeof(buf)),
			    "tls verify failed: SAN mismatch");
	hs_free(&h);
	c = tls_client_ctx_new(f->p, &f->d, fx_yaml(f, "mode: ISTIO_MUTUAL\n"), &f->m, &dns);
	assert_true(fx_origin(c, "outbound_.443_._.a.example.com", t, &h));
	hs_free(&h);
	/* the rule's own subjectAltNames win */
	c = tls_client_ctx_new(f->p, &f->d,
			       fx_yaml(f, "mode: ISTIO_MUTUAL\nsubjectAltNames: [a.example.com]\n"),
			       &f->m, &sans);
	assert_true(fx_origin(c, "a.example.com", t, &h));
	hs_free(&h);
	assert_int_equal(f->d.n, 0);
	/* the mode's own files only */
	assert_null(fx_cctx(f, "mode: ISTIO_MUTUAL\ncaCertificates: ca.crt\n"));
	assert_true(fx_has(f,
			   "t.yaml:2:17: caCertificates: ISTIO_MUTUAL uses the appliance's mesh "
			   "identity: clientCertificate, privateKey, caCertificates, caCrl and "
			   "credentialName cannot be set",
			   NULL));
	fx_clear(f);
	assert_null(fx_cctx(f, "mode: ISTIO_MUTUAL\ninsecureSkipVerify: true\n"));
	assert_true(fx_has(f, "insecureSkipVerify cannot be used with ISTIO_MUTUAL", NULL));
}

/* Fingerprints: equal settings and files give equal ids (pools survive reloads), any change
 * a new one; the origin id adds the name connections are made for. */
static void test_client_fingerprint(void **state)
{
	struct fx *f = *state;
	struct tls_client_ctx *a = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	struct tls_client_ctx *b = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");

	assert_true(a->id == b->id);
	assert_true(a->ctx != b->ctx);
	assert_true(tls_client_origin_id(a, "h1") == tls_client_origin_id(b, "h1"));
	assert_true(tls_client_origin_id(a, "h1") != tls_client_origin_id(a, "h2"));
	assert_true(a->id != fx_cctx(f, "mode: SIMPLE\ncaCertificates: other-ca.crt\n")->id);
	assert_true(a->id != fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\nsni: x\n")->id);
	assert_true(a->id != fx_cctx(f, "mode: SIMPLE\ninsecureSkipVerify: true\n")->id);
	assert_true(a->id != fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n"
					"subjectAltNames: [a.example.com]\n")
				 ->id);
	/* rewriting the CA file (a rotation) changes its identity */
	assert_int_equal(
	    system(pool_printf(f->p, "cp '%s' '%s.new' && mv '%s.new' '%s'", fxp(f, "ca.crt"),
			       fxp(f, "ca.crt"), fxp(f, "ca.crt"), fxp(f, "ca.crt"))),
	    0);
	assert_true(a->id != fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n")->id);
	assert_int_equal(f->d.n, 0);
}

/* Sessions are stored and offered per session key (name and address in the pool), so two
 * endpoints of one name never trade tickets. */
static void test_client_session_keys(void **state)
{
	struct fx *f = *state;
	struct tls_sni_table *t = fx_sni_table(f, true);
	struct tls_client_ctx *c = fx_cctx(f, "mode: SIMPLE\ncaCertificates: ca.crt\n");
	struct hs h = {0};
	int i;

	for (i = 0; i < 3; i++) {
		h.c = tls_client_ssl_open(c->ctx, "a.example.com", true,
					  i < 2 ? "a.example.com|10.0.0.1:443"
						: "a.example.com|10.0.0.2:443");
		h.s = SSL_new(t->front);
		assert_true(hs_run(&h));
		assert_int_equal(SSL_session_reused(h.c), i == 1);
		hs_exchange(&h);
		hs_free(&h);
	}
}

/* ---- benchmark (not a test) ---- */

static double bench_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The server's calls, out of line so a profiler can single them out
 * (valgrind --tool=callgrind --toggle-collect='bench_srv_*'). */
static __attribute__((noinline)) SSL *bench_srv_new(SSL_CTX *front)
{
	return SSL_new(front);
}

static __attribute__((noinline)) int bench_srv_step(SSL *s)
{
	return SSL_do_handshake(s);
}

static __attribute__((noinline)) void bench_srv_free(SSL *s)
{
	SSL_free(s);
}

/* Full TLS 1.3 handshakes, ECDSA P-256 + X25519, client and server in this thread over a
 * BIO pair.  Returns the server's CPU time per handshake in microseconds (thread CPU time
 * around its calls only: SSL_new, SSL_do_handshake, SSL_free); *rate gets the handshakes
 * per second of the whole loop, client included. */
static double bench_run(SSL_CTX *front, SSL_CTX *cctx, int n, double *rate)
{
	double t0 = bench_now(CLOCK_MONOTONIC), srv = 0, s0;
	int i, k;

	for (i = 0; i < n; i++) {
		SSL *c = SSL_new(cctx), *s;
		BIO *bc, *bs;
		bool cdone = false, sdone = false;

		s0 = bench_now(CLOCK_THREAD_CPUTIME_ID);
		s = bench_srv_new(front);
		srv += bench_now(CLOCK_THREAD_CPUTIME_ID) - s0;
		BIO_new_bio_pair(&bc, 0, &bs, 0);
		SSL_set_bio(c, bc, bc);
		SSL_set_bio(s, bs, bs);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		SSL_set_tlsext_host_name(c, "a.example.com");
		for (k = 0; k < 16 && !(cdone && sdone); k++) {
			if (!cdone)
				cdone = SSL_do_handshake(c) == 1;
			s0 = bench_now(CLOCK_THREAD_CPUTIME_ID);
			if (!sdone)
				sdone = bench_srv_step(s) == 1;
			srv += bench_now(CLOCK_THREAD_CPUTIME_ID) - s0;
		}
		if (!cdone || !sdone) {
			fprintf(stderr, "bench: handshake failed\n");
			exit(1);
		}
		SSL_free(c);
		s0 = bench_now(CLOCK_THREAD_CPUTIME_ID);
		bench_srv_free(s);
		srv += bench_now(CLOCK_THREAD_CPUTIME_ID) - s0;
	}
	*rate = n / (bench_now(CLOCK_MONOTONIC) - t0);
	return srv / n * 1e6;
}

/* The cryptography a server cannot avoid in such a handshake: an X25519 key pair, the
 * shared secret, and one ECDSA P-256 signature (CertificateVerify).  Microseconds. */
static double bench_crypto(EVP_PKEY *sign_key, int n)
{
	EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	unsigned char sec[32], sig[128], tbs[64] = {0};
	double t0 = bench_now(CLOCK_THREAD_CPUTIME_ID);
	size_t len;
	int i;

	for (i = 0; i < n; i++) {
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
		EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(k, NULL);
		EVP_MD_CTX *mc = EVP_MD_CTX_new();

		len = sizeof(sec);
		if (k == NULL || dc == NULL || mc == NULL || EVP_PKEY_derive_init(dc) != 1 ||
		    EVP_PKEY_derive_set_peer(dc, peer) != 1 || EVP_PKEY_derive(dc, sec, &len) != 1)
			exit(1);
		len = sizeof(sig);
		if (EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, sign_key) != 1 ||
		    EVP_DigestSign(mc, sig, &len, tbs, sizeof(tbs)) != 1)
			exit(1);
		EVP_MD_CTX_free(mc);
		EVP_PKEY_CTX_free(dc);
		EVP_PKEY_free(k);
	}
	EVP_PKEY_free(peer);
	return (bench_now(CLOCK_THREAD_CPUTIME_ID) - t0) / n * 1e6;
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define BENCH_ROUNDS 7

/* Variants interleaved over several rounds, so a noisy neighbour hits them alike; the
 * minimum is the figure least disturbed by it, the median the typical one. */
static int bench(int n, int only)
{
	struct fx *f = NULL;
	struct tls_server_ctx *a, *b;
	struct tls_sni_table *t1, *t3;
	struct {
		const char *label;
		SSL_CTX *front;
		double us[BENCH_ROUNDS], rate[BENCH_ROUNDS];
	} v[3];
	double dummy, crypto[BENCH_ROUNDS];
	EVP_PKEY *key;
	FILE *kf;
	SSL_CTX *cctx;
	int i, r;

	fx_setup((void **)&f);
	a = fx_sctx(f, "mode: SIMPLE\nserverCertificate: a.crt\nprivateKey: a.key\n",
		    "a.example.com");
	b = fx_sctx(f, "mode: SIMPLE\nserverCertificate: default.crt\nprivateKey: default.key\n",
		    "*");
	if (a == NULL || b == NULL) {
		diag_print(&f->d, stderr);
		return 1;
	}
	t1 = fx_table(f, 0, 1, "a.example.com", a);
	t3 = fx_table(f, 1, 3, "*.wild.example.com", b, "a.example.com", a, "*", b);
	v[0].label = "server ctx, no SNI switch";
	v[0].front = a->ctx;
	v[1].label = "SNI table, 1 entry";
	v[1].front = t1->front;
	v[2].label = "SNI table, 3 entries";
	v[2].front = t3->front;
	cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
	bench_run(t1->front, cctx, n / 10 + 1, &dummy);
	if (only >= 0 && only < 3) {
		/* one variant, one round: for profilers */
		printf("%s: server %.1f us/handshake\n", v[only].label,
		       bench_run(v[only].front, cctx, n, &dummy));
		SSL_CTX_free(cctx);
		fx_teardown((void **)&f);
		return 0;
	}
	if ((kf = fopen(fxp(f, "a.key"), "r")) == NULL ||
	    (key = PEM_read_PrivateKey(kf, NULL, NULL, NULL)) == NULL)
		return 1;
	fclose(kf);
	for (r = 0; r < BENCH_ROUNDS; r++) {
		for (i = 0; i < 3; i++)
			v[i].us[r] = bench_run(v[i].front, cctx, n, &v[i].rate[r]);
		crypto[r] = bench_crypto(key, n);
	}
	EVP_PKEY_free(key);
	printf("full TLS 1.3 handshakes, ECDSA P-256 + X25519, %d x %d per variant, one thread\n",
	       BENCH_ROUNDS, n);
	for (i = 0; i < 3; i++) {
		qsort(v[i].us, BENCH_ROUNDS, sizeof(double), bench_cmp);
		qsort(v[i].rate, BENCH_ROUNDS, sizeof(double), bench_cmp);
		printf("%-26s server %6.1f us/handshake min, %6.1f median (%5.0f/s per core)"
		       "  client+server %5.0f/s max\n",
		       v[i].label, v[i].us[0], v[i].us[BENCH_ROUNDS / 2], 1e6 / v[i].us[0],
		       v[i].rate[BENCH_ROUNDS - 1]);
	}
	qsort(crypto, BENCH_ROUNDS, sizeof(double), bench_cmp);
	printf("%-26s        %6.1f us min, %6.1f median (X25519 keygen + derive, ECDSA sign)\n",
	       "crypto floor", crypto[0], crypto[BENCH_ROUNDS / 2]);
	SSL_CTX_free(cctx);
	fx_teardown((void **)&f);
	return 0;
}

/* ---- main ---- */

static int fixtures(void)
{
	const char *script = getenv("MG_TLS_FIXTURES");
	const char *top = getenv("abs_top_srcdir");
	char cmd[2 * PATH_MAX + 64], path[PATH_MAX];
	int rc;

	if (system("openssl version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_tls: no openssl CLI, skipped\n");
		return 77;
	}
	if (script == NULL || *script == '\0') {
		snprintf(path, sizeof(path), "%s/tests/unit/tls-fixtures.sh",
			 top != NULL && *top != '\0' ? top : ".");
		script = path;
	}
	snprintf(fxdir, sizeof(fxdir), "%s/mg-test-tls-XXXXXX",
		 getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(fxdir) == NULL) {
		perror("test_tls: mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", script, fxdir);
	rc = system(cmd);
	if (rc != 0) {
		fprintf(stderr, "test_tls: %s failed (%d)\n", cmd, rc);
		return WIFEXITED(rc) && WEXITSTATUS(rc) == 77 ? 77 : 1;
	}
	return 0;
}

static void cleanup(void)
{
	char cmd[PATH_MAX + 16];

	if (fxdir[0] == '\0' || getenv("MG_TLS_KEEP") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fxdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_tls: could not remove %s\n", fxdir);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	static const struct CMUnitTest tests[] = {
	    T(test_simple_ok),
	    T(test_default_ciphers),
	    T(test_missing_file),
	    T(test_key_mismatch),
	    T(test_expired),
	    T(test_expiring),
	    T(test_chain_file),
	    T(test_ciphers),
	    T(test_versions),
	    T(test_mutual_needs_ca),
	    T(test_credentials),
	    T(test_two_of_a_kind),
	    T(test_bad_pins_and_modes),
	    T(test_host_coverage),
	    T(test_sni_lookup),
	    T(test_sni_precedence),
	    T(test_sni_handshakes),
	    T(test_sni_unknown),
	    T(test_sni_default_host),
	    T(test_sni_malformed),
	    T(test_sni_hello_retry),
	    T(test_mutual),
	    T(test_optional_mutual),
	    T(test_pins),
	    T(test_crl),
	    T(test_tls13_only),
	    T(test_tls10_allowed),
	    T(test_ciphers_follow_sni),
	    T(test_rsa_and_ecdsa),
	    T(test_alpn),
	    T(test_xfcc),
	    T(test_client_verify),
	    T(test_client_decode),
	    T(test_client_mutual),
	    T(test_resumption),
	    T(test_resumption_tls12),
	    T(test_client_failure),
	    T(test_client_istio_mutual),
	    T(test_client_fingerprint),
	    T(test_client_session_keys),
	    T(test_ticket_parse),
	    T(test_ticket_rotate),
	    T(test_ticket_keys),
	};
#undef T
	int rc;

	if ((rc = fixtures()) != 0) {
		cleanup();
		return rc;
	}
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		rc = bench(argc > 2 ? atoi(argv[2]) : 500, argc > 3 ? atoi(argv[3]) : -1);
	else
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	cleanup();
	return rc;
}

/* Certificate, key, CA and CRL files into SSL_CTXs, with errors that name the file.
 *
 * PEM is parsed here rather than with SSL_CTX_use_certificate_chain_file() so each
 * certificate/key pair can be checked on its own (a server may carry an RSA and an ECDSA
 * certificate) and installed with its chain in one step (SSL_CTX_use_cert_and_key). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "certwatch.h"
#include "pool.h"
#include "config/diag.h"
#include "config/model.h"
#include "config/node.h"
#include "tls_int.h"

#define TLS_LOAD_WARN_DAYS 7
#define TLS_LOAD_DAY 86400

const char *tls_load_path(struct pool *p, const struct cfg_main *m, const char *path)
{
	if (path == NULL || path[0] == '/' || m == NULL || m->dir == NULL ||
	    strcmp(m->dir, ".") == 0)
		return path;
	if (strcmp(m->dir, "/") == 0)
		return pool_printf(p, "/%s", path);
	return pool_printf(p, "%s/%s", m->dir, path);
}

static BIO *tls_load_open(struct diag *d, const struct node *at, const char *what, const char *path)
{
	FILE *f;
	BIO *b;

	/* fopen() rather than BIO_new_file(): errno says why, in the operator's words. */
	if ((f = fopen(path, "r")) == NULL) {
		int e = errno;

		certwatch_note(path, -1); /* its appearance will be a change */
		diag_error(d, at, "cannot read %s %s: %s", what, path, strerror(e));
		return NULL;
	}
	/* The identity of what is read now, not of what the path holds later. */
	certwatch_note(path, fileno(f));
	if ((b = BIO_new_fp(f, BIO_CLOSE)) == NULL) {
		fclose(f);
		diag_error(d, at, "cannot read %s %s: out of memory", what, path);
	}
	return b;
}

/* Never prompt on the terminal for a passphrase: note that one was wanted and fail. */
static int tls_load_no_pass(char *buf, int size, int rwflag, void *u)
{
	*(bool *)u = true;
	return -1;
}

static bool tls_load_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/a, else dir/b, else NULL. */
static const char *tls_load_pick(struct pool *p, const char *dir, const char *a, const char *b)
{
	const char *path = pool_printf(p, "%s/%s", dir, a);

	if (tls_load_exists(path))
		return path;
	if (b != NULL && tls_load_exists(path = pool_printf(p, "%s/%s", dir, b)))
		return path;
	return NULL;
}

bool tls_load_cred(struct pool *p, struct diag *d, const struct node *at, const struct cfg_main *m,
		   const char *name, bool need_cert, struct tls_cred *out)
{
	const char *dir;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (m == NULL || m->credentials_dir == NULL || m->credentials_dir[0] == '\0') {
		diag_error(d, at, "credentialName \"%s\" needs credentialsDir in the main config",
			   name);
		return false;
	}
	/* A name is one directory entry: "../x" would quietly escape credentialsDir. */
	if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		diag_error(d, at, "invalid credentialName \"%s\": must be a plain name", name);
		return false;
	}
	dir = pool_printf(p, "%s/%s", m->credentials_dir, name);
	if (stat(dir, &st) != 0) {
		diag_error(d, at, "credential \"%s\": cannot read directory %s: %s", name, dir,
			   strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		diag_error(d, at, "credential \"%s\": %s is not a directory", name, dir);
		return false;
	}
	out->cert = tls_load_pick(p, dir, "tls.crt", "cert");
	out->key = tls_load_pick(p, dir, "tls.key", "key");
	out->ca = tls_load_pick(p, dir, "ca.crt", "cacert");
	if (out->ca == NULL) {
		/* Istio also reads the CA from a separate secret named NAME-cacert. */
		const char *split = pool_printf(p, "%s-cacert", dir);

		out->ca = tls_load_pick(p, split, "ca.crt", "cacert");
	}
	out->crl = tls_load_pick(p, dir, "ca.crl", NULL);
	if (!need_cert)
		return true;
	if (out->cert == NULL) {
		certwatch_note(pool_printf(p, "%s/tls.crt", dir), -1);
		diag_error(d, at, "credential \"%s\": no tls.crt (or cert) in %s", name, dir);
		return false;
	}
	if (out->key == NULL) {
		certwatch_note(pool_printf(p, "%s/tls.key", dir), -1);
		diag_error(d, at, "credential \"%s\": no tls.key (or key) in %s", name, dir);
		return false;
	}
	return true;
}

int64_t tls_load_not_after(const X509 *x)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return INT64_MAX;
	return (int64_t)timegm(&tm);
}

static const char *tls_load_date(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

/* Expired: error.  Expiring within a week or not valid yet: warning. */
static bool tls_load_check_time(struct diag *d, const struct node *at, const char *path,
				const X509 *x, const char *role, int64_t *not_after)
{
	int64_t na = tls_load_not_after(x), now = (int64_t)time(NULL);
	char when[64];

	if (na < now) {
		diag_error(d, at, "%s in %s expired on %s", role, path,
			   tls_load_date(na, when, sizeof(when)));
		return false;
	}
	if (na - now < TLS_LOAD_WARN_DAYS * TLS_LOAD_DAY) {
		long days = (long)((na - now + TLS_LOAD_DAY - 1) / TLS_LOAD_DAY);

		diag_warn(d, at, "%s in %s expires in %ld day%s, on %s", role, path, days,
			  days == 1 ? "" : "s", tls_load_date(na, when, sizeof(when)));
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		diag_warn(d, at, "%s in %s is not valid yet", role, path);
	if (not_after != NULL && na < *not_after)
		*not_after = na;
	return true;
}

static unsigned tls_load_key_type(const EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS"))
		return TLS_KEY_RSA;
	if (EVP_PKEY_is_a(key, "EC"))
		return TLS_KEY_EC;
	return TLS_KEY_OTHER;
}

static const char *tls_load_key_name(unsigned type)
{
	return type == TLS_KEY_RSA ? "RSA" : type == TLS_KEY_EC ? "ECDSA" : "EdDSA";
}

/* The rest of a PEM file after its first certificate: intermediates. */
static bool tls_load_chain(struct diag *d, const struct node *at, const char *path, BIO *b,
			   STACK_OF(X509) * chain)
{
	unsigned long e;
	bool asked = false;
	X509 *x;

	while ((x = PEM_read_bio_X509(b, NULL, tls_load_no_pass, &asked)) != NULL) {
		if (!sk_X509_push(chain, x)) {
			X509_free(x);
			diag_error(d, at, "certificate %s: out of memory", path);
			return false;
		}
	}
	e = ERR_peek_last_error();
	if (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		char err[256];

		diag_error(d, at, "certificate %s: malformed chain certificate: %s", path,
			   tls_err_string(err, sizeof(err)));
		return false;
	}
	ERR_clear_error();
	return true;
}

static EVP_PKEY *tls_load_key(struct diag *d, const struct node *at, const char *path)
{
	bool asked = false;
	EVP_PKEY *key;
	char err[256];
	BIO *b;

	if ((b = tls_load_open(d, at, "private key", path)) == NULL)
		return NULL;
	key = PEM_read_bio_PrivateKey(b, NULL, tls_load_no_pass, &asked);
	BIO_free(b);
	if (key != NULL)
		return key;
	if (asked)
		diag_error(d, at,
			   "private key %s is encrypted: meshgate reads unencrypted keys only",
			   path);
	else
		diag_error(d, at, "no PEM private key in %s (%s)", path,
			   tls_err_string(err, sizeof(err)));
	ERR_clear_error();
	return NULL;
}

bool tls_load_cert_key(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *cert,
		       const char *key_path, int64_t *not_after, unsigned *key_types)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	bool ok = false, asked = false;
	unsigned type;
	char err[256];
	BIO *b;
	int i;

	if ((b = tls_load_open(d, at, "certificate", cert)) == NULL)
		return false;
	if ((leaf = PEM_read_bio_X509(b, NULL, tls_load_no_pass, &asked)) == NULL) {
		diag_error(d, at, "no PEM certificate in %s", cert);
		ERR_clear_error();
		goto out;
	}
	/* An empty (not NULL) chain also stops OpenSSL from building one per handshake. */
	if ((chain = sk_X509_new_null()) == NULL || !tls_load_chain(d, at, cert, b, chain))
		goto out;
	if ((key = tls_load_key(d, at, key_path)) == NULL)
		goto out;
	if (!X509_check_private_key(leaf, key)) {
		ERR_clear_error();
		diag_error(d, at, "private key %s does not match certificate %s", key_path, cert);
		goto out;
	}
	type = tls_load_key_type(key);
	if (*key_types & type) {
		diag_error(d, at,
			   "certificate %s: another %s certificate is already configured "
			   "(one certificate per key type: RSA and ECDSA)",
			   cert, tls_load_key_name(type));
		goto out;
	}
	ok = tls_load_check_time(d, at, cert, leaf, "certificate", not_after);
	for (i = 0; i < sk_X509_num(chain); i++)
		ok &= tls_load_check_time(d, at, cert, sk_X509_value(chain, i), "chain certificate",
					  not_after);
	if (!ok)
		goto out;
	if (!SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1)) {
		diag_error(d, at, "certificate %s rejected: %s", cert,
			   tls_err_string(err, sizeof(err)));
		ok = false;
		goto out;
	}
	*key_types |= type;
out:
	BIO_free(b);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return ok;
}

static STACK_OF(X509_INFO) *
    tls_load_pem_all(struct diag *d, const struct node *at, const char *what, const char *path)
{
	STACK_OF(X509_INFO) * inf;
	char err[256];
	BIO *b;

	if ((b = tls_load_open(d, at, what, path)) == NULL)
		return NULL;
	inf = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	if (inf == NULL)
		diag_error(d, at, "cannot parse %s %s: %s", what, path,
			   tls_err_string(err, sizeof(err)));
	return inf;
}

bool tls_load_ca(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *path,
		 bool client_ca_names)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) * inf;
	bool ok = true;
	int i, n = 0;

	if ((inf = tls_load_pem_all(d, at, "CA certificates", path)) == NULL)
		return false;
	for (i = 0; i < sk_X509_INFO_num(inf) && ok; i++) {
		X509_INFO *it = sk_X509_INFO_value(inf, i);

		if (it->x509 == NULL)
			continue;
		n++;
		if (X509_cmp_current_time(X509_get0_notAfter(it->x509)) < 0)
			diag_warn(d, at, "CA certificate %d in %s has expired", n, path);
		ok = X509_STORE_add_cert(store, it->x509) &&
		     (!client_ca_names || SSL_CTX_add_client_CA(ctx, it->x509));
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	if (!ok) {
		char err[256];

		diag_error(d, at, "CA certificates %s: %s", path, tls_err_string(err, sizeof(err)));
		return false;
	}
	if (n == 0) {
		diag_error(d, at, "no PEM certificate in CA file %s", path);
		return false;
	}
	return true;
}

bool tls_load_crl(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *path)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) * inf;
	bool ok = true;
	int i, n = 0;

	if ((inf = tls_load_pem_all(d, at, "CRL", path)) == NULL)
		return false;
	for (i = 0; i < sk_X509_INFO_num(inf) && ok; i++) {
		X509_INFO *it = sk_X509_INFO_value(inf, i);
		const ASN1_TIME *next;

		if (it->crl == NULL)
			continue;
		n++;
		next = X509_CRL_get0_nextUpdate(it->crl);
		if (next != NULL && X509_cmp_current_time(next) < 0)
			diag_warn(d, at,
				  "CRL %d in %s is past its nextUpdate: certificates it covers "
				  "will be refused",
				  n, path);
		ok = X509_STORE_add_crl(store, it->crl);
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	if (!ok) {
		char err[256];

		diag_error(d, at, "CRL %s: %s", path, tls_err_string(err, sizeof(err)));
		return false;
	}
	if (n == 0) {
		diag_error(d, at, "no PEM CRL in %s", path);
		return false;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	return true;
}

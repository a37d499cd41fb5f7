/* Peer certificate checks beyond the chain (subjectAltNames, verifyCertificateSpki,
 * verifyCertificateHash) and the x-forwarded-client-cert value.
 *
 * Pins are decoded once, at config load, into raw SHA-256 digests; the verify callback
 * only hashes the peer certificate and compares bytes. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config/diag.h"
#include "config/model.h"
#include "config/node.h"
#include "tls.h"
#include "tls_int.h"

static void tls_verify_policy_destroy(struct tls_peer_policy *pol)
{
	size_t i;

	if (pol == NULL)
		return;
	for (i = 0; i < pol->nsan; i++)
		free(pol->san[i]);
	free(pol->san);
	free(pol->spki);
	free(pol->hash);
	free(pol);
}

/* ex_data free callback (declared in tls.c): the SSL_CTX owns its policy. */
void tls_verify_policy_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp);
void tls_verify_policy_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	tls_verify_policy_destroy(ptr);
}

static const struct node *tls_verify_item(const struct node *seq, size_t i)
{
	if (seq != NULL && seq->type == NODE_SEQ && i < seq->n)
		return seq->vals[i];
	return seq;
}

/* Standard base64 of 32 bytes: 44 characters ending in one '=' (43 without padding). */
static bool tls_verify_b64(const char *s, unsigned char out[TLS_SHA256_LEN])
{
	unsigned char tmp[TLS_SHA256_LEN + 3];
	char in[45];
	size_t len = strlen(s);

	if (len == 43) {
		memcpy(in, s, 43);
		in[43] = '=';
	} else if (len == 44 && s[43] == '=' && s[42] != '=') {
		memcpy(in, s, 44);
	} else {
		return false;
	}
	in[44] = '\0';
	/* EVP_DecodeBlock counts padding as zero bytes: 44 characters decode to 33. */
	if (EVP_DecodeBlock(tmp, (const unsigned char *)in, 44) != TLS_SHA256_LEN + 1)
		return false;
	memcpy(out, tmp, TLS_SHA256_LEN);
	return true;
}

static int tls_verify_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 64 hex digits, case-insensitive, optionally in colon-separated pairs. */
static bool tls_verify_hex(const char *s, unsigned char out[TLS_SHA256_LEN])
{
	size_t n = 0;
	int hi, lo;

	while (*s != '\0') {
		if (n == TLS_SHA256_LEN)
			return false;
		if ((hi = tls_verify_hexval(s[0])) < 0 || (lo = tls_verify_hexval(s[1])) < 0)
			return false;
		out[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
		if (*s == ':' && n < TLS_SHA256_LEN && s[1] != '\0')
			s++;
	}
	return n == TLS_SHA256_LEN;
}

struct tls_peer_policy *tls_verify_policy_new(SSL_CTX *ctx, struct diag *d, const char *who,
					      bool dns_wildcards, const struct str_list *san,
					      const struct str_list *spki,
					      const struct node *spki_node,
					      const struct str_list *hash,
					      const struct node *hash_node)
{
	struct tls_peer_policy *pol = calloc(1, sizeof(*pol));
	bool ok = true;
	size_t i;

	if (pol == NULL)
		return NULL;
	pol->who = who;
	pol->dns_wildcards = dns_wildcards;
	if (san != NULL && san->n > 0) {
		if ((pol->san = calloc(san->n, sizeof(*pol->san))) == NULL)
			goto fail;
		for (; pol->nsan < san->n; pol->nsan++)
			if ((pol->san[pol->nsan] = strdup(san->v[pol->nsan])) == NULL)
				goto fail;
	}
	if (spki != NULL && spki->n > 0) {
		if ((pol->spki = calloc(spki->n, sizeof(*pol->spki))) == NULL)
			goto fail;
		for (i = 0; i < spki->n; i++) {
			if (tls_verify_b64(spki->v[i], pol->spki[pol->nspki])) {
				pol->nspki++;
				continue;
			}
			diag_error(d, tls_verify_item(spki_node, i),
				   "\"%s\" is not a base64-encoded SHA-256 digest", spki->v[i]);
			ok = false;
		}
	}
	if (hash != NULL && hash->n > 0) {
		if ((pol->hash = calloc(hash->n, sizeof(*pol->hash))) == NULL)
			goto fail;
		for (i = 0; i < hash->n; i++) {
			if (tls_verify_hex(hash->v[i], pol->hash[pol->nhash])) {
				pol->nhash++;
				continue;
			}
			diag_error(d, tls_verify_item(hash_node, i),
				   "\"%s\" is not a hex SHA-256 digest (64 hex digits, colons "
				   "optional)",
				   hash->v[i]);
			ok = false;
		}
	}
	if (!ok) {
		tls_verify_policy_destroy(pol);
		return NULL;
	}
	if (!SSL_CTX_set_ex_data(ctx, tls_ex.ctx_policy, pol))
		goto fail;
	return pol;
fail:
	diag_error(d, NULL, "out of memory building the TLS verification policy");
	tls_verify_policy_destroy(pol);
	return NULL;
}

static bool tls_verify_dns_eq(const struct tls_peer_policy *pol, const char *want,
			      const unsigned char *san, size_t len)
{
	size_t wl = strlen(want);
	const char *dot;

	if (wl == len && strncasecmp(want, (const char *)san, len) == 0)
		return true;
	/* RFC 6125: "*.x" covers exactly one leftmost label. */
	if (!pol->dns_wildcards || len < 3 || san[0] != '*' || san[1] != '.')
		return false;
	dot = strchr(want, '.');
	return dot != NULL && dot != want && (size_t)(want + wl - dot) == len - 1 &&
	       strncasecmp(dot, (const char *)san + 1, len - 1) == 0;
}

/* Any of the peer's DNS/URI/IP SANs equal to any configured name. */
static bool tls_verify_san(const struct tls_peer_policy *pol, X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool match = false;
	int i;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !match; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *v;
		char ip[INET6_ADDRSTRLEN];
		size_t j, len;

		if (g->type == GEN_DNS || g->type == GEN_URI) {
			const ASN1_IA5STRING *s =
			    g->type == GEN_DNS ? g->d.dNSName : g->d.uniformResourceIdentifier;

			v = ASN1_STRING_get0_data(s);
			len = (size_t)ASN1_STRING_length(s);
			for (j = 0; j < pol->nsan && !match; j++) {
				if (g->type == GEN_DNS)
					match = tls_verify_dns_eq(pol, pol->san[j], v, len);
				else
					match = strlen(pol->san[j]) == len &&
						memcmp(pol->san[j], v, len) == 0;
			}
		} else if (g->type == GEN_IPADD) {
			int af, l = ASN1_STRING_length(g->d.iPAddress);

			af = l == 4 ? AF_INET : l == 16 ? AF_INET6 : -1;
			if (af < 0 || inet_ntop(af, ASN1_STRING_get0_data(g->d.iPAddress), ip,
						sizeof(ip)) == NULL)
				continue;
			for (j = 0; j < pol->nsan && !match; j++)
				match = strcmp(pol->san[j], ip) == 0;
		}
	}
	GENERAL_NAMES_free(gens);
	return match;
}

static bool tls_verify_spki_match(const struct tls_peer_policy *pol, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen = 0;
	size_t i;
	int len;

	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0)
		return false;
	i = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (!i || mdlen != TLS_SHA256_LEN)
		return false;
	for (i = 0; i < pol->nspki; i++)
		if (memcmp(pol->spki[i], md, TLS_SHA256_LEN) == 0)
			return true;
	return false;
}

static bool tls_verify_hash_match(const struct tls_peer_policy *pol, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;

	if (!X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != TLS_SHA256_LEN)
		return false;
	for (i = 0; i < pol->nhash; i++)
		if (memcmp(pol->hash[i], md, TLS_SHA256_LEN) == 0)
			return true;
	return false;
}

/* NULL when x satisfies the policy, else what failed.  As in Envoy, a certificate matching
 * either an SPKI or a hash pin passes; subjectAltNames are checked in addition. */
static const char *tls_verify_pins(const struct tls_peer_policy *pol, X509 *x)
{
	if (pol->nsan > 0 && !tls_verify_san(pol, x))
		return "SAN mismatch";
	if (pol->nspki == 0 && pol->nhash == 0)
		return NULL;
	if (pol->nspki > 0 && tls_verify_spki_match(pol, x))
		return NULL;
	if (pol->nhash > 0 && tls_verify_hash_match(pol, x))
		return NULL;
	if (pol->nhash == 0)
		return "SPKI pin mismatch";
	if (pol->nspki == 0)
		return "hash pin mismatch";
	return "SPKI/hash pin mismatch";
}

int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct tls_peer_policy *pol;
	const char *who, *why;
	int err;

	if (ssl == NULL)
		return ok;
	pol = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex.ctx_policy);
	who = pol != NULL ? pol->who : SSL_is_server(ssl) ? "client" : "upstream";
	if (!ok) {
		err = X509_STORE_CTX_get_error(xs);
		tls_set_reason(ssl, TLS_FAIL_CLIENT_CERT_UNVERIFIED,
			       "%s certificate verify failed: %s (depth %d)", who,
			       X509_verify_cert_error_string(err),
			       X509_STORE_CTX_get_error_depth(xs));
		return 0;
	}
	/* The leaf comes last, after the chain, revocation and host checks passed. */
	if (pol == NULL || X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;
	if ((why = tls_verify_pins(pol, X509_STORE_CTX_get_current_cert(xs))) == NULL)
		return 1;
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	tls_set_reason(ssl, TLS_FAIL_SAN_MISMATCH, "%s certificate %s", who, why);
	return 0;
}

/* ---- x-forwarded-client-cert ---- */

struct tls_xbuf {
	char *p;
	size_t n, size;
	bool full;
};

static void tls_xput(struct tls_xbuf *b, const char *s, size_t len)
{
	if (b->full || len >= b->size - b->n) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void tls_xputs(struct tls_xbuf *b, const char *s)
{
	tls_xput(b, s, strlen(s));
}

/* The RFC 2253 subject already escapes '"' and '\' as \" and \\ (Envoy copies it as is);
 * anything OpenSSL left bare that could end the quoted value or the header is escaped or
 * hex-encoded here, so a hostile certificate cannot forge fields or header lines. */
static void tls_xput_subject(struct tls_xbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3];

		if (c == '\\' && i + 1 < len && s[i + 1] >= 0x20 && s[i + 1] < 0x7f) {
			tls_xput(b, s + i, 2);
			i++;
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			tls_xput(b, esc, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			esc[0] = '\\';
			esc[1] = hex[c >> 4];
			esc[2] = hex[c & 15];
			tls_xput(b, esc, 3);
		} else {
			tls_xput(b, s + i, 1);
		}
	}
}

/* A SAN value: printable ASCII only (else it is left out: it cannot be carried in a
 * header faithfully); quoted when it holds XFCC separators. */
static void tls_xput_san(struct tls_xbuf *b, const char *key, const ASN1_IA5STRING *s)
{
	const unsigned char *v = ASN1_STRING_get0_data(s);
	int i, len = ASN1_STRING_length(s);
	bool quote = false;

	if (len <= 0)
		return;
	for (i = 0; i < len; i++) {
		if (v[i] <= 0x20 || v[i] >= 0x7f)
			return;
		if (strchr(",;=\"\\", v[i]) != NULL)
			quote = true;
	}
	tls_xputs(b, key);
	if (!quote) {
		tls_xput(b, (const char *)v, (size_t)len);
		return;
	}
	tls_xputs(b, "\"");
	for (i = 0; i < len; i++) {
		if (v[i] == '"' || v[i] == '\\')
			tls_xputs(b, "\\");
		tls_xput(b, (const char *)v + i, 1);
	}
	tls_xputs(b, "\"");
}

int tls_xfcc(const SSL *ssl, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	struct tls_xbuf b = {out, 0, size, false};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	GENERAL_NAMES *gens;
	char *subj = NULL;
	bool uri = false;
	X509 *x;
	BIO *mem;
	long sl;
	int k;

	if (out == NULL || size == 0)
		return -1;
	out[0] = '\0';
	if (ssl == NULL || (x = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	if (!X509_digest(x, EVP_sha256(), md, &mdlen))
		return -1;
	tls_xputs(&b, "Hash=");
	for (i = 0; i < mdlen; i++) {
		char h[2] = {hex[md[i] >> 4], hex[md[i] & 15]};

		tls_xput(&b, h, 2);
	}
	if ((mem = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (sl = BIO_get_mem_data(mem, &subj)) > 0) {
		tls_xputs(&b, ";Subject=\"");
		tls_xput_subject(&b, subj, (size_t)sl);
		tls_xputs(&b, "\"");
	}
	BIO_free(mem);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	/* Envoy's order and choice: the first URI SAN, then every DNS SAN. */
	for (k = 0; gens != NULL && k < sk_GENERAL_NAME_num(gens); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);

		if (g->type == GEN_URI && !uri) {
			tls_xput_san(&b, ";URI=", g->d.uniformResourceIdentifier);
			uri = true;
		}
	}
	for (k = 0; gens != NULL && k < sk_GENERAL_NAME_num(gens); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);

		if (g->type == GEN_DNS)
			tls_xput_san(&b, ";DNS=", g->d.dNSName);
	}
	GENERAL_NAMES_free(gens);
	if (b.full) {
		out[0] = '\0';
		return -1;
	}
	return (int)b.n;
}

int tls_peer_principal(const SSL *ssl, char *out, size_t size)
{
	GENERAL_NAMES *gens;
	X509 *x;
	int n = -1;

	if (ssl == NULL || (x = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int k = 0; gens != NULL && k < sk_GENERAL_NAME_num(gens); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);
		const char *v;
		int len;

		if (g->type != GEN_URI)
			continue;
		v = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len >= 9 && strncmp(v, "spiffe://", 9) == 0) {
			v += 9;
			len -= 9;
		}
		/* a NUL inside would let "a\0b" pass for "a" */
		if (len > 0 && (size_t)len < size && memchr(v, '\0', (size_t)len) == NULL) {
			memcpy(out, v, (size_t)len);
			out[len] = '\0';
			n = len;
		}
		break;
	}
	GENERAL_NAMES_free(gens);
	return n;
}

/* One GENERAL_NAME string into out when it fits and holds no NUL. */
static int tls_name_copy(const ASN1_STRING *a, char *out, size_t size)
{
	const char *v = (const char *)ASN1_STRING_get0_data(a);
	int len = ASN1_STRING_length(a);

	if (len <= 0 || (size_t)len >= size || memchr(v, '\0', (size_t)len) != NULL)
		return -1;
	memcpy(out, v, (size_t)len);
	out[len] = '\0';
	return len;
}

int tls_cert_san(const X509 *x, int type, char *out, size_t size)
{
	GENERAL_NAMES *gens;
	int n = -1;

	if (x == NULL || size == 0)
		return -1;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int k = 0; gens != NULL && k < sk_GENERAL_NAME_num(gens); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);

		if (g->type == type) {
			n = tls_name_copy(type == GEN_URI ? g->d.uniformResourceIdentifier
							  : g->d.dNSName,
					  out, size);
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	return n;
}

int tls_cert_name(const X509_NAME *name, char *out, size_t size)
{
	BIO *mem;
	char *text = NULL;
	long len;
	int n = -1;

	if (name == NULL || size == 0 || (mem = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (len = BIO_get_mem_data(mem, &text)) > 0 && (size_t)len < size &&
	    memchr(text, '\0', (size_t)len) == NULL) {
		memcpy(out, text, (size_t)len);
		out[len] = '\0';
		n = (int)len;
	}
	BIO_free(mem);
	return n;
}

int tls_peer_identity(const SSL *ssl, char *out, size_t size)
{
	X509 *x;
	int n;

	if (ssl == NULL || size == 0 || (x = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	if ((n = tls_cert_san(x, GEN_URI, out, size)) < 0 &&
	    (n = tls_cert_san(x, GEN_DNS, out, size)) < 0)
		n = tls_cert_name(X509_get_subject_name(x), out, size);
	return n;
}

/* TLS plumbing shared by termination and origination: ex_data indexes, the Mozilla
 * "intermediate" defaults, and handshake failure reasons.
 *
 * Reasons are recorded where the failure is understood (SNI selection, the verify
 * callback) and, as a fallback, from the fatal alert OpenSSL sends or receives (the info
 * callback peeks at the error that caused it).  They live in SSL ex_data, allocated only
 * when a handshake fails, so a successful handshake pays nothing for them. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"
#include "tls_int.h"

struct tls_ex tls_ex = {-1, -1, -1, -1, -1, -1};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static bool tls_init_ok;

/* Defined next to the data they free. */
void tls_verify_policy_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp);
void tls_client_sessions_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp);

static void tls_free_str(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	free(ptr);
}

/* SSL_dup() would otherwise copy the pointer and both copies would free it. */
static int tls_dup_none(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx,
			long argl, void *argp)
{
	*from_d = NULL;
	return 1;
}

static void tls_init_once(void)
{
	tls_ex.ssl_reason = SSL_get_ex_new_index(0, NULL, NULL, tls_dup_none, tls_free_str);
	tls_ex.ssl_entry = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_ex.ssl_host = SSL_get_ex_new_index(0, NULL, NULL, tls_dup_none, tls_free_str);
	tls_ex.ctx_policy =
	    SSL_CTX_get_ex_new_index(0, NULL, NULL, tls_dup_none, tls_verify_policy_free);
	tls_ex.ctx_sessions =
	    SSL_CTX_get_ex_new_index(0, NULL, NULL, tls_dup_none, tls_client_sessions_free);
	tls_ex.ctx_table = SSL_CTX_get_ex_new_index(0, NULL, NULL, tls_dup_none, NULL);
	tls_init_ok = tls_ex.ssl_reason >= 0 && tls_ex.ssl_entry >= 0 && tls_ex.ssl_host >= 0 &&
		      tls_ex.ctx_policy >= 0 && tls_ex.ctx_sessions >= 0 && tls_ex.ctx_table >= 0;
}

int tls_init(void)
{
	if (pthread_once(&tls_once, tls_init_once) != 0)
		return -1;
	return tls_init_ok ? 0 : -1;
}

bool tls_has_reason(const SSL *ssl)
{
	return tls_ex.ssl_reason >= 0 && SSL_get_ex_data(ssl, tls_ex.ssl_reason) != NULL;
}

/* The reason's text follows one byte holding its enum tls_fail. */
void tls_set_reason(const SSL *ssl, enum tls_fail kind, const char *fmt, ...)
{
	char buf[257], *s;
	va_list ap;

	if (tls_ex.ssl_reason < 0 || tls_has_reason(ssl))
		return;
	buf[0] = (char)kind;
	va_start(ap, fmt);
	vsnprintf(buf + 1, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	/* Out of memory only loses the log detail, never the connection's fate. */
	if ((s = malloc(strlen(buf + 1) + 2)) == NULL)
		return;
	s[0] = buf[0];
	strcpy(s + 1, buf + 1);
	/* ex_data is our bookkeeping, not TLS state: callbacks that only get a const SSL
	 * (the info callback) may still record into it. */
	if (!SSL_set_ex_data((SSL *)ssl, tls_ex.ssl_reason, s))
		free(s);
}

/* The error behind a fatal alert we are about to send, in words an operator can act on. */
static const char *tls_alert_cause(const SSL *ssl, unsigned long err, char *buf, size_t size,
				   enum tls_fail *kind)
{
	const char *who = SSL_is_server(ssl) ? "client" : "upstream";

	*kind = TLS_FAIL_OTHER;
	if (ERR_GET_LIB(err) != ERR_LIB_SSL) {
		const char *r = err != 0 ? ERR_reason_error_string(err) : NULL;

		return r != NULL ? r : "handshake failed";
	}
	switch (ERR_GET_REASON(err)) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		*kind = TLS_FAIL_NO_CLIENT_CERT;
		return "client certificate required";
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_VERSION_TOO_HIGH:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		*kind = TLS_FAIL_PROTOCOL;
		snprintf(buf, size, "protocol version mismatch (%s)", ERR_reason_error_string(err));
		return buf;
	case SSL_R_NO_SHARED_CIPHER:
		*kind = TLS_FAIL_CIPHER;
		return "no shared cipher";
	case SSL_R_NO_SUITABLE_KEY_SHARE:
	case SSL_R_NO_SHARED_GROUPS:
		*kind = TLS_FAIL_CIPHER;
		return "no shared key exchange group";
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
		*kind = TLS_FAIL_CIPHER;
		return "no shared signature algorithm";
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		*kind = TLS_FAIL_CLIENT_CERT_UNVERIFIED;
		snprintf(buf, size, "%s certificate verify failed", who);
		return buf;
	default: {
		const char *r = ERR_reason_error_string(err);

		return r != NULL ? r : "handshake failed";
	}
	}
}

/* SSL_alert_desc_string_long() of OpenSSL 3.0 predates the TLS 1.3 alerts. */
static const char *tls_alert_name(int ret)
{
	switch (ret & 0xff) {
	case 109:
		return "missing extension";
	case 115:
		return "unknown PSK identity";
	case 116:
		return "certificate required";
	case 120:
		return "no application protocol";
	}
	return SSL_alert_desc_string_long(ret);
}

/* A fatal alert the peer sent, by what it says. */
static enum tls_fail tls_alert_kind(int ret)
{
	switch (ret & 0xff) {
	case SSL_AD_PROTOCOL_VERSION:
		return TLS_FAIL_PROTOCOL;
	case SSL_AD_INSUFFICIENT_SECURITY:
		return TLS_FAIL_CIPHER;
	}
	return TLS_FAIL_OTHER;
}

void tls_info_cb(const SSL *ssl, int where, int ret)
{
	enum tls_fail kind;
	const char *cause;
	char buf[160];

	/* Every state change lands here: keep the common path to one test. */
	if ((where & SSL_CB_ALERT) == 0 || (ret >> 8) != SSL3_AL_FATAL || tls_has_reason(ssl))
		return;
	if (where & SSL_CB_READ) {
		tls_set_reason(ssl, tls_alert_kind(ret), "%s sent alert %s",
			       SSL_is_server(ssl) ? "client" : "upstream", tls_alert_name(ret));
		return;
	}
	/* OpenSSL raises the error before it writes the alert (ossl_statem_fatal). */
	cause = tls_alert_cause(ssl, ERR_peek_last_error(), buf, sizeof(buf), &kind);
	tls_set_reason(ssl, kind, "%s (alert %s)", cause, tls_alert_name(ret));
}

static const char *const tls_fail_names[TLS_FAIL__COUNT] = {
    [TLS_FAIL_OTHER] = "other",
    [TLS_FAIL_NO_SNI_MATCH] = "no_sni_match",
    [TLS_FAIL_NO_CLIENT_CERT] = "no_client_cert",
    [TLS_FAIL_CLIENT_CERT_UNVERIFIED] = "client_cert_unverified",
    [TLS_FAIL_SAN_MISMATCH] = "san_mismatch",
    [TLS_FAIL_PROTOCOL] = "protocol",
    [TLS_FAIL_CIPHER] = "cipher",
};

const char *tls_fail_name(enum tls_fail k)
{
	return (unsigned)k < TLS_FAIL__COUNT ? tls_fail_names[k] : "other";
}

enum tls_fail tls_failure_kind(const SSL *ssl)
{
	const char *r;

	if (ssl == NULL)
		return TLS_FAIL_OTHER;
	if (tls_ex.ssl_reason >= 0 && (r = SSL_get_ex_data(ssl, tls_ex.ssl_reason)) != NULL)
		return (unsigned char)r[0] < TLS_FAIL__COUNT ? (enum tls_fail)r[0] : TLS_FAIL_OTHER;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return TLS_FAIL_CLIENT_CERT_UNVERIFIED;
	return TLS_FAIL_OTHER;
}

const char *tls_failure_reason(const SSL *ssl)
{
	const char *r;
	long v;

	if (ssl == NULL)
		return "no TLS session";
	if (tls_ex.ssl_reason >= 0 && (r = SSL_get_ex_data(ssl, tls_ex.ssl_reason)) != NULL)
		return r + 1;
	if ((v = SSL_get_verify_result(ssl)) != X509_V_OK)
		return X509_verify_cert_error_string(v);
	return "handshake failed";
}

const char *tls_err_string(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

int tls_ctx_defaults(SSL_CTX *ctx)
{
	/* Level 2 = 112-bit security: RSA >= 2048, ECC >= 224, no SHA-1 signatures; the
	 * floor of the intermediate profile, and stable whatever openssl.cnf says. */
	SSL_CTX_set_security_level(ctx, 2);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS))
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Equal-strength AEADs: let clients without AES hardware pick ChaCha20. */
	SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* RELEASE_BUFFERS: idle keep-alive connections hold no record buffers (DESIGN.md §6
	 * memory target).  NO_AUTO_CHAIN: the chain is what the certificate file holds (as in
	 * Envoy); otherwise OpenSSL rebuilds it from the verify store on every handshake and
	 * could append the client-CA bundle of a MUTUAL server to it. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_info_callback(ctx, tls_info_cb);
	return 0;
}

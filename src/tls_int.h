/* Internals shared by the TLS files (tls.c, tls_load.c, tls_server.c, tls_sni.c,
 * tls_verify.c, tls_client.c); nothing outside them includes this.
 *
 * Ownership: per-context data that OpenSSL callbacks read (the peer verification policy,
 * the client session cache) hangs off SSL_CTX ex_data.  The policy
 * and the session cache are malloc'd and freed by the ex_data free callbacks when the
 * SSL_CTX's last reference goes, so an SSL that outlives its config snapshot (a pooled
 * upstream connection receiving a late session ticket) never reaches freed memory. */
#ifndef MG_TLS_INT_H
#define MG_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/model.h"
#include "tls.h"

struct pool;
struct diag;
struct node;

/* ex_data indexes, created once (tls_init). */
struct tls_ex {
	int ssl_reason;   /* char *: enum tls_fail byte, then why the handshake failed (malloc'd) */
	int ssl_entry;    /* const struct tls_sni_entry *: the SNI selection */
	int ssl_host;     /* char *: client session cache key (malloc'd, freed with the SSL) */
	int ctx_policy;   /* struct tls_peer_policy * (owned by the SSL_CTX) */
	int ctx_sessions; /* struct tls_sess_cache * (owned by the SSL_CTX) */
	int ctx_table;    /* const struct tls_sni_table * whose SSLs this context makes */
};
extern struct tls_ex tls_ex;

/* Creates the ex_data indexes once; 0 or -1.  Every constructor calls it first. */
int tls_init(void);

/* Records why the handshake on ssl fails; the first reason wins (the root cause is the
 * first thing noticed, later alerts only echo it).  Allocates only on failure. */
void tls_set_reason(const SSL *ssl, enum tls_fail kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool tls_has_reason(const SSL *ssl);
/* Info callback installed on every context: turns fatal alerts into reasons. */
void tls_info_cb(const SSL *ssl, int where, int ret);

/* Mozilla "intermediate" profile on a fresh context; min/max are TLS1_x_VERSION. */
#define TLS_CIPHERS_12                                                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:prime256v1:secp384r1"
int tls_ctx_defaults(SSL_CTX *ctx);
/* OpenSSL's last error as text ("unknown error" when the queue is empty); clears the queue. */
const char *tls_err_string(char *buf, size_t size);

/* ---- tls_server.c ---- */

/* Session settings every terminating context shares (the SNI front context too, since
 * tickets are issued and decrypted with the context the SSL was created from). */
int tls_server_ctx_setup_sessions(SSL_CTX *ctx);

/* ---- tls_load.c: files ---- */

/* A path from the config: relative paths are relative to the main file's directory. */
const char *tls_load_path(struct pool *p, const struct cfg_main *m, const char *path);

/* The files a credentialName names: <credentialsDir>/NAME/{tls.crt|cert, tls.key|key,
 * ca.crt|cacert, ca.crl}; the CA may also live in NAME-cacert/ (Istio's split secret).
 * Absent optional files are NULL.  need_cert: tls.crt and tls.key must exist. */
struct tls_cred {
	const char *cert, *key, *ca, *crl;
};
bool tls_load_cred(struct pool *p, struct diag *d, const struct node *at, const struct cfg_main *m,
		   const char *name, bool need_cert, struct tls_cred *out);

/* Certificate (chain file: leaf first, then intermediates) and matching private key into
 * ctx, in the slot of the key's type.  Reports (at `at`, files named) unreadable files, no
 * certificate, encrypted or mismatched keys, expiry (error) and expiry within 7 days
 * (warning).  *not_after is lowered to the earliest expiry seen; *key_types collects
 * TLS_KEY_* bits so two certificates of one type are refused. */
#define TLS_KEY_RSA 0x1
#define TLS_KEY_EC 0x2
#define TLS_KEY_OTHER 0x4
bool tls_load_cert_key(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *cert,
		       const char *key, int64_t *not_after, unsigned *key_types);
/* Trust anchors into ctx's verify store; client_ca_names: also send them in the
 * CertificateRequest (server side). */
bool tls_load_ca(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *path,
		 bool client_ca_names);
/* CRLs into ctx's verify store, with leaf CRL checking on. */
bool tls_load_crl(SSL_CTX *ctx, struct diag *d, const struct node *at, const char *path);
/* x's notAfter in unix seconds (INT64_MAX when unreadable). */
int64_t tls_load_not_after(const X509 *x);

/* ---- tls_verify.c: peer certificate checks ---- */

#define TLS_SHA256_LEN 32

/* What a peer certificate must satisfy beyond chain verification. */
struct tls_peer_policy {
	const char *who;    /* "client" or "upstream": prefixes the failure reasons */
	bool dns_wildcards; /* a "*.x" DNS SAN in the peer certificate covers "a.x" */
	char **san;
	size_t nsan;
	unsigned char (*spki)[TLS_SHA256_LEN];
	size_t nspki;
	unsigned char (*hash)[TLS_SHA256_LEN];
	size_t nhash;
};

/* Decodes the pins of a policy (malloc'd) and attaches it to ctx, which then owns it.
 * Reports malformed pins at their nodes (spki_node / hash_node may be NULL). */
struct tls_peer_policy *tls_verify_policy_new(SSL_CTX *ctx, struct diag *d, const char *who,
					      bool dns_wildcards, const struct str_list *san,
					      const struct str_list *spki,
					      const struct node *spki_node,
					      const struct str_list *hash,
					      const struct node *hash_node);
/* The verify callback of every verifying context: records OpenSSL's reason, then checks
 * the policy's SAN/SPKI/hash pins on the leaf. */
int tls_verify_cb(int ok, X509_STORE_CTX *xs);

#endif

/* TLS contexts (OpenSSL 3) for Gateway servers (termination) and DestinationRule
 * origination.  Built on the control thread at link time, owned by the snapshot (freed
 * with its pool), read-only afterwards, so workers share them without locks.
 *
 * Defaults follow Mozilla's "intermediate" profile: TLS 1.2 and 1.3, ECDHE + AEAD ciphers
 * only, groups X25519:P-256:P-384, server cipher preference off (clients choose among
 * equally strong suites), compression and renegotiation off.
 *
 * Lifetimes (for the code that owns connections): SSL_CTX objects are refcounted by
 * OpenSSL and the data their callbacks read (verification policy, client session cache)
 * is owned by the SSL_CTX, so an SSL may outlive the snapshot that created it (a pooled
 * upstream connection).  What is pool memory -- tls_selected()'s entry and its `user`, the
 * tls_server_ctx/tls_client_ctx structs -- needs the snapshot pinned while it is used.
 * Close cleanly with SSL_shutdown() (or at least SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN))
 * before SSL_free(): OpenSSL marks the session of an SSL freed mid-connection as not
 * resumable, which would defeat upstream session resumption.  Failure reasons read
 * OpenSSL's per-thread error queue when an alert is sent: clear it (ERR_clear_error())
 * before driving an SSL, as OpenSSL requires anyway. */
#ifndef MG_TLS_H
#define MG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config/model.h"

struct pool;
struct diag;

/* One terminating server context: certificate(s), key(s), client-certificate policy. */
struct tls_server_ctx {
	SSL_CTX *ctx;
	enum tls_mode mode;
	const struct gw_server *server;
	int64_t not_after; /* earliest certificate expiry (unix seconds), for metrics/-t */
	const char *cert_path;
	/* client certificate pins (MUTUAL / OPTIONAL_MUTUAL), checked in the verify callback */
	struct str_list subject_alt_names, verify_spki, verify_hash;
};

/* Build the context for a Gateway server's tls block (SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
 * ISTIO_MUTUAL).  Files: serverCertificate/privateKey/caCertificates/caCrl, or
 * credentialName(s) resolved to <credentialsDir>/NAME/{tls.crt,tls.key,ca.crt} (also
 * cert, key, cacert).  Reports at the tls node (file named): missing/unreadable files, key
 * not matching its certificate, expired certificate (error), certificate expiring within 7
 * days (warning), unknown cipher names, min > max.  ISTIO_MUTUAL is refused for now (the
 * main config's meshIdentity serves origination only).  Returns NULL on error. */
struct tls_server_ctx *tls_server_ctx_new(struct pool *p, struct diag *d,
					  const struct gw_server *srv, const struct cfg_main *m);

/* The SNI table of one listener: servers in precedence order (exact host, longest
 * "*.suffix", "*"), each with its context and an opaque per-server pointer the caller uses
 * for its route table.  An entry without a context is a TLS passthrough host (its `user`
 * says where to relay): lookups find it like any other, and a handshake that selects it
 * fails. */
struct tls_sni_entry {
	const char *host; /* "foo.com", "*.foo.com" or "*" (lower-case) */
	struct tls_server_ctx *sctx;
	void *user;
};

struct tls_sni_table {
	struct tls_sni_entry *v;
	size_t n;
	struct tls_sni_entry *no_sni; /* for clients without SNI; NULL: handshake fails */
	SSL_CTX *front;               /* its client-hello callback switches to the selected server's
				       * context */
	SSL_CTX *direct; /* the one server context of every host, when there is one: SSLs
			  * are made from it and need no switch; else NULL */
	struct tls_sni_index *index; /* built by tls_sni_table_init: sorted exact names and
				      * wildcard suffixes, so lookups are O(labels * log n) */
};

/* Build the front context and install the client-hello callback (SSL_CTX_set_client_hello_cb)
 * that reads SNI, picks the entry (exact > longest wildcard > "*"; no SNI -> no_sni) and
 * SSL_set_SSL_CTX()s to it. The chosen entry is retrievable after the handshake. */
int tls_sni_table_init(struct pool *p, struct tls_sni_table *t);
/* Clients without SNI are served as if they had sent host (exact, wildcard or "*" entry,
 * as a lookup finds it); false, and no change, when no entry matches.  After
 * tls_sni_table_init() or tls_sni_table_index(). */
bool tls_sni_table_default(struct tls_sni_table *t, const char *host);
/* Only the lookup index (front stays NULL): a listener where every host is passed through. */
void tls_sni_table_index(struct pool *p, struct tls_sni_table *t);
/* Lookup needs tls_sni_table_init() first (it builds t->index); sni need not be
 * lower-case nor NUL-terminated; a trailing dot is ignored. */
const struct tls_sni_entry *tls_sni_lookup(const struct tls_sni_table *t, const char *sni,
					   size_t len);
/* The entry the handshake selected (NULL before the client hello or when none matched). */
const struct tls_sni_entry *tls_selected(const SSL *ssl);
/* What kind of failure that was, for the handshake failure counters (a small fixed set, so
 * the metric has few series).  Names are the metric's reason labels. */
enum tls_fail {
	TLS_FAIL_OTHER = 0,
	TLS_FAIL_NO_SNI_MATCH,           /* no SNI and no default, unknown or invalid SNI */
	TLS_FAIL_NO_CLIENT_CERT,         /* MUTUAL / ISTIO_MUTUAL without a client certificate */
	TLS_FAIL_CLIENT_CERT_UNVERIFIED, /* chain, expiry, revocation */
	TLS_FAIL_SAN_MISMATCH,           /* subjectAltNames or SPKI/hash pins */
	TLS_FAIL_PROTOCOL,               /* protocol version, malformed hello */
	TLS_FAIL_CIPHER,                 /* no shared cipher, group or signature algorithm */
	TLS_FAIL__COUNT
};
enum tls_fail tls_failure_kind(const SSL *ssl);
const char *tls_fail_name(enum tls_fail k);

/* Why the last handshake on ssl failed, for the log ("no certificate for SNI x",
 * "client certificate required", "client certificate SAN mismatch", OpenSSL's reason).
 * Never NULL: "handshake failed" when nothing more precise is known (e.g. the peer just
 * closed the connection). */
const char *tls_failure_reason(const SSL *ssl);

/* Envoy-format x-forwarded-client-cert value for a verified peer certificate:
 * Hash=<sha256 hex>;Subject="...";URI=...;DNS=...  Written into out; returns length or -1.
 * -1 (and "") also when there is no verified peer certificate or out is too small.  It
 * hashes and prints the certificate: compute it once per connection, not per request. */
int tls_xfcc(const SSL *ssl, char *out, size_t size);
/* The Istio identity of a verified client certificate, as AuthorizationPolicy principals
 * name it: its first URI SAN without "spiffe://" ("td/ns/NS/sa/ACCOUNT").  Written into
 * out; returns its length, or -1 (no verified certificate, no URI SAN, too long). */
int tls_peer_principal(const SSL *ssl, char *out, size_t size);
/* A verified client certificate's identity as Envoy's ext_authz CheckRequest gives it
 * (source.principal): its first URI SAN as written, else its first DNS SAN, else its
 * subject (RFC 2253).  Written into out; returns its length, or -1 (no verified
 * certificate, nothing usable, too long). */
int tls_peer_identity(const SSL *ssl, char *out, size_t size);
/* A certificate's first subject alternative name of type (GEN_URI, GEN_DNS), and a name
 * (subject, issuer) in RFC 2253, into out; each returns the length, or -1 (none, a NUL
 * inside, too long). */
int tls_cert_san(const X509 *x, int type, char *out, size_t size);
int tls_cert_name(const X509_NAME *name, char *out, size_t size);

/* Upstream origination: DestinationRule trafficPolicy.tls (DISABLE/SIMPLE/MUTUAL/
 * ISTIO_MUTUAL) with caCertificates, clientCertificate, privateKey, credentialName, sni,
 * subjectAltNames, insecureSkipVerify.  tls_node is the DR's tls map (decoded here).
 * Also caCrl (Istio ClientTLSSettings has it).  DISABLE (or no tls map) returns a context
 * with ctx == NULL: plaintext.  ISTIO_MUTUAL presents m's meshIdentity certificate and
 * verifies the peer against its mesh root, by mesh_sans (the ServiceEntry's
 * subjectAltNames; may be NULL) unless the tls block names subjectAltNames; without a mesh
 * identity it is an error saying what to configure.  Thread-safe once built: workers share
 * it. */
struct tls_client_ctx {
	SSL_CTX *ctx;
	const char *sni; /* NULL: use the destination host */
	struct str_list subject_alt_names;
	bool verify;
	bool mesh;   /* ISTIO_MUTUAL */
	uint64_t id; /* fingerprint of the settings and the files' identities (not contents) */
};
struct tls_client_ctx *tls_client_ctx_new(struct pool *p, struct diag *d, struct node *tls_node,
					  const struct cfg_main *m,
					  const struct str_list *mesh_sans);
/* Whether connections verify the certificate against the name they send (SNI): a verifying
 * context without subjectAltNames, except ISTIO_MUTUAL (mesh certificates name SPIFFE
 * identities, not hosts). */
bool tls_client_checks_name(const struct tls_client_ctx *c);
/* A pool key for connections of c to name: equal ids give interchangeable connections (same
 * settings, same files, same name), so pools survive reloads that do not change them. */
uint64_t tls_client_origin_id(const struct tls_client_ctx *c, const char *name);
/* Prepare an SSL for connecting: SNI, hostname/SAN verification, session resumption.
 * host is what the SNI defaults to and what resumption is keyed by (the destination host,
 * or the request authority when that is what Istio would send); an IP literal is verified
 * against the certificate's IP SANs and sends no SNI.  In connect state; NULL on error or
 * when c->ctx is NULL. */
SSL *tls_client_ssl_new(const struct tls_client_ctx *c, const char *host);
/* The same from the pieces a pooled-connection record keeps beyond its snapshot (ctx is
 * refcounted): name is sent as SNI (never an IP literal) and, with check_name, verified
 * against the certificate; the newest session stored under session_key (NULL: name) is
 * offered for resumption, and a new one is stored there. */
SSL *tls_client_ssl_open(SSL_CTX *ctx, const char *name, bool check_name, const char *session_key);
/* Why the handshake of a client SSL failed, for the access log: "tls verify failed:
 * <reason>" when the upstream certificate was refused (chain, name, SAN), "tls handshake
 * failed: <reason>" for anything else (an alert, a closed connection).  NULL when the
 * handshake did not fail: it finished without a fatal alert, or never began because the TCP
 * connect failed.  Written into buf. */
const char *tls_client_failure(const SSL *ssl, char *buf, size_t size);

#endif

/* JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515), verified with the public keys
 * of a JSON Web Key Set (RFC 7517): what Envoy's jwt_authn filter does for an Istio
 * RequestAuthentication.  Tokens are client bytes: strict, bounded, fuzzed.  The status
 * texts are Envoy's, so clients and operators see the words they know. */
#ifndef MESHGATE_JWT_H
#define MESHGATE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define JWT_HEADER_MAX 1024  /* decoded JOSE header bytes */
#define JWT_PAYLOAD_MAX 8192 /* decoded claims bytes */
#define JWT_SIG_MAX 512      /* an RSA-4096 signature */
#define JWT_HEADER_TOKENS 64 /* JSON tokens of the header */
#define JWT_PAYLOAD_TOKENS 512

enum jwt_status {
	JWT_OK,
	JWT_BAD_FORMAT,
	JWT_HEADER_BAD_BASE64,
	JWT_HEADER_BAD_JSON,
	JWT_HEADER_BAD_ALG,
	JWT_HEADER_ALG_UNSUPPORTED,
	JWT_HEADER_CRIT,
	JWT_PAYLOAD_BAD_BASE64,
	JWT_PAYLOAD_BAD_JSON,
	JWT_PAYLOAD_BAD_CLAIM,
	JWT_SIGNATURE_BAD_BASE64,
	JWT_UNKNOWN_ISSUER,
	JWT_NO_KEY,
	JWT_VERIFICATION_FAILS,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,
	JWT_AUDIENCE_NOT_ALLOWED,
	JWT_JWKS_UNAVAILABLE,
};

/* A token taken apart (jwt_decode): header and claims decoded and parsed, the signature
 * decoded; nothing verified yet.  About 20 KiB: one per worker thread. */
struct jwt {
	int alg; /* internal algorithm number */
	char kid[256];
	bool has_kid;
	const char *signed_part; /* "header.payload" in the caller's token */
	size_t signed_len;
	uint8_t sig[JWT_SIG_MAX];
	size_t sig_len;
	char header[JWT_HEADER_MAX + 1];
	char payload[JWT_PAYLOAD_MAX + 1];
	size_t payload_len;
	struct json_tok ptok[JWT_PAYLOAD_TOKENS];
	int nptok;
	int iss, sub, aud, azp, exp, nbf; /* claim token indexes, -1 when absent */
	int scope, permission;            /* space-delimited lists (see jwt_claim_any) */
};

struct jwks;

/* A key set from its JSON text: keys of kty RSA, EC (P-256, P-384, P-521) and OKP
 * (Ed25519); keys marked "use": "enc" are left out.  NULL and a reason in err when the
 * text is not such a set or holds no usable key. */
struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t errlen);
void jwks_free(struct jwks *ks);
size_t jwks_count(const struct jwks *ks);

/* Take a compact token apart and check its claims' types (iss and sub strings, aud a
 * string or list of strings, exp and nbf integers). */
enum jwt_status jwt_decode(struct jwt *j, const char *token, size_t len);

/* The signature against the keys of ks whose kid (when the token names one) and
 * algorithm fit. */
enum jwt_status jwt_verify_signature(const struct jwt *j, const struct jwks *ks);

/* exp and nbf against now (seconds since the epoch), with skew seconds of grace. */
enum jwt_status jwt_check_time(const struct jwt *j, int64_t now, int64_t skew);

/* Some aud of the token is among the audiences (none given: any token passes).  As in
 * Envoy, "https://a.example/" and "a.example" name the same audience. */
bool jwt_audience_allowed(const struct jwt *j, const char *const *audiences, size_t n);

/* Is claim index i a string equal to s? */
bool jwt_claim_is(const struct jwt *j, int i, const char *s);

/* The token index of the claim at a path of member names (nested objects), or -1. */
int jwt_claim_path(const struct jwt *j, const char *const *names, size_t n);

/* Visit the claim's values: each string of a string or list claim, or the text of a
 * number or boolean; stop early when fn returns true (then true).  The top-level "scope"
 * and "permission" strings are lists of space-separated values, as Istio has Envoy read
 * them (space_delimited_claims). */
bool jwt_claim_any(const struct jwt *j, int i, bool (*fn)(const char *v, size_t len, void *arg),
		   void *arg);

/* Envoy's words for the status (the 401 body). */
const char *jwt_status_text(enum jwt_status s);

#endif

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "jwt.h"

enum jwt_kty { KTY_RSA, KTY_EC, KTY_OKP };

/* The JWS algorithms Envoy verifies with public keys (HMAC needs a shared secret, which
 * an Istio JWKS does not carry; "none" is never accepted). */
static const struct jwt_alg {
	const char *name;
	enum jwt_kty kty;
	const char *md;  /* digest; NULL for EdDSA */
	bool pss;        /* RSASSA-PSS */
	const char *crv; /* EC: the curve the algorithm fixes */
	size_t coord;    /* EC: bytes of r and of s */
} jwt_algs[] = {
    {"RS256", KTY_RSA, "SHA256", false, NULL, 0},
    {"RS384", KTY_RSA, "SHA384", false, NULL, 0},
    {"RS512", KTY_RSA, "SHA512", false, NULL, 0},
    {"PS256", KTY_RSA, "SHA256", true, NULL, 0},
    {"PS384", KTY_RSA, "SHA384", true, NULL, 0},
    {"PS512", KTY_RSA, "SHA512", true, NULL, 0},
    {"ES256", KTY_EC, "SHA256", false, "P-256", 32},
    {"ES384", KTY_EC, "SHA384", false, "P-384", 48},
    {"ES512", KTY_EC, "SHA512", false, "P-521", 66},
    {"EdDSA", KTY_OKP, NULL, false, "Ed25519", 0},
};
#define JWT_NALGS (sizeof(jwt_algs) / sizeof(jwt_algs[0]))

struct jwk {
	enum jwt_kty kty;
	char kid[256];
	bool has_kid;
	int alg;         /* the key's "alg", or -1: any algorithm of its type */
	const char *crv; /* EC and OKP: one of jwt_algs' curves */
	EVP_PKEY *pkey;
};

struct jwks {
	struct jwk *keys;
	size_t n;
};

const char *jwt_status_text(enum jwt_status s)
{
	switch (s) {
	case JWT_OK:
		return "OK";
	case JWT_BAD_FORMAT:
		return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 "
		       "sections";
	case JWT_HEADER_BAD_BASE64:
		return "Jwt header is an invalid Base64url encoded";
	case JWT_HEADER_BAD_JSON:
		return "Jwt header is an invalid JSON";
	case JWT_HEADER_BAD_ALG:
		return "Jwt header [alg] field is required and must be a string";
	case JWT_HEADER_ALG_UNSUPPORTED:
		return "Jwt header [alg] is not supported";
	case JWT_HEADER_CRIT:
		return "Jwt header [crit] names an extension that is not supported";
	case JWT_PAYLOAD_BAD_BASE64:
		return "Jwt payload is an invalid Base64url encoded";
	case JWT_PAYLOAD_BAD_JSON:
		return "Jwt payload is an invalid JSON";
	case JWT_PAYLOAD_BAD_CLAIM:
		return "Jwt payload has a claim of the wrong type (iss, sub: string; aud: string "
		       "or string list; exp, nbf: integer)";
	case JWT_SIGNATURE_BAD_BASE64:
		return "Jwt signature is an invalid Base64url encoded";
	case JWT_UNKNOWN_ISSUER:
		return "Jwt issuer is not configured";
	case JWT_NO_KEY:
		return "Jwks doesn't have key to match kid or alg from Jwt";
	case JWT_VERIFICATION_FAILS:
		return "Jwt verification fails";
	case JWT_EXPIRED:
		return "Jwt is expired";
	case JWT_NOT_YET_VALID:
		return "Jwt not yet valid";
	case JWT_AUDIENCE_NOT_ALLOWED:
		return "Audiences in Jwt are not allowed";
	case JWT_JWKS_UNAVAILABLE:
		return "Jwks remote fetch is failed";
	}
	return "Jwt verification fails";
}

/* ---- base64url (RFC 4648 §5) ---- */

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decode into out (cap bytes): its length, or -1.  Canonical only (the unused low bits of
 * the last character zero), so one token has one spelling; '=' padding only when
 * allowed (key material in a JWKS is sometimes padded, tokens never are). */
static ssize_t b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap, bool pad)
{
	uint32_t acc = 0;
	size_t bits = 0, n = 0;

	if (pad)
		while (len > 0 && s[len - 1] == '=')
			len--;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (ssize_t)n;
}

/* ---- key sets ---- */

static int alg_index(const char *name)
{
	for (size_t i = 0; i < JWT_NALGS; i++)
		if (strcmp(jwt_algs[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* A base64url member of a key into out: its length, or -1 with err set. */
static ssize_t jwk_bytes(const char *text, const struct json_tok *t, int key, const char *name,
			 uint8_t *out, size_t cap, char *err, size_t errlen)
{
	char enc[1400];
	int i = json_get(text, t, key, name);
	ssize_t len, n;

	if (i < 0 || (len = json_string(text, t, i, enc, sizeof(enc))) < 0) {
		snprintf(err, errlen, "\"%s\" is missing or not a short string", name);
		return -1;
	}
	if ((n = b64url_decode(enc, (size_t)len, out, cap, true)) <= 0) {
		snprintf(err, errlen, "\"%s\" is not base64url of a fitting size", name);
		return -1;
	}
	return n;
}

static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *jwk_rsa(const char *text, const struct json_tok *t, int key, char *err,
			 size_t errlen)
{
	uint8_t n[1024], e[16];
	ssize_t nlen = jwk_bytes(text, t, key, "n", n, sizeof(n), err, errlen);
	ssize_t elen = nlen > 0 ? jwk_bytes(text, t, key, "e", e, sizeof(e), err, errlen) : -1;
	OSSL_PARAM_BLD *bld;
	BIGNUM *bn = NULL, *be = NULL;
	EVP_PKEY *pkey = NULL;

	if (elen <= 0)
		return NULL;
	if ((bld = OSSL_PARAM_BLD_new()) != NULL && (bn = BN_bin2bn(n, (int)nlen, NULL)) != NULL &&
	    (be = BN_bin2bn(e, (int)elen, NULL)) != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = pkey_from("RSA", bld);
	if (pkey == NULL)
		snprintf(err, errlen, "not a usable RSA public key");
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static EVP_PKEY *jwk_ec(const char *text, const struct json_tok *t, int key, const char *crv,
			char *err, size_t errlen)
{
	static const struct {
		const char *jwk, *ossl;
		size_t coord;
	} curves[] = {
	    {"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48}, {"P-521", "secp521r1", 66}};
	uint8_t point[1 + 2 * 66];
	size_t c;
	ssize_t xl, yl;
	OSSL_PARAM_BLD *bld;
	EVP_PKEY *pkey = NULL;

	for (c = 0; c < 3 && strcmp(curves[c].jwk, crv) != 0; c++)
		;
	if (c == 3) {
		snprintf(err, errlen, "EC curve \"%s\" is not supported (P-256, P-384, P-521)",
			 crv);
		return NULL;
	}
	point[0] = 0x04; /* uncompressed: x then y */
	xl = jwk_bytes(text, t, key, "x", point + 1, curves[c].coord, err, errlen);
	yl = xl > 0 ? jwk_bytes(text, t, key, "y", point + 1 + curves[c].coord, curves[c].coord,
				err, errlen)
		    : -1;
	if (yl <= 0)
		return NULL;
	if ((size_t)xl != curves[c].coord || (size_t)yl != curves[c].coord) {
		snprintf(err, errlen, "\"x\" and \"y\" must be %zu bytes each for %s",
			 curves[c].coord, crv);
		return NULL;
	}
	if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[c].ossl, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
					     1 + 2 * curves[c].coord))
		pkey = pkey_from("EC", bld);
	if (pkey == NULL)
		snprintf(err, errlen, "not a point on %s", crv);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static EVP_PKEY *jwk_okp(const char *text, const struct json_tok *t, int key, const char *crv,
			 char *err, size_t errlen)
{
	uint8_t x[32];
	ssize_t xl;
	EVP_PKEY *pkey;

	if (strcmp(crv, "Ed25519") != 0) {
		snprintf(err, errlen, "OKP curve \"%s\" is not supported (Ed25519)", crv);
		return NULL;
	}
	if ((xl = jwk_bytes(text, t, key, "x", x, sizeof(x), err, errlen)) != 32) {
		if (xl > 0)
			snprintf(err, errlen, "\"x\" must be 32 bytes for Ed25519");
		return NULL;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
	if (pkey == NULL)
		snprintf(err, errlen, "not a usable Ed25519 key");
	return pkey;
}

/* One member of "keys": 1 added, 0 left out, -1 refused (err says why). */
static int jwk_add(struct jwks *ks, const char *text, const struct json_tok *t, int key, char *err,
		   size_t errlen)
{
	struct jwk *k = &ks->keys[ks->n];
	char kty[16], crv[16] = "", alg[16], use[16];
	int i;

	memset(k, 0, sizeof(*k));
	k->alg = -1;
	if (t[key].type != JSON_OBJECT) {
		snprintf(err, errlen, "a key is not an object");
		return -1;
	}
	if ((i = json_get(text, t, key, "use")) >= 0 &&
	    json_string(text, t, i, use, sizeof(use)) >= 0 && strcmp(use, "enc") == 0)
		return 0;
	if ((i = json_get(text, t, key, "kty")) < 0 ||
	    json_string(text, t, i, kty, sizeof(kty)) < 0) {
		snprintf(err, errlen, "a key has no \"kty\"");
		return -1;
	}
	if ((i = json_get(text, t, key, "kid")) >= 0) {
		if (json_string(text, t, i, k->kid, sizeof(k->kid)) < 0) {
			snprintf(err, errlen, "\"kid\" is not a string of at most 255 bytes");
			return -1;
		}
		k->has_kid = true;
	}
	if ((i = json_get(text, t, key, "alg")) >= 0) {
		if (json_string(text, t, i, alg, sizeof(alg)) < 0 ||
		    (k->alg = alg_index(alg)) < 0) {
			snprintf(err, errlen,
				 "key \"%s\": \"alg\" is not one of RS256..512, "
				 "PS256..512, ES256..512, EdDSA",
				 k->kid);
			return -1;
		}
	}
	if ((i = json_get(text, t, key, "crv")) >= 0 &&
	    json_string(text, t, i, crv, sizeof(crv)) < 0) {
		snprintf(err, errlen, "\"crv\" is not a short string");
		return -1;
	}
	if (strcmp(kty, "RSA") == 0) {
		k->kty = KTY_RSA;
		k->pkey = jwk_rsa(text, t, key, err, errlen);
	} else if (strcmp(kty, "EC") == 0) {
		k->kty = KTY_EC;
		k->pkey = jwk_ec(text, t, key, crv, err, errlen);
	} else if (strcmp(kty, "OKP") == 0) {
		k->kty = KTY_OKP;
		k->pkey = jwk_okp(text, t, key, crv, err, errlen);
	} else {
		snprintf(err, errlen, "key type \"%s\" is not supported (RSA, EC, OKP)", kty);
		return -1;
	}
	if (k->pkey == NULL)
		return -1;
	for (size_t a = 0; a < JWT_NALGS; a++)
		if (jwt_algs[a].crv != NULL && strcmp(jwt_algs[a].crv, crv) == 0)
			k->crv = jwt_algs[a].crv;
	if (k->alg >= 0 && (jwt_algs[k->alg].kty != k->kty ||
			    (jwt_algs[k->alg].crv != NULL && k->crv != jwt_algs[k->alg].crv))) {
		snprintf(err, errlen, "key \"%s\": \"alg\" %s does not fit the key", k->kid,
			 jwt_algs[k->alg].name);
		EVP_PKEY_free(k->pkey);
		return -1;
	}
	ks->n++;
	return 1;
}

struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t errlen)
{
	enum { MAX_TOKENS = 2048 };
	struct json_tok *t = malloc(MAX_TOKENS * sizeof(*t));
	struct jwks *ks = calloc(1, sizeof(*ks));
	int ntok, keys;

	snprintf(err, errlen, "out of memory");
	if (t == NULL || ks == NULL)
		goto fail;
	if ((ntok = json_parse(text, len, t, MAX_TOKENS)) < 0) {
		snprintf(err, errlen, "not JSON (or more than %d values)", MAX_TOKENS);
		goto fail;
	}
	if ((keys = json_get(text, t, 0, "keys")) < 0 || t[keys].type != JSON_ARRAY) {
		snprintf(err, errlen, "a JWKS is an object with a \"keys\" list");
		goto fail;
	}
	if ((ks->keys = calloc(t[keys].size ? t[keys].size : 1, sizeof(*ks->keys))) == NULL)
		goto fail;
	for (uint32_t k = 0, i = (uint32_t)keys + 1; k < t[keys].size; k++, i = t[i].next)
		if (jwk_add(ks, text, t, (int)i, err, errlen) < 0)
			goto fail;
	if (ks->n == 0) {
		snprintf(err, errlen, "no signing key in \"keys\"");
		goto fail;
	}
	free(t);
	return ks;
fail:
	free(t);
	jwks_free(ks);
	return NULL;
}

void jwks_free(struct jwks *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->keys[i].pkey);
	free(ks->keys);
	free(ks);
}

size_t jwks_count(const struct jwks *ks)
{
	return ks != NULL ? ks->n : 0;
}

/* ---- tokens ---- */

static bool is_integer(const struct jwt *j, int i)
{
	double v;

	return json_number(j->payload, j->ptok, i, &v) && v == floor(v) && fabs(v) < 9.2e18;
}

static bool claim_types_ok(struct jwt *j)
{
	const char *p = j->payload;
	const struct json_tok *t = j->ptok;

	j->iss = json_get(p, t, 0, "iss");
	j->sub = json_get(p, t, 0, "sub");
	j->aud = json_get(p, t, 0, "aud");
	j->azp = json_get(p, t, 0, "azp");
	j->exp = json_get(p, t, 0, "exp");
	j->nbf = json_get(p, t, 0, "nbf");
	j->scope = json_get(p, t, 0, "scope");
	j->permission = json_get(p, t, 0, "permission");
	if ((j->iss >= 0 && t[j->iss].type != JSON_STRING) ||
	    (j->sub >= 0 && t[j->sub].type != JSON_STRING) ||
	    (j->azp >= 0 && t[j->azp].type != JSON_STRING) ||
	    (j->exp >= 0 && !is_integer(j, j->exp)) || (j->nbf >= 0 && !is_integer(j, j->nbf)))
		return false;
	if (j->aud >= 0 && t[j->aud].type == JSON_ARRAY) {
		for (uint32_t k = 0, i = (uint32_t)j->aud + 1; k < t[j->aud].size;
		     k++, i = t[i].next)
			if (t[i].type != JSON_STRING)
				return false;
	} else if (j->aud >= 0 && t[j->aud].type != JSON_STRING) {
		return false;
	}
	return true;
}

static enum jwt_status header_decode(struct jwt *j, const char *h, size_t len)
{
	struct json_tok t[JWT_HEADER_TOKENS];
	char alg[16];
	ssize_t n = b64url_decode(h, len, (uint8_t *)j->header, JWT_HEADER_MAX, false);
	int i;

	if (n < 0)
		return JWT_HEADER_BAD_BASE64;
	j->header[n] = '\0';
	if (json_parse(j->header, (size_t)n, t, JWT_HEADER_TOKENS) < 0 || t[0].type != JSON_OBJECT)
		return JWT_HEADER_BAD_JSON;
	if ((i = json_get(j->header, t, 0, "alg")) < 0 || t[i].type != JSON_STRING)
		return JWT_HEADER_BAD_ALG;
	if (json_string(j->header, t, i, alg, sizeof(alg)) < 0 || (j->alg = alg_index(alg)) < 0)
		return JWT_HEADER_ALG_UNSUPPORTED;
	/* RFC 7515 §4.1.11: an extension the recipient must understand; we know none. */
	if (json_get(j->header, t, 0, "crit") >= 0)
		return JWT_HEADER_CRIT;
	j->has_kid = false;
	if ((i = json_get(j->header, t, 0, "kid")) >= 0) {
		if (json_string(j->header, t, i, j->kid, sizeof(j->kid)) < 0)
			return JWT_HEADER_BAD_JSON;
		j->has_kid = true;
	}
	return JWT_OK;
}

enum jwt_status jwt_decode(struct jwt *j, const char *token, size_t len)
{
	const char *d1 = memchr(token, '.', len), *d2;
	enum jwt_status st;
	ssize_t n;

	if (d1 == NULL || (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token))) == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
		return JWT_BAD_FORMAT;
	if ((st = header_decode(j, token, (size_t)(d1 - token))) != JWT_OK)
		return st;
	n = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (uint8_t *)j->payload, JWT_PAYLOAD_MAX,
			  false);
	if (n < 0)
		return JWT_PAYLOAD_BAD_BASE64;
	j->payload[n] = '\0';
	j->payload_len = (size_t)n;
	j->nptok = json_parse(j->payload, j->payload_len, j->ptok, JWT_PAYLOAD_TOKENS);
	if (j->nptok < 0 || j->ptok[0].type != JSON_OBJECT)
		return JWT_PAYLOAD_BAD_JSON;
	if (!claim_types_ok(j))
		return JWT_PAYLOAD_BAD_CLAIM;
	n = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), j->sig, sizeof(j->sig), false);
	if (n <= 0)
		return JWT_SIGNATURE_BAD_BASE64;
	j->sig_len = (size_t)n;
	j->signed_part = token;
	j->signed_len = (size_t)(d2 - token);
	return JWT_OK;
}

/* JWS carries an ECDSA signature as r || s; OpenSSL wants DER. */
static int ecdsa_der(const uint8_t *sig, size_t len, size_t coord, uint8_t **der)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	int n;

	if (len != 2 * coord)
		return -1;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, (int)coord, NULL);
	s = BN_bin2bn(sig + coord, (int)coord, NULL);
	if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	*der = NULL;
	n = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	return n;
}

static bool verify_with(const struct jwt *j, const struct jwk *k)
{
	const struct jwt_alg *a = &jwt_algs[j->alg];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const uint8_t *sig = j->sig;
	uint8_t *der = NULL;
	size_t sig_len = j->sig_len;
	bool ok = false;

	if (md == NULL)
		return false;
	if (a->kty == KTY_EC) {
		int n = ecdsa_der(j->sig, j->sig_len, a->coord, &der);

		if (n <= 0)
			goto out;
		sig = der;
		sig_len = (size_t)n;
	}
	if (EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, k->pkey, NULL) <= 0)
		goto out;
	if (a->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto out;
	ok =
	    EVP_DigestVerify(md, sig, sig_len, (const uint8_t *)j->signed_part, j->signed_len) == 1;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

enum jwt_status jwt_verify_signature(const struct jwt *j, const struct jwks *ks)
{
	const struct jwt_alg *a = &jwt_algs[j->alg];
	bool tried = false;

	for (size_t i = 0; ks != NULL && i < ks->n; i++) {
		const struct jwk *k = &ks->keys[i];

		if (k->kty != a->kty || (k->alg >= 0 && k->alg != j->alg) ||
		    (a->crv != NULL && k->crv != a->crv))
			continue;
		/* A token that names its key is checked with that key only; one that does not
		 * may be signed by any key of the set (Envoy tries them in turn). */
		if (j->has_kid && (!k->has_kid || strcmp(k->kid, j->kid) != 0))
			continue;
		tried = true;
		if (verify_with(j, k))
			return JWT_OK;
	}
	return tried ? JWT_VERIFICATION_FAILS : JWT_NO_KEY;
}

enum jwt_status jwt_check_time(const struct jwt *j, int64_t now, int64_t skew)
{
	double v;

	if (j->exp >= 0 && json_number(j->payload, j->ptok, j->exp, &v) &&
	    (double)now > v + (double)skew)
		return JWT_EXPIRED;
	if (j->nbf >= 0 && json_number(j->payload, j->ptok, j->nbf, &v) &&
	    (double)now + (double)skew < v)
		return JWT_NOT_YET_VALID;
	return JWT_OK;
}

/* An audience without "http://" or "https://" and a trailing '/'. */
static void audience_core(const char *s, size_t len, const char **out, size_t *olen)
{
	if (len >= 8 && strncmp(s, "https://", 8) == 0)
		s += 8, len -= 8;
	else if (len >= 7 && strncmp(s, "http://", 7) == 0)
		s += 7, len -= 7;
	if (len > 0 && s[len - 1] == '/')
		len--;
	*out = s;
	*olen = len;
}

struct aud_want {
	const char *const *v;
	size_t n;
};

static bool audience_in(const char *aud, size_t len, void *arg)
{
	const struct aud_want *w = arg;
	const char *a, *b;
	size_t alen, blen;

	audience_core(aud, len, &a, &alen);
	for (size_t i = 0; i < w->n; i++) {
		audience_core(w->v[i], strlen(w->v[i]), &b, &blen);
		if (alen == blen && memcmp(a, b, alen) == 0)
			return true;
	}
	return false;
}

bool jwt_audience_allowed(const struct jwt *j, const char *const *audiences, size_t n)
{
	struct aud_want w = {audiences, n};

	if (n == 0)
		return true;
	return j->aud >= 0 && jwt_claim_any(j, j->aud, audience_in, &w);
}

bool jwt_claim_is(const struct jwt *j, int i, const char *s)
{
	return i >= 0 && json_string_eq(j->payload, j->ptok, i, s);
}

int jwt_claim_path(const struct jwt *j, const char *const *names, size_t n)
{
	int i = 0;

	for (size_t k = 0; k < n && i >= 0; k++)
		i = json_get(j->payload, j->ptok, i, names[k]);
	return n > 0 ? i : -1;
}

static bool value_visit(const struct jwt *j, int i, bool (*fn)(const char *, size_t, void *),
			void *arg)
{
	const struct json_tok *t = &j->ptok[i];
	char buf[JWT_PAYLOAD_MAX + 1], *save = NULL;
	ssize_t n;

	switch (t->type) {
	case JSON_STRING:
		n = json_string(j->payload, j->ptok, i, buf, sizeof(buf));
		if (n < 0)
			return false;
		if (i == j->scope || i == j->permission) {
			for (char *w = strtok_r(buf, " ", &save); w != NULL;
			     w = strtok_r(NULL, " ", &save))
				if (fn(w, strlen(w), arg))
					return true;
			return false;
		}
		return fn(buf, (size_t)n, arg);
	case JSON_NUMBER:
	case JSON_TRUE:
	case JSON_FALSE:
		return fn(j->payload + t->start, t->len, arg);
	default:
		return false;
	}
}

bool jwt_claim_any(const struct jwt *j, int i, bool (*fn)(const char *v, size_t len, void *arg),
		   void *arg)
{
	if (i < 0 || i >= j->nptok)
		return false;
	if (j->ptok[i].type != JSON_ARRAY)
		return value_visit(j, i, fn, arg);
	for (uint32_t k = 0, e = (uint32_t)i + 1; k < j->ptok[i].size; k++, e = j->ptok[e].next)
		if (value_visit(j, (int)e, fn, arg))
			return true;
	return false;
}

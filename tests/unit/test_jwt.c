/* jwt.c: key sets of RSA, EC and Ed25519 keys; tokens signed here with fresh keys verify,
 * and every kind of bad token gets Envoy's status: format, base64url, JSON, algorithm,
 * key id, signature, time and audience.  The keys are made per run with OpenSSL, so the
 * test carries no fixed secrets; tests/e2e/75-jwt.sh checks tokens that Python made. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt.h"

static EVP_PKEY *rsa_key, *ec_key, *ed_key, *other_rsa;
static char jwks_text[8192];

static void b64url(const uint8_t *in, size_t len, char *out)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = abc[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = abc[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

static void b64url_str(const char *s, char *out)
{
	b64url((const uint8_t *)s, strlen(s), out);
}

static void bn_b64(EVP_PKEY *k, const char *param, size_t pad, char *out)
{
	BIGNUM *bn = NULL;
	uint8_t buf[600];
	int n;

	assert_true(EVP_PKEY_get_bn_param(k, param, &bn));
	n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	b64url(buf, (size_t)n, out);
	BN_free(bn);
}

static int setup(void **state)
{
	char n[800], e[16], n2[800], x[64], y[64], ex[64];
	uint8_t raw[32];
	size_t rawlen = sizeof(raw);

	(void)state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	other_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(rsa_key);
	assert_non_null(other_rsa);
	assert_non_null(ec_key);
	assert_non_null(ed_key);
	bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_N, 0, n);
	bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_E, 0, e);
	bn_b64(other_rsa, OSSL_PKEY_PARAM_RSA_N, 0, n2);
	bn_b64(ec_key, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
	bn_b64(ec_key, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
	assert_true(EVP_PKEY_get_raw_public_key(ed_key, raw, &rawlen));
	b64url(raw, rawlen, ex);
	snprintf(jwks_text, sizeof(jwks_text),
		 "{\"keys\":["
		 "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
		 "{\"kty\":\"RSA\",\"kid\":\"rsa2\",\"n\":\"%s\",\"e\":\"%s\",\"use\":\"sig\"},"
		 "{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
		 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"},"
		 "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"
		 "]}",
		 n, e, n2, e, x, y, ex);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(other_rsa);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ed_key);
	return 0;
}

/* header.payload.signature signed with k under alg. */
static char *sign(EVP_PKEY *k, const char *alg, const char *header_json, const char *payload)
{
	static char tok[12000];
	char h[2048], p[8192];
	uint8_t sig[1024], *der;
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const char *digest = strcmp(alg, "EdDSA") == 0    ? NULL
			     : strstr(alg, "384") != NULL ? "SHA384"
			     : strstr(alg, "512") != NULL ? "SHA512"
							  : "SHA256";

	b64url_str(header_json, h);
	b64url_str(payload, p);
	snprintf(tok, sizeof(tok), "%s.%s", h, p);
	assert_true(EVP_DigestSignInit_ex(md, &pctx, digest, NULL, NULL, k, NULL) == 1);
	if (alg[0] == 'P') {
		assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
		assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1);
	}
	assert_true(EVP_DigestSign(md, sig, &sig_len, (uint8_t *)tok, strlen(tok)) == 1);
	EVP_MD_CTX_free(md);
	if (alg[0] == 'E' && alg[1] == 'S') { /* DER to r || s */
		const uint8_t *q = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);

		assert_non_null(es);
		der = sig;
		BN_bn2binpad(ECDSA_SIG_get0_r(es), der, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), der + 32, 32);
		sig_len = 64;
		ECDSA_SIG_free(es);
	}
	strcat(tok, ".");
	b64url(sig, sig_len, tok + strlen(tok));
	return tok;
}

static struct jwt jw;

static enum jwt_status check(const char *tok, const struct jwks *ks, int64_t now)
{
	enum jwt_status st = jwt_decode(&jw, tok, strlen(tok));

	if (st == JWT_OK)
		st = jwt_verify_signature(&jw, ks);
	if (st == JWT_OK)
		st = jwt_check_time(&jw, now, 60);
	return st;
}

static struct jwks *load(void)
{
	char err[256];
	struct jwks *ks = jwks_parse(jwks_text, strlen(jwks_text), err, sizeof(err));

	if (ks == NULL)
		fail_msg("jwks: %s", err);
	return ks;
}

static void test_jwks(void **state)
{
	struct jwks *ks = load();
	char err[256];
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"[]", "\"keys\""},
	    {"{\"keys\":[]}", "no signing key"},
	    {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", "\"oct\" is not supported"},
	    {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", "\"e\""},
	    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
	     "32 bytes"},
	    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
	     "not supported"},
	    {"{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"HS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
	     "\"alg\""},
	    {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"A*AB\",\"e\":\"AQAB\"}]}", "base64url"},
	    {"{\"keys\":[{\"kty\":\"RSA\" \"n\":1}]}", "not JSON"},
	};

	(void)state;
	assert_int_equal(jwks_count(ks), 4); /* the "enc" key is left out */
	jwks_free(ks);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ks = jwks_parse(bad[i].text, strlen(bad[i].text), err, sizeof(err));
		if (ks != NULL || strstr(err, bad[i].why) == NULL)
			fail_msg("%s: got \"%s\", wanted \"%s\"", bad[i].text, err, bad[i].why);
	}
}

static const char *const payload =
    "{\"iss\":\"testing@secure.istio.io\",\"sub\":\"alice\",\"exp\":4685989700,"
    "\"groups\":[\"group1\",\"group2\"],\"nested\":{\"key\":\"v\\u00e9\"},\"n\":7}";

static void test_algorithms_verify(void **state)
{
	struct jwks *ks = load();
	time_t now = time(NULL);

	(void)state;
	assert_int_equal(
	    check(sign(rsa_key, "RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload), ks, now),
	    JWT_OK);
	assert_true(jwt_claim_is(&jw, jw.iss, "testing@secure.istio.io"));
	assert_true(jwt_claim_is(&jw, jw.sub, "alice"));
	/* rsa2 carries no alg: any RSA algorithm */
	assert_int_equal(
	    check(sign(other_rsa, "PS384", "{\"alg\":\"PS384\",\"kid\":\"rsa2\"}", payload), ks,
		  now),
	    JWT_OK);
	assert_int_equal(check(sign(other_rsa, "RS512", "{\"alg\":\"RS512\"}", payload), ks, now),
			 JWT_OK); /* no kid: every fitting key is tried */
	assert_int_equal(
	    check(sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", payload), ks, now),
	    JWT_OK);
	assert_int_equal(
	    check(sign(ed_key, "EdDSA", "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", payload), ks, now),
	    JWT_OK);
	jwks_free(ks);
}

static void test_signature_failures(void **state)
{
	struct jwks *ks = load();
	time_t now = time(NULL);
	char tok[12000];
	size_t len;

	(void)state;
	/* rsa1 is RS256 only */
	assert_int_equal(
	    check(sign(rsa_key, "PS256", "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", payload), ks, now),
	    JWT_NO_KEY);
	assert_int_equal(
	    check(sign(rsa_key, "RS256", "{\"alg\":\"RS256\",\"kid\":\"nope\"}", payload), ks, now),
	    JWT_NO_KEY);
	/* signed by rsa2's key but naming rsa1 */
	assert_int_equal(
	    check(sign(other_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload), ks,
		  now),
	    JWT_VERIFICATION_FAILS);
	/* a changed claim */
	strcpy(tok, sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", payload));
	{
		char *dot = strchr(tok, '.');

		dot[3] = dot[3] == 'A' ? 'B' : 'A';
	}
	assert_int_not_equal(check(tok, ks, now), JWT_OK);
	/* a changed signature */
	strcpy(tok, sign(ed_key, "EdDSA", "{\"alg\":\"EdDSA\"}", payload));
	len = strlen(tok);
	tok[len - 5] = tok[len - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(check(tok, ks, now), JWT_VERIFICATION_FAILS);
	/* a truncated ECDSA signature */
	strcpy(tok, sign(ec_key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", payload));
	tok[strlen(tok) - 4] = '\0';
	assert_int_not_equal(check(tok, ks, now), JWT_OK);
	jwks_free(ks);
}

static void test_malformed(void **state)
{
	struct jwks *ks = load();
	char h[256], p[256], tok[1024];
	static const struct {
		const char *header, *payload;
		enum jwt_status want;
	} cases[] = {
	    {"{\"alg\":\"none\"}", "{}", JWT_HEADER_ALG_UNSUPPORTED},
	    {"{\"alg\":\"HS256\"}", "{}", JWT_HEADER_ALG_UNSUPPORTED},
	    {"{\"typ\":\"JWT\"}", "{}", JWT_HEADER_BAD_ALG},
	    {"{\"alg\":256}", "{}", JWT_HEADER_BAD_ALG},
	    {"{\"alg\":\"RS256\",\"crit\":[\"b64\"]}", "{}", JWT_HEADER_CRIT},
	    {"{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}", JWT_HEADER_BAD_JSON},
	    {"[1]", "{}", JWT_HEADER_BAD_JSON},
	    {"{\"alg\":\"RS256\"}", "[]", JWT_PAYLOAD_BAD_JSON},
	    {"{\"alg\":\"RS256\"}", "{\"a\":1,}", JWT_PAYLOAD_BAD_JSON},
	    {"{\"alg\":\"RS256\"}", "{\"iss\":1}", JWT_PAYLOAD_BAD_CLAIM},
	    {"{\"alg\":\"RS256\"}", "{\"exp\":\"1\"}", JWT_PAYLOAD_BAD_CLAIM},
	    {"{\"alg\":\"RS256\"}", "{\"exp\":1.5}", JWT_PAYLOAD_BAD_CLAIM},
	    {"{\"alg\":\"RS256\"}", "{\"aud\":[\"a\",2]}", JWT_PAYLOAD_BAD_CLAIM},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b64url_str(cases[i].header, h);
		b64url_str(cases[i].payload, p);
		snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, p);
		if (check(tok, ks, 0) != cases[i].want)
			fail_msg("%s.%s: got %d (%s)", cases[i].header, cases[i].payload,
				 check(tok, ks, 0), jwt_status_text(check(tok, ks, 0)));
	}
	assert_int_equal(check("deadbeef", ks, 0), JWT_BAD_FORMAT);
	assert_int_equal(check("a.b.c.d", ks, 0), JWT_BAD_FORMAT);
	assert_int_equal(check("e30.e30", ks, 0), JWT_BAD_FORMAT);
	assert_int_equal(check("e3=.e30.AAAA", ks, 0), JWT_HEADER_BAD_BASE64);
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.e3.AAAA", ks, 0), JWT_PAYLOAD_BAD_BASE64);
	/* "e31" decodes with non-zero leftover bits: not the canonical spelling */
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.e31.AAAA", ks, 0), JWT_PAYLOAD_BAD_BASE64);
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.e30.", ks, 0), JWT_SIGNATURE_BAD_BASE64);
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.e30.A+A", ks, 0), JWT_SIGNATURE_BAD_BASE64);
	jwks_free(ks);
}

static void test_time_and_audience(void **state)
{
	static const char *const auds[] = {"https://api.example.com/", "other"};
	static const char *const none[] = {"nobody"};
	const char *tok = sign(ed_key, "EdDSA", "{\"alg\":\"EdDSA\"}",
			       "{\"exp\":1000,\"nbf\":900,\"aud\":\"api.example.com\"}");

	(void)state;
	assert_int_equal(jwt_decode(&jw, tok, strlen(tok)), JWT_OK);
	assert_int_equal(jwt_check_time(&jw, 950, 0), JWT_OK);
	assert_int_equal(jwt_check_time(&jw, 1001, 0), JWT_EXPIRED);
	assert_int_equal(jwt_check_time(&jw, 1050, 60), JWT_OK); /* clock skew */
	assert_int_equal(jwt_check_time(&jw, 899, 0), JWT_NOT_YET_VALID);
	assert_true(jwt_audience_allowed(&jw, auds, 2)); /* scheme and '/' do not count */
	assert_false(jwt_audience_allowed(&jw, none, 1));
	assert_true(jwt_audience_allowed(&jw, NULL, 0));
}

static bool equals_group2(const char *v, size_t len, void *arg)
{
	(void)arg;
	return len == 6 && memcmp(v, "group2", 6) == 0;
}

static bool equals_arg(const char *v, size_t len, void *arg)
{
	return strlen(arg) == len && memcmp(v, arg, len) == 0;
}

static void test_claims(void **state)
{
	const char *groups[] = {"groups"}, *nested[] = {"nested", "key"}, *n[] = {"n"},
		   *missing[] = {"nested", "nope"};
	const char *tok = sign(ed_key, "EdDSA", "{\"alg\":\"EdDSA\"}", payload);

	(void)state;
	assert_int_equal(jwt_decode(&jw, tok, strlen(tok)), JWT_OK);
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, groups, 1), equals_group2, NULL));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, nested, 2), equals_arg, "v\xc3\xa9"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, n, 1), equals_arg, "7"));
	assert_int_equal(jwt_claim_path(&jw, missing, 2), -1);
	assert_false(jwt_claim_any(&jw, -1, equals_arg, "x"));
}

/* scope and permission (top level) are space-separated lists, as Istio reads them. */
static void test_space_delimited(void **state)
{
	const char *scope[] = {"scope"}, *perm[] = {"permission"}, *other[] = {"other"},
		   *nested[] = {"n", "scope"};
	const char *tok =
	    sign(ed_key, "EdDSA", "{\"alg\":\"EdDSA\"}",
		 "{\"scope\":\"read  write\",\"permission\":\"admin\",\"other\":\"a b\","
		 "\"n\":{\"scope\":\"x y\"}}");

	(void)state;
	assert_int_equal(jwt_decode(&jw, tok, strlen(tok)), JWT_OK);
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, scope, 1), equals_arg, "write"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, scope, 1), equals_arg, "read"));
	assert_false(jwt_claim_any(&jw, jwt_claim_path(&jw, scope, 1), equals_arg, "read  write"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, perm, 1), equals_arg, "admin"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, other, 1), equals_arg, "a b"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, nested, 2), equals_arg, "x y"));
}

/* Istio's own samples (security/tools/jwt/samples in istio/istio: jwks.json, demo.jwt,
 * groups-scope.jwt), which its JWT tasks use: public test data, so meshgate is checked
 * against tokens another implementation made. */
static const char istio_jwks[] =
    "{ \"keys\":[ "
    "{\"e\":\"AQAB\",\"kid\":\"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ\",\"kty\":\"RSA\",\""
    "n\":\"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6o"
    "tmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4s"
    "w-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnG"
    "GGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ\"}]}";
static const char istio_demo[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRIRmJwb0lVcXJZOHQyenBBMnFYZkNtcjVWTzVaRXI0UnpIVV8tZW52dlEi"
    "LCJ0eXAiOiJKV1QifQ.eyJleHAiOjQ2ODU5ODk3MDAsImZvbyI6ImJhciIsImlhdCI6MTUzMjM4OTcwMCwiaXNzI"
    "joidGVzdGluZ0BzZWN1cmUuaXN0aW8uaW8iLCJzdWIiOiJ0ZXN0aW5nQHNlY3VyZS5pc3Rpby5pbyJ9.CfNnxWP2"
    "tcnR9q0vxyxweaF3ovQYHYZl82hAUsn21bwQd9zP7c-LS9qd_vpdLG4Tn1A15NxfCjp5f7QNBUo-KC9PJqYpgGba"
    "XhaGx7bEdFWjcwv3nZzvc7M__ZpaCERdwU7igUmJqYGBYQ51vr2njU9ZimyKkfDe3axcyiBZde7G6dabliUosJvv"
    "KOPcKIWPccCgefSj_GNfwIip3-SsFdlR7BtbVUcqR-yv-XOxJ3Uc1MI0tz3uMiiZcyPV7sNCU4KRnemRIMHVOfuv"
    "HsU60_GhGbiSFzgPTAa9WTltbnarTbxudb_YEOx12JiwYToeX0DCPb43W1tzIBxgm8NxUg";
static const char istio_groups[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRIRmJwb0lVcXJZOHQyenBBMnFYZkNtcjVWTzVaRXI0UnpIVV8tZW52dlEi"
    "LCJ0eXAiOiJKV1QifQ.eyJleHAiOjM1MzczOTExMDQsImdyb3VwcyI6WyJncm91cDEiLCJncm91cDIiXSwiaWF0I"
    "joxNTM3MzkxMTA0LCJpc3MiOiJ0ZXN0aW5nQHNlY3VyZS5pc3Rpby5pbyIsInNjb3BlIjpbInNjb3BlMSIsInNjb"
    "3BlMiJdLCJzdWIiOiJ0ZXN0aW5nQHNlY3VyZS5pc3Rpby5pbyJ9.EdJnEZSH6X8hcyEii7c8H5lnhgjB5dwo07M5"
    "oheC8Xz8mOllyg--AHCFWHybM48reunF--oGaG6IXVngCEpVF0_P5DwsUoBgpPmK1JOaKN6_pe9sh0ZwTtdgK_RP"
    "01PuI7kUdbOTlkuUi2AO-qUyOm7Art2POzo36DLQlUXv8Ad7NBOqfQaKjE9ndaPWT7aexUsBHxmgiGbz1SyLH879"
    "f7uHYPbPKlpHU6P9S-DaKnGLaEchnoKnov7ajhrEhGXAQRukhDPKUHO9L30oPIr5IJllEQfHYtt6IZvlNUGeLUci"
    "f3wpry1R5tBXRicx2sXMQ7LyuDremDbcNy_iE76Upg";

static void test_istio_samples(void **state)
{
	char err[256];
	struct jwks *ks = jwks_parse(istio_jwks, strlen(istio_jwks), err, sizeof(err));
	const char *groups[] = {"groups"}, *foo[] = {"foo"};
	time_t now = time(NULL);

	(void)state;
	assert_non_null(ks);
	assert_int_equal(check(istio_demo, ks, now), JWT_OK);
	assert_true(jwt_claim_is(&jw, jw.iss, "testing@secure.istio.io"));
	assert_true(jwt_claim_is(&jw, jw.sub, "testing@secure.istio.io"));
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, foo, 1), equals_arg, "bar"));
	assert_int_equal(check(istio_groups, ks, now), JWT_OK);
	assert_true(jwt_claim_any(&jw, jwt_claim_path(&jw, groups, 1), equals_arg, "group1"));
	jwks_free(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jwks),
	    cmocka_unit_test(test_algorithms_verify),
	    cmocka_unit_test(test_signature_failures),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_time_and_audience),
	    cmocka_unit_test(test_claims),
	    cmocka_unit_test(test_space_delimited),
	    cmocka_unit_test(test_istio_samples),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

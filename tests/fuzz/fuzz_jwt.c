/* libFuzzer target for src/jwt.c: tokens (client bytes) and key sets (fetched bytes).
 *
 * Input starting with 'J': the rest is a JWKS for jwks_parse.  Anything else is a token:
 * jwt_decode, then, when it decodes, the signature against a fixed key set (the public
 * halves of an RSA and a P-256 key; the corpus holds tokens they signed), the time and
 * audience checks and a walk over every claim.  Invariants: a decoded token had exactly
 * two dots, its signed part ends at the second, its claim indexes are in range; a key
 * set that parses has keys. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char keys_json[] = "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa\",\"e\":\"AQAB\",\"n\":"
				"\"2gQrR6wwbN2BKCBqlRG6bWeg25Nc3Daarj7gGKbia3MNWfgUCFbeIthvTMKM-"
				"hPHwMJDfWYPehoGBkPr9Yx0Tt5YGken73JFN_95ixbn4FMbinEDV-CV9n-"
				"A3xsIZ8NbgE3xciygmsaYrWZoSfxBJu8WWLDpU5NUEBR3IufT3rMHDbk84GaVR7SYr"
				"QO1jl4sRAR_zcOGxkzXIS8gSRBJNm5KHjj6bcN48OEbfASyOSwIX6w-"
				"eSuqeE1C4QZ5ItsqqyWfQNqD5dmkX2OIw0iQhcpoNk8ej4CtC1gX4ASo2QT67uV1_"
				"3e72fL_8iREn7bLuJbsBSkxvH4kKGRC4duOYQ\"},"
				"{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"alg\":"
				"\"ES256\",\"x\":\"_52Ww33eBUYnb4jCLEYkXW0jcDERQ0PT40uWXM9kDHU\","
				"\"y\":\"v8wTBsiOoaX71BENwXlTF87cwPpAjraJx8Weyy5MfCQ\"}]}";

static struct jwks *keys;
static struct jwt j;

static bool count_value(const char *v, size_t len, void *arg)
{
	CHECK(len <= JWT_PAYLOAD_MAX);
	(void)v;
	(*(size_t *)arg)++;
	return false;
}

static void check_token(const char *tok, size_t size)
{
	static const char *const aud[] = {"x", "https://y/"};
	size_t dots = 0, seen = 0;

	if (jwt_decode(&j, tok, size) != JWT_OK)
		return;
	for (size_t i = 0; i < size; i++)
		dots += tok[i] == '.';
	CHECK(dots == 2);
	CHECK(j.signed_part == tok && j.signed_len < size && tok[j.signed_len] == '.');
	CHECK(j.sig_len > 0 && j.sig_len <= JWT_SIG_MAX);
	CHECK(j.nptok > 0 && j.ptok[0].type == JSON_OBJECT);
	CHECK(j.iss < j.nptok && j.sub < j.nptok && j.aud < j.nptok && j.exp < j.nptok);
	(void)jwt_verify_signature(&j, keys);
	(void)jwt_check_time(&j, 1700000000, 60);
	(void)jwt_audience_allowed(&j, aud, 2);
	for (int i = 0; i < j.nptok; i++)
		(void)jwt_claim_any(&j, i, count_value, &seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *copy;

	if (keys == NULL) {
		keys = jwks_parse(keys_json, strlen(keys_json), err, sizeof(err));
		CHECK(keys != NULL);
	}
	if (size > 0 && data[0] == 'J') {
		struct jwks *ks = jwks_parse((const char *)data + 1, size - 1, err, sizeof(err));

		CHECK(ks == NULL || jwks_count(ks) > 0);
		CHECK(ks != NULL || err[0] != '\0');
		jwks_free(ks);
		return 0;
	}
	/* an exact-size copy, so reads past the end are caught */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	check_token(copy, size);
	free(copy);
	return 0;
}

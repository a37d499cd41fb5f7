/* CORS decisions and headers (cors.c) over hand-built policies: origin matching of every
 * kind, preflight detection, classification with FORWARD and IGNORE, the header blocks
 * (maxAge in seconds, credentials, "*" lists), overflow, and which upstream headers are
 * replaced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/model.h"
#include "cors.h"
#include "pool.h"
#include "regex.h"

static struct pool *P;

#define S(lit) (lit), (sizeof(lit) - 1)

static struct string_match sm(enum string_match_kind kind, const char *v)
{
	struct string_match m;
	char err[128];

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.value = v;
	m.len = strlen(v);
	if (kind == SM_REGEX) {
		m.re = regex_compile(P, v, false, err, sizeof(err));
		assert_non_null(m.re);
	}
	return m;
}

static const char *methods[] = {"GET", "POST"};
static const char *hdrs[] = {"content-type", "x-token"};
static const char *expose[] = {"x-total", "x-page"};
static const char *star[] = {"*"};

static struct string_match origins[4];

/* The policy of Istio's documentation example, plus a few origins. */
static void policy(struct cors_policy *cp)
{
	memset(cp, 0, sizeof(*cp));
	cp->given = true;
	origins[0] = sm(SM_EXACT, "https://app.example.com");
	origins[1] = sm(SM_PREFIX, "http://localhost:");
	origins[2] = sm(SM_REGEX, "https://[a-z]+\\.example\\.org");
	cp->allow_origins = origins;
	cp->nallow_origins = 3;
	cp->allow_methods = (struct str_list){methods, 2};
	cp->allow_headers = (struct str_list){hdrs, 2};
	cp->expose_headers = (struct str_list){expose, 2};
	cp->max_age_us = 86400ULL * 1000000;
	cp->allow_credentials = 1;
}

static int setup(void **state)
{
	P = pool_new();
	return 0;
}

static int teardown(void **state)
{
	pool_free(P);
	return 0;
}

static void test_origin_matching(void **state)
{
	struct cors_policy cp;

	policy(&cp);
	assert_true(cors_origin_allowed(&cp, S("https://app.example.com")));
	assert_false(cors_origin_allowed(&cp, S("https://app.example.com.evil")));
	assert_false(cors_origin_allowed(&cp, S("https://app.example.co")));
	assert_false(cors_origin_allowed(&cp, S("HTTPS://APP.EXAMPLE.COM"))); /* case-sensitive */
	assert_true(cors_origin_allowed(&cp, S("http://localhost:8080")));
	assert_true(cors_origin_allowed(&cp, S("http://localhost:")));
	assert_false(cors_origin_allowed(&cp, S("http://localhost")));
	assert_true(cors_origin_allowed(&cp, S("https://shop.example.org")));
	assert_false(cors_origin_allowed(&cp, S("https://shop.example.org:8443"))); /* whole */
	assert_false(cors_origin_allowed(&cp, S("https://x.shop.example.org")));
	assert_false(cors_origin_allowed(&cp, S("null")));
	assert_false(cors_origin_allowed(&cp, S("*")));

	/* exact "*" (Envoy asks every matcher about "*") allows everything */
	origins[3] = sm(SM_EXACT, "*");
	cp.allow_origins = &origins[3];
	cp.nallow_origins = 1;
	assert_true(cors_origin_allowed(&cp, S("https://anything.example")));
	assert_true(cors_origin_allowed(&cp, S("null")));
	/* so does a regex that accepts "*" */
	origins[3] = sm(SM_REGEX, ".*");
	assert_true(cors_origin_allowed(&cp, S("https://anything.example")));
	/* the check is literal: a prefix "*" accepts "*" too, so it opens the policy as well */
	origins[3] = sm(SM_PREFIX, "*");
	assert_true(cors_origin_allowed(&cp, S("https://anything.example")));
	origins[3] = sm(SM_PREFIX, "https://");
	assert_true(cors_origin_allowed(&cp, S("https://anything.example")));
	assert_false(cors_origin_allowed(&cp, S("http://anything.example")));
	/* no origins: nothing allowed */
	cp.nallow_origins = 0;
	assert_false(cors_origin_allowed(&cp, S("https://app.example.com")));
}

static void test_preflight_detection(void **state)
{
	assert_true(cors_is_preflight(S("OPTIONS"), 10, 4));
	assert_false(cors_is_preflight(S("OPTIONS"), 0, 4));  /* no Origin */
	assert_false(cors_is_preflight(S("OPTIONS"), 10, 0)); /* no A-C-Request-Method */
	assert_false(cors_is_preflight(S("GET"), 10, 4));
	assert_false(cors_is_preflight(S("options"), 10, 4)); /* methods are case-sensitive */
	assert_false(cors_is_preflight(S("OPTIONSX"), 10, 4));
}

static void test_classify(void **state)
{
	struct cors_policy cp;

	policy(&cp);
	assert_int_equal(cors_classify(&cp, S("GET"), S("https://app.example.com"), 0),
			 CORS_ACTUAL);
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://app.example.com"), 0),
			 CORS_ACTUAL); /* OPTIONS without A-C-Request-Method */
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://app.example.com"), 4),
			 CORS_PREFLIGHT);
	assert_int_equal(cors_classify(&cp, S("GET"), S("https://evil.example"), 0), CORS_NONE);
	assert_int_equal(cors_classify(&cp, S("GET"), NULL, 0, 0), CORS_NONE);
	assert_int_equal(cors_classify(&cp, S("GET"), "", 0, 0), CORS_NONE); /* empty Origin */
	/* an unmatched preflight: FORWARD by default (and for UNSPECIFIED), IGNORE answers */
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://evil.example"), 4), CORS_NONE);
	cp.unmatched_preflights = "FORWARD";
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://evil.example"), 4), CORS_NONE);
	cp.unmatched_preflights = "UNSPECIFIED";
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://evil.example"), 4), CORS_NONE);
	cp.unmatched_preflights = "IGNORE";
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://evil.example"), 4),
			 CORS_PREFLIGHT_IGNORE);
	assert_int_equal(cors_classify(&cp, S("GET"), S("https://evil.example"), 0), CORS_NONE);
	assert_int_equal(cors_classify(&cp, S("OPTIONS"), S("https://app.example.com"), 4),
			 CORS_PREFLIGHT);
	/* no policy */
	assert_int_equal(cors_classify(NULL, S("GET"), S("https://app.example.com"), 0), CORS_NONE);
	cp.given = false;
	assert_int_equal(cors_classify(&cp, S("GET"), S("https://app.example.com"), 0), CORS_NONE);
}

static void test_preflight_headers(void **state)
{
	struct cors_policy cp;
	char buf[1024];
	int n;

	policy(&cp);
	n = cors_preflight_headers(&cp, true, S("https://app.example.com"), NULL, 0, buf,
				   sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: https://app.example.com\r\n"
				 "access-control-allow-credentials: true\r\n"
				 "access-control-allow-methods: GET,POST\r\n"
				 "access-control-allow-headers: content-type,x-token\r\n"
				 "access-control-max-age: 86400\r\n");
	assert_int_equal(n, (int)strlen(buf));

	/* IGNORE: everything but the origin */
	n = cors_preflight_headers(&cp, false, NULL, 0, NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-credentials: true\r\n"
				 "access-control-allow-methods: GET,POST\r\n"
				 "access-control-allow-headers: content-type,x-token\r\n"
				 "access-control-max-age: 86400\r\n");

	/* nothing configured but the origin; credentials false or unset send nothing */
	memset(&cp.allow_methods, 0, sizeof(cp.allow_methods));
	memset(&cp.allow_headers, 0, sizeof(cp.allow_headers));
	cp.max_age_us = 0;
	cp.allow_credentials = 0;
	n = cors_preflight_headers(&cp, true, S("http://localhost:1"), NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: http://localhost:1\r\n");
	cp.allow_credentials = -1;
	n = cors_preflight_headers(&cp, false, NULL, 0, NULL, 0, buf, sizeof(buf));
	assert_int_equal(n, 0);
	assert_string_equal(buf, "");

	/* allowHeaders ["*"] echoes Access-Control-Request-Headers (nothing asked: none) */
	cp.allow_headers = (struct str_list){star, 1};
	cors_preflight_headers(&cp, true, S("o"), S("x-a, x-b"), buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: o\r\n"
				 "access-control-allow-headers: x-a, x-b\r\n");
	cors_preflight_headers(&cp, true, S("o"), NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: o\r\n");
}

static void test_max_age(void **state)
{
	struct cors_policy cp;
	char buf[32];

	policy(&cp);
	cors_max_age(&cp, buf, sizeof(buf));
	assert_string_equal(buf, "86400");
	cp.max_age_us = 1000000;
	cors_max_age(&cp, buf, sizeof(buf));
	assert_string_equal(buf, "1");
	cp.max_age_us = 90ULL * 24 * 3600 * 1000000; /* 90 days */
	cors_max_age(&cp, buf, sizeof(buf));
	assert_string_equal(buf, "7776000");
	cp.max_age_us = 0;
	cors_max_age(&cp, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_response_headers(void **state)
{
	struct cors_policy cp;
	char buf[512];
	int n;

	policy(&cp);
	n = cors_response_headers(&cp, S("https://app.example.com"), buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: https://app.example.com\r\n"
				 "access-control-allow-credentials: true\r\n"
				 "access-control-expose-headers: x-total,x-page\r\n");
	assert_int_equal(n, (int)strlen(buf));
	cp.allow_credentials = 0;
	memset(&cp.expose_headers, 0, sizeof(cp.expose_headers));
	cors_response_headers(&cp, S("http://localhost:3000"), buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: http://localhost:3000\r\n");
	cp.expose_headers = (struct str_list){star, 1};
	cors_response_headers(&cp, S("o"), buf, sizeof(buf));
	assert_string_equal(buf, "access-control-allow-origin: o\r\n"
				 "access-control-expose-headers: *\r\n");
}

static void test_overflow(void **state)
{
	struct cors_policy cp;
	char buf[40];

	policy(&cp);
	/* too small: -1 and an empty block, never a line cut in half */
	assert_int_equal(cors_response_headers(&cp, S("https://app.example.com"), buf, sizeof(buf)),
			 -1);
	assert_string_equal(buf, "");
	assert_int_equal(cors_preflight_headers(&cp, true, S("https://app.example.com"), NULL, 0,
						buf, sizeof(buf)),
			 -1);
	assert_string_equal(buf, "");
	/* exactly enough room (with the terminating NUL) */
	{
		const char want[] = "access-control-allow-origin: o\r\n";
		char b2[sizeof(want)];

		cp.allow_credentials = 0;
		memset(&cp.expose_headers, 0, sizeof(cp.expose_headers));
		assert_int_equal(cors_response_headers(&cp, S("o"), b2, sizeof(b2)),
				 (int)sizeof(want) - 1);
		assert_string_equal(b2, want);
		assert_int_equal(cors_response_headers(&cp, S("o"), b2, sizeof(b2) - 1), -1);
	}
}

static void test_replaces(void **state)
{
	struct cors_policy cp;

	policy(&cp);
	assert_true(cors_replaces(&cp, S("access-control-allow-origin")));
	assert_true(cors_replaces(&cp, S("Access-Control-Allow-Origin")));
	assert_true(cors_replaces(&cp, S("access-control-allow-credentials")));
	assert_true(cors_replaces(&cp, S("access-control-expose-headers")));
	assert_false(cors_replaces(&cp, S("access-control-allow-methods")));
	assert_false(cors_replaces(&cp, S("access-control-max-age")));
	assert_false(cors_replaces(&cp, S("content-type")));
	assert_false(cors_replaces(&cp, S("access-control-allow-origins")));
	/* only what we set replaces the upstream's */
	cp.allow_credentials = -1;
	memset(&cp.expose_headers, 0, sizeof(cp.expose_headers));
	assert_true(cors_replaces(&cp, S("access-control-allow-origin")));
	assert_false(cors_replaces(&cp, S("access-control-allow-credentials")));
	assert_false(cors_replaces(&cp, S("access-control-expose-headers")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_origin_matching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_preflight_detection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_preflight_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_age, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_response_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replaces, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

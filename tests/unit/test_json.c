/* json.c: token layout (next, size, members), unescaping, numbers, and a table of texts a
 * strict RFC 8259 reader must refuse. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

#define MAXTOK 64

static struct json_tok tok[MAXTOK];

/* Parse a literal's bytes (NULs included) with room for MAXTOK tokens. */
#define PARSE(lit) json_parse(lit, sizeof(lit) - 1, tok, MAXTOK)

static void test_nested(void **state)
{
	static const char text[] = " {\"a\": [1, {\"b\": null}, []], \"c\": {}, \"d\": \"x\"}\r\n";
	int obj;

	(void)state;
	/* {} a [] 1 {} b null [] c {} d "x" */
	assert_int_equal(PARSE(text), 12);
	assert_int_equal(tok[0].type, JSON_OBJECT);
	assert_int_equal(tok[0].size, 3);
	assert_int_equal(tok[0].next, 12);
	assert_int_equal(tok[0].start, 1);
	assert_int_equal(tok[0].len, sizeof(text) - 1 - 3); /* no whitespace around */
	assert_int_equal(tok[1].type, JSON_STRING);
	assert_int_equal(tok[1].size, 0);
	assert_int_equal(tok[2].type, JSON_ARRAY);
	assert_int_equal(tok[2].size, 3);
	assert_int_equal(tok[2].next, 8);
	assert_int_equal(tok[3].type, JSON_NUMBER);
	assert_int_equal(tok[3].next, 4);
	assert_int_equal(tok[4].type, JSON_OBJECT);
	assert_int_equal(tok[4].size, 1);
	assert_int_equal(tok[4].next, 7);
	assert_int_equal(tok[6].type, JSON_NULL);
	assert_int_equal(tok[7].type, JSON_ARRAY);
	assert_int_equal(tok[7].size, 0);
	assert_int_equal(tok[7].next, 8);
	assert_int_equal(tok[9].type, JSON_OBJECT);
	assert_int_equal(tok[9].size, 0);
	assert_int_equal(tok[9].next, 10);
	assert_int_equal(tok[11].type, JSON_STRING);
	assert_int_equal(tok[11].len, 1);
	assert_memory_equal(text + tok[11].start, "x", 1);

	/* array elements: i + 1, then each one's next */
	{
		int c = 3, n = 0;
		static const int want[] = {3, 4, 7};

		for (; c < (int)tok[2].next; c = (int)tok[c].next)
			assert_int_equal(c, want[n++]);
		assert_int_equal(n, 3);
	}
	assert_int_equal(json_get(text, tok, 0, "a"), 2);
	assert_int_equal(json_get(text, tok, 0, "c"), 9);
	assert_int_equal(json_get(text, tok, 0, "d"), 11);
	assert_int_equal(json_get(text, tok, 0, "b"), -1); /* not a member of the top */
	assert_int_equal(json_get(text, tok, 0, ""), -1);
	assert_int_equal(json_get(text, tok, 2, "a"), -1); /* an array */
	assert_int_equal(json_get(text, tok, -1, "a"), -1);
	obj = json_get(text, tok, 4, "b");
	assert_int_equal(obj, 6);
}

static void test_top_level_scalars(void **state)
{
	(void)state;
	assert_int_equal(PARSE("0"), 1);
	assert_int_equal(tok[0].type, JSON_NUMBER);
	assert_int_equal(tok[0].next, 1);
	assert_int_equal(PARSE("\t-0.5e+10 "), 1);
	assert_int_equal(tok[0].start, 1);
	assert_int_equal(tok[0].len, 8);
	assert_int_equal(PARSE("true"), 1);
	assert_int_equal(tok[0].type, JSON_TRUE);
	assert_int_equal(PARSE("false"), 1);
	assert_int_equal(tok[0].type, JSON_FALSE);
	assert_int_equal(PARSE("null"), 1);
	assert_int_equal(tok[0].type, JSON_NULL);
	assert_int_equal(PARSE("\"\""), 1);
	assert_int_equal(tok[0].type, JSON_STRING);
	assert_int_equal(tok[0].start, 1);
	assert_int_equal(tok[0].len, 0);
	assert_int_equal(PARSE("[]"), 1);
	assert_int_equal(PARSE("{}"), 1);
	assert_int_equal(PARSE("\"\x7f\xc2\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\xf0\x90\x80\x80\""), 1);
}

static void test_jwt(void **state)
{
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";
	static const char pay[] = "{\"iss\":\"https://issuer.example\",\"aud\":[\"a\",\"b\"],"
				  "\"exp\":1700000000,\"nbf\":1.6e9,\"sub\":\"u\\/1\"}";
	char buf[64];
	double d;
	int aud, c;

	(void)state;
	assert_int_equal(PARSE(hdr), 7);
	assert_true(json_string_eq(hdr, tok, json_get(hdr, tok, 0, "alg"), "RS256"));
	assert_false(json_string_eq(hdr, tok, json_get(hdr, tok, 0, "alg"), "RS25"));
	assert_false(json_string_eq(hdr, tok, json_get(hdr, tok, 0, "alg"), "RS2566"));
	assert_false(json_string_eq(hdr, tok, json_get(hdr, tok, 0, "x"), "RS256"));

	assert_int_equal(PARSE(pay), 13);
	aud = json_get(pay, tok, 0, "aud");
	assert_int_equal(tok[aud].type, JSON_ARRAY);
	assert_int_equal(tok[aud].size, 2);
	c = aud + 1;
	assert_true(json_string_eq(pay, tok, c, "a"));
	c = (int)tok[c].next;
	assert_true(json_string_eq(pay, tok, c, "b"));
	assert_int_equal(tok[c].next, tok[aud].next);
	assert_true(json_number(pay, tok, json_get(pay, tok, 0, "exp"), &d));
	assert_true(d == 1700000000.0);
	assert_true(json_number(pay, tok, json_get(pay, tok, 0, "nbf"), &d));
	assert_true(d == 1.6e9);
	assert_false(json_number(pay, tok, json_get(pay, tok, 0, "sub"), &d)); /* a string */
	assert_false(json_number(pay, tok, -1, &d));
	assert_int_equal(json_string(pay, tok, json_get(pay, tok, 0, "sub"), buf, sizeof(buf)), 3);
	assert_string_equal(buf, "u/1");
	assert_int_equal(json_string(pay, tok, aud, buf, sizeof(buf)), -1); /* an array */
}

static void test_escapes(void **state)
{
	static const char text[] =
	    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\\ud83d\\ude00x\", \"\\u0000\","
	    " \"caf\xc3\xa9\", \"abc\"]";
	char buf[32];

	(void)state;
	assert_int_equal(PARSE(text), 6);
	assert_int_equal(json_string(text, tok, 1, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "\"\\/\b\f\n\r\t");
	assert_true(json_string_eq(text, tok, 1, "\"\\/\b\f\n\r\t"));
	/* U+00E9, U+20AC and the pair for U+1F600 as 2, 3 and 4 bytes */
	assert_int_equal(json_string(text, tok, 2, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x");
	assert_true(json_string_eq(text, tok, 2, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x"));
	/* U+0000 parses but is no C string */
	assert_int_equal(json_string(text, tok, 3, buf, sizeof(buf)), -1);
	assert_false(json_string_eq(text, tok, 3, ""));
	assert_int_equal(json_string(text, tok, 4, buf, sizeof(buf)), 5);
	assert_true(json_string_eq(text, tok, 4, "caf\xc3\xa9"));
	/* room for the NUL */
	assert_int_equal(json_string(text, tok, 5, buf, 4), 3);
	assert_int_equal(json_string(text, tok, 5, buf, 3), -1);
	assert_int_equal(json_string(text, tok, 5, buf, 0), -1);
	assert_int_equal(json_string(text, tok, 2, buf, 10), -1);
	assert_int_equal(json_string(text, tok, 2, buf, 11), 10);
}

static void test_numbers(void **state)
{
	static const char text[] =
	    "[0, -0, 12.5, 1e3, 1E-2, -3.25e+1, 1e999, "
	    "1.000000000000000000000000000000000000000000000000000000000000001,"
	    " 123456789012345678901234567890123456789012345678901234567890123]";
	double d;

	(void)state;
	assert_int_equal(PARSE(text), 10);
	assert_true(json_number(text, tok, 1, &d) && d == 0.0);
	assert_true(json_number(text, tok, 2, &d) && d == 0.0);
	assert_true(json_number(text, tok, 3, &d) && d == 12.5);
	assert_true(json_number(text, tok, 4, &d) && d == 1000.0);
	assert_true(json_number(text, tok, 5, &d) && d == 0.01);
	assert_true(json_number(text, tok, 6, &d) && d == -32.5);
	assert_false(json_number(text, tok, 7, &d)); /* overflows */
	assert_int_equal(tok[8].len, 65);
	assert_false(json_number(text, tok, 8, &d)); /* too long to copy */
	assert_int_equal(tok[9].len, 63);
	assert_true(json_number(text, tok, 9, &d) && d > 1.2e62 && d < 1.3e62);
}

static void test_depth_and_tokens(void **state)
{
	char text[80];

	(void)state;
	memset(text, '[', 32);
	memset(text + 32, ']', 32);
	assert_int_equal(json_parse(text, 64, tok, MAXTOK), 32);
	assert_int_equal(tok[0].next, 32);
	assert_int_equal(tok[30].next, 32);
	assert_int_equal(tok[31].size, 0);
	assert_int_equal(tok[30].size, 1);
	memset(text, '[', 33);
	memset(text + 33, ']', 33);
	assert_int_equal(json_parse(text, 66, tok, MAXTOK), -1);

	/* exactly enough tokens, then one too few */
	assert_int_equal(json_parse("[1,2,3]", 7, tok, 4), 4);
	assert_int_equal(json_parse("[1,2,3]", 7, tok, 3), -1);
	assert_int_equal(json_parse("{\"a\":1}", 7, tok, 3), 3);
	assert_int_equal(json_parse("{\"a\":1}", 7, tok, 2), -1);
	assert_int_equal(json_parse("{\"a\":1}", 7, tok, 1), -1);
	assert_int_equal(json_parse("1", 1, NULL, 0), -1);
}

static void test_duplicates(void **state)
{
	(void)state;
	/* the same name in different objects, or as a value, is fine */
	assert_int_equal(PARSE("{\"a\":{\"a\":\"a\"},\"b\":[{\"a\":1},{\"a\":2}]}"), 13);
	assert_int_equal(PARSE("{\"a\":1,\"ab\":2,\"b\":3,\"\":4}"), 9);
	assert_int_equal(PARSE("{\"a\":1,\"a\":2}"), -1);
	assert_int_equal(PARSE("{\"alg\":\"none\",\"x\":[],\"\\u0061lg\":\"RS256\"}"), -1);
	assert_int_equal(PARSE("{\"\\/\":1,\"/\":2}"), -1);
	assert_int_equal(PARSE("{\"\xc3\xa9\":1,\"\\u00E9\":2}"), -1);
	assert_int_equal(PARSE("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}"), -1);
	assert_int_equal(PARSE("{\"\":1,\"\":2}"), -1);
	assert_int_equal(PARSE("{\"\\u0000\":1,\"\\u0000\":2}"), -1);
	assert_int_equal(PARSE("{\"a\":{\"b\":1,\"c\":2},\"d\":3,\"a\":4}"), -1);
}

/* Texts every strict reader refuses; the length is the literal's, so NULs count. */
#define BAD(lit)                                                                                   \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

static void test_invalid(void **state)
{
	static const struct {
		const char *text;
		size_t len;
	} bad[] = {
	    BAD(""),
	    BAD(" \t\r\n"),
	    BAD("\f1"), /* form feed is no JSON whitespace */
	    BAD("\xc2\xa0"
		"1"), /* nor is U+00A0 */
	    BAD("[1,]"),
	    BAD("{\"a\":1,}"),
	    BAD("[,1]"),
	    BAD("[1 2]"),
	    BAD("{\"a\" 1}"),
	    BAD("{\"a\":}"),
	    BAD("{\"a\"}"),
	    BAD("{1:2}"),
	    BAD("{a:1}"),
	    BAD("{'a':1}"),
	    BAD("['a']"),
	    BAD("[1}"),
	    BAD("{\"a\":1]"),
	    BAD("[[]"),
	    BAD("[]]"),
	    BAD("{"),
	    BAD("]"),
	    BAD("01"),
	    BAD("-01"),
	    BAD("00"),
	    BAD("1."),
	    BAD(".5"),
	    BAD("+1"),
	    BAD("-"),
	    BAD("1e"),
	    BAD("1e+"),
	    BAD("1.e5"),
	    BAD("0x10"),
	    BAD("NaN"),
	    BAD("Infinity"),
	    BAD("-Infinity"),
	    BAD("tru"),
	    BAD("truex"),
	    BAD("True"),
	    BAD("nul"),
	    BAD("null null"),
	    BAD("{} x"),
	    BAD("1 2"),
	    BAD("\"a\"\"b\""),
	    BAD("\"abc"),
	    BAD("\"abc\\\""),
	    BAD("\"\\"),
	    BAD("\"\\x\""),
	    BAD("\"\\a\""),
	    BAD("\"\\U0041\""),
	    BAD("\"\\u00\""),
	    BAD("\"\\u00g1\""),
	    BAD("\"\\ud800\""),        /* lone high surrogate */
	    BAD("\"\\udc00\""),        /* lone low surrogate */
	    BAD("\"\\ud800x\""),       /* high without its low */
	    BAD("\"\\ud800\\n\""),     /* high then another escape */
	    BAD("\"\\ud800\\ud800\""), /* high then high */
	    BAD("\"\\ude00\\ud83d\""), /* a pair the wrong way round */
	    BAD("\"a\tb\""),           /* raw control characters */
	    BAD("\"a\nb\""),
	    BAD("\"\x1f\""),
	    BAD("\"a\0b\""),
	    BAD("1\0"),
	    BAD("\0"),
	    BAD("[1,\0 2]"),
	    BAD("\"\xc0\xaf\""),         /* overlong '/' */
	    BAD("\"\xc1\xbf\""),         /* overlong */
	    BAD("\"\xe0\x80\xaf\""),     /* overlong, 3 bytes */
	    BAD("\"\xf0\x80\x80\xaf\""), /* overlong, 4 bytes */
	    BAD("\"\xed\xa0\x80\""),     /* U+D800 encoded directly */
	    BAD("\"\xed\xbf\xbf\""),     /* U+DFFF */
	    BAD("\"\xf4\x90\x80\x80\""), /* U+110000 */
	    BAD("\"\xf5\x80\x80\x80\""), /* no such lead byte */
	    BAD("\"\xff\""),
	    BAD("\"\x80\""),     /* a continuation byte alone */
	    BAD("\"\xc3\""),     /* cut short by the quote */
	    BAD("\"\xe2\x82\""), /* cut short */
	    BAD("\"\xc3\x28\""), /* bad continuation */
	    BAD("\"\xe2\x28\xa1\""),
	    BAD("\"\xf0\x9f\x98\x28\""),
	    BAD("\"\xc3"),         /* cut short by the end */
	    BAD("\xef\xbb\xbf{}"), /* a byte order mark */
	    BAD("{\"a\":1}/* c */"),
	    BAD("// c\n1"),
	    BAD("{\"a\":1,\"a\":1}"),
	    BAD("{\"a\":1,\"\\u0061\":1}"),
	};

	(void)state;
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		int n = json_parse(bad[k].text, bad[k].len, tok, MAXTOK);

		if (n != -1)
			fail_msg("bad[%zu] parsed as %d tokens", k, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nested),     cmocka_unit_test(test_top_level_scalars),
	    cmocka_unit_test(test_jwt),        cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_numbers),    cmocka_unit_test(test_depth_and_tokens),
	    cmocka_unit_test(test_duplicates), cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

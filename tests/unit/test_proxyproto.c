/* proxyproto.c: PROXY protocol headers, version 1 (text) and 2 (binary): the addresses of
 * each family, the forms that keep the socket's own (UNKNOWN, LOCAL, UNSPEC, unix), every
 * prefix of a valid header asking for more, the bytes after it left alone, and what is
 * refused, each with its reason. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxyproto.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static int parse(const void *buf, size_t len, struct proxyproto *pp, const char **why)
{
	return proxyproto_parse(buf, len, pp, why);
}

/* s parses to its full length minus tail, and each shorter prefix asks for more. */
static void whole(const unsigned char *s, size_t len, size_t tail, struct proxyproto *pp)
{
	const char *why;

	assert_int_equal(parse(s, len, pp, &why), (int)(len - tail));
	assert_null(why);
	for (size_t n = 0; n < len - tail; n++) {
		struct proxyproto p2;

		if (parse(s, n, &p2, &why) != 0)
			fail_msg("prefix of %zu bytes: not 0 (%s)", n, why ? why : "");
	}
}

static void text_whole(const char *s, size_t tail, struct proxyproto *pp)
{
	whole((const unsigned char *)s, strlen(s), tail, pp);
}

static void refused(const void *s, size_t len, const char *want)
{
	struct proxyproto pp;
	const char *why = NULL;

	assert_int_equal(parse(s, len, &pp, &why), -1);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("refused for \"%s\", not \"%s\"", why, want);
}

static void text_refused(const char *s, const char *want)
{
	refused(s, strlen(s), want);
}

static void addr_is(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	char text[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
		assert_int_equal(ntohs(in->sin_port), port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		assert_int_equal(ss->ss_family, AF_INET6);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
		assert_int_equal(ntohs(in6->sin6_port), port);
	}
	assert_string_equal(text, ip);
}

static void test_v1(void **state)
{
	struct proxyproto pp;

	(void)state;
	text_whole("PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n", 16, &pp);
	assert_int_equal(pp.version, 1);
	assert_true(pp.has_addresses);
	addr_is(&pp.src, "192.0.2.1", 51000);
	addr_is(&pp.dst, "198.51.100.2", 443);
	text_whole("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 0 65535\r\n", 0, &pp);
	addr_is(&pp.src, "2001:db8::1", 0);
	addr_is(&pp.dst, "::ffff:192.0.2.9", 65535);
	/* UNKNOWN: the rest of the line is ignored, the socket's addresses stand */
	text_whole("PROXY UNKNOWN\r\n", 0, &pp);
	assert_false(pp.has_addresses);
	text_whole("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n\x16\x03", 2, &pp);
	assert_false(pp.has_addresses);
}

static void test_v1_refused(void **state)
{
	char longest[120];

	(void)state;
	text_refused("GET / HTTP/1.1\r\n", "not a PROXY protocol header");
	text_refused("PROXY\r\n", "not a PROXY protocol header");
	text_refused("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "protocol is not TCP4, TCP6 or UNKNOWN");
	text_refused("PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", "protocol is not");
	text_refused("PROXY UNKNOWNX\r\n", "protocol is not");
	text_refused("PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "four fields");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "four fields");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "four fields");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "not a number in 0..65535");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n", "not a number in 0..65535");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "not a number");
	text_refused("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "not one of the protocol's family");
	text_refused("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not one of the protocol's family");
	text_refused("PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n", "family");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", "not ended by CRLF");
	text_refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n\r\n", "control byte");
	/* 107 bytes at most, CRLF included */
	memset(longest, 'x', sizeof(longest));
	memcpy(longest, "PROXY UNKNOWN ", 14);
	memcpy(longest + 105, "\r\n", 2);
	longest[107] = '\0';
	{
		struct proxyproto pp;
		const char *why;

		assert_int_equal(parse(longest, 107, &pp, &why), 107);
	}
	memcpy(longest + 105, "x\r\n", 3);
	longest[108] = '\0';
	text_refused(longest, "longer than 107 bytes");
}

/* A version 2 header: command/version, family/protocol, then body. */
static size_t v2(unsigned char *out, unsigned char vc, unsigned char fp, const void *body,
		 size_t blen)
{
	memcpy(out, sig, 12);
	out[12] = vc;
	out[13] = fp;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	memcpy(out + 16, body, blen);
	return 16 + blen;
}

static void test_v2(void **state)
{
	unsigned char buf[PROXYPROTO_MAX + 64], body[400];
	struct proxyproto pp;
	size_t n;

	(void)state;
	/* TCP over IPv4, and the client's first bytes after it */
	memcpy(body, "\xc0\x00\x02\x01\xc6\x33\x64\x02\xc7\x38\x01\xbb", 12);
	n = v2(buf, 0x21, 0x11, body, 12);
	memcpy(buf + n, "\x16\x03\x01", 3);
	whole(buf, n + 3, 3, &pp);
	assert_int_equal(pp.version, 2);
	assert_true(pp.has_addresses);
	addr_is(&pp.src, "192.0.2.1", 51000);
	addr_is(&pp.dst, "198.51.100.2", 443);
	/* TCP over IPv6, with TLVs (ALPN, then a NOOP with no value) */
	memset(body, 0, 36);
	body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 7;
	body[16] = 0x20, body[17] = 0x01, body[18] = 0x0d, body[19] = 0xb8, body[31] = 1;
	body[32] = 0x15, body[33] = 0xb3, body[34] = 0x00, body[35] = 0x50;
	memcpy(body + 36, "\x01\x00\x02h2\x04\x00\x00", 8);
	n = v2(buf, 0x21, 0x21, body, 44);
	whole(buf, n, 0, &pp);
	addr_is(&pp.src, "2001:db8::7", 5555);
	addr_is(&pp.dst, "2001:db8::1", 80);
	/* UDP is addresses too */
	n = v2(buf, 0x21, 0x12, "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", 12);
	whole(buf, n, 0, &pp);
	assert_true(pp.has_addresses);
	/* LOCAL (the balancer's own health check), UNSPEC, unix: the socket's addresses */
	n = v2(buf, 0x20, 0x00, "", 0);
	whole(buf, n, 0, &pp);
	assert_false(pp.has_addresses);
	n = v2(buf, 0x20, 0x11, body, 12); /* LOCAL with addresses: ignored */
	whole(buf, n, 0, &pp);
	assert_false(pp.has_addresses);
	n = v2(buf, 0x21, 0x00, "", 0);
	whole(buf, n, 0, &pp);
	assert_false(pp.has_addresses);
	memset(body, 0, 216);
	n = v2(buf, 0x21, 0x31, body, 216);
	whole(buf, n, 0, &pp);
	assert_false(pp.has_addresses);
}

static void test_v2_refused(void **state)
{
	unsigned char buf[PROXYPROTO_MAX + 64], body[PROXYPROTO_MAX];
	size_t n;

	(void)state;
	memset(body, 0, sizeof(body));
	refused("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c", 16, "not a PROXY protocol header");
	n = v2(buf, 0x11, 0x11, body, 12);
	refused(buf, n, "another version");
	n = v2(buf, 0x22, 0x11, body, 12);
	refused(buf, n, "neither LOCAL nor PROXY");
	n = v2(buf, 0x21, 0x41, body, 12);
	refused(buf, n, "family or protocol unknown");
	n = v2(buf, 0x21, 0x13, body, 12);
	refused(buf, n, "family or protocol unknown");
	n = v2(buf, 0x21, 0x11, body, 11);
	refused(buf, n, "shorter than its family's");
	n = v2(buf, 0x21, 0x21, body, 12);
	refused(buf, n, "shorter than its family's");
	/* a TLV that runs past the end, a stray byte */
	memcpy(body + 12, "\x01\x00\x05xy", 5);
	n = v2(buf, 0x21, 0x11, body, 17);
	refused(buf, n, "TLVs do not fill the header");
	n = v2(buf, 0x21, 0x11, body, 13);
	refused(buf, n, "TLVs do not fill the header");
	/* longer than meshgate reads: refused as soon as the length says so */
	n = v2(buf, 0x21, 0x11, body, PROXYPROTO_MAX - 15);
	refused(buf, 16, "longer than meshgate accepts");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1),
	    cmocka_unit_test(test_v1_refused),
	    cmocka_unit_test(test_v2),
	    cmocka_unit_test(test_v2_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

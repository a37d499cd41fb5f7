/* conn.c's address text: what the forwarded headers, the access log and source-IP hashing
 * read.  Connections keep binary addresses and format them per request, so the text must
 * be what inet_ntop and "%s:%u" would make. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"

static union conn_addr v4(const char *ip, unsigned port)
{
	union conn_addr a;

	memset(&a, 0, sizeof(a));
	a.in.sin_family = AF_INET;
	a.in.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &a.in.sin_addr), 1);
	return a;
}

static union conn_addr v6(const char *ip, unsigned port)
{
	union conn_addr a;

	memset(&a, 0, sizeof(a));
	a.in6.sin6_family = AF_INET6;
	a.in6.sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a.in6.sin6_addr), 1);
	return a;
}

static void expect_text(const union conn_addr *a, bool with_port, const char *want)
{
	char out[CONN_ADDR_TEXT];

	assert_int_equal(conn_addr_format(a, with_port, out), strlen(want));
	assert_string_equal(out, want);
}

static void test_ipv4(void **state)
{
	union conn_addr a = v4("127.0.0.1", 8080);
	union conn_addr edge = v4("255.255.255.255", 65535);
	union conn_addr zero = v4("0.0.0.0", 0);
	union conn_addr mid = v4("10.20.100.9", 443);

	(void)state;
	expect_text(&a, true, "127.0.0.1:8080");
	expect_text(&a, false, "127.0.0.1");
	expect_text(&edge, true, "255.255.255.255:65535");
	expect_text(&zero, true, "0.0.0.0:0");
	expect_text(&mid, true, "10.20.100.9:443");
}

/* Every octet value formats as inet_ntop formats it. */
static void test_ipv4_every_octet(void **state)
{
	(void)state;
	for (unsigned v = 0; v < 256; v++) {
		char ip[16], want[32];
		union conn_addr a;

		snprintf(ip, sizeof(ip), "%u.%u.%u.%u", v, 255 - v, v / 2, v % 10);
		a = v4(ip, v * 257);
		snprintf(want, sizeof(want), "%s:%u", ip, v * 257);
		expect_text(&a, true, want);
	}
}

static void test_ipv6(void **state)
{
	union conn_addr a = v6("::1", 443);
	union conn_addr b = v6("2001:db8::a:b", 65535);
	union conn_addr longest = v6("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);

	(void)state;
	expect_text(&a, true, "[::1]:443");
	expect_text(&a, false, "::1");
	expect_text(&b, true, "[2001:db8::a:b]:65535");
	expect_text(&longest, true, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_unknown_family(void **state)
{
	union conn_addr a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.sa.sa_family = AF_UNSPEC;
	expect_text(&a, true, "?");
	expect_text(&a, false, "?");
}

/* The older interface (TCP relays) gives both forms through the same code. */
static void test_sockaddr_format(void **state)
{
	union conn_addr a = v6("fe80::1", 80);
	char ip[INET6_ADDRSTRLEN], full[CONN_ADDR_TEXT];

	(void)state;
	conn_sockaddr_format(&a.sa, ip, sizeof(ip), full, sizeof(full));
	assert_string_equal(ip, "fe80::1");
	assert_string_equal(full, "[fe80::1]:80");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4),
	    cmocka_unit_test(test_ipv4_every_octet),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_unknown_family),
	    cmocka_unit_test(test_sockaddr_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cidr.c: prefixes parse in both families (a bare address is a full-length prefix), bad
 * text is refused, and matching honours the prefix bits, the family, and IPv4-mapped IPv6
 * addresses. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "cidr.h"

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static bool has(const char *prefix, const char *text)
{
	struct cidr c;
	struct sockaddr_storage ss = addr(text);

	assert_true(cidr_parse(prefix, &c));
	return cidr_has(&c, (const struct sockaddr *)&ss);
}

static void test_parse(void **state)
{
	struct cidr c;

	(void)state;
	assert_true(cidr_parse("10.1.2.3", &c));
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 32);
	assert_true(cidr_parse("5.6.7.0/24", &c));
	assert_int_equal(c.prefix, 24);
	assert_true(cidr_parse("2001:db8::/32", &c));
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 32);
	assert_true(cidr_parse("::1", &c));
	assert_int_equal(c.prefix, 128);
	assert_true(cidr_parse("0.0.0.0/0", &c));
	assert_int_equal(c.prefix, 0);
	assert_false(cidr_parse("10.0.0.0/33", &c));
	assert_false(cidr_parse("10.0.0.0/", &c));
	assert_false(cidr_parse("10.0.0.0/-1", &c));
	assert_false(cidr_parse("10.0.0.0/8x", &c));
	assert_false(cidr_parse("::/129", &c));
	assert_false(cidr_parse("$CLIENT_IP", &c));
	assert_false(cidr_parse("", &c));
	assert_false(cidr_parse("example.com/8", &c));
}

static void test_match(void **state)
{
	struct cidr c;

	(void)state;
	assert_true(has("5.6.7.0/24", "5.6.7.200"));
	assert_false(has("5.6.7.0/24", "5.6.8.1"));
	assert_true(has("10.0.0.0/9", "10.127.255.255"));
	assert_false(has("10.0.0.0/9", "10.128.0.0"));
	assert_true(has("1.2.3.4", "1.2.3.4"));
	assert_false(has("1.2.3.4", "1.2.3.5"));
	assert_true(has("0.0.0.0/0", "203.0.113.9"));
	assert_false(has("0.0.0.0/0", "2001:db8::1")); /* families differ */
	assert_true(has("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(has("2001:db8::/32", "2001:db9::1"));
	/* an IPv4 client on a dual-stack socket */
	assert_true(has("127.0.0.0/8", "::ffff:127.0.0.1"));
	assert_false(has("127.0.0.0/8", "::ffff:128.0.0.1"));
	assert_true(cidr_parse("127.0.0.1", &c));
	assert_false(cidr_has(&c, NULL));
}

/* Address text (not NUL-terminated, no NUL inside) and IPv4-mapped unmapping. */
static void test_addresses(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in v4;
	const struct sockaddr *sa;

	(void)state;
	assert_true(cidr_addr_parse("10.1.2.3xyz", 8, &ss));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_true(cidr_addr_parse("2001:db8::1", 11, &ss));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_false(cidr_addr_parse("10.1.2.3\0x", 10, &ss));
	assert_false(cidr_addr_parse("10.1.2", 6, &ss));
	assert_false(cidr_addr_parse("", 0, &ss));
	assert_false(cidr_addr_parse("[::1]", 5, &ss));
	ss = addr("::ffff:192.0.2.7");
	sa = cidr_unmapped((const struct sockaddr *)&ss, &v4);
	assert_ptr_equal(sa, (const struct sockaddr *)&v4);
	assert_int_equal(v4.sin_family, AF_INET);
	assert_int_equal(ntohl(v4.sin_addr.s_addr), 0xc0000207);
	ss = addr("2001:db8::7");
	assert_ptr_equal(cidr_unmapped((const struct sockaddr *)&ss, &v4),
			 (const struct sockaddr *)&ss);
	ss = addr("192.0.2.7");
	assert_ptr_equal(cidr_unmapped((const struct sockaddr *)&ss, &v4),
			 (const struct sockaddr *)&ss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

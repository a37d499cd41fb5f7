/* xff.c: the client n entries from the right of x-forwarded-for, across several fields,
 * with spaces and tabs around entries; shorter lists, empty entries and non-addresses
 * give no client. */
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

#include "xff.h"

#define H(name, value)                                                                             \
	{                                                                                          \
		name, sizeof(name) - 1, value, sizeof(value) - 1                                   \
	}

/* The client's address as text, or "" when there is none. */
static const char *client(const struct msg_header *h, size_t nh, uint32_t n)
{
	static char text[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;

	if (!xff_client(h, nh, n, &ss))
		return "";
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
	return text;
}

static void test_one_field(void **state)
{
	const struct msg_header h[] = {
	    H("Host", "a"), H("X-Forwarded-For", "198.51.100.7,203.0.113.9 , \t2001:db8::1")};

	(void)state;
	assert_string_equal(client(h, 2, 1), "2001:db8::1");
	assert_string_equal(client(h, 2, 2), "203.0.113.9");
	assert_string_equal(client(h, 2, 3), "198.51.100.7");
	assert_string_equal(client(h, 2, 4), ""); /* shorter than the proxies */
	assert_string_equal(client(h, 2, 0), "");
	assert_string_equal(client(h, 1, 1), ""); /* no x-forwarded-for at all */
}

static void test_fields_in_order(void **state)
{
	const struct msg_header h[] = {H("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
				       H("Accept", "*/*"), H("X-FORWARDED-FOR", "10.0.0.3")};

	(void)state;
	assert_string_equal(client(h, 3, 1), "10.0.0.3");
	assert_string_equal(client(h, 3, 2), "10.0.0.2");
	assert_string_equal(client(h, 3, 3), "10.0.0.1");
}

static void test_not_addresses(void **state)
{
	const struct msg_header h[] = {
	    H("x-forwarded-for", "unknown, 10.0.0.1:8080,,[::1], 1.2.3.4x")};

	(void)state;
	assert_string_equal(client(h, 1, 1), "");
	assert_string_equal(client(h, 1, 2), "");
	assert_string_equal(client(h, 1, 3), ""); /* an empty entry */
	assert_string_equal(client(h, 1, 4), "");
	assert_string_equal(client(h, 1, 5), "");
	{
		/* found by fuzz_xff: a NUL inside an entry must not cut it short */
		const struct msg_header nul[] = {
		    {"x-forwarded-for", 15, "10.0.0.1\0x, 1.2.3.4", 19}};

		assert_string_equal(client(nul, 1, 2), "");
		assert_string_equal(client(nul, 1, 1), "1.2.3.4");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_field),
	    cmocka_unit_test(test_fields_in_order),
	    cmocka_unit_test(test_not_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

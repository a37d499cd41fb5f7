/* libFuzzer target for src/proxyproto.c: the PROXY protocol header a load balancer sends
 * first, parsed from client bytes.
 *
 * A complete header must lie within the input and PROXYPROTO_MAX, name version 1 or 2,
 * and carry IPv4 or IPv6 addresses of one family when it says it has addresses; a refusal
 * must say why.  Every prefix of an input that parses must ask for more bytes (0), never
 * be refused nor accepted shorter (a header is recognised only once it is whole), and the
 * input with bytes appended after the header must parse to the same length. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto pp, again;
	const char *why;
	unsigned char *more;
	int len = proxyproto_parse(data, size, &pp, &why);

	if (len < 0) {
		CHECK(why != NULL);
		return 0;
	}
	CHECK(why == NULL);
	if (len == 0) {
		CHECK(size < PROXYPROTO_MAX);
		return 0;
	}
	CHECK((size_t)len <= size && len <= PROXYPROTO_MAX);
	CHECK(pp.version == 1 || pp.version == 2);
	if (pp.has_addresses) {
		CHECK(pp.src.ss_family == AF_INET || pp.src.ss_family == AF_INET6);
		CHECK(pp.src.ss_family == pp.dst.ss_family);
	}
	for (size_t n = 0; n < (size_t)len; n++)
		CHECK(proxyproto_parse(data, n, &again, &why) == 0);
	more = malloc((size_t)len + 8);
	CHECK(more != NULL);
	memcpy(more, data, (size_t)len);
	memcpy(more + len, "GET / HT", 8);
	CHECK(proxyproto_parse(more, (size_t)len + 8, &again, &why) == len);
	CHECK(again.has_addresses == pp.has_addresses && again.version == pp.version);
	free(more);
	return 0;
}

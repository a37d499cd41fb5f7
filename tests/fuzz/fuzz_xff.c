/* libFuzzer target for src/xff.c: the client address behind trusted proxies.
 *
 * Input: a byte n (the proxies, 0..15 from its low bits), then fields one a line ('\n'):
 * a line starting with 'X' is an x-forwarded-for field (the rest is its value), any other
 * line a field of another name.  The answer must equal a naive reference: split every
 * x-forwarded-for value at ',' in field order, take the entry n from the right, trim
 * spaces and tabs, and parse it with inet_pton.  Values are exact-size heap copies so ASan
 * catches any read past the end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz_check.h"
#include "xff.h"

#define MAX_FIELDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool reference(const struct msg_header *h, size_t nh, uint32_t n,
		      struct sockaddr_storage *ss)
{
	const char *entry[1024];
	size_t elen[1024], ne = 0;
	char ip[64];

	for (size_t i = 0; i < nh; i++) {
		size_t s = 0;

		if (h[i].name_len != 15)
			continue;
		for (size_t k = 0; k <= h[i].value_len && ne < 1024; k++)
			if (k == h[i].value_len || h[i].value[k] == ',') {
				entry[ne] = h[i].value + s;
				elen[ne++] = k - s;
				s = k + 1;
			}
	}
	if (n == 0 || ne < n || ne >= 1024)
		return false;
	{
		const char *e = entry[ne - n];
		size_t len = elen[ne - n];

		while (len > 0 && (*e == ' ' || *e == '\t'))
			e++, len--;
		while (len > 0 && (e[len - 1] == ' ' || e[len - 1] == '\t'))
			len--;
		if (len >= sizeof(ip) || memchr(e, '\0', len) != NULL)
			return false;
		memcpy(ip, e, len);
		ip[len] = '\0';
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_header h[MAX_FIELDS];
	char *copies[MAX_FIELDS];
	struct sockaddr_storage got, want;
	size_t nh = 0, s = 1;
	uint32_t n;
	bool a, b;

	if (size == 0)
		return 0;
	n = data[0] & 15;
	for (size_t k = 1; k <= size && nh < MAX_FIELDS; k++) {
		if (k < size && data[k] != '\n')
			continue;
		if (k > s) {
			bool xff = data[s] == 'X';
			size_t len = k - s - 1;

			copies[nh] = malloc(len ? len : 1);
			CHECK(copies[nh] != NULL);
			memcpy(copies[nh], data + s + 1, len);
			h[nh].name = xff ? "x-forwarded-for" : "accept";
			h[nh].name_len = xff ? 15 : 6;
			h[nh].value = copies[nh];
			h[nh].value_len = len;
			nh++;
		}
		s = k + 1;
	}
	a = xff_client(h, nh, n, &got);
	b = reference(h, nh, n, &want);
	/* the reference gives up past 1024 entries; xff.c does not need to */
	if (b || a != b) {
		size_t entries = 0;

		for (size_t i = 0; i < nh; i++)
			for (size_t k = 0; h[i].name_len == 15 && k < h[i].value_len; k++)
				entries += h[i].value[k] == ',';
		if (entries + nh < 1024) {
			CHECK(a == b);
			CHECK(!a || memcmp(&got, &want, sizeof(got)) == 0);
		}
	}
	for (size_t i = 0; i < nh; i++)
		free(copies[i]);
	return 0;
}

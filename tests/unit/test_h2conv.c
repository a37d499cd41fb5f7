/* h2conv: the HTTP/1.1 request head -> HTTP/2 header list, the HTTP/2 response block ->
 * HTTP/1.1 head, and the framing chosen for the response body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "h2conv.h"

static const char *nv_get(const nghttp2_nv *nv, int n, const char *name)
{
	static char buf[256];

	for (int i = 0; i < n; i++)
		if (nv[i].namelen == strlen(name) && memcmp(nv[i].name, name, nv[i].namelen) == 0) {
			memcpy(buf, nv[i].value, nv[i].valuelen);
			buf[nv[i].valuelen] = '\0';
			return buf;
		}
	return NULL;
}

static void test_request_head(void **state)
{
	static const char head[] = "POST /a/b?x=1 HTTP/1.1\r\nhost: shop.example\r\n"
				   "X-Mixed: V\r\nConnection: keep-alive\r\nkeep-alive: 5\r\n"
				   "te: trailers\r\nupgrade: h2c\r\ncontent-length: 5\r\n\r\n";
	char lower[sizeof(head)];
	nghttp2_nv nv[32];
	struct h2conv_req info;
	int n = h2conv_request(head, sizeof(head) - 1, "http", lower, nv, 32, &info);

	assert_int_equal(n, 7);
	assert_string_equal(nv_get(nv, n, ":method"), "POST");
	assert_string_equal(nv_get(nv, n, ":scheme"), "http");
	assert_string_equal(nv_get(nv, n, ":authority"), "shop.example");
	assert_string_equal(nv_get(nv, n, ":path"), "/a/b?x=1");
	assert_string_equal(nv_get(nv, n, "x-mixed"), "V");
	assert_string_equal(nv_get(nv, n, "te"), "trailers");
	assert_string_equal(nv_get(nv, n, "content-length"), "5");
	assert_null(nv_get(nv, n, "host"));
	assert_null(nv_get(nv, n, "connection"));
	assert_null(nv_get(nv, n, "keep-alive"));
	assert_null(nv_get(nv, n, "upgrade"));
	assert_int_equal(info.kind, HTTP1_BODY_LENGTH);
	assert_int_equal(info.length, 5);
	/* pseudo-headers come first */
	assert_memory_equal(nv[0].name, ":method", 7);
}

static void test_request_chunked_and_te(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nhost: a\r\nte: gzip\r\n"
				   "transfer-encoding: chunked\r\n\r\n";
	char lower[sizeof(head)];
	nghttp2_nv nv[8];
	struct h2conv_req info;
	int n = h2conv_request(head, sizeof(head) - 1, "https", lower, nv, 8, &info);

	assert_int_equal(n, 4);
	assert_null(nv_get(nv, n, "te"));
	assert_null(nv_get(nv, n, "transfer-encoding"));
	assert_string_equal(nv_get(nv, n, ":scheme"), "https");
	assert_int_equal(info.kind, HTTP1_BODY_CHUNKED);
	/* no Host, not a head, too many fields */
	assert_int_equal(h2conv_request("GET / HTTP/1.1\r\n\r\n", 18, "http", lower, nv, 8, &info),
			 -1);
	assert_int_equal(h2conv_request("junk", 4, "http", lower, nv, 8, &info), -1);
	assert_int_equal(h2conv_request(head, sizeof(head) - 1, "http", lower, nv, 3, &info), -1);
}

static int field(struct h2conv_resp *r, struct evbuffer *f, const char *n, const char *v)
{
	return h2conv_resp_field(r, f, (const uint8_t *)n, strlen(n), (const uint8_t *)v,
				 strlen(v));
}

static char *head_of(struct h2conv_resp *r, struct evbuffer *f, bool end, int *chunked)
{
	struct evbuffer *out = evbuffer_new();
	char *s;
	size_t len;

	*chunked = h2conv_resp_head(r, f, end, out);
	len = evbuffer_get_length(out);
	s = calloc(1, len + 1);
	evbuffer_remove(out, s, len);
	evbuffer_free(out);
	return s;
}

static void test_response_head(void **state)
{
	struct evbuffer *f = evbuffer_new();
	struct h2conv_resp r;
	int chunked;
	char *h;

	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, ":status", "200"), 0);
	assert_int_equal(field(&r, f, "content-type", "text/plain"), 0);
	assert_int_equal(field(&r, f, "connection", "close"), 0); /* dropped */
	h = head_of(&r, f, false, &chunked);
	assert_int_equal(chunked, 1);
	assert_string_equal(h, "HTTP/1.1 200 \r\ncontent-type: text/plain\r\n"
			       "transfer-encoding: chunked\r\n\r\n");
	free(h);

	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, ":status", "404"), 0);
	assert_int_equal(field(&r, f, "content-length", "12"), 0);
	h = head_of(&r, f, false, &chunked);
	assert_int_equal(chunked, 0);
	assert_string_equal(h, "HTTP/1.1 404 \r\ncontent-length: 12\r\n\r\n");
	free(h);

	/* a response that ends with its head: an empty body, said so */
	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, ":status", "503"), 0);
	h = head_of(&r, f, true, &chunked);
	assert_string_equal(h, "HTTP/1.1 503 \r\ncontent-length: 0\r\n\r\n");
	free(h);
	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, ":status", "204"), 0);
	h = head_of(&r, f, false, &chunked);
	assert_string_equal(h, "HTTP/1.1 204 \r\n\r\n");
	free(h);
	evbuffer_free(f);
}

static void test_response_bad(void **state)
{
	struct evbuffer *f = evbuffer_new();
	struct h2conv_resp r;
	int chunked;
	char *h;

	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, "x", "y"), -1); /* before :status */
	memset(&r, 0, sizeof(r));
	assert_int_equal(field(&r, f, ":status", "2000"), -1);
	assert_int_equal(field(&r, f, ":status", "600"), -1);
	assert_int_equal(field(&r, f, ":path", "/"), -1);
	assert_int_equal(field(&r, f, ":status", "200"), 0);
	assert_int_equal(field(&r, f, ":status", "200"), -1); /* twice */
	assert_int_equal(field(&r, f, "Upper", "v"), -1);
	assert_int_equal(field(&r, f, "x", "a\r\nb: c"), -1);
	assert_int_equal(field(&r, f, "x", " padded"), -1);
	assert_int_equal(field(&r, f, "content-length", "12x"), -1);
	assert_int_equal(
	    h2conv_resp_field(&r, f, (const uint8_t *)"x", 1, (const uint8_t *)"a\0b", 3), -1);
	/* trailers: no pseudo-header, no content-length */
	memset(&r, 0, sizeof(r));
	r.trailers = true;
	assert_int_equal(field(&r, f, ":status", "200"), -1);
	assert_int_equal(field(&r, f, "grpc-status", "0"), 0);
	assert_int_equal(evbuffer_get_length(f), strlen("grpc-status: 0\r\n"));
	evbuffer_drain(f, evbuffer_get_length(f));
	/* no :status at all */
	memset(&r, 0, sizeof(r));
	h = head_of(&r, f, false, &chunked);
	assert_int_equal(chunked, -1);
	free(h);
	evbuffer_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_head),
	    cmocka_unit_test(test_request_chunked_and_te),
	    cmocka_unit_test(test_response_head),
	    cmocka_unit_test(test_response_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fetch.c against canned responses from a one-connection server in a forked child on
 * 127.0.0.1: the three body framings, statuses, limits, truncation, a server that never
 * answers, a closed port, strict framing errors and URLs refused before any connection.
 * HTTPS is left to the end-to-end tests. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <dlfcn.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fetch.h"

struct server {
	pid_t pid;
	int port;
	int reqfd; /* read end of a pipe: the request head the server received */
};

/* A socket bound to 127.0.0.1 on a port of the kernel's choosing. */
static int bound_socket(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* The child: one connection; reads the request head, reports it, answers resp (or never
 * answers), half-closes and waits for the client to close.  alarm() bounds its life. */
static void serve_one(int lfd, int reqw, const char *resp, int hang)
{
	char req[4096];
	size_t n = 0;
	int fd;

	alarm(10);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	while (n < sizeof(req) - 1) {
		ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if (write(reqw, req, n) != (ssize_t)n)
		_exit(1);
	close(reqw);
	if (hang)
		for (;;)
			pause();
	if (send(fd, resp, strlen(resp), MSG_NOSIGNAL) != (ssize_t)strlen(resp))
		_exit(1);
	shutdown(fd, SHUT_WR);
	while (recv(fd, req, sizeof(req), 0) > 0)
		;
	close(fd);
	_exit(0);
}

static void server_start(struct server *s, const char *resp, int hang)
{
	int lfd = bound_socket(&s->port), p[2];

	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		close(p[0]);
		serve_one(lfd, p[1], resp, hang);
	}
	close(lfd);
	close(p[1]);
	s->reqfd = p[0];
}

/* Stops the child; the request head it received into req (NUL-terminated). */
static void server_stop(struct server *s, char *req, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	int st;

	kill(s->pid, SIGKILL);
	while (n < cap - 1 && (r = read(s->reqfd, req + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	req[n] = '\0';
	close(s->reqfd);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
}

/* Open descriptors, to see that no path of fetch_get leaks one. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* GET http://127.0.0.1:PORT<path> from a server answering resp: fetch_get's result. */
static int get(const char *resp, const char *path, size_t max, int timeout_ms, char **body,
	       size_t *len, char *err, size_t errlen, char *req, size_t reqcap)
{
	struct server s;
	char url[256];
	int rc, fds = open_fds();

	server_start(&s, resp, resp == NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s.port, path);
	rc = fetch_get(url, timeout_ms, max, body, len, err, errlen);
	server_stop(&s, req, reqcap);
	assert_int_equal(open_fds(), fds);
	return rc;
}

/* A 200 whose body must be want. */
static void expect_body(const char *resp, size_t max, const char *want)
{
	char err[256], req[4096], *body = NULL;
	size_t len = 0;

	if (get(resp, "/", max, 3000, &body, &len, err, sizeof(err), req, sizeof(req)) != 0)
		fail_msg("fetch failed: %s", err);
	assert_non_null(body);
	assert_int_equal(len, strlen(want));
	assert_string_equal(body, want);
	free(body);
}

/* A failure whose reason contains want. */
static void expect_err(const char *resp, size_t max, const char *want)
{
	char err[256], req[4096], *body = (char *)"x";
	size_t len = 1;

	assert_int_equal(get(resp, "/", max, 3000, &body, &len, err, sizeof(err), req, sizeof(req)),
			 -1);
	assert_null(body);
	assert_int_equal(len, 0);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_content_length(void **state)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				   "Content-Length: 13\r\n\r\n{\"keys\": []}\n";
	char err[256], req[4096], want[512], *body = NULL;
	struct server s;
	char url[256];
	size_t len = 0;

	(void)state;
	server_start(&s, resp, 0);
	snprintf(url, sizeof(url), "HTTP://127.0.0.1:%d/jwks.json?x=1#frag", s.port);
	assert_int_equal(fetch_get(url, 3000, 1024, &body, &len, err, sizeof(err)), 0);
	server_stop(&s, req, sizeof(req));
	assert_int_equal(len, 13);
	assert_string_equal(body, "{\"keys\": []}\n");
	free(body);
	snprintf(want, sizeof(want),
		 "GET /jwks.json?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: meshgate\r\n"
		 "Accept: application/json\r\nConnection: close\r\n\r\n",
		 s.port);
	assert_string_equal(req, want);

	/* exactly max_body is fine; an empty body is an empty string */
	expect_body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 5, "hello");
	expect_body("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "");
	/* the same length twice is one length */
	expect_body("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nok", 10,
		    "ok");
}

static void test_chunked(void **state)
{
	(void)state;
	expect_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5;name=value\r\nhello\r\n7 ; x\r\n, world\r\n"
		    "0\r\nX-Trailer: t\r\nY: u\r\n\r\n",
		    64, "hello, world");
	expect_body("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
		    "00A\r\n0123456789\r\n0\r\n\r\n",
		    10, "0123456789");
}

static void test_to_eof(void **state)
{
	char err[256], req[4096], *body = NULL;
	size_t len = 0;

	(void)state;
	expect_body("HTTP/1.0 200 OK\r\n\r\nto the end", 64, "to the end");
	/* no path: "/" */
	assert_int_equal(get("HTTP/1.1 200 OK\r\n\r\n{}", "", 64, 3000, &body, &len, err,
			     sizeof(err), req, sizeof(req)),
			 0);
	assert_string_equal(body, "{}");
	free(body);
	assert_true(strncmp(req, "GET / HTTP/1.1\r\n", 16) == 0);
}

static void test_interim(void **state)
{
	(void)state;
	expect_body("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		    64, "ok");
}

static void test_status(void **state)
{
	char err[256], req[4096], *body = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(get("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n", "/", 64,
			     3000, &body, &len, err, sizeof(err), req, sizeof(req)),
			 -1);
	assert_string_equal(err, "HTTP status 404");
	assert_int_equal(get("HTTP/1.1 301 Moved Permanently\r\nLocation: http://x/\r\n"
			     "Content-Length: 0\r\n\r\n",
			     "/", 64, 3000, &body, &len, err, sizeof(err), req, sizeof(req)),
			 -1);
	assert_string_equal(err, "HTTP status 301 (redirects are not followed)");
	assert_null(body);
	expect_err("HTTP/1.1 204 No Content\r\n\r\n", 64, "HTTP status 204");
	expect_err("HTTP/1.1 500\r\n\r\n", 64, "HTTP status 500");
}

static void test_too_large(void **state)
{
	(void)state;
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 10,
		   "body larger than 10 bytes");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
		   10, "body larger than 10 bytes");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "ffffffffffffffffff\r\n",
		   10, "body larger than 10 bytes");
	expect_err("HTTP/1.1 200 OK\r\n\r\n0123456789A", 10, "body larger than 10 bytes");
}

static void test_truncated(void **state)
{
	(void)state;
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 1000,
		   "truncated body");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 1000,
		   "truncated body");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 1000,
		   "truncated body");
	expect_err("HTTP/1.1 200 OK\r\nContent-Le", 1000, "truncated response head");
	expect_err("", 1000, "connection closed without a response");
}

static void test_bad_framing(void **state)
{
	(void)state;
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "0\r\n\r\n",
		   64, "both Content-Length and Transfer-Encoding");
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 64,
		   "conflicting Content-Length");
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab", 64, "bad Content-Length");
	expect_err("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab", 64, "bad Content-Length");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 64,
		   "unsupported Transfer-Encoding");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64,
		   "bad chunked encoding");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 64,
		   "bad chunked encoding");
	expect_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
		   64, "bad chunked encoding");
	expect_err("HTTP/2 200\r\n\r\nx", 64, "bad status line");
	expect_err("HTTP/1.1 20 OK\r\n\r\nx", 64, "bad status line");
	expect_err("HTTP/1.1 200 OK\r\n folded: x\r\n\r\nx", 64, "obsolete line folding");
	expect_err("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\nx", 64, "bad field name");
	expect_err("HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\nx", 64, "bad field value");
}

static void test_timeout(void **state)
{
	char err[256], req[4096], *body = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(get(NULL, "/", 64, 300, &body, &len, err, sizeof(err), req, sizeof(req)),
			 -1);
	if (strstr(err, "timed out") == NULL)
		fail_msg("error \"%s\" is not a timeout", err);
	assert_true(strncmp(req, "GET / HTTP/1.1\r\n", 16) == 0);
}

static void test_refused(void **state)
{
	char err[256], url[64], want[128], *body = NULL;
	size_t len = 0;
	int port, fd = bound_socket(&port);

	(void)state;
	close(fd); /* nothing listens there now */
	fd = open_fds();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%d: Connection refused", port);
	assert_int_equal(fetch_get(url, 3000, 64, &body, &len, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(body);
	assert_int_equal(open_fds(), fd);
}

static void test_bad_urls(void **state)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
	    {"ftp://x/", "scheme"},
	    {"http:/x/", "scheme"},
	    {"x", "scheme"},
	    {"http://", "no host"},
	    {"http:///path", "no host"},
	    {"http://:80/", "no host"},
	    {"http://a@b/", "userinfo"},
	    {"https://user:pw@b:443/", "userinfo"},
	    {"http://h:0/", "port"},
	    {"http://h:70000/", "port"},
	    {"http://h:/", "port"},
	    {"http://h:8x/", "port"},
	    {"http://h:-1/", "port"},
	    {"http://[::1/", "host"},
	    {"http://[zz]/", "IPv6"},
	    {"http://[::1]x/", "host"},
	    {"http://[fe80::1%25eth0]/", "IPv6"},
	    {"http://h%41/", "host"},
	    {"http://h/a b", "path"},
	    {"http://h/\x7f", "path"},
	};
	char err[256], *body = NULL;
	size_t len = 0, i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (fetch_get(cases[i].url, 1000, 64, &body, &len, err, sizeof(err)) != -1 ||
		    strstr(err, cases[i].want) == NULL)
			fail_msg("%s: \"%s\", want \"%s\"", cases[i].url, err, cases[i].want);
		assert_null(body);
	}
	assert_int_equal(fetch_get("http://h/", 0, 64, &body, &len, err, sizeof(err)), -1);
}

int main(void)
{
	/* getaddrinfo_a's helper threads load libgcc_s (for unwinding) the first time one
	 * exits, in the background: its file descriptor, open for a moment, would be counted
	 * by open_fds() as a leak or its absence.  Loaded now, it is never opened again. */
	(void)dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_content_length), cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_to_eof),         cmocka_unit_test(test_interim),
	    cmocka_unit_test(test_status),         cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_truncated),      cmocka_unit_test(test_bad_framing),
	    cmocka_unit_test(test_timeout),        cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_bad_urls),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

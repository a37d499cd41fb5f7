/* stream.c over real sockets (socketpairs and a loopback listener) and a real event loop:
 * reads, the end-of-round write, watermarks, EOF, read timeouts, connect outcomes, and a
 * stream freed inside its own callback.  TLS: a server stream against an OpenSSL client
 * driven by the test on the other end of a socketpair (a self-signed P-256 certificate
 * made at start): the handshake, SSL_write retries under a small send buffer, plaintext
 * left inside the SSL while reading is paused at the high watermark, close_notify and a
 * bare close, and a peer that does not speak TLS. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "stream.h"

struct probe {
	struct event_base *base;
	struct stream_loop *loop;
	struct stream *st;
	int reads, writes, events;
	short last_event;
	size_t seen;     /* input length at the last read callback */
	bool free_in_cb; /* stream_free from inside the read callback */
	bool echo;       /* write back what was read */
	bool stop_on_event;
	size_t stop_at;       /* break the loop once this much was read (0: never) */
	bool disable_on_read; /* stream_disable(EV_READ) in the read callback */
};

static void probe_read(struct stream *st, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = stream_input(st);

	p->reads++;
	p->seen = evbuffer_get_length(in);
	if (p->echo)
		evbuffer_add_buffer(stream_output(st), in);
	if (p->disable_on_read)
		stream_disable(st, EV_READ);
	if (p->free_in_cb) {
		stream_free(st);
		p->st = NULL;
		event_base_loopbreak(p->base);
		return;
	}
	if (p->stop_at > 0 && p->seen >= p->stop_at)
		event_base_loopbreak(p->base);
}

static void probe_write(struct stream *st, void *arg)
{
	struct probe *p = arg;

	(void)st;
	p->writes++;
}

static void probe_event(struct stream *st, short what, void *arg)
{
	struct probe *p = arg;

	(void)st;
	p->events++;
	p->last_event = what;
	if (p->stop_on_event)
		event_base_loopbreak(p->base);
}

static void run_for(struct event_base *base, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void make_pair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

static struct stream *probe_stream(struct probe *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->base = event_base_new();
	assert_non_null(p->base);
	p->loop = stream_loop_new(p->base);
	assert_non_null(p->loop);
	p->st = stream_socket_new(p->loop, fd);
	assert_non_null(p->st);
	stream_setcb(p->st, probe_read, probe_write, probe_event, p);
	return p->st;
}

static void probe_done(struct probe *p)
{
	stream_free(p->st);
	stream_loop_free(p->loop);
	event_base_free(p->base);
}

/* What a callback adds goes out at the end of the round, in order; the write callback
 * reports the drained output. */
static void test_echo(void **state)
{
	struct probe p;
	int fds[2];
	char buf[64];
	ssize_t n;

	(void)state;
	make_pair(fds);
	probe_stream(&p, fds[0]);
	p.echo = true;
	p.stop_at = 5;
	stream_enable(p.st, EV_READ | EV_WRITE);
	assert_int_equal(write(fds[1], "hello", 5), 5);
	run_for(p.base, 2000);
	assert_int_equal(p.reads, 1);
	/* written when the read callback's round ended, before the loop broke */
	run_for(p.base, 50);
	n = read(fds[1], buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_true(p.writes >= 1);
	assert_int_equal(evbuffer_get_length(stream_output(p.st)), 0);
	probe_done(&p);
	close(fds[1]);
}

/* Between exchanges a stream gives its empty buffers back to the loop and takes them
 * again on the next read: two streams on one loop echo in turn and together, and each
 * peer gets exactly its own bytes. */
static void test_buffers_between_exchanges(void **state)
{
	struct probe p;
	struct stream *second;
	int a[2], b[2];
	char buf[64];

	(void)state;
	make_pair(a);
	make_pair(b);
	probe_stream(&p, a[0]);
	p.echo = true;
	second = stream_socket_new(p.loop, b[0]);
	assert_non_null(second);
	stream_setcb(second, probe_read, probe_write, probe_event, &p);
	stream_enable(p.st, EV_READ | EV_WRITE);
	stream_enable(second, EV_READ | EV_WRITE);
	assert_int_equal(stream_loop_spare_buffers(p.loop), 0);

	for (int round = 0; round < 3; round++) {
		char want_a[16], want_b[16];
		int la = snprintf(want_a, sizeof(want_a), "a%d-first", round);
		int lb = snprintf(want_b, sizeof(want_b), "b%d-second", round);

		assert_int_equal(write(a[1], want_a, (size_t)la), la);
		if (round > 0) /* the first round: one stream at a time; then both at once */
			assert_int_equal(write(b[1], want_b, (size_t)lb), lb);
		run_for(p.base, 50);
		assert_int_equal(read(a[1], buf, sizeof(buf)), la);
		assert_memory_equal(buf, want_a, (size_t)la);
		if (round == 0) {
			/* the echo was written: its input and output are spares now */
			assert_int_equal(stream_loop_spare_buffers(p.loop), 2);
			assert_int_equal(write(b[1], want_b, (size_t)lb), lb);
			run_for(p.base, 50);
		}
		assert_int_equal(read(b[1], buf, sizeof(buf)), lb);
		assert_memory_equal(buf, want_b, (size_t)lb);
		assert_int_equal(stream_loop_spare_buffers(p.loop), round == 0 ? 2 : 4);
		assert_int_equal(stream_input_len(p.st), 0);
		assert_int_equal(stream_output_len(second), 0);
	}
	stream_free(second);
	probe_done(&p);
	close(a[1]);
	close(b[1]);
}

/* Large writes: the kernel takes part, the rest waits for writability, all arrives. */
static void test_backpressure(void **state)
{
	struct probe p;
	int fds[2];
	static char big[4 << 20], got[4 << 20];
	size_t have = 0;

	(void)state;
	make_pair(fds);
	probe_stream(&p, fds[0]);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	stream_enable(p.st, EV_WRITE);
	evbuffer_add(stream_output(p.st), big, sizeof(big));
	assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
	while (have < sizeof(big)) {
		ssize_t n;

		event_base_loop(p.base, EVLOOP_NONBLOCK);
		n = read(fds[1], got + have, sizeof(got) - have);
		if (n > 0)
			have += (size_t)n;
		else
			assert_true(n < 0 && errno == EAGAIN);
	}
	assert_memory_equal(got, big, sizeof(big));
	event_base_loop(p.base, EVLOOP_NONBLOCK);
	assert_int_equal(evbuffer_get_length(stream_output(p.st)), 0);
	assert_true(p.writes >= 1);
	probe_done(&p);
	close(fds[1]);
}

/* Reading pauses at the high watermark and resumes when the input drains below it. */
static void test_read_high_watermark(void **state)
{
	struct probe p;
	int fds[2];
	char chunk[4096];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	make_pair(fds);
	probe_stream(&p, fds[0]);
	stream_setwatermark(p.st, EV_READ, 0, 8192);
	stream_enable(p.st, EV_READ);
	for (int i = 0; i < 8; i++)
		assert_int_equal(write(fds[1], chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	run_for(p.base, 100);
	assert_int_equal(evbuffer_get_length(stream_input(p.st)), 8192);
	/* drain: reading resumes and takes the next 8 KiB */
	evbuffer_drain(stream_input(p.st), 8192);
	run_for(p.base, 100);
	assert_int_equal(evbuffer_get_length(stream_input(p.st)), 8192);
	evbuffer_drain(stream_input(p.st), 8192);
	run_for(p.base, 100);
	assert_int_equal(evbuffer_get_length(stream_input(p.st)), 8192);
	evbuffer_drain(stream_input(p.st), 8192);
	run_for(p.base, 100);
	assert_int_equal(evbuffer_get_length(stream_input(p.st)), 8192);
	probe_done(&p);
	close(fds[1]);
}

/* Bytes then EOF: the bytes are delivered, then BEV_EVENT_EOF with reading disabled. */
static void test_eof_after_data(void **state)
{
	struct probe p;
	int fds[2];

	(void)state;
	make_pair(fds);
	probe_stream(&p, fds[0]);
	p.stop_on_event = true;
	stream_enable(p.st, EV_READ);
	assert_int_equal(write(fds[1], "abc", 3), 3);
	close(fds[1]);
	run_for(p.base, 2000);
	assert_int_equal(p.reads, 1);
	assert_int_equal(p.seen, 3);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_EOF);
	probe_done(&p);
}

static void test_read_timeout(void **state)
{
	struct probe p;
	int fds[2];
	struct timeval tv = {0, 30000};

	(void)state;
	make_pair(fds);
	probe_stream(&p, fds[0]);
	p.stop_on_event = true;
	stream_set_read_timeout(p.st, &tv);
	stream_enable(p.st, EV_READ);
	run_for(p.base, 5000);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
	/* no timeout once it is cleared */
	p.events = 0;
	stream_set_read_timeout(p.st, NULL);
	stream_enable(p.st, EV_READ);
	run_for(p.base, 100);
	assert_int_equal(p.events, 0);
	probe_done(&p);
	close(fds[1]);
}

static void test_free_in_callback(void **state)
{
	struct probe p;
	int fds[2];

	(void)state;
	make_pair(fds);
	probe_stream(&p, fds[0]);
	p.free_in_cb = true;
	stream_enable(p.st, EV_READ | EV_WRITE);
	assert_int_equal(write(fds[1], "x", 1), 1);
	run_for(p.base, 2000);
	assert_null(p.st);
	assert_int_equal(p.reads, 1);
	/* the socket was closed by the free */
	assert_int_equal(read(fds[1], &p.seen, 1), 0);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	close(fds[1]);
}

static int listener(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

/* A connect that succeeds: CONNECTED, and what was queued before it is sent after it. */
static void test_connect(void **state)
{
	struct probe p;
	struct sockaddr_in sin;
	int lfd = listener(&sin), afd;
	char buf[16];

	(void)state;
	probe_stream(&p, -1);
	p.stop_on_event = true;
	stream_enable(p.st, EV_READ | EV_WRITE);
	evbuffer_add(stream_output(p.st), "GET", 3);
	assert_int_equal(stream_connect(p.st, (struct sockaddr *)&sin, sizeof(sin)), 0);
	run_for(p.base, 5000);
	assert_int_equal(p.last_event, BEV_EVENT_CONNECTED);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	p.stop_on_event = false;
	run_for(p.base, 50);
	assert_int_equal(read(afd, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "GET", 3);
	probe_done(&p);
	close(afd);
	close(lfd);
}

/* A refused connect is an error event, never a failed call. */
static void test_connect_refused(void **state)
{
	struct probe p;
	struct sockaddr_in sin;
	int lfd = listener(&sin);

	(void)state;
	close(lfd); /* nothing listens there now */
	probe_stream(&p, -1);
	p.stop_on_event = true;
	stream_enable(p.st, EV_READ | EV_WRITE);
	assert_int_equal(stream_connect(p.st, (struct sockaddr *)&sin, sizeof(sin)), 0);
	run_for(p.base, 5000);
	assert_int_equal(p.events, 1);
	assert_true(p.last_event & BEV_EVENT_ERROR);
	probe_done(&p);
}

/* ---- TLS ---- */

static SSL_CTX *server_ctx, *client_ctx;

/* A self-signed P-256 certificate for the server context, made with the OpenSSL API. */
static int tls_setup(void **state)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	X509_NAME *name;

	(void)state;
	assert_non_null(key);
	assert_non_null(crt);
	assert_int_equal(X509_set_version(crt, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(crt), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(crt), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(crt), 3600));
	name = X509_get_subject_name(crt);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"stream.test", -1, -1,
						    0),
			 1);
	assert_int_equal(X509_set_issuer_name(crt, name), 1);
	assert_int_equal(X509_set_pubkey(crt, key), 1);
	assert_true(X509_sign(crt, key, EVP_sha256()) > 0);

	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(server_ctx);
	assert_non_null(client_ctx);
	assert_int_equal(SSL_CTX_use_certificate(server_ctx, crt), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(server_ctx, key), 1);
	SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	X509_free(crt);
	EVP_PKEY_free(key);
	return 0;
}

static int tls_teardown(void **state)
{
	(void)state;
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return 0;
}

/* The test's end of the socketpair: an OpenSSL client on a non-blocking socket. */
struct peer {
	SSL *ssl;
	int fd;
};

/* Steps of the peer run between loop rounds; this bounds how long a test may wait for the
 * stream (a stall fails the test rather than hanging it). */
#define PUMP_ROUNDS 20000

static void pump_once(struct probe *p)
{
	event_base_loop(p->base, EVLOOP_NONBLOCK);
	usleep(100);
}

/* A TLS server stream over fds[0] and the peer over fds[1], handshake done. */
static void tls_pair(struct probe *p, struct peer *pe, int fds[2])
{
	SSL *ssl;
	int r = 0;

	make_pair(fds);
	memset(p, 0, sizeof(*p));
	p->base = event_base_new();
	assert_non_null(p->base);
	p->loop = stream_loop_new(p->base);
	assert_non_null(p->loop);
	ssl = SSL_new(server_ctx);
	assert_non_null(ssl);
	p->st = stream_tls_new(p->loop, fds[0], ssl, true);
	assert_non_null(p->st);
	stream_setcb(p->st, probe_read, probe_write, probe_event, p);

	assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
	pe->fd = fds[1];
	pe->ssl = SSL_new(client_ctx);
	assert_non_null(pe->ssl);
	assert_int_equal(SSL_set_fd(pe->ssl, pe->fd), 1);
	SSL_set_connect_state(pe->ssl);
	for (int i = 0; i < PUMP_ROUNDS && (r != 1 || p->events == 0); i++) {
		if (r != 1)
			r = SSL_do_handshake(pe->ssl);
		pump_once(p);
	}
	assert_int_equal(r, 1);
	assert_int_equal(p->events, 1);
	assert_int_equal(p->last_event, BEV_EVENT_CONNECTED);
	p->events = 0;
	p->last_event = 0;
}

static void peer_free(struct peer *pe)
{
	SSL_free(pe->ssl);
	close(pe->fd);
}

/* Write all of buf from the peer, running the stream's loop while the socket is full. */
static void peer_write(struct probe *p, struct peer *pe, const char *buf, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < PUMP_ROUNDS && done < len; i++) {
		int n = SSL_write(pe->ssl, buf + done, (int)(len - done));

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		assert_int_equal(SSL_get_error(pe->ssl, n), SSL_ERROR_WANT_WRITE);
		pump_once(p);
	}
	assert_int_equal(done, len);
}

/* Read exactly len bytes at the peer, running the stream's loop meanwhile. */
static void peer_read(struct probe *p, struct peer *pe, char *buf, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < PUMP_ROUNDS && done < len; i++) {
		int n = SSL_read(pe->ssl, buf + done, (int)(len - done));

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		assert_int_equal(SSL_get_error(pe->ssl, n), SSL_ERROR_WANT_READ);
		pump_once(p);
	}
	assert_int_equal(done, len);
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)((i * 131 + seed) >> 3);
}

static void tls_done(struct probe *p, struct peer *pe)
{
	probe_done(p);
	peer_free(pe);
}

/* Handshake, then both directions: what the read callback adds to the output goes back
 * in the end-of-round write. */
static void test_tls_echo(void **state)
{
	struct probe p;
	struct peer pe;
	int fds[2];
	char buf[5];

	(void)state;
	tls_pair(&p, &pe, fds);
	assert_non_null(stream_ssl(p.st));
	/* the SSL reads and writes the stream's own socket (send/recv, not read/write) */
	assert_string_equal(BIO_method_name(SSL_get_rbio(stream_ssl(p.st))),
			    "meshgate stream socket");
	assert_int_equal(SSL_get_fd(stream_ssl(p.st)), fds[0]);
	p.echo = true;
	stream_enable(p.st, EV_READ | EV_WRITE);
	peer_write(&p, &pe, "hello", 5);
	peer_read(&p, &pe, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_true(p.reads >= 1);
	assert_int_equal(p.events, 0);
	tls_done(&p, &pe);
}

static int blocked_writes;

/* Counts the socket BIO's writes that the kernel refused (the SSL_write then reports
 * SSL_ERROR_WANT_WRITE to the stream). */
static long count_blocked(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
			  int ret, size_t *processed)
{
	(void)argp;
	(void)len;
	(void)argi;
	(void)argl;
	(void)processed;
	if (oper == (BIO_CB_WRITE | BIO_CB_RETURN) && ret <= 0 && BIO_should_retry(b))
		blocked_writes++;
	return ret;
}

/* A large write under a small send buffer: SSL_write gets WANT_WRITE and is retried with
 * the same length, also after more bytes were added to the output meanwhile (the buffer may
 * move); every byte arrives, in order, and the write callback reports the drained output. */
static void test_tls_want_write_retry(void **state)
{
	enum { TOTAL = 1 << 20, FIRST = 200 * 1024, PIECE = 64 * 1024 };
	static char data[TOTAL], got[TOTAL];
	struct probe p;
	struct peer pe;
	int fds[2], small = 4096;
	size_t added = FIRST;

	(void)state;
	tls_pair(&p, &pe, fds);
	assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	BIO_set_callback_ex(SSL_get_wbio(stream_ssl(p.st)), count_blocked);
	blocked_writes = 0;
	fill(data, sizeof(data), 7);
	stream_enable(p.st, EV_READ | EV_WRITE);
	evbuffer_add(stream_output(p.st), data, FIRST);
	/* the peer reads nothing yet: the kernel refuses, OpenSSL holds a record */
	for (int i = 0; i < 20; i++)
		pump_once(&p);
	assert_true(blocked_writes > 0);
	assert_true(stream_output_len(p.st) > 0);
	/* more bytes while a retry is pending */
	while (added < TOTAL) {
		size_t n = TOTAL - added < PIECE ? TOTAL - added : PIECE;

		evbuffer_add(stream_output(p.st), data + added, n);
		added += n;
		pump_once(&p);
	}
	peer_read(&p, &pe, got, sizeof(got));
	assert_memory_equal(got, data, sizeof(data));
	for (int i = 0; i < 5; i++)
		pump_once(&p);
	assert_int_equal(stream_output_len(p.st), 0);
	assert_true(p.writes >= 1);
	assert_int_equal(p.events, 0);
	BIO_set_callback_ex(SSL_get_wbio(stream_ssl(p.st)), NULL);
	tls_done(&p, &pe);
}

/* Take what the read callbacks gathered (the input, never above high), until want bytes or
 * an event; returns the bytes taken.  *pending is set when plaintext was inside the SSL
 * while reading was paused: the poller cannot see those, stream_resume must. */
static size_t drain_input(struct probe *p, char *out, size_t want, size_t high, bool *pending)
{
	size_t have = 0;

	for (int i = 0; i < PUMP_ROUNDS && have < want && p->events == 0; i++) {
		struct evbuffer *in = stream_input(p->st);
		size_t n;

		pump_once(p);
		n = evbuffer_get_length(in);
		assert_true(n <= high);
		if (n == 0)
			continue;
		if (n == high && SSL_has_pending(stream_ssl(p->st)))
			*pending = true;
		assert_true(have + n <= want);
		assert_int_equal(evbuffer_remove(in, out + have, n), (int)n);
		have += n;
	}
	return have;
}

/* Reading paused at the high watermark with records already read into the SSL (read
 * ahead): draining the input resumes reading without the socket becoming readable; the
 * close_notify behind the data comes as EOF only after the last byte. */
static void test_tls_pending_at_high_watermark(void **state)
{
	enum { TOTAL = 64 * 1024, HIGH = 4096 };
	static char data[TOTAL], got[TOTAL];
	struct probe p;
	struct peer pe;
	int fds[2];
	bool pending = false;

	(void)state;
	tls_pair(&p, &pe, fds);
	fill(data, sizeof(data), 3);
	stream_setwatermark(p.st, EV_READ, 0, HIGH);
	stream_enable(p.st, EV_READ | EV_WRITE);
	for (size_t off = 0; off < TOTAL; off += 4096)
		peer_write(&p, &pe, data + off, 4096);
	assert_int_equal(SSL_shutdown(pe.ssl), 0); /* close_notify sent */
	assert_int_equal(drain_input(&p, got, TOTAL, HIGH, &pending), TOTAL);
	assert_memory_equal(got, data, TOTAL);
	assert_true(pending);
	for (int i = 0; i < PUMP_ROUNDS && p.events == 0; i++)
		pump_once(&p);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_EOF);
	assert_int_equal(evbuffer_get_length(stream_input(p.st)), 0);
	tls_done(&p, &pe);
}

/* A peer that closes the socket without close_notify: the data, then EOF (as a TCP close
 * would be; HTTP framing catches a truncated message), not an error. */
static void test_tls_bare_close(void **state)
{
	struct probe p;
	struct peer pe;
	int fds[2];

	(void)state;
	tls_pair(&p, &pe, fds);
	stream_enable(p.st, EV_READ);
	peer_write(&p, &pe, "abc", 3);
	shutdown(pe.fd, SHUT_RDWR);
	for (int i = 0; i < PUMP_ROUNDS && p.events == 0; i++)
		pump_once(&p);
	assert_int_equal(p.seen, 3);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_EOF);
	tls_done(&p, &pe);
}

/* close_notify read together with the last bytes while the read callback disables
 * reading: no event then; when reading is enabled again, the EOF inside the SSL is
 * reported although the socket has nothing more to say. */
static void test_tls_close_notify_while_disabled(void **state)
{
	struct probe p;
	struct peer pe;
	int fds[2];

	(void)state;
	tls_pair(&p, &pe, fds);
	p.disable_on_read = true;
	stream_enable(p.st, EV_READ);
	peer_write(&p, &pe, "last", 4);
	assert_int_equal(SSL_shutdown(pe.ssl), 0);
	for (int i = 0; i < PUMP_ROUNDS && p.reads == 0; i++)
		pump_once(&p);
	for (int i = 0; i < 50; i++)
		pump_once(&p);
	assert_int_equal(p.reads, 1);
	assert_int_equal(p.seen, 4);
	assert_int_equal(p.events, 0);
	p.disable_on_read = false;
	stream_enable(p.st, EV_READ);
	for (int i = 0; i < PUMP_ROUNDS && p.events == 0; i++)
		pump_once(&p);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_EOF);
	assert_int_equal(p.reads, 1);
	tls_done(&p, &pe);
}

/* A client that does not speak TLS: the handshake fails with an error event. */
static void test_tls_not_tls(void **state)
{
	struct probe p;
	int fds[2];
	SSL *ssl;
	static const char junk[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

	(void)state;
	make_pair(fds);
	memset(&p, 0, sizeof(p));
	p.base = event_base_new();
	p.loop = stream_loop_new(p.base);
	ssl = SSL_new(server_ctx);
	assert_non_null(ssl);
	p.st = stream_tls_new(p.loop, fds[0], ssl, true);
	assert_non_null(p.st);
	stream_setcb(p.st, probe_read, probe_write, probe_event, &p);
	stream_enable(p.st, EV_READ | EV_WRITE);
	assert_int_equal(write(fds[1], junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	for (int i = 0; i < PUMP_ROUNDS && p.events == 0; i++)
		pump_once(&p);
	assert_int_equal(p.events, 1);
	assert_true(p.last_event & BEV_EVENT_ERROR);
	assert_int_equal(p.reads, 0);
	ERR_clear_error();
	probe_done(&p);
	close(fds[1]);
}

/* ---- pipes: a stream whose other end is code in the loop (h2down.c) ---- */

struct pipe_end {
	struct stream_pipe ops;
	struct evbuffer *took; /* what output() took */
	size_t cap;            /* output() takes at most this much in all */
	size_t drained;        /* sum of drained() */
	int closed;
	size_t left_at_close;
};

static struct pipe_end *end_of(struct stream_pipe *p)
{
	return (struct pipe_end *)((char *)p - offsetof(struct pipe_end, ops));
}

static void end_output(struct stream_pipe *p, struct evbuffer *out)
{
	struct pipe_end *e = end_of(p);
	size_t have = evbuffer_get_length(e->took), room = e->cap > have ? e->cap - have : 0;

	evbuffer_remove_buffer(out, e->took, room);
}

static void end_drained(struct stream_pipe *p, size_t n)
{
	end_of(p)->drained += n;
}

static void end_closed(struct stream_pipe *p, struct evbuffer *out)
{
	struct pipe_end *e = end_of(p);

	e->closed++;
	e->left_at_close = evbuffer_get_length(out);
}

static struct stream *pipe_probe(struct probe *p, struct pipe_end *e, size_t cap)
{
	memset(p, 0, sizeof(*p));
	memset(e, 0, sizeof(*e));
	e->ops = (struct stream_pipe){end_output, end_drained, end_closed};
	e->took = evbuffer_new();
	e->cap = cap;
	p->base = event_base_new();
	p->loop = stream_loop_new(p->base);
	p->st = stream_pipe_new(p->loop, &e->ops);
	assert_non_null(p->st);
	stream_setcb(p->st, probe_read, probe_write, probe_event, p);
	return p->st;
}

/* in: a read's 32 KiB chain holding a 10-byte head and a body of n bytes, head consumed;
 * returns where the body starts. */
static const char *read_chain(struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec v;

	assert_int_equal(evbuffer_reserve_space(in, 32 * 1024 - 64, &v, 1), 1);
	memset(v.iov_base, 'h', 10);
	memset((char *)v.iov_base + 10, 'b', n);
	v.iov_len = 10 + n;
	assert_int_equal(evbuffer_commit_space(in, &v, 1), 0);
	evbuffer_drain(in, 10);
	return (const char *)v.iov_base + 10;
}

static const char *front(struct evbuffer *b)
{
	struct evbuffer_iovec v;

	assert_true(evbuffer_peek(b, -1, NULL, &v, 1) >= 1);
	return v.iov_base;
}

/* stream_move: into a pipe, a small run is copied (the read chain stays behind, to be
 * freed) and a large one moves; into a socket everything moves. */
static void test_move(void **state)
{
	struct probe p, q;
	struct pipe_end e;
	struct evbuffer *in = evbuffer_new();
	const char *body;
	int fds[2];

	(void)state;
	pipe_probe(&p, &e, 1 << 20);
	body = read_chain(in, 64);
	stream_move(p.st, in, 64);
	assert_int_equal(evbuffer_get_length(in), 0);
	assert_int_equal(evbuffer_get_length(stream_output(p.st)), 64);
	assert_ptr_not_equal(front(stream_output(p.st)), body);
	assert_int_equal(front(stream_output(p.st))[63], 'b');
	evbuffer_drain(stream_output(p.st), 64);

	body = read_chain(in, 5000);
	stream_move(p.st, in, 5000);
	assert_int_equal(evbuffer_get_length(in), 0);
	assert_ptr_equal(front(stream_output(p.st)), body);
	evbuffer_drain(stream_output(p.st), 5000);
	stream_free(p.st);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	evbuffer_free(e.took);

	make_pair(fds);
	probe_stream(&q, fds[0]);
	body = read_chain(in, 64);
	stream_move(q.st, in, 64);
	assert_ptr_equal(front(stream_output(q.st)), body);
	probe_done(&q);
	close(fds[1]);
	evbuffer_free(in);
}

/* Input the owner adds reaches the read callback when the round ends (and only while
 * reading is enabled); what the user consumes is reported; output goes to the owner at the
 * end of the round, and the write callback follows. */
static void test_pipe_echo(void **state)
{
	struct probe p;
	struct pipe_end e;
	char buf[16];

	(void)state;
	pipe_probe(&p, &e, 1 << 20);
	p.echo = true;
	evbuffer_add(stream_input(p.st), "hello", 5);
	stream_pipe_readable(p.st);
	run_for(p.base, 20);
	assert_int_equal(p.reads, 0); /* not enabled yet */
	stream_enable(p.st, EV_READ | EV_WRITE);
	run_for(p.base, 20);
	assert_int_equal(p.reads, 1);
	assert_int_equal(e.drained, 5);
	assert_int_equal(evbuffer_get_length(e.took), 5);
	evbuffer_remove(e.took, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_true(p.writes >= 1);
	/* no new input: no read callback */
	run_for(p.base, 20);
	assert_int_equal(p.reads, 1);
	stream_free(p.st);
	assert_int_equal(e.closed, 1);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	evbuffer_free(e.took);
}

/* The owner takes less than the output holds: the rest waits, the write callback does not
 * run until stream_pipe_writable() lets the owner take it; bytes left at the free are
 * offered to closed(). */
static void test_pipe_backpressure(void **state)
{
	struct probe p;
	struct pipe_end e;

	(void)state;
	pipe_probe(&p, &e, 3);
	stream_enable(p.st, EV_READ | EV_WRITE);
	evbuffer_add(stream_output(p.st), "abcdefgh", 8);
	run_for(p.base, 20);
	assert_int_equal(evbuffer_get_length(e.took), 3);
	assert_int_equal(p.writes, 0);
	assert_int_equal(stream_output_len(p.st), 5);
	e.cap = 6;
	stream_pipe_writable(p.st);
	run_for(p.base, 20);
	assert_int_equal(evbuffer_get_length(e.took), 6);
	assert_int_equal(p.writes, 0);
	e.cap = 100;
	stream_pipe_writable(p.st);
	run_for(p.base, 20);
	assert_int_equal(evbuffer_get_length(e.took), 8);
	assert_int_equal(p.writes, 1);
	evbuffer_add(stream_output(p.st), "xyz", 3);
	e.cap = 8; /* full again: the close finds them */
	run_for(p.base, 20);
	stream_free(p.st);
	assert_int_equal(e.closed, 1);
	assert_int_equal(e.left_at_close, 3);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	evbuffer_free(e.took);
}

/* A reset from the other end is an error event; the read timeout of a pipe is a timer
 * that input restarts. */
static void test_pipe_fail_and_timeout(void **state)
{
	struct probe p;
	struct pipe_end e;
	struct timeval tv = {0, 50000};

	(void)state;
	pipe_probe(&p, &e, 100);
	stream_enable(p.st, EV_READ | EV_WRITE);
	stream_pipe_fail(p.st);
	run_for(p.base, 20);
	assert_int_equal(p.events, 1);
	assert_true(p.last_event & BEV_EVENT_ERROR);
	stream_free(p.st);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	evbuffer_free(e.took);

	pipe_probe(&p, &e, 100);
	p.stop_on_event = true;
	stream_set_read_timeout(p.st, &tv);
	stream_enable(p.st, EV_READ | EV_WRITE);
	run_for(p.base, 30);
	evbuffer_add(stream_input(p.st), "x", 1);
	stream_pipe_readable(p.st); /* restarts the 50 ms */
	run_for(p.base, 30);
	assert_int_equal(p.events, 0);
	assert_int_equal(p.reads, 1);
	run_for(p.base, 2000);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.last_event, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
	stream_free(p.st);
	stream_loop_free(p.loop);
	event_base_free(p.base);
	evbuffer_free(e.took);
}

int main(void)
{
	const struct CMUnitTest tls_tests[] = {
	    cmocka_unit_test(test_tls_echo),
	    cmocka_unit_test(test_tls_want_write_retry),
	    cmocka_unit_test(test_tls_pending_at_high_watermark),
	    cmocka_unit_test(test_tls_bare_close),
	    cmocka_unit_test(test_tls_close_notify_while_disabled),
	    cmocka_unit_test(test_tls_not_tls),
	};
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo),
	    cmocka_unit_test(test_pipe_echo),
	    cmocka_unit_test(test_move),
	    cmocka_unit_test(test_pipe_backpressure),
	    cmocka_unit_test(test_pipe_fail_and_timeout),
	    cmocka_unit_test(test_buffers_between_exchanges),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_read_high_watermark),
	    cmocka_unit_test(test_eof_after_data),
	    cmocka_unit_test(test_read_timeout),
	    cmocka_unit_test(test_free_in_callback),
	    cmocka_unit_test(test_connect),
	    cmocka_unit_test(test_connect_refused),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	return failed + cmocka_run_group_tests_name("tls", tls_tests, tls_setup, tls_teardown);
}

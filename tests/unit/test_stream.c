/* stream.c over real sockets (socketpairs and a loopback listener) and a real event loop:
 * reads, the end-of-round write, watermarks, EOF, read timeouts, connect outcomes, and a
 * stream freed inside its own callback. */
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

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
	size_t stop_at; /* break the loop once this much was read (0: never) */
};

static void probe_read(struct stream *st, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = stream_input(st);

	p->reads++;
	p->seen = evbuffer_get_length(in);
	if (p->echo)
		evbuffer_add_buffer(stream_output(st), in);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo),
	    cmocka_unit_test(test_buffers_between_exchanges),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_read_high_watermark),
	    cmocka_unit_test(test_eof_after_data),
	    cmocka_unit_test(test_read_timeout),
	    cmocka_unit_test(test_free_in_callback),
	    cmocka_unit_test(test_connect),
	    cmocka_unit_test(test_connect_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

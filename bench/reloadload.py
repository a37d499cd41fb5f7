#!/usr/bin/env python3
"""bench/reloadload.py: paced HTTP/1.1 keep-alive load that counts every failed request.

CONNS keep-alive connections send GET PATH at RATE requests per second in all (each
connection on its own fixed schedule, staggered), one request at a time, for DURATION
seconds.  A request fails when it was written and no whole response came back: the
connection closed or was reset first, or nothing came within 5 s.  A connection found
closed while no request was on it is only reopened, as any client would; that is
counted apart ("closed_idle").  A refused or failed connect fails the request that
was due.  Other tools hide exactly these: h2load stops a client whose connection the
server closed, and wrk always has a request in flight.

Prints one JSON object: sent, ok, failed, non2xx, closed_idle, connect_errors,
seconds, rps, p50_ms, p99_ms, and failures (each reason with its count).  Used by
bench/bench.py for the reload-under-load section; python3 standard library only.
"""

import argparse
import errno
import json
import selectors
import socket
import sys
import time

RECV = 65536
REPLY_TIMEOUT = 5.0
IDLE, CONNECTING, WAITING = range(3)


class Conn:
    def __init__(self, load, due):
        self.load = load
        self.due = due  # when its next request should be written
        self.sock = None
        self.state = IDLE
        self.sent_at = 0.0
        self.buf = b""

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex(self.load.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(rc, "connect")
        self.sock = s
        self.state = CONNECTING
        self.load.sel.register(s, selectors.EVENT_WRITE, self)

    def close(self):
        if self.sock is not None:
            self.load.sel.unregister(self.sock)
            self.sock.close()
            self.sock = None
        self.state = IDLE
        self.buf = b""

    def send(self, now):
        """Write the request that is due (opening the connection first when needed)."""
        if self.sock is None:
            try:
                self.open()
            except OSError as e:
                self.load.fail("connect: %s" % e, connect=True)
                self.due += self.load.interval
            return
        try:
            n = self.sock.send(self.load.request)
        except OSError as e:
            n = -1
            why = "send: %s" % e
        if n != len(self.load.request):
            # An empty socket takes a 60-byte request whole; anything else is a dead peer.
            self.load.fail(why if n < 0 else "short write")
            self.close()
            self.due += self.load.interval
            return
        self.load.sent += 1
        self.sent_at = now
        self.state = WAITING
        self.load.sel.modify(self.sock, selectors.EVENT_READ, self)
        self.due += self.load.interval

    def on_event(self, now):
        if self.state == CONNECTING:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.close()
                self.load.fail("connect: %s" % errno.errorcode.get(err, err), connect=True)
                return
            self.state = IDLE
            self.load.sel.modify(self.sock, selectors.EVENT_READ, self)
            return
        try:
            data = self.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError as e:
            data = None
            why = "recv: %s" % e
        if self.state == IDLE:
            # The server closed (or wrote to) a connection with no request on it.
            self.load.closed_idle += 1
            self.close()
            return
        if not data:
            self.load.fail(why if data is None else "closed before the response")
            self.close()
            return
        self.buf += data
        self.parse(now)

    def parse(self, now):
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].decode("latin-1").lower()
        length = 0
        close = False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and "close" in value:
                close = True
        if len(self.buf) < head_end + 4 + length:
            return
        status = head[9:12]
        self.load.done(now - self.sent_at, status.startswith("2"))
        self.buf = self.buf[head_end + 4 + length:]
        self.state = IDLE
        if close or self.buf:
            self.close()


class Load:
    def __init__(self, args):
        self.addr = (args.host, args.port)
        self.request = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (args.path, args.host_header)
                        ).encode()
        self.interval = args.conns / float(args.rate)
        self.sel = selectors.DefaultSelector()
        self.sent = self.ok = self.failed = self.non2xx = 0
        self.closed_idle = self.connect_errors = 0
        self.reasons = {}  # why a request failed -> how many times
        self.lat = []

    def fail(self, why, connect=False):
        self.failed += 1
        if connect:
            self.connect_errors += 1
        self.reasons[why] = self.reasons.get(why, 0) + 1

    def done(self, seconds, ok):
        self.lat.append(seconds)
        if ok:
            self.ok += 1
        else:
            self.non2xx += 1

    def run(self, conns, duration):
        start = time.monotonic()
        end = start + duration
        cs = [Conn(self, start + i * self.interval / conns) for i in range(conns)]
        for c in cs:
            try:
                c.open()
            except OSError as e:
                self.fail("connect: %s" % e, connect=True)
        grace_end = end + REPLY_TIMEOUT
        while True:
            now = time.monotonic()
            waiting = [c for c in cs if c.state == WAITING]
            if now >= end and not waiting or now >= grace_end:
                break
            for c in waiting:
                if now - c.sent_at > REPLY_TIMEOUT:
                    self.fail("no response in %.0f s" % REPLY_TIMEOUT)
                    c.close()
            next_due = min((c.due for c in cs if c.state == IDLE), default=now + 0.01)
            timeout = max(0.0, min(next_due, end) - now) if now < end else 0.05
            for key, _ in self.sel.select(timeout):
                key.data.on_event(time.monotonic())
            now = time.monotonic()
            if now < end:
                for c in cs:
                    if c.state == IDLE and c.due <= now:
                        c.send(now)
        for c in cs:
            if c.state == WAITING:
                self.fail("no response by the end")
            c.close()
        return time.monotonic() - start


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--host-header", default="bench.local")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--duration", type=float, default=12.0)
    args = ap.parse_args()
    load = Load(args)
    seconds = load.run(args.conns, args.duration)
    p50, p99 = percentile(load.lat, 50), percentile(load.lat, 99)
    print(json.dumps({
        "sent": load.sent, "ok": load.ok, "failed": load.failed, "non2xx": load.non2xx,
        "closed_idle": load.closed_idle, "connect_errors": load.connect_errors,
        "seconds": round(seconds, 3), "rps": round(load.ok / seconds, 1) if seconds else 0,
        "p50_ms": round(p50 * 1000, 3) if p50 is not None else None,
        "p99_ms": round(p99 * 1000, 3) if p99 is not None else None,
        "failures": load.reasons}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/hsload.py: a load generator of full TLS handshakes that never resumes a session.

Each request is a new TCP connection, a new TLS session (no session is ever offered,
whatever the server issues: wrk keeps its last session across reconnects and resumes it
when the server allows), one GET with "Connection: close", and the response read up to
its Content-Length.  CONNS such exchanges run at once on one thread (non-blocking
sockets, one selector).  After DURATION seconds it prints one JSON object:
requests, non2xx, errors, resumed, seconds, rps, p50_ms, p99_ms.

Used by bench/bench.py; python3 standard library only.
"""

import argparse
import errno
import json
import selectors
import socket
import ssl
import sys
import time

RECV = 65536


class Exchange:
    """One connection: connect, handshake, send the request, read the response."""

    def __init__(self, load):
        self.load = load
        self.t0 = time.monotonic()
        self.buf = b""
        self.need = None  # bytes of the response still expected once the head is read
        self.sent = False
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.raw.setblocking(False)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = None
        rc = self.raw.connect_ex(load.addr)
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, "connect")
        load.sel.register(self.raw, selectors.EVENT_WRITE, self)

    def sock(self):
        return self.tls if self.tls is not None else self.raw

    def want(self, events):
        self.load.sel.modify(self.sock(), events, self)

    def step(self):
        """Advance as far as the socket allows; True when the exchange is over."""
        if self.tls is None:
            err = self.raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect")
            self.load.sel.unregister(self.raw)
            self.tls = self.load.ctx.wrap_socket(self.raw, server_hostname=self.load.sni,
                                                 do_handshake_on_connect=False)
            self.load.sel.register(self.tls, selectors.EVENT_WRITE, self)
        try:
            if not self.sent:
                self.tls.do_handshake()
                self.tls.send(self.load.request)
                self.sent = True
            while True:
                chunk = self.tls.recv(RECV)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "closed before the end of the response")
                self.buf += chunk
                if self.response_done():
                    return True
        except ssl.SSLWantReadError:
            self.want(selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self.want(selectors.EVENT_WRITE)
        return False

    def response_done(self):
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = head[0].split(" ")[1] if " " in head[0] else "?"
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            self.need = end + 4 + length
        return len(self.buf) >= self.need

    def close(self):
        s = self.sock()
        try:
            self.load.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()


class Load:
    def __init__(self, args):
        self.addr = (args.host, args.port)
        self.sni = args.sni
        self.request = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
                        (args.path, args.sni)).encode()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sel = selectors.DefaultSelector()
        self.lat = []
        self.non2xx = self.errors = self.resumed = 0

    def finish(self, ex, ok):
        if ok:
            self.lat.append(time.monotonic() - ex.t0)
            if not ex.status.startswith("2"):
                self.non2xx += 1
            if ex.tls.session_reused:
                self.resumed += 1
        else:
            self.errors += 1
        ex.close()

    def run(self, conns, duration):
        start = time.monotonic()
        end = start + duration
        live = set()
        while True:
            now = time.monotonic()
            while now < end and len(live) < conns:
                try:
                    live.add(Exchange(self))
                except OSError:
                    self.errors += 1
                    time.sleep(0.01)
                    break
            if not live:
                break
            for key, _ in self.sel.select(timeout=0.5):
                ex = key.data
                try:
                    done = ex.step()
                except (OSError, ssl.SSLError, ValueError, IndexError):
                    live.discard(ex)
                    self.finish(ex, False)
                    continue
                if done:
                    live.discard(ex)
                    self.finish(ex, True)
            if time.monotonic() > end + 10:  # exchanges stuck past the end count as errors
                for ex in live:
                    self.finish(ex, False)
                break
        return time.monotonic() - start


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default="bench.local")
    ap.add_argument("--path", default="/")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()
    load = Load(args)
    secs = load.run(args.conns, args.duration)
    lat = sorted(load.lat)
    out = {
        "requests": len(lat), "non2xx": load.non2xx, "errors": load.errors,
        "resumed": load.resumed, "seconds": round(secs, 3),
        "rps": round(len(lat) / secs, 1) if secs > 0 else 0,
        "p50_ms": round(percentile(lat, 50) * 1e3, 3) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1e3, 3) if lat else None,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

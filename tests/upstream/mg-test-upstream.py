#!/usr/bin/env python3
"""mg-test-upstream: a scriptable HTTP/1.1 origin server for meshgate's tests.

Standard library only.  One thread per connection over raw sockets, so the
framing on the wire is exactly what this file writes: keep-alive, pipelined
requests answered in order, request bodies framed by Content-Length or chunked,
response bodies streamed in bounded pieces (a 1 GB body never sits in memory).

Usage:
  mg-test-upstream.py [--listen HOST:PORT] [--name NAME] [--stats-file PATH]
                      [--idle-timeout SEC] [--keepalive-max N] [--quiet]
                      [--fail-status CODE]
                      [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]
                       [--tls-alpn P1,P2]]
  mg-test-upstream.py --print-sha256 N [SEED]   sha256 of what /bytes/N?seed=SEED sends
  mg-test-upstream.py --write-bytes N [SEED]    write those bytes to stdout

Once listening, stdout line 1 is "LISTENING <port>" (flushed), also for a fixed
port, so a harness can always wait for it.

Every response carries:
  x-upstream: NAME          the --name of this process
  x-upstream-conn: N        ordinal of the TCP connection since start (1, 2, ...)
  x-upstream-req: M         ordinal of the request on that connection (1, 2, ...)
  x-upstream-total: T       ordinal of the request since start (1, 2, ...)

Endpoints (the first path segment selects; a query string is always allowed):
  /echo...          200, JSON {name, method, path, version, headers, trailers,
                    body_len, body_sha256, conn, req}; "headers" maps the
                    lower-cased name to its value, or to a list when repeated.
                    Any path not listed below is answered the same way.
  /status/CODE      that status (200..999) with a short text body (none for 204/304)
  /delay/MS         wait MS milliseconds, then answer like /echo
  /bytes/N          N pseudo-random bytes (suffix K/M/G = KiB/MiB/GiB allowed).
                    ?seed=S (default 0) selects the stream, ?chunked=1 frames it
                    chunked (?chunk=SIZE sets the chunk size, default 16384),
                    ?eof=1 frames it by closing the connection (no length),
                    ?trailers=1 (with chunked) adds an x-body-sha256 trailer,
                    ?abort=K sends the head and K body bytes, then resets.
  /sha256           JSON {name, sha256, length, conn, req} of the request body
  /flaky/N/REST     the first N requests for a key (?key=K, else REST) are
                    answered as /REST (e.g. /flaky/2/status/503), later ones as
                    /echo: for retries
  /close            answers like /echo with "Connection: close", then closes
  /reset            reads the request head, then resets the connection (RST)
                    without answering
  /headers-out?a=1&b=2   answers like /echo, adding each query pair as a
                    response header (content-type, content-length,
                    transfer-encoding and connection given here replace the
                    upstream's own); /headers-out/keep-case keeps the names' case
  /trailers-out?a=1&b=2  answers like /echo, chunked (two chunks), with each
                    query pair as a trailer field, name as given (framing and
                    hop-by-hop names too) and a Trailer header naming them;
                    /trailers-out/slow sends the last chunk and the trailer
                    section 3 bytes at a time, 10 ms apart
  /garbage          writes an invalid response and closes; ?kind= selects:
                    status (default), header, cl (conflicting Content-Length),
                    chunk (bad chunk size), short (body shorter than its
                    Content-Length), binary (no HTTP at all)
  /slowbody/MS      sends the head, waits MS ms, then sends the body (JSON like /echo)

The /bytes stream for seed S is the concatenation of blocks B0, B1, ... where
Bk = SHAKE128("mgtu:" S ":" k) truncated to 65536 bytes (ASCII, k in
decimal); /bytes/N sends its first N bytes.

--stats-file PATH appends "name conn req method target" per request (one
O_APPEND write each, so several upstreams may share one file).

TLS: with --tls-cert and --tls-key every connection is TLS (1.2 or 1.3, python's
ssl defaults); --tls-client-ca requires a client certificate signed by that CA;
--tls-alpn offers those ALPN protocols (none by default). Over TLS the JSON of
/echo (and of the endpoints answering like it) also has "sni" (the server name
the client sent; absent without SNI), "tls_version", "tls_resumed" (true when
the client resumed a session), "alpn" (the protocol chosen; absent when none),
and with a client
certificate "peer_subject" ("CN=client,O=..." from the certificate's RDNs, last
first) and "peer_san" (["URI:...", "DNS:..."]). A failed handshake is logged on
stderr ("tls handshake failed: ...") and counted as a connection.

--record-file PATH appends one JSON line per request once its body is read:
{name, method, target, host, request_id, body_len, body_sha256} (one O_APPEND
write each), so a test can see requests whose responses nobody reads (mirrors).
--delay-all MS waits MS milliseconds after reading each request's body, before
answering (a slow upstream for every path).

A request that is not valid HTTP/1.1 gets a 400 with the reason in the body and
the connection is closed; this server is deliberately strict so that a gateway
sending bad framing is noticed.
"""

import argparse
import hashlib
import http
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from urllib.parse import parse_qsl, urlsplit

BLOCK = 65536  # size of one pseudo-random block of the /bytes stream
RECV = 262144  # largest single recv()
MAX_HEAD = 1 << 20  # request head limit
MAX_LINE = 8192  # chunk-size / trailer line limit

TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                  b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


# ---------------------------------------------------------------------------
# deterministic byte stream


def parse_size(text):
    """'123', '64K', '50M', '1G' -> int (binary multiples)."""
    mult = 1
    if text and text[-1] in "kKmMgG":
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[text[-1].lower()]
        text = text[:-1]
    if not text.isdigit():
        raise ValueError("bad size")
    return int(text) * mult


def stream_block(seed, k):
    return hashlib.shake_128(("mgtu:%s:%d" % (seed, k)).encode()).digest(BLOCK)


def stream_pieces(n, seed):
    """Yield the first n bytes of the stream for seed, one block at a time."""
    k = 0
    while n > 0:
        b = stream_block(seed, k)
        if n < BLOCK:
            b = b[:n]
        n -= len(b)
        k += 1
        yield b


def stream_sha256(n, seed):
    h = hashlib.sha256()
    for b in stream_pieces(n, seed):
        h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# shared state


class State:
    def __init__(self, args):
        self.name = args.name
        self.quiet = args.quiet
        self.idle_timeout = args.idle_timeout
        self.keepalive_max = args.keepalive_max
        self.lock = threading.Lock()
        self.conns = 0
        self.total = 0
        self.stats_fd = None
        self.flaky = {}
        self.fail_status = args.fail_status
        self.tls = tls_context(args)
        if args.stats_file:
            self.stats_fd = os.open(args.stats_file,
                                    os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.record_fd = None
        if args.record_file:
            self.record_fd = os.open(args.record_file,
                                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.delay_all = args.delay_all

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns

    def next_total(self):
        with self.lock:
            self.total += 1
            return self.total

    def stat(self, conn, req, method, target):
        if self.stats_fd is not None:
            line = "%s %d %d %s %s\n" % (self.name, conn, req, method, target)
            os.write(self.stats_fd, line.encode("latin-1", "replace"))

    def record(self, req):
        if self.record_fd is not None:
            fields = header_map(req.fields)
            doc = {"name": self.name, "method": req.method, "target": req.target,
                   "host": fields.get("host"), "request_id": fields.get("x-request-id"),
                   "body_len": req.body_len, "body_sha256": req.body_sha256}
            os.write(self.record_fd, (json.dumps(doc, sort_keys=True) + "\n").encode())

    def log(self, msg):
        if not self.quiet:
            with self.lock:
                sys.stderr.write("%s %s\n" % (self.name, msg))
                sys.stderr.flush()


class BadRequest(Exception):
    def __init__(self, why, status=400):
        super().__init__(why)
        self.why = why
        self.status = status


class PeerClosed(Exception):
    pass


# ---------------------------------------------------------------------------
# connection input


class Reader:
    """Buffered input over a socket; bodies are streamed, never accumulated."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _recv(self):
        data = self.sock.recv(RECV)
        if not data:
            raise PeerClosed()
        return data

    def read_head(self):
        """Return the request head without its final CRLF CRLF, or None on a
        clean close between requests."""
        # RFC 9112 2.2: ignore empty lines received before the request line.
        while True:
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            if self.buf and self.buf != b"\r":
                break
            try:
                data = self.sock.recv(RECV)
            except (ConnectionResetError, socket.timeout):
                return None
            if not data:
                if self.buf:
                    raise BadRequest("connection closed inside the request head")
                return None
            self.buf += data
        scanned = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", max(0, scanned - 3))
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("request head larger than %d bytes" % MAX_HEAD, 431)
            scanned = len(self.buf)
            try:
                self.buf += self._recv()
            except PeerClosed:
                raise BadRequest("connection closed inside the request head") from None

    def read_line(self):
        scanned = 0
        while True:
            i = self.buf.find(b"\r\n", max(0, scanned - 1))
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_LINE:
                raise BadRequest("line longer than %d bytes in the body framing" % MAX_LINE)
            scanned = len(self.buf)
            self.buf += self._recv()

    def read_exact_into(self, n, sink):
        """Pass the next n bytes to sink(bytes) in pieces."""
        if self.buf:
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take
        while n > 0:
            data = self.sock.recv(min(n, RECV))
            if not data:
                raise PeerClosed()
            sink(data)
            n -= len(data)

    def expect_crlf(self, what):
        while len(self.buf) < 2:
            self.buf += self._recv()
        if self.buf[:2] != b"\r\n":
            raise BadRequest("missing CRLF after " + what)
        del self.buf[:2]

    def read_chunked_into(self, sink):
        """Decode a chunked body into sink; return the trailer fields."""
        while True:
            line = self.read_line()
            size_text = line.split(b";", 1)[0].rstrip(b" \t")
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise BadRequest("bad chunk size line %r" % line[:64])
            if len(size_text) > 15:
                raise BadRequest("chunk size too large")
            size = int(size_text, 16)
            if size == 0:
                break
            self.read_exact_into(size, sink)
            self.expect_crlf("chunk data")
        trailers = []
        while True:
            line = self.read_line()
            if line == b"":
                return trailers
            trailers.append(parse_field(line))


def parse_field(line):
    if line[:1] in (b" ", b"\t"):
        raise BadRequest("obsolete line folding")
    name, sep, value = line.partition(b":")
    if not sep or not name or any(c not in TOKEN for c in name):
        raise BadRequest("bad header field %r" % line[:64])
    value = value.strip(b" \t")
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise BadRequest("bad character in the value of %r" % name)
    return name.decode("latin-1").lower(), value.decode("latin-1")


class Request:
    pass


def parse_head(head):
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest("bad request line %r" % lines[0][:80])
    method, target, version = parts
    if not method or any(c not in TOKEN for c in method):
        raise BadRequest("bad method")
    if not target or any(c <= 0x20 or c >= 0x7f for c in target):
        raise BadRequest("bad request target")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest("unsupported version %r" % version[:16], 505)
    for line in lines[1:]:
        if b"\n" in line or b"\r" in line:
            raise BadRequest("bare CR or LF in the head")
    req = Request()
    req.method = method.decode()
    req.target = target.decode("latin-1")
    req.version = version.decode()
    req.fields = [parse_field(line) for line in lines[1:]]
    return req


def header_map(fields):
    out = {}
    for name, value in fields:
        if name in out:
            if isinstance(out[name], list):
                out[name].append(value)
            else:
                out[name] = [out[name], value]
        else:
            out[name] = value
    return out


def connection_tokens(req):
    toks = set()
    for name, value in req.fields:
        if name == "connection":
            toks.update(t.strip().lower() for t in value.split(","))
    return toks


# ---------------------------------------------------------------------------
# one connection


# The SNI of the handshake in progress on this thread (set by the sni_callback).
TLS_LOCAL = threading.local()

RDN_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}


def tls_context(args):
    """A server SSLContext from the --tls-* options, or None."""
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        ctx.load_verify_locations(args.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if args.tls_alpn:
        ctx.set_alpn_protocols(args.tls_alpn.split(","))

    def on_sni(sslobj, name, context):
        TLS_LOCAL.sni = name

    ctx.sni_callback = on_sni
    return ctx


def tls_info(sock):
    """What /echo reports about a TLS connection."""
    info = {"tls_version": sock.version(), "tls_resumed": sock.session_reused}
    sni = getattr(TLS_LOCAL, "sni", None)
    if sni is not None:
        info["sni"] = sni
    if sock.selected_alpn_protocol() is not None:
        info["alpn"] = sock.selected_alpn_protocol()
    cert = sock.getpeercert()
    if cert:
        rdns = []
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                rdns.append("%s=%s" % (RDN_SHORT.get(key, key), value))
        info["peer_subject"] = ",".join(reversed(rdns))
        info["peer_san"] = ["%s:%s" % kv for kv in cert.get("subjectAltName", ())]
    return info


class Conn:
    def __init__(self, state, sock, peer):
        self.st = state
        self.sock = sock
        self.peer = peer
        self.id = state.next_conn()
        self.nreq = 0
        self.rd = Reader(sock)
        self.tls = None

    # -- output ----------------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def head_bytes(self, req, status, fields, close):
        reason = ""
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        out = ["HTTP/1.1 %d %s\r\n" % (status, reason)]
        out.append("x-upstream: %s\r\n" % self.st.name)
        out.append("x-upstream-conn: %d\r\n" % self.id)
        out.append("x-upstream-req: %d\r\n" % self.nreq)
        out.append("x-upstream-total: %d\r\n" % req.total)
        for name, value in fields:
            out.append("%s: %s\r\n" % (name, value))
        if close:
            out.append("connection: close\r\n")
        elif req.version == "HTTP/1.0":
            out.append("connection: keep-alive\r\n")
        out.append("\r\n")
        return "".join(out).encode("latin-1")

    def reply(self, req, status, body=b"", ctype="text/plain", extra=(), close=False):
        fields = []
        replace = {}
        for name, value in extra:
            if name in ("content-type", "content-length", "transfer-encoding", "connection"):
                replace.setdefault(name, []).append(value)
            else:
                fields.append((name, value))
        no_body = status in (204, 304) or 100 <= status < 200
        if "content-type" in replace:
            fields += [("content-type", v) for v in replace["content-type"]]
        elif not no_body:
            fields.append(("content-type", ctype))
        if "content-length" in replace or "transfer-encoding" in replace:
            fields += [("content-length", v) for v in replace.get("content-length", [])]
            fields += [("transfer-encoding", v) for v in replace.get("transfer-encoding", [])]
        elif not no_body:
            fields.append(("content-length", str(len(body))))
        if "connection" in replace:
            fields += [("connection", v) for v in replace["connection"]]
        self.send(self.head_bytes(req, status, fields, close))
        if body and not no_body and req.method != "HEAD":
            self.send(body)
        self.st.log("conn=%d req=%d %s %s -> %d" % (self.id, self.nreq, req.method, req.target, status))

    def reset(self):
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self.sock.close()

    # -- input -------------------------------------------------------------------

    def read_body(self, req):
        """Consume the request body; set body_len, body_sha256, trailers."""
        h = hashlib.sha256()
        count = [0]

        def sink(data):
            h.update(data)
            count[0] += len(data)

        te = [v for n, v in req.fields if n == "transfer-encoding"]
        cl = [v for n, v in req.fields if n == "content-length"]
        req.trailers = []
        if te and cl:
            raise BadRequest("both Transfer-Encoding and Content-Length")
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",")]
            if req.version == "HTTP/1.0":
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            if codings[-1] != "chunked" or codings.count("chunked") != 1:
                raise BadRequest("Transfer-Encoding does not end in chunked")
            self.maybe_continue(req)
            req.trailers = self.rd.read_chunked_into(sink)
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit() or len(cl[0]) > 18:
                raise BadRequest("bad Content-Length %r" % ",".join(cl))
            n = int(cl[0])
            if n:
                self.maybe_continue(req)
            try:
                self.rd.read_exact_into(n, sink)
            except PeerClosed:
                raise BadRequest("connection closed inside the request body") from None
        req.body_len = count[0]
        req.body_sha256 = h.hexdigest()

    def maybe_continue(self, req):
        for name, value in req.fields:
            if name == "expect" and value.lower() == "100-continue" and req.version == "HTTP/1.1":
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                return

    # -- endpoints -----------------------------------------------------------------

    def echo_doc(self, req):
        doc = {
            "name": self.st.name,
            "method": req.method,
            "path": req.target,
            "version": req.version,
            "headers": header_map(req.fields),
            "trailers": header_map(req.trailers),
            "body_len": req.body_len,
            "body_sha256": req.body_sha256,
            "conn": self.id,
            "req": self.nreq,
        }
        if self.tls is not None:
            doc.update(self.tls)
        return doc

    def start_tls(self):
        """Handshake (in this connection's thread); False when it failed."""
        TLS_LOCAL.sni = None
        try:
            self.sock = self.st.tls.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.st.log("conn=%d tls handshake failed: %s" % (self.id, e))
            return False
        self.rd = Reader(self.sock)
        self.tls = tls_info(self.sock)
        self.st.log("conn=%d tls %s sni=%s resumed=%s" % (
            self.id, self.tls["tls_version"], self.tls["sni"], self.tls["tls_resumed"]))
        return True

    def echo(self, req, status=200, extra=(), close=False):
        body = (json.dumps(self.echo_doc(req), indent=1, sort_keys=True) + "\n").encode()
        self.reply(req, status, body, "application/json", extra, close)

    def handle(self, req):
        """Answer one request. Return False when the connection must end."""
        url = urlsplit(req.target)
        path = url.path if req.target.startswith("/") else (url.path or "/")
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        segs = path.split("/")
        if len(segs) > 2 and segs[1] == "flaky":
            segs = self.flaky(segs, query)
        what = segs[1] if len(segs) > 1 else ""
        arg = segs[2] if len(segs) > 2 else ""
        close = bool({"close"} & connection_tokens(req)) or (
            req.version == "HTTP/1.0" and "keep-alive" not in connection_tokens(req))
        if self.st.keepalive_max and self.nreq >= self.st.keepalive_max:
            close = True

        if what == "reset":
            self.st.log("conn=%d req=%d %s %s -> reset" % (self.id, self.nreq, req.method, req.target))
            self.reset()
            return False

        self.read_body(req)
        self.st.record(req)
        if self.st.delay_all:
            time.sleep(self.st.delay_all / 1000.0)

        if self.st.fail_status:
            code = self.st.fail_status
            self.reply(req, code, b"failing with %d\n" % code, close=close)
            return not close
        if what == "status":
            try:
                code = int(arg)
            except ValueError:
                code = 0
            if not 200 <= code <= 999:
                raise BadRequest("/status/CODE needs 200 <= CODE <= 999")
            self.reply(req, code, b"status %d\n" % code, close=close)
        elif what == "delay":
            ms = self.int_arg(arg, "/delay/MS")
            time.sleep(ms / 1000.0)
            self.echo(req, close=close)
        elif what == "slowbody":
            ms = self.int_arg(arg, "/slowbody/MS")
            body = (json.dumps(self.echo_doc(req), indent=1, sort_keys=True) + "\n").encode()
            fields = [("content-type", "application/json"), ("content-length", str(len(body)))]
            self.send(self.head_bytes(req, 200, fields, close))
            time.sleep(ms / 1000.0)
            if req.method != "HEAD":
                self.send(body)
            self.st.log("conn=%d req=%d %s %s -> 200 (slow)" % (self.id, self.nreq, req.method, req.target))
        elif what == "bytes":
            return self.send_bytes(req, arg, query, close)
        elif what == "sha256":
            doc = {"name": self.st.name, "sha256": req.body_sha256, "length": req.body_len,
                   "conn": self.id, "req": self.nreq}
            self.reply(req, 200, (json.dumps(doc, sort_keys=True) + "\n").encode(),
                       "application/json", close=close)
        elif what == "close":
            self.echo(req, close=True)
            return False
        elif what == "headers-out":
            pairs = parse_qsl(url.query, keep_blank_values=True)
            for name, value in pairs:
                if not name or any(ord(c) not in TOKEN for c in name) or "\r" in value or "\n" in value:
                    raise BadRequest("bad header in the query: %r" % name)
            keep = arg == "keep-case"  # /headers-out/keep-case: names as given
            self.echo(req, extra=[(n if keep else n.lower(), v) for n, v in pairs], close=close)
        elif what == "trailers-out":
            pairs = parse_qsl(url.query, keep_blank_values=True)
            for name, value in pairs:
                if not name or any(ord(c) not in TOKEN for c in name) or "\r" in value or "\n" in value:
                    raise BadRequest("bad trailer in the query: %r" % name)
            self.send_trailers_out(req, pairs, arg == "slow", close)
        elif what == "garbage":
            self.send_garbage(req, query.get("kind", "status"))
            return False
        else:
            self.echo(req, close=close)
        return not close

    def flaky(self, segs, query):
        """/flaky/N/REST: the first N requests for a key are answered as /REST, later
        ones as /echo.  The key is ?key=K, else REST."""
        n = self.int_arg(segs[2], "/flaky/N/...")
        key = query.get("key", "/".join(segs[3:]))
        with self.st.lock:
            hits = self.st.flaky.get(key, 0)
            self.st.flaky[key] = hits + 1
        if hits < n:
            return [""] + segs[3:]
        return ["", "echo"]

    @staticmethod
    def int_arg(arg, what):
        if not arg.isdigit():
            raise BadRequest(what + " needs a number")
        return int(arg)

    def send_bytes(self, req, arg, query, close):
        try:
            n = parse_size(arg)
        except ValueError:
            raise BadRequest("/bytes/N needs a size") from None
        seed = query.get("seed", "0")
        chunked = query.get("chunked", "0") not in ("0", "")
        eof = query.get("eof", "0") not in ("0", "")
        trailers = query.get("trailers", "0") not in ("0", "") and chunked
        abort = int(query["abort"]) if query.get("abort", "").isdigit() else None
        chunk = int(query["chunk"]) if query.get("chunk", "").isdigit() and int(query["chunk"]) > 0 else 16384
        fields = [("content-type", "application/octet-stream")]
        if chunked:
            fields.append(("transfer-encoding", "chunked"))
            if trailers:
                fields.append(("trailer", "x-body-sha256"))
        elif eof:
            close = True
        else:
            fields.append(("content-length", str(n)))
        self.send(self.head_bytes(req, 200, fields, close))
        self.st.log("conn=%d req=%d %s %s -> 200 (%d bytes)" % (self.id, self.nreq, req.method, req.target, n))
        if req.method == "HEAD":
            return not close
        h = hashlib.sha256()
        sent = 0
        for piece in stream_pieces(n, seed):
            if abort is not None and sent + len(piece) >= abort:
                piece = piece[:abort - sent]
            if chunked:
                out = []
                for i in range(0, len(piece), chunk):
                    part = piece[i:i + chunk]
                    out.append(b"%x\r\n" % len(part))
                    out.append(part)
                    out.append(b"\r\n")
                data = b"".join(out)
            else:
                data = piece
            if data:
                self.send(data)
            h.update(piece)
            sent += len(piece)
            if abort is not None and sent >= abort:
                self.reset()
                return False
        if abort is not None:  # abort >= n: everything went out, reset anyway
            self.reset()
            return False
        if chunked:
            if trailers:
                self.send(b"0\r\nx-body-sha256: " + h.hexdigest().encode() + b"\r\n\r\n")
            else:
                self.send(b"0\r\n\r\n")
        return not close

    def send_trailers_out(self, req, pairs, slow, close):
        body = (json.dumps(self.echo_doc(req), indent=1, sort_keys=True) + "\n").encode()
        fields = [("content-type", "application/json"), ("transfer-encoding", "chunked")]
        if pairs:
            fields.append(("trailer", ", ".join(name for name, _ in pairs)))
        self.send(self.head_bytes(req, 200, fields, close))
        self.st.log("conn=%d req=%d %s %s -> 200 (trailers)" % (self.id, self.nreq, req.method, req.target))
        if req.method == "HEAD":
            return
        half = len(body) // 2
        self.send(b"%x\r\n%s\r\n%x\r\n%s\r\n" % (half, body[:half], len(body) - half, body[half:]))
        tail = b"0\r\n" + b"".join(b"%s: %s\r\n" % (n.encode("latin-1"), v.encode("latin-1"))
                                    for n, v in pairs) + b"\r\n"
        if not slow:
            self.send(tail)
            return
        for i in range(0, len(tail), 3):
            self.send(tail[i:i + 3])
            time.sleep(0.01)

    def send_garbage(self, req, kind):
        common = b"x-upstream: " + self.st.name.encode() + b"\r\n"
        if kind == "header":
            data = b"HTTP/1.1 200 OK\r\n" + common + b"this is not a header\r\ncontent-length: 0\r\n\r\n"
        elif kind == "cl":
            data = (b"HTTP/1.1 200 OK\r\n" + common +
                    b"content-length: 5\r\ncontent-length: 6\r\n\r\nhello!")
        elif kind == "chunk":
            data = (b"HTTP/1.1 200 OK\r\n" + common +
                    b"transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        elif kind == "short":
            data = (b"HTTP/1.1 200 OK\r\n" + common +
                    b"content-length: 100\r\n\r\nonly ten b")
        elif kind == "binary":
            data = stream_block("garbage", 0)[:512]
        else:
            data = b"HTTP/1.1 OK garbage\r\n" + common + b"\r\n"
        self.send(data)
        self.st.log("conn=%d req=%d %s %s -> garbage(%s)" % (self.id, self.nreq, req.method, req.target, kind))
        time.sleep(0.05)
        self.sock.close()

    # -- loop ------------------------------------------------------------------------

    def run(self):
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.st.idle_timeout:
                self.sock.settimeout(self.st.idle_timeout)
            if self.st.tls is not None and not self.start_tls():
                return
            while True:
                req = None
                try:
                    head = self.rd.read_head()
                    if head is None:
                        break
                    self.nreq += 1
                    req = parse_head(head)
                    req.total = self.st.next_total()
                    self.st.stat(self.id, self.nreq, req.method, req.target)
                    if not self.handle(req):
                        return
                except BadRequest as e:
                    self.bad_request(req, e)
                    break
        except (PeerClosed, ConnectionError, socket.timeout, OSError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def bad_request(self, req, e):
        if req is None:
            req = Request()
            req.method, req.target, req.version = "-", "-", "HTTP/1.1"
            req.total = self.st.next_total()
            self.st.stat(self.id, self.nreq, req.method, req.target)
        self.st.log("conn=%d req=%d bad request: %s" % (self.id, self.nreq, e.why))
        try:
            self.reply(req, e.status, ("bad request: %s\n" % e.why).encode(), close=True)
        except OSError:
            pass


# ---------------------------------------------------------------------------


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("--listen wants HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def serve(args):
    host, port = args.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1024)
    state = State(args)
    sys.stdout.write("LISTENING %d\n" % ls.getsockname()[1])
    sys.stdout.flush()

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            sock, peer = ls.accept()
        except InterruptedError:
            continue
        c = Conn(state, sock, peer)
        threading.Thread(target=c.run, daemon=True).start()


def main():
    paras = __doc__.split("\n\n")
    epilog = "\n\n".join(p for p in paras[1:] if not p.startswith("Usage:"))
    ap = argparse.ArgumentParser(description=paras[0], epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0),
                    help="HOST:PORT to listen on (port 0: any free port)")
    ap.add_argument("--name", default="upstream", help="sent as x-upstream on every response")
    ap.add_argument("--stats-file", help="append 'name conn req method target' per request")
    ap.add_argument("--record-file",
                    help="append a JSON line (method, target, host, body sha256) per request")
    ap.add_argument("--delay-all", type=int, default=0, metavar="MS",
                    help="wait MS milliseconds before answering any request")
    ap.add_argument("--idle-timeout", type=float, default=0,
                    help="close a connection idle this many seconds (0: never)")
    ap.add_argument("--keepalive-max", type=int, default=0,
                    help="close a connection after this many requests (0: no limit)")
    ap.add_argument("--quiet", action="store_true", help="no per-request line on stderr")
    ap.add_argument("--fail-status", type=int, default=0, metavar="CODE",
                    help="answer every request with CODE (an unhealthy endpoint)")
    ap.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (chain)")
    ap.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert")
    ap.add_argument("--tls-client-ca", metavar="FILE",
                    help="require a client certificate signed by this CA")
    ap.add_argument("--tls-alpn", metavar="P1,P2", help="ALPN protocols to accept")
    ap.add_argument("--print-sha256", nargs="+", metavar=("N", "SEED"),
                    help="print the sha256 of /bytes/N?seed=SEED and exit")
    ap.add_argument("--write-bytes", nargs="+", metavar=("N", "SEED"),
                    help="write the bytes of /bytes/N?seed=SEED to stdout and exit")
    args = ap.parse_args()
    for opt in (args.print_sha256, args.write_bytes):
        if opt is not None and len(opt) > 2:
            ap.error("N [SEED] expected")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if (args.tls_client_ca or args.tls_alpn) and not args.tls_cert:
        ap.error("--tls-client-ca and --tls-alpn need --tls-cert")
    try:
        if args.print_sha256:
            print(stream_sha256(parse_size(args.print_sha256[0]),
                                args.print_sha256[1] if len(args.print_sha256) > 1 else "0"))
            return 0
        if args.write_bytes:
            n = parse_size(args.write_bytes[0])
            seed = args.write_bytes[1] if len(args.write_bytes) > 1 else "0"
            out = sys.stdout.buffer
            for piece in stream_pieces(n, seed):
                out.write(piece)
            out.flush()
            return 0
    except ValueError:
        ap.error("N must be a number, optionally followed by K, M or G")
    try:
        serve(args)
    except SystemExit:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

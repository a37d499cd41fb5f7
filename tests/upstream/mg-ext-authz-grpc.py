#!/usr/bin/python3
"""mg-ext-authz-grpc: a gRPC external authorizer for the tests (envoy.service.auth.v3
Authorization/Check over h2c, python3-h2, protobuf by hand), behaving like Istio's sample
ext-authz server (samples/extauthz): a CheckRequest whose attributes.request.http.headers
has "x-ext-authz: allow" is allowed (status OK, ok_response headers
"x-ext-authz-check-result: allowed", "x-ext-authz-check-received: <what it saw>",
"x-ext-authz-additional-header-override: grpc-additional-header-override-value"); one
without that header is allowed when source.principal ends with "/sa/a"; any other is
denied (PERMISSION_DENIED, denied_response 403 with "x-ext-authz-check-result: denied",
the same two other headers, and the sample's body).

For the tests, the request header x-ext-authz-mode asks for other answers:
  mutations   allowed, with ok_response's other fields: sets "x-ext-authz-check-result"
              and "X-Set-Me" (upper case), appends "from-authz" to "x-append", removes
              "x-remove-me", and response_headers_to_add "x-authz-added: yes" (append
              unset) and "x-upstream: authz" (append false)
  teapot      denied with 418, "content-type: application/json" and a JSON body
  bare-deny   UNAUTHENTICATED and no denied_response
  grpc-error  a trailers-only answer, grpc-status 14 (UNAVAILABLE)
  garbage     grpc-status 0 with a message that is not protobuf
  http-500    :status 500
  reset       RST_STREAM INTERNAL_ERROR
  slow        the sample's answer, 3 s late

Prints "LISTENING PORT" once listening.  --record-file appends one JSON line per call:
{"name", "call": {path, authority, content_type, te, grpc_timeout}, "attributes": the
decoded CheckRequest.attributes (source/destination {address, port, principal}, request
{time {seconds, nanos}, http {id, method, headers, path, host, scheme, protocol,
size}})}.  A CheckRequest that is not valid protobuf or has a string that is not UTF-8 is
answered INTERNAL (grpc-status 13), as a protobuf server would, and recorded with
"error".  --delay MS holds every answer.
"""
import argparse
import json
import os
import select
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

LOCK = threading.Lock()
DENY_BODY = b"denied by ext_authz for not found header `x-ext-authz: allow` in the request"
CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"

# ---- protobuf wire format, by hand ----


def varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("bad varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """[(field, wire type, value)] of one message: varints as ints, the rest as bytes."""
    out, i = [], 0
    while i < len(b):
        tag, i = varint(b, i)
        fn, wt = tag >> 3, tag & 7
        if fn == 0:
            raise ValueError("field 0")
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            if i + n > len(b):
                raise ValueError("length beyond the message")
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        if i > len(b):
            raise ValueError("truncated")
        out.append((fn, wt, v))
    return out


def text(v):
    return v.decode("utf-8")  # strict, as a protobuf string field is


def peer(b):
    d = {}
    for fn, wt, v in fields(b):
        if fn == 1 and wt == 2:  # Address
            for afn, awt, av in fields(v):
                if afn == 1 and awt == 2:  # SocketAddress
                    for sfn, swt, sv in fields(av):
                        if sfn == 2 and swt == 2:
                            d["address"] = text(sv)
                        elif sfn == 3 and swt == 0:
                            d["port"] = sv
        elif fn == 4 and wt == 2:
            d["principal"] = text(v)
    return d


HTTP_FIELDS = {1: "id", 2: "method", 4: "path", 5: "host", 6: "scheme", 10: "protocol"}


def http_request(b):
    d = {"headers": {}}
    for fn, wt, v in fields(b):
        if fn in HTTP_FIELDS and wt == 2:
            d[HTTP_FIELDS[fn]] = text(v)
        elif fn == 3 and wt == 2:  # map<string, string> entry
            k = val = ""
            for efn, ewt, ev in fields(v):
                if efn == 1 and ewt == 2:
                    k = text(ev)
                elif efn == 2 and ewt == 2:
                    val = text(ev)
            if k in d["headers"]:
                raise ValueError("map key %r twice" % k)
            d["headers"][k] = val
        elif fn == 9 and wt == 0:
            d["size"] = v
    return d


def check_request(b):
    attrs = {}
    for fn, wt, v in fields(b):
        if fn != 1 or wt != 2:
            continue
        for afn, awt, av in fields(v):
            if afn == 1 and awt == 2:
                attrs["source"] = peer(av)
            elif afn == 2 and awt == 2:
                attrs["destination"] = peer(av)
            elif afn == 4 and awt == 2:
                req = {}
                for rfn, rwt, rv in fields(av):
                    if rfn == 1 and rwt == 2:
                        req["time"] = {{1: "seconds", 2: "nanos"}[t]: tv
                                       for t, tw, tv in fields(rv) if t in (1, 2)}
                    elif rfn == 2 and rwt == 2:
                        req["http"] = http_request(rv)
                attrs["request"] = req
    return attrs


def ev(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def ef(fn, b):
    return ev(fn << 3 | 2) + ev(len(b)) + b


def eu(fn, n):
    return ev(fn << 3) + ev(n)


def hvo(key, value, append=None):
    m = ef(1, ef(1, key.encode()) + ef(2, value.encode()))
    if append is not None:
        m += ef(2, eu(1, 1 if append else 0))  # google.protobuf.BoolValue
    return m


def sample_headers(result, received):
    return (ef(2, hvo("x-ext-authz-check-result", result)) +
            ef(2, hvo("x-ext-authz-check-received", received)) +
            ef(2, hvo("x-ext-authz-additional-header-override",
                      "grpc-additional-header-override-value")))


def answer_message(attrs, mode):
    """The CheckResponse bytes for these attributes, as Istio's sample (or the mode)."""
    http = attrs.get("request", {}).get("http", {})
    hdrs = http.get("headers", {})
    received = "%s %s%s" % (http.get("method", ""), http.get("host", ""), http.get("path", ""))
    if mode == "mutations":
        ok = (ef(2, hvo("x-ext-authz-check-result", "allowed", False)) +
              ef(2, hvo("X-Set-Me", "set")) +
              ef(2, hvo("x-append", "from-authz", True)) +
              ef(5, b"x-remove-me") +
              ef(6, hvo("x-authz-added", "yes")) +
              ef(6, hvo("x-upstream", "authz", False)))
        return ef(1, b"") + ef(3, ok)
    if mode == "teapot":
        den = (ef(1, eu(1, 418)) + ef(2, hvo("content-type", "application/json")) +
               ef(3, b'{"denied":true}'))
        return ef(1, eu(1, 7)) + ef(2, den)
    if mode == "bare-deny":
        return ef(1, eu(1, 16) + ef(2, b"who are you"))
    if "x-ext-authz" in hdrs:
        allow = hdrs["x-ext-authz"] == "allow"
    else:
        allow = attrs.get("source", {}).get("principal", "").endswith("/sa/a")
    if allow:
        return ef(1, b"") + ef(3, sample_headers("allowed", received))
    den = ef(1, eu(1, 403)) + sample_headers("denied", received) + ef(3, DENY_BODY)
    return ef(1, eu(1, 7) + ef(2, b"permission denied")) + ef(2, den)


def frame(m):
    return b"\0" + len(m).to_bytes(4, "big") + m


# ---- the HTTP/2 side ----


class Stream:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = dict(headers)
        self.body = b""
        self.due = None
        self.reply = None  # (headers, data, trailers)


class Conn:
    def __init__(self, opts, sock):
        self.opts, self.sock = opts, sock
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.streams = {}

    def record(self, st, doc):
        if self.opts.stats_file:
            with LOCK:
                with open(self.opts.stats_file, "a") as f:
                    f.write("%s 0 0 POST %s\n" % (self.opts.name, st.headers.get(":path")))
        if not self.opts.record_file:
            return
        doc["name"] = self.opts.name
        doc["call"] = {"path": st.headers.get(":path"), "authority": st.headers.get(":authority"),
                       "method": st.headers.get(":method"),
                       "content_type": st.headers.get("content-type"),
                       "te": st.headers.get("te"), "grpc_timeout": st.headers.get("grpc-timeout")}
        with LOCK:
            fd = os.open(self.opts.record_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, (json.dumps(doc, sort_keys=True) + "\n").encode())
            os.close(fd)

    def grpc_headers(self, extra=()):
        return [(":status", "200"), ("content-type", "application/grpc")] + list(extra)

    def handle(self, st):
        """Decide the answer to a complete call."""
        doc = {}
        attrs = None
        try:
            if st.headers.get(":path") != CHECK_PATH:
                raise ValueError("unknown method %s" % st.headers.get(":path"))
            if len(st.body) < 5 or st.body[0] != 0:
                raise ValueError("bad gRPC prefix")
            n = int.from_bytes(st.body[1:5], "big")
            if len(st.body) != 5 + n:
                raise ValueError("gRPC length %d, body %d" % (n, len(st.body) - 5))
            attrs = check_request(st.body[5:])
            doc["attributes"] = attrs
        except (ValueError, UnicodeDecodeError, KeyError) as e:
            doc["error"] = str(e)
        self.record(st, doc)
        if attrs is None:
            st.reply = (self.grpc_headers([("grpc-status", "13"), ("grpc-message", "bad request")]),
                        None, None)
            return
        mode = attrs.get("request", {}).get("http", {}).get("headers", {}).get("x-ext-authz-mode", "")
        if mode == "grpc-error":
            st.reply = (self.grpc_headers([("grpc-status", "14"), ("grpc-message", "unavailable")]),
                        None, None)
        elif mode == "garbage":
            st.reply = (self.grpc_headers(), frame(b"\x0a\x05\x08"), [("grpc-status", "0")])
        elif mode == "http-500":
            st.reply = ([(":status", "500"), ("content-length", "0")], None, None)
        elif mode == "reset":
            st.reply = "reset"
        else:
            st.reply = (self.grpc_headers(), frame(answer_message(attrs, mode)),
                        [("grpc-status", "0"), ("grpc-message", "")])
        delay = self.opts.delay / 1000.0 + (3.0 if mode == "slow" else 0.0)
        st.due = time.monotonic() + delay

    def send(self, st):
        self.streams.pop(st.sid, None)
        try:
            if st.reply == "reset":
                self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                return
            head, data, trailers = st.reply
            self.h2.send_headers(st.sid, head, end_stream=data is None and trailers is None)
            if data is not None:
                self.h2.send_data(st.sid, data, end_stream=trailers is None)
            if trailers is not None:
                self.h2.send_headers(st.sid, trailers, end_stream=True)
        except h2.exceptions.StreamClosedError:
            pass  # the caller gave up (timeout): RST_STREAM came first

    def event(self, e):
        if isinstance(e, h2.events.RequestReceived):
            self.streams[e.stream_id] = Stream(e.stream_id, e.headers)
        elif isinstance(e, h2.events.DataReceived):
            st = self.streams.get(e.stream_id)
            if st is not None:
                st.body += e.data
            self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            st = self.streams.get(e.stream_id)
            if st is not None:
                self.handle(st)
        elif isinstance(e, h2.events.StreamReset):
            self.streams.pop(e.stream_id, None)

    def run(self):
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        while True:
            now = time.monotonic()
            for st in list(self.streams.values()):
                if st.due is not None and st.due <= now:
                    self.send(st)
            out = self.h2.data_to_send()
            if out:
                self.sock.sendall(out)
            dues = [s.due for s in self.streams.values() if s.due is not None]
            timeout = max(0.0, min(dues) - now) if dues else 1.0
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                continue
            data = self.sock.recv(65536)
            if not data:
                break
            try:
                events = self.h2.receive_data(data)
            except Exception as e:  # a protocol error: say so and close
                sys.stderr.write("h2 error: %r\n" % e)
                break
            for e in events:
                self.event(e)
        self.sock.close()


def serve(opts, sock):
    try:
        Conn(opts, sock).run()
    except OSError as e:
        sys.stderr.write("connection: %r\n" % e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT")
    ap.add_argument("--name", default="ext-authz-grpc")
    ap.add_argument("--stats-file")
    ap.add_argument("--record-file")
    ap.add_argument("--delay", type=int, default=0, metavar="MS")
    opts = ap.parse_args()
    host, port = opts.listen.rsplit(":", 1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(128)
    print("LISTENING %d" % ls.getsockname()[1], flush=True)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(opts, s), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""mg-h2-upstream.py: scriptable HTTP/2 test upstream (python3-h2) for meshgate's e2e tests.

usage: mg-h2-upstream.py --listen 127.0.0.1:0 --name NAME --stats-file FILE
                         [--max-concurrent-streams N] [--tls-cert FILE --tls-key FILE]
                         [--record-file FILE] [--delay-all MS] [--reset-all]

Speaks HTTP/2 only: prior knowledge (h2c) in plaintext, ALPN "h2" over TLS.  Prints
"LISTENING PORT" once bound.  Appends one line per event to the stats file:
"NAME conn CONN" for each connection, "NAME stream CONN STREAM TARGET" for each request.
--record-file appends one JSON line per request once its body is read: {name, conn,
stream, method, target, host (the :authority), request_id, body_len, body_sha256}, as
mg-test-upstream.py's does, so a test sees requests whose answers nobody reads (mirrors).
--delay-all MS answers every request MS milliseconds after its body (as /slow/MS);
--reset-all answers every request with RST_STREAM INTERNAL_ERROR (as /reset).

Paths (the query may carry key=K to make a once-only behaviour per key):
  /echo              200, JSON {name, conn, stream, method, target, headers,
                     body_len, body_sha256}; x-upstream: NAME
  /bytes/N?seed=S    N bytes of mg-test-upstream.py's /bytes stream (content-length;
                     ?nolen=1 sends none, ?trailers=1 adds an x-body-sha256 trailer)
  /slow/MS           answers /echo's JSON after MS milliseconds
  /status/N          status N, empty body
  /refuse?key=K      first time per K: RST_STREAM REFUSED_STREAM, then as /echo
  /reset             RST_STREAM INTERNAL_ERROR before any response
  /reset-mid         response head and 1000 bytes, then RST_STREAM INTERNAL_ERROR
  /goaway?key=K      first time per K: GOAWAY naming the stream before this one as the
                     last processed, then the connection closes; then as /echo
  /hang              never answers
  /trailers-out?a=1  200, content-type application/grpc, no content-length, a
                     5-byte gRPC message, then each query pair (URL-decoded, name
                     lower-cased) as a field of a trailing HEADERS (as gRPC ends a
                     call: ?grpc-status=0&grpc-message=ok)
"""
import argparse
import hashlib
import importlib.util
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("mgtu", os.path.join(HERE, "mg-test-upstream.py"))
mgtu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mgtu)

LOCK = threading.Lock()
ONCE = set()
CONN_IDS = [0]


def once(key):
    with LOCK:
        if key in ONCE:
            return False
        ONCE.add(key)
        return True


def stat(args, line):
    with LOCK:
        with open(args.stats_file, "a") as f:
            f.write("%s %s\n" % (args.name, line))


def query(target):
    q = {}
    if "?" in target:
        for kv in target.split("?", 1)[1].split("&"):
            k, _, v = kv.partition("=")
            q[k] = v
    return q


class Stream:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = headers
        self.body = hashlib.sha256()
        self.body_len = 0
        self.out = []  # pending (data, end) pieces
        self.trailers = None
        self.due = None  # time the answer is due (slow)
        self.answered = False


class Conn:
    def __init__(self, args, sock, cid):
        self.args, self.sock, self.cid = args, sock, cid
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.streams = {}
        self.closing = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def respond(self, st, status, body=b"", extra=(), length=True, trailers=None):
        hdrs = [(":status", str(status)), ("x-upstream", self.args.name),
                ("x-conn", str(self.cid)), ("x-stream", str(st.sid))]
        if length:
            hdrs.append(("content-length", str(len(body))))
        hdrs.extend(extra)
        end = not body and not trailers
        self.h2.send_headers(st.sid, hdrs, end_stream=end)
        if not end:
            st.out.append(body)
            st.trailers = trailers

    def echo(self, st):
        h = dict(st.headers)
        doc = {"name": self.args.name, "conn": self.cid, "stream": st.sid,
               "method": h.get(":method"), "target": h.get(":path"),
               "authority": h.get(":authority"), "scheme": h.get(":scheme"),
               "headers": {k: v for k, v in st.headers if not k.startswith(":")},
               "body_len": st.body_len, "body_sha256": st.body.hexdigest()}
        self.respond(st, 200, json.dumps(doc).encode() + b"\n",
                     extra=[("content-type", "application/json")])

    def record(self, st):
        if not self.args.record_file:
            return
        h = dict(st.headers)
        doc = {"name": self.args.name, "conn": self.cid, "stream": st.sid,
               "method": h.get(":method"), "target": h.get(":path"),
               "host": h.get(":authority"), "request_id": h.get("x-request-id"),
               "body_len": st.body_len, "body_sha256": st.body.hexdigest()}
        with LOCK:
            with open(self.args.record_file, "a") as f:
                f.write(json.dumps(doc, sort_keys=True) + "\n")

    def answer(self, st):
        st.answered = True
        self.record(st)
        h = dict(st.headers)
        target = h.get(":path", "/")
        path = target.split("?", 1)[0]
        q = query(target)
        key = q.get("key", "")
        if self.args.reset_all:
            self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif self.args.delay_all:
            st.due = time.monotonic() + self.args.delay_all / 1000.0
        elif path.startswith("/bytes/"):
            n = mgtu.parse_size(path[7:])
            body = b"".join(mgtu.stream_pieces(n, q.get("seed", "0")))
            tr = None
            if q.get("trailers") == "1":
                tr = [("x-body-sha256", hashlib.sha256(body).hexdigest())]
            self.respond(st, 200, body, length=q.get("nolen") != "1", trailers=tr)
        elif path.startswith("/slow/"):
            st.due = time.monotonic() + int(path[6:]) / 1000.0
        elif path.startswith("/status/"):
            self.respond(st, int(path[8:]))
        elif path == "/refuse" and once("refuse" + key):
            self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif path == "/reset":
            self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == "/reset-mid":
            self.h2.send_headers(st.sid, [(":status", "200"), ("x-upstream", self.args.name),
                                          ("content-length", "100000")])
            self.h2.send_data(st.sid, b"x" * 1000)
            self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == "/goaway" and once("goaway" + key):
            self.h2.close_connection(last_stream_id=st.sid - 2)
            self.closing = True
        elif path == "/hang":
            pass
        elif path == "/trailers-out":
            qs = target.split("?", 1)[1] if "?" in target else ""
            tr = [(k.lower(), v) for k, v in urllib.parse.parse_qsl(qs, keep_blank_values=True)]
            self.respond(st, 200, b"\0\0\0\0\5hello", length=False,
                         extra=[("content-type", "application/grpc")], trailers=tr or None)
        else:
            self.echo(st)

    def pump(self):
        """Send what the flow-control windows allow."""
        for st in list(self.streams.values()):
            while st.out:
                data = st.out[0]
                try:
                    room = min(self.h2.local_flow_control_window(st.sid),
                               self.h2.max_outbound_frame_size)
                except Exception:  # the stream is gone (reset)
                    st.out = []
                    break
                if room <= 0 and data:
                    break
                piece, rest = data[:room], data[room:]
                last = not rest and len(st.out) == 1
                self.h2.send_data(st.sid, piece, end_stream=last and st.trailers is None)
                if rest:
                    st.out[0] = rest
                else:
                    st.out.pop(0)
                    if last and st.trailers is not None:
                        self.h2.send_headers(st.sid, st.trailers, end_stream=True)
            if st.answered and not st.out and st.due is None:
                self.streams.pop(st.sid, None)

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            st = Stream(ev.stream_id, ev.headers)
            self.streams[ev.stream_id] = st
            stat(self.args, "stream %d %d %s" % (self.cid, ev.stream_id, dict(ev.headers).get(":path")))
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.body.update(ev.data)
                st.body_len += len(ev.data)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                self.answer(st)
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closing = True

    def run(self):
        settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
        if self.args.max_concurrent_streams:
            settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self.args.max_concurrent_streams
        self.h2.initiate_connection()
        self.h2.update_settings(settings)
        self.h2.increment_flow_control_window(1 << 24)
        self.flush()
        while True:
            now = time.monotonic()
            for st in list(self.streams.values()):
                if st.due is not None and st.due <= now:
                    st.due = None
                    self.echo(st)
            self.pump()
            self.flush()
            if self.closing:
                time.sleep(0.1)
                break
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
            except Exception as e:  # protocol error: say it and close
                sys.stderr.write("h2 error: %r\n" % e)
                self.flush()
                break
            for ev in events:
                self.event(ev)
        self.sock.close()


def serve(args, sock, ctx):
    try:
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_side=True)
            if sock.selected_alpn_protocol() != "h2":
                sys.stderr.write("client did not pick h2\n")
                sock.close()
                return
        with LOCK:
            CONN_IDS[0] += 1
            cid = CONN_IDS[0]
        stat(args, "conn %d" % cid)
        Conn(args, sock, cid).run()
    except (OSError, ssl.SSLError) as e:
        sys.stderr.write("connection: %r\n" % e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--name", default="h2")
    ap.add_argument("--stats-file", default=os.devnull)
    ap.add_argument("--max-concurrent-streams", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--record-file")
    ap.add_argument("--delay-all", type=int, default=0)
    ap.add_argument("--reset-all", action="store_true")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ctx.set_alpn_protocols(["h2"])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(128)
    print("LISTENING %d" % ls.getsockname()[1], flush=True)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(args, s, ctx), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""mg-h2-client.py: an HTTP/2 client (python3-h2) for what curl cannot send: header
blocks that break RFC 9113, resets, idle connections.  For meshgate's e2e tests.

usage: mg-h2-client.py --port P [--host H] [--tls-ca FILE --sni NAME]
                       [--path /x] [--method GET] [--authority A]
                       [--header 'name: value']... [--raw]
                       [--body N] [--no-end-stream] [--reset-after MS]
                       [--close-after MS]
                       [--streams N] [--wait SEC] [--rapid-reset N]

One request (or --streams N of them at once) on one connection, h2c with prior knowledge
or TLS with ALPN h2.  --raw sends the headers exactly as given: no validation, no
lower-casing.  --body N sends N bytes of body.  --reset-after MS sends RST_STREAM CANCEL
MS milliseconds after the request; --close-after MS closes the connection then instead.  --wait SEC keeps reading that long after the last
stream ended (to see a GOAWAY or a close).  --rapid-reset N opens and at once cancels up
to N streams (HEADERS then RST_STREAM, 50 to a write) and prints "goaway CODE after K",
"closed after K" or "no goaway after N".

Prints one line per event, in order:
  trailer NAME: VALUE     a field of a response's trailer section
  status CODE BODYLEN     a stream's response ended (END_STREAM)
  reset CODE              a stream was reset by the server (the error code, decimal)
  goaway CODE LASTID      a GOAWAY
  closed                  the server closed the connection
  timeout                 nothing more came for 10 s
"""
import argparse
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def rapid_reset(sock, conn, headers, n):
    """Open and at once cancel up to N streams, 50 to a write, as the "rapid reset" attack
    (CVE-2023-44487) does; stop at a GOAWAY or a close."""
    sock.settimeout(0.2)
    for i in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=True)
        conn.reset_stream(sid, error_code=8)  # CANCEL
        if i % 50 != 49 and i != n - 1:
            continue
        try:
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            data = b""
        if not data:
            print("closed after %d" % (i + 1))
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ConnectionTerminated):
                print("goaway %d after %d" % (ev.error_code, i + 1))
                return
    print("no goaway after %d" % n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-ca")
    ap.add_argument("--sni")
    ap.add_argument("--path", default="/")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--authority")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--body", type=int, default=0)
    ap.add_argument("--no-end-stream", action="store_true")
    ap.add_argument("--reset-after", type=int)
    ap.add_argument("--close-after", type=int)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--wait", type=float, default=0)
    ap.add_argument("--rapid-reset", type=int, default=0)
    a = ap.parse_args()

    sock = socket.create_connection((a.host, a.port), timeout=10)
    if a.tls_ca:
        ctx = ssl.create_default_context(cafile=a.tls_ca)
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname=a.sni or a.host)
        if sock.selected_alpn_protocol() != "h2":
            print("alpn %s" % sock.selected_alpn_protocol())
            return
    cfg = h2.config.H2Configuration(client_side=True,
                                    validate_outbound_headers=not a.raw,
                                    normalize_outbound_headers=not a.raw,
                                    validate_inbound_headers=True)
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    authority = a.authority or ("%s:%d" % (a.host, a.port))
    headers = [(":method", a.method), (":scheme", "https" if a.tls_ca else "http"),
               (":authority", authority), (":path", a.path)]
    if a.raw and a.authority == "":
        headers = [h for h in headers if h[0] != ":authority"]
    for h in a.header:
        name, _, value = h.partition(":")
        headers.append((name.strip(), value.strip()))
    end_stream = a.body == 0 and not a.no_end_stream
    if a.rapid_reset:
        rapid_reset(sock, conn, headers, a.rapid_reset)
        return
    ids = []
    for _ in range(a.streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=end_stream)
        ids.append(sid)
    sock.sendall(conn.data_to_send())
    if a.body:
        for sid in ids:
            left = a.body
            while left > 0:
                n = min(left, 16384, conn.local_flow_control_window(sid),
                        conn.max_outbound_frame_size)
                if n <= 0:
                    break  # the rest waits for WINDOW_UPDATE (read loop below)
                conn.send_data(sid, b"x" * n, end_stream=(n == left and not a.no_end_stream))
                left -= n
            sock.sendall(conn.data_to_send())

    bodies = {sid: 0 for sid in ids}
    open_ids = set(ids)
    reset_at = time.time() + a.reset_after / 1000.0 if a.reset_after is not None else None
    close_at = time.time() + a.close_after / 1000.0 if a.close_after is not None else None
    deadline = None
    sock.settimeout(0.05)
    last = time.time()
    while True:
        now = time.time()
        if close_at is not None and now >= close_at:
            sock.close()
            print("closed by client")
            return
        if reset_at is not None and now >= reset_at:
            for sid in list(open_ids):
                conn.reset_stream(sid, error_code=8)  # CANCEL
                open_ids.discard(sid)
                print("cancelled")
            sock.sendall(conn.data_to_send())
            reset_at = None
        if not open_ids and reset_at is None:
            if deadline is None:
                deadline = now + a.wait
            if now >= deadline:
                return
        if now - last > 10:
            print("timeout")
            return
        try:
            data = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, BrokenPipeError):
            print("closed")
            return
        if not data:
            print("closed")
            return
        last = time.time()
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            print("protocol-error %s" % e)
            return
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                st = dict(ev.headers).get(b":status", b"?").decode()
                bodies[ev.stream_id] = ("status", st, 0)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                kind, st, n = bodies.get(ev.stream_id, ("status", "?", 0))
                bodies[ev.stream_id] = (kind, st, n + len(ev.data))
            elif isinstance(ev, h2.events.TrailersReceived):
                for name, value in ev.headers:
                    print("trailer %s: %s" % (name.decode(), value.decode()))
            elif isinstance(ev, h2.events.StreamEnded):
                _, st, n = bodies.get(ev.stream_id, ("status", "?", 0))
                print("status %s %d" % (st, n))
                open_ids.discard(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                print("reset %d" % ev.error_code)
                open_ids.discard(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                print("goaway %d %d" % (ev.error_code, ev.last_stream_id or 0))
                open_ids.clear()
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except (BrokenPipeError, ConnectionResetError):
                print("closed")
                return


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()

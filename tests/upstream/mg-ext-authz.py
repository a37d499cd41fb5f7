#!/usr/bin/python3
"""mg-ext-authz: an HTTP external authorizer for the tests, behaving like Istio's sample
ext-authz server (samples/extauthz): a check request with "x-ext-authz: allow" is allowed
(200, "x-ext-authz-check-result: allowed"), any other is denied (403, the sample's body,
"x-ext-authz-check-result: denied").  Both answers also carry
"x-ext-authz-additional-header-override" echoed from the check request.

Prints "LISTENING PORT" once listening.  --record-file appends one JSON line per check
request: {"name", "method", "target", "headers": {lower-case name: value}}.  --delay MS
holds every answer that long (timeouts); --status CODE answers every check with CODE.
"""
import argparse
import http.server
import json
import os
import socketserver
import sys
import time

DENY_BODY = b"denied by ext_authz for not found header `x-ext-authz: allow` in the request"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def handle_one_request(self):
        # every method is a check: route them all to check()
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.check()
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def check(self):
        opts = self.server.opts
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        rec = {
            "name": opts.name,
            "method": self.command,
            "target": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        if opts.record_file:
            fd = os.open(opts.record_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, (json.dumps(rec) + "\n").encode())
            os.close(fd)
        if opts.stats_file:
            fd = os.open(opts.stats_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, ("%s 0 0 %s %s\n" % (opts.name, self.command, self.path)).encode())
            os.close(fd)
        if opts.delay:
            time.sleep(opts.delay / 1000.0)
        allowed = self.headers.get("x-ext-authz") == "allow"
        status = opts.status or (200 if allowed else 403)
        body = b"" if status == 200 else DENY_BODY
        self.send_response(status)
        self.send_header("x-ext-authz-check-result", "allowed" if allowed else "denied")
        self.send_header("x-ext-authz-additional-header-override",
                         self.headers.get("x-ext-authz-additional-header-override", ""))
        if not allowed:
            self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT")
    ap.add_argument("--name", default="ext-authz")
    ap.add_argument("--stats-file")
    ap.add_argument("--record-file")
    ap.add_argument("--delay", type=int, default=0, metavar="MS")
    ap.add_argument("--status", type=int, default=0, metavar="CODE")
    opts = ap.parse_args()
    host, port = opts.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.opts = opts
    print("LISTENING %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/idleconns.py: open N idle client connections to a proxy and hold them.

Connections are opened at most INFLIGHT at a time (so that the listen backlog never
overflows); with --tls each one completes a TLS 1.3 handshake.  No request is ever sent.
When all are open (or failed) it prints one line "open N failed F" and then holds them
until its standard input reaches end of file; then it closes them all and exits.

Used by bench/bench.py to measure memory per idle connection; python3 standard library
only.
"""

import argparse
import errno
import resource
import selectors
import socket
import ssl
import sys
import time


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64 if hard == resource.RLIM_INFINITY else min(hard, n + 64)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni", default="bench.local")
    ap.add_argument("--inflight", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    limit = raise_nofile(args.n)
    n = min(args.n, limit - 32)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sel = selectors.DefaultSelector()
    held = []
    failed = 0
    started = 0
    pending = 0
    deadline = time.monotonic() + args.timeout

    def start():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((args.host, args.port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, "connect")
        return True

    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and pending < args.inflight:
            started += 1
            if start():
                pending += 1
            else:
                failed += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            done = False
            try:
                if key.data == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    if not args.tls:
                        done = True
                    else:
                        sel.unregister(s)
                        s = ctx.wrap_socket(s, server_hostname=args.sni,
                                            do_handshake_on_connect=False)
                        sel.register(s, selectors.EVENT_WRITE, "handshake")
                if not done and args.tls:
                    try:
                        s.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        sel.modify(s, selectors.EVENT_READ, "handshake")
                    except ssl.SSLWantWriteError:
                        sel.modify(s, selectors.EVENT_WRITE, "handshake")
            except (OSError, ssl.SSLError):
                sel.unregister(s)
                s.close()
                failed += 1
                pending -= 1
                continue
            if done:
                sel.unregister(s)
                held.append(s)
                pending -= 1
    for key in list(sel.get_map().values()):  # still connecting at the deadline
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    failed += n - started
    print("open %d failed %d limit %d" % (len(held), failed, n), flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()

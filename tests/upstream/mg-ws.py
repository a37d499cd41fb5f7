#!/usr/bin/env python3
"""A WebSocket (RFC 6455) test upstream and client, standard library only.

  mg-ws.py --listen 127.0.0.1:0 --name NAME [--stats-file F]
      serve HTTP/1.1 on the address (prints "LISTENING PORT"):
        GET /ws      with a WebSocket handshake: 101, then a text message "hello from
                     NAME", then every message echoed back, a close answered by a close
        GET /bad101  101 without Upgrade: websocket (a switch nobody can follow)
        anything else: 200 with a JSON body {"name", "path", "headers"} (keep-alive);
                     a handshake among them is refused this way too
  mg-ws.py client PORT PATH [MESSAGE...]
      handshake through 127.0.0.1:PORT, print the status line, the first message, then
      send each MESSAGE (masked, as a client must) and print each echo, then close; exit 0
      when every echo matched and the close was answered
  mg-ws.py smuggle PORT
      a handshake the upstream refuses, followed in the same write by a second request:
      print each status line read back (the second request must be answered as HTTP)
"""
import base64
import hashlib
import json
import os
import socket
import socketserver
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def read_head(f):
    lines = []
    while True:
        line = f.readline(65536)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


def frame(opcode, payload, mask):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def read_frame(f):
    b = f.read(2)
    if len(b) < 2:
        return None, None
    opcode = b[0] & 0x0F
    n = b[1] & 0x7F
    if n == 126:
        n = int.from_bytes(f.read(2), "big")
    elif n == 127:
        n = int.from_bytes(f.read(8), "big")
    key = f.read(4) if b[1] & 0x80 else None
    payload = f.read(n)
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return opcode, payload


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = read_head(self.rfile)
            if not head:
                return
            method, path, _ = head[0].split(" ", 2)
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs.setdefault(k.strip().lower(), v.strip())
            if path == "/ws" and hdrs.get("upgrade", "").lower() == "websocket":
                self.websocket(hdrs)
                return
            if path == "/bad101":
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
                return
            body = json.dumps({"name": self.server.name, "path": path,
                               "headers": hdrs}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(body) + body)

    def websocket(self, hdrs):
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                          % accept_key(hdrs.get("sec-websocket-key", ""))).encode())
        self.wfile.write(frame(1, ("hello from %s" % self.server.name).encode(), False))
        self.wfile.flush()
        while True:
            opcode, payload = read_frame(self.rfile)
            if opcode is None:
                return
            if opcode == 8:
                self.wfile.write(frame(8, payload, False))
                self.wfile.flush()
                return
            self.wfile.write(frame(opcode, payload, False))
            self.wfile.flush()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(args):
    listen = args[args.index("--listen") + 1]
    host, port = listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.name = args[args.index("--name") + 1] if "--name" in args else "ws"
    print("LISTENING %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


def handshake(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    f = s.makefile("rb")
    head = read_head(f)
    return s, f, head, key


def client(port, path, messages):
    s, f, head, key = handshake(port, path)
    if not head:
        print("no response")
        return 1
    print(head[0])
    if not head[0].startswith("HTTP/1.1 101"):
        return 1
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in head[1:])}
    if hdrs.get("sec-websocket-accept") != accept_key(key):
        print("bad accept")
        return 1
    opcode, payload = read_frame(f)
    print("first: %s" % payload.decode())
    ok = True
    for m in messages:
        s.sendall(frame(1, m.encode(), True))
        opcode, payload = read_frame(f)
        print("echo: %s" % (payload.decode() if payload is not None else "<closed>"))
        ok = ok and payload == m.encode()
    s.sendall(frame(8, b"\x03\xe8bye", True))
    opcode, payload = read_frame(f)
    print("close: %s" % ("answered" if opcode == 8 else "not answered"))
    ok = ok and opcode == 8
    s.close()
    return 0 if ok else 1


def smuggle(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /refused HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n"
              b"GET /second HTTP/1.1\r\nHost: ws.example.com\r\n\r\n")
    f = s.makefile("rb")
    for _ in range(2):
        head = read_head(f)
        if not head:
            print("closed")
            return
        print(head[0])
        n = 0
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                n = int(v)
        body = json.loads(f.read(n) or b"{}")
        print("path: %s" % body.get("path"))


def main(argv):
    if "--listen" in argv:
        serve(argv)
    elif len(argv) >= 4 and argv[1] == "client":
        sys.exit(client(int(argv[2]), argv[3], argv[4:]))
    elif len(argv) == 3 and argv[1] == "smuggle":
        smuggle(int(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    threading.stack_size(256 * 1024)
    main(sys.argv)

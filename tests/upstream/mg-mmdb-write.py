#!/usr/bin/env python3
"""mg-mmdb-write.py: write a small MaxMind DB (GeoIP2-style, IPv6 tree with IPv4 mapped
at ::/96) for meshgate's GeoIP tests, python3 standard library only.

usage: mg-mmdb-write.py OUT.mmdb CIDR=COUNTRY[:CITY[:REGION[:ASN]]] ...

Each CIDR (IPv4 or IPv6) gets a record shaped like GeoIP2-City / GeoLite2-ASN:
  {"country": {"iso_code": C}, "city": {"names": {"en": CITY}},
   "subdivisions": [{"iso_code": REGION}], "autonomous_system_number": ASN}
(the parts given).  Later CIDRs win where they overlap earlier ones.
"""
import ipaddress
import struct
import sys
import time


def ctrl(type_, size):
    """Control byte(s) of a field: type and payload size (MaxMind DB spec, "Data Section")."""
    out = bytearray()
    if size < 29:
        first, extra = size, b""
    elif size < 285:
        first, extra = 29, bytes([size - 29])
    elif size < 65821:
        first, extra = 30, struct.pack(">H", size - 285)
    else:
        first, extra = 31, struct.pack(">I", size - 65821)[1:]
    if type_ <= 7:
        out.append((type_ << 5) | first)
    else:  # extended type: type 0 in the control byte, then type - 7
        out.append(first)
        out.append(type_ - 7)
    return bytes(out) + extra


def uint(type_, v):
    raw = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
    return ctrl(type_, len(raw)) + raw


def enc(v):
    if isinstance(v, str):
        b = v.encode()
        return ctrl(2, len(b)) + b
    if isinstance(v, bool):
        return ctrl(14, 1 if v else 0)
    if isinstance(v, int):
        return uint(6 if v < 2**32 else 9, v)  # uint32, uint64
    if isinstance(v, dict):
        return ctrl(7, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    if isinstance(v, list):
        return ctrl(11, len(v)) + b"".join(enc(x) for x in v)
    raise TypeError(v)


def record(spec):
    parts = spec.split(":")
    rec = {"country": {"iso_code": parts[0]}}
    if len(parts) > 1 and parts[1]:
        rec["city"] = {"names": {"en": parts[1]}}
    if len(parts) > 2 and parts[2]:
        rec["subdivisions"] = [{"iso_code": parts[2]}]
    if len(parts) > 3 and parts[3]:
        rec["autonomous_system_number"] = int(parts[3])
    return rec


def main():
    out, specs = sys.argv[1], sys.argv[2:]
    data = bytearray()
    nets = []
    for s in specs:
        cidr, _, what = s.partition("=")
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version == 4:  # IPv4 lives at ::a.b.c.d (MaxMind's ::/96 layout)
            net = ipaddress.ip_network("::%s/%d" % (net.network_address, 96 + net.prefixlen))
        off = len(data)
        data += enc(record(what))
        nets.append((net, off))
    # The tree: nodes of [left, right]; None = no data, ("n", i) = node i, ("d", off) = data.
    nodes = [[None, None]]
    for net, off in nets:
        bits = int(net.network_address)
        node = 0
        for depth in range(net.prefixlen):
            bit = (bits >> (127 - depth)) & 1
            last = depth == net.prefixlen - 1
            cur = nodes[node][bit]
            if last:
                nodes[node][bit] = ("d", off)  # overlapping later data wins
                break
            if cur is None or cur[0] == "d":
                nodes.append([cur, cur])  # an existing datum covers both halves below
                nodes[node][bit] = ("n", len(nodes) - 1)
            node = nodes[node][bit][1]
    n = len(nodes)

    def val(r):
        if r is None:
            return n
        return r[1] if r[0] == "n" else n + 16 + r[1]

    tree = bytearray()
    for left, right in nodes:
        tree += val(left).to_bytes(3, "big") + val(right).to_bytes(3, "big")
    meta = {
        "binary_format_major_version": 2, "binary_format_minor_version": 0,
        "build_epoch": int(time.time()), "database_type": "meshgate-test",
        "description": {"en": "meshgate test database"}, "ip_version": 6,
        "languages": ["en"], "node_count": n, "record_size": 24,
    }
    # uint16 for the format fields, as the spec types them
    menc = ctrl(7, len(meta))
    for k, v in meta.items():
        if k in ("binary_format_major_version", "binary_format_minor_version", "ip_version",
                 "record_size"):
            menc += enc(k) + uint(5, v)
        elif k == "build_epoch":
            menc += enc(k) + uint(9, v)
        else:
            menc += enc(k) + enc(v)
    with open(out, "wb") as f:
        f.write(bytes(tree) + bytes(16) + bytes(data) + b"\xab\xcd\xefMaxMind.com" + menc)


if __name__ == "__main__":
    main()

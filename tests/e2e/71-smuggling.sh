#!/usr/bin/env bash
# 71-smuggling: a request-smuggling corpus replayed against the real binary.
# Each case is raw request bytes, sent at once on a fresh connection, and what
# must come of them: the status of every response (or "fwd": answered 200 by
# the upstream), whether meshgate closes the connection afterwards, and how
# many requests of the case reached the upstream. Cases whose framing is in
# doubt are refused (400, 501, 505, 414, 431), the connection closed, and
# nothing forwarded. Cases RFC 9112 allows are forwarded, and then what the
# upstream received (its /echo JSON, returned to us) must be unambiguous: one
# framing, the body intact, no hop-by-hop field. A connection said to stay
# open must parse a probe request sent after the answers: the case's bytes
# were framed exactly as expected.
#
# 22-malformed.sh covers the same ground more briefly (and the access log and
# counters); this file is the table to extend when a new vector turns up. In a
# case's bytes {T} stands for its own path (/echo/cNNN), by which its requests
# are counted at the upstream. MG_SMUGGLE_ONLY=ERE runs the cases whose
# description matches.
#
# Choices kept, each RFC-compliant (see the comments at the cases):
# - bare LF ends no line anywhere (request line, fields, chunk lines, trailers),
#   as 22-malformed.sh has it: RFC 9112 §2.2 only says a recipient MAY accept it;
# - identical Content-Length values ("5, 5", two lines of 5, "5" and "05") are
#   one length (RFC 9110 §8.6), forwarded as a single Content-Length;
# - "gzip, chunked" is 501 (RFC 9112 §6.1: a coding we do not implement);
# - empty list elements in Transfer-Encoding are ignored (RFC 9110 §5.6.1), so
#   ", chunked" is chunked; upper case "Chunked" is chunked;
# - up to four empty lines before a request line are skipped (§2.2 asks for at
#   least one), a fifth is 400;
# - request trailers are checked, then dropped (RFC 9110 §6.5.1);
# - Expect: 100-continue is answered by meshgate and not forwarded; only a
#   WebSocket handshake goes up as an upgrade, and a tunnel starts only on the
#   upstream's 101 (76-websocket.sh); other upgrades go up as plain HTTP/1.1;
#   CONNECT is 501;
# - an absolute-form target's authority wins over Host (RFC 9112 §3.2.2).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mg_setup
mg_upstream a --quiet

mg_start_config <<EOF
workers: 2
limits:
  maxHeaderBytes: 4096
  maxHeaders: 20
  maxRequestLineBytes: 1024
EOF
mg_resource_simple a
mg_start

results=$("$PYTHON" - "$MG_PORT" "$MG_STATS" "${MG_SMUGGLE_ONLY:-}" <<'PYEOF'
import hashlib, json, re, socket, sys, time

PORT, STATS, ONLY = int(sys.argv[1]), sys.argv[2], sys.argv[3]

CASES = []


def case(desc, raw, want, conn, up, **checks):
    """want: a status, "fwd" (200 from the upstream) or a list of them, one per
    response; conn: "closed" or "open"; up: requests of the case that reach the
    upstream; checks (forwarded cases, first response): body=bytes, host=str,
    path=str ({T} is the case's path), hdr={name: value, or None for absent};
    count=False when the requests cannot carry the case's path (no upstream count)."""
    CASES.append((desc, raw if isinstance(raw, bytes) else raw.encode("latin-1"),
                  want if isinstance(want, list) else [want], conn, up, checks))


def req(*lines, body=b"", start="POST {T} HTTP/1.1"):
    """Request line, Host: x, the lines, an empty line, the body; all CRLF."""
    head = "\r\n".join((start, "Host: x") + lines) + "\r\n\r\n"
    return head.encode("latin-1") + (body if isinstance(body, bytes) else body.encode("latin-1"))


def get(*lines, body=b""):
    return req(*lines, body=body, start="GET {T} HTTP/1.1")


def chunked(body, *lines):
    return req("Transfer-Encoding: chunked", *lines, body=body)


def bad(desc, raw, status=400):
    """Refused: one response, the connection closed, nothing upstream."""
    case(desc, raw, status, "closed", 0)


def fwd(desc, raw, conn="open", **checks):
    case(desc, raw, "fwd", conn, 1, **checks)


CHUNKED = {"transfer-encoding": "chunked", "content-length": None}

# --- Content-Length -------------------------------------------------------------------
bad("CL then TE", req("Content-Length: 5", "Transfer-Encoding: chunked", body="0\r\n\r\n"))
bad("TE then CL", req("Transfer-Encoding: chunked", "Content-Length: 5", body="0\r\n\r\n"))
bad("TE chunked with CL 0", req("Transfer-Encoding: chunked", "Content-Length: 0",
                                body="0\r\n\r\n"))
bad("TE identity with CL", req("Content-Length: 5", "Transfer-Encoding: identity",
                               body="hello"))
bad("two CL lines that differ", req("Content-Length: 5", "Content-Length: 6", body="hello!"))
bad("CL list 5, 6", req("Content-Length: 5, 6", body="hello!"))
bad("CL list 1, 2", req("Content-Length: 1, 2", body="ab"))
bad("CL 5 then an empty CL", req("Content-Length: 5", "Content-Length:", body="hello"))
bad("CL empty", req("Content-Length:", body="hello"))
bad("CL blank", req("Content-Length:   ", body="hello"))
bad("CL +5", req("Content-Length: +5", body="hello"))
bad("CL -5", req("Content-Length: -5", body="hello"))
bad("CL -0", req("Content-Length: -0"))
bad("CL 0x5", req("Content-Length: 0x5", body="hello"))
bad("CL hex a", req("Content-Length: a", body="helloworld"))
bad("CL 5 5", req("Content-Length: 5 5", body="hello"))
bad("CL 5<HT>5", req("Content-Length: 5\t5", body="hello"))
bad("CL 5.0", req("Content-Length: 5.0", body="hello"))
bad("CL 5e0", req("Content-Length: 5e0", body="hello"))
bad("CL quoted", req('Content-Length: "5"', body="hello"))
bad("CL 5,", req("Content-Length: 5,", body="hello"))
bad("CL ,5", req("Content-Length: ,5", body="hello"))
bad("CL 2^63", req("Content-Length: 9223372036854775808"))
bad("CL 2^64", req("Content-Length: 18446744073709551616"))
bad("CL 2^64 + 5 (wraps to 5)", req("Content-Length: 18446744073709551621", body="hello"))
bad("CL with VT", req("Content-Length: 5\x0b", body="hello"))
bad("CL with NUL", req("Content-Length: 5\x00", body="hello"))
bad("CL with a space before the colon", req("Content-Length : 5", body="hello"))
bad("Content_Length (CGI would read it as Content-Length)",
    req("Content_Length: 5", body="hello"))
# RFC 9110 §8.6: identical values may be taken as one; meshgate forwards one CL.
fwd("CL 5 twice", req("Content-Length: 5", "Content-Length: 5", body="hello"),
    body=b"hello", hdr={"content-length": "5"})
fwd("CL list 5, 5", req("Content-Length: 5, 5", body="hello"), body=b"hello",
    hdr={"content-length": "5"})
fwd("CL 005 (leading zeros)", req("Content-Length: 005", body="hello"), body=b"hello",
    hdr={"content-length": "5"})
fwd("CL 5 and 05", req("Content-Length: 5", "Content-Length: 05", body="hello"),
    body=b"hello", hdr={"content-length": "5"})
fwd("CL without OWS", req("Content-Length:5", body="hello"), body=b"hello")
fwd("CONTENT-LENGTH upper case", req("CONTENT-LENGTH: 5", body="hello"), body=b"hello")
fwd("CL with OWS around", req("Content-Length: \t5 \t", body="hello"), body=b"hello")
fwd("CL 0", req("Content-Length: 0"), body=b"", hdr={"content-length": "0"})

# --- Transfer-Encoding ----------------------------------------------------------------
bad("TE in HTTP/1.0", req("Transfer-Encoding: chunked", body="0\r\n\r\n",
                          start="POST {T} HTTP/1.0"))
bad("TE and keep-alive in HTTP/1.0",
    req("Transfer-Encoding: chunked", "Connection: keep-alive", body="0\r\n\r\n",
        start="POST {T} HTTP/1.0"))
bad("TE chunked, gzip", req("Transfer-Encoding: chunked, gzip", body="0\r\n\r\n"))
bad("TE gzip", req("Transfer-Encoding: gzip", body="0\r\n\r\n"))
bad("TE identity", req("Transfer-Encoding: identity", body="0\r\n\r\n"))
bad("TE chunked, identity", req("Transfer-Encoding: chunked, identity", body="0\r\n\r\n"))
bad("TE chunked, chunked", req("Transfer-Encoding: chunked, chunked", body="0\r\n\r\n"))
bad("TE chunked on two lines", req("Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                                   body="0\r\n\r\n"))
bad("TE xchunked", req("Transfer-Encoding: xchunked", body="0\r\n\r\n"))
bad("TE chunkedx", req("Transfer-Encoding: chunkedx", body="0\r\n\r\n"))
bad("TE chunk", req("Transfer-Encoding: chunk", body="0\r\n\r\n"))
bad("TE quoted", req('Transfer-Encoding: "chunked"', body="0\r\n\r\n"))
bad("TE chunked;q=1", req("Transfer-Encoding: chunked;q=1", body="0\r\n\r\n"))
bad("TE chu nked", req("Transfer-Encoding: chu nked", body="0\r\n\r\n"))
bad("TE chunked then VT", req("Transfer-Encoding: chunked\x0b", body="0\r\n\r\n"))
bad("TE VT then chunked", req("Transfer-Encoding: \x0bchunked", body="0\r\n\r\n"))
bad("TE chunked then FF", req("Transfer-Encoding: chunked\x0c", body="0\r\n\r\n"))
bad("TE chunked then NUL", req("Transfer-Encoding: chunked\x00", body="0\r\n\r\n"))
bad("TE chunked then bare CR", req("Transfer-Encoding: chunked\rX: y", body="0\r\n\r\n"))
bad("TE with obs-text", req("Transfer-Encoding: chunked\xff", body="0\r\n\r\n"))
bad("TE with a space before the colon", req("Transfer-Encoding : chunked", body="0\r\n\r\n"))
bad("TE with a tab before the colon", req("Transfer-Encoding\t: chunked", body="0\r\n\r\n"))
bad("Transfer_Encoding (CGI would read it as Transfer-Encoding)",
    req("Transfer_Encoding: chunked", body="0\r\n\r\n"))
bad("TE as an obs-fold continuation", req("X-A: b", " Transfer-Encoding: chunked",
                                          body="0\r\n\r\n"))
bad("TE value folded onto the next line", req("Transfer-Encoding:", " chunked",
                                              body="0\r\n\r\n"))
bad("TE folded with a tab", req("Transfer-Encoding: gzip,", "\tchunked", body="0\r\n\r\n"))
bad("TE line starting with a space first", b"POST {T} HTTP/1.1\r\n Transfer-Encoding: "
    b"chunked\r\nHost: x\r\n\r\n0\r\n\r\n")
# RFC 9112 §6.1: a coding meshgate does not know before chunked -> 501.
bad("TE gzip, chunked", req("Transfer-Encoding: gzip, chunked", body="0\r\n\r\n"), 501)
bad("TE gzip then chunked on two lines",
    req("Transfer-Encoding: gzip", "Transfer-Encoding: chunked", body="0\r\n\r\n"), 501)
# Names are case-insensitive, and so is the coding (RFC 9112 §7); a leading HTAB
# is OWS; empty list elements are ignored (RFC 9110 §5.6.1). The upstream gets
# a clean "transfer-encoding: chunked".
fwd("TE Chunked", req("Transfer-Encoding: Chunked", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE CHUNKED", req("transfer-encoding: CHUNKED", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TRANSFER-ENCODING upper case", req("TRANSFER-ENCODING: chunked",
                                        body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE <HT>chunked", req("Transfer-Encoding:\tchunked", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE chunked<SP>", req("Transfer-Encoding: chunked ", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE , chunked (empty element)", req("Transfer-Encoding: , chunked",
                                        body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE chunked, then an empty TE line",
    req("Transfer-Encoding: chunked", "Transfer-Encoding:", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("TE chunked, (empty element)", req("Transfer-Encoding: chunked,",
                                       body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)

# --- chunked framing ---------------------------------------------------------------------
bad("chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size +5", chunked("+5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size -5", chunked("-5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size with a leading space", chunked(" 5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size with a leading tab", chunked("\t5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size with a trailing space", chunked("5 \r\nhello\r\n0\r\n\r\n"))
bad("chunk size 5 5", chunked("5 5\r\nhello\r\n0\r\n\r\n"))
bad("chunk size zz", chunked("zz\r\nhello\r\n0\r\n\r\n"))
bad("chunk size 5g", chunked("5g\r\nhello\r\n0\r\n\r\n"))
bad("chunk size missing", chunked("\r\nhello\r\n0\r\n\r\n"))
bad("chunk size of 17 hex digits", chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"))
bad("chunk size 2^64 + 5", chunked("10000000000000005\r\nhello\r\n0\r\n\r\n"))
bad("chunk line ended by bare LF", chunked("5\nhello\r\n0\r\n\r\n"))
bad("chunk line ended by bare CR", chunked("5\rhello\r\n0\r\n\r\n"))
bad("last-chunk ended by bare LF", chunked("5\r\nhello\r\n0\n\r\n"))
bad("last-chunk CR CR LF", chunked("0\r\r\n\r\n"))
bad("all chunk lines bare LF", chunked("5\nhello\n0\n\n"))
bad("chunk data longer than its size", chunked("5\r\nhelloXX\r\n0\r\n\r\n"))
bad("chunk data shorter than its size", chunked("5\r\nhel\r\n0\r\n\r\n"))
bad("no CRLF after chunk data", chunked("5\r\nhello0\r\n\r\n"))
bad("bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"))
bad("bare CR after chunk data", chunked("5\r\nhello\r0\r\n\r\n"))
bad("final CRLF is a bare LF", chunked("5\r\nhello\r\n0\r\n\n"))
bad("chunk-ext with no name", chunked("5;\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext =value only", chunked("5;=b\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext name with a space inside", chunked("5;a b\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext value with a space inside", chunked("5;a=b c\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext a==b", chunked("5;a==b\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext a=<empty>", chunked("5;a=\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext name, BWS, CRLF", chunked("5;a \r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext value, BWS, CRLF", chunked("5;a=b\t\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext ;;", chunked("5;;a\r\nhello\r\n0\r\n\r\n"))
bad("chunk line over 4 KiB", chunked("5;a=" + "b" * 5000 + "\r\nhello\r\n0\r\n\r\n"))
bad("trailer section over 16 KiB",
    chunked("5\r\nhello\r\n0\r\n" + "X-T: %s\r\n" % ("t" * 1000) * 17 + "\r\n"))
bad("chunk-ext with a comma", chunked("5;a=b,c\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext unterminated quote", chunked('5;a="b\r\nhello\r\n0\r\n\r\n'))
bad("chunk-ext quote inside a token", chunked('5;a=b"c"\r\nhello\r\n0\r\n\r\n'))
bad("chunk-ext text after a quoted value", chunked('5;a="b"c\r\nhello\r\n0\r\n\r\n'))
bad("chunk-ext obs-text outside quotes", chunked("5;a=\xff\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext with NUL", chunked("5;a\x00\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext with bare LF", chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext with bare CR", chunked("5;a\rb\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext with VT", chunked("5;a\x0b\r\nhello\r\n0\r\n\r\n"))
bad("chunk-ext on the last-chunk, bare LF", chunked("5\r\nhello\r\n0;a\n\r\n"))
bad("trailer obs-fold", chunked("5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"))
bad("trailer starting with a space", chunked("5\r\nhello\r\n0\r\n X-T: a\r\n\r\n"))
bad("trailer with a space before the colon", chunked("5\r\nhello\r\n0\r\nX-T : a\r\n\r\n"))
bad("trailer name with a bad character", chunked("5\r\nhello\r\n0\r\nX(T): a\r\n\r\n"))
bad("trailer without a colon", chunked("5\r\nhello\r\n0\r\nX-T\r\n\r\n"))
bad("trailer with an empty name", chunked("5\r\nhello\r\n0\r\n: a\r\n\r\n"))
bad("trailer with a bare LF", chunked("5\r\nhello\r\n0\r\nX-T: a\n\r\n"))
bad("trailer with a bare CR", chunked("5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"))
bad("trailer with NUL", chunked("5\r\nhello\r\n0\r\nX-T: a\x00\r\n\r\n"))
bad("trailer with CTL", chunked("5\r\nhello\r\n0\r\nX-T: a\x01\r\n\r\n"))
fwd("chunk size with leading zeros (16 digits)",
    chunked("0000000000000005\r\nhello\r\n0\r\n\r\n"), body=b"hello", hdr=CHUNKED)
fwd("chunk size in upper-case hex", chunked("A\r\nhelloworld\r\n0\r\n\r\n"),
    body=b"helloworld", hdr=CHUNKED)
fwd("chunk-ext name=value", chunked("5;a=b\r\nhello\r\n0\r\n\r\n"), body=b"hello")
fwd("chunk-ext name only", chunked("5;a\r\nhello\r\n0\r\n\r\n"), body=b"hello")
fwd("chunk-ext quoted value", chunked('5;a="b c;d=e"\r\nhello\r\n0\r\n\r\n'), body=b"hello")
fwd("chunk-ext quoted-pair", chunked('5;a="b\\"c"\r\nhello\r\n0\r\n\r\n'), body=b"hello")
fwd("chunk-ext quoted obs-text", chunked('5;a="\xff"\r\nhello\r\n0\r\n\r\n'), body=b"hello")
fwd("chunk-ext empty quoted value", chunked('5;a=""\r\nhello\r\n0\r\n\r\n'), body=b"hello")
fwd("chunk-ext several", chunked("5;a=b;c;d=e\r\nhello\r\n0\r\n\r\n"), body=b"hello")
fwd("chunk-ext with BWS", chunked("5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n"), body=b"hello")
fwd("chunk-ext on the last-chunk", chunked("5\r\nhello\r\n0;end=1\r\n\r\n"), body=b"hello")
fwd("several chunks", chunked("3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"), body=b"hello")
fwd("empty chunked body", chunked("0\r\n\r\n"), body=b"", hdr=CHUNKED)
# Request trailers are validated and dropped (RFC 9110 §6.5.1 lets a recipient
# that decodes chunked discard them); framing names there change nothing.
fwd("well-formed trailers", chunked("5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: \t2 \r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("trailer Content-Length", chunked("5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("trailer Transfer-Encoding", chunked("5\r\nhello\r\n0\r\nTransfer-Encoding: gzip\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
fwd("trailer Host", chunked("5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"), body=b"hello", host="x")
case("chunked body then a pipelined request",
     chunked("5\r\nhello\r\n0\r\n\r\nGET {T}/2 HTTP/1.1\r\nHost: x\r\n\r\n"),
     ["fwd", "fwd"], "open", 2, body=b"hello")
case("chunked body, trailer, then a pipelined request",
     chunked("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET {T}/2 HTTP/1.1\r\nHost: x\r\n\r\n"),
     ["fwd", "fwd"], "open", 2, body=b"hello")

# --- field syntax ---------------------------------------------------------------------------
bad("obs-fold", get("X-A: b", " c"))
bad("obs-fold with a tab", get("X-A: b", "\tc"))
bad("obs-fold of Host", get("X-A: b", " Host: y"))
bad("whitespace-only line", get("X-A: b", " "))
bad("space before the colon", get("X-A : b"))
bad("space inside a name", get("X A: b"))
bad("empty name", get(": b"))
bad("no colon", get("X-A"))
bad("NUL in a name", get("X\x00A: b"))
bad("CTL in a name", get("X\x01A: b"))
bad("parenthesis in a name", get("X(A): b"))
bad("slash in a name", get("X/A: b"))
bad("UTF-8 in a name", get("X\xc3\xa9: b"))
bad("NUL in a value", get("X-A: a\x00b"))
bad("CTL in a value", get("X-A: a\x01b"))
bad("ESC in a value", get("X-A: a\x1bb"))
bad("DEL in a value", get("X-A: a\x7fb"))
bad("bare CR in a value", get("X-A: a\rb"))
bad("bare CR ending a field", b"GET {T} HTTP/1.1\r\nHost: x\r\nX-A: b\r\r\n\r\n")
bad("bare CR ending the head", b"GET {T} HTTP/1.1\r\nHost: x\r\n\r\r\n")
bad("bare LF in the head", b"GET {T} HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n")
bad("bare LF ending the head", b"GET {T} HTTP/1.1\r\nHost: x\r\n\n")
bad("head in bare LF only", b"GET {T} HTTP/1.1\nHost: x\n\n")
bad("bare LF after the request line", b"GET {T} HTTP/1.1\nHost: x\r\n\r\n")
bad("too many fields", get(*["X-%d: v" % i for i in range(25)]), 431)
bad("header section over maxHeaderBytes", get("X-Big: " + "b" * 5000), 431)
fwd("obs-text in a value", get("X-A: caf\xe9"), hdr={"x-a": "caf\xe9"})
fwd("empty value", get("X-A:"), hdr={"x-a": ""})
fwd("tabs around a value", get("X-A:\t v \t"), hdr={"x-a": "v"})
fwd("every tchar in a name", get("!#$%&'*+-.^_`|~09AZaz: v"))

# --- request line -------------------------------------------------------------------------------
bad("two spaces after the method", b"GET  {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("two spaces before the version", b"GET {T}  HTTP/1.1\r\nHost: x\r\n\r\n")
bad("tab after the method", b"GET\t{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("tab before the version", b"GET {T}\tHTTP/1.1\r\nHost: x\r\n\r\n")
bad("space before the method", b" GET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("space after the version", b"GET {T} HTTP/1.1 \r\nHost: x\r\n\r\n")
bad("no version", b"GET {T}\r\nHost: x\r\n\r\n")
bad("HTTP/0.9 request", b"GET {T}\r\n\r\n")
bad("lower-case http/1.1", b"GET {T} http/1.1\r\nHost: x\r\n\r\n")
bad("HTTP/1", b"GET {T} HTTP/1\r\nHost: x\r\n\r\n")
bad("HTTP/1.10", b"GET {T} HTTP/1.10\r\nHost: x\r\n\r\n")
bad("HTTP/1.1x", b"GET {T} HTTP/1.1x\r\nHost: x\r\n\r\n")
bad("HTTP/1.1 with a leading zero", b"GET {T} HTTP/01.1\r\nHost: x\r\n\r\n")
bad("HTTP/1.2", b"GET {T} HTTP/1.2\r\nHost: x\r\n\r\n", 505)
bad("HTTP/2.0 over HTTP/1", b"GET {T} HTTP/2.0\r\nHost: x\r\n\r\n", 505)
bad("HTTP/0.9 in a request line", b"GET {T} HTTP/0.9\r\nHost: x\r\n\r\n", 505)
bad("bad method character", b"G@T {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("NUL in the method", b"GE\x00T {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("obs-text in the method", b"G\xc9T {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("space in the target", b"GET {T}/a b HTTP/1.1\r\nHost: x\r\n\r\n")
bad("NUL in the target", b"GET {T}\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
bad("DEL in the target", b"GET {T}\x7f HTTP/1.1\r\nHost: x\r\n\r\n")
bad("obs-text in the target", b"GET {T}\xff HTTP/1.1\r\nHost: x\r\n\r\n")
bad("target not in any form", b"GET echo{T} HTTP/1.1\r\nHost: x\r\n\r\n")
case("asterisk-form with GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "closed", 0,
     count=False)
bad("absolute-form, ftp scheme", b"GET ftp://x{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("absolute-form, no scheme colon", b"GET http//x{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("absolute-form, empty authority", b"GET http://{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("absolute-form with userinfo", b"GET http://u@x{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("absolute-form with a bad port", b"GET http://x:8a{T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("fragment in the target", b"GET {T}#frag HTTP/1.1\r\nHost: x\r\n\r\n")
bad("fragment hiding a dot-segment", b"GET {T}#/../admin HTTP/1.1\r\nHost: x\r\n\r\n")
bad("fragment in an absolute-form target", b"GET http://x{T}#f HTTP/1.1\r\nHost: x\r\n\r\n")
bad("bare CR before the request line", b"\rGET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
bad("request line over maxRequestLineBytes",
    b"GET {T}/" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)
# CONNECT would be a tunnel: meshgate does not do them (documented 501).
case("CONNECT", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 501, "closed", 0,
     count=False)
# The HTTP/2 preface is HTTP/2 only as a connection's first bytes.
case("HTTP/2 preface after a request",
     b"GET {T} HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
     ["fwd", 505], "closed", 1)
fwd("empty line before the request line", b"\r\nGET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
fwd("four empty lines before the request line",
    b"\r\n\r\n\r\n\r\nGET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
# RFC 9112 §2.2 asks to ignore at least one; meshgate bounds the run (4).
bad("five empty lines before the request line",
    b"\r\n\r\n\r\n\r\n\r\nGET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
# Bare LF is refused everywhere (22-malformed.sh), an empty line too.
bad("bare LF before the request line", b"\nGET {T} HTTP/1.1\r\nHost: x\r\n\r\n")
fwd("lower-case method (a token)", b"get {T} HTTP/1.1\r\nHost: x\r\n\r\n")
fwd("extension method", b"PURGE {T} HTTP/1.1\r\nHost: x\r\n\r\n")

# --- Host -------------------------------------------------------------------------------------
bad("two Host fields", get("Host: y"))
bad("two identical Host fields", get("Host: x"))
bad("Host and host", get("host: x"))
bad("HTTP/1.1 without Host", b"GET {T} HTTP/1.1\r\nX-A: b\r\n\r\n")
bad("empty Host", b"GET {T} HTTP/1.1\r\nHost:\r\n\r\n")
bad("Host with a space", b"GET {T} HTTP/1.1\r\nHost: x y\r\n\r\n")
bad("Host with userinfo", b"GET {T} HTTP/1.1\r\nHost: u@x\r\n\r\n")
bad("Host list", b"GET {T} HTTP/1.1\r\nHost: x, y\r\n\r\n")
bad("Host with a path", b"GET {T} HTTP/1.1\r\nHost: x/y\r\n\r\n")
bad("Host with a bad port", b"GET {T} HTTP/1.1\r\nHost: x:99999\r\n\r\n")
bad("absolute-form without Host in HTTP/1.1", b"GET http://x{T} HTTP/1.1\r\n\r\n")
fwd("HTTP/1.0 without Host", b"GET {T} HTTP/1.0\r\n\r\n", conn="closed")
fwd("HTTP/1.0 keep-alive", b"GET {T} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
# RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host,
# for routing and for the Host sent upstream.
fwd("absolute-form, Host disagrees", b"GET http://abs.example{T} HTTP/1.1\r\nHost: x\r\n\r\n",
    host="abs.example")
fwd("absolute-form with a port", b"GET http://abs.example:81{T}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    host="abs.example:81")
fwd("absolute-form, a query and no path",
    b"GET http://abs.example?q={T} HTTP/1.1\r\nHost: x\r\n\r\n", host="abs.example",
    path="/?q={T}")
fwd("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", path="*", count=False)
fwd("absolute-form, upper-case scheme", b"GET HTTP://abs.example{T} HTTP/1.1\r\nHost: x\r\n\r\n",
    host="abs.example")

# --- bodies and pipelining -----------------------------------------------------------------
fwd("GET with a Content-Length body", get("Content-Length: 5", body="hello"), body=b"hello",
    hdr={"content-length": "5", "transfer-encoding": None})
fwd("GET with a chunked body", get("Transfer-Encoding: chunked", body="5\r\nhello\r\n0\r\n\r\n"),
    body=b"hello", hdr=CHUNKED)
INNER = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
fwd("a body that looks like a request", req("Content-Length: %d" % len(INNER), body=INNER),
    body=INNER)
case("two pipelined GETs", get() + b"GET {T}/2 HTTP/1.1\r\nHost: x\r\n\r\n",
     ["fwd", "fwd"], "open", 2)
case("POST with a body, then a GET",
     req("Content-Length: 5", body="hello") + b"GET {T}/2 HTTP/1.1\r\nHost: x\r\n\r\n",
     ["fwd", "fwd"], "open", 2, body=b"hello")
case("POST, a stray CRLF, then a GET",
     req("Content-Length: 5", body="hello") + b"\r\nGET {T}/2 HTTP/1.1\r\nHost: x\r\n\r\n",
     ["fwd", "fwd"], "open", 2, body=b"hello")
# RFC 9112 §6.3 rule 7: no framing, no body; what follows is the next request.
case("POST without framing, then bytes", req(body="hello\r\n\r\n"), ["fwd", 400], "closed", 1,
     body=b"")
bad("CL+TE hiding a request", req("Content-Length: 40", "Transfer-Encoding: chunked",
                                  body="0\r\n\r\nGET {T}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
bad("TE+CL hiding a request", req("Transfer-Encoding: chunked", "Content-Length: 4",
                                  body="5c\r\nGET {T}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
bad("conflicting CL hiding a request",
    req("Content-Length: 0", "Content-Length: 40",
        body="GET {T}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
bad("TE.TE (one obfuscated) hiding a request",
    req("Transfer-Encoding: chunked", "Transfer-Encoding: x",
        body="0\r\n\r\nGET {T}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
bad("obs-fold, then a pipelined request",
    get("X-A: b", " c") + b"GET {T}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
case("valid request, then a smuggling attempt",
     get() + req("Content-Length: 5", "Transfer-Encoding: chunked", body="0\r\n\r\n"),
     ["fwd", 400], "closed", 1)
case("valid request, then a bad chunk size",
     get() + chunked("0x5\r\nhello\r\n0\r\n\r\n"), ["fwd", 400], "closed", 1)

# --- Expect ---------------------------------------------------------------------------------
case("Expect: 100-continue with its body", req("Expect: 100-continue", "Content-Length: 5",
                                               body="hello"),
     [100, "fwd"], "open", 1, body=b"hello", hdr={"expect": None})
case("Expect: 100-Continue (case)", req("Expect: 100-Continue", "Content-Length: 5",
                                        body="hello"),
     [100, "fwd"], "open", 1, body=b"hello", hdr={"expect": None})
case("Expect: 100-continue, then a bad chunk",
     chunked("5\r\nhello\r\nzz\r\n", "Expect: 100-continue"), [100, 400], "closed", 0)
case("Expect: 100-continue, chunked", chunked("5\r\nhello\r\n0\r\n\r\n", "Expect: 100-continue"),
     [100, "fwd"], "open", 1, body=b"hello", hdr={"expect": None})
fwd("Expect: 100-continue with CL 0", req("Expect: 100-continue", "Content-Length: 0"),
    body=b"", hdr={"expect": None})
fwd("Expect: 100-continue without a body", get("Expect: 100-continue"), hdr={"expect": None})
fwd("Expect: 100-continue in HTTP/1.0",
    req("Expect: 100-continue", "Content-Length: 5", body="hello", start="POST {T} HTTP/1.0"),
    conn="closed", body=b"hello", hdr={"expect": None})
fwd("Expect with another value", req("Expect: 200-ok", "Content-Length: 5", body="hello"),
    body=b"hello", hdr={"expect": None})
bad("Expect: 100-continue with CL+TE", req("Expect: 100-continue", "Content-Length: 5",
                                           "Transfer-Encoding: chunked", body="0\r\n\r\n"))

# --- Connection, Upgrade and other hop-by-hop fields ---------------------------------------------
# Only a WebSocket handshake goes up as an upgrade (the test upstream answers it with a
# 200, so the connection stays HTTP/1.1, as it does for every other upgrade, which goes
# up as plain HTTP/1.1).
fwd("Upgrade: h2c", get("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                        "HTTP2-Settings: AAMAAABkAAQAAP__"),
    hdr={"upgrade": None, "http2-settings": None, "connection": None})
fwd("Upgrade: websocket", get("Connection: Upgrade", "Upgrade: websocket",
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                              "Sec-WebSocket-Version: 13"),
    websocket=True, hdr={"upgrade": "websocket", "connection": "upgrade"})
fwd("Connection: close, Upgrade", get("Connection: close, Upgrade", "Upgrade: h2c"),
    conn="closed", hdr={"upgrade": None})
fwd("Connection: close", get("Connection: close"), conn="closed")
fwd("Connection names a field", get("Connection: keep-alive, X-Secret", "X-Secret: s"),
    hdr={"x-secret": None})
fwd("Keep-Alive and Proxy-Connection", get("Keep-Alive: timeout=5",
                                          "Proxy-Connection: keep-alive"),
    hdr={"keep-alive": None, "proxy-connection": None})
fwd("TE: trailers kept", get("TE: trailers"), hdr={"te": "trailers"})
fwd("TE: gzip dropped", get("TE: gzip"), hdr={"te": None})
fwd("Connection: Content-Length", req("Connection: Content-Length", "Content-Length: 5",
                                      body="hello"),
    body=b"hello", hdr={"content-length": "5"})
fwd("Connection: Transfer-Encoding",
    req("Connection: Transfer-Encoding", "Transfer-Encoding: chunked",
        body="5\r\nhello\r\n0\r\n\r\n"), body=b"hello", hdr=CHUNKED)
fwd("Connection: Host", get("Connection: Host"), host="x")


# ---- the driver -----------------------------------------------------------------------------

class Closed(Exception):
    pass


class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.buf = b""

    def more(self):
        try:
            b = self.s.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            raise Closed()
        self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def take(self, n):
        while len(self.buf) < n:
            self.more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """(status, headers, body) of the next response."""
        status = int(self.line().split(b" ")[1])
        hdrs = {}
        while True:
            ln = self.line()
            if not ln:
                break
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
        if status < 200:
            return status, hdrs, b""
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                n = int(self.line().split(b";")[0], 16)
                if n == 0:
                    while self.line():
                        pass
                    return status, hdrs, body
                body += self.take(n)
                self.take(2)
        return status, hdrs, self.take(int(hdrs.get("content-length", "0")))

    def end(self, wait):
        """What follows the expected responses: "closed" (FIN or RST within wait
        seconds), "open" (silence), or "extra bytes" (more than was expected)."""
        self.s.settimeout(wait)
        try:
            while not self.buf:
                b = self.s.recv(65536)
                if not b:
                    return "closed"
                self.buf += b
        except ConnectionResetError:
            return "closed" if not self.buf else "extra bytes"
        except socket.timeout:
            return "open"
        return "extra bytes"


def upstream_targets():
    with open(STATS, encoding="latin-1") as f:
        return [ln.split(" ", 4)[4].rstrip("\n") for ln in f if ln.count(" ") >= 4]


def count_for(targets, tag):
    r = re.compile(re.escape(tag) + "(?![0-9])")
    return sum(1 for t in targets if r.search(t))


HOP = ("connection", "keep-alive", "proxy-connection", "upgrade", "expect")


def check_echo(doc, checks, tag):
    """What is wrong with a forwarded request, as the upstream saw it."""
    errs = []
    h = doc.get("headers", {})
    cl, te = h.get("content-length"), h.get("transfer-encoding")
    if cl is not None and te is not None:
        errs.append("upstream got both Content-Length and Transfer-Encoding")
    if isinstance(cl, list) or isinstance(te, list):
        errs.append("upstream got a framing field twice")
    if te is not None and te != "chunked":
        errs.append("upstream Transfer-Encoding %r" % te)
    if isinstance(cl, str) and cl != str(doc.get("body_len")):
        errs.append("upstream Content-Length %s for %s bytes" % (cl, doc.get("body_len")))
    for n in HOP:
        # a WebSocket handshake goes up as one (Upgrade: websocket, Connection: upgrade)
        if n in h and not (checks.get("websocket") and
                           (n, h[n]) in (("upgrade", "websocket"), ("connection", "upgrade"))):
            errs.append("hop-by-hop %s forwarded" % n)
    if h.get("te") not in (None, "trailers"):
        errs.append("TE %r forwarded" % h.get("te"))
    if "body" in checks:
        want = checks["body"]
        if doc.get("body_len") != len(want) or \
                doc.get("body_sha256") != hashlib.sha256(want).hexdigest():
            errs.append("upstream body is %s bytes, not %r" % (doc.get("body_len"), want[:40]))
    if "path" in checks and doc.get("path") != checks["path"].replace("{T}", tag):
        errs.append("upstream path %r" % doc.get("path"))
    if "host" in checks and h.get("host") != checks["host"]:
        errs.append("upstream Host %r, not %r" % (h.get("host"), checks["host"]))
    for n, v in checks.get("hdr", {}).items():
        if h.get(n) != v:
            errs.append("upstream %s: %r, not %r" % (n, h.get(n), v))
    return errs


def run(i, desc, raw, want, conn, up, checks):
    tag = "/echo/c%03d" % i
    data = raw.replace(b"{T}", tag.encode())
    before = count_for(upstream_targets(), tag)
    c = Conn()
    errs = []
    got = []
    checked = False  # the checks are about the first forwarded request
    try:
        c.s.sendall(data)
    except OSError:
        pass
    try:
        for w in want:
            status, hdrs, body = c.response()
            got.append(status)
            if w == "fwd":
                if status != 200 or hdrs.get("x-upstream") != "a":
                    errs.append("response %d: %d, not forwarded" % (len(got), status))
                    break
                try:
                    doc = json.loads(body)
                except ValueError:
                    errs.append("response %d: not the upstream's JSON" % len(got))
                    break
                errs += check_echo(doc, {} if checked else checks, tag)
                checked = True
            elif status != w:
                errs.append("response %d: %d, not %d" % (len(got), status, w))
                break
    except (Closed, socket.timeout, OSError, ValueError, IndexError) as e:
        errs.append("after %s: %s" % (got or "no response", type(e).__name__))
    if not errs:
        if conn == "closed":
            end = c.end(3)
            if end != "closed":
                errs.append("after %s: %s, not closed" % (got, end))
        else:
            try:
                c.s.settimeout(5)
                c.s.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status, hdrs, body = c.response()
                if status != 200 or b'"/probe"' not in body:
                    errs.append("probe after the case: %d" % status)
            except (Closed, socket.timeout, OSError, ValueError, IndexError) as e:
                errs.append("connection not usable after %s: %s" % (got, type(e).__name__))
    c.s.close()
    n = count_for(upstream_targets(), tag) - before
    if n != up and checks.get("count", True):
        errs.append("%d request(s) reached the upstream, not %d" % (n, up))
    return errs


start = time.monotonic()
passed = []
for i, (desc, raw, want, conn, up, checks) in enumerate(CASES):
    if ONLY and not re.search(ONLY, desc):
        continue
    if b"{T}" not in raw and checks.get("count", True):
        print("FAIL c%03d %s: the table entry has no {T}: its requests cannot be counted"
              % (i, desc))
        continue
    errs = run(i, desc, raw, want, conn, up, checks)
    exp = "/".join(str(w) for w in want) + ", " + conn
    if errs:
        print("FAIL c%03d %s (want %s): %s" % (i, desc, exp, "; ".join(errs)))
    else:
        print("ok c%03d %s -> %s" % (i, desc, exp))
        passed.append(i)
# Late arrivals: what a case sent must not reach the upstream after we looked.
time.sleep(0.3)
targets = upstream_targets()
for i in passed:
    desc, up, checks = CASES[i][0], CASES[i][4], CASES[i][5]
    if checks.get("count", True) and count_for(targets, "/echo/c%03d" % i) != up:
        print("FAIL c%03d %s: more requests reached the upstream later" % (i, desc))
print("cases %d in %.1f s" % (len(CASES), time.monotonic() - start))
PYEOF
)

ncases=0
while IFS= read -r line; do
	case $line in
	"ok "*) mg_ok "${line#ok }" ;;
	"FAIL "*) mg_fail "${line#FAIL }" ;;
	"cases "*) ncases=${line#cases }; ncases=${ncases%% *}; mg_say "# $line" ;;
	*) mg_say "# $line" ;;
	esac
done <<<"$results"
assert_cmp "$ncases" -ge 100 "the corpus has at least 100 cases"

assert_alive
mg_finish

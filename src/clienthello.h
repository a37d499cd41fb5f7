/* A strict, bounded parser of a TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) for
 * SNI routing without terminating TLS: the passthrough front peeks the first bytes of a
 * connection (recv(MSG_PEEK)), asks this parser for the server_name and the ALPN list, and
 * leaves the bytes in the socket for whoever handles the connection next (the upstream, or
 * meshgate's own TLS server).
 *
 * Input is the raw byte stream: TLS records of content type handshake carrying one
 * ClientHello message, which may be fragmented over several records (each record may arrive
 * in its own TCP segment).  The parser is stateless: call it again with the longer prefix.
 *
 * Strictness: record type 22 only (no SSLv2-compatible hello, no interleaved alert or CCS),
 * record version 3.x, record length 1..2^14, handshake type client_hello, message body at
 * most CLIENTHELLO_MAX bytes, every length field consistent with its container, no trailing
 * bytes inside the message, server_name and ALPN present at most once.  server_name must
 * hold exactly one host_name (what OpenSSL accepts) made of letters, digits, '-', '_' and
 * '.'; ALPN must be a non-empty list of non-empty names.  Bytes after the message (early
 * data, a second record) are not looked at.
 *
 * Bounds: never reads outside buf[0..len), never needs more than CLIENTHELLO_WIRE_MAX bytes
 * (a longer ClientHello is MG_EBAD), and copies at most CLIENTHELLO_MAX + 4 bytes into the
 * caller's scratch (only when the message spans records). */
#ifndef MG_CLIENTHELLO_H
#define MG_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Handshake message body bound: 16 KiB, far above real ClientHellos (OpenSSL ~300 bytes,
 * browsers with post-quantum key shares ~1.8 KiB). */
#define CLIENTHELLO_MAX 16384
/* Scratch the caller provides: the reassembled message (4-byte header + body). */
#define CLIENTHELLO_SCRATCH (CLIENTHELLO_MAX + 4)
/* Wire bound: the message plus the headers of the records carrying it.  Small records cost
 * 5 bytes each, so a hello cut into tiny fragments runs into this first. */
#define CLIENTHELLO_WIRE_MAX (CLIENTHELLO_SCRATCH + 2048)

struct clienthello {
	uint16_t version; /* legacy_version (0x0303 for TLS 1.2 and 1.3) */
	bool tls13;       /* supported_versions offers TLS 1.3 */
	const char *sni;  /* host_name as sent (case kept, no NUL), or NULL: no server_name */
	size_t sni_len;
	const uint8_t *alpn; /* ProtocolNameList contents (1-byte length + name, repeated) */
	size_t alpn_len;     /* 0: no ALPN extension */
	size_t wire_len;     /* bytes of the records that carried the message */
};

/* Parse the ClientHello at the start of buf.  Returns MG_OK (ch filled; its pointers point
 * into buf or into scratch), MG_AGAIN (a valid prefix: read more, up to CLIENTHELLO_WIRE_MAX
 * bytes in all) or MG_EBAD (*why says what, a static string).  scratch holds
 * CLIENTHELLO_SCRATCH bytes. */
int clienthello_parse(const uint8_t *buf, size_t len, uint8_t *scratch, struct clienthello *ch,
		      const char **why);

/* Whether a connection's first bytes (len >= 1) are a TLS handshake record (content type
 * 22), as the first byte of every TLS client's first flight is; an HTTP/1.x request starts
 * with a method token, which never holds that byte.  For ports that take both (PeerAuthentication
 * PERMISSIVE). */
bool clienthello_is_tls(const uint8_t *buf, size_t len);

/* The body of a server_name extension (RFC 6066 §3) holding exactly one host_name; shared
 * with the terminating side (tls_sni.c) so both read SNI alike.  Returns MG_OK with the name
 * (not validated) or MG_EBAD. */
int clienthello_sni_ext(const uint8_t *p, size_t len, const uint8_t **name, size_t *nlen);

/* A host name that may be routed on and logged: 1..255 bytes of letters, digits, '-', '_'
 * and '.'. */
bool clienthello_host_valid(const uint8_t *s, size_t n);

/* Walk an ALPN list: *off starts at 0; returns false at the end. */
bool clienthello_alpn_next(const struct clienthello *ch, size_t *off, const uint8_t **name,
			   size_t *nlen);

#endif

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxyproto.h"

/* Version 1 is one text line of at most 107 bytes, CRLF included. */
#define PP1_MAX 107

static const unsigned char pp2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
						0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static int pp_fail(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

/* A port: decimal, 0..65535, no leading zero (the specification writes them so). */
static bool pp1_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static bool pp1_addr(int family, const char *s, size_t len, uint16_t port,
		     struct sockaddr_storage *out)
{
	char text[INET6_ADDRSTRLEN];

	if (len == 0 || len >= sizeof(text))
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)out;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		return inet_pton(AF_INET, text, &in->sin_addr) == 1;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	return inet_pton(AF_INET6, text, &in6->sin6_addr) == 1;
}

/* "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n", "PROXY UNKNOWN ...\r\n" */
static int pp1_parse(const unsigned char *buf, size_t len, struct proxyproto *out, const char **why)
{
	const char *s = (const char *)buf, *end, *f[5];
	size_t flen[5], at = 11, nf = 0, line;
	uint16_t sport, dport;
	int family;

	/* the CR at byte 105 at the latest, the LF after it */
	end = memchr(s, '\r', len < PP1_MAX - 1 ? len : PP1_MAX - 1);
	if (end == NULL)
		return len < PP1_MAX - 1 ? 0 : pp_fail(why, "version 1 line longer than 107 bytes");
	line = (size_t)(end - s);
	if (line + 1 >= len)
		return 0; /* the LF is still to come */
	if (end[1] != '\n')
		return pp_fail(why, "version 1 line not ended by CRLF");
	for (size_t i = 0; i < line; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return pp_fail(why, "version 1 line with a control byte");
	out->version = 1;
	if (line >= 13 && memcmp(s + 6, "UNKNOWN", 7) == 0 && (line == 13 || s[13] == ' ')) {
		out->has_addresses = false; /* the rest of the line is to be ignored */
		return (int)line + 2;
	}
	if (line < 11 || (memcmp(s + 6, "TCP4 ", 5) != 0 && memcmp(s + 6, "TCP6 ", 5) != 0))
		return pp_fail(why, "version 1 protocol is not TCP4, TCP6 or UNKNOWN");
	family = s[9] == '4' ? AF_INET : AF_INET6;
	/* four fields, each after exactly one space */
	while (at <= line && nf < 5) {
		const char *sp = memchr(s + at, ' ', line - at);
		size_t n = sp != NULL ? (size_t)(sp - (s + at)) : line - at;

		f[nf] = s + at;
		flen[nf++] = n;
		at += n + 1;
		if (sp == NULL)
			break;
	}
	if (nf != 4 || at != line + 1)
		return pp_fail(why, "version 1 line does not have four fields after the protocol");
	if (!pp1_port(f[2], flen[2], &sport) || !pp1_port(f[3], flen[3], &dport))
		return pp_fail(why, "version 1 port is not a number in 0..65535");
	if (!pp1_addr(family, f[0], flen[0], sport, &out->src) ||
	    !pp1_addr(family, f[1], flen[1], dport, &out->dst))
		return pp_fail(why, "version 1 address is not one of the protocol's family");
	out->has_addresses = true;
	return (int)line + 2;
}

/* The TLVs after the addresses must tile the rest exactly. */
static bool pp2_tlvs_ok(const unsigned char *p, size_t len)
{
	while (len > 0) {
		size_t n;

		if (len < 3)
			return false;
		n = ((size_t)p[1] << 8) | p[2];
		if (n > len - 3)
			return false;
		p += 3 + n;
		len -= 3 + n;
	}
	return true;
}

static int pp2_parse(const unsigned char *buf, size_t len, struct proxyproto *out, const char **why)
{
	size_t body, need_addr;
	unsigned cmd, fam, proto;

	if (len < 16)
		return 0;
	if ((buf[12] >> 4) != 2)
		return pp_fail(why, "version 2 header of another version");
	cmd = buf[12] & 0x0f;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0f;
	body = ((size_t)buf[14] << 8) | buf[15];
	if (cmd > 1)
		return pp_fail(why, "version 2 command is neither LOCAL nor PROXY");
	if (fam > 3 || proto > 2)
		return pp_fail(why, "version 2 address family or protocol unknown");
	if (16 + body > PROXYPROTO_MAX)
		return pp_fail(why, "version 2 header longer than meshgate accepts");
	if (len < 16 + body)
		return 0;
	out->version = 2;
	out->has_addresses = false;
	need_addr = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
	if (body < need_addr)
		return pp_fail(why, "version 2 address block shorter than its family's");
	if (!pp2_tlvs_ok(buf + 16 + need_addr, body - need_addr))
		return pp_fail(why, "version 2 TLVs do not fill the header");
	/* LOCAL (a health check of the balancer's own), UNSPEC and unix addresses: the
	 * socket's addresses stand */
	if (cmd == 0 || proto == 0 || fam == 0 || fam == 3)
		return (int)(16 + body);
	memset(&out->src, 0, sizeof(out->src));
	memset(&out->dst, 0, sizeof(out->dst));
	if (fam == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, buf + 16, 4);
		memcpy(&d->sin_addr, buf + 20, 4);
		memcpy(&s->sin_port, buf + 24, 2);
		memcpy(&d->sin_port, buf + 26, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, buf + 16, 16);
		memcpy(&d->sin6_addr, buf + 32, 16);
		memcpy(&s->sin6_port, buf + 48, 2);
		memcpy(&d->sin6_port, buf + 50, 2);
	}
	out->has_addresses = true;
	return (int)(16 + body);
}

int proxyproto_parse(const unsigned char *buf, size_t len, struct proxyproto *out, const char **why)
{
	size_t n;

	*why = NULL;
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (buf[0] == pp2_signature[0]) {
		n = len < sizeof(pp2_signature) ? len : sizeof(pp2_signature);
		if (memcmp(buf, pp2_signature, n) != 0)
			return pp_fail(why, "not a PROXY protocol header");
		return n < sizeof(pp2_signature) ? 0 : pp2_parse(buf, len, out, why);
	}
	n = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", n) != 0)
		return pp_fail(why, "not a PROXY protocol header");
	return n < 6 ? 0 : pp1_parse(buf, len, out, why);
}

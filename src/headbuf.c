#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <event2/buffer.h>

#include "headbuf.h"

void headbuf_flush(struct headbuf *hb)
{
	if (hb->len > 0)
		evbuffer_add(hb->dst, hb->buf, hb->len);
	hb->len = 0;
}

void headbuf_add_slow(struct headbuf *hb, const void *p, size_t n)
{
	headbuf_flush(hb);
	if (n <= HEADBUF_SIZE) {
		memcpy(hb->buf, p, n);
		hb->len = n;
	} else {
		evbuffer_add(hb->dst, p, n);
	}
}

/* v in decimal, ending just before end: its first digit. */
static char *u64_digits(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return end;
}

size_t headbuf_u64_text(char out[20], uint64_t v)
{
	char tmp[20], *p = u64_digits(tmp + sizeof(tmp), v);
	size_t n = (size_t)(tmp + sizeof(tmp) - p);

	memcpy(out, p, n);
	return n;
}

void headbuf_u64(struct headbuf *hb, uint64_t v)
{
	char tmp[20], *p = u64_digits(tmp + sizeof(tmp), v);

	headbuf_add(hb, p, (size_t)(tmp + sizeof(tmp) - p));
}

void headbuf_header(struct headbuf *hb, const char *name, size_t nlen, const char *value,
		    size_t vlen)
{
	size_t need = nlen + vlen + 4;

	if (need <= HEADBUF_SIZE - hb->len) {
		char *p = hb->buf + hb->len;

		memcpy(p, name, nlen);
		p += nlen;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, value, vlen);
		p += vlen;
		*p++ = '\r';
		*p = '\n';
		hb->len += need;
		return;
	}
	headbuf_add(hb, name, nlen);
	headbuf_add(hb, ": ", 2);
	headbuf_add(hb, value, vlen);
	headbuf_add(hb, "\r\n", 2);
}

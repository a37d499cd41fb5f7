#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

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

void headbuf_u64(struct headbuf *hb, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	headbuf_add(hb, tmp + i, sizeof(tmp) - i);
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

/* A message head built in a buffer on the stack and handed to an evbuffer in one piece.
 *
 * A head written straight into a connection's output costs an evbuffer_add (and the output
 * buffer's callbacks) per fragment, four per header line, and printf for numbers: about a
 * third of the instructions of a proxied request under callgrind.  Here fragments are
 * copies into one buffer; a head larger than the buffer spills in order. */
#ifndef MG_HEADBUF_H
#define MG_HEADBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct evbuffer;

#define HEADBUF_SIZE 4096

struct headbuf {
	struct evbuffer *dst;
	size_t len;
	char buf[HEADBUF_SIZE];
};

static inline void headbuf_init(struct headbuf *hb, struct evbuffer *dst)
{
	hb->dst = dst;
	hb->len = 0;
}

/* Hand what is buffered to the destination (the builder stays usable). */
void headbuf_flush(struct headbuf *hb);
/* Bytes that do not fit: flush, then buffer them or add them directly. */
void headbuf_add_slow(struct headbuf *hb, const void *p, size_t n);

static inline void headbuf_add(struct headbuf *hb, const void *p, size_t n)
{
	if (n <= HEADBUF_SIZE - hb->len) {
		memcpy(hb->buf + hb->len, p, n);
		hb->len += n;
		return;
	}
	headbuf_add_slow(hb, p, n);
}

static inline void headbuf_str(struct headbuf *hb, const char *s)
{
	headbuf_add(hb, s, strlen(s));
}

/* A string literal, its length known at compile time. */
#define HEADBUF_LIT(hb, lit) headbuf_add((hb), (lit), sizeof(lit) - 1)

/* Decimal, no printf. */
void headbuf_u64(struct headbuf *hb, uint64_t v);
/* v in decimal at out (20 bytes suffice); its length. */
size_t headbuf_u64_text(char out[20], uint64_t v);
/* "name: value\r\n" */
void headbuf_header(struct headbuf *hb, const char *name, size_t nlen, const char *value,
		    size_t vlen);

#endif

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "node.h"

/* A broken file can produce an error per few bytes; past this many entries only the counts
 * grow, so a hostile config cannot make `-t` output (or memory) explode. */
#define DIAG_MAX_ENTRIES 10000
#define DIAG_PATH_MAX 1024

struct diag_buf {
	char *s;
	size_t n, cap;
};

static void *diag_xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL) {
		fprintf(stderr, "meshgate: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

static void diag_putc(struct diag_buf *b, char c)
{
	if (b->n + 1 >= b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->s = diag_xrealloc(b->s, b->cap);
	}
	b->s[b->n++] = c;
	b->s[b->n] = '\0';
}

/* Appends s with control characters escaped: file names, keys and values come from the
 * config and must not be able to forge extra lines or terminal escapes in the output. */
static void diag_puts(struct diag_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c >= 0x20 && c != 0x7f) {
			diag_putc(b, (char)c);
			continue;
		}
		diag_putc(b, '\\');
		if (c == '\n') {
			diag_putc(b, 'n');
		} else if (c == '\t') {
			diag_putc(b, 't');
		} else if (c == '\r') {
			diag_putc(b, 'r');
		} else {
			diag_putc(b, 'x');
			diag_putc(b, hex[c >> 4]);
			diag_putc(b, hex[c & 15]);
		}
	}
}

static void diag_putf(struct diag_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diag_putf(struct diag_buf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	diag_puts(b, tmp);
}

static void diag_add(struct diag *d, enum diag_level level, struct diag_buf *b)
{
	if (level == DIAG_ERROR)
		d->nerrors++;
	else if (level == DIAG_WARNING)
		d->nwarnings++;
	if (d->n >= DIAG_MAX_ENTRIES) {
		free(b->s);
		return;
	}
	if (d->n + 1 == DIAG_MAX_ENTRIES) {
		free(b->s);
		b->s = strdup("too many diagnostics; the rest are not shown");
		if (b->s == NULL)
			abort();
		level = DIAG_NOTICE;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = diag_xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	d->v[d->n].level = level;
	d->v[d->n].text = b->s ? b->s : strdup("");
	if (d->v[d->n].text == NULL)
		abort();
	d->n++;
}

static void diag_message(struct diag_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void diag_message(struct diag_buf *b, const char *fmt, va_list ap)
{
	char stack[256], *heap;
	va_list aq;
	int len;

	va_copy(aq, ap);
	len = vsnprintf(stack, sizeof(stack), fmt, aq);
	va_end(aq);
	if (len < 0)
		return;
	if ((size_t)len < sizeof(stack)) {
		diag_puts(b, stack);
		return;
	}
	heap = diag_xrealloc(NULL, (size_t)len + 1);
	vsnprintf(heap, (size_t)len + 1, fmt, ap);
	diag_puts(b, heap);
	free(heap);
}

static void diag_level_tag(struct diag_buf *b, enum diag_level level)
{
	if (level == DIAG_WARNING)
		diag_puts(b, "warning: ");
	else if (level == DIAG_NOTICE)
		diag_puts(b, "notice: ");
}

static void diag_vnode(struct diag *d, enum diag_level level, const struct node *n, int col_off,
		       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void diag_vnode(struct diag *d, enum diag_level level, const struct node *n, int col_off,
		       const char *fmt, va_list ap)
{
	struct diag_buf b = {NULL, 0, 0};
	const struct node_doc *doc;
	char path[DIAG_PATH_MAX];

	if (d == NULL)
		return;
	n = node_real(n); /* a ghost: the report needs its field path */
	doc = n ? n->doc : NULL;
	if (doc != NULL && doc->file != NULL) {
		diag_puts(&b, doc->file);
		if (n->line > 0)
			diag_putf(&b, ":%d:%d", n->line, n->col + col_off);
		diag_puts(&b, ": ");
	}
	diag_level_tag(&b, level);
	if (doc != NULL && doc->kind != NULL) {
		diag_puts(&b, doc->kind);
		if (doc->name != NULL) {
			diag_putc(&b, ' ');
			if (doc->ns != NULL) {
				diag_puts(&b, doc->ns);
				diag_putc(&b, '/');
			}
			diag_puts(&b, doc->name);
		}
		diag_puts(&b, ": ");
	}
	if (n != NULL && node_path(n, path, sizeof(path))[0] != '\0') {
		diag_puts(&b, path);
		diag_puts(&b, ": ");
	}
	diag_message(&b, fmt, ap);
	diag_add(d, level, &b);
}

void diag_error_col(struct diag *d, const struct node *n, int col_off, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vnode(d, DIAG_ERROR, n, col_off, fmt, ap);
	va_end(ap);
}

void diag_error_scalar(struct diag *d, const struct node *n, size_t off, const char *msg)
{
	/* the bytes that stand otherwise in the source, by how the scalar was written */
	const char *escaped = n->style == '"' ? "\"\\\n\t\r" : n->style == '\'' ? "'\n" : "\n";
	bool as_written = off <= n->len && n->style != '|' && n->style != '>';

	for (size_t i = 0; as_written && i < off; i++)
		as_written = strchr(escaped, n->str[i]) == NULL;
	if (as_written)
		diag_error_col(d, n, (n->style == '"' || n->style == '\'' ? 1 : 0) + (int)off, "%s",
			       msg);
	else
		diag_error(d, n, "at byte %zu: %s", off, msg);
}

void diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
}

void diag_fini(struct diag *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++)
		free(d->v[i].text);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

void diag_error(struct diag *d, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vnode(d, DIAG_ERROR, n, 0, fmt, ap);
	va_end(ap);
}

void diag_warn(struct diag *d, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vnode(d, DIAG_WARNING, n, 0, fmt, ap);
	va_end(ap);
}

void diag_notice(struct diag *d, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vnode(d, DIAG_NOTICE, n, 0, fmt, ap);
	va_end(ap);
}

void diag_error_at(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
{
	struct diag_buf b = {NULL, 0, 0};
	va_list ap;

	if (d == NULL)
		return;
	if (file != NULL) {
		diag_puts(&b, file);
		if (line > 0 && col > 0)
			diag_putf(&b, ":%d:%d", line, col);
		else if (line > 0)
			diag_putf(&b, ":%d", line);
		diag_puts(&b, ": ");
	}
	va_start(ap, fmt);
	diag_message(&b, fmt, ap);
	va_end(ap);
	diag_add(d, DIAG_ERROR, &b);
}

void diag_print(const struct diag *d, FILE *out)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		fputs(d->v[i].text, out);
		fputc('\n', out);
	}
}

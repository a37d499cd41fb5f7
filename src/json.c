#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Longest number json_number converts: more digits than a double holds are no real claim. */
#define JSON_NUMBER_MAX 64

/* What the parser accepts next. */
enum want {
	W_VALUE,       /* a value: at the top, after ':' and after ',' in an array */
	W_VALUE_CLOSE, /* a value or ']': right after '[' */
	W_NAME,        /* a member name: after ',' in an object */
	W_NAME_CLOSE,  /* a member name or '}': right after '{' */
	W_COLON,       /* ':' after a member name */
	W_AFTER,       /* ',' or the container's close after a value, or the end at the top */
};

static size_t skip_ws(const unsigned char *s, size_t len, size_t p)
{
	while (p < len && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r'))
		p++;
	return p;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits at s[p..p+4) as a code unit, or -1. */
static long hex4(const unsigned char *s, size_t end, size_t p)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		int h = hexval(s[p + k]);

		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* The length of the well-formed UTF-8 sequence at s (a lead byte >= 0x80), or 0.  The
 * second byte's range is what rules out overlongs, surrogates and code points past U+10FFFF
 * (Unicode table 3-7). */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Check the string whose opening quote is at *p; on success *p is its closing quote. */
static bool scan_string(const unsigned char *s, size_t len, size_t *p)
{
	size_t i = *p + 1;

	while (i < len) {
		unsigned char c = s[i];
		long u;

		if (c == '"') {
			*p = i;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c < 0x80 && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(s + i, len - i);

			if (n == 0)
				return false;
			i += n;
			continue;
		}
		if (++i == len)
			return false;
		switch (s[i]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			i++;
			continue;
		case 'u':
			break;
		default:
			return false;
		}
		if ((u = hex4(s, len, i + 1)) < 0 || (u >= 0xdc00 && u <= 0xdfff))
			return false;
		i += 5;
		if (u >= 0xd800 && u <= 0xdbff) {
			/* a high surrogate is only half a character: its low half must follow */
			if (len - i < 6 || s[i] != '\\' || s[i + 1] != 'u')
				return false;
			u = hex4(s, len, i + 2);
			if (u < 0xdc00 || u > 0xdfff)
				return false;
			i += 6;
		}
	}
	return false;
}

/* Check the number starting at *p (RFC 8259 section 6); on success *p is the byte after it. */
static bool scan_number(const unsigned char *s, size_t len, size_t *p)
{
	size_t i = *p;

	if (i < len && s[i] == '-')
		i++;
	if (i == len || s[i] < '0' || s[i] > '9')
		return false;
	/* a leading 0 stands alone; the byte after it is then refused as trailing junk */
	if (s[i++] != '0')
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < len && s[i] == '.') {
		if (++i == len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i == len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	*p = i;
	return true;
}

static void put_utf8(unsigned long cp, unsigned char *out, size_t *n)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		*n = 1;
	} else if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		*n = 2;
	} else if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		*n = 3;
	} else {
		out[0] = (unsigned char)(0xf0 | cp >> 18);
		out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		out[3] = (unsigned char)(0x80 | (cp & 0x3f));
		*n = 4;
	}
}

/* A string's unescaped bytes, one at a time: what json_string writes and what names are
 * compared by, without a buffer. */
struct ustr {
	const unsigned char *s;
	size_t i, end;
	unsigned char b[4];
	size_t n, k;
};

static void ustr_init(struct ustr *u, const char *text, const struct json_tok *t)
{
	u->s = (const unsigned char *)text;
	u->i = t->start;
	u->end = (size_t)t->start + t->len;
	u->n = u->k = 0;
}

/* The next byte, -1 at the end, or -2 when the string is malformed (tokens json_parse
 * made never are; checked anyway since callers pass any index and text). */
static int ustr_next(struct ustr *u)
{
	const unsigned char *s = u->s;
	long cp, lo;

	if (u->k < u->n)
		return u->b[u->k++];
	if (u->i >= u->end)
		return -1;
	if (s[u->i] != '\\')
		return s[u->i++];
	if (u->end - u->i < 2)
		return -2;
	u->i += 2;
	switch (s[u->i - 1]) {
	case '"':
	case '\\':
	case '/':
		return s[u->i - 1];
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'u':
		break;
	default:
		return -2;
	}
	if ((cp = hex4(s, u->end, u->i)) < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
		return -2;
	u->i += 4;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (u->end - u->i < 6 || s[u->i] != '\\' || s[u->i + 1] != 'u')
			return -2;
		lo = hex4(s, u->end, u->i + 2);
		if (lo < 0xdc00 || lo > 0xdfff)
			return -2;
		u->i += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	put_utf8((unsigned long)cp, u->b, &u->n);
	u->k = 1;
	return u->b[0];
}

static bool same_name(const char *text, const struct json_tok *a, const struct json_tok *b)
{
	struct ustr x, y;
	int c;

	ustr_init(&x, text, a);
	ustr_init(&y, text, b);
	do {
		c = ustr_next(&x);
		if (c == -2 || c != ustr_next(&y))
			return false;
	} while (c >= 0);
	return true;
}

int json_parse(const char *text, size_t len, struct json_tok *tok, size_t max)
{
	const unsigned char *s = (const unsigned char *)text;
	uint32_t stack[JSON_MAX_DEPTH]; /* the open containers' token indices */
	size_t depth = 0, n = 0, p = 0;
	enum want want = W_VALUE;

	/* token offsets are uint32_t and the count comes back as an int */
	if ((uint64_t)len > UINT32_MAX)
		return -1;
	if (max > INT_MAX)
		max = INT_MAX;
	for (;;) {
		struct json_tok *t, *top = depth > 0 ? &tok[stack[depth - 1]] : NULL;
		size_t start;

		p = skip_ws(s, len, p);
		if (p == len)
			return want == W_AFTER && depth == 0 ? (int)n : -1;
		switch (want) {
		case W_AFTER:
			if (top == NULL)
				return -1; /* something after the top-level value */
			if (s[p] == ',') {
				want = top->type == JSON_OBJECT ? W_NAME : W_VALUE;
				p++;
				continue;
			}
			if (s[p] != (top->type == JSON_OBJECT ? '}' : ']'))
				return -1;
			goto close;
		case W_COLON:
			if (s[p] != ':')
				return -1;
			want = W_VALUE;
			p++;
			continue;
		case W_NAME_CLOSE:
			if (s[p] == '}')
				goto close;
			/* fall through */
		case W_NAME:
			start = p;
			if (s[p] != '"' || !scan_string(s, len, &p) || n == max)
				return -1;
			t = &tok[n];
			*t = (struct json_tok){.type = JSON_STRING,
					       .start = (uint32_t)start + 1,
					       .len = (uint32_t)(p - start - 1),
					       .next = (uint32_t)n + 1};
			/* earlier members are complete, so their values' next skips to the name
			 * after */
			for (size_t k = stack[depth - 1] + 1; k < n; k = tok[k + 1].next)
				if (same_name(text, &tok[k], t))
					return -1;
			top->size++;
			n++;
			p++;
			want = W_COLON;
			continue;
		case W_VALUE_CLOSE:
			if (s[p] == ']')
				goto close;
			/* fall through */
		case W_VALUE:
			break;
		}

		/* a value */
		if (n == max)
			return -1;
		if (top != NULL && top->type == JSON_ARRAY)
			top->size++;
		t = &tok[n];
		*t = (struct json_tok){.start = (uint32_t)p, .next = (uint32_t)n + 1};
		start = p;
		switch (s[p]) {
		case '{':
		case '[':
			if (depth == JSON_MAX_DEPTH)
				return -1;
			t->type = s[p] == '{' ? JSON_OBJECT : JSON_ARRAY;
			stack[depth++] = (uint32_t)n++;
			want = s[p] == '{' ? W_NAME_CLOSE : W_VALUE_CLOSE;
			p++;
			continue;
		case '"':
			if (!scan_string(s, len, &p))
				return -1;
			t->type = JSON_STRING;
			t->start++;
			t->len = (uint32_t)(p - start - 1);
			p++;
			break;
		case 't':
		case 'f':
		case 'n': {
			static const char *const lit[] = {"null", "false", "true"};
			int k = s[p] == 'n' ? 0 : s[p] == 'f' ? 1 : 2;
			size_t l = strlen(lit[k]);

			if (len - p < l || memcmp(s + p, lit[k], l) != 0)
				return -1;
			t->type = (uint8_t)(JSON_NULL + k);
			t->len = (uint32_t)l;
			p += l;
			break;
		}
		default:
			if (!scan_number(s, len, &p))
				return -1;
			t->type = JSON_NUMBER;
			t->len = (uint32_t)(p - start);
			break;
		}
		n++;
		want = W_AFTER;
		continue;
	close:
		top->len = (uint32_t)(p + 1 - top->start);
		top->next = (uint32_t)n;
		depth--;
		p++;
		want = W_AFTER;
	}
}

int json_get(const char *text, const struct json_tok *tok, int obj, const char *name)
{
	uint32_t k;

	if (obj < 0 || tok[obj].type != JSON_OBJECT)
		return -1;
	k = (uint32_t)obj + 1;
	for (uint32_t m = 0; m < tok[obj].size; m++, k = tok[k + 1].next)
		if (json_string_eq(text, tok, (int)k, name))
			return (int)k + 1;
	return -1;
}

ssize_t json_string(const char *text, const struct json_tok *tok, int i, char *out, size_t cap)
{
	struct ustr u;
	size_t n = 0;
	int c;

	if (i < 0 || tok[i].type != JSON_STRING)
		return -1;
	ustr_init(&u, text, &tok[i]);
	while ((c = ustr_next(&u)) >= 0) {
		/* U+0000 would cut the C string short: "admin\u0000x" is not "admin" */
		if (c == 0 || n + 1 >= cap)
			return -1;
		out[n++] = (char)c;
	}
	if (c == -2 || cap == 0)
		return -1;
	out[n] = '\0';
	return (ssize_t)n;
}

bool json_string_eq(const char *text, const struct json_tok *tok, int i, const char *s)
{
	struct ustr u;

	if (i < 0 || tok[i].type != JSON_STRING)
		return false;
	ustr_init(&u, text, &tok[i]);
	for (; *s != '\0'; s++)
		if (ustr_next(&u) != (unsigned char)*s)
			return false;
	return ustr_next(&u) == -1;
}

bool json_number(const char *text, const struct json_tok *tok, int i, double *out)
{
	char buf[JSON_NUMBER_MAX + 1], *end;
	double v;

	if (i < 0 || tok[i].type != JSON_NUMBER || tok[i].len == 0 || tok[i].len > JSON_NUMBER_MAX)
		return false;
	memcpy(buf, text + tok[i].start, tok[i].len);
	buf[tok[i].len] = '\0';
	v = strtod(buf, &end);
	/* an "exp" of 1e999 must not become a token that never expires */
	if (*end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cel.h"
#include "pool.h"
#include "regex.h"

/*
 * Compilation is a recursive-descent parser over a one-token lexer, producing a tree of
 * nodes whose leaves are literals and attribute lookups.  Everything that can be settled
 * from the text alone is settled then: unknown names, arity, regexes and duration literals,
 * and the places where a non-value (a namespace such as `request`, a header map, a list
 * literal) may stand.  Evaluation is then a walk of at most CEL_MAX_DEPTH frames that only
 * reads the tree and the caller's attributes.
 */

/* Static types beyond enum cel_type: not known before evaluation, and the pseudo-values. */
#define TYPE_DYN 0xff

enum cel_op {
	OP_LIT = 0,
	OP_ATTR,       /* lookup(attr) */
	OP_HEADER,     /* lookup(attr, kids[0]) */
	OP_HAS_ATTR,   /* has(request.path) */
	OP_HAS_HEADER, /* kids[0] in request.headers, has(request.headers.x) */
	OP_NOT,
	OP_NEG,
	OP_AND, /* n-ary, so that a long chain of || stays one level deep */
	OP_OR,
	OP_COND, /* kids[0] ? kids[1] : kids[2] */
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_IN_LIST, /* kids[0] in kids[1], an OP_LIST */
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_MOD,
	OP_CONTAINS,
	OP_STARTS_WITH,
	OP_ENDS_WITH,
	OP_MATCHES, /* kids[0].matches(re) */
	OP_SIZE,
	OP_TO_INT,
	OP_TO_UINT,
	OP_TO_DOUBLE,
	/* Not values: they only exist while parsing, or under an OP_IN_LIST. */
	OP_NAMESPACE, /* `request`: attr is the namespace's index */
	OP_MAP,       /* `request.headers`: attr is the map */
	OP_LIST,
};

struct node {
	uint8_t op;    /* enum cel_op */
	uint8_t attr;  /* enum cel_attr, or a namespace index for OP_NAMESPACE */
	uint8_t depth; /* levels of the tree from here down, this node included */
	uint8_t stype; /* enum cel_type when known at compile time, else TYPE_DYN */
	bool selected; /* written as a.b: what has() accepts */
	uint32_t off;  /* in the source, for messages */
	uint32_t nkids;
	struct node **kids;
	struct cel_value lit;
	const struct pcre2_real_code_8 *re;
};

struct cel_expr {
	const struct node *root;
	uint64_t attrs;
};

/* ---- attributes ---- */

enum { NS_REQUEST = 0, NS_RESPONSE, NS_SOURCE, NS_DESTINATION, NS_CONNECTION, NS_UPSTREAM, NS_XDS };

static const char *const namespaces[] = {"request",    "response", "source", "destination",
					 "connection", "upstream", "xds"};
#define NS_COUNT (sizeof(namespaces) / sizeof(namespaces[0]))

struct attr_def {
	uint8_t ns;
	uint8_t type; /* enum cel_type, or OP_MAP for a header map */
	const char *name;
};

static const struct attr_def attr_defs[CEL_ATTR_COUNT] = {
    [CEL_REQ_PATH] = {NS_REQUEST, CEL_STRING, "request.path"},
    [CEL_REQ_URL_PATH] = {NS_REQUEST, CEL_STRING, "request.url_path"},
    [CEL_REQ_HOST] = {NS_REQUEST, CEL_STRING, "request.host"},
    [CEL_REQ_SCHEME] = {NS_REQUEST, CEL_STRING, "request.scheme"},
    [CEL_REQ_METHOD] = {NS_REQUEST, CEL_STRING, "request.method"},
    [CEL_REQ_HEADERS] = {NS_REQUEST, OP_MAP, "request.headers"},
    [CEL_REQ_REFERER] = {NS_REQUEST, CEL_STRING, "request.referer"},
    [CEL_REQ_USERAGENT] = {NS_REQUEST, CEL_STRING, "request.useragent"},
    [CEL_REQ_ID] = {NS_REQUEST, CEL_STRING, "request.id"},
    [CEL_REQ_PROTOCOL] = {NS_REQUEST, CEL_STRING, "request.protocol"},
    [CEL_REQ_DURATION] = {NS_REQUEST, CEL_DURATION, "request.duration"},
    [CEL_REQ_SIZE] = {NS_REQUEST, CEL_INT, "request.size"},
    [CEL_REQ_TOTAL_SIZE] = {NS_REQUEST, CEL_INT, "request.total_size"},
    [CEL_RESP_CODE] = {NS_RESPONSE, CEL_INT, "response.code"},
    [CEL_RESP_CODE_DETAILS] = {NS_RESPONSE, CEL_STRING, "response.code_details"},
    [CEL_RESP_FLAGS] = {NS_RESPONSE, CEL_INT, "response.flags"},
    [CEL_RESP_GRPC_STATUS] = {NS_RESPONSE, CEL_INT, "response.grpc_status"},
    [CEL_RESP_HEADERS] = {NS_RESPONSE, OP_MAP, "response.headers"},
    [CEL_RESP_SIZE] = {NS_RESPONSE, CEL_INT, "response.size"},
    [CEL_RESP_TOTAL_SIZE] = {NS_RESPONSE, CEL_INT, "response.total_size"},
    [CEL_SRC_ADDRESS] = {NS_SOURCE, CEL_STRING, "source.address"},
    [CEL_SRC_PORT] = {NS_SOURCE, CEL_INT, "source.port"},
    [CEL_DST_ADDRESS] = {NS_DESTINATION, CEL_STRING, "destination.address"},
    [CEL_DST_PORT] = {NS_DESTINATION, CEL_INT, "destination.port"},
    [CEL_CONN_MTLS] = {NS_CONNECTION, CEL_BOOL, "connection.mtls"},
    [CEL_CONN_SNI] = {NS_CONNECTION, CEL_STRING, "connection.requested_server_name"},
    [CEL_CONN_TLS_VERSION] = {NS_CONNECTION, CEL_STRING, "connection.tls_version"},
    [CEL_UPSTREAM_ADDRESS] = {NS_UPSTREAM, CEL_STRING, "upstream.address"},
    [CEL_XDS_CLUSTER] = {NS_XDS, CEL_STRING, "xds.cluster_name"},
    [CEL_XDS_ROUTE] = {NS_XDS, CEL_STRING, "xds.route_name"},
};

const char *cel_attr_name(enum cel_attr attr)
{
	return (unsigned)attr < CEL_ATTR_COUNT ? attr_defs[attr].name : "?";
}

/* The field part of an attribute's name: "url_path" of "request.url_path". */
static const char *attr_field(enum cel_attr attr)
{
	return attr_defs[attr].name + strlen(namespaces[attr_defs[attr].ns]) + 1;
}

/* ---- lexer ---- */

enum tok_kind {
	T_EOF = 0,
	T_LITERAL, /* a number or a string, in val */
	T_IDENT,   /* in s, len */
	T_OP,      /* an operator or punctuation: its text is s, len */
};

struct tok {
	enum tok_kind kind;
	size_t off, end;
	const char *s;
	size_t len;
	/* A string is decoded, NUL-terminated, in the pool.  An int literal's magnitude is
	 * in v.u, up to 2^63: a '-' before it may still make it INT64_MIN. */
	struct cel_value val;
};

struct parser {
	struct pool *pool;
	const char *src;
	size_t len, pos;
	struct tok tok;
	int nest;
	uint64_t attrs;
	bool failed;
	char *err;
	size_t errlen, err_off;
};

/* Record the first error only: what follows it is usually its consequence. */
static void *fail(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void *fail(struct parser *p, size_t off, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return NULL;
	p->failed = true;
	p->err_off = off;
	if (p->err != NULL && p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(char c)
{
	return is_ident_start(c) || is_digit(c);
}

/* Is s[0..len) the word w? */
static bool same(const char *s, size_t len, const char *w)
{
	return strlen(w) == len && memcmp(s, w, len) == 0;
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t skip_space(const char *s, size_t len, size_t i)
{
	while (i < len) {
		if (memchr(" \t\n\r\f", s[i], 5) != NULL) {
			i++;
		} else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
			while (i < len && s[i] != '\n')
				i++;
		} else {
			break;
		}
	}
	return i;
}

static void put_utf8(char *out, size_t *n, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xc0 | cp >> 6);
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xe0 | cp >> 12);
		out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*n)++] = (char)(0xf0 | cp >> 18);
		out[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* Decode the escape whose backslash is at s[*i] into out.  As in CEL string literals, \x,
 * \u, \U and octal escapes name Unicode code points, written out as UTF-8.  No escape
 * decodes longer than it is written, so the caller's buffer of the raw length suffices. */
static bool lex_escape(struct parser *p, size_t *i, char *out, size_t *n)
{
	static const char simple[] = "\\\\''\"\"``??a\ab\bf\fn\nr\rt\tv\v";
	const char *s = p->src, *e;
	size_t at = *i, digits = 0;
	uint32_t cp = 0;
	char c = s[at + 1];

	for (e = simple; *e != '\0'; e += 2)
		if (e[0] == c) {
			out[(*n)++] = e[1];
			*i = at + 2;
			return true;
		}
	if (c == 'x' || c == 'X')
		digits = 2;
	else if (c == 'u')
		digits = 4;
	else if (c == 'U')
		digits = 8;
	if (digits > 0) {
		for (size_t k = 0; k < digits; k++) {
			int h = hex_value(s[at + 2 + k]);

			if (h < 0)
				return fail(p, at, "\\%c needs %zu hex digits", c, digits) != NULL;
			cp = cp << 4 | (uint32_t)h;
		}
		*i = at + 2 + digits;
	} else if (c >= '0' && c <= '3') {
		for (size_t k = 0; k < 3; k++) {
			if (s[at + 1 + k] < '0' || s[at + 1 + k] > '7')
				return fail(p, at, "an octal escape needs 3 digits") != NULL;
			cp = cp << 3 | (uint32_t)(s[at + 1 + k] - '0');
		}
		*i = at + 4;
	} else {
		if (c > 0x20 && c < 0x7f)
			return fail(p, at, "invalid escape sequence '\\%c'", c) != NULL;
		return fail(p, at, "invalid escape sequence") != NULL;
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(p, at, "escape names no Unicode character (U+%X)", (unsigned)cp) !=
		       NULL;
	put_utf8(out, n, cp);
	return true;
}

/* A string literal whose opening quote is at p->pos: '...' "..." or tripled ('''...''',
 * which may span lines); raw (no escapes) after an r prefix, which starts at start. */
static bool lex_string(struct parser *p, size_t start, bool raw)
{
	const char *s = p->src;
	char q = s[p->pos];
	size_t qlen = p->pos + 2 < p->len && s[p->pos + 1] == q && s[p->pos + 2] == q ? 3 : 1;
	size_t i = p->pos + qlen, body = i, n = 0;
	char *out;

	/* Find the end first, so that the decoded copy takes only what it needs. */
	for (;;) {
		if (i >= p->len || (qlen == 1 && (s[i] == '\n' || s[i] == '\r')))
			return fail(p, start, "unterminated string") != NULL;
		if (s[i] == q && (qlen == 1 || (i + 2 < p->len && s[i + 1] == q && s[i + 2] == q)))
			break;
		i += !raw && s[i] == '\\' && i + 1 < p->len ? 2 : 1;
	}
	out = pool_alloc(p->pool, i - body + 1);
	for (size_t k = body; k < i;) {
		if (raw || s[k] != '\\')
			out[n++] = s[k++];
		else if (!lex_escape(p, &k, out, &n))
			return false;
	}
	out[n] = '\0';
	p->tok.kind = T_LITERAL;
	p->tok.val.type = CEL_STRING;
	p->tok.val.v.str.s = out;
	p->tok.val.v.str.len = n;
	p->pos = i + qlen;
	return true;
}

static bool lex_number(struct parser *p)
{
	const char *s = p->src;
	size_t i = p->pos, start = p->pos;
	bool dbl = false, overflow = false;
	uint64_t v = 0;

	if (s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		i += 2;
		if (hex_value(s[i]) < 0)
			return fail(p, start, "0x needs hex digits") != NULL;
		for (; hex_value(s[i]) >= 0; i++) {
			overflow |= v >> 60 != 0;
			v = v << 4 | (uint64_t)hex_value(s[i]);
		}
	} else {
		for (; is_digit(s[i]); i++) {
			overflow |= v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10;
			v = v * 10 + (uint64_t)(s[i] - '0');
		}
		if (s[i] == '.' && is_digit(s[i + 1])) {
			dbl = true;
			for (i++; is_digit(s[i]); i++)
				;
		}
		if ((s[i] == 'e' || s[i] == 'E') &&
		    (is_digit(s[i + 1]) ||
		     ((s[i + 1] == '+' || s[i + 1] == '-') && is_digit(s[i + 2])))) {
			dbl = true;
			for (i += 2; is_digit(s[i]); i++)
				;
		}
	}
	if (dbl) {
		char buf[128];
		char *end;

		if (i - start >= sizeof(buf))
			return fail(p, start, "number literal too long") != NULL;
		memcpy(buf, s + start, i - start);
		buf[i - start] = '\0';
		p->tok.val.type = CEL_DOUBLE;
		p->tok.val.v.d = strtod(buf, &end);
		if (!isfinite(p->tok.val.v.d))
			return fail(p, start, "double literal out of range") != NULL;
	} else if (s[i] == 'u' || s[i] == 'U') {
		if (overflow)
			return fail(p, start, "uint literal out of range") != NULL;
		i++;
		p->tok.val.type = CEL_UINT;
		p->tok.val.v.u = v;
	} else {
		/* Up to 2^63 here: the parser decides whether a '-' makes it fit. */
		if (overflow || v > (uint64_t)INT64_MAX + 1)
			return fail(p, start, "int literal out of range") != NULL;
		p->tok.val.type = CEL_INT;
		p->tok.val.v.u = v;
	}
	p->tok.kind = T_LITERAL;
	if (is_ident(s[i]))
		return fail(p, start, "invalid number literal") != NULL;
	p->pos = i;
	return true;
}

/* Two-character operators first, so that "<=" is not read as "<". */
static const char *const operators[] = {"||", "&&", "==", "!=", "<=", ">=", "(", ")",
					"[",  "]",  "{",  ".",  ",",  ":",  "?", "!",
					"<",  ">",  "+",  "-",  "*",  "/",  "%"};

static bool lex_ident(struct parser *p)
{
	const char *s = p->src;
	size_t i = p->pos, start = p->pos, n;

	while (is_ident(s[i]))
		i++;
	n = i - start;
	/* r, b, rb or br glued to a quote make a raw or a bytes literal. */
	if (n <= 2 && (s[i] == '\'' || s[i] == '"') && strspn(s + start, "rRbB") >= n) {
		bool has_r = memchr(s + start, 'r', n) != NULL || memchr(s + start, 'R', n) != NULL;
		bool has_b = memchr(s + start, 'b', n) != NULL || memchr(s + start, 'B', n) != NULL;

		if (n == 1 || (has_r && has_b)) {
			if (has_b)
				return fail(p, start, "bytes literals are not supported") != NULL;
			p->pos = i;
			return lex_string(p, start, true);
		}
	}
	p->tok.kind = same(s + start, n, "in") ? T_OP : T_IDENT;
	p->tok.s = s + start;
	p->tok.len = n;
	p->pos = i;
	return true;
}

/* Read the next token into p->tok.  On an error the token is T_EOF, so the parser winds
 * down; the error recorded first is the one reported. */
static void advance(struct parser *p)
{
	const char *s = p->src;
	bool ok = true;
	char c;

	p->pos = skip_space(s, p->len, p->pos);
	memset(&p->tok, 0, sizeof(p->tok));
	p->tok.off = p->pos;
	if (p->pos >= p->len) {
		p->tok.end = p->pos;
		return;
	}
	c = s[p->pos];
	if (is_digit(c) || (c == '.' && is_digit(s[p->pos + 1]))) {
		ok = lex_number(p);
	} else if (c == '\'' || c == '"') {
		ok = lex_string(p, p->pos, false);
	} else if (is_ident_start(c)) {
		ok = lex_ident(p);
	} else {
		size_t k;

		for (k = 0; k < sizeof(operators) / sizeof(operators[0]); k++)
			if (strncmp(s + p->pos, operators[k], strlen(operators[k])) == 0)
				break;
		if (k < sizeof(operators) / sizeof(operators[0])) {
			p->tok.kind = T_OP;
			p->tok.s = s + p->pos;
			p->tok.len = strlen(operators[k]);
			p->pos += p->tok.len;
		} else if (c == '=' || c == '&' || c == '|') {
			ok = fail(p, p->pos, "'%c' is not an operator (did you mean '%c%c'?)", c, c,
				  c) != NULL;
		} else if (c > 0x20 && c < 0x7f) {
			ok = fail(p, p->pos, "unexpected character '%c'", c) != NULL;
		} else {
			ok = fail(p, p->pos, "unexpected byte 0x%02x", (unsigned char)c) != NULL;
		}
	}
	if (!ok) {
		memset(&p->tok, 0, sizeof(p->tok));
		p->tok.off = p->tok.end = p->len;
		p->pos = p->len;
		return;
	}
	p->tok.end = p->pos;
}

static void *fail_unexpected(struct parser *p)
{
	const struct tok *t = &p->tok;
	int shown = 0;

	/* The message is one line: quote at most 24 bytes, up to a control character (a
	 * triple-quoted string spans lines). */
	while (shown < 24 && t->off + (size_t)shown < t->end &&
	       (unsigned char)p->src[t->off + (size_t)shown] >= 0x20 &&
	       p->src[t->off + (size_t)shown] != 0x7f)
		shown++;
	if (t->kind == T_EOF)
		return fail(p, t->off, "unexpected end of expression");
	return fail(p, t->off, "unexpected '%.*s'", shown, p->src + t->off);
}

static bool is_op(const struct parser *p, const char *op)
{
	return p->tok.kind == T_OP && same(p->tok.s, p->tok.len, op);
}

static bool expect(struct parser *p, const char *op)
{
	if (!is_op(p, op))
		return fail_unexpected(p) != NULL;
	advance(p);
	return true;
}

/* ---- tree ---- */

static struct node *node_new(struct parser *p, enum cel_op op, size_t off, uint8_t stype)
{
	struct node *n = pool_alloc(p->pool, sizeof(*n));

	n->op = (uint8_t)op;
	n->off = (uint32_t)off;
	n->stype = stype;
	n->depth = 1;
	return n;
}

/* Append a child.  The tree's depth is what the evaluator recurses on, so it is bounded
 * here, whatever the parentheses looked like. */
static struct node *node_add(struct parser *p, struct node *n, struct node *kid)
{
	if (kid == NULL)
		return NULL;
	if (kid->depth + 1 > CEL_MAX_DEPTH)
		return fail(p, n->off, "expression nested more than %d levels deep", CEL_MAX_DEPTH);
	/* Full when the count is 0 or a power of two: doubling keeps a long list linear. */
	if ((n->nkids & (n->nkids - 1)) == 0)
		n->kids = pool_grow(p->pool, n->kids, n->nkids, n->nkids ? n->nkids * 2 : 1,
				    sizeof(*n->kids));
	n->kids[n->nkids++] = kid;
	if (kid->depth + 1 > n->depth)
		n->depth = (uint8_t)(kid->depth + 1);
	return n;
}

static struct node *node_op(struct parser *p, enum cel_op op, size_t off, uint8_t stype,
			    struct node *a, struct node *b)
{
	struct node *n = node_new(p, op, off, stype);

	if (node_add(p, n, a) == NULL || (b != NULL && node_add(p, n, b) == NULL))
		return NULL;
	return n;
}

/* The first attribute of a namespace, to show in a message. */
static const char *ns_example(unsigned ns)
{
	for (unsigned a = 0; a < CEL_ATTR_COUNT; a++)
		if (attr_defs[a].ns == ns)
			return attr_defs[a].name;
	return "request.path";
}

/* Refuse what only looks like a value: a namespace, a header map, a list. */
static struct node *need_value(struct parser *p, struct node *n)
{
	if (n == NULL)
		return NULL;
	switch (n->op) {
	case OP_NAMESPACE:
		return fail(p, n->off, "'%s' is not a value: select an attribute such as %s",
			    namespaces[n->attr], ns_example(n->attr));
	case OP_MAP:
		return fail(p, n->off,
			    "%s is a map: index it (%s['x-name']) or test a key ('x-name' in %s)",
			    attr_defs[n->attr].name, attr_defs[n->attr].name,
			    attr_defs[n->attr].name);
	case OP_LIST:
		return fail(p, n->off, "a list literal is only supported on the right of 'in'");
	default:
		return n;
	}
}

static struct node *literal(struct parser *p, size_t off, enum cel_type type)
{
	struct node *n = node_new(p, OP_LIT, off, (uint8_t)type);

	n->lit.type = type;
	return n;
}

/* ---- parser ---- */

static struct node *parse_expr(struct parser *p);

static bool enter(struct parser *p, size_t off)
{
	if (++p->nest > CEL_MAX_DEPTH)
		return fail(p, off,
			    "more than %d nested parentheses, brackets, calls or conditionals",
			    CEL_MAX_DEPTH) != NULL;
	return true;
}

/* Arguments after a '(' (the current token), and where each starts; up to max are kept,
 * only counted beyond. */
static int parse_args(struct parser *p, struct node **args, size_t *offs, int max)
{
	int n = 0;

	if (!enter(p, p->tok.off))
		return -1;
	advance(p);
	while (!is_op(p, ")")) {
		size_t off = p->tok.off;
		struct node *a = parse_expr(p);

		if (a == NULL)
			return -1;
		if (n < max) {
			args[n] = a;
			offs[n] = off;
		}
		n++;
		if (!is_op(p, ","))
			break;
		advance(p);
	}
	if (!expect(p, ")"))
		return -1;
	p->nest--;
	return n;
}

static bool arity(struct parser *p, const char *name, size_t off, int got, int want)
{
	if (got == want)
		return true;
	return fail(p, off, "%s() takes %d argument%s, not %d", name, want, want == 1 ? "" : "s",
		    got) != NULL;
}

static bool parse_duration(const char *s, size_t len, int64_t *out);

/* matches(): the pattern is compiled now, so it must be a literal. */
static struct node *matches_node(struct parser *p, size_t off, struct node *subject,
				 struct node *pattern)
{
	struct node *n;
	char msg[256];

	if (need_value(p, subject) == NULL || need_value(p, pattern) == NULL)
		return NULL;
	if (pattern->op != OP_LIT || pattern->lit.type != CEL_STRING)
		return fail(p, pattern->off, "matches() takes a string literal as its pattern");
	if (memchr(pattern->lit.v.str.s, '\0', pattern->lit.v.str.len) != NULL)
		return fail(p, pattern->off, "a pattern cannot contain NUL");
	n = node_op(p, OP_MATCHES, off, CEL_BOOL, subject, NULL);
	if (n == NULL)
		return NULL;
	n->re = regex_compile_search(p->pool, pattern->lit.v.str.s, msg, sizeof(msg));
	if (n->re == NULL)
		return fail(p, pattern->off, "invalid regular expression: %s", msg);
	return n;
}

/* has(a.b): true when the attribute, or the map key, is there. */
static struct node *has_node(struct parser *p, size_t off, struct node *arg, size_t argoff)
{
	struct node *n;

	if (arg->op == OP_HEADER && !arg->selected)
		return fail(p, argoff,
			    "has() takes a field selection (has(request.headers.x)); test any "
			    "other key with 'x-name' in %s",
			    attr_defs[arg->attr].name);
	if (!arg->selected || p->src[argoff] == '(')
		return fail(p, argoff, "has() takes a field selection such as has(request.path)");
	if (arg->op == OP_MAP) { /* the maps are always there, empty at worst */
		n = literal(p, off, CEL_BOOL);
		n->lit.v.b = true;
		return n;
	}
	if (arg->op == OP_ATTR) {
		n = node_new(p, OP_HAS_ATTR, off, CEL_BOOL);
		n->attr = arg->attr;
		return n;
	}
	n = node_op(p, OP_HAS_HEADER, off, CEL_BOOL, arg->kids[0], NULL);
	if (n != NULL)
		n->attr = arg->attr;
	return n;
}

static const char known_functions[] =
    "has, size, matches, duration, int, uint, double; methods contains, "
    "startsWith, endsWith, matches, size";

/* A global call name(...), the current token being its '('. */
static struct node *parse_call(struct parser *p, const char *name, size_t len, size_t off)
{
	static const struct {
		const char *name;
		enum cel_op op;
		uint8_t stype;
	} conversions[] = {{"size", OP_SIZE, CEL_INT},
			   {"int", OP_TO_INT, CEL_INT},
			   {"uint", OP_TO_UINT, CEL_UINT},
			   {"double", OP_TO_DOUBLE, CEL_DOUBLE}};
	struct node *args[2], *n;
	size_t offs[2];
	int nargs;

	if (same(name, len, "string") || same(name, len, "bytes"))
		return fail(p, off,
			    "%.*s() is not supported: evaluation builds no strings (Envoy's CEL "
			    "leaves string conversion out too)",
			    (int)len, name);
	if ((nargs = parse_args(p, args, offs, 2)) < 0)
		return NULL;
	if (same(name, len, "has"))
		return arity(p, "has", off, nargs, 1) ? has_node(p, off, args[0], offs[0]) : NULL;
	if (same(name, len, "matches"))
		return arity(p, "matches", off, nargs, 2) ? matches_node(p, off, args[0], args[1])
							  : NULL;
	if (same(name, len, "duration")) {
		if (!arity(p, "duration", off, nargs, 1))
			return NULL;
		if (args[0]->op != OP_LIT || args[0]->lit.type != CEL_STRING)
			return fail(p, args[0]->off, "duration() takes a string literal");
		n = literal(p, off, CEL_DURATION);
		if (!parse_duration(args[0]->lit.v.str.s, args[0]->lit.v.str.len,
				    &n->lit.v.duration_ns))
			return fail(p, args[0]->off,
				    "invalid duration (write e.g. '1.5s', '100ms', '2h45m'; units "
				    "h m s ms us ns)");
		return n;
	}
	for (size_t k = 0; k < sizeof(conversions) / sizeof(conversions[0]); k++)
		if (same(name, len, conversions[k].name)) {
			if (!arity(p, conversions[k].name, off, nargs, 1) ||
			    need_value(p, args[0]) == NULL)
				return NULL;
			return node_op(p, conversions[k].op, off, conversions[k].stype, args[0],
				       NULL);
		}
	return fail(p, off, "unknown function '%.*s' (known: %s)", (int)len, name, known_functions);
}

/* A method call recv.name(...), the current token being its '('. */
static struct node *parse_method(struct parser *p, struct node *recv, const char *name, size_t len,
				 size_t off)
{
	static const struct {
		const char *name;
		enum cel_op op;
		int nargs;
	} methods[] = {{"contains", OP_CONTAINS, 1},
		       {"startsWith", OP_STARTS_WITH, 1},
		       {"endsWith", OP_ENDS_WITH, 1},
		       {"matches", OP_MATCHES, 1},
		       {"size", OP_SIZE, 0}};
	struct node *args[1];
	size_t offs[1];
	size_t k;
	int nargs;

	for (k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
		if (same(name, len, methods[k].name))
			break;
	if (k == sizeof(methods) / sizeof(methods[0]))
		return fail(p, off, "unknown function '%.*s' (known: %s)", (int)len, name,
			    known_functions);
	if (need_value(p, recv) == NULL || (nargs = parse_args(p, args, offs, 1)) < 0 ||
	    !arity(p, methods[k].name, off, nargs, methods[k].nargs))
		return NULL;
	if (methods[k].op == OP_MATCHES)
		return matches_node(p, off, recv, args[0]);
	if (methods[k].op == OP_SIZE)
		return node_op(p, OP_SIZE, off, CEL_INT, recv, NULL);
	return node_op(p, methods[k].op, off, CEL_BOOL, recv, need_value(p, args[0]));
}

/* a.name: an attribute of a namespace, or a key of a header map. */
static struct node *parse_select(struct parser *p, struct node *obj, const char *name, size_t len,
				 size_t off)
{
	struct node *n, *key;
	char known[256];
	size_t used = 0;

	if (obj->op == OP_MAP) {
		key = literal(p, off, CEL_STRING);
		key->lit.v.str.s = pool_strndup(p->pool, name, len);
		key->lit.v.str.len = len;
		n = node_op(p, OP_HEADER, off, CEL_STRING, key, NULL);
		if (n != NULL) {
			n->attr = obj->attr;
			n->selected = true;
		}
		return n;
	}
	if (obj->op != OP_NAMESPACE)
		return fail(p, off,
			    "field selection is only supported on attributes "
			    "(request.path, request.headers.name)");
	known[0] = '\0';
	for (unsigned a = 0; a < CEL_ATTR_COUNT; a++) {
		const char *field = attr_field((enum cel_attr)a);

		if (attr_defs[a].ns != obj->attr)
			continue;
		if (same(name, len, field)) {
			p->attrs |= UINT64_C(1) << a;
			if (attr_defs[a].type == OP_MAP) {
				n = node_new(p, OP_MAP, obj->off, TYPE_DYN);
			} else {
				n = node_new(p, OP_ATTR, obj->off, attr_defs[a].type);
			}
			n->attr = (uint8_t)a;
			n->selected = true;
			return n;
		}
		used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s",
					 used > 0 ? ", " : "", field);
		if (used >= sizeof(known))
			used = sizeof(known) - 1;
	}
	return fail(p, off, "unknown attribute %s.%.*s (%s has: %s)", namespaces[obj->attr],
		    (int)len, name, namespaces[obj->attr], known);
}

static struct node *parse_list(struct parser *p)
{
	struct node *list = node_new(p, OP_LIST, p->tok.off, TYPE_DYN);

	if (!enter(p, p->tok.off))
		return NULL;
	advance(p);
	while (!is_op(p, "]")) {
		if (node_add(p, list, need_value(p, parse_expr(p))) == NULL)
			return NULL;
		if (!is_op(p, ","))
			break;
		advance(p);
	}
	if (!expect(p, "]"))
		return NULL;
	p->nest--;
	return list;
}

static struct node *parse_primary(struct parser *p)
{
	struct tok t = p->tok;
	struct node *n;

	switch (t.kind) {
	case T_LITERAL:
		if (t.val.type == CEL_INT && t.val.v.u > INT64_MAX)
			return fail(p, t.off, "int literal out of range");
		advance(p);
		n = literal(p, t.off, t.val.type);
		n->lit = t.val;
		return n;
	case T_IDENT:
		advance(p);
		if (same(t.s, t.len, "true")) {
			n = literal(p, t.off, CEL_BOOL);
			n->lit.v.b = true;
			return n;
		}
		if (same(t.s, t.len, "false"))
			return literal(p, t.off, CEL_BOOL);
		if (same(t.s, t.len, "null"))
			return literal(p, t.off, CEL_NULL);
		if (is_op(p, "("))
			return parse_call(p, t.s, t.len, t.off);
		for (unsigned k = 0; k < NS_COUNT; k++)
			if (same(t.s, t.len, namespaces[k])) {
				n = node_new(p, OP_NAMESPACE, t.off, TYPE_DYN);
				n->attr = (uint8_t)k;
				return n;
			}
		return fail(p, t.off,
			    "unknown identifier '%.*s' (known: request, response, source, "
			    "destination, connection, upstream, xds)",
			    (int)t.len, t.s);
	default:
		break;
	}
	if (is_op(p, "(")) {
		if (!enter(p, t.off))
			return NULL;
		advance(p);
		n = parse_expr(p);
		if (n == NULL || !expect(p, ")"))
			return NULL;
		p->nest--;
		return n;
	}
	if (is_op(p, "["))
		return parse_list(p);
	if (is_op(p, "{"))
		return fail(p, t.off, "map literals are not supported");
	return fail_unexpected(p);
}

static struct node *parse_member(struct parser *p)
{
	struct node *n = parse_primary(p);

	while (n != NULL) {
		if (is_op(p, ".")) {
			struct tok name;

			advance(p);
			name = p->tok;
			if (name.kind != T_IDENT)
				return fail_unexpected(p);
			advance(p);
			if (is_op(p, "("))
				n = parse_method(p, n, name.s, name.len, name.off);
			else
				n = parse_select(p, n, name.s, name.len, name.off);
		} else if (is_op(p, "[")) {
			struct node *key, *map = n;
			size_t off = p->tok.off;

			if (map->op != OP_MAP)
				return fail(p, off,
					    "only request.headers and response.headers can "
					    "be indexed");
			if (!enter(p, off))
				return NULL;
			advance(p);
			key = need_value(p, parse_expr(p));
			if (key == NULL || !expect(p, "]"))
				return NULL;
			p->nest--;
			n = node_op(p, OP_HEADER, map->off, CEL_STRING, key, NULL);
			if (n != NULL)
				n->attr = map->attr;
		} else {
			break;
		}
	}
	return n;
}

/* Does a member access (.x, [k] or a call) follow the current token? */
static bool member_follows(const struct parser *p)
{
	char c = p->src[skip_space(p->src, p->len, p->tok.end)];

	return c == '.' || c == '[' || c == '(';
}

static struct node *parse_unary(struct parser *p)
{
	size_t off[CEL_MAX_DEPTH];
	bool neg[CEL_MAX_DEPTH];
	struct node *n;
	int nops = 0;

	while (is_op(p, "!") || is_op(p, "-")) {
		if (nops == CEL_MAX_DEPTH)
			return fail(p, p->tok.off, "more than %d unary operators in a row",
				    CEL_MAX_DEPTH);
		off[nops] = p->tok.off;
		neg[nops++] = is_op(p, "-");
		advance(p);
	}
	/* -9223372036854775808 is a literal, not the negation of one out of range; but -1.x
	 * would be -(1.x). */
	if (nops > 0 && neg[nops - 1] && p->tok.kind == T_LITERAL && p->tok.val.type == CEL_INT &&
	    !member_follows(p)) {
		n = literal(p, off[nops - 1], CEL_INT);
		n->lit.v.i = (int64_t)(0 - p->tok.val.v.u);
		advance(p);
		nops--;
	} else if ((n = parse_member(p)) == NULL) {
		return NULL;
	}
	while (nops-- > 0) {
		uint8_t stype = CEL_BOOL;

		if (neg[nops])
			stype = n->stype == CEL_INT || n->stype == CEL_DOUBLE ? n->stype : TYPE_DYN;
		n = node_op(p, neg[nops] ? OP_NEG : OP_NOT, off[nops], stype, need_value(p, n),
			    NULL);
		if (n == NULL)
			return NULL;
	}
	return n;
}

static const struct {
	const char *text;
	enum cel_op op;
	int level;
} binops[] = {
    {"==", OP_EQ, 0}, {"!=", OP_NE, 0}, {"<", OP_LT, 0},       {"<=", OP_LE, 0},
    {">", OP_GT, 0},  {">=", OP_GE, 0}, {"in", OP_IN_LIST, 0}, {"+", OP_ADD, 1},
    {"-", OP_SUB, 1}, {"*", OP_MUL, 2}, {"/", OP_DIV, 2},      {"%", OP_MOD, 2},
};

static struct node *binary_node(struct parser *p, enum cel_op op, size_t off, struct node *a,
				struct node *b)
{
	struct node *n;
	uint8_t stype;

	if (op == OP_IN_LIST) {
		if (b->op == OP_LIST)
			return node_op(p, OP_IN_LIST, off, CEL_BOOL, need_value(p, a), b);
		if (b->op != OP_MAP)
			return fail(p, b->off,
				    "the right of 'in' must be a list literal or a "
				    "header map");
		n = node_op(p, OP_HAS_HEADER, off, CEL_BOOL, need_value(p, a), NULL);
		if (n != NULL)
			n->attr = b->attr;
		return n;
	}
	if (need_value(p, a) == NULL || need_value(p, b) == NULL)
		return NULL;
	if (op >= OP_EQ && op <= OP_GE)
		return node_op(p, op, off, CEL_BOOL, a, b);
	if (op == OP_ADD && (a->stype == CEL_STRING || b->stype == CEL_STRING))
		return fail(p, off,
			    "string concatenation is not supported (Envoy's CEL leaves it "
			    "out too)");
	/* only what concatenation refusal needs: a sum of strings is known to be one */
	stype = a->stype == b->stype ? a->stype : TYPE_DYN;
	return node_op(p, op, off, stype, a, b);
}

/* Left-associative binary operators: relations (level 0), + - (1), * / % (2). */
static struct node *parse_binary(struct parser *p, int level)
{
	struct node *n = level == 2 ? parse_unary(p) : parse_binary(p, level + 1);

	while (n != NULL) {
		size_t k, off = p->tok.off;

		for (k = 0; k < sizeof(binops) / sizeof(binops[0]); k++)
			if (binops[k].level == level && is_op(p, binops[k].text))
				break;
		if (k == sizeof(binops) / sizeof(binops[0]))
			break;
		advance(p);
		{
			struct node *b = level == 2 ? parse_unary(p) : parse_binary(p, level + 1);

			n = b == NULL ? NULL : binary_node(p, binops[k].op, off, n, b);
		}
	}
	return n;
}

/* a && b && c (or ||) as one n-ary node. */
static struct node *parse_logic(struct parser *p, bool is_or)
{
	const char *tk = is_or ? "||" : "&&";
	struct node *n = is_or ? parse_logic(p, false) : parse_binary(p, 0), *all;

	if (n == NULL || !is_op(p, tk))
		return n;
	all = node_op(p, is_or ? OP_OR : OP_AND, p->tok.off, CEL_BOOL, need_value(p, n), NULL);
	while (all != NULL && is_op(p, tk)) {
		advance(p);
		all = node_add(p, all,
			       need_value(p, is_or ? parse_logic(p, false) : parse_binary(p, 0)));
	}
	return all;
}

static struct node *parse_expr(struct parser *p)
{
	struct node *c = parse_logic(p, true), *a, *b, *n;
	size_t off = p->tok.off;

	if (c == NULL || !is_op(p, "?"))
		return c;
	if (!enter(p, off))
		return NULL;
	advance(p);
	a = parse_logic(p, true);
	if (a == NULL || !expect(p, ":") || (b = parse_expr(p)) == NULL)
		return NULL;
	p->nest--;
	n = node_op(p, OP_COND, off, a->stype == b->stype ? a->stype : TYPE_DYN, need_value(p, c),
		    need_value(p, a));
	return n == NULL ? NULL : node_add(p, n, need_value(p, b));
}

struct cel_expr *cel_compile(struct pool *pool, const char *src, char *err, size_t errlen,
			     size_t *err_off)
{
	struct parser p = {.pool = pool, .src = src, .err = err, .errlen = errlen};
	struct cel_expr *e;
	struct node *root = NULL;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	p.len = strnlen(src, CEL_MAX_LEN + 1);
	if (p.len > CEL_MAX_LEN) {
		fail(&p, CEL_MAX_LEN, "expression longer than %d bytes", CEL_MAX_LEN);
	} else {
		advance(&p);
		root = need_value(&p, parse_expr(&p));
		if (root != NULL && p.tok.kind != T_EOF)
			fail_unexpected(&p);
	}
	if (p.failed || root == NULL) {
		if (err_off != NULL)
			*err_off = p.err_off;
		return NULL;
	}
	e = pool_alloc(pool, sizeof(*e));
	e->root = root;
	e->attrs = p.attrs;
	return e;
}

/* ---- durations ---- */

/* Go's time.ParseDuration, which CEL's duration() follows: an optional sign, then numbers
 * (a fraction allowed) each with a unit, as in "1.5s", "-2h45m", "300ms"; "0" alone needs
 * none.  Nanoseconds in an int64, so about 292 years at most. */
static bool parse_duration(const char *s, size_t len, int64_t *out)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"ns", 1},
		     {"us", 1000},
		     {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
		     {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
		     {"ms", 1000000},
		     {"s", 1000000000},
		     {"m", UINT64_C(60000000000)},
		     {"h", UINT64_C(3600000000000)}};
	const uint64_t limit = (uint64_t)INT64_MAX + 1;
	uint64_t total = 0;
	size_t i = 0;
	bool neg = false;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (len - i == 1 && s[i] == '0') {
		*out = 0;
		return true;
	}
	if (i == len)
		return false;
	while (i < len) {
		uint64_t whole = 0, frac = 0, v;
		double scale = 1;
		bool digits = false;
		size_t k;

		for (; i < len && is_digit(s[i]); i++, digits = true) {
			if (whole > (limit - (uint64_t)(s[i] - '0')) / 10)
				return false;
			whole = whole * 10 + (uint64_t)(s[i] - '0');
		}
		if (i < len && s[i] == '.')
			for (i++; i < len && is_digit(s[i]); i++, digits = true)
				if (scale < 1e18) { /* further digits are below a nanosecond */
					frac = frac * 10 + (uint64_t)(s[i] - '0');
					scale *= 10;
				}
		if (!digits)
			return false;
		for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
			size_t n = strlen(units[k].name);

			/* "ms" is tried before "m", so that m does not take its first letter */
			if (len - i >= n && memcmp(s + i, units[k].name, n) == 0)
				break;
		}
		if (k == sizeof(units) / sizeof(units[0]))
			return false;
		i += strlen(units[k].name);
		if (whole > limit / units[k].ns)
			return false;
		v = whole * units[k].ns + (uint64_t)((double)frac * ((double)units[k].ns / scale));
		if (v > limit || total > limit - v)
			return false;
		total += v;
	}
	if (!neg && total == limit)
		return false;
	*out = neg ? (int64_t)(0 - total) : (int64_t)total;
	return true;
}

/* ---- evaluation ---- */

/* 2^63 and 2^64 as doubles (exact): the bounds of int64 and uint64. */
#define TWO_63 9223372036854775808.0
#define TWO_64 18446744073709551616.0

struct env {
	cel_lookup_fn lookup;
	void *ctx;
};

static bool is_number(const struct cel_value *v)
{
	return v->type == CEL_INT || v->type == CEL_UINT || v->type == CEL_DOUBLE;
}

static int cmp_int_double(int64_t i, double d)
{
	int64_t t;

	if (isnan(d))
		return 2;
	if (d >= TWO_63)
		return -1;
	if (d < -TWO_63)
		return 1;
	t = (int64_t)d; /* toward zero, exact in this range */
	if (i != t)
		return i < t ? -1 : 1;
	return (double)t < d ? -1 : (double)t > d ? 1 : 0;
}

static int cmp_uint_double(uint64_t u, double d)
{
	uint64_t t;

	if (isnan(d))
		return 2;
	if (d < 0)
		return 1;
	if (d >= TWO_64)
		return -1;
	t = (uint64_t)d;
	if (u != t)
		return u < t ? -1 : 1;
	return (double)t < d ? -1 : 0;
}

/* CEL orders numbers by value across int, uint and double: -1, 0, 1, or 2 for NaN. */
static int cmp_numbers(const struct cel_value *a, const struct cel_value *b)
{
	if (a->type == CEL_DOUBLE && b->type != CEL_DOUBLE) {
		int c = cmp_numbers(b, a);

		return c == 2 ? 2 : -c;
	}
	switch (a->type) {
	case CEL_INT:
		if (b->type == CEL_INT)
			return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
		if (b->type == CEL_UINT)
			return a->v.i < 0 || (uint64_t)a->v.i < b->v.u ? -1
								       : (uint64_t)a->v.i > b->v.u;
		return cmp_int_double(a->v.i, b->v.d);
	case CEL_UINT:
		if (b->type == CEL_UINT)
			return a->v.u < b->v.u ? -1 : a->v.u > b->v.u;
		if (b->type == CEL_INT)
			return b->v.i < 0 || a->v.u > (uint64_t)b->v.i ? 1
			       : a->v.u < (uint64_t)b->v.i             ? -1
								       : 0;
		return cmp_uint_double(a->v.u, b->v.d);
	default:
		if (isnan(a->v.d) || isnan(b->v.d))
			return 2;
		return a->v.d < b->v.d ? -1 : a->v.d > b->v.d;
	}
}

static int cmp_strings(const struct cel_value *a, const struct cel_value *b)
{
	size_t n = a->v.str.len < b->v.str.len ? a->v.str.len : b->v.str.len;
	int c = n > 0 ? memcmp(a->v.str.s, b->v.str.s, n) : 0;

	if (c != 0)
		return c < 0 ? -1 : 1;
	return a->v.str.len < b->v.str.len ? -1 : a->v.str.len > b->v.str.len;
}

/* Ordering exists among numbers, and within bool, string and duration; else an error. */
static bool values_order(const struct cel_value *a, const struct cel_value *b, int *cmp)
{
	if (is_number(a) && is_number(b)) {
		*cmp = cmp_numbers(a, b);
		return true;
	}
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case CEL_BOOL:
		*cmp = (int)a->v.b - (int)b->v.b;
		return true;
	case CEL_STRING:
		*cmp = cmp_strings(a, b);
		return true;
	case CEL_DURATION:
		*cmp =
		    a->v.duration_ns < b->v.duration_ns ? -1 : a->v.duration_ns > b->v.duration_ns;
		return true;
	default:
		return false;
	}
}

/* CEL's heterogeneous equality: numbers compare by value, other values of different types
 * are simply unequal (not an error). */
static bool values_equal(const struct cel_value *a, const struct cel_value *b)
{
	int cmp;

	if (a->type == CEL_NULL || b->type == CEL_NULL)
		return a->type == b->type;
	return values_order(a, b, &cmp) && cmp == 0;
}

static bool arith_int(enum cel_op op, int64_t a, int64_t b, int64_t *r)
{
	switch (op) {
	case OP_ADD:
		return !__builtin_add_overflow(a, b, r);
	case OP_SUB:
		return !__builtin_sub_overflow(a, b, r);
	case OP_MUL:
		return !__builtin_mul_overflow(a, b, r);
	default:
		if (b == 0 || (a == INT64_MIN && b == -1))
			return false;
		*r = op == OP_DIV ? a / b : a % b;
		return true;
	}
}

static bool arith_uint(enum cel_op op, uint64_t a, uint64_t b, uint64_t *r)
{
	switch (op) {
	case OP_ADD:
		return !__builtin_add_overflow(a, b, r);
	case OP_SUB:
		return !__builtin_sub_overflow(a, b, r);
	case OP_MUL:
		return !__builtin_mul_overflow(a, b, r);
	default:
		if (b == 0)
			return false;
		*r = op == OP_DIV ? a / b : a % b;
		return true;
	}
}

/* No implicit conversions in CEL arithmetic: both sides have one type. */
static bool arith(enum cel_op op, const struct cel_value *a, const struct cel_value *b,
		  struct cel_value *out)
{
	if (a->type != b->type)
		return false;
	out->type = a->type;
	switch (a->type) {
	case CEL_INT:
		return arith_int(op, a->v.i, b->v.i, &out->v.i);
	case CEL_UINT:
		return arith_uint(op, a->v.u, b->v.u, &out->v.u);
	case CEL_DOUBLE:
		if (op == OP_MOD)
			return false;
		out->v.d = op == OP_ADD   ? a->v.d + b->v.d
			   : op == OP_SUB ? a->v.d - b->v.d
			   : op == OP_MUL ? a->v.d * b->v.d
					  : a->v.d / b->v.d;
		return true;
	case CEL_DURATION:
		if (op != OP_ADD && op != OP_SUB)
			return false;
		return arith_int(op, a->v.duration_ns, b->v.duration_ns, &out->v.duration_ns);
	default:
		return false;
	}
}

/* int(), uint() and double() of a string: the whole string, decimal as Go's strconv. */
static bool parse_int_string(const char *s, size_t len, bool is_signed, struct cel_value *out)
{
	uint64_t v = 0, limit = is_signed ? (uint64_t)INT64_MAX : UINT64_MAX;
	bool neg = false;
	size_t i = 0;

	if (is_signed && len > 0 && (s[0] == '-' || s[0] == '+'))
		neg = s[i++] == '-';
	if (i == len)
		return false;
	for (; i < len; i++) {
		if (!is_digit(s[i]) || v > (limit + neg - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	out->type = is_signed ? CEL_INT : CEL_UINT;
	if (is_signed)
		out->v.i = neg ? (int64_t)(0 - v) : (int64_t)v;
	else
		out->v.u = v;
	return true;
}

static bool convert(enum cel_op op, const struct cel_value *a, struct cel_value *out)
{
	char buf[64], *end;

	if (op == OP_TO_DOUBLE) {
		out->type = CEL_DOUBLE;
		switch (a->type) {
		case CEL_INT:
			out->v.d = (double)a->v.i;
			return true;
		case CEL_UINT:
			out->v.d = (double)a->v.u;
			return true;
		case CEL_DOUBLE:
			*out = *a;
			return true;
		case CEL_STRING:
			if (a->v.str.len == 0 || a->v.str.len >= sizeof(buf) ||
			    memchr(" \t\n\r\f\v", a->v.str.s[0], 6) != NULL)
				return false;
			memcpy(buf, a->v.str.s, a->v.str.len);
			buf[a->v.str.len] = '\0';
			out->v.d = strtod(buf, &end);
			return end == buf + a->v.str.len;
		default:
			return false;
		}
	}
	if (a->type == CEL_STRING)
		return parse_int_string(a->v.str.s, a->v.str.len, op == OP_TO_INT, out);
	if (op == OP_TO_INT) {
		out->type = CEL_INT;
		if (a->type == CEL_INT) {
			out->v.i = a->v.i;
			return true;
		}
		if (a->type == CEL_UINT && a->v.u <= INT64_MAX) {
			out->v.i = (int64_t)a->v.u;
			return true;
		}
		if (a->type == CEL_DOUBLE && a->v.d >= -TWO_63 && a->v.d < TWO_63) {
			out->v.i = (int64_t)a->v.d;
			return true;
		}
		return false;
	}
	out->type = CEL_UINT;
	if (a->type == CEL_UINT) {
		out->v.u = a->v.u;
		return true;
	}
	if (a->type == CEL_INT && a->v.i >= 0) {
		out->v.u = (uint64_t)a->v.i;
		return true;
	}
	if (a->type == CEL_DOUBLE && a->v.d >= 0 && a->v.d < TWO_64) {
		out->v.u = (uint64_t)a->v.d;
		return true;
	}
	return false;
}

/* CEL's string size counts code points; a stray byte of bad UTF-8 counts as one. */
static int64_t utf8_length(const char *s, size_t len)
{
	int64_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

static bool string_test(enum cel_op op, const struct cel_value *s, const struct cel_value *t)
{
	size_t sl = s->v.str.len, tl = t->v.str.len;

	if (op == OP_CONTAINS)
		return tl == 0 || memmem(s->v.str.s, sl, t->v.str.s, tl) != NULL;
	if (tl > sl)
		return false;
	if (tl == 0)
		return true;
	return memcmp(op == OP_STARTS_WITH ? s->v.str.s : s->v.str.s + sl - tl, t->v.str.s, tl) ==
	       0;
}

/* The caller's answer, checked: an out-of-range type or a NULL string is an error. */
static bool lookup(const struct env *env, unsigned attr, const struct cel_value *key,
		   struct cel_value *out)
{
	memset(out, 0, sizeof(*out));
	if (!env->lookup(env->ctx, (enum cel_attr)attr, key != NULL ? key->v.str.s : NULL,
			 key != NULL ? key->v.str.len : 0, out))
		return false;
	if ((unsigned)out->type > CEL_DURATION)
		return false;
	if (out->type == CEL_STRING && out->v.str.s == NULL) {
		if (out->v.str.len != 0)
			return false;
		out->v.str.s = "";
	}
	return true;
}

static bool eval(const struct node *n, const struct env *env, struct cel_value *out);

/* && and || are commutative in CEL: a deciding operand (false for &&, true for ||) wins
 * wherever it stands, even after an error; otherwise an error, or a non-bool, is the
 * result. */
static bool eval_logic(const struct node *n, const struct env *env, struct cel_value *out)
{
	bool decider = n->op == OP_OR, error = false;
	struct cel_value v;

	out->type = CEL_BOOL;
	for (uint32_t k = 0; k < n->nkids; k++) {
		if (!eval(n->kids[k], env, &v) || v.type != CEL_BOOL) {
			error = true;
		} else if (v.v.b == decider) {
			out->v.b = decider;
			return true;
		}
	}
	out->v.b = !decider;
	return !error;
}

static bool eval(const struct node *n, const struct env *env, struct cel_value *out)
{
	struct cel_value a, b;
	int cmp;

	if (n->op == OP_AND || n->op == OP_OR)
		return eval_logic(n, env, out);
	switch (n->op) {
	case OP_LIT:
		*out = n->lit;
		return true;
	case OP_ATTR:
		return lookup(env, n->attr, NULL, out);
	case OP_HAS_ATTR:
		out->type = CEL_BOOL;
		out->v.b = lookup(env, n->attr, NULL, &a);
		return true;
	case OP_COND:
		if (!eval(n->kids[0], env, &a) || a.type != CEL_BOOL)
			return false;
		return eval(n->kids[a.v.b ? 1 : 2], env, out);
	case OP_IN_LIST: {
		bool found = false;

		if (!eval(n->kids[0], env, &a))
			return false;
		/* The list is built before it is searched: an element in error fails it. */
		for (uint32_t k = 0; k < n->kids[1]->nkids; k++) {
			if (!eval(n->kids[1]->kids[k], env, &b))
				return false;
			found = found || values_equal(&a, &b);
		}
		out->type = CEL_BOOL;
		out->v.b = found;
		return true;
	}
	default:
		break;
	}
	/* The rest take one or two values. */
	if (!eval(n->kids[0], env, &a) || (n->nkids > 1 && !eval(n->kids[1], env, &b)))
		return false;
	switch (n->op) {
	case OP_HEADER:
		return a.type == CEL_STRING && lookup(env, n->attr, &a, out);
	case OP_HAS_HEADER:
		/* a key of another type is simply not in a map of strings */
		out->type = CEL_BOOL;
		out->v.b = a.type == CEL_STRING && lookup(env, n->attr, &a, &b);
		return true;
	case OP_NOT:
		if (a.type != CEL_BOOL)
			return false;
		out->type = CEL_BOOL;
		out->v.b = !a.v.b;
		return true;
	case OP_NEG:
		out->type = a.type;
		if (a.type == CEL_DOUBLE) {
			out->v.d = -a.v.d;
			return true;
		}
		if (a.type != CEL_INT || a.v.i == INT64_MIN)
			return false;
		out->v.i = -a.v.i;
		return true;
	case OP_EQ:
	case OP_NE:
		out->type = CEL_BOOL;
		out->v.b = values_equal(&a, &b) == (n->op == OP_EQ);
		return true;
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		if (!values_order(&a, &b, &cmp))
			return false;
		out->type = CEL_BOOL;
		out->v.b = cmp != 2 && (n->op == OP_LT   ? cmp < 0
					: n->op == OP_LE ? cmp <= 0
					: n->op == OP_GT ? cmp > 0
							 : cmp >= 0);
		return true;
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD:
		return arith((enum cel_op)n->op, &a, &b, out);
	case OP_CONTAINS:
	case OP_STARTS_WITH:
	case OP_ENDS_WITH:
		if (a.type != CEL_STRING || b.type != CEL_STRING)
			return false;
		out->type = CEL_BOOL;
		out->v.b = string_test((enum cel_op)n->op, &a, &b);
		return true;
	case OP_MATCHES:
		if (a.type != CEL_STRING)
			return false;
		out->type = CEL_BOOL;
		out->v.b = regex_match(n->re, a.v.str.s, a.v.str.len);
		return true;
	case OP_SIZE:
		if (a.type != CEL_STRING)
			return false;
		out->type = CEL_INT;
		out->v.i = utf8_length(a.v.str.s, a.v.str.len);
		return true;
	case OP_TO_INT:
	case OP_TO_UINT:
	case OP_TO_DOUBLE:
		return convert((enum cel_op)n->op, &a, out);
	default:
		return false;
	}
}

bool cel_eval(const struct cel_expr *e, cel_lookup_fn fn, void *ctx)
{
	struct env env = {fn, ctx};
	struct cel_value v;

	if (e == NULL || fn == NULL)
		return false;
	return eval(e->root, &env, &v) && v.type == CEL_BOOL && v.v.b;
}

uint64_t cel_attrs_used(const struct cel_expr *e)
{
	return e != NULL ? e->attrs : 0;
}

struct map_keys {
	enum cel_attr map;
	const char **keys;
	size_t *lens;
	size_t max, n;
	bool computed;
};

static void map_keys_walk(const struct node *n, struct map_keys *mk)
{
	if ((n->op == OP_HEADER || n->op == OP_HAS_HEADER) && n->attr == mk->map) {
		const struct node *k = n->kids[0];
		bool seen = false;

		if (k->op != OP_LIT) {
			mk->computed = true;
		} else if (k->lit.type == CEL_STRING) {
			for (size_t i = 0; i < mk->n && i < mk->max && !seen; i++)
				seen = mk->lens[i] == k->lit.v.str.len &&
				       strncasecmp(mk->keys[i], k->lit.v.str.s, mk->lens[i]) == 0;
			if (!seen && mk->n < mk->max) {
				mk->keys[mk->n] = k->lit.v.str.s;
				mk->lens[mk->n] = k->lit.v.str.len;
			}
			mk->n += !seen;
		}
	}
	for (uint32_t i = 0; i < n->nkids; i++)
		map_keys_walk(n->kids[i], mk);
}

size_t cel_map_keys(const struct cel_expr *e, enum cel_attr map, const char **keys, size_t *lens,
		    size_t max)
{
	struct map_keys mk = {map, keys, lens, max, 0, false};

	if (e == NULL)
		return 0;
	map_keys_walk(e->root, &mk);
	return mk.computed ? SIZE_MAX : mk.n;
}

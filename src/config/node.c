#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "node.h"

/* Values echoed in messages are cut here: a message must stay one readable line. */
#define NODE_QUOTE_MAX 64

/* `"value"` for messages: quotes and backslashes escaped, long values cut at a UTF-8
 * boundary and marked with "...". */
static const char *node_quote(const struct node *n, char *buf, size_t size)
{
	size_t i, o = 0, len = n->len;
	bool cut = false;

	if (len > NODE_QUOTE_MAX) {
		len = NODE_QUOTE_MAX;
		while (len > 0 && ((unsigned char)n->str[len] & 0xc0) == 0x80)
			len--;
		cut = true;
	}
	/* size >= 2 * NODE_QUOTE_MAX + 8 at every caller, so this cannot overflow. */
	buf[o++] = '"';
	for (i = 0; i < len && o + 6 < size; i++) {
		if (n->str[i] == '"' || n->str[i] == '\\')
			buf[o++] = '\\';
		buf[o++] = n->str[i];
	}
	buf[o++] = '"';
	if (cut) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* "a map", "a sequence", "a string", "null": the `got ...` part of type errors. */
static const char *node_got(const struct node *n)
{
	switch (n->type) {
	case NODE_MAP:
		return "a map";
	case NODE_SEQ:
		return "a sequence";
	case NODE_SCALAR:
		return "a string";
	default:
		return "null";
	}
}

const char *node_type_name(const struct node *n)
{
	n = node_real(n);
	if (n == NULL)
		return "null";
	switch (n->type) {
	case NODE_MAP:
		return "map";
	case NODE_SEQ:
		return "sequence";
	case NODE_SCALAR:
		return "string";
	default:
		return "null";
	}
}

static bool node_key_is(const struct node *k, const char *key, size_t len)
{
	return k->len == len && memcmp(k->str, key, len) == 0;
}

static int node_key_cmp(const struct node *k, const char *key, size_t len)
{
	size_t n = k->len < len ? k->len : len;
	int c = memcmp(k->str, key, n);

	if (c != 0)
		return c;
	return (k->len > len) - (k->len < len);
}

struct node *node_get(struct node *map, const char *key)
{
	size_t len, i, lo, hi;

	map = node_real(map);
	if (map == NULL || map->type != NODE_MAP || key == NULL)
		return NULL;
	len = strlen(key);
	if (map->sorted != NULL) {
		lo = 0;
		hi = map->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = node_key_cmp(map->sorted[2 * mid], key, len);

			if (c == 0) {
				map->sorted[2 * mid]->used = true;
				map->sorted[2 * mid + 1]->used = true;
				return map->sorted[2 * mid + 1];
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return NULL;
	}
	for (i = 0; i < map->n; i++) {
		if (node_key_is(map->keys[i], key, len)) {
			map->keys[i]->used = true;
			map->vals[i]->used = true;
			return map->vals[i];
		}
	}
	return NULL;
}

void node_check_unknown(struct diag *d, const struct node *map)
{
	char q[2 * NODE_QUOTE_MAX + 8];
	size_t i;

	map = node_real(map);
	if (map == NULL || map->type != NODE_MAP)
		return;
	for (i = 0; i < map->n; i++)
		if (!map->keys[i]->used)
			diag_error(d, map->keys[i], "unknown field %s",
				   node_quote(map->keys[i], q, sizeof(q)));
}

void node_mark_used(struct node *n)
{
	size_t i;

	n = node_real(n);
	if (n == NULL)
		return;
	n->used = true;
	for (i = 0; i < n->n; i++) {
		if (n->type == NODE_MAP)
			n->keys[i]->used = true;
		node_mark_used(n->vals[i]);
	}
}

bool node_want_map(struct diag *d, struct node *n)
{
	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type == NODE_MAP)
		return true;
	diag_error(d, n, "expected a map, got %s", node_got(n));
	return false;
}

bool node_want_seq(struct diag *d, struct node *n)
{
	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type == NODE_SEQ)
		return true;
	diag_error(d, n, "expected a sequence, got %s", node_got(n));
	return false;
}

bool node_str(struct diag *d, struct node *n, const char **out)
{
	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type != NODE_SCALAR) {
		diag_error(d, n, "expected a string, got %s", node_got(n));
		return false;
	}
	/* "\0" in a double-quoted scalar would silently cut the C string short. */
	if (memchr(n->str, '\0', n->len) != NULL) {
		diag_error(d, n, "strings must not contain NUL characters");
		return false;
	}
	*out = n->str;
	return true;
}

/* Plain YAML 1.2 core-schema decimal: -?(0|[1-9][0-9]*).  No octal, hex, '+' or '_'. */
static bool node_is_int(const char *s, size_t len)
{
	size_t i = 0;

	if (i < len && s[i] == '-')
		i++;
	if (i == len)
		return false;
	if (s[i] == '0' && i + 1 != len)
		return false;
	for (; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A plain scalar that cannot be a number: report what it is.  Returns false always. */
static bool node_not_number(struct diag *d, struct node *n, const char *what)
{
	char q[2 * NODE_QUOTE_MAX + 8];

	if (n->type != NODE_SCALAR || n->quoted)
		diag_error(d, n, "expected %s, got %s", what, node_got(n));
	else
		diag_error(d, n, "expected %s, got %s", what, node_quote(n, q, sizeof(q)));
	return false;
}

/* The scalar's text for range messages (already checked to be a number: no quoting). */
static const char *node_text(const struct node *n, char *buf, size_t size)
{
	if (n->len <= NODE_QUOTE_MAX)
		return n->str;
	snprintf(buf, size, "%.*s...", NODE_QUOTE_MAX, n->str);
	return buf;
}

bool node_int(struct diag *d, struct node *n, int64_t min, int64_t max, int64_t *out)
{
	char t[NODE_QUOTE_MAX + 8];
	int64_t v = 0;
	bool neg, ovf = false;
	size_t i;

	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type != NODE_SCALAR || n->quoted || !node_is_int(n->str, n->len))
		return node_not_number(d, n, "an integer");
	neg = n->str[0] == '-';
	/* Accumulate negatively so INT64_MIN is representable. */
	for (i = neg ? 1 : 0; i < n->len; i++) {
		int dig = n->str[i] - '0';

		if (v < (INT64_MIN + dig) / 10) {
			ovf = true;
			break;
		}
		v = v * 10 - dig;
	}
	if (!ovf && !neg) {
		if (v == INT64_MIN)
			ovf = true;
		else
			v = -v;
	}
	if (ovf || v < min || v > max) {
		diag_error(d, n, "must be between %" PRId64 " and %" PRId64 ", got %s", min, max,
			   node_text(n, t, sizeof(t)));
		return false;
	}
	*out = v;
	return true;
}

/* YAML 1.2 core-schema float without .inf/.nan: -?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool node_is_float(const char *s, size_t len)
{
	size_t i = 0, digits = 0;

	if (i < len && s[i] == '-')
		i++;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	}
	if (digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		if (i == len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == len;
}

bool node_double(struct diag *d, struct node *n, double min, double max, double *out)
{
	char t[NODE_QUOTE_MAX + 8];
	double v;

	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type != NODE_SCALAR || n->quoted || !node_is_float(n->str, n->len))
		return node_not_number(d, n, "a number");
	v = strtod(n->str, NULL);
	if (!(v >= min && v <= max)) {
		diag_error(d, n, "must be between %g and %g, got %s", min, max,
			   node_text(n, t, sizeof(t)));
		return false;
	}
	*out = v;
	return true;
}

bool node_bool(struct diag *d, struct node *n, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE"};
	static const char *const no[] = {"false", "False", "FALSE"};
	char q[2 * NODE_QUOTE_MAX + 8];
	size_t i;

	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type != NODE_SCALAR || n->quoted) {
		diag_error(d, n, "expected a boolean, got %s", node_got(n));
		return false;
	}
	for (i = 0; i < 3; i++) {
		if (strcmp(n->str, yes[i]) == 0 && n->len == strlen(yes[i])) {
			*out = true;
			return true;
		}
		if (strcmp(n->str, no[i]) == 0 && n->len == strlen(no[i])) {
			*out = false;
			return true;
		}
	}
	diag_error(d, n, "expected true or false, got %s", node_quote(n, q, sizeof(q)));
	return false;
}

enum node_dur {
	NODE_DUR_OK = 0,
	NODE_DUR_BAD,
	NODE_DUR_BIG,
};

/* Go's time.ParseDuration grammar (what Istio's duration fields accept), unsigned:
 * "0" or one or more <decimal><unit>, unit one of h m s ms us µs ns.  Exact to the
 * nanosecond; digits past 18 in a fraction are ignored. */
static enum node_dur node_parse_duration(const char *s, size_t len, uint64_t *ns)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
	    {"ns", 1},
	    {"us", 1000},
	    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
	    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
	    {"ms", 1000000},
	    {"s", 1000000000ull},
	    {"m", 60000000000ull},
	    {"h", 3600000000000ull},
	};
	unsigned __int128 total = 0;
	size_t i = 0, u;

	if (len == 1 && s[0] == '0') {
		*ns = 0;
		return NODE_DUR_OK;
	}
	if (len == 0)
		return NODE_DUR_BAD;
	while (i < len) {
		unsigned __int128 ipart = 0;
		uint64_t frac = 0, scale = 1;
		size_t digits = 0, ulen = 0;
		uint64_t unit = 0;

		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			ipart = ipart * 10 + (unsigned)(s[i] - '0');
			if (ipart > UINT64_MAX)
				return NODE_DUR_BIG;
		}
		if (i < len && s[i] == '.') {
			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
				if (scale < 1000000000000000000ull) {
					frac = frac * 10 + (unsigned)(s[i] - '0');
					scale *= 10;
				}
			}
		}
		if (digits == 0)
			return NODE_DUR_BAD;
		/* Longest unit first: "ms" before "m". */
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			size_t l = strlen(units[u].name);

			if (l > ulen && len - i >= l && memcmp(s + i, units[u].name, l) == 0) {
				ulen = l;
				unit = units[u].ns;
			}
		}
		if (ulen == 0)
			return NODE_DUR_BAD;
		i += ulen;
		total += ipart * unit + (unsigned __int128)frac * unit / scale;
		if (total > UINT64_MAX)
			return NODE_DUR_BIG;
	}
	*ns = (uint64_t)total;
	return NODE_DUR_OK;
}

/* The largest whole unit that writes us exactly, for "must be at most ..." messages. */
static const char *node_fmt_duration(uint64_t us, char *buf, size_t size)
{
	if (us != 0 && us % UINT64_C(3600000000) == 0)
		snprintf(buf, size, "%" PRIu64 "h", us / UINT64_C(3600000000));
	else if (us != 0 && us % UINT64_C(60000000) == 0)
		snprintf(buf, size, "%" PRIu64 "m", us / UINT64_C(60000000));
	else if (us % 1000000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", us / 1000000);
	else if (us % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "ms", us / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "us", us);
	return buf;
}

bool node_duration(struct diag *d, struct node *n, uint64_t max_us, uint64_t *out_us)
{
	char q[2 * NODE_QUOTE_MAX + 8], m[32];
	enum node_dur r;
	uint64_t ns = 0;

	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type != NODE_SCALAR) {
		diag_error(d, n, "expected a duration, got %s", node_got(n));
		return false;
	}
	r = node_parse_duration(n->str, n->len, &ns);
	if (r == NODE_DUR_BAD) {
		diag_error(d, n, "invalid duration %s: use e.g. 10s, 1.5s or 100ms",
			   node_quote(n, q, sizeof(q)));
		return false;
	}
	if (r == NODE_DUR_BIG || ns / 1000 > max_us) {
		diag_error(d, n, "must be at most %s, got %s",
			   node_fmt_duration(max_us, m, sizeof(m)), node_quote(n, q, sizeof(q)));
		return false;
	}
	*out_us = ns / 1000;
	return true;
}

bool node_enum(struct diag *d, struct node *n, const char *const *names, int *out)
{
	char list[512], q[2 * NODE_QUOTE_MAX + 8];
	size_t o = 0;
	int i;

	n = node_real(n);
	if (n == NULL)
		return false;
	if (n->type == NODE_SCALAR) {
		for (i = 0; names[i] != NULL; i++) {
			if (n->len == strlen(names[i]) && memcmp(n->str, names[i], n->len) == 0) {
				*out = i;
				return true;
			}
		}
	}
	list[0] = '\0';
	for (i = 0; names[i] != NULL && o < sizeof(list); i++) {
		int w = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);

		if (w < 0)
			break;
		o += (size_t)w;
	}
	if (n->type == NODE_SCALAR)
		diag_error(d, n, "must be one of %s; got %s", list, node_quote(n, q, sizeof(q)));
	else
		diag_error(d, n, "must be one of %s; got %s", list, node_got(n));
	return false;
}

/* A key that reads unambiguously after a dot; others are written ["like.this"]. */
static bool node_key_plain(const char *k)
{
	if (*k == '\0')
		return false;
	for (; *k != '\0'; k++)
		if (*k == '.' || *k == '[' || *k == ']' || *k == '"' || *k == ' ' ||
		    (unsigned char)*k < 0x20 || *k == 0x7f)
			return false;
	return true;
}

static size_t node_path_put(char *buf, size_t size, size_t o, const char *s)
{
	size_t l = strlen(s);

	if (o < size) {
		size_t room = size - o - 1;

		memcpy(buf + o, s, l < room ? l : room);
		buf[o + (l < room ? l : room)] = '\0';
	}
	return o + l;
}

/* Writes the path of n at offset o; returns the offset after it (may exceed size). */
static size_t node_path_at(const struct node *n, char *buf, size_t size, size_t o)
{
	char idx[32];

	if (n == NULL || n->parent == NULL)
		return o;
	o = node_path_at(n->parent, buf, size, o);
	if (n->parent->type == NODE_SEQ) {
		snprintf(idx, sizeof(idx), "[%d]", n->index);
		return node_path_put(buf, size, o, idx);
	}
	if (n->key == NULL)
		return o;
	if (node_key_plain(n->key)) {
		if (o > 0)
			o = node_path_put(buf, size, o, ".");
		return node_path_put(buf, size, o, n->key);
	}
	o = node_path_put(buf, size, o, "[\"");
	o = node_path_put(buf, size, o, n->key);
	return node_path_put(buf, size, o, "\"]");
}

char *node_path(const struct node *n, char *buf, size_t size)
{
	n = node_real(n);
	if (size == 0)
		return buf;
	buf[0] = '\0';
	node_path_at(n, buf, size, 0);
	return buf;
}

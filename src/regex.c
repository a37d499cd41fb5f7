#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "pool.h"
#include "regex.h"

/*
 * UTF mode: Istio hands regexes to RE2, which works on UTF-8 code points ('.' and classes
 * consume a whole character, case folding is Unicode).  PCRE2_UTF gives the same, and
 * PCRE2_MATCH_INVALID_UTF makes invalid sequences in a subject simply unmatchable - which is
 * what RE2 does too (its byte automaton has no transition for them) - instead of failing the
 * call, and lets us skip the per-call UTF check on request bytes.
 * RE2's '$' matches only at the very end (PCRE2_DOLLAR_ENDONLY).
 */
#define REGEX_OPTS                                                                                 \
	(PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)

/* Captures we keep: the whole match and \1..\9 (all a rewrite can name).  PCRE2 still
 * matches patterns with more groups; it just reports that the vector was too small. */
#define REGEX_OVECTOR 10

/* A pattern is the operator's, the subject is the client's: bound the work one match may do
 * (backtracking steps, interpreter heap in KiB, JIT stack) so no header stalls a worker. */
#define REGEX_MATCH_LIMIT 200000
#define REGEX_DEPTH_LIMIT 10000
#define REGEX_HEAP_LIMIT_KIB 4096
#define REGEX_JIT_STACK_MIN (32 * 1024)
#define REGEX_JIT_STACK_MAX (512 * 1024)

struct regex_tls {
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
};

static __thread struct regex_tls *tls;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void regex_tls_free(void *arg)
{
	struct regex_tls *t = arg;

	if (t == NULL)
		return;
	pcre2_match_data_free(t->md);
	pcre2_match_context_free(t->mc);
	pcre2_jit_stack_free(t->js);
	free(t);
}

static void regex_tls_key(void)
{
	/* The destructor frees a worker's state when the thread ends. */
	(void)pthread_key_create(&tls_key, regex_tls_free);
}

/* Lazily built per-thread match state; NULL on allocation failure (then: no match). */
static struct regex_tls *regex_tls_get(void)
{
	struct regex_tls *t;

	if (tls != NULL)
		return tls;
	(void)pthread_once(&tls_once, regex_tls_key);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->md = pcre2_match_data_create(REGEX_OVECTOR, NULL);
	t->mc = pcre2_match_context_create(NULL);
	t->js = pcre2_jit_stack_create(REGEX_JIT_STACK_MIN, REGEX_JIT_STACK_MAX, NULL);
	if (t->md == NULL || t->mc == NULL) {
		regex_tls_free(t);
		return NULL;
	}
	pcre2_set_match_limit(t->mc, REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(t->mc, REGEX_DEPTH_LIMIT);
	pcre2_set_heap_limit(t->mc, REGEX_HEAP_LIMIT_KIB);
	if (t->js != NULL)
		pcre2_jit_stack_assign(t->mc, NULL, t->js);
	(void)pthread_setspecific(tls_key, t);
	tls = t;
	return t;
}

/* Length of a quantifier "{n}", "{n,}" or "{n,m}" at p, or 0 when p is a literal brace. */
static size_t regex_brace_quant(const char *p)
{
	const char *q = p + 1;
	bool digits = false;

	while (*q >= '0' && *q <= '9') {
		q++;
		digits = true;
	}
	if (!digits)
		return 0;
	if (*q == ',') {
		q++;
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (*q != '}')
		return 0;
	return (size_t)(q - p) + 1;
}

/* Skip a character class starting at p ('['); returns the position after its ']'. */
static const char *regex_skip_class(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']') /* a leading ']' is a literal */
		p++;
	while (*p != '\0' && *p != ']') {
		if (*p == '\\' && p[1] != '\0') {
			p += 2;
		} else if (p[0] == '[' && p[1] == ':') {
			const char *end = strstr(p + 2, ":]");

			p = end != NULL ? end + 2 : p + 1;
		} else {
			p++;
		}
	}
	return *p == ']' ? p + 1 : p;
}

/* What "(?" at p introduces when RE2 does not have it; NULL when fine. */
static const char *regex_group_unsupported(const char *p)
{
	const char *q;

	switch (p[2]) {
	case '=':
		return "lookahead \"(?=\"";
	case '!':
		return "negative lookahead \"(?!\"";
	case '<':
		if (p[3] == '=')
			return "lookbehind \"(?<=\"";
		if (p[3] == '!')
			return "negative lookbehind \"(?<!\"";
		return NULL; /* (?<name>...) */
	case '>':
		return "atomic group \"(?>\"";
	case '|':
		return "branch reset \"(?|\"";
	case '(':
		return "conditional group \"(?(\"";
	case 'C':
		return "callout \"(?C\"";
	case '#':
		return "comment group \"(?#\"";
	case '\'':
		return "named group \"(?'name'\" (write \"(?P<name>\")";
	case '&':
	case 'R':
	case '+':
		return "recursion or subroutine call";
	case 'P':
		if (p[3] == '=')
			return "named backreference \"(?P=\"";
		if (p[3] == '>')
			return "recursion \"(?P>\"";
		return NULL;
	case ':':
		return NULL;
	default:
		break;
	}
	if ((p[2] >= '0' && p[2] <= '9') || (p[2] == '-' && p[3] >= '0' && p[3] <= '9'))
		return "recursion or subroutine call";
	/* Flags: RE2 knows i, m, s and U only. */
	for (q = p + 2; *q != '\0' && *q != ':' && *q != ')'; q++)
		if (strchr("imsU-", *q) == NULL)
			return "flag (only i, m, s and U exist in RE2)";
	return NULL;
}

/* Scan for constructs PCRE2 accepts but RE2 does not, so a config that works here cannot
 * mean something else (or be refused) under Istio.  Returns a description and the offset. */
static const char *regex_unsupported(const char *pat, size_t *off)
{
	const char *p = pat, *what, *end;
	size_t qlen;

	while (*p != '\0') {
		*off = (size_t)(p - pat);
		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9')
				return "backreference";
			if (p[1] == 'g' || p[1] == 'k')
				return "backreference";
			if (p[1] == 'K')
				return "match reset \"\\K\"";
			if (p[1] != '\0' && strchr("GHNRVXZh", p[1]) != NULL)
				return "escape only PCRE has";
			if (p[1] == 'Q') {
				/* Literal text up to \E: nothing to check inside. */
				end = strstr(p + 2, "\\E");
				p = end != NULL ? end + 2 : p + strlen(p);
				continue;
			}
			p += p[1] != '\0' ? 2 : 1;
			continue;
		case '[':
			p = regex_skip_class(p);
			continue;
		case '(':
			if (p[1] == '*')
				return "verb or option \"(*\"";
			if (p[1] == '?' && (what = regex_group_unsupported(p)) != NULL)
				return what;
			p += p[1] == '?' ? 2 : 1;
			continue;
		case '*':
		case '+':
		case '?':
			qlen = 1;
			break;
		case '{':
			qlen = regex_brace_quant(p);
			if (qlen == 0) {
				p++;
				continue;
			}
			break;
		default:
			p++;
			continue;
		}
		/* p is a quantifier: '+' after it makes it possessive, '?' lazy. */
		p += qlen;
		if (*p == '+') {
			*off = (size_t)(p - pat);
			return "possessive quantifier";
		}
		if (*p == '?')
			p++;
	}
	return NULL;
}

static void regex_code_free(void *arg)
{
	pcre2_code_free(arg);
}

static struct pcre2_real_code_8 *regex_build(struct pool *p, const char *pattern, uint32_t opts,
					     char *err, size_t errlen)
{
	PCRE2_UCHAR msg[256];
	const char *what;
	pcre2_code *re;
	PCRE2_SIZE eoff;
	size_t off = 0;
	int ec;

	if ((what = regex_unsupported(pattern, &off)) != NULL) {
		snprintf(err, errlen, "%s at offset %zu is not supported (RE2 syntax is required)",
			 what, off);
		return NULL;
	}
	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, REGEX_OPTS | opts, &ec,
			   &eoff, NULL);
	if (re == NULL) {
		if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", ec);
		snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)eoff);
		return NULL;
	}
	/* Without JIT (unsupported CPU, no exec memory) the interpreter runs the same code. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	pool_on_free(p, regex_code_free, re);
	return re;
}

struct pcre2_real_code_8 *regex_compile(struct pool *p, const char *pattern, bool caseless,
					char *err, size_t errlen)
{
	/* Compile-time ANCHORED|ENDANCHORED is Envoy's full match, with backtracking into
	 * alternatives ("a|ab" matches "ab"), and needs no wrapping of the pattern text. */
	return regex_build(p, pattern,
			   PCRE2_ANCHORED | PCRE2_ENDANCHORED | (caseless ? PCRE2_CASELESS : 0),
			   err, errlen);
}

struct pcre2_real_code_8 *regex_compile_search(struct pool *p, const char *pattern, char *err,
					       size_t errlen)
{
	return regex_build(p, pattern, 0, err, errlen);
}

bool regex_match(const struct pcre2_real_code_8 *re, const char *s, size_t len)
{
	struct regex_tls *t = regex_tls_get();

	if (re == NULL || t == NULL)
		return false;
	/* rc == 0 means matched with more groups than the vector holds: still a match. */
	return pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, t->md, t->mc) >= 0;
}

/* Length of the UTF-8 character starting at s (1 for an invalid lead byte). */
static size_t regex_char_len(const unsigned char *s, size_t left)
{
	size_t n = 1;

	if (*s >= 0xf0)
		n = 4;
	else if (*s >= 0xe0)
		n = 3;
	else if (*s >= 0xc0)
		n = 2;
	if (n > left)
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

struct regex_out {
	char *buf;
	size_t len, size;
	bool overflow;
};

static void regex_out_put(struct regex_out *o, const char *s, size_t n)
{
	if (o->overflow || n >= o->size - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Append the rewrite for one match: \0..\9 name groups (an unset group is empty), "\\" is a
 * backslash, anything else is literal (link.c refuses other escapes up front). */
static void regex_rewrite(struct regex_out *o, const char *s, const PCRE2_SIZE *ov, int ngroups,
			  const char *rw)
{
	const char *lit = rw;

	for (; *rw != '\0'; rw++) {
		if (*rw != '\\' || rw[1] == '\0')
			continue;
		regex_out_put(o, lit, (size_t)(rw - lit));
		if (rw[1] >= '0' && rw[1] <= '9') {
			int g = rw[1] - '0';

			if (g < ngroups && ov[2 * g] != PCRE2_UNSET)
				regex_out_put(o, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
			lit = rw + 2;
		} else if (rw[1] == '\\') {
			lit = rw + 1;
		} else {
			lit = rw;
		}
		rw++;
	}
	regex_out_put(o, lit, (size_t)(rw - lit));
}

/*
 * RE2::GlobalReplace semantics (what Envoy's regex_rewrite runs): every non-overlapping
 * match, leftmost first, is replaced; an empty match right where the previous match ended
 * is not allowed (the scan steps one character instead).  Output is NUL-terminated; -1 when
 * it (with the NUL) does not fit in outsize.
 */
long regex_replace(const struct pcre2_real_code_8 *re, const char *s, size_t len,
		   const char *replacement, char *out, size_t outsize)
{
	struct regex_tls *t = regex_tls_get();
	struct regex_out o = {out, 0, outsize, outsize == 0};
	size_t pos = 0, lastend = (size_t)-1;
	const PCRE2_SIZE *ov;
	int rc;

	if (re == NULL || t == NULL || outsize == 0)
		return -1;
	ov = pcre2_get_ovector_pointer(t->md);
	while (pos <= len) {
		rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, t->md, t->mc);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) /* match limit: leave the path as it is rather than half-rewritten */
			return -1;
		if (rc == 0)
			rc = REGEX_OVECTOR;
		if (ov[0] > pos)
			regex_out_put(&o, s + pos, ov[0] - pos);
		if (ov[0] == lastend && ov[0] == ov[1]) {
			if (pos < len) {
				size_t n =
				    regex_char_len((const unsigned char *)s + pos, len - pos);

				regex_out_put(&o, s + pos, n);
				pos += n;
			} else {
				pos++;
			}
			continue;
		}
		regex_rewrite(&o, s, ov, rc, replacement);
		pos = ov[1];
		lastend = pos;
	}
	if (pos < len)
		regex_out_put(&o, s + pos, len - pos);
	if (o.overflow)
		return -1;
	out[o.len] = '\0';
	return (long)o.len;
}

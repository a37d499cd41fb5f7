/* PCRE2 wrapper with Istio's regex semantics: RE2 syntax, matched against the WHOLE string
 * (Envoy's safe_regex is a full match), compiled once at load with JIT where available,
 * bounded by a match limit so a pathological pattern cannot stall a worker. */
#ifndef MG_REGEX_H
#define MG_REGEX_H

#include <stdbool.h>
#include <stddef.h>

struct pool;
struct pcre2_real_code_8;

/* Compile pattern as an anchored whole-string match (wraps it as (?:pattern)\z with
 * PCRE2_ANCHORED). The code is freed with the pool.  Returns NULL and writes a message into
 * err when the pattern does not compile or uses a construct RE2 does not have
 * (backreferences, lookaround, possessive/atomic groups, recursion). */
struct pcre2_real_code_8 *regex_compile(struct pool *p, const char *pattern, bool caseless,
					char *err, size_t errlen);
/* Whole-string match for regex_compile's code; for regex_compile_search's, a match anywhere
 * (RE2's PartialMatch, which CEL's matches() is).  Thread-safe (match data is per thread).
 * A match-limit hit counts as no match. */
bool regex_match(const struct pcre2_real_code_8 *re, const char *s, size_t len);
/* Substitute every match of re in s with the replacement (\1..\9 backreferences, as Istio's
 * uriRegexRewrite) into out; returns the length written or -1 if out is too small. Here re
 * is searched unanchored: compile it with regex_compile_search(). */
struct pcre2_real_code_8 *regex_compile_search(struct pool *p, const char *pattern, char *err,
					       size_t errlen);
long regex_replace(const struct pcre2_real_code_8 *re, const char *s, size_t len,
		   const char *replacement, char *out, size_t outsize);

#endif

/* A strict JSON reader (RFC 8259) for untrusted bytes: JWT headers and payloads, JWKS
 * documents.  One pass fills a caller's array of tokens that point into the text; nothing
 * is allocated and nothing is copied until a string is asked for. */
#ifndef MESHGATE_JSON_H
#define MESHGATE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JSON_MAX_DEPTH 32

enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

/* One value in the text; an array's or object's len runs through its closing bracket. */
struct json_tok {
	uint8_t type;   /* enum json_type */
	uint32_t start; /* first byte of the value; of a string, the byte after its opening quote */
	uint32_t len;   /* bytes; of a string, the raw bytes between its quotes (escapes kept) */
	uint32_t size;  /* an array's elements, an object's members; 0 otherwise */
	uint32_t next;  /* index of the token after this value and everything inside it */
};

/* Parse text[0..len) as exactly one JSON value, with only whitespace around it.  Strict:
 * no comments, no trailing commas, no leading zeros, no control characters in strings,
 * strings must be valid UTF-8 (no overlongs, no surrogates), escapes as RFC 8259 lists
 * them (a \u escape of a lone surrogate is refused), nesting at most JSON_MAX_DEPTH, and
 * no object with the same member name twice (compared after unescaping).  Tokens are in
 * document order: an object member is its name's token (a JSON_STRING) then its value's.
 * Returns the number of tokens, or -1 when the text is not such JSON or needs more than
 * max tokens. */
int json_parse(const char *text, size_t len, struct json_tok *tok, size_t max);

/* The index of the value of member `name` of the object at index obj, or -1 (also when
 * obj is not an object).  Names are compared unescaped; one with U+0000 never matches. */
int json_get(const char *text, const struct json_tok *tok, int obj, const char *name);

/* The string at index i, unescaped, into out (cap bytes, NUL-terminated).  Its length, or
 * -1 when i is not a string, it does not fit, or it holds U+0000. */
ssize_t json_string(const char *text, const struct json_tok *tok, int i, char *out, size_t cap);

/* Is the token at index i a string whose unescaped value is exactly s? */
bool json_string_eq(const char *text, const struct json_tok *tok, int i, const char *s);

/* The number at index i as a double: false when i is not a number, when the number is
 * longer than 64 bytes, or when it overflows a double (an "exp" of 1e999 is no claim).
 * strtod reads it, so LC_NUMERIC must be "C" (meshgate never calls setlocale). */
bool json_number(const char *text, const struct json_tok *tok, int i, double *out);

#endif

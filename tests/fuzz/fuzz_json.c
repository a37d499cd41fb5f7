/* libFuzzer target for src/json.c: the strict JSON tokenizer.
 *
 * Input: the text itself, parsed with room for MAXTOK tokens.  A parse that succeeds must
 * give a well-formed token tree: every token inside the text, next pointing past a value's
 * children, containers whose children walked by next land exactly on their own next and
 * number their size (an object's as name, value pairs with string names), every member
 * found again by json_get under its unescaped name (so no duplicate slipped through), and
 * every string unescaped to a NUL-free C string that json_string_eq agrees with.  The
 * token count must be exact: one token less room fails.  Independently, the text must
 * start, after whitespace, with a byte a JSON value can start with. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "json.h"

#define MAXTOK 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char str[4096];

static void check_tree(const char *text, size_t size, const struct json_tok *tok, int n)
{
	for (int i = 0; i < n; i++) {
		const struct json_tok *t = &tok[i];
		double d;

		CHECK(t->type <= JSON_OBJECT);
		CHECK((uint64_t)t->start + t->len <= size);
		CHECK(t->next > (uint32_t)i && t->next <= (uint32_t)n);
		if (t->type == JSON_ARRAY || t->type == JSON_OBJECT) {
			uint32_t c = (uint32_t)i + 1, count = 0;

			CHECK(text[t->start] == (t->type == JSON_OBJECT ? '{' : '['));
			CHECK(text[t->start + t->len - 1] == (t->type == JSON_OBJECT ? '}' : ']'));
			while (c < t->next) {
				if (t->type == JSON_OBJECT) {
					CHECK(tok[c].type == JSON_STRING && tok[c].size == 0);
					CHECK(tok[c].next == c + 1);
					if (json_string(text, tok, (int)c, str, sizeof(str)) >= 0)
						CHECK(json_get(text, tok, i, str) == (int)c + 1);
					c++;
					CHECK(c < t->next);
				}
				c = tok[c].next;
				count++;
			}
			CHECK(c == t->next && count == t->size);
			continue;
		}
		CHECK(t->next == (uint32_t)i + 1 && t->size == 0);
		CHECK(json_get(text, tok, i, "") == -1);
		if (t->type == JSON_STRING) {
			ssize_t len = json_string(text, tok, i, str, sizeof(str));

			CHECK(text[t->start - 1] == '"' && text[t->start + t->len] == '"');
			CHECK(len >= -1 && len < (ssize_t)sizeof(str));
			if (len >= 0) {
				CHECK(memchr(str, '\0', (size_t)len) == NULL && str[len] == '\0');
				CHECK((size_t)len <= (size_t)t->len); /* no escape grows */
				CHECK(json_string_eq(text, tok, i, str));
			}
			CHECK(!json_number(text, tok, i, &d));
		} else if (t->type == JSON_NUMBER) {
			(void)json_number(text, tok, i, &d);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tok tok[MAXTOK];
	const char *text = (const char *)data;
	int n = json_parse(text, size, tok, MAXTOK);
	size_t p = 0;

	CHECK(n == -1 || (n >= 1 && n <= MAXTOK));
	if (n < 0)
		return 0;
	CHECK(tok[0].next == (uint32_t)n);
	check_tree(text, size, tok, n);
	CHECK(json_parse(text, size, tok, (size_t)n) == n);
	CHECK(json_parse(text, size, tok, (size_t)n - 1) == -1);

	while (p < size && strchr(" \t\r\n", data[p]) != NULL && data[p] != '\0')
		p++;
	CHECK(p < size && data[p] != '\0' && strchr("{[\"-0123456789tfn", data[p]) != NULL);
	return 0;
}

/* libFuzzer target for src/cel.c: the access-log filter's CEL compiler and evaluator.
 *
 * Input: the expression's text (up to a NUL, as cel_compile reads it).  A refusal must
 * come with a one-line reason and an offset inside the text or at its end.  An expression
 * that compiles is evaluated against a fixed exchange and against one where everything is
 * absent; the lookup checks that it is asked only for what cel_attrs_used names, with a
 * key exactly for the header maps.  Evaluation must give the same answer twice.  When the
 * text also compiles wrapped as "(e) && !(e)" and "(e) == true", the first must be false
 * (an expression cannot be true and false at once) and the second must agree with e (true
 * only when e yields boolean true). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "cel.h"
#include "fuzz_check.h"
#include "pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct exchange {
	uint64_t used; /* cel_attrs_used of the expression being judged */
	bool absent;   /* every attribute and header missing */
};

static const struct {
	const char *name, *value;
} headers[] = {
    {"user-agent", "curl/8.5.0"},
    {"x-user-type", "dev"},
    {"x-multi", "a,b"},
    {"host", "a.b"},
    {"x-empty", ""},
};

static bool lookup(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
		   struct cel_value *out)
{
	const struct exchange *ex = ctx;
	bool is_map = attr == CEL_REQ_HEADERS || attr == CEL_RESP_HEADERS;

	CHECK((unsigned)attr < CEL_ATTR_COUNT);
	CHECK(ex->used & UINT64_C(1) << attr);
	CHECK(is_map == (key != NULL));
	if (ex->absent)
		return false;
	if (is_map) {
		for (size_t k = 0; k < sizeof(headers) / sizeof(headers[0]); k++)
			if (strlen(headers[k].name) == keylen &&
			    strncasecmp(headers[k].name, key, keylen) == 0) {
				out->type = CEL_STRING;
				out->v.str.s = headers[k].value;
				out->v.str.len = strlen(headers[k].value);
				return true;
			}
		return false;
	}
	switch (attr) {
	case CEL_REQ_DURATION:
		out->type = CEL_DURATION;
		out->v.duration_ns = 2500000000;
		return true;
	case CEL_CONN_MTLS:
		out->type = CEL_BOOL;
		out->v.b = true;
		return true;
	case CEL_REQ_REFERER:
	case CEL_RESP_GRPC_STATUS:
		return false;
	case CEL_REQ_SIZE:
	case CEL_REQ_TOTAL_SIZE:
	case CEL_RESP_CODE:
	case CEL_RESP_FLAGS:
	case CEL_RESP_SIZE:
	case CEL_RESP_TOTAL_SIZE:
	case CEL_SRC_PORT:
	case CEL_DST_PORT:
		out->type = CEL_INT;
		out->v.i = attr == CEL_RESP_CODE ? 401 : 1000 + attr;
		return true;
	default:
		/* a string named after the attribute: "request.path" */
		out->type = CEL_STRING;
		out->v.str.s = cel_attr_name(attr);
		out->v.str.len = strlen(out->v.str.s);
		return true;
	}
}

static bool eval(const struct cel_expr *e, bool absent)
{
	struct exchange ex = {cel_attrs_used(e), absent};
	bool r = cel_eval(e, lookup, &ex);

	CHECK(cel_eval(e, lookup, &ex) == r);
	return r;
}

/* Compile the text twice over as "(src) && !(src)", or once as "(src) == true"; the newline
 * ends a // comment the text may finish with.  NULL when that does not compile (nesting
 * one level deeper, or longer than CEL_MAX_LEN). */
static struct cel_expr *compile_wrapped(struct pool *p, const char *src, bool twice)
{
	static char buf[2 * CEL_MAX_LEN + 64];
	int n = twice ? snprintf(buf, sizeof(buf), "(%s\n) && !(%s\n)", src, src)
		      : snprintf(buf, sizeof(buf), "(%s\n) == true", src);

	CHECK(n > 0 && (size_t)n < sizeof(buf));
	return cel_compile(p, buf, NULL, 0, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char src[CEL_MAX_LEN + 2];
	struct cel_expr *e, *w;
	struct pool *p;
	char err[256];
	size_t off = SIZE_MAX, len;
	bool r;

	/* Longer inputs are refused at CEL_MAX_LEN; one byte past it shows that. */
	len = size < sizeof(src) - 1 ? size : sizeof(src) - 1;
	memcpy(src, data, len);
	src[len] = '\0';
	len = strlen(src);
	p = pool_new();
	e = cel_compile(p, src, err, sizeof(err), &off);
	if (e == NULL) {
		CHECK(off <= len);
		CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
		CHECK(len <= CEL_MAX_LEN || off == CEL_MAX_LEN);
		pool_free(p);
		return 0;
	}
	CHECK(len <= CEL_MAX_LEN);
	CHECK((cel_attrs_used(e) >> CEL_ATTR_COUNT) == 0);
	r = eval(e, false);
	(void)eval(e, true);

	if ((w = compile_wrapped(p, src, false)) != NULL)
		CHECK(eval(w, false) == r);
	if ((w = compile_wrapped(p, src, true)) != NULL) {
		CHECK(!eval(w, false));
		CHECK(!eval(w, true));
	}
	pool_free(p);
	return 0;
}

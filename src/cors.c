#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/model.h"
#include "cors.h"
#include "http1.h"
#include "regex.h"

bool cors_is_preflight(const char *method, size_t method_len, size_t origin_len,
		       size_t request_method_len)
{
	return method_len == 7 && memcmp(method, "OPTIONS", 7) == 0 && origin_len > 0 &&
	       request_method_len > 0;
}

/* Istio's StringMatch as Envoy's string matcher: case-sensitive, regex on the whole value. */
static bool cors_sm_match(const struct string_match *m, const char *s, size_t len)
{
	switch (m->kind) {
	case SM_EXACT:
		return len == m->len && memcmp(s, m->value, len) == 0;
	case SM_PREFIX:
		return len >= m->len && memcmp(s, m->value, m->len) == 0;
	case SM_REGEX:
		return m->re != NULL && regex_match(m->re, s, len);
	case SM_NONE:
	default:
		return false;
	}
}

bool cors_origin_allowed(const struct cors_policy *cp, const char *origin, size_t len)
{
	for (size_t i = 0; i < cp->nallow_origins; i++) {
		const struct string_match *m = &cp->allow_origins[i];

		/* Envoy also asks each matcher about "*", so an exact "*" allows any origin. */
		if (cors_sm_match(m, "*", 1) || cors_sm_match(m, origin, len))
			return true;
	}
	return false;
}

enum cors_kind cors_classify(const struct cors_policy *cp, const char *method, size_t method_len,
			     const char *origin, size_t origin_len, size_t request_method_len)
{
	bool allowed;

	if (cp == NULL || !cp->given || origin == NULL || origin_len == 0)
		return CORS_NONE;
	allowed = cors_origin_allowed(cp, origin, origin_len);
	if (!cors_is_preflight(method, method_len, origin_len, request_method_len))
		return allowed ? CORS_ACTUAL : CORS_NONE;
	if (allowed)
		return CORS_PREFLIGHT;
	if (cp->unmatched_preflights != NULL && strcmp(cp->unmatched_preflights, "IGNORE") == 0)
		return CORS_PREFLIGHT_IGNORE;
	return CORS_NONE; /* FORWARD (and UNSPECIFIED): Envoy's forward_not_matching_preflights */
}

void cors_max_age(const struct cors_policy *cp, char *buf, size_t size)
{
	if (cp->max_age_us == 0) /* the decoder refuses 0: zero means not given */
		snprintf(buf, size, "%s", "");
	else
		snprintf(buf, size, "%llu", (unsigned long long)(cp->max_age_us / 1000000));
}

/* Bounded header writer: one overflow spoils the whole block, never a cut line. */
struct hbuf {
	char *buf;
	size_t size, len;
	bool over;
};

static void hb_add(struct hbuf *b, const char *s, size_t n)
{
	if (b->over || b->len + n >= b->size) {
		b->over = true;
		return;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void hb_str(struct hbuf *b, const char *s)
{
	hb_add(b, s, strlen(s));
}

/* name: a,b,c  (Istio joins the lists with "," for Envoy) */
static void hb_list(struct hbuf *b, const char *name, const struct str_list *l)
{
	if (l->n == 0)
		return;
	hb_str(b, name);
	hb_add(b, ": ", 2);
	for (size_t i = 0; i < l->n; i++) {
		if (i > 0)
			hb_add(b, ",", 1);
		hb_str(b, l->v[i]);
	}
	hb_add(b, "\r\n", 2);
}

static int hb_end(struct hbuf *b)
{
	if (b->over) {
		if (b->size > 0)
			b->buf[0] = '\0';
		return -1;
	}
	return (int)b->len;
}

static void hb_origin(struct hbuf *b, const char *origin, size_t len)
{
	hb_str(b, "access-control-allow-origin: ");
	hb_add(b, origin, len);
	hb_add(b, "\r\n", 2);
}

int cors_preflight_headers(const struct cors_policy *cp, bool with_origin, const char *origin,
			   size_t origin_len, const char *request_headers,
			   size_t request_headers_len, char *buf, size_t size)
{
	struct hbuf b = {buf, size, 0, false};
	char age[24];

	if (size > 0)
		buf[0] = '\0';
	if (with_origin)
		hb_origin(&b, origin, origin_len);
	if (cp->allow_credentials == 1)
		hb_str(&b, "access-control-allow-credentials: true\r\n");
	hb_list(&b, "access-control-allow-methods", &cp->allow_methods);
	if (cp->allow_headers.n == 1 && strcmp(cp->allow_headers.v[0], "*") == 0) {
		/* Envoy echoes what the preflight asks for (nothing when it asks nothing) */
		if (request_headers_len > 0) {
			hb_str(&b, "access-control-allow-headers: ");
			hb_add(&b, request_headers, request_headers_len);
			hb_add(&b, "\r\n", 2);
		}
	} else {
		hb_list(&b, "access-control-allow-headers", &cp->allow_headers);
	}
	cors_max_age(cp, age, sizeof(age));
	if (age[0] != '\0') {
		hb_str(&b, "access-control-max-age: ");
		hb_str(&b, age);
		hb_add(&b, "\r\n", 2);
	}
	return hb_end(&b);
}

int cors_response_headers(const struct cors_policy *cp, const char *origin, size_t origin_len,
			  char *buf, size_t size)
{
	struct hbuf b = {buf, size, 0, false};

	if (size > 0)
		buf[0] = '\0';
	hb_origin(&b, origin, origin_len);
	if (cp->allow_credentials == 1)
		hb_str(&b, "access-control-allow-credentials: true\r\n");
	hb_list(&b, "access-control-expose-headers", &cp->expose_headers);
	return hb_end(&b);
}

bool cors_replaces(const struct cors_policy *cp, const char *name, size_t len)
{
	if (len < 22 || strncasecmp(name, "access-control-", 15) != 0)
		return false; /* most headers end here */
	return http1_name_eq(name, len, "access-control-allow-origin") ||
	       (cp->allow_credentials == 1 &&
		http1_name_eq(name, len, "access-control-allow-credentials")) ||
	       (cp->expose_headers.n > 0 &&
		http1_name_eq(name, len, "access-control-expose-headers"));
}

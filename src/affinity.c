#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "affinity.h"
#include "http1.h"
#include "lb_hash.h"
#include "router.h"

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Find name=value in a cookie header value ("a=1; b=2"), quotes around the value removed. */
static bool cookie_find(const char *s, size_t len, const char *name, const char **v, size_t *vlen)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t start, eq, end;

		while (i < len && (s[i] == ' ' || s[i] == ';'))
			i++;
		start = i;
		while (i < len && s[i] != ';')
			i++;
		end = i;
		for (eq = start; eq < end && s[eq] != '='; eq++)
			;
		if (eq < end && eq - start == nlen && memcmp(s + start, name, nlen) == 0) {
			*v = s + eq + 1;
			*vlen = end - eq - 1;
			while (*vlen > 0 && (*v)[*vlen - 1] == ' ')
				(*vlen)--;
			if (*vlen >= 2 && (*v)[0] == '"' && (*v)[*vlen - 1] == '"') {
				(*v)++;
				*vlen -= 2;
			}
			return true;
		}
	}
	return false;
}

/* Find a query parameter's (raw) value in "a=1&b=2". */
static bool query_find(const char *q, size_t len, const char *name, const char **v, size_t *vlen)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t start = i, eq;

		while (i < len && q[i] != '&')
			i++;
		for (eq = start; eq < i && q[eq] != '='; eq++)
			;
		if (eq - start == nlen && memcmp(q + start, name, nlen) == 0) {
			*v = eq < i ? q + eq + 1 : q + i;
			*vlen = eq < i ? i - eq - 1 : 0;
			return true;
		}
		i++;
	}
	return false;
}

bool affinity_key(const struct consistent_hash *ch, const struct http1_request *req,
		  const struct route_request *rq, const char *peer, uint64_t rnd, uint64_t *key,
		  char *new_cookie)
{
	const char *v = NULL, *colon;
	size_t vlen = 0;

	if (new_cookie != NULL)
		new_cookie[0] = '\0';
	switch (ch->source) {
	case HASH_HEADER:
		for (size_t i = 0; i < req->nheaders; i++) {
			const struct http1_header *h = &req->headers[i];

			if (name_is(h->name, h->name_len, ch->name)) {
				*key = lb_hash_bytes(h->value, h->value_len);
				return true;
			}
		}
		return false;
	case HASH_COOKIE:
		for (size_t i = 0; i < req->nheaders; i++) {
			const struct http1_header *h = &req->headers[i];

			if (name_is(h->name, h->name_len, "cookie") &&
			    cookie_find(h->value, h->value_len, ch->name, &v, &vlen)) {
				*key = lb_hash_bytes(v, vlen);
				return true;
			}
		}
		if (!ch->cookie_ttl_given || new_cookie == NULL)
			return false;
		snprintf(new_cookie, AFFINITY_COOKIE_LEN + 1, "%016llx", (unsigned long long)rnd);
		*key = lb_hash_bytes(new_cookie, AFFINITY_COOKIE_LEN);
		return true;
	case HASH_SOURCE_IP:
		if (peer == NULL || *peer == '\0')
			return false;
		if (peer[0] == '[') {
			colon = strchr(peer, ']');
			if (colon == NULL)
				return false;
			*key = lb_hash_bytes(peer + 1, (size_t)(colon - peer - 1));
		} else {
			colon = strrchr(peer, ':');
			*key = lb_hash_bytes(peer,
					     colon != NULL ? (size_t)(colon - peer) : strlen(peer));
		}
		return true;
	case HASH_QUERY_PARAM:
		if (rq->query == NULL || !query_find(rq->query, rq->query_len, ch->name, &v, &vlen))
			return false;
		*key = lb_hash_bytes(v, vlen);
		return true;
	}
	return false;
}

size_t affinity_set_cookie(const struct consistent_hash *ch, const char *value, char *out,
			   size_t cap)
{
	/* Envoy's form: name="value"; Max-Age=N; Path=P; attributes; HttpOnly (no Max-Age:
	 * a session cookie) */
	const char *path = ch->cookie_path != NULL ? ch->cookie_path : "";
	const char *attrs = ch->cookie_attrs != NULL ? ch->cookie_attrs : "";
	int n;

	if (ch->cookie_ttl_us > 0)
		n = snprintf(out, cap, "set-cookie: %s=\"%s\"; Max-Age=%llu%s%s%s; HttpOnly\r\n",
			     ch->name, value, (unsigned long long)(ch->cookie_ttl_us / 1000000),
			     *path != '\0' ? "; Path=" : "", path, attrs);
	else
		n = snprintf(out, cap, "set-cookie: %s=\"%s\"%s%s%s; HttpOnly\r\n", ch->name, value,
			     *path != '\0' ? "; Path=" : "", path, attrs);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

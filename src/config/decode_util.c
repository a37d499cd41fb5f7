#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"

/* Istio refuses regexes longer than this (Envoy's RE2 program-size guard, approximated). */
#define DECODE_REGEX_MAX 1024
/* protobuf Duration's own bound: 10000 years. */
#define DECODE_DURATION_MAX_US (315576000000ULL * 1000000ULL)

struct node *cfg_require(struct diag *d, struct node *map, const char *key)
{
	struct node *n = node_get(map, key);

	if (n == NULL)
		diag_error(d, map, "missing required field \"%s\"", key);
	return n;
}

bool cfg_decode_u32(struct diag *d, struct node *n, uint32_t min, uint32_t max, uint32_t *out)
{
	int64_t v;

	if (n == NULL)
		return true;
	if (!node_int(d, n, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

bool cfg_decode_port(struct diag *d, struct node *n, uint32_t *out)
{
	return cfg_decode_u32(d, n, 1, 65535, out);
}

void *cfg_append(struct pool *p, void *arr, size_t n, size_t size)
{
	/* The capacity is implied by n: CFG_APPEND_MIN, then powers of two.  Growing by
	 * one each time copied (and zeroed) the whole array per resource: quadratic time,
	 * and quadratic pool memory since the old copies stay until pool_free. */
	if (n == 0)
		return pool_calloc(p, CFG_APPEND_MIN, size);
	if (n < CFG_APPEND_MIN || (n & (n - 1)) != 0)
		return arr;
	return pool_grow(p, arr, n, 2 * n, size);
}

const char *cfg_lower(struct pool *p, const char *s)
{
	char *c;
	size_t i;

	/* Names are nearly always lower-case already: no copy then (a large config has one
	 * destination host and header name per route). */
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			break;
	if (s[i] == '\0')
		return s;
	c = pool_strdup(p, s);
	for (; c[i] != '\0'; i++)
		c[i] = (char)tolower((unsigned char)c[i]);
	return c;
}

/* ---- syntax checks ---- */

static bool decode_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 1123 label of len bytes: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static bool decode_label_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 63)
		return false;
	if (!decode_is_lower_alnum(s[0]) || !decode_is_lower_alnum(s[len - 1]))
		return false;
	for (i = 1; i + 1 < len; i++)
		if (!decode_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool cfg_is_dns_label(const char *s)
{
	return decode_label_ok(s, strlen(s));
}

bool cfg_is_dns_subdomain(const char *s)
{
	size_t len = strlen(s);
	const char *dot;

	if (len == 0 || len > 253)
		return false;
	for (;;) {
		dot = strchr(s, '.');
		if (!decode_label_ok(s, dot ? (size_t)(dot - s) : strlen(s)))
			return false;
		if (dot == NULL)
			return true;
		s = dot + 1;
	}
}

bool cfg_is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool cfg_is_ip_or_cidr(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *slash = strchr(s, '/');
	char addr[64];
	char *end;
	long bits;
	size_t len;
	int af;

	if (slash == NULL)
		return cfg_is_ip(s);
	len = (size_t)(slash - s);
	if (len == 0 || len >= sizeof(addr))
		return false;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1)
		af = 32;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		af = 128;
	else
		return false;
	if (!isdigit((unsigned char)slash[1]))
		return false;
	bits = strtol(slash + 1, &end, 10);
	return *end == '\0' && bits >= 0 && bits <= af;
}

bool cfg_is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
			return false;
	return true;
}

bool cfg_check_host(const char *host, unsigned flags, char *why, size_t whylen)
{
	const char *s = host, *dot, *last = host;
	size_t len = strlen(host), l;
	bool numeric = true;

	if (len == 0) {
		snprintf(why, whylen, "empty host name");
		return false;
	}
	if ((flags & CFG_HOST_IP) && cfg_is_ip(host))
		return true;
	if (len > 255) {
		snprintf(why, whylen, "host name \"%.32s...\" too long (max 255)", host);
		return false;
	}
	if (flags & CFG_HOST_WILDCARD) {
		if (strcmp(host, "*") == 0)
			return true;
		if (strncmp(host, "*.", 2) == 0)
			s = host + 2;
	}
	for (;;) {
		dot = strchr(s, '.');
		l = dot ? (size_t)(dot - s) : strlen(s);
		/* A trailing dot is the unambiguous absolute form ("istio.io."). */
		if (dot == NULL && l == 0 && s != host)
			break;
		if (!decode_label_ok(s, l)) {
			if (memchr(s, '*', l) != NULL)
				snprintf(
				    why, whylen,
				    "invalid host \"%s\": a wildcard must be the whole first label "
				    "(\"*.example.com\")",
				    host);
			else
				snprintf(why, whylen,
					 "invalid host \"%s\": label \"%.*s\" is not a valid "
					 "DNS label",
					 host, (int)(l > 63 ? 63 : l), s);
			return false;
		}
		last = s;
		if (dot == NULL)
			break;
		s = dot + 1;
	}
	/* Istio: the top-level domain cannot be all-numeric (that is an IP address). */
	for (s = last; *s != '\0' && *s != '.'; s++)
		if (!isdigit((unsigned char)*s))
			numeric = false;
	if (numeric) {
		snprintf(why, whylen, "invalid host \"%s\": top-level domain cannot be all-numeric",
			 host);
		return false;
	}
	return true;
}

bool cfg_hosts_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (strcmp(a, b) == 0 || strcmp(a, "*") == 0 || strcmp(b, "*") == 0)
		return true;
	/* "*.foo.com" covers "x.foo.com" and "*.x.foo.com". */
	if (a[0] == '*' && lb >= la && strcmp(b + lb - (la - 1), a + 1) == 0)
		return true;
	if (b[0] == '*' && la >= lb && strcmp(a + la - (lb - 1), b + 1) == 0)
		return true;
	return false;
}

bool cfg_resource_entry_ok(const struct node *n)
{
	return n != NULL && n->type == NODE_SCALAR && n->len > 0;
}

/* ---- structured helpers ---- */

bool cfg_decode_str_list(struct pool *p, struct diag *d, struct node *n, struct str_list *out,
			 bool lower)
{
	bool ok = true;
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (n == NULL)
		return true;
	if (!node_want_seq(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	for (i = 0; i < n->n; i++) {
		const char *s;

		if (!node_str(d, n->vals[i], &s)) {
			ok = false;
			continue;
		}
		out->v[out->n++] = lower ? cfg_lower(p, s) : s;
	}
	return ok;
}

bool cfg_decode_kv_map(struct pool *p, struct diag *d, struct node *n, struct kv_list *out)
{
	bool ok = true;
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	out->v = pool_calloc(p, n->n ? n->n : 1, sizeof(*out->v));
	for (i = 0; i < n->n; i++) {
		const char *v;

		n->keys[i]->used = true;
		if (!node_str(d, n->vals[i], &v)) {
			ok = false;
			continue;
		}
		out->v[out->n].key = n->keys[i]->str;
		out->v[out->n].value = v;
		out->n++;
	}
	return ok;
}

/* Label name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63; empty allowed for
 * values only. */
static bool decode_label_name_ok(const char *s, bool allow_empty)
{
	size_t len = strlen(s), i;

	if (len == 0)
		return allow_empty;
	if (len > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
		return false;
	for (i = 1; i + 1 < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("-_.", s[i]) == NULL)
			return false;
	return true;
}

static bool decode_label_key_ok(struct pool *p, const char *k)
{
	const char *slash = strchr(k, '/');
	char *prefix;

	if (slash == NULL)
		return decode_label_name_ok(k, false);
	prefix = pool_strndup(p, k, (size_t)(slash - k));
	return cfg_is_dns_subdomain(prefix) && decode_label_name_ok(slash + 1, false);
}

bool cfg_decode_labels(struct pool *p, struct diag *d, struct node *n, struct kv_list *out)
{
	bool ok;
	size_t i, j;

	ok = cfg_decode_kv_map(p, d, n, out);
	for (i = 0, j = 0; i < out->n; i++) {
		struct kv *kv = &out->v[i];

		/* Find the value node for the position of the report. */
		while (j < n->n && n->keys[j]->str != kv->key)
			j++;
		if (!decode_label_key_ok(p, kv->key)) {
			diag_error(d, n->vals[j], "invalid label key \"%s\"", kv->key);
			ok = false;
		}
		if (!decode_label_name_ok(kv->value, true)) {
			diag_error(d, n->vals[j], "invalid label value \"%s\"", kv->value);
			ok = false;
		}
	}
	return ok;
}

bool cfg_decode_string_match(struct pool *p, struct diag *d, struct node *n,
			     struct string_match *out, bool caseless)
{
	static const char *const kinds[] = {"exact", "prefix", "regex"};
	struct node *v = NULL, *x;
	const char *s;
	int i, given = 0, kind = 0;

	memset(out, 0, sizeof(*out));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	for (i = 0; i < 3; i++) {
		if ((x = node_get(n, kinds[i])) == NULL)
			continue;
		given++;
		v = x;
		kind = i;
	}
	node_check_unknown(d, n);
	if (given != 1) {
		diag_error(d, n,
			   "a string match needs exactly one of exact, prefix, regex (got %d)",
			   given);
		return false;
	}
	if (!node_str(d, v, &s))
		return false;
	if (kind == 2) {
		if (*s == '\0') {
			diag_error(d, v, "regex string match should not be empty");
			return false;
		}
		if (strlen(s) > DECODE_REGEX_MAX) {
			diag_error(d, v, "regex is too large, max length allowed is %d",
				   DECODE_REGEX_MAX);
			return false;
		}
	}
	out->kind = kind == 0 ? SM_EXACT : kind == 1 ? SM_PREFIX : SM_REGEX;
	/* Caseless exact/prefix values are stored lower-cased so the matcher can compare them
	 * with a lower-cased input; regexes keep their text (link compiles them caseless). */
	out->value = caseless && kind != 2 ? cfg_lower(p, s) : s;
	out->len = strlen(out->value);
	out->node = n;
	return true;
}

/* Header value: no control characters except HTAB (Envoy refuses them). */
static bool decode_header_value_ok(const char *v)
{
	for (; *v != '\0'; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return false;
	return true;
}

static bool decode_is_authority(const char *name)
{
	return strcmp(name, "host") == 0 || strcmp(name, ":authority") == 0;
}

/* Istio: request set/add may rewrite the authority (host / :authority) but no other pseudo
 * header; response ops and removals may touch neither. */
static bool decode_header_op_name(struct diag *d, struct node *at, const char *name,
				  bool authority_ok)
{
	if (authority_ok && decode_is_authority(name))
		return true;
	if (strcmp(name, "host") == 0) {
		diag_error(d, at, "invalid header \"%s\": cannot set Host header", name);
		return false;
	}
	if (name[0] == ':') {
		diag_error(d, at, "invalid header \"%s\": header cannot have \":\" prefix", name);
		return false;
	}
	if (!cfg_is_token(name)) {
		diag_error(d, at, "header name \"%s\" is not a valid header name", name);
		return false;
	}
	return true;
}

static bool decode_header_kv(struct pool *p, struct diag *d, struct node *n, struct kv_list *out,
			     bool authority_ok)
{
	bool ok = cfg_decode_kv_map(p, d, n, out);
	size_t i, j;

	for (i = 0, j = 0; i < out->n; i++) {
		while (j < n->n && n->keys[j]->str != out->v[i].key)
			j++;
		out->v[i].key = cfg_lower(p, out->v[i].key);
		if (!decode_header_op_name(d, n->vals[j], out->v[i].key, authority_ok))
			ok = false;
		if (!decode_header_value_ok(out->v[i].value)) {
			diag_error(d, n->vals[j], "header value contains a control character");
			ok = false;
		}
	}
	return ok;
}

static bool decode_header_op_list(struct pool *p, struct diag *d, struct node *n,
				  struct header_op_list *out, bool request)
{
	struct node *rm;
	bool ok = true;
	size_t i;

	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ok &= decode_header_kv(p, d, node_get(n, "set"), &out->set, request);
	ok &= decode_header_kv(p, d, node_get(n, "add"), &out->add, request);
	rm = node_get(n, "remove");
	if (cfg_decode_str_list(p, d, rm, &out->remove, true)) {
		for (i = 0; i < out->remove.n; i++)
			ok &= decode_header_op_name(d, rm->vals[i], out->remove.v[i], false);
	} else {
		ok = false;
	}
	node_check_unknown(d, n);
	return ok;
}

bool cfg_decode_headers_ops(struct pool *p, struct diag *d, struct node *n, struct headers_ops *out)
{
	bool ok = true;

	memset(out, 0, sizeof(*out));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	ok &= decode_header_op_list(p, d, node_get(n, "request"), &out->request, true);
	ok &= decode_header_op_list(p, d, node_get(n, "response"), &out->response, false);
	node_check_unknown(d, n);
	return ok;
}

bool cfg_decode_percent(struct diag *d, struct node *n, struct percent *out)
{
	struct node *v;
	double x = 0;

	memset(out, 0, sizeof(*out));
	if (n == NULL)
		return true;
	if (!node_want_map(d, n))
		return false;
	v = node_get(n, "value");
	node_check_unknown(d, n);
	if (v != NULL) {
		if (!node_double(d, v, 0, 100, &x))
			return false;
		if (x > 0 && x < 0.0001) {
			diag_error(d, v,
				   "percentage %g is neither 0.0, nor in range [0.0001, 100.0]", x);
			return false;
		}
	}
	out->given = true;
	out->value = x;
	return true;
}

bool cfg_decode_export_to(struct pool *p, struct diag *d, struct node *n, const char *ns,
			  bool allow_none, struct str_list *out)
{
	bool ok, star = false, none = false;
	size_t i, j;

	ok = cfg_decode_str_list(p, d, n, out, false);
	for (i = 0; i < out->n; i++) {
		const char *e = out->v[i];
		const char *ei = strcmp(e, ".") == 0 ? ns : e;

		if (strcmp(e, "*") == 0) {
			star = true;
		} else if (strcmp(e, "~") == 0) {
			if (!allow_none) {
				diag_error(d, n->vals[i],
					   "exportTo \"~\" is only valid for ServiceEntry");
				ok = false;
			}
			none = true;
		} else if (strcmp(e, ".") != 0 && !cfg_is_dns_label(e)) {
			diag_error(d, n->vals[i],
				   "invalid exportTo value \"%s\": expected \".\", "
				   "\"*\" or a namespace",
				   e);
			ok = false;
		}
		for (j = 0; j < i; j++) {
			const char *ej = strcmp(out->v[j], ".") == 0 ? ns : out->v[j];

			if (strcmp(ei, ej) == 0) {
				diag_error(d, n->vals[i],
					   "duplicate entries in exportTo for entry %s", e);
				ok = false;
				break;
			}
		}
	}
	if (star && out->n > 1) {
		diag_error(d, n, "cannot have both public (*) and non-public exportTo values");
		ok = false;
	}
	if (none && out->n > 1) {
		diag_error(d, n, "cannot export to no one (~) and someone");
		ok = false;
	}
	return ok;
}

bool cfg_decode_duration(struct diag *d, struct node *n, uint64_t min_us, bool seconds_only,
			 uint64_t *out_us)
{
	uint64_t us;

	if (n == NULL)
		return true;
	if (!node_duration(d, n, DECODE_DURATION_MAX_US, &us))
		return false;
	if (us < min_us) {
		if (min_us == 1000)
			diag_error(d, n, "duration must be at least 1ms");
		else
			diag_error(d, n, "duration must be at least %llums",
				   (unsigned long long)(min_us / 1000));
		return false;
	}
	if (seconds_only && us % 1000000 != 0) {
		diag_error(d, n, "duration is accurate only to seconds precision");
		return false;
	}
	if (us % 1000 != 0) {
		diag_error(d, n, "only durations to ms precision are supported");
		return false;
	}
	*out_us = us;
	return true;
}

const char *cfg_expand_host(struct pool *p, const char *host, const char *ns)
{
	if (host == NULL)
		return NULL;
	/* Istio's ResolveShortnameToFQDN: wildcards and dotted names are already qualified. */
	if (host[0] == '*' || host[0] == '\0' || strchr(host, '.') != NULL || strchr(host, ':'))
		return cfg_lower(p, host);
	return cfg_lower(p, pool_printf(p, "%s.%s.svc.cluster.local", host, ns));
}

bool cfg_no_target_ref(struct diag *d, struct node *spec, const char *instead)
{
	struct node *t = node_get(spec, "targetRef");

	if (t == NULL)
		t = node_get(spec, "targetRefs");
	if (t == NULL)
		return true;
	node_mark_used(node_get(spec, "targetRef"));
	node_mark_used(node_get(spec, "targetRefs"));
	diag_error(d, t,
		   "targetRef attaches a policy to a Kubernetes Gateway API resource; on this "
		   "appliance use %s (or none)",
		   instead);
	return false;
}

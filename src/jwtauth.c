#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/diag.h"
#include "config/model.h"
#include "fetch.h"
#include "http1.h"
#include "jwtauth.h"
#include "log.h"
#include "pool.h"

#define JWTAUTH_TOKENS_MAX 4    /* distinct tokens one request may carry */
#define JWTAUTH_RULES_MAX 64    /* issuers (a bit each in struct candidate) */
#define JWTAUTH_CLOCK_SKEW 60   /* seconds of exp/nbf grace: Envoy's default */
#define JWTAUTH_JWKS_MAX 262144 /* bytes of a fetched key set */
#define JWTAUTH_OUT_MAX 16384   /* bytes of the fields a request gains */

/* ---- keys ---- */

static void keys_free(void *arg)
{
	jwks_free(arg);
}

void jwtauth_link(struct pool *p, struct diag *d, struct cfg_set *set)
{
	if (set->nra_rules > JWTAUTH_RULES_MAX)
		diag_error(d, set->ra_rules[JWTAUTH_RULES_MAX]->node,
			   "more than %d JWT issuers apply to this appliance", JWTAUTH_RULES_MAX);
	for (size_t i = 0; i < set->nra_rules; i++) {
		struct ra_rule *r = set->ra_rules[i];
		char err[256];

		if (r->nclaim_headers > JWTAUTH_CLAIM_HEADERS_MAX)
			diag_error(d, r->node, "outputClaimToHeaders: at most %d fields",
				   JWTAUTH_CLAIM_HEADERS_MAX);
		if (r->jwks == NULL) {
			if (r->jwks_uri == NULL)
				diag_warn(d, r->node,
					  "issuer \"%s\": neither jwks nor jwksUri; every token of "
					  "this issuer is refused",
					  r->issuer);
			continue;
		}
		r->keys = jwks_parse(r->jwks, strlen(r->jwks), err, sizeof(err));
		if (r->keys == NULL)
			diag_error(d, r->jwks_node, "jwks: %s", err);
		else
			pool_on_free(p, keys_free, r->keys);
	}
}

/* Documents fetched from jwksUris (control thread only): kept so that a failed fetch
 * keeps the keys a URI gave before, and a changed document can be noticed. */
struct fetched {
	struct fetched *next;
	char *uri;
	char *doc;
};
static struct fetched *fetched;

static struct fetched *fetched_find(const char *uri)
{
	for (struct fetched *f = fetched; f != NULL; f = f->next)
		if (strcmp(f->uri, uri) == 0)
			return f;
	return NULL;
}

/* Store doc for uri; true when it differs from what was there. */
static bool fetched_store(const char *uri, char *doc)
{
	struct fetched *f = fetched_find(uri);
	bool changed;

	if (f == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL || (f->uri = strdup(uri)) == NULL) {
			free(f);
			free(doc);
			return false;
		}
		f->next = fetched;
		fetched = f;
	}
	changed = f->doc == NULL || strcmp(f->doc, doc) != 0;
	free(f->doc);
	f->doc = doc;
	return changed;
}

void jwtauth_fetch_cleanup(void)
{
	while (fetched != NULL) {
		struct fetched *f = fetched;

		fetched = f->next;
		free(f->uri);
		free(f->doc);
		free(f);
	}
}

/* Fetch a rule's jwksUri into the store: true when its document changed; err says why
 * when the fetch failed (the store keeps what it had). */
static bool fetch_uri(const struct ra_rule *r, char *err, size_t errlen)
{
	char kerr[200], *doc = NULL;
	size_t len;
	struct jwks *ks;

	err[0] = '\0';
	if (fetch_get(r->jwks_uri, (int)(r->fetch_timeout_us / 1000), JWTAUTH_JWKS_MAX, &doc, &len,
		      err, errlen) != 0)
		return false;
	if ((ks = jwks_parse(doc, len, kerr, sizeof(kerr))) == NULL) {
		snprintf(err, errlen, "not a usable JWKS: %s", kerr);
		free(doc);
		return false;
	}
	jwks_free(ks);
	return fetched_store(r->jwks_uri, doc);
}

void jwtauth_fetch(struct pool *p, struct cfg_set *set)
{
	for (size_t i = 0; i < set->nra_rules; i++) {
		struct ra_rule *r = set->ra_rules[i];
		char err[256], kerr[256];
		struct fetched *f;

		if (r->jwks != NULL || r->jwks_uri == NULL)
			continue;
		fetch_uri(r, err, sizeof(err));
		f = fetched_find(r->jwks_uri);
		if (f == NULL || f->doc == NULL) {
			log_warnx("RequestAuthentication issuer \"%s\": jwksUri %s: %s; its tokens "
				  "are refused until the keys load",
				  r->issuer, r->jwks_uri, err);
			continue;
		}
		if (err[0] != '\0')
			log_warnx("RequestAuthentication issuer \"%s\": jwksUri %s: %s; the keys "
				  "it gave before stay in use",
				  r->issuer, r->jwks_uri, err);
		r->keys = jwks_parse(f->doc, strlen(f->doc), kerr, sizeof(kerr));
		if (r->keys != NULL)
			pool_on_free(p, keys_free, r->keys);
	}
}

bool jwtauth_refresh(const struct cfg_set *set)
{
	bool changed = false;

	for (size_t i = 0; i < set->nra_rules; i++) {
		const struct ra_rule *r = set->ra_rules[i];
		char err[256];

		if (r->jwks != NULL || r->jwks_uri == NULL)
			continue;
		if (fetch_uri(r, err, sizeof(err)))
			changed = true;
		else if (err[0] != '\0')
			log_warnx("RequestAuthentication issuer \"%s\": jwksUri %s: %s", r->issuer,
				  r->jwks_uri, err);
	}
	return changed;
}

bool jwtauth_uses_uris(const struct cfg_set *set)
{
	for (size_t i = 0; i < set->nra_rules; i++)
		if (set->ra_rules[i]->jwks == NULL && set->ra_rules[i]->jwks_uri != NULL)
			return true;
	return false;
}

/* ---- requests ---- */

struct candidate {
	const char *tok;
	size_t len;
	int field;      /* index of the request field it came in, or -1 (query, cookie) */
	uint64_t rules; /* bit i: rule i's locations found it */
};

static __thread struct jwt *tl_jwt;
static __thread char *tl_out;

/* Tokens whose signature this thread verified, under one config generation: a client
 * sends the same token with request after request, and an RSA-2048 signature costs
 * twice a whole request.  Direct-mapped; a hit is the same bytes (compared whole), so it
 * skips the signature only: time and audience are checked every time. */
#define JWT_CACHE_SLOTS 64
#define JWT_CACHE_TOKEN_MAX 4096
struct verified {
	uint64_t generation;
	const struct ra_rule *rule;
	size_t len;
	char *tok;
};
static __thread struct verified *tl_verified;

/* A token's last bytes are its signature's base64url: as good as random. */
static struct verified *verified_slot(const char *tok, size_t len)
{
	uint64_t x = 0;

	if (tl_verified == NULL &&
	    (tl_verified = calloc(JWT_CACHE_SLOTS, sizeof(*tl_verified))) == NULL)
		return NULL;
	memcpy(&x, tok + len - (len < 8 ? len : 8), len < 8 ? len : 8);
	return &tl_verified[(x * 0x9e3779b97f4a7c15ull) >> 58];
}

static bool verified_before(const struct verified *v, uint64_t generation,
			    const struct ra_rule *rule, const char *tok, size_t len)
{
	return v != NULL && v->tok != NULL && v->generation == generation && v->rule == rule &&
	       v->len == len && memcmp(v->tok, tok, len) == 0;
}

static void verified_keep(struct verified *v, uint64_t generation, const struct ra_rule *rule,
			  const char *tok, size_t len)
{
	char *copy;

	if (v == NULL || len > JWT_CACHE_TOKEN_MAX || (copy = realloc(v->tok, len)) == NULL)
		return;
	memcpy(copy, tok, len);
	v->tok = copy;
	v->len = len;
	v->rule = rule;
	v->generation = generation;
}
static __thread char tl_principal[1024];

void jwtauth_thread_cleanup(void)
{
	free(tl_jwt);
	free(tl_out);
	tl_jwt = NULL;
	tl_out = NULL;
	for (size_t i = 0; tl_verified != NULL && i < JWT_CACHE_SLOTS; i++)
		free(tl_verified[i].tok);
	free(tl_verified);
	tl_verified = NULL;
}

static void add_candidate(struct candidate *c, size_t *nc, const char *tok, size_t len, int field,
			  size_t rule)
{
	for (size_t i = 0; i < *nc; i++)
		if (c[i].len == len && memcmp(c[i].tok, tok, len) == 0) {
			c[i].rules |= (uint64_t)1 << rule;
			return;
		}
	if (*nc == JWTAUTH_TOKENS_MAX)
		return;
	c[*nc].tok = tok;
	c[*nc].len = len;
	c[*nc].field = field;
	c[(*nc)++].rules = (uint64_t)1 << rule;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t'))
		(*s)++, (*len)--;
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* name=value pairs split at sep (query: '&', cookies: ';'), values as sent. */
static void from_pairs(const char *s, size_t len, char sep, const struct str_list *names,
		       struct candidate *c, size_t *nc, size_t rule)
{
	const char *end = s + len, *next, *eq;

	for (; s < end; s = next + 1) {
		const char *p = s;
		size_t plen;

		next = memchr(s, sep, (size_t)(end - s));
		if (next == NULL)
			next = end;
		plen = (size_t)(next - p);
		trim(&p, &plen);
		eq = memchr(p, '=', plen);
		if (eq == NULL)
			continue;
		for (size_t k = 0; k < names->n; k++)
			if (strlen(names->v[k]) == (size_t)(eq - p) &&
			    memcmp(names->v[k], p, (size_t)(eq - p)) == 0 && eq + 1 < p + plen)
				add_candidate(c, nc, eq + 1, (size_t)(p + plen - eq - 1), -1, rule);
	}
}

static size_t find_candidates(const struct cfg_set *set, const struct http1_header *h, size_t n,
			      const char *query, size_t query_len, struct candidate *c)
{
	size_t nc = 0;

	for (size_t r = 0; r < set->nra_rules; r++) {
		const struct ra_rule *rule = set->ra_rules[r];

		for (size_t l = 0; l < rule->nheaders; l++) {
			const struct ra_header_loc *loc = &rule->headers[l];
			size_t nlen = strlen(loc->name), plen = strlen(loc->prefix);

			for (size_t i = 0; i < n; i++) {
				const char *v = h[i].value;
				size_t vlen = h[i].value_len;

				if (h[i].name_len != nlen ||
				    strncasecmp(h[i].name, loc->name, nlen) != 0)
					continue;
				/* RFC 6750: the scheme name is case-insensitive. */
				if (vlen < plen || strncasecmp(v, loc->prefix, plen) != 0)
					continue;
				v += plen;
				vlen -= plen;
				trim(&v, &vlen);
				if (vlen > 0)
					add_candidate(c, &nc, v, vlen, (int)i, r);
			}
		}
		if (rule->params.n > 0 && query != NULL)
			from_pairs(query, query_len, '&', &rule->params, c, &nc, r);
		for (size_t i = 0; rule->cookies.n > 0 && i < n; i++)
			if (h[i].name_len == 6 && strncasecmp(h[i].name, "cookie", 6) == 0)
				from_pairs(h[i].value, h[i].value_len, ';', &rule->cookies, c, &nc,
					   r);
	}
	return nc;
}

/* Verify one token: the rule whose issuer it names (among those that found it). */
static enum jwt_status verify(const struct cfg_set *set, uint64_t generation,
			      const struct candidate *c, struct jwt *j, int64_t now,
			      const struct ra_rule **rule)
{
	enum jwt_status st = jwt_decode(j, c->tok, c->len);
	const struct ra_rule *r = NULL;
	struct verified *v;

	if (st != JWT_OK)
		return st;
	for (size_t i = 0; i < set->nra_rules && r == NULL; i++)
		if ((c->rules & ((uint64_t)1 << i)) && j->iss >= 0 &&
		    jwt_claim_is(j, j->iss, set->ra_rules[i]->issuer))
			r = set->ra_rules[i];
	if (r == NULL)
		return JWT_UNKNOWN_ISSUER;
	if (r->keys == NULL)
		return JWT_JWKS_UNAVAILABLE;
	v = verified_slot(c->tok, c->len);
	if (!verified_before(v, generation, r, c->tok, c->len)) {
		if ((st = jwt_verify_signature(j, r->keys)) != JWT_OK)
			return st;
		verified_keep(v, generation, r, c->tok, c->len);
	}
	if ((st = jwt_check_time(j, now, JWTAUTH_CLOCK_SKEW)) != JWT_OK)
		return st;
	if (!jwt_audience_allowed(j, r->audiences.v, r->audiences.n))
		return JWT_AUDIENCE_NOT_ALLOWED;
	*rule = r;
	return JWT_OK;
}

static bool name_is(const struct http1_header *h, const char *name)
{
	return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* A field some rule outputs: only a verified token may set it, never the client. */
static bool is_output_field(const struct cfg_set *set, const struct http1_header *h)
{
	for (size_t r = 0; r < set->nra_rules; r++) {
		const struct ra_rule *rule = set->ra_rules[r];

		if (rule->payload_header != NULL && name_is(h, rule->payload_header))
			return true;
		for (size_t k = 0; k < rule->nclaim_headers; k++)
			if (name_is(h, rule->claim_headers[k].header))
				return true;
	}
	return false;
}

static void drop_output_fields(const struct cfg_set *set, struct http1_header *h, size_t *n)
{
	size_t keep = 0;

	for (size_t i = 0; i < *n; i++)
		if (!is_output_field(set, &h[i]))
			h[keep++] = h[i];
	*n = keep;
}

struct out {
	char *buf;
	size_t used;
	struct http1_header *h;
	size_t *n;
};

static void out_add(struct out *o, const char *name, const char *v, size_t len)
{
	struct http1_header *x;

	if (len > JWTAUTH_OUT_MAX - o->used)
		return; /* bounded: the rest is left out */
	x = &o->h[(*o->n)++];
	memcpy(o->buf + o->used, v, len);
	x->name = name;
	x->name_len = strlen(name);
	x->value = o->buf + o->used;
	x->value_len = len;
	o->used += len;
}

/* A claim's value as a field: a string, number or boolean as it is, a list joined with
 * ','.  Values with bytes a field may not carry are left out. */
struct claim_text {
	char buf[2048];
	size_t len;
	bool bad;
};

static bool claim_append(const char *v, size_t len, void *arg)
{
	struct claim_text *t = arg;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			t->bad = true;
	if (t->bad || t->len + len + 1 > sizeof(t->buf)) {
		t->bad = true;
		return true;
	}
	if (t->len > 0)
		t->buf[t->len++] = ',';
	memcpy(t->buf + t->len, v, len);
	t->len += len;
	return false;
}

static void rewrite_fields(const struct cfg_set *set, const struct ra_rule *rule,
			   const struct candidate *c, size_t nc, const struct jwt *j,
			   const struct candidate *verified, struct http1_header *h, size_t *n)
{
	struct out o = {tl_out, 0, h, n};
	size_t keep = 0;

	for (size_t i = 0; i < *n; i++) {
		bool drop = is_output_field(set, &h[i]);

		for (size_t k = 0; k < nc && !drop; k++)
			drop = c[k].field == (int)i && !rule->forward_token;
		if (!drop)
			h[keep++] = h[i];
	}
	*n = keep;
	if (rule->payload_header != NULL) {
		/* Envoy forwards the payload as the token carries it: base64url */
		const char *d1 = memchr(verified->tok, '.', verified->len);
		const char *d2 =
		    memchr(d1 + 1, '.', verified->len - (size_t)(d1 + 1 - verified->tok));

		out_add(&o, rule->payload_header, d1 + 1, (size_t)(d2 - d1 - 1));
	}
	for (size_t k = 0; k < rule->nclaim_headers; k++) {
		const struct ra_claim_header *ch = &rule->claim_headers[k];
		struct claim_text t = {.len = 0};
		int i = jwt_claim_path(j, ch->path, ch->npath);

		if (i < 0)
			continue;
		if (j->ptok[i].type == JSON_STRING) { /* as it is: a scope keeps its spaces */
			char v[sizeof(t.buf)];
			ssize_t vlen = json_string(j->payload, j->ptok, i, v, sizeof(v));

			if (vlen > 0)
				claim_append(v, (size_t)vlen, &t);
		} else {
			jwt_claim_any(j, i, claim_append, &t);
		}
		if (!t.bad && t.len > 0)
			out_add(&o, ch->header, t.buf, t.len);
	}
}

enum jwt_status jwtauth_request(const struct cfg_set *set, uint64_t generation,
				struct http1_header *h, size_t *n, const char *query,
				size_t query_len, int64_t now, struct jwtauth *out)
{
	struct candidate c[JWTAUTH_TOKENS_MAX];
	const struct ra_rule *rule = NULL, *first_rule = NULL;
	size_t nc, first = 0;
	enum jwt_status st;

	memset(out, 0, sizeof(*out));
	if (set->nra_rules == 0)
		return JWT_OK;
	if ((nc = find_candidates(set, h, *n, query, query_len, c)) == 0) {
		drop_output_fields(set, h, n);
		return JWT_OK;
	}
	if (tl_jwt == NULL && (tl_jwt = malloc(2 * sizeof(*tl_jwt))) == NULL)
		return JWT_VERIFICATION_FAILS; /* out of memory: fail closed */
	if (tl_out == NULL && (tl_out = malloc(JWTAUTH_OUT_MAX)) == NULL)
		return JWT_VERIFICATION_FAILS;
	/* Every token must verify; the first one found speaks for the request. */
	for (size_t i = 0; i < nc; i++) {
		st = verify(set, generation, &c[i], &tl_jwt[i == 0 ? 0 : 1], now, &rule);
		if (st != JWT_OK)
			return st;
		if (i == 0) {
			first_rule = rule;
			first = i;
		}
	}
	out->jwt = &tl_jwt[0];
	{
		char sub[512] = "";

		if (out->jwt->sub >= 0)
			json_string(out->jwt->payload, out->jwt->ptok, out->jwt->sub, sub,
				    sizeof(sub));
		snprintf(tl_principal, sizeof(tl_principal), "%s/%s", first_rule->issuer, sub);
		out->principal = tl_principal;
	}
	rewrite_fields(set, first_rule, c, nc, out->jwt, &c[first], h, n);
	return JWT_OK;
}

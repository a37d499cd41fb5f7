#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "accesslog.h"
#include "logformat.h"
#include "pool.h"
#include "tls.h"

/* Envoy's command operators that meshgate has the value of, and those it knows but does
 * not record (printed "-", as Envoy prints a value it lacks). */
enum lf_kind {
	LF_LITERAL,
	LF_START_TIME,
	LF_REQ,
	LF_RESP,
	LF_REQ_WITHOUT_QUERY,
	LF_PROTOCOL,
	LF_RESPONSE_CODE,
	LF_RESPONSE_CODE_DETAILS,
	LF_RESPONSE_FLAGS,
	LF_RESPONSE_FLAGS_LONG,
	LF_BYTES_RECEIVED,
	LF_BYTES_SENT,
	LF_DURATION,
	LF_UPSTREAM_HOST,
	LF_UPSTREAM_CLUSTER,
	LF_UPSTREAM_LOCAL,
	LF_DOWNSTREAM_REMOTE,
	LF_DOWNSTREAM_LOCAL,
	LF_REQUESTED_SERVER_NAME,
	LF_ROUTE_NAME,
	LF_ATTEMPTS,
	LF_GRPC_STATUS,
	LF_TLS_VERSION,
	LF_TLS_CIPHER,
	LF_PEER_URI_SAN,
	LF_PEER_DNS_SAN,
	LF_PEER_SUBJECT,
	LF_PEER_ISSUER,
	LF_PEER_FINGERPRINT_256,
	LF_LOCAL_URI_SAN,
	LF_LOCAL_SUBJECT,
	LF_CONSTANT, /* HOSTNAME, ENVIRONMENT(X): read at load */
	LF_UNRECORDED,
};

/* Longest START_TIME(...) format. */
#define LF_TIME_FORMAT_MAX 64

/* How an address operator prints: "ip:port", the ip alone, or the port. */
enum lf_addr { LF_ADDR_FULL = 0, LF_ADDR_IP, LF_ADDR_PORT };

/* GRPC_STATUS(...) formats */
enum lf_grpc { LF_GRPC_CAMEL = 0, LF_GRPC_SNAKE, LF_GRPC_NUMBER };

/* Where a REQ/RESP name is found: a field of the entry, or a kept copy (slot). */
enum lf_hdr {
	LF_HDR_KEPT = 0,
	LF_HDR_METHOD,
	LF_HDR_PATH,
	LF_HDR_AUTHORITY,
	LF_HDR_SCHEME,
	LF_HDR_USER_AGENT,
	LF_HDR_REQUEST_ID,
	LF_HDR_XFF,
	LF_HDR_STATUS,
	LF_HDR_SERVICE_TIME,
	LF_HDR_GRPC_STATUS,
};

struct lf_name {
	const char *name; /* lower case */
	enum lf_hdr where;
	int slot; /* LF_HDR_KEPT: the index among the kept copies, -1 none */
};

struct lf_op {
	enum lf_kind kind;
	int variant;           /* enum lf_addr, enum lf_grpc, or a header side */
	size_t max_len;        /* :Z, 0 none */
	const char *text;      /* the literal, START_TIME's format or NULL, a constant */
	size_t text_len;       /* ... its length */
	struct lf_name hdr[2]; /* REQ(X?Y): X, then Y (name NULL when absent) */
};

struct lf_field {
	const char *key; /* JSON label, NULL for a text format */
	struct lf_op *ops;
	size_t nops;
};

struct logformat {
	bool json;
	struct lf_field *fields;
	size_t nfields, cap;
};

struct lf_spec {
	const char *name;
	enum lf_kind kind;
	int variant;
	bool arg; /* takes "(...)" */
};

static const struct lf_spec lf_specs[] = {
    {"START_TIME", LF_START_TIME, 0, false},
    {"REQ", LF_REQ, 0, true},
    {"RESP", LF_RESP, 1, true},
    {"REQ_WITHOUT_QUERY", LF_REQ_WITHOUT_QUERY, 0, true},
    {"PROTOCOL", LF_PROTOCOL, 0, false},
    {"RESPONSE_CODE", LF_RESPONSE_CODE, 0, false},
    {"RESPONSE_CODE_DETAILS", LF_RESPONSE_CODE_DETAILS, 0, false},
    {"RESPONSE_FLAGS", LF_RESPONSE_FLAGS, 0, false},
    {"RESPONSE_FLAGS_LONG", LF_RESPONSE_FLAGS_LONG, 0, false},
    {"BYTES_RECEIVED", LF_BYTES_RECEIVED, 0, false},
    {"BYTES_SENT", LF_BYTES_SENT, 0, false},
    {"DURATION", LF_DURATION, 0, false},
    {"UPSTREAM_HOST", LF_UPSTREAM_HOST, LF_ADDR_FULL, false},
    {"UPSTREAM_REMOTE_ADDRESS", LF_UPSTREAM_HOST, LF_ADDR_FULL, false},
    {"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", LF_UPSTREAM_HOST, LF_ADDR_IP, false},
    {"UPSTREAM_REMOTE_PORT", LF_UPSTREAM_HOST, LF_ADDR_PORT, false},
    {"UPSTREAM_CLUSTER", LF_UPSTREAM_CLUSTER, 0, false},
    {"UPSTREAM_LOCAL_ADDRESS", LF_UPSTREAM_LOCAL, LF_ADDR_FULL, false},
    {"UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", LF_UPSTREAM_LOCAL, LF_ADDR_IP, false},
    {"UPSTREAM_LOCAL_PORT", LF_UPSTREAM_LOCAL, LF_ADDR_PORT, false},
    /* meshgate does not take the client's address from x-forwarded-for: the remote
     * address is the direct one */
    {"DOWNSTREAM_REMOTE_ADDRESS", LF_DOWNSTREAM_REMOTE, LF_ADDR_FULL, false},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", LF_DOWNSTREAM_REMOTE, LF_ADDR_IP, false},
    {"DOWNSTREAM_REMOTE_PORT", LF_DOWNSTREAM_REMOTE, LF_ADDR_PORT, false},
    {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS", LF_DOWNSTREAM_REMOTE, LF_ADDR_FULL, false},
    {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", LF_DOWNSTREAM_REMOTE, LF_ADDR_IP, false},
    {"DOWNSTREAM_DIRECT_REMOTE_PORT", LF_DOWNSTREAM_REMOTE, LF_ADDR_PORT, false},
    {"DOWNSTREAM_LOCAL_ADDRESS", LF_DOWNSTREAM_LOCAL, LF_ADDR_FULL, false},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", LF_DOWNSTREAM_LOCAL, LF_ADDR_IP, false},
    {"DOWNSTREAM_LOCAL_PORT", LF_DOWNSTREAM_LOCAL, LF_ADDR_PORT, false},
    {"REQUESTED_SERVER_NAME", LF_REQUESTED_SERVER_NAME, 0, false},
    {"ROUTE_NAME", LF_ROUTE_NAME, 0, false},
    {"UPSTREAM_REQUEST_ATTEMPT_COUNT", LF_ATTEMPTS, 0, false},
    {"GRPC_STATUS", LF_GRPC_STATUS, LF_GRPC_CAMEL, false},
    {"GRPC_STATUS_NUMBER", LF_GRPC_STATUS, LF_GRPC_NUMBER, false},
    {"DOWNSTREAM_TLS_VERSION", LF_TLS_VERSION, 0, false},
    {"DOWNSTREAM_TLS_CIPHER", LF_TLS_CIPHER, 0, false},
    {"DOWNSTREAM_PEER_URI_SAN", LF_PEER_URI_SAN, 0, false},
    {"DOWNSTREAM_PEER_DNS_SAN", LF_PEER_DNS_SAN, 0, false},
    {"DOWNSTREAM_PEER_SUBJECT", LF_PEER_SUBJECT, 0, false},
    {"DOWNSTREAM_PEER_ISSUER", LF_PEER_ISSUER, 0, false},
    {"DOWNSTREAM_PEER_FINGERPRINT_256", LF_PEER_FINGERPRINT_256, 0, false},
    {"DOWNSTREAM_LOCAL_URI_SAN", LF_LOCAL_URI_SAN, 0, false},
    {"DOWNSTREAM_LOCAL_SUBJECT", LF_LOCAL_SUBJECT, 0, false},
    {"HOSTNAME", LF_CONSTANT, 0, false},
    {"ENVIRONMENT", LF_CONSTANT, 1, true},
};

/* Envoy's operators whose values meshgate does not keep. */
static const char *const lf_unrecorded[] = {
    "REQUEST_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "ROUNDTRIP_DURATION",
    "UPSTREAM_PROTOCOL",
    "CONNECTION_TERMINATION_DETAILS",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "CONNECTION_ID",
    "UPSTREAM_CONNECTION_ID",
    "STREAM_ID",
    "UNIQUE_ID",
    "VIRTUAL_CLUSTER_NAME",
    "UPSTREAM_FILTER_STATE",
    "FILTER_STATE",
    "DYNAMIC_METADATA",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "METADATA",
    "CEL",
    "TRAILER",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_PEER_SERIAL",
    "DOWNSTREAM_PEER_CERT",
    "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CERT_V_END",
    "DOWNSTREAM_PEER_FINGERPRINT_1",
    "DOWNSTREAM_LOCAL_DNS_SAN",
    "UPSTREAM_TLS_VERSION",
    "UPSTREAM_TLS_CIPHER",
    "UPSTREAM_TLS_SESSION_ID",
    "UPSTREAM_PEER_SUBJECT",
    "UPSTREAM_PEER_ISSUER",
    "UPSTREAM_PEER_URI_SAN",
    "UPSTREAM_PEER_DNS_SAN",
    "UPSTREAM_PEER_CERT",
    "UPSTREAM_LOCAL_URI_SAN",
    "UPSTREAM_LOCAL_SUBJECT",
    "UPSTREAM_LOCAL_DNS_SAN",
    "UPSTREAM_CLUSTER_RAW",
    "UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID",
    "DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID",
    "REQUESTED_SERVER_NAME_RAW",
    "ACCESS_LOG_TYPE",
    "TRACE_ID",
    "QUERY_PARAM",
    "PATH",
    NULL,
};

/* gRPC status names, camel (Envoy's default) and snake case, by code. */
static const char *const lf_grpc_names[][2] = {
    {"OK", "OK"},
    {"Canceled", "CANCELLED"},
    {"Unknown", "UNKNOWN"},
    {"InvalidArgument", "INVALID_ARGUMENT"},
    {"DeadlineExceeded", "DEADLINE_EXCEEDED"},
    {"NotFound", "NOT_FOUND"},
    {"AlreadyExists", "ALREADY_EXISTS"},
    {"PermissionDenied", "PERMISSION_DENIED"},
    {"ResourceExhausted", "RESOURCE_EXHAUSTED"},
    {"FailedPrecondition", "FAILED_PRECONDITION"},
    {"Aborted", "ABORTED"},
    {"OutOfRange", "OUT_OF_RANGE"},
    {"Unimplemented", "UNIMPLEMENTED"},
    {"Internal", "INTERNAL"},
    {"Unavailable", "UNAVAILABLE"},
    {"DataLoss", "DATA_LOSS"},
    {"Unauthenticated", "UNAUTHENTICATED"},
};

#define LF_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- compiling ---- */

static struct lf_op *lf_push(struct pool *p, struct lf_field *fl, size_t *cap)
{
	if (fl->nops == *cap) {
		struct lf_op *n = pool_calloc(p, *cap * 2, sizeof(*n));

		memcpy(n, fl->ops, fl->nops * sizeof(*n));
		fl->ops = n;
		*cap *= 2;
	}
	memset(&fl->ops[fl->nops], 0, sizeof(fl->ops[0]));
	return &fl->ops[fl->nops++];
}

static bool lf_fail(char *err, size_t errlen, size_t *off, size_t at, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	*off = at;
	return false;
}

/* A REQ/RESP header name: its place, lower-cased. */
static void lf_header(struct pool *p, int side, const char *s, size_t len, struct lf_name *out)
{
	static const struct {
		const char *name;
		int side;
		enum lf_hdr where;
	} fields[] = {
	    {":method", 0, LF_HDR_METHOD},
	    {":path", 0, LF_HDR_PATH},
	    {":authority", 0, LF_HDR_AUTHORITY},
	    {"host", 0, LF_HDR_AUTHORITY},
	    {":scheme", 0, LF_HDR_SCHEME},
	    {"user-agent", 0, LF_HDR_USER_AGENT},
	    {"x-request-id", 0, LF_HDR_REQUEST_ID},
	    {"x-forwarded-for", 0, LF_HDR_XFF},
	    {":status", 1, LF_HDR_STATUS},
	    {"x-envoy-upstream-service-time", 1, LF_HDR_SERVICE_TIME},
	    {"grpc-status", 1, LF_HDR_GRPC_STATUS},
	};
	char *name = pool_strndup(p, s, len);

	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)name[i]);
	out->name = name;
	out->where = LF_HDR_KEPT;
	out->slot = -1;
	for (size_t i = 0; i < LF_COUNT(fields); i++)
		if (fields[i].side == side && strcmp(fields[i].name, name) == 0)
			out->where = fields[i].where;
}

static bool lf_header_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!(isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || (ch == ':' && i == 0)))
			return false;
	}
	return true;
}

/* The operator that starts at s[at] == '%'; *end: the offset after its closing '%'. */
static bool lf_operator(struct pool *p, const char *s, size_t at, struct lf_op *op, size_t *end,
			char *err, size_t errlen, size_t *off, logformat_warn_fn *warn,
			void *warn_arg)
{
	size_t i = at + 1, name_len, arg_at = 0, arg_len = 0;
	const struct lf_spec *spec = NULL;
	bool has_arg = false;
	char name[64];

	while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')
		i++;
	name_len = i - at - 1;
	if (name_len == 0)
		return lf_fail(err, errlen, off, at,
			       "a '%' that starts no command operator (Envoy's %NAME%, "
			       "%NAME(arg)% or %NAME(arg):length%)");
	if (name_len >= sizeof(name))
		return lf_fail(err, errlen, off, at + 1, "unknown command operator");
	memcpy(name, s + at + 1, name_len);
	name[name_len] = '\0';
	if (s[i] == '(') {
		const char *close = strchr(s + i + 1, ')');

		if (close == NULL)
			return lf_fail(err, errlen, off, i, "'(' without its ')'");
		has_arg = true;
		arg_at = i + 1;
		arg_len = (size_t)(close - (s + arg_at));
		i = (size_t)(close - s) + 1;
	}
	if (s[i] == ':') {
		size_t z = 0, zat = ++i;

		while (s[i] >= '0' && s[i] <= '9' && z < 100000)
			z = z * 10 + (size_t)(s[i++] - '0');
		if (i == zat || z == 0)
			return lf_fail(err, errlen, off, zat, "expected a length after ':'");
		op->max_len = z;
	}
	if (s[i] != '%')
		return lf_fail(err, errlen, off, i, "expected '%' closing the command operator");
	*end = i + 1;

	for (size_t k = 0; k < LF_COUNT(lf_specs); k++)
		if (strcmp(lf_specs[k].name, name) == 0)
			spec = &lf_specs[k];
	if (spec == NULL) {
		for (size_t k = 0; lf_unrecorded[k] != NULL; k++)
			if (strcmp(lf_unrecorded[k], name) == 0) {
				op->kind = LF_UNRECORDED;
				if (warn != NULL)
					warn(warn_arg, at, lf_unrecorded[k]);
				return true;
			}
		snprintf(err, errlen, "unknown command operator %%%s%%", name);
		*off = at + 1;
		return false;
	}
	op->kind = spec->kind;
	op->variant = spec->variant;
	if (spec->kind == LF_START_TIME) {
		if (arg_len > LF_TIME_FORMAT_MAX)
			return lf_fail(err, errlen, off, arg_at,
				       "START_TIME format longer than 64 bytes");
		if (has_arg && arg_len > 0)
			op->text = pool_strndup(p, s + arg_at, arg_len);
		return true;
	}
	if (spec->kind == LF_GRPC_STATUS && has_arg && op->variant == LF_GRPC_CAMEL) {
		static const char *const forms[] = {"CAMEL_STRING", "SNAKE_STRING", "NUMBER"};

		for (int k = 0; k < 3; k++)
			if (strlen(forms[k]) == arg_len &&
			    memcmp(forms[k], s + arg_at, arg_len) == 0) {
				op->variant = k;
				return true;
			}
		return lf_fail(err, errlen, off, arg_at,
			       "GRPC_STATUS takes CAMEL_STRING, SNAKE_STRING or NUMBER");
	}
	if (spec->arg && !has_arg) {
		snprintf(err, errlen, "%%%s%% takes an argument: %%%s(...)%%", name, name);
		*off = at + 1;
		return false;
	}
	if (!spec->arg && has_arg) {
		snprintf(err, errlen, "%%%s%% takes no argument", name);
		*off = arg_at - 1;
		return false;
	}
	if (spec->kind == LF_REQ || spec->kind == LF_RESP || spec->kind == LF_REQ_WITHOUT_QUERY) {
		const char *q = memchr(s + arg_at, '?', arg_len);
		size_t xlen = q != NULL ? (size_t)(q - (s + arg_at)) : arg_len;

		if (!lf_header_name_ok(s + arg_at, xlen) ||
		    (q != NULL && !lf_header_name_ok(q + 1, arg_len - xlen - 1)))
			return lf_fail(err, errlen, off, arg_at,
				       "expected a header name, or two as X?Y (Y when there is "
				       "no X)");
		op->variant = spec->kind == LF_RESP ? 1 : 0;
		lf_header(p, op->variant, s + arg_at, xlen, &op->hdr[0]);
		if (q != NULL)
			lf_header(p, op->variant, q + 1, arg_len - xlen - 1, &op->hdr[1]);
		return true;
	}
	if (spec->kind == LF_CONSTANT) {
		char host[256];
		const char *v;

		if (op->variant == 1) { /* ENVIRONMENT(X) */
			char *var = pool_strndup(p, s + arg_at, arg_len);

			v = getenv(var);
		} else {
			v = gethostname(host, sizeof(host)) == 0 ? host : NULL;
			host[sizeof(host) - 1] = '\0';
		}
		if (v != NULL) {
			op->text = pool_strdup(p, v);
			op->text_len = strlen(v);
		}
	}
	return true;
}

static bool lf_compile(struct pool *p, struct lf_field *fl, const char *s, char *err, size_t errlen,
		       size_t *off, logformat_warn_fn *warn, void *warn_arg)
{
	size_t cap = 8, at = 0;

	fl->ops = pool_calloc(p, cap, sizeof(*fl->ops));
	fl->nops = 0;
	while (s[at] != '\0') {
		struct lf_op *op = lf_push(p, fl, &cap);

		if (s[at] == '%') {
			size_t end;

			if (!lf_operator(p, s, at, op, &end, err, errlen, off, warn, warn_arg))
				return false;
			at = end;
		} else {
			size_t n = strcspn(s + at, "%");

			op->kind = LF_LITERAL;
			op->text = s + at;
			op->text_len = n;
			at += n;
		}
	}
	return true;
}

struct logformat *logformat_text(struct pool *p, const char *s, char *err, size_t errlen,
				 size_t *off, logformat_warn_fn *warn, void *warn_arg)
{
	struct logformat *f = pool_calloc(p, 1, sizeof(*f));
	size_t len = strlen(s);

	f->fields = pool_calloc(p, 1, sizeof(*f->fields));
	f->nfields = f->cap = 1;
	if (len == 0 || s[len - 1] != '\n') { /* as istiod: one line per entry */
		char *withnl = pool_alloc(p, len + 2);

		memcpy(withnl, s, len);
		memcpy(withnl + len, "\n", 2);
		s = withnl;
	}
	if (!lf_compile(p, &f->fields[0], s, err, errlen, off, warn, warn_arg))
		return NULL;
	return f;
}

struct logformat *logformat_json(struct pool *p, size_t nlabels)
{
	struct logformat *f = pool_calloc(p, 1, sizeof(*f));

	f->json = true;
	f->cap = nlabels > 0 ? nlabels : 1;
	f->fields = pool_calloc(p, f->cap, sizeof(*f->fields));
	return f;
}

bool logformat_json_label(struct pool *p, struct logformat *f, const char *key, const char *value,
			  char *err, size_t errlen, size_t *off, logformat_warn_fn *warn,
			  void *warn_arg)
{
	struct lf_field fl = {pool_strdup(p, key), NULL, 0};
	size_t at;

	if (f->nfields == f->cap) {
		*off = 0;
		snprintf(err, errlen, "more labels than announced");
		return false;
	}
	if (!lf_compile(p, &fl, value, err, errlen, off, warn, warn_arg))
		return false;
	/* sorted by key, as Envoy prints a Struct's fields */
	for (at = f->nfields; at > 0 && strcmp(f->fields[at - 1].key, key) > 0; at--)
		f->fields[at] = f->fields[at - 1];
	f->fields[at] = fl;
	f->nfields++;
	return true;
}

size_t logformat_header_names(const struct logformat *f, int side, const char **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nfields; i++)
		for (size_t k = 0; k < f->fields[i].nops; k++) {
			const struct lf_op *op = &f->fields[i].ops[k];

			if (op->kind != LF_REQ && op->kind != LF_RESP &&
			    op->kind != LF_REQ_WITHOUT_QUERY)
				continue;
			if (op->variant != side)
				continue;
			for (int h = 0; h < 2; h++) {
				const char *name = op->hdr[h].name;
				bool seen = false;

				if (name == NULL || op->hdr[h].where != LF_HDR_KEPT)
					continue;
				for (size_t j = 0; j < n && j < max; j++)
					seen |= strcmp(out[j], name) == 0;
				if (seen)
					continue;
				if (n < max)
					out[n] = name;
				n++;
			}
		}
	return n;
}

void logformat_bind(struct logformat *f, const char *const *names[2], const size_t n[2])
{
	for (size_t i = 0; i < f->nfields; i++)
		for (size_t k = 0; k < f->fields[i].nops; k++) {
			struct lf_op *op = &f->fields[i].ops[k];

			if (op->kind != LF_REQ && op->kind != LF_RESP &&
			    op->kind != LF_REQ_WITHOUT_QUERY)
				continue;
			for (int h = 0; h < 2; h++) {
				struct lf_name *hn = &op->hdr[h];

				if (hn->name == NULL || hn->where != LF_HDR_KEPT)
					continue;
				hn->slot = -1;
				for (size_t j = 0; j < n[op->variant]; j++)
					if (strcmp(names[op->variant][j], hn->name) == 0)
						hn->slot = (int)j;
			}
		}
}

/* ---- rendering ---- */

/* One operator's value: a string (s, len), a number, or nothing. */
struct lf_value {
	enum { LF_NONE, LF_STR, LF_NUM } type;
	const char *s;
	size_t len;
	long long num;
};

static void lf_str(struct lf_value *v, const char *s, size_t len)
{
	if (s == NULL || len == 0)
		return;
	v->type = LF_STR;
	v->s = s;
	v->len = len;
}

static void lf_str0(struct lf_value *v, const char *s)
{
	lf_str(v, s, s != NULL ? strlen(s) : 0);
}

static void lf_num(struct lf_value *v, long long n)
{
	v->type = LF_NUM;
	v->num = n;
}

/* "ip:port" or "[ip6]:port" as one of its parts. */
static void lf_addr(struct lf_value *v, const char *a, enum lf_addr part)
{
	const char *colon;

	if (a == NULL || *a == '\0')
		return;
	colon = strrchr(a, ':');
	if (part == LF_ADDR_FULL || colon == NULL) {
		if (part != LF_ADDR_PORT)
			lf_str0(v, a);
		return;
	}
	if (part == LF_ADDR_PORT) {
		lf_num(v, strtoll(colon + 1, NULL, 10));
		return;
	}
	if (a[0] == '[' && colon > a + 1 && colon[-1] == ']')
		lf_str(v, a + 1, (size_t)(colon - a) - 2);
	else
		lf_str(v, a, (size_t)(colon - a));
}

static void lf_hdr_value(const struct lf_name *hn, int side, const struct accesslog_entry *e,
			 char *tmp, size_t tmplen, struct lf_value *v)
{
	switch (hn->where) {
	case LF_HDR_METHOD:
		lf_str(v, e->method, e->method_len);
		break;
	case LF_HDR_PATH:
		lf_str(v, e->path, e->path_len);
		break;
	case LF_HDR_AUTHORITY:
		lf_str(v, e->authority, e->authority_len);
		break;
	case LF_HDR_SCHEME:
		if (e->method != NULL)
			lf_str0(v, e->ssl != NULL ? "https" : "http");
		break;
	case LF_HDR_USER_AGENT:
		lf_str(v, e->user_agent, e->user_agent_len);
		break;
	case LF_HDR_REQUEST_ID:
		lf_str(v, e->request_id, e->request_id_len);
		break;
	case LF_HDR_XFF:
		lf_str(v, e->xff, e->xff_len);
		break;
	case LF_HDR_STATUS:
		if (e->status > 0)
			lf_str(v, tmp, (size_t)snprintf(tmp, tmplen, "%d", e->status));
		break;
	case LF_HDR_SERVICE_TIME:
		if (e->upstream_time_us >= 0)
			lf_str(v, tmp,
			       (size_t)snprintf(tmp, tmplen, "%lld",
						(long long)(e->upstream_time_us / 1000)));
		break;
	case LF_HDR_GRPC_STATUS:
		if (e->grpc_status >= 0)
			lf_str(v, tmp, (size_t)snprintf(tmp, tmplen, "%d", e->grpc_status));
		break;
	case LF_HDR_KEPT:
		if (hn->slot >= 0 && e->kept[side] != NULL)
			lf_str(v, e->kept[side][hn->slot], e->kept_len[side][hn->slot]);
		break;
	}
}

static void lf_flags_long(const char *flags, char *out, size_t cap, struct lf_value *v)
{
	size_t at = 0;

	if (flags == NULL || strcmp(flags, "-") == 0)
		return;
	while (*flags != '\0') {
		size_t len = strcspn(flags, ",");
		int bit = accesslog_flag_index(flags, len);
		const char *name = bit >= 0 ? accesslog_flags[bit][1] : NULL;
		if (name != NULL && at + strlen(name) + 2 < cap)
			at += (size_t)snprintf(out + at, cap - at, "%s%s", at > 0 ? "," : "", name);
		flags += len;
		if (*flags == ',')
			flags++;
	}
	lf_str(v, out, at);
}

static void lf_start_time(const struct lf_op *op, const struct accesslog_entry *e, char *out,
			  size_t cap, struct lf_value *v)
{
	struct tm tm;
	/* each 2-byte %s grows to at most 20 digits: 10 times the format, at most */
	char fmt[LF_TIME_FORMAT_MAX * 10 + 1];
	size_t at = 0, o = 0;
	const char *f = op->text;

	if (f == NULL) { /* Envoy's default */
		lf_str(v, out, accesslog_time(&e->start, out, cap));
		return;
	}
	gmtime_r(&e->start.tv_sec, &tm);
	/* strftime, with Envoy's additions: %s (seconds since the epoch), %f and %1f..%9f
	 * (fractions of the second).  Each addition is expanded into the format first. */
	while (*f != '\0') {
		if (f[0] == '%' && f[1] == 's') {
			o += (size_t)snprintf(fmt + o, sizeof(fmt) - o, "%lld",
					      (long long)e->start.tv_sec);
			f += 2;
		} else if (f[0] == '%' &&
			   (f[1] == 'f' || (f[1] >= '1' && f[1] <= '9' && f[2] == 'f'))) {
			int digits = f[1] == 'f' ? 9 : f[1] - '0';
			long frac = e->start.tv_nsec;

			for (int d = 9; d > digits; d--)
				frac /= 10;
			o += (size_t)snprintf(fmt + o, sizeof(fmt) - o, "%0*ld", digits, frac);
			f += f[1] == 'f' ? 2 : 3;
		} else if (f[0] == '%' && f[1] == '%') {
			fmt[o++] = *f++;
			fmt[o++] = *f++;
		} else {
			fmt[o++] = *f++;
		}
	}
	fmt[o] = '\0';
	/* the operator's format: strftime reads no arguments, so nothing to check */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	at = strftime(out, cap, fmt, &tm);
#pragma GCC diagnostic pop
	lf_str(v, out, at);
}

/* A string a tls.h reader wrote into out, or nothing. */
static void lf_text(struct lf_value *v, char *out, int len)
{
	if (len > 0)
		lf_str(v, out, (size_t)len);
}

static void lf_fingerprint(const X509 *cert, char *out, size_t cap, struct lf_value *v)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (cert == NULL || X509_digest(cert, EVP_sha256(), md, &len) != 1 || cap < 2 * len + 1)
		return;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	lf_str(v, out, 2 * (size_t)len);
}

static void lf_eval(const struct lf_op *op, const struct accesslog_entry *e, char *tmp,
		    size_t tmplen, struct lf_value *v)
{
	const X509 *peer = e->ssl != NULL ? SSL_get0_peer_certificate(e->ssl) : NULL;

	memset(v, 0, sizeof(*v));
	switch (op->kind) {
	case LF_LITERAL:
	case LF_CONSTANT:
		lf_str(v, op->text, op->text_len);
		break;
	case LF_START_TIME:
		lf_start_time(op, e, tmp, tmplen, v);
		break;
	case LF_REQ:
	case LF_RESP:
		lf_hdr_value(&op->hdr[0], op->variant, e, tmp, tmplen, v);
		if (v->type == LF_NONE && op->hdr[1].name != NULL)
			lf_hdr_value(&op->hdr[1], op->variant, e, tmp, tmplen, v);
		break;
	case LF_REQ_WITHOUT_QUERY:
		lf_hdr_value(&op->hdr[0], 0, e, tmp, tmplen, v);
		if (v->type == LF_NONE && op->hdr[1].name != NULL)
			lf_hdr_value(&op->hdr[1], 0, e, tmp, tmplen, v);
		if (v->type == LF_STR) {
			const char *q = memchr(v->s, '?', v->len);

			if (q != NULL)
				v->len = (size_t)(q - v->s);
		}
		break;
	case LF_PROTOCOL:
		if (e->method != NULL)
			lf_str0(v, e->protocol);
		break;
	case LF_RESPONSE_CODE:
		lf_num(v, e->status);
		break;
	case LF_RESPONSE_CODE_DETAILS:
		if (e->details != NULL && strcmp(e->details, "-") != 0)
			lf_str(v, tmp, accesslog_details(e->details, tmp, tmplen));
		break;
	case LF_RESPONSE_FLAGS:
		if (e->flags != NULL && strcmp(e->flags, "-") != 0)
			lf_str0(v, e->flags);
		break;
	case LF_RESPONSE_FLAGS_LONG:
		lf_flags_long(e->flags, tmp, tmplen, v);
		break;
	case LF_BYTES_RECEIVED:
		lf_num(v, (long long)e->bytes_received);
		break;
	case LF_BYTES_SENT:
		lf_num(v, (long long)e->bytes_sent);
		break;
	case LF_DURATION:
		lf_num(v, (long long)(e->duration_us / 1000));
		break;
	case LF_UPSTREAM_HOST:
		lf_addr(v, e->upstream_host, (enum lf_addr)op->variant);
		break;
	case LF_UPSTREAM_CLUSTER:
		lf_str0(v, e->upstream_cluster);
		break;
	case LF_UPSTREAM_LOCAL:
		lf_addr(v, e->upstream_local, (enum lf_addr)op->variant);
		break;
	case LF_DOWNSTREAM_REMOTE:
		lf_addr(v, e->downstream_remote, (enum lf_addr)op->variant);
		break;
	case LF_DOWNSTREAM_LOCAL:
		lf_addr(v, e->downstream_local, (enum lf_addr)op->variant);
		break;
	case LF_REQUESTED_SERVER_NAME:
		lf_str(v, e->requested_server_name, e->requested_server_name_len);
		break;
	case LF_ROUTE_NAME:
		lf_str0(v, e->route_name);
		break;
	case LF_ATTEMPTS:
		if (e->method != NULL)
			lf_num(v, e->attempts);
		break;
	case LF_GRPC_STATUS:
		if (e->grpc_status < 0)
			break;
		if (op->variant == LF_GRPC_NUMBER || e->grpc_status >= (int)LF_COUNT(lf_grpc_names))
			lf_num(v, e->grpc_status);
		else
			lf_str0(v, lf_grpc_names[e->grpc_status][op->variant]);
		break;
	case LF_TLS_VERSION:
		lf_str0(v, e->downstream_tls_version);
		break;
	case LF_TLS_CIPHER:
		if (e->ssl != NULL)
			lf_str0(v, SSL_get_cipher_name(e->ssl));
		break;
	case LF_PEER_URI_SAN:
		lf_text(v, tmp, tls_cert_san(peer, GEN_URI, tmp, tmplen));
		break;
	case LF_PEER_DNS_SAN:
		lf_text(v, tmp, tls_cert_san(peer, GEN_DNS, tmp, tmplen));
		break;
	case LF_PEER_SUBJECT:
		if (peer != NULL)
			lf_text(v, tmp, tls_cert_name(X509_get_subject_name(peer), tmp, tmplen));
		break;
	case LF_PEER_ISSUER:
		if (peer != NULL)
			lf_text(v, tmp, tls_cert_name(X509_get_issuer_name(peer), tmp, tmplen));
		break;
	case LF_PEER_FINGERPRINT_256:
		lf_fingerprint(peer, tmp, tmplen, v);
		break;
	case LF_LOCAL_URI_SAN:
		if (e->ssl != NULL)
			lf_text(v, tmp,
				tls_cert_san(SSL_get_certificate(e->ssl), GEN_URI, tmp, tmplen));
		break;
	case LF_LOCAL_SUBJECT:
		if (e->ssl != NULL && SSL_get_certificate(e->ssl) != NULL)
			lf_text(v, tmp,
				tls_cert_name(X509_get_subject_name(SSL_get_certificate(e->ssl)),
					      tmp, tmplen));
		break;
	case LF_UNRECORDED:
		break;
	}
	if (v->type == LF_STR && op->max_len > 0 && v->len > op->max_len)
		v->len = op->max_len;
}

static size_t lf_put_value(char *o, size_t at, const struct lf_value *v, bool json)
{
	if (v->type == LF_NUM)
		return accesslog_num(o, at, v->num);
	if (v->type == LF_STR)
		return accesslog_put(o, at, v->s, v->len, json);
	return accesslog_lit(o, at, "-");
}

size_t logformat_render(const struct logformat *f, const struct accesslog_entry *e, char *out)
{
	char tmp[512];
	struct lf_value v;
	size_t at = 0;

	if (!f->json) {
		const struct lf_field *fl = &f->fields[0];

		for (size_t k = 0; k < fl->nops; k++) {
			if (fl->ops[k].kind == LF_LITERAL) { /* the format's own text, as is */
				at = accesslog_lit_n(out, at, fl->ops[k].text, fl->ops[k].text_len);
				continue;
			}
			lf_eval(&fl->ops[k], e, tmp, sizeof(tmp), &v);
			at = lf_put_value(out, at, &v, false);
		}
		return at;
	}
	at = accesslog_lit(out, at, "{");
	for (size_t i = 0; i < f->nfields; i++) {
		const struct lf_field *fl = &f->fields[i];

		at = accesslog_lit(out, at, i > 0 ? ",\"" : "\"");
		at = accesslog_put(out, at, fl->key, strlen(fl->key), true);
		at = accesslog_lit(out, at, "\":");
		if (fl->nops == 1 && fl->ops[0].kind != LF_LITERAL) {
			/* one operator: a typed value, null when there is none (Envoy) */
			lf_eval(&fl->ops[0], e, tmp, sizeof(tmp), &v);
			if (v.type == LF_NUM) {
				at = accesslog_num(out, at, v.num);
			} else if (v.type == LF_STR) {
				at = accesslog_lit(out, at, "\"");
				at = accesslog_put(out, at, v.s, v.len, true);
				at = accesslog_lit(out, at, "\"");
			} else {
				at = accesslog_lit(out, at, "null");
			}
			continue;
		}
		at = accesslog_lit(out, at, "\"");
		for (size_t k = 0; k < fl->nops; k++) {
			lf_eval(&fl->ops[k], e, tmp, sizeof(tmp), &v);
			at = lf_put_value(out, at, &v, true);
		}
		at = accesslog_lit(out, at, "\"");
	}
	at = accesslog_lit(out, at, "}\n");
	return at;
}

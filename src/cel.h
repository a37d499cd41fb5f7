/* The CEL (Common Expression Language) subset of Istio's Telemetry accessLogging filter, i.e.
 * Envoy's CEL access-log filter over Envoy attributes: compiled once at load into an immutable
 * tree, then evaluated by the workers for every exchange without allocating.  Envoy's own
 * CEL runtime has comprehensions, string concatenation and string conversion switched off;
 * this subset has none of them either, nor lists other than a literal on the right of `in`. */
#ifndef MG_CEL_H
#define MG_CEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest source accepted, in bytes, and deepest nesting: of parentheses, brackets, calls
 * and conditionals in the source, and of operators in the compiled tree (which is what
 * bounds the evaluator's stack). */
#define CEL_MAX_LEN 4096
#define CEL_MAX_DEPTH 32

struct pool;
struct cel_expr; /* compiled; immutable; evaluated concurrently by worker threads */

enum cel_attr {                        /* Envoy attribute names */
		CEL_REQ_PATH = 0,      /* request.path: path with query */
		CEL_REQ_URL_PATH,      /* request.url_path: path without query */
		CEL_REQ_HOST,          /* request.host */
		CEL_REQ_SCHEME,        /* request.scheme */
		CEL_REQ_METHOD,        /* request.method */
		CEL_REQ_HEADERS,       /* request.headers[key]: map lookup, key given */
		CEL_REQ_REFERER,       /* request.referer */
		CEL_REQ_USERAGENT,     /* request.useragent */
		CEL_REQ_ID,            /* request.id */
		CEL_REQ_PROTOCOL,      /* request.protocol ("HTTP/1.1", "HTTP/2") */
		CEL_REQ_DURATION,      /* request.duration: a duration */
		CEL_REQ_SIZE,          /* request.size: body bytes, int */
		CEL_REQ_TOTAL_SIZE,    /* request.total_size */
		CEL_RESP_CODE,         /* response.code: int */
		CEL_RESP_CODE_DETAILS, /* response.code_details */
		CEL_RESP_FLAGS,        /* response.flags: int (bitmask) */
		CEL_RESP_GRPC_STATUS,  /* response.grpc_status: int */
		CEL_RESP_HEADERS,      /* response.headers[key] */
		CEL_RESP_SIZE,         /* response.size */
		CEL_RESP_TOTAL_SIZE,   /* response.total_size */
		CEL_SRC_ADDRESS,       /* source.address: "ip:port" */
		CEL_SRC_PORT,          /* source.port: int */
		CEL_DST_ADDRESS,       /* destination.address */
		CEL_DST_PORT,          /* destination.port */
		CEL_CONN_MTLS,         /* connection.mtls: bool */
		CEL_CONN_SNI,          /* connection.requested_server_name */
		CEL_CONN_TLS_VERSION,  /* connection.tls_version */
		CEL_UPSTREAM_ADDRESS,  /* upstream.address */
		CEL_XDS_CLUSTER,       /* xds.cluster_name */
		CEL_XDS_ROUTE,         /* xds.route_name */
		CEL_ATTR_COUNT
};

enum cel_type { CEL_NULL = 0, CEL_BOOL, CEL_INT, CEL_UINT, CEL_DOUBLE, CEL_STRING, CEL_DURATION };

struct cel_value {
	enum cel_type type;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		int64_t duration_ns;
		struct {
			const char *s;
			size_t len;
		} str; /* not NUL-terminated */
	} v;
};

/* Fetch one attribute of the exchange being judged.  key/keylen: the map key for
 * CEL_REQ_HEADERS / CEL_RESP_HEADERS (compare case-insensitively; several fields of one
 * name joined with ","), NULL otherwise.  false: the attribute (or key) is absent.  A string
 * written to out must stay valid until cel_eval returns. */
typedef bool (*cel_lookup_fn)(void *ctx, enum cel_attr attr, const char *key, size_t keylen,
			      struct cel_value *out);

/* Compile src (NUL-terminated).  Memory comes from the pool (freed with it).  NULL on a
 * syntax error, an unknown attribute or function, or a construct outside the subset:
 * then err holds a one-line reason and *err_off the byte offset in src it is about (so
 * the config loader can point at file:line:col). */
struct cel_expr *cel_compile(struct pool *p, const char *src, char *err, size_t errlen,
			     size_t *err_off);
/* Evaluate: true only when the expression yields boolean true.  Any runtime error
 * (absent attribute or header, type mismatch, division by zero, overflow) gives false,
 * as Envoy's filter does not log when evaluation fails.  No allocation; bounded stack;
 * thread-safe. */
bool cel_eval(const struct cel_expr *e, cel_lookup_fn lookup, void *ctx);
/* Which attributes the expression reads (bit i = enum cel_attr i), so the caller can
 * skip building the costly ones. */
uint64_t cel_attrs_used(const struct cel_expr *e);
/* The keys the expression looks up in header map `map` (CEL_REQ_HEADERS or
 * CEL_RESP_HEADERS) by literal, once each (compared case-insensitively): keys[i] / lens[i]
 * (not NUL-terminated) for the first max of them.  Returns how many there are, or SIZE_MAX
 * when a key is computed (a caller that must know the keys beforehand refuses that). */
size_t cel_map_keys(const struct cel_expr *e, enum cel_attr map, const char **keys, size_t *lens,
		    size_t max);
/* The attribute's CEL name ("request.url_path"), for messages and config dumps. */
const char *cel_attr_name(enum cel_attr attr);

#endif

/* One request/response exchange, shared by conn.c (client side) and proxy.c (upstream side).
 * Allocated per worker from a free list; everything derived from the request that must
 * outlive the parsed head (log fields, rewritten path) is copied into its bounded arena. */
#ifndef MG_EXCHANGE_H
#define MG_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "authz.h"
#include "connpool.h"
#include "http1.h"

struct conn;
struct wsnap;
struct listener_cfg;
struct http_route;
struct route_destination;
struct cluster;
struct endpoint;
struct upstream_host;
struct upconn;
struct h2up_stream;
struct mirror;
struct evbuffer;
struct event;
struct extauthz;

#define EX_ARENA 4096
#define EX_MIRROR_KEYS 8 /* mirrors of a route that may be consistently hashed (mirror.h) */
#define EX_LOG_HEADERS 8 /* header fields per side the access log reads (logfilter.h) */

struct exchange {
	struct conn *c;
	struct wsnap *ws;
	const struct listener_cfg *lc;
	const struct http_route *route;
	const struct route_destination *rd;
	const struct cluster *cl;
	const struct endpoint *ep;
	struct upstream_host *uh;
	struct upconn *uc;
	struct h2up_stream *h2;   /* the try runs as an HTTP/2 stream (h2up.h) instead of on uc */
	bool h2_reused;           /* ... on a connection that was up already */
	struct evbuffer *up_head; /* serialized upstream request head, kept for a stale retry */

	/* request body towards upstream */
	enum http1_body_kind req_kind;
	uint64_t req_remaining;
	struct http1_chunked req_chunk;
	bool req_done;    /* all request body bytes consumed from the client */
	bool req_started; /* some body bytes went upstream (no transparent retry after that) */
	bool expect_continue;
	bool te_trailers; /* the client accepts trailers (TE: trailers) */

	/* response towards client */
	enum http1_body_kind resp_kind;
	uint64_t resp_remaining;
	struct http1_chunked resp_chunk;
	bool resp_head_sent;
	bool resp_chunked_out;     /* re-encode chunked towards the client */
	bool resp_close_delimited; /* client gets a close-delimited body */
	bool upstream_reusable;
	bool resp_trailers_lost; /* out of memory keeping them: none is forwarded */
	/* the upstream's trailer field lines (http1_chunked's runs) until the body ends; kept
	 * with the recycled exchange, made for the first response that has trailers */
	struct evbuffer *resp_trailers;
	int grpc_status; /* of the response head or trailers, for the log; -1 none */

	bool head_request;
	int minor_version;
	bool client_keepalive;
	bool retried_stale;
	bool upgrade; /* a WebSocket upgrade asked of the upstream (Connection: upgrade) */
	bool tunnel;  /* ... and granted (101): bytes relayed both ways until a close */

	int status;
	char flags[32];
	const char *details;
	uint64_t start_us; /* monotonic */
	struct timespec start_wall;
	uint64_t upstream_sent_us;
	int64_t upstream_time_us;
	uint64_t bytes_in, bytes_out;
	struct event *connect_timer, *route_timer;

	/* retries (src/retry.h): tries made so far (the first included), the endpoint of the
	 * last try, and a copy of the request body sent so far for a replay */
	unsigned tries;
	const struct endpoint *prev_ep;
	unsigned ranks_tried; /* locality ranks of the tries (bit per rank), for
			       * retryRemoteLocalities */
	struct evbuffer *replay;
	bool replay_ok; /* replay holds every body byte sent upstream */
	bool retries_exhausted;
	bool rq_counted, retry_counted; /* admitted by the cluster's circuit breakers */
	struct upwaiter waiter;         /* queued for a connection (maxConnections reached) */
	bool hash_given;                /* consistent hashing: the request's key (affinity.h) */
	uint64_t hash_key;
	char new_cookie[24]; /* an affinity cookie to set on the response, "" = none */
	struct event *try_timer, *backoff_timer;

	struct event *fault_timer; /* holds the request for an injected delay (request.c) */
	struct extauthz *xa;       /* a CUSTOM policy's check (extauthz.h), or NULL */
	bool xa_resumed;           /* the check allowed it: request_route runs again, past it */
	bool grpc_request;         /* content-type application/grpc (fault routes only) */
	unsigned char cors;        /* enum cors_kind; CORS_NONE on routes without corsPolicy */
	char upstream_local[64];
	struct exchange *next_free; /* worker free list */
	struct mirror *mirrors;     /* copies fed while the request body streams (mirror.c) */
	/* the hash key of route mirror i, taken with the request head (mirror_prepare) */
	uint64_t mirror_key[EX_MIRROR_KEYS];
	uint8_t mirror_keyed; /* bit i: mirror_key[i] is set */

	bool shadow_kept;  /* `shadow` below holds this request's dry-run verdicts */
	bool log_hdr_kept; /* `log_hdr` below is this request's */
	/* log fields (arena copies) */
	const char *method, *path, *authority, *user_agent, *xff, *request_id;
	size_t method_len, path_len, authority_len, user_agent_len, xff_len, request_id_len;
	/* CORS request values (arena copies, only when the route has a corsPolicy): the Origin
	 * for the response headers, Access-Control-Request-Headers for a preflight answer */
	const char *cors_origin, *cors_request_headers;
	size_t cors_origin_len, cors_request_headers_len;
	size_t arena_used;
	char arena[EX_ARENA];

	/* Past the arena, not cleared per request (request_new), valid only under their flag
	 * above: what only some configurations use costs the others nothing. */
	/* the dry-run AuthorizationPolicies' verdicts (their policies are the snapshot's),
	 * for the log */
	struct authz_shadow shadow;
	/* the header fields a Telemetry log filter reads by name, request and response side
	 * (arena copies, logfilter.c); NULL: absent */
	const char *log_hdr[2][EX_LOG_HEADERS];
	uint32_t log_hdr_len[2][EX_LOG_HEADERS];
};

/* Copy s into the exchange arena (truncated to what is left); returns the copy. */
const char *exchange_keep(struct exchange *ex, const char *s, size_t len, size_t *out_len);
void exchange_flag(struct exchange *ex, const char *flag);

#endif

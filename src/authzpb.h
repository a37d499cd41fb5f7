/* envoy.service.auth.v3.Authorization/Check in protobuf wire format, by hand: the
 * CheckRequest meshgate sends a gRPC external authorizer, and the CheckResponse it reads
 * back, plus the gRPC message framing around them (extauthz.c runs the call).
 *
 * Pure functions over caller-owned bytes, no allocation.  The response side reads an
 * authorizer's bytes: every length is checked against what is left, every count is
 * bounded, and malformed input (a bad varint or tag, a truncated length, a known field
 * with the wrong wire type, too many headers, a header that is not one) is refused with a
 * reason, never trusted (fuzzed: tests/fuzz/fuzz_authzpb.c).  Fields this module does not
 * know are skipped as protobuf says (groups included, nested at most AUTHZPB_DEPTH_MAX).
 *
 * Field numbers are those of Envoy's api/envoy/service/auth/v3/{external_auth,
 * attribute_context}.proto, api/envoy/config/core/v3/{address,base}.proto,
 * envoy/type/v3/http_status.proto and google/rpc/status.proto. */
#ifndef MG_AUTHZPB_H
#define MG_AUTHZPB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes of the gRPC length prefix (compressed flag, 32-bit big-endian length). */
#define AUTHZPB_GRPC_PREFIX 5
/* Repeated fields of a CheckResponse kept (each list): more is refused. */
#define AUTHZPB_HEADERS_MAX 32
/* Nesting of unknown groups skipped. */
#define AUTHZPB_DEPTH_MAX 16

struct authzpb_str {
	const char *p;
	size_t len;
};

/* A header field of the request checked, as it came (any case; several of one name). */
struct authzpb_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* AttributeContext.Peer: its socket address (address NULL: none) and principal (NULL:
 * none). */
struct authzpb_peer {
	const char *address; /* IP as text */
	uint32_t port;
	const char *principal;
};

/* What a CheckRequest says (AttributeContext): empty strings and zero numbers are left out
 * of the encoding, as proto3 does with its defaults. */
struct authzpb_check {
	struct authzpb_peer source, destination;
	bool has_time; /* request.time */
	int64_t time_sec;
	int32_t time_nsec;
	/* request.http */
	struct authzpb_str id, method, path, host, scheme, protocol;
	int64_t size;
	const struct authzpb_field *headers;
	size_t nheaders;
};

/* Encode c as a CheckRequest into out[0..cap).  Returns its length, or -1 when cap is too
 * small.  The headers become request.http.headers as Envoy fills that map: names in lower
 * case, the fields of one name merged into one entry whose value joins theirs with ","
 * (in their order), a client's x-envoy-auth-partial-body left out.  Strings are made valid
 * UTF-8 as Envoy's sanitizeUtf8String does: each byte that does not start a valid
 * sequence becomes '!' (a gRPC server refuses a string field that is not UTF-8). */
ssize_t authzpb_check_encode(const struct authzpb_check *c, uint8_t *out, size_t cap);

/* HeaderValueOption: header {key, value}, append (a BoolValue: has_append says whether it
 * was given) and append_action. */
struct authzpb_header {
	struct authzpb_str key, value;
	bool has_append, append;
	uint32_t append_action;
};

enum authzpb_kind {
	AUTHZPB_NONE = 0, /* neither http_response member */
	AUTHZPB_DENIED,   /* denied_response */
	AUTHZPB_OK,       /* ok_response */
};

/* A CheckResponse.  The strings point into the bytes parsed. */
struct authzpb_response {
	int32_t code;               /* status.code: 0 (OK) allows */
	struct authzpb_str message; /* status.message */
	enum authzpb_kind kind;     /* which member of the http_response oneof came last */
	/* denied_response: status.code (0 when not given), body, headers */
	uint32_t http_status;
	struct authzpb_str body;
	/* the headers of denied_response or of ok_response (the kind's) */
	struct authzpb_header headers[AUTHZPB_HEADERS_MAX];
	size_t nheaders;
	/* ok_response: headers_to_remove, response_headers_to_add */
	struct authzpb_str remove[AUTHZPB_HEADERS_MAX];
	size_t nremove;
	struct authzpb_header response_headers[AUTHZPB_HEADERS_MAX];
	size_t nresponse_headers;
};

/* Parse a CheckResponse from buf[0..len) into r (zeroed first).  0, or MG_EBAD with *why.
 * Header names must be tokens and values field content (no control byte but HTAB, no
 * white space at either end); headers_to_remove names must be tokens. */
int authzpb_response_parse(const uint8_t *buf, size_t len, struct authzpb_response *r,
			   const char **why);

/* The gRPC length prefix of an uncompressed message of len bytes. */
void authzpb_grpc_prefix(size_t len, uint8_t out[AUTHZPB_GRPC_PREFIX]);
/* One length-prefixed gRPC message at the start of buf[0..len): the bytes it takes (> 0)
 * with *msg and *msg_len set, 0 when more bytes are needed, MG_EBAD (*why) when it is
 * compressed (meshgate asked for no compression) or longer than max. */
ssize_t authzpb_grpc_frame(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			   size_t *msg_len, const char **why);
/* A grpc-status value (optional white space around the digits): the code, or -1 when it
 * is not a decimal number below 2^31. */
int authzpb_grpc_status(const char *v, size_t len);

#endif

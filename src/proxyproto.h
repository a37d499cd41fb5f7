/* The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer in front of
 * the appliance sends first on each connection to tell the client's address: parsed from
 * untrusted bytes, strictly, within PROXYPROTO_MAX bytes.  Istio turns it on with the
 * gateway's gatewayTopology.proxyProtocol; meshgate with the main config's proxyProtocol. */
#ifndef MG_PROXYPROTO_H
#define MG_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest header accepted: version 1's 107 bytes, version 2's 16 + 2032 (addresses and a
 * few TLVs; HAProxy and Envoy send far less). */
#define PROXYPROTO_MAX 2048

struct proxyproto {
	int version; /* 1 or 2 */
	/* true: the header carries the connection's addresses (PROXY TCP4/TCP6, v2 PROXY over
	 * TCP or UDP on IPv4/IPv6); false: keep the socket's own (v1 UNKNOWN, v2 LOCAL, v2
	 * UNSPEC or unix addresses), as HAProxy and Envoy do */
	bool has_addresses;
	struct sockaddr_storage src, dst;
};

/* Parse the start of buf (len bytes): the header's length when it is complete and valid;
 * 0 when it may still be (more bytes are needed, and len < PROXYPROTO_MAX); -1 when it is
 * not a valid header (then why says what). */
int proxyproto_parse(const unsigned char *buf, size_t len, struct proxyproto *out,
		     const char **why);

#endif

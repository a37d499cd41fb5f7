/* TLS session ticket keys for every terminating listener (TLS 1.2 tickets and TLS 1.3
 * resumption PSKs are both sealed with them).
 *
 * The keys are process-wide, not per SSL_CTX, so a configuration reload (which builds new
 * contexts) does not invalidate the tickets clients hold.  Two sources:
 *  - automatic (default): a random key made at start and a new one every
 *    TLS_TICKET_ROTATE_SEC; the TLS_TICKET_KEEP previous keys still decrypt, so a ticket
 *    stays usable for at least TLS_TICKET_KEEP periods after its key stopped encrypting
 *    (what nginx and HAProxy do with their own rotation);
 *  - main config tlsTicketKeyFile: keys read from a file, so a fleet of gateways shares
 *    them.  The format is nginx's 80-byte key (name[16], HMAC-SHA256 secret[32],
 *    AES-256-CBC key[32]), several concatenated: the first key encrypts, all decrypt.
 *    The file is watched like certificates (certwatch.h): rewriting it reloads.
 *
 * Workers read the current key ring through one atomic pointer in the ticket callback; a
 * replaced ring is freed only after TLS_TICKET_GRACE_SEC, long after any callback that
 * loaded it returned. */
#ifndef MG_TLS_TICKET_H
#define MG_TLS_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct pool;
struct diag;
struct node;
struct event_base;

#define TLS_TICKET_NAME_LEN 16
#define TLS_TICKET_SECRET_LEN 32
#define TLS_TICKET_KEY_LEN (TLS_TICKET_NAME_LEN + 2 * TLS_TICKET_SECRET_LEN) /* 80 */
#define TLS_TICKET_MAX_KEYS 16
#define TLS_TICKET_ROTATE_SEC 3600
#define TLS_TICKET_KEEP 2
#define TLS_TICKET_GRACE_SEC 60

struct tls_ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char hmac[TLS_TICKET_SECRET_LEN];
	unsigned char aes[TLS_TICKET_SECRET_LEN];
};

/* Keys in order: k[0] encrypts, all decrypt. */
struct tls_ticket_keys {
	size_t n;
	struct tls_ticket_key k[TLS_TICKET_MAX_KEYS];
};

/* Parse a key file's bytes (a whole number of 80-byte keys, 1 to TLS_TICKET_MAX_KEYS, no
 * two with the same name).  0, or -1 with *why set. */
int tls_ticket_parse(const unsigned char *buf, size_t len, struct tls_ticket_keys *out,
		     const char **why);
/* Read and parse path (errors at `at`, the file named); NULL on error.  The keys are pool
 * memory: tls_ticket_use() copies them. */
struct tls_ticket_keys *tls_ticket_file_load(struct pool *p, struct diag *d, const struct node *at,
					     const char *path);
/* A new key in front of ring, which keeps at most 1 + TLS_TICKET_KEEP keys. */
void tls_ticket_rotate(struct tls_ticket_keys *ring, const struct tls_ticket_key *fresh);

/* Control thread, for each configuration that goes live: file keys (copied), or NULL for
 * the automatic keys (kept as they are when already in use, so a reload changes nothing).
 * 0 or -1 (out of memory, no randomness: the previous keys stay). */
int tls_ticket_use(const struct tls_ticket_keys *file_keys);
/* The automatic rotation timer (control thread); stop frees every ring (workers joined). */
void tls_ticket_start(struct event_base *base);
void tls_ticket_stop(void);
/* Rotate the automatic keys now (the timer's work; exposed for tests).  No-op with file
 * keys. */
void tls_ticket_rotate_now(void);
/* Seals and opens tickets of SSLs made from ctx with the current keys (control thread;
 * makes the automatic keys when there are none yet). */
int tls_ticket_install(SSL_CTX *ctx);

#endif

/* Session ticket keys (see tls_ticket.h for the contract).
 *
 * Tickets are sealed as OpenSSL's own default does and as nginx does with 80-byte keys:
 * AES-256-CBC with a random IV, HMAC-SHA256 over it, the key's 16-byte name in front so
 * the right key is found on the way back.  A ticket opened with a key that no longer
 * encrypts is answered with a fresh ticket (callback result 2). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "certwatch.h"
#include "log.h"
#include "pool.h"
#include "tls_ticket.h"
#include "config/diag.h"

/* A published ring, and the replaced ones waiting out their grace period. */
struct tls_ticket_ring {
	struct tls_ticket_keys keys;
	bool from_file;
	time_t retired;
	struct tls_ticket_ring *next_retired;
};

static _Atomic(struct tls_ticket_ring *) tls_ticket_cur;
static struct tls_ticket_ring *tls_ticket_retired;
static EVP_CIPHER *tls_ticket_cipher;
static struct event *tls_ticket_timer;
static char tls_ticket_digest[] = "SHA256";

int tls_ticket_parse(const unsigned char *buf, size_t len, struct tls_ticket_keys *out,
		     const char **why)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len % TLS_TICKET_KEY_LEN != 0) {
		*why = "must hold whole 80-byte keys (16-byte name, 32-byte HMAC secret, "
		       "32-byte AES key), e.g. from openssl rand 80";
		return -1;
	}
	if (len / TLS_TICKET_KEY_LEN > TLS_TICKET_MAX_KEYS) {
		*why = "holds more than 16 keys";
		return -1;
	}
	out->n = len / TLS_TICKET_KEY_LEN;
	for (i = 0; i < out->n; i++) {
		const unsigned char *b = buf + i * TLS_TICKET_KEY_LEN;

		memcpy(out->k[i].name, b, TLS_TICKET_NAME_LEN);
		memcpy(out->k[i].hmac, b + TLS_TICKET_NAME_LEN, TLS_TICKET_SECRET_LEN);
		memcpy(out->k[i].aes, b + TLS_TICKET_NAME_LEN + TLS_TICKET_SECRET_LEN,
		       TLS_TICKET_SECRET_LEN);
		/* Two keys of one name: a ticket could not say which one sealed it. */
		for (j = 0; j < i; j++) {
			if (memcmp(out->k[i].name, out->k[j].name, TLS_TICKET_NAME_LEN) == 0) {
				OPENSSL_cleanse(out, sizeof(*out));
				*why = "has two keys with the same name (first 16 bytes)";
				return -1;
			}
		}
	}
	return 0;
}

struct tls_ticket_keys *tls_ticket_file_load(struct pool *p, struct diag *d, const struct node *at,
					     const char *path)
{
	unsigned char buf[TLS_TICKET_MAX_KEYS * TLS_TICKET_KEY_LEN + 1];
	struct tls_ticket_keys *keys;
	const char *why = NULL;
	size_t len;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		int e = errno;

		certwatch_note(path, -1);
		diag_error(d, at, "cannot read ticket key file %s: %s", path, strerror(e));
		return NULL;
	}
	certwatch_note(path, fileno(f));
	len = fread(buf, 1, sizeof(buf), f);
	if (ferror(f)) {
		diag_error(d, at, "cannot read ticket key file %s", path);
		fclose(f);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	fclose(f);
	keys = pool_alloc(p, sizeof(*keys));
	if (len == sizeof(buf))
		why = "holds more than 16 keys";
	if (why != NULL || tls_ticket_parse(buf, len, keys, &why) != 0) {
		diag_error(d, at, "ticket key file %s (%zu bytes) %s", path, len, why);
		keys = NULL;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return keys;
}

void tls_ticket_rotate(struct tls_ticket_keys *ring, const struct tls_ticket_key *fresh)
{
	size_t n = ring->n < TLS_TICKET_KEEP ? ring->n : TLS_TICKET_KEEP;

	memmove(&ring->k[1], &ring->k[0], n * sizeof(ring->k[0]));
	ring->k[0] = *fresh;
	ring->n = n + 1;
	/* what fell off the end is no secret worth keeping in memory */
	if (n + 1 < TLS_TICKET_MAX_KEYS)
		OPENSSL_cleanse(&ring->k[n + 1],
				(TLS_TICKET_MAX_KEYS - n - 1) * sizeof(ring->k[0]));
}

/* ---- the published ring ---- */

static void tls_ticket_free_ring(struct tls_ticket_ring *r)
{
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

/* Frees the retired rings whose grace period is over (all of them with force). */
static void tls_ticket_reap(bool force)
{
	struct tls_ticket_ring **pp = &tls_ticket_retired, *r;
	time_t now = time(NULL);

	while ((r = *pp) != NULL) {
		if (force || now - r->retired >= TLS_TICKET_GRACE_SEC) {
			*pp = r->next_retired;
			tls_ticket_free_ring(r);
		} else {
			pp = &r->next_retired;
		}
	}
}

static void tls_ticket_publish(struct tls_ticket_ring *r)
{
	struct tls_ticket_ring *old = atomic_exchange(&tls_ticket_cur, r);

	tls_ticket_reap(false);
	if (old != NULL) {
		old->retired = time(NULL);
		old->next_retired = tls_ticket_retired;
		tls_ticket_retired = old;
	}
}

static int tls_ticket_fresh(struct tls_ticket_key *k)
{
	return RAND_priv_bytes((unsigned char *)k, sizeof(*k)) == 1 ? 0 : -1;
}

int tls_ticket_use(const struct tls_ticket_keys *file_keys)
{
	struct tls_ticket_ring *cur = atomic_load(&tls_ticket_cur), *r;

	if (tls_ticket_cipher == NULL &&
	    (tls_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL) {
		log_warnx("session tickets: AES-256-CBC is not available");
		return -1;
	}
	/* Automatic keys already in use are kept: a reload must not void every ticket. */
	if (file_keys == NULL && cur != NULL && !cur->from_file)
		return 0;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	if (file_keys != NULL) {
		r->keys = *file_keys;
		r->from_file = true;
	} else if (tls_ticket_fresh(&r->keys.k[0]) == 0) {
		r->keys.n = 1;
	} else {
		log_warnx("session tickets: no randomness for a key; the previous keys stay");
		tls_ticket_free_ring(r);
		return -1;
	}
	tls_ticket_publish(r);
	return 0;
}

void tls_ticket_rotate_now(void)
{
	struct tls_ticket_ring *cur = atomic_load(&tls_ticket_cur), *r;
	struct tls_ticket_key k;

	if (cur == NULL || cur->from_file)
		return;
	if ((r = malloc(sizeof(*r))) == NULL || tls_ticket_fresh(&k) != 0) {
		log_warnx("session tickets: cannot make a new key; the current one stays");
		free(r);
		return;
	}
	*r = *cur;
	tls_ticket_rotate(&r->keys, &k);
	OPENSSL_cleanse(&k, sizeof(k));
	tls_ticket_publish(r);
	log_debug("session ticket keys rotated");
}

static void tls_ticket_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	tls_ticket_rotate_now();
}

void tls_ticket_start(struct event_base *base)
{
	struct timeval tv = {TLS_TICKET_ROTATE_SEC, 0};

	tls_ticket_timer = event_new(base, -1, EV_PERSIST, tls_ticket_timer_cb, NULL);
	if (tls_ticket_timer == NULL || event_add(tls_ticket_timer, &tv) != 0)
		fatalx("out of memory");
}

void tls_ticket_stop(void)
{
	struct tls_ticket_ring *cur = atomic_exchange(&tls_ticket_cur, NULL);

	if (tls_ticket_timer != NULL)
		event_free(tls_ticket_timer);
	tls_ticket_timer = NULL;
	if (cur != NULL)
		tls_ticket_free_ring(cur);
	tls_ticket_reap(true);
	EVP_CIPHER_free(tls_ticket_cipher);
	tls_ticket_cipher = NULL;
}

/* ---- the callback ---- */

static int tls_ticket_mac(EVP_MAC_CTX *hctx, const struct tls_ticket_key *k)
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, tls_ticket_digest, 0),
	    OSSL_PARAM_construct_end(),
	};

	return EVP_MAC_CTX_set_params(hctx, params);
}

static int tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
			 EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_ticket_ring *r =
	    atomic_load_explicit(&tls_ticket_cur, memory_order_acquire);
	const struct tls_ticket_key *k;
	size_t i;

	/* No keys (only after tls_ticket_stop()): no ticket, a full handshake. */
	if (r == NULL || r->keys.n == 0)
		return 0;
	if (enc) {
		k = &r->keys.k[0];
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tls_ticket_cipher)) != 1 ||
		    !EVP_EncryptInit_ex2(cctx, tls_ticket_cipher, k->aes, iv, NULL) ||
		    !tls_ticket_mac(hctx, k))
			return -1;
		memcpy(name, k->name, TLS_TICKET_NAME_LEN);
		return 1;
	}
	for (i = 0; i < r->keys.n; i++) {
		k = &r->keys.k[i];
		if (memcmp(name, k->name, TLS_TICKET_NAME_LEN) != 0)
			continue;
		if (!tls_ticket_mac(hctx, k) ||
		    !EVP_DecryptInit_ex2(cctx, tls_ticket_cipher, k->aes, iv, NULL))
			return -1;
		/* sealed with a key that no longer encrypts: renew */
		return i == 0 ? 1 : 2;
	}
	return 0; /* unknown key: a full handshake and a new ticket */
}

int tls_ticket_install(SSL_CTX *ctx)
{
	/* Contexts are built on the control thread before their configuration goes live (or
	 * by tests, without one): make sure there are keys to seal with. */
	if (atomic_load(&tls_ticket_cur) == NULL && tls_ticket_use(NULL) < 0)
		return -1;
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) == 1 ? 0 : -1;
}

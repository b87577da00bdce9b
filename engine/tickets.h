/* Session-ticket keys owned by the master.
 *
 * Workers are forked from the master, so each one gets the key set as it
 * was at its fork: tickets made by one worker are accepted by every later
 * one.  The master makes a new key every quarter of the ticket lifetime
 * and keeps the older ones for decryption until their tickets have
 * expired.  Or the keys come from a file in HAProxy's tls-ticket-keys
 * format, shared by several hosts behind one load balancer: the
 * penultimate key encrypts, the last TICKETS_MAX decrypt; rotate by
 * appending a key and reloading. */
#ifndef UCSPITLS_ENGINE_TICKETS_H
#define UCSPITLS_ENGINE_TICKETS_H

#include <openssl/ssl.h>
#include <stddef.h>

#define TICKETS_MAX 5 /* keys held: the current one and those before it */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];  /* AES-128 uses the first 16 */
    unsigned char hmac[32]; /* HMAC-SHA256 key (16 or 32 bytes used) */
    int aes256;
};

struct tickets {
    EVP_CIPHER *aes128, *aes256;         /* fetched before any fork */
    struct ticket_key keys[TICKETS_MAX]; /* [0] encrypts; all decrypt */
    int n;
    long lifetime;          /* seconds a ticket is valid */
    long long next_rotate;  /* monotonic ms; 0: never (keys from a file) */
};

/* Parses a tls-ticket-keys file's content: one base64 key per line (48
 * bytes: name, AES-128, HMAC; or 80: name, AES-256, HMAC), all of one
 * size, at least 2.  Fills t with the penultimate key first, then the
 * others, newest first, at most TICKETS_MAX.  Returns 0 or -1 with a reason. */
int tickets_parse_file(const char *text, size_t len, struct tickets *t,
                       const char **why);

/* Reads and parses a key file; 0 or -1 with a message in err. */
int tickets_load_file(const char *path, struct tickets *t, char *err, size_t errlen);

/* Fresh random keys with rotation (no file). */
int tickets_init_random(struct tickets *t, long lifetime);

/* Master: makes a new current key if its time has come; returns the ms
 * until the next rotation (-1: never). */
long long tickets_rotate_if_due(struct tickets *t);

/* Fetches the ciphers from libctx (the worker cannot fetch: that may read
 * a configuration file).  0 or -1. */
int tickets_prepare(struct tickets *t, OSSL_LIB_CTX *libctx);

/* Installs the ticket callback using t (borrowed; must outlive ctx) on ctx. */
void tickets_install(SSL_CTX *ctx, struct tickets *t);

/* Wipes the keys. */
void tickets_clear(struct tickets *t);

#endif

/* SHA-256 (FIPS 180-4) for the test applications, which stay free of
 * OpenSSL so that what they report does not depend on the library under
 * test. */
#ifndef UCSPITLS_TESTS_SHA256_H
#define UCSPITLS_TESTS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    size_t fill;    /* bytes waiting in block */
    unsigned char block[64];
};

/* Starts a new hash in *c. */
void sha256_init(struct sha256 *c);

/* Adds n bytes (borrowed) to the hash. */
void sha256_update(struct sha256 *c, const void *data, size_t n);

/* Finishes the hash: writes the digest as 64 lowercase hex digits and a NUL
 * into hex[65].  *c must be re-initialised before reuse. */
void sha256_final_hex(struct sha256 *c, char hex[65]);

#endif

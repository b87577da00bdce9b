/* Shared by the relay tests: a self-signed server context and a client
 * context, a deterministic byte stream with its FNV-1a checksum, and small
 * I/O helpers.  Header-only; each test is one translation unit. */
#ifndef UCSPITLS_TESTS_RELAY_FIXTURE_H
#define UCSPITLS_TESTS_RELAY_FIXTURE_H

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MIB (1024 * 1024)

static SSL_CTX *server_ctx, *client_ctx;

static inline void make_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());

    server_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server_ctx, x);
    SSL_CTX_use_PrivateKey(server_ctx, key);
    SSL_CTX_set_mode(server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Deterministic stream and its checksum (FNV-1a 64). */
static inline unsigned char stream_byte(uint64_t i) { return (unsigned char)((i * 2654435761u) >> 13); }
static inline uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}
#define FNV_INIT 1469598103934665603ULL

static inline uint64_t expected_sum(size_t n)
{
    static unsigned char buf[65536];
    uint64_t h = FNV_INIT;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = stream_byte(done + i);
        h = fnv(h, buf, k);
        done += k;
    }
    return h;
}

static inline int write_full(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

#endif

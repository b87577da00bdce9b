/* The server SSL_CTX: built once in the master, inherited by every worker
 * through fork, so that the worker never opens a file. */
#include "internal.h"
#include "keyprov.h"
#include "log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forward-secret, AEAD-only TLS 1.2 suites; TLS 1.3 suites are all fine. */
#define DEFAULT_CIPHERS_TLS12                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256:P-384"

struct tls_context {
    OSSL_LIB_CTX *libctx; /* the default provider and keyprov */
    SSL_CTX *ctx;
};

static void ssl_reason(char *err, size_t errlen, const char *what,
                       const char *file)
{
    char e[256] = "";
    unsigned long code = ERR_peek_last_error();

    if (code != 0)
        ERR_error_string_n(code, e, sizeof e);
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file, e[0] ? e : "failed");
}

static int load_certificates(SSL_CTX *ctx, const struct engine_config *cfg,
                             char *err, size_t errlen)
{
    /* CERTCHAINFILE (sslserver) holds the certificate and its chain;
     * CERTFILE may too (s6-tlsd): both are read as a chain file. */
    const char *file = cfg->certchainfile && *cfg->certchainfile
                           ? cfg->certchainfile
                           : cfg->certfile;
    FILE *f = fopen(file, "re");

    if (f == NULL) {
        snprintf(err, errlen, "unable to read certificate file %s: %s", file,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    if (SSL_CTX_use_certificate_chain_file(ctx, file) != 1) {
        ssl_reason(err, errlen, "no usable certificate in", file);
        return -1;
    }
    return 0;
}

/* The certificate's key, as a handle whose signatures keyd makes: the
 * private key is never read here.  (UCSPITLS_BENCH_KEY_IN_WORKER=1 reads it
 * here instead, for the benchmark that measures what isolation costs.) */
static int use_key(struct tls_context *t, const struct engine_config *cfg,
                   char *err, size_t errlen)
{
    X509 *cert = SSL_CTX_get0_certificate(t->ctx);
    EVP_PKEY *key;
    int rc = 0;

    if (cfg->bench_key_in_worker) {
        const char *file = cfg->keyfile && *cfg->keyfile ? cfg->keyfile
                           : cfg->certchainfile && *cfg->certchainfile
                               ? cfg->certchainfile
                               : cfg->certfile;
        key = keystore_load(file, NULL, err, errlen);
    } else {
        key = cert ? keyprov_handle_new(t->libctx, X509_get0_pubkey(cert), 0) : NULL;
        if (key == NULL)
            snprintf(err, errlen, "unsupported certificate key (RSA, EC and Ed25519 are)");
    }
    if (key == NULL)
        return -1;
    if (SSL_CTX_use_PrivateKey(t->ctx, key) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "private key does not match the certificate");
        rc = -1;
    }
    EVP_PKEY_free(key);
    return rc;
}

struct tls_context *tlsctx_new(const struct engine_config *cfg, char *err,
                               size_t errlen)
{
    struct tls_context *t = calloc(1, sizeof *t);
    SSL_CTX *ctx;
    static const unsigned char sid_ctx[] = "ucspi-tls";

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->libctx = OSSL_LIB_CTX_new();
    if (t->libctx == NULL || keyprov_install(t->libctx) < 0) {
        ssl_reason(err, errlen, "unable to set up the key provider", "");
        goto fail;
    }
    ctx = t->ctx = SSL_CTX_new_ex(t->libctx, NULL, TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(err, errlen, "SSL_CTX_new", "");
        goto fail;
    }
    /* TLS 1.2 and 1.3 only; no renegotiation, no compression, our order. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_SINGLE_ECDH_USE);
    /* By default a bare TCP EOF from the peer ends its direction like a
     * close_notify (and the SSL object stays usable for our own
     * close_notify); with -J OpenSSL reports it and the pump aborts. */
    if (!cfg->strict_close)
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Each worker is a separate process: a server-side session cache would
     * only ever hold its own session.  Resumption is by tickets, whose keys
     * are made here, before the fork, and so shared by all workers. */
    /* Read ahead with a buffer of several records: one read(2) brings in
     * many records instead of two reads (header, body) per record. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 4 * 16384 + 512);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_max_early_data(ctx, 0);
    if (SSL_CTX_set1_groups_list(ctx, DEFAULT_GROUPS) != 1) {
        ssl_reason(err, errlen, "groups", DEFAULT_GROUPS);
        goto fail;
    }
    /* $CIPHERS is the operator's TLS 1.2 list, minus what keyd would have
     * to do and never does: decrypt (RSA key exchange) or sign finite-field
     * DH parameters; and minus anonymous and PSK/SRP suites. */
    {
        char list[2048];
        snprintf(list, sizeof list, "%s:!kRSA:!kDHE:!aNULL:!PSK:!SRP",
                 cfg->ciphers && *cfg->ciphers ? cfg->ciphers : DEFAULT_CIPHERS_TLS12);
        if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
            ssl_reason(err, errlen, "no usable cipher in $CIPHERS", cfg->ciphers ? cfg->ciphers : "");
            goto fail;
        }
    }
    if (cfg->ciphersuites && *cfg->ciphersuites &&
        SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1) {
        ssl_reason(err, errlen, "no usable suite in $CIPHERSUITES", cfg->ciphersuites);
        goto fail;
    }
    if (cfg->dhfile && *cfg->dhfile)
        log_line(LOG_ERROR, "warning: $DHFILE ignored: only ECDHE key exchange is offered");
    /* tlsd is one process per connection: its ticket keys die with it, so
     * tickets could never be used; don't spend the handshake on them. */
    if (cfg->frontend == ENGINE_HANDLE)
        SSL_CTX_set_num_tickets(ctx, 0);
    if (load_certificates(ctx, cfg, err, errlen) < 0 ||
        use_key(t, cfg, err, errlen) < 0)
        goto fail;
    return t;
fail:
    tlsctx_free(t);
    return NULL;
}

SSL_CTX *tlsctx_ssl_ctx(struct tls_context *t)
{
    return t->ctx;
}

void tlsctx_free(struct tls_context *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    OSSL_LIB_CTX_free(t->libctx);
    free(t);
}

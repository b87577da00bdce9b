/* The server SSL_CTX: built once in the master, inherited by every worker
 * through fork, so that the worker never opens a file. */
#include "internal.h"
#include "keyprov.h"
#include "relay.h"
#include "tickets.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forward-secret, AEAD-only TLS 1.2 suites; TLS 1.3 suites are all fine. */
#define DEFAULT_CIPHERS_TLS12                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* keyd signs TLS 1.2 ECDHE parameters of these groups only (keyd_proto.c) */
#define DEFAULT_GROUPS "X25519:P-256:P-384"

/* A server name and the context whose certificates it gets. */
struct sni_ctx {
    char *name; /* lower case; "*.example.org" matches one first label */
    SSL_CTX *ctx;
};

/* A stapled OCSP response for one loaded certificate. */
struct staple {
    X509 *cert;         /* the leaf as loaded into a context (a reference) */
    unsigned char *der; /* OCSPResponse (owned) */
    int len;
};

struct tls_context {
    OSSL_LIB_CTX *libctx; /* the default provider and keyprov */
    OSSL_PROVIDER *providers[2]; /* loaded in libctx (keyprov_install) */
    SSL_CTX *ctx;         /* the default; every handshake starts here */
    struct sni_ctx *sni;  /* per-name contexts (SNI) */
    int nsni;
    int sni_strict;
    struct tickets tickets;     /* session-ticket keys (master-owned) */
    int ktls;                   /* the kernel does TLS (probed at start-up) */
    struct staple *staples;     /* OCSP stapling: <certfile>.ocsp */
    int nstaples;
    X509_STORE *store;          /* client-certificate trust anchors */
    EVP_PKEY **pubkeys;         /* each certificate's public key, by key id */
    int npubkeys;
    STACK_OF(X509_NAME) *names; /* CA names sent in the CertificateRequest */
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

/* OCSP stapling: a DER OCSPResponse in <certfile>.ocsp (HAProxy's
 * convention), read now and on every reload; none is fine. */
static int load_staple(struct tls_context *t, X509 *cert, const char *certfile,
                       char *err, size_t errlen)
{
    char path[4096];
    unsigned char buf[65536];
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp;
    struct staple *grown;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s.ocsp", certfile);
    f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    resp = n > 0 && n < sizeof buf ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (resp == NULL || (size_t)(p - buf) != n) {
        OCSP_RESPONSE_free(resp);
        ERR_clear_error();
        snprintf(err, errlen, "%s: not a DER OCSP response", path);
        return -1;
    }
    OCSP_RESPONSE_free(resp);
    grown = realloc(t->staples, (size_t)(t->nstaples + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    t->staples = grown;
    grown[t->nstaples].der = OPENSSL_memdup(buf, n);
    if (grown[t->nstaples].der == NULL)
        return -1;
    X509_up_ref(cert);
    grown[t->nstaples].cert = cert;
    grown[t->nstaples].len = (int)n;
    t->nstaples++;
    return 0;
}

/* A client asked for the certificate's status: staple the response of the
 * certificate this handshake uses, if there is one. */
static int on_status(SSL *ssl, void *arg)
{
    struct tls_context *t = arg;
    X509 *cert = SSL_get_certificate(ssl);

    for (int i = 0; cert != NULL && i < t->nstaples; i++) {
        if (t->staples[i].cert == cert) {
            unsigned char *copy = OPENSSL_memdup(t->staples[i].der, (size_t)t->staples[i].len);
            if (copy == NULL || SSL_set_tlsext_status_ocsp_resp(ssl, copy, t->staples[i].len) != 1) {
                OPENSSL_free(copy);
                return SSL_TLSEXT_ERR_NOACK;
            }
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Loads certificate entry id (its chain) into ctx, with its key: a keyd
 * handle for key id `id`, built from the certificate's public key (the
 * private key is never read here).  UCSPITLS_BENCH_KEY_IN_WORKER=1 reads the
 * key here instead, for the benchmark that measures what isolation costs.
 * A context holds one certificate per key type, so an RSA and an ECDSA
 * certificate for one name both go into its context and the client gets
 * the best it supports. */
static int add_certificate(struct tls_context *t, SSL_CTX *ctx,
                           const struct engine_config *cfg, int id, char *err,
                           size_t errlen)
{
    const struct cert_entry *e = &cfg->certs[id];
    FILE *f = fopen(e->cert, "re");
    EVP_PKEY *key;
    X509 *cert;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "unable to read certificate file %s: %s", e->cert,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    /* CERTCHAINFILE (sslserver) holds the certificate and its chain;
     * CERTFILE may too (s6-tlsd): both are read as a chain file. */
    if (SSL_CTX_use_certificate_chain_file(ctx, e->cert) != 1) {
        ssl_reason(err, errlen, "no usable certificate in", e->cert);
        return -1;
    }
    cert = SSL_CTX_get0_certificate(ctx); /* the one just loaded */
    if (cert != NULL && id < t->npubkeys && t->pubkeys[id] == NULL)
        t->pubkeys[id] = X509_get_pubkey(cert);
    if (cert != NULL && load_staple(t, cert, e->cert, err, errlen) < 0)
        return -1;
    if (cfg->bench_key_in_worker)
        key = keystore_load(certlist_key_file(e), NULL, err, errlen);
    else if ((key = cert ? keyprov_handle_new(t->libctx, X509_get0_pubkey(cert),
                                              (uint16_t)id) : NULL) == NULL)
        snprintf(err, errlen, "%s: unsupported certificate key (RSA, EC and Ed25519 are)",
                 e->cert);
    if (key == NULL)
        return -1;
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "private key does not match the certificate in %s", e->cert);
        rc = -1;
    }
    EVP_PKEY_free(key);
    return rc;
}

/* The trust anchors for client certificates, read completely now: a
 * hashed CADIR would otherwise be opened lazily, during a handshake, by a
 * worker that cannot open files. */
static int load_client_cas(struct tls_context *t, const struct engine_config *cfg,
                           char *err, size_t errlen)
{
    const char *namefile;

    t->store = X509_STORE_new();
    if (t->store == NULL)
        return -1;
    if (cfg->cafile && *cfg->cafile &&
        X509_STORE_load_file_ex(t->store, cfg->cafile, t->libctx, NULL) != 1) {
        ssl_reason(err, errlen, "no usable CA certificate in $CAFILE", cfg->cafile);
        return -1;
    }
    if (cfg->cadir && *cfg->cadir) {
        DIR *d = opendir(cfg->cadir);
        struct dirent *e;
        char path[4096];
        int found = 0;
        if (d == NULL) {
            snprintf(err, errlen, "$CADIR %s: %s", cfg->cadir, strerror(errno));
            return -1;
        }
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", cfg->cadir, e->d_name);
            if (X509_STORE_load_file_ex(t->store, path, t->libctx, NULL) == 1)
                found++;
            ERR_clear_error(); /* not every file there need be a certificate */
        }
        closedir(d);
        if (found == 0) {
            snprintf(err, errlen, "$CADIR %s: no CA certificate in it", cfg->cadir);
            return -1;
        }
    }
    /* $CCAFILE (sslserver): the names to send; "-" sends none */
    namefile = cfg->ccafile && *cfg->ccafile ? cfg->ccafile : cfg->cafile;
    if (namefile && *namefile && strcmp(namefile, "-") != 0) {
        t->names = SSL_load_client_CA_file_ex(namefile, t->libctx, NULL);
        if (t->names == NULL) {
            ssl_reason(err, errlen, "no CA names in", namefile);
            return -1;
        }
    }
    return 0;
}

/* ALPN: our preference order; a client that offers protocols but none of
 * ours gets the no_application_protocol alert (RFC 7301 3.2). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct engine_config *cfg = arg;

    (void)ssl;
    for (size_t i = 0; i < cfg->alpn_len; i += 1 + cfg->alpn[i]) {
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (j + 1u + in[j] > inlen)
                break; /* malformed list (OpenSSL checks too) */
            if (in[j] == cfg->alpn[i] && memcmp(in + j + 1, cfg->alpn + i + 1, in[j]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* A context with every setting but the certificates; all contexts (the
 * default and one per server name) are made alike. */
static SSL_CTX *new_ctx(struct tls_context *t, const struct engine_config *cfg,
                        char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "ucspi-tls";
    SSL_CTX *ctx = SSL_CTX_new_ex(t->libctx, NULL, TLS_server_method());

    if (ctx == NULL) {
        ssl_reason(err, errlen, "SSL_CTX_new", "");
        return NULL;
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
    /* kTLS where the kernel has it: OpenSSL hands it each direction's keys
     * at the end of the handshake, and the relay splices */
    if (t->ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
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
    /* tlsd is one process per connection: keys of its own would die with
     * it, so without a shared key file tickets could never be used; don't
     * spend the handshake on them. */
    if (cfg->frontend == ENGINE_HANDLE && cfg->ticket_keys == NULL)
        SSL_CTX_set_num_tickets(ctx, 0);
    else
        tickets_install(ctx, &t->tickets);
    if (cfg->alpn_len > 0)
        SSL_CTX_set_alpn_select_cb(ctx, on_alpn, (void *)cfg);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status);
    SSL_CTX_set_tlsext_status_arg(ctx, t);
    if (cfg->client_cert != CLIENT_CERT_NONE) {
        int mode = SSL_VERIFY_PEER;
        if (cfg->client_cert != CLIENT_CERT_OPTIONAL)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, cfg->verify_depth);
        SSL_CTX_set1_cert_store(ctx, t->store);
        if (t->names != NULL) {
            STACK_OF(X509_NAME) *copy = SSL_dup_CA_list(t->names);
            if (copy == NULL)
                goto fail;
            SSL_CTX_set_client_CA_list(ctx, copy);
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Registers name for an existing context (a reference is taken), unless
 * the name is already known.  0 or -1. */
static int name_ctx(struct tls_context *t, const char *name, SSL_CTX *ctx)
{
    struct sni_ctx *grown;

    for (int i = 0; i < t->nsni; i++)
        if (strcmp(t->sni[i].name, name) == 0)
            return 0;
    grown = realloc(t->sni, (size_t)(t->nsni + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    t->sni = grown;
    if ((grown[t->nsni].name = strdup(name)) == NULL)
        return -1;
    SSL_CTX_up_ref(ctx);
    grown[t->nsni++].ctx = ctx;
    return 0;
}

/* The context for a server name, made on first use. */
static SSL_CTX *ctx_for_name(struct tls_context *t, const struct engine_config *cfg,
                             const char *name, char *err, size_t errlen)
{
    struct sni_ctx *grown;

    for (int i = 0; i < t->nsni; i++)
        if (strcmp(t->sni[i].name, name) == 0)
            return t->sni[i].ctx;
    grown = realloc(t->sni, (size_t)(t->nsni + 1) * sizeof *grown);
    if (grown == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->sni = grown;
    t->sni[t->nsni].name = strdup(name);
    t->sni[t->nsni].ctx = new_ctx(t, cfg, err, errlen);
    if (t->sni[t->nsni].name == NULL || t->sni[t->nsni].ctx == NULL) {
        free(t->sni[t->nsni].name);
        SSL_CTX_free(t->sni[t->nsni].ctx);
        if (err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return t->sni[t->nsni++].ctx;
}

/* The DNS names of a certificate directory entry: its subjectAltNames, or
 * its CN when it has none. */
static int cert_names(const char *file, char names[][256], int max)
{
    FILE *f = fopen(file, "re");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    GENERAL_NAMES *alt;
    int n = 0;

    if (f != NULL)
        fclose(f);
    if (x == NULL) {
        ERR_clear_error();
        return -1;
    }
    alt = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; alt != NULL && i < sk_GENERAL_NAME_num(alt) && n < max; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
        if (g->type == GEN_DNS && ASN1_STRING_length(g->d.dNSName) < 256) {
            int len = ASN1_STRING_length(g->d.dNSName);
            memcpy(names[n], ASN1_STRING_get0_data(g->d.dNSName), (size_t)len);
            names[n][len] = '\0';
            n++;
        }
    }
    GENERAL_NAMES_free(alt);
    if (n == 0 &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, names[0], 256) > 0)
        n = 1;
    X509_free(x);
    for (int i = 0; i < n; i++)
        for (char *p = names[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return n;
}

/* SNI: switch to the context of the name the client asked for: the exact
 * name, else its first-label wildcard; else the default (or, with
 * --sni-strict, an unrecognized_name alert). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    struct tls_context *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char lower[256], wild[256];
    const char *dot;
    size_t n;

    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK; /* no SNI: the default certificate */
    n = strlen(name);
    if (n == 0 || n >= sizeof lower)
        goto unknown;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    dot = strchr(lower, '.');
    snprintf(wild, sizeof wild, "*%s", dot ? dot : "");
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < t->nsni; i++) {
            if (strcmp(t->sni[i].name, pass == 0 ? lower : wild) == 0) {
                if (SSL_set_SSL_CTX(ssl, t->sni[i].ctx) == NULL)
                    goto unknown;
                return SSL_TLSEXT_ERR_OK;
            }
        }
        if (dot == NULL)
            break;
    }
unknown:
    if (t->sni_strict) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

struct tls_context *tlsctx_new(const struct engine_config *cfg, char *err,
                               size_t errlen)
{
    struct tls_context *t = calloc(1, sizeof *t);
    static char names[64][256];

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    err[0] = '\0';
    t->sni_strict = cfg->sni_strict;
    t->pubkeys = calloc((size_t)cfg->ncerts + 1, sizeof *t->pubkeys);
    if (t->pubkeys == NULL) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->npubkeys = cfg->ncerts;
    /* once, as root, before any worker: the kernel may load its tls module */
    t->ktls = relay_ktls_probe();
    t->libctx = OSSL_LIB_CTX_new();
    if (t->libctx == NULL || keyprov_install(t->libctx, t->providers) < 0) {
        ssl_reason(err, errlen, "unable to set up the key provider", "");
        goto fail;
    }
    if (cfg->dhfile && *cfg->dhfile)
        log_line(LOG_ERROR, "warning: $DHFILE ignored: only ECDHE key exchange is offered");
    /* tlsd without a shared key file sends no tickets (new_ctx): it needs
     * no ticket keys, nor the ciphers they are used with */
    if (cfg->frontend != ENGINE_HANDLE || cfg->ticket_keys != NULL) {
        if (tickets_prepare(&t->tickets, t->libctx) < 0) {
            ssl_reason(err, errlen, "unable to fetch the ticket ciphers", "");
            goto fail;
        }
        if (cfg->ticket_keys != NULL) {
            t->tickets.lifetime = cfg->ticket_lifetime;
            if (tickets_load_file(cfg->ticket_keys, &t->tickets, err, errlen) < 0)
                goto fail;
        } else if (tickets_init_random(&t->tickets, cfg->ticket_lifetime) < 0) {
            snprintf(err, errlen, "unable to make session-ticket keys");
            goto fail;
        }
    }
    if (cfg->client_cert != CLIENT_CERT_NONE && load_client_cas(t, cfg, err, errlen) < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->ctx = new_ctx(t, cfg, err, errlen);
    if (t->ctx == NULL)
        goto fail;
    for (int id = 0; id < cfg->ncerts; id++) {
        const struct cert_entry *e = &cfg->certs[id];
        int n;

        /* the default certificate: $CERTFILE's, or else the first one */
        if (id == 0 && add_certificate(t, t->ctx, cfg, id, err, errlen) < 0)
            goto fail;
        if (id == 0 && cfg->has_default_cert) {
            /* the default certificate's own names lead to the default
             * context (so --sni-strict accepts them, and a certificate
             * directory may add a second key type for them) */
            n = cert_names(e->cert, names, 64);
            for (int i = 0; i < n; i++) {
                if (name_ctx(t, names[i], t->ctx) < 0) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
            }
            continue;
        }
        if (e->sni != NULL) {
            memcpy(names[0], e->sni, strlen(e->sni) + 1);
            n = 1;
        } else if ((n = cert_names(e->cert, names, 64)) <= 0) {
            snprintf(err, errlen, "%s: no usable certificate, or no name in it", e->cert);
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            SSL_CTX *ctx = ctx_for_name(t, cfg, names[i], err, errlen);
            if (ctx == NULL || add_certificate(t, ctx, cfg, id, err, errlen) < 0)
                goto fail;
        }
    }
    if (t->nsni > 0 || cfg->sni_strict) {
        SSL_CTX_set_tlsext_servername_callback(t->ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
    }
    return t;
fail:
    tlsctx_free(t);
    return NULL;
}

int tlsctx_warm_up(struct tls_context *t, int tls12, char *err, size_t errlen)
{
    SSL_CTX *cctx = SSL_CTX_new_ex(t->libctx, NULL, TLS_client_method());
    SSL *c = NULL, *s = NULL;
    BIO *cb = NULL, *sb = NULL;
    const char *name = NULL;
    char byte = 'w';
    int done = 0, ok = 0;

    if (cctx == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
        goto out;
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    if (tls12 && (SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION) != 1 ||
                  SSL_CTX_set1_groups_list(cctx, "P-256") != 1))
        goto out;
    c = SSL_new(cctx);
    s = SSL_new(t->ctx);
    if (c == NULL || s == NULL)
        goto out;
    /* with --sni-strict a name is needed: one of the default context's */
    for (int i = 0; i < t->nsni && name == NULL; i++)
        if (t->sni[i].ctx == t->ctx && t->sni[i].name[0] != '*')
            name = t->sni[i].name;
    if (name != NULL && SSL_set_tlsext_host_name(c, name) != 1)
        goto out;
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    cb = sb = NULL;
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    /* each call moves what the other side wrote into the BIO pair on */
    for (int round = 0; round < 16 && !done; round++) {
        int rc = SSL_do_handshake(c);
        done = SSL_do_handshake(s) == 1 && rc == 1;
    }
    /* a record each way: the record layer's ciphers, and (TLS 1.3) the
     * session ticket the server sends with its first write */
    ok = done && SSL_write(s, &byte, 1) == 1 && SSL_read(c, &byte, 1) == 1 &&
         SSL_write(c, &byte, 1) == 1 && SSL_read(s, &byte, 1) == 1;
out:
    if (!ok)
        ssl_reason(err, errlen, done ? "warm-up exchange" : "warm-up handshake", "");
    SSL_free(c);
    SSL_free(s);
    BIO_free(cb);
    BIO_free(sb);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return ok ? 0 : -1;
}

SSL_CTX *tlsctx_ssl_ctx(struct tls_context *t)
{
    return t->ctx;
}

long long tlsctx_rotate_tickets(struct tls_context *t)
{
    return tickets_rotate_if_due(&t->tickets);
}

int tlsctx_ktls(const struct tls_context *t)
{
    return t->ktls;
}

void tlsctx_inherit_tickets(struct tls_context *to, const struct tls_context *from)
{
    if (to->tickets.next_rotate == 0 || from->tickets.next_rotate == 0)
        return; /* keys from a file: the file was read again */
    memcpy(to->tickets.keys, from->tickets.keys, sizeof to->tickets.keys);
    to->tickets.n = from->tickets.n;
    to->tickets.next_rotate = from->tickets.next_rotate;
}

EVP_PKEY *tlsctx_cert_pubkey(const struct tls_context *t, int id)
{
    return t != NULL && id >= 0 && id < t->npubkeys ? t->pubkeys[id] : NULL;
}

void tlsctx_free(struct tls_context *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nsni; i++) {
        free(t->sni[i].name);
        SSL_CTX_free(t->sni[i].ctx);
    }
    free(t->sni);
    SSL_CTX_free(t->ctx);
    X509_STORE_free(t->store);
    tickets_clear(&t->tickets);
    for (int i = 0; i < t->nstaples; i++) {
        X509_free(t->staples[i].cert);
        OPENSSL_free(t->staples[i].der);
    }
    free(t->staples);
    sk_X509_NAME_pop_free(t->names, X509_NAME_free);
    for (int i = 0; i < t->npubkeys; i++)
        EVP_PKEY_free(t->pubkeys[i]);
    free(t->pubkeys);
    keyprov_uninstall(t->providers);
    OSSL_LIB_CTX_free(t->libctx);
    free(t);
}

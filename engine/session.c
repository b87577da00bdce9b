/* The session variables of a finished handshake, in mod_ssl's names, as a
 * UCSPI-TLS `Y` block.  Order matters to real applications (REFERENCE A):
 * SSL_PROTOCOL and SSL_CIPHER first, short names early, no bare names. */
#include "internal.h"
#include "ucspitls_app.h"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VARS 64 /* UCSPITLS_VARS_MAX: what apps accept */
#define ARENA 12288
#define PEM_MAX 8192 /* SSL_CLIENT_CERT: a client certificate's PEM */

/* Variables collected before encoding: values are copied into an arena
 * owned by the collection. */
struct collect {
    struct ucspitls_var v[MAX_VARS];
    size_t n;
    char arena[ARENA];
    size_t used;
    int overflow;
};

/* Adds NAME=value; an empty or missing value is left out entirely, never
 * sent as a bare NAME. */
static void put(struct collect *c, const char *name, const char *value)
{
    size_t vl;

    if (value == NULL || *value == '\0')
        return;
    vl = strlen(value);
    if (c->n == MAX_VARS || c->used + vl + 1 > ARENA) {
        c->overflow = 1;
        return;
    }
    memcpy(c->arena + c->used, value, vl + 1);
    c->v[c->n].name = name;
    c->v[c->n].value = c->arena + c->used;
    c->v[c->n].value_len = vl;
    c->n++;
    c->used += vl + 1;
}

/* The SNI name comes from the peer: only a plain host name goes into an
 * environment variable. */
int session_host_name_ok(const char *s)
{
    size_t n = 0;
    for (; *s; s++, n++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return n > 0 && n <= 253;
}

static void put_name(struct collect *b, const char *var, X509_NAME *name)
{
    char buf[1024];
    BIO *mem;
    int n;

    if (name == NULL || (mem = BIO_new(BIO_s_mem())) == NULL)
        return;
    if (X509_NAME_print_ex(mem, name, 0,
                           XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        n = BIO_read(mem, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = '\0';
            put(b, var, buf);
        }
    }
    BIO_free(mem);
}

/* One attribute of a name.  A client certificate's text is the peer's:
 * control characters never reach an environment variable. */
static void put_attr(struct collect *b, const char *var, X509_NAME *name, int nid)
{
    char buf[256];
    if (name != NULL && X509_NAME_get_text_by_NID(name, nid, buf, sizeof buf) > 0) {
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        put(b, var, buf);
    }
}

static void put_cn(struct collect *b, const char *var, X509_NAME *name)
{
    put_attr(b, var, name, NID_commonName);
}

static void put_time(struct collect *b, const char *var, const ASN1_TIME *t)
{
    char buf[64];
    BIO *mem = BIO_new(BIO_s_mem());
    int n;

    if (mem != NULL && ASN1_TIME_print(mem, t) == 1 &&
        (n = BIO_read(mem, buf, sizeof buf - 1)) > 0) {
        buf[n] = '\0';
        put(b, var, buf);
    }
    BIO_free(mem);
}

/* The client certificate, mod_ssl's and s6-tlsd's names.  The short ones
 * come early (REFERENCE A: s/qmail's parser stops half-way); the PEM is
 * added last by the caller, and only on request. */
static void put_client(struct collect *b, SSL *ssl, int early)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    long verify = SSL_get_verify_result(ssl);
    char hex[2 * EVP_MAX_MD_SIZE + 8];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (early) {
        if (peer == NULL) {
            put(b, "SSL_CLIENT_VERIFY", "NONE");
            return;
        }
        put_cn(b, "SSL_CLIENT_S_DN_CN", X509_get_subject_name(peer));
        put_attr(b, "SSL_CLIENT_S_DN_Email", X509_get_subject_name(peer), NID_pkcs9_emailAddress);
        put_name(b, "SSL_CLIENT_S_DN", X509_get_subject_name(peer));
        if (verify == X509_V_OK) {
            put(b, "SSL_CLIENT_VERIFY", "SUCCESS");
        } else {
            snprintf(hex, sizeof hex, "FAILED:%ld", verify);
            put(b, "SSL_CLIENT_VERIFY", hex);
        }
        return;
    }
    if (peer == NULL)
        return;
    put_name(b, "SSL_CLIENT_I_DN", X509_get_issuer_name(peer));
    {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
        char *s = bn ? BN_bn2hex(bn) : NULL;
        put(b, "SSL_CLIENT_M_SERIAL", s);
        OPENSSL_free(s);
        BN_free(bn);
    }
    put_time(b, "SSL_CLIENT_V_START", X509_get0_notBefore(peer));
    put_time(b, "SSL_CLIENT_V_END", X509_get0_notAfter(peer));
    if (X509_digest(peer, EVP_sha256(), md, &mdlen) == 1) {
        int n = snprintf(hex, sizeof hex, "SHA256:");
        for (unsigned int i = 0; i < mdlen; i++)
            n += snprintf(hex + n, sizeof hex - (size_t)n, "%02x", md[i]);
        put(b, "SSL_PEER_CERT_HASH", hex);
    }
    put_name(b, "SSL_PEER_CERT_SUBJECT", X509_get_subject_name(peer));
}

static void put_client_pem(struct collect *b, SSL *ssl)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    char *pem;
    BIO *mem;
    int n;

    if (peer == NULL || (mem = BIO_new(BIO_s_mem())) == NULL)
        return;
    /* on the heap, like the collector (see session_vars_encode) */
    if ((pem = malloc(PEM_MAX)) != NULL && PEM_write_bio_X509(mem, peer) == 1 &&
        (n = BIO_read(mem, pem, PEM_MAX - 1)) > 0) {
        pem[n] = '\0';
        put(b, "SSL_CLIENT_CERT", pem);
    }
    free(pem);
    BIO_free(mem);
}

int session_vars_encode(SSL *ssl, int with_pem, const struct ucspitls_var *extra,
                        size_t nextra, char *buf, size_t cap)
{
    struct collect *b;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    SSL_SESSION *sess = SSL_get_session(ssl);
    X509 *cert = SSL_get_certificate(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char num[32], hex[2 * SSL_MAX_SSL_SESSION_ID_LENGTH + 1];
    int alg = 0, use, rc;

    size_t len = 0;

    /* On the heap, and touched only as far as used: a static or stack copy
     * would keep 14 KiB dirty for the connection's life (the worker
     * returns freed heap pages after this; see conn.c settle()). */
    if ((b = malloc(sizeof *b)) == NULL)
        return -1;
    b->n = b->used = 0;
    b->overflow = 0;
    put(b, "SSL_PROTOCOL", SSL_get_version(ssl));
    put(b, "SSL_CIPHER", c ? SSL_CIPHER_get_name(c) : NULL);
    put_client(b, ssl, 1);
    use = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
    snprintf(num, sizeof num, "%d", use);
    put(b, "SSL_CIPHER_USEKEYSIZE", num);
    snprintf(num, sizeof num, "%d", alg);
    put(b, "SSL_CIPHER_ALGKEYSIZE", num);
    if (sess != NULL) {
        unsigned int idlen = 0;
        const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
        for (unsigned int i = 0; i < idlen && i < SSL_MAX_SSL_SESSION_ID_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02X", id[i]);
        hex[2 * (idlen < SSL_MAX_SSL_SESSION_ID_LENGTH ? idlen : SSL_MAX_SSL_SESSION_ID_LENGTH)] = '\0';
        put(b, "SSL_SESSION_ID", hex);
    }
    put(b, "SSL_SESSION_RESUMED", SSL_session_reused(ssl) ? "Resumed" : "Initial");
    if (sni != NULL && session_host_name_ok(sni))
        put(b, "SSL_TLS_SNI_SERVERNAME", sni);
    {
        const unsigned char *alpn = NULL;
        unsigned int alpn_len = 0;
        char proto[256];
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        if (alpn_len > 0 && alpn_len < sizeof proto) {
            memcpy(proto, alpn, alpn_len); /* one of our own --alpn names */
            proto[alpn_len] = '\0';
            put(b, "SSL_ALPN_PROTOCOL", proto);
        }
    }
    put(b, "SSL_VERSION_INTERFACE", ENGINE_VERSION);
    put(b, "SSL_VERSION_LIBRARY", OpenSSL_version(OPENSSL_VERSION));
    if (cert != NULL) {
        put_cn(b, "SSL_SERVER_S_DN_CN", X509_get_subject_name(cert));
        put_name(b, "SSL_SERVER_S_DN", X509_get_subject_name(cert));
        put_name(b, "SSL_SERVER_I_DN", X509_get_issuer_name(cert));
    }
    put_client(b, ssl, 0);
    for (size_t i = 0; i < nextra; i++)
        put(b, extra[i].name, extra[i].value);
    if (with_pem)
        put_client_pem(b, ssl);
    rc = b->overflow || ucspitls_vars_encode(b->v, b->n, buf, cap, &len) != 0 ? -1 : (int)len;
    OPENSSL_cleanse(b->arena, b->used);
    OPENSSL_cleanse(b->v, b->n * sizeof b->v[0]);
    free(b);
    return rc;
}

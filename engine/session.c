/* The session variables of a finished handshake, in mod_ssl's names, as a
 * UCSPI-TLS `Y` block.  Order matters to real applications (REFERENCE A):
 * SSL_PROTOCOL and SSL_CIPHER first, short names early, no bare names. */
#include "internal.h"
#include "ucspitls_app.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#define MAX_VARS 16
#define ARENA 4096

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

static void put_cn(struct collect *b, const char *var, X509_NAME *name)
{
    char buf[256];
    if (name != NULL &&
        X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof buf) > 0)
        put(b, var, buf);
}

int session_vars_encode(SSL *ssl, char *buf, size_t cap)
{
    static struct collect b; /* big: kept off the worker's stack */
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    SSL_SESSION *sess = SSL_get_session(ssl);
    X509 *cert = SSL_get_certificate(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char num[32], hex[2 * SSL_MAX_SSL_SESSION_ID_LENGTH + 1];
    int alg = 0, use;

    size_t len = 0;

    memset(&b, 0, sizeof b);
    put(&b, "SSL_PROTOCOL", SSL_get_version(ssl));
    put(&b, "SSL_CIPHER", c ? SSL_CIPHER_get_name(c) : NULL);
    use = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
    snprintf(num, sizeof num, "%d", use);
    put(&b, "SSL_CIPHER_USEKEYSIZE", num);
    snprintf(num, sizeof num, "%d", alg);
    put(&b, "SSL_CIPHER_ALGKEYSIZE", num);
    if (sess != NULL) {
        unsigned int idlen = 0;
        const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
        for (unsigned int i = 0; i < idlen && i < SSL_MAX_SSL_SESSION_ID_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02X", id[i]);
        hex[2 * (idlen < SSL_MAX_SSL_SESSION_ID_LENGTH ? idlen : SSL_MAX_SSL_SESSION_ID_LENGTH)] = '\0';
        put(&b, "SSL_SESSION_ID", hex);
    }
    put(&b, "SSL_SESSION_RESUMED", SSL_session_reused(ssl) ? "Resumed" : "Initial");
    if (sni != NULL && session_host_name_ok(sni))
        put(&b, "SSL_TLS_SNI_SERVERNAME", sni);
    {
        const unsigned char *alpn = NULL;
        unsigned int alpn_len = 0;
        char proto[256];
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        if (alpn_len > 0 && alpn_len < sizeof proto) {
            memcpy(proto, alpn, alpn_len); /* one of our own --alpn names */
            proto[alpn_len] = '\0';
            put(&b, "SSL_ALPN_PROTOCOL", proto);
        }
    }
    put(&b, "SSL_VERSION_INTERFACE", ENGINE_VERSION);
    put(&b, "SSL_VERSION_LIBRARY", OpenSSL_version(OPENSSL_VERSION));
    if (cert != NULL) {
        put_cn(&b, "SSL_SERVER_S_DN_CN", X509_get_subject_name(cert));
        put_name(&b, "SSL_SERVER_S_DN", X509_get_subject_name(cert));
        put_name(&b, "SSL_SERVER_I_DN", X509_get_issuer_name(cert));
    }
    if (b.overflow ||
        ucspitls_vars_encode(b.v, b.n, buf, cap, &len) != 0) {
        OPENSSL_cleanse(&b, sizeof b);
        return -1;
    }
    OPENSSL_cleanse(&b, sizeof b);
    return (int)len;
}

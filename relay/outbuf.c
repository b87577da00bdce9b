/* The record buffer under SSL's write BIO (see relay_internal.h).
 *
 * OpenSSL 3.0 writes each TLS record with its own BIO_write, so a download
 * costs one send() per 16 KiB.  This filter BIO keeps the records of one
 * pump pass and sends them together when the pass ends.  It presents to
 * OpenSSL only what a non-blocking socket could: a write is taken whole
 * (copied) or not at all (retry, nothing taken), and a flush always
 * succeeds, as on a socket.  So OpenSSL's write-retry rules see nothing a
 * socket would not give them; BIO_f_buffer, which takes part of a record
 * and reports a failed flush, broke them (found by fuzz/fuzz_pump.c). */
#include "relay_internal.h"

#include <errno.h>
#include <openssl/bio.h>
#include <stdlib.h>
#include <string.h>

struct outbuf {
    unsigned char *buf; /* RELAY_OUT_BUF bytes, allocated at the first write */
    size_t off, len;    /* bytes not yet sent: buf[off .. off+len) */
};

/* OpenSSL 3.0's internal kTLS controls (bio.h lists them in a comment) */
#define OSSL_INTERNAL_SET_KTLS_SEND 72
#define OSSL_INTERNAL_SET_KTLS_SEND_CTRL_MSG 74
#define OSSL_INTERNAL_CLEAR_KTLS_CTRL_MSG 75

static BIO_METHOD *method;
static int method_type;

/* Sends what is buffered, adding what went to *sent.  1: all went; 0: the
 * socket is full (the BIO's retry flags say so); -1: a socket error (errno
 * says which). */
static int drain(BIO *b, struct outbuf *o, size_t *sent)
{
    BIO *next = BIO_next(b);

    while (o->len > 0) {
        int n = BIO_write(next, o->buf + o->off, (int)o->len);

        if (n <= 0) {
            BIO_copy_next_retry(b);
            return BIO_should_retry(next) ? 0 : -1;
        }
        o->off += (size_t)n;
        o->len -= (size_t)n;
        *sent += (size_t)n;
    }
    o->off = 0;
    return 1;
}

static int ob_write(BIO *b, const char *in, int inl)
{
    struct outbuf *o = BIO_get_data(b);
    size_t n = inl > 0 ? (size_t)inl : 0, sent = 0;

    BIO_clear_retry_flags(b);
    if (n == 0)
        return 0;
    if (o->len + n > RELAY_OUT_BUF && drain(b, o, &sent) < 0)
        return -1;
    if (o->len + n > RELAY_OUT_BUF) {
        if (o->len == 0) { /* bigger than the buffer: straight through */
            int w = BIO_write(BIO_next(b), in, inl);
            BIO_copy_next_retry(b);
            return w;
        }
        BIO_set_retry_write(b); /* socket full: nothing taken, as EAGAIN */
        return -1;
    }
    if (o->buf == NULL && (o->buf = malloc(RELAY_OUT_BUF)) == NULL)
        return -1;
    if (o->off + o->len + n > RELAY_OUT_BUF) {
        memmove(o->buf, o->buf + o->off, o->len);
        o->off = 0;
    }
    memcpy(o->buf + o->off + o->len, in, n);
    o->len += n;
    return inl;
}

static long ob_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct outbuf *o = BIO_get_data(b);

    switch (cmd) {
    case BIO_CTRL_FLUSH:
        /* As on a socket: the pump sends at the end of its pass. */
        return 1;
    case BIO_CTRL_WPENDING:
        return (long)o->len;    case BIO_CTRL_GET_KTLS_SEND:
    case OSSL_INTERNAL_SET_KTLS_SEND:
    case OSSL_INTERNAL_SET_KTLS_SEND_CTRL_MSG:
    case OSSL_INTERNAL_CLEAR_KTLS_CTRL_MSG:
        /* kTLS send never under the buffer: it holds records OpenSSL
         * encrypted, and only a socket it writes to directly could take
         * plaintext for the kernel (the pump pushes the buffer only when
         * the kernel does not send; tlsctx.c refuses renegotiation, the one
         * way to switch later) */
        return 0;
    default:
        return BIO_next(b) != NULL ? BIO_ctrl(BIO_next(b), cmd, num, ptr) : 0;
    }
}

static int ob_create(BIO *b)
{
    struct outbuf *o = calloc(1, sizeof *o);

    if (o == NULL)
        return 0;
    BIO_set_data(b, o);
    BIO_set_init(b, 1);
    return 1;
}

static int ob_destroy(BIO *b)
{
    struct outbuf *o = BIO_get_data(b);

    if (o != NULL) { /* ciphertext only: nothing to wipe */
        free(o->buf);
        free(o);
    }
    BIO_set_data(b, NULL);
    return 1;
}

/* The filter's BIO_METHOD, made once per process tree: made by a parent
 * before it forks (relay_prepare), a worker inherits it and writes neither
 * OpenSSL's BIO type counter nor these variables (three pages each worker
 * would otherwise copy from its parent and keep for the connection's life). */
static BIO_METHOD *outbuf_method(void)
{
    if (method == NULL) {
        int t = BIO_get_new_index();
        BIO_METHOD *m = t < 0 ? NULL : BIO_meth_new(t |= BIO_TYPE_FILTER,
                                                    "ucspi-tls record buffer");
        if (m == NULL || !BIO_meth_set_write(m, ob_write) ||
            !BIO_meth_set_ctrl(m, ob_ctrl) || !BIO_meth_set_create(m, ob_create) ||
            !BIO_meth_set_destroy(m, ob_destroy)) {
            BIO_meth_free(m);
            return NULL;
        }
        method = m;
        method_type = t;
    }
    return method;
}

void relay_prepare(void)
{
    (void)outbuf_method(); /* on failure, the first relay tries again */
}

int relay_outbuf_push(SSL *ssl)
{
    BIO *sock = SSL_get_wbio(ssl), *b;

    if (outbuf_method() == NULL)
        return 0;
    if (sock == NULL || (b = BIO_new(method)) == NULL)
        return 0;
    if (BIO_up_ref(sock) != 1) {
        BIO_free(b);
        return 0;
    }
    BIO_push(b, sock);
    SSL_set0_wbio(ssl, b); /* drops the SSL's own reference to sock */
    return 1;
}

/* SSL's write BIO if it is our buffer, else NULL. */
static BIO *ours(SSL *ssl)
{
    BIO *b = SSL_get_wbio(ssl);

    return b != NULL && method != NULL && BIO_method_type(b) == method_type ? b : NULL;
}

int relay_outbuf_flush(SSL *ssl, size_t *sent)
{
    BIO *b = ours(ssl);
    size_t none = 0;

    return b == NULL ? 1 : drain(b, BIO_get_data(b), sent != NULL ? sent : &none);
}

void relay_outbuf_discard(SSL *ssl)
{
    BIO *b = ours(ssl);

    if (b != NULL) {
        struct outbuf *o = BIO_get_data(b);
        o->off = o->len = 0;
    }
}

/* The record buffer under SSL's write BIO (relay/outbuf.c), on a real TLS
 * session over a socketpair, both ends in this process:
 *  - records written during a pass reach the socket only at the flush, and
 *    together (the point of it);
 *  - a write is taken whole or not at all: with the socket full, nothing
 *    of a record is taken, OpenSSL gets a plain retry, and retrying later
 *    delivers every byte in order;
 *  - BIO_flush succeeds without sending (as on a socket);
 *  - a write bigger than the buffer goes straight through;
 *  - a dead peer is an error with errno, not a retry;
 *  - the socket under it is still found (SSL_get_wfd, kTLS query). */
#include "check.h"
#include "relay_internal.h"
#include "tls_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>

static SSL *srv, *cli;
static int sfd, cfd;

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int handshake(void)
{
    int sdone = 0, cdone = 0;
    long long end = now_ms() + 5000;

    while (!(sdone && cdone) && now_ms() < end) {
        if (!cdone)
            cdone = SSL_connect(cli) == 1;
        if (!sdone)
            sdone = SSL_accept(srv) == 1;
    }
    return sdone && cdone;
}

static void pair(int sndbuf)
{
    int sv[2];

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sfd = sv[0];
    cfd = sv[1];
    if (sndbuf > 0)
        setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    nonblock(sfd);
    nonblock(cfd);
    srv = SSL_new(server_ctx);
    cli = SSL_new(client_ctx);
    SSL_set_fd(srv, sfd);
    SSL_set_fd(cli, cfd);
    CHECK(handshake());
    /* the server's session tickets: read them before counting bytes */
    {
        char c;
        CHECK(SSL_read(cli, &c, 1) <= 0);
    }
    CHECK(relay_outbuf_push(srv) == 1);
}

static void unpair(void)
{
    SSL_free(srv);
    SSL_free(cli);
    close(sfd);
    close(cfd);
}

/* Reads plaintext on the client until n bytes came, checking the stream
 * from *pos; flushes the server's buffer as it goes.  1 if all arrived. */
static int client_reads(size_t n, uint64_t *pos)
{
    unsigned char buf[16384];
    long long end = now_ms() + 5000;
    size_t got = 0;

    while (got < n && now_ms() < end) {
        int r = SSL_read(cli, buf, sizeof buf);
        if (r > 0) {
            for (int i = 0; i < r; i++)
                if (buf[i] != stream_byte(*pos + (uint64_t)i))
                    return 0;
            *pos += (uint64_t)r;
            got += (size_t)r;
        } else if (SSL_get_error(cli, r) == SSL_ERROR_WANT_READ) {
            if (relay_outbuf_flush(srv, NULL) < 0)
                return 0;
            struct pollfd p = {.fd = cfd, .events = POLLIN, .revents = 0};
            poll(&p, 1, 10);
        } else {
            return 0;
        }
    }
    return got == n;
}

static void fill(unsigned char *buf, size_t n, uint64_t from)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = stream_byte(from + i);
}

static void test_coalesces(void)
{
    static unsigned char rec[TLS_RECORD];
    uint64_t wpos = 0, rpos = 0;
    char c;
    BIO *w;

    pair(0);
    w = SSL_get_wbio(srv);
    CHECK(SSL_get_wfd(srv) == sfd);
    CHECK(BIO_get_ktls_send(w) == 0);
    for (int i = 0; i < 4; i++) {
        fill(rec, sizeof rec, wpos);
        CHECK(SSL_write(srv, rec, sizeof rec) == (int)sizeof rec);
        wpos += sizeof rec;
    }
    /* four records held, none sent; a flush by OpenSSL sends nothing */
    CHECK(BIO_ctrl_wpending(w) > 4 * TLS_RECORD);
    CHECK(BIO_flush(w) == 1);
    CHECK(recv(cfd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN);
    /* the pass ends: all four leave, in one send */
    {
        size_t sent = 0;
        size_t held = BIO_ctrl_wpending(w);
        CHECK(relay_outbuf_flush(srv, &sent) == 1);
        CHECK(sent == held);
    }
    CHECK(BIO_ctrl_wpending(w) == 0);
    CHECK(client_reads(4 * TLS_RECORD, &rpos));
    unpair();
}

static void test_whole_or_nothing(void)
{
    static unsigned char rec[TLS_RECORD];
    uint64_t wpos = 0, rpos = 0;
    int n = 0, e = 0;
    size_t before;
    BIO *w;

    pair(4096);
    w = SSL_get_wbio(srv);
    /* write records, flushing after each, until the socket and then the
     * buffer are full */
    for (int i = 0; i < 1000; i++) {
        fill(rec, sizeof rec, wpos);
        n = SSL_write(srv, rec, sizeof rec);
        if (n <= 0)
            break;
        wpos += (uint64_t)n;
        CHECK(relay_outbuf_flush(srv, NULL) >= 0);
    }
    e = SSL_get_error(srv, n);
    CHECK(n <= 0 && e == SSL_ERROR_WANT_WRITE);
    before = BIO_ctrl_wpending(w);
    CHECK(before > 0 && before <= RELAY_OUT_BUF);
    /* at the BIO: a write that does not fit takes nothing (the record
     * OpenSSL could not write did not fit either) */
    {
        static unsigned char junk[TLS_RECORD + 512];
        size_t k = RELAY_OUT_BUF - before + 1;

        CHECK(k <= sizeof junk);
        CHECK(BIO_write(w, junk, (int)k) == -1);
        CHECK(BIO_should_write(w) && BIO_should_retry(w));
        CHECK(BIO_ctrl_wpending(w) == before);
    }
    CHECK(relay_outbuf_flush(srv, NULL) == 0); /* still full: a retry, no error */
    /* the client reads all that was taken (the flushes empty the buffer);
     * the same SSL_write, retried, then goes through whole */
    CHECK(client_reads(wpos - rpos, &rpos));
    CHECK(BIO_ctrl_wpending(w) == 0);
    CHECK(SSL_write(srv, rec, sizeof rec) == (int)sizeof rec);
    wpos += sizeof rec;
    CHECK(relay_outbuf_flush(srv, NULL) >= 0);
    CHECK(client_reads(wpos - rpos, &rpos));
    CHECK(rpos == wpos);
    unpair();
}

static void test_oversized_and_errors(void)
{
    unsigned char *big = calloc(1, RELAY_OUT_BUF + 1);
    BIO *w;
    int n;

    pair(0);
    w = SSL_get_wbio(srv);
    n = BIO_write(w, big, RELAY_OUT_BUF + 1);
    CHECK(n > 0); /* straight to the socket (taking part of it is a socket's right) */
    CHECK(BIO_ctrl_wpending(w) == 0);
    CHECK(BIO_write(w, big, 100) == 100);
    close(cfd);
    cfd = -1;
    errno = 0;
    CHECK(relay_outbuf_flush(srv, NULL) == -1);
    CHECK(errno == EPIPE || errno == ECONNRESET);
    CHECK(!BIO_should_retry(w));
    free(big);
    SSL_free(srv);
    SSL_free(cli);
    close(sfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    make_contexts();
    test_coalesces();
    test_whole_or_nothing();
    test_oversized_and_errors();
    /* without the buffer (never pushed), a flush has nothing to do */
    {
        SSL *s = SSL_new(server_ctx);
        CHECK(relay_outbuf_flush(s, NULL) == 1);
        SSL_free(s);
    }
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return check_done("test_outbuf");
}

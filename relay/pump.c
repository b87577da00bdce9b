/* The record pump.  Per direction: one buffer, an "ended" flag and the I/O
 * the TLS layer is waiting for.  Each turn first makes every move possible
 * without waiting, then polls only the fds whose readiness would let a
 * direction move (never an fd nobody waits on, so a hung-up fd cannot spin
 * the loop).  A direction that OpenSSL offloaded to kTLS swaps its leaf
 * calls for splice() (ktls.c); the loop and the wait rules stay the same. */
#include "relay_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long a finished relay keeps draining a peer that is still sending. */
#define LINGER_MS 2000

/* A direction that splice found both-ends-ready yet blocked waits this
 * long instead of polling (see ktls.c). */
#define BACKOFF_MS 5

#ifdef RELAY_TEST_SEAMS
static relay_poll_fn poll_fn;
static void *poll_arg;

void relay_test_set_poll(relay_poll_fn fn, void *arg)
{
    poll_fn = fn;
    poll_arg = arg;
}
#define POLL(p, n, t) (poll_fn != NULL ? poll_fn(p, n, t, poll_arg) : poll(p, n, t))
#else
#define POLL poll
#endif

struct relay *relay_new(const struct relay_config *cfg)
{
    struct relay *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->cfg = *cfg;
    r->up.buf = malloc(RELAY_BUF);
    r->down.buf = malloc(RELAY_BUF);
    if (r->up.buf == NULL || r->down.buf == NULL) {
        relay_free(r);
        return NULL;
    }
    return r;
}

void relay_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    relay_close_fd(&r->cfg.from_app_fd);
    relay_close_fd(&r->cfg.to_app_fd);
    /* Plaintext of the connection: wipe what ever held it (only that, so
     * that pages a short connection never used are not faulted in now). */
    if (r->up.buf != NULL)
        OPENSSL_cleanse(r->up.buf, r->up.touched);
    if (r->down.buf != NULL)
        OPENSSL_cleanse(r->down.buf, r->down.touched);
    free(r->up.buf);
    free(r->down.buf);
    free(r);
}

const char *relay_result_name(int result)
{
    switch (result) {
    case RELAY_DONE: return "done";
    case RELAY_ERR_TIMEOUT: return "timeout";
    case RELAY_ERR_TLS: return "tls error";
    case RELAY_ERR_IO: return "i/o error";
    case RELAY_ERR_TRUNCATED: return "truncated (no close_notify)";
    }
    return "unknown";
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)
        return 0;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The first queued OpenSSL error as text, or what errno says. */
static void tls_reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, errlen, "%s: %s", what, buf);
    } else if (errno != 0) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
    } else {
        snprintf(err, errlen, "%s: connection closed by peer", what);
    }
    ERR_clear_error();
}

int relay_handshake(struct relay *r, SSL *ssl, int timeout_ms, char *err,
                    size_t errlen)
{
    long long deadline = now_ms() + timeout_ms;

    if (set_nonblock(r->cfg.net_rfd) < 0 || set_nonblock(r->cfg.net_wfd) < 0) {
        snprintf(err, errlen, "non-blocking socket: %s", strerror(errno));
        return RELAY_ERR_IO;
    }
    for (;;) {
        struct pollfd p;
        long long left;
        int rc, e;

        ERR_clear_error();
        errno = 0;
        rc = SSL_accept(ssl);
        if (rc == 1)
            return RELAY_DONE;
        e = SSL_get_error(ssl, rc);
        if (e == SSL_ERROR_WANT_READ) {
            p.fd = r->cfg.net_rfd;
            p.events = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            p.fd = r->cfg.net_wfd;
            p.events = POLLOUT;
        } else {
            tls_reason(err, errlen, "handshake failed");
            return RELAY_ERR_TLS;
        }
        left = deadline - now_ms();
        if (left <= 0) {
            snprintf(err, errlen, "handshake timed out after %d ms",
                     timeout_ms);
            return RELAY_ERR_TIMEOUT;
        }
        p.revents = 0;
        rc = POLL(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return RELAY_ERR_IO;
        }
    }
}

/* peer -> app: take records from TLS into the buffer while there is room
 * for a whole record (see relay_internal.h for pending_only/first_read). */
int relay_down_fill(struct relay *r, SSL *ssl, struct relay_stats *st,
                    int pending_only, int first_read, char *err,
                    size_t errlen)
{
    struct direction *d = &r->down;
    int moved = 0;

    d->want = WANT_NONE;
    while (!d->eof && !d->done) {
        size_t end = d->off + d->len;
        int n, e;

        if (d->len == 0)
            d->off = end = 0;
        if (RELAY_BUF - end < TLS_RECORD)
            break; /* no room for a record: drain to the app first */
        /* kTLS receive: OpenSSL reads only what it already holds (or what
         * the kernel refused to splice); the rest goes by splice. */
        if (pending_only && !first_read && !r->rx_retry && !SSL_has_pending(ssl))
            break;
        first_read = 0;
        r->rx_retry = 0;
        ERR_clear_error();
        errno = 0;
        n = SSL_read(ssl, d->buf + end, (int)(RELAY_BUF - end));
        if (n > 0) {
            d->len += (size_t)n;
            if (end + (size_t)n > d->touched)
                d->touched = end + (size_t)n;
            moved = 1;
            continue;
        }
        e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            d->want = WANT_NET_READ;
            break;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            /* OpenSSL is answering something (an alert) mid-read: the next
             * read must be SSL_read again, not a splice. */
            r->rx_retry = pending_only;
            d->want = WANT_NET_WRITE;
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify, or a bare EOF when lenient (see SSL options) */
            st->peer_closed = 1;
            d->eof = 1;
            return 1;
        }
        if (e == SSL_ERROR_SSL &&
            ERR_GET_REASON(ERR_peek_last_error()) ==
                SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            /* Only reported when SSL_OP_IGNORE_UNEXPECTED_EOF is off, i.e.
             * a bare EOF was declared an error (strict close).  What
             * arrived before it still goes to the app; then the relay
             * ends with the error (see step()). */
            ERR_clear_error();
            r->truncated = 1;
            d->eof = 1;
            return 1;
        }
        tls_reason(err, errlen, "reading from peer");
        return e == SSL_ERROR_SYSCALL ? RELAY_ERR_IO : RELAY_ERR_TLS;
    }
    return moved;
}

/* peer -> app: write the buffer into the app's pipe. */
static int down_drain(struct relay *r, struct relay_stats *st)
{
    struct direction *d = &r->down;
    int moved = 0;

    while (d->len > 0 && !d->done) {
        ssize_t n = write(r->cfg.to_app_fd, d->buf + d->off, d->len);
        if (n > 0) {
            d->off += (size_t)n;
            d->len -= (size_t)n;
            st->bytes_to_app += (uint64_t)n;
            moved = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        /* EPIPE: the app closed its read side; what it will not read is
         * dropped and this direction is over. */
        d->len = 0;
        d->done = 1;
        relay_close_fd(&r->cfg.to_app_fd);
        return 1;
    }
    if (d->eof && d->len == 0 && !d->done) {
        d->done = 1;
        relay_close_fd(&r->cfg.to_app_fd); /* the app sees EOF */
        moved = 1;
    }
    return moved;
}

/* app -> peer: read plaintext from the app's pipe. */
static int up_fill(struct relay *r)
{
    struct direction *d = &r->up;

    if (d->len > 0 || d->eof)
        return 0;
    d->off = 0;
    for (;;) {
        ssize_t n = read(r->cfg.from_app_fd, d->buf, RELAY_BUF);
        if (n > 0) {
            d->len = (size_t)n;
            if ((size_t)n > d->touched)
                d->touched = (size_t)n;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        d->eof = 1; /* EOF, or an error that ends it the same way */
        relay_close_fd(&r->cfg.from_app_fd);
        return 1;
    }
}

/* app -> peer: encrypt the buffer a record at a time. */
static int up_send(struct relay *r, SSL *ssl, struct relay_stats *st,
                   char *err, size_t errlen)
{
    struct direction *d = &r->up;
    int moved = 0;

    d->want = WANT_NONE;
    while (d->len > 0 && !d->done) {
        size_t chunk = d->len < TLS_RECORD ? d->len : TLS_RECORD;
        int n, e;

        ERR_clear_error();
        errno = 0;
        n = SSL_write(ssl, d->buf + d->off, (int)chunk);
        if (n > 0) {
            d->off += (size_t)n;
            d->len -= (size_t)n;
            st->bytes_to_peer += (uint64_t)n;
            moved = 1;
            continue;
        }
        e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) {
            d->want = WANT_NET_WRITE;
            return moved;
        }
        if (e == SSL_ERROR_WANT_READ) {
            d->want = WANT_NET_READ;
            return moved;
        }
        tls_reason(err, errlen, "writing to peer");
        return e == SSL_ERROR_SYSCALL ? RELAY_ERR_IO : RELAY_ERR_TLS;
    }
    return moved;
}

/* Sends the records buffered during a pass (outbuf.c); out_want says
 * whether some still wait for the socket.  1 if bytes went (that is
 * progress: it resets the idle clock), 0 if none, or a negative
 * relay_result. */
static int flush_out(struct relay *r, SSL *ssl, char *err, size_t errlen)
{
    size_t sent = 0;
    int rc;

    r->out_want = WANT_NONE;
    if (!r->outbuf)
        return 0;
    errno = 0;
    rc = relay_outbuf_flush(ssl, &sent);
    if (rc < 0 && (r->truncated || (r->cfg.tcp_half_close && r->up.done))) {
        /* Our side has ended (FIN sent, or the SSL is dead after a bare
         * EOF under -J): what OpenSSL still wrote, an alert or the answer
         * to a KeyUpdate, cannot reach the peer.  As when OpenSSL wrote to
         * the socket itself, that is not the relay's failure: dropped
         * (found by fuzz/fuzz_pump.c). */
        relay_outbuf_discard(ssl);
        return sent > 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "writing to peer: %s", strerror(errno));
        return RELAY_ERR_IO;
    }
    if (rc == 0)
        r->out_want = WANT_NET_WRITE;
    return sent > 0;
}

/* app -> peer ended: say so to the peer, once everything is sent. */
static int up_finish(struct relay *r, SSL *ssl, char *err, size_t errlen)
{
    struct direction *d = &r->up;
    int rc, e;

    if (!d->eof || d->len > 0 || d->done)
        return 0;
    if (r->cfg.tcp_half_close) {
        /* the last records first: the FIN must not overtake them */
        if ((rc = flush_out(r, ssl, err, errlen)) < 0 || r->out_want != WANT_NONE)
            return rc;
        if (shutdown(r->cfg.net_wfd, SHUT_WR) < 0 && errno != ENOTCONN &&
            errno != ENOTSOCK) {
            snprintf(err, errlen, "shutdown: %s", strerror(errno));
            return RELAY_ERR_IO;
        }
        d->done = 1;
        return 1;
    }
    ERR_clear_error();
    errno = 0;
    rc = SSL_shutdown(ssl);
    if (rc >= 0) { /* 0: ours sent, peer's not yet seen; 1: both */
        d->done = 1;
        r->shutdown_want = WANT_NONE;
        r->close_notify_sent = 1;
        return 1;
    }
    e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_WRITE) {
        r->shutdown_want = WANT_NET_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_WANT_READ) {
        r->shutdown_want = WANT_NET_READ;
        return 0;
    }
    tls_reason(err, errlen, "sending close_notify");
    return RELAY_ERR_IO;
}

/* One pass of every move that needs no waiting.  Returns >0 if something
 * moved, 0 if everything waits, or a negative relay_result. */
static int step(struct relay *r, SSL *ssl, struct relay_stats *st, char *err,
                size_t errlen)
{
    int any = 0, rc;

    rc = r->ktls_rx ? relay_ktls_down(r, ssl, st, err, errlen)
                    : relay_down_fill(r, ssl, st, 0, 0, err, errlen);
    if (rc < 0)
        return rc;
    any |= rc;
    any |= down_drain(r, st);
    if (r->truncated && r->down.done) {
        snprintf(err, errlen, "peer closed without close_notify");
        return RELAY_ERR_TRUNCATED;
    }
    if (r->truncated && !r->up.done) {
        /* -J and a bare EOF: OpenSSL has sent its fatal alert and the SSL
         * is dead, so nothing more goes to the peer; what arrived before
         * the EOF still goes to the app, then the relay ends TRUNCATED
         * (found by fuzz/fuzz_pump.c: a failing write used to end it
         * first, with an I/O error and data undelivered). */
        r->up.eof = r->up.done = 1;
        r->up.len = 0;
        r->up.want = r->shutdown_want = WANT_NONE;
        relay_close_fd(&r->cfg.from_app_fd);
    }
    if (r->down.done && !r->down.eof) {
        r->down.eof = 1; /* app gone: stop reading from the peer */
        r->down.want = WANT_NONE;
        r->rx_retry = 0;
    }
    if (!r->ktls_tx)
        any |= up_fill(r);
    /* With kTLS send, the buffer is empty unless bytes were read into it
     * before the switch: those go first, by SSL_write, then splice. */
    if ((rc = up_send(r, ssl, st, err, errlen)) < 0)
        return rc;
    any |= rc;
    if (r->ktls_tx) {
        if ((rc = relay_ktls_up(r, st, err, errlen)) < 0)
            return rc;
        any |= rc;
    }
    if ((rc = up_finish(r, ssl, err, errlen)) < 0)
        return rc;
    any |= rc;
    /* the pass's records leave together */
    if ((rc = flush_out(r, ssl, err, errlen)) < 0)
        return rc;
    return any | rc;
}

/* Closing a TCP socket with unread input makes the kernel send a reset,
 * which can destroy our last records (the app's final reply, our
 * close_notify) before the peer reads them.  So when we end while the peer
 * may still be sending (the app stopped reading), half-close and discard
 * its input until it closes too, for a bounded time (Apache's "lingering
 * close"). */
static void linger(struct relay *r)
{
    long long end = now_ms() + LINGER_MS;
    char buf[4096];

    if (shutdown(r->cfg.net_wfd, SHUT_WR) < 0 && errno == ENOTSOCK)
        return;
    for (;;) {
        struct pollfd p = {.fd = r->cfg.net_rfd, .events = POLLIN, .revents = 0};
        long long left = end - now_ms();
        ssize_t n;

        if (left <= 0 || POLL(&p, 1, (int)left) <= 0)
            return;
        n = read(r->cfg.net_rfd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return;
    }
}

int relay_pump(struct relay *r, SSL *ssl, struct relay_stats *st, char *err,
               size_t errlen)
{
    long long last_move = now_ms();
    int rc, idle_told = 0;

    memset(st, 0, sizeof *st);
    /* Which directions OpenSSL gave to the kernel during the handshake:
     * only those splice.  OpenSSL 3.0 offloads TLS 1.3 sending only, TLS
     * 1.2 both ways, and neither when the kernel or the cipher says no. */
    if (!r->ktls_forced) {
        r->ktls_tx = r->cfg.ktls && BIO_get_ktls_send(SSL_get_wbio(ssl));
        r->ktls_rx = r->cfg.ktls && BIO_get_ktls_recv(SSL_get_rbio(ssl));
    }
    st->ktls_tx = r->ktls_tx;
    st->ktls_rx = r->ktls_rx;
    /* Without kTLS sending, OpenSSL writes each 16 KiB record on its own;
     * the record buffer sends a pass's records in one write (downloads
     * 18 % faster here).  If it cannot be made, records go straight out. */
    if (!r->ktls_tx)
        r->outbuf = relay_outbuf_push(ssl);
    if (set_nonblock(r->cfg.from_app_fd) < 0 ||
        set_nonblock(r->cfg.to_app_fd) < 0) {
        snprintf(err, errlen, "non-blocking pipe: %s", strerror(errno));
        rc = RELAY_ERR_IO;
        goto out;
    }
    for (;;) {
        struct pollfd p[4];
        int n = 0, timeout = -1, want_in, want_out;
        int ready;

        rc = step(r, ssl, st, err, errlen);
        if (rc < 0)
            goto out;
        if (rc > 0) {
            idle_told = 0;
            last_move = now_ms();
            continue;
        }
        if (r->up.done && r->down.done && r->out_want == WANT_NONE) {
            rc = RELAY_DONE;
            goto out;
        }

        /* Nothing moves without waiting: poll what each side waits for. */
        want_in = (!r->down.done && !r->down.eof && r->down.want == WANT_NET_READ) ||
                  r->up.want == WANT_NET_READ || r->shutdown_want == WANT_NET_READ;
        want_out = r->down.want == WANT_NET_WRITE || r->up.want == WANT_NET_WRITE ||
                   r->shutdown_want == WANT_NET_WRITE || r->out_want == WANT_NET_WRITE;
        if (r->cfg.net_rfd == r->cfg.net_wfd) {
            p[n].fd = (want_in || want_out) ? r->cfg.net_rfd : -1;
            p[n++].events = (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0));
        } else {
            p[n].fd = want_in ? r->cfg.net_rfd : -1;
            p[n++].events = POLLIN;
            p[n].fd = want_out ? r->cfg.net_wfd : -1;
            p[n++].events = POLLOUT;
        }
        /* The app's output is read only when the up buffer is free and
         * nothing else blocks (a splice may wait on the socket instead). */
        p[n].fd = (r->up.len == 0 && !r->up.eof && r->up.want == WANT_NONE)
                      ? r->cfg.from_app_fd : -1;
        p[n++].events = POLLIN;
        /* The app's input pipe is watched even with nothing to write:
         * POLLERR tells that the app closed its read side. */
        p[n].fd = r->down.done ? -1 : r->cfg.to_app_fd;
        p[n++].events = (r->down.len > 0 || r->down.want == WANT_APP_WRITE) ? POLLOUT : 0;

        if (r->cfg.idle_timeout_ms > 0) {
            long long left = last_move + r->cfg.idle_timeout_ms - now_ms();
            if (left <= 0) {
                snprintf(err, errlen, "idle timeout: nothing moved for %d ms",
                         r->cfg.idle_timeout_ms);
                rc = RELAY_ERR_TIMEOUT;
                goto out;
            }
            timeout = left > 60000 ? 60000 : (int)left;
        }
        /* A splice that EAGAINs with both its ends ready would spin if it
         * waited on them: it waits on the clock instead (ktls.c). */
        if ((r->up.want == WANT_BACKOFF || r->down.want == WANT_BACKOFF) &&
            (timeout < 0 || timeout > BACKOFF_MS))
            timeout = BACKOFF_MS;
        for (int i = 0; i < n; i++)
            p[i].revents = 0;
        if (r->cfg.on_idle != NULL && !idle_told && (timeout < 0 || timeout > RELAY_IDLE_MS)) {
            /* a first wait of RELAY_IDLE_MS: if nothing comes, tell the
             * owner once, then wait as before */
            ready = POLL(p, (nfds_t)n, RELAY_IDLE_MS);
            if (ready == 0) {
                idle_told = 1;
                r->cfg.on_idle(r->cfg.on_idle_arg);
                continue;
            }
        } else {
            ready = POLL(p, (nfds_t)n, timeout);
        }
        if (ready < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            rc = RELAY_ERR_IO;
            goto out;
        }
        /* The app's read side vanished with nothing pending for it. */
        if (ready > 0 && (p[n - 1].revents & (POLLERR | POLLHUP)) &&
            r->down.len == 0 && !r->down.done) {
            r->down.done = 1;
            relay_close_fd(&r->cfg.to_app_fd);
        }
    }
out:
    /* after an error, one try to send what is buffered (OpenSSL's alert) */
    if (rc < 0 && r->outbuf)
        (void)relay_outbuf_flush(ssl, NULL);
    relay_close_fd(&r->cfg.from_app_fd);
    relay_close_fd(&r->cfg.to_app_fd);
    if (rc == RELAY_DONE && !st->peer_closed)
        linger(r);
    return rc;
}

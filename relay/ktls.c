/* kTLS leaf I/O: when OpenSSL has handed a direction's record layer to the
 * kernel (SSL_OP_ENABLE_KTLS, then setsockopt TLS_TX / TLS_RX during the
 * handshake), the bytes of that direction need not pass through userspace:
 * splice() moves them between the app's pipe and the socket, and the kernel
 * encrypts or decrypts on the way.
 *
 * What the kernel does not do for us, and so what this file does:
 * - receive: records OpenSSL read ahead before the switch are still in its
 *   buffer, and come first (SSL_has_pending -> SSL_read);
 * - receive: a record that is not application data (alert, close_notify,
 *   handshake message) makes splice fail with EINVAL (EIO is taken the
 *   same way) and stays queued: SSL_read consumes it (OpenSSL reads it
 *   with recvmsg and a cmsg that carries the record type) and the
 *   splicing resumes;
 * - receive: a bare TCP EOF is 0 from splice: SSL_read then meets the same
 *   EOF and applies the strict/lenient choice, as on the userspace path;
 * - EAGAIN from splice does not say which end blocks: a zero-timeout poll
 *   of both ends does, and the direction then waits on that end only.
 *
 * The probe (relay_ktls_probe) lives here too: it is the one question about
 * the kernel the engine must ask before the sandbox closes. */
#include "relay_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Per splice call: bounded so that one direction cannot hold the loop while
 * the other waits; the pipe's size bounds it further. */
#define SPLICE_MAX (256 * 1024)
/* MOVE: pages may be moved, not copied, where the kernel can. */
#define SPLICE_FLAGS (SPLICE_F_NONBLOCK | SPLICE_F_MOVE)
/* EAGAINs in a row with both ends polling ready before the direction backs
 * off on a timer (see splice_blocked). */
#define SPURIOUS_MAX 4

#ifdef RELAY_TEST_SEAMS
static relay_splice_fn splice_fn = splice;

void relay_test_set_splice(relay_splice_fn fn)
{
    splice_fn = fn != NULL ? fn : splice;
}

void relay_test_force_ktls(struct relay *r, int tx, int rx)
{
    r->ktls_forced = 1;
    r->ktls_tx = tx;
    r->ktls_rx = rx;
}
#define SPLICE splice_fn
#else
#define SPLICE splice
#endif

/* ---- probe ---- */

/* A connected TCP pair on loopback: *a connected, *b accepted.  Returns 0
 * or -1 (both fds then -1). */
static int loopback_pair(int family, int *a, int *b)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int l = -1, rc = -1;

    *a = *b = -1;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    }
    l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&ss, &len) < 0)
        goto out;
    *a = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*a < 0)
        goto out;
    if (connect(*a, (struct sockaddr *)&ss, len) < 0) {
        /* Interrupted, the connect goes on: wait for it and ask how it
         * ended.  Loopback needs no more than a moment. */
        struct pollfd p = {.fd = *a, .events = POLLOUT, .revents = 0};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (errno != EINTR || poll(&p, 1, 1000) != 1 ||
            getsockopt(*a, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0)
            goto out;
    }
    do
        *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    while (*b < 0 && errno == EINTR);
    if (*b >= 0)
        rc = 0;
out:
    if (l >= 0)
        close(l);
    if (rc < 0) {
        relay_close_fd(a);
        relay_close_fd(b);
    }
    return rc;
}

int relay_ktls_probe(void)
{
    int a, b, ok = 0;

    /* IPv4 loopback first; an IPv6-only host still has ::1. */
    if (loopback_pair(AF_INET, &a, &b) < 0 && loopback_pair(AF_INET6, &a, &b) < 0)
        return 0;
    /* The same call OpenSSL makes before TLS_TX/TLS_RX.  Without
     * CONFIG_TLS it fails with ENOENT; as root it loads the module. */
    if (setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0)
        ok = 1;
    relay_close_fd(&a);
    relay_close_fd(&b);
    return ok;
}

/* ---- splice leaves ---- */

/* splice said EAGAIN: the pipe end or the socket end blocks, and splice
 * does not say which.  A zero-timeout poll of both does.  The direction
 * then waits on the end that blocks and on nothing else: waiting on the
 * ready one would return at once, every turn.
 *
 * Both ends can poll ready after an EAGAIN: something changed in between
 * (the app wrote, an ACK freed room), and the next try moves; or the
 * socket's readiness overstates what splice can take (a kTLS receive queue
 * holding half a record reads as POLLIN on kernels before 6.0).  A few such
 * turns are retries; after that the direction waits on a short timer, so
 * even a socket that never stops lying costs a wake-up per BACKOFF_MS, not
 * a core.
 *
 * pipe_fd/pipe_ev: the app's pipe and the readiness splice needs from it;
 * net_fd/net_ev, net_want: the same for the socket; pipe_want: what the
 * direction waits for when the pipe blocks.  Returns 0 or RELAY_ERR_IO. */
static int splice_blocked(struct direction *d, int pipe_fd, short pipe_ev,
                          enum want pipe_want, int net_fd, short net_ev,
                          enum want net_want, char *err, size_t errlen)
{
    struct pollfd p[2] = {
        {.fd = pipe_fd, .events = pipe_ev, .revents = 0},
        {.fd = net_fd, .events = net_ev, .revents = 0},
    };
    int rc;

    do
        rc = poll(p, 2, 0);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        snprintf(err, errlen, "poll: %s", strerror(errno));
        return RELAY_ERR_IO;
    }
    /* A hung-up or failed end counts as ready: splice reports it (0 or
     * EPIPE) on the next try, which is a move. */
    if (p[0].revents == 0) {
        d->want = pipe_want;
        d->spurious = 0;
    } else if (p[1].revents == 0) {
        d->want = net_want;
        d->spurious = 0;
    } else if (++d->spurious <= SPURIOUS_MAX) {
        d->want = net_want; /* ready: the poll returns at once, a retry */
    } else {
        d->want = WANT_BACKOFF;
    }
    return 0;
}

int relay_ktls_up(struct relay *r, struct relay_stats *st, char *err,
                  size_t errlen)
{
    struct direction *d = &r->up;
    ssize_t n;

    if (d->len > 0 || d->eof || d->done)
        return 0;
    d->want = WANT_NONE;
    do
        n = SPLICE(r->cfg.from_app_fd, NULL, r->cfg.net_wfd, NULL, SPLICE_MAX,
                   SPLICE_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        st->bytes_to_peer += (uint64_t)n;
        d->spurious = 0;
        return 1;
    }
    if (n == 0) {
        /* The app closed its output: up_finish sends close_notify (by
         * SSL_shutdown, which OpenSSL hands to the kernel as a control
         * record) or half-closes. */
        d->eof = 1;
        relay_close_fd(&r->cfg.from_app_fd);
        return 1;
    }
    if (errno == EAGAIN)
        return splice_blocked(d, r->cfg.from_app_fd, POLLIN, WANT_NONE,
                              r->cfg.net_wfd, POLLOUT, WANT_NET_WRITE, err,
                              errlen);
    if (errno == EINVAL || errno == EOPNOTSUPP) {
        /* This kernel will not splice into this socket after all: the
         * userspace leaves work on a kTLS socket too (OpenSSL writes the
         * plaintext, the kernel encrypts).  Go back to them for good. */
        r->ktls_tx = 0;
        st->ktls_tx = 0;
        return 1;
    }
    snprintf(err, errlen, "writing to peer: %s", strerror(errno));
    return RELAY_ERR_IO;
}

int relay_ktls_down(struct relay *r, SSL *ssl, struct relay_stats *st,
                    char *err, size_t errlen)
{
    struct direction *d = &r->down;
    ssize_t n;
    int rc;

    if (d->eof || d->done)
        return 0;
    /* Whatever OpenSSL already holds comes before what the kernel holds. */
    rc = relay_down_fill(r, ssl, st, 1, 0, err, errlen);
    if (rc != 0 || d->want != WANT_NONE || d->eof || d->done)
        return rc;
    /* Buffered bytes go to the app before any spliced byte (down_drain). */
    if (d->len > 0)
        return 0;
    do
        n = SPLICE(r->cfg.net_rfd, NULL, r->cfg.to_app_fd, NULL, SPLICE_MAX,
                   SPLICE_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        st->bytes_to_app += (uint64_t)n;
        d->spurious = 0;
        return 1;
    }
    if (n < 0 && errno == EAGAIN)
        return splice_blocked(d, r->cfg.to_app_fd, POLLOUT, WANT_APP_WRITE,
                              r->cfg.net_rfd, POLLIN, WANT_NET_READ, err,
                              errlen);
    if (n < 0 && errno == EPIPE) {
        /* The app closed its read side: what it will not read is dropped
         * and this direction is over (as down_drain does). */
        d->done = 1;
        relay_close_fd(&r->cfg.to_app_fd);
        return 1;
    }
    /* EINVAL/EIO: the next record is not application data and is still
     * queued.  0: the peer's bare EOF.  Anything else: a socket error.  In
     * each case OpenSSL's read path is the one that knows what to do: it
     * consumes the control record (close_notify ends the direction, a
     * session ticket or warning alert is absorbed), applies strict or
     * lenient EOF, or reports the error in its words.  One SSL_read, then
     * splicing resumes. */
    if (n < 0 && (errno == EINVAL || errno == EIO))
        st->ktls_rx_control++;
    d->spurious = 0;
    return relay_down_fill(r, ssl, st, 1, 1, err, errlen);
}

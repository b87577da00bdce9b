/* The relay's private layout, shared by its own files (pump.c: the loop
 * and the userspace leaves; ktls.c: the splice leaves and the probe) and by
 * tests that opt into internals.  Not for other modules: they include
 * relay.h only. */
#ifndef UCSPITLS_RELAY_INTERNAL_H
#define UCSPITLS_RELAY_INTERNAL_H

#include "relay.h"

#include <openssl/ssl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

/* Big enough for several full 16 KiB records per pipe write. */
#define RELAY_BUF 65536
#define TLS_RECORD 16384
/* The record buffer under SSL (outbuf.c): a pass's records, up to four
 * full ones with any cipher's overhead. */
#define RELAY_OUT_BUF (4 * (TLS_RECORD + 512))

/* What a direction waits for before it can move again.  WANT_NONE on the
 * app -> peer side means "the app's pipe" (the usual wait); on the
 * peer -> app side the app's pipe is polled whenever the buffer holds
 * bytes, so only a splice that found the pipe full says WANT_APP_WRITE. */
enum want {
    WANT_NONE = 0,
    WANT_NET_READ = 1,
    WANT_NET_WRITE = 2,
    WANT_APP_WRITE = 3, /* splice: the app's input pipe is full */
    WANT_BACKOFF = 4,   /* splice: EAGAIN while both ends poll ready (see ktls.c) */
};

struct direction {
    unsigned char *buf;
    size_t off, len;  /* pending bytes are buf[off .. off+len) */
    size_t touched;   /* buf[0 .. touched) ever held plaintext: what to wipe */
    int eof;          /* source ended */
    int done;         /* sink closed: nothing more moves this way */
    enum want want;   /* what the call on this side waits for */
    int spurious;     /* splice EAGAINs in a row with both ends ready */
};

struct relay {
    struct relay_config cfg;
    struct direction up;   /* app -> peer */
    struct direction down; /* peer -> app */
    int shutdown_want;     /* close_notify waiting for the socket */
    int truncated;         /* strict close: the peer ended without close_notify */
    int close_notify_sent;
    int ktls_tx, ktls_rx;  /* this connection's directions that splice */
    int ktls_forced;       /* tests: ktls_tx/rx set by relay_test_force_ktls */
    int rx_retry;          /* an SSL_read wants calling again before any splice */
    int outbuf;            /* records go through outbuf.c (no kTLS send) */
    int out_want;          /* WANT_NET_WRITE: buffered records wait for the socket */
};

/* pump.c: peer -> app through SSL_read into the down buffer.  With
 * pending_only, reads only while OpenSSL holds bytes (SSL_has_pending) or
 * r->rx_retry asks for it; first_read forces one SSL_read even without
 * (the kTLS fallback for a record the kernel would not splice).  Returns 1
 * if anything moved, 0 if not, or a negative relay_result. */
int relay_down_fill(struct relay *r, SSL *ssl, struct relay_stats *st,
                    int pending_only, int first_read, char *err,
                    size_t errlen);

/* outbuf.c: pushes the record buffer onto SSL's write BIO, so that what
 * OpenSSL writes during a pump pass leaves in one send.  It takes a write
 * whole or not at all (retry), and its flush always succeeds, as a
 * non-blocking socket would; relay_outbuf_flush sends.  Returns 0 if it
 * could not be made (records then go straight to the socket). */
int relay_outbuf_push(SSL *ssl);

/* outbuf.c: sends what the buffer holds, adding the bytes sent to *sent
 * (may be NULL): 1 if all went (or there is no buffer), 0 if the socket is
 * full, -1 on a socket error (errno). */
int relay_outbuf_flush(SSL *ssl, size_t *sent);

/* outbuf.c: drops what the buffer holds (it can no longer be sent). */
void relay_outbuf_discard(SSL *ssl);

/* pump.c: closes *fd if open and sets it to -1. */
void relay_close_fd(int *fd);

/* ktls.c: app -> peer by splice (app pipe -> kTLS socket).  Only when the up
 * buffer is empty.  Returns 1 if anything moved, 0 if it waits (d->want
 * says on what), or a negative relay_result. */
int relay_ktls_up(struct relay *r, struct relay_stats *st, char *err,
                  size_t errlen);

/* ktls.c: peer -> app by splice (kTLS socket -> app pipe), after OpenSSL's
 * buffered bytes, with SSL_read for what the kernel will not splice.  Same
 * returns as relay_ktls_up. */
int relay_ktls_down(struct relay *r, SSL *ssl, struct relay_stats *st,
                    char *err, size_t errlen);

/* ---- test seams: defined only in the ucspitls_relay_testseams library
 * (RELAY_TEST_SEAMS); the production library has neither the symbols nor a
 * writable function pointer. ---- */

typedef ssize_t (*relay_splice_fn)(int fd_in, loff_t *off_in, int fd_out,
                                   loff_t *off_out, size_t len,
                                   unsigned int flags);

/* Replaces splice(2) for every relay in the process; NULL restores it. */
void relay_test_set_splice(relay_splice_fn fn);

/* Makes relay_pump() splice in the given directions whatever the SSL's BIOs
 * say (call after relay_new, before relay_pump). */
void relay_test_force_ktls(struct relay *r, int tx, int rx);

typedef int (*relay_poll_fn)(struct pollfd *fds, nfds_t n, int timeout_ms,
                             void *arg);

/* Replaces poll(2) where pump.c waits (handshake, pump loop, linger) for
 * every relay in the process; fn gets arg back.  The fuzzer's peer and app
 * act there, in the relay's own thread.  NULL restores poll(2). */
void relay_test_set_poll(relay_poll_fn fn, void *arg);

#endif

/* relay: moves bytes between a TLS connection and an application's pipes.
 *
 * Knows OpenSSL and file descriptors, nothing of processes or UCSPI.  One
 * poll loop, one buffer per direction, backpressure both ways, half-close
 * both ways, no busy waiting in any state.  Where OpenSSL handed a
 * direction's record layer to the kernel (kTLS), that direction moves by
 * splice() between pipe and socket instead of through the buffer. */
#ifndef UCSPITLS_RELAY_H
#define UCSPITLS_RELAY_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

struct relay_config {
    int net_rfd;          /* fd the TLS records arrive on (set on the SSL too) */
    int net_wfd;          /* fd the TLS records leave on (often == net_rfd) */
    int from_app_fd;      /* plaintext from the app (we read); owned by the relay */
    int to_app_fd;        /* plaintext for the app (we write); owned by the relay */
    int tcp_half_close;   /* on app EOF: shutdown(SHUT_WR), no close_notify */
    int idle_timeout_ms;  /* no byte either way for this long ends it; 0 = none */
    int ktls;             /* the kernel has kTLS (relay_ktls_probe() said 1) and
                           * the SSL_CTX has SSL_OP_ENABLE_KTLS: splice each
                           * direction OpenSSL offloaded.  0: userspace only. */
    void (*on_idle)(void *arg); /* called once each time the pump has been
                           * idle (nothing moved) for RELAY_IDLE_MS: the
                           * owner's moment to give memory back.  May be NULL. */
    void *on_idle_arg;
};

/* How long the pump waits without anything moving before on_idle. */
#define RELAY_IDLE_MS 1000

enum relay_result {
    RELAY_DONE = 0,           /* both directions ended cleanly */
    RELAY_ERR_TIMEOUT = -1,   /* idle or handshake timeout */
    RELAY_ERR_TLS = -2,       /* TLS protocol error or peer alert */
    RELAY_ERR_IO = -3,        /* socket or pipe error */
    RELAY_ERR_TRUNCATED = -4, /* peer EOF without close_notify (strict mode) */
};

struct relay_stats {
    uint64_t bytes_to_peer;
    uint64_t bytes_to_app;
    int peer_closed; /* 1 when the peer ended its side cleanly */
    int ktls_tx;     /* 1 when app -> peer went by splice (kernel encrypts) */
    int ktls_rx;     /* 1 when peer -> app went by splice (kernel decrypts) */
    uint64_t ktls_rx_control; /* records the kernel would not splice (alerts,
                               * handshake messages), read by SSL_read */
};

struct relay;

/* Allocates the relay and its buffers.  cfg is copied; the app fds in it
 * become the relay's.  Returns NULL on allocation failure.  (The pump
 * allocates little more itself, its record buffer at the first write, and
 * OpenSSL as it goes: the sandbox allows malloc.) */
struct relay *relay_new(const struct relay_config *cfg);

/* Frees the relay and closes the app fds it still holds; NULL is fine. */
void relay_free(struct relay *r);

/* Runs the TLS server handshake on ssl (whose fds are net_rfd/net_wfd, made
 * non-blocking here) within timeout_ms.  Returns RELAY_DONE or an error
 * code, with a one-line reason in err. */
int relay_handshake(struct relay *r, SSL *ssl, int timeout_ms, char *err,
                    size_t errlen);

/* Pumps until both directions have ended or an error.  ssl must have
 * completed its handshake.  Fills stats; returns a relay_result, with a
 * reason in err on error.  On return the app fds are closed.  When it ends
 * cleanly before the peer closed, it half-closes the socket and drains the
 * peer's input for up to 2 s so that no reset destroys the last records. */
int relay_pump(struct relay *r, SSL *ssl, struct relay_stats *stats,
               char *err, size_t errlen);

/* Says whether this kernel can do TLS in the socket layer: 1 if a connected
 * loopback TCP socket accepts the "tls" upper-layer protocol (TCP_ULP), 0
 * if not (no CONFIG_TLS, module not loadable, no loopback).  Opens and
 * closes its own sockets; call once at start-up, before any sandbox (it
 * needs socket/bind/listen/connect/accept, and as root it lets the kernel
 * load the tls module for the workers that follow). */
int relay_ktls_probe(void);

/* Makes what every relay of the process tree shares (the record buffer's
 * BIO method), so that processes forked afterwards inherit it instead of
 * each making, and keeping a private copy of the pages it writes.  Call at
 * start-up, before forking; without it the first relay makes it. */
void relay_prepare(void);

/* Human-readable name of a relay_result. */
const char *relay_result_name(int result);

#endif

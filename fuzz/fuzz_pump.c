/* libFuzzer target: the relay pump (relay/pump.c: relay_handshake,
 * relay_pump and its linger), between a TLS client and an app that the
 * input drives.
 *
 * The relay runs as in a worker: its SSL on one end of a socketpair, the
 * app's pipes on the other side.  The other ends belong to a "world" that
 * acts only where the relay waits: the poll seam of relay_internal.h hands
 * every poll to world_poll(), which lets the input decide what the client
 * (an OpenSSL client on memory BIOs, whose records the world moves to and
 * from the socket in chunks of the input's choosing) and the app do next,
 * then asks the real poll(2) with no timeout.  Everything happens in one
 * thread, so a run depends only on its input.  When the input is used up,
 * the world winds down as a well-behaved peer and app do (the app ends its
 * output and reads to EOF; the client sends close_notify, reads to the end
 * and closes), so that the pump must end.
 *
 * Input: byte 0 sets the connection up (bit 0 TLS 1.3 else 1.2, bit 1
 * strict close (-J), bit 2 --tcp-half-close, bit 3 small socket buffers,
 * bit 4 small pipes, bits 5-6 TLS 1.3 tickets sent after the handshake,
 * bit 7 an on_idle callback, as the engine sets).
 * Then one op per byte (low 4 bits), most with an argument byte: the client
 * writes plaintext, flushes records to the socket, reads from it, sends
 * close_notify, half-closes the socket without one, asks for a key update
 * (1.3) or a renegotiation (1.2, refused by the server), injects raw bytes
 * or closes the socket outright; the app writes, reads, closes its output
 * or its input.
 *
 * Checked: each side receives, in order, a prefix of what the other sent;
 * the relay's buffers stay within RELAY_BUF and hold only what it received;
 * it never waits on nothing and ends within a bounded number of waits; its
 * counts agree with what the world saw; the app always sees EOF; the client
 * sees close_notify unless --tcp-half-close; and when the world misbehaved
 * in no way (no raw bytes, no cut record, no hard close, no renegotiation)
 * the relay ends RELAY_DONE (RELAY_ERR_TRUNCATED for a bare EOF under -J)
 * with every byte delivered both ways, but for the known deviations that
 * known_deviation() lists (OpenSSL's and the relay's).
 *
 * FUZZ_PUMP_DEBUG=1 in the environment prints how each run ended. */
#include "relay_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAM_MAX (256 * 1024) /* plaintext per direction and run */
#define SCRATCH (128 * 1024)
#define WAITS_BASE 100000       /* polls per run, plus 4 per input byte: more is a spin */

/* ---- fixture: made once per process (a certificate, two contexts and a
 * session per version, so that each run's handshake is a resumption: no
 * signature, no certificate), read-only afterwards ---- */

struct fixture {
    SSL_CTX *server, *client;
    SSL_SESSION *session[2]; /* [0] TLS 1.2, [1] TLS 1.3 */
    /* what the client and the app send: no run repeats a pattern (a
     * reordering or a duplicate shows), compared with memcmp */
    unsigned char peer_stream[STREAM_MAX], app_stream[STREAM_MAX];
};

static void move_all(BIO *from, BIO *to)
{
    char buf[4096];
    int n;

    while ((n = BIO_read(from, buf, sizeof buf)) > 0)
        if (BIO_write(to, buf, n) != n)
            abort();
}

/* A full handshake through memory; returns the client's session. */
static SSL_SESSION *first_session(const struct fixture *fx, int version)
{
    SSL *c = SSL_new(fx->client), *s = SSL_new(fx->server);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    SSL_SESSION *sess;
    char b;

    if (c == NULL || s == NULL || c_in == NULL || c_out == NULL || s_in == NULL ||
        s_out == NULL)
        abort();
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_min_proto_version(c, version);
    SSL_set_max_proto_version(c, version);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 8; i++) {
        SSL_do_handshake(c);
        move_all(c_out, s_in);
        SSL_do_handshake(s);
        move_all(s_out, c_in);
    }
    SSL_read(c, &b, 1); /* takes in the TLS 1.3 tickets */
    sess = SSL_get1_session(c);
    if (!SSL_is_init_finished(c) || !SSL_is_init_finished(s) || sess == NULL ||
        !SSL_SESSION_is_resumable(sess))
        abort();
    /* freed without a shutdown, the session would be marked unresumable */
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);
    ERR_clear_error();
    return sess;
}

static const struct fixture *fixture(void)
{
    static struct fixture fx; /* built once; constant afterwards */
    static int ready;
    static const unsigned char sid_ctx[] = "ucspi-tls";
    EVP_PKEY *key;
    X509 *x;
    X509_NAME *name;

    if (ready)
        return &fx;
    /* a worker ignores SIGPIPE: a closed pipe or socket is an EPIPE */
    signal(SIGPIPE, SIG_IGN);
    key = EVP_EC_gen("P-256");
    x = X509_new();
    if (key == NULL || x == NULL)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, key, EVP_sha256()) == 0)
        abort();

    /* The server as engine/tlsctx.c makes it, minus what the relay does
     * not see (keyd, ticket keys, ALPN, OCSP); the close mode is set per
     * run.  Sessions live long, so that a long fuzzing run still resumes. */
    fx.server = SSL_CTX_new(TLS_server_method());
    fx.client = SSL_CTX_new(TLS_client_method());
    if (fx.server == NULL || fx.client == NULL ||
        SSL_CTX_use_certificate(fx.server, x) != 1 ||
        SSL_CTX_use_PrivateKey(fx.server, key) != 1)
        abort();
    SSL_CTX_set_min_proto_version(fx.server, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(fx.server, TLS1_3_VERSION);
    SSL_CTX_set_options(fx.server, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE |
                                       SSL_OP_SINGLE_ECDH_USE);
    SSL_CTX_set_mode(fx.server, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(fx.server, 1);
    SSL_CTX_set_default_read_buffer_len(fx.server, 4 * 16384 + 512);
    SSL_CTX_set_session_cache_mode(fx.server, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(fx.server, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_max_early_data(fx.server, 0);
    SSL_CTX_set_timeout(fx.server, 7L * 86400);
    /* the client reads a bare EOF (--tcp-half-close) as the end */
    SSL_CTX_set_verify(fx.client, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(fx.client, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_timeout(fx.client, 7L * 86400);
    X509_free(x);
    EVP_PKEY_free(key);
    for (uint32_t i = 0; i < STREAM_MAX; i++) {
        fx.peer_stream[i] = (unsigned char)((i * 2654435761u) >> 13);
        fx.app_stream[i] = (unsigned char)((i * 2246822519u + 0x9e3779b9u) >> 17);
    }
    fx.session[0] = first_session(&fx, TLS1_2_VERSION);
    fx.session[1] = first_session(&fx, TLS1_3_VERSION);
    ready = 1;
    return &fx;
}

/* ---- the world: client and app ---- */

enum op {
    OP_PEER_WRITE, OP_PEER_FLUSH, OP_PEER_READ, OP_APP_WRITE, OP_APP_READ,
    OP_PEER_CLOSE_NOTIFY, OP_PEER_SHUT_WR, OP_APP_CLOSE_OUT, OP_APP_CLOSE_IN,
    OP_PEER_UPDATE, OP_PEER_ABUSE,
};

/* Common moves weigh more: the low 4 bits of an op byte index this. */
static const enum op OPS[16] = {
    OP_PEER_WRITE, OP_PEER_WRITE, OP_PEER_FLUSH, OP_PEER_FLUSH, OP_PEER_READ, OP_PEER_READ,
    OP_APP_WRITE,  OP_APP_WRITE,  OP_APP_READ,   OP_APP_READ,  OP_PEER_CLOSE_NOTIFY,
    OP_PEER_SHUT_WR, OP_APP_CLOSE_OUT, OP_APP_CLOSE_IN, OP_PEER_UPDATE, OP_PEER_ABUSE,
};

enum phase { PHASE_HANDSHAKE, PHASE_PUMP };

struct world {
    const uint8_t *in;
    size_t len, pos;
    enum phase phase;
    struct relay *relay;        /* borrowed: checked at every wait */
    struct relay_stats *st;     /* borrowed: the pump's live counts */
    int tls13, strict, half_close;

    SSL *client;                /* owned */
    BIO *c_in, *c_out;          /* owned by client: records to / from it */
    int peer_fd;                /* the client's socket end (owned) */
    int app_out_fd;             /* the app writes here: the relay's from_app */
    int app_in_fd;              /* the app reads here: the relay's to_app */

    size_t peer_sent, peer_got; /* client plaintext out / in */
    size_t app_sent, app_got;   /* app bytes out / in */
    int peer_shut;              /* close_notify queued */
    int peer_wr_shut;           /* SHUT_WR done */
    int peer_rd_eof;            /* read(2) said 0 */
    int peer_got_end;           /* SSL_read said ZERO_RETURN */
    int peer_got_close_notify;  /* ... from a close_notify, not a bare EOF */
    int client_dead;            /* its SSL failed: raw bytes only */
    int app_got_eof;
    int app_closed_out, app_closed_in;
    int misbehaved;             /* raw bytes, cut record, hard close, renegotiation */
    int bare_eof;               /* SHUT_WR after whole records, no close_notify */
    int update_requested;       /* a KeyUpdate that the relay must answer */
    int gave_up;
    unsigned long waits, max_waits;
    int idle_hook;              /* bit 7: relay_config.on_idle is set */
    unsigned long idle_polls;   /* idle waits the world let time out */
    unsigned long idle_calls;   /* on_idle calls */
    int idle_last;              /* the last wait was such an idle one */
    const struct fixture *fx;
    unsigned char *scratch;     /* SCRATCH bytes, borrowed */
};

/* A broken invariant: name it, with the world's view, and crash. */
static void fail(const struct world *w, const char *why) __attribute__((noreturn));
static void fail(const struct world *w, const char *why)
{
    fprintf(stderr,
            "fuzz_pump: %s\n  input %zu/%zu, waits %lu; peer sent %zu got %zu%s%s%s%s%s%s; "
            "app sent %zu got %zu%s%s%s; world%s%s%s\n",
            why, w->pos, w->len, w->waits, w->peer_sent, w->peer_got,
            w->peer_shut ? ", close_notify sent" : "", w->peer_wr_shut ? ", SHUT_WR" : "",
            w->peer_got_close_notify ? ", close_notify got"
                                     : w->peer_got_end ? ", EOF got" : "",
            w->peer_rd_eof ? ", socket EOF" : "", w->client_dead ? ", client failed" : "",
            w->peer_fd < 0 ? ", socket closed" : "", w->app_sent, w->app_got,
            w->app_closed_out ? ", output closed" : "",
            w->app_closed_in ? ", input closed" : "", w->app_got_eof ? ", EOF got" : "",
            w->misbehaved ? " misbehaved" : " well-behaved", w->bare_eof ? ", bare EOF" : "",
            w->gave_up ? ", gave up" : "");
    abort();
}

/* An argument byte as a size: small ones byte by byte, then 512-byte steps,
 * then sizes around records, buffers and pipes. */
static size_t amount(uint8_t b)
{
    static const size_t big[] = {1024, 4096, 5000, 16383, 16384, 16385, 16406,
                                 32768, 65535, 65536, 65537, 100000, 131072};

    if (b < 128)
        return (size_t)b + 1;
    if (b < 224)
        return (size_t)(b - 127) * 512;
    return big[(b - 224) % (sizeof big / sizeof big[0])];
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static uint8_t next_byte(struct world *w)
{
    return w->pos < w->len ? w->in[w->pos++] : 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Client: decrypt all it holds; every byte must be the app's next. */
static int peer_take(struct world *w)
{
    int moved = 0;

    if (w->client_dead || w->peer_got_end)
        return 0;
    for (;;) {
        int n = SSL_read(w->client, w->scratch, SCRATCH), e;
        if (n > 0) {
            if ((size_t)n > w->app_sent - w->peer_got ||
                memcmp(w->scratch, w->fx->app_stream + w->peer_got, (size_t)n) != 0)
                fail(w, "the client got what the app never sent");
            w->peer_got += (size_t)n;
            moved = 1;
            continue;
        }
        e = SSL_get_error(w->client, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            w->peer_got_end = 1;
            w->peer_got_close_notify = !w->peer_rd_eof;
        } else {
            w->client_dead = 1; /* an alert from the relay, or a record it cannot take */
        }
        moved = 1;
        break;
    }
    ERR_clear_error();
    return moved;
}

/* Socket -> client. */
static int peer_recv(struct world *w, size_t max)
{
    ssize_t n;

    if (w->peer_fd < 0 || w->peer_rd_eof)
        return 0;
    n = read(w->peer_fd, w->scratch, min_sz(max, SCRATCH));
    if (n > 0) {
        if (BIO_write(w->c_in, w->scratch, (int)n) != (int)n)
            abort();
        peer_take(w);
        return 1;
    }
    if (n == 0) {
        w->peer_rd_eof = 1;
        BIO_set_mem_eof_return(w->c_in, 0);
        peer_take(w);
        return 1;
    }
    return 0;
}

/* Client -> socket: up to max of its pending records. */
static int peer_flush(struct world *w, size_t max)
{
    char *data;
    long avail = BIO_get_mem_data(w->c_out, &data);
    ssize_t n;

    if (avail <= 0 || w->peer_fd < 0 || w->peer_wr_shut)
        return 0;
    n = write(w->peer_fd, data, min_sz((size_t)avail, min_sz(max, SCRATCH)));
    if (n <= 0)
        return 0;
    if (BIO_read(w->c_out, w->scratch, (int)n) != (int)n)
        abort();
    return 1;
}

static int peer_write(struct world *w, size_t n)
{
    int k;

    n = min_sz(min_sz(n, SCRATCH), STREAM_MAX - w->peer_sent);
    if (n == 0 || w->client_dead || w->peer_shut || w->peer_wr_shut || w->peer_fd < 0)
        return 0;
    k = SSL_write(w->client, w->fx->peer_stream + w->peer_sent, (int)n);
    if (k > 0)
        w->peer_sent += (size_t)k;
    else if (SSL_get_error(w->client, k) != SSL_ERROR_WANT_READ)
        w->client_dead = 1; /* e.g. a renegotiation the server refused */
    ERR_clear_error();
    return 1;
}

static int peer_close_notify(struct world *w)
{
    /* a client still in its handshake (a full one, not resumed) finishes
     * it by reading first */
    if (w->client_dead || w->peer_shut || w->peer_wr_shut || w->peer_fd < 0 ||
        !SSL_is_init_finished(w->client))
        return 0;
    if (SSL_shutdown(w->client) < 0)
        w->client_dead = 1;
    w->peer_shut = 1;
    ERR_clear_error();
    return 1;
}

/* TCP half-close: what is not flushed yet is lost (a cut record). */
static int peer_shut_wr(struct world *w)
{
    char *data;

    if (w->peer_fd < 0 || w->peer_wr_shut)
        return 0;
    if (BIO_get_mem_data(w->c_out, &data) > 0)
        w->misbehaved = 1;
    else if (!w->peer_shut)
        w->bare_eof = 1;
    (void)BIO_reset(w->c_out);
    shutdown(w->peer_fd, SHUT_WR);
    w->peer_wr_shut = 1;
    return 1;
}

static int app_write(struct world *w, size_t n)
{
    ssize_t k;

    n = min_sz(min_sz(n, SCRATCH), STREAM_MAX - w->app_sent);
    if (w->app_out_fd < 0 || n == 0)
        return 0;
    k = write(w->app_out_fd, w->fx->app_stream + w->app_sent, n);
    if (k <= 0)
        return 0;
    w->app_sent += (size_t)k;
    return 1;
}

static int app_read(struct world *w, size_t n)
{
    ssize_t k;

    if (w->app_in_fd < 0 || w->app_got_eof)
        return 0;
    k = read(w->app_in_fd, w->scratch, min_sz(n, SCRATCH));
    if (k < 0)
        return 0;
    if (k == 0) {
        w->app_got_eof = 1;
        return 1;
    }
    if ((size_t)k > w->peer_sent - w->app_got ||
        memcmp(w->scratch, w->fx->peer_stream + w->app_got, (size_t)k) != 0)
        fail(w, "the app got what the client never sent");
    w->app_got += (size_t)k;
    return 1;
}

/* One op of the input. */
static void act(struct world *w)
{
    enum op op = OPS[next_byte(w) & 15];

    switch (op) {
    case OP_PEER_WRITE: peer_write(w, amount(next_byte(w))); break;
    case OP_PEER_FLUSH: peer_flush(w, amount(next_byte(w))); break;
    case OP_PEER_READ: peer_recv(w, amount(next_byte(w))); break;
    case OP_APP_WRITE: app_write(w, amount(next_byte(w))); break;
    case OP_APP_READ: app_read(w, amount(next_byte(w))); break;
    case OP_PEER_CLOSE_NOTIFY: peer_close_notify(w); break;
    case OP_PEER_SHUT_WR: peer_shut_wr(w); break;
    case OP_APP_CLOSE_OUT:
        w->app_closed_out = 1;
        close_fd(&w->app_out_fd);
        break;
    case OP_APP_CLOSE_IN:
        if (w->app_in_fd >= 0)
            w->app_closed_in = 1;
        close_fd(&w->app_in_fd);
        break;
    case OP_PEER_UPDATE: {
        uint8_t arg = next_byte(w);
        int rc;
        if (w->client_dead || w->peer_shut || w->peer_wr_shut || w->peer_fd < 0)
            break;
        if (w->tls13) {
            /* the server must answer a requested update while reading */
            SSL_key_update(w->client, (arg & 1) ? SSL_KEY_UPDATE_REQUESTED
                                                : SSL_KEY_UPDATE_NOT_REQUESTED);
            w->update_requested |= arg & 1;
        } else {
            /* refused (SSL_OP_NO_RENEGOTIATION): the alert is written
             * while the server reads */
            SSL_renegotiate(w->client);
            w->misbehaved = 1;
        }
        rc = SSL_do_handshake(w->client);
        if (rc <= 0 && SSL_get_error(w->client, rc) != SSL_ERROR_WANT_READ)
            w->client_dead = 1;
        ERR_clear_error();
        break;
    }
    case OP_PEER_ABUSE: {
        uint8_t arg = next_byte(w);
        if (w->peer_fd < 0)
            break;
        w->misbehaved = 1;
        if (arg & 0x80) {
            close_fd(&w->peer_fd); /* gone, unread bytes and all */
        } else {
            /* raw bytes from the input onto the wire, mid-stream */
            size_t n = min_sz((size_t)(arg & 0x7f) + 1, w->len - w->pos);
            /* as much as fits: a full socket takes none */
            if (n > 0 && !w->peer_wr_shut && write(w->peer_fd, w->in + w->pos, n) < 0 &&
                errno != EAGAIN)
                fail(w, "raw bytes could not be written");
            w->pos += n;
        }
        break;
    }
    }
}

/* Input used up: one round of what a well-behaved peer and app do to end.
 * Returns 1 if anything moved. */
static int wind_down(struct world *w)
{
    int moved = 0;
    char *data;

    if (w->app_out_fd >= 0) {
        close_fd(&w->app_out_fd);
        moved = 1;
    }
    while (app_read(w, SCRATCH))
        moved = 1;
    while (peer_recv(w, SCRATCH))
        moved = 1;
    moved |= peer_close_notify(w);
    while (peer_flush(w, SCRATCH))
        moved = 1;
    /* seen the end and said all: a client closes its socket */
    if (w->peer_fd >= 0 && (w->peer_got_end || w->client_dead || w->peer_rd_eof) &&
        (w->peer_wr_shut || BIO_get_mem_data(w->c_out, &data) <= 0)) {
        close_fd(&w->peer_fd);
        moved = 1;
    }
    return moved;
}

/* The handshake: the client answers whatever arrives, in whole. */
static int handshake_turn(struct world *w)
{
    int moved = 0;

    SSL_do_handshake(w->client);
    ERR_clear_error();
    while (peer_flush(w, SCRATCH))
        moved = 1;
    while (peer_recv(w, SCRATCH))
        moved = 1;
    return moved;
}

static void check_relay(const struct world *w)
{
    const struct relay *r = w->relay;
    const struct direction *d[2] = {&r->up, &r->down};

    for (int i = 0; i < 2; i++) {
        if (d[i]->off > RELAY_BUF || d[i]->len > RELAY_BUF - d[i]->off ||
            d[i]->touched > RELAY_BUF || (d[i]->len > 0 && d[i]->off + d[i]->len > d[i]->touched))
            fail(w, "a buffer's bounds");
    }
    if ((r->down.done && r->cfg.to_app_fd >= 0) || (r->up.eof && r->cfg.from_app_fd >= 0))
        fail(w, "an ended direction still holds its app fd");
    /* the relay holds only what it was given, and never more than was sent */
    if (w->phase == PHASE_PUMP &&
        (w->st->bytes_to_app > w->peer_sent || w->st->bytes_to_app < w->app_got ||
         w->st->bytes_to_peer > w->app_sent || w->st->bytes_to_peer < w->peer_got ||
         w->st->bytes_to_peer + r->up.len > w->app_sent ||
         w->st->bytes_to_app + r->down.len > w->peer_sent))
        fail(w, "the relay's counts and buffers disagree with what was sent");
}

/* The relay waits: the world acts until something it waits for is ready. */
static int world_poll(struct pollfd *p, nfds_t n, int timeout, void *arg)
{
    struct world *w = arg;
    int any_fd = 0;

    /* bit 7: the relay's first wait of an idle spell (RELAY_IDLE_MS) times
     * out when nothing is ready: a quiet second passes, then on_idle must
     * come, once, and the relay wait again as before */
    if (w->idle_hook && w->phase == PHASE_PUMP && timeout == RELAY_IDLE_MS &&
        poll(p, n, 0) == 0) {
        /* nothing changed since the last idle second: the relay must not
         * start another idle spell (on_idle again, or a loop) */
        if (w->idle_last)
            fail(w, "a second idle wait with nothing moved in between");
        w->idle_last = 1;
        w->idle_polls++;
        return 0;
    }
    w->idle_last = 0;
    if (++w->waits > w->max_waits)
        fail(w, "the relay does not end: it waits and wakes without moving");
    check_relay(w);
    for (nfds_t i = 0; i < n; i++)
        any_fd |= p[i].fd >= 0;
    if (!any_fd && timeout < 0)
        fail(w, "the relay waits on nothing, for ever");
    for (int turn = 0;; turn++) {
        int moved;

        if (turn > 0 || w->pos >= w->len || w->phase == PHASE_HANDSHAKE) {
            int ready = poll(p, n, 0);
            if (ready != 0)
                return ready;
        }
        if (w->phase == PHASE_HANDSHAKE) {
            if (!handshake_turn(w))
                fail(w, "the handshake is stuck");
            continue;
        }
        if (w->pos < w->len) {
            act(w);
            continue;
        }
        moved = wind_down(w);
        if (moved)
            continue;
        if (!w->gave_up) {
            /* nothing left to do and the relay still waits: end it all */
            w->gave_up = 1;
            close_fd(&w->peer_fd);
            close_fd(&w->app_in_fd);
            continue;
        }
        if (timeout >= 0)
            return 0; /* as the timer would */
        fail(w, "every other end is closed, and the relay still waits");
    }
}

/* Ends in which a well-behaved world does not get all it should, known and
 * left alone for now; returns which, NULL for none.  Each has a seed in
 * fuzz/corpus/pump/known-*, so that the replay keeps running it.  Since
 * the record buffer (relay/outbuf.c) takes OpenSSL's writes, the seeds
 * known-eof-close-notify-pending and known-keyupdate-write-retry end
 * cleanly; those ends remain possible when the buffer itself is full. */
static const char *known_deviation(const struct world *w, int rc, const char *err)
{
    int io = rc == RELAY_ERR_IO, tls = rc == RELAY_ERR_TLS;

    /* OpenSSL 3.0 answers a KeyUpdate that asks for one even after our
     * close_notify or SHUT_WR.  When that write fails (EPIPE: always after
     * --tcp-half-close's SHUT_WR, or when the peer has closed its socket
     * after our close_notify) SSL_read fails: what the peer sent after the
     * KeyUpdate is lost. */
    if (w->update_requested && io && w->relay->up.done)
        return "keyupdate-after-end";
    /* OpenSSL 3.0: more KeyUpdates arriving while the answer to one waits
     * behind a partly sent record of ours fail SSL_read with "bad length" or
     * "bad write retry" (a standalone OpenSSL program shows the same). */
    if (w->update_requested && tls &&
        (strstr(err, "bad length") != NULL || strstr(err, "bad write retry") != NULL))
        return "keyupdate-write-pending";
    /* OpenSSL 3.0: while the answer to a KeyUpdate waits for socket space
     * the SSL is "in init", and SSL_shutdown fails instead of waiting. */
    if (w->update_requested && io && strstr(err, "shutdown while in init") != NULL)
        return "keyupdate-shutdown";
    /* OpenSSL 3.0 with SSL_OP_IGNORE_UNEXPECTED_EOF: a bare EOF read while
     * our close_notify waits for socket space makes the next SSL_shutdown
     * fail (ZERO_RETURN, nothing written), contrary to what tlsctx.c
     * expects; everything before the close_notify was sent. */
    if (!w->strict && w->bare_eof && io && strstr(err, "sending close_notify") != NULL)
        return "eof-close-notify-pending";
    return NULL;
}

/* What the relay's end must look like, given what the world did. */
static void check_end(const struct world *w, int rc, const char *err)
{
    const struct relay_stats *st = w->st;
    int strict = w->strict, half_close = w->half_close;
    int truncation = strict && w->bare_eof;

    if (rc != RELAY_DONE && rc != RELAY_ERR_TLS && rc != RELAY_ERR_IO &&
        rc != RELAY_ERR_TRUNCATED)
        fail(w, "a timeout without a timer");
    if (rc == RELAY_ERR_TRUNCATED && !strict)
        fail(w, "truncation reported without -J");
    if (rc != RELAY_DONE && err[0] == '\0')
        fail(w, "an error without a reason");
    if (st->bytes_to_app > w->peer_sent || st->bytes_to_app < w->app_got ||
        st->bytes_to_peer > w->app_sent || w->peer_got > st->bytes_to_peer)
        fail(w, "the relay's counts disagree with what was sent and received");
    if (!w->app_closed_in && !w->app_got_eof)
        fail(w, "the relay returned but the app sees no EOF");
    if (half_close && w->peer_got_close_notify)
        fail(w, "a close_notify with --tcp-half-close");
    if (getenv("FUZZ_PUMP_DEBUG") != NULL)
        fprintf(stderr, "fuzz_pump: relay said %s: %s; known: %s; %lu waits, %lu on_idle, "
                "%zu/%zu/%zu/%zu\n",
                relay_result_name(rc), err,
                known_deviation(w, rc, err) ? known_deviation(w, rc, err) : "-", w->waits,
                w->idle_calls,
                w->peer_sent, w->peer_got, w->app_sent, w->app_got);
    if (w->misbehaved || known_deviation(w, rc, err) != NULL)
        return;
    /* under -J OpenSSL answers a bare EOF with a decode_error alert */
    if (w->client_dead && !truncation)
        fail(w, "the client failed in a well-behaved world");
    if (w->gave_up)
        fail(w, "the relay needed every end closed in a well-behaved world");
    if (truncation ? !(rc == RELAY_ERR_TRUNCATED || (rc == RELAY_DONE && w->app_closed_in))
                   : rc != RELAY_DONE) {
        fprintf(stderr, "fuzz_pump: relay said %s: %s\n", relay_result_name(rc), err);
        fail(w, "a well-behaved world did not end as it should");
    }
    if (!w->app_closed_in &&
        (w->app_got != w->peer_sent || st->bytes_to_app != w->app_got ||
         (!truncation && !st->peer_closed)))
        fail(w, "the app did not get everything the client sent");
    if (rc == RELAY_DONE &&
        (w->peer_got != w->app_sent || st->bytes_to_peer != w->app_sent || !w->peer_got_end ||
         (!half_close && !w->peer_got_close_notify)))
        fail(w, "the client did not get everything the app sent, and the end");
}

/* ---- one run ---- */

/* on_idle: the relay calls it once per idle spell, from its poll loop,
 * right after an idle wait timed out */
static void world_idle(void *arg)
{
    struct world *w = arg;

    if (++w->idle_calls != w->idle_polls)
        fail(w, "on_idle without an idle wait that timed out, or twice for one");
    check_relay(w);
}

static int small_buffers(int fd)
{
    int sz = 4096;
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char scratch[SCRATCH]; /* contents never outlive a call */
    const struct fixture *fx = fixture();
    struct world *w;
    struct relay_stats st;
    struct relay_config cfg;
    struct relay *r;
    SSL *ssl;
    SSL_SESSION *sess;
    int sv[2], up[2], down[2], rc;
    int strict, half_close;
    uint8_t flags;
    char err[256];

    if (size < 1)
        return 0;
    flags = data[0];
    strict = (flags >> 1) & 1;
    half_close = (flags >> 2) & 1;
    w = calloc(1, sizeof *w);
    if (w == NULL)
        abort();
    w->fx = fx;
    w->scratch = scratch;
    w->in = data;
    w->len = size;
    w->pos = 1;
    w->tls13 = flags & 1;
    w->strict = strict;
    w->half_close = half_close;
    w->max_waits = WAITS_BASE + 4 * (unsigned long)size;
    w->idle_hook = (flags & 128) != 0;
    w->st = &st;
    memset(&st, 0, sizeof st);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
        abort();
    if (fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(up[1], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(down[0], F_SETFL, O_NONBLOCK) < 0)
        abort();
    if ((flags & 8) && (small_buffers(sv[0]) < 0 || small_buffers(sv[1]) < 0))
        abort();
    if ((flags & 16) &&
        (fcntl(up[0], F_SETPIPE_SZ, 4096) < 0 || fcntl(down[0], F_SETPIPE_SZ, 4096) < 0))
        abort();
    w->peer_fd = sv[1];
    w->app_out_fd = up[1];
    w->app_in_fd = down[0];

    cfg = (struct relay_config){
        .net_rfd = sv[0], .net_wfd = sv[0], .from_app_fd = up[0], .to_app_fd = down[1],
        .tcp_half_close = half_close, .idle_timeout_ms = 0, .ktls = 0,
        .on_idle = (flags & 128) ? world_idle : NULL, .on_idle_arg = w,
    };
    r = relay_new(&cfg); /* owns up[0] and down[1] now */
    ssl = SSL_new(fx->server);
    w->client = SSL_new(fx->client);
    w->c_in = BIO_new(BIO_s_mem());
    w->c_out = BIO_new(BIO_s_mem());
    if (r == NULL || ssl == NULL || w->client == NULL || w->c_in == NULL || w->c_out == NULL ||
        SSL_set_fd(ssl, sv[0]) != 1)
        abort();
    w->relay = r;
    if (!strict)
        SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_num_tickets(ssl, (flags >> 5) & 3);
    SSL_set_accept_state(ssl);
    SSL_set_bio(w->client, w->c_in, w->c_out);
    SSL_set_min_proto_version(w->client, w->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_set_max_proto_version(w->client, w->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* a copy: a failed run must not make the shared session unresumable */
    sess = SSL_SESSION_dup(fx->session[w->tls13]);
    if (sess == NULL || SSL_set_session(w->client, sess) != 1)
        abort();
    SSL_SESSION_free(sess);
    SSL_set_connect_state(w->client);

    relay_test_set_poll(world_poll, w);
    w->phase = PHASE_HANDSHAKE;
    if (relay_handshake(r, ssl, 60000, err, sizeof err) != RELAY_DONE)
        fail(w, err);
    w->phase = PHASE_PUMP;
    err[0] = '\0';
    rc = relay_pump(r, ssl, &st, err, sizeof err);
    relay_test_set_poll(NULL, NULL);

    /* the app fds are the relay's no more; what is left reaches the world */
    if (r->cfg.from_app_fd != -1 || r->cfg.to_app_fd != -1)
        fail(w, "the relay returned with an app fd open");
    while (app_read(w, SCRATCH))
        ;
    while (peer_recv(w, SCRATCH))
        ;
    check_end(w, rc, err);
    /* every idle wait that timed out got its on_idle (but the linger's
     * last wait, which may happen to be RELAY_IDLE_MS long) */
    if (w->idle_polls > w->idle_calls + 1)
        fail(w, "an idle wait timed out and on_idle did not come");

    relay_free(r);
    SSL_free(ssl);
    SSL_free(w->client);
    close(sv[0]);
    close_fd(&w->peer_fd);
    close_fd(&w->app_out_fd);
    close_fd(&w->app_in_fd);
    ERR_clear_error();
    free(w);
    return 0;
}

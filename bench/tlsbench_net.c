/* tlsbench: address, TCP connect, STARTTLS (smtp, pop3, imap), the TLS
 * handshake, progress lines. */
#include "tlsbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

double tb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int stderr_tty(void)
{
    static int tty = -1;

    if (tty < 0)
        tty = isatty(2);
    return tty;
}

void tb_progress_start(struct tb_progress *p)
{
    p->start = p->last = tb_now();
    p->printed = 0;
}

int tb_progress_due(const struct tb_options *opt, struct tb_progress *p)
{
    double now;

    if (opt->progress == 0 || opt->quiet || (opt->progress < 0 && !stderr_tty()))
        return 0;
    now = tb_now();
    if (now - p->start < 2.0 || now - p->last < (stderr_tty() ? 0.5 : 5.0))
        return 0;
    p->last = now;
    return 1;
}

void tb_progress_print(struct tb_progress *p, const char *fmt, ...)
{
    va_list ap;

    fputs(stderr_tty() ? "\r\033[Ktlsbench: " : "tlsbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (!stderr_tty())
        fputc('\n', stderr);
    fflush(stderr);
    p->printed = 1;
}

void tb_progress_end(struct tb_progress *p)
{
    if (p->printed && stderr_tty())
        fputs("\r\033[K", stderr);
    p->printed = 0;
}

void tb_ssl_reason(SSL *ssl, int rc, const char *what, char *err, size_t errlen)
{
    int e = ssl ? SSL_get_error(ssl, rc) : SSL_ERROR_SSL;
    unsigned long code = ERR_peek_last_error();
    char buf[200];

    if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(err, errlen, "%s: the server closed the TLS connection", what);
    } else if (code != 0) {
        ERR_error_string_n(code, buf, sizeof buf);
        snprintf(err, errlen, "%s: %s", what, buf);
    } else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
               (e == SSL_ERROR_SYSCALL && errno == EAGAIN)) {
        /* SO_RCVTIMEO/SO_SNDTIMEO expired: the socket BIO takes EAGAIN
         * for "try again", so it shows up as WANT_READ/WANT_WRITE. */
        snprintf(err, errlen, "%s: timed out", what);
    } else if (e == SSL_ERROR_SYSCALL && errno != 0) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
    } else {
        snprintf(err, errlen, "%s: the server closed the connection", what);
    }
    ERR_clear_error();
}

static int is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tb_client_init(struct tb_client *c, const struct tb_options *opt, int *code,
                   char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    c->opt = opt;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(opt->host, opt->port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "unable to resolve %s port %s: %s", opt->host, opt->port,
                 rc ? gai_strerror(rc) : "no address");
        *code = TB_EXIT_CONNECT;
        return -1;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addrlen = res->ai_addrlen;
    freeaddrinfo(res);

    if (opt->no_sni)
        c->sni = NULL;
    else if (opt->sni)
        c->sni = opt->sni;
    else
        c->sni = is_address(opt->host) ? NULL : opt->host;

    *code = TB_EXIT_USAGE;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        tb_ssl_reason(NULL, 0, "SSL_CTX_new", err, errlen);
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, opt->tls_version);
    SSL_CTX_set_max_proto_version(c->ctx, opt->tls_version);
    if (SSL_CTX_set_ciphersuites(c->ctx, opt->ciphersuites) != 1) {
        snprintf(err, errlen, "no usable TLS 1.3 suite in --ciphersuites %s", opt->ciphersuites);
        goto fail;
    }
    if (SSL_CTX_set_cipher_list(c->ctx, opt->ciphers) != 1) {
        snprintf(err, errlen, "no usable cipher in --ciphers %s", opt->ciphers);
        goto fail;
    }
    if (opt->cafile) {
        if (access(opt->cafile, R_OK) != 0) {
            snprintf(err, errlen, "--cafile %s: %s", opt->cafile, strerror(errno));
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(c->ctx, opt->cafile, NULL) != 1) {
            tb_ssl_reason(NULL, 0, opt->cafile, err, errlen);
            goto fail;
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }
    /* Sessions are kept by hand (SSL_get1_session), one per client
     * process: no shared cache to lock. */
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_AUTO_RETRY);
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(c->ctx);
    c->ctx = NULL;
    return -1;
}

void tb_client_free(struct tb_client *c)
{
    SSL_CTX_free(c->ctx);
    c->ctx = NULL;
}

static int tcp_connect(const struct tb_client *c, char *err, size_t errlen)
{
    int ms = c->opt->timeout_ms, one = 1;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* Blocking I/O bounded by the timeout (it bounds connect too). */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    while (connect(fd, (const struct sockaddr *)&c->addr, c->addrlen) < 0) {
        if (errno == EINTR)
            continue;
        snprintf(err, errlen, "unable to connect to %s port %s: %s", c->opt->host,
                 c->opt->port, errno == EINPROGRESS ? "timed out" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- STARTTLS: the plaintext dialog before the handshake ---- */

/* Longest line accepted from the server, and most lines in one reply (a
 * multi-line SMTP reply, untagged IMAP data): a server that talks without
 * end is an error, not a hang or a heap to fill. */
#define PLAIN_BUF 8192
#define PLAIN_MAX_LINES 200

/* The server's side of the dialog, read line by line.  Bytes are buffered
 * only up to the end of what the server sent; after the reply to the
 * STARTTLS command the buffer must be empty: bytes the server sent before
 * the handshake must never be taken as if they had come over TLS. */
struct plain {
    int fd;
    enum tb_starttls proto;
    double deadline; /* tb_now() bound on the whole dialog */
    char buf[PLAIN_BUF];
    size_t off, len; /* unread bytes: buf[off, len) */
};

static const char *const proto_names[] = {"none", "smtp", "pop3", "imap"};

const char *tb_starttls_name(enum tb_starttls proto)
{
    return (unsigned)proto < sizeof proto_names / sizeof proto_names[0] ? proto_names[proto]
                                                                        : "?";
}

const char *tb_starttls_quit(enum tb_starttls proto)
{
    switch (proto) {
    case TB_STARTTLS_SMTP:
    case TB_STARTTLS_POP3: return "QUIT\r\n";
    case TB_STARTTLS_IMAP: return "a002 LOGOUT\r\n";
    default: return NULL;
    }
}

static void plain_error(const struct plain *p, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void plain_error(const struct plain *p, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "STARTTLS %s: ", tb_starttls_name(p->proto));

    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A server's line, made safe to print: at most 80 characters, anything but
 * printable ASCII shown as '?'. */
static const char *quote(const char *line, char *out, size_t cap)
{
    size_t i = 0;

    for (; line[i] != '\0' && i + 4 < cap && i < 80; i++)
        out[i] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
    if (line[i] != '\0' && i + 4 <= cap) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* The next line from the server, without its CRLF (or bare LF), into line
 * (NUL-terminated; a NUL byte from the server ends it early, which is then
 * a line that matches nothing).  Returns 0, or -1 with a reason in err. */
static int plain_line(struct plain *p, char *line, size_t cap, char *err, size_t errlen)
{
    for (;;) {
        char *nl = memchr(p->buf + p->off, '\n', p->len - p->off);
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        double left;
        ssize_t n;
        int pr;

        if (nl != NULL) {
            size_t n_line = (size_t)(nl - (p->buf + p->off));
            if (n_line > 0 && p->buf[p->off + n_line - 1] == '\r')
                n_line--;
            if (n_line >= cap)
                n_line = cap - 1;
            memcpy(line, p->buf + p->off, n_line);
            line[n_line] = '\0';
            p->off = (size_t)(nl + 1 - p->buf);
            return 0;
        }
        if (p->off > 0) {
            memmove(p->buf, p->buf + p->off, p->len - p->off);
            p->len -= p->off;
            p->off = 0;
        }
        if (p->len == sizeof p->buf) {
            plain_error(p, err, errlen, "a line longer than %zu bytes from the server",
                        sizeof p->buf);
            return -1;
        }
        left = p->deadline - tb_now();
        if (left <= 0) {
            plain_error(p, err, errlen, "timed out waiting for the server");
            return -1;
        }
        pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            plain_error(p, err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (pr == 0)
            continue; /* the deadline check above ends it */
        n = recv(p->fd, p->buf + p->len, sizeof p->buf - p->len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            plain_error(p, err, errlen, "%s",
                        n == 0 ? "the server closed the connection" : strerror(errno));
            return -1;
        }
        p->len += (size_t)n;
    }
}

/* The server must have sent nothing past the reply just read: it would be
 * a second reply (a confused server), and after the STARTTLS reply it would
 * be plaintext posing as the start of the TLS session. */
static int plain_end_of_reply(const struct plain *p, const char *what, char *err,
                              size_t errlen)
{
    if (p->off == p->len)
        return 0;
    plain_error(p, err, errlen, "the server sent %zu more bytes after %s", p->len - p->off, what);
    return -1;
}

static int plain_send(const struct plain *p, const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);

    /* A short command into an empty socket buffer: one send, bounded by
     * SO_SNDTIMEO. */
    if (send(p->fd, s, n, MSG_NOSIGNAL) != (ssize_t)n) {
        plain_error(p, err, errlen, "write: %s", errno == EAGAIN ? "timed out" : strerror(errno));
        return -1;
    }
    return 0;
}

/* When line starts with word (ASCII case-insensitive) followed by the end
 * of the line or a space: the rest of the line after that space (or the
 * empty string at its end).  Else NULL. */
static const char *after_word(const char *line, const char *word)
{
    size_t n = strlen(word);

    if (strncasecmp(line, word, n) != 0 || (line[n] != '\0' && line[n] != ' '))
        return NULL;
    return line[n] == ' ' ? line + n + 1 : line + n;
}

static int has_word(const char *line, const char *word)
{
    return after_word(line, word) != NULL;
}

/* The rest of an IMAP line after its tag (or '*') and one space, or the
 * empty string when the line has no second word. */
static const char *imap_rest(const char *line, const char *tag)
{
    const char *r = after_word(line, tag);
    return r ? r : "";
}

/* One SMTP reply, possibly multi-line ("250-..." lines, then "250 ...").
 * Returns its code, or -1 with a reason in err.  *starttls (may be NULL) is
 * set when one of its lines is the STARTTLS keyword (an EHLO reply). */
static int smtp_reply(struct plain *p, int *starttls, char *last, size_t lastcap, char *err,
                      size_t errlen)
{
    char line[PLAIN_BUF], q[100];

    for (int i = 0; i < PLAIN_MAX_LINES; i++) {
        int code = 0;

        if (plain_line(p, line, sizeof line, err, errlen) < 0)
            return -1;
        for (size_t k = 0; k < 3 && code >= 0; k++)
            code = line[k] >= '0' && line[k] <= '9' ? code * 10 + (line[k] - '0') : -1;
        if (code < 0 || (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
            plain_error(p, err, errlen, "not an SMTP reply: \"%s\"", quote(line, q, sizeof q));
            return -1;
        }
        /* EHLO keywords, one per line after the first: "250-STARTTLS" */
        if (starttls && line[3] != '\0' && has_word(line + 4, "STARTTLS"))
            *starttls = 1;
        if (line[3] != '-') {
            snprintf(last, lastcap, "%s", quote(line, q, sizeof q));
            return code;
        }
    }
    plain_error(p, err, errlen, "a reply of more than %d lines", PLAIN_MAX_LINES);
    return -1;
}

static int smtp_starttls(struct plain *p, char *err, size_t errlen)
{
    char last[100];
    int code, starttls = 0;

    if ((code = smtp_reply(p, NULL, last, sizeof last, err, errlen)) < 0 ||
        plain_end_of_reply(p, "its greeting", err, errlen) < 0)
        return -1;
    if (code != 220) {
        plain_error(p, err, errlen, "the server refused the connection: \"%s\"", last);
        return -1;
    }
    if (plain_send(p, "EHLO tlsbench.invalid\r\n", err, errlen) < 0 ||
        (code = smtp_reply(p, &starttls, last, sizeof last, err, errlen)) < 0 ||
        plain_end_of_reply(p, "its EHLO reply", err, errlen) < 0)
        return -1;
    if (code != 250) {
        plain_error(p, err, errlen, "EHLO refused: \"%s\"", last);
        return -1;
    }
    if (!starttls) {
        plain_error(p, err, errlen, "the server does not offer STARTTLS");
        return -1;
    }
    if (plain_send(p, "STARTTLS\r\n", err, errlen) < 0 ||
        (code = smtp_reply(p, NULL, last, sizeof last, err, errlen)) < 0)
        return -1;
    if (code != 220) {
        plain_error(p, err, errlen, "STARTTLS refused: \"%s\"", last);
        return -1;
    }
    return plain_end_of_reply(p, "its STARTTLS reply", err, errlen);
}

/* POP3 (RFC 2595): "+OK" greeting, STLS, "+OK". */
static int pop3_starttls(struct plain *p, char *err, size_t errlen)
{
    char line[PLAIN_BUF], q[100];

    if (plain_line(p, line, sizeof line, err, errlen) < 0 ||
        plain_end_of_reply(p, "its greeting", err, errlen) < 0)
        return -1;
    if (has_word(line, "-ERR")) {
        plain_error(p, err, errlen, "the server refused the connection: \"%s\"",
                    quote(line, q, sizeof q));
        return -1;
    }
    if (!has_word(line, "+OK")) {
        plain_error(p, err, errlen, "not a POP3 greeting: \"%s\"", quote(line, q, sizeof q));
        return -1;
    }
    if (plain_send(p, "STLS\r\n", err, errlen) < 0 ||
        plain_line(p, line, sizeof line, err, errlen) < 0)
        return -1;
    if (has_word(line, "-ERR")) {
        plain_error(p, err, errlen, "STLS refused: \"%s\"", quote(line, q, sizeof q));
        return -1;
    }
    if (!has_word(line, "+OK")) {
        plain_error(p, err, errlen, "not a POP3 reply to STLS: \"%s\"", quote(line, q, sizeof q));
        return -1;
    }
    return plain_end_of_reply(p, "its STLS reply", err, errlen);
}

/* IMAP (RFC 3501, 9051): "* OK" greeting, "a001 STARTTLS", untagged data,
 * then "a001 OK". */
static int imap_starttls(struct plain *p, char *err, size_t errlen)
{
    char line[PLAIN_BUF], q[100];

    if (plain_line(p, line, sizeof line, err, errlen) < 0 ||
        plain_end_of_reply(p, "its greeting", err, errlen) < 0)
        return -1;
    if (has_word(line, "*") && has_word(imap_rest(line, "*"), "BYE")) {
        plain_error(p, err, errlen, "the server refused the connection: \"%s\"",
                    quote(line, q, sizeof q));
        return -1;
    }
    if (has_word(line, "*") && has_word(imap_rest(line, "*"), "PREAUTH")) {
        plain_error(p, err, errlen,
                    "the connection is pre-authenticated, where STARTTLS is not allowed: "
                    "\"%s\"", quote(line, q, sizeof q));
        return -1;
    }
    if (!has_word(line, "*") || !has_word(imap_rest(line, "*"), "OK")) {
        plain_error(p, err, errlen, "not an IMAP greeting: \"%s\"", quote(line, q, sizeof q));
        return -1;
    }
    if (plain_send(p, "a001 STARTTLS\r\n", err, errlen) < 0)
        return -1;
    for (int i = 0; i < PLAIN_MAX_LINES; i++) {
        if (plain_line(p, line, sizeof line, err, errlen) < 0)
            return -1;
        if (has_word(line, "*")) {
            if (has_word(imap_rest(line, "*"), "BYE")) {
                plain_error(p, err, errlen, "the server is closing the connection: \"%s\"",
                            quote(line, q, sizeof q));
                return -1;
            }
            continue; /* untagged data (CAPABILITY ...) before the tagged reply */
        }
        if (!has_word(line, "a001")) {
            plain_error(p, err, errlen, "not an IMAP reply to STARTTLS: \"%s\"",
                        quote(line, q, sizeof q));
            return -1;
        }
        if (has_word(imap_rest(line, "a001"), "OK"))
            return plain_end_of_reply(p, "its STARTTLS reply", err, errlen);
        if (has_word(imap_rest(line, "a001"), "NO") || has_word(imap_rest(line, "a001"), "BAD")) {
            plain_error(p, err, errlen, "STARTTLS refused: \"%s\"", quote(line, q, sizeof q));
            return -1;
        }
        plain_error(p, err, errlen, "not an IMAP reply to STARTTLS: \"%s\"",
                    quote(line, q, sizeof q));
        return -1;
    }
    plain_error(p, err, errlen, "more than %d untagged lines before the reply to STARTTLS",
                PLAIN_MAX_LINES);
    return -1;
}

int tb_starttls(enum tb_starttls proto, int fd, int timeout_ms, char *err, size_t errlen)
{
    struct plain *p = malloc(sizeof *p);
    int rc;

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->fd = fd;
    p->proto = proto;
    p->deadline = tb_now() + timeout_ms / 1000.0;
    p->off = p->len = 0;
    switch (p->proto) {
    case TB_STARTTLS_SMTP: rc = smtp_starttls(p, err, errlen); break;
    case TB_STARTTLS_POP3: rc = pop3_starttls(p, err, errlen); break;
    case TB_STARTTLS_IMAP: rc = imap_starttls(p, err, errlen); break;
    default: rc = 0; break;
    }
    free(p);
    return rc;
}

static int starttls(const struct tb_client *c, int fd, char *err, size_t errlen)
{
    return tb_starttls(c->opt->starttls, fd, c->opt->timeout_ms, err, errlen);
}

int tb_open(const struct tb_client *c, SSL_SESSION *sess, struct tb_conn *conn,
            char *err, size_t errlen)
{
    double t0;
    int rc;

    conn->ssl = NULL;
    conn->fd = tcp_connect(c, err, errlen);
    if (conn->fd < 0)
        return -1;
    if (c->opt->starttls != TB_STARTTLS_NONE && starttls(c, conn->fd, err, errlen) < 0)
        goto fail;
    conn->ssl = SSL_new(c->ctx);
    if (conn->ssl == NULL || SSL_set_fd(conn->ssl, conn->fd) != 1) {
        tb_ssl_reason(NULL, 0, "SSL_new", err, errlen);
        goto fail;
    }
    if (c->sni && SSL_set_tlsext_host_name(conn->ssl, c->sni) != 1) {
        tb_ssl_reason(NULL, 0, "SNI", err, errlen);
        goto fail;
    }
    if (c->opt->cafile && SSL_set1_host(conn->ssl, c->sni ? c->sni : c->opt->host) != 1) {
        tb_ssl_reason(NULL, 0, "host check", err, errlen);
        goto fail;
    }
    if (sess)
        SSL_set_session(conn->ssl, sess);
    ERR_clear_error();
    errno = 0;
    t0 = tb_now();
    rc = SSL_connect(conn->ssl);
    if (rc != 1) {
        tb_ssl_reason(conn->ssl, rc, "TLS handshake", err, errlen);
        goto fail;
    }
    conn->handshake_ms = (tb_now() - t0) * 1e3;
    return 0;
fail:
    SSL_free(conn->ssl);
    conn->ssl = NULL;
    close(conn->fd);
    conn->fd = -1;
    return -1;
}

void tb_close(struct tb_conn *conn, int send_close_notify)
{
    if (conn->ssl) {
        if (send_close_notify)
            SSL_shutdown(conn->ssl);
        SSL_free(conn->ssl);
        conn->ssl = NULL;
    }
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
    ERR_clear_error();
}

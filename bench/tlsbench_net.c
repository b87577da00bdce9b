/* tlsbench: address, TCP connect, STARTTLS smtp and the TLS handshake. */
#include "tlsbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    } else if (e == SSL_ERROR_SYSCALL && errno == EAGAIN) {
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

/* Reads one SMTP reply (possibly multi-line) into buf; returns its code or
 * -1.  Reads no byte past the reply: the server sends nothing unasked. */
static int smtp_reply(int fd, char *buf, size_t cap, char *err, size_t errlen)
{
    size_t len = 0, line = 0;

    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "STARTTLS smtp: %s",
                     n == 0 ? "the server closed the connection"
                            : errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        for (;;) {
            char *nl = memchr(buf + line, '\n', len - line);
            if (nl == NULL)
                break;
            if ((size_t)(nl - (buf + line)) < 4 || buf[line + 3] == ' ' ||
                buf[line + 3] == '\r') {
                int code = 0;
                if ((size_t)(nl + 1 - buf) != len) {
                    snprintf(err, errlen, "STARTTLS smtp: the server sent more than one reply");
                    return -1;
                }
                for (size_t i = 0; i < 3 && code >= 0; i++) {
                    char d = buf[line + i];
                    code = d >= '0' && d <= '9' ? code * 10 + (d - '0') : -1;
                }
                if (code < 0) {
                    snprintf(err, errlen, "STARTTLS smtp: not an SMTP reply");
                    return -1;
                }
                return code;
            }
            line = (size_t)(nl + 1 - buf);
        }
        if (len + 1 >= cap) {
            snprintf(err, errlen, "STARTTLS smtp: reply longer than %zu bytes", cap);
            return -1;
        }
    }
}

static int smtp_send(int fd, const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);

    if (send(fd, s, n, MSG_NOSIGNAL) != (ssize_t)n) {
        snprintf(err, errlen, "STARTTLS smtp: write: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int smtp_starttls(int fd, char *err, size_t errlen)
{
    char buf[8192];
    int code;

    if ((code = smtp_reply(fd, buf, sizeof buf, err, errlen)) < 0)
        return -1;
    if (code != 220) {
        snprintf(err, errlen, "STARTTLS smtp: greeting %d, not 220", code);
        return -1;
    }
    if (smtp_send(fd, "EHLO tlsbench.invalid\r\n", err, errlen) < 0 ||
        (code = smtp_reply(fd, buf, sizeof buf, err, errlen)) < 0)
        return -1;
    if (code != 250) {
        snprintf(err, errlen, "STARTTLS smtp: EHLO answered %d", code);
        return -1;
    }
    if (strstr(buf, "STARTTLS") == NULL && strstr(buf, "starttls") == NULL) {
        snprintf(err, errlen, "STARTTLS smtp: the server does not offer STARTTLS");
        return -1;
    }
    if (smtp_send(fd, "STARTTLS\r\n", err, errlen) < 0 ||
        (code = smtp_reply(fd, buf, sizeof buf, err, errlen)) < 0)
        return -1;
    if (code != 220) {
        snprintf(err, errlen, "STARTTLS smtp: STARTTLS answered %d", code);
        return -1;
    }
    return 0;
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
    if (c->opt->starttls == TB_STARTTLS_SMTP && smtp_starttls(conn->fd, err, errlen) < 0)
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

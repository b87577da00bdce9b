/* tls-ceiling: the bare TLS server of the benchmark, its ceiling.  It does
 * what the applications behind the real servers do (stream, sink, echo,
 * close), from and into memory, in the process that does the TLS: no relay,
 * no pipes, no application, no privilege separation.  One fork per
 * connection, from a parent that made the SSL_CTX (and so the ticket keys)
 * once.
 *
 * usage: tls-ceiling [-1] [-w] [-x PROG] -m MODE [-n BYTES] CERTFILE KEYFILE HOST PORT
 *   MODE gen   write BYTES of the benchmark stream (stream.h), then close
 *        sink  read BYTES (or to EOF) and answer as bench-sink does
 *        echo  send back what arrives, until EOF
 *        true  close right after the handshake (as an app of /bin/true)
 *   -1   print the bound port on stdout (with PORT 0)
 *   -w   warm up: one TLS 1.3 handshake with itself, in memory, before the
 *        first fork, so that OpenSSL's lazily filled caches (algorithm
 *        fetches, key schedule methods) are inherited warm by every child
 *   -x PROG  after the handshake, run PROG (no arguments, /dev/null as its
 *        stdin and stdout) and wait for it before going on: the least an
 *        application per connection costs (posix_spawn, the cheapest spawn
 *        there is, from the connection's process).  The benchmark's
 *        "ceil+app" for handshakes: -m true -x /bin/true
 *
 * Exit codes: 100 usage, 111 start-up failure; it runs until killed. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CEIL_BUF (4 * STREAM_CHUNK)

enum mode { MODE_GEN, MODE_SINK, MODE_ECHO, MODE_TRUE };

static _Noreturn void usage(void)
{
    fputs("usage: tls-ceiling [-1] [-w] [-x PROG] -m gen|sink|echo|true [-n BYTES] CERTFILE KEYFILE HOST PORT\n",
          stderr);
    exit(100);
}

static _Noreturn void fatal(const char *what, const char *detail)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "tls-ceiling: fatal: %s%s%s%s%s\n", what, detail ? " " : "",
            detail ? detail : "", buf[0] ? ": " : "", buf);
    exit(111);
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        fatal("SSL_CTX_new", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* The best a userspace OpenSSL server does: several records per
     * read(2), as tlsserver does too. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 4 * 16384 + 512);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        fatal("certificate", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        fatal("private key", key);
    return ctx;
}

/* One full TLS 1.3 handshake between ctx and a throwaway client, through a
 * BIO pair, in this process. */
static void warm_up(SSL_CTX *ctx)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c = cctx ? SSL_new(cctx) : NULL, *s = SSL_new(ctx);
    BIO *cb = NULL, *sb = NULL;
    int cdone = 0, sdone = 0;

    if (c == NULL || s == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
        fatal("warm-up", NULL);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256");
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 100 && !(cdone && sdone); i++) {
        int rc;
        if (!cdone && (rc = SSL_do_handshake(c)) == 1)
            cdone = 1;
        else if (!cdone && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
            fatal("warm-up handshake (client)", NULL);
        if (!sdone && (rc = SSL_do_handshake(s)) == 1)
            sdone = 1;
        else if (!sdone && SSL_get_error(s, rc) != SSL_ERROR_WANT_READ)
            fatal("warm-up handshake (server)", NULL);
    }
    if (!(cdone && sdone))
        fatal("warm-up handshake did not finish", NULL);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    int fd, one = 1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "tls-ceiling: fatal: %s port %s: %s\n", host, port, gai_strerror(rc));
        exit(111);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "tls-ceiling: fatal: unable to listen on %s port %s: %s\n", host,
                port, strerror(errno));
        exit(111);
    }
    freeaddrinfo(res);
    return fd;
}

static void print_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    unsigned port = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    printf("%u\n", port);
    fflush(stdout);
}

/* Children are waited for (not ignored), so that their CPU time adds up in
 * this process's cutime/cstime, which the benchmark reads. */
static void reap(int sig)
{
    int saved = errno;

    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

static int write_all(SSL *ssl, const unsigned char *p, size_t n)
{
    while (n > 0) {
        int w = SSL_write(ssl, p, (int)n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

extern char **environ;

/* -x: PROG with /dev/null as fds 0 and 1, waited for.  0, or -1. */
static int run_app(const char *prog)
{
    char *argv[] = {(char *)prog, NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;

    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (rc == 0)
        rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* One connection, in its own process; returns the exit status. */
static int serve(SSL *ssl, enum mode mode, uint64_t bytes, const char *app)
{
    static struct stream s;
    static unsigned char buf[CEIL_BUF];
    uint64_t off = 0;

    if (SSL_accept(ssl) != 1)
        return 1;
    if (app != NULL && run_app(app) < 0)
        return 1;
    switch (mode) {
    case MODE_GEN:
        stream_init(&s);
        stream_fill(&s, 0, buf, sizeof buf);
        while (off < bytes) {
            size_t n = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
            if (off != 0)
                stream_patch(&s, off, buf, sizeof buf);
            if (write_all(ssl, buf, n) < 0)
                return 1;
            off += n;
        }
        break;
    case MODE_SINK: {
        char line[128];
        int64_t bad = -1;
        int len;
        stream_init(&s);
        while (off < bytes) {
            size_t room = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
            int n = SSL_read(ssl, buf, (int)room);
            if (n <= 0)
                break;
            if (bad < 0)
                bad = stream_check(&s, off, buf, (size_t)n);
            off += (uint64_t)n;
        }
        if (bad < 0 && bytes != UINT64_MAX && off != bytes)
            bad = (int64_t)off;
        if (bad < 0)
            len = snprintf(line, sizeof line, "bytes=%" PRIu64 " verified=yes\n", off);
        else
            len = snprintf(line, sizeof line,
                           "bytes=%" PRIu64 " verified=no bad_offset=%" PRId64 "\n", off, bad);
        if (write_all(ssl, (unsigned char *)line, (size_t)len) < 0)
            return 1;
        break;
    }
    case MODE_ECHO:
        for (;;) {
            int n = SSL_read(ssl, buf, (int)sizeof buf);
            if (n <= 0)
                break;
            if (write_all(ssl, buf, (size_t)n) < 0)
                return 1;
        }
        break;
    case MODE_TRUE:
        break;
    }
    /* close_notify, then wait (bounded) for the peer's end, so that no
     * reset destroys what was sent. */
    if (SSL_shutdown(ssl) == 0) {
        for (int i = 0; i < 1000; i++) {
            int n = SSL_read(ssl, buf, (int)sizeof buf);
            if (n <= 0)
                break;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum mode mode = MODE_TRUE;
    uint64_t bytes = UINT64_MAX;
    int c, print = 0, warm = 0, mode_set = 0, lfd;
    const char *app = NULL;
    SSL_CTX *ctx;

    while ((c = getopt(argc, argv, "1wm:n:x:")) != -1) {
        switch (c) {
        case '1': print = 1; break;
        case 'w': warm = 1; break;
        case 'x': app = optarg; break;
        case 'm':
            mode_set = 1;
            if (strcmp(optarg, "gen") == 0) mode = MODE_GEN;
            else if (strcmp(optarg, "sink") == 0) mode = MODE_SINK;
            else if (strcmp(optarg, "echo") == 0) mode = MODE_ECHO;
            else if (strcmp(optarg, "true") == 0) mode = MODE_TRUE;
            else usage();
            break;
        case 'n':
            if (stream_parse_size(optarg, &bytes) < 0)
                usage();
            break;
        default: usage();
        }
    }
    if (argc - optind != 4 || !mode_set || (mode == MODE_GEN && bytes == UINT64_MAX))
        usage();
    ctx = make_ctx(argv[optind], argv[optind + 1]);
    if (warm)
        warm_up(ctx);
    lfd = listen_on(argv[optind + 2], argv[optind + 3]);
    if (print)
        print_port(lfd);
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = reap;
        sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGCHLD, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
        pid_t pid;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 10000000}, NULL);
            continue;
        }
        pid = fork();
        if (pid == 0) {
            signal(SIGCHLD, SIG_DFL);
            struct timeval tv = {.tv_sec = 30, .tv_usec = 0};
            SSL *ssl;
            close(lfd);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (mode != MODE_ECHO) /* an idle echo connection may wait */
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            else
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){0, 0},
                           sizeof(struct timeval));
            ssl = SSL_new(ctx);
            if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
                _exit(111);
            _exit(serve(ssl, mode, bytes, app));
        }
        close(fd);
    }
}

/* relay kTLS tests.  This machine's kernel has no CONFIG_TLS, so the
 * splice path is driven through the test seams (relay_internal.h): both
 * directions are forced to "offloaded" and splice() is replaced by a fake
 * kernel that does what kTLS would, with the relay's own SSL object as its
 * record layer:
 *   socket -> pipe: decrypts one record (SSL_read) and writes the plaintext
 *     to the app's pipe, never more than the pipe takes without blocking
 *     (the rest is kept for the next call, as the kernel keeps a partly
 *     spliced record); EAGAIN when no record is complete or the pipe is
 *     full; EINVAL or EIO every few records "because a control record is
 *     next", EINVAL at close_notify, 0 at a bare EOF;
 *   pipe -> socket: EAGAIN when the socket is full or the pipe empty, 0 at
 *     the pipe's EOF, else reads the pipe and encrypts it all (SSL_write,
 *     waiting on WANT_WRITE: it is a fake).
 * A real TLS client (forked) on a socketpair and a forked app on the pipes,
 * as in test_pump.c.  Checks: 8 MiB each way with checksums, the forced
 * fallbacks happened and were counted, close_notify and bare EOF (strict and
 * lenient) through the fake, the app hanging up, a full app pipe and a
 * socket that polls ready but will not splice, both without a busy loop;
 * and that with cfg.ktls but no offload the userspace path runs untouched.
 * Also the probe against what /proc says of this kernel. */
#include "check.h"
#include "relay.h"
#include "tls_fixture.h"
#include "relay_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>








/* ---- the fake kernel (runs in the relay's process) ---- */

static struct {
    SSL *ssl;            /* the relay's SSL: the "kernel's" record layer */
    int control_every;   /* rx: every Nth record "is a control record" */
    int lie_ms;          /* rx: EAGAIN although both ends are ready, this long */
    long long lie_start;
    unsigned char carry[16384]; /* a record the pipe took only part of */
    size_t carry_off, carry_len;
    unsigned rx_records;
    /* what happened */
    unsigned calls_rx, calls_tx, bad_args;
    unsigned forced_einval, forced_eio, close_notify_einval, eof_zero;
    unsigned eagain_pipe_full, eagain_no_record, eagain_sock_full, eagain_pipe_empty;
    unsigned epipe, lies;
    uint64_t bytes_rx;   /* plaintext the fake delivered to the app's pipe */
} fake;

/* Read-ahead on the relay's SSL: OpenSSL then holds whole records that
 * the relay must take (SSL_has_pending) before splicing again. */
static int server_read_ahead;

static void fake_reset(SSL *ssl, int control_every, int lie_ms)
{
    memset(&fake, 0, sizeof fake);
    fake.ssl = ssl;
    fake.control_every = control_every;
    fake.lie_ms = lie_ms;
}

static int ready(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev, .revents = 0};
    return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

/* kTLS receive: socket -> pipe. */
static ssize_t fake_rx(int sock, int pipe_fd, size_t len)
{
    unsigned char tmp[16384];
    ssize_t n, w;
    int e, pr;

    fake.calls_rx++;
    /* The rest of a record the pipe could not take goes first. */
    if (fake.carry_len > 0) {
        size_t k = fake.carry_len < len ? fake.carry_len : len;
        w = write(pipe_fd, fake.carry + fake.carry_off, k);
        if (w < 0) {
            if (errno == EAGAIN)
                fake.eagain_pipe_full++;
            if (errno == EPIPE)
                fake.epipe++;
            return -1;
        }
        fake.carry_off += (size_t)w;
        fake.carry_len -= (size_t)w;
        fake.bytes_rx += (uint64_t)w;
        return w;
    }
    pr = ready(pipe_fd, POLLOUT);
    if (pr & POLLERR) {
        fake.epipe++;
        errno = EPIPE;
        return -1;
    }
    if (fake.lie_ms > 0) {
        if (fake.lie_start == 0)
            fake.lie_start = now_ms();
        if (now_ms() < fake.lie_start + fake.lie_ms && (pr & POLLOUT) &&
            (ready(sock, POLLIN) & POLLIN)) {
            fake.lies++;
            errno = EAGAIN;
            return -1;
        }
    }
    if (!(pr & POLLOUT)) {
        fake.eagain_pipe_full++;
        errno = EAGAIN;
        return -1;
    }
    /* Nothing decrypted and nothing on the socket: EAGAIN, or 0 at EOF
     * (the kernel sees the EOF without OpenSSL). */
    if (!SSL_has_pending(fake.ssl)) {
        char c;
        n = recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            fake.eof_zero++;
            return 0;
        }
        if (n < 0) {
            if (errno == EAGAIN)
                fake.eagain_no_record++;
            return -1;
        }
    }
    /* "A control record is next": the relay must read it with SSL_read
     * (here it reads the next data record that way, which is just as
     * good a test of the fallback). */
    if (fake.control_every > 0 && ++fake.rx_records % (unsigned)fake.control_every == 0) {
        if ((fake.forced_einval + fake.forced_eio) % 2 == 0) {
            fake.forced_einval++;
            errno = EINVAL;
        } else {
            fake.forced_eio++;
            errno = EIO;
        }
        return -1;
    }
    n = SSL_read(fake.ssl, tmp, (int)(len < sizeof tmp ? len : sizeof tmp));
    if (n > 0) {
        w = write(pipe_fd, tmp, (size_t)n);
        if (w < 0 && errno == EAGAIN)
            w = 0; /* polled writable: does not happen; kept as carry */
        if (w < 0) {
            if (errno == EPIPE)
                fake.epipe++;
            return -1;
        }
        memcpy(fake.carry, tmp + w, (size_t)(n - w));
        fake.carry_off = 0;
        fake.carry_len = (size_t)(n - w);
        if (w == 0) {
            errno = EAGAIN;
            return -1;
        }
        fake.bytes_rx += (uint64_t)w;
        return w;
    }
    e = SSL_get_error(fake.ssl, (int)n);
    if (e == SSL_ERROR_WANT_READ) {
        fake.eagain_no_record++;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        /* close_notify: the kernel leaves the alert queued and refuses to
         * splice it (OpenSSL remembers it here, so the relay's SSL_read
         * sees it all the same) */
        fake.close_notify_einval++;
        errno = EINVAL;
        return -1;
    }
    errno = EIO;
    return -1;
}

/* kTLS send: pipe -> socket. */
static ssize_t fake_tx(int pipe_fd, int sock, size_t len)
{
    unsigned char tmp[65536];
    ssize_t n;
    size_t off = 0;

    fake.calls_tx++;
    if (!(ready(sock, POLLOUT) & POLLOUT)) {
        fake.eagain_sock_full++;
        errno = EAGAIN;
        return -1;
    }
    n = read(pipe_fd, tmp, len < sizeof tmp ? len : sizeof tmp);
    if (n < 0 && errno == EAGAIN)
        fake.eagain_pipe_empty++;
    if (n <= 0)
        return n;
    while (off < (size_t)n) {
        int k = SSL_write(fake.ssl, tmp + off, (int)((size_t)n - off));
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (SSL_get_error(fake.ssl, k) == SSL_ERROR_WANT_WRITE) {
            struct pollfd p = {.fd = sock, .events = POLLOUT, .revents = 0};
            poll(&p, 1, 5000);
            continue;
        }
        ERR_clear_error();
        errno = EPIPE;
        return -1;
    }
    return n;
}

static ssize_t fake_splice(int in, loff_t *off_in, int out, loff_t *off_out,
                           size_t len, unsigned int flags)
{
    struct stat sb;

    /* what the relay must pass: no offsets, never blocking */
    if (off_in != NULL || off_out != NULL || len == 0 ||
        flags != (SPLICE_F_NONBLOCK | SPLICE_F_MOVE) || fstat(in, &sb) < 0) {
        fake.bad_args++;
        errno = EINVAL;
        return -1;
    }
    return S_ISSOCK(sb.st_mode) ? fake_rx(in, out, len) : fake_tx(in, out, len);
}

/* ---- client side (child process) ---- */

enum client_mode {
    C_UPLOAD,       /* send N, close_notify, read 8-byte checksum, expect EOF */
    C_DOWNLOAD,     /* read to close_notify, check N + checksum, close_notify */
    C_SEND_AND_HOLD,/* handshake, send N, then wait to be closed */
    C_BARE_EOF,     /* handshake, send a little, TCP half-close without close_notify */
    C_SMALL_READ,   /* send 1 KiB, read "bye", expect EOF */
};

static int client(int fd, enum client_mode mode, size_t n)
{
    SSL *s = SSL_new(client_ctx);
    unsigned char buf[16384];
    uint64_t h = FNV_INIT;
    size_t got = 0;
    int r;

    SSL_set_fd(s, fd);
    if (SSL_connect(s) != 1)
        return 10;
    switch (mode) {
    case C_UPLOAD:
    case C_SEND_AND_HOLD:
    case C_SMALL_READ:
        for (size_t done = 0; done < n;) {
            size_t k = n - done < sizeof buf ? n - done : sizeof buf;
            for (size_t i = 0; i < k; i++)
                buf[i] = stream_byte(done + i);
            if (SSL_write(s, buf, (int)k) != (int)k)
                return mode == C_SEND_AND_HOLD ? 0 : 11;
            done += k;
        }
        if (mode == C_SEND_AND_HOLD) {
            pause();
            return 0;
        }
        if (mode == C_UPLOAD && SSL_shutdown(s) < 0)
            return 12;
        while ((r = SSL_read(s, buf + got, (int)(sizeof buf - got))) > 0)
            got += (size_t)r;
        if (SSL_get_error(s, r) != SSL_ERROR_ZERO_RETURN)
            return 13;
        if (mode == C_SMALL_READ)
            return got == 3 && memcmp(buf, "bye", 3) == 0 ? 0 : 14;
        {
            uint64_t want = expected_sum(n);
            return got == 8 && memcmp(buf, &want, 8) == 0 ? 0 : 15;
        }
    case C_DOWNLOAD:
        while ((r = SSL_read(s, buf, sizeof buf)) > 0) {
            for (int i = 0; i < r; i++)
                if (buf[i] != stream_byte(got + (size_t)i))
                    return 20;
            h = fnv(h, buf, (size_t)r);
            got += (size_t)r;
        }
        if (SSL_get_error(s, r) != SSL_ERROR_ZERO_RETURN)
            return 21;
        if (got != n || h != expected_sum(n))
            return 22;
        return SSL_shutdown(s) >= 0 ? 0 : 23;
    case C_BARE_EOF:
        if (SSL_write(s, "abc", 3) != 3)
            return 30;
        if (shutdown(fd, SHUT_WR) < 0)
            return 31;
        while (SSL_read(s, buf, sizeof buf) > 0)
            ;
        return 0;
    }
    return 99;
}

/* ---- app side (child process) ---- */

enum app_mode {
    A_SUM,      /* read to EOF, check the stream, write the 8-byte checksum */
    A_SOURCE,   /* write N bytes, close, then read to EOF */
    A_SLEEP,    /* read nothing for a long time */
    A_HANGUP,   /* close its read side at once, write "bye", exit */
    A_DRAIN,    /* read to EOF */
};

static int app(int in, int out, enum app_mode mode, size_t n)
{
    unsigned char buf[65536];
    uint64_t h = FNV_INIT, got = 0;
    ssize_t r;

    switch (mode) {
    case A_SUM:
        while ((r = read(in, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != stream_byte(got + (uint64_t)i))
                    return 4; /* reordered or corrupted on the way */
            h = fnv(h, buf, (size_t)r);
            got += (uint64_t)r;
        }
        return r == 0 && write_full(out, &h, 8) == 0 ? 0 : 1;
    case A_SOURCE:
        for (size_t done = 0; done < n;) {
            size_t k = n - done < sizeof buf ? n - done : sizeof buf;
            for (size_t i = 0; i < k; i++)
                buf[i] = stream_byte(done + i);
            if (write_full(out, buf, k) < 0)
                return 2;
            done += k;
        }
        close(out);
        while ((r = read(in, buf, sizeof buf)) > 0)
            ;
        return 0;
    case A_SLEEP:
        sleep(30);
        return 0;
    case A_HANGUP:
        close(in);
        return write_full(out, "bye", 3) == 0 ? 0 : 3;
    case A_DRAIN:
        while ((r = read(in, buf, sizeof buf)) > 0)
            ;
        return 0;
    }
    return 9;
}

struct outcome {
    int handshake, pump;
    struct relay_stats st;
    int client_status, app_status;
    long long ms;
    double cpu;
};

/* force: 1 = splice both ways through the fake; 0 = cfg.ktls set and
 * SSL_OP_ENABLE_KTLS on, but the BIOs decide (a socketpair: no kTLS). */
static void run(enum client_mode cm, size_t cn, enum app_mode am, size_t an,
                long opts, int idle_ms, int force, int kill_children,
                struct outcome *o)
{
    int sv[2], down[2], up[2];
    pid_t cp, ap;
    struct relay *r;
    SSL *s;
    char err[256] = "";
    long long t0 = now_ms();
    clock_t c0;

    memset(o, 0, sizeof *o);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
        abort();
    cp = fork();
    if (cp == 0) {
        close(sv[0]);
        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        _exit(client(sv[1], cm, cn));
    }
    close(sv[1]);
    ap = fork();
    if (ap == 0) {
        close(sv[0]);
        close(down[1]);
        close(up[0]);
        _exit(app(down[0], up[1], am, an));
    }
    close(down[0]);
    close(up[1]);

    struct relay_config cfg = {
        .net_rfd = sv[0], .net_wfd = sv[0],
        .from_app_fd = up[0], .to_app_fd = down[1],
        .idle_timeout_ms = idle_ms,
        .ktls = 1,
    };
    r = relay_new(&cfg);
    s = SSL_new(server_ctx);
    SSL_set_options(s, (uint64_t)opts | (force ? 0 : SSL_OP_ENABLE_KTLS));
    SSL_set_fd(s, sv[0]);
    SSL_set_read_ahead(s, server_read_ahead);
    if (force)
        relay_test_force_ktls(r, 1, 1);
    fake.ssl = s;
    o->handshake = relay_handshake(r, s, 5000, err, sizeof err);
    c0 = clock();
    if (o->handshake == RELAY_DONE)
        o->pump = relay_pump(r, s, &o->st, err, sizeof err);
    else
        o->pump = 1;
    o->cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (err[0])
        fprintf(stderr, "  relay says: %s (to app %llu, to peer %llu)\n", err,
                (unsigned long long)o->st.bytes_to_app,
                (unsigned long long)o->st.bytes_to_peer);
    o->ms = now_ms() - t0;
    SSL_free(s);
    fake.ssl = NULL;
    relay_free(r);
    close(sv[0]);
    if (kill_children) {
        kill(cp, SIGKILL);
        kill(ap, SIGKILL);
    }
    waitpid(cp, &o->client_status, 0);
    waitpid(ap, &o->app_status, 0);
}

static int exited(int status, int code)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Whether the kernel lists "tls" among the TCP ULPs it has loaded. */
static int ulp_listed(void)
{
    char buf[512];
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    int found = 0;

    if (f == NULL)
        return -1;
    while (fscanf(f, "%511s", buf) == 1)
        found |= strcmp(buf, "tls") == 0;
    fclose(f);
    return found;
}

static void report(const char *what, const struct outcome *o)
{
    fprintf(stderr,
            "  %s: %lld ms, cpu %.3f s; fake rx %u tx %u calls, control %u+%u, "
            "close_notify %u, eof %u, eagain pipe-full %u no-record %u sock-full %u "
            "pipe-empty %u, lies %u; relay counted %llu control records\n",
            what, o->ms, o->cpu, fake.calls_rx, fake.calls_tx, fake.forced_einval,
            fake.forced_eio, fake.close_notify_einval, fake.eof_zero,
            fake.eagain_pipe_full, fake.eagain_no_record, fake.eagain_sock_full,
            fake.eagain_pipe_empty, fake.lies,
            (unsigned long long)o->st.ktls_rx_control);
}

int main(void)
{
    struct outcome o;

    signal(SIGPIPE, SIG_IGN);
    make_contexts();
    relay_test_set_splice(fake_splice);

    /* The probe agrees with the kernel and leaves no fd behind.  (A kernel
     * that accepts the ULP has the module loaded afterwards, so lists it.) */
    {
        int fds = count_fds();
        int probe = relay_ktls_probe();
        int listed = ulp_listed();
        fprintf(stderr, "  probe: kTLS %s (tcp_available_ulp %s tls)\n",
                probe ? "available" : "not available", listed ? "lists" : "does not list");
        CHECK(probe == 0 || probe == 1);
        CHECK(listed < 0 || probe == listed);
        CHECK(count_fds() == fds);
    }

    /* cfg.ktls with SSL_OP_ENABLE_KTLS, but nothing offloaded (a socketpair;
     * on this kernel, any socket): the userspace path, splice never called */
    fake_reset(NULL, 0, 0);
    run(C_UPLOAD, 1 * MIB, A_SUM, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 0, 0, &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.ktls_tx == 0 && o.st.ktls_rx == 0);
    CHECK(o.st.bytes_to_app == 1 * MIB);
    CHECK(fake.calls_rx == 0 && fake.calls_tx == 0);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));

    /* upload 8 MiB by splice, a control record every 7 data records, the
     * client's close_notify through the fallback; the app's checksum goes
     * back by splice */
    fake_reset(NULL, 7, 0);
    run(C_UPLOAD, 8 * MIB, A_SUM, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    report("upload", &o);
    CHECK(o.handshake == RELAY_DONE);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.ktls_tx == 1 && o.st.ktls_rx == 1);
    CHECK(o.st.bytes_to_app == 8 * MIB);
    CHECK(o.st.bytes_to_peer == 8);
    CHECK(o.st.peer_closed == 1);
    CHECK(exited(o.client_status, 0)); /* the app's checksum matched */
    CHECK(exited(o.app_status, 0));    /* every byte in order */
    CHECK(fake.forced_einval > 10 && fake.forced_eio > 10);
    CHECK(fake.close_notify_einval == 1);
    CHECK(o.st.ktls_rx_control ==
          fake.forced_einval + fake.forced_eio + fake.close_notify_einval);
    CHECK(fake.calls_tx > 0);
    CHECK(fake.bad_args == 0);

    /* the same with read-ahead: records OpenSSL already holds go to the app
     * by SSL_read, before and between splices, in order */
    fake_reset(NULL, 7, 0);
    server_read_ahead = 1;
    run(C_UPLOAD, 8 * MIB, A_SUM, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    server_read_ahead = 0;
    report("upload, read-ahead", &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_app == 8 * MIB);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));
    CHECK(fake.bytes_rx > 0 && fake.bytes_rx < 8 * MIB);
    fprintf(stderr, "  read-ahead: %llu bytes spliced, %llu by SSL_read\n",
            (unsigned long long)fake.bytes_rx,
            (unsigned long long)(o.st.bytes_to_app - fake.bytes_rx));

    /* download 8 MiB by splice, the app half-closes first: close_notify
     * (SSL_shutdown), then the client's close_notify comes back by the
     * fallback */
    fake_reset(NULL, 7, 0);
    run(C_DOWNLOAD, 8 * MIB, A_SOURCE, 8 * MIB, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    report("download", &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_peer == 8 * MIB);
    CHECK(o.st.peer_closed == 1);
    CHECK(exited(o.client_status, 0)); /* content and checksum */
    CHECK(exited(o.app_status, 0));
    CHECK(fake.calls_tx > 8 * MIB / 65536 - 1);
    CHECK(fake.close_notify_einval == 1);
    CHECK(fake.bad_args == 0);

    /* a bare EOF is 0 from splice: lenient by default, an error when
     * strict; what came before it reaches the app either way */
    fake_reset(NULL, 0, 0);
    run(C_BARE_EOF, 0, A_DRAIN, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    report("bare EOF, lenient", &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_app == 3);
    CHECK(fake.eof_zero >= 1);
    CHECK(exited(o.app_status, 0));
    fake_reset(NULL, 0, 0);
    run(C_BARE_EOF, 0, A_DRAIN, 0, 0, 10000, 1, 0, &o);
    report("bare EOF, strict", &o);
    CHECK(o.pump == RELAY_ERR_TRUNCATED);
    CHECK(o.st.bytes_to_app == 3);
    CHECK(fake.eof_zero >= 1);
    CHECK(exited(o.app_status, 0));

    /* the app closes its read side at once: splice meets EPIPE, its answer
     * still goes out by splice */
    fake_reset(NULL, 0, 0);
    run(C_SMALL_READ, 1024, A_HANGUP, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    report("app hangs up", &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_peer == 3);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));

    /* backpressure: the app never reads, its pipe fills, splice says
     * EAGAIN; the relay waits on the pipe alone until the idle timeout,
     * without spinning (few splice calls, little CPU) */
    fake_reset(NULL, 0, 0);
    run(C_SEND_AND_HOLD, 4 * MIB, A_SLEEP, 0, 0, 500, 1, 1, &o);
    report("app pipe full", &o);
    CHECK(o.pump == RELAY_ERR_TIMEOUT);
    CHECK(o.ms >= 500 && o.ms < 10000);
    CHECK(fake.eagain_pipe_full >= 1);
    CHECK(fake.calls_rx < 200);
    CHECK(o.cpu < 0.2);

    /* a socket that polls readable while splice says EAGAIN for 300 ms
     * (a half record on an old kernel): a few retries, then a timer, not a
     * busy loop; then everything arrives */
    fake_reset(NULL, 0, 300);
    run(C_UPLOAD, 1 * MIB, A_SUM, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 10000, 1, 0, &o);
    report("socket ready, splice EAGAIN", &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_app == 1 * MIB);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));
    CHECK(fake.lies >= 10 && fake.lies < 300);
    CHECK(o.ms >= 300);
    CHECK(o.cpu < 0.25);

    relay_test_set_splice(NULL);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return check_done("test_ktls");
}

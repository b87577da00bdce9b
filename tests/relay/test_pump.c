/* relay unit tests: a real TLS client (forked, OpenSSL) on one end of a
 * socketpair, the relay on the other, and a forked "app" on the pipes.
 * Checks bytes and checksums each way, half-close in both directions, the
 * app vanishing, strict and lenient EOF, and both timeouts. */
#include "check.h"
#include "relay.h"
#include "tls_fixture.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- client side (child process) ---- */

enum client_mode {
    C_UPLOAD,       /* send N, close_notify, read 8-byte checksum, expect EOF */
    C_DOWNLOAD,     /* read to close_notify, check N + checksum, close_notify */
    C_SILENT,       /* connect, never send (handshake timeout) */
    C_SEND_AND_HOLD,/* handshake, send N, then wait to be closed */
    C_BARE_EOF,     /* handshake, send a little, TCP half-close without close_notify */
    C_SMALL_READ,   /* send 1 KiB, read "bye", expect EOF */
    C_SLOW_READ,    /* read N bytes 2 KiB at a time, 40 ms apart, check them */
};

static int client(int fd, enum client_mode mode, size_t n)
{
    SSL *s = SSL_new(client_ctx);
    unsigned char buf[16384];
    uint64_t h = FNV_INIT;
    size_t got = 0;
    int r;

    if (mode == C_SILENT) {
        pause();
        return 0;
    }
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
    case C_SLOW_READ:
        while (got < n) {
            r = SSL_read(s, buf, 2048);
            if (r <= 0)
                return 40;
            for (int i = 0; i < r; i++)
                if (buf[i] != stream_byte(got + (size_t)i))
                    return 41;
            got += (size_t)r;
            usleep(40000);
        }
        return 0;
    case C_BARE_EOF:
        if (SSL_write(s, "abc", 3) != 3)
            return 30;
        /* end our direction at the TCP level, with no close_notify, then
         * read whatever the server still sends until it closes */
        if (shutdown(fd, SHUT_WR) < 0)
            return 31;
        while (SSL_read(s, buf, sizeof buf) > 0)
            ;
        return 0;
    case C_SILENT:
        break;
    }
    return 99;
}

/* ---- app side (child process) ---- */

enum app_mode {
    A_SUM,      /* read to EOF, write the 8-byte checksum, exit */
    A_SOURCE,   /* write N bytes, close, then read to EOF */
    A_SLEEP,    /* read nothing for a long time */
    A_HANGUP,   /* close its read side at once, write "bye", exit */
    A_DRAIN,    /* read to EOF */
    A_SOURCE_HOLD, /* write N bytes, then hold its pipes open, silent */
};

static int app(int in, int out, enum app_mode mode, size_t n)
{
    unsigned char buf[65536];
    uint64_t h = FNV_INIT;
    ssize_t r;

    switch (mode) {
    case A_SUM:
        while ((r = read(in, buf, sizeof buf)) > 0)
            h = fnv(h, buf, (size_t)r);
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
    case A_SOURCE_HOLD:
        for (size_t i = 0; i < n; i++)
            buf[i] = stream_byte(i);
        if (write_full(out, buf, n) < 0)
            return 4;
        sleep(30);
        return 0;
    }
    return 9;
}

/* run(): SO_SNDBUF of the relay's socket, 0 for the default */
static int relay_sndbuf;

/* relay_config.on_idle: how often the pump said it was idle */
static int idle_calls;
static void count_idle(void *arg)
{
    (void)arg;
    idle_calls++;
}

struct outcome {
    int handshake, pump;
    struct relay_stats st;
    int client_status, app_status;
    long long ms;
};

static void run(enum client_mode cm, size_t cn, enum app_mode am, size_t an,
                long opts, int hs_timeout, int idle_ms, int kill_children,
                struct outcome *o)
{
    int sv[2], down[2], up[2];
    pid_t cp, ap;
    struct relay *r;
    SSL *s;
    char err[256] = "";
    long long t0 = now_ms();

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
    if (relay_sndbuf > 0)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &relay_sndbuf, sizeof relay_sndbuf);

    struct relay_config cfg = {
        .net_rfd = sv[0], .net_wfd = sv[0],
        .from_app_fd = up[0], .to_app_fd = down[1],
        .idle_timeout_ms = idle_ms,
        .on_idle = count_idle,
    };
    idle_calls = 0;
    r = relay_new(&cfg);
    s = SSL_new(server_ctx);
    SSL_set_options(s, (uint64_t)opts);
    SSL_set_fd(s, sv[0]);
    o->handshake = relay_handshake(r, s, hs_timeout, err, sizeof err);
    if (o->handshake == RELAY_DONE)
        o->pump = relay_pump(r, s, &o->st, err, sizeof err);
    else
        o->pump = 1;
    if (err[0])
        fprintf(stderr, "  relay says: %s (to app %llu, to peer %llu)\n", err,
                (unsigned long long)o->st.bytes_to_app,
                (unsigned long long)o->st.bytes_to_peer);
    o->ms = now_ms() - t0;
    SSL_free(s);
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

int main(void)
{
    struct outcome o;

    signal(SIGPIPE, SIG_IGN);
    make_contexts();

    /* upload 8 MiB, client half-closes with close_notify, app answers */
    run(C_UPLOAD, 8 * MIB, A_SUM, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 5000, 10000, 0, &o);
    CHECK(o.handshake == RELAY_DONE);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_app == 8 * MIB);
    CHECK(o.st.bytes_to_peer == 8);
    CHECK(o.st.peer_closed == 1);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));

    /* download 8 MiB, app half-closes first, client reads to close_notify */
    run(C_DOWNLOAD, 8 * MIB, A_SOURCE, 8 * MIB, SSL_OP_IGNORE_UNEXPECTED_EOF, 5000, 10000, 0, &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_peer == 8 * MIB);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));

    /* the app closes its read side at once: its answer still arrives */
    run(C_SMALL_READ, 1024, A_HANGUP, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 5000, 10000, 0, &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_peer == 3);
    CHECK(exited(o.client_status, 0));
    CHECK(exited(o.app_status, 0));

    /* a bare EOF: lenient by default, an error when strict */
    run(C_BARE_EOF, 0, A_DRAIN, 0, SSL_OP_IGNORE_UNEXPECTED_EOF, 5000, 10000, 0, &o);
    CHECK(o.pump == RELAY_DONE);
    CHECK(o.st.bytes_to_app == 3);
    CHECK(exited(o.app_status, 0));
    run(C_BARE_EOF, 0, A_DRAIN, 0, 0, 5000, 10000, 0, &o);
    CHECK(o.pump == RELAY_ERR_TRUNCATED);
    CHECK(exited(o.app_status, 0)); /* the app sees EOF all the same */

    /* handshake timeout: a client that never speaks */
    run(C_SILENT, 0, A_DRAIN, 0, 0, 300, 10000, 1, &o);
    CHECK(o.handshake == RELAY_ERR_TIMEOUT);
    CHECK(o.ms >= 300 && o.ms < 5000);

    /* idle timeout with backpressure: the app never reads, the pipe fills,
     * nothing moves, the relay gives up (and does not spin meanwhile) */
    {
        clock_t c0 = clock();
        run(C_SEND_AND_HOLD, 4 * MIB, A_SLEEP, 0, 0, 5000, 500, 1, &o);
        double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
        CHECK(o.pump == RELAY_ERR_TIMEOUT);
        CHECK(o.ms >= 500 && o.ms < 10000);
        CHECK(cpu < 0.4); /* a busy loop would burn the whole wait */
        CHECK(idle_calls == 0); /* a timeout shorter than RELAY_IDLE_MS */
        fprintf(stderr, "  idle case: %lld ms wall, %.3f s cpu\n", o.ms, cpu);
    }

    /* a reply the client reads slowly, through a small socket buffer:
     * records leaving the relay's buffer are progress, so the idle timeout
     * (0.8 s) must not cut the reply, though draining it takes ~1.3 s and
     * nothing else moves meanwhile */
    relay_sndbuf = 4096;
    run(C_SLOW_READ, 65536, A_SOURCE_HOLD, 65536, 0, 5000, 800, 1, &o);
    relay_sndbuf = 0;
    CHECK(exited(o.client_status, 0));
    CHECK(o.st.bytes_to_peer == 65536);
    CHECK(o.pump == RELAY_ERR_TRUNCATED); /* then the client just closes (strict) */

    /* idle longer than RELAY_IDLE_MS: on_idle once for the idle spell (not
     * once per wait), then the idle timeout still ends it on time */
    run(C_SEND_AND_HOLD, 1024, A_SLEEP, 0, 0, 5000, RELAY_IDLE_MS + 1500, 1, &o);
    CHECK(o.pump == RELAY_ERR_TIMEOUT);
    CHECK(idle_calls == 1);
    CHECK(o.ms >= RELAY_IDLE_MS + 1500 && o.ms < 15000);

    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return check_done("test_pump");
}

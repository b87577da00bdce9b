/* tlsbench: the measurements on one connection: download, upload, echo. */
#include "stream.h"
#include "tlsbench.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads and writes of several records at a time. */
#define DATA_BUF (4 * STREAM_CHUNK)

static double mib(uint64_t n)
{
    return (double)n / (1024.0 * 1024.0);
}

/* The result lines of a transfer. */
static void report_bulk(const struct tb_client *c, const struct tb_conn *conn,
                        const char *mode, uint64_t bytes, double secs, int verified,
                        const char *why, int close_notify)
{
    char human[512], machine[768];
    double rate = secs > 0 ? (double)bytes / secs : 0;

    snprintf(human, sizeof human, "%s: %" PRIu64 " bytes (%.1f MiB) in %.3f s = %.3f GB/s "
             "(%.1f MiB/s), %s%s%s; handshake %.2f ms, %s %s",
             mode, bytes, mib(bytes), secs, rate / 1e9, rate / (1024.0 * 1024.0),
             verified ? "verified (length and every byte)" : "NOT VERIFIED",
             why[0] ? ": " : "", why, conn->handshake_ms, SSL_get_version(conn->ssl),
             SSL_get_cipher_name(conn->ssl));
    snprintf(machine, sizeof machine,
             "mode=%s bytes=%" PRIu64 " seconds=%.6f bytes_per_sec=%.0f gbps=%.4f "
             "verified=%s close_notify=%s handshake_ms=%.3f protocol=%s cipher=%s",
             mode, bytes, secs, rate, rate / 1e9, verified ? "yes" : "no",
             close_notify < 0 ? "n/a" : close_notify ? "yes" : "no", conn->handshake_ms,
             SSL_get_version(conn->ssl), SSL_get_cipher_name(conn->ssl));
    tb_report(c->opt, human, machine);
}

static void progress_bulk(struct tb_progress *p, const char *mode, uint64_t done,
                          uint64_t total)
{
    double el = tb_now() - p->start;

    tb_progress_print(p, "%s %.0f / %.0f MiB (%.0f%%), %.1f MiB/s", mode, mib(done),
                      mib(total), total ? 100.0 * (double)done / (double)total : 0.0,
                      el > 0 ? mib(done) / el : 0.0);
}

int tb_download(const struct tb_client *c)
{
    static struct stream s;
    static unsigned char buf[DATA_BUF];
    const struct tb_options *opt = c->opt;
    struct tb_conn conn;
    struct tb_progress prog;
    char err[TB_ERRLEN], why[128] = "";
    uint64_t got = 0;
    int64_t bad = -1;
    int close_notify, verified;
    double t0, secs;

    stream_init(&s);
    if (tb_open(c, NULL, &conn, err, sizeof err) < 0) {
        fprintf(stderr, "tlsbench: %s\n", err);
        return TB_EXIT_CONNECT;
    }
    t0 = tb_now();
    tb_progress_start(&prog);
    for (;;) {
        int n, e;

        ERR_clear_error();
        errno = 0;
        n = SSL_read(conn.ssl, buf, (int)sizeof buf);
        if (n > 0) {
            if (bad < 0)
                bad = stream_check(&s, got, buf, (size_t)n);
            got += (uint64_t)n;
            if (tb_progress_due(opt, &prog))
                progress_bulk(&prog, "download", got, opt->count);
            continue;
        }
        e = SSL_get_error(conn.ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
            close_notify = 1;
            break;
        }
        if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_last_error()) ==
                                      SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            close_notify = 0; /* a bare EOF: the length check decides */
            ERR_clear_error();
            break;
        }
        tb_progress_end(&prog);
        tb_ssl_reason(conn.ssl, n, "download", err, sizeof err);
        fprintf(stderr, "tlsbench: %s (after %" PRIu64 " of %" PRIu64 " bytes)\n", err, got,
                opt->count);
        tb_close(&conn, 0);
        return TB_EXIT_CONNECT;
    }
    secs = tb_now() - t0;
    tb_progress_end(&prog);
    if (bad >= 0)
        snprintf(why, sizeof why, "content differs at offset %" PRId64, bad);
    else if (got != opt->count)
        snprintf(why, sizeof why, "%" PRIu64 " bytes arrived, %" PRIu64 " expected", got,
                 opt->count);
    verified = why[0] == '\0';
    report_bulk(c, &conn, "download", got, secs, verified, why, close_notify);
    tb_close(&conn, 1);
    return verified ? TB_EXIT_OK : TB_EXIT_VERIFY;
}

/* The sink's report "bytes=N verified=yes|no ...": 0 when it says that all
 * want bytes arrived intact, else -1 with a reason. */
static int check_report(const char *rep, uint64_t want, char *why, size_t whylen)
{
    const char *b = strstr(rep, "bytes=");
    char *end;
    unsigned long long n;

    if (b == NULL || b[6] < '0' || b[6] > '9') {
        snprintf(why, whylen, "unexpected report from the server: %.60s", rep);
        return -1;
    }
    errno = 0;
    n = strtoull(b + 6, &end, 10);
    if (errno != 0 || (*end != ' ' && *end != '\r' && *end != '\n')) {
        snprintf(why, whylen, "unexpected report from the server: %.60s", rep);
        return -1;
    }
    if (n != want) {
        snprintf(why, whylen, "the sink got %llu bytes, %" PRIu64 " were sent", n, want);
        return -1;
    }
    if (strstr(rep, "verified=yes") == NULL) {
        snprintf(why, whylen, "the sink reports different content: %.80s", rep);
        return -1;
    }
    return 0;
}

int tb_upload(const struct tb_client *c)
{
    static struct stream s;
    static unsigned char buf[DATA_BUF];
    const struct tb_options *opt = c->opt;
    struct tb_conn conn;
    struct tb_progress prog;
    char err[TB_ERRLEN], why[160] = "", rep[256] = "";
    size_t rl = 0;
    uint64_t off = 0;
    double t0, secs;
    int verified;

    stream_init(&s);
    stream_fill(&s, 0, buf, sizeof buf);
    if (tb_open(c, NULL, &conn, err, sizeof err) < 0) {
        fprintf(stderr, "tlsbench: %s\n", err);
        return TB_EXIT_CONNECT;
    }
    t0 = tb_now();
    tb_progress_start(&prog);
    while (off < opt->count) {
        size_t n = opt->count - off < sizeof buf ? (size_t)(opt->count - off) : sizeof buf;
        size_t done = 0;

        if (off != 0)
            stream_patch(&s, off, buf, sizeof buf);
        while (done < n) {
            int w;
            ERR_clear_error();
            errno = 0;
            w = SSL_write(conn.ssl, buf + done, (int)(n - done));
            if (w <= 0) {
                tb_progress_end(&prog);
                tb_ssl_reason(conn.ssl, w, "upload", err, sizeof err);
                fprintf(stderr, "tlsbench: %s (after %" PRIu64 " of %" PRIu64 " bytes)\n",
                        err, off + done, opt->count);
                tb_close(&conn, 0);
                return TB_EXIT_CONNECT;
            }
            done += (size_t)w;
        }
        off += n;
        if (tb_progress_due(opt, &prog))
            progress_bulk(&prog, "upload", off, opt->count);
    }
    /* The transfer ends when the application reports that it has it all. */
    while (memchr(rep, '\n', rl) == NULL && rl < sizeof rep - 1) {
        int n;
        ERR_clear_error();
        errno = 0;
        n = SSL_read(conn.ssl, rep + rl, (int)(sizeof rep - 1 - rl));
        if (n <= 0) {
            tb_progress_end(&prog);
            tb_ssl_reason(conn.ssl, n, "waiting for the sink's report", err, sizeof err);
            fprintf(stderr, "tlsbench: %s (is the application bench-sink?)\n", err);
            tb_close(&conn, 0);
            return TB_EXIT_CONNECT;
        }
        rl += (size_t)n;
    }
    secs = tb_now() - t0;
    tb_progress_end(&prog);
    rep[rl] = '\0';
    verified = check_report(rep, opt->count, why, sizeof why) == 0;
    report_bulk(c, &conn, "upload", off, secs, verified, why, -1);
    tb_close(&conn, 1);
    return verified ? TB_EXIT_OK : TB_EXIT_VERIFY;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One byte there and back; returns the round trip in microseconds or -1. */
static double ping(struct tb_conn *conn, char *err, size_t errlen)
{
    unsigned char out = 'x', in[16];
    double t0 = tb_now();
    int n;

    ERR_clear_error();
    errno = 0;
    n = SSL_write(conn->ssl, &out, 1);
    if (n != 1) {
        tb_ssl_reason(conn->ssl, n, "echo write", err, errlen);
        return -1;
    }
    n = SSL_read(conn->ssl, in, (int)sizeof in);
    if (n <= 0) {
        tb_ssl_reason(conn->ssl, n, "echo read", err, errlen);
        return -1;
    }
    if (n != 1 || in[0] != out) {
        snprintf(err, errlen, "echo: %d bytes came back instead of the one sent", n);
        return -1;
    }
    return (tb_now() - t0) * 1e6;
}

int tb_echo_ping(struct tb_conn *conn, char *err, size_t errlen)
{
    return ping(conn, err, errlen) < 0 ? -1 : 0;
}

int tb_echo(const struct tb_client *c)
{
    const struct tb_options *opt = c->opt;
    const size_t warmup = 20;
    size_t n = (size_t)opt->count;
    double *rtt = calloc(n, sizeof *rtt), sum = 0, t0;
    struct tb_conn conn;
    struct tb_progress prog;
    char err[TB_ERRLEN], human[400], machine[400];
    size_t p99i;

    if (rtt == NULL) {
        fprintf(stderr, "tlsbench: out of memory\n");
        return TB_EXIT_CONNECT;
    }
    if (tb_open(c, NULL, &conn, err, sizeof err) < 0) {
        fprintf(stderr, "tlsbench: %s\n", err);
        free(rtt);
        return TB_EXIT_CONNECT;
    }
    t0 = tb_now();
    tb_progress_start(&prog);
    for (size_t i = 0; i < warmup + n; i++) {
        double us = ping(&conn, err, sizeof err);
        if (us < 0) {
            tb_progress_end(&prog);
            fprintf(stderr, "tlsbench: %s (round trip %zu)\n", err, i + 1);
            tb_close(&conn, 0);
            free(rtt);
            return TB_EXIT_CONNECT;
        }
        if (i >= warmup) {
            rtt[i - warmup] = us;
            sum += us;
        }
        if (tb_progress_due(opt, &prog))
            tb_progress_print(&prog, "echo %zu / %zu round trips", i, warmup + n);
    }
    tb_progress_end(&prog);
    qsort(rtt, n, sizeof *rtt, cmp_double);
    p99i = (n * 99 + 99) / 100; /* ceil(0.99 n), 1-based */
    p99i = p99i == 0 ? 0 : p99i - 1;
    snprintf(human, sizeof human,
             "echo: %zu round trips of 1 byte: median %.1f us, p99 %.1f us "
             "(min %.1f, mean %.1f, max %.1f us; %zu warm-up trips not counted)",
             n, rtt[n / 2], rtt[p99i], rtt[0], sum / (double)n, rtt[n - 1], warmup);
    snprintf(machine, sizeof machine,
             "mode=echo round_trips=%zu median_us=%.2f p99_us=%.2f min_us=%.2f mean_us=%.2f "
             "max_us=%.2f seconds=%.3f protocol=%s cipher=%s",
             n, rtt[n / 2], rtt[p99i], rtt[0], sum / (double)n, rtt[n - 1], tb_now() - t0,
             SSL_get_version(conn.ssl), SSL_get_cipher_name(conn.ssl));
    tb_report(opt, human, machine);
    tb_close(&conn, 1);
    free(rtt);
    return TB_EXIT_OK;
}

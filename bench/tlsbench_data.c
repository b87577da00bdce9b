/* tlsbench: the data measurements (download, upload, echo) over -P
 * connections at once.
 *
 * Each connection has its own thread (with -P 1 as well: one code path).
 * The main thread opens the connections one after the other (handshakes
 * are not what these modes measure), then starts every thread at the same
 * moment, shows progress while they run and adds up the results after
 * joining them.  Each connection's data is checked on its own: every byte
 * of a download against the stream, the sink's report of an upload, every
 * echoed byte. */
#include "stream.h"
#include "tlsbench.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reads and writes of several records at a time. */
#define DATA_BUF (4 * STREAM_CHUNK)
/* Echo round trips per connection before the measured ones. */
#define ECHO_WARMUP 20
/* The workers' stacks: they hold a few small buffers (the data buffers are
 * on the heap) and OpenSSL's call chains. */
#define WORKER_STACK (512 * 1024)

enum data_kind { DATA_DOWNLOAD, DATA_UPLOAD, DATA_ECHO };

static const char *const kind_names[] = {"download", "upload", "echo"};

/* What the connections share.  Written by the main thread before the start
 * signal, read-only afterwards, except for the atomics and `go` (under
 * lock). */
struct run {
    const struct tb_client *c;  /* borrowed */
    enum data_kind kind;
    const struct stream *s;     /* borrowed: the reference stream */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int go;                     /* under lock: 1 start, -1 give up before starting */
    atomic_int stop;            /* a connection failed: the others give up */
    atomic_int finished;        /* threads that are done */
};

/* One connection.  Its thread writes everything here; while it runs the
 * main thread reads only `done` (progress), the rest after pthread_join. */
struct worker {
    struct run *run;            /* borrowed */
    pthread_t thread_id;
    int index;                  /* 1-based, for messages */
    struct tb_conn conn;        /* owned */
    unsigned char *buf;         /* owned: DATA_BUF bytes (download, upload) */
    double *rtt;                /* owned: opt->count round trips in us (echo) */
    _Atomic uint64_t done;      /* bytes, or measured round trips, so far */
    double t_start, t_end;      /* its start (echo: after the warm-up) and end */
    uint64_t bytes;             /* download, upload: bytes moved */
    int code;                   /* TB_EXIT_*, or -1: gave up because another failed */
    int close_notify;           /* download: 1 close_notify, 0 bare EOF; else -1 */
    char why[160];              /* why the data did not verify; "" if it did */
    char err[TB_ERRLEN];        /* with TB_EXIT_CONNECT: what failed */
};

static double mib(uint64_t n)
{
    return (double)n / (1024.0 * 1024.0);
}

static int stopped(const struct worker *w)
{
    return atomic_load_explicit(&w->run->stop, memory_order_relaxed) != 0;
}

/* A connection failure: the reason, then " (detail)". */
static void fail(struct worker *w, const char *what, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct worker *w, const char *what, int rc, const char *fmt, ...)
{
    size_t n;
    va_list ap;

    tb_ssl_reason(w->conn.ssl, rc, what, w->err, sizeof w->err);
    n = strlen(w->err);
    va_start(ap, fmt);
    vsnprintf(w->err + n, sizeof w->err - n, fmt, ap);
    va_end(ap);
    w->code = TB_EXIT_CONNECT;
}

static void download(struct worker *w)
{
    uint64_t want = w->run->c->opt->count, got = 0;
    int64_t bad = -1;

    for (;;) {
        int n, e;

        if (stopped(w)) {
            w->code = -1;
            return;
        }
        ERR_clear_error();
        errno = 0;
        n = SSL_read(w->conn.ssl, w->buf, (int)DATA_BUF);
        if (n > 0) {
            if (bad < 0)
                bad = stream_check(w->run->s, got, w->buf, (size_t)n);
            got += (uint64_t)n;
            atomic_store_explicit(&w->done, got, memory_order_relaxed);
            continue;
        }
        e = SSL_get_error(w->conn.ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
            w->close_notify = 1;
            break;
        }
        if (e == SSL_ERROR_SSL &&
            ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            w->close_notify = 0; /* a bare EOF: the length check decides */
            ERR_clear_error();
            break;
        }
        fail(w, "download", n, " (after %" PRIu64 " of %" PRIu64 " bytes)", got, want);
        w->bytes = got;
        return;
    }
    w->t_end = tb_now();
    w->bytes = got;
    if (bad >= 0)
        snprintf(w->why, sizeof w->why, "content differs at offset %" PRId64, bad);
    else if (got != want)
        snprintf(w->why, sizeof w->why, "%" PRIu64 " bytes arrived, %" PRIu64 " expected", got,
                 want);
    w->code = w->why[0] ? TB_EXIT_VERIFY : TB_EXIT_OK;
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

static void upload(struct worker *w)
{
    uint64_t want = w->run->c->opt->count, off = 0;
    char rep[256] = "";
    size_t rl = 0;

    w->close_notify = -1;
    stream_fill(w->run->s, 0, w->buf, DATA_BUF);
    while (off < want) {
        size_t n = want - off < DATA_BUF ? (size_t)(want - off) : DATA_BUF;
        size_t done = 0;

        if (stopped(w)) {
            w->code = -1;
            return;
        }
        if (off != 0)
            stream_patch(w->run->s, off, w->buf, DATA_BUF);
        while (done < n) {
            int r;
            ERR_clear_error();
            errno = 0;
            r = SSL_write(w->conn.ssl, w->buf + done, (int)(n - done));
            if (r <= 0) {
                fail(w, "upload", r, " (after %" PRIu64 " of %" PRIu64 " bytes)", off + done,
                     want);
                w->bytes = off + done;
                return;
            }
            done += (size_t)r;
        }
        off += n;
        atomic_store_explicit(&w->done, off, memory_order_relaxed);
    }
    w->bytes = off;
    /* The transfer ends when the application reports that it has it all. */
    while (memchr(rep, '\n', rl) == NULL && rl < sizeof rep - 1) {
        int n;
        ERR_clear_error();
        errno = 0;
        n = SSL_read(w->conn.ssl, rep + rl, (int)(sizeof rep - 1 - rl));
        if (n <= 0) {
            fail(w, "waiting for the sink's report", n, " (is the application bench-sink?)");
            return;
        }
        rl += (size_t)n;
    }
    w->t_end = tb_now();
    rep[rl] = '\0';
    check_report(rep, want, w->why, sizeof w->why);
    w->code = w->why[0] ? TB_EXIT_VERIFY : TB_EXIT_OK;
}

/* One byte there and back; returns the round trip in microseconds, or -1
 * with a reason in err. */
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

static void echo(struct worker *w)
{
    size_t n = (size_t)w->run->c->opt->count;

    for (size_t i = 0; i < ECHO_WARMUP + n; i++) {
        double us;

        if (stopped(w)) {
            w->code = -1;
            return;
        }
        if (i == ECHO_WARMUP)
            w->t_start = tb_now();
        us = ping(&w->conn, w->err, sizeof w->err);
        if (us < 0) {
            size_t len = strlen(w->err);
            snprintf(w->err + len, sizeof w->err - len, " (round trip %zu)", i + 1);
            w->code = TB_EXIT_CONNECT;
            return;
        }
        if (i >= ECHO_WARMUP) {
            w->rtt[i - ECHO_WARMUP] = us;
            atomic_store_explicit(&w->done, i + 1 - ECHO_WARMUP, memory_order_relaxed);
        }
    }
    w->t_end = tb_now();
    w->code = TB_EXIT_OK;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    int go;

    pthread_mutex_lock(&run->lock);
    while (run->go == 0)
        pthread_cond_wait(&run->cond, &run->lock);
    go = run->go;
    pthread_mutex_unlock(&run->lock);
    w->t_start = tb_now();
    if (go < 0) {
        w->code = -1;
    } else {
        switch (run->kind) {
        case DATA_DOWNLOAD: download(w); break;
        case DATA_UPLOAD: upload(w); break;
        case DATA_ECHO: echo(w); break;
        }
    }
    if (w->code == TB_EXIT_CONNECT)
        atomic_store(&run->stop, 1);
    atomic_fetch_add(&run->finished, 1);
    return NULL;
}

static void start_all(struct run *run, int how)
{
    pthread_mutex_lock(&run->lock);
    run->go = how;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->lock);
}

/* ---- results ---- */

/* A growing text (the human table), on the heap; NULL-safe to free. */
struct text {
    char *p;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->p == NULL)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

/* A connection's transfer time, from the common start t0 (all connections
 * start together, so its rate and the total's are measured alike). */
static double conn_secs(const struct worker *w, double t0)
{
    return w->t_end > t0 ? w->t_end - t0 : 0;
}

static void report_bulk(const struct tb_client *c, struct worker *ws, int n, double t0)
{
    const struct tb_options *opt = c->opt;
    const char *mode = kind_names[ws[0].run->kind];
    SSL *ssl = ws[0].conn.ssl;
    uint64_t total = 0;
    double end = t0, hs = 0, rmin = 0, rmax = 0, secs, rate;
    int verified = 0, notify = 1;
    struct text human = {malloc((size_t)(n + 4) * 200), 0, (size_t)(n + 4) * 200};
    char machine[1024];
    const char *first_why = NULL;
    int first_bad = 0;

    for (int i = 0; i < n; i++) {
        const struct worker *w = &ws[i];
        double r = conn_secs(w, t0) > 0 ? (double)w->bytes / conn_secs(w, t0) : 0;

        total += w->bytes;
        end = w->t_end > end ? w->t_end : end;
        hs += w->conn.handshake_ms;
        rmin = i == 0 || r < rmin ? r : rmin;
        rmax = r > rmax ? r : rmax;
        if (w->why[0] == '\0')
            verified++;
        else if (first_why == NULL) {
            first_why = w->why;
            first_bad = w->index;
        }
        if (w->close_notify != 1)
            notify = 0;
    }
    secs = end - t0;
    rate = secs > 0 ? (double)total / secs : 0;
    if (human.p)
        human.p[0] = '\0';
    if (n == 1) {
        text_add(&human, "%s: %" PRIu64 " bytes (%.1f MiB) in %.3f s = %.3f GB/s (%.1f MiB/s), "
                 "%s%s%s; handshake %.2f ms, %s %s",
                 mode, total, mib(total), secs, rate / 1e9, rate / (1024.0 * 1024.0),
                 first_why ? "NOT VERIFIED" : "verified (length and every byte)",
                 first_why ? ": " : "", first_why ? first_why : "", hs, SSL_get_version(ssl),
                 SSL_get_cipher_name(ssl));
    } else {
        text_add(&human, "%5s %15s %9s %10s %10s  %s\n", "conn", "bytes", "seconds", "MiB/s",
                 "handshake", "data");
        for (int i = 0; i < n; i++) {
            const struct worker *w = &ws[i];
            double s = conn_secs(w, t0);
            text_add(&human, "%5d %15" PRIu64 " %9.3f %10.1f %7.2f ms  %s\n", w->index,
                     w->bytes, s, s > 0 ? mib(w->bytes) / s : 0.0, w->conn.handshake_ms,
                     w->why[0] ? w->why : "verified");
        }
        text_add(&human, "%s: %d connections, %" PRIu64 " bytes (%.1f MiB) in %.3f s = %.3f "
                 "GB/s (%.1f MiB/s) in total, %.1f to %.1f MiB/s each; ",
                 mode, n, total, mib(total), secs, rate / 1e9, rate / (1024.0 * 1024.0),
                 rmin / (1024.0 * 1024.0), rmax / (1024.0 * 1024.0));
        if (first_why == NULL)
            text_add(&human, "all verified (length and every byte)");
        else
            text_add(&human, "NOT VERIFIED: %d of %d connections, the first (%d): %s",
                     n - verified, n, first_bad, first_why);
        text_add(&human, "; handshake %.2f ms on average, %s %s", hs / n, SSL_get_version(ssl),
                 SSL_get_cipher_name(ssl));
    }
    snprintf(machine, sizeof machine,
             "mode=%s parallel=%d bytes=%" PRIu64 " bytes_per_conn=%" PRIu64 " seconds=%.6f "
             "bytes_per_sec=%.0f gbps=%.4f conn_min_bytes_per_sec=%.0f "
             "conn_max_bytes_per_sec=%.0f verified=%s verified_conns=%d close_notify=%s "
             "handshake_ms=%.3f protocol=%s cipher=%s",
             mode, n, total, opt->count, secs, rate, rate / 1e9, rmin, rmax,
             verified == n ? "yes" : "no", verified,
             ws[0].run->kind == DATA_UPLOAD ? "n/a" : notify ? "yes" : "no", hs / n,
             SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    tb_report(opt, human.p ? human.p : "", machine);
    free(human.p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile p (0..100) of the sorted a[0..n): the ceil(p n / 100)-th. */
static double pct(const double *a, size_t n, unsigned p)
{
    size_t i = (n * p + 99) / 100;
    return a[i == 0 ? 0 : i - 1];
}

static int report_echo(const struct tb_client *c, struct worker *ws, int n, double t0)
{
    const struct tb_options *opt = c->opt;
    size_t per = (size_t)opt->count, total = per * (size_t)n;
    SSL *ssl = ws[0].conn.ssl;
    double *all, sum = 0, start = 0, end = 0, rate;
    struct text human = {malloc((size_t)(n + 4) * 200), 0, (size_t)(n + 4) * 200};
    char machine[768];

    for (int i = 0; i < n; i++) {
        qsort(ws[i].rtt, per, sizeof *ws[i].rtt, cmp_double);
        for (size_t k = 0; k < per; k++)
            sum += ws[i].rtt[k];
        start = i == 0 || ws[i].t_start < start ? ws[i].t_start : start;
        end = ws[i].t_end > end ? ws[i].t_end : end;
    }
    if (n == 1) {
        all = ws[0].rtt;
    } else {
        all = malloc(total * sizeof *all);
        if (all == NULL) {
            fprintf(stderr, "tlsbench: out of memory\n");
            free(human.p);
            return TB_EXIT_CONNECT;
        }
        for (int i = 0; i < n; i++)
            memcpy(all + (size_t)i * per, ws[i].rtt, per * sizeof *all);
        qsort(all, total, sizeof *all, cmp_double);
    }
    rate = end > start ? (double)total / (end - start) : 0;
    if (human.p)
        human.p[0] = '\0';
    if (n == 1) {
        text_add(&human, "echo: %zu round trips of 1 byte: median %.1f us, p99 %.1f us "
                 "(min %.1f, mean %.1f, max %.1f us; %d warm-up trips not counted)",
                 total, pct(all, total, 50) , pct(all, total, 99), all[0],
                 sum / (double)total, all[total - 1], ECHO_WARMUP);
    } else {
        text_add(&human, "%5s %12s %10s %10s %10s %10s\n", "conn", "round trips", "median us",
                 "p99 us", "max us", "handshake");
        for (int i = 0; i < n; i++)
            text_add(&human, "%5d %12zu %10.1f %10.1f %10.1f %7.2f ms\n", ws[i].index, per,
                     pct(ws[i].rtt, per, 50), pct(ws[i].rtt, per, 99), ws[i].rtt[per - 1],
                     ws[i].conn.handshake_ms);
        text_add(&human, "echo: %d connections x %zu round trips of 1 byte: over all %zu, "
                 "median %.1f us, p99 %.1f us (min %.1f, mean %.1f, max %.1f us; %d warm-up "
                 "trips per connection not counted); %.0f round trips/s in total",
                 n, per, total, pct(all, total, 50), pct(all, total, 99), all[0],
                 sum / (double)total, all[total - 1], ECHO_WARMUP, rate);
    }
    snprintf(machine, sizeof machine,
             "mode=echo parallel=%d round_trips=%zu round_trips_per_conn=%zu median_us=%.2f "
             "p99_us=%.2f min_us=%.2f mean_us=%.2f max_us=%.2f seconds=%.3f "
             "round_trips_per_sec=%.1f protocol=%s cipher=%s",
             n, total, per, pct(all, total, 50), pct(all, total, 99), all[0],
             sum / (double)total, all[total - 1], end - t0, rate, SSL_get_version(ssl),
             SSL_get_cipher_name(ssl));
    tb_report(opt, human.p ? human.p : "", machine);
    if (all != ws[0].rtt)
        free(all);
    free(human.p);
    return TB_EXIT_OK;
}

/* ---- the run ---- */

static void progress(const struct run *run, struct worker *ws, int n, struct tb_progress *p)
{
    uint64_t done = 0, total = run->c->opt->count * (uint64_t)n;
    double el = tb_now() - p->start;

    for (int i = 0; i < n; i++)
        done += atomic_load_explicit(&ws[i].done, memory_order_relaxed);
    if (run->kind == DATA_ECHO)
        tb_progress_print(p, "echo %" PRIu64 " / %" PRIu64 " round trips on %d connection%s",
                          done, total, n, n == 1 ? "" : "s");
    else
        tb_progress_print(p, "%s %.0f / %.0f MiB (%.0f%%), %.1f MiB/s on %d connection%s",
                          kind_names[run->kind], mib(done), mib(total),
                          total ? 100.0 * (double)done / (double)total : 0.0,
                          el > 0 ? mib(done) / el : 0.0, n, n == 1 ? "" : "s");
}

/* "connection 3 of 4: " with -P > 1, else "". */
static const char *conn_label(const struct worker *w, int n, char *buf, size_t cap)
{
    if (n == 1)
        return "";
    snprintf(buf, cap, "connection %d of %d: ", w->index, n);
    return buf;
}

static int run_data(const struct tb_client *c, enum data_kind kind)
{
    static struct stream s;
    const struct tb_options *opt = c->opt;
    int n = opt->parallel, created = 0, failed = 0, code = TB_EXIT_OK, lock_ok = 0;
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    struct run run;
    struct tb_progress prog;
    pthread_attr_t attr;
    char label[48], err[TB_ERRLEN];
    double t0;

    if (ws == NULL) {
        fprintf(stderr, "tlsbench: out of memory\n");
        return TB_EXIT_CONNECT;
    }
    memset(&run, 0, sizeof run);
    run.c = c;
    run.kind = kind;
    run.s = &s;
    atomic_init(&run.stop, 0);
    atomic_init(&run.finished, 0);
    stream_init(&s);
    for (int i = 0; i < n; i++) {
        ws[i].run = &run;
        ws[i].index = i + 1;
        ws[i].conn.fd = -1;
        ws[i].close_notify = -1;
        ws[i].code = -1; /* until its thread says otherwise */
        atomic_init(&ws[i].done, 0);
        if (kind == DATA_ECHO)
            ws[i].rtt = calloc((size_t)opt->count, sizeof *ws[i].rtt);
        else
            ws[i].buf = malloc(DATA_BUF);
        if (ws[i].rtt == NULL && ws[i].buf == NULL) {
            fprintf(stderr, "tlsbench: out of memory\n");
            code = TB_EXIT_CONNECT;
            goto out;
        }
    }
    /* One after the other: the handshakes are not part of the measurement
     * (a download's server starts sending at once; what it sends meanwhile
     * waits in the socket buffers, as with one connection). */
    for (int i = 0; i < n; i++) {
        if (tb_open(c, NULL, &ws[i].conn, err, sizeof err) < 0) {
            fprintf(stderr, "tlsbench: %s%s\n", conn_label(&ws[i], n, label, sizeof label),
                    err);
            code = TB_EXIT_CONNECT;
            goto out;
        }
    }
    if (pthread_mutex_init(&run.lock, NULL) != 0 || pthread_cond_init(&run.cond, NULL) != 0) {
        fprintf(stderr, "tlsbench: pthread_mutex_init or pthread_cond_init failed\n");
        code = TB_EXIT_CONNECT;
        goto out;
    }
    lock_ok = 1;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (; created < n; created++) {
        int rc = pthread_create(&ws[created].thread_id, &attr, worker_main, &ws[created]);
        if (rc != 0) {
            fprintf(stderr, "tlsbench: pthread_create: %s\n", strerror(rc));
            code = TB_EXIT_CONNECT;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    t0 = tb_now();
    start_all(&run, code == TB_EXIT_OK ? 1 : -1);
    tb_progress_start(&prog);
    while (atomic_load(&run.finished) < created) {
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000}, NULL);
        if (tb_progress_due(opt, &prog))
            progress(&run, ws, n, &prog);
    }
    for (int i = 0; i < created; i++)
        pthread_join(ws[i].thread_id, NULL);
    tb_progress_end(&prog);
    if (code != TB_EXIT_OK)
        goto out;
    for (int i = 0; i < n; i++) {
        if (ws[i].code != TB_EXIT_CONNECT)
            continue;
        fprintf(stderr, "tlsbench: %s%s\n", conn_label(&ws[i], n, label, sizeof label),
                ws[i].err);
        failed++;
    }
    if (failed > 0) {
        if (n > 1)
            fprintf(stderr, "tlsbench: no result: %d of %d connections failed%s\n", failed, n,
                    failed < n ? " (the others were stopped)" : "");
        code = TB_EXIT_CONNECT;
        goto out;
    }
    if (kind == DATA_ECHO) {
        code = report_echo(c, ws, n, t0);
    } else {
        report_bulk(c, ws, n, t0);
        for (int i = 0; i < n; i++)
            if (ws[i].code == TB_EXIT_VERIFY)
                code = TB_EXIT_VERIFY;
    }
out:
    for (int i = 0; i < n; i++) {
        /* close_notify only after a transfer that went right */
        tb_close(&ws[i].conn, ws[i].code == TB_EXIT_OK || ws[i].code == TB_EXIT_VERIFY);
        free(ws[i].buf);
        free(ws[i].rtt);
    }
    if (lock_ok) {
        pthread_mutex_destroy(&run.lock);
        pthread_cond_destroy(&run.cond);
    }
    free(ws);
    return code;
}

int tb_download(const struct tb_client *c)
{
    return run_data(c, DATA_DOWNLOAD);
}

int tb_upload(const struct tb_client *c)
{
    return run_data(c, DATA_UPLOAD);
}

int tb_echo(const struct tb_client *c)
{
    return run_data(c, DATA_ECHO);
}

/* tlsbench: connection-level measurements: handshake rate (forked client
 * processes, full or resumed) and hold (N idle connections kept open). */
#include "tlsbench.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What one handshake client process reports, in memory shared with the
 * parent (each process writes only its own slot; the parent only reads,
 * for progress and at the end). */
struct hs_slot {
    _Alignas(64) volatile uint64_t done; /* connections whose handshake succeeded */
    volatile uint64_t resumed;           /* of which SSL_session_reused */
    volatile uint64_t errors;
    volatile double end;                 /* tb_now() when it stopped */
    volatile int exited;
    char first_error[TB_ERRLEN];
};

static void slot_error(struct hs_slot *slot, const char *err)
{
    if (slot->errors++ == 0)
        snprintf(slot->first_error, sizeof slot->first_error, "%s", err);
}

/* After the handshake: let the server finish (it closes once its
 * application has exited), so that every counted connection went through
 * the whole server side, and so that TLS 1.3 tickets (sent after the
 * handshake) arrive.  After STARTTLS: QUIT (IMAP: LOGOUT) first.  Returns 1
 * when the server ended with close_notify. */
static int drain(const struct tb_client *c, struct tb_conn *conn)
{
    const char *quit = tb_starttls_quit(c->opt->starttls);
    char buf[4096];

    if (quit != NULL)
        SSL_write(conn->ssl, quit, (int)strlen(quit));
    for (;;) {
        int n;
        ERR_clear_error();
        n = SSL_read(conn->ssl, buf, (int)sizeof buf);
        if (n <= 0)
            return SSL_get_error(conn->ssl, n) == SSL_ERROR_ZERO_RETURN;
    }
}

static void hs_child(const struct tb_client *c, struct hs_slot *slot, double deadline)
{
    const struct tb_options *opt = c->opt;
    SSL_SESSION *sess = NULL;
    char err[TB_ERRLEN];
    int primed = !opt->resume;

    while (tb_now() < deadline) {
        struct tb_conn conn;
        int reused, clean = 1, priming = !primed;

        if (tb_open(c, sess, &conn, err, sizeof err) < 0) {
            slot_error(slot, err);
            /* A refusing server must not turn this into a busy loop. */
            nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000}, NULL);
            continue;
        }
        reused = SSL_session_reused(conn.ssl);
        /* With --no-wait only the first connection waits, for a ticket. */
        if (!opt->no_wait || priming)
            clean = drain(c, &conn);
        if (opt->resume) {
            /* The newest ticket, as a browser would: a TLS 1.3 server may
             * make its tickets single-use. */
            SSL_SESSION *s = SSL_get1_session(conn.ssl), *copy = NULL;
            /* a copy: closing a connection that ended without close_notify
             * (a read timeout) marks its own session not resumable */
            if (s != NULL && SSL_SESSION_is_resumable(s) &&
                (copy = SSL_SESSION_dup(s)) != NULL) {
                SSL_SESSION_free(sess);
                sess = copy;
            }
            SSL_SESSION_free(s);
        }
        tb_close(&conn, clean);
        if (priming) {
            primed = 1;
            continue; /* the connection that got the first ticket is not counted */
        }
        slot->done++;
        if (reused)
            slot->resumed++;
    }
    SSL_SESSION_free(sess);
    slot->end = tb_now();
}

static uint64_t sum_done(const struct hs_slot *slots, int n)
{
    uint64_t t = 0;

    for (int i = 0; i < n; i++)
        t += slots[i].done;
    return t;
}

int tb_handshake(const struct tb_client *c)
{
    const struct tb_options *opt = c->opt;
    int n = opt->procs, running = 0, code = TB_EXIT_OK;
    size_t size = sizeof(struct hs_slot) * (size_t)n;
    struct hs_slot *slots;
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    uint64_t done = 0, resumed = 0, errors = 0;
    double start, deadline, kill_at, end = 0, rate, wall;
    const char *first_error = NULL;
    struct tb_progress prog;
    char human[512], machine[512];

    slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pids == NULL || slots == MAP_FAILED) {
        fprintf(stderr, "tlsbench: out of memory\n");
        free(pids);
        return TB_EXIT_CONNECT;
    }
    memset(slots, 0, size);
    fflush(NULL);
    start = tb_now();
    deadline = start + opt->seconds;
    /* A client stuck in one connection gives up after the I/O timeout. */
    kill_at = deadline + 3.0 * opt->timeout_ms / 1000.0 + 5.0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "tlsbench: fork: %s\n", strerror(errno));
            code = TB_EXIT_CONNECT;
            deadline = 0; /* the ones started stop at once */
            kill_at = tb_now() + 3.0 * opt->timeout_ms / 1000.0 + 5.0;
            break;
        }
        if (pid == 0) {
            hs_child(c, &slots[i], deadline);
            _exit(0);
        }
        pids[i] = pid;
        running++;
    }
    tb_progress_start(&prog);
    while (running > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);

        if (pid > 0) {
            for (int i = 0; i < n; i++)
                if (pids[i] == pid) {
                    pids[i] = 0;
                    slots[i].exited = 1;
                    running--;
                }
            continue;
        }
        if (tb_now() > kill_at) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            kill_at = tb_now() + 3600;
        }
        if (tb_progress_due(opt, &prog)) {
            double el = tb_now() - start;
            tb_progress_print(&prog, "handshake %.0f / %.0f s: %" PRIu64 " connections, %.0f/s",
                              el, opt->seconds, sum_done(slots, n),
                              (double)sum_done(slots, n) / el);
        }
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000}, NULL);
    }
    tb_progress_end(&prog);
    for (int i = 0; i < n; i++) {
        done += slots[i].done;
        resumed += slots[i].resumed;
        errors += slots[i].errors;
        if (slots[i].end > end)
            end = slots[i].end;
        if (first_error == NULL && slots[i].errors > 0)
            first_error = slots[i].first_error;
    }
    wall = end > start ? end - start : tb_now() - start;
    rate = (double)done / wall;
    if (opt->resume)
        snprintf(human, sizeof human,
                 "handshake: %" PRIu64 " connections in %.2f s = %.1f/s with %d process%s, "
                 "%" PRIu64 " resumed (%.1f%%)%s; %" PRIu64 " failed",
                 done, wall, rate, n, n == 1 ? "" : "es", resumed, done ? 100.0 * (double)resumed / (double)done : 0,
                 resumed == 0 ? ": the server resumed no session, these were full handshakes"
                              : "",
                 errors);
    else
        snprintf(human, sizeof human,
                 "handshake: %" PRIu64 " full handshakes in %.2f s = %.1f/s with %d process%s; "
                 "%" PRIu64 " failed",
                 done, wall, rate, n, n == 1 ? "" : "es", errors);
    snprintf(machine, sizeof machine,
             "mode=handshake resume=%s procs=%d seconds=%.3f connections=%" PRIu64
             " rate_per_sec=%.2f resumed=%" PRIu64 " resumed_fraction=%.4f errors=%" PRIu64,
             opt->resume ? "yes" : "no", n, wall, done, rate, resumed,
             done ? (double)resumed / (double)done : 0.0, errors);
    tb_report(opt, human, machine);
    if (first_error != NULL)
        fprintf(stderr, "tlsbench: %" PRIu64 " connections failed; the first: %s\n", errors,
                first_error);
    if (done == 0)
        code = TB_EXIT_CONNECT;
    munmap(slots, size);
    free(pids);
    return code;
}

static volatile sig_atomic_t stop_holding;

static void on_stop(int sig)
{
    (void)sig;
    stop_holding = 1;
}

/* Room for n connections plus stdio and slack. */
static int raise_nofile(uint64_t n, char *err, size_t errlen)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)n + 32;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, errlen, "getrlimit: %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        snprintf(err, errlen,
                 "%" PRIu64 " connections need %llu file descriptors; the hard limit is %llu "
                 "(ulimit -Hn)",
                 n, (unsigned long long)want, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, errlen, "setrlimit NOFILE %llu: %s", (unsigned long long)want,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int tb_hold(const struct tb_client *c)
{
    const struct tb_options *opt = c->opt;
    size_t n = (size_t)opt->count, open_n = 0, failed = 0;
    struct tb_conn *conns;
    char err[TB_ERRLEN], first[TB_ERRLEN] = "", human[400], machine[300];
    struct tb_progress prog;
    struct sigaction sa;
    double t0, opened, until;

    if (raise_nofile(opt->count, err, sizeof err) < 0) {
        fprintf(stderr, "tlsbench: %s\n", err);
        return TB_EXIT_CONNECT;
    }
    conns = calloc(n, sizeof *conns);
    if (conns == NULL) {
        fprintf(stderr, "tlsbench: out of memory\n");
        return TB_EXIT_CONNECT;
    }
    /* The signals that end the hold early; no SA_RESTART, so that the
     * wait below wakes up. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    t0 = tb_now();
    tb_progress_start(&prog);
    for (size_t i = 0; i < n && !stop_holding; i++) {
        struct tb_conn *cn = &conns[open_n];
        if (tb_open(c, NULL, cn, err, sizeof err) < 0 ||
            (opt->ping && tb_echo_ping(cn, err, sizeof err) < 0)) {
            if (cn->ssl != NULL)
                tb_close(cn, 0);
            if (failed++ == 0)
                snprintf(first, sizeof first, "%s", err);
            continue;
        }
        open_n++;
        if (tb_progress_due(opt, &prog))
            tb_progress_print(&prog, "hold: %zu / %zu connections open", open_n, n);
    }
    tb_progress_end(&prog);
    opened = tb_now() - t0;
    snprintf(human, sizeof human,
             "hold: %zu connections open%s (%zu failed) in %.2f s; holding them for up to "
             "%.0f s (SIGTERM, SIGINT or SIGHUP ends it)",
             open_n, opt->ping ? " and echoing" : "", failed, opened, opt->seconds);
    snprintf(machine, sizeof machine,
             "mode=hold connections=%zu failed=%zu open_seconds=%.3f hold_seconds=%.0f ready=yes",
             open_n, failed, opened, opt->seconds);
    tb_report(opt, human, machine);
    if (failed > 0)
        fprintf(stderr, "tlsbench: %zu connections failed; the first: %s\n", failed, first);

    until = tb_now() + opt->seconds;
    while (!stop_holding) {
        double left = until - tb_now();
        if (left <= 0)
            break;
        poll(NULL, 0, left > 1.0 ? 1000 : (int)(left * 1000) + 1);
    }
    for (size_t i = 0; i < open_n; i++)
        tb_close(&conns[i], 1);
    free(conns);
    return open_n == 0 && n > 0 ? TB_EXIT_CONNECT : TB_EXIT_OK;
}

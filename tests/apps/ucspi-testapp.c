/* ucspi-testapp: one UCSPI(-TLS) application with many behaviours, run by
 * the end-to-end tests under tlsserver/tlsd to exercise each row of
 * DESIGN.md section 4.  It talks to the peer and records what it saw, one
 * line per event, appended to the file named by $TESTAPP_OUT (stderr if
 * unset).  Every value it records is escaped (see esc()) so that each event
 * is exactly one line.
 *
 * Usage: ucspi-testapp MODE [ARGS]
 *
 *   y-echo          read "STARTTLS\n" on fd 0 byte by byte, write "OK\n" on
 *                   fd 1, write 'y' to $SSLCTLFD (never read it), echo
 *                   $SSLREADFD -> $SSLWRITEFD until EOF, close the write pipe
 *   Y-echo          the same with 'Y': read ctl until the reply ends in
 *                   "\0\0" (or is "\0", or EOF), record it, then echo
 *   Y-shut          'Y', then shutdown(ctl, SHUT_WR), read ctl to EOF
 *                   (smtpd-starttls-proxy style), record, then echo
 *   decline         read "STARTTLS\n", reply "NO\n", close ctl and both
 *                   pipes, echo fd 0 -> fd 1 in plaintext until EOF
 *   badcmd          write 'x' to ctl, read ctl (expect EOF, no data), close
 *                   the three fds, echo fd 0 -> fd 1 in plaintext until EOF
 *   immediate-echo  echo fd 0 -> fd 1 until EOF
 *   sink-sha256     (or sink) read fd 0 to EOF, record count and SHA-256
 *   source N SEED   write N bytes of the xorshift stream (xorshift.h) to fd 1
 *   duplex N SEED   both at once with poll(); after writing N bytes,
 *                   half-close fd 1 (shutdown SHUT_WR if a socket, close) and
 *                   keep reading fd 0 to EOF
 *   delayed-sink-sha256, delayed-sink, delayed-source N SEED,
 *   delayed-duplex N SEED
 *                   first the y handshake of y-echo, but through
 *                   ucspitls_start('y') so the pipes land on fds 0/1, then
 *                   as above
 *   exit-early      exit 3 at once
 *   never-read SECS sleep SECS seconds without reading, exit 0
 *   show-env        record every environment variable, then echo fd 0 -> 1
 *
 * Output lines (TESTAPP_OUT), in the order they happen:
 *   pid <pid>                        always first
 *   mode <mode>
 *   env NAME=value ...               modes that touch UCSPI(-TLS): the set
 *                                    ones of a fixed list (ENV_NAMES below),
 *                                    space-separated
 *   fds <fd>:<type> ...              open fds (besides the output file);
 *                                    type sock|fifo|reg|chr|dir|other
 *   line <text>                      the plaintext command line read
 *   sent <c>                         command byte written to ctl
 *   ctl-eof-nodata                   ctl EOF before any reply byte (Y modes:
 *                                    the handshake failed)
 *   vars-raw <hex>                   the exact reply bytes, lowercase hex
 *   vars N1=v1|N2=v2...              the reply decoded (empty block: "vars")
 *   vars-error <code> <text>         the reply did not decode
 *   declined
 *   ctl-eof | ctl-data <hex>         (badcmd) what reading ctl gave
 *   started y                        (delayed-*) ucspitls_start succeeded
 *   read-eof                         the echo source reached EOF
 *   echoed <bytes>                   bytes echoed in total
 *   ctl-after eof|open|data|error    (y/Y modes) ctl state after the echo
 *   read-sha256 <bytes> <hex>        sink, duplex: what was read
 *   wrote-sha256 <bytes> <hex>       source, duplex: what was written
 *   envvar NAME=value                show-env, one per variable
 *   error <what> <detail>            anything unexpected
 *   exit <code>                      always last
 * Escaping: bytes 0x21..0x7e except '\\' and '|' are written as they are,
 * every other byte as \xHH (so spaces show as \x20).
 *
 * Exit codes: 0 done, 2 protocol surprise (see the error line), 3
 * exit-early, 100 usage. */
#include "sha256.h"
#include "ucspitls_app.h"
#include "xorshift.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_REPLY_MAX (UCSPITLS_BLOCK_MAX + 1024)
#define CMDLINE_MAX 1024

extern char **environ;

static int out_fd = 2;

/* ---- recording ---- */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            _exit(111);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void esc(struct sb *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && c != '\\' && c != '|') {
            sb_add(b, (const char *)&c, 1);
        } else {
            char e[4] = {'\\', 'x', hexd[c >> 4], hexd[c & 15]};
            sb_add(b, e, 4);
        }
    }
}

static void hex(struct sb *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[2] = {hexd[c >> 4], hexd[c & 15]};
        sb_add(b, e, 2);
    }
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One event = one write() on an O_APPEND fd, so lines from concurrent
 * writers (several connections, one file) never interleave mid-line. */
static void record_sb(struct sb *b)
{
    sb_add(b, "\n", 1);
    (void)write_all(out_fd, b->p, b->len);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

__attribute__((format(printf, 1, 2))) static void record(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    struct sb b = {0};
    sb_add(&b, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    record_sb(&b);
}

static _Noreturn void finish(int code)
{
    record("exit %d", code);
    _exit(code);
}

static _Noreturn void fail(const char *what)
{
    record("error %s %s", what, strerror(errno));
    finish(2);
}

/* ---- environment and fds ---- */

static const char *const ENV_NAMES[] = {
    "PROTO",        "TCPLOCALIP",    "TCPLOCALPORT", "TCPREMOTEIP", "TCPREMOTEPORT",
    "TCP6REMOTEIP", "SSLLOCALIP",    "SSLREMOTEIP",  "SSLCTLFD",    "SSLREADFD",
    "SSLWRITEFD",   "SSL_PROTOCOL",  "SSL_CIPHER",   "UCSPITLS",
};

static void record_env(void)
{
    struct sb b = {0};
    sb_str(&b, "env");
    for (size_t i = 0; i < sizeof ENV_NAMES / sizeof ENV_NAMES[0]; i++) {
        const char *v = getenv(ENV_NAMES[i]);
        if (v == NULL)
            continue;
        sb_str(&b, " ");
        sb_str(&b, ENV_NAMES[i]);
        sb_str(&b, "=");
        esc(&b, v, strlen(v));
    }
    record_sb(&b);
}

/* The fds we hold: the tests check that no stray copy of the connection
 * (or of the server's ends) leaked into the application. */
static void record_fds(void)
{
    struct sb b = {0};
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    sb_str(&b, "fds");
    if (d == NULL) {
        sb_str(&b, " unknown");
        record_sb(&b);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end != '\0' || fd == dirfd(d) ||
            fd == out_fd)
            continue;
        if (fstat((int)fd, &st) < 0)
            continue;
        const char *t = S_ISSOCK(st.st_mode)  ? "sock"
                        : S_ISFIFO(st.st_mode) ? "fifo"
                        : S_ISREG(st.st_mode)  ? "reg"
                        : S_ISCHR(st.st_mode)  ? "chr"
                        : S_ISDIR(st.st_mode)  ? "dir"
                                               : "other";
        char item[48];
        snprintf(item, sizeof item, " %ld:%s", fd, t);
        sb_str(&b, item);
    }
    closedir(d);
    record_sb(&b);
}

/* The UCSPI-TLS fds, validated by appkit's strict parser; a server that
 * hands out bad ones is exactly what the tests want to see reported. */
static void get_fds(int *ctl, int *rd, int *wr)
{
    if (ucspitls_env_fds(ctl, rd, wr) != 0) {
        record("error env SSLCTLFD/SSLREADFD/SSLWRITEFD missing or invalid");
        finish(2);
    }
}

/* ---- raw I/O ---- */

/* Reads one line from fd 0 a byte at a time, so that nothing after the LF
 * is consumed (the TLS ClientHello follows it on the same socket). */
static void expect_starttls(void)
{
    char line[CMDLINE_MAX];
    size_t n = 0;

    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail("read-line");
        if (r == 0) {
            record("error read-line unexpected EOF");
            finish(2);
        }
        if (c == '\n')
            break;
        if (n == sizeof line - 1) {
            record("error read-line too long");
            finish(2);
        }
        line[n++] = c;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    struct sb b = {0};
    sb_str(&b, "line ");
    esc(&b, line, n);
    record_sb(&b);
    if (n != 8 || memcmp(line, "STARTTLS", 8) != 0) {
        record("error read-line expected STARTTLS");
        finish(2);
    }
}

static void send_cmd(int ctl, char c)
{
    if (write_all(ctl, &c, 1) < 0)
        fail("ctl-write");
    record("sent %c", c);
}

static void echo(int from, int to)
{
    static char buf[65536];
    uint64_t total = 0;

    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            record("error echo-read %s", strerror(errno));
            break;
        }
        if (n == 0) {
            record("read-eof");
            break;
        }
        if (write_all(to, buf, (size_t)n) < 0) {
            record("error echo-write %s", strerror(errno));
            break;
        }
        total += (uint64_t)n;
    }
    record("echoed %" PRIu64, total);
}

/* Ends our output direction: for a socket, a real TCP-level half-close
 * even if another fd still refers to it; then the fd itself. */
static void half_close(int fd)
{
    if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTSOCK && errno != ENOTCONN)
        record("error shutdown %s", strerror(errno));
    close(fd);
}

/* Reads the `Y` reply: until it ends in "\0\0" (or is "\0"), or to EOF when
 * to_eof.  Records what came and returns the byte count (0 = none). */
static size_t read_reply(int ctl, int to_eof)
{
    static char buf[CTL_REPLY_MAX];
    size_t len = 0;

    for (;;) {
        if (len == sizeof buf) {
            record("error ctl-read reply over %zu bytes", sizeof buf);
            finish(2);
        }
        ssize_t n = read(ctl, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("ctl-read");
        if (n == 0)
            break;
        len += (size_t)n;
        if (!to_eof && (buf[0] == '\0' || (len >= 2 && buf[len - 1] == '\0' &&
                                            buf[len - 2] == '\0')))
            break;
    }
    if (len == 0) {
        record("ctl-eof-nodata");
        return 0;
    }
    struct sb b = {0};
    sb_str(&b, "vars-raw ");
    hex(&b, buf, len);
    record_sb(&b);

    struct ucspitls_vars v;
    int rc = ucspitls_vars_parse(buf, len, &v);
    if (rc != 0) {
        record("vars-error %d %s", rc, ucspitls_strerror(rc));
        return len;
    }
    sb_str(&b, "vars");
    for (size_t i = 0; i < v.count; i++) {
        sb_str(&b, i == 0 ? " " : "|");
        sb_str(&b, v.entries[i].name);
        sb_str(&b, "=");
        esc(&b, v.entries[i].value, v.entries[i].value_len);
    }
    record_sb(&b);
    ucspitls_vars_free(&v);
    return len;
}

/* After the session: has the server closed ctl (DESIGN: after the
 * handshake, or after the Y reply)? */
static void record_ctl_after(int ctl)
{
    struct pollfd p = {.fd = ctl, .events = POLLIN};
    char c;
    int pr;

    do
        pr = poll(&p, 1, 0);
    while (pr < 0 && errno == EINTR);
    if (pr < 0) {
        record("ctl-after error");
        return;
    }
    if (pr == 0) {
        record("ctl-after open");
        return;
    }
    ssize_t n;
    do
        n = read(ctl, &c, 1);
    while (n < 0 && errno == EINTR);
    record(n == 0 ? "ctl-after eof" : n > 0 ? "ctl-after data" : "ctl-after error");
}

/* ---- modes ---- */

static _Noreturn void mode_starttls(char cmd, int shut)
{
    int ctl, rd, wr;

    record_env();
    record_fds();
    get_fds(&ctl, &rd, &wr);
    expect_starttls();
    if (write_all(1, "OK\n", 3) < 0)
        fail("write-ok");
    send_cmd(ctl, cmd);
    if (cmd == 'Y') {
        if (shut && shutdown(ctl, SHUT_WR) < 0)
            fail("ctl-shutdown");
        if (read_reply(ctl, shut) == 0) {
            /* Handshake failed: the server closed everything; so do we. */
            close(ctl);
            close(rd);
            close(wr);
            finish(0);
        }
    }
    echo(rd, wr);
    close(wr);
    record_ctl_after(ctl);
    close(ctl);
    close(rd);
    finish(0);
}

static _Noreturn void mode_decline(void)
{
    int ctl, rd, wr;

    record_env();
    get_fds(&ctl, &rd, &wr);
    expect_starttls();
    if (write_all(1, "NO\n", 3) < 0)
        fail("write-no");
    close(ctl);
    close(rd);
    close(wr);
    record("declined");
    echo(0, 1);
    half_close(1);
    finish(0);
}

static _Noreturn void mode_badcmd(void)
{
    int ctl, rd, wr;
    char buf[256];

    record_env();
    get_fds(&ctl, &rd, &wr);
    send_cmd(ctl, 'x');
    ssize_t n;
    do
        n = read(ctl, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        fail("ctl-read");
    if (n == 0) {
        record("ctl-eof");
    } else {
        struct sb b = {0};
        sb_str(&b, "ctl-data ");
        hex(&b, buf, (size_t)n);
        record_sb(&b);
    }
    close(ctl);
    close(rd);
    close(wr);
    echo(0, 1);
    half_close(1);
    finish(0);
}

static void sink(void)
{
    static char buf[65536];
    struct sha256 h;
    uint64_t total = 0;
    char hx[65];

    sha256_init(&h);
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("read");
        if (n == 0)
            break;
        sha256_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    sha256_final_hex(&h, hx);
    record("read-sha256 %" PRIu64 " %s", total, hx);
}

static void source(uint64_t n, uint64_t seed)
{
    static unsigned char buf[65536];
    struct xorshift x;
    struct sha256 h;
    uint64_t left = n;
    char hx[65];

    xorshift_init(&x, seed);
    sha256_init(&h);
    while (left > 0) {
        size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
        xorshift_fill(&x, buf, k);
        sha256_update(&h, buf, k);
        if (write_all(1, buf, k) < 0)
            fail("write");
        left -= k;
    }
    half_close(1);
    sha256_final_hex(&h, hx);
    record("wrote-sha256 %" PRIu64 " %s", n, hx);
}

/* Both directions at once.  Non-blocking fds: a blocking write of a large
 * chunk could wait on a peer that is itself blocked writing to us. */
static void duplex(uint64_t n, uint64_t seed)
{
    static unsigned char out[65536];
    static char inb[65536];
    struct xorshift x;
    struct sha256 hr, hw;
    uint64_t left = n, got = 0;
    size_t opos = 0, olen = 0;
    int rd_open = 1, wr_open = 1;
    char hx[65];

    xorshift_init(&x, seed);
    sha256_init(&hr);
    sha256_init(&hw);
    for (int fd = 0; fd <= 1; fd++) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            fail("fcntl");
    }
    if (left == 0) {
        half_close(1);
        wr_open = 0;
        sha256_final_hex(&hw, hx);
        record("wrote-sha256 0 %s", hx);
    }
    while (rd_open || wr_open) {
        struct pollfd p[2] = {{.fd = rd_open ? 0 : -1, .events = POLLIN},
                              {.fd = wr_open ? 1 : -1, .events = POLLOUT}};
        int pr = poll(p, 2, -1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            fail("poll");
        if (rd_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(0, inb, sizeof inb);
            if (r < 0 && errno != EINTR && errno != EAGAIN)
                fail("read");
            if (r == 0)
                rd_open = 0;
            if (r > 0) {
                sha256_update(&hr, inb, (size_t)r);
                got += (uint64_t)r;
            }
        }
        if (wr_open && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            if (opos == olen) {
                size_t k = left < sizeof out ? (size_t)left : sizeof out;
                xorshift_fill(&x, out, k);
                sha256_update(&hw, out, k);
                left -= k;
                opos = 0;
                olen = k;
            }
            ssize_t w = write(1, out + opos, olen - opos);
            if (w < 0 && errno != EINTR && errno != EAGAIN)
                fail("write");
            if (w > 0)
                opos += (size_t)w;
            if (opos == olen && left == 0) {
                half_close(1);
                wr_open = 0;
                sha256_final_hex(&hw, hx);
                record("wrote-sha256 %" PRIu64 " %s", n, hx);
            }
        }
    }
    sha256_final_hex(&hr, hx);
    record("read-sha256 %" PRIu64 " %s", got, hx);
}

static int parse_u64(const char *s, uint64_t *v)
{
    uint64_t r = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || r > (UINT64_MAX - 9) / 10)
            return -1;
        r = r * 10 + (uint64_t)(*s - '0');
    }
    *v = r;
    return 0;
}

static _Noreturn void usage(void)
{
    record("error usage see the comment at the top of ucspi-testapp.c");
    finish(100);
}

/* sink/source/duplex on fds 0/1; argv points at the data mode's name. */
static _Noreturn void data_mode(int argc, char **argv)
{
    uint64_t n = 0, seed = 0;
    const char *m = argv[0];

    if (strcmp(m, "sink") == 0 || strcmp(m, "sink-sha256") == 0) {
        sink();
        finish(0);
    }
    if (argc != 3 || parse_u64(argv[1], &n) < 0 || parse_u64(argv[2], &seed) < 0)
        usage();
    if (strcmp(m, "source") == 0)
        source(n, seed);
    else if (strcmp(m, "duplex") == 0)
        duplex(n, seed);
    else
        usage();
    finish(0);
}

static int is_data_mode(const char *m)
{
    return strcmp(m, "sink") == 0 || strcmp(m, "sink-sha256") == 0 ||
           strcmp(m, "source") == 0 || strcmp(m, "duplex") == 0;
}

int main(int argc, char **argv)
{
    const char *path = getenv("TESTAPP_OUT");

    /* Errors on a vanished peer must be recorded, not kill us silently. */
    signal(SIGPIPE, SIG_IGN);
    if (path != NULL && path[0] != '\0') {
        out_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            fprintf(stderr, "ucspi-testapp: %s: %s\n", path, strerror(errno));
            return 111;
        }
    }
    record("pid %ld", (long)getpid());
    if (argc < 2)
        usage();
    struct sb b = {0};
    sb_str(&b, "mode ");
    esc(&b, argv[1], strlen(argv[1]));
    record_sb(&b);

    const char *m = argv[1];
    if (strcmp(m, "y-echo") == 0)
        mode_starttls('y', 0);
    if (strcmp(m, "Y-echo") == 0)
        mode_starttls('Y', 0);
    if (strcmp(m, "Y-shut") == 0)
        mode_starttls('Y', 1);
    if (strcmp(m, "decline") == 0)
        mode_decline();
    if (strcmp(m, "badcmd") == 0)
        mode_badcmd();
    if (strcmp(m, "immediate-echo") == 0) {
        record_env();
        record_fds();
        echo(0, 1);
        half_close(1);
        finish(0);
    }
    if (strcmp(m, "show-env") == 0) {
        for (char **e = environ; *e != NULL; e++) {
            struct sb v = {0};
            const char *eq = strchr(*e, '=');
            size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
            sb_str(&v, "envvar ");
            esc(&v, *e, nl);
            if (eq != NULL) {
                sb_str(&v, "=");
                esc(&v, eq + 1, strlen(eq + 1));
            }
            record_sb(&v);
        }
        echo(0, 1);
        half_close(1);
        finish(0);
    }
    if (strcmp(m, "exit-early") == 0)
        finish(3);
    if (strcmp(m, "never-read") == 0) {
        uint64_t secs;
        if (argc != 3 || parse_u64(argv[2], &secs) < 0 || secs > 86400)
            usage();
        struct timespec ts = {.tv_sec = (time_t)secs, .tv_nsec = 0};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        finish(0);
    }
    if (is_data_mode(m))
        data_mode(argc - 1, argv + 1);
    if (strncmp(m, "delayed-", 8) == 0 && is_data_mode(m + 8)) {
        record_env();
        expect_starttls();
        if (write_all(1, "OK\n", 3) < 0)
            fail("write-ok");
        int rc = ucspitls_start('y', NULL);
        if (rc != 0) {
            record("error start %s", ucspitls_strerror(rc));
            finish(2);
        }
        record("started y");
        argv[1] = argv[1] + 8;
        data_mode(argc - 1, argv + 1);
    }
    usage();
}

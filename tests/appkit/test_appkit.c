/* Unit tests for appkit: $UCSPITLS levels, the `Y` block decoder against
 * hostile input, encode/decode round trips, and ucspitls_start() against a
 * fake server (a forked child holding the other ends of a socketpair and two
 * pipes, as a real UCSPI-TLS server would). */
#include "check.h"
#include "ucspitls_app.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sizeof-minus-one so literal blocks keep their embedded and final \0s. */
#define BLOCK(s) (s), (sizeof(s) - 1)

static int parse(const char *buf, size_t len)
{
    struct ucspitls_vars v;
    int rc = ucspitls_vars_parse(buf, len, &v);
    /* On failure nothing may be kept. */
    if (rc != 0)
        CHECK(v.count == 0 && v.storage == NULL);
    ucspitls_vars_free(&v);
    return rc;
}

static void test_level(void)
{
    CHECK(ucspitls_level(NULL) == UCSPITLS_OFF);
    CHECK(ucspitls_level("-") == UCSPITLS_OFF);
    CHECK(ucspitls_level("!") == UCSPITLS_REQUIRED);
    CHECK(ucspitls_level("") == UCSPITLS_OFFERED);
    CHECK(ucspitls_level("1") == UCSPITLS_OFFERED);
    CHECK(ucspitls_level("?") == UCSPITLS_OFFERED);
    CHECK(ucspitls_level("--") == UCSPITLS_OFFERED);
    CHECK(ucspitls_level("!!") == UCSPITLS_OFFERED);
}

static void test_parse_good(void)
{
    struct ucspitls_vars v;

    CHECK(ucspitls_vars_parse(BLOCK("SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_128_GCM_SHA256\0\0"),
                              &v) == 0);
    CHECK(v.count == 2);
    CHECK_STREQ(v.entries[0].name, "SSL_PROTOCOL");
    CHECK_STREQ(v.entries[0].value, "TLSv1.3");
    CHECK(v.entries[0].value_len == 7);
    CHECK_STREQ(ucspitls_vars_get(&v, "SSL_CIPHER"), "TLS_AES_128_GCM_SHA256");
    CHECK(ucspitls_vars_get(&v, "SSL_") == NULL);
    CHECK(ucspitls_vars_get(&v, "ssl_protocol") == NULL);
    ucspitls_vars_free(&v);
    CHECK(v.count == 0 && v.storage == NULL);
    ucspitls_vars_free(&v); /* twice is fine */
    ucspitls_vars_free(NULL);

    /* Ending at EOF right after the last entry (smtpd-starttls-proxy). */
    CHECK(ucspitls_vars_parse(BLOCK("A=1\0B=2\0"), &v) == 0);
    CHECK(v.count == 2);
    CHECK_STREQ(ucspitls_vars_get(&v, "B"), "2");
    ucspitls_vars_free(&v);

    /* Empty values, '=' inside values, arbitrary non-NUL bytes in values. */
    CHECK(ucspitls_vars_parse(BLOCK("E=\0X=a=b\0Y=\xff\n\r \x01\0\0"), &v) == 0);
    CHECK(v.count == 3);
    CHECK_STREQ(ucspitls_vars_get(&v, "E"), "");
    CHECK(v.entries[0].value_len == 0);
    CHECK_STREQ(ucspitls_vars_get(&v, "X"), "a=b");
    CHECK_STREQ(ucspitls_vars_get(&v, "Y"), "\xff\n\r \x01");
    ucspitls_vars_free(&v);

    /* The empty block, both spellings. */
    CHECK(ucspitls_vars_parse(BLOCK("\0"), &v) == 0);
    CHECK(v.count == 0);
    ucspitls_vars_free(&v);
    CHECK(ucspitls_vars_parse(BLOCK("\0\0"), &v) == 0);
    CHECK(v.count == 0);
    ucspitls_vars_free(&v);

    /* Names: underscore start, digits after the first character. */
    CHECK(parse(BLOCK("_X9=1\0a_b=2\0\0")) == 0);
}

static void test_parse_hostile(void)
{
    CHECK(parse(NULL, 0) == UCSPITLS_ERR_EMPTY);
    CHECK(parse("", 0) == UCSPITLS_ERR_EMPTY);
    CHECK(parse(BLOCK("\0\0\0")) == UCSPITLS_ERR_TRAILING);
    CHECK(parse(BLOCK("A=1\0\0\0")) == UCSPITLS_ERR_TRAILING);
    CHECK(parse(BLOCK("A=1\0\0B=2\0\0")) == UCSPITLS_ERR_TRAILING);
    CHECK(parse(BLOCK("A=1\0\0x")) == UCSPITLS_ERR_TRAILING);
    CHECK(parse(BLOCK("\0A=1\0\0")) == UCSPITLS_ERR_TRAILING);
    /* Bare names: the s/qmail parser would glue them onto the next name. */
    CHECK(parse(BLOCK("SSL_PROTOCOL\0SSL_CIPHER=x\0\0")) == UCSPITLS_ERR_BARE_NAME);
    CHECK(parse(BLOCK("A=1\0BARE\0\0")) == UCSPITLS_ERR_BARE_NAME);
    CHECK(parse(BLOCK("BARE")) == UCSPITLS_ERR_UNTERMINATED);
    /* Missing terminators. */
    CHECK(parse(BLOCK("A=1")) == UCSPITLS_ERR_UNTERMINATED);
    CHECK(parse(BLOCK("A=1\0B=2")) == UCSPITLS_ERR_UNTERMINATED);
    CHECK(parse(BLOCK("A=")) == UCSPITLS_ERR_UNTERMINATED);
    CHECK(parse(BLOCK("=")) == UCSPITLS_ERR_UNTERMINATED);
    /* Names. */
    CHECK(parse(BLOCK("=x\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("=\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("A B=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("A-B=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("A\n=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("\xc3\xa9=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("9A=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("A:host=1\0\0")) == UCSPITLS_ERR_BAD_NAME);
    CHECK(parse(BLOCK("A=1\0A=2\0\0")) == UCSPITLS_ERR_DUPLICATE);
    CHECK(parse(BLOCK("AB=1\0A=2\0\0")) == 0);
    CHECK(parse(BLOCK("A=1\0AB=2\0\0")) == 0);
    /* Embedded garbage between entries. */
    CHECK(parse(BLOCK("A=1\0\x01\x02\0\0")) == UCSPITLS_ERR_BARE_NAME);
    CHECK(parse(BLOCK("A=1\0\xff=\0\0")) == UCSPITLS_ERR_BAD_NAME);

    /* Entry count: 64 accepted, 65 refused. */
    char big[UCSPITLS_BLOCK_MAX + 16];
    size_t len = 0;
    for (int i = 0; i < UCSPITLS_VARS_MAX; i++) {
        int n = snprintf(big + len, sizeof big - len, "V%d=x", i);
        len += (size_t)n + 1; /* keep snprintf's \0 as the entry terminator */
    }
    big[len] = '\0';
    CHECK(parse(big, len + 1) == 0);
    CHECK(parse(big, len) == 0);
    len += (size_t)snprintf(big + len, sizeof big - len, "V64=x") + 1;
    big[len] = '\0';
    CHECK(parse(big, len + 1) == UCSPITLS_ERR_TOO_MANY);

    /* Size: exactly 64 KiB accepted, one more byte refused before parsing. */
    memset(big, 'v', sizeof big);
    memcpy(big, "A=", 2);
    big[UCSPITLS_BLOCK_MAX - 2] = '\0';
    big[UCSPITLS_BLOCK_MAX - 1] = '\0';
    CHECK(parse(big, UCSPITLS_BLOCK_MAX) == 0);
    big[UCSPITLS_BLOCK_MAX - 1] = 'v';
    big[UCSPITLS_BLOCK_MAX] = '\0';
    CHECK(parse(big, UCSPITLS_BLOCK_MAX) == UCSPITLS_ERR_UNTERMINATED);
    big[UCSPITLS_BLOCK_MAX - 1] = '\0';
    big[UCSPITLS_BLOCK_MAX] = '\0';
    CHECK(parse(big, UCSPITLS_BLOCK_MAX + 1) == UCSPITLS_ERR_TOO_BIG);

    /* Every prefix of a good block either parses or fails cleanly. */
    static const char good[] = "SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=X\0\0";
    for (size_t i = 0; i < sizeof good - 1; i++)
        (void)parse(good, i);
    CHECK(parse(good, 21) == 0);
    CHECK(parse(good, 20) == UCSPITLS_ERR_UNTERMINATED);
}

static void test_encode(void)
{
    char buf[256];
    size_t len = 0;
    struct ucspitls_vars v;
    struct ucspitls_var in[3] = {
        {"SSL_PROTOCOL", "TLSv1.3", 7},
        {"SSL_CIPHER", "TLS_AES_256_GCM_SHA384", 22},
        {"EMPTY", "", 0},
    };

    CHECK(ucspitls_vars_encode(in, 3, buf, sizeof buf, &len) == 0);
    CHECK(len == sizeof("SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_256_GCM_SHA384\0EMPTY=\0\0") - 1);
    CHECK(memcmp(buf, "SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_256_GCM_SHA384\0EMPTY=\0\0",
                 len) == 0);
    CHECK(ucspitls_vars_parse(buf, len, &v) == 0);
    CHECK(v.count == 3);
    for (size_t i = 0; i < 3 && i < v.count; i++) {
        CHECK_STREQ(v.entries[i].name, in[i].name);
        CHECK(v.entries[i].value_len == in[i].value_len);
        CHECK(memcmp(v.entries[i].value, in[i].value, in[i].value_len) == 0);
    }
    ucspitls_vars_free(&v);

    CHECK(ucspitls_vars_encode(NULL, 0, buf, sizeof buf, &len) == 0);
    CHECK(len == 2 && buf[0] == '\0' && buf[1] == '\0');
    CHECK(parse(buf, len) == 0);

    /* Size query and too-small buffer. */
    CHECK(ucspitls_vars_encode(in, 1, NULL, 0, &len) == UCSPITLS_ERR_NOSPACE);
    CHECK(len == 22);
    CHECK(ucspitls_vars_encode(in, 1, buf, 21, &len) == UCSPITLS_ERR_NOSPACE);
    CHECK(ucspitls_vars_encode(in, 1, buf, 22, &len) == 0);

    struct ucspitls_var bad_nul = {"A", "x\0y", 3};
    CHECK(ucspitls_vars_encode(&bad_nul, 1, buf, sizeof buf, &len) == UCSPITLS_ERR_BAD_VALUE);
    struct ucspitls_var bad_name[] = {{"", "x", 1}, {"A=B", "x", 1}, {"A B", "x", 1},
                                      {"1A", "x", 1}};
    for (size_t i = 0; i < sizeof bad_name / sizeof bad_name[0]; i++)
        CHECK(ucspitls_vars_encode(&bad_name[i], 1, buf, sizeof buf, &len) ==
              UCSPITLS_ERR_BAD_NAME);
    struct ucspitls_var dup[] = {{"A", "1", 1}, {"A", "2", 1}};
    CHECK(ucspitls_vars_encode(dup, 2, buf, sizeof buf, &len) == UCSPITLS_ERR_DUPLICATE);

    struct ucspitls_var many[UCSPITLS_VARS_MAX + 1];
    char names[UCSPITLS_VARS_MAX + 1][8];
    for (int i = 0; i <= UCSPITLS_VARS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "N%d", i);
        many[i] = (struct ucspitls_var){names[i], "v", 1};
    }
    char *out = malloc(UCSPITLS_BLOCK_MAX);
    CHECK(out != NULL);
    if (out) {
        CHECK(ucspitls_vars_encode(many, UCSPITLS_VARS_MAX, out, UCSPITLS_BLOCK_MAX, &len) == 0);
        CHECK(parse(out, len) == 0);
        CHECK(ucspitls_vars_encode(many, UCSPITLS_VARS_MAX + 1, out, UCSPITLS_BLOCK_MAX, &len) ==
              UCSPITLS_ERR_TOO_MANY);
        /* The largest value that fits: "A=" + value + "\0" + "\0" = 64 KiB. */
        char *val = malloc(UCSPITLS_BLOCK_MAX);
        CHECK(val != NULL);
        if (val) {
            memset(val, 'z', UCSPITLS_BLOCK_MAX);
            struct ucspitls_var huge = {"A", val, UCSPITLS_BLOCK_MAX - 4};
            CHECK(ucspitls_vars_encode(&huge, 1, out, UCSPITLS_BLOCK_MAX, &len) == 0);
            CHECK(len == UCSPITLS_BLOCK_MAX);
            CHECK(parse(out, len) == 0);
            huge.value_len++;
            CHECK(ucspitls_vars_encode(&huge, 1, out, UCSPITLS_BLOCK_MAX, &len) ==
                  UCSPITLS_ERR_TOO_BIG);
            huge.value_len = (size_t)-1;
            CHECK(ucspitls_vars_encode(&huge, 1, out, UCSPITLS_BLOCK_MAX, &len) ==
                  UCSPITLS_ERR_TOO_BIG);
            free(val);
        }
        free(out);
    }
}

/* ---- ucspitls_start against a fake server ---- */

enum fake_kind {
    FAKE_REPLY,          /* expect cmd, write reply, close ctl */
    FAKE_REPLY_BYTEWISE, /* expect cmd, reply one byte at a time, keep ctl open */
    FAKE_HOLD_CTL,       /* expect cmd, write nothing, keep ctl open ('y') */
};

struct fake {
    enum fake_kind kind;
    char want_cmd;
    const char *reply;
    size_t reply_len;
};

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t read_full(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* The server side.  After the control exchange it sends "hello" down the
 * app's read pipe and expects "world" then EOF on the app's write pipe, which
 * proves the pipes ended up on the app's fds 0/1.  Exit 0 = all as expected. */
static void fake_server(const struct fake *f, int ctl, int to_app, int from_app)
{
    char c;
    char buf[16];

    signal(SIGPIPE, SIG_IGN);
    alarm(10);
    if (read_full(ctl, &c, 1) != 1 || c != f->want_cmd)
        _exit(10);
    if (f->kind == FAKE_REPLY_BYTEWISE) {
        for (size_t i = 0; i < f->reply_len; i++) {
            if (write_all(ctl, f->reply + i, 1) < 0)
                _exit(11);
            usleep(1000);
        }
    } else if (f->kind == FAKE_REPLY) {
        /* The app may close ctl early (oversized reply): ignore EPIPE. */
        (void)write_all(ctl, f->reply, f->reply_len);
        close(ctl);
        if (f->reply_len == 0 || f->reply_len > UCSPITLS_BLOCK_MAX)
            _exit(0);
    }
    if (write_all(to_app, "hello", 5) < 0)
        _exit(12);
    close(to_app);
    ssize_t n = read_full(from_app, buf, sizeof buf);
    if (n != 5 || memcmp(buf, "world", 5) != 0)
        _exit(13);
    /* Only now does a holding server let go of ctl: the app must not have
     * waited for it. */
    if (f->kind != FAKE_REPLY) {
        if (read_full(ctl, &c, 1) != 0) /* app closed its end: EOF */
            _exit(14);
        close(ctl);
    }
    _exit(0);
}

static void set_env_fds(int c, int r, int w)
{
    char b[16];
    snprintf(b, sizeof b, "%d", c);
    setenv("SSLCTLFD", b, 1);
    snprintf(b, sizeof b, "%d", r);
    setenv("SSLREADFD", b, 1);
    snprintf(b, sizeof b, "%d", w);
    setenv("SSLWRITEFD", b, 1);
}

static int same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Runs ucspitls_start(cmd) against the fake server; returns its result and
 * checks the data path and the server's verdict.  fds 0/1 of the test are
 * saved and restored around it. */
static int run_start(const struct fake *f, char cmd, struct ucspitls_vars *out)
{
    int sv[2], to_app[2], from_app[2];
    int save0 = dup(0), save1 = dup(1);
    int rc, status;

    CHECK(save0 >= 0 && save1 >= 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(pipe(to_app) == 0);
    CHECK(pipe(from_app) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        close(to_app[0]);
        close(from_app[1]);
        fake_server(f, sv[0], to_app[1], from_app[0]);
    }
    close(sv[0]);
    close(to_app[1]);
    close(from_app[0]);
    set_env_fds(sv[1], to_app[0], from_app[1]);
    struct stat pipe_in;
    CHECK(fstat(to_app[0], &pipe_in) == 0);

    alarm(20);
    rc = ucspitls_start(cmd, out);
    alarm(0);
    if (rc == 0) {
        char buf[8];
        struct stat now;
        CHECK(fstat(0, &now) == 0 && now.st_ino == pipe_in.st_ino);
        CHECK(!same_file(0, save0));
        /* Originals and ctl closed. */
        CHECK(fcntl(sv[1], F_GETFD) < 0 && errno == EBADF);
        CHECK(fcntl(to_app[0], F_GETFD) < 0 && errno == EBADF);
        CHECK(fcntl(from_app[1], F_GETFD) < 0 && errno == EBADF);
        CHECK(read_full(0, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0);
        CHECK(write_all(1, "world", 5) == 0);
    } else if (rc != UCSPITLS_ERR_ARG && rc != UCSPITLS_ERR_ENV) {
        /* Failure: fds 0/1 untouched, the three fds closed. */
        CHECK(same_file(0, save0) && same_file(1, save1));
        CHECK(fcntl(sv[1], F_GETFD) < 0 && errno == EBADF);
        CHECK(fcntl(to_app[0], F_GETFD) < 0 && errno == EBADF);
        CHECK(fcntl(from_app[1], F_GETFD) < 0 && errno == EBADF);
    } else {
        close(sv[1]);
        close(to_app[0]);
        close(from_app[1]);
    }
    CHECK(dup2(save0, 0) == 0);
    CHECK(dup2(save1, 1) == 1);
    close(save0);
    close(save1);
    CHECK(waitpid(pid, &status, 0) == pid);
    /* The server's own verdict matters where it ran to the end. */
    if (rc == 0 || rc == UCSPITLS_ERR_HANDSHAKE || rc == UCSPITLS_ERR_TOO_BIG) {
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "fake server status %d\n", status);
    }
    return rc;
}

static void test_start(void)
{
    struct ucspitls_vars v;
    static const char reply[] = "SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_128_GCM_SHA256\0\0";

    struct fake f1 = {FAKE_REPLY, 'Y', reply, sizeof reply - 1};
    CHECK(run_start(&f1, 'Y', &v) == 0);
    CHECK(v.count == 2);
    CHECK_STREQ(ucspitls_vars_get(&v, "SSL_PROTOCOL"), "TLSv1.3");
    CHECK_STREQ(ucspitls_vars_get(&v, "SSL_CIPHER"), "TLS_AES_128_GCM_SHA256");
    ucspitls_vars_free(&v);

    /* 'Y' with a NULL out: read and dropped. */
    CHECK(run_start(&f1, 'Y', NULL) == 0);

    /* Reply dribbled byte by byte, ctl left open (fehcom style). */
    struct fake f2 = {FAKE_REPLY_BYTEWISE, 'Y', reply, sizeof reply - 1};
    CHECK(run_start(&f2, 'Y', &v) == 0);
    CHECK(v.count == 2);
    ucspitls_vars_free(&v);

    /* Empty block "\0", ctl left open. */
    struct fake f2b = {FAKE_REPLY_BYTEWISE, 'Y', "\0", 1};
    CHECK(run_start(&f2b, 'Y', &v) == 0);
    CHECK(v.count == 0);
    ucspitls_vars_free(&v);

    /* Reply ending at EOF without the final extra \0. */
    struct fake f3 = {FAKE_REPLY, 'Y', "A=1\0B=2\0", 8};
    CHECK(run_start(&f3, 'Y', &v) == 0);
    CHECK_STREQ(ucspitls_vars_get(&v, "B"), "2");
    ucspitls_vars_free(&v);

    /* 'y': no read of ctl, which the server keeps open until data flows. */
    struct fake f4 = {FAKE_HOLD_CTL, 'y', NULL, 0};
    memset(&v, 0xa5, sizeof v); /* uninitialised on entry is allowed */
    CHECK(run_start(&f4, 'y', &v) == 0);
    CHECK(v.count == 0 && v.storage == NULL);

    /* Handshake failure: EOF on ctl with no data. */
    struct fake f5 = {FAKE_REPLY, 'Y', "", 0};
    CHECK(run_start(&f5, 'Y', &v) == UCSPITLS_ERR_HANDSHAKE);
    CHECK(v.count == 0 && v.storage == NULL);

    /* Malformed and oversized replies. */
    struct fake f6 = {FAKE_REPLY, 'Y', "SSL_PROTOCOL\0\0", 14};
    CHECK(run_start(&f6, 'Y', &v) == UCSPITLS_ERR_BARE_NAME);
    struct fake f7 = {FAKE_REPLY, 'Y', "A=1", 3};
    CHECK(run_start(&f7, 'Y', &v) == UCSPITLS_ERR_UNTERMINATED);
    char *huge = malloc(UCSPITLS_BLOCK_MAX + 100);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'a', UCSPITLS_BLOCK_MAX + 100);
        huge[1] = '=';
        struct fake f8 = {FAKE_REPLY, 'Y', huge, UCSPITLS_BLOCK_MAX + 100};
        CHECK(run_start(&f8, 'Y', &v) == UCSPITLS_ERR_TOO_BIG);
        free(huge);
    }

    /* Bad command byte: refused before anything is touched. */
    struct fake f9 = {FAKE_REPLY, 'x', "", 0};
    CHECK(run_start(&f9, 'x', &v) == UCSPITLS_ERR_ARG);
}

static void test_env(void)
{
    int p[2], q[2];
    int c = -1, r = -1, w = -1;
    char b[3][16];
    struct ucspitls_vars v;

    CHECK(pipe(p) == 0 && pipe(q) == 0);
    snprintf(b[0], sizeof b[0], "%d", p[0]);
    snprintf(b[1], sizeof b[1], "%d", p[1]);
    snprintf(b[2], sizeof b[2], "%d", q[0]);

    setenv("SSLCTLFD", b[0], 1);
    setenv("SSLREADFD", b[1], 1);
    setenv("SSLWRITEFD", b[2], 1);
    CHECK(ucspitls_env_fds(&c, &r, &w) == 0);
    CHECK(c == p[0] && r == p[1] && w == q[0]);
    CHECK(ucspitls_env_fds(NULL, NULL, NULL) == 0);

    static const char *bad[] = {"", "x", "3x", " 3", "3 ", "+3", "-3", "03", "0", "1", "2",
                                "99999999999999999999", "2147483648", "0x5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SSLREADFD", bad[i], 1);
        CHECK(ucspitls_env_fds(&c, &r, &w) == UCSPITLS_ERR_ENV);
        CHECK(ucspitls_start('Y', &v) == UCSPITLS_ERR_ENV);
    }
    setenv("SSLREADFD", b[0], 1); /* equal to SSLCTLFD */
    CHECK(ucspitls_env_fds(&c, &r, &w) == UCSPITLS_ERR_ENV);
    setenv("SSLREADFD", "1000", 1); /* not open */
    CHECK(ucspitls_env_fds(&c, &r, &w) == UCSPITLS_ERR_ENV);
    unsetenv("SSLREADFD");
    CHECK(ucspitls_env_fds(&c, &r, &w) == UCSPITLS_ERR_ENV);
    CHECK(ucspitls_start('y', NULL) == UCSPITLS_ERR_ENV);
    /* Nothing was closed by the refusals. */
    CHECK(fcntl(p[0], F_GETFD) >= 0 && fcntl(p[1], F_GETFD) >= 0 && fcntl(q[0], F_GETFD) >= 0);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* ucspitls_drop_pending: drops exactly what is there, never blocks, and
 * gives up on a client that keeps sending. */
static void test_drop_pending(void)
{
    int p[2];
    char big[9000];

    CHECK(pipe(p) == 0);
    CHECK(ucspitls_drop_pending(p[0], 100) == 0); /* nothing there: no wait */
    CHECK(write(p[1], "MAIL FROM:<x>\r\n", 15) == 15);
    CHECK(ucspitls_drop_pending(p[0], 100) == 15);
    CHECK(ucspitls_drop_pending(p[0], 100) == 0);
    memset(big, 'x', sizeof big);
    CHECK(write(p[1], big, sizeof big) == (ssize_t)sizeof big);
    CHECK(ucspitls_drop_pending(p[0], 4096) == UCSPITLS_ERR_TOO_BIG);
    close(p[1]);
    CHECK(ucspitls_drop_pending(p[0], 1 << 20) >= 0); /* the rest, then EOF */
    close(p[0]);
}

int main(void)
{
    test_drop_pending();
    signal(SIGPIPE, SIG_IGN);
    test_level();
    test_parse_good();
    test_parse_hostile();
    test_encode();
    test_env();
    test_start();
    return check_done("test_appkit");
}

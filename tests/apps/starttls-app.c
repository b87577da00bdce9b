/* starttls-app: a minimal POP3 or IMAP server side of STARTTLS, for the
 * tlsbench tests (tests/e2e/test_tlsbench.py).  Run under a UCSPI-TLS
 * server in delayed mode (tlsserver -n): it greets in plaintext on fds 0/1,
 * answers the STARTTLS command, hands the connection to the TLS server with
 * ucspitls_start('y'), then execs PROG (bench-gen, bench-sink, cat ...) on
 * the TLS session, so that what the client checks after TLS is the usual
 * benchmark data.
 *
 * Usage: starttls-app [-b BEHAVIOUR] pop3|imap PROG [ARG...]
 *
 * The dialog:
 *   pop3  greeting "+OK ..."; CAPA lists STLS; STLS -> "+OK ..."; QUIT
 *   imap  greeting "* OK [CAPABILITY ...] ..."; TAG CAPABILITY;
 *         TAG STARTTLS -> "* CAPABILITY ..." (untagged) then "TAG OK ...";
 *         TAG LOGOUT
 *   anything else is an error reply ("-ERR", "TAG BAD") and the dialog goes
 *   on.
 *
 * BEHAVIOUR (default ok), what a client must cope with:
 *   ok            as above
 *   refuse        the STARTTLS command is refused ("-ERR", "TAG NO")
 *   bad-greeting  the greeting is not the protocol's
 *   bad-reply     the reply to STARTTLS is not the protocol's
 *   inject        the positive reply to STARTTLS is followed, in the same
 *                 write, by plaintext posing as the start of the TLS session
 *                 (the client must not take it as TLS); then exit
 *   silent        no reply to STARTTLS; waits for the client to go away
 * Without $UCSPITLS or the UCSPI-TLS fds the STARTTLS command is refused.
 *
 * Plaintext input is read with read(2) into our own buffer, so that what a
 * client pipelined after STARTTLS is known and dropped (CVE-2011-0411).
 * Diagnostics go to stderr (the server's log).
 *
 * Exit codes: 0 after QUIT/LOGOUT or EOF, 100 usage, 111 I/O error,
 * timeout, failed TLS start or exec. */
#include "ucspitls_app.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE_MAX_LEN 1000
#define IDLE_MS (60 * 1000)
#define DRAIN_MAX (1024 * 1024)

enum proto { POP3, IMAP };
enum behaviour { B_OK, B_REFUSE, B_BAD_GREETING, B_BAD_REPLY, B_INJECT, B_SILENT };

static const char *const behaviour_names[] = {"ok", "refuse", "bad-greeting", "bad-reply",
                                              "inject", "silent"};

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;

    fputs("starttls-app: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(111);
}

/* Writes the whole of s to fd 1 in one write(2) when it fits the pipe (so
 * that `inject` puts its two parts in one segment). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    char buf[2048];
    const char *p = buf;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        die("reply too long");
    while (n > 0) {
        ssize_t w = write(1, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("write: %s", strerror(errno));
        p += w;
        n -= (int)w;
    }
}

static struct {
    char buf[4096];
    size_t start, end;
} in;

/* The next line, without CR LF, into line (LINE_MAX_LEN + 1 bytes).
 * Returns 0, or -1 at EOF.  Longer lines end the connection. */
static int read_line(char *line)
{
    for (;;) {
        char *nl = memchr(in.buf + in.start, '\n', in.end - in.start);
        struct pollfd p = {.fd = 0, .events = POLLIN};
        ssize_t n;

        if (nl != NULL) {
            size_t len = (size_t)(nl - (in.buf + in.start));
            if (len > LINE_MAX_LEN)
                die("line longer than %d bytes", LINE_MAX_LEN);
            memcpy(line, in.buf + in.start, len);
            if (len > 0 && line[len - 1] == '\r')
                len--;
            line[len] = '\0';
            in.start = (size_t)(nl + 1 - in.buf);
            return 0;
        }
        if (in.end - in.start > LINE_MAX_LEN)
            die("line longer than %d bytes", LINE_MAX_LEN);
        memmove(in.buf, in.buf + in.start, in.end - in.start);
        in.end -= in.start;
        in.start = 0;
        n = poll(&p, 1, IDLE_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            die("idle for %d s", IDLE_MS / 1000);
        n = read(0, in.buf + in.end, sizeof in.buf - in.end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("read: %s", strerror(errno));
        if (n == 0)
            return -1;
        in.end += (size_t)n;
    }
}

/* Waits for the client to go away (behaviour silent), bounded by IDLE_MS. */
static _Noreturn void wait_for_eof(void)
{
    char line[LINE_MAX_LEN + 1];

    while (read_line(line) == 0)
        ;
    exit(0);
}

/* After a STARTTLS command: drop what the client pipelined behind it (our
 * buffer and the kernel's), send the go-ahead, start TLS and run the
 * program on the TLS session. */
static _Noreturn void start_tls(const char *reply, char **prog)
{
    long dropped;
    int rc;

    in.start = in.end = 0;
    dropped = ucspitls_drop_pending(0, DRAIN_MAX);
    if (dropped < 0)
        die("client keeps sending after STARTTLS");
    say("%s", reply);
    rc = ucspitls_start('y', NULL);
    if (rc != 0)
        die("ucspitls_start: %s", ucspitls_strerror(rc));
    signal(SIGPIPE, SIG_DFL); /* PROG starts with the usual disposition */
    execvp(prog[0], prog);
    die("exec %s: %s", prog[0], strerror(errno));
}

static int tls_available(void)
{
    return ucspitls_level(getenv("UCSPITLS")) != UCSPITLS_OFF &&
           ucspitls_env_fds(NULL, NULL, NULL) == 0;
}

static _Noreturn void pop3(enum behaviour b, char **prog)
{
    char line[LINE_MAX_LEN + 1];

    say(b == B_BAD_GREETING ? "220 starttls-app: an SMTP greeting, not POP3\r\n"
                            : "+OK starttls-app POP3 ready\r\n");
    while (read_line(line) == 0) {
        if (strcasecmp(line, "CAPA") == 0) {
            say("+OK capabilities\r\n%sUSER\r\n.\r\n", tls_available() ? "STLS\r\n" : "");
        } else if (strcasecmp(line, "QUIT") == 0) {
            say("+OK bye\r\n");
            exit(0);
        } else if (strcasecmp(line, "STLS") != 0) {
            say("-ERR unknown command\r\n");
        } else if (b == B_REFUSE || !tls_available()) {
            say("-ERR STLS is not available here\r\n");
        } else if (b == B_BAD_REPLY) {
            say("* OK an IMAP reply, not POP3\r\n");
        } else if (b == B_INJECT) {
            say("+OK begin TLS\r\n+OK injected plaintext\r\n");
            exit(0);
        } else if (b == B_SILENT) {
            wait_for_eof();
        } else {
            start_tls("+OK begin TLS\r\n", prog);
        }
    }
    exit(0);
}

static _Noreturn void imap(enum behaviour b, char **prog)
{
    char line[LINE_MAX_LEN + 1], tag[64], reply[128];

    say(b == B_BAD_GREETING ? "+OK starttls-app: a POP3 greeting, not IMAP\r\n"
                            : "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] "
                              "starttls-app IMAP ready\r\n");
    while (read_line(line) == 0) {
        const char *sp = strchr(line, ' ');
        const char *cmd = sp ? sp + 1 : "";
        size_t tl = sp ? (size_t)(sp - line) : strlen(line);

        if (tl == 0 || tl >= sizeof tag) {
            say("* BAD missing or long tag\r\n");
            continue;
        }
        memcpy(tag, line, tl);
        tag[tl] = '\0';
        if (strcasecmp(cmd, "CAPABILITY") == 0) {
            say("* CAPABILITY IMAP4rev1 %sLOGINDISABLED\r\n%s OK done\r\n",
                tls_available() ? "STARTTLS " : "", tag);
        } else if (strcasecmp(cmd, "LOGOUT") == 0) {
            say("* BYE logging out\r\n%s OK done\r\n", tag);
            exit(0);
        } else if (strcasecmp(cmd, "STARTTLS") != 0) {
            say("%s BAD unknown command\r\n", tag);
        } else if (b == B_REFUSE || !tls_available()) {
            say("%s NO STARTTLS is not available here\r\n", tag);
        } else if (b == B_BAD_REPLY) {
            say("+OK a POP3 reply, not IMAP\r\n");
        } else if (b == B_INJECT) {
            say("%s OK begin TLS\r\n%s OK injected plaintext\r\n", tag, tag);
            exit(0);
        } else if (b == B_SILENT) {
            wait_for_eof();
        } else {
            /* untagged data first, as servers may send it (RFC 3501 7) */
            snprintf(reply, sizeof reply,
                     "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n%s OK begin TLS now\r\n", tag);
            start_tls(reply, prog);
        }
    }
    exit(0);
}

static _Noreturn void usage(void)
{
    fputs("usage: starttls-app [-b ok|refuse|bad-greeting|bad-reply|inject|silent] "
          "pop3|imap PROG [ARG...]\n",
          stderr);
    exit(100);
}

int main(int argc, char **argv)
{
    enum behaviour b = B_OK;
    int i = 1;

    signal(SIGPIPE, SIG_IGN); /* a client that goes away is a write error */
    if (i + 1 < argc && strcmp(argv[i], "-b") == 0) {
        size_t k;
        for (k = 0; k < sizeof behaviour_names / sizeof behaviour_names[0]; k++)
            if (strcmp(argv[i + 1], behaviour_names[k]) == 0)
                break;
        if (k == sizeof behaviour_names / sizeof behaviour_names[0])
            usage();
        b = (enum behaviour)k;
        i += 2;
    }
    if (argc - i < 2)
        usage();
    if (strcmp(argv[i], "pop3") == 0)
        pop3(b, argv + i + 1);
    if (strcmp(argv[i], "imap") == 0)
        imap(b, argv + i + 1);
    usage();
}

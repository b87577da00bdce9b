/* smtpd-demo: a small SMTP server for the ucspi-tls demo.
 *
 * UCSPI style: one connection per process, plaintext SMTP on fds 0/1, run
 * by the TLS server (tlsserver/tlsd) per connection.  With $UCSPITLS set
 * (and the server's SSLCTLFD/SSLREADFD/SSLWRITEFD present) it offers
 * STARTTLS and hands the connection to the TLS server with ucspitls_start().
 * Messages go to the Maildir $MAILDIR (default ./Maildir).
 *
 * Input is read with read(2) into our own buffer, never stdio, so that on
 * STARTTLS we know exactly which plaintext bytes the client pipelined after
 * the command and can throw them away (CVE-2011-0411: such bytes must never
 * be taken as if they had arrived under TLS).
 *
 * Exit codes: 0 after QUIT, 111 otherwise (EOF, timeout, I/O error, failed
 * TLS start). */
#include "ucspitls_app.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_CONTENT 998               /* RFC 5321: 1000 with CRLF */
#define MSG_MAX (10L * 1024 * 1024)        /* advertised as SIZE */
#define IDLE_TIMEOUT_MS (300 * 1000)
#define RCPT_MAX 100
#define PATH_ADDR_MAX 256
#define DRAIN_MAX (1024 * 1024)            /* give up on a client that keeps pushing */
#define EXIT_TEMP 111

/* ---- output ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply, written at once.  A client that went away makes write fail
 * (SIGPIPE is ignored): nothing more to do for this connection. */
__attribute__((format(printf, 1, 2))) static void reply(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        exit(EXIT_TEMP);
    size_t len = (size_t)n < sizeof buf - 2 ? (size_t)n : sizeof buf - 3;
    buf[len++] = '\r';
    buf[len++] = '\n';
    if (write_all(1, buf, len) < 0)
        exit(EXIT_TEMP);
}

/* ---- input: a line reader over read(2) ---- */

enum line_status { LINE_OK, LINE_TOOLONG, LINE_EOF, LINE_TIMEOUT, LINE_ERR };

struct reader {
    char buf[4096]; /* > LINE_MAX_CONTENT + 2, so one full line always fits */
    size_t start, end;
};

static struct reader in;

/* Waits up to the idle timeout for input, then reads what is there. */
static enum line_status fill(struct reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int pr = poll(&p, 1, IDLE_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return LINE_ERR;
        if (pr == 0)
            return LINE_TIMEOUT;
        ssize_t n = read(0, r->buf + r->end, sizeof r->buf - r->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return LINE_ERR;
        if (n == 0)
            return LINE_EOF;
        r->end += (size_t)n;
        return LINE_OK;
    }
}

/* Next line without its terminator into line[0..LINE_MAX_CONTENT], NUL
 * terminated, *len its length, *crlf whether it ended in CRLF (not a bare
 * LF).  An over-long line is consumed up to its LF and reported as
 * LINE_TOOLONG.  A final line without LF at EOF is dropped (LINE_EOF). */
static enum line_status read_line(struct reader *r, char *line, size_t *len, int *crlf)
{
    int discarding = 0;

    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            size_t n = (size_t)(nl - (r->buf + r->start));
            const char *s = r->buf + r->start;
            r->start += n + 1;
            if (discarding)
                return LINE_TOOLONG;
            *crlf = n > 0 && s[n - 1] == '\r';
            if (*crlf)
                n--;
            if (n > LINE_MAX_CONTENT)
                return LINE_TOOLONG;
            memcpy(line, s, n);
            line[n] = '\0';
            *len = n;
            return LINE_OK;
        }
        if (r->end - r->start > LINE_MAX_CONTENT + 1) {
            /* No LF within the limit: drop what we have, find the end. */
            discarding = 1;
            r->start = r->end = 0;
        }
        enum line_status st = fill(r);
        if (st != LINE_OK)
            return st;
    }
}

/* CVE-2011-0411: everything the client sent after STARTTLS and before
 * seeing our 220 is plaintext that must not survive into the TLS session.
 * Drop our buffer and whatever the kernel already holds for fd 0.  This runs
 * before the 220 goes out, so the ClientHello (sent after it) cannot be
 * among the bytes dropped. */
static size_t drain_pipelined(struct reader *r)
{
    size_t dropped = r->end - r->start;
    long kernel;

    r->start = r->end = 0;
    kernel = ucspitls_drop_pending(0, DRAIN_MAX);
    if (kernel >= 0)
        dropped += (size_t)kernel;
    if (kernel < 0 || dropped >= DRAIN_MAX) {
        fprintf(stderr, "smtpd-demo: client keeps sending after STARTTLS, giving up\n");
        exit(EXIT_TEMP);
    }
    return dropped;
}

/* ---- session state ---- */

struct session {
    char host[256];
    char helo[256];
    int have_helo;
    int tls_on;
    int level;
    int starttls_ok; /* the server gave us the fds to start TLS with */
    int in_mail;
    char from[PATH_ADDR_MAX + 1];
    char rcpt[RCPT_MAX][PATH_ADDR_MAX + 1];
    size_t nrcpt;
};

static void reset_transaction(struct session *s)
{
    s->in_mail = 0;
    s->from[0] = '\0';
    s->nrcpt = 0;
}

/* Copies text that ends up in a header (HELO argument, TLS values from the
 * server, env) keeping printable ASCII only, so no peer can inject header
 * lines; the rest becomes '_'. */
static void clean_copy(char *out, size_t cap, const char *in_text)
{
    size_t i = 0;
    for (; in_text != NULL && in_text[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)in_text[i];
        out[i] = (c > 0x20 && c < 0x7f) ? (char)c : '_';
    }
    out[i] = '\0';
}

static void get_hostname(char *out, size_t cap)
{
    char raw[256];
    size_t j = 0;

    if (gethostname(raw, sizeof raw) < 0)
        raw[0] = '\0';
    raw[sizeof raw - 1] = '\0';
    /* Used in replies and in file names: letters, digits, '.', '-' only. */
    for (size_t i = 0; raw[i] != '\0' && j + 1 < cap; i++) {
        char c = raw[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-')
            out[j++] = c;
    }
    out[j] = '\0';
    if (j == 0)
        snprintf(out, cap, "localhost");
}

/* Case-insensitive "VERB" match: the verb and then end or a space. */
static int is_verb(const char *line, const char *verb)
{
    size_t n = strlen(verb);
    return strncasecmp(line, verb, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

/* Parses "<prefix><addr>[ params]" (prefix like "FROM:", case-insensitive,
 * optional spaces before '<').  addr: printable ASCII without '<' '>',
 * at most PATH_ADDR_MAX bytes; empty allowed only if allow_empty.
 * *params points at what follows '>'.  Returns 0 or -1. */
static int parse_path(const char *arg, const char *prefix, int allow_empty, char *addr,
                      const char **params)
{
    size_t plen = strlen(prefix);

    if (strncasecmp(arg, prefix, plen) != 0)
        return -1;
    arg += plen;
    while (*arg == ' ')
        arg++;
    if (*arg != '<')
        return -1;
    arg++;
    const char *close = strchr(arg, '>');
    if (close == NULL)
        return -1;
    size_t n = (size_t)(close - arg);
    if (n > PATH_ADDR_MAX || (n == 0 && !allow_empty))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c <= 0x20 || c >= 0x7f || c == '<')
            return -1;
    }
    memcpy(addr, arg, n);
    addr[n] = '\0';
    *params = close + 1;
    return 0;
}

/* SIZE=n among the MAIL parameters, if present and over the limit. */
static int size_too_big(const char *params)
{
    const char *p = params;
    while ((p = strcasestr(p, "SIZE=")) != NULL) {
        if (p == params || p[-1] == ' ') {
            p += 5;
            unsigned long long v = 0;
            int digits = 0;
            while (*p >= '0' && *p <= '9') {
                if (v > (unsigned long long)MSG_MAX)
                    return 1;
                v = v * 10 + (unsigned)(*p++ - '0');
                digits++;
            }
            return digits > 0 && v > (unsigned long long)MSG_MAX;
        }
        p += 5;
    }
    return 0;
}

/* ---- Maildir delivery ---- */

struct wbuf {
    int fd;
    int failed;
    int err; /* errno of the failure (ENOSPC on a full disk), for the log */
    size_t len;
    char buf[65536];
};

static void wflush(struct wbuf *w)
{
    if (!w->failed && w->len > 0 && write_all(w->fd, w->buf, w->len) < 0) {
        w->failed = 1;
        w->err = errno;
    }
    w->len = 0;
}

static void wput(struct wbuf *w, const char *p, size_t n)
{
    while (n > 0 && !w->failed) {
        size_t room = sizeof w->buf - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == sizeof w->buf)
            wflush(w);
    }
}

__attribute__((format(printf, 2, 3))) static void wformat(struct wbuf *w, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        w->failed = 1;
        w->err = EOVERFLOW;
        return;
    }
    wput(w, buf, (size_t)n);
}

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

struct delivery {
    char tmp[PATH_MAX];
    char new_[PATH_MAX];
    char name[512];
};

/* Creates the Maildir if needed and opens a fresh file in tmp/.  Returns
 * the fd or -1. */
static int open_delivery(const struct session *s, struct delivery *d)
{
    static unsigned counter;
    const char *md = getenv("MAILDIR");
    char sub[PATH_MAX];

    if (md == NULL || md[0] == '\0')
        md = "./Maildir";
    if (mkdir_ok(md) < 0)
        return -1;
    static const char *const subs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; i < 3; i++) {
        int n = snprintf(sub, sizeof sub, "%s/%s", md, subs[i]);
        if (n < 0 || (size_t)n >= sizeof sub || mkdir_ok(sub) < 0)
            return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int n = snprintf(d->name, sizeof d->name, "%lld.%ld.%u.%s", (long long)time(NULL),
                         (long)getpid(), counter++, s->host);
        if (n < 0 || (size_t)n >= sizeof d->name)
            return -1;
        int a = snprintf(d->tmp, sizeof d->tmp, "%s/tmp/%s", md, d->name);
        int b = snprintf(d->new_, sizeof d->new_, "%s/new/%s", md, d->name);
        if (a < 0 || (size_t)a >= sizeof d->tmp || b < 0 || (size_t)b >= sizeof d->new_)
            return -1;
        int fd = open(d->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

static void write_headers(const struct session *s, struct wbuf *w)
{
    char remote[64], proto[64], cipher[128], date[64];
    time_t now = time(NULL);
    struct tm tm;

    clean_copy(remote, sizeof remote, getenv("TCPREMOTEIP"));
    if (remote[0] == '\0')
        clean_copy(remote, sizeof remote, getenv("TCP6REMOTEIP"));
    if (remote[0] == '\0')
        snprintf(remote, sizeof remote, "unknown");
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        snprintf(date, sizeof date, "unknown");

    wformat(w, "Return-Path: <%s>\n", s->from);
    wformat(w, "Received: from %s (%s)\n\tby %s (smtpd-demo)", s->helo, remote, s->host);
    if (s->tls_on) {
        clean_copy(proto, sizeof proto, getenv("SSL_PROTOCOL"));
        clean_copy(cipher, sizeof cipher, getenv("SSL_CIPHER"));
        wformat(w, " with ESMTPS (%s %s)", proto[0] ? proto : "unknown",
                 cipher[0] ? cipher : "unknown");
    } else {
        wformat(w, " with ESMTP");
    }
    wformat(w, "\n\tfor <%s>; %s\n", s->rcpt[0], date);
}

/* DATA: reads the message up to CRLF.CRLF, storing it unstuffed with LF
 * line ends, and answers.  The file becomes visible in new/ only by the
 * final rename(), so a failure leaves nothing half-written there. */
static void do_data(struct session *s)
{
    static struct wbuf w;
    static char line[LINE_MAX_CONTENT + 1];
    struct delivery d;
    size_t len, size = 0;
    int crlf, too_big = 0, too_long = 0, bare_lf = 0;

    int fd = open_delivery(s, &d);
    if (fd < 0) {
        fprintf(stderr, "smtpd-demo: cannot create message file: %s\n", strerror(errno));
        reply("451 cannot store message now, try again later");
        return;
    }
    w.fd = fd;
    w.failed = 0;
    w.err = 0;
    w.len = 0;
    write_headers(s, &w);
    reply("354 go ahead, end with <CRLF>.<CRLF>");

    for (;;) {
        enum line_status st = read_line(&in, line, &len, &crlf);
        if (st == LINE_TOOLONG) {
            too_long = 1;
            continue;
        }
        if (st != LINE_OK) {
            /* Connection lost mid-message: nothing was accepted. */
            close(fd);
            unlink(d.tmp);
            if (st == LINE_TIMEOUT)
                reply("421 %s timeout", s->host);
            exit(EXIT_TEMP);
        }
        /* Only CRLF.CRLF ends the message: a bare-LF "." could be used to
         * smuggle a second message past another MTA. */
        if (crlf && len == 1 && line[0] == '.')
            break;
        if (!crlf)
            bare_lf = 1;
        const char *p = line;
        if (p[0] == '.') {
            p++;
            len--;
        }
        size += len + 1;
        if (size > (size_t)MSG_MAX)
            too_big = 1;
        if (too_big || too_long || bare_lf)
            continue;
        wput(&w, p, len);
        wput(&w, "\n", 1);
    }

    /* A full disk shows as a failed write (kept in w.err: the rest of the
     * message is still read, and those calls may touch errno), or only at
     * fsync() or close() on file systems that allocate late. */
    wflush(&w);
    int failed = w.failed, saved = w.err;
    if (!failed && !too_big && !too_long && !bare_lf && fsync(fd) < 0) {
        failed = 1;
        saved = errno;
    }
    if (close(fd) < 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed || too_big || too_long || bare_lf) {
        unlink(d.tmp);
        if (too_big)
            reply("552 message exceeds %ld bytes", MSG_MAX);
        else if (too_long)
            reply("500 line too long in message");
        else if (bare_lf)
            reply("554 bare LF in message");
        else {
            fprintf(stderr, "smtpd-demo: writing %s: %s\n", d.tmp, strerror(saved));
            reply("451 cannot store message now, try again later");
        }
    } else if (rename(d.tmp, d.new_) < 0) {
        fprintf(stderr, "smtpd-demo: rename to %s: %s\n", d.new_, strerror(errno));
        unlink(d.tmp);
        reply("451 cannot store message now, try again later");
    } else {
        fprintf(stderr, "smtpd-demo: delivered new/%s (%zu bytes)\n", d.name, size);
        reply("250 ok %s", d.name);
    }
    reset_transaction(s);
}

static void do_starttls(struct session *s, const char *arg)
{
    struct ucspitls_vars vars;

    if (arg[0] != '\0') {
        reply("501 syntax: STARTTLS");
        return;
    }
    if (s->tls_on) {
        reply("503 TLS already active");
        return;
    }
    if (s->level == UCSPITLS_OFF || !s->starttls_ok) {
        reply("502 unimplemented");
        return;
    }
    size_t dropped = drain_pipelined(&in);
    if (dropped > 0)
        fprintf(stderr, "smtpd-demo: discarded %zu bytes pipelined after STARTTLS\n", dropped);
    reply("220 ready to start TLS");
    int rc = ucspitls_start('Y', &vars);
    if (rc != 0) {
        /* The TLS server owns the connection now; nothing can be said to
         * the client any more. */
        exit(EXIT_TEMP);
    }
    if (ucspitls_vars_export(&vars) != 0) {
        ucspitls_vars_free(&vars);
        exit(EXIT_TEMP);
    }
    ucspitls_vars_free(&vars);
    s->tls_on = 1;
    /* RFC 3207: forget everything learnt before TLS. */
    s->have_helo = 0;
    s->helo[0] = '\0';
    reset_transaction(s);
    char proto[64], cipher[128];
    clean_copy(proto, sizeof proto, getenv("SSL_PROTOCOL"));
    clean_copy(cipher, sizeof cipher, getenv("SSL_CIPHER"));
    fprintf(stderr, "smtpd-demo: TLS started: %s %s\n", proto[0] ? proto : "unknown",
            cipher[0] ? cipher : "unknown");
}

static void do_ehlo(struct session *s, const char *arg, int extended)
{
    if (arg[0] == '\0') {
        reply("501 syntax: %s hostname", extended ? "EHLO" : "HELO");
        return;
    }
    clean_copy(s->helo, sizeof s->helo, arg);
    s->have_helo = 1;
    reset_transaction(s);
    if (!extended) {
        reply("250 %s", s->host);
        return;
    }
    char buf[512];
    int n = snprintf(buf, sizeof buf, "250-%s\r\n250-SIZE %ld\r\n%s250 8BITMIME\r\n", s->host,
                     MSG_MAX, (s->starttls_ok && !s->tls_on) ? "250-STARTTLS\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof buf || write_all(1, buf, (size_t)n) < 0)
        exit(EXIT_TEMP);
}

static void do_mail(struct session *s, const char *arg)
{
    const char *params;

    if (s->level == UCSPITLS_REQUIRED && !s->tls_on) {
        reply("530 Must issue a STARTTLS command first");
        return;
    }
    if (!s->have_helo) {
        reply("503 send EHLO or HELO first");
        return;
    }
    if (s->in_mail) {
        reply("503 nested MAIL command");
        return;
    }
    if (parse_path(arg, "FROM:", 1, s->from, &params) < 0) {
        reply("501 syntax: MAIL FROM:<address>");
        return;
    }
    if (size_too_big(params)) {
        reply("552 message exceeds %ld bytes", MSG_MAX);
        return;
    }
    s->in_mail = 1;
    s->nrcpt = 0;
    reply("250 ok");
}

static void do_rcpt(struct session *s, const char *arg)
{
    const char *params;

    if (!s->in_mail) {
        reply("503 send MAIL first");
        return;
    }
    if (s->nrcpt == RCPT_MAX) {
        reply("452 too many recipients");
        return;
    }
    if (parse_path(arg, "TO:", 0, s->rcpt[s->nrcpt], &params) < 0) {
        reply("501 syntax: RCPT TO:<address>");
        return;
    }
    s->nrcpt++;
    reply("250 ok");
}

int main(void)
{
    static struct session s;
    static char line[LINE_MAX_CONTENT + 1];
    size_t len;
    int crlf;

    /* A vanished client must show up as a write error, not kill us mid-file. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return EXIT_TEMP;
    get_hostname(s.host, sizeof s.host);
    s.level = ucspitls_level(getenv("UCSPITLS"));
    /* Immediate TLS with session variables (-s) means TLS is already on. */
    s.tls_on = getenv("SSL_PROTOCOL") != NULL;
    s.starttls_ok = s.level != UCSPITLS_OFF && ucspitls_env_fds(NULL, NULL, NULL) == 0;

    reply("220 %s ESMTP ucspi-tls demo", s.host);
    for (;;) {
        enum line_status st = read_line(&in, line, &len, &crlf);
        if (st == LINE_TOOLONG) {
            reply("500 line too long");
            continue;
        }
        if (st == LINE_TIMEOUT) {
            reply("421 %s timeout", s.host);
            return EXIT_TEMP;
        }
        if (st != LINE_OK)
            return EXIT_TEMP;
        /* The argument starts after the verb and one space. */
        const char *sp = strchr(line, ' ');
        const char *arg = sp ? sp + 1 : "";

        if (is_verb(line, "EHLO"))
            do_ehlo(&s, arg, 1);
        else if (is_verb(line, "HELO"))
            do_ehlo(&s, arg, 0);
        else if (is_verb(line, "STARTTLS"))
            do_starttls(&s, arg);
        else if (is_verb(line, "MAIL"))
            do_mail(&s, arg);
        else if (is_verb(line, "RCPT"))
            do_rcpt(&s, arg);
        else if (is_verb(line, "DATA")) {
            if (arg[0] != '\0')
                reply("501 syntax: DATA");
            else if (!s.in_mail || s.nrcpt == 0)
                reply("503 send RCPT first");
            else
                do_data(&s);
        } else if (is_verb(line, "RSET")) {
            reset_transaction(&s);
            reply("250 ok");
        } else if (is_verb(line, "NOOP")) {
            reply("250 ok");
        } else if (is_verb(line, "QUIT")) {
            reply("221 %s bye", s.host);
            return 0;
        } else {
            reply("502 unimplemented");
        }
    }
}

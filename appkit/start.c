/* The application's half of the STARTTLS hand-over: find the three fds the
 * server passed, send the command byte, read the `Y` reply, and put the
 * pipes where the rest of the program expects its input and output. */
#include "ucspitls_app.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Strict decimal fd number: what the server writes, nothing else.  A
 * lenient parse (atoi) would turn "", "x" or "-1" into fd 0 or garbage. */
static int parse_fd(const char *s, int *fd)
{
    long v = 0;

    if (s == NULL || s[0] == '\0')
        return -1;
    if (s[0] == '0' && s[1] != '\0')
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return -1;
    }
    *fd = (int)v;
    return 0;
}

int ucspitls_env_fds(int *ctl, int *rd, int *wr)
{
    int c, r, w;

    if (parse_fd(getenv("SSLCTLFD"), &c) < 0 || parse_fd(getenv("SSLREADFD"), &r) < 0 ||
        parse_fd(getenv("SSLWRITEFD"), &w) < 0)
        return UCSPITLS_ERR_ENV;
    /* 0/1 are the plaintext connection and 2 is stderr; equal fds would make
     * the moves below (and fd_move in qmail-style apps) destroy one. */
    if (c < 3 || r < 3 || w < 3 || c == r || c == w || r == w)
        return UCSPITLS_ERR_ENV;
    if (fcntl(c, F_GETFD) < 0 || fcntl(r, F_GETFD) < 0 || fcntl(w, F_GETFD) < 0)
        return UCSPITLS_ERR_ENV;
    if (ctl)
        *ctl = c;
    if (rd)
        *rd = r;
    if (wr)
        *wr = w;
    return 0;
}

/* One byte to the control socket.  MSG_NOSIGNAL: a server that already went
 * away must give us EPIPE, not kill the application.  The fallback to
 * write() covers a control fd that is not a socket (a pipe in tests or
 * home-grown servers). */
static int send_cmd(int fd, char cmd)
{
    for (;;) {
        ssize_t n = send(fd, &cmd, 1, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, &cmd, 1);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n >= 0)
            errno = EIO;
        return -1;
    }
}

/* The reply is complete once it ends in "\0\0" (last entry's \0 plus the
 * terminator) or is the bare empty block "\0".  Some servers (fehcom's)
 * leave the control socket open after replying, so EOF cannot be the only
 * end marker. */
static int reply_complete(const char *buf, size_t len)
{
    if (len >= 1 && buf[0] == '\0')
        return 1;
    return len >= 2 && buf[len - 1] == '\0' && buf[len - 2] == '\0';
}

/* Reads the reply into a heap buffer one larger than the limit, so that an
 * over-long reply is detected rather than silently cut. */
static int read_reply(int fd, struct ucspitls_vars *out)
{
    char *buf = malloc(UCSPITLS_BLOCK_MAX + 1);
    size_t len = 0;
    int rc;

    if (buf == NULL)
        return UCSPITLS_ERR_SYS;
    for (;;) {
        ssize_t n = read(fd, buf + len, UCSPITLS_BLOCK_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = UCSPITLS_ERR_SYS;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > UCSPITLS_BLOCK_MAX) {
            rc = UCSPITLS_ERR_TOO_BIG;
            goto out;
        }
        if (reply_complete(buf, len))
            break;
    }
    if (len == 0) {
        rc = UCSPITLS_ERR_HANDSHAKE;
        goto out;
    }
    rc = ucspitls_vars_parse(buf, len, out);
out:
    free(buf);
    return rc;
}

static int dup2_retry(int from, int to)
{
    int r;

    do
        r = dup2(from, to);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

/* Moves rd onto 0 and wr onto 1 whatever the numbers are: if wr sits on 0
 * it is first moved out of the way, or dup2(rd, 0) would destroy it.  (The
 * env check already rules that out; this keeps the function correct on its
 * own.) */
static int move_pipes(int rd, int wr)
{
    if (wr == 0) {
        int tmp = fcntl(wr, F_DUPFD, 3);
        if (tmp < 0)
            return -1;
        close(wr);
        wr = tmp;
    }
    if (rd != 0) {
        if (dup2_retry(rd, 0) < 0)
            return -1;
        if (rd != 1)
            close(rd);
    }
    if (wr != 1) {
        if (dup2_retry(wr, 1) < 0)
            return -1;
        close(wr);
    }
    return 0;
}

int ucspitls_start(char cmd, struct ucspitls_vars *out)
{
    struct ucspitls_vars scratch;
    int ctl, rd, wr, rc;

    /* out may be uninitialised: clear it, never free it, on entry. */
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (cmd != 'y' && cmd != 'Y')
        return UCSPITLS_ERR_ARG;
    rc = ucspitls_env_fds(&ctl, &rd, &wr);
    if (rc != 0)
        return rc;

    if (send_cmd(ctl, cmd) < 0) {
        rc = UCSPITLS_ERR_SYS;
        goto fail;
    }
    if (cmd == 'Y') {
        rc = read_reply(ctl, out != NULL ? out : &scratch);
        if (rc != 0)
            goto fail;
        if (out == NULL)
            ucspitls_vars_free(&scratch);
    }
    /* Closing ctl right away is what every server expects: for 'y' the
     * server reports nothing, for 'Y' the reply has been read. */
    close(ctl);
    ctl = -1;
    if (move_pipes(rd, wr) < 0) {
        int saved = errno;
        if (out != NULL)
            ucspitls_vars_free(out);
        /* Half-moved: close whichever originals are still ours. */
        if (fcntl(rd, F_GETFD) >= 0)
            close(rd);
        if (fcntl(wr, F_GETFD) >= 0)
            close(wr);
        errno = saved;
        return UCSPITLS_ERR_SYS;
    }
    return 0;

fail: {
    int saved = errno;
    close(ctl);
    close(rd);
    close(wr);
    errno = saved;
}
    return rc;
}

long ucspitls_drop_pending(int fd, size_t max)
{
    char scratch[4096];
    size_t dropped = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int pr = poll(&p, 1, 0);
        ssize_t n;

        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return UCSPITLS_ERR_SYS;
        if (pr == 0 || !(p.revents & (POLLIN | POLLHUP)))
            return (long)dropped;
        n = read(fd, scratch, sizeof scratch);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? (long)dropped : UCSPITLS_ERR_SYS;
        if (n == 0)
            return (long)dropped; /* EOF: nothing more to drop */
        dropped += (size_t)n;
        if (dropped > max)
            return UCSPITLS_ERR_TOO_BIG;
    }
}

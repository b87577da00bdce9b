/* tlsd: one connection already on fds 0 (read) and 1 (write), under
 * tcpserver, s6-tcpserver, inetd or systemd Accept=yes.  The process
 * becomes the worker itself. */
#include "internal.h"
#include "keyd.h"
#include "log.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

/* systemd Accept=yes without StandardInput=socket passes the connection
 * as fd 3 with $LISTEN_FDS=1 for our pid: use it (and hide the variables
 * from the app).  Returns 3, or -1 when not so started. */
static int systemd_connection(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    unsigned long p;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (pid == NULL || fds == NULL || strcmp(fds, "1") != 0 ||
        util_parse_uint(pid, 0x7fffffffUL, &p) < 0 || (pid_t)p != getpid())
        return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (getpeername(3, (struct sockaddr *)&ss, &len) < 0)
        return -1; /* not a connection (a listener: that is tlsserver's job) */
    fcntl(3, F_SETFD, FD_CLOEXEC);
    return 3;
}

int engine_handle(struct engine_config *cfg)
{
    struct tls_context *tls;
    struct conn_addr addr;
    struct keyd keyd;
    int code, channel;

    int sd = systemd_connection();
    int rfd = sd >= 0 ? sd : 0, wfd = sd >= 0 ? sd : 1;

    if (fcntl(rfd, F_GETFD) < 0 || fcntl(wfd, F_GETFD) < 0) {
        fprintf(stderr, "%s: fatal: fds 0 and 1 must be the connection\n",
                cfg->progname);
        return ENGINE_EXIT_PERMANENT;
    }
    tls = engine_startup(cfg, &keyd, 1, &channel);
    if (tls == NULL)
        return ENGINE_EXIT_TEMPORARY;
    /* keyd has reported ready: the worker keeps only its channel, not
     * keyd's control socket (keyd serves the channel, then ends) */
    keyd_forget(&keyd);
    /* tcpserver's variables are the truth when present; otherwise (inetd,
     * systemd) ask the socket; a pipe pair has no address at all. */
    if (conn_addr_from_env(&addr) < 0 && conn_addr_from_socket(rfd, &addr) < 0)
        addr.have = 0;
    /* conn_serve returns locked in: nothing may be freed or killed after
     * it (seccomp).  keyd ends by itself once its one channel closes. */
    code = conn_serve(cfg, tls, rfd, wfd, &addr, channel);
    return code;
}

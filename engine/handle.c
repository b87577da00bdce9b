/* tlsd: one connection already on fds 0 (read) and 1 (write), under
 * tcpserver, s6-tcpserver, inetd or systemd Accept=yes.  The process
 * becomes the worker itself. */
#include "internal.h"
#include "keyd.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

int engine_handle(struct engine_config *cfg)
{
    struct tls_context *tls;
    struct conn_addr addr;
    struct keyd keyd;
    int code, channel;

    if (fcntl(0, F_GETFD) < 0 || fcntl(1, F_GETFD) < 0) {
        fprintf(stderr, "%s: fatal: fds 0 and 1 must be the connection\n",
                cfg->progname);
        return ENGINE_EXIT_PERMANENT;
    }
    tls = engine_startup(cfg, &keyd, 1, &channel);
    if (tls == NULL)
        return ENGINE_EXIT_TEMPORARY;
    /* tcpserver's variables are the truth when present; otherwise (inetd,
     * systemd) ask the socket; a pipe pair has no address at all. */
    if (conn_addr_from_env(&addr) < 0 && conn_addr_from_socket(0, &addr) < 0)
        addr.have = 0;
    /* conn_serve returns locked in: nothing may be freed or killed after
     * it (seccomp).  keyd ends by itself once its one channel closes. */
    code = conn_serve(cfg, tls, 0, 1, &addr, channel);
    return code;
}

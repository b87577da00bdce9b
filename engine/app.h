/* Spawning the application with the UCSPI fd layout and environment. */
#ifndef UCSPITLS_ENGINE_APP_H
#define UCSPITLS_ENGINE_APP_H

#include "internal.h"

/* The fds given to the app child (all borrowed; the child moves them). */
struct app_fds {
    /* immediate mode: the plaintext pipes become fds 0 and 1 */
    int plain_in, plain_out;
    /* immediate mode: the child waits on this for the handshake result */
    int gate;
    /* delayed mode: fds 0/1 are the socket; ctl, read and write pipes go to
     * APP_CTL_FD, APP_READ_FD, APP_WRITE_FD */
    int net_rfd, net_wfd, ctl, read_pipe, write_pipe;
    /* the worker's own ends, closed in the child at once (the gate's write
     * end must go, or the child would never see the gate close) */
    int worker_ends[6];
    int n_worker_ends;
};

#define APP_CTL_FD 3
#define APP_READ_FD 4
#define APP_WRITE_FD 5

/* Largest gate block (the -s session variables) the app child accepts. */
#define APP_GATE_MAX 32768

/* Forks the app.  In the child: fds moved into place, environment set,
 * ids dropped to -u/-g, then (immediate mode) wait for the gate block and
 * exec, or _exit(111) without exec if the gate closes empty.  Returns the
 * child's pid in the parent, or -1. */
pid_t app_spawn(const struct engine_config *cfg, const struct conn_addr *addr,
                const struct app_fds *fds);

#endif

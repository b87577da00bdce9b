/* The seccomp filter is built once, as a template with placeholders, by a
 * parent (the master); each child patches in its own app pid and fds.  Two
 * children of one parent with different values must each get exactly
 * theirs: allowed on their own pid/fds, killed on the other's. */
#include "check.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char chroot_dir[64];

enum try { T_SPLICE_OWN, T_SPLICE_OTHER, T_WAIT_OWN, T_WAIT_OTHER, T_WAIT_ANY };

/* A child locked in with the connection on fd `net`, the app's pipes on
 * net+1 / net+2 and app pid `app`; tries one call.  None of the fds is
 * open: an allowed call fails with EBADF/ECHILD and the child exits 0. */
static int child(int net, pid_t app, enum try what)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        struct sandbox_spec s = {
            .role = SANDBOX_ROLE_WORKER,
            .uid = 65534,
            .gid = 65534,
            .chroot_dir = chroot_dir,
            .max_fds = 64,
            .app_pid = app,
            .allow_ktls = 1,
            .net_rfd = net,
            .net_wfd = net,
            .from_app_fd = net + 1,
            .to_app_fd = net + 2,
        };
        char err[256];
        int other = net == 7 ? 20 : 7;

        if (sandbox_lock_in(&s, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "lock-in: %s\n", err);
            _exit(99);
        }
        switch (what) {
        case T_SPLICE_OWN: (void)splice(net + 1, NULL, net, NULL, 4096, 3); break;
        case T_SPLICE_OTHER: (void)splice(other + 1, NULL, other, NULL, 4096, 3); break;
        case T_WAIT_OWN: (void)wait4(app, NULL, WNOHANG, NULL); break;
        case T_WAIT_OTHER: (void)wait4(app + 1, NULL, WNOHANG, NULL); break;
        case T_WAIT_ANY: (void)wait4(-1, NULL, WNOHANG, NULL); break;
        }
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return status;
}

static int allowed(int status)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int killed(int status)
{
    return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

int main(void)
{
    char err[256];

    if (geteuid() != 0) {
        fprintf(stderr, "test_seccomp_template: needs root (chroot, setuid); skipped\n");
        return 77;
    }
    snprintf(chroot_dir, sizeof chroot_dir, "/tmp/ucspitls-tmpl.XXXXXX");
    CHECK(mkdtemp(chroot_dir) != NULL);
    chmod(chroot_dir, 0755);

    /* the parent builds the template, as the master does */
    CHECK(sandbox_seccomp_prepare(SANDBOX_ROLE_WORKER, 1, err, sizeof err) == 0);

    for (int round = 0; round < 2; round++) {
        int net = round == 0 ? 7 : 20;
        pid_t app = round == 0 ? 4000001 : 4000101; /* above pid_max: ECHILD */

        CHECK(allowed(child(net, app, T_SPLICE_OWN)));
        CHECK(killed(child(net, app, T_SPLICE_OTHER)));
        CHECK(allowed(child(net, app, T_WAIT_OWN)));
        CHECK(killed(child(net, app, T_WAIT_OTHER)));
        CHECK(killed(child(net, app, T_WAIT_ANY)));
    }
    /* no app: wait4 matches nothing a caller could name */
    CHECK(killed(child(7, -1, T_WAIT_ANY)));
    CHECK(killed(child(7, -1, T_WAIT_OTHER)));

    rmdir(chroot_dir);
    return check_done("test_seccomp_template");
}

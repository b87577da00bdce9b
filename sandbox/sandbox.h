/* sandbox: locks a process in before it touches untrusted input.
 *
 * Knows nothing of TLS or UCSPI: it drops ids, chroots, clears capabilities,
 * sets rlimits and installs a seccomp allow-list chosen by role.  The order
 * of the steps is fixed here (CONVENTIONS "Lock-in order") so that callers
 * cannot get it wrong. */
#ifndef UCSPITLS_SANDBOX_H
#define UCSPITLS_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* Which syscall table the process gets. */
enum sandbox_role {
    SANDBOX_ROLE_WORKER, /* TLS worker: pump, handshake, reap the app */
    SANDBOX_ROLE_KEYD,   /* key daemon: read requests, sign, answer */
};

struct sandbox_spec {
    enum sandbox_role role;
    uid_t uid;              /* target uid when privileged (never 0) */
    gid_t gid;              /* target gid when privileged (never 0) */
    const char *chroot_dir; /* empty root-owned directory; borrowed */
    int max_fds;            /* RLIMIT_NOFILE; must exceed every fd polled */
    pid_t app_pid;          /* worker: the only pid it may wait4() for */
    /* worker with kTLS (the start-up probe found it): the calls OpenSSL's
     * kTLS path and the splice relay need, each narrowed to this
     * connection's socket and pipes */
    int allow_ktls;
    int net_rfd, net_wfd;      /* the connection */
    int from_app_fd, to_app_fd; /* the app's pipes (worker's ends) */
};

/* Locks the calling process in, in this order: rlimits, chroot + chdir,
 * capability bounding set emptied, setgroups/setresgid/setresuid, checks that
 * root cannot be regained and no capability is left, no_new_privs, not
 * dumpable, seccomp allow-list (default action: kill the process).
 * When the process is not root, chroot and id changes are skipped (and
 * *unprivileged is set to 1); everything else still applies.
 * Returns 0, or -1 with a reason in err (the process must then exit: it may
 * be half-locked). */
int sandbox_lock_in(const struct sandbox_spec *spec, int *unprivileged,
                    char *err, size_t errlen);

/* libc reads /etc/localtime lazily, the first time a time is converted
 * (glibc does for gmtime too, and OpenSSL converts when it checks
 * certificate dates), and that must happen while the file is there and
 * open() is allowed: sandbox_lock_in calls this.  It reads the file once per
 * process tree: after a parent has called it, a forked child's call writes
 * nothing (a tzset() there would rewrite libc's time zone state, a page
 * each worker would copy and keep for the connection's life). */
void sandbox_read_timezone(void);

/* Checks at start-up that dir is fit to be a chroot: an existing directory,
 * owned by root, writable by nobody else, and empty.  Returns 0 or -1 with a
 * reason in err. */
int sandbox_check_chroot_dir(const char *dir, char *err, size_t errlen);

/* Creates dir (and its parent) as an empty root-owned 0755 directory if it is
 * missing, then checks it as sandbox_check_chroot_dir does. */
int sandbox_prepare_chroot_dir(const char *dir, char *err, size_t errlen);

/* Installs only the seccomp filter of spec->role (used by sandbox tests and
 * by sandbox_lock_in).  Returns 0 or -1 with a reason in err. */
int sandbox_install_seccomp(const struct sandbox_spec *spec, char *err,
                            size_t errlen);
/* Builds the filter of a role (with or without the kTLS calls) once, with
 * placeholders for the per-process values, so that processes forked later
 * only patch and load it (sandbox_install_seccomp does this itself when no
 * template was prepared).  Returns 0 or -1 with a reason in err. */
int sandbox_seccomp_prepare(enum sandbox_role role, int allow_ktls, char *err,
                            size_t errlen);

/* Calls fn(name, reason, arg) for every syscall the role may make, in table
 * order: the seccomp audit as data. */
void sandbox_policy_foreach(enum sandbox_role role,
                            void (*fn)(const char *name, const char *reason,
                                       void *arg),
                            void *arg);

#endif

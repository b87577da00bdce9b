/* Forbidden classes of system call, each by every route this file knows,
 * against both seccomp tables (worker and keyd).
 *
 * test_sandbox.c proves one call per class; an allow-list is only as good as
 * its weakest route to the same end, so here each class is tried by its
 * alternatives too: openat2 and open_by_handle_at besides open, vfork, raw
 * clone, clone3 and thread creation besides fork, tgkill and
 * pidfd_send_signal besides kill, pkey_mprotect and personality besides
 * mprotect, the x32 ABI's numbers besides the native ones, io_uring (which
 * would run calls outside the filter), and the worker's argument-narrowed
 * calls (wait4, fcntl) with the arguments they must refuse.
 *
 * Each attempt runs in its own child that locks itself in exactly as the
 * role does (sandbox_lock_in), then makes the call; a child that comes back
 * from the call exits 0 and fails the check: it must die of SIGSYS.  The
 * arguments are harmless in case a call were let through (bad fds, signal
 * 0, paths that do not exist, zero-length transfers).  A worker child has an
 * app (a child of its own, already exited) so that the wait4 rule is live.
 * Two controls, one per role, show that what the role needs still works
 * under the same lock-in, so the SIGSYS deaths come from the filter.
 *
 * Dying is not enough: an attempt that made another forbidden call on the
 * way (getppid() to name its target, say) would die before the call it
 * tries, and prove nothing about it.  So each child is traced from here
 * (PTRACE_TRACEME, then syscall stops): the last call it entered, which the
 * kernel reports before seccomp judges it, must be the one tried.  Where
 * ptrace is unavailable (already traced, or disabled) the test still runs
 * and says that it could not match the deaths to their calls. */
#include "check.h"
#include "sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char chroot_dir[64];
static pid_t app_pid = -1; /* in a worker child: its app */
/* the test process, the locked-in child's parent: read before lock-in,
 * since getppid itself is forbidden (the attempt must die on its own call) */
static pid_t parent_pid;
/* where an attempt's result goes (some wrappers must not be ignored) */
static volatile long result;

/* ---------------------------------------------------------------- files */
static void try_open(void) { result = (long)open("/etc/passwd", O_RDONLY); }
static void try_openat(void) { result = (long)openat(AT_FDCWD, "/etc/passwd", O_RDONLY); }
static void try_creat(void) { result = (long)creat("/nonexistent-dir/x", 0600); }
#ifdef SYS_openat2
static void try_openat2(void)
{
    struct open_how how = {.flags = O_RDONLY, .mode = 0, .resolve = 0};
    result = (long)syscall(SYS_openat2, AT_FDCWD, "/etc/passwd", &how, sizeof how);
}
#endif
/* the classic way out of a chroot: a file handle resolved against a mount
 * fd from outside it */
static void try_open_by_handle(void) { result = (long)syscall(SYS_open_by_handle_at, -1, NULL, O_RDONLY); }
static void try_name_to_handle(void)
{
    result = (long)syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0);
}
static void try_stat(void)
{
    struct stat st;
    result = (long)stat("/etc/passwd", &st);
}
static void try_unlink(void) { result = (long)unlink("/nonexistent-dir/x"); }
static void try_mkdir(void) { result = (long)mkdir("/nonexistent-dir/x", 0700); }
static void try_rename(void) { result = (long)rename("/nonexistent-dir/x", "/nonexistent-dir/y"); }
static void try_chmod(void) { result = (long)chmod("/nonexistent-dir/x", 0777); }
static void try_symlink(void) { result = (long)symlink("/", "/nonexistent-dir/x"); }
static void try_chdir(void) { result = (long)chdir("/"); }
static void try_truncate(void) { result = (long)truncate("/nonexistent-dir/x", 0); }

/* ---------------------------------------------------- sockets and new fds */
static void try_socket_inet(void) { result = (long)socket(AF_INET, SOCK_STREAM, 0); }
static void try_socket_unix(void) { result = (long)socket(AF_UNIX, SOCK_DGRAM, 0); }
static void try_socketpair(void)
{
    int sv[2];
    result = (long)socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}
static void try_connect(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/nonexistent-dir/s"};
    result = (long)connect(-1, (struct sockaddr *)&a, sizeof a);
}
static void try_bind(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/nonexistent-dir/s"};
    result = (long)bind(-1, (struct sockaddr *)&a, sizeof a);
}
static void try_listen(void) { result = (long)listen(-1, 1); }
static void try_accept(void) { result = (long)accept4(-1, NULL, NULL, SOCK_CLOEXEC); }
static void try_setsockopt(void)
{
    int one = 1;
    result = (long)setsockopt(-1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
}
static void try_pipe(void)
{
    int p[2];
    result = (long)pipe(p);
}
static void try_dup(void) { result = (long)dup(2); }
static void try_dup3(void) { result = (long)dup3(2, 9, O_CLOEXEC); }
static void try_memfd(void) { result = (long)syscall(SYS_memfd_create, "x", 0U); }

/* ----------------------------------------------------------------- exec */
static void try_execve(void)
{
    char *argv[] = {(char *)"/bin/true", NULL};
    result = (long)execve("/bin/true", argv, argv + 1);
}
static void try_execveat(void)
{
    char *argv[] = {(char *)"/bin/true", NULL};
    result = (long)syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, argv + 1, 0);
}

/* ----------------------------------------------- new processes, threads */
static void try_fork(void)
{
    if (fork() == 0)
        _exit(0);
}
static void try_vfork(void)
{
    if (vfork() == 0)
        _exit(0);
}
static void try_clone(void)
{
    if (syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, NULL, NULL, 0UL) == 0)
        _exit(0);
}
#ifdef SYS_clone3
static void try_clone3(void)
{
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    if (syscall(SYS_clone3, &ca, sizeof ca) == 0)
        _exit(0);
}
#endif
static void *thread_main(void *arg) { return arg; }
static void try_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) == 0)
        result = (long)pthread_join(t, NULL);
}

/* ------------------------------------------- other processes' memory */
static void try_ptrace_attach(void) { result = (long)ptrace(PTRACE_ATTACH, parent_pid, NULL, NULL); }
static void try_ptrace_traceme(void) { result = (long)ptrace(PTRACE_TRACEME, 0, NULL, NULL); }
static void try_vm_readv(void)
{
    result = (long)syscall(SYS_process_vm_readv, parent_pid, NULL, 0UL, NULL, 0UL, 0UL);
}
static void try_vm_writev(void)
{
    result = (long)syscall(SYS_process_vm_writev, parent_pid, NULL, 0UL, NULL, 0UL, 0UL);
}
#ifdef SYS_pidfd_open
static void try_pidfd_open(void) { result = (long)syscall(SYS_pidfd_open, parent_pid, 0U); }
#endif
#ifdef SYS_pidfd_getfd
static void try_pidfd_getfd(void) { result = (long)syscall(SYS_pidfd_getfd, -1, 0, 0U); }
#endif
static void try_kcmp(void) { result = (long)syscall(SYS_kcmp, parent_pid, getpid(), 0, 0UL, 0UL); }

/* ------------------------------------------- signals to other processes */
static void try_kill_parent(void) { result = (long)kill(parent_pid, 0); }
static void try_kill_app(void) { result = (long)kill(app_pid > 0 ? app_pid : parent_pid, 0); }
static void try_kill_self(void) { result = (long)kill(getpid(), 0); }
static void try_kill_group(void) { result = (long)kill(0, 0); }
static void try_kill_all(void) { result = (long)kill(-1, 0); }
static void try_tkill(void) { result = (long)syscall(SYS_tkill, parent_pid, 0); }
static void try_tgkill(void) { result = (long)syscall(SYS_tgkill, parent_pid, parent_pid, 0); }
static void try_sigqueue(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_code = SI_QUEUE;
    result = (long)syscall(SYS_rt_sigqueueinfo, parent_pid, 0, &si);
}
#ifdef SYS_pidfd_send_signal
static void try_pidfd_signal(void) { result = (long)syscall(SYS_pidfd_send_signal, -1, 0, NULL, 0U); }
#endif

/* ------------------------------------------------ ids and privileges */
static void try_setuid(void) { result = (long)setuid(0); }
static void try_setresuid(void) { result = (long)setresuid(0, 0, 0); }
static void try_setgid(void) { result = (long)setgid(0); }
static void try_setgroups(void) { result = (long)setgroups(0, NULL); }
static void try_capset(void) { result = (long)syscall(SYS_capset, NULL, NULL); }
static void try_prctl(void) { result = (long)prctl(PR_SET_DUMPABLE, 1); }
static void try_unshare(void) { result = (long)unshare(CLONE_NEWUSER); }
static void try_setns(void) { result = (long)setns(-1, 0); }
static void try_chroot(void) { result = (long)chroot("/"); }
static void try_mount(void) { result = (long)mount("none", "/nonexistent-dir", "tmpfs", 0, NULL); }

/* --------------------------------------------------- executable memory */
static void *rw_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(97);
    return p;
}
static void try_mprotect_exec(void) { result = (long)mprotect(rw_page(), 4096, PROT_READ | PROT_EXEC); }
static void try_mprotect_rwx(void)
{
    result = (long)mprotect(rw_page(), 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
}
static void try_mmap_exec(void)
{
    result = (long)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void try_mmap_rwx(void)
{
    result = (long)mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void try_pkey_mprotect(void)
{
    result = (long)syscall(SYS_pkey_mprotect, rw_page(), 4096UL, PROT_READ | PROT_EXEC, -1);
}
/* READ_IMPLIES_EXEC would make every later PROT_READ mapping executable */
static void try_personality(void) { result = (long)personality(READ_IMPLIES_EXEC); }
static void try_remap_file_pages(void) { result = (long)syscall(SYS_remap_file_pages, NULL, 0UL, 0UL, 0UL, 0UL); }

/* -------------------------------------------- kernel attack surface */
static void try_ioctl_tiocsti(void)
{
    char c = 'x';
    result = (long)ioctl(-1, TIOCSTI, &c); /* typing into a terminal */
}
#ifdef SYS_io_uring_setup
/* io_uring's operations are not system calls: the filter would not see them */
static void try_io_uring(void) { result = (long)syscall(SYS_io_uring_setup, 0U, NULL); }
#endif
static void try_bpf(void) { result = (long)syscall(SYS_bpf, 0, NULL, 0U); }
static void try_userfaultfd(void) { result = (long)syscall(SYS_userfaultfd, 0); }
static void try_perf_event_open(void) { result = (long)syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0UL); }
static void try_keyctl(void) { result = (long)syscall(SYS_keyctl, 0, 0UL, 0UL, 0UL, 0UL); }
static void try_getppid(void) { result = (long)syscall(SYS_getppid); }
static void try_nanosleep(void)
{
    struct timespec ts = {0, 1};
    result = (long)nanosleep(&ts, NULL);
}
#if defined(__x86_64__)
/* the x32 ABI's number for getpid (allowed natively): libseccomp's
 * architecture check must not let another ABI through the native table */
static void try_x32_getpid(void) { result = (long)syscall(0x40000000L | SYS_getpid); }
#endif

/* --------------------------- the worker's argument-narrowed calls */
static void try_wait_any(void) { result = (long)waitpid(-1, NULL, WNOHANG); }
static void try_wait_group(void) { result = (long)waitpid(0, NULL, WNOHANG); }
static void try_wait_other(void) { result = (long)waitpid(1, NULL, WNOHANG); }
static void try_waitid(void)
{
    siginfo_t si;
    result = (long)waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
}
static void try_fcntl_dupfd(void) { result = (long)fcntl(2, F_DUPFD_CLOEXEC, 10); }
static void try_fcntl_setown(void) { result = (long)fcntl(2, F_SETOWN, parent_pid); }
static void try_fcntl_setfd(void) { result = (long)fcntl(2, F_SETFD, FD_CLOEXEC); }
/* stderr is shared with the master and keyd: non-blocking, it would lose
 * their log lines */
static void try_fcntl_setfl_other(void) { result = (long)fcntl(2, F_SETFL, O_NONBLOCK); }
static void try_fcntl_lock(void)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    result = (long)fcntl(2, F_SETLK, &fl);
}

static const struct forbidden {
    const char *class_name;
    const char *call;
    void (*fn)(void);
    /* the system call the attempt must die on, as libseccomp names it;
     * alternatives (another libc or architecture) separated by '|';
     * "x32:" the x32 ABI's number; NULL: any (pthread_create dies on one
     * of several calls it makes first) */
    const char *dies_on;
} FORBIDDEN[] = {
    {"file", "open", try_open, "open|openat"},
    {"file", "openat", try_openat, "openat"},
    {"file", "creat", try_creat, "creat|openat"},
#ifdef SYS_openat2
    {"file", "openat2", try_openat2, "openat2"},
#endif
    {"file", "open_by_handle_at", try_open_by_handle, "open_by_handle_at"},
    {"file", "name_to_handle_at", try_name_to_handle, "name_to_handle_at"},
    {"file", "stat", try_stat, "stat|newfstatat|fstatat64|statx"},
    {"file", "unlink", try_unlink, "unlink|unlinkat"},
    {"file", "mkdir", try_mkdir, "mkdir|mkdirat"},
    {"file", "rename", try_rename, "rename|renameat|renameat2"},
    {"file", "chmod", try_chmod, "chmod|fchmodat"},
    {"file", "symlink", try_symlink, "symlink|symlinkat"},
    {"file", "chdir", try_chdir, "chdir"},
    {"file", "truncate", try_truncate, "truncate"},
    {"socket", "socket AF_INET", try_socket_inet, "socket"},
    {"socket", "socket AF_UNIX", try_socket_unix, "socket"},
    {"socket", "socketpair", try_socketpair, "socketpair"},
    {"socket", "connect", try_connect, "connect"},
    {"socket", "bind", try_bind, "bind"},
    {"socket", "listen", try_listen, "listen"},
    {"socket", "accept4", try_accept, "accept4"},
    {"socket", "setsockopt (no kTLS)", try_setsockopt, "setsockopt"},
    {"new fd", "pipe", try_pipe, "pipe|pipe2"},
    {"new fd", "dup", try_dup, "dup"},
    {"new fd", "dup3", try_dup3, "dup3"},
    {"new fd", "memfd_create", try_memfd, "memfd_create"},
    {"exec", "execve", try_execve, "execve"},
    {"exec", "execveat", try_execveat, "execveat"},
    {"fork/clone", "fork", try_fork, "fork|clone|clone3"},
    {"fork/clone", "vfork", try_vfork, "vfork|clone|clone3"},
    {"fork/clone", "clone", try_clone, "clone"},
#ifdef SYS_clone3
    {"fork/clone", "clone3", try_clone3, "clone3"},
#endif
    {"fork/clone", "pthread_create", try_thread, NULL},
    {"ptrace", "ptrace attach", try_ptrace_attach, "ptrace"},
    {"ptrace", "ptrace traceme", try_ptrace_traceme, "ptrace"},
    {"ptrace", "process_vm_readv", try_vm_readv, "process_vm_readv"},
    {"ptrace", "process_vm_writev", try_vm_writev, "process_vm_writev"},
#ifdef SYS_pidfd_open
    {"ptrace", "pidfd_open", try_pidfd_open, "pidfd_open"},
#endif
#ifdef SYS_pidfd_getfd
    {"ptrace", "pidfd_getfd", try_pidfd_getfd, "pidfd_getfd"},
#endif
    {"ptrace", "kcmp", try_kcmp, "kcmp"},
    {"kill", "kill parent", try_kill_parent, "kill"},
    {"kill", "kill app", try_kill_app, "kill"},
    {"kill", "kill itself", try_kill_self, "kill"},
    {"kill", "kill process group", try_kill_group, "kill"},
    {"kill", "kill -1", try_kill_all, "kill"},
    {"kill", "tkill", try_tkill, "tkill"},
    {"kill", "tgkill", try_tgkill, "tgkill"},
    {"kill", "rt_sigqueueinfo", try_sigqueue, "rt_sigqueueinfo"},
#ifdef SYS_pidfd_send_signal
    {"kill", "pidfd_send_signal", try_pidfd_signal, "pidfd_send_signal"},
#endif
    {"setuid", "setuid", try_setuid, "setuid"},
    {"setuid", "setresuid", try_setresuid, "setresuid"},
    {"setuid", "setgid", try_setgid, "setgid"},
    {"setuid", "setgroups", try_setgroups, "setgroups"},
    {"setuid", "capset", try_capset, "capset"},
    {"setuid", "prctl", try_prctl, "prctl"},
    {"setuid", "unshare", try_unshare, "unshare"},
    {"setuid", "setns", try_setns, "setns"},
    {"setuid", "chroot", try_chroot, "chroot"},
    {"setuid", "mount", try_mount, "mount"},
    {"exec memory", "mprotect PROT_EXEC", try_mprotect_exec, "mprotect"},
    {"exec memory", "mprotect RWX", try_mprotect_rwx, "mprotect"},
    {"exec memory", "mmap PROT_EXEC", try_mmap_exec, "mmap|mmap2"},
    {"exec memory", "mmap RWX", try_mmap_rwx, "mmap|mmap2"},
    {"exec memory", "pkey_mprotect", try_pkey_mprotect, "pkey_mprotect"},
    {"exec memory", "personality", try_personality, "personality"},
    {"exec memory", "remap_file_pages", try_remap_file_pages, "remap_file_pages"},
    {"kernel", "ioctl TIOCSTI", try_ioctl_tiocsti, "ioctl"},
#ifdef SYS_io_uring_setup
    {"kernel", "io_uring_setup", try_io_uring, "io_uring_setup"},
#endif
    {"kernel", "bpf", try_bpf, "bpf"},
    {"kernel", "userfaultfd", try_userfaultfd, "userfaultfd"},
    {"kernel", "perf_event_open", try_perf_event_open, "perf_event_open"},
    {"kernel", "keyctl", try_keyctl, "keyctl"},
    {"kernel", "getppid", try_getppid, "getppid"},
    {"kernel", "nanosleep", try_nanosleep, "nanosleep|clock_nanosleep"},
#if defined(__x86_64__)
    {"kernel", "x32 ABI getpid", try_x32_getpid, "x32:getpid"},
#endif
    {"narrowed", "wait4 -1", try_wait_any, "wait4|waitpid"},
    {"narrowed", "wait4 0 (group)", try_wait_group, "wait4|waitpid"},
    {"narrowed", "wait4 pid 1", try_wait_other, "wait4|waitpid"},
    {"narrowed", "waitid P_ALL", try_waitid, "waitid"},
    {"narrowed", "fcntl F_DUPFD_CLOEXEC", try_fcntl_dupfd, "fcntl|fcntl64"},
    {"narrowed", "fcntl F_SETOWN", try_fcntl_setown, "fcntl|fcntl64"},
    {"narrowed", "fcntl F_SETFD", try_fcntl_setfd, "fcntl|fcntl64"},
    {"narrowed", "fcntl F_SETFL on stderr", try_fcntl_setfl_other, "fcntl|fcntl64"},
    {"narrowed", "fcntl F_SETLK", try_fcntl_lock, "fcntl|fcntl64"},
};

/* ------------------------------------------------------------ controls */
static int ctl_fd[2] = {-1, -1};

/* What a worker does under its filter: pipes, poll, fcntl O_NONBLOCK,
 * randomness, a large malloc, reaping its app. */
static void worker_control(void)
{
    char buf[8];
    struct pollfd p = {.fd = ctl_fd[0], .events = POLLIN, .revents = 0};
    int st, fl = fcntl(ctl_fd[0], F_GETFL);
    void *big = malloc(1 << 20);

    if (fl < 0 || fcntl(ctl_fd[0], F_SETFL, fl | O_NONBLOCK) < 0)
        _exit(20);
    if (write(ctl_fd[1], "x", 1) != 1 || poll(&p, 1, 1000) != 1 || read(ctl_fd[0], buf, 1) != 1)
        _exit(21);
    if (getrandom(buf, sizeof buf, 0) != sizeof buf || getpid() <= 0)
        _exit(22);
    if (big == NULL)
        _exit(23);
    memset(big, 1, 1 << 20);
    free(big);
    if (waitpid(app_pid, &st, 0) != app_pid || !WIFEXITED(st))
        _exit(24);
    _exit(0);
}

/* What keyd does under its filter: datagrams on a channel, poll,
 * randomness, a large malloc. */
static void keyd_control(void)
{
    char buf[8];
    struct pollfd p = {.fd = ctl_fd[0], .events = POLLIN, .revents = 0};
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    void *big = malloc(1 << 20);

    if (send(ctl_fd[1], "ab", 2, 0) != 2 || poll(&p, 1, 1000) != 1 ||
        recv(ctl_fd[0], buf, sizeof buf, 0) != 2)
        _exit(30);
    if (send(ctl_fd[1], "c", 1, 0) != 1 || recvmsg(ctl_fd[0], &m, 0) != 1)
        _exit(31);
    if (getrandom(buf, sizeof buf, 0) != sizeof buf || getpid() <= 0)
        _exit(32);
    if (big == NULL)
        _exit(33);
    memset(big, 1, 1 << 20);
    free(big);
    _exit(0);
}

/* Follows a child stopped at PTRACE_TRACEME + SIGSTOP from syscall stop
 * to syscall stop until it ends; *last gets the number of the last system
 * call it entered.  The kernel reports the entry before seccomp judges it,
 * so for a child killed by its filter that is the call that killed it.
 * Returns the final wait status, or -1. */
static int follow(pid_t pid, long *last)
{
    int status, sig = 0;

    if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
               (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0)
        return -1;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig) < 0 ||
            waitpid(pid, &status, 0) != pid)
            return -1;
        if (!WIFSTOPPED(status))
            return status;
        sig = 0;
        if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
            struct __ptrace_syscall_info info;
            memset(&info, 0, sizeof info);
            if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof info, &info) > 0 &&
                info.op == PTRACE_SYSCALL_INFO_ENTRY)
                *last = (long)info.entry.nr;
        } else {
            sig = WSTOPSIG(status); /* a real signal: deliver it */
        }
    }
}

/* Runs fn in a child locked in as role, traced from here when the system
 * lets us (*last: the last system call it entered, -1 when untraced).
 * Returns its wait status, or -1. */
static int locked_in(enum sandbox_role role, void (*fn)(void), long *last)
{
    int status;
    pid_t pid = fork();

    *last = -1;
    if (pid == 0) {
        struct sandbox_spec s = {
            .role = role,
            .uid = 65534,
            .gid = 65534,
            .chroot_dir = chroot_dir,
            .max_fds = 16,
            .app_pid = -1,
            .allow_ktls = 0,
        };
        char err[256];
        int rc = role == SANDBOX_ROLE_WORKER ? pipe(ctl_fd)
                                             : socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ctl_fd);

        if (rc < 0)
            _exit(96);
        if (role == SANDBOX_ROLE_WORKER) {
            app_pid = fork();
            if (app_pid == 0)
                _exit(0);
            if (app_pid < 0)
                _exit(98);
            s.app_pid = app_pid;
            /* the fds whose flags it may set: the control's pipe */
            s.net_rfd = s.from_app_fd = ctl_fd[0];
            s.net_wfd = s.to_app_fd = ctl_fd[1];
        }
        /* untraced (already traced, or ptrace disabled): run anyway */
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
            raise(SIGSTOP);
        if (sandbox_lock_in(&s, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "lock-in failed: %s\n", err);
            _exit(99);
        }
        fn();
        _exit(0); /* the call came back: it was not blocked */
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    /* the app's SIGCHLD can reach the traced child before its SIGSTOP:
     * deliver it and wait for the SIGSTOP */
    while (WIFSTOPPED(status) && WSTOPSIG(status) != SIGSTOP) {
        if (ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(status)) < 0 ||
            waitpid(pid, &status, 0) != pid)
            return -1;
    }
    if (WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP)
        return follow(pid, last);
    return status;
}

/* Whether nr is one of the '|'-separated names of dies_on. */
static int is_call(long nr, const char *dies_on)
{
    char names[128], *save = NULL;

    if (dies_on == NULL)
        return 1;
    snprintf(names, sizeof names, "%s", dies_on);
    for (char *t = strtok_r(names, "|", &save); t != NULL; t = strtok_r(NULL, "|", &save)) {
        int x32 = strncmp(t, "x32:", 4) == 0;
        int want = seccomp_syscall_resolve_name(x32 ? t + 4 : t);
        if (want == __NR_SCMP_ERROR)
            continue;
        if (nr == (x32 ? (0x40000000L | want) : want))
            return 1;
    }
    return 0;
}

static const char *call_name(long nr, char *buf, size_t cap)
{
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)(nr & 0xffffff));
    snprintf(buf, cap, "%s%s (%ld)", nr & 0x40000000L ? "x32:" : "", name ? name : "?", nr);
    free(name);
    return buf;
}

static void describe(char *out, size_t cap, int status)
{
    if (status == -1)
        snprintf(out, cap, "fork/wait/ptrace failed");
    else if (WIFEXITED(status))
        snprintf(out, cap, "exit %d%s", WEXITSTATUS(status),
                 WEXITSTATUS(status) == 0 ? " (the call returned)" : "");
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "status 0x%x", status);
}

int main(void)
{
    static const struct {
        enum sandbox_role role;
        const char *name;
        void (*control)(void);
    } roles[] = {
        {SANDBOX_ROLE_WORKER, "worker", worker_control},
        {SANDBOX_ROLE_KEYD, "keyd", keyd_control},
    };
    size_t n = sizeof FORBIDDEN / sizeof FORBIDDEN[0];

    parent_pid = getpid();
    snprintf(chroot_dir, sizeof chroot_dir, "/tmp/ucspitls-forbidden-XXXXXX");
    CHECK(mkdtemp(chroot_dir) != NULL);
    chmod(chroot_dir, 0755);

    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        long last;
        int status = locked_in(roles[r].role, roles[r].control, &last);
        char what[64], got[64];
        int killed = 0, traced = 0, on_it = 0;

        describe(what, sizeof what, status);
        if (!(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "%s control: %s\n", roles[r].name, what);
        CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        for (size_t i = 0; i < n; i++) {
            const struct forbidden *f = &FORBIDDEN[i];

            status = locked_in(roles[r].role, f->fn, &last);
            if (!(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)) {
                describe(what, sizeof what, status);
                fprintf(stderr, "%s, %s: %s not killed by SIGSYS: %s\n", roles[r].name,
                        f->class_name, f->call, what);
                CHECK(0);
                continue;
            }
            killed++;
            if (last == -1)
                continue;
            traced++;
            /* killed, but by the call tried?  A forbidden call made on the
             * way (computing an argument, say) would hide whether the one
             * tried is blocked */
            if (is_call(last, f->dies_on)) {
                on_it++;
            } else {
                fprintf(stderr, "%s, %s: %s died on %s, not on %s\n", roles[r].name,
                        f->class_name, f->call, call_name(last, got, sizeof got), f->dies_on);
                CHECK(0);
            }
        }
        printf("%s: %d of %zu forbidden calls killed it with SIGSYS; %d traced, %d of them "
               "on the call tried\n", roles[r].name, killed, n, traced, on_it);
        if (traced == 0)
            printf("  (not traced: this process is traced already or ptrace is disabled; "
                   "the deaths are not matched to their calls)\n");
        fflush(stdout);
    }
    rmdir(chroot_dir);
    return check_done("test_forbidden");
}

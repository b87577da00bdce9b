/* Sandbox tests: a child locks itself in exactly as a worker does, then
 * (a) the parent reads its /proc status from outside: ids, capabilities,
 * NoNewPrivs, Seccomp, root directory; (b) each forbidden class of system
 * call, attempted in its own locked-in child, must kill it with SIGSYS;
 * (c) what the pump needs still works under the filter. */
#include "check.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char chroot_dir[64];
/* the test process: the locked-in children's parent, read before they lock
 * in (getppid is itself forbidden, and would die before the call tried) */
static pid_t parent_pid;

static struct sandbox_spec worker_spec(pid_t app)
{
    struct sandbox_spec s = {
        .role = SANDBOX_ROLE_WORKER,
        .uid = 65534,
        .gid = 65534,
        .chroot_dir = chroot_dir,
        .max_fds = 16,
        .app_pid = app,
        .allow_ktls = 0,
    };
    return s;
}

static void lock_or_die(const struct sandbox_spec *s)
{
    char err[256];
    if (sandbox_lock_in(s, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "lock-in failed: %s\n", err);
        _exit(99);
    }
}

/* Runs fn in a child locked in with role's table; returns its wait
 * status. */
static int in_sandbox_as(enum sandbox_role role, void (*fn)(void))
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        struct sandbox_spec s = worker_spec(-1);
        s.role = role;
        lock_or_die(&s);
        fn();
        _exit(0); /* fn returned: the call was not blocked */
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return status;
}

static int in_sandbox(void (*fn)(void))
{
    return in_sandbox_as(SANDBOX_ROLE_WORKER, fn);
}

static void try_open(void) { (void)open("/etc/passwd", O_RDONLY); }
static void try_openat(void) { (void)openat(AT_FDCWD, "x", O_WRONLY | O_CREAT, 0600); }
static void try_socket(void) { (void)socket(AF_INET, SOCK_STREAM, 0); }
static void try_exec(void)
{
    char *argv[] = {(char *)"/bin/true", NULL};
    execve("/bin/true", argv, argv + 1);
}
static void try_fork(void) { (void)fork(); }
static void try_ptrace(void) { (void)ptrace(PTRACE_ATTACH, parent_pid, NULL, NULL); }
static void try_kill(void) { (void)kill(parent_pid, 0); }
static void try_setuid(void) { if (setuid(0) == 0) _exit(50); }
static void try_mprotect_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        (void)mprotect(p, 4096, PROT_READ | PROT_EXEC);
}
static void try_mmap_exec(void)
{
    (void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void try_wait_other(void) { (void)waitpid(1, NULL, WNOHANG); }

static void try_pipe(void)
{
    int p[2];

    /* pipe is not on the list: a worker makes its pipes before lock-in */
    if (pipe(p) < 0)
        _exit(10);
    _exit(11);
}

/* What the pump and OpenSSL need must keep working. */
static void pump_like(void)
{
    char buf[8];
    void *big = malloc(1 << 20); /* mmap without PROT_EXEC */
    if (big == NULL)
        _exit(20);
    memset(big, 1, 1 << 20);
    free(big);
    if (getrandom(buf, sizeof buf, 0) != sizeof buf)
        _exit(21);
    if (write(2, "", 0) < 0)
        _exit(22);
    _exit(0);
}

static int killed_by_sigsys(int status)
{
    return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

static const char *status_field(const char *status, const char *name, char *out, size_t cap)
{
    const char *p = strstr(status, name);
    size_t n = 0;
    if (p == NULL)
        return NULL;
    p += strlen(name);
    while (*p == ' ' || *p == '\t')
        p++;
    while (p[n] && p[n] != '\n' && n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* Locks a child in, then inspects it from outside while it waits. */
static void test_proc_view(void)
{
    int go[2], ready[2], status;
    char path[64], buf[4096], field[128], root[256];
    ssize_t n;
    int fd;
    pid_t pid;

    CHECK(pipe(go) == 0 && pipe(ready) == 0);
    pid = fork();
    if (pid == 0) {
        struct sandbox_spec s = worker_spec(-1);
        char c;
        close(go[1]);
        close(ready[0]);
        lock_or_die(&s);
        if (write(ready[1], "r", 1) != 1)
            _exit(30);
        if (read(go[0], &c, 1) < 0) /* blocks until the parent looked */
            _exit(31);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    {
        char c;
        CHECK(read(ready[0], &c, 1) == 1);
    }
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    if (geteuid() == 0) {
        CHECK_STREQ(status_field(buf, "Uid:", field, sizeof field), "65534\t65534\t65534\t65534");
        CHECK_STREQ(status_field(buf, "Gid:", field, sizeof field), "65534\t65534\t65534\t65534");
        CHECK_STREQ(status_field(buf, "Groups:", field, sizeof field), "65534 ");
        CHECK_STREQ(status_field(buf, "CapBnd:", field, sizeof field), "0000000000000000");
        snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
        n = readlink(path, root, sizeof root - 1);
        CHECK(n > 0);
        root[n > 0 ? n : 0] = '\0';
        CHECK_STREQ(root, chroot_dir);
        /* not dumpable: the kernel then gives its /proc files to root, so
         * a process of the same uid can neither ptrace it nor read its
         * memory */
        {
            struct stat st;
            snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
            CHECK(stat(path, &st) == 0 && st.st_uid == 0);
        }
    } else {
        fprintf(stderr, "not root: uid/chroot checks skipped\n");
    }
    CHECK_STREQ(status_field(buf, "CapEff:", field, sizeof field), "0000000000000000");
    CHECK_STREQ(status_field(buf, "CapPrm:", field, sizeof field), "0000000000000000");
    CHECK_STREQ(status_field(buf, "CapInh:", field, sizeof field), "0000000000000000");
    CHECK_STREQ(status_field(buf, "CapAmb:", field, sizeof field), "0000000000000000");
    CHECK_STREQ(status_field(buf, "NoNewPrivs:", field, sizeof field), "1");
    CHECK_STREQ(status_field(buf, "Seccomp:", field, sizeof field), "2");
    /* rlimits: no processes, no core files, few fds */
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    fd = open(path, O_RDONLY);
    n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    CHECK(strstr(buf, "Max processes             0                    0") != NULL);
    CHECK(strstr(buf, "Max core file size        0                    0") != NULL);
    CHECK(strstr(buf, "Max open files            16                   16") != NULL);
    CHECK(write(go[1], "g", 1) == 1);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(go[1]);
    close(ready[0]);
}

/* The worker may reap its own app, and only it. */
static void test_wait_own_child(void)
{
    int status;
    pid_t pid = fork();
    if (pid == 0) {
        pid_t app = fork();
        if (app == 0)
            _exit(7);
        struct sandbox_spec s = worker_spec(app);
        int st;
        lock_or_die(&s);
        if (waitpid(app, &st, 0) != app || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
            _exit(40);
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The time zone (sandbox_read_timezone): glibc reads it on the first time
 * conversion, gmtime included, and a locked-in worker cannot open
 * /etc/localtime (seccomp kills it).  So the lock-in reads it first, in a
 * process tree that has not; in one whose parent did (the master, at
 * start-up), a worker must not read it again: that rewrites libc's state,
 * a page each worker would copy.  Must run before anything else in this
 * process reads the time zone. */
static void test_timezone(void)
{
    int status;
    pid_t pid;

    /* nobody in this tree has read it: the lock-in does, from
     * /etc/localtime, and a time converts under the filter */
    unsetenv("TZ");
    pid = fork();
    if (pid == 0) {
        struct sandbox_spec s = worker_spec(-1);
        struct tm tm;
        time_t t = 0;

        lock_or_die(&s);
        _exit(gmtime_r(&t, &tm) != NULL && tm.tm_year == 70 ? 0 : 60);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* the parent reads it (TZ names a rule: no file); a child that changes
     * TZ and locks in keeps its parent's reading */
    setenv("TZ", "ABC3", 1);
    sandbox_read_timezone();
    CHECK(strcmp(tzname[0], "ABC") == 0);
    pid = fork();
    if (pid == 0) {
        struct sandbox_spec s = worker_spec(-1);

        setenv("TZ", "XYZ3", 1);
        lock_or_die(&s);
        _exit(strcmp(tzname[0], "ABC") == 0 ? 0 : 61);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unsetenv("TZ");
}

/* kTLS calls: allowed only with allow_ktls, and only on the connection's
 * socket (fd 7) and pipes (8 from the app, 9 to it), with the exact
 * arguments OpenSSL and the relay use.  The fds are not open: an allowed
 * call fails with EBADF, a forbidden one kills. */
static int ktls_child(int allow, int which)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        struct sandbox_spec s = worker_spec(-1);
        struct msghdr m;
        int one = 1;
        s.allow_ktls = allow;
        s.net_rfd = s.net_wfd = 7;
        s.from_app_fd = 8;
        s.to_app_fd = 9;
        memset(&m, 0, sizeof m);
        lock_or_die(&s);
        switch (which) {
        case 0: (void)splice(8, NULL, 7, NULL, 4096, 3); break;       /* allowed */
        case 1: (void)splice(7, NULL, 9, NULL, 4096, 3); break;       /* allowed */
        case 2: (void)setsockopt(7, 6, 31, "tls", 4); break;          /* allowed */
        case 3: (void)sendmsg(7, &m, 0); break;                      /* allowed */
        case 4: (void)recvmsg(7, &m, 0); break;                      /* allowed */
        case 5: (void)splice(8, NULL, 3, NULL, 4096, 3); break;       /* other fd */
        case 6: (void)splice(8, NULL, 7, NULL, 4096, 1); break;       /* blocking */
        case 7: (void)setsockopt(7, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); break;
        case 8: (void)sendmsg(3, &m, 0); break;                      /* other fd */
        case 9: (void)recvmsg(7, &m, MSG_PEEK); break;               /* other flags */
        }
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return status;
}

static void test_ktls_rules(void)
{
    for (int which = 0; which < 10; which++) {
        int with = ktls_child(1, which), without = ktls_child(0, which);
        int allowed = which <= 4;
        if (allowed != (with != -1 && WIFEXITED(with)))
            fprintf(stderr, "kTLS case %d with allow_ktls: status 0x%x\n", which, with);
        CHECK(allowed ? (WIFEXITED(with) && WEXITSTATUS(with) == 0) : killed_by_sigsys(with));
        CHECK(killed_by_sigsys(without)); /* no kTLS: none of them */
    }
}

static void print_rule(const char *name, const char *reason, void *arg)
{
    (void)arg;
    printf("  %-16s %s\n", name, reason);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } forbidden[] = {
        {"open", try_open},     {"openat", try_openat},  {"socket", try_socket},
        {"execve", try_exec},   {"fork", try_fork},      {"ptrace", try_ptrace},
        {"kill", try_kill},     {"setuid", try_setuid},  {"mprotect+exec", try_mprotect_exec},
        {"mmap+exec", try_mmap_exec}, {"wait4 other pid", try_wait_other},
        {"pipe", try_pipe},
    };
    int status;

    parent_pid = getpid();
    snprintf(chroot_dir, sizeof chroot_dir, "/tmp/ucspitls-sandbox-XXXXXX");
    CHECK(mkdtemp(chroot_dir) != NULL);
    chmod(chroot_dir, 0755);

    test_timezone(); /* first: nothing may have read the time zone yet */
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        status = in_sandbox(forbidden[i].fn);
        if (!killed_by_sigsys(status))
            fprintf(stderr, "forbidden %s: not killed by SIGSYS (status 0x%x)\n",
                    forbidden[i].name, status);
        CHECK(killed_by_sigsys(status));
    }
    /* keyd's table forbids the same classes */
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        status = in_sandbox_as(SANDBOX_ROLE_KEYD, forbidden[i].fn);
        if (!killed_by_sigsys(status))
            fprintf(stderr, "keyd, forbidden %s: not killed by SIGSYS (status 0x%x)\n",
                    forbidden[i].name, status);
        CHECK(killed_by_sigsys(status));
    }
    status = in_sandbox(pump_like);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    test_proc_view();
    test_wait_own_child();
    test_ktls_rules();

    /* the chroot check refuses a directory that is not empty */
    {
        char err[256], file[128];
        CHECK(sandbox_check_chroot_dir(chroot_dir, err, sizeof err) == 0);
        snprintf(file, sizeof file, "%s/x", chroot_dir);
        close(open(file, O_CREAT | O_WRONLY, 0600));
        CHECK(sandbox_check_chroot_dir(chroot_dir, err, sizeof err) < 0);
        CHECK(strstr(err, "not empty") != NULL);
        unlink(file);
        CHECK(sandbox_check_chroot_dir("relative", err, sizeof err) < 0);
    }
    printf("worker seccomp allow-list:\n");
    sandbox_policy_foreach(SANDBOX_ROLE_WORKER, print_rule, NULL);
    printf("keyd seccomp allow-list:\n");
    sandbox_policy_foreach(SANDBOX_ROLE_KEYD, print_rule, NULL);
    rmdir(chroot_dir);
    return check_done("test_sandbox");
}

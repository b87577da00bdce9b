/* Sanitizer build only: a report from a locked-in process is written whole.
 *
 * A worker or keyd is chrooted and under a seccomp filter that kills on
 * open, readlink, ioctl and the like; the sanitizer runtime uses some of
 * them while it reports.  Each child here locks itself in exactly as the
 * role does (sandbox_lock_in) and then commits one error; the parent reads
 * the child's stderr and checks that the report is all there (the error,
 * a stack, the summary), that the child ended with the sanitizer's exit
 * code 1 and not with SIGSYS halfway through, and that the report went to
 * stderr (the log file cannot be opened in the chroot).  A control shows
 * that the old open(2), which the sanitizer build's filter fails with
 * EACCES instead of killing, opens nothing. */
#include "check.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char chroot_dir[64];

/* volatile: the compiler must not see through the errors (nor know the
 * allocation's size: UBSan's object-size check would then see the overflow
 * before ASan, see misaligned_store) */
static volatile int index_past_end = 16;
static volatile size_t alloc_size = 16;
static volatile int big = 0x7fffffff;

static char *volatile dangling;

static void heap_overflow(void)
{
    dangling = malloc(alloc_size);
    if (dangling != NULL)
        dangling[index_past_end] = 1;
    free(dangling);
}

static void use_after_free(void)
{
    dangling = malloc(16);
    free(dangling);
    index_past_end = dangling[3];
}

static void signed_overflow(void)
{
    big = big + index_past_end;
}

/* A UBSan finding about an object in memory (misaligned, too small) adds a
 * dump of the bytes around it, after checking they are readable by writing
 * them into a pipe: pipe2 is forbidden (and must stay so), so such a
 * report ends with its first line, and the process dies of SIGSYS.  That
 * line (file:line:col and what) must still be there. */
static void misaligned_store(void)
{
    static long words[2];
    long *p = (long *)((char *)words + index_past_end / 16);
    *p = 1;
}

static void old_open(void)
{
    long fd = syscall(SYS_open, "/etc/passwd", O_RDONLY);
    _exit(fd == -1 && errno == EACCES ? 0 : 40);
}

/* Runs fn in a child locked in as role, its stderr into a pipe; returns
 * the wait status and the stderr text in out. */
static int run_locked_in(enum sandbox_role role, void (*fn)(void), char *out, size_t cap)
{
    int p[2], status = -1;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    out[0] = '\0';
    if (pipe(p) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        struct sandbox_spec s = {
            .role = role,
            .uid = 65534,
            .gid = 65534,
            .chroot_dir = chroot_dir,
            .max_fds = 16,
            .app_pid = -1,
        };
        char err[256];
        close(p[0]);
        if (dup2(p[1], 2) < 0)
            _exit(98);
        if (sandbox_lock_in(&s, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "lock-in failed: %s\n", err);
            _exit(99);
        }
        fn();
        _exit(0); /* no report: the error was not seen */
    }
    close(p[1]);
    while (pid > 0 && (n = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return status;
}

static void expect_report(const char *what, enum sandbox_role role, void (*fn)(void),
                          const char *error, const char *summary)
{
    static char out[1 << 16];
    int status = run_locked_in(role, fn, out, sizeof out);
    int ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
             strstr(out, error) != NULL && strstr(out, "    #0 0x") != NULL &&
             strstr(out, summary) != NULL;

    if (!ok)
        fprintf(stderr, "%s (%s): status 0x%x, stderr:\n%s\n", what,
                role == SANDBOX_ROLE_KEYD ? "keyd" : "worker", status, out);
    CHECK(ok);
}

int main(void)
{
    static char out[4096];
    enum sandbox_role roles[] = {SANDBOX_ROLE_WORKER, SANDBOX_ROLE_KEYD};

    snprintf(chroot_dir, sizeof chroot_dir, "/tmp/ucspitls-sanitizer-XXXXXX");
    CHECK(mkdtemp(chroot_dir) != NULL);
    chmod(chroot_dir, 0755);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        int status;
        expect_report("heap overflow", roles[i], heap_overflow,
                      "ERROR: AddressSanitizer: heap-buffer-overflow",
                      "SUMMARY: AddressSanitizer: heap-buffer-overflow");
        expect_report("use after free", roles[i], use_after_free,
                      "ERROR: AddressSanitizer: heap-use-after-free",
                      "SUMMARY: AddressSanitizer: heap-use-after-free");
        expect_report("signed overflow", roles[i], signed_overflow,
                      "runtime error: signed integer overflow",
                      "test_lockin_report.c:");
        status = run_locked_in(roles[i], misaligned_store, out, sizeof out);
        if (!strstr(out, "test_lockin_report.c:") || !strstr(out, "runtime error: store to misaligned"))
            fprintf(stderr, "misaligned store: status 0x%x, stderr:\n%s\n", status, out);
        CHECK(status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        CHECK(strstr(out, "test_lockin_report.c:") != NULL &&
              strstr(out, "runtime error: store to misaligned") != NULL);
        status = run_locked_in(roles[i], old_open, out, sizeof out);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "old open: status 0x%x, stderr:\n%s\n", status, out);
        CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    rmdir(chroot_dir);
    return check_done("test_lockin_report");
}

/* The seccomp allow-lists, one table per role.  Anything not listed kills
 * the whole process (SCMP_ACT_KILL_PROCESS); the architecture check is done
 * by libseccomp (a foreign-arch syscall also kills).  Each line says why the
 * call is needed; argument checks narrow a line where they can. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef UCSPITLS_SANITIZE
#include <sanitizer/common_interface_defs.h>
#endif

enum arg_check {
    ARGS_ANY,       /* no argument narrowing */
    ARGS_NO_EXEC,   /* arg 2 (prot) must not contain PROT_EXEC */
    ARGS_FCNTL_FL,  /* fcntl: F_GETFL / F_GETFD, and F_SETFL on the worker's own fds */
    ARGS_APP_PID,   /* arg 0 must be the app's pid */
    ARGS_KTLS_SETSOCKOPT, /* kTLS: TCP_ULP "tls", TLS_TX, TLS_RX on the socket */
    ARGS_KTLS_MSG_OUT,    /* kTLS: sendmsg on the socket, flags 0 */
    ARGS_KTLS_MSG_IN,     /* kTLS: recvmsg on the socket, flags 0 */
    ARGS_KTLS_SPLICE,     /* kTLS: splice pipe->socket and socket->pipe only */
#ifdef UCSPITLS_SANITIZE
    ARGS_NULL0,           /* sanitizer builds only: arg 0 must be NULL */
    ARGS_FAIL_EACCES,     /* sanitizer builds only: not allowed, but fails
                           * with EACCES instead of killing */
#endif
};

/* Sanitizer builds only (cmake -DUCSPITLS_SANITIZE=ON, never a release):
 * what the ASan/UBSan runtime itself does in a locked-in process.
 * - sigaltstack(NULL, &old): ASan asks before every noreturn call (_exit
 *   among them, in __asan_handle_no_return) whether it runs on the
 *   alternate stack.  Query only: arg 0 (a new stack) must be NULL.
 * - open, readlink: while it writes a report, the runtime reads
 *   /proc/self/{maps,cmdline,environ,exe} with these old calls, which libc
 *   never uses here (it opens with openat).  They fail with EACCES, so that
 *   the report is written without them instead of the process dying in its
 *   middle.  Nothing is opened: openat and every other way to a file still
 *   kill. */
#ifdef UCSPITLS_SANITIZE
#define SANITIZER_RULES \
    {"sigaltstack", ARGS_NULL0, "sanitizer builds: ASan asks for the current alternate stack"}, \
    {"open", ARGS_FAIL_EACCES, "sanitizer builds: fails (EACCES); a report reading /proc/self"}, \
    {"readlink", ARGS_FAIL_EACCES, "sanitizer builds: fails (EACCES); a report reading /proc/self/exe"},
#else
#define SANITIZER_RULES
#endif

struct rule {
    const char *name;
    enum arg_check check;
    const char *reason;
};

static const struct rule WORKER_RULES[] = {
    {"read", ARGS_ANY, "TLS records from the socket, plaintext from the app pipe, ctl command"},
    {"write", ARGS_ANY, "TLS records to the socket, plaintext to the app pipe, Y reply, log lines"},
    {"poll", ARGS_ANY, "the pump's one wait point"},
    {"ppoll", ARGS_ANY, "poll() on architectures that implement it with ppoll"},
    {"close", ARGS_ANY, "closing pipes and the socket as each side ends"},
    {"shutdown", ARGS_ANY, "TCP half-close when asked for instead of close_notify"},
    {"fcntl", ARGS_FCNTL_FL, "switching the socket and the app pipes to non-blocking when TLS starts"},
    {"wait4", ARGS_APP_PID, "reaping the app (its own child) and learning its exit status"},
    {"getpid", ARGS_ANY, "OpenSSL's fork-safety check in its random generator"},
    {"getrandom", ARGS_ANY, "OpenSSL's DRBG reseeding (no /dev/urandom in the chroot)"},
    {"brk", ARGS_ANY, "malloc"},
    {"mmap", ARGS_NO_EXEC, "malloc of large blocks; never executable"},
    {"munmap", ARGS_ANY, "free of large blocks"},
    {"mremap", ARGS_ANY, "realloc of large blocks"},
    {"mprotect", ARGS_NO_EXEC, "malloc arenas; never executable"},
    {"madvise", ARGS_ANY, "free() returning memory"},
    {"futex", ARGS_ANY, "OpenSSL's run-once locks"},
    {"clock_gettime", ARGS_ANY, "timeouts and TLS times when the vDSO is unavailable"},
    {"gettimeofday", ARGS_ANY, "TLS session times when the vDSO is unavailable"},
    {"time", ARGS_ANY, "TLS session times when the vDSO is unavailable"},
    {"rt_sigreturn", ARGS_ANY, "return from a signal handler"},
    {"rt_sigprocmask", ARGS_ANY, "libc blocks signals around some calls"},
    {"restart_syscall", ARGS_ANY, "kernel restart of an interrupted poll"},
    {"setsockopt", ARGS_KTLS_SETSOCKOPT, "kTLS only: OpenSSL attaches the tls ULP and hands the kernel the keys"},
    {"sendmsg", ARGS_KTLS_MSG_OUT, "kTLS only: OpenSSL sends control records with a record-type cmsg"},
    {"recvmsg", ARGS_KTLS_MSG_IN, "kTLS only: OpenSSL receives records with their record-type cmsg"},
    {"splice", ARGS_KTLS_SPLICE, "kTLS only: app pipe -> socket and socket -> app pipe in the kernel"},
    {"exit", ARGS_ANY, "ending"},
    {"exit_group", ARGS_ANY, "ending"},
    SANITIZER_RULES
};

static const struct rule KEYD_RULES[] = {
    {"recvfrom", ARGS_ANY, "a request from a worker (recv on its channel)"},
    {"sendto", ARGS_ANY, "the answer to a worker (send on its channel)"},
    {"recvmsg", ARGS_ANY, "a new worker channel from the master (SCM_RIGHTS)"},
    {"write", ARGS_ANY, "log lines on stderr"},
    {"poll", ARGS_ANY, "waiting on worker channels"},
    {"ppoll", ARGS_ANY, "poll() on architectures that implement it with ppoll"},
    {"close", ARGS_ANY, "dropping a worker's channel"},
    {"getpid", ARGS_ANY, "OpenSSL's fork-safety check in its random generator"},
    {"getrandom", ARGS_ANY, "ECDSA nonces and RSA-PSS salts"},
    {"brk", ARGS_ANY, "malloc"},
    {"mmap", ARGS_NO_EXEC, "malloc of large blocks; never executable"},
    {"munmap", ARGS_ANY, "free of large blocks"},
    {"mremap", ARGS_ANY, "realloc of large blocks"},
    {"mprotect", ARGS_NO_EXEC, "malloc arenas; never executable"},
    {"madvise", ARGS_ANY, "free() returning memory"},
    {"futex", ARGS_ANY, "OpenSSL's run-once locks"},
    {"clock_gettime", ARGS_ANY, "request timeouts when the vDSO is unavailable"},
    {"gettimeofday", ARGS_ANY, "OpenSSL's random generator reads the time on every signature (vDSO unavailable)"},
    {"time", ARGS_ANY, "OpenSSL's random generator reads the time on every signature (vDSO unavailable)"},
    {"rt_sigreturn", ARGS_ANY, "return from a signal handler"},
    {"rt_sigprocmask", ARGS_ANY, "libc blocks signals around some calls"},
    {"restart_syscall", ARGS_ANY, "kernel restart of an interrupted poll"},
    {"exit", ARGS_ANY, "ending"},
    {"exit_group", ARGS_ANY, "ending"},
    SANITIZER_RULES
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct rule *rules_of(enum sandbox_role role, size_t *n)
{
    if (role == SANDBOX_ROLE_KEYD) {
        *n = NELEM(KEYD_RULES);
        return KEYD_RULES;
    }
    *n = NELEM(WORKER_RULES);
    return WORKER_RULES;
}

void sandbox_policy_foreach(enum sandbox_role role,
                            void (*fn)(const char *, const char *, void *),
                            void *arg)
{
    size_t n;
    const struct rule *r = rules_of(role, &n);

    for (size_t i = 0; i < n; i++)
        fn(r[i].name, r[i].reason, arg);
}

#define SOL_TCP_ 6
#define TCP_ULP_ 31
#define SOL_TLS_ 282
#define TLS_TX_ 1
#define TLS_RX_ 2
#define SPLICE_FLAGS_ 3 /* SPLICE_F_MOVE | SPLICE_F_NONBLOCK */

static int add_ktls_rule(scmp_filter_ctx ctx, enum arg_check check, int nr,
                         const struct sandbox_spec *s)
{
    scmp_datum_t r = (scmp_datum_t)s->net_rfd, w = (scmp_datum_t)s->net_wfd;
    int rc = 0;

    switch (check) {
    case ARGS_KTLS_SETSOCKOPT:
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 3, SCMP_A0(SCMP_CMP_EQ, r),
                               SCMP_A1(SCMP_CMP_EQ, SOL_TCP_), SCMP_A2(SCMP_CMP_EQ, TCP_ULP_));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 3, SCMP_A0(SCMP_CMP_EQ, w),
                               SCMP_A1(SCMP_CMP_EQ, SOL_TCP_), SCMP_A2(SCMP_CMP_EQ, TCP_ULP_));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 3, SCMP_A0(SCMP_CMP_EQ, w),
                               SCMP_A1(SCMP_CMP_EQ, SOL_TLS_), SCMP_A2(SCMP_CMP_EQ, TLS_TX_));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 3, SCMP_A0(SCMP_CMP_EQ, r),
                               SCMP_A1(SCMP_CMP_EQ, SOL_TLS_), SCMP_A2(SCMP_CMP_EQ, TLS_RX_));
        break;
    case ARGS_KTLS_MSG_OUT:
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A0(SCMP_CMP_EQ, w),
                              SCMP_A2(SCMP_CMP_EQ, 0));
        break;
    case ARGS_KTLS_MSG_IN:
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A0(SCMP_CMP_EQ, r),
                              SCMP_A2(SCMP_CMP_EQ, 0));
        break;
    case ARGS_KTLS_SPLICE:
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 5,
                               SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)s->from_app_fd),
                               SCMP_A1(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, w),
                               SCMP_A3(SCMP_CMP_EQ, 0), SCMP_A5(SCMP_CMP_EQ, SPLICE_FLAGS_));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 5, SCMP_A0(SCMP_CMP_EQ, r),
                               SCMP_A1(SCMP_CMP_EQ, 0),
                               SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)s->to_app_fd),
                               SCMP_A3(SCMP_CMP_EQ, 0), SCMP_A5(SCMP_CMP_EQ, SPLICE_FLAGS_));
        break;
    default:
        return -EINVAL;
    }
    return rc;
}

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, int nr,
                    const struct sandbox_spec *spec)
{
    switch (r->check) {
    case ARGS_ANY:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    case ARGS_NO_EXEC:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    case ARGS_FCNTL_FL: {
        /* F_SETFL only on the worker's own fds: file status flags belong
         * to the open file, and the worker shares its stderr with the
         * master and keyd, whose log lines a non-blocking pipe would
         * lose */
        static const int queries[] = {F_GETFL, F_GETFD};
        const int own[] = {spec->net_rfd, spec->net_wfd, spec->from_app_fd, spec->to_app_fd};
        int rc = 0;

        for (size_t i = 0; i < NELEM(queries) && rc == 0; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                  SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)queries[i]));
        for (size_t i = 0; i < NELEM(own) && rc == 0; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2,
                                  SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)own[i]),
                                  SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)F_SETFL));
        return rc;
    }
    case ARGS_APP_PID:
        if (spec->app_pid <= 0)
            return 0; /* no app: the call stays forbidden */
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)spec->app_pid));
    case ARGS_KTLS_SETSOCKOPT:
    case ARGS_KTLS_MSG_OUT:
    case ARGS_KTLS_MSG_IN:
    case ARGS_KTLS_SPLICE:
        return spec->allow_ktls ? add_ktls_rule(ctx, r->check, nr, spec) : 0;
#ifdef UCSPITLS_SANITIZE
    case ARGS_NULL0:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, 0));
    case ARGS_FAIL_EACCES:
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0);
#endif
    }
    return -EINVAL;
}

/* The filter is built by libseccomp once per role (and kTLS choice), as a
 * template whose per-connection values (the app's pid, the connection's
 * fds) are placeholders no real pid or fd can be; each process that locks
 * in copies the template and patches its own values in.  The master builds
 * the templates before it forks (sandbox_seccomp_prepare), so a worker
 * spends no time in libseccomp.  The placeholders are above pid_max
 * (2^22) and any fd limit (2^20). */
enum {
    PH_APP_PID = 0x5ecc0001,
    PH_NET_RFD,
    PH_NET_WFD,
    PH_FROM_APP,
    PH_TO_APP,
    PH_END,
};
/* wait4's pid when there is no app: above pid_max, so never a child */
#define NO_PID 0x7fffffff

struct template {
    struct sock_filter *insn;
    unsigned short len;
};
static struct template templates[2][2]; /* [role][allow_ktls] */

static int build(const struct sandbox_spec *spec, scmp_filter_ctx *out, char *err,
                 size_t errlen)
{
    size_t n;
    const struct rule *r = rules_of(spec->role, &n);
#ifdef UCSPITLS_SECCOMP_TRAP
    uint32_t deflt = SCMP_ACT_TRAP; /* debug builds: SIGSYS names the call */
#else
    uint32_t deflt = SCMP_ACT_KILL_PROCESS;
#endif
    scmp_filter_ctx ctx = seccomp_init(deflt);
    int rc;

    if (ctx == NULL) {
        snprintf(err, errlen, "seccomp_init failed");
        return -1;
    }
    /* Syscall numbers as a binary tree instead of a chain: each call
     * checked in a few tests, and a cheaper load for every worker (the
     * kernel emulates the filter for each syscall number when it loads it:
     * 130 -> 110 us per seccomp() here, 3 x 200 loads).  Only a hint: an
     * older libseccomp without it builds the chain. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(r[i].name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture */
        rc = add_rule(ctx, &r[i], nr, spec);
        if (rc < 0) {
            snprintf(err, errlen, "seccomp rule for %s: %s", r[i].name,
                     strerror(-rc));
            seccomp_release(ctx);
            return -1;
        }
    }
    *out = ctx;
    return 0;
}

static int is_placeholder(uint32_t k)
{
    return k >= PH_APP_PID && k < PH_END;
}

static int make_template(enum sandbox_role role, int allow_ktls, struct template *t,
                         char *err, size_t errlen)
{
    struct sandbox_spec ph = {
        .role = role,
        .app_pid = PH_APP_PID,
        .allow_ktls = allow_ktls,
        .net_rfd = PH_NET_RFD,
        .net_wfd = PH_NET_WFD,
        .from_app_fd = PH_FROM_APP,
        .to_app_fd = PH_TO_APP,
    };
    scmp_filter_ctx ctx;
    int fd = -1, rc = -1;
    off_t size;

    if (build(&ph, &ctx, err, errlen) < 0)
        return -1;
    /* libseccomp 2.5 exports only to an fd */
    fd = memfd_create("seccomp", MFD_CLOEXEC);
    if (fd < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0) {
        snprintf(err, errlen, "seccomp filter export: %s",
                 strerror(fd < 0 ? errno : -rc));
        rc = -1;
        goto out;
    }
    rc = -1;
    size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof *t->insn != 0 ||
        size / (off_t)sizeof *t->insn > BPF_MAXINSNS) {
        snprintf(err, errlen, "seccomp filter export: odd size %lld", (long long)size);
        goto out;
    }
    t->insn = malloc((size_t)size);
    if (t->insn == NULL || pread(fd, t->insn, (size_t)size, 0) != size) {
        snprintf(err, errlen, "seccomp filter export: unable to read it back");
        free(t->insn);
        t->insn = NULL;
        goto out;
    }
    t->len = (unsigned short)(size / (off_t)sizeof *t->insn);
    /* a placeholder may appear only as the constant of an equality test,
     * where libseccomp put it; anywhere else, patching would change the
     * filter's meaning */
    for (unsigned i = 0; i < t->len; i++) {
        if (is_placeholder(t->insn[i].k) &&
            t->insn[i].code != (BPF_JMP | BPF_JEQ | BPF_K)) {
            snprintf(err, errlen, "seccomp filter template: placeholder %#x in instruction %u",
                     t->insn[i].k, i);
            free(t->insn);
            t->insn = NULL;
            goto out;
        }
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return rc;
}

int sandbox_seccomp_prepare(enum sandbox_role role, int allow_ktls, char *err,
                            size_t errlen)
{
    struct template *t = &templates[role == SANDBOX_ROLE_KEYD][allow_ktls != 0];

    return t->insn != NULL ? 0 : make_template(role, allow_ktls != 0, t, err, errlen);
}

int sandbox_install_seccomp(const struct sandbox_spec *spec, char *err,
                            size_t errlen)
{
    const struct template *t = &templates[spec->role == SANDBOX_ROLE_KEYD][spec->allow_ktls != 0];
    struct sock_fprog prog;
    struct sock_filter *insn;
    int rc;

    if (sandbox_seccomp_prepare(spec->role, spec->allow_ktls, err, errlen) < 0)
        return -1;
    insn = malloc(t->len * sizeof *insn);
    if (insn == NULL) {
        snprintf(err, errlen, "seccomp: out of memory");
        return -1;
    }
    {
        /* each placeholder's value, in PH_ order */
        const uint32_t value[PH_END - PH_APP_PID] = {
            spec->app_pid > 0 ? (uint32_t)spec->app_pid : NO_PID,
            (uint32_t)spec->net_rfd, (uint32_t)spec->net_wfd,
            (uint32_t)spec->from_app_fd, (uint32_t)spec->to_app_fd,
        };

        memcpy(insn, t->insn, t->len * sizeof *insn);
        for (unsigned i = 0; i < t->len; i++)
            if (is_placeholder(insn[i].k))
                insn[i].k = value[insn[i].k - PH_APP_PID];
    }
    prog.len = t->len;
    prog.filter = insn;
#ifdef UCSPITLS_SANITIZE
    /* From here on a sanitizer report cannot open its log file (log_path,
     * tests/sanitizer/options.c): it goes to stderr, which the tests read. */
    __sanitizer_set_report_path("stderr");
#endif
    /* as libseccomp does: a filter needs no_new_privs (or CAP_SYS_ADMIN) */
    rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
             ? (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)
             : -1;
    if (rc < 0)
        snprintf(err, errlen, "seccomp: %s", strerror(errno));
    free(insn);
    return rc < 0 ? -1 : 0;
}

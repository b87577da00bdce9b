/* The privilege drop: rlimits, chroot, capabilities, ids, no_new_privs.
 * Every step is checked; a failure leaves the caller to exit, never to go on
 * half-locked. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    errno = saved;
    return -1;
}

static int set_limit(int resource, rlim_t value)
{
    struct rlimit rl = {value, value};
    return setrlimit(resource, &rl);
}

static int set_rlimits(const struct sandbox_spec *spec, char *err,
                       size_t errlen)
{
    struct stat st;

    /* No new files, no children, no core dumps with traffic keys in them. */
    if (set_limit(RLIMIT_NOFILE, (rlim_t)spec->max_fds) < 0)
        return fail(err, errlen, "setrlimit NOFILE: %s", strerror(errno));
    if (set_limit(RLIMIT_NPROC, 0) < 0)
        return fail(err, errlen, "setrlimit NPROC: %s", strerror(errno));
    if (set_limit(RLIMIT_CORE, 0) < 0)
        return fail(err, errlen, "setrlimit CORE: %s", strerror(errno));
    /* FSIZE 0 would make every log line fail when stderr is a regular file
     * (tlsserver 2>>log); the process cannot open files anyway (seccomp), so
     * the limit only matters for fds it already holds, and stderr is the only
     * file it may hold. */
    if (fstat(2, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (set_limit(RLIMIT_FSIZE, 0) < 0)
            return fail(err, errlen, "setrlimit FSIZE: %s", strerror(errno));
    }
    return 0;
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

int sandbox_check_chroot_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    int empty;

    if (dir == NULL || dir[0] != '/')
        return fail(err, errlen, "chroot directory %s: not an absolute path",
                    dir ? dir : "(none)");
    if (stat(dir, &st) < 0)
        return fail(err, errlen, "chroot directory %s: %s", dir,
                    strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, "chroot directory %s: not a directory", dir);
    /* A directory the worker's uid could write into would let a compromised
     * worker plant files for the next one. */
    if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return fail(err, errlen,
                    "chroot directory %s: must be owned by root and "
                    "writable by root only",
                    dir);
    empty = dir_is_empty(dir);
    if (empty < 0)
        return fail(err, errlen, "chroot directory %s: %s", dir,
                    strerror(errno));
    if (!empty)
        return fail(err, errlen, "chroot directory %s: not empty", dir);
    return 0;
}

int sandbox_prepare_chroot_dir(const char *dir, char *err, size_t errlen)
{
    char parent[4096];
    char *slash;

    if (dir == NULL || dir[0] != '/' || strlen(dir) >= sizeof parent)
        return fail(err, errlen, "chroot directory %s: not an absolute path",
                    dir ? dir : "(none)");
    memcpy(parent, dir, strlen(dir) + 1);
    slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        if (mkdir(parent, 0755) < 0 && errno != EEXIST)
            return fail(err, errlen, "mkdir %s: %s", parent, strerror(errno));
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fail(err, errlen, "mkdir %s: %s", dir, strerror(errno));
    return sandbox_check_chroot_dir(dir, err, errlen);
}

/* Empties the bounding set so that no later execve could bring a capability
 * back; needs CAP_SETPCAP, so it runs while still root. */
static int drop_bounding_set(char *err, size_t errlen)
{
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
        if (cap_drop_bound(c) < 0 && errno != EINVAL)
            return fail(err, errlen, "cap_drop_bound(%d): %s", (int)c,
                        strerror(errno));
    }
    if (cap_reset_ambient() < 0 && errno != EINVAL)
        return fail(err, errlen, "cap_reset_ambient: %s", strerror(errno));
    return 0;
}

static int clear_capabilities(char *err, size_t errlen)
{
    cap_t caps = cap_init(); /* all flags clear */
    int rc = 0;

    if (caps == NULL)
        return fail(err, errlen, "cap_init: %s", strerror(errno));
    if (cap_set_proc(caps) < 0)
        rc = fail(err, errlen, "cap_set_proc: %s", strerror(errno));
    cap_free(caps);
    return rc;
}

/* Proves the drop: all ids are the target, root cannot be regained, and no
 * capability is left in any set. */
static int verify_dropped(const struct sandbox_spec *spec, int privileged,
                          char *err, size_t errlen)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    cap_t caps, empty;
    int same;

    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return fail(err, errlen, "getresuid: %s", strerror(errno));
    if (privileged) {
        if (ru != spec->uid || eu != spec->uid || su != spec->uid ||
            rg != spec->gid || eg != spec->gid || sg != spec->gid)
            return fail(err, errlen, "ids not dropped");
        if (setuid(0) == 0 || setgid(0) == 0)
            return fail(err, errlen, "root could be regained");
    }
    caps = cap_get_proc();
    empty = cap_init();
    if (caps == NULL || empty == NULL) {
        cap_free(caps);
        cap_free(empty);
        return fail(err, errlen, "cap_get_proc: %s", strerror(errno));
    }
    same = cap_compare(caps, empty) == 0;
    cap_free(caps);
    cap_free(empty);
    if (!same)
        return fail(err, errlen, "capabilities left after drop");
    return 0;
}

void sandbox_read_timezone(void)
{
    static int done;

    if (!done) {
        tzset();
        done = 1;
    }
}

int sandbox_lock_in(const struct sandbox_spec *spec, int *unprivileged,
                    char *err, size_t errlen)
{
    int privileged = geteuid() == 0;

    if (unprivileged != NULL)
        *unprivileged = !privileged;
    if (privileged && (spec->uid == 0 || spec->gid == 0))
        return fail(err, errlen, "refusing to run the sandbox as root");

    sandbox_read_timezone();
    /* the filter, unless a parent built it already: it needs an fd and a
     * file write, which the limits below may no longer allow */
    if (sandbox_seccomp_prepare(spec->role, spec->allow_ktls, err, errlen) < 0)
        return -1;
    if (set_rlimits(spec, err, errlen) < 0)
        return -1;
    if (privileged) {
        if (chroot(spec->chroot_dir) < 0)
            return fail(err, errlen, "chroot %s: %s", spec->chroot_dir,
                        strerror(errno));
        if (chdir("/") < 0)
            return fail(err, errlen, "chdir /: %s", strerror(errno));
        if (drop_bounding_set(err, errlen) < 0)
            return -1;
        if (setgroups(1, &spec->gid) < 0)
            return fail(err, errlen, "setgroups: %s", strerror(errno));
        if (setresgid(spec->gid, spec->gid, spec->gid) < 0)
            return fail(err, errlen, "setresgid %u: %s",
                        (unsigned)spec->gid, strerror(errno));
        if (setresuid(spec->uid, spec->uid, spec->uid) < 0)
            return fail(err, errlen, "setresuid %u: %s",
                        (unsigned)spec->uid, strerror(errno));
    }
    if (clear_capabilities(err, errlen) < 0)
        return -1;
    if (verify_dropped(spec, privileged, err, errlen) < 0)
        return -1;
    /* no_new_privs: required for an unprivileged seccomp filter, and makes
     * setuid binaries inert should anything ever exec. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    /* Not dumpable: no ptrace attach and no /proc/PID/mem by same-uid peers. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return fail(err, errlen, "PR_SET_DUMPABLE: %s", strerror(errno));
    return sandbox_install_seccomp(spec, err, errlen);
}

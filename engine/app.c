/* The app child.  It runs between fork and exec with the master's memory
 * image, so it does as little as possible: fds, environment, ids, exec. */
#include "app.h"
#include "log.h"
#include "ucspitls_app.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

/* Variables a server may set: inherited copies are removed so that an app
 * can never mistake an outer server's values for this connection's. */
static void scrub_environment(const struct engine_config *cfg)
{
    static const char *const drop[] = {"SSLCTLFD", "SSLREADFD", "SSLWRITEFD"};
    static const char *const keep[] = {"SSL_UID", "SSL_GID", "SSL_CHROOT"};
    char name[128];
    int again = 1;

    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        unsetenv(drop[i]);
    if (cfg->frontend == ENGINE_SERVER || cfg->proxy) {
        /* no lookups are made, and with --proxy tcpserver's names describe
         * the proxy: stale names from our own environment would lie */
        static const char *const addr_names[] = {
            "TCPREMOTEHOST", "TCPREMOTEINFO", "TCPLOCALHOST", "TCP6REMOTEIP",
            "TCP6REMOTEPORT", "TCP6LOCALIP", "TCP6LOCALPORT", "SSLLOCALHOST"};
        for (size_t i = 0; i < sizeof addr_names / sizeof addr_names[0]; i++)
            unsetenv(addr_names[i]);
    }
    while (again) { /* unsetenv reshuffles environ: rescan after each */
        again = 0;
        for (char **e = environ; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
            int kept = 0;
            if (strncmp(*e, "SSL_", 4) != 0 || n >= sizeof name)
                continue;
            memcpy(name, *e, n);
            name[n] = '\0';
            for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
                kept |= strcmp(name, keep[k]) == 0;
            if (!kept) {
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

/* Puts each src fd at its dst number, whatever the numbers are: first every
 * source is copied above all targets, then copied down. */
static int place_fds(const int *src, const int *dst, int n)
{
    int high[8];

    for (int i = 0; i < n; i++) {
        high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
        if (high[i] < 0)
            return -1;
    }
    for (int i = 0; i < n; i++) {
        if (dup2(high[i], dst[i]) < 0) /* dup2 clears CLOEXEC on dst */
            return -1;
        close(high[i]);
    }
    return 0;
}

static int set_fd_env(const char *name, int fd)
{
    char v[16];
    snprintf(v, sizeof v, "%d", fd);
    return setenv(name, v, 1);
}

static int drop_ids(const struct engine_config *cfg)
{
    if (cfg->set_app_gid) {
        if (setgroups(1, &cfg->app_gid) < 0 && errno != EPERM)
            return -1;
        if (setgid(cfg->app_gid) < 0)
            return -1;
    }
    if (cfg->set_app_uid && setuid(cfg->app_uid) < 0)
        return -1;
    return 0;
}

/* Immediate mode: block until the worker reports the handshake.  An empty
 * gate means it failed: the app is not started.  The block comes from the
 * less-trusted worker, so only SSL_* names are taken from it. */
static int await_gate(const struct engine_config *cfg, int gate)
{
    static char buf[APP_GATE_MAX];
    size_t len = 0;
    struct ucspitls_vars vars;

    for (;;) {
        ssize_t n = read(gate, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf)
            return -1;
    }
    close(gate);
    if (len == 0)
        return -1;
    if (!cfg->session_env && !cfg->proxy)
        return 0;
    if (ucspitls_vars_parse(buf, len, &vars) != 0)
        return -1;
    for (size_t i = 0; i < vars.count; i++) {
        const char *name = vars.entries[i].name;
        /* session variables with -s; the client's address with --proxy
         * (read by the worker from the PROXY header) */
        if (!(cfg->session_env && strncmp(name, "SSL_", 4) == 0 &&
              !conn_addr_is_var(name)) &&
            !(cfg->proxy && conn_addr_is_var(name)))
            continue;
        if (setenv(vars.entries[i].name, vars.entries[i].value, 1) < 0) {
            ucspitls_vars_free(&vars);
            return -1;
        }
    }
    ucspitls_vars_free(&vars);
    return 0;
}

static void child(const struct engine_config *cfg, const struct conn_addr *addr,
                  const struct app_fds *fds)
{
    sigset_t none;
    int gate = -1, gate_high = -1;

    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Until exec this process holds the master's memory image: keep other
     * processes of the app's uid from reading it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int i = 0; i < fds->n_worker_ends; i++)
        if (fds->worker_ends[i] >= 0)
            close(fds->worker_ends[i]);

    /* the gate above every fd number about to be placed */
    if (fds->gate >= 0 && (gate_high = fcntl(fds->gate, F_DUPFD_CLOEXEC, 10)) < 0)
        goto fail;
    scrub_environment(cfg);
    /* with --proxy the address is the PROXY header's, sent on the gate */
    if (!cfg->proxy && conn_addr_export(addr, cfg->local_hostname) < 0)
        goto fail;
    if (cfg->delayed) {
        int src[5] = {fds->net_rfd, fds->net_wfd, fds->ctl, fds->read_pipe,
                      fds->write_pipe};
        int dst[5] = {0, 1, APP_CTL_FD, APP_READ_FD, APP_WRITE_FD};
        gate = cfg->proxy ? gate_high : -1;
        if (place_fds(src, dst, 5) < 0 || set_fd_env("SSLCTLFD", APP_CTL_FD) < 0 ||
            set_fd_env("SSLREADFD", APP_READ_FD) < 0 ||
            set_fd_env("SSLWRITEFD", APP_WRITE_FD) < 0)
            goto fail;
    } else {
        int src[2] = {fds->plain_in, fds->plain_out};
        int dst[2] = {0, 1};
        gate = gate_high;
        if (place_fds(src, dst, 2) < 0)
            goto fail;
    }
    if (drop_ids(cfg) < 0) {
        log_line(LOG_ERROR, "unable to set the app's uid/gid: %s", strerror(errno));
        _exit(ENGINE_EXIT_TEMPORARY);
    }
    if (gate >= 0 && await_gate(cfg, gate) < 0)
        _exit(ENGINE_EXIT_TEMPORARY); /* handshake failed: app never runs */
    execvp(cfg->prog[0], cfg->prog);
    log_line(LOG_ERROR, "unable to run %s: %s", cfg->prog[0], strerror(errno));
    _exit(ENGINE_EXIT_TEMPORARY);
fail:
    log_line(LOG_ERROR, "unable to set up the app: %s", strerror(errno));
    _exit(ENGINE_EXIT_TEMPORARY);
}

pid_t app_spawn(const struct engine_config *cfg, const struct conn_addr *addr,
                const struct app_fds *fds)
{
    pid_t pid = fork();

    if (pid == 0)
        child(cfg, addr, fds);
    return pid;
}

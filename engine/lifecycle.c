/* What every front end does with a running engine, in one place: fork a
 * worker for a connection, restart a keyd that died, retire one at a
 * reload, and reload.  tlsserver's listener and the public API (api.c)
 * both call these. */
#include "internal.h"
#include "keyd.h"
#include "log.h"
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t engine_spawn_worker(const struct engine_config *cfg, struct tls_context *tls,
                          struct keyd *keyd, int rfd, int wfd, const struct rules_env *env)
{
    int channel = -1;
    pid_t pid;

    if (!cfg->bench_key_in_worker) {
        channel = keyd_channel_new(keyd);
        if (channel < 0) {
            log_line(LOG_ERROR, "keyd unavailable (%s): dropping a connection", strerror(errno));
            return -1;
        }
    }
    /* the worker's idle stack trim needs its stack's bounds; for the main
     * thread glibc reads /proc/self/maps to find them: done once here (the
     * value is kept per thread) and inherited, not again in every worker */
    (void)conn_stack_low();
    pid = fork();
    if (pid < 0) {
        log_line(LOG_ERROR, "unable to fork: %s", strerror(errno));
    } else if (pid == 0) {
        struct conn_addr addr;
        sigset_t none;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* The server's own stdin/stdout (a terminal, a log) are none of a
         * worker's business, and neither is any other fd of the server
         * (its listener, keyd's control socket, other connections). */
        if (null < 0 || (rfd != 0 && wfd != 0 && dup2(null, 0) < 0) ||
            (rfd != 1 && wfd != 1 && dup2(null, 1) < 0))
            _exit(ENGINE_EXIT_TEMPORARY);
        if (null > 2)
            close(null);
        {
            /* 0, 1 and 2 always stay (the connection or /dev/null; the log) */
            int k[6] = {0, 1, 2, rfd, wfd, channel >= 0 ? channel : 2};
            util_close_all_but(k, 6);
        }
        /* a rule's variables go to the app; its own address variables,
         * set later, win over them */
        for (size_t i = 0; env != NULL && i < env->count; i++)
            setenv(env->set[i].name, env->set[i].value, 1);
        if (conn_addr_from_socket(rfd, &addr) < 0)
            addr.have = 0;
        _exit(conn_serve(cfg, tls, rfd, wfd, &addr, channel));
    }
    if (channel >= 0)
        close(channel);
    return pid;
}

int keyd_restart(const struct engine_config *cfg, const struct tls_context *tls,
                 struct keyd *keyd, int status)
{
    char err[512];

    if (WIFSIGNALED(status))
        log_line(LOG_ERROR, "keyd %d killed by signal %d: restarting it",
                 (int)keyd->pid, WTERMSIG(status));
    else
        log_line(LOG_ERROR, "keyd %d exited with status %d: restarting it",
                 (int)keyd->pid, WEXITSTATUS(status));
    keyd_forget(keyd);
    if (cfg->key_password_fd3) {
        /* The password was read once from fd 3 and is gone (the master
         * never keeps key material): a new keyd could not open the key. */
        log_line(LOG_ERROR, "fatal: keyd is gone and -3 keys cannot be reloaded");
        return -1;
    }
    /* the keys must match the certificates being served, not the files,
     * which may have changed since (a reload reads both) */
    if (keyd_start(cfg, tls, 0, keyd, NULL, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "fatal: keyd: %s", err);
        return -1;
    }
    return 0;
}

/* keyd processes let go of at a reload: they serve the channels of the
 * workers forked before it, then exit; their ends are not workers' ends. */
static pid_t retired[64];

int keyd_is_retired(pid_t pid)
{
    for (size_t i = 0; i < sizeof retired / sizeof retired[0]; i++) {
        if (retired[i] == pid && pid > 0) {
            retired[i] = 0;
            return 1;
        }
    }
    return 0;
}

static void retire(struct keyd *k)
{
    for (size_t i = 0; i < sizeof retired / sizeof retired[0]; i++) {
        if (retired[i] == 0) {
            retired[i] = k->pid;
            keyd_forget(k); /* closing its control socket tells it */
            return;
        }
    }
    /* too many reloads in a row to track them all: stop this one now (a
     * handshake still waiting on it fails; nothing is miscounted) */
    log_line(LOG_ERROR, "keyd %d stopped at once: %zu earlier keyds still serve connections "
             "from before their reloads; its own connections' handshakes will fail",
             (int)k->pid, sizeof retired / sizeof retired[0]);
    keyd_stop(k);
}

int engine_reload(struct engine_config **cfg, const struct engine_config *original,
                  struct keyd *keyd, struct tls_context **tls, char *err, size_t errlen)
{
    struct engine_config *nc;
    struct keyd nk = {.pid = -1, .ctl = -1};
    struct tls_context *nt = NULL;

    if ((*cfg)->key_password_fd3) {
        /* the password was read once from fd 3 and is gone */
        snprintf(err, errlen, "keys given with -3 cannot be reloaded (restart instead)");
        return -1;
    }
    nc = engine_config_reread(*cfg, err, errlen);
    if (nc == NULL)
        goto fail;
    /* the certificates first, then keyd, which checks its keys against
     * them: files changed between the two reads (a certificate renewal
     * writes two files) fail the reload instead of serving a certificate
     * keyd cannot sign for */
    nt = tlsctx_new(nc, err, errlen);
    if (nt == NULL)
        goto fail;
    if (!nc->bench_key_in_worker && keyd_start(nc, nt, 0, &nk, NULL, err, errlen) < 0)
        goto fail;
    tlsctx_inherit_tickets(nt, *tls);
    engine_warm_up(nc, nt, &nk);
    if (keyd->pid > 0)
        retire(keyd);
    *keyd = nk;
    tlsctx_free(*tls);
    *tls = nt;
    if (*cfg != original)
        engine_config_free(*cfg);
    *cfg = nc;
    log_line(LOG_ERROR, "reloaded: %d certificate(s)", nc->ncerts);
    return 0;
fail:
    keyd_stop(&nk);
    tlsctx_free(nt);
    engine_config_free(nc);
    return -1;
}

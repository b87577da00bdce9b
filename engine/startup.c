/* What both front ends do before serving: logging, the workers' root, the
 * TLS context.  All of it before any connection is touched. */
#include "internal.h"
#include "keyd.h"
#include "keyprov.h"
#include "log.h"
#include "relay.h"
#include "sandbox.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void engine_warm_up(const struct engine_config *cfg, struct tls_context *tls,
                    struct keyd *keyd)
{
    char err[512];

    for (int tls12 = 0; tls12 < 2; tls12++) {
        int channel = -1;

        /* keyd signs for the warm-up as for any worker: one channel each */
        if (!cfg->bench_key_in_worker && (channel = keyd_channel_new(keyd)) < 0)
            return;
        keyprov_set_channel(channel);
        keyprov_set_deadline(util_now_ms() + 5000);
        if (tlsctx_warm_up(tls, tls12, err, sizeof err) < 0)
            log_line(LOG_INFO, "warm-up (TLS 1.%d): %s", tls12 ? 2 : 3, err);
        keyprov_close_channel();
    }
}

struct tls_context *engine_startup(const struct engine_config *cfg,
                                   struct keyd *keyd, int one_shot,
                                   int *channel)
{
    char err[512], kerr[sizeof err];
    struct tls_context *tls;

    log_setup(cfg->progname, cfg->verbosity);
    if (geteuid() == 0) {
        /* The default root is ours to create; one given by SSL_CHROOT is
         * the operator's and is only checked. */
        int rc = cfg->chroot_dir == NULL || strcmp(cfg->chroot_dir, ENGINE_DEFAULT_CHROOT) == 0
                     ? sandbox_prepare_chroot_dir(ENGINE_DEFAULT_CHROOT, err, sizeof err)
                     : sandbox_check_chroot_dir(cfg->chroot_dir, err, sizeof err);
        if (rc < 0) {
            log_line(LOG_ERROR, "fatal: %s", err);
            return NULL;
        }
    } else {
        /* tlsd starts once per connection: say it only when asked (-v) */
        log_line(cfg->frontend == ENGINE_SERVER ? LOG_ERROR : LOG_INFO,
                 "warning: not running as root: workers keep uid %u and are not chrooted "
                 "(no_new_privs, rlimits and seccomp still apply)",
                 (unsigned)geteuid());
    }
    *channel = -1;
    keyd->pid = -1;
    keyd->ctl = -1;
    keyd->npool = 0; /* no keyd (bench mode): keyd_stop() must find no pool */
    /* keyd checks its keys against the certificate files while the context
     * reads them again (in parallel: start-up time); a renewal landing
     * between the two reads is not caught here, as it is at a restart or a
     * reload (keyd_start with the context in use) */
    if (cfg->bench_key_in_worker) {
        log_line(LOG_ERROR, "warning: UCSPITLS_BENCH_KEY_IN_WORKER=1: no keyd, "
                            "the private key is in every worker (benchmarks only)");
    } else if (keyd_spawn(cfg, NULL, one_shot, keyd, channel, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "fatal: %s", err);
        return NULL;
    }
    /* -3: the password was keyd's to read; nobody else keeps fd 3 */
    if (cfg->key_password_fd3)
        close(3);
    /* While keyd loads its keys (on the other core, if there is one), the
     * certificates and the context; then keyd's report.  When both fail,
     * keyd's reason is the one given, as if it had been waited for first. */
    tls = tlsctx_new(cfg, err, sizeof err);
    /* the workers' seccomp filter, built once here instead of in each */
    if (tls != NULL &&
        sandbox_seccomp_prepare(SANDBOX_ROLE_WORKER, tlsctx_ktls(tls), err, sizeof err) < 0) {
        tlsctx_free(tls);
        tls = NULL;
    }
    if (!cfg->bench_key_in_worker && keyd_await(keyd, kerr, sizeof kerr) < 0) {
        memcpy(err, kerr, sizeof err);
        goto fail;
    }
    if (tls == NULL)
        goto fail;
    /* Made once here instead of in each worker, which would otherwise keep
     * private copies of the pages they write: the relay's shared parts and
     * libc's time zone. */
    relay_prepare();
    sandbox_read_timezone();
    if (!one_shot)
        engine_warm_up(cfg, tls, keyd);
    return tls;
fail:
    log_line(LOG_ERROR, "fatal: %s", err);
    tlsctx_free(tls);
    keyd_stop(keyd);
    if (*channel >= 0)
        close(*channel);
    *channel = -1;
    return NULL;
}

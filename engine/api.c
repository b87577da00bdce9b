/* The public API (include/ucspitls/engine.h) over the engine's internals.
 * tlsserver and tlsd use nothing else. */
#include "internal.h"
#include "keyd.h"
#include "ucspitls/engine.h"

#include <stdio.h>
#include <stdlib.h>

struct ucspitls_engine {
    struct engine_config *cfg;      /* as parsed (owned) */
    struct engine_config *running;  /* after reloads: cfg or a re-read copy */
    struct tls_context *tls;        /* after ucspitls_engine_start */
    struct keyd keyd;
};

struct ucspitls_engine *ucspitls_engine_new(enum ucspitls_mode mode, int argc,
                                            char **argv, int *exit_code)
{
    struct ucspitls_engine *e = calloc(1, sizeof *e);

    if (e == NULL) {
        fprintf(stderr, "ucspi-tls: fatal: out of memory\n");
        *exit_code = UCSPITLS_EXIT_TEMPORARY;
        return NULL;
    }
    e->cfg = engine_config_parse(mode == UCSPITLS_MODE_SERVER ? ENGINE_SERVER : ENGINE_HANDLE,
                                 argc, argv, exit_code);
    if (e->cfg == NULL) {
        free(e);
        return NULL;
    }
    e->running = e->cfg;
    e->keyd.pid = -1;
    e->keyd.ctl = -1;
    return e;
}

void ucspitls_engine_free(struct ucspitls_engine *e)
{
    if (e == NULL)
        return;
    keyd_stop(&e->keyd);
    tlsctx_free(e->tls);
    if (e->running != e->cfg)
        engine_config_free(e->running);
    engine_config_free(e->cfg);
    free(e);
}

int ucspitls_engine_run_server(struct ucspitls_engine *e)
{
    return engine_serve(e->cfg);
}

int ucspitls_engine_run_handle(struct ucspitls_engine *e)
{
    return engine_handle(e->cfg);
}

int ucspitls_engine_start(struct ucspitls_engine *e, char *err, size_t errlen)
{
    int unused;

    if (e->tls != NULL) {
        snprintf(err, errlen, "already started");
        return -1;
    }
    e->tls = engine_startup(e->running, &e->keyd, 0, &unused);
    if (e->tls == NULL) {
        snprintf(err, errlen, "start-up failed (see the log line above)");
        return -1;
    }
    return 0;
}

pid_t ucspitls_engine_spawn(struct ucspitls_engine *e, int rfd, int wfd)
{
    if (e->tls == NULL)
        return -1;
    return engine_spawn_worker(e->running, e->tls, &e->keyd, rfd, wfd, NULL);
}

int ucspitls_engine_child_exited(struct ucspitls_engine *e, pid_t pid, int status)
{
    if (keyd_is_retired(pid))
        return 1;
    if (pid != e->keyd.pid || pid <= 0)
        return 0;
    return keyd_restart(e->running, e->tls, &e->keyd, status) < 0 ? -1 : 1;
}

int ucspitls_engine_reload(struct ucspitls_engine *e, char *err, size_t errlen)
{
    if (e->tls == NULL) {
        snprintf(err, errlen, "not started");
        return -1;
    }
    return engine_reload(&e->running, e->cfg, &e->keyd, &e->tls, err, errlen);
}

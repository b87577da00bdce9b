/* tlsd [options] prog...: TLS for the one connection on fds 0/1.  Only the
 * public engine API. */
#include "ucspitls/engine.h"

#include <stddef.h>

int main(int argc, char **argv)
{
    int code;
    struct ucspitls_engine *e = ucspitls_engine_new(UCSPITLS_MODE_HANDLE, argc, argv, &code);

    if (e == NULL)
        return code;
    /* returns locked in (seccomp): no freeing after it, just exit */
    return ucspitls_engine_run_handle(e);
}

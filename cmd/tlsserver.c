/* tlsserver [options] host port prog...: listens and runs prog for each
 * connection behind a locked-in TLS worker.  Only the public engine API. */
#include "ucspitls/engine.h"

#include <stddef.h>

int main(int argc, char **argv)
{
    int code;
    struct ucspitls_engine *e = ucspitls_engine_new(UCSPITLS_MODE_SERVER, argc, argv, &code);

    if (e == NULL)
        return code;
    code = ucspitls_engine_run_server(e);
    ucspitls_engine_free(e);
    return code;
}

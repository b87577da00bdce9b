/* tlsserver [options] host port prog...: listens and runs prog for each
 * connection behind a locked-in TLS worker. */
#include "engine.h"

#include <stddef.h>

int main(int argc, char **argv)
{
    int code;
    struct engine_config *cfg = engine_config_parse(ENGINE_SERVER, argc, argv, &code);

    if (cfg == NULL)
        return code;
    code = engine_serve(cfg);
    engine_config_free(cfg);
    return code;
}

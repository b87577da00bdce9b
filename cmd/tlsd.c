/* tlsd [options] prog...: TLS for the one connection on fds 0/1. */
#include "engine.h"

#include <stddef.h>

int main(int argc, char **argv)
{
    int code;
    struct engine_config *cfg = engine_config_parse(ENGINE_HANDLE, argc, argv, &code);

    if (cfg == NULL)
        return code;
    code = engine_handle(cfg);
    engine_config_free(cfg);
    return code;
}
